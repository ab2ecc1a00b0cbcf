/* Responder actions and views (responder.h). */
#include "agent/responder.h"

#include "agent/log.h"
#include "agent/loop.h"
#include "agent/store.h"
#include "agent/track.h"
#include "sync/sync.h"

#include "agent/fmt.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* A fix older than this is not "where it happened". */
#define FIX_FRESH_MS 60000
/* accuracy_m sent when the receiver gave none (the API needs a number). */
#define ACCURACY_UNKNOWN_M 9999.0

static const char *const local_names[STORE_STATUS_COUNT] = {
    "new",      "acknowledged", "en_route",         "on_scene",
    "resolved", "referred",     "unable_to_locate", "declined",
};

const char *responder_local_status_name(int st)
{
	return st >= 0 && st < STORE_STATUS_COUNT ? local_names[st] : "unknown";
}

void responder_stamp(struct responder *r, struct proto_event *ev)
{
	ev->has_location = 0;
	if (!r->track) {
		ev->at_ms = loop_wall_ms();
		ev->clock = track_ntp_synced() ? PROTO_CLOCK_SYSTEM : PROTO_CLOCK_UNSYNCED;
		return;
	}
	ev->at_ms = track_event_now(r->track);
	switch (track_clock_state(r->track)) {
	case TRACK_CLOCK_GPS:
		ev->clock = PROTO_CLOCK_GPS;
		break;
	case TRACK_CLOCK_SYSTEM:
		ev->clock = PROTO_CLOCK_SYSTEM;
		break;
	default:
		ev->clock = PROTO_CLOCK_UNSYNCED;
	}
	struct hal_gps_fix f;
	if (track_last_fix(r->track, &f) == 0 && loop_now_ms() - f.mono_ms <= FIX_FRESH_MS) {
		ev->has_location = 1;
		ev->lat = f.lat_e7 / 1e7;
		ev->lon = f.lon_e7 / 1e7;
		ev->accuracy_m = f.accuracy_dm >= 0 ? f.accuracy_dm / 10.0 : ACCURACY_UNKNOWN_M;
	}
}

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
int responder_text_valid(const char *text)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t n = strlen(text);
	if (n > PROTO_TEXT_MAX)
		return 0;
	for (size_t i = 0; i < n;) {
		unsigned c = p[i];
		if (c < 0x80) {
			if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
				return 0;
			i++;
			continue;
		}
		size_t len;
		unsigned cp, min;
		if ((c & 0xe0) == 0xc0) {
			len = 2, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if (i + len > n)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

static int check_id(const char *id, char *err, size_t errlen)
{
	if (!id || !proto_id_valid(id))
		return fmt_err(err, errlen, -EINVAL, "not a valid incident id");
	return 0;
}

/* The incident id (checked by check_id) from the store, or the responder's
 * message for why not. */
static int get_incident(struct responder *r, const char *id, struct store_incident *inc, char *err,
                        size_t errlen)
{
	int rc = store_incident_get(r->store, id, inc);
	if (rc == -ENOENT)
		return fmt_err(err, errlen, rc, "no incident %s on this device", id);
	if (rc < 0)
		return fmt_err(err, errlen, rc, "reading incident %s: %s", id, strerror(-rc));
	return 0;
}

/* Queues ev, optionally moves the local status, audits: one transaction. */
static int commit_action(struct responder *r, struct proto_event *ev, int set_status,
                         enum store_audit_action audit, const char *subject, const char *detail,
                         struct responder_done *done, char *err, size_t errlen)
{
	int rc;
	/* A full disk: the reserve is given back and the trail thinned, then
	 * once more; a responder's action goes before positions. */
	for (int attempt = 0;; attempt++) {
		rc = store_begin(r->store);
		if (rc < 0 && rc != -ENOSPC)
			return fmt_err(err, errlen, rc, "store unavailable: %s", strerror(-rc));
		if (rc == 0) {
			rc = sync_event_queue(r->store, ev, &done->seq, done->event_id);
			if (rc == 0 && set_status)
				rc = store_incident_set_status(r->store, ev->incident_id,
				                               (enum store_local_status)ev->status,
				                               ev->at_ms);
			if (rc == 0)
				rc = store_audit_add(r->store, audit, subject, detail, ev->at_ms);
			if (rc == 0)
				rc = store_commit(r->store);
			else
				store_rollback(r->store);
		}
		int64_t dropped = 0;
		if (rc != -ENOSPC || attempt > 0 || store_make_room(r->store, &dropped) <= 0)
			break;
		if (dropped)
			log_warnx("disk full: %lld stored fixes dropped to queue an action",
			          (long long)dropped);
	}
	if (rc < 0)
		return fmt_err(err, errlen, rc, "%s: nothing was queued",
		               rc == -ENOSPC ? "the disk is full" : "the store failed");
	done->changed = 1;
	return 0;
}

int responder_set_status(struct responder *r, const char *id, enum proto_status next,
                         const char *text, struct responder_done *done, char *err, size_t errlen)
{
	struct store_incident inc;
	int rc;
	memset(done, 0, sizeof(*done));
	if ((rc = check_id(id, err, errlen)) < 0)
		return rc;
	if (next <= PROTO_STATUS_NONE || next > PROTO_STATUS_DECLINED)
		return fmt_err(err, errlen, -EINVAL, "not a status a responder can set");
	if (text && !responder_text_valid(text))
		return fmt_err(err, errlen, -EINVAL,
		               "text must be UTF-8 without control characters, at most %d bytes",
		               PROTO_TEXT_MAX);
	if ((rc = get_incident(r, id, &inc, err, errlen)) < 0)
		return rc;
	enum proto_dispatch_state state = (enum proto_dispatch_state)inc.dispatch_state;
	enum proto_status cur = (enum proto_status)inc.local_status;
	int64_t version = inc.version;
	store_incident_clear(&inc);
	switch (proto_status_check(state, cur, next)) {
	case PROTO_SAME:
		return 0;
	case PROTO_CONFLICT:
		if (state != PROTO_STATE_ASSIGNED)
			return fmt_err(err, errlen, -EPERM,
			               "incident %s is %s: no more status changes", id,
			               proto_state_name(state));
		return fmt_err(err, errlen, -EPERM, "incident %s: %s cannot follow %s", id,
		               proto_status_name(next), responder_local_status_name((int)cur));
	case PROTO_ACCEPT:
		break;
	}
	struct proto_event ev = {
	    .type = PROTO_EV_STATUS, .incident_version = version, .status = next, .text = text};
	snprintf(ev.incident_id, sizeof(ev.incident_id), "%s", id);
	responder_stamp(r, &ev);
	return commit_action(r, &ev, 1, STORE_AUDIT_STATUS, id, proto_status_name(next), done, err,
	                     errlen);
}

int responder_note(struct responder *r, const char *id, const char *text,
                   struct responder_done *done, char *err, size_t errlen)
{
	struct store_incident inc;
	int rc;
	memset(done, 0, sizeof(*done));
	if ((rc = check_id(id, err, errlen)) < 0)
		return rc;
	if (!text || !text[0] || !responder_text_valid(text))
		return fmt_err(err, errlen, -EINVAL,
		               "a note is 1 to %d bytes of UTF-8 without control characters",
		               PROTO_TEXT_MAX);
	if ((rc = get_incident(r, id, &inc, err, errlen)) < 0)
		return rc;
	struct proto_event ev = {
	    .type = PROTO_EV_NOTE, .incident_version = inc.version, .text = text};
	store_incident_clear(&inc);
	snprintf(ev.incident_id, sizeof(ev.incident_id), "%s", id);
	responder_stamp(r, &ev);
	return commit_action(r, &ev, 0, STORE_AUDIT_NOTE, id, "note", done, err, errlen);
}

int responder_sos(struct responder *r, const char *text, struct responder_done *done, char *err,
                  size_t errlen)
{
	memset(done, 0, sizeof(*done));
	if (text && !responder_text_valid(text))
		return fmt_err(err, errlen, -EINVAL,
		               "text must be UTF-8 without control characters, at most %d bytes",
		               PROTO_TEXT_MAX);
	struct proto_event ev = {.type = PROTO_EV_SOS, .text = text && text[0] ? text : NULL};
	responder_stamp(r, &ev);
	return commit_action(r, &ev, 0, STORE_AUDIT_NOTE, "sos", "sos", done, err, errlen);
}

/* ---- views ---- */

static int add_distance(struct responder *r, cJSON *o, const struct proto_incident *pi)
{
	double d;
	int b;
	if (!r->track)
		return 0;
	int32_t lat = (int32_t)(pi->lat * 1e7 + (pi->lat >= 0 ? 0.5 : -0.5));
	int32_t lon = (int32_t)(pi->lon * 1e7 + (pi->lon >= 0 ? 0.5 : -0.5));
	if (track_to(r->track, lat, lon, &d, &b) < 0)
		return 0;
	if (!cJSON_AddNumberToObject(o, "distance_m", (double)(int64_t)(d + 0.5)) ||
	    !cJSON_AddNumberToObject(o, "bearing_deg", b))
		return -ENOMEM;
	return 0;
}

/* The statuses the contract's rules accept next, so that a client (the
 * touch UI) offers exactly those and never carries its own copy of them. */
static int add_allowed(cJSON *o, const struct store_incident *inc)
{
	cJSON *arr = cJSON_AddArrayToObject(o, "allowed");
	if (!arr)
		return -ENOMEM;
	for (int s = PROTO_STATUS_ACKNOWLEDGED; s <= PROTO_STATUS_DECLINED; s++) {
		if (proto_status_check((enum proto_dispatch_state)inc->dispatch_state,
		                       (enum proto_status)inc->local_status,
		                       (enum proto_status)s) != PROTO_ACCEPT)
			continue;
		cJSON *n = cJSON_CreateString(proto_status_name((enum proto_status)s));
		if (!n || !cJSON_AddItemToArray(arr, n)) {
			cJSON_Delete(n);
			return -ENOMEM;
		}
	}
	return 0;
}

static cJSON *summary_of(struct responder *r, const struct store_incident *inc)
{
	struct proto_incident pi;
	char at[32];
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	int parsed =
	    proto_incident_parse((const char *)inc->payload, inc->payload_len, &pi, NULL, 0) == 0;
	int ok =
	    cJSON_AddStringToObject(o, "id", inc->id) &&
	    cJSON_AddNumberToObject(o, "version", (double)inc->version) &&
	    cJSON_AddStringToObject(
	        o, "state", proto_state_name((enum proto_dispatch_state)inc->dispatch_state)) &&
	    cJSON_AddStringToObject(o, "status", responder_local_status_name(inc->local_status)) &&
	    add_allowed(o, inc) == 0;
	if (ok && parsed) {
		proto_time_format(pi.reported_at_ms, at);
		ok = cJSON_AddStringToObject(o, "category", proto_category_name(pi.category)) &&
		     cJSON_AddNumberToObject(o, "priority", pi.priority) &&
		     cJSON_AddBoolToObject(o, "silent", pi.silent) &&
		     cJSON_AddStringToObject(o, "alert", pi.silent ? "none" : "audible") &&
		     cJSON_AddStringToObject(o, "reported_at", at) && add_distance(r, o, &pi) == 0;
	}
	if (ok && !parsed)
		ok = cJSON_AddBoolToObject(o, "damaged", 1) != NULL;
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static int list_one(void *arg, const struct store_incident *inc)
{
	void **a = arg;
	cJSON *e = summary_of(a[0], inc);
	if (!e || !cJSON_AddItemToArray(a[1], e)) {
		cJSON_Delete(e);
		return -ENOMEM;
	}
	return 0;
}

int responder_list(struct responder *r, cJSON **out)
{
	cJSON *arr = cJSON_CreateArray();
	if (!arr)
		return -ENOMEM;
	void *a[2] = {r, arr};
	int rc = store_incident_each(r->store, list_one, a);
	if (rc < 0) {
		cJSON_Delete(arr);
		return rc;
	}
	*out = arr;
	return 0;
}

int responder_summary(struct responder *r, const char *id, cJSON **out)
{
	struct store_incident inc;
	if (!id || !proto_id_valid(id))
		return -EINVAL;
	int rc = store_incident_get(r->store, id, &inc);
	if (rc < 0)
		return rc;
	*out = summary_of(r, &inc);
	store_incident_clear(&inc);
	return *out ? 0 : -ENOMEM;
}

int responder_show(struct responder *r, const char *id, cJSON **out, char *err, size_t errlen)
{
	struct store_incident inc;
	int rc;
	if ((rc = check_id(id, err, errlen)) < 0)
		return rc;
	if ((rc = get_incident(r, id, &inc, err, errlen)) < 0)
		return rc;
	cJSON *o = cJSON_CreateObject();
	cJSON *doc = proto_json_parse(inc.payload, inc.payload_len);
	cJSON *local = summary_of(r, &inc);
	char ended[32];
	int ok = o && doc && local;
	if (ok && inc.ended_ms > 0) {
		proto_time_format(inc.ended_ms, ended);
		ok = cJSON_AddStringToObject(local, "ended_at", ended) != NULL;
	}
	if (ok) {
		cJSON_AddItemToObject(o, "incident", doc);
		cJSON_AddItemToObject(o, "local", local);
		doc = local = NULL;
	}
	store_incident_clear(&inc);
	cJSON_Delete(doc);
	cJSON_Delete(local);
	if (!ok) {
		cJSON_Delete(o);
		return fmt_err(err, errlen, -ENOMEM, "out of memory");
	}
	store_audit_add(r->store, STORE_AUDIT_VIEWED, id, NULL, loop_wall_ms());
	*out = o;
	return 0;
}

static int active_one(void *arg, const struct store_incident *inc)
{
	(void)arg;
	if (inc->dispatch_state == STORE_DISPATCH_ASSIGNED &&
	    !proto_status_final((enum proto_status)inc->local_status))
		return 1;
	return 0;
}

int responder_any_active(struct responder *r)
{
	return store_incident_each(r->store, active_one, NULL) == 1;
}

/* The control socket's method table (ctl_methods.h). */
#include "agent/ctl_methods.h"

#include "agent/hw.h"
#include "agent/loop.h"
#include "agent/store.h"
#include "agent/track.h"
#include "hal/gps.h"
#include "sync/sync.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define METHOD(name)                                                                               \
	static int name(void *arg, struct ctl_client *c, const struct ctl_peer *peer,              \
	                const cJSON *params, cJSON **result, const char **code, char *msg,         \
	                size_t msglen)
#define UNUSED_ARGS                                                                                \
	do {                                                                                       \
		(void)c;                                                                           \
		(void)peer;                                                                        \
	} while (0)

/* Only the named keys may appear. */
static int only_keys(const cJSON *params, const char *const *keys, const char **code, char *msg,
                     size_t msglen)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, params)
	{
		int known = 0;
		for (size_t i = 0; keys && keys[i]; i++)
			if (it->string && strcmp(it->string, keys[i]) == 0)
				known = 1;
		if (!known) {
			*code = "bad_request";
			snprintf(msg, msglen, "unknown parameter");
			return -EINVAL;
		}
	}
	return 0;
}

/* A string parameter: required or optional, bounded. */
static int str_param(const cJSON *params, const char *key, int required, size_t max,
                     const char **out, const char **code, char *msg, size_t msglen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
	*out = NULL;
	if (!v) {
		if (!required)
			return 0;
		*code = "bad_request";
		snprintf(msg, msglen, "%s is required", key);
		return -EINVAL;
	}
	if (!cJSON_IsString(v) || strlen(v->valuestring) > max) {
		*code = "bad_request";
		snprintf(msg, msglen, "%s must be a string of at most %zu bytes", key, max);
		return -EINVAL;
	}
	*out = v->valuestring;
	return 0;
}

static int refuse_locked(struct ctlm *m, const char **code, char *msg, size_t msglen)
{
	if (m->wiping) {
		*code = "failed";
		snprintf(msg, msglen, "this device is being wiped");
		return -ESHUTDOWN;
	}
	if (m->locked) {
		*code = "locked";
		snprintf(msg, msglen, "the device is locked: unlock it first");
		return -EACCES;
	}
	return 0;
}

static const char *code_for(int rc)
{
	switch (rc) {
	case -ENOENT:
		return "not_found";
	case -EPERM:
		return "conflict";
	case -EINVAL:
		return "bad_request";
	case -ENOSPC:
		return "disk_full";
	default:
		return "failed";
	}
}

void ctlm_publish(struct ctlm *m, const char *name, cJSON *data)
{
	if (!data)
		data = cJSON_CreateObject();
	if (m->ctl && data)
		ctl_publish(m->ctl, name, data);
	cJSON_Delete(data);
}

void ctlm_publish_incident(struct ctlm *m, const char *id, const char *why)
{
	cJSON *s = NULL;
	if (!m->ctl || m->locked || responder_summary(&m->resp, id, &s) < 0)
		return;
	cJSON_AddStringToObject(s, "why", why);
	ctlm_publish(m, "incident", s);
}

int ctlm_load(struct ctlm *m)
{
	char buf[PROTO_ID_MAX + 1];
	size_t len = 0;
	m->locked =
	    store_state_get(m->resp.store, CTLM_STATE_LOCKED, buf, sizeof(buf), &len) == 0 &&
	    len == 1 && buf[0] == '1';
	if (store_state_get(m->resp.store, SYNC_KEY_UNIT, buf, sizeof(buf) - 1, &len) == 0) {
		buf[len] = 0;
		snprintf(m->unit, sizeof(m->unit), "%s", buf);
	}
	return 0;
}

int ctlm_set_locked(struct ctlm *m, int locked)
{
	int rc = locked ? store_state_set(m->resp.store, CTLM_STATE_LOCKED, "1", 1)
	                : store_state_del(m->resp.store, CTLM_STATE_LOCKED);
	if (rc == -ENOENT)
		rc = 0;
	if (rc < 0)
		return rc;
	m->locked = locked;
	store_audit_add(m->resp.store, STORE_AUDIT_COMMAND, locked ? "lock" : "unlock", NULL,
	                loop_wall_ms());
	cJSON *d = cJSON_CreateObject();
	cJSON_AddBoolToObject(d, "locked", locked);
	ctlm_publish(m, "lock", d);
	return 0;
}

static int add_time(cJSON *o, const char *key, int64_t ms)
{
	char t[32];
	if (ms <= 0)
		return cJSON_AddNullToObject(o, key) != NULL;
	proto_time_format(ms, t);
	return cJSON_AddStringToObject(o, key, t) != NULL;
}

cJSON *ctlm_status(struct ctlm *m)
{
	int64_t nev = 0, npos = 0, nrej = 0, ninc = 0;
	struct store *st = m->resp.store;
	store_outbox_count(st, &nev);
	store_pos_count(st, &npos);
	store_rejected_count(st, &nrej);
	store_incident_count(st, &ninc);
	cJSON *o = cJSON_CreateObject(), *q, *fix;
	int ok = o != NULL;
	ok = ok && cJSON_AddStringToObject(o, "version", ESS_VERSION) &&
	     cJSON_AddStringToObject(o, "unit", m->unit) &&
	     cJSON_AddBoolToObject(o, "enrolled", m->unit[0] != 0) &&
	     cJSON_AddBoolToObject(o, "syncing", m->sync && !sync_stopped(m->sync)) &&
	     cJSON_AddBoolToObject(o, "online", m->sync && sync_online(m->sync)) &&
	     add_time(o, "last_sync", m->sync ? sync_last_success_ms(m->sync) : 0) &&
	     add_time(o, "backoff_until", m->sync ? sync_backoff_until_ms(m->sync) : 0) &&
	     (q = cJSON_AddObjectToObject(o, "queue")) &&
	     cJSON_AddNumberToObject(q, "events", (double)nev) &&
	     cJSON_AddNumberToObject(q, "positions", (double)npos) &&
	     cJSON_AddNumberToObject(q, "rejected", (double)nrej) &&
	     cJSON_AddNumberToObject(o, "incidents", (double)ninc) &&
	     cJSON_AddBoolToObject(o, "locked", m->locked) &&
	     cJSON_AddBoolToObject(o, "wiping", m->wiping) &&
	     cJSON_AddBoolToObject(o, "disk_full", m->disk_full) &&
	     cJSON_AddNumberToObject(o, "uptime_s",
	                             (double)((loop_now_ms() - m->started_mono_ms) / 1000));
	struct hal_gps_fix f;
	enum track_clock clk = TRACK_CLOCK_UNSYNCED;
	if (m->resp.track)
		clk = track_clock_state(m->resp.track);
	else if (track_ntp_synced())
		clk = TRACK_CLOCK_SYSTEM;
	ok = ok && cJSON_AddStringToObject(o, "clock", track_clock_str(clk));
	if (ok && m->resp.track && track_last_fix(m->resp.track, &f) == 0) {
		ok = (fix = cJSON_AddObjectToObject(o, "last_fix")) && add_time(fix, "t", f.t_ms) &&
		     cJSON_AddNumberToObject(fix, "lat", f.lat_e7 / 1e7) &&
		     cJSON_AddNumberToObject(fix, "lon", f.lon_e7 / 1e7) &&
		     (f.accuracy_dm >= 0
		          ? cJSON_AddNumberToObject(fix, "accuracy_m", f.accuracy_dm / 10.0)
		          : cJSON_AddNullToObject(fix, "accuracy_m")) &&
		     cJSON_AddNumberToObject(fix, "age_s",
		                             (double)((loop_now_ms() - f.mono_ms) / 1000)) &&
		     /* the touch UI turns its bearing arrow heading-up while moving */
		     (f.speed_cm_s >= 0
		          ? cJSON_AddNumberToObject(fix, "speed_m_s", f.speed_cm_s / 100.0)
		          : cJSON_AddNullToObject(fix, "speed_m_s")) &&
		     (f.heading_cdeg >= 0
		          ? cJSON_AddNumberToObject(fix, "track_deg", f.heading_cdeg / 100.0)
		          : cJSON_AddNullToObject(fix, "track_deg"));
	} else if (ok) {
		ok = cJSON_AddNullToObject(o, "last_fix") != NULL;
	}
	if (ok) {
		struct hal_gps_stats gs = {0};
		if (m->gps)
			hal_gps_stats(m->gps, &gs);
		ok = cJSON_AddBoolToObject(o, "gps_connected", gs.connected) != NULL;
	}
	if (ok && m->hw) {
		cJSON *hwo = hw_status(m->hw, track_clock_str(clk));
		ok = hwo && cJSON_AddItemToObject(o, "hardware", hwo);
	}
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

METHOD(m_status)
{
	UNUSED_ARGS;
	struct ctlm *m = arg;
	int rc = only_keys(params, NULL, code, msg, msglen);
	if (rc < 0)
		return rc;
	if (!(*result = ctlm_status(m))) {
		snprintf(msg, msglen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

METHOD(m_list)
{
	UNUSED_ARGS;
	struct ctlm *m = arg;
	cJSON *arr;
	int rc = only_keys(params, NULL, code, msg, msglen);
	if (rc < 0 || (rc = refuse_locked(m, code, msg, msglen)) < 0)
		return rc;
	if ((rc = responder_list(&m->resp, &arr)) < 0) {
		snprintf(msg, msglen, "reading incidents: %s", strerror(-rc));
		return rc;
	}
	*result = cJSON_CreateObject();
	if (!*result) {
		cJSON_Delete(arr);
		return -ENOMEM;
	}
	cJSON_AddItemToObject(*result, "incidents", arr);
	return 0;
}

static const char *const k_id[] = {"id", NULL};

METHOD(m_show)
{
	UNUSED_ARGS;
	struct ctlm *m = arg;
	const char *id;
	int rc = only_keys(params, k_id, code, msg, msglen);
	if (rc < 0 || (rc = refuse_locked(m, code, msg, msglen)) < 0 ||
	    (rc = str_param(params, "id", 1, PROTO_ID_MAX, &id, code, msg, msglen)) < 0)
		return rc;
	if ((rc = responder_show(&m->resp, id, result, msg, msglen)) < 0)
		*code = code_for(rc);
	return rc;
}

void ctlm_set_disk_full(struct ctlm *m, int full)
{
	if (m->disk_full == full)
		return;
	m->disk_full = full;
	cJSON *o = cJSON_CreateObject();
	if (o)
		cJSON_AddBoolToObject(o, "full", full);
	ctlm_publish(m, "disk", o);
}

static int done_result(struct ctlm *m, int rc, const char *id, const struct responder_done *d,
                       cJSON **result, const char **code)
{
	if (rc < 0) {
		*code = code_for(rc);
		if (rc == -ENOSPC && m->disk_full_met) /* told now, not at a flush tick */
			m->disk_full_met(m->changed_arg);
		else if (rc == -ENOSPC)
			ctlm_set_disk_full(m, 1);
		return rc;
	}
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return -ENOMEM;
	cJSON_AddBoolToObject(o, "queued", d->changed);
	if (d->changed) {
		cJSON_AddNumberToObject(o, "seq", (double)d->seq);
		cJSON_AddStringToObject(o, "event_id", d->event_id);
		if (m->sync)
			sync_kick(m->sync);
		if (id)
			ctlm_publish_incident(m, id, "local");
		if (m->changed)
			m->changed(m->changed_arg);
	}
	*result = o;
	return 0;
}

METHOD(m_ack)
{
	UNUSED_ARGS;
	struct ctlm *m = arg;
	const char *id;
	struct responder_done d;
	int rc = only_keys(params, k_id, code, msg, msglen);
	if (rc < 0 || (rc = refuse_locked(m, code, msg, msglen)) < 0 ||
	    (rc = str_param(params, "id", 1, PROTO_ID_MAX, &id, code, msg, msglen)) < 0)
		return rc;
	rc = responder_set_status(&m->resp, id, PROTO_STATUS_ACKNOWLEDGED, NULL, &d, msg, msglen);
	return done_result(m, rc, id, &d, result, code);
}

METHOD(m_set)
{
	UNUSED_ARGS;
	static const char *const keys[] = {"id", "status", "text", NULL};
	struct ctlm *m = arg;
	const char *id, *status, *text;
	enum proto_status st;
	struct responder_done d;
	int rc = only_keys(params, keys, code, msg, msglen);
	if (rc < 0 || (rc = refuse_locked(m, code, msg, msglen)) < 0 ||
	    (rc = str_param(params, "id", 1, PROTO_ID_MAX, &id, code, msg, msglen)) < 0 ||
	    (rc = str_param(params, "status", 1, 32, &status, code, msg, msglen)) < 0 ||
	    (rc = str_param(params, "text", 0, PROTO_TEXT_MAX, &text, code, msg, msglen)) < 0)
		return rc;
	if (proto_status_parse(status, &st) < 0 || st == PROTO_STATUS_NONE) {
		*code = "bad_request";
		snprintf(msg, msglen,
		         "status must be one of acknowledged, en_route, on_scene, resolved, "
		         "referred, unable_to_locate, declined");
		return -EINVAL;
	}
	rc = responder_set_status(&m->resp, id, st, text, &d, msg, msglen);
	return done_result(m, rc, id, &d, result, code);
}

METHOD(m_note)
{
	UNUSED_ARGS;
	static const char *const keys[] = {"id", "text", NULL};
	struct ctlm *m = arg;
	const char *id, *text;
	struct responder_done d;
	int rc = only_keys(params, keys, code, msg, msglen);
	if (rc < 0 || (rc = refuse_locked(m, code, msg, msglen)) < 0 ||
	    (rc = str_param(params, "id", 1, PROTO_ID_MAX, &id, code, msg, msglen)) < 0 ||
	    (rc = str_param(params, "text", 1, PROTO_TEXT_MAX, &text, code, msg, msglen)) < 0)
		return rc;
	rc = responder_note(&m->resp, id, text, &d, msg, msglen);
	return done_result(m, rc, id, &d, result, code);
}

METHOD(m_sos)
{
	UNUSED_ARGS;
	static const char *const keys[] = {"text", NULL};
	struct ctlm *m = arg;
	const char *text;
	struct responder_done d;
	int rc = only_keys(params, keys, code, msg, msglen);
	if (rc < 0 ||
	    (rc = str_param(params, "text", 0, PROTO_TEXT_MAX, &text, code, msg, msglen)) < 0)
		return rc;
	if (m->wiping) {
		*code = "failed";
		snprintf(msg, msglen, "this device is being wiped");
		return -ESHUTDOWN;
	}
	rc = responder_sos(&m->resp, text, &d, msg, msglen);
	if (rc == 0) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "seq", (double)d.seq);
		ctlm_publish(m, "sos", e);
	}
	return done_result(m, rc, NULL, &d, result, code);
}

METHOD(m_sync)
{
	UNUSED_ARGS;
	struct ctlm *m = arg;
	int rc = only_keys(params, NULL, code, msg, msglen);
	if (rc < 0)
		return rc;
	if (!m->sync || sync_stopped(m->sync)) {
		snprintf(msg, msglen, "not syncing (not enrolled, revoked or stopped)");
		return -ENOTCONN;
	}
	store_pos_flush(m->resp.store);
	sync_kick(m->sync);
	*result = cJSON_CreateObject();
	cJSON_AddBoolToObject(*result, "online", sync_online(m->sync));
	return 0;
}

static int rejected_one(void *arg, const struct store_rejected *r)
{
	cJSON *arr = arg, *o = cJSON_CreateObject();
	if (!o)
		return -ENOMEM;
	cJSON *body = proto_json_parse(r->ev.body, r->ev.body_len);
	char at[32];
	proto_time_format(r->rejected_ms, at);
	cJSON_AddNumberToObject(o, "seq", (double)r->ev.seq);
	cJSON_AddStringToObject(o, "event_id", r->ev.event_id);
	cJSON_AddStringToObject(o, "type",
	                        proto_event_type_name((enum proto_event_type)r->ev.type));
	cJSON_AddStringToObject(o, "rejected_at", at);
	cJSON_AddStringToObject(o, "reason", r->reason ? r->reason : "");
	if (body)
		cJSON_AddItemToObject(o, "event", body);
	cJSON_AddItemToArray(arr, o);
	return 0;
}

METHOD(m_rejected)
{
	UNUSED_ARGS;
	struct ctlm *m = arg;
	int rc = only_keys(params, NULL, code, msg, msglen);
	if (rc < 0 || (rc = refuse_locked(m, code, msg, msglen)) < 0)
		return rc;
	cJSON *arr = cJSON_CreateArray();
	if (!arr)
		return -ENOMEM;
	if ((rc = store_rejected_each(m->resp.store, rejected_one, arr)) < 0) {
		cJSON_Delete(arr);
		snprintf(msg, msglen, "reading the rejected list: %s", strerror(-rc));
		return rc;
	}
	*result = cJSON_CreateObject();
	cJSON_AddItemToObject(*result, "rejected", arr);
	return 0;
}

static int lock_method(struct ctlm *m, int locked, const cJSON *params, cJSON **result,
                       const char **code, char *msg, size_t msglen)
{
	int rc = only_keys(params, NULL, code, msg, msglen);
	if (rc < 0)
		return rc;
	if ((rc = ctlm_set_locked(m, locked)) < 0) {
		snprintf(msg, msglen, "storing the lock: %s", strerror(-rc));
		*code = code_for(rc);
		return rc;
	}
	*result = cJSON_CreateObject();
	cJSON_AddBoolToObject(*result, "locked", locked);
	return 0;
}

METHOD(m_lock)
{
	UNUSED_ARGS;
	return lock_method(arg, 1, params, result, code, msg, msglen);
}

METHOD(m_unlock)
{
	UNUSED_ARGS;
	return lock_method(arg, 0, params, result, code, msg, msglen);
}

static const struct ctl_method methods[] = {
    {"status", m_status, 0},     {"list", m_list, 0}, {"show", m_show, 0},     {"ack", m_ack, 0},
    {"set", m_set, 0},           {"note", m_note, 0}, {"sos", m_sos, 0},       {"sync", m_sync, 0},
    {"rejected", m_rejected, 0}, {"lock", m_lock, 0}, {"unlock", m_unlock, 1},
};

const struct ctl_method *ctlm_methods(size_t *n)
{
	*n = sizeof(methods) / sizeof(methods[0]);
	return methods;
}

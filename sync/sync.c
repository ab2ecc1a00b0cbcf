/* The sync engine: four request streams (assignments, events, positions,
 * heartbeat), sharing one connection pool (one HTTP/2 connection over
 * TLS), one backoff and one "not before" gate for the server. Each has at
 * most one request in flight, except events: up to s->window batches, the
 * later ones over incidents the earlier ones do not touch (the lead's
 * decision, docs/device-api.md §9 "Two events batches in flight"). */
#include "sync/sync.h"
#include "agent/config.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "agent/store.h"
#include "sync/backoff.h"
#include "sync/batch.h"
#include "sync/http.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SETERR(...)                                                                                \
	do {                                                                                       \
		if (err)                                                                           \
			snprintf(err, errlen, __VA_ARGS__);                                        \
	} while (0)

#define BACKOFF_BASE_MS 1000
#define BACKOFF_CAP_MS  (5 * 60 * 1000)
#define CURSOR_MAX      1024
#define NO_POLL_EVERY_S 30 /* assignments when long polling is off */

struct sync;
typedef void (*chan_start_fn)(struct sync *s);
struct batch;
struct flight {
	struct sync *s;
	struct batch *b;
	struct http_req *req; /* NULL: the slot is free */
	int skew_retried;
};

/* One request stream. */
struct chan {
	struct sync *s;
	const char *name;
	chan_start_fn start;
	struct http_req *req;
	struct loop_timer *timer;
	int skew_retried; /* this request was already resent after a clock_skew */
	int again;        /* kicked while a request was in flight */
	int regular;      /* the timer is the stream's regular turn (chan_period) */
};

struct sync {
	struct loop *loop;
	struct store *st;
	struct http *http;
	sync_note_fn note;
	sync_status_fn status;
	void *arg;
	char device_id[PROTO_ID_MAX + 1];
	char unit[PROTO_ID_MAX + 1];
	unsigned char server_pk[32];
	char path[PROTO_ID_MAX + 32]; /* /v1/devices/<id> */
	int long_poll_s, heartbeat_s, pos_upload_s, request_timeout_s;
	size_t max_batch, batch_cap;
	int started, stopped, online;
	int64_t last_success_ms; /* unix */
	int64_t gate_ms;         /* monotonic: nothing to the server before */
	int64_t server_gate_ms;  /* monotonic: the part of gate_ms a Retry-After set */
	struct backoff bo;
	struct chan poll, events, pos, hb;
	struct flight fl[SYNC_EVENTS_WINDOW_MAX];
	int window;        /* events batches in flight at most */
	int nflight;       /* now */
	int64_t sent_upto; /* with nflight > 0: every non-SOS event up to this seq
	                    * is in flight (or done) */
	int ev_restart;    /* no new batch until none in flight, then from the start */
	int sent_since_drained;
	struct store_fix *fixes;
	size_t nfixes;
	int64_t pos_token;
	int64_t pos_sent_ms;  /* monotonic: when the last upload started */
	int pos_kicked;       /* the next upload is the one a flush started */
	int pos_by_flush;     /* the upload in flight is */
	int pos_mem;          /* the next (or in-flight) upload is the buffer's */
	int64_t pos_mem_t;    /* …up to this fix time */
	int64_t pos_flush_ms; /* the daemon's trail flush bound */
	struct sync_stats stats;
};

static void notify(struct sync *s, const struct sync_note *n)
{
	if (s->note)
		s->note(s->arg, n);
}

static void notify_kind(struct sync *s, enum sync_note_kind k)
{
	struct sync_note n = {.kind = k};
	notify(s, &n);
}

/* ---- channels and the gate ---- */

static int64_t chan_fire(struct loop *l, void *arg)
{
	(void)l;
	struct chan *c = arg;
	c->timer = NULL; /* freed when this returns; start may make a new one */
	c->start(c->s);
	return -1;
}

static void chan_arm(struct chan *c, int64_t delay_ms, int64_t slack_ms)
{
	if (c->timer)
		loop_timer_set(c->s->loop, c->timer, delay_ms);
	else if (!(c->timer = loop_timer_add(c->s->loop, delay_ms, chan_fire, c)))
		log_warnx("sync: %s: no memory for a timer", c->name);
	if (c->timer)
		loop_timer_set_slack(c->timer, slack_ms);
}

static void chan_schedule(struct chan *c, int64_t delay_ms)
{
	chan_arm(c, delay_ms, 0);
	c->regular = 0;
}

/* The stream's next regular turn (position upload, heartbeat): by period_ms
 * at the latest, in the last stretch before it (the loop's slack), so that
 * it goes out in a wakeup essd has anyway, a GPS report's. */
static void chan_period(struct chan *c, int64_t period_ms)
{
	int64_t slack =
	    period_ms / 4 < LOOP_PERIODIC_SLACK_MS ? period_ms / 4 : LOOP_PERIODIC_SLACK_MS;
	chan_arm(c, period_ms - slack, slack);
	c->regular = 1;
}

/* Whether c may send now; if the gate holds, c is scheduled for when it
 * opens. */
static int chan_ready(struct sync *s, struct chan *c)
{
	if (!s->started || s->stopped)
		return 0;
	if (c->req) {
		c->again = 1;
		return 0;
	}
	int64_t now = loop_now_ms();
	if (s->gate_ms > now) {
		chan_schedule(c, s->gate_ms - now);
		return 0;
	}
	return 1;
}

static void chan_cancel(struct sync *s, struct chan *c)
{
	if (c->req)
		http_cancel(s->http, c->req);
	c->req = NULL;
	if (c->timer)
		loop_timer_cancel(s->loop, c->timer);
	c->timer = NULL;
}

/* The events stream: its timer and every batch in flight. */
static void events_cancel(struct sync *s)
{
	chan_cancel(s, &s->events);
	for (int k = 0; k < SYNC_EVENTS_WINDOW_MAX; k++) {
		if (s->fl[k].req)
			http_cancel(s->http, s->fl[k].req);
		s->fl[k].req = NULL;
	}
	s->nflight = 0;
}

static void set_online(struct sync *s, int online)
{
	if (s->online == online)
		return;
	s->online = online;
	log_info("sync: %s", online ? "online" : "offline");
	/* The trail gathered while offline goes up the moment the link is
	 * back, not at the next upload tick. */
	if (online && s->started && !s->pos.req)
		chan_schedule(&s->pos, 0);
	notify_kind(s, online ? SYNC_NOTE_ONLINE : SYNC_NOTE_OFFLINE);
}

/* A failure: back off, unless a backoff already holds (streams failing
 * together count once). */
static void fail_backoff(struct sync *s)
{
	int64_t now = loop_now_ms();
	if (s->gate_ms > now)
		return;
	int64_t d = backoff_next(&s->bo, randombytes_random());
	s->gate_ms = now + d;
	log_debug("sync: backing off %lld ms", (long long)d);
}

static void stop_syncing(struct sync *s, enum sync_note_kind why)
{
	s->stopped = 1;
	chan_cancel(s, &s->poll);
	events_cancel(s);
	chan_cancel(s, &s->pos);
	chan_cancel(s, &s->hb);
	log_warnx("sync: stopped: %s",
	          why == SYNC_NOTE_REVOKED ? "device revoked" : "unknown device");
	notify_kind(s, why);
}

enum verdict { V_OK, V_RETRY, V_FAIL, V_STOP, V_CLIENT };

static const char *error_code(const struct http_response *r, cJSON **doc)
{
	*doc = proto_json_parse(r->body, r->body_len);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(*doc, "error");
	return cJSON_IsString(e) ? e->valuestring : "";
}

static void keep_clock_offset(struct sync *s, const cJSON *doc)
{
	int64_t offset;
	if (proto_server_clock_offset(doc, &offset) < 0)
		return;
	char text[32];
	int n = snprintf(text, sizeof(text), "%lld", (long long)offset);
	http_set_clock_offset(s->http, offset);
	if (store_state_set(s->st, SYNC_KEY_CLOCK, text, (size_t)n) < 0)
		log_warnx("sync: could not keep the clock offset");
	log_info("sync: clock offset now %lld s", (long long)offset);
}

/* What an answer means for every stream alike. */
static enum verdict judge(struct sync *s, struct chan *c, const struct http_response *r)
{
	s->stats.requests++;
	s->stats.connects += r->new_conns;
	if (r->http_version == 20)
		s->stats.http2++;
	s->stats.bytes_up += r->bytes_up;
	s->stats.bytes_down += r->bytes_down;
	if (r->status == 0) {
		log_debug("sync: %s: %s", c->name, strerror(-r->error));
		set_online(s, 0);
		fail_backoff(s);
		return V_FAIL;
	}
	set_online(s, 1);
	if (r->status >= 200 && r->status < 300) {
		backoff_reset(&s->bo);
		s->last_success_ms = loop_wall_ms();
		return V_OK;
	}
	log_info("sync: %s: HTTP %ld", c->name, r->status);
	if (r->status == 429 || r->status == 503) {
		if (r->retry_after_s >= 0) {
			int64_t until = loop_now_ms() + r->retry_after_s * 1000;
			if (until > s->gate_ms)
				s->gate_ms = until;
			if (until > s->server_gate_ms)
				s->server_gate_ms = until;
		} else {
			fail_backoff(s);
		}
		return V_FAIL;
	}
	if (r->status == 410) {
		stop_syncing(s, SYNC_NOTE_REVOKED);
		return V_STOP;
	}
	if (r->status == 401) {
		cJSON *doc;
		const char *code = error_code(r, &doc);
		enum verdict v = V_FAIL;
		if (strcmp(code, "unknown_device") == 0) {
			stop_syncing(s, SYNC_NOTE_UNKNOWN_DEVICE);
			v = V_STOP;
		} else if (strcmp(code, "clock_skew") == 0 && !c->skew_retried) {
			keep_clock_offset(s, doc);
			c->skew_retried = 1;
			s->stats.clock_skew_retries++;
			v = V_RETRY;
		} else {
			fail_backoff(s);
		}
		cJSON_Delete(doc);
		return v;
	}
	if (r->status >= 500) {
		fail_backoff(s);
		return V_FAIL;
	}
	return V_CLIENT;
}

/* After a request ends: retry, reschedule after the gate, or go on. */
static void after(struct sync *s, struct chan *c, enum verdict v)
{
	if (v == V_STOP || s->stopped)
		return;
	if (v == V_RETRY) {
		chan_schedule(c, 0);
		return;
	}
	c->skew_retried = 0;
	if (v == V_FAIL) {
		int64_t d = s->gate_ms - loop_now_ms();
		chan_schedule(c, d > 0 ? d : 0);
	}
}

/* A signed request to the device's path + suffix for stream c, tracked in
 * *slot (the stream's own, or an events batch's) with cb(arg). A request
 * that cannot start backs off and c tries again after it. */
static int send_signed(struct sync *s, struct chan *c, const char *method, const char *suffix,
                       const void *body, size_t len, unsigned flags, int hold_s, http_done_fn cb,
                       void *arg, struct http_req **slot)
{
	char pq[1400];
	if ((size_t)snprintf(pq, sizeof(pq), "%s%s", s->path, suffix) >= sizeof(pq))
		return -E2BIG;
	int rc = http_request(s->http, method, pq, body, len, flags | HTTP_SIGNED, hold_s, cb, arg,
	                      slot);
	if (rc < 0) {
		*slot = NULL;
		log_warnx("sync: %s: request not started: %s", c->name, strerror(-rc));
		fail_backoff(s);
		after(s, c, V_FAIL);
	}
	return rc;
}

static int chan_send(struct sync *s, struct chan *c, const char *method, const char *suffix,
                     const void *body, size_t len, unsigned flags, int hold_s, http_done_fn cb)
{
	return send_signed(s, c, method, suffix, body, len, flags, hold_s, cb, c, &c->req);
}

static void queue_own_event(struct sync *s, struct proto_event *ev)
{
	struct sync_device_status ds = {.battery_pct = -1, .clock = PROTO_CLOCK_UNSYNCED};
	if (s->status)
		s->status(s->arg, &ds);
	ev->at_ms = loop_wall_ms();
	ev->clock = ds.clock;
	if (ds.has_fix) {
		ev->has_location = 1;
		ev->lat = ds.fix_lat;
		ev->lon = ds.fix_lon;
		ev->accuracy_m = ds.fix_accuracy_m;
	}
}

/* ---- assignments ---- */

static void start_poll(struct sync *s);

struct stored {
	char id[PROTO_ID_MAX + 1];
	int64_t version;
	int silent, is_new;
};

/* Opens and checks one incident envelope: verified with the server key
 * before anything is parsed, then for our unit only. */
static int open_incident(struct sync *s, const cJSON *env, unsigned char **payload, size_t *plen,
                         unsigned char sig[64], struct proto_incident *inc)
{
	char why[128];
	int rc = proto_envelope_open(env, s->server_pk, payload, plen, sig, why, sizeof(why));
	if (rc < 0) {
		s->stats.envelopes_dropped++;
		log_warnx("sync: incident envelope dropped: %s", why);
		return rc;
	}
	rc = proto_incident_parse((const char *)*payload, *plen, inc, why, sizeof(why));
	if (rc == 0 && strcmp(inc->unit, s->unit) != 0) {
		log_warnx("sync: incident %s is for another unit: refused", inc->id);
		rc = -EPERM;
	} else if (rc < 0) {
		log_warnx("sync: signed incident malformed, dropped: %s", why);
	}
	if (rc < 0) {
		s->stats.envelopes_dropped++;
		sodium_memzero(*payload, *plen);
		free(*payload);
		*payload = NULL;
	}
	return rc;
}

static int put_incident(struct sync *s, const struct proto_incident *inc,
                        const unsigned char *payload, size_t plen, const unsigned char sig[64],
                        int with_receipt)
{
	int rc =
	    store_incident_put(s->st, inc->id, inc->version, (enum store_dispatch_state)inc->state,
	                       loop_wall_ms(), payload, plen, sig);
	if (rc < 0 || rc == STORE_PUT_IGNORED || !with_receipt)
		return rc;
	struct proto_event ev = {.type = PROTO_EV_RECEIPT, .incident_version = inc->version};
	strcpy(ev.incident_id, inc->id);
	queue_own_event(s, &ev);
	int r = sync_event_queue(s->st, &ev, NULL, NULL);
	return r < 0 ? r : rc;
}

static int take_assignments(struct sync *s, const struct http_response *r, int *receipts)
{
	cJSON *doc = proto_json_parse(r->body, r->body_len);
	const cJSON *cur = cJSON_GetObjectItemCaseSensitive(doc, "cursor");
	const cJSON *items = cJSON_GetObjectItemCaseSensitive(doc, "items"), *it;
	struct stored *done = NULL;
	size_t ndone = 0;
	int rc = -EBADMSG;
	if (!cJSON_IsString(cur) || strlen(cur->valuestring) > CURSOR_MAX ||
	    !cJSON_IsArray(items)) {
		log_warnx("sync: malformed assignments answer");
		goto out;
	}
	int n = cJSON_GetArraySize(items);
	if (n == 0) {
		/* Every held poll that times out answers nothing new: storing the
		 * same cursor again would cost a transaction and its fsync (a
		 * wakeup) every long_poll_s while idle. */
		char old[CURSOR_MAX + 1];
		size_t olen = 0;
		size_t clen = strlen(cur->valuestring);
		if (store_state_get(s->st, SYNC_KEY_CURSOR, old, CURSOR_MAX, &olen) == 0 &&
		    olen == clen && memcmp(old, cur->valuestring, clen) == 0) {
			rc = 0;
			goto out;
		}
	}
	if (n > 0 && !(done = calloc((size_t)n, sizeof(*done)))) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = store_begin(s->st)) < 0)
		goto out;
	cJSON_ArrayForEach(it, items)
	{
		unsigned char *payload, sig[64];
		size_t plen;
		struct proto_incident inc;
		if (open_incident(s, it, &payload, &plen, sig, &inc) < 0)
			continue;
		rc = put_incident(s, &inc, payload, plen, sig, 1);
		sodium_memzero(payload, plen);
		free(payload);
		if (rc < 0)
			break;
		if (rc != STORE_PUT_IGNORED) {
			struct stored *d = &done[ndone++];
			strcpy(d->id, inc.id);
			d->version = inc.version;
			d->silent = inc.silent;
			d->is_new = rc == STORE_PUT_NEW;
		}
		rc = 0;
	}
	if (rc == 0)
		rc = store_state_set(s->st, SYNC_KEY_CURSOR, cur->valuestring,
		                     strlen(cur->valuestring));
	if (rc == 0)
		rc = store_commit(s->st);
	else
		store_rollback(s->st);
	if (rc < 0) {
		log_warnx("sync: storing assignments: %s", strerror(-rc));
		goto out;
	}
	s->stats.incidents_stored += ndone;
	*receipts = ndone > 0;
	for (size_t i = 0; i < ndone; i++) {
		struct sync_note note = {.kind = SYNC_NOTE_INCIDENT,
		                         .id = done[i].id,
		                         .version = done[i].version,
		                         .silent = done[i].silent,
		                         .is_new = done[i].is_new};
		log_info("sync: incident %s version %lld stored", done[i].id,
		         (long long)done[i].version);
		notify(s, &note);
	}
out:
	free(done);
	cJSON_Delete(doc);
	return rc;
}

static void on_poll(void *arg, const struct http_response *r)
{
	struct chan *c = arg;
	struct sync *s = c->s;
	c->req = NULL;
	enum verdict v = judge(s, c, r);
	int receipts = 0;
	if (v == V_OK) {
		if (take_assignments(s, r, &receipts) < 0) {
			fail_backoff(s);
			v = V_FAIL;
		}
	} else if (v == V_CLIENT) {
		fail_backoff(s);
		v = V_FAIL;
	}
	after(s, c, v);
	if (v == V_OK) {
		if (s->long_poll_s > 0)
			chan_schedule(c, 0);
		else
			chan_period(c, NO_POLL_EVERY_S * 1000);
		if (receipts)
			sync_kick(s);
	}
}

static void escape(const char *in, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (; *in && o + 4 < cap; in++) {
		unsigned char ch = (unsigned char)*in;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = 0;
}

static void start_poll(struct sync *s)
{
	struct chan *c = &s->poll;
	if (!chan_ready(s, c))
		return;
	char cursor[CURSOR_MAX + 1], esc[3 * CURSOR_MAX + 1], q[3 * CURSOR_MAX + 64];
	size_t len = 0;
	int rc = store_state_get(s->st, SYNC_KEY_CURSOR, cursor, CURSOR_MAX, &len);
	if (rc == 0) {
		cursor[len] = 0;
		escape(cursor, esc, sizeof(esc));
		snprintf(q, sizeof(q), "/assignments?after=%s&wait=%d", esc, s->long_poll_s);
	} else {
		snprintf(q, sizeof(q), "/assignments?wait=%d", s->long_poll_s);
	}
	chan_send(s, c, "GET", q, NULL, 0, 0, s->long_poll_s, on_poll);
}

/* ---- events ---- */

static void start_events(struct sync *s);

struct peek_ctx {
	struct sync *s;
	struct batch *b;
	int64_t bad[16];
	size_t nbad;
	int64_t last_seq; /* the last non-SOS event looked at */
};

static int in_flight_seq(struct sync *s, int64_t seq)
{
	for (int k = 0; k < s->window; k++) {
		struct flight *f = &s->fl[k];
		if (!f->req)
			continue;
		for (size_t i = 0, n = batch_count(f->b); i < n; i++)
			if (batch_seq(f->b, i) == seq)
				return 1;
	}
	return 0;
}

/* The lead's rule for a second batch in flight (docs/device-api.md §9):
 * it may hold no event of an incident that has an event in a batch still
 * unacknowledged. Status rules are per incident, so batches over disjoint
 * incidents commute: the server may apply them in either order, or one
 * after the other failed and was resent, with the same outcome. */
static int waits_for_flight(struct sync *s, uint64_t key)
{
	for (int k = 0; k < s->window; k++)
		if (s->fl[k].req && batch_conflicts(s->fl[k].b, key))
			return 1;
	return 0;
}

static int peek_event(void *arg, const struct store_event *ev)
{
	struct peek_ctx *p = arg;
	struct sync *s = p->s;
	if (s->nflight) {
		/* SOS events are read again each time (they come first); those
		 * already in flight are not sent twice at once. */
		if (ev->type == STORE_EVENT_SOS && in_flight_seq(s, ev->seq))
			return 0;
		/* cut in seq order at the first event that must wait */
		if (waits_for_flight(s, batch_incident_key((int)ev->type, ev->body, ev->body_len)))
			return 1;
	}
	int rc = batch_add(p->b, ev);
	if (rc == -ENOSPC)
		return 1;
	if (rc == -EINVAL && p->nbad < 16)
		p->bad[p->nbad++] = ev->seq;
	if (rc == -EINVAL && p->nbad >= 16)
		return 1; /* the rest after these are rejected */
	if (ev->type != STORE_EVENT_SOS)
		p->last_seq = ev->seq;
	return rc == -ENOMEM ? rc : 0;
}

static void reject_locally(struct sync *s, int64_t seq, const char *reason)
{
	int rc = store_outbox_reject(s->st, seq, reason, loop_wall_ms());
	if (rc < 0) {
		log_warnx("sync: event %lld: keeping the rejection failed: %s", (long long)seq,
		          strerror(-rc));
		return;
	}
	s->stats.events_rejected++;
	log_warnx("sync: event %lld rejected locally", (long long)seq);
	struct sync_note n = {.kind = SYNC_NOTE_REJECTED, .seq = seq, .reason = reason};
	notify(s, &n);
}

static void send_batch(struct flight *f);

/* One result per event, in order; processing stops at the first that does
 * not match its event: the rest stay queued and go again. */
static int take_results(struct sync *s, struct batch *b, const struct http_response *r)
{
	cJSON *doc = proto_json_parse(r->body, r->body_len);
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(doc, "results"), *it;
	size_t n = batch_count(b), i = 0, nd = 0;
	int64_t *delivered = calloc(n ? n : 1, sizeof(*delivered));
	struct {
		enum sync_note_kind kind;
		int64_t seq;
		const char *reason;
		char id[PROTO_ID_MAX + 1];
		int64_t version;
	} *notes = calloc(n ? n : 1, sizeof(*notes));
	size_t nn = 0;
	int rc = -EBADMSG;
	if (!cJSON_IsArray(res)) {
		log_warnx("sync: malformed events answer");
		goto out;
	}
	if (!delivered || !notes) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = store_begin(s->st)) < 0)
		goto out;
	cJSON_ArrayForEach(it, res)
	{
		if (i >= n)
			break;
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "event_id");
		const cJSON *result = cJSON_GetObjectItemCaseSensitive(it, "result");
		const cJSON *reason = cJSON_GetObjectItemCaseSensitive(it, "reason");
		const char *why = cJSON_IsString(reason) ? reason->valuestring : "";
		int64_t seq = batch_seq(b, i);
		if (!cJSON_IsString(id) || !cJSON_IsString(result) ||
		    strcmp(id->valuestring, batch_event_id(b, i)) != 0) {
			log_warnx("sync: result %zu does not match its event", i);
			break;
		}
		const char *v = result->valuestring;
		if (strcmp(v, "accepted") == 0 || strcmp(v, "duplicate") == 0) {
			delivered[nd++] = seq;
		} else if (strcmp(v, "conflict") == 0) {
			unsigned char *payload, sig[64];
			size_t plen;
			struct proto_incident inc;
			delivered[nd++] = seq;
			s->stats.events_conflict++;
			notes[nn].kind = SYNC_NOTE_CONFLICT;
			notes[nn].seq = seq;
			notes[nn].reason = why;
			const cJSON *env = cJSON_GetObjectItemCaseSensitive(it, "incident");
			if (env && open_incident(s, env, &payload, &plen, sig, &inc) == 0) {
				rc = put_incident(s, &inc, payload, plen, sig, 0);
				sodium_memzero(payload, plen);
				free(payload);
				if (rc < 0)
					break;
				strcpy(notes[nn].id, inc.id);
				notes[nn].version = inc.version;
			}
			nn++;
		} else if (strcmp(v, "rejected") == 0) {
			if ((rc = store_outbox_reject(s->st, seq, why, loop_wall_ms())) < 0)
				break;
			s->stats.events_rejected++;
			notes[nn].kind = SYNC_NOTE_REJECTED;
			notes[nn].seq = seq;
			notes[nn].reason = why;
			nn++;
		} else {
			log_warnx("sync: event %lld: unknown result", (long long)seq);
			break;
		}
		rc = 0;
		i++;
	}
	if (rc == 0 && nd)
		rc = store_outbox_delivered(s->st, delivered, nd);
	if (rc == 0)
		rc = store_commit(s->st);
	else
		store_rollback(s->st);
	if (rc < 0) {
		log_warnx("sync: storing event results: %s", strerror(-rc));
		goto out;
	}
	s->stats.events_delivered += nd;
	for (size_t k = 0; k < nn; k++) {
		struct sync_note note = {.kind = notes[k].kind,
		                         .seq = notes[k].seq,
		                         .reason = notes[k].reason,
		                         .id = notes[k].id[0] ? notes[k].id : NULL,
		                         .version = notes[k].version};
		log_info("sync: event %lld %s", (long long)notes[k].seq,
		         notes[k].kind == SYNC_NOTE_CONFLICT ? "in conflict" : "rejected");
		notify(s, &note);
	}
	rc = i == n ? 0 : -EBADMSG;
out:
	free(delivered);
	free(notes);
	cJSON_Delete(doc);
	return rc;
}

/* A batch failed, was split or half answered: its events go again, so no
 * new batch is cut until every batch in flight has ended; the next one is
 * then read from the start of the outbox (sent_upto forgotten). */
static void events_restart(struct sync *s)
{
	s->ev_restart = 1;
}

static void on_events(void *arg, const struct http_response *r)
{
	struct flight *f = arg;
	struct sync *s = f->s;
	struct chan *c = &s->events;
	f->req = NULL;
	s->nflight--;
	c->skew_retried = f->skew_retried;
	enum verdict v = judge(s, c, r);
	f->skew_retried = c->skew_retried;
	if (v == V_RETRY) {
		send_batch(f); /* the same events, signed again */
		return;
	}
	f->skew_retried = 0;
	c->skew_retried = 0;
	if (v == V_STOP || s->stopped)
		return;
	if (v == V_CLIENT) {
		size_t n = batch_count(f->b);
		events_restart(s);
		if (r->status != 413 && r->status != 400) {
			fail_backoff(s);
			after(s, c, V_FAIL);
			return;
		}
		if (n > 1) { /* split: the first half goes next, from the start */
			s->batch_cap = n / 2;
			log_info("sync: events: HTTP %ld, sending %zu", r->status, n / 2);
		} else {
			reject_locally(s, batch_seq(f->b, 0),
			               r->status == 413
			                   ? "too_large (HTTP 413 for this event alone)"
			                   : "bad_request (HTTP 400 for this event alone)");
		}
		chan_schedule(c, 0);
		return;
	}
	if (v == V_OK && take_results(s, f->b, r) < 0) {
		fail_backoff(s);
		v = V_FAIL;
	}
	if (v != V_OK)
		events_restart(s);
	after(s, c, v);
	if (v == V_OK)
		start_events(s);
}

static void send_batch(struct flight *f)
{
	struct sync *s = f->s;
	size_t len;
	const char *json = batch_json(f->b, &len);
	s->sent_since_drained = 1;
	if (send_signed(s, &s->events, "POST", "/events", json, len, HTTP_GZIP, 0, on_events, f,
	                &f->req) < 0) {
		events_restart(s);
		return;
	}
	s->stats.events_batches++;
	if (s->nflight)
		s->stats.events_overlap++;
	s->nflight++;
	if ((uint64_t)s->nflight > s->stats.events_max_flight)
		s->stats.events_max_flight = (uint64_t)s->nflight;
}

/* Cuts and sends batches while the window has room: the first from the
 * start of the outbox (SOS first, then seq order), each further one from
 * just past the last event in flight, cut where an event must wait. */
static void start_events(struct sync *s)
{
	struct chan *c = &s->events;
	if (!chan_ready(s, c))
		return;
	c->again = 0;
	if (s->nflight == 0) {
		s->ev_restart = 0;
		s->sent_upto = 0;
	}
	while (!s->ev_restart && s->nflight < s->window) {
		struct flight *f = NULL;
		for (int k = 0; k < s->window && !f; k++)
			if (!s->fl[k].req)
				f = &s->fl[k];
		if (!f)
			return;
		struct peek_ctx p = {.s = s, .b = f->b, .last_seq = s->sent_upto};
		batch_reset(f->b, s->batch_cap);
		int rc = store_outbox_peek_after(
		    s->st, s->sent_upto, s->batch_cap + (size_t)s->window * PROTO_MAX_EVENTS,
		    peek_event, &p);
		for (size_t i = 0; i < p.nbad; i++)
			reject_locally(s, p.bad[i], "malformed event body (agent)");
		if (rc < 0) {
			log_warnx("sync: reading the outbox: %s", strerror(-rc));
			if (s->nflight == 0)
				chan_schedule(c, 1000);
			return;
		}
		size_t n = batch_count(f->b);
		if (n == 0) {
			if (p.nbad) {
				s->sent_upto = p.last_seq;
				continue;
			}
			if (s->nflight)
				return; /* the next event waits for a batch in flight */
			s->batch_cap = s->max_batch;
			if (s->sent_since_drained) {
				s->sent_since_drained = 0;
				notify_kind(s, SYNC_NOTE_DRAINED);
			}
			return;
		}
		/* A full batch ends where no incident goes on past it, so that the
		 * next batch need not wait for this one (at most a quarter of the
		 * events are held back for that). */
		if (s->window > 1 && n >= s->batch_cap) {
			size_t cut = batch_clean_cut(f->b, n - n / 4);
			if (cut)
				batch_truncate(f->b, cut);
		}
		for (size_t i = batch_count(f->b); i-- > 0;)
			if (!batch_is_sos(f->b, i)) {
				s->sent_upto = batch_seq(f->b, i);
				break;
			}
		send_batch(f);
		if (!f->req)
			return;
	}
}

/* ---- positions ---- */

static void start_pos(struct sync *s);

static int peek_fixes(void *arg, const struct store_fix *f, size_t n)
{
	struct sync *s = arg;
	if (s->nfixes + n > PROTO_MAX_FIXES)
		return 1;
	memcpy(s->fixes + s->nfixes, f, n * sizeof(*f));
	s->nfixes += n;
	return 0;
}

/* The upload's own turn while the daemon's flushes drive it: one period
 * later than the regular one, a flush period at most. */
static int64_t pos_fallback_ms(const struct sync *s)
{
	int64_t period = (int64_t)s->pos_upload_s * 1000;
	return period + (s->pos_flush_ms < period ? s->pos_flush_ms : period);
}

static void on_pos(void *arg, const struct http_response *r)
{
	struct chan *c = arg;
	struct sync *s = c->s;
	c->req = NULL;
	enum verdict v = judge(s, c, r);
	s->stats.pos_bytes_up += r->bytes_up;
	s->stats.pos_bytes_down += r->bytes_down;
	if (v == V_CLIENT) {
		log_warnx("sync: positions: HTTP %ld", r->status);
		fail_backoff(s);
		v = V_FAIL;
	}
	if (v == V_OK) {
		/* From memory: never written at all. From the database: deleted
		 * with the next flush, no commit (fsync) of its own. */
		if (s->pos_mem)
			store_pos_drop_buffered(s->st, s->pos_mem_t);
		else
			store_pos_acked(s->st, s->pos_token);
		s->stats.fixes_sent += s->nfixes;
	}
	s->pos_mem = 0;
	after(s, c, v);
	if (v == V_OK) {
		int full = s->nfixes >= PROTO_MAX_FIXES / 2 || c->again;
		c->again = 0;
		if (full)
			chan_schedule(c, 0);
		else /* while the flushes drive it, this turn is a fallback only */
			chan_period(c, s->pos_by_flush ? pos_fallback_ms(s)
			                               : (int64_t)s->pos_upload_s * 1000);
	}
}

static void start_pos(struct sync *s)
{
	struct chan *c = &s->pos;
	if (!chan_ready(s, c))
		return;
	s->nfixes = 0;
	int rc = 0;
	if (s->pos_mem) { /* sync_pos_from_memory: the buffer, nothing written */
		s->nfixes = store_pos_copy_buffered(s->st, s->fixes, PROTO_MAX_FIXES);
		s->pos_mem_t = s->nfixes ? s->fixes[s->nfixes - 1].t_ms : 0;
		if (!s->nfixes)
			s->pos_mem = 0;
	} else {
		rc = store_pos_peek(s->st, PROTO_MAX_FIXES, peek_fixes, s, &s->pos_token);
	}
	if (rc < 0) {
		log_warnx("sync: reading positions: %s", strerror(-rc));
		chan_period(c, (int64_t)s->pos_upload_s * 1000);
		return;
	}
	s->pos_by_flush = s->pos_kicked;
	s->pos_kicked = 0;
	if (s->nfixes == 0) { /* only a look at the store next time: a long window */
		int64_t period = (int64_t)s->pos_upload_s * 1000;
		int64_t slack = period / 3 < LOOP_IDLE_SLACK_MS ? period / 3 : LOOP_IDLE_SLACK_MS;
		chan_arm(c, period - slack, slack);
		c->regular = 1;
		return;
	}
	size_t len;
	char *json = proto_fixes_json(s->fixes, s->nfixes, &len);
	if (!json) {
		s->pos_mem = 0;
		chan_schedule(c, 1000);
		return;
	}
	s->pos_sent_ms = loop_now_ms();
	chan_send(s, c, "POST", "/positions", json, len, HTTP_GZIP_BEST, 0, on_pos);
	free(json);
}

/* ---- heartbeat, configuration, commands ---- */

static void start_hb(struct sync *s);

static int bounded(const cJSON *o, const char *key, int lo, int hi, int *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(v))
		return 0;
	double d = v->valuedouble;
	*out = d < lo ? lo : d > hi ? hi : (int)d;
	return 1;
}

static void apply_config(struct sync *s, const cJSON *cfg)
{
	int v;
	if (!cJSON_IsObject(cfg))
		return;
	if (bounded(cfg, "long_poll_s", 0, PROTO_MAX_WAIT_S, &v))
		s->long_poll_s = v < s->request_timeout_s ? v : s->request_timeout_s - 1;
	if (bounded(cfg, "heartbeat_interval_s", 10, 3600, &v))
		s->heartbeat_s = v;
	if (bounded(cfg, "max_batch_events", 1, PROTO_MAX_EVENTS, &v)) {
		s->max_batch = (size_t)v;
		if (s->batch_cap > s->max_batch)
			s->batch_cap = s->max_batch;
	}
	struct sync_note n = {.kind = SYNC_NOTE_CONFIG, .args = cfg};
	notify(s, &n);
}

static void command_key(const char *id, char key[48])
{
	char hex[65];
	proto_sha256_hex(id, strlen(id), hex);
	snprintf(key, 48, "cmd.%.32s", hex);
}

static void take_command(struct sync *s, const cJSON *env)
{
	unsigned char *payload = NULL, sig[64];
	size_t plen;
	char why[128], key[48];
	if (proto_envelope_open(env, s->server_pk, &payload, &plen, sig, why, sizeof(why)) < 0) {
		s->stats.envelopes_dropped++;
		log_warnx("sync: command envelope dropped: %s", why);
		return;
	}
	static const char *const types[] = {"wipe", "lock", "resync", "config"};
	cJSON *cmd = proto_json_parse(payload, plen);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(cmd, "id");
	const cJSON *dev = cJSON_GetObjectItemCaseSensitive(cmd, "device_id");
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(cmd, "type");
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(cmd, "args");
	int t = -1, rc;
	if (!cJSON_IsString(id) || !proto_id_valid(id->valuestring) || !cJSON_IsString(dev) ||
	    !cJSON_IsString(type)) {
		log_warnx("sync: signed command malformed, dropped");
		goto out;
	}
	if (strcmp(dev->valuestring, s->device_id) != 0) {
		log_warnx("sync: command %s is for another device: refused", id->valuestring);
		goto out;
	}
	command_key(id->valuestring, key);
	if (store_state_get(s->st, key, why, sizeof(why), NULL) != -ENOENT)
		goto out; /* carried out before (or unreadable: never twice) */
	for (int i = 0; i < 4; i++)
		if (strcmp(type->valuestring, types[i]) == 0)
			t = i;
	int ok = t >= 0 && (t != SYNC_CMD_CONFIG || cJSON_IsObject(args));
	struct proto_event ev = {.type = PROTO_EV_COMMAND_RESULT, .ok = ok};
	strcpy(ev.command_id, id->valuestring);
	queue_own_event(s, &ev);
	/* Remembered, result queued (and for resync the cursor forgotten) in
	 * one transaction, before the daemon acts: at most once. */
	if ((rc = store_begin(s->st)) < 0)
		goto out;
	rc = store_state_set(s->st, key, "1", 1);
	if (rc == 0 && t == SYNC_CMD_RESYNC)
		rc = store_state_del(s->st, SYNC_KEY_CURSOR);
	if (rc == 0 && t == SYNC_CMD_WIPE)
		rc = store_state_set(s->st, SYNC_KEY_WIPE, "1", 1);
	if (rc == 0)
		rc = sync_event_queue(s->st, &ev, NULL, NULL);
	if (rc == 0)
		rc = store_commit(s->st);
	else
		store_rollback(s->st);
	if (rc < 0) {
		log_warnx("sync: command %s: %s", id->valuestring, strerror(-rc));
		goto out;
	}
	log_info("sync: command %s (%s)", id->valuestring, ok ? types[t] : "unknown type");
	if (ok) {
		struct sync_note n = {.kind = SYNC_NOTE_COMMAND,
		                      .id = id->valuestring,
		                      .command = (enum sync_command)t,
		                      .args = args};
		if (t == SYNC_CMD_RESYNC) { /* a fresh poll from the beginning */
			chan_cancel(s, &s->poll);
			chan_schedule(&s->poll, 0);
		}
		if (t == SYNC_CMD_CONFIG)
			apply_config(s, args);
		notify(s, &n);
	}
	sync_kick(s);
out:
	cJSON_Delete(cmd);
	sodium_memzero(payload, plen);
	free(payload);
}

static void on_hb(void *arg, const struct http_response *r)
{
	struct chan *c = arg;
	struct sync *s = c->s;
	c->req = NULL;
	enum verdict v = judge(s, c, r);
	if (v == V_CLIENT) {
		fail_backoff(s);
		v = V_FAIL;
	}
	after(s, c, v);
	if (v != V_OK)
		return;
	cJSON *doc = proto_json_parse(r->body, r->body_len);
	const cJSON *cmds = cJSON_GetObjectItemCaseSensitive(doc, "commands"), *it;
	apply_config(s, cJSON_GetObjectItemCaseSensitive(doc, "config"));
	if (cJSON_IsArray(cmds))
		cJSON_ArrayForEach(it, cmds) take_command(s, it);
	cJSON_Delete(doc);
	if (!s->stopped)
		chan_period(c, (int64_t)s->heartbeat_s * 1000);
}

static void start_hb(struct sync *s)
{
	struct chan *c = &s->hb;
	if (!chan_ready(s, c))
		return;
	struct sync_device_status ds = {.battery_pct = -1, .clock = PROTO_CLOCK_UNSYNCED};
	int64_t nev = 0, npos = 0, nrej = 0;
	if (s->status)
		s->status(s->arg, &ds);
	store_outbox_count(s->st, &nev);
	store_pos_count(s->st, &npos);
	store_rejected_count(s->st, &nrej);
	cJSON *o = cJSON_CreateObject(), *q, *fix;
	char *body = NULL;
	int ok = o && cJSON_AddStringToObject(o, "agent_version", ESS_VERSION) &&
	         cJSON_AddNumberToObject(o, "uptime_s", (double)ds.uptime_s) &&
	         cJSON_AddStringToObject(o, "power", ds.power ? ds.power : "vehicle") &&
	         (ds.battery_pct >= 0 ? cJSON_AddNumberToObject(o, "battery_pct", ds.battery_pct)
	                              : cJSON_AddNullToObject(o, "battery_pct")) &&
	         (q = cJSON_AddObjectToObject(o, "queue")) &&
	         cJSON_AddNumberToObject(q, "events", (double)nev) &&
	         cJSON_AddNumberToObject(q, "positions", (double)npos) &&
	         cJSON_AddNumberToObject(o, "rejected_events", (double)nrej);
	if (ok && ds.has_fix) {
		ok = (fix = cJSON_AddObjectToObject(o, "last_fix")) &&
		     cJSON_AddNumberToObject(fix, "t", (double)ds.fix_t_ms) &&
		     cJSON_AddNumberToObject(fix, "lat", ds.fix_lat) &&
		     cJSON_AddNumberToObject(fix, "lon", ds.fix_lon) &&
		     cJSON_AddNumberToObject(fix, "accuracy_m", ds.fix_accuracy_m);
	} else if (ok) {
		ok = cJSON_AddNullToObject(o, "last_fix") != NULL;
	}
	ok = ok && cJSON_AddStringToObject(o, "clock", proto_clock_name(ds.clock)) &&
	     cJSON_AddNumberToObject(o, "db_bytes", (double)store_disk_bytes(s->st)) &&
	     (body = cJSON_PrintUnformatted(o));
	cJSON_Delete(o);
	if (!ok) {
		free(body);
		chan_schedule(c, 1000);
		return;
	}
	chan_send(s, c, "POST", "/heartbeat", body, strlen(body), HTTP_GZIP, 0, on_hb);
	free(body);
}

/* ---- the engine's life ---- */

static int load_identity(struct sync *s, char *err, size_t errlen)
{
	size_t len;
	char buf[64];
	if (store_state_get(s->st, SYNC_KEY_DEVICE_ID, s->device_id, PROTO_ID_MAX, &len) < 0) {
		SETERR("not enrolled: no device id");
		return -ENOKEY;
	}
	s->device_id[len] = 0;
	if (store_state_get(s->st, SYNC_KEY_UNIT, s->unit, PROTO_ID_MAX, &len) < 0) {
		SETERR("not enrolled: no unit");
		return -ENOKEY;
	}
	s->unit[len] = 0;
	if (store_state_get(s->st, SYNC_KEY_SERVER_KEY, s->server_pk, 32, &len) < 0 || len != 32) {
		SETERR("not enrolled: no server key");
		return -ENOKEY;
	}
	if (!proto_id_valid(s->device_id) || !proto_id_valid(s->unit)) {
		SETERR("stored identity malformed");
		return -EINVAL;
	}
	if (store_state_get(s->st, SYNC_KEY_CLOCK, buf, sizeof(buf) - 1, &len) == 0) {
		buf[len] = 0;
		http_set_clock_offset(s->http, strtoll(buf, NULL, 10));
	}
	snprintf(s->path, sizeof(s->path), "/v1/devices/%s", s->device_id);
	return 0;
}

static int sign_with_store(void *arg, const void *msg, size_t len, unsigned char sig[64])
{
	return store_device_sign(arg, msg, len, sig);
}

int sync_open(const struct sync_params *p, struct sync **out, char *err, size_t errlen)
{
	const struct config *cfg = p->cfg;
	struct sync *s = calloc(1, sizeof(*s));
	int rc;
	if (!s)
		return -ENOMEM;
	s->loop = p->loop;
	s->st = p->store;
	s->note = p->note;
	s->status = p->status;
	s->arg = p->arg;
	s->request_timeout_s = cfg->server.request_timeout_s;
	s->long_poll_s = cfg->server.long_poll_s;
	s->heartbeat_s = cfg->heartbeat.interval_s > 0 ? cfg->heartbeat.interval_s : 60;
	s->pos_upload_s = p->position_upload_s > 0 ? p->position_upload_s : 30;
	s->pos_flush_ms = (int64_t)cfg->store.position_flush_s * 1000;
	s->max_batch = s->batch_cap = PROTO_MAX_EVENTS;
	s->window = p->events_window > 0 ? p->events_window : SYNC_EVENTS_WINDOW;
	if (s->window > SYNC_EVENTS_WINDOW_MAX)
		s->window = SYNC_EVENTS_WINDOW_MAX;
	backoff_init(&s->bo, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
	struct chan *chans[] = {&s->poll, &s->events, &s->pos, &s->hb};
	static const char *const names[] = {"assignments", "events", "positions", "heartbeat"};
	static const chan_start_fn starts[] = {start_poll, start_events, start_pos, start_hb};
	for (int i = 0; i < 4; i++)
		*chans[i] = (struct chan){.s = s, .name = names[i], .start = starts[i]};
	struct http_params hp = {
	    .base_url = cfg->server.url,
	    .ca_file = cfg->server.ca_file,
	    .pinned_pubkey = cfg->server.pinned_pubkey,
	    .connect_timeout_s = cfg->server.connect_timeout_s,
	    .request_timeout_s = cfg->server.request_timeout_s,
	    .dead_s = p->http_dead_s,
	};
	if ((rc = http_open(p->loop, &hp, &s->http, err, errlen)) < 0)
		goto fail;
	if ((rc = load_identity(s, err, errlen)) < 0)
		goto fail;
	if ((rc = http_set_identity(s->http, s->device_id, sign_with_store, s->st)) < 0)
		goto fail;
	for (int k = 0; k < SYNC_EVENTS_WINDOW_MAX; k++) {
		s->fl[k].s = s;
		if ((rc = batch_new(PROTO_MAX_EVENTS, PROTO_MAX_EVENTS_BYTES, &s->fl[k].b)) < 0)
			goto fail;
	}
	if (!(s->fixes = malloc(PROTO_MAX_FIXES * sizeof(*s->fixes)))) {
		rc = -ENOMEM;
		goto fail;
	}
	*out = s;
	return 0;
fail:
	sync_close(s);
	return rc;
}

void sync_close(struct sync *s)
{
	if (!s)
		return;
	if (s->http) {
		chan_cancel(s, &s->poll);
		events_cancel(s);
		chan_cancel(s, &s->pos);
		chan_cancel(s, &s->hb);
	}
	http_close(s->http);
	for (int k = 0; k < SYNC_EVENTS_WINDOW_MAX; k++)
		batch_free(s->fl[k].b);
	if (s->fixes)
		sodium_memzero(s->fixes, PROTO_MAX_FIXES * sizeof(*s->fixes));
	free(s->fixes);
	free(s);
}

int sync_start(struct sync *s)
{
	if (s->stopped)
		return -ESHUTDOWN;
	s->started = 1;
	chan_schedule(&s->hb, 0);
	chan_schedule(&s->poll, 0);
	chan_schedule(&s->events, 0);
	chan_schedule(&s->pos, 0);
	return 0;
}

void sync_stop(struct sync *s)
{
	s->started = 0;
	chan_cancel(s, &s->poll);
	events_cancel(s);
	chan_cancel(s, &s->pos);
	chan_cancel(s, &s->hb);
}

void sync_kick(struct sync *s)
{
	if (!s->started || s->stopped)
		return;
	if (s->nflight)
		s->events.again = 1; /* looked at when a batch in flight ends */
	else if (!s->events.timer || s->gate_ms <= loop_now_ms())
		chan_schedule(&s->events, 0);
}

void sync_link_up(struct sync *s)
{
	if (!s->started || s->stopped)
		return;
	int64_t now = loop_now_ms();
	/* The backoff was waiting for a link; this is it. A server's
	 * Retry-After is the server's wish and still holds. */
	s->gate_ms = s->server_gate_ms > now ? s->server_gate_ms : 0;
	/* a new link is a fresh start: a request still in flight on the old
	 * one that fails now backs off from the shortest delay */
	backoff_reset(&s->bo);
	int64_t d = s->gate_ms > now ? s->gate_ms - now : 0;
	s->stats.link_kicks++;
	struct chan *cs[] = {&s->poll, &s->events, &s->pos};
	for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
		if (cs[i]->req)
			cs[i]->again = 1; /* may be stuck on the old link: go again after */
		else
			chan_schedule(cs[i], d);
	}
}

/* Whether the positions upload may go now on the daemon's word: online,
 * idle, not held, and its turn near (three quarters of its period past). */
static int pos_turn_near(struct sync *s)
{
	int64_t now = loop_now_ms(), period = (int64_t)s->pos_upload_s * 1000;
	if (!s->started || s->stopped || !s->online || s->pos.req || s->gate_ms > now)
		return 0;
	return !s->pos_sent_ms || now - s->pos_sent_ms >= period - period / 4;
}

int sync_pos_from_memory(struct sync *s)
{
	if (!s || !pos_turn_near(s) || store_pos_only_buffered(s->st) != 1)
		return 0;
	int64_t oldest, newest;
	if (store_pos_buffered(s->st, &oldest, &newest) == 0)
		return 0;
	s->pos_kicked = 1;
	s->pos_mem = 1;
	chan_schedule(&s->pos, 0);
	return 1;
}

void sync_pos_flushed(struct sync *s)
{
	int64_t now = loop_now_ms(), period = (int64_t)s->pos_upload_s * 1000;
	if (!s->started || s->stopped || !s->online || s->pos.req || s->gate_ms > now)
		return;
	if (s->pos_sent_ms && now - s->pos_sent_ms < period - period / 4) {
		/* Not its turn yet (the upload went on its own clock just before,
		 * or flushes come more often than uploads): from now on the
		 * flushes drive it, its own turn waits as a fallback. */
		if (s->pos.timer && s->pos.regular)
			chan_period(&s->pos, s->pos_sent_ms + pos_fallback_ms(s) - now);
		return;
	}
	s->pos_kicked = 1;
	chan_schedule(&s->pos, 0);
}

int sync_online(const struct sync *s)
{
	return s->online;
}

int sync_stopped(const struct sync *s)
{
	return s->stopped || !s->started;
}

int64_t sync_last_success_ms(const struct sync *s)
{
	return s->last_success_ms;
}

int64_t sync_backoff_until_ms(const struct sync *s)
{
	int64_t d = s->gate_ms - loop_now_ms();
	return d > 0 ? loop_wall_ms() + d : 0;
}

void sync_get_stats(const struct sync *s, struct sync_stats *out)
{
	*out = s->stats;
	out->conns_abandoned = http_abandoned(s->http);
}

/* The sync engine against a real ESS server on loopback: the reference
 * server ($ESS_BUILD/ess-refserver, or the command in $ESS_REFSERVER_CMD),
 * started per test on a free port (--port-file) and stopped by pid in the
 * teardown, whatever the test did. Skipped when no server program exists.
 *
 * The server's test-only admin interface is reached through the srv_*
 * functions below (on top of tests/lib/refsrv.h) and nowhere else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/config.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "agent/store.h"
#include "sync/proto.h"
#include "sync/sync.h"
#include "tests/lib/refsrv.h"
#include "tests/lib/canary.h"
#include "tests/lib/testutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define UNIT "NST-RESP-04"

struct env {
	char *dir;
	struct refsrv srv;
	char base[128];
	struct tu_store t;
	struct config cfg;
	struct loop *l;
	struct sync *s;
	int notes[16];
	int64_t last_seq_note;
	/* the incidents the dispatcher made, and their versions */
	char inc_id[16][32];
	int inc_version[16];
	int ninc;
};

/* ---- the server process (tests/lib/refsrv.h) ---- */

static int srv_start(struct env *e)
{
	int rc = refsrv_start(&e->srv, e->dir, NULL);
	if (rc == -ENOENT)
		return rc;
	if (rc < 0)
		fail_msg("server did not start: %d", rc);
	snprintf(e->base, sizeof(e->base), "%s", e->srv.base);
	assert_int_equal(refsrv_token(&e->srv, UNIT, "test-token"), 0);
	return 0;
}

static void srv_stop(struct env *e)
{
	refsrv_stop(&e->srv);
}

/* A blocking call to the dispatcher API (docs/refserver.md; the test's
 * own, never the agent's): POST when json is given, else GET; anything
 * but a 2xx fails the test. */
static cJSON *admin(struct env *e, const char *path, const char *json)
{
	long code;
	cJSON *doc = refsrv_admin(&e->srv, json ? "POST" : "GET", path, json, &code);
	assert_true(code >= 200 && code < 300);
	return doc;
}

static int *srv_version(struct env *e, const char *id)
{
	for (int i = 0; i < e->ninc; i++)
		if (strcmp(e->inc_id[i], id) == 0)
			return &e->inc_version[i];
	assert_true(e->ninc < 16);
	snprintf(e->inc_id[e->ninc], sizeof(e->inc_id[0]), "%s", id);
	e->inc_version[e->ninc] = 0;
	return &e->inc_version[e->ninc++];
}

/* Puts version `version` of incident id for unit into the feed (extra: more
 * fields), through the reference server's dispatcher API: a new incident,
 * or the next version of one; a version the unit had already is delivered
 * again (the redeliver switch); forge: an envelope signed by another key
 * instead; another unit: a correctly signed envelope for another unit. */
static void srv_assign(struct env *e, const char *id, int version, const char *unit,
                       const char *extra, int forge)
{
	char doc[2048], path[128];
	if (forge || strcmp(unit, UNIT) != 0) {
		snprintf(doc, sizeof(doc), "{\"forge_item\":\"%s\"}",
		         forge ? "bad_signature" : "other_unit");
		cJSON_Delete(admin(e, "/admin/faults", doc));
		return;
	}
	int *have = srv_version(e, id);
	if (version <= *have) {
		snprintf(doc, sizeof(doc), "{\"redeliver\":{\"id\":\"%s\",\"version\":%d}}", id,
		         version);
		cJSON_Delete(admin(e, "/admin/faults", doc));
		return;
	}
	if (*have == 0) {
		assert_int_equal(version, 1);
		snprintf(doc, sizeof(doc),
		         "{\"id\":\"%s\",\"category\":\"confinement\",\"priority\":1,"
		         "\"silent\":true,\"reported_at\":\"2026-11-28T10:31:02.120Z\","
		         "\"location\":{\"lat\":" CANARY_LAT ",\"lon\":" CANARY_LON
		         ",\"accuracy_m\":8},\"summary\":\"" CANARY_SUMMARY "\","
		         "\"reporter\":{\"name\":\"" CANARY_NAME "\",\"phone\":\"" CANARY_PHONE
		         "\"},"
		         "\"unit\":\"%s\"%s%s}",
		         id, unit, extra ? "," : "", extra ? extra : "");
		cJSON_Delete(admin(e, "/admin/incidents", doc));
	} else {
		assert_int_equal(version, *have + 1);
		snprintf(doc, sizeof(doc), "{%s}", extra ? extra : "");
		snprintf(path, sizeof(path), "/admin/incidents/%s", id);
		cJSON_Delete(admin(e, path, doc));
	}
	*have = version;
}

/* The test's fault words, as the reference server's switches. */
static void srv_fault(struct env *e, const char *json)
{
	cJSON *f = cJSON_Parse(json), *v;
	char out[256] = "";
	assert_non_null(f);
	if ((v = cJSON_GetObjectItem(f, "drop_answer")))
		snprintf(out, sizeof(out), "{\"lose_next\":%d}", v->valueint);
	else if ((v = cJSON_GetObjectItem(f, "too_large_over")))
		snprintf(out, sizeof(out), "{\"too_large_over\":%d}", v->valueint);
	else if ((v = cJSON_GetObjectItem(f, "retry_after")))
		snprintf(out, sizeof(out),
		         "{\"fail_for_s\":%d,\"fail_status\":429,\"retry_after_s\":2}",
		         v->valueint);
	else if ((v = cJSON_GetObjectItem(f, "skew")))
		snprintf(out, sizeof(out), "{\"clock_shift_s\":%d}", v->valueint);
	if (out[0]) {
		cJSON_Delete(admin(e, "/admin/faults", out));
	} else {
		assert_non_null(cJSON_GetObjectItem(f, "revoked"));
		cJSON *devs = admin(e, "/admin/devices", NULL), *d;
		cJSON_ArrayForEach(d, cJSON_GetObjectItem(devs, "devices"))
		{
			char path[256];
			snprintf(path, sizeof(path), "/admin/devices/%s/revoke",
			         cJSON_GetObjectItem(d, "device_id")->valuestring);
			cJSON_Delete(admin(e, path, "{}"));
		}
		cJSON_Delete(devs);
	}
	cJSON_Delete(f);
}

/* {"events": [[event_id, seq, type], …]}: the events that reached the
 * server, each once (copies answered "duplicate" left out), in arrival
 * order — whatever their result (a note on an incident the server never
 * made is "rejected", and still arrived). */
static cJSON *srv_events(struct env *e)
{
	cJSON *out = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(out, "events");
	cJSON *devs = admin(e, "/admin/devices", NULL), *d, *it;
	cJSON_ArrayForEach(d, cJSON_GetObjectItem(devs, "devices"))
	{
		char path[256];
		snprintf(path, sizeof(path), "/admin/devices/%s/events",
		         cJSON_GetObjectItem(d, "device_id")->valuestring);
		cJSON *evs = admin(e, path, NULL);
		assert_non_null(evs);
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(evs, "events"))
		{
			const cJSON *ev = cJSON_GetObjectItem(it, "event");
			if (strcmp(cJSON_GetObjectItem(it, "result")->valuestring, "duplicate") ==
			    0)
				continue;
			cJSON *row = cJSON_CreateArray();
			cJSON_AddItemToArray(
			    row, cJSON_Duplicate(cJSON_GetObjectItem(ev, "event_id"), 1));
			cJSON_AddItemToArray(row,
			                     cJSON_Duplicate(cJSON_GetObjectItem(ev, "seq"), 1));
			cJSON_AddItemToArray(row,
			                     cJSON_Duplicate(cJSON_GetObjectItem(ev, "type"), 1));
			cJSON_AddItemToArray(list, row);
		}
		cJSON_Delete(evs);
	}
	cJSON_Delete(devs);
	return out;
}

/* ---- the agent side ---- */

static void on_note(void *arg, const struct sync_note *n)
{
	struct env *e = arg;
	e->notes[n->kind]++;
	if (n->kind == SYNC_NOTE_REJECTED || n->kind == SYNC_NOTE_CONFLICT)
		e->last_seq_note = n->seq;
}

static void status_cb(void *arg, struct sync_device_status *st)
{
	(void)arg;
	st->uptime_s = 10;
	st->power = "vehicle";
	st->clock = PROTO_CLOCK_GPS;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	e->dir = tu_tmpdir("itsync");
	*state = e;
	if (srv_start(e) == -ENOENT)
		return 0; /* skipped by the test itself */
	assert_int_equal(tu_store_open(&e->t, e->dir, 1), 0);
	config_defaults(&e->cfg);
	snprintf(e->cfg.server.url, sizeof(e->cfg.server.url), "%s/api", e->base);
	e->cfg.server.long_poll_s = 2;
	e->cfg.server.request_timeout_s = 10;
	assert_int_equal(loop_open(&e->l), 0);
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	sync_close(e->s);
	if (e->t.s)
		tu_store_close(&e->t);
	loop_close(e->l);
	srv_stop(e);
	tu_rmrf(e->dir);
	free(e);
	return 0;
}

static void need_server(struct env *e)
{
	if (e->srv.pid <= 0) {
		print_message("# no reference server program: skipped\n");
		skip();
	}
}

static void enroll_and_open(struct env *e)
{
	char err[256] = "";
	struct sync_enroll_info info = {.token = "test-token", .serial = "SN1", .board = "host"};
	int rc = sync_enroll(e->l, e->t.s, &e->cfg, &info, err, sizeof(err));
	if (rc)
		fail_msg("enroll: %d %s", rc, err);
	struct sync_params p = {.loop = e->l,
	                        .store = e->t.s,
	                        .cfg = &e->cfg,
	                        .note = on_note,
	                        .status = status_cb,
	                        .arg = e,
	                        .position_upload_s = 1};
	assert_int_equal(sync_open(&p, &e->s, err, sizeof(err)), 0);
}

static int64_t incident_version(struct env *e, const char *id)
{
	struct store_incident inc;
	if (store_incident_get(e->t.s, id, &inc) < 0)
		return 0;
	int64_t v = inc.version;
	store_incident_clear(&inc);
	return v;
}

static void queue_note(struct env *e, int sos, int64_t *seq)
{
	struct proto_event ev = {.type = sos ? PROTO_EV_SOS : PROTO_EV_NOTE,
	                         .incident_version = 1,
	                         .text = "note",
	                         .at_ms = tu_now_ms(),
	                         .clock = PROTO_CLOCK_GPS};
	strcpy(ev.incident_id, "INC-1");
	assert_int_equal(sync_event_queue(e->t.s, &ev, seq, NULL), 0);
}

static int64_t outbox(struct env *e)
{
	int64_t n;
	assert_int_equal(store_outbox_count(e->t.s, &n), 0);
	return n;
}

/* ---- scenarios ---- */

static void test_enroll_and_assignments(void **state)
{
	struct env *e = *state;
	need_server(e);
	enroll_and_open(e);
	char id[64];
	size_t len;
	assert_int_equal(store_state_get(e->t.s, SYNC_KEY_DEVICE_ID, id, sizeof(id), &len), 0);
	assert_int_equal(store_state_get(e->t.s, SYNC_KEY_UNIT, id, sizeof(id), &len), 0);
	assert_memory_equal(id, UNIT, strlen(UNIT));
	assert_int_equal(sync_start(e->s), 0);
	TU_RUN_UNTIL(e->l, sync_online(e->s), 5000);
	assert_true(sync_online(e->s));

	srv_assign(e, "INC-1", 1, UNIT, "\"future_field\":{\"x\":[1,2]}", 0);
	TU_RUN_UNTIL(e->l, e->notes[SYNC_NOTE_INCIDENT] >= 1, 5000);
	assert_int_equal(e->notes[SYNC_NOTE_INCIDENT], 1);
	assert_int_equal(incident_version(e, "INC-1"), 1);
	/* unknown fields kept: the whole payload is stored */
	struct store_incident inc;
	assert_int_equal(store_incident_get(e->t.s, "INC-1", &inc), 0);
	assert_non_null(strstr((char *)inc.payload, "future_field"));
	store_incident_clear(&inc);
	assert_int_equal(store_state_get(e->t.s, SYNC_KEY_CURSOR, id, sizeof(id), &len), 0);
	/* the receipt went out */
	TU_RUN_UNTIL(e->l, outbox(e) == 0 && e->notes[SYNC_NOTE_DRAINED] > 0, 5000);
	cJSON *evs = srv_events(e);
	const cJSON *list = cJSON_GetObjectItem(evs, "events");
	assert_int_equal(cJSON_GetArraySize(list), 1);
	assert_string_equal(cJSON_GetArrayItem(cJSON_GetArrayItem(list, 0), 2)->valuestring,
	                    "receipt");
	cJSON_Delete(evs);

	/* forged, another unit's, and an old version: none stored */
	srv_assign(e, "INC-2", 1, UNIT, NULL, 1);
	srv_assign(e, "INC-3", 1, "OTHER-UNIT", NULL, 0);
	srv_assign(e, "INC-1", 1, UNIT, "\"summary2\":\"redelivered\"", 0);
	srv_assign(e, "INC-4", 1, UNIT, NULL, 0); /* a marker after them */
	TU_RUN_UNTIL(e->l, incident_version(e, "INC-4") == 1, 5000);
	assert_int_equal(incident_version(e, "INC-4"), 1);
	assert_int_equal(incident_version(e, "INC-2"), 0);
	assert_int_equal(incident_version(e, "INC-3"), 0);
	assert_int_equal(store_incident_get(e->t.s, "INC-1", &inc), 0);
	assert_null(strstr((char *)inc.payload, "redelivered"));
	store_incident_clear(&inc);
	assert_int_equal(e->notes[SYNC_NOTE_INCIDENT], 2);
	struct sync_stats st;
	sync_get_stats(e->s, &st);
	assert_true(st.envelopes_dropped >= 2);
	/* a newer version replaces it */
	srv_assign(e, "INC-1", 2, UNIT, NULL, 0);
	TU_RUN_UNTIL(e->l, incident_version(e, "INC-1") == 2, 5000);
	assert_int_equal(incident_version(e, "INC-1"), 2);
}

static void test_lost_answer_applied_once(void **state)
{
	struct env *e = *state;
	need_server(e);
	enroll_and_open(e);
	for (int i = 0; i < 20; i++)
		queue_note(e, 0, NULL);
	srv_fault(e, "{\"drop_answer\":1}");
	assert_int_equal(sync_start(e->s), 0);
	TU_RUN_UNTIL(e->l, outbox(e) == 0, 15000);
	assert_int_equal(outbox(e), 0);
	cJSON *evs = srv_events(e);
	const cJSON *list = cJSON_GetObjectItem(evs, "events");
	assert_int_equal(cJSON_GetArraySize(list), 20); /* the resend came back duplicate */
	cJSON_Delete(evs);
}

static void test_too_large_split(void **state)
{
	struct env *e = *state;
	need_server(e);
	enroll_and_open(e);
	for (int i = 0; i < 100; i++)
		queue_note(e, 0, NULL);
	srv_fault(e, "{\"too_large_over\":30}");
	assert_int_equal(sync_start(e->s), 0);
	TU_RUN_UNTIL(e->l, outbox(e) == 0, 10000);
	assert_int_equal(outbox(e), 0);
	cJSON *evs = srv_events(e);
	const cJSON *list = cJSON_GetObjectItem(evs, "events");
	assert_int_equal(cJSON_GetArraySize(list), 100);
	int64_t prev = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, list)
	{
		int64_t seq = (int64_t)cJSON_GetArrayItem(it, 1)->valuedouble;
		assert_true(seq > prev);
		prev = seq;
	}
	cJSON_Delete(evs);
}

static void test_retry_after_honoured(void **state)
{
	struct env *e = *state;
	need_server(e);
	enroll_and_open(e);
	assert_int_equal(sync_start(e->s), 0);
	TU_RUN_UNTIL(e->l, sync_online(e->s), 5000);
	srv_fault(e, "{\"retry_after\":3}"); /* 429 with Retry-After: 2 for 3 s */
	int64_t t0 = tu_now_ms();
	queue_note(e, 0, NULL);
	sync_kick(e->s);
	TU_RUN_UNTIL(e->l, sync_backoff_until_ms(e->s) > 0, 5000);
	int64_t until = sync_backoff_until_ms(e->s);
	assert_true(until > t0);
	TU_RUN_UNTIL(e->l, outbox(e) == 0, 15000);
	assert_int_equal(outbox(e), 0);
	/* no request reached the server between a 429 and its Retry-After */
	cJSON *req = admin(e, "/admin/requests", NULL);
	const cJSON *list = cJSON_GetObjectItem(req, "requests"), *it;
	int64_t first429 = 0, n_inside = 0;
	cJSON_ArrayForEach(it, list)
	{
		/* [t, method, path, status], in arrival order; a request already
		 * on its way (a long poll) may arrive in the same millisecond as
		 * t0: the window starts at the first request answered 429 */
		int64_t t = (int64_t)cJSON_GetArrayItem(it, 0)->valuedouble;
		int status = cJSON_GetArrayItem(it, 3)->valueint;
		if (t < t0)
			continue;
		if (!first429) {
			if (status == 429)
				first429 = t;
		} else if (t < first429 + 2000 - 50) {
			n_inside++;
		}
	}
	cJSON_Delete(req);
	assert_int_equal(n_inside, 0);
}

static void test_clock_skew_recovered(void **state)
{
	struct env *e = *state;
	need_server(e);
	enroll_and_open(e);
	srv_fault(e, "{\"skew\":3600}"); /* the server's clock one hour ahead */
	queue_note(e, 0, NULL);
	assert_int_equal(sync_start(e->s), 0);
	TU_RUN_UNTIL(e->l, outbox(e) == 0, 10000);
	assert_int_equal(outbox(e), 0);
	struct sync_stats st;
	sync_get_stats(e->s, &st);
	assert_true(st.clock_skew_retries >= 1);
	char off[32];
	size_t len;
	assert_int_equal(store_state_get(e->t.s, SYNC_KEY_CLOCK, off, sizeof(off) - 1, &len), 0);
	off[len] = 0;
	long long o = atoll(off);
	assert_true(o > 3590 && o < 3610);
}

static void test_revoked_stops(void **state)
{
	struct env *e = *state;
	need_server(e);
	enroll_and_open(e);
	srv_fault(e, "{\"revoked\":true}");
	queue_note(e, 0, NULL);
	assert_int_equal(sync_start(e->s), 0);
	TU_RUN_UNTIL(e->l, e->notes[SYNC_NOTE_REVOKED] > 0, 5000);
	assert_int_equal(e->notes[SYNC_NOTE_REVOKED], 1);
	assert_true(sync_stopped(e->s));
	assert_int_equal(outbox(e), 1); /* never dropped without a result */
	/* nothing more is sent */
	cJSON *req = admin(e, "/admin/requests", NULL);
	int before = cJSON_GetArraySize(cJSON_GetObjectItem(req, "requests"));
	cJSON_Delete(req);
	sync_kick(e->s);
	TU_RUN_UNTIL(e->l, 0, 1500);
	req = admin(e, "/admin/requests", NULL);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(req, "requests")), before);
	cJSON_Delete(req);
}

/* 10,000 events queued during an outage, SOS among them: every one reaches
 * the server exactly once, SOS first, the rest in seq order. */
static void test_outage_drain_exact(void **state)
{
	struct env *e = *state;
	need_server(e);
	enroll_and_open(e);
	enum { N = 10000 };
	int64_t *seqs = calloc(N, sizeof(*seqs));
	int *sos = calloc(N, sizeof(*sos));
	assert_int_equal(store_begin(e->t.s), 0);
	for (int i = 0; i < N; i++) {
		sos[i] = i % 1000 == 999;
		queue_note(e, sos[i], &seqs[i]);
	}
	assert_int_equal(store_commit(e->t.s), 0);
	assert_int_equal(sync_start(e->s), 0);
	TU_RUN_UNTIL(e->l, outbox(e) == 0, 60000);
	assert_int_equal(outbox(e), 0);
	cJSON *evs = srv_events(e);
	const cJSON *list = cJSON_GetObjectItem(evs, "events"), *it;
	assert_int_equal(cJSON_GetArraySize(list), N);
	int k = 0, nsos = 0;
	int64_t prev_sos = 0, prev = 0;
	cJSON_ArrayForEach(it, list)
	{
		int64_t seq = (int64_t)cJSON_GetArrayItem(it, 1)->valuedouble;
		const char *type = cJSON_GetArrayItem(it, 2)->valuestring;
		if (k < N / 1000) { /* the SOS events lead */
			assert_string_equal(type, "sos");
			assert_true(seq > prev_sos);
			prev_sos = seq;
			nsos++;
		} else {
			assert_string_equal(type, "note");
			assert_true(seq > prev);
			prev = seq;
		}
		k++;
	}
	assert_int_equal(nsos, N / 1000);
	cJSON_Delete(evs);
	free(seqs);
	free(sos);
}

/* A link coming up (hal/link -> sync_link_up) ends the wait of the
 * transport backoff at once; a server's Retry-After still holds. */
static void test_link_up_goes_now(void **state)
{
	struct env *e = *state;
	need_server(e);
	enroll_and_open(e);
	assert_int_equal(sync_start(e->s), 0);
	TU_RUN_UNTIL(e->l, sync_online(e->s), 5000);
	/* 502s (no Retry-After) until the backoff holds for a while */
	cJSON_Delete(admin(e, "/admin/faults", "{\"fail_for_s\":60,\"fail_status\":502}"));
	queue_note(e, 0, NULL);
	sync_kick(e->s);
	TU_RUN_UNTIL(e->l, sync_backoff_until_ms(e->s) > tu_now_ms() + 2000, 40000);
	int64_t until = sync_backoff_until_ms(e->s);
	assert_true(until > tu_now_ms() + 2000);
	/* the "link" is back: the event goes well before the backoff ends */
	cJSON_Delete(admin(e, "/admin/faults", "{\"fail_for_s\":0}"));
	sync_link_up(e->s);
	assert_int_equal(sync_backoff_until_ms(e->s), 0);
	TU_RUN_UNTIL(e->l, outbox(e) == 0, 5000);
	assert_int_equal(outbox(e), 0);
	assert_true(tu_now_ms() < until - 500);
	struct sync_stats st;
	sync_get_stats(e->s, &st);
	assert_int_equal(st.link_kicks, 1);

	/* a Retry-After is the server's wish: a link coming up keeps it */
	cJSON_Delete(
	    admin(e, "/admin/faults", "{\"fail_next\":1,\"fail_status\":503,\"retry_after_s\":5}"));
	queue_note(e, 0, NULL);
	sync_kick(e->s);
	TU_RUN_UNTIL(e->l, sync_backoff_until_ms(e->s) > tu_now_ms() + 3000, 5000);
	until = sync_backoff_until_ms(e->s);
	assert_true(until > tu_now_ms() + 3000);
	sync_link_up(e->s);
	assert_true(sync_backoff_until_ms(e->s) >= until - 5);
	TU_RUN_UNTIL(e->l, 0, 1000);
	assert_int_equal(outbox(e), 1);
}

static void append_fixes(struct env *e, int64_t t0, int n)
{
	for (int i = 0; i < n; i++) {
		struct store_fix f = {.t_ms = t0 + i * 1000LL,
		                      .lat_e7 = 137563000 + i * 10,
		                      .lon_e7 = 1005018000,
		                      .accuracy_dm = 50,
		                      .speed_cm_s = -1,
		                      .heading_cdeg = -1,
		                      .mode = 3};
		assert_int_equal(store_pos_append(e->t.s, &f), 0);
	}
}

/* The trail straight from memory (sync_pos_from_memory): acknowledged,
 * the fixes leave the buffer and were never written; refused by the
 * server, they stay in the buffer for the daemon's flush to write. */
static void test_positions_from_memory(void **state)
{
	struct env *e = *state;
	struct sync_stats st;
	int64_t oldest, newest, n;
	need_server(e);
	enroll_and_open(e);
	assert_int_equal(sync_start(e->s), 0);
	TU_RUN_UNTIL(e->l, sync_online(e->s), 5000);
	TU_RUN_UNTIL(e->l, 0, 1200); /* the upload's turn (1 s here) has come */
	int64_t t0 = tu_now_ms() - 120000;
	append_fixes(e, t0, 20);
	assert_int_equal(store_pos_only_buffered(e->t.s), 1);
	assert_int_equal(sync_pos_from_memory(e->s), 1);
	TU_RUN_UNTIL(e->l, store_pos_buffered(e->t.s, &oldest, &newest) == 0, 5000);
	assert_int_equal(store_pos_buffered(e->t.s, &oldest, &newest), 0);
	assert_int_equal(store_pos_count(e->t.s, &n), 0);
	assert_int_equal(n, 0);
	sync_get_stats(e->s, &st);
	assert_int_equal(st.fixes_sent, 20);

	/* the server fails: nothing leaves the buffer */
	TU_RUN_UNTIL(e->l, 0, 1200);
	append_fixes(e, t0 + 30000, 10);
	cJSON_Delete(admin(e, "/admin/faults", "{\"fail_for_s\":60,\"fail_status\":502}"));
	sync_get_stats(e->s, &st);
	uint64_t req0 = st.requests;
	assert_int_equal(sync_pos_from_memory(e->s), 1);
	TU_RUN_UNTIL(e->l, (sync_get_stats(e->s, &st), st.requests > req0), 5000);
	assert_true(st.requests > req0);
	assert_int_equal(store_pos_buffered(e->t.s, &oldest, &newest), 10);
	assert_int_equal(st.fixes_sent, 20);
	/* while the backoff holds, no upload from memory starts */
	assert_int_equal(sync_pos_from_memory(e->s), 0);
	cJSON_Delete(admin(e, "/admin/faults", "{\"fail_for_s\":0}"));
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	char probe[1400];
	if (refsrv_command(probe, sizeof(probe), "-") < 0) {
		/* cmocka reports a skip as "not ok": say it plainly instead */
		printf("1..1\nok 1 # SKIP itest_sync: no reference server program\n");
		return 0;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	log_open("itest_sync", LOG_TARGET_STDERR, LOG_LEVEL_WARN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_enroll_and_assignments, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lost_answer_applied_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_too_large_split, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retry_after_honoured, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_clock_skew_recovered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_revoked_stops, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outage_drain_exact, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_link_up_goes_now, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_positions_from_memory, setup, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}

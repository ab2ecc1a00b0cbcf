/* Responder rules and views, the control-socket methods called through
 * their table (a store in a temporary directory, no daemon), and the trail
 * bound (store_pos_thin). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/ctl_methods.h"
#include "agent/log.h"
#include "agent/responder.h"
#include "agent/store.h"
#include "agent/track.h"
#include "sync/proto.h"
#include "sync/sync.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct env {
	char *dir;
	struct tu_store t;
	struct track *trk;
	struct ctlm m;
};

static void put(struct env *e, const char *id, int version, const char *state, int silent)
{
	char doc[1024];
	unsigned char sig[64] = {0};
	snprintf(doc, sizeof(doc),
	         "{\"id\":\"%s\",\"version\":%d,\"category\":\"assault_threat\",\"priority\":2,"
	         "\"silent\":%s,\"state\":\"%s\",\"reported_at\":\"2026-11-28T10:31:02.120Z\","
	         "\"location\":{\"lat\":13.75,\"lon\":100.5,\"accuracy_m\":8},"
	         "\"summary\":\"CANARY-SUMMARY\",\"reporter\":{\"name\":\"CANARY-NAME\","
	         "\"phone\":\"0800000000\",\"contact_ok\":false},\"unit\":\"U1\"}",
	         id, version, silent ? "true" : "false", state);
	enum store_dispatch_state st = STORE_DISPATCH_ASSIGNED;
	if (!strcmp(state, "cancelled"))
		st = STORE_DISPATCH_CANCELLED;
	else if (!strcmp(state, "closed"))
		st = STORE_DISPATCH_CLOSED;
	assert_true(
	    store_incident_put(e->t.s, id, version, st, tu_now_ms(), doc, strlen(doc), sig) >= 0);
}

static int64_t outbox(struct env *e)
{
	int64_t n;
	assert_int_equal(store_outbox_count(e->t.s, &n), 0);
	return n;
}

static int local_status(struct env *e, const char *id)
{
	struct store_incident inc;
	assert_int_equal(store_incident_get(e->t.s, id, &inc), 0);
	int st = inc.local_status;
	store_incident_clear(&inc);
	return st;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	e->dir = tu_tmpdir("resp");
	assert_int_equal(tu_store_open(&e->t, e->dir, 1), 0);
	struct track_params tp = {.interval_s = 5, .min_distance_m = 10, .active_interval_s = 1};
	assert_int_equal(track_open(&tp, &e->trk), 0);
	e->m.resp.store = e->t.s;
	e->m.resp.track = e->trk;
	e->m.started_mono_ms = tu_now_ms();
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	track_close(e->trk);
	tu_store_close(&e->t);
	tu_rmrf(e->dir);
	free(e);
	return 0;
}

static void test_status_rules(void **state)
{
	struct env *e = *state;
	struct responder *r = &e->m.resp;
	struct responder_done d;
	char err[256];
	put(e, "INC-1", 3, "assigned", 0);
	assert_int_equal(
	    responder_set_status(r, "INC-1", PROTO_STATUS_ACKNOWLEDGED, NULL, &d, err, sizeof(err)),
	    0);
	assert_true(d.changed);
	assert_true(d.seq > 0);
	assert_int_equal(strlen(d.event_id), 36);
	assert_int_equal(local_status(e, "INC-1"), STORE_STATUS_ACKNOWLEDGED);
	/* the same again: accepted, nothing queued */
	assert_int_equal(
	    responder_set_status(r, "INC-1", PROTO_STATUS_ACKNOWLEDGED, NULL, &d, err, sizeof(err)),
	    0);
	assert_false(d.changed);
	assert_int_equal(outbox(e), 1);
	/* skip forward, then back is refused with a clear error */
	assert_int_equal(
	    responder_set_status(r, "INC-1", PROTO_STATUS_ON_SCENE, NULL, &d, err, sizeof(err)), 0);
	assert_int_equal(
	    responder_set_status(r, "INC-1", PROTO_STATUS_EN_ROUTE, NULL, &d, err, sizeof(err)),
	    -EPERM);
	assert_non_null(strstr(err, "cannot follow"));
	/* declined only before on_scene */
	assert_int_equal(
	    responder_set_status(r, "INC-1", PROTO_STATUS_DECLINED, NULL, &d, err, sizeof(err)),
	    -EPERM);
	assert_int_equal(outbox(e), 2);
	/* final, then nothing more */
	assert_int_equal(responder_set_status(r, "INC-1", PROTO_STATUS_RESOLVED, "all well", &d,
	                                      err, sizeof(err)),
	                 0);
	assert_int_equal(
	    responder_set_status(r, "INC-1", PROTO_STATUS_REFERRED, NULL, &d, err, sizeof(err)),
	    -EPERM);
	assert_int_equal(local_status(e, "INC-1"), STORE_STATUS_RESOLVED);

	/* unable_to_locate only from en_route or on_scene */
	put(e, "INC-2", 1, "assigned", 0);
	assert_int_equal(responder_set_status(r, "INC-2", PROTO_STATUS_UNABLE_TO_LOCATE, NULL, &d,
	                                      err, sizeof(err)),
	                 -EPERM);
	/* a cancelled incident takes no status, but a note */
	put(e, "INC-3", 2, "cancelled", 0);
	assert_int_equal(
	    responder_set_status(r, "INC-3", PROTO_STATUS_ACKNOWLEDGED, NULL, &d, err, sizeof(err)),
	    -EPERM);
	assert_non_null(strstr(err, "cancelled"));
	assert_int_equal(responder_note(r, "INC-3", "ถึงแล้ว note", &d, err, sizeof(err)), 0);
	/* unknown, malformed */
	assert_int_equal(
	    responder_set_status(r, "NOPE", PROTO_STATUS_EN_ROUTE, NULL, &d, err, sizeof(err)),
	    -ENOENT);
	assert_int_equal(
	    responder_set_status(r, "bad id", PROTO_STATUS_EN_ROUTE, NULL, &d, err, sizeof(err)),
	    -EINVAL);
	assert_int_equal(
	    responder_set_status(r, "INC-2", PROTO_STATUS_NONE, NULL, &d, err, sizeof(err)),
	    -EINVAL);
	assert_int_equal(responder_note(r, "INC-2", "", &d, err, sizeof(err)), -EINVAL);
	assert_int_equal(responder_note(r, "INC-2", "bad \xff utf8", &d, err, sizeof(err)),
	                 -EINVAL);
	assert_int_equal(outbox(e), 4);

	assert_int_equal(responder_sos(r, "help", &d, err, sizeof(err)), 0);
	assert_int_equal(outbox(e), 5);
}

static int first_event(void *arg, const struct store_event *ev)
{
	char *out = arg;
	if (!out[0])
		snprintf(out, 512, "%s", (const char *)ev->body);
	return 0;
}

static void test_events_and_time(void **state)
{
	struct env *e = *state;
	struct responder_done d;
	char err[256], body[512] = "";
	put(e, "INC-7", 4, "assigned", 1);
	assert_int_equal(responder_set_status(&e->m.resp, "INC-7", PROTO_STATUS_EN_ROUTE, NULL, &d,
	                                      err, sizeof(err)),
	                 0);
	assert_true(store_outbox_peek(e->t.s, 10, first_event, body) >= 1);
	assert_non_null(strstr(body, "\"incident_version\":4"));
	assert_non_null(strstr(body, "\"status\":\"en_route\""));
	assert_non_null(strstr(body, "\"location\":null"));
	/* event time never goes back */
	struct proto_event a = {0}, b = {0};
	responder_stamp(&e->m.resp, &a);
	responder_stamp(&e->m.resp, &b);
	assert_true(b.at_ms >= a.at_ms);
	assert_true(responder_any_active(&e->m.resp));
	assert_true(responder_text_valid("ภาษาไทย\nline\ttab"));
	assert_false(responder_text_valid("\xc0\x80"));     /* overlong */
	assert_false(responder_text_valid("\xed\xa0\x80")); /* surrogate */
	assert_false(responder_text_valid("bell\a"));
}

static void test_views(void **state)
{
	struct env *e = *state;
	cJSON *out = NULL;
	char err[256];
	put(e, "INC-S", 1, "assigned", 1);
	put(e, "INC-C", 1, "closed", 0);
	assert_int_equal(responder_list(&e->m.resp, &out), 0);
	assert_int_equal(cJSON_GetArraySize(out), 2);
	const cJSON *first = cJSON_GetArrayItem(out, 0);
	assert_string_equal(cJSON_GetObjectItem(first, "id")->valuestring, "INC-S");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(first, "silent")));
	assert_string_equal(cJSON_GetObjectItem(first, "alert")->valuestring, "none");
	char *s = cJSON_PrintUnformatted(out);
	assert_null(strstr(s, "CANARY")); /* the list holds no personal text */
	free(s);
	cJSON_Delete(out);
	assert_int_equal(responder_show(&e->m.resp, "INC-S", &out, err, sizeof(err)), 0);
	s = cJSON_PrintUnformatted(out);
	assert_non_null(strstr(s, "CANARY-NAME")); /* every field */
	assert_non_null(strstr(s, "\"silent\":true"));
	free(s);
	cJSON_Delete(out);
	assert_int_equal(responder_show(&e->m.resp, "INC-X", &out, err, sizeof(err)), -ENOENT);
	/* with a fix, distance and bearing */
	struct hal_gps_fix f = {.t_ms = tu_now_ms(),
	                        .sys_ms = tu_now_ms(),
	                        .mono_ms = 0,
	                        .lat_e7 = 137400000,
	                        .lon_e7 = 1005000000,
	                        .accuracy_dm = 50,
	                        .speed_cm_s = -1,
	                        .heading_cdeg = -1,
	                        .mode = 3};
	track_offer(e->trk, &f, NULL);
	assert_int_equal(responder_summary(&e->m.resp, "INC-S", &out), 0);
	const cJSON *dist = cJSON_GetObjectItem(out, "distance_m");
	assert_true(cJSON_IsNumber(dist));
	assert_true(dist->valuedouble > 1000 && dist->valuedouble < 1200); /* 0.01° north */
	assert_int_equal(cJSON_GetObjectItem(out, "bearing_deg")->valueint, 0);
	cJSON_Delete(out);
}

/* The summary's "allowed" is exactly what responder_set_status accepts. */
static char *allowed_of(struct env *e, const char *id)
{
	cJSON *out = NULL;
	assert_int_equal(responder_summary(&e->m.resp, id, &out), 0);
	const cJSON *a = cJSON_GetObjectItem(out, "allowed");
	assert_true(cJSON_IsArray(a));
	char *s = cJSON_PrintUnformatted(a);
	cJSON_Delete(out);
	return s;
}

static void test_allowed(void **state)
{
	struct env *e = *state;
	struct responder_done d;
	char err[256], *s;
	put(e, "INC-A", 1, "assigned", 0);
	put(e, "INC-C", 1, "cancelled", 0);
	s = allowed_of(e, "INC-A");
	assert_string_equal(s, "[\"acknowledged\",\"en_route\",\"on_scene\",\"resolved\","
	                       "\"referred\",\"declined\"]");
	free(s);
	assert_int_equal(responder_set_status(&e->m.resp, "INC-A", PROTO_STATUS_ON_SCENE, NULL, &d,
	                                      err, sizeof(err)),
	                 0);
	s = allowed_of(e, "INC-A"); /* no going back, no declining on scene */
	assert_string_equal(s, "[\"resolved\",\"referred\",\"unable_to_locate\"]");
	free(s);
	assert_int_equal(responder_set_status(&e->m.resp, "INC-A", PROTO_STATUS_RESOLVED, NULL, &d,
	                                      err, sizeof(err)),
	                 0);
	s = allowed_of(e, "INC-A"); /* final */
	assert_string_equal(s, "[]");
	free(s);
	s = allowed_of(e, "INC-C"); /* no longer assigned */
	assert_string_equal(s, "[]");
	free(s);
}

/* Calls a method through the table as the control socket would. */
static int call(struct env *e, const char *name, const char *params_json, cJSON **result,
                const char **code)
{
	size_t n;
	const struct ctl_method *ms = ctlm_methods(&n);
	cJSON *params = cJSON_Parse(params_json);
	assert_non_null(params);
	struct ctl_peer peer = {.pid = getpid(), .uid = getuid(), .gid = getgid()};
	char msg[256] = "";
	*result = NULL;
	*code = NULL;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(ms[i].name, name) == 0) {
			int rc =
			    ms[i].fn(&e->m, NULL, &peer, params, result, code, msg, sizeof(msg));
			cJSON_Delete(params);
			if (rc < 0)
				assert_true(msg[0] != 0); /* every error says why */
			return rc;
		}
	}
	cJSON_Delete(params);
	fail_msg("no method %s", name);
	return -ENOENT;
}

static void test_ctl_methods(void **state)
{
	struct env *e = *state;
	cJSON *r;
	const char *code;
	put(e, "INC-1", 1, "assigned", 1);
	assert_int_equal(call(e, "status", "{}", &r, &code), 0);
	assert_true(cJSON_IsObject(cJSON_GetObjectItem(r, "queue")));
	assert_string_equal(cJSON_GetObjectItem(r, "clock")->valuestring, "unsynced");
	cJSON_Delete(r);
	assert_int_equal(call(e, "status", "{\"x\":1}", &r, &code), -EINVAL);
	assert_string_equal(code, "bad_request");
	assert_int_equal(call(e, "list", "{}", &r, &code), 0);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "incidents")), 1);
	cJSON_Delete(r);
	/* parameters checked */
	assert_int_equal(call(e, "show", "{}", &r, &code), -EINVAL);
	assert_string_equal(code, "bad_request");
	assert_int_equal(call(e, "show", "{\"id\":5}", &r, &code), -EINVAL);
	assert_int_equal(call(e, "show", "{\"id\":\"NOPE\"}", &r, &code), -ENOENT);
	assert_string_equal(code, "not_found");
	assert_int_equal(call(e, "set", "{\"id\":\"INC-1\",\"status\":\"flying\"}", &r, &code),
	                 -EINVAL);
	assert_int_equal(
	    call(e, "set", "{\"id\":\"INC-1\",\"status\":\"en_route\",\"z\":1}", &r, &code),
	    -EINVAL);
	/* an action answers with its durable event */
	assert_int_equal(call(e, "ack", "{\"id\":\"INC-1\"}", &r, &code), 0);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "queued")));
	assert_true(cJSON_GetObjectItem(r, "seq")->valuedouble >= 1);
	cJSON_Delete(r);
	assert_int_equal(outbox(e), 1);
	assert_int_equal(
	    call(e, "set", "{\"id\":\"INC-1\",\"status\":\"on_scene\",\"text\":\"x\"}", &r, &code),
	    0);
	cJSON_Delete(r);
	assert_int_equal(call(e, "set", "{\"id\":\"INC-1\",\"status\":\"declined\"}", &r, &code),
	                 -EPERM);
	assert_string_equal(code, "conflict");
	assert_int_equal(call(e, "note", "{\"id\":\"INC-1\",\"text\":\"\"}", &r, &code), -EINVAL);
	assert_int_equal(call(e, "note", "{\"id\":\"INC-1\",\"text\":\"ok\"}", &r, &code), 0);
	cJSON_Delete(r);
	/* sync without an engine: a clear error */
	assert_int_equal(call(e, "sync", "{}", &r, &code), -ENOTCONN);
	/* lock hides everything; SOS still works; unlock shows it again */
	assert_int_equal(call(e, "lock", "{}", &r, &code), 0);
	cJSON_Delete(r);
	assert_int_equal(call(e, "list", "{}", &r, &code), -EACCES);
	assert_string_equal(code, "locked");
	assert_int_equal(call(e, "show", "{\"id\":\"INC-1\"}", &r, &code), -EACCES);
	assert_int_equal(call(e, "sos", "{\"text\":\"help\"}", &r, &code), 0);
	cJSON_Delete(r);
	/* the lock survives a restart (it is in the store) */
	e->m.locked = 0;
	ctlm_load(&e->m);
	assert_true(e->m.locked);
	assert_int_equal(call(e, "unlock", "{}", &r, &code), 0);
	cJSON_Delete(r);
	assert_int_equal(call(e, "list", "{}", &r, &code), 0);
	cJSON_Delete(r);
	assert_int_equal(call(e, "rejected", "{}", &r, &code), 0);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "rejected")), 0);
	cJSON_Delete(r);
	assert_int_equal(outbox(e), 4);
}

/* ---- the trail bound ---- */

static void add_fixes(struct env *e, int64_t t0, int n)
{
	for (int i = 0; i < n; i++) {
		struct store_fix f = {.t_ms = t0 + i * 1000,
		                      .lat_e7 = 137500000 + i,
		                      .lon_e7 = 1005000000 + i,
		                      .accuracy_dm = 50,
		                      .speed_cm_s = 100,
		                      .heading_cdeg = 9000,
		                      .mode = 3};
		assert_int_equal(store_pos_append(e->t.s, &f), 0);
	}
}

struct span {
	int64_t first, last, n;
};

static int span_cb(void *arg, const struct store_fix *f, size_t n)
{
	struct span *s = arg;
	if (!s->n)
		s->first = f[0].t_ms;
	s->last = f[n - 1].t_ms;
	for (size_t i = 1; i < n; i++)
		assert_true(f[i].t_ms > f[i - 1].t_ms);
	s->n += (int64_t)n;
	return 0;
}

static void test_pos_thin(void **state)
{
	struct env *e = *state;
	int64_t n, dropped, t0 = 1790000000000;
	add_fixes(e, t0, 4000);
	assert_int_equal(store_pos_thin(e->t.s, 5000, &dropped), 0);
	assert_int_equal(dropped, 0);
	assert_int_equal(store_pos_thin(e->t.s, 3000, &dropped), 0);
	assert_int_equal(store_pos_count(e->t.s, &n), 0);
	assert_true(n <= 3000);
	assert_int_equal(n + dropped, 4000);
	/* the whole span is still there, newest end at full resolution */
	struct span sp = {0};
	int64_t tok;
	assert_true(store_pos_peek(e->t.s, 100000, span_cb, &sp, &tok) > 0);
	assert_int_equal(sp.first, t0);
	assert_int_equal(sp.last, t0 + 3999 * 1000);
	assert_int_equal(sp.n, n);
	/* far over: sparse chunks go, oldest first; the bound always holds */
	add_fixes(e, t0 + 4000 * 1000, 6000);
	assert_int_equal(store_pos_thin(e->t.s, 200, &dropped), 0);
	assert_int_equal(store_pos_count(e->t.s, &n), 0);
	assert_true(n <= 200 && n > 0);
	memset(&sp, 0, sizeof(sp));
	assert_true(store_pos_peek(e->t.s, 100000, span_cb, &sp, &tok) > 0);
	assert_int_equal(sp.last, t0 + 9999 * 1000); /* the newest fix is kept */
	assert_int_equal(store_pos_thin(e->t.s, 0, &dropped), -EINVAL);
	/* appending goes on after a thin */
	add_fixes(e, t0 + 20000 * 1000, 10);
	assert_int_equal(store_pos_flush(e->t.s), 0);
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERR);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_status_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_events_and_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_views, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_allowed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ctl_methods, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pos_thin, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

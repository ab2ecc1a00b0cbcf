/* The HTTP/2 connection through coverage holes, over a real TLS front
 * (nginx) and linkproxy on loopback:
 *
 *   a hole the NAT survives (blackout, no reset), longer than the old
 *   per-request stall (20 s) and shorter than the silence bound: the
 *   same connection carries the drain after it; every event is applied
 *   once, none was resent;
 *
 *   a connection dropped for good without a reset ("drop all": the NAT
 *   forgot it, packets blackholed): the agent abandons it within its
 *   silence bound (dead_s + the longest hold waiting on it), opens a new
 *   one (resuming its TLS session) and drains; while the link is healthy, the same short bound
 * never fires (the long poll's answers keep the connection heard). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/config.h"
#include "agent/loop.h"
#include "agent/store.h"
#include "sync/proto.h"
#include "sync/sync.h"
#include "tests/lib/lpctl.h"
#include "tests/lib/refsrv.h"
#include "tests/lib/testutil.h"
#include "tests/lib/tlsfront.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNIT    "HOLE-UNIT"
#define NEVENTS 600 /* two batches */
#define HOLD_S  2   /* the long poll's wait, server and agent */

struct env {
	char *dir;
	struct refsrv srv;
	struct tlsfront tls;
	pid_t lp;
	int port, ctl;
	struct tu_store t;
	struct loop *l;
	struct config cfg;
	struct sync *s;
	int drained;
};

static void on_note(void *arg, const struct sync_note *n)
{
	if (n->kind == SYNC_NOTE_DRAINED)
		((struct env *)arg)->drained++;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	if (!e)
		return -1;
	*state = e;
	e->dir = tu_tmpdir("tlshole");
	if (refsrv_start(&e->srv, e->dir, NULL) < 0)
		return -1;
	if (tlsfront_start(&e->tls, e->dir, e->srv.port) < 0)
		return -1;
	/* a mobile link: 60 ms round trip, in front of nginx */
	char *const link[] = {"--delay-ms", "60", NULL};
	if (lpc_start(e->dir, e->tls.port, link, 5000, &e->lp, &e->port, &e->ctl) < 0)
		return -1;
	long code;
	cJSON_Delete(refsrv_admin(&e->srv, "PUT", "/admin/config",
	                          "{\"position_interval_s\":5,\"position_min_distance_m\":10,"
	                          "\"heartbeat_interval_s\":10,\"long_poll_s\":2,"
	                          "\"retention_hours\":72,\"max_batch_events\":500}",
	                          &code));
	return code == 200 ? 0 : -1;
}

static int teardown(void **state)
{
	struct env *e = *state;
	if (!e)
		return 0;
	sync_close(e->s);
	if (e->l)
		loop_close(e->l);
	if (e->t.s)
		tu_store_close(&e->t);
	if (e->lp > 0) {
		kill(e->lp, SIGTERM);
		waitpid(e->lp, NULL, 0);
	}
	tlsfront_stop(&e->tls);
	refsrv_stop(&e->srv);
	tu_rmrf(e->dir);
	free(e);
	return 0;
}

/* Enrolled through the proxy, the engine online (its connection made). */
static void start_agent(struct env *e, int dead_s)
{
	char err[256] = "";
	assert_int_equal(tu_store_open(&e->t, e->dir, 1), 0);
	assert_int_equal(loop_open(&e->l), 0);
	config_defaults(&e->cfg);
	snprintf(e->cfg.server.url, sizeof(e->cfg.server.url), "https://localhost:%d/api", e->port);
	snprintf(e->cfg.server.ca_file, sizeof(e->cfg.server.ca_file), "%s", e->tls.ca_file);
	e->cfg.server.long_poll_s = HOLD_S;
	assert_int_equal(refsrv_token(&e->srv, UNIT, "tok-hole"), 0);
	struct sync_enroll_info info = {.token = "tok-hole", .serial = "H1", .board = "host"};
	int rc = sync_enroll(e->l, e->t.s, &e->cfg, &info, err, sizeof(err));
	if (rc)
		fail_msg("enroll: %d %s", rc, err);
	struct sync_params p = {.loop = e->l,
	                        .store = e->t.s,
	                        .cfg = &e->cfg,
	                        .note = on_note,
	                        .arg = e,
	                        .position_upload_s = 3600,
	                        .http_dead_s = dead_s};
	assert_int_equal(sync_open(&p, &e->s, err, sizeof(err)), 0);
	assert_int_equal(sync_start(e->s), 0);
	TU_RUN_UNTIL(e->l, sync_online(e->s), 10000);
	assert_true(sync_online(e->s));
}

static void run_ms(struct env *e, int64_t ms)
{
	TU_RUN_UNTIL(e->l, 0, ms);
}

static void queue_events(struct env *e)
{
	assert_int_equal(store_begin(e->t.s), 0);
	for (int i = 0; i < NEVENTS; i++) {
		struct proto_event ev = {
		    .type = PROTO_EV_SOS, .at_ms = 1764400000000 + i, .clock = PROTO_CLOCK_GPS};
		assert_int_equal(sync_event_queue(e->t.s, &ev, NULL, NULL), 0);
	}
	assert_int_equal(store_commit(e->t.s), 0);
	sync_kick(e->s);
}

static void drain(struct env *e, int64_t ms)
{
	int64_t left = 1;
	TU_RUN_UNTIL(e->l, e->drained && (store_outbox_count(e->t.s, &left), left == 0), ms);
	assert_int_equal(left, 0);
}

static int proxy_accepted(const struct env *e)
{
	char ans[512];
	assert_int_equal(lpc_cmd(e->ctl, "stats", ans, sizeof(ans)), 0);
	const char *a = strstr(ans, "accepted=");
	assert_non_null(a);
	return atoi(a + 9);
}

/* Events the server received: all of them, and those with each result. */
static void server_events(const struct env *e, int *all, int *accepted, int *distinct)
{
	char id[160], path[256];
	long code;
	assert_int_equal(refsrv_device_id(&e->srv, id, sizeof(id)), 0);
	snprintf(path, sizeof(path), "/admin/devices/%s/events", id);
	cJSON *doc = refsrv_admin(&e->srv, "GET", path, NULL, &code);
	assert_int_equal(code, 200);
	const cJSON *evs = cJSON_GetObjectItem(doc, "events"), *it;
	static char ids[NEVENTS * 2][64];
	int n = 0;
	*all = *accepted = *distinct = 0;
	cJSON_ArrayForEach(it, evs)
	{
		(*all)++;
		const cJSON *r = cJSON_GetObjectItem(it, "result");
		if (cJSON_IsString(r) && strcmp(r->valuestring, "accepted") == 0)
			(*accepted)++;
		const cJSON *eid =
		    cJSON_GetObjectItem(cJSON_GetObjectItem(it, "event"), "event_id");
		if (!cJSON_IsString(eid) || n == NEVENTS * 2)
			continue;
		int seen = 0;
		for (int i = 0; i < n && !seen; i++)
			seen = strcmp(ids[i], eid->valuestring) == 0;
		if (!seen) {
			snprintf(ids[n++], sizeof(ids[0]), "%s", eid->valuestring);
			(*distinct)++;
		}
	}
	cJSON_Delete(doc);
}

/* A 28 s hole with the batches sent into it: the connection is kept (no new
 * one at the proxy, none abandoned) and the batches in flight are answered
 * after it, not resent (the server saw each event exactly once). */
static void test_hole_keeps_connection(void **state)
{
	struct env *e = *state;
	start_agent(e, 0); /* the default bound: HTTP_DEAD_S + the long poll's hold */
	int before = proxy_accepted(e);
	struct sync_stats st0, st;
	sync_get_stats(e->s, &st0);
	assert_int_equal(lpc_cmd(e->ctl, "blackout on", NULL, 0), 0);
	queue_events(e);
	run_ms(e, 28000);
	assert_int_equal(lpc_cmd(e->ctl, "blackout off", NULL, 0), 0);
	drain(e, 30000);
	sync_get_stats(e->s, &st);
	int all, accepted, distinct;
	server_events(e, &all, &accepted, &distinct);
	print_message("# after a 28 s hole: %llu requests, %llu events batches, %d new "
	              "connection(s) at the proxy, %llu abandoned; the server received %d events "
	              "(%d accepted, %d distinct)\n",
	              (unsigned long long)(st.requests - st0.requests),
	              (unsigned long long)(st.events_batches - st0.events_batches),
	              proxy_accepted(e) - before,
	              (unsigned long long)(st.conns_abandoned - st0.conns_abandoned), all, accepted,
	              distinct);
	assert_int_equal(proxy_accepted(e), before);
	assert_int_equal(st.conns_abandoned, 0);
	assert_int_equal(st.connects - st0.connects, 0);
	assert_int_equal(accepted, NEVENTS);
	assert_int_equal(distinct, NEVENTS);
	assert_int_equal(all, NEVENTS);
	/* nothing resent: 600 events are two batches (at most 500 each) */
	assert_int_equal(st.events_batches - st0.events_batches, 2);
}

/* dead_s 4 (bound 4 + 2 s): first 10 s online (no false alarm: the long
 * poll's answers are heard), then the connection silently dropped with the
 * batches sent into it: abandoned within the bound, a new connection, the
 * drain completes, each event applied once. */
static void test_silent_drop_abandoned(void **state)
{
	struct env *e = *state;
	enum { DEAD_S = 4 };
	start_agent(e, DEAD_S);
	run_ms(e, 10000);
	struct sync_stats st0, st;
	sync_get_stats(e->s, &st0);
	assert_int_equal(st0.conns_abandoned, 0);
	int before = proxy_accepted(e);
	assert_int_equal(lpc_cmd(e->ctl, "drop all", NULL, 0), 0);
	int64_t t0 = loop_now_ms();
	queue_events(e);
	int64_t until = t0 + 20000, t1 = 0;
	while (!t1 && loop_now_ms() < until) {
		assert_true(loop_run_once(e->l, 50) >= 0);
		sync_get_stats(e->s, &st);
		if (st.conns_abandoned > st0.conns_abandoned)
			t1 = loop_now_ms();
	}
	assert_true(t1 > 0);
	drain(e, 30000);
	sync_get_stats(e->s, &st);
	int all, accepted, distinct;
	server_events(e, &all, &accepted, &distinct);
	print_message("# silent drop: abandoned after %lld ms (bound %d s from the last byte "
	              "heard), %d new connection(s) at the proxy; the server received %d events "
	              "(%d accepted, %d distinct)\n",
	              (long long)(t1 - t0), DEAD_S + HOLD_S, proxy_accepted(e) - before, all,
	              accepted, distinct);
	/* the last byte heard was at most one long poll (plus the link's
	 * delay) before the drop; the watchdog checks on time */
	assert_true(t1 - t0 >= (DEAD_S - 1) * 1000);
	assert_true(t1 - t0 <= (DEAD_S + HOLD_S) * 1000 + 1500);
	assert_int_equal(st.conns_abandoned - st0.conns_abandoned, 1);
	assert_true(proxy_accepted(e) > before);
	assert_int_equal(accepted, NEVENTS);
	assert_int_equal(distinct, NEVENTS);
	/* the new connection resumed the engine's TLS session, though the one
	 * it came from ended without a close_notify (sync/http.c) */
	long long resumed, full;
	assert_int_equal(tlsfront_sessions(&e->tls, 0, &resumed, &full), 0);
	print_message("# nginx saw %lld connection(s), %lld of them resumed a TLS session\n",
	              resumed + full, resumed);
	assert_int_equal(resumed, 1);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_hole_keeps_connection, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_silent_drop_abandoned, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

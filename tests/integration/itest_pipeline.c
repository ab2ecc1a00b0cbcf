/* A second events batch in flight (docs/device-api.md §9, "Two batches in
 * flight"), against the real reference server on loopback:
 *
 * - the rule holds: two batches that were in flight at the same time never
 *   hold events of the same incident, and batches did overlap;
 * - a lost answer or a 503 on the first of two batches in flight loses
 *   nothing and applies nothing twice;
 * - per incident, the server applied the events in seq order.
 *
 * The server holds every answer DELAY_MS after applying the request (its
 * delay switch), so a batch stays in flight at least that long: a batch
 * applied less than DELAY_MS after another cannot have waited for the
 * other's answer, so the two were in flight together. Batches are told
 * apart on the server by the instant they were applied (received_ms). The
 * server is stopped by pid in the teardown, whatever the test did. */
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
#include "tests/lib/testutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNIT     "NST-RESP-07"
#define NINC     8
#define PER_INC  5  /* acknowledged, en_route, on_scene, note, resolved */
#define BATCH    10 /* the server's max_batch_events for these tests */
#define DELAY_MS 300

struct env {
	char *dir;
	struct refsrv srv;
	struct tu_store t;
	struct config cfg;
	struct loop *l;
	struct sync *s;
	int incidents, drained;
	/* what was queued, in seq order */
	int64_t seq[NINC * PER_INC];
	int inc_of[NINC * PER_INC];
	char event_id[NINC * PER_INC][37];
	int n;
};

static void on_note(void *arg, const struct sync_note *n)
{
	struct env *e = arg;
	if (n->kind == SYNC_NOTE_INCIDENT)
		e->incidents++;
	if (n->kind == SYNC_NOTE_DRAINED)
		e->drained++;
}

static cJSON *admin(struct env *e, const char *method, const char *path, const char *json)
{
	long code;
	cJSON *doc = refsrv_admin(&e->srv, method, path, json, &code);
	if (code < 200 || code >= 300)
		fail_msg("%s %s: HTTP %ld", method, path, code);
	return doc;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	if (!e)
		return -1;
	*state = e;
	e->dir = tu_tmpdir("pipe");
	return 0;
}

/* Inside the test, so that the teardown stops the server whatever fails. */
static void prepare(struct env *e)
{
	char log[600];
	snprintf(log, sizeof(log), "%s/refsrv.log", e->dir);
	if (refsrv_start(&e->srv, e->dir, log) < 0)
		fail_msg("the reference server did not start");
	assert_int_equal(refsrv_token(&e->srv, UNIT, "pipe-token"), 0);
	/* small batches, so a few dozen events make several */
	cJSON_Delete(admin(e, "PUT", "/admin/config",
	                   "{\"position_interval_s\":5,\"position_min_distance_m\":10,"
	                   "\"heartbeat_interval_s\":600,\"long_poll_s\":25,"
	                   "\"retention_hours\":72,\"max_batch_events\":"
	                   "10"
	                   "}"));
	for (int i = 0; i < NINC; i++) {
		char doc[512];
		snprintf(doc, sizeof(doc),
		         "{\"id\":\"INC-P-%d\",\"category\":\"assault_threat\",\"priority\":2,"
		         "\"silent\":false,\"location\":{\"lat\":13.75,\"lon\":100.5,"
		         "\"accuracy_m\":8},\"summary\":\"pipeline\",\"unit\":\"" UNIT "\"}",
		         i);
		cJSON_Delete(admin(e, "POST", "/admin/incidents", doc));
	}
	assert_int_equal(tu_store_open(&e->t, e->dir, 1), 0);
	config_defaults(&e->cfg);
	snprintf(e->cfg.server.url, sizeof(e->cfg.server.url), "%s", e->srv.api_url);
	assert_int_equal(loop_open(&e->l), 0);
	char err[256];
	struct sync_enroll_info info = {.token = "pipe-token", .serial = "P1", .board = "host"};
	int rc = sync_enroll(e->l, e->t.s, &e->cfg, &info, err, sizeof(err));
	if (rc < 0)
		fail_msg("enroll: %d %s", rc, err);
	struct sync_params p = {.loop = e->l,
	                        .store = e->t.s,
	                        .cfg = &e->cfg,
	                        .note = on_note,
	                        .arg = e,
	                        .position_upload_s = 3600};
	if ((rc = sync_open(&p, &e->s, err, sizeof(err))) < 0)
		fail_msg("sync_open: %d %s", rc, err);
	/* online: the incidents stored, their receipts delivered, the
	 * configuration (small batches) taken from the first heartbeat */
	assert_int_equal(sync_start(e->s), 0);
	int64_t left = 1;
	TU_RUN_UNTIL(e->l, e->incidents == NINC && (store_outbox_count(e->t.s, &left), left == 0),
	             10000);
	assert_int_equal(e->incidents, NINC);
	assert_int_equal(left, 0);
}

static int teardown(void **state)
{
	struct env *e = *state;
	if (!e)
		return 0;
	sync_close(e->s);
	if (e->t.s)
		tu_store_close(&e->t);
	loop_close(e->l);
	refsrv_stop(&e->srv);
	tu_rmrf(e->dir);
	free(e);
	return 0;
}

/* Five events per incident, in the order a responder makes them: one
 * incident after the other, but incidents 1, 4 and 7 are resolved only
 * after the next one was acknowledged, so some batches can go together
 * and some must wait. */
static void queue_one(struct env *e, int i, int k)
{
	static const enum proto_status st[] = {PROTO_STATUS_ACKNOWLEDGED, PROTO_STATUS_EN_ROUTE,
	                                       PROTO_STATUS_ON_SCENE, 0, PROTO_STATUS_RESOLVED};
	struct proto_event ev = {
	    .incident_version = 1, .at_ms = 1764400000000 + e->n * 1000, .clock = PROTO_CLOCK_GPS};
	snprintf(ev.incident_id, sizeof(ev.incident_id), "INC-P-%d", i);
	if (k == 3) {
		ev.type = PROTO_EV_NOTE;
		ev.text = "ผู้ป่วยรู้สึกตัวดี";
	} else {
		ev.type = PROTO_EV_STATUS;
		ev.status = st[k];
	}
	assert_int_equal(sync_event_queue(e->t.s, &ev, &e->seq[e->n], e->event_id[e->n]), 0);
	e->inc_of[e->n++] = i;
}

static void queue_events(struct env *e)
{
	int deferred = -1;
	assert_int_equal(store_begin(e->t.s), 0);
	for (int i = 0; i < NINC; i++)
		for (int k = 0; k < PER_INC; k++) {
			if (k == PER_INC - 1 && i % 3 == 1) {
				deferred = i;
				break;
			}
			queue_one(e, i, k);
			if (k == 0 && deferred >= 0) {
				queue_one(e, deferred, PER_INC - 1);
				deferred = -1;
			}
		}
	if (deferred >= 0)
		queue_one(e, deferred, PER_INC - 1);
	assert_int_equal(store_commit(e->t.s), 0);
	assert_int_equal(e->n, NINC * PER_INC);
}

static int find_event(struct env *e, const char *event_id)
{
	for (int k = 0; k < e->n; k++)
		if (strcmp(e->event_id[k], event_id) == 0)
			return k;
	return -1;
}

/* The server's record of our events, checked: each event accepted exactly
 * once (copies only "duplicate"), per incident accepted in seq order, and
 * batches (events applied at one instant) in flight together disjoint.
 * Returns how many pairs of batches were in flight together. first_lost:
 * the first batch to arrive had its answer dropped (lose_next), so it was
 * not held DELAY_MS: the pairing rule does not tell about it. */
static int check_server(struct env *e, int first_lost)
{
	char path[256], dev[160];
	assert_int_equal(refsrv_device_id(&e->srv, dev, sizeof(dev)), 0);
	snprintf(path, sizeof(path), "/admin/devices/%s/events", dev);
	cJSON *doc = admin(e, "GET", path, NULL), *it;
	int accepted[NINC * PER_INC] = {0};
	int64_t last_seq[NINC];
	for (int i = 0; i < NINC; i++)
		last_seq[i] = -1;
	/* batches: runs of our events with the same received_ms */
	enum { MAXB = 64 };
	int64_t bt[MAXB];
	unsigned char binc[MAXB][NINC];
	int nb = 0;
	memset(binc, 0, sizeof(binc));
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(doc, "events"))
	{
		const cJSON *ev = cJSON_GetObjectItem(it, "event");
		const char *res = cJSON_GetObjectItem(it, "result")->valuestring;
		const cJSON *type = cJSON_GetObjectItem(ev, "type");
		if (strcmp(type->valuestring, "receipt") == 0)
			continue; /* the set-up's */
		int k = find_event(e, cJSON_GetObjectItem(ev, "event_id")->valuestring);
		assert_true(k >= 0);
		int64_t t = (int64_t)cJSON_GetObjectItem(it, "received_ms")->valuedouble;
		if (nb == 0 || bt[nb - 1] != t) {
			assert_true(nb < MAXB);
			bt[nb++] = t;
		}
		binc[nb - 1][e->inc_of[k]] = 1;
		if (strcmp(res, "accepted") == 0) {
			accepted[k]++;
			/* applied in seq order within its incident */
			assert_true(e->seq[k] > last_seq[e->inc_of[k]]);
			last_seq[e->inc_of[k]] = e->seq[k];
		} else if (strcmp(res, "duplicate") != 0) {
			fail_msg("event %d: %s", k, res);
		}
	}
	for (int k = 0; k < e->n; k++)
		if (accepted[k] != 1)
			fail_msg("event %d (seq %lld) accepted %d times", k, (long long)e->seq[k],
			         accepted[k]);
	int overlaps = 0;
	for (int a = first_lost ? 1 : 0; a < nb; a++)
		for (int b = a + 1; b < nb && bt[b] - bt[a] < DELAY_MS; b++) {
			overlaps++;
			for (int i = 0; i < NINC; i++)
				if (binc[a][i] && binc[b][i])
					fail_msg("incident %d in two batches in flight together",
					         i);
		}
	cJSON_Delete(doc);
	return overlaps;
}

static void drain(struct env *e, const char *faults)
{
	char f[256];
	prepare(e);
	snprintf(f, sizeof(f), "{\"delay_ms\":%d,\"delay_next\":0}", DELAY_MS);
	cJSON_Delete(admin(e, "POST", "/admin/faults", f));
	queue_events(e);
	if (faults) /* for the next device requests: the first events batch */
		cJSON_Delete(admin(e, "POST", "/admin/faults", faults));
	e->drained = 0;
	sync_kick(e->s);
	int64_t left = 1;
	TU_RUN_UNTIL(e->l, e->drained && (store_outbox_count(e->t.s, &left), left == 0), 60000);
	assert_int_equal(left, 0);
}

static void test_rule_holds_and_batches_overlap(void **state)
{
	struct env *e = *state;
	drain(e, NULL);
	struct sync_stats st;
	sync_get_stats(e->s, &st);
	print_message("# %llu batches, %llu sent while another was in flight\n",
	              (unsigned long long)st.events_batches, (unsigned long long)st.events_overlap);
	assert_true(st.events_max_flight == 2);
	assert_true(st.events_overlap > 0);
	assert_true(check_server(e, 0) > 0);
}

static void test_lost_answer_on_first_of_two(void **state)
{
	struct env *e = *state;
	drain(e, "{\"lose_next\":1}");
	struct sync_stats st;
	sync_get_stats(e->s, &st);
	assert_true(st.events_overlap > 0);
	check_server(e, 1);
}

static void test_503_on_first_of_two(void **state)
{
	struct env *e = *state;
	drain(e, "{\"fail_next\":1,\"fail_status\":503,\"retry_after_s\":1}");
	struct sync_stats st;
	sync_get_stats(e->s, &st);
	assert_true(st.events_overlap > 0);
	check_server(e, 0);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	char probe[1400];
	if (refsrv_command(probe, sizeof(probe), "-") < 0) {
		printf("1..1\nnot ok 1 - itest_pipeline: no reference server program\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	log_open("itest_pipeline", LOG_TARGET_STDERR, LOG_LEVEL_WARN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_rule_holds_and_batches_overlap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lost_answer_on_first_of_two, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_503_on_first_of_two, setup, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}

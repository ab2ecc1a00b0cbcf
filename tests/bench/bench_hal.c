/* What the link HAL buys: how soon the outbox goes after a network link
 * comes up, against how long the sync engine's backoff would still have
 * held it back (the baseline, measured in the same round).
 *
 * In a private network namespace (root: unshare(CLONE_NEWNET)) the
 * reference server fails with 502 until the engine backs off for more
 * than 2 s, then it is healthy again and a veth link comes up; hal/link
 * (rtnetlink) calls sync_link_up. Figure: the median over BENCH_ROUNDS of
 * (link up -> event delivered) / (backoff remaining at link up). Without
 * link events it would be about 1; the target is 0.25. */
#define _GNU_SOURCE
#include "agent/config.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "agent/store.h"
#include "hal/link.h"
#include "sync/sync.h"
#include "tests/bench/bench.h"
#include "tests/lib/refsrv.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <sched.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define UNIT  "NST-BENCH-HAL"
#define TOKEN "bench-hal-token"

static struct refsrv srv;

static void die(const char *what, long rc)
{
	refsrv_stop(&srv);
	bench_die(what, rc);
}

static void ip(const char *args)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "ip %s", args);
	if (system(cmd) != 0)
		die(cmd, -1);
}

static void fault(const char *json)
{
	long status = 0;
	cJSON_Delete(refsrv_admin(&srv, "POST", "/admin/faults", json, &status));
	if (status != 200)
		die("POST /admin/faults", status);
}

static void on_up(void *arg, const char *ifname, enum hal_link_why why)
{
	(void)ifname;
	(void)why;
	sync_link_up(arg);
}

static void on_note(void *arg, const struct sync_note *n)
{
	(void)arg;
	(void)n;
}

static int64_t outbox(struct store *st)
{
	int64_t n = -1;
	store_outbox_count(st, &n);
	return n;
}

int main(void)
{
	char err[256], log[600];
	if (sodium_init() < 0)
		return 1;
	log_open("bench_hal", LOG_TARGET_STDERR, LOG_LEVEL_ERR);
	bench_tmp = tu_tmpdir("benchhal");
	if (unshare(CLONE_NEWNET) < 0)
		bench_die("unshare(CLONE_NEWNET) (needs root)", -errno);
	ip("link set lo up");
	snprintf(log, sizeof(log), "%s/refsrv.log", bench_tmp);
	int rc = refsrv_start(&srv, bench_tmp, log);
	if (rc < 0)
		bench_die("starting the reference server", rc);
	if ((rc = refsrv_token(&srv, UNIT, TOKEN)) < 0)
		die("token", rc);

	struct tu_store t;
	struct config cfg;
	struct loop *l;
	struct sync *s;
	struct hal_link *k;
	if ((rc = tu_store_open(&t, bench_tmp, 1)) < 0)
		die("store", rc);
	config_defaults(&cfg);
	snprintf(cfg.server.url, sizeof(cfg.server.url), "%s", srv.api_url);
	cfg.server.long_poll_s = 2;
	cfg.server.request_timeout_s = 10;
	if ((rc = loop_open(&l)) < 0)
		die("loop", rc);
	struct sync_enroll_info info = {.token = TOKEN, .serial = "BH1", .board = "host"};
	if ((rc = sync_enroll(l, t.s, &cfg, &info, err, sizeof(err))) < 0)
		die("enroll", rc);
	struct sync_params sp = {.loop = l, .store = t.s, .cfg = &cfg, .note = on_note};
	if ((rc = sync_open(&sp, &s, err, sizeof(err))) < 0 || (rc = sync_start(s)) < 0)
		die("sync", rc);
	struct hal_link_params lp = {.loop = l, .on_up = on_up, .arg = s};
	if ((rc = hal_link_open("netlink", &lp, &k, err, sizeof(err))) < 0)
		die("netlink", rc);
	int64_t until = loop_now_ms() + 5000;
	while (!sync_online(s) && loop_now_ms() < until)
		loop_run_once(l, 50);
	if (!sync_online(s))
		die("first contact", -ETIMEDOUT);

	double ratio[BENCH_ROUNDS];
	for (int r = 0; r < BENCH_ROUNDS; r++) {
		fault("{\"fail_for_s\":120,\"fail_status\":502}");
		struct proto_event ev = {.type = PROTO_EV_NOTE,
		                         .incident_version = 1,
		                         .text = "bench",
		                         .at_ms = tu_now_ms(),
		                         .clock = PROTO_CLOCK_SYSTEM};
		strcpy(ev.incident_id, "INC-BENCH");
		if ((rc = sync_event_queue(t.s, &ev, NULL, NULL)) < 0)
			die("queue", rc);
		sync_kick(s);
		/* until the backoff holds for more than 2 s */
		until = loop_now_ms() + 90000;
		while (sync_backoff_until_ms(s) - tu_now_ms() <= 2000 && loop_now_ms() < until)
			loop_run_once(l, 50);
		int64_t remaining = sync_backoff_until_ms(s) - tu_now_ms();
		if (remaining <= 2000)
			die("a backoff of more than 2 s", -ETIMEDOUT);
		fault("{\"fail_for_s\":0}");
		int64_t t0 = tu_now_ms();
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "link add essb%d type veth peer name essb%dp", r, r);
		ip(cmd);
		snprintf(cmd, sizeof(cmd), "link set essb%dp up", r);
		ip(cmd);
		snprintf(cmd, sizeof(cmd), "link set essb%d up", r);
		ip(cmd);
		until = loop_now_ms() + remaining + 10000;
		while (outbox(t.s) != 0 && loop_now_ms() < until)
			loop_run_once(l, 20);
		if (outbox(t.s) != 0)
			die("delivery after link up", -ETIMEDOUT);
		int64_t took = tu_now_ms() - t0;
		ratio[r] = (double)took / (double)remaining;
		printf(
		    "# round %d: backoff remaining %lld ms at link up, delivered %lld ms after\n",
		    r, (long long)remaining, (long long)took);
		snprintf(cmd, sizeof(cmd), "link del essb%d", r);
		ip(cmd);
	}
	bench_figure("link_up_delivery_vs_backoff", bench_median(ratio, BENCH_ROUNDS), 3, "ratio",
	             "<=", 0.25);
	hal_link_close(k);
	sync_close(s);
	tu_store_close(&t);
	loop_close(l);
	refsrv_stop(&srv);
	tu_rmrf(bench_tmp);
	return 0;
}

/* The sync engine against the reference server (ess-refserver) on loopback:
 *
 *   sync.drain_cpu_ms_10k   agent CPU (getrusage, user + system) to drain
 *                           10,000 events queued during an outage; the
 *                           server is another process and not counted
 *   sync.wire_bytes_per_fix bytes on the wire (HTTP headers included, both
 *                           ways) per fix for a noisy 1 Hz track after 1 h
 *                           offline
 *   sync.assign_p50_ms      incident created through the dispatcher API
 *   sync.assign_p99_ms      (POST /admin/incidents) → stored on the device,
 *                           the long poll held; 200 assignments
 *   sync.drain_vs_floor_rural_lte  the same 10k drain through linkproxy as
 *                           rural LTE (120 ms RTT ± 30, 1 Mbit/s up, 3 down):
 *                           drain time ÷ (bytes sent ÷ uplink + 2 RTT)
 *   sync.tls_reuse_pct      requests that did not open a connection, over
 *                           TLS + HTTP/2 (nginx) through the same link: a
 *                           20 s coverage hole and the drain after it
 *                           (bench_tls)
 *
 * The server is started by tests/lib/refsrv.h ($ESS_BUILD/ess-refserver),
 * the proxy is $ESS_BUILD/tools/linkproxy; both are stopped by pid. */
#include "agent/config.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "agent/store.h"
#include "sync/proto.h"
#include "sync/sync.h"
#include "tests/bench/bench.h"
#include "tests/lib/lpctl.h"
#include "tests/lib/refsrv.h"
#include "tests/lib/testutil.h"
#include "tests/lib/tlsfront.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNIT  "NST-RESP-04"
#define TOKEN "bench-token"

/* The rural LTE link of sync.drain_vs_floor_rural_lte. */
#define LTE_RTT_MS    120
#define LTE_JITTER_MS 30
#define LTE_UP_KBIT   1000
#define LTE_DOWN_KBIT 3000

struct proxy {
	pid_t pid;
	int port, ctl_port;
};

struct proxy_stats {
	long long accepted, bytes_up, bytes_down;
};

struct env {
	char *dir;
	struct refsrv srv;
	struct tlsfront tls; /* LINK_TLS_LTE: nginx between the proxy and the server */
	struct proxy px;
	struct tu_store t;
	struct config cfg;
	struct loop *l;
	struct sync *s;
	int incidents, drained;
};

/* What runs now, for die(): stopped by pid. */
static struct refsrv *cur_srv;
static struct proxy *cur_px;
static struct tlsfront *cur_tls;
static int bench_window; /* events batches in flight; 0: the engine's default */

static void proxy_stop(struct proxy *px)
{
	if (px->pid > 0) {
		kill(px->pid, SIGTERM);
		waitpid(px->pid, NULL, 0);
		px->pid = 0;
	}
}

static void die(const char *what, long rc)
{
	if (cur_px)
		proxy_stop(cur_px);
	if (cur_tls)
		tlsfront_stop(cur_tls);
	if (cur_srv)
		refsrv_stop(cur_srv);
	bench_die(what, rc);
}

/* linkproxy in front of the server: emulating rural LTE when lte, else
 * transparent (it only counts the bytes on the wire). */
static void proxy_start(struct env *e, int lte)
{
	char delay[16], jit[16], up[16], down[16];
	snprintf(delay, sizeof(delay), "%d", lte ? LTE_RTT_MS : 0);
	snprintf(jit, sizeof(jit), "%d", lte ? LTE_JITTER_MS : 0);
	snprintf(up, sizeof(up), "%d", lte ? LTE_UP_KBIT : 0);
	snprintf(down, sizeof(down), "%d", lte ? LTE_DOWN_KBIT : 0);
	char *const link[] = {"--delay-ms",  delay, "--jitter-ms", jit, "--up-kbit", up,
	                      "--down-kbit", down,  "--seed",      "1", NULL};
	cur_px = &e->px;
	int rc = lpc_start(e->dir, e->tls.pid > 0 ? e->tls.port : e->srv.port, link, 10000,
	                   &e->px.pid, &e->px.port, &e->px.ctl_port);
	if (rc < 0)
		die("starting linkproxy", rc);
}

/* One control command (e.g. "blackout on"); its answer must be "ok…". */
static void proxy_cmd(const struct proxy *px, const char *cmd)
{
	int rc = lpc_cmd(px->ctl_port, cmd, NULL, 0);
	if (rc < 0)
		die(cmd, rc);
}

/* The proxy's "stats" line, parsed. */
static void proxy_stats(const struct proxy *px, struct proxy_stats *out)
{
	char line[512];
	int rc = lpc_cmd(px->ctl_port, "stats", line, sizeof(line));
	if (rc < 0)
		die("the proxy's stats", rc);
	const char *a = strstr(line, "accepted="), *u = strstr(line, "bytes_up="),
	           *d = strstr(line, "bytes_down=");
	if (!a || !u || !d)
		die("parsing the proxy's stats", -EPROTO);
	out->accepted = atoll(a + 9);
	out->bytes_up = atoll(u + 9);
	out->bytes_down = atoll(d + 11);
}

static void on_note(void *arg, const struct sync_note *n)
{
	struct env *e = arg;
	if (n->kind == SYNC_NOTE_INCIDENT)
		e->incidents++;
	if (n->kind == SYNC_NOTE_DRAINED)
		e->drained++;
}

enum link { LINK_DIRECT = 0, LINK_LTE, LINK_COUNTED, LINK_TLS_LTE };

/* A server (and a proxy in front of it unless LINK_DIRECT), a store, an
 * enrolled device and its sync engine, not started. */
static void env_open(struct env *e, int upload_s, enum link link)
{
	char err[256], log[600];
	memset(e, 0, sizeof(*e));
	e->dir = tu_tmpdir("bsync");
	bench_tmp = e->dir;
	snprintf(log, sizeof(log), "%s/refsrv.log", e->dir);
	int rc = refsrv_start(&e->srv, e->dir, log);
	if (rc < 0)
		die("starting the reference server", rc);
	cur_srv = &e->srv;
	if (refsrv_token(&e->srv, UNIT, TOKEN) < 0)
		die("making an enrollment token", -EIO);
	if (link == LINK_TLS_LTE) { /* intervals shortened for the reuse bench */
		long code;
		cJSON_Delete(
		    refsrv_admin(&e->srv, "PUT", "/admin/config",
		                 "{\"position_interval_s\":5,\"position_min_distance_m\":10,"
		                 "\"heartbeat_interval_s\":10,\"long_poll_s\":2,"
		                 "\"retention_hours\":72,\"max_batch_events\":500}",
		                 &code));
		if (code != 200)
			die("PUT /admin/config", code);
	}
	if (tu_store_open(&e->t, e->dir, 1) < 0)
		die("opening a store", -1);
	config_defaults(&e->cfg);
	if (link == LINK_TLS_LTE) {
		/* the device → rural LTE → nginx (TLS, HTTP/2) → the server */
		if ((rc = tlsfront_start(&e->tls, e->dir, e->srv.port)) < 0)
			die("starting nginx in front of the server", rc);
		cur_tls = &e->tls;
		proxy_start(e, 1);
		snprintf(e->cfg.server.url, sizeof(e->cfg.server.url), "https://localhost:%d/api",
		         e->px.port);
		snprintf(e->cfg.server.ca_file, sizeof(e->cfg.server.ca_file), "%s",
		         e->tls.ca_file);
	} else if (link != LINK_DIRECT) {
		proxy_start(e, link == LINK_LTE);
		snprintf(e->cfg.server.url, sizeof(e->cfg.server.url), "http://127.0.0.1:%d/api",
		         e->px.port);
	} else {
		snprintf(e->cfg.server.url, sizeof(e->cfg.server.url), "%s", e->srv.api_url);
	}
	e->cfg.server.long_poll_s = link == LINK_TLS_LTE ? 2 : 25;
	if (loop_open(&e->l) < 0)
		die("loop", -1);
	struct sync_enroll_info info = {.token = TOKEN, .serial = "B1", .board = "host"};
	rc = sync_enroll(e->l, e->t.s, &e->cfg, &info, err, sizeof(err));
	if (rc < 0)
		die("enrolling", rc);
	struct sync_params p = {.loop = e->l,
	                        .store = e->t.s,
	                        .cfg = &e->cfg,
	                        .note = on_note,
	                        .arg = e,
	                        .position_upload_s = upload_s,
	                        .events_window = bench_window};
	if ((rc = sync_open(&p, &e->s, err, sizeof(err))) < 0)
		die("sync_open", rc);
}

static void env_close(struct env *e)
{
	sync_close(e->s);
	tu_store_close(&e->t);
	loop_close(e->l);
	proxy_stop(&e->px);
	cur_px = NULL;
	tlsfront_stop(&e->tls);
	cur_tls = NULL;
	int rc = refsrv_stop(&e->srv);
	cur_srv = NULL;
	if (rc != 0)
		printf("# the reference server exited with status %d\n", rc);
	tu_rmrf(e->dir);
	bench_tmp = NULL;
}

static void cpu_ms(double *user, double *sys)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	*user = (double)ru.ru_utime.tv_sec * 1e3 + (double)ru.ru_utime.tv_usec / 1e3;
	*sys = (double)ru.ru_stime.tv_sec * 1e3 + (double)ru.ru_stime.tv_usec / 1e3;
}

#define RUN_UNTIL(e, cond, ms)                                                                     \
	do {                                                                                       \
		int64_t until_ = loop_now_ms() + (ms);                                             \
		while (!(cond) && loop_now_ms() < until_)                                          \
			if (loop_run_once((e)->l, 50) < 0)                                         \
				die("loop", -1);                                                   \
	} while (0)

static const char *const notes_th[] = {
    "ผู้ป่วยหายใจลำบาก ญาติรออยู่หน้าบ้าน",
    "ถึงที่เกิดเหตุแล้ว กำลังประเมินอาการ",
    "รถติดมากบนถนนพระราม 4 อาจล่าช้า 5 นาที",
};

/* The 10,000 events of the drain, on incidents that exist on the server
 * (so the answers are "accepted", as in the field): NINC incidents made for
 * the unit through the dispatcher API. The device is past them in the feed
 * (its cursor at the feed's end, as after fetching them: past_feed) and its
 * outbox holds, for each, in the order a responder makes them: the receipt
 * of version 1, acknowledged, en_route, on_scene, five notes (Thai text)
 * and a final status (resolved 80 %, referred 15 %, unable_to_locate 5 %)
 * — 10 per incident. Incidents are worked one after the other, but the
 * last two events of one (a note, the final status) often come after the
 * next one was received (0-3 events later): batches end where an incident
 * is still open about half the time. */
#define NINC    1000
#define PER_INC 10

static void make_incidents(struct env *e)
{
	for (int i = 0; i < NINC; i++) {
		char doc[1024];
		long code;
		snprintf(doc, sizeof(doc),
		         "{\"id\":\"INC-2568-%06d\",\"category\":\"assault_threat\","
		         "\"priority\":%d,\"silent\":false,"
		         "\"reported_at\":\"2026-11-28T10:31:02.120Z\","
		         "\"location\":{\"lat\":13.75,\"lon\":100.5,\"accuracy_m\":8},"
		         "\"address\":\"ซอยทดสอบ %d\",\"summary\":\"bench\",\"unit\":\"" UNIT "\"}",
		         i, 1 + i % 3, i);
		cJSON_Delete(refsrv_admin(&e->srv, "POST", "/admin/incidents", doc, &code));
		if (code != 201)
			die("POST /admin/incidents", code);
	}
}

/* The device's feed cursor at the end of the feed, as after fetching the
 * NINC incidents (and nothing else is in this server's feed): the
 * reference server's cursors are c<feed position> (docs/device-api.md §9).
 * Checked after each run: no incident may have come down (past_feed_held). */
static void past_feed(struct env *e)
{
	char c[32];
	int n = snprintf(c, sizeof(c), "c%d", NINC);
	if (store_state_set(e->t.s, SYNC_KEY_CURSOR, c, (size_t)n) < 0)
		die("setting the cursor", -1);
}

static void past_feed_held(const struct env *e)
{
	if (e->incidents)
		die("the device fetched incidents it was past (the cursor form changed?)",
		    e->incidents);
}

struct slot {
	int t, inc, k;
};

static int cmp_slot(const void *a, const void *b)
{
	const struct slot *x = a, *y = b;
	if (x->t != y->t)
		return (x->t > y->t) - (x->t < y->t);
	if (x->inc != y->inc)
		return (x->inc > y->inc) - (x->inc < y->inc);
	return (x->k > y->k) - (x->k < y->k);
}

static void queue_10k(struct env *e)
{
	static struct slot sl[NINC * PER_INC];
	struct bench_rng r = {7};
	int n = 0;
	for (int i = 0; i < NINC; i++) {
		int late = (int)bench_rng_below(&r, 4); /* the last two, 0-3 slots late */
		for (int k = 0; k < PER_INC; k++)
			sl[n++] = (struct slot){
			    .t = i * PER_INC + k + (k >= PER_INC - 2 ? late : 0), .inc = i, .k = k};
	}
	qsort(sl, (size_t)n, sizeof(*sl), cmp_slot);
	if (store_begin(e->t.s) < 0)
		die("store_begin", -1);
	for (int j = 0; j < n; j++) {
		struct proto_event ev = {.incident_version = 1,
		                         .at_ms = 1764400000000 + j * 1000,
		                         .clock = PROTO_CLOCK_GPS,
		                         .has_location = 1,
		                         .lat = 13.7 + bench_rng_unit(&r) / 10,
		                         .lon = 100.5 + bench_rng_unit(&r) / 10,
		                         .accuracy_m = 5 + bench_rng_below(&r, 20)};
		snprintf(ev.incident_id, sizeof(ev.incident_id), "INC-2568-%06d", sl[j].inc);
		int k = sl[j].k;
		if (k == 0) {
			ev.type = PROTO_EV_RECEIPT;
		} else if (k >= 4 && k < PER_INC - 1) {
			ev.type = PROTO_EV_NOTE;
			ev.text = notes_th[bench_rng_below(&r, 3)];
		} else {
			unsigned f = bench_rng_below(&r, 20);
			ev.type = PROTO_EV_STATUS;
			ev.status = k == 1   ? PROTO_STATUS_ACKNOWLEDGED
			            : k == 2 ? PROTO_STATUS_EN_ROUTE
			            : k == 3 ? PROTO_STATUS_ON_SCENE
			            : f < 16 ? PROTO_STATUS_RESOLVED
			            : f < 19 ? PROTO_STATUS_REFERRED
			                     : PROTO_STATUS_UNABLE_TO_LOCATE;
		}
		if (sync_event_queue(e->t.s, &ev, NULL, NULL) < 0)
			die("queueing events", -1);
	}
	if (store_commit(e->t.s) < 0)
		die("store_commit", -1);
}

/* What happened since *st0, in *st. */
static void stats_since(struct sync_stats *st, const struct sync_stats *st0)
{
	st->requests -= st0->requests;
	st->connects -= st0->connects;
	st->bytes_up -= st0->bytes_up;
	st->bytes_down -= st0->bytes_down;
	st->events_delivered -= st0->events_delivered;
	st->events_rejected -= st0->events_rejected;
	st->events_conflict -= st0->events_conflict;
	st->events_batches -= st0->events_batches;
	st->events_overlap -= st0->events_overlap;
}

struct drain_run {
	double cpu_user_ms, cpu_sys_ms, wall_ms;
	struct sync_stats st;
	struct proxy_stats px0, px1;
};

/* Starts the engine on 10,000 queued events and runs until the outbox is
 * empty and the engine said so. */
static void drain_once(int lte, struct drain_run *out)
{
	struct env e;
	double u0, s0, u1, s1;
	env_open(&e, 3600, lte ? LINK_LTE : LINK_DIRECT);
	make_incidents(&e);
	past_feed(&e);
	queue_10k(&e);
	if (lte)
		proxy_stats(&e.px, &out->px0);
	struct sync_stats st0;
	sync_get_stats(e.s, &st0);
	cpu_ms(&u0, &s0);
	int64_t w0 = bench_now_ns();
	if (sync_start(e.s) < 0)
		die("sync_start", -1);
	int64_t left = 1;
	RUN_UNTIL(&e, e.drained && (store_outbox_count(e.t.s, &left), left == 0), 180000);
	out->wall_ms = (double)(bench_now_ns() - w0) / 1e6;
	past_feed_held(&e);
	cpu_ms(&u1, &s1);
	out->cpu_user_ms = u1 - u0;
	out->cpu_sys_ms = s1 - s0;
	sync_get_stats(e.s, &out->st);
	stats_since(&out->st, &st0);
	if (lte)
		proxy_stats(&e.px, &out->px1);
	if (left != 0 || out->st.events_delivered < 10000 || out->st.events_rejected ||
	    out->st.events_conflict)
		die("draining 10,000 events, all accepted", (long)left);
	env_close(&e);
}

static void bench_drain(void)
{
	enum { RUNS = 3 };
	double cpu[RUNS], idle[RUNS];
	for (int i = 0; i < RUNS; i++) {
		struct drain_run d = {0};
		drain_once(0, &d);
		cpu[i] = d.cpu_user_ms + d.cpu_sys_ms;
		printf("# drain run %d: %.1f ms CPU (%.1f user, %.1f sys), %.0f ms wall, "
		       "%llu events (%llu accepted, %llu rejected) in %llu requests, %llu bytes "
		       "up, %llu down\n",
		       i + 1, cpu[i], d.cpu_user_ms, d.cpu_sys_ms, d.wall_ms,
		       (unsigned long long)(d.st.events_delivered + d.st.events_rejected),
		       (unsigned long long)d.st.events_delivered,
		       (unsigned long long)d.st.events_rejected, (unsigned long long)d.st.requests,
		       (unsigned long long)d.st.bytes_up, (unsigned long long)d.st.bytes_down);
		/* Baseline: the engine started on an empty outbox for as long, the
		 * long poll held: what the drain costs above standing still. */
		struct env e;
		double u0, s0, u1, s1;
		env_open(&e, 3600, LINK_DIRECT);
		cpu_ms(&u0, &s0);
		sync_start(e.s);
		RUN_UNTIL(&e, 0, (int64_t)d.wall_ms);
		cpu_ms(&u1, &s1);
		idle[i] = (u1 - u0) + (s1 - s0);
		env_close(&e);
	}
	printf("# drain baseline (engine idle on an empty outbox for the same wall time): "
	       "median %.1f ms CPU\n",
	       bench_median(idle, RUNS));
	bench_figure("sync.drain_cpu_ms_10k", bench_median(cpu, RUNS), 1, "ms", "<=", 100);
}

static void bench_drain_lte(void)
{
	enum { RUNS = 3 };
	double ratio[RUNS];
	for (int i = 0; i < RUNS; i++) {
		struct drain_run d = {0};
		drain_once(1, &d);
		double up = (double)(d.px1.bytes_up - d.px0.bytes_up);
		double down = (double)(d.px1.bytes_down - d.px0.bytes_down);
		double floor_ms = up * 8 / (LTE_UP_KBIT * 1000.0) * 1000 + 2 * LTE_RTT_MS;
		long long conns = d.px1.accepted - d.px0.accepted;
		ratio[i] = d.wall_ms / floor_ms;
		printf("# rural LTE drain run %d: %.0f ms wall, floor %.0f ms (%.0f bytes up "
		       "at %d kbit/s + 2 x %d ms), %.0f bytes down, %llu requests, %lld new "
		       "connections, %.1f ms agent CPU\n",
		       i + 1, d.wall_ms, floor_ms, up, LTE_UP_KBIT, LTE_RTT_MS, down,
		       (unsigned long long)d.st.requests, conns, d.cpu_user_ms + d.cpu_sys_ms);
		printf("# rural LTE drain run %d: %llu events batches, %llu of them sent while "
		       "another was in flight\n",
		       i + 1, (unsigned long long)d.st.events_batches,
		       (unsigned long long)d.st.events_overlap);
		printf("# rural LTE drain run %d: the same batches one at a time can do no better "
		       "than floor + %llu x (RTT + answer at %d kbit/s) = %.0f ms\n",
		       i + 1, (unsigned long long)d.st.requests, LTE_DOWN_KBIT,
		       up * 8 / LTE_UP_KBIT + (double)d.st.requests * LTE_RTT_MS +
		           down * 8 / LTE_DOWN_KBIT);
	}
	/* Baseline in the same run: one batch at a time (window 1), as before
	 * the lead's decision. */
	struct drain_run d = {0};
	bench_window = 1;
	drain_once(1, &d);
	bench_window = 0;
	double up = (double)(d.px1.bytes_up - d.px0.bytes_up);
	double floor_ms = up * 8 / LTE_UP_KBIT + 2 * LTE_RTT_MS;
	printf("# rural LTE drain baseline, one batch in flight at a time: %.0f ms wall, %.2f x "
	       "its floor (%.0f ms); with two: %.2f x (median of %d)\n",
	       d.wall_ms, d.wall_ms / floor_ms, floor_ms, bench_median(ratio, RUNS), RUNS);
	bench_figure("sync.drain_vs_floor_rural_lte", bench_median(ratio, RUNS), 2, "x",
	             "<=", 1.25);
	printf("# the LTE drain: plain HTTP/1.1 to the server through the proxy (two "
	       "connections with two batches in flight); over TLS + HTTP/2 see the TLS "
	       "runs\n");
}

/* sync.tls_reuse_pct: the device → rural LTE (linkproxy) → nginx (TLS,
 * HTTP/2) → the reference server, through a day's shape compressed:
 *
 *   online   ONLINE_S with the long poll and heartbeats running, their
 *            intervals shortened for the bench (long poll 2 s instead of
 *            25, heartbeat 10 s instead of 60);
 *   hole     OUTAGE_S of dead radio (the proxy's blackout: nothing moves),
 *            10,000 events queued at its start;
 *   drain    from the link's return until the outbox is empty.
 *
 * The figure is the issue's "same drain through a slow link": the requests
 * that ended from the start of the hole to the end of the drain, and the
 * new connections over that window (the TCP connections the proxy accepted:
 * each one a TCP + TLS handshake attempt; libcurl's CURLINFO_NUM_CONNECTS
 * printed alongside counts only those that succeeded). Figure: 100 x
 * (requests - new connections) / requests. The hole is a short coverage
 * hole, as on LTE: the radio stops, the operator's NAT keeps the TCP state
 * for minutes, so the connection is still there when the link returns and
 * the agent must not have thrown it away.
 *
 * The reset case (a "#" line, same window): the hole ends with every
 * connection reset (the NAT forgot them). One new handshake per such
 * outage is the floor there (1 in ~27 requests of the drain: at most
 * ~96 %), so its ratio is printed against that floor, with how many of the
 * new connections resumed their TLS session (nginx's $ssl_session_reused).
 * The online period is printed apart. The enrollment and the engine's first
 * connection (set-up) are not counted. */
#define ONLINE_S 30
#define OUTAGE_S 20

struct tls_run {
	double pct, drain_ratio;
	long long req, conns, resumed, full;
};

/* The connections nginx saw after the first skip, resumed or not. */
static void tls_sessions(const struct env *e, long long skip, long long *resumed, long long *full)
{
	int rc = tlsfront_sessions(&e->tls, skip, resumed, full);
	if (rc < 0)
		die("reading nginx's access log", rc);
}

static void tls_once(int reset, struct tls_run *out)
{
	struct env e;
	long code;
	env_open(&e, 3600, LINK_TLS_LTE);
	make_incidents(&e);
	past_feed(&e);
	/* set-up, not counted: the engine started, its first connection made
	 * (the heartbeat answered, the long poll parked) */
	if (sync_start(e.s) < 0)
		die("sync_start", -1);
	RUN_UNTIL(&e, sync_online(e.s), 10000);
	RUN_UNTIL(&e, 0, 500);
	if (!sync_online(e.s))
		die("going online through TLS", -1);
	struct sync_stats st0, st1, st2;
	struct proxy_stats p0, p1, pb, p2;
	long long skip, r0, f0;
	tls_sessions(&e, 0, &r0, &f0);
	skip = r0 + f0; /* the enrollment's and the set-up's connections */
	sync_get_stats(e.s, &st0);
	proxy_stats(&e.px, &p0);
	/* online */
	RUN_UNTIL(&e, 0, ONLINE_S * 1000);
	sync_get_stats(e.s, &st1);
	proxy_stats(&e.px, &p1);
	/* the hole */
	proxy_cmd(&e.px, "blackout on");
	queue_10k(&e);
	sync_kick(e.s);
	RUN_UNTIL(&e, 0, OUTAGE_S * 1000);
	if (reset)
		proxy_cmd(&e.px, "reset all");
	proxy_cmd(&e.px, "blackout off");
	proxy_stats(&e.px, &pb);
	int64_t back = bench_now_ns();
	/* drain: from the link's return, and from the first batch sent after it */
	struct sync_stats sb;
	sync_get_stats(e.s, &sb);
	uint64_t batches0 = sb.events_batches;
	RUN_UNTIL(&e, (sync_get_stats(e.s, &sb), sb.events_batches > batches0), 60000);
	int64_t first = bench_now_ns();
	int64_t left = 1;
	RUN_UNTIL(&e, (store_outbox_count(e.t.s, &left), left == 0), 180000);
	if (left)
		die("draining through TLS", (long)left);
	double wall_ms = (double)(bench_now_ns() - back) / 1e6;
	double from_first_ms = (double)(bench_now_ns() - first) / 1e6;
	past_feed_held(&e);
	sync_get_stats(e.s, &st2);
	proxy_stats(&e.px, &p2);
	cJSON_Delete(refsrv_admin(&e.srv, "GET", "/admin/health", NULL, &code));
	tls_sessions(&e, skip, &out->resumed, &out->full);
	env_close(&e);
	long long online_req = (long long)(st1.requests - st0.requests);
	long long online_conns = p1.accepted - p0.accepted;
	out->req = (long long)(st2.requests - st1.requests);
	out->conns = p2.accepted - p1.accepted;
	long long curl_conns = (long long)(st2.connects - st1.connects);
	long long h2 = (long long)(st2.http2 - st1.http2);
	out->pct = out->req ? 100.0 * (double)(out->req - out->conns) / (double)out->req : 0;
	double up = (double)(p2.bytes_up - pb.bytes_up);
	out->drain_ratio = wall_ms / (up * 8 / LTE_UP_KBIT + 2 * LTE_RTT_MS);
	printf("# TLS run (%s): hole + drain %lld requests, %lld over HTTP/2, %lld new "
	       "connections at the proxy (%lld during the hole), libcurl NUM_CONNECTS %lld, "
	       "%llu abandoned as silent; %lld of the new connections resumed their TLS "
	       "session, %lld full handshakes; online before: %lld requests, %lld new "
	       "connections\n",
	       reset ? "20 s hole, then reset" : "20 s hole", out->req, h2, out->conns,
	       pb.accepted - p1.accepted, curl_conns,
	       (unsigned long long)(st2.conns_abandoned - st0.conns_abandoned), out->resumed,
	       out->full, online_req, online_conns);
	printf("# TLS run: drain after the link returned %.0f ms, %.2f x its floor (%.0f bytes up "
	       "incl. TLS; any backoff left from the hole included); from the first batch sent "
	       "%.0f ms, %.2f x\n",
	       wall_ms, out->drain_ratio, up, from_first_ms,
	       from_first_ms / (up * 8 / LTE_UP_KBIT + 2 * LTE_RTT_MS));
}

static void bench_tls(void)
{
	enum { RUNS_MAX = 9 };
	/* ESS_BENCH_TLS_RUNS: runs of each case (default 3; fewer while working
	 * on it) */
	const char *env = getenv("ESS_BENCH_TLS_RUNS");
	int runs = env && atoi(env) > 0 && atoi(env) <= RUNS_MAX ? atoi(env) : 3;
	double pct[RUNS_MAX], rpct[RUNS_MAX], rfloor[RUNS_MAX], rres[RUNS_MAX];
	struct tls_run t;
	for (int i = 0; i < runs; i++) {
		tls_once(1, &t);
		rpct[i] = t.pct;
		/* the floor: one new connection for the whole window */
		rfloor[i] = t.req ? 100.0 * (double)(t.req - 1) / (double)t.req : 0;
		rres[i] = (double)t.resumed;
	}
	for (int i = 0; i < runs; i++) {
		tls_once(0, &t);
		pct[i] = t.pct;
	}
	double rp = bench_median(rpct, (size_t)runs), rf = bench_median(rfloor, (size_t)runs);
	printf("# tls reuse, reset case (the hole ends with every connection reset: one new "
	       "TCP + TLS handshake is the floor): median %.1f %% of the hole + drain's requests "
	       "on a reused connection, the floor %.1f %% (ratio %.3f); median %.0f of the new "
	       "connections resumed their TLS session\n",
	       rp, rf, rf > 0 ? rp / rf : 0, bench_median(rres, (size_t)runs));
	printf("# tls_reuse_pct: requests on a connection already open / all requests that "
	       "ended from the start of a %d s coverage hole (no reset: the NAT kept the "
	       "connection) to the end of the drain of the 10,000 events queued in it, over "
	       "TLS + HTTP/2 through rural LTE, after %d s online (long poll 2 s, heartbeat 10 "
	       "s: shortened for the bench); median of %d\n",
	       OUTAGE_S, ONLINE_S, runs);
	bench_figure("sync.tls_reuse_pct", bench_median(pct, (size_t)runs), 1, "%", ">=", 99);
}

/* A city drive as a receiver reports it: driving spells of 3-8 min and
 * stops of 1-5 min (traffic, on scene); speed and heading change smoothly;
 * the position error wanders (correlated, not white); the accuracy
 * estimate drifts by a decimetre now and then. */
static void make_track(struct store_fix *fx, int n)
{
	struct bench_rng r = {11};
	double lat = 13.7563, lon = 100.5018, heading = 90, speed = 8, nlat = 0, nlon = 0;
	int acc = 45, moving = 1, spell = 300;
	for (int i = 0; i < n; i++) {
		if (--spell <= 0) {
			moving = !moving;
			spell = moving ? 180 + (int)bench_rng_below(&r, 300)
			               : 60 + (int)bench_rng_below(&r, 240);
		}
		if (moving) {
			heading += bench_rng_gauss(&r) * 2;
			heading = heading < 0      ? heading + 360
			          : heading >= 360 ? heading - 360
			                           : heading;
			speed += bench_rng_gauss(&r) * 0.4;
			speed = speed < 1 ? 1 : speed > 20 ? 20 : speed;
		} else {
			speed = 0;
		}
		lat += speed * cos(heading * M_PI / 180) / 111320.0;
		lon += speed * sin(heading * M_PI / 180) / 108000.0;
		nlat = 0.9 * nlat + bench_rng_gauss(&r) * 3e-6;
		nlon = 0.9 * nlon + bench_rng_gauss(&r) * 3e-6;
		if (bench_rng_below(&r, 4) == 0)
			acc += bench_rng_below(&r, 2) ? 1 : -1;
		acc = acc < 20 ? 20 : acc > 120 ? 120 : acc;
		fx[i] = (struct store_fix){.t_ms = 1764400000000 + (int64_t)i * 1000,
		                           .lat_e7 = (int32_t)lround((lat + nlat) * 1e7),
		                           .lon_e7 = (int32_t)lround((lon + nlon) * 1e7),
		                           .accuracy_dm = acc,
		                           .speed_cm_s = (int32_t)lround(speed * 100),
		                           .heading_cdeg =
		                               moving ? (int32_t)lround(heading * 100) % 36000 : -1,
		                           .mode = 3};
	}
}

static int count_requests(const struct refsrv *srv, const char *suffix)
{
	long code;
	cJSON *req = refsrv_admin(srv, "GET", "/admin/requests", NULL, &code);
	const cJSON *it;
	int n = 0;
	size_t sl = strlen(suffix);
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(req, "requests"))
	{
		const cJSON *p = cJSON_GetArrayItem(it, 2);
		if (cJSON_IsString(p) && strlen(p->valuestring) >= sl &&
		    strcmp(p->valuestring + strlen(p->valuestring) - sl, suffix) == 0)
			n++;
	}
	cJSON_Delete(req);
	return n;
}

static void bench_fixes(void)
{
	struct env e;
	enum { N = 3600 };
	static struct store_fix fx[N];
	struct proxy_stats p0, p1;
	make_track(fx, N);
	/* Through a transparent proxy that counts the bytes: the engine online
	 * (uploading positions every second, when there are any),
	 * its long poll parked and its first heartbeat done, then an hour of
	 * fixes appears at once (as when the link returns). */
	env_open(&e, 1, LINK_COUNTED);
	sync_start(e.s);
	RUN_UNTIL(&e, sync_online(e.s), 5000);
	RUN_UNTIL(&e, 0, 500);
	struct sync_stats st0 = {0}, st = {0};
	sync_get_stats(e.s, &st0);
	proxy_stats(&e.px, &p0);
	for (int i = 0; i < N; i++)
		if (store_pos_append(e.t.s, &fx[i]) < 0)
			die("storing fixes", i);
	if (store_pos_flush(e.t.s) < 0)
		die("store_pos_flush", -1);
	sync_kick(e.s);
	RUN_UNTIL(&e, (sync_get_stats(e.s, &st), st.fixes_sent >= N), 30000);
	if (st.fixes_sent < N)
		die("uploading fixes", (long)st.fixes_sent);
	RUN_UNTIL(&e, 0, 100);
	proxy_stats(&e.px, &p1);
	int nreq = count_requests(&e.srv, "/positions");
	env_close(&e);

	/* Where the bytes go: the body as the engine builds it and gzips it
	 * (when it went in one request); the rest is the HTTP framing. */
	size_t jlen = 0, glen = 0, g6 = 0;
	char *json = proto_fixes_json(fx, N, &jlen);
	unsigned char *gz = NULL;
	if (!json || proto_gzip_level(json, jlen, 9, &gz, &glen) < 0)
		die("encoding the fixes", -1);
	free(gz);
	gz = NULL;
	if (proto_gzip_level(json, jlen, 6, &gz, &g6) < 0)
		die("encoding the fixes", -1);
	free(gz);
	free(json);
	long long up = p1.bytes_up - p0.bytes_up, down = p1.bytes_down - p0.bytes_down;
	printf("# fixes: %d sent in %d request(s), %llu requests in the window; on the wire "
	       "(counted at the proxy): %lld bytes up, %lld down\n",
	       N, nreq, (unsigned long long)(st.requests - st0.requests), up, down);
	printf("# fixes: the engine's own counters say %llu up, %llu down (libcurl's "
	       "REQUEST_SIZE + SIZE_UPLOAD: the body counted twice)\n",
	       (unsigned long long)(st.pos_bytes_up - st0.pos_bytes_up),
	       (unsigned long long)(st.pos_bytes_down - st0.pos_bytes_down));
	printf("# fixes body: %zu bytes JSON (%.1f per fix), %zu gzip -9 (%.2f per fix; -6: "
	       "%zu)\n",
	       jlen, (double)jlen / N, glen, (double)glen / N, g6);
	if (nreq == 1)
		printf("# fixes: HTTP framing (request and answer headers, answer body): %lld "
		       "bytes (%.3f per fix); the gzip'd fixes are %.1f %% of the wire\n",
		       up + down - (long long)glen, ((double)(up + down) - (double)glen) / N,
		       100.0 * (double)glen / (double)(up + down));
	bench_figure("sync.wire_bytes_per_fix", (double)(up + down) / N, 2, "B", "<=", 20);
}

static void bench_assign(void)
{
	struct env e;
	enum { N = 200 };
	static double lat[N], post[N];
	env_open(&e, 3600, LINK_DIRECT);
	sync_start(e.s);
	RUN_UNTIL(&e, sync_online(e.s), 5000);
	RUN_UNTIL(&e, 0, 300); /* the first long poll is parked at the server */
	for (int i = 0; i < N; i++) {
		char doc[1024];
		long code;
		snprintf(doc, sizeof(doc),
		         "{\"id\":\"INC-B-%d\",\"category\":\"assault_threat\",\"priority\":1,"
		         "\"silent\":false,\"reported_at\":\"2026-11-28T10:31:02.120Z\","
		         "\"location\":{\"lat\":13.75,\"lon\":100.5,\"accuracy_m\":8},"
		         "\"address\":\"ซอยทดสอบ 5\",\"summary\":\"bench\",\"unit\":\"" UNIT "\"}",
		         i);
		int before = e.incidents;
		int64_t t0 = bench_now_ns();
		cJSON_Delete(refsrv_admin(&e.srv, "POST", "/admin/incidents", doc, &code));
		post[i] = (double)(bench_now_ns() - t0) / 1e6;
		if (code != 201)
			die("POST /admin/incidents", code);
		RUN_UNTIL(&e, e.incidents > before, 10000);
		if (e.incidents <= before)
			die("an assignment arriving", i);
		lat[i] = (double)(bench_now_ns() - t0) / 1e6;
		RUN_UNTIL(&e, 0, 5); /* let the receipt go and the poll re-park */
	}
	env_close(&e);
	double mean = 0;
	for (int i = 0; i < N; i++)
		mean += lat[i] / N;
	double p50 = bench_percentile(lat, N, 50), p99 = bench_percentile(lat, N, 99);
	double max = bench_percentile(lat, N, 100);
	double b50 = bench_percentile(post, N, 50), b99 = bench_percentile(post, N, 99);
	printf("# assign: %d incidents, mean %.2f ms, max %.2f ms; baseline (the dispatcher's "
	       "POST alone, a new connection each): p50 %.2f ms, p99 %.2f ms\n",
	       N, mean, max, b50, b99);
	bench_figure("sync.assign_p50_ms", p50, 2, "ms", "<=", 50);
	bench_figure("sync.assign_p99_ms", p99, 2, "ms", "<=", 50);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	log_open("bench_sync", LOG_TARGET_STDERR, LOG_LEVEL_ERR);
	/* ESS_BENCH_ONLY=drain|fixes|assign|lte|tls: one part (while working on it) */
	const char *only = getenv("ESS_BENCH_ONLY");
#define PART(name, fn)                                                                             \
	if (!only || !only[0] || strcmp(only, name) == 0)                                          \
	fn()
	PART("drain", bench_drain);
	PART("fixes", bench_fixes);
	PART("assign", bench_assign);
	PART("lte", bench_drain_lte);
	PART("tls", bench_tls);
#undef PART
	curl_global_cleanup();
	return 0;
}

/* The sync engine against the reference server on loopback:
 *
 *   sync.drain_cpu_ms_10k   agent CPU (getrusage, user + system) to drain
 *                           10,000 queued events; the server is another
 *                           process and not counted
 *   sync.wire_bytes_per_fix bytes on the wire (HTTP headers included, both
 *                           ways) per fix for a 1 Hz track after 1 h offline
 *   sync.assign_p50_ms      assignment created through the dispatcher API →
 *   sync.assign_p99_ms      stored on the device, 200 assignments, long poll
 *
 * The server program is $ESS_REFSERVER_CMD or $ESS_BUILD/ess-refserver. */
#include "agent/config.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "agent/store.h"
#include "sync/proto.h"
#include "sync/sync.h"
#include "tests/bench/bench.h"
#include "tests/lib/testutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

struct env {
	char *dir;
	pid_t srv;
	char base[128];
	struct tu_store t;
	struct config cfg;
	struct loop *l;
	struct sync *s;
	int incidents, drained;
};

static pid_t srv_pid;

static void srv_stop(void)
{
	if (srv_pid > 0) {
		kill(srv_pid, SIGTERM);
		waitpid(srv_pid, NULL, 0);
		srv_pid = 0;
	}
}

static void die(const char *what, long rc)
{
	srv_stop();
	bench_die(what, rc);
}

static void srv_start(struct env *e)
{
	char pf[600], cmd[1400], path[512];
	const char *custom = getenv("ESS_REFSERVER_CMD"), *build = getenv("ESS_BUILD");
	snprintf(pf, sizeof(pf), "%s/port", e->dir);
	if (custom && custom[0]) {
		snprintf(cmd, sizeof(cmd), "exec %s --port-file %s", custom, pf);
	} else {
		snprintf(path, sizeof(path), "%s/ess-refserver", build ? build : "build/host");
		if (access(path, X_OK) != 0)
			die("finding the reference server program", -ENOENT);
		snprintf(cmd, sizeof(cmd), "exec %s --port-file %s", path, pf);
	}
	if ((srv_pid = fork()) == 0) {
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 1);
		dup2(fd, 2);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		FILE *f = fopen(pf, "r");
		int port = 0;
		if (f) {
			int ok = fscanf(f, "%d", &port) == 1;
			fclose(f);
			if (ok && port > 0) {
				snprintf(e->base, sizeof(e->base), "http://127.0.0.1:%d", port);
				return;
			}
		}
		usleep(50000);
	}
	die("starting the reference server", -ETIMEDOUT);
}

static size_t sink(char *d, size_t sz, size_t nm, void *arg)
{
	(void)d;
	(void)arg;
	return sz * nm;
}

static void admin_post(struct env *e, const char *path, const char *json)
{
	static CURL *c;
	char url[512];
	if (!c)
		c = curl_easy_init();
	snprintf(url, sizeof(url), "%s%s", e->base, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	long code = 0;
	if (curl_easy_perform(c) != CURLE_OK ||
	    (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code), code >= 300))
		die("an admin call", code);
}

static void on_note(void *arg, const struct sync_note *n)
{
	struct env *e = arg;
	if (n->kind == SYNC_NOTE_INCIDENT)
		e->incidents++;
	if (n->kind == SYNC_NOTE_DRAINED)
		e->drained++;
}

static void env_open(struct env *e, int upload_s)
{
	char err[256];
	memset(e, 0, sizeof(*e));
	e->dir = tu_tmpdir("bsync");
	bench_tmp = e->dir;
	srv_start(e);
	if (tu_store_open(&e->t, e->dir, 1) < 0)
		die("opening a store", -1);
	config_defaults(&e->cfg);
	snprintf(e->cfg.server.url, sizeof(e->cfg.server.url), "%s/api", e->base);
	e->cfg.server.long_poll_s = 25;
	if (loop_open(&e->l) < 0)
		die("loop", -1);
	struct sync_enroll_info info = {.token = "bench-token", .serial = "B1", .board = "host"};
	int rc = sync_enroll(e->l, e->t.s, &e->cfg, &info, err, sizeof(err));
	if (rc < 0)
		die("enrolling", rc);
	struct sync_params p = {.loop = e->l,
	                        .store = e->t.s,
	                        .cfg = &e->cfg,
	                        .note = on_note,
	                        .arg = e,
	                        .position_upload_s = upload_s};
	if ((rc = sync_open(&p, &e->s, err, sizeof(err))) < 0)
		die("sync_open", rc);
}

static void env_close(struct env *e)
{
	sync_close(e->s);
	tu_store_close(&e->t);
	loop_close(e->l);
	srv_stop();
	tu_rmrf(e->dir);
	bench_tmp = NULL;
}

static double cpu_ms(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
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

static void bench_drain(void)
{
	struct env e;
	env_open(&e, 3600);
	struct bench_rng r = {7};
	store_begin(e.t.s);
	for (int i = 0; i < 10000; i++) {
		struct proto_event ev = {.incident_version = 1 + bench_rng_below(&r, 3),
		                         .at_ms = 1764400000000 + i * 1000,
		                         .clock = PROTO_CLOCK_GPS,
		                         .has_location = 1,
		                         .lat = 13.7 + bench_rng_unit(&r) / 10,
		                         .lon = 100.5 + bench_rng_unit(&r) / 10,
		                         .accuracy_m = 5 + bench_rng_below(&r, 20)};
		snprintf(ev.incident_id, sizeof(ev.incident_id), "INC-2568-%06u",
		         bench_rng_below(&r, 1000000));
		if (i % 4 == 3) {
			ev.type = PROTO_EV_NOTE;
			ev.text = notes_th[bench_rng_below(&r, 3)];
		} else {
			ev.type = PROTO_EV_STATUS;
			ev.status = PROTO_STATUS_ACKNOWLEDGED + bench_rng_below(&r, 3);
		}
		if (sync_event_queue(e.t.s, &ev, NULL, NULL) < 0)
			die("queueing events", -1);
	}
	store_commit(e.t.s);
	double c0 = cpu_ms();
	int64_t w0 = loop_now_ms();
	sync_start(e.s);
	int64_t left = 1;
	RUN_UNTIL(&e, e.drained && (store_outbox_count(e.t.s, &left), left == 0), 120000);
	double cpu = cpu_ms() - c0;
	struct sync_stats st;
	sync_get_stats(e.s, &st);
	printf("# drain: %llu events delivered in %llu requests, %lld ms wall, %llu bytes up\n",
	       (unsigned long long)st.events_delivered, (unsigned long long)st.requests,
	       (long long)(loop_now_ms() - w0), (unsigned long long)st.bytes_up);
	if (left != 0 || st.events_delivered < 10000)
		die("draining 10,000 events", (long)left);
	bench_figure("sync.drain_cpu_ms_10k", cpu, 1, "ms", "<=", 100);
	env_close(&e);
}

static void bench_fixes(void)
{
	struct env e;
	enum { N = 3600 };
	env_open(&e, 3600);
	/* A city drive as a receiver reports it: driving spells of 3-8 min and
	 * stops of 1-5 min (traffic, on scene); speed and heading change
	 * smoothly; the position error wanders (correlated, not white); the
	 * accuracy estimate drifts by a decimetre now and then. */
	struct bench_rng r = {11};
	double lat = 13.7563, lon = 100.5018, heading = 90, speed = 8, nlat = 0, nlon = 0;
	int acc = 45, moving = 1, spell = 300;
	for (int i = 0; i < N; i++) {
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
		struct store_fix f = {.t_ms = 1764400000000 + (int64_t)i * 1000,
		                      .lat_e7 = (int32_t)lround((lat + nlat) * 1e7),
		                      .lon_e7 = (int32_t)lround((lon + nlon) * 1e7),
		                      .accuracy_dm = acc,
		                      .speed_cm_s = (int32_t)lround(speed * 100),
		                      .heading_cdeg =
		                          moving ? (int32_t)lround(heading * 100) % 36000 : -1,
		                      .mode = 3};
		if (store_pos_append(e.t.s, &f) < 0)
			die("storing fixes", i);
	}
	store_pos_flush(e.t.s);
	sync_start(e.s);
	struct sync_stats st = {0};
	RUN_UNTIL(&e, (sync_get_stats(e.s, &st), st.fixes_sent >= N), 30000);
	if (st.fixes_sent < N)
		die("uploading fixes", (long)st.fixes_sent);
	double per = (double)(st.pos_bytes_up + st.pos_bytes_down) / N;
	printf("# fixes: %d sent, %llu bytes up, %llu down\n", N,
	       (unsigned long long)st.pos_bytes_up, (unsigned long long)st.pos_bytes_down);
	bench_figure("sync.wire_bytes_per_fix", per, 2, "B", "<=", 20);
	env_close(&e);
}

static void bench_assign(void)
{
	struct env e;
	enum { N = 200 };
	double lat[N];
	env_open(&e, 3600);
	sync_start(e.s);
	RUN_UNTIL(&e, sync_online(e.s), 5000);
	RUN_UNTIL(&e, 0, 300); /* the first long poll is parked at the server */
	for (int i = 0; i < N; i++) {
		char doc[1024];
		snprintf(doc, sizeof(doc),
		         "{\"id\":\"INC-B-%d\",\"version\":1,\"category\":\"assault_threat\","
		         "\"priority\":1,\"silent\":false,\"state\":\"assigned\","
		         "\"reported_at\":\"2026-11-28T10:31:02.120Z\",\"location\":{\"lat\":13.75,"
		         "\"lon\":100.5,\"accuracy_m\":8},\"summary\":\"bench\",\"unit\":\"NST-"
		         "RESP-04\"}",
		         i);
		int before = e.incidents;
		int64_t t0 = bench_now_ns();
		admin_post(&e, "/admin/assign", doc);
		RUN_UNTIL(&e, e.incidents > before, 10000);
		if (e.incidents <= before)
			die("an assignment arriving", i);
		lat[i] = (double)(bench_now_ns() - t0) / 1e6;
		RUN_UNTIL(&e, 0, 5); /* let the receipt go and the poll re-park */
	}
	double p50 = bench_percentile(lat, N, 50), p99 = bench_percentile(lat, N, 99);
	bench_figure("sync.assign_p50_ms", p50, 2, "ms", "<=", 50);
	bench_figure("sync.assign_p99_ms", p99, 2, "ms", "<=", 50);
	env_close(&e);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	log_open("bench_sync", LOG_TARGET_STDERR, LOG_LEVEL_ERR);
	bench_drain();
	bench_fixes();
	bench_assign();
	curl_global_cleanup();
	return 0;
}

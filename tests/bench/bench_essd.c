/* essd as a running program: memory, wakeups, CPU and start-up, against a
 * skeleton (tests/bench/skeleton.c: the same libraries, initialised, asleep)
 * measured in the same run. All on loopback: the reference server, real gpsd
 * through gpsfake replaying nmeagen's Bangkok drive at 1 Hz, essd with
 * 10,000 cached incidents in its store and the default configuration (the
 * server's: heartbeat 60 s, long poll 25 s; the trail flushed every 30 s).
 *
 *   essd.startup_vs_skeleton   exec to READY=1 on $NOTIFY_SOCKET, essd with
 *                              10,000 incidents / the skeleton; median of
 *                              BENCH_ROUNDS alternating rounds. Target <= 1.5.
 *   essd.idle_wakeups_per_s    voluntary context switches (all threads) per
 *                              second over 60 s: online with the server,
 *                              empty outbox, no gpsd running (so the GPS
 *                              reconnect attempts, every 30 s once the
 *                              backoff is at its cap, are counted too),
 *                              from 65 s after the start. Target <= 0.2.
 *   essd.rss_anon_mib          RssAnon after 10 minutes at 1 Hz GPS. Target
 *                              <= 6 MiB.
 *   essd.rss_vs_skeleton       VmRSS of essd / VmRSS of the skeleton, both
 *                              at the 10-minute mark. Target <= 1.25.
 *   essd.gps_wakeups_over_gpsd essd's wakeups/s minus gpsd's report rate
 *                              (TPV reports/s, counted by a client of the
 *                              same gpsd), minute 1 to minute 10. Target <= 0.2.
 *   essd.cpu_s_per_h_1hz       utime + stime over the same window, scaled to
 *                              an hour. Target <= 36 s (1 % of one core: a
 *                              handheld's CPU must sleep almost all the time).
 *   essd.rss_growth_mib_1h     (ESS_BENCH_LONG=1 only) RssAnon at 60 min
 *                              minus RssAnon at 1 min. Target <= 1 MiB.
 *   essd.rss_growth_mib_10min  (the default run) the same from minute 1 to
 *                              minute 10: not the 1-hour figure.
 *
 * Run by `make bench-essd` (about 13 minutes) and `make bench-long` (about
 * 63): it needs ESS_BENCH_ESSD=1, otherwise it says so and exits (plain
 * `make bench` stays short). ESS_BENCH_ESSD_S=N shortens the GPS run for
 * development: the values are then printed as "# " lines only, never as
 * figures. ESS_BENCH_ESSD_ONLY=startup (or idle, gps, or a list of them)
 * runs only those phases: start-up alone takes about 10 s (the store is
 * filled, then the rounds), for working on start-up; ESS_BENCH_ESSD_ROUNDS=N
 * (3..51) takes the median of N start-up rounds (N made odd) instead of
 * BENCH_ROUNDS; with ESS_BENCH_KEEP=1 the directory (store, essd.conf) is
 * kept for profiling essd by hand. */
#include "agent/ctl_client.h"
#include "agent/store.h"
#include "tests/bench/bench.h"
#include "tests/lib/essdenv.h"
#include "tests/lib/proc.h"
#include "tests/lib/refsrv.h"
#include "tests/lib/testutil.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNIT          "BKK-AMB-042"
#define TOKEN         "bench-essd-enroll-token"
#define N_INCIDENTS   10000
#define N_ACTIVE      20 /* assigned and not final: the recording policy runs at 1 Hz */
#define IDLE_S        60
#define IDLE_SETTLE_S 65 /* from start to the idle window */
#define WARMUP_S      60 /* the GPS window starts here: caches filled, first sync done */
#define MIB           1048576.0

static struct refsrv srv;
static pid_t essd_pid, skel_pid, fake_pid;
static char build[400], conf[600], sock[600], notify_path[600];
static int notify_fd = -1, gps_port, watch_fd = -1;

/* ---- processes ---- */

static char notify_env[640];

/* Child output to log; with notify, $NOTIFY_SOCKET is ours (and the
 * caller's own, if any, is never passed on). */
static pid_t spawn(const char *log, char *const argv[], int notify)
{
	char *env[] = {notify ? notify_env : "NOTIFY_SOCKET", NULL};
	return tp_spawn(log, argv, env);
}

static int stop(pid_t *pid, int wait_ms)
{
	return tp_stop(pid, SIGTERM, wait_ms);
}

static void cleanup(void)
{
	stop(&essd_pid, 3000);
	stop(&skel_pid, 3000);
	stop(&fake_pid, 3000);
	refsrv_stop(&srv);
	if (watch_fd >= 0)
		close(watch_fd);
	if (notify_fd >= 0)
		close(notify_fd);
}

static void die(const char *what, long rc)
{
	cleanup();
	bench_die(what, rc);
}

/* ---- /proc ---- */

/* A "Key: value" number from /proc/PID/status (kB for sizes); -1 if absent. */
static long proc_status(pid_t pid, const char *task, const char *key)
{
	char path[128], line[256];
	long v = -1;
	size_t kl = strlen(key);
	if (task)
		snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, task);
	else
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* Voluntary context switches of every thread of pid (libcurl may resolve in
 * a thread; the status of the process alone counts only its main thread). */
static long vcs(pid_t pid)
{
	char path[64];
	long sum = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	struct dirent *de;
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.') {
			long v = proc_status(pid, de->d_name, "voluntary_ctxt_switches");
			if (v > 0)
				sum += v;
		}
	closedir(d);
	return sum;
}

/* utime + stime of pid in seconds. */
static double cpu_s(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* the command may contain spaces */
	unsigned long ut = 0, st = 0;
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- readiness: READY=1 on our NOTIFY_SOCKET, as systemd sees it ---- */

static void notify_open(const char *dir)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(notify_path, sizeof(notify_path), "%s/notify", dir);
	if (strlen(notify_path) >= sizeof(a.sun_path))
		die("notify socket path too long", -ENAMETOOLONG);
	memcpy(a.sun_path, notify_path, strlen(notify_path) + 1);
	snprintf(notify_env, sizeof(notify_env), "NOTIFY_SOCKET=%s", notify_path);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (notify_fd < 0 || bind(notify_fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("notify socket", -errno);
}

static void notify_drain(void)
{
	char buf[512];
	while (recv(notify_fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

/* Waits for a datagram with READY=1; returns the time it arrived (ns). */
static int64_t wait_ready(pid_t pid, int timeout_ms)
{
	int64_t until = tu_now_ms() + timeout_ms;
	char buf[512];
	while (tu_now_ms() < until) {
		struct pollfd p = {.fd = notify_fd, .events = POLLIN};
		if (poll(&p, 1, 100) == 1) {
			ssize_t n = recv(notify_fd, buf, sizeof(buf) - 1, 0);
			int64_t t = bench_now_ns();
			if (n > 0) {
				buf[n] = 0;
				if (strstr(buf, "READY=1"))
					return t;
			}
		}
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
	}
	return -1;
}

/* ---- essd and its control socket ---- */

static cJSON *ctl(const char *method)
{
	return ee_ctl_call(sock, method, NULL, 10000);
}

/* status.result.a[.b] as a number (true = 1), -1 when absent. */
static double status_num(const char *a, const char *b)
{
	return ee_ctl_status_num(sock, a, b, 10000);
}

static void write_conf(const char *dir, int gport)
{
	char serial[600];
	snprintf(serial, sizeof(serial), "%s/serial", dir);
	FILE *f = fopen(serial, "w");
	if (!f)
		die("serial file", -errno);
	fputs("SN-BENCH-ESSD-1\n", f);
	fclose(f);
	f = fopen(conf, "w");
	if (!f)
		die("config file", -errno);
	/* Paths and endpoints only: every tunable at its default (docs/config.md),
	 * what a device runs unless configured otherwise. */
	fprintf(f,
	        "[log]\nlevel = info\n"
	        "[store]\ndir = %s/store\n"
	        "[keystore]\nbackend = file\nkey_file = %s/store/kek\n"
	        "[server]\nurl = %s\n"
	        "[gps]\nhost = 127.0.0.1\nport = %d\n"
	        "[control]\nsocket = %s\n[device]\nboard = host\nserial_file = %s\n",
	        dir, dir, srv.api_url, gport, sock, serial);
	fclose(f);
}

static int run_wait(char *const argv[], const char *log)
{
	pid_t p = spawn(log, argv, 0);
	int st;
	if (waitpid(p, &st, 0) != p)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* ~1.2 KB incident documents with Thai text, as dispatch sends them. */
static size_t make_incident(struct bench_rng *r, int i, char *buf, size_t cap)
{
	static const char *const names[] = {"สมชาย ใจดี", "สมหญิง รักษ์ไทย", "ประเสริฐ วงศ์สวัสดิ์",
	                                    "วิไลวรรณ ศรีสุข"};
	static const char *const text[] = {
	    "ผู้แจ้งแจ้งว่าผู้ป่วยเป็นชายอายุประมาณหกสิบปี หมดสติในห้องน้ำ",
	    "มีอาการเจ็บแน่นหน้าอก เหงื่อออก ใจสั่น ตั้งแต่ประมาณสามสิบนาทีที่แล้ว",
	    "รถจักรยานยนต์ชนกับรถเก๋งบริเวณทางแยก ผู้บาดเจ็บนอนอยู่บนถนน",
	    "ทางเข้าคับแคบ รถพยาบาลขนาดใหญ่อาจเข้าไม่ได้ แนะนำให้จอดหน้าวัด",
	};
	return (size_t)snprintf(
	    buf, cap,
	    "{\"id\":\"INC-B-%06d\",\"unit\":\"" UNIT "\",\"category\":\"medical\",\"priority\":%u,"
	    "\"silent\":false,\"location\":{\"lat\":13.%06u,\"lon\":100.%06u,\"accuracy_m\":8,"
	    "\"address\":\"%u/%u ถนนสุขุมวิท ซอย %u แขวงคลองเตยเหนือ เขตวัฒนา กรุงเทพมหานคร\"},"
	    "\"summary\":\"%s %s\",\"reporter\":{\"name\":\"%s\",\"phone\":\"+66 8%u %03u %04u\"}}",
	    i, 1 + bench_rng_below(r, 3), 650000 + bench_rng_below(r, 200000),
	    400000 + bench_rng_below(r, 250000), 1 + bench_rng_below(r, 999),
	    1 + bench_rng_below(r, 99), 1 + bench_rng_below(r, 101), text[bench_rng_below(r, 4)],
	    text[bench_rng_below(r, 4)], names[bench_rng_below(r, 4)], bench_rng_below(r, 10),
	    bench_rng_below(r, 1000), bench_rng_below(r, 10000));
}

/* 10,000 incidents put into the provisioned store directly (the server
 * sending them one by one would take minutes and measure the server). */
static void fill_store(const char *store_dir)
{
	struct tu_store t;
	struct bench_rng r = {42};
	static const unsigned char sig[STORE_SIG_BYTES];
	char doc[4096];
	size_t total = 0;
	if (tu_store_open(&t, store_dir, 0) < 0)
		die("opening the provisioned store", -1);
	int64_t now = tu_now_ms();
	for (int i = 0; i < N_INCIDENTS; i++) {
		char id[32];
		size_t len = make_incident(&r, i, doc, sizeof(doc));
		int active = i >= N_INCIDENTS - N_ACTIVE;
		snprintf(id, sizeof(id), "INC-B-%06d", i);
		int rc = store_incident_put(
		    t.s, id, 1, active ? STORE_DISPATCH_ASSIGNED : STORE_DISPATCH_CLOSED, now, doc,
		    len, sig);
		if (rc < 0)
			die("store_incident_put", rc);
		total += len;
	}
	int64_t n = 0;
	if (store_incident_count(t.s, &n) < 0 || n != N_INCIDENTS)
		die("store_incident_count", (long)n);
	tu_store_close(&t);
	printf("# store: %d incidents (%zu B of JSON each on average, %d active)\n", N_INCIDENTS,
	       total / N_INCIDENTS, N_ACTIVE);
}

static pid_t start_essd(const char *dir)
{
	char prog[500], log[600];
	snprintf(prog, sizeof(prog), "%s/essd", build);
	snprintf(log, sizeof(log), "%s/essd.log", dir);
	char *argv[] = {prog, "run", "-c", conf, NULL};
	return spawn(log, argv, 1);
}

static pid_t start_skeleton(const char *dir, int with_gps)
{
	char prog[500], log[600], port[16];
	snprintf(prog, sizeof(prog), "%s/bench/skeleton", build);
	snprintf(log, sizeof(log), "%s/skeleton.log", dir);
	snprintf(port, sizeof(port), "%d", gps_port);
	char *argv[] = {prog, with_gps ? port : NULL, NULL};
	return spawn(log, argv, 1);
}

/* ---- gpsd ---- */

static int tcp_connect(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A gpsd client like essd's: counts the TPV reports gpsd sends. */
static int64_t tpv_count;
static char watch_buf[65536];
static size_t watch_len;

static void watch_read(int timeout_ms)
{
	struct pollfd p = {.fd = watch_fd, .events = POLLIN};
	if (poll(&p, 1, timeout_ms) != 1)
		return;
	ssize_t n = read(watch_fd, watch_buf + watch_len, sizeof(watch_buf) - 1 - watch_len);
	if (n <= 0)
		return;
	watch_len += (size_t)n;
	watch_buf[watch_len] = 0;
	char *line = watch_buf, *nl;
	while ((nl = strchr(line, '\n'))) {
		*nl = 0;
		if (strstr(line, "\"class\":\"TPV\""))
			tpv_count++;
		line = nl + 1;
	}
	watch_len = strlen(line);
	memmove(watch_buf, line, watch_len + 1);
	if (watch_len > sizeof(watch_buf) / 2)
		watch_len = 0; /* no newline in 32 KiB: not gpsd JSON, drop it */
}

static void gps_start(const char *dir, int seconds)
{
	char nmea[600], port[16], log[600], prog[500], secs[16];
	snprintf(nmea, sizeof(nmea), "%s/drive.nmea", dir);
	snprintf(prog, sizeof(prog), "%s/tools/nmeagen", build);
	snprintf(secs, sizeof(secs), "%d", seconds);
	pid_t p = fork();
	if (p == 0) {
		int fd = open(nmea, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		execl(prog, "nmeagen", "--seconds", secs, "--start", "now", (char *)NULL);
		_exit(127);
	}
	int st;
	if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("nmeagen", -1);
	snprintf(port, sizeof(port), "%d", gps_port);
	snprintf(log, sizeof(log), "%s/gpsfake.log", dir);
	/* nmeagen writes three sentences a second (GGA, GSA, RMC): one every
	 * 1/3 s is a 1 Hz receiver. */
	char *argv[] = {"gpsfake", "-P", port, "-1", "-q", "-n", "-c", "0.3333", nmea, NULL};
	fake_pid = spawn(log, argv, 0);
	for (int i = 0; i < 400 && watch_fd < 0; i++) {
		usleep(25000);
		watch_fd = tcp_connect(gps_port);
	}
	if (watch_fd < 0)
		die("gpsd (gpsfake) did not listen", -1);
	static const char w[] = "?WATCH={\"enable\":true,\"json\":true};\n";
	if (write(watch_fd, w, sizeof(w) - 1) != (ssize_t)(sizeof(w) - 1))
		die("gpsd watch", -errno);
}

/* ---- the phases ---- */

#define STARTUP_ROUNDS_MAX 51

static void phase_startup(const char *dir)
{
	double ratio[STARTUP_ROUNDS_MAX], ms_essd[STARTUP_ROUNDS_MAX], ms_skel[STARTUP_ROUNDS_MAX];
	int rounds = BENCH_ROUNDS;
	const char *rs = getenv("ESS_BENCH_ESSD_ROUNDS");
	if (rs && atoi(rs) >= 3 && atoi(rs) <= STARTUP_ROUNDS_MAX)
		rounds = atoi(rs) | 1; /* odd: the median is one round's value */
	for (int r = 0; r < rounds; r++) {
		notify_drain();
		int64_t t0 = bench_now_ns();
		skel_pid = start_skeleton(dir, 0);
		int64_t t1 = wait_ready(skel_pid, 30000);
		if (t1 < 0)
			die("skeleton did not say READY=1", -1);
		stop(&skel_pid, 3000);
		notify_drain();
		int64_t t2 = bench_now_ns();
		essd_pid = start_essd(dir);
		int64_t t3 = wait_ready(essd_pid, 60000);
		if (t3 < 0)
			die("essd did not say READY=1 (see essd.log)", -1);
		/* READY=1 means serving: the control socket answers */
		cJSON *st = ctl("status");
		if (!st)
			die("essd said READY=1 but its control socket did not answer", -1);
		cJSON_Delete(st);
		int rc = stop(&essd_pid, 5000);
		if (rc != 0)
			die("essd did not stop cleanly on SIGTERM", rc);
		ms_skel[r] = (double)(t1 - t0) / 1e6;
		ms_essd[r] = (double)(t3 - t2) / 1e6;
		ratio[r] = ms_essd[r] / ms_skel[r];
		printf("# start-up round %d: essd %.1f ms, skeleton %.1f ms\n", r + 1, ms_essd[r],
		       ms_skel[r]);
	}
	printf("# start-up to READY=1: essd %.1f ms, skeleton %.1f ms (medians of %d)\n",
	       bench_median(ms_essd, (size_t)rounds), bench_median(ms_skel, (size_t)rounds),
	       rounds);
	bench_figure("essd.startup_vs_skeleton", bench_median(ratio, (size_t)rounds), 2, "x",
	             "<=", 1.5);
}

static void phase_idle(const char *dir)
{
	notify_drain();
	int64_t t_start = tu_now_ms();
	essd_pid = start_essd(dir);
	if (wait_ready(essd_pid, 60000) < 0)
		die("essd did not start", -1);
	int64_t until = tu_now_ms() + 60000;
	while (tu_now_ms() < until &&
	       !(status_num("online", NULL) == 1 && status_num("queue", "events") == 0))
		usleep(500000);
	if (status_num("online", NULL) != 1)
		die("essd did not come online", -1);
	/* Idle is the steady state: the start-up requests answered and the GPS
	 * reconnect backoff at its cap (1+2+4+8+16 s, then every 30 s). */
	while (tu_now_ms() < t_start + IDLE_SETTLE_S * 1000)
		usleep(200000);
	long v0 = vcs(essd_pid);
	long iv0 = proc_status(essd_pid, NULL, "nonvoluntary_ctxt_switches");
	int64_t t0 = tu_now_ms();
	sleep(IDLE_S);
	long v1 = vcs(essd_pid);
	long iv1 = proc_status(essd_pid, NULL, "nonvoluntary_ctxt_switches");
	double dt = (double)(tu_now_ms() - t0) / 1000.0;
	if (v0 < 0 || v1 < 0)
		die("reading essd's context switches", -1);
	printf("# idle: %ld voluntary (%ld involuntary) context switches in %.1f s; online, "
	       "empty outbox, no gpsd\n",
	       v1 - v0, iv1 - iv0, dt);
	if (status_num("online", NULL) != 1)
		die("essd went offline during the idle window", -1);
	bench_figure("essd.idle_wakeups_per_s", (double)(v1 - v0) / dt, 3, "/s", "<=", 0.2);
	if (stop(&essd_pid, 5000) != 0)
		die("essd did not stop cleanly", -1);
}

struct sample {
	double t_s;
	long vcs, rss_anon_kib, vm_rss_kib, skel_rss_kib, skel_anon_kib;
	double cpu;
	int64_t tpv;
};

static void take(struct sample *s, int64_t t0)
{
	s->t_s = (double)(tu_now_ms() - t0) / 1000.0;
	s->vcs = vcs(essd_pid);
	s->rss_anon_kib = proc_status(essd_pid, NULL, "RssAnon");
	s->vm_rss_kib = proc_status(essd_pid, NULL, "VmRSS");
	s->skel_rss_kib = proc_status(skel_pid, NULL, "VmRSS");
	s->skel_anon_kib = proc_status(skel_pid, NULL, "RssAnon");
	s->cpu = cpu_s(essd_pid);
	s->tpv = tpv_count;
	if (s->vcs < 0 || s->rss_anon_kib < 0 || s->vm_rss_kib < 0 || s->skel_rss_kib < 0 ||
	    s->cpu < 0)
		die("reading /proc of essd or the skeleton (did one exit?)", -1);
	printf("# t=%4.0f s: essd RssAnon %ld kB, VmRSS %ld kB; skeleton VmRSS %ld kB; "
	       "%ld wakeups, %.2f s CPU; gpsd %lld TPV\n",
	       s->t_s, s->rss_anon_kib, s->vm_rss_kib, s->skel_rss_kib, s->vcs, s->cpu,
	       (long long)s->tpv);
	fflush(stdout);
}

/* Runs until t0 + at_s, reading gpsd's reports meanwhile. */
static void run_until(int64_t t0, int at_s)
{
	while (tu_now_ms() < t0 + (int64_t)at_s * 1000) {
		watch_read(1000);
		if (waitpid(essd_pid, NULL, WNOHANG) == essd_pid) {
			essd_pid = 0;
			die("essd exited during the run", -1);
		}
	}
}

static void gps_figures(const struct sample *a, const struct sample *b, int real)
{
	double dt = b->t_s - a->t_s;
	double wake = (double)(b->vcs - a->vcs) / dt;
	double rate = (double)(b->tpv - a->tpv) / dt;
	double cpu_h = (b->cpu - a->cpu) / dt * 3600.0;
	printf("# 1 Hz GPS, t=%.0f..%.0f s: essd %.3f wakeups/s, gpsd %.3f TPV/s, CPU %.2f s\n",
	       a->t_s, b->t_s, wake, rate, b->cpu - a->cpu);
	printf("# memory at t=%.0f s: RssAnon essd %.2f MiB, skeleton %.2f MiB; VmRSS essd %.2f "
	       "MiB, skeleton %.2f MiB\n",
	       b->t_s, b->rss_anon_kib / 1024.0, b->skel_anon_kib / 1024.0, b->vm_rss_kib / 1024.0,
	       b->skel_rss_kib / 1024.0);
	if (rate < 0.5)
		die("gpsd reported fewer than 0.5 fixes a second: not a 1 Hz run", -1);
	if (!real) {
		printf("# shortened run (ESS_BENCH_ESSD_S): no figure lines; over gpsd %.3f/s, "
		       "CPU %.1f s/h, RssAnon %.2f MiB, RSS ratio %.3f\n",
		       wake - rate, cpu_h, b->rss_anon_kib / 1024.0,
		       (double)b->vm_rss_kib / (double)b->skel_rss_kib);
		return;
	}
	bench_figure("essd.rss_anon_mib", b->rss_anon_kib / 1024.0, 2, "MiB", "<=", 6);
	bench_figure("essd.rss_vs_skeleton", (double)b->vm_rss_kib / (double)b->skel_rss_kib, 3,
	             "x", "<=", 1.25);
	bench_figure("essd.gps_wakeups_over_gpsd", wake - rate, 3, "/s", "<=", 0.2);
	bench_figure("essd.cpu_s_per_h_1hz", cpu_h, 1, "s/h", "<=", 36);
}

static void phase_gps(const char *dir, int run_s, int long_run, int real)
{
	struct sample a, b, c;
	gps_start(dir, run_s + 300);
	notify_drain();
	skel_pid = start_skeleton(dir, 1);
	if (wait_ready(skel_pid, 30000) < 0)
		die("skeleton did not start", -1);
	notify_drain();
	int64_t t0 = tu_now_ms();
	essd_pid = start_essd(dir);
	if (wait_ready(essd_pid, 60000) < 0)
		die("essd did not start", -1);
	printf("# essd pid %d (strace -f -tt -p it to see each wakeup)\n", (int)essd_pid);
	fflush(stdout);
	run_until(t0, WARMUP_S);
	take(&a, t0);
	int ten = real && long_run ? 600 : run_s;
	for (int at = 300; at < ten; at += 300) {
		run_until(t0, at);
		take(&c, t0);
	}
	run_until(t0, ten);
	take(&b, t0);
	if (status_num("last_fix", "age_s") < 0)
		die("essd holds no fix: gpsd's reports did not reach it", -1);
	printf("# essd: %.0f positions queued, online %s\n", status_num("queue", "positions"),
	       status_num("online", NULL) == 1 ? "yes" : "no");
	gps_figures(&a, &b, real);
	if (!long_run || !real) {
		printf("# RssAnon growth t=%.0f..%.0f s: %.3f MiB\n", a.t_s, b.t_s,
		       (b.rss_anon_kib - a.rss_anon_kib) / 1024.0);
		if (real) /* the 10-minute run: its growth under its own name */
			bench_figure("essd.rss_growth_mib_10min",
			             (b.rss_anon_kib - a.rss_anon_kib) / 1024.0, 3, "MiB", "<=", 1);
		return;
	}
	for (int at = 900; at < run_s; at += 300) {
		run_until(t0, at);
		take(&c, t0);
	}
	run_until(t0, run_s);
	take(&c, t0);
	if (status_num("last_fix", "age_s") < 0)
		die("essd holds no fix at the end of the hour", -1);
	printf("# RssAnon growth t=%.0f..%.0f s: %.3f MiB\n", a.t_s, c.t_s,
	       (c.rss_anon_kib - a.rss_anon_kib) / 1024.0);
	bench_figure("essd.rss_growth_mib_1h", (c.rss_anon_kib - a.rss_anon_kib) / 1024.0, 3, "MiB",
	             "<=", 1);
}

int main(void)
{
	const char *on = getenv("ESS_BENCH_ESSD");
	if (!on || strcmp(on, "1") != 0) {
		printf("# bench_essd: the essd.* figures take about 13 minutes: make bench-essd "
		       "(and make bench-long for the 1-hour growth)\n");
		return 0;
	}
#ifndef HAVE_SYSTEMD
	printf("# bench_essd: built without libsystemd: essd sends no READY=1 to time\n");
	return 0;
#endif
	const char *lr = getenv("ESS_BENCH_LONG");
	int long_run = lr && !strcmp(lr, "1");
	int run_s = long_run ? 3600 : 600, real = 1;
	const char *s = getenv("ESS_BENCH_ESSD_S");
	if (s && atoi(s) > 0 && atoi(s) != run_s) {
		run_s = atoi(s) < WARMUP_S + 10 ? WARMUP_S + 10 : atoi(s);
		real = 0;
	}
	if (system("command -v gpsfake >/dev/null 2>&1 && command -v gpsd >/dev/null 2>&1") != 0)
		bench_die("gpsfake and gpsd are needed (boards/deps.sh)", -1);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_CHILD_SUBREAPER, 1); /* gpsfake's gpsd stays ours to reap */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const char *b = getenv("ESS_BUILD");
	snprintf(build, sizeof(build), "%s", b && b[0] ? b : "build/host");
	bench_tmp = tu_tmpdir("bessd");
	const char *dir = bench_tmp;
	char log[600], prog[500], store_dir[600];
	snprintf(conf, sizeof(conf), "%s/essd.conf", dir);
	snprintf(sock, sizeof(sock), "%s/essd.sock", dir);
	snprintf(log, sizeof(log), "%s/srv.log", dir);
	if (refsrv_start(&srv, dir, log) < 0)
		die("reference server", -1);
	if (refsrv_token(&srv, UNIT, TOKEN) < 0)
		die("enrollment token", -1);
	gps_port = tu_free_port(); /* nothing listens until the GPS phase */
	write_conf(dir, gps_port);
	snprintf(prog, sizeof(prog), "%s/essd", build);
	snprintf(log, sizeof(log), "%s/provision.log", dir);
	char *pargv[] = {prog, "provision", "-c", conf, "--token", TOKEN, NULL};
	if (run_wait(pargv, log) != 0)
		die("essd provision", -1);
	snprintf(store_dir, sizeof(store_dir), "%s/store", dir);
	fill_store(store_dir);
	notify_open(dir);

	/* ESS_BENCH_ESSD_ONLY: the phases named (startup, idle, gps), for work
	 * on one figure; the full run takes 13 minutes */
	const char *only = getenv("ESS_BENCH_ESSD_ONLY");
	if (!only || strstr(only, "startup"))
		phase_startup(dir);
	if (!only || strstr(only, "idle"))
		phase_idle(dir);
	if (!only || strstr(only, "gps")) {
		printf("# 1 Hz GPS for %d s (%s)\n", run_s, real ? "measured" : "shortened");
		fflush(stdout);
		phase_gps(dir, run_s, long_run, real);
	}
	if (getenv("ESS_BENCH_KEEP")) { /* the store and essd.conf, to profile by hand */
		cleanup();
		printf("# kept %s\n", bench_tmp);
		curl_global_cleanup();
		return 0;
	}

	cleanup();
	tu_rmrf(bench_tmp);
	curl_global_cleanup();
	return 0;
}

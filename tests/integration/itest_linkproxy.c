/* The link-emulating proxy (tests/tools/linkproxy), run as a real program in
 * front of a tiny server held by this test: the round-trip delay, the rate
 * of each direction, resets, refusal, a blackout and its end without loss,
 * backpressure, bytes intact and in order under jitter, a blackout cycle,
 * loopback only, and a clean stop. Loopback only, free ports; every proxy
 * started is stopped by its pid in the teardown, even after a failure.
 *
 * Bounds: the proxy never delivers early, so lower bounds are tight; upper
 * bounds leave room for a busy 2-core machine (and ASan). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/lib/testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char proxy_bin[512];

/* execv in a child; argv is NULL-terminated (a copy drops the const). */
static void exec_proxy(const char *const *argv)
{
	char *av[40];
	size_t n = 0;
	while (argv[n] && n < 39)
		n++;
	memcpy(av, argv, n * sizeof(av[0]));
	av[n] = NULL;
	execv(proxy_bin, av);
	_exit(127);
}

struct lp {
	pid_t pid;
	char *dir;
	int srv_lfd; /* the test's server */
	int port;    /* the proxy's */
	int ctl;     /* control connection */
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int listen_any(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static int connect_port(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Accepts on the test's server; -1 if nothing came within ms. */
static int accept_within(int lfd, int ms)
{
	struct pollfd pfd = {.fd = lfd, .events = POLLIN};
	if (poll(&pfd, 1, ms) != 1)
		return -1;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int read_port_file(const char *path)
{
	size_t len;
	unsigned char *b = tu_read_file(path, &len);
	int port = b && len ? atoi((char *)b) : 0;
	free(b);
	return port;
}

static int setup(void **state)
{
	struct lp *lp = calloc(1, sizeof(*lp));
	lp->pid = -1;
	lp->srv_lfd = -1;
	lp->ctl = -1;
	lp->dir = tu_tmpdir("linkproxy");
	*state = lp;
	return 0;
}

/* Stops the proxy; returns its wait status (-1: was not running). */
static int lp_stop(struct lp *lp)
{
	if (lp->pid <= 0)
		return -1;
	int status = -1;
	kill(lp->pid, SIGTERM);
	for (int i = 0; i < 500; i++) { /* 5 s */
		if (waitpid(lp->pid, &status, WNOHANG) == lp->pid)
			goto out;
		usleep(10000);
	}
	fprintf(stderr, "# linkproxy %d ignored SIGTERM: killed\n", (int)lp->pid);
	kill(lp->pid, SIGKILL);
	waitpid(lp->pid, &status, 0);
	status = -1;
out:
	lp->pid = -1;
	return status;
}

static int teardown(void **state)
{
	struct lp *lp = *state;
	lp_stop(lp);
	if (lp->ctl >= 0)
		close(lp->ctl);
	if (lp->srv_lfd >= 0)
		close(lp->srv_lfd);
	tu_rmrf(lp->dir);
	free(lp);
	return 0;
}

/* Runs the proxy with argv (NULL-terminated, after the program name) and
 * waits for its port files. use_unix: control over a Unix socket. */
static void lp_start(struct lp *lp, int use_unix, const char *const *extra)
{
	char port_file[600], ctl_file[600], connect_arg[64];
	int sport;
	lp->srv_lfd = listen_any(&sport);
	snprintf(port_file, sizeof(port_file), "%s/port", lp->dir);
	snprintf(ctl_file, sizeof(ctl_file), "%s/%s", lp->dir, use_unix ? "ctl.sock" : "ctl.port");
	snprintf(connect_arg, sizeof(connect_arg), "127.0.0.1:%d", sport);
	const char *argv[32] = {"linkproxy",   "--listen",
	                        "127.0.0.1:0", "--connect",
	                        connect_arg,   "--port-file",
	                        port_file,     use_unix ? "--control-file" : "--control-port-file",
	                        ctl_file};
	int n = 9;
	for (; extra && *extra && n < 30; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	lp->pid = fork();
	assert_true(lp->pid >= 0);
	if (lp->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives the test */
		exec_proxy(argv);
	}
	int64_t until = mono_ms() + 5000;
	while (access(port_file, F_OK) != 0 || access(ctl_file, F_OK) != 0) {
		int status;
		assert_int_equal(waitpid(lp->pid, &status, WNOHANG), 0); /* still running */
		assert_true(mono_ms() < until);
		usleep(5000);
	}
	lp->port = read_port_file(port_file);
	assert_true(lp->port > 0);
	if (use_unix) {
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		assert_true(strlen(ctl_file) < sizeof(un.sun_path));
		memcpy(un.sun_path, ctl_file, strlen(ctl_file) + 1);
		lp->ctl = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_int_equal(connect(lp->ctl, (struct sockaddr *)&un, sizeof(un)), 0);
	} else {
		lp->ctl = connect_port(read_port_file(ctl_file));
		assert_true(lp->ctl >= 0);
	}
	struct timeval tv = {.tv_sec = 5};
	setsockopt(lp->ctl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* A client connection through the proxy, and the server's end of it. */
static void lp_connect(struct lp *lp, int *c, int *s)
{
	*c = connect_port(lp->port);
	*s = accept_within(lp->srv_lfd, 5000);
	assert_true(*c >= 0 && *s >= 0);
}

/* Stops the proxy, which must exit 0 on SIGTERM. */
static void lp_stop_clean(struct lp *lp)
{
	int st = lp_stop(lp);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Sends a control command; returns its one-line answer (static buffer). */
static const char *ctl(struct lp *lp, const char *cmd)
{
	static char line[1024];
	char out[256];
	snprintf(out, sizeof(out), "%s\n", cmd);
	assert_int_equal(send(lp->ctl, out, strlen(out), MSG_NOSIGNAL), (ssize_t)strlen(out));
	size_t n = 0;
	while (n < sizeof(line) - 1) {
		ssize_t r = recv(lp->ctl, line + n, 1, 0);
		assert_int_equal(r, 1);
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = 0;
	return line;
}

static uint64_t stat_of(const char *line, const char *key)
{
	char k[64];
	snprintf(k, sizeof(k), " %s=", key);
	const char *p = strstr(line, k);
	assert_non_null(p);
	return strtoull(p + strlen(k), NULL, 10);
}

/* One byte there and back through the proxy; the round trip in ms. */
static int64_t ping(int cfd, int sfd)
{
	char b = 'p';
	struct pollfd pfd = {.events = POLLIN};
	int64_t t0 = mono_ms();
	assert_int_equal(send(cfd, &b, 1, MSG_NOSIGNAL), 1);
	pfd.fd = sfd;
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(recv(sfd, &b, 1, 0), 1);
	assert_int_equal(send(sfd, &b, 1, MSG_NOSIGNAL), 1);
	pfd.fd = cfd;
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(recv(cfd, &b, 1, 0), 1);
	return mono_ms() - t0;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int64_t median_ping(int cfd, int sfd, int n)
{
	int64_t v[16];
	for (int i = 0; i < n; i++)
		v[i] = ping(cfd, sfd);
	qsort(v, (size_t)n, sizeof(v[0]), cmp64);
	return v[n / 2];
}

/* ---- bulk flows with a position-dependent pattern ---- */

struct flow {
	int src, dst;
	size_t total, sent, recvd;
	uint32_t seed;
	int64_t done_ms; /* since the pump started; -1 until complete */
	int bad;         /* a wrong byte, EOF or error on dst */
	int err;         /* then: errno, 0 for EOF */
};

static uint8_t pat(uint32_t seed, size_t i)
{
	uint32_t x = seed ^ (uint32_t)(i / 4) * 0x9e3779b1u;
	x ^= x >> 16;
	x *= 0x85ebca6bu;
	x ^= x >> 13;
	return (uint8_t)(x >> (8 * (i % 4)));
}

static void flow_init(struct flow *f, int src, int dst, size_t total, uint32_t seed)
{
	*f = (struct flow){.src = src, .dst = dst, .total = total, .seed = seed, .done_ms = -1};
	fcntl(src, F_SETFL, fcntl(src, F_GETFL) | O_NONBLOCK);
	fcntl(dst, F_SETFL, fcntl(dst, F_GETFL) | O_NONBLOCK);
}

/* Moves bytes until every flow is complete (returns 1) or ms pass (0). */
static int pump(struct flow *f, int n, int ms)
{
	static unsigned char buf[65536];
	int64_t start = mono_ms(), until = start + ms;
	for (;;) {
		struct pollfd pfd[32];
		int np = 0, open = 0;
		for (int i = 0; i < n; i++) {
			if (f[i].recvd == f[i].total || f[i].bad)
				continue;
			open++;
			if (f[i].sent < f[i].total)
				pfd[np++] = (struct pollfd){.fd = f[i].src, .events = POLLOUT};
			pfd[np++] = (struct pollfd){.fd = f[i].dst, .events = POLLIN};
		}
		int64_t left = until - mono_ms();
		if (!open || left <= 0)
			return !open;
		poll(pfd, (nfds_t)np, (int)left);
		for (int i = 0; i < n; i++) {
			struct flow *x = &f[i];
			if (x->bad || x->recvd == x->total)
				continue;
			if (x->sent < x->total) {
				size_t len =
				    x->total - x->sent < 16384 ? x->total - x->sent : 16384;
				for (size_t k = 0; k < len; k++)
					buf[k] = pat(x->seed, x->sent + k);
				ssize_t w = send(x->src, buf, len, MSG_NOSIGNAL);
				if (w > 0)
					x->sent += (size_t)w;
			}
			ssize_t r = recv(x->dst, buf, sizeof(buf), 0);
			if (r == 0 || (r < 0 && errno != EAGAIN)) {
				x->bad = 1;
				x->err = r == 0 ? 0 : errno;
				continue;
			}
			for (ssize_t k = 0; k < r; k++)
				if (x->recvd + (size_t)k >= x->total ||
				    buf[k] != pat(x->seed, x->recvd + (size_t)k))
					x->bad = 1;
			if (r > 0)
				x->recvd += (size_t)r;
			if (x->recvd == x->total && !x->bad)
				x->done_ms = mono_ms() - start;
		}
	}
}

/* ---- tests ---- */

static void test_round_trip_delay(void **state)
{
	struct lp *lp = *state;
	const char *args[] = {"--delay-ms", "120", NULL};
	lp_start(lp, 0, args);
	int c, s;
	lp_connect(lp, &c, &s);
	int64_t rtt = median_ping(c, s, 5);
	fprintf(stderr, "# rtt at --delay-ms 120: %lld ms\n", (long long)rtt);
	assert_in_range(rtt, 119, 175);

	assert_string_equal(ctl(lp, "set delay 300"), "ok");
	rtt = median_ping(c, s, 3);
	fprintf(stderr, "# rtt at set delay 300: %lld ms\n", (long long)rtt);
	assert_in_range(rtt, 299, 370);

	assert_string_equal(ctl(lp, "set delay 0"), "ok");
	rtt = median_ping(c, s, 5);
	assert_in_range(rtt, 0, 40);
	assert_int_equal(strncmp(ctl(lp, "frobnicate"), "error: ", 7), 0);
	close(c);
	close(s);
	lp_stop_clean(lp);
}

static void test_rates_per_direction(void **state)
{
	struct lp *lp = *state;
	const char *args[] = {"--delay-ms", "40", "--up-kbit", "1000", "--down-kbit", "3000", NULL};
	lp_start(lp, 0, args);
	int c, s;
	lp_connect(lp, &c, &s);
	/* Both at once on one connection: 200 kB up at 1000 kbit/s is 1.6 s,
	 * 200 kB down at 3000 kbit/s 0.53 s; plus 20 ms one way. */
	struct flow f[2];
	flow_init(&f[0], c, s, 200000, 1);
	flow_init(&f[1], s, c, 200000, 2);
	assert_true(pump(f, 2, 10000));
	fprintf(stderr, "# 200 kB up in %lld ms, down in %lld ms\n", (long long)f[0].done_ms,
	        (long long)f[1].done_ms);
	assert_false(f[0].bad || f[1].bad);
	assert_in_range(f[0].done_ms, 1620 * 3 / 4, 1620 * 5 / 4);
	assert_in_range(f[1].done_ms, 553 * 3 / 4, 553 * 5 / 4);
	const char *st = ctl(lp, "stats");
	assert_int_equal(stat_of(st, "bytes_up"), 200000);
	assert_int_equal(stat_of(st, "bytes_down"), 200000);
	assert_int_equal(stat_of(st, "accepted"), 1);
	close(c);
	close(s);
	lp_stop_clean(lp);
}

/* recv until an error or EOF within 5 s; returns bytes read, errno in *err
 * (0 for EOF). */
static size_t drain(int fd, int *err)
{
	static unsigned char buf[65536];
	size_t got = 0;
	int64_t until = mono_ms() + 5000;
	*err = ETIMEDOUT;
	while (mono_ms() < until) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		poll(&pfd, 1, 100);
		ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r > 0) {
			got += (size_t)r;
		} else if (r == 0) {
			*err = 0;
			break;
		} else if (errno != EAGAIN) {
			*err = errno;
			break;
		}
	}
	return got;
}

static void test_resets_and_refuse(void **state)
{
	struct lp *lp = *state;
	const char *args[] = {"--delay-ms", "10", NULL};
	lp_start(lp, 1, args); /* control over the Unix socket */
	int c, s;
	lp_connect(lp, &c, &s);
	ping(c, s);
	assert_string_equal(ctl(lp, "reset all"), "ok");
	int err;
	drain(c, &err);
	assert_int_equal(err, ECONNRESET);
	drain(s, &err);
	assert_int_equal(err, ECONNRESET);
	close(c);
	close(s);
	assert_int_equal(stat_of(ctl(lp, "stats"), "resets"), 1);

	/* mid-upload: the server gets exactly N bytes, then a RST */
	assert_string_equal(ctl(lp, "reset after-bytes 50000"), "ok");
	lp_connect(lp, &c, &s);
	struct flow f;
	flow_init(&f, c, s, 200000, 5);
	pump(&f, 1, 5000);
	assert_true(f.bad);
	assert_int_equal(f.recvd, 50000);
	assert_int_equal(f.err, ECONNRESET);
	drain(c, &err);
	assert_int_equal(err, ECONNRESET);
	close(c);
	close(s);
	/* disarmed: the next connection carries everything */
	c = connect_port(lp->port);
	s = accept_within(lp->srv_lfd, 5000);
	flow_init(&f, c, s, 100000, 3);
	assert_true(pump(&f, 1, 5000));
	close(c);
	close(s);

	assert_string_equal(ctl(lp, "refuse on"), "ok");
	assert_int_equal(connect_port(lp->port), -1);
	assert_int_equal(errno, ECONNREFUSED);
	assert_string_equal(ctl(lp, "refuse off"), "ok");
	lp_connect(lp, &c, &s);
	ping(c, s);
	close(c);
	close(s);
	assert_string_equal(ctl(lp, "quit"), "ok");
	lp_stop_clean(lp);
}

static void test_blackout_stalls_then_resumes(void **state)
{
	struct lp *lp = *state;
	const char *args[] = {"--delay-ms", "20", "--up-kbit", "40000", "--queue-kib", "64", NULL};
	lp_start(lp, 0, args);
	int c, s;
	lp_connect(lp, &c, &s);
	ping(c, s);
	assert_string_equal(ctl(lp, "blackout on"), "ok");
	struct flow f;
	flow_init(&f, c, s, 1000000, 4);
	assert_false(pump(&f, 1, 500));
	assert_int_equal(f.recvd, 0); /* nothing crosses a dead radio */
	assert_true(f.sent > 0);
	const char *st = ctl(lp, "stats");
	assert_int_equal(stat_of(st, "blackout"), 1);
	/* the proxy holds at most its queue bound; the rest waits in the client */
	assert_in_range(stat_of(st, "queued_up"), 1, 64 * 1024);
	assert_in_range(stat_of(st, "queue_peak"), 1, 64 * 1024);
	assert_true(f.sent > 64 * 1024); /* the rest waits in kernel buffers */

	/* a new connection hangs: the server does not see it */
	int c2 = connect_port(lp->port);
	assert_true(c2 >= 0);
	assert_int_equal(accept_within(lp->srv_lfd, 300), -1);

	assert_string_equal(ctl(lp, "blackout off"), "ok");
	assert_true(pump(&f, 1, 10000));
	assert_false(f.bad);
	int s2 = accept_within(lp->srv_lfd, 5000);
	assert_true(s2 >= 0);
	ping(c2, s2);
	close(c2);
	close(s2);
	close(c);
	close(s);
	lp_stop_clean(lp);
}

/* "drop all": an open connection becomes a black hole for good (bytes go in
 * and never come out, either way; no FIN, no RST); a new connection works. */
static void test_drop_all_blackholes(void **state)
{
	struct lp *lp = *state;
	const char *args[] = {"--delay-ms", "20", NULL};
	lp_start(lp, 0, args);
	int c, s;
	lp_connect(lp, &c, &s);
	ping(c, s);
	assert_string_equal(ctl(lp, "drop all"), "ok");
	static unsigned char buf[4096];
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(send(c, buf, sizeof(buf), MSG_NOSIGNAL), (ssize_t)sizeof(buf));
	assert_int_equal(send(s, buf, sizeof(buf), MSG_NOSIGNAL), (ssize_t)sizeof(buf));
	int err;
	/* nothing arrives, and no end either: the drains time out */
	assert_int_equal(drain(c, &err), 0);
	assert_int_equal(err, ETIMEDOUT);
	assert_int_equal(drain(s, &err), 0);
	assert_int_equal(err, ETIMEDOUT);
	const char *st = ctl(lp, "stats");
	assert_int_equal(stat_of(st, "active"), 1);
	assert_int_equal(stat_of(st, "resets"), 0);
	/* a new connection goes through */
	int c2, s2;
	lp_connect(lp, &c2, &s2);
	ping(c2, s2);
	/* the client closing the black hole ends it quietly */
	close(c);
	int64_t until = mono_ms() + 5000;
	while (stat_of(ctl(lp, "stats"), "active") != 1 && mono_ms() < until)
		usleep(20000);
	assert_int_equal(stat_of(ctl(lp, "stats"), "active"), 1);
	assert_int_equal(stat_of(ctl(lp, "stats"), "resets"), 0);
	close(s);
	close(c2);
	close(s2);
	lp_stop_clean(lp);
}

/* Bytes read during a blackout leave when it ends, after their own
 * transmission time and the delay: the blackout's length counts once. */
static void test_blackout_counts_once(void **state)
{
	struct lp *lp = *state;
	const char *args[] = {"--delay-ms", "20", "--up-kbit", "1000", NULL};
	lp_start(lp, 0, args);
	int c, s;
	lp_connect(lp, &c, &s);
	ping(c, s);
	assert_string_equal(ctl(lp, "blackout on"), "ok");
	usleep(1000000);
	static char buf[10000]; /* 80 ms at 1000 kbit/s */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(write(c, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	usleep(200000);
	assert_string_equal(ctl(lp, "blackout off"), "ok");
	int64_t t0 = mono_ms();
	size_t got = 0;
	while (got < sizeof(buf) && mono_ms() - t0 < 5000) {
		struct pollfd pfd = {.fd = s, .events = POLLIN};
		if (poll(&pfd, 1, 100) > 0) {
			ssize_t k = read(s, buf, sizeof(buf));
			if (k <= 0)
				break;
			got += (size_t)k;
		}
	}
	int64_t took = mono_ms() - t0;
	fprintf(stderr, "# 10 kB written 1 s into a 1.2 s blackout: arrived %lld ms after off\n",
	        (long long)took);
	assert_int_equal(got, sizeof(buf));
	/* 80 ms on the link + 10 ms one way; counted twice it took ~1.1 s */
	assert_in_range(took, 0, 600);
	close(c);
	close(s);
	lp_stop_clean(lp);
}

static void test_jitter_keeps_order(void **state)
{
	struct lp *lp = *state;
	const char *args[] = {"--delay-ms",  "40",    "--jitter-ms", "40", "--up-kbit", "30000",
	                      "--down-kbit", "30000", "--seed",      "7",  NULL};
	lp_start(lp, 0, args);
	int c[3], s[3];
	for (int i = 0; i < 3; i++) {
		lp_connect(lp, &c[i], &s[i]);
	}
	/* jitter is there: one-way 20 ms ± 40 (never below 0) */
	int64_t lo = INT64_MAX, hi = 0;
	for (int i = 0; i < 12; i++) {
		int64_t r = ping(c[0], s[0]);
		lo = r < lo ? r : lo;
		hi = r > hi ? r : hi;
	}
	fprintf(stderr, "# rtt with jitter: %lld..%lld ms\n", (long long)lo, (long long)hi);
	assert_true(hi - lo >= 10);
	assert_true(hi <= 150);
	struct flow f[6];
	for (int i = 0; i < 3; i++) {
		flow_init(&f[2 * i], c[i], s[i], 300000, 10 + (uint32_t)i);
		flow_init(&f[2 * i + 1], s[i], c[i], 300000, 20 + (uint32_t)i);
	}
	assert_true(pump(f, 6, 10000));
	for (int i = 0; i < 6; i++)
		assert_false(f[i].bad);
	for (int i = 0; i < 3; i++) {
		close(c[i]);
		close(s[i]);
	}
	lp_stop_clean(lp);
}

static void test_blackout_cycle(void **state)
{
	struct lp *lp = *state;
	const char *args[] = {"--blackout-cycle", "0.3:0.3", NULL};
	lp_start(lp, 0, args);
	int c, s;
	lp_connect(lp, &c, &s);
	int64_t lo = INT64_MAX, hi = 0, until = mono_ms() + 1300;
	while (mono_ms() < until) {
		int64_t r = ping(c, s);
		lo = r < lo ? r : lo;
		hi = r > hi ? r : hi;
		usleep(20000);
	}
	fprintf(stderr, "# rtt under a 0.3:0.3 cycle: %lld..%lld ms\n", (long long)lo,
	        (long long)hi);
	assert_true(lo < 50);
	assert_true(hi >= 100); /* some ping waited for the end of a blackout */
	assert_in_range(hi, 100, 700);
	close(c);
	close(s);
	lp_stop_clean(lp);
}

/* Runs the proxy to completion with these arguments; its exit status. */
static int run_args(const char *const *argv)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 2);
		exec_proxy(argv);
	}
	int status = 0;
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1; /* still running: it did not refuse */
}

static void test_loopback_only_and_usage(void **state)
{
	(void)state;
	const char *far[] = {"linkproxy", "--listen",    "127.0.0.1:0",
	                     "--connect", "10.1.2.3:80", NULL};
	assert_int_equal(run_args(far), 2);
	const char *far6[] = {"linkproxy", "--listen",         "127.0.0.1:0",
	                      "--connect", "[2001:db8::1]:80", NULL};
	assert_int_equal(run_args(far6), 2);
	const char *wide[] = {"linkproxy", "--listen",    "0.0.0.0:0",
	                      "--connect", "127.0.0.1:9", NULL};
	assert_int_equal(run_args(wide), 2);
	const char *name[] = {"linkproxy", "--listen",       "127.0.0.1:0",
	                      "--connect", "example.org:80", NULL};
	assert_int_equal(run_args(name), 2);
	const char *missing[] = {"linkproxy", "--listen", "127.0.0.1:0", NULL};
	assert_int_equal(run_args(missing), 2);
	const char *badnum[] = {"linkproxy",   "--listen",   "127.0.0.1:0", "--connect",
	                        "127.0.0.1:9", "--delay-ms", "12x",         NULL};
	assert_int_equal(run_args(badnum), 2);
	const char *cycle[] = {"linkproxy",   "--listen",         "127.0.0.1:0", "--connect",
	                       "127.0.0.1:9", "--blackout-cycle", "30",          NULL};
	assert_int_equal(run_args(cycle), 2);
}

static void test_upstream_refused_resets_client(void **state)
{
	struct lp *lp = *state;
	lp_start(lp, 0, NULL);
	close(lp->srv_lfd); /* the server is gone */
	lp->srv_lfd = -1;
	int c = connect_port(lp->port);
	assert_true(c >= 0);
	int err;
	drain(c, &err);
	assert_int_equal(err, ECONNRESET);
	close(c);
	assert_int_equal(stat_of(ctl(lp, "stats"), "connect_failed"), 1);
	lp_stop_clean(lp);
}

int main(void)
{
	const char *build = getenv("ESS_BUILD");
	snprintf(proxy_bin, sizeof(proxy_bin), "%s/tools/linkproxy", build ? build : "build/host");
	if (access(proxy_bin, X_OK) != 0) {
		fprintf(stderr, "%s not built\n", proxy_bin);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip_delay, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rates_per_direction, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resets_and_refuse, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_blackout_stalls_then_resumes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drop_all_blackholes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_blackout_counts_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_jitter_keeps_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_blackout_cycle, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_upstream_refused_resets_client, setup, teardown),
	    cmocka_unit_test(test_loopback_only_and_usage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

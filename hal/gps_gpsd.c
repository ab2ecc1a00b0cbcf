/* The "gpsd" GPS source: libgps (API 11, gpsd 3.22) on the agent's loop.
 *
 * A session: gps_open (TCP connect), gps_stream(WATCH_ENABLE | WATCH_JSON),
 * the socket made non-blocking and registered in the loop; when it is
 * readable, gps_read is called for each complete line libgps holds (bounded
 * per wakeup, the rest on a 0 ms timer) and TPV reports go through the
 * filter (hal/gps.h) to on_fix. Nothing waits for gpsd:
 *   - gpsd absent: gps_open fails at once on loopback (ECONNREFUSED); the
 *     next attempt is a loop timer, backing off 1 s, 2 s, 4 s … 30 s, reset
 *     when a session starts. One warning, then debug lines.
 *   - gpsd gone (restart, crash): EOF or an error on the socket ends the
 *     session (checked with a MSG_PEEK before gps_read, because libgps 3.22
 *     answers 0 rather than -1 to an EOF that follows a partial line, which
 *     would leave a readable fd and spin); reconnect as above.
 *   - receiver unplugged: gpsd stays, TPVs stop (or come with mode 1, which
 *     the filter refuses); they resume when gpsd sees the receiver again.
 * The one blocking step is gps_open's name lookup and connect: immediate
 * for a loopback gpsd (the deployment: gpsd on the device itself), up to
 * the kernel's connect timeout for an unreachable remote host.
 *
 * Nothing here logs a position or a raw gpsd line (they hold positions). */
#include "hal/gps.h"

#include "agent/log.h"
#include "agent/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <gps.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#if GPSD_API_MAJOR_VERSION < 9
#error "libgps API 9 or newer needed (fix.time as a timespec, gps_read with a buffer)"
#endif

#define DEFAULT_BACKOFF_MIN_MS 1000
#define DEFAULT_BACKOFF_MAX_MS 30000
#define LINES_PER_WAKEUP       64

struct gpsd_src {
	struct hal_gps_params p;
	char host[256];
	char port[8];
	struct gps_data_t gd;
	int connected;
	int warned;                   /* "gpsd unavailable" logged since the last session */
	struct loop_timer *reconnect; /* pending attempt, NULL while connected */
	struct loop_timer *drain;     /* more lines buffered than one wakeup reads */
	int64_t backoff_ms;
	struct hal_gps_filter filter;
	struct hal_gps_stats st;
	char line[512]; /* the start of the last line: enough for its class */
};

static int64_t try_connect(struct loop *l, void *arg);

/* The next backoff delay, and its slack: at the long delays (gpsd gone for
 * good) the attempt may go up to a third early (10 s at most), in a wakeup
 * essd has anyway (loop_timer_set_slack, LOOP_IDLE_SLACK_MS); the short
 * ones of a restarting gpsd stay exact. */
static int64_t next_backoff(struct gpsd_src *s, int64_t *slack)
{
	int64_t delay = s->backoff_ms;
	s->backoff_ms = delay * 2 > s->p.backoff_max_ms ? s->p.backoff_max_ms : delay * 2;
	s->st.next_backoff_ms = delay;
	*slack = delay < 10000                    ? 0
	         : delay / 3 < LOOP_IDLE_SLACK_MS ? delay / 3
	                                          : LOOP_IDLE_SLACK_MS;
	return delay;
}

static void schedule_reconnect(struct gpsd_src *s)
{
	int64_t slack, delay = next_backoff(s, &slack);
	if (!s->reconnect)
		s->reconnect = loop_timer_add(s->p.loop, delay - slack, try_connect, s);
	else
		loop_timer_set(s->p.loop, s->reconnect, delay - slack);
	if (s->reconnect)
		loop_timer_set_slack(s->reconnect, slack);
	else
		log_errx("gps: out of memory scheduling a gpsd reconnect");
}

static void end_session(struct gpsd_src *s, const char *why)
{
	if (!s->connected)
		return;
	loop_fd_del(s->p.loop, s->gd.gps_fd);
	loop_timer_cancel(s->p.loop, s->drain);
	s->drain = NULL;
	gps_close(&s->gd);
	s->connected = 0;
	s->st.connected = 0;
	s->st.disconnects++;
	log_warnx("gps: lost gpsd at %s:%s (%s), reconnecting", s->host, s->port, why);
	schedule_reconnect(s);
}

static void handle_tpv(struct gpsd_src *s)
{
	const struct gps_fix_t *fx = &s->gd.fix;
	struct hal_gps_raw raw = {
	    .mode = fx->mode,
	    .time_s = fx->time.tv_sec ? (double)fx->time.tv_sec + fx->time.tv_nsec / 1e9 : 0,
	    .lat = fx->latitude,
	    .lon = fx->longitude,
	    .eph = fx->eph,
	    .epx = fx->epx,
	    .epy = fx->epy,
	    .speed = fx->speed,
	    .track = fx->track,
	};
	s->st.reports++;
	struct hal_gps_fix out;
	enum hal_gps_reject r =
	    hal_gps_filter_check(&s->filter, &raw, loop_now_ms(), loop_wall_ms(), &out);
	if (r != HAL_GPS_OK) {
		s->st.rejected++;
		log_debug("gps: report refused: %s", hal_gps_reject_str(r));
		if (r == HAL_GPS_REJECT_TIME_JUMP && s->p.on_time_jump)
			s->p.on_time_jump(s->p.arg);
		return;
	}
	s->st.fixes++;
	if (s->p.on_fix)
		s->p.on_fix(s->p.arg, &out);
}

static int64_t drain_more(struct loop *l, void *arg);

/* Reads the lines libgps can complete without blocking. */
static void read_lines(struct gpsd_src *s)
{
	for (int n = 0; n < LINES_PER_WAKEUP; n++) {
		int r = gps_read(&s->gd, s->line, (int)sizeof(s->line));
		if (r < 0) {
			end_session(s, "read error or end of stream");
			return;
		}
		if (r == 0)
			return; /* no complete line yet */
		if (strncmp(s->line, "{\"class\":\"TPV\"", 14) == 0)
			handle_tpv(s);
		if (!s->connected)
			return; /* on_fix closed us down */
		if (!gps_waiting(&s->gd, 0))
			return;
	}
	/* A flood: give the rest of the loop a turn, continue right after. */
	if (!s->drain)
		s->drain = loop_timer_add(s->p.loop, 0, drain_more, s);
}

static int64_t drain_more(struct loop *l, void *arg)
{
	(void)l;
	struct gpsd_src *s = arg;
	s->drain = NULL;
	if (s->connected)
		read_lines(s);
	return -1;
}

static void on_readable(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	struct gpsd_src *s = arg;
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0) {
		end_session(s, "gpsd closed the connection");
		return;
	}
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		end_session(s, strerror(errno));
		return;
	}
	if ((events & LOOP_ERROR) && n < 0) {
		end_session(s, "socket error");
		return;
	}
	read_lines(s);
}

/* gps_stream writes to the socket; a gpsd that closed it at once must not
 * kill the process with SIGPIPE. Block it around the write and discard one
 * that this write raised. */
static int stream_nosigpipe(struct gps_data_t *gd)
{
	sigset_t pipe_set, old, pending;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigprocmask(SIG_BLOCK, &pipe_set, &old);
	sigpending(&pending);
	int was_pending = sigismember(&pending, SIGPIPE);
	int rc = gps_stream(gd, WATCH_ENABLE | WATCH_JSON, NULL);
	if (!was_pending) {
		sigpending(&pending);
		if (sigismember(&pending, SIGPIPE)) {
			struct timespec zero = {0, 0};
			sigtimedwait(&pipe_set, NULL, &zero);
		}
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	return rc;
}

static int64_t try_connect(struct loop *l, void *arg)
{
	struct gpsd_src *s = arg;
	s->st.attempts++;
	memset(&s->gd, 0, sizeof(s->gd));
	if (gps_open(s->host, s->port, &s->gd) != 0) {
		int e = errno;
		if (!s->warned)
			log_warnx("gps: gpsd at %s:%s unavailable (%s), retrying with backoff",
			          s->host, s->port, gps_errstr(e));
		else
			log_debug("gps: gpsd at %s:%s still unavailable", s->host, s->port);
		s->warned = 1;
		goto retry;
	}
	if (stream_nosigpipe(&s->gd) != 0) {
		log_warnx("gps: gpsd at %s:%s refused the watch request", s->host, s->port);
		gps_close(&s->gd);
		goto retry;
	}
	int fl = fcntl(s->gd.gps_fd, F_GETFL);
	if (fl < 0 || fcntl(s->gd.gps_fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    loop_fd_add(l, s->gd.gps_fd, LOOP_READ, on_readable, s) < 0) {
		log_warn("gps: cannot watch the gpsd socket");
		gps_close(&s->gd);
		goto retry;
	}
	s->connected = 1;
	s->warned = 0;
	s->st.connected = 1;
	s->st.connects++;
	s->backoff_ms = s->p.backoff_min_ms;
	s->st.next_backoff_ms = s->backoff_ms;
	hal_gps_filter_reset(&s->filter);
	log_info("gps: connected to gpsd at %s:%s", s->host, s->port);
	s->reconnect = NULL;
	return -1; /* the timer ends; end_session makes a new one */
retry : {
	/* the same slack as after a lost session: without it a gpsd that is
	 * not there cost an idle essd a wakeup of its own every 30 s */
	int64_t slack, delay = next_backoff(s, &slack);
	loop_timer_set_slack(s->reconnect, slack);
	return delay - slack;
}
}

static int gpsd_open(const struct hal_gps_params *p, void **priv, char *err, size_t errlen)
{
	*priv = NULL;
	if (!p->loop || !p->host || !*p->host || p->port < 1 || p->port > 65535) {
		if (err)
			snprintf(err, errlen,
			         "gps gpsd: a loop, a host and a port 1-65535 are needed");
		return -EINVAL;
	}
	struct gpsd_src *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->p = *p;
	if (s->p.backoff_min_ms <= 0)
		s->p.backoff_min_ms = DEFAULT_BACKOFF_MIN_MS;
	if (s->p.backoff_max_ms <= 0)
		s->p.backoff_max_ms = DEFAULT_BACKOFF_MAX_MS;
	if (s->p.backoff_max_ms < s->p.backoff_min_ms)
		s->p.backoff_max_ms = s->p.backoff_min_ms;
	if (snprintf(s->host, sizeof(s->host), "%s", p->host) >= (int)sizeof(s->host)) {
		if (err)
			snprintf(err, errlen, "gps gpsd: host name too long");
		free(s);
		return -EINVAL;
	}
	s->p.host = s->host;
	snprintf(s->port, sizeof(s->port), "%d", p->port);
	s->backoff_ms = s->p.backoff_min_ms;
	hal_gps_filter_reset(&s->filter);
	/* The first attempt on the next loop iteration, never inside open. */
	s->reconnect = loop_timer_add(p->loop, 0, try_connect, s);
	if (!s->reconnect) {
		free(s);
		return -ENOMEM;
	}
	*priv = s;
	return 0;
}

static void gpsd_close(void *priv)
{
	struct gpsd_src *s = priv;
	if (!s)
		return;
	if (s->connected) {
		loop_fd_del(s->p.loop, s->gd.gps_fd);
		gps_close(&s->gd);
	}
	loop_timer_cancel(s->p.loop, s->reconnect);
	loop_timer_cancel(s->p.loop, s->drain);
	free(s);
}

static void gpsd_stats(void *priv, struct hal_gps_stats *st)
{
	const struct gpsd_src *s = priv;
	*st = s->st;
}

const struct hal_gps_ops hal_gps_gpsd_ops = {
    .name = "gpsd",
    .desc = "gpsd over TCP through libgps, reconnecting with backoff",
    .open = gpsd_open,
    .close = gpsd_close,
    .stats = gpsd_stats,
};

/* linkproxy: a userspace TCP proxy that emulates a slow, flaky mobile link
 * on loopback (this machine's kernel has no netem). Single process, single
 * thread, on the agent's event loop (agent/loop.h).
 *
 *   linkproxy --listen 127.0.0.1:0 --connect 127.0.0.1:PORT
 *             [--port-file F] [--control-file SOCK | --control-port-file F]
 *             [--delay-ms 120] [--jitter-ms 30] [--up-kbit 1000] [--down-kbit 3000]
 *             [--seed N] [--blackout-cycle UP_S:DOWN_S] [--queue-kib 256] [--verbose]
 *
 * Each accepted connection opens one upstream connection (non-blocking).
 * up = client to server, down = server to client.
 *
 * The link (tests/lib/link_model.h):
 *   --delay-ms is the ROUND-TRIP time: each direction adds half of it.
 *   --jitter-ms adds a uniform [-J, +J] to each chunk's one-way delay, but
 *     bytes of a connection never overtake each other (a late chunk holds
 *     back the ones after it).
 *   --up-kbit / --down-kbit (1 kbit = 1000 bits, 0 = unlimited) serialise
 *     chunks of at most 1460 bytes at that rate, one direction's rate shared
 *     by all connections like one radio: 1 MB up at 1000 kbit/s takes 8 s.
 *     A queue filled before a rate change keeps its old timing.
 *   Each direction of a connection holds at most --queue-kib (default 256)
 *     KiB; beyond that the proxy stops reading that side (backpressure).
 *
 * Faults, at run time through the control channel: a Unix socket
 * (--control-file) or a TCP port on 127.0.0.1 written to --control-port-file.
 * One command per line, one answer line each ("ok ..." or "error: ..."):
 *   set [delay MS] [jitter MS] [up KBIT] [down KBIT]
 *   blackout on|off  a dead radio: nothing is forwarded, queued bytes stay
 *                    queued (nothing is lost) and the link's clock stops, so
 *                    after "off" they leave with their old spacing; reading
 *                    goes on up to the queue bound. New connections are
 *                    accepted (the kernel completes the client's handshake)
 *                    but their upstream connect waits for "off".
 *   refuse on|off    new connections are refused (ECONNREFUSED); open ones
 *                    go on.
 *   reset all        RST on both sides of every open connection.
 *   drop all         every open connection becomes a black hole for good (a
 *                    NAT that forgot it without telling anyone): bytes from
 *                    either side are read and thrown away, nothing is
 *                    forwarded, no FIN or RST is sent; queued bytes are
 *                    dropped. New connections are not affected. A side's
 *                    EOF or error closes both sides quietly.
 *   reset after-bytes N
 *                    the next connection to have forwarded N bytes upstream
 *                    (counted from its start) is reset right there: the
 *                    server gets exactly N bytes, then both sides a RST.
 *   stats            "ok accepted=.. active=.. bytes_up=.. bytes_down=..
 *                    resets=.. connect_failed=.. queued_up=.. queued_down=..
 *                    queue_peak=.. blackout=0|1 refuse=0|1 delay=.. ..."
 *   quit             stops the proxy as SIGTERM does.
 * A socket error on either side (RST, refused upstream) resets the other
 * side at once, without the link delay. --blackout-cycle 30:120 runs the
 * link 30 s, blacks it out 120 s, and so on (fractions allowed); the
 * blackout command overrides it until its next switch.
 *
 * Only loopback addresses are accepted for --listen and --connect.
 * SIGTERM / SIGINT / quit: every connection closed, exit status 0.
 * Exit status 2 on a usage error, 1 on a runtime failure.
 * docs/testing-tools.md has examples. */
#define _GNU_SOURCE
#include "agent/log.h"
#include "agent/loop.h"
#include "tests/lib/link_cmd.h"
#include "tests/lib/link_model.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SEG_MAX      1460 /* bytes per chunk when rate-limited: one MSS */
#define READ_MAX     65536
#define IOV_MAX_SEGS 64
#define CTL_LINE_MAX 256
#define CTL_CLIENTS  8

struct seg {
	struct seg *next;
	int64_t release; /* µs */
	uint32_t len, off;
	int fin;
	unsigned char data[];
};

struct conn;

struct side {
	int fd;
	int registered;
	unsigned want;
	struct conn *c;
};

struct dir {
	struct conn *c;
	struct side *src, *dst;
	struct link_model *model;
	struct seg *head, *tail;
	size_t queued; /* bytes read, not yet written */
	int64_t last_release;
	int eof;      /* EOF read from src, FIN queued */
	int fin_done; /* shutdown(dst, SHUT_WR) done */
	int blocked;  /* dst said EAGAIN: waiting for LOOP_WRITE */
	int is_up;
	uint64_t bytes; /* forwarded */
	struct loop_timer *timer;
};

struct conn {
	struct proxy *p;
	struct conn *prev, *next;
	uint64_t id;
	struct side cli, srv;
	struct dir up, down;
	int connecting; /* upstream connect in progress */
	int waiting;    /* upstream connect deferred by a blackout */
	int dead, rst;  /* to be closed (with RST) by settle */
	int dropped;    /* "drop all": a black hole from now on */
};

struct ctl_client {
	struct proxy *p;
	int fd;
	size_t len;
	char buf[CTL_LINE_MAX];
};

struct stats {
	uint64_t accepted, active, bytes_up, bytes_down, resets, connect_failed;
	size_t queue_peak;
};

struct proxy {
	struct loop *loop;
	int lfd;
	int refusing;
	struct sockaddr_storage laddr, caddr;
	socklen_t laddr_len, caddr_len;
	struct link_model up, down;
	uint32_t delay_ms, jitter_ms, up_kbit, down_kbit;
	size_t cap;
	int blackout;
	int64_t blackout_since;
	int64_t cycle_up_ms, cycle_down_ms;
	int64_t reset_after; /* < 0: disarmed */
	struct conn *conns;
	uint64_t next_id;
	struct stats st;
	int ctl_fd;
	const char *ctl_path; /* Unix socket to unlink at exit */
	struct ctl_client *ctl[CTL_CLIENTS];
	int exit_code;
};

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void apply_link(struct proxy *p)
{
	int64_t one_way = (int64_t)p->delay_ms * 1000 / 2;
	link_model_set(&p->up, one_way, (int64_t)p->jitter_ms * 1000, p->up_kbit);
	link_model_set(&p->down, one_way, (int64_t)p->jitter_ms * 1000, p->down_kbit);
}

/* ---- connections ---- */

static void on_side(struct loop *l, int fd, unsigned events, void *arg);
static int64_t on_dir_timer(struct loop *l, void *arg);

/* Registers the side for exactly `want`; unregistered when 0, so that
 * EPOLLHUP/EPOLLERR (always reported) cannot spin the loop. */
static void side_want(struct proxy *p, struct side *s, unsigned want)
{
	if (s->fd < 0)
		return;
	if (!want) {
		if (s->registered)
			loop_fd_del(p->loop, s->fd);
		s->registered = 0;
	} else if (!s->registered) {
		if (loop_fd_add(p->loop, s->fd, want, on_side, s) == 0)
			s->registered = 1;
		else
			s->c->dead = s->c->rst = 1;
	} else if (s->want != want) {
		loop_fd_mod(p->loop, s->fd, want);
	}
	s->want = want;
}

static void dir_free_segs(struct dir *d)
{
	while (d->head) {
		struct seg *s = d->head;
		d->head = s->next;
		free(s);
	}
	d->tail = NULL;
	d->queued = 0;
}

static void side_close(struct proxy *p, struct side *s, int rst)
{
	if (s->fd < 0)
		return;
	side_want(p, s, 0);
	if (rst) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(s->fd);
	s->fd = -1;
}

static void conn_free(struct conn *c)
{
	struct proxy *p = c->p;
	log_debug("conn %llu: closed%s (up %llu, down %llu bytes)", (unsigned long long)c->id,
	          c->rst ? " with RST" : "", (unsigned long long)c->up.bytes,
	          (unsigned long long)c->down.bytes);
	if (c->rst)
		p->st.resets++;
	side_close(p, &c->cli, c->rst);
	side_close(p, &c->srv, c->rst);
	for (struct dir *d = &c->up; d; d = d == &c->up ? &c->down : NULL) {
		loop_timer_cancel(p->loop, d->timer);
		dir_free_segs(d);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		p->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	p->st.active--;
	free(c);
}

static int dir_can_send(const struct dir *d)
{
	const struct conn *c = d->c;
	return !c->p->blackout && !c->dropped && !c->connecting && !c->waiting && !d->blocked &&
	       !d->fin_done;
}

static void dir_schedule(struct dir *d)
{
	struct proxy *p = d->c->p;
	if (!d->head || !dir_can_send(d)) {
		loop_timer_cancel(p->loop, d->timer);
		d->timer = NULL;
		return;
	}
	int64_t wait = d->head->release - now_us();
	int64_t ms = wait > 0 ? (wait + 999) / 1000 : 0;
	if (d->timer)
		loop_timer_set(p->loop, d->timer, ms);
	else if (!(d->timer = loop_timer_add(p->loop, ms, on_dir_timer, d)))
		d->c->dead = d->c->rst = 1;
}

/* Decides what each side waits for, or closes the connection. Returns 1 if
 * it is gone. Every callback ends here. */
static int conn_settle(struct conn *c)
{
	struct proxy *p = c->p;
	if (!c->dead && c->up.fin_done && c->down.fin_done)
		c->dead = 1;
	if (c->dead) {
		conn_free(c);
		return 1;
	}
	unsigned cw = 0, sw = 0;
	if (!c->up.eof && c->up.queued < p->cap)
		cw |= LOOP_READ;
	if (c->down.blocked)
		cw |= LOOP_WRITE;
	if (c->connecting) {
		sw = LOOP_WRITE;
	} else if (!c->waiting) {
		if (!c->down.eof && c->down.queued < p->cap)
			sw |= LOOP_READ;
		if (c->up.blocked)
			sw |= LOOP_WRITE;
	}
	side_want(p, &c->cli, cw);
	side_want(p, &c->srv, sw);
	dir_schedule(&c->up);
	dir_schedule(&c->down);
	if (c->dead) { /* a registration failed */
		conn_free(c);
		return 1;
	}
	return 0;
}

static void dir_read(struct dir *d)
{
	struct proxy *p = d->c->p;
	static unsigned char buf[READ_MAX];
	size_t room = p->cap - d->queued;
	if (d->eof || room == 0)
		return;
	ssize_t n = recv(d->src->fd, buf, room < sizeof(buf) ? room : sizeof(buf), 0);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			log_debug("conn %llu: %s read: %s", (unsigned long long)d->c->id,
			          d->is_up ? "client" : "server", strerror(errno));
			d->c->dead = 1;
			d->c->rst = !d->c->dropped;
		}
		return;
	}
	if (d->c->dropped) { /* a black hole: nothing goes through, ever */
		if (n == 0)
			d->c->dead = 1;
		return;
	}
	/* During a blackout the link's clock stands still at its start: bytes
	 * read then are scheduled from there, and "off" moves them (and the
	 * link) by the blackout's length once. Scheduled from the real clock
	 * they were moved twice: a write 10 s into a 20 s blackout held the
	 * link 10 s past "off" (a new TLS handshake then timed out). */
	int64_t now = d->c->p->blackout ? d->c->p->blackout_since : now_us();
	size_t step = d->model->rate_kbit ? SEG_MAX : (size_t)n;
	size_t off = 0;
	do {
		size_t len = (size_t)n - off < step ? (size_t)n - off : step;
		struct seg *s = malloc(sizeof(*s) + len);
		if (!s) {
			d->c->dead = d->c->rst = 1;
			return;
		}
		memcpy(s->data, buf + off, len);
		s->len = (uint32_t)len;
		s->off = 0;
		s->fin = n == 0;
		s->next = NULL;
		s->release = link_model_schedule(d->model, now, len, &d->last_release);
		if (d->tail)
			d->tail->next = s;
		else
			d->head = s;
		d->tail = s;
		d->queued += len;
		off += len;
	} while (off < (size_t)n);
	if (n == 0)
		d->eof = 1;
	if (d->queued > p->st.queue_peak)
		p->st.queue_peak = d->queued;
}

/* Writes every chunk whose time has come. */
static void dir_send(struct dir *d)
{
	struct conn *c = d->c;
	struct proxy *p = c->p;
	while (d->head && dir_can_send(d) && !c->dead) {
		int64_t now = now_us();
		if (d->head->release > now)
			return;
		if (d->head->fin) {
			shutdown(d->dst->fd, SHUT_WR);
			d->fin_done = 1;
			dir_free_segs(d);
			return;
		}
		struct iovec iov[IOV_MAX_SEGS];
		int niov = 0;
		size_t total = 0;
		size_t limit = SIZE_MAX;
		if (d->is_up && p->reset_after >= 0) {
			uint64_t want = (uint64_t)p->reset_after;
			limit = d->bytes < want ? (size_t)(want - d->bytes) : 0;
		}
		for (struct seg *s = d->head;
		     s && !s->fin && s->release <= now && niov < IOV_MAX_SEGS && total < limit;
		     s = s->next) {
			size_t len = s->len - s->off;
			if (len > limit - total)
				len = limit - total;
			iov[niov].iov_base = s->data + s->off;
			iov[niov].iov_len = len;
			niov++;
			total += len;
		}
		ssize_t n = 0;
		if (total) {
			struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
			n = sendmsg(d->dst->fd, &mh, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					d->blocked = 1;
				} else if (errno != EINTR) {
					log_debug("conn %llu: %s write: %s",
					          (unsigned long long)c->id,
					          d->is_up ? "server" : "client", strerror(errno));
					c->dead = c->rst = 1;
				}
				return;
			}
		}
		d->bytes += (uint64_t)n;
		d->queued -= (size_t)n;
		*(d->is_up ? &p->st.bytes_up : &p->st.bytes_down) += (uint64_t)n;
		for (size_t left = (size_t)n; left;) {
			struct seg *s = d->head;
			size_t len = s->len - s->off;
			if (len > left) {
				s->off += (uint32_t)left;
				break;
			}
			left -= len;
			d->head = s->next;
			if (!d->head)
				d->tail = NULL;
			free(s);
		}
		if (d->is_up && p->reset_after >= 0 && d->bytes >= (uint64_t)p->reset_after) {
			log_info("conn %llu: reset after %llu bytes upstream",
			         (unsigned long long)c->id, (unsigned long long)d->bytes);
			p->reset_after = -1;
			c->dead = c->rst = 1;
			return;
		}
		if ((size_t)n < total) {
			d->blocked = 1;
			return;
		}
	}
}

static int64_t on_dir_timer(struct loop *l, void *arg)
{
	(void)l;
	struct dir *d = arg;
	d->timer = NULL; /* this one ends; settle arms a new one if needed */
	dir_send(d);
	conn_settle(d->c);
	return -1;
}

static void conn_connected(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(c->srv.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		log_info("conn %llu: upstream connect: %s", (unsigned long long)c->id,
		         strerror(err));
		c->p->st.connect_failed++;
		c->dead = c->rst = 1;
		return;
	}
	c->connecting = 0;
	log_debug("conn %llu: upstream connected", (unsigned long long)c->id);
}

static void on_side(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	(void)fd;
	struct side *s = arg;
	struct conn *c = s->c;
	struct dir *in = s == &c->cli ? &c->up : &c->down;
	struct dir *out = s == &c->cli ? &c->down : &c->up;
	if (s == &c->srv && c->connecting) {
		if (events & (LOOP_WRITE | LOOP_ERROR))
			conn_connected(c);
		conn_settle(c);
		return;
	}
	if (events & (LOOP_READ | LOOP_ERROR) && s->want & LOOP_READ)
		dir_read(in);
	if (!c->dead && events & (LOOP_WRITE | LOOP_ERROR) && out->blocked) {
		out->blocked = 0;
		dir_send(out);
	}
	if (!c->dead && (in->head && in->head->release <= now_us()))
		dir_send(in); /* nothing to wait for (no delay, no rate) */
	conn_settle(c);
}

static int nb_socket(int family)
{
	return socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void conn_connect(struct conn *c)
{
	struct proxy *p = c->p;
	c->waiting = 0;
	int fd = nb_socket(p->caddr.ss_family);
	if (fd < 0) {
		log_warn("socket");
		c->dead = c->rst = 1;
		return;
	}
	set_nodelay(fd);
	c->srv.fd = fd;
	if (connect(fd, (struct sockaddr *)&p->caddr, p->caddr_len) == 0) {
		c->connecting = 0;
	} else if (errno == EINPROGRESS) {
		c->connecting = 1;
	} else {
		log_info("conn %llu: upstream connect: %s", (unsigned long long)c->id,
		         strerror(errno));
		p->st.connect_failed++;
		c->dead = c->rst = 1;
	}
}

static void dir_init(struct dir *d, struct conn *c, struct side *src, struct side *dst,
                     struct link_model *m, int is_up)
{
	d->c = c;
	d->src = src;
	d->dst = dst;
	d->model = m;
	d->is_up = is_up;
}

static void on_accept(struct loop *l, int lfd, unsigned events, void *arg)
{
	(void)l;
	(void)events;
	struct proxy *p = arg;
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED &&
		    errno != EINTR)
			log_warn("accept");
		return;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	set_nodelay(fd);
	c->p = p;
	c->id = ++p->next_id;
	c->cli = (struct side){.fd = fd, .c = c};
	c->srv = (struct side){.fd = -1, .c = c};
	dir_init(&c->up, c, &c->cli, &c->srv, &p->up, 1);
	dir_init(&c->down, c, &c->srv, &c->cli, &p->down, 0);
	c->next = p->conns;
	if (p->conns)
		p->conns->prev = c;
	p->conns = c;
	p->st.accepted++;
	p->st.active++;
	log_debug("conn %llu: accepted%s", (unsigned long long)c->id,
	          p->blackout ? " during a blackout" : "");
	if (p->blackout)
		c->waiting = 1;
	else
		conn_connect(c);
	conn_settle(c);
}

/* ---- faults ---- */

static void reset_all(struct proxy *p)
{
	while (p->conns) {
		p->conns->dead = p->conns->rst = 1;
		conn_free(p->conns);
	}
}

static void drop_all(struct proxy *p)
{
	for (struct conn *c = p->conns, *next; c; c = next) {
		next = c->next;
		c->dropped = 1;
		dir_free_segs(&c->up);
		dir_free_segs(&c->down);
		c->up.blocked = c->down.blocked = 0;
		conn_settle(c);
	}
}

static void set_blackout(struct proxy *p, int on)
{
	if (on == p->blackout)
		return;
	p->blackout = on;
	log_info("blackout %s", on ? "on" : "off");
	if (on) {
		p->blackout_since = now_us();
		for (struct conn *c = p->conns, *next; c; c = next) {
			next = c->next;
			conn_settle(c); /* drops the timers */
		}
		return;
	}
	/* The link's clock stood still: everything queued moves by as much. */
	int64_t by = now_us() - p->blackout_since;
	link_model_shift(&p->up, by);
	link_model_shift(&p->down, by);
	for (struct conn *c = p->conns, *next; c; c = next) {
		next = c->next;
		for (struct dir *d = &c->up; d; d = d == &c->up ? &c->down : NULL) {
			for (struct seg *s = d->head; s; s = s->next)
				s->release += by;
			if (d->last_release)
				d->last_release += by;
		}
		if (c->waiting)
			conn_connect(c);
		conn_settle(c);
	}
}

static int listener_start(struct proxy *p)
{
	/* After refuse on, the socket may still hold its port (EINVAL here). */
	if (bind(p->lfd, (struct sockaddr *)&p->laddr, p->laddr_len) < 0 && errno != EINVAL)
		return -errno;
	if (listen(p->lfd, 128) < 0)
		return -errno;
	return loop_fd_add(p->loop, p->lfd, LOOP_READ, on_accept, p);
}

static int set_refuse(struct proxy *p, int on)
{
	if (on == p->refusing)
		return 0;
	if (on) {
		/* A listener shut down answers connects with RST: ECONNREFUSED. */
		loop_fd_del(p->loop, p->lfd);
		if (shutdown(p->lfd, SHUT_RD) < 0)
			return -errno;
	} else {
		int rc = listener_start(p);
		if (rc < 0)
			return rc;
	}
	p->refusing = on;
	log_info("refuse %s", on ? "on" : "off");
	return 0;
}

static int64_t on_cycle(struct loop *l, void *arg)
{
	(void)l;
	struct proxy *p = arg;
	set_blackout(p, !p->blackout);
	return p->blackout ? p->cycle_down_ms : p->cycle_up_ms;
}

/* ---- control channel ---- */

static void ctl_drop(struct proxy *p, struct ctl_client *cc)
{
	for (int i = 0; i < CTL_CLIENTS; i++)
		if (p->ctl[i] == cc)
			p->ctl[i] = NULL;
	loop_fd_del(p->loop, cc->fd);
	close(cc->fd);
	free(cc);
}

static void ctl_stats(struct proxy *p, char *out, size_t cap)
{
	size_t qup = 0, qdown = 0;
	for (struct conn *c = p->conns; c; c = c->next) {
		qup += c->up.queued;
		qdown += c->down.queued;
	}
	const struct stats *s = &p->st;
	snprintf(out, cap,
	         "ok accepted=%llu active=%llu bytes_up=%llu bytes_down=%llu resets=%llu "
	         "connect_failed=%llu queued_up=%zu queued_down=%zu "
	         "queue_peak=%zu blackout=%d refuse=%d delay=%u jitter=%u up=%u down=%u",
	         (unsigned long long)s->accepted, (unsigned long long)s->active,
	         (unsigned long long)s->bytes_up, (unsigned long long)s->bytes_down,
	         (unsigned long long)s->resets, (unsigned long long)s->connect_failed, qup, qdown,
	         s->queue_peak, p->blackout, p->refusing, p->delay_ms, p->jitter_ms, p->up_kbit,
	         p->down_kbit);
}

/* Runs one command; the answer goes to out. */
static void ctl_run(struct proxy *p, const char *line, char *out, size_t cap)
{
	struct link_cmd cmd;
	char err[128];
	if (link_cmd_parse(line, &cmd, err, sizeof(err)) < 0) {
		snprintf(out, cap, "error: %s", err);
		return;
	}
	snprintf(out, cap, "ok");
	switch (cmd.kind) {
	case LINK_CMD_SET:
		if (cmd.set & LINK_SET_DELAY)
			p->delay_ms = cmd.delay_ms;
		if (cmd.set & LINK_SET_JITTER)
			p->jitter_ms = cmd.jitter_ms;
		if (cmd.set & LINK_SET_UP)
			p->up_kbit = cmd.up_kbit;
		if (cmd.set & LINK_SET_DOWN)
			p->down_kbit = cmd.down_kbit;
		apply_link(p);
		log_info("link: delay %u ms jitter %u ms up %u kbit/s down %u kbit/s", p->delay_ms,
		         p->jitter_ms, p->up_kbit, p->down_kbit);
		break;
	case LINK_CMD_BLACKOUT:
		set_blackout(p, cmd.on);
		break;
	case LINK_CMD_REFUSE: {
		int rc = set_refuse(p, cmd.on);
		if (rc < 0)
			snprintf(out, cap, "error: refuse: %s", strerror(-rc));
		break;
	}
	case LINK_CMD_RESET_ALL:
		log_info("reset all (%llu open)", (unsigned long long)p->st.active);
		reset_all(p);
		break;
	case LINK_CMD_DROP_ALL:
		log_info("drop all (%llu open)", (unsigned long long)p->st.active);
		drop_all(p);
		break;
	case LINK_CMD_RESET_AFTER:
		p->reset_after = (int64_t)cmd.bytes;
		log_info("reset armed after %llu bytes upstream", (unsigned long long)cmd.bytes);
		break;
	case LINK_CMD_STATS:
		ctl_stats(p, out, cap);
		break;
	case LINK_CMD_QUIT:
		log_info("quit");
		loop_stop(p->loop);
		break;
	}
}

static void on_ctl_client(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	(void)events;
	struct ctl_client *cc = arg;
	struct proxy *p = cc->p;
	ssize_t n = recv(fd, cc->buf + cc->len, sizeof(cc->buf) - cc->len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		ctl_drop(p, cc);
		return;
	}
	cc->len += (size_t)n;
	char *nl;
	while ((nl = memchr(cc->buf, '\n', cc->len))) {
		*nl = 0;
		char out[512];
		ctl_run(p, cc->buf, out, sizeof(out) - 1);
		strcat(out, "\n");
		size_t used = (size_t)(nl + 1 - cc->buf);
		memmove(cc->buf, nl + 1, cc->len - used);
		cc->len -= used;
		/* Answers are short: one that does not fit the socket buffer
		 * means a client that does not read. */
		if (send(fd, out, strlen(out), MSG_NOSIGNAL | MSG_DONTWAIT) !=
		    (ssize_t)strlen(out)) {
			ctl_drop(p, cc);
			return;
		}
	}
	if (cc->len == sizeof(cc->buf)) {
		const char *msg = "error: line too long\n";
		send(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT);
		ctl_drop(p, cc);
	}
}

static void on_ctl_accept(struct loop *l, int lfd, unsigned events, void *arg)
{
	(void)events;
	struct proxy *p = arg;
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	int slot = -1;
	for (int i = 0; i < CTL_CLIENTS && slot < 0; i++)
		if (!p->ctl[i])
			slot = i;
	struct ctl_client *cc = slot >= 0 ? calloc(1, sizeof(*cc)) : NULL;
	if (!cc) {
		close(fd); /* too many control clients */
		return;
	}
	cc->p = p;
	cc->fd = fd;
	if (loop_fd_add(l, fd, LOOP_READ, on_ctl_client, cc) < 0) {
		close(fd);
		free(cc);
		return;
	}
	p->ctl[slot] = cc;
}

/* ---- setup ---- */

/* Writes "PORT\n" to path atomically (a reader never sees half of it). */
static int write_port_file(const char *path, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	unsigned port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                               : ((struct sockaddr_in *)&ss)->sin_port);
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "%u\n", port);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		int e = -errno;
		unlink(tmp);
		return e;
	}
	return 0;
}

static int ctl_open(struct proxy *p, const char *sock_path, const char *port_file)
{
	int fd;
	if (sock_path) {
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		if (strlen(sock_path) >= sizeof(un.sun_path))
			return -ENAMETOOLONG;
		strcpy(un.sun_path, sock_path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		unlink(sock_path); /* a stale socket from an earlier run */
		mode_t old = umask(0077);
		int rc = bind(fd, (struct sockaddr *)&un, sizeof(un));
		umask(old);
		if (rc < 0 || listen(fd, 8) < 0) {
			int e = -errno;
			close(fd);
			return e;
		}
		p->ctl_path = sock_path;
	} else {
		struct sockaddr_in a = {.sin_family = AF_INET,
		                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		fd = nb_socket(AF_INET);
		if (fd < 0)
			return -errno;
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0) {
			int e = -errno;
			close(fd);
			return e;
		}
		int rc = write_port_file(port_file, fd);
		if (rc < 0) {
			close(fd);
			return rc;
		}
	}
	p->ctl_fd = fd;
	int rc = loop_fd_add(p->loop, fd, LOOP_READ, on_ctl_accept, p);
	if (rc < 0) {
		close(fd);
		p->ctl_fd = -1;
	}
	return rc;
}

static void on_signal(struct loop *l, int signo, void *arg)
{
	(void)arg;
	log_info("signal %d: stopping", signo);
	loop_stop(l);
}

static void usage(FILE *f)
{
	fputs("usage: linkproxy --listen 127.0.0.1:PORT --connect 127.0.0.1:PORT\n"
	      "         [--port-file F] [--control-file SOCK | --control-port-file F]\n"
	      "         [--delay-ms RTT] [--jitter-ms J] [--up-kbit K] [--down-kbit K]\n"
	      "         [--seed N] [--blackout-cycle UP_S:DOWN_S] [--queue-kib K] [--verbose]\n"
	      "Loopback addresses only. --delay-ms is the round trip (half each way).\n",
	      f);
}

struct opts {
	const char *listen, *connect, *port_file, *ctl_file, *ctl_port_file, *cycle;
	uint64_t delay, jitter, up, down, seed, queue_kib;
	int seeded, verbose;
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"connect", required_argument, NULL, 'c'},
	    {"port-file", required_argument, NULL, 'p'},
	    {"control-file", required_argument, NULL, 'C'},
	    {"control-port-file", required_argument, NULL, 'P'},
	    {"delay-ms", required_argument, NULL, 'd'},
	    {"jitter-ms", required_argument, NULL, 'j'},
	    {"up-kbit", required_argument, NULL, 'u'},
	    {"down-kbit", required_argument, NULL, 'D'},
	    {"seed", required_argument, NULL, 's'},
	    {"blackout-cycle", required_argument, NULL, 'b'},
	    {"queue-kib", required_argument, NULL, 'q'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	*o = (struct opts){.queue_kib = 256};
	int ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		uint64_t *num = NULL, max = 0;
		switch (ch) {
		case 'l':
			o->listen = optarg;
			break;
		case 'c':
			o->connect = optarg;
			break;
		case 'p':
			o->port_file = optarg;
			break;
		case 'C':
			o->ctl_file = optarg;
			break;
		case 'P':
			o->ctl_port_file = optarg;
			break;
		case 'b':
			o->cycle = optarg;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'd':
			num = &o->delay, max = 600000;
			break;
		case 'j':
			num = &o->jitter, max = 600000;
			break;
		case 'u':
			num = &o->up, max = 100000000;
			break;
		case 'D':
			num = &o->down, max = 100000000;
			break;
		case 's':
			num = &o->seed, max = UINT64_MAX;
			o->seeded = 1;
			break;
		case 'q':
			num = &o->queue_kib, max = 1 << 20;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
		if (num && link_num_parse(optarg, max, num) < 0) {
			fprintf(stderr, "linkproxy: %s: want a number 0..%llu\n", optarg,
			        (unsigned long long)max);
			return -EINVAL;
		}
	}
	if (optind != argc || !o->listen || !o->connect || o->queue_kib == 0 ||
	    (o->ctl_file && o->ctl_port_file))
		return -EINVAL;
	return 0;
}

static void proxy_close(struct proxy *p)
{
	while (p->conns)
		conn_free(p->conns);
	for (int i = 0; i < CTL_CLIENTS; i++)
		if (p->ctl[i])
			ctl_drop(p, p->ctl[i]);
	if (p->ctl_fd >= 0) {
		loop_fd_del(p->loop, p->ctl_fd);
		close(p->ctl_fd);
	}
	if (p->ctl_path)
		unlink(p->ctl_path);
	if (p->lfd >= 0) {
		if (!p->refusing)
			loop_fd_del(p->loop, p->lfd);
		close(p->lfd);
	}
	loop_close(p->loop);
}

int main(int argc, char **argv)
{
	struct opts o;
	char err[160];
	struct proxy px = {.lfd = -1, .ctl_fd = -1, .reset_after = -1, .exit_code = 1};
	struct proxy *p = &px;
	if (parse_opts(argc, argv, &o) < 0) {
		usage(stderr);
		return 2;
	}
	log_open("linkproxy", LOG_TARGET_STDERR, o.verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	if (link_addr_parse(o.listen, &p->laddr, &p->laddr_len, err, sizeof(err)) < 0 ||
	    link_addr_parse(o.connect, &p->caddr, &p->caddr_len, err, sizeof(err)) < 0 ||
	    (o.cycle &&
	     link_cycle_parse(o.cycle, &p->cycle_up_ms, &p->cycle_down_ms, err, sizeof(err)) < 0)) {
		log_errx("%s", err);
		return 2;
	}
	p->delay_ms = (uint32_t)o.delay;
	p->jitter_ms = (uint32_t)o.jitter;
	p->up_kbit = (uint32_t)o.up;
	p->down_kbit = (uint32_t)o.down;
	p->cap = (size_t)o.queue_kib * 1024;
	uint64_t seed = o.seeded ? o.seed : (uint64_t)now_us() ^ ((uint64_t)getpid() << 32);
	link_model_init(&p->up, seed);
	link_model_init(&p->down, seed ^ 0x5bd1e995u);
	apply_link(p);
	signal(SIGPIPE, SIG_IGN);

	int rc = loop_open(&p->loop);
	if (rc < 0) {
		log_errx("loop: %s", strerror(-rc));
		return 1;
	}
	if ((rc = loop_signal_add(p->loop, SIGTERM, on_signal, p)) < 0 ||
	    (rc = loop_signal_add(p->loop, SIGINT, on_signal, p)) < 0) {
		log_errx("signals: %s", strerror(-rc));
		goto out;
	}
	p->lfd = nb_socket(p->laddr.ss_family);
	int one = 1;
	if (p->lfd < 0 || setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
		log_err("listen socket");
		goto out;
	}
	if ((rc = listener_start(p)) < 0) {
		log_errx("listen on %s: %s", o.listen, strerror(-rc));
		goto out;
	}
	/* Port 0 was resolved: rebinding after "refuse off" uses the real one. */
	p->laddr_len = sizeof(p->laddr);
	getsockname(p->lfd, (struct sockaddr *)&p->laddr, &p->laddr_len);
	if (o.port_file && (rc = write_port_file(o.port_file, p->lfd)) < 0) {
		log_errx("%s: %s", o.port_file, strerror(-rc));
		goto out;
	}
	if ((o.ctl_file || o.ctl_port_file) &&
	    (rc = ctl_open(p, o.ctl_file, o.ctl_port_file)) < 0) {
		log_errx("control channel %s: %s", o.ctl_file ? o.ctl_file : o.ctl_port_file,
		         strerror(-rc));
		goto out;
	}
	if (o.cycle && !loop_timer_add(p->loop, p->cycle_up_ms, on_cycle, p)) {
		log_errx("blackout cycle: out of memory");
		goto out;
	}
	log_info("%s -> %s: delay %u ms (round trip) jitter %u ms up %u kbit/s down %u kbit/s "
	         "queue %llu KiB seed %llu",
	         o.listen, o.connect, p->delay_ms, p->jitter_ms, p->up_kbit, p->down_kbit,
	         (unsigned long long)o.queue_kib, (unsigned long long)seed);
	if (loop_run(p->loop) == 0)
		p->exit_code = 0;
	log_info("stopped: accepted %llu, up %llu bytes, down %llu bytes, resets %llu",
	         (unsigned long long)p->st.accepted, (unsigned long long)p->st.bytes_up,
	         (unsigned long long)p->st.bytes_down, (unsigned long long)p->st.resets);
out:
	proxy_close(p);
	log_close();
	return p->exit_code;
}

#include "agent/loop.h"
#include "agent/log.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 32

struct fd_reg {
	loop_fd_fn cb; /* NULL: slot free */
	void *arg;
	unsigned events;
};

struct loop_timer {
	struct loop_timer *next; /* sorted by due time; armed timers only */
	int64_t due;
	int64_t slack; /* may run this much after due (loop_timer_set_slack) */
	uint64_t gen;  /* run_timers pass that armed it */
	int armed;
	loop_timer_fn cb;
	void *arg;
};

struct sig_reg {
	loop_signal_fn cb;
	void *arg;
};

struct loop {
	int epfd;
	int sigfd;
	sigset_t sigs;
	struct sig_reg sig[65];
	struct fd_reg *fds; /* indexed by fd */
	int nfds;
	struct loop_timer *timers;
	struct loop_timer *running; /* the timer whose callback runs now */
	int running_cancelled;
	loop_hook_fn before_sleep;
	void *before_sleep_arg;
	int stop;
	uint64_t gen;
	uint64_t wakeups;
};

int64_t loop_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t loop_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int loop_open(struct loop **out)
{
	struct loop *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int e = -errno;
		free(l);
		return e;
	}
	l->sigfd = -1;
	sigemptyset(&l->sigs);
	*out = l;
	return 0;
}

void loop_close(struct loop *l)
{
	if (!l)
		return;
	while (l->timers) {
		struct loop_timer *t = l->timers;
		l->timers = t->next;
		free(t);
	}
	if (l->sigfd >= 0)
		close(l->sigfd);
	close(l->epfd);
	free(l->fds);
	free(l);
}

static uint32_t to_epoll(unsigned events)
{
	return (events & LOOP_READ ? EPOLLIN : 0) | (events & LOOP_WRITE ? EPOLLOUT : 0);
}

int loop_fd_add(struct loop *l, int fd, unsigned events, loop_fd_fn cb, void *arg)
{
	if (fd < 0 || !cb)
		return -EINVAL;
	if (fd >= l->nfds) {
		int n = fd + 16;
		struct fd_reg *f = realloc(l->fds, (size_t)n * sizeof(*f));
		if (!f)
			return -ENOMEM;
		memset(f + l->nfds, 0, (size_t)(n - l->nfds) * sizeof(*f));
		l->fds = f;
		l->nfds = n;
	}
	if (l->fds[fd].cb)
		return -EEXIST;
	struct epoll_event ev = {.events = to_epoll(events), .data.fd = fd};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	l->fds[fd] = (struct fd_reg){cb, arg, events};
	return 0;
}

int loop_fd_mod(struct loop *l, int fd, unsigned events)
{
	if (fd < 0 || fd >= l->nfds || !l->fds[fd].cb)
		return -ENOENT;
	struct epoll_event ev = {.events = to_epoll(events), .data.fd = fd};
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	l->fds[fd].events = events;
	return 0;
}

int loop_fd_del(struct loop *l, int fd)
{
	if (fd < 0 || fd >= l->nfds || !l->fds[fd].cb)
		return -ENOENT;
	l->fds[fd].cb = NULL;
	/* The fd may already be closed (curl closes before telling): the
	 * kernel then dropped it from the epoll set by itself. */
	if (epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != EBADF && errno != ENOENT)
		return -errno;
	return 0;
}

static void timer_unlink(struct loop *l, struct loop_timer *t)
{
	for (struct loop_timer **p = &l->timers; *p; p = &(*p)->next) {
		if (*p == t) {
			*p = t->next;
			break;
		}
	}
	t->armed = 0;
}

static void timer_insert(struct loop *l, struct loop_timer *t, int64_t delay_ms)
{
	t->due = loop_now_ms() + (delay_ms > 0 ? delay_ms : 0);
	t->gen = l->gen;
	t->armed = 1;
	struct loop_timer **p = &l->timers;
	while (*p && (*p)->due <= t->due)
		p = &(*p)->next;
	t->next = *p;
	*p = t;
}

struct loop_timer *loop_timer_add(struct loop *l, int64_t delay_ms, loop_timer_fn cb, void *arg)
{
	struct loop_timer *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->cb = cb;
	t->arg = arg;
	timer_insert(l, t, delay_ms);
	return t;
}

void loop_timer_set(struct loop *l, struct loop_timer *t, int64_t delay_ms)
{
	if (t->armed)
		timer_unlink(l, t);
	if (delay_ms >= 0)
		timer_insert(l, t, delay_ms);
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	if (!t)
		return;
	if (t == l->running) { /* freed by run_timers once its callback returns */
		l->running_cancelled = 1;
		if (t->armed)
			timer_unlink(l, t);
		return;
	}
	if (t->armed)
		timer_unlink(l, t);
	free(t);
}

int64_t loop_timer_due(const struct loop_timer *t)
{
	return t->due;
}

void loop_timer_set_slack(struct loop_timer *t, int64_t slack_ms)
{
	t->slack = slack_ms > 0 ? slack_ms : 0;
}

/* When the loop must wake at the latest for its timers: the earliest
 * due + slack (the list is sorted by due only, and there are few timers). */
static int64_t timers_deadline(const struct loop *l)
{
	int64_t dl = INT64_MAX;
	for (const struct loop_timer *t = l->timers; t; t = t->next) {
		if (t->due >= dl)
			break; /* sorted by due: no later one can end sooner */
		if (t->due + t->slack < dl)
			dl = t->due + t->slack;
	}
	return dl;
}

static void on_signalfd(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)events;
	(void)arg;
	struct signalfd_siginfo si;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo < 65 && l->sig[si.ssi_signo].cb)
			l->sig[si.ssi_signo].cb(l, (int)si.ssi_signo, l->sig[si.ssi_signo].arg);
	}
}

int loop_signal_add(struct loop *l, int signo, loop_signal_fn cb, void *arg)
{
	if (signo <= 0 || signo >= 65)
		return -EINVAL;
	sigaddset(&l->sigs, signo);
	if (sigprocmask(SIG_BLOCK, &l->sigs, NULL) < 0)
		return -errno;
	int fd = signalfd(l->sigfd, &l->sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (l->sigfd < 0) {
		int rc = loop_fd_add(l, fd, LOOP_READ, on_signalfd, NULL);
		if (rc < 0) {
			close(fd);
			return rc;
		}
		l->sigfd = fd;
	}
	l->sig[signo] = (struct sig_reg){cb, arg};
	return 0;
}

void loop_set_before_sleep(struct loop *l, loop_hook_fn cb, void *arg)
{
	l->before_sleep = cb;
	l->before_sleep_arg = arg;
}

static int run_timers(struct loop *l)
{
	int ran = 0;
	int64_t now = loop_now_ms();
	/* Timers armed during this pass carry its generation and wait for the
	 * next iteration: one that re-arms itself at 0 ms cannot starve the
	 * fds. Every timer stays on the one list, so callbacks may cancel any. */
	l->gen++;
	for (;;) {
		struct loop_timer *t = l->timers;
		while (t && t->due <= now && t->gen == l->gen)
			t = t->next;
		if (!t || t->due > now)
			break;
		timer_unlink(l, t);
		l->running = t;
		l->running_cancelled = 0;
		int64_t next = t->cb(l, t->arg);
		l->running = NULL;
		ran++;
		if (l->running_cancelled || next < 0) {
			if (t->armed)
				timer_unlink(l, t);
			free(t);
		} else if (!t->armed) {
			timer_insert(l, t, next);
		}
	}
	return ran;
}

int loop_run_once(struct loop *l, int timeout_ms)
{
	if (l->before_sleep)
		l->before_sleep(l, l->before_sleep_arg);
	int wait = timeout_ms;
	if (l->timers) {
		int64_t d = timers_deadline(l) - loop_now_ms();
		if (d < 0)
			d = 0;
		if (wait < 0 || d < wait)
			wait = d > INT32_MAX ? INT32_MAX : (int)d;
	}
	struct epoll_event evs[MAX_EVENTS];
	int n = epoll_wait(l->epfd, evs, MAX_EVENTS, wait);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return -errno;
	}
	l->wakeups++;
	int ran = 0;
	for (int i = 0; i < n; i++) {
		int fd = evs[i].data.fd;
		/* An earlier callback in this batch may have removed it. */
		if (fd >= l->nfds || !l->fds[fd].cb)
			continue;
		unsigned e = (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP) ? LOOP_READ : 0) |
		             (evs[i].events & EPOLLOUT ? LOOP_WRITE : 0) |
		             (evs[i].events & (EPOLLERR | EPOLLHUP) ? LOOP_ERROR : 0);
		l->fds[fd].cb(l, fd, e, l->fds[fd].arg);
		ran++;
	}
	return ran + run_timers(l);
}

int loop_run(struct loop *l)
{
	l->stop = 0;
	while (!l->stop) {
		int rc = loop_run_once(l, -1);
		if (rc < 0) {
			log_errx("loop: epoll_wait: %s", strerror(-rc));
			return rc;
		}
	}
	return 0;
}

void loop_stop(struct loop *l)
{
	l->stop = 1;
}

uint64_t loop_wakeups(const struct loop *l)
{
	return l->wakeups;
}

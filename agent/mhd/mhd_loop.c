/* libmicrohttpd on the loop (mhd_loop.h). */
#include "agent/mhd/mhd_loop.h"

#include "agent/log.h"
#include "agent/loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* MHD's timeout can be "none"; the loop still wakes now and then */
#define MHD_LOOP_MAX_SLEEP_MS 60000

struct mhd_loop {
	struct loop *l;
	struct MHD_Daemon *d;
	int epfd;
	unsigned port;
	struct loop_timer *timer; /* MHD's own timeouts, and the kick after a resume */
	int kicked;
};

int mhd_loop_parse_listen(const char *listen, struct sockaddr_storage *ss)
{
	char host[128];
	const char *colon;
	memset(ss, 0, sizeof(*ss));
	int v6 = listen[0] == '[';
	if (v6) {
		const char *end = strchr(listen, ']');
		if (!end || end[1] != ':' || (size_t)(end - listen - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, listen + 1, (size_t)(end - listen - 1));
		host[end - listen - 1] = 0;
		colon = end + 1;
	} else {
		colon = strrchr(listen, ':');
		if (!colon || (size_t)(colon - listen) >= sizeof(host))
			return -EINVAL;
		memcpy(host, listen, (size_t)(colon - listen));
		host[colon - listen] = 0;
	}
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (colon[1] == 0 || *end || port < 0 || port > 65535)
		return -EINVAL;
	if (v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		return inet_pton(AF_INET6, host, &s6->sin6_addr) == 1 ? 6 : -EINVAL;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 4 : -EINVAL;
}

static void on_mhd_fd(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	(void)fd;
	(void)events;
	struct mhd_loop *m = arg;
	MHD_run(m->d);
}

static int64_t on_mhd_timer(struct loop *l, void *arg)
{
	(void)l;
	struct mhd_loop *m = arg;
	m->kicked = 0;
	MHD_run(m->d);
	return 1000; /* set again before the loop sleeps */
}

static void before_sleep(struct loop *l, void *arg)
{
	struct mhd_loop *m = arg;
	MHD_UNSIGNED_LONG_LONG t;
	if (m->kicked)
		loop_timer_set(l, m->timer, 0);
	else if (MHD_get_timeout(m->d, &t) == MHD_YES)
		loop_timer_set(l, m->timer,
		               t > MHD_LOOP_MAX_SLEEP_MS ? MHD_LOOP_MAX_SLEEP_MS : (int64_t)t);
	else
		loop_timer_set(l, m->timer, MHD_LOOP_MAX_SLEEP_MS);
}

int mhd_loop_attach(struct loop *l, struct MHD_Daemon *d, struct mhd_loop **out)
{
	*out = NULL;
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);
	const union MHD_DaemonInfo *lfd = MHD_get_daemon_info(d, MHD_DAEMON_INFO_LISTEN_FD);
	struct sockaddr_storage bound;
	socklen_t bl = sizeof(bound);
	if (!info || !lfd || getsockname(lfd->listen_fd, (struct sockaddr *)&bound, &bl) < 0)
		return -EIO;
	struct mhd_loop *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->l = l;
	m->d = d;
	m->epfd = info->epoll_fd;
	m->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
	                                            : ((struct sockaddr_in *)&bound)->sin_port);
	int rc = -ENOMEM;
	if (!(m->timer = loop_timer_add(l, 0, on_mhd_timer, m)) ||
	    (rc = loop_fd_add(l, m->epfd, LOOP_READ, on_mhd_fd, m)) < 0) {
		loop_timer_cancel(l, m->timer);
		free(m);
		return rc;
	}
	loop_set_before_sleep(l, before_sleep, m);
	*out = m;
	return 0;
}

unsigned mhd_loop_port(const struct mhd_loop *m)
{
	return m->port;
}

void mhd_loop_kick(struct mhd_loop *m)
{
	m->kicked = 1;
	loop_timer_set(m->l, m->timer, 0);
}

void mhd_loop_detach(struct mhd_loop *m)
{
	if (!m)
		return;
	MHD_run(m->d);
	loop_set_before_sleep(m->l, NULL, NULL);
	loop_fd_del(m->l, m->epfd);
	loop_timer_cancel(m->l, m->timer);
	free(m);
}

void mhd_loop_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = 0;
	log_warnx("%s: %s", cls ? (const char *)cls : "http", line);
}

/* Kernel uevents on the loop (uevent.h). */
#define _GNU_SOURCE /* struct ucred, SCM_CREDENTIALS */
#include "hal/uevent.h"

#include "agent/loop.h"

#include <errno.h>
#include <linux/netlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int action_ok(const char *s, size_t n)
{
	if (n == 0 || n > 32)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 'a' || s[i] > 'z')
			return 0;
	return 1;
}

static int key_ok(const char *s, size_t n)
{
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* The value of a field once: a second ACTION (or DEVPATH, SUBSYSTEM) makes
 * the message ambiguous, so it is malformed. */
static int take(const char **slot, const char *val)
{
	if (*slot)
		return -EINVAL;
	*slot = val;
	return 0;
}

int hal_uevent_parse(const char *buf, size_t len, struct hal_uevent *ev)
{
	/* The trailing NUL bounds every strlen below to the buffer. */
	if (!buf || len == 0 || len > HAL_UEVENT_MAX || buf[len - 1] != '\0')
		return -EINVAL;
	size_t hl = strlen(buf);
	const char *at = memchr(buf, '@', hl);
	if (!at || !action_ok(buf, (size_t)(at - buf)) || at[1] != '/')
		return -EINVAL;
	const char *action = NULL, *devpath = NULL, *subsystem = NULL;
	int fields = 0;
	for (size_t off = hl + 1; off < len;) {
		const char *f = buf + off;
		size_t fl = strlen(f);
		const char *eq = memchr(f, '=', fl);
		if (fl == 0 || ++fields > HAL_UEVENT_MAX_FIELDS || !eq ||
		    !key_ok(f, (size_t)(eq - f)))
			return -EINVAL;
		size_t kl = (size_t)(eq - f);
		int rc = 0;
		if (kl == 6 && !memcmp(f, "ACTION", 6))
			rc = take(&action, eq + 1);
		else if (kl == 7 && !memcmp(f, "DEVPATH", 7))
			rc = take(&devpath, eq + 1);
		else if (kl == 9 && !memcmp(f, "SUBSYSTEM", 9))
			rc = take(&subsystem, eq + 1);
		if (rc < 0)
			return rc;
		off += fl + 1;
	}
	size_t al = (size_t)(at - buf);
	if (!action || !devpath || !subsystem || !subsystem[0] || strlen(action) != al ||
	    memcmp(action, buf, al) != 0 || strcmp(devpath, at + 1) != 0)
		return -EINVAL;
	ev->action = action;
	ev->devpath = devpath;
	ev->subsystem = subsystem;
	return 0;
}

struct hal_uevent_mon {
	struct loop *loop;
	int fd;
	int own;      /* the kernel's socket: ours to close, senders checked */
	int passcred; /* SO_PASSCRED took: credentials are required */
	int stream;   /* a seqpacket test fd: a 0-byte read is the peer gone */
	int active;
	char subsystem[64];
	hal_uevent_fn on_event;
	void (*on_overrun)(void *arg);
	void *arg;
	struct hal_uevent_stats st;
	char buf[HAL_UEVENT_MAX + 1]; /* one more: a longer message shows */
};

static void drop_fd(struct hal_uevent_mon *m)
{
	if (!m->active)
		return;
	loop_fd_del(m->loop, m->fd);
	m->active = 0;
}

/* 1 when the datagram comes from the kernel itself: nl_pid 0 (user space
 * can send to group 1 as root, but never as pid 0) and, as udev also
 * insists, credentials saying uid 0. */
static int from_kernel(const struct hal_uevent_mon *m, struct msghdr *msg)
{
	const struct sockaddr_nl *nl = msg->msg_name;
	if (msg->msg_namelen < sizeof(*nl) || nl->nl_family != AF_NETLINK || nl->nl_pid != 0)
		return 0;
	if (!m->passcred)
		return 1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
		    c->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
			struct ucred cr;
			memcpy(&cr, CMSG_DATA(c), sizeof(cr));
			return cr.uid == 0;
		}
	}
	return 0;
}

static void on_read(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	struct hal_uevent_mon *m = arg;
	/* a bounded batch per wakeup: a flood cannot starve the loop */
	for (int i = 0; i < 32 && m->active; i++) {
		struct sockaddr_nl from;
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(struct ucred))];
		} ctl;
		struct iovec iov = {m->buf, sizeof(m->buf)};
		struct msghdr msg = {.msg_name = &from,
		                     .msg_namelen = sizeof(from),
		                     .msg_iov = &iov,
		                     .msg_iovlen = 1,
		                     .msg_control = ctl.b,
		                     .msg_controllen = sizeof(ctl.b)};
		memset(&from, 0, sizeof(from));
		ssize_t r = recvmsg(fd, &msg, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (r < 0 && errno == ENOBUFS) {
			/* the kernel dropped messages: whatever they said is
			 * unknown, so the caller reads everything */
			m->st.overruns++;
			if (m->on_overrun)
				m->on_overrun(m->arg);
			continue;
		}
		if (r < 0 || (r == 0 && (m->stream || (events & LOOP_ERROR)))) {
			/* a read error, or the peer of a test fd gone: off the
			 * loop (it would be readable for ever), the caller's poll
			 * goes on */
			drop_fd(m);
			return;
		}
		m->st.messages++;
		struct hal_uevent ev;
		if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t)r > HAL_UEVENT_MAX ||
		    (m->own && !from_kernel(m, &msg)) ||
		    hal_uevent_parse(m->buf, (size_t)r, &ev) < 0) {
			m->st.dropped++;
			continue;
		}
		if (strcmp(ev.subsystem, m->subsystem) != 0)
			continue;
		m->st.matched++;
		if (m->on_event)
			m->on_event(m->arg, &ev);
	}
}

int hal_uevent_open(const struct hal_uevent_params *p, struct hal_uevent_mon **out)
{
	*out = NULL;
	if (!p->loop || !p->subsystem || strlen(p->subsystem) >= 64 || p->fd < 0)
		return -EINVAL;
	struct hal_uevent_mon *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->loop = p->loop;
	memcpy(m->subsystem, p->subsystem, strlen(p->subsystem) + 1);
	m->on_event = p->on_event;
	m->on_overrun = p->on_overrun;
	m->arg = p->arg;
	int rc;
	if (p->fd > 0) {
		int type = 0;
		socklen_t tl = sizeof(type);
		if (getsockopt(p->fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0) {
			rc = -errno;
			goto fail;
		}
		if (type != SOCK_DGRAM && type != SOCK_SEQPACKET) {
			rc = -EINVAL; /* a stream has no message boundaries */
			goto fail;
		}
		m->fd = p->fd;
		m->stream = type == SOCK_SEQPACKET;
	} else {
		m->own = 1;
		m->fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		               NETLINK_KOBJECT_UEVENT);
		/* group 1: the kernel's own messages (udevd's are group 2) */
		struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = 1};
		if (m->fd < 0 || bind(m->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			rc = -errno;
			goto fail;
		}
		int on = 1;
		m->passcred = setsockopt(m->fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) == 0;
	}
	if ((rc = loop_fd_add(m->loop, m->fd, LOOP_READ, on_read, m)) < 0)
		goto fail;
	m->active = 1;
	*out = m;
	return 0;
fail:
	if (m->own && m->fd >= 0)
		close(m->fd);
	free(m);
	return rc;
}

void hal_uevent_close(struct hal_uevent_mon *m)
{
	if (!m)
		return;
	drop_fd(m);
	if (m->own)
		close(m->fd);
	free(m);
}

int hal_uevent_active(const struct hal_uevent_mon *m)
{
	return m && m->active;
}

int hal_uevent_fd(const struct hal_uevent_mon *m)
{
	return m && m->active ? m->fd : -1;
}

void hal_uevent_stats(const struct hal_uevent_mon *m, struct hal_uevent_stats *st)
{
	*st = m->st;
}

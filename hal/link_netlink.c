/* The "netlink" link backend: an rtnetlink socket on the loop, subscribed to
 * link and IPv4 address changes, primed with a dump of the links so that
 * links already up at start are not news. When the kernel drops messages
 * (ENOBUFS: the socket buffer overran) the state is re-read by a new dump
 * and every running link counts as come up: a missed "up" must not leave
 * sync waiting. */
#include "hal/link.h"

#include "agent/log.h"
#include "agent/loop.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct nl {
	struct loop *loop;
	int fd;
	uint32_t seq;
	hal_link_up_fn on_up;
	void *arg;
	struct hal_link_tracker t;
	uint64_t ups, overruns;
};

static void count_up(void *arg, const char *ifname, enum hal_link_why why)
{
	struct nl *n = arg;
	n->ups++;
	if (n->on_up)
		n->on_up(n->arg, ifname, why);
}

static int dump_links(struct nl *n)
{
	struct {
		struct nlmsghdr h;
		struct ifinfomsg i;
	} req;
	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.i));
	req.h.nlmsg_type = RTM_GETLINK;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.h.nlmsg_seq = ++n->seq;
	req.i.ifi_family = AF_UNSPEC;
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	if (sendto(n->fd, &req, req.h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return -errno;
	return 0;
}

static void on_read(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	(void)events;
	struct nl *n = arg;
	/* aligned for nlmsghdr; 16 KiB holds a burst of link messages */
	static union {
		struct nlmsghdr h;
		char b[16384];
	} buf;
	for (int i = 0; i < 16; i++) {
		struct sockaddr_nl from;
		socklen_t fl = sizeof(from);
		ssize_t r =
		    recvfrom(fd, buf.b, sizeof(buf.b), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
		if (r < 0 && errno == ENOBUFS) {
			n->overruns++;
			log_warnx("link: netlink overrun; re-reading the link state");
			/* everything running now counts as new */
			hal_link_tracker_init(&n->t);
			dump_links(n);
			continue;
		}
		if (r < 0)
			return; /* EAGAIN, EINTR: wait for the next wakeup */
		if (from.nl_pid != 0)
			continue; /* only the kernel speaks here */
		int was_primed = n->t.primed;
		hal_link_parse(&n->t, buf.b, (size_t)r, count_up, n);
		if (!was_primed && n->t.primed && n->overruns) {
			/* after an overrun, links found running may have come up
			 * unseen */
			for (int k = 0; k < HAL_LINK_MAX_IFS; k++)
				if (n->t.ifs[k].index && n->t.ifs[k].running &&
				    !n->t.ifs[k].loopback)
					count_up(n, n->t.ifs[k].name, HAL_LINK_CARRIER);
		}
	}
}

static int nl_open(const struct hal_link_params *p, void **priv, char *err, size_t errlen)
{
	if (!p->loop) {
		if (err)
			snprintf(err, errlen, "link: no loop");
		return -EINVAL;
	}
	struct nl *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->loop = p->loop;
	n->on_up = p->on_up;
	n->arg = p->arg;
	hal_link_tracker_init(&n->t);
	int rc;
	n->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK,
	                         .nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR};
	if (n->fd < 0 || bind(n->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		if (err)
			snprintf(err, errlen, "link: netlink socket: %s", strerror(errno));
		goto fail;
	}
	if ((rc = dump_links(n)) < 0) {
		if (err)
			snprintf(err, errlen, "link: netlink dump: %s", strerror(-rc));
		goto fail;
	}
	if ((rc = loop_fd_add(n->loop, n->fd, LOOP_READ, on_read, n)) < 0) {
		if (err)
			snprintf(err, errlen, "link: %s", strerror(-rc));
		goto fail;
	}
	*priv = n;
	return 0;
fail:
	if (n->fd >= 0)
		close(n->fd);
	free(n);
	return rc;
}

static void nl_close(void *priv)
{
	struct nl *n = priv;
	loop_fd_del(n->loop, n->fd);
	close(n->fd);
	free(n);
}

static void nl_stats(void *priv, struct hal_link_stats *st)
{
	struct nl *n = priv;
	st->running = hal_link_running(&n->t);
	st->ups = n->ups;
	st->messages = n->t.messages;
	st->malformed = n->t.malformed;
	st->overruns = n->overruns;
}

const struct hal_link_ops hal_link_netlink_ops = {
    .name = "netlink",
    .desc = "rtnetlink link and IPv4 address events",
    .open = nl_open,
    .close = nl_close,
    .stats = nl_stats,
};

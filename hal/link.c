/* The rtnetlink parser, the module and the "none" backend (link.h). */
#include "hal/link.h"

#include <errno.h>
#include <linux/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *hal_link_why_str(enum hal_link_why w)
{
	return w == HAL_LINK_ADDRESS ? "address" : "carrier";
}

void hal_link_tracker_init(struct hal_link_tracker *t)
{
	memset(t, 0, sizeof(*t));
}

static struct hal_link_if *find(struct hal_link_tracker *t, int index, int make)
{
	struct hal_link_if *free_slot = NULL;
	for (int i = 0; i < HAL_LINK_MAX_IFS; i++) {
		if (t->ifs[i].index == index)
			return &t->ifs[i];
		if (!t->ifs[i].index && !free_slot)
			free_slot = &t->ifs[i];
	}
	if (!make || !free_slot)
		return NULL; /* more interfaces than slots: the rest go untracked */
	memset(free_slot, 0, sizeof(*free_slot));
	free_slot->index = index;
	return free_slot;
}

/* The kernel's records, read through non-const pointers: the NLMSG_ and RTA_
 * macros cast to char * and would drop a const. */
static int on_link(struct hal_link_tracker *t, struct nlmsghdr *h, hal_link_up_fn up, void *arg)
{
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg))) {
		t->malformed++;
		return 0;
	}
	struct ifinfomsg *ifi = NLMSG_DATA(h);
	if (ifi->ifi_index <= 0) {
		t->malformed++;
		return 0;
	}
	if (h->nlmsg_type == RTM_DELLINK) {
		struct hal_link_if *f = find(t, ifi->ifi_index, 0);
		if (f)
			memset(f, 0, sizeof(*f));
		return 0;
	}
	struct hal_link_if *f = find(t, ifi->ifi_index, 1);
	if (!f)
		return 0;
	/* the attributes, each length checked against what is left */
	unsigned char *a = (unsigned char *)ifi + NLMSG_ALIGN(sizeof(*ifi));
	size_t left = h->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi));
	while (left >= sizeof(struct rtattr)) {
		struct rtattr *ra = (struct rtattr *)a;
		if (ra->rta_len < sizeof(struct rtattr) || ra->rta_len > left) {
			t->malformed++;
			break;
		}
		if (ra->rta_type == IFLA_IFNAME) {
			size_t n = ra->rta_len - RTA_LENGTH(0), k = 0;
			const char *s = (const char *)(a + RTA_LENGTH(0));
			while (k < n && k < HAL_LINK_NAME - 1 && s[k])
				k++;
			memcpy(f->name, s, k);
			f->name[k] = 0;
		}
		size_t step = RTA_ALIGN(ra->rta_len);
		if (step > left)
			step = left;
		a += step;
		left -= step;
	}
	int was = f->running;
	f->flags = ifi->ifi_flags;
	f->loopback = !!(ifi->ifi_flags & IFF_LOOPBACK);
	f->running = (ifi->ifi_flags & IFF_UP) && (ifi->ifi_flags & IFF_RUNNING);
	if (t->primed && f->running && !was && !f->loopback) {
		up(arg, f->name, HAL_LINK_CARRIER);
		return 1;
	}
	return 0;
}

static int on_addr(struct hal_link_tracker *t, struct nlmsghdr *h, hal_link_up_fn up, void *arg)
{
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifaddrmsg))) {
		t->malformed++;
		return 0;
	}
	struct ifaddrmsg *ifa = NLMSG_DATA(h);
	if (h->nlmsg_type != RTM_NEWADDR || ifa->ifa_family != AF_INET)
		return 0;
	struct hal_link_if *f = find(t, (int)ifa->ifa_index, 0);
	/* an address on an interface not known as running (or loopback) is
	 * no reason to try: the carrier event will come */
	if (!t->primed || !f || f->loopback || !f->running)
		return 0;
	up(arg, f->name, HAL_LINK_ADDRESS);
	return 1;
}

int hal_link_parse(struct hal_link_tracker *t, const void *buf, size_t len, hal_link_up_fn up,
                   void *arg)
{
	int calls = 0;
	/* through uintptr_t: the records are read, never written */
	unsigned char *p = (unsigned char *)(uintptr_t)buf;
	if (((uintptr_t)buf & (NLMSG_ALIGNTO - 1)) != 0) {
		t->malformed++;
		return 0;
	}
	size_t left = len;
	while (left >= sizeof(struct nlmsghdr)) {
		struct nlmsghdr *h = (struct nlmsghdr *)p;
		if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > left) {
			t->malformed++;
			return calls;
		}
		t->messages++;
		switch (h->nlmsg_type) {
		case RTM_NEWLINK:
		case RTM_DELLINK:
			calls += on_link(t, h, up, arg);
			break;
		case RTM_NEWADDR:
		case RTM_DELADDR:
			calls += on_addr(t, h, up, arg);
			break;
		case NLMSG_DONE:
		case NLMSG_ERROR:
			t->primed = 1; /* the end of the initial dump (or its failure) */
			break;
		default:
			break;
		}
		size_t step = NLMSG_ALIGN(h->nlmsg_len);
		if (step > left)
			step = left;
		p += step;
		left -= step;
	}
	if (left > 0)
		t->malformed++; /* a truncated tail */
	return calls;
}

int hal_link_running(const struct hal_link_tracker *t)
{
	int n = 0;
	for (int i = 0; i < HAL_LINK_MAX_IFS; i++)
		n += t->ifs[i].index && t->ifs[i].running && !t->ifs[i].loopback;
	return n;
}

/* ---- the module ---- */

struct hal_link {
	const struct hal_link_ops *ops;
	void *priv;
};

static const struct hal_link_ops *const backends[] = {
    &hal_link_netlink_ops,
    &hal_link_none_ops,
};

int hal_link_open(const char *name, const struct hal_link_params *p, struct hal_link **out,
                  char *err, size_t errlen)
{
	*out = NULL;
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		if (strcmp(backends[i]->name, name) != 0)
			continue;
		struct hal_link *k = calloc(1, sizeof(*k));
		if (!k)
			return -ENOMEM;
		k->ops = backends[i];
		int rc = k->ops->open(p, &k->priv, err, errlen);
		if (rc < 0) {
			free(k);
			return rc;
		}
		*out = k;
		return 0;
	}
	if (err)
		snprintf(err, errlen, "unknown link backend '%.32s'", name);
	return -ENOENT;
}

void hal_link_close(struct hal_link *k)
{
	if (!k)
		return;
	k->ops->close(k->priv);
	free(k);
}

const char *hal_link_name(const struct hal_link *k)
{
	return k->ops->name;
}

void hal_link_stats(const struct hal_link *k, struct hal_link_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (k->ops->stats)
		k->ops->stats(k->priv, st);
}

static int none_open(const struct hal_link_params *p, void **priv, char *err, size_t errlen)
{
	(void)p;
	(void)err;
	(void)errlen;
	*priv = NULL;
	return 0;
}

static void none_close(void *priv)
{
	(void)priv;
}

const struct hal_link_ops hal_link_none_ops = {
    .name = "none",
    .desc = "no link events (sync relies on its own retries)",
    .open = none_open,
    .close = none_close,
};

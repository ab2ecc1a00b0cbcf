/* hal/link: the rtnetlink parser on constructed ("recorded") messages,
 * malformed and random input included, and the netlink backend on a real
 * rtnetlink socket in a private network namespace (unshare(CLONE_NEWNET):
 * the test needs root, as `make check` runs here), where a veth pair is
 * created and brought up and down with ip(8) without touching the host's
 * interfaces. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/loop.h"
#include "hal/link.h"

#include <errno.h>
#include <linux/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct seen {
	int n;
	char last[HAL_LINK_NAME];
	enum hal_link_why why;
	int carrier, address;
};

static void on_up(void *arg, const char *ifname, enum hal_link_why why)
{
	struct seen *s = arg;
	s->n++;
	snprintf(s->last, sizeof(s->last), "%s", ifname);
	s->why = why;
	if (why == HAL_LINK_CARRIER)
		s->carrier++;
	else
		s->address++;
}

/* ---- recorded messages ---- */

static union {
	struct nlmsghdr h;
	unsigned char b[4096];
} M;
static size_t mlen;

static void msg_link(int type, int index, unsigned flags, const char *name)
{
	struct nlmsghdr *h = (struct nlmsghdr *)(M.b + mlen);
	size_t nl = strlen(name) + 1;
	memset(h, 0, NLMSG_SPACE(sizeof(struct ifinfomsg)) + RTA_SPACE(nl));
	h->nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)) + RTA_LENGTH(nl);
	h->nlmsg_type = (unsigned short)type;
	struct ifinfomsg *i = NLMSG_DATA(h);
	i->ifi_index = index;
	i->ifi_flags = flags;
	struct rtattr *a = IFLA_RTA(i);
	a->rta_type = IFLA_IFNAME;
	a->rta_len = (unsigned short)RTA_LENGTH(nl);
	memcpy(RTA_DATA(a), name, nl);
	mlen += NLMSG_ALIGN(h->nlmsg_len);
}

static void msg_addr(int index, int family)
{
	struct nlmsghdr *h = (struct nlmsghdr *)(M.b + mlen);
	memset(h, 0, NLMSG_SPACE(sizeof(struct ifaddrmsg)));
	h->nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
	h->nlmsg_type = RTM_NEWADDR;
	struct ifaddrmsg *a = NLMSG_DATA(h);
	a->ifa_family = (unsigned char)family;
	a->ifa_index = (unsigned)index;
	mlen += NLMSG_ALIGN(h->nlmsg_len);
}

static void msg_done(void)
{
	struct nlmsghdr *h = (struct nlmsghdr *)(M.b + mlen);
	memset(h, 0, NLMSG_SPACE(4));
	h->nlmsg_len = NLMSG_LENGTH(4);
	h->nlmsg_type = NLMSG_DONE;
	mlen += NLMSG_ALIGN(h->nlmsg_len);
}

#define UPRUN (IFF_UP | IFF_RUNNING)

static void test_parser(void **state)
{
	(void)state;
	struct hal_link_tracker t;
	struct seen s = {0};
	hal_link_tracker_init(&t);
	/* the initial dump: an interface already up is no news */
	mlen = 0;
	msg_link(RTM_NEWLINK, 1, UPRUN | IFF_LOOPBACK, "lo");
	msg_link(RTM_NEWLINK, 2, UPRUN, "eth0");
	msg_link(RTM_NEWLINK, 3, IFF_UP, "wwan0");
	msg_done();
	assert_int_equal(hal_link_parse(&t, M.b, mlen, on_up, &s), 0);
	assert_int_equal(t.primed, 1);
	assert_int_equal(hal_link_running(&t), 1);
	/* the modem gets its carrier: up */
	mlen = 0;
	msg_link(RTM_NEWLINK, 3, UPRUN, "wwan0");
	assert_int_equal(hal_link_parse(&t, M.b, mlen, on_up, &s), 1);
	assert_string_equal(s.last, "wwan0");
	assert_int_equal(s.why, HAL_LINK_CARRIER);
	/* the same state again (a flag elsewhere changed): not news */
	assert_int_equal(hal_link_parse(&t, M.b, mlen, on_up, &s), 0);
	/* an IPv4 address on it: up (DHCP done); IPv6 and loopback: no */
	mlen = 0;
	msg_addr(3, AF_INET);
	msg_addr(3, AF_INET6);
	msg_addr(1, AF_INET);
	msg_addr(9, AF_INET); /* unknown interface */
	assert_int_equal(hal_link_parse(&t, M.b, mlen, on_up, &s), 1);
	assert_int_equal(s.why, HAL_LINK_ADDRESS);
	/* down and up again; loopback never */
	mlen = 0;
	msg_link(RTM_NEWLINK, 3, IFF_UP, "wwan0");
	msg_link(RTM_NEWLINK, 3, UPRUN, "wwan0");
	msg_link(RTM_NEWLINK, 1, IFF_LOOPBACK, "lo");
	msg_link(RTM_NEWLINK, 1, UPRUN | IFF_LOOPBACK, "lo");
	assert_int_equal(hal_link_parse(&t, M.b, mlen, on_up, &s), 1);
	/* removed and re-added under the same index */
	mlen = 0;
	msg_link(RTM_DELLINK, 3, 0, "wwan0");
	msg_link(RTM_NEWLINK, 3, UPRUN, "usb0");
	assert_int_equal(hal_link_parse(&t, M.b, mlen, on_up, &s), 1);
	assert_string_equal(s.last, "usb0");
	assert_int_equal(s.n, 4);
	assert_int_equal(t.malformed, 0);

	/* a name without its NUL, longer than IFNAMSIZ: cut, terminated */
	mlen = 0;
	msg_link(RTM_NEWLINK, 7, UPRUN, "abcdefghijklmnopqrstuvwxyz");
	assert_int_equal(hal_link_parse(&t, M.b, mlen, on_up, &s), 1);
	assert_int_equal(strlen(s.last), HAL_LINK_NAME - 1);

	/* malformed: a short link message, a length past the end, a tail */
	mlen = 0;
	msg_link(RTM_NEWLINK, 5, UPRUN, "x");
	M.h.nlmsg_len = NLMSG_LENGTH(4);
	uint64_t bad = t.malformed;
	assert_int_equal(hal_link_parse(&t, M.b, mlen, on_up, &s), 0);
	assert_true(t.malformed > bad);
	mlen = 0;
	msg_link(RTM_NEWLINK, 5, UPRUN, "x");
	M.h.nlmsg_len = 4000;
	bad = t.malformed;
	assert_int_equal(hal_link_parse(&t, M.b, mlen, on_up, &s), 0);
	assert_true(t.malformed > bad);
	mlen = 0;
	msg_link(RTM_NEWLINK, 5, UPRUN, "x");
	assert_int_equal(hal_link_parse(&t, M.b, mlen + 7, on_up, &s), 1);
	/* an interface index of 0 is refused */
	mlen = 0;
	msg_link(RTM_NEWLINK, 0, UPRUN, "zero");
	assert_int_equal(hal_link_parse(&t, M.b, mlen, on_up, &s), 0);

	/* more interfaces than slots: the rest go untracked, no overflow */
	hal_link_tracker_init(&t);
	t.primed = 1;
	int ups = 0;
	for (int i = 1; i <= HAL_LINK_MAX_IFS + 8; i++) {
		mlen = 0;
		char name[16];
		snprintf(name, sizeof(name), "if%d", i);
		msg_link(RTM_NEWLINK, i, UPRUN, name);
		ups += hal_link_parse(&t, M.b, mlen, on_up, &s);
	}
	assert_int_equal(ups, HAL_LINK_MAX_IFS);

	/* random bytes never crash it (ASan in make check SANITIZE=1) */
	unsigned x = 99;
	for (int round = 0; round < 2000; round++) {
		size_t len = (x % 600) + 1;
		for (size_t i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			M.b[i] = (unsigned char)(x >> 16);
		}
		if (round % 3 == 0) {
			M.h.nlmsg_len = (uint32_t)(len - (x % 8));
			M.h.nlmsg_type = (unsigned short)(RTM_NEWLINK + (x % 4));
		}
		hal_link_parse(&t, M.b, len, on_up, &s);
	}
	assert_string_equal(hal_link_why_str(HAL_LINK_ADDRESS), "address");
}

/* ---- a real netlink socket in a private network namespace ---- */

static void ip(const char *args)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "ip %s", args);
	int rc = system(cmd);
	if (rc != 0)
		fail_msg("'%s' failed (%d)", cmd, rc);
}

static void run_until(struct loop *l, const int *counter, int want, int ms)
{
	int64_t end = loop_now_ms() + ms;
	while (*counter < want && loop_now_ms() < end)
		loop_run_once(l, (int)(end - loop_now_ms()));
}

static void test_netlink_netns(void **state)
{
	(void)state;
	if (unshare(CLONE_NEWNET) < 0)
		fail_msg("unshare(CLONE_NEWNET): %s: this test needs root (CAP_SYS_ADMIN) to make "
		         "a private network namespace for its veth pair",
		         strerror(errno));
	struct loop *l;
	struct hal_link *k;
	char err[256];
	struct seen s = {0};
	assert_int_equal(loop_open(&l), 0);
	ip("link set lo up");
	struct hal_link_params p = {.loop = l, .on_up = on_up, .arg = &s};
	assert_int_equal(hal_link_open("netlink", &p, &k, err, sizeof(err)), 0);
	assert_string_equal(hal_link_name(k), "netlink");
	/* the dump comes back; lo being up is neither news nor a link */
	for (int i = 0; i < 5; i++)
		loop_run_once(l, 20);
	struct hal_link_stats st;
	hal_link_stats(k, &st);
	assert_true(st.messages >= 2);
	assert_int_equal(st.running, 0);
	assert_int_equal(s.n, 0);

	ip("link add essv0 type veth peer name essv1");
	ip("link set essv1 up");
	ip("link set essv0 up");
	run_until(l, &s.carrier, 2, 3000);
	assert_int_equal(s.carrier, 2); /* both ends got their carrier */
	hal_link_stats(k, &st);
	assert_int_equal(st.running, 2);

	ip("addr add 10.77.0.1/24 dev essv0");
	run_until(l, &s.address, 1, 3000);
	assert_int_equal(s.address, 1);
	assert_string_equal(s.last, "essv0");

	/* down: nothing; up again: news */
	ip("link set essv0 down");
	for (int i = 0; i < 5; i++)
		loop_run_once(l, 20);
	assert_int_equal(s.carrier, 2);
	hal_link_stats(k, &st);
	assert_int_equal(st.running, 0); /* the peer lost its carrier too */
	ip("link set essv0 up");
	run_until(l, &s.carrier, 4, 3000);
	assert_int_equal(s.carrier, 4);
	/* deleted (its peer goes with it): nothing running, nothing broken */
	ip("link del essv0");
	for (int i = 0; i < 5; i++)
		loop_run_once(l, 20);
	hal_link_stats(k, &st);
	assert_int_equal(st.running, 0);
	assert_int_equal(st.malformed, 0);
	assert_int_equal(st.ups, (uint64_t)s.n);
	hal_link_close(k);

	assert_int_equal(hal_link_open("dbus", &p, &k, err, sizeof(err)), -ENOENT);
	assert_int_equal(hal_link_open("none", &p, &k, err, sizeof(err)), 0);
	hal_link_stats(k, &st);
	assert_int_equal(st.ups, 0);
	hal_link_close(k);
	loop_close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parser),
	    cmocka_unit_test(test_netlink_netns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

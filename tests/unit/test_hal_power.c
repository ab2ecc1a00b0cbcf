/* hal/power: the decision and the GPS policy (pure), and the sysfs backend
 * on a fake power_supply tree with an ignition value file: changes are
 * reported by the poll, a battery or dock that vanishes reads as unknown
 * and is found again. The events: a GPIO ignition on the fake chip
 * (tests/lib/fakegpiod.h) is read on its edges, well before the poll, and a
 * bouncing line once; uevents come through the test seam (a seqpacket
 * socketpair standing for the kernel's socket): power_supply ones are read,
 * anything else or malformed is not, and a closed peer leaves the poll
 * running without a busy loop. hal_uevent_parse on its own cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/loop.h"
#include "hal/power.h"
#include "hal/uevent.h"
#include "tests/lib/fakegpiod.h"
#include "tests/lib/faketree.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

static void test_decide(void **state)
{
	(void)state;
	struct hal_power_raw r = {-1, -1, 0, -1, -1};
	assert_int_equal(hal_power_decide(&r), HAL_POWER_UNKNOWN);
	r.battery = 1;
	assert_int_equal(hal_power_decide(&r), HAL_POWER_BATTERY);
	r.mains = 0;
	assert_int_equal(hal_power_decide(&r), HAL_POWER_BATTERY);
	r.mains = 1;
	assert_int_equal(hal_power_decide(&r), HAL_POWER_AC);
	r.ignition = 1;
	assert_int_equal(hal_power_decide(&r), HAL_POWER_VEHICLE);
	/* a vehicle at rest with no battery of its own: on the car's battery */
	r = (struct hal_power_raw){0, -1, 0, -1, -1};
	assert_int_equal(hal_power_decide(&r), HAL_POWER_BATTERY);
	r.mains = 1; /* shore power in the depot */
	assert_int_equal(hal_power_decide(&r), HAL_POWER_AC);
	assert_string_equal(hal_power_source_str(HAL_POWER_VEHICLE), "vehicle");
	assert_string_equal(hal_power_source_str(HAL_POWER_AC), "ac");
	assert_string_equal(hal_power_source_str(HAL_POWER_BATTERY), "battery");
	assert_string_equal(hal_power_source_str(HAL_POWER_UNKNOWN), "unknown");
}

static void test_gps_policy(void **state)
{
	(void)state;
	struct hal_power_state st = {.source = HAL_POWER_BATTERY};
	assert_int_equal(hal_power_gps_interval(&st, 5, 30), 30);
	assert_int_equal(hal_power_gps_interval(&st, 5, 0), 5);    /* no battery policy */
	assert_int_equal(hal_power_gps_interval(&st, 60, 30), 60); /* never faster */
	st.source = HAL_POWER_AC;
	assert_int_equal(hal_power_gps_interval(&st, 5, 30), 5);
	st.source = HAL_POWER_VEHICLE;
	assert_int_equal(hal_power_gps_interval(&st, 5, 30), 5);
	st.source = HAL_POWER_UNKNOWN;
	assert_int_equal(hal_power_gps_interval(&st, 5, 30), 5);
}

struct seen {
	int n;
	struct hal_power_state last;
};

static void on_change(void *arg, const struct hal_power_state *st)
{
	struct seen *s = arg;
	s->n++;
	s->last = *st;
}

static void run_for(struct loop *l, int ms)
{
	int64_t end = loop_now_ms() + ms;
	while (loop_now_ms() < end)
		loop_run_once(l, (int)(end - loop_now_ms()));
}

/* The supplies most tests start from: a mains adapter offline and a
 * battery at 71 %. */
static void mains_off_battery_71(const char *root)
{
	ft_write(root, "sys/class/power_supply/AC/type", "Mains\n");
	ft_write(root, "sys/class/power_supply/AC/online", "0\n");
	ft_write(root, "sys/class/power_supply/BAT0/type", "Battery\n");
	ft_write(root, "sys/class/power_supply/BAT0/capacity", "71\n");
}

static void test_sysfs_tree(void **state)
{
	(void)state;
	char *root = tu_tmpdir("power"), err[256];
	struct loop *l;
	assert_int_equal(loop_open(&l), 0);
	mains_off_battery_71(root);
	ft_write(root, "sys/class/power_supply/BAT0/present", "1\n");
	ft_write(root, "sys/class/power_supply/BAT0/status", "Discharging\n");
	/* a peripheral's battery (scope Device) sorts first and is not ours */
	ft_write(root, "sys/class/power_supply/0-hid-mouse/type", "Battery\n");
	ft_write(root, "sys/class/power_supply/0-hid-mouse/scope", "Device\n");
	ft_write(root, "sys/class/power_supply/0-hid-mouse/capacity", "5\n");
	struct seen s = {0};
	struct hal_power *pw;
	struct hal_power_params p = {
	    .loop = l, .root = root, .poll_ms = 20, .on_change = on_change, .arg = &s};
	assert_int_equal(hal_power_open("sysfs", &p, &pw, err, sizeof(err)), 0);
	assert_string_equal(hal_power_name(pw), "sysfs");
	struct hal_power_state st;
	hal_power_get(pw, &st);
	assert_int_equal(st.source, HAL_POWER_BATTERY);
	assert_int_equal(st.raw.battery_pct, 71);
	assert_int_equal(st.raw.charging, 0);
	assert_int_equal(st.raw.mains, 0);
	assert_int_equal(st.raw.ignition, -1);
	assert_int_equal(s.n, 0); /* the first reading is no change */

	/* plugged in: the poll sees it */
	ft_write(root, "sys/class/power_supply/AC/online", "1\n");
	ft_write(root, "sys/class/power_supply/BAT0/status", "Charging\n");
	run_for(l, 60);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.last.source, HAL_POWER_AC);
	assert_int_equal(s.last.raw.charging, 1);
	run_for(l, 60);
	assert_int_equal(s.n, 1); /* no change, no call */

	/* junk from a driver is not believed */
	ft_write(root, "sys/class/power_supply/BAT0/capacity", "250\n");
	assert_int_equal(hal_power_refresh(pw), 1);
	hal_power_get(pw, &st);
	assert_int_equal(st.raw.battery_pct, -1);
	ft_write(root, "sys/class/power_supply/BAT0/capacity", "7x\n");
	hal_power_refresh(pw);
	hal_power_get(pw, &st);
	assert_int_equal(st.raw.battery_pct, -1);

	/* the whole class vanishes mid-run: unknown, not an error */
	ft_remove(root, "sys/class/power_supply");
	run_for(l, 60);
	assert_int_equal(s.last.source, HAL_POWER_UNKNOWN);
	assert_int_equal(s.last.raw.battery_pct, -1);
	assert_int_equal(s.last.raw.battery, 0);
	/* and comes back */
	ft_write(root, "sys/class/power_supply/BAT1/type", "Battery\n");
	ft_write(root, "sys/class/power_supply/BAT1/capacity", "42\n");
	run_for(l, 60);
	assert_int_equal(s.last.source, HAL_POWER_BATTERY);
	assert_int_equal(s.last.raw.battery_pct, 42);
	/* a pack marked not present is no battery */
	ft_write(root, "sys/class/power_supply/BAT1/present", "0\n");
	hal_power_refresh(pw);
	hal_power_get(pw, &st);
	assert_int_equal(st.raw.battery, 0);
	hal_power_close(pw);
	loop_close(l);
	tu_rmrf(root);
}

static void test_ignition(void **state)
{
	(void)state;
	char *root = tu_tmpdir("ign"), err[256];
	struct loop *l;
	assert_int_equal(loop_open(&l), 0);
	ft_write(root, "sys/class/gpio/gpio17/value", "1\n");
	struct hal_power *pw;
	struct hal_power_state st;
	struct hal_power_params p = {
	    .loop = l, .root = root, .ignition = "file:/sys/class/gpio/gpio17/value"};
	assert_int_equal(hal_power_open("sysfs", &p, &pw, err, sizeof(err)), 0);
	hal_power_get(pw, &st);
	assert_int_equal(st.raw.ignition, 1);
	assert_int_equal(st.source, HAL_POWER_VEHICLE);
	ft_write(root, "sys/class/gpio/gpio17/value", "0\n");
	assert_int_equal(hal_power_refresh(pw), 1);
	hal_power_get(pw, &st);
	assert_int_equal(st.source, HAL_POWER_BATTERY);
	ft_remove(root, "sys/class/gpio/gpio17");
	hal_power_refresh(pw);
	hal_power_get(pw, &st);
	assert_int_equal(st.raw.ignition, -1);
	assert_int_equal(st.source, HAL_POWER_UNKNOWN);
	hal_power_close(pw);

	/* active low */
	ft_write(root, "sys/class/gpio/gpio17/value", "0\n");
	p.ignition_active_low = 1;
	assert_int_equal(hal_power_open("sysfs", &p, &pw, err, sizeof(err)), 0);
	hal_power_get(pw, &st);
	assert_int_equal(st.source, HAL_POWER_VEHICLE);
	hal_power_close(pw);

	/* a GPIO ignition whose chip is not there reads unknown */
	ft_write(root, "dev/gpiochip1", "");
	p.ignition = "gpio:gpiochip1:4";
	assert_int_equal(hal_power_open("sysfs", &p, &pw, err, sizeof(err)), 0);
	hal_power_get(pw, &st);
	assert_int_equal(st.raw.ignition, -1);
	hal_power_close(pw);

	static const char *const bad[] = {"file:", "file:../../etc/x", "gpio:chip", "ign"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p.ignition = bad[i];
		assert_int_equal(hal_power_open("sysfs", &p, &pw, err, sizeof(err)), -EINVAL);
	}
	assert_int_equal(hal_power_open("acpi", &p, &pw, err, sizeof(err)), -ENOENT);
	p.ignition = NULL;
	assert_int_equal(hal_power_open("none", &p, &pw, err, sizeof(err)), 0);
	hal_power_get(pw, &st);
	assert_int_equal(st.source, HAL_POWER_UNKNOWN);
	assert_int_equal(st.raw.battery_pct, -1);
	hal_power_close(pw);
	loop_close(l);
	tu_rmrf(root);
}

/* Runs the loop until cond holds or ms pass; the time it took. */
#define RUN_UNTIL(l, cond, ms)                                                                     \
	({                                                                                         \
		int64_t t0_ = loop_now_ms(), end_ = t0_ + (ms);                                    \
		while (!(cond) && loop_now_ms() < end_)                                            \
			loop_run_once((l), (int)(end_ - loop_now_ms()));                           \
		loop_now_ms() - t0_;                                                               \
	})

static uint64_t reads(struct hal_power *pw)
{
	struct hal_power_stats st;
	hal_power_stats(pw, &st);
	return st.reads;
}

static void test_gpio_ignition_edges(void **state)
{
	(void)state;
	char *root = tu_tmpdir("ignedge"), err[256];
	struct loop *l;
	assert_int_equal(loop_open(&l), 0);
	fg_chip_add(root, "gpiochip0", 8, "vehicle-io");
	struct seen s = {0};
	struct hal_power *pw;
	struct hal_power_state st;
	struct hal_power_stats ps;
	/* the default backstop poll (60 s): every reading below is an event's */
	struct hal_power_params p = {.loop = l,
	                             .root = root,
	                             .ignition = "gpio:gpiochip0:4",
	                             .on_change = on_change,
	                             .arg = &s};
	assert_int_equal(hal_power_open("sysfs", &p, &pw, err, sizeof(err)), 0);
	hal_power_get(pw, &st);
	assert_int_equal(st.raw.ignition, 0);
	assert_int_equal(st.source, HAL_POWER_BATTERY);
	hal_power_stats(pw, &ps);
	assert_int_equal(ps.ignition_events, 1);
	assert_int_equal(ps.uevents, 0); /* a test tree: no kernel socket */
	assert_int_equal(fg_line_requested(root, "gpiochip0", 4), 1);

	/* ignition on: seen after the settle time, not at the poll */
	uint64_t r0 = reads(pw);
	assert_int_equal(fg_line_set(root, "gpiochip0", 4, 1), 1);
	int64_t took = RUN_UNTIL(l, s.n == 1, 5000);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.last.source, HAL_POWER_VEHICLE);
	assert_true(took >= HAL_POWER_SETTLE_MS - 1);
	assert_true(took < 5000); /* the poll is 60 s away */
	assert_int_equal(reads(pw), r0 + 1);

	/* cranking: the line bounces; one reading once it is quiet */
	r0 = reads(pw);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(fg_line_set(root, "gpiochip0", 4, i % 2 == 0 ? 0 : 1), 1);
		run_for(l, 20);
	}
	assert_int_equal(reads(pw), r0); /* still bouncing: not read yet */
	RUN_UNTIL(l, reads(pw) > r0, 2000);
	run_for(l, 2 * HAL_POWER_SETTLE_MS);
	assert_int_equal(reads(pw), r0 + 1);
	hal_power_stats(pw, &ps);
	assert_true(ps.kicks >= 6);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.last.source, HAL_POWER_BATTERY); /* it ended low */

	/* a line that never settles is still read within the bound */
	r0 = reads(pw);
	int64_t t0 = loop_now_ms();
	for (int i = 0; i < 40 && reads(pw) == r0; i++) {
		fg_line_set(root, "gpiochip0", 4, i % 2 == 0);
		run_for(l, 40);
	}
	assert_true(reads(pw) > r0);
	assert_true(loop_now_ms() - t0 < HAL_POWER_SETTLE_MAX_MS + 500);
	fg_line_set(root, "gpiochip0", 4, 0);
	run_for(l, HAL_POWER_SETTLE_MAX_MS + 100);

	/* the chip goes away: off the loop, read as unknown at once */
	int n0 = s.n;
	fg_chip_remove(root, "gpiochip0");
	RUN_UNTIL(l, s.n > n0, 3000);
	assert_int_equal(s.n, n0 + 1);
	assert_int_equal(s.last.raw.ignition, -1);
	assert_int_equal(s.last.source, HAL_POWER_UNKNOWN);
	hal_power_stats(pw, &ps);
	assert_int_equal(ps.ignition_events, 0);
	/* no busy loop on the dead line */
	uint64_t w0 = loop_wakeups(l);
	run_for(l, 300);
	assert_true(loop_wakeups(l) - w0 <= 2);
	/* back: requested again at the next backstop reading, edges again */
	fg_chip_add(root, "gpiochip0", 8, "vehicle-io");
	fg_line_set(root, "gpiochip0", 4, 1);
	assert_int_equal(hal_power_refresh(pw), 1);
	hal_power_get(pw, &st);
	assert_int_equal(st.source, HAL_POWER_VEHICLE);
	hal_power_stats(pw, &ps);
	assert_int_equal(ps.ignition_events, 1);
	n0 = s.n;
	fg_line_set(root, "gpiochip0", 4, 0);
	RUN_UNTIL(l, s.n > n0, 3000);
	assert_int_equal(s.last.source, HAL_POWER_BATTERY);
	hal_power_close(pw);
	assert_int_equal(fg_line_requested(root, "gpiochip0", 4), 0);
	loop_close(l);
	tu_rmrf(root);
}

/* A uevent as the kernel formats it: header, then KEY=VALUE fields, each
 * NUL-terminated. */
static size_t uev(char *buf, size_t cap, const char *action, const char *devpath,
                  const char *subsystem)
{
	int n = snprintf(buf, cap,
	                 "%s@%s%cACTION=%s%cDEVPATH=%s%cSUBSYSTEM=%s%cSEQNUM=4711%c"
	                 "POWER_SUPPLY_NAME=AC%cPOWER_SUPPLY_ONLINE=1",
	                 action, devpath, 0, action, 0, devpath, 0, subsystem, 0, 0, 0);
	assert_true(n > 0 && (size_t)n < cap);
	return (size_t)n + 1; /* the last NUL */
}

static void send_msg(int fd, const void *b, size_t n)
{
	assert_int_equal(send(fd, b, n, 0), (ssize_t)n);
}

static void test_uevent_parse(void **state)
{
	(void)state;
	char b[HAL_UEVENT_MAX + 16];
	struct hal_uevent ev;
	size_t n = uev(b, sizeof(b), "change", "/devices/platform/AC", "power_supply");
	assert_int_equal(hal_uevent_parse(b, n, &ev), 0);
	assert_string_equal(ev.action, "change");
	assert_string_equal(ev.devpath, "/devices/platform/AC");
	assert_string_equal(ev.subsystem, "power_supply");
	/* the shortest accepted */
	static const char ok[] = "add@/d\0ACTION=add\0DEVPATH=/d\0SUBSYSTEM=x";
	assert_int_equal(hal_uevent_parse(ok, sizeof(ok), &ev), 0);
	assert_string_equal(ev.subsystem, "x");

	static const struct {
		const char *m;
		size_t n;
	} bad[] = {
#define M(s) {s, sizeof(s)}
	    M("add@/d\0ACTION=add\0DEVPATH=/d"),                           /* no SUBSYSTEM */
	    M("add@/d\0ACTION=change\0DEVPATH=/d\0SUBSYSTEM=x"),           /* action differs */
	    M("add@/d\0ACTION=add\0DEVPATH=/e\0SUBSYSTEM=x"),              /* devpath differs */
	    M("add@/d\0ACTION=add\0DEVPATH=/d\0SUBSYSTEM="),               /* empty subsystem */
	    M("add@/d\0ACTION=add\0\0DEVPATH=/d\0SUBSYSTEM=x"),            /* empty field */
	    M("add@/d\0ACTION=add\0DEVPATH=/d\0SUBSYSTEM=x\0junk"),        /* no '=' */
	    M("add@/d\0ACTION=add\0DEVPATH=/d\0SUBSYSTEM=x\0=v"),          /* empty key */
	    M("add@/d\0ACTION=add\0DEVPATH=/d\0SUBSYSTEM=x\0ke y=v"),      /* bad key */
	    M("add@/d\0ACTION=add\0DEVPATH=/d\0SUBSYSTEM=x\0SUBSYSTEM=y"), /* twice */
	    M("add/d\0ACTION=add\0DEVPATH=/d\0SUBSYSTEM=x"),               /* no '@' */
	    M("@/d\0ACTION=\0DEVPATH=/d\0SUBSYSTEM=x"),                    /* no action */
	    M("ADD@/d\0ACTION=ADD\0DEVPATH=/d\0SUBSYSTEM=x"),              /* not lower case */
	    M("add@d\0ACTION=add\0DEVPATH=d\0SUBSYSTEM=x"),                /* not a path */
	    M("libudev\0\xfe\xed\xca\xfe"),                                /* udevd's, not ours */
	    M(""),
#undef M
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(hal_uevent_parse(bad[i].m, bad[i].n, &ev), -EINVAL);
	/* no NUL at the end; nothing at all */
	assert_int_equal(hal_uevent_parse(b, n - 1, &ev), -EINVAL);
	assert_int_equal(hal_uevent_parse(b, 0, &ev), -EINVAL);
	/* too many fields, too long */
	size_t o = (size_t)snprintf(b, sizeof(b), "add@/d") + 1;
	o += (size_t)snprintf(b + o, sizeof(b) - o, "ACTION=add") + 1;
	o += (size_t)snprintf(b + o, sizeof(b) - o, "DEVPATH=/d") + 1;
	o += (size_t)snprintf(b + o, sizeof(b) - o, "SUBSYSTEM=x") + 1;
	assert_int_equal(hal_uevent_parse(b, o, &ev), 0);
	for (int i = 0; i < HAL_UEVENT_MAX_FIELDS; i++)
		o += (size_t)snprintf(b + o, sizeof(b) - o, "K%d=v", i) + 1;
	assert_int_equal(hal_uevent_parse(b, o, &ev), -EINVAL);
	memset(b, 'A', sizeof(b));
	n = uev(b, sizeof(b), "add", "/d", "x");
	assert_int_equal(hal_uevent_parse(b, n, &ev), 0);
	assert_int_equal(hal_uevent_parse(b, HAL_UEVENT_MAX + 1, &ev), -EINVAL);
}

static void test_uevents(void **state)
{
	(void)state;
	char *root = tu_tmpdir("uevent"), err[256], b[HAL_UEVENT_MAX * 2];
	struct loop *l;
	assert_int_equal(loop_open(&l), 0);
	mains_off_battery_71(root);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	struct seen s = {0};
	struct hal_power *pw;
	struct hal_power_stats ps;
	struct hal_power_params p = {
	    .loop = l, .root = root, .uevent_fd = sv[0], .on_change = on_change, .arg = &s};
	assert_int_equal(hal_power_open("sysfs", &p, &pw, err, sizeof(err)), 0);
	hal_power_stats(pw, &ps);
	assert_int_equal(ps.uevents, 1);

	/* plugged in: the charger's uevent makes the reading, not the poll */
	uint64_t r0 = reads(pw);
	ft_write(root, "sys/class/power_supply/AC/online", "1\n");
	send_msg(
	    sv[1], b,
	    uev(b, sizeof(b), "change", "/devices/LNXSYSTM:00/ACPI0003:00/AC", "power_supply"));
	int64_t took = RUN_UNTIL(l, s.n == 1, 5000);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.last.source, HAL_POWER_AC);
	assert_true(took >= HAL_POWER_SETTLE_MS - 1 && took < 5000);
	assert_int_equal(reads(pw), r0 + 1);

	/* a burst (supply, battery, port): one reading */
	r0 = reads(pw);
	for (int i = 0; i < 3; i++)
		send_msg(sv[1], b, uev(b, sizeof(b), "change", "/devices/BAT0", "power_supply"));
	RUN_UNTIL(l, reads(pw) > r0, 2000);
	run_for(l, 2 * HAL_POWER_SETTLE_MS);
	assert_int_equal(reads(pw), r0 + 1);

	/* what must not make a reading: the change below stays unseen */
	ft_write(root, "sys/class/power_supply/BAT0/capacity", "50\n");
	hal_power_stats(pw, &ps);
	uint64_t matched = ps.uevents_matched, dropped = ps.uevents_dropped;
	r0 = reads(pw);
	size_t n = uev(b, sizeof(b), "add", "/devices/usb1/1-1", "usb");
	send_msg(sv[1], b, n); /* another subsystem: well-formed, not ours */
	n = uev(b, sizeof(b), "change", "/devices/BAT0", "power_supply");
	send_msg(sv[1], b, n - 1);  /* no NUL at the end */
	send_msg(sv[1], b, 7);      /* truncated in the header */
	send_msg(sv[1], b, n - 30); /* truncated in a field */
	static const char bad1[] = "change@/devices/BAT0\0ACTION=change\0SUBSYSTEM=power_supply";
	send_msg(sv[1], bad1, sizeof(bad1)); /* no DEVPATH */
	static const char bad2[] = "change@/devices/BAT0\0ACTION=change\0DEVPATH=/devices/BAT0\0"
	                           "SUBSYSTEM=power_supply\0SUBSYSTEM=usb";
	send_msg(sv[1], bad2, sizeof(bad2)); /* two subsystems */
	static const char bin[] = "\xff\xfe\x00\x01@\0=\0\0\0";
	send_msg(sv[1], bin, sizeof(bin));
	/* huge: the same message padded far past the bound (truncated by the
	 * receive buffer, MSG_TRUNC) */
	memset(b + n, 'A', sizeof(b) - n);
	memcpy(b + n, "PAD=", 4);
	b[sizeof(b) - 1] = 0;
	send_msg(sv[1], b, sizeof(b));
	/* just past the bound, whole in the buffer */
	send_msg(sv[1], b, HAL_UEVENT_MAX + 1);
	run_for(l, 3 * HAL_POWER_SETTLE_MS);
	assert_int_equal(reads(pw), r0);
	hal_power_stats(pw, &ps);
	assert_int_equal(ps.uevents_matched, matched);
	assert_int_equal(ps.uevents_dropped, dropped + 8);
	assert_int_equal(ps.uevents, 1);
	struct hal_power_state st;
	hal_power_get(pw, &st);
	assert_int_equal(st.raw.battery_pct, 71);
	/* and the next good one is still heard */
	send_msg(sv[1], b, uev(b, sizeof(b), "change", "/devices/BAT0", "power_supply"));
	RUN_UNTIL(l, reads(pw) > r0, 2000);
	hal_power_get(pw, &st);
	assert_int_equal(st.raw.battery_pct, 50);
	hal_power_close(pw);
	close(sv[1]);
	close(sv[0]);

	/* the peer goes: the fd leaves the loop (no busy loop), the poll goes on */
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	p.uevent_fd = sv[0];
	p.poll_ms = 100;
	assert_int_equal(hal_power_open("sysfs", &p, &pw, err, sizeof(err)), 0);
	close(sv[1]);
	uint64_t w0 = loop_wakeups(l);
	r0 = reads(pw);
	run_for(l, 500);
	hal_power_stats(pw, &ps);
	assert_int_equal(ps.uevents, 0);
	assert_true(reads(pw) >= r0 + 2);        /* polled: every 50-100 ms */
	assert_true(loop_wakeups(l) - w0 <= 20); /* not spinning on the dead fd */
	hal_power_close(pw);
	close(sv[0]);

	/* a stream is no message socket: refused at open, the poll goes on */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	p.uevent_fd = sv[0];
	assert_int_equal(hal_power_open("sysfs", &p, &pw, err, sizeof(err)), 0);
	hal_power_stats(pw, &ps);
	assert_int_equal(ps.uevents, 0);
	hal_power_close(pw);
	close(sv[0]);
	close(sv[1]);
	loop_close(l);
	tu_rmrf(root);
}

static void count_event(void *arg, const struct hal_uevent *ev)
{
	(void)ev;
	(*(int *)arg)++;
}

/* The kernel's socket: a message forged by a process (a netlink unicast to
 * the socket's port: nl_pid not 0) is dropped. Where the sandbox refuses
 * the socket, the open says so with the errno the caller logs. */
static void test_uevent_kernel_socket(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_open(&l), 0);
	int events = 0;
	struct hal_uevent_mon *m;
	struct hal_uevent_params up = {
	    .loop = l, .subsystem = "power_supply", .on_event = count_event, .arg = &events};
	int rc = hal_uevent_open(&up, &m);
	if (rc < 0) {
		assert_true(rc == -EPERM || rc == -EACCES || rc == -EAFNOSUPPORT ||
		            rc == -EPROTONOSUPPORT);
		assert_null(m);
		loop_close(l);
		return;
	}
	struct sockaddr_nl me;
	socklen_t ml = sizeof(me);
	assert_int_equal(getsockname(hal_uevent_fd(m), (struct sockaddr *)&me, &ml), 0);
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
	assert_true(fd >= 0);
	struct sockaddr_nl to = {.nl_family = AF_NETLINK, .nl_pid = me.nl_pid};
	char b[512];
	size_t n = uev(b, sizeof(b), "change", "/devices/BAT0", "power_supply");
	assert_int_equal(sendto(fd, b, n, 0, (struct sockaddr *)&to, sizeof(to)), (ssize_t)n);
	struct hal_uevent_stats st;
	for (int i = 0; i < 50; i++) {
		loop_run_once(l, 100);
		hal_uevent_stats(m, &st);
		if (st.dropped)
			break;
	}
	/* (the kernel's own messages may come meanwhile: they are never
	 * dropped, and only power_supply ones reach the callback) */
	assert_int_equal(st.dropped, 1);
	assert_int_equal(events, (int)st.matched);
	close(fd);
	hal_uevent_close(m);
	loop_close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decide),
	    cmocka_unit_test(test_gps_policy),
	    cmocka_unit_test(test_sysfs_tree),
	    cmocka_unit_test(test_ignition),
	    cmocka_unit_test(test_gpio_ignition_edges),
	    cmocka_unit_test(test_uevent_parse),
	    cmocka_unit_test(test_uevents),
	    cmocka_unit_test(test_uevent_kernel_socket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

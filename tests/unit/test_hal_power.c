/* hal/power: the decision and the GPS policy (pure), and the sysfs backend
 * on a fake power_supply tree with an ignition value file: changes are
 * reported by the poll, a battery or dock that vanishes reads as unknown
 * and is found again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/loop.h"
#include "hal/power.h"
#include "tests/lib/faketree.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void test_sysfs_tree(void **state)
{
	(void)state;
	char *root = tu_tmpdir("power"), err[256];
	struct loop *l;
	assert_int_equal(loop_open(&l), 0);
	ft_write(root, "sys/class/power_supply/AC/type", "Mains\n");
	ft_write(root, "sys/class/power_supply/AC/online", "0\n");
	ft_write(root, "sys/class/power_supply/BAT0/type", "Battery\n");
	ft_write(root, "sys/class/power_supply/BAT0/present", "1\n");
	ft_write(root, "sys/class/power_supply/BAT0/capacity", "71\n");
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decide),
	    cmocka_unit_test(test_gps_policy),
	    cmocka_unit_test(test_sysfs_tree),
	    cmocka_unit_test(test_ignition),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* hal/alert: the policy (silent never sounds) through a recording ops
 * table, and the sysfs backend on a fake LED class / backlight tree,
 * including outputs that vanish and come back. The GPIO sounder is driven
 * on a tree whose "chip" is not a GPIO character device (gpio-sim needs
 * configfs): it must count as missing, never fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/loop.h"
#include "hal/alert.h"
#include "tests/lib/faketree.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fx {
	char *root;
	struct loop *l;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->root = tu_tmpdir("alert");
	assert_int_equal(loop_open(&f->l), 0);
	ft_write(f->root, "sys/class/leds/status/trigger", "[none] timer heartbeat\n");
	ft_write(f->root, "sys/class/leds/status/max_brightness", "255\n");
	ft_write(f->root, "sys/class/leds/status/brightness", "0\n");
	ft_write(f->root, "sys/class/leds/zbuzzer/trigger", "[none] timer\n");
	ft_write(f->root, "sys/class/leds/zbuzzer/max_brightness", "1\n");
	ft_write(f->root, "sys/class/leds/zbuzzer/brightness", "0\n");
	ft_write(f->root, "sys/class/backlight/panel/bl_power", "4\n");
	ft_write(f->root, "sys/class/backlight/panel/brightness", "0\n");
	ft_write(f->root, "sys/class/backlight/panel/max_brightness", "100\n");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	loop_close(f->l);
	tu_rmrf(f->root);
	free(f);
	return 0;
}

#define RD(path) ft_read(f->root, path, buf, sizeof(buf))

/* What the kernel does to a trigger file: a write selects one trigger, a
 * read lists them all with the selected one in brackets. */
static void kernel_trigger(const char *root, const char *led)
{
	char rel[128], cur[128], list[160];
	snprintf(rel, sizeof(rel), "sys/class/leds/%s/trigger", led);
	ft_read(root, rel, cur, sizeof(cur));
	if (strchr(cur, '['))
		return;
	const char *w[] = {"none", "timer", "heartbeat"};
	snprintf(list, sizeof(list), "%s%s%s %s%s%s %s%s%s\n", !strcmp(cur, w[0]) ? "[" : "", w[0],
	         !strcmp(cur, w[0]) ? "]" : "", !strcmp(cur, w[1]) ? "[" : "", w[1],
	         !strcmp(cur, w[1]) ? "]" : "", !strcmp(cur, w[2]) ? "[" : "", w[2],
	         !strcmp(cur, w[2]) ? "]" : "");
	ft_write(root, rel, list);
}

static void test_sysfs_normal_and_silent(void **state)
{
	struct fx *f = *state;
	char err[256], buf[256];
	struct hal_alert *a;
	struct hal_alert_params p = {.loop = f->l,
	                             .root = f->root,
	                             .led = "status",
	                             .sounder = "led:zbuzzer",
	                             .duration_ms = 150,
	                             .sound_ms = 50};
	assert_int_equal(hal_alert_open("sysfs", &p, &a, err, sizeof(err)), 0);
	assert_string_equal(hal_alert_name(a), "sysfs");

	hal_alert_incident(a, 0);
	/* the kernel blinks the LED (timer trigger); the buzzer is a plain
	 * on; the screen is unblanked and raised from 0 */
	assert_string_equal(RD("sys/class/leds/status/trigger"), "timer");
	assert_string_equal(RD("sys/class/leds/zbuzzer/brightness"), "1");
	assert_string_equal(RD("sys/class/leds/zbuzzer/trigger"), "none");
	assert_string_equal(RD("sys/class/backlight/panel/bl_power"), "0");
	assert_string_equal(RD("sys/class/backlight/panel/brightness"), "100");
	struct hal_alert_stats st;
	hal_alert_stats(a, &st);
	assert_int_equal(st.sounding, 1);
	assert_int_equal(st.led_on, 1);
	tu_run_for(f->l, 90);
	assert_string_equal(RD("sys/class/leds/zbuzzer/brightness"), "0");
	assert_string_equal(RD("sys/class/leds/status/trigger"), "timer");
	tu_run_for(f->l, 120);
	assert_string_equal(RD("sys/class/leds/status/trigger"), "none");
	assert_string_equal(RD("sys/class/leds/status/brightness"), "0");

	/* silent: light and screen, never the buzzer */
	ft_write(f->root, "sys/class/backlight/panel/bl_power", "4\n");
	kernel_trigger(f->root, "status");
	assert_string_equal(RD("sys/class/leds/status/trigger"), "[none] timer heartbeat");
	hal_alert_incident(a, 1);
	assert_string_equal(RD("sys/class/leds/zbuzzer/brightness"), "0");
	assert_string_equal(RD("sys/class/leds/status/trigger"), "timer");
	assert_string_equal(RD("sys/class/backlight/panel/bl_power"), "0");

	/* a silent one while an earlier one still sounds: silence at once */
	hal_alert_incident(a, 0);
	assert_string_equal(RD("sys/class/leds/zbuzzer/brightness"), "1");
	hal_alert_incident(a, 1);
	assert_string_equal(RD("sys/class/leds/zbuzzer/brightness"), "0");
	hal_alert_stats(a, &st);
	assert_int_equal(st.alerts, 4);
	assert_int_equal(st.silent, 2);
	assert_int_equal(st.sounded, 2);
	assert_int_equal(st.sounding, 0);

	/* acknowledged: everything off */
	hal_alert_stop(a);
	assert_string_equal(RD("sys/class/leds/status/brightness"), "0");
	assert_string_equal(RD("sys/class/leds/status/trigger"), "none");
	hal_alert_close(a);
}

static void test_sysfs_vanishing_hardware(void **state)
{
	struct fx *f = *state;
	char err[256], buf[256];
	struct hal_alert *a;
	/* no LED name: the first LED of the class ("status") */
	struct hal_alert_params p = {
	    .loop = f->l, .root = f->root, .sounder = "led:zbuzzer", .duration_ms = 50};
	assert_int_equal(hal_alert_open("sysfs", &p, &a, err, sizeof(err)), 0);
	ft_remove(f->root, "sys/class/leds/status");
	ft_remove(f->root, "sys/class/leds/zbuzzer");
	ft_remove(f->root, "sys/class/backlight");
	hal_alert_incident(a, 0);
	struct hal_alert_stats st;
	hal_alert_stats(a, &st);
	assert_int_equal(st.led_missing, 1);
	assert_int_equal(st.sounder_missing, 1);
	assert_int_equal(st.wake_missing, 1);
	assert_int_equal(st.led_on, 0);
	/* nothing was created in place of the missing devices */
	assert_string_equal(RD("sys/class/leds/status/brightness"), "");
	tu_run_for(f->l, 80);

	/* the LED comes back (another name: found by the rescan) */
	ft_write(f->root, "sys/class/leds/red/brightness", "0\n");
	ft_write(f->root, "sys/class/leds/zbuzzer/brightness", "0\n");
	hal_alert_incident(a, 0);
	assert_string_equal(RD("sys/class/leds/red/brightness"), "1");
	assert_string_equal(RD("sys/class/leds/zbuzzer/brightness"), "1");
	hal_alert_stats(a, &st);
	assert_int_equal(st.led_missing, 1);
	assert_int_equal(st.led_on, 1);
	assert_int_equal(st.sounded, 1);
	hal_alert_close(a);
	/* close switches off */
	assert_string_equal(RD("sys/class/leds/red/brightness"), "0");
	assert_string_equal(RD("sys/class/leds/zbuzzer/brightness"), "0");
}

static void test_sysfs_gpio_sounder_absent(void **state)
{
	struct fx *f = *state;
	char err[256];
	struct hal_alert *a;
	/* a regular file where the GPIO character device would be */
	ft_write(f->root, "dev/gpiochip0", "");
	struct hal_alert_params p = {.loop = f->l, .root = f->root, .sounder = "gpio:gpiochip0:3"};
	assert_int_equal(hal_alert_open("sysfs", &p, &a, err, sizeof(err)), 0);
	hal_alert_incident(a, 0);
	hal_alert_incident(a, 0);
	struct hal_alert_stats st;
	hal_alert_stats(a, &st);
	assert_int_equal(st.sounder_missing, 2);
	assert_int_equal(st.sounded, 0);
	assert_int_equal(st.led_on, 1);
	hal_alert_close(a);

	static const char *const bad[] = {
	    "gpio:gpiochip0", "gpio::3",  "gpio:../x:1", "gpio:gpiochip0:99999",
	    "led:",           "led:../x", "buzzer"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p.sounder = bad[i];
		assert_int_equal(hal_alert_open("sysfs", &p, &a, err, sizeof(err)), -EINVAL);
		assert_null(a);
	}
	p.sounder = NULL;
	p.led = "../../etc";
	assert_int_equal(hal_alert_open("sysfs", &p, &a, err, sizeof(err)), -EINVAL);
}

/* ---- the policy through a recording ops table ---- */

struct rec {
	int led_on, sound_on, wakes, sound_on_calls;
	int fail_sounder;
};
static struct rec R;

static int rec_open(const struct hal_alert_params *p, void **priv, char *err, size_t errlen)
{
	(void)p;
	(void)err;
	(void)errlen;
	*priv = &R;
	return 0;
}
static void rec_close(void *priv)
{
	(void)priv;
}
static int rec_led(void *priv, int on)
{
	((struct rec *)priv)->led_on = on;
	return 0;
}
static int rec_sounder(void *priv, int on)
{
	struct rec *r = priv;
	if (r->fail_sounder)
		return -ENODEV;
	r->sound_on = on;
	r->sound_on_calls += on;
	return 0;
}
static int rec_wake(void *priv)
{
	((struct rec *)priv)->wakes++;
	return 0;
}
static const struct hal_alert_ops rec_ops = {
    .name = "rec",
    .open = rec_open,
    .close = rec_close,
    .led = rec_led,
    .sounder = rec_sounder,
    .wake = rec_wake,
};

static void test_policy_silent_never_sounds(void **state)
{
	struct fx *f = *state;
	struct hal_alert *a;
	char err[128];
	memset(&R, 0, sizeof(R));
	struct hal_alert_params p = {.loop = f->l, .duration_ms = 40, .sound_ms = 20};
	assert_int_equal(hal_alert_open_ops(&rec_ops, &p, &a, err, sizeof(err)), 0);
	/* a run of silent incidents with timers expiring in between */
	for (int i = 0; i < 20; i++) {
		hal_alert_incident(a, 1);
		assert_int_equal(R.sound_on, 0);
		assert_int_equal(R.led_on, 1);
		if (i % 5 == 0)
			tu_run_for(f->l, 25);
	}
	assert_int_equal(R.sound_on_calls, 0);
	assert_int_equal(R.wakes, 20);
	/* mixed, pseudo-random order: the sounder is on exactly after a
	 * normal incident and off after any silent one */
	unsigned x = 12345;
	int normal = 0;
	for (int i = 0; i < 200; i++) {
		x = x * 1103515245u + 12345u;
		int silent = (x >> 16) & 1;
		normal += !silent;
		hal_alert_incident(a, silent);
		assert_int_equal(R.sound_on, !silent);
	}
	assert_int_equal(R.sound_on_calls, normal);
	tu_run_for(f->l, 60);
	assert_int_equal(R.sound_on, 0);
	assert_int_equal(R.led_on, 0);
	/* a sounder that is gone is counted and never fatal */
	R.fail_sounder = 1;
	hal_alert_incident(a, 0);
	struct hal_alert_stats st;
	hal_alert_stats(a, &st);
	assert_int_equal(st.sounder_missing, 1);
	assert_int_equal(st.sounding, 0);
	hal_alert_close(a);
	assert_int_equal(R.led_on, 0);
}

static void test_backends(void **state)
{
	struct fx *f = *state;
	struct hal_alert *a;
	char err[128];
	struct hal_alert_params p = {.loop = f->l};
	assert_int_equal(hal_alert_open("buzz", &p, &a, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "buzz"));
	assert_int_equal(hal_alert_open("none", &p, &a, err, sizeof(err)), 0);
	hal_alert_incident(a, 0);
	struct hal_alert_stats st;
	hal_alert_stats(a, &st);
	assert_int_equal(st.alerts, 1);
	assert_int_equal(st.sounded + st.led_missing + st.sounder_missing, 0);
	hal_alert_close(a);
	p.loop = NULL;
	assert_int_equal(hal_alert_open("none", &p, &a, err, sizeof(err)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_sysfs_normal_and_silent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sysfs_vanishing_hardware, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sysfs_gpio_sounder_absent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_policy_silent_never_sounds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backends, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

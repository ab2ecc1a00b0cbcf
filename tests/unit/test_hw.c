/* agent/hw: the daemon's hardware from a configuration, on a fake tree
 * (HAL_SYSFS_ROOT): the heartbeat's power fields and fallback, the GPS
 * interval on battery, the status object, alerts, and the self-test checks
 * (alert exercised, panic button prompted) passing, warning, failing and
 * skipping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/config.h"
#include "agent/hw.h"
#include "agent/loop.h"
#include "tests/lib/faketree.h"
#include "tests/lib/testutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fx {
	char *root;
	struct loop *l;
	struct config cfg;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->root = tu_tmpdir("hw");
	setenv("HAL_SYSFS_ROOT", f->root, 1);
	assert_int_equal(loop_open(&f->l), 0);
	ft_write(f->root, "sys/class/leds/status/brightness", "0\n");
	ft_write(f->root, "sys/class/leds/buzzer/brightness", "0\n");
	ft_write(f->root, "sys/class/backlight/panel/bl_power", "4\n");
	ft_write(f->root, "sys/class/power_supply/BAT0/type", "Battery\n");
	ft_write(f->root, "sys/class/power_supply/BAT0/capacity", "40\n");
	ft_write(f->root, "sys/class/power_supply/BAT0/status", "Discharging\n");
	ft_mkdir(f->root, "dev/input");
	config_defaults(&f->cfg);
	char err[256];
	assert_int_equal(config_set(&f->cfg, "alert", "backend", "sysfs", err, sizeof(err)), 0);
	assert_int_equal(config_set(&f->cfg, "alert", "led", "status", err, sizeof(err)), 0);
	assert_int_equal(config_set(&f->cfg, "alert", "sounder", "led:buzzer", err, sizeof(err)),
	                 0);
	assert_int_equal(
	    config_set(&f->cfg, "input", "device", "/dev/input/event0", err, sizeof(err)), 0);
	assert_int_equal(config_set(&f->cfg, "input", "backend", "evdev", err, sizeof(err)), 0);
	assert_int_equal(config_set(&f->cfg, "input", "long_press_ms", "500", err, sizeof(err)), 0);
	assert_int_equal(config_set(&f->cfg, "power", "backend", "sysfs", err, sizeof(err)), 0);
	assert_int_equal(config_set(&f->cfg, "link", "backend", "none", err, sizeof(err)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	loop_close(f->l);
	unsetenv("HAL_SYSFS_ROOT");
	tu_rmrf(f->root);
	free(f);
	return 0;
}

struct cbs {
	int power, panics;
};

static void cb_power(void *arg)
{
	((struct cbs *)arg)->power++;
}

#define RD(rel) ft_read(f->root, rel, buf, sizeof(buf))

static void test_daemon_side(void **state)
{
	struct fx *f = *state;
	char err[256], buf[64];
	struct cbs c = {0};
	struct hw_callbacks cb = {.power = cb_power, .arg = &c};
	struct hw *h;
	assert_int_equal(hw_open(f->l, &f->cfg, &cb, &h, err, sizeof(err)), 0);
	int pct;
	assert_string_equal(hw_power(h, &f->cfg, &pct), "battery");
	assert_int_equal(pct, 40);
	/* on battery the idle interval stretches (5 s -> 30 s by default) */
	assert_int_equal(hw_gps_interval(h, &f->cfg), 30);
	f->cfg.gps.battery_interval_s = 0;
	assert_int_equal(hw_gps_interval(h, &f->cfg), 5);

	hw_alert(h, 1);
	assert_string_equal(RD("sys/class/leds/status/brightness"), "1");
	assert_string_equal(RD("sys/class/leds/buzzer/brightness"), "0");
	assert_string_equal(RD("sys/class/backlight/panel/bl_power"), "0");
	hw_alert(h, 0);
	assert_string_equal(RD("sys/class/leds/buzzer/brightness"), "1");
	cJSON *st = hw_status(h, "unsynced");
	assert_non_null(st);
	const cJSON *al = cJSON_GetObjectItem(st, "alert");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(al, "sounding")));
	assert_int_equal(cJSON_GetObjectItem(al, "silent")->valueint, 1);
	const cJSON *pw = cJSON_GetObjectItem(st, "power");
	assert_string_equal(cJSON_GetObjectItem(pw, "source")->valuestring, "battery");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(pw, "ignition")));
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(st, "rtc"), "assessment")->valuestring,
	    "no-time");
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(st, "link"), "backend")->valuestring, "none");
	cJSON_Delete(st);
	hw_alert_stop(h);
	assert_string_equal(RD("sys/class/leds/buzzer/brightness"), "0");
	assert_string_equal(RD("sys/class/leds/status/brightness"), "0");
	hw_close(h);

	/* nothing sensed: the configured fallback */
	ft_remove(f->root, "sys/class/power_supply");
	assert_int_equal(config_set(&f->cfg, "power", "fallback", "ac", err, sizeof(err)), 0);
	assert_int_equal(hw_open(f->l, &f->cfg, &cb, &h, err, sizeof(err)), 0);
	assert_string_equal(hw_power(h, &f->cfg, &pct), "ac");
	assert_int_equal(pct, -1);
	hw_close(h);
	assert_string_equal(hw_power(NULL, &f->cfg, &pct), "ac");
	assert_int_equal(c.power, 0); /* no change was seen while open */
}

static void test_check_alert(void **state)
{
	struct fx *f = *state;
	struct hw_check ck;
	hw_check_alert(&f->cfg, f->l, &ck);
	assert_int_equal(ck.status, HW_CHECK_PASS);
	assert_non_null(strstr(ck.detail, "sounder"));
	char buf[64];
	assert_string_equal(RD("sys/class/leds/buzzer/brightness"), "0"); /* switched off again */
	ft_remove(f->root, "sys/class/backlight");
	hw_check_alert(&f->cfg, f->l, &ck);
	assert_int_equal(ck.status, HW_CHECK_WARN);
	assert_non_null(strstr(ck.detail, "backlight"));
	ft_remove(f->root, "sys/class/leds/buzzer");
	hw_check_alert(&f->cfg, f->l, &ck);
	assert_int_equal(ck.status, HW_CHECK_FAIL);
	assert_non_null(strstr(ck.detail, "sounder led:buzzer not found"));
	ft_remove(f->root, "sys/class/leds/status");
	hw_check_alert(&f->cfg, f->l, &ck);
	assert_int_equal(ck.status, HW_CHECK_FAIL);
	assert_non_null(strstr(ck.detail, "LED status and sounder led:buzzer not found"));
	f->cfg.alert.backend = CONFIG_ALERT_NONE;
	hw_check_alert(&f->cfg, f->l, &ck);
	assert_int_equal(ck.status, HW_CHECK_SKIP);
}

static void test_check_panic(void **state)
{
	struct fx *f = *state;
	struct hw_check ck;
	/* no device */
	hw_check_panic(&f->cfg, f->l, 200, &ck);
	assert_int_equal(ck.status, HW_CHECK_FAIL);
	assert_non_null(strstr(ck.detail, "not found"));
	/* a device, nobody presses */
	char fifo[600];
	snprintf(fifo, sizeof(fifo), "%s/dev/input/event0", f->root);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	hw_check_panic(&f->cfg, f->l, 300, &ck);
	assert_int_equal(ck.status, HW_CHECK_FAIL);
	assert_non_null(strstr(ck.detail, "no press"));
	/* the technician holds the button (the press waits in the FIFO, kept
	 * open by a reader of our own so the writer can open) */
	int keep = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	int w = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(keep >= 0 && w >= 0);
	struct input_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = EV_KEY;
	ev.code = KEY_PROG1;
	ev.value = 1;
	assert_int_equal(write(w, &ev, sizeof(ev)), (ssize_t)sizeof(ev));
	int64_t t0 = tu_now_ms();
	hw_check_panic(&f->cfg, f->l, 5000, &ck);
	assert_int_equal(ck.status, HW_CHECK_PASS);
	assert_non_null(strstr(ck.detail, "long press"));
	assert_true(tu_now_ms() - t0 < 4000);
	close(w);
	close(keep);
	f->cfg.input.backend = CONFIG_INPUT_NONE;
	hw_check_panic(&f->cfg, f->l, 100, &ck);
	assert_int_equal(ck.status, HW_CHECK_SKIP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_daemon_side, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_check_alert, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_check_panic, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

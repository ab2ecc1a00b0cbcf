/* The GPIO paths of the HAL through libgpiod's calls, on the fake chip of
 * tests/lib/fakegpiod (this kernel has no gpio-sim): hal/gpio itself
 * (output, input, edges, busy, wrong offset, a chip that vanishes and
 * returns), the alert's GPIO sounder (driven on an alert, low after it,
 * never for a silent incident, a loss logged once), the panic button on a
 * GPIO line (one panic per press whatever the contact bounce, active low,
 * the chip vanishing and returning), the ignition line, and the self-test's
 * alert and panic checks on GPIO backends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/config.h"
#include "agent/hw.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "hal/alert.h"
#include "hal/gpio.h"
#include "hal/input.h"
#include "hal/power.h"
#include "tests/lib/fakegpiod.h"
#include "tests/lib/faketree.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fx {
	char *root;
	struct loop *l;
	char logs[64][256];
	int nlogs;
	int panics[3]; /* by enum hal_panic_kind */
};

static void sink(void *arg, enum log_level level, const char *line)
{
	(void)level;
	struct fx *f = arg;
	if (f->nlogs < 64)
		snprintf(f->logs[f->nlogs++], sizeof(f->logs[0]), "%s", line);
}

/* Log lines that contain needle. */
static int logged(const struct fx *f, const char *needle)
{
	int n = 0;
	for (int i = 0; i < f->nlogs; i++)
		n += strstr(f->logs[i], needle) != NULL;
	return n;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->root = tu_tmpdir("gpio");
	setenv("HAL_SYSFS_ROOT", f->root, 1);
	assert_int_equal(loop_open(&f->l), 0);
	fg_chip_add(f->root, "gpiochip0", 32, "vehicle-io");
	fg_chip_add(f->root, "gpiochip1", 8, "buttons");
	ft_write(f->root, "sys/class/leds/status/brightness", "0\n");
	log_set_sink(sink, f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	log_set_sink(NULL, NULL);
	loop_close(f->l);
	unsetenv("HAL_SYSFS_ROOT");
	tu_rmrf(f->root);
	free(f);
	return 0;
}

#define HIST(chip, line) fg_line_history(f->root, chip, line, hist, sizeof(hist))

static void test_line(void **state)
{
	struct fx *f = *state;
	struct hal_gpio *g, *g2;
	char hist[64];
	int rising;

	/* an output starts low, follows hal_gpio_set, and is held */
	assert_int_equal(hal_gpio_open(NULL, "gpiochip0:17", HAL_GPIO_OUTPUT, "essd", &g), 0);
	assert_int_equal(fg_line_requested(f->root, "gpiochip0", 17), 1);
	assert_int_equal(fg_line_get(f->root, "gpiochip0", 17), 0);
	assert_int_equal(hal_gpio_fd(g), -1);
	assert_int_equal(hal_gpio_set(g, 1), 0);
	assert_int_equal(fg_line_get(f->root, "gpiochip0", 17), 1);
	assert_int_equal(hal_gpio_get(g), 1);
	assert_int_equal(hal_gpio_set(g, 0), 0);
	assert_string_equal(HIST("gpiochip0", 17), "010");
	/* a second request of a held line: busy, the holder keeps it */
	assert_int_equal(hal_gpio_open(NULL, "gpiochip0:17", HAL_GPIO_INPUT, "other", &g2), -EBUSY);
	assert_null(g2);
	hal_gpio_close(g);
	assert_int_equal(fg_line_requested(f->root, "gpiochip0", 17), 0);

	/* an input reads the level the wiring gives it */
	fg_line_set(f->root, "gpiochip1", 2, 1);
	assert_int_equal(hal_gpio_open(f->root, "gpiochip1:2", HAL_GPIO_INPUT, "essd", &g), 0);
	assert_int_equal(hal_gpio_get(g), 1);
	fg_line_set(f->root, "gpiochip1", 2, 0);
	assert_int_equal(hal_gpio_get(g), 0);
	hal_gpio_close(g);

	/* edges: the fd is there for the loop, one edge per level change */
	assert_int_equal(hal_gpio_open(NULL, "gpiochip1:3", HAL_GPIO_EDGES, "essd", &g), 0);
	assert_true(hal_gpio_fd(g) >= 0);
	assert_int_equal(hal_gpio_read_edge(g, &rising), -EAGAIN);
	assert_int_equal(fg_line_set(f->root, "gpiochip1", 3, 1), 1);
	assert_int_equal(fg_line_set(f->root, "gpiochip1", 3, 1), 0); /* no change, no edge */
	assert_int_equal(fg_line_set(f->root, "gpiochip1", 3, 0), 1);
	assert_int_equal(hal_gpio_read_edge(g, &rising), 0);
	assert_int_equal(rising, 1);
	assert_int_equal(hal_gpio_read_edge(g, &rising), 0);
	assert_int_equal(rising, 0);
	assert_int_equal(hal_gpio_read_edge(g, &rising), -EAGAIN);

	/* the chip goes: every call says so, nothing crashes */
	assert_int_equal(hal_gpio_open(NULL, "gpiochip0:4", HAL_GPIO_OUTPUT, "essd", &g2), 0);
	fg_chip_remove(f->root, "gpiochip1");
	fg_chip_remove(f->root, "gpiochip0");
	assert_int_equal(hal_gpio_read_edge(g, &rising), -ENODEV);
	assert_int_equal(hal_gpio_get(g), -ENODEV);
	assert_int_equal(hal_gpio_set(g2, 1), -ENODEV);
	struct hal_gpio *g3;
	assert_int_equal(hal_gpio_open(NULL, "gpiochip1:3", HAL_GPIO_EDGES, "essd", &g3), -ENOENT);
	/* it comes back: the old handles stay dead (the kernel's rule), a new
	 * request works */
	fg_chip_add(f->root, "gpiochip0", 32, "vehicle-io");
	assert_int_equal(hal_gpio_set(g2, 1), -ENODEV);
	hal_gpio_close(g2);
	hal_gpio_close(g);
	assert_int_equal(hal_gpio_open(NULL, "gpiochip0:4", HAL_GPIO_OUTPUT, "essd", &g2), 0);
	assert_int_equal(hal_gpio_set(g2, 1), 0);
	assert_int_equal(fg_line_get(f->root, "gpiochip0", 4), 1);
	hal_gpio_close(g2);
	hal_gpio_close(NULL);
}

static void test_line_errors(void **state)
{
	struct fx *f = *state;
	struct hal_gpio *g;
	/* a line the chip does not have */
	assert_int_equal(hal_gpio_open(NULL, "gpiochip1:8", HAL_GPIO_INPUT, "essd", &g), -ERANGE);
	assert_int_equal(hal_gpio_open(NULL, "gpiochip0:1023", HAL_GPIO_OUTPUT, "essd", &g),
	                 -ERANGE);
	/* no chip; a file that is no GPIO chip; a directory */
	assert_int_equal(hal_gpio_open(NULL, "gpiochip7:0", HAL_GPIO_INPUT, "essd", &g), -ENOENT);
	ft_write(f->root, "dev/gpiochip5", "");
	assert_int_equal(hal_gpio_open(NULL, "gpiochip5:0", HAL_GPIO_INPUT, "essd", &g), -ENODEV);
	ft_write(f->root, "dev/gpiochip6", "fakegpiod 0 empty\n");
	assert_int_equal(hal_gpio_open(NULL, "gpiochip6:0", HAL_GPIO_INPUT, "essd", &g), -ENODEV);
	ft_mkdir(f->root, "dev/gpiochip9");
	assert_true(hal_gpio_open(NULL, "gpiochip9:0", HAL_GPIO_INPUT, "essd", &g) < 0);
	assert_null(g);
	/* names that are no CHIP:OFFSET never reach libgpiod */
	static const char *const bad[] = {"gpiochip0",   "gpiochip0:",    ":3",
	                                  "../dev:1",    "gpiochip0:-1",  "gpiochip0:1024",
	                                  "gpiochip0:x", "gpiochip0:0x1", "a/b:2"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(hal_gpio_open(NULL, bad[i], HAL_GPIO_INPUT, "essd", &g), -EINVAL);
	assert_int_equal(hal_gpio_open(NULL, NULL, HAL_GPIO_INPUT, "essd", &g), -EINVAL);
}

/* On the real root a chip may be named by its label, as the kernel gives it
 * (the fake looks in $FAKEGPIOD_DEV where libgpiod scans /dev); under a
 * test root only /dev names count. */
static void test_label(void **state)
{
	struct fx *f = *state;
	struct hal_gpio *g;
	char dev[600];
	snprintf(dev, sizeof(dev), "%s/dev", f->root);
	fg_line_set(f->root, "gpiochip1", 2, 1);
	assert_int_equal(hal_gpio_open(NULL, "buttons:2", HAL_GPIO_INPUT, "essd", &g), -ENOENT);
	unsetenv("HAL_SYSFS_ROOT");
	setenv("FAKEGPIOD_DEV", dev, 1);
	assert_int_equal(hal_gpio_open(NULL, "buttons:2", HAL_GPIO_INPUT, "essd", &g), 0);
	assert_int_equal(hal_gpio_get(g), 1);
	hal_gpio_close(g);
	assert_int_equal(hal_gpio_open(NULL, "buttons:8", HAL_GPIO_INPUT, "essd", &g), -ERANGE);
	assert_int_equal(hal_gpio_open(NULL, "keypad:1", HAL_GPIO_INPUT, "essd", &g), -ENOENT);
	unsetenv("FAKEGPIOD_DEV");
	setenv("HAL_SYSFS_ROOT", f->root, 1);
}

static struct hal_alert *alert_open(struct fx *f, const char *sounder)
{
	char err[256];
	struct hal_alert *a;
	struct hal_alert_params p = {
	    .loop = f->l, .led = "status", .sounder = sounder, .duration_ms = 400, .sound_ms = 100};
	assert_int_equal(hal_alert_open("sysfs", &p, &a, err, sizeof(err)), 0);
	return a;
}

static void test_alert_sounder(void **state)
{
	struct fx *f = *state;
	char hist[64], buf[16];
	struct hal_alert_stats st;
	struct hal_alert *a = alert_open(f, "gpio:gpiochip0:17");
	/* not requested before the first alert */
	assert_int_equal(fg_line_requested(f->root, "gpiochip0", 17), 0);

	/* a normal incident drives the line, the timer brings it low again */
	hal_alert_incident(a, 0);
	assert_int_equal(fg_line_requested(f->root, "gpiochip0", 17), 1);
	assert_int_equal(fg_line_get(f->root, "gpiochip0", 17), 1);
	assert_string_equal(ft_read(f->root, "sys/class/leds/status/brightness", buf, sizeof(buf)),
	                    "1");
	hal_alert_stats(a, &st);
	assert_int_equal(st.sounding, 1);
	tu_run_for(f->l, 200);
	assert_int_equal(fg_line_get(f->root, "gpiochip0", 17), 0);
	assert_string_equal(HIST("gpiochip0", 17), "010");
	hal_alert_stats(a, &st);
	assert_int_equal(st.sounding, 0);
	assert_int_equal(st.sounded, 1);

	/* a silent incident: the line is never asserted, not even briefly */
	fg_line_history_clear(f->root, "gpiochip0", 17);
	hal_alert_incident(a, 1);
	tu_run_for(f->l, 200);
	assert_null(strchr(HIST("gpiochip0", 17), '1'));
	assert_int_equal(fg_line_get(f->root, "gpiochip0", 17), 0);
	assert_string_equal(ft_read(f->root, "sys/class/leds/status/brightness", buf, sizeof(buf)),
	                    "1");

	/* a silent incident during a sound silences it at once */
	hal_alert_incident(a, 0);
	assert_int_equal(fg_line_get(f->root, "gpiochip0", 17), 1);
	hal_alert_incident(a, 1);
	assert_int_equal(fg_line_get(f->root, "gpiochip0", 17), 0);
	tu_run_for(f->l, 200);
	assert_int_equal(fg_line_get(f->root, "gpiochip0", 17), 0);
	/* the responder acts: everything off */
	hal_alert_incident(a, 0);
	hal_alert_stop(a);
	assert_int_equal(fg_line_get(f->root, "gpiochip0", 17), 0);
	hal_alert_stats(a, &st);
	assert_int_equal(st.sounded, 3);
	assert_int_equal(st.silent, 2);
	assert_int_equal(st.sounder_missing, 0);
	/* closing releases the line, low */
	hal_alert_close(a);
	assert_int_equal(fg_line_requested(f->root, "gpiochip0", 17), 0);
	assert_int_equal(fg_line_get(f->root, "gpiochip0", 17), 0);

	/* a sounder that is only ever silent is never even requested */
	a = alert_open(f, "gpio:gpiochip0:18");
	hal_alert_incident(a, 1);
	tu_run_for(f->l, 150);
	hal_alert_close(a);
	assert_string_equal(HIST("gpiochip0", 18), "");
	assert_int_equal(logged(f, "sounder"), 0);
}

static void test_alert_sounder_vanishes(void **state)
{
	struct fx *f = *state;
	struct hal_alert_stats st;
	struct hal_alert *a = alert_open(f, "gpio:gpiochip0:17");
	hal_alert_incident(a, 0);
	assert_int_equal(fg_line_get(f->root, "gpiochip0", 17), 1);
	/* unplugged while sounding: the timer's "off" finds it gone */
	fg_chip_remove(f->root, "gpiochip0");
	tu_run_for(f->l, 200);
	for (int i = 0; i < 3; i++) {
		hal_alert_incident(a, 0);
		tu_run_for(f->l, 20);
	}
	hal_alert_stats(a, &st);
	assert_int_equal(st.sounder_missing, 3);
	assert_int_equal(st.sounder_error, -ENOENT);
	assert_int_equal(st.sounding, 0);
	assert_int_equal(logged(f, "sounder gpio:gpiochip0:17 unavailable"), 1);
	/* back: the next alert sounds again, said once */
	fg_chip_add(f->root, "gpiochip0", 32, "vehicle-io");
	hal_alert_incident(a, 0);
	assert_int_equal(fg_line_get(f->root, "gpiochip0", 17), 1);
	hal_alert_stats(a, &st);
	assert_int_equal(st.sounding, 1);
	assert_int_equal(st.sounder_error, 0);
	tu_run_for(f->l, 200);
	assert_int_equal(fg_line_get(f->root, "gpiochip0", 17), 0);
	assert_int_equal(logged(f, "sounder gpio:gpiochip0:17 is back"), 1);
	assert_int_equal(logged(f, "unavailable"), 1);
	hal_alert_close(a);

	/* a wrong offset: missing with its reason, never fatal */
	a = alert_open(f, "gpio:gpiochip0:40");
	hal_alert_incident(a, 0);
	hal_alert_stats(a, &st);
	assert_int_equal(st.sounder_missing, 1);
	assert_int_equal(st.sounder_error, -ERANGE);
	assert_int_equal(logged(f, "gpio:gpiochip0:40 unavailable"), 1);
	hal_alert_close(a);
	/* a line some other program holds */
	struct hal_gpio *other;
	assert_int_equal(hal_gpio_open(NULL, "gpiochip0:9", HAL_GPIO_OUTPUT, "other", &other), 0);
	a = alert_open(f, "gpio:gpiochip0:9");
	hal_alert_incident(a, 0);
	hal_alert_stats(a, &st);
	assert_int_equal(st.sounder_error, -EBUSY);
	hal_alert_close(a);
	hal_gpio_close(other);
	/* bad specs are refused at open, with a message */
	char err[256] = "";
	static const char *const bad[] = {"gpio:gpiochip0", "gpio:gpiochip0:1024", "gpio::1",
	                                  "gpio:../../x:1", "gpiochip0:1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct hal_alert_params p = {.loop = f->l, .sounder = bad[i]};
		assert_int_equal(hal_alert_open("sysfs", &p, &a, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "gpio:CHIP:OFFSET"));
	}
}

static void on_panic(void *arg, enum hal_panic_kind k)
{
	struct fx *f = arg;
	f->panics[k]++;
}

static struct hal_input *button(struct fx *f, const char *dev, int active_low, int long_ms)
{
	char err[256];
	struct hal_input *in;
	struct hal_input_params p = {.loop = f->l,
	                             .device = dev,
	                             .active_low = active_low,
	                             .long_press_ms = long_ms,
	                             .double_press_ms = 1500,
	                             .rescan_ms = 30,
	                             .on_panic = on_panic,
	                             .arg = f};
	assert_int_equal(hal_input_open("gpio", &p, &in, err, sizeof(err)), 0);
	return in;
}

/* The button's contact: level `to` reached through `bounces` extra flips
 * (a real contact chatters for a few ms), all before the loop sees them. */
static void contact(struct fx *f, unsigned line, int to, int bounces)
{
	for (int i = 0; i < bounces; i++) {
		fg_line_set(f->root, "gpiochip1", line, to);
		fg_line_set(f->root, "gpiochip1", line, !to);
	}
	fg_line_set(f->root, "gpiochip1", line, to);
	tu_run_for(f->l, 60);
}

static void test_button(void **state)
{
	struct fx *f = *state;
	struct hal_input_stats st;
	/* a long press never comes in this phase: 10 s */
	struct hal_input *in = button(f, "gpiochip1:3", 0, 10000);
	hal_input_stats(in, &st);
	assert_int_equal(st.attached, 1);
	assert_int_equal(st.error, 0);
	assert_int_equal(fg_line_requested(f->root, "gpiochip1", 3), 1);

	/* one short press that chatters on the way down and up: one press, no
	 * panic (a bounce is no second press) */
	contact(f, 3, 1, 3);
	contact(f, 3, 0, 3);
	hal_input_stats(in, &st);
	assert_int_equal(st.presses, 1);
	assert_int_equal(f->panics[HAL_PANIC_DOUBLE] + f->panics[HAL_PANIC_LONG], 0);
	/* the second press, chattering too: one double-press panic */
	contact(f, 3, 1, 4);
	assert_int_equal(f->panics[HAL_PANIC_DOUBLE], 1);
	contact(f, 3, 0, 2);
	hal_input_stats(in, &st);
	assert_int_equal(st.presses, 2);
	assert_int_equal(st.panics, 1);
	hal_input_close(in);
	assert_int_equal(fg_line_requested(f->root, "gpiochip1", 3), 0);

	/* a long press with chatter: one long-press panic, at long_press_ms */
	in = button(f, "gpiochip1:3", 0, 600);
	int64_t t0 = loop_now_ms();
	contact(f, 3, 1, 5);
	tu_run_for(f->l, 100);
	assert_int_equal(f->panics[HAL_PANIC_LONG], 0);
	tu_run_for(f->l, 700);
	assert_int_equal(f->panics[HAL_PANIC_LONG], 1);
	assert_true(loop_now_ms() - t0 >= 600);
	tu_run_for(f->l, 400); /* held on: still one */
	contact(f, 3, 0, 3);
	assert_int_equal(f->panics[HAL_PANIC_LONG], 1);
	assert_int_equal(f->panics[HAL_PANIC_DOUBLE], 1);
	hal_input_close(in);

	/* active low: the line idles high, pressed is low */
	fg_line_set(f->root, "gpiochip1", 5, 1);
	in = button(f, "gpiochip1:5", 1, 10000);
	contact(f, 5, 0, 2);
	contact(f, 5, 1, 2);
	hal_input_stats(in, &st);
	assert_int_equal(st.presses, 1);
	contact(f, 5, 0, 0);
	assert_int_equal(f->panics[HAL_PANIC_DOUBLE], 2);
	contact(f, 5, 1, 0);
	hal_input_close(in);
}

static void test_button_vanishes(void **state)
{
	struct fx *f = *state;
	struct hal_input_stats st;
	struct hal_input *in = button(f, "gpiochip1:3", 0, 300);
	/* held down when the chip goes away: let go, no phantom long press */
	contact(f, 3, 1, 0);
	fg_chip_remove(f->root, "gpiochip1");
	tu_run_for(f->l, 500);
	hal_input_stats(in, &st);
	assert_int_equal(st.attached, 0);
	assert_int_equal(st.losses, 1);
	assert_int_equal(st.error, -ENOENT);
	assert_int_equal(f->panics[HAL_PANIC_LONG], 0);
	/* ~15 rescans so far: one log line */
	assert_int_equal(logged(f, "panic button (gpio) went away"), 1);
	/* back: attached again by the rescan, and it works */
	fg_chip_add(f->root, "gpiochip1", 8, "buttons");
	tu_run_for(f->l, 100);
	hal_input_stats(in, &st);
	assert_int_equal(st.attached, 1);
	assert_int_equal(st.attaches, 2);
	assert_int_equal(st.error, 0);
	assert_int_equal(logged(f, "panic button (gpio) is back"), 1);
	/* within double_press_ms of the press the loss cut short: a double */
	contact(f, 3, 1, 1);
	tu_run_for(f->l, 400);
	assert_int_equal(f->panics[HAL_PANIC_DOUBLE], 1);
	assert_int_equal(f->panics[HAL_PANIC_LONG], 0);
	contact(f, 3, 0, 1);
	hal_input_close(in);
	assert_int_equal(logged(f, "went away"), 1);

	/* a wrong offset, a busy line: never attached, the reason kept */
	in = button(f, "gpiochip1:8", 0, 300);
	tu_run_for(f->l, 100);
	hal_input_stats(in, &st);
	assert_int_equal(st.attached, 0);
	assert_int_equal(st.error, -ERANGE);
	hal_input_close(in);
	struct hal_gpio *other;
	assert_int_equal(hal_gpio_open(NULL, "gpiochip1:4", HAL_GPIO_INPUT, "other", &other), 0);
	in = button(f, "gpiochip1:4", 0, 300);
	hal_input_stats(in, &st);
	assert_int_equal(st.error, -EBUSY);
	/* the other program lets go: the rescan takes the line */
	hal_gpio_close(other);
	tu_run_for(f->l, 100);
	hal_input_stats(in, &st);
	assert_int_equal(st.attached, 1);
	hal_input_close(in);
	/* bad devices are refused at open */
	char err[256];
	struct hal_input_params p = {.loop = f->l, .device = "gpiochip1"};
	assert_int_equal(hal_input_open("gpio", &p, &in, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "CHIP:OFFSET"));
	p.device = "gpiochip1:99999";
	assert_int_equal(hal_input_open("gpio", &p, &in, err, sizeof(err)), -EINVAL);
}

static void test_ignition(void **state)
{
	struct fx *f = *state;
	char err[256];
	struct hal_power *pw;
	struct hal_power_state st;
	fg_line_set(f->root, "gpiochip0", 5, 1);
	struct hal_power_params p = {.loop = f->l, .ignition = "gpio:gpiochip0:5"};
	assert_int_equal(hal_power_open("sysfs", &p, &pw, err, sizeof(err)), 0);
	hal_power_get(pw, &st);
	assert_int_equal(st.raw.ignition, 1);
	assert_int_equal(st.source, HAL_POWER_VEHICLE);
	assert_int_equal(fg_line_requested(f->root, "gpiochip0", 5), 1);
	fg_line_set(f->root, "gpiochip0", 5, 0);
	assert_int_equal(hal_power_refresh(pw), 1);
	hal_power_get(pw, &st);
	assert_int_equal(st.raw.ignition, 0);
	/* the chip goes: unknown, no crash; back: read again */
	fg_chip_remove(f->root, "gpiochip0");
	hal_power_refresh(pw);
	hal_power_get(pw, &st);
	assert_int_equal(st.raw.ignition, -1);
	hal_power_refresh(pw);
	fg_chip_add(f->root, "gpiochip0", 32, "vehicle-io");
	fg_line_set(f->root, "gpiochip0", 5, 1);
	hal_power_refresh(pw);
	hal_power_get(pw, &st);
	assert_int_equal(st.raw.ignition, 1);
	hal_power_close(pw);
	assert_int_equal(fg_line_requested(f->root, "gpiochip0", 5), 0);
	/* active low */
	p.ignition_active_low = 1;
	fg_line_set(f->root, "gpiochip0", 5, 0);
	assert_int_equal(hal_power_open("sysfs", &p, &pw, err, sizeof(err)), 0);
	hal_power_get(pw, &st);
	assert_int_equal(st.raw.ignition, 1);
	hal_power_close(pw);
}

/* ---- the self-test's checks (agent/hw) with GPIO backends ---- */

static void gpio_config(struct config *c)
{
	char err[256];
	config_defaults(c);
	assert_int_equal(config_set(c, "alert", "backend", "sysfs", err, sizeof(err)), 0);
	assert_int_equal(config_set(c, "alert", "led", "status", err, sizeof(err)), 0);
	assert_int_equal(config_set(c, "alert", "sounder", "gpio:gpiochip0:17", err, sizeof(err)),
	                 0);
	assert_int_equal(config_set(c, "input", "device", "gpiochip1:3", err, sizeof(err)), 0);
	assert_int_equal(config_set(c, "input", "backend", "gpio", err, sizeof(err)), 0);
	assert_int_equal(config_set(c, "input", "long_press_ms", "500", err, sizeof(err)), 0);
}

static int64_t technician_presses(struct loop *l, void *arg)
{
	(void)l;
	struct fx *f = arg;
	fg_line_set(f->root, "gpiochip1", 3, 1); /* and holds it */
	return -1;
}

static void test_selftest_checks(void **state)
{
	struct fx *f = *state;
	char hist[64], err[256];
	struct config cfg;
	struct hw_check ck;
	gpio_config(&cfg);

	hw_check_alert(&cfg, f->l, &ck);
	assert_int_equal(ck.status, HW_CHECK_WARN); /* no backlight in this tree */
	assert_non_null(strstr(ck.detail, "sounder"));
	/* it sounded, and ended low */
	assert_int_equal(strncmp(HIST("gpiochip0", 17), "01", 2), 0);
	assert_int_equal(hist[strlen(hist) - 1], '0');
	assert_int_equal(fg_line_requested(f->root, "gpiochip0", 17), 0);
	/* a wrong offset and a busy line, said so */
	assert_int_equal(
	    config_set(&cfg, "alert", "sounder", "gpio:gpiochip0:40", err, sizeof(err)), 0);
	hw_check_alert(&cfg, f->l, &ck);
	assert_int_equal(ck.status, HW_CHECK_FAIL);
	assert_non_null(strstr(ck.detail, "sounder gpio:gpiochip0:40 not found"));
	assert_non_null(strstr(ck.detail, "no such line"));
	fg_chip_remove(f->root, "gpiochip0");
	assert_int_equal(
	    config_set(&cfg, "alert", "sounder", "gpio:gpiochip0:17", err, sizeof(err)), 0);
	hw_check_alert(&cfg, f->l, &ck);
	assert_int_equal(ck.status, HW_CHECK_FAIL);
	assert_non_null(strstr(ck.detail, "no such chip"));

	/* the panic check: the technician presses and holds while it waits */
	struct loop_timer *t = loop_timer_add(f->l, 100, technician_presses, f);
	assert_non_null(t);
	int64_t t0 = tu_now_ms();
	hw_check_panic(&cfg, f->l, 5000, &ck);
	assert_int_equal(ck.status, HW_CHECK_PASS);
	assert_non_null(strstr(ck.detail, "long press"));
	assert_true(tu_now_ms() - t0 < 4000);
	assert_int_equal(fg_line_requested(f->root, "gpiochip1", 3), 0);
	fg_line_set(f->root, "gpiochip1", 3, 0);
	/* nobody presses */
	hw_check_panic(&cfg, f->l, 300, &ck);
	assert_int_equal(ck.status, HW_CHECK_FAIL);
	assert_non_null(strstr(ck.detail, "no press"));
	/* essd holds the line */
	struct hal_gpio *essd;
	assert_int_equal(hal_gpio_open(NULL, "gpiochip1:3", HAL_GPIO_EDGES, "essd", &essd), 0);
	hw_check_panic(&cfg, f->l, 300, &ck);
	assert_int_equal(ck.status, HW_CHECK_FAIL);
	assert_non_null(strstr(ck.detail, "held by another program"));
	hal_gpio_close(essd);
	/* an offset the chip does not have */
	assert_int_equal(config_set(&cfg, "input", "device", "gpiochip1:12", err, sizeof(err)), 0);
	hw_check_panic(&cfg, f->l, 300, &ck);
	assert_int_equal(ck.status, HW_CHECK_FAIL);
	assert_non_null(strstr(ck.detail, "gpiochip1:12 not found (the chip has no such line"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_line_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_label, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_alert_sounder, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_alert_sounder_vanishes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_button, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_button_vanishes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ignition, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_selftest_checks, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

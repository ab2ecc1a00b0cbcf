/* hal/clock: RTC presence on a fake /sys/class/rtc tree (appearing,
 * vanishing, a flat battery), and the assessment against the clock state
 * agent/track decides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/track.h"
#include "hal/clock.h"
#include "tests/lib/faketree.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <string.h>

static void test_sysfs(void **state)
{
	(void)state;
	char *root = tu_tmpdir("clock"), err[256];
	struct hal_clock *c;
	struct hal_clock_info in;
	assert_int_equal(hal_clock_open("sysfs", root, NULL, &c, err, sizeof(err)), 0);
	assert_string_equal(hal_clock_name(c), "sysfs");
	hal_clock_read(c, &in);
	assert_int_equal(in.rtc_present, 0);
	assert_int_equal(in.rtc_s, -1);

	/* it appears (the driver loaded late) */
	ft_write(root, "sys/class/rtc/rtc0/name", "rtc_cmos\n");
	ft_write(root, "sys/class/rtc/rtc0/since_epoch", "2200000000\n"); /* 2039: past 2038 */
	ft_write(root, "sys/class/rtc/rtc0/hctosys", "1\n");
	hal_clock_read(c, &in);
	assert_int_equal(in.rtc_present, 1);
	assert_string_equal(in.rtc_name, "rtc_cmos");
	assert_true(in.rtc_s == 2200000000LL);
	assert_int_equal(in.hctosys, 1);

	/* a flat RTC battery: 1970 is no time */
	ft_write(root, "sys/class/rtc/rtc0/since_epoch", "12\n");
	hal_clock_read(c, &in);
	assert_int_equal(in.rtc_present, 1);
	assert_int_equal(in.rtc_s, -1);
	ft_write(root, "sys/class/rtc/rtc0/since_epoch", "junk\n");
	hal_clock_read(c, &in);
	assert_int_equal(in.rtc_s, -1);

	/* it vanishes */
	ft_remove(root, "sys/class/rtc/rtc0");
	hal_clock_read(c, &in);
	assert_int_equal(in.rtc_present, 0);
	hal_clock_close(c);

	/* a named RTC */
	ft_write(root, "sys/class/rtc/rtc1/since_epoch", "1800000000\n");
	assert_int_equal(hal_clock_open("sysfs", root, "rtc0", &c, err, sizeof(err)), 0);
	hal_clock_read(c, &in);
	assert_int_equal(in.rtc_present, 0);
	hal_clock_close(c);
	assert_int_equal(hal_clock_open("sysfs", root, "rtc1", &c, err, sizeof(err)), 0);
	hal_clock_read(c, &in);
	assert_true(in.rtc_s == 1800000000LL);
	hal_clock_close(c);
	assert_int_equal(hal_clock_open("sysfs", root, "../x", &c, err, sizeof(err)), -EINVAL);
	assert_int_equal(hal_clock_open("ntp", root, NULL, &c, err, sizeof(err)), -ENOENT);
	assert_int_equal(hal_clock_open("none", root, NULL, &c, err, sizeof(err)), 0);
	hal_clock_read(c, &in);
	assert_int_equal(in.rtc_present, 0);
	hal_clock_close(c);
	tu_rmrf(root);
}

static void test_assess(void **state)
{
	(void)state;
	struct hal_clock_info in = {.rtc_present = 1, .rtc_s = 1800000030};
	int64_t drift;
	/* the state strings are track's own */
	const char *gps = track_clock_str(TRACK_CLOCK_GPS);
	const char *sys = track_clock_str(TRACK_CLOCK_SYSTEM);
	const char *uns = track_clock_str(TRACK_CLOCK_UNSYNCED);
	assert_string_equal(hal_clock_assess(&in, gps, 1800000000, &drift), "ok");
	assert_int_equal(drift, 30);
	assert_string_equal(hal_clock_assess(&in, sys, 1800000000, &drift), "ok");
	assert_string_equal(hal_clock_assess(&in, uns, 1800000000, &drift), "rtc-only");
	assert_string_equal(hal_clock_assess(&in, uns, 1800000100, &drift), "rtc-drift");
	assert_int_equal(drift, -70);
	in.rtc_s = -1;
	assert_string_equal(hal_clock_assess(&in, uns, 1800000000, &drift), "no-time");
	assert_int_equal(drift, 0);
	in.rtc_present = 0;
	assert_string_equal(hal_clock_assess(&in, uns, 1800000000, &drift), "no-time");
	assert_string_equal(hal_clock_assess(&in, gps, 1800000000, &drift), "ok");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sysfs),
	    cmocka_unit_test(test_assess),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

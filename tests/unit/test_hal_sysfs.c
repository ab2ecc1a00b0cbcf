/* hal/sysfs and hal/gpio's parser: bounded reads of untrusted attribute
 * files, the root (HAL_SYSFS_ROOT), device names, class lookup, no file
 * created by a write to a missing device. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hal/gpio.h"
#include "hal/sysfs.h"
#include "tests/lib/faketree.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_root_and_names(void **state)
{
	(void)state;
	char r[64];
	unsetenv("HAL_SYSFS_ROOT");
	assert_int_equal(hal_sysfs_root(NULL, r, sizeof(r)), 0);
	assert_string_equal(r, "");
	setenv("HAL_SYSFS_ROOT", "/tmp/x//", 1);
	assert_int_equal(hal_sysfs_root(NULL, r, sizeof(r)), 0);
	assert_string_equal(r, "/tmp/x");
	assert_int_equal(hal_sysfs_root("/other", r, sizeof(r)), 0);
	assert_string_equal(r, "/other");
	unsetenv("HAL_SYSFS_ROOT");
	char longroot[100];
	memset(longroot, 'a', sizeof(longroot) - 1);
	longroot[99] = 0;
	assert_int_equal(hal_sysfs_root(longroot, r, sizeof(r)), -ENAMETOOLONG);
	assert_true(hal_sysfs_name_ok("rtc0"));
	assert_true(hal_sysfs_name_ok("input:blue:status"));
	assert_false(hal_sysfs_name_ok(""));
	assert_false(hal_sysfs_name_ok(".."));
	assert_false(hal_sysfs_name_ok("a/b"));
	assert_false(hal_sysfs_name_ok("a b"));
	char chip[HAL_GPIO_CHIP_MAX];
	unsigned off;
	assert_int_equal(hal_gpio_parse("gpiochip0:17", chip, &off), 0);
	assert_string_equal(chip, "gpiochip0");
	assert_int_equal(off, 17);
	static const char *const bad[] = {"",          ":1",    "chip:",      "chip:x",
	                                  "chip:1024", "a/b:1", "chip:00001", "gpiochip0"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(hal_gpio_parse(bad[i], chip, &off), -EINVAL);
}

static void test_reads_and_writes(void **state)
{
	(void)state;
	char *root = tu_tmpdir("sysfs"), p[600], v[32];
	long long x;
	ft_write(root, "a", "42\n");
	snprintf(p, sizeof(p), "%s/a", root);
	assert_int_equal(hal_sysfs_read(p, v, sizeof(v)), 0);
	assert_string_equal(v, "42");
	assert_int_equal(hal_sysfs_read_int(p, &x), 0);
	assert_true(x == 42);
	ft_write(root, "a", "-7");
	assert_int_equal(hal_sysfs_read_int(p, &x), 0);
	assert_true(x == -7);
	static const char *const notint[] = {"", "4 2", "0x10", "+1", "1e3", "9999999999999999999"};
	for (size_t i = 0; i < sizeof(notint) / sizeof(notint[0]); i++) {
		ft_write(root, "a", notint[i]);
		assert_int_equal(hal_sysfs_read_int(p, &x), -EINVAL);
	}
	/* too long for the caller's buffer, or for any attribute */
	ft_write(root, "a", "0123456789abcdef0123456789abcdef0123");
	assert_int_equal(hal_sysfs_read(p, v, sizeof(v)), -EFBIG);
	char big[HAL_SYSFS_VALUE_MAX + 40];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	ft_write(root, "a", big);
	char out[HAL_SYSFS_VALUE_MAX + 40];
	assert_int_equal(hal_sysfs_read(p, out, sizeof(out)), -EFBIG);
	/* a NUL inside */
	FILE *f = fopen(p, "w");
	fwrite("1\0002", 1, 3, f);
	fclose(f);
	assert_int_equal(hal_sysfs_read(p, v, sizeof(v)), -EINVAL);
	/* writes go to existing attributes only */
	assert_int_equal(hal_sysfs_write(p, "1"), 0);
	assert_int_equal(hal_sysfs_read(p, v, sizeof(v)), 0);
	assert_string_equal(v, "1");
	snprintf(p, sizeof(p), "%s/missing", root);
	assert_int_equal(hal_sysfs_write(p, "1"), -ENOENT);
	assert_int_not_equal(access(p, F_OK), 0);
	assert_int_equal(hal_sysfs_read(p, v, sizeof(v)), -ENOENT);

	/* class lookup: named, first in sorted order, missing */
	char dev[600];
	assert_int_equal(hal_sysfs_class_dev(root, "leds", NULL, dev, sizeof(dev)), -ENODEV);
	ft_mkdir(root, "sys/class/leds/zz");
	ft_mkdir(root, "sys/class/leds/aa");
	assert_int_equal(hal_sysfs_class_dev(root, "leds", NULL, dev, sizeof(dev)), 0);
	assert_non_null(strstr(dev, "/sys/class/leds/aa"));
	assert_int_equal(hal_sysfs_class_dev(root, "leds", "zz", dev, sizeof(dev)), 0);
	assert_int_equal(hal_sysfs_class_dev(root, "leds", "yy", dev, sizeof(dev)), -ENODEV);
	assert_int_equal(hal_sysfs_class_dev(root, "leds", "../..", dev, sizeof(dev)), -EINVAL);
	tu_rmrf(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_root_and_names),
	    cmocka_unit_test(test_reads_and_writes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

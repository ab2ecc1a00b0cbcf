/* sync/backoff: full jitter under a doubling, capped ceiling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sync/backoff.h"

static void test_ceiling_doubles_to_cap(void **state)
{
	(void)state;
	struct backoff b;
	backoff_init(&b, 1000, 300000);
	int64_t want[] = {1000,  2000,   4000,   8000,   16000, 32000,
	                  64000, 128000, 256000, 300000, 300000};
	for (int i = 0; i < 11; i++) {
		assert_int_equal(backoff_ceiling(&b), want[i]);
		backoff_next(&b, 0);
	}
	for (int i = 0; i < 100; i++) /* no overflow however long it fails */
		backoff_next(&b, UINT32_MAX);
	assert_int_equal(backoff_ceiling(&b), 300000);
	backoff_reset(&b);
	assert_int_equal(backoff_ceiling(&b), 1000);
}

static void test_full_jitter_bounds(void **state)
{
	(void)state;
	struct backoff b;
	backoff_init(&b, 1000, 300000);
	assert_int_equal(backoff_next(&b, 0), 0); /* jitter reaches zero… */
	backoff_reset(&b);
	assert_int_equal(backoff_next(&b, UINT32_MAX), 1000); /* …and the ceiling */
	backoff_reset(&b);
	assert_int_equal(backoff_next(&b, UINT32_MAX / 2), 500);
	/* uniform enough: the mean of a sweep is half the ceiling */
	int64_t sum = 0;
	for (uint32_t k = 0; k < 1000; k++) {
		struct backoff c;
		backoff_init(&c, 1000, 300000);
		for (int i = 0; i < 5; i++)
			backoff_next(&c, 0);
		int64_t d = backoff_next(&c, (uint32_t)((uint64_t)k * UINT32_MAX / 999));
		assert_true(d >= 0 && d <= 32000);
		sum += d;
	}
	assert_true(sum / 1000 > 15000 && sum / 1000 < 17000);
}

static void test_bad_parameters_are_made_sane(void **state)
{
	(void)state;
	struct backoff b;
	backoff_init(&b, 0, -5);
	assert_int_equal(backoff_ceiling(&b), 1);
	assert_true(backoff_next(&b, UINT32_MAX) <= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ceiling_doubles_to_cap),
	    cmocka_unit_test(test_full_jitter_bounds),
	    cmocka_unit_test(test_bad_parameters_are_made_sane),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

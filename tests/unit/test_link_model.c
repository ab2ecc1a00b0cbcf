/* The link proxy's timing model: delay, rate, jitter without reordering,
 * one serialiser shared by the connections, the blackout shift. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/lib/link_model.h"

static void test_unlimited_and_delay(void **state)
{
	(void)state;
	struct link_model m;
	int64_t last = 0;
	link_model_init(&m, 1);
	assert_int_equal(link_model_schedule(&m, 1000, 1460, &last), 1000);
	assert_int_equal(link_model_tx_us(&m, 1000000), 0);
	link_model_set(&m, 60000, 0, 0);
	assert_int_equal(link_model_schedule(&m, 5000, 100, &last), 65000);
	assert_int_equal(last, 65000);
	link_model_set(&m, -5, -5, 0); /* clamped */
	assert_int_equal(m.one_way_us, 0);
	assert_int_equal(m.jitter_us, 0);
}

static void test_rate_converges(void **state)
{
	(void)state;
	struct link_model m;
	int64_t last = 0, rel = 0;
	link_model_init(&m, 1);
	link_model_set(&m, 0, 0, 1000);
	assert_int_equal(link_model_tx_us(&m, 125), 1000); /* 1000 bits at 1 Mbit/s: 1 ms */
	/* 1 MB handed over at once leaves over 8 s */
	for (size_t sent = 0; sent < 1000000; sent += 1000)
		rel = link_model_schedule(&m, 0, 1000, &last);
	assert_int_equal(rel, 8000000);
	/* an idle link starts again from now, not from its past */
	assert_int_equal(link_model_schedule(&m, 20000000, 125, &last), 20001000);
	/* a FIN takes no link time but leaves after what was queued */
	link_model_schedule(&m, 30000000, 1250, &last);
	assert_int_equal(link_model_schedule(&m, 30000000, 0, &last), 30010000);
	assert_int_equal(m.busy_until, 30010000);
}

static void test_shared_by_connections(void **state)
{
	(void)state;
	struct link_model m;
	int64_t a = 0, b = 0;
	link_model_init(&m, 1);
	link_model_set(&m, 10000, 0, 8000); /* 1 byte per µs */
	assert_int_equal(link_model_schedule(&m, 0, 1000, &a), 11000);
	assert_int_equal(link_model_schedule(&m, 0, 1000, &b), 12000); /* waits for a's */
	assert_int_equal(link_model_schedule(&m, 0, 1000, &a), 13000);
}

static void test_jitter_bounded_never_reorders(void **state)
{
	(void)state;
	struct link_model m;
	int64_t last = 0, prev = 0, lo = INT64_MAX, hi = 0, sum = 0;
	link_model_init(&m, 42);
	link_model_set(&m, 50000, 20000, 0);
	/* sparse chunks: each sees the full jitter */
	for (int i = 0; i < 2000; i++) {
		int64_t now = (int64_t)i * 1000000;
		int64_t d = link_model_schedule(&m, now, 100, &last) - now;
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
		sum += d;
	}
	assert_in_range(lo, 30000, 31000);
	assert_in_range(hi, 69000, 70000);
	assert_in_range(sum / 2000, 48500, 51500);
	/* dense chunks: never before the previous one */
	last = 0;
	for (int i = 0; i < 2000; i++) {
		int64_t r = link_model_schedule(&m, 3000000000LL + i * 100, 100, &last);
		assert_true(r >= prev);
		prev = r;
	}
	/* jitter larger than the delay: clamped at 0, never negative */
	link_model_set(&m, 5000, 20000, 0);
	last = 0;
	for (int i = 0; i < 500; i++) {
		int64_t now = 4000000000LL + (int64_t)i * 1000000;
		assert_true(link_model_schedule(&m, now, 1, &last) >= now);
	}
}

static void test_same_seed_same_jitter(void **state)
{
	(void)state;
	struct link_model a, b;
	int64_t la = 0, lb = 0;
	link_model_init(&a, 7);
	link_model_init(&b, 7);
	link_model_set(&a, 1000, 900, 0);
	link_model_set(&b, 1000, 900, 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(link_model_schedule(&a, i * 10000, 1, &la),
		                 link_model_schedule(&b, i * 10000, 1, &lb));
}

static void test_shift(void **state)
{
	(void)state;
	struct link_model m;
	int64_t last = 0;
	link_model_init(&m, 1);
	link_model_set(&m, 0, 0, 8000);
	link_model_schedule(&m, 0, 1000, &last);
	link_model_shift(&m, 5000);
	assert_int_equal(m.busy_until, 6000);
	assert_int_equal(link_model_schedule(&m, 0, 1000, &last), 7000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unlimited_and_delay),
	    cmocka_unit_test(test_rate_converges),
	    cmocka_unit_test(test_shared_by_connections),
	    cmocka_unit_test(test_jitter_bounded_never_reorders),
	    cmocka_unit_test(test_same_seed_same_jitter),
	    cmocka_unit_test(test_shift),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

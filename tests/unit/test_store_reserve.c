/* The disk reserve (agent/store_reserve.c): made, seen, given back, made
 * again; store_make_room gives it back and halves the trail. The whole
 * path on a really full disk is itest_chaos_disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/store.h"
#include "tests/lib/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int setup(void **state)
{
	*state = tu_tmpdir("reserve");
	return 0;
}

static int teardown(void **state)
{
	tu_rmrf(*state);
	return 0;
}

static void test_reserve_cycle(void **state)
{
	const char *dir = *state;
	char path[600];
	struct stat st;
	struct tu_store t;
	snprintf(path, sizeof(path), "%s/reserve", dir);
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	assert_false(store_reserve_present(t.s));
	assert_int_equal(store_reserve_ensure(t.s), 0);
	assert_true(store_reserve_present(t.s));
	/* allocated for real: blocks, not a hole */
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size == STORE_RESERVE_BYTES);
	assert_true((int64_t)st.st_blocks * 512 >= STORE_RESERVE_BYTES);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(store_reserve_ensure(t.s), 0); /* idempotent */

	/* a trail of 100 fixes in 4 chunks */
	for (int i = 0; i < 100; i++) {
		struct store_fix f = {.t_ms = 1800000000000LL + i * 1000LL,
		                      .lat_e7 = 137466000 + i * 90,
		                      .lon_e7 = 1005393000,
		                      .accuracy_dm = 50,
		                      .speed_cm_s = 1000,
		                      .heading_cdeg = 0,
		                      .mode = 3};
		assert_int_equal(store_pos_append(t.s, &f), 0);
		if (i % 25 == 24)
			assert_int_equal(store_pos_flush(t.s), 0);
	}
	int64_t before = 0, after = 0, dropped = -1;
	assert_int_equal(store_pos_count(t.s, &before), 0);
	assert_int_equal(before, 100);
	assert_int_equal(store_make_room(t.s, &dropped), 1);
	assert_false(store_reserve_present(t.s));
	assert_int_not_equal(access(path, F_OK), 0);
	assert_int_equal(store_pos_count(t.s, &after), 0);
	assert_true(after <= before / 2);
	assert_int_equal(dropped, before - after);
	/* nothing left to give: the reserve is gone, the trail halves again */
	assert_int_equal(store_reserve_release(t.s), 0);
	/* space back: made again */
	assert_int_equal(store_reserve_ensure(t.s), 0);
	assert_true(store_reserve_present(t.s));
	tu_store_close(&t);
}

static void test_make_room_empty(void **state)
{
	const char *dir = *state;
	struct tu_store t;
	int64_t dropped = -1;
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	/* no reserve, no trail: nothing to free, said so */
	assert_int_equal(store_make_room(t.s, &dropped), 0);
	assert_int_equal(dropped, 0);
	tu_store_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_reserve_cycle, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_make_room_empty, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

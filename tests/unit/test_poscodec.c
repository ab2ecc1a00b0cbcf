#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/poscodec.h"
#include "agent/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct store_fix fix(int i)
{
	struct store_fix f = {.t_ms = 1800000000000LL + i * 1000LL,
	                      .lat_e7 = 137563000 + i * 90 + (i * 7919) % 23 - 11,
	                      .lon_e7 = 1005018000 - i * 70 + (i * 104729) % 31 - 15,
	                      .accuracy_dm = 40 + i % 9,
	                      .speed_cm_s = 800 + (i % 13) * 10,
	                      .heading_cdeg = (9000 + i * 17) % 36000,
	                      .mode = (uint8_t)(i % 17 ? 3 : 2)};
	return f;
}

/* Field by field: the struct has padding that memcmp would compare. */
static void assert_fixes_equal(const struct store_fix *a, const struct store_fix *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(a[i].t_ms, b[i].t_ms);
		assert_int_equal(a[i].lat_e7, b[i].lat_e7);
		assert_int_equal(a[i].lon_e7, b[i].lon_e7);
		assert_int_equal(a[i].accuracy_dm, b[i].accuracy_dm);
		assert_int_equal(a[i].speed_cm_s, b[i].speed_cm_s);
		assert_int_equal(a[i].heading_cdeg, b[i].heading_cdeg);
		assert_int_equal(a[i].mode, b[i].mode);
	}
}

static void test_round_trip_compact(void **state)
{
	(void)state;
	enum { N = 512 };
	struct store_fix in[N], out[N];
	for (int i = 0; i < N; i++)
		in[i] = fix(i);
	in[5].speed_cm_s = -1;
	in[6].heading_cdeg = -1;
	in[7].accuracy_dm = -1;
	size_t cap = POSCODEC_BOUND(N);
	unsigned char *buf = malloc(cap);
	size_t len = poscodec_encode(in, N, buf, cap);
	assert_true(len > 0);
	assert_true(len < (size_t)N * 12); /* a moving car: about ten bytes a fix */
	assert_int_equal(poscodec_decode(buf, len, out, N), N);
	assert_fixes_equal(in, out, sizeof(in) / sizeof(in[0]));
	/* too small an output */
	assert_int_equal(poscodec_encode(in, N, buf, 10), 0);
	/* decoding refuses: truncation, trailing bytes, wrong version, too many */
	assert_int_equal(poscodec_decode(buf, len - 1, out, N), -EINVAL);
	assert_int_equal(poscodec_decode(buf, len, out, N - 1), -EINVAL);
	buf[0] = 9;
	assert_int_equal(poscodec_decode(buf, len, out, N), -EINVAL);
	free(buf);
}

static void test_extremes_and_validation(void **state)
{
	(void)state;
	struct store_fix in[2] = {
	    {.t_ms = 1,
	     .lat_e7 = -900000000,
	     .lon_e7 = -1800000000,
	     .accuracy_dm = -1,
	     .speed_cm_s = -1,
	     .heading_cdeg = -1,
	     .mode = 2},
	    {.t_ms = INT64_C(253402300799999),
	     .lat_e7 = 900000000,
	     .lon_e7 = 1800000000,
	     .accuracy_dm = INT32_MAX,
	     .speed_cm_s = INT32_MAX,
	     .heading_cdeg = 35999,
	     .mode = 3},
	};
	struct store_fix out[2];
	unsigned char buf[POSCODEC_BOUND(2)];
	size_t len = poscodec_encode(in, 2, buf, sizeof(buf));
	assert_int_equal(poscodec_decode(buf, len, out, 2), 2);
	assert_fixes_equal(in, out, sizeof(in) / sizeof(in[0]));
	struct store_fix bad = in[0];
	bad.mode = 1;
	assert_int_equal(poscodec_fix_valid(&bad), -EINVAL);
	bad = in[0];
	bad.heading_cdeg = 36000;
	assert_int_equal(poscodec_fix_valid(&bad), -EINVAL);
	bad = in[0];
	bad.lat_e7 = 900000001;
	assert_int_equal(poscodec_fix_valid(&bad), -EINVAL);
	bad = in[0];
	bad.t_ms = 0;
	assert_int_equal(poscodec_fix_valid(&bad), -EINVAL);
}

static void test_huge_delta_refused(void **state)
{
	(void)state;
	/* Found by the fuzzer: a delta of INT64_MAX after a positive latitude
	 * overflowed the sum. Two fixes: lat 100, then lat + INT64_MAX. */
	static const unsigned char chunk[] = {
	    1,    2,                                                    /* version, count */
	    0x05, 0xc8, 0x01, 0,    0,    0,    0,                      /* t=2 3D, lat=100 */
	    0xd1, 0x0f,                                                 /* dt=1000, 3D */
	    0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, /* lat + INT64_MAX */
	    0,    0,    0,    0,
	};
	struct store_fix out[2];
	assert_int_equal(poscodec_decode(chunk, sizeof(chunk), out, 2), -EINVAL);
}

static void test_garbage_never_crashes(void **state)
{
	(void)state;
	/* A database is outside input: random bytes decode to an error or to
	 * fixes that are all valid and in order, never to a crash. */
	struct store_fix out[64];
	unsigned char buf[256];
	srand(42);
	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(rand() % (int)sizeof(buf));
		for (size_t i = 0; i < len; i++)
			buf[i] = (unsigned char)rand();
		if (len > 1) {
			buf[0] = POSCODEC_VERSION;
			buf[1] = (unsigned char)(rand() % 8);
		}
		long n = poscodec_decode(buf, len, out, 64);
		assert_true(n == -EINVAL || (n >= 0 && n <= 64));
		for (long i = 0; i < n; i++) {
			assert_int_equal(poscodec_fix_valid(&out[i]), 0);
			if (i)
				assert_true(out[i].t_ms > out[i - 1].t_ms);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_compact),
	    cmocka_unit_test(test_extremes_and_validation),
	    cmocka_unit_test(test_huge_delta_refused),
	    cmocka_unit_test(test_garbage_never_crashes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

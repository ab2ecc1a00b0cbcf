/* hal/gps: the plausibility filter (NaN, ranges, mode, dates, time jumps,
 * speed), the registry and the none backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/loop.h"
#include "agent/poscodec.h"
#include "agent/store.h"
#include "hal/gps.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define T0 1780000000.0 /* 2026-05-28 */

/* Victory Monument, stationary. */
static struct hal_gps_raw good(double t)
{
	struct hal_gps_raw r = {.mode = 3,
	                        .time_s = t,
	                        .lat = 13.7649,
	                        .lon = 100.5383,
	                        .eph = 5.2,
	                        .epx = NAN,
	                        .epy = NAN,
	                        .speed = 0.3,
	                        .track = 90.0};
	return r;
}

static enum hal_gps_reject check(struct hal_gps_filter *f, struct hal_gps_raw r, int64_t mono,
                                 struct hal_gps_fix *out)
{
	return hal_gps_filter_check(f, &r, mono, mono + 1, out);
}

/* An anchored filter: two agreeing fixes at T0, T0+1 (mono 1000, 2000). */
static void anchored(struct hal_gps_filter *f)
{
	struct hal_gps_fix out;
	hal_gps_filter_reset(f);
	assert_int_equal(check(f, good(T0), 1000, &out), HAL_GPS_REJECT_UNCONFIRMED);
	assert_int_equal(check(f, good(T0 + 1), 2000, &out), HAL_GPS_OK);
}

static void test_good_fix_converted(void **state)
{
	(void)state;
	struct hal_gps_filter f;
	struct hal_gps_fix out;
	anchored(&f);
	struct hal_gps_raw r = good(T0 + 2.25);
	r.speed = 12.345;
	r.track = 359.996;
	r.mode = 2;
	assert_int_equal(check(&f, r, 3000, &out), HAL_GPS_OK);
	assert_int_equal(out.t_ms, (int64_t)(T0 * 1000) + 2250);
	assert_int_equal(out.lat_e7, 137649000);
	assert_int_equal(out.lon_e7, 1005383000);
	assert_int_equal(out.accuracy_dm, 52);
	assert_int_equal(out.speed_cm_s, 1235);
	assert_int_equal(out.heading_cdeg, 0); /* 36000 wraps */
	assert_int_equal(out.mode, 2);
	assert_int_equal(out.mono_ms, 3000);
	assert_int_equal(out.sys_ms, 3001);
	struct store_fix sf = {out.t_ms,       out.lat_e7,       out.lon_e7, out.accuracy_dm,
	                       out.speed_cm_s, out.heading_cdeg, out.mode};
	assert_int_equal(poscodec_fix_valid(&sf), 0);
	/* epx/epy when eph is absent; absent optional fields become -1 */
	r = good(T0 + 3);
	r.eph = NAN;
	r.epx = 3.0;
	r.epy = 7.5;
	r.speed = NAN;
	r.track = NAN;
	assert_int_equal(check(&f, r, 4000, &out), HAL_GPS_OK);
	assert_int_equal(out.accuracy_dm, 75);
	assert_int_equal(out.speed_cm_s, -1);
	assert_int_equal(out.heading_cdeg, -1);
	r = good(T0 + 4);
	r.eph = NAN;
	r.epx = NAN;
	r.track = -5;
	assert_int_equal(check(&f, r, 5000, &out), HAL_GPS_OK);
	assert_int_equal(out.accuracy_dm, -1);
	assert_int_equal(out.heading_cdeg, -1);
}

static void test_bad_fields_refused(void **state)
{
	(void)state;
	struct hal_gps_filter f;
	struct hal_gps_fix out;
	memset(&out, 0x5a, sizeof(out));
	struct hal_gps_fix before = out;
	anchored(&f);
	struct hal_gps_raw r;
	int64_t mono = 3000;
	double t = T0 + 2;
#define EXPECT(field, value, why)                                                                  \
	do {                                                                                       \
		r = good(t);                                                                       \
		r.field = value;                                                                   \
		assert_int_equal(check(&f, r, mono, &out), why);                                   \
		assert_memory_equal(&out, &before, sizeof(out));                                   \
	} while (0)
	EXPECT(mode, 1, HAL_GPS_REJECT_MODE);
	EXPECT(mode, 0, HAL_GPS_REJECT_MODE);
	EXPECT(mode, 4, HAL_GPS_REJECT_MODE);
	EXPECT(lat, NAN, HAL_GPS_REJECT_NAN);
	EXPECT(lon, INFINITY, HAL_GPS_REJECT_NAN);
	EXPECT(time_s, NAN, HAL_GPS_REJECT_NAN);
	EXPECT(time_s, 0, HAL_GPS_REJECT_NAN);
	EXPECT(lat, 91.0, HAL_GPS_REJECT_RANGE);
	EXPECT(lat, -90.0001, HAL_GPS_REJECT_RANGE);
	EXPECT(lon, 180.5, HAL_GPS_REJECT_RANGE);
	EXPECT(lon, -200.0, HAL_GPS_REJECT_RANGE);
	EXPECT(time_s, 315964800.0, HAL_GPS_REJECT_TIME);  /* 1980: GPS epoch */
	EXPECT(time_s, 1000000000.0, HAL_GPS_REJECT_TIME); /* 2001: a week rollover */
	EXPECT(time_s, 4200000000.0, HAL_GPS_REJECT_TIME);
	EXPECT(speed, 150.0, HAL_GPS_REJECT_SPEED);
	r = good(t);
	r.lat = 0;
	r.lon = 0;
	assert_int_equal(check(&f, r, mono, &out), HAL_GPS_REJECT_RANGE);
#undef EXPECT
	/* the anchor is intact: the next good fix passes */
	assert_int_equal(check(&f, good(t), mono, &out), HAL_GPS_OK);
}

static void test_time_jumps(void **state)
{
	(void)state;
	struct hal_gps_filter f;
	struct hal_gps_fix out;
	anchored(&f); /* T0+1 at mono 2000 */
	/* duplicate and backwards */
	assert_int_equal(check(&f, good(T0 + 1), 3000, &out), HAL_GPS_REJECT_TIME_JUMP);
	assert_int_equal(check(&f, good(T0 - 60), 3000, &out), HAL_GPS_REJECT_TIME_JUMP);
	/* a leap ahead far beyond the monotonic time elapsed: a year, an hour */
	assert_int_equal(check(&f, good(T0 + 365 * 86400.0), 3000, &out), HAL_GPS_REJECT_TIME_JUMP);
	assert_int_equal(check(&f, good(T0 + 3600), 3000, &out), HAL_GPS_REJECT_TIME_JUMP);
	/* a real gap: 10 minutes of receiver time over 10 minutes of monotonic */
	assert_int_equal(check(&f, good(T0 + 601), 602000, &out), HAL_GPS_OK);
	/* faster replay (gpsfake): 1 s of receiver time per 0.3 s is fine */
	assert_int_equal(check(&f, good(T0 + 602), 602300, &out), HAL_GPS_OK);
}

static void test_speed_jumps(void **state)
{
	(void)state;
	struct hal_gps_filter f;
	struct hal_gps_fix out;
	anchored(&f);
	/* 30 m in 1 s: fine (noise allowance and a car) */
	struct hal_gps_raw r = good(T0 + 2);
	r.lat += 30.0 / 111320.0;
	assert_int_equal(check(&f, r, 3000, &out), HAL_GPS_OK);
	/* 55 km in 1 s: refused, reported speed small */
	r = good(T0 + 3);
	r.lat += 0.5;
	assert_int_equal(check(&f, r, 4000, &out), HAL_GPS_REJECT_SPEED);
	/* 1 km in 10 s (100 m/s + allowance) is the limit; 2 km is not */
	r = good(T0 + 12);
	r.lat += 30.0 / 111320.0 + 2000.0 / 111320.0;
	assert_int_equal(check(&f, r, 13000, &out), HAL_GPS_REJECT_SPEED);
	r = good(T0 + 12);
	r.lat += 30.0 / 111320.0 + 900.0 / 111320.0;
	assert_int_equal(check(&f, r, 13000, &out), HAL_GPS_OK);
}

static void test_first_fix_needs_confirmation(void **state)
{
	(void)state;
	struct hal_gps_filter f;
	struct hal_gps_fix out;
	hal_gps_filter_reset(&f);
	/* a lone bogus first fix (five years ahead) never gets through */
	assert_int_equal(check(&f, good(T0 + 5 * 365 * 86400.0), 1000, &out),
	                 HAL_GPS_REJECT_UNCONFIRMED);
	assert_int_equal(check(&f, good(T0), 2000, &out), HAL_GPS_REJECT_TIME_JUMP);
	assert_int_equal(check(&f, good(T0 + 1), 3000, &out), HAL_GPS_OK);
	assert_int_equal(out.t_ms, (int64_t)(T0 * 1000) + 1000);
}

static void test_reanchor(void **state)
{
	(void)state;
	struct hal_gps_filter f;
	struct hal_gps_fix out;
	anchored(&f);
	/* The receiver's clock really moved back an hour (the anchor was
	 * wrong): after HAL_GPS_REANCHOR refusals the new timeline wins. */
	int64_t mono = 3000;
	double t = T0 - 3600;
	int refused = 0;
	enum hal_gps_reject r;
	while ((r = check(&f, good(t), mono, &out)) != HAL_GPS_OK) {
		refused++;
		assert_true(refused <= HAL_GPS_REANCHOR + 1);
		t += 1;
		mono += 1000;
	}
	assert_int_equal(refused, HAL_GPS_REANCHOR);
	assert_int_equal(out.t_ms, (int64_t)(t * 1000));
	/* and a flapping, alternating bogus time never re-anchors */
	anchored(&f);
	t = T0 + 2;
	mono = 3000;
	for (int i = 0; i < 40; i++) {
		struct hal_gps_raw g = good(i % 2 ? t + 86400.0 * 400 : t);
		r = check(&f, g, mono, &out);
		if (i % 2)
			assert_int_not_equal(r, HAL_GPS_OK);
		else
			assert_int_equal(r, HAL_GPS_OK);
		t += 1;
		mono += 1000;
	}
}

/* A receiver that leaps an hour ahead for a long time, while the system
 * clock agrees with the anchor: refused throughout (never re-anchored),
 * and the true timeline goes on being accepted afterwards. With an
 * implausible system clock the streak rule alone decides (test_reanchor). */
static void test_leap_refused_when_system_clock_agrees(void **state)
{
	(void)state;
	struct hal_gps_filter f;
	struct hal_gps_fix out;
	int64_t sys0 = (int64_t)(T0 * 1000) - 2000; /* sys at mono 0 */
	hal_gps_filter_reset(&f);
	struct hal_gps_raw r = good(T0);
	assert_int_equal(hal_gps_filter_check(&f, &r, 2000, sys0 + 2000, &out),
	                 HAL_GPS_REJECT_UNCONFIRMED);
	r = good(T0 + 1);
	assert_int_equal(hal_gps_filter_check(&f, &r, 3000, sys0 + 3000, &out), HAL_GPS_OK);
	int64_t mono = 4000;
	for (int i = 0; i < 4 * HAL_GPS_REANCHOR; i++, mono += 1000) {
		r = good(T0 + 3600 + 2 + i);
		assert_int_equal(hal_gps_filter_check(&f, &r, mono, sys0 + mono, &out),
		                 HAL_GPS_REJECT_TIME_JUMP);
	}
	r = good(T0 + (double)(mono - 2000) / 1000.0);
	assert_int_equal(hal_gps_filter_check(&f, &r, mono, sys0 + mono, &out), HAL_GPS_OK);
	assert_int_equal(out.t_ms, (int64_t)(T0 * 1000) + mono - 2000);
	/* the system clock an hour ahead too (it was the anchor that was off):
	 * the streak re-anchors as before */
	anchored(&f);
	mono = 3000;
	int refused = 0;
	for (;;) {
		r = good(T0 + 3600 + 2 + refused);
		mono += 1000;
		if (hal_gps_filter_check(&f, &r, mono, sys0 + 3600 * 1000 + mono, &out) ==
		    HAL_GPS_OK)
			break;
		refused++;
		assert_true(refused <= HAL_GPS_REANCHOR + 1);
	}
	assert_int_equal(refused, HAL_GPS_REANCHOR);
}

static void test_distance(void **state)
{
	(void)state;
	/* Victory Monument to Siam: about 2.2 km */
	double d = hal_gps_distance_m(137649000, 1005383000, 137456000, 1005341000);
	assert_true(d > 2100 && d < 2300);
	assert_true(hal_gps_distance_m(0, 0, 0, 0) == 0);
	/* one degree of longitude on the equator: 111.2 km */
	d = hal_gps_distance_m(0, 0, 0, 10000000);
	assert_true(fabs(d - 111195) < 10);
	/* antipodes: half the circumference */
	d = hal_gps_distance_m(0, 0, 0, 1800000000);
	assert_true(fabs(d - M_PI * 6371008.8) < 1);
}

static void test_registry_and_none(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_open(&l), 0);
	struct hal_gps_params p = {.loop = l, .host = "127.0.0.1", .port = 2947};
	struct hal_gps *g;
	char err[128];
	assert_int_equal(hal_gps_open("garmin-magic", &p, &g, err, sizeof(err)), -ENOENT);
	assert_null(g);
	assert_non_null(strstr(err, "garmin-magic"));
	assert_int_equal(hal_gps_open("none", &p, &g, err, sizeof(err)), 0);
	assert_string_equal(hal_gps_name(g), "none");
	struct hal_gps_stats st;
	memset(&st, 0xff, sizeof(st));
	hal_gps_stats(g, &st);
	assert_int_equal(st.fixes, 0);
	assert_int_equal(st.connected, 0);
	hal_gps_close(g);
	hal_gps_close(NULL);
	/* gpsd: bad parameters refused at open */
	p.port = 0;
	assert_int_equal(hal_gps_open("gpsd", &p, &g, err, sizeof(err)), -EINVAL);
	p.port = 2947;
	p.host = "";
	assert_int_equal(hal_gps_open("gpsd", &p, &g, err, sizeof(err)), -EINVAL);
	loop_close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_fix_converted),
	    cmocka_unit_test(test_bad_fields_refused),
	    cmocka_unit_test(test_time_jumps),
	    cmocka_unit_test(test_speed_jumps),
	    cmocka_unit_test(test_first_fix_needs_confirmation),
	    cmocka_unit_test(test_reanchor),
	    cmocka_unit_test(test_leap_refused_when_system_clock_agrees),
	    cmocka_unit_test(test_distance),
	    cmocka_unit_test(test_registry_and_none),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

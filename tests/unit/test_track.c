/* agent/track: the recording policy, distance and bearing, the clock-state
 * decision and event time that never goes backwards — all with injected
 * fixes and times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/store.h"
#include "agent/track.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define T0           INT64_C(1780000000000)
#define M_PER_E7_LAT (111320.0 / 1e7)

/* A fix t seconds after T0, north_m metres north of Victory Monument. */
static struct hal_gps_fix fix_at(int t, double north_m)
{
	struct hal_gps_fix f = {.t_ms = T0 + t * INT64_C(1000),
	                        .sys_ms = T0 + t * INT64_C(1000),
	                        .mono_ms = 1000 + t * INT64_C(1000),
	                        .lat_e7 = 137649000,
	                        .lon_e7 = 1005383000,
	                        .accuracy_dm = 50,
	                        .speed_cm_s = 0,
	                        .heading_cdeg = -1,
	                        .mode = 3};
	f.lat_e7 += (int32_t)lround(north_m / M_PER_E7_LAT);
	return f;
}

static struct track *open_track(int interval, int dist, int active_interval)
{
	struct track_params p = {interval, dist, active_interval};
	struct track *t;
	assert_int_equal(track_open(&p, &t), 0);
	return t;
}

static void test_params(void **state)
{
	(void)state;
	struct track *t;
	struct track_params bad[] = {{0, 10, 1}, {5, -1, 1}, {5, 10, 0}};
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(track_open(&bad[i], &t), -EINVAL);
		assert_null(t);
	}
	track_close(NULL);
}

static void test_interval_and_distance(void **state)
{
	(void)state;
	struct track *t = open_track(5, 10, 1);
	struct store_fix sf;
	struct hal_gps_fix f = fix_at(0, 0);
	/* the first fix is always recorded, converted for the store */
	assert_int_equal(track_offer(t, &f, &sf), 1);
	assert_int_equal(sf.t_ms, f.t_ms);
	assert_int_equal(sf.lat_e7, f.lat_e7);
	assert_int_equal(sf.mode, 3);
	/* moving 20 m a second: not before interval_s */
	for (int s = 1; s < 5; s++) {
		f = fix_at(s, 20.0 * s);
		assert_int_equal(track_offer(t, &f, &sf), 0);
	}
	f = fix_at(5, 100);
	assert_int_equal(track_offer(t, &f, &sf), 1);
	/* standing still (noise under min_distance): nothing, however long */
	for (int s = 6; s < 60; s++) {
		f = fix_at(s, 100 + (s % 3));
		assert_int_equal(track_offer(t, &f, NULL), 0);
	}
	/* moves again: recorded at once (the interval has long passed) */
	f = fix_at(60, 112);
	assert_int_equal(track_offer(t, &f, NULL), 1);
	assert_int_equal(track_offered(t), 61);
	assert_int_equal(track_recorded(t), 3);
	track_close(t);
}

static void test_active_interval(void **state)
{
	(void)state;
	struct track *t = open_track(5, 10, 1);
	struct hal_gps_fix f = fix_at(0, 0);
	assert_int_equal(track_offer(t, &f, NULL), 1);
	assert_false(track_active(t));
	track_set_active(t, true);
	assert_true(track_active(t));
	int rec = 0;
	for (int s = 1; s <= 10; s++) {
		f = fix_at(s, 15.0 * s); /* 54 km/h */
		rec += track_offer(t, &f, NULL);
	}
	assert_int_equal(rec, 10);
	/* still needs min_distance while active */
	f = fix_at(11, 155);
	assert_int_equal(track_offer(t, &f, NULL), 0);
	track_set_active(t, false);
	rec = 0;
	for (int s = 12; s <= 31; s++) {
		f = fix_at(s, 15.0 * s);
		rec += track_offer(t, &f, NULL);
	}
	assert_int_equal(rec, 4); /* every 5 s */
	track_close(t);
}

static void test_gap_and_order(void **state)
{
	(void)state;
	struct track *t = open_track(30, 50, 1);
	struct hal_gps_fix f = fix_at(0, 0);
	assert_int_equal(track_offer(t, &f, NULL), 1);
	f = fix_at(1, 5);
	assert_int_equal(track_offer(t, &f, NULL), 0);
	/* a tunnel: no fix for 12 s, then the first one is recorded although
	 * neither interval nor distance say so */
	f = fix_at(13, 6);
	assert_int_equal(track_offer(t, &f, NULL), 1);
	/* never backwards, never the same time twice */
	f = fix_at(13, 500);
	assert_int_equal(track_offer(t, &f, NULL), 0);
	f = fix_at(2, 900);
	assert_int_equal(track_offer(t, &f, NULL), 0);
	f = fix_at(-100, 900); /* even after a "gap" backwards */
	assert_int_equal(track_offer(t, &f, NULL), 0);
	/* min_distance 0: the interval alone */
	struct track *t0 = open_track(2, 0, 1);
	int rec = 0;
	for (int s = 0; s < 10; s++) {
		f = fix_at(s, 0);
		rec += track_offer(t0, &f, NULL);
	}
	assert_int_equal(rec, 5);
	track_close(t0);
	track_close(t);
}

static void test_last_fix_and_bearing(void **state)
{
	(void)state;
	struct track *t = open_track(5, 10, 1);
	struct hal_gps_fix f, got;
	double d;
	int b;
	assert_int_equal(track_last_fix(t, &got), -ENOENT);
	assert_int_equal(track_to(t, 137456000, 1005341000, &d, &b), -ENOENT);
	f = fix_at(0, 0);
	track_offer(t, &f, NULL);
	f = fix_at(1, 3); /* not recorded, still the last fix */
	assert_int_equal(track_offer(t, &f, NULL), 0);
	assert_int_equal(track_last_fix(t, &got), 0);
	assert_memory_equal(&got, &f, sizeof(f));
	/* Siam from Victory Monument: ~2.2 km, roughly south (~190 degrees) */
	assert_int_equal(track_to(t, 137456000, 1005341000, &d, &b), 0);
	assert_true(d > 2100 && d < 2300);
	assert_true(b >= 185 && b <= 195);
	assert_int_equal(track_to(t, 910000000, 0, &d, &b), -EINVAL);
	track_close(t);

	/* the compass points, on the equator */
	track_distance_bearing(0, 0, 10000000, 0, &d, &b);
	assert_int_equal(b, 0);
	track_distance_bearing(0, 0, 0, 10000000, &d, &b);
	assert_int_equal(b, 90);
	assert_true(fabs(d - 111195) < 10);
	track_distance_bearing(0, 0, -10000000, 0, &d, &b);
	assert_int_equal(b, 180);
	track_distance_bearing(0, 0, 0, -10000000, &d, &b);
	assert_int_equal(b, 270);
	/* just west of north rounds to 359 or 0, never 360 */
	track_distance_bearing(0, 0, 10000000, -1000, &d, &b);
	assert_true(b == 0 || b == 359);
	track_distance_bearing(0, 0, 10000000, -100000, &d, &b);
	assert_int_equal(b, 359);
	/* same point: distance 0, a bearing in range */
	track_distance_bearing(137649000, 1005383000, 137649000, 1005383000, &d, &b);
	assert_true(d == 0);
	assert_true(b >= 0 && b < 360);
	/* across the antimeridian: east, short way */
	track_distance_bearing(0, 1799000000, 0, -1799000000, &d, &b);
	assert_int_equal(b, 90);
	assert_true(d < 25000);
}

static void test_clock_decide(void **state)
{
	(void)state;
	/* GPS agrees within 1 s and is fresh: gps, whatever NTP says */
	assert_int_equal(track_clock_decide(true, T0, T0 + 900, 500, false), TRACK_CLOCK_GPS);
	assert_int_equal(track_clock_decide(true, T0 + 1000, T0, 500, true), TRACK_CLOCK_GPS);
	/* GPS disagrees: the system when NTP synced, else unsynced */
	assert_int_equal(track_clock_decide(true, T0, T0 + 1500, 500, true), TRACK_CLOCK_SYSTEM);
	assert_int_equal(track_clock_decide(true, T0, T0 - 86400000, 500, false),
	                 TRACK_CLOCK_UNSYNCED);
	/* a stale fix vouches for nothing */
	assert_int_equal(track_clock_decide(true, T0, T0, TRACK_CLOCK_FRESH_MS + 1, false),
	                 TRACK_CLOCK_UNSYNCED);
	assert_int_equal(track_clock_decide(true, T0, T0, TRACK_CLOCK_FRESH_MS + 1, true),
	                 TRACK_CLOCK_SYSTEM);
	/* no fix */
	assert_int_equal(track_clock_decide(false, 0, 0, 0, true), TRACK_CLOCK_SYSTEM);
	assert_int_equal(track_clock_decide(false, 0, 0, 0, false), TRACK_CLOCK_UNSYNCED);
	assert_string_equal(track_clock_str(TRACK_CLOCK_GPS), "gps");
	assert_string_equal(track_clock_str(TRACK_CLOCK_SYSTEM), "system");
	assert_string_equal(track_clock_str(TRACK_CLOCK_UNSYNCED), "unsynced");
	/* the real kernel answers something, and the wrapper runs */
	(void)track_ntp_synced();
	struct track *t = open_track(5, 10, 1);
	enum track_clock c = track_clock_state(t);
	assert_true(c == TRACK_CLOCK_SYSTEM || c == TRACK_CLOCK_UNSYNCED);
	track_close(t);
}

/* A receiver whose time leaps: its last fix stops vouching for the clock at
 * once (not after TRACK_CLOCK_FRESH_MS), and the next good fix restores it. */
static void test_clock_time_jump(void **state)
{
	(void)state;
	struct track *t = open_track(5, 10, 1);
	struct hal_gps_fix f = fix_at(100, 0);
	f.sys_ms = f.t_ms;
	track_offer(t, &f, NULL);
	assert_int_equal(track_clock_state_at(t, f.mono_ms + 500, false), TRACK_CLOCK_GPS);
	track_gps_time_suspect(t);
	assert_int_equal(track_clock_state_at(t, f.mono_ms + 600, false), TRACK_CLOCK_UNSYNCED);
	assert_int_equal(track_clock_state_at(t, f.mono_ms + 600, true), TRACK_CLOCK_SYSTEM);
	f = fix_at(101, 0);
	f.sys_ms = f.t_ms;
	track_offer(t, &f, NULL);
	assert_int_equal(track_clock_state_at(t, f.mono_ms + 500, false), TRACK_CLOCK_GPS);
	track_close(t);
}

static void test_event_time(void **state)
{
	(void)state;
	struct track *t = open_track(5, 10, 1);
	/* no fix: the system clock, but never backwards */
	assert_int_equal(track_event_now_at(t, T0, 1000, false), T0);
	assert_int_equal(track_event_now_at(t, T0 + 10, 1010, false), T0 + 10);
	assert_int_equal(track_event_now_at(t, T0 - 5000, 1020, true), T0 + 10);
	assert_int_equal(track_event_now_at(t, T0 + 20, 1030, true), T0 + 20);
	/* an unsynced system clock a day behind, a GPS fix: GPS time carried
	 * forward on the monotonic clock */
	struct hal_gps_fix f = fix_at(100, 0); /* t = T0+100 s, mono 101000 */
	f.sys_ms = f.t_ms - 86400000;
	track_offer(t, &f, NULL);
	assert_int_equal(track_event_now_at(t, f.sys_ms + 2000, 103000, false), f.t_ms + 2000);
	/* the clock gets set by NTP, a bit behind GPS: never backwards */
	assert_int_equal(track_event_now_at(t, f.t_ms + 1500, 103100, true), f.t_ms + 2000);
	assert_int_equal(track_event_now_at(t, f.t_ms + 2500, 103600, true), f.t_ms + 2500);
	/* the wrapper reads real clocks and is monotonic too */
	int64_t a = track_event_now(t), b = track_event_now(t);
	assert_true(b >= a);
	track_close(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_params),
	    cmocka_unit_test(test_interval_and_distance),
	    cmocka_unit_test(test_active_interval),
	    cmocka_unit_test(test_gap_and_order),
	    cmocka_unit_test(test_last_fix_and_bearing),
	    cmocka_unit_test(test_clock_decide),
	    cmocka_unit_test(test_clock_time_jump),
	    cmocka_unit_test(test_event_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

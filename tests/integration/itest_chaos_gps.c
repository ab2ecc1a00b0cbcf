/* Issue 5, hostile gpsd at the daemon level: the real essd reads a fake
 * gpsd (tests/lib/fakegpsd) that sends, at 10 Hz: good fixes along a
 * Bangkok street; then good fixes mixed with garbage lines, cut and
 * oversized lines, wrong types, absurd coordinates ((0,0), beyond the poles,
 * 1e308), dates before 2020 and after 2100, 500 m/s, a 110 km teleport,
 * time going back, no time; then a fix flapping between 3D and no fix;
 * then the receiver's time an hour ahead of the system clock; then good
 * fixes again. gpsd is also cut off and comes back.
 *
 * Checked: essd never dies; the clock state is "gps" while the receiver
 * agrees with the system clock and not while it is an hour off; the trail
 * (what reached the server, every upload answered 200, and what is left in
 * essd's store, read with the store's API once essd stopped) holds only
 * the good fixes: inside the street's box, times strictly increasing and
 * within the test's real time span, no point of the hostile ones.
 * ESS_CHAOS_GPS_ROUNDS repeats the hostile phase (long form). Prints:
 *   # gps: R rounds, F fixes sent, S stored, nonsense N, crashes C */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/store.h"
#include "tests/lib/essdenv.h"
#include "tests/lib/proc.h"
#include "tests/lib/fakegpsd.h"
#include "tests/lib/testutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/timex.h>
#include <sys/wait.h>
#include <unistd.h>

#define LAT0 13.7466
#define LON0 100.5393
/* every good fix lies in this box; every hostile one outside it */
#define BOX_LAT_MIN 13.70
#define BOX_LAT_MAX 13.80
#define BOX_LON_MIN 100.50
#define BOX_LON_MAX 100.60

enum phase { GOOD, HOSTILE, FLAP, AHEAD, CUT };

/* The script, shared with the child through fork (read-only there). */
struct script {
	enum phase phase[4096]; /* per tick */
	unsigned n;
};

static struct essenv env;
static pid_t gpsd_pid;
static struct script sc;

static int teardown(void **state)
{
	(void)state;
	fakegpsd_stop(&gpsd_pid);
	ee_close(&env);
	return 0;
}

/* A good fix: north along the street, 1 m per tick (10 m/s). */
static int good(char *line, size_t cap, unsigned tick, int64_t now, int64_t shift_ms)
{
	return fakegpsd_tpv(line, cap, 3, now + shift_ms, LAT0 + tick * 0.000009, LON0, 5.0, 10.0);
}

/* The hostile lines, each at least 50 km from the street (or unparseable). */
static int hostile(char *line, size_t cap, unsigned tick, int64_t now)
{
	switch (tick % 16) {
	case 0:
		return snprintf(line, cap, "garbage \x01\x02\xff\xfe not json at all");
	case 1: /* cut in the middle */
		return snprintf(line, cap,
		                "{\"class\":\"TPV\",\"device\":\"/dev/ttyFAKE\",\"mode\":3,"
		                "\"lat\":14.9");
	case 2: { /* 100 KB in one line */
		int n = snprintf(line, cap, "{\"class\":\"TPV\",\"device\":\"");
		size_t big = cap - 64 < 100000 ? cap - 64 : 100000;
		memset(line + n, 'A', big);
		return n + (int)big;
	}
	case 3:
		return fakegpsd_tpv(line, cap, 3, now, 91.5, 100.5, 5, 1);
	case 4:
		return fakegpsd_tpv(line, cap, 3, now, 13.7, 200.0, 5, 1);
	case 5:
		return fakegpsd_tpv(line, cap, 3, now, 0.0, 0.0, 5, 1);
	case 6:
		return fakegpsd_tpv(line, cap, 3, INT64_C(915148800000), 15.0, 101.0, 5,
		                    1); /* 1999 */
	case 7:
		return fakegpsd_tpv(line, cap, 3, INT64_C(5680281600000), 15.0, 101.0, 5,
		                    1); /* 2150 */
	case 8:
		return fakegpsd_tpv(line, cap, 3, now, 15.0, 101.0, 5, 500.0);
	case 9: /* a teleport: 110 km north */
		return fakegpsd_tpv(line, cap, 3, now, LAT0 + 1.0, LON0, 5, 10);
	case 10: /* no fix, but a position */
		return fakegpsd_tpv(line, cap, 1, now, 45.0, 45.0, 5, 1);
	case 11:
		return snprintf(
		    line, cap,
		    "{\"class\":\"TPV\",\"device\":\"/dev/ttyFAKE\",\"mode\":3,"
		    "\"time\":\"2026-01-01T00:00:00.000Z\",\"lat\":\"abc\",\"lon\":[1,2]}");
	case 12:
		return snprintf(line, cap,
		                "{\"class\":\"TPV\",\"device\":\"/dev/ttyFAKE\",\"mode\":3,"
		                "\"time\":\"not a time\",\"lat\":1e308,\"lon\":-1e308,\"eph\":-5}");
	case 13: /* an hour back */
		return fakegpsd_tpv(line, cap, 3, now - 3600000, 15.0, 101.0, 5, 1);
	case 14: /* no time */
		return fakegpsd_tpv(line, cap, 3, 0, 15.0, 101.0, 5, 1);
	case 15: /* one fix an hour ahead, in the street: a glitch, refused */
		return tick % 32 == 15
		           ? fakegpsd_tpv(line, cap, 3, now + 3600000, LAT0, LON0, 5, 1)
		           : snprintf(line, cap,
		                      "{\"class\":\"SKY\",\"satellites\":[{\"PRN\":\"x\"}]}");
	default:
		return 0;
	}
}

static int gen(void *arg, unsigned tick, int64_t now, char *line, size_t cap)
{
	const struct script *s = arg;
	enum phase p = tick < s->n ? s->phase[tick] : GOOD;
	switch (p) {
	case HOSTILE:
		/* good and hostile lines alternate, so that the filter has an
		 * anchor to hold the hostile ones against */
		return tick % 2 ? hostile(line, cap, tick / 2, now) : good(line, cap, tick, now, 0);
	case FLAP:
		return (tick / 5) % 2 ? fakegpsd_tpv(line, cap, 1, now, 0, 0, 0, 0)
		                      : good(line, cap, tick, now, 0);
	case AHEAD:
		return good(line, cap, tick, now, 3600000);
	case CUT:
		return -1;
	default:
		return good(line, cap, tick, now, 0);
	}
}

static void add(enum phase p, unsigned ticks)
{
	for (unsigned i = 0; i < ticks && sc.n < sizeof(sc.phase) / sizeof(sc.phase[0]); i++)
		sc.phase[sc.n++] = p;
}

static void status_str(const char *key, char *out, size_t cap)
{
	cJSON *a = ee_call(&env, "status", NULL, 5000);
	const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(a, "result"), key);
	snprintf(out, cap, "%s", cJSON_IsString(v) ? v->valuestring : "?");
	cJSON_Delete(a);
}

/* The whole trail: uploaded, then still stored. */
struct trail {
	struct store_fix *f;
	size_t n, cap, uploaded;
};

static int trail_add(void *arg, const struct store_fix *f, size_t n)
{
	struct trail *t = arg;
	if (t->n + n > t->cap) {
		t->cap = (t->n + n) * 2;
		t->f = realloc(t->f, t->cap * sizeof(*t->f));
		assert_non_null(t->f);
	}
	memcpy(t->f + t->n, f, n * sizeof(*f));
	t->n += n;
	return 0;
}

static int essd_alive(void)
{
	siginfo_t si = {0};
	return env.essd > 0 &&
	       !(waitid(P_PID, (id_t)env.essd, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	         si.si_pid == env.essd);
}

static void test_hostile_gpsd(void **state)
{
	(void)state;
	const char *rn = getenv("ESS_CHAOS_GPS_ROUNDS");
	int rounds = rn ? atoi(rn) : 1;
	if (rounds < 1 || rounds > 30)
		rounds = 1;
	/* ticks of 100 ms */
	add(GOOD, 50);
	for (int r = 0; r < rounds; r++)
		add(HOSTILE, 96); /* each hostile line three times */
	add(GOOD, 20);
	add(CUT, 3); /* gpsd drops the client: essd reconnects */
	add(GOOD, 20);
	add(FLAP, 40);
	add(GOOD, 20);
	int ahead_from = (int)sc.n;
	add(AHEAD, 80);
	int ahead_to = (int)sc.n;
	add(GOOD, 50);

	assert_int_equal(ee_open(&env, "chaosgps"), 0);
	if (ee_srv_start(&env) == -ENOENT)
		fail_msg("no reference server program in %s", env.build);
	assert_int_equal(ee_write_conf(&env, NULL), 0);
	assert_int_equal(ee_provision(&env), 0);
	/* every fix the filter lets through is recorded: 1 s, any distance */
	long code;
	cJSON_Delete(
	    ee_admin(&env, "PUT", "/admin/config",
	             "{\"position_interval_s\":1,\"position_min_distance_m\":0,"
	             "\"heartbeat_interval_s\":60,\"long_poll_s\":2,\"retention_hours\":72,"
	             "\"max_batch_events\":500}",
	             &code));
	assert_int_equal(code, 200);
	int64_t t_begin = tu_now_ms();
	/* the child's tick 0 is now: the script follows the wall clock */
	int64_t t0 = tu_now_ms();
	gpsd_pid = fakegpsd_start(env.gps_port, 100, gen, &sc);
	assert_true(gpsd_pid > 0);
	assert_int_equal(ee_essd_start(&env), 0);

	char clk[32];
	int gps_clock_good = 0, gps_clock_ahead = 0, ahead_samples = 0, crashes = 0;
	for (;;) {
		unsigned tick = (unsigned)((tu_now_ms() - t0) / 100);
		if (tick >= sc.n + 10)
			break;
		enum phase p = tick < sc.n ? sc.phase[tick] : GOOD;
		status_str("clock", clk, sizeof(clk));
		/* the last seconds of the first good phase: the receiver agrees */
		if (p == GOOD && tick > 40 && tick < 60 && !strcmp(clk, "gps"))
			gps_clock_good = 1;
		/* well inside the hour-ahead phase: it must not vouch */
		if (p == AHEAD && tick + 20 < sc.n && tick > 0 && sc.phase[tick - 20] == AHEAD) {
			ahead_samples++;
			if (!strcmp(clk, "gps"))
				gps_clock_ahead++;
		}
		if (!essd_alive()) {
			crashes++;
			break;
		}
		usleep(200000);
	}
	assert_int_equal(crashes, 0);
	status_str("clock", clk, sizeof(clk));
	print_message("# clock: gps while agreeing %s, gps while an hour off %d of %d samples, "
	              "at the end %s\n",
	              gps_clock_good ? "yes" : "no", gps_clock_ahead, ahead_samples, clk);

	/* The trail: what reached the server, and what is still in essd's store
	 * (essd stopped: its last flush), read through the store's API. */
	fakegpsd_stop(&gpsd_pid);
	assert_int_equal(tp_stop(&env.essd, SIGTERM, 5000), 0);
	int64_t t_end = tu_now_ms();
	struct trail tr = {0};
	char path[300];
	snprintf(path, sizeof(path), "/admin/devices/%s/positions", env.device_id);
	cJSON *doc = ee_admin(&env, "GET", path, NULL, &code), *fx;
	cJSON_ArrayForEach(fx, cJSON_GetObjectItem(doc, "fixes"))
	{
		struct store_fix f = {.t_ms = (int64_t)cJSON_GetArrayItem(fx, 0)->valuedouble,
		                      .lat_e7 = (int32_t)cJSON_GetArrayItem(fx, 1)->valuedouble,
		                      .lon_e7 = (int32_t)cJSON_GetArrayItem(fx, 2)->valuedouble};
		trail_add(&tr, &f, 1);
		tr.uploaded++;
	}
	cJSON_Delete(doc);
	assert_int_equal(ee_store_fixes(&env, trail_add, &tr), 0);
	/* The receiver an hour ahead for 8 s: more than the filter's five
	 * refusals, but the system clock (plausible, synchronised or not)
	 * agrees with the anchor, so none of them may be stored: stored, they
	 * would block every true fix for an hour. */
	struct timex tx = {0};
	int ntp_synced = adjtimex(&tx) >= 0 && !(tx.status & STA_UNSYNC);
	int64_t ahead_lo = t0 + ahead_from * 100 + 3600000 - 2000;
	int64_t ahead_hi = t0 + ahead_to * 100 + 3600000 + 2000;
	int from_ahead = 0, after_ahead = 0, nonsense = 0, back = 0, n = (int)tr.n;
	int64_t last_t = 0;
	for (size_t i = 0; i < tr.n; i++) {
		int64_t t = tr.f[i].t_ms;
		double lat = tr.f[i].lat_e7 / 1e7, lon = tr.f[i].lon_e7 / 1e7;
		int ahead = t >= ahead_lo && t <= ahead_hi;
		from_ahead += ahead;
		after_ahead += t > t0 + ahead_to * 100 + 1000 && t < t_end + 1000;
		int bad = lat < BOX_LAT_MIN || lat > BOX_LAT_MAX || lon < BOX_LON_MIN ||
		          lon > BOX_LON_MAX || t < t_begin - 1000 || t > t_end + 1000;
		if (t <= last_t)
			back++;
		last_t = t;
		if (bad && nonsense++ < 5)
			print_message("# nonsense stored: t %+.1f s from the start, %.5f %.5f\n",
			              (t - t_begin) / 1000.0, lat, lon);
	}
	free(tr.f);
	/* every upload was taken: essd never sent the server a fix it refused */
	cJSON *req = ee_admin(&env, "GET", "/admin/requests", NULL, &code), *it;
	int uploads = 0, refused = 0;
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(req, "requests"))
	{
		const char *p = cJSON_GetArrayItem(it, 2)->valuestring;
		int st = (int)cJSON_GetArrayItem(it, 3)->valuedouble;
		if (!strstr(p, "/positions"))
			continue;
		uploads++;
		if (st != 200)
			refused++;
	}
	cJSON_Delete(req);
	print_message("# system clock %s; %d fixes stamped an hour ahead stored, %d good fixes "
	              "recorded after that phase\n",
	              ntp_synced ? "NTP-synchronised" : "not synchronised", from_ahead,
	              after_ahead);
	print_message("# gps: %d rounds, %u lines sent, %d stored (%zu uploaded), nonsense %d, "
	              "time back %d, uploads %d (refused %d), crashes %d\n",
	              rounds, sc.n, n, tr.uploaded, nonsense, back, uploads, refused, crashes);
	assert_true(n >= 15); /* the good fixes were recorded (1 a second) */
	assert_int_equal(nonsense, 0);
	assert_int_equal(from_ahead, 0);
	assert_true(after_ahead > 0); /* the trail goes on after the leap */
	assert_int_equal(back, 0);
	assert_int_equal(refused, 0);
	assert_true(gps_clock_good);
	assert_true(ahead_samples > 0);
	assert_int_equal(gps_clock_ahead, 0);
	assert_string_equal(clk, "gps"); /* agreeing again at the end */
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_hostile_gpsd, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}

/* Dates after 2038-01-19T03:14:07Z work: the agent keeps times as int64
 * milliseconds and builds with -D_TIME_BITS=64, so a 32-bit board
 * (handheld-armhf) must not wrap anywhere — event times, the protocol's time
 * text, the position codec and body, the GPS filter, store retention and the
 * audit log. `make BOARD=handheld-armhf check` runs this under qemu-arm;
 * docs/boards.md says which library interfaces still carry a 32-bit time_t
 * on Debian 12 armhf and how each is kept out of the way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/poscodec.h"
#include "agent/store.h"
#include "hal/gps.h"
#include "sync/proto.h"
#include "tests/lib/testutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define T2038_LAST 2147483647000LL /* 2038-01-19T03:14:07.000Z, the last 32-bit second */
#define T2040      2214129600250LL /* 2040-02-29T12:00:00.250Z, a leap day */
#define T2099      4102444799999LL /* 2099-12-31T23:59:59.999Z */
#define H          3600000LL

static const unsigned char SIG[64] = {7, 7, 7};

static void test_time_t_is_64_bit(void **state)
{
	(void)state;
	/* What every libc call (gmtime_r, timegm, clock_gettime) gets. */
	assert_int_equal(sizeof(time_t), 8);
	struct timespec ts = {.tv_sec = (time_t)(T2040 / 1000)};
	assert_true(ts.tv_sec > INT32_MAX);
	struct tm tm;
	time_t t = (time_t)4294967296LL; /* 2106-02-07T06:28:16Z: past unsigned 32 bits too */
	assert_non_null(gmtime_r(&t, &tm));
	assert_int_equal(tm.tm_year + 1900, 2106);
	assert_int_equal(tm.tm_mon + 1, 2);
	assert_int_equal(tm.tm_mday, 7);
}

static void test_proto_time_text(void **state)
{
	(void)state;
	static const struct {
		int64_t ms;
		const char *text;
	} cases[] = {
	    {T2038_LAST, "2038-01-19T03:14:07.000Z"},
	    {T2038_LAST + 1000, "2038-01-19T03:14:08.000Z"},
	    {T2040, "2040-02-29T12:00:00.250Z"},
	    {T2099, "2099-12-31T23:59:59.999Z"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[32];
		int64_t back = 0;
		proto_time_format(cases[i].ms, out);
		assert_string_equal(out, cases[i].text);
		assert_int_equal(proto_time_parse(cases[i].text, &back), 0);
		assert_int_equal(back, cases[i].ms);
	}
}

static void test_event_times(void **state)
{
	(void)state;
	struct proto_event ev = {.seq = 1,
	                         .type = PROTO_EV_STATUS,
	                         .incident_version = 3,
	                         .status = PROTO_STATUS_ON_SCENE,
	                         .at_ms = T2040,
	                         .clock = PROTO_CLOCK_GPS};
	strcpy(ev.event_id, "3f8724c7-786f-4948-bee8-9c9b7b1abb83");
	strcpy(ev.incident_id, "BKK-2040");
	cJSON *j = proto_event_json(&ev);
	assert_non_null(j);
	char *txt = cJSON_PrintUnformatted(j);
	assert_non_null(strstr(txt, "\"at\":\"2040-02-29T12:00:00.250Z\""));
	struct proto_event back;
	char err[128];
	assert_int_equal(proto_event_parse(j, &back, err, sizeof(err)), 0);
	assert_int_equal(back.at_ms, T2040);
	free(txt);
	cJSON_Delete(j);
}

static struct store_fix fix_at(int64_t t_ms, int i)
{
	struct store_fix f = {.t_ms = t_ms,
	                      .lat_e7 = 137563000 + i * 90,
	                      .lon_e7 = 1005018000 - i * 70,
	                      .accuracy_dm = 40,
	                      .speed_cm_s = 900,
	                      .heading_cdeg = 9000,
	                      .mode = 3};
	return f;
}

/* A trail across the 32-bit rollover: codec and JSON body both keep it. */
static void test_positions_across_rollover(void **state)
{
	(void)state;
	enum { N = 20 };
	struct store_fix in[N], out[N];
	for (int i = 0; i < N; i++)
		in[i] = fix_at(T2038_LAST - 10 * 1000 + i * 1000, i);
	size_t cap = POSCODEC_BOUND(N);
	unsigned char *buf = malloc(cap);
	size_t len = poscodec_encode(in, N, buf, cap);
	assert_true(len > 0);
	assert_int_equal(poscodec_decode(buf, len, out, N), N);
	for (int i = 0; i < N; i++)
		assert_int_equal(out[i].t_ms, in[i].t_ms);
	free(buf);

	size_t jlen = 0;
	char *body = proto_fixes_json(in, N, &jlen);
	assert_non_null(body);
	cJSON *doc = cJSON_Parse(body);
	struct store_fix *parsed = NULL;
	size_t n = 0;
	char err[128];
	assert_int_equal(proto_fixes_parse(doc, &parsed, &n, err, sizeof(err)), 0);
	assert_int_equal(n, N);
	assert_int_equal(parsed[N - 1].t_ms, in[N - 1].t_ms);
	assert_true(parsed[N - 1].t_ms / 1000 > INT32_MAX);
	free(parsed);
	cJSON_Delete(doc);
	free(body);
}

/* The plausibility filter takes a receiver's 2040 time (HAL_GPS_MAX_TIME_S
 * is 2100) and keeps it to the millisecond. */
static void test_gps_filter_after_2038(void **state)
{
	(void)state;
	struct hal_gps_filter f;
	hal_gps_filter_reset(&f);
	struct hal_gps_fix out;
	struct hal_gps_raw r = {.mode = 3,
	                        .time_s = (double)T2040 / 1000.0,
	                        .lat = 13.7563,
	                        .lon = 100.5018,
	                        .eph = 5,
	                        .epx = NAN,
	                        .epy = NAN,
	                        .speed = 10,
	                        .track = 90};
	/* the first fix is only a candidate; the next one that agrees passes */
	assert_int_not_equal(hal_gps_filter_check(&f, &r, 1000, T2040, &out), HAL_GPS_OK);
	r.time_s += 1.0;
	r.lon += 0.00009;
	assert_int_equal(hal_gps_filter_check(&f, &r, 2000, T2040 + 1000, &out), HAL_GPS_OK);
	assert_int_equal(out.t_ms, T2040 + 1000);
}

struct audit_seen {
	int n;
	int64_t at[4];
};

static int on_audit(void *arg, int64_t at_ms, enum store_audit_action action, const char *subject,
                    const char *detail)
{
	(void)action, (void)subject, (void)detail;
	struct audit_seen *a = arg;
	if (a->n < 4)
		a->at[a->n] = at_ms;
	a->n++;
	return 0;
}

struct pos_seen {
	size_t n;
	int64_t last_t;
};

static int on_fixes(void *arg, const struct store_fix *fixes, size_t n)
{
	struct pos_seen *p = arg;
	p->n += n;
	if (n)
		p->last_t = fixes[n - 1].t_ms;
	return 0;
}

/* Retention counts from an end time after 2038, positions and audit keep
 * their times through the encrypted store. */
static void test_store_after_2038(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("y2038");
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	int64_t now = T2040;
	assert_int_equal(store_incident_put(t.s, "ended-2040", 1, STORE_DISPATCH_CLOSED,
	                                    now - 80 * H, "{}", 2, SIG),
	                 STORE_PUT_NEW);
	assert_int_equal(store_incident_put(t.s, "ended-later", 1, STORE_DISPATCH_CLOSED,
	                                    now - 2 * H, "{}", 2, SIG),
	                 STORE_PUT_NEW);
	/* 72 h retention: the first ended 80 h before "now" in 2040, the second 2 h */
	assert_int_equal(store_purge(t.s, now - 79 * H, 72 * H, 90 * 24 * H), 0);
	assert_int_equal(store_purge(t.s, now, 72 * H, 90 * 24 * H), 1);
	struct store_incident inc;
	assert_int_equal(store_incident_get(t.s, "ended-2040", &inc), -ENOENT);
	assert_int_equal(store_incident_get(t.s, "ended-later", &inc), 0);
	assert_int_equal(inc.ended_ms, now - 2 * H);
	store_incident_clear(&inc);

	assert_int_equal(store_audit_add(t.s, STORE_AUDIT_VIEWED, "ended-later", "", T2099), 0);
	struct audit_seen a = {0};
	assert_int_equal(store_audit_each(t.s, on_audit, &a), 0);
	int found = 0;
	for (int i = 0; i < a.n && i < 4; i++)
		found |= a.at[i] == T2099;
	assert_true(found);

	struct store_fix f = fix_at(T2099 - 999, 1);
	assert_int_equal(store_pos_append(t.s, &f), 0);
	assert_int_equal(store_pos_flush(t.s), 0);
	struct pos_seen p = {0};
	int64_t token = 0;
	assert_true(store_pos_peek(t.s, 10, on_fixes, &p, &token) >= 0);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.last_t, T2099 - 999);
	tu_store_close(&t);
	tu_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_time_t_is_64_bit),
	    cmocka_unit_test(test_proto_time_text),
	    cmocka_unit_test(test_event_times),
	    cmocka_unit_test(test_positions_across_rollover),
	    cmocka_unit_test(test_gps_filter_after_2038),
	    cmocka_unit_test(test_store_after_2038),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

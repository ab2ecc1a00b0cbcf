#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/store.h"
#include "sync/proto.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void test_b64_sha_time(void **state)
{
	(void)state;
	char out[64];
	unsigned char bin[64];
	size_t n;
	assert_int_equal(proto_b64_encode("hello", 5, out, sizeof(out)), 8);
	assert_string_equal(out, "aGVsbG8=");
	assert_int_equal(proto_b64_decode("aGVsbG8=", 8, bin, sizeof(bin), &n), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(bin, "hello", 5);
	assert_int_equal(proto_b64_decode("aGVsbG8", 7, bin, sizeof(bin), &n), -EINVAL);
	assert_int_equal(proto_b64_decode("aGVs bG8=", 9, bin, sizeof(bin), &n), -EINVAL);
	assert_int_equal(proto_b64_decode("aGVsbG8=x", 9, bin, sizeof(bin), &n), -EINVAL);
	assert_int_equal(proto_b64_encode("hello", 5, out, 8), 0);

	char hex[65];
	proto_sha256_hex("", 0, hex);
	assert_string_equal(hex,
	                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

	char t[32];
	proto_time_format(1795861862120LL, t);
	assert_string_equal(t, "2026-11-28T10:31:02.120Z");
	int64_t ms;
	assert_int_equal(proto_time_parse("2026-11-28T10:31:02.120Z", &ms), 0);
	assert_int_equal(ms, 1795861862120LL);
	assert_int_equal(proto_time_parse("2040-02-29T00:00:00.000Z", &ms), 0); /* after 2038 */
	assert_int_equal(ms, 2214086400000LL);
	assert_int_equal(proto_time_parse("2026-02-29T00:00:00.000Z", &ms), -EINVAL);
	assert_int_equal(proto_time_parse("2026-11-28T10:31:02Z", &ms), -EINVAL);
	assert_int_equal(proto_time_parse("2026-11-28T10:31:02.120+07:00", &ms), -EINVAL);
	assert_int_equal(proto_time_parse("2026-13-28T10:31:02.120Z", &ms), -EINVAL);
	assert_int_equal(proto_time_parse("2026-11-28 10:31:02.120Z", &ms), -EINVAL);
}

/* server_time comes from the server: absurd values are refused, never
 * converted (1e300 / 1000 does not fit an int64_t). */
static void test_server_clock_offset(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "{}",
	    "{\"server_time\":\"1795861862120\"}",
	    "{\"server_time\":0}",
	    "{\"server_time\":-5}",
	    "{\"server_time\":1e300}",
	    "{\"server_time\":253402300800000}",
	};
	int64_t off = 12345;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cJSON *d = cJSON_Parse(bad[i]);
		assert_non_null(d);
		assert_int_equal(proto_server_clock_offset(d, &off), -EINVAL);
		cJSON_Delete(d);
	}
	assert_int_equal(off, 12345); /* untouched on refusal */
	assert_int_equal(proto_server_clock_offset(NULL, &off), -EINVAL);
	char json[64];
	int64_t ahead_ms = ((int64_t)time(NULL) + 3600) * 1000;
	snprintf(json, sizeof(json), "{\"server_time\":%lld}", (long long)ahead_ms);
	cJSON *d = cJSON_Parse(json);
	assert_int_equal(proto_server_clock_offset(d, &off), 0);
	assert_true(off > 3500 && off <= 3600); /* a slow run may cross seconds */
	cJSON_Delete(d);
}

static void test_ids(void **state)
{
	(void)state;
	assert_true(proto_uuid_valid("3f8724c7-786f-4948-bee8-9c9b7b1abb83"));
	assert_false(proto_uuid_valid("3F8724C7-786F-4948-BEE8-9C9B7B1ABB83"));
	assert_false(proto_uuid_valid("3f8724c7-786f-3948-bee8-9c9b7b1abb83")); /* v3 */
	assert_false(proto_uuid_valid("3f8724c7-786f-4948-cee8-9c9b7b1abb83")); /* variant */
	assert_false(proto_uuid_valid("3f8724c7786f-4948-bee8-9c9b7b1abb83-"));
	assert_true(proto_id_valid("BKK-2026-0101"));
	assert_true(proto_id_valid("d-7f3a:x.y_z"));
	assert_false(proto_id_valid(""));
	assert_false(proto_id_valid("a/b"));
	assert_false(proto_id_valid("ก"));
	char long_id[200];
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[199] = 0;
	assert_false(proto_id_valid(long_id));
}

static void test_sign_string(void **state)
{
	(void)state;
	char out[512];
	size_t n = proto_sign_string("POST", "/v1/devices/d1/events", 1795861862, "{}", 2, out,
	                             sizeof(out));
	assert_true(n > 0);
	assert_string_equal(out,
	                    "ESS-V1\nPOST\n/v1/devices/d1/events\n1795861862\n"
	                    "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
	n = proto_sign_string("GET", "/v1/devices/d1/assignments?after=abc&wait=25", 1, NULL, 0,
	                      out, sizeof(out));
	assert_non_null(strstr(out, "\ne3b0c442"));
	assert_int_equal(proto_sign_string("GET", "/x", 1, NULL, 0, out, 20), 0);
}

static void test_envelopes(void **state)
{
	(void)state;
	unsigned char pk[32], sk[64], pk2[32], sk2[64], sig[64];
	crypto_sign_ed25519_keypair(pk, sk);
	crypto_sign_ed25519_keypair(pk2, sk2);
	const char doc[] = "{\"id\":\"x\",\"unknown_field\":[1,2]}";
	char *env = proto_envelope_make(doc, strlen(doc), sk);
	cJSON *j = proto_json_parse(env, strlen(env));
	unsigned char *payload;
	size_t len;
	assert_int_equal(proto_envelope_open(j, pk, &payload, &len, sig, NULL, 0), 0);
	assert_int_equal(len, strlen(doc));
	assert_string_equal((char *)payload, doc); /* exact bytes, unknown fields kept */
	free(payload);
	char err[128];
	assert_int_equal(proto_envelope_open(j, pk2, &payload, &len, sig, err, sizeof(err)),
	                 -EBADMSG);
	assert_null(payload);
	cJSON_Delete(j);
	free(env);
	/* a forged payload under a real signature */
	env = proto_envelope_make(doc, strlen(doc), sk);
	char *p = strstr(env, "\"payload\":\"") + 11;
	p[3] = p[3] == 'A' ? 'B' : 'A';
	j = proto_json_parse(env, strlen(env));
	assert_int_equal(proto_envelope_open(j, pk, &payload, &len, sig, NULL, 0), -EBADMSG);
	cJSON_Delete(j);
	free(env);
	static const char *const bad[] = {"[]", "{\"payload\":\"eA==\"}",
	                                  "{\"payload\":1,\"sig\":\"eA==\"}",
	                                  "{\"payload\":\"eA==\",\"sig\":\"eA==\"}"};
	for (int i = 0; i < 4; i++) {
		j = proto_json_parse(bad[i], strlen(bad[i]));
		assert_int_equal(proto_envelope_open(j, pk, &payload, &len, sig, NULL, 0), -EINVAL);
		cJSON_Delete(j);
	}
}

static const char good_doc[] =
    "{\"id\":\"BKK-1\",\"version\":3,\"category\":\"confinement\",\"priority\":1,"
    "\"silent\":true,\"state\":\"assigned\",\"reported_at\":\"2026-11-29T02:10:00.000Z\","
    "\"location\":{\"lat\":13.74,\"lon\":100.53,\"accuracy_m\":12},\"address\":\"ซอย 11\","
    "\"summary\":\"child locked in\",\"reporter\":{\"name\":\"A\",\"contact_ok\":false},"
    "\"subjects\":[{\"role\":\"victim\",\"age_group\":\"child\",\"notes\":\"n\"}],"
    "\"unit\":\"BKK-RESP-04\",\"dispatch_notes\":[{\"at\":\"2026-11-29T02:11:00.000Z\","
    "\"text\":\"t\"}],\"future_field\":{\"x\":1}}";

static void test_incident_parse(void **state)
{
	(void)state;
	struct proto_incident inc;
	char err[128];
	assert_int_equal(proto_incident_parse(good_doc, strlen(good_doc), &inc, err, sizeof(err)),
	                 0);
	assert_string_equal(inc.id, "BKK-1");
	assert_int_equal(inc.version, 3);
	assert_int_equal(inc.category, PROTO_CAT_CONFINEMENT);
	assert_int_equal(inc.priority, 1);
	assert_true(inc.silent);
	assert_int_equal(inc.state, PROTO_STATE_ASSIGNED);
	assert_string_equal(inc.unit, "BKK-RESP-04");
	/* each broken field is refused */
	static const struct {
		const char *from, *to;
	} breaks[] = {
	    {"\"version\":3", "\"version\":0"},
	    {"\"version\":3", "\"version\":3.5"},
	    {"\"category\":\"confinement\"", "\"category\":\"theft\""},
	    {"\"priority\":1", "\"priority\":4"},
	    {"\"silent\":true", "\"silent\":1"},
	    {"\"state\":\"assigned\"", "\"state\":\"open\""},
	    {"02:10:00.000Z", "02:10:00Z"},
	    {"\"lat\":13.74", "\"lat\":91"},
	    {"\"summary\":\"child locked in\"", "\"summary\":null"},
	    {"\"role\":\"victim\"", "\"role\":\"witness\""},
	    {"\"contact_ok\":false", "\"contact_ok\":\"no\""},
	    {"\"unit\":\"BKK-RESP-04\"", "\"unit\":\"\""},
	    {"\"id\":\"BKK-1\"", "\"id\":\"BKK 1\""},
	};
	for (size_t i = 0; i < sizeof(breaks) / sizeof(breaks[0]); i++) {
		char doc[2048];
		const char *at = strstr(good_doc, breaks[i].from);
		assert_non_null(at);
		size_t pre = (size_t)(at - good_doc);
		snprintf(doc, sizeof(doc), "%.*s%s%s", (int)pre, good_doc, breaks[i].to,
		         at + strlen(breaks[i].from));
		assert_int_equal(proto_incident_parse(doc, strlen(doc), &inc, err, sizeof(err)),
		                 -EINVAL);
	}
	assert_int_equal(proto_incident_parse("{", 1, &inc, NULL, 0), -EINVAL);
	assert_int_equal(proto_incident_parse(good_doc, 10, &inc, NULL, 0), -EINVAL);
}

static void test_status_rules(void **state)
{
	(void)state;
	const enum proto_dispatch_state A = PROTO_STATE_ASSIGNED;
	assert_int_equal(proto_status_check(A, PROTO_STATUS_NONE, PROTO_STATUS_ACKNOWLEDGED),
	                 PROTO_ACCEPT);
	assert_int_equal(proto_status_check(A, PROTO_STATUS_NONE, PROTO_STATUS_ON_SCENE),
	                 PROTO_ACCEPT); /* skip forward */
	assert_int_equal(proto_status_check(A, PROTO_STATUS_ON_SCENE, PROTO_STATUS_EN_ROUTE),
	                 PROTO_CONFLICT); /* back */
	assert_int_equal(proto_status_check(A, PROTO_STATUS_EN_ROUTE, PROTO_STATUS_EN_ROUTE),
	                 PROTO_SAME);
	assert_int_equal(proto_status_check(A, PROTO_STATUS_EN_ROUTE, PROTO_STATUS_DECLINED),
	                 PROTO_ACCEPT);
	assert_int_equal(proto_status_check(A, PROTO_STATUS_ON_SCENE, PROTO_STATUS_DECLINED),
	                 PROTO_CONFLICT);
	assert_int_equal(
	    proto_status_check(A, PROTO_STATUS_ACKNOWLEDGED, PROTO_STATUS_UNABLE_TO_LOCATE),
	    PROTO_CONFLICT);
	assert_int_equal(
	    proto_status_check(A, PROTO_STATUS_ON_SCENE, PROTO_STATUS_UNABLE_TO_LOCATE),
	    PROTO_ACCEPT);
	assert_int_equal(proto_status_check(A, PROTO_STATUS_RESOLVED, PROTO_STATUS_REFERRED),
	                 PROTO_CONFLICT); /* leaves a final status */
	assert_int_equal(proto_status_check(A, PROTO_STATUS_RESOLVED, PROTO_STATUS_RESOLVED),
	                 PROTO_SAME);
	assert_int_equal(proto_status_check(A, PROTO_STATUS_DECLINED, PROTO_STATUS_ACKNOWLEDGED),
	                 PROTO_CONFLICT);
	assert_int_equal(
	    proto_status_check(PROTO_STATE_CANCELLED, PROTO_STATUS_NONE, PROTO_STATUS_ACKNOWLEDGED),
	    PROTO_CONFLICT);
	assert_true(proto_status_final(PROTO_STATUS_UNABLE_TO_LOCATE));
	assert_false(proto_status_final(PROTO_STATUS_ON_SCENE));
}

static void test_events(void **state)
{
	(void)state;
	struct proto_event ev = {.seq = 7,
	                         .type = PROTO_EV_STATUS,
	                         .incident_version = 2,
	                         .status = PROTO_STATUS_EN_ROUTE,
	                         .at_ms = 1795861862120LL,
	                         .clock = PROTO_CLOCK_GPS,
	                         .has_location = 1,
	                         .lat = 13.5,
	                         .lon = 100.25,
	                         .accuracy_m = 8};
	strcpy(ev.event_id, "3f8724c7-786f-4948-bee8-9c9b7b1abb83");
	strcpy(ev.incident_id, "BKK-1");
	cJSON *j = proto_event_json(&ev);
	char *txt = cJSON_PrintUnformatted(j);
	assert_non_null(strstr(txt, "\"status\":\"en_route\""));
	assert_non_null(strstr(txt, "\"at\":\"2026-11-28T10:31:02.120Z\""));
	struct proto_event back;
	char err[128];
	assert_int_equal(proto_event_parse(j, &back, err, sizeof(err)), 0);
	assert_int_equal(back.seq, 7);
	assert_int_equal(back.status, PROTO_STATUS_EN_ROUTE);
	assert_int_equal(back.at_ms, ev.at_ms);
	assert_true(back.has_location);
	cJSON_Delete(j);
	free(txt);
	/* location must be present, as an object or null */
	ev.has_location = 0;
	j = proto_event_json(&ev);
	assert_int_equal(proto_event_parse(j, &back, NULL, 0), 0);
	cJSON_DeleteItemFromObject(j, "location");
	assert_int_equal(proto_event_parse(j, &back, err, sizeof(err)), -EINVAL);
	cJSON_Delete(j);
	static const char *const bad[] = {
	    "{\"event_id\":\"x\",\"seq\":1,\"type\":\"sos\",\"at\":\"2026-11-28T10:31:02.120Z\","
	    "\"clock\":\"gps\",\"location\":null}",
	    "{\"event_id\":\"3f8724c7-786f-4948-bee8-9c9b7b1abb83\",\"seq\":1,\"type\":\"note\","
	    "\"incident_id\":\"a\",\"incident_version\":1,\"at\":\"2026-11-28T10:31:02.120Z\","
	    "\"clock\":\"gps\",\"location\":null}",
	    "{\"event_id\":\"3f8724c7-786f-4948-bee8-9c9b7b1abb83\",\"seq\":1,\"type\":\"status\","
	    "\"incident_id\":\"a\",\"incident_version\":1,\"status\":\"done\","
	    "\"at\":\"2026-11-28T10:31:02.120Z\",\"clock\":\"gps\",\"location\":null}",
	    "{\"event_id\":\"3f8724c7-786f-4948-bee8-9c9b7b1abb83\",\"seq\":1,"
	    "\"type\":\"command_result\",\"command_id\":\"c\",\"at\":\"2026-11-28T10:31:02.120Z\","
	    "\"clock\":\"gps\",\"location\":null}",
	    "{\"event_id\":\"3f8724c7-786f-4948-bee8-9c9b7b1abb83\",\"seq\":-1,\"type\":\"sos\","
	    "\"at\":\"2026-11-28T10:31:02.120Z\",\"clock\":\"gps\",\"location\":null}",
	    "{\"event_id\":\"3f8724c7-786f-4948-bee8-9c9b7b1abb83\",\"seq\":1,\"type\":\"sos\","
	    "\"at\":\"2026-11-28T10:31:02.120Z\",\"clock\":\"atomic\",\"location\":null}",
	};
	for (int i = 0; i < 6; i++) {
		j = proto_json_parse(bad[i], strlen(bad[i]));
		assert_non_null(j);
		assert_int_equal(proto_event_parse(j, &back, err, sizeof(err)), -EINVAL);
		cJSON_Delete(j);
	}
}

static void test_fixes_and_gzip(void **state)
{
	(void)state;
	struct store_fix f[3] = {
	    {1795861862000LL, 137563309, 1005017651, 80, 1200, 9000, 3},
	    {1795861863000LL, 137563400, 1005017600, -1, -1, -1, 2},
	    {1795861864000LL, -900000000, -1800000000, 0, 0, 35999, 3},
	};
	size_t len;
	char *js = proto_fixes_json(f, 3, &len);
	assert_string_equal(js, "{\"fixes\":[[1795861862000,137563309,1005017651,80,1200,9000,3],"
	                        "[1795861863000,137563400,1005017600,-1,-1,-1,2],"
	                        "[1795861864000,-900000000,-1800000000,0,0,35999,3]]}");
	unsigned char *gz, *back;
	size_t gzlen, blen;
	assert_int_equal(proto_gzip(js, len, &gz, &gzlen), 0);
	assert_int_equal(proto_gunzip(gz, gzlen, 1 << 20, &back, &blen), 0);
	assert_int_equal(blen, len);
	assert_memory_equal(back, js, len);
	free(back);
	assert_int_equal(proto_gunzip(gz, gzlen, len - 1, &back, &blen), -EFBIG);
	assert_int_equal(proto_gunzip(gz, gzlen - 5, 1 << 20, &back, &blen), -EINVAL);
	assert_int_equal(proto_gunzip("notgzip", 7, 1 << 20, &back, &blen), -EINVAL);
	free(gz);
	cJSON *j = proto_json_parse(js, len);
	struct store_fix *out;
	size_t n;
	assert_int_equal(proto_fixes_parse(j, &out, &n, NULL, 0), 0);
	assert_int_equal(n, 3);
	assert_int_equal(out[1].lat_e7, 137563400);
	assert_int_equal(out[2].heading_cdeg, 35999);
	free(out);
	cJSON_Delete(j);
	free(js);
	static const char *const bad[] = {
	    "{\"fixes\":[[1,2,3,4,5,6]]}",
	    "{\"fixes\":[[1,2,3,4,5,6,4]]}",
	    "{\"fixes\":[[2,0,0,0,0,0,3],[1,0,0,0,0,0,3]]}",
	    "{\"fixes\":[[1,900000001,0,0,0,0,3]]}",
	    "{\"fixes\":{}}",
	};
	for (int i = 0; i < 5; i++) {
		j = proto_json_parse(bad[i], strlen(bad[i]));
		assert_int_equal(proto_fixes_parse(j, &out, &n, NULL, 0), -EINVAL);
		cJSON_Delete(j);
	}
	/* cJSON gets a NUL-terminated copy; embedded NULs and trailing junk refused */
	assert_null(proto_json_parse("{}\0{}", 5));
	assert_null(proto_json_parse("{} x", 4));
	cJSON *ok = proto_json_parse("{} ", 3);
	assert_non_null(ok);
	cJSON_Delete(ok);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_b64_sha_time),
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_sign_string),
	    cmocka_unit_test(test_envelopes),
	    cmocka_unit_test(test_incident_parse),
	    cmocka_unit_test(test_status_rules),
	    cmocka_unit_test(test_events),
	    cmocka_unit_test(test_fixes_and_gzip),
	    cmocka_unit_test(test_server_clock_offset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* sync/batch: event bodies become wire events without a parse; bounds on
 * count and bytes; the 413 split keeps a valid prefix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/store.h"
#include "sync/batch.h"
#include "sync/proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct store_event ev_of(int64_t seq, const char *body)
{
	struct store_event ev = {.seq = seq, .type = STORE_EVENT_NOTE};
	snprintf(ev.event_id, sizeof(ev.event_id), "0000%04u-0000-4000-8000-000000000000",
	         (unsigned)(seq % 10000));
	ev.body = (unsigned char *)(uintptr_t)body;
	ev.body_len = strlen(body);
	return ev;
}

static const char note[] = "{\"type\":\"note\",\"incident_id\":\"INC-1\",\"incident_version\":1,"
                           "\"text\":\"x\",\"at\":\"2026-11-28T10:31:02.120Z\","
                           "\"clock\":\"gps\",\"location\":null}";

static void test_events_are_valid_json_in_order(void **state)
{
	(void)state;
	struct batch *b;
	assert_int_equal(batch_new(500, PROTO_MAX_EVENTS_BYTES, &b), 0);
	size_t len;
	const char *j = batch_json(b, &len);
	assert_string_equal(j, "{\"events\":[]}");
	for (int i = 1; i <= 3; i++) {
		struct store_event ev = ev_of(i, note);
		assert_int_equal(batch_add(b, &ev), 0);
	}
	struct store_event empty = ev_of(4, "{}");
	assert_int_equal(batch_add(b, &empty), 0);
	j = batch_json(b, &len);
	assert_int_equal(strlen(j), len);
	cJSON *doc = proto_json_parse(j, len);
	assert_non_null(doc);
	const cJSON *evs = cJSON_GetObjectItem(doc, "events");
	assert_int_equal(cJSON_GetArraySize(evs), 4);
	for (int i = 0; i < 3; i++) {
		struct proto_event pe;
		char err[128];
		int rc = proto_event_parse(cJSON_GetArrayItem(evs, i), &pe, err, sizeof(err));
		if (rc)
			fail_msg("%s", err);
		assert_int_equal(pe.seq, i + 1);
		assert_string_equal(pe.event_id, batch_event_id(b, (size_t)i));
		assert_int_equal(batch_seq(b, (size_t)i), i + 1);
	}
	const cJSON *last = cJSON_GetArrayItem(evs, 3);
	assert_int_equal(cJSON_GetArraySize(last), 2);
	cJSON_Delete(doc);
	/* not an object: refused, batch unchanged */
	struct store_event bad = ev_of(5, "[1,2]");
	assert_int_equal(batch_add(b, &bad), -EINVAL);
	bad = ev_of(5, "{");
	assert_int_equal(batch_add(b, &bad), -EINVAL);
	assert_int_equal(batch_count(b), 4);
	batch_free(b);
}

static void test_bounds_and_split(void **state)
{
	(void)state;
	struct batch *b;
	assert_int_equal(batch_new(PROTO_MAX_EVENTS + 1, PROTO_MAX_EVENTS_BYTES, &b), -EINVAL);
	assert_int_equal(batch_new(500, PROTO_MAX_EVENTS_BYTES, &b), 0);
	int i;
	for (i = 0; i < 600; i++) {
		struct store_event ev = ev_of(i + 1, note);
		if (batch_add(b, &ev) == -ENOSPC)
			break;
	}
	assert_int_equal(i, 500); /* count bound */
	batch_reset(b, 7);        /* a smaller bound for a resend */
	for (i = 0; i < 10; i++) {
		struct store_event ev = ev_of(i + 1, note);
		if (batch_add(b, &ev) == -ENOSPC)
			break;
	}
	assert_int_equal(i, 7);
	/* byte bound: 1 MiB of JSON at most */
	size_t big = 8000;
	char *body = malloc(big + 64);
	assert_non_null(body);
	int n = snprintf(body, big + 64, "{\"type\":\"note\",\"text\":\"");
	memset(body + n, 'a', big);
	strcpy(body + n + big, "\"}");
	batch_reset(b, 500);
	for (i = 0; i < 500; i++) {
		struct store_event ev = ev_of(i + 1, body);
		if (batch_add(b, &ev) == -ENOSPC)
			break;
	}
	size_t len;
	batch_json(b, &len);
	assert_true(len <= PROTO_MAX_EVENTS_BYTES);
	assert_true(len > PROTO_MAX_EVENTS_BYTES - 9000);
	assert_int_equal(batch_count(b), (size_t)i);
	/* split in halves down to one: each prefix is a valid batch */
	size_t count = batch_count(b);
	while (count > 1) {
		count /= 2;
		batch_truncate(b, count);
		const char *j = batch_json(b, &len);
		cJSON *doc = proto_json_parse(j, len);
		assert_non_null(doc);
		assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "events")),
		                 (int)count);
		cJSON_Delete(doc);
		assert_int_equal(batch_seq(b, count - 1), (int64_t)count);
		assert_int_equal(batch_seq(b, count), -1);
	}
	free(body);
	batch_free(b);
}

/* ---- incident keys: the rule for a second batch in flight ---- */

static struct store_event typed(int64_t seq, enum store_event_type type, const char *body)
{
	struct store_event ev = ev_of(seq, body);
	ev.type = type;
	return ev;
}

static char bodies[64][256];

/* A status on incident id (its own body buffer, slot k). */
static struct store_event on_inc(int k, int64_t seq, const char *id)
{
	snprintf(bodies[k], sizeof(bodies[k]),
	         "{\"type\":\"status\",\"incident_id\":\"%s\",\"incident_version\":1,"
	         "\"status\":\"en_route\",\"at\":\"2026-11-28T10:31:02.120Z\","
	         "\"clock\":\"gps\",\"location\":null}",
	         id);
	return typed(seq, STORE_EVENT_STATUS, bodies[k]);
}

static void test_incident_keys(void **state)
{
	(void)state;
	struct store_event a = on_inc(0, 1, "INC-1"), a2 = on_inc(1, 2, "INC-1"),
	                   b = on_inc(2, 3, "INC-2");
	uint64_t ka = batch_incident_key(a.type, a.body, a.body_len);
	assert_true(ka != BATCH_NO_INCIDENT && ka != BATCH_ANY_INCIDENT);
	assert_true(ka == batch_incident_key(a2.type, a2.body, a2.body_len));
	assert_true(ka != batch_incident_key(b.type, b.body, b.body_len));
	/* no incident: sos and command results */
	static const char sos[] = "{\"type\":\"sos\",\"at\":\"2026-11-28T10:31:02.120Z\"}";
	assert_true(batch_incident_key(STORE_EVENT_SOS, sos, strlen(sos)) == BATCH_NO_INCIDENT);
	assert_true(batch_incident_key(STORE_EVENT_COMMAND_RESULT, sos, strlen(sos)) ==
	            BATCH_NO_INCIDENT);
	/* an incident event whose id cannot be found conflicts with everything */
	static const char noid[] = "{\"type\":\"note\",\"text\":\"x\"}";
	assert_true(batch_incident_key(STORE_EVENT_NOTE, noid, strlen(noid)) == BATCH_ANY_INCIDENT);
	/* the member name inside a text value is escaped: not taken for the key */
	static const char tricky[] =
	    "{\"type\":\"note\",\"text\":\"\\\"incident_id\\\":\\\"INC-2\","
	    "\"incident_id\":\"INC-1\"}";
	assert_true(batch_incident_key(STORE_EVENT_NOTE, tricky, strlen(tricky)) == ka);
	/* an unterminated or empty id: any */
	static const char cut[] = "{\"type\":\"note\",\"incident_id\":\"INC-1";
	assert_true(batch_incident_key(STORE_EVENT_NOTE, cut, strlen(cut)) == BATCH_ANY_INCIDENT);
	static const char empty[] = "{\"type\":\"note\",\"incident_id\":\"\"}";
	assert_true(batch_incident_key(STORE_EVENT_NOTE, empty, strlen(empty)) ==
	            BATCH_ANY_INCIDENT);
}

static void test_conflicts(void **state)
{
	(void)state;
	struct batch *b;
	assert_int_equal(batch_new(500, PROTO_MAX_EVENTS_BYTES, &b), 0);
	char id[32];
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "INC-%d", i * 2); /* even incidents */
		struct store_event ev = on_inc(i, i + 1, id);
		assert_int_equal(batch_add(b, &ev), 0);
	}
	for (int i = 0; i < 40; i++) {
		snprintf(id, sizeof(id), "INC-%d", i);
		struct store_event ev = on_inc(40, 100, id);
		uint64_t k = batch_incident_key(ev.type, ev.body, ev.body_len);
		assert_int_equal(batch_conflicts(b, k), i % 2 == 0);
	}
	assert_int_equal(batch_conflicts(b, BATCH_NO_INCIDENT), 0);
	assert_int_equal(batch_conflicts(b, BATCH_ANY_INCIDENT), 1);
	/* the index follows changes: truncated to INC-0 … INC-8 */
	batch_truncate(b, 5);
	struct store_event e10 = on_inc(41, 100, "INC-10"), e8 = on_inc(42, 100, "INC-8");
	assert_int_equal(batch_conflicts(b, batch_incident_key(e10.type, e10.body, e10.body_len)),
	                 0);
	assert_int_equal(batch_conflicts(b, batch_incident_key(e8.type, e8.body, e8.body_len)), 1);
	/* a batch holding an event of unknown incident conflicts with all */
	static const char noid[] = "{\"type\":\"note\",\"text\":\"x\"}";
	struct store_event any = typed(50, STORE_EVENT_NOTE, noid);
	assert_int_equal(batch_add(b, &any), 0);
	assert_int_equal(batch_conflicts(b, batch_incident_key(e10.type, e10.body, e10.body_len)),
	                 1);
	/* an empty batch conflicts with nothing */
	batch_reset(b, 0);
	assert_int_equal(batch_conflicts(b, BATCH_ANY_INCIDENT), 0);
	batch_free(b);
}

/* Adds events on the incidents named by the letters of s ('.' = an SOS). */
static void fill(struct batch *b, const char *s)
{
	static const char sos[] = "{\"type\":\"sos\",\"at\":\"2026-11-28T10:31:02.120Z\"}";
	batch_reset(b, 0);
	for (int i = 0; s[i]; i++) {
		char id[8] = {'I', '-', s[i], 0};
		struct store_event ev =
		    s[i] == '.' ? typed(i + 1, STORE_EVENT_SOS, sos) : on_inc(i, i + 1, id);
		assert_int_equal(batch_add(b, &ev), 0);
		assert_int_equal(batch_is_sos(b, (size_t)i), s[i] == '.');
	}
}

static void test_clean_cut(void **state)
{
	(void)state;
	struct batch *b;
	assert_int_equal(batch_new(500, PROTO_MAX_EVENTS_BYTES, &b), 0);
	fill(b, "AAABBBCC");
	assert_int_equal(batch_clean_cut(b, 1), 6); /* before the last incident */
	assert_int_equal(batch_clean_cut(b, 7), 0); /* not that far back */
	fill(b, "AABABCCB");                        /* B runs from 2 to the end: no cut */
	assert_int_equal(batch_clean_cut(b, 1), 0);
	fill(b, ".AA.BB"); /* SOS events belong to no incident */
	assert_int_equal(batch_clean_cut(b, 1), 4);
	fill(b, "ABAB");
	assert_int_equal(batch_clean_cut(b, 1), 0);
	fill(b, "AB");
	assert_int_equal(batch_clean_cut(b, 1), 1);
	fill(b, "A");
	assert_int_equal(batch_clean_cut(b, 0), 0);
	batch_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_events_are_valid_json_in_order),
	    cmocka_unit_test(test_bounds_and_split),
	    cmocka_unit_test(test_incident_keys),
	    cmocka_unit_test(test_conflicts),
	    cmocka_unit_test(test_clean_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

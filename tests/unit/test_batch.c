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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_events_are_valid_json_in_order),
	    cmocka_unit_test(test_bounds_and_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Fault switches for tests and bench work, set through the dispatcher API
 * (POST /admin/faults). They act on the device API only (<base>/v1/…),
 * never on /admin, so a test can always reach the switches.
 *
 *   fail_next N, fail_status S, retry_after_s R: the next N device requests
 *     are answered S (429, 500, 502, 503 or 504) without being applied;
 *     429 and 503 carry Retry-After: R.
 *   delay_ms D, delay_next N: answers are held D ms after the request was
 *     applied (N > 0: only the next N answers; N = 0: every answer).
 *   lose_next N: the next N requests are applied and the connection is then
 *     closed without an answer.
 *   truncate_next N: the next N requests are applied and answered with
 *     their body cut to half its bytes (a complete HTTP answer of that
 *     length: what a flaky middlebox or a reset mid-answer leaves).
 *   portal_next N: the next N requests are not applied; each is answered
 *     200 with a captive portal's HTML login page (a hotel or airport
 *     Wi-Fi that intercepts every request).
 *   clock_shift_s S: the server's clock runs S seconds off real time.
 *   fail_for_s T: every device request fails (as fail_next) for T seconds.
 *   too_large_over N: an events batch of more than N events is answered
 *     413 too_large (0: off).
 *   forge_item K ("bad_signature" | "other_unit"): the next assignments
 *     answer carries one extra envelope, signed by another key or for
 *     another unit. redeliver {"id", "version"}: the next assignments
 *     answer carries that version again. Each one set is queued (up to
 *     RS_EXTRA_MAX) and all pending go out together, first.
 *     forge_command K ("bad_signature" | "other_device"): one extra command
 *     in the next heartbeat answer. forge_device: the switches set in the
 *     same call wait for that device (default: any).
 *
 * Returns: 0 or a negative errno. */
#ifndef ESS_RS_FAULTS_H
#define ESS_RS_FAULTS_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "sync/proto.h"

struct rs_faults;

enum rs_forge {
	RS_FORGE_NONE = 0,
	RS_FORGE_BAD_SIGNATURE,
	RS_FORGE_OTHER_UNIT,
	RS_FORGE_OTHER_DEVICE,
	RS_FORGE_REDELIVER,
};

#define RS_EXTRA_MAX 16

/* One extra assignments item waiting to go out. */
struct rs_extra {
	enum rs_forge kind;
	char device[PROTO_ID_MAX + 1]; /* "" = any device */
	char id[PROTO_ID_MAX + 1];     /* RS_FORGE_REDELIVER */
	int64_t version;
};

int faults_new(struct rs_faults **out);
void faults_free(struct rs_faults *f);

/* Applies the fields present in obj (unknown fields or bad values: -EINVAL
 * with a reason in err, nothing changed). */
int faults_set(struct rs_faults *f, const cJSON *obj, char *err, size_t errlen);
void faults_clear(struct rs_faults *f);
/* The current switches as a new JSON object (caller deletes); NULL on ENOMEM. */
cJSON *faults_json(const struct rs_faults *f);

int64_t faults_clock_shift_ms(const struct rs_faults *f);

/* Consumes one failure (or is inside fail_for_s): returns the status to
 * answer (0: none) and the Retry-After seconds (0: no header). */
unsigned faults_take_fail(struct rs_faults *f, int *retry_after_s);
/* Consumes one lost answer: 1 if this answer is to be dropped. */
int faults_take_lose(struct rs_faults *f);
/* Consumes one truncated answer: 1 if this answer is to be cut. */
int faults_take_truncate(struct rs_faults *f);
/* Consumes one captive-portal answer: 1 if this request gets the portal. */
int faults_take_portal(struct rs_faults *f);
/* Consumes one delay: the ms to hold this answer (0: none). */
int64_t faults_take_delay(struct rs_faults *f);
/* Consumes a forged item / command meant for device_id (RS_FORGE_NONE:
 * none pending for it). */
enum rs_forge faults_take_forge_command(struct rs_faults *f, const char *device_id);
/* Takes the oldest extra item pending for device_id: 1 if one was taken. */
int faults_take_extra(struct rs_faults *f, const char *device_id, struct rs_extra *out);
/* 1 if an extra item is pending for device_id (a held poll answers it). */
int faults_extra_pending(const struct rs_faults *f, const char *device_id);
/* The too_large_over switch (0: off). */
int faults_too_large_over(const struct rs_faults *f);

#endif

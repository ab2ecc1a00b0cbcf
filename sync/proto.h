/* The ESS device API, version 1 (docs/device-api.md): the pieces both the
 * agent and the reference server need, in one place so that they cannot
 * disagree — request signing, envelopes, times, ids, the incident document,
 * events and the status rules, the fixes array.
 *
 * Everything that reads is strict and bounded: it takes untrusted bytes
 * (not necessarily NUL-terminated) and returns 0 or a negative errno, with
 * a short reason (never a quoted value) in err when err is not NULL.
 * Strings filled in are owned by the caller's struct; cJSON values returned
 * are the caller's to cJSON_Delete. */
#ifndef ESS_SYNC_PROTO_H
#define ESS_SYNC_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define PROTO_MAX_EVENTS       500
#define PROTO_MAX_EVENTS_BYTES (1024 * 1024) /* JSON before compression */
#define PROTO_MAX_FIXES        5000
#define PROTO_SKEW_S           300
#define PROTO_MAX_WAIT_S       30
#define PROTO_ID_MAX           128          /* ids we accept: incident, device, command, unit */
#define PROTO_TEXT_MAX         8192         /* note / resolution / SOS text */
#define PROTO_DOC_MAX          (256 * 1024) /* one incident document */
#define PROTO_BODY_MAX         (8 * 1024 * 1024) /* any body, after decompression */

/* ---- encoding helpers ---- */

/* Standard padded base64. Returns the length written (NUL added), or 0 if
 * out is too small. */
size_t proto_b64_encode(const void *in, size_t len, char *out, size_t cap);
/* Decodes exactly; -EINVAL for anything but canonical padded base64.
 * *outlen receives the decoded length. */
int proto_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t cap, size_t *outlen);
/* Lower-case hex SHA-256 of data (65 bytes with NUL). */
void proto_sha256_hex(const void *data, size_t len, char out[65]);

/* RFC 3339 UTC with milliseconds: 2026-11-28T10:31:02.120Z (25 bytes). */
void proto_time_format(int64_t unix_ms, char out[32]);
/* Accepts exactly that form (the 'Z' and three fraction digits required).
 * Returns 0 or -EINVAL. */
int proto_time_parse(const char *s, int64_t *unix_ms);
/* The server's clock, doc.server_time (Unix ms, docs/device-api.md), as
 * the offset in seconds to add to this device's clock. The server is
 * outside input: a value that is not a number, not after 1970 or beyond
 * the year 9999 is refused (-EINVAL) rather than converted (a double past
 * INT64_MAX does not fit an int64_t). */
int proto_server_clock_offset(const cJSON *doc, int64_t *offset_s);

/* A random UUID v4 in lower case. */
int proto_uuid_valid(const char *s);
/* Ids: 1..PROTO_ID_MAX bytes of [A-Za-z0-9._:-]. */
int proto_id_valid(const char *s);

/* ---- request signing (section 2) ---- */

/* The string to sign:
 *   ESS-V1\n<METHOD>\n<path?query>\n<timestamp>\n<sha256 hex of body as sent>
 * Returns its length, or 0 if out is too small. */
size_t proto_sign_string(const char *method, const char *path_query, int64_t timestamp,
                         const void *body, size_t body_len, char *out, size_t cap);

/* ---- envelopes (section 2) ---- */

/* {"payload": base64(payload), "sig": base64(Ed25519(payload))}: a malloc'd
 * NUL-terminated JSON string, NULL on ENOMEM. sk is 64 bytes. */
char *proto_envelope_make(const void *payload, size_t len, const unsigned char sk[64]);
/* Verifies an envelope object against the server key before anything of the
 * payload is looked at. On success *payload is malloc'd and NUL-terminated
 * (caller frees), sig holds the 64-byte signature. -EBADMSG: the signature
 * does not verify; -EINVAL: not an envelope. */
int proto_envelope_open(const cJSON *env, const unsigned char server_pk[32],
                        unsigned char **payload, size_t *len, unsigned char sig[64], char *err,
                        size_t errlen);

/* ---- the incident document (section 4) ---- */

enum proto_category {
	PROTO_CAT_ASSAULT_THREAT = 0,
	PROTO_CAT_CONFINEMENT,
	PROTO_CAT_SEXUAL_ABUSE_RISK,
	PROTO_CAT_DERANGED_PERSON,
	PROTO_CAT_GANG_GATHERING,
};
enum proto_dispatch_state {
	PROTO_STATE_ASSIGNED = 0,
	PROTO_STATE_CANCELLED,
	PROTO_STATE_REASSIGNED,
	PROTO_STATE_CLOSED,
};

/* The fields the agent acts on; the whole document is stored as received. */
struct proto_incident {
	char id[PROTO_ID_MAX + 1];
	int64_t version;
	enum proto_category category;
	int priority; /* 1..3 */
	int silent;
	enum proto_dispatch_state state;
	int64_t reported_at_ms;
	double lat, lon, accuracy_m;
	char unit[PROTO_ID_MAX + 1];
};

/* Validates every field the contract defines (types, enums, ranges;
 * optional fields when present); unknown fields are ignored. */
int proto_incident_parse(const char *json, size_t len, struct proto_incident *out, char *err,
                         size_t errlen);

/* ---- events (section 5) ---- */

enum proto_event_type {
	PROTO_EV_STATUS = 0,
	PROTO_EV_NOTE,
	PROTO_EV_RECEIPT,
	PROTO_EV_SOS,
	PROTO_EV_COMMAND_RESULT,
};
/* Same order as the store's local status; NONE = not yet acknowledged. */
enum proto_status {
	PROTO_STATUS_NONE = 0,
	PROTO_STATUS_ACKNOWLEDGED,
	PROTO_STATUS_EN_ROUTE,
	PROTO_STATUS_ON_SCENE,
	PROTO_STATUS_RESOLVED,
	PROTO_STATUS_REFERRED,
	PROTO_STATUS_UNABLE_TO_LOCATE,
	PROTO_STATUS_DECLINED,
};
enum proto_clock { PROTO_CLOCK_GPS = 0, PROTO_CLOCK_SYSTEM, PROTO_CLOCK_UNSYNCED };

struct proto_event {
	char event_id[37];
	int64_t seq;
	enum proto_event_type type;
	char incident_id[PROTO_ID_MAX + 1]; /* status, note, receipt */
	int64_t incident_version;           /* status, note, receipt */
	enum proto_status status;           /* status */
	const char *text;                   /* borrowed from the cJSON, may be NULL */
	char command_id[PROTO_ID_MAX + 1];  /* command_result */
	int ok;                             /* command_result */
	int64_t at_ms;
	enum proto_clock clock;
	int has_location;
	double lat, lon, accuracy_m;
};

/* Validates one event object (as the server must). Strings point into obj. */
int proto_event_parse(const cJSON *obj, struct proto_event *out, char *err, size_t errlen);
/* Builds the event object; the caller adds nothing. NULL on ENOMEM. */
cJSON *proto_event_json(const struct proto_event *ev);

const char *proto_event_type_name(enum proto_event_type t);
const char *proto_status_name(enum proto_status s); /* NULL for NONE */
int proto_status_parse(const char *s, enum proto_status *out);
const char *proto_state_name(enum proto_dispatch_state s);
const char *proto_category_name(enum proto_category c);
const char *proto_clock_name(enum proto_clock c);

/* The status rules (section 5), one function for both sides. */
enum proto_verdict { PROTO_ACCEPT = 0, PROTO_SAME, PROTO_CONFLICT };
/* Can the responder go from `current` to `next` while dispatch is `state`?
 * PROTO_SAME: equal to the current status, accepted and changes nothing.
 * PROTO_CONFLICT: would go back, leave a final status, break the declined
 * / unable_to_locate rules, or the incident is no longer assigned. */
enum proto_verdict proto_status_check(enum proto_dispatch_state state, enum proto_status current,
                                      enum proto_status next);
int proto_status_final(enum proto_status s);

/* ---- positions (section 6) ---- */

struct store_fix;
/* Appends [[t,lat_e7,lon_e7,acc_dm,speed_cm_s,heading_cdeg,mode],…] for n
 * fixes as {"fixes":[…]} into a malloc'd string. NULL on ENOMEM. */
char *proto_fixes_json(const struct store_fix *fixes, size_t n, size_t *len);
/* Parses and validates a fixes body (time order, ranges, ≤ PROTO_MAX_FIXES).
 * *out is malloc'd (caller frees). */
int proto_fixes_parse(const cJSON *body, struct store_fix **out, size_t *n, char *err,
                      size_t errlen);

/* ---- bodies ---- */

/* gzip (RFC 1952) of data into a malloc'd buffer. Returns 0 or -ENOMEM. */
int proto_gzip(const void *data, size_t len, unsigned char **out, size_t *outlen);
/* The same at a zlib level: 1 fastest … 9 smallest (proto_gzip uses 6). */
int proto_gzip_level(const void *data, size_t len, int level, unsigned char **out, size_t *outlen);
/* gunzip with a hard bound on the output (-EFBIG past max_out, -EINVAL for
 * a bad stream). *out is malloc'd and NUL-terminated. */
int proto_gunzip(const void *data, size_t len, size_t max_out, unsigned char **out, size_t *outlen);

/* Parses JSON from untrusted bytes (copied to a NUL-terminated buffer first:
 * cJSON must never read past the end). NULL if malformed or len > max. */
cJSON *proto_json_parse(const void *data, size_t len);

#endif

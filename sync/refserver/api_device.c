/* The device API, version 1 (docs/device-api.md):
 *   POST /v1/enroll
 *   GET  /v1/devices/{id}/assignments?after=&wait=
 *   POST /v1/devices/{id}/events
 *   POST /v1/devices/{id}/positions
 *   POST /v1/devices/{id}/heartbeat */
#include "agent/log.h"
#include "agent/loop.h"
#include "agent/store.h"
#include "sync/proto.h"
#include "sync/refserver/api.h"
#include "sync/refserver/auth.h"
#include "sync/refserver/commands.h"
#include "sync/refserver/db.h"
#include "sync/refserver/devices.h"
#include "sync/refserver/events.h"
#include "sync/refserver/faults.h"
#include "sync/refserver/feed.h"
#include "sync/refserver/http.h"
#include "sync/refserver/incidents.h"
#include "sync/refserver/rs.h"
#include "sync/refserver/telemetry.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- enrollment ---- */

static const char *string_field(const cJSON *o, const char *name, size_t max)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > max)
		return NULL;
	return v->valuestring;
}

static int enroll(struct rs *rs, struct rs_req *r)
{
	unsigned char pk[32];
	size_t pklen = 0;
	struct rs_device dev;
	cJSON *body = proto_json_parse(r->body, r->body_len);
	const char *token = string_field(body, "token", 256);
	const char *key = string_field(body, "public_key", 64);
	const char *serial = string_field(body, "serial", RS_FIELD_MAX);
	const char *board = string_field(body, "board", RS_FIELD_MAX);
	const char *version = string_field(body, "agent_version", RS_FIELD_MAX);
	if (!cJSON_IsObject(body) || !token || !key || !serial || !board || !version) {
		http_reply_error(r, 400, "bad_request",
		                 "token, public_key, serial, board and agent_version are required "
		                 "strings of 1-%d bytes",
		                 RS_FIELD_MAX);
		goto out;
	}
	if (proto_b64_decode(key, strlen(key), pk, sizeof(pk), &pklen) < 0 || pklen != 32) {
		http_reply_error(r, 400, "bad_request", "public_key is not base64 of 32 bytes");
		goto out;
	}
	int rc = devices_enroll(rs->db, token, pk, serial, board, version, rs_now_ms(rs), &dev);
	if (rc == -EACCES) {
		log_info("enroll: refused a token");
		http_reply_error(r, 403, "bad_token", "unknown, expired or used token");
		goto out;
	}
	if (rc < 0) {
		http_reply_error(r, 500, "internal", "database error");
		goto out;
	}
	log_info("enroll: device %s in unit %s", dev.id, dev.unit);
	cJSON *o = cJSON_CreateObject();
	if (o && cJSON_AddStringToObject(o, "device_id", dev.id) &&
	    cJSON_AddStringToObject(o, "unit", dev.unit) &&
	    cJSON_AddStringToObject(o, "server_key", rs->server_key_b64) &&
	    cJSON_AddItemToObject(o, "config", cJSON_Duplicate(rs->config, 1)))
		http_reply(r, 201, o);
	else {
		cJSON_Delete(o);
		http_reply_error(r, 500, "internal", "out of memory");
	}
out:
	cJSON_Delete(body);
	return RS_REPLY;
}

/* ---- forged items (fault switches) ---- */

static cJSON *forged_envelope(struct rs *rs, const char *payload, enum rs_forge kind)
{
	unsigned char pk[32], sk[64];
	const unsigned char *key = rs->sk;
	if (kind == RS_FORGE_BAD_SIGNATURE) {
		crypto_sign_ed25519_keypair(pk, sk);
		key = sk;
	}
	char *env = proto_envelope_make(payload, strlen(payload), key);
	sodium_memzero(sk, sizeof(sk));
	cJSON *o = env ? proto_json_parse(env, strlen(env)) : NULL;
	free(env);
	return o;
}

static cJSON *forged_incident(struct rs *rs, const struct rs_device *dev, enum rs_forge kind)
{
	char doc[1024], at[32], hex[13];
	unsigned char b[6];
	randombytes_buf(b, sizeof(b));
	sodium_bin2hex(hex, sizeof(hex), b, sizeof(b));
	proto_time_format(rs_now_ms(rs), at);
	snprintf(doc, sizeof(doc),
	         "{\"id\":\"forged-%s\",\"version\":1,\"category\":\"assault_threat\","
	         "\"priority\":1,\"silent\":false,\"state\":\"assigned\",\"reported_at\":\"%s\","
	         "\"location\":{\"lat\":13.7563,\"lon\":100.5018,\"accuracy_m\":10},"
	         "\"summary\":\"forged by the fault switch\",\"unit\":\"%s\"}",
	         hex, at, kind == RS_FORGE_OTHER_UNIT ? "ZZ-OTHER-UNIT" : dev->unit);
	log_info("fault: forged incident (%s) for device %s",
	         kind == RS_FORGE_OTHER_UNIT ? "other unit" : "bad signature", dev->id);
	return forged_envelope(rs, doc, kind);
}

static cJSON *forged_command(struct rs *rs, const struct rs_device *dev, enum rs_forge kind)
{
	char doc[512], at[32], hex[17];
	unsigned char b[8];
	randombytes_buf(b, sizeof(b));
	sodium_bin2hex(hex, sizeof(hex), b, sizeof(b));
	proto_time_format(rs_now_ms(rs), at);
	snprintf(doc, sizeof(doc),
	         "{\"id\":\"cmd-forged-%s\",\"device_id\":\"%s\",\"type\":\"wipe\",\"args\":{},"
	         "\"issued_at\":\"%s\"}",
	         hex, kind == RS_FORGE_OTHER_DEVICE ? "d-someone-else" : dev->id, at);
	log_info("fault: forged command (%s) for device %s",
	         kind == RS_FORGE_OTHER_DEVICE ? "other device" : "bad signature", dev->id);
	return forged_envelope(rs, doc, kind);
}

/* A version the unit was given, again (NULL if it was not). */
static cJSON *redelivered(struct rs *rs, const struct rs_device *dev, const struct rs_extra *x)
{
	char *env = NULL;
	if (incidents_envelope(rs->db, x->id, x->version, dev->unit, &env) < 0)
		return NULL;
	log_info("fault: incident %s v%lld delivered again to device %s", x->id,
	         (long long)x->version, dev->id);
	cJSON *o = proto_json_parse(env, strlen(env));
	free(env);
	return o;
}

/* ---- assignments ---- */

static int parse_wait(const char *s, int *out)
{
	*out = 0;
	if (!s)
		return 0;
	if (!s[0] || strlen(s) > 2)
		return -EINVAL;
	int v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (*p - '0');
	}
	if (v > PROTO_MAX_WAIT_S)
		return -EINVAL;
	*out = v;
	return 0;
}

static int assignments(struct rs *rs, struct rs_req *r, const struct rs_device *dev)
{
	int64_t pos, last;
	int wait;
	char cursor[32];
	if (incidents_cursor_parse(http_query(r, "after"), &pos) < 0) {
		http_reply_error(r, 400, "bad_request", "after is not a cursor from this server");
		return RS_REPLY;
	}
	if (parse_wait(http_query(r, "wait"), &wait) < 0) {
		http_reply_error(r, 400, "bad_request", "wait must be an integer 0..%d",
		                 PROTO_MAX_WAIT_S);
		return RS_REPLY;
	}
	int64_t left = r->t0 + wait * 1000LL - loop_now_ms();
	cJSON *o = cJSON_CreateObject();
	cJSON *items = cJSON_CreateArray();
	if (!o || !items ||
	    incidents_feed(rs->db, dev->unit, pos, RS_FEED_PAGE, items, &last) < 0) {
		cJSON_Delete(o);
		cJSON_Delete(items);
		http_reply_error(r, 500, "internal", "database error");
		return RS_REPLY;
	}
	int extra = faults_extra_pending(rs->faults, dev->id);
	if (cJSON_GetArraySize(items) == 0 && !extra && !r->timed_out && left > 0) {
		cJSON_Delete(o);
		cJSON_Delete(items);
		if (feed_hold(rs->feed, r, dev->id, dev->unit, left) == 0)
			return RS_HOLD;
		http_reply_error(r, 503, "unavailable", "out of memory");
		return RS_REPLY;
	}
	/* The extra envelopes go first, in the order they were set. Built as a
	 * new array: cJSON_InsertItemInArray (Debian's 1.7.15) refuses some
	 * positions, which lost an extra item and leaked it (found by
	 * fuzz_refserver). */
	struct rs_extra x;
	cJSON *all = cJSON_CreateArray();
	while (faults_take_extra(rs->faults, dev->id, &x)) {
		cJSON *f = x.kind == RS_FORGE_REDELIVER ? redelivered(rs, dev, &x)
		                                        : forged_incident(rs, dev, x.kind);
		if (f && !(all && cJSON_AddItemToArray(all, f)))
			cJSON_Delete(f);
	}
	if (all) {
		while (cJSON_GetArraySize(items) > 0)
			cJSON_AddItemToArray(all, cJSON_DetachItemFromArray(items, 0));
		cJSON_Delete(items);
		items = all;
	}
	incidents_cursor_format(last, cursor);
	cJSON_AddStringToObject(o, "cursor", cursor);
	cJSON_AddItemToObject(o, "items", items);
	http_reply(r, 200, o);
	return RS_REPLY;
}

/* ---- events ---- */

static int events(struct rs *rs, struct rs_req *r, const struct rs_device *dev)
{
	if (r->body_len > PROTO_MAX_EVENTS_BYTES) {
		http_reply_error(r, 413, "too_large", "more than %d bytes of events",
		                 PROTO_MAX_EVENTS_BYTES);
		return RS_REPLY;
	}
	cJSON *body = proto_json_parse(r->body, r->body_len);
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(body, "events"), *ev;
	if (!cJSON_IsObject(body) || !cJSON_IsArray(arr)) {
		http_reply_error(r, 400, "bad_request", "want {\"events\": [...]}");
		cJSON_Delete(body);
		return RS_REPLY;
	}
	int limit = faults_too_large_over(rs->faults);
	if (cJSON_GetArraySize(arr) > PROTO_MAX_EVENTS ||
	    (limit > 0 && cJSON_GetArraySize(arr) > limit)) {
		http_reply_error(r, 413, "too_large", "more than %d events",
		                 limit > 0 ? limit : PROTO_MAX_EVENTS);
		cJSON_Delete(body);
		return RS_REPLY;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON *results = o ? cJSON_AddArrayToObject(o, "results") : NULL;
	int rc = results ? db_begin(rs->db) : -ENOMEM;
	int64_t now = rs_now_ms(rs);
	cJSON_ArrayForEach(ev, arr)
	{
		cJSON *res = NULL;
		if (rc == 0)
			rc = events_apply(rs->db, dev, ev, now, &res);
		if (rc == 0)
			cJSON_AddItemToArray(results, res);
	}
	if (rc == 0)
		rc = db_commit(rs->db);
	else if (results)
		db_rollback(rs->db);
	cJSON_Delete(body);
	if (rc < 0) {
		cJSON_Delete(o);
		http_reply_error(r, 500, "internal", "could not store the events");
		return RS_REPLY;
	}
	http_reply(r, 200, o);
	return RS_REPLY;
}

/* ---- positions ---- */

static int positions(struct rs *rs, struct rs_req *r, const struct rs_device *dev)
{
	char err[160] = "";
	struct store_fix *fixes = NULL;
	size_t n = 0, acc = 0, dup = 0;
	cJSON *body = proto_json_parse(r->body, r->body_len);
	if (!body) {
		http_reply_error(r, 400, "bad_request", "body is not JSON");
		return RS_REPLY;
	}
	int rc = proto_fixes_parse(body, &fixes, &n, err, sizeof(err));
	cJSON_Delete(body);
	if (rc == -E2BIG) {
		http_reply_error(r, 413, "too_large", "%s", err);
		return RS_REPLY;
	}
	if (rc < 0) {
		http_reply_error(r, 400, "bad_request", "%s", err);
		return RS_REPLY;
	}
	rc = telemetry_positions(rs->db, dev->id, fixes, n, rs_now_ms(rs), &acc, &dup);
	free(fixes);
	if (rc < 0) {
		http_reply_error(r, 500, "internal", "could not store the fixes");
		return RS_REPLY;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "accepted", (double)acc);
	cJSON_AddNumberToObject(o, "duplicates", (double)dup);
	http_reply(r, 200, o);
	return RS_REPLY;
}

/* ---- heartbeat ---- */

static int heartbeat(struct rs *rs, struct rs_req *r, const struct rs_device *dev)
{
	char err[160] = "";
	cJSON *body = proto_json_parse(r->body, r->body_len);
	if (telemetry_heartbeat_check(body, err, sizeof(err)) < 0) {
		http_reply_error(r, 400, "bad_request", "%s", body ? err : "body is not JSON");
		cJSON_Delete(body);
		return RS_REPLY;
	}
	cJSON_Delete(body);
	int64_t now = rs_now_ms(rs);
	cJSON *o = cJSON_CreateObject();
	cJSON *cmds = cJSON_CreateArray();
	int rc =
	    o && cmds ? telemetry_heartbeat(rs->db, dev->id, r->body, r->body_len, now) : -ENOMEM;
	if (rc == 0)
		rc = commands_pending(rs->db, dev->id, cmds);
	if (rc < 0) {
		cJSON_Delete(o);
		cJSON_Delete(cmds);
		http_reply_error(r, 500, "internal", "database error");
		return RS_REPLY;
	}
	enum rs_forge k = faults_take_forge_command(rs->faults, dev->id);
	if (k != RS_FORGE_NONE) {
		cJSON *f = forged_command(rs, dev, k);
		if (f)
			cJSON_AddItemToArray(cmds, f);
	}
	cJSON_AddNumberToObject(o, "server_time", (double)now);
	cJSON_AddItemToObject(o, "config", cJSON_Duplicate(rs->config, 1));
	cJSON_AddItemToObject(o, "commands", cmds);
	http_reply(r, 200, o);
	return RS_REPLY;
}

/* ---- routing ---- */

int api_device_handle(struct rs *rs, struct rs_req *r)
{
	static const char prefix[] = "/v1/devices/";
	struct rs_device dev;
	char id[PROTO_ID_MAX + 1];
	int is_get = strcmp(r->method, "GET") == 0, is_post = strcmp(r->method, "POST") == 0;
	if (strcmp(r->path, "/v1/enroll") == 0) {
		if (!is_post) {
			http_reply_error(r, 405, "method_not_allowed", "POST only");
			return RS_REPLY;
		}
		return enroll(rs, r);
	}
	if (strncmp(r->path, prefix, sizeof(prefix) - 1) != 0)
		goto not_found;
	const char *p = r->path + sizeof(prefix) - 1, *slash = strchr(p, '/');
	if (!slash || (size_t)(slash - p) > PROTO_ID_MAX)
		goto not_found;
	memcpy(id, p, (size_t)(slash - p));
	id[slash - p] = 0;
	const char *leaf = slash + 1;
	int which = strcmp(leaf, "assignments") == 0 ? 1
	            : strcmp(leaf, "events") == 0    ? 2
	            : strcmp(leaf, "positions") == 0 ? 3
	            : strcmp(leaf, "heartbeat") == 0 ? 4
	                                             : 0;
	if (!which || !proto_id_valid(id))
		goto not_found;
	if ((which == 1 && !is_get) || (which > 1 && !is_post)) {
		http_reply_error(r, 405, "method_not_allowed", "%s only",
		                 which == 1 ? "GET" : "POST");
		return RS_REPLY;
	}
	if (auth_device(rs, r, &dev) < 0)
		return RS_REPLY;
	if (strcmp(id, dev.id) != 0) {
		http_reply_error(r, 403, "forbidden", "the path names another device");
		return RS_REPLY;
	}
	switch (which) {
	case 1:
		return assignments(rs, r, &dev);
	case 2:
		return events(rs, r, &dev);
	case 3:
		return positions(rs, r, &dev);
	default:
		return heartbeat(rs, r, &dev);
	}
not_found:
	http_reply_error(r, 404, "not_found", "no such path");
	return RS_REPLY;
}

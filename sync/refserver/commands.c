#include "sync/refserver/commands.h"
#include "agent/log.h"
#include "sync/proto.h"
#include "sync/refserver/db.h"
#include "sync/refserver/rs.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SETERR(...) snprintf(err, errlen, __VA_ARGS__)

int commands_issue(struct rs *rs, const char *device_id, const char *type, const cJSON *args,
                   cJSON **payload, char *err, size_t errlen)
{
	static const char *const types[] = {"wipe", "lock", "resync", "config"};
	char id[32], at[32], hex[17];
	unsigned char b[8];
	sqlite3_stmt *st;
	size_t i;
	*payload = NULL;
	for (i = 0; i < 4; i++)
		if (type && strcmp(type, types[i]) == 0)
			break;
	if (i == 4) {
		SETERR("type must be wipe, lock, resync or config");
		return -EINVAL;
	}
	if (args && !cJSON_IsObject(args)) {
		SETERR("args must be an object");
		return -EINVAL;
	}
	randombytes_buf(b, sizeof(b));
	sodium_bin2hex(hex, sizeof(hex), b, sizeof(b));
	snprintf(id, sizeof(id), "cmd-%s", hex);
	int64_t now = rs_now_ms(rs);
	proto_time_format(now, at);
	cJSON *p = cJSON_CreateObject();
	if (!p || !cJSON_AddStringToObject(p, "id", id) ||
	    !cJSON_AddStringToObject(p, "device_id", device_id) ||
	    !cJSON_AddStringToObject(p, "type", type) ||
	    !cJSON_AddItemToObject(p, "args",
	                           args ? cJSON_Duplicate(args, 1) : cJSON_CreateObject()) ||
	    !cJSON_AddStringToObject(p, "issued_at", at)) {
		cJSON_Delete(p);
		return -ENOMEM;
	}
	char *text = cJSON_PrintUnformatted(p);
	char *env = text ? proto_envelope_make(text, strlen(text), rs->sk) : NULL;
	int rc = env ? 0 : -ENOMEM;
	if (rc == 0)
		rc = db_prepare(rs->db,
		                "INSERT INTO commands(id, device_id, type, payload, envelope, "
		                "issued_ms) VALUES (?,?,?,?,?,?)",
		                &st);
	if (rc == 0) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, device_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, type, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, env, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, now);
		rc = db_step_done(rs->db, st);
	}
	free(text);
	free(env);
	if (rc < 0) {
		cJSON_Delete(p);
		return rc;
	}
	log_info("command %s (%s) for device %s", id, type, device_id);
	*payload = p;
	return 0;
}

int commands_pending(struct rs_db *db, const char *device_id, cJSON *envelopes)
{
	sqlite3_stmt *st;
	int rc =
	    db_prepare(db,
	               "SELECT envelope FROM commands WHERE device_id = ? AND result_ms IS NULL "
	               "ORDER BY issued_ms, rowid",
	               &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		cJSON *env = db_column_json(st, 0);
		if (!env || !cJSON_AddItemToArray(envelopes, env)) {
			cJSON_Delete(env);
			rc = -ENOMEM;
			break;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

int commands_result(struct rs_db *db, const char *device_id, const char *command_id, int ok,
                    const char *event_id, int64_t now_ms)
{
	sqlite3_stmt *st;
	int rc =
	    db_prepare(db, "SELECT result_ms FROM commands WHERE id = ? AND device_id = ?", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, command_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, device_id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	int done = s == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
	sqlite3_finalize(st);
	if (s != SQLITE_ROW)
		return s == SQLITE_DONE ? -ENOENT : db_fail(db, "command get");
	if (done)
		return 0;
	rc = db_prepare(db,
	                "UPDATE commands SET result_ok = ?, result_ms = ?, result_event = ? "
	                "WHERE id = ?",
	                &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int(st, 1, ok ? 1 : 0);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_text(st, 3, event_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, command_id, -1, SQLITE_STATIC);
	rc = db_step_done(db, st);
	if (rc == 0)
		log_info("command %s done on device %s: %s", command_id, device_id,
		         ok ? "ok" : "failed");
	return rc;
}

cJSON *commands_list_json(struct rs_db *db, const char *device_id)
{
	sqlite3_stmt *st;
	cJSON *arr = cJSON_CreateArray();
	if (!arr || db_prepare(db,
	                       "SELECT payload, result_ok, result_ms FROM commands "
	                       "WHERE device_id = ? ORDER BY issued_ms, rowid",
	                       &st) < 0) {
		cJSON_Delete(arr);
		return NULL;
	}
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		cJSON *o = cJSON_CreateObject();
		cJSON *p = db_column_json(st, 0);
		int pending = sqlite3_column_type(st, 2) == SQLITE_NULL;
		if (!o || !p) {
			cJSON_Delete(o);
			cJSON_Delete(p);
			break;
		}
		cJSON_AddItemToObject(o, "command", p);
		cJSON_AddBoolToObject(o, "pending", pending);
		if (pending) {
			cJSON_AddNullToObject(o, "ok");
			cJSON_AddNullToObject(o, "result_ms");
		} else {
			cJSON_AddBoolToObject(o, "ok", sqlite3_column_int(st, 1));
			cJSON_AddNumberToObject(o, "result_ms",
			                        (double)sqlite3_column_int64(st, 2));
		}
		cJSON_AddItemToArray(arr, o);
	}
	sqlite3_finalize(st);
	return arr;
}

#include "sync/refserver/devices.h"
#include "agent/log.h"
#include "sync/refserver/db.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static void random_id(const char *prefix, char *out, size_t cap)
{
	unsigned char b[8];
	char hex[17];
	randombytes_buf(b, sizeof(b));
	sodium_bin2hex(hex, sizeof(hex), b, sizeof(b));
	snprintf(out, cap, "%s%s", prefix, hex);
}

int devices_token_create(struct rs_db *db, const char *token, const char *unit, int64_t ttl_s,
                         int64_t now_ms, char *out)
{
	sqlite3_stmt *st;
	if (token)
		snprintf(out, PROTO_ID_MAX + 1, "%s", token);
	else
		random_id("t-", out, PROTO_ID_MAX + 1);
	int rc = db_prepare(db,
	                    "INSERT INTO tokens(token, unit, created_ms, expires_ms) "
	                    "VALUES (?, ?, ?, ?)",
	                    &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, out, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, unit, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms);
	sqlite3_bind_int64(st, 4, now_ms + ttl_s * 1000);
	int s = sqlite3_step(st);
	sqlite3_finalize(st);
	if (s == SQLITE_CONSTRAINT)
		return -EEXIST;
	return s == SQLITE_DONE ? 0 : db_fail(db, "token insert");
}

static int read_device(sqlite3_stmt *st, struct rs_device *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s", (const char *)sqlite3_column_text(st, 0));
	snprintf(out->unit, sizeof(out->unit), "%s", (const char *)sqlite3_column_text(st, 1));
	if (sqlite3_column_bytes(st, 2) != 32)
		return -EIO;
	memcpy(out->pk, sqlite3_column_blob(st, 2), 32);
	out->revoked = sqlite3_column_type(st, 3) != SQLITE_NULL;
	return 0;
}

int devices_get(struct rs_db *db, const char *id, struct rs_device *out)
{
	sqlite3_stmt *st;
	int rc = db_prepare(db,
	                    "SELECT id, unit, public_key, revoked_ms FROM devices WHERE id = ?",
	                    &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW)
		rc = read_device(st, out);
	else
		rc = s == SQLITE_DONE ? -ENOENT : db_fail(db, "device get");
	sqlite3_finalize(st);
	return rc;
}

int devices_enroll(struct rs_db *db, const char *token, const unsigned char pk[32],
                   const char *serial, const char *board, const char *agent_version,
                   int64_t now_ms, struct rs_device *out)
{
	sqlite3_stmt *st = NULL;
	char unit[PROTO_ID_MAX + 1], used_by[PROTO_ID_MAX + 1] = "";
	int rc = db_begin(db);
	if (rc < 0)
		return rc;
	if ((rc = db_prepare(db,
	                     "SELECT unit, expires_ms, device_id, public_key FROM tokens "
	                     "WHERE token = ?",
	                     &st)) < 0)
		goto out;
	sqlite3_bind_text(st, 1, token, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s != SQLITE_ROW) {
		rc = s == SQLITE_DONE ? -EACCES : db_fail(db, "token get");
		goto out;
	}
	snprintf(unit, sizeof(unit), "%s", (const char *)sqlite3_column_text(st, 0));
	int64_t expires = sqlite3_column_int64(st, 1);
	if (sqlite3_column_type(st, 2) != SQLITE_NULL) {
		/* used: the same key again is the same enrollment, answered again */
		int same = sqlite3_column_bytes(st, 3) == 32 &&
		           sodium_memcmp(sqlite3_column_blob(st, 3), pk, 32) == 0;
		snprintf(used_by, sizeof(used_by), "%s", (const char *)sqlite3_column_text(st, 2));
		sqlite3_finalize(st);
		st = NULL;
		if (!same || expires <= now_ms) {
			rc = -EACCES;
			goto out;
		}
		rc = devices_get(db, used_by, out);
		if (rc == 0 && out->revoked)
			rc = -EACCES;
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (expires <= now_ms) {
		rc = -EACCES;
		goto out;
	}
	memset(out, 0, sizeof(*out));
	random_id("d-", out->id, sizeof(out->id));
	snprintf(out->unit, sizeof(out->unit), "%s", unit);
	memcpy(out->pk, pk, 32);
	if ((rc = db_prepare(db,
	                     "INSERT INTO devices(id, unit, public_key, serial, board, "
	                     "agent_version, enrolled_ms, last_seen_ms) VALUES (?,?,?,?,?,?,?,?)",
	                     &st)) < 0)
		goto out;
	sqlite3_bind_text(st, 1, out->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, out->unit, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, pk, 32, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, board, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, agent_version, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, now_ms);
	sqlite3_bind_int64(st, 8, now_ms);
	rc = db_step_done(db, st);
	st = NULL;
	if (rc < 0)
		goto out;
	if ((rc = db_prepare(db, "UPDATE tokens SET device_id = ?, public_key = ? WHERE token = ?",
	                     &st)) < 0)
		goto out;
	sqlite3_bind_text(st, 1, out->id, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, pk, 32, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, token, -1, SQLITE_STATIC);
	rc = db_step_done(db, st);
	st = NULL;
out:
	sqlite3_finalize(st);
	if (rc == 0)
		return db_commit(db);
	db_rollback(db);
	return rc;
}

int devices_touch(struct rs_db *db, const char *id, int64_t now_ms)
{
	sqlite3_stmt *st;
	int rc = db_prepare(db, "UPDATE devices SET last_seen_ms = ? WHERE id = ?", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	return db_step_done(db, st);
}

int devices_revoke(struct rs_db *db, const char *id, int64_t now_ms)
{
	sqlite3_stmt *st;
	int rc = db_prepare(db,
	                    "UPDATE devices SET revoked_ms = coalesce(revoked_ms, ?) WHERE id = ?",
	                    &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	rc = db_step_done(db, st);
	if (rc == 0 && sqlite3_changes(db_sqlite(db)) == 0)
		rc = -ENOENT;
	if (rc == 0)
		log_info("device %s revoked", id);
	return rc;
}

cJSON *devices_list_json(struct rs_db *db)
{
	sqlite3_stmt *st;
	cJSON *arr = cJSON_CreateArray();
	if (!arr || db_prepare(db,
	                       "SELECT id, unit, serial, board, agent_version, enrolled_ms, "
	                       "revoked_ms, last_seen_ms FROM devices ORDER BY enrolled_ms, id",
	                       &st) < 0) {
		cJSON_Delete(arr);
		return NULL;
	}
	static const char *const names[] = {"device_id",   "unit",       "serial",
	                                    "board",       "agent_version", "enrolled_ms",
	                                    "revoked_ms",  "last_seen_ms"};
	while (sqlite3_step(st) == SQLITE_ROW) {
		cJSON *o = cJSON_CreateObject();
		if (!o)
			break;
		for (int i = 0; i < 8; i++) {
			if (sqlite3_column_type(st, i) == SQLITE_NULL)
				cJSON_AddNullToObject(o, names[i]);
			else if (i < 5)
				cJSON_AddStringToObject(o, names[i],
				                        (const char *)sqlite3_column_text(st, i));
			else
				cJSON_AddNumberToObject(o, names[i],
				                        (double)sqlite3_column_int64(st, i));
		}
		cJSON_AddItemToArray(arr, o);
	}
	sqlite3_finalize(st);
	return arr;
}

#include "sync/refserver/telemetry.h"
#include "agent/store.h"
#include "sync/proto.h"
#include "sync/refserver/db.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define SETERR(...) snprintf(err, errlen, __VA_ARGS__)

int telemetry_positions(struct rs_db *db, const char *device_id, const struct store_fix *fixes,
                        size_t n, int64_t now_ms, size_t *accepted, size_t *duplicates)
{
	sqlite3_stmt *st;
	size_t acc = 0;
	int rc = db_begin(db);
	if (rc < 0)
		return rc;
	rc =
	    db_prepare(db,
	               "INSERT OR IGNORE INTO positions(device_id, t, lat_e7, lon_e7, accuracy_dm, "
	               "speed_cm_s, heading_cdeg, mode, received_ms) VALUES (?,?,?,?,?,?,?,?,?)",
	               &st);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const struct store_fix *f = &fixes[i];
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, f->t_ms);
		sqlite3_bind_int(st, 3, f->lat_e7);
		sqlite3_bind_int(st, 4, f->lon_e7);
		sqlite3_bind_int(st, 5, f->accuracy_dm);
		sqlite3_bind_int(st, 6, f->speed_cm_s);
		sqlite3_bind_int(st, 7, f->heading_cdeg);
		sqlite3_bind_int(st, 8, f->mode);
		sqlite3_bind_int64(st, 9, now_ms);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = db_fail(db, "position insert");
		else
			acc += (size_t)sqlite3_changes(db_sqlite(db));
	}
	sqlite3_finalize(st);
	if (rc == 0)
		rc = db_commit(db);
	else
		db_rollback(db);
	if (rc == 0) {
		*accepted = acc;
		*duplicates = n - acc;
	}
	return rc;
}

static int want_int(const cJSON *o, const char *name, int nullable, double min, double max,
                    char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (nullable && cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
	    v->valuedouble != floor(v->valuedouble) || v->valuedouble < min ||
	    v->valuedouble > max) {
		SETERR("%s missing or not an integer in range%s", name,
		       nullable ? " (or null)" : "");
		return -EINVAL;
	}
	return 0;
}

static int want_enum(const cJSON *o, const char *name, const char *const *names, int n, char *err,
                     size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	for (int i = 0; cJSON_IsString(v) && i < n; i++)
		if (strcmp(v->valuestring, names[i]) == 0)
			return 0;
	SETERR("%s missing or not one of its values", name);
	return -EINVAL;
}

int telemetry_heartbeat_check(const cJSON *hb, char *err, size_t errlen)
{
	static const char *const powers[] = {"vehicle", "ac", "battery"};
	static const char *const clocks[] = {"gps", "system", "unsynced"};
	const double big = 9007199254740992.0; /* 2^53 */
	const cJSON *v;
	if (!cJSON_IsObject(hb)) {
		SETERR("body is not a JSON object");
		return -EINVAL;
	}
	v = cJSON_GetObjectItemCaseSensitive(hb, "agent_version");
	if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > 128) {
		SETERR("agent_version missing or not a string of 1-128 bytes");
		return -EINVAL;
	}
	if (want_int(hb, "uptime_s", 0, 0, big, err, errlen) < 0 ||
	    want_enum(hb, "power", powers, 3, err, errlen) < 0 ||
	    want_int(hb, "battery_pct", 1, 0, 100, err, errlen) < 0 ||
	    want_int(hb, "rejected_events", 0, 0, big, err, errlen) < 0 ||
	    want_enum(hb, "clock", clocks, 3, err, errlen) < 0 ||
	    want_int(hb, "db_bytes", 0, 0, big, err, errlen) < 0)
		return -EINVAL;
	v = cJSON_GetObjectItemCaseSensitive(hb, "queue");
	if (!cJSON_IsObject(v)) {
		SETERR("queue missing or not an object");
		return -EINVAL;
	}
	if (want_int(v, "events", 0, 0, big, err, errlen) < 0 ||
	    want_int(v, "positions", 0, 0, big, err, errlen) < 0) {
		char inner[128];
		snprintf(inner, sizeof(inner), "queue.%s", err);
		SETERR("%s", inner);
		return -EINVAL;
	}
	v = cJSON_GetObjectItemCaseSensitive(hb, "last_fix");
	if (!v || (!cJSON_IsNull(v) && !cJSON_IsObject(v))) {
		SETERR("last_fix missing (an object or null)");
		return -EINVAL;
	}
	if (cJSON_IsObject(v)) {
		const cJSON *lat = cJSON_GetObjectItemCaseSensitive(v, "lat");
		const cJSON *lon = cJSON_GetObjectItemCaseSensitive(v, "lon");
		const cJSON *acc = cJSON_GetObjectItemCaseSensitive(v, "accuracy_m");
		if (want_int(v, "t", 0, 1, big, err, errlen) < 0 || !cJSON_IsNumber(lat) ||
		    !cJSON_IsNumber(lon) || !cJSON_IsNumber(acc) || !isfinite(lat->valuedouble) ||
		    !isfinite(lon->valuedouble) || !isfinite(acc->valuedouble) ||
		    fabs(lat->valuedouble) > 90 || fabs(lon->valuedouble) > 180 ||
		    acc->valuedouble < 0) {
			SETERR("last_fix needs t (unix ms), lat, lon and accuracy_m in range");
			return -EINVAL;
		}
	}
	return 0;
}

int telemetry_heartbeat(struct rs_db *db, const char *device_id, const char *body, size_t len,
                        int64_t now_ms)
{
	sqlite3_stmt *st;
	int rc = db_prepare(
	    db, "INSERT INTO heartbeats(device_id, body, received_ms) VALUES (?,?,?)", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, body, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms);
	return db_step_done(db, st);
}

cJSON *telemetry_positions_json(struct rs_db *db, const char *device_id)
{
	sqlite3_stmt *st;
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = o ? cJSON_AddArrayToObject(o, "fixes") : NULL;
	if (!arr || db_prepare(db,
	                       "SELECT t, lat_e7, lon_e7, accuracy_dm, speed_cm_s, heading_cdeg, "
	                       "mode FROM positions WHERE device_id = ? ORDER BY t",
	                       &st) < 0) {
		cJSON_Delete(o);
		return NULL;
	}
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		cJSON *fx = cJSON_CreateArray();
		for (int i = 0; fx && i < 7; i++)
			cJSON_AddItemToArray(
			    fx, cJSON_CreateNumber((double)sqlite3_column_int64(st, i)));
		if (fx)
			cJSON_AddItemToArray(arr, fx);
	}
	sqlite3_finalize(st);
	return o;
}

cJSON *telemetry_heartbeats_json(struct rs_db *db, const char *device_id)
{
	sqlite3_stmt *st;
	cJSON *arr = cJSON_CreateArray();
	if (!arr || db_prepare(db,
	                       "SELECT received_ms, body FROM heartbeats WHERE device_id = ? "
	                       "ORDER BY id",
	                       &st) < 0) {
		cJSON_Delete(arr);
		return NULL;
	}
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		cJSON *o = cJSON_CreateObject();
		cJSON *hb = db_column_json(st, 1);
		if (!o || !hb) {
			cJSON_Delete(o);
			cJSON_Delete(hb);
			break;
		}
		cJSON_AddNumberToObject(o, "received_ms", (double)sqlite3_column_int64(st, 0));
		cJSON_AddItemToObject(o, "heartbeat", hb);
		cJSON_AddItemToArray(arr, o);
	}
	sqlite3_finalize(st);
	return arr;
}

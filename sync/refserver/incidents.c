#include "sync/refserver/incidents.h"
#include "agent/log.h"
#include "sync/refserver/db.h"
#include "sync/refserver/feed.h"
#include "sync/refserver/rs.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SETERR(...) snprintf(err, errlen, __VA_ARGS__)

static int state_parse(const char *s, enum proto_dispatch_state *out)
{
	for (int i = PROTO_STATE_ASSIGNED; i <= PROTO_STATE_CLOSED; i++) {
		if (s && strcmp(s, proto_state_name((enum proto_dispatch_state)i)) == 0) {
			*out = (enum proto_dispatch_state)i;
			return 0;
		}
	}
	return -EINVAL;
}

static int set_field(cJSON *doc, const char *name, cJSON *item)
{
	if (!item)
		return -ENOMEM;
	if (cJSON_GetObjectItemCaseSensitive(doc, name))
		return cJSON_ReplaceItemInObjectCaseSensitive(doc, name, item) ? 0 : -ENOMEM;
	return cJSON_AddItemToObject(doc, name, item) ? 0 : -ENOMEM;
}

/* The latest version of an incident, whatever the unit. */
struct current {
	cJSON *doc;
	int64_t version;
	char unit[PROTO_ID_MAX + 1];
	enum proto_dispatch_state state;
};

static int load_current(struct rs_db *db, const char *id, struct current *c)
{
	sqlite3_stmt *st;
	memset(c, 0, sizeof(*c));
	int rc = db_prepare(db,
	                    "SELECT version, unit, state, doc FROM versions WHERE incident_id = ? "
	                    "ORDER BY version DESC LIMIT 1",
	                    &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		c->version = sqlite3_column_int64(st, 0);
		snprintf(c->unit, sizeof(c->unit), "%s", (const char *)sqlite3_column_text(st, 1));
		if (state_parse((const char *)sqlite3_column_text(st, 2), &c->state) < 0)
			rc = -EIO;
		c->doc = db_column_json(st, 3);
		if (!c->doc)
			rc = -EIO;
	} else {
		rc = s == SQLITE_DONE ? -ENOENT : db_fail(db, "incident get");
	}
	sqlite3_finalize(st);
	if (rc < 0) {
		cJSON_Delete(c->doc);
		c->doc = NULL;
	}
	return rc;
}

/* Stamps version, state and unit on doc, checks it as an agent would, signs
 * it and appends it to the unit's feed. */
static int add_version(struct rs *rs, const char *id, int64_t version, const char *unit,
                       enum proto_dispatch_state state, cJSON *doc, char *err, size_t errlen)
{
	struct proto_incident pi;
	sqlite3_stmt *st;
	int rc;
	if ((rc = set_field(doc, "version", cJSON_CreateNumber((double)version))) < 0 ||
	    (rc = set_field(doc, "state", cJSON_CreateString(proto_state_name(state)))) < 0 ||
	    (rc = set_field(doc, "unit", cJSON_CreateString(unit))) < 0)
		return rc;
	char *text = cJSON_PrintUnformatted(doc);
	if (!text)
		return -ENOMEM;
	size_t len = strlen(text);
	char perr[160] = "";
	if (proto_incident_parse(text, len, &pi, perr, sizeof(perr)) < 0) {
		SETERR("the document would not be valid: %s", perr);
		free(text);
		return -EINVAL;
	}
	char *env = proto_envelope_make(text, len, rs->sk);
	if (!env) {
		free(text);
		return -ENOMEM;
	}
	rc = db_prepare(rs->db,
	                "INSERT INTO versions(incident_id, version, unit, state, doc, envelope, "
	                "created_ms) VALUES (?,?,?,?,?,?,?)",
	                &st);
	if (rc == 0) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, version);
		sqlite3_bind_text(st, 3, unit, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, proto_state_name(state), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, text, (int)len, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, env, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 7, rs_now_ms(rs));
		rc = db_step_done(rs->db, st);
	}
	if (rc == 0)
		log_info("incident %s v%" PRId64 " %s for unit %s", id, version,
		         proto_state_name(state), unit);
	free(env);
	free(text);
	return rc;
}

static int reset_status(struct rs_db *db, const char *id, const char *unit)
{
	sqlite3_stmt *st;
	int rc = db_prepare(db, "DELETE FROM unit_status WHERE incident_id = ? AND unit = ?", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, unit, -1, SQLITE_STATIC);
	return db_step_done(db, st);
}

static int finish(struct rs *rs, int rc, const char *unit_a, const char *unit_b, cJSON *doc,
                  cJSON **out)
{
	if (rc == 0)
		rc = db_commit(rs->db);
	else
		db_rollback(rs->db);
	if (rc == 0) {
		if (unit_a)
			feed_wake_unit(rs->feed, unit_a);
		if (unit_b)
			feed_wake_unit(rs->feed, unit_b);
		*out = doc;
		return 0;
	}
	cJSON_Delete(doc);
	return rc;
}

static int reserved(const char *name)
{
	return strcmp(name, "id") == 0 || strcmp(name, "version") == 0 ||
	       strcmp(name, "state") == 0 || strcmp(name, "unit") == 0;
}

int incidents_create(struct rs *rs, const cJSON *fields, cJSON **out, char *err, size_t errlen)
{
	char id[PROTO_ID_MAX + 1];
	const cJSON *unit = cJSON_GetObjectItemCaseSensitive(fields, "unit");
	const cJSON *fid = cJSON_GetObjectItemCaseSensitive(fields, "id");
	const cJSON *it;
	*out = NULL;
	if (!cJSON_IsObject(fields)) {
		SETERR("body must be a JSON object");
		return -EINVAL;
	}
	if (!cJSON_IsString(unit) || !proto_id_valid(unit->valuestring)) {
		SETERR("unit missing or not a valid id");
		return -EINVAL;
	}
	if (cJSON_GetObjectItemCaseSensitive(fields, "version") ||
	    cJSON_GetObjectItemCaseSensitive(fields, "state")) {
		SETERR("version and state are set by the server");
		return -EINVAL;
	}
	if (fid) {
		if (!cJSON_IsString(fid) || !proto_id_valid(fid->valuestring)) {
			SETERR("id not a valid id");
			return -EINVAL;
		}
		snprintf(id, sizeof(id), "%s", fid->valuestring);
	} else {
		unsigned char b[6];
		char hex[13];
		randombytes_buf(b, sizeof(b));
		sodium_bin2hex(hex, sizeof(hex), b, sizeof(b));
		snprintf(id, sizeof(id), "inc-%s", hex);
	}
	cJSON *doc = cJSON_CreateObject();
	if (!doc || !cJSON_AddStringToObject(doc, "id", id) ||
	    !cJSON_AddNumberToObject(doc, "version", 1)) {
		cJSON_Delete(doc);
		return -ENOMEM;
	}
	cJSON_ArrayForEach(it, fields)
	{
		if (!reserved(it->string) &&
		    set_field(doc, it->string, cJSON_Duplicate(it, 1)) < 0) {
			cJSON_Delete(doc);
			return -ENOMEM;
		}
	}
	if (!cJSON_GetObjectItemCaseSensitive(doc, "reported_at")) {
		char t[32];
		proto_time_format(rs_now_ms(rs), t);
		if (!cJSON_AddStringToObject(doc, "reported_at", t)) {
			cJSON_Delete(doc);
			return -ENOMEM;
		}
	}
	int rc = db_begin(rs->db);
	if (rc < 0) {
		cJSON_Delete(doc);
		return rc;
	}
	struct current c;
	rc = load_current(rs->db, id, &c);
	if (rc == 0) {
		cJSON_Delete(c.doc);
		SETERR("incident exists");
		rc = -EEXIST;
	} else if (rc == -ENOENT) {
		rc = add_version(rs, id, 1, unit->valuestring, PROTO_STATE_ASSIGNED, doc, err,
		                 errlen);
		if (rc == 0)
			rc = reset_status(rs->db, id, unit->valuestring);
	}
	return finish(rs, rc, unit->valuestring, NULL, doc, out);
}

/* Loads the current version for a change: only an assigned incident changes. */
static int begin_change(struct rs *rs, const char *id, struct current *c, char *err, size_t errlen)
{
	int rc = db_begin(rs->db);
	if (rc < 0)
		return rc;
	rc = load_current(rs->db, id, c);
	if (rc == -ENOENT)
		SETERR("no such incident");
	if (rc == 0 && c->state != PROTO_STATE_ASSIGNED) {
		SETERR("the incident is %s", proto_state_name(c->state));
		rc = -EALREADY;
	}
	if (rc < 0) {
		cJSON_Delete(c->doc);
		c->doc = NULL;
		db_rollback(rs->db);
	}
	return rc;
}

int incidents_update(struct rs *rs, const char *id, const cJSON *fields, cJSON **out, char *err,
                     size_t errlen)
{
	struct current c;
	const cJSON *it;
	*out = NULL;
	if (!cJSON_IsObject(fields)) {
		SETERR("body must be a JSON object");
		return -EINVAL;
	}
	cJSON_ArrayForEach(it, fields)
	{
		if (reserved(it->string)) {
			SETERR("id, version, state and unit cannot be changed here");
			return -EINVAL;
		}
	}
	int rc = begin_change(rs, id, &c, err, errlen);
	if (rc < 0)
		return rc;
	cJSON_ArrayForEach(it, fields)
	{
		if (cJSON_IsNull(it))
			cJSON_DeleteItemFromObjectCaseSensitive(c.doc, it->string);
		else if ((rc = set_field(c.doc, it->string, cJSON_Duplicate(it, 1))) < 0)
			break;
	}
	if (rc == 0)
		rc = add_version(rs, id, c.version + 1, c.unit, PROTO_STATE_ASSIGNED, c.doc, err,
		                 errlen);
	return finish(rs, rc, c.unit, NULL, c.doc, out);
}

int incidents_add_note(struct rs *rs, const char *id, const char *text, cJSON **out, char *err,
                       size_t errlen)
{
	struct current c;
	char t[32];
	*out = NULL;
	if (!text || !text[0] || strlen(text) > PROTO_TEXT_MAX) {
		SETERR("text missing or longer than %d bytes", PROTO_TEXT_MAX);
		return -EINVAL;
	}
	int rc = begin_change(rs, id, &c, err, errlen);
	if (rc < 0)
		return rc;
	cJSON *notes = cJSON_GetObjectItemCaseSensitive(c.doc, "dispatch_notes");
	if (!cJSON_IsArray(notes)) {
		notes = cJSON_CreateArray();
		rc = set_field(c.doc, "dispatch_notes", notes);
	}
	cJSON *note = cJSON_CreateObject();
	proto_time_format(rs_now_ms(rs), t);
	if (rc < 0 || !note || !cJSON_AddStringToObject(note, "at", t) ||
	    !cJSON_AddStringToObject(note, "text", text) || !cJSON_AddItemToArray(notes, note)) {
		cJSON_Delete(note);
		rc = -ENOMEM;
	}
	if (rc == 0)
		rc = add_version(rs, id, c.version + 1, c.unit, PROTO_STATE_ASSIGNED, c.doc, err,
		                 errlen);
	return finish(rs, rc, c.unit, NULL, c.doc, out);
}

int incidents_end(struct rs *rs, const char *id, enum proto_dispatch_state state, cJSON **out,
                  char *err, size_t errlen)
{
	struct current c;
	*out = NULL;
	int rc = begin_change(rs, id, &c, err, errlen);
	if (rc < 0)
		return rc;
	rc = add_version(rs, id, c.version + 1, c.unit, state, c.doc, err, errlen);
	return finish(rs, rc, c.unit, NULL, c.doc, out);
}

int incidents_reassign(struct rs *rs, const char *id, const char *unit, cJSON **out, char *err,
                       size_t errlen)
{
	struct current c;
	*out = NULL;
	if (!unit || !proto_id_valid(unit)) {
		SETERR("unit missing or not a valid id");
		return -EINVAL;
	}
	int rc = begin_change(rs, id, &c, err, errlen);
	if (rc < 0)
		return rc;
	if (strcmp(unit, c.unit) == 0) {
		SETERR("the incident is assigned to that unit already");
		rc = -EINVAL;
	}
	if (rc == 0)
		rc = add_version(rs, id, c.version + 1, c.unit, PROTO_STATE_REASSIGNED, c.doc, err,
		                 errlen);
	if (rc == 0)
		rc = add_version(rs, id, c.version + 2, unit, PROTO_STATE_ASSIGNED, c.doc, err,
		                 errlen);
	if (rc == 0)
		rc = reset_status(rs->db, id, unit);
	char from[PROTO_ID_MAX + 1];
	snprintf(from, sizeof(from), "%s", c.unit);
	return finish(rs, rc, from, unit, c.doc, out);
}

int incidents_view(struct rs_db *db, const char *id, const char *unit, struct rs_view *out)
{
	sqlite3_stmt *st;
	memset(out, 0, sizeof(*out));
	int rc =
	    db_prepare(db,
	               "SELECT v.version, v.state, v.envelope, coalesce(s.status, 0) "
	               "FROM versions v LEFT JOIN unit_status s "
	               "ON s.incident_id = v.incident_id AND s.unit = v.unit "
	               "WHERE v.incident_id = ? AND v.unit = ? ORDER BY v.version DESC LIMIT 1",
	               &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, unit, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		out->version = sqlite3_column_int64(st, 0);
		if (state_parse((const char *)sqlite3_column_text(st, 1), &out->state) < 0)
			rc = -EIO;
		int status = sqlite3_column_int(st, 3);
		out->status = status >= 0 && status <= PROTO_STATUS_DECLINED
		                  ? (enum proto_status)status
		                  : PROTO_STATUS_NONE;
		out->envelope = strdup((const char *)sqlite3_column_text(st, 2));
		if (!out->envelope)
			rc = -ENOMEM;
	} else {
		rc = s == SQLITE_DONE ? -ENOENT : db_fail(db, "incident view");
	}
	sqlite3_finalize(st);
	return rc;
}

int incidents_set_status(struct rs_db *db, const char *id, const char *unit,
                         enum proto_status status)
{
	sqlite3_stmt *st;
	int rc = db_prepare(db,
	                    "INSERT OR REPLACE INTO unit_status(incident_id, unit, status) "
	                    "VALUES (?,?,?)",
	                    &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, unit, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)status);
	return db_step_done(db, st);
}

int incidents_envelope(struct rs_db *db, const char *id, int64_t version, const char *unit,
                       char **envelope)
{
	sqlite3_stmt *st;
	*envelope = NULL;
	int rc = db_prepare(db,
	                    "SELECT envelope FROM versions WHERE incident_id = ? AND version = ? "
	                    "AND unit = ?",
	                    &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, version);
	sqlite3_bind_text(st, 3, unit, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		*envelope = strdup((const char *)sqlite3_column_text(st, 0));
		rc = *envelope ? 0 : -ENOMEM;
	} else {
		rc = s == SQLITE_DONE ? -ENOENT : db_fail(db, "envelope");
	}
	sqlite3_finalize(st);
	return rc;
}

int incidents_cursor_parse(const char *s, int64_t *pos)
{
	*pos = 0;
	if (!s || !s[0])
		return 0;
	if (s[0] != 'c' || !s[1] || strlen(s) > 19)
		return -EINVAL;
	int64_t v = 0;
	for (const char *p = s + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (*p - '0');
	}
	*pos = v;
	return 0;
}

void incidents_cursor_format(int64_t pos, char out[32])
{
	snprintf(out, 32, "c%" PRId64, pos);
}

int incidents_feed(struct rs_db *db, const char *unit, int64_t pos, int max, cJSON *items,
                   int64_t *last)
{
	sqlite3_stmt *st;
	*last = pos;
	int rc = db_prepare(db,
	                    "SELECT seq, envelope FROM versions WHERE unit = ? AND seq > ? "
	                    "ORDER BY seq LIMIT ?",
	                    &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, unit, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, pos);
	sqlite3_bind_int(st, 3, max);
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		cJSON *env = db_column_json(st, 1);
		if (!env || !cJSON_AddItemToArray(items, env)) {
			cJSON_Delete(env);
			rc = -ENOMEM;
			break;
		}
		*last = sqlite3_column_int64(st, 0);
	}
	if (rc == 0 && s != SQLITE_DONE)
		rc = db_fail(db, "feed");
	sqlite3_finalize(st);
	return rc;
}

static cJSON *incident_row(sqlite3_stmt *st)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *doc = db_column_json(st, 4);
	int status = sqlite3_column_int(st, 5);
	const char *sname = status > 0 && status <= PROTO_STATUS_DECLINED
	                        ? proto_status_name((enum proto_status)status)
	                        : NULL;
	if (!o || !doc ||
	    !cJSON_AddStringToObject(o, "id", (const char *)sqlite3_column_text(st, 0)) ||
	    !cJSON_AddNumberToObject(o, "version", (double)sqlite3_column_int64(st, 1)) ||
	    !cJSON_AddStringToObject(o, "unit", (const char *)sqlite3_column_text(st, 2)) ||
	    !cJSON_AddStringToObject(o, "state", (const char *)sqlite3_column_text(st, 3)) ||
	    !(sname ? cJSON_AddStringToObject(o, "status", sname)
	            : cJSON_AddNullToObject(o, "status")) ||
	    !cJSON_AddItemToObject(o, "document", doc)) {
		cJSON_Delete(o);
		cJSON_Delete(doc);
		return NULL;
	}
	return o;
}

#define CURRENT_SQL                                                                                \
	"SELECT v.incident_id, v.version, v.unit, v.state, v.doc, coalesce(s.status, 0) "          \
	"FROM versions v LEFT JOIN unit_status s ON s.incident_id = v.incident_id AND "            \
	"s.unit = v.unit WHERE v.version = (SELECT max(version) FROM versions w "                  \
	"WHERE w.incident_id = v.incident_id) "

cJSON *incidents_list_json(struct rs_db *db)
{
	sqlite3_stmt *st;
	cJSON *arr = cJSON_CreateArray();
	if (!arr || db_prepare(db, CURRENT_SQL "ORDER BY v.seq", &st) < 0) {
		cJSON_Delete(arr);
		return NULL;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		cJSON *o = incident_row(st);
		if (!o || !cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			cJSON_Delete(arr);
			arr = NULL;
			break;
		}
	}
	sqlite3_finalize(st);
	return arr;
}

cJSON *incidents_get_json(struct rs_db *db, const char *id, int *missing)
{
	sqlite3_stmt *st;
	cJSON *o = NULL, *vers;
	*missing = 0;
	if (db_prepare(db, CURRENT_SQL "AND v.incident_id = ?", &st) < 0)
		return NULL;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		o = incident_row(st);
	else
		*missing = 1;
	sqlite3_finalize(st);
	if (!o)
		return NULL;
	vers = cJSON_AddArrayToObject(o, "versions");
	if (!vers || db_prepare(db,
	                        "SELECT version, unit, state, created_ms FROM versions "
	                        "WHERE incident_id = ? ORDER BY version",
	                        &st) < 0) {
		cJSON_Delete(o);
		return NULL;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		cJSON *v = cJSON_CreateObject();
		cJSON_AddNumberToObject(v, "version", (double)sqlite3_column_int64(st, 0));
		cJSON_AddStringToObject(v, "unit", (const char *)sqlite3_column_text(st, 1));
		cJSON_AddStringToObject(v, "state", (const char *)sqlite3_column_text(st, 2));
		cJSON_AddNumberToObject(v, "created_ms", (double)sqlite3_column_int64(st, 3));
		cJSON_AddItemToArray(vers, v);
	}
	sqlite3_finalize(st);
	return o;
}

#include "sync/refserver/events.h"
#include "agent/log.h"
#include "sync/proto.h"
#include "sync/refserver/commands.h"
#include "sync/refserver/db.h"
#include "sync/refserver/devices.h"
#include "sync/refserver/incidents.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum outcome { ACCEPTED = 0, DUPLICATE, CONFLICT, REJECTED };
static const char *const outcome_names[] = {"accepted", "duplicate", "conflict", "rejected"};

static int accepted_before(struct rs_db *db, const char *event_id, int *yes)
{
	sqlite3_stmt *st;
	int rc =
	    db_prepare(db, "SELECT 1 FROM events WHERE event_id = ? AND result = 'accepted'", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, event_id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	*yes = s == SQLITE_ROW;
	sqlite3_finalize(st);
	return s == SQLITE_ROW || s == SQLITE_DONE ? 0 : db_fail(db, "event lookup");
}

static int record(struct rs_db *db, const char *device_id, const cJSON *ev,
                  const struct proto_event *pe, int parsed, enum outcome res, const char *reason,
                  int64_t now_ms)
{
	sqlite3_stmt *st;
	char *body = cJSON_PrintUnformatted(ev);
	if (!body)
		return -ENOMEM;
	int rc = db_prepare(db,
	                    "INSERT INTO events(device_id, event_id, type, incident_id, result, "
	                    "reason, body, received_ms) VALUES (?,?,?,?,?,?,?,?)",
	                    &st);
	if (rc == 0) {
		sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
		if (parsed) {
			sqlite3_bind_text(st, 2, pe->event_id, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, proto_event_type_name(pe->type), -1,
			                  SQLITE_STATIC);
			if (pe->incident_id[0])
				sqlite3_bind_text(st, 4, pe->incident_id, -1, SQLITE_STATIC);
		}
		sqlite3_bind_text(st, 5, outcome_names[res], -1, SQLITE_STATIC);
		if (reason)
			sqlite3_bind_text(st, 6, reason, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, body, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 8, now_ms);
		rc = db_step_done(db, st);
	}
	free(body);
	return rc;
}

static int add_receipt(struct rs_db *db, const char *device_id, const struct proto_event *pe,
                       int64_t now_ms)
{
	sqlite3_stmt *st;
	int rc = db_prepare(db,
	                    "INSERT OR IGNORE INTO receipts(device_id, incident_id, version, "
	                    "received_ms) VALUES (?,?,?,?)",
	                    &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, pe->incident_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, pe->incident_version);
	sqlite3_bind_int64(st, 4, now_ms);
	return db_step_done(db, st);
}

/* Why proto_status_check said conflict, in words. */
static void conflict_reason(const struct rs_view *v, enum proto_status next, char *out, size_t cap)
{
	if (v->state != PROTO_STATE_ASSIGNED)
		snprintf(out, cap, "the incident is %s", proto_state_name(v->state));
	else if (proto_status_final(v->status))
		snprintf(out, cap, "status %s is final", proto_status_name(v->status));
	else if (next == PROTO_STATUS_DECLINED)
		snprintf(out, cap, "declined is allowed only before on_scene");
	else if (next == PROTO_STATUS_UNABLE_TO_LOCATE)
		snprintf(out, cap, "unable_to_locate is allowed only from en_route or on_scene");
	else
		snprintf(out, cap, "status would go back from %s to %s",
		         v->status ? proto_status_name(v->status) : "none",
		         proto_status_name(next));
}

/* The incident events: status, note, receipt. */
static int apply_incident(struct rs_db *db, const struct rs_device *dev,
                          const struct proto_event *pe, int64_t now_ms, enum outcome *res,
                          char *reason, size_t rcap, char **envelope)
{
	struct rs_view v;
	int rc = incidents_view(db, pe->incident_id, dev->unit, &v);
	if (rc == -ENOENT) {
		*res = REJECTED;
		snprintf(reason, rcap, "unknown incident");
		return 0;
	}
	if (rc < 0)
		return rc;
	if (pe->incident_version > v.version) {
		*res = REJECTED;
		snprintf(reason, rcap, "incident_version %lld was never sent to this unit",
		         (long long)pe->incident_version);
		goto out;
	}
	*res = ACCEPTED;
	switch (pe->type) {
	case PROTO_EV_RECEIPT:
		rc = add_receipt(db, dev->id, pe, now_ms);
		break;
	case PROTO_EV_NOTE:
		if (v.state != PROTO_STATE_ASSIGNED) {
			*res = CONFLICT;
			snprintf(reason, rcap, "the incident is %s", proto_state_name(v.state));
		}
		break;
	case PROTO_EV_STATUS:
		switch (proto_status_check(v.state, v.status, pe->status)) {
		case PROTO_ACCEPT:
			rc = incidents_set_status(db, pe->incident_id, dev->unit, pe->status);
			if (rc == 0)
				log_info("incident %s unit %s: %s", pe->incident_id, dev->unit,
				         proto_status_name(pe->status));
			break;
		case PROTO_SAME:
			break;
		case PROTO_CONFLICT:
			*res = CONFLICT;
			conflict_reason(&v, pe->status, reason, rcap);
			break;
		}
		break;
	default:
		break;
	}
out:
	if (*res == CONFLICT) {
		*envelope = v.envelope;
		v.envelope = NULL;
	}
	free(v.envelope);
	return rc;
}

static cJSON *result_json(const cJSON *ev, const struct proto_event *pe, int parsed,
                          enum outcome res, const char *reason, const char *envelope)
{
	cJSON *o = cJSON_CreateObject();
	const char *id = "";
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(ev, "event_id");
	if (parsed)
		id = pe->event_id;
	else if (cJSON_IsString(f) && strlen(f->valuestring) <= PROTO_ID_MAX)
		id = f->valuestring; /* echoed so the device can match it */
	if (!o || !cJSON_AddStringToObject(o, "event_id", id) ||
	    !cJSON_AddStringToObject(o, "result", outcome_names[res]))
		goto fail;
	if ((res == CONFLICT || res == REJECTED) &&
	    !cJSON_AddStringToObject(o, "reason", reason && reason[0] ? reason : "not allowed"))
		goto fail;
	if (envelope) {
		cJSON *env = proto_json_parse(envelope, strlen(envelope));
		if (!env || !cJSON_AddItemToObject(o, "incident", env)) {
			cJSON_Delete(env);
			goto fail;
		}
	}
	return o;
fail:
	cJSON_Delete(o);
	return NULL;
}

int events_apply(struct rs_db *db, const struct rs_device *dev, const cJSON *ev, int64_t now_ms,
                 cJSON **result)
{
	struct proto_event pe;
	char reason[256] = "";
	char *envelope = NULL;
	enum outcome res = ACCEPTED;
	int parsed = 0, dup = 0, rc = 0;
	*result = NULL;
	if (proto_event_parse(ev, &pe, reason, sizeof(reason)) < 0) {
		res = REJECTED;
	} else {
		parsed = 1;
		rc = accepted_before(db, pe.event_id, &dup);
		if (rc < 0)
			return rc;
		if (dup) {
			res = DUPLICATE;
		} else {
			switch (pe.type) {
			case PROTO_EV_STATUS:
			case PROTO_EV_NOTE:
			case PROTO_EV_RECEIPT:
				rc = apply_incident(db, dev, &pe, now_ms, &res, reason,
				                    sizeof(reason), &envelope);
				break;
			case PROTO_EV_COMMAND_RESULT:
				rc = commands_result(db, dev->id, pe.command_id, pe.ok, pe.event_id,
				                     now_ms);
				if (rc == -ENOENT) {
					rc = 0;
					res = REJECTED;
					snprintf(reason, sizeof(reason), "unknown command");
				}
				break;
			case PROTO_EV_SOS:
				log_warnx("SOS from device %s (unit %s)", dev->id, dev->unit);
				break;
			}
		}
	}
	if (rc == 0)
		rc = record(db, dev->id, ev, &pe, parsed, res, reason, now_ms);
	if (rc == 0) {
		*result = result_json(ev, &pe, parsed, res, reason, envelope);
		if (!*result)
			rc = -ENOMEM;
	}
	free(envelope);
	return rc;
}

cJSON *events_list_json(struct rs_db *db, const char *device_id, const char *result)
{
	sqlite3_stmt *st;
	cJSON *arr = cJSON_CreateArray();
	if (!arr || db_prepare(db,
	                       "SELECT received_ms, result, reason, body FROM events "
	                       "WHERE device_id = ? AND (?2 IS NULL OR result = ?2) ORDER BY id",
	                       &st) < 0) {
		cJSON_Delete(arr);
		return NULL;
	}
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	if (result)
		sqlite3_bind_text(st, 2, result, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		cJSON *o = cJSON_CreateObject();
		cJSON *ev = db_column_json(st, 3);
		if (!o || !ev) {
			cJSON_Delete(o);
			cJSON_Delete(ev);
			break;
		}
		cJSON_AddNumberToObject(o, "received_ms", (double)sqlite3_column_int64(st, 0));
		cJSON_AddStringToObject(o, "result", (const char *)sqlite3_column_text(st, 1));
		if (sqlite3_column_type(st, 2) == SQLITE_NULL)
			cJSON_AddNullToObject(o, "reason");
		else
			cJSON_AddStringToObject(o, "reason",
			                        (const char *)sqlite3_column_text(st, 2));
		cJSON_AddItemToObject(o, "event", ev);
		cJSON_AddItemToArray(arr, o);
	}
	sqlite3_finalize(st);
	return arr;
}

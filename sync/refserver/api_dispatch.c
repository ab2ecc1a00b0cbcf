/* The dispatcher API (docs/refserver.md): the central side played by tests,
 * the demo or a technician. Everything under /admin, with
 * "Authorization: Bearer <admin token>". */
#include "agent/log.h"
#include "sync/proto.h"
#include "sync/refserver/api.h"
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
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int authorized(struct rs *rs, struct rs_req *r)
{
	const char *h = http_header(r, "Authorization");
	size_t n = strlen(rs->admin_token);
	if (!h || strncmp(h, "Bearer ", 7) != 0 || strlen(h + 7) != n)
		return 0;
	return sodium_memcmp(h + 7, rs->admin_token, n) == 0;
}

static void reply_wrapped(struct rs_req *r, unsigned status, const char *name, cJSON *v)
{
	cJSON *o = cJSON_CreateObject();
	if (!v || !o || !cJSON_AddItemToObject(o, name, v)) {
		cJSON_Delete(o);
		cJSON_Delete(v);
		http_reply_error(r, 500, "internal", "could not build the answer");
		return;
	}
	http_reply(r, status, o);
}

/* Maps a module's error to an answer. */
static void reply_failure(struct rs_req *r, int rc, const char *err)
{
	switch (rc) {
	case -EINVAL:
		http_reply_error(r, 400, "bad_request", "%s", err);
		break;
	case -ENOENT:
		http_reply_error(r, 404, "not_found", "%s", err[0] ? err : "no such thing");
		break;
	case -EEXIST:
	case -EALREADY:
		http_reply_error(r, 409, "conflict", "%s", err);
		break;
	default:
		http_reply_error(r, 500, "internal", "database error");
	}
}

static cJSON *body_object(struct rs_req *r)
{
	cJSON *b = r->body_len ? proto_json_parse(r->body, r->body_len) : cJSON_CreateObject();
	if (!cJSON_IsObject(b)) {
		cJSON_Delete(b);
		http_reply_error(r, 400, "bad_request", "body must be a JSON object");
		return NULL;
	}
	return b;
}

/* ---- tokens ---- */

static void tokens_post(struct rs *rs, struct rs_req *r)
{
	char token[PROTO_ID_MAX + 1];
	cJSON *b = body_object(r);
	if (!b)
		return;
	const cJSON *unit = cJSON_GetObjectItemCaseSensitive(b, "unit");
	const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(b, "ttl_s");
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(b, "token");
	double ttl_s = RS_TOKEN_TTL_DEFAULT_S;
	if (!cJSON_IsString(unit) || !proto_id_valid(unit->valuestring)) {
		http_reply_error(r, 400, "bad_request", "unit missing or not a valid id");
		goto out;
	}
	if (ttl) {
		if (!cJSON_IsNumber(ttl) || ttl->valuedouble != floor(ttl->valuedouble) ||
		    ttl->valuedouble < 1 || ttl->valuedouble > RS_TOKEN_TTL_MAX_S) {
			http_reply_error(r, 400, "bad_request", "ttl_s must be 1..%d",
			                 RS_TOKEN_TTL_MAX_S);
			goto out;
		}
		ttl_s = ttl->valuedouble;
	}
	if (tok && (!cJSON_IsString(tok) || !proto_id_valid(tok->valuestring))) {
		http_reply_error(r, 400, "bad_request", "token must be 1-128 of [A-Za-z0-9._:-]");
		goto out;
	}
	int64_t now = rs_now_ms(rs);
	int rc = devices_token_create(rs->db, tok ? tok->valuestring : NULL, unit->valuestring,
	                              (int64_t)ttl_s, now, token);
	if (rc < 0) {
		reply_failure(r, rc, "token exists");
		goto out;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "token", token);
	cJSON_AddStringToObject(o, "unit", unit->valuestring);
	cJSON_AddNumberToObject(o, "expires_ms", (double)(now + (int64_t)ttl_s * 1000));
	http_reply(r, 201, o);
out:
	cJSON_Delete(b);
}

/* ---- devices ---- */

static void device_route(struct rs *rs, struct rs_req *r, const char *id, const char *leaf)
{
	struct rs_device dev;
	int get = strcmp(r->method, "GET") == 0, post = strcmp(r->method, "POST") == 0;
	int rc = proto_id_valid(id) ? devices_get(rs->db, id, &dev) : -ENOENT;
	if (rc < 0) {
		reply_failure(r, rc, "no such device");
		return;
	}
	if (strcmp(leaf, "revoke") == 0 && post) {
		rc = devices_revoke(rs->db, id, rs_now_ms(rs));
		if (rc < 0) {
			reply_failure(r, rc, "no such device");
			return;
		}
		feed_wake_device(rs->feed, id); /* a held poll hears 410 now */
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "device_id", id);
		cJSON_AddBoolToObject(o, "revoked", 1);
		http_reply(r, 200, o);
	} else if (strcmp(leaf, "commands") == 0 && post) {
		char err[160] = "";
		cJSON *b = body_object(r), *payload = NULL;
		if (!b)
			return;
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(b, "type");
		rc = commands_issue(rs, id, cJSON_IsString(type) ? type->valuestring : NULL,
		                    cJSON_GetObjectItemCaseSensitive(b, "args"), &payload, err,
		                    sizeof(err));
		cJSON_Delete(b);
		if (rc < 0)
			reply_failure(r, rc, err);
		else
			reply_wrapped(r, 201, "command", payload);
	} else if (strcmp(leaf, "commands") == 0 && get) {
		reply_wrapped(r, 200, "commands", commands_list_json(rs->db, id));
	} else if (strcmp(leaf, "events") == 0 && get) {
		const char *res = http_query(r, "result");
		reply_wrapped(r, 200, "events", events_list_json(rs->db, id, res));
	} else if (strcmp(leaf, "positions") == 0 && get) {
		cJSON *o = telemetry_positions_json(rs->db, id);
		if (o)
			http_reply(r, 200, o);
		else
			http_reply_error(r, 500, "internal", "database error");
	} else if (strcmp(leaf, "heartbeats") == 0 && get) {
		reply_wrapped(r, 200, "heartbeats", telemetry_heartbeats_json(rs->db, id));
	} else {
		http_reply_error(r, 404, "not_found", "no such path or method");
	}
}

/* ---- incidents ---- */

static void incident_route(struct rs *rs, struct rs_req *r, const char *id, const char *leaf)
{
	char err[256] = "";
	cJSON *doc = NULL, *b = NULL;
	int rc, get = strcmp(r->method, "GET") == 0;
	int post = strcmp(r->method, "POST") == 0 || strcmp(r->method, "PATCH") == 0;
	if (!proto_id_valid(id)) {
		http_reply_error(r, 404, "not_found", "no such incident");
		return;
	}
	if (!leaf[0] && get) {
		int missing = 0;
		cJSON *o = incidents_get_json(rs->db, id, &missing);
		if (o)
			http_reply(r, 200, o);
		else
			reply_failure(r, missing ? -ENOENT : -EIO, "no such incident");
		return;
	}
	if (!post) {
		http_reply_error(r, 405, "method_not_allowed", "POST or PATCH");
		return;
	}
	if (!(b = body_object(r)))
		return;
	if (!leaf[0]) {
		rc = incidents_update(rs, id, b, &doc, err, sizeof(err));
	} else if (strcmp(leaf, "notes") == 0) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "text");
		rc = incidents_add_note(rs, id, cJSON_IsString(t) ? t->valuestring : NULL, &doc, err,
		                        sizeof(err));
	} else if (strcmp(leaf, "cancel") == 0) {
		rc = incidents_end(rs, id, PROTO_STATE_CANCELLED, &doc, err, sizeof(err));
	} else if (strcmp(leaf, "close") == 0) {
		rc = incidents_end(rs, id, PROTO_STATE_CLOSED, &doc, err, sizeof(err));
	} else if (strcmp(leaf, "reassign") == 0) {
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(b, "unit");
		rc = incidents_reassign(rs, id, cJSON_IsString(u) ? u->valuestring : NULL, &doc, err,
		                        sizeof(err));
	} else {
		cJSON_Delete(b);
		http_reply_error(r, 404, "not_found", "no such path");
		return;
	}
	cJSON_Delete(b);
	if (rc < 0)
		reply_failure(r, rc, err);
	else
		reply_wrapped(r, 200, "incident", doc);
}

static void incidents_root(struct rs *rs, struct rs_req *r)
{
	if (strcmp(r->method, "GET") == 0) {
		reply_wrapped(r, 200, "incidents", incidents_list_json(rs->db));
		return;
	}
	if (strcmp(r->method, "POST") != 0) {
		http_reply_error(r, 405, "method_not_allowed", "GET or POST");
		return;
	}
	char err[256] = "";
	cJSON *doc = NULL, *b = body_object(r);
	if (!b)
		return;
	int rc = incidents_create(rs, b, &doc, err, sizeof(err));
	cJSON_Delete(b);
	if (rc < 0)
		reply_failure(r, rc, err);
	else
		reply_wrapped(r, 201, "incident", doc);
}

/* ---- faults, config, health ---- */

static void faults_route(struct rs *rs, struct rs_req *r)
{
	if (strcmp(r->method, "POST") == 0) {
		char err[160] = "";
		cJSON *b = body_object(r);
		if (!b)
			return;
		int rc = faults_set(rs->faults, b, err, sizeof(err));
		cJSON_Delete(b);
		if (rc < 0) {
			http_reply_error(r, 400, "bad_request", "%s", err);
			return;
		}
		feed_wake_all(rs->feed); /* a forged item goes to a held poll too */
	} else if (strcmp(r->method, "DELETE") == 0) {
		faults_clear(rs->faults);
		log_info("faults: cleared");
	} else if (strcmp(r->method, "GET") != 0) {
		http_reply_error(r, 405, "method_not_allowed", "GET, POST or DELETE");
		return;
	}
	cJSON *o = faults_json(rs->faults);
	if (o)
		http_reply(r, 200, o);
	else
		http_reply_error(r, 500, "internal", "out of memory");
}

static void config_route(struct rs *rs, struct rs_req *r)
{
	if (strcmp(r->method, "PUT") == 0 || strcmp(r->method, "POST") == 0) {
		cJSON *b = body_object(r);
		if (!b)
			return;
		char *text = cJSON_PrintUnformatted(b);
		int rc = text ? db_meta_set(rs->db, "config", text, strlen(text)) : -ENOMEM;
		free(text);
		if (rc < 0) {
			cJSON_Delete(b);
			http_reply_error(r, 500, "internal", "could not store the configuration");
			return;
		}
		cJSON_Delete(rs->config);
		rs->config = b;
		log_info("config: replaced");
	} else if (strcmp(r->method, "GET") != 0) {
		http_reply_error(r, 405, "method_not_allowed", "GET or PUT");
		return;
	}
	http_reply(r, 200, cJSON_Duplicate(rs->config, 1));
}

static void health(struct rs *rs, struct rs_req *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "ok", 1);
	cJSON_AddNumberToObject(o, "server_time", (double)rs_now_ms(rs));
	cJSON_AddStringToObject(o, "server_key", rs->server_key_b64);
	cJSON_AddStringToObject(o, "base", rs->base);
	cJSON_AddNumberToObject(o, "held_polls", (double)feed_waiting(rs->feed));
	http_reply(r, 200, o);
}

/* "/admin/<coll>/<id>/<leaf>": splits into the three parts. */
static int split(const char *path, char *coll, char *id, char *leaf, size_t cap)
{
	const char *p = path + 6; /* after "/admin" */
	coll[0] = id[0] = leaf[0] = 0;
	if (*p == '/')
		p++;
	char *outs[3] = {coll, id, leaf};
	for (int i = 0; i < 3 && *p; i++) {
		size_t n = strcspn(p, "/");
		if (n >= cap)
			return -EINVAL;
		memcpy(outs[i], p, n);
		outs[i][n] = 0;
		p += n;
		if (*p == '/')
			p++;
	}
	return *p ? -EINVAL : 0;
}

int api_dispatch_handle(struct rs *rs, struct rs_req *r)
{
	char coll[PROTO_ID_MAX + 2], id[PROTO_ID_MAX + 2], leaf[PROTO_ID_MAX + 2];
	if (!authorized(rs, r)) {
		http_reply_error(r, 401, "unauthorized", "Authorization: Bearer <admin token>");
		return RS_REPLY;
	}
	if (split(r->path, coll, id, leaf, sizeof(id)) < 0) {
		http_reply_error(r, 404, "not_found", "no such path");
		return RS_REPLY;
	}
	if (strcmp(coll, "health") == 0 && !id[0])
		health(rs, r);
	else if (strcmp(coll, "tokens") == 0 && !id[0] && strcmp(r->method, "POST") == 0)
		tokens_post(rs, r);
	else if (strcmp(coll, "devices") == 0 && !id[0] && strcmp(r->method, "GET") == 0)
		reply_wrapped(r, 200, "devices", devices_list_json(rs->db));
	else if (strcmp(coll, "devices") == 0 && id[0] && leaf[0])
		device_route(rs, r, id, leaf);
	else if (strcmp(coll, "incidents") == 0 && !id[0])
		incidents_root(rs, r);
	else if (strcmp(coll, "incidents") == 0)
		incident_route(rs, r, id, leaf);
	else if (strcmp(coll, "faults") == 0 && !id[0])
		faults_route(rs, r);
	else if (strcmp(coll, "config") == 0 && !id[0])
		config_route(rs, r);
	else
		http_reply_error(r, 404, "not_found", "no such path or method");
	return RS_REPLY;
}

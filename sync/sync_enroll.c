/* Enrollment (device API section 3) and the outbox body format. */
#include "agent/config.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "agent/store.h"
#include "sync/http.h"
#include "sync/proto.h"
#include "sync/sync.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SETERR(...)                                                                                \
	do {                                                                                       \
		if (err)                                                                           \
			snprintf(err, errlen, __VA_ARGS__);                                        \
	} while (0)

int sync_event_queue(struct store *st, const struct proto_event *ev, int64_t *seq,
                     char event_id[37])
{
	cJSON *o = proto_event_json(ev);
	if (!o)
		return -ENOMEM;
	/* The store assigns both; the drain puts them in front of the body. */
	cJSON_DeleteItemFromObjectCaseSensitive(o, "event_id");
	cJSON_DeleteItemFromObjectCaseSensitive(o, "seq");
	char *body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!body)
		return -ENOMEM;
	int rc = store_outbox_append(st, (enum store_event_type)ev->type, body, strlen(body), seq,
	                             event_id);
	free(body);
	return rc;
}

struct enroll_wait {
	int done;
	long status;
	int error;
	char *body;
	size_t len;
};

static void on_enrolled(void *arg, const struct http_response *r)
{
	struct enroll_wait *w = arg;
	w->done = 1;
	w->status = r->status;
	w->error = r->error;
	w->body = malloc(r->body_len + 1);
	if (w->body) {
		memcpy(w->body, r->body, r->body_len);
		w->body[r->body_len] = 0;
		w->len = r->body_len;
	}
}

static int enroll_answer(struct store *st, const struct config *cfg, const struct enroll_wait *w,
                         char *err, size_t errlen)
{
	cJSON *doc = proto_json_parse(w->body, w->len);
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(doc, "device_id");
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(doc, "unit");
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(doc, "server_key");
	unsigned char key[32], pinned[32];
	size_t klen = 0, plen = 0;
	int rc = -EBADMSG;
	if (!cJSON_IsObject(doc) || !cJSON_IsString(d) || !proto_id_valid(d->valuestring) ||
	    !cJSON_IsString(u) || !proto_id_valid(u->valuestring) || !cJSON_IsString(k) ||
	    proto_b64_decode(k->valuestring, strlen(k->valuestring), key, sizeof(key), &klen) < 0 ||
	    klen != 32) {
		SETERR("malformed enrollment answer");
		goto out;
	}
	if (cfg->server.server_key[0]) {
		if (proto_b64_decode(cfg->server.server_key, strlen(cfg->server.server_key), pinned,
		                     sizeof(pinned), &plen) < 0 ||
		    plen != 32 || memcmp(pinned, key, 32) != 0) {
			SETERR("the server's key is not the pinned server_key: refused");
			rc = -EKEYREJECTED;
			goto out;
		}
	}
	if ((rc = store_begin(st)) < 0)
		goto out;
	rc = store_state_set(st, SYNC_KEY_DEVICE_ID, d->valuestring, strlen(d->valuestring));
	if (rc == 0)
		rc = store_state_set(st, SYNC_KEY_UNIT, u->valuestring, strlen(u->valuestring));
	if (rc == 0)
		rc = store_state_set(st, SYNC_KEY_SERVER_KEY, key, sizeof(key));
	if (rc == 0)
		rc = store_state_del(st, SYNC_KEY_CURSOR);
	if (rc == 0)
		rc = store_state_del(st, SYNC_KEY_CLOCK);
	if (rc == 0)
		rc = store_commit(st);
	else
		store_rollback(st);
	if (rc < 0)
		SETERR("storing the identity: %s", strerror(-rc));
	else
		log_info("sync: enrolled as device %s", d->valuestring);
out:
	cJSON_Delete(doc);
	return rc;
}

int sync_enroll(struct loop *l, struct store *st, const struct config *cfg,
                const struct sync_enroll_info *info, char *err, size_t errlen)
{
	const char *token = info && info->token ? info->token : cfg->server.enroll_token;
	struct http *h = NULL;
	struct enroll_wait w = {0};
	unsigned char pk[32];
	char pk64[64];
	char *body = NULL;
	cJSON *o = NULL;
	int rc;
	if (!token || !token[0]) {
		SETERR("no enrollment token");
		return -EINVAL;
	}
	struct http_params hp = {
	    .base_url = cfg->server.url,
	    .ca_file = cfg->server.ca_file,
	    .pinned_pubkey = cfg->server.pinned_pubkey,
	    .connect_timeout_s = cfg->server.connect_timeout_s,
	    .request_timeout_s = cfg->server.request_timeout_s,
	};
	if ((rc = http_open(l, &hp, &h, err, errlen)) < 0)
		return rc;
	if ((rc = store_device_keygen(st, 1)) < 0 || (rc = store_device_pubkey(st, pk)) < 0) {
		SETERR("making the device key: %s", strerror(-rc));
		goto out;
	}
	proto_b64_encode(pk, sizeof(pk), pk64, sizeof(pk64));
	o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "token", token) ||
	    !cJSON_AddStringToObject(o, "public_key", pk64) ||
	    !cJSON_AddStringToObject(o, "serial", info && info->serial ? info->serial : "") ||
	    !cJSON_AddStringToObject(o, "board", info && info->board ? info->board : "") ||
	    !cJSON_AddStringToObject(o, "agent_version", ESS_VERSION) ||
	    !(body = cJSON_PrintUnformatted(o))) {
		rc = -ENOMEM;
		goto out;
	}
	rc = http_request(h, "POST", "/v1/enroll", body, strlen(body), 0, 0, on_enrolled, &w, NULL);
	if (rc < 0) {
		SETERR("starting the request: %s", strerror(-rc));
		goto out;
	}
	while (!w.done) {
		int r = loop_run_once(l, 1000);
		if (r < 0) {
			rc = r;
			SETERR("event loop: %s", strerror(-r));
			goto out;
		}
	}
	if (w.status == 0) {
		rc = w.error ? w.error : -EIO;
		SETERR("no answer from the server: %s", strerror(-rc));
	} else if (w.status == 201 || w.status == 200) {
		rc = w.body ? enroll_answer(st, cfg, &w, err, errlen) : -ENOMEM;
	} else if (w.status == 403) {
		rc = -EACCES;
		SETERR("the server refused the enrollment token");
	} else {
		rc = w.status == 400 ? -EINVAL : -EIO;
		SETERR("enrollment answered HTTP %ld", w.status);
	}
out:
	if (body) {
		memset(body, 0, strlen(body)); /* held the token */
		free(body);
	}
	cJSON_Delete(o);
	free(w.body);
	http_close(h);
	return rc;
}

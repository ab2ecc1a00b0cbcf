/* Enrollment tokens and enrolled devices (tables tokens, devices).
 * Returns: 0 or a negative errno; -ENOENT for an unknown id, -EACCES for a
 * token that is unknown, expired or used by another key. */
#ifndef ESS_RS_DEVICES_H
#define ESS_RS_DEVICES_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "sync/proto.h"

struct rs_db;

#define RS_TOKEN_TTL_DEFAULT_S (24 * 3600)
#define RS_TOKEN_TTL_MAX_S     (30 * 24 * 3600)
#define RS_FIELD_MAX           128 /* serial, board, agent_version */

struct rs_device {
	char id[PROTO_ID_MAX + 1];
	char unit[PROTO_ID_MAX + 1];
	unsigned char pk[32];
	int revoked;
};

/* token: the caller's (a valid id) or NULL for a random one; out receives
 * it (PROTO_ID_MAX + 1 bytes). */
int devices_token_create(struct rs_db *db, const char *token, const char *unit, int64_t ttl_s,
                         int64_t now_ms, char *out);
/* Uses a token once. The same token presented again with the same public
 * key (an answer that was lost) gives the same device back. */
int devices_enroll(struct rs_db *db, const char *token, const unsigned char pk[32],
                   const char *serial, const char *board, const char *agent_version,
                   int64_t now_ms, struct rs_device *out);
int devices_get(struct rs_db *db, const char *id, struct rs_device *out);
int devices_touch(struct rs_db *db, const char *id, int64_t now_ms);
int devices_revoke(struct rs_db *db, const char *id, int64_t now_ms);
/* Every device (no keys): a new array, NULL on failure. */
cJSON *devices_list_json(struct rs_db *db);

#endif

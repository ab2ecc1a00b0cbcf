/* The reference ESS server's context: what main wires together and passes
 * down to every module (no globals). Each module's own state stays behind
 * its opaque handle. */
#ifndef ESS_RS_H
#define ESS_RS_H

#include <stdint.h>

#include <cjson/cJSON.h>

struct loop;
struct rs_db;
struct rs_http;
struct rs_faults;
struct rs_feed;

#define RS_BASE_MAX  200
#define RS_TOKEN_MAX 128

struct rs {
	struct loop *loop;
	struct rs_db *db;
	struct rs_http *http;
	struct rs_faults *faults;
	struct rs_feed *feed;
	unsigned char sk[64]; /* the server's Ed25519 signing key */
	unsigned char pk[32];
	char server_key_b64[64];
	char admin_token[RS_TOKEN_MAX + 1];
	char base[RS_BASE_MAX + 1]; /* "" or "/api": no trailing slash */
	cJSON *config;              /* section 8, handed to every device */
};

/* The server's clock: real time shifted by the clock fault. */
int64_t rs_now_ms(const struct rs *rs);

#endif

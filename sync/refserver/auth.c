#include "sync/refserver/auth.h"
#include "agent/log.h"
#include "sync/proto.h"
#include "sync/refserver/db.h"
#include "sync/refserver/devices.h"
#include "sync/refserver/http.h"
#include "sync/refserver/rs.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1-15 digits: unix seconds, no sign, no spaces. */
static int parse_ts(const char *s, int64_t *out)
{
	int64_t v = 0;
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 15)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int auth_device(struct rs *rs, struct rs_req *r, struct rs_device *dev)
{
	const char *id = http_header(r, "ESS-Device");
	const char *ts = http_header(r, "ESS-Timestamp");
	const char *sig = http_header(r, "ESS-Signature");
	unsigned char sigbin[64];
	size_t siglen = 0;
	int64_t t;
	if (!id || !ts || !sig) {
		http_reply_error(r, 401, "bad_signature",
		                 "ESS-Device, ESS-Timestamp and ESS-Signature are required");
		return -1;
	}
	if (!proto_id_valid(id)) {
		http_reply_error(r, 401, "unknown_device", "no such device");
		return -1;
	}
	int rc = devices_get(rs->db, id, dev);
	if (rc == -ENOENT) {
		http_reply_error(r, 401, "unknown_device", "no such device");
		return -1;
	}
	if (rc < 0) {
		http_reply_error(r, 500, "internal", "database error");
		return -1;
	}
	if (parse_ts(ts, &t) < 0) {
		http_reply_error(r, 401, "bad_signature", "ESS-Timestamp is not unix seconds");
		return -1;
	}
	if (proto_b64_decode(sig, strlen(sig), sigbin, sizeof(sigbin), &siglen) < 0 ||
	    siglen != 64) {
		http_reply_error(r, 401, "bad_signature", "ESS-Signature is not base64 of 64 bytes");
		return -1;
	}
	size_t cap = strlen(r->path_query) + 128;
	char *msg = malloc(cap);
	if (!msg) {
		http_reply_error(r, 500, "internal", "out of memory");
		return -1;
	}
	size_t n = proto_sign_string(r->method, r->path_query, t, r->raw, r->raw_len, msg, cap);
	int ok = n > 0 &&
	         crypto_sign_ed25519_verify_detached(sigbin, (unsigned char *)msg, n, dev->pk) == 0;
	free(msg);
	if (!ok) {
		log_info("device %s: bad signature on %s %s", id, r->method, r->path);
		http_reply_error(r, 401, "bad_signature", "the signature does not verify");
		return -1;
	}
	if (dev->revoked) {
		http_reply_error(r, 410, "revoked", "this device was revoked");
		return -1;
	}
	int64_t now = rs_now_ms(rs);
	int64_t d = t * 1000 - now;
	if (d > PROTO_SKEW_S * 1000LL || d < -PROTO_SKEW_S * 1000LL) {
		cJSON *extra = cJSON_CreateObject();
		cJSON_AddNumberToObject(extra, "server_time", (double)now);
		log_info("device %s: clock %+llds off", id, (long long)(d / 1000));
		http_reply_error_with(r, 401, "clock_skew", "ESS-Timestamp is more than 300 s off",
		                      extra);
		return -1;
	}
	snprintf(r->device_id, sizeof(r->device_id), "%s", id);
	devices_touch(rs->db, id, now);
	return 0;
}

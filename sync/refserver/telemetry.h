/* What devices report about themselves: GPS fixes (table positions, keyed
 * on (device, t)) and heartbeats (table heartbeats, each kept whole).
 * Returns: 0 or a negative errno (-EINVAL with a reason in err). */
#ifndef ESS_RS_TELEMETRY_H
#define ESS_RS_TELEMETRY_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct rs_db;
struct store_fix;

/* Stores fixes; a fix whose t is already held for the device (sent before,
 * or twice in this batch) counts as a duplicate and changes nothing. */
int telemetry_positions(struct rs_db *db, const char *device_id, const struct store_fix *fixes,
                        size_t n, int64_t now_ms, size_t *accepted, size_t *duplicates);
/* Checks every field of a heartbeat (section 7): all present, battery_pct
 * and last_fix may be null; unknown fields are ignored. */
int telemetry_heartbeat_check(const cJSON *hb, char *err, size_t errlen);
int telemetry_heartbeat(struct rs_db *db, const char *device_id, const char *body, size_t len,
                        int64_t now_ms);

/* Dispatcher read-back: {"fixes": [[…7 integers…], …]} in time order, and
 * [{"received_ms": …, "heartbeat": {…}}, …]. NULL on failure. */
cJSON *telemetry_positions_json(struct rs_db *db, const char *device_id);
cJSON *telemetry_heartbeats_json(struct rs_db *db, const char *device_id);

#endif

/* Events from a device (section 5): each one checked (proto_event_parse),
 * looked up by event_id (accepted before: duplicate), then applied by the
 * status rules (proto_status_check) to the incident as the device's unit
 * sees it, and recorded with its result (table events).
 * Returns: 0 or a negative errno (a database failure: the caller rolls the
 * batch back and answers 500, so the device sends it again). */
#ifndef ESS_RS_EVENTS_H
#define ESS_RS_EVENTS_H

#include <stdint.h>

#include <cjson/cJSON.h>

struct rs_db;
struct rs_device;

/* Inside the caller's transaction; *result is the result object. */
int events_apply(struct rs_db *db, const struct rs_device *dev, const cJSON *ev, int64_t now_ms,
                 cJSON **result);
/* Every event a device sent, in arrival order, each with its result:
 * [{"received_ms", "result", "reason", "event"}]. result NULL: all. */
cJSON *events_list_json(struct rs_db *db, const char *device_id, const char *result);

#endif

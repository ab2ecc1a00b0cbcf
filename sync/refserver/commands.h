/* Commands to one device (table commands): issued by dispatch, signed,
 * repeated in every heartbeat answer until the device's command_result
 * event for it has arrived.
 * Returns: 0 or a negative errno (-ENOENT: no such command for the device,
 * -EINVAL: bad type or args, reason in err). */
#ifndef ESS_RS_COMMANDS_H
#define ESS_RS_COMMANDS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct rs;
struct rs_db;

/* type: wipe, lock, resync, config; args: an object or NULL. *payload is
 * the command document (caller deletes). */
int commands_issue(struct rs *rs, const char *device_id, const char *type, const cJSON *args,
                   cJSON **payload, char *err, size_t errlen);
/* Appends the envelopes of the commands still waiting for a result. */
int commands_pending(struct rs_db *db, const char *device_id, cJSON *envelopes);
/* Records the result (the first one counts). */
int commands_result(struct rs_db *db, const char *device_id, const char *command_id, int ok,
                    const char *event_id, int64_t now_ms);
/* Every command of a device with its result: a new array, NULL on failure. */
cJSON *commands_list_json(struct rs_db *db, const char *device_id);

#endif

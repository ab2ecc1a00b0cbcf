/* Incidents as dispatch sees them, and the feeds (table versions): every
 * version of an incident is a row holding its exact document bytes and
 * their envelope, addressed to one unit. A unit's feed is its rows in
 * order; a device's cursor is the position of the last row it was given.
 *
 * Reassigning from unit A to unit B writes two versions: n+1 with state
 * "reassigned" for A (so A's devices learn it is gone), then n+2 with state
 * "assigned" for B. Cancel and close write one version for the current
 * unit.
 *
 * The responder status of an incident is kept per unit (unit_status).
 * Returns: 0 or a negative errno: -ENOENT unknown incident, -EINVAL bad
 * fields (reason in err), -EALREADY the incident is no longer assigned. */
#ifndef ESS_RS_INCIDENTS_H
#define ESS_RS_INCIDENTS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "sync/proto.h"

struct rs;
struct rs_db;

#define RS_FEED_PAGE 100 /* items per assignments answer */

/* fields: the document's fields but id (optional, else generated),
 * version, state; "unit" names the unit. *doc receives the new document
 * (caller deletes). */
int incidents_create(struct rs *rs, const cJSON *fields, cJSON **doc, char *err, size_t errlen);
/* Top-level merge: a field replaces, null removes; id, version, state and
 * unit cannot be set here. */
int incidents_update(struct rs *rs, const char *id, const cJSON *fields, cJSON **doc, char *err,
                     size_t errlen);
int incidents_add_note(struct rs *rs, const char *id, const char *text, cJSON **doc, char *err,
                       size_t errlen);
/* state: PROTO_STATE_CANCELLED or PROTO_STATE_CLOSED. */
int incidents_end(struct rs *rs, const char *id, enum proto_dispatch_state state, cJSON **doc,
                  char *err, size_t errlen);
int incidents_reassign(struct rs *rs, const char *id, const char *unit, cJSON **doc, char *err,
                       size_t errlen);

/* The incident as one unit last saw it: its latest version for that unit.
 * *envelope is malloc'd (caller frees). */
struct rs_view {
	int64_t version;
	enum proto_dispatch_state state;
	enum proto_status status; /* the unit's responder status */
	char *envelope;
};
int incidents_view(struct rs_db *db, const char *id, const char *unit, struct rs_view *out);
int incidents_set_status(struct rs_db *db, const char *id, const char *unit,
                         enum proto_status status);

/* Cursors: "c<n>"; -EINVAL for anything else. NULL or "" is the start. */
int incidents_cursor_parse(const char *s, int64_t *pos);
void incidents_cursor_format(int64_t pos, char out[32]);
/* Appends to items (an array) the envelopes after pos for unit, at most
 * max; *last receives the position of the last one (pos if none). */
int incidents_feed(struct rs_db *db, const char *unit, int64_t pos, int max, cJSON *items,
                   int64_t *last);

/* Dispatcher views: every incident (current document, unit, status), or
 * one with all its versions. NULL on failure (-ENOENT: *missing set). */
cJSON *incidents_list_json(struct rs_db *db);
cJSON *incidents_get_json(struct rs_db *db, const char *id, int *missing);

#endif

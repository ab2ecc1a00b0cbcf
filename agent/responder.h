/* Responder: what the person holding the device does with incidents, and
 * what they are shown.
 *
 * Actions (acknowledge, status, note, SOS) are checked against the device
 * API's rules (proto_status_check on the incident's dispatch state and the
 * local status) before anything is queued; an accepted action queues its
 * event, moves the local status and adds an audit entry in one durable
 * transaction, so that when a function returns 0 the event survives
 * kill -9 and power loss.
 *
 * Views (list, show) are cJSON built from the stored documents: they hold
 * personal data and go to the control socket only, never to a log.
 *
 * Returns 0 or a negative errno; err (may be NULL) receives a message for
 * the user that quotes no personal data:
 *   -ENOENT   no such incident
 *   -EPERM    the rules refuse the change (code "conflict")
 *   -EINVAL   a bad argument (id, status, text)
 *   -ENOSPC   the disk is full; nothing was queued. */
#ifndef ESS_RESPONDER_H
#define ESS_RESPONDER_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "sync/proto.h"

struct store;
struct track;

struct responder {
	struct store *store; /* borrowed */
	struct track *track; /* borrowed; NULL: no GPS (no location, system clock) */
};

/* The outcome of an accepted action. */
struct responder_done {
	int changed; /* 0: the same status again, nothing queued */
	int64_t seq; /* the queued event's seq (when changed) */
	char event_id[37];
};

/* Moves incident id to status next (PROTO_STATUS_ACKNOWLEDGED for "ack").
 * text (may be NULL) is the resolution or referral detail, at most
 * PROTO_TEXT_MAX bytes of UTF-8. */
int responder_set_status(struct responder *r, const char *id, enum proto_status next,
                         const char *text, struct responder_done *done, char *err, size_t errlen);
/* A note on incident id (any dispatch state but only while the incident is
 * held). text: 1..PROTO_TEXT_MAX bytes of UTF-8. */
int responder_note(struct responder *r, const char *id, const char *text,
                   struct responder_done *done, char *err, size_t errlen);
/* The responder's own emergency; text may be NULL. Goes before everything
 * else in the outbox. */
int responder_sos(struct responder *r, const char *text, struct responder_done *done, char *err,
                  size_t errlen);

/* 1 when text is acceptable for an event: valid UTF-8, no control
 * characters other than newline and tab, at most PROTO_TEXT_MAX bytes. */
int responder_text_valid(const char *text);

/* [{id, version, category, priority, silent, state, status, allowed (the
 *   statuses the rules accept next), reported_at, distance_m, bearing_deg
 *   (when a fix exists)}, …], active ones first.
 * *out is the caller's to cJSON_Delete. */
int responder_list(struct responder *r, cJSON **out);
/* {"incident": <the whole stored document>, "local": {status, dispatch_state,
 * version, silent, alert, distance_m, bearing_deg, …}}. Adds a VIEWED audit
 * entry. */
int responder_show(struct responder *r, const char *id, cJSON **out, char *err, size_t errlen);
/* A short summary of one incident (the list entry), for publications. */
int responder_summary(struct responder *r, const char *id, cJSON **out);
/* 1 when any incident is assigned and not in a final local status. */
int responder_any_active(struct responder *r);

/* The event clock for now: time that never goes back, its quality, and
 * the current location when a fix exists. */
void responder_stamp(struct responder *r, struct proto_event *ev);

const char *responder_local_status_name(int local_status); /* "new", "acknowledged", … */

#endif

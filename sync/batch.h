/* One POST of events (device API section 5), built without a JSON library:
 * the daemon stores each event body as a compact JSON object without
 * event_id and seq (sync_event_body), so an event goes on the wire as
 *   {"event_id":"<uuid>","seq":<n>,  + the body after its '{'
 * a copy and no parse. Bounded by PROTO_MAX_EVENTS events and
 * PROTO_MAX_EVENTS_BYTES of JSON. */
#ifndef ESS_SYNC_BATCH_H
#define ESS_SYNC_BATCH_H

#include <stddef.h>
#include <stdint.h>

struct batch;
struct store_event;

/* max_events <= PROTO_MAX_EVENTS, max_bytes <= PROTO_MAX_EVENTS_BYTES. */
int batch_new(size_t max_events, size_t max_bytes, struct batch **out);
void batch_free(struct batch *b); /* NULL is fine */
/* Empties it and sets a new bound on the number of events (<= the max). */
void batch_reset(struct batch *b, size_t max_events);

/* Adds one event. -ENOSPC: it does not fit (the batch is unchanged);
 * -EINVAL: the body is not a JSON object text ('{' … '}'). */
int batch_add(struct batch *b, const struct store_event *ev);
size_t batch_count(const struct batch *b);
int64_t batch_seq(const struct batch *b, size_t i);
const char *batch_event_id(const struct batch *b, size_t i);
/* Keeps the first n events (a 413 split). */
void batch_truncate(struct batch *b, size_t n);
/* {"events":[…]}; valid until the next change. */
const char *batch_json(struct batch *b, size_t *len);

/* ---- which incidents a batch touches (the drain's second batch in flight) ----
 *
 * Each event is keyed by a 64-bit hash of its incident_id: BATCH_NO_INCIDENT
 * for events that have none (sos, command_result), BATCH_ANY_INCIDENT for a
 * status, note or receipt whose incident_id cannot be found in its body
 * (treated as touching every incident). Two different incidents whose
 * hashes collide are treated as one: that only ever holds a batch back,
 * never lets one go that should wait. */
#define BATCH_NO_INCIDENT  0
#define BATCH_ANY_INCIDENT UINT64_MAX
uint64_t batch_incident_key(int store_event_type, const void *body, size_t len);
uint64_t batch_incident(const struct batch *b, size_t i);
int batch_is_sos(const struct batch *b, size_t i);
/* Whether an event keyed key may not go while b is unacknowledged: b holds
 * an event of the same incident (or key or b holds BATCH_ANY_INCIDENT).
 * BATCH_NO_INCIDENT never conflicts. */
int batch_conflicts(struct batch *b, uint64_t key);
/* The largest n' in [min_keep, n) such that no incident of the first n'
 * events has an event after them in the batch, or 0 when there is none: a
 * full batch truncated there lets the next batch start with events that
 * do not wait for it. */
size_t batch_clean_cut(struct batch *b, size_t min_keep);

#endif

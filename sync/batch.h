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

#endif

/* The sync engine: the agent's side of the ESS device API (device API
 * sections 3-8) on top of sync/http.h and the store, driven by the loop.
 *
 * While started it keeps one assignments long poll open, drains the outbox
 * (SOS first, then seq order; an event leaves the queue only after its
 * result; a second batch in flight only over other incidents than the
 * first's), uploads the position trail in batches and sends heartbeats.
 * Failures back off exponentially with full jitter (1 s … 5 min), a
 * 429/503 Retry-After holds every request to the server until it passes.
 *
 * Everything the daemon must know arrives through one callback
 * (sync_note_fn). Nothing is logged but ids, counts and codes.
 *
 * Returns: 0 or a negative errno, unless a prototype says otherwise. */
#ifndef ESS_SYNC_SYNC_H
#define ESS_SYNC_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "sync/proto.h"

struct loop;
struct store;
struct config;
struct sync;

/* State keys this module keeps in the store (sealed). */
#define SYNC_KEY_DEVICE_ID  "device_id"
#define SYNC_KEY_UNIT       "unit"
#define SYNC_KEY_SERVER_KEY "server_key" /* 32 raw bytes */
#define SYNC_KEY_CURSOR     "cursor"
#define SYNC_KEY_CLOCK      "clock_offset_s" /* decimal text */
/* Set with the wipe command's "carried out" mark, in the same transaction:
 * a daemon stopped before it finished the wipe finds it at start and wipes
 * then (the mark alone would make the command look done). */
#define SYNC_KEY_WIPE "wipe_pending"

/* ---- enrollment (essd provision) ---- */

struct sync_enroll_info {
	const char *token; /* NULL: the config's server.enroll_token */
	const char *serial;
	const char *board;
};

/* Makes a new device key, POSTs /v1/enroll and stores device_id, unit and
 * server_key (forgetting any old cursor) in one transaction. Runs the loop
 * until the answer (at most the request timeout). An answer whose
 * server_key differs from the config's server.server_key, when that is set,
 * is refused (-EKEYREJECTED). -EACCES: bad token. err gets a reason that
 * holds no secret. */
int sync_enroll(struct loop *l, struct store *st, const struct config *cfg,
                const struct sync_enroll_info *info, char *err, size_t errlen);

/* ---- queuing events (the daemon's side of the outbox) ---- */

/* Appends ev to the outbox as the compact JSON object the drain sends,
 * without event_id and seq (the store assigns them; ev's are ignored).
 * seq and event_id (may be NULL) receive them. */
int sync_event_queue(struct store *st, const struct proto_event *ev, int64_t *seq,
                     char event_id[37]);

/* ---- the engine ---- */

enum sync_note_kind {
	SYNC_NOTE_INCIDENT = 0,   /* a new or newer incident version stored */
	SYNC_NOTE_CONFLICT,       /* an event got "conflict"; the incident was updated */
	SYNC_NOTE_REJECTED,       /* an event got "rejected"; it is in the rejected list */
	SYNC_NOTE_COMMAND,        /* a verified command to carry out (once) */
	SYNC_NOTE_CONFIG,         /* server configuration (section 8) */
	SYNC_NOTE_REVOKED,        /* 410: syncing stopped; the daemon wipes */
	SYNC_NOTE_UNKNOWN_DEVICE, /* 401 unknown_device: syncing stopped */
	SYNC_NOTE_ONLINE,         /* the server answered after a failure (or first time) */
	SYNC_NOTE_OFFLINE,        /* a request failed at the transport */
	SYNC_NOTE_DRAINED,        /* the outbox is empty after a drain ("sync done") */
};

enum sync_command { SYNC_CMD_WIPE = 0, SYNC_CMD_LOCK, SYNC_CMD_RESYNC, SYNC_CMD_CONFIG };

struct sync_note {
	enum sync_note_kind kind;
	const char *id;            /* incident id (INCIDENT, CONFLICT), command id (COMMAND) */
	int64_t version;           /* incident version */
	int silent;                /* INCIDENT: the incident's silent flag */
	int is_new;                /* INCIDENT: first version on this device */
	int64_t seq;               /* CONFLICT, REJECTED: the event's seq */
	const char *reason;        /* CONFLICT, REJECTED: the server's words (may quote
	                            * data: show it, never log it) */
	enum sync_command command; /* COMMAND */
	const cJSON *args;         /* COMMAND: its args; CONFIG: the config object */
};
/* Called from the loop. For a wipe the daemon should let the command_result
 * go out (SYNC_NOTE_DRAINED, at most 10 s) before it wipes; it must not
 * close the store or sync from inside the callback. */
typedef void (*sync_note_fn)(void *arg, const struct sync_note *n);

/* What the daemon knows and the server asks for in heartbeats and in
 * events the engine queues itself (receipts, command results). */
struct sync_device_status {
	int64_t uptime_s;
	const char *power; /* "vehicle", "ac", "battery" */
	int battery_pct;   /* -1: null */
	int has_fix;
	int64_t fix_t_ms;
	double fix_lat, fix_lon, fix_accuracy_m;
	enum proto_clock clock;
};
typedef void (*sync_status_fn)(void *arg, struct sync_device_status *st);

struct sync_params {
	struct loop *loop;
	struct store *store;
	const struct config *cfg; /* read at sync_open */
	sync_note_fn note;
	sync_status_fn status; /* may be NULL: unknown values */
	void *arg;
	int position_upload_s; /* seconds between position uploads while online; 0: 30 */
	int events_window;     /* events batches in flight at most (1 … SYNC_EVENTS_WINDOW_MAX);
	                        * 0: SYNC_EVENTS_WINDOW */
	int http_dead_s;       /* https: a silent connection's bound (http_params.dead_s);
	                        * 0: HTTP_DEAD_S */
};

/* A second events batch may be in flight while the first is unanswered,
 * only when no incident has events in both (docs/device-api.md §9): on a
 * slow link the next batch uploads during the first one's round trip. */
#define SYNC_EVENTS_WINDOW     2
#define SYNC_EVENTS_WINDOW_MAX 4

/* Needs an enrolled store (device_id, unit, server_key). -ENOKEY when not
 * enrolled. Does nothing until sync_start. */
int sync_open(const struct sync_params *p, struct sync **out, char *err, size_t errlen);
void sync_close(struct sync *s); /* cancels requests; NULL is fine */
int sync_start(struct sync *s);
void sync_stop(struct sync *s);

/* An event was queued (or positions are waiting): drain now, unless a
 * backoff or Retry-After holds. */
void sync_kick(struct sync *s);

/* A network link came up (hal/link): the transport backoff was waiting for
 * exactly this, so it is dropped (and its level reset) and the assignments
 * poll, the outbox and the trail go now. A server's Retry-After still
 * holds. */
void sync_link_up(struct sync *s);

/* The daemon has just flushed the trail (its flush timer). When online and
 * the positions upload's turn is near (within a quarter of its period), the
 * upload goes now, in this same wakeup, and finds the trail sealed already:
 * the flush and the upload share one wakeup and one commit (the upload's
 * acknowledgement is deleted in the next flush's transaction,
 * store_pos_acked). While flushes come, the upload's own timer is only a
 * fallback, one flush period later than its regular turn. */
void sync_pos_flushed(struct sync *s);
/* The daemon's flush is near (its bound minus a few seconds) and the trail
 * is all in memory: when online and the upload's turn is near, the
 * buffered fixes go to the server straight from memory (now, in this
 * wakeup) and leave the buffer once acknowledged, never written: returns
 * 1. The daemon still flushes, at the bound, whatever is left of them
 * then (no answer, an error). 0: nothing started, flush as usual. */
int sync_pos_from_memory(struct sync *s);

int sync_online(const struct sync *s);
int sync_stopped(const struct sync *s);             /* revoked, unknown device, sync_stop */
int64_t sync_last_success_ms(const struct sync *s); /* unix ms of the last 2xx; 0 never */
/* Unix ms before which no request goes to the server; 0 when none held. */
int64_t sync_backoff_until_ms(const struct sync *s);

/* Counters for tests and figures. */
struct sync_stats {
	uint64_t requests;
	uint64_t bytes_up, bytes_down;
	uint64_t pos_bytes_up, pos_bytes_down; /* position uploads only */
	uint64_t events_delivered, events_rejected, events_conflict;
	uint64_t fixes_sent;
	uint64_t incidents_stored, envelopes_dropped;
	uint64_t clock_skew_retries;
	uint64_t connects;       /* new connections libcurl made for these requests */
	uint64_t http2;          /* requests answered over HTTP/2 */
	uint64_t events_batches; /* events requests started */
	uint64_t events_overlap; /* …of them while another batch was in flight */
	uint64_t events_max_flight;
	uint64_t link_kicks;      /* sync_link_up calls that acted */
	uint64_t conns_abandoned; /* silent connections given up (http_abandoned) */
};
void sync_get_stats(const struct sync *s, struct sync_stats *out);

#endif

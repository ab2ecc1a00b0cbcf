/* The control socket's methods (ctl.h carries them): what essctl and the
 * touch UI may ask of essd. Every parameter is checked (type, length,
 * allowed keys); a bad request gets a clear error code, never a crash:
 *
 *   bad_request  a missing, unknown or malformed parameter
 *   not_found    no such incident
 *   conflict     the device API's rules refuse the status change
 *   locked       the device is locked (command "lock"): nothing is shown
 *   disk_full    the store is full; nothing was queued
 *   failed       anything else (the message says what)
 *
 * Methods:
 *   status                      sync, queues, last fix, clock, unit, lock,
 *                               disk_full, hardware
 *   list                        incident summaries, active first
 *   show      {id}              the whole incident and its local state
 *   ack       {id}              status acknowledged
 *   set       {id, status, text?}
 *   note      {id, text}
 *   sos       {text?}           allowed even while locked
 *   sync                        drain now
 *   rejected                    events the server rejected, with reasons
 *   lock                        hide everything until unlock
 *   unlock                      privileged: root or essd's own user
 * A method that queues an event answers after the event is durably in the
 * outbox (store_outbox_append has committed), with its seq and event_id.
 *
 * Published to subscribers: "incident" (a summary: new version, status
 * change), "conflict", "rejected", "sync" (online state), "lock", "sos",
 * "wipe", "disk" ({"full": bool} when the disk fills or has room again). Silent incidents carry
 * "silent": true and "alert": "none". */
#ifndef ESS_CTL_METHODS_H
#define ESS_CTL_METHODS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "agent/ctl.h"
#include "agent/responder.h"

struct store;
struct track;
struct sync;
struct hal_gps;
struct hw;

#define CTLM_STATE_LOCKED "ui_locked" /* store state key: "1" while locked */

/* What the methods work on; the daemon owns every pointer. */
struct ctlm {
	struct responder resp; /* .store, .track */
	struct sync *sync;     /* NULL: not syncing (not enrolled, stopped) */
	struct ctl *ctl;       /* NULL: publications go nowhere */
	struct hal_gps *gps;   /* NULL: no GPS source */
	struct hw *hw;         /* NULL: no hardware section in status (agent/hw.h) */
	char unit[PROTO_ID_MAX + 1];
	int locked;
	int wiping;    /* a wipe is pending: every method but status refuses */
	int disk_full; /* the store's disk is full: the trail waits (status) */
	int64_t started_mono_ms;
	/* Called after an action changed something (e.g. to re-check whether an
	 * incident is active). May be NULL. */
	void (*changed)(void *arg);
	/* Called (with changed_arg) when an action met a full disk, so that the
	 * owner of the disk-full state records it and watches for space. NULL:
	 * only the status says disk_full. */
	void (*disk_full_met)(void *arg);
	void *changed_arg;
};

/* The method table, for ctl_open with arg = the struct ctlm. */
const struct ctl_method *ctlm_methods(size_t *n);

/* Reads the lock flag and the unit from the store. */
int ctlm_load(struct ctlm *m);
/* Sets and persists the lock; publishes "lock". */
int ctlm_set_locked(struct ctlm *m, int locked);
/* Publishes {"event": name, "data": data} (taken over; NULL: {}). */
void ctlm_publish(struct ctlm *m, const char *name, cJSON *data);
/* Sets the disk-full state; publishes "disk" {"full"} when it changes. */
void ctlm_set_disk_full(struct ctlm *m, int full);
/* Publishes the incident's summary as "incident" with a "why". */
void ctlm_publish_incident(struct ctlm *m, const char *id, const char *why);
/* The status object (the "status" method's result). NULL on ENOMEM. */
cJSON *ctlm_status(struct ctlm *m);

#endif

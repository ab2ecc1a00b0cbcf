/* The touch UI's connection to essd's control socket, on the event loop
 * (ctl_client.h is the blocking form for essctl). It subscribes at once,
 * hands every publication to a callback, matches answers to calls by id,
 * and reconnects when essd restarts. Never blocks: writes are buffered
 * (bounded) and sent as the socket allows.
 *
 * Returns: 0 or a negative errno. */
#ifndef ESS_UI_CTL_H
#define ESS_UI_CTL_H

#include <stdint.h>

#include <cjson/cJSON.h>

struct loop;
struct ui_ctl;

#define UI_CTL_CALLS_MAX  64    /* calls waiting for their answer */
#define UI_CTL_TIMEOUT_MS 15000 /* an answer later than this counts as lost */
#define UI_CTL_RETRY_MS   1000  /* reconnect delay */

/* A publication {"event": name, "data": data}; data is borrowed. */
typedef void (*ui_ctl_event_fn)(void *arg, const char *name, const cJSON *data);
/* The connection came up (1) or went away (0). */
typedef void (*ui_ctl_state_fn)(void *arg, int connected);
/* The whole answer {"id", "ok", "result"|"error"} (borrowed), or NULL when
 * essd went away or did not answer in time. */
typedef void (*ui_ctl_answer_fn)(void *arg, const cJSON *answer);

int ui_ctl_open(struct loop *l, const char *path, ui_ctl_event_fn on_event,
                ui_ctl_state_fn on_state, void *arg, struct ui_ctl **out);
/* Fails pending calls (their callbacks get NULL) and closes. NULL is fine. */
void ui_ctl_close(struct ui_ctl *c);
int ui_ctl_connected(const struct ui_ctl *c);

/* Sends {"id", "method", "params"} (params taken over, may be NULL).
 * -ENOTCONN when essd is not connected, -EBUSY when too many calls wait.
 * *call (may be NULL) receives a handle for ui_ctl_cancel. */
int ui_ctl_call(struct ui_ctl *c, const char *method, cJSON *params, ui_ctl_answer_fn cb, void *arg,
                uint64_t *call);
/* Forgets a call: its callback will not run. Unknown handles are fine. */
void ui_ctl_cancel(struct ui_ctl *c, uint64_t call);

#endif

/* ess-ui's HTTP side: libmicrohttpd on the project's event loop, loopback
 * only. Serves the embedded web files, one API call endpoint that passes a
 * whitelisted control-socket method to essd, the token exchange, and a
 * server-sent event stream of essd's publications.
 *
 *   GET  /, /index.html, /app.js, …   the web UI (no token needed: no data)
 *   POST /api/login                   Bearer token -> session cookie
 *   POST /api/call  {method, params}  status list show ack set note sos sync
 *   GET  /api/events                  text/event-stream: essd's publications,
 *                                     "essd" {connected} when that changes
 *
 * Every request passes ui_policy_check first (Host, Origin, token, bounds).
 *
 * Returns: 0 or a negative errno. */
#ifndef ESS_UI_HTTP_H
#define ESS_UI_HTTP_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct ui_http;
struct ui_ctl;
struct ui_policy;

#define UI_CONN_MAX 32 /* HTTP connections at once */
#define UI_SSE_MAX  8  /* event streams at once (a kiosk needs one) */
#define UI_SSE_RING 128
/* bytes of one event's data: the ring holds at most UI_SSE_RING of them
 * (essd's lines may be up to CTL_OUT_MAX); a larger one becomes "resync" */
#define UI_SSE_EVENT_MAX (64 * 1024)
#define UI_SSE_PING_MS   15000
#define UI_IDLE_TIMEOUT  30 /* s, for everything but the event stream */

/* Listens on listen ("127.0.0.1:PORT", "[::1]:PORT"; port 0: any free one).
 * Anything but a loopback address is refused (-EINVAL). */
int ui_http_start(struct loop *l, const char *listen, struct ui_http **out, char *err,
                  size_t errlen);
unsigned ui_http_port(const struct ui_http *h);
/* Wiring, before the loop runs: the policy (borrowed) and essd (borrowed). */
void ui_http_set(struct ui_http *h, const struct ui_policy *p, struct ui_ctl *ctl);
/* Sends a publication to every event stream. data is borrowed (NULL: {}). */
void ui_http_publish(struct ui_http *h, const char *name, const cJSON *data);
/* The keepalive interval of the event streams (default UI_SSE_PING_MS;
 * tests shorten it). */
void ui_http_set_ping_ms(struct ui_http *h, int64_t ms);
/* Ends every stream and stops listening. NULL is fine. */
void ui_http_stop(struct ui_http *h);

/* 1 when method may be passed to essd from the UI (unit-tested). */
int ui_http_method_allowed(const char *method);
/* 1 when listen names a loopback address (127.0.0.0/8 or ::1). */
int ui_http_listen_is_loopback(const char *listen);

#endif

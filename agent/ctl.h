/* The control socket: a Unix stream socket speaking newline-delimited JSON,
 * for essctl and the touch UI (ntpd's control.c is the model).
 *
 * Request:  {"id": <number>, "method": "<name>", "params": {…}}
 * Answer:   {"id": <same>, "ok": true, "result": {…}}
 *        or {"id": <same>, "ok": false, "error": {"code": "<code>", "message": "<text>"}}
 * After a successful "subscribe" the connection also receives, unasked,
 *           {"event": "<name>", "data": {…}}
 * lines whenever the daemon publishes a change.
 *
 * Every line is bounded (CTL_LINE_MAX), must be one JSON object with a
 * known method; anything else is answered with an error and the
 * connection keeps serving. A client that floods or stops reading its
 * subscription is disconnected, never allowed to grow memory. */
#ifndef ESS_CTL_H
#define ESS_CTL_H

#include <cjson/cJSON.h>
#include <sys/types.h>

#define CTL_LINE_MAX    (64 * 1024)
#define CTL_OUT_MAX     (1024 * 1024) /* queued output per client */
#define CTL_CLIENTS_MAX 32

struct loop;
struct ctl;
struct ctl_client;

/* Who is asking, from SO_PEERCRED. */
struct ctl_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

/* A method handler. params is the request's "params" object (never NULL:
 * an empty object when absent). On success return 0 and set *result (owned
 * by the caller of the handler then; NULL means {}); on failure return a
 * negative errno and fill code/message (message without personal data).
 * A handler may also answer later: return 1, keep the client and call
 * ctl_reply() (e.g. after the event is durably stored). */
typedef int (*ctl_method_fn)(void *arg, struct ctl_client *c, const struct ctl_peer *peer,
                             const cJSON *params, cJSON **result, const char **code, char *message,
                             size_t msglen);

struct ctl_method {
	const char *name;
	ctl_method_fn fn;
	int privileged; /* only root or the daemon's own uid */
};

/* Binds path (removing a stale socket, refusing when another daemon
 * answers there), mode 0660, group gid (-1: keep). methods is borrowed and
 * must outlive ctl; "subscribe" is built in. */
int ctl_open(struct loop *l, const char *path, gid_t gid, const struct ctl_method *methods,
             size_t nmethods, void *arg, struct ctl **out, char *err, size_t errlen);
/* Closes every client and unlinks the socket. NULL is fine. */
void ctl_close(struct ctl *c);

/* Sends a line {"event": name, "data": data} to every subscriber. data is
 * borrowed. Returns how many subscribers got it. */
int ctl_publish(struct ctl *c, const char *name, const cJSON *data);

/* Completes a deferred answer (handler returned 1). result is taken over
 * (may be NULL); on error pass rc < 0 with code and message. */
void ctl_reply(struct ctl_client *cl, int rc, cJSON *result, const char *code, const char *message);

/* Number of connected clients (tests, status). */
int ctl_client_count(const struct ctl *c);

#endif

/* A small blocking client of the control socket, for essctl and the tests
 * (wpa_ctrl and ntpctl are the model). Not for use on the daemon's loop. */
#ifndef ESS_CTL_CLIENT_H
#define ESS_CTL_CLIENT_H

#include <cjson/cJSON.h>

struct ctl_conn;

/* Returns 0, or a negative errno with a message naming the socket in err
 * (-EACCES: this user may not use it; -ENOENT / -ECONNREFUSED: essd is not
 * running). */
int ctl_conn_open(const char *path, struct ctl_conn **out, char *err, size_t errlen);
void ctl_conn_close(struct ctl_conn *c);

/* Sends {"id", "method", "params"} (params taken over, may be NULL) and
 * waits up to timeout_ms for the answer with that id; event lines that
 * arrive meanwhile are queued for ctl_conn_next_event. *answer is the whole
 * answer object (caller cJSON_Deletes). -ETIMEDOUT, -EPIPE, -EPROTO. */
int ctl_conn_call(struct ctl_conn *c, const char *method, cJSON *params, int timeout_ms,
                  cJSON **answer);

/* Next {"event", "data"} line (after "subscribe"), waiting up to timeout_ms. */
int ctl_conn_next_event(struct ctl_conn *c, int timeout_ms, cJSON **event);

/* Sends raw bytes as they are (tests of malformed input). */
int ctl_conn_send_raw(struct ctl_conn *c, const void *data, size_t len);
/* Reads the next line of any kind. */
int ctl_conn_read_line(struct ctl_conn *c, int timeout_ms, cJSON **line);

#endif

/* The HTTP side of the reference server: libmicrohttpd in external epoll
 * mode, driven by the project's loop (agent/loop.h) — one thread, nothing
 * polls. It owns each request's life: the raw URI as sent (for the string
 * to sign), the body (bounded, gunzipped), the fault switches that act at
 * the edge (fail, lose, delay), holding a request (long poll) with
 * MHD_suspend_connection until it is woken or its time is up, and the
 * answer (JSON, gzip'd when the client accepts it).
 *
 * The API modules see a request through struct rs_req (read-only but for
 * the reply functions) and answer with one of the http_reply* calls, or
 * ask for it to be held with http_hold and return RS_HOLD.
 *
 * Returns: 0 or a negative errno. */
#ifndef ESS_RS_HTTP_H
#define ESS_RS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "sync/proto.h"

struct rs;
struct rs_http;
struct MHD_Connection;

#define RS_URI_MAX 2048

enum rs_route { RS_ROUTE_NONE = 0, RS_ROUTE_DEVICE, RS_ROUTE_ADMIN };
/* What an API handler returns. */
enum { RS_REPLY = 0, RS_HOLD = 1 };

struct rs_req {
	/* read-only for the API modules */
	char method[8];
	enum rs_route route;
	const char *path_query; /* as sent, from the base URL's end (device) or "/admin…" */
	char path[RS_URI_MAX];  /* path_query without the query */
	const unsigned char *raw; /* the body as sent (for the signature) */
	size_t raw_len;
	const char *body; /* the body decoded (NUL-terminated), "" when none */
	size_t body_len;
	char device_id[PROTO_ID_MAX + 1]; /* set by auth for a signed request */
	int resumed;                      /* 1 when called again after being held */
	int timed_out;                    /* the hold ended by its timeout */

	/* for the module that holds the request (feed.c): called once when the
	 * request ends, whatever ended it */
	void (*on_done)(struct rs_req *r, void *arg);
	void *on_done_arg;

	/* private to http.c */
	struct rs_http *h;
	struct MHD_Connection *con;
	char *uri;
	unsigned char *rawbuf;
	size_t raw_cap;
	int too_big, started, suspended, hold, dropped;
	unsigned char *plain;
	int64_t t0, hold_ms;
	struct loop_timer *timer;
	unsigned status;
	char *resp;
	size_t resp_len;
	int retry_after;
	int accept_gzip;
};

/* listen: "127.0.0.1:0", "[::1]:8080", "0.0.0.0:8080". */
int http_start(struct rs *rs, const char *listen, struct rs_http **out, char *err,
               size_t errlen);
/* The bound port. */
unsigned http_port(const struct rs_http *h);
/* Answers every held request and stops the daemon. NULL is fine. */
void http_stop(struct rs_http *h);

/* Query argument (decoded by MHD), NULL if absent. */
const char *http_query(struct rs_req *r, const char *name);
/* A request header, NULL if absent. */
const char *http_header(struct rs_req *r, const char *name);

/* Answers with body (taken over; NULL answers no body). */
void http_reply(struct rs_req *r, unsigned status, cJSON *body);
/* {"error": code, "message": formatted} */
void http_reply_error(struct rs_req *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same with the fields of extra merged in (taken over). */
void http_reply_error_with(struct rs_req *r, unsigned status, const char *code, const char *msg,
                           cJSON *extra);

/* Asks for r to be held up to ms: the handler then returns RS_HOLD and is
 * called again (r->resumed set) after http_wake or the timeout
 * (r->timed_out set). */
void http_hold(struct rs_req *r, int64_t ms);
/* Ends a hold early (no-op if r is not held). */
void http_wake(struct rs_req *r);

#endif

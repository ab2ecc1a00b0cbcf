/* HTTP client for the device API: libcurl's multi-socket interface driven by
 * the agent's event loop (agent/loop.h). Nothing here blocks: a request is
 * started, and its callback runs from the loop when the answer (or the
 * failure) is complete.
 *
 * One multi handle per struct http: connections are kept alive and reused,
 * at most HTTP_MAX_HOST_CONNS per host. https uses HTTP/2 when the server
 * offers it (ALPN): every request then shares one connection, multiplexed;
 * plain http is HTTP/1.1. TLS peer and host verification are
 * always on for https; plain http is refused unless the base URL's host is a
 * loopback address (127.0.0.0/8, ::1, localhost). Redirects are never
 * followed. TLS sessions are shared by all requests of a struct http, so
 * a reconnect resumes the last session when the server allows it.
 *
 * A coverage hole does not cost the connection: a request that times out
 * on an HTTP/2 connection only resets its stream, and over https the stall
 * check waits at least dead_s. A connection that stays silent (nothing from
 * the server) for dead_s plus the longest hold of the requests waiting on
 * it is abandoned, its requests failed or retried on a new one: a connection
 * the network dropped without a reset is given up within that bound.
 *
 * Signed requests carry ESS-Device, ESS-Timestamp and ESS-Signature (device
 * API section 2): the string to sign covers the method, the path and query
 * as sent (relative to the base URL), the timestamp (wall clock plus the
 * kept offset) and the SHA-256 of the body as sent, after compression.
 *
 * Returns: 0 or a negative errno, unless a prototype says otherwise. */
#ifndef ESS_SYNC_HTTP_H
#define ESS_SYNC_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct http;
struct http_req;

#define HTTP_MAX_HOST_CONNS 4
#define HTTP_GZIP_MIN       1024              /* bodies at least this long are gzip'd */
#define HTTP_RESPONSE_MAX   (8 * 1024 * 1024) /* decoded response bytes */
#define HTTP_DEAD_S         30                /* default http_params.dead_s */

/* Signs msg with the device key (store_device_sign fits). */
typedef int (*http_sign_fn)(void *arg, const void *msg, size_t len, unsigned char sig[64]);

struct http_params {
	const char *base_url;      /* no trailing '/'; paths are appended */
	const char *ca_file;       /* NULL or "": the system's CAs */
	const char *pinned_pubkey; /* NULL or "": no pin; else CURLOPT_PINNEDPUBLICKEY */
	int connect_timeout_s;     /* TCP + TLS set-up */
	int request_timeout_s;     /* whole request, long polls included */
	int stall_s;               /* abort when no byte moved for this long (plus the
	                            * request's expected hold time); over https at
	                            * least dead_s */
	int dead_s;                /* https: a connection from which nothing came for
	                            * this long plus the longest hold of the requests
	                            * waiting on it is abandoned (0: HTTP_DEAD_S) */
};

struct http_response {
	long status;               /* HTTP status; 0 when no answer arrived */
	int error;                 /* 0, or a negative errno for a transport failure:
	                            * -ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH, -EFBIG
	                            * (response too large), -EPROTO (TLS), -EIO */
	int64_t retry_after_s;     /* Retry-After in seconds, -1 when absent */
	const unsigned char *body; /* decoded, NUL-terminated; valid during the callback */
	size_t body_len;
	uint64_t bytes_up;   /* request line, headers and body as sent */
	uint64_t bytes_down; /* status line, headers and body as received */
	int new_conns;       /* connections libcurl opened for this request (0: it reused one;
	                      * CURLINFO_NUM_CONNECTS) */
	long http_version;   /* 11 or 20 (CURLINFO_HTTP_VERSION); 0 when unknown */
};

/* Runs from the loop once, when the request ends. Not called for a request
 * that is cancelled or whose struct http is closed. */
typedef void (*http_done_fn)(void *arg, const struct http_response *r);

enum http_flags {
	HTTP_SIGNED = 1,    /* add the ESS-* signature headers */
	HTTP_GZIP = 2,      /* gzip the body when it is at least HTTP_GZIP_MIN bytes */
	HTTP_GZIP_BEST = 4, /* …at the best ratio (positions) instead of the fastest */
};

/* 0 if url may be used: https, or http to a loopback host. -EPERM for plain
 * http elsewhere, -EINVAL for anything that is not an http(s) URL. */
int http_url_allowed(const char *url);

/* The three signature header lines for one request, e.g.
 *   "ESS-Device: d-1", "ESS-Timestamp: 1764400000", "ESS-Signature: <b64>" */
struct http_auth {
	char device[16 + 128];
	char timestamp[40];
	char signature[32 + 90];
};
int http_auth_make(const char *device_id, int64_t timestamp, const char *method,
                   const char *path_query, const void *body, size_t len, http_sign_fn sign,
                   void *sign_arg, struct http_auth *out);

/* Checks the base URL (http_url_allowed) and sets up the multi handle.
 * err (may be NULL) receives a reason naming no secret. */
int http_open(struct loop *l, const struct http_params *p, struct http **out, char *err,
              size_t errlen);
/* Cancels every request without calling back, removes its fds and timer.
 * NULL is fine. Not from inside an http_done_fn. */
void http_close(struct http *h);

/* Identity for HTTP_SIGNED requests; device_id is copied. */
int http_set_identity(struct http *h, const char *device_id, http_sign_fn sign, void *sign_arg);
/* Seconds added to the wall clock for ESS-Timestamp (clock skew). */
void http_set_clock_offset(struct http *h, int64_t offset_s);
int64_t http_clock_offset(const struct http *h);
/* Wall clock plus the offset, unix seconds: what ESS-Timestamp carries. */
int64_t http_timestamp(const struct http *h);

/* Starts a request. path_query starts with '/' and is appended to the base
 * URL. body (len bytes, may be NULL) is copied. hold_s is how long the
 * server may legitimately keep the request silent (a long poll's wait), 0
 * otherwise. *out (may be NULL) receives a handle for http_cancel, valid
 * until the callback runs. */
int http_request(struct http *h, const char *method, const char *path_query, const void *body,
                 size_t len, unsigned flags, int hold_s, http_done_fn cb, void *arg,
                 struct http_req **out);
/* Ends a request without calling back. NULL is fine. */
void http_cancel(struct http *h, struct http_req *r);
/* Requests started and not yet ended. */
int http_pending(const struct http *h);
/* Connections the silence watchdog abandoned (https). */
uint64_t http_abandoned(const struct http *h);

#endif

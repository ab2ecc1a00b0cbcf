#include "sync/refserver/http.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "agent/mhd/mhd_loop.h"
#include "sync/refserver/api.h"
#include "sync/refserver/faults.h"
#include "sync/refserver/rs.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define HTTP_CONN_LIMIT   512
#define HTTP_IDLE_TIMEOUT 120   /* s: a held request is not idle */
#define HTTP_LOG_MAX      16384 /* device requests remembered for GET /admin/requests */

/* One device request, as it arrived (real time, not the shifted clock). */
struct reqlog {
	int64_t t_ms;
	char method[8];
	char path[120];
	unsigned status; /* 0: not answered (yet, or dropped) */
};

struct rs_http {
	struct rs *rs;
	struct MHD_Daemon *d;
	struct mhd_loop *ml;
	/* requests suspended now (held or delayed), to answer them at stop */
	struct rs_req **held;
	size_t nheld, held_cap;
	struct reqlog *log; /* a ring of HTTP_LOG_MAX */
	uint64_t log_total;
};

static void log_arrival(struct rs_http *h, struct rs_req *r)
{
	if (!h->log)
		return;
	struct reqlog *e = &h->log[h->log_total % HTTP_LOG_MAX];
	e->t_ms = loop_wall_ms();
	snprintf(e->method, sizeof(e->method), "%s", r->method);
	size_t n = strnlen(r->path, sizeof(e->path) - 1);
	memcpy(e->path, r->path, n);
	e->path[n] = 0;
	e->status = 0;
	r->log_seq = ++h->log_total;
}

static void log_answer(struct rs_http *h, struct rs_req *r, unsigned status)
{
	if (h->log && r->log_seq && h->log_total - r->log_seq < HTTP_LOG_MAX)
		h->log[(r->log_seq - 1) % HTTP_LOG_MAX].status = status;
}

cJSON *http_requests_json(struct rs_http *h)
{
	cJSON *arr = cJSON_CreateArray();
	uint64_t first = h->log_total > HTTP_LOG_MAX ? h->log_total - HTTP_LOG_MAX : 0;
	for (uint64_t i = first; arr && h->log && i < h->log_total; i++) {
		const struct reqlog *e = &h->log[i % HTTP_LOG_MAX];
		cJSON *row = cJSON_CreateArray();
		if (!row || !cJSON_AddItemToArray(arr, row)) {
			cJSON_Delete(row);
			cJSON_Delete(arr);
			return NULL;
		}
		cJSON_AddItemToArray(row, cJSON_CreateNumber((double)e->t_ms));
		cJSON_AddItemToArray(row, cJSON_CreateString(e->method));
		cJSON_AddItemToArray(row, cJSON_CreateString(e->path));
		cJSON_AddItemToArray(row, cJSON_CreateNumber(e->status));
	}
	return arr;
}

/* ---- the held list ---- */

static int held_add(struct rs_http *h, struct rs_req *r)
{
	if (h->nheld == h->held_cap) {
		size_t cap = h->held_cap ? h->held_cap * 2 : 16;
		struct rs_req **n = realloc(h->held, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		h->held = n;
		h->held_cap = cap;
	}
	h->held[h->nheld++] = r;
	return 0;
}

static void held_del(struct rs_http *h, struct rs_req *r)
{
	for (size_t i = 0; i < h->nheld; i++) {
		if (h->held[i] == r) {
			h->held[i] = h->held[--h->nheld];
			return;
		}
	}
}

/* ---- suspend / resume ---- */

static void resume(struct rs_req *r)
{
	if (!r->suspended)
		return;
	r->suspended = 0;
	held_del(r->h, r);
	MHD_resume_connection(r->con);
	mhd_loop_kick(r->h->ml);
}

static int64_t on_req_timer(struct loop *l, void *arg)
{
	(void)l;
	struct rs_req *r = arg;
	r->timer = NULL; /* freed by the loop as we return < 0 */
	if (r->hold)
		r->timed_out = 1;
	resume(r);
	return -1;
}

static int suspend_for(struct rs_req *r, int64_t ms)
{
	r->timer = loop_timer_add(r->h->rs->loop, ms, on_req_timer, r);
	if (!r->timer || held_add(r->h, r) < 0) {
		loop_timer_cancel(r->h->rs->loop, r->timer);
		r->timer = NULL;
		return -ENOMEM;
	}
	MHD_suspend_connection(r->con);
	r->suspended = 1;
	return 0;
}

void http_hold(struct rs_req *r, int64_t ms)
{
	r->hold = 1;
	r->hold_ms = ms < 0 ? 0 : ms;
}

void http_wake(struct rs_req *r)
{
	if (!r->hold || !r->suspended)
		return;
	loop_timer_cancel(r->h->rs->loop, r->timer);
	r->timer = NULL;
	resume(r);
}

/* ---- replies ---- */

static void set_reply(struct rs_req *r, unsigned status, char *text)
{
	free(r->resp);
	r->status = status;
	r->resp = text;
	r->resp_len = text ? strlen(text) : 0;
}

void http_reply(struct rs_req *r, unsigned status, cJSON *body)
{
	char *text = NULL;
	if (body) {
		text = cJSON_PrintUnformatted(body);
		cJSON_Delete(body);
		if (!text) {
			set_reply(r, 500, NULL);
			return;
		}
	}
	set_reply(r, status, text);
}

void http_reply_error_with(struct rs_req *r, unsigned status, const char *code, const char *msg,
                           cJSON *extra)
{
	cJSON *o = cJSON_CreateObject();
	if (o && cJSON_AddStringToObject(o, "error", code) &&
	    cJSON_AddStringToObject(o, "message", msg)) {
		cJSON *it = extra ? extra->child : NULL;
		while (it) {
			cJSON *next = it->next;
			cJSON_AddItemToObject(o, it->string, cJSON_DetachItemViaPointer(extra, it));
			it = next;
		}
		http_reply(r, status, o);
	} else {
		cJSON_Delete(o);
		set_reply(r, 500, NULL);
	}
	cJSON_Delete(extra);
}

void http_reply_error(struct rs_req *r, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	http_reply_error_with(r, status, code, msg, NULL);
}

const char *http_query(struct rs_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->con, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(struct rs_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->con, MHD_HEADER_KIND, name);
}

/* "gzip" among the codings, and not with q=0. */
static int accepts_gzip(const char *v)
{
	while (v && *v) {
		while (*v == ' ' || *v == ',')
			v++;
		size_t n = strcspn(v, ",");
		size_t name = strcspn(v, ";, ");
		if (name == 4 && strncasecmp(v, "gzip", 4) == 0) {
			const char *q = strstr(v, "q=");
			if (!q || q >= v + n)
				return 1;
			for (q += 2; q < v + n && (*q == '0' || *q == '.'); q++)
				;
			return q < v + n && *q >= '1' && *q <= '9';
		}
		v += n;
	}
	return 0;
}

static enum MHD_Result queue_reply(struct rs_req *r)
{
	unsigned char *gz = NULL;
	size_t gzlen = 0;
	const char *enc = NULL;
	void *data = r->resp;
	size_t len = r->resp_len;
	if (r->accept_gzip && len > 0 && proto_gzip(r->resp, len, &gz, &gzlen) == 0) {
		free(r->resp);
		data = gz;
		len = gzlen;
		enc = "gzip";
	}
	r->resp = NULL;
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    len, data ? data : (void *)"", data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(data);
		return MHD_NO;
	}
	if (len > 0)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
	if (enc)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, enc);
	if (r->retry_after > 0) {
		char ra[24];
		snprintf(ra, sizeof(ra), "%d", r->retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	log_answer(r->h, r, r->status);
	enum MHD_Result rc = MHD_queue_response(r->con, r->status, resp);
	MHD_destroy_response(resp);
	log_info("%s %s %u %lldms", r->method, r->path, r->status,
	         (long long)(loop_now_ms() - r->t0));
	return rc;
}

/* The captive-portal switch: what a device behind a hotel or airport Wi-Fi
 * gets for any request, a 200 with an HTML login page; nothing applied. */
static enum MHD_Result queue_portal(struct rs_req *r)
{
	static char page[] = /* never written: MHD_RESPMEM_PERSISTENT */
	    "<!DOCTYPE html>\n<html><head><title>Free WiFi - Login</title></head>\n"
	    "<body><h1>Welcome!</h1><form method=\"post\" action=\"/login\">"
	    "<input name=\"room\"><button>Connect</button></form></body></html>\n";
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(sizeof(page) - 1, page, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	log_answer(r->h, r, 200);
	enum MHD_Result rc = MHD_queue_response(r->con, 200, resp);
	MHD_destroy_response(resp);
	log_info("%s %s 200 captive portal page (portal switch)", r->method, r->path);
	return rc;
}

/* ---- the request ---- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *con)
{
	struct rs_req *r = calloc(1, sizeof(*r));
	(void)con;
	if (!r)
		return NULL;
	r->h = cls;
	r->t0 = loop_now_ms();
	size_t n = strnlen(uri, RS_URI_MAX);
	r->uri = malloc(n + 1);
	if (!r->uri) {
		free(r);
		return NULL;
	}
	memcpy(r->uri, uri, n);
	r->uri[n] = 0;
	if (n >= RS_URI_MAX)
		r->too_big = 2; /* the URI itself */
	return r;
}

static void on_completed(void *cls, struct MHD_Connection *con, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct rs_http *h = cls;
	struct rs_req *r = *req_cls;
	(void)con;
	(void)toe;
	if (!r)
		return;
	if (r->on_done)
		r->on_done(r, r->on_done_arg);
	loop_timer_cancel(h->rs->loop, r->timer);
	held_del(h, r);
	free(r->uri);
	free(r->rawbuf);
	free(r->plain);
	free(r->resp);
	free(r);
	*req_cls = NULL;
}

/* Which API, and the path as the API sees it. */
static void classify(struct rs_http *h, struct rs_req *r)
{
	const char *base = h->rs->base;
	size_t bl = strlen(base);
	r->route = RS_ROUTE_NONE;
	r->path_query = r->uri;
	if (strncmp(r->uri, base, bl) == 0 && strncmp(r->uri + bl, "/v1/", 4) == 0) {
		r->route = RS_ROUTE_DEVICE;
		r->path_query = r->uri + bl;
	} else if (strncmp(r->uri, "/admin", 6) == 0 &&
	           (r->uri[6] == '/' || r->uri[6] == '?' || r->uri[6] == 0)) {
		r->route = RS_ROUTE_ADMIN;
	}
	size_t n = strcspn(r->path_query, "?");
	if (n >= sizeof(r->path))
		n = sizeof(r->path) - 1;
	memcpy(r->path, r->path_query, n);
	r->path[n] = 0;
}

static int append_body(struct rs_req *r, const char *data, size_t len)
{
	if (r->too_big)
		return 0;
	if (len > PROTO_BODY_MAX - r->raw_len) {
		r->too_big = 1;
		free(r->rawbuf);
		r->rawbuf = NULL;
		r->raw_len = r->raw_cap = 0;
		return 0;
	}
	if (r->raw_len + len > r->raw_cap) {
		size_t cap = r->raw_cap ? r->raw_cap : 4096;
		while (cap < r->raw_len + len)
			cap *= 2;
		if (cap > PROTO_BODY_MAX)
			cap = PROTO_BODY_MAX;
		unsigned char *n = realloc(r->rawbuf, cap + 1);
		if (!n)
			return -ENOMEM;
		r->rawbuf = n;
		r->raw_cap = cap;
	}
	memcpy(r->rawbuf + r->raw_len, data, len);
	r->raw_len += len;
	return 0;
}

/* The body as the API reads it: checked encoding, gunzipped with a bound.
 * Returns 0, or sets an error answer and returns -1. */
static int decode_body(struct rs_req *r)
{
	static const char empty[] = "";
	const char *enc = http_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING);
	const char *ctype = http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
	r->raw = r->rawbuf ? r->rawbuf : (const unsigned char *)empty;
	r->body = empty;
	r->body_len = 0;
	if (r->too_big) {
		http_reply_error(r, r->too_big == 2 ? 414 : 413, "too_large",
		                 r->too_big == 2 ? "request URI too long" : "body too large");
		return -1;
	}
	if (r->raw_len == 0)
		return 0;
	if (ctype && strncasecmp(ctype, "application/json", 16) != 0) {
		http_reply_error(r, 415, "unsupported_media_type", "bodies are application/json");
		return -1;
	}
	if (!enc || strcasecmp(enc, "identity") == 0) {
		r->rawbuf[r->raw_len] = 0;
		r->body = (const char *)r->rawbuf;
		r->body_len = r->raw_len;
		return 0;
	}
	if (strcasecmp(enc, "gzip") != 0) {
		http_reply_error(r, 415, "unsupported_encoding", "Content-Encoding must be gzip");
		return -1;
	}
	size_t n = 0;
	int rc = proto_gunzip(r->rawbuf, r->raw_len, PROTO_BODY_MAX, &r->plain, &n);
	if (rc == -EFBIG) {
		http_reply_error(r, 413, "too_large", "body too large once decompressed");
		return -1;
	}
	if (rc < 0) {
		http_reply_error(r, 400, "bad_request", "body is not a valid gzip stream");
		return -1;
	}
	r->body = (const char *)r->plain;
	r->body_len = n;
	return 0;
}

static int run_handler(struct rs_http *h, struct rs_req *r)
{
	int rc;
	switch (r->route) {
	case RS_ROUTE_DEVICE:
		rc = api_device_handle(h->rs, r);
		break;
	case RS_ROUTE_ADMIN:
		rc = api_dispatch_handle(h->rs, r);
		break;
	default:
		http_reply_error(r, 404, "not_found", "no such path");
		rc = RS_REPLY;
	}
	if (rc == RS_REPLY && r->status == 0)
		http_reply_error(r, 500, "internal", "no answer");
	return rc;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *con, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
	struct rs_http *h = cls;
	struct rs_req *r = *req_cls;
	(void)url;
	(void)version;
	if (!r)
		return MHD_NO;
	if (!r->started) {
		r->started = 1;
		r->con = con;
		snprintf(r->method, sizeof(r->method), "%s", method);
		classify(h, r);
		if (r->route == RS_ROUTE_DEVICE)
			log_arrival(h, r);
		r->accept_gzip = accepts_gzip(http_header(r, MHD_HTTP_HEADER_ACCEPT_ENCODING));
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (append_body(r, upload_data, *upload_data_size) < 0)
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->status) /* an answer held back by the delay switch */
		return queue_reply(r);

	if (r->hold) { /* back from a hold */
		r->hold = 0;
		r->resumed = 1;
	} else {
		unsigned fail = 0;
		if (r->route == RS_ROUTE_DEVICE)
			fail = faults_take_fail(h->rs->faults, &r->retry_after);
		if (fail) {
			http_reply_error(r, fail, fail == 429 ? "rate_limited" : "unavailable",
			                 "fault switch: failing this request");
			return queue_reply(r);
		}
		if (r->route == RS_ROUTE_DEVICE && faults_take_portal(h->rs->faults))
			return queue_portal(r);
		if (decode_body(r) < 0)
			return queue_reply(r);
	}
	r->timed_out = r->resumed ? r->timed_out : 0;
	if (run_handler(h, r) == RS_HOLD) {
		if (suspend_for(r, r->hold_ms) < 0) {
			r->hold = 0;
			http_reply_error(r, 503, "unavailable", "out of memory");
			r->retry_after = 1;
			return queue_reply(r);
		}
		return MHD_YES;
	}
	if (r->route == RS_ROUTE_DEVICE) {
		if (faults_take_truncate(h->rs->faults) && r->resp_len > 0) {
			log_info("%s %s %u cut to %zu of %zu bytes (truncate switch)", r->method,
			         r->path, r->status, r->resp_len / 2, r->resp_len);
			r->resp_len /= 2;
		}
		if (faults_take_lose(h->rs->faults)) {
			log_info("%s %s %u dropped (lost-answer switch)", r->method, r->path,
			         r->status);
			return MHD_NO;
		}
		int64_t delay = faults_take_delay(h->rs->faults);
		if (delay > 0 && suspend_for(r, delay) == 0)
			return MHD_YES;
	}
	return queue_reply(r);
}

int http_start(struct rs *rs, const char *listen, struct rs_http **out, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int fam, rc;
	*out = NULL;
	if ((fam = mhd_loop_parse_listen(listen, &ss)) < 0) {
		snprintf(err, errlen, "--listen: want HOST:PORT or [V6]:PORT");
		return -EINVAL;
	}
	struct rs_http *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->rs = rs;
	h->log = calloc(HTTP_LOG_MAX, sizeof(*h->log));
	if (!h->log) {
		free(h);
		return -ENOMEM;
	}
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
	                 (fam == 6 ? MHD_USE_IPv6 : 0);
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_access, h, MHD_OPTION_EXTERNAL_LOGGER,
	                        mhd_loop_log, "http", MHD_OPTION_SOCK_ADDR, &ss,
	                        MHD_OPTION_URI_LOG_CALLBACK, on_uri, h, MHD_OPTION_NOTIFY_COMPLETED,
	                        on_completed, h, MHD_OPTION_CONNECTION_TIMEOUT,
	                        (unsigned)HTTP_IDLE_TIMEOUT, MHD_OPTION_CONNECTION_LIMIT,
	                        (unsigned)HTTP_CONN_LIMIT, MHD_OPTION_END);
	if (!h->d) {
		snprintf(err, errlen, "cannot listen on %s", listen);
		free(h->log);
		free(h);
		return -EADDRNOTAVAIL;
	}
	if ((rc = mhd_loop_attach(rs->loop, h->d, &h->ml)) < 0) {
		snprintf(err, errlen, "cannot watch the daemon: %s", strerror(-rc));
		goto fail;
	}
	*out = h;
	return 0;
fail:
	MHD_stop_daemon(h->d);
	free(h->log);
	free(h);
	return rc;
}

unsigned http_port(const struct rs_http *h)
{
	return mhd_loop_port(h->ml);
}

void http_stop(struct rs_http *h)
{
	if (!h)
		return;
	/* answer every held request: a long poll ends as if its time were up */
	while (h->nheld) {
		struct rs_req *r = h->held[0];
		loop_timer_cancel(h->rs->loop, r->timer);
		r->timer = NULL;
		if (r->hold)
			r->timed_out = 1;
		resume(r);
	}
	mhd_loop_detach(h->ml);
	MHD_stop_daemon(h->d);
	free(h->held);
	free(h->log);
	free(h);
}

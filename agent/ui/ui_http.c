/* ess-ui's HTTP side (ui_http.h). MHD runs on the loop through
 * agent/mhd/mhd_loop.h, as the reference server's does; suspend/resume
 * for answers that wait on essd and for idle event streams. */
#include "agent/ui/ui_http.h"

#include "agent/log.h"
#include "agent/loop.h"
#include "agent/mhd/mhd_loop.h"
#include "agent/ui/ui_assets.h"
#include "agent/ui/ui_ctl.h"
#include "agent/ui/ui_policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct ring_ev {
	uint64_t seq; /* 0: empty */
	char *text;   /* "event: …\ndata: …\n\n" */
	size_t len;
};

struct sse {
	struct ui_http *h;
	struct MHD_Connection *con;
	struct sse *next;
	uint64_t seq; /* the next event to send */
	size_t off;   /* bytes of it already sent */
	int greeted;
	int suspended;
};

struct ui_http {
	struct loop *l;
	struct MHD_Daemon *d;
	struct mhd_loop *ml;
	struct loop_timer *ping;
	int stopping;
	int64_t ping_ms;
	const struct ui_policy *policy;
	struct ui_ctl *ctl;
	struct ring_ev ring[UI_SSE_RING];
	uint64_t next_seq; /* seq of the next event published */
	struct sse *streams;
	int nstreams;
};

/* One HTTP request. */
struct req {
	struct ui_http *h;
	struct MHD_Connection *con;
	enum ui_auth auth;
	unsigned refuse; /* an HTTP status decided before the body was read */
	const char *why;
	char *body;
	size_t len;
	int too_large;
	/* a call waiting for essd */
	uint64_t call;
	int waiting;
	int answered;
	unsigned status;
	char *answer;
};

/* ---- answers ---- */

static void add_headers(struct MHD_Response *r, int api)
{
	for (const struct ui_header *hd = ui_security_headers; hd->name; hd++)
		MHD_add_response_header(r, hd->name, hd->value);
	/* the API's answers hold personal data: never kept by the browser */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, api ? "no-store" : "no-cache");
}

static enum MHD_Result reply_buf(struct MHD_Connection *con, unsigned status, const char *type,
                                 const void *data, size_t len, int copy, const char *cookie)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
	    len, (void *)(uintptr_t)data, copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	add_headers(r, type && strncmp(type, "application/json", 16) == 0);
	if (type)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (cookie)
		MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
	enum MHD_Result rc = MHD_queue_response(con, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result reply_error(struct MHD_Connection *con, unsigned status, const char *code,
                                   const char *message)
{
	char buf[512];
	cJSON *o = cJSON_CreateObject(), *e;
	char *s = NULL;
	if (o && (e = cJSON_AddObjectToObject(o, "error")) &&
	    cJSON_AddStringToObject(e, "code", code) &&
	    cJSON_AddStringToObject(e, "message", message) && cJSON_AddFalseToObject(o, "ok"))
		s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	snprintf(buf, sizeof(buf), "%s", s ? s : "{\"ok\":false}");
	free(s);
	return reply_buf(con, status, "application/json", buf, strlen(buf), 1, NULL);
}

/* ---- event streams ---- */

static void wake_streams(struct ui_http *h)
{
	for (struct sse *s = h->streams; s; s = s->next)
		if (s->suspended) {
			s->suspended = 0;
			MHD_resume_connection(s->con);
		}
	mhd_loop_kick(h->ml);
}

static void publish_text(struct ui_http *h, const char *name, const char *json)
{
	size_t cap = strlen(name) + (json ? strlen(json) : 0) + 32;
	char *t = malloc(cap);
	if (!t)
		return; /* a stream that misses one catches up on the next "essd"/state poll */
	int n = json ? snprintf(t, cap, "event: %s\ndata: %s\n\n", name, json)
	             : snprintf(t, cap, "%s", name);
	struct ring_ev *e = &h->ring[h->next_seq % UI_SSE_RING];
	free(e->text);
	e->text = t;
	e->len = (size_t)n;
	e->seq = h->next_seq++;
	wake_streams(h);
}

void ui_http_publish(struct ui_http *h, const char *name, const cJSON *data)
{
	char *s = data ? cJSON_PrintUnformatted(data) : NULL;
	if (s && strlen(s) > UI_SSE_EVENT_MAX) {
		/* the page reloads its state through /api/call instead */
		log_warnx("ui: a %s event of %zu bytes: sent as resync", name, strlen(s));
		publish_text(h, "resync", "{}");
	} else {
		publish_text(h, name, s ? s : "{}");
	}
	free(s);
}

static int64_t on_ping(struct loop *l, void *arg)
{
	(void)l;
	struct ui_http *h = arg;
	/* a comment line: keeps proxies and the browser's idea of the stream
	 * alive, and finds streams whose reader went away */
	if (h->nstreams)
		publish_text(h, ": ping\n\n", NULL);
	return h->ping_ms;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct sse *s = cls;
	struct ui_http *h = s->h;
	if (h->stopping)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (!s->greeted) {
		static const char hello[] = "retry: 2000\n\n";
		s->greeted = 1;
		memcpy(buf, hello, sizeof(hello) - 1); /* max is at least a block */
		return (ssize_t)(sizeof(hello) - 1);
	}
	if (s->seq == h->next_seq) { /* nothing new: wait, without polling */
		s->suspended = 1;
		MHD_suspend_connection(s->con);
		return 0;
	}
	const struct ring_ev *e = &h->ring[s->seq % UI_SSE_RING];
	if (e->seq != s->seq) {
		/* fell a whole ring behind: say so, the page reloads its state */
		static const char lost[] = "event: resync\ndata: {}\n\n";
		s->seq = h->next_seq;
		s->off = 0;
		memcpy(buf, lost, sizeof(lost) - 1);
		return (ssize_t)(sizeof(lost) - 1);
	}
	size_t n = e->len - s->off;
	if (n > max)
		n = max;
	memcpy(buf, e->text + s->off, n);
	s->off += n;
	if (s->off == e->len) {
		s->seq++;
		s->off = 0;
	}
	return (ssize_t)n;
}

static void sse_free(void *cls)
{
	struct sse *s = cls;
	struct ui_http *h = s->h;
	for (struct sse **p = &h->streams; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			h->nstreams--;
			break;
		}
	free(s);
}

static enum MHD_Result start_stream(struct ui_http *h, struct MHD_Connection *con)
{
	if (h->nstreams >= UI_SSE_MAX)
		return reply_error(con, 503, "busy", "too many event streams");
	struct sse *s = calloc(1, sizeof(*s));
	if (!s)
		return MHD_NO;
	s->h = h;
	s->con = con;
	s->seq = h->next_seq;
	struct MHD_Response *r =
	    MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, s, sse_free);
	if (!r) {
		free(s);
		return MHD_NO;
	}
	s->next = h->streams;
	h->streams = s;
	h->nstreams++;
	add_headers(r, 1);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	/* the stream is idle for long stretches by design; pings find dead readers */
	MHD_set_connection_option(con, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
	enum MHD_Result rc = MHD_queue_response(con, 200, r);
	MHD_destroy_response(r);
	return rc;
}

/* ---- calls to essd ---- */

int ui_http_method_allowed(const char *method)
{
	/* what a responder does on the screen; never unlock (privileged, a
	 * technician's), lock, or rejected (a technician's view) */
	static const char *const ok[] = {"status", "list", "show", "ack", "set",
	                                 "note",   "sos",  "sync", NULL};
	for (size_t i = 0; method && ok[i]; i++)
		if (strcmp(method, ok[i]) == 0)
			return 1;
	return 0;
}

static unsigned status_for_code(const char *code)
{
	static const struct {
		const char *code;
		unsigned status;
	} map[] = {{"bad_request", 400}, {"not_found", 404}, {"conflict", 409},
	           {"locked", 423},      {"disk_full", 507}, {NULL, 0}};
	for (size_t i = 0; code && map[i].code; i++)
		if (strcmp(code, map[i].code) == 0)
			return map[i].status;
	return 500;
}

static void on_answer(void *arg, const cJSON *answer)
{
	struct req *r = arg;
	r->answered = 1;
	r->call = 0;
	if (!answer) {
		r->status = 503;
		r->answer = strdup("{\"ok\":false,\"error\":{\"code\":\"unavailable\","
		                   "\"message\":\"essd did not answer\"}}");
	} else {
		cJSON *copy = cJSON_Duplicate(answer, 1);
		cJSON_DeleteItemFromObjectCaseSensitive(copy, "id");
		r->answer = copy ? cJSON_PrintUnformatted(copy) : NULL;
		cJSON_Delete(copy);
		const cJSON *err = cJSON_GetObjectItemCaseSensitive(answer, "error");
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
		r->status = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(answer, "ok"))
		                ? 200
		                : status_for_code(cJSON_IsString(code) ? code->valuestring : NULL);
	}
	if (r->waiting) {
		r->waiting = 0;
		MHD_resume_connection(r->con);
		mhd_loop_kick(r->h->ml);
	}
}

static enum MHD_Result start_call(struct req *r)
{
	cJSON *o = r->body ? cJSON_ParseWithLength(r->body, r->len) : NULL;
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "method");
	cJSON *params = cJSON_DetachItemFromObjectCaseSensitive(o, "params");
	enum MHD_Result rc;
	int n = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, o) n++;
	if (!cJSON_IsObject(o) || !cJSON_IsString(m) || n != 1 ||
	    (params && !cJSON_IsObject(params))) {
		rc = reply_error(r->con, 400, "bad_request",
		                 "want {\"method\": NAME, \"params\": {…}} and nothing else");
	} else if (!ui_http_method_allowed(m->valuestring)) {
		rc = reply_error(r->con, 403, "forbidden", "not a method the UI may call");
	} else {
		int e = ui_ctl_call(r->h->ctl, m->valuestring, params, on_answer, r, &r->call);
		params = NULL; /* taken over */
		if (e == 0) {
			r->waiting = 1;
			MHD_suspend_connection(r->con);
			rc = MHD_YES;
		} else if (e == -ENOTCONN) {
			rc = reply_error(r->con, 503, "unavailable", "essd is not running");
		} else {
			rc = reply_error(r->con, 503, "unavailable", strerror(-e));
		}
	}
	cJSON_Delete(params);
	cJSON_Delete(o);
	return rc;
}

/* ---- requests ---- */

static const char *header(struct MHD_Connection *con, const char *name)
{
	return MHD_lookup_connection_value(con, MHD_HEADER_KIND, name);
}

static enum MHD_Result serve_asset(struct MHD_Connection *con, const char *url)
{
	if (strcmp(url, "/") == 0)
		url = "/index.html";
	for (const struct ui_asset *a = ui_assets; a->path; a++)
		if (strcmp(a->path, url) == 0)
			return reply_buf(con, 200, a->type, a->data, a->len, 0, NULL);
	return reply_error(con, 404, "not_found", "no such file");
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *con, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **req_cls)
{
	(void)version;
	struct ui_http *h = cls;
	struct req *r = *req_cls;
	if (!r) { /* headers are in: decide now, before any body is read */
		if (!(r = calloc(1, sizeof(*r))))
			return MHD_NO;
		r->h = h;
		r->con = con;
		*req_cls = r;
		const char *cl = header(con, MHD_HTTP_HEADER_CONTENT_LENGTH);
		struct ui_reqinfo info = {
		    .method = method,
		    .url = url,
		    .host = header(con, MHD_HTTP_HEADER_HOST),
		    .origin = header(con, "Origin"),
		    .sec_fetch_site = header(con, "Sec-Fetch-Site"),
		    .sec_fetch_mode = header(con, "Sec-Fetch-Mode"),
		    .sec_fetch_dest = header(con, "Sec-Fetch-Dest"),
		    .authorization = header(con, MHD_HTTP_HEADER_AUTHORIZATION),
		    .cookie = header(con, MHD_HTTP_HEADER_COOKIE),
		    .content_length = cl ? strtoll(cl, NULL, 10) : -1,
		};
		int st = h->policy ? ui_policy_check(h->policy, &info, &r->auth, &r->why) : 503;
		if (st) {
			r->refuse = (unsigned)st;
			if (!r->why)
				r->why = "not ready";
			/* no secret, no header value: the path only */
			log_info("ui: refused %s %.64s: %u %s", method, url, r->refuse, r->why);
		}
		return MHD_YES;
	}
	if (*upload_size) {
		if (!r->refuse && !r->too_large) {
			if (r->len + *upload_size > UI_BODY_MAX) {
				r->too_large = 1;
			} else {
				char *b = realloc(r->body, r->len + *upload_size + 1);
				if (!b)
					return MHD_NO;
				memcpy(b + r->len, upload, *upload_size);
				r->body = b;
				r->len += *upload_size;
				b[r->len] = 0;
			}
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->answered) { /* back from essd */
		r->answered = 0;
		if (!r->answer)
			return reply_error(con, 500, "failed", "out of memory");
		return reply_buf(con, r->status, "application/json", r->answer, strlen(r->answer),
		                 1, NULL);
	}
	if (r->refuse)
		return reply_error(con, r->refuse,
		                   r->refuse == 401   ? "unauthorized"
		                   : r->refuse == 421 ? "misdirected"
		                                      : "refused",
		                   r->why);
	if (r->too_large)
		return reply_error(con, 413, "too_large", "request body too large");
	int post = strcmp(method, "POST") == 0;
	if (strcmp(method, "HEAD") == 0 && strncmp(url, "/api/", 5) == 0)
		return reply_error(con, 405, "method", "not for the API");
	if (strcmp(url, "/api/login") == 0) {
		if (!post)
			return reply_error(con, 405, "method", "POST only");
		if (r->auth != UI_AUTH_TOKEN)
			return reply_error(con, 401, "unauthorized", "the token is required");
		char cookie[160];
		if (ui_policy_session_cookie(h->policy, cookie, sizeof(cookie)) < 0)
			return MHD_NO;
		return reply_buf(con, 200, "application/json", "{\"ok\":true}", 11, 0, cookie);
	}
	if (strcmp(url, "/api/call") == 0) {
		if (!post)
			return reply_error(con, 405, "method", "POST only");
		return start_call(r);
	}
	if (strcmp(url, "/api/events") == 0) {
		if (post)
			return reply_error(con, 405, "method", "GET only");
		return start_stream(h, con);
	}
	if (strncmp(url, "/api/", 5) == 0)
		return reply_error(con, 404, "not_found", "no such API");
	if (post)
		return reply_error(con, 405, "method", "GET only");
	return serve_asset(con, url);
}

static void on_completed(void *cls, struct MHD_Connection *con, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
	(void)con;
	(void)toe;
	struct ui_http *h = cls;
	struct req *r = *req_cls;
	if (!r)
		return;
	if (r->call && h->ctl)
		ui_ctl_cancel(h->ctl, r->call);
	free(r->body);
	free(r->answer);
	free(r);
	*req_cls = NULL;
}

/* ---- start and stop ---- */

/* the HTTP side is for the screen of this device only: loopback */
static int parse_listen(const char *listen, struct sockaddr_storage *ss)
{
	int fam = mhd_loop_parse_listen(listen, ss);
	if (fam == 6 && !IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ss)->sin6_addr))
		return -EINVAL;
	if (fam == 4 && (ntohl(((struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) != 127)
		return -EINVAL;
	return fam;
}

int ui_http_listen_is_loopback(const char *listen)
{
	struct sockaddr_storage ss;
	return listen && parse_listen(listen, &ss) > 0;
}

int ui_http_start(struct loop *l, const char *listen, struct ui_http **out, char *err,
                  size_t errlen)
{
	struct sockaddr_storage ss;
	int rc, fam;
	*out = NULL;
	if ((fam = parse_listen(listen, &ss)) < 0) {
		snprintf(err, errlen,
		         "listen address %s: want 127.x.x.x:PORT or [::1]:PORT (loopback only)",
		         listen);
		return -EINVAL;
	}
	struct ui_http *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->l = l;
	h->next_seq = 1;
	h->ping_ms = UI_SSE_PING_MS;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
	                 (fam == 6 ? MHD_USE_IPv6 : 0);
	h->d = MHD_start_daemon(
	    flags, 0, NULL, NULL, on_access, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_loop_log,
	    "ui: http", MHD_OPTION_SOCK_ADDR, &ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)UI_IDLE_TIMEOUT, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)UI_CONN_MAX, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)UI_CONN_MAX,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024), MHD_OPTION_END);
	if (!h->d) {
		snprintf(err, errlen, "cannot listen on %s", listen);
		free(h);
		return -EADDRNOTAVAIL;
	}
	if ((rc = mhd_loop_attach(l, h->d, &h->ml)) < 0) {
		snprintf(err, errlen, "cannot watch the HTTP daemon: %s", strerror(-rc));
		goto fail;
	}
	if (!(h->ping = loop_timer_add(l, UI_SSE_PING_MS, on_ping, h))) {
		rc = -ENOMEM;
		goto fail;
	}
	*out = h;
	return 0;
fail:
	mhd_loop_detach(h->ml);
	MHD_stop_daemon(h->d);
	free(h);
	return rc;
}

unsigned ui_http_port(const struct ui_http *h)
{
	return mhd_loop_port(h->ml);
}

void ui_http_set(struct ui_http *h, const struct ui_policy *p, struct ui_ctl *ctl)
{
	h->policy = p;
	h->ctl = ctl;
}

void ui_http_set_ping_ms(struct ui_http *h, int64_t ms)
{
	h->ping_ms = ms;
	loop_timer_set(h->l, h->ping, ms);
}

void ui_http_stop(struct ui_http *h)
{
	if (!h)
		return;
	h->stopping = 1;
	wake_streams(h);
	loop_timer_cancel(h->l, h->ping);
	mhd_loop_detach(h->ml);
	MHD_stop_daemon(h->d);
	for (size_t i = 0; i < UI_SSE_RING; i++)
		free(h->ring[i].text);
	free(h);
}

/* libcurl multi-socket glue (curl's ephiperfifo.c is the model): curl tells
 * us which fds to watch (CURLMOPT_SOCKETFUNCTION → loop_fd_add/mod/del) and
 * when to call it back (CURLMOPT_TIMERFUNCTION → one loop timer); the loop
 * reports readiness with curl_multi_socket_action. */
#include "sync/http.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "sync/proto.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define SETERR(...)                                                                                \
	do {                                                                                       \
		if (err)                                                                           \
			snprintf(err, errlen, __VA_ARGS__);                                        \
	} while (0)

#define TIMER_IDLE_MS  (24 * 3600 * 1000) /* "no timeout wanted": a harmless far wake-up */
#define HTTP_SOCKS_MAX 8                  /* curl's sockets watched for silence */

struct http_req {
	struct http_req *next, *prev;
	struct http *h;
	CURL *easy;
	struct curl_slist *headers;
	unsigned char *body; /* as sent (maybe gzip'd), owned */
	size_t body_len;
	unsigned char *resp;
	size_t resp_len, resp_cap;
	int too_large;
	http_done_fn cb;
	void *arg;
	int hold_s;
};

/* One of curl's sockets, for the silence watchdog: when a byte last came
 * from the server on it. */
struct hsock {
	int fd; /* -1: free */
	int64_t last_rx_ms;
};

struct http {
	struct loop *loop;
	CURLM *multi;
	struct loop_timer *timer;
	int in_timer;       /* inside our timer callback: curl's wish is returned, not set */
	int64_t timer_want; /* what curl asked for during it */
	struct http_req *reqs;
	int pending;
	char *base_url;
	char *ca_file;
	char *pinned;
	int connect_timeout_s, request_timeout_s, stall_s;
	char device_id[129];
	http_sign_fn sign;
	void *sign_arg;
	int64_t clock_offset_s;
	long max_conns; /* CURLMOPT_MAX_HOST_CONNECTIONS now */
	int tls;        /* https: HTTP/2 wanted */
	CURLSH *share;  /* the TLS session cache shared by every request */
	/* The silence watchdog (https only; see http.h): */
	int dead_s;
	struct loop_timer *wd;
	int in_wd;       /* inside its callback: the wish is returned, not set */
	int64_t wd_want; /* …that wish (-1: none) */
	struct hsock socks[HTTP_SOCKS_MAX];
	uint64_t abandoned;
};

/* ---- URL policy ---- */

static int host_is_loopback(const char *host)
{
	unsigned char a[16];
	size_t n = strlen(host);
	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 127;
	if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
		char v6[64];
		if (n - 2 >= sizeof(v6))
			return 0;
		memcpy(v6, host + 1, n - 2);
		v6[n - 2] = 0;
		static const unsigned char one[16] = {[15] = 1};
		return inet_pton(AF_INET6, v6, a) == 1 && memcmp(a, one, 16) == 0;
	}
	return 0;
}

int http_url_allowed(const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	int rc = -EINVAL;
	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (strcmp(scheme, "https") == 0)
		rc = 0;
	else if (strcmp(scheme, "http") == 0)
		rc = host_is_loopback(host) ? 0 : -EPERM;
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

/* ---- signing ---- */

int http_auth_make(const char *device_id, int64_t timestamp, const char *method,
                   const char *path_query, const void *body, size_t len, http_sign_fn sign,
                   void *sign_arg, struct http_auth *out)
{
	char sts[2048];
	unsigned char sig[64];
	char b64[96];
	if (!device_id || !device_id[0] || strlen(device_id) > 128 || !sign)
		return -EINVAL;
	size_t n = proto_sign_string(method, path_query, timestamp, body, len, sts, sizeof(sts));
	if (n == 0)
		return -E2BIG;
	int rc = sign(sign_arg, sts, n, sig);
	if (rc < 0)
		return rc;
	if (proto_b64_encode(sig, sizeof(sig), b64, sizeof(b64)) == 0)
		return -EIO;
	snprintf(out->device, sizeof(out->device), "ESS-Device: %s", device_id);
	snprintf(out->timestamp, sizeof(out->timestamp), "ESS-Timestamp: %lld",
	         (long long)timestamp);
	snprintf(out->signature, sizeof(out->signature), "ESS-Signature: %s", b64);
	return 0;
}

/* ---- TLS sessions that survive their connection (OpenSSL) ----
 *
 * OpenSSL marks a session not resumable when its connection is freed
 * without having sent a close_notify (a reset, an EOF, libcurl 7.88 closing
 * an HTTP/2 connection), and libcurl caches the very session object the
 * connection uses: after any unclean end its cache holds a dead session,
 * which it still offers, and the server does a full handshake (measured
 * against nginx: no HTTP/2 reconnect ever resumed). So libcurl's cache is
 * given copies: each new session is duplicated before libcurl stores it,
 * and each connection starts from a duplicate of the cached one; the
 * copies the connections use may be spoiled, the cached ones are not.
 * libcurl links OpenSSL already (Debian's libcurl4); its functions are
 * looked up at run time so that the agent needs no OpenSSL headers or
 * libraries of its own; with another TLS backend, or any symbol missing,
 * nothing changes (sessions then resume only after clean closes). */

#define OSSL_CB_HANDSHAKE_START 0x10 /* SSL_CB_HANDSHAKE_START, a stable ABI value */

typedef int (*ossl_new_cb)(void *ssl, void *sess);
typedef void (*ossl_info_cb)(const void *ssl, int where, int ret);

static struct {
	int state; /* 0 not looked up, 1 usable, -1 not */
	ossl_new_cb (*get_new_cb)(void *ctx);
	void (*set_new_cb)(void *ctx, ossl_new_cb cb);
	ossl_info_cb (*get_info_cb)(const void *ctx);
	void (*set_info_cb)(void *ctx, ossl_info_cb cb);
	void *(*sess_dup)(const void *sess);
	void (*sess_free)(void *sess);
	void *(*get_session)(const void *ssl);
	int (*set_session)(void *ssl, void *sess);
	int (*in_before)(const void *ssl);
	ossl_new_cb curl_new_cb;   /* libcurl's (one function for every context) */
	ossl_info_cb prev_info_cb; /* one set before ours, if any */
} ossl;

static int ossl_sym(void *fnp, const char *name)
{
	void *p = dlsym(RTLD_DEFAULT, name);
	memcpy(fnp, &p, sizeof(p)); /* object to function pointer, as POSIX allows */
	return p != NULL;
}

static int ossl_usable(void)
{
	if (ossl.state)
		return ossl.state > 0;
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	int ok = v && v->ssl_version && strncmp(v->ssl_version, "OpenSSL/", 8) == 0 &&
	         ossl_sym(&ossl.get_new_cb, "SSL_CTX_sess_get_new_cb") &&
	         ossl_sym(&ossl.set_new_cb, "SSL_CTX_sess_set_new_cb") &&
	         ossl_sym(&ossl.get_info_cb, "SSL_CTX_get_info_callback") &&
	         ossl_sym(&ossl.set_info_cb, "SSL_CTX_set_info_callback") &&
	         ossl_sym(&ossl.sess_dup, "SSL_SESSION_dup") &&
	         ossl_sym(&ossl.sess_free, "SSL_SESSION_free") &&
	         ossl_sym(&ossl.get_session, "SSL_get_session") &&
	         ossl_sym(&ossl.set_session, "SSL_set_session") &&
	         ossl_sym(&ossl.in_before, "SSL_in_before");
	ossl.state = ok ? 1 : -1;
	if (!ok)
		log_debug("http: TLS sessions resume only after clean closes (not OpenSSL)");
	return ok;
}

/* A new session: libcurl stores a copy, the connection keeps the original. */
static int ossl_on_new_session(void *ssl, void *sess)
{
	void *copy = ossl.sess_dup(sess);
	if (!copy)
		return ossl.curl_new_cb(ssl, sess);
	if (!ossl.curl_new_cb(ssl, copy))
		ossl.sess_free(copy);
	return 0; /* OpenSSL keeps no extra reference to the original */
}

/* A connection about to send its ClientHello with libcurl's cached session:
 * it gets a copy of it instead. */
static void ossl_on_info(const void *ssl, int where, int ret)
{
	if (ossl.prev_info_cb)
		ossl.prev_info_cb(ssl, where, ret);
	if (!(where & OSSL_CB_HANDSHAKE_START) || !ossl.in_before(ssl))
		return;
	void *cur = ossl.get_session(ssl);
	void *copy = cur ? ossl.sess_dup(cur) : NULL;
	if (copy) {
		ossl.set_session((void *)(uintptr_t)ssl, copy);
		ossl.sess_free(copy);
	}
}

static CURLcode on_ssl_ctx(CURL *e, void *ctx, void *arg)
{
	(void)e;
	(void)arg;
	ossl_new_cb cb = ossl.get_new_cb(ctx);
	if (cb && cb != ossl_on_new_session) {
		ossl.curl_new_cb = cb;
		ossl.set_new_cb(ctx, ossl_on_new_session);
	}
	ossl_info_cb info = ossl.get_info_cb(ctx);
	if (info != ossl_on_info) {
		ossl.prev_info_cb = info;
		ossl.set_info_cb(ctx, ossl_on_info);
	}
	return CURLE_OK;
}

/* ---- the loop glue ---- */

static void check_done(struct http *h);

/* ---- the silence watchdog ----
 *
 * On a multiplexed (HTTP/2) connection a request that hits its timeout
 * only resets its own stream: libcurl never closes a multiplexed
 * connection for a stream's error (Curl_conncontrol: "stream signal on
 * multiplex conn never affects close state"; measured here too). That keeps
 * the connection through a coverage hole, which is what we want; but a
 * connection that is truly dead (the NAT forgot it, no RST ever comes)
 * would then carry every new request into the void until TCP gives up,
 * minutes later, or never (a middlebox that still ACKs). libcurl 7.88 sends
 * no HTTP/2 PING on a multi handle's connections (curl_easy_upkeep only
 * acts on curl_easy_perform's own pool), so the agent judges by what it
 * sees: no byte from the server on a connection while requests wait on it,
 * for longer than the longest hold a waiting request allows (a long poll's
 * wait) plus dead_s, and the connection is abandoned (shut down: libcurl
 * fails or retries its streams on a new connection). */

static struct hsock *sock_find(struct http *h, int fd)
{
	for (int i = 0; i < HTTP_SOCKS_MAX; i++)
		if (h->socks[i].fd == fd)
			return &h->socks[i];
	return NULL;
}

static void sock_track(struct http *h, int fd)
{
	struct hsock *s = sock_find(h, fd);
	if (!s)
		s = sock_find(h, -1);
	if (s) { /* more sockets than that: the rest go unwatched (HTTP/1.1 only) */
		s->fd = fd;
		s->last_rx_ms = loop_now_ms();
	}
}

static void sock_untrack(struct http *h, int fd)
{
	struct hsock *s = sock_find(h, fd);
	if (s)
		s->fd = -1;
}

static int max_hold_s(const struct http *h)
{
	int m = 0;
	for (const struct http_req *r = h->reqs; r; r = r->next)
		if (r->cb && r->hold_s > m)
			m = r->hold_s;
	return m;
}

/* Arms the watchdog for the first socket that would be overdue, or
 * disarms it when nothing waits. One wake-up per silence bound at most. */
static void wd_arm(struct http *h)
{
	int64_t want = -1;
	if (h->tls && h->pending > 0) {
		int64_t bound = ((int64_t)h->dead_s + max_hold_s(h)) * 1000, now = loop_now_ms();
		for (int i = 0; i < HTTP_SOCKS_MAX; i++) {
			if (h->socks[i].fd < 0)
				continue;
			int64_t left = h->socks[i].last_rx_ms + bound - now;
			left = left < 0 ? 0 : left;
			if (want < 0 || left < want)
				want = left;
		}
	}
	if (h->in_wd)
		h->wd_want = want;
	else
		loop_timer_set(h->loop, h->wd, want);
}

static int64_t on_wd(struct loop *l, void *arg)
{
	(void)l;
	struct http *h = arg;
	h->in_wd = 1;
	h->wd_want = -1;
	if (h->tls && h->pending > 0) {
		int hold = max_hold_s(h);
		int64_t bound = ((int64_t)h->dead_s + hold) * 1000, now = loop_now_ms();
		for (int i = 0; i < HTTP_SOCKS_MAX; i++) {
			struct hsock *s = &h->socks[i];
			if (s->fd < 0 || now - s->last_rx_ms < bound)
				continue;
			int fd = s->fd, running;
			log_warnx("http: nothing from the server for %lld s with requests waiting "
			          "(longest hold %d s): the connection is abandoned",
			          (long long)((now - s->last_rx_ms) / 1000), hold);
			h->abandoned++;
			s->last_rx_ms = now; /* once: libcurl closes it next */
			/* shutdown, not close: the fd stays curl's; it reads EOF
			 * now and fails (or retries elsewhere) every stream on it. */
			shutdown(fd, SHUT_RDWR);
			curl_multi_socket_action(h->multi, fd, CURL_CSELECT_IN | CURL_CSELECT_ERR,
			                         &running);
		}
		check_done(h);
	}
	h->in_wd = 0;
	wd_arm(h);
	return h->wd_want >= 0 ? h->wd_want : TIMER_IDLE_MS;
}

static void on_fd(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	struct http *h = arg;
	int mask = (events & LOOP_READ ? CURL_CSELECT_IN : 0) |
	           (events & LOOP_WRITE ? CURL_CSELECT_OUT : 0) |
	           (events & LOOP_ERROR ? CURL_CSELECT_ERR : 0);
	int running;
	if (events & LOOP_READ) {
		struct hsock *s = sock_find(h, fd);
		if (s)
			s->last_rx_ms = loop_now_ms();
	}
	curl_multi_socket_action(h->multi, fd, mask, &running);
	check_done(h);
	wd_arm(h);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)e;
	struct http *h = userp;
	if (what == CURL_POLL_REMOVE) {
		loop_fd_del(h->loop, fd);
		curl_multi_assign(h->multi, fd, NULL);
		sock_untrack(h, fd);
		return 0;
	}
	unsigned ev =
	    (what & CURL_POLL_IN ? LOOP_READ : 0) | (what & CURL_POLL_OUT ? LOOP_WRITE : 0);
	int rc;
	if (socketp) {
		rc = loop_fd_mod(h->loop, fd, ev);
	} else {
		rc = loop_fd_add(h->loop, fd, ev, on_fd, h);
		if (rc == -EEXIST)
			rc = loop_fd_mod(h->loop, fd, ev);
		if (rc == 0) {
			curl_multi_assign(h->multi, fd, h);
			sock_track(h, fd);
		}
	}
	if (rc < 0)
		log_warnx("http: watching fd %d: %s", fd, strerror(-rc));
	return rc < 0 ? -1 : 0;
}

/* curl's timeouts of a second or more are deadlines (connect, request,
 * idle connection), never protocol steps: they may run a little late, in a
 * wakeup the daemon has anyway. Measured: the connect-timeout timer curl
 * arms with each long poll cost a wakeup of its own every 25 s. Shorter
 * ones stay exact. */
static int64_t curl_slack(int64_t timeout_ms)
{
	if (timeout_ms < 1000)
		return 0;
	return timeout_ms / 4 < LOOP_PERIODIC_SLACK_MS ? timeout_ms / 4 : LOOP_PERIODIC_SLACK_MS;
}

static int64_t on_timer(struct loop *l, void *arg)
{
	(void)l;
	struct http *h = arg;
	int running;
	/* While inside, curl's wishes (also those made by requests started from
	 * completion callbacks) are only recorded; the last one is returned and
	 * the loop re-arms this timer with it (never < 0: that would free it). */
	h->in_timer = 1;
	h->timer_want = -1;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(h);
	h->in_timer = 0;
	wd_arm(h);
	int64_t next = h->timer_want >= 0 ? h->timer_want : TIMER_IDLE_MS;
	loop_timer_set_slack(h->timer, curl_slack(next));
	return next;
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
	(void)m;
	struct http *h = userp;
	if (h->in_timer) {
		h->timer_want = timeout_ms;
		return 0;
	}
	loop_timer_set(h->loop, h->timer, timeout_ms < 0 ? -1 : (int64_t)timeout_ms);
	loop_timer_set_slack(h->timer, curl_slack(timeout_ms));
	return 0;
}

/* ---- requests ---- */

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_req *r = userp;
	size_t n = size * nmemb;
	if (r->resp_len + n > HTTP_RESPONSE_MAX) {
		r->too_large = 1;
		return 0;
	}
	if (r->resp_len + n + 1 > r->resp_cap) {
		size_t cap = r->resp_cap ? r->resp_cap : 4096;
		while (cap < r->resp_len + n + 1)
			cap *= 2;
		unsigned char *p = realloc(r->resp, cap);
		if (!p)
			return 0;
		r->resp = p;
		r->resp_cap = cap;
	}
	memcpy(r->resp + r->resp_len, data, n);
	r->resp_len += n;
	r->resp[r->resp_len] = 0;
	return n;
}

static void req_free(struct http *h, struct http_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		h->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	h->pending--;
	if (r->easy) {
		curl_multi_remove_handle(h->multi, r->easy);
		curl_easy_cleanup(r->easy);
	}
	curl_slist_free_all(r->headers);
	free(r->body);
	free(r->resp);
	free(r);
}

static int map_curl_error(CURLcode c, int too_large)
{
	if (too_large)
		return -EFBIG;
	switch (c) {
	case CURLE_OK:
		return 0;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		return -EPROTO;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static void check_done(struct http *h)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(h->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct http_req *r = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		if (!r)
			continue;
		struct http_response resp = {.retry_after_s = -1};
		CURLcode c = m->data.result;
		long hdr = 0, req = 0;
		curl_off_t up = 0, down = 0, ra = -1;
		resp.error = map_curl_error(c, r->too_large);
		if (c == CURLE_OK)
			curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &resp.status);
		curl_easy_getinfo(r->easy, CURLINFO_HEADER_SIZE, &hdr);
		curl_easy_getinfo(r->easy, CURLINFO_REQUEST_SIZE, &req);
		curl_easy_getinfo(r->easy, CURLINFO_SIZE_UPLOAD_T, &up);
		curl_easy_getinfo(r->easy, CURLINFO_SIZE_DOWNLOAD_T, &down);
		if (curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
			resp.retry_after_s = (int64_t)ra;
		/* libcurl 7.88's REQUEST_SIZE already holds the body it sent with
		 * the headers (older ones did not): adding SIZE_UPLOAD counted
		 * every body twice. */
		resp.bytes_up =
		    (curl_off_t)req >= up ? (uint64_t)req : (uint64_t)req + (uint64_t)up;
		resp.bytes_down = (uint64_t)hdr + (uint64_t)down;
		long conns = 0, ver = 0;
		curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &conns);
		curl_easy_getinfo(r->easy, CURLINFO_HTTP_VERSION, &ver);
		resp.new_conns = (int)conns;
		/* Once the server has answered over HTTP/2, one connection is
		 * enough and more are waste: when a connection dies with several
		 * streams on it, libcurl retries each on a fresh connection of
		 * its own (three TLS handshakes after every outage, measured);
		 * with the bound at 1 the retries queue and join the first one as
		 * soon as it is known to multiplex. An HTTP/1.x answer lifts the
		 * bound again (the long poll must not hold the only connection). */
		long want = ver == CURL_HTTP_VERSION_2_0 ? 1
		            : ver == CURL_HTTP_VERSION_1_1 || ver == CURL_HTTP_VERSION_1_0
		                ? (long)HTTP_MAX_HOST_CONNS
		                : h->max_conns;
		if (want != h->max_conns) {
			h->max_conns = want;
			curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, want);
		}
		resp.http_version = ver == CURL_HTTP_VERSION_2_0   ? 20
		                    : ver == CURL_HTTP_VERSION_1_1 ? 11
		                    : ver == CURL_HTTP_VERSION_1_0 ? 10
		                                                   : 0;
		resp.body = r->resp ? r->resp : (const unsigned char *)"";
		resp.body_len = r->resp_len;
		/* The request leaves the multi handle before its callback, which
		 * may start new requests (on this connection, kept alive). */
		curl_multi_remove_handle(h->multi, r->easy);
		http_done_fn cb = r->cb;
		void *arg = r->arg;
		r->cb = NULL;
		cb(arg, &resp);
		req_free(h, r);
	}
	if (!h->in_wd && !h->in_timer)
		wd_arm(h);
}

int http_open(struct loop *l, const struct http_params *p, struct http **out, char *err,
              size_t errlen)
{
	int rc = http_url_allowed(p->base_url);
	if (rc == -EPERM) {
		SETERR("plain http is allowed only to a loopback host");
		return rc;
	}
	if (rc < 0) {
		SETERR("server url is not an http(s) URL");
		return rc;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		SETERR("libcurl initialisation failed");
		return -EIO;
	}
	struct http *h = calloc(1, sizeof(*h));
	if (!h) {
		curl_global_cleanup();
		return -ENOMEM;
	}
	h->loop = l;
	h->connect_timeout_s = p->connect_timeout_s > 0 ? p->connect_timeout_s : 10;
	h->request_timeout_s = p->request_timeout_s > 0 ? p->request_timeout_s : 60;
	h->stall_s = p->stall_s > 0 ? p->stall_s : 20;
	h->dead_s = p->dead_s > 0 ? p->dead_s : HTTP_DEAD_S;
	for (int i = 0; i < HTTP_SOCKS_MAX; i++)
		h->socks[i].fd = -1;
	h->base_url = strdup(p->base_url);
	h->tls = strncasecmp(p->base_url, "https:", 6) == 0;
	h->ca_file = p->ca_file && p->ca_file[0] ? strdup(p->ca_file) : NULL;
	h->pinned = p->pinned_pubkey && p->pinned_pubkey[0] ? strdup(p->pinned_pubkey) : NULL;
	h->multi = curl_multi_init();
	h->timer = loop_timer_add(l, -1, on_timer, h);
	h->wd = loop_timer_add(l, -1, on_wd, h);
	h->share = curl_share_init();
	if (!h->base_url || (p->ca_file && p->ca_file[0] && !h->ca_file) ||
	    (p->pinned_pubkey && p->pinned_pubkey[0] && !h->pinned) || !h->multi || !h->timer ||
	    !h->wd || !h->share) {
		http_close(h);
		return -ENOMEM;
	}
	loop_timer_set(l, h->timer, -1);
	loop_timer_set(l, h->wd, -1);
	/* Every request is its own easy handle, and libcurl keeps TLS sessions
	 * per easy handle unless they share a cache: without this a reconnect
	 * after an outage was a full handshake, never a resumption. One thread:
	 * no lock callbacks needed. */
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	/* HTTP/2 over TLS: the long poll, events, positions and heartbeat share
	 * one connection (one handshake, one congestion window on a slow
	 * link). Plain http (loopback only) stays HTTP/1.1, a connection per
	 * concurrent request. */
	curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)HTTP_MAX_HOST_CONNS);
	h->max_conns = HTTP_MAX_HOST_CONNS;
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)HTTP_MAX_HOST_CONNS);
	*out = h;
	return 0;
}

void http_close(struct http *h)
{
	if (!h)
		return;
	while (h->reqs)
		req_free(h, h->reqs);
	if (h->multi)
		curl_multi_cleanup(h->multi); /* closes cached connections (REMOVE each fd) */
	if (h->timer)
		loop_timer_cancel(h->loop, h->timer);
	if (h->wd)
		loop_timer_cancel(h->loop, h->wd);
	if (h->share)
		curl_share_cleanup(h->share); /* after every easy handle that used it */
	free(h->base_url);
	free(h->ca_file);
	free(h->pinned);
	free(h);
	curl_global_cleanup();
}

int http_set_identity(struct http *h, const char *device_id, http_sign_fn sign, void *sign_arg)
{
	if (!device_id || strlen(device_id) >= sizeof(h->device_id))
		return -EINVAL;
	strcpy(h->device_id, device_id);
	h->sign = sign;
	h->sign_arg = sign_arg;
	return 0;
}

void http_set_clock_offset(struct http *h, int64_t offset_s)
{
	h->clock_offset_s = offset_s;
}

int64_t http_clock_offset(const struct http *h)
{
	return h->clock_offset_s;
}

int64_t http_timestamp(const struct http *h)
{
	return (int64_t)time(NULL) + h->clock_offset_s;
}

int http_pending(const struct http *h)
{
	return h->pending;
}

uint64_t http_abandoned(const struct http *h)
{
	return h->abandoned;
}

/* Header lists: "Accept:" and "Expect:" remove curl's defaults (bytes on
 * every request of a metered link). */
static int build_headers(struct http *h, struct http_req *r, const char *method,
                         const char *path_query, int gz, unsigned flags)
{
	struct curl_slist *l = NULL, *n;
#define ADD(s)                                                                                     \
	do {                                                                                       \
		if (!(n = curl_slist_append(l, (s)))) {                                            \
			curl_slist_free_all(l);                                                    \
			return -ENOMEM;                                                            \
		}                                                                                  \
		l = n;                                                                             \
	} while (0)
	ADD("Accept:");
	ADD("Expect:");
	if (r->body) {
		ADD("Content-Type: application/json");
		if (gz)
			ADD("Content-Encoding: gzip");
	}
	if (flags & HTTP_SIGNED) {
		struct http_auth a;
		int rc = http_auth_make(h->device_id, http_timestamp(h), method, path_query,
		                        r->body, r->body_len, h->sign, h->sign_arg, &a);
		if (rc < 0) {
			curl_slist_free_all(l);
			return rc;
		}
		ADD(a.device);
		ADD(a.timestamp);
		ADD(a.signature);
	}
#undef ADD
	r->headers = l;
	return 0;
}

int http_request(struct http *h, const char *method, const char *path_query, const void *body,
                 size_t len, unsigned flags, int hold_s, http_done_fn cb, void *arg,
                 struct http_req **out)
{
	if (!cb || !path_query || path_query[0] != '/' || strlen(path_query) > 1024)
		return -EINVAL;
	if ((flags & HTTP_SIGNED) && (!h->device_id[0] || !h->sign))
		return -ENOKEY;
	struct http_req *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->h = h;
	r->cb = cb;
	r->arg = arg;
	r->hold_s = hold_s > 0 ? hold_s : 0;
	int gz = 0, rc;
	if (body) {
		if ((flags & (HTTP_GZIP | HTTP_GZIP_BEST)) && len >= HTTP_GZIP_MIN) {
			rc = proto_gzip_level(body, len, flags & HTTP_GZIP_BEST ? 9 : 1, &r->body,
			                      &r->body_len);
			if (rc < 0)
				goto fail;
			gz = 1;
		} else {
			r->body = malloc(len ? len : 1);
			if (!r->body) {
				rc = -ENOMEM;
				goto fail;
			}
			memcpy(r->body, body, len);
			r->body_len = len;
		}
	}
	if ((rc = build_headers(h, r, method, path_query, gz, flags)) < 0)
		goto fail;
	char url[4096];
	if ((size_t)snprintf(url, sizeof(url), "%s%s", h->base_url, path_query) >= sizeof(url)) {
		rc = -E2BIG;
		goto fail;
	}
	CURL *e = r->easy = curl_easy_init();
	if (!e) {
		rc = -ENOMEM;
		goto fail;
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (h->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
	if (h->pinned)
		curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, h->pinned);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)h->connect_timeout_s);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)(h->request_timeout_s + hold_s));
	/* libcurl checks the speed with a 1 s timer whenever a transfer is
	 * slower than the limit, i.e. all through a long poll, which is silent
	 * by design and in flight nearly all the time: one wakeup a second, the
	 * daemon's idle budget five times over (bench_essd). A held request is
	 * bounded by CURLOPT_TIMEOUT instead; the others keep the stall check.
	 * Over https a silent link is the watchdog's to judge (dead_s), so a
	 * request waits at least that long: one stalled through a short
	 * coverage hole is answered when the link returns, not resent. */
	if (!hold_s) {
		int stall = h->tls && h->dead_s > h->stall_s ? h->dead_s : h->stall_s;
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)stall);
	}
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_SHARE, h->share);
	if (h->tls && ossl_usable())
		curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	if (h->tls) {
		curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
		/* Requests started together (at start-up, after an outage) wait
		 * for the first connection's ALPN to say whether it multiplexes,
		 * instead of each opening its own (and its own TLS handshake). */
		curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	} else {
		/* Plain http is HTTP/1.1: with PIPEWAIT libcurl would hold every
		 * other request until the first one's answer headers arrived —
		 * up to a whole long poll. */
		curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	}
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? (char *)r->body : "");
	} else {
		rc = -EINVAL;
		goto fail;
	}
	r->next = h->reqs;
	if (h->reqs)
		h->reqs->prev = r;
	h->reqs = r;
	h->pending++;
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
		req_free(h, r);
		return -EIO;
	}
	if (out)
		*out = r;
	wd_arm(h);
	return 0;
fail:
	if (r->easy)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	free(r->body);
	free(r);
	return rc;
}

void http_cancel(struct http *h, struct http_req *r)
{
	if (r)
		req_free(h, r);
}

/* ess-ui's HTTP side and control-socket client together, in one process on
 * one loop: a fake essd (ctl_open with a small method table), ui_ctl
 * subscribed to it, ui_http serving on 127.0.0.1:0, and raw non-blocking
 * sockets as the browser while the test turns the loop. */
#include "agent/ctl.h"
#include "agent/loop.h"
#include "agent/ui/ui_ctl.h"
#include "agent/ui/ui_http.h"
#include "agent/ui/ui_policy.h"
#include "tests/lib/testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#define TOKEN "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

struct env {
	char *dir;
	char sock[512];
	struct loop *l;
	struct ctl *essd; /* the fake essd */
	struct ui_http *http;
	struct ui_policy *pol;
	struct ui_ctl *ctl;
	unsigned port;
	int calls;
};

static int m_status(void *arg, struct ctl_client *c, const struct ctl_peer *peer,
                    const cJSON *params, cJSON **result, const char **code, char *msg,
                    size_t msglen)
{
	(void)c, (void)peer, (void)params, (void)code, (void)msg, (void)msglen;
	struct env *e = arg;
	e->calls++;
	*result = cJSON_CreateObject();
	cJSON_AddTrueToObject(*result, "fake");
	return 0;
}

static int m_set(void *arg, struct ctl_client *c, const struct ctl_peer *peer, const cJSON *params,
                 cJSON **result, const char **code, char *msg, size_t msglen)
{
	(void)arg, (void)c, (void)peer, (void)params, (void)result;
	*code = "conflict";
	snprintf(msg, msglen, "on_scene cannot follow resolved");
	return -EPERM;
}

/* An answer past CTL_LINE_MAX (which bounds requests, not answers). */
static int m_list(void *arg, struct ctl_client *c, const struct ctl_peer *peer, const cJSON *params,
                  cJSON **result, const char **code, char *msg, size_t msglen)
{
	(void)arg, (void)c, (void)peer, (void)params, (void)code, (void)msg, (void)msglen;
	size_t n = 3 * CTL_LINE_MAX;
	char *big = malloc(n + 1);
	memset(big, 'y', n);
	big[n] = 0;
	*result = cJSON_CreateObject();
	cJSON_AddStringToObject(*result, "big", big);
	free(big);
	return 0;
}

static const struct ctl_method methods[] = {
    {"status", m_status, 0}, {"set", m_set, 0}, {"list", m_list, 0}};

static void on_event(void *arg, const char *name, const cJSON *data)
{
	struct env *e = arg;
	ui_http_publish(e->http, name, data);
}

static void on_state(void *arg, int connected)
{
	struct env *e = arg;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddBoolToObject(d, "connected", connected);
	ui_http_publish(e->http, "essd", d);
	cJSON_Delete(d);
}

static void turn_until(struct env *e, int (*cond)(struct env *), int ms)
{
	int64_t end = tu_now_ms() + ms;
	while (!cond(e) && tu_now_ms() < end)
		loop_run_once(e->l, 20);
}

static int connected(struct env *e)
{
	return ui_ctl_connected(e->ctl);
}
static int disconnected(struct env *e)
{
	return !ui_ctl_connected(e->ctl);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	char err[256];
	e->dir = tu_tmpdir("uihttp");
	snprintf(e->sock, sizeof(e->sock), "%s/essd.sock", e->dir);
	assert_int_equal(loop_open(&e->l), 0);
	assert_int_equal(
	    ctl_open(e->l, e->sock, (gid_t)-1, methods, 3, e, &e->essd, err, sizeof(err)), 0);
	assert_int_equal(ui_http_start(e->l, "127.0.0.1:0", &e->http, err, sizeof(err)), 0);
	e->port = ui_http_port(e->http);
	assert_true(e->port > 0);
	assert_int_equal(ui_policy_open_token(TOKEN, e->port, &e->pol), 0);
	assert_int_equal(ui_ctl_open(e->l, e->sock, on_event, on_state, e, &e->ctl), 0);
	ui_http_set(e->http, e->pol, e->ctl);
	turn_until(e, connected, 3000);
	assert_true(ui_ctl_connected(e->ctl));
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	ui_ctl_close(e->ctl);
	ui_http_stop(e->http);
	ui_policy_close(e->pol);
	ctl_close(e->essd);
	loop_close(e->l);
	tu_rmrf(e->dir);
	free(e);
	return 0;
}

static int dial(struct env *e)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e->port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(fd >= 0);
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	assert_true(rc == 0 || errno == EINPROGRESS);
	return fd;
}

/* Sends req (the loop turning meanwhile) and reads into out until needle
 * appears or the peer closes, at most ms. Returns bytes read. */
static size_t talk(struct env *e, int fd, const char *req, char *out, size_t cap,
                   const char *needle, int ms)
{
	size_t sent = 0, len = 0, rlen = req ? strlen(req) : 0;
	int64_t end = tu_now_ms() + ms;
	out[0] = 0;
	while (tu_now_ms() < end) {
		loop_run_once(e->l, 10);
		if (sent < rlen) {
			ssize_t n = send(fd, req + sent, rlen - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0)
				sent += (size_t)n;
		}
		ssize_t n = recv(fd, out + len, cap - 1 - len, MSG_DONTWAIT);
		if (n > 0) {
			len += (size_t)n;
			out[len] = 0;
		}
		if (n == 0 || (needle && strstr(out, needle)) || len == cap - 1)
			break;
	}
	return len;
}

static void post(struct env *e, const char *body, const char *extra, char *out, size_t cap)
{
	char req[30000];
	snprintf(req, sizeof(req),
	         "POST /api/call HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nOrigin: http://127.0.0.1:%u\r\n"
	         "Authorization: Bearer %s\r\nContent-Type: application/json\r\n%s"
	         "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	         e->port, e->port, TOKEN, extra ? extra : "", strlen(body), body);
	int fd = dial(e);
	talk(e, fd, req, out, cap, NULL, 5000);
	close(fd);
}

static void test_calls(void **state)
{
	struct env *e = *state;
	char out[8192];
	post(e, "{\"method\":\"status\"}", NULL, out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 200"));
	assert_non_null(strstr(out, "\"fake\":true"));
	assert_non_null(strstr(out, "Content-Security-Policy: default-src 'self'"));
	assert_non_null(strstr(out, "Cache-Control: no-store"));
	assert_int_equal(e->calls, 1);
	/* essd's refusal keeps its code; the HTTP status says the kind */
	post(e, "{\"method\":\"set\",\"params\":{\"id\":\"X\",\"status\":\"on_scene\"}}", NULL, out,
	     sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 409"));
	assert_non_null(strstr(out, "\"code\":\"conflict\""));
	/* never passed on: not whitelisted, malformed, extra keys */
	post(e, "{\"method\":\"unlock\"}", NULL, out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 403"));
	post(e, "{\"method\":", NULL, out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 400"));
	post(e, "{\"method\":\"status\",\"x\":1}", NULL, out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 400"));
	post(e, "{\"method\":\"status\",\"params\":[]}", NULL, out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 400"));
	assert_int_equal(e->calls, 1);
	char *big = malloc(4 * CTL_LINE_MAX);
	post(e, "{\"method\":\"list\"}", NULL, big, 4 * CTL_LINE_MAX);
	assert_non_null(strstr(big, "HTTP/1.1 200"));
	char *y = strstr(big, "\"big\":\"");
	assert_non_null(y);
	assert_int_equal(strspn(y + 7, "y"), 3 * CTL_LINE_MAX);
	free(big);
	assert_true(ui_ctl_connected(e->ctl));
	/* the token exchange sets the session cookie, and it works alone */
	char req[1024];
	snprintf(req, sizeof(req),
	         "POST /api/login HTTP/1.1\r\nHost: localhost:%u\r\nOrigin: http://localhost:%u\r\n"
	         "Authorization: Bearer %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
	         e->port, e->port, TOKEN);
	int fd = dial(e);
	talk(e, fd, req, out, sizeof(out), NULL, 5000);
	close(fd);
	char *ck = strstr(out, "Set-Cookie: ess_ui=");
	assert_non_null(ck);
	char cookie[128];
	snprintf(cookie, sizeof(cookie), "%.*s", (int)strcspn(ck + 12, ";"), ck + 12);
	snprintf(
	    req, sizeof(req),
	    "POST /api/call HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nOrigin: http://127.0.0.1:%u\r\n"
	    "Cookie: %s\r\nContent-Length: 19\r\nConnection: close\r\n\r\n{\"method\":\"status\"}",
	    e->port, e->port, cookie);
	fd = dial(e);
	talk(e, fd, req, out, sizeof(out), NULL, 5000);
	close(fd);
	assert_non_null(strstr(out, "HTTP/1.1 200"));
	assert_int_equal(e->calls, 2);
}

static void test_bounds(void **state)
{
	struct env *e = *state;
	char out[8192];
	/* a chunked body (no Content-Length) past the bound */
	char *big = malloc(UI_BODY_MAX + 100), *req = malloc(UI_BODY_MAX + 1000);
	memset(big, 'x', UI_BODY_MAX + 99);
	big[UI_BODY_MAX + 99] = 0;
	snprintf(
	    req, UI_BODY_MAX + 1000,
	    "POST /api/call HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nOrigin: http://127.0.0.1:%u\r\n"
	    "Authorization: Bearer %s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
	    "%x\r\n%s\r\n0\r\n\r\n",
	    e->port, e->port, TOKEN, UI_BODY_MAX + 99, big);
	int fd = dial(e);
	talk(e, fd, req, out, sizeof(out), NULL, 5000);
	close(fd);
	assert_non_null(strstr(out, "HTTP/1.1 413"));
	free(big);
	free(req);
	/* unknown files and APIs */
	char r2[512];
	snprintf(
	    r2, sizeof(r2),
	    "GET /../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n\r\n",
	    e->port);
	fd = dial(e);
	talk(e, fd, r2, out, sizeof(out), NULL, 5000);
	close(fd);
	assert_non_null(strstr(out, "HTTP/1.1 404"));
	snprintf(r2, sizeof(r2),
	         "GET / HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n\r\n", e->port);
	fd = dial(e);
	talk(e, fd, r2, out, sizeof(out), NULL, 5000);
	close(fd);
	assert_non_null(strstr(out, "HTTP/1.1 200"));
	assert_non_null(strstr(out, "<script src=\"/app.js\""));
	assert_null(strstr(out, "<script>")); /* no inline script */
	snprintf(r2, sizeof(r2),
	         "HEAD /api/events HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nAuthorization: Bearer %s\r\n"
	         "Connection: close\r\n\r\n",
	         e->port, TOKEN);
	fd = dial(e);
	talk(e, fd, r2, out, sizeof(out), NULL, 5000);
	close(fd);
	assert_non_null(strstr(out, "HTTP/1.1 405"));
	assert_int_equal(e->calls, 0);
}

static void test_stream(void **state)
{
	struct env *e = *state;
	char out[16384], req[512];
	snprintf(
	    req, sizeof(req),
	    "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nAuthorization: Bearer %s\r\n\r\n",
	    e->port, TOKEN);
	int fd = dial(e);
	talk(e, fd, req, out, sizeof(out), "retry: 2000", 3000);
	assert_non_null(strstr(out, "Content-Type: text/event-stream"));
	/* essd publishes: the stream carries it */
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "id", "INC-1");
	cJSON_AddStringToObject(d, "why", "new");
	assert_int_equal(ctl_publish(e->essd, "incident", d), 1);
	cJSON_Delete(d);
	talk(e, fd, NULL, out, sizeof(out), "INC-1", 3000);
	assert_non_null(
	    strstr(out, "event: incident\ndata: {\"id\":\"INC-1\",\"why\":\"new\"}\n\n"));
	/* an event name that would frame an event of its own is dropped */
	d = cJSON_CreateObject();
	assert_int_equal(ctl_publish(e->essd, "x\ndata: {}\n\nevent: forged", d), 1);
	assert_int_equal(ctl_publish(e->essd, "sync", d), 1);
	cJSON_Delete(d);
	talk(e, fd, NULL, out, sizeof(out), "event: sync", 3000);
	assert_non_null(strstr(out, "event: sync\ndata: {}\n\n"));
	assert_null(strstr(out, "forged"));
	/* an event past UI_SSE_EVENT_MAX is not kept in the ring: a resync */
	char *big = malloc(UI_SSE_EVENT_MAX + 1);
	memset(big, 'z', UI_SSE_EVENT_MAX);
	big[UI_SSE_EVENT_MAX] = 0;
	d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "big", big);
	free(big);
	assert_int_equal(ctl_publish(e->essd, "incident", d), 1);
	cJSON_Delete(d);
	talk(e, fd, NULL, out, sizeof(out), "event: resync", 3000);
	assert_non_null(strstr(out, "event: resync\ndata: {}\n\n"));
	assert_null(strstr(out, "zzzz"));
	/* the keepalive (this once crashed ess-ui) */
	ui_http_set_ping_ms(e->http, 50);
	talk(e, fd, NULL, out, sizeof(out), ": ping", 3000);
	assert_non_null(strstr(out, ": ping\n\n"));
	ui_http_set_ping_ms(e->http, UI_SSE_PING_MS);
	/* more events than the ring holds while the reader sleeps: a resync,
	 * not unbounded memory */
	for (int i = 0; i < UI_SSE_RING * 2; i++)
		ui_http_publish(e->http, "sync", NULL);
	size_t got = 0, n;
	char *all = calloc(1, 1 << 20);
	while (!strstr(all, "event: resync") && got < (1 << 19) &&
	       (n = talk(e, fd, NULL, out, sizeof(out), "resync", 1000)) > 0) {
		memcpy(all + got, out, n);
		got += n;
	}
	assert_non_null(strstr(all, "event: resync\ndata: {}\n\n"));
	free(all);
	/* essd goes away: the stream says so, calls answer 503 */
	ctl_close(e->essd);
	e->essd = NULL;
	turn_until(e, disconnected, 3000);
	talk(e, fd, NULL, out, sizeof(out), "connected\":false", 3000);
	assert_non_null(strstr(out, "event: essd\ndata: {\"connected\":false}"));
	close(fd);
	post(e, "{\"method\":\"status\"}", NULL, out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 503"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_calls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

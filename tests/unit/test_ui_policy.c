/* The touch UI's request policy (agent/ui/ui_policy.h) and the HTTP side's
 * pure checks: Host and Origin (DNS rebinding, cross-site), the token and
 * the session cookie, request bounds, the security headers, the token file. */
#include "agent/ui/ui_http.h"
#include "agent/ui/ui_policy.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define PORT  8088
#define TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_host(void **state)
{
	(void)state;
	assert_true(ui_host_ok("127.0.0.1:8088", PORT));
	assert_true(ui_host_ok("localhost:8088", PORT));
	assert_true(ui_host_ok("LOCALHOST:8088", PORT));
	assert_true(ui_host_ok("[::1]:8088", PORT));
	/* DNS rebinding: another name that resolves to us */
	assert_false(ui_host_ok("attacker.example:8088", PORT));
	assert_false(ui_host_ok("localhost.attacker.example:8088", PORT));
	assert_false(ui_host_ok("127.0.0.1.nip.io:8088", PORT));
	/* the port exactly */
	assert_false(ui_host_ok("127.0.0.1", PORT));
	assert_false(ui_host_ok("127.0.0.1:80", PORT));
	assert_false(ui_host_ok("127.0.0.1:08088", PORT));
	assert_false(ui_host_ok("127.0.0.1:8088x", PORT));
	assert_false(ui_host_ok("127.0.0.1:8088 ", PORT));
	assert_false(ui_host_ok("127.0.0.1:", PORT));
	assert_false(ui_host_ok("127.0.0.2:8088", PORT));
	assert_false(ui_host_ok("", PORT));
	assert_false(ui_host_ok(NULL, PORT));
	assert_true(ui_origin_ok("http://127.0.0.1:8088", PORT));
	assert_false(ui_origin_ok("https://127.0.0.1:8088", PORT));
	assert_false(ui_origin_ok("http://127.0.0.1:8088/", PORT));
	assert_false(ui_origin_ok("http://evil.example", PORT));
	assert_false(ui_origin_ok("null", PORT));
}

static struct ui_reqinfo req(const char *method, const char *url)
{
	struct ui_reqinfo r = {.method = method,
	                       .url = url,
	                       .host = "127.0.0.1:8088",
	                       .origin = NULL,
	                       .content_length = -1};
	return r;
}

static void test_check(void **state)
{
	(void)state;
	struct ui_policy *p;
	enum ui_auth auth;
	const char *why;
	char cookie[160], hdr[200];
	assert_int_equal(ui_policy_open_token("short", PORT, &p), -EINVAL);
	assert_int_equal(ui_policy_open_token(TOKEN, PORT, &p), 0);
	assert_int_equal(ui_policy_port(p), PORT);

	/* the page itself needs no token (it holds no data), only our Host */
	struct ui_reqinfo r = req("GET", "/");
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 0);
	assert_int_equal(auth, UI_AUTH_NONE);
	r.host = "evil.example:8088";
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 421);
	assert_non_null(why);
	r.host = NULL;
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 400);

	/* the API: token or session */
	r = req("POST", "/api/call");
	r.origin = "http://127.0.0.1:8088";
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 401);
	r.authorization = "Bearer " TOKEN;
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 0);
	assert_int_equal(auth, UI_AUTH_TOKEN);
	r.authorization = "Bearer " TOKEN "0"; /* longer */
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 401);
	r.authorization = "Bearer 1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 401);
	r.authorization = TOKEN; /* no scheme */
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 401);
	r.authorization = NULL;
	/* the session cookie from the exchange works, the token as a cookie does not */
	assert_int_equal(ui_policy_session_cookie(p, cookie, sizeof(cookie)), 0);
	assert_non_null(strstr(cookie, "HttpOnly"));
	assert_non_null(strstr(cookie, "SameSite=Strict"));
	assert_null(strstr(cookie, TOKEN));
	size_t nv = strcspn(cookie, ";");
	snprintf(hdr, sizeof(hdr), "a=b; %.*s; c=d", (int)nv, cookie);
	r.cookie = hdr;
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 0);
	assert_int_equal(auth, UI_AUTH_SESSION);
	r.cookie = "ess_ui=" TOKEN;
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 401);
	snprintf(hdr, sizeof(hdr), "x%.*s", (int)nv, cookie); /* another cookie's name */
	r.cookie = hdr;
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 401);

	/* cross-site: a foreign Origin, a POST without one, Sec-Fetch-Site */
	r = req("POST", "/api/call");
	r.authorization = "Bearer " TOKEN;
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 403);
	r.origin = "http://evil.example";
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 403);
	r.origin = "http://127.0.0.1:8088";
	r.sec_fetch_site = "cross-site";
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 403);
	r.sec_fetch_site = "same-site"; /* another port on localhost is another site's page */
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 403);
	r.sec_fetch_site = "same-origin";
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 0);
	/* the kiosk's file:// start page moves to the page itself: a top-level
	 * load of "/" may come cross-site, nothing else may */
	r = req("GET", "/");
	r.sec_fetch_site = "cross-site";
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 403);
	r.sec_fetch_mode = "navigate";
	r.sec_fetch_dest = "document";
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 0);
	r.sec_fetch_dest = "iframe";
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 403);
	r.sec_fetch_dest = "document";
	r.url = "/app.js";
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 403);
	r.url = "/api/events";
	r.authorization = "Bearer " TOKEN;
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 403);
	r = req("POST", "/");
	r.origin = "http://127.0.0.1:8088";
	r.sec_fetch_site = "cross-site";
	r.sec_fetch_mode = "navigate";
	r.sec_fetch_dest = "document";
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 403);
	r = req("GET", "/api/events");
	r.origin = "http://localhost:9999";
	r.authorization = "Bearer " TOKEN;
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 403);

	/* bounds */
	r = req("POST", "/api/call");
	r.origin = "http://127.0.0.1:8088";
	r.authorization = "Bearer " TOKEN;
	r.content_length = UI_BODY_MAX + 1;
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 413);
	r.content_length = UI_BODY_MAX;
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 0);
	r = req("GET", "/");
	r.content_length = 10;
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 400);
	char longurl[UI_URL_MAX + 2];
	memset(longurl, 'a', sizeof(longurl) - 1);
	longurl[0] = '/';
	longurl[sizeof(longurl) - 1] = 0;
	r = req("GET", longurl);
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 414);
	r = req("PUT", "/");
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 405);
	r = req("DELETE", "/api/call");
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 405);
	r = req("GET", "*");
	assert_int_equal(ui_policy_check(p, &r, &auth, &why), 400);
	ui_policy_close(p);
}

static void test_headers(void **state)
{
	(void)state;
	const char *csp = NULL, *xfo = NULL, *nosniff = NULL;
	for (const struct ui_header *h = ui_security_headers; h->name; h++) {
		if (!strcmp(h->name, "Content-Security-Policy"))
			csp = h->value;
		else if (!strcmp(h->name, "X-Frame-Options"))
			xfo = h->value;
		else if (!strcmp(h->name, "X-Content-Type-Options"))
			nosniff = h->value;
	}
	assert_non_null(csp);
	assert_non_null(strstr(csp, "default-src 'self'"));
	assert_non_null(strstr(csp, "script-src 'self'"));
	assert_non_null(strstr(csp, "frame-ancestors 'none'"));
	assert_non_null(strstr(csp, "object-src 'none'"));
	assert_null(strstr(csp, "unsafe"));
	assert_null(strstr(csp, "http:"));
	assert_null(strstr(csp, "*"));
	assert_string_equal(xfo, "DENY");
	assert_string_equal(nosniff, "nosniff");
}

static void test_methods_and_listen(void **state)
{
	(void)state;
	assert_true(ui_http_method_allowed("list"));
	assert_true(ui_http_method_allowed("set"));
	assert_true(ui_http_method_allowed("sos"));
	assert_false(ui_http_method_allowed("unlock"));
	assert_false(ui_http_method_allowed("lock"));
	assert_false(ui_http_method_allowed("subscribe"));
	assert_false(ui_http_method_allowed(""));
	assert_false(ui_http_method_allowed(NULL));
	assert_true(ui_http_listen_is_loopback("127.0.0.1:8088"));
	assert_true(ui_http_listen_is_loopback("127.1.2.3:0"));
	assert_true(ui_http_listen_is_loopback("[::1]:8088"));
	assert_false(ui_http_listen_is_loopback("0.0.0.0:8088"));
	assert_false(ui_http_listen_is_loopback("192.168.1.10:8088"));
	assert_false(ui_http_listen_is_loopback("[::]:8088"));
	assert_false(ui_http_listen_is_loopback("localhost:8088"));
	assert_false(ui_http_listen_is_loopback("127.0.0.1"));
	assert_false(ui_http_listen_is_loopback("127.0.0.1:70000"));
}

static void test_token_file(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("uipol");
	char path[512], err[256], hdr[128];
	struct ui_policy *p, *p2;
	struct stat st;
	snprintf(path, sizeof(path), "%s/token", dir);
	assert_int_equal(ui_policy_open(path, 0644, PORT, &p, err, sizeof(err)), -EINVAL);
	assert_int_equal(ui_policy_open(path, 0660, PORT, &p, err, sizeof(err)), -EINVAL);
	assert_int_equal(ui_policy_open(path, 0640, PORT, &p, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	size_t len;
	unsigned char *tok = tu_read_file(path, &len);
	assert_int_equal(len, UI_TOKEN_HEX);
	for (size_t i = 0; i < len; i++)
		assert_non_null(strchr("0123456789abcdef", tok[i]));
	snprintf(hdr, sizeof(hdr), "Bearer %.*s", (int)len, (const char *)tok);
	assert_true(ui_policy_token_ok(p, hdr));
	/* a new start, a new token: the old one no longer works */
	assert_int_equal(ui_policy_open(path, 0600, PORT, &p2, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_false(ui_policy_token_ok(p2, hdr));
	free(tok);
	ui_policy_close(p);
	ui_policy_close(p2);
	tu_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_host),       cmocka_unit_test(test_check),
	    cmocka_unit_test(test_headers),    cmocka_unit_test(test_methods_and_listen),
	    cmocka_unit_test(test_token_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* sync/http: the URL policy and the signature headers (no server needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/loop.h"
#include "sync/http.h"
#include "sync/proto.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_plain_http_only_to_loopback(void **state)
{
	(void)state;
	assert_int_equal(http_url_allowed("https://ess.example.go.th/api"), 0);
	assert_int_equal(http_url_allowed("http://127.0.0.1:8080/api"), 0);
	assert_int_equal(http_url_allowed("http://127.9.3.1/api"), 0);
	assert_int_equal(http_url_allowed("http://localhost:1234"), 0);
	assert_int_equal(http_url_allowed("http://LOCALHOST:1234"), 0);
	assert_int_equal(http_url_allowed("http://[::1]:8080/api"), 0);
	assert_int_equal(http_url_allowed("http://ess.example.go.th/api"), -EPERM);
	assert_int_equal(http_url_allowed("http://10.0.0.1/api"), -EPERM);
	assert_int_equal(http_url_allowed("http://128.0.0.1/api"), -EPERM);
	assert_int_equal(http_url_allowed("http://[::2]/api"), -EPERM);
	assert_int_equal(http_url_allowed("http://localhost.evil.example/api"), -EPERM);
	assert_int_equal(http_url_allowed("http://127.0.0.1.evil.example/api"), -EPERM);
	assert_int_equal(http_url_allowed("ftp://127.0.0.1/api"), -EINVAL);
	assert_int_equal(http_url_allowed("not a url"), -EINVAL);

	struct loop *l;
	struct http *h = NULL;
	char err[128] = "";
	assert_int_equal(loop_open(&l), 0);
	struct http_params p = {.base_url = "http://ess.example.go.th/api"};
	assert_int_equal(http_open(l, &p, &h, err, sizeof(err)), -EPERM);
	assert_null(h);
	assert_non_null(strstr(err, "loopback"));
	p.base_url = "http://127.0.0.1:1/api";
	assert_int_equal(http_open(l, &p, &h, err, sizeof(err)), 0);
	http_close(h);
	loop_close(l);
}

static int sign_sk(void *arg, const void *msg, size_t len, unsigned char sig[64])
{
	crypto_sign_ed25519_detached(sig, NULL, msg, len, arg);
	return 0;
}

static int sign_fail(void *arg, const void *msg, size_t len, unsigned char sig[64])
{
	(void)arg;
	(void)msg;
	(void)len;
	(void)sig;
	return -ENOKEY;
}

static void test_signature_headers(void **state)
{
	(void)state;
	unsigned char pk[32], sk[64];
	crypto_sign_ed25519_keypair(pk, sk);
	struct http_auth a;
	const char body[] = "{\"events\":[]}";
	assert_int_equal(http_auth_make("d-7f3a", 1764400000, "POST", "/v1/devices/d-7f3a/events",
	                                body, strlen(body), sign_sk, sk, &a),
	                 0);
	assert_string_equal(a.device, "ESS-Device: d-7f3a");
	assert_string_equal(a.timestamp, "ESS-Timestamp: 1764400000");
	assert_true(strncmp(a.signature, "ESS-Signature: ", 15) == 0);
	/* the signature verifies over the contract's string to sign */
	const char *b64 = a.signature + 15;
	unsigned char sig[64];
	size_t n;
	assert_int_equal(proto_b64_decode(b64, strlen(b64), sig, sizeof(sig), &n), 0);
	assert_int_equal(n, 64);
	char hash[65], sts[512];
	proto_sha256_hex(body, strlen(body), hash);
	snprintf(sts, sizeof(sts), "ESS-V1\nPOST\n/v1/devices/d-7f3a/events\n1764400000\n%s", hash);
	assert_int_equal(
	    crypto_sign_ed25519_verify_detached(sig, (unsigned char *)sts, strlen(sts), pk), 0);
	/* …and not over another path, time or body */
	snprintf(sts, sizeof(sts), "ESS-V1\nPOST\n/v1/devices/d-7f3a/events\n1764400001\n%s", hash);
	assert_int_not_equal(
	    crypto_sign_ed25519_verify_detached(sig, (unsigned char *)sts, strlen(sts), pk), 0);
	/* no body: the hash of the empty string */
	assert_int_equal(http_auth_make("d1", 5, "GET", "/v1/devices/d1/assignments?wait=25", NULL,
	                                0, sign_sk, sk, &a),
	                 0);
	assert_int_equal(
	    proto_b64_decode(a.signature + 15, strlen(a.signature + 15), sig, sizeof(sig), &n), 0);
	snprintf(sts, sizeof(sts),
	         "ESS-V1\nGET\n/v1/devices/d1/assignments?wait=25\n5\n"
	         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_int_equal(
	    crypto_sign_ed25519_verify_detached(sig, (unsigned char *)sts, strlen(sts), pk), 0);
	/* errors */
	assert_int_equal(http_auth_make("", 5, "GET", "/x", NULL, 0, sign_sk, sk, &a), -EINVAL);
	assert_int_equal(http_auth_make("d1", 5, "GET", "/x", NULL, 0, sign_fail, NULL, &a),
	                 -ENOKEY);
}

static void test_clock_offset(void **state)
{
	(void)state;
	struct loop *l;
	struct http *h;
	assert_int_equal(loop_open(&l), 0);
	struct http_params p = {.base_url = "http://127.0.0.1:1"};
	assert_int_equal(http_open(l, &p, &h, NULL, 0), 0);
	int64_t t0 = http_timestamp(h);
	http_set_clock_offset(h, -3600);
	assert_int_equal(http_clock_offset(h), -3600);
	int64_t t1 = http_timestamp(h);
	assert_true(t0 - t1 >= 3599 && t0 - t1 <= 3601);
	http_close(h);
	loop_close(l);
}

struct done {
	int calls;
	long status;
	int error;
};

static void on_done(void *arg, const struct http_response *r)
{
	struct done *d = arg;
	d->calls++;
	d->status = r->status;
	d->error = r->error;
}

/* A refused connection ends through the loop with a transport error; a
 * signed request without an identity is refused before it starts. */
static void test_transport_failure_through_loop(void **state)
{
	(void)state;
	struct loop *l;
	struct http *h;
	assert_int_equal(loop_open(&l), 0);
	struct http_params p = {.base_url = "http://127.0.0.1:1", .connect_timeout_s = 2};
	assert_int_equal(http_open(l, &p, &h, NULL, 0), 0);
	struct done d = {0};
	assert_int_equal(
	    http_request(h, "GET", "/v1/x", NULL, 0, HTTP_SIGNED, 0, on_done, &d, NULL), -ENOKEY);
	assert_int_equal(http_request(h, "GET", "no-slash", NULL, 0, 0, 0, on_done, &d, NULL),
	                 -EINVAL);
	assert_int_equal(http_request(h, "POST", "/v1/x", "{}", 2, 0, 0, on_done, &d, NULL), 0);
	assert_int_equal(http_pending(h), 1);
	int64_t start = loop_now_ms();
	while (!d.calls && loop_now_ms() - start < 5000)
		assert_true(loop_run_once(l, 100) >= 0);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.status, 0);
	assert_int_equal(d.error, -ECONNREFUSED);
	assert_int_equal(http_pending(h), 0);
	/* cancelled: never called back */
	struct http_req *r;
	assert_int_equal(http_request(h, "GET", "/v1/y", NULL, 0, 0, 0, on_done, &d, &r), 0);
	http_cancel(h, r);
	for (int i = 0; i < 5; i++)
		loop_run_once(l, 10);
	assert_int_equal(d.calls, 1);
	/* closed with a request in flight: no callback, no leak */
	assert_int_equal(http_request(h, "GET", "/v1/z", NULL, 0, 0, 0, on_done, &d, NULL), 0);
	http_close(h);
	loop_close(l);
	assert_int_equal(d.calls, 1);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_http_only_to_loopback),
	    cmocka_unit_test(test_signature_headers),
	    cmocka_unit_test(test_clock_offset),
	    cmocka_unit_test(test_transport_failure_through_loop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

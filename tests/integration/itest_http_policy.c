/* Plain http is refused unless the server is a loopback host, checked on
 * the real program: `essd provision` with a configuration whose
 * server.url is plain http to a non-loopback host exits non-zero with a
 * clear error, and nothing is sent.
 *
 * "Nothing is sent" is observable here: the reference server listens on
 * 127.0.0.1:P and the configuration names http://0.0.0.0:P — not a
 * loopback address by the policy (only 127.0.0.0/8, ::1 and localhost
 * are), but one that Linux would connect to this very machine: a request
 * that slipped through would reach the server and show in its request log.
 * The other non-loopback URLs (a TEST-NET-1 address, a name that is never
 * resolved) must fail the same way before any lookup or connection. The
 * same configuration with http://127.0.0.1:P enrolls (the control). The
 * server is stopped by pid in the teardown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/lib/refsrv.h"
#include "tests/lib/proc.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNIT "NST-POLICY-1"

struct env {
	char *dir;
	struct refsrv srv;
	char essd[512];
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	if (!e)
		return -1;
	*state = e;
	e->dir = tu_tmpdir("policy");
	const char *build = getenv("ESS_BUILD");
	snprintf(e->essd, sizeof(e->essd), "%s/essd", build && build[0] ? build : "build/host");
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	if (!e)
		return 0;
	refsrv_stop(&e->srv);
	tu_rmrf(e->dir);
	free(e);
	return 0;
}

/* essd provision with server.url = url; its exit status, output in out. */
static int provision(struct env *e, const char *url, char *token, char *out, size_t cap)
{
	char conf[600], text[2048], serial[600], store[600];
	snprintf(conf, sizeof(conf), "%s/essd.conf", e->dir);
	snprintf(serial, sizeof(serial), "%s/serial", e->dir);
	snprintf(store, sizeof(store), "%s/store-%s", e->dir, token);
	FILE *f = fopen(serial, "w");
	assert_non_null(f);
	fputs("POLICY-SERIAL-1\n", f);
	fclose(f);
	snprintf(text, sizeof(text),
	         "[store]\ndir = %s\n[keystore]\nkey_file = %s/kek\n"
	         "[server]\nurl = %s\nconnect_timeout_s = 2\n"
	         "[device]\nserial_file = %s\n",
	         store, e->dir, url, serial);
	f = fopen(conf, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	char *const argv[] = {"essd", "provision", "-c", conf, "--token", token, NULL};
	return tp_run(e->essd, argv, out, cap);
}

/* Device API requests the server has seen (its request log). */
static int device_requests(struct env *e)
{
	long code;
	cJSON *doc = refsrv_admin(&e->srv, "GET", "/admin/requests", NULL, &code);
	assert_int_equal(code, 200);
	int n = cJSON_GetArraySize(cJSON_GetObjectItem(doc, "requests"));
	cJSON_Delete(doc);
	return n;
}

static void test_plain_http_refused_except_loopback(void **state)
{
	struct env *e = *state;
	char log[600], url[256], out[4096];
	snprintf(log, sizeof(log), "%s/refsrv.log", e->dir);
	if (refsrv_start(&e->srv, e->dir, log) < 0)
		fail_msg("the reference server did not start");
	assert_int_equal(refsrv_token(&e->srv, UNIT, "tok-refused"), 0);
	assert_int_equal(refsrv_token(&e->srv, UNIT, "tok-loopback"), 0);

	const char *const refused[] = {"http://0.0.0.0", "http://192.0.2.10", "http://ess.invalid",
	                               "http://[::]"};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		snprintf(url, sizeof(url), "%s:%d/api", refused[i], e->srv.port);
		int rc = provision(e, url, "tok-refused", out, sizeof(out));
		if (rc == 0 || !strstr(out, "plain http is allowed only to a loopback host"))
			fail_msg("%s: exit %d, said: %s", url, rc, out);
		/* the token is not in the output (a secret) */
		assert_null(strstr(out, "tok-refused"));
	}
	assert_int_equal(device_requests(e), 0);

	/* the control: the same over loopback reaches the server and enrolls */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api", e->srv.port);
	int rc = provision(e, url, "tok-loopback", out, sizeof(out));
	if (rc != 0)
		fail_msg("%s: exit %d, said: %s", url, rc, out);
	assert_true(device_requests(e) >= 1);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_plain_http_refused_except_loopback, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

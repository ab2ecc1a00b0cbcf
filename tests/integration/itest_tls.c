/* TLS as the agent meets it in the field: the reference server behind a
 * real TLS endpoint (nginx), a private CA made here. Enrollment succeeds
 * only with the configured CA file; a server whose certificate the CA did
 * not sign, or whose key does not match the pin, is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/config.h"
#include "agent/loop.h"
#include "agent/store.h"
#include "sync/sync.h"
#include "tests/lib/refsrv.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct env {
	char *dir;
	struct refsrv srv;
	pid_t nginx;
	int port;
	char pin[128]; /* sha256//… of the server's public key */
};

static int sh(const char *cmd)
{
	int rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int setup(void **state)
{
	if (sh("command -v nginx >/dev/null && command -v openssl >/dev/null") != 0)
		return 0; /* the test itself skips */
	struct env *e = calloc(1, sizeof(*e));
	*state = e;
	e->dir = tu_tmpdir("tls");
	if (refsrv_start(&e->srv, e->dir, NULL) < 0)
		return 0;
	char cmd[4096];
	/* a CA, a server certificate for localhost signed by it, and a
	 * stranger's CA that signed nothing here */
	snprintf(
	    cmd, sizeof(cmd),
	    "cd %s && "
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
	    "-subj /CN=ess-test-ca -keyout ca.key -out ca.pem >/dev/null 2>&1 && "
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
	    "-subj /CN=stranger -keyout other.key -out other.pem >/dev/null 2>&1 && "
	    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost "
	    "-keyout srv.key -out srv.csr >/dev/null 2>&1 && "
	    "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext && "
	    "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
	    "-extfile ext -out srv.pem >/dev/null 2>&1 && "
	    "openssl pkey -in srv.key -pubout -outform DER 2>/dev/null | openssl dgst -sha256 "
	    "-binary | openssl base64 > pin",
	    e->dir);
	if (sh(cmd) != 0)
		return 0;
	size_t len;
	unsigned char *pin = tu_read_file(strcat(strcpy(cmd, e->dir), "/pin"), &len);
	if (!pin)
		return 0;
	while (len && (pin[len - 1] == '\n' || pin[len - 1] == '\r'))
		len--;
	snprintf(e->pin, sizeof(e->pin), "sha256//%.*s", (int)len, (char *)pin);
	free(pin);

	e->port = tu_free_port();
	snprintf(cmd, sizeof(cmd),
	         "cat > %s/nginx.conf <<EOF\n"
	         "daemon off; master_process off; pid %s/nginx.pid; error_log %s/nginx.err;\n"
	         "events {}\n"
	         "http { access_log off; client_body_temp_path %s; proxy_temp_path %s;\n"
	         " server { listen 127.0.0.1:%d ssl; ssl_certificate %s/srv.pem;\n"
	         "  ssl_certificate_key %s/srv.key;\n"
	         "  location / { proxy_pass http://127.0.0.1:%d; proxy_http_version 1.1;\n"
	         "   proxy_buffering off; proxy_read_timeout 60s; } } }\n"
	         "EOF",
	         e->dir, e->dir, e->dir, e->dir, e->dir, e->port, e->dir, e->dir, e->srv.port);
	if (sh(cmd) != 0)
		return 0;
	e->nginx = fork();
	if (e->nginx == 0) {
		char conf[600];
		snprintf(conf, sizeof(conf), "%s/nginx.conf", e->dir);
		setpgid(0, 0);
		execlp("nginx", "nginx", "-c", conf, "-e", "/dev/null", (char *)NULL);
		_exit(127);
	}
	/* listening? */
	snprintf(
	    cmd, sizeof(cmd),
	    "for i in $(seq 50); do curl -s --cacert %s/ca.pem https://localhost:%d/admin/health "
	    "-o /dev/null && exit 0; sleep 0.1; done; exit 1",
	    e->dir, e->port);
	if (sh(cmd) != 0) {
		kill(e->nginx, SIGKILL);
		waitpid(e->nginx, NULL, 0);
		e->nginx = 0;
	}
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	if (!e)
		return 0;
	if (e->nginx > 0) {
		kill(-e->nginx, SIGTERM);
		kill(e->nginx, SIGTERM);
		usleep(200000);
		kill(-e->nginx, SIGKILL);
		waitpid(e->nginx, NULL, 0);
	}
	refsrv_stop(&e->srv);
	tu_rmrf(e->dir);
	free(e);
	return 0;
}

/* Enrolls a fresh store against https://localhost:PORT/api. */
static int enroll(struct env *e, const char *ca, const char *pin, const char *token, char *err,
                  size_t errlen)
{
	char *dir = tu_tmpdir("tlsdev");
	struct tu_store t;
	struct loop *l;
	struct config cfg;
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	assert_int_equal(loop_open(&l), 0);
	config_defaults(&cfg);
	snprintf(cfg.server.url, sizeof(cfg.server.url), "https://localhost:%d/api", e->port);
	if (ca)
		snprintf(cfg.server.ca_file, sizeof(cfg.server.ca_file), "%s/%s", e->dir, ca);
	if (pin)
		snprintf(cfg.server.pinned_pubkey, sizeof(cfg.server.pinned_pubkey), "%s", pin);
	cfg.server.request_timeout_s = 10;
	assert_int_equal(refsrv_token(&e->srv, "TLS-UNIT", token), 0);
	/* the token doubles as the serial: each attempt can be found on the server */
	struct sync_enroll_info info = {.token = token, .serial = token, .board = "host"};
	int rc = sync_enroll(l, t.s, &cfg, &info, err, errlen);
	loop_close(l);
	tu_store_close(&t);
	tu_rmrf(dir);
	return rc;
}

static void need(struct env *e)
{
	if (!e || e->nginx <= 0 || e->srv.pid <= 0) {
		print_message("# nginx, openssl or the reference server missing: skipped\n");
		skip();
	}
}

static void test_trusted_ca_enrolls(void **state)
{
	struct env *e = *state;
	need(e);
	char err[256] = "";
	int rc = enroll(e, "ca.pem", NULL, "tok-ca", err, sizeof(err));
	if (rc)
		fail_msg("enroll over TLS with the CA: %d %s", rc, err);
}

static void test_untrusted_certificate_refused(void **state)
{
	struct env *e = *state;
	need(e);
	char err[256] = "";
	/* a CA that did not sign the server's certificate */
	assert_true(enroll(e, "other.pem", NULL, "tok-other", err, sizeof(err)) < 0);
	/* and the system's CAs, which know nothing of it */
	assert_true(enroll(e, NULL, NULL, "tok-system", err, sizeof(err)) < 0);
	long status;
	cJSON *d = refsrv_admin(&e->srv, "GET", "/admin/devices", NULL, &status);
	assert_int_equal(status, 200);
	char *txt = cJSON_PrintUnformatted(d);
	assert_non_null(strstr(txt, "\"tok-ca\"")); /* test 1's enrollment is there */
	assert_null(strstr(txt, "\"tok-other\""));  /* these never reached the server */
	assert_null(strstr(txt, "\"tok-system\""));
	free(txt);
	cJSON_Delete(d);
}

static void test_public_key_pinning(void **state)
{
	struct env *e = *state;
	need(e);
	char err[256] = "";
	int rc = enroll(e, "ca.pem", e->pin, "tok-pin", err, sizeof(err));
	if (rc)
		fail_msg("enroll with the right pin: %d %s", rc, err);
	assert_true(enroll(e, "ca.pem", "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	                   "tok-badpin", err, sizeof(err)) < 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_trusted_ca_enrolls),
	    cmocka_unit_test(test_untrusted_certificate_refused),
	    cmocka_unit_test(test_public_key_pinning),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

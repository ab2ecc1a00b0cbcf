/* The technician's path, with the real programs on loopback: first-boot
 * enrollment from a one-time token file (deleted after success, kept after
 * a failure, a symlink refused), then `essd selftest` against the reference
 * server and gpsd fed by gpsfake: a pass with every check, and the failures
 * a technician meets (gpsd down, server down, a device the server does not
 * know, a revoked device), each with a non-zero exit, in the table and in
 * --json. Every process started here is stopped by pid, on failure too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/lib/refsrv.h"
#include "tests/lib/proc.h"
#include "tests/lib/testutil.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNIT "BKK-SELFTEST-1"

struct env {
	char *dir;
	char build[256];
	char essd[320];
	char conf[600];
	char token_path[600];
	int gps_port;
	struct refsrv srv;
	pid_t fake;   /* gpsfake's process group (tp_spawn) */
	pid_t daemon; /* essd run (tp_spawn) */
};

static struct env *g_env; /* for the atexit cleanup */

static void cleanup(void)
{
	if (!g_env)
		return;
	tp_stop(&g_env->daemon, SIGTERM, 5000);
	tp_stop(&g_env->fake, SIGTERM, 2000); /* then SIGKILLs gpsfake's group */
	refsrv_stop(&g_env->srv);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void write_conf(struct env *e)
{
	char text[3072];
	snprintf(text, sizeof(text),
	         "[log]\nlevel = warn\n"
	         "[store]\ndir = %s/store\n"
	         "[keystore]\nkey_file = %s/kek\n"
	         "[server]\nurl = %s\nrequest_timeout_s = 10\nlong_poll_s = 2\n"
	         "enroll_token_file = %s\n"
	         "[gps]\nhost = 127.0.0.1\nport = %d\n"
	         "[control]\nsocket = %s/essd.sock\n"
	         "[device]\nboard = host\nserial_file = %s/serial\n",
	         e->dir, e->dir, e->srv.api_url, e->token_path, e->gps_port, e->dir, e->dir);
	snprintf(e->conf, sizeof(e->conf), "%s/essd.conf", e->dir);
	write_file(e->conf, text, 0600);
}

/* Runs essd with the arguments up to a NULL; exit status, output (stdout
 * and stderr) in out. */
static int essd(struct env *e, char *out, size_t cap, ...)
{
	char *argv[16] = {"essd"};
	int argc = 1;
	va_list ap;
	va_start(ap, cap);
	char *a;
	while (argc < 15 && (a = va_arg(ap, char *)) != NULL)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return tp_run(e->essd, argv, out, cap);
}

static void gpsfake_start(struct env *e)
{
	char log[700], gen[400], port[16];
	snprintf(log, sizeof(log), "%s/drive.nmea", e->dir);
	snprintf(gen, sizeof(gen), "%s/tools/nmeagen", e->build);
	pid_t p = fork();
	assert_true(p >= 0);
	if (p == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		execl(gen, "nmeagen", "--seconds", "600", "--start", "now", (char *)NULL);
		_exit(127);
	}
	int st;
	waitpid(p, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	snprintf(port, sizeof(port), "%d", e->gps_port);
	char flog[700];
	snprintf(flog, sizeof(flog), "%s/gpsfake.log", e->dir);
	e->fake = tp_gpsfake(flog, e->gps_port, log, "0.1");
	assert_true(e->fake > 0);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	const char *b = getenv("ESS_BUILD");
	snprintf(e->build, sizeof(e->build), "%s", b ? b : "build/host");
	snprintf(e->essd, sizeof(e->essd), "%s/essd", e->build);
	e->dir = tu_tmpdir("selftest");
	char boot[400], serial[600];
	snprintf(boot, sizeof(boot), "%s/boot", e->dir);
	mkdir(boot, 0755);
	snprintf(e->token_path, sizeof(e->token_path), "%s/ess-token", boot);
	snprintf(serial, sizeof(serial), "%s/serial", e->dir);
	write_file(serial, "SN-SELFTEST-0001\n", 0644);
	e->gps_port = tu_free_port();
	g_env = e;
	atexit(cleanup);
	if (refsrv_start(&e->srv, e->dir, NULL) < 0)
		return -1;
	write_conf(e);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	tp_stop(&e->daemon, SIGTERM, 5000);
	tp_stop(&e->fake, SIGTERM, 2000);
	refsrv_stop(&e->srv);
	g_env = NULL;
	tu_rmrf(e->dir);
	free(e);
	return 0;
}

static const char *check_status(const cJSON *doc, const char *name)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(doc, "checks"))
	{
		if (strcmp(cJSON_GetObjectItem(it, "name")->valuestring, name) == 0)
			return cJSON_GetObjectItem(it, "status")->valuestring;
	}
	return "missing";
}

static const char *check_detail(const cJSON *doc, const char *name)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(doc, "checks"))
	{
		if (strcmp(cJSON_GetObjectItem(it, "name")->valuestring, name) == 0)
			return cJSON_GetObjectItem(it, "detail")->valuestring;
	}
	return "";
}

/* First boot: the token file is the only input; a bad one stays for the
 * next attempt, a good one is consumed. */
static void test_first_boot_token_file(void **state)
{
	struct env *e = *state;
	char out[8192];
	assert_int_equal(refsrv_token(&e->srv, UNIT, "first-boot-token-1"), 0);

	/* no token anywhere: a clear error */
	assert_int_not_equal(essd(e, out, sizeof(out), "provision", "-c", e->conf, NULL), 0);
	assert_non_null(strstr(out, "no enrollment token"));

	/* a symlink on the boot partition is not followed */
	char target[700];
	snprintf(target, sizeof(target), "%s/elsewhere", e->dir);
	write_file(target, "first-boot-token-1\n", 0600);
	assert_int_equal(symlink(target, e->token_path), 0);
	assert_int_equal(essd(e, out, sizeof(out), "provision", "-c", e->conf, NULL), 1);
	assert_null(strstr(out, "first-boot-token-1"));
	assert_int_equal(unlink(e->token_path), 0);

	/* a wrong token: enrollment fails, the file stays, the token is not
	 * echoed */
	write_file(e->token_path, "wrong-token-0000\r\n", 0600);
	assert_int_equal(essd(e, out, sizeof(out), "provision", "-c", e->conf, NULL), 1);
	assert_non_null(strstr(out, "enrollment failed"));
	assert_null(strstr(out, "wrong-token-0000"));
	assert_int_equal(access(e->token_path, F_OK), 0);

	/* garbage in the file: refused before any request */
	write_file(e->token_path, "two words\n", 0600);
	assert_int_equal(essd(e, out, sizeof(out), "provision", "-c", e->conf, NULL), 1);
	assert_non_null(strstr(out, "printable ASCII"));
	assert_int_equal(access(e->token_path, F_OK), 0);

	/* the right token, with trailing blanks and a newline: enrolled, file gone */
	write_file(e->token_path, "first-boot-token-1  \n", 0600);
	assert_int_equal(essd(e, out, sizeof(out), "provision", "-c", e->conf, NULL), 0);
	assert_non_null(strstr(out, "provisioned: device"));
	assert_non_null(strstr(out, UNIT));
	assert_int_equal(access(e->token_path, F_OK), -1);
	char id[160];
	assert_int_equal(refsrv_device_id(&e->srv, id, sizeof(id)), 0);

	/* a second run has nothing to consume and does not enroll again */
	assert_int_equal(essd(e, out, sizeof(out), "provision", "-c", e->conf, NULL), 2);
	/* --token-file names another file; --token with it is refused */
	assert_int_equal(essd(e, out, sizeof(out), "provision", "-c", e->conf, "--token-file",
	                      target, "--token", "x", NULL),
	                 2);
	assert_int_equal(access(target, F_OK), 0);
}

/* Everything in order: gpsd with a moving receiver, an enrolled device, the
 * server up with a pending command whose signature the self-test checks. */
static void test_selftest_passes(void **state)
{
	struct env *e = *state;
	char out[16384], id[160], path[300];
	assert_int_equal(refsrv_device_id(&e->srv, id, sizeof(id)), 0);
	snprintf(path, sizeof(path), "/admin/devices/%s/commands", id);
	long status = 0;
	cJSON_Delete(refsrv_admin(&e->srv, "POST", path, "{\"type\":\"resync\"}", &status));
	assert_int_equal(status, 201);
	gpsfake_start(e);

	int rc = essd(e, out, sizeof(out), "selftest", "-c", e->conf, "--gps-timeout", "60", NULL);
	if (rc != 0)
		print_message("%s", out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "RESULT: PASS"));
	assert_non_null(strstr(out, "PASS  server"));
	assert_non_null(strstr(out, "1 pending signed command verified"));
	assert_non_null(strstr(out, "PASS  gps-fix"));
	assert_non_null(strstr(out, "PASS  store"));
	/* nmeagen drives through Bangkok (13.7x N, 100.5x E): no position is
	 * printed */
	assert_null(strstr(out, "13.7"));
	assert_null(strstr(out, "100.5"));
	/* essd is not running yet: a warning, not a failure */
	assert_non_null(strstr(out, "WARN  daemon    essd is not running"));

	/* the heartbeat reached the server, signed by this device */
	snprintf(path, sizeof(path), "/admin/devices/%s/heartbeats", id);
	cJSON *hb = refsrv_admin(&e->srv, "GET", path, NULL, &status);
	assert_int_equal(status, 200);
	assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(hb, "heartbeats")) >= 1);
	cJSON_Delete(hb);

	/* beside the running daemon (the technician's usual case): both use
	 * the store, the daemon keeps running and stops cleanly */
	char sock[700], dlog[700];
	snprintf(sock, sizeof(sock), "%s/essd.sock", e->dir);
	snprintf(dlog, sizeof(dlog), "%s/essd-run.log", e->dir);
	char *const run[] = {e->essd, "run", "-c", e->conf, NULL};
	e->daemon = tp_spawn(dlog, run, NULL);
	for (int i = 0; i < 200 && access(sock, F_OK) != 0; i++)
		usleep(50000);
	assert_int_equal(access(sock, F_OK), 0);
	rc = essd(e, out, sizeof(out), "selftest", "-c", e->conf, "--gps-timeout", "60", NULL);
	if (rc != 0)
		print_message("%s", out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "PASS  daemon    essd running: unlocked"));
	assert_int_equal(kill(e->daemon, 0), 0);
	assert_int_equal(tp_stop(&e->daemon, SIGTERM, 5000), 0);

	/* the same as JSON, for scripts; the server's clock an hour ahead
	 * (clock_skew, retried with the server's time like the daemon does) */
	cJSON_Delete(
	    refsrv_admin(&e->srv, "POST", "/admin/faults", "{\"clock_shift_s\":3600}", &status));
	assert_int_equal(status, 200);
	rc = essd(e, out, sizeof(out), "selftest", "-c", e->conf, "--json", "--gps-timeout", "60",
	          NULL);
	cJSON *doc = cJSON_Parse(out);
	assert_non_null(doc);
	assert_int_equal(rc, 0);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "ok")));
	assert_string_equal(check_status(doc, "server"), "pass");
	assert_string_equal(check_status(doc, "gpsd"), "pass");
	assert_string_equal(check_status(doc, "gps-fix"), "pass");
	assert_string_equal(check_status(doc, "identity"), "pass");
	assert_string_equal(check_status(doc, "keystore"), "pass");
	assert_string_equal(check_status(doc, "disk"), "pass");
	assert_string_equal(check_status(doc, "daemon"), "warn");
	/* no alert outputs configured (backend none); the panic button only
	 * when asked for, since someone must press it */
	assert_string_equal(check_status(doc, "alert"), "skip");
	assert_string_equal(check_status(doc, "panic"), "skip");
	/* an hour off the server: a warning, not a failure */
	assert_string_equal(check_status(doc, "clock"), "warn");
	assert_non_null(strstr(check_detail(doc, "clock"), "s from the server's clock"));
	cJSON_Delete(doc);
	cJSON_Delete(refsrv_admin(&e->srv, "DELETE", "/admin/faults", NULL, &status));
}

/* What a technician meets in the field, each a non-zero exit. */
static void test_selftest_failures(void **state)
{
	struct env *e = *state;
	char out[16384], id[160], path[300];
	long status = 0;

	/* gpsd down: gpsd fails, the fix is not waited for */
	tp_stop(&e->fake, SIGTERM, 2000);
	int rc = essd(e, out, sizeof(out), "selftest", "-c", e->conf, "--json", "--gps-timeout",
	              "3", NULL);
	cJSON *doc = cJSON_Parse(out);
	assert_non_null(doc);
	assert_int_equal(rc, 1);
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(doc, "ok")));
	assert_string_equal(check_status(doc, "gpsd"), "fail");
	assert_string_equal(check_status(doc, "gps-fix"), "skip");
	assert_string_equal(check_status(doc, "server"), "pass");
	cJSON_Delete(doc);

	/* --no-gps (a device without GPS) passes with the server up */
	assert_int_equal(essd(e, out, sizeof(out), "selftest", "-c", e->conf, "--no-gps", NULL), 0);

	/* the server revoked the device */
	assert_int_equal(refsrv_device_id(&e->srv, id, sizeof(id)), 0);
	snprintf(path, sizeof(path), "/admin/devices/%s/revoke", id);
	cJSON_Delete(refsrv_admin(&e->srv, "POST", path, NULL, &status));
	assert_int_equal(status, 200);
	rc = essd(e, out, sizeof(out), "selftest", "-c", e->conf, "--no-gps", NULL);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "FAIL  server"));
	assert_non_null(strstr(out, "revoked"));
	assert_non_null(strstr(out, "RESULT: FAIL"));

	/* a server that never enrolled this device (a fresh database) */
	refsrv_stop(&e->srv);
	char sub[700];
	snprintf(sub, sizeof(sub), "%s/srv2", e->dir);
	mkdir(sub, 0700);
	int old_port = e->srv.port;
	assert_int_equal(refsrv_start(&e->srv, sub, NULL), 0);
	write_conf(e); /* the new server's URL */
	rc = essd(e, out, sizeof(out), "selftest", "-c", e->conf, "--no-gps", NULL);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "does not know this device"));

	/* no server at all */
	refsrv_stop(&e->srv);
	rc = essd(e, out, sizeof(out), "selftest", "-c", e->conf, "--no-gps", NULL);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "cannot be reached"));
	(void)old_port;

	/* the store's key file gone: keystore fails, the store is not touched */
	char kek[700], moved[700];
	snprintf(kek, sizeof(kek), "%s/kek", e->dir);
	snprintf(moved, sizeof(moved), "%s/kek.away", e->dir);
	assert_int_equal(rename(kek, moved), 0);
	rc = essd(e, out, sizeof(out), "selftest", "-c", e->conf, "--no-gps", NULL);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "FAIL  keystore"));
	assert_non_null(strstr(out, "skip  store"));
	assert_int_equal(rename(moved, kek), 0);

	/* a configuration that does not load */
	char bad[700];
	snprintf(bad, sizeof(bad), "%s/bad.conf", e->dir);
	write_file(bad, "[store]\nfrobs = 1\n", 0600);
	rc = essd(e, out, sizeof(out), "selftest", "-c", bad, "--no-gps", NULL);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "FAIL  config"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_first_boot_token_file),
	    cmocka_unit_test(test_selftest_passes),
	    cmocka_unit_test(test_selftest_failures),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

/* essd's technician commands, run as a real program: configuration errors
 * reported as file:line and refused; a store with a bad key file is never
 * touched and the error names the file; exit status non-zero. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/store.h"
#include "hal/keystore.h"
#include "tests/lib/proc.h"
#include "tests/lib/testutil.h"

#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char essd[512];

/* Runs essd with args; returns its exit status, output in out. */
static int run(char *out, size_t cap, char *a1, char *a2, char *a3, char *a4)
{
	char *const argv[] = {"essd", a1, a2, a3, a4, NULL};
	return tp_run(essd, argv, out, cap);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void config_for(const char *dir, char *conf, size_t cap)
{
	char text[2048];
	snprintf(conf, cap, "%s/essd.conf", dir);
	snprintf(text, sizeof(text),
	         "[store]\ndir = %s\n[keystore]\nkey_file = %s/kek\n"
	         "[server]\nurl = http://127.0.0.1:8080/api\n",
	         dir, dir);
	write_file(conf, text);
}

static void test_version_and_usage(void **state)
{
	(void)state;
	char out[4096];
	assert_int_equal(run(out, sizeof(out), "--version", NULL, NULL, NULL), 0);
	assert_non_null(strstr(out, "essd "));
	assert_int_equal(run(out, sizeof(out), "frobnicate", NULL, NULL, NULL), 2);
	assert_non_null(strstr(out, "usage"));
	assert_int_equal(run(out, sizeof(out), "check", NULL, NULL, NULL), 2);
}

static void test_check_reports_every_error(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("cli");
	char conf[600], out[8192];
	config_for(dir, conf, sizeof(conf));
	assert_int_equal(run(out, sizeof(out), "check", "-c", conf, NULL), 0);
	assert_non_null(strstr(out, ": ok"));
	write_file(conf, "[store]\ndir = relative/path\nretention_hours = 0\n"
	                 "colour = blue\n[server]\nurl = ftp://x\nthis line is wrong\n");
	assert_int_equal(run(out, sizeof(out), "check", "-c", conf, NULL), 2);
	/* every error, each with its line */
	char want[700];
	static const int lines[] = {2, 3, 4, 6, 7};
	for (int i = 0; i < 5; i++) {
		snprintf(want, sizeof(want), "%s:%d: ", conf, lines[i]);
		if (!strstr(out, want))
			fprintf(stderr, "# missing %s in:\n%s\n", want, out);
		assert_non_null(strstr(out, want));
	}
	assert_non_null(strstr(out, "refusing"));
	assert_int_equal(run(out, sizeof(out), "check", "-c", "/nonexistent/essd.conf", NULL), 2);
	assert_non_null(strstr(out, "/nonexistent/essd.conf"));
	tu_rmrf(dir);
}

static void test_inspect_and_key_errors(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("cli");
	char conf[600], out[8192], kek[600], db[600], h1[65], h2[65];
	config_for(dir, conf, sizeof(conf));
	snprintf(kek, sizeof(kek), "%s/kek", dir);
	snprintf(db, sizeof(db), "%s/ess.db", dir);

	/* nothing provisioned yet */
	assert_int_equal(run(out, sizeof(out), "inspect", "-c", conf, NULL), 1);
	assert_non_null(strstr(out, kek));

	struct tu_store t;
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	assert_int_equal(
	    store_outbox_append(t.s, STORE_EVENT_NOTE, "{\"text\":\"x\"}", 12, NULL, NULL), 0);
	tu_store_close(&t);
	assert_int_equal(run(out, sizeof(out), "inspect", "-c", conf, NULL), 0);
	assert_non_null(strstr(out, "queued events    1"));
	tu_file_hash(db, h1);

	chmod(kek, 0644);
	assert_int_equal(run(out, sizeof(out), "inspect", "-c", conf, NULL), 1);
	assert_non_null(strstr(out, kek));
	assert_non_null(strstr(out, "chmod 600"));
	chmod(kek, 0600);

	/* a wrong key: refused, the file named, the database untouched */
	unsigned char other[32];
	randombytes_buf(other, sizeof(other));
	int fd = open(kek, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, other, 32), 32);
	close(fd);
	assert_int_equal(run(out, sizeof(out), "inspect", "-c", conf, NULL), 1);
	assert_non_null(strstr(out, "/keys"));
	assert_non_null(strstr(out, "does not unlock"));
	assert_int_equal(run(out, sizeof(out), "wipe", "-c", conf, "--yes"), 1);
	tu_file_hash(db, h2);
	assert_string_equal(h1, h2);
	tu_rmrf(dir);
}

static void test_wipe(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("cli");
	char conf[600], out[4096], p[600];
	config_for(dir, conf, sizeof(conf));
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	tu_store_close(&t);
	assert_int_equal(run(out, sizeof(out), "wipe", "-c", conf, NULL), 2); /* needs --yes */
	snprintf(p, sizeof(p), "%s/keys", dir);
	assert_int_equal(access(p, F_OK), 0);
	assert_int_equal(run(out, sizeof(out), "wipe", "-c", conf, "--yes"), 0);
	assert_int_equal(access(p, F_OK), -1);
	snprintf(p, sizeof(p), "%s/kek", dir);
	assert_int_equal(access(p, F_OK), -1);
	tu_rmrf(dir);
}

int main(void)
{
	const char *build = getenv("ESS_BUILD");
	snprintf(essd, sizeof(essd), "%s/essd", build ? build : "build/host");
	if (access(essd, X_OK) != 0) {
		fprintf(stderr, "%s not built\n", essd);
		return 1;
	}
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_version_and_usage),
	    cmocka_unit_test(test_check_reports_every_error),
	    cmocka_unit_test(test_inspect_and_key_errors),
	    cmocka_unit_test(test_wipe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

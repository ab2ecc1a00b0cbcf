/* essd and the store's integrity check (docs/store.md, "Integrity"), with
 * the real programs on loopback: after a clean stop essd starts without
 * checking the database and checks it once serving; after a SIGKILL it
 * checks at open; a database damaged at rest after a clean stop (bit rot:
 * the file's times untouched) is found after start-up, essd stops with an
 * error and leaves no clean marker, and the next start moves the file aside
 * unchanged, as with any database found damaged at open. Every process is
 * stopped by pid (essdenv), on failure too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/store.h"
#include "agent/store_int.h"
#include "hal/keystore.h"
#include "tests/lib/essdenv.h"
#include "tests/lib/proc.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct essenv env;

static int teardown(void **state)
{
	(void)state;
	ee_close(&env);
	return 0;
}

/* Occurrences of needle in essd's log (every start appends to it). */
static int log_count(const char *needle)
{
	char p[700];
	size_t len;
	snprintf(p, sizeof(p), "%s/essd.log", env.dir);
	char *b = (char *)tu_read_file(p, &len);
	int n = 0;
	for (char *q = b; q && (q = strstr(q, needle)); q += strlen(needle))
		n++;
	free(b);
	return n;
}

static int store_file(const char *name)
{
	char p[700];
	struct stat st;
	snprintf(p, sizeof(p), "%s/store/%s", env.dir, name);
	return lstat(p, &st) == 0;
}

/* The root page of a table, through the store's API with essd stopped;
 * a clean close. */
static int root_page(const char *table)
{
	char dir[700];
	struct tu_store t;
	snprintf(dir, sizeof(dir), "%s/store", env.dir);
	/* essdenv keeps the KEK beside the store, not in it (tu_store_open's
	 * place): opened here by hand */
	char kek[700], err[256];
	snprintf(kek, sizeof(kek), "%s/kek", env.dir);
	memset(&t, 0, sizeof(t));
	assert_int_equal(hal_keystore_open("file", kek, &t.ks, err, sizeof(err)), 0);
	struct store_params p = {.dir = dir, .keystore = t.ks};
	assert_int_equal(store_open(&p, &t.s, &t.flags, err, sizeof(err)), 0);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(t.s->db,
	                                    "SELECT rootpage FROM sqlite_schema WHERE name = ?", -1,
	                                    &st, NULL),
	                 SQLITE_OK);
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int root = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	tu_store_close(&t);
	return root;
}

static void damage_at_rest(int page, char hash[65])
{
	char p[700];
	snprintf(p, sizeof(p), "%s/store/ess.db", env.dir);
	int fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	unsigned char junk[200];
	memset(junk, 0x5a, sizeof(junk));
	assert_int_equal(pwrite(fd, junk, sizeof(junk), (off_t)(page - 1) * 4096),
	                 (ssize_t)sizeof(junk));
	struct timespec ts[2] = {st.st_atim, st.st_mtim};
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
	tu_file_hash(p, hash);
}

/* The damaged file moved aside, byte for byte (one of those there). */
static int aside_matches(const char *hash)
{
	char cmd[1600], list[700];
	snprintf(list, sizeof(list), "%s/aside", env.dir);
	snprintf(cmd, sizeof(cmd), "ls %s/store/ess.db.corrupt-* | grep -v -- '-wal$\\|-shm$' > %s",
	         env.dir, list);
	if (system(cmd) != 0)
		return 0;
	size_t len;
	char *names = (char *)tu_read_file(list, &len);
	int found = 0;
	for (char *line = names, *nl; line && *line && !found; line = nl + 1) {
		if (!(nl = strchr(line, '\n')))
			break;
		*nl = 0;
		char got[65];
		tu_file_hash(line, got);
		found = strcmp(got, hash) == 0;
	}
	free(names);
	return found;
}

static void test_essd_integrity(void **state)
{
	(void)state;
	assert_int_equal(ee_open(&env, "integrity"), 0);
	assert_int_equal(ee_srv_start(&env), 0);
	assert_int_equal(ee_write_conf(&env, NULL), 0);
	assert_int_equal(ee_provision(&env), 0);
	assert_true(store_file("ess.db.clean")); /* provision closed the store cleanly */

	/* clean before: not checked at open, checked once serving */
	assert_int_equal(ee_essd_start(&env), 0);
	TU_WAIT_FOR(log_count("integrity check passed") == 1, 15000);
	assert_int_equal(log_count("integrity check passed"), 1);
	assert_int_equal(log_count("checked at open"), 0);
	assert_int_equal(tp_stop(&env.essd, SIGTERM, 5000), 0);
	assert_true(store_file("ess.db.clean"));

	/* killed: no marker, checked at open, nothing left for later */
	assert_int_equal(ee_essd_start(&env), 0);
	assert_int_equal(tp_stop(&env.essd, SIGKILL, 5000), 128 + SIGKILL);
	assert_false(store_file("ess.db.clean"));
	assert_int_equal(ee_essd_start(&env), 0);
	assert_int_equal(log_count("checked at open"), 1);
	usleep(3000000); /* past the deferred check's moment */
	assert_int_equal(log_count("integrity check passed"), 1);
	assert_int_equal(tp_stop(&env.essd, SIGTERM, 5000), 0);

	/* damaged at rest after a clean stop, in the quarantine table (empty,
	 * read by nothing at start-up): found by the deferred check */
	char hash[65], cmd[1600];
	snprintf(cmd, sizeof(cmd), "cp -a %s/store %s/store.bak", env.dir, env.dir);
	assert_int_equal(system(cmd), 0);
	damage_at_rest(root_page("quarantine"), hash);
	assert_true(store_file("ess.db.clean"));
	assert_int_equal(ee_essd_spawn(&env), 0);
	int st = tp_wait(&env.essd, 20000);
	if (st < 0)
		fail_msg("essd kept running on a damaged database");
	assert_int_equal(st, 1);
	assert_int_equal(log_count("running: unit"), 4); /* it had started serving */
	assert_int_equal(log_count("is damaged; nothing more is written"), 1);
	assert_false(store_file("ess.db.clean"));
	assert_false(aside_matches(hash));

	/* the next start moves it aside, unchanged (and, as with a database
	 * found damaged at open, the identity went with it) */
	assert_int_equal(ee_essd_spawn(&env), 0);
	st = tp_wait(&env.essd, 20000);
	assert_int_equal(log_count("failed its integrity check; moved to"), 1);
	assert_true(aside_matches(hash));
	if (st != 0)
		printf("# after the move: essd exited %d (a fresh store has no identity)\n", st);

	/* the store as it was, damaged now where start-up reads (the state
	 * table: the lock, the unit): SQLite reports the damage before READY=1,
	 * essd says so and exits 1 without serving */
	snprintf(cmd, sizeof(cmd), "rm -rf %s/store && cp -a %s/store.bak %s/store", env.dir,
	         env.dir, env.dir);
	assert_int_equal(system(cmd), 0);
	damage_at_rest(root_page("state"), hash);
	assert_true(store_file("ess.db.clean"));
	int running = log_count("running: unit");
	assert_int_equal(ee_essd_spawn(&env), 0);
	st = tp_wait(&env.essd, 20000);
	if (st < 0)
		fail_msg("essd kept running on a damaged database");
	assert_int_equal(st, 1);
	assert_int_equal(log_count("running: unit"), running);
	assert_int_equal(log_count("is damaged; nothing more is written"), 2);
	assert_int_equal(log_count("the database is damaged: stopped"), 2);
	assert_false(store_file("ess.db.clean"));
	assert_int_equal(ee_essd_spawn(&env), 0);
	tp_wait(&env.essd, 20000);
	assert_int_equal(log_count("failed its integrity check; moved to"), 2);
	assert_true(aside_matches(hash));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_essd_integrity, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

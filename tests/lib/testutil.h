/* Helpers shared by the tests: temporary directories, a ready store, raw
 * file scans. Aborts on setup failures: a test that cannot set up fails. */
#ifndef ESS_TESTUTIL_H
#define ESS_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct hal_keystore;
struct loop;

/* mkdtemp under $TMPDIR (or /tmp); returns a malloc'd path. */
char *tu_tmpdir(const char *tag);
/* rm -rf of a directory made by tu_tmpdir. Frees path. Keeps copies first,
 * for the suite's log canary scan (tests/run.sh sets the directories):
 * every *.log and *.err file into $ESS_TEST_LOGDIR, every key file (kek, *.key) into
 * $ESS_TEST_SECRETDIR, named <tmpdir name>-<path inside it>. */
void tu_rmrf(char *path);

/* A store in dir with a file keystore at dir/kek (created if needed). */
struct tu_store {
	const char *dir; /* borrowed */
	char kek_path[512];
	struct hal_keystore *ks;
	struct store *s;
	int flags;
};
int tu_store_open(struct tu_store *t, const char *dir, int create);
void tu_store_close(struct tu_store *t); /* closes store and keystore, keeps files */

/* Reads a whole file into a malloc'd buffer; NULL if missing. */
unsigned char *tu_read_file(const char *path, size_t *len);
/* Number of occurrences of needle in the file (0 if missing). */
size_t tu_file_count(const char *path, const void *needle, size_t nlen);
/* SHA-256 of a file as hex (all zeros if missing). */
void tu_file_hash(const char *path, char hex[65]);
int64_t tu_now_ms(void);
/* Polls cond every 50 ms until it holds or ms have passed (the caller
 * asserts cond afterwards, so that a timeout fails with the condition). */
#define TU_WAIT_FOR(cond, ms)                                                                      \
	do {                                                                                       \
		int64_t until_ = tu_now_ms() + (ms);                                               \
		while (!(cond) && tu_now_ms() < until_)                                            \
			usleep(50000);                                                             \
	} while (0)
/* Runs the event loop l (agent/loop.h; the caller includes it and cmocka.h)
 * until cond holds or ms have passed, failing the test on a loop error; the
 * caller asserts cond afterwards, as with TU_WAIT_FOR. cond 0 runs it for ms. */
#define TU_RUN_UNTIL(l, cond, ms)                                                                  \
	do {                                                                                       \
		int64_t until_ = loop_now_ms() + (ms);                                             \
		while (!(cond) && loop_now_ms() < until_)                                          \
			assert_true(loop_run_once((l), 50) >= 0);                                  \
	} while (0)
/* Runs the event loop l for ms; unlike TU_RUN_UNTIL, a loop error is not
 * checked here (the hal tests check what the loop's callbacks did). */
void tu_run_for(struct loop *l, int ms);
/* A TCP port on 127.0.0.1 that was free a moment ago (for programs that
 * take a fixed port, like gpsd); aborts on failure. */
int tu_free_port(void);

#endif

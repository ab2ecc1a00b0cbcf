#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct captured {
	int n;
	enum log_level level[8];
	char line[8][1100];
};

static void sink(void *arg, enum log_level level, const char *line)
{
	struct captured *c = arg;
	if (c->n < 8) {
		c->level[c->n] = level;
		snprintf(c->line[c->n], sizeof(c->line[0]), "%s", line);
	}
	c->n++;
}

static void test_levels_and_errno(void **state)
{
	(void)state;
	struct captured c = {0};
	assert_int_equal(log_open("test", LOG_TARGET_STDERR, LOG_LEVEL_INFO), 0);
	log_set_sink(sink, &c);
	log_debug("hidden %d", 1);
	log_info("shown %d", 2);
	errno = ENOENT;
	log_warn("open %s", "/etc/ess/kek");
	assert_int_equal(errno, ENOENT); /* preserved for the caller */
	log_warnx("no errno");
	log_errx("bad");
	assert_int_equal(c.n, 4);
	assert_string_equal(c.line[0], "shown 2");
	assert_int_equal(c.level[0], LOG_LEVEL_INFO);
	assert_string_equal(c.line[1], "open /etc/ess/kek: No such file or directory");
	assert_int_equal(c.level[1], LOG_LEVEL_WARN);
	assert_string_equal(c.line[2], "no errno");
	assert_int_equal(c.level[3], LOG_LEVEL_ERR);
	log_set_level(LOG_LEVEL_ERR);
	log_warnx("filtered");
	assert_int_equal(c.n, 4);
	log_set_level(LOG_LEVEL_DEBUG);
	log_debug("now shown");
	assert_int_equal(c.n, 5);
	assert_int_equal(log_get_level(), LOG_LEVEL_DEBUG);
	log_set_sink(NULL, NULL);
}

static void test_long_lines_cut(void **state)
{
	(void)state;
	struct captured c = {0};
	log_set_level(LOG_LEVEL_INFO);
	log_set_sink(sink, &c);
	char big[4000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	log_info("%s", big);
	assert_int_equal(c.n, 1);
	assert_int_equal(strlen(c.line[0]), 1023);
	log_set_sink(NULL, NULL);
}

static void test_parse(void **state)
{
	(void)state;
	enum log_level l;
	assert_int_equal(log_level_parse("debug", &l), 0);
	assert_int_equal(l, LOG_LEVEL_DEBUG);
	assert_int_equal(log_level_parse("err", &l), 0);
	assert_int_equal(l, LOG_LEVEL_ERR);
	assert_int_equal(log_level_parse("verbose", &l), -EINVAL);
	assert_int_equal(log_level_parse("", &l), -EINVAL);
}

static void test_stderr_format(void **state)
{
	(void)state;
	/* One line per call on stderr: time, ident, pid, level, text. */
	char path[] = "/tmp/ess-log-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	int saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	log_open("essd", LOG_TARGET_STDERR, LOG_LEVEL_INFO);
	log_info("hello %s", "world");
	dup2(saved, STDERR_FILENO);
	close(saved);
	char buf[256] = {0};
	assert_true(pread(fd, buf, sizeof(buf) - 1, 0) > 0);
	close(fd);
	unlink(path);
	assert_non_null(strstr(buf, "Z essd["));
	assert_non_null(strstr(buf, "] info: hello world\n"));
	assert_int_equal(buf[4], '-');
}

static void test_journal_target(void **state)
{
	(void)state;
#ifdef HAVE_SYSTEMD
	assert_int_equal(log_open("t", LOG_TARGET_JOURNAL, LOG_LEVEL_INFO), 0);
#else
	assert_int_equal(log_open("t", LOG_TARGET_JOURNAL, LOG_LEVEL_INFO), -ENOTSUP);
#endif
	log_close();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_levels_and_errno),
	    cmocka_unit_test(test_long_lines_cut),
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_stderr_format),
	    cmocka_unit_test(test_journal_target),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

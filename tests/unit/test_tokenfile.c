/* The one-time token file is untrusted input on a boot partition anyone
 * with the SD card can write: bounded, validated, no symlink or FIFO
 * followed, the token never in a message, the file deleted only on request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/tokenfile.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char path[512];

static int setup(void **state)
{
	char *dir = tu_tmpdir("tokenfile");
	snprintf(path, sizeof(path), "%s/ess-token", dir);
	*state = dir;
	return 0;
}

static int teardown(void **state)
{
	tu_rmrf(*state);
	return 0;
}

static void put(const void *data, size_t len)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void test_good_tokens(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *token;
	} cases[] = {
	    {"t-5f0c9a", "t-5f0c9a"},
	    {"t-5f0c9a\n", "t-5f0c9a"},
	    {"t-5f0c9a\r\n", "t-5f0c9a"},
	    {"t-5f0c9a  \t\n# a comment line after it\n", "t-5f0c9a"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		put(cases[i].text, strlen(cases[i].text));
		char *tok = NULL, err[256] = "";
		assert_int_equal(tokenfile_read(path, &tok, err, sizeof(err)), 0);
		assert_string_equal(tok, cases[i].token);
		tokenfile_free(tok);
		assert_int_equal(access(path, F_OK), 0); /* reading never deletes */
	}
	/* the longest allowed */
	char t[TOKENFILE_TOKEN_MAX + 2];
	memset(t, 'k', TOKENFILE_TOKEN_MAX);
	t[TOKENFILE_TOKEN_MAX] = '\n';
	put(t, TOKENFILE_TOKEN_MAX + 1);
	char *tok = NULL;
	assert_int_equal(tokenfile_read(path, &tok, NULL, 0), 0);
	assert_int_equal(strlen(tok), TOKENFILE_TOKEN_MAX);
	tokenfile_free(tok);
	tokenfile_free(NULL);
}

static void test_bad_tokens(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		size_t len;
		const char *msg;
	} cases[] = {
	    {"", 0, "no token"},
	    {"\n", 1, "no token"},
	    {"   \n", 4, "no token"},
	    {"SECRET with-space\n", 18, "printable ASCII"},
	    {"SECRET\0tail\n", 12, "printable ASCII"},
	    {"SECRET\x7f\n", 8, "printable ASCII"},
	    {"SECRET\xe0\xb8\x81\n", 10, "printable ASCII"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		put(cases[i].text, cases[i].len);
		char *tok = (char *)1, err[256] = "";
		assert_int_equal(tokenfile_read(path, &tok, err, sizeof(err)), -EINVAL);
		assert_null(tok);
		assert_non_null(strstr(err, cases[i].msg));
		assert_null(strstr(err, "SECRET")); /* never the content */
		assert_non_null(strstr(err, path));
	}
	/* one byte too long */
	char t[TOKENFILE_TOKEN_MAX + 2];
	memset(t, 'k', sizeof(t));
	put(t, TOKENFILE_TOKEN_MAX + 1);
	char *tok = NULL, err[256];
	assert_int_equal(tokenfile_read(path, &tok, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too long"));
	/* a file far larger than any token file */
	char *big = malloc(TOKENFILE_MAX + 10);
	memset(big, 'k', TOKENFILE_MAX + 10);
	put(big, TOKENFILE_MAX + 10);
	free(big);
	assert_int_equal(tokenfile_read(path, &tok, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too large"));
}

static void test_not_a_file(void **state)
{
	char *tok = NULL, err[256], other[600];
	/* missing */
	unlink(path);
	assert_int_equal(tokenfile_read(path, &tok, err, sizeof(err)), -ENOENT);
	/* a symlink to a readable file is not followed */
	snprintf(other, sizeof(other), "%s/real", (char *)*state);
	FILE *f = fopen(other, "w");
	fputs("t-good\n", f);
	fclose(f);
	assert_int_equal(symlink(other, path), 0);
	assert_int_equal(tokenfile_read(path, &tok, err, sizeof(err)), -ELOOP);
	assert_null(tok);
	unlink(path);
	/* a FIFO does not block */
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(tokenfile_read(path, &tok, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	unlink(path);
	/* a directory */
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(tokenfile_read(path, &tok, err, sizeof(err)), -EINVAL);
	rmdir(path);
}

static void test_consume(void **state)
{
	(void)state;
	char err[256];
	put("t-1\n", 4);
	assert_int_equal(tokenfile_consume(path, err, sizeof(err)), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(tokenfile_consume(path, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "cannot delete"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_tokens),
	    cmocka_unit_test(test_bad_tokens),
	    cmocka_unit_test(test_not_a_file),
	    cmocka_unit_test(test_consume),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

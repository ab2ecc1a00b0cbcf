#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hal/keystore.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int setup(void **state)
{
	*state = tu_tmpdir("ks");
	return 0;
}

static int teardown(void **state)
{
	tu_rmrf(*state);
	return 0;
}

static void test_file_backend(void **state)
{
	char path[512], err[512];
	snprintf(path, sizeof(path), "%s/kek", (char *)*state);
	struct hal_keystore *ks;
	assert_true(sodium_init() >= 0);
	unsigned char *kek = sodium_malloc(HAL_KEK_BYTES), first[HAL_KEK_BYTES];
	assert_int_equal(hal_keystore_open("file", path, &ks, err, sizeof(err)), 0);
	assert_string_equal(hal_keystore_name(ks), "file");
	assert_int_equal(hal_keystore_load(ks, kek, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
	assert_int_equal(hal_keystore_create(ks, err, sizeof(err)), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(hal_keystore_load(ks, kek, err, sizeof(err)), 0);
	memcpy(first, kek, HAL_KEK_BYTES);
	/* never replaces an existing key */
	assert_int_equal(hal_keystore_create(ks, err, sizeof(err)), -EEXIST);
	assert_int_equal(hal_keystore_load(ks, kek, err, sizeof(err)), 0);
	assert_memory_equal(first, kek, HAL_KEK_BYTES);

	chmod(path, 0644);
	assert_int_equal(hal_keystore_load(ks, kek, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, path));
	chmod(path, 0620);
	assert_int_equal(hal_keystore_load(ks, kek, err, sizeof(err)), -EACCES);
	chmod(path, 0400);
	assert_int_equal(hal_keystore_load(ks, kek, err, sizeof(err)), 0);
	chmod(path, 0600);

	/* a symlink to the key is not followed */
	char link_path[600];
	snprintf(link_path, sizeof(link_path), "%s/link", (char *)*state);
	assert_int_equal(symlink(path, link_path), 0);
	struct hal_keystore *lks;
	assert_int_equal(hal_keystore_open("file", link_path, &lks, err, sizeof(err)), 0);
	assert_int_equal(hal_keystore_load(lks, kek, err, sizeof(err)), -EINVAL);
	hal_keystore_close(lks);

	assert_int_equal(hal_keystore_destroy(ks, err, sizeof(err)), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(hal_keystore_load(ks, kek, err, sizeof(err)), -ENOENT);
	hal_keystore_close(ks);
	sodium_free(kek);
}

static void test_wrong_size_and_directory(void **state)
{
	char path[512], err[512];
	snprintf(path, sizeof(path), "%s/short", (char *)*state);
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write(fd, "0123456789", 10), 10);
	close(fd);
	struct hal_keystore *ks;
	unsigned char kek[HAL_KEK_BYTES];
	assert_int_equal(hal_keystore_open("file", path, &ks, err, sizeof(err)), 0);
	assert_int_equal(hal_keystore_load(ks, kek, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "expected 32"));
	hal_keystore_close(ks);
	assert_int_equal(hal_keystore_open("file", *state, &ks, err, sizeof(err)), 0);
	assert_int_equal(hal_keystore_load(ks, kek, err, sizeof(err)), -EINVAL);
	hal_keystore_close(ks);
	assert_int_equal(hal_keystore_open("file", "relative/path", &ks, err, sizeof(err)),
	                 -EINVAL);
}

static void test_backends(void **state)
{
	(void)state;
	char err[256];
	struct hal_keystore *ks;
	unsigned char kek[HAL_KEK_BYTES];
	assert_int_equal(hal_keystore_open("tpm9", "/x", &ks, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "tpm9"));
	assert_int_equal(hal_keystore_open("none", NULL, &ks, err, sizeof(err)), 0);
	assert_int_equal(hal_keystore_load(ks, kek, err, sizeof(err)), -ENOKEY);
	assert_int_equal(hal_keystore_create(ks, err, sizeof(err)), -ENOTSUP);
	assert_int_equal(hal_keystore_destroy(ks, err, sizeof(err)), -ENOTSUP);
	hal_keystore_close(ks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_file_backend, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_size_and_directory, setup, teardown),
	    cmocka_unit_test(test_backends),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

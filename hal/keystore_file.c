/* The "file" keystore: the KEK is 32 random bytes in a file readable only by
 * its owner. A stolen device with this file still gives the data away; it
 * is the stand-in until a TPM backend seals the KEK to the hardware. */
#include "hal/keystore.h"
#include "hal/fsutil.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct file_ks {
	char path[PATH_MAX];
};

static int file_open(const char *locator, void **priv, char *err, size_t errlen)
{
	if (!locator || locator[0] != '/') {
		if (err)
			snprintf(err, errlen, "keystore file: key_file must be an absolute path");
		return -EINVAL;
	}
	struct file_ks *ks = calloc(1, sizeof(*ks));
	if (!ks)
		return -ENOMEM;
	if (snprintf(ks->path, sizeof(ks->path), "%s", locator) >= (int)sizeof(ks->path)) {
		free(ks);
		if (err)
			snprintf(err, errlen, "keystore file: path too long");
		return -ENAMETOOLONG;
	}
	*priv = ks;
	return 0;
}

static void file_close(void *priv)
{
	free(priv);
}

static int file_load(void *priv, unsigned char *kek, char *err, size_t errlen)
{
	struct file_ks *ks = priv;
	int rc = fsu_read_private(ks->path, kek, HAL_KEK_BYTES, err, errlen);
	if (rc < 0)
		sodium_memzero(kek, HAL_KEK_BYTES);
	return rc;
}

static int file_create(void *priv, char *err, size_t errlen)
{
	struct file_ks *ks = priv;
	unsigned char *kek = sodium_malloc(HAL_KEK_BYTES);
	if (!kek)
		return -ENOMEM;
	randombytes_buf(kek, HAL_KEK_BYTES);
	int rc = fsu_write_private(ks->path, kek, HAL_KEK_BYTES, 1, err, errlen);
	sodium_free(kek);
	return rc;
}

static int file_destroy(void *priv, char *err, size_t errlen)
{
	struct file_ks *ks = priv;
	return fsu_shred(ks->path, err, errlen);
}

const struct hal_keystore_ops hal_keystore_file_ops = {
    .name = "file",
    .desc = "key-encryption key in a 0600 file",
    .open = file_open,
    .close = file_close,
    .load = file_load,
    .create = file_create,
    .destroy = file_destroy,
};

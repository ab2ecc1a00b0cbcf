#include "hal/keystore.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hal_keystore {
	const struct hal_keystore_ops *ops;
	void *priv;
};

static const struct hal_keystore_ops *const backends[] = {
    &hal_keystore_file_ops,
    &hal_keystore_none_ops,
};

static int unsupported(const struct hal_keystore *ks, const char *what, char *err, size_t errlen)
{
	if (err)
		snprintf(err, errlen, "keystore %s cannot %s", ks->ops->name, what);
	return -ENOTSUP;
}

int hal_keystore_open(const char *name, const char *locator, struct hal_keystore **out, char *err,
                      size_t errlen)
{
	*out = NULL;
	if (sodium_init() < 0) /* backends keep keys in guarded memory */
		return -EIO;
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		if (strcmp(backends[i]->name, name) != 0)
			continue;
		struct hal_keystore *ks = calloc(1, sizeof(*ks));
		if (!ks)
			return -ENOMEM;
		ks->ops = backends[i];
		int rc = ks->ops->open(locator, &ks->priv, err, errlen);
		if (rc < 0) {
			free(ks);
			return rc;
		}
		*out = ks;
		return 0;
	}
	if (err)
		snprintf(err, errlen, "unknown keystore backend '%.32s'", name);
	return -ENOENT;
}

void hal_keystore_close(struct hal_keystore *ks)
{
	if (!ks)
		return;
	ks->ops->close(ks->priv);
	free(ks);
}

const char *hal_keystore_name(const struct hal_keystore *ks)
{
	return ks->ops->name;
}

int hal_keystore_load(struct hal_keystore *ks, unsigned char *kek, char *err, size_t errlen)
{
	if (!ks->ops->load)
		return unsupported(ks, "load a key", err, errlen);
	return ks->ops->load(ks->priv, kek, err, errlen);
}

int hal_keystore_create(struct hal_keystore *ks, char *err, size_t errlen)
{
	if (!ks->ops->create)
		return unsupported(ks, "create a key", err, errlen);
	return ks->ops->create(ks->priv, err, errlen);
}

int hal_keystore_destroy(struct hal_keystore *ks, char *err, size_t errlen)
{
	if (!ks->ops->destroy)
		return unsupported(ks, "destroy its key", err, errlen);
	return ks->ops->destroy(ks->priv, err, errlen);
}

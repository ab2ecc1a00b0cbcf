/* The "none" keystore: a device without any key storage. It holds no key,
 * so nothing can be stored encrypted and the store refuses to open. */
#include "hal/keystore.h"

#include <errno.h>
#include <stdio.h>

static int none_open(const char *locator, void **priv, char *err, size_t errlen)
{
	(void)locator;
	(void)err;
	(void)errlen;
	*priv = NULL;
	return 0;
}

static void none_close(void *priv)
{
	(void)priv;
}

static int none_load(void *priv, unsigned char *kek, char *err, size_t errlen)
{
	(void)priv;
	(void)kek;
	if (err)
		snprintf(err, errlen, "keystore none holds no key");
	return -ENOKEY;
}

const struct hal_keystore_ops hal_keystore_none_ops = {
    .name = "none",
    .desc = "no key storage: the encrypted store cannot be opened",
    .open = none_open,
    .close = none_close,
    .load = none_load,
};

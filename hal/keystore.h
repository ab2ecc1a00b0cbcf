/* Keystore: where the key-encryption key (KEK) comes from.
 *
 * The KEK wraps the store's data key and the device's signing key; it never
 * touches the database. Backends are ops tables (hostap's driver ops are the
 * model): "file" (a 0600 file, today), "none" (no keystore: everything
 * fails), and later a TPM 2.0 sealed object or a key derived from a PIN —
 * each only has to fill these ops.
 *
 * Errors are 0 or a negative errno; err (may be NULL) receives a message that
 * names the file or device, never key material. */
#ifndef ESS_HAL_KEYSTORE_H
#define ESS_HAL_KEYSTORE_H

#include <stddef.h>

#define HAL_KEK_BYTES 32

struct hal_keystore_ops {
	const char *name;
	const char *desc;
	/* locator: backend-specific (the file path for "file"). */
	int (*open)(const char *locator, void **priv, char *err, size_t errlen);
	void (*close)(void *priv);
	/* Fills kek (HAL_KEK_BYTES, guarded memory owned by the caller).
	 * -ENOENT: no KEK exists yet; -EACCES: unsafe permissions. */
	int (*load)(void *priv, unsigned char *kek, char *err, size_t errlen);
	/* Makes a new KEK; -EEXIST if one exists. NULL: cannot be created here. */
	int (*create)(void *priv, char *err, size_t errlen);
	/* Destroys the KEK beyond recovery (crypto-shred). NULL: unsupported. */
	int (*destroy)(void *priv, char *err, size_t errlen);
};

struct hal_keystore;

/* Opens backend `name` ("file", "none"). -ENOENT for an unknown backend. */
int hal_keystore_open(const char *name, const char *locator, struct hal_keystore **out, char *err,
                      size_t errlen);
void hal_keystore_close(struct hal_keystore *ks);
const char *hal_keystore_name(const struct hal_keystore *ks);
int hal_keystore_load(struct hal_keystore *ks, unsigned char *kek, char *err, size_t errlen);
int hal_keystore_create(struct hal_keystore *ks, char *err, size_t errlen);
int hal_keystore_destroy(struct hal_keystore *ks, char *err, size_t errlen);

extern const struct hal_keystore_ops hal_keystore_file_ops;
extern const struct hal_keystore_ops hal_keystore_none_ops;

#endif

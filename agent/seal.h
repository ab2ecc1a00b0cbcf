/* Sealing: XChaCha20-Poly1305 with associated data, for every personal,
 * free-text or location value the store keeps.
 *
 * The associated data names where a ciphertext lives (table, row key,
 * column), so a ciphertext moved to another row or column fails to open.
 *
 * A sealed value is nonce (24) || ciphertext || tag (16). The nonce is a
 * random 16-byte prefix drawn once per seal context plus a 64-bit counter:
 * unique without a system call per value (libsodium 1.0.18's randombytes
 * costs one), and XChaCha's 192-bit nonce makes random prefixes safe. */
#ifndef ESS_SEAL_H
#define ESS_SEAL_H

#include <stddef.h>
#include <stdint.h>

#define SEAL_KEY_BYTES   32
#define SEAL_NONCE_BYTES 24
#define SEAL_TAG_BYTES   16
#define SEAL_OVERHEAD    (SEAL_NONCE_BYTES + SEAL_TAG_BYTES)

struct seal;

/* Copies key into guarded memory. Returns 0, -ENOMEM. */
int seal_open(const unsigned char key[SEAL_KEY_BYTES], struct seal **out);
/* Wipes and frees; NULL is fine. */
void seal_close(struct seal *s);

/* out must hold len + SEAL_OVERHEAD bytes. Returns 0 or -EOVERFLOW. */
int seal_encrypt(struct seal *s, const void *ad, size_t adlen, const void *in, size_t len,
                 unsigned char *out);
/* out must hold len - SEAL_OVERHEAD bytes. Returns 0, -EBADMSG when the
 * value was altered, moved or sealed with another key, -EINVAL if too short. */
int seal_decrypt(struct seal *s, const void *ad, size_t adlen, const unsigned char *in, size_t len,
                 unsigned char *out);

/* Associated data "ess1\0<table>\0<row>\0<column>", written to buf.
 * Returns its length, or 0 if it does not fit. */
size_t seal_ad(char *buf, size_t cap, const char *table, const char *row, const char *column);

/* Cryptographically random bytes from a buffered pool (one system call per
 * 4 KiB instead of one per call). */
void seal_random(struct seal *s, void *buf, size_t len);

/* Wraps and unwraps small secrets (keys) under a key-encryption key with the
 * same format; a fresh random nonce each time. */
int seal_wrap(const unsigned char kek[SEAL_KEY_BYTES], const char *label, const void *in,
              size_t len, unsigned char *out);
int seal_unwrap(const unsigned char kek[SEAL_KEY_BYTES], const char *label, const unsigned char *in,
                size_t len, unsigned char *out);

#endif

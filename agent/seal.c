#include "agent/seal.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define POOL_BYTES 4096

struct seal {
	unsigned char key[SEAL_KEY_BYTES];
	/* XChaCha20's subkey depends only on the first 16 nonce bytes, which
	 * stay fixed for this context: derived once, not per value. */
	unsigned char subkey[SEAL_KEY_BYTES];
	unsigned char prefix[SEAL_NONCE_BYTES - 8];
	uint64_t counter;
	size_t pool_used;
	unsigned char pool[POOL_BYTES];
};

static void new_prefix(struct seal *s)
{
	randombytes_buf(s->prefix, sizeof(s->prefix));
	crypto_core_hchacha20(s->subkey, s->prefix, s->key, NULL);
	s->counter = 0;
}

int seal_open(const unsigned char key[SEAL_KEY_BYTES], struct seal **out)
{
	*out = NULL;
	if (sodium_init() < 0)
		return -EIO;
	struct seal *s = sodium_malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	memcpy(s->key, key, SEAL_KEY_BYTES);
	new_prefix(s);
	s->pool_used = POOL_BYTES;
	*out = s;
	return 0;
}

void seal_close(struct seal *s)
{
	if (s)
		sodium_free(s); /* zeroes before unmapping */
}

int seal_encrypt(struct seal *s, const void *ad, size_t adlen, const void *in, size_t len,
                 unsigned char *out)
{
	if (len > SIZE_MAX - SEAL_OVERHEAD)
		return -EOVERFLOW;
	if (s->counter == UINT64_MAX) /* never reached in practice; stay unique anyway */
		new_prefix(s);
	uint64_t c = ++s->counter;
	/* Exactly XChaCha20-Poly1305 (libsodium's decrypt opens it): the IETF
	 * construction under the cached subkey with nonce 0^4 || counter. */
	unsigned char ietf_nonce[12] = {0};
	memcpy(out, s->prefix, sizeof(s->prefix));
	for (int i = 0; i < 8; i++) {
		out[sizeof(s->prefix) + i] = (unsigned char)(c >> (8 * i));
		ietf_nonce[4 + i] = (unsigned char)(c >> (8 * i));
	}
	crypto_aead_chacha20poly1305_ietf_encrypt(out + SEAL_NONCE_BYTES, NULL, in, len, ad, adlen,
	                                          NULL, ietf_nonce, s->subkey);
	return 0;
}

int seal_decrypt(struct seal *s, const void *ad, size_t adlen, const unsigned char *in, size_t len,
                 unsigned char *out)
{
	if (len < SEAL_OVERHEAD)
		return -EINVAL;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, in + SEAL_NONCE_BYTES,
	                                               len - SEAL_NONCE_BYTES, ad, adlen, in,
	                                               s->key) != 0)
		return -EBADMSG;
	return 0;
}

size_t seal_ad(char *buf, size_t cap, const char *table, const char *row, const char *column)
{
	/* On every seal and open: memcpy, not snprintf. NUL separators keep the
	 * fields from sliding into each other. */
	size_t lt = strlen(table), lr = strlen(row), lc = strlen(column);
	size_t n = 4 + 1 + lt + 1 + lr + 1 + lc;
	if (n >= cap)
		return 0;
	char *p = buf;
	memcpy(p, "ess1", 5);
	p += 5;
	memcpy(p, table, lt + 1);
	p += lt + 1;
	memcpy(p, row, lr + 1);
	p += lr + 1;
	memcpy(p, column, lc + 1);
	return n;
}

void seal_random(struct seal *s, void *buf, size_t len)
{
	unsigned char *p = buf;
	while (len > 0) {
		if (s->pool_used == POOL_BYTES) {
			randombytes_buf(s->pool, POOL_BYTES);
			s->pool_used = 0;
		}
		size_t n = POOL_BYTES - s->pool_used;
		if (n > len)
			n = len;
		memcpy(p, s->pool + s->pool_used, n);
		/* Bytes handed out must never be handed out again. */
		sodium_memzero(s->pool + s->pool_used, n);
		s->pool_used += n;
		p += n;
		len -= n;
	}
}

int seal_wrap(const unsigned char kek[SEAL_KEY_BYTES], const char *label, const void *in,
              size_t len, unsigned char *out)
{
	randombytes_buf(out, SEAL_NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + SEAL_NONCE_BYTES, NULL, in, len,
	                                           (const unsigned char *)label, strlen(label),
	                                           NULL, out, kek);
	return 0;
}

int seal_unwrap(const unsigned char kek[SEAL_KEY_BYTES], const char *label, const unsigned char *in,
                size_t len, unsigned char *out)
{
	if (len < SEAL_OVERHEAD)
		return -EINVAL;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
	        out, NULL, NULL, in + SEAL_NONCE_BYTES, len - SEAL_NONCE_BYTES,
	        (const unsigned char *)label, strlen(label), in, kek) != 0)
		return -EBADMSG;
	return 0;
}

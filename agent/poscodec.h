/* Compact encoding of a run of GPS fixes, sealed as one chunk by the store.
 *
 * The first fix is absolute, the next ones are zig-zag varint deltas
 * against their predecessor: a 1 Hz fix of a moving car costs about ten
 * bytes instead of 23. Pure functions, no allocation: fuzzed directly. */
#ifndef ESS_POSCODEC_H
#define ESS_POSCODEC_H

#include <stddef.h>

struct store_fix;

#define POSCODEC_VERSION 1
/* Worst case per fix: seven varints of at most 10 bytes. */
#define POSCODEC_MAX_FIX_BYTES 70
#define POSCODEC_BOUND(n)      (2 + 10 + (size_t)(n)*POSCODEC_MAX_FIX_BYTES)

/* Returns the encoded length, or 0 if out (of cap bytes) is too small. */
size_t poscodec_encode(const struct store_fix *fixes, size_t n, unsigned char *out, size_t cap);

/* Decodes up to cap fixes. Returns the number decoded, or -EINVAL for data
 * that is malformed, out of range, not in time order or longer than cap. */
long poscodec_decode(const unsigned char *in, size_t len, struct store_fix *fixes, size_t cap);

/* 0 if the fix is within the ranges the contract allows, -EINVAL if not. */
int poscodec_fix_valid(const struct store_fix *f);

#endif

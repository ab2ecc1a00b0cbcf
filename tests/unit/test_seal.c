#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/seal.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

static void test_round_trip_and_binding(void **state)
{
	(void)state;
	unsigned char key[32];
	randombytes_buf(key, sizeof(key));
	struct seal *s;
	assert_int_equal(seal_open(key, &s), 0);
	char ad1[64], ad2[64];
	size_t l1 = seal_ad(ad1, sizeof(ad1), "incidents", "a@1", "doc");
	size_t l2 = seal_ad(ad2, sizeof(ad2), "incidents", "b@1", "doc");
	assert_true(l1 > 0 && l2 > 0);
	const char msg[] = "สวัสดี secret";
	unsigned char ct[sizeof(msg) + SEAL_OVERHEAD], pt[sizeof(msg)];
	assert_int_equal(seal_encrypt(s, ad1, l1, msg, sizeof(msg), ct), 0);
	assert_int_equal(seal_decrypt(s, ad1, l1, ct, sizeof(ct), pt), 0);
	assert_memory_equal(pt, msg, sizeof(msg));
	/* another row, another column, a flipped bit, too short: all refused */
	assert_int_equal(seal_decrypt(s, ad2, l2, ct, sizeof(ct), pt), -EBADMSG);
	size_t l3 = seal_ad(ad2, sizeof(ad2), "incidents", "a@1", "doc2");
	assert_int_equal(seal_decrypt(s, ad2, l3, ct, sizeof(ct), pt), -EBADMSG);
	ct[SEAL_NONCE_BYTES + 3] ^= 1;
	assert_int_equal(seal_decrypt(s, ad1, l1, ct, sizeof(ct), pt), -EBADMSG);
	assert_int_equal(seal_decrypt(s, ad1, l1, ct, SEAL_OVERHEAD - 1, pt), -EINVAL);
	/* AD fields cannot be shifted into each other: "a","bc" != "ab","c" */
	size_t x = seal_ad(ad1, sizeof(ad1), "a", "bc", "d");
	size_t y = seal_ad(ad2, sizeof(ad2), "ab", "c", "d");
	assert_int_equal(x, y);
	assert_memory_not_equal(ad1, ad2, x);
	assert_int_equal(seal_ad(ad1, 8, "incidents", "a", "b"), 0);
	seal_close(s);
}

static void test_nonces_unique_and_other_key_fails(void **state)
{
	(void)state;
	unsigned char key[32], key2[32];
	randombytes_buf(key, sizeof(key));
	randombytes_buf(key2, sizeof(key2));
	struct seal *s, *s2;
	assert_int_equal(seal_open(key, &s), 0);
	assert_int_equal(seal_open(key2, &s2), 0);
	unsigned char a[SEAL_OVERHEAD + 1], b[SEAL_OVERHEAD + 1], pt[1];
	assert_int_equal(seal_encrypt(s, "x", 1, "m", 1, a), 0);
	assert_int_equal(seal_encrypt(s, "x", 1, "m", 1, b), 0);
	assert_memory_not_equal(a, b, SEAL_NONCE_BYTES);
	assert_memory_not_equal(a, b, sizeof(a)); /* same message, different ciphertext */
	assert_int_equal(seal_decrypt(s2, "x", 1, a, sizeof(a), pt), -EBADMSG);
	/* a second context with the same key draws another prefix */
	struct seal *s3;
	assert_int_equal(seal_open(key, &s3), 0);
	unsigned char c[SEAL_OVERHEAD + 1];
	assert_int_equal(seal_encrypt(s3, "x", 1, "m", 1, c), 0);
	assert_memory_not_equal(a, c, 16);
	assert_int_equal(seal_decrypt(s3, "x", 1, a, sizeof(a), pt), 0);
	seal_close(s);
	seal_close(s2);
	seal_close(s3);
}

static void test_standard_xchacha20poly1305(void **state)
{
	(void)state;
	/* What seal_encrypt writes is plain XChaCha20-Poly1305: any libsodium
	 * (or other implementation) opens it with the key alone. */
	unsigned char key[32];
	randombytes_buf(key, sizeof(key));
	struct seal *s;
	assert_int_equal(seal_open(key, &s), 0);
	for (int i = 0; i < 3; i++) {
		const char msg[] = "ข้อความทดสอบ test message";
		unsigned char ct[sizeof(msg) + SEAL_OVERHEAD], pt[sizeof(msg)];
		unsigned long long ptlen;
		assert_int_equal(seal_encrypt(s, "ad", 2, msg, sizeof(msg), ct), 0);
		assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(
		                     pt, &ptlen, NULL, ct + SEAL_NONCE_BYTES,
		                     sizeof(ct) - SEAL_NONCE_BYTES, (const unsigned char *)"ad", 2,
		                     ct, key),
		                 0);
		assert_int_equal(ptlen, sizeof(msg));
		assert_memory_equal(pt, msg, sizeof(msg));
	}
	seal_close(s);
}

static void test_random_pool(void **state)
{
	(void)state;
	unsigned char key[32] = {0};
	struct seal *s;
	assert_int_equal(seal_open(key, &s), 0);
	unsigned char a[16], b[16], big[10000];
	seal_random(s, a, sizeof(a));
	seal_random(s, b, sizeof(b));
	assert_memory_not_equal(a, b, sizeof(a));
	seal_random(s, big, sizeof(big)); /* spans refills */
	size_t zeros = 0;
	for (size_t i = 0; i < sizeof(big); i++)
		zeros += big[i] == 0;
	assert_true(zeros < 200); /* ~39 expected */
	seal_close(s);
}

static void test_wrap(void **state)
{
	(void)state;
	unsigned char kek[32], k2[32], secret[32], out[32], w[32 + SEAL_OVERHEAD];
	randombytes_buf(kek, 32);
	randombytes_buf(k2, 32);
	randombytes_buf(secret, 32);
	assert_int_equal(seal_wrap(kek, "label", secret, 32, w), 0);
	assert_int_equal(seal_unwrap(kek, "label", w, sizeof(w), out), 0);
	assert_memory_equal(out, secret, 32);
	assert_int_equal(seal_unwrap(kek, "other", w, sizeof(w), out), -EBADMSG);
	assert_int_equal(seal_unwrap(k2, "label", w, sizeof(w), out), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_and_binding),
	    cmocka_unit_test(test_nonces_unique_and_other_key_fails),
	    cmocka_unit_test(test_standard_xchacha20poly1305),
	    cmocka_unit_test(test_random_pool),
	    cmocka_unit_test(test_wrap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

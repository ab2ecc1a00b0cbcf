#include "agent/poscodec.h"
#include "agent/store.h"

#include <errno.h>
#include <stdint.h>

static size_t put_uvarint(unsigned char *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (unsigned char)v;
	return n;
}

static int get_uvarint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
	uint64_t r = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*p >= end)
			return -EINVAL;
		unsigned char b = *(*p)++;
		/* Only the shortest form: one value, one encoding. */
		if ((shift > 0 && b == 0) || (shift == 63 && b > 1))
			return -EINVAL;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -EINVAL;
}

static uint64_t zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t v)
{
	return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

int poscodec_fix_valid(const struct store_fix *f)
{
	if (f->t_ms <= 0 || f->t_ms > INT64_C(253402300799999)) /* year 9999 */
		return -EINVAL;
	if (f->lat_e7 < -900000000 || f->lat_e7 > 900000000)
		return -EINVAL;
	if (f->lon_e7 < -1800000000 || f->lon_e7 > 1800000000)
		return -EINVAL;
	if (f->accuracy_dm < -1 || f->speed_cm_s < -1)
		return -EINVAL;
	if (f->heading_cdeg < -1 || f->heading_cdeg > 35999)
		return -EINVAL;
	if (f->mode != 2 && f->mode != 3)
		return -EINVAL;
	return 0;
}

size_t poscodec_encode(const struct store_fix *fixes, size_t n, unsigned char *out, size_t cap)
{
	if (cap < POSCODEC_BOUND(n))
		return 0;
	unsigned char *p = out;
	*p++ = POSCODEC_VERSION;
	p += put_uvarint(p, n);
	struct store_fix prev = {0};
	for (size_t i = 0; i < n; i++) {
		const struct store_fix *f = &fixes[i];
		/* The time step carries the fix mode in its low bit: modes rarely
		 * change and the step is usually 1000 ms, two bytes either way. */
		uint64_t dt = (uint64_t)(f->t_ms - prev.t_ms);
		p += put_uvarint(p, (dt << 1) | (f->mode == 3));
		p += put_uvarint(p, zigzag((int64_t)f->lat_e7 - prev.lat_e7));
		p += put_uvarint(p, zigzag((int64_t)f->lon_e7 - prev.lon_e7));
		p += put_uvarint(p, zigzag((int64_t)f->accuracy_dm - prev.accuracy_dm));
		p += put_uvarint(p, zigzag((int64_t)f->speed_cm_s - prev.speed_cm_s));
		p += put_uvarint(p, zigzag((int64_t)f->heading_cdeg - prev.heading_cdeg));
		prev = *f;
	}
	return (size_t)(p - out);
}

static int add_delta(const unsigned char **p, const unsigned char *end, int32_t prev, int32_t *out)
{
	uint64_t v;
	if (get_uvarint(p, end, &v) < 0)
		return -EINVAL;
	int64_t d = unzigzag(v);
	/* Any real step between two int32 values is within ±2^32: a larger
	 * one is damage, and must not overflow the sum below. */
	if (d < -(INT64_C(1) << 33) || d > (INT64_C(1) << 33))
		return -EINVAL;
	int64_t r = (int64_t)prev + d;
	if (r < INT32_MIN || r > INT32_MAX)
		return -EINVAL;
	*out = (int32_t)r;
	return 0;
}

long poscodec_decode(const unsigned char *in, size_t len, struct store_fix *fixes, size_t cap)
{
	const unsigned char *p = in, *end = in + len;
	uint64_t n, v;
	if (len < 2 || *p++ != POSCODEC_VERSION)
		return -EINVAL;
	if (get_uvarint(&p, end, &n) < 0 || n > cap)
		return -EINVAL;
	struct store_fix prev = {0};
	for (uint64_t i = 0; i < n; i++) {
		struct store_fix f;
		if (get_uvarint(&p, end, &v) < 0 ||
		    (v >> 1) > (uint64_t)INT64_MAX - (uint64_t)prev.t_ms)
			return -EINVAL;
		f.t_ms = prev.t_ms + (int64_t)(v >> 1);
		f.mode = (v & 1) ? 3 : 2;
		if (add_delta(&p, end, prev.lat_e7, &f.lat_e7) < 0 ||
		    add_delta(&p, end, prev.lon_e7, &f.lon_e7) < 0 ||
		    add_delta(&p, end, prev.accuracy_dm, &f.accuracy_dm) < 0 ||
		    add_delta(&p, end, prev.speed_cm_s, &f.speed_cm_s) < 0 ||
		    add_delta(&p, end, prev.heading_cdeg, &f.heading_cdeg) < 0)
			return -EINVAL;
		if (poscodec_fix_valid(&f) < 0 || (i > 0 && f.t_ms <= prev.t_ms))
			return -EINVAL;
		fixes[i] = f;
		prev = f;
	}
	if (p != end)
		return -EINVAL;
	return (long)n;
}

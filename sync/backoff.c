#include "sync/backoff.h"

void backoff_init(struct backoff *b, int64_t base_ms, int64_t cap_ms)
{
	b->base_ms = base_ms > 0 ? base_ms : 1;
	b->cap_ms = cap_ms >= b->base_ms ? cap_ms : b->base_ms;
	b->attempts = 0;
}

int64_t backoff_ceiling(const struct backoff *b)
{
	int64_t c = b->base_ms;
	for (unsigned i = 0; i < b->attempts && c < b->cap_ms; i++)
		c *= 2;
	return c < b->cap_ms ? c : b->cap_ms;
}

int64_t backoff_next(struct backoff *b, uint32_t rnd)
{
	int64_t ceiling = backoff_ceiling(b);
	if (b->attempts < 64)
		b->attempts++;
	/* (ceiling + 1) * rnd / 2^32: uniform in [0, ceiling], no modulo bias
	 * worth the name at these sizes, no overflow below 2^31 s. */
	return (int64_t)(((uint64_t)(ceiling + 1) * rnd) >> 32);
}

void backoff_reset(struct backoff *b)
{
	b->attempts = 0;
}

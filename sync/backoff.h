/* Retry delays: exponential backoff with full jitter (the delay is uniform
 * between 0 and min(cap, base * 2^attempts)), reset by a success. A plain
 * value type: embed it, no allocation. */
#ifndef ESS_SYNC_BACKOFF_H
#define ESS_SYNC_BACKOFF_H

#include <stdint.h>

struct backoff {
	int64_t base_ms;
	int64_t cap_ms;
	unsigned attempts; /* failures since the last success */
};

/* base_ms >= 1, cap_ms >= base_ms. */
void backoff_init(struct backoff *b, int64_t base_ms, int64_t cap_ms);
/* The ceiling for the next delay: min(cap, base * 2^attempts). */
int64_t backoff_ceiling(const struct backoff *b);
/* Records a failure and returns the delay before the next try, in
 * [0, ceiling] as it was before this failure; rnd is a uniform random
 * 32-bit value (randombytes_random() in the agent, fixed in tests). */
int64_t backoff_next(struct backoff *b, uint32_t rnd);
void backoff_reset(struct backoff *b);

#endif

#include "tests/lib/link_model.h"

void link_model_init(struct link_model *m, uint64_t seed)
{
	*m = (struct link_model){0};
	m->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
}

void link_model_set(struct link_model *m, int64_t one_way_us, int64_t jitter_us, uint32_t rate_kbit)
{
	m->one_way_us = one_way_us > 0 ? one_way_us : 0;
	m->jitter_us = jitter_us > 0 ? jitter_us : 0;
	m->rate_kbit = rate_kbit;
}

static uint64_t next_rand(struct link_model *m)
{
	uint64_t x = m->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	m->rng = x;
	return x * 0x2545f4914f6cdd1dULL;
}

int64_t link_model_tx_us(const struct link_model *m, size_t n)
{
	if (!m->rate_kbit)
		return 0;
	/* bits / (kbit/s) = ms; times 1000 for µs */
	return (int64_t)((uint64_t)n * 8000u / m->rate_kbit);
}

int64_t link_model_schedule(struct link_model *m, int64_t now_us, size_t n, int64_t *last_release)
{
	int64_t start = now_us > m->busy_until ? now_us : m->busy_until;
	int64_t done = start + link_model_tx_us(m, n);
	if (n)
		m->busy_until = done;
	int64_t delay = m->one_way_us;
	if (m->jitter_us) {
		uint64_t span = 2 * (uint64_t)m->jitter_us + 1;
		delay += (int64_t)(next_rand(m) % span) - m->jitter_us;
		if (delay < 0)
			delay = 0;
	}
	int64_t release = done + delay;
	if (release < *last_release)
		release = *last_release;
	*last_release = release;
	return release;
}

void link_model_shift(struct link_model *m, int64_t by_us)
{
	m->busy_until += by_us;
}

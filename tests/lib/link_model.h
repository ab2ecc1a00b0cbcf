/* The timing model of the link-emulating proxy (tests/tools/linkproxy.c):
 * when a chunk of bytes that entered one direction of the emulated link
 * comes out at the other end. Pure arithmetic, no I/O; times are monotonic
 * microseconds supplied by the caller.
 *
 * One struct link_model per direction (up: client to server, down: server
 * to client), shared by every connection, like a device's one radio:
 *   - serialisation: the link sends one chunk at a time at rate_kbit
 *     (1 kbit = 1000 bits); a chunk of n bytes occupies it n*8/rate ms, so
 *     throughput converges to the rate. 0 means unlimited.
 *   - propagation: then one_way_us, plus a uniform jitter in
 *     [-jitter_us, +jitter_us] (the sum never below 0).
 *   - order: a chunk never leaves before the previous chunk of the same
 *     connection (TCP is in order), so jitter stretches gaps, never
 *     reorders. Each connection keeps its own *last_release for this. */
#ifndef ESS_LINK_MODEL_H
#define ESS_LINK_MODEL_H

#include <stddef.h>
#include <stdint.h>

struct link_model {
	int64_t one_way_us;
	int64_t jitter_us;
	uint32_t rate_kbit; /* 0: unlimited */
	int64_t busy_until; /* the serialiser is busy until then */
	uint64_t rng;       /* xorshift64* state, never 0 */
};

/* Zero delay, no jitter, unlimited rate; seed 0 is replaced by a constant. */
void link_model_init(struct link_model *m, uint64_t seed);
/* New parameters apply to chunks scheduled from now on. */
void link_model_set(struct link_model *m, int64_t one_way_us, int64_t jitter_us,
                    uint32_t rate_kbit);

/* Schedules n bytes (0: a FIN, which takes no link time) entering the link
 * at now_us. Returns the time they leave it, >= *last_release, and stores
 * it in *last_release. */
int64_t link_model_schedule(struct link_model *m, int64_t now_us, size_t n, int64_t *last_release);

/* The time n bytes occupy the link at the current rate (0 if unlimited). */
int64_t link_model_tx_us(const struct link_model *m, size_t n);

/* Moves the link's clock forward by by_us (a blackout froze it). */
void link_model_shift(struct link_model *m, int64_t by_us);

#endif

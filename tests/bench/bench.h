/* Helpers shared by the benchmark programs (header-only: each bench_*.c is
 * its own program, linked with libess.a and tests/lib only).
 *
 * Output contract (tests/bench/run.sh just prints it):
 *   figure <name> <value> <unit> target <op> <value> met|missed
 * one line per figure; every other line starts with "# ". Figures are
 * never pass/fail: a program exits 0 when it could measure, whatever the
 * figures say. */
#ifndef ESS_BENCH_H
#define ESS_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/lib/testutil.h"

/* Rounds per timed figure, alternating baseline and subject; the figure is
 * the median of the per-round ratios. */
#define BENCH_ROUNDS 5

static inline int64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The program's temporary directory (from tu_tmpdir), removed on failure. */
static char *bench_tmp;

static inline void bench_die(const char *what, long rc)
{
	printf("# bench: %s failed (%ld); no further figure from this program\n", what, rc);
	fflush(stdout);
	if (bench_tmp)
		tu_rmrf(bench_tmp);
	exit(1);
}

/* Prints one figure line. op is "<=" or ">=". */
static inline void bench_figure(const char *name, double value, int decimals, const char *unit,
                                const char *op, double target)
{
	int met = op[0] == '<' ? value <= target : value >= target;
	printf("figure %s %.*f %s target %s %g %s\n", name, decimals, value, unit, op, target,
	       met ? "met" : "missed");
	fflush(stdout);
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Sorts v in place; nearest-rank percentile p (0..100). */
static inline double bench_percentile(double *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), bench_cmp_double);
	size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

static inline double bench_median(const double *v, size_t n)
{
	double tmp[64];
	if (n > 64)
		n = 64;
	memcpy(tmp, v, n * sizeof(*v));
	qsort(tmp, n, sizeof(*tmp), bench_cmp_double);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

/* A small deterministic generator (splitmix64): the same data every run. */
struct bench_rng {
	uint64_t s;
};

static inline uint64_t bench_rng_u64(struct bench_rng *r)
{
	uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double bench_rng_unit(struct bench_rng *r)
{
	return (double)(bench_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

static inline uint32_t bench_rng_below(struct bench_rng *r, uint32_t n)
{
	return (uint32_t)(bench_rng_unit(r) * n);
}

/* Approximately standard normal (Irwin-Hall: sum of 12 uniforms - 6); good
 * enough for GPS noise and needs no libm. */
static inline double bench_rng_gauss(struct bench_rng *r)
{
	double sum = 0;
	for (int i = 0; i < 12; i++)
		sum += bench_rng_unit(r);
	return sum - 6;
}

/* RssAnon of this process in KiB, -1 if unknown. */
static inline long bench_rss_anon_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

#endif

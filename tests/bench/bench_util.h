/*
 * bench_util.h: what the in-process benchmarks (bench_*.c) share: a fast
 * seeded random number generator, so that every run draws the same
 * workload, and a monotonic clock in seconds.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdint.h>
#include <time.h>

/* xorshift64; the same sequence in every run. */
static uint64_t bench_rng_state = 0x9e3779b97f4a7c15ull;

static inline uint32_t
bench_rng(void)
{
	bench_rng_state ^= bench_rng_state << 13;
	bench_rng_state ^= bench_rng_state >> 7;
	bench_rng_state ^= bench_rng_state << 17;
	return (uint32_t)(bench_rng_state >> 16);
}

/* CLOCK_MONOTONIC in seconds. */
static inline double
bench_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif

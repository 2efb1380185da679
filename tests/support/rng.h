/*
 * rng.h: seeded pseudo-random generators for tests and benchmarks.
 *
 * The same seed gives the same sequence on every run and every machine, so a
 * failing test can be replayed and every bench run draws the same workload.
 * They are fast and statistically fair, and no good for anything that must be
 * unpredictable. The state is the caller's own uint64_t, seeded with any
 * value but 0 (which would stay 0). Header only, so that the load tools,
 * which link no project object, use them too.
 */
#ifndef TESTS_SUPPORT_RNG_H
#define TESTS_SUPPORT_RNG_H

#include <stdint.h>

/* xorshift64 (shifts 13, 7, 17): 32 bits taken from the middle of the
 * state. The generator of the engine tests and the in-process benches. */
static inline uint32_t
xorshift64_next(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return (uint32_t)(*state >> 16);
}

/* xorshift64* (shifts 12, 25, 27, then a multiply): 64 bits, the high ones
 * the best. The generator of the file-making benches and the load tools. */
static inline uint64_t
xorshift64star_next(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 0x2545f4914f6cdd1dull;
}

#endif

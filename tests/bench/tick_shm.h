/*
 * tick_shm.h: what tickgen has sent, shared with subload through a file
 * both map (MAP_SHARED), so the load client can judge a client's value
 * against the source, not against other clients.
 *
 * Per symbol: how many ticks have been sent (count; the k-th tick of a
 * symbol is seq k on a server that started empty and applied every tick)
 * and the send times of the last TICK_SHM_RING of them (tick k at
 * ts[(k - 1) % TICK_SHM_RING]). tickgen writes a tick's time, then bumps
 * the count with a release store; subload loads the count with acquire, so
 * every time below it is written. A time subload reads can be overwritten
 * meanwhile only once it is TICK_SHM_RING ticks old: a value that stale is
 * reported as at least that old.
 */
#ifndef BENCH_TICK_SHM_H
#define BENCH_TICK_SHM_H

#include <stddef.h>
#include <stdint.h>

#define TICK_SHM_MAGIC 0x54475348u /* "TGSH" */
#define TICK_SHM_RING  64

struct tick_shm_symbol {
	uint64_t count;
	int64_t ts[TICK_SHM_RING];
};

struct tick_shm {
	uint32_t magic;
	uint32_t symbols;
	int64_t done_us; /* CLOCK_REALTIME when tickgen stopped; 0 before */
	struct tick_shm_symbol sym[];
};

static inline size_t
tick_shm_size(uint32_t symbols)
{
	return sizeof(struct tick_shm) +
	       (size_t)symbols * sizeof(struct tick_shm_symbol);
}

/* tickgen: one more tick of symbol s, sent at ts. */
static inline void
tick_shm_record(struct tick_shm *shm, uint32_t s, int64_t ts)
{
	struct tick_shm_symbol *y = &shm->sym[s];
	uint64_t k = y->count;

	y->ts[k % TICK_SHM_RING] = ts;
	__atomic_store_n(&y->count, k + 1, __ATOMIC_RELEASE);
}

static inline uint64_t
tick_shm_count(const struct tick_shm *shm, uint32_t s)
{
	return __atomic_load_n(&shm->sym[s].count, __ATOMIC_ACQUIRE);
}

/* Send time of the k-th tick (1-based) of s; 0 when it left the ring. */
static inline int64_t
tick_shm_ts(const struct tick_shm *shm, uint32_t s, uint64_t k, uint64_t count)
{
	if (k == 0 || k > count || count - k >= TICK_SHM_RING)
		return 0;
	return shm->sym[s].ts[(k - 1) % TICK_SHM_RING];
}

#endif

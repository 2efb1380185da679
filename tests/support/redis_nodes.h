/*
 * redis_nodes.h: the two ends of the Redis link as the server runs them,
 * without the server, for the link's unit test and its benchmark.
 *
 * An ingest is a serving engine, which assigns the seqs, and a
 * redis_publisher that the applied ticks go to. An edge is a
 * redis_follower feeding a tick queue, and a thread standing in for the
 * server's service thread: woken by the follower (or every 5 ms), it applies
 * a waiting resync, then drains the queue into the edge's engine.
 *
 * Both keep what a test checks afterwards (the ticks applied, the resyncs,
 * the epochs) and what a benchmark measures (back-pressure, latency).
 */
#ifndef TESTS_SUPPORT_REDIS_NODES_H
#define TESTS_SUPPORT_REDIS_NODES_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "redis_link.h"
#include "tick.h"
#include "tick_queue.h"

struct redis_ingest {
	struct engine *engine; /* the serving engine: assigns the seqs */
	struct redis_publisher *pub;
	pthread_mutex_t mu; /* the engine, for comparisons */
	struct tick *sent;  /* the first sent_cap ticks applied, with seqs */
	size_t nsent, sent_cap;
	uint64_t full; /* appends refused: back-pressure */
};

/* Create the engine and the publisher (o's strings are copied), not yet
 * started (redis_publisher_start(in->pub, ...)), keeping the first
 * keep_ticks ticks applied. Returns 0, or -1 with err (nothing to close). */
int redis_ingest_open(struct redis_ingest *in,
                      const struct redis_publisher_options *o,
                      size_t keep_ticks, char *err, size_t errlen);

/* What the server's drain does: apply each tick to the serving engine,
 * which assigns its seq, then append the applied ones, with their seqs, to
 * the publisher, waiting while it is full. Returns how many were applied. */
size_t redis_ingest_push(struct redis_ingest *in, const struct tick *t,
                         size_t n);

void redis_ingest_close(struct redis_ingest *in);

struct redis_edge_options {
	int port;
	const char *prefix;
	size_t queue_cap;        /* of the tick queue */
	unsigned backoff_max_ms; /* 0: the follower's default */
	unsigned silent_ms;      /* 0: the follower's default */
	size_t keep_ticks;       /* how many applied ticks to keep in got */
	size_t keep_latencies;   /* how many latencies to keep */
};

struct redis_edge {
	struct tick_queue *queue;
	struct redis_follower *fol;
	pthread_t thread;
	pthread_cond_t cond;
	/* mu guards everything below; the edge's thread holds it while it
	 * applies, so a test holding it sees the engine between two steps. */
	pthread_mutex_t mu;
	struct engine *engine; /* a fresh one for each new epoch */
	bool stop, woken;
	bool paused; /* set: the thread leaves the queue alone */
	char epoch[REDIS_LINK_EPOCH_MAX + 1];
	unsigned epoch_changes;
	uint64_t restores;
	uint64_t restores_backwards; /* a restore older than what was held */
	uint64_t drained;            /* ticks taken from the queue */
	int64_t last_drain_us;       /* wall clock of the last drain */
	struct tick *got;            /* the ticks applied, in order */
	size_t ngot, got_cap;
	int32_t *latency; /* per tick applied: drained at minus its ts, µs */
	size_t nlat, latency_cap;
};

/* Create the edge and start its follower and thread. Returns 0, or -1 with
 * err (nothing to close). */
int redis_edge_open(struct redis_edge *e, const struct redis_edge_options *o,
                    char *err, size_t errlen);

/* Stop the thread, then the follower; free everything. */
void redis_edge_close(struct redis_edge *e);

/* What the edge has done so far, read under its lock. */
struct redis_edge_counts {
	size_t ngot;
	uint64_t drained;
	int64_t last_drain_us;
	unsigned epoch_changes;
};

struct redis_edge_counts redis_edge_counts(struct redis_edge *e);

#endif

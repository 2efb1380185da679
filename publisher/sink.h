/*
 * sink: where applied ticks go after the engine. The SQLite store and the
 * Redis publisher are sinks; the pipeline hands each of them every tick the
 * engine applied, seq set, in the order it applied them.
 *
 * A sink works on a thread of its own behind a bounded buffer, so handing
 * ticks over never blocks the loop. What happens when the buffer is full
 * depends on where the ticks come from (see pipeline.h): a file may wait
 * for its sinks, a market cannot. So a sink offers both:
 *  - space(): how many ticks append() takes now without dropping any; the
 *    pipeline drains no more than that from a file;
 *  - append() of a live batch that does not fit: the sink takes what fits
 *    and drops the rest, and every tick after it, until its buffer has
 *    drained; it records what it dropped (per symbol, the range of seqs)
 *    and, once drained, asks to resume(): it is then given the current
 *    state of those symbols, so that what it keeps stays consistent (the
 *    store's state rows, the Redis state hash) and later ticks apply on
 *    top of it.
 *
 * A sink may also keep seqs durable (the store does; see "Seqs" in
 * store.h): the pipeline hands out a symbol's seqs only up to what such a
 * sink has reserved for it, asks it for more with reserve() before they
 * run out, and learns what was reserved from reserved(). A sink without
 * reserve() does not take part.
 *
 * What it owns: nothing; this is an interface. A struct sink is a table
 * of functions and the sink's own pointer; each sink module makes its own
 * (store_sink(), redis_publisher_sink()), and the pipeline, once given it
 * by pipeline_add_sink(), destroys it in pipeline_destroy().
 *
 * Who calls it: the pipeline (pipeline.c) calls every function here, on
 * the loop's thread; store_sink.c and redis_publisher_sink.c implement it;
 * metrics.c, http_api.c and session.c read a sink's status through
 * pipeline_sink_status().
 */
#ifndef PUBLISHER_SINK_H
#define PUBLISHER_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "tick.h"

/* Looks up a symbol's current state for resume(): 0, or -1 when the
 * symbol has no data. */
typedef int (*sink_state_fn)(const char *symbol, struct symbol_state *out,
			     void *ctx);

/* A rewind (see sink_ops.rewind): keep a symbol's ticks up to seq. */
struct sink_cut {
	char symbol[TICK_SYMBOL_MAX + 1];
	uint64_t seq;
};

/* What a rewind came to, for its done() callback; borrowed for the call. */
struct sink_rewound {
	int rc;		   /* 0, or -1: not done (the sink is closing) */
	const char *epoch; /* the new epoch */
	/* Each cut symbol's state at its cut (seq 0: no tick of it is left),
	 * as the sink's ticks make it. */
	const struct symbol_state *states;
	size_t count;
};

typedef void (*sink_rewind_done_fn)(const struct sink_rewound *r, void *ctx);

/* One symbol's reservation: seqs up to `seq` may be handed out, and the
 * symbol may have the state fields in `fields` (bit 1u << field) up to
 * then. */
struct sink_reservation {
	char symbol[TICK_SYMBOL_MAX + 1];
	uint64_t seq;
	uint16_t fields;
	/* A clean stop: `seq` is the last seq handed out, and the sink may
	 * lower the reservation to it (see store.h). */
	bool final;
};

/* What reserved() reports: the reservations of one reserve() call, now
 * durable. Borrowed for the call. */
struct sink_grant {
	uint32_t gen;	    /* as reserve() was given it */
	const char *epoch;  /* the epoch reserve() was given, or NULL */
	const struct sink_reservation *r;
	size_t n;
};

typedef void (*sink_grant_fn)(const struct sink_grant *g, void *ctx);

struct sink_status {
	int64_t lag_us;	    /* age of the oldest tick waiting, 0 if none */
	size_t queued;	    /* ticks waiting */
	uint64_t dropped;   /* ticks dropped since start (live overflow) */
	bool dropping;	    /* dropping now, until it has caught up */
	bool failing;	    /* cannot write at all (disk full, ...) */
	char reason[200];   /* words for /healthz when dropping or failing */
};

struct sink_ops {
	const char *name; /* "store", "redis" */
	/* Ticks append() takes now without dropping. Thread: the loop. */
	size_t (*space)(void *sink);
	/* Take n applied ticks, dropping what does not fit (see above).
	 * Never blocks. Thread: the loop. */
	void (*append)(void *sink, const struct tick *applied, size_t n);
	/* True when the sink dropped ticks and has drained its buffer since:
	 * call resume(). Thread: the loop. */
	bool (*wants_resume)(void *sink);
	/* Take up again after dropping, with the current state of every
	 * symbol it dropped ticks of. Thread: the loop. */
	void (*resume)(void *sink, sink_state_fn state, void *ctx);
	/* Thread-safe. */
	void (*status)(void *sink, struct sink_status *out);
	/* Optional (NULL: not needed). A resync replaced a symbol's state
	 * wholesale (an edge following its ingest): take st, seq included,
	 * as the base that later ticks apply to. Thread: the loop. */
	void (*restore)(void *sink, const struct symbol_state *st);
	/* Optional. The data has a new life (an edge's ingest started a new
	 * epoch). Returns 0 when the sink follows it, or -1 with the reason
	 * in why when it cannot (an edge's store holds the old life): the
	 * pipeline then stops feeding it. Thread: the loop. */
	int (*epoch)(void *sink, const char *epoch, char *why, size_t len);
	/* Optional (NULL: the sink cannot go back). A replay went back in
	 * time (feed.h, feed_set_rewind): drop every tick of each cut's
	 * symbol after its seq, in order with the ticks appended before
	 * this call, put those symbols' states back to what their remaining
	 * ticks make, and begin a new epoch. Returns 0 when it is queued:
	 * done() is then called once, from the sink's thread; -1 when it
	 * cannot be (out of memory, closing). Thread: the loop. */
	int (*rewind)(void *sink, const struct sink_cut *cuts, size_t n,
		      sink_rewind_done_fn done, void *ctx);
	/* Optional, both or neither: seqs kept durable. reserve() asks for
	 * the n reservations (copied) to be made durable together, in one
	 * step that nothing splits; with epoch set (a new life of the data
	 * that the pipeline began: at most 16 characters), that epoch
	 * becomes the sink's in the same step. gen is handed back in the
	 * grant. Returns 0, or -1 when out of memory (nothing is asked).
	 * reserved() calls fn for each step made durable since the last
	 * call, oldest first; a sink reports the reservations it starts
	 * with as one step of gen 0. Thread: the loop. */
	int (*reserve)(void *sink, uint32_t gen, const char *epoch,
		       const struct sink_reservation *r, size_t n);
	void (*reserved)(void *sink, sink_grant_fn fn, void *ctx);
};

struct sink {
	const struct sink_ops *ops;
	void *impl;
};

#endif

/*
 * pipeline_private.h: what the pipeline's files share, and nobody else.
 *
 *   pipeline.c         the drain, following an ingest (an edge), the API
 *   pipeline_seqs.c    the seq gate's use: reservations asked and granted,
 *                      ticks held for them, new epochs of our own
 *   pipeline_rewind.c  a replay's seek back: the store, then the engine,
 *                      under a new epoch
 *
 * Included by those three files only. It owns nothing itself: it defines
 * struct pipeline (what pipeline.h says the pipeline owns), made by
 * pipeline_create() and freed by pipeline_destroy().
 */
#ifndef PUBLISHER_PIPELINE_PRIVATE_H
#define PUBLISHER_PIPELINE_PRIVATE_H

#include "pipeline.h"

#include <pthread.h>

#include "feed.h"

#define MAX_SINKS 4
#define MAX_WAKES 8

struct pipeline_sink {
	struct sink sink;
	void (*destroy)(void *impl);
	bool detached; /* stopped feeding it (see sink_ops.epoch) */
	char detached_why[200];
};

/* Where a replay's seek back stands (pipeline_rewind.c). */
enum rewind_phase {
	RW_IDLE,
	RW_ASKED,  /* the feed waits; the queue drains first */
	RW_SINK,   /* the store is rewinding */
	RW_STORED, /* the store is done: the engine follows */
	RW_DONE,   /* answered: the feed goes on */
};

struct rewind_state {
	pthread_mutex_t lock; /* all below, between the feed, the loop and
	                       * the store's writer */
	pthread_cond_t answered;
	struct wake *wake;
	enum rewind_phase phase;
	bool closing;
	const struct feed_rewind *ask; /* borrowed while the feed waits */
	enum feed_rewind_result result;
	/* What the store gave back. */
	int sink_rc;
	char epoch[PIPELINE_EPOCH_MAX + 1];
	struct symbol_state *states;
	size_t nstates, states_cap;
};

struct pipeline {
	uv_loop_t *loop;
	struct engine *engine;
	struct tick_queue *queue;
	char epoch[PIPELINE_EPOCH_MAX + 1];
	bool file_source;

	struct feed *feed;
	struct redis_follower *follower;
	bool stopped;

	struct pipeline_sink sinks[MAX_SINKS];
	size_t nsinks;

	struct pipeline_hooks hooks;

	struct wake *queue_wake;       /* the queue went from empty to not */
	struct wake *again;            /* more was left than one drain takes */
	struct wake *wakes[MAX_WAKES]; /* sinks' and the follower's */
	size_t nwakes;

	struct tick *batch; /* DRAIN_BUDGET ticks */
	struct pipeline_stats stats;
	bool logged_waiting;
	uint64_t symbols_refused; /* the engine's count, as last logged */

	/* Seqs (pipeline_seqs.c). gate_on: seqs are handed out within
	 * the reserver's grants; volatile: the epoch is the pipeline's own,
	 * not stored yet, and nothing is gated until it is asked to be. */
	struct pipeline_sink *reserver;
	struct seq_gate *gate;
	bool gate_on, gate_volatile;
	bool started;
	bool start_volatile;   /* a new epoch before the start */
	size_t held;           /* ticks at the front of batch that wait */
	int64_t held_since_us; /* monotonic; 0: none wait */
	uv_timer_t *hold_timer;

	struct rewind_state rw;

	/* New epochs asked for from other threads (pipeline_ask_new_epoch):
	 * under ask_lock, for the loop's epoch_wake. */
	pthread_mutex_t ask_lock;
	struct wake *epoch_wake;
	bool asked;
	char ask_epoch[PIPELINE_EPOCH_MAX + 1];
	char ask_why[300];
};

/* -------------------------------------------------------- pipeline.c */

/* Move what the queue holds into the engine and on to the sinks, then
 * flush; a wake's callback (ctx is the pipeline). */
void pipeline__drain(void *ctx);

/* --------------------------------------------------- pipeline_seqs.c */

/* pipeline_start(): find the reserver and make the gate, before the first
 * tick. No reserver, or an edge: nothing is gated. */
void pipeline__gate_start(struct pipeline *p);

/* Grants in; an epoch of our own made durable once the store can. */
void pipeline__gate_sync(struct pipeline *p);

/* Apply the n ticks at the front of p->batch through the gate; sets
 * p->held and returns the ticks applied (compacted to the front). */
size_t pipeline__gate_apply(struct pipeline *p, size_t n);

/* After a drain that left ticks held: a new epoch, or look again soon. */
void pipeline__gate_hold(struct pipeline *p);

/* pipeline_destroy(): trim the store's reservations to the last seqs. */
void pipeline__gate_finish(struct pipeline *p);

/* The epoch_wake's callback: the loop's side of pipeline_ask_new_epoch(). */
void pipeline__epoch_asked(void *ctx);

/* ------------------------------------------------- pipeline_rewind.c */

/* The feed's rewind callback (feed_set_rewind): asks, on the feed's
 * thread, and waits for the loop's answer. */
enum feed_rewind_result pipeline__rewind_ask(const struct feed_rewind *ask,
                                             void *ctx);

/* After a drain: a rewind asked for starts once the queue is empty; one
 * the store is done with is finished. */
void pipeline__rewind_poll(struct pipeline *p);

/* The rw.wake's callback (ctx is the pipeline). */
void pipeline__rewind_wake(void *ctx);

#endif

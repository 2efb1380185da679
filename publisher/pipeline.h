/*
 * pipeline: the tick path. Ticks come from a source (a feed, or on an edge
 * the Redis follower) into a tick_queue; the pipeline drains the queue into
 * the engine, which assigns seqs and conflates, hands the applied ticks to
 * its sinks (the store, the Redis publisher) and flushes the engine, which
 * tells each subscriber with something new through the transport's
 * client_ready hook. It owns the engine, the queue, the epoch, the sources
 * and the sinks; it knows nothing of sockets or SQL.
 *
 *   feed thread ─push─▶ tick_queue ─wake─▶ drain ─▶ engine ─▶ flush ─▶ clients
 *                                                     │
 *                                                     └─▶ sinks (store, Redis)
 *
 * The loop first. The pipeline lives on a libuv loop created before it; each
 * producer wakes it through a wake of its own (wake.h): the queue wakes the
 * drain, a sink that has room again wakes the drain, the Redis follower
 * wakes the resync. A wake runs that producer's callback and nothing else.
 *
 * A replay's seek back rewinds the engine and the store to the target
 * under a new epoch before the replay goes on (feed_set_rewind;
 * pipeline_rewind.c).
 *
 * Seqs are never reused (store.h, "Seqs"). The engine numbers a tick
 * only within the seqs a sink (the store) has reserved durably for its
 * symbol; asks for more go out before a symbol runs short, so normally
 * nothing waits. When the store cannot reserve (failing, or too slow for
 * a second), the pipeline begins a new epoch of its own (epoch_changed:
 * clients start over) and has the store keep it once it writes again.
 * An edge's ticks come numbered and are not checked.
 *
 * Sinks never hold up live data. A file (replay) may wait for them: with
 * file_source set, a drain takes no more ticks than every sink has room
 * for, so the replay slows down while the disk catches up. A live feed does
 * not wait: each batch goes to the engine and to clients at once, and a
 * sink that is full drops ticks and records the gap (sink.h).
 *
 * Lifetime:
 *   p = pipeline_create(&opt, err, len);        // engine and queue exist
 *   feed = feed_create(spec, pipeline_queue(p), ...);
 *   pipeline_set_feed(p, feed);                 // owned from here
 *   pipeline_add_sink(p, store_sink(store), ...);
 *   pipeline_set_hooks(p, &hooks);              // the transport, when it exists
 *   pipeline_start(p, err, len);                // seqs reserved, feed on
 *   uv_run(loop, ...);
 *   pipeline_stop(p);                           // feed and follower stopped
 *   pipeline_destroy(p);                        // last seqs to the store,
 *                                               // sinks flushed and closed
 *
 * Threading: everything on the loop's thread, except what a producer calls
 * (the wakes) and pipeline_stop(), which must also run on the loop's thread.
 */
#ifndef PUBLISHER_PIPELINE_H
#define PUBLISHER_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "engine.h"
#include "sink.h"
#include "tick_queue.h"

struct feed;
struct redis_follower;
struct wake;
struct pipeline;

#define PIPELINE_EPOCH_MAX 64

struct pipeline_options {
	uv_loop_t *loop;       /* borrowed; must outlive the pipeline */
	size_t queue_capacity; /* ticks between the source and the loop */
	const char *epoch;     /* copied; 1..PIPELINE_EPOCH_MAX characters */
	/* The source reads a file (a replay): it may wait for the sinks.
	 * false: live data, which never waits for a sink. */
	bool file_source;
	/* The engine's frames (engine_config): the transport's header room
	 * in front of each, and the largest; 0: the engine's defaults. */
	size_t frame_headroom, frame_cap;
	/* Where trading sessions begin (engine_config; its ctx must outlive
	 * the pipeline). Zero: UTC days. */
	struct session_rule sessions;
};

/* What the transport is told. All run on the loop's thread. */
struct pipeline_hooks {
	/* The engine's client_ready (engine.h): a subscriber that had
	 * nothing to send now has. Required before the first tick. */
	void (*client_ready)(void *user, void *ctx);
	/* The epoch changed (an edge's ingest started a new life of the
	 * data, or the store could not reserve seqs): every client must
	 * start over. Optional. */
	void (*epoch_changed)(const char *epoch, void *ctx);
	void *ctx;
};

struct pipeline_stats {
	uint64_t drains;	/* drains that moved ticks */
	uint64_t drained_ticks; /* ticks they moved */
	int64_t flush_mono_us;	/* monotonic time of the flush under way or
				 * the last one */
	size_t queue_depth;	/* ticks waiting in the queue now */
	bool waiting_for_sink;	/* a file source is held back by a sink */
	/* Seqs (store.h, "Seqs"). */
	bool seq_gated;		/* seqs are reserved (a store, not an edge) */
	bool epoch_durable;	/* the epoch survives a crash (it is the
				 * store's; false while a new one of ours is
				 * not stored yet) */
	uint64_t seq_holds;	/* times ticks waited for a reservation */
	uint64_t seq_asks;	/* reservations asked for */
	uint64_t seq_grants;	/* reservations granted */
	uint64_t epoch_changes; /* new epochs begun for want of them */
};

/* NULL with the cause in err ("out of memory", "epoch ..."). */
struct pipeline *
pipeline_create(const struct pipeline_options *opt, char *err, size_t errlen);

/* The queue a source pushes into, and the engine; both owned by the
 * pipeline. */
struct tick_queue *
pipeline_queue(struct pipeline *p);

struct engine *
pipeline_engine(struct pipeline *p);

/* The epoch clients are told in the hello. */
const char *
pipeline_epoch(const struct pipeline *p);

/* Start-up only, before any tick or client: the store's epoch replaces
 * the one the pipeline was created with. */
void
pipeline_set_epoch(struct pipeline *p, const char *epoch);

/* Begin an epoch of the pipeline's own now, as when the store cannot
 * reserve seqs: every client starts over (epoch_changed), the sinks other
 * than the store follow it (sink_ops.epoch), seqs go on, and the store is
 * asked to keep it once it writes. For when seqs of the epoch were handed
 * out elsewhere (an ingest whose Redis holds seqs its store does not). why
 * is logged. Loop thread; before pipeline_start() too (start-up: the
 * pipeline starts in the new epoch, and sinks added after this take it
 * from pipeline_epoch()). */
void
pipeline_new_epoch(struct pipeline *p, const char *why);

/* Thread-safe: have the loop call pipeline_new_epoch(p, why) soon, unless
 * the epoch is no longer `epoch` by then (a new one has begun since). */
void
pipeline_ask_new_epoch(struct pipeline *p, const char *epoch,
		       const char *why);

/* A new wake that runs the drain; for a sink's thread to call when it has
 * room again (its `wake` option, with wake_signal). Owned by the pipeline.
 * NULL when out of memory or descriptors. */
struct wake *
pipeline_sink_wake(struct pipeline *p);

/* Take ownership of the feed (started by pipeline_start(), stopped and
 * destroyed by the pipeline). NULL: no feed. */
void
pipeline_set_feed(struct pipeline *p, struct feed *feed);

struct feed *
pipeline_feed(struct pipeline *p);

/* Add a sink. destroy(impl) is called by pipeline_destroy(), after every
 * source has stopped, so a sink flushes what it still holds there. At most
 * four sinks. Returns 0, or -1 when full. */
int
pipeline_add_sink(struct pipeline *p, struct sink sink,
		  void (*destroy)(void *impl));

/* The status of the sink named name ("store", "redis"); -1 when there is
 * none. Also says, in reason, why a sink the pipeline stopped feeding (see
 * sink_ops.epoch) is detached, with detached set. */
int
pipeline_sink_status(struct pipeline *p, const char *name,
		     struct sink_status *out, bool *detached);

/* ------------------------------------------------------ edge: following */

/* The callbacks of a redis_follower (redis_link.h), with ctx = the
 * pipeline: an edge takes its ingest's epoch and states through them. */
void
pipeline_follow_epoch(const char *epoch, void *ctx);

void
pipeline_follow_restore(const struct symbol_state *st, void *ctx);

/* The wake for the follower's `wake` option (wake_signal, this). NULL
 * when out of memory or descriptors. */
struct wake *
pipeline_follow_wake(struct pipeline *p);

/* Take ownership of the follower (created and started by the caller,
 * with the callbacks above; destroyed by the pipeline). Resyncs it has
 * waiting are applied on the next wake. */
void
pipeline_set_follower(struct pipeline *p, struct redis_follower *f);

struct redis_follower *
pipeline_follower(struct pipeline *p);

/* ------------------------------------------------------------ running */

void
pipeline_set_hooks(struct pipeline *p, const struct pipeline_hooks *hooks);

/* Start the feed. Returns 0, or -1 with the cause in err. */
int
pipeline_start(struct pipeline *p, char *err, size_t errlen);

/* Stop the sources: the feed and the follower stop pushing (a producer
 * blocked on a full queue is released). Ticks still queued are dropped.
 * Loop thread. Safe to call twice. */
void
pipeline_stop(struct pipeline *p);

void
pipeline_get_stats(const struct pipeline *p, struct pipeline_stats *out);

/* While a replay plays, the latest ts that history, bars and exports may
 * serve: its position (a seek back's target less 1 µs while it is under
 * way), loop shift included, so that nobody is shown what comes after the
 * replay position. INT64_MAX for every other feed. Loop thread. */
int64_t
pipeline_history_end(struct pipeline *p);

/* Stops what still runs, then destroys the sources, the sinks (each
 * flushes first), the engine and the queue, and closes the wakes (run the
 * loop once more to let libuv finish closing them). NULL is a no-op. */
void
pipeline_destroy(struct pipeline *p);

#endif

/*
 * tick_queue: hands ticks from feed threads to the service thread.
 *
 * A bounded ring of ticks behind one mutex. Producers push whole batches, so
 * the lock is taken once per batch, not once per tick. When the ring is full
 * a producer blocks: the feed is slowed (a replay paces down, a TCP producer
 * feels back-pressure) instead of ticks being dropped.
 *
 * The consumer never blocks. When a push makes the ring non-empty the queue
 * calls `wake` once; the consumer then drains until the ring is empty. This
 * is the contract of a wake (wake.h; the pipeline passes wake_signal()): one
 * wake may stand for many pushes. The queue itself knows nothing of the
 * loop.
 *
 * Thread-safe: any number of producers, one consumer.
 *
 * What it owns: the ring (capacity ticks, allocated by tick_queue_create()),
 * its mutex and condition variable.
 *
 * Who calls it: the pipeline (pipeline.c) creates it, drains it on the
 * loop's thread and closes it at shutdown; the feeds' threads (feeds/) and
 * the Redis follower's thread push into it.
 */
#ifndef PUBLISHER_TICK_QUEUE_H
#define PUBLISHER_TICK_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "tick.h"

struct tick_queue;

/* capacity: ticks the ring holds. wake: called (from a producer thread, with
 * no lock held) when the ring goes from empty to non-empty. NULL on failure. */
struct tick_queue *
tick_queue_create(size_t capacity, void (*wake)(void *ctx), void *ctx);

/* The queue must have no producer left. NULL is a no-op. */
void
tick_queue_destroy(struct tick_queue *q);

/*
 * Copy n ticks in, blocking while the ring is full. Returns 0 when all were
 * queued, -1 when the queue was closed (some or none may have been queued).
 */
int
tick_queue_push(struct tick_queue *q, const struct tick *ticks, size_t n);

/* Move up to max ticks out, oldest first, without blocking. Returns the
 * number moved (0 when empty). */
size_t
tick_queue_drain(struct tick_queue *q, struct tick *out, size_t max);

/* Wake blocked producers and refuse further pushes (shutdown). */
void
tick_queue_close(struct tick_queue *q);

/* Ticks waiting now (for metrics). */
size_t
tick_queue_depth(struct tick_queue *q);

#endif

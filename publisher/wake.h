/*
 * wake: how a producer thread tells the event loop it has something.
 *
 * Every producer (the feed's tick queue, the store writer, the Redis
 * threads, the query workers) gets a wake of its own, so the loop runs only
 * the callback of the producer that woke it and never walks every
 * connection to find out who that was. A wake is a uv_async_t: many
 * wake_signal() calls before the loop gets to it make one callback, so the
 * callback must take everything that is waiting, not one item.
 *
 *   struct wake *w = wake_new(loop, drain_queue, pipeline); // loop thread
 *   queue = tick_queue_create(cap, wake_signal, w);        // any thread
 *   ...                                                    // producer gone
 *   wake_free(w);                                          // loop thread
 *
 * Threading: wake_new() and wake_free() on the loop's thread; wake_signal()
 * from any thread, also from a signal handler, until wake_free(): no
 * producer may signal a wake after it is freed.
 *
 * What it owns: each wake owns one uv_async_t handle on the loop, from
 * wake_new() until wake_free() (libuv closes it on the loop's next turn).
 *
 * Who calls it: pipeline.c and server.c make the wakes (the feed queue,
 * the sinks, the Redis follower, a rewind, the query workers, a stop from
 * another thread); main.c gives the sinks' wakes to the store and the
 * Redis link as their wake callbacks; the producers' threads call
 * wake_signal().
 */
#ifndef PUBLISHER_WAKE_H
#define PUBLISHER_WAKE_H

#include <uv.h>

struct wake;

/* NULL when out of memory or descriptors. */
struct wake *
wake_new(uv_loop_t *loop, void (*fn)(void *ctx), void *ctx);

/* Thread-safe; the signature of the producers' `wake` callbacks, with the
 * struct wake as ctx. */
void
wake_signal(void *w);

/* Close and free. libuv finishes closing on the loop's next turn; the
 * callback is never called again. NULL is a no-op. */
void
wake_free(struct wake *w);

#endif

/*
 * engine: the latest state of every symbol, who is subscribed to what, and the
 * conflated snapshots and deltas each subscriber is owed.
 *
 * The engine knows nothing of sockets or SQL. The server feeds it ticks and
 * asks it, when a client's socket is writable, for that client's next frame.
 *
 * How conflation works. Every field of a symbol remembers the seq at which its
 * value last changed, so the delta from *any* earlier seq is computed from the
 * state alone: it is every field whose change seq is newer. Nothing is queued
 * per tick. A subscription only remembers the seq its client holds, and a
 * client keeps a list of subscriptions that are behind ("pending"). When its
 * socket is writable the client takes all pending updates in one batch frame,
 * so a slow client gets fewer, merged deltas and its memory is bounded by its
 * subscriptions, never by the tick rate.
 *
 * Encode once, copy many: a symbol caches the encoding of its latest snapshot
 * and of its latest delta (keyed by `from` and `seq`), so the clients that are
 * in step with each other share one encoding.
 *
 * Threading: not thread-safe. Use one engine from one thread (the server's
 * service thread); feeds hand ticks over through a tick_queue.
 *
 * Call order per service-loop turn: engine_apply_tick() for every tick that
 * arrived, then engine_flush() once, which tells each client that now has
 * something pending through the `client_ready` callback.
 */
#ifndef PUBLISHER_ENGINE_H
#define PUBLISHER_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tick.h"

struct engine;
struct engine_client;

/* The full state of one symbol, as the store persists and restores it. */
struct symbol_state {
	char symbol[TICK_SYMBOL_MAX + 1];
	uint64_t seq; /* seq of the last tick applied; 0 = no data yet */
	int64_t ts;   /* ts of the last tick applied */
	uint16_t present; /* bit (1u << field) over STATE_FIELD_COUNT */
	bool feed_sends_volume; /* volume comes from the feed, not from last_size */
	struct decimal value[STATE_FIELD_COUNT];
	uint64_t changed_seq[STATE_FIELD_COUNT]; /* seq of each field's last change */
};

struct engine_config {
	/* Called from engine_flush() when a client goes from nothing pending
	 * to something pending; `user` is what engine_client_create() was
	 * given. The server asks lws for a writable callback here. Required. */
	void (*client_ready)(void *user, void *ctx);
	void *ctx;
};

struct engine_stats {
	uint64_t ticks_applied;
	uint64_t ticks_rejected;   /* invalid symbol or stale seq */
	uint64_t updates_sent;     /* snapshots + deltas written to clients */
	uint64_t ticks_conflated;  /* ticks merged away: sum of seq - from - 1 */
	uint64_t encodings;	   /* snapshot/delta encodings made */
	uint64_t encodings_shared; /* updates served from a cached encoding */
	size_t symbols;
	size_t clients;
	size_t subscriptions;
};

/* Returns NULL on allocation failure. */
struct engine *
engine_create(const struct engine_config *config);

/* Destroys the engine and any clients still attached. NULL is a no-op. */
void
engine_destroy(struct engine *e);

/*
 * Apply one tick. With t->seq == 0 the engine assigns the symbol's next seq;
 * with t->seq set (an edge following an ingest node, see the scale-out issue)
 * that seq is used and must be greater than the symbol's current seq.
 * Fields equal to the stored value (numerically) do not count as changed.
 * Derived fields: open/high/low follow `last`; `trades` counts ticks that
 * carry `last`; `volume` adds up `last_size` until the feed sends `volume`
 * itself, after which the feed's value is taken as is.
 * Returns the seq applied (> 0), or 0 when the tick is refused (invalid
 * symbol, stale seq, volume overflow); the state is then unchanged.
 */
uint64_t
engine_apply_tick(struct engine *e, const struct tick *t);

/*
 * Put back a symbol's state, e.g. from the store after a restart. Replaces
 * whatever the engine held for that symbol; subscribers are told as by a tick.
 * Returns 0, or -1 on an invalid symbol or allocation failure.
 */
int
engine_restore_symbol(struct engine *e, const struct symbol_state *s);

/* Who is told that a client has something to send (see engine_config);
 * replaces what engine_create() was given. */
void
engine_set_client_ready(struct engine *e,
			void (*client_ready)(void *user, void *ctx), void *ctx);

/* Empty every symbol (a new life of the data): seqs start again from 0,
 * subscriptions stay and get a snapshot with each symbol's next tick. */
void
engine_clear(struct engine *e);

/* Symbols with data. */
size_t
engine_symbol_count(const struct engine *e);

/* Copy a symbol's state into *out. Returns 0, or -1 when the symbol has no
 * data (unknown, or subscribed to but never ticked). */
int
engine_get_state(const struct engine *e, const char *symbol,
		 struct symbol_state *out);

/* Call fn for every symbol with data (seq > 0), in no particular order.
 * fn must not call back into the engine. */
void
engine_foreach_symbol(const struct engine *e,
		      void (*fn)(const struct symbol_state *s, void *ctx),
		      void *ctx);

/* Hand every symbol that changed since the last flush to its subscribers,
 * calling config->client_ready for each client that became ready. */
void
engine_flush(struct engine *e);

void
engine_get_stats(const struct engine *e, struct engine_stats *out);

/* ------------------------------------------------------------------ clients */

/* A subscriber. `user` is handed back in client_ready. NULL on failure. */
struct engine_client *
engine_client_create(struct engine *e, void *user);

/* Detach and free the client and its subscriptions. NULL is a no-op. */
void
engine_client_destroy(struct engine_client *c);

/*
 * Optional entitlement filter: a wildcard subscription only picks up symbols
 * for which allowed() returns true. Explicit subscriptions are checked by the
 * caller before engine_client_subscribe(), so it can answer with an error.
 * The ctx is borrowed and must outlive the client.
 */
void
engine_client_set_filter(struct engine_client *c,
			 bool (*allowed)(const char *symbol, void *ctx),
			 void *ctx);

/*
 * Cap the update rate per symbol for this client; 0 = no cap. Updates held
 * back by the cap are conflated, never queued.
 */
void
engine_client_set_max_hz(struct engine_client *c, double max_hz);

/*
 * Subscribe to one symbol (not "*"). The resume rules of the protocol:
 *  - have_seq true and equal to the symbol's seq: nothing is sent;
 *  - have_seq true and 0 < seq < the symbol's seq: one delta from seq;
 *  - otherwise: a snapshot (at once if the symbol has data, else with its
 *    first tick).
 * Subscribing again to a symbol already held re-applies these rules; that is
 * how a client that saw a gap recovers. The caller checks the epoch: when it
 * differs, pass have_seq = false.
 * Returns 0, -1 for an invalid symbol, -2 on allocation failure.
 */
int
engine_client_subscribe(struct engine_client *c, const char *symbol,
			bool have_seq, uint64_t seq);

/*
 * Subscribe to every symbol, including those that appear later. For each
 * existing symbol, resume(symbol, &seq, ctx) may say which seq the client
 * holds (return true) so the rules above apply; resume may be NULL.
 * Returns 0, or -2 on allocation failure.
 */
int
engine_client_subscribe_all(struct engine_client *c,
			    bool (*resume)(const char *symbol, uint64_t *seq,
					   void *ctx),
			    void *ctx);

/* Unsubscribe one symbol, or "*" (the wildcard and the symbols it alone
 * brought in). Nothing more is written for it. Unknown symbols are a no-op. */
void
engine_client_unsubscribe(struct engine_client *c, const char *symbol);

/* Explicitly subscribed symbols (the wildcard counts as one). */
size_t
engine_client_subscription_count(const struct engine_client *c);

bool
engine_client_is_subscribed(const struct engine_client *c, const char *symbol);

/* True when updates are waiting (possibly held back by max_hz). */
bool
engine_client_has_pending(const struct engine_client *c);

/*
 * Write the client's next frame into buf[0..cap): one JSON object when a
 * single update is due, else a JSON array of them, oldest-pending first, as
 * many as fit. Each update brings the client to the symbol's current seq.
 * Returns the bytes written; 0 when nothing is due now. When updates remain
 * held back by max_hz, *next_due_us (if not NULL) gets the earliest time
 * (same clock as now_us) one becomes due, else 0. cap must be at least
 * ENGINE_MIN_FRAME bytes.
 */
#define ENGINE_MIN_FRAME 4096
size_t
engine_client_write(struct engine_client *c, int64_t now_us, char *buf,
		    size_t cap, int64_t *next_due_us);

#endif

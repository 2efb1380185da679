/*
 * engine: the latest state of every symbol, who is subscribed to what, and the
 * conflated snapshots and deltas each subscriber is owed.
 *
 * The engine knows nothing of sockets or SQL. The pipeline feeds it ticks;
 * the transport asks it, when a client's socket is writable, for that
 * client's next frame.
 *
 * What it owns: every symbol and its state, the subscription groups and
 * the rounds they keep, the encoded frames (shared by reference count
 * between the clients that send them) and each engine_client with its
 * subscriptions. engine_destroy() frees them all; a client's frame bytes
 * are borrowed until its next engine_client_frame().
 *
 * Who calls it: the pipeline (pipeline.c) creates it, applies and restores
 * ticks and states, clears it and flushes it; the sessions (session.c)
 * make one client per connection, subscribe it and take its frames;
 * main.c restores it from the store at start-up, and gives its states to
 * the Redis publisher (and an edge's store) so that they start from the
 * same; server.c, metrics.c and http_api.c read its counts and stats. All
 * on the loop's thread.
 *
 * How conflation works. Every field of a symbol remembers the seq at which its
 * value last changed, so the delta from *any* earlier seq is computed from the
 * state alone: it is every field whose change seq is newer. Nothing is queued
 * per tick, so a slow client gets fewer, merged deltas and its memory is
 * bounded by its subscriptions, never by the tick rate.
 *
 * How fan-out stays cheap. Clients that subscribe to the same set of symbols
 * (the same watchlist, or "*") share one subscription group. A flush turns
 * the group's changed symbols into a round: one list of (symbol, from seq)
 * changes, and, when two or more of its clients are waiting for exactly that
 * round, one encoded frame that they all send byte for byte. A client that
 * fell behind by a few rounds gets one merged frame, shared with the others
 * that fell behind as far. The cost of a flush is the symbols that changed
 * and the clients that were idle, never the number of subscriptions: a
 * client that already has something pending is not touched. A client too
 * far behind (or with its own resume seqs) leaves the group's rhythm and is
 * brought up to date symbol by symbol from the seqs it holds, then joins it
 * again.
 *
 * Threading: not thread-safe. Use one engine from one thread (the loop);
 * feeds hand ticks over through a tick_queue.
 *
 * Call order per loop turn: engine_apply_tick() for every tick that arrived,
 * then engine_flush() once, which tells each client that now has something
 * pending through the `client_ready` callback; then, as sockets become
 * writable, engine_client_frame() for those clients.
 */
#ifndef PUBLISHER_ENGINE_H
#define PUBLISHER_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "symbol_state.h"
#include "tick.h"

struct engine;
struct engine_client;

/* The smallest frame a client can be given: one update of the longest kind
 * with room to spare. */
#define ENGINE_MIN_FRAME 4096
/* The default largest frame: a full refresh of hundreds of symbols in one
 * write, small enough that a stalled client's leftover is cheap. */
#define ENGINE_FRAME_CAP (128 * 1024)

struct engine_config {
	/* Called from engine_flush() when a client goes from nothing pending
	 * to something pending; `user` is what engine_client_create() was
	 * given. The transport asks for a writable callback here. */
	void (*client_ready)(void *user, void *ctx);
	void *ctx;
	/* Largest frame, in bytes (ENGINE_MIN_FRAME or more); 0 means
	 * ENGINE_FRAME_CAP. */
	size_t frame_cap;
	/* Bytes kept writable in front of every frame engine_client_frame()
	 * returns, for the transport's own header (LWS_PRE). */
	size_t frame_headroom;
	/* Where each symbol's trading sessions begin (symbol_state.h); its
	 * ctx is borrowed and must outlive the engine. Zero: UTC days. */
	struct session_rule sessions;
};

struct engine_stats {
	uint64_t ticks_applied;
	uint64_t ticks_rejected;  /* invalid symbol or stale seq */
	uint64_t updates_sent;    /* snapshots + deltas written to clients */
	uint64_t ticks_conflated; /* ticks merged away: sum of seq - from - 1 */
	uint64_t encodings;       /* snapshot/delta encodings made */
	uint64_t encodings_shared; /* updates served from a cached encoding */
	uint64_t frames_shared; /* frames sent as bytes another client sent */
	uint64_t rounds;        /* group rounds closed by flushes */
	uint64_t catch_ups;     /* clients that left a group's rhythm */
	/* Ticks refused because they would have given one symbol more than
	 * the engine's max_symbols its first data (counted in ticks_rejected
	 * too). */
	uint64_t symbols_refused;
	/* Bytes of symbols, subscription entries and groups freed so far (an
	 * estimate): a caller that hands memory back to the system watches
	 * it for a burst of frees. */
	uint64_t bytes_freed;
	size_t symbols;
	size_t pending; /* symbols subscribed to that have no data yet */
	size_t clients;
	size_t groups;        /* subscription groups */
	size_t subscriptions; /* (client, symbol) pairs */
};

/* Returns NULL on allocation failure. */
struct engine *engine_create(const struct engine_config *config);

/* Destroys the engine and any clients still attached. NULL is a no-op. */
void engine_destroy(struct engine *e);

/*
 * Apply one tick: fold it into its symbol's state by the rules of
 * symbol_state_apply() (seqs, unchanged values, open/high/low, trades,
 * volume, and a new trading session by the config's rule, which sends
 * prev_close, and null for open/high/low until the session's first trade). With t->seq == 0 the engine assigns the symbol's next seq; with
 * t->seq set (an edge following an ingest node) that seq is used and must
 * be greater than the symbol's current seq.
 * Returns the seq applied (> 0), or 0 when the tick is refused (invalid
 * symbol, stale seq, volume overflow); the state is then unchanged.
 */
uint64_t engine_apply_tick(struct engine *e, const struct tick *t);

/*
 * Put back a symbol's state, e.g. from the store after a restart. Replaces
 * whatever the engine held for that symbol; every subscriber gets a
 * snapshot, as the history their seqs came from was replaced.
 * Returns 0, or -1 on an invalid symbol or allocation failure.
 */
int engine_restore_symbol(struct engine *e, const struct symbol_state *s);

/*
 * Take s as the symbol's state when it goes on from the one the engine
 * holds: the same history, further on (an edge's resync within one epoch,
 * where a (symbol, seq) pair names one state on every node). Then
 * subscribers keep their place: one that holds s's seq gets nothing, one
 * at an older seq a delta of the fields s says changed after it (its
 * per-field change seqs are trusted for that). s goes on from the engine's
 * state when it is at or past its seq, has every field it has (or says
 * it was taken away after the engine's seq), and each
 * field s says last changed at or before the engine's seq has the value
 * the engine holds (so at the same seq, the same state). Anything else,
 * or a symbol without data, is engine_restore_symbol(): snapshots.
 * Returns 0 when subscribers kept their place, 1 after a restore, -1 as
 * engine_restore_symbol().
 */
int engine_advance_symbol(struct engine *e, const struct symbol_state *s);

/*
 * Bound the symbols with data: a tick that would give a symbol its first
 * data while max symbols have data is refused (engine_apply_tick() returns
 * 0 and counts it in symbols_refused), so that a feed inventing names
 * cannot grow the engine without end; ticks of the symbols that have data
 * go on. Restores are not bounded: what the store or an ingest holds comes
 * back whole. 0: no bound (the default).
 */
void engine_set_max_symbols(struct engine *e, size_t max);

/*
 * Whether engine_apply_tick() would refuse t for the bound above: its
 * symbol has no data and max symbols have. Changes and counts nothing. For
 * a caller that acts on a tick before the engine applies it (asks a store
 * for its seqs) and must not for a tick the engine will refuse. O(1) while
 * there is room.
 */
bool engine_refuses_new_symbol(const struct engine *e, const struct tick *t);

/* Who is told that a client has something to send (see engine_config);
 * replaces what engine_create() was given. */
void engine_set_client_ready(struct engine *e,
                             void (*client_ready)(void *user, void *ctx),
                             void *ctx);

/*
 * Drop every symbol's state (a new life of the data, e.g. a new epoch):
 * seqs start again from 0 and the engine counts no symbol. Subscriptions
 * stay as they are ("*" included) and clients stay attached, but what they
 * hold is of the old life: nothing of it is owed to them any more (a frame
 * already half sent is dropped too), and each subscribed symbol comes to
 * them as a snapshot with its next tick. Telling clients of the new life
 * (the server closes their connections) is the caller's business.
 */
void engine_clear(struct engine *e);

/* Symbols with data. */
size_t engine_symbol_count(const struct engine *e);

/* Symbols subscribed to that have no data yet: each is a placeholder that
 * lives as long as some client names it (freed with its last subscriber,
 * or kept once its first tick comes). */
size_t engine_pending_count(const struct engine *e);

/* Copy a symbol's state into *out. Returns 0, or -1 when the symbol has no
 * data (unknown, or subscribed to but never ticked). */
int engine_get_state(const struct engine *e, const char *symbol,
                     struct symbol_state *out);

/* Call fn for every symbol with data (seq > 0), in no particular order.
 * fn must not call back into the engine. */
void engine_foreach_symbol(const struct engine *e,
                           void (*fn)(const struct symbol_state *s, void *ctx),
                           void *ctx);

/* Hand every symbol that changed since the last flush to its subscribers,
 * calling config->client_ready for each client that became ready. */
void engine_flush(struct engine *e);

void engine_get_stats(const struct engine *e, struct engine_stats *out);

/* ------------------------------------------------------------------ clients */

/* A subscriber. `user` is handed back in client_ready. NULL on failure. */
struct engine_client *engine_client_create(struct engine *e, void *user);

/* Detach and free the client and its subscriptions. NULL is a no-op. */
void engine_client_destroy(struct engine_client *c);

/*
 * Optional entitlement filter: a wildcard subscription only picks up symbols
 * for which allowed() returns true. Explicit subscriptions are checked by the
 * caller before subscribing, so it can answer with an error. `key` names
 * the filter (copied): clients whose keys are equal are taken to allow the
 * same symbols, and may share a subscription group; NULL: the filter is
 * this client's alone. The ctx is borrowed and must outlive the client.
 * Set it before the first subscription.
 */
void engine_client_set_filter(struct engine_client *c,
                              bool (*allowed)(const char *symbol, void *ctx),
                              void *ctx, const char *key);

/*
 * Cap the update rate for this client; 0 = no cap. A client with a cap is
 * sent at most max_hz batches a second, so no symbol is updated more often
 * than that; what is held back is conflated, never queued. A batch is one
 * frame, or several back to back when its changes outgrow the frame cap.
 */
void engine_client_set_max_hz(struct engine_client *c, double max_hz);

/* What a client says it holds, for the resume rules: true with *seq set
 * when it holds `symbol` at that seq. */
typedef bool (*engine_resume_fn)(const char *symbol, uint64_t *seq, void *ctx);

/*
 * Subscribe to symbols; "*" among them subscribes to every symbol, including
 * those that appear later. For each symbol named (and, with "*", each
 * symbol it brings), the protocol's resume rules, with what resume() says
 * the client holds (resume may be NULL: it holds nothing):
 *  - held at the symbol's seq: nothing is sent;
 *  - held at an older seq (> 0): one delta from it;
 *  - otherwise: a snapshot (at once if the symbol has data, else with its
 *    first tick).
 * Subscribing again to a symbol already held re-applies these rules; that is
 * how a client that saw a gap recovers. The caller checks the epoch: when it
 * differs, pass no resume.
 * Returns 0, -1 for an invalid symbol (nothing is subscribed then), -2 on
 * allocation failure.
 */
int engine_client_subscribe_many(struct engine_client *c,
                                 const char (*symbols)[TICK_SYMBOL_MAX + 1],
                                 size_t n, engine_resume_fn resume, void *ctx);

/* One symbol (not "*"), with have_seq/seq as what the client holds. */
int engine_client_subscribe(struct engine_client *c, const char *symbol,
                            bool have_seq, uint64_t seq);

/* "*", with resume as in engine_client_subscribe_many(). */
int engine_client_subscribe_all(struct engine_client *c,
                                engine_resume_fn resume, void *ctx);

/* Unsubscribe symbols, or "*" (the wildcard and the symbols it alone
 * brought in). Nothing more is written for them. Unknown symbols are a
 * no-op. Returns 0, or -2 on allocation failure (nothing changed). */
int engine_client_unsubscribe_many(struct engine_client *c,
                                   const char (*symbols)[TICK_SYMBOL_MAX + 1],
                                   size_t n);

int engine_client_unsubscribe(struct engine_client *c, const char *symbol);

/* Explicitly subscribed symbols (the wildcard counts as one). */
size_t engine_client_subscription_count(const struct engine_client *c);

/* Of those, the symbols that have no data yet. Costs one look per
 * subscribed symbol. */
size_t engine_client_pending_count(const struct engine_client *c);

/* What subscribing to a list of names would add to a client, for a caller
 * that bounds it first (engine_client_subscribe_cost()). */
struct engine_subscribe_cost {
	size_t added;        /* names not subscribed yet ("*" counts as one) */
	size_t pending;      /* of them, symbols with no data yet */
	size_t placeholders; /* of them, names the engine holds nothing for:
	                      * each would be a new symbol with no data */
};

/* Count, without changing anything, what subscribing c to symbols[0..n)
 * would add. The names are taken as distinct and valid (a repeated one
 * counts again). */
void engine_client_subscribe_cost(const struct engine_client *c,
                                  const char (*symbols)[TICK_SYMBOL_MAX + 1],
                                  size_t n, struct engine_subscribe_cost *out);

/* Subscribed to symbol, named or brought by "*" ("*": the wildcard is
 * on). */
bool engine_client_is_subscribed(const struct engine_client *c,
                                 const char *symbol);

/* True when updates are waiting (possibly held back by max_hz). */
bool engine_client_has_pending(const struct engine_client *c);

/*
 * The client's next frame: one JSON object when a single update is due,
 * else a JSON array of them, oldest change first, at most the engine's
 * frame cap. Each update brings the client to the symbol's current seq (or,
 * within a frame shared with others, to the seq of that frame's round; the
 * rounds after it come in the next frames).
 *
 * *out points at the frame: either into scratch (which must hold the
 * engine's frame_headroom + frame_cap bytes; the frame then starts at
 * scratch + frame_headroom) or at a frame shared with other clients. Either
 * way frame_headroom writable bytes precede *out. The bytes stay valid until
 * the next call for this client or its destruction; write them before.
 *
 * Returns the frame's length; 0 when nothing is due now. When updates are
 * held back by max_hz, *next_due_us (if not NULL) gets the time (same clock
 * as now_us) the next frame is due, else 0.
 */
size_t engine_client_frame(struct engine_client *c, int64_t now_us,
                           char *scratch, const char **out,
                           int64_t *next_due_us);

/*
 * What names the bytes the last engine_client_frame() returned: the same
 * non-zero id for clients that got the very same bytes (a frame shared by
 * clients in step), never reused for other bytes; 0 for a frame made for
 * this client alone. A caller that transforms frames (compresses them) can
 * do it once per id.
 */
uint64_t engine_client_frame_id(const struct engine_client *c);

/* engine_client_frame() copied into buf[0..cap), for a caller that does not
 * keep the engine's frames (tests, benchmarks). cap must be at least the
 * engine's frame cap. */
size_t engine_client_write(struct engine_client *c, int64_t now_us, char *buf,
                           size_t cap, int64_t *next_due_us);

#endif

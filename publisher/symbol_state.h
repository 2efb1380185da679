/*
 * symbol_state: the state of one symbol, and how a tick folds into it.
 *
 * What it is for: the rules that turn a symbol's ticks into its state live
 * here and nowhere else. The engine folds the ticks it serves with them;
 * the store's writer and the Redis publisher fold the same ticks with them
 * (through a state_table) and so persist and publish the very states the
 * engine serves.
 *
 * Trading sessions. open/high/low/volume/trades are those of the symbol's
 * trading session under way, and prev_close is the close of the session
 * before it: the state knows which session it belongs to. Where a session
 * begins is not decided here but by a session_rule the caller hands to
 * the fold (trading_session.h makes one from the --session settings), a
 * pure function of a symbol and a time. It is asked with the ticks' own
 * ts, never the clock, so a replay or a test goes through sessions just as
 * a live feed does, and every component that folds the same ticks with
 * the same rule arrives at the same state.
 *
 * What it owns: nothing. Every function works on a state its caller owns
 * (the engine's symbols, a state_table's entries, the store's rewind).
 * No locking: a state is used by one thread at a time.
 *
 * Who calls it: engine.c and state_table.c; store_rewind.c too, which
 * folds a rewound symbol's remaining ticks again from the first, and
 * store_reserve.c, which on open starts an empty state for a symbol that
 * was reserved but never stored.
 */
#ifndef PUBLISHER_SYMBOL_STATE_H
#define PUBLISHER_SYMBOL_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decimal.h"
#include "tick.h"

/* A trading session: the instants [start, end), in µs since the epoch. */
struct session_span {
	int64_t start;
	int64_t end;
};

/*
 * Which trading session of `symbol` the instant ts (µs) falls in: the one
 * that contains it (start <= ts < end). span_of must be a pure function of
 * its arguments for as long as states are folded with it, and safe on any
 * thread: the engine, the store's writer and the Redis publisher fold the
 * same ticks with it, each on its own thread, and must agree. It is
 * called only when a symbol's tick falls past the end of the session its
 * state is in (once a session per symbol), never per tick.
 */
struct session_rule {
	void (*span_of)(const void *ctx, const char *symbol, int64_t ts,
	                struct session_span *out);
	const void *ctx;
};

/* The fields a new session changes beyond those its first tick brings:
 * open, high and low are taken away (a delta says null), prev_close is
 * set. Whoever reasons about which fields a tick may change (the seq
 * reservations, a floor taken from Redis) counts these as changeable by
 * any tick. */
#define SYMBOL_STATE_SESSION_FIELDS                                            \
	((uint16_t)(1u << FIELD_OPEN | 1u << FIELD_HIGH | 1u << FIELD_LOW |    \
	            1u << FIELD_PREV_CLOSE))

/* The session of a state kept before states knew theirs (a store or a
 * Redis state of an older version): taken to be the session of its ts. */
#define SYMBOL_STATE_SESSION_UNKNOWN INT64_MIN

/* The full state of one symbol, as the store persists and restores it. */
struct symbol_state {
	char symbol[TICK_SYMBOL_MAX + 1];
	uint64_t seq;     /* seq of the last tick applied; 0 = no data yet */
	int64_t ts;       /* ts of the last tick applied */
	uint16_t present; /* bit (1u << field) over STATE_FIELD_COUNT */
	bool feed_sends_volume; /* volume comes from the feed, not from
	                           last_size */
	/* The start (µs) of the trading session the state is in: the
	 * session of the latest tick, as a late tick (a ts in an earlier
	 * session) never takes a state back a session. */
	int64_t session;
	/* Where that session ends, kept so that a tick is checked against
	 * it with one comparison; it follows from session and the rule, so
	 * it is neither stored nor sent (INT64_MIN: to be worked out). */
	int64_t session_end;
	struct decimal value[STATE_FIELD_COUNT];
	/* seq of each field's last change; for a field without a value, the
	 * seq at which a new session took it away (0: it never had one),
	 * which a delta then carries as null */
	uint64_t changed_seq[STATE_FIELD_COUNT];
};

/* An empty state (seq 0, no field) named name[0..len), len at most
 * TICK_SYMBOL_MAX (the caller checks the name). Every byte of st->symbol
 * after the name is zero: the engine's encoder copies names with a
 * fixed-size memcpy. */
void symbol_state_init(struct symbol_state *st, const char *name, size_t len);

/*
 * Fold one tick into st. The tick's symbol is not looked at for the fold
 * (the caller found st by it), only to ask `sessions` which session the
 * tick is in.
 *
 * With t->seq == 0 the state's next seq is taken; with t->seq set (an edge
 * following an ingest node) that seq is used and must be greater than the
 * state's. A field equal to the stored value (numerically) does not count
 * as changed, and keeps the stored text ("189.30" stays "189.30" when
 * 189.3 comes). Derived fields: open/high/low follow `last`; `trades`
 * counts the ticks that carry `last`; `volume` adds up `last_size` until
 * the feed sends `volume` itself, after which the feed's value is taken as
 * it is. Fields beyond the input ones in t->present are ignored.
 *
 * Sessions: the first tick whose ts falls in a later session than the
 * state's (by `sessions`; NULL, or no span_of: UTC days) begins that
 * session before it is folded in: prev_close becomes the close of the
 * session that ended (the last trade, `last`; for a symbol that never
 * traded, the mid price (bid + ask) / 2, exactly; with neither it stays as
 * it was), open/high/low are taken away, trades and a volume added up
 * from last_size start again from 0. A volume the feed sends is the
 * feed's own figure (a feed that sends one resets it for its session
 * itself), so it is kept. A tick whose ts is in an earlier session than
 * the state's (late, out of order) is folded into the session under way.
 *
 * Returns the seq applied (> 0), or 0 when the tick is refused (stale seq,
 * the seq or the volume or trades count would overflow); st is then
 * unchanged. A state with no data (seq 0) never refuses a tick.
 */
uint64_t symbol_state_apply(struct symbol_state *st, const struct tick *t,
                            const struct session_rule *sessions);

/* The session of symbol that ts falls in, by rule (NULL, or no span_of:
 * UTC days, 00:00 to 00:00 UTC). */
void symbol_state_session_of(const struct session_rule *rule,
                             const char *symbol, int64_t ts,
                             struct session_span *out);

/*
 * Put the state `from` says (the store's state row, a Redis state, the
 * serving engine's state) into st; st keeps its own name. What cannot be
 * right is made safe: with seq 0 the state is empty (no field present);
 * bits past the state's fields are dropped; a present field's change seq
 * of 0 or past the state's seq becomes the state's seq (every delta then
 * carries the field, which is always correct), as does an absent field's
 * past it. The end of its session is worked out again at its next tick.
 */
void symbol_state_restore(struct symbol_state *st,
                          const struct symbol_state *from);

/* Empty st (seq 0, no field, as symbol_state_init made it); it keeps its
 * name. */
void symbol_state_clear(struct symbol_state *st);

#endif

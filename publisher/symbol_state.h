/*
 * symbol_state: the state of one symbol, and how a tick folds into it.
 *
 * What it is for: the rules that turn a symbol's ticks into its state live
 * here and nowhere else. The engine folds the ticks it serves with them;
 * the store's writer and the Redis publisher fold the same ticks with them
 * (through a state_table) and so persist and publish the very states the
 * engine serves.
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

/* The full state of one symbol, as the store persists and restores it. */
struct symbol_state {
	char symbol[TICK_SYMBOL_MAX + 1];
	uint64_t seq;     /* seq of the last tick applied; 0 = no data yet */
	int64_t ts;       /* ts of the last tick applied */
	uint16_t present; /* bit (1u << field) over STATE_FIELD_COUNT */
	bool feed_sends_volume; /* volume comes from the feed, not from
	                           last_size */
	struct decimal value[STATE_FIELD_COUNT];
	uint64_t changed_seq[STATE_FIELD_COUNT]; /* seq of each field's last
	                                            change */
};

/* An empty state (seq 0, no field) named name[0..len), len at most
 * TICK_SYMBOL_MAX (the caller checks the name). Every byte of st->symbol
 * after the name is zero: the engine's encoder copies names with a
 * fixed-size memcpy. */
void symbol_state_init(struct symbol_state *st, const char *name, size_t len);

/*
 * Fold one tick into st. The tick's symbol is not looked at: the caller
 * found st by it.
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
 * Returns the seq applied (> 0), or 0 when the tick is refused (stale seq,
 * the seq or the volume or trades count would overflow); st is then
 * unchanged. A state with no data (seq 0) never refuses a tick.
 */
uint64_t symbol_state_apply(struct symbol_state *st, const struct tick *t);

/*
 * Put the state `from` says (the store's state row, a Redis state, the
 * serving engine's state) into st; st keeps its own name. What cannot be
 * right is made safe: with seq 0 the state is empty (no field present);
 * bits past the state's fields are dropped; a field's change seq of 0 or
 * past the state's seq becomes the state's seq (every delta then carries
 * the field, which is always correct).
 */
void symbol_state_restore(struct symbol_state *st,
                          const struct symbol_state *from);

/* Empty st (seq 0, no field, as symbol_state_init made it); it keeps its
 * name. */
void symbol_state_clear(struct symbol_state *st);

#endif

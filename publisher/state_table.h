/*
 * state_table: the latest state of every symbol, by name, and nothing
 * else: no subscribers, no change lists, no encodings.
 *
 * What it is for: a component that folds ticks for itself rather than for
 * clients keeps its states here. The store's writer folds the ticks it
 * writes (what the state rows say) and the Redis publisher the ticks it
 * publishes (what edges are given as state). The folding is
 * symbol_state_apply(), the engine's own rules, so these states are the
 * ones the engine serves.
 *
 * What it owns: its states. Not thread-safe: a table is used by one thread
 * at a time (the store's: the thread that opens it, then its writer
 * thread, or the importing thread; the Redis publisher's: the thread that
 * restores it before the start, then the publisher's own thread).
 *
 * Who calls it: the store (store.c loads and restores the states,
 * store_write.c folds each batch, store_reserve.c and store_rewind.c put
 * states back, store_import.c folds imported ticks) and the Redis
 * publisher (redis_publisher.c).
 */
#ifndef PUBLISHER_STATE_TABLE_H
#define PUBLISHER_STATE_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "symbol_state.h"
#include "tick.h"

struct state_table;

/* An empty table; NULL on allocation failure. */
struct state_table *state_table_create(void);

/* NULL is a no-op. */
void state_table_destroy(struct state_table *t);

/* Where trading sessions begin for the folds of state_table_apply()
 * (copied; its ctx is borrowed and must outlive the table). NULL, the
 * default: UTC days. Set it before the first tick, to the rule the
 * engine folds with. */
void state_table_set_sessions(struct state_table *t,
                              const struct session_rule *rule);

/*
 * Fold the tick into the state of its symbol (made, empty, on its first
 * tick) by symbol_state_apply(). Returns the seq applied (> 0), or 0 when
 * the tick is refused: an invalid symbol, a refusal of
 * symbol_state_apply(), or out of memory. The table is then unchanged.
 */
uint64_t state_table_apply(struct state_table *t, const struct tick *tick);

/* Put s into its symbol's state (see symbol_state_restore(); seq 0
 * empties it). Returns 0, or -1 for an invalid symbol or out of memory. */
int state_table_restore(struct state_table *t, const struct symbol_state *s);

/* The state of symbol, or NULL when it has no data (unknown, or emptied).
 * Borrowed: valid until the next state_table_apply() or
 * state_table_restore(). */
const struct symbol_state *state_table_find(const struct state_table *t,
                                            const char *symbol);

/* Symbols with data. */
size_t state_table_count(const struct state_table *t);

/* Call fn for every symbol with data, in the order the table first saw
 * them. fn must not change the table. */
void state_table_foreach(const struct state_table *t,
                         void (*fn)(const struct symbol_state *s, void *ctx),
                         void *ctx);

#endif

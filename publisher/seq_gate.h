/*
 * seq_gate: the pipeline's check that no seq is handed out past what a
 * sink has reserved durably for its symbol (store.h, "Seqs").
 *
 * What it is for: within an epoch a (symbol, seq) pair must name one state
 * forever, also across a crash that loses the ticks the store had not yet
 * written. The store commits per symbol the seq it may go up to and the
 * fields it may have had by then; the gate lets a tick through only when
 * its seq (the symbol's next) is within that and it adds no field outside
 * it. A tick that is not let through waits, and its symbol is asked for
 * more; a symbol is also asked for more, without waiting, once half of its
 * last block is used, so a live feed normally never waits.
 *
 * What it owns: per symbol (a table by name): the seq last applied and
 * the fields the symbol has (a mirror of the engine's, filled from a
 * lookup the first time a symbol is seen), what has been granted, and
 * what is being asked. The asks are collected here until the caller takes
 * them (seq_gate_asks) and hands them to the sink; grants come back
 * through seq_gate_grant(). Grants carry a generation: after
 * seq_gate_reset() (a new epoch) those of older generations are ignored.
 *
 * Blocks: a symbol is asked for SEQ_GATE_BLOCK seqs ahead of its seq, and
 * for twice its last block when it runs short again less than two
 * seconds after the last time (a hot symbol), up to SEQ_GATE_BLOCK_MAX,
 * so half a block lasts for seconds at any rate: that is how long the
 * store may fail before a symbol runs out.
 *
 * Who calls it: the pipeline alone (pipeline_seqs.c), on the loop's
 * thread (it is not thread-safe), asking its sinks (the store, through
 * sink.h's reserve and reserved ops) for grants. Knows nothing of SQL.
 */
#ifndef PUBLISHER_SEQ_GATE_H
#define PUBLISHER_SEQ_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sink.h"
#include "tick.h"

#define SEQ_GATE_BLOCK     65536ull
#define SEQ_GATE_BLOCK_MAX (1ull << 24)

struct seq_gate;
struct seq_gate_sym;

/* What the engine holds for symbol: 0 with *seq and *fields (bit 1u <<
 * field over the state's fields) set, or -1 when it has no data. */
typedef int (*seq_gate_lookup_fn)(const char *symbol, uint64_t *seq,
                                  uint16_t *fields, void *ctx);

/* NULL when out of memory. */
struct seq_gate *seq_gate_create(seq_gate_lookup_fn lookup, void *ctx);

/* NULL is a no-op. */
void seq_gate_destroy(struct seq_gate *g);

/* Forget every symbol and every ask (a new epoch): grants of the
 * generations before are ignored from now on. Returns the new
 * generation. */
uint32_t seq_gate_reset(struct seq_gate *g);

/* The generation asks are made in (0 until the first reset). */
uint32_t seq_gate_gen(const struct seq_gate *g);

/* The state fields a tick gives its symbol: its own, and those derived
 * from them (open/high/low/trades from last, volume from last_size). */
uint16_t seq_gate_tick_fields(const struct tick *t);

/*
 * May the engine apply t (its seq 0: the engine gives the next) now?
 * true: *y is its symbol's entry for seq_gate_applied() once the engine
 * has applied it (NULL for a symbol the engine refuses: nothing to keep).
 * false: the tick must wait for a grant; its symbol is asked for what it
 * needs (or the gate is out of memory: it must wait all the same). now_us
 * (monotonic) sizes the block asked. *y is valid until the next call into
 * the gate.
 */
bool seq_gate_check(struct seq_gate *g, const struct tick *t, int64_t now_us,
                    struct seq_gate_sym **y);

/* The engine applied t with seq (> 0). y NULL is a no-op. */
void seq_gate_applied(struct seq_gate_sym *y, const struct tick *t,
                      uint64_t seq);

/* Ask for every symbol that has used half its block or more (after the
 * grants a sink starts with: so the first ticks do not wait). */
void seq_gate_ask_due(struct seq_gate *g, int64_t now_us);

/* Asks made since seq_gate_clear_asks(), in order; borrowed until the
 * next call into the gate. */
const struct sink_reservation *seq_gate_asks(const struct seq_gate *g,
                                             size_t *n);

void seq_gate_clear_asks(struct seq_gate *g);

/* A sink made r durable in generation gen: the symbol may go up to it.
 * Grants of another generation are ignored. Returns 0, or -1 when out of
 * memory (the grant is lost: its symbol asks again). */
int seq_gate_grant(struct seq_gate *g, uint32_t gen,
                   const struct sink_reservation *r);

/* Set a symbol's entry outright, as asked together with a new epoch:
 * applied up to seq with fields, granted up to r->seq and r->fields
 * (durable once the epoch is; until then no more is handed out). Returns
 * 0, or -1 when out of memory. */
int seq_gate_seed(struct seq_gate *g, const struct sink_reservation *r,
                  uint64_t seq, uint16_t fields);

/* The ask for a symbol at seq with fields, sized as the gate sizes its
 * asks: for the caller that seeds a new epoch. */
struct sink_reservation seq_gate_first_ask(const char *symbol, uint64_t seq,
                                           uint16_t fields);

/* Symbols known. */
size_t seq_gate_count(const struct seq_gate *g);

#endif

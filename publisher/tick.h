/*
 * tick: one price update as it comes from a feed, and the names of its fields.
 *
 * A tick carries a timestamp, a symbol and any subset of the input fields
 * (a quote carries bid/ask and sizes, a trade carries last/last_size). The
 * same field numbering is used by the engine's symbol state, which adds the
 * derived fields after the input ones.
 *
 * What it owns: nothing; a struct tick is a plain value, copied wherever
 * it goes (a tick_queue, a sink's queue).
 *
 * Who calls it: every stage of the tick path: the feeds and the tick-file
 * parser make ticks, the pipeline and the engine apply them, the store and
 * the Redis link store and publish them. A symbol name that comes in from
 * outside (a request, a token, the command line, a file, Redis) is checked
 * with tick_symbol_valid().
 */
#ifndef PUBLISHER_TICK_H
#define PUBLISHER_TICK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decimal.h"

#define TICK_SYMBOL_MAX 32

enum tick_field {
	/* Input fields: a tick may carry any subset. */
	FIELD_BID,
	FIELD_ASK,
	FIELD_BID_SIZE,
	FIELD_ASK_SIZE,
	FIELD_LAST,
	FIELD_LAST_SIZE,
	FIELD_VOLUME,
	TICK_FIELD_COUNT,
	/* Derived fields: computed by the engine, never sent by a feed.
	 * open/high/low/volume/trades are of the trading session under way;
	 * prev_close is the close of the session before it. */
	FIELD_OPEN = TICK_FIELD_COUNT,
	FIELD_HIGH,
	FIELD_LOW,
	FIELD_TRADES,
	FIELD_PREV_CLOSE,
	STATE_FIELD_COUNT
};

struct tick {
	int64_t ts;		   /* microseconds since the Unix epoch */
	uint64_t seq;		   /* 0 = let the engine assign the next seq */
	uint16_t present;	   /* bit (1u << field) set when the field is present */
	char symbol[TICK_SYMBOL_MAX + 1]; /* NUL-terminated */
	struct decimal value[TICK_FIELD_COUNT];
};

/* The wire and file name of a field ("bid", "last_size", "trades", ...). */
const char *
tick_field_name(enum tick_field f);

/* The field named name[0..len), or -1 when no field has that name. Only
 * input fields (below TICK_FIELD_COUNT) are returned. */
int
tick_field_lookup(const char *name, size_t len);

/* True when s[0..len) is a valid symbol: 1..32 of [A-Za-z0-9._:/-]. */
bool
tick_symbol_valid(const char *s, size_t len);

static inline bool
tick_has(const struct tick *t, enum tick_field f)
{
	return (t->present >> f) & 1u;
}

static inline void
tick_set(struct tick *t, enum tick_field f, struct decimal v)
{
	t->value[f] = v;
	t->present |= (uint16_t)(1u << f);
}

#endif

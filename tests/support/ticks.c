/*
 * ticks.c: tick builders and comparisons for tests and benchmarks.
 */
#include <stdio.h>
#include <string.h>

#include "support/ticks.h"

struct decimal
dec_raw(int64_t mantissa, uint8_t scale)
{
	struct decimal d = {mantissa, scale};

	return d;
}

struct tick
tick_make(const char *symbol, int64_t ts)
{
	struct tick t;

	memset(&t, 0, sizeof t);
	snprintf(t.symbol, sizeof t.symbol, "%s", symbol);
	t.ts = ts;
	return t;
}

struct tick
tick_quote(const char *symbol, int64_t ts, struct decimal bid,
           struct decimal ask)
{
	struct tick t = tick_make(symbol, ts);

	tick_set(&t, FIELD_BID, bid);
	tick_set(&t, FIELD_ASK, ask);
	return t;
}

struct tick
tick_trade(const char *symbol, int64_t ts, struct decimal last,
           struct decimal size)
{
	struct tick t = tick_make(symbol, ts);

	tick_set(&t, FIELD_LAST, last);
	tick_set(&t, FIELD_LAST_SIZE, size);
	return t;
}

static bool
same_decimal(struct decimal a, struct decimal b)
{
	return a.mantissa == b.mantissa && a.scale == b.scale;
}

bool
states_equal(const struct symbol_state *a, const struct symbol_state *b)
{
	int f;

	if (strcmp(a->symbol, b->symbol) || a->seq != b->seq ||
	    a->ts != b->ts || a->present != b->present ||
	    a->feed_sends_volume != b->feed_sends_volume ||
	    a->session != b->session)
		return false;
	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		/* A field without a value still says when it was taken
		 * away. */
		if (a->changed_seq[f] != b->changed_seq[f])
			return false;
		if (((a->present >> f) & 1u) &&
		    !same_decimal(a->value[f], b->value[f]))
			return false;
	}
	return true;
}

void
noop_ready(void *user, void *ctx)
{
}

struct engine *
quiet_engine_create(void)
{
	struct engine_config ec = {.client_ready = noop_ready};

	return engine_create(&ec);
}

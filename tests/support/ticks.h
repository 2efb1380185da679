/*
 * ticks.h: ticks and symbol states as tests and benchmarks build and compare
 * them, and an engine to apply them to.
 *
 * Nothing here asserts (asserts.h has the cmocka versions), so a benchmark
 * can use it as well as a unit test.
 */
#ifndef TESTS_SUPPORT_TICKS_H
#define TESTS_SUPPORT_TICKS_H

#include <stdbool.h>
#include <stdint.h>

#include "decimal.h"
#include "engine.h"
#include "tick.h"

/* The decimal mantissa / 10^scale: dec_raw(18930, 2) is 189.30. */
struct decimal dec_raw(int64_t mantissa, uint8_t scale);

/* A tick of symbol at ts with no field; a quote (bid and ask); a trade
 * (last and last_size). Seq 0: the engine assigns the next. */
struct tick tick_make(const char *symbol, int64_t ts);

struct tick tick_quote(const char *symbol, int64_t ts, struct decimal bid,
                       struct decimal ask);

struct tick tick_trade(const char *symbol, int64_t ts, struct decimal last,
                       struct decimal size);

/* Everything the engine keeps of a symbol, each field with the seq it last
 * changed at (or was taken away at), and the trading session it is in:
 * what a restart or an edge must reproduce exactly. */
bool states_equal(const struct symbol_state *a, const struct symbol_state *b);

/* An engine_config.client_ready that does nothing. */
void noop_ready(void *user, void *ctx);

/* An engine whose clients nobody writes to (client_ready is noop_ready),
 * for applying ticks and reading states. NULL when out of memory; the
 * caller destroys it with engine_destroy(). */
struct engine *quiet_engine_create(void);

#endif

/*
 * asserts.h: cmocka assertions on decimals, ticks and symbol states, for
 * unit tests. A failure names the values, not only the line.
 */
#ifndef TESTS_SUPPORT_ASSERTS_H
#define TESTS_SUPPORT_ASSERTS_H

#include "decimal.h"
#include "engine.h"
#include "tick.h"

/* The decimal written as text, which must parse: dec("189.30"). */
struct decimal dec(const char *text);

/* Same mantissa and same scale (189.30 is not 189.3). */
void assert_decimal_exact(struct decimal got, struct decimal want);

/* d formats to want. */
void assert_decimal_text(struct decimal d, const char *want);

/* Same symbol, ts, seq and fields, each exact. */
void assert_tick_equal(const struct tick *a, const struct tick *b);

/* Same symbol state, each field exact and with the same changed_seq. */
void assert_state_equal(const struct symbol_state *a,
                        const struct symbol_state *b);

/* quiet_engine_create() (support/ticks.h), which must succeed. */
struct engine *new_engine(void);

#endif

/*
 * asserts.c: cmocka assertions on decimals, ticks and symbol states.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "support/asserts.h"
#include "support/ticks.h"

struct decimal
dec(const char *text)
{
	struct decimal d;

	assert_int_equal(decimal_parse(text, strlen(text), &d), 0);
	return d;
}

void
assert_decimal_exact(struct decimal got, struct decimal want)
{
	if (got.mantissa != want.mantissa || got.scale != want.scale)
		fail_msg("decimal %lld/10^%d != %lld/10^%d",
		         (long long)got.mantissa, got.scale,
		         (long long)want.mantissa, want.scale);
}

void
assert_decimal_text(struct decimal d, const char *want)
{
	char buf[DECIMAL_MAX_TEXT + 1];
	size_t n = decimal_format(d, buf);

	buf[n] = '\0';
	assert_string_equal(buf, want);
}

void
assert_tick_equal(const struct tick *a, const struct tick *b)
{
	int f;

	assert_string_equal(a->symbol, b->symbol);
	assert_int_equal(a->ts, b->ts);
	assert_int_equal(a->seq, b->seq);
	assert_int_equal(a->present, b->present);
	for (f = 0; f < TICK_FIELD_COUNT; f++)
		if (tick_has(a, (enum tick_field)f))
			assert_decimal_exact(a->value[f], b->value[f]);
}

void
assert_state_equal(const struct symbol_state *a, const struct symbol_state *b)
{
	int f;

	assert_string_equal(a->symbol, b->symbol);
	assert_int_equal(a->seq, b->seq);
	assert_int_equal(a->ts, b->ts);
	assert_int_equal(a->present, b->present);
	assert_int_equal(a->feed_sends_volume, b->feed_sends_volume);
	assert_int_equal(a->session, b->session);
	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		assert_int_equal(a->changed_seq[f], b->changed_seq[f]);
		if ((a->present >> f) & 1u)
			assert_decimal_exact(a->value[f], b->value[f]);
	}
}

struct engine *
new_engine(void)
{
	struct engine *e = quiet_engine_create();

	assert_non_null(e);
	return e;
}

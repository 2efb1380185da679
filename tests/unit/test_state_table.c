/*
 * Unit tests for publisher/state_table.c and publisher/symbol_state.c: a
 * table folds ticks exactly as the engine does (the same states, field by
 * field, change seqs included, and the same refusals), restores and empties
 * states, finds and counts them, and keeps working as it grows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "decimal.h"
#include "engine.h"
#include "state_table.h"
#include "symbol_state.h"
#include "tick.h"

static uint64_t rng = 88172645463325252ull;

static uint32_t
next(uint32_t below)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % below);
}

static struct decimal
d(int64_t mantissa, uint8_t scale)
{
	struct decimal v = {mantissa, scale};

	return v;
}

/* A random tick on prices that often repeat (so "equal value, no change"
 * happens), sometimes written with another scale, sometimes with the
 * feed's own volume, sometimes with a seq of its own (stale or not). */
static struct tick
random_tick(const char *symbol, int64_t ts)
{
	struct tick t;

	memset(&t, 0, sizeof t);
	snprintf(t.symbol, sizeof t.symbol, "%s", symbol);
	t.ts = ts;
	if (next(3) == 0) {
		int64_t m = 1000 + next(8);

		tick_set(&t, FIELD_LAST, next(4) ? d(m, 1) : d(m * 10, 2));
		tick_set(&t, FIELD_LAST_SIZE, d(1 + next(5), 0));
		if (next(10) == 0)
			tick_set(&t, FIELD_VOLUME, d(next(100000), 0));
	} else {
		tick_set(&t, FIELD_BID, d(999 + next(3), 1));
		tick_set(&t, FIELD_ASK, d(1001 + next(3), 1));
		if (next(2))
			tick_set(&t, FIELD_BID_SIZE, d(next(4), 0));
	}
	if (next(8) == 0)
		t.seq = (uint64_t)ts + next(3) - 1;
	return t;
}

static void
assert_same_state(const struct symbol_state *a, const struct symbol_state *b)
{
	int f;

	assert_string_equal(a->symbol, b->symbol);
	assert_int_equal(a->seq, b->seq);
	assert_int_equal(a->ts, b->ts);
	assert_int_equal(a->present, b->present);
	assert_int_equal(a->feed_sends_volume, b->feed_sends_volume);
	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		if (!((a->present >> f) & 1u))
			continue;
		assert_int_equal(a->value[f].mantissa, b->value[f].mantissa);
		assert_int_equal(a->value[f].scale, b->value[f].scale);
		assert_int_equal(a->changed_seq[f], b->changed_seq[f]);
	}
}

static void
noop_ready(void *user, void *ctx)
{
}

static void
test_folds_exactly_like_the_engine(void **state)
{
	static const char *const names[] = {"AAPL", "MSFT", "BRK.B", "EUR/USD",
	                                    "ES:H25"};
	struct engine_config cfg = {.client_ready = noop_ready};
	struct engine *e = engine_create(&cfg);
	struct state_table *t = state_table_create();
	struct symbol_state es;
	const struct symbol_state *ts;
	int64_t k;
	size_t i;

	assert_non_null(e);
	assert_non_null(t);
	for (k = 1; k <= 20000; k++) {
		const char *name = names[next(5)];
		struct tick tk = random_tick(name, k);

		assert_int_equal(state_table_apply(t, &tk),
		                 engine_apply_tick(e, &tk));
		assert_int_equal(engine_get_state(e, name, &es), 0);
		ts = state_table_find(t, name);
		assert_non_null(ts);
		assert_same_state(ts, &es);
	}
	for (i = 0; i < 5; i++) {
		assert_int_equal(engine_get_state(e, names[i], &es), 0);
		assert_same_state(state_table_find(t, names[i]), &es);
	}
	assert_int_equal(state_table_count(t), engine_symbol_count(e));
	state_table_destroy(t);
	engine_destroy(e);
}

static void
test_refused_ticks_leave_no_trace(void **state)
{
	struct state_table *t = state_table_create();
	struct tick tk;

	memset(&tk, 0, sizeof tk);
	tick_set(&tk, FIELD_BID, d(1, 0));
	assert_int_equal(state_table_apply(t, &tk), 0); /* empty name */
	strcpy(tk.symbol, "BAD NAME");
	assert_int_equal(state_table_apply(t, &tk), 0);
	memset(tk.symbol, 'A', sizeof tk.symbol); /* no terminator */
	assert_int_equal(state_table_apply(t, &tk), 0);
	assert_int_equal(state_table_count(t), 0);
	assert_null(state_table_find(t, "BAD NAME"));

	strcpy(tk.symbol, "AAPL");
	tk.seq = 7;
	assert_int_equal(state_table_apply(t, &tk), 7);
	assert_int_equal(state_table_apply(t, &tk), 0); /* same seq */
	tk.seq = 0;
	tk.value[FIELD_BID] = d(2, 0);
	assert_int_equal(state_table_apply(t, &tk), 8);
	assert_int_equal(state_table_find(t, "AAPL")->changed_seq[FIELD_BID],
	                 8);

	/* A volume that would overflow is refused, the state unchanged. */
	memset(&tk, 0, sizeof tk);
	strcpy(tk.symbol, "AAPL");
	tick_set(&tk, FIELD_LAST, d(1, 0));
	tick_set(&tk, FIELD_LAST_SIZE, d(INT64_MAX, 0));
	assert_int_equal(state_table_apply(t, &tk), 9);
	assert_int_equal(state_table_apply(t, &tk), 0);
	assert_int_equal(state_table_find(t, "AAPL")->seq, 9);
	assert_int_equal(state_table_count(t), 1);
	state_table_destroy(t);
	state_table_destroy(NULL);
}

static void
collect(const struct symbol_state *s, void *ctx)
{
	char *out = ctx;

	strcat(out, s->symbol);
	strcat(out, " ");
}

static void
test_restore_find_count_and_foreach(void **state)
{
	struct state_table *t = state_table_create();
	struct symbol_state s;
	const struct symbol_state *got;
	char order[128] = "";
	int f;

	memset(&s, 0, sizeof s);
	strcpy(s.symbol, "MSFT");
	s.seq = 10;
	s.ts = 5;
	s.present = (1u << FIELD_BID) | 0x8000u; /* a bit past the fields */
	s.value[FIELD_BID] = d(41050, 2);
	s.changed_seq[FIELD_BID] = 0; /* cannot be right */
	assert_int_equal(state_table_restore(t, &s), 0);
	strcpy(s.symbol, "AAPL");
	s.changed_seq[FIELD_BID] = 99; /* past the seq: cannot be right */
	assert_int_equal(state_table_restore(t, &s), 0);
	assert_int_equal(state_table_count(t), 2);

	got = state_table_find(t, "MSFT");
	assert_non_null(got);
	assert_int_equal(got->present, 1u << FIELD_BID);
	assert_int_equal(got->changed_seq[FIELD_BID], 10);
	assert_int_equal(state_table_find(t, "AAPL")->changed_seq[FIELD_BID],
	                 10);
	for (f = 0; f < STATE_FIELD_COUNT; f++)
		if (f != FIELD_BID)
			assert_false((got->present >> f) & 1u);

	/* Emptied: no data, not counted, not walked; ticks start again. */
	memset(&s, 0, sizeof s);
	strcpy(s.symbol, "MSFT");
	assert_int_equal(state_table_restore(t, &s), 0);
	assert_null(state_table_find(t, "MSFT"));
	assert_int_equal(state_table_count(t), 1);
	strcpy(s.symbol, "UNSEEN"); /* emptying an unknown symbol: nothing */
	assert_int_equal(state_table_restore(t, &s), 0);
	assert_int_equal(state_table_count(t), 1);
	strcpy(s.symbol, "BAD NAME");
	assert_int_equal(state_table_restore(t, &s), -1);
	s.seq = 1;
	assert_int_equal(state_table_restore(t, &s), -1);

	state_table_foreach(t, collect, order);
	assert_string_equal(order, "AAPL ");
	{
		struct tick tk;

		memset(&tk, 0, sizeof tk);
		strcpy(tk.symbol, "MSFT");
		tick_set(&tk, FIELD_ASK, d(5, 0));
		assert_int_equal(state_table_apply(t, &tk), 1);
		strcpy(tk.symbol, "IBM");
		assert_int_equal(state_table_apply(t, &tk), 1);
	}
	/* In the order the table first saw them. */
	order[0] = '\0';
	state_table_foreach(t, collect, order);
	assert_string_equal(order, "MSFT AAPL IBM ");
	assert_int_equal(state_table_count(t), 3);
	assert_null(state_table_find(t, ""));
	assert_null(state_table_find(t, "NOPE"));
	state_table_destroy(t);
}

static void
test_many_symbols(void **state)
{
	enum { N = 20000 };
	struct state_table *t = state_table_create();
	struct tick tk;
	char name[TICK_SYMBOL_MAX + 1];
	int i;

	memset(&tk, 0, sizeof tk);
	tick_set(&tk, FIELD_BID, d(1, 0));
	for (i = 0; i < N; i++) {
		/* Names of every length, some sharing long prefixes. */
		snprintf(tk.symbol, sizeof tk.symbol, "%.*s%d", i % 26,
		         "ABCDEFGHIJKLMNOPQRSTUVWXYZ", i);
		tk.ts = i;
		assert_int_equal(state_table_apply(t, &tk), 1);
	}
	assert_int_equal(state_table_count(t), N);
	for (i = 0; i < N; i++) {
		const struct symbol_state *s;

		snprintf(name, sizeof name, "%.*s%d", i % 26,
		         "ABCDEFGHIJKLMNOPQRSTUVWXYZ", i);
		s = state_table_find(t, name);
		assert_non_null(s);
		assert_string_equal(s->symbol, name);
		assert_int_equal(s->ts, i);
	}
	state_table_destroy(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_folds_exactly_like_the_engine),
	        cmocka_unit_test(test_refused_ticks_leave_no_trace),
	        cmocka_unit_test(test_restore_find_count_and_foreach),
	        cmocka_unit_test(test_many_symbols),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

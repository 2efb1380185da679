/*
 * Unit tests for publisher/symbol_state.c: how a tick folds into a state
 * across trading sessions. At a boundary open/high/low are taken away
 * (and come back with the session's first trade), trades and a volume
 * added up from last_size start again, a volume the feed sends is kept,
 * and prev_close is the last trade, or the exact mid price of a symbol
 * that only ever had quotes. A late tick (from an earlier session) is
 * folded into the session under way; a refused tick changes nothing; a
 * restored state goes on in its session. Sessions here are 1000 µs long
 * unless a test says otherwise (New York's, from trading_session.c, or
 * UTC days without a rule).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "symbol_state.h"
#include "trading_session.h"

#include "support/asserts.h"
#include "support/ticks.h"

#define BIT(f) (1u << (f))

static int span_calls;

/* Sessions [k * 1000, (k + 1) * 1000) µs. */
static void
thousands(const void *ctx, const char *symbol, int64_t ts,
          struct session_span *out)
{
	int64_t k = ts / 1000 - (ts % 1000 < 0);

	span_calls++;
	out->start = k * 1000;
	out->end = out->start + 1000;
}

static const struct session_rule rule = {thousands, NULL};

static struct symbol_state
fresh(const char *name)
{
	struct symbol_state st;

	symbol_state_init(&st, name, strlen(name));
	return st;
}

static uint64_t
trade(struct symbol_state *st, int64_t ts, const char *last, const char *size)
{
	struct tick t = tick_trade(st->symbol, ts, dec(last), dec(size));

	return symbol_state_apply(st, &t, &rule);
}

static uint64_t
quote(struct symbol_state *st, int64_t ts, const char *bid, const char *ask)
{
	struct tick t = tick_quote(st->symbol, ts, dec(bid), dec(ask));

	return symbol_state_apply(st, &t, &rule);
}

static bool
has(const struct symbol_state *st, int f)
{
	return (st->present >> f) & 1u;
}

static void
test_a_trade_begins_the_next_session(void **state)
{
	struct symbol_state st = fresh("AAPL");

	assert_int_equal(trade(&st, 100, "10.5", "100"), 1);
	assert_int_equal(trade(&st, 200, "11", "50"), 2);
	assert_int_equal(trade(&st, 300, "10.25", "5"), 3);
	assert_int_equal(st.session, 0);
	assert_false(has(&st, FIELD_PREV_CLOSE));
	assert_decimal_text(st.value[FIELD_VOLUME], "155");
	assert_decimal_text(st.value[FIELD_TRADES], "3");

	assert_int_equal(trade(&st, 1100, "12", "10"), 4);
	assert_int_equal(st.session, 1000);
	assert_decimal_text(st.value[FIELD_PREV_CLOSE], "10.25");
	assert_int_equal(st.changed_seq[FIELD_PREV_CLOSE], 4);
	assert_decimal_text(st.value[FIELD_OPEN], "12");
	assert_decimal_text(st.value[FIELD_HIGH], "12");
	assert_decimal_text(st.value[FIELD_LOW], "12");
	assert_decimal_text(st.value[FIELD_VOLUME], "10");
	assert_decimal_text(st.value[FIELD_TRADES], "1");
	assert_int_equal(st.changed_seq[FIELD_OPEN], 4);
	assert_int_equal(st.changed_seq[FIELD_TRADES], 4);

	/* within the session, prev_close stays */
	assert_int_equal(trade(&st, 1200, "13", "1"), 5);
	assert_decimal_text(st.value[FIELD_PREV_CLOSE], "10.25");
	assert_int_equal(st.changed_seq[FIELD_PREV_CLOSE], 4);
	assert_decimal_text(st.value[FIELD_OPEN], "12");
	assert_decimal_text(st.value[FIELD_HIGH], "13");
	assert_decimal_text(st.value[FIELD_TRADES], "2");
}

static void
test_a_quote_begins_the_next_session(void **state)
{
	struct symbol_state st = fresh("AAPL");

	trade(&st, 100, "10.5", "100");
	assert_int_equal(quote(&st, 2500, "10.4", "10.6"), 2);
	assert_int_equal(st.session, 2000);
	assert_decimal_text(st.value[FIELD_PREV_CLOSE], "10.5");
	/* no trade yet in this session: no open, high or low, and they say
	 * when they went (a delta then carries null) */
	assert_false(has(&st, FIELD_OPEN) || has(&st, FIELD_HIGH) ||
	             has(&st, FIELD_LOW));
	assert_int_equal(st.changed_seq[FIELD_OPEN], 2);
	assert_int_equal(st.changed_seq[FIELD_HIGH], 2);
	assert_int_equal(st.changed_seq[FIELD_LOW], 2);
	assert_decimal_text(st.value[FIELD_TRADES], "0");
	assert_decimal_text(st.value[FIELD_VOLUME], "0");
	assert_int_equal(st.changed_seq[FIELD_VOLUME], 2);
	/* the last trade and quote stay what they were */
	assert_decimal_text(st.value[FIELD_LAST], "10.5");
	assert_int_equal(st.changed_seq[FIELD_LAST], 1);

	assert_int_equal(trade(&st, 2600, "10.55", "7"), 3);
	assert_decimal_text(st.value[FIELD_OPEN], "10.55");
	assert_decimal_text(st.value[FIELD_LOW], "10.55");
	assert_decimal_text(st.value[FIELD_TRADES], "1");
	assert_decimal_text(st.value[FIELD_VOLUME], "7");
	assert_decimal_text(st.value[FIELD_PREV_CLOSE], "10.5");
}

static void
test_quote_only_closes_at_the_exact_mid(void **state)
{
	struct symbol_state fx = fresh("EUR/USD");
	struct symbol_state odd = fresh("ODD");

	quote(&fx, 10, "1.0850", "1.0852");
	quote(&fx, 990, "1.0851", "1.0853");
	quote(&fx, 1010, "1.0900", "1.0902");
	assert_decimal_text(fx.value[FIELD_PREV_CLOSE], "1.0852");
	assert_int_equal(fx.value[FIELD_PREV_CLOSE].scale, 4);
	/* a quote-only symbol never gets trades, volume, open... */
	assert_int_equal(fx.present, BIT(FIELD_BID) | BIT(FIELD_ASK) |
	                                     BIT(FIELD_PREV_CLOSE));
	assert_int_equal(fx.changed_seq[FIELD_OPEN], 0);
	quote(&fx, 2010, "1.0900", "1.0905");
	assert_decimal_text(fx.value[FIELD_PREV_CLOSE], "1.0901");

	/* an odd sum takes one more digit; scales may differ */
	quote(&odd, 10, "189.33", "189.36");
	quote(&odd, 1010, "1", "2");
	assert_decimal_text(odd.value[FIELD_PREV_CLOSE], "189.345");
	quote(&odd, 2010, "1", "2");
	assert_decimal_text(odd.value[FIELD_PREV_CLOSE], "1.5");
	/* a bid alone has no mid: prev_close stays as it was */
	{
		struct symbol_state one = fresh("ONE");
		struct tick t = tick_make("ONE", 10);

		tick_set(&t, FIELD_BID, dec("5"));
		symbol_state_apply(&one, &t, &rule);
		t.ts = 1010;
		symbol_state_apply(&one, &t, &rule);
		assert_false(has(&one, FIELD_PREV_CLOSE));
	}
}

static void
test_a_volume_the_feed_sends_is_kept(void **state)
{
	struct symbol_state st = fresh("IBM");
	struct tick t = tick_trade("IBM", 100, dec("150"), dec("10"));

	tick_set(&t, FIELD_VOLUME, dec("5000"));
	assert_int_equal(symbol_state_apply(&st, &t, &rule), 1);
	t = tick_trade("IBM", 1100, dec("151"), dec("20"));
	assert_int_equal(symbol_state_apply(&st, &t, &rule), 2);
	/* the feed's figure, not ours: its next volume resets it */
	assert_decimal_text(st.value[FIELD_VOLUME], "5000");
	assert_int_equal(st.changed_seq[FIELD_VOLUME], 1);
	assert_decimal_text(st.value[FIELD_TRADES], "1");
	assert_decimal_text(st.value[FIELD_PREV_CLOSE], "150");
}

static void
test_ticks_out_of_order_across_a_boundary(void **state)
{
	struct symbol_state st = fresh("MSFT");

	trade(&st, 900, "10", "1");
	trade(&st, 1100, "20", "2"); /* a new session */
	assert_decimal_text(st.value[FIELD_PREV_CLOSE], "10");
	assert_int_equal(st.session, 1000);
	/* late, from the session before: folded into this one, which
	 * goes on (no second reset) */
	assert_int_equal(trade(&st, 950, "5", "4"), 3);
	assert_int_equal(st.session, 1000);
	assert_int_equal(st.ts, 950);
	assert_decimal_text(st.value[FIELD_PREV_CLOSE], "10");
	assert_decimal_text(st.value[FIELD_OPEN], "20");
	assert_decimal_text(st.value[FIELD_LOW], "5");
	assert_decimal_text(st.value[FIELD_TRADES], "2");
	assert_decimal_text(st.value[FIELD_VOLUME], "6");
	/* the next tick of the session is no boundary either, though the
	 * tick before it was of an earlier session */
	assert_int_equal(trade(&st, 1200, "21", "1"), 4);
	assert_decimal_text(st.value[FIELD_TRADES], "3");
	assert_decimal_text(st.value[FIELD_OPEN], "20");
	/* the next session closes this one at its last trade */
	trade(&st, 2100, "22", "1");
	assert_int_equal(st.session, 2000);
	assert_decimal_text(st.value[FIELD_PREV_CLOSE], "21");
	assert_decimal_text(st.value[FIELD_TRADES], "1");
	/* a gap of sessions: one boundary */
	trade(&st, 9500, "30", "1");
	assert_int_equal(st.session, 9000);
	assert_decimal_text(st.value[FIELD_PREV_CLOSE], "22");
}

static void
test_the_rule_is_asked_once_a_session(void **state)
{
	struct symbol_state st = fresh("HOT");
	int64_t ts;

	span_calls = 0;
	for (ts = 0; ts < 3000; ts += 10)
		trade(&st, ts, "1", "1");
	/* one call per session (the first tick of each) */
	assert_int_equal(span_calls, 3);
}

static void
test_a_refused_tick_changes_nothing(void **state)
{
	struct symbol_state st = fresh("X"), before;
	struct tick t;

	trade(&st, 100, "10", "1");
	trade(&st, 200, "11", "1");
	before = st;
	/* a stale seq at a boundary */
	t = tick_trade("X", 1500, dec("12"), dec("1"));
	t.seq = 2;
	assert_int_equal(symbol_state_apply(&st, &t, &rule), 0);
	assert_true(states_equal(&st, &before));
	/* a volume that would overflow, at a boundary: the new session's
	 * volume starts from 0, so it is taken */
	t = tick_trade("X", 1500, dec("12"), dec_raw(INT64_MAX, 0));
	assert_int_equal(symbol_state_apply(&st, &t, &rule), 3);
	/* ... and the same in the session refuses, leaving it as it was */
	before = st;
	t = tick_trade("X", 1600, dec("12"), dec_raw(INT64_MAX, 0));
	assert_int_equal(symbol_state_apply(&st, &t, &rule), 0);
	assert_true(states_equal(&st, &before));
}

static void
test_a_restored_state_goes_on_in_its_session(void **state)
{
	struct symbol_state st = fresh("R"), back = fresh("R");

	trade(&st, 1100, "10", "1");
	trade(&st, 1200, "11", "1");
	symbol_state_restore(&back, &st);
	assert_int_equal(back.session, 1000);
	assert_int_equal(back.session_end, INT64_MIN);
	trade(&back, 1300, "12", "1");
	assert_false(has(&back, FIELD_PREV_CLOSE));
	assert_decimal_text(back.value[FIELD_TRADES], "3");
	trade(&back, 2300, "13", "1");
	assert_decimal_text(back.value[FIELD_PREV_CLOSE], "12");

	/* a state kept before states knew their session: that of its ts */
	st.session = SYMBOL_STATE_SESSION_UNKNOWN;
	symbol_state_restore(&back, &st);
	trade(&back, 1900, "14", "1");
	assert_int_equal(back.session, 1000);
	assert_decimal_text(back.value[FIELD_TRADES], "3");
	trade(&back, 2000, "15", "1");
	assert_int_equal(back.session, 2000);
	assert_decimal_text(back.value[FIELD_PREV_CLOSE], "14");

	/* change seqs: a field without a value keeps when it went (0 stays
	 * 0), one past the state's seq is brought back to it */
	st = fresh("R");
	trade(&st, 100, "10", "1");
	quote(&st, 1100, "9", "11");
	assert_int_equal(st.changed_seq[FIELD_OPEN], 2);
	st.changed_seq[FIELD_HIGH] = 99;
	symbol_state_restore(&back, &st);
	assert_int_equal(back.changed_seq[FIELD_OPEN], 2);
	assert_int_equal(back.changed_seq[FIELD_HIGH], 2);
	assert_int_equal(back.changed_seq[FIELD_BID_SIZE], 0);
}

static void
test_utc_days_without_a_rule(void **state)
{
	const int64_t day = 86400 * (int64_t)1000000;
	struct symbol_state st = fresh("D");
	struct tick t = tick_trade("D", day - 1, dec("1"), dec("1"));

	symbol_state_apply(&st, &t, NULL);
	t = tick_trade("D", day, dec("2"), dec("1"));
	symbol_state_apply(&st, &t, NULL);
	assert_int_equal(st.session, day);
	assert_decimal_text(st.value[FIELD_PREV_CLOSE], "1");
	/* before 1970 too */
	st = fresh("D");
	t = tick_trade("D", -1, dec("1"), dec("1"));
	symbol_state_apply(&st, &t, NULL);
	assert_int_equal(st.session, -day);
}

static void
test_new_york_equities_across_a_weekend_and_the_clock_change(void **state)
{
	const char *specs[1] = {"*=America/New_York@09:30"};
	struct trading_session_options o = {{specs[0]}, 1};
	struct trading_sessions *ny;
	struct session_rule r;
	struct symbol_state st = fresh("AAPL");
	struct tick t;
	char err[300];

	ny = trading_sessions_create(&o, err, sizeof err);
	assert_non_null(ny);
	r = trading_sessions_rule(ny);
	/* Friday 2024-03-08 15:00 EST */
	t = tick_trade("AAPL", 1709928000000000, dec("170.5"), dec("100"));
	symbol_state_apply(&st, &t, &r);
	/* Monday 2024-03-11 09:00 EDT: the session that began on Sunday
	 * at 09:30 EDT, after the clock change */
	t = tick_trade("AAPL", 1710162000000000, dec("171"), dec("10"));
	symbol_state_apply(&st, &t, &r);
	assert_decimal_text(st.value[FIELD_PREV_CLOSE], "170.5");
	assert_int_equal(st.session, 1710077400000000);
	/* 09:29:59 EDT: still that one; 09:30 EDT (13:30Z): the next */
	t = tick_trade("AAPL", 1710163799000000, dec("172"), dec("1"));
	symbol_state_apply(&st, &t, &r);
	assert_decimal_text(st.value[FIELD_TRADES], "2");
	t = tick_trade("AAPL", 1710163800000000, dec("173"), dec("1"));
	symbol_state_apply(&st, &t, &r);
	assert_int_equal(st.session, 1710163800000000);
	assert_decimal_text(st.value[FIELD_PREV_CLOSE], "172");
	assert_decimal_text(st.value[FIELD_OPEN], "173");
	trading_sessions_destroy(ny);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_a_trade_begins_the_next_session),
	        cmocka_unit_test(test_a_quote_begins_the_next_session),
	        cmocka_unit_test(test_quote_only_closes_at_the_exact_mid),
	        cmocka_unit_test(test_a_volume_the_feed_sends_is_kept),
	        cmocka_unit_test(test_ticks_out_of_order_across_a_boundary),
	        cmocka_unit_test(test_the_rule_is_asked_once_a_session),
	        cmocka_unit_test(test_a_refused_tick_changes_nothing),
	        cmocka_unit_test(test_a_restored_state_goes_on_in_its_session),
	        cmocka_unit_test(test_utc_days_without_a_rule),
	        cmocka_unit_test(
	                test_new_york_equities_across_a_weekend_and_the_clock_change),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

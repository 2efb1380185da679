/*
 * Unit tests for feeds/feed.c and feeds/feed_synthetic.c: spec parsing and
 * its messages (replay and tcp too; their adapters have their own tests),
 * the idle `none` feed, the synthetic feed's determinism, tick validity and
 * stopping, and feed_control() refusing feeds that are not a replay.
 *
 * No test asserts on timing: the synthetic feed runs at a very high rate and
 * the tests count ticks, never seconds.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "feed.h"

#include "support/timing.h"

static void
test_good_specs_create_feeds(void **state)
{
	static const struct {
		const char *spec;
		const char *kind;
	} good[] = {
	        {"synthetic", "synthetic"},
	        {"synthetic:symbols=5", "synthetic"},
	        {"synthetic:symbols=5,rate=1000,seed=42", "synthetic"},
	        {"synthetic:seed=0,rate=0.5", "synthetic"},
	        {"synthetic:rate=1e6,symbols=100000", "synthetic"},
	        {"synthetic:seed=18446744073709551615", "synthetic"},
	        {"none", "none"},
	        /* Files and ports are only opened and bound by feed_start. */
	        {"replay:ticks.jsonl", "replay"},
	        {"replay:x.csv,speed=max,loop", "replay"},
	        {"replay:x.csv,loop,speed=0.5", "replay"},
	        {"replay:dir/x y.csv,speed=1e6", "replay"},
	        {"tcp:127.0.0.1:9000", "tcp"},
	        {"tcp:127.0.0.1:0", "tcp"},
	        {"tcp:localhost:65535", "tcp"},
	        {"tcp:[::1]:9000", "tcp"},
	};
	struct tick_queue *q = tick_queue_create(16, NULL, NULL);
	size_t i;

	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		char err[256] = "";
		struct feed *f = feed_create(good[i].spec, q, err, sizeof err);
		struct feed_status st;

		if (!f)
			fail_msg("'%s' refused: %s", good[i].spec, err);
		feed_get_status(f, &st);
		assert_string_equal(st.kind, good[i].kind);
		/* Created, not started. */
		assert_false(st.running);
		assert_false(st.finished);
		assert_int_equal(st.ticks, 0);
		assert_int_equal(st.last_tick_us, 0);
		feed_destroy(f);
	}
	feed_destroy(NULL);
	tick_queue_destroy(q);
}

static void
test_bad_specs_name_the_problem(void **state)
{
	static const struct {
		const char *spec;
		const char *want[2]; /* substrings the message must hold */
	} bad[] = {
	        {"synthetic:rate=x",
	         {"feed 'synthetic:rate=x'", "rate must be a positive number"}},
	        {"synthetic:rate=0", {"rate=0'", "rate must be a positive"}},
	        {"synthetic:rate=-5", {"rate=-5'", "rate must be a positive"}},
	        {"synthetic:rate=nan",
	         {"rate=nan'", "rate must be a positive"}},
	        {"synthetic:rate=inf",
	         {"rate=inf'", "rate must be a positive"}},
	        {"synthetic:rate=", {"rate='", "rate must be a positive"}},
	        {"synthetic:rate=10x",
	         {"rate=10x'", "rate must be a positive"}},
	        {"synthetic:rate=1e12", {"rate=1e12'", "rate must be at most"}},
	        {"synthetic:symbols=0", {"symbols=0'", "symbols must be"}},
	        {"synthetic:symbols=100001", {"100001'", "from 1 to 100000"}},
	        {"synthetic:symbols=abc", {"symbols=abc'", "symbols must be"}},
	        {"synthetic:symbols=-1", {"symbols=-1'", "symbols must be"}},
	        {"synthetic:symbols=2.5", {"symbols=2.5'", "symbols must be"}},
	        {"synthetic:symbols= 5", {"symbols= 5'", "symbols must be"}},
	        {"synthetic:seed=-1", {"seed=-1'", "seed must be"}},
	        {"synthetic:seed=18446744073709551616",
	         {"seed=", "seed must be"}},
	        {"synthetic:foo=1",
	         {"synthetic:foo=1'", "unknown option 'foo'"}},
	        {"synthetic:rate", {"synthetic:rate'", "'rate' needs a value"}},
	        {"synthetic:rate=5,rate=6",
	         {"rate=6'", "'rate' is given twice"}},
	        {"synthetic:", {"feed 'synthetic:'", "empty option"}},
	        {"synthetic:rate=5,", {"rate=5,'", "empty option"}},
	        {"synthetic:rate=5,,seed=1", {"seed=1'", "empty option"}},
	        {"foo",
	         {"unknown feed kind 'foo'",
	          "(expected synthetic, replay, tcp, stdin or none)"}},
	        {"foo:bar", {"unknown feed kind 'foo'", "expected synthetic"}},
	        {"Synthetic", {"unknown feed kind 'Synthetic'", "expected"}},
	        {"", {"empty feed spec", "expected synthetic"}},
	        {"none:x", {"feed 'none:x'", "none takes no options"}},
	        {"replay:x.csv,speed=0",
	         {"feed 'replay:x.csv,speed=0': speed must be > 0 or max",
	          "speed must be"}},
	        {"replay:x.csv,speed=-1", {"speed=-1'", "must be > 0 or max"}},
	        {"replay:x.csv,speed=fast",
	         {"speed=fast'", "must be > 0 or max"}},
	        {"replay:x.csv,speed=", {"speed='", "must be > 0 or max"}},
	        {"replay:x.csv,speed", {"speed'", "must be > 0 or max"}},
	        {"replay:x.csv,speed=nan", {"nan'", "must be > 0 or max"}},
	        {"replay:x.csv,speed=MAX", {"MAX'", "must be > 0 or max"}},
	        {"replay:x.csv,speed=1e10", {"1e10'", "at most"}},
	        {"replay:x.csv,speed=2,speed=3",
	         {"speed=3'", "'speed' is given twice"}},
	        {"replay:x.csv,loop,loop", {"loop'", "'loop' is given twice"}},
	        {"replay:x.csv,loop=1", {"loop=1'", "'loop' takes no value"}},
	        {"replay:x.csv,fast",
	         {"replay:x.csv,fast'", "unknown option 'fast'"}},
	        {"replay:x.csv,", {"replay:x.csv,'", "empty option"}},
	        {"replay:", {"feed 'replay:'", "replay needs a FILE"}},
	        {"replay", {"feed 'replay'", "replay needs a FILE"}},
	        {"replay:,speed=2", {"speed=2'", "replay needs a FILE"}},
	        {"tcp", {"feed 'tcp'", "expected tcp:HOST:PORT"}},
	        {"tcp:", {"feed 'tcp:'", "expected tcp:HOST:PORT"}},
	        {"tcp:9000", {"'tcp:9000'", "expected tcp:HOST:PORT"}},
	        {"tcp::9000", {"'tcp::9000'", "expected tcp:HOST:PORT"}},
	        {"tcp:127.0.0.1:", {"127.0.0.1:'", "port must be"}},
	        {"tcp:127.0.0.1:65536", {"65536'", "from 0 to 65535"}},
	        {"tcp:127.0.0.1:-1", {"-1'", "port must be"}},
	        {"tcp:127.0.0.1:90x", {"90x'", "port must be"}},
	        {"tcp:::1:9000",
	         {"'tcp:::1:9000'", "IPv6 address in brackets"}},
	        {"tcp:[::1]9000", {"'tcp:[::1]9000'", "expected tcp:HOST"}},
	        {"tcp:[]:9000", {"'tcp:[]:9000'", "expected tcp:HOST"}},
	        {"stdin:x", {"feed 'stdin:x'", "stdin takes no options"}},
	};
	struct tick_queue *q = tick_queue_create(16, NULL, NULL);
	size_t i, k;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char err[256] = "";
		struct feed *f = feed_create(bad[i].spec, q, err, sizeof err);

		if (f)
			fail_msg("'%s' was accepted", bad[i].spec);
		for (k = 0; k < 2; k++)
			if (!strstr(err, bad[i].want[k]))
				fail_msg("'%s': message \"%s\" lacks \"%s\"",
				         bad[i].spec, err, bad[i].want[k]);
	}
	/* A NULL spec and a NULL err are handled too. */
	assert_null(feed_create(NULL, q, NULL, 0));
	assert_null(feed_create("foo", q, NULL, 0));
	tick_queue_destroy(q);
}

static void
test_none_feed_is_idle(void **state)
{
	struct tick_queue *q = tick_queue_create(16, NULL, NULL);
	struct feed *f;
	struct feed_status st;
	struct tick out[1];
	char err[256] = "";

	f = feed_create("none", q, err, sizeof err);
	assert_non_null(f);
	assert_int_equal(feed_start(f, err, sizeof err), 0);
	feed_get_status(f, &st);
	assert_string_equal(st.kind, "none");
	assert_int_equal(st.ticks, 0);
	assert_int_equal(tick_queue_drain(q, out, 1), 0);
	feed_stop(f);
	feed_stop(f);
	feed_destroy(f);
	tick_queue_destroy(q);
}

/* Start a synthetic feed from spec, take the first n ticks, then shut it
 * down (queue closed first, as the server does) and return them. */
static struct tick *
collect(const char *spec, size_t n)
{
	struct tick_queue *q = tick_queue_create(1024, NULL, NULL);
	struct tick *got = calloc(n, sizeof *got);
	struct feed_status st;
	char err[256] = "";
	struct feed *f;
	size_t have = 0;
	int idle = 0;

	assert_non_null(q);
	assert_non_null(got);
	f = feed_create(spec, q, err, sizeof err);
	if (!f)
		fail_msg("'%s' refused: %s", spec, err);
	assert_int_equal(feed_start(f, err, sizeof err), 0);
	/* A deadlock guard of many seconds, not a timing assertion. */
	while (have < n && idle < 20000) {
		size_t k = tick_queue_drain(q, got + have, n - have);

		have += k;
		if (k == 0) {
			idle++;
			timing_sleep_ms(1);
		} else {
			idle = 0;
		}
	}
	assert_int_equal(have, n);
	tick_queue_close(q);
	feed_stop(f);
	feed_get_status(f, &st);
	assert_false(st.running);
	/* Every completed push is counted. The batch that was cut short by
	 * the close is not (the queue cannot say how much of it went in), so
	 * the count is at most what was queued and short by under a batch. */
	assert_true(st.ticks <= have + tick_queue_depth(q));
	assert_true(st.ticks + 256 >= have);
	assert_true(st.last_tick_us > 0);
	feed_destroy(f);
	tick_queue_destroy(q);
	return got;
}

/* Same symbol, same fields, same values; the timestamps may differ. */
static bool
same_content(const struct tick *a, const struct tick *b)
{
	int fld;

	if (strcmp(a->symbol, b->symbol) != 0 || a->present != b->present)
		return false;
	for (fld = 0; fld < TICK_FIELD_COUNT; fld++)
		if (tick_has(a, fld) &&
		    (a->value[fld].mantissa != b->value[fld].mantissa ||
		     a->value[fld].scale != b->value[fld].scale))
			return false;
	return true;
}

#define DET_TICKS 5000

static void
test_synthetic_is_deterministic_for_a_seed(void **state)
{
	const char *spec = "synthetic:symbols=60,rate=100000000,seed=42";
	struct tick *a = collect(spec, DET_TICKS);
	struct tick *b = collect(spec, DET_TICKS);
	struct tick *c = collect("synthetic:symbols=60,rate=100000000,seed=43",
	                         DET_TICKS);
	size_t i, differ = 0;

	for (i = 0; i < DET_TICKS; i++)
		if (!same_content(&a[i], &b[i]))
			fail_msg("tick %zu differs between two runs of '%s'", i,
			         spec);
	/* And the seed matters. */
	for (i = 0; i < DET_TICKS; i++)
		differ += !same_content(&a[i], &c[i]);
	assert_true(differ > DET_TICKS / 2);
	free(a);
	free(b);
	free(c);
}

static bool
is_round_lot(struct decimal d)
{
	return d.scale == 0 && d.mantissa >= 100 && d.mantissa <= 5000 &&
	       d.mantissa % 100 == 0;
}

/* A price is positive, on its grid: cents from $1, four decimals below. */
static void
assert_valid_price(struct decimal d)
{
	assert_true(d.mantissa > 0);
	if (d.scale == 2)
		assert_true(d.mantissa >= 100);
	else
		assert_true(d.scale == 4 && d.mantissa < 10000);
}

#define VALID_SYMBOLS 100
#define VALID_TICKS   50000

static void
test_synthetic_ticks_are_valid(void **state)
{
	struct tick *t = collect("synthetic:symbols=100,rate=100000000,seed=7",
	                         VALID_TICKS);
	/* The latest quote of each symbol, to check trades against. */
	struct decimal bid[VALID_SYMBOLS], ask[VALID_SYMBOLS];
	char names[VALID_SYMBOLS][TICK_SYMBOL_MAX + 1];
	const uint16_t quote = (1u << FIELD_BID) | (1u << FIELD_ASK) |
	                       (1u << FIELD_BID_SIZE) | (1u << FIELD_ASK_SIZE);
	const uint16_t trade = (1u << FIELD_LAST) | (1u << FIELD_LAST_SIZE);
	size_t i, trades = 0;
	int64_t now_us = (int64_t)time(NULL) * 1000000;
	int s;

	for (i = 0; i < VALID_TICKS; i++) {
		const struct tick *x = &t[i];

		assert_true(tick_symbol_valid(x->symbol, strlen(x->symbol)));
		/* Wall-clock microseconds, not some other clock. */
		assert_true(x->ts > now_us - 3600LL * 1000000 &&
		            x->ts < now_us + 3600LL * 1000000);
		if (i < VALID_SYMBOLS) {
			/* The opening quotes every symbol once, in order,
			 * real tickers first. */
			assert_int_equal(x->present, quote);
			strcpy(names[i], x->symbol);
			for (s = 0; s < (int)i; s++)
				assert_string_not_equal(names[s], x->symbol);
		}
		for (s = 0; s < VALID_SYMBOLS; s++)
			if (strcmp(names[s], x->symbol) == 0)
				break;
		assert_true(s < VALID_SYMBOLS);
		if (x->present == quote) {
			assert_valid_price(x->value[FIELD_BID]);
			assert_valid_price(x->value[FIELD_ASK]);
			assert_true(decimal_cmp(x->value[FIELD_BID],
			                        x->value[FIELD_ASK]) < 0);
			assert_true(is_round_lot(x->value[FIELD_BID_SIZE]));
			assert_true(is_round_lot(x->value[FIELD_ASK_SIZE]));
			bid[s] = x->value[FIELD_BID];
			ask[s] = x->value[FIELD_ASK];
		} else {
			assert_int_equal(x->present, trade);
			assert_valid_price(x->value[FIELD_LAST]);
			assert_true(is_round_lot(x->value[FIELD_LAST_SIZE]));
			/* At or inside the symbol's current spread. */
			assert_true(decimal_cmp(x->value[FIELD_LAST], bid[s]) >=
			            0);
			assert_true(decimal_cmp(x->value[FIELD_LAST], ask[s]) <=
			            0);
			trades++;
		}
	}
	assert_string_equal(names[0], "AAPL");
	assert_string_equal(names[1], "MSFT");
	/* Beyond the built-in tickers the names are generated. */
	assert_string_equal(names[VALID_SYMBOLS - 1], "SYM0052");
	/* About one tick in five is a trade (a count, not a timing). */
	assert_true(trades > VALID_TICKS / 10 && trades < VALID_TICKS * 3 / 10);
	free(t);
}

static void
test_stop_joins_a_sleeping_feed(void **state)
{
	struct tick_queue *q = tick_queue_create(64, NULL, NULL);
	struct feed_status st;
	struct tick out[64];
	char err[256] = "";
	struct feed *f;
	int i;

	/* One tick a second: the thread spends its life asleep, and stop
	 * must wake it (the test would merely be slow if it did not). */
	f = feed_create("synthetic:symbols=3,rate=1", q, err, sizeof err);
	assert_non_null(f);
	assert_int_equal(feed_start(f, err, sizeof err), 0);
	feed_get_status(f, &st);
	assert_true(st.running);
	/* Starting twice is refused with a reason. */
	assert_int_equal(feed_start(f, err, sizeof err), -1);
	assert_non_null(strstr(err, "already started"));
	feed_stop(f);
	feed_get_status(f, &st);
	assert_false(st.running);
	feed_stop(f); /* safe twice */
	assert_true(tick_queue_drain(q, out, 64) <= 1);
	feed_destroy(f);

	/* A feed blocked on a full queue stops once the queue is closed. */
	f = feed_create("synthetic:rate=100000000", q, err, sizeof err);
	assert_non_null(f);
	assert_int_equal(feed_start(f, err, sizeof err), 0);
	for (i = 0; i < 20000 && tick_queue_depth(q) < 64; i++)
		timing_sleep_ms(1);
	assert_int_equal(tick_queue_depth(q), 64);
	tick_queue_close(q);
	feed_stop(f);
	feed_get_status(f, &st);
	assert_false(st.running);
	assert_true(st.ticks <= 64);
	/* Destroy without an explicit stop joins as well. */
	feed_destroy(f);
	tick_queue_destroy(q);
}

static void
test_destroy_stops_a_running_feed(void **state)
{
	struct tick_queue *q = tick_queue_create(1 << 16, NULL, NULL);
	char err[256] = "";
	struct feed *f;

	f = feed_create("synthetic:rate=1000", q, err, sizeof err);
	assert_non_null(f);
	assert_int_equal(feed_start(f, err, sizeof err), 0);
	feed_destroy(f);
	tick_queue_destroy(q);
}

/* Steering is for replays only; every other feed says so, naming itself. */
static void
test_control_needs_a_replay(void **state)
{
	static const char *const specs[] = {"synthetic", "none", "stdin",
	                                    "tcp:127.0.0.1:0"};
	struct tick_queue *q = tick_queue_create(16, NULL, NULL);
	struct feed_command pause = {.kind = FEED_CMD_PAUSE};
	size_t i;

	for (i = 0; i < sizeof specs / sizeof specs[0]; i++) {
		char err[256] = "", want[128];
		struct feed *f = feed_create(specs[i], q, err, sizeof err);
		struct feed_status st;

		assert_non_null(f);
		assert_int_equal(feed_control(f, &pause, err, sizeof err), -1);
		snprintf(want, sizeof want,
		         "replay control needs a replay feed; this server "
		         "runs '%s'",
		         f->kind);
		assert_string_equal(err, want);
		feed_get_status(f, &st);
		assert_null(st.replay_state);
		assert_int_equal(st.position_ts, 0);
		feed_destroy(f);
	}
	tick_queue_destroy(q);
}

static void
test_control_checks_the_speed(void **state)
{
	struct tick_queue *q = tick_queue_create(16, NULL, NULL);
	struct feed_command cmd = {.kind = FEED_CMD_SPEED};
	struct feed_status st;
	char err[256] = "";
	struct feed *f;

	f = feed_create("replay:never-opened.csv,speed=2", q, err, sizeof err);
	assert_non_null(f);
	feed_get_status(f, &st);
	assert_string_equal(st.replay_state, "playing");
	assert_true(st.speed == 2);
	cmd.speed = -1;
	assert_int_equal(feed_control(f, &cmd, err, sizeof err), -1);
	assert_non_null(strstr(err, "replay speed must be > 0"));
	cmd.speed = NAN;
	assert_int_equal(feed_control(f, &cmd, err, sizeof err), -1);
	cmd.speed = 1e12;
	assert_int_equal(feed_control(f, &cmd, err, sizeof err), -1);
	/* Accepted before start: the thread picks it up when it runs. */
	cmd.speed = 0;
	assert_int_equal(feed_control(f, &cmd, err, sizeof err), 0);
	feed_get_status(f, &st);
	assert_true(st.speed == 0);
	feed_destroy(f);
	tick_queue_destroy(q);
}

/* tick.c has no test binary of its own; the feed tests link it and lean on
 * tick_symbol_valid(), so its rules are pinned down here. */
static void
test_tick_names_and_symbol_rules(void **state)
{
	static const char *const names[] = {"bid",      "ask",  "bid_size",
	                                    "ask_size", "last", "last_size",
	                                    "volume"};
	int f;

	for (f = 0; f < TICK_FIELD_COUNT; f++) {
		assert_string_equal(tick_field_name(f), names[f]);
		assert_int_equal(tick_field_lookup(names[f], strlen(names[f])),
		                 f);
	}
	assert_string_equal(tick_field_name(FIELD_OPEN), "open");
	assert_string_equal(tick_field_name(FIELD_HIGH), "high");
	assert_string_equal(tick_field_name(FIELD_LOW), "low");
	assert_string_equal(tick_field_name(FIELD_TRADES), "trades");
	/* Derived fields are never looked up from input. */
	assert_int_equal(tick_field_lookup("open", 4), -1);
	assert_int_equal(tick_field_lookup("trades", 6), -1);
	assert_int_equal(tick_field_lookup("bi", 2), -1);
	assert_int_equal(tick_field_lookup("bidx", 4), -1);
	assert_int_equal(tick_field_lookup("bid_size", 3), FIELD_BID);

	assert_true(tick_symbol_valid("AAPL", 4));
	assert_true(tick_symbol_valid("BRK.B", 5));
	assert_true(tick_symbol_valid("BTC/USD", 7));
	assert_true(tick_symbol_valid("ES:F-2024_03", 12));
	assert_true(tick_symbol_valid("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", 32));
	assert_false(
	        tick_symbol_valid("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", 33));
	assert_false(tick_symbol_valid("", 0));
	assert_false(tick_symbol_valid("A B", 3));
	assert_false(tick_symbol_valid("A\"B", 3));
	assert_false(tick_symbol_valid("A\0B", 3));
	assert_false(tick_symbol_valid("\xc3\xa9", 2));
	assert_false(tick_symbol_valid("*", 1));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_good_specs_create_feeds),
	        cmocka_unit_test(test_bad_specs_name_the_problem),
	        cmocka_unit_test(test_none_feed_is_idle),
	        cmocka_unit_test(test_synthetic_is_deterministic_for_a_seed),
	        cmocka_unit_test(test_synthetic_ticks_are_valid),
	        cmocka_unit_test(test_stop_joins_a_sleeping_feed),
	        cmocka_unit_test(test_destroy_stops_a_running_feed),
	        cmocka_unit_test(test_control_needs_a_replay),
	        cmocka_unit_test(test_control_checks_the_speed),
	        cmocka_unit_test(test_tick_names_and_symbol_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests for publisher/trading_session.c: the session boundary rule.
 * Where a session begins and ends for a start time in a zone with daylight
 * saving time (09:30 New York for equities, 17:00 New York for FX, Sydney
 * across its summer), on the days the clocks change (a 23- and a 25-hour
 * session, a start time the clocks jump over), which setting a symbol
 * takes (exact, prefix, first match, none: UTC days) and so which time
 * zone it is named with, and the settings refused with what is wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "trading_session.h"

#define HOUR_US (3600 * (int64_t)1000000)

static struct trading_sessions *
make(const char *const *specs, size_t n)
{
	struct trading_session_options o;
	struct trading_sessions *s;
	char err[400];
	size_t i;

	memset(&o, 0, sizeof o);
	for (i = 0; i < n; i++)
		o.specs[i] = specs[i];
	o.count = n;
	s = trading_sessions_create(&o, err, sizeof err);
	if (!s)
		fail_msg("trading_sessions_create: %s", err);
	return s;
}

static void
assert_span(const struct trading_sessions *s, const char *symbol, int64_t ts,
            int64_t start, int64_t end)
{
	struct session_span sp;

	trading_sessions_span(s, symbol, ts, &sp);
	if (sp.start != start || sp.end != end)
		fail_msg("%s at %lld: session [%lld, %lld), want [%lld, %lld)",
		         symbol, (long long)ts, (long long)sp.start,
		         (long long)sp.end, (long long)start, (long long)end);
}

static void
test_new_york_equities_at_0930(void **state)
{
	const char *specs[] = {"AAPL=America/New_York@09:30"};
	struct trading_sessions *s = make(specs, 1);

	/* 2024-01-15 07:00 EST: the session of the 14th, 14:30Z to 14:30Z */
	assert_span(s, "AAPL", 1705320000000000, 1705242600000000,
	            1705329000000000);
	/* its last µs, and the first of the next */
	assert_span(s, "AAPL", 1705329000000000 - 1, 1705242600000000,
	            1705329000000000);
	assert_span(s, "AAPL", 1705329000000000, 1705329000000000,
	            1705329000000000 + 24 * HOUR_US);
	/* July, daylight time: 09:30 EDT is 13:30Z */
	assert_span(s, "AAPL", 1721052000000000, 1721050200000000,
	            1721136600000000);
	/* 2024-03-10, clocks forward: from 09:30 EST on the 9th to 09:30
	 * EDT on the 10th is 23 hours */
	assert_span(s, "AAPL", 1710072000000000, 1709994600000000,
	            1710077400000000);
	trading_sessions_destroy(s);
}

static void
test_fx_rolls_at_1700_new_york(void **state)
{
	const char *specs[] = {"EUR/*=America/New_York@17:00"};
	struct trading_sessions *s = make(specs, 1);

	/* 2024-03-11 17:30 EDT: began at 21:00Z */
	assert_span(s, "EUR/USD", 1710192600000000, 1710190800000000,
	            1710277200000000);
	/* one second before 17:00 EDT: the session of the 10th, which
	 * began at 17:00 EDT on the 10th (21:00Z), after the change */
	assert_span(s, "EUR/GBP", 1710190799000000, 1710104400000000,
	            1710190800000000);
	/* 2024-11-03, clocks back: 17:00 EDT on the 2nd to 17:00 EST on the
	 * 3rd is 25 hours */
	assert_span(s, "EUR/USD", 1730635200000000, 1730581200000000,
	            1730671200000000);
	trading_sessions_destroy(s);
}

static void
test_sydney_summer_and_a_start_the_clocks_jump_over(void **state)
{
	const char *specs[] = {"BHP=Australia/Sydney@10:00",
	                       "ODD=America/New_York@02:30"};
	struct trading_sessions *s = make(specs, 2);

	/* January is summer in Sydney (+11): 10:00 is 23:00Z the day
	 * before */
	assert_span(s, "BHP", 1705294800000000, 1705273200000000,
	            1705359600000000);
	/* 2024-03-10 02:30 New York never comes: that day's session begins
	 * when the clocks jump, 07:00Z */
	assert_span(s, "ODD", 1710057600000000, 1710054000000000,
	            1710138600000000);
	trading_sessions_destroy(s);
}

static void
test_which_setting_a_symbol_takes(void **state)
{
	const char *specs[] = {"EUR/JPY=Asia/Tokyo@09:00",
	                       "EUR/*=America/New_York@17:00",
	                       "*=Europe/London@08:00"};
	struct trading_sessions *s = make(specs, 3);
	struct trading_sessions *none = make(NULL, 0);
	struct session_span a, b;
	struct session_rule rule = trading_sessions_rule(s);

	/* first match: EUR/JPY is Tokyo's, not the prefix's */
	trading_sessions_span(s, "EUR/JPY", 1705320000000000, &a);
	assert_int_equal(a.start % (24 * HOUR_US), 0); /* 09:00 JST = 00Z */
	trading_sessions_span(s, "EUR/USD", 1705320000000000, &b);
	assert_int_equal(b.start % (24 * HOUR_US), 22 * HOUR_US);
	/* the prefix is a prefix: "EUR" alone is not "EUR/"... */
	trading_sessions_span(s, "EUR", 1705320000000000, &a);
	assert_int_equal(a.start % (24 * HOUR_US), 8 * HOUR_US);
	/* ... and the rule the folds take says the same */
	rule.span_of(rule.ctx, "EUR/USD", 1705320000000000, &a);
	assert_int_equal(a.start, b.start);
	/* no setting: UTC days */
	assert_span(none, "AAPL", 1705320000000000, 1705276800000000,
	            1705363200000000);
	assert_span(none, "AAPL", -1, -24 * HOUR_US, 0);
	trading_sessions_destroy(s);
	trading_sessions_destroy(none);
}

static void
test_zone_of_a_symbol(void **state)
{
	const char *specs[] = {"AAPL=America/New_York@09:30",
	                       "EUR/*=Europe/London@17:00", "X*=Etc/UTC@08:00"};
	struct trading_sessions *s = make(specs, 3);
	struct trading_sessions *none = make(NULL, 0);

	assert_string_equal(trading_sessions_zone(s, "AAPL"),
	                    "America/New_York");
	assert_string_equal(trading_sessions_zone(s, "EUR/USD"),
	                    "Europe/London");
	/* Patterns match as sessions do: case and all. */
	assert_string_equal(trading_sessions_zone(s, "aapl"), "UTC");
	assert_string_equal(trading_sessions_zone(s, "AAPL2"), "UTC");
	assert_string_equal(trading_sessions_zone(s, "XYZ"), "UTC");
	assert_string_equal(trading_sessions_zone(none, "AAPL"), "UTC");
	assert_string_equal(trading_sessions_zone(NULL, "AAPL"), "UTC");
	trading_sessions_destroy(s);
	trading_sessions_destroy(none);
}

static void
test_extremes_stay_in_range(void **state)
{
	const char *specs[] = {"*=America/New_York@09:30"};
	struct trading_sessions *s = make(specs, 1);
	struct session_span sp;

	trading_sessions_span(s, "X", INT64_MAX, &sp);
	assert_true(sp.start <= INT64_MAX && sp.end == INT64_MAX);
	trading_sessions_span(s, "X", INT64_MIN, &sp);
	assert_true(sp.start == INT64_MIN + 1 && sp.end > INT64_MIN);
	symbol_state_session_of(NULL, "X", INT64_MIN, &sp);
	assert_true(sp.start <= INT64_MIN + 1 && sp.end > INT64_MIN);
	symbol_state_session_of(NULL, "X", INT64_MAX, &sp);
	assert_true(sp.start <= INT64_MAX && sp.end == INT64_MAX);
	trading_sessions_destroy(s);
}

static void
refused(const char *spec, const char *says)
{
	char why[400] = "";

	if (trading_session_check(spec, why, sizeof why) == 0)
		fail_msg("'%s' accepted", spec);
	if (!strstr(why, says))
		fail_msg("'%s': \"%s\" does not say \"%s\"", spec, why, says);
}

static void
test_settings_refused_and_accepted(void **state)
{
	struct trading_session_options o;
	char why[400];

	refused("AAPL", "no '='");
	refused("AAPL=America/New_York", "no start time");
	refused("AAPL=America/Nowhere@09:30", "unknown time zone");
	refused("AAPL=../../etc/passwd@09:30", "not a time zone name");
	refused("AAPL=America/New_York@24:00", "not HH:MM");
	refused("AAPL=America/New_York@09:60", "not HH:MM");
	refused("AAPL=America/New_York@9:5", "not HH:MM");
	refused("AAPL=America/New_York@", "not HH:MM");
	refused("=America/New_York@09:30", "neither a symbol");
	refused("AA PL=America/New_York@09:30", "neither a symbol");
	refused("A*B=America/New_York@09:30", "neither a symbol");
	refused("AAPL=@09:30", "no time zone");
	assert_int_equal(trading_session_check("*=UTC@00:00", why, sizeof why),
	                 0);
	assert_int_equal(trading_session_check("BRK.B=America/New_York@9:30",
	                                       why, sizeof why),
	                 0);

	/* create() names the setting that failed */
	memset(&o, 0, sizeof o);
	o.specs[0] = "A=UTC@00:00";
	o.specs[1] = "B=Mars/Olympus@10:00";
	o.count = 2;
	assert_null(trading_sessions_create(&o, why, sizeof why));
	assert_non_null(strstr(why, "--session 'B=Mars/Olympus@10:00'"));
}

static void
test_describe(void **state)
{
	const char *specs[] = {"AAPL=America/New_York@09:30"};
	struct trading_sessions *s = make(specs, 1);
	char text[200];

	trading_sessions_describe(s, text, sizeof text);
	assert_string_equal(text, "AAPL=America/New_York@09:30, *=UTC@00:00");
	trading_sessions_describe(s, text, 10);
	assert_int_equal(strlen(text), 9);
	trading_sessions_destroy(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_new_york_equities_at_0930),
	        cmocka_unit_test(test_fx_rolls_at_1700_new_york),
	        cmocka_unit_test(
	                test_sydney_summer_and_a_start_the_clocks_jump_over),
	        cmocka_unit_test(test_which_setting_a_symbol_takes),
	        cmocka_unit_test(test_zone_of_a_symbol),
	        cmocka_unit_test(test_extremes_stay_in_range),
	        cmocka_unit_test(test_settings_refused_and_accepted),
	        cmocka_unit_test(test_describe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

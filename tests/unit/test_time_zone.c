/*
 * Unit tests for publisher/time_zone.c: offsets read from real zone files
 * (daylight saving time both ways, before the first transition, past the
 * last one where the footer's rule takes over), a "slim" file that has
 * only the rule, POSIX rules of each date form, wall times that come twice
 * or never, and what is refused. The expected offsets were taken from
 * Python's zoneinfo on the same tzdata.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "time_zone.h"

static struct time_zone *
load(const char *name)
{
	char err[300];
	struct time_zone *z = time_zone_load(name, err, sizeof err);

	if (!z)
		fail_msg("time_zone_load(%s): %s", name, err);
	return z;
}

static void
test_new_york_follows_daylight_saving(void **state)
{
	struct time_zone *z = load("America/New_York");

	assert_string_equal(time_zone_name(z), "America/New_York");
	assert_int_equal(time_zone_offset(z, 1705320000), -18000); /* Jan */
	assert_int_equal(time_zone_offset(z, 1721044800), -14400); /* Jul */
	/* 2024-03-10 07:00Z, 02:00 EST: clocks go to 03:00 EDT. */
	assert_int_equal(time_zone_offset(z, 1710053999), -18000);
	assert_int_equal(time_zone_offset(z, 1710054000), -14400);
	/* 2024-11-03 06:00Z, 02:00 EDT: clocks go back to 01:00 EST. */
	assert_int_equal(time_zone_offset(z, 1730613599), -14400);
	assert_int_equal(time_zone_offset(z, 1730613600), -18000);
	/* 2050, past the file's transitions on a slim build: the rule. */
	assert_int_equal(time_zone_offset(z, 2540246400), -14400);
	assert_int_equal(time_zone_offset(z, 2553465600), -18000);
	assert_int_equal(time_zone_offset(z, 2530767599), -18000);
	assert_int_equal(time_zone_offset(z, 2530767600), -14400);
	/* 1900: standard time had begun. */
	assert_int_equal(time_zone_offset(z, -2208988800), -18000);
	time_zone_free(z);
}

static void
test_southern_and_european_zones(void **state)
{
	struct time_zone *syd = load("Australia/Sydney");
	struct time_zone *lon = load("Europe/London");
	struct time_zone *utc = load("UTC");

	/* Daylight time over the new year down under. */
	assert_int_equal(time_zone_offset(syd, 1705276800), 39600);
	assert_int_equal(time_zone_offset(syd, 1721001600), 36000);
	assert_int_equal(time_zone_offset(syd, 2841350400), 39600);
	assert_int_equal(time_zone_offset(syd, 2857075200), 36000);
	/* 2024-03-31 01:00Z: BST begins. */
	assert_int_equal(time_zone_offset(lon, 1711846799), 0);
	assert_int_equal(time_zone_offset(lon, 1711846800), 3600);
	assert_int_equal(time_zone_offset(utc, 1711846800), 0);
	assert_int_equal(time_zone_offset(utc, -5), 0);
	time_zone_free(syd);
	time_zone_free(lon);
	time_zone_free(utc);
}

/* A TZif v2 file with one type and no transitions: only its footer's
 * rule says anything (as a slim file does after its last transition). */
static size_t
slim_file(unsigned char *out, int32_t utoff, const char *rule)
{
	unsigned char *p = out;
	int part;

	for (part = 0; part < 2; part++) {
		memset(p, 0, 44);
		memcpy(p, "TZif2", 5);
		p[39] = 1; /* typecnt */
		p[43] = 4; /* charcnt */
		p += 44;
		p[0] = (unsigned char)((uint32_t)utoff >> 24);
		p[1] = (unsigned char)((uint32_t)utoff >> 16);
		p[2] = (unsigned char)((uint32_t)utoff >> 8);
		p[3] = (unsigned char)utoff;
		p[4] = 0;
		p[5] = 0;
		memcpy(p + 6, "XXX", 4);
		p += 10;
	}
	*p++ = '\n';
	memcpy(p, rule, strlen(rule));
	p += strlen(rule);
	*p++ = '\n';
	return (size_t)(p - out);
}

static struct time_zone *
parse_slim(int32_t utoff, const char *rule)
{
	unsigned char buf[256];
	char err[300];
	size_t n = slim_file(buf, utoff, rule);
	struct time_zone *z = time_zone_parse("slim", buf, n, err, sizeof err);

	if (!z)
		fail_msg("slim zone '%s': %s", rule, err);
	return z;
}

static void
test_rule_of_a_slim_file(void **state)
{
	struct time_zone *z = parse_slim(-18000, "EST5EDT,M3.2.0,M11.1.0");
	struct time_zone *aus =
	        parse_slim(36000, "AEST-10AEDT,M10.1.0,M4.1.0/3");
	struct time_zone *julian = parse_slim(3600, "<+01>-1<+02>,J60,J300");
	struct time_zone *fixed = parse_slim(19800, "IST-5:30");
	struct time_zone *empty = parse_slim(-3600, "");

	assert_int_equal(time_zone_offset(z, 1705320000), -18000);
	assert_int_equal(time_zone_offset(z, 1710053999), -18000);
	assert_int_equal(time_zone_offset(z, 1710054000), -14400);
	assert_int_equal(time_zone_offset(z, 1730613599), -14400);
	assert_int_equal(time_zone_offset(z, 1730613600), -18000);
	assert_int_equal(time_zone_offset(aus, 1705276800), 39600);
	assert_int_equal(time_zone_offset(aus, 1721001600), 36000);
	/* J60 is March 1 in any year; 02:00 at +01 is 01:00Z. */
	assert_int_equal(time_zone_offset(julian, 1709254799), 3600);
	assert_int_equal(time_zone_offset(julian, 1709254800), 7200);
	assert_int_equal(time_zone_offset(fixed, 1721001600), 19800);
	/* No rule: the one type goes on. */
	assert_int_equal(time_zone_offset(empty, 1721001600), -3600);
	time_zone_free(z);
	time_zone_free(aus);
	time_zone_free(julian);
	time_zone_free(fixed);
	time_zone_free(empty);
}

static void
test_wall_time_to_instant(void **state)
{
	struct time_zone *z = load("America/New_York");

	/* 2024-01-15 09:30 EST is 14:30Z. */
	assert_int_equal(time_zone_instant(z, 1705311000), 1705329000);
	/* 2024-03-10 02:30 never comes: the instant the clocks jumped,
	 * 07:00Z. */
	assert_int_equal(time_zone_instant(z, 1710037800), 1710054000);
	/* 2024-11-03 01:30 comes twice: the first, 05:30Z (EDT). */
	assert_int_equal(time_zone_instant(z, 1730597400), 1730611800);
	time_zone_free(z);
}

static void
test_refused(void **state)
{
	unsigned char buf[256];
	char err[300];
	size_t n;

	assert_null(time_zone_load("America/New_Yrok", err, sizeof err));
	assert_non_null(strstr(err, "unknown time zone 'America/New_Yrok'"));
	assert_null(time_zone_load("../../etc/passwd", err, sizeof err));
	assert_non_null(strstr(err, "is not a time zone name"));
	assert_null(time_zone_load("/etc/passwd", err, sizeof err));
	assert_null(time_zone_load("", err, sizeof err));
	assert_false(time_zone_name_valid("America//New_York"));
	assert_false(time_zone_name_valid("a/./b"));
	assert_true(time_zone_name_valid("Etc/GMT+5"));
	assert_true(time_zone_name_valid("America/Port-au-Prince"));

	/* Not TZif; cut short; a rule that does not parse. */
	assert_null(time_zone_parse("x", (const unsigned char *)"hello", 5, err,
	                            sizeof err));
	assert_non_null(strstr(err, "not a TZif"));
	n = slim_file(buf, 0, "EST5EDT,M3.2.0,M11.1.0");
	assert_null(time_zone_parse("x", buf, n - 30, err, sizeof err));
	n = slim_file(buf, 0, "EST5EDT,M13.2.0,M11.1.0");
	assert_null(time_zone_parse("x", buf, n, err, sizeof err));
	n = slim_file(buf, 0, "E5");
	assert_null(time_zone_parse("x", buf, n, err, sizeof err));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_new_york_follows_daylight_saving),
	        cmocka_unit_test(test_southern_and_european_zones),
	        cmocka_unit_test(test_rule_of_a_slim_file),
	        cmocka_unit_test(test_wall_time_to_instant),
	        cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

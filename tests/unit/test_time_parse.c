/*
 * Unit tests for publisher/time_parse.c: integer microseconds and ISO 8601
 * times, what is refused (and left untouched), the length bounding the
 * text, and the calendar against the C library's.
 */
#define _GNU_SOURCE /* timegm(), used only to cross-check days_from_civil */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "time_parse.h"

static int64_t
t(const char *s)
{
	int64_t us = 0x7eadbeef;

	if (time_parse(s, strlen(s), &us))
		fail_msg("time '%s' refused", s);
	return us;
}

static void
bad_time(const char *s)
{
	int64_t us = 0x7eadbeef;

	if (time_parse(s, strlen(s), &us) == 0)
		fail_msg("time '%s' accepted as %lld", s, (long long)us);
	assert_int_equal(us, 0x7eadbeef); /* untouched */
}

static void
test_time_integers(void **state)
{
	int64_t us;

	assert_int_equal(t("0"), 0);
	assert_int_equal(t("1709303400123456"), 1709303400123456LL);
	assert_int_equal(t("-5"), -5);
	assert_int_equal(t("9223372036854775807"), INT64_MAX);
	bad_time("9223372036854775808");
	bad_time("99999999999999999999");
	bad_time("");
	bad_time("-");
	bad_time("12a");
	bad_time(" 12");
	bad_time("+12");
	bad_time("1.5");
	assert_int_equal(time_parse(NULL, 0, &us), -1);
	/* len bounds the text: no NUL needed */
	assert_int_equal(time_parse("123456", 3, &us), 0);
	assert_int_equal(us, 123);
}

static void
test_time_iso(void **state)
{
	const int64_t base = 1709303400000000LL; /* 2024-03-01T14:30:00Z */
	int64_t us;

	assert_int_equal(t("1970-01-01T00:00:00Z"), 0);
	assert_int_equal(t("1969-12-31T23:59:59Z"), -1000000);
	assert_int_equal(t("2024-03-01T14:30:00Z"), base);
	assert_int_equal(t("2024-03-01t14:30:00z"), base);
	assert_int_equal(t("2024-03-01 14:30:00Z"), base);
	assert_int_equal(t("2024-03-01T14:30:00"), base); /* no zone: UTC */
	assert_int_equal(t("2024-03-01T14:30Z"), base);
	assert_int_equal(t("2024-03-01"), 1709251200000000LL);

	/* fractions: up to 6 digits exact, 7-9 cut to µs, more refused */
	assert_int_equal(t("2024-03-01T14:30:00.5Z"), base + 500000);
	assert_int_equal(t("2024-03-01T14:30:00,25Z"), base + 250000);
	assert_int_equal(t("2024-03-01T14:30:00.123456Z"), base + 123456);
	assert_int_equal(t("2024-03-01T14:30:00.000001Z"), base + 1);
	assert_int_equal(t("2024-03-01T14:30:00.1234567Z"), base + 123456);
	assert_int_equal(t("2024-03-01T14:30:00.123456789Z"), base + 123456);
	bad_time("2024-03-01T14:30:00.1234567890Z");
	bad_time("2024-03-01T14:30:00.Z");

	/* offsets: local = UTC + offset */
	assert_int_equal(t("2024-03-01T15:30:00+01:00"), base);
	assert_int_equal(t("2024-03-01T09:30:00-05:00"), base);
	assert_int_equal(t("2024-03-01T20:00:00+05:30"), base);
	assert_int_equal(t("2024-03-01T15:30:00+0100"), base);
	assert_int_equal(t("2024-03-01T15:30:00+01"), base);
	assert_int_equal(t("2024-03-02T00:30:00.75+10:00"), base + 750000);
	assert_int_equal(t("2024-03-01T14:30:00+00:00"), base);
	assert_int_equal(t("2024-03-01T14:30:00-00:00"), base);
	bad_time("2024-03-01T14:30:00+01:");
	bad_time("2024-03-01T14:30:00+1:00");
	bad_time("2024-03-01T14:30:00+24:00");
	bad_time("2024-03-01T14:30:00+01:60");
	bad_time("2024-03-01T14:30:00Zjunk");
	bad_time("2024-03-01T14:30:00Z ");

	/* the length bounds the text */
	assert_int_equal(time_parse("2024-03-01T14:30:00Zjunk", 20, &us), 0);
	assert_int_equal(us, base);

	/* leap years */
	assert_int_equal(t("2024-02-29T00:00:00Z"), 1709164800000000LL);
	assert_int_equal(t("2000-02-29T00:00:00Z"), 951782400000000LL);
	bad_time("2023-02-29T00:00:00Z");
	bad_time("1900-02-29T00:00:00Z");
	assert_int_equal(t("9999-12-31T23:59:59.999999Z"),
	                 253402300799999999LL);
}

static void
test_time_invalid_dates(void **state)
{
	bad_time("2024-13-01T00:00:00Z");
	bad_time("2024-00-01T00:00:00Z");
	bad_time("2024-01-00T00:00:00Z");
	bad_time("2024-01-32T00:00:00Z");
	bad_time("2024-02-30T00:00:00Z");
	bad_time("2024-04-31T00:00:00Z");
	bad_time("2024-06-31");
	bad_time("2024-03-01T24:00:00Z");
	bad_time("2024-03-01T23:60:00Z");
	bad_time("2024-03-01T23:59:60Z");
	bad_time("2024-3-01T00:00:00Z");
	bad_time("2024-03-1T00:00:00Z");
	bad_time("2024-03-01T1:00:00Z");
	bad_time("2024-03-01T");
	bad_time("2024-03-01X14:30:00Z");
	bad_time("2024-03-01+01:00");
	bad_time("2024/03/01");
	bad_time("yesterday");
	bad_time("2024-03-01T14:30:00ZZ");
}

/* Cross-check the calendar arithmetic against the C library on every day
 * boundary of 1900-2100 (timegm is fine here: a test is single-threaded). */
static void
test_time_matches_timegm(void **state)
{
	char text[32];
	int y, m, d;

	for (y = 1900; y <= 2100; y++)
		for (m = 1; m <= 12; m++)
			for (d = 1; d <= 31; d++) {
				struct tm tm = {.tm_year = y - 1900,
				                .tm_mon = m - 1,
				                .tm_mday = d,
				                .tm_hour = 13,
				                .tm_min = 7,
				                .tm_sec = 9};
				int64_t us;
				int rc;

				snprintf(text, sizeof text,
				         "%04d-%02d-%02dT13:07:09Z", y, m, d);
				rc = time_parse(text, strlen(text), &us);
				timegm(&tm);
				/* timegm normalises Feb 30 to Mar 2: the
				 * date was invalid exactly when it moved. */
				if (tm.tm_mday != d) {
					assert_int_equal(rc, -1);
					continue;
				}
				assert_int_equal(rc, 0);
				assert_int_equal(us, (int64_t)timegm(&tm) *
				                             1000000);
			}
}

/* The ends of the ranges, and arguments a caller might get wrong. */
static void
test_time_edges(void **state)
{
	int64_t us = 0x7eadbeef;

	assert_int_equal(t("-0"), 0);
	assert_int_equal(t("-9223372036854775807"), -INT64_MAX);
	bad_time("-9223372036854775808"); /* INT64_MIN is not taken */
	assert_int_equal(t("0000-01-01T00:00:00Z"), -62167219200000000LL);
	assert_int_equal(t("1970-01-01 00:01"), 60000000);
	assert_int_equal(t("0001"), 1); /* four digits, no '-': an integer */
	bad_time("2024-");              /* '-' after four: ISO, unfinished */

	/* a NULL text or result is refused, a zero length too */
	assert_int_equal(time_parse("1", 1, NULL), -1);
	assert_int_equal(time_parse("1", 0, &us), -1);
	assert_int_equal(us, 0x7eadbeef);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_time_integers),
	        cmocka_unit_test(test_time_iso),
	        cmocka_unit_test(test_time_invalid_dates),
	        cmocka_unit_test(test_time_edges),
	        cmocka_unit_test(test_time_matches_timegm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests for publisher/decimal.c: parsing, formatting, comparison and
 * arithmetic of exact decimals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "decimal.h"

static struct decimal
dec(int64_t m, uint8_t s)
{
	struct decimal d = {m, s};

	return d;
}

/* Parse s, which must succeed, and return the result. */
static struct decimal
parse_ok(const char *s)
{
	struct decimal d = {0, 0};

	assert_int_equal(decimal_parse(s, strlen(s), &d), 0);
	return d;
}

/* Format d into a NUL-terminated static buffer for string comparison. */
static const char *
fmt(struct decimal d)
{
	static char buf[DECIMAL_MAX_TEXT + 1];
	size_t n = decimal_format(d, buf);

	assert_true(n <= DECIMAL_MAX_TEXT);
	buf[n] = '\0';
	return buf;
}

static void
test_parse_keeps_mantissa_and_scale(void **state)
{
	struct decimal d;

	d = parse_ok("189.35");
	assert_int_equal(d.mantissa, 18935);
	assert_int_equal(d.scale, 2);
	d = parse_ok("189.30");
	assert_int_equal(d.mantissa, 18930);
	assert_int_equal(d.scale, 2);
	d = parse_ok("0.005");
	assert_int_equal(d.mantissa, 5);
	assert_int_equal(d.scale, 3);
	d = parse_ok("-0.005");
	assert_int_equal(d.mantissa, -5);
	assert_int_equal(d.scale, 3);
	d = parse_ok("100");
	assert_int_equal(d.mantissa, 100);
	assert_int_equal(d.scale, 0);
	d = parse_ok("-0");
	assert_int_equal(d.mantissa, 0);
	assert_int_equal(d.scale, 0);
}

static void
test_parse_uses_only_len_bytes(void **state)
{
	struct decimal d = {0, 0};

	/* The text is not NUL-terminated in JSON input: the digits after len
	 * must not be read. */
	assert_int_equal(decimal_parse("12.34999", 5, &d), 0);
	assert_int_equal(d.mantissa, 1234);
	assert_int_equal(d.scale, 2);
}

static void
test_parse_refuses_malformed(void **state)
{
	static const char *const bad[] = {
	        "1e5", "+1",  ".5",    "nan",  "inf",  "",     "1.",
	        "-",   "-.5", "1.2.3", " 1",   "1 ",   "0x10", "1,5",
	        "--1", "1-",  "NaN",   "-inf", "1.e5",
	};
	struct decimal d = {42, 7};
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(decimal_parse(bad[i], strlen(bad[i]), &d), -1);
		/* A refusal leaves *out untouched. */
		assert_int_equal(d.mantissa, 42);
		assert_int_equal(d.scale, 7);
	}
	assert_int_equal(decimal_parse(NULL, 0, &d), -1);
}

static void
test_parse_refuses_overflow(void **state)
{
	static const char *const bad[] = {
	        "9223372036854775808",     /* INT64_MAX + 1 */
	        "-9223372036854775809",    /* INT64_MIN - 1 */
	        "99999999999999999999",    /* 20 digits */
	        "922337203685477580.8",    /* mantissa INT64_MAX + 1, scale 1 */
	        "12345678901234567890123", /* far too long */
	        "0.1234567890123456789",   /* 19 fraction digits > max scale */
	};
	struct decimal d = {42, 7};
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(decimal_parse(bad[i], strlen(bad[i]), &d), -1);
		assert_int_equal(d.mantissa, 42);
	}
}

static void
test_parse_accepts_int64_limits(void **state)
{
	struct decimal d;

	d = parse_ok("9223372036854775807");
	assert_true(d.mantissa == INT64_MAX);
	d = parse_ok("-9223372036854775808");
	assert_true(d.mantissa == INT64_MIN);
	d = parse_ok("-9.223372036854775808");
	assert_true(d.mantissa == INT64_MIN);
	assert_int_equal(d.scale, 18);
	d = parse_ok("0.000000000000000001");
	assert_int_equal(d.mantissa, 1);
	assert_int_equal(d.scale, 18);
	/* Leading zeros add digits but not magnitude. */
	d = parse_ok("00000000000000000000001.5");
	assert_int_equal(d.mantissa, 15);
	assert_int_equal(d.scale, 1);
}

static void
test_format_examples(void **state)
{
	assert_string_equal(fmt(dec(18935, 2)), "189.35");
	assert_string_equal(fmt(dec(18930, 2)), "189.30");
	assert_string_equal(fmt(dec(5, 3)), "0.005");
	assert_string_equal(fmt(dec(-5, 3)), "-0.005");
	assert_string_equal(fmt(dec(0, 0)), "0");
	assert_string_equal(fmt(dec(0, 2)), "0.00");
	assert_string_equal(fmt(dec(123, 3)), "0.123");
	assert_string_equal(fmt(dec(1234, 3)), "1.234");
	assert_string_equal(fmt(dec(-100, 0)), "-100");
	assert_string_equal(fmt(dec(INT64_MAX, 0)), "9223372036854775807");
	assert_string_equal(fmt(dec(INT64_MIN, 0)), "-9223372036854775808");
	assert_string_equal(fmt(dec(INT64_MIN, 18)), "-9.223372036854775808");
	assert_string_equal(fmt(dec(-1, 18)), "-0.000000000000000001");
}

/* The digits of v from decimal_write_u64_backwards(), NUL-terminated. The
 * bytes before the digits must be left as they were. */
static const char *
digits_of(uint64_t v)
{
	static char buf[32];
	char *end = buf + sizeof buf - 1;
	size_t n, i;

	memset(buf, '#', sizeof buf);
	*end = '\0';
	n = decimal_write_u64_backwards(v, end);
	assert_true(n >= 1 && n <= 20);
	for (i = 0; i < sizeof buf - 1 - n; i++)
		assert_int_equal(buf[i], '#');
	return end - n;
}

static void
test_write_u64_backwards(void **state)
{
	assert_string_equal(digits_of(0), "0");
	assert_string_equal(digits_of(7), "7");
	assert_string_equal(digits_of(10), "10");
	assert_string_equal(digits_of(99), "99");
	assert_string_equal(digits_of(100), "100");
	assert_string_equal(digits_of(1005), "1005");
	assert_string_equal(digits_of(1709303400123456ULL), "1709303400123456");
	assert_string_equal(digits_of(UINT64_MAX), "18446744073709551615");
}

/* Format then parse must give back the same mantissa and scale. */
static void
check_round_trip(struct decimal d)
{
	char buf[DECIMAL_MAX_TEXT];
	struct decimal back = {0, 0};
	size_t n = decimal_format(d, buf);

	assert_true(n <= DECIMAL_MAX_TEXT);
	assert_int_equal(decimal_parse(buf, n, &back), 0);
	assert_true(back.mantissa == d.mantissa);
	assert_int_equal(back.scale, d.scale);
}

static void
test_round_trip_preserves_mantissa_and_scale(void **state)
{
	static const int64_t mantissas[] = {
	        0,
	        1,
	        -1,
	        5,
	        9,
	        10,
	        99,
	        100,
	        18935,
	        18930,
	        -18930,
	        123456789,
	        INT64_MAX,
	        INT64_MIN,
	        INT64_MAX / 10,
	        INT64_MIN + 1,
	        1000000000000000000LL,
	        -999999999999999999LL,
	};
	uint64_t x = 0x9e3779b97f4a7c15ull;
	size_t i;
	unsigned s;
	int k;

	for (i = 0; i < sizeof mantissas / sizeof mantissas[0]; i++)
		for (s = 0; s <= DECIMAL_MAX_SCALE; s++)
			check_round_trip(dec(mantissas[i], (uint8_t)s));
	/* And a spread of pseudo-random values of every magnitude. */
	for (k = 0; k < 100000; k++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		uint64_t mag = x >> (x % 64);
		int64_t m = (int64_t)((x & 1) ? 0u - mag : mag);

		check_round_trip(
		        dec(m, (uint8_t)(x % (DECIMAL_MAX_SCALE + 1))));
	}
}

static void
test_text_round_trip_is_identity(void **state)
{
	static const char *const texts[] = {
	        "189.35",
	        "189.30",
	        "0.005",
	        "-0.005",
	        "0",
	        "0.00",
	        "100",
	        "1.000000000000000000",
	        "-9223372036854775808",
	};
	size_t i;

	for (i = 0; i < sizeof texts / sizeof texts[0]; i++)
		assert_string_equal(fmt(parse_ok(texts[i])), texts[i]);
}

static void
test_cmp_across_scales(void **state)
{
	assert_int_equal(decimal_cmp(parse_ok("189.3"), parse_ok("189.30")), 0);
	assert_int_equal(decimal_cmp(parse_ok("189.31"), parse_ok("189.3")), 1);
	assert_int_equal(decimal_cmp(parse_ok("-1"), parse_ok("-0.999")), -1);
	assert_int_equal(decimal_cmp(parse_ok("0"), parse_ok("0.000")), 0);
	assert_int_equal(decimal_cmp(dec(5, 3), dec(5, 3)), 0);
	assert_int_equal(decimal_cmp(dec(4, 3), dec(5, 3)), -1);
}

static void
test_cmp_extremes_do_not_overflow(void **state)
{
	/* Aligning INT64_MAX at scale 0 to scale 18 is far beyond int64: the
	 * comparison must still be right. */
	assert_int_equal(decimal_cmp(dec(INT64_MAX, 0), dec(INT64_MAX, 18)), 1);
	assert_int_equal(decimal_cmp(dec(INT64_MIN, 0), dec(INT64_MIN, 18)),
	                 -1);
	assert_int_equal(decimal_cmp(dec(INT64_MIN, 18), dec(INT64_MAX, 0)),
	                 -1);
	assert_int_equal(decimal_cmp(dec(1, 0), dec(1000000000000000000LL, 18)),
	                 0);
}

static void
test_add_sub_across_scales(void **state)
{
	struct decimal r;

	assert_int_equal(decimal_add(parse_ok("189.3"), parse_ok("0.05"), &r),
	                 0);
	assert_string_equal(fmt(r), "189.35");
	assert_int_equal(decimal_sub(parse_ok("189.35"), parse_ok("0.05"), &r),
	                 0);
	assert_string_equal(fmt(r), "189.30");
	assert_int_equal(decimal_add(parse_ok("1"), parse_ok("-2.500"), &r), 0);
	assert_string_equal(fmt(r), "-1.500");
	assert_int_equal(decimal_sub(parse_ok("0"), parse_ok("0.001"), &r), 0);
	assert_int_equal(r.mantissa, -1);
	assert_int_equal(r.scale, 3);
}

static void
test_add_sub_overflow_refused(void **state)
{
	struct decimal r = {42, 7};

	assert_int_equal(decimal_add(dec(INT64_MAX, 0), dec(1, 0), &r), -1);
	assert_int_equal(decimal_sub(dec(INT64_MIN, 0), dec(1, 0), &r), -1);
	/* Aligning 1e18 to scale 1 already leaves int64. */
	assert_int_equal(
	        decimal_add(dec(1000000000000000000LL, 0), dec(0, 1), &r), -1);
	assert_int_equal(decimal_sub(dec(0, 0), dec(INT64_MIN, 0), &r), -1);
	/* *out is untouched by a refusal. */
	assert_int_equal(r.mantissa, 42);
	assert_int_equal(r.scale, 7);
	/* The exact edges still succeed. */
	assert_int_equal(decimal_add(dec(INT64_MAX - 1, 0), dec(1, 0), &r), 0);
	assert_true(r.mantissa == INT64_MAX);
	assert_int_equal(decimal_sub(dec(INT64_MIN + 1, 0), dec(1, 0), &r), 0);
	assert_true(r.mantissa == INT64_MIN);
}

static void
test_mid_is_exact(void **state)
{
	struct decimal r = {42, 7};

	assert_int_equal(decimal_mid(parse_ok("189.33"), parse_ok("189.36"), &r),
	                 0);
	assert_string_equal(fmt(r), "189.345");
	assert_int_equal(decimal_mid(parse_ok("1.0850"), parse_ok("1.0852"), &r),
	                 0);
	assert_string_equal(fmt(r), "1.0851");
	assert_int_equal(decimal_mid(parse_ok("1.10"), parse_ok("1.1"), &r), 0);
	assert_string_equal(fmt(r), "1.10");
	assert_int_equal(decimal_mid(parse_ok("1"), parse_ok("2"), &r), 0);
	assert_string_equal(fmt(r), "1.5");
	assert_int_equal(decimal_mid(parse_ok("-3"), parse_ok("0"), &r), 0);
	assert_string_equal(fmt(r), "-1.5");
	assert_int_equal(decimal_mid(dec(INT64_MAX, 0), dec(INT64_MAX, 0), &r),
	                 0);
	assert_true(r.mantissa == INT64_MAX && r.scale == 0);
	/* An odd sum at the largest scale, or a half past int64: refused,
	 * *out untouched. */
	r = (struct decimal){42, 7};
	assert_int_equal(decimal_mid(dec(1, 18), dec(0, 18), &r), -1);
	assert_int_equal(decimal_mid(dec(INT64_MAX, 0), dec(INT64_MAX - 1, 0),
	                             &r),
	                 -1);
	assert_int_equal(r.mantissa, 42);
	assert_int_equal(r.scale, 7);
}

static void
test_to_double_is_nearest(void **state)
{
	assert_true(decimal_to_double(parse_ok("189.35")) == 189.35);
	assert_true(decimal_to_double(parse_ok("-0.005")) == -0.005);
	assert_true(decimal_to_double(parse_ok("100")) == 100.0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_keeps_mantissa_and_scale),
	        cmocka_unit_test(test_parse_uses_only_len_bytes),
	        cmocka_unit_test(test_parse_refuses_malformed),
	        cmocka_unit_test(test_parse_refuses_overflow),
	        cmocka_unit_test(test_parse_accepts_int64_limits),
	        cmocka_unit_test(test_format_examples),
	        cmocka_unit_test(test_write_u64_backwards),
	        cmocka_unit_test(test_round_trip_preserves_mantissa_and_scale),
	        cmocka_unit_test(test_text_round_trip_is_identity),
	        cmocka_unit_test(test_cmp_across_scales),
	        cmocka_unit_test(test_cmp_extremes_do_not_overflow),
	        cmocka_unit_test(test_add_sub_across_scales),
	        cmocka_unit_test(test_add_sub_overflow_refused),
	        cmocka_unit_test(test_mid_is_exact),
	        cmocka_unit_test(test_to_double_is_nearest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

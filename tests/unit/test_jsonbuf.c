/*
 * Unit tests for publisher/jsonbuf.c: growth with headroom, the appenders,
 * RFC 8259 escaping and the failed state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "jsonbuf.h"

/* Compare the buffer's data with a NUL-terminated expectation. */
static void
assert_data(const struct jsonbuf *b, const char *want)
{
	assert_false(jsonbuf_failed(b));
	assert_int_equal(b->len, strlen(want));
	assert_memory_equal(jsonbuf_data(b), want, b->len);
}

static void
test_init_allocates_nothing(void **state)
{
	struct jsonbuf b;

	jsonbuf_init(&b, 16);
	assert_null(b.base);
	assert_null(jsonbuf_data(&b));
	assert_int_equal(b.len, 0);
	assert_false(jsonbuf_failed(&b));
	jsonbuf_free(&b);
	jsonbuf_free(NULL);
}

static void
test_headroom_preserved_across_growth(void **state)
{
	struct jsonbuf b;
	size_t i;

	jsonbuf_init(&b, 16);
	for (i = 0; i < 100000; i++) {
		jsonbuf_append_char(&b, (char)('a' + i % 26));
		/* The data always starts exactly headroom bytes in, so the
		 * caller can write LWS_PRE bytes in front of it. */
		assert_ptr_equal(jsonbuf_data(&b), b.base + 16);
		assert_true(b.cap >= b.len);
	}
	assert_int_equal(b.len, 100000);
	for (i = 0; i < 100000; i++)
		assert_int_equal(jsonbuf_data(&b)[i], (char)('a' + i % 26));
	jsonbuf_free(&b);
}

static void
test_reset_keeps_allocation(void **state)
{
	struct jsonbuf b;
	char *base;

	jsonbuf_init(&b, 8);
	jsonbuf_append_str(&b, "hello");
	base = b.base;
	jsonbuf_reset(&b);
	assert_int_equal(b.len, 0);
	jsonbuf_append_str(&b, "hi");
	assert_ptr_equal(b.base, base);
	assert_data(&b, "hi");
	jsonbuf_free(&b);
}

static void
test_integers(void **state)
{
	struct jsonbuf b;

	jsonbuf_init(&b, 0);
	jsonbuf_append_i64(&b, 0);
	jsonbuf_append_char(&b, ',');
	jsonbuf_append_i64(&b, -1);
	jsonbuf_append_char(&b, ',');
	jsonbuf_append_i64(&b, INT64_MIN);
	jsonbuf_append_char(&b, ',');
	jsonbuf_append_i64(&b, INT64_MAX);
	jsonbuf_append_char(&b, ',');
	jsonbuf_append_u64(&b, UINT64_MAX);
	jsonbuf_append_char(&b, ',');
	jsonbuf_append_u64(&b, 1709303400123456ull);
	assert_data(&b, "0,-1,-9223372036854775808,9223372036854775807,"
	                "18446744073709551615,1709303400123456");
	jsonbuf_free(&b);
}

static void
test_format_u64_matches_printf(void **state)
{
	uint64_t v = 1;
	char out[20], want[32];
	int i;

	for (i = 0; i < 200; i++) {
		size_t n = format_u64(v, out);

		snprintf(want, sizeof want, "%llu", (unsigned long long)v);
		assert_int_equal(n, strlen(want));
		assert_memory_equal(out, want, n);
		v = v * 7 + (uint64_t)i;
	}
	assert_int_equal(format_u64(0, out), 1);
	assert_int_equal(out[0], '0');
}

static void
test_decimal_and_key(void **state)
{
	struct jsonbuf b;
	struct decimal bid = {18930, 2}, tiny = {-5, 3};

	jsonbuf_init(&b, 4);
	jsonbuf_append_char(&b, '{');
	jsonbuf_append_key(&b, "bid");
	jsonbuf_append_decimal(&b, bid);
	jsonbuf_append_char(&b, ',');
	jsonbuf_append_key(&b, "x");
	jsonbuf_append_decimal(&b, tiny);
	jsonbuf_append_char(&b, '}');
	assert_data(&b, "{\"bid\":189.30,\"x\":-0.005}");
	jsonbuf_free(&b);
}

static void
test_quoted_escapes_rfc8259(void **state)
{
	struct jsonbuf b;
	const char in[] = "a\"b\\c\n\r\t\b\f\x01\x1f\x7f/\xc3\xa9";

	jsonbuf_init(&b, 0);
	jsonbuf_append_quoted(&b, in, sizeof in - 1);
	/* Quote, backslash and control characters are escaped (short forms
	 * where JSON has them, \u00XX otherwise); DEL, '/' and UTF-8 pass. */
	assert_data(&b, "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\x7f/"
	                "\xc3\xa9\"");
	jsonbuf_free(&b);
}

static void
test_quoted_embedded_nul_and_empty(void **state)
{
	struct jsonbuf b;

	jsonbuf_init(&b, 0);
	jsonbuf_append_quoted(&b, "", 0);
	jsonbuf_append_quoted(&b, "a\0b", 3);
	assert_data(&b, "\"\"\"a\\u0000b\"");
	jsonbuf_free(&b);
}

static void
test_quoted_long_plain_run(void **state)
{
	struct jsonbuf b;
	char in[5000];
	size_t i;

	memset(in, 'x', sizeof in);
	in[2500] = '"';
	jsonbuf_init(&b, 0);
	jsonbuf_append_quoted(&b, in, sizeof in);
	assert_false(jsonbuf_failed(&b));
	assert_int_equal(b.len, sizeof in + 3);
	assert_int_equal(jsonbuf_data(&b)[0], '"');
	assert_int_equal(jsonbuf_data(&b)[2501], '\\');
	assert_int_equal(jsonbuf_data(&b)[2502], '"');
	assert_int_equal(jsonbuf_data(&b)[b.len - 1], '"');
	for (i = 1; i < 2501; i++)
		assert_int_equal(jsonbuf_data(&b)[i], 'x');
	jsonbuf_free(&b);
}

static void
test_failed_state_ignores_appends_until_reset(void **state)
{
	struct jsonbuf b;
	struct decimal d = {1, 0};

	jsonbuf_init(&b, 16);
	jsonbuf_append_str(&b, "ok");
	/* A request no allocator can satisfy stands in for running out of
	 * memory: the buffer must become failed, not crash or wrap. */
	assert_int_equal(jsonbuf_reserve(&b, SIZE_MAX - 8), -1);
	assert_true(jsonbuf_failed(&b));
	jsonbuf_append_str(&b, "more");
	jsonbuf_append_char(&b, 'c');
	jsonbuf_append_i64(&b, 5);
	jsonbuf_append_u64(&b, 5);
	jsonbuf_append_decimal(&b, d);
	jsonbuf_append_quoted(&b, "q", 1);
	jsonbuf_append_key(&b, "k");
	assert_true(jsonbuf_failed(&b));
	assert_int_equal(b.len, 2);
	assert_int_equal(jsonbuf_reserve(&b, 1), -1);
	jsonbuf_reset(&b);
	assert_false(jsonbuf_failed(&b));
	jsonbuf_append_str(&b, "again");
	assert_data(&b, "again");
	jsonbuf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_init_allocates_nothing),
	        cmocka_unit_test(test_headroom_preserved_across_growth),
	        cmocka_unit_test(test_reset_keeps_allocation),
	        cmocka_unit_test(test_integers),
	        cmocka_unit_test(test_format_u64_matches_printf),
	        cmocka_unit_test(test_decimal_and_key),
	        cmocka_unit_test(test_quoted_escapes_rfc8259),
	        cmocka_unit_test(test_quoted_embedded_nul_and_empty),
	        cmocka_unit_test(test_quoted_long_plain_run),
	        cmocka_unit_test(test_failed_state_ignores_appends_until_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

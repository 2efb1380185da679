/*
 * Unit tests for publisher/utf8.c: what UTF-8 is (RFC 3629) at each edge
 * of the well-formed byte sequences, and a text checked in pieces that cut
 * characters in two, as WebSocket fragments do.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "utf8.h"

static void
valid(const char *s)
{
	if (!utf8_valid(s, strlen(s)))
		fail_msg("'%s' refused", s);
}

static void
invalid(const char *s, size_t len)
{
	if (utf8_valid(s, len))
		fail_msg("%zu bytes accepted", len);
}

#define INVALID(lit) invalid(lit, sizeof lit - 1)

static void
test_utf8_valid(void **state)
{
	valid("");
	valid("plain ASCII {\"op\":\"ping\"}");
	valid("\xc2\x80");         /* U+0080, first of two bytes */
	valid("\xdf\xbf");         /* U+07FF */
	valid("\xe0\xa0\x80");     /* U+0800, first of three */
	valid("\xed\x9f\xbf");     /* U+D7FF, last before surrogates */
	valid("\xee\x80\x80");     /* U+E000, first after them */
	valid("\xef\xbf\xbf");     /* U+FFFF */
	valid("\xf0\x90\x80\x80"); /* U+10000, first of four */
	valid("\xf4\x8f\xbf\xbf"); /* U+10FFFF, the last */
	valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x88"); /* é € 📈 */
	assert_true(utf8_valid("a\0b", 3)); /* NUL is a character */
}

static void
test_utf8_invalid(void **state)
{
	INVALID("\x80"); /* a continuation byte alone */
	INVALID("\xbf");
	INVALID("\xc0\x80");         /* overlong NUL */
	INVALID("\xc1\xbf");         /* overlong U+007F */
	INVALID("\xe0\x9f\xbf");     /* overlong U+07FF */
	INVALID("\xf0\x8f\xbf\xbf"); /* overlong U+FFFF */
	INVALID("\xed\xa0\x80");     /* U+D800, a surrogate */
	INVALID("\xed\xbf\xbf");     /* U+DFFF */
	INVALID("\xf4\x90\x80\x80"); /* U+110000, past the last */
	INVALID("\xf5\x80\x80\x80");
	INVALID("\xff");
	INVALID("\xfe");
	INVALID("\xc3"); /* cut short at the end */
	INVALID("\xe2\x82");
	INVALID("\xf0\x9f\x93");
	INVALID("\xc3\x28"); /* a lead byte, then not a continuation */
	INVALID("\xe2\x28\xa1");
	INVALID("ok\xc3\xa9\x80");
}

/* Every way to cut a text in two pieces gives what the whole gives. */
static void
test_utf8_in_pieces(void **state)
{
	static const char texts[][16] = {"caf\xc3\xa9", "\xe2\x82\xac!",
	                                 "\xf0\x9f\x93\x88", "\xed\xa0\x80",
	                                 "\xe2\x82"};
	size_t t, cut;

	for (t = 0; t < sizeof texts / sizeof texts[0]; t++) {
		size_t len = strlen(texts[t]);
		bool whole = utf8_valid(texts[t], len);

		for (cut = 0; cut <= len; cut++) {
			struct utf8_check u;
			bool ok;

			utf8_check_init(&u);
			ok = utf8_check_feed(&u, texts[t], cut) == 0 &&
			     utf8_check_feed(&u, texts[t] + cut, len - cut) ==
			             0 &&
			     utf8_check_complete(&u);
			assert_int_equal(ok, whole);
		}
	}
}

/* A piece that ends inside a character is fine so far, not complete; a
 * bad byte is refused at once, before the text ends. */
static void
test_utf8_state(void **state)
{
	struct utf8_check u;

	utf8_check_init(&u);
	assert_true(utf8_check_complete(&u));
	assert_int_equal(utf8_check_feed(&u, "\xf0\x9f", 2), 0);
	assert_false(utf8_check_complete(&u));
	assert_int_equal(utf8_check_feed(&u, "\x93", 1), 0);
	assert_false(utf8_check_complete(&u));
	assert_int_equal(utf8_check_feed(&u, "\x88", 1), 0);
	assert_true(utf8_check_complete(&u));

	utf8_check_init(&u);
	assert_int_equal(utf8_check_feed(&u, "\xed", 1), 0);
	assert_int_equal(utf8_check_feed(&u, "\xa0", 1), -1);

	/* zeroed is started */
	memset(&u, 0, sizeof u);
	assert_int_equal(utf8_check_feed(&u, "\xc3\xa9", 2), 0);
	assert_true(utf8_check_complete(&u));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_utf8_valid),
	        cmocka_unit_test(test_utf8_invalid),
	        cmocka_unit_test(test_utf8_in_pieces),
	        cmocka_unit_test(test_utf8_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests for publisher/errbuf.h: errf() writes the message, returns -1,
 * cuts a long message at the buffer and tolerates a caller that wants no
 * message at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "errbuf.h"

static void
test_writes_message_and_returns_minus_one(void **state)
{
	char err[64] = "stale";

	assert_int_equal(
	        errf(err, sizeof err, "cannot open '%s': %d", "x.db", 7), -1);
	assert_string_equal(err, "cannot open 'x.db': 7");
}

static void
test_long_message_is_cut_and_terminated(void **state)
{
	char err[8];

	memset(err, 'z', sizeof err);
	assert_int_equal(errf(err, sizeof err, "%s", "0123456789abcdef"), -1);
	assert_string_equal(err, "0123456");
	assert_int_equal(err[sizeof err - 1], '\0');
}

static void
test_exact_fit_keeps_every_byte(void **state)
{
	char err[6];

	errf(err, sizeof err, "%s", "12345");
	assert_string_equal(err, "12345");
}

static void
test_one_byte_buffer_is_empty_string(void **state)
{
	char err[1] = {'z'};

	assert_int_equal(errf(err, sizeof err, "anything"), -1);
	assert_int_equal(err[0], '\0');
}

static void
test_no_buffer_still_fails(void **state)
{
	char err[4] = "abc";

	assert_int_equal(errf(NULL, 64, "ignored %d", 1), -1);
	/* errlen 0: the buffer is not touched, not even its first byte. */
	assert_int_equal(errf(err, 0, "ignored %d", 2), -1);
	assert_string_equal(err, "abc");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_writes_message_and_returns_minus_one),
	        cmocka_unit_test(test_long_message_is_cut_and_terminated),
	        cmocka_unit_test(test_exact_fit_keeps_every_byte),
	        cmocka_unit_test(test_one_byte_buffer_is_empty_string),
	        cmocka_unit_test(test_no_buffer_still_fails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

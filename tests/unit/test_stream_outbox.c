/*
 * Unit tests for publisher/stream_outbox.c: frames are numbered in order,
 * a message added in pieces is one frame, a cursor is continued while the
 * frames after it are kept, acknowledged frames are freed, and written
 * frames past the retention bound are dropped oldest first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "stream_outbox.h"

static void
add(struct stream_outbox *o, const char *text)
{
	assert_int_equal(stream_outbox_add(o, text, strlen(text), true), 0);
}

/* Write every unsent frame; returns them joined by '|' in buf. */
static const char *
write_all(struct stream_outbox *o, char *buf, size_t cap)
{
	struct stream_frame f;
	size_t n = 0;

	buf[0] = '\0';
	while (stream_outbox_next(o, &f)) {
		n += (size_t)snprintf(buf + n, cap - n, "%s%llu:%.*s",
		                      n ? "|" : "", (unsigned long long)f.number,
		                      (int)f.len, f.data);
		stream_outbox_sent(o);
	}
	return buf;
}

static void
test_frames_numbered_in_order(void **state)
{
	struct stream_outbox *o = stream_outbox_create(1 << 20);
	char buf[256];

	(void)state;
	assert_int_equal(stream_outbox_last(o), 0);
	add(o, "a");
	add(o, "bb");
	assert_int_equal(stream_outbox_unsent_bytes(o), 3);
	assert_string_equal(write_all(o, buf, sizeof buf), "1:a|2:bb");
	assert_int_equal(stream_outbox_last_sent(o), 2);
	add(o, "c");
	assert_string_equal(write_all(o, buf, sizeof buf), "3:c");
	stream_outbox_destroy(o);
}

static void
test_pieces_make_one_frame(void **state)
{
	struct stream_outbox *o = stream_outbox_create(1 << 20);
	char buf[256];

	(void)state;
	assert_int_equal(stream_outbox_add(o, "{\"ticks\":[", 10, false), 0);
	/* Not finished: nothing to write yet. */
	assert_string_equal(write_all(o, buf, sizeof buf), "");
	assert_int_equal(stream_outbox_add(o, "1,2", 3, false), 0);
	assert_int_equal(stream_outbox_add(o, "]}", 2, true), 0);
	add(o, "x");
	assert_string_equal(write_all(o, buf, sizeof buf),
	                    "1:{\"ticks\":[1,2]}|2:x");
	stream_outbox_destroy(o);
}

static void
test_rewind_writes_again_after_cursor(void **state)
{
	struct stream_outbox *o = stream_outbox_create(1 << 20);
	char buf[256];

	(void)state;
	add(o, "a");
	add(o, "b");
	add(o, "c");
	write_all(o, buf, sizeof buf);
	assert_true(stream_outbox_rewind(o, 1));
	assert_int_equal(stream_outbox_last_sent(o), 1);
	add(o, "d");
	assert_string_equal(write_all(o, buf, sizeof buf), "2:b|3:c|4:d");
	/* The cursor of everything: nothing to write again. */
	assert_true(stream_outbox_rewind(o, 4));
	assert_string_equal(write_all(o, buf, sizeof buf), "");
	/* A cursor from the future is refused, and changes nothing. */
	assert_false(stream_outbox_rewind(o, 5));
	add(o, "e");
	assert_string_equal(write_all(o, buf, sizeof buf), "5:e");
	stream_outbox_destroy(o);
}

static void
test_ack_frees_and_bounds_rewind(void **state)
{
	struct stream_outbox *o = stream_outbox_create(1 << 20);
	char buf[256];

	(void)state;
	add(o, "a");
	add(o, "b");
	add(o, "c");
	write_all(o, buf, sizeof buf);
	stream_outbox_ack(o, 2);
	assert_int_equal(stream_outbox_bytes(o), 1);
	/* Frames 1 and 2 are gone: a client at 0 cannot be continued,
	 * one at 2 can. */
	assert_false(stream_outbox_rewind(o, 0));
	assert_true(stream_outbox_rewind(o, 2));
	assert_string_equal(write_all(o, buf, sizeof buf), "3:c");
	/* An acknowledgement never frees what was not written. */
	add(o, "d");
	stream_outbox_ack(o, 4);
	assert_string_equal(write_all(o, buf, sizeof buf), "4:d");
	stream_outbox_destroy(o);
}

static void
test_retention_drops_oldest_written(void **state)
{
	struct stream_outbox *o = stream_outbox_create(4);
	char buf[256];

	(void)state;
	add(o, "aa");
	add(o, "bb");
	add(o, "cc");
	/* Unsent frames are kept whatever their size. */
	assert_int_equal(stream_outbox_bytes(o), 6);
	write_all(o, buf, sizeof buf);
	/* Written: at most 4 bytes kept, so frame 1 went. */
	assert_int_equal(stream_outbox_bytes(o), 4);
	assert_false(stream_outbox_rewind(o, 0));
	assert_true(stream_outbox_rewind(o, 1));
	assert_string_equal(write_all(o, buf, sizeof buf), "2:bb|3:cc");
	stream_outbox_destroy(o);
}

static void
test_empty_outbox_cursor(void **state)
{
	struct stream_outbox *o = stream_outbox_create(0);
	char buf[64];

	(void)state;
	assert_true(stream_outbox_rewind(o, 0));
	add(o, "a");
	write_all(o, buf, sizeof buf);
	/* Nothing kept (bound 0): only the last cursor continues. */
	assert_int_equal(stream_outbox_bytes(o), 0);
	assert_true(stream_outbox_rewind(o, 1));
	assert_false(stream_outbox_rewind(o, 0));
	stream_outbox_destroy(o);
	stream_outbox_destroy(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_frames_numbered_in_order),
	        cmocka_unit_test(test_pieces_make_one_frame),
	        cmocka_unit_test(test_rewind_writes_again_after_cursor),
	        cmocka_unit_test(test_ack_frees_and_bounds_rewind),
	        cmocka_unit_test(test_retention_drops_oldest_written),
	        cmocka_unit_test(test_empty_outbox_cursor),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

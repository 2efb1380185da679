/*
 * Unit tests for publisher/ws_deflate.c: what it compresses inflates back
 * to the very text (with zlib's inflate, as a browser would, the sync tail
 * put back); a frame shared under one id is compressed once; frames of one
 * client alone stop being compressed when the budget is spent, and the
 * budget comes back with time; and which extension offers it can honour.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "ws_deflate.h"

/* A batch of deltas as the engine writes them. */
static size_t
make_frame(char *buf, size_t cap, int updates, int salt)
{
	size_t len = 0;
	int i;

	buf[len++] = '[';
	for (i = 0; i < updates; i++)
		len += (size_t)snprintf(
			buf + len, cap - len,
			"%s{\"type\":\"delta\",\"symbol\":\"S%04d\",\"from\":%d,"
			"\"seq\":%d,\"ts\":17965977%08d,\"bid\":%d.%02d,"
			"\"ask\":%d.%02d,\"volume\":%d}",
			i ? "," : "", i, 100 + i + salt, 102 + i + salt,
			i * 7919 + salt, 100 + i % 50, (i * 37 + salt) % 100,
			100 + i % 50, (i * 37 + salt + 3) % 100,
			1000 * i + salt);
	buf[len++] = ']';
	return len;
}

/* Inflate a message the way a client does: the 4 bytes the sender strips
 * put back. Returns the text's length. */
static size_t
inflate_message(const unsigned char *z, size_t zlen, char *out, size_t cap)
{
	static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
	unsigned char *in = malloc(zlen + 4);
	z_stream s;
	size_t n;

	assert_non_null(in);
	memcpy(in, z, zlen);
	memcpy(in + zlen, tail, 4);
	memset(&s, 0, sizeof s);
	assert_int_equal(inflateInit2(&s, -15), Z_OK);
	s.next_in = in;
	s.avail_in = (uInt)(zlen + 4);
	s.next_out = (unsigned char *)out;
	s.avail_out = (uInt)cap;
	assert_true(inflate(&s, Z_SYNC_FLUSH) == Z_OK);
	assert_int_equal(s.avail_in, 0);
	n = cap - s.avail_out;
	inflateEnd(&s);
	free(in);
	return n;
}

static struct ws_deflate *
make(size_t solo_bytes_per_s)
{
	struct ws_deflate_config cfg;
	struct ws_deflate *d;

	ws_deflate_config_default(&cfg);
	cfg.headroom = 16;
	cfg.solo_bytes_per_s = solo_bytes_per_s;
	d = ws_deflate_create(&cfg);
	assert_non_null(d);
	return d;
}

static void
test_compressed_frames_inflate_to_the_same_text(void **state)
{
	static char text[128 * 1024], back[256 * 1024];
	struct ws_deflate *d = make(1 << 20);
	struct ws_deflate_stats st;
	unsigned char *z;
	size_t len, zlen;
	int updates;

	(void)state;
	for (updates = 4; updates <= 500; updates *= 5) {
		len = make_frame(text, sizeof text, updates, updates);
		zlen = ws_deflate_frame(d, 0, text, len, 0, &z);
		assert_true(zlen > 0 && zlen < len);
		assert_int_equal(inflate_message(z, zlen, back, sizeof back),
				 len);
		assert_memory_equal(back, text, len);
		/* The same for a shared frame. */
		zlen = ws_deflate_frame(d, (uint64_t)updates, text, len, 0, &z);
		assert_int_equal(inflate_message(z, zlen, back, sizeof back),
				 len);
		assert_memory_equal(back, text, len);
	}
	/* These frames are market data: expect at least 3:1. */
	ws_deflate_get_stats(d, &st);
	assert_true(st.bytes_out * 3 < st.bytes_in);
	ws_deflate_destroy(d);
}

static void
test_a_shared_frame_is_compressed_once(void **state)
{
	static char text[64 * 1024], other[64 * 1024];
	struct ws_deflate *d = make(0);
	struct ws_deflate_stats st;
	unsigned char *z, *z2;
	size_t len, len2, zlen, zlen2;
	int i;

	(void)state;
	len = make_frame(text, sizeof text, 100, 1);
	len2 = make_frame(other, sizeof other, 100, 2);
	zlen = ws_deflate_frame(d, 7, text, len, 0, &z);
	assert_true(zlen > 0);
	for (i = 0; i < 999; i++) {
		assert_int_equal(ws_deflate_frame(d, 7, text, len, 0, &z2),
				 zlen);
		assert_ptr_equal(z2, z);
	}
	/* Another id is another frame, even while the first is kept. */
	zlen2 = ws_deflate_frame(d, 8, other, len2, 0, &z2);
	assert_true(zlen2 > 0);
	assert_true(zlen2 != zlen || memcmp(z, z2, zlen));
	assert_int_equal(ws_deflate_frame(d, 7, text, len, 0, &z), zlen);
	ws_deflate_get_stats(d, &st);
	assert_int_equal(st.shared_frames, 2);
	assert_int_equal(st.shared_reused, 1000);
	/* With no budget for frames of one client alone, those go as text. */
	assert_int_equal(ws_deflate_frame(d, 0, text, len, 0, &z), 0);
	ws_deflate_destroy(d);
}

static void
test_frames_of_one_client_stop_at_the_budget_and_resume_with_time(void **state)
{
	static char text[64 * 1024];
	struct ws_deflate *d;
	struct ws_deflate_stats st;
	unsigned char *z;
	size_t len;
	int sent = 0;

	(void)state;
	len = make_frame(text, sizeof text, 100, 3);
	/* Budget: ten frames a second. */
	d = make(10 * len);
	while (ws_deflate_frame(d, 0, text, len, 1000000, &z))
		sent++;
	assert_int_equal(sent, 10);
	ws_deflate_get_stats(d, &st);
	assert_int_equal(st.solo_over_budget, 1);
	/* A tenth of a second later, one more. */
	assert_true(ws_deflate_frame(d, 0, text, len, 1100000, &z) > 0);
	assert_int_equal(ws_deflate_frame(d, 0, text, len, 1100000, &z), 0);
	ws_deflate_destroy(d);
}

static void
test_short_or_incompressible_frames_go_as_text(void **state)
{
	static char noise[4096];
	struct ws_deflate *d = make(1 << 20);
	unsigned char *z;
	uint32_t x = 12345;
	size_t i;

	(void)state;
	assert_int_equal(ws_deflate_frame(d, 1, "{\"type\":\"delta\"}", 16, 0,
					  &z),
			 0);
	for (i = 0; i < sizeof noise; i++) {
		x = x * 1103515245u + 12345u;
		noise[i] = (char)(x >> 24);
	}
	assert_int_equal(ws_deflate_frame(d, 2, noise, sizeof noise, 0, &z), 0);
	assert_int_equal(ws_deflate_frame(d, 0, noise, sizeof noise, 0, &z), 0);
	ws_deflate_destroy(d);
}

static void
test_offers_it_can_honour(void **state)
{
	(void)state;
	assert_true(ws_deflate_offer_acceptable("permessage-deflate"));
	assert_true(ws_deflate_offer_acceptable(
		"permessage-deflate; client_max_window_bits"));
	assert_true(ws_deflate_offer_acceptable(
		"permessage-deflate; server_no_context_takeover; "
		"client_no_context_takeover"));
	assert_true(ws_deflate_offer_acceptable(
		"permessage-deflate; server_max_window_bits"));
	assert_true(ws_deflate_offer_acceptable(
		"permessage-deflate; server_max_window_bits=15"));
	assert_false(ws_deflate_offer_acceptable(
		"permessage-deflate; server_max_window_bits=10"));
	assert_false(ws_deflate_offer_acceptable(
		"permessage-deflate; Server_Max_Window_Bits = \"9\""));
	assert_false(ws_deflate_offer_acceptable(
		"permessage-deflate; client_max_window_bits, "
		"permessage-deflate; server_max_window_bits=8"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compressed_frames_inflate_to_the_same_text),
		cmocka_unit_test(test_a_shared_frame_is_compressed_once),
		cmocka_unit_test(
			test_frames_of_one_client_stop_at_the_budget_and_resume_with_time),
		cmocka_unit_test(test_short_or_incompressible_frames_go_as_text),
		cmocka_unit_test(test_offers_it_can_honour),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

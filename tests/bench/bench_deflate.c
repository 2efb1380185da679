/*
 * bench_deflate: what compressing update frames costs and saves
 * (publisher/ws_deflate.c), on frames the engine makes.
 *
 * A program, not a test: it prints figures and never fails on a timing.
 * 1,000 symbols of random quotes and trades, one client on "*". Each round
 * ticks D symbols (D = 10, 100, 1,000), flushes and takes the client's
 * frame: the text a shared frame carries. Every frame is then compressed
 * at zlib levels 1, 3 and 6, as ws_deflate_frame() does for the first
 * client of a shared frame, and the figures are per frame: text and
 * compressed bytes, the ratio, microseconds, and MB of text per second.
 * The last line is the cost of a cache hit (every other client of a shared
 * frame), which should be a few nanoseconds whatever the frame.
 *
 * Usage: bench_deflate [seconds per cell, default 1]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decimal.h"
#include "engine.h"
#include "tick.h"
#include "ws_deflate.h"

#include "support/rng.h"
#include "support/ticks.h"
#include "support/timing.h"

#define NSYMBOLS 1000
#define NFRAMES  64

/* Every run draws the same workload. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* A price walk per symbol: quotes, and one time in three a trade. */
static void
tick_random(struct tick *t, unsigned sym, int64_t ts, int64_t *mid)
{
	char name[TICK_SYMBOL_MAX + 1];

	snprintf(name, sizeof name, "SYM%04u.X", sym);
	mid[sym] += (int64_t)(xorshift64_next(&rng_state) % 5) - 2;
	if (xorshift64_next(&rng_state) % 3 == 0) {
		*t = tick_trade(
		        name, ts, dec_raw(mid[sym], 2),
		        dec_raw(100 * (1 + xorshift64_next(&rng_state) % 50),
		                0));
		return;
	}
	*t = tick_quote(name, ts, dec_raw(mid[sym] - 1, 2),
	                dec_raw(mid[sym] + 1, 2));
	tick_set(t, FIELD_BID_SIZE,
	         dec_raw(100 * (1 + xorshift64_next(&rng_state) % 50), 0));
	tick_set(t, FIELD_ASK_SIZE,
	         dec_raw(100 * (1 + xorshift64_next(&rng_state) % 50), 0));
}

struct frames {
	char *text[NFRAMES];
	size_t len[NFRAMES];
	size_t total;
};

/* NFRAMES frames of `dirty` changed symbols each, as a "*" client gets
 * them. */
static void
make_frames(struct frames *fr, unsigned dirty)
{
	static int64_t mid[NSYMBOLS];
	struct engine_config cfg = {0};
	struct engine *e = engine_create(&cfg);
	struct engine_client *c;
	char *scratch = malloc(ENGINE_FRAME_CAP);
	struct tick t;
	int64_t ts = 1796597693000000;
	unsigned i, k;

	if (!e || !scratch)
		exit(1);
	for (i = 0; i < NSYMBOLS; i++) {
		mid[i] = 1000 +
		         100 * (int64_t)(xorshift64_next(&rng_state) % 5000);
		tick_random(&t, i, ts++, mid);
		engine_apply_tick(e, &t);
	}
	c = engine_client_create(e, NULL);
	engine_client_subscribe_all(c, NULL, NULL);
	engine_flush(e);
	while (engine_client_write(c, 0, scratch, ENGINE_FRAME_CAP, NULL))
		;
	fr->total = 0;
	for (k = 0; k < NFRAMES; k++) {
		for (i = 0; i < dirty; i++) {
			tick_random(&t,
			            dirty == NSYMBOLS
			                    ? i
			                    : xorshift64_next(&rng_state) %
			                              NSYMBOLS,
			            ts += 137, mid);
			engine_apply_tick(e, &t);
		}
		engine_flush(e);
		fr->len[k] = engine_client_write(c, 0, scratch,
		                                 ENGINE_FRAME_CAP, NULL);
		fr->text[k] = malloc(fr->len[k]);
		memcpy(fr->text[k], scratch, fr->len[k]);
		fr->total += fr->len[k];
		/* Whatever did not fit the frame cap is left for later. */
		while (engine_client_write(c, 0, scratch, ENGINE_FRAME_CAP,
		                           NULL))
			;
	}
	engine_destroy(e);
	free(scratch);
}

static void
bench_level(const struct frames *fr, unsigned dirty, int level, double secs)
{
	struct ws_deflate_config cfg;
	struct ws_deflate_stats st;
	struct ws_deflate *d;
	unsigned char *z;
	uint64_t id = 0, frames = 0;
	double t0, t1;

	ws_deflate_config_default(&cfg);
	cfg.level = level;
	d = ws_deflate_create(&cfg);
	if (!d)
		exit(1);
	t0 = timing_now_s();
	do {
		for (unsigned k = 0; k < NFRAMES; k++)
			ws_deflate_frame(d, ++id, fr->text[k], fr->len[k], 0,
			                 &z);
		frames += NFRAMES;
		t1 = timing_now_s();
	} while (t1 - t0 < secs);
	ws_deflate_get_stats(d, &st);
	printf("%6u %6zu  %d  %7.0f  %5.2f:1  %8.1f  %7.0f\n", dirty,
	       fr->total / NFRAMES, level,
	       (double)st.bytes_out / (double)frames,
	       (double)st.bytes_in / (double)st.bytes_out,
	       (t1 - t0) * 1e6 / (double)frames,
	       (double)st.bytes_in / (t1 - t0) / 1e6);
	ws_deflate_destroy(d);
}

static void
bench_hit(const struct frames *fr, double secs)
{
	struct ws_deflate_config cfg;
	struct ws_deflate *d;
	unsigned char *z;
	uint64_t n = 0;
	double t0, t1;
	size_t sum = 0;

	ws_deflate_config_default(&cfg);
	d = ws_deflate_create(&cfg);
	if (!d)
		exit(1);
	ws_deflate_frame(d, 1, fr->text[0], fr->len[0], 0, &z);
	t0 = timing_now_s();
	do {
		for (int i = 0; i < 100000; i++)
			sum += ws_deflate_frame(d, 1, fr->text[0], fr->len[0],
			                        0, &z);
		n += 100000;
		t1 = timing_now_s();
	} while (t1 - t0 < secs);
	printf("cache hit (every other client of a shared frame): %.1f ns "
	       "(checksum %zu)\n",
	       (t1 - t0) * 1e9 / (double)n, sum % 7);
	ws_deflate_destroy(d);
}

int
main(int argc, char **argv)
{
	static const unsigned dirty[] = {10, 100, NSYMBOLS};
	static const int levels[] = {1, 3, 6};
	double secs = argc > 1 ? atof(argv[1]) : 1.0;
	struct frames fr;

	printf("bench_deflate: %u symbols, one \"*\" client; frames of D "
	       "changed symbols, compressed once each\n",
	       NSYMBOLS);
	printf("     D  bytes  lvl  zbytes  ratio   us/frame  MB/s in\n");
	for (unsigned i = 0; i < sizeof dirty / sizeof dirty[0]; i++) {
		make_frames(&fr, dirty[i]);
		for (unsigned j = 0; j < sizeof levels / sizeof levels[0]; j++)
			bench_level(&fr, dirty[i], levels[j], secs);
		if (i + 1 < sizeof dirty / sizeof dirty[0])
			for (unsigned k = 0; k < NFRAMES; k++)
				free(fr.text[k]);
	}
	bench_hit(&fr, secs);
	return 0;
}

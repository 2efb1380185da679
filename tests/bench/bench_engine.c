/*
 * bench_engine: how fast the engine applies ticks and serves subscribers.
 *
 * A program, not a test: it prints figures and never fails on a timing.
 * Three runs, each on one core:
 *
 *  1. apply: random quote and trade ticks on 1,000 symbols, precomputed so
 *     that only engine_apply_tick is timed; no subscribers.
 *  2. fan-out: 1,000 symbols x 1,000 clients, every client subscribed to
 *     every symbol and in step with the others. A round is one tick per
 *     symbol, one engine_flush, and every client taking its frames until
 *     nothing is due. The clients share one subscription group: one frame
 *     per round, encoded once, sent by all.
 *  3. watchlists: 1,000 clients each on 10 symbols of its own (no two
 *     alike), the rounds as above: nothing can be shared but encodings.
 *  4. stalled: fan-out's clients, but only one in a hundred takes its
 *     frames each round: a flush costs the symbols that changed and the
 *     clients that were idle, not the subscriptions.
 *  5. encode: the rounds with a single client, so that every update is a
 *     fresh encoding (the cost of the encoder itself).
 *
 * Usage: bench_engine [seconds per run, default 2]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decimal.h"
#include "engine.h"
#include "tick.h"

#include "support/rng.h"
#include "support/ticks.h"
#include "support/timing.h"

#define NSYMBOLS  1000
#define NCLIENTS  1000
#define NTICKS    (1u << 20)
#define FRAME_CAP ENGINE_FRAME_CAP

/* Every run draws the same workload. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* Resident memory in MiB, from /proc (0 where there is none). */
static double
rss_mib(void)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");
	double kib = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kib = strtod(line + 6, NULL);
	fclose(f);
	return kib / 1024.0;
}

static void
symbol_name(char *out, size_t n, unsigned i)
{
	snprintf(out, n, "SYM%04u.X", i);
}

/* A quote (bid/ask and sizes) or, one time in three, a trade. */
static void
tick_random(struct tick *t, unsigned sym, int64_t ts)
{
	char name[TICK_SYMBOL_MAX + 1];
	int64_t price;

	symbol_name(name, sizeof name, sym);
	if (xorshift64_next(&rng_state) % 3 == 0) {
		price = 10000 + xorshift64_next(&rng_state) % 500;
		*t = tick_trade(
		        name, ts, dec_raw(price, 2),
		        dec_raw(1 + xorshift64_next(&rng_state) % 1000, 0));
		return;
	}
	price = 10000 + xorshift64_next(&rng_state) % 500;
	*t = tick_quote(
	        name, ts, dec_raw(price, 2),
	        dec_raw(price + 1 + xorshift64_next(&rng_state) % 5, 2));
	tick_set(t, FIELD_BID_SIZE,
	         dec_raw(100 * (1 + xorshift64_next(&rng_state) % 10), 0));
	tick_set(t, FIELD_ASK_SIZE,
	         dec_raw(100 * (1 + xorshift64_next(&rng_state) % 10), 0));
}

static void
on_ready(void *user, void *ctx)
{
	(void)user;
	(*(uint64_t *)ctx)++;
}

static struct engine *
engine_new(uint64_t *ready_calls)
{
	struct engine_config cfg = {.client_ready = on_ready,
	                            .ctx = ready_calls};
	struct engine *e = engine_create(&cfg);

	if (!e) {
		fprintf(stderr, "bench_engine: engine_create failed (out of "
		                "memory?)\n");
		exit(1);
	}
	return e;
}

/* Take every frame due for c, as the server does (the bytes are the
 * engine's, shared or in buf); returns the bytes. */
static size_t
drain(struct engine_client *c, int64_t now, char *buf)
{
	const char *out;
	size_t n, total = 0;

	while ((n = engine_client_frame(c, now, buf, &out, NULL)) > 0)
		total += n;
	return total;
}

static void
bench_apply(double seconds)
{
	struct tick *ticks = malloc(NTICKS * sizeof *ticks);
	struct engine_stats st;
	uint64_t ready = 0, applied = 0;
	struct engine *e;
	double t0, t1;
	unsigned i;

	if (!ticks) {
		fprintf(stderr, "bench_engine: out of memory\n");
		exit(1);
	}
	for (i = 0; i < NTICKS; i++)
		tick_random(&ticks[i], xorshift64_next(&rng_state) % NSYMBOLS,
		            (int64_t)i);
	e = engine_new(&ready);
	/* One pass to create the symbols, untimed. */
	for (i = 0; i < NSYMBOLS; i++)
		engine_apply_tick(e, &ticks[i]);

	t0 = timing_now_s();
	do {
		for (i = 0; i < NTICKS; i++)
			applied += engine_apply_tick(e, &ticks[i]) != 0;
		t1 = timing_now_s();
	} while (t1 - t0 < seconds);

	engine_get_stats(e, &st);
	printf("apply      %u symbols, %u precomputed quote/trade ticks, no "
	       "subscribers\n",
	       NSYMBOLS, NTICKS);
	printf("           %.0f ticks/s applied (%.1f ns/tick, %llu ticks, "
	       "%llu refused)\n",
	       (double)applied / (t1 - t0), (t1 - t0) * 1e9 / (double)applied,
	       (unsigned long long)applied,
	       (unsigned long long)st.ticks_rejected);
	engine_destroy(e);
	free(ticks);
}

/*
 * Rounds of one tick per symbol, a flush, and every client writing all that
 * is due. Prints the rates; the flush and write phases are what grow with
 * the number of subscribers.
 */
static void
bench_rounds(const char *label, unsigned nclients, unsigned per_client,
             unsigned take_every, double seconds)
{
	static struct tick ticks[NSYMBOLS];
	static char names[NSYMBOLS][TICK_SYMBOL_MAX + 1];
	struct engine_client **c = calloc(nclients, sizeof *c);
	char(*list)[TICK_SYMBOL_MAX + 1] = calloc(per_client, sizeof *list);
	char *buf = malloc(FRAME_CAP + 64);
	struct engine_stats before, after;
	double t_tick = 0, t_flush = 0, t_write = 0, t0, t1, t2, t3, start;
	double rss0, rss1, t_subscribe;
	uint64_t ready = 0, bytes = 0, rounds = 0, updates;
	struct engine *e;
	unsigned i, k;

	if (!c || !buf || !list) {
		fprintf(stderr, "bench_engine: out of memory\n");
		exit(1);
	}
	for (i = 0; i < NSYMBOLS; i++)
		symbol_name(names[i], sizeof names[i], i);
	e = engine_new(&ready);
	rss0 = rss_mib();
	t0 = timing_now_s();
	for (k = 0; k < nclients; k++) {
		c[k] = engine_client_create(e, NULL);
		if (!c[k]) {
			fprintf(stderr, "bench_engine: out of memory\n");
			exit(1);
		}
		/* Everyone on all, or client k on a stretch of its own. */
		for (i = 0; i < per_client; i++)
			memcpy(list[i],
			       names[per_client == NSYMBOLS
			                     ? i
			                     : (k * 7 + i * 97) % NSYMBOLS],
			       sizeof list[i]);
		if (engine_client_subscribe_many(
		            c[k], (const char(*)[TICK_SYMBOL_MAX + 1]) list,
		            per_client, NULL, NULL)) {
			fprintf(stderr, "bench_engine: subscribe failed (out "
			                "of memory?)\n");
			exit(1);
		}
	}
	t_subscribe = timing_now_s() - t0;
	/* The first round brings everyone a snapshot; untimed. */
	for (i = 0; i < NSYMBOLS; i++) {
		tick_random(&ticks[i], i, 0);
		engine_apply_tick(e, &ticks[i]);
	}
	engine_flush(e);
	for (k = 0; k < nclients; k++)
		drain(c[k], 0, buf);
	rss1 = rss_mib();
	engine_get_stats(e, &before);

	start = timing_now_s();
	do {
		/* New ticks each round, made outside the timed phases. */
		for (i = 0; i < NSYMBOLS; i++)
			tick_random(&ticks[i], i, (int64_t)rounds + 1);
		t0 = timing_now_s();
		for (i = 0; i < NSYMBOLS; i++)
			engine_apply_tick(e, &ticks[i]);
		t1 = timing_now_s();
		engine_flush(e);
		t2 = timing_now_s();
		for (k = 0; k < nclients; k++)
			if ((k + rounds) % take_every == 0)
				bytes += drain(c[k], (int64_t)rounds + 1, buf);
		t3 = timing_now_s();
		t_tick += t1 - t0;
		t_flush += t2 - t1;
		t_write += t3 - t2;
		rounds++;
	} while (t3 - start < seconds);
	engine_get_stats(e, &after);

	updates = after.updates_sent - before.updates_sent;
	printf("%-10s %u symbols x %u clients, %u symbols each (%zu "
	       "subscriptions in %zu groups, subscribed in %.3f s, %.0f MiB)\n",
	       label, NSYMBOLS, nclients, per_client, after.subscriptions,
	       after.groups, t_subscribe, rss1 - rss0);
	printf("           %llu rounds of %u ticks + flush + %s; %.0f "
	       "bytes/update, %.0f%% of frames shared\n",
	       (unsigned long long)rounds, NSYMBOLS,
	       take_every == 1 ? "every client taking its frames"
	                       : "1 client in 100 taking its frames",
	       (double)bytes / (double)updates,
	       100.0 * (double)(after.frames_shared - before.frames_shared) /
	               (double)(after.frames_shared - before.frames_shared +
	                        (after.rounds - before.rounds) + 1));
	printf("           %.0f delta updates/s written (flush + write: "
	       "%.1f ns each); a flush takes %.1f us\n",
	       (double)updates / (t_flush + t_write),
	       (t_flush + t_write) * 1e9 / (double)updates,
	       t_flush * 1e6 / (double)rounds);
	printf("           %.0f updates/s end to end (ticks + flush + "
	       "write); %.0f fresh encodings per round\n",
	       (double)updates / (t_tick + t_flush + t_write),
	       (double)(after.encodings - before.encodings) / (double)rounds);
	printf("           %.1f%% of updates served from the encoding cache; "
	       "time split ticks %.0f%% flush %.0f%% write %.0f%%\n",
	       100.0 *
	               (double)(after.encodings_shared -
	                        before.encodings_shared) /
	               (double)updates,
	       100 * t_tick / (t_tick + t_flush + t_write),
	       100 * t_flush / (t_tick + t_flush + t_write),
	       100 * t_write / (t_tick + t_flush + t_write));
	for (k = 0; k < nclients; k++)
		engine_client_destroy(c[k]);
	engine_destroy(e);
	free(c);
	free(list);
	free(buf);
}

int
main(int argc, char **argv)
{
	double seconds = 2;

	if (argc > 1) {
		seconds = strtod(argv[1], NULL);
		if (!(seconds > 0)) {
			fprintf(stderr, "usage: %s [seconds per run, > 0]\n",
			        argv[0]);
			return 2;
		}
	}
	printf("$ %s %.1f   (engine alone, one thread, figures only: no "
	       "pass/fail)\n",
	       argv[0], seconds);
	bench_apply(seconds);
	bench_rounds("fan-out", NCLIENTS, NSYMBOLS, 1, 2 * seconds);
	bench_rounds("watchlists", NCLIENTS, 10, 1, seconds);
	bench_rounds("stalled", NCLIENTS, NSYMBOLS, 100, seconds);
	bench_rounds("encode", 1, NSYMBOLS, 1, seconds);
	return 0;
}

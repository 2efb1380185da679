/*
 * bench_parse: lines per second through tick_parse_line() on one core.
 *
 * About 2,000,000 lines are generated in memory (no I/O in the measurement):
 * 70% quotes (bid, ask and sizes) and 30% trades (last, last_size) over 100
 * symbols, first as JSONL, then as the same ticks in CSV. Each format is
 * parsed ROUNDS times and the best round is reported, so a noisy neighbour
 * does not decide the figure. The target is 2,000,000 lines/s per format.
 *
 *   make build/bench/bench_parse && ./build/bench/bench_parse [lines]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tick_file.h"

#include "support/rng.h"
#include "support/timing.h"

#define DEFAULT_LINES 2000000
#define ROUNDS        3
#define SYMBOLS       100

/* xorshift64* (support/rng.h): deterministic, so every run parses the same
 * text. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

struct text {
	char *data;
	size_t len, cap;
	size_t lines;
};

static void
text_reserve(struct text *t, size_t more)
{
	if (t->len + more <= t->cap)
		return;
	t->cap = (t->cap + more) * 2;
	t->data = realloc(t->data, t->cap);
	if (!t->data) {
		fprintf(stderr, "bench_parse: out of memory\n");
		exit(1);
	}
}

/* One generated tick, written in both formats from the same numbers. */
struct gen_tick {
	int64_t ts;
	unsigned symbol;
	int trade;
	unsigned price_cents, spread_cents, size_a, size_b;
};

static void
gen_next(struct gen_tick *g, unsigned *prices)
{
	uint64_t r = xorshift64star_next(&rng_state);

	g->ts += 1 + (int64_t)(r % 500);
	g->symbol = (unsigned)(r >> 16) % SYMBOLS;
	g->trade = (r >> 32) % 10 < 3;
	/* A random walk of one cent per tick around each symbol's price. */
	prices[g->symbol] += (r >> 40) & 1 ? 1 : -1;
	g->price_cents = prices[g->symbol];
	g->spread_cents = 1 + (unsigned)((r >> 44) % 5);
	g->size_a = 100 * (1 + (unsigned)((r >> 48) % 50));
	g->size_b = 100 * (1 + (unsigned)((r >> 56) % 50));
}

static void
generate(size_t lines, struct text *jsonl, struct text *csv)
{
	unsigned prices[SYMBOLS];
	struct gen_tick g = {1709303400000000LL, 0, 0, 0, 0, 0, 0};
	size_t i;

	for (i = 0; i < SYMBOLS; i++)
		prices[i] = 1000 +
		            (unsigned)(xorshift64star_next(&rng_state) % 50000);
	text_reserve(csv, 64);
	csv->len += (size_t)sprintf(csv->data + csv->len,
	                            "ts,symbol,bid,ask,bid_size,ask_size,last,"
	                            "last_size\n");
	csv->lines++;
	for (i = 0; i < lines; i++) {
		unsigned p, q;

		gen_next(&g, prices);
		p = g.price_cents;
		q = p + g.spread_cents;
		text_reserve(jsonl, 256);
		text_reserve(csv, 256);
		if (g.trade) {
			jsonl->len += (size_t)sprintf(
			        jsonl->data + jsonl->len,
			        "{\"ts\":%lld,\"symbol\":\"SYM%03u\",\"last\":"
			        "%u.%02u,\"last_size\":%u}\n",
			        (long long)g.ts, g.symbol, p / 100, p % 100,
			        g.size_a);
			csv->len +=
			        (size_t)sprintf(csv->data + csv->len,
			                        "%lld,SYM%03u,,,,,%u.%02u,%u\n",
			                        (long long)g.ts, g.symbol,
			                        p / 100, p % 100, g.size_a);
		} else {
			jsonl->len += (size_t)sprintf(
			        jsonl->data + jsonl->len,
			        "{\"ts\":%lld,\"symbol\":\"SYM%03u\",\"bid\":"
			        "%u.%02u,\"ask\":%u.%02u,\"bid_size\":%u,"
			        "\"ask_size\":%u}\n",
			        (long long)g.ts, g.symbol, p / 100, p % 100,
			        q / 100, q % 100, g.size_a, g.size_b);
			csv->len += (size_t)sprintf(
			        csv->data + csv->len,
			        "%lld,SYM%03u,%u.%02u,%u.%02u,%u,%u,,\n",
			        (long long)g.ts, g.symbol, p / 100, p % 100,
			        q / 100, q % 100, g.size_a, g.size_b);
		}
		jsonl->lines++;
		csv->lines++;
	}
}

/*
 * Parse every line of t once. Returns the ticks parsed; *checksum folds in
 * every value so the work cannot be optimised away, and lets the two formats
 * be compared: the same ticks must give the same sum.
 */
static size_t
parse_all(const struct text *t, enum tick_format format, uint64_t *checksum)
{
	struct tick_parser p;
	const char *s = t->data, *end = t->data + t->len;
	char reason[256];
	size_t ticks = 0;
	uint64_t sum = 0;
	struct tick tick;

	tick_parser_init(&p, format);
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);
		enum tick_parse_result r;
		int f;

		r = tick_parse_line(&p, s, len, &tick, reason, sizeof reason);
		if (r == TICK_PARSE_ERROR) {
			fprintf(stderr, "bench_parse: bad generated line: %s\n",
			        reason);
			exit(1);
		}
		if (r == TICK_PARSE_OK) {
			ticks++;
			sum += (uint64_t)tick.ts +
			       (unsigned char)tick.symbol[5];
			for (f = 0; f < TICK_FIELD_COUNT; f++)
				if (tick_has(&tick, (enum tick_field)f))
					sum += (uint64_t)tick.value[f].mantissa;
		}
		s += len + 1;
	}
	*checksum = sum;
	return ticks;
}

static uint64_t
bench(const char *name, const struct text *t, enum tick_format format)
{
	double best = 0;
	uint64_t checksum = 0;
	size_t ticks = 0;
	int round;

	for (round = 0; round < ROUNDS; round++) {
		double t0 = timing_now_s(), dt;

		ticks = parse_all(t, format, &checksum);
		dt = timing_now_s() - t0;
		if (round == 0 || dt < best)
			best = dt;
	}
	printf("%-5s %9zu lines %7.1f MB  best of %d: %.3f s  "
	       "%11.0f lines/s  %7.1f MB/s\n",
	       name, t->lines, (double)t->len / 1e6, ROUNDS, best,
	       (double)t->lines / best, (double)t->len / 1e6 / best);
	if (ticks + (format == TICK_FORMAT_CSV) != t->lines) {
		fprintf(stderr, "bench_parse: %s: %zu ticks from %zu lines\n",
		        name, ticks, t->lines);
		exit(1);
	}
	return checksum;
}

int
main(int argc, char **argv)
{
	struct text jsonl = {0}, csv = {0};
	size_t lines = DEFAULT_LINES;
	uint64_t a, b;

	if (argc > 1)
		lines = strtoul(argv[1], NULL, 10);
	if (lines == 0) {
		fprintf(stderr, "usage: bench_parse [lines]\n");
		return 2;
	}
	generate(lines, &jsonl, &csv);
	printf("tick_parse_line, one core, %zu generated ticks "
	       "(70%% quotes, 30%% trades)\n",
	       lines);
	a = bench("jsonl", &jsonl, TICK_FORMAT_JSONL);
	b = bench("csv", &csv, TICK_FORMAT_CSV);
	free(jsonl.data);
	free(csv.data);
	if (a != b) {
		fprintf(stderr, "bench_parse: JSONL and CSV gave different "
		                "ticks\n");
		return 1;
	}
	return 0;
}

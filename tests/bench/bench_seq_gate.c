/*
 * bench_seq_gate: what the seq gate (publisher/seq_gate.c) adds to each
 * tick the pipeline applies: the check before engine_apply_tick and the
 * note after it, on the engine's own workload (random quotes and trades on
 * 1,000 symbols, precomputed).
 *
 * A program, not a test: it prints figures and never fails on a timing.
 * Three runs on one core, best of three rounds each: the engine alone, the
 * gate alone (every ask granted at once, as a store that keeps up), and
 * both, as the pipeline's drain does them.
 *
 * Usage: bench_seq_gate [rounds, default 3]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "seq_gate.h"
#include "tick.h"

#include "support/rng.h"
#include "support/ticks.h"
#include "support/timing.h"

#define NSYMBOLS 1000
#define NTICKS   (1u << 21)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static void
make_ticks(struct tick *t, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char name[TICK_SYMBOL_MAX + 1];
		unsigned sym = xorshift64_next(&rng_state) % NSYMBOLS;
		int64_t price = 10000 + xorshift64_next(&rng_state) % 500;

		snprintf(name, sizeof name, "SYM%04u.X", sym);
		if (xorshift64_next(&rng_state) % 3 == 0)
			t[i] = tick_trade(name, (int64_t)i, dec_raw(price, 2),
			                  dec_raw(100, 0));
		else
			t[i] = tick_quote(name, (int64_t)i, dec_raw(price, 2),
			                  dec_raw(price + 1, 2));
	}
}

static int
lookup(const char *symbol, uint64_t *seq, uint16_t *fields, void *ctx)
{
	struct symbol_state st;

	if (engine_get_state(ctx, symbol, &st))
		return -1;
	*seq = st.seq;
	*fields = st.present;
	return 0;
}

/* A store that keeps up: every ask granted before the next tick. */
static void
grant_all(struct seq_gate *g)
{
	const struct sink_reservation *r;
	size_t n, i;

	r = seq_gate_asks(g, &n);
	for (i = 0; i < n; i++)
		seq_gate_grant(g, seq_gate_gen(g), &r[i]);
	seq_gate_clear_asks(g);
}

/* One pass over the ticks; returns ns per tick. A tick the gate holds
 * back is granted and checked again, as the pipeline's drain would after
 * the store's grant. */
static double
run(const struct tick *ticks, size_t n, bool engine_on, bool gate_on)
{
	struct engine *e = quiet_engine_create();
	struct seq_gate *g = seq_gate_create(lookup, e);
	uint64_t seqs[NSYMBOLS] = {0};
	double t0, t1;
	size_t i;

	t0 = timing_now_s();
	for (i = 0; i < n; i++) {
		const struct tick *t = &ticks[i];
		struct seq_gate_sym *y = NULL;
		uint64_t seq;

		if (gate_on && !seq_gate_check(g, t, 0, &y)) {
			grant_all(g);
			if (!seq_gate_check(g, t, 0, &y))
				abort();
		}
		if (engine_on) {
			seq = engine_apply_tick(e, t);
		} else {
			unsigned k = (unsigned)atoi(t->symbol + 3);

			seq = ++seqs[k];
		}
		seq_gate_applied(y, t, seq);
		if (gate_on && (i & 1023) == 0)
			grant_all(g);
	}
	t1 = timing_now_s();
	seq_gate_destroy(g);
	engine_destroy(e);
	return (t1 - t0) * 1e9 / (double)n;
}

int
main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 3, r;
	struct tick *ticks = malloc(NTICKS * sizeof *ticks);
	double best_engine = 1e9, best_gate = 1e9, best_both = 1e9, ns;

	if (!ticks || rounds < 1)
		return 1;
	make_ticks(ticks, NTICKS);
	for (r = 0; r < rounds; r++) {
		ns = run(ticks, NTICKS, true, false);
		if (ns < best_engine)
			best_engine = ns;
		ns = run(ticks, NTICKS, false, true);
		if (ns < best_gate)
			best_gate = ns;
		ns = run(ticks, NTICKS, true, true);
		if (ns < best_both)
			best_both = ns;
	}
	printf("bench_seq_gate: %u ticks on %d symbols, best of %d rounds\n",
	       NTICKS, NSYMBOLS, rounds);
	printf("  engine_apply_tick alone      %6.1f ns/tick  %5.2f M "
	       "ticks/s\n",
	       best_engine, 1e3 / best_engine);
	printf("  seq gate alone (check+note)  %6.1f ns/tick  (its own "
	       "counter for seqs)\n",
	       best_gate);
	printf("  gate, then engine            %6.1f ns/tick  %5.2f M ticks/s "
	       "(+%.1f%%)\n",
	       best_both, 1e3 / best_both,
	       100.0 * (best_both - best_engine) / best_engine);
	free(ticks);
	return 0;
}

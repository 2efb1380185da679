/*
 * Unit tests for the seq gate (publisher/seq_gate.c): a tick is let
 * through only within its symbol's granted seqs and fields; what a symbol
 * asks for, and when (waiting, or half a block early, with longer blocks
 * for a hot symbol); grants of an older generation ignored after a reset;
 * symbols learnt from the engine's state; seeds of a new epoch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "seq_gate.h"

#include "support/ticks.h"

#define BIT(f) ((uint16_t)(1u << (f)))
#define QUOTE  (BIT(FIELD_BID) | BIT(FIELD_ASK))
#define TRADE                                                                  \
	(BIT(FIELD_LAST) | BIT(FIELD_LAST_SIZE) | BIT(FIELD_VOLUME) |          \
	 BIT(FIELD_OPEN) | BIT(FIELD_HIGH) | BIT(FIELD_LOW) |                  \
	 BIT(FIELD_TRADES))
#define SECOND 1000000ll

/* What "the engine" holds, for the gate's lookup. */
struct held {
	const char *symbol;
	uint64_t seq;
	uint16_t fields;
};

static struct held engine_has[4];

static int
lookup(const char *symbol, uint64_t *seq, uint16_t *fields, void *ctx)
{
	size_t i;

	(void)ctx;
	for (i = 0; i < 4 && engine_has[i].symbol; i++) {
		if (strcmp(engine_has[i].symbol, symbol))
			continue;
		*seq = engine_has[i].seq;
		*fields = engine_has[i].fields;
		return 0;
	}
	return -1;
}

static struct tick
quote(const char *symbol)
{
	return tick_quote(symbol, 1, dec_raw(100, 2), dec_raw(101, 2));
}

static struct tick
trade(const char *symbol)
{
	return tick_trade(symbol, 1, dec_raw(100, 2), dec_raw(5, 0));
}

/* Check t at now; on a pass, apply it as the engine would (next seq). */
static bool
pass(struct seq_gate *g, const struct tick *t, int64_t now, uint64_t *seq)
{
	struct seq_gate_sym *y;

	if (!seq_gate_check(g, t, now, &y))
		return false;
	seq_gate_applied(y, t, ++*seq);
	return true;
}

/* The only ask made since the last call, which it clears. */
static struct sink_reservation
one_ask(struct seq_gate *g)
{
	const struct sink_reservation *r;
	struct sink_reservation out;
	size_t n;

	r = seq_gate_asks(g, &n);
	assert_int_equal(n, 1);
	out = r[0];
	seq_gate_clear_asks(g);
	return out;
}

static void
no_ask(struct seq_gate *g)
{
	size_t n;

	seq_gate_asks(g, &n);
	assert_int_equal(n, 0);
}

static void
test_a_new_symbol_waits_for_its_first_block(void **state)
{
	struct seq_gate *g = seq_gate_create(lookup, NULL);
	struct tick q = quote("AAPL");
	struct sink_reservation r;
	uint64_t seq = 0;

	(void)state;
	memset(engine_has, 0, sizeof engine_has);
	assert_false(pass(g, &q, SECOND, &seq));
	r = one_ask(g);
	assert_string_equal(r.symbol, "AAPL");
	assert_int_equal(r.seq, SEQ_GATE_BLOCK);
	assert_int_equal(r.fields, QUOTE);
	assert_false(r.final);
	/* Still waiting: asked once, not again. */
	assert_false(pass(g, &q, SECOND, &seq));
	no_ask(g);

	assert_int_equal(seq_gate_grant(g, 0, &r), 0);
	assert_true(pass(g, &q, SECOND, &seq));
	assert_true(pass(g, &q, SECOND, &seq));
	assert_int_equal(seq, 2);
	no_ask(g);
	seq_gate_destroy(g);
}

static void
test_a_new_field_waits_until_it_is_granted(void **state)
{
	struct seq_gate *g = seq_gate_create(lookup, NULL);
	struct tick q = quote("AAPL"), t = trade("AAPL");
	struct sink_reservation r;
	uint64_t seq = 0;

	(void)state;
	memset(engine_has, 0, sizeof engine_has);
	assert_false(pass(g, &q, SECOND, &seq));
	r = one_ask(g);
	seq_gate_grant(g, 0, &r);
	assert_true(pass(g, &q, SECOND, &seq));

	/* The first trade brings last, its size and what they make. */
	assert_int_equal(seq_gate_tick_fields(&t), TRADE);
	assert_false(pass(g, &t, SECOND, &seq));
	r = one_ask(g);
	assert_int_equal(r.fields, QUOTE | TRADE);
	/* Asked from the seq it is at: the block is not doubled. */
	assert_int_equal(r.seq, 1 + SEQ_GATE_BLOCK);
	assert_true(pass(g, &q, SECOND, &seq)); /* quotes go on meanwhile */
	seq_gate_grant(g, 0, &r);
	assert_true(pass(g, &t, SECOND, &seq));
	assert_true(pass(g, &q, SECOND, &seq));
	no_ask(g);
	seq_gate_destroy(g);
}

/* Pass ticks until one of them makes an ask; returns the ask. */
static struct sink_reservation
pass_until_ask(struct seq_gate *g, const struct tick *t, int64_t now,
               uint64_t *seq)
{
	size_t n = 0;
	uint64_t i;

	for (i = 0; i < 4 * SEQ_GATE_BLOCK && !n; i++) {
		assert_true(pass(g, t, now, seq));
		seq_gate_asks(g, &n);
	}
	return one_ask(g);
}

static void
test_half_a_block_asks_early_and_a_hot_symbol_longer(void **state)
{
	struct seq_gate *g = seq_gate_create(lookup, NULL);
	struct tick q = quote("HOT");
	struct sink_reservation r, r2;
	uint64_t seq = 0;
	int64_t now = SECOND;

	(void)state;
	memset(engine_has, 0, sizeof engine_has);
	assert_false(pass(g, &q, now, &seq));
	r = one_ask(g);
	seq_gate_grant(g, 0, &r);
	/* Half the block used: the next is asked for, and the tick that
	 * asked goes through (numbered seq). */
	r = pass_until_ask(g, &q, now, &seq);
	assert_int_equal(seq, SEQ_GATE_BLOCK / 2 + 1);
	assert_int_equal(r.seq, seq - 1 + SEQ_GATE_BLOCK);
	seq_gate_grant(g, 0, &r);
	/* Half of that used within two seconds: a hot symbol gets a block
	 * twice as long. */
	r2 = pass_until_ask(g, &q, now + SECOND, &seq);
	assert_int_equal(r2.seq, seq - 1 + 2 * SEQ_GATE_BLOCK);
	/* Not granted: the rest of the granted block goes, then ticks
	 * wait, with no second ask (the one under way covers them). */
	while (pass(g, &q, now + SECOND, &seq))
		;
	assert_int_equal(seq, r.seq);
	no_ask(g);
	seq_gate_grant(g, 0, &r2);
	assert_true(pass(g, &q, now + SECOND, &seq));
	seq_gate_destroy(g);
}

static void
test_a_reset_ignores_older_grants_and_relearns(void **state)
{
	struct seq_gate *g = seq_gate_create(lookup, NULL);
	struct tick q = quote("AAPL");
	struct sink_reservation r;
	uint64_t seq;

	(void)state;
	memset(engine_has, 0, sizeof engine_has);
	engine_has[0].symbol = "AAPL";
	engine_has[0].seq = 5000;
	engine_has[0].fields = QUOTE;
	seq = 5000;
	/* Learnt from the engine: at 5000, nothing granted. */
	assert_false(pass(g, &q, SECOND, &seq));
	r = one_ask(g);
	assert_int_equal(r.seq, 5000 + SEQ_GATE_BLOCK);

	assert_int_equal(seq_gate_reset(g), 1);
	assert_int_equal(seq_gate_gen(g), 1);
	assert_int_equal(seq_gate_count(g), 0);
	/* The grant of gen 0 came too late: the gate has forgotten it. */
	assert_int_equal(seq_gate_grant(g, 0, &r), 0);
	assert_int_equal(seq_gate_count(g), 0);
	assert_false(pass(g, &q, SECOND, &seq));
	r = one_ask(g);
	assert_int_equal(seq_gate_grant(g, 1, &r), 0);
	assert_true(pass(g, &q, SECOND, &seq));
	assert_int_equal(seq, 5001);
	seq_gate_destroy(g);
}

static void
test_seeds_and_asks_due(void **state)
{
	struct seq_gate *g = seq_gate_create(lookup, NULL);
	struct tick q = quote("AAPL");
	struct sink_reservation r = seq_gate_first_ask("AAPL", 10, QUOTE);
	struct sink_reservation bumped;
	uint64_t seq = 10;

	(void)state;
	memset(engine_has, 0, sizeof engine_has);
	assert_int_equal(r.seq, 10 + SEQ_GATE_BLOCK);
	/* A new epoch's seed: seqs up to the block go, no ask meanwhile
	 * until half of it is used. */
	assert_int_equal(seq_gate_seed(g, &r, 10, QUOTE), 0);
	assert_true(pass(g, &q, SECOND, &seq));
	no_ask(g);

	/* A symbol restored past its reservation (seq 1001, granted 1000):
	 * asked for at once, before a tick comes. */
	engine_has[0].symbol = "MSFT";
	engine_has[0].seq = 1001;
	engine_has[0].fields = QUOTE;
	memset(&bumped, 0, sizeof bumped);
	snprintf(bumped.symbol, sizeof bumped.symbol, "MSFT");
	bumped.seq = 1000;
	bumped.fields = QUOTE;
	assert_int_equal(seq_gate_grant(g, 0, &bumped), 0);
	seq_gate_ask_due(g, SECOND);
	r = one_ask(g);
	assert_string_equal(r.symbol, "MSFT");
	assert_int_equal(r.seq, 1001 + SEQ_GATE_BLOCK);
	seq_gate_destroy(g);
}

static void
test_a_symbol_the_engine_refuses_passes_untracked(void **state)
{
	struct seq_gate *g = seq_gate_create(lookup, NULL);
	struct tick bad = quote("AAPL");
	struct seq_gate_sym *y = (struct seq_gate_sym *)&y;

	(void)state;
	memset(engine_has, 0, sizeof engine_has);
	snprintf(bad.symbol, sizeof bad.symbol, "bad symbol!");
	assert_true(seq_gate_check(g, &bad, SECOND, &y));
	assert_null(y);
	seq_gate_applied(y, &bad, 1);
	assert_int_equal(seq_gate_count(g), 0);
	no_ask(g);
	seq_gate_destroy(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_a_new_symbol_waits_for_its_first_block),
	        cmocka_unit_test(test_a_new_field_waits_until_it_is_granted),
	        cmocka_unit_test(
	                test_half_a_block_asks_early_and_a_hot_symbol_longer),
	        cmocka_unit_test(
	                test_a_reset_ignores_older_grants_and_relearns),
	        cmocka_unit_test(test_seeds_and_asks_due),
	        cmocka_unit_test(
	                test_a_symbol_the_engine_refuses_passes_untracked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

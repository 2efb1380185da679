/*
 * Unit tests for the engine's fan-out (publisher/engine_fanout.c, with
 * engine_group.c and engine_subscribe.c): subscription groups, rounds
 * shared as one frame, clients that fall behind, catch up, change their
 * subscriptions mid-frame or resume, the wildcard's exclusions and filters.
 * Every test applies what clients receive as a client must (a delta only on
 * the seq it holds) and ends comparing each client's state with the
 * engine's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "tick.h"

#include "support/asserts.h"
#include "support/engine_model.h"
#include "support/ticks.h"

#define NSYM_MAX 64

/* A client as a test sees it: what it holds of each symbol by name. */
struct holder {
	struct engine_client *c;
	int ready;
	struct model m[NSYM_MAX];
	bool subscribed[NSYM_MAX];
};

static char names[NSYM_MAX][TICK_SYMBOL_MAX + 1];

static int
name_index(const char *symbol, int nsym)
{
	int j;

	for (j = 0; j < nsym; j++)
		if (!strcmp(names[j], symbol))
			return j;
	fail_msg("update for unknown symbol %s", symbol);
	return -1;
}

/* Take one frame of h (or all, with all set) and apply it. Returns the
 * updates taken. */
static size_t
take(struct holder *h, int nsym, int64_t now, bool all)
{
	static struct update u[MAX_UPDATES];
	size_t n, x, total = 0;

	do {
		n = write_updates(h->c, now, u, MAX_UPDATES);
		for (x = 0; x < n; x++)
			model_apply(&h->m[name_index(u[x].symbol, nsym)],
			            &u[x]);
		total += n;
	} while (all && n);
	return total;
}

static void
assert_holds_engine_state(struct engine *e, const struct holder *h, int nsym)
{
	struct symbol_state st;
	int j;

	for (j = 0; j < nsym; j++) {
		if (!h->subscribed[j] || engine_get_state(e, names[j], &st))
			continue;
		assert_model_equals_state(&h->m[j], &st);
	}
}

static void
make_names(int nsym)
{
	int j;

	for (j = 0; j < nsym; j++)
		snprintf(names[j], sizeof names[j], "S%02d", j);
}

/* ---------------------------------------------------------------- tests */

static void
test_clients_with_one_watchlist_share_a_group_and_its_frames(void **state)
{
	enum { NC = 100 };
	static const char list[3][TICK_SYMBOL_MAX + 1] = {"AAPL", "MSFT",
	                                                  "TSLA"};
	static char first[FRAME_CAP], buf[FRAME_CAP];
	struct engine *e = engine_new(NULL);
	struct engine_client *c[NC];
	struct engine_stats st;
	int ready[NC] = {0}, i;
	uint64_t id;
	size_t n0, n;

	for (i = 0; i < NC; i++) {
		c[i] = engine_client_create(e, &ready[i]);
		assert_int_equal(
		        engine_client_subscribe_many(c[i], list, 3, NULL, NULL),
		        0);
	}
	engine_get_stats(e, &st);
	assert_int_equal(st.groups, 1);
	assert_int_equal(st.subscriptions, 3 * NC);

	apply_quote(e, "AAPL", 1, "189.30", "189.35");
	apply_quote(e, "MSFT", 2, "402.10", "402.20");
	apply_trade(e, "TSLA", 3, "171.5", "10");
	engine_flush(e);
	for (i = 0; i < NC; i++)
		assert_int_equal(ready[i], 1);
	/* Every client sends the same bytes, under the same id. */
	n0 = engine_client_write(c[0], 0, first, sizeof first, NULL);
	assert_true(n0 > 0);
	id = engine_client_frame_id(c[0]);
	assert_true(id != 0);
	for (i = 1; i < NC; i++) {
		n = engine_client_write(c[i], 0, buf, sizeof buf, NULL);
		assert_int_equal(n, n0);
		assert_memory_equal(buf, first, n0);
		assert_int_equal(engine_client_frame_id(c[i]), id);
		assert_false(engine_client_has_pending(c[i]));
	}
	engine_get_stats(e, &st);
	assert_int_equal(st.updates_sent, 3 * NC);
	assert_int_equal(st.encodings, 3);
	assert_int_equal(st.encodings + st.encodings_shared, st.updates_sent);
	assert_int_equal(st.frames_shared, NC - 1);

	/* The next round's frame has another id. */
	apply_quote(e, "AAPL", 4, "189.31", "189.35");
	engine_flush(e);
	for (i = 0; i < NC; i++) {
		assert_true(
		        engine_client_write(c[i], 0, buf, sizeof buf, NULL));
		assert_true(engine_client_frame_id(c[i]) != 0);
		assert_true(engine_client_frame_id(c[i]) != id);
	}

	/* A client that adds a symbol moves to a group of its own; the
	 * others stay together. */
	assert_int_equal(engine_client_subscribe(c[0], "NVDA", false, 0), 0);
	engine_get_stats(e, &st);
	assert_int_equal(st.groups, 2);
	assert_int_equal(st.subscriptions, 3 * (NC - 1) + 4);
	engine_destroy(e);
}

static void
test_flush_wakes_only_clients_that_were_idle(void **state)
{
	enum { NC = 10 };
	struct engine *e = engine_new(NULL);
	struct holder h[NC];
	int i, k;

	make_names(1);
	memset(h, 0, sizeof h);
	for (i = 0; i < NC; i++) {
		h[i].c = engine_client_create(e, &h[i].ready);
		h[i].subscribed[0] = true;
		assert_int_equal(
		        engine_client_subscribe_all(h[i].c, NULL, NULL), 0);
	}
	/* Many rounds while nobody writes: one wake each, at the first. */
	for (k = 1; k <= 50; k++) {
		apply_quote(e, names[0], k, k % 2 ? "1.5" : "1.6", "1.7");
		engine_flush(e);
	}
	for (i = 0; i < NC; i++) {
		assert_int_equal(h[i].ready, 1);
		/* One update brings each from nothing to seq 50. */
		assert_int_equal(take(&h[i], 1, 0, true), 1);
		assert_int_equal(h[i].m[0].seq, 50);
	}
	engine_destroy(e);
}

/*
 * The heart of it: many clients in a few groups and some alone, writing
 * at random moments (some not for hundreds of rounds, so their round leaves
 * the ring), changing their subscriptions, resuming with seqs they hold,
 * with frames small enough to be cut into chunks. Each update must apply to
 * what its client holds, and at the end each holds the engine's state.
 */
static void
test_random_clients_always_apply_and_end_equal(void **state)
{
	enum { NC = 40, NSYM = 24, TICKS = 20000 };
	struct engine_config cfg = {.client_ready = on_ready,
	                            .frame_cap = ENGINE_MIN_FRAME};
	struct engine *e = engine_create(&cfg);
	static struct holder h[NC];
	struct engine_stats st;
	int i, j, k;

	assert_non_null(e);
	rng_seed(11);
	make_names(NSYM);
	memset(h, 0, sizeof h);
	for (i = 0; i < NC; i++) {
		h[i].c = engine_client_create(e, &h[i].ready);
		/* A third on "*", a third on the even symbols, a third on a
		 * set of their own. */
		if (i % 3 == 0) {
			assert_int_equal(
			        engine_client_subscribe_all(h[i].c, NULL, NULL),
			        0);
			for (j = 0; j < NSYM; j++)
				h[i].subscribed[j] = true;
			continue;
		}
		for (j = 0; j < NSYM; j++) {
			if (i % 3 == 1 ? j % 2 == 0 : rng_below(3) == 0) {
				assert_int_equal(
				        engine_client_subscribe(
				                h[i].c, names[j], false, 0),
				        0);
				h[i].subscribed[j] = true;
			}
		}
	}
	for (k = 1; k <= TICKS; k++) {
		int s = (int)rng_below(NSYM);
		struct tick t = tick_random(names[s], k, k > TICKS / 2);

		assert_true(engine_apply_tick(e, &t) > 0);
		engine_flush(e);
		for (i = 0; i < NC; i++) {
			/* Client i writes once in 1 .. 400 flushes. */
			uint32_t every = 1 + (uint32_t)(i * 10);

			if (rng_below(every) != 0)
				continue;
			take(&h[i], NSYM, k, rng_below(2) == 0);
		}
		if (rng_below(200) == 0) {
			/* Someone resumes one symbol with what it holds, as
			 * a client that saw a gap does. */
			i = (int)rng_below(NC);
			j = (int)rng_below(NSYM);
			if (h[i].subscribed[j] && h[i].m[j].seq)
				assert_int_equal(engine_client_subscribe(
				                         h[i].c, names[j], true,
				                         h[i].m[j].seq),
				                 0);
		}
		if (rng_below(300) == 0) {
			/* Someone adds or drops a symbol, maybe mid-frame. */
			i = (int)rng_below(NC);
			j = (int)rng_below(NSYM);
			if (h[i].subscribed[j] && i % 3 != 0) {
				assert_int_equal(engine_client_unsubscribe(
				                         h[i].c, names[j]),
				                 0);
				h[i].subscribed[j] = false;
				memset(&h[i].m[j], 0, sizeof h[i].m[j]);
			} else if (!h[i].subscribed[j]) {
				assert_int_equal(
				        engine_client_subscribe(
				                h[i].c, names[j], false, 0),
				        0);
				h[i].subscribed[j] = true;
			}
		}
	}
	for (i = 0; i < NC; i++) {
		take(&h[i], NSYM, TICKS + 1, true);
		assert_false(engine_client_has_pending(h[i].c));
		assert_holds_engine_state(e, &h[i], NSYM);
	}
	engine_get_stats(e, &st);
	/* Some fell so far behind they caught up on their own; frames were
	 * shared; every update counted once as encoded or shared. */
	assert_true(st.catch_ups > 0);
	assert_true(st.frames_shared > 0);
	assert_int_equal(st.encodings + st.encodings_shared, st.updates_sent);
	engine_destroy(e);
}

static void
test_client_far_behind_catches_up_with_deltas(void **state)
{
	enum { ROUNDS = 300 };
	struct engine *e = engine_new(NULL);
	struct holder fast, slow;
	struct engine_stats st;
	static struct update u[8];
	size_t n, x;
	int k;

	make_names(2);
	memset(&fast, 0, sizeof fast);
	memset(&slow, 0, sizeof slow);
	fast.c = engine_client_create(e, &fast.ready);
	slow.c = engine_client_create(e, &slow.ready);
	assert_int_equal(engine_client_subscribe_all(fast.c, NULL, NULL), 0);
	assert_int_equal(engine_client_subscribe_all(slow.c, NULL, NULL), 0);
	fast.subscribed[0] = fast.subscribed[1] = true;
	slow.subscribed[0] = slow.subscribed[1] = true;
	apply_quote(e, names[0], 1, "1", "2");
	apply_quote(e, names[1], 1, "3", "4");
	engine_flush(e);
	take(&fast, 2, 0, true);
	take(&slow, 2, 0, true);
	for (k = 2; k < ROUNDS; k++) {
		apply_quote(e, names[k % 2], k, k % 3 ? "1.5" : "1.25", "2");
		engine_flush(e);
		take(&fast, 2, 0, true);
	}
	engine_get_stats(e, &st);
	assert_true(st.catch_ups >= 1);
	/* Deltas from what it held, not snapshots, in a frame of its own. */
	n = drain(slow.c, 0, u, 8);
	assert_int_equal(n, 2);
	assert_int_equal(engine_client_frame_id(slow.c), 0);
	for (x = 0; x < n; x++) {
		assert_true(u[x].is_delta);
		model_apply(&slow.m[name_index(u[x].symbol, 2)], &u[x]);
	}
	assert_holds_engine_state(e, &slow, 2);
	assert_holds_engine_state(e, &fast, 2);
	/* And it is back in step: the next round is shared again. */
	apply_quote(e, names[0], ROUNDS, "9", "10");
	engine_flush(e);
	take(&fast, 2, 0, true);
	take(&slow, 2, 0, true);
	engine_get_stats(e, &st);
	assert_true(st.frames_shared >= 1);
	assert_holds_engine_state(e, &slow, 2);
	engine_destroy(e);
}

static void
test_unsubscribing_one_symbol_of_the_wildcard_excludes_it(void **state)
{
	struct engine *e = engine_new(NULL);
	struct engine_client *c;
	static struct update u[8];
	int ready = 0;

	c = engine_client_create(e, &ready);
	assert_int_equal(engine_client_subscribe_all(c, NULL, NULL), 0);
	apply_quote(e, "AAPL", 1, "1", "2");
	apply_quote(e, "MSFT", 1, "3", "4");
	engine_flush(e);
	assert_int_equal(drain(c, 0, u, 8), 2);

	assert_int_equal(engine_client_unsubscribe(c, "AAPL"), 0);
	assert_false(engine_client_is_subscribed(c, "AAPL"));
	assert_true(engine_client_is_subscribed(c, "*"));
	apply_quote(e, "AAPL", 2, "1.5", "2");
	apply_quote(e, "MSFT", 2, "3.5", "4");
	engine_flush(e);
	assert_int_equal(drain(c, 0, u, 8), 1);
	assert_string_equal(u[0].symbol, "MSFT");

	/* Named again: a snapshot, and its updates from then on. */
	assert_int_equal(engine_client_subscribe(c, "AAPL", false, 0), 0);
	engine_flush(e);
	assert_int_equal(drain(c, 0, u, 8), 1);
	assert_string_equal(u[0].symbol, "AAPL");
	assert_false(u[0].is_delta);
	assert_int_equal(u[0].seq, 2);
	engine_destroy(e);
}

static bool
allow_prefix_a(const char *symbol, void *ctx)
{
	return symbol[0] == 'A';
}

static void
test_filter_key_decides_who_shares_a_group(void **state)
{
	struct engine *e = engine_new(NULL);
	struct engine_client *a, *b, *other, *own1, *own2;
	struct engine_stats st;
	static struct update u[8];
	int ready = 0, ctx_a = 0, ctx_b = 0;

	a = engine_client_create(e, &ready);
	b = engine_client_create(e, &ready);
	other = engine_client_create(e, &ready);
	own1 = engine_client_create(e, &ready);
	own2 = engine_client_create(e, &ready);
	engine_client_set_filter(a, allow_prefix_a, &ctx_a, "A*\n");
	engine_client_set_filter(b, allow_prefix_a, &ctx_b, "A*\n");
	engine_client_set_filter(other, allow_prefix_a, &ctx_a, "B*\n");
	engine_client_set_filter(own1, allow_prefix_a, &ctx_a, NULL);
	engine_client_set_filter(own2, allow_prefix_a, &ctx_a, NULL);
	assert_int_equal(engine_client_subscribe_all(a, NULL, NULL), 0);
	assert_int_equal(engine_client_subscribe_all(b, NULL, NULL), 0);
	assert_int_equal(engine_client_subscribe_all(other, NULL, NULL), 0);
	assert_int_equal(engine_client_subscribe_all(own1, NULL, NULL), 0);
	assert_int_equal(engine_client_subscribe_all(own2, NULL, NULL), 0);
	engine_get_stats(e, &st);
	/* a and b share; the other key, and each keyless filter, do not. */
	assert_int_equal(st.groups, 4);

	/* The group outlives the client whose filter it borrowed. */
	engine_client_destroy(a);
	apply_quote(e, "AAPL", 1, "1", "2");
	apply_quote(e, "ZZZ", 1, "1", "2");
	engine_flush(e);
	assert_int_equal(drain(b, 0, u, 8), 1);
	assert_string_equal(u[0].symbol, "AAPL");
	engine_destroy(e);
}

static void
test_restore_sends_a_snapshot_whatever_the_client_holds(void **state)
{
	struct engine *e = engine_new(NULL);
	struct holder idle, behind, catching;
	struct symbol_state st;
	static struct update u[8];
	int k;

	make_names(1);
	memset(&idle, 0, sizeof idle);
	memset(&behind, 0, sizeof behind);
	memset(&catching, 0, sizeof catching);
	idle.c = engine_client_create(e, &idle.ready);
	behind.c = engine_client_create(e, &behind.ready);
	catching.c = engine_client_create(e, &catching.ready);
	assert_int_equal(engine_client_subscribe(idle.c, names[0], false, 0),
	                 0);
	assert_int_equal(engine_client_subscribe(behind.c, names[0], false, 0),
	                 0);
	for (k = 1; k <= 5; k++) {
		apply_quote(e, names[0], k, "1", k % 2 ? "2" : "3");
		engine_flush(e);
	}
	take(&idle, 1, 0, true);
	/* The third subscribes with a resume seq: it catches up on its own. */
	assert_int_equal(engine_client_subscribe(catching.c, names[0], true, 2),
	                 0);
	apply_quote(e, names[0], 6, "1.1", "3");
	engine_flush(e);
	take(&idle, 1, 0, true);

	/* The history is replaced at the same seq: nobody may take a delta
	 * across it. */
	assert_int_equal(engine_get_state(e, names[0], &st), 0);
	st.value[FIELD_BID] = dec("7.77");
	assert_int_equal(engine_restore_symbol(e, &st), 0);
	engine_flush(e);
	assert_int_equal(drain(idle.c, 0, u, 8), 1);
	assert_false(u[0].is_delta);
	assert_int_equal(drain(behind.c, 0, u, 8), 1);
	assert_false(u[0].is_delta);
	assert_int_equal(drain(catching.c, 0, u, 8), 1);
	assert_false(u[0].is_delta);
	assert_decimal_exact(u[0].value[FIELD_BID], dec("7.77"));
	engine_destroy(e);
}

/*
 * An edge's resync within one epoch (engine_advance_symbol): the state
 * taken goes on from the one held, so each client keeps its place: the
 * one holding its seq gets nothing, the others a delta of what changed
 * after the seq they hold. A state that does not go on (another value at
 * a seq already served) still sends everyone a snapshot.
 */
static void
test_advance_sends_each_client_only_what_changed_after_its_seq(void **state)
{
	struct engine *e = engine_new(NULL), *src = engine_new(NULL);
	struct holder idle, behind, catching;
	struct symbol_state st;
	static struct update u[8];
	int k;

	make_names(1);
	memset(&idle, 0, sizeof idle);
	memset(&behind, 0, sizeof behind);
	memset(&catching, 0, sizeof catching);
	idle.c = engine_client_create(e, &idle.ready);
	behind.c = engine_client_create(e, &behind.ready);
	catching.c = engine_client_create(e, &catching.ready);
	assert_int_equal(engine_client_subscribe(idle.c, names[0], false, 0),
	                 0);
	assert_int_equal(engine_client_subscribe(behind.c, names[0], false, 0),
	                 0);
	/* The same ticks on both: the edge's engine and its ingest's. */
	for (k = 1; k <= 5; k++) {
		apply_quote(e, names[0], k, "1", k % 2 ? "2" : "3");
		apply_quote(src, names[0], k, "1", k % 2 ? "2" : "3");
		engine_flush(e);
		if (k == 4) {
			/* What the third client resumes with. */
			assert_int_equal(engine_get_state(src, names[0], &st),
			                 0);
			model_from_state(&catching.m[0], &st);
		}
	}
	apply_trade(e, names[0], 6, "1.5", "10");
	apply_trade(src, names[0], 6, "1.5", "10");
	engine_flush(e);
	take(&idle, 1, 0, true);
	take(&behind, 1, 0, true);
	apply_quote(e, names[0], 7, "1.1", "2.5");
	apply_quote(src, names[0], 7, "1.1", "2.5");
	engine_flush(e);
	take(&idle, 1, 0, true);
	assert_int_equal(engine_client_subscribe(catching.c, names[0], true, 4),
	                 0);
	take(&catching, 1, 0, true);

	/* The same state again: nothing for anyone holding it. */
	assert_int_equal(engine_get_state(src, names[0], &st), 0);
	assert_int_equal(engine_advance_symbol(e, &st), 0);
	engine_flush(e);
	assert_int_equal(drain(idle.c, 0, u, 8), 0);
	assert_int_equal(drain(catching.c, 0, u, 8), 0);

	/* Further on: the ingest's bid changed, nothing else. */
	apply_quote(src, names[0], 8, "1.2", "2.5");
	apply_quote(src, names[0], 9, "1.3", "2.5");
	assert_int_equal(engine_get_state(src, names[0], &st), 0);
	assert_int_equal(engine_advance_symbol(e, &st), 0);
	engine_flush(e);
	assert_int_equal(drain(idle.c, 0, u, 8), 1);
	assert_true(u[0].is_delta);
	assert_int_equal(u[0].from, 7);
	assert_int_equal(u[0].seq, 9);
	assert_int_equal(u[0].present, 1u << FIELD_BID);
	model_apply(&idle.m[0], &u[0]);
	/* Behind since seq 6: the bid and the ask changed after it. */
	assert_int_equal(drain(behind.c, 0, u, 8), 1);
	assert_true(u[0].is_delta);
	assert_int_equal(u[0].from, 6);
	assert_int_equal(u[0].present, (1u << FIELD_BID) | (1u << FIELD_ASK));
	model_apply(&behind.m[0], &u[0]);
	assert_int_equal(drain(catching.c, 0, u, 8), 1);
	assert_true(u[0].is_delta);
	model_apply(&catching.m[0], &u[0]);
	assert_holds_engine_state(e, &idle, 1);
	assert_holds_engine_state(e, &catching, 1);
	idle.subscribed[0] = behind.subscribed[0] = catching.subscribed[0] =
	        true;
	assert_holds_engine_state(e, &idle, 1);
	assert_holds_engine_state(e, &behind, 1);
	assert_holds_engine_state(e, &catching, 1);
	assert_model_equals_state(&idle.m[0], &st);

	/* Another value at a seq already served: snapshots for all. */
	st.value[FIELD_LAST] = dec("9.99");
	st.seq++;
	assert_int_equal(engine_advance_symbol(e, &st), 1);
	engine_flush(e);
	assert_int_equal(drain(idle.c, 0, u, 8), 1);
	assert_false(u[0].is_delta);
	assert_decimal_exact(u[0].value[FIELD_LAST], dec("9.99"));
	/* A state behind the one held, or with a field taken away: too. */
	st.seq--;
	assert_int_equal(engine_advance_symbol(e, &st), 1);
	assert_int_equal(engine_get_state(e, names[0], &st), 0);
	st.seq += 2;
	st.present &= ~(1u << FIELD_ASK);
	assert_int_equal(engine_advance_symbol(e, &st), 1);
	engine_destroy(e);
	engine_destroy(src);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(
	                test_clients_with_one_watchlist_share_a_group_and_its_frames),
	        cmocka_unit_test(test_flush_wakes_only_clients_that_were_idle),
	        cmocka_unit_test(
	                test_random_clients_always_apply_and_end_equal),
	        cmocka_unit_test(test_client_far_behind_catches_up_with_deltas),
	        cmocka_unit_test(
	                test_unsubscribing_one_symbol_of_the_wildcard_excludes_it),
	        cmocka_unit_test(test_filter_key_decides_who_shares_a_group),
	        cmocka_unit_test(
	                test_restore_sends_a_snapshot_whatever_the_client_holds),
	        cmocka_unit_test(
	                test_advance_sends_each_client_only_what_changed_after_its_seq),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

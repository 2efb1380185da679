/*
 * Unit tests for publisher/engine.c: symbol state and derived fields, exact
 * decimals, snapshots and deltas (checked by parsing what a client receives
 * and applying it as a client would), conflation, max_hz, wildcards, resume,
 * batching and frame limits, restore, refused ticks, and clearing every
 * symbol (a new epoch).
 *
 * Frames are parsed with jansson for their structure, but field values are
 * read from the raw text with decimal_parse: jansson would turn 189.30 into
 * a double, and the point is that the text is exact.
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
#include <jansson.h>

#include "decimal.h"
#include "engine.h"
#include "engine_private.h" /* the symbol table's size */
#include "tick.h"

#include "support/asserts.h"
#include "support/engine_model.h"
#include "support/ticks.h"

/* ---------------------------------------------------------------- tests */

static void
test_final_state_equals_last_value_of_every_field(void **state)
{
	static const char *const names[] = {"AAPL", "MSFT", "BRK.B", "EUR/USD",
	                                    "ES:H25"};
	struct expect {
		uint64_t seq;
		int64_t ts;
		uint16_t present;
		struct decimal value[STATE_FIELD_COUNT];
	} want[5];
	struct engine *e = engine_new(NULL);
	struct engine_stats st;
	int i, f;

	rng_seed(1);
	memset(want, 0, sizeof want);
	for (i = 0; i < 20000; i++) {
		int k = (int)rng_below(5);
		struct tick t = tick_random(names[k], 1000 + i, false);
		struct expect *w = &want[k];

		assert_int_equal(engine_apply_tick(e, &t), w->seq + 1);
		w->seq++;
		w->ts = t.ts;
		for (f = 0; f < TICK_FIELD_COUNT; f++) {
			if (!tick_has(&t, (enum tick_field)f))
				continue;
			w->value[f] = t.value[f];
			w->present |= (uint16_t)(1u << f);
		}
		if (tick_has(&t, FIELD_LAST)) {
			struct decimal last = t.value[FIELD_LAST];
			struct decimal one = {1, 0}, v;

			if (!(w->present & (1u << FIELD_OPEN)))
				w->value[FIELD_OPEN] = last;
			if (!(w->present & (1u << FIELD_HIGH)) ||
			    decimal_cmp(last, w->value[FIELD_HIGH]) > 0)
				w->value[FIELD_HIGH] = last;
			if (!(w->present & (1u << FIELD_LOW)) ||
			    decimal_cmp(last, w->value[FIELD_LOW]) < 0)
				w->value[FIELD_LOW] = last;
			if (!(w->present & (1u << FIELD_TRADES)))
				w->value[FIELD_TRADES] = one;
			else {
				assert_int_equal(
				        decimal_add(w->value[FIELD_TRADES], one,
				                    &v),
				        0);
				w->value[FIELD_TRADES] = v;
			}
			if (!(w->present & (1u << FIELD_VOLUME)))
				w->value[FIELD_VOLUME] =
				        t.value[FIELD_LAST_SIZE];
			else {
				assert_int_equal(
				        decimal_add(w->value[FIELD_VOLUME],
				                    t.value[FIELD_LAST_SIZE],
				                    &v),
				        0);
				w->value[FIELD_VOLUME] = v;
			}
			w->present |= (1u << FIELD_OPEN) | (1u << FIELD_HIGH) |
			              (1u << FIELD_LOW) | (1u << FIELD_TRADES) |
			              (1u << FIELD_VOLUME);
		}
	}
	for (i = 0; i < 5; i++) {
		struct symbol_state s;

		assert_int_equal(engine_get_state(e, names[i], &s), 0);
		assert_string_equal(s.symbol, names[i]);
		assert_int_equal(s.seq, want[i].seq);
		assert_int_equal(s.ts, want[i].ts);
		assert_int_equal(s.present, want[i].present);
		for (f = 0; f < STATE_FIELD_COUNT; f++)
			if ((want[i].present >> f) & 1u)
				assert_int_equal(decimal_cmp(s.value[f],
				                             want[i].value[f]),
				                 0);
	}
	engine_get_stats(e, &st);
	assert_int_equal(st.ticks_applied, 20000);
	assert_int_equal(st.ticks_rejected, 0);
	assert_int_equal(st.symbols, 5);
	engine_destroy(e);
}

static uint16_t
changed_after(const struct symbol_state *s, uint64_t k)
{
	uint16_t mask = 0;
	int f;

	for (f = 0; f < STATE_FIELD_COUNT; f++)
		if (((s->present >> f) & 1u) && s->changed_seq[f] > k)
			mask |= (uint16_t)(1u << f);
	return mask;
}

/*
 * The heart of conflation: the delta from any earlier seq, applied to the
 * state at that seq, gives the current state exactly. Each earlier seq is
 * asked for by re-subscribing with it as the resume seq.
 */
static void
test_delta_from_any_earlier_seq_rebuilds_current_state(void **state)
{
	enum { N = 400 };
	static struct symbol_state history[N + 1];
	struct engine *e = engine_new(NULL);
	struct engine_client *c;
	struct update u[4];
	struct model m;
	int ready = 0;
	uint64_t k;

	rng_seed(2);
	memset(&history[0], 0, sizeof history[0]);
	for (k = 1; k <= N; k++) {
		/* From halfway on the feed sends volume itself. */
		struct tick t =
		        tick_random("AAPL", (int64_t)(5000 + k), k > N / 2);

		assert_int_equal(engine_apply_tick(e, &t), k);
		assert_int_equal(engine_get_state(e, "AAPL", &history[k]), 0);
	}
	engine_flush(e);
	c = engine_client_create(e, &ready);
	assert_non_null(c);

	for (k = 1; k < N; k++) {
		assert_int_equal(engine_client_subscribe(c, "AAPL", true, k),
		                 0);
		engine_flush(e);
		assert_int_equal(drain(c, 0, u, 4), 1);
		assert_true(u[0].is_delta);
		assert_string_equal(u[0].symbol, "AAPL");
		assert_int_equal(u[0].from, k);
		assert_int_equal(u[0].seq, N);
		/* Exactly the fields that changed after k, no more. */
		assert_int_equal(u[0].present, changed_after(&history[N], k));
		model_from_state(&m, &history[k]);
		model_apply(&m, &u[0]);
		assert_model_equals_state(&m, &history[N]);
	}

	/* And a snapshot rebuilds it from nothing. */
	assert_int_equal(engine_client_subscribe(c, "AAPL", false, 0), 0);
	assert_int_equal(drain(c, 0, u, 4), 1);
	assert_false(u[0].is_delta);
	memset(&m, 0, sizeof m);
	model_apply(&m, &u[0]);
	assert_model_equals_state(&m, &history[N]);
	engine_destroy(e);
}

/* Trading sessions of 50 µs, so that random ticks cross many. */
static void
every_50_us(const void *ctx, const char *symbol, int64_t ts,
            struct session_span *out)
{
	int64_t k = ts / 50 - (ts % 50 < 0);

	out->start = k * 50;
	out->end = out->start + 50;
}

static struct engine *
engine_with_sessions(void)
{
	struct engine_config cfg = {.client_ready = on_ready,
	                            .frame_cap = FRAME_CAP,
	                            .sessions = {every_50_us, NULL}};
	struct engine *e = engine_create(&cfg);

	assert_non_null(e);
	return e;
}

static uint16_t
taken_after(const struct symbol_state *s, uint64_t k)
{
	uint16_t mask = 0;
	int f;

	for (f = 0; f < STATE_FIELD_COUNT; f++)
		if (!((s->present >> f) & 1u) && s->changed_seq[f] > k)
			mask |= (uint16_t)(1u << f);
	return mask;
}

/*
 * Across trading sessions the delta from any earlier seq still rebuilds
 * the current state: a field a session took away comes as null (and only
 * in a delta), prev_close as a field like any other.
 */
static void
test_delta_across_sessions_takes_fields_away(void **state)
{
	enum { N = 400 };
	static struct symbol_state history[N + 1];
	struct engine *e = engine_with_sessions();
	struct engine_client *c;
	struct update u[4];
	struct model m;
	int ready = 0, nulls = 0;
	uint64_t k;

	rng_seed(5);
	for (k = 1; k <= N; k++) {
		struct tick t =
		        tick_random("AAPL", (int64_t)(10 * k), k > N - 60);

		assert_int_equal(engine_apply_tick(e, &t), k);
		assert_int_equal(engine_get_state(e, "AAPL", &history[k]), 0);
	}
	assert_true((history[N].present >> FIELD_PREV_CLOSE) & 1u);
	engine_flush(e);
	c = engine_client_create(e, &ready);
	assert_non_null(c);
	for (k = 1; k < N; k++) {
		assert_int_equal(engine_client_subscribe(c, "AAPL", true, k),
		                 0);
		engine_flush(e);
		assert_int_equal(drain(c, 0, u, 4), 1);
		assert_true(u[0].is_delta);
		assert_int_equal(u[0].from, k);
		assert_int_equal(u[0].present, changed_after(&history[N], k));
		assert_int_equal(u[0].removed, taken_after(&history[N], k));
		nulls += u[0].removed != 0;
		model_from_state(&m, &history[k]);
		model_apply(&m, &u[0]);
		assert_model_equals_state(&m, &history[N]);
	}
	/* The last session has had no trade: the deltas take its open,
	 * high and low away. */
	assert_false((history[N].present >> FIELD_OPEN) & 1u);
	assert_true(nulls > 0);
	assert_int_equal(engine_client_subscribe(c, "AAPL", false, 0), 0);
	assert_int_equal(drain(c, 0, u, 4), 1);
	assert_false(u[0].is_delta);
	assert_int_equal(u[0].removed, 0);
	memset(&m, 0, sizeof m);
	model_apply(&m, &u[0]);
	assert_model_equals_state(&m, &history[N]);
	engine_destroy(e);
}

/* A delta at a boundary that a quote began: open/high/low null, trades
 * and volume 0, prev_close the last trade; the next trade brings them. */
static void
test_session_boundary_delta_on_the_wire(void **state)
{
	struct engine *e = engine_with_sessions();
	struct engine_client *c;
	struct update u[4];
	int ready = 0;
	static char buf[FRAME_CAP + 1];
	size_t n;

	c = engine_client_create(e, &ready);
	assert_int_equal(engine_client_subscribe(c, "AAPL", false, 0), 0);
	assert_int_equal(apply_trade(e, "AAPL", 10, "189.30", "100"), 1);
	assert_int_equal(apply_trade(e, "AAPL", 20, "189.50", "50"), 2);
	engine_flush(e);
	assert_int_equal(drain(c, 0, u, 4), 1);
	assert_int_equal(apply_quote(e, "AAPL", 60, "189.40", "189.60"), 3);
	engine_flush(e);
	n = engine_client_write(c, 0, buf, FRAME_CAP, NULL);
	buf[n] = '\0';
	assert_string_equal(buf, "{\"type\":\"delta\",\"symbol\":\"AAPL\","
	                         "\"from\":2,\"seq\":3,\"ts\":60,"
	                         "\"bid\":189.40,\"ask\":189.60,"
	                         "\"volume\":0,\"open\":null,\"high\":null,"
	                         "\"low\":null,\"trades\":0,"
	                         "\"prev_close\":189.50}");
	assert_int_equal(apply_trade(e, "AAPL", 70, "189.45", "5"), 4);
	engine_flush(e);
	assert_int_equal(drain(c, 0, u, 4), 1);
	assert_decimal_text(u[0].value[FIELD_OPEN], "189.45");
	assert_int_equal(u[0].removed, 0);
	assert_false((u[0].present >> FIELD_PREV_CLOSE) & 1u);
	/* a new client's snapshot has prev_close and no null */
	assert_int_equal(engine_client_subscribe(c, "AAPL", false, 0), 0);
	n = engine_client_write(c, 0, buf, FRAME_CAP, NULL);
	buf[n] = '\0';
	assert_null(strstr(buf, "null"));
	assert_non_null(strstr(buf, "\"prev_close\":189.50}"));
	engine_destroy(e);
}

/* An edge takes a state further on in which a session took fields away
 * (engine_advance_symbol): its clients keep their place and get a delta
 * with nulls, not a snapshot. */
static void
test_advance_across_a_session_keeps_clients_in_place(void **state)
{
	struct engine *ingest = engine_with_sessions();
	struct engine *edge = engine_with_sessions();
	struct symbol_state at2, at4, wrong;
	struct engine_client *c;
	struct update u[4];
	struct model m;
	int ready = 0;

	apply_trade(ingest, "X", 10, "10", "1");
	apply_trade(ingest, "X", 20, "11", "1");
	assert_int_equal(engine_get_state(ingest, "X", &at2), 0);
	apply_quote(ingest, "X", 60, "10.9", "11.1");
	apply_quote(ingest, "X", 70, "10.8", "11.2");
	assert_int_equal(engine_get_state(ingest, "X", &at4), 0);
	assert_int_equal(engine_restore_symbol(edge, &at2), 0);
	c = engine_client_create(edge, &ready);
	assert_int_equal(engine_client_subscribe(c, "X", true, 2), 0);
	engine_flush(edge);
	assert_int_equal(drain(c, 0, u, 4), 0);
	assert_int_equal(engine_advance_symbol(edge, &at4), 0);
	engine_flush(edge);
	assert_int_equal(drain(c, 0, u, 4), 1);
	assert_true(u[0].is_delta);
	assert_int_equal(u[0].removed, (1u << FIELD_OPEN) |
	                                       (1u << FIELD_HIGH) |
	                                       (1u << FIELD_LOW));
	model_from_state(&m, &at2);
	model_apply(&m, &u[0]);
	assert_model_equals_state(&m, &at4);
	/* A state that lacks a field the edge has without saying it was
	 * taken away after the edge's seq is another history: snapshots. */
	wrong = at4;
	wrong.seq = 5;
	wrong.present &= (uint16_t)~(1u << FIELD_LAST);
	wrong.changed_seq[FIELD_LAST] = 1;
	assert_int_equal(engine_advance_symbol(edge, &wrong), 1);
	engine_destroy(ingest);
	engine_destroy(edge);
}

/*
 * Clients that write at random moments receive merged deltas; applying them
 * as a client would keeps each one equal to the server, and no update ever
 * goes back in seq.
 */
static void
test_random_conflation_keeps_clients_equal_to_server(void **state)
{
	static const char *const names[] = {"AAA", "BBB", "CCC", "DDD"};
	enum { NC = 3, NS = 4 };
	static struct update u[MAX_UPDATES];
	struct engine *e = engine_new(NULL);
	struct engine_client *c[NC];
	struct model m[NC][NS];
	int ready[NC] = {0}, i, j, k;
	size_t n, x;

	rng_seed(3);
	memset(m, 0, sizeof m);
	for (i = 0; i < NC; i++) {
		c[i] = engine_client_create(e, &ready[i]);
		for (j = 0; j < NS; j++)
			assert_int_equal(engine_client_subscribe(c[i], names[j],
			                                         false, 0),
			                 0);
	}
	for (k = 0; k < 5000; k++) {
		int s = (int)rng_below(NS);
		struct tick t = tick_random(names[s], k, k > 4000);

		assert_true(engine_apply_tick(e, &t) > 0);
		if (rng_below(3) == 0)
			engine_flush(e);
		for (i = 0; i < NC; i++) {
			/* Client i writes about once in 1, 10 and 100
			 * ticks. */
			static const uint32_t every[NC] = {1, 10, 100};

			if (rng_below(every[i]) != 0)
				continue;
			n = drain(c[i], k, u, MAX_UPDATES);
			for (x = 0; x < n; x++) {
				for (j = 0; j < NS; j++)
					if (strcmp(u[x].symbol, names[j]) == 0)
						break;
				assert_true(j < NS);
				model_apply(&m[i][j], &u[x]);
			}
		}
	}
	engine_flush(e);
	for (i = 0; i < NC; i++) {
		n = drain(c[i], 0, u, MAX_UPDATES);
		for (x = 0; x < n; x++) {
			for (j = 0; j < NS; j++)
				if (strcmp(u[x].symbol, names[j]) == 0)
					break;
			assert_true(j < NS);
			model_apply(&m[i][j], &u[x]);
		}
		assert_false(engine_client_has_pending(c[i]));
		for (j = 0; j < NS; j++)
			assert_engine_state(e, &m[i][j], names[j]);
	}
	engine_destroy(e);
}

static void
test_derived_open_high_low_trades_volume(void **state)
{
	struct engine *e = engine_new(NULL);
	struct symbol_state s;
	struct tick t;
	uint64_t seq;

	assert_int_equal(apply_trade(e, "X", 1, "10.5", "100"), 1);
	assert_int_equal(apply_trade(e, "X", 2, "11.25", "50"), 2);
	assert_int_equal(apply_quote(e, "X", 3, "11.20", "11.30"), 3);
	assert_int_equal(apply_trade(e, "X", 4, "9.75", "25"), 4);
	assert_int_equal(engine_get_state(e, "X", &s), 0);
	assert_decimal_text(s.value[FIELD_OPEN], "10.5");
	assert_decimal_text(s.value[FIELD_HIGH], "11.25");
	assert_decimal_text(s.value[FIELD_LOW], "9.75");
	assert_decimal_text(s.value[FIELD_LAST], "9.75");
	assert_decimal_text(s.value[FIELD_TRADES], "3");
	assert_int_equal(s.value[FIELD_TRADES].scale, 0);
	assert_decimal_text(s.value[FIELD_VOLUME], "175");
	assert_false(s.feed_sends_volume);
	/* The open is the first trade and never moves; a quote does not
	 * count as a trade. */
	assert_int_equal(s.changed_seq[FIELD_OPEN], 1);
	assert_int_equal(s.changed_seq[FIELD_HIGH], 2);
	assert_int_equal(s.changed_seq[FIELD_TRADES], 4);

	/* Once the feed sends volume, its value is taken as is and
	 * last_size no longer adds to it. */
	t = tick_make("X", 5);
	tick_set(&t, FIELD_LAST, dec("10"));
	tick_set(&t, FIELD_LAST_SIZE, dec("10"));
	tick_set(&t, FIELD_VOLUME, dec("1000"));
	assert_int_equal(engine_apply_tick(e, &t), 5);
	assert_int_equal(apply_trade(e, "X", 6, "12", "7"), 6);
	assert_int_equal(engine_get_state(e, "X", &s), 0);
	assert_true(s.feed_sends_volume);
	assert_decimal_text(s.value[FIELD_VOLUME], "1000");
	assert_int_equal(s.changed_seq[FIELD_VOLUME], 5);
	assert_decimal_text(s.value[FIELD_TRADES], "5");
	assert_decimal_text(s.value[FIELD_HIGH], "12");
	t = tick_make("X", 7);
	tick_set(&t, FIELD_VOLUME, dec("1005"));
	assert_int_equal(engine_apply_tick(e, &t), 7);
	assert_int_equal(engine_get_state(e, "X", &s), 0);
	assert_decimal_text(s.value[FIELD_VOLUME], "1005");
	assert_decimal_text(s.value[FIELD_TRADES], "5");

	/* Summing last_size past the int64 range refuses the tick and leaves
	 * the state as it was. */
	t = tick_make("Y", 1);
	tick_set(&t, FIELD_LAST, dec("1"));
	tick_set(&t, FIELD_LAST_SIZE, dec_raw(INT64_MAX - 5, 0));
	assert_int_equal(engine_apply_tick(e, &t), 1);
	t.ts = 2;
	tick_set(&t, FIELD_LAST_SIZE, dec("10"));
	seq = engine_apply_tick(e, &t);
	assert_int_equal(seq, 0);
	assert_int_equal(engine_get_state(e, "Y", &s), 0);
	assert_int_equal(s.seq, 1);
	assert_int_equal(s.ts, 1);
	assert_decimal_text(s.value[FIELD_TRADES], "1");
	engine_destroy(e);
}

static void
test_decimals_round_trip_exactly(void **state)
{
	struct engine *e = engine_new(NULL);
	struct engine_client *c;
	struct symbol_state s;
	struct update u[2];
	static char buf[FRAME_CAP + 1];
	int ready = 0;
	size_t n;

	c = engine_client_create(e, &ready);
	assert_int_equal(engine_client_subscribe(c, "AAPL", false, 0), 0);
	assert_int_equal(
	        apply_quote(e, "AAPL", 1709303400123456LL, "189.35", "189.30"),
	        1);
	assert_int_equal(apply_trade(e, "AAPL", 1709303400123457LL, "0.1", "3"),
	                 2);
	engine_flush(e);
	n = engine_client_write(c, 0, buf, FRAME_CAP, NULL);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\"bid\":189.35,"));
	assert_non_null(strstr(buf, "\"ask\":189.30,"));
	assert_non_null(strstr(buf, "\"last\":0.1,"));
	assert_non_null(strstr(buf, "\"trades\":1"));
	assert_non_null(strstr(buf, "\"ts\":1709303400123457,"));
	assert_null(strstr(buf, "189.34999"));
	assert_int_equal(parse_frame(buf, n, u, 2), 1);
	assert_decimal_exact(u[0].value[FIELD_BID], dec_raw(18935, 2));
	assert_decimal_exact(u[0].value[FIELD_ASK], dec_raw(18930, 2));

	/* 189.3 equals the stored 189.30: no change, and the stored text
	 * keeps its scale. */
	assert_int_equal(
	        apply_quote(e, "AAPL", 1709303400123458LL, "189.36", "189.3"),
	        3);
	assert_int_equal(engine_get_state(e, "AAPL", &s), 0);
	assert_decimal_exact(s.value[FIELD_ASK], dec_raw(18930, 2));
	assert_int_equal(s.changed_seq[FIELD_ASK], 1);
	engine_flush(e);
	n = engine_client_write(c, 0, buf, FRAME_CAP, NULL);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\"bid\":189.36"));
	assert_null(strstr(buf, "\"ask\""));
	engine_destroy(e);
}

static void
test_max_hz_holds_back_then_releases_one_conflated_update(void **state)
{
	struct engine *e = engine_new(NULL);
	struct engine_client *c;
	struct engine_stats st;
	struct update u[4];
	static char buf[FRAME_CAP];
	int64_t due = -1;
	int ready = 0, i;
	struct model m;

	memset(&m, 0, sizeof m);
	c = engine_client_create(e, &ready);
	engine_client_set_max_hz(c, 10); /* at most one per 100 ms */
	assert_int_equal(engine_client_subscribe(c, "AAPL", false, 0), 0);
	assert_int_equal(apply_quote(e, "AAPL", 1, "1.00", "1.01"), 1);
	engine_flush(e);
	assert_int_equal(write_updates(c, 1000000, u, 4), 1);
	model_apply(&m, &u[0]);

	for (i = 2; i <= 6; i++)
		assert_int_equal(apply_quote(e, "AAPL", i,
		                             i % 2 ? "1.02" : "1.03", "1.04"),
		                 (uint64_t)i);
	engine_flush(e);
	/* 50 ms later: held back, still pending, due at 100 ms. */
	assert_int_equal(engine_client_write(c, 1050000, buf, sizeof buf, &due),
	                 0);
	assert_int_equal(due, 1100000);
	assert_true(engine_client_has_pending(c));
	/* A tick while held back merges into the same update. */
	assert_int_equal(apply_quote(e, "AAPL", 7, "1.05", "1.04"), 7);
	engine_flush(e);
	assert_int_equal(engine_client_write(c, 1099999, buf, sizeof buf, &due),
	                 0);
	assert_int_equal(due, 1100000);

	assert_int_equal(write_updates(c, 1100000, u, 4), 1);
	assert_true(u[0].is_delta);
	assert_int_equal(u[0].from, 1);
	assert_int_equal(u[0].seq, 7);
	model_apply(&m, &u[0]);
	assert_engine_state(e, &m, "AAPL");
	assert_false(engine_client_has_pending(c));
	assert_int_equal(engine_client_write(c, 1200000, buf, sizeof buf, &due),
	                 0);
	assert_int_equal(due, 0);
	engine_get_stats(e, &st);
	assert_int_equal(st.ticks_conflated, 5);
	engine_destroy(e);
}

/*
 * A client on many symbols under max_hz whose changes outgrow a frame:
 * each batch goes on in frames back to back until every symbol that
 * changed is sent, once, visited in turn. It once got one frame per
 * interval, filled from the first symbol each time, so the last symbols of
 * a busy watchlist waited for seconds while the first kept changing.
 */
static void
test_max_hz_batch_larger_than_a_frame_sends_every_symbol_once(void **state)
{
	enum { NSYM = 300 };
	struct engine_config cfg = {.client_ready = on_ready,
	                            .frame_cap = ENGINE_MIN_FRAME};
	struct engine *e = engine_create(&cfg);
	static struct update u[MAX_UPDATES];
	static struct model m[NSYM];
	static char buf[ENGINE_MIN_FRAME];
	struct engine_client *c;
	int64_t now = 1000000, due;
	int ready = 0, k, round, seen[NSYM];
	uint64_t s000 = 0, seq;
	size_t n, i;
	char name[16];

	(void)state;
	memset(m, 0, sizeof m);
	c = engine_client_create(e, &ready);
	engine_client_set_max_hz(c, 10);
	assert_int_equal(engine_client_subscribe_all(c, NULL, NULL), 0);
	for (round = 1; round <= 6; round++) {
		for (k = 0; k < NSYM; k++) {
			snprintf(name, sizeof name, "S%03d", k);
			seq = apply_quote(e, name, round,
			                  round % 2 ? "1.01" : "1.02", "1.03");
			assert_true(seq > 0);
			if (k == 0)
				s000 = seq;
		}
		engine_flush(e);
		n = drain(c, now, u, MAX_UPDATES);
		/* Several frames' worth, and every symbol once. */
		assert_true(n * 60 > ENGINE_MIN_FRAME);
		memset(seen, 0, sizeof seen);
		for (i = 0; i < n; i++) {
			k = atoi(u[i].symbol + 1);
			assert_true(k >= 0 && k < NSYM);
			seen[k]++;
			model_apply(&m[k], &u[i]);
		}
		for (k = 0; k < NSYM; k++) {
			assert_int_equal(seen[k], 1);
			assert_int_equal(m[k].seq, k ? (uint64_t)round : s000);
		}
		/* The next batch waits for its interval. */
		assert_int_equal(apply_quote(e, "S000", round, "9.99", "9.99"),
		                 s000 + 1);
		engine_flush(e);
		due = -1;
		assert_int_equal(engine_client_write(c, now + 50000, buf,
		                                     sizeof buf, &due),
		                 0);
		assert_int_equal(due, now + 100000);
		now += 100000;
		n = drain(c, now, u, MAX_UPDATES);
		assert_int_equal(n, 1);
		model_apply(&m[0], &u[0]);
		now += 100000;
	}
	engine_destroy(e);
}

static bool
deny_x(const char *symbol, void *ctx)
{
	int *asked = ctx;

	(*asked)++;
	return symbol[0] != 'X';
}

static bool
resume_aapl_at_1(const char *symbol, uint64_t *seq, void *ctx)
{
	if (strcmp(symbol, "AAPL") != 0)
		return false;
	*seq = 1;
	return true;
}

static void
test_wildcard_picks_up_later_symbols_and_respects_filter(void **state)
{
	struct engine *e = engine_new(NULL);
	struct engine_client *c, *late;
	struct update u[8];
	int ready = 0, ready_late = 0, asked = 0;

	c = engine_client_create(e, &ready);
	engine_client_set_filter(c, deny_x, &asked, NULL);
	assert_int_equal(engine_client_subscribe_all(c, NULL, NULL), 0);
	assert_true(engine_client_is_subscribed(c, "*"));
	assert_int_equal(engine_client_subscription_count(c), 1);

	/* Symbols that appear after the wildcard are picked up, unless the
	 * filter refuses them. */
	assert_int_equal(apply_quote(e, "AAPL", 1, "1", "2"), 1);
	assert_int_equal(apply_quote(e, "XBAD", 1, "1", "2"), 1);
	engine_flush(e);
	assert_true(asked >= 2);
	assert_int_equal(drain(c, 0, u, 8), 1);
	assert_string_equal(u[0].symbol, "AAPL");
	assert_false(u[0].is_delta);
	assert_true(engine_client_is_subscribed(c, "AAPL"));
	assert_false(engine_client_is_subscribed(c, "XBAD"));
	assert_int_equal(engine_client_subscription_count(c), 1);

	/* A symbol subscribed to by someone but without data appears with
	 * its first tick, for the wildcard as well. */
	late = engine_client_create(e, &ready_late);
	assert_int_equal(engine_client_subscribe(late, "MSFT", false, 0), 0);
	engine_flush(e);
	assert_int_equal(drain(c, 0, u, 8), 0);
	assert_int_equal(apply_quote(e, "MSFT", 1, "3", "4"), 1);
	engine_flush(e);
	assert_int_equal(drain(c, 0, u, 8), 1);
	assert_string_equal(u[0].symbol, "MSFT");

	/* A wildcard taken when symbols exist applies the resume rules to
	 * each: AAPL is held at seq 1 (current), so only MSFT and XBAD. */
	assert_int_equal(
	        engine_client_subscribe_all(late, resume_aapl_at_1, NULL), 0);
	engine_flush(e);
	assert_int_equal(drain(late, 0, u, 8), 2);
	assert_true(strcmp(u[0].symbol, "AAPL") != 0);
	assert_true(strcmp(u[1].symbol, "AAPL") != 0);

	/* Unsubscribing "*" drops what it alone brought in; MSFT, named by
	 * the late client, stays. */
	engine_client_unsubscribe(late, "*");
	assert_false(engine_client_is_subscribed(late, "*"));
	assert_false(engine_client_is_subscribed(late, "AAPL"));
	assert_true(engine_client_is_subscribed(late, "MSFT"));
	assert_int_equal(engine_client_subscription_count(late), 1);
	assert_int_equal(apply_quote(e, "AAPL", 2, "1.5", "2"), 2);
	assert_int_equal(apply_quote(e, "MSFT", 2, "3.5", "4"), 2);
	assert_int_equal(apply_quote(e, "NEW", 2, "3.5", "4"), 1);
	engine_flush(e);
	assert_int_equal(drain(late, 0, u, 8), 1);
	assert_string_equal(u[0].symbol, "MSFT");
	assert_int_equal(drain(c, 0, u, 8), 3);
	engine_destroy(e);
}

static void
test_resume_same_seq_sends_nothing(void **state)
{
	struct engine *e = engine_new(NULL);
	struct engine_client *c;
	struct update u[2];
	int ready = 0, i;

	for (i = 1; i <= 5; i++)
		apply_quote(e, "AAPL", i, i % 2 ? "1" : "2", "3");
	engine_flush(e);
	c = engine_client_create(e, &ready);
	assert_int_equal(engine_client_subscribe(c, "AAPL", true, 5), 0);
	engine_flush(e);
	assert_false(engine_client_has_pending(c));
	assert_int_equal(drain(c, 0, u, 2), 0);
	assert_int_equal(ready, 0);
	assert_true(engine_client_is_subscribed(c, "AAPL"));
	/* The next tick comes as a delta from the resumed seq. */
	apply_quote(e, "AAPL", 6, "9", "3");
	engine_flush(e);
	assert_int_equal(drain(c, 0, u, 2), 1);
	assert_true(u[0].is_delta);
	assert_int_equal(u[0].from, 5);
	assert_int_equal(u[0].seq, 6);
	engine_destroy(e);
}

static void
test_resume_older_seq_sends_one_delta_from_it(void **state)
{
	struct engine *e = engine_new(NULL);
	struct engine_client *c;
	struct update u[2];
	int ready = 0, i;

	for (i = 1; i <= 9; i++)
		apply_quote(e, "AAPL", i, i % 2 ? "1" : "2", "3");
	c = engine_client_create(e, &ready);
	assert_int_equal(engine_client_subscribe(c, "AAPL", true, 4), 0);
	engine_flush(e);
	assert_int_equal(ready, 1);
	assert_int_equal(drain(c, 0, u, 2), 1);
	assert_true(u[0].is_delta);
	assert_int_equal(u[0].from, 4);
	assert_int_equal(u[0].seq, 9);
	/* bid changed after 4, ask did not. */
	assert_true(u[0].present & (1u << FIELD_BID));
	assert_false(u[0].present & (1u << FIELD_ASK));
	engine_destroy(e);
}

static void
test_resume_none_or_newer_seq_sends_snapshot(void **state)
{
	struct engine *e = engine_new(NULL);
	struct engine_client *c;
	struct update u[2];
	int ready = 0;

	apply_quote(e, "AAPL", 1, "1", "2");
	apply_quote(e, "AAPL", 2, "1.5", "2");
	c = engine_client_create(e, &ready);
	assert_int_equal(engine_client_subscribe(c, "AAPL", false, 0), 0);
	assert_int_equal(drain(c, 0, u, 2), 1);
	assert_false(u[0].is_delta);
	assert_int_equal(u[0].seq, 2);
	assert_true(u[0].present & (1u << FIELD_ASK));

	/* A seq the server has not reached (another epoch, say): snapshot. */
	assert_int_equal(engine_client_subscribe(c, "AAPL", true, 99), 0);
	assert_int_equal(drain(c, 0, u, 2), 1);
	assert_false(u[0].is_delta);
	assert_int_equal(u[0].seq, 2);

	/* Seq 0 holds nothing: snapshot. */
	assert_int_equal(engine_client_subscribe(c, "AAPL", true, 0), 0);
	assert_int_equal(drain(c, 0, u, 2), 1);
	assert_false(u[0].is_delta);
	assert_int_equal(engine_client_subscription_count(c), 1);
	engine_destroy(e);
}

static void
collect_symbol(const struct symbol_state *s, void *ctx)
{
	int *count = ctx;

	(void)s;
	(*count)++;
}

static void
test_subscribe_before_data_gets_snapshot_with_first_tick(void **state)
{
	struct engine *e = engine_new(NULL);
	struct engine_client *c;
	struct symbol_state s;
	struct engine_stats st;
	struct update u[2];
	int ready = 0, listed = 0;

	c = engine_client_create(e, &ready);
	assert_int_equal(engine_client_subscribe(c, "IPO", true, 7), 0);
	assert_true(engine_client_is_subscribed(c, "IPO"));
	engine_flush(e);
	assert_false(engine_client_has_pending(c));
	assert_int_equal(drain(c, 0, u, 2), 0);
	/* The placeholder is not a symbol with data. */
	assert_int_equal(engine_get_state(e, "IPO", &s), -1);
	engine_foreach_symbol(e, collect_symbol, &listed);
	assert_int_equal(listed, 0);
	engine_get_stats(e, &st);
	assert_int_equal(st.symbols, 0);

	apply_trade(e, "IPO", 10, "42.00", "100");
	engine_flush(e);
	assert_int_equal(ready, 1);
	assert_int_equal(drain(c, 0, u, 2), 1);
	assert_false(u[0].is_delta);
	assert_int_equal(u[0].seq, 1);
	assert_decimal_exact(u[0].value[FIELD_LAST], dec_raw(4200, 2));
	engine_foreach_symbol(e, collect_symbol, &listed);
	assert_int_equal(listed, 1);
	engine_destroy(e);
}

static void
test_unsubscribe_sends_nothing_more(void **state)
{
	struct engine *e = engine_new(NULL);
	struct engine_client *c;
	struct engine_stats st;
	struct update u[2];
	int ready = 0;

	c = engine_client_create(e, &ready);
	assert_int_equal(engine_client_subscribe(c, "AAPL", false, 0), 0);
	assert_int_equal(engine_client_subscribe(c, "GHOST", false, 0), 0);
	apply_quote(e, "AAPL", 1, "1", "2");
	engine_flush(e);
	assert_true(engine_client_has_pending(c));
	/* Pending updates are dropped with the subscription. */
	engine_client_unsubscribe(c, "AAPL");
	engine_client_unsubscribe(c, "GHOST");
	engine_client_unsubscribe(c, "NEVER-HEARD-OF");
	assert_false(engine_client_is_subscribed(c, "AAPL"));
	assert_false(engine_client_has_pending(c));
	assert_int_equal(drain(c, 0, u, 2), 0);
	apply_quote(e, "AAPL", 2, "1.5", "2");
	apply_quote(e, "GHOST", 2, "1.5", "2");
	engine_flush(e);
	assert_int_equal(drain(c, 0, u, 2), 0);
	assert_int_equal(engine_client_subscription_count(c), 0);
	engine_get_stats(e, &st);
	assert_int_equal(st.subscriptions, 0);
	engine_destroy(e);
}

static void
test_slow_client_gets_one_merged_delta(void **state)
{
	struct engine *e = engine_new(NULL);
	struct engine_client *c;
	struct engine_stats st;
	struct update u[2];
	struct model m;
	int ready = 0, i;

	memset(&m, 0, sizeof m);
	c = engine_client_create(e, &ready);
	assert_int_equal(engine_client_subscribe(c, "AAPL", false, 0), 0);
	apply_quote(e, "AAPL", 0, "100.00", "100.01");
	engine_flush(e);
	assert_int_equal(drain(c, 0, u, 2), 1);
	model_apply(&m, &u[0]);
	ready = 0;

	/* 10,000 ticks, each followed by a flush as in the service loop,
	 * and the client never writes. */
	for (i = 1; i <= 10000; i++) {
		struct tick t = tick_make("AAPL", i);

		tick_set(&t, i % 2 ? FIELD_BID : FIELD_ASK,
		         dec_raw(10000 + i, 2));
		assert_int_equal(engine_apply_tick(e, &t), (uint64_t)i + 1);
		engine_flush(e);
	}
	assert_int_equal(ready, 1);
	assert_int_equal(drain(c, 0, u, 2), 1);
	assert_true(u[0].is_delta);
	assert_int_equal(u[0].from, 1);
	assert_int_equal(u[0].seq, 10001);
	assert_int_equal(u[0].seq - u[0].from - 1, 9999);
	model_apply(&m, &u[0]);
	assert_engine_state(e, &m, "AAPL");
	engine_get_stats(e, &st);
	assert_int_equal(st.ticks_conflated, 9999);
	assert_int_equal(st.updates_sent, 2);
	engine_destroy(e);
}

static void
test_client_ready_called_once_per_transition(void **state)
{
	struct engine *e;
	struct engine_client *a, *b;
	struct update u[4];
	int ra = 0, rb = 0, total = 0;

	e = engine_new(&total);
	a = engine_client_create(e, &ra);
	b = engine_client_create(e, &rb);
	engine_client_subscribe(a, "AAPL", false, 0);
	engine_client_subscribe(a, "MSFT", false, 0);
	engine_client_subscribe(b, "MSFT", false, 0);

	/* Two symbols due for a: still one call. */
	apply_quote(e, "AAPL", 1, "1", "2");
	apply_quote(e, "MSFT", 1, "1", "2");
	engine_flush(e);
	assert_int_equal(ra, 1);
	assert_int_equal(rb, 1);
	assert_int_equal(total, 2);

	/* Still pending: more ticks and flushes call nothing. */
	apply_quote(e, "AAPL", 2, "1.5", "2");
	engine_flush(e);
	engine_flush(e);
	assert_int_equal(ra, 1);

	/* Once a has written everything, the next update wakes it again;
	 * b, still pending, is not woken twice. */
	assert_int_equal(drain(a, 0, u, 4), 2);
	apply_quote(e, "MSFT", 2, "1.5", "2");
	engine_flush(e);
	assert_int_equal(ra, 2);
	assert_int_equal(rb, 1);

	/* A subscription to a symbol with data wakes at the next flush. */
	assert_int_equal(drain(a, 0, u, 4), 1);
	engine_client_subscribe(a, "AAPL", false, 0);
	engine_flush(e);
	assert_int_equal(ra, 3);
	/* Written before the flush: nothing left, no wake-up. */
	engine_client_subscribe(a, "AAPL", false, 0);
	assert_int_equal(drain(a, 0, u, 4), 1);
	engine_flush(e);
	assert_int_equal(ra, 3);
	assert_int_equal(total, 4);
	engine_destroy(e);
}

static void
test_batch_frame_is_array_when_several_updates_due(void **state)
{
	struct engine *e = engine_new(NULL);
	struct engine_client *c;
	struct update u[4];
	char buf[FRAME_CAP];
	int ready = 0;
	size_t n;

	c = engine_client_create(e, &ready);
	engine_client_subscribe(c, "CCC", false, 0);
	engine_client_subscribe(c, "AAA", false, 0);
	engine_client_subscribe(c, "BBB", false, 0);
	apply_quote(e, "BBB", 1, "1", "2");
	engine_flush(e);
	apply_quote(e, "AAA", 1, "1", "2");
	apply_quote(e, "CCC", 1, "1", "2");
	engine_flush(e);
	n = engine_client_write(c, 0, buf, sizeof buf, NULL);
	assert_true(n > 0);
	assert_int_equal(buf[0], '[');
	assert_int_equal(buf[n - 1], ']');
	assert_int_equal(parse_frame(buf, n, u, 4), 3);
	/* Oldest pending first. */
	assert_string_equal(u[0].symbol, "BBB");

	/* One update alone is a bare object. */
	apply_quote(e, "AAA", 2, "1.5", "2");
	engine_flush(e);
	n = engine_client_write(c, 0, buf, sizeof buf, NULL);
	assert_true(n > 0);
	assert_int_equal(buf[0], '{');
	assert_int_equal(parse_frame(buf, n, u, 4), 1);
	engine_destroy(e);
}

/* Drain c into buf at most cap bytes a frame; checks every frame stays
 * within cap (nothing written past it) and parses some of them. Returns the
 * updates received. */
static size_t
drain_capped(struct engine_client *c, char *buf, size_t bufsize, size_t cap,
             struct update *u, size_t nsym, size_t *frames)
{
	size_t total = 0, n, i;

	for (;;) {
		memset(buf, '#', bufsize);
		n = engine_client_write(c, 0, buf, cap, NULL);
		if (n == 0)
			return total;
		assert_true(n <= cap);
		for (i = cap; i < bufsize && buf[i] == '#'; i++)
			;
		assert_int_equal(i, bufsize);
		(*frames)++;
		if (cap % 50 != 0) {
			/* Parsing every frame at every cap is slow; counting
			 * objects is enough in between. */
			for (i = 0; i < n; i++)
				total += buf[i] == '{';
			continue;
		}
		n = parse_frame(buf, n, u + total, nsym - total);
		for (i = total; i < total + n; i++)
			assert_int_equal(u[i].present,
			                 (1u << STATE_FIELD_COUNT) - 1);
		total += n;
	}
}

static void
test_frame_never_exceeds_cap(void **state)
{
	enum { NSYM = 300, SLACK = 700 };
	static char buf[ENGINE_MIN_FRAME + SLACK + 64];
	static struct update u[NSYM];
	size_t cap;

	/* Every cap from the minimum up by more than an update's length, so
	 * that some frame ends exactly at the limit; at each, a frame two
	 * clients share (cut into chunks) and one made for a client alone. */
	for (cap = ENGINE_MIN_FRAME; cap < ENGINE_MIN_FRAME + SLACK; cap++) {
		struct engine_config cfg = {.client_ready = on_ready,
		                            .frame_cap = cap};
		struct engine *e = engine_create(&cfg);
		struct engine_client *a1, *a2, *b;
		struct engine_stats st;
		size_t frames = 0;
		int ready = 0, k;

		assert_non_null(e);
		a1 = engine_client_create(e, &ready);
		a2 = engine_client_create(e, &ready);
		b = engine_client_create(e, &ready);
		assert_int_equal(engine_client_subscribe_all(a1, NULL, NULL),
		                 0);
		assert_int_equal(engine_client_subscribe_all(a2, NULL, NULL),
		                 0);
		for (k = 0; k < NSYM; k++) {
			/* Long names and long values make big updates. */
			char name[TICK_SYMBOL_MAX + 1];
			struct tick t;
			int f;

			snprintf(name, sizeof name, "SYMBOL-%025d", k);
			t = tick_make(name, INT64_MIN);
			for (f = 0; f < TICK_FIELD_COUNT; f++)
				tick_set(&t, (enum tick_field)f,
				         dec_raw(INT64_MIN + f, 18));
			tick_set(&t, FIELD_LAST_SIZE, dec_raw(-1, 18));
			assert_int_equal(engine_apply_tick(e, &t), 1);
			/* The same in the next trading session: prev_close
			 * as well, and every field. */
			t.ts = 0;
			assert_int_equal(engine_apply_tick(e, &t), 2);
		}
		engine_flush(e);
		assert_int_equal(engine_client_subscribe_all(b, NULL, NULL), 0);
		assert_int_equal(drain_capped(a1, buf, sizeof buf, cap, u, NSYM,
		                              &frames),
		                 NSYM);
		assert_int_equal(drain_capped(a2, buf, sizeof buf, cap, u, NSYM,
		                              &frames),
		                 NSYM);
		assert_int_equal(
		        drain_capped(b, buf, sizeof buf, cap, u, NSYM, &frames),
		        NSYM);
		assert_true(frames > 3);
		assert_false(engine_client_has_pending(a1));
		assert_false(engine_client_has_pending(b));
		engine_get_stats(e, &st);
		assert_int_equal(st.updates_sent, 3 * NSYM);
		/* Each snapshot is encoded once: the two in step send the
		 * same frame, the third takes the cached encodings. */
		assert_int_equal(st.encodings, NSYM);
		assert_int_equal(st.encodings_shared, 2 * NSYM);
		assert_true(st.frames_shared >= 1);
		engine_destroy(e);
	}
}

static void
test_restore_symbol_then_delta_and_snapshot_are_correct(void **state)
{
	enum { N = 60 };
	static struct symbol_state history[N + 1];
	struct engine *a = engine_new(NULL), *b = engine_new(NULL);
	struct engine_client *old, *c;
	struct update u[4];
	struct model m;
	int ready = 0, ready_old = 0;
	uint64_t k;

	rng_seed(4);
	for (k = 1; k <= N; k++) {
		struct tick t = tick_random("EUR/USD", (int64_t)k, false);

		assert_int_equal(engine_apply_tick(a, &t), k);
		engine_get_state(a, "EUR/USD", &history[k]);
	}

	/* b already had a subscriber, with other data up to the same seq,
	 * before the state is put back: it gets a snapshot of the restored
	 * state, not the one b had encoded for that seq. */
	old = engine_client_create(b, &ready_old);
	engine_client_subscribe(old, "EUR/USD", false, 0);
	for (k = 1; k <= N; k++)
		apply_quote(b, "EUR/USD", (int64_t)k, "7", "8");
	engine_flush(b);
	assert_int_equal(drain(old, 0, u, 4), 1);
	assert_int_equal(u[0].seq, N);
	assert_int_equal(engine_restore_symbol(b, &history[N]), 0);
	engine_flush(b);
	assert_int_equal(drain(old, 0, u, 4), 1);
	assert_false(u[0].is_delta);
	memset(&m, 0, sizeof m);
	model_apply(&m, &u[0]);
	assert_model_equals_state(&m, &history[N]);

	/* A client that held seq 30 before the restart gets one delta. */
	c = engine_client_create(b, &ready);
	engine_client_subscribe(c, "EUR/USD", true, 30);
	assert_int_equal(drain(c, 0, u, 4), 1);
	assert_true(u[0].is_delta);
	assert_int_equal(u[0].from, 30);
	model_from_state(&m, &history[30]);
	model_apply(&m, &u[0]);
	assert_model_equals_state(&m, &history[N]);

	/* Without resume, a snapshot. */
	engine_client_subscribe(c, "EUR/USD", false, 0);
	assert_int_equal(drain(c, 0, u, 4), 1);
	assert_false(u[0].is_delta);
	memset(&m, 0, sizeof m);
	model_apply(&m, &u[0]);
	assert_model_equals_state(&m, &history[N]);

	/* Ticks go on from the restored seq, with deltas. */
	assert_int_equal(apply_quote(b, "EUR/USD", N + 1, "1.2345", "1.2346"),
	                 N + 1);
	engine_flush(b);
	assert_int_equal(drain(c, 0, u, 4), 1);
	assert_true(u[0].is_delta);
	assert_int_equal(u[0].from, N);
	model_apply(&m, &u[0]);
	assert_engine_state(b, &m, "EUR/USD");

	/* Invalid names are refused. */
	memset(&history[0], 0, sizeof history[0]);
	strcpy(history[0].symbol, "BAD NAME");
	assert_int_equal(engine_restore_symbol(b, &history[0]), -1);
	engine_destroy(a);
	engine_destroy(b);
}

static void
test_stale_seq_and_invalid_symbol_rejected(void **state)
{
	struct engine *e = engine_new(NULL);
	struct engine_stats st;
	struct symbol_state s;
	struct tick t;

	t = tick_make("AAPL", 1);
	tick_set(&t, FIELD_BID, dec("1.00"));
	t.seq = 5;
	assert_int_equal(engine_apply_tick(e, &t), 5);
	t.ts = 2;
	tick_set(&t, FIELD_BID, dec("2.00"));
	assert_int_equal(engine_apply_tick(e, &t), 0); /* same seq */
	t.seq = 3;
	assert_int_equal(engine_apply_tick(e, &t), 0); /* older */
	assert_int_equal(engine_get_state(e, "AAPL", &s), 0);
	assert_int_equal(s.seq, 5);
	assert_int_equal(s.ts, 1);
	assert_decimal_text(s.value[FIELD_BID], "1.00");
	t.seq = 0;
	assert_int_equal(engine_apply_tick(e, &t), 6);
	t.seq = 100;
	assert_int_equal(engine_apply_tick(e, &t), 100);

	t = tick_make("BAD SYM", 1);
	assert_int_equal(engine_apply_tick(e, &t), 0);
	t = tick_make("", 1);
	assert_int_equal(engine_apply_tick(e, &t), 0);
	t = tick_make("A", 1);
	memset(t.symbol, 'A', sizeof t.symbol); /* no terminator */
	assert_int_equal(engine_apply_tick(e, &t), 0);
	assert_int_equal(engine_get_state(e, "BAD SYM", &s), -1);

	engine_get_stats(e, &st);
	assert_int_equal(st.ticks_applied, 3);
	assert_int_equal(st.ticks_rejected, 5);
	assert_int_equal(st.symbols, 1);
	engine_destroy(e);
}

static void
test_clients_in_step_share_one_encoding(void **state)
{
	enum { NC = 5 };
	struct engine *e = engine_new(NULL);
	struct engine_client *c[NC];
	struct engine_stats st;
	struct update u[2];
	int ready[NC] = {0}, i;

	for (i = 0; i < NC; i++) {
		c[i] = engine_client_create(e, &ready[i]);
		engine_client_subscribe(c[i], "AAPL", false, 0);
	}
	apply_quote(e, "AAPL", 1, "1", "2");
	engine_flush(e);
	for (i = 0; i < NC; i++)
		assert_int_equal(drain(c[i], 0, u, 2), 1);
	apply_quote(e, "AAPL", 2, "1.5", "2");
	engine_flush(e);
	for (i = 0; i < NC; i++)
		assert_int_equal(drain(c[i], 0, u, 2), 1);
	engine_get_stats(e, &st);
	/* One snapshot and one delta encoded, the rest copied. */
	assert_int_equal(st.encodings, 2);
	assert_int_equal(st.encodings_shared, 2 * (NC - 1));
	assert_int_equal(st.updates_sent, 2 * NC);
	assert_int_equal(st.encodings + st.encodings_shared, st.updates_sent);
	assert_int_equal(st.clients, NC);
	assert_int_equal(st.subscriptions, NC);

	/* Destroying clients, pending or not, detaches them. */
	apply_quote(e, "AAPL", 3, "1.6", "2");
	engine_flush(e);
	engine_client_destroy(c[0]);
	engine_client_destroy(NULL);
	engine_get_stats(e, &st);
	assert_int_equal(st.clients, NC - 1);
	assert_int_equal(st.subscriptions, NC - 1);
	engine_destroy(e);
	engine_destroy(NULL);
}

static void
count_symbol(const struct symbol_state *s, void *ctx)
{
	(*(int *)ctx)++;
}

/* An update's field is present with the text want. */
static void
assert_update_field(const struct update *u, enum tick_field f, const char *want)
{
	assert_true((u->present >> f) & 1u);
	assert_decimal_text(u->value[f], want);
}

/*
 * engine_clear (a new epoch): every state goes, whatever the clients stood
 * at (in step, behind with a merged frame owed, catching up after a resume,
 * half-way through a frame of several chunks), nothing of the old life is
 * sent after it, and each subscribed symbol comes back as a snapshot of the
 * new life only. Subscriptions, "*" included, stay.
 */
static void
test_clear_drops_every_state_and_what_clients_are_owed(void **state)
{
	enum { NSYM = 1200 };
	struct engine *e = engine_new(NULL);
	struct engine_client *step, *slow, *resumed, *wide[2];
	struct engine_stats before, after;
	struct symbol_state s;
	struct update *u = malloc(MAX_UPDATES * sizeof *u);
	int ready_step = 0, ready_slow = 0, ready_resumed = 0,
	    ready_wide[2] = {0};
	int n, i;
	struct tick t;
	char name[16];

	assert_non_null(u);
	step = engine_client_create(e, &ready_step);
	slow = engine_client_create(e, &ready_slow);
	resumed = engine_client_create(e, &ready_resumed);
	assert_int_equal(engine_client_subscribe(step, "AAPL", false, 0), 0);
	assert_int_equal(engine_client_subscribe(step, "NODATA", false, 0), 0);
	assert_int_equal(engine_client_subscribe(slow, "AAPL", false, 0), 0);
	for (i = 0; i < 2; i++) {
		wide[i] = engine_client_create(e, &ready_wide[i]);
		assert_int_equal(
		        engine_client_subscribe_all(wide[i], NULL, NULL), 0);
	}
	/* Enough symbols that a frame of all of them takes several chunks. */
	for (i = 0; i < NSYM; i++) {
		snprintf(name, sizeof name, "S%04d", i);
		apply_trade(e, name, 1, "10.5", "100");
	}
	apply_trade(e, "AAPL", 1, "189.30", "100");
	apply_quote(e, "AAPL", 2, "189.25", "189.35");
	engine_flush(e);
	assert_int_equal(drain(step, 0, u, MAX_UPDATES), 1);
	assert_int_equal(drain(slow, 0, u, MAX_UPDATES), 1);
	assert_int_equal(drain(wide[1], 0, u, MAX_UPDATES), NSYM + 1);
	for (i = 0; i < 3; i++) {
		apply_quote(e, "AAPL", 3 + i, i % 2 ? "189.26" : "189.27",
		            "189.35");
		engine_flush(e);
		/* slow takes nothing: it falls behind by rounds. */
		assert_int_equal(drain(step, 0, u, MAX_UPDATES), 1);
	}
	/* resumed says it holds seq 2: it catches up on its own. */
	assert_int_equal(engine_client_subscribe(resumed, "AAPL", true, 2), 0);
	/* wide[0] takes the first chunk of its frame and no more. */
	n = (int)write_updates(wide[0], 0, u, MAX_UPDATES);
	assert_true(n > 0 && n < NSYM + 1);
	for (i = 0; i < NSYM; i++) {
		snprintf(name, sizeof name, "S%04d", i);
		apply_trade(e, name, 2, "10.75", "5");
	}
	engine_flush(e);
	assert_true(engine_client_has_pending(slow));
	assert_true(engine_client_has_pending(resumed));
	assert_true(engine_client_has_pending(wide[0]));
	assert_true(engine_client_has_pending(wide[1]));
	/* Ticks applied and not flushed yet go too. */
	apply_quote(e, "AAPL", 9, "1", "2");
	engine_get_stats(e, &before);
	assert_int_equal(before.symbols, NSYM + 1);

	engine_clear(e);

	engine_get_stats(e, &after);
	assert_int_equal(engine_symbol_count(e), 0);
	assert_int_equal(after.symbols, 0);
	assert_int_equal(after.clients, 5);
	assert_int_equal(after.subscriptions, before.subscriptions);
	assert_int_equal(engine_get_state(e, "AAPL", &s), -1);
	assert_int_equal(engine_get_state(e, "S0000", &s), -1);
	n = 0;
	engine_foreach_symbol(e, count_symbol, &n);
	assert_int_equal(n, 0);
	assert_int_equal(engine_client_subscription_count(step), 2);
	assert_true(engine_client_is_subscribed(step, "NODATA"));
	assert_true(engine_client_is_subscribed(wide[0], "*"));
	engine_flush(e);
	assert_false(engine_client_has_pending(step));
	assert_false(engine_client_has_pending(slow));
	assert_false(engine_client_has_pending(resumed));
	assert_false(engine_client_has_pending(wide[0]));
	assert_false(engine_client_has_pending(wide[1]));
	assert_int_equal(drain(slow, 0, u, MAX_UPDATES), 0);
	assert_int_equal(drain(resumed, 0, u, MAX_UPDATES), 0);
	assert_int_equal(drain(wide[0], 0, u, MAX_UPDATES), 0);
	assert_int_equal(drain(wide[1], 0, u, MAX_UPDATES), 0);

	/* The new life: seqs start again, from the engine or from a follower
	 * (a seq lower than the old life's is taken), and every client gets
	 * a snapshot with the new values alone. */
	assert_int_equal(apply_quote(e, "AAPL", 100, "50.5", "50.6"), 1);
	t = tick_make("S0007", 100);
	tick_set(&t, FIELD_BID, dec("7.25"));
	t.seq = 1;
	assert_int_equal(engine_apply_tick(e, &t), 1);
	assert_int_equal(apply_quote(e, "NEW", 100, "3", "4"), 1);
	engine_flush(e);
	assert_int_equal(engine_symbol_count(e), 3);
	assert_int_equal(engine_get_state(e, "AAPL", &s), 0);
	assert_int_equal(s.seq, 1);
	assert_false((s.present >> FIELD_LAST) & 1u);
	assert_false((s.present >> FIELD_TRADES) & 1u);
	assert_int_equal(s.changed_seq[FIELD_BID], 1);

	assert_int_equal(drain(step, 0, u, MAX_UPDATES), 1);
	assert_false(u[0].is_delta);
	assert_string_equal(u[0].symbol, "AAPL");
	assert_int_equal(u[0].seq, 1);
	assert_int_equal(u[0].present, (1u << FIELD_BID) | (1u << FIELD_ASK));
	assert_update_field(&u[0], FIELD_BID, "50.5");
	assert_int_equal(drain(slow, 0, u, MAX_UPDATES), 1);
	assert_false(u[0].is_delta);
	assert_int_equal(u[0].seq, 1);
	assert_int_equal(drain(resumed, 0, u, MAX_UPDATES), 1);
	assert_false(u[0].is_delta);
	assert_int_equal(u[0].seq, 1);
	for (i = 0; i < 2; i++) {
		int k;

		n = (int)drain(wide[i], 0, u, MAX_UPDATES);
		assert_int_equal(n, 3);
		for (k = 0; k < n; k++) {
			assert_false(u[k].is_delta);
			assert_int_equal(u[k].seq, 1);
			if (!strcmp(u[k].symbol, "S0007")) {
				assert_int_equal(u[k].present, 1u << FIELD_BID);
				assert_update_field(&u[k], FIELD_BID, "7.25");
			}
		}
	}
	/* And deltas from there on. */
	assert_int_equal(apply_quote(e, "AAPL", 101, "50.55", "50.6"), 2);
	engine_flush(e);
	assert_int_equal(drain(step, 0, u, MAX_UPDATES), 1);
	assert_true(u[0].is_delta);
	assert_int_equal(u[0].from, 1);
	assert_int_equal(u[0].present, 1u << FIELD_BID);
	free(u);
	engine_destroy(e);
}

/* engine_clear keeps the engine whole: an empty engine stays empty, a
 * restore after it works, and symbols nobody subscribed to are gone (they
 * come back with their next tick, from seq 1). */
static void
test_clear_then_restore_and_clear_of_an_empty_engine(void **state)
{
	struct engine *e = engine_new(NULL);
	struct engine_client *c;
	struct symbol_state s;
	struct update u[4];
	int ready = 0;

	engine_clear(e);
	assert_int_equal(engine_symbol_count(e), 0);
	apply_trade(e, "AAPL", 1, "10", "5");
	apply_trade(e, "AAPL", 2, "11", "5");
	assert_int_equal(engine_get_state(e, "AAPL", &s), 0);
	assert_int_equal(s.seq, 2);
	engine_clear(e);
	engine_clear(e);
	assert_int_equal(engine_get_state(e, "AAPL", &s), -1);

	c = engine_client_create(e, &ready);
	engine_client_subscribe(c, "AAPL", false, 0);
	assert_false(engine_client_has_pending(c));
	s.seq = 40;
	assert_int_equal(engine_restore_symbol(e, &s), 0);
	engine_flush(e);
	assert_int_equal(drain(c, 0, u, 4), 1);
	assert_false(u[0].is_delta);
	assert_int_equal(u[0].seq, 40);
	assert_update_field(&u[0], FIELD_LAST, "11");
	assert_update_field(&u[0], FIELD_VOLUME, "10");
	assert_int_equal(apply_trade(e, "AAPL", 3, "12", "1"), 41);
	engine_destroy(e);
}

/* Symbols with no data yet: a placeholder each, for as long as some client
 * names it, unsubscribed or gone. */
static void
test_placeholders_live_as_long_as_their_last_subscriber(void **state)
{
	static const char names[3][TICK_SYMBOL_MAX + 1] = {"GHOST1", "GHOST2",
	                                                   "GHOST3"};
	struct engine *e = engine_new(NULL);
	struct engine_client *a, *b;
	struct engine_stats st;
	int ra = 0, rb = 0;

	a = engine_client_create(e, &ra);
	b = engine_client_create(e, &rb);
	assert_int_equal(engine_client_subscribe_many(a, names, 3, NULL, NULL),
	                 0);
	assert_int_equal(engine_pending_count(e), 3);
	assert_int_equal(engine_client_pending_count(a), 3);
	assert_int_equal(engine_symbol_count(e), 0);
	/* Shared: one placeholder for two subscribers. */
	assert_int_equal(engine_client_subscribe(b, "GHOST1", false, 0), 0);
	assert_int_equal(engine_client_subscribe(b, "GHOST4", false, 0), 0);
	assert_int_equal(engine_pending_count(e), 4);
	assert_int_equal(engine_client_pending_count(b), 2);

	assert_int_equal(engine_client_unsubscribe(a, "GHOST2"), 0);
	assert_int_equal(engine_pending_count(e), 3);
	engine_client_destroy(a);
	assert_int_equal(engine_pending_count(e), 2); /* GHOST1 is b's too */
	/* A first tick makes a placeholder a symbol with data. */
	assert_int_equal(apply_trade(e, "GHOST1", 1, "1.5", "10"), 1);
	engine_flush(e);
	assert_int_equal(engine_pending_count(e), 1);
	assert_int_equal(engine_client_pending_count(b), 1);
	assert_int_equal(engine_symbol_count(e), 1);
	engine_client_destroy(b);
	engine_get_stats(e, &st);
	assert_int_equal(st.pending, 0);
	assert_int_equal(st.symbols, 1); /* data stays */
	assert_true(st.bytes_freed >= 3 * sizeof(struct symbol));
	engine_destroy(e);
}

/* A client that subscribed to 20,000 made-up names and left leaves nothing:
 * no placeholder, and a symbol table of the size it started at. */
static void
test_made_up_names_leave_nothing_behind(void **state)
{
	static char names[1000][TICK_SYMBOL_MAX + 1];
	struct engine *e = engine_new(NULL);
	struct engine_client *c = engine_client_create(e, NULL);
	size_t buckets = e->bucket_mask + 1, k, i;
	struct engine_stats st;

	for (k = 0; k < 20; k++) {
		for (i = 0; i < 1000; i++)
			snprintf(names[i], sizeof names[i], "P0_%zu_%zu", k, i);
		assert_int_equal(
		        engine_client_subscribe_many(
		                c, (const char(*)[TICK_SYMBOL_MAX + 1]) names,
		                1000, NULL, NULL),
		        0);
	}
	assert_int_equal(engine_pending_count(e), 20000);
	assert_int_equal(engine_client_pending_count(c), 20000);
	assert_true(e->bucket_mask + 1 >= 16384);
	engine_client_destroy(c);
	engine_get_stats(e, &st);
	assert_int_equal(st.pending, 0);
	assert_int_equal(st.subscriptions, 0);
	assert_int_equal(st.groups, 0);
	assert_int_equal(e->bucket_mask + 1, buckets);
	assert_true(st.bytes_freed >= 20000 * sizeof(struct symbol));
	engine_destroy(e);
}

static void
test_subscribe_cost_counts_what_is_new(void **state)
{
	static const char mine[2][TICK_SYMBOL_MAX + 1] = {"AAPL", "MINE"};
	static const char ask[7][TICK_SYMBOL_MAX + 1] = {
	        "AAPL", "MINE", "IPO", "NEW1", "NEW2", "*", "MSFT"};
	struct engine *e = engine_new(NULL);
	struct engine_client *a, *b, *w;
	struct engine_subscribe_cost cost;

	apply_quote(e, "AAPL", 1, "1", "2");
	apply_quote(e, "MSFT", 1, "3", "4");
	engine_flush(e);
	a = engine_client_create(e, NULL);
	b = engine_client_create(e, NULL);
	w = engine_client_create(e, NULL);
	assert_int_equal(engine_client_subscribe(b, "IPO", false, 0), 0);
	assert_int_equal(engine_client_subscribe_many(a, mine, 2, NULL, NULL),
	                 0);
	assert_int_equal(engine_client_pending_count(a), 1);
	/* Held already: nothing; IPO: a placeholder of b's, new to a; NEW1,
	 * NEW2: new placeholders; "*": new; MSFT: has data. */
	engine_client_subscribe_cost(a, ask, 7, &cost);
	assert_int_equal(cost.added, 5);
	assert_int_equal(cost.pending, 3);
	assert_int_equal(cost.placeholders, 2);
	assert_int_equal(engine_pending_count(e), 2); /* nothing changed */
	/* A client with "*" holds every symbol with data, no placeholder. */
	assert_int_equal(engine_client_subscribe_all(w, NULL, NULL), 0);
	engine_client_subscribe_cost(w, ask, 7, &cost);
	assert_int_equal(cost.added, 4);
	assert_int_equal(cost.pending, 4);
	assert_int_equal(cost.placeholders, 2);
	engine_client_subscribe_cost(w, ask + 5, 2, &cost);
	assert_int_equal(cost.added, 0);
	engine_destroy(e);
}

/* A feed that invents symbols meets engine_set_max_symbols(): ticks of new
 * symbols beyond it are refused and counted, leaving no trace; the symbols
 * that have data go on, restores are not bounded, and a clear makes room. */
static void
test_max_symbols_refuses_only_new_symbols(void **state)
{
	struct engine *e = engine_new(NULL);
	struct engine_client *c = engine_client_create(e, NULL);
	struct tick t = tick_quote("NEWCO", 3, dec("1"), dec("2"));
	struct tick known = tick_quote("AAPL", 3, dec("1"), dec("2"));
	struct tick bad = tick_quote("NO SPACES", 3, dec("1"), dec("2"));
	struct symbol_state s;
	struct engine_stats st;
	struct update u[2];

	engine_set_max_symbols(e, 2);
	assert_false(engine_refuses_new_symbol(e, &t));
	assert_int_equal(apply_quote(e, "AAPL", 1, "1", "2"), 1);
	assert_int_equal(apply_quote(e, "MSFT", 1, "1", "2"), 1);
	assert_true(engine_refuses_new_symbol(e, &t));
	assert_false(engine_refuses_new_symbol(e, &known));
	assert_false(engine_refuses_new_symbol(e, &bad));
	assert_int_equal(engine_apply_tick(e, &t), 0);
	assert_int_equal(engine_apply_tick(e, &bad), 0);
	engine_get_stats(e, &st);
	assert_int_equal(st.symbols_refused, 1);
	assert_int_equal(st.ticks_rejected, 2);
	assert_int_equal(st.symbols, 2);
	assert_int_equal(st.pending, 0); /* no placeholder for NEWCO */
	assert_int_equal(engine_get_state(e, "NEWCO", &s), -1);
	/* A subscriber's placeholder gets no data beyond the bound either. */
	assert_int_equal(engine_client_subscribe(c, "LATER", false, 0), 0);
	assert_int_equal(apply_quote(e, "LATER", 2, "1", "2"), 0);
	engine_flush(e);
	assert_int_equal(drain(c, 0, u, 2), 0);
	assert_int_equal(engine_pending_count(e), 1);
	assert_int_equal(apply_quote(e, "AAPL", 2, "1.5", "2"), 2);
	/* What a store gives back is not bounded. */
	memset(&s, 0, sizeof s);
	snprintf(s.symbol, sizeof s.symbol, "OLD");
	s.seq = 5;
	assert_int_equal(engine_restore_symbol(e, &s), 0);
	assert_int_equal(engine_symbol_count(e), 3);
	/* A new life of the data has room again. */
	engine_clear(e);
	assert_int_equal(apply_quote(e, "LATER", 4, "1", "2"), 1);
	engine_set_max_symbols(e, 0);
	assert_int_equal(apply_quote(e, "NEWCO", 4, "1", "2"), 1);
	assert_int_equal(apply_quote(e, "NEWER", 4, "1", "2"), 1);
	assert_int_equal(apply_quote(e, "NEWEST", 4, "1", "2"), 1);
	engine_destroy(e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(
	                test_final_state_equals_last_value_of_every_field),
	        cmocka_unit_test(
	                test_delta_from_any_earlier_seq_rebuilds_current_state),
	        cmocka_unit_test(
	                test_random_conflation_keeps_clients_equal_to_server),
	        cmocka_unit_test(test_delta_across_sessions_takes_fields_away),
	        cmocka_unit_test(test_session_boundary_delta_on_the_wire),
	        cmocka_unit_test(
	                test_advance_across_a_session_keeps_clients_in_place),
	        cmocka_unit_test(test_derived_open_high_low_trades_volume),
	        cmocka_unit_test(test_decimals_round_trip_exactly),
	        cmocka_unit_test(
	                test_max_hz_holds_back_then_releases_one_conflated_update),
	        cmocka_unit_test(
	                test_max_hz_batch_larger_than_a_frame_sends_every_symbol_once),
	        cmocka_unit_test(
	                test_wildcard_picks_up_later_symbols_and_respects_filter),
	        cmocka_unit_test(test_resume_same_seq_sends_nothing),
	        cmocka_unit_test(test_resume_older_seq_sends_one_delta_from_it),
	        cmocka_unit_test(test_resume_none_or_newer_seq_sends_snapshot),
	        cmocka_unit_test(
	                test_subscribe_before_data_gets_snapshot_with_first_tick),
	        cmocka_unit_test(test_unsubscribe_sends_nothing_more),
	        cmocka_unit_test(test_slow_client_gets_one_merged_delta),
	        cmocka_unit_test(test_client_ready_called_once_per_transition),
	        cmocka_unit_test(
	                test_batch_frame_is_array_when_several_updates_due),
	        cmocka_unit_test(test_frame_never_exceeds_cap),
	        cmocka_unit_test(
	                test_restore_symbol_then_delta_and_snapshot_are_correct),
	        cmocka_unit_test(test_stale_seq_and_invalid_symbol_rejected),
	        cmocka_unit_test(test_clients_in_step_share_one_encoding),
	        cmocka_unit_test(
	                test_clear_drops_every_state_and_what_clients_are_owed),
	        cmocka_unit_test(
	                test_clear_then_restore_and_clear_of_an_empty_engine),
	        cmocka_unit_test(
	                test_placeholders_live_as_long_as_their_last_subscriber),
	        cmocka_unit_test(test_made_up_names_leave_nothing_behind),
	        cmocka_unit_test(test_subscribe_cost_counts_what_is_new),
	        cmocka_unit_test(test_max_symbols_refuses_only_new_symbols),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

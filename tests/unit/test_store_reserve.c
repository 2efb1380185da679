/*
 * Unit tests for the store's seq reservations (publisher/store_reserve.c;
 * store.h, "Seqs"), against real SQLite files in a fresh temporary
 * directory per test: reservations committed and granted back in order,
 * the restart past them after a stop that was not clean (every field
 * changed there), the trim of a clean stop, a new epoch when a field
 * clients may have seen was never stored, an epoch of the pipeline's made
 * durable with its reservations, and an edge's store, which reserves
 * nothing, left as it is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "engine.h"
#include "log.h"
#include "store.h"

#include "support/asserts.h"
#include "support/ticks.h"
#include "support/timing.h"
#include "support/tmpdir.h"

#define BIT(f)       ((uint16_t)(1u << (f)))
#define QUOTE_FIELDS (BIT(FIELD_BID) | BIT(FIELD_ASK))
#define TRADE_FIELDS                                                           \
	(BIT(FIELD_LAST) | BIT(FIELD_LAST_SIZE) | BIT(FIELD_VOLUME) |          \
	 BIT(FIELD_OPEN) | BIT(FIELD_HIGH) | BIT(FIELD_LOW) |                  \
	 BIT(FIELD_TRADES))

struct fixture {
	char dir[256];
	char path[512];
};

static char err[512];

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	assert_int_equal(tmpdir_make(f->dir, sizeof f->dir, "test_resv"), 0);
	snprintf(f->path, sizeof f->path, "%s/ticks.db", f->dir);
	log_set_level(LOG_ERROR); /* a restart past reservations warns */
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static struct store *
open_store(const struct fixture *f, const char *edge_epoch, bool start)
{
	struct store_options o;
	struct store *s;

	memset(&o, 0, sizeof o);
	o.path = f->path;
	o.commit_ms = 10;
	o.epoch = edge_epoch;
	s = store_open(&o, err, sizeof err);
	if (!s)
		fail_msg("store_open: %s", err);
	if (start && store_start(s, err, sizeof err))
		fail_msg("store_start: %s", err);
	return s;
}

/* As the server does: the engine numbers the ticks, the store takes them. */
static void
feed(struct engine *e, struct store *s, struct tick *t, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		t[i].seq = engine_apply_tick(e, &t[i]);
		assert_true(t[i].seq > 0);
	}
	assert_int_equal(store_append(s, t, n), 0);
}

static void
wait_written(struct store *s, uint64_t ticks)
{
	struct store_stats st;
	int i;

	for (i = 0; i < 5000; i++) {
		store_get_stats(s, &st);
		if (st.ticks_written >= ticks && st.queued == 0)
			return;
		timing_sleep_ms(2);
	}
	fail_msg("store wrote %llu of %llu ticks (%s)",
	         (unsigned long long)st.ticks_written,
	         (unsigned long long)ticks, st.last_error);
}

/* What store_reserved() reported, step by step. */
struct grants {
	int steps;
	uint32_t gen[16];
	char epoch[16][32];
	size_t n[16];
	struct sink_reservation r[16][8];
};

static void
on_grant(const struct sink_grant *g, void *ctx)
{
	struct grants *out = ctx;
	int k = out->steps++;

	assert_true(k < 16);
	out->gen[k] = g->gen;
	snprintf(out->epoch[k], sizeof out->epoch[k], "%s",
	         g->epoch ? g->epoch : "");
	out->n[k] = g->n;
	if (g->n)
		memcpy(out->r[k], g->r, (g->n < 8 ? g->n : 8) * sizeof *g->r);
}

/* Collect grants until there are `steps` of them. */
static void
wait_grants(struct store *s, struct grants *g, int steps)
{
	int i;

	for (i = 0; i < 5000 && g->steps < steps; i++) {
		store_reserved(s, on_grant, g);
		if (g->steps < steps)
			timing_sleep_ms(2);
	}
	assert_int_equal(g->steps, steps);
}

static struct sink_reservation
resv(const char *symbol, uint64_t seq, uint16_t fields, bool final)
{
	struct sink_reservation r;

	memset(&r, 0, sizeof r);
	snprintf(r.symbol, sizeof r.symbol, "%s", symbol);
	r.seq = seq;
	r.fields = fields;
	r.final = final;
	return r;
}

static int64_t
sql_int(const char *path, const char *text)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, text, -1, &st, NULL),
	                 SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* The state store_load_state() gives for one symbol. */
struct found {
	const char *symbol;
	bool seen;
	struct symbol_state st;
};

static void
find_state(const struct symbol_state *st, void *ctx)
{
	struct found *f = ctx;

	if (strcmp(st->symbol, f->symbol))
		return;
	f->seen = true;
	f->st = *st;
}

static struct symbol_state
loaded(struct store *s, const char *symbol)
{
	struct found f;

	memset(&f, 0, sizeof f);
	f.symbol = symbol;

	assert_int_equal(store_load_state(s, find_state, &f), 0);
	if (!f.seen)
		fail_msg("no state for %s", symbol);
	return f.st;
}

/* Three quotes of AAPL stored (seqs 1..3); returns the engine's state. */
static struct symbol_state
store_three_quotes(struct store *s, struct engine *e)
{
	struct tick t[3] = {
	        tick_quote("AAPL", 10, dec_raw(18930, 2), dec_raw(18935, 2)),
	        tick_quote("AAPL", 20, dec_raw(18931, 2), dec_raw(18936, 2)),
	        tick_quote("AAPL", 30, dec_raw(18932, 2), dec_raw(18935, 2))};
	struct symbol_state st;

	feed(e, s, t, 3);
	wait_written(s, 3);
	assert_int_equal(engine_get_state(e, "AAPL", &st), 0);
	assert_int_equal(st.seq, 3);
	return st;
}

/* ------------------------------------------------------------- tests */

static void
test_reservations_are_granted_in_order(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f, NULL, true);
	struct sink_reservation a[2] = {resv("AAPL", 100, QUOTE_FIELDS, false),
	                                resv("MSFT", 50, QUOTE_FIELDS, false)};
	struct sink_reservation b = resv("AAPL", 300, QUOTE_FIELDS, false);
	struct grants g = {0};

	/* A new database reports no reservation, as gen 0. */
	wait_grants(s, &g, 1);
	assert_int_equal(g.gen[0], 0);
	assert_int_equal(g.n[0], 0);

	assert_int_equal(store_reserve(s, 1, NULL, a, 2), 0);
	assert_int_equal(store_reserve(s, 2, NULL, &b, 1), 0);
	wait_grants(s, &g, 3);
	assert_int_equal(g.gen[1], 1);
	assert_int_equal(g.n[1], 2);
	assert_string_equal(g.r[1][0].symbol, "AAPL");
	assert_int_equal(g.r[1][0].seq, 100);
	assert_string_equal(g.r[1][1].symbol, "MSFT");
	assert_int_equal(g.r[1][1].seq, 50);
	assert_int_equal(g.gen[2], 2);
	assert_int_equal(g.r[2][0].seq, 300);
	assert_string_equal(g.epoch[1], "");
	assert_int_equal(store_close(s), 0);

	/* Durable: in the table, symbols without a tick included. */
	assert_int_equal(sql_int(f->path, "SELECT r.seq_reserved FROM "
	                                  "reservations r JOIN symbols s ON "
	                                  "s.id = r.symbol_id WHERE s.name = "
	                                  "'AAPL'"),
	                 300);
	assert_int_equal(sql_int(f->path, "SELECT r.fields FROM reservations "
	                                  "r JOIN symbols s ON s.id = "
	                                  "r.symbol_id WHERE s.name = 'MSFT'"),
	                 QUOTE_FIELDS);
}

static void
test_unclean_stop_restarts_past_the_reservation(void **state)
{
	struct fixture *f = *state;
	struct engine *e = new_engine();
	struct store *s = open_store(f, NULL, true);
	struct sink_reservation r = resv("AAPL", 1000, QUOTE_FIELDS, false);
	struct symbol_state served, back;
	struct grants g = {0};
	char epoch[64];
	int k;

	snprintf(epoch, sizeof epoch, "%s", store_epoch(s));
	served = store_three_quotes(s, e);
	assert_int_equal(store_reserve(s, 1, NULL, &r, 1), 0);
	wait_grants(s, &g, 2);
	/* No trim: as after kill -9, seqs up to 1000 may have been seen. */
	store_close(s);

	s = open_store(f, NULL, false);
	assert_string_equal(store_epoch(s), epoch);
	back = loaded(s, "AAPL");
	assert_int_equal(back.seq, 1001);
	assert_int_equal(back.ts, served.ts);
	assert_int_equal(back.present, served.present);
	for (k = 0; k < STATE_FIELD_COUNT; k++) {
		if (!(served.present & BIT(k)))
			continue;
		assert_decimal_exact(back.value[k], served.value[k]);
		/* A delta from any seq a client holds carries it. */
		assert_int_equal(back.changed_seq[k], 1001);
	}
	/* What it found, granted as gen 0: the pipeline must ask again
	 * before it numbers AAPL's next tick. */
	memset(&g, 0, sizeof g);
	assert_int_equal(store_start(s, err, sizeof err), 0);
	wait_grants(s, &g, 1);
	assert_int_equal(g.gen[0], 0);
	assert_int_equal(g.n[0], 1);
	assert_int_equal(g.r[0][0].seq, 1000);
	assert_int_equal(g.r[0][0].fields, QUOTE_FIELDS);
	/* The stored ticks are what they were. */
	assert_int_equal(sql_int(f->path, "SELECT max(seq) FROM ticks"), 3);
	store_close(s);
	engine_destroy(e);
}

static void
test_clean_stop_trims_to_the_last_seq(void **state)
{
	struct fixture *f = *state;
	struct engine *e = new_engine();
	struct store *s = open_store(f, NULL, true);
	struct sink_reservation r = resv("AAPL", 1000, QUOTE_FIELDS, false);
	struct symbol_state served, back;
	struct grants g = {0};

	served = store_three_quotes(s, e);
	assert_int_equal(store_reserve(s, 1, NULL, &r, 1), 0);
	r = resv("AAPL", 3, served.present, true);
	assert_int_equal(store_reserve(s, 1, NULL, &r, 1), 0);
	assert_int_equal(store_close(s), 0);
	assert_int_equal(sql_int(f->path, "SELECT seq_reserved FROM "
	                                  "reservations"),
	                 3);

	s = open_store(f, NULL, false);
	back = loaded(s, "AAPL");
	assert_true(states_equal(&back, &served));
	store_close(s);

	/* After an unclean stop the restart goes past; a clean stop then
	 * writes that state, so the next restart goes on from it, not past
	 * it again. */
	s = open_store(f, NULL, true);
	r = resv("AAPL", 5000, served.present, false);
	assert_int_equal(store_reserve(s, 1, NULL, &r, 1), 0);
	wait_grants(s, &g, 2);
	store_close(s);
	s = open_store(f, NULL, false);
	back = loaded(s, "AAPL");
	assert_int_equal(back.seq, 5001);
	assert_int_equal(store_start(s, err, sizeof err), 0);
	r = resv("AAPL", 5001, back.present, true);
	assert_int_equal(store_reserve(s, 1, NULL, &r, 1), 0);
	assert_int_equal(store_close(s), 0);
	assert_int_equal(sql_int(f->path, "SELECT seq FROM state"), 5001);
	s = open_store(f, NULL, false);
	served = back;
	back = loaded(s, "AAPL");
	assert_true(states_equal(&back, &served));
	store_close(s);
	engine_destroy(e);
}

static void
test_a_field_never_stored_starts_a_new_epoch(void **state)
{
	struct fixture *f = *state;
	struct engine *e = new_engine();
	struct store *s = open_store(f, NULL, true);
	/* AAPL may have traded (clients saw `last`): the store has quotes
	 * only, and a delta cannot take `last` away from a client. */
	struct sink_reservation r =
	        resv("AAPL", 1000, QUOTE_FIELDS | TRADE_FIELDS, false);
	struct grants g = {0};
	char epoch[64];

	snprintf(epoch, sizeof epoch, "%s", store_epoch(s));
	store_three_quotes(s, e);
	assert_int_equal(store_reserve(s, 1, NULL, &r, 1), 0);
	wait_grants(s, &g, 2);
	store_close(s);

	s = open_store(f, NULL, false);
	assert_string_not_equal(store_epoch(s), epoch);
	assert_int_equal(strlen(store_epoch(s)), 16);
	store_close(s);
	/* Written: the new epoch is kept from then on. */
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM meta WHERE "
	                                  "epoch != (SELECT epoch FROM meta)"),
	                 0);
	s = open_store(f, NULL, false);
	assert_string_not_equal(store_epoch(s), epoch);
	store_close(s);
	engine_destroy(e);
}

static void
test_an_epoch_is_made_durable_with_its_reservations(void **state)
{
	struct fixture *f = *state;
	struct engine *e = new_engine();
	struct store *s = open_store(f, NULL, true);
	struct sink_reservation r[2] = {resv("AAPL", 500, QUOTE_FIELDS, false),
	                                resv("MSFT", 70, 0, false)};
	struct grants g = {0};

	store_three_quotes(s, e);
	assert_int_equal(store_reserve(s, 7, "0123456789abcdef", r, 2), 0);
	wait_grants(s, &g, 2);
	assert_int_equal(g.gen[1], 7);
	assert_string_equal(g.epoch[1], "0123456789abcdef");
	assert_int_equal(g.n[1], 2);
	assert_string_equal(store_epoch(s), "0123456789abcdef");
	/* Too long for an epoch: refused, nothing asked. */
	assert_int_equal(store_reserve(s, 8, "0123456789abcdef0", r, 1), -1);
	store_close(s);

	/* A crash after it: the epoch stays, AAPL goes on past 500, and
	 * MSFT, which never had a field, past 70. */
	s = open_store(f, NULL, false);
	assert_string_equal(store_epoch(s), "0123456789abcdef");
	assert_int_equal(loaded(s, "AAPL").seq, 501);
	assert_int_equal(loaded(s, "MSFT").seq, 71);
	assert_int_equal(loaded(s, "MSFT").present, 0);
	store_close(s);
	engine_destroy(e);
}

static void
test_an_edge_store_reserves_nothing(void **state)
{
	struct fixture *f = *state;
	struct engine *e = new_engine();
	struct store *s = open_store(f, NULL, true);
	struct sink_reservation r = resv("AAPL", 1000, QUOTE_FIELDS, false);
	struct symbol_state served, back;
	struct grants g = {0};
	char epoch[64];

	snprintf(epoch, sizeof epoch, "%s", store_epoch(s));
	served = store_three_quotes(s, e);
	assert_int_equal(store_reserve(s, 1, NULL, &r, 1), 0);
	wait_grants(s, &g, 2);
	store_close(s);

	/* Opened as an edge of that epoch: its seqs come from the ingest,
	 * so the state is the stored one, and nothing is granted. */
	s = open_store(f, epoch, false);
	back = loaded(s, "AAPL");
	assert_true(states_equal(&back, &served));
	assert_int_equal(store_start(s, err, sizeof err), 0);
	memset(&g, 0, sizeof g);
	timing_sleep_ms(30);
	store_reserved(s, on_grant, &g);
	assert_int_equal(g.steps, 0);
	store_close(s);
	s = open_store(f, epoch, false);
	back = loaded(s, "AAPL");
	assert_true(states_equal(&back, &served));
	store_close(s);
	engine_destroy(e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(
	                test_reservations_are_granted_in_order, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(
	                test_unclean_stop_restarts_past_the_reservation, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(
	                test_clean_stop_trims_to_the_last_seq, setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_a_field_never_stored_starts_a_new_epoch, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(
	                test_an_epoch_is_made_durable_with_its_reservations,
	                setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_an_edge_store_reserves_nothing, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

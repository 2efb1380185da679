/*
 * Unit tests for the store (publisher/store*.c), against real SQLite files in a
 * fresh temporary directory per test: the epoch, exact state and decimals
 * across restarts, what is refused and left untouched (newer schema, not a
 * database, a foreign database, a missing directory, a second writer),
 * migration from an older schema, reads (time ranges, last-N, every symbol,
 * several symbols, out-of-order timestamps), bars, retention by rows and by
 * age, back-pressure, recovery from a write failure, and a replay's
 * rewind (what it drops and keeps, the state it gives back, its order in
 * the queue).
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "../schema/schema_sql.h"
#include "engine.h"
#include "log.h"
#include "store.h"

#include "support/asserts.h"
#include "support/ticks.h"
#include "support/timing.h"
#include "support/tmpdir.h"

struct fixture {
	char dir[256];
	char path[512];
};

static char err[512];

/* ------------------------------------------------------------ helpers */

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	assert_int_equal(tmpdir_make(f->dir, sizeof f->dir, "test_store"), 0);
	snprintf(f->path, sizeof f->path, "%s/ticks.db", f->dir);
	log_set_level(LOG_ERROR); /* the failure tests log warnings */
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
open_store(const struct fixture *f, const struct store_options *extra)
{
	struct store_options o;
	struct store *s;

	if (extra)
		o = *extra;
	else
		memset(&o, 0, sizeof o);
	o.path = f->path;
	if (!o.commit_ms)
		o.commit_ms = 10;
	s = store_open(&o, err, sizeof err);
	if (!s)
		fail_msg("store_open: %s", err);
	if (store_start(s, err, sizeof err))
		fail_msg("store_start: %s", err);
	return s;
}

/* As the server does: apply to its engine (which assigns the seq), then
 * hand the tick to the store. */
static void
feed(struct engine *e, struct store *s, struct tick *t, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		t[i].seq = engine_apply_tick(e, &t[i]);
		assert_true(t[i].seq > 0);
	}
	while (store_append_space(s) < n)
		timing_sleep_ms(1);
	assert_int_equal(store_append(s, t, n), 0);
}

/* Wait until the store has committed everything queued. */
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
	fail_msg("store wrote %llu of %llu ticks (last error: %s)",
	         (unsigned long long)st.ticks_written,
	         (unsigned long long)ticks, st.last_error);
}

struct collected {
	struct tick *v;
	size_t n, cap;
	size_t stop_after; /* 0 = never */
};

static int
collect(const struct tick *t, void *ctx)
{
	struct collected *c = ctx;

	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->v = realloc(c->v, c->cap * sizeof *c->v);
		assert_non_null(c->v);
	}
	c->v[c->n++] = *t;
	return c->stop_after && c->n >= c->stop_after;
}

static struct collected
read_ticks(struct store_reader *r, const char *const *symbols, size_t n,
           int64_t from, int64_t to, uint32_t last_n)
{
	struct collected c = {0};

	if (store_read_ticks(r, symbols, n, from, to, last_n, collect, &c, err,
	                     sizeof err))
		fail_msg("store_read_ticks: %s", err);
	return c;
}

static struct store_reader *
open_reader(const struct fixture *f)
{
	struct store_reader *r = store_reader_open(f->path, err, sizeof err);

	if (!r)
		fail_msg("store_reader_open: %s", err);
	return r;
}

/* The bytes of a file, to show it was not touched. */
static char *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	*len = (size_t)n;
	return buf;
}

static bool
exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static void
sql(const char *path, const char *text)
{
	sqlite3 *db;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, text, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", text, msg);
	sqlite3_close(db);
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

static const char *
sql_text(const char *path, const char *text)
{
	static char out[256];
	sqlite3 *db;
	sqlite3_stmt *st;

	out[0] = '\0';
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, text, -1, &st, NULL),
	                 SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(out, sizeof out, "%s",
		         (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return out;
}

/* ------------------------------------------------------------- tests */

static void
test_epoch_kept(void **state)
{
	struct fixture *f = *state;
	char epoch[64];
	struct store *s;
	size_t i;

	s = open_store(f, NULL);
	snprintf(epoch, sizeof epoch, "%s", store_epoch(s));
	assert_int_equal(strlen(epoch), 16);
	for (i = 0; i < 16; i++)
		assert_non_null(strchr("0123456789abcdef", epoch[i]));
	store_close(s);

	s = open_store(f, NULL);
	assert_string_equal(store_epoch(s), epoch);
	store_close(s);

	/* A new database is a new life. */
	snprintf(f->path, sizeof f->path, "%s/other.db", f->dir);
	s = open_store(f, NULL);
	assert_string_not_equal(store_epoch(s), epoch);
	store_close(s);
}

/* A mix of quotes and trades over a few symbols, with decimals of every
 * kind, one symbol whose feed sends volume itself. */
static size_t
make_ticks(struct tick *t, size_t n, int64_t ts0)
{
	static const char *const syms[] = {"AAPL", "MSFT", "BRK.B", "ES:H4",
	                                   "X/Y-Z_1"};
	size_t i;

	for (i = 0; i < n; i++) {
		const char *sym = syms[i % 5];
		int64_t p = 18930 + (int64_t)((i * 7919) % 200) - 100;

		if (i % 3 == 0) {
			t[i] = tick_trade(
			        sym, ts0 + (int64_t)i * 1000, dec_raw(p, 2),
			        dec_raw((int64_t)(i % 17) * 100 + 5, 0));
			if (i % 5 == 4) /* X/Y-Z_1: the feed sends volume */
				tick_set(&t[i], FIELD_VOLUME,
				         dec_raw((int64_t)i * 1000 + 1, 3));
		} else {
			t[i] = tick_quote(sym, ts0 + (int64_t)i * 1000,
			                  dec_raw(p - 1, 2),
			                  dec_raw(p * 10 + 1, 3));
			tick_set(&t[i], FIELD_BID_SIZE,
			         dec_raw((int64_t)(i % 9) * 100, 0));
			if (i % 7 == 0)
				tick_set(&t[i], FIELD_ASK_SIZE,
				         dec_raw(123456789012345678ll, 18));
		}
	}
	return n;
}

struct state_check {
	struct engine *ref;
	size_t seen;
};

static void
check_state(const struct symbol_state *st, void *ctx)
{
	struct state_check *c = ctx;
	struct symbol_state want;

	assert_int_equal(engine_get_state(c->ref, st->symbol, &want), 0);
	assert_state_equal(st, &want);
	c->seen++;
}

static void
test_ticks_and_state_survive_restart(void **state)
{
	struct fixture *f = *state;
	enum { N = 5000 };
	static struct tick t[N];
	struct engine *ref = new_engine();
	struct state_check c = {ref, 0};
	struct store_reader *r;
	struct collected all;
	struct store *s;
	size_t i;

	make_ticks(t, N, 1700000000000000ll);
	s = open_store(f, NULL);
	for (i = 0; i < N; i += 250)
		feed(ref, s, t + i, 250);
	store_close(s); /* flushes */

	/* Restored state equals the state of an engine that applied the same
	 * ticks: seqs, values, change seqs, the volume flag. */
	{
		struct store_options o = {.path = f->path};

		s = store_open(&o, err, sizeof err);
		assert_non_null(s);
		assert_int_equal(store_load_state(s, check_state, &c), 0);
		assert_int_equal(c.seen, 5);
		store_close(s);
	}

	/* Every tick is there, with its seq, in order. */
	r = open_reader(f);
	all = read_ticks(r, NULL, 0, INT64_MIN, INT64_MAX, 0);
	assert_int_equal(all.n, N);
	for (i = 0; i < N; i++)
		assert_tick_equal(&all.v[i], &t[i]);
	free(all.v);
	store_reader_close(r);

	/* Seqs continue after a restart, and the stored state follows. */
	s = open_store(f, NULL);
	make_ticks(t, 500, 1700000100000000ll);
	feed(ref, s, t, 500);
	store_close(s);
	{
		struct store_options o = {.path = f->path};

		c.seen = 0;
		s = store_open(&o, err, sizeof err);
		assert_non_null(s);
		assert_int_equal(store_load_state(s, check_state, &c), 0);
		assert_int_equal(c.seen, 5);
		store_close(s);
	}
	r = open_reader(f);
	{
		const char *one[] = {"AAPL"};

		all = read_ticks(r, one, 1, INT64_MIN, INT64_MAX, 1);
		assert_int_equal(all.n, 1);
		assert_int_equal(all.v[0].seq, (N + 500) / 5);
		free(all.v);
	}
	store_reader_close(r);
	engine_destroy(ref);
}

static void
test_decimals_exact(void **state)
{
	struct fixture *f = *state;
	struct engine *e = new_engine();
	struct store_reader *r;
	struct collected got;
	struct tick t[3];
	struct store *s;

	/* Trailing zeros, 18 digits after the point, the int64 extremes,
	 * negative prices. */
	t[0] = tick_quote("DEC", 1, dec_raw(18930, 2), dec_raw(-1, 18));
	tick_set(&t[0], FIELD_BID_SIZE, dec_raw(INT64_MAX, 0));
	tick_set(&t[0], FIELD_ASK_SIZE, dec_raw(100000, 5));
	t[1] = tick_trade("DEC", 2, dec_raw(INT64_MIN, 18), dec_raw(0, 3));
	tick_set(&t[1], FIELD_VOLUME, dec_raw(999999999999999999ll, 9));
	t[2] = tick_quote("DEC", 3, dec_raw(-5, 1), dec_raw(0, 0));

	s = open_store(f, NULL);
	feed(e, s, t, 3);
	store_close(s);

	r = open_reader(f);
	got = read_ticks(r, NULL, 0, INT64_MIN, INT64_MAX, 0);
	assert_int_equal(got.n, 3);
	assert_tick_equal(&got.v[0], &t[0]);
	assert_tick_equal(&got.v[1], &t[1]);
	assert_tick_equal(&got.v[2], &t[2]);
	free(got.v);
	store_reader_close(r);

	/* The view a person reads shows the digits as they came. */
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM tick_view "
	                                  "WHERE bid = '189.30' AND ask = "
	                                  "'-0.000000000000000001' AND "
	                                  "ask_size = '1.00000'"),
	                 1);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM state_view "
	                                  "WHERE bid = '-0.5' AND volume = "
	                                  "'999999999.999999999' AND trades "
	                                  "= '1'"),
	                 1);
	engine_destroy(e);
}

static void
assert_refused_untouched(const char *path, const char *needle)
{
	struct store_options o = {.path = path};
	char wal[400];
	size_t before_len, after_len;
	char *before = slurp(path, &before_len), *after;
	struct store_reader *r;

	snprintf(wal, sizeof wal, "%s-wal", path);
	assert_null(store_open(&o, err, sizeof err));
	if (!strstr(err, needle))
		fail_msg("message '%s' lacks '%s'", err, needle);
	assert_non_null(strstr(err, path));
	r = store_reader_open(path, err, sizeof err);
	assert_null(r);
	if (!strstr(err, needle))
		fail_msg("reader message '%s' lacks '%s'", err, needle);
	after = slurp(path, &after_len);
	assert_int_equal(before_len, after_len);
	assert_memory_equal(before, after, before_len);
	free(before);
	free(after);
}

static void
test_newer_schema_refused(void **state)
{
	struct fixture *f = *state;
	struct engine *e = new_engine();
	struct tick t = tick_quote("A", 1, dec_raw(1, 0), dec_raw(2, 0));
	struct store *s = open_store(f, NULL);
	char want[128];

	feed(e, s, &t, 1);
	store_close(s);
	sql(f->path, "PRAGMA user_version = 7");
	snprintf(want, sizeof want,
	         "has schema version 7; this build knows up to %d",
	         schema_migration_count);
	assert_refused_untouched(f->path, want);
	engine_destroy(e);
}

static void
test_not_a_database_refused(void **state)
{
	struct fixture *f = *state;
	FILE *fp = fopen(f->path, "w");
	int i;

	assert_non_null(fp);
	for (i = 0; i < 300; i++)
		fprintf(fp, "ts,symbol,bid\n1,AAPL,%d.5\n", i);
	fclose(fp);
	assert_refused_untouched(f->path, "is not an SQLite database");

	/* Someone else's SQLite database: left alone too. */
	snprintf(f->path, sizeof f->path, "%s/other.db", f->dir);
	sql(f->path, "CREATE TABLE accounts (id INTEGER, owner TEXT); "
	             "INSERT INTO accounts VALUES (1, 'x')");
	assert_refused_untouched(f->path, "not a publisher one");
}

static void
test_missing_directory(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {0};
	char dir[400];

	snprintf(dir, sizeof dir, "%s/no/such", f->dir);
	snprintf(f->path, sizeof f->path, "%s/ticks.db", dir);
	o.path = f->path;
	assert_null(store_open(&o, err, sizeof err));
	assert_non_null(strstr(err, f->path));
	assert_non_null(strstr(err, "does not exist"));
	assert_false(exists(dir));

	assert_null(store_reader_open(f->path, err, sizeof err));
	assert_non_null(strstr(err, "no database at"));
	assert_non_null(strstr(err, f->path));
}

static void
test_one_writer_per_database(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {.path = f->path};
	struct store *a = open_store(f, NULL), *b;

	b = store_open(&o, err, sizeof err);
	assert_null(b);
	assert_non_null(strstr(err, "in use by another publisher"));
	store_close(a);
	b = store_open(&o, err, sizeof err);
	assert_non_null(b);
	store_close(b);
}

static void
test_migrates_older_schema(void **state)
{
	struct fixture *f = *state;
	struct engine *e = new_engine();
	struct tick t[2] = {
	        tick_quote("OLD", 10, dec_raw(1005, 1), dec_raw(1010, 1)),
	        tick_trade("OLD", 20, dec_raw(1007, 1), dec_raw(3, 0))};
	struct store_reader *r;
	struct collected got;
	struct store *s;
	char epoch[64];

	/* A database as a build that knew only migration 1 left it. */
	assert_true(schema_migration_count >= 2);
	s = open_store(f, NULL);
	feed(e, s, t, 2);
	snprintf(epoch, sizeof epoch, "%s", store_epoch(s));
	store_close(s);
	sql(f->path, "DROP VIEW tick_view; DROP VIEW state_view; "
	             "DROP TABLE gaps; DROP TABLE IF EXISTS imports; "
	             "DROP TABLE IF EXISTS reservations; "
	             "ALTER TABLE state DROP COLUMN prev_close; "
	             "ALTER TABLE state DROP COLUMN prev_close_seq; "
	             "ALTER TABLE state DROP COLUMN session; "
	             "PRAGMA user_version = 1");

	/* A reader takes it as it is (the tables are those of version 1). */
	r = open_reader(f);
	got = read_ticks(r, NULL, 0, INT64_MIN, INT64_MAX, 0);
	assert_int_equal(got.n, 2);
	free(got.v);
	store_reader_close(r);

	s = open_store(f, NULL);
	assert_string_equal(store_epoch(s), epoch);
	store_close(s);
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"),
	                 schema_migration_count);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM tick_view "
	                                  "WHERE symbol = 'OLD'"),
	                 2);
	engine_destroy(e);
}

/* Three symbols at known times, one with a timestamp that goes back. */
static void
fill_known(struct fixture *f, struct engine *e)
{
	struct tick t[] = {
	        tick_quote("A", 1000, dec_raw(10, 0), dec_raw(11, 0)),
	        tick_quote("B", 1500, dec_raw(20, 0), dec_raw(21, 0)),
	        tick_trade("A", 2000, dec_raw(105, 1), dec_raw(1, 0)),
	        tick_quote("C", 2500, dec_raw(30, 0), dec_raw(31, 0)),
	        tick_trade("A", 3000, dec_raw(106, 1), dec_raw(2, 0)),
	        tick_quote("B", 3000, dec_raw(22, 0), dec_raw(23, 0)),
	        tick_trade("A", 2200, dec_raw(99, 1),
	                   dec_raw(4, 0)), /* back in time */
	        tick_quote("C", 4000, dec_raw(32, 0), dec_raw(33, 0)),
	        tick_trade("A", 5000, dec_raw(107, 1), dec_raw(8, 0)),
	};
	struct store *s = open_store(f, NULL);
	size_t i;

	/* Several commits, so reads cross runs and commits. */
	for (i = 0; i < sizeof t / sizeof t[0]; i += 3) {
		feed(e, s, t + i, 3);
		wait_written(s, i + 3);
	}
	store_close(s);
}

static void
assert_ts(const struct collected *c, const int64_t *ts, size_t n)
{
	size_t i;

	if (c->n != n) {
		for (i = 0; i < c->n; i++)
			print_message("  got %s %lld seq %llu\n",
			              c->v[i].symbol, (long long)c->v[i].ts,
			              (unsigned long long)c->v[i].seq);
		fail_msg("got %zu ticks, want %zu", c->n, n);
	}
	for (i = 0; i < n; i++)
		assert_int_equal(c->v[i].ts, ts[i]);
}

static void
test_read_ticks(void **state)
{
	struct fixture *f = *state;
	struct engine *e = new_engine();
	const char *a[] = {"A"}, *ab[] = {"B", "A"}, *none[] = {"NOPE"};
	struct store_reader *r;
	struct collected c;

	fill_known(f, e);
	r = open_reader(f);

	/* One symbol: in the order received (seq), filtered by ts. */
	c = read_ticks(r, a, 1, INT64_MIN, INT64_MAX, 0);
	assert_ts(&c, (int64_t[]){1000, 2000, 3000, 2200, 5000}, 5);
	assert_int_equal(c.v[3].seq, 4);
	assert_decimal_exact(c.v[3].value[FIELD_LAST], dec_raw(99, 1));
	free(c.v);
	c = read_ticks(r, a, 1, 2000, 3000, 0); /* [from, to) */
	assert_ts(&c, (int64_t[]){2000, 2200}, 2);
	free(c.v);
	c = read_ticks(r, a, 1, 2100, 2300, 0); /* only the late tick */
	assert_ts(&c, (int64_t[]){2200}, 1);
	free(c.v);

	/* last N, still oldest first; with a range. */
	c = read_ticks(r, a, 1, INT64_MIN, INT64_MAX, 2);
	assert_ts(&c, (int64_t[]){2200, 5000}, 2);
	free(c.v);
	c = read_ticks(r, a, 1, 0, 3001, 2);
	assert_ts(&c, (int64_t[]){3000, 2200}, 2);
	free(c.v);
	c = read_ticks(r, a, 1, INT64_MIN, INT64_MAX, 100);
	assert_int_equal(c.n, 5);
	free(c.v);

	/* Several symbols: merged by ts, each symbol in its own order. */
	c = read_ticks(r, ab, 2, INT64_MIN, INT64_MAX, 0);
	assert_ts(&c, (int64_t[]){1000, 1500, 2000, 3000, 3000, 2200, 5000}, 7);
	assert_string_equal(c.v[3].symbol, "B"); /* ties: order named */
	free(c.v);
	c = read_ticks(r, ab, 2, INT64_MIN, INT64_MAX, 3);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.v[2].ts, 5000);
	free(c.v);

	/* Every symbol: ts order, a symbol's own order kept. */
	c = read_ticks(r, NULL, 0, INT64_MIN, INT64_MAX, 0);
	assert_int_equal(c.n, 9);
	assert_int_equal(c.v[0].ts, 1000);
	assert_int_equal(c.v[8].ts, 5000);
	free(c.v);
	c = read_ticks(r, NULL, 0, 2500, 4001, 0);
	assert_ts(&c, (int64_t[]){2500, 3000, 3000, 4000}, 4);
	free(c.v);
	c = read_ticks(r, NULL, 0, INT64_MIN, INT64_MAX, 2);
	assert_ts(&c, (int64_t[]){4000, 5000}, 2);
	free(c.v);

	/* Nothing: an unknown symbol, an empty range. */
	c = read_ticks(r, none, 1, INT64_MIN, INT64_MAX, 0);
	assert_int_equal(c.n, 0);
	c = read_ticks(r, NULL, 0, 3000, 3000, 0);
	assert_int_equal(c.n, 0);
	c = read_ticks(r, NULL, 0, 6000, INT64_MAX, 0);
	assert_int_equal(c.n, 0);

	/* The callback stops the read. */
	memset(&c, 0, sizeof c);
	c.stop_after = 2;
	assert_int_equal(store_read_ticks(r, NULL, 0, INT64_MIN, INT64_MAX, 0,
	                                  collect, &c, err, sizeof err),
	                 0);
	assert_int_equal(c.n, 2);
	free(c.v);

	store_reader_close(r);
	engine_destroy(e);
}

static struct collected
read_history(struct store_reader *r, const char *symbol, int64_t from,
             int64_t to, uint32_t last_n)
{
	struct collected c = {0};

	if (store_read_history(r, symbol, from, to, last_n, collect, &c, err,
	                       sizeof err))
		fail_msg("store_read_history: %s", err);
	return c;
}

static void
test_read_history_in_ts_order(void **state)
{
	struct fixture *f = *state;
	struct engine *e = new_engine();
	struct store_reader *r;
	struct collected c;

	fill_known(f, e);
	r = open_reader(f);
	/* The late tick (seq 4, ts 2200) comes at its time. */
	c = read_history(r, "A", INT64_MIN, INT64_MAX, 0);
	assert_ts(&c, (int64_t[]){1000, 2000, 2200, 3000, 5000}, 5);
	assert_int_equal(c.v[2].seq, 4);
	free(c.v);
	c = read_history(r, "A", 2000, 3001, 0);
	assert_ts(&c, (int64_t[]){2000, 2200, 3000}, 3);
	free(c.v);
	c = read_history(r, "A", INT64_MIN, INT64_MAX, 2);
	assert_ts(&c, (int64_t[]){3000, 5000}, 2);
	free(c.v);
	c = read_history(r, "A", 0, 3001, 3);
	assert_ts(&c, (int64_t[]){2000, 2200, 3000}, 3);
	free(c.v);
	c = read_history(r, "A", 0, 3001, 50);
	assert_ts(&c, (int64_t[]){1000, 2000, 2200, 3000}, 4);
	free(c.v);
	c = read_history(r, "NOPE", INT64_MIN, INT64_MAX, 0);
	assert_int_equal(c.n, 0);
	memset(&c, 0, sizeof c);
	c.stop_after = 1;
	assert_int_equal(store_read_history(r, "A", INT64_MIN, INT64_MAX, 0,
	                                    collect, &c, err, sizeof err),
	                 0);
	assert_int_equal(c.n, 1);
	free(c.v);
	store_reader_close(r);
	engine_destroy(e);
}

/* Paging by "from = last ts + 1" over many commits loses nothing, even a
 * tick that arrived thousands of ticks late; equal timestamps keep seq
 * order. */
static void
test_read_history_pages(void **state)
{
	struct fixture *f = *state;
	enum { N = 6000, PAGE = 1000 };
	static struct tick t[N + 1];
	struct engine *e = new_engine();
	struct store_reader *r;
	struct store *s;
	uint64_t seen[N + 2] = {0};
	int64_t from = 0;
	size_t i, total = 0;

	for (i = 0; i < N; i++)
		t[i] = tick_quote(
		        "P", 1000 + (int64_t)i * 10 - (i % 3 == 1 ? 10 : 0),
		        dec_raw((int64_t)i, 0), dec_raw(1, 0));
	t[N] = tick_quote("P", 1000 + 55, dec_raw(-1, 0),
	                  dec_raw(1, 0)); /* late */
	s = open_store(f, NULL);
	for (i = 0; i <= N; i += 500) {
		size_t n = N + 1 - i < 500 ? N + 1 - i : 500;

		feed(e, s, t + i, n);
		wait_written(s, i + n);
	}
	store_close(s);
	r = open_reader(f);
	for (;;) {
		struct collected c = read_history(r, "P", from, INT64_MAX, 0);
		size_t n = c.n < PAGE ? c.n : PAGE;

		for (i = 0; i < n; i++) {
			if (i && (c.v[i].ts < c.v[i - 1].ts ||
			          (c.v[i].ts == c.v[i - 1].ts &&
			           c.v[i].seq < c.v[i - 1].seq)))
				fail_msg("not in (ts, seq) order at %zu", i);
			seen[c.v[i].seq]++;
		}
		total += n;
		if (c.n <= PAGE) {
			free(c.v);
			break;
		}
		/* A page that would end inside a group of equal ts ends
		 * before it, so "from = last ts + 1" takes the whole group. */
		while (n > 1 && c.v[n - 1].ts == c.v[n].ts)
			n--, total--, seen[c.v[n].seq]--;
		from = c.v[n - 1].ts + 1;
		free(c.v);
	}
	assert_int_equal(total, N + 1);
	for (i = 1; i <= N + 1; i++)
		assert_int_equal(seen[i], 1);
	store_reader_close(r);
	engine_destroy(e);
}

struct bars {
	struct bar v[64];
	size_t n;
};

static int
collect_bar(const struct bar *b, void *ctx)
{
	struct bars *l = ctx;

	assert_true(l->n < 64);
	l->v[l->n++] = *b;
	return 0;
}

static void
assert_bar(const struct bar *b, int64_t t, struct decimal o, struct decimal h,
           struct decimal l, struct decimal c, struct decimal v, uint64_t n)
{
	assert_int_equal(b->t, t);
	assert_decimal_exact(b->open, o);
	assert_decimal_exact(b->high, h);
	assert_decimal_exact(b->low, l);
	assert_decimal_exact(b->close, c);
	assert_decimal_exact(b->volume, v);
	assert_int_equal(b->ticks, n);
}

static void
test_bars(void **state)
{
	struct fixture *f = *state;
	const int64_t s = 1000000, m = 60 * s;
	const int64_t t0 = 1709303400ll * s; /* 2024-03-01T14:30:00Z */
	struct tick t[] = {
	        tick_trade("X", t0 + 100, dec_raw(10000, 2), dec_raw(5, 0)),
	        tick_quote("X", t0 + 200, dec_raw(99, 0),
	                   dec_raw(101, 0)), /* no last */
	        tick_trade("X", t0 + s / 2, dec_raw(10250, 2), dec_raw(10, 0)),
	        tick_trade("X", t0 + s + 1, dec_raw(1010, 1), dec_raw(1, 0)),
	        tick_trade("X", t0 + 999999, dec_raw(9950, 2),
	                   dec_raw(25, 1)), /* late */
	        tick_trade("X", t0 + 61 * s, dec_raw(104, 0), dec_raw(7, 0)),
	        tick_trade("X", t0 + 61 * s + 5, dec_raw(1035, 1),
	                   dec_raw(1, 0)),
	};
	struct engine *e = new_engine();
	struct store *st = open_store(f, NULL);
	struct store_reader *r;
	struct bars b = {0};

	feed(e, st, t, 3);
	wait_written(st, 3);
	feed(e, st, t + 3, 4);
	store_close(st);
	r = open_reader(f);

	assert_int_equal(store_read_bars(r, "X", INT64_MIN, INT64_MAX, s, 0,
	                                 collect_bar, &b, err, sizeof err),
	                 0);
	assert_int_equal(b.n, 3);
	/* The late tick (sent 4th, at t0 + 0.999999) closes the first
	 * second: open and close go by time. */
	assert_bar(&b.v[0], t0, dec_raw(10000, 2), dec_raw(10250, 2),
	           dec_raw(9950, 2), dec_raw(9950, 2), dec_raw(175, 1), 3);
	assert_bar(&b.v[1], t0 + s, dec_raw(1010, 1), dec_raw(1010, 1),
	           dec_raw(1010, 1), dec_raw(1010, 1), dec_raw(1, 0), 1);
	assert_bar(&b.v[2], t0 + 61 * s, dec_raw(104, 0), dec_raw(104, 0),
	           dec_raw(1035, 1), dec_raw(1035, 1), dec_raw(8, 0), 2);

	b.n = 0;
	assert_int_equal(store_read_bars(r, "X", INT64_MIN, INT64_MAX, m, 0,
	                                 collect_bar, &b, err, sizeof err),
	                 0);
	assert_int_equal(b.n, 2);
	assert_bar(&b.v[0], t0, dec_raw(10000, 2), dec_raw(10250, 2),
	           dec_raw(9950, 2), dec_raw(1010, 1), dec_raw(185, 1), 4);
	assert_bar(&b.v[1], t0 + m, dec_raw(104, 0), dec_raw(104, 0),
	           dec_raw(1035, 1), dec_raw(1035, 1), dec_raw(8, 0), 2);

	/* last N bars; a range holds the bars that start in it. */
	b.n = 0;
	assert_int_equal(store_read_bars(r, "X", INT64_MIN, INT64_MAX, s, 2,
	                                 collect_bar, &b, err, sizeof err),
	                 0);
	assert_int_equal(b.n, 2);
	assert_int_equal(b.v[0].t, t0 + s);
	assert_int_equal(b.v[1].t, t0 + 61 * s);
	b.n = 0;
	assert_int_equal(store_read_bars(r, "X", t0 + 1, t0 + 61 * s, s, 0,
	                                 collect_bar, &b, err, sizeof err),
	                 0);
	assert_int_equal(b.n, 1);
	assert_int_equal(b.v[0].t, t0 + s);
	b.n = 0;
	assert_int_equal(store_read_bars(r, "NONE", INT64_MIN, INT64_MAX, s, 0,
	                                 collect_bar, &b, err, sizeof err),
	                 0);
	assert_int_equal(b.n, 0);
	assert_int_equal(store_read_bars(r, "X", 0, INT64_MAX, 0, 0,
	                                 collect_bar, &b, err, sizeof err),
	                 -1);
	assert_non_null(strstr(err, "interval"));

	store_reader_close(r);
	engine_destroy(e);
}

static uint64_t
count_all(const struct fixture *f)
{
	struct store_reader *r = open_reader(f);
	struct collected c = read_ticks(r, NULL, 0, INT64_MIN, INT64_MAX, 0);
	uint64_t n = c.n;

	free(c.v);
	store_reader_close(r);
	return n;
}

static void
test_retention_by_rows(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {.retain_rows = 1000};
	enum { N = 5000 };
	static struct tick t[N];
	struct engine *e = new_engine();
	struct store_reader *r;
	struct collected c;
	struct store *s;
	size_t i;
	int tries;

	make_ticks(t, N, 1700000000000000ll);
	s = open_store(f, &o);
	for (i = 0; i < N; i += 500) {
		feed(e, s, t + i, 500);
		wait_written(s, i + 500);
	}
	/* Retention runs in the background, about once a second. */
	for (tries = 0; tries < 100 && count_all(f) > 1000; tries++)
		timing_sleep_ms(100);
	store_close(s);

	r = open_reader(f);
	c = read_ticks(r, NULL, 0, INT64_MIN, INT64_MAX, 0);
	assert_int_equal(c.n, 1000);
	for (i = 0; i < 1000; i++)
		assert_tick_equal(&c.v[i], &t[N - 1000 + i]);
	free(c.v);
	{
		const char *one[] = {"MSFT"};

		c = read_ticks(r, one, 1, INT64_MIN, INT64_MAX, 0);
		assert_int_equal(c.n, 200);
		free(c.v);
	}
	store_reader_close(r);
	/* The state is the state after every tick, deleted or not. */
	assert_int_equal(sql_int(f->path, "SELECT sum(seq) FROM state"), N);
	engine_destroy(e);
}

static void
test_retention_by_age(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {.retain_age_us = 3600ll * 1000000};
	const int64_t now = clock_wall_us();
	struct tick old[200], fresh[100];
	struct engine *e = new_engine();
	struct store *s;
	int tries;

	make_ticks(old, 200, now - 3 * 3600ll * 1000000);
	make_ticks(fresh, 100, now - 1000000);
	s = open_store(f, &o);
	feed(e, s, old, 100);
	wait_written(s, 100);
	feed(e, s, old + 100, 100);
	wait_written(s, 200);
	feed(e, s, fresh, 100);
	wait_written(s, 300);
	for (tries = 0; tries < 100 && count_all(f) > 100; tries++)
		timing_sleep_ms(100);
	store_close(s);
	assert_int_equal(count_all(f), 100);
	/* Runs and commits of deleted ticks go too (swept in the
	 * background; at least the commits are gone at once). */
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM commits "
	                                  "WHERE max_ts < (SELECT min(ts) "
	                                  "FROM ticks)"),
	                 0);
	engine_destroy(e);
}

static pthread_mutex_t wake_mu = PTHREAD_MUTEX_INITIALIZER;
static int wakes;

static void
on_wake(void *ctx)
{
	pthread_mutex_lock(&wake_mu);
	wakes++;
	pthread_mutex_unlock(&wake_mu);
}

static void
test_backpressure(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {
	        .path = f->path, .queue_capacity = 100, .wake = on_wake};
	struct tick t[101];
	struct engine *e = new_engine();
	struct store *s;
	size_t i;

	for (i = 0; i < 101; i++) {
		t[i] = tick_quote("Q", (int64_t)i, dec_raw((int64_t)i, 0),
		                  dec_raw(1, 0));
		t[i].seq = engine_apply_tick(e, &t[i]);
	}
	/* Not started: ticks queue up to the capacity, then none. */
	s = store_open(&o, err, sizeof err);
	assert_non_null(s);
	assert_int_equal(store_append_space(s), 100);
	assert_int_equal(store_append(s, t, 60), 0);
	assert_int_equal(store_append_space(s), 40);
	assert_int_equal(store_append(s, t + 60, 41), -1); /* none queued */
	assert_int_equal(store_append(s, t + 60, 40), 0);
	assert_int_equal(store_append_space(s), 0);
	wakes = 0;
	assert_int_equal(store_start(s, err, sizeof err), 0);
	wait_written(s, 100);
	/* The writer freed space after the queue was full: wake. */
	for (i = 0; i < 500 && !wakes; i++)
		timing_sleep_ms(2);
	assert_true(wakes >= 1);
	assert_int_equal(store_append(s, t + 100, 1), 0);
	store_close(s);
	assert_int_equal(count_all(f), 101);
	engine_destroy(e);
}

static int
state_from_engine(const char *symbol, struct symbol_state *out, void *ctx)
{
	return engine_get_state(ctx, symbol, out);
}

static int
collect_gap(const struct store_gap *g, void *ctx)
{
	struct store_gap *out = ctx;

	*out = *g;
	return 0;
}

/*
 * A live batch bigger than the queue: the store keeps what fits, drops the
 * rest (and what comes while it catches up), and once drained records a
 * gap per symbol with the state the serving engine has then. Stored ticks
 * and gaps together account for every seq, once; the state row is the
 * engine's.
 */
static void
test_live_overflow_records_gaps(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {
	        .path = f->path, .queue_capacity = 1000, .wake = on_wake};
	enum { N = 2010 };
	static struct tick t[N];
	struct engine *e = new_engine();
	struct sink sink;
	struct store_stats st;
	struct sink_status ss;
	struct store_reader *r;
	struct store_gap g;
	struct symbol_state es;
	struct store *s;
	size_t i;

	/* The serving engine applies each tick before the sink gets it. */
	for (i = 0; i < N; i++)
		t[i] = tick_trade(i % 2 ? "AAA" : "BBB", (int64_t)i + 1,
		                  dec_raw((int64_t)i, 2), dec_raw(1, 0));
	for (i = 0; i < 1510; i++)
		t[i].seq = engine_apply_tick(e, &t[i]);
	s = store_open(&o, err, sizeof err);
	assert_non_null(s);
	sink = store_sink(s);
	/* Not started: the queue fills, then the rest is dropped. */
	sink.ops->append(sink.impl, t, 1500);
	sink.ops->status(sink.impl, &ss);
	assert_true(ss.dropping);
	assert_int_equal(ss.queued, 1000);
	assert_int_equal(ss.dropped, 500);
	assert_false(sink.ops->wants_resume(sink.impl));
	wakes = 0;
	assert_int_equal(store_start(s, err, sizeof err), 0);
	wait_written(s, 1000);
	for (i = 0; i < 500 && !sink.ops->wants_resume(sink.impl); i++)
		timing_sleep_ms(2);
	assert_true(sink.ops->wants_resume(sink.impl));
	assert_true(wakes >= 1);
	/* Until it resumes, nothing is taken, even with room. */
	sink.ops->append(sink.impl, t + 1500, 10);
	sink.ops->resume(sink.impl, state_from_engine, e);
	sink.ops->status(sink.impl, &ss);
	assert_false(ss.dropping);
	/* Taken again after the gaps. */
	for (i = 1510; i < N; i++)
		t[i].seq = engine_apply_tick(e, &t[i]);
	sink.ops->append(sink.impl, t + 1510, N - 1510);
	wait_written(s, 1000 + N - 1510);
	store_get_stats(s, &st);
	assert_int_equal(st.ticks_dropped, 510);
	store_close(s);

	assert_int_equal(count_all(f), 1000 + N - 1510);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM gaps"), 2);
	assert_int_equal(sql_int(f->path, "SELECT sum(ticks) FROM gaps"), 510);
	/* Per symbol: stored ticks + gap ticks = its seq, and the state row
	 * is the engine's. */
	assert_int_equal(sql_int(f->path,
	                         "SELECT count(*) FROM state AS st WHERE seq "
	                         "!= (SELECT count(*) FROM ticks AS t WHERE "
	                         "t.symbol_id = st.symbol_id) + (SELECT "
	                         "sum(ticks) FROM gaps AS g WHERE "
	                         "g.symbol_id = st.symbol_id)"),
	                 0);
	assert_int_equal(engine_get_state(e, "AAA", &es), 0);
	assert_int_equal(sql_int(f->path, "SELECT st.seq FROM state AS st "
	                                  "JOIN symbols AS s ON s.id = "
	                                  "st.symbol_id WHERE s.name = 'AAA'"),
	                 (int64_t)es.seq);
	r = open_reader(f);
	memset(&g, 0, sizeof g);
	assert_int_equal(store_read_gaps(r, "AAA", INT64_MIN, INT64_MAX,
	                                 collect_gap, &g, err, sizeof err),
	                 0);
	assert_int_equal(g.first_seq, 501);
	assert_int_equal(g.last_seq, 755);
	assert_int_equal(g.ticks, 255);
	assert_int_equal(g.first_ts, 1002);
	assert_int_equal(g.last_ts, 1510);
	/* Outside its time range: not reported. */
	memset(&g, 0, sizeof g);
	assert_int_equal(store_read_gaps(r, "AAA", 1, 1000, collect_gap, &g,
	                                 err, sizeof err),
	                 0);
	assert_int_equal(g.ticks, 0);
	store_reader_close(r);
	engine_destroy(e);
}

static void
test_close_flushes(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {.path = f->path, .commit_ms = 5000};
	enum { N = 3000 };
	static struct tick t[N];
	struct engine *e = new_engine();
	struct store *s;

	make_ticks(t, N, 1700000000000000ll);
	/* A long commit interval: nothing is due when close comes. */
	s = store_open(&o, err, sizeof err);
	assert_non_null(s);
	assert_int_equal(store_start(s, err, sizeof err), 0);
	feed(e, s, t, N / 2);
	store_close(s);
	assert_int_equal(count_all(f), N / 2);

	/* Never started: close writes the queue on its own thread. */
	s = store_open(&o, err, sizeof err);
	assert_non_null(s);
	feed(e, s, t + N / 2, N / 2);
	store_close(s);
	assert_int_equal(count_all(f), N);
	engine_destroy(e);
}

/*
 * A write failure that clears: the file size limit (RLIMIT_FSIZE) makes
 * every write past it fail as a full disk would, whoever runs the test
 * (root ignores a read-only file). The store holds the ticks, reports
 * failing, and writes them all once the limit is lifted.
 */
static void
test_failure_then_recovery(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {.wake = on_wake, .queue_capacity = 400};
	struct tick t[600];
	struct engine *ref = new_engine();
	struct state_check c = {ref, 0};
	struct store_stats st;
	struct rlimit saved, small;
	struct store *s;
	size_t i;
	int tries;

	make_ticks(t, 600, 1700000000000000ll);
	s = open_store(f, &o);
	feed(ref, s, t, 100);
	wait_written(s, 100);

	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	small = saved;
	small.rlim_cur = 4096;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);

	feed(ref, s, t + 100, 200);
	for (tries = 0; tries < 500; tries++) {
		store_get_stats(s, &st);
		if (st.failing)
			break;
		timing_sleep_ms(5);
	}
	assert_true(st.failing);
	assert_true(st.write_errors >= 1);
	assert_true(st.last_error[0] != '\0');
	assert_int_equal(st.ticks_written, 100);
	/* The ticks are held, not dropped: the queue fills up. */
	feed(ref, s, t + 300, 200);
	store_get_stats(s, &st);
	assert_int_equal(st.queued, 400);
	assert_int_equal(store_append_space(s), 0);
	wakes = 0;

	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	wait_written(s, 500);
	store_get_stats(s, &st);
	assert_false(st.failing);
	for (i = 0; i < 500 && !wakes; i++)
		timing_sleep_ms(2);
	assert_true(wakes >= 1);
	feed(ref, s, t + 500, 100);
	store_close(s);
	signal(SIGXFSZ, SIG_DFL);

	assert_int_equal(count_all(f), 600);
	{
		struct store_options oo = {.path = f->path};

		s = store_open(&oo, err, sizeof err);
		assert_non_null(s);
		assert_int_equal(store_load_state(s, check_state, &c), 0);
		assert_int_equal(c.seen, 5);
		store_close(s);
	}
	assert_string_equal(sql_text(f->path, "PRAGMA integrity_check"), "ok");
	engine_destroy(ref);
}

/* A file that cannot be written when the store opens: it opens, holds
 * the ticks, and writes them once the file is writable. Root writes
 * through any permission, so this only runs as another user. */
static void
test_read_only_file(void **state)
{
	struct fixture *f = *state;
	struct tick t[10];
	struct engine *e = new_engine();
	struct store_stats st;
	struct store *s;
	char shm[600];
	int tries;

	snprintf(shm, sizeof shm, "%s-shm", f->path);
	if (geteuid() == 0) {
		engine_destroy(e);
		skip();
	}
	make_ticks(t, 10, 1700000000000000ll);
	s = open_store(f, NULL);
	store_close(s);
	assert_int_equal(chmod(f->path, 0444), 0);
	s = open_store(f, NULL);
	feed(e, s, t, 10);
	for (tries = 0; tries < 500; tries++) {
		store_get_stats(s, &st);
		if (st.failing)
			break;
		timing_sleep_ms(5);
	}
	assert_true(st.failing);
	assert_non_null(strstr(st.last_error, "-shm"));
	/* SQLite made the -shm file as read-only as the database. */
	assert_int_equal(chmod(f->path, 0644), 0);
	assert_int_equal(chmod(shm, 0644), 0);
	wait_written(s, 10);
	store_close(s);
	assert_int_equal(count_all(f), 10);
	engine_destroy(e);
}

static void
test_refused_tick_not_stored(void **state)
{
	struct fixture *f = *state;
	struct engine *e = new_engine();
	struct tick t[3] = {tick_quote("R", 1, dec_raw(1, 0), dec_raw(2, 0)),
	                    tick_quote("R", 2, dec_raw(3, 0), dec_raw(4, 0)),
	                    tick_quote("R", 3, dec_raw(5, 0), dec_raw(6, 0))};
	struct store_stats st;
	struct store *s = open_store(f, NULL);

	feed(e, s, t, 2);
	/* The same seq again: the store's state would not take it. */
	t[2].seq = t[1].seq;
	assert_int_equal(store_append(s, &t[2], 1), 0);
	wait_written(s, 2);
	for (int i = 0; i < 500; i++) {
		store_get_stats(s, &st);
		if (st.ticks_refused)
			break;
		timing_sleep_ms(2);
	}
	assert_int_equal(st.ticks_refused, 1);
	store_close(s);
	assert_int_equal(count_all(f), 2);
	assert_int_equal(sql_int(f->path, "SELECT seq FROM state"), 2);
	engine_destroy(e);
}

/* ------------------------------------------------------------- rewinds */

/* What a rewind's done() was given. */
struct rewound {
	int done; /* set last, with __atomic */
	int rc;
	char epoch[64];
	struct symbol_state st[8];
	size_t n;
};

static void
rewound_cb(const struct sink_rewound *r, void *ctx)
{
	struct rewound *w = ctx;

	w->rc = r->rc;
	snprintf(w->epoch, sizeof w->epoch, "%s", r->epoch ? r->epoch : "");
	w->n = r->count < 8 ? r->count : 8;
	memcpy(w->st, r->states, w->n * sizeof *w->st);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
}

static void
wait_rewound(struct rewound *w)
{
	int i;

	for (i = 0; i < 5000 && !__atomic_load_n(&w->done, __ATOMIC_ACQUIRE);
	     i++)
		timing_sleep_ms(2);
	if (!__atomic_load_n(&w->done, __ATOMIC_ACQUIRE))
		fail_msg("the rewind was never done");
	assert_int_equal(w->rc, 0);
}

/* The state of symbol among w's. */
static const struct symbol_state *
rewound_state(const struct rewound *w, const char *symbol)
{
	size_t i;

	for (i = 0; i < w->n; i++)
		if (!strcmp(w->st[i].symbol, symbol))
			return &w->st[i];
	fail_msg("no state for '%s' came back", symbol);
	return NULL;
}

/* Every stored tick of every symbol, in seq order per symbol, equals
 * want[0..n) of that symbol (ts, seq, fields). */
static void
check_stored(const struct fixture *f, const struct tick *want, size_t n)
{
	static const char *const syms[] = {"AAPL", "MSFT", "BRK.B", "ES:H4",
	                                   "X/Y-Z_1"};
	struct store_reader *r = open_reader(f);
	size_t total = 0, k;

	for (k = 0; k < 5; k++) {
		const char *one[1] = {syms[k]};
		struct collected c =
		        read_ticks(r, one, 1, INT64_MIN, INT64_MAX, 0);
		size_t i, j = 0;

		for (i = 0; i < n; i++) {
			if (strcmp(want[i].symbol, syms[k]))
				continue;
			if (j >= c.n)
				fail_msg("%s: %zu ticks stored, more expected",
				         syms[k], c.n);
			assert_int_equal(c.v[j].ts, want[i].ts);
			assert_int_equal(c.v[j].seq, want[i].seq);
			assert_int_equal(c.v[j].present, want[i].present);
			for (int fl = 0; fl < TICK_FIELD_COUNT; fl++) {
				if (!tick_has(&want[i], fl))
					continue;
				assert_int_equal(c.v[j].value[fl].mantissa,
				                 want[i].value[fl].mantissa);
				assert_int_equal(c.v[j].value[fl].scale,
				                 want[i].value[fl].scale);
			}
			j++;
		}
		assert_int_equal(c.n, j);
		total += c.n;
		free(c.v);
	}
	assert_int_equal(total, n);
	store_reader_close(r);
}

/* commits.max_ts never goes down along the ids, nor a symbol's runs'
 * along (max_ts, first_id) with their ids: what retention and the reads
 * rely on. */
static void
check_order(const struct fixture *f)
{
	assert_int_equal(sql_int(f->path,
	                         "SELECT count(*) FROM commits AS a JOIN "
	                         "commits AS b ON b.id > a.id WHERE b.max_ts "
	                         "< a.max_ts"),
	                 0);
	assert_int_equal(sql_int(f->path,
	                         "SELECT count(*) FROM runs AS a JOIN runs AS "
	                         "b ON b.symbol_id = a.symbol_id AND "
	                         "(b.max_ts, b.first_id) > (a.max_ts, "
	                         "a.first_id) WHERE b.first_id < a.first_id"),
	                 0);
	/* Every tick lies in a run of its symbol. */
	assert_int_equal(sql_int(f->path,
	                         "SELECT count(*) FROM ticks AS t WHERE NOT "
	                         "EXISTS (SELECT 1 FROM runs AS r WHERE "
	                         "r.symbol_id = t.symbol_id AND t.id >= "
	                         "r.first_id AND t.id < r.first_id + "
	                         "r.count)"),
	                 0);
}

/*
 * A replay's seek back: ticks of five symbols written over many commits
 * (one of them late), then a rewind to the place where the first K were
 * applied. The store keeps exactly those K, each symbol's state is the one
 * an engine had after them (derived fields and change seqs included), a
 * new epoch is written, and the ticks from K on, applied again from those
 * states, are stored once: the store then holds all N, as if there had
 * been no seek, under the new epoch, after a restart too.
 */
static void
test_rewind_drops_what_came_after_the_cut(void **state)
{
	struct fixture *f = *state;
	enum { N = 3000, K = 1700, STEP = 250 };
	static struct tick t[N];
	struct engine *e = new_engine(), *ref = new_engine(), *again;
	struct sink_cut cuts[5];
	struct rewound w = {0};
	char old_epoch[64];
	struct store *s;
	size_t i, k, ncuts = 0;

	make_ticks(t, N, 1700000000000000ll);
	/* A late tick: older than the ticks before it. */
	t[K + 3].ts -= 50000;
	t[K - 400].ts -= 50000;
	s = open_store(f, NULL);
	snprintf(old_epoch, sizeof old_epoch, "%s", store_epoch(s));
	for (i = 0; i < N; i += STEP) {
		feed(e, s, t + i, STEP);
		wait_written(s, i + STEP);
	}
	for (i = 0; i < K; i++)
		engine_apply_tick(ref, &t[i]);

	/* Per symbol: its seq now, less its ticks from K on. */
	for (i = K; i < N; i++) {
		for (k = 0; k < ncuts && strcmp(cuts[k].symbol, t[i].symbol);
		     k++)
			;
		if (k == ncuts) {
			struct symbol_state st;

			assert_int_equal(engine_get_state(e, t[i].symbol, &st),
			                 0);
			memset(&cuts[k], 0, sizeof cuts[k]);
			snprintf(cuts[k].symbol, sizeof cuts[k].symbol, "%s",
			         t[i].symbol);
			cuts[k].seq = st.seq;
			ncuts++;
		}
		cuts[k].seq--;
	}
	assert_int_equal(store_rewind(s, cuts, ncuts, rewound_cb, &w), 0);
	wait_rewound(&w);
	assert_int_equal(w.n, ncuts);
	assert_int_equal(strlen(w.epoch), 16);
	assert_string_not_equal(w.epoch, old_epoch);
	again = new_engine();
	for (k = 0; k < ncuts; k++) {
		struct symbol_state want;
		const struct symbol_state *got =
		        rewound_state(&w, cuts[k].symbol);

		assert_int_equal(engine_get_state(ref, cuts[k].symbol, &want),
		                 0);
		assert_state_equal(got, &want);
		assert_int_equal(got->seq, cuts[k].seq);
		assert_int_equal(engine_restore_symbol(again, got), 0);
	}
	check_stored(f, t, K);
	check_order(f);
	assert_string_equal(sql_text(f->path, "SELECT epoch FROM meta"),
	                    w.epoch);

	/* Played on from the cut: the same ticks, the same seqs. */
	for (i = K; i < N; i += STEP) {
		size_t n = N - i < STEP ? N - i : STEP;
		uint64_t seqs[STEP];

		for (k = 0; k < n; k++)
			seqs[k] = t[i + k].seq;
		feed(again, s, t + i, n);
		for (k = 0; k < n; k++)
			assert_int_equal(t[i + k].seq, seqs[k]);
	}
	store_close(s);
	check_stored(f, t, N);
	check_order(f);

	/* A restart: the new epoch, and the state of the whole file. */
	{
		struct store_options o = {.path = f->path};
		struct state_check c = {e, 0};

		s = store_open(&o, err, sizeof err);
		if (!s)
			fail_msg("store_open: %s", err);
		assert_string_equal(store_epoch(s), w.epoch);
		assert_int_equal(store_load_state(s, check_state, &c), 0);
		assert_int_equal(c.seen, 5);
		store_close(s);
	}
	engine_destroy(again);
	engine_destroy(ref);
	engine_destroy(e);
}

/*
 * A rewind is queued with the ticks: one asked for while ticks are still
 * queued runs after them, and ticks queued after it are written after it.
 * A symbol cut to seq 0 loses its ticks and its state row.
 */
static void
test_rewind_in_order_with_the_queue(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {.commit_ms = 1000};
	struct tick a[100], b[30], z[5];
	struct sink_cut cuts[2] = {{"Q", 50}, {"Z", 0}};
	struct rewound w = {0};
	struct store *s;
	size_t i;

	for (i = 0; i < 100; i++) {
		a[i] = tick_quote("Q", 1000 + (int64_t)i, dec_raw(100 + i, 2),
		                  dec_raw(200 + i, 2));
		a[i].seq = i + 1;
	}
	for (i = 0; i < 30; i++) {
		b[i] = tick_quote("Q", 2000 + (int64_t)i, dec_raw(500 + i, 1),
		                  dec_raw(600 + i, 1));
		b[i].seq = 51 + i;
	}
	for (i = 0; i < 5; i++) {
		z[i] = tick_trade("Z", 1500 + (int64_t)i, dec_raw(7, 0),
		                  dec_raw(1, 0));
		z[i].seq = i + 1;
	}
	/* A long commit interval: the ticks are still queued when the
	 * rewind and the ticks after it come. */
	s = open_store(f, &o);
	assert_int_equal(store_append(s, a, 100), 0);
	assert_int_equal(store_append(s, z, 5), 0);
	assert_int_equal(store_rewind(s, cuts, 2, rewound_cb, &w), 0);
	assert_int_equal(store_append(s, b, 30), 0);
	wait_rewound(&w);
	assert_int_equal(rewound_state(&w, "Q")->seq, 50);
	assert_int_equal(rewound_state(&w, "Z")->seq, 0);
	store_close(s);

	{
		struct store_reader *r = open_reader(f);
		const char *q[1] = {"Q"}, *zz[1] = {"Z"};
		struct collected c =
		        read_ticks(r, q, 1, INT64_MIN, INT64_MAX, 0);
		struct collected cz =
		        read_ticks(r, zz, 1, INT64_MIN, INT64_MAX, 0);

		assert_int_equal(c.n, 80);
		for (i = 0; i < 80; i++) {
			assert_int_equal(c.v[i].seq, i + 1);
			assert_int_equal(c.v[i].ts,
			                 i < 50 ? a[i].ts : b[i - 50].ts);
		}
		assert_int_equal(cz.n, 0);
		free(c.v);
		free(cz.v);
		store_reader_close(r);
	}
	assert_int_equal(sql_int(f->path, "SELECT seq FROM state AS st JOIN "
	                                  "symbols AS s ON s.id = "
	                                  "st.symbol_id WHERE s.name = 'Q'"),
	                 80);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM state AS st "
	                                  "JOIN symbols AS s ON s.id = "
	                                  "st.symbol_id WHERE s.name = 'Z'"),
	                 0);
	check_order(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_epoch_kept, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(
	                test_ticks_and_state_survive_restart, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_decimals_exact, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_newer_schema_refused,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_not_a_database_refused,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_missing_directory, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_one_writer_per_database,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_migrates_older_schema,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_read_ticks, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_read_history_in_ts_order,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_read_history_pages, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_bars, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_retention_by_rows, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_retention_by_age, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_backpressure, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_live_overflow_records_gaps,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_close_flushes, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_failure_then_recovery,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_read_only_file, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_refused_tick_not_stored,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_rewind_drops_what_came_after_the_cut, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(
	                test_rewind_in_order_with_the_queue, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

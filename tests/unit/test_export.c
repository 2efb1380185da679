/*
 * Unit tests for publisher/export.c and the tick-file lines it writes
 * (publisher/tick_file_write.c): the exact CSV and JSONL lines, and the
 * round trip that publisher/export.h promises: ticks stored, exported, then
 * read back with the replay feed's parser (tick_parse_line) are the same
 * ticks, digit for digit, in both formats. Also what `publisher export`
 * selects and how it fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine.h"
#include "export.h"
#include "log.h"
#include "store.h"
#include "tick_file.h"

#include "support/ticks.h"
#include "support/tmpdir.h"

struct fixture {
	char dir[256];
	char db[512];
	char out[512];
};

static char err[512];

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	assert_int_equal(tmpdir_make(f->dir, sizeof f->dir, "test_export"), 0);
	snprintf(f->db, sizeof f->db, "%s/ticks.db", f->dir);
	snprintf(f->out, sizeof f->out, "%s/out", f->dir);
	log_set_level(LOG_WARN);
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

/* ---------------------------------------------------------- the lines */

static const char *
text(struct jsonbuf *b)
{
	jsonbuf_append_char(b, '\0');
	assert_false(jsonbuf_failed(b));
	return jsonbuf_data(b);
}

static void
test_lines(void **state)
{
	struct jsonbuf b;
	struct tick t = tick_make("AAPL", 1709303400123456ll);
	struct tick u = tick_make("ES:H4/x_1-2", -5);

	tick_set(&t, FIELD_BID, dec_raw(18930, 2));
	tick_set(&t, FIELD_BID_SIZE, dec_raw(100, 0));
	tick_set(&u, FIELD_LAST, dec_raw(-1, 6));
	tick_set(&u, FIELD_LAST_SIZE, dec_raw(0, 0));
	tick_set(&u, FIELD_VOLUME, dec_raw(123456789012345678ll, 18));
	t.seq = 42; /* never written: seqs belong to the database */

	jsonbuf_init(&b, 0);
	tick_file_write_csv_header(&b);
	assert_string_equal(text(&b), "ts,symbol,bid,ask,bid_size,ask_size,"
	                              "last,last_size,volume\n");
	jsonbuf_reset(&b);
	tick_file_write_line(&b, false, &t);
	assert_string_equal(text(&b),
	                    "1709303400123456,AAPL,189.30,,100,,,,\n");
	jsonbuf_reset(&b);
	tick_file_write_line(&b, false, &u);
	assert_string_equal(text(&b), "-5,ES:H4/x_1-2,,,,,-0.000001,0,"
	                              "0.123456789012345678\n");
	jsonbuf_reset(&b);
	tick_file_write_line(&b, true, &t);
	assert_string_equal(text(&b), "{\"ts\":1709303400123456,\"symbol\":"
	                              "\"AAPL\",\"bid\":189.30,"
	                              "\"bid_size\":100}\n");
	jsonbuf_reset(&b);
	tick_file_write_line(&b, true, &u);
	assert_string_equal(text(&b), "{\"ts\":-5,\"symbol\":\"ES:H4/x_1-2\","
	                              "\"last\":-0.000001,\"last_size\":0,"
	                              "\"volume\":0.123456789012345678}\n");
	jsonbuf_free(&b);
}

/* ------------------------------------------------------- the round trip */

enum { N = 2000 };
static struct tick sent[N];

/* Ticks of every shape: quotes, trades, volumes, trailing zeros, 18-digit
 * fractions, negative prices, the largest mantissa, symbols with every
 * allowed punctuation. */
static void
make_ticks(void)
{
	static const char *const syms[] = {"AAPL", "BRK.B", "ES:H4", "EUR/USD",
	                                   "X_1-2"};
	size_t i;

	for (i = 0; i < N; i++) {
		struct tick *t = &sent[i];
		int64_t p = 100000 + (int64_t)((i * 7919) % 5000) - 2500;

		*t = tick_make(syms[i % 5],
		               1709303400000000ll + (int64_t)i * 1500);
		switch (i % 4) {
		case 0:
			tick_set(t, FIELD_BID, dec_raw(p, 3));
			tick_set(t, FIELD_ASK, dec_raw(p + 10, 3));
			tick_set(t, FIELD_BID_SIZE,
			         dec_raw((int64_t)i % 7 * 100, 0));
			break;
		case 1:
			tick_set(t, FIELD_LAST,
			         dec_raw(p * 10, 4)); /* 0 kept */
			tick_set(t, FIELD_LAST_SIZE, dec_raw((int64_t)i, 2));
			break;
		case 2:
			tick_set(t, FIELD_ASK,
			         dec_raw(-p, 18 - (uint8_t)(i % 19)));
			tick_set(t, FIELD_ASK_SIZE, dec_raw(INT64_MAX, 0));
			break;
		default:
			tick_set(t, FIELD_LAST, dec_raw(1, 18));
			tick_set(t, FIELD_VOLUME,
			         dec_raw((int64_t)i * 1000 + 7, 3));
			break;
		}
	}
}

static void
store_ticks(const struct fixture *f)
{
	struct store_options o = {.path = f->db, .commit_ms = 5};
	struct engine *e = quiet_engine_create();
	struct store *s = store_open(&o, err, sizeof err);
	size_t i;

	if (!s)
		fail_msg("store_open: %s", err);
	assert_int_equal(store_start(s, err, sizeof err), 0);
	for (i = 0; i < N; i++) {
		sent[i].seq = engine_apply_tick(e, &sent[i]);
		assert_true(sent[i].seq > 0);
		while (store_append_space(s) == 0)
			usleep(1000);
		assert_int_equal(store_append(s, &sent[i], 1), 0);
	}
	store_close(s);
	engine_destroy(e);
}

/* Parse an exported file with the replay feed's parser. */
static size_t
parse_file(const char *path, enum tick_format fmt, struct tick *out, size_t max)
{
	struct tick_parser p;
	char *line = NULL, reason[256];
	size_t cap = 0, n = 0, lineno = 0;
	ssize_t len;
	FILE *fp = fopen(path, "r");

	assert_non_null(fp);
	tick_parser_init(&p, fmt);
	while ((len = getline(&line, &cap, fp)) > 0) {
		enum tick_parse_result rc;

		lineno++;
		if (line[len - 1] == '\n')
			len--;
		rc = tick_parse_line(&p, line, (size_t)len, &out[n], reason,
		                     sizeof reason);
		if (rc == TICK_PARSE_ERROR)
			fail_msg("line %zu '%.*s': %s", lineno, (int)len, line,
			         reason);
		if (rc == TICK_PARSE_OK) {
			assert_true(n < max);
			n++;
		}
	}
	free(line);
	fclose(fp);
	return n;
}

static void
assert_same_tick(const struct tick *a, const struct tick *b)
{
	int f;

	assert_string_equal(a->symbol, b->symbol);
	assert_int_equal(a->ts, b->ts);
	assert_int_equal(a->present, b->present);
	for (f = 0; f < TICK_FIELD_COUNT; f++) {
		if (!tick_has(a, (enum tick_field)f))
			continue;
		if (a->value[f].mantissa != b->value[f].mantissa ||
		    a->value[f].scale != b->value[f].scale)
			fail_msg("%s %lld field %s: %lld/10^%d != %lld/10^%d",
			         a->symbol, (long long)a->ts,
			         tick_field_name((enum tick_field)f),
			         (long long)a->value[f].mantissa,
			         a->value[f].scale,
			         (long long)b->value[f].mantissa,
			         b->value[f].scale);
	}
}

static void
round_trip(void **state, bool jsonl)
{
	struct fixture *f = *state;
	struct export_options o = {.db = f->db, .from = 0, .to = INT64_MAX};
	static struct tick back[N + 1];
	size_t n, i;

	make_ticks();
	store_ticks(f);
	o.jsonl = jsonl;
	o.output = f->out;
	if (export_run(&o, err, sizeof err))
		fail_msg("export_run: %s", err);
	n = parse_file(f->out, jsonl ? TICK_FORMAT_JSONL : TICK_FORMAT_CSV,
	               back, N + 1);
	assert_int_equal(n, N);
	/* The ticks went in time order, so they come back in that order. */
	for (i = 0; i < N; i++)
		assert_same_tick(&back[i], &sent[i]);
}

static void
test_round_trip_csv(void **state)
{
	round_trip(state, false);
}

static void
test_round_trip_jsonl(void **state)
{
	round_trip(state, true);
}

static void
test_selection(void **state)
{
	struct fixture *f = *state;
	struct export_options o = {.db = f->db};
	static struct tick back[N + 1];
	size_t n, i, k;

	make_ticks();
	store_ticks(f);
	/* Two symbols, named in an order of their own, over a time range. */
	o.symbols[0] = "EUR/USD";
	o.symbols[1] = "AAPL";
	o.symbol_count = 2;
	o.from = sent[100].ts;
	o.to = sent[200].ts;
	o.jsonl = true;
	o.output = f->out;
	assert_int_equal(export_run(&o, err, sizeof err), 0);
	n = parse_file(f->out, TICK_FORMAT_UNKNOWN, back, N + 1);
	assert_int_equal(n, 40); /* 100 ticks, 2 symbols of 5 */
	for (i = 100, k = 0; i < 200; i++) {
		if (strcmp(sent[i].symbol, "AAPL") &&
		    strcmp(sent[i].symbol, "EUR/USD"))
			continue;
		assert_same_tick(&back[k++], &sent[i]);
	}
	assert_int_equal(k, 40);

	/* A symbol with no ticks: a header and nothing else. */
	o.symbols[0] = "NONE";
	o.symbol_count = 1;
	o.jsonl = false;
	o.from = 0;
	o.to = INT64_MAX;
	assert_int_equal(export_run(&o, err, sizeof err), 0);
	assert_int_equal(parse_file(f->out, TICK_FORMAT_CSV, back, N + 1), 0);
}

static void
test_errors(void **state)
{
	struct fixture *f = *state;
	struct export_options o = {.db = f->db, .to = INT64_MAX};
	char bad[700], partial[600];
	struct stat st;
	FILE *fp;

	/* No database: the message names it, and no file is made. */
	o.output = f->out;
	assert_int_equal(export_run(&o, err, sizeof err), -1);
	assert_non_null(strstr(err, "no database at"));
	assert_non_null(strstr(err, f->db));
	assert_int_not_equal(stat(f->db, &st), 0);
	assert_int_not_equal(stat(f->out, &st), 0);

	make_ticks();
	store_ticks(f);

	/* An output directory that does not exist. */
	snprintf(bad, sizeof bad, "%s/no/such/dir/out.csv", f->dir);
	o.output = bad;
	assert_int_equal(export_run(&o, err, sizeof err), -1);
	assert_non_null(strstr(err, "cannot write"));
	assert_non_null(strstr(err, "no/such/dir/out.csv"));

	/* A good export replaces the file whole and leaves no temporary. */
	fp = fopen(f->out, "w");
	assert_non_null(fp);
	fputs("old\n", fp);
	fclose(fp);
	o.output = f->out;
	assert_int_equal(export_run(&o, err, sizeof err), 0);
	assert_int_equal(stat(f->out, &st), 0);
	assert_true(st.st_size > 1000);
	snprintf(partial, sizeof partial, "%s.partial", f->out);
	assert_int_not_equal(stat(partial, &st), 0);

	/* Not a database. */
	fp = fopen(f->db, "w");
	assert_non_null(fp);
	fputs("ts,symbol,bid\n1,A,1\n", fp);
	fclose(fp);
	unlink(partial);
	assert_int_equal(export_run(&o, err, sizeof err), -1);
	assert_non_null(strstr(err, "not an SQLite database"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_lines),
	        cmocka_unit_test_setup_teardown(test_round_trip_csv, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_round_trip_jsonl, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_selection, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

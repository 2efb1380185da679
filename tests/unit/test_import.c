/*
 * Unit tests for publisher/import.c and the store's bulk path
 * (publisher/store_import.c), on real SQLite files in a scratch directory:
 * what an import stores (read back with a store_reader and the state the
 * store restores), idempotence by content, resuming from a mark as a
 * killed import leaves it, standard input, seqs that go on per symbol,
 * late ticks that go into history without moving the state back, bad
 * lines, and a database that a server holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "import.h"
#include "log.h"
#include "store.h"
#include "tick_file.h"

#include "support/tmpdir.h"

struct fixture {
	char dir[256];
	char db[512];
	char file[512];
};

static char err[512];

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	assert_int_equal(tmpdir_make(f->dir, sizeof f->dir, "test_import"), 0);
	snprintf(f->db, sizeof f->db, "%s/ticks.db", f->dir);
	snprintf(f->file, sizeof f->file, "%s/in.csv", f->dir);
	log_set_level(LOG_ERROR);
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

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* Import the given files; returns import_run()'s result. */
static int
run(const char *db, struct import_result *res, int n, ...)
{
	struct import_options o;
	va_list ap;
	int i;

	memset(&o, 0, sizeof o);
	o.db = db;
	va_start(ap, n);
	for (i = 0; i < n; i++)
		o.files[o.file_count++] = va_arg(ap, const char *);
	va_end(ap);
	err[0] = '\0';
	return import_run(&o, res, err, sizeof err);
}

/* ---------------------------------------------------- reading it back */

#define MAX_ROWS 64

struct rows {
	struct tick t[MAX_ROWS];
	size_t n;
};

static int
take_row(const struct tick *t, void *ctx)
{
	struct rows *r = ctx;

	assert_true(r->n < MAX_ROWS);
	r->t[r->n++] = *t;
	return 0;
}

/* Every stored tick of symbol (NULL: all), as export reads them. */
static void
stored(const char *db, const char *symbol, struct rows *out)
{
	struct store_reader *r = store_reader_open(db, err, sizeof err);
	const char *syms[1] = {symbol};

	assert_non_null(r);
	memset(out, 0, sizeof *out);
	assert_int_equal(store_read_ticks(r, symbol ? syms : NULL,
	                                  symbol ? 1 : 0, 0, INT64_MAX, 0,
	                                  take_row, out, err, sizeof err),
	                 0);
	store_reader_close(r);
}

struct found {
	const char *symbol;
	struct symbol_state st;
	bool seen;
};

static void
find_state(const struct symbol_state *st, void *ctx)
{
	struct found *f = ctx;

	if (!strcmp(st->symbol, f->symbol)) {
		f->st = *st;
		f->seen = true;
	}
}

/* The state the store restores for symbol, as a server would load it. */
static struct symbol_state
state_of(const char *db, const char *symbol)
{
	struct store_options so = {.path = db};
	struct store *s = store_open(&so, err, sizeof err);
	struct found f = {.symbol = symbol};

	assert_non_null(s);
	assert_int_equal(store_load_state(s, find_state, &f), 0);
	store_close(s);
	assert_true(f.seen);
	return f.st;
}

static int64_t
mantissa(const struct tick *t, enum tick_field f)
{
	assert_true(tick_has(t, f));
	return t->value[f].mantissa;
}

/* ------------------------------------------------------------- tests */

static const char usd[] = "ts,symbol,bid,ask\n"
                          "100,USD,24.80,25\n"
                          "200,USD,24.82,25.02\n"
                          "300,USD,24.9,25.4\n";

static void
test_import_stores_the_file_with_seqs_and_digits(void **state)
{
	struct fixture *f = *state;
	struct import_result res;
	struct rows rows;

	write_file(f->file, usd);
	assert_int_equal(run(f->db, &res, 1, f->file), 0);
	assert_int_equal(res.rows, 3);
	assert_int_equal(res.bad_lines, 0);
	assert_int_equal(res.inputs_done, 1);
	assert_int_equal(res.skipped, 0);
	stored(f->db, "USD", &rows);
	assert_int_equal(rows.n, 3);
	for (size_t i = 0; i < rows.n; i++) {
		assert_int_equal(rows.t[i].ts, 100 * (int64_t)(i + 1));
		assert_int_equal(rows.t[i].seq, i + 1);
	}
	/* Decimals as written: 24.80 keeps its zero. */
	assert_int_equal(mantissa(&rows.t[0], FIELD_BID), 2480);
	assert_int_equal(rows.t[0].value[FIELD_BID].scale, 2);
	assert_int_equal(mantissa(&rows.t[0], FIELD_ASK), 25);
	assert_int_equal(state_of(f->db, "USD").seq, 3);
}

static void
test_same_bytes_again_add_nothing(void **state)
{
	struct fixture *f = *state;
	struct import_result res;
	char copy[600];
	struct rows rows;

	write_file(f->file, usd);
	snprintf(copy, sizeof copy, "%s/copy.csv", f->dir);
	write_file(copy, usd);
	assert_int_equal(run(f->db, &res, 1, f->file), 0);
	/* Again, under another name, and twice in one run. */
	assert_int_equal(run(f->db, &res, 2, copy, f->file), 0);
	assert_int_equal(res.rows, 0);
	assert_int_equal(res.inputs_done, 2);
	assert_int_equal(res.skipped, 2);
	stored(f->db, NULL, &rows);
	assert_int_equal(rows.n, 3);
	/* One byte more is another input: stored as such. */
	write_file(copy, "ts,symbol,bid,ask\n400,USD,25,26\n");
	assert_int_equal(run(f->db, &res, 1, copy), 0);
	assert_int_equal(res.rows, 1);
	stored(f->db, NULL, &rows);
	assert_int_equal(rows.n, 4);
	assert_int_equal(rows.t[3].seq, 4);
}

/*
 * A row twice in a file is two ticks; a row older than the symbol's newest
 * goes into history and leaves the state where it was; a bad line and a
 * negative ts are refused and counted, not stored.
 */
static void
test_duplicate_late_and_bad_rows(void **state)
{
	struct fixture *f = *state;
	struct import_result res;
	struct symbol_state st;
	struct rows rows;

	write_file(f->file, "ts,symbol,bid,ask\n"
	                    "100,A,1.0,2.0\n"
	                    "200,A,1.5,2.5\n"
	                    "200,A,1.5,2.5\n"
	                    "150,A,9.9,9.9\n"
	                    "not a tick\n"
	                    "-1,A,3,4\n"
	                    "300,A,1.6,2.6\n");
	assert_int_equal(run(f->db, &res, 1, f->file), 0);
	assert_int_equal(res.rows, 5);
	assert_int_equal(res.bad_lines, 2);
	stored(f->db, "A", &rows);
	assert_int_equal(rows.n, 5);
	assert_int_equal(rows.t[1].ts, 200);
	assert_int_equal(rows.t[2].ts, 200);
	assert_int_equal(rows.t[3].ts, 150);
	assert_int_equal(mantissa(&rows.t[3], FIELD_BID), 99);
	for (size_t i = 0; i < rows.n; i++)
		assert_int_equal(rows.t[i].seq, i + 1);
	st = state_of(f->db, "A");
	assert_int_equal(st.seq, 5);
	assert_int_equal(st.ts, 300);
	assert_int_equal(st.value[FIELD_BID].mantissa, 16);
	/* The late row took seq 4 and changed no value. */
	for (int i = 0; i < STATE_FIELD_COUNT; i++)
		assert_true(st.changed_seq[i] != 4);
}

/* Seqs go on per symbol across imports; a whole file older than what the
 * store holds goes into history with seqs after the newest. */
static void
test_seqs_go_on_and_older_files_do_not_move_the_state(void **state)
{
	struct fixture *f = *state;
	struct import_result res;
	char older[600];
	struct symbol_state st;
	struct rows rows;

	write_file(f->file, "ts,symbol,last,last_size\n"
	                    "1000,B,10,1\n"
	                    "2000,B,11,2\n"
	                    "2000,C,50,1\n");
	snprintf(older, sizeof older, "%s/older.jsonl", f->dir);
	write_file(older, "{\"ts\":10,\"symbol\":\"B\",\"last\":7,"
	                  "\"last_size\":5}\n"
	                  "{\"ts\":3000,\"symbol\":\"C\",\"last\":51,"
	                  "\"last_size\":1}\n");
	assert_int_equal(run(f->db, &res, 2, f->file, older), 0);
	assert_int_equal(res.rows, 5);
	stored(f->db, "B", &rows);
	assert_int_equal(rows.n, 3);
	assert_int_equal(rows.t[2].ts, 10);
	assert_int_equal(rows.t[2].seq, 3);
	st = state_of(f->db, "B");
	assert_int_equal(st.seq, 3);
	assert_int_equal(st.ts, 2000);
	assert_int_equal(st.value[FIELD_LAST].mantissa, 11);
	assert_int_equal(st.value[FIELD_LOW].mantissa, 10); /* not 7 */
	assert_int_equal(st.value[FIELD_VOLUME].mantissa, 3);
	st = state_of(f->db, "C");
	assert_int_equal(st.seq, 2);
	assert_int_equal(st.value[FIELD_LAST].mantissa, 51);
	assert_int_equal(st.value[FIELD_VOLUME].mantissa, 2);
}

/* The hex SHA-256 of text, as the import names its inputs. */
static void
sha256_hex(const char *text, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0, i;

	assert_int_equal(
	        EVP_Digest(text, strlen(text), md, &len, EVP_sha256(), NULL),
	        1);
	for (i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/*
 * What a kill -9 leaves: the ticks and mark of the last commit, and nothing
 * of the transaction under way. Made here with the bulk path itself: the
 * first 10 rows committed with their mark, 5 more taken and never
 * committed. The next import resumes after the mark and the file ends up
 * stored once, in order.
 */
static void
test_resumes_from_the_mark_a_killed_import_left(void **state)
{
	struct fixture *f = *state;
	struct store_import_mark mark = {0};
	struct import_result res;
	struct store_import *im;
	struct tick_parser p;
	char text[4096], hash[65], reason[256];
	const char *line;
	struct rows rows;
	size_t n;
	int i;

	n = (size_t)snprintf(text, sizeof text, "ts,symbol,bid\n");
	for (i = 1; i <= 40; i++)
		n += (size_t)snprintf(text + n, sizeof text - n, "%d,K,%d\n", i,
		                      i);
	write_file(f->file, text);
	sha256_hex(text, hash);

	im = store_import_open(f->db, NULL, err, sizeof err);
	assert_non_null(im);
	tick_parser_init(&p, TICK_FORMAT_UNKNOWN);
	line = text;
	for (i = 0; i <= 15; i++) {
		const char *nl = strchr(line, '\n');
		struct tick t;

		if (tick_parse_line(&p, line, (size_t)(nl - line), &t, reason,
		                    sizeof reason) == TICK_PARSE_OK)
			assert_int_equal(
			        store_import_add(im, &t, NULL, err, sizeof err),
			        0);
		line = nl + 1;
		if (i == 10) {
			/* header and rows 1-10 */
			mark.offset = (uint64_t)(line - text);
			mark.lines = 11;
			mark.rows = 10;
			assert_int_equal(store_import_commit(im, hash, f->file,
			                                     n, &mark, err,
			                                     sizeof err),
			                 0);
		}
	}
	store_import_close(im); /* rows 11-15: never committed */
	stored(f->db, "K", &rows);
	assert_int_equal(rows.n, 10);

	assert_int_equal(run(f->db, &res, 1, f->file), 0);
	assert_int_equal(res.rows, 30);
	stored(f->db, "K", &rows);
	assert_int_equal(rows.n, 40);
	for (i = 0; i < 40; i++) {
		assert_int_equal(rows.t[i].ts, i + 1);
		assert_int_equal(rows.t[i].seq, (uint64_t)i + 1);
	}
	assert_int_equal(run(f->db, &res, 1, f->file), 0);
	assert_int_equal(res.rows, 0);
	assert_int_equal(res.skipped, 1);
}

static void
test_standard_input(void **state)
{
	struct fixture *f = *state;
	struct import_result res;
	struct rows rows;
	int fds[2], saved;

	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], usd, strlen(usd)), (ssize_t)strlen(usd));
	close(fds[1]);
	saved = dup(STDIN_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fds[0], STDIN_FILENO), STDIN_FILENO);
	close(fds[0]);
	assert_int_equal(run(f->db, &res, 1, "-"), 0);
	assert_int_equal(dup2(saved, STDIN_FILENO), STDIN_FILENO);
	close(saved);
	assert_int_equal(res.rows, 3);
	/* The same bytes from a file: already imported. */
	write_file(f->file, usd);
	assert_int_equal(run(f->db, &res, 1, f->file), 0);
	assert_int_equal(res.rows, 0);
	assert_int_equal(res.skipped, 1);
	stored(f->db, NULL, &rows);
	assert_int_equal(rows.n, 3);
}

static void
test_refused_while_a_server_holds_the_database(void **state)
{
	struct fixture *f = *state;
	struct store_options so = {.path = f->db};
	struct import_result res;
	struct store *s;

	write_file(f->file, usd);
	s = store_open(&so, err, sizeof err);
	assert_non_null(s);
	assert_int_equal(run(f->db, &res, 1, f->file), -1);
	assert_non_null(strstr(err, "in use"));
	store_close(s);
	assert_int_equal(run(f->db, &res, 1, f->file), 0);
	assert_int_equal(res.rows, 3);
}

static void
test_missing_file_fails_with_its_name(void **state)
{
	struct fixture *f = *state;
	struct import_result res;
	char missing[600];

	snprintf(missing, sizeof missing, "%s/nope.csv", f->dir);
	assert_int_equal(run(f->db, &res, 1, missing), -1);
	assert_non_null(strstr(err, "nope.csv"));
	assert_non_null(strstr(err, "No such file"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(
	                test_import_stores_the_file_with_seqs_and_digits, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(
	                test_same_bytes_again_add_nothing, setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_duplicate_late_and_bad_rows, setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_seqs_go_on_and_older_files_do_not_move_the_state,
	                setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_resumes_from_the_mark_a_killed_import_left, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(test_standard_input, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(
	                test_refused_while_a_server_holds_the_database, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(
	                test_missing_file_fails_with_its_name, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

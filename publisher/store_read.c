/*
 * store_read.c: store_reader, a read-only connection of its own for
 * history, export, bars and gaps, on any thread but one per reader.
 */
#include "store_private.h"

/*
 * How reads find ticks (see schema/001_init.sql):
 *
 *  - One symbol, a time range: the runs with from <= max_ts < to + lag, in
 *    (max_ts, first_id) order, each joined to its id range of ticks. That is
 *    the symbol's ticks in seq order, the order they arrived in; for a feed
 *    whose timestamps go forward, ts order. Reversed for last-N.
 *  - Several symbols: one such stream per symbol, merged by ts (ties: the
 *    order the symbols were named in). A symbol's own ticks never change
 *    order, so an export replays to the same seqs and state.
 *  - Every symbol: the commits with from <= max_ts < to + lag, in order;
 *    each commit's ticks are read (they are one contiguous id range) and
 *    its runs merged by ts in memory, at most BATCH_MAX ticks at a time.
 */

enum rstmt {
	R_SYMBOL,
	R_NAME,
	R_META_LAG,
	R_RUNS_FWD,
	R_RUNS_REV,
	R_COMMITS_FWD,
	R_COMMITS_REV,
	R_COMMIT_TICKS,
	R_BEGIN,
	R_END,
	R_COUNT
};

#define TICK_FIELDS_SQL                                                        \
	"t.bid, t.ask, t.bid_size, t.ask_size, t.last, t.last_size, "          \
	"t.volume, t.scales"
/* ?1 symbol id, ?2/?3 run max_ts range, ?4/?5 tick ts range. CROSS JOIN
 * keeps runs the outer loop, so rows come out in run order without a
 * sort. Columns: ts, seq, 7 fields, scales, run max_ts. */
#define RUNS_SQL(dir)                                                          \
	"SELECT t.ts, t.seq, " TICK_FIELDS_SQL                                 \
	", r.max_ts FROM runs AS r CROSS JOIN ticks AS t ON t.id >= "          \
	"r.first_id AND t.id < r.first_id + r.count WHERE r.symbol_id = ?1 "   \
	"AND r.max_ts >= ?2 AND r.max_ts <= ?3 AND t.ts >= ?4 AND t.ts < ?5 "  \
	"ORDER BY r.max_ts " dir ", r.first_id " dir ", t.id " dir

static const char *const reader_sql[R_COUNT] = {
        [R_SYMBOL] = "SELECT s.id, coalesce(st.max_lag, 0) FROM symbols AS "
                     "s LEFT JOIN state AS st ON st.symbol_id = s.id WHERE "
                     "s.name = ?1",
        [R_NAME] = "SELECT name FROM symbols WHERE id = ?1",
        [R_META_LAG] = "SELECT max_lag FROM meta WHERE id = 1",
        [R_RUNS_FWD] = RUNS_SQL("ASC"),
        [R_RUNS_REV] = RUNS_SQL("DESC"),
        [R_COMMITS_FWD] = "SELECT first_id, count FROM commits WHERE "
                          "max_ts >= ?1 AND max_ts <= ?2 AND ts_min < ?3 "
                          "ORDER BY max_ts, id",
        [R_COMMITS_REV] = "SELECT first_id, count FROM commits WHERE "
                          "max_ts >= ?1 AND max_ts <= ?2 AND ts_min < ?3 "
                          "ORDER BY max_ts DESC, id DESC",
        /* Columns: symbol_id, ts, seq, 7 fields, scales. */
        [R_COMMIT_TICKS] = "SELECT t.symbol_id, t.ts, t.seq, " TICK_FIELDS_SQL
                           " FROM ticks AS t WHERE t.id >= ?1 AND t.id < ?2 "
                           "AND t.ts >= ?3 AND t.ts < ?4 ORDER BY t.id",
        [R_BEGIN] = "BEGIN",
        [R_END] = "COMMIT",
};

struct store_reader {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *stmt[R_COUNT];
	sqlite3_stmt *gaps; /* NULL before schema 003 */
	/* Symbol names by id, loaded as ids are met. */
	char (*names)[TICK_SYMBOL_MAX + 1];
	size_t names_cap;
};

struct store_reader *
store_reader_open(const char *path, char *err, size_t errlen)
{
	struct store_reader *r;
	struct stat st;
	char sql[128];
	int version, rc, i;

	if (!path || !path[0]) {
		errf(err, errlen, "no database path given");
		return NULL;
	}
	if (stat(path, &st) != 0) {
		errf(err, errlen, "no database at '%s': %s", path,
		     strerror(errno));
		return NULL;
	}
	r = calloc(1, sizeof *r);
	if (!r || !(r->path = strdup(path))) {
		free(r);
		errf(err, errlen, "out of memory");
		return NULL;
	}
	rc = sqlite3_open_v2(path, &r->db,
	                     SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		errf(err, errlen, "cannot open db '%s': %s (%s)", path,
		     r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc),
		     store__error_hint(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(r->db, 1);
	sqlite3_busy_timeout(r->db, BUSY_TIMEOUT_MS);
	version = store__check_schema(r->db, path, err, errlen);
	if (version < 0)
		goto fail;
	if (version < READER_MIN_VERSION) {
		errf(err, errlen,
		     "db '%s' holds no publisher data yet (schema "
		     "version %d)",
		     path, version);
		goto fail;
	}
	snprintf(sql, sizeof sql,
	         "PRAGMA cache_size = -%d; PRAGMA mmap_size = %lld",
	         READER_CACHE_KIB, READER_MMAP_BYTES);
	store__exec_sql(r->db, sql);
	for (i = 0; i < R_COUNT; i++) {
		rc = store__prepare(r->db, reader_sql[i], &r->stmt[i]);
		if (rc != SQLITE_OK) {
			errf(err, errlen, "db '%s': cannot prepare a query: %s",
			     path, sqlite3_errmsg(r->db));
			goto fail;
		}
	}
	/* An older database (read, not migrated, by export) has no gaps. */
	if (version >= 3 &&
	    store__prepare(
	            r->db,
	            "SELECT g.first_seq, g.last_seq, g.first_ts, g.last_ts, "
	            "g.ticks FROM gaps AS g JOIN symbols AS s ON s.id = "
	            "g.symbol_id WHERE s.name = ?1 AND g.first_ts < ?3 AND "
	            "g.last_ts >= ?2 ORDER BY g.first_seq",
	            &r->gaps) != SQLITE_OK) {
		errf(err, errlen, "db '%s': cannot prepare a query: %s", path,
		     sqlite3_errmsg(r->db));
		goto fail;
	}
	return r;
fail:
	store_reader_close(r);
	return NULL;
}

void
store_reader_close(struct store_reader *r)
{
	if (!r)
		return;
	store__finalize_all(r->stmt, R_COUNT);
	sqlite3_finalize(r->gaps);
	sqlite3_close(r->db);
	free(r->names);
	free(r->path);
	free(r);
}

static int
read_error(struct store_reader *r, char *err, size_t errlen, int rc)
{
	return errf(err, errlen, "reading db '%s': %s (%s)", r->path,
	            sqlite3_errmsg(r->db), store__error_hint(rc));
}

/* The name of symbol id into out. Returns 0, or -1 with err. */
static int
reader_name(struct store_reader *r, int64_t id, char *out, char *err,
            size_t errlen)
{
	sqlite3_stmt *q = r->stmt[R_NAME];
	int rc;

	if (id > 0 && (size_t)id < r->names_cap && r->names[id][0]) {
		memcpy(out, r->names[id], sizeof r->names[id]);
		return 0;
	}
	sqlite3_bind_int64(q, 1, id);
	rc = sqlite3_step(q);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(q);
		if (rc == SQLITE_DONE)
			return errf(err, errlen,
			            "db '%s': a tick names symbol id %lld, "
			            "which is not in the symbols table",
			            r->path, (long long)id);
		return read_error(r, err, errlen, rc);
	}
	snprintf(out, TICK_SYMBOL_MAX + 1, "%s",
	         (const char *)sqlite3_column_text(q, 0));
	sqlite3_reset(q);
	if (id > 0 && id < (1 << 24)) {
		if ((size_t)id >= r->names_cap) {
			size_t cap = r->names_cap ? r->names_cap : 1024;
			void *p;

			while (cap <= (size_t)id)
				cap *= 2;
			p = realloc(r->names, cap * sizeof *r->names);
			if (!p)
				return 0; /* the cache is only a cache */
			memset((char *)p + r->names_cap * sizeof *r->names, 0,
			       (cap - r->names_cap) * sizeof *r->names);
			r->names = p;
			r->names_cap = cap;
		}
		memcpy(r->names[id], out, TICK_SYMBOL_MAX + 1);
	}
	return 0;
}

/* Decode the 7 field columns starting at col, and scales after them. */
static void
fields_from_row(sqlite3_stmt *q, int col, struct tick *t)
{
	int64_t scales = sqlite3_column_int64(q, col + TICK_FIELD_COUNT);
	int f;

	t->present = 0;
	for (f = 0; f < TICK_FIELD_COUNT; f++) {
		if (sqlite3_column_type(q, col + f) == SQLITE_NULL) {
			t->value[f].mantissa = 0;
			t->value[f].scale = 0;
			continue;
		}
		t->present |= (uint16_t)(1u << f);
		t->value[f].mantissa = sqlite3_column_int64(q, col + f);
		t->value[f].scale = store__scale_of(scales, f);
	}
}

/*
 * A stream of ticks in one direction: one symbol's runs (a statement), or
 * every symbol through the commits (all = true).
 */
struct source {
	struct store_reader *r;
	bool reverse;
	bool all;
	/* one symbol */
	sqlite3_stmt *stmt;
	bool owned;
	char symbol[TICK_SYMBOL_MAX + 1];
	/* every symbol: the current commit, merged */
	int64_t from, to;
	struct tick *rows;
	int64_t *row_symbol;
	size_t *merged;
	size_t nrows, rows_cap, pos;
	/* the head */
	struct tick cur;
	int64_t cur_run_max_ts; /* one symbol: the max_ts of cur's run */
	int64_t lag;            /* one symbol: its state.max_lag */
	bool has;
};

/* Bind a one-symbol runs statement for [from, to) with the symbol's lag. */
static void
bind_runs(sqlite3_stmt *q, int64_t symbol_id, int64_t lag, int64_t from,
          int64_t to)
{
	sqlite3_bind_int64(q, 1, symbol_id);
	sqlite3_bind_int64(q, 2, from);
	/* max_ts < to + lag, i.e. <= to - 1 + lag */
	sqlite3_bind_int64(q, 3, store__sat_add(to - 1, lag));
	sqlite3_bind_int64(q, 4, from);
	sqlite3_bind_int64(q, 5, to);
}

/* Look a symbol up: 1 found (id, lag), 0 unknown, -1 error. */
static int
reader_symbol(struct store_reader *r, const char *name, int64_t *id,
              int64_t *lag, char *err, size_t errlen)
{
	sqlite3_stmt *q = r->stmt[R_SYMBOL];
	int rc;

	sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(q, 0);
		*lag = sqlite3_column_int64(q, 1);
	}
	sqlite3_reset(q);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return read_error(r, err, errlen, rc);
}

int
store_read_gaps(struct store_reader *r, const char *symbol, int64_t from,
                int64_t to, int (*gap)(const struct store_gap *g, void *ctx),
                void *ctx, char *err, size_t errlen)
{
	sqlite3_stmt *q = r->gaps;
	int rc;

	if (!q)
		return 0;
	sqlite3_bind_text(q, 1, symbol, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, from);
	sqlite3_bind_int64(q, 3, to);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct store_gap g;

		g.first_seq = (uint64_t)sqlite3_column_int64(q, 0);
		g.last_seq = (uint64_t)sqlite3_column_int64(q, 1);
		g.first_ts = sqlite3_column_int64(q, 2);
		g.last_ts = sqlite3_column_int64(q, 3);
		g.ticks = (uint64_t)sqlite3_column_int64(q, 4);
		if (gap(&g, ctx)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? 0 : read_error(r, err, errlen, rc);
}

/* A one-symbol source. Returns 1, 0 when the symbol has no ticks, or -1. */
static int
source_symbol(struct store_reader *r, struct source *src, const char *name,
              bool own_stmt, bool reverse, int64_t from, int64_t to, char *err,
              size_t errlen)
{
	int64_t id = 0, lag = 0;
	int rc;

	memset(src, 0, sizeof *src);
	src->r = r;
	src->reverse = reverse;
	snprintf(src->symbol, sizeof src->symbol, "%s", name);
	rc = reader_symbol(r, name, &id, &lag, err, errlen);
	if (rc <= 0)
		return rc;
	src->lag = lag;
	if (own_stmt) {
		rc = sqlite3_prepare_v2(
		        r->db, reader_sql[reverse ? R_RUNS_REV : R_RUNS_FWD],
		        -1, &src->stmt, NULL);
		if (rc != SQLITE_OK)
			return read_error(r, err, errlen, rc);
		src->owned = true;
	} else {
		src->stmt = r->stmt[reverse ? R_RUNS_REV : R_RUNS_FWD];
	}
	bind_runs(src->stmt, id, lag, from, to);
	return 1;
}

static int
source_all(struct store_reader *r, struct source *src, bool reverse,
           int64_t from, int64_t to, char *err, size_t errlen)
{
	sqlite3_stmt *q = r->stmt[reverse ? R_COMMITS_REV : R_COMMITS_FWD];
	int64_t lag = 0;
	int rc;

	memset(src, 0, sizeof *src);
	src->r = r;
	src->reverse = reverse;
	src->all = true;
	src->from = from;
	src->to = to;
	rc = sqlite3_step(r->stmt[R_META_LAG]);
	if (rc == SQLITE_ROW)
		lag = sqlite3_column_int64(r->stmt[R_META_LAG], 0);
	sqlite3_reset(r->stmt[R_META_LAG]);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return read_error(r, err, errlen, rc);
	sqlite3_bind_int64(q, 1, from);
	sqlite3_bind_int64(q, 2, store__sat_add(to - 1, lag));
	sqlite3_bind_int64(q, 3, to);
	src->stmt = q;
	return 1;
}

static void
source_free(struct source *src)
{
	if (src->stmt) {
		if (src->owned)
			sqlite3_finalize(src->stmt);
		else
			sqlite3_reset(src->stmt);
	}
	src->stmt = NULL;
	free(src->rows);
	free(src->row_symbol);
	free(src->merged);
	src->rows = NULL;
	src->row_symbol = NULL;
	src->merged = NULL;
}

/* Heap of indices into keys: the smallest (ts, index) on top, or with
 * `max` the greatest. Used to merge sources and the runs of a commit. */
struct heap {
	size_t *v;
	size_t n;
	const int64_t *ts;
	bool max;
};

static bool
heap_before(const struct heap *h, size_t a, size_t b)
{
	if (h->ts[a] != h->ts[b])
		return h->max ? h->ts[a] > h->ts[b] : h->ts[a] < h->ts[b];
	return h->max ? a > b : a < b;
}

static void
heap_down(struct heap *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i, t;

		if (l < h->n && heap_before(h, h->v[l], h->v[m]))
			m = l;
		if (l + 1 < h->n && heap_before(h, h->v[l + 1], h->v[m]))
			m = l + 1;
		if (m == i)
			return;
		t = h->v[i];
		h->v[i] = h->v[m];
		h->v[m] = t;
		i = m;
	}
}

static void
heap_build(struct heap *h)
{
	size_t i;

	for (i = h->n / 2; i-- > 0;)
		heap_down(h, i);
}

/*
 * Load the next commit of an every-symbol source and merge its runs by ts
 * into src->merged (forward order). Returns 1 loaded (maybe with no rows
 * in range), 0 no more commits, -1 error.
 */
static int
source_load_commit(struct source *src, char *err, size_t errlen)
{
	struct store_reader *r = src->r;
	sqlite3_stmt *q = r->stmt[R_COMMIT_TICKS];
	int64_t first, count, *head_ts = NULL;
	size_t *run_start = NULL, *run_pos = NULL, nruns = 0, i, out = 0;
	struct heap h;
	int rc;

	rc = sqlite3_step(src->stmt);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return read_error(r, err, errlen, rc);
	first = sqlite3_column_int64(src->stmt, 0);
	count = sqlite3_column_int64(src->stmt, 1);
	src->nrows = 0;
	src->pos = 0;

	sqlite3_bind_int64(q, 1, first);
	sqlite3_bind_int64(q, 2, first + count);
	sqlite3_bind_int64(q, 3, src->from);
	sqlite3_bind_int64(q, 4, src->to);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct tick *t;

		if (src->nrows == src->rows_cap) {
			size_t cap = src->rows_cap ? src->rows_cap * 2 : 4096;
			struct tick *rows =
			        realloc(src->rows, cap * sizeof *rows);
			int64_t *sy = rows ? realloc(src->row_symbol,
			                             cap * sizeof *sy)
			                   : NULL;
			size_t *mg = NULL;

			if (rows)
				src->rows = rows;
			if (sy)
				src->row_symbol = sy;
			if (rows && sy)
				mg = realloc(src->merged, cap * sizeof *mg);
			if (!mg) {
				sqlite3_reset(q);
				return errf(err, errlen, "out of memory");
			}
			src->merged = mg;
			src->rows_cap = cap;
		}
		t = &src->rows[src->nrows];
		src->row_symbol[src->nrows] = sqlite3_column_int64(q, 0);
		t->ts = sqlite3_column_int64(q, 1);
		t->seq = (uint64_t)sqlite3_column_int64(q, 2);
		fields_from_row(q, 3, t);
		src->nrows++;
	}
	sqlite3_reset(q);
	if (rc != SQLITE_DONE)
		return read_error(r, err, errlen, rc);
	if (src->nrows == 0)
		return 1;

	/* The runs: the rows are grouped by symbol (see batch_prepare). */
	for (i = 0; i < src->nrows; i++)
		if (i == 0 || src->row_symbol[i] != src->row_symbol[i - 1])
			nruns++;
	run_start = malloc((nruns + 1) * sizeof *run_start);
	run_pos = malloc(nruns * sizeof *run_pos);
	head_ts = malloc(nruns * sizeof *head_ts);
	h.v = malloc(nruns * sizeof *h.v);
	if (!run_start || !run_pos || !head_ts || !h.v) {
		rc = errf(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0, nruns = 0; i < src->nrows; i++)
		if (i == 0 || src->row_symbol[i] != src->row_symbol[i - 1])
			run_start[nruns++] = i;
	run_start[nruns] = src->nrows;
	for (i = 0; i < nruns; i++) {
		run_pos[i] = run_start[i];
		head_ts[i] = src->rows[run_start[i]].ts;
		h.v[i] = i;
	}
	h.n = nruns;
	h.ts = head_ts;
	h.max = false;
	heap_build(&h);
	while (h.n) {
		size_t k = h.v[0];

		src->merged[out++] = run_pos[k]++;
		if (run_pos[k] < run_start[k + 1]) {
			head_ts[k] = src->rows[run_pos[k]].ts;
		} else {
			h.v[0] = h.v[--h.n];
		}
		heap_down(&h, 0);
	}
	/* Names, once per run. */
	for (i = 0; i < nruns; i++) {
		char name[TICK_SYMBOL_MAX + 1];
		size_t j;

		if (reader_name(r, src->row_symbol[run_start[i]], name, err,
		                errlen)) {
			rc = -1;
			goto out;
		}
		for (j = run_start[i]; j < run_start[i + 1]; j++)
			memcpy(src->rows[j].symbol, name, sizeof name);
	}
	src->pos = src->reverse ? src->nrows : 0;
	rc = 1;
out:
	free(run_start);
	free(run_pos);
	free(head_ts);
	free(h.v);
	return rc;
}

/* Move the source to its next tick: 1 there is one (src->cur), 0 the end,
 * -1 error. */
static int
source_next(struct source *src, char *err, size_t errlen)
{
	int rc;

	if (src->all) {
		for (;;) {
			if (!src->reverse && src->pos < src->nrows) {
				src->cur = src->rows[src->merged[src->pos++]];
				src->has = true;
				return 1;
			}
			if (src->reverse && src->pos > 0) {
				src->cur = src->rows[src->merged[--src->pos]];
				src->has = true;
				return 1;
			}
			src->nrows = 0;
			rc = source_load_commit(src, err, errlen);
			if (rc <= 0) {
				src->has = false;
				return rc;
			}
		}
	}
	if (!src->stmt) {
		src->has = false;
		return 0;
	}
	rc = sqlite3_step(src->stmt);
	if (rc == SQLITE_DONE) {
		src->has = false;
		return 0;
	}
	if (rc != SQLITE_ROW)
		return read_error(src->r, err, errlen, rc);
	memcpy(src->cur.symbol, src->symbol, sizeof src->symbol);
	src->cur.ts = sqlite3_column_int64(src->stmt, 0);
	src->cur.seq = (uint64_t)sqlite3_column_int64(src->stmt, 1);
	fields_from_row(src->stmt, 2, &src->cur);
	src->cur_run_max_ts =
	        sqlite3_column_int64(src->stmt, 3 + TICK_FIELD_COUNT);
	src->has = true;
	return 1;
}

/* Start and end the read transaction that makes one call see one
 * snapshot, however many statements it runs. */
static int
read_begin(struct store_reader *r, char *err, size_t errlen)
{
	int rc = store__step_done(r->stmt[R_BEGIN]);

	return rc == SQLITE_OK ? 0 : read_error(r, err, errlen, rc);
}

static void
read_end(struct store_reader *r)
{
	if (!sqlite3_get_autocommit(r->db))
		store__step_done(r->stmt[R_END]);
}

/* Ticks kept for last_n, then handed out oldest first. */
struct tick_buf {
	struct tick *v;
	size_t n, cap;
};

static int
tick_buf_push(struct tick_buf *b, const struct tick *t)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		struct tick *v = realloc(b->v, cap * sizeof *v);

		if (!v)
			return -1;
		b->v = v;
		b->cap = cap;
	}
	b->v[b->n++] = *t;
	return 0;
}

int
store_read_ticks(struct store_reader *r, const char *const *symbols,
                 size_t symbol_count, int64_t from, int64_t to, uint32_t last_n,
                 int (*row)(const struct tick *t, void *ctx), void *ctx,
                 char *err, size_t errlen)
{
	bool reverse = last_n > 0;
	struct source *src = NULL;
	struct tick_buf keep = {0};
	struct heap h = {0};
	int64_t *head_ts = NULL;
	size_t nsrc = 0, nalloc = 0, i, j;
	int rc = 0;

	if (err && errlen)
		err[0] = '\0';
	if (from >= to)
		return 0;
	if (read_begin(r, err, errlen))
		return -1;

	if (!symbols || symbol_count == 0) {
		src = calloc(1, sizeof *src);
		if (!src) {
			rc = errf(err, errlen, "out of memory");
			goto out;
		}
		nalloc = 1;
		if (source_all(r, src, reverse, from, to, err, errlen) < 0) {
			rc = -1;
			goto out;
		}
		nsrc = 1;
	} else {
		src = calloc(symbol_count, sizeof *src);
		if (!src) {
			rc = errf(err, errlen, "out of memory");
			goto out;
		}
		nalloc = symbol_count;
		for (i = 0; i < symbol_count; i++) {
			bool dup = false;

			for (j = 0; j < i; j++)
				dup = dup ||
				      strcmp(symbols[i], symbols[j]) == 0;
			if (dup)
				continue;
			rc = source_symbol(r, &src[nsrc], symbols[i],
			                   symbol_count > 1, reverse, from, to,
			                   err, errlen);
			if (rc < 0)
				goto out;
			if (rc == 1)
				nsrc++;
			rc = 0;
		}
	}

	/* Merge the sources by the ts of their heads. */
	head_ts = malloc((nsrc ? nsrc : 1) * sizeof *head_ts);
	h.v = malloc((nsrc ? nsrc : 1) * sizeof *h.v);
	if (!head_ts || !h.v) {
		rc = errf(err, errlen, "out of memory");
		goto out;
	}
	h.ts = head_ts;
	h.max = reverse;
	for (i = 0; i < nsrc; i++) {
		rc = source_next(&src[i], err, errlen);
		if (rc < 0)
			goto out;
		if (rc == 1) {
			head_ts[i] = src[i].cur.ts;
			h.v[h.n++] = i;
		}
	}
	rc = 0;
	heap_build(&h);
	while (h.n) {
		struct source *top = &src[h.v[0]];

		if (reverse) {
			if (tick_buf_push(&keep, &top->cur)) {
				rc = errf(err, errlen, "out of memory");
				goto out;
			}
			if (keep.n == last_n)
				break;
		} else if (row(&top->cur, ctx)) {
			goto out;
		}
		rc = source_next(top, err, errlen);
		if (rc < 0)
			goto out;
		if (rc == 1)
			head_ts[h.v[0]] = top->cur.ts;
		else
			h.v[0] = h.v[--h.n];
		rc = 0;
		heap_down(&h, 0);
	}
	/* last_n: collected newest first; hand them out oldest first. */
	for (i = keep.n; i-- > 0;)
		if (row(&keep.v[i], ctx))
			break;
out:
	for (i = 0; i < nalloc; i++)
		source_free(&src[i]);
	free(src);
	free(head_ts);
	free(h.v);
	free(keep.v);
	read_end(r);
	return rc;
}

/* ------------------------------------------------------ ts-ordered history */

/* Ticks held back until no later-read tick can come before them. */
#define HISTORY_WINDOW_MAX 262144

struct tick_heap {
	struct tick *v;
	size_t n, cap;
	bool max; /* greatest (ts, seq) on top, for reading backwards */
};

static bool
tick_before(const struct tick_heap *h, const struct tick *a,
            const struct tick *b)
{
	bool less = a->ts != b->ts ? a->ts < b->ts : a->seq < b->seq;

	return h->max ? !less && (a->ts != b->ts || a->seq != b->seq) : less;
}

static int
tick_heap_push(struct tick_heap *h, const struct tick *t)
{
	size_t i;

	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 256;
		struct tick *v = realloc(h->v, cap * sizeof *v);

		if (!v)
			return -1;
		h->v = v;
		h->cap = cap;
	}
	for (i = h->n++; i > 0; i = (i - 1) / 2) {
		if (!tick_before(h, t, &h->v[(i - 1) / 2]))
			break;
		h->v[i] = h->v[(i - 1) / 2];
	}
	h->v[i] = *t;
	return 0;
}

static void
tick_heap_pop(struct tick_heap *h, struct tick *out)
{
	struct tick last;
	size_t i = 0;

	*out = h->v[0];
	last = h->v[--h->n];
	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && tick_before(h, &h->v[c + 1], &h->v[c]))
			c++;
		if (!tick_before(h, &h->v[c], &last))
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
}

/* Whether the held tick on top can be given out (see below); past the
 * window's size it goes anyway. */
static bool
history_ready(const struct tick_heap *h, int64_t bound)
{
	if (h->max)
		return h->v[0].ts >= bound;
	return h->v[0].ts <= bound || h->n >= HISTORY_WINDOW_MAX;
}

/* Where store_read_history()'s ticks go: to row() in (ts, seq) order, or,
 * reading backward (last_n > 0), into keep until it holds last_n. */
struct history_out {
	uint32_t last_n;
	struct tick_buf keep;
	int (*row)(const struct tick *t, void *ctx);
	void *ctx;
	bool stop; /* row() asked to stop, or keep holds last_n */
};

/* Give out the held ticks, top first, as long as they are ready at bound
 * (every one, with all). Returns 0, or -1 out of memory. */
static int
history_give(struct tick_heap *h, bool all, int64_t bound,
             struct history_out *o)
{
	struct tick t;

	while (h->n && !o->stop && (all || history_ready(h, bound))) {
		tick_heap_pop(h, &t);
		if (o->last_n) {
			if (tick_buf_push(&o->keep, &t))
				return -1;
			o->stop = o->keep.n == o->last_n;
		} else {
			o->stop = o->row(&t, o->ctx) != 0;
		}
	}
	return 0;
}

/*
 * The symbol's ticks arrive in seq order, and the runs bound how far that
 * is from ts order (see schema/001_init.sql): reading forward, every tick
 * not read yet has ts >= the current run's max_ts - lag (and a greater
 * seq); reading backward, every tick not read yet has ts <= the current
 * run's max_ts (and a smaller seq). A held tick on the right side of that
 * bound can be given out.
 */
int
store_read_history(struct store_reader *r, const char *symbol, int64_t from,
                   int64_t to, uint32_t last_n,
                   int (*row)(const struct tick *t, void *ctx), void *ctx,
                   char *err, size_t errlen)
{
	bool reverse = last_n > 0;
	struct tick_heap h = {.max = reverse};
	struct history_out o = {.last_n = last_n, .row = row, .ctx = ctx};
	struct source src;
	size_t i;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!symbol)
		return errf(err, errlen, "history needs a symbol");
	if (from >= to)
		return 0;
	if (read_begin(r, err, errlen))
		return -1;
	rc = source_symbol(r, &src, symbol, false, reverse, from, to, err,
	                   errlen);
	if (rc <= 0)
		goto out_nosrc;
	while (!o.stop && (rc = source_next(&src, err, errlen)) == 1) {
		int64_t bound =
		        reverse ? src.cur_run_max_ts
		                : store__sat_add(src.cur_run_max_ts, -src.lag);

		if (history_give(&h, false, bound, &o) ||
		    (!o.stop && tick_heap_push(&h, &src.cur))) {
			rc = errf(err, errlen, "out of memory");
			goto out;
		}
	}
	if (rc < 0)
		goto out;
	if (history_give(&h, true, 0, &o)) {
		rc = errf(err, errlen, "out of memory");
		goto out;
	}
	for (i = o.keep.n; i-- > 0;)
		if (row(&o.keep.v[i], ctx))
			break;
	rc = 0;
out:
	source_free(&src);
out_nosrc:
	free(h.v);
	free(o.keep.v);
	read_end(r);
	return rc < 0 ? -1 : 0;
}

/* --------------------------------------------------------------- bars */

/* A bar being built: which ticks gave its open and close. */
struct bar_acc {
	struct bar b;
	int64_t open_ts, close_ts;
	uint64_t open_seq, close_seq;
};

struct bar_list {
	struct bar_acc *v;
	size_t n, cap;
};

static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* The smallest multiple of iv (> 0) at or above v, or INT64_MAX when it is
 * beyond. */
static int64_t
align_up(int64_t v, int64_t iv)
{
	__int128 q = (__int128)v / iv, t;

	/* Division truncates toward zero: q * iv is already >= v for a
	 * negative v, and <= v for a positive one. */
	if (q * iv < v)
		q++;
	t = q * iv;
	return t > INT64_MAX ? INT64_MAX : (int64_t)t;
}

/* The bar starting at t: found (mostly the newest), or inserted in order. */
static struct bar_acc *
bar_at(struct bar_list *l, int64_t t)
{
	size_t lo = 0, hi = l->n;

	if (l->n && l->v[l->n - 1].b.t == t)
		return &l->v[l->n - 1];
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (l->v[mid].b.t < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < l->n && l->v[lo].b.t == t)
		return &l->v[lo];
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		struct bar_acc *v = realloc(l->v, cap * sizeof *v);

		if (!v)
			return NULL;
		l->v = v;
		l->cap = cap;
	}
	memmove(&l->v[lo + 1], &l->v[lo], (l->n - lo) * sizeof *l->v);
	l->n++;
	memset(&l->v[lo], 0, sizeof l->v[lo]);
	l->v[lo].b.t = t;
	return &l->v[lo];
}

/* Add a trade tick to its bar. Returns 0, or -1 when the volume overflows. */
static int
bar_add(struct bar_acc *a, const struct tick *t)
{
	struct decimal last = t->value[FIELD_LAST];

	if (a->b.ticks == 0) {
		a->b.open = a->b.high = a->b.low = a->b.close = last;
		a->b.volume = (struct decimal){0, 0};
		a->open_ts = a->close_ts = t->ts;
		a->open_seq = a->close_seq = t->seq;
	} else {
		if (decimal_cmp(last, a->b.high) > 0)
			a->b.high = last;
		if (decimal_cmp(last, a->b.low) < 0)
			a->b.low = last;
		/* open and close go by time (then seq), whatever order the
		 * ticks are read in. */
		if (t->ts < a->open_ts ||
		    (t->ts == a->open_ts && t->seq < a->open_seq)) {
			a->b.open = last;
			a->open_ts = t->ts;
			a->open_seq = t->seq;
		}
		if (t->ts > a->close_ts ||
		    (t->ts == a->close_ts && t->seq > a->close_seq)) {
			a->b.close = last;
			a->close_ts = t->ts;
			a->close_seq = t->seq;
		}
	}
	a->b.ticks++;
	if (tick_has(t, FIELD_LAST_SIZE) &&
	    decimal_add(a->b.volume, t->value[FIELD_LAST_SIZE], &a->b.volume) !=
	            0)
		return -1;
	return 0;
}

int
store_read_bars(struct store_reader *r, const char *symbol, int64_t from,
                int64_t to, int64_t interval_us, uint32_t last_n,
                int (*bar)(const struct bar *b, void *ctx), void *ctx,
                char *err, size_t errlen)
{
	bool reverse = last_n > 0;
	struct bar_list bars = {0};
	struct source src;
	int64_t lo, hi;
	size_t emitted = 0, i;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (interval_us <= 0)
		return errf(err, errlen, "bar interval must be > 0 µs");
	if (!symbol)
		return errf(err, errlen, "bars need a symbol");
	/* Bars starting in [from, to), each with all the ticks of its
	 * interval: the ticks in [from rounded up, to rounded up). */
	lo = align_up(from, interval_us);
	hi = align_up(to, interval_us);
	if (lo >= hi)
		return 0;
	if (read_begin(r, err, errlen))
		return -1;
	rc = source_symbol(r, &src, symbol, false, reverse, lo, hi, err,
	                   errlen);
	if (rc <= 0)
		goto out_nosrc;
	while ((rc = source_next(&src, err, errlen)) == 1) {
		const struct tick *t = &src.cur;
		struct bar_acc *a;

		if (reverse && bars.n >= last_n &&
		    src.cur_run_max_ts < bars.v[bars.n - last_n].b.t) {
			/* Every tick from here on is older than the newest
			 * last_n bars (its run's max_ts bounds it). */
			break;
		}
		if (!reverse) {
			/* Bars that no later tick can reach are complete:
			 * a later tick has ts >= its run's max_ts - lag. */
			int64_t safe =
			        store__sat_add(src.cur_run_max_ts, -src.lag);

			while (emitted < bars.n &&
			       store__sat_add(bars.v[emitted].b.t,
			                      interval_us) <= safe) {
				if (bar(&bars.v[emitted].b, ctx)) {
					rc = 0;
					goto out;
				}
				emitted++;
			}
			/* Drop what was handed out now and then, so a long
			 * range holds only the bars still open. */
			if (emitted > 1024 && emitted * 2 > bars.n) {
				memmove(bars.v, bars.v + emitted,
				        (bars.n - emitted) * sizeof *bars.v);
				bars.n -= emitted;
				emitted = 0;
			}
		}
		if (!tick_has(t, FIELD_LAST))
			continue;
		/* ts >= lo, a multiple of the interval: no overflow. */
		a = bar_at(&bars, floor_div(t->ts, interval_us) * interval_us);
		if (!a) {
			rc = errf(err, errlen, "out of memory");
			goto out;
		}
		if (bar_add(a, t)) {
			rc = errf(err, errlen,
			          "volume of the %s bar at %lld overflows",
			          symbol, (long long)a->b.t);
			goto out;
		}
	}
	if (rc < 0)
		goto out;
	rc = 0;
	i = emitted;
	if (reverse && bars.n > last_n)
		i = bars.n - last_n;
	for (; i < bars.n; i++)
		if (bar(&bars.v[i].b, ctx))
			break;
out:
	source_free(&src);
out_nosrc:
	free(bars.v);
	read_end(r);
	return rc < 0 ? -1 : 0;
}

int
store_read_max_ts(struct store_reader *r, int64_t *out, char *err,
                  size_t errlen)
{
	int rc;

	*out = INT64_MIN;
	rc = store__query_int64(r->db, "SELECT max_ts FROM meta WHERE id = 1",
	                        out, NULL);
	if (rc != SQLITE_OK)
		return errf(err, errlen, "cannot read db '%s': %s (%s)",
		            r->path, sqlite3_errmsg(r->db),
		            store__error_hint(rc));
	return 0;
}

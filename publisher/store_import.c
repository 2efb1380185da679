/*
 * store_import.c: the bulk path of `publisher import` (store.h,
 * "importing"; the command is publisher/import.c).
 *
 * The database is opened with store_open(), exactly as the server opens
 * it (the -lock flock, migrations, the states and symbols loaded), but the
 * writer thread is never started: the importing thread writes itself,
 * with the writer's own prepared statements and binders, so an imported
 * tick is stored as a served one is (ticks, runs, states, commits, meta).
 * What differs is the size of the steps. Ticks are gathered IMPORT_STAGE
 * at a time, grouped by symbol into runs and written inside one open
 * transaction, which the caller commits, with the import's mark
 * (schema/005), every few hundred thousand ticks: a kill -9 then loses at
 * most one transaction, and the mark says where to resume.
 *
 * Any failed write rolls the transaction back, and the handle refuses
 * further work: the states in memory have taken ticks that are no longer
 * stored. The database opened again reads them back as they are.
 */
#include "store_private.h"

/* Ticks written per step inside a transaction: each step is one run per
 * symbol, one commits row, one state row per symbol touched. */
#define IMPORT_STAGE   16384
#define PREFETCH_AHEAD 8

/* One gathered tick's place: its symbol and the seq it was given. */
struct staged {
	struct sym *sym;
	uint64_t seq;
};

struct store_import {
	struct store *s;
	char *path;
	sqlite3_stmt *find; /* the mark of a hash */
	sqlite3_stmt *mark; /* write it */
	struct tick *ticks; /* gathered, IMPORT_STAGE */
	struct staged *staged;
	uint32_t *order; /* staged[] grouped by symbol */
	size_t n;
	struct group *groups;
	size_t groups_cap;
	bool in_txn;
	bool bulk;                 /* in the import's journal mode */
	bool broken;               /* a write failed: nothing more is taken */
	uint64_t rows_uncommitted; /* written or gathered, not committed */
	uint64_t rows_committed;
};

static const char find_sql[] =
        "SELECT byte_offset, lines_read, rows, bad_lines, done FROM "
        "imports WHERE hash = ?1";
static const char mark_sql[] =
        "INSERT OR REPLACE INTO imports (hash, name, size, byte_offset, "
        "lines_read, rows, bad_lines, done, started_at, updated_at) VALUES "
        "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, coalesce((SELECT started_at FROM "
        "imports WHERE hash = ?1), ?9), ?9)";

/*
 * The import's pragmas: journal_mode=DELETE with synchronous=FULL. In WAL
 * mode (the server's) every page is written twice, to the WAL and then by
 * the checkpoint into the database; a bulk load appends tens of megabytes
 * of new pages, which a rollback journal does not copy at all (it keeps
 * the old content of the few pages a commit changes), so each page is
 * written once: measured here, 1.2-1.3 M ticks/s against 1.05-1.1 M in WAL
 * mode. FULL makes each commit, and so each mark, durable against a power
 * cut too; commits are seconds apart, so its fsyncs cost nothing that
 * shows. The switch needs the only connection to the database: when a
 * reader has it open, the import stays in WAL mode (true: switched).
 */
static bool
set_bulk_mode(sqlite3 *db)
{
	sqlite3_stmt *q;
	bool rollback = false;

	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = DELETE", -1, &q,
	                       NULL) != SQLITE_OK)
		return false;
	if (sqlite3_step(q) == SQLITE_ROW) {
		const char *mode = (const char *)sqlite3_column_text(q, 0);

		rollback = mode && !strcmp(mode, "delete");
	}
	sqlite3_finalize(q);
	if (rollback && store__exec_sql(db, "PRAGMA synchronous = FULL"))
		return false;
	return rollback;
}

/* Open the store as the server does, without its writer or its queue. */
static int
open_store(struct store_import *im, const struct session_rule *sessions,
           char *err, size_t errlen)
{
	struct store_options so;

	memset(&so, 0, sizeof so);
	so.path = im->path;
	so.queue_capacity = 1; /* unused: the import writes itself */
	if (sessions)
		so.sessions = *sessions;
	im->s = store_open(&so, err, errlen);
	if (!im->s)
		return -1;
	if (store__prepare(im->s->db, find_sql, &im->find) != SQLITE_OK ||
	    store__prepare(im->s->db, mark_sql, &im->mark) != SQLITE_OK)
		return errf(err, errlen,
		            "db '%s': cannot prepare the import: %s", im->path,
		            sqlite3_errmsg(im->s->db));
	im->bulk = set_bulk_mode(im->s->db);
	if (!im->bulk)
		log_info("store: db '%s' is open elsewhere (a reader): "
		         "importing "
		         "in WAL mode, " STORE_IMPORT_PRAGMAS_SHARED,
		         im->path);
	return 0;
}

static void
close_store(struct store_import *im)
{
	if (im->s && im->in_txn && im->s->db)
		store__step_done(im->s->stmt[W_ROLLBACK]);
	im->in_txn = false;
	/* Leave the database in the server's mode. Should a reader have
	 * opened it meanwhile, the next server to open it switches it. */
	if (im->s && im->bulk && im->s->db &&
	    store__exec_sql(im->s->db, "PRAGMA journal_mode = WAL"))
		log_warn("store: db '%s' is left in journal_mode=DELETE (%s); "
		         "the server switches it back to WAL when it opens it",
		         im->path, sqlite3_errmsg(im->s->db));
	im->bulk = false;
	sqlite3_finalize(im->find);
	sqlite3_finalize(im->mark);
	im->find = im->mark = NULL;
	store_close(im->s);
	im->s = NULL;
	im->n = 0;
	im->rows_uncommitted = 0;
	im->broken = false;
}

struct store_import *
store_import_open(const char *path, const struct session_rule *sessions,
                  char *err, size_t errlen)
{
	struct store_import *im = calloc(1, sizeof *im);

	if (!im) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	im->path = strdup(path ? path : "");
	im->ticks = malloc(IMPORT_STAGE * sizeof *im->ticks);
	im->staged = malloc(IMPORT_STAGE * sizeof *im->staged);
	im->order = malloc(IMPORT_STAGE * sizeof *im->order);
	if (!im->path || !im->ticks || !im->staged || !im->order) {
		errf(err, errlen, "out of memory");
		store_import_close(im);
		return NULL;
	}
	if (open_store(im, sessions, err, errlen)) {
		store_import_close(im);
		return NULL;
	}
	return im;
}

void
store_import_close(struct store_import *im)
{
	if (!im)
		return;
	close_store(im);
	free(im->groups);
	free(im->order);
	free(im->staged);
	free(im->ticks);
	free(im->path);
	free(im);
}

uint64_t
store_import_rows(const struct store_import *im)
{
	return im->rows_committed;
}

const char *
store_import_pragmas(const struct store_import *im)
{
	return im->bulk ? STORE_IMPORT_PRAGMAS : STORE_IMPORT_PRAGMAS_SHARED;
}

int
store_import_find(struct store_import *im, const char *hash,
                  struct store_import_mark *out, char *err, size_t errlen)
{
	sqlite3_stmt *q = im->find;
	int rc;

	memset(out, 0, sizeof *out);
	sqlite3_bind_text(q, 1, hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		out->offset = (uint64_t)sqlite3_column_int64(q, 0);
		out->lines = (uint64_t)sqlite3_column_int64(q, 1);
		out->rows = (uint64_t)sqlite3_column_int64(q, 2);
		out->bad_lines = (uint64_t)sqlite3_column_int64(q, 3);
		out->done = sqlite3_column_int64(q, 4) != 0;
	}
	sqlite3_reset(q);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return errf(err, errlen, "db '%s': cannot read the imports: %s (%s)",
	            im->path, sqlite3_errmsg(im->s->db), store__error_hint(rc));
}

/* A write failed: roll back, and say so with what to do. */
static int
write_failed(struct store_import *im, int rc, char *err, size_t errlen)
{
	struct store *s = im->s;
	int sys = sqlite3_system_errno(s->db);

	errf(err, errlen, "db '%s': cannot write: %s%s%s (%s)", im->path,
	     sqlite3_errmsg(s->db), sys ? ": " : "", sys ? strerror(sys) : "",
	     store__error_hint(rc));
	if (!sqlite3_get_autocommit(s->db))
		store__step_done(s->stmt[W_ROLLBACK]);
	im->in_txn = false;
	im->broken = true;
	return -1;
}

/*
 * Group the gathered ticks by symbol (a stable counting sort: each
 * symbol's ticks keep their seq order) into im->groups, one run each.
 * Returns the number of groups, or -1 when out of memory.
 */
static long
group_staged(struct store_import *im)
{
	struct store *s = im->s;
	uint32_t serial = ++s->batch.serial;
	size_t ngroups = 0, i, g;

	for (i = 0; i < im->n; i++) {
		struct sym *y = im->staged[i].sym;
		struct group *gr;

		if (y->mark != serial) {
			if (ngroups == im->groups_cap) {
				size_t cap = im->groups_cap ? im->groups_cap * 2
				                            : 1024;
				struct group *p =
				        realloc(im->groups, cap * sizeof *p);

				if (!p)
					return -1;
				im->groups = p;
				im->groups_cap = cap;
			}
			y->mark = serial;
			y->group = (uint32_t)ngroups;
			gr = &im->groups[ngroups++];
			memset(gr, 0, sizeof *gr);
			gr->sym = y;
			gr->ts_min = INT64_MAX;
			gr->insert_symbol = !y->stored;
		}
		gr = &im->groups[y->group];
		gr->count++;
		if (im->ticks[i].ts < gr->ts_min)
			gr->ts_min = im->ticks[i].ts;
	}
	for (g = 0, i = 0; g < ngroups; g++) {
		im->groups[g].first = (uint32_t)i;
		i += im->groups[g].count;
	}
	for (i = 0; i < im->n; i++)
		im->order[im->groups[im->staged[i].sym->group].first++] =
		        (uint32_t)i;
	for (g = 0; g < ngroups; g++)
		im->groups[g].first -= im->groups[g].count;
	return (long)ngroups;
}

/*
 * Write the gathered ticks inside the open transaction (opened here when
 * none is): symbols rows, ticks grouped by symbol, a run and a state row
 * per symbol, a commits row and the meta counters. Returns 0, or -1 with
 * err (rolled back).
 */
static int
write_staged(struct store_import *im, char *err, size_t errlen)
{
	struct store *s = im->s;
	sqlite3_stmt **w = s->stmt;
	int64_t first_id = s->next_id, id = first_id;
	int64_t ts_min = INT64_MAX, max_ts = s->max_ts;
	long ngroups;
	size_t g, k;
	int rc = SQLITE_OK;

	if (im->broken)
		return errf(err, errlen,
		            "db '%s': an earlier write failed; nothing more "
		            "is taken",
		            im->path);
	if (!im->in_txn) {
		rc = store__step_done(w[W_BEGIN]);
		if (rc != SQLITE_OK)
			return write_failed(im, rc, err, errlen);
		im->in_txn = true;
	}
	if (im->n == 0)
		return 0;
	ngroups = group_staged(im);
	if (ngroups < 0) {
		errf(err, errlen, "out of memory");
		store__step_done(w[W_ROLLBACK]);
		im->in_txn = false;
		im->broken = true;
		return -1;
	}
	for (g = 0; rc == SQLITE_OK && g < (size_t)ngroups; g++) {
		struct group *gr = &im->groups[g];
		struct sym *y = gr->sym;
		const struct symbol_state *st;

		/* The symbol's running max is already past every gathered
		 * tick (store_import_add() keeps it), which is what a run's
		 * max_ts is. */
		gr->max_ts = y->max_ts;
		if (store__span(gr->max_ts, gr->ts_min) > y->max_lag)
			y->max_lag = store__span(gr->max_ts, gr->ts_min);
		gr->max_lag = y->max_lag;
		if (gr->ts_min < ts_min)
			ts_min = gr->ts_min;
		if (gr->max_ts > max_ts)
			max_ts = gr->max_ts;
		st = state_table_find(s->states, y->name);
		if (st)
			gr->st = *st;
		if (gr->insert_symbol) {
			rc = store__write_symbol(s, y);
			y->stored = true;
		}
	}

	for (k = 0; rc == SQLITE_OK && k < im->n;) {
		bool many = im->n - k >= INSERT_ROWS;
		sqlite3_stmt *st = many ? w[W_TICKS_MANY] : w[W_TICK_ONE];
		size_t rows = many ? INSERT_ROWS : 1, r;

		for (r = 0; r < rows; r++, k++) {
			uint32_t i = im->order[k];

			/* The gather jumps across the stage: ask for the tick
			 * a few rows ahead while this one is bound. */
			if (k + PREFETCH_AHEAD < im->n) {
				const struct tick *ahead =
				        &im->ticks[im->order[k +
				                             PREFETCH_AHEAD]];

				__builtin_prefetch(ahead);
				__builtin_prefetch((const char *)ahead + 64);
				__builtin_prefetch((const char *)ahead + 128);
			}

			store__bind_tick(st, (int)(r * TICK_COLUMNS) + 1, id++,
			                 im->staged[i].sym->id, &im->ticks[i],
			                 im->staged[i].seq);
		}
		rc = store__step_done(st);
	}

	for (g = 0; rc == SQLITE_OK && g < (size_t)ngroups; g++)
		rc = store__write_group(s, &im->groups[g], first_id);
	if (store__span(max_ts, ts_min) > s->max_lag)
		s->max_lag = store__span(max_ts, ts_min);
	s->max_ts = max_ts;
	if (rc == SQLITE_OK)
		rc = store__write_commit(s, first_id, (int64_t)im->n, ts_min,
		                         max_ts);
	s->next_id = id;
	if (rc == SQLITE_OK)
		rc = store__write_meta(s, s->next_id, s->max_ts, s->max_lag);
	if (rc != SQLITE_OK)
		return write_failed(im, rc, err, errlen);
	im->n = 0;
	return 0;
}

/*
 * A tick older than the newest its symbol holds: history, not news. It
 * takes the symbol's next seq (per-symbol seqs stay unique) and leaves
 * every value of the state as it was. Returns the seq, or 0.
 */
static uint64_t
take_late(struct store *s, const struct tick *t)
{
	const struct symbol_state *cur = state_table_find(s->states, t->symbol);
	struct symbol_state next;

	if (!cur)
		return state_table_apply(s->states, t);
	if (cur->seq == UINT64_MAX)
		return 0;
	next = *cur;
	next.seq++;
	if (state_table_restore(s->states, &next))
		return 0;
	return next.seq;
}

int
store_import_add(struct store_import *im, const struct tick *t,
                 uint64_t *refused, char *err, size_t errlen)
{
	struct store *s = im->s;
	size_t len = strnlen(t->symbol, sizeof t->symbol);
	struct sym *y;
	struct tick *dst;
	uint64_t seq;

	if (im->broken || im->n == IMPORT_STAGE)
		if (write_staged(im, err, errlen))
			return -1;
	y = store__sym_find(&s->syms, t->symbol, len,
	                    hash_name(t->symbol, len));
	dst = &im->ticks[im->n];
	*dst = *t;
	dst->seq = 0;
	seq = y && t->ts < y->max_ts ? take_late(s, dst)
	                             : state_table_apply(s->states, dst);
	if (!seq) {
		if (refused)
			(*refused)++;
		return 0;
	}
	if (!y && !(y = store__sym_add(&s->syms, t->symbol, len, 0))) {
		/* The state has the tick but the store cannot place it. */
		im->broken = true;
		return errf(err, errlen, "out of memory");
	}
	if (t->ts > y->max_ts)
		y->max_ts = t->ts;
	im->staged[im->n].sym = y;
	im->staged[im->n].seq = seq;
	im->n++;
	im->rows_uncommitted++;
	return 0;
}

int
store_import_commit(struct store_import *im, const char *hash, const char *name,
                    uint64_t size, const struct store_import_mark *mark,
                    char *err, size_t errlen)
{
	struct store *s = im->s;
	sqlite3_stmt *q = im->mark;
	int rc;

	if (write_staged(im, err, errlen))
		return -1;
	sqlite3_bind_text(q, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, (sqlite3_int64)size);
	sqlite3_bind_int64(q, 4, (sqlite3_int64)mark->offset);
	sqlite3_bind_int64(q, 5, (sqlite3_int64)mark->lines);
	sqlite3_bind_int64(q, 6, (sqlite3_int64)mark->rows);
	sqlite3_bind_int64(q, 7, (sqlite3_int64)mark->bad_lines);
	sqlite3_bind_int(q, 8, mark->done ? 1 : 0);
	sqlite3_bind_int64(q, 9, clock_wall_us());
	rc = store__step_done(q);
	if (rc == SQLITE_OK)
		rc = store__step_done(s->stmt[W_COMMIT]);
	if (rc != SQLITE_OK)
		return write_failed(im, rc, err, errlen);
	im->in_txn = false;
	im->rows_committed += im->rows_uncommitted;
	im->rows_uncommitted = 0;
	return 0;
}

/*
 * store_rewind.c: a replay's seek back (store_rewind in store.h), on the
 * writer thread, in one transaction.
 *
 * What goes. For each cut symbol, its ticks with seqs after the cut: a
 * suffix of its ticks, so of its runs (which are in seq order by
 * (max_ts, first_id)). The runs are walked from the newest: one whose
 * every tick goes is deleted; the first that keeps some is cut short and
 * its max_ts worked out again (the running maximum up to the ticks it
 * keeps), which keeps the runs in seq order for what comes after; older
 * runs are untouched. The commits that held deleted ticks are then worked
 * out again in id order: an empty one is deleted, the others get the
 * ts_min and running max_ts of what they keep, so commits.max_ts still
 * only grows (retention and exports rely on it). A commit may keep holes
 * in its id range; readers take its ids as a range and find no tick
 * there, as after retention.
 *
 * What stays. Each cut symbol's state is folded again from its remaining
 * ticks, oldest first, with their stored seqs (symbol_state_apply): the
 * same rules the engine applied them with, so the state is the one the
 * engine had at the cut (when the store holds every tick of the symbol).
 * The ticks' ids are not reused (meta.next_tick_id stays), and meta gets
 * a new epoch and the new running max ts.
 *
 * Failures are retried with the batches' back-off; the replay waits
 * meanwhile (it is held until the rewind is done). Nothing in memory
 * changes before the commit, so a retry starts from the same place.
 */
#include "store_private.h"

#include "epoch.h"

enum rstmt {
	Q_RUN_BEFORE,
	Q_DEL_TICKS,
	Q_RANGE,
	Q_DEL_RUN,
	Q_FOLD,
	Q_DEL_STATE,
	Q_DEL_GAPS,
	Q_COMMIT_AT,
	Q_COMMIT_FIRST,
	Q_COMMIT_PREV_MAX,
	Q_COMMITS_FROM,
	Q_DEL_COMMIT,
	Q_SET_COMMIT,
	Q_META,
	Q_COUNT
};

static const char *const rewind_sql[Q_COUNT] = {
        /* The newest run of ?1 before (max_ts, first_id) = (?2, ?3). */
        [Q_RUN_BEFORE] = "SELECT max_ts, first_id, count FROM runs WHERE "
                         "symbol_id = ?1 AND (max_ts, first_id) < (?2, ?3) "
                         "ORDER BY max_ts DESC, first_id DESC LIMIT 1",
        [Q_DEL_TICKS] = "DELETE FROM ticks WHERE id >= ?1 AND id < ?2 AND "
                        "seq > ?3",
        /* What an id range keeps. */
        [Q_RANGE] = "SELECT count(*), min(ts), max(ts), max(id) FROM ticks "
                    "WHERE id >= ?1 AND id < ?2",
        [Q_DEL_RUN] = "DELETE FROM runs WHERE symbol_id = ?1 AND max_ts = ?2 "
                      "AND first_id = ?3",
        /* A symbol's ticks in seq order (store_read.c, RUNS_SQL). */
        [Q_FOLD] = "SELECT t.ts, t.seq, t.bid, t.ask, t.bid_size, "
                   "t.ask_size, t.last, t.last_size, t.volume, t.scales "
                   "FROM runs AS r CROSS JOIN ticks AS t ON t.id >= "
                   "r.first_id AND t.id < r.first_id + r.count WHERE "
                   "r.symbol_id = ?1 ORDER BY r.max_ts, r.first_id, t.id",
        [Q_DEL_STATE] = "DELETE FROM state WHERE symbol_id = ?1",
        [Q_DEL_GAPS] = "DELETE FROM gaps WHERE symbol_id = ?1 AND "
                       "first_seq > ?2",
        /* The commit that holds id ?1: commits are in id order, and so
         * are their ids. */
        [Q_COMMIT_AT] = "SELECT id FROM commits WHERE first_id <= ?1 ORDER "
                        "BY id DESC LIMIT 1",
        [Q_COMMIT_FIRST] = "SELECT min(id) FROM commits",
        [Q_COMMIT_PREV_MAX] = "SELECT max_ts FROM commits WHERE id < ?1 "
                              "ORDER BY id DESC LIMIT 1",
        [Q_COMMITS_FROM] = "SELECT id, first_id, count FROM commits WHERE "
                           "id >= ?1 ORDER BY id",
        [Q_DEL_COMMIT] = "DELETE FROM commits WHERE id = ?1",
        [Q_SET_COMMIT] = "UPDATE commits SET ts_min = ?2, max_ts = ?3 WHERE "
                         "id = ?1",
        [Q_META] = "UPDATE meta SET epoch = ?1, max_ts = ?2",
};

/* One cut symbol, as the transaction leaves it; its state is in
 * job.states at the same index. */
struct rewound {
	struct sym *sym; /* NULL: the store holds no tick of it */
	int64_t max_ts;  /* its running max ts; INT64_MIN with no run left */
};

struct job {
	struct store *s;
	sqlite3_stmt *q[Q_COUNT];
	const struct rewind *rw;
	struct rewound *out;         /* rw->ncuts */
	struct symbol_state *states; /* rw->ncuts */
	char epoch[2 * EPOCH_BYTES + 1];
	int64_t max_ts; /* meta.max_ts after it */
	int64_t low_id; /* the lowest id of a run that lost ticks */
	uint64_t ticks; /* ticks deleted */
};

/* What an id range [first, end) keeps. */
struct range {
	int64_t count, ts_min, ts_max, max_id;
};

/* A row of runs. */
struct run {
	int64_t max_ts, first_id, count;
};

static int
range_of(struct job *j, int64_t first, int64_t end, struct range *r)
{
	sqlite3_stmt *q = j->q[Q_RANGE];
	int rc;

	sqlite3_bind_int64(q, 1, first);
	sqlite3_bind_int64(q, 2, end);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		r->count = sqlite3_column_int64(q, 0);
		r->ts_min = sqlite3_column_int64(q, 1);
		r->ts_max = sqlite3_column_int64(q, 2);
		r->max_id = sqlite3_column_int64(q, 3);
		rc = SQLITE_OK;
	}
	sqlite3_reset(q);
	return rc;
}

/* The newest run of y before (max_ts, first_id). Returns SQLITE_ROW with
 * *r set, SQLITE_DONE when there is none, or an error. */
static int
run_before(struct job *j, const struct sym *y, int64_t max_ts, int64_t first,
           struct run *r)
{
	sqlite3_stmt *q = j->q[Q_RUN_BEFORE];
	int rc;

	sqlite3_bind_int64(q, 1, y->id);
	sqlite3_bind_int64(q, 2, max_ts);
	sqlite3_bind_int64(q, 3, first);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		r->max_ts = sqlite3_column_int64(q, 0);
		r->first_id = sqlite3_column_int64(q, 1);
		r->count = sqlite3_column_int64(q, 2);
	}
	sqlite3_reset(q);
	return rc;
}

static int
step_done(sqlite3_stmt *q)
{
	return store__step_done(q);
}

/*
 * Delete y's ticks after seq cut, newest run first, and cut short the run
 * that keeps some. *max_ts gets y's running max ts after it.
 */
static int
drop_ticks(struct job *j, const struct sym *y, uint64_t cut, int64_t *max_ts)
{
	int64_t key_ts = INT64_MAX, key_id = INT64_MAX;
	struct range kept;
	struct run run, prev;
	int rc;

	*max_ts = INT64_MIN;
	for (;;) {
		int64_t first, end;
		int deleted;

		rc = run_before(j, y, key_ts, key_id, &run);
		if (rc == SQLITE_DONE)
			return SQLITE_OK;
		if (rc != SQLITE_ROW)
			return rc;
		key_ts = run.max_ts;
		key_id = first = run.first_id;
		end = first + run.count;
		sqlite3_bind_int64(j->q[Q_DEL_TICKS], 1, first);
		sqlite3_bind_int64(j->q[Q_DEL_TICKS], 2, end);
		sqlite3_bind_int64(j->q[Q_DEL_TICKS], 3, (sqlite3_int64)cut);
		rc = step_done(j->q[Q_DEL_TICKS]);
		if (rc != SQLITE_OK)
			return rc;
		deleted = sqlite3_changes(j->s->db);
		if (deleted == 0) {
			/* Every tick of it is kept (or went to retention,
			 * like every older one): done. */
			*max_ts = run.max_ts;
			return SQLITE_OK;
		}
		j->ticks += (uint64_t)deleted;
		if (first < j->low_id)
			j->low_id = first;
		rc = range_of(j, first, end, &kept);
		if (rc != SQLITE_OK)
			return rc;
		sqlite3_bind_int64(j->q[Q_DEL_RUN], 1, y->id);
		sqlite3_bind_int64(j->q[Q_DEL_RUN], 2, run.max_ts);
		sqlite3_bind_int64(j->q[Q_DEL_RUN], 3, first);
		rc = step_done(j->q[Q_DEL_RUN]);
		if (rc != SQLITE_OK)
			return rc;
		if (kept.count == 0)
			continue;
		/* Cut short: its max_ts is the running max up to what it
		 * keeps, at least that of the run before it. */
		rc = run_before(j, y, run.max_ts, first, &prev);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return rc;
		*max_ts = kept.ts_max;
		if (rc == SQLITE_ROW && prev.max_ts > *max_ts)
			*max_ts = prev.max_ts;
		return store__write_run(j->s, y, *max_ts, first,
		                        kept.max_id - first + 1, kept.ts_min);
	}
}

/* st, named already, gets the fold of y's remaining ticks. */
static int
fold(struct job *j, const struct sym *y, struct symbol_state *st)
{
	sqlite3_stmt *q = j->q[Q_FOLD];
	int rc;

	sqlite3_bind_int64(q, 1, y->id);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t scales = sqlite3_column_int64(q, 9);
		struct tick t;
		int f;

		memset(&t, 0, sizeof t);
		t.ts = sqlite3_column_int64(q, 0);
		t.seq = (uint64_t)sqlite3_column_int64(q, 1);
		for (f = 0; f < TICK_FIELD_COUNT; f++) {
			if (sqlite3_column_type(q, 2 + f) == SQLITE_NULL)
				continue;
			t.value[f].mantissa = sqlite3_column_int64(q, 2 + f);
			t.value[f].scale = store__scale_of(scales, f);
			t.present |= (uint16_t)(1u << f);
		}
		if (!symbol_state_apply(st, &t, &j->s->sessions))
			log_warn(
			        "store: rewind: the stored tick of '%s' at seq "
			        "%llu does not fold into its state; left out",
			        y->name, (unsigned long long)t.seq);
	}
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The state row of a cut symbol: its fold, or none when nothing is left. */
static int
write_state(struct job *j, const struct rewound *w,
            const struct symbol_state *st)
{
	if (!st->seq) {
		sqlite3_bind_int64(j->q[Q_DEL_STATE], 1, w->sym->id);
		return step_done(j->q[Q_DEL_STATE]);
	}
	return store__write_state(j->s, w->sym, st, w->max_ts);
}

/* The commits from the one holding j->low_id on: deleted when empty, else
 * their ts_min and running max_ts worked out again. */
static int
fix_commits(struct job *j)
{
	struct {
		int64_t id, first, count;
	} *list = NULL;
	size_t n = 0, cap = 0, i;
	int64_t from = 0, prev_max = INT64_MIN;
	bool have = false;
	sqlite3_stmt *q;
	int rc;

	q = j->q[Q_COMMIT_AT];
	sqlite3_bind_int64(q, 1, j->low_id);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		from = sqlite3_column_int64(q, 0);
		have = true;
	}
	sqlite3_reset(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return rc;
	if (!have) {
		/* Older than every commit left (retention): from the first. */
		q = j->q[Q_COMMIT_FIRST];
		rc = sqlite3_step(q);
		have = rc == SQLITE_ROW &&
		       sqlite3_column_type(q, 0) != SQLITE_NULL;
		if (have)
			from = sqlite3_column_int64(q, 0);
		sqlite3_reset(q);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return rc;
		if (!have)
			return SQLITE_OK;
	}
	q = j->q[Q_COMMIT_PREV_MAX];
	sqlite3_bind_int64(q, 1, from);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		prev_max = sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return rc;

	/* Read first, change after: a statement does not walk a table it
	 * changes. */
	q = j->q[Q_COMMITS_FROM];
	sqlite3_bind_int64(q, 1, from);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (n == cap) {
			size_t c = cap ? cap * 2 : 64;
			void *p = realloc(list, c * sizeof *list);

			if (!p) {
				rc = SQLITE_NOMEM;
				break;
			}
			list = p;
			cap = c;
		}
		list[n].id = sqlite3_column_int64(q, 0);
		list[n].first = sqlite3_column_int64(q, 1);
		list[n].count = sqlite3_column_int64(q, 2);
		n++;
	}
	sqlite3_reset(q);
	if (rc != SQLITE_DONE) {
		free(list);
		return rc;
	}
	for (i = 0, rc = SQLITE_OK; rc == SQLITE_OK && i < n; i++) {
		struct range kept;

		rc = range_of(j, list[i].first, list[i].first + list[i].count,
		              &kept);
		if (rc != SQLITE_OK)
			break;
		if (kept.count == 0) {
			sqlite3_bind_int64(j->q[Q_DEL_COMMIT], 1, list[i].id);
			rc = step_done(j->q[Q_DEL_COMMIT]);
			continue;
		}
		if (kept.ts_max > prev_max)
			prev_max = kept.ts_max;
		sqlite3_bind_int64(j->q[Q_SET_COMMIT], 1, list[i].id);
		sqlite3_bind_int64(j->q[Q_SET_COMMIT], 2, kept.ts_min);
		sqlite3_bind_int64(j->q[Q_SET_COMMIT], 3, prev_max);
		rc = step_done(j->q[Q_SET_COMMIT]);
	}
	free(list);
	j->max_ts = prev_max;
	return rc;
}

/* One attempt: everything in one transaction. Nothing in memory changes
 * but j. */
static int
attempt(struct job *j)
{
	struct store *s = j->s;
	const struct rewind *rw = j->rw;
	size_t i;
	int rc, k;

	j->ticks = 0;
	j->low_id = INT64_MAX;
	j->max_ts = s->max_ts;
	rc = SQLITE_OK;
	for (k = 0; rc == SQLITE_OK && k < Q_COUNT; k++)
		if (!j->q[k])
			rc = store__prepare(s->db, rewind_sql[k], &j->q[k]);
	if (rc == SQLITE_OK)
		rc = store__step_done(s->stmt[W_BEGIN]);
	for (i = 0; rc == SQLITE_OK && i < rw->ncuts; i++) {
		struct rewound *w = &j->out[i];

		symbol_state_init(&j->states[i], rw->cuts[i].symbol,
		                  strnlen(rw->cuts[i].symbol, TICK_SYMBOL_MAX));
		w->max_ts = INT64_MIN;
		if (!w->sym)
			continue;
		rc = drop_ticks(j, w->sym, rw->cuts[i].seq, &w->max_ts);
		if (rc == SQLITE_OK) {
			sqlite3_bind_int64(j->q[Q_DEL_GAPS], 1, w->sym->id);
			sqlite3_bind_int64(j->q[Q_DEL_GAPS], 2,
			                   (sqlite3_int64)rw->cuts[i].seq);
			rc = step_done(j->q[Q_DEL_GAPS]);
		}
	}
	for (i = 0; rc == SQLITE_OK && i < rw->ncuts; i++) {
		struct rewound *w = &j->out[i];

		if (!w->sym)
			continue;
		rc = fold(j, w->sym, &j->states[i]);
		if (rc == SQLITE_OK)
			rc = write_state(j, w, &j->states[i]);
	}
	if (rc == SQLITE_OK && j->low_id != INT64_MAX)
		rc = fix_commits(j);
	if (rc == SQLITE_OK) {
		epoch_make(j->epoch, sizeof j->epoch);
		sqlite3_bind_text(j->q[Q_META], 1, j->epoch, -1, SQLITE_STATIC);
		sqlite3_bind_int64(j->q[Q_META], 2, j->max_ts);
		rc = step_done(j->q[Q_META]);
	}
	if (rc == SQLITE_OK)
		rc = store__step_done(s->stmt[W_COMMIT]);
	if (rc != SQLITE_OK) {
		snprintf(s->errmsg, sizeof s->errmsg, "%s",
		         sqlite3_errmsg(s->db));
		if (!sqlite3_get_autocommit(s->db))
			store__step_done(s->stmt[W_ROLLBACK]);
	}
	return rc;
}

/* Committed: the writer's memory follows the database. */
static void
apply(struct job *j)
{
	struct store *s = j->s;
	size_t i;

	for (i = 0; i < j->rw->ncuts; i++) {
		struct rewound *w = &j->out[i];
		const struct symbol_state *st = &j->states[i];

		if (w->sym)
			w->sym->max_ts = w->max_ts;
		if (st->seq != j->rw->cuts[i].seq)
			log_warn("store: rewind: '%s' is back at seq %llu, not "
			         "%llu: the store does not hold all its ticks",
			         st->symbol, (unsigned long long)st->seq,
			         (unsigned long long)j->rw->cuts[i].seq);
		if (state_table_restore(s->states, st))
			log_error("store: rewind: cannot put back the state of "
			          "'%s' (out of memory)",
			          st->symbol);
	}
	if (j->low_id != INT64_MAX)
		s->max_ts = j->max_ts;
	pthread_mutex_lock(&s->mu);
	snprintf(s->epoch, sizeof s->epoch, "%s", j->epoch);
	pthread_mutex_unlock(&s->mu);
}

/* Run rw until it is written, or the store closes and gives up. Returns
 * 0 or -1. */
static int
run(struct store *s, struct job *j)
{
	int64_t backoff = RETRY_MIN_US, first_fail = 0, last_log = 0;
	int rc;

	for (;;) {
		int64_t now;

		rc = s->db ? attempt(j) : SQLITE_CANTOPEN;
		if (rc == SQLITE_OK)
			return 0;
		now = clock_mono_us();
		if (!first_fail)
			first_fail = now;
		if (!last_log || now - last_log >= FAIL_LOG_INTERVAL_US) {
			log_warn("store: db '%s': cannot rewind for a replay's "
			         "seek back: %s (%s); the replay waits, "
			         "retrying",
			         s->path,
			         s->errmsg[0] ? s->errmsg : "no database",
			         store__error_hint(rc));
			last_log = now;
		}
		if (store__giving_up(s, now)) {
			log_error(
			        "store: db '%s': giving up the rewind at "
			        "shutdown: the stored ticks stay as they were",
			        s->path);
			return -1;
		}
		store__retry_sleep(s, &backoff);
	}
}

void
store__rewind_step(struct store *s)
{
	struct sink_rewound res;
	struct rewind rw;
	struct job j;
	size_t i;
	int rc;

	pthread_mutex_lock(&s->mu);
	if (!store__rewind_due(s)) {
		pthread_mutex_unlock(&s->mu);
		return;
	}
	rw = s->rewinds[0];
	memmove(&s->rewinds[0], &s->rewinds[1],
	        (s->nrewinds - 1) * sizeof *s->rewinds);
	s->nrewinds--;
	pthread_mutex_unlock(&s->mu);

	memset(&j, 0, sizeof j);
	j.s = s;
	j.rw = &rw;
	j.out = calloc(rw.ncuts ? rw.ncuts : 1, sizeof *j.out);
	j.states = calloc(rw.ncuts ? rw.ncuts : 1, sizeof *j.states);
	rc = j.out && j.states ? 0 : -1;
	for (i = 0; !rc && i < rw.ncuts; i++) {
		const char *name = rw.cuts[i].symbol;
		size_t len = strnlen(name, TICK_SYMBOL_MAX);

		j.out[i].sym = store__sym_find(&s->syms, name, len,
		                               hash_name(name, len));
		/* A symbol whose row is not committed has no ticks. */
		if (j.out[i].sym && !j.out[i].sym->stored)
			j.out[i].sym = NULL;
	}
	if (rc)
		log_error("store: out of memory for a replay's seek back");
	else
		rc = run(s, &j);
	store__finalize_all(j.q, Q_COUNT);
	if (!rc) {
		apply(&j);
		log_info("store: rewound %zu symbols for a replay's seek back: "
		         "%llu ticks removed; new epoch %s",
		         rw.ncuts, (unsigned long long)j.ticks, j.epoch);
	}
	memset(&res, 0, sizeof res);
	res.rc = rc ? -1 : 0;
	res.epoch = j.epoch;
	res.states = rc ? NULL : j.states;
	res.count = rc ? 0 : rw.ncuts;
	rw.done(&res, rw.ctx);
	free(j.states);
	free(j.out);
	free(rw.cuts);
}

void
store__rewinds_free(struct store *s)
{
	size_t i;

	for (i = 0; i < s->nrewinds; i++)
		free(s->rewinds[i].cuts);
	free(s->rewinds);
	s->rewinds = NULL;
	s->nrewinds = s->rewinds_cap = 0;
}

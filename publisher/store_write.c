/*
 * store_write.c: the writer thread's work. A batch of queued ticks is
 * worked out once (folded into the writer's states, grouped by symbol into
 * runs, with the states after it) and written in one transaction: ticks,
 * runs, states, a commits row, the meta counters and any gaps. A failed
 * commit is rolled back and tried again with the same rows; only a commit
 * frees the queue's slots. Retention deletes old ticks between batches, in
 * small transactions of its own.
 */
#include "store_private.h"

/* A tick the writer's states refused: counted, and logged once a minute.
 * The server's engine applied it, so the two have drifted apart (a caller
 * that appends a tick twice, or out of seq order). */
static void
refused(struct store *s, const struct tick *t)
{
	int64_t now = clock_mono_us();
	uint64_t n;

	pthread_mutex_lock(&s->mu);
	n = ++s->stats.ticks_refused;
	pthread_mutex_unlock(&s->mu);
	if (s->last_refused_log_us &&
	    now - s->last_refused_log_us < FAIL_LOG_INTERVAL_US)
		return;
	s->last_refused_log_us = now;
	log_warn("store: not storing a tick of '%.32s' with seq %llu: the "
	         "store's state refuses it (invalid symbol, or a seq not "
	         "after the stored one); %llu refused so far",
	         t->symbol, (unsigned long long)t->seq, (unsigned long long)n);
}

/*
 * Work out everything about the next n queued ticks: fold them into the
 * states, give new symbols their ids, group the ticks by symbol, and take
 * each touched symbol's state. Called once per batch; the result is then
 * written as often as it takes.
 */
static void
batch_prepare(struct store *s, size_t n)
{
	struct batch *b = &s->batch;
	const struct symbol_state *st;
	size_t i, g;

	b->serial++;
	b->nitems = 0;
	b->ngroups = 0;
	b->taken = n;
	b->ts_min = INT64_MAX;

	for (i = 0; i < n; i++) {
		uint32_t slot = (uint32_t)((s->head + i) % s->cap);
		const struct tick *t = &s->ring[slot];
		size_t len = strnlen(t->symbol, sizeof t->symbol);
		struct sym *y;
		struct item *it;
		uint64_t seq;

		y = store__sym_find(&s->syms, t->symbol, len,
		                    hash_name(t->symbol, len));
		seq = state_table_apply(s->states, t);
		if (!seq) {
			/* Refused (invalid symbol, stale seq): the state
			 * stays as it was, so the tick is not stored
			 * either and stored state still equals stored
			 * ticks. */
			refused(s, t);
			continue;
		}
		if (!y) {
			y = store__sym_add(&s->syms, t->symbol, len, 0);
			if (!y) {
				/* Out of memory: the state has the tick but
				 * the store cannot place it. */
				log_error("store: out of memory: tick of '%s' "
				          "not stored",
				          t->symbol);
				continue;
			}
		}
		if (y->mark != b->serial) {
			if (b->ngroups == b->groups_cap) {
				size_t cap = b->groups_cap ? b->groups_cap * 2
				                           : 1024;
				struct group *gr =
				        realloc(b->groups, cap * sizeof *gr);

				if (!gr) {
					log_error("store: out of memory: tick "
					          "of '%s' not stored",
					          t->symbol);
					continue;
				}
				b->groups = gr;
				b->groups_cap = cap;
			}
			y->mark = b->serial;
			y->group = (uint32_t)b->ngroups;
			memset(&b->groups[b->ngroups], 0, sizeof b->groups[0]);
			b->groups[b->ngroups].sym = y;
			b->groups[b->ngroups].ts_min = INT64_MAX;
			b->groups[b->ngroups].max_ts = y->max_ts;
			b->ngroups++;
		}
		it = &b->items[b->nitems++];
		it->slot = slot;
		it->group = y->group;
		it->seq = seq;
		b->groups[y->group].count++;
	}

	/* Group by symbol with a counting sort: stable, so each symbol's
	 * ticks keep their (seq) order. groups[].first doubles as the fill
	 * position, then is put back. */
	for (g = 0, i = 0; g < b->ngroups; g++) {
		b->groups[g].first = (uint32_t)i;
		i += b->groups[g].count;
	}
	for (i = 0; i < b->nitems; i++) {
		struct group *gr = &b->groups[b->items[i].group];

		b->order[gr->first++] = (uint32_t)i;
	}
	b->max_ts = s->max_ts;
	for (g = 0; g < b->ngroups; g++) {
		struct group *gr = &b->groups[g];
		struct sym *y = gr->sym;
		uint32_t k;

		gr->first -= gr->count;
		for (k = gr->first; k < gr->first + gr->count; k++) {
			int64_t ts = s->ring[b->items[b->order[k]].slot].ts;

			if (ts < gr->ts_min)
				gr->ts_min = ts;
			if (ts > gr->max_ts)
				gr->max_ts = ts;
		}
		if (store__span(gr->max_ts, gr->ts_min) > y->max_lag)
			y->max_lag = store__span(gr->max_ts, gr->ts_min);
		y->max_ts = gr->max_ts;
		gr->max_lag = y->max_lag;
		gr->insert_symbol = !y->stored;
		if (gr->ts_min < b->ts_min)
			b->ts_min = gr->ts_min;
		if (gr->max_ts > b->max_ts)
			b->max_ts = gr->max_ts;
		st = state_table_find(s->states, y->name);
		if (st)
			gr->st = *st;
	}
	/* Gaps: each with its symbol's state after this batch (what the
	 * state row says either way) and its symbols row when it has none. */
	b->ngaps = 0;
	if (s->npending_gaps > b->gaps_cap) {
		struct gap_row *p =
		        realloc(b->gaps, s->npending_gaps * sizeof *p);

		if (p) {
			b->gaps = p;
			b->gaps_cap = s->npending_gaps;
		}
	}
	for (i = 0; i < s->npending_gaps && i < b->gaps_cap; i++) {
		const struct gap *gp = &s->pending_gaps[i];
		size_t len = strnlen(gp->symbol, TICK_SYMBOL_MAX);
		struct gap_row *row = &b->gaps[b->ngaps];
		struct sym *y = store__sym_find(&s->syms, gp->symbol, len,
		                                hash_name(gp->symbol, len));

		if (!y && !(y = store__sym_add(&s->syms, gp->symbol, len, 0)))
			continue;
		row->sym = y;
		row->insert_symbol = !y->stored && y->mark != b->serial;
		/* Marked as if grouped, so that two gaps of one symbol do not
		 * both insert its row. */
		if (y->mark != b->serial) {
			y->mark = b->serial;
			y->group = UINT32_MAX;
		}
		row->gap = *gp;
		st = state_table_find(s->states, y->name);
		if (!st)
			continue;
		row->st = *st;
		b->ngaps++;
	}
	if (b->ngroups && store__span(b->max_ts, b->ts_min) > s->max_lag)
		s->max_lag = store__span(b->max_ts, b->ts_min);
	if (b->ngroups)
		s->max_ts = b->max_ts;
	b->max_lag = s->max_lag;
	b->first_id = s->next_id;
	s->next_id += (int64_t)b->nitems;
	b->next_id = s->next_id;
	store__resv_prepare(s);
}

void
store__bind_tick(sqlite3_stmt *st, int p, int64_t id, int64_t symbol_id,
                 const struct tick *t, uint64_t seq)
{
	int f;

	sqlite3_bind_int64(st, p, id);
	sqlite3_bind_int64(st, p + 1, symbol_id);
	sqlite3_bind_int64(st, p + 2, t->ts);
	sqlite3_bind_int64(st, p + 3, (sqlite3_int64)seq);
	for (f = 0; f < TICK_FIELD_COUNT; f++) {
		if ((t->present >> f) & 1u)
			sqlite3_bind_int64(st, p + 4 + f, t->value[f].mantissa);
		else
			sqlite3_bind_null(st, p + 4 + f);
	}
	sqlite3_bind_int64(
	        st, p + 4 + TICK_FIELD_COUNT,
	        store__scales_pack(t->value, t->present, TICK_FIELD_COUNT));
}

void
store__bind_state(sqlite3_stmt *q, const struct group *gr)
{
	const struct symbol_state *st = &gr->st;
	int f;

	sqlite3_bind_int64(q, 1, gr->sym->id);
	sqlite3_bind_int64(q, 2, (sqlite3_int64)st->seq);
	sqlite3_bind_int64(q, 3, st->ts);
	sqlite3_bind_int(q, 4, st->feed_sends_volume ? 1 : 0);
	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		if ((st->present >> f) & 1u)
			sqlite3_bind_int64(q, 5 + f, st->value[f].mantissa);
		else
			sqlite3_bind_null(q, 5 + f);
		/* A field without a value keeps the seq a session took it
		 * away at, so that a client resuming after a restart is
		 * told. */
		if (st->changed_seq[f])
			sqlite3_bind_int64(q, 6 + STATE_FIELD_COUNT + f,
			                   (sqlite3_int64)st->changed_seq[f]);
		else
			sqlite3_bind_null(q, 6 + STATE_FIELD_COUNT + f);
	}
	sqlite3_bind_int64(
	        q, 5 + STATE_FIELD_COUNT,
	        store__scales_pack(st->value, st->present, STATE_FIELD_COUNT));
	sqlite3_bind_int64(q, 6 + 2 * STATE_FIELD_COUNT, gr->max_ts);
	sqlite3_bind_int64(q, 7 + 2 * STATE_FIELD_COUNT, gr->max_lag);
	if (st->session != SYMBOL_STATE_SESSION_UNKNOWN)
		sqlite3_bind_int64(q, 8 + 2 * STATE_FIELD_COUNT, st->session);
	else
		sqlite3_bind_null(q, 8 + 2 * STATE_FIELD_COUNT);
}

/* ---------------------------------------------------------- the rows */

int
store__write_symbol(struct store *s, const struct sym *y)
{
	sqlite3_stmt *q = s->stmt[W_SYMBOL];

	sqlite3_bind_int64(q, 1, y->id);
	sqlite3_bind_text(q, 2, y->name, -1, SQLITE_STATIC);
	return store__step_done(q);
}

int
store__write_run(struct store *s, const struct sym *y, int64_t max_ts,
                 int64_t first_id, int64_t count, int64_t ts_min)
{
	sqlite3_stmt *q = s->stmt[W_RUN];

	sqlite3_bind_int64(q, 1, y->id);
	sqlite3_bind_int64(q, 2, max_ts);
	sqlite3_bind_int64(q, 3, first_id);
	sqlite3_bind_int64(q, 4, count);
	sqlite3_bind_int64(q, 5, ts_min);
	return store__step_done(q);
}

int
store__write_group(struct store *s, const struct group *gr, int64_t first_id)
{
	int rc = store__write_run(s, gr->sym, gr->max_ts, first_id + gr->first,
	                          gr->count, gr->ts_min);

	if (rc != SQLITE_OK)
		return rc;
	store__bind_state(s->stmt[W_STATE], gr);
	return store__step_done(s->stmt[W_STATE]);
}

int
store__write_state(struct store *s, struct sym *y,
                   const struct symbol_state *st, int64_t max_ts)
{
	struct group gr;

	memset(&gr, 0, sizeof gr);
	gr.sym = y;
	gr.st = *st;
	gr.max_ts = max_ts;
	gr.max_lag = y->max_lag;
	store__bind_state(s->stmt[W_STATE], &gr);
	return store__step_done(s->stmt[W_STATE]);
}

int
store__write_commit(struct store *s, int64_t first_id, int64_t count,
                    int64_t ts_min, int64_t max_ts)
{
	sqlite3_stmt *q = s->stmt[W_COMMIT_ROW];

	sqlite3_bind_int64(q, 1, first_id);
	sqlite3_bind_int64(q, 2, count);
	sqlite3_bind_int64(q, 3, ts_min);
	sqlite3_bind_int64(q, 4, max_ts);
	sqlite3_bind_int64(q, 5, clock_wall_us());
	return store__step_done(q);
}

int
store__write_meta(struct store *s, int64_t next_id, int64_t max_ts,
                  int64_t max_lag)
{
	sqlite3_stmt *q = s->stmt[W_META];

	sqlite3_bind_int64(q, 1, next_id);
	sqlite3_bind_int64(q, 2, max_ts);
	sqlite3_bind_int64(q, 3, max_lag);
	return store__step_done(q);
}

/* One attempt to write the prepared batch. Returns the SQLite result;
 * on failure nothing of it is in the database. */
static int
batch_write(struct store *s)
{
	const struct batch *b = &s->batch;
	sqlite3_stmt **w = s->stmt;
	size_t g, k;
	int64_t id = b->first_id;
	int rc;

	rc = store__step_done(w[W_BEGIN]);
	for (g = 0; rc == SQLITE_OK && g < b->ngroups; g++)
		if (b->groups[g].insert_symbol)
			rc = store__write_symbol(s, b->groups[g].sym);

	/* The ticks, grouped by symbol, INSERT_ROWS per statement. */
	for (k = 0; rc == SQLITE_OK && k < b->nitems;) {
		bool many = b->nitems - k >= INSERT_ROWS;
		sqlite3_stmt *st = many ? w[W_TICKS_MANY] : w[W_TICK_ONE];
		size_t rows = many ? INSERT_ROWS : 1, r;

		for (r = 0; r < rows; r++, k++) {
			const struct item *it = &b->items[b->order[k]];

			store__bind_tick(st, (int)(r * TICK_COLUMNS) + 1, id++,
			                 b->groups[it->group].sym->id,
			                 &s->ring[it->slot], it->seq);
		}
		rc = store__step_done(st);
	}

	for (g = 0; rc == SQLITE_OK && g < b->ngroups; g++)
		rc = store__write_group(s, &b->groups[g], b->first_id);
	for (g = 0; rc == SQLITE_OK && g < b->ngaps; g++) {
		const struct gap_row *row = &b->gaps[g];

		if (row->insert_symbol)
			rc = store__write_symbol(s, row->sym);
		if (rc != SQLITE_OK)
			break;
		sqlite3_bind_int64(w[W_GAP], 1, row->sym->id);
		sqlite3_bind_int64(w[W_GAP], 2,
		                   (sqlite3_int64)row->gap.first_seq);
		sqlite3_bind_int64(w[W_GAP], 3,
		                   (sqlite3_int64)row->gap.last_seq);
		sqlite3_bind_int64(w[W_GAP], 4, row->gap.first_ts);
		sqlite3_bind_int64(w[W_GAP], 5, row->gap.last_ts);
		sqlite3_bind_int64(w[W_GAP], 6, (sqlite3_int64)row->gap.ticks);
		sqlite3_bind_int64(w[W_GAP], 7, clock_wall_us());
		rc = store__step_done(w[W_GAP]);
		/* The symbol's state row, unless its run above wrote it. */
		if (rc == SQLITE_OK && row->sym->group == UINT32_MAX)
			rc = store__write_state(s, row->sym, &row->st,
			                        row->sym->max_ts);
	}
	if (rc == SQLITE_OK)
		rc = store__resv_write(s);
	if (rc == SQLITE_OK && b->nitems)
		rc = store__write_commit(s, b->first_id, (int64_t)b->nitems,
		                         b->ts_min, b->max_ts);
	if (rc == SQLITE_OK)
		rc = store__write_meta(s, b->next_id, s->max_ts, b->max_lag);
	if (rc == SQLITE_OK)
		rc = store__step_done(w[W_COMMIT]);
	if (rc != SQLITE_OK) {
		int sys = sqlite3_system_errno(s->db);

		/* The system's word for it ("No space left on device", "File
		 * too large") says more than SQLite's "disk I/O error". */
		snprintf(s->errmsg, sizeof s->errmsg, "%s%s%s",
		         sqlite3_errmsg(s->db), sys ? ": " : "",
		         sys ? strerror(sys) : "");
		if (!sqlite3_get_autocommit(s->db))
			store__step_done(w[W_ROLLBACK]);
	}
	return rc;
}

/* After a read-only error the connection may have been opened read-only
 * (the file was not writable then); only a new one can see that it is
 * writable again. */
static int
writer_reopen(struct store *s)
{
	char err[256] = "";
	int version, rc;

	store__finalize_all(s->stmt, W_COUNT);
	sqlite3_close(s->db);
	s->db = NULL;
	/* Not CREATE: a file that went away is not replaced by an empty one
	 * behind the operator's back. */
	version = store__writer_connect(s, false, err, sizeof err);
	rc = version == schema_migration_count ? SQLITE_OK : SQLITE_CANTOPEN;
	if (rc == SQLITE_OK && store__writer_pragmas(s, err, sizeof err))
		rc = SQLITE_CANTOPEN;
	if (rc == SQLITE_OK)
		rc = store__writer_prepare(s);
	if (rc != SQLITE_OK) {
		snprintf(s->errmsg, sizeof s->errmsg, "reopen: %s", err);
		store__finalize_all(s->stmt, W_COUNT);
		sqlite3_close(s->db);
		s->db = NULL;
	}
	return rc;
}

static void
note_failure(struct store *s, int rc, const char *what)
{
	int64_t now = clock_mono_us();
	char msg[sizeof s->stats.last_error + sizeof s->errmsg + 64];
	size_t queued;

	snprintf(msg, sizeof msg, "%s: %s (%s)", what,
	         s->errmsg[0] ? s->errmsg : sqlite3_errstr(rc),
	         store__error_hint(rc));
	s->errmsg[0] = '\0';
	pthread_mutex_lock(&s->mu);
	s->stats.write_errors++;
	s->stats.failing = true;
	snprintf(s->stats.last_error, sizeof s->stats.last_error, "%.*s",
	         (int)sizeof s->stats.last_error - 1, msg);
	queued = s->count;
	pthread_mutex_unlock(&s->mu);

	if (!s->failing_since_us)
		s->failing_since_us = now;
	/* Once a minute, so a full disk does not also fill the log. */
	if (s->last_fail_log_us &&
	    now - s->last_fail_log_us < FAIL_LOG_INTERVAL_US) {
		s->fails_since_log++;
		return;
	}
	/* No feed waits for a failing store (a live one never does, and
	 * sink_space() lets a file through too): say what happens. */
	log_warn("store: db '%s': cannot %s; %zu ticks held, and until this "
	         "clears what the queue cannot hold is not stored (recorded "
	         "as gaps); retrying%s",
	         s->path, msg, queued,
	         s->fails_since_log ? " (it kept failing since the last "
	                              "message)"
	                            : "");
	s->last_fail_log_us = now;
	s->fails_since_log = 0;
}

/* Release n ring slots and wake a caller that found the queue full. */
static void
release_slots(struct store *s, size_t n, const struct batch *b)
{
	int64_t now = clock_mono_us(), lag = 0;
	size_t queued;
	bool wake;

	pthread_mutex_lock(&s->mu);
	s->head = (s->head + n) % s->cap;
	s->count -= n;
	s->released += n;
	queued = s->count;
	if (queued)
		lag = now - s->enq_us[s->head];
	if (b && b->nitems) {
		s->stats.ticks_written += b->nitems;
		s->stats.commits++;
		s->stats.last_batch = b->nitems;
	}
	if (b)
		s->stats.failing = false;
	/* Dropping ends when the queue has drained: the pipeline is woken
	 * then to resume the sink, even if no more ticks come. */
	wake = s->want_wake || (s->dropping && s->count == 0);
	s->want_wake = false;
	pthread_mutex_unlock(&s->mu);
	if (wake && s->wake)
		s->wake(s->wake_ctx);
	/* Behind: a tick that waits this long is past the kill -9 promise
	 * (store.h, Durability). Said once a minute; the stats carry it all
	 * the time. */
	if (b && lag > LAG_WARN_US &&
	    (!s->last_lag_log_us ||
	     now - s->last_lag_log_us >= FAIL_LOG_INTERVAL_US)) {
		s->last_lag_log_us = now;
		log_warn("store: db '%s' is behind the feed: %zu ticks "
		         "queued, the oldest for %lld ms; a live feed goes "
		         "on (what does not fit is recorded as gaps), a "
		         "replay waits",
		         s->path, queued, (long long)(lag / 1000));
	}
}

bool
store__giving_up(struct store *s, int64_t now)
{
	bool stopping;
	int64_t stop_us;

	pthread_mutex_lock(&s->mu);
	stopping = s->stopping;
	stop_us = s->stop_us;
	pthread_mutex_unlock(&s->mu);
	return stopping && now - stop_us >= CLOSE_GIVE_UP_US;
}

void
store__retry_sleep(struct store *s, int64_t *backoff)
{
	int64_t until = clock_mono_us() + *backoff;
	struct timespec ts = {.tv_sec = until / 1000000,
	                      .tv_nsec = (until % 1000000) * 1000};

	pthread_mutex_lock(&s->mu);
	if (!s->stopping)
		pthread_cond_timedwait(&s->cond, &s->mu, &ts);
	pthread_mutex_unlock(&s->mu);
	*backoff = *backoff * 2 > RETRY_MAX_US ? RETRY_MAX_US : *backoff * 2;
}

/* Write the next n queued ticks, retrying until it works, or, when the
 * store is closing and has failed for CLOSE_GIVE_UP_US, give up on
 * everything still queued. */
void
store__writer_batch(struct store *s, size_t n)
{
	int64_t backoff = RETRY_MIN_US;
	int rc;

	batch_prepare(s, n);
	if (s->batch.nitems == 0 && s->batch.ngaps == 0 &&
	    s->batch.resv.nsteps == 0) {
		s->npending_gaps = 0;
		release_slots(s, n, NULL);
		return;
	}
	for (;;) {
		rc = s->db ? batch_write(s) : SQLITE_CANTOPEN;
		if (rc == SQLITE_OK)
			break;
		note_failure(s, rc, "write ticks");
		if (store__giving_up(s, clock_mono_us())) {
			size_t queued;

			pthread_mutex_lock(&s->mu);
			queued = s->count;
			pthread_mutex_unlock(&s->mu);
			log_error("store: db '%s': giving up at shutdown: %zu "
			          "queued ticks were not written (%s)",
			          s->path, queued, s->stats.last_error);
			/* Nothing of it is written: the gaps it would have
			 * recorded are lost with the ticks. */
			s->unwritten += queued;
			for (size_t g = 0; g < s->npending_gaps; g++)
				s->unwritten += s->pending_gaps[g].ticks;
			s->npending_gaps = 0;
			store__resv_give_up(s);
			release_slots(s, queued, NULL);
			return;
		}
		store__retry_sleep(s, &backoff);
		if ((rc & 0xff) == SQLITE_READONLY ||
		    (rc & 0xff) == SQLITE_CANTOPEN || !s->db)
			writer_reopen(s);
	}
	for (size_t g = 0; g < s->batch.ngroups; g++)
		s->batch.groups[g].sym->stored = true;
	for (size_t g = 0; g < s->batch.ngaps; g++)
		s->batch.gaps[g].sym->stored = true;
	if (s->batch.ngaps) {
		pthread_mutex_lock(&s->mu);
		s->stats.gaps_written += s->batch.ngaps;
		pthread_mutex_unlock(&s->mu);
	}
	s->npending_gaps = 0;
	store__resv_committed(s);
	if (s->failing_since_us) {
		log_info("store: db '%s': writing again after %.1f s", s->path,
		         (double)(clock_mono_us() - s->failing_since_us) / 1e6);
		s->failing_since_us = 0;
		s->last_fail_log_us = 0;
		s->fails_since_log = 0;
	}
	release_slots(s, n, &s->batch);
}

/* ----------------------------------------------------------- retention */

static void
retention_failed(struct store *s, int rc)
{
	int64_t now = clock_mono_us();

	if (!sqlite3_get_autocommit(s->db))
		store__step_done(s->stmt[W_ROLLBACK]);
	if (s->last_retain_log_us &&
	    now - s->last_retain_log_us < FAIL_LOG_INTERVAL_US)
		return;
	s->last_retain_log_us = now;
	log_warn("store: db '%s': retention could not delete old ticks: %s "
	         "(%s); trying again later",
	         s->path, sqlite3_errmsg(s->db), store__error_hint(rc));
}

/* Delete the runs of deleted ticks, a slice of the symbols at a time. A
 * run left behind a little longer does no harm: readers find no ticks in
 * its id range. */
static void
sweep_step(struct store *s)
{
	sqlite3_stmt **w = s->stmt;
	size_t end = s->sweep_cursor + SWEEP_STEP_SYMBOLS;
	int rc;

	if (s->sweep_cursor == 0) {
		int64_t min_id = s->next_id, oldest = s->max_ts;

		rc = sqlite3_step(w[W_RET_MIN_ID]);
		if (rc == SQLITE_ROW &&
		    sqlite3_column_type(w[W_RET_MIN_ID], 0) != SQLITE_NULL)
			min_id = sqlite3_column_int64(w[W_RET_MIN_ID], 0);
		sqlite3_reset(w[W_RET_MIN_ID]);
		rc = sqlite3_step(w[W_RET_OLDEST_COMMIT]);
		if (rc == SQLITE_ROW)
			oldest =
			        sqlite3_column_int64(w[W_RET_OLDEST_COMMIT], 0);
		sqlite3_reset(w[W_RET_OLDEST_COMMIT]);
		s->sweep_below_id = min_id;
		s->sweep_max_ts = oldest;
	}
	if (end > s->syms.count)
		end = s->syms.count;
	rc = store__step_done(w[W_BEGIN]);
	for (; rc == SQLITE_OK && s->sweep_cursor < end; s->sweep_cursor++) {
		const struct sym *y = s->syms.list[s->sweep_cursor];

		if (!y->stored)
			continue;
		sqlite3_bind_int64(w[W_RET_DEL_RUNS], 1, y->id);
		sqlite3_bind_int64(w[W_RET_DEL_RUNS], 2, s->sweep_max_ts);
		sqlite3_bind_int64(w[W_RET_DEL_RUNS], 3, s->sweep_below_id);
		rc = store__step_done(w[W_RET_DEL_RUNS]);
	}
	if (rc == SQLITE_OK)
		rc = store__step_done(w[W_COMMIT]);
	if (rc != SQLITE_OK) {
		retention_failed(s, rc);
		s->sweep_cursor = 0;
		s->next_sweep_us = clock_mono_us() + SWEEP_INTERVAL_US;
		return;
	}
	if (s->sweep_cursor >= s->syms.count) {
		s->sweep_cursor = 0;
		s->sweep_pending = false;
		s->next_sweep_us = clock_mono_us() + SWEEP_INTERVAL_US;
	}
}

/*
 * One bounded step of retention: delete up to RETAIN_STEP_ROWS of the
 * oldest ticks that the age or row limit says must go, with the commits
 * rows they empty. Retention by age deletes whole commits whose ticks are
 * all older than the limit (commits.max_ts), so a commit straddling the
 * limit waits for the next step.
 */
void
store__retention_step(struct store *s)
{
	sqlite3_stmt **w = s->stmt;
	int64_t now = clock_mono_us(), cut = 0, low = 0, end;
	bool have_low = false, more;
	int rc;

	if (s->retain_rows && s->next_id > 1 &&
	    (uint64_t)(s->next_id - 1) > s->retain_rows)
		cut = s->next_id - (int64_t)s->retain_rows;
	if (s->retain_age_us) {
		sqlite3_bind_int64(w[W_RET_AGE_CUT], 1,
		                   clock_wall_us() - s->retain_age_us);
		if (sqlite3_step(w[W_RET_AGE_CUT]) == SQLITE_ROW) {
			int64_t c = sqlite3_column_int64(w[W_RET_AGE_CUT], 0);

			if (c > cut)
				cut = c;
		}
		sqlite3_reset(w[W_RET_AGE_CUT]);
	}
	if (sqlite3_step(w[W_RET_MIN_ID]) == SQLITE_ROW &&
	    sqlite3_column_type(w[W_RET_MIN_ID], 0) != SQLITE_NULL) {
		low = sqlite3_column_int64(w[W_RET_MIN_ID], 0);
		have_low = true;
	}
	sqlite3_reset(w[W_RET_MIN_ID]);

	if (!have_low || low >= cut) {
		s->next_retain_us = now + RETAIN_INTERVAL_US;
		if (s->sweep_pending && now >= s->next_sweep_us)
			sweep_step(s);
		return;
	}
	end = cut - low > RETAIN_STEP_ROWS ? low + RETAIN_STEP_ROWS : cut;
	more = end < cut;
	rc = store__step_done(w[W_BEGIN]);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(w[W_RET_DEL_TICKS], 1, end);
		rc = store__step_done(w[W_RET_DEL_TICKS]);
	}
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(w[W_RET_DEL_COMMITS], 1, end);
		rc = store__step_done(w[W_RET_DEL_COMMITS]);
	}
	if (rc == SQLITE_OK)
		rc = store__step_done(w[W_COMMIT]);
	if (rc != SQLITE_OK) {
		retention_failed(s, rc);
		s->next_retain_us = now + RETAIN_INTERVAL_US;
		return;
	}
	s->sweep_pending = true;
	/* With more to delete, the next step comes after the next batch. */
	s->next_retain_us = more ? now : now + RETAIN_INTERVAL_US;
	if (!more && now >= s->next_sweep_us)
		sweep_step(s);
}

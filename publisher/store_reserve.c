/*
 * store_reserve.c: seqs reserved ahead (store.h, "Seqs"; schema/004).
 *
 * The pipeline asks with store_reserve(); each call is a step, queued
 * under the mutex (resv_asked). The writer takes every step asked when it
 * prepares a batch and writes their rows in the batch's transaction (so a
 * step is never split, and a failed commit retries it with the batch).
 * Once committed, the steps go to resv_granted and the pipeline is woken:
 * store_reserved() hands them over in order.
 *
 * On open, the reservations tell what clients may have seen: a symbol
 * whose reservation is past its stored state is restored past it
 * (store__resv_load).
 */
#include "store_private.h"

#include "epoch.h"

#define FIELD_MASK ((uint16_t)((1u << STATE_FIELD_COUNT) - 1u))
/* A new trading session changes fields the reservations cannot say (the
 * seq gate does not know which tick begins a session), and need not: a
 * delta takes such a field from a client (as null) or gives it one. */
#define SESSION_FIELDS SYMBOL_STATE_SESSION_FIELDS

/* ---------------------------------------------------------------- lists */

static int
list_add_step(struct resv_list *l, uint32_t gen, const char *epoch,
              const struct sink_reservation *r, size_t n)
{
	struct resv_step *st;

	if (l->nsteps == l->steps_cap) {
		size_t cap = l->steps_cap ? l->steps_cap * 2 : 16;
		struct resv_step *p = realloc(l->steps, cap * sizeof *p);

		if (!p)
			return -1;
		l->steps = p;
		l->steps_cap = cap;
	}
	if (l->n + n > l->cap) {
		size_t cap = l->cap ? l->cap : 256;
		struct sink_reservation *p;

		while (cap < l->n + n)
			cap *= 2;
		p = realloc(l->r, cap * sizeof *p);
		if (!p)
			return -1;
		l->r = p;
		l->cap = cap;
	}
	st = &l->steps[l->nsteps++];
	st->gen = gen;
	snprintf(st->epoch, sizeof st->epoch, "%s", epoch ? epoch : "");
	st->first = l->n;
	st->n = n;
	if (n)
		memcpy(&l->r[l->n], r, n * sizeof *r);
	l->n += n;
	return 0;
}

/* Move every step of src to the end of dst (src is left empty). */
static int
list_move(struct resv_list *dst, struct resv_list *src)
{
	size_t i;

	if (!dst->nsteps) {
		struct resv_list t = *dst;

		*dst = *src;
		*src = t;
		src->nsteps = src->n = 0;
		return 0;
	}
	for (i = 0; i < src->nsteps; i++) {
		const struct resv_step *st = &src->steps[i];

		if (list_add_step(dst, st->gen, st->epoch[0] ? st->epoch : NULL,
		                  &src->r[st->first], st->n))
			return -1;
	}
	src->nsteps = src->n = 0;
	return 0;
}

void
store__resv_list_free(struct resv_list *l)
{
	free(l->steps);
	free(l->r);
	memset(l, 0, sizeof *l);
}

/* ------------------------------------------------------------------ API */

int
store_reserve(struct store *s, uint32_t gen, const char *epoch,
              const struct sink_reservation *r, size_t n)
{
	int rc = -1;

	if (epoch && strlen(epoch) > 2 * EPOCH_BYTES)
		return -1;
	pthread_mutex_lock(&s->mu);
	if (!s->stopping)
		rc = list_add_step(&s->resv_asked, gen, epoch, r, n);
	pthread_mutex_unlock(&s->mu);
	if (!rc)
		pthread_cond_signal(&s->cond);
	return rc;
}

void
store_reserved(struct store *s, sink_grant_fn fn, void *ctx)
{
	struct resv_list got;
	size_t i;

	pthread_mutex_lock(&s->mu);
	if (!s->resv_granted.nsteps) {
		pthread_mutex_unlock(&s->mu);
		return;
	}
	got = s->resv_granted;
	memset(&s->resv_granted, 0, sizeof s->resv_granted);
	pthread_mutex_unlock(&s->mu);
	for (i = 0; i < got.nsteps; i++) {
		struct sink_grant g;

		g.gen = got.steps[i].gen;
		g.epoch = got.steps[i].epoch[0] ? got.steps[i].epoch : NULL;
		g.r = &got.r[got.steps[i].first];
		g.n = got.steps[i].n;
		fn(&g, ctx);
	}
	store__resv_list_free(&got);
}

bool
store__resv_asked(struct store *s)
{
	bool yes;

	pthread_mutex_lock(&s->mu);
	yes = s->resv_asked.nsteps != 0;
	pthread_mutex_unlock(&s->mu);
	return yes;
}

/* -------------------------------------------------------------- opening */

/* st past its reservation: at reserved + 1, every field changed there,
 * and the session's fields it lacks taken away there (a client may hold
 * one the store never saw). */
static void
bump(struct symbol_state *st, uint64_t reserved)
{
	uint16_t changed = st->present | SESSION_FIELDS;
	int f;

	st->seq = reserved + 1;
	for (f = 0; f < STATE_FIELD_COUNT; f++)
		st->changed_seq[f] = (changed >> f) & 1u ? st->seq : 0;
}

static int
write_epoch(struct store *s, const char *epoch)
{
	sqlite3_stmt *q = NULL;
	int rc = store__exec_sql(s->db, "BEGIN IMMEDIATE");

	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(s->db, "UPDATE meta SET epoch = ?1", -1,
		                        &q, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(q, 1, epoch, -1, SQLITE_STATIC);
		rc = store__step_done(q);
	}
	sqlite3_finalize(q);
	if (rc == SQLITE_OK)
		rc = store__exec_sql(s->db, "COMMIT");
	if (rc != SQLITE_OK && !sqlite3_get_autocommit(s->db))
		store__exec_sql(s->db, "ROLLBACK");
	return rc;
}

int
store__resv_load(struct store *s, bool edge, char *err, size_t errlen)
{
	struct sink_reservation *r = NULL;
	sqlite3_stmt *q = NULL;
	size_t i, n = 0, bumped = 0, lost = 0;
	char lost_name[TICK_SYMBOL_MAX + 1] = "";
	char bump_name[TICK_SYMBOL_MAX + 1] = "";
	uint64_t bump_from = 0, bump_to = 0;
	int rc;

	rc = sqlite3_prepare_v2(s->db,
	                        "SELECT s.name, r.seq_reserved, r.fields FROM "
	                        "reservations AS r JOIN symbols AS s ON s.id "
	                        "= r.symbol_id",
	                        -1, &q, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(q, 0);
		size_t len = strlen(name);
		struct sym *y = store__sym_find(&s->syms, name, len,
		                                hash_name(name, len));

		rc = SQLITE_OK;
		if (!y)
			continue;
		y->has_resv = true;
		y->reserved = (uint64_t)sqlite3_column_int64(q, 1);
		y->resv_fields =
		        (uint16_t)(sqlite3_column_int64(q, 2) & FIELD_MASK);
	}
	if (store__read_done(s, q, rc, err, errlen))
		return -1;
	if (s->syms.count && !(r = calloc(s->syms.count, sizeof *r)))
		return errf(err, errlen, "out of memory");

	for (i = 0; i < s->syms.count; i++) {
		struct sym *y = s->syms.list[i];
		const struct symbol_state *found =
		        state_table_find(s->states, y->name);
		struct symbol_state st;

		if (found)
			st = *found;
		else
			symbol_state_init(&st, y->name, strlen(y->name));
		y->row_seq = st.seq;
		if (!y->has_resv || y->reserved < st.seq) {
			/* No reservation (a database from before them), or
			 * one the stored ticks went past (an import): what
			 * is stored is all there was. */
			y->reserved = st.seq;
			y->resv_fields = st.present;
		}
		if (edge)
			continue;
		if (y->reserved > st.seq) {
			/* Not stopped cleanly: seqs up to the reservation
			 * may have been seen, with values not stored. */
			if (y->resv_fields & ~st.present & FIELD_MASK &
			    (uint16_t)~SESSION_FIELDS) {
				if (!lost++)
					snprintf(lost_name, sizeof lost_name,
					         "%s", y->name);
			}
			if (!bumped++) {
				snprintf(bump_name, sizeof bump_name, "%s",
				         y->name);
				bump_from = st.seq;
				bump_to = y->reserved + 1;
			}
			bump(&st, y->reserved);
			if (state_table_restore(s->states, &st)) {
				free(r);
				return errf(err, errlen,
				            "db '%s': cannot restore symbol "
				            "'%.40s' past its reserved seqs "
				            "(out of memory)",
				            s->path, y->name);
			}
		}
		snprintf(r[n].symbol, sizeof r[n].symbol, "%s", y->name);
		r[n].seq = y->reserved;
		r[n].fields = (uint16_t)(y->resv_fields | st.present);
		n++;
	}
	if (bumped)
		log_warn("store: db '%s' was not stopped cleanly: %zu symbols "
		         "go on past the seqs reserved for them (e.g. '%s' at "
		         "seq %llu, stored up to %llu), every field changed "
		         "there, so no seq a client saw names other values",
		         s->path, bumped, bump_name,
		         (unsigned long long)bump_to,
		         (unsigned long long)bump_from);
	if (lost) {
		char epoch[2 * EPOCH_BYTES + 1];

		/* A delta cannot take a field away from a client: only a
		 * snapshot, which a new epoch brings. */
		epoch_make(epoch, sizeof epoch);
		rc = write_epoch(s, epoch);
		if (rc != SQLITE_OK) {
			free(r);
			return errf(err, errlen,
			            "db '%s': %zu symbols may have lost values "
			            "clients saw (e.g. '%s') and need a new "
			            "epoch, which cannot be written: %s (%s)",
			            s->path, lost, lost_name,
			            sqlite3_errmsg(s->db),
			            store__error_hint(rc));
		}
		log_warn("store: db '%s': %zu symbols may have lost values "
		         "clients saw (e.g. the first '%s' fields of a kind "
		         "were never stored): new epoch %s (was %s), clients "
		         "start over with snapshots",
		         s->path, lost, lost_name, epoch, s->epoch);
		snprintf(s->epoch, sizeof s->epoch, "%s", epoch);
	}
	if (!edge && list_add_step(&s->resv_granted, 0, NULL, r, n)) {
		free(r);
		return errf(err, errlen, "out of memory");
	}
	free(r);
	return 0;
}

/* ------------------------------------------------------- writer thread */

/*
 * Take the steps asked so far into the batch, and work out their rows:
 * the symbols row of a symbol new to the store (unless the batch writes
 * it already), and for a clean stop's last seq, the state when the
 * writer's state has reached it and nothing else in the batch writes it.
 * Called at the end of batch_prepare, once per batch.
 */
void
store__resv_prepare(struct store *s)
{
	struct batch *b = &s->batch;
	size_t i;

	pthread_mutex_lock(&s->mu);
	if (list_move(&b->resv, &s->resv_asked))
		log_error("store: out of memory: seq reservations wait");
	pthread_mutex_unlock(&s->mu);
	if (b->resv.n > b->resv_rows_cap) {
		struct resv_row *p =
		        realloc(b->resv_rows, b->resv.n * sizeof *p);

		if (!p) {
			/* Back in front of what was asked since, for the
			 * next batch. */
			pthread_mutex_lock(&s->mu);
			list_move(&b->resv, &s->resv_asked);
			list_move(&s->resv_asked, &b->resv);
			pthread_mutex_unlock(&s->mu);
			return;
		}
		b->resv_rows = p;
		b->resv_rows_cap = b->resv.n;
	}
	for (i = 0; i < b->resv.n; i++) {
		const struct sink_reservation *r = &b->resv.r[i];
		struct resv_row *row = &b->resv_rows[i];
		size_t len = strnlen(r->symbol, TICK_SYMBOL_MAX);
		struct sym *y = store__sym_find(&s->syms, r->symbol, len,
		                                hash_name(r->symbol, len));
		const struct symbol_state *st;

		memset(row, 0, sizeof *row);
		if (!y && !(y = store__sym_add(&s->syms, r->symbol, len, 0)))
			continue;
		row->sym = y;
		if (y->mark == b->serial)
			continue;
		/* Marked as if grouped, as a gap marks it: its symbols row
		 * is written once, and a second row of it writes none. */
		y->mark = b->serial;
		y->group = UINT32_MAX;
		row->insert_symbol = !y->stored;
		st = state_table_find(s->states, y->name);
		if (r->final && st && st->seq == r->seq &&
		    y->row_seq != st->seq) {
			row->write_state = true;
			row->st = *st;
		}
	}
}

/* Inside the batch's transaction: the epoch and the rows. */
int
store__resv_write(struct store *s)
{
	const struct batch *b = &s->batch;
	sqlite3_stmt **w = s->stmt;
	int rc = SQLITE_OK;
	size_t i;

	for (i = 0; rc == SQLITE_OK && i < b->resv.nsteps; i++) {
		if (!b->resv.steps[i].epoch[0])
			continue;
		sqlite3_bind_text(w[W_EPOCH], 1, b->resv.steps[i].epoch, -1,
		                  SQLITE_STATIC);
		rc = store__step_done(w[W_EPOCH]);
	}
	for (i = 0; rc == SQLITE_OK && i < b->resv.n; i++) {
		const struct sink_reservation *r = &b->resv.r[i];
		const struct resv_row *row = &b->resv_rows[i];

		if (!row->sym)
			continue;
		if (row->insert_symbol)
			rc = store__write_symbol(s, row->sym);
		if (rc != SQLITE_OK)
			break;
		sqlite3_bind_int64(w[W_RESERVE], 1, row->sym->id);
		sqlite3_bind_int64(w[W_RESERVE], 2, (sqlite3_int64)r->seq);
		sqlite3_bind_int64(w[W_RESERVE], 3, r->fields & FIELD_MASK);
		rc = store__step_done(w[W_RESERVE]);
		if (rc == SQLITE_OK && row->write_state)
			rc = store__write_state(s, row->sym, &row->st,
			                        row->sym->max_ts);
	}
	return rc;
}

/*
 * After the batch's commit: the writer's view of what is stored (state
 * rows, reservations, the epoch) follows, and the steps are granted.
 */
void
store__resv_committed(struct store *s)
{
	struct batch *b = &s->batch;
	bool granted = b->resv.nsteps != 0;
	size_t i;

	for (i = 0; i < b->ngroups; i++)
		b->groups[i].sym->row_seq = b->groups[i].st.seq;
	for (i = 0; i < b->ngaps; i++)
		b->gaps[i].sym->row_seq = b->gaps[i].st.seq;
	for (i = 0; i < b->resv.n; i++) {
		const struct resv_row *row = &b->resv_rows[i];

		if (!row->sym)
			continue;
		row->sym->stored = true;
		row->sym->has_resv = true;
		row->sym->reserved = b->resv.r[i].seq;
		row->sym->resv_fields = b->resv.r[i].fields;
		if (row->write_state)
			row->sym->row_seq = row->st.seq;
	}
	if (!granted)
		return;
	pthread_mutex_lock(&s->mu);
	for (i = 0; i < b->resv.nsteps; i++)
		if (b->resv.steps[i].epoch[0])
			snprintf(s->epoch, sizeof s->epoch, "%s",
			         b->resv.steps[i].epoch);
	if (list_move(&s->resv_granted, &b->resv))
		log_error("store: out of memory: seq reservations committed "
		          "but not reported");
	b->resv.nsteps = b->resv.n = 0;
	pthread_mutex_unlock(&s->mu);
	if (s->wake)
		s->wake(s->wake_ctx);
}

/* The store gave up at close: what the batch and the queue asked is not
 * written (nobody waits for it any more). */
void
store__resv_give_up(struct store *s)
{
	s->batch.resv.nsteps = s->batch.resv.n = 0;
	pthread_mutex_lock(&s->mu);
	s->resv_asked.nsteps = s->resv_asked.n = 0;
	pthread_mutex_unlock(&s->mu);
}

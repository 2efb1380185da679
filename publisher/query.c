/*
 * query.c: history and export jobs on worker threads (see query.h).
 *
 * Each job has one mutex-protected output buffer. A worker appends to it and
 * waits while it is over QUERY_BUFFER_MAX (exports only: a history reply is
 * capped in rows, so it is built whole and published at once, which lets a
 * failure become a clean error reply instead of a half-written one). The
 * service thread takes bytes out with query_job_read().
 *
 * Lifetime: a job is referenced by the service thread until
 * query_job_release() and by a worker while it runs. The last of the two
 * frees it. Cancellation is a flag the worker checks between rows.
 *
 * The bytes are written by their formats' owners: protocol.c's history
 * and bars writers, tick_file's lines for an export. This file runs the
 * queries, pages them and hands the bytes over.
 */
#include "query.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonbuf.h"
#include "log.h"
#include "store.h"
#include "tick_file.h"

struct query_job {
	struct query_job *next; /* worker's queue of jobs to run */
	struct query_worker *w;
	struct query_spec spec;
	void *owner;

	/* guarded by w->lock: on the worker's ready list */
	struct query_job *ready_prev, *ready_next;
	bool ready;

	/* guarded by w->lock */
	struct jsonbuf out; /* produced, not yet read */
	size_t read_pos;    /* bytes of `out` already read */
	bool finished;
	bool cancelled;
	int refs;
	char error[200];
};

struct query_worker {
	char *db_path;
	void (*wake)(void *ctx);
	void *wake_ctx;

	pthread_mutex_t lock;
	pthread_cond_t work;    /* a job was queued, or stop */
	pthread_cond_t drained; /* a job's buffer was read from */
	struct query_job *head, *tail;
	struct query_job *ready; /* jobs with news for the service thread */
	bool stop;

	unsigned nthreads;
	pthread_t *threads;
};

/* Put j on the ready list (once), under w->lock. */
static void
ready_push_locked(struct query_job *j)
{
	struct query_worker *w = j->w;

	if (j->ready || j->cancelled)
		return;
	j->ready = true;
	j->ready_prev = NULL;
	j->ready_next = w->ready;
	if (w->ready)
		w->ready->ready_prev = j;
	w->ready = j;
}

static void
ready_remove_locked(struct query_job *j)
{
	struct query_worker *w = j->w;

	if (!j->ready)
		return;
	if (j->ready_prev)
		j->ready_prev->ready_next = j->ready_next;
	else
		w->ready = j->ready_next;
	if (j->ready_next)
		j->ready_next->ready_prev = j->ready_prev;
	j->ready = false;
}

static void
job_unref_locked(struct query_job *j)
{
	if (--j->refs == 0) {
		jsonbuf_free(&j->out);
		free(j);
	}
}

/* --------------------------------------------------------- producing */

/* Streams rows into a job, waiting while the reader is behind. */
struct producer {
	struct query_job *job;
	struct jsonbuf chunk; /* rows gathered before taking the lock */
	bool whole;           /* history: publish only at the end */
	uint32_t rows;
	uint32_t max_rows;
	bool more;        /* stopped at max_rows with rows left */
	int64_t first_ts; /* of the first row */
	int64_t last_ts;
	int64_t next_from; /* with `more`: where the next page starts */
	/* History pages end between two timestamps, never inside a run of
	 * equal ones, so "from = next_from" loses nothing: the bytes and rows
	 * where the current run of equal timestamps began. */
	size_t run_start_len;
	uint32_t run_start_rows;
};

/* Hand the gathered chunk to the reader. Returns -1 when cancelled. */
static int
producer_flush(struct producer *p)
{
	struct query_job *j = p->job;
	struct query_worker *w = j->w;
	int rc = 0;

	if (!p->chunk.len)
		return 0;
	pthread_mutex_lock(&w->lock);
	while (!j->cancelled && !w->stop &&
	       j->out.len - j->read_pos > QUERY_BUFFER_MAX)
		pthread_cond_wait(&w->drained, &w->lock);
	if (j->cancelled || w->stop) {
		rc = -1;
	} else {
		/* Compact what was already read before growing. */
		if (j->read_pos) {
			memmove(jsonbuf_data(&j->out),
			        jsonbuf_data(&j->out) + j->read_pos,
			        j->out.len - j->read_pos);
			j->out.len -= j->read_pos;
			j->read_pos = 0;
		}
		jsonbuf_append(&j->out, jsonbuf_data(&p->chunk), p->chunk.len);
		if (jsonbuf_failed(&j->out))
			rc = -1;
		else if (!p->whole)
			ready_push_locked(j);
	}
	pthread_mutex_unlock(&w->lock);
	jsonbuf_reset(&p->chunk);
	if (!rc && w->wake)
		w->wake(w->wake_ctx);
	return rc;
}

static bool
job_cancelled(struct query_job *j)
{
	bool c;

	pthread_mutex_lock(&j->w->lock);
	c = j->cancelled || j->w->stop;
	pthread_mutex_unlock(&j->w->lock);
	return c;
}

/* Called per row: flush exports in 64 KiB steps. */
static int
producer_row_done(struct producer *p)
{
	if (jsonbuf_failed(&p->chunk))
		return -1;
	if (!p->whole && p->chunk.len >= 64 * 1024)
		return producer_flush(p);
	/* Check for cancellation now and then without a lock per row. */
	if ((p->rows & 4095) == 0 && job_cancelled(p->job))
		return -1;
	return 0;
}

/* A history or bars row (at time ts) has been written: count it. */
static int
producer_row_added(struct producer *p, int64_t ts)
{
	if (p->rows++ == 0)
		p->first_ts = ts;
	p->last_ts = ts;
	return producer_row_done(p);
}

static int
history_tick_row(const struct tick *t, void *ctx)
{
	struct producer *p = ctx;

	if (p->rows == p->max_rows) {
		p->more = true;
		if (t->ts != p->last_ts) {
			p->next_from = t->ts;
		} else if (p->run_start_rows) {
			/* Drop the run of equal timestamps the page would
			 * cut: the next page starts with all of it. */
			p->chunk.len = p->run_start_len;
			p->rows = p->run_start_rows;
			p->next_from = p->last_ts;
		} else {
			/* The whole page is one timestamp: more ticks share
			 * it than a page holds. Go on past it. */
			p->next_from = p->last_ts + 1;
		}
		return 1;
	}
	if (!p->rows || t->ts != p->last_ts) {
		p->run_start_len = p->chunk.len;
		p->run_start_rows = p->rows;
	}
	protocol_write_history_tick(&p->chunk, p->rows == 0, t);
	return producer_row_added(p, t->ts);
}

static int
bar_row(const struct bar *bar, void *ctx)
{
	struct producer *p = ctx;

	if (p->max_rows && p->rows == p->max_rows) {
		p->more = true;
		p->next_from = bar->t; /* bars have distinct start times */
		return 1;
	}
	protocol_write_history_bar(&p->chunk, p->rows == 0, bar);
	return producer_row_added(p, bar->t);
}

static int
export_row(const struct tick *t, void *ctx)
{
	struct producer *p = ctx;

	p->rows++;
	tick_file_write_line(&p->chunk, p->job->spec.jsonl, t);
	return producer_row_done(p);
}

/* Most gaps one reply lists; a reply with more says "gaps_more":true. */
#define GAPS_MAX 100

struct gap_list {
	struct jsonbuf *b;
	unsigned n;
	bool more;
};

static int
gap_row(const struct store_gap *g, void *ctx)
{
	struct gap_list *l = ctx;

	if (l->n == GAPS_MAX) {
		l->more = true;
		return 1;
	}
	protocol_write_history_gap(l->b, l->n++ == 0, g);
	return 0;
}

/*
 * The gaps (ticks the store did not keep) that overlap what a reply
 * covers, after its rows (protocol_write_history_gap). What it covers: the
 * range asked for; for a last-N request, from its first row on.
 */
static int
write_gaps(struct store_reader *r, struct producer *p,
           const struct query_spec *q, char *err, size_t errlen)
{
	struct gap_list l = {.b = &p->chunk};
	int64_t from = q->from, to = q->to;

	if (q->limit && p->rows && p->first_ts > from)
		from = p->first_ts;
	if (p->more && p->next_from < to)
		to = p->next_from;
	if (store_read_gaps(r, q->symbols[0], from, to, gap_row, &l, err,
	                    errlen))
		return -1;
	protocol_write_history_gaps_end(&p->chunk, l.n, l.more);
	return 0;
}

/* A history reply, built whole: ticks, or bars when an interval was asked
 * for, at most QUERY_HISTORY_MAX rows, then the gaps they overlap. */
static int
run_history(struct store_reader *r, struct producer *p,
            const struct query_spec *q, char *err, size_t errlen)
{
	int rc;

	p->whole = true;
	p->max_rows = QUERY_HISTORY_MAX;
	protocol_write_history_begin(&p->chunk, q->id, q->symbols[0],
	                             q->interval_us ? q->interval : "");
	if (q->interval_us)
		rc = store_read_bars(r, q->symbols[0], q->from, q->to,
		                     q->interval_us, q->limit, bar_row, p, err,
		                     errlen);
	else
		rc = store_read_history(r, q->symbols[0], q->from, q->to,
		                        q->limit, history_tick_row, p, err,
		                        errlen);
	protocol_write_history_rows_end(&p->chunk);
	if (!rc)
		rc = write_gaps(r, p, q, err, errlen);
	protocol_write_history_end(&p->chunk, p->more, p->next_from);
	return rc;
}

/* GET /api/bars: the bars and their gaps, streamed. */
static int
run_bars(struct store_reader *r, struct producer *p, const struct query_spec *q,
         char *err, size_t errlen)
{
	int rc;

	protocol_write_bars_begin(&p->chunk, q->symbols[0], q->interval);
	rc = store_read_bars(r, q->symbols[0], q->from, q->to, q->interval_us,
	                     q->limit, bar_row, p, err, errlen);
	protocol_write_history_rows_end(&p->chunk);
	if (!rc)
		rc = write_gaps(r, p, q, err, errlen);
	protocol_write_bars_end(&p->chunk);
	return rc;
}

/* GET /api/export: tick-file lines, streamed. */
static int
run_export(struct store_reader *r, struct producer *p,
           const struct query_spec *q, char *err, size_t errlen)
{
	const char *syms[QUERY_MAX_SYMBOLS];
	size_t i;

	for (i = 0; i < q->symbol_count; i++)
		syms[i] = q->symbols[i];
	if (!q->jsonl)
		tick_file_write_csv_header(&p->chunk);
	return store_read_ticks(r, q->symbol_count ? syms : NULL,
	                        q->symbol_count, q->from, q->to, q->limit,
	                        export_row, p, err, errlen);
}

static int
run_job(struct store_reader *r, struct query_job *j, char *err, size_t errlen)
{
	const struct query_spec *q = &j->spec;
	struct producer p = {.job = j};
	int rc = 0;

	jsonbuf_init(&p.chunk, 0);
	switch (q->kind) {
	case QUERY_HISTORY:
		rc = run_history(r, &p, q, err, errlen);
		break;
	case QUERY_BARS:
		rc = run_bars(r, &p, q, err, errlen);
		break;
	case QUERY_EXPORT:
		rc = run_export(r, &p, q, err, errlen);
		break;
	}
	if (!rc && (jsonbuf_failed(&p.chunk) || producer_flush(&p))) {
		if (!err[0])
			snprintf(err, errlen, "%s",
			         job_cancelled(j) ? "cancelled"
			                          : "out of memory");
		rc = -1;
	}
	jsonbuf_free(&p.chunk);
	return rc;
}

static void *
worker_main(void *arg)
{
	struct query_worker *w = arg;
	struct store_reader *reader = NULL;
	char err[200];

	for (;;) {
		struct query_job *j;
		int rc;

		pthread_mutex_lock(&w->lock);
		while (!w->stop && !w->head)
			pthread_cond_wait(&w->work, &w->lock);
		if (w->stop) {
			pthread_mutex_unlock(&w->lock);
			break;
		}
		j = w->head;
		w->head = j->next;
		if (!w->head)
			w->tail = NULL;
		if (j->cancelled) {
			/* Released before it ran: nobody wants the answer. */
			j->finished = true;
			job_unref_locked(j);
			pthread_mutex_unlock(&w->lock);
			continue;
		}
		pthread_mutex_unlock(&w->lock);

		err[0] = '\0';
		/* Opened on first use, so a server whose database is still
		 * empty starts without waiting on it. */
		if (!reader)
			reader = store_reader_open(w->db_path, err, sizeof err);
		rc = reader ? run_job(reader, j, err, sizeof err) : -1;

		pthread_mutex_lock(&w->lock);
		if (rc) {
			snprintf(j->error, sizeof j->error, "%s",
			         err[0] ? err : "query failed");
			if (j->spec.kind != QUERY_EXPORT) {
				/* Nothing of a whole reply went out: drop
				 * the partial output, the caller sends an
				 * error reply instead. */
				j->out.len = 0;
				j->read_pos = 0;
			}
		}
		j->finished = true;
		ready_push_locked(j);
		job_unref_locked(j);
		pthread_mutex_unlock(&w->lock);
		if (rc && strcmp(err, "cancelled"))
			log_warn("query: %s", err);
		if (w->wake)
			w->wake(w->wake_ctx);
	}
	store_reader_close(reader);
	return NULL;
}

/* --------------------------------------------------------- the API */

struct query_worker *
query_worker_create(const char *db_path, unsigned threads,
                    void (*wake)(void *ctx), void *ctx, char *err,
                    size_t errlen)
{
	struct query_worker *w = calloc(1, sizeof *w);
	unsigned i;

	if (!w || !(w->db_path = strdup(db_path)) ||
	    !(w->threads = calloc(threads ? threads : 1, sizeof *w->threads))) {
		if (w)
			free(w->db_path);
		free(w);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->wake = wake;
	w->wake_ctx = ctx;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->work, NULL);
	pthread_cond_init(&w->drained, NULL);
	for (i = 0; i < (threads ? threads : 1); i++) {
		if (pthread_create(&w->threads[i], NULL, worker_main, w)) {
			snprintf(err, errlen, "cannot start query thread");
			query_worker_destroy(w);
			return NULL;
		}
		w->nthreads++;
	}
	return w;
}

void
query_worker_destroy(struct query_worker *w)
{
	unsigned i;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->work);
	pthread_cond_broadcast(&w->drained);
	pthread_mutex_unlock(&w->lock);
	for (i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	/* Jobs never picked up: the worker's reference goes here. */
	while (w->head) {
		struct query_job *j = w->head;

		w->head = j->next;
		job_unref_locked(j);
	}
	pthread_cond_destroy(&w->work);
	pthread_cond_destroy(&w->drained);
	pthread_mutex_destroy(&w->lock);
	free(w->threads);
	free(w->db_path);
	free(w);
}

struct query_job *
query_submit(struct query_worker *w, const struct query_spec *spec, void *owner)
{
	struct query_job *j = calloc(1, sizeof *j);

	if (!j)
		return NULL;
	j->w = w;
	j->spec = *spec;
	j->owner = owner;
	j->refs = 2; /* the caller and the worker */
	jsonbuf_init(&j->out, 0);
	pthread_mutex_lock(&w->lock);
	if (w->tail)
		w->tail->next = j;
	else
		w->head = j;
	w->tail = j;
	pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->lock);
	return j;
}

void
query_spec_end_at(struct query_spec *q, int64_t end)
{
	if (end < INT64_MAX && end + 1 < q->to)
		q->to = end + 1;
	if (q->from > q->to)
		q->from = q->to;
}

void
query_owner_ready(void *owner, void *ctx)
{
	struct query_owner *o = owner;

	(void)ctx;
	o->ready(o);
}

size_t
query_worker_take_ready(struct query_worker *w,
                        void (*fn)(void *owner, void *ctx), void *ctx)
{
	struct query_job *j;
	size_t n = 0;

	/* The owners are called under the lock: none of them may come back
	 * into the worker (query.h), and they only ask for a callback. */
	pthread_mutex_lock(&w->lock);
	while ((j = w->ready) != NULL) {
		ready_remove_locked(j);
		fn(j->owner, ctx);
		n++;
	}
	pthread_mutex_unlock(&w->lock);
	return n;
}

size_t
query_job_read(struct query_job *j, char *buf, size_t cap, bool *done)
{
	struct query_worker *w = j->w;
	size_t n, avail;

	pthread_mutex_lock(&w->lock);
	avail = j->out.len - j->read_pos;
	/* A history reply is published whole: nothing until finished. */
	if (j->spec.kind == QUERY_HISTORY && !j->finished)
		avail = 0;
	n = avail < cap ? avail : cap;
	if (n) {
		memcpy(buf, jsonbuf_data(&j->out) + j->read_pos, n);
		j->read_pos += n;
		pthread_cond_broadcast(&w->drained);
	}
	*done = j->finished && j->read_pos == j->out.len;
	pthread_mutex_unlock(&w->lock);
	return n;
}

size_t
query_job_pending(struct query_job *j)
{
	size_t n;

	pthread_mutex_lock(&j->w->lock);
	n = j->out.len - j->read_pos;
	if (j->spec.kind == QUERY_HISTORY && !j->finished)
		n = 0;
	pthread_mutex_unlock(&j->w->lock);
	return n;
}

const char *
query_job_error(struct query_job *j)
{
	const char *e;

	pthread_mutex_lock(&j->w->lock);
	e = j->finished && j->error[0] ? j->error : NULL;
	pthread_mutex_unlock(&j->w->lock);
	return e;
}

void
query_job_release(struct query_job *j)
{
	struct query_worker *w;

	if (!j)
		return;
	w = j->w;
	pthread_mutex_lock(&w->lock);
	ready_remove_locked(j);
	j->cancelled = true;
	pthread_cond_broadcast(&w->drained);
	job_unref_locked(j);
	pthread_mutex_unlock(&w->lock);
}

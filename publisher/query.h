/*
 * query: history, bars and exports answered from SQLite off the service
 * thread.
 *
 * A query worker owns a small pool of threads, each with its own read-only
 * store_reader, so a long export never stalls the live stream or another
 * client's history request. A job's output is produced on a worker thread as
 * ready-to-send bytes (a JSON reply, or CSV/JSONL export chunks) into the
 * job's bounded buffer; the service thread reads it out when its socket is
 * writable. When the buffer is full the worker waits, so an export to a slow
 * HTTP client holds at most QUERY_BUFFER_MAX bytes, never the whole result.
 *
 * `wake` is called (from a worker thread) whenever a job has new output or
 * has finished, and the job is put on the worker's ready list; the server
 * then takes that list (query_worker_take_ready) and asks for writable
 * callbacks for those jobs' connections alone.
 *
 * Threading: query_submit, query_job_read and query_job_release are called
 * from one thread (the service thread); the rest happens inside.
 *
 * What it owns: the worker owns its threads, each thread's store_reader
 * and every job until query_job_release(); a job owns its output buffer
 * (at most QUERY_BUFFER_MAX bytes).
 *
 * Who calls it: server.c makes the one worker (when there is a database)
 * and, on the worker's wake, takes the ready list; session.c submits
 * history requests; http_api.c submits GET /api/export and /api/bars.
 */
#ifndef PUBLISHER_QUERY_H
#define PUBLISHER_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

#define QUERY_BUFFER_MAX (256 * 1024)
#define QUERY_MAX_SYMBOLS 64
/* Most ticks or bars one history reply carries; a reply cut at this many
 * says "more":true and the client asks again from the last ts. */
#define QUERY_HISTORY_MAX 10000

struct query_worker;
struct query_job;

enum query_kind {
	QUERY_HISTORY,	/* ws reply {"type":"history",…} with ticks or bars */
	QUERY_BARS,	/* GET /api/bars: {"symbol":…,"interval":…,"bars":[…]} */
	QUERY_EXPORT,	/* GET /api/export: CSV or JSONL, streamed */
};

struct query_spec {
	enum query_kind kind;
	char id[PROTOCOL_ID_MAX + 1]; /* QUERY_HISTORY: request id, or "" */
	char symbols[QUERY_MAX_SYMBOLS][TICK_SYMBOL_MAX + 1];
	size_t symbol_count; /* 0 = all symbols (export only) */
	int64_t from, to;    /* µs; to = INT64_MAX when open-ended */
	uint32_t limit;	     /* last N; 0 = none */
	int64_t interval_us; /* bars; 0 = ticks */
	char interval[4];    /* the interval's name as asked ("1m") */
	bool jsonl;	     /* export format; false = csv */
};

/* threads: worker threads (>= 1). NULL with the cause in err. */
struct query_worker *
query_worker_create(const char *db_path, unsigned threads,
		    void (*wake)(void *ctx), void *ctx, char *err,
		    size_t errlen);

/* Release every job first; then this stops and joins the threads. NULL is
 * a no-op. */
void
query_worker_destroy(struct query_worker *w);

/* Queue a job. The caller holds it until query_job_release(). `owner` is
 * handed back by query_worker_take_ready() (the connection waiting for the
 * output). NULL on allocation failure. */
struct query_job *
query_submit(struct query_worker *w, const struct query_spec *spec,
	     void *owner);

/* End what q covers at end (inclusive): a replay serves nothing from after
 * its position (pipeline_history_end). INT64_MAX leaves q as it is. */
void
query_spec_end_at(struct query_spec *q, int64_t end);

/* Call fn(owner, ctx) once for every job that has new output or finished
 * since the last call, and has not been released. Returns how many. Called
 * from the same thread as query_submit(); fn must not submit or release. */
size_t
query_worker_take_ready(struct query_worker *w,
			void (*fn)(void *owner, void *ctx), void *ctx);

/* An owner that is told itself: the first member of the owner's struct,
 * when owners of several kinds share a worker. query_owner_ready is then
 * the fn for query_worker_take_ready: it calls the owner's ready(). */
struct query_owner {
	void (*ready)(struct query_owner *self);
};

void
query_owner_ready(void *owner, void *ctx);

/*
 * Move up to cap bytes of output into buf without blocking. Returns the
 * number moved. *done becomes true once the job has finished and all its
 * output has been read; then query_job_error() tells whether it failed (a
 * history or bars job then has no output: send an error instead; an export
 * has been cut short).
 */
size_t
query_job_read(struct query_job *j, char *buf, size_t cap, bool *done);

/* Output waiting now (0 when none yet). */
size_t
query_job_pending(struct query_job *j);

/* After done: NULL when the job succeeded, else what went wrong. */
const char *
query_job_error(struct query_job *j);

/* Stop the job if it is running and free it once the worker lets go. */
void
query_job_release(struct query_job *j);

#endif

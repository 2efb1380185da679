/*
 * store_private.h: what the store's files share, and nobody else.
 *
 *   store.c         opening, migrations, loading, the queue, the writer
 *                   thread
 *   store_sink.c    the pipeline's sink: a live feed's ticks, and the gaps
 *                   it records when the queue is full
 *   store_write.c   writing a batch in one transaction, failures and
 *                   retries, retention
 *   store_reserve.c seqs reserved ahead: the steps asked, written with a
 *                   batch and reported; the reservations found on open
 *   store_rewind.c  a replay's seek back: dropping what came after it
 *   store_import.c  the bulk path of `publisher import`, without the
 *                   writer thread
 *   store_read.c    store_reader: history, export, bars and gaps
 *   store_sql.c     the SQLite helpers they all use
 *
 * Included by those files only. It owns nothing itself: it defines struct
 * store (what store.h says the store owns), made by store_open() and
 * freed by store_close().
 *
 * The store's design (the layout, the writer thread, the batches) is told
 * at the top of store.c; the reads at the top of store_read.c.
 */
#ifndef PUBLISHER_STORE_PRIVATE_H
#define PUBLISHER_STORE_PRIVATE_H

#include "store.h"
#include "../schema/schema_sql.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "decimal.h"
#include "errbuf.h"
#include "hash.h"
#include "log.h"
#include "state_table.h"

#define DEFAULT_COMMIT_MS      50
#define DEFAULT_QUEUE_CAPACITY 262144
/* Most ticks in one transaction. Batches grow toward this under load
 * (fewer commits, each rewriting the same hot pages once); it also bounds
 * how long one commit holds the ticks behind it. */
#define BATCH_MAX 32768
/* Rows per multi-row INSERT: one statement step appends them all, with the
 * table cursor kept open between rows. */
#define INSERT_ROWS  64
#define TICK_COLUMNS 12
#define SCALE_BITS   5
#define SCALE_MASK   31

/* Failures: the cause is logged at most this often; retries back off
 * between these bounds; store_close() stops retrying after CLOSE_GIVE_UP. */
#define FAIL_LOG_INTERVAL_US (60 * 1000000ll)
#define RETRY_MIN_US         (50 * 1000ll)
#define RETRY_MAX_US         (2 * 1000000ll)
#define CLOSE_GIVE_UP_US     (10 * 1000000ll)

/* Retention: checked this often; each step deletes at most this many ticks
 * in its own transaction, so a writer with a large backlog of deletes
 * still commits new ticks between steps. Runs of deleted ticks are swept
 * every SWEEP_INTERVAL, this many symbols per transaction. */
#define RETAIN_INTERVAL_US (1000000ll)
#define RETAIN_STEP_ROWS   20000
#define SWEEP_INTERVAL_US  (10 * 1000000ll)
#define SWEEP_STEP_SYMBOLS 256

/* A queued tick older than this is logged as the store falling behind. */
#define LAG_WARN_US (250 * 1000ll)

/* The writer sleeps at most this long when idle. */
#define IDLE_WAKE_US (1000000ll)

#define WRITER_CACHE_KIB  65536
#define READER_CACHE_KIB  16384
#define READER_MMAP_BYTES (256ll << 20)
/* Pages the WAL may hold before a commit checkpoints it. Larger than
 * SQLite's 1000 so that the pages every commit rewrites (state rows, the
 * newest run of each symbol) reach the database file once per checkpoint,
 * not once per commit. */
#define WAL_CHECKPOINT_PAGES 8192
#define WAL_SIZE_LIMIT       (64ll << 20)
#define BUSY_TIMEOUT_MS      5000

/* The oldest schema whose tables a reader understands. */
#define READER_MIN_VERSION 1

#define EPOCH_BYTES 8

/* The writer's view of one symbol. */
struct sym {
	int64_t id;
	int64_t max_ts;  /* running max ts of its stored ticks; INT64_MIN */
	int64_t max_lag; /* greatest max_ts - ts_min of its runs */
	uint32_t mark;   /* serial of the batch that last grouped it */
	uint32_t group;  /* its group in that batch */
	bool stored;     /* its symbols row is committed */
	/* Seqs (store.h): its committed reservation (has_resv false: none,
	 * taken as its stored seq), and the seq of its committed state row
	 * (0: none). */
	bool has_resv;
	uint16_t resv_fields;
	uint64_t reserved;
	uint64_t row_seq;
	uint64_t hash;
	char name[TICK_SYMBOL_MAX + 1];
};

struct sym_table {
	struct sym **slots; /* open addressing, linear probing */
	size_t mask;
	struct sym **list; /* every symbol, in id order */
	size_t count, cap;
	int64_t next_id;
};

/* Ticks of one symbol the store did not keep: a range of seqs. */
struct gap {
	char symbol[TICK_SYMBOL_MAX + 1];
	uint64_t first_seq, last_seq;
	int64_t first_ts, last_ts;
	uint64_t ticks;
};

/* A state for the writer's states: a resync (edge), or the state a symbol
 * had when the store took up again after a gap. */
struct restore {
	struct symbol_state st;
	bool has_gap;
	struct gap gap;
};

/* A rewind (store_rewind), queued: it runs when the writer has released
 * `at` ring slots in all, i.e. written every tick appended before it. */
struct rewind {
	uint64_t at;
	struct sink_cut *cuts;
	size_t ncuts;
	sink_rewind_done_fn done;
	void *ctx;
};

/* Reservations (store.h, "Seqs"), as the pipeline asked for them: one
 * step per store_reserve(), written in one transaction. */
struct resv_step {
	uint32_t gen;
	char epoch[2 * EPOCH_BYTES + 1]; /* "": no epoch change */
	size_t first, n;                 /* in the list's r[] */
};

struct resv_list {
	struct resv_step *steps;
	size_t nsteps, steps_cap;
	struct sink_reservation *r;
	size_t n, cap;
};

/* A reservation row of the batch, with what it needs besides. */
struct resv_row {
	struct sym *sym;
	bool insert_symbol;
	/* A clean stop's last seq that the writer's state has reached:
	 * the state row is written too, so the restart goes on from it. */
	bool write_state;
	struct symbol_state st;
};

/* One tick of the batch being written. */
struct item {
	uint32_t slot;  /* in the ring */
	uint32_t group; /* in batch.groups */
	uint64_t seq;   /* as the writer's states applied it */
};

/* One symbol's ticks in the batch: one run. */
struct group {
	struct sym *sym;
	uint32_t first, count; /* in batch.order */
	int64_t ts_min;
	int64_t max_ts;  /* of the run: the symbol's running max */
	int64_t max_lag; /* the symbol's bound after this batch */
	bool insert_symbol;
	struct symbol_state st;
};

/* A gap to commit with the batch, and its symbol's state then. */
struct gap_row {
	struct sym *sym;
	bool insert_symbol;
	struct gap gap;
	struct symbol_state st;
};

struct batch {
	struct gap_row *gaps; /* the writer's pending gaps, prepared */
	size_t ngaps, gaps_cap;
	struct item *items; /* accepted ticks, in arrival order */
	uint32_t *order;    /* items grouped by symbol, each in seq order */
	size_t nitems;
	size_t taken; /* ring slots consumed, refused ticks included */
	struct group *groups;
	size_t ngroups, groups_cap;
	uint32_t serial;
	int64_t first_id;
	int64_t ts_min, max_ts, max_lag; /* the commits row and meta */
	int64_t next_id;
	/* Reservations taken for this transaction (from store.resv_asked),
	 * and their rows (resv.n of them). */
	struct resv_list resv;
	struct resv_row *resv_rows;
	size_t resv_rows_cap;
};

enum wstmt {
	W_BEGIN,
	W_COMMIT,
	W_ROLLBACK,
	W_SYMBOL,
	W_TICKS_MANY,
	W_TICK_ONE,
	W_RUN,
	W_STATE,
	W_COMMIT_ROW,
	W_META,
	W_GAP,
	W_RET_MIN_ID,
	W_RET_AGE_CUT,
	W_RET_DEL_TICKS,
	W_RET_DEL_COMMITS,
	W_RET_OLDEST_COMMIT,
	W_RET_DEL_RUNS,
	W_RESERVE,
	W_EPOCH,
	W_COUNT
};

struct store {
	char *path;
	sqlite3 *db;
	sqlite3_stmt *stmt[W_COUNT];
	int lock_fd;
	char epoch[2 * EPOCH_BYTES + 1];

	int64_t commit_us;
	int64_t retain_age_us;
	uint64_t retain_rows;
	void (*wake)(void *ctx);
	void *wake_ctx;

	struct session_rule sessions; /* store_options.sessions */

	/* Writer thread only (and store_open before it starts). */
	struct state_table *states; /* each symbol's state, as stored */
	struct sym_table syms;
	struct batch batch;
	int64_t next_id;        /* ticks.id of the next tick */
	int64_t max_ts;         /* running max of every stored ts */
	int64_t max_lag;        /* meta.max_lag */
	int64_t next_retain_us; /* mono; INT64_MAX = no retention */
	int64_t next_sweep_us;
	bool sweep_pending;
	size_t sweep_cursor;
	int64_t sweep_below_id, sweep_max_ts;
	int64_t last_fail_log_us;
	uint64_t fails_since_log;
	int64_t failing_since_us;
	int64_t last_retain_log_us;
	int64_t last_refused_log_us;
	int64_t last_lag_log_us;
	char errmsg[160]; /* of the last failed write, taken before rollback */

	/* Shared, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct tick *ring;
	int64_t *enq_us; /* mono time each slot was queued */
	size_t cap, head, count;
	bool writer_waiting;
	bool want_wake;
	bool stopping;
	int64_t stop_us;
	struct store_stats stats;
	struct restore *restores; /* store_restore_state() and gaps, queued */
	size_t nrestores, restores_cap;
	/* Dropping (see "Falling behind" in store.h): what was not stored,
	 * per symbol, until the ring has drained and the sink resumes. */
	bool dropping;
	struct gap *gaps;
	size_t ngaps, gaps_cap;
	uint32_t *gap_slots; /* open addressing over gaps, by name */
	size_t gap_mask;
	int64_t dropping_since_us; /* wall clock */
	/* Seqs (store.h): reservation steps asked and not yet taken by the
	 * writer, and those committed and not yet reported (reserved()). */
	struct resv_list resv_asked, resv_granted;
	/* Ticks given up at close: queued, or dropped and never recorded
	 * as a gap (store_close() returns it). */
	uint64_t unwritten;

	/* Rewinds, in order with the ticks: appended and released count ring
	 * slots since the start (under mu). */
	uint64_t appended, released;
	struct rewind *rewinds;
	size_t nrewinds, rewinds_cap;

	/* Writer thread: gaps taken from restores, written with the next
	 * transaction. */
	struct gap *pending_gaps;
	size_t npending_gaps, pending_gaps_cap;

	pthread_t writer;
	bool started;
};

/* store_sql.c: SQLite helpers */

int64_t store__sat_add(int64_t a, int64_t b);

/* a - b for a >= b, without overflow for any int64 pair. */
int64_t store__span(int64_t a, int64_t b);

/* Scales of the fields in `present`, 5 bits each (see schema/001_init). */
int64_t store__scales_pack(const struct decimal *v, uint16_t present,
                           int nfields);

uint8_t store__scale_of(int64_t packed, int f);

/* What to do about an SQLite error, in words. */
const char *store__error_hint(int rc);

/* Run one statement that returns at most one integer. Returns the SQLite
 * result; *out is set when a row came back (and left alone otherwise). */
int store__query_int64(sqlite3 *db, const char *sql, int64_t *out,
                       bool *had_row);

int store__prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out);

/* Step a statement that returns no rows, then reset it. */
int store__step_done(sqlite3_stmt *st);

void store__finalize_all(sqlite3_stmt **stmts, size_t n);

/*
 * Check that db holds a publisher database this build can use, reading
 * nothing but the header and the schema table, writing nothing. Returns
 * the schema version (0 for a new, empty database), or -1 with err.
 */
int store__check_schema(sqlite3 *db, const char *path, char *err,
                        size_t errlen);

/* The directory part of path, for messages. */
void store__dir_of(const char *path, char *out, size_t len);

/* store.c: the writer's symbol table */

struct sym *store__sym_find(const struct sym_table *t, const char *name,
                            size_t len, uint64_t hash);

/* Add a symbol with the given id (from the database) or the next id
 * (id 0). Returns NULL on allocation failure. */
struct sym *store__sym_add(struct sym_table *t, const char *name, size_t len,
                           int64_t id);

void store__sym_table_free(struct sym_table *t);

/* store.c: opening */

int store__exec_sql(sqlite3 *db, const char *sql);

int store__writer_prepare(struct store *s);

/*
 * Open (or create) the file and set the connection up for writing. Used by
 * store_open and again when the writer reopens after a read-only error.
 * Returns the schema version found, or -1 with err.
 */
int store__writer_connect(struct store *s, bool create, char *err,
                          size_t errlen);

/* The pragmas of the writing connection. journal_mode=WAL lets readers
 * read while the writer writes; synchronous=NORMAL makes a commit durable
 * against a crash of the process (kill -9), which is the promise, without
 * an fsync per commit. */
int store__writer_pragmas(struct store *s, char *err, size_t errlen);

/* The end of a read of every row of q while opening: rc is the last
 * step's result (SQLITE_DONE when every row was read, or the error that
 * stopped it, prepare's included). q is finalized (it may be NULL).
 * Returns 0, or -1 with err naming the database. */
int store__read_done(struct store *s, sqlite3_stmt *q, int rc, char *err,
                     size_t errlen);

/* store.c: the queue */

/* Writer thread: put queued restored states into the writer's states,
 * never between a batch's preparation and its commit; the gaps they close
 * wait in pending_gaps for the next transaction. */
void store__apply_restores(struct store *s);

/* Under mu: the first queued rewind is due (every tick appended before it
 * is written). */
bool store__rewind_due(const struct store *s);

/* store_rewind.c: run the first queued rewind when it is due. Writer
 * thread. */
void store__rewind_step(struct store *s);

/* store_rewind.c: free what the queued rewinds hold (store_close). */
void store__rewinds_free(struct store *s);

/* store_reserve.c: seqs reserved ahead (store.h, "Seqs") */

/* On open, after load(): read the reservations; restore each symbol whose
 * reservation is past its stored state at reservation + 1 (a stop that
 * was not clean), and start a new epoch when one may have lost a field
 * clients saw; report what was found as the grant of gen 0. An edge's
 * store (seqs from its ingest) only reads them. Returns 0, or -1 with
 * err. */
int store__resv_load(struct store *s, bool edge, char *err, size_t errlen);

/* Writer thread, at the end of batch_prepare: take the steps asked into
 * the batch and work out their rows. */
void store__resv_prepare(struct store *s);

/* Inside the batch's transaction: the epoch and the reservation rows.
 * Returns the SQLite result. */
int store__resv_write(struct store *s);

/* After the batch's commit: the writer's view of the stored state rows
 * and reservations follows, and the steps are granted. */
void store__resv_committed(struct store *s);

/* Giving up at close: what was asked is not written. */
void store__resv_give_up(struct store *s);

/* Steps asked and not yet taken by the writer (takes mu). */
bool store__resv_asked(struct store *s);

void store__resv_list_free(struct resv_list *l);

/* store_write.c: writing and retention */

/* Bind one tick as the TICK_COLUMNS parameters from p of W_TICK_ONE or
 * W_TICKS_MANY, and one symbol's state (gr->st, with gr->sym, gr->max_ts,
 * gr->max_lag) as the parameters of W_STATE. store_import.c writes with
 * the same statements. */
void store__bind_tick(sqlite3_stmt *st, int p, int64_t id, int64_t symbol_id,
                      const struct tick *t, uint64_t seq);
void store__bind_state(sqlite3_stmt *q, const struct group *gr);

/* The writer's rows, each bound to its statement of s->stmt and stepped
 * inside the transaction the caller began (a batch, a rewind, an import's
 * step). Each returns the SQLite result. */

/* The symbols row of y. */
int store__write_symbol(struct store *s, const struct sym *y);

/* A runs row of y: its ticks with ids first_id .. first_id + count - 1,
 * the least ts among them and y's running max ts after them. */
int store__write_run(struct store *s, const struct sym *y, int64_t max_ts,
                     int64_t first_id, int64_t count, int64_t ts_min);

/* The run of a group (its ticks from first_id + gr->first on) and then
 * its symbol's state row (gr->st). */
int store__write_group(struct store *s, const struct group *gr,
                       int64_t first_id);

/* The state row of y holding st, with y's running max ts max_ts and its
 * max_lag as it is: for a symbol that has no run in the transaction. */
int store__write_state(struct store *s, struct sym *y,
                       const struct symbol_state *st, int64_t max_ts);

/* The commits row of count ticks from first_id, and meta's counters. */
int store__write_commit(struct store *s, int64_t first_id, int64_t count,
                        int64_t ts_min, int64_t max_ts);
int store__write_meta(struct store *s, int64_t next_id, int64_t max_ts,
                      int64_t max_lag);

/* Between the attempts of a failing write (a batch, a rewind): whether
 * store_close() was called CLOSE_GIVE_UP_US or more before now, when the
 * writer gives up rather than try again. Takes mu. */
bool store__giving_up(struct store *s, int64_t now);

/* Sleep *backoff, or less when store_close() asks the writer to stop, and
 * double *backoff up to RETRY_MAX_US for the next time. */
void store__retry_sleep(struct store *s, int64_t *backoff);

/* Write the next n queued ticks, retrying until it works, or, when the
 * store is closing and has failed for CLOSE_GIVE_UP_US, give up on
 * everything still queued. */
void store__writer_batch(struct store *s, size_t n);

/*
 * One bounded step of retention: delete up to RETAIN_STEP_ROWS of the
 * oldest ticks that the age or row limit says must go, with the commits
 * rows they empty. Retention by age deletes whole commits whose ticks are
 * all older than the limit (commits.max_ts), so a commit straddling the
 * limit waits for the next step.
 */
void store__retention_step(struct store *s);

#endif

/*
 * store: every tick and every symbol's state in SQLite (README, Storage).
 *
 * What it owns: the database file and the -wal, -shm and -lock files
 * beside it (the -lock flock is held from store_open() to store_close()),
 * the writer thread, the queue of ticks toward it (queue_capacity ticks),
 * the writer's states (a state_table: every symbol's state as stored) and
 * what it records while dropping. A store_reader owns its read-only
 * connection; a store_import its connection and the open transaction.
 *
 * Who calls it: main.c opens a store, restores the engine from it (or, on
 * an edge, it from the engine), starts it and gives it to the pipeline as
 * a sink (store_sink()); through the sink the pipeline appends, reserves
 * and rewinds, on the loop's thread; metrics.c reads its stats. The
 * readers: the query workers (query.c) and export.c. The importing part:
 * import.c.
 *
 * Writing. store_append() hands applied ticks (seq already assigned) to a
 * writer thread over a bounded in-memory queue; it never blocks and never
 * touches the disk on the caller's thread. The writer commits in batched
 * transactions (at least every commit_ms), each holding the ticks and, in
 * the same transaction, the state of every symbol they touched, so the
 * stored state always equals the stored ticks. The writer derives that state
 * itself by folding the ticks into its own states (a state_table, by the
 * engine's rules: symbol_state.h), restored from the `state` table on
 * open.
 *
 * Falling behind. A file (a replay) may wait for the disk: the caller asks
 * store_append_space() before draining more ticks from its feed queue, so
 * the replay slows down; `wake` is called when space frees up again. A
 * live feed does not wait: through the sink (store_sink()), a batch that
 * does not fit is taken as far as it fits and the rest dropped, and every
 * tick after it, until the queue has drained. What was dropped is kept in
 * memory per symbol (a range of seqs, of timestamps, a count: bounded by
 * the number of symbols, not by the rate); once drained, the sink resumes
 * with each such symbol's current state, and the writer commits a `gaps`
 * row and that state together, so stored state still equals what the
 * clients saw. History and bars report the gaps they overlap
 * (store_read_gaps). The kill -9 promise below holds while there are no
 * gaps.
 *
 * Rewinding. A replay that seeks back has the store drop what it stored
 * after the target, in order with its ticks (store_rewind, in
 * store_rewind.c), under a new epoch.
 *
 * Failures (disk full, read-only file): the writer keeps the batch, logs the
 * cause at most once a minute, retries, and resumes when the cause clears.
 * Meanwhile the queue stays full: a live feed goes on, dropping into gaps.
 *
 * Seqs are never reused (schema/004). Within one epoch a (symbol, seq)
 * pair names one state forever, and the ticks a crash or a full disk keeps
 * from the store must not change that: clients saw them. So seqs are
 * reserved ahead, durably, per symbol, as a database reserves the values
 * of a sequence: the writer commits `reservations` rows (the seq a symbol
 * may go up to, and the fields it may have had by then) in the same
 * transactions as ticks and states, and the pipeline never hands out a
 * seq past its symbol's committed reservation, nor a field outside it
 * (pipeline_seqs.c, seq_gate.h). It asks for the next block (64Ki seqs, more
 * for a symbol that burns through them in under a second) when half of
 * the last one is used, so normally nothing waits: only a new symbol, or
 * a symbol's first field of a kind, waits for one commit.
 *   On open, a symbol whose reservation is past its stored state was not
 * stopped cleanly: clients may have seen any seq up to the reservation,
 * with values the store never got. It is restored at reservation + 1 with
 * every field marked changed there, so a client resuming from any seq it
 * holds gets a delta that carries every field, and ends with the stored
 * state. A field the store never got (a symbol's first trade lost, say)
 * cannot be taken back by a delta: then the store starts a new epoch,
 * and every client a snapshot. A clean stop writes each symbol's last
 * seq as its reservation, and its state, so a clean restart goes on
 * exactly where it was: resumes get deltas, never snapshots.
 *   When a reservation cannot be written in time (the disk full long
 * enough that a symbol uses up its block), the pipeline begins a new
 * epoch of its own, in memory: clients start over with snapshots, and no
 * seq is reused under either epoch. It asks the store to make that epoch
 * durable (store_reserve() with the epoch, and the reservations of every
 * symbol, in one transaction) once writes succeed again; until then a
 * crash restarts in the old epoch, past its reservations. So the epoch
 * survives kill -9 and a short full disk, and changes only when the store
 * could not keep up its promises. An edge (seqs from its ingest) does not
 * reserve.
 *
 * Durability. A commit is durable against a crash of the process (WAL,
 * synchronous=NORMAL), so after kill -9 the database holds every tick that
 * waited in the queue longer than commit_ms plus one batch's write time
 * (tens of ms). When the writer falls behind (an overload, a disk stall,
 * a core it shares with a busy loop) a tick waits up to queue_capacity /
 * (ticks written per second) before its commit. The queue is a trade
 * between memory and ticks kept: a tick that does not fit is dropped for
 * sure, one in the queue is lost only to a crash. The default, 262144
 * (48 MB at most), is 1.3 s at 200k ticks/s: it carried a store through
 * the moments its writer waited for the core it shares with the fan-out
 * of 1,000 clients, where 65536 dropped ticks (tests/bench, wide cell).
 *
 * Reading. A store_reader is a separate read-only connection (WAL lets it
 * read while the writer writes). Use one per thread. Each call reads one
 * snapshot of the database, held until the call returns: the WAL cannot be
 * checkpointed past it meanwhile, so a row callback that blocks for long
 * (an export to a stalled client) lets the -wal file grow with the ingest.
 * Stop such a read (return nonzero) rather than wait without limit.
 *
 * Files: beside the database SQLite keeps "-wal" and "-shm"; the writer
 * adds "-lock" (an flock that keeps a second publisher off the database).
 *
 * Versions. schema/NNN_*.sql files are compiled in; PRAGMA user_version says
 * which have run. An older database is migrated on open; a newer one, a file
 * that is not SQLite, or a corrupt one is refused with a message and left
 * untouched.
 */
#ifndef PUBLISHER_STORE_H
#define PUBLISHER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "sink.h"
#include "tick.h"

struct store;
struct store_reader;

struct store_options {
	const char *path;
	int64_t retain_age_us;	/* drop ticks older than this; 0 = keep all */
	uint64_t retain_rows;	/* keep at most this many ticks; 0 = all */
	unsigned commit_ms;	/* longest time between commits; default 50 */
	size_t queue_capacity;	/* ticks buffered toward the writer; default
				 * 262144 (see Durability) */
	/* Called from the writer thread when space frees after the queue
	 * was full. Optional. */
	void (*wake)(void *ctx);
	void *wake_ctx;
	/* An edge's store: the epoch of the ingest it follows (at most 16
	 * characters). A new database takes this epoch; one that holds
	 * another epoch is refused (its ticks belong to another life of the
	 * data). NULL: a new database gets a fresh epoch. */
	const char *epoch;
	/* Where trading sessions begin, for the states the store folds
	 * (the writer's, a rewind's, an import's): the rule the engine
	 * folds with (symbol_state.h; its ctx must outlive the store).
	 * Zero: UTC days. */
	struct session_rule sessions;
};

struct store_stats {
	uint64_t ticks_written;	 /* committed */
	uint64_t commits;
	uint64_t last_batch;	 /* ticks in the last commit */
	size_t queued;		 /* waiting for the writer */
	int64_t lag_us;		 /* age of the oldest queued tick, 0 if none */
	uint64_t write_errors;
	uint64_t ticks_refused;	 /* not stored: the writer's states refused
				  * them (invalid symbol, seq not after the
				  * stored one); logged once a minute */
	uint64_t ticks_dropped;	 /* handed over live while the store was
				  * behind or failing: recorded as gaps */
	uint64_t gaps_started;	 /* times it began dropping */
	uint64_t gaps_written;	 /* gap rows committed */
	bool failing;		 /* last commit attempt failed */
	char last_error[160];
};

/*
 * Open or create the database, migrate it, load (or create) the epoch.
 * Does not start the writer. Returns NULL with the cause in err, e.g.
 * "db 'x.db' has schema version 7; this build knows up to 1".
 */
struct store *
store_open(const struct store_options *opt, char *err, size_t errlen);

/* The epoch: created with the database, kept across restarts. */
const char *
store_epoch(const struct store *s);

/* Call fn for every stored symbol state (to restore the serving engine).
 * Call before store_start(); returns -1 after it. */
int
store_load_state(struct store *s,
		 void (*fn)(const struct symbol_state *st, void *ctx),
		 void *ctx);

/* Start the writer thread (and retention). Returns 0, or -1 with err. */
int
store_start(struct store *s, char *err, size_t errlen);

/* Ticks store_append() can take right now. Thread-safe. */
size_t
store_append_space(struct store *s);

/* Queue applied ticks (seq set; 0 lets the writer's states assign the next
 * one). Copies them. Never blocks. Thread-safe. Returns 0, or -1 when there
 * is not room for all n (then none are queued, and `wake` will be called
 * once room frees). A tick the writer's states refuse (a seq not after
 * the symbol's stored seq, an invalid symbol) is counted in
 * stats.ticks_refused and not stored. */
int
store_append(struct store *s, const struct tick *ticks, size_t n);

/* An edge's resync: make st (seq included) the symbol's state in the
 * writer's states, so that later ticks with higher seqs are stored. Queued
 * for the writer, which applies it before its next batch; ticks queued
 * before it whose seqs are not after st->seq are refused (ticks_refused).
 * Ticks the edge never received (the gap a resync covers) are absent from
 * history; the state row is written with the symbol's next stored tick.
 * Thread-safe. Returns 0, or -1 when out of memory. */
int
store_restore_state(struct store *s, const struct symbol_state *st);

/*
 * A replay's backward seek (feeds/feed.h, feed_set_rewind): for each cut,
 * drop the symbol's stored ticks with seqs after cut.seq (they come again
 * as the replay plays on), so that playing a file to the end after any
 * seeks leaves each of its ticks stored once. Queued with the ticks, it
 * runs once the ticks appended before it are written, and in one
 * transaction deletes those ticks (their runs, and the commits and gaps
 * they leave empty), writes each cut symbol's state as its remaining ticks
 * make it (folded from the first with symbol_state_apply: exact while the
 * store holds every tick of the symbol, as a replay's store without
 * retention does; after retention it is the fold of what is left) and a
 * new epoch, since the cut seqs are handed out again for other states.
 * Then done() is called on the writer thread with those states and the
 * epoch (rc -1 when the store closed before it could be written). Failed
 * writes are retried as batches are. Returns 0, or -1 when out of memory
 * or closing (done() is then never called). Thread-safe.
 */
int
store_rewind(struct store *s, const struct sink_cut *cuts, size_t n,
	     sink_rewind_done_fn done, void *ctx);

/*
 * Seqs (see above): ask for the n reservations (copied) to be committed
 * together, with the next transaction, and, with epoch set, for that
 * epoch to become the database's in it. gen is handed back with them.
 * Reservations of one symbol are written in the order asked; a `final`
 * one (a clean stop: its last seq handed out) also writes the symbol's
 * state when the store has every tick up to it. Returns 0, or -1 when
 * out of memory or closing. Thread-safe.
 */
int
store_reserve(struct store *s, uint32_t gen, const char *epoch,
	      const struct sink_reservation *r, size_t n);

/* Call fn for each store_reserve() committed since the last call, oldest
 * first (and, first of all, the reservations found on open, as gen 0).
 * `wake` is called when there is something new. Thread-safe. */
void
store_reserved(struct store *s, sink_grant_fn fn, void *ctx);

/* Thread-safe. */
void
store_get_stats(struct store *s, struct store_stats *out);

/* The store as a pipeline sink (sink.h); the sink's destroy is
 * store_close(). */
struct sink
store_sink(struct store *s);

/* Write everything queued, stop the writer, close. While writes fail it
 * keeps trying for up to 10 s, then logs how many ticks it could not
 * write. Works without store_start() too. Returns the ticks handed to the
 * store that are neither stored nor recorded as a gap (given up, or
 * dropped while it was behind and never recorded): 0 when all is well.
 * NULL is a no-op. */
uint64_t
store_close(struct store *s);

/* ------------------------------------------------------------ reading */

struct bar {
	int64_t t; /* start of the interval, µs */
	struct decimal open, high, low, close, volume;
	uint64_t ticks; /* trades (ticks with `last`) in the bar */
};

/* A read-only connection. NULL with err when the file is missing, not a
 * publisher database, or of a newer schema. Never writes to the file. */
struct store_reader *
store_reader_open(const char *path, char *err, size_t errlen);

void
store_reader_close(struct store_reader *r);

/*
 * Ticks with from <= ts < to (to = INT64_MAX for open-ended), oldest first.
 * symbols: NULL/0 for all symbols, else those (unknown ones have no ticks;
 * a name given twice counts once).
 *
 * Order: a symbol's ticks come in the order they were received (seq
 * order), which is ts order unless the feed sent a timestamp that went
 * back; they are never reordered, so an export replays to the same seqs and
 * state. Across symbols ticks are merged by ts (ties: the order the symbols
 * were named in; for all symbols, the order they were written in).
 *
 * last_n > 0: only the last N ticks of that range (still oldest first).
 * row() gets each tick with its symbol and seq set; returning nonzero stops
 * early (and the call returns 0). Returns 0, or -1 with err.
 */
int
store_read_ticks(struct store_reader *r, const char *const *symbols,
		 size_t symbol_count, int64_t from, int64_t to, uint32_t last_n,
		 int (*row)(const struct tick *t, void *ctx), void *ctx,
		 char *err, size_t errlen);

/*
 * One symbol's ticks with from <= ts < to in (ts, seq) order: what a chart,
 * or a client paging through time with "from = the last ts seen + 1",
 * wants. Unlike store_read_ticks(), a tick that arrived late comes at its
 * time. The reordering is done in memory with a window as wide as the
 * symbol's worst lateness so far (at most 262,144 ticks; a tick later
 * than that comes where it arrived). last_n, row() and the result as for
 * store_read_ticks().
 */
int
store_read_history(struct store_reader *r, const char *symbol, int64_t from,
		   int64_t to, uint32_t last_n,
		   int (*row)(const struct tick *t, void *ctx), void *ctx,
		   char *err, size_t errlen);

/* Ticks the store did not keep, for history and bars to report. */
struct store_gap {
	uint64_t first_seq, last_seq;
	int64_t first_ts, last_ts;
	uint64_t ticks;
};

/*
 * The gaps of one symbol that overlap [from, to) (a gap's ticks lie within
 * [first_ts, last_ts]), oldest first; gap() returning nonzero stops early.
 * Returns 0 (also for an unknown symbol, or a database from before gaps
 * were recorded), or -1 with err.
 */
int
store_read_gaps(struct store_reader *r, const char *symbol, int64_t from,
		int64_t to, int (*gap)(const struct store_gap *g, void *ctx),
		void *ctx, char *err, size_t errlen);

/*
 * OHLCV bars of one symbol's trades (ticks with `last`): open and close are
 * the `last` of its earliest and latest trade by ts (then seq), high and
 * low the extremes, volume the exact sum of their last_size. Intervals are
 * aligned to the Unix epoch (UTC); a bar is given for each interval with a
 * trade, oldest first. Only bars that start in [from, to) are given, each
 * with every trade of its interval. last_n > 0: only the last N bars.
 * bar() returning nonzero stops early. Returns 0, or -1 with err.
 */
int
store_read_bars(struct store_reader *r, const char *symbol, int64_t from,
		int64_t to, int64_t interval_us, uint32_t last_n,
		int (*bar)(const struct bar *b, void *ctx), void *ctx,
		char *err, size_t errlen);

/* The newest ts stored (meta.max_ts) in *out, INT64_MIN when there is
 * none: the end of an export's time span, for its progress line. Returns
 * 0, or -1 with err. */
int
store_read_max_ts(struct store_reader *r, int64_t *out, char *err,
		  size_t errlen);

/* ---------------------------------------------------------- importing */

/*
 * The bulk path of `publisher import` (publisher/import.h), in
 * store_import.c: ticks written from the caller's thread, without the
 * writer thread or its queue, in large transactions, each holding the
 * ticks, the states they make and the import's progress (schema/005), so
 * that a crash leaves the database saying exactly how far it got.
 *
 * Seqs continue each symbol's stored seq. A tick older than the newest the
 * store holds for its symbol goes into the symbol's history with the next
 * seq, and the state takes only that seq: its values never go back in time
 * (a late tick is history, not news). Every other tick folds into the
 * state by the engine's rules (symbol_state.h), ticks of equal ts
 * included.
 *
 * The database is taken as the server takes it (store_open: the -lock
 * flock, migrations), so a database that a running server holds is
 * refused, and a server cannot open one that an import is filling.
 *
 * Pragmas (STORE_IMPORT_PRAGMAS): journal_mode=DELETE and
 * synchronous=FULL while the import runs, so that each new page is written
 * once (WAL writes it twice) and each commit survives a power cut as well
 * as a kill -9; the database is put back in WAL mode when it closes. When
 * a reader has the database open, the mode cannot change and the import
 * runs in the server's (STORE_IMPORT_PRAGMAS_SHARED). In DELETE mode a
 * commit waits for readers to finish (up to 5 s, then it fails and the
 * import stops, to be resumed).
 */
struct store_import;

#define STORE_IMPORT_PRAGMAS        "journal_mode=DELETE, synchronous=FULL"
#define STORE_IMPORT_PRAGMAS_SHARED "journal_mode=WAL, synchronous=NORMAL"

/* How far the import of one input (known by its content hash) got. */
struct store_import_mark {
	uint64_t offset;    /* bytes of the input taken */
	uint64_t lines;     /* lines taken */
	uint64_t rows;      /* ticks stored from it */
	uint64_t bad_lines; /* lines refused */
	bool done;          /* the whole input was taken */
};

/* Open path (created if missing) for importing, its states folded with
 * the trading sessions of `sessions` (as store_options.sessions; NULL: UTC
 * days). NULL with err when it cannot be opened, is in use ("db 'x' is in
 * use by another publisher"), or is not a publisher database this build
 * knows. */
struct store_import *
store_import_open(const char *path, const struct session_rule *sessions,
                  char *err, size_t errlen);

/* The mark of the input whose content hash is hash (64 hex digits).
 * Returns 1 with *out set, 0 when it was never imported, -1 with err. */
int
store_import_find(struct store_import *im, const char *hash,
		  struct store_import_mark *out, char *err, size_t errlen);

/* Take one tick (its seq is ignored: the next of its symbol is used). It
 * is written, inside the open transaction, when enough have gathered, and
 * committed by store_import_commit(). Returns 0, or -1 with err when a
 * write failed (the transaction is then rolled back: nothing since the
 * last commit is stored, and the handle takes nothing more: close it and
 * open the database again to go on). A tick the state
 * refuses (a volume or trades count that would overflow) is not stored
 * and counted in *refused when refused is not NULL. */
int
store_import_add(struct store_import *im, const struct tick *t,
		 uint64_t *refused, char *err, size_t errlen);

/* Write what was taken and the mark of the input (hash, its name and size
 * for a person reading the table) in one transaction, and commit it.
 * Returns 0, or -1 with err (then nothing since the last commit is
 * stored). */
int
store_import_commit(struct store_import *im, const char *hash,
		    const char *name, uint64_t size,
		    const struct store_import_mark *mark, char *err,
		    size_t errlen);

/* The pragmas in force: STORE_IMPORT_PRAGMAS, or
 * STORE_IMPORT_PRAGMAS_SHARED when the mode could not change. */
const char *
store_import_pragmas(const struct store_import *im);

/* Ticks committed since store_import_open(). */
uint64_t
store_import_rows(const struct store_import *im);

/* Drops what was not committed, checkpoints the WAL into the database and
 * closes. NULL is a no-op. */
void
store_import_close(struct store_import *im);

#endif

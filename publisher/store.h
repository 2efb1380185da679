/*
 * store: every tick and every symbol's state in SQLite (SPEC §7).
 *
 * Writing. store_append() hands applied ticks (seq already assigned) to a
 * writer thread over a bounded in-memory queue; it never blocks and never
 * touches the disk on the caller's thread. The writer commits in batched
 * transactions (at least every commit_ms), each holding the ticks and, in
 * the same transaction, the state of every symbol they touched, so the
 * stored state always equals the stored ticks. The writer derives that state
 * itself by applying the ticks to a private engine, restored from the state
 * table on open.
 *
 * Back-pressure. The caller asks store_append_space() before draining more
 * ticks from its feed queue; when the store falls behind the caller stops
 * draining, the feed queue fills and the feed slows down. No tick is dropped.
 * `wake` is called when space frees up again.
 *
 * Failures (disk full, read-only file): the writer keeps the batch, logs the
 * cause at most once a minute, retries, and resumes when the cause clears.
 * Meanwhile the caller sees no space and slows the feed.
 *
 * Reading. A store_reader is a separate read-only connection (WAL lets it
 * read while the writer writes). Use one per thread.
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
#include "tick.h"

struct store;
struct store_reader;

struct store_options {
	const char *path;
	int64_t retain_age_us;	/* drop ticks older than this; 0 = keep all */
	uint64_t retain_rows;	/* keep at most this many ticks; 0 = all */
	unsigned commit_ms;	/* longest time between commits; default 50 */
	size_t queue_capacity;	/* ticks buffered toward the writer */
	/* Called from the writer thread when space frees after the queue
	 * was full. Optional. */
	void (*wake)(void *ctx);
	void *wake_ctx;
};

struct store_stats {
	uint64_t ticks_written;	 /* committed */
	uint64_t commits;
	uint64_t last_batch;	 /* ticks in the last commit */
	size_t queued;		 /* waiting for the writer */
	int64_t lag_us;		 /* age of the oldest queued tick, 0 if none */
	uint64_t write_errors;
	uint64_t ticks_refused;	 /* not stored: the store's engine refused
				  * them (invalid symbol, seq not after the
				  * stored one); logged once a minute */
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

/* Call fn for every stored symbol state (to restore the serving engine). */
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

/* Queue applied ticks (seq set). Never blocks. Returns 0, or -1 when there is
 * not room for all n (then none are queued). */
int
store_append(struct store *s, const struct tick *ticks, size_t n);

/* Thread-safe. */
void
store_get_stats(struct store *s, struct store_stats *out);

/* Write everything queued, stop the writer, close. NULL is a no-op. */
void
store_close(struct store *s);

/* ------------------------------------------------------------ reading */

struct bar {
	int64_t t; /* start of the interval, µs */
	struct decimal open, high, low, close, volume;
	uint64_t ticks;
};

/* A read-only connection. NULL with err when the file is missing, not a
 * publisher database, or of a newer schema. */
struct store_reader *
store_reader_open(const char *path, char *err, size_t errlen);

void
store_reader_close(struct store_reader *r);

/*
 * Ticks with from <= ts < to (to = INT64_MAX for open-ended), oldest first.
 * symbols: NULL/0 for all symbols (ordered by ts across them), else those.
 * last_n > 0: only the last N ticks of that range (still oldest first).
 * row() gets each tick with its seq set; returning nonzero stops early.
 * Returns 0, or -1 with err.
 */
int
store_read_ticks(struct store_reader *r, const char *const *symbols,
		 size_t symbol_count, int64_t from, int64_t to, uint32_t last_n,
		 int (*row)(const struct tick *t, void *ctx), void *ctx,
		 char *err, size_t errlen);

/*
 * OHLCV bars of `last` (volume = sum of last_size) for one symbol, interval
 * aligned to the epoch (UTC), oldest first, from <= t < to; last_n as above.
 */
int
store_read_bars(struct store_reader *r, const char *symbol, int64_t from,
		int64_t to, int64_t interval_us, uint32_t last_n,
		int (*bar)(const struct bar *b, void *ctx), void *ctx,
		char *err, size_t errlen);

#endif

/*
 * store: ticks and symbol states in SQLite (see store.h and schema/).
 *
 * The layout (schema/001_init.sql) is chosen for the writer. Ticks are
 * appended to a rowid table in commit order; inside one commit the writer
 * groups them by symbol, so one symbol's ticks of one commit are a run of
 * consecutive ids, and writes one `runs` row per symbol per commit instead
 * of one index entry per tick. Measured on the development machine (2
 * cores, ext4), a tick table clustered on (symbol, ts, seq) or a rowid table
 * with a (symbol, ts) index took 150-250k ticks/s: every tick is a B-tree
 * descent to one of a thousand insertion points and every commit rewrites
 * a thousand scattered leaf pages. Appending is several times cheaper, and
 * reads pay little for it: a symbol's history is a range scan of its runs,
 * each run a contiguous id range (see the read section below).
 *
 * Writer thread. store_append() copies ticks into a ring under a mutex. The
 * writer takes up to BATCH_MAX of them in place (producers only ever write
 * the free part of the ring) once the oldest has waited commit_ms, applies
 * them to its private engine (which yields each symbol's state after the
 * batch), groups them by symbol and writes ticks, runs, states, a commits
 * row and the meta counters in one transaction. Everything about a batch is
 * worked out once, before the first attempt, so a failed commit is simply
 * rolled back and attempted again with the same rows: the engine has
 * already applied those ticks and must not apply them twice. Only after the
 * commit are the ring slots freed.
 *
 * Retention and run sweeping happen on the writer thread too, between
 * batches and in small transactions, because SQLite has one writer at a
 * time: a second writing connection would only wait for the lock.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "../schema/schema_sql.h"
#include "decimal.h"
#include "log.h"

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

/* ------------------------------------------------------------------ misc */

static int errf(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int64_t
sat_add(int64_t a, int64_t b)
{
	if (b > 0 && a > INT64_MAX - b)
		return INT64_MAX;
	if (b < 0 && a < INT64_MIN - b)
		return INT64_MIN;
	return a + b;
}

/* a - b for a >= b, without overflow for any int64 pair. */
static int64_t
span(int64_t a, int64_t b)
{
	uint64_t d = (uint64_t)a - (uint64_t)b;

	return a <= b ? 0 : d > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)d;
}

/* Scales of the fields in `present`, 5 bits each (see schema/001_init). */
static int64_t
scales_pack(const struct decimal *v, uint16_t present, int nfields)
{
	uint64_t packed = 0;
	int f;

	for (f = 0; f < nfields; f++)
		if ((present >> f) & 1u)
			packed |= (uint64_t)(v[f].scale & SCALE_MASK)
			          << (f * SCALE_BITS);
	return (int64_t)packed;
}

static uint8_t
scale_of(int64_t packed, int f)
{
	return (uint8_t)(((uint64_t)packed >> (f * SCALE_BITS)) & SCALE_MASK);
}

/* What to do about an SQLite error, in words. */
static const char *
error_hint(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return "free some disk space";
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_CANTOPEN:
		/* SQLite creates -wal and -shm with the permissions of the
		 * database, so a read-only database leaves them read-only. */
		return "make the file, its -wal and -shm files and its "
		       "directory writable";
	case SQLITE_IOERR:
		return "check the disk and the file system";
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return "the file is damaged: restore it or use another --db";
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return "another program holds the database";
	case SQLITE_NOMEM:
		return "the process is out of memory";
	case SQLITE_CONSTRAINT:
		return "the database does not match this writer: was it "
		       "changed by another program?";
	default:
		return "unexpected: please report it";
	}
}

/* Run one statement that returns at most one integer. Returns the SQLite
 * result; *out is set when a row came back (and left alone otherwise). */
static int
query_int64(sqlite3 *db, const char *sql, int64_t *out, bool *had_row)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (had_row)
		*had_row = false;
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_type(st, 0) != SQLITE_NULL) {
			*out = sqlite3_column_int64(st, 0);
			if (had_row)
				*had_row = true;
		}
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

static int
prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
	return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out,
	                          NULL);
}

/* Step a statement that returns no rows, then reset it. */
static int
step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void
finalize_all(sqlite3_stmt **stmts, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		sqlite3_finalize(stmts[i]);
		stmts[i] = NULL;
	}
}

/*
 * Check that db holds a publisher database this build can use, reading
 * nothing but the header and the schema table, writing nothing. Returns
 * the schema version (0 for a new, empty database), or -1 with err.
 */
static int
check_schema(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	const int latest = schema_migration_count;
	int64_t version = 0, objects = 0;
	int rc;

	rc = query_int64(db, "PRAGMA user_version", &version, NULL);
	if (rc == SQLITE_OK)
		rc = query_int64(db, "SELECT count(*) FROM sqlite_schema",
		                 &objects, NULL);
	if ((rc & 0xff) == SQLITE_NOTADB)
		return errf(err, errlen,
		            "'%s' is not an SQLite database; refusing to touch "
		            "it (move it away or pick another --db)",
		            path);
	if ((rc & 0xff) == SQLITE_CORRUPT)
		return errf(err, errlen,
		            "db '%s' is damaged (%s); refusing to touch it "
		            "(restore it from a backup or pick another --db)",
		            path, sqlite3_errmsg(db));
	if (rc != SQLITE_OK)
		return errf(err, errlen, "cannot read db '%s': %s (%s)", path,
		            sqlite3_errmsg(db), error_hint(rc));
	if (version > latest)
		return errf(err, errlen,
		            "db '%s' has schema version %lld; this build knows "
		            "up to %d (run a newer publisher, or pick another "
		            "--db)",
		            path, (long long)version, latest);
	if (version < 0)
		return errf(err, errlen,
		            "db '%s' has schema version %lld, which no "
		            "publisher writes; refusing to touch it",
		            path, (long long)version);
	if (version == 0 && objects > 0)
		return errf(err, errlen,
		            "'%s' is an SQLite database but not a publisher "
		            "one (it has tables and no publisher schema "
		            "version); refusing to touch it (pick another "
		            "--db)",
		            path);
	return (int)version;
}

/* The directory part of path, for messages. */
static void
dir_of(const char *path, char *out, size_t len)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (!slash) {
		snprintf(out, len, ".");
		return;
	}
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= len)
		n = len - 1;
	memcpy(out, path, n);
	out[n] = '\0';
}

/* ------------------------------------------------------------- symbols */

/* The writer's view of one symbol. */
struct sym {
	int64_t id;
	int64_t max_ts;  /* running max ts of its stored ticks; INT64_MIN */
	int64_t max_lag; /* greatest max_ts - ts_min of its runs */
	uint32_t mark;   /* serial of the batch that last grouped it */
	uint32_t group;  /* its group in that batch */
	bool stored;     /* its symbols row is committed */
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

static uint64_t
name_hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h ^ (h >> 29);
}

static struct sym *
sym_find(const struct sym_table *t, const char *name, size_t len, uint64_t hash)
{
	size_t i;

	if (!t->slots)
		return NULL;
	for (i = hash & t->mask; t->slots[i]; i = (i + 1) & t->mask) {
		const struct sym *y = t->slots[i];

		if (y->hash == hash && strncmp(y->name, name, len) == 0 &&
		    y->name[len] == '\0')
			return t->slots[i];
	}
	return NULL;
}

static int
sym_table_grow(struct sym_table *t)
{
	size_t size = t->slots ? (t->mask + 1) * 2 : 1024, i;
	struct sym **slots = calloc(size, sizeof *slots);

	if (!slots)
		return -1;
	for (i = 0; i < t->count; i++) {
		size_t j = t->list[i]->hash & (size - 1);

		while (slots[j])
			j = (j + 1) & (size - 1);
		slots[j] = t->list[i];
	}
	free(t->slots);
	t->slots = slots;
	t->mask = size - 1;
	return 0;
}

/* Add a symbol with the given id (from the database) or the next id
 * (id 0). Returns NULL on allocation failure. */
static struct sym *
sym_add(struct sym_table *t, const char *name, size_t len, int64_t id)
{
	struct sym *y;
	size_t i;

	if (len == 0 || len > TICK_SYMBOL_MAX)
		return NULL;
	if ((t->count + 1) * 2 > (t->slots ? t->mask + 1 : 0) &&
	    sym_table_grow(t))
		return NULL;
	if (t->count == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		struct sym **list = realloc(t->list, cap * sizeof *list);

		if (!list)
			return NULL;
		t->list = list;
		t->cap = cap;
	}
	y = calloc(1, sizeof *y);
	if (!y)
		return NULL;
	memcpy(y->name, name, len);
	y->name[len] = '\0';
	y->hash = name_hash(name, len);
	y->id = id ? id : t->next_id;
	if (y->id >= t->next_id)
		t->next_id = y->id + 1;
	y->max_ts = INT64_MIN;
	y->mark = UINT32_MAX;
	for (i = y->hash & t->mask; t->slots[i]; i = (i + 1) & t->mask)
		;
	t->slots[i] = y;
	t->list[t->count++] = y;
	return y;
}

static void
sym_table_free(struct sym_table *t)
{
	size_t i;

	for (i = 0; i < t->count; i++)
		free(t->list[i]);
	free(t->list);
	free(t->slots);
	memset(t, 0, sizeof *t);
}

/* ---------------------------------------------------------------- store */

/* Ticks of one symbol the store did not keep: a range of seqs. */
struct gap {
	char symbol[TICK_SYMBOL_MAX + 1];
	uint64_t first_seq, last_seq;
	int64_t first_ts, last_ts;
	uint64_t ticks;
};

/* A state for the writer's engine: a resync (edge), or the state a symbol
 * had when the store took up again after a gap. */
struct restore {
	struct symbol_state st;
	bool has_gap;
	struct gap gap;
};

/* One tick of the batch being written. */
struct item {
	uint32_t slot;  /* in the ring */
	uint32_t group; /* in batch.groups */
	uint64_t seq;   /* as applied by the writer's engine */
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

	/* Writer thread only (and store_open before it starts). */
	struct engine *engine;
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

	/* Writer thread: gaps taken from restores, written with the next
	 * transaction. */
	struct gap *pending_gaps;
	size_t npending_gaps, pending_gaps_cap;

	pthread_t writer;
	bool started;
};

/* ------------------------------------------------------------ opening */

static void
make_epoch(char *out)
{
	unsigned char rnd[EPOCH_BYTES];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	bool ok = false;
	size_t i;

	if (fd >= 0) {
		ok = read(fd, rnd, sizeof rnd) == (ssize_t)sizeof rnd;
		close(fd);
	}
	if (!ok) {
		uint64_t x = (uint64_t)clock_wall_us() ^ ((uint64_t)getpid() << 40);

		for (i = 0; i < sizeof rnd; i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			rnd[i] = (unsigned char)(x >> 56);
		}
	}
	for (i = 0; i < sizeof rnd; i++)
		snprintf(out + 2 * i, 3, "%02x", rnd[i]);
}

static int
exec_sql(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* Bring a database at `version` up to the newest schema in one
 * transaction; a new database also gets its meta row (and epoch) there. */
static int
migrate(struct store *s, int version, const char *want_epoch, char *err,
        size_t errlen)
{
	const int latest = schema_migration_count;
	sqlite3_stmt *st = NULL;
	char sql[64], epoch[2 * EPOCH_BYTES + 1];
	int rc, i;

	if (sqlite3_db_readonly(s->db, "main") == 1)
		return errf(err, errlen,
		            "db '%s' has schema version %d and needs %d, but "
		            "it is read-only; make it writable so it can be "
		            "upgraded",
		            s->path, version, latest);
	rc = exec_sql(s->db, "BEGIN IMMEDIATE");
	for (i = version; rc == SQLITE_OK && i < latest; i++)
		rc = exec_sql(s->db, schema_migrations[i].sql);
	if (rc == SQLITE_OK) {
		snprintf(sql, sizeof sql, "PRAGMA user_version = %d", latest);
		rc = exec_sql(s->db, sql);
	}
	if (rc == SQLITE_OK && version == 0) {
		if (want_epoch)
			snprintf(epoch, sizeof epoch, "%s", want_epoch);
		else
			make_epoch(epoch);
		rc = sqlite3_prepare_v2(s->db,
		                        "INSERT INTO meta (id, epoch, "
		                        "created_at, next_tick_id, max_ts, "
		                        "max_lag) VALUES (1, ?1, ?2, 1, ?3, 0)",
		                        -1, &st, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_text(st, 1, epoch, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, clock_wall_us());
			sqlite3_bind_int64(st, 3, INT64_MIN);
			rc = step_done(st);
		}
		sqlite3_finalize(st);
	}
	if (rc == SQLITE_OK)
		rc = exec_sql(s->db, "COMMIT");
	if (rc != SQLITE_OK) {
		errf(err, errlen,
		     "cannot %s db '%s' (schema version %d to %d): %s (%s)",
		     version ? "upgrade" : "create", s->path, version, latest,
		     sqlite3_errmsg(s->db), error_hint(rc));
		exec_sql(s->db, "ROLLBACK");
		return -1;
	}
	if (version)
		log_info("store: upgraded db '%s' from schema version %d to %d",
		         s->path, version, latest);
	return 0;
}

static const char *const writer_sql[W_COUNT] = {
        [W_BEGIN] = "BEGIN IMMEDIATE",
        [W_COMMIT] = "COMMIT",
        [W_ROLLBACK] = "ROLLBACK",
        [W_SYMBOL] = "INSERT INTO symbols (id, name) VALUES (?1, ?2)",
        [W_TICK_ONE] = "INSERT INTO ticks (id, symbol_id, ts, seq, bid, "
                       "ask, bid_size, ask_size, last, last_size, volume, "
                       "scales) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        [W_RUN] = "INSERT INTO runs (symbol_id, max_ts, first_id, count, "
                  "ts_min) VALUES (?1, ?2, ?3, ?4, ?5)",
        [W_STATE] = "INSERT OR REPLACE INTO state (symbol_id, seq, ts, "
                    "feed_sends_volume, bid, ask, bid_size, ask_size, last, "
                    "last_size, volume, open, high, low, trades, scales, "
                    "bid_seq, ask_seq, bid_size_seq, ask_size_seq, "
                    "last_seq, last_size_seq, volume_seq, open_seq, "
                    "high_seq, low_seq, trades_seq, max_ts, max_lag) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
                    "?,?,?,?,?,?)",
        [W_COMMIT_ROW] = "INSERT INTO commits (first_id, count, ts_min, "
                         "max_ts, committed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        [W_META] = "UPDATE meta SET next_tick_id = ?1, max_ts = ?2, "
                   "max_lag = ?3",
        [W_GAP] = "INSERT OR REPLACE INTO gaps (symbol_id, first_seq, "
                  "last_seq, first_ts, last_ts, ticks, recorded_at) VALUES "
                  "(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        [W_RET_MIN_ID] = "SELECT min(id) FROM ticks",
        /* The end of the newest commit whose every tick is older than ?1:
         * commits.max_ts only grows, so those commits are a prefix. */
        [W_RET_AGE_CUT] = "SELECT first_id + count FROM commits WHERE "
                          "max_ts < ?1 ORDER BY max_ts DESC, id DESC "
                          "LIMIT 1",
        [W_RET_DEL_TICKS] = "DELETE FROM ticks WHERE id < ?1",
        /* Commits wholly below ?1 are a prefix: delete up to the first
         * one that is not (or all, when there is none). */
        [W_RET_DEL_COMMITS] =
                "DELETE FROM commits WHERE id < coalesce((SELECT id FROM "
                "commits WHERE first_id + count > ?1 ORDER BY id LIMIT 1), "
                "(SELECT max(id) + 1 FROM commits), 0)",
        [W_RET_OLDEST_COMMIT] =
                "SELECT max_ts FROM commits ORDER BY id LIMIT 1",
        /* A run of a deleted commit has max_ts at most the running max of
         * the oldest remaining commit (?2), which bounds the scan. */
        [W_RET_DEL_RUNS] = "DELETE FROM runs WHERE symbol_id = ?1 AND "
                           "max_ts <= ?2 AND first_id + count <= ?3",
};

static int
writer_prepare(struct store *s)
{
	char many[INSERT_ROWS * 26 + 256];
	size_t n;
	int i, rc;

	n = (size_t)snprintf(many, sizeof many,
	                     "INSERT INTO ticks (id, symbol_id, ts, seq, bid, "
	                     "ask, bid_size, ask_size, last, last_size, "
	                     "volume, scales) VALUES ");
	for (i = 0; i < INSERT_ROWS; i++)
		n += (size_t)snprintf(many + n, sizeof many - n,
		                      "%s(?,?,?,?,?,?,?,?,?,?,?,?)",
		                      i ? "," : "");
	for (i = 0; i < W_COUNT; i++) {
		rc = prepare(s->db, i == W_TICKS_MANY ? many : writer_sql[i],
		             &s->stmt[i]);
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

/*
 * Open (or create) the file and set the connection up for writing. Used by
 * store_open and again when the writer reopens after a read-only error.
 * Returns the schema version found, or -1 with err.
 */
static int
writer_connect(struct store *s, bool create, char *err, size_t errlen)
{
	char dir[4096];
	struct stat st;
	int rc, version;

	if (stat(s->path, &st) != 0 && errno == ENOENT) {
		dir_of(s->path, dir, sizeof dir);
		if (stat(dir, &st) != 0)
			return errf(
			        err, errlen,
			        "cannot create db '%s': directory '%s' does "
			        "not exist (create it, or pick another --db)",
			        s->path, dir);
	}
	rc = sqlite3_open_v2(s->path, &s->db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
	                             (create ? SQLITE_OPEN_CREATE : 0),
	                     NULL);
	if (rc != SQLITE_OK)
		return errf(err, errlen, "cannot open db '%s': %s (%s)",
		            s->path,
		            s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc),
		            error_hint(rc));
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);

	/* Nothing is written before the file is known to be ours and not
	 * newer than this build: even switching it to WAL rewrites its
	 * header. */
	version = check_schema(s->db, s->path, err, errlen);
	if (version < 0)
		return -1;
	return version;
}

/* The pragmas of the writing connection. journal_mode=WAL lets readers
 * read while the writer writes; synchronous=NORMAL makes a commit durable
 * against a crash of the process (kill -9), which is the promise, without
 * an fsync per commit. */
static int
writer_pragmas(struct store *s, char *err, size_t errlen)
{
	char sql[256];
	sqlite3_stmt *st;
	bool wal = false;

	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st,
	                       NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW) {
			const char *mode =
			        (const char *)sqlite3_column_text(st, 0);

			wal = mode && strcmp(mode, "wal") == 0;
		}
		sqlite3_finalize(st);
	}
	if (!wal && sqlite3_db_readonly(s->db, "main") != 1)
		return errf(err, errlen,
		            "cannot switch db '%s' to WAL mode: %s", s->path,
		            sqlite3_errmsg(s->db));
	snprintf(sql, sizeof sql,
	         "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -%d; "
	         "PRAGMA temp_store = MEMORY; PRAGMA secure_delete = OFF; "
	         "PRAGMA wal_autocheckpoint = %d; "
	         "PRAGMA journal_size_limit = %lld",
	         WRITER_CACHE_KIB, WAL_CHECKPOINT_PAGES, WAL_SIZE_LIMIT);
	if (exec_sql(s->db, sql) != SQLITE_OK)
		return errf(err, errlen, "cannot set up db '%s': %s", s->path,
		            sqlite3_errmsg(s->db));
	return 0;
}

/* Read a state row (see W_STATE / load_state's SELECT) into *st. */
static void
state_from_row(sqlite3_stmt *q, int col, struct symbol_state *st)
{
	int64_t scales;
	int f;

	/* columns from col: seq, ts, feed_sends_volume, 11 values, scales,
	 * 11 change seqs */
	st->seq = (uint64_t)sqlite3_column_int64(q, col);
	st->ts = sqlite3_column_int64(q, col + 1);
	st->feed_sends_volume = sqlite3_column_int64(q, col + 2) != 0;
	scales = sqlite3_column_int64(q, col + 3 + STATE_FIELD_COUNT);
	st->present = 0;
	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		int vc = col + 3 + f;
		int sc = col + 4 + STATE_FIELD_COUNT + f;

		if (sqlite3_column_type(q, vc) == SQLITE_NULL) {
			st->value[f].mantissa = 0;
			st->value[f].scale = 0;
			st->changed_seq[f] = 0;
			continue;
		}
		st->present |= (uint16_t)(1u << f);
		st->value[f].mantissa = sqlite3_column_int64(q, vc);
		st->value[f].scale = scale_of(scales, f);
		st->changed_seq[f] = (uint64_t)sqlite3_column_int64(q, sc);
	}
}

#define STATE_SELECT                                                           \
	"st.seq, st.ts, st.feed_sends_volume, st.bid, st.ask, st.bid_size, "   \
	"st.ask_size, st.last, st.last_size, st.volume, st.open, st.high, "    \
	"st.low, st.trades, st.scales, st.bid_seq, st.ask_seq, "               \
	"st.bid_size_seq, st.ask_size_seq, st.last_seq, st.last_size_seq, "    \
	"st.volume_seq, st.open_seq, st.high_seq, st.low_seq, st.trades_seq"

static void
noop_client_ready(void *user, void *ctx)
{
}

/* Load meta, symbols and states: the writer continues from them. */
static int
load(struct store *s, char *err, size_t errlen)
{
	struct engine_config ec = {.client_ready = noop_client_ready};
	sqlite3_stmt *q = NULL;
	int64_t max_id = 0;
	int rc;

	s->engine = engine_create(&ec);
	if (!s->engine)
		return errf(err, errlen, "out of memory");

	rc = sqlite3_prepare_v2(s->db,
	                        "SELECT epoch, next_tick_id, max_ts, max_lag "
	                        "FROM meta WHERE id = 1",
	                        -1, &q, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		snprintf(s->epoch, sizeof s->epoch, "%s",
		         (const char *)sqlite3_column_text(q, 0));
		s->next_id = sqlite3_column_int64(q, 1);
		s->max_ts = sqlite3_column_int64(q, 2);
		s->max_lag = sqlite3_column_int64(q, 3);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		sqlite3_finalize(q);
		return errf(err, errlen,
		            "db '%s' has no meta row (was it edited by hand?); "
		            "refusing to guess its epoch",
		            s->path);
	}
	sqlite3_finalize(q);
	q = NULL;
	/* An id is never handed out twice, whatever meta says. */
	if (rc == SQLITE_OK)
		rc = query_int64(s->db, "SELECT max(id) FROM ticks", &max_id,
		                 NULL);
	if (rc == SQLITE_OK && max_id >= s->next_id)
		s->next_id = max_id + 1;

	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(s->db, "SELECT id, name FROM symbols",
		                        -1, &q, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(q, 1);
		struct sym *y;

		y = sym_add(&s->syms, name, strlen(name),
		            sqlite3_column_int64(q, 0));
		if (!y) {
			sqlite3_finalize(q);
			return errf(err, errlen,
			            "db '%s': bad symbol '%.40s' (or out of "
			            "memory)",
			            s->path, name);
		}
		y->stored = true;
		rc = SQLITE_OK;
	}
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	sqlite3_finalize(q);
	q = NULL;

	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(
		        s->db,
		        "SELECT s.name, st.max_ts, st.max_lag, " STATE_SELECT
		        " FROM state AS st JOIN symbols AS s ON s.id = "
		        "st.symbol_id",
		        -1, &q, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(q, 0);
		size_t len = strlen(name);
		struct symbol_state st;
		struct sym *y =
		        sym_find(&s->syms, name, len, name_hash(name, len));

		memset(&st, 0, sizeof st);
		snprintf(st.symbol, sizeof st.symbol, "%s", name);
		state_from_row(q, 3, &st);
		if (!y || engine_restore_symbol(s->engine, &st) != 0) {
			sqlite3_finalize(q);
			return errf(err, errlen,
			            "db '%s': cannot restore the state of "
			            "symbol '%.40s'",
			            s->path, name);
		}
		y->max_ts = sqlite3_column_int64(q, 1);
		y->max_lag = sqlite3_column_int64(q, 2);
		rc = SQLITE_OK;
	}
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	sqlite3_finalize(q);
	if (rc != SQLITE_OK)
		return errf(err, errlen, "cannot read db '%s': %s (%s)",
		            s->path, sqlite3_errmsg(s->db), error_hint(rc));
	return 0;
}

/*
 * One publisher per database: a second writer would hand out the same tick
 * ids. The lock is an flock() on "<db>-lock" beside "-wal" and "-shm", not
 * on the database itself: closing any descriptor of the database file would
 * drop the fcntl() locks SQLite holds on it for every connection of the
 * process.
 */
static int
take_lock(struct store *s, char *err, size_t errlen)
{
	char path[4096];

	if ((size_t)snprintf(path, sizeof path, "%s-lock", s->path) >=
	    sizeof path)
		return errf(err, errlen, "db path '%.200s' is too long",
		            s->path);
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (s->lock_fd < 0)
		return errf(err, errlen, "cannot open the lock file '%s': %s",
		            path, strerror(errno));
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			return errf(err, errlen,
			            "db '%s' is in use by another publisher; "
			            "stop it or pick another --db",
			            s->path);
		return errf(err, errlen, "cannot lock db '%s': %s", s->path,
		            strerror(errno));
	}
	return 0;
}

struct store *
store_open(const struct store_options *opt, char *err, size_t errlen)
{
	pthread_condattr_t ca;
	struct store *s;
	int version;

	if (!opt || !opt->path || !opt->path[0]) {
		errf(err, errlen, "no database path given");
		return NULL;
	}
	if (opt->epoch && (!opt->epoch[0] ||
	                   strlen(opt->epoch) > 2 * EPOCH_BYTES)) {
		errf(err, errlen, "epoch '%.40s' is not 1 to %d characters",
		     opt->epoch, 2 * EPOCH_BYTES);
		return NULL;
	}
	s = calloc(1, sizeof *s);
	if (!s) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	s->lock_fd = -1;
	s->path = strdup(opt->path);
	s->commit_us =
	        (int64_t)(opt->commit_ms ? opt->commit_ms : DEFAULT_COMMIT_MS) *
	        1000;
	s->retain_age_us = opt->retain_age_us > 0 ? opt->retain_age_us : 0;
	s->retain_rows = opt->retain_rows;
	s->wake = opt->wake;
	s->wake_ctx = opt->wake_ctx;
	s->cap = opt->queue_capacity ? opt->queue_capacity
	                             : DEFAULT_QUEUE_CAPACITY;
	s->next_retain_us =
	        s->retain_age_us || s->retain_rows ? clock_mono_us() : INT64_MAX;
	s->next_sweep_us = 0;
	s->syms.next_id = 1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);

	s->ring = malloc(s->cap * sizeof *s->ring);
	s->enq_us = malloc(s->cap * sizeof *s->enq_us);
	s->batch.items = malloc(BATCH_MAX * sizeof *s->batch.items);
	s->batch.order = malloc(BATCH_MAX * sizeof *s->batch.order);
	if (!s->path || !s->ring || !s->enq_us || !s->batch.items ||
	    !s->batch.order) {
		errf(err, errlen, "out of memory (queue of %zu ticks)", s->cap);
		goto fail;
	}

	version = writer_connect(s, true, err, errlen);
	if (version < 0)
		goto fail;
	if (take_lock(s, err, errlen))
		goto fail;
	if (writer_pragmas(s, err, errlen))
		goto fail;
	if (version < schema_migration_count &&
	    migrate(s, version, opt->epoch, err, errlen))
		goto fail;
	if (load(s, err, errlen))
		goto fail;
	if (opt->epoch && strcmp(opt->epoch, s->epoch)) {
		errf(err, errlen,
		     "db '%s' holds epoch %s but the ingest's epoch is %s: its "
		     "ticks belong to another life of the data; remove the "
		     "file (and its -wal, -shm, -lock) or pass another --db",
		     s->path, s->epoch, opt->epoch);
		goto fail;
	}
	if (writer_prepare(s) != SQLITE_OK) {
		errf(err, errlen, "db '%s': cannot prepare statements: %s",
		     s->path, sqlite3_errmsg(s->db));
		goto fail;
	}
	if (sqlite3_db_readonly(s->db, "main") == 1)
		log_warn("store: db '%s' is read-only: ticks will be held and "
		         "the feed slowed until it is writable",
		         s->path);
	return s;
fail:
	store_close(s);
	return NULL;
}

const char *
store_epoch(const struct store *s)
{
	return s->epoch;
}

struct load_ctx {
	void (*fn)(const struct symbol_state *st, void *ctx);
	void *ctx;
};

static void
load_one(const struct symbol_state *st, void *ctx)
{
	struct load_ctx *l = ctx;

	l->fn(st, l->ctx);
}

int
store_load_state(struct store *s,
                 void (*fn)(const struct symbol_state *st, void *ctx),
                 void *ctx)
{
	struct load_ctx l = {fn, ctx};

	/* The writer's engine was restored from the state table on open and
	 * is what the writer continues from; once the writer runs, it is
	 * the writer's alone. */
	if (!s || !fn || s->started)
		return -1;
	engine_foreach_symbol(s->engine, load_one, &l);
	return 0;
}

/* ------------------------------------------------------------ the queue */

int
store_restore_state(struct store *s, const struct symbol_state *st)
{
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	if (s->nrestores == s->restores_cap) {
		size_t cap = s->restores_cap ? s->restores_cap * 2 : 64;
		struct restore *p = realloc(s->restores, cap * sizeof *p);

		if (!p)
			rc = -1;
		else {
			s->restores = p;
			s->restores_cap = cap;
		}
	}
	if (!rc) {
		memset(&s->restores[s->nrestores], 0, sizeof s->restores[0]);
		s->restores[s->nrestores++].st = *st;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* Writer thread: put queued restored states into the writer's engine,
 * never between a batch's preparation and its commit; the gaps they close
 * wait in pending_gaps for the next transaction. */
static void
apply_restores(struct store *s)
{
	struct restore *r;
	size_t n, i;

	pthread_mutex_lock(&s->mu);
	r = s->restores;
	n = s->nrestores;
	s->restores = NULL;
	s->nrestores = s->restores_cap = 0;
	pthread_mutex_unlock(&s->mu);
	for (i = 0; i < n; i++) {
		if (engine_restore_symbol(s->engine, &r[i].st)) {
			log_warn("store: could not restore symbol '%.32s'",
			         r[i].st.symbol);
			continue;
		}
		if (!r[i].has_gap)
			continue;
		if (s->npending_gaps == s->pending_gaps_cap) {
			size_t cap = s->pending_gaps_cap
			                     ? s->pending_gaps_cap * 2
			                     : 64;
			struct gap *p =
			        realloc(s->pending_gaps, cap * sizeof *p);

			if (!p) {
				log_error("store: out of memory: the gap of "
				          "'%.32s' (seqs %llu-%llu) is not "
				          "recorded",
				          r[i].gap.symbol,
				          (unsigned long long)r[i].gap.first_seq,
				          (unsigned long long)r[i].gap.last_seq);
				continue;
			}
			s->pending_gaps = p;
			s->pending_gaps_cap = cap;
		}
		s->pending_gaps[s->npending_gaps++] = r[i].gap;
	}
	free(r);
}

size_t
store_append_space(struct store *s)
{
	size_t space;

	pthread_mutex_lock(&s->mu);
	space = s->stopping ? 0 : s->cap - s->count;
	if (space == 0)
		s->want_wake = true;
	pthread_mutex_unlock(&s->mu);
	return space;
}

int
store_append(struct store *s, const struct tick *ticks, size_t n)
{
	size_t tail, first;
	int64_t now;
	bool signal;

	if (n == 0)
		return 0;
	now = clock_mono_us();
	pthread_mutex_lock(&s->mu);
	if (s->stopping || n > s->cap - s->count) {
		s->want_wake = true;
		pthread_mutex_unlock(&s->mu);
		return -1;
	}
	tail = (s->head + s->count) % s->cap;
	first = s->cap - tail < n ? s->cap - tail : n;
	memcpy(&s->ring[tail], ticks, first * sizeof *ticks);
	memcpy(&s->ring[0], ticks + first, (n - first) * sizeof *ticks);
	for (size_t i = 0; i < n; i++)
		s->enq_us[(tail + i) % s->cap] = now;
	/* The writer needs waking only when it sleeps without a deadline for
	 * these ticks (the queue was empty) or a full batch is ready. */
	signal = s->writer_waiting &&
	         (s->count == 0 ||
	          (s->count < BATCH_MAX && s->count + n >= BATCH_MAX) ||
	          s->count + n == s->cap);
	s->count += n;
	pthread_mutex_unlock(&s->mu);
	if (signal)
		pthread_cond_signal(&s->cond);
	return 0;
}

/* ---------------------------------------------------------- the sink */

/*
 * The gap of a symbol, found or added, under s->mu. The table is open
 * addressing over the gaps' indices, sized at least twice the gaps.
 * Returns NULL when out of memory (the tick then goes uncounted by
 * symbol, but is still counted in ticks_dropped).
 */
static struct gap *
gap_of(struct store *s, const char *symbol)
{
	size_t len = strnlen(symbol, TICK_SYMBOL_MAX);
	uint64_t h = name_hash(symbol, len);
	size_t i;

	if ((s->ngaps + 1) * 2 > (s->gap_slots ? s->gap_mask + 1 : 0)) {
		size_t size = s->gap_slots ? (s->gap_mask + 1) * 2 : 1024, k;
		uint32_t *slots = malloc(size * sizeof *slots);

		if (!slots)
			return NULL;
		memset(slots, 0xff, size * sizeof *slots);
		for (k = 0; k < s->ngaps; k++) {
			size_t j = name_hash(s->gaps[k].symbol,
			                     strlen(s->gaps[k].symbol)) &
			           (size - 1);

			while (slots[j] != UINT32_MAX)
				j = (j + 1) & (size - 1);
			slots[j] = (uint32_t)k;
		}
		free(s->gap_slots);
		s->gap_slots = slots;
		s->gap_mask = size - 1;
	}
	for (i = h & s->gap_mask; s->gap_slots[i] != UINT32_MAX;
	     i = (i + 1) & s->gap_mask) {
		struct gap *g = &s->gaps[s->gap_slots[i]];

		if (!strncmp(g->symbol, symbol, TICK_SYMBOL_MAX))
			return g;
	}
	if (s->ngaps == s->gaps_cap) {
		size_t cap = s->gaps_cap ? s->gaps_cap * 2 : 256;
		struct gap *p = realloc(s->gaps, cap * sizeof *p);

		if (!p)
			return NULL;
		s->gaps = p;
		s->gaps_cap = cap;
	}
	s->gap_slots[i] = (uint32_t)s->ngaps;
	memset(&s->gaps[s->ngaps], 0, sizeof s->gaps[0]);
	memcpy(s->gaps[s->ngaps].symbol, symbol, len);
	return &s->gaps[s->ngaps++];
}

/* Under s->mu: ticks not kept go into their symbols' gaps. */
static void
gaps_add(struct store *s, const struct tick *t, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct gap *g = gap_of(s, t[i].symbol);

		if (!g)
			continue;
		if (!g->ticks || t[i].seq < g->first_seq)
			g->first_seq = t[i].seq;
		if (t[i].seq > g->last_seq)
			g->last_seq = t[i].seq;
		if (!g->ticks || t[i].ts < g->first_ts)
			g->first_ts = t[i].ts;
		if (!g->ticks || t[i].ts > g->last_ts)
			g->last_ts = t[i].ts;
		g->ticks++;
	}
	s->stats.ticks_dropped += n;
}

static size_t
sink_space(void *impl)
{
	struct store *s = impl;
	struct store_stats ss;

	/* A failing store (disk full, read-only file) may not recover for
	 * hours: a file waits for it no more than a market does. */
	store_get_stats(s, &ss);
	return ss.failing ? SIZE_MAX : store_append_space(s);
}

/*
 * A live batch: what fits goes in the queue; what does not, and every tick
 * after it until the queue has drained, is recorded as gaps (the
 * "Falling behind" of store.h). The queue never holds a tick of a symbol
 * after one of its dropped ones, so when the sink resumes, the restored
 * state comes after everything stored before the gap.
 */
static void
sink_append(void *impl, const struct tick *applied, size_t n)
{
	struct store *s = impl;
	size_t fit = 0;

	pthread_mutex_lock(&s->mu);
	if (!s->dropping && !s->stopping)
		fit = s->cap - s->count < n ? s->cap - s->count : n;
	pthread_mutex_unlock(&s->mu);
	if (fit)
		store_append(s, applied, fit);
	if (fit == n)
		return;
	pthread_mutex_lock(&s->mu);
	if (!s->dropping) {
		s->dropping = true;
		s->dropping_since_us = clock_wall_us();
		s->stats.gaps_started++;
		log_limited(LOG_WARN,
		            "store: db '%s' cannot keep up with the live feed "
		         "(%zu ticks queued): dropping ticks until it has "
		         "caught up; what it drops is recorded as gaps",
		         s->path, s->count);
	}
	gaps_add(s, applied + fit, n - fit);
	/* The writer wakes the pipeline once the queue has drained. */
	s->want_wake = true;
	pthread_mutex_unlock(&s->mu);
}

static bool
sink_wants_resume(void *impl)
{
	struct store *s = impl;
	bool yes;

	pthread_mutex_lock(&s->mu);
	yes = s->dropping && s->count == 0;
	pthread_mutex_unlock(&s->mu);
	return yes;
}

/*
 * The queue has drained: every tick before the gaps is stored. Each gap
 * goes to the writer with its symbol's state now (which every dropped tick
 * is folded into), and ticks are taken again.
 */
static void
sink_resume(void *impl, sink_state_fn state, void *ctx)
{
	struct store *s = impl;
	uint64_t ticks = 0;
	size_t i, n = 0;

	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->ngaps; i++) {
		struct restore *r;

		if (s->nrestores == s->restores_cap) {
			size_t cap = s->restores_cap ? s->restores_cap * 2
			                             : 64;
			struct restore *p =
			        realloc(s->restores, cap * sizeof *p);

			if (!p)
				break;
			s->restores = p;
			s->restores_cap = cap;
		}
		r = &s->restores[s->nrestores];
		memset(r, 0, sizeof *r);
		if (state(s->gaps[i].symbol, &r->st, ctx))
			continue;
		r->has_gap = true;
		r->gap = s->gaps[i];
		s->nrestores++;
		ticks += s->gaps[i].ticks;
		n++;
	}
	s->ngaps = 0;
	if (s->gap_slots)
		memset(s->gap_slots, 0xff,
		       (s->gap_mask + 1) * sizeof *s->gap_slots);
	s->dropping = false;
	pthread_mutex_unlock(&s->mu);
	pthread_cond_signal(&s->cond);
	log_limited(LOG_WARN,
	            "store: db '%s' caught up; %llu ticks of %zu symbols were "
	         "not stored and are recorded as gaps",
	         s->path, (unsigned long long)ticks, n);
}

static void
sink_status(void *impl, struct sink_status *out)
{
	struct store *s = impl;
	struct store_stats ss;
	int64_t since;

	store_get_stats(s, &ss);
	pthread_mutex_lock(&s->mu);
	since = s->dropping ? s->dropping_since_us : 0;
	pthread_mutex_unlock(&s->mu);
	memset(out, 0, sizeof *out);
	out->lag_us = ss.lag_us;
	out->queued = ss.queued;
	out->dropped = ss.ticks_dropped;
	out->failing = ss.failing;
	out->dropping = since != 0;
	if (ss.failing)
		snprintf(out->reason, sizeof out->reason, "store failing: %s",
		         ss.last_error);
	else if (since)
		snprintf(out->reason, sizeof out->reason,
		         "store behind the live feed for %.1f s: ticks are "
		         "not stored, and are recorded as gaps",
		         (double)(clock_wall_us() - since) / 1e6);
}

static void
sink_restore(void *impl, const struct symbol_state *st)
{
	if (store_restore_state(impl, st))
		log_warn("store: out of memory restoring symbol '%.32s'",
		         st->symbol);
}

static int
sink_epoch(void *impl, const char *epoch, char *why, size_t len)
{
	struct store *s = impl;

	if (!strcmp(s->epoch, epoch))
		return 0;
	snprintf(why, len,
	         "store epoch %s differs from the ingest's %s; restart the "
	         "edge with a new --db",
	         s->epoch, epoch);
	return -1;
}

static const struct sink_ops store_sink_ops = {
	.name = "store",
	.space = sink_space,
	.append = sink_append,
	.wants_resume = sink_wants_resume,
	.resume = sink_resume,
	.status = sink_status,
	.restore = sink_restore,
	.epoch = sink_epoch,
};

struct sink
store_sink(struct store *s)
{
	struct sink k = {&store_sink_ops, s};

	return k;
}

void
store_get_stats(struct store *s, struct store_stats *out)
{
	pthread_mutex_lock(&s->mu);
	*out = s->stats;
	out->queued = s->count;
	out->lag_us = s->count ? clock_mono_us() - s->enq_us[s->head] : 0;
	pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------- writing */

/* A tick the writer's engine refused: counted, and logged once a minute.
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
 * Work out everything about the next n queued ticks: apply them to the
 * engine, give new symbols their ids, group the ticks by symbol, and take
 * each touched symbol's state. Called once per batch; the result is then
 * written as often as it takes.
 */
static void
batch_prepare(struct store *s, size_t n)
{
	struct batch *b = &s->batch;
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

		y = sym_find(&s->syms, t->symbol, len,
		             name_hash(t->symbol, len));
		seq = engine_apply_tick(s->engine, t);
		if (!seq) {
			/* Refused (invalid symbol, stale seq): the state
			 * stays as it was, so the tick is not stored
			 * either and stored state still equals stored
			 * ticks. */
			refused(s, t);
			continue;
		}
		if (!y) {
			y = sym_add(&s->syms, t->symbol, len, 0);
			if (!y) {
				/* Out of memory: the engine has the tick but
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
		if (span(gr->max_ts, gr->ts_min) > y->max_lag)
			y->max_lag = span(gr->max_ts, gr->ts_min);
		y->max_ts = gr->max_ts;
		gr->max_lag = y->max_lag;
		gr->insert_symbol = !y->stored;
		if (gr->ts_min < b->ts_min)
			b->ts_min = gr->ts_min;
		if (gr->max_ts > b->max_ts)
			b->max_ts = gr->max_ts;
		engine_get_state(s->engine, y->name, &gr->st);
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
		struct sym *y = sym_find(&s->syms, gp->symbol, len,
		                         name_hash(gp->symbol, len));

		if (!y && !(y = sym_add(&s->syms, gp->symbol, len, 0)))
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
		if (engine_get_state(s->engine, y->name, &row->st))
			continue;
		b->ngaps++;
	}
	/* The engine's change list has no reader here; keep it short. */
	engine_flush(s->engine);
	if (b->ngroups && span(b->max_ts, b->ts_min) > s->max_lag)
		s->max_lag = span(b->max_ts, b->ts_min);
	if (b->ngroups)
		s->max_ts = b->max_ts;
	b->max_lag = s->max_lag;
	b->first_id = s->next_id;
	s->next_id += (int64_t)b->nitems;
	b->next_id = s->next_id;
}

static void
bind_tick(sqlite3_stmt *st, int p, int64_t id, int64_t symbol_id,
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
	sqlite3_bind_int64(st, p + 4 + TICK_FIELD_COUNT,
	                   scales_pack(t->value, t->present, TICK_FIELD_COUNT));
}

static void
bind_state(sqlite3_stmt *q, const struct group *gr)
{
	const struct symbol_state *st = &gr->st;
	int f;

	sqlite3_bind_int64(q, 1, gr->sym->id);
	sqlite3_bind_int64(q, 2, (sqlite3_int64)st->seq);
	sqlite3_bind_int64(q, 3, st->ts);
	sqlite3_bind_int(q, 4, st->feed_sends_volume ? 1 : 0);
	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		if ((st->present >> f) & 1u) {
			sqlite3_bind_int64(q, 5 + f, st->value[f].mantissa);
			sqlite3_bind_int64(q, 6 + STATE_FIELD_COUNT + f,
			                   (sqlite3_int64)st->changed_seq[f]);
		} else {
			sqlite3_bind_null(q, 5 + f);
			sqlite3_bind_null(q, 6 + STATE_FIELD_COUNT + f);
		}
	}
	sqlite3_bind_int64(
	        q, 5 + STATE_FIELD_COUNT,
	        scales_pack(st->value, st->present, STATE_FIELD_COUNT));
	sqlite3_bind_int64(q, 6 + 2 * STATE_FIELD_COUNT, gr->max_ts);
	sqlite3_bind_int64(q, 7 + 2 * STATE_FIELD_COUNT, gr->max_lag);
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

	rc = step_done(w[W_BEGIN]);
	for (g = 0; rc == SQLITE_OK && g < b->ngroups; g++) {
		const struct group *gr = &b->groups[g];

		if (!gr->insert_symbol)
			continue;
		sqlite3_bind_int64(w[W_SYMBOL], 1, gr->sym->id);
		sqlite3_bind_text(w[W_SYMBOL], 2, gr->sym->name, -1,
		                  SQLITE_STATIC);
		rc = step_done(w[W_SYMBOL]);
	}

	/* The ticks, grouped by symbol, INSERT_ROWS per statement. */
	for (k = 0; rc == SQLITE_OK && k < b->nitems;) {
		bool many = b->nitems - k >= INSERT_ROWS;
		sqlite3_stmt *st = many ? w[W_TICKS_MANY] : w[W_TICK_ONE];
		size_t rows = many ? INSERT_ROWS : 1, r;

		for (r = 0; r < rows; r++, k++) {
			const struct item *it = &b->items[b->order[k]];

			bind_tick(st, (int)(r * TICK_COLUMNS) + 1, id++,
			          b->groups[it->group].sym->id,
			          &s->ring[it->slot], it->seq);
		}
		rc = step_done(st);
	}

	for (g = 0; rc == SQLITE_OK && g < b->ngroups; g++) {
		const struct group *gr = &b->groups[g];

		sqlite3_bind_int64(w[W_RUN], 1, gr->sym->id);
		sqlite3_bind_int64(w[W_RUN], 2, gr->max_ts);
		sqlite3_bind_int64(w[W_RUN], 3, b->first_id + gr->first);
		sqlite3_bind_int64(w[W_RUN], 4, gr->count);
		sqlite3_bind_int64(w[W_RUN], 5, gr->ts_min);
		rc = step_done(w[W_RUN]);
		if (rc == SQLITE_OK) {
			bind_state(w[W_STATE], gr);
			rc = step_done(w[W_STATE]);
		}
	}
	for (g = 0; rc == SQLITE_OK && g < b->ngaps; g++) {
		const struct gap_row *row = &b->gaps[g];
		struct group gr;

		if (row->insert_symbol) {
			sqlite3_bind_int64(w[W_SYMBOL], 1, row->sym->id);
			sqlite3_bind_text(w[W_SYMBOL], 2, row->sym->name, -1,
			                  SQLITE_STATIC);
			rc = step_done(w[W_SYMBOL]);
		}
		if (rc != SQLITE_OK)
			break;
		sqlite3_bind_int64(w[W_GAP], 1, row->sym->id);
		sqlite3_bind_int64(w[W_GAP], 2,
		                   (sqlite3_int64)row->gap.first_seq);
		sqlite3_bind_int64(w[W_GAP], 3, (sqlite3_int64)row->gap.last_seq);
		sqlite3_bind_int64(w[W_GAP], 4, row->gap.first_ts);
		sqlite3_bind_int64(w[W_GAP], 5, row->gap.last_ts);
		sqlite3_bind_int64(w[W_GAP], 6, (sqlite3_int64)row->gap.ticks);
		sqlite3_bind_int64(w[W_GAP], 7, clock_wall_us());
		rc = step_done(w[W_GAP]);
		/* The symbol's state row, unless its run above wrote it. */
		if (rc == SQLITE_OK && row->sym->group == UINT32_MAX) {
			memset(&gr, 0, sizeof gr);
			gr.sym = row->sym;
			gr.st = row->st;
			gr.max_ts = row->sym->max_ts;
			gr.max_lag = row->sym->max_lag;
			bind_state(w[W_STATE], &gr);
			rc = step_done(w[W_STATE]);
		}
	}
	if (rc == SQLITE_OK && b->nitems) {
		sqlite3_bind_int64(w[W_COMMIT_ROW], 1, b->first_id);
		sqlite3_bind_int64(w[W_COMMIT_ROW], 2, (int64_t)b->nitems);
		sqlite3_bind_int64(w[W_COMMIT_ROW], 3, b->ts_min);
		sqlite3_bind_int64(w[W_COMMIT_ROW], 4, b->max_ts);
		sqlite3_bind_int64(w[W_COMMIT_ROW], 5, clock_wall_us());
		rc = step_done(w[W_COMMIT_ROW]);
	}
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(w[W_META], 1, b->next_id);
		sqlite3_bind_int64(w[W_META], 2, s->max_ts);
		sqlite3_bind_int64(w[W_META], 3, b->max_lag);
		rc = step_done(w[W_META]);
	}
	if (rc == SQLITE_OK)
		rc = step_done(w[W_COMMIT]);
	if (rc != SQLITE_OK) {
		int sys = sqlite3_system_errno(s->db);

		/* The system's word for it ("No space left on device", "File
		 * too large") says more than SQLite's "disk I/O error". */
		snprintf(s->errmsg, sizeof s->errmsg, "%s%s%s",
		         sqlite3_errmsg(s->db), sys ? ": " : "",
		         sys ? strerror(sys) : "");
		if (!sqlite3_get_autocommit(s->db))
			step_done(w[W_ROLLBACK]);
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

	finalize_all(s->stmt, W_COUNT);
	sqlite3_close(s->db);
	s->db = NULL;
	/* Not CREATE: a file that went away is not replaced by an empty one
	 * behind the operator's back. */
	version = writer_connect(s, false, err, sizeof err);
	rc = version == schema_migration_count ? SQLITE_OK : SQLITE_CANTOPEN;
	if (rc == SQLITE_OK && writer_pragmas(s, err, sizeof err))
		rc = SQLITE_CANTOPEN;
	if (rc == SQLITE_OK)
		rc = writer_prepare(s);
	if (rc != SQLITE_OK) {
		snprintf(s->errmsg, sizeof s->errmsg, "reopen: %s", err);
		finalize_all(s->stmt, W_COUNT);
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
	         s->errmsg[0] ? s->errmsg : sqlite3_errstr(rc), error_hint(rc));
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
	log_warn("store: db '%s': cannot %s; %zu ticks held and the feed "
	         "slowed until this clears; retrying%s",
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
	 * (SPEC §7). Said once a minute; the stats carry it all the time. */
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

/* Sleep up to us, or until store_close() asks the writer to stop. */
static void
writer_sleep(struct store *s, int64_t us)
{
	int64_t until = clock_mono_us() + us;
	struct timespec ts = {.tv_sec = until / 1000000,
	                      .tv_nsec = (until % 1000000) * 1000};

	pthread_mutex_lock(&s->mu);
	if (!s->stopping)
		pthread_cond_timedwait(&s->cond, &s->mu, &ts);
	pthread_mutex_unlock(&s->mu);
}

/* Write the next n queued ticks, retrying until it works, or, when the
 * store is closing and has failed for CLOSE_GIVE_UP_US, give up on
 * everything still queued. */
static void
writer_batch(struct store *s, size_t n)
{
	int64_t backoff = RETRY_MIN_US;
	int rc;

	batch_prepare(s, n);
	if (s->batch.nitems == 0 && s->batch.ngaps == 0) {
		s->npending_gaps = 0;
		release_slots(s, n, NULL);
		return;
	}
	for (;;) {
		bool stopping;
		int64_t stop_us;

		rc = s->db ? batch_write(s) : SQLITE_CANTOPEN;
		if (rc == SQLITE_OK)
			break;
		note_failure(s, rc, "write ticks");
		pthread_mutex_lock(&s->mu);
		stopping = s->stopping;
		stop_us = s->stop_us;
		pthread_mutex_unlock(&s->mu);
		if (stopping && clock_mono_us() - stop_us >= CLOSE_GIVE_UP_US) {
			size_t queued;

			pthread_mutex_lock(&s->mu);
			queued = s->count;
			pthread_mutex_unlock(&s->mu);
			log_error("store: db '%s': giving up at shutdown: %zu "
			          "queued ticks were not written (%s)",
			          s->path, queued, s->stats.last_error);
			release_slots(s, queued, NULL);
			return;
		}
		writer_sleep(s, backoff);
		backoff =
		        backoff * 2 > RETRY_MAX_US ? RETRY_MAX_US : backoff * 2;
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
		step_done(s->stmt[W_ROLLBACK]);
	if (s->last_retain_log_us &&
	    now - s->last_retain_log_us < FAIL_LOG_INTERVAL_US)
		return;
	s->last_retain_log_us = now;
	log_warn("store: db '%s': retention could not delete old ticks: %s "
	         "(%s); trying again later",
	         s->path, sqlite3_errmsg(s->db), error_hint(rc));
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
	rc = step_done(w[W_BEGIN]);
	for (; rc == SQLITE_OK && s->sweep_cursor < end; s->sweep_cursor++) {
		const struct sym *y = s->syms.list[s->sweep_cursor];

		if (!y->stored)
			continue;
		sqlite3_bind_int64(w[W_RET_DEL_RUNS], 1, y->id);
		sqlite3_bind_int64(w[W_RET_DEL_RUNS], 2, s->sweep_max_ts);
		sqlite3_bind_int64(w[W_RET_DEL_RUNS], 3, s->sweep_below_id);
		rc = step_done(w[W_RET_DEL_RUNS]);
	}
	if (rc == SQLITE_OK)
		rc = step_done(w[W_COMMIT]);
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
static void
retention_step(struct store *s)
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
	rc = step_done(w[W_BEGIN]);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(w[W_RET_DEL_TICKS], 1, end);
		rc = step_done(w[W_RET_DEL_TICKS]);
	}
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(w[W_RET_DEL_COMMITS], 1, end);
		rc = step_done(w[W_RET_DEL_COMMITS]);
	}
	if (rc == SQLITE_OK)
		rc = step_done(w[W_COMMIT]);
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

/* ------------------------------------------------------- writer thread */

/*
 * Wait until there is a batch to write: BATCH_MAX ticks, or ticks of which
 * the oldest has waited commit_ms, or anything at all when closing.
 * Returns its size, 0 when housekeeping (retention) is due first, or
 * SIZE_MAX when the store is closing and the queue is empty.
 */
static size_t
writer_wait(struct store *s)
{
	size_t n = 0;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		int64_t now = clock_mono_us(), deadline;
		struct timespec ts;

		if (s->count) {
			int64_t due = s->enq_us[s->head] + s->commit_us;

			/* A full queue is written at once: waiting would
			 * only hold up a replay or make a live feed drop. */
			if (s->stopping || s->count >= BATCH_MAX ||
			    s->count == s->cap || now >= due) {
				n = s->count < BATCH_MAX ? s->count : BATCH_MAX;
				break;
			}
			deadline = due;
		} else if (s->nrestores || s->npending_gaps) {
			/* Restored states (and the gaps they close) to write,
			 * with or without ticks. */
			break;
		} else if (s->stopping) {
			n = SIZE_MAX;
			break;
		} else {
			deadline = now + IDLE_WAKE_US;
		}
		if (s->next_retain_us <= now)
			break;
		if (s->next_retain_us < deadline)
			deadline = s->next_retain_us;
		ts.tv_sec = deadline / 1000000;
		ts.tv_nsec = (deadline % 1000000) * 1000;
		s->writer_waiting = true;
		pthread_cond_timedwait(&s->cond, &s->mu, &ts);
		s->writer_waiting = false;
	}
	pthread_mutex_unlock(&s->mu);
	return n;
}

static bool
writer_stopping(struct store *s)
{
	bool stopping;

	pthread_mutex_lock(&s->mu);
	stopping = s->stopping;
	pthread_mutex_unlock(&s->mu);
	return stopping;
}

static void *
writer_main(void *arg)
{
	struct store *s = arg;

	for (;;) {
		size_t n = writer_wait(s);

		if (n == SIZE_MAX)
			break;
		apply_restores(s);
		if (n || s->npending_gaps)
			writer_batch(s, n);
		if (s->db && clock_mono_us() >= s->next_retain_us &&
		    !writer_stopping(s))
			retention_step(s);
	}
	return NULL;
}

int
store_start(struct store *s, char *err, size_t errlen)
{
	int rc;

	if (s->started)
		return errf(err, errlen, "store already started");
	rc = pthread_create(&s->writer, NULL, writer_main, s);
	if (rc)
		return errf(err, errlen, "cannot start the store writer: %s",
		            strerror(rc));
	s->started = true;
	return 0;
}

void
store_close(struct store *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	s->stop_us = clock_mono_us();
	pthread_mutex_unlock(&s->mu);
	if (s->started) {
		pthread_cond_broadcast(&s->cond);
		pthread_join(s->writer, NULL);
	} else if (s->db && s->engine && s->count) {
		/* Never started: write what was queued on this thread. */
		s->next_retain_us = INT64_MAX;
		writer_main(s);
	}
	finalize_all(s->stmt, W_COUNT);
	if (s->db)
		sqlite3_close(s->db);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	engine_destroy(s->engine);
	sym_table_free(&s->syms);
	free(s->batch.items);
	free(s->batch.order);
	free(s->batch.groups);
	free(s->restores);
	free(s->gaps);
	free(s->gap_slots);
	free(s->pending_gaps);
	free(s->batch.gaps);
	free(s->ring);
	free(s->enq_us);
	free(s->path);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* ------------------------------------------------------------- reading */

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
		     error_hint(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(r->db, 1);
	sqlite3_busy_timeout(r->db, BUSY_TIMEOUT_MS);
	version = check_schema(r->db, path, err, errlen);
	if (version < 0)
		goto fail;
	if (version < READER_MIN_VERSION) {
		errf(err, errlen,
		     "db '%s' holds no publisher data yet (schema version %d)",
		     path, version);
		goto fail;
	}
	snprintf(sql, sizeof sql,
	         "PRAGMA cache_size = -%d; PRAGMA mmap_size = %lld",
	         READER_CACHE_KIB, READER_MMAP_BYTES);
	exec_sql(r->db, sql);
	for (i = 0; i < R_COUNT; i++) {
		rc = prepare(r->db, reader_sql[i], &r->stmt[i]);
		if (rc != SQLITE_OK) {
			errf(err, errlen, "db '%s': cannot prepare a query: %s",
			     path, sqlite3_errmsg(r->db));
			goto fail;
		}
	}
	/* An older database (read, not migrated, by export) has no gaps. */
	if (version >= 3 &&
	    prepare(r->db,
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
	finalize_all(r->stmt, R_COUNT);
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
	            sqlite3_errmsg(r->db), error_hint(rc));
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
		t->value[f].scale = scale_of(scales, f);
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
	sqlite3_bind_int64(q, 3, sat_add(to - 1, lag));
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
	sqlite3_bind_int64(q, 2, sat_add(to - 1, lag));
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
	int rc = step_done(r->stmt[R_BEGIN]);

	return rc == SQLITE_OK ? 0 : read_error(r, err, errlen, rc);
}

static void
read_end(struct store_reader *r)
{
	if (!sqlite3_get_autocommit(r->db))
		step_done(r->stmt[R_END]);
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
	bool reverse = last_n > 0, stop = false;
	struct tick_heap h = {.max = reverse};
	struct tick_buf keep = {0};
	struct source src;
	struct tick t;
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
	while (!stop && (rc = source_next(&src, err, errlen)) == 1) {
		int64_t bound = reverse ? src.cur_run_max_ts
		                        : sat_add(src.cur_run_max_ts, -src.lag);

		while (h.n && !stop && history_ready(&h, bound)) {
			tick_heap_pop(&h, &t);
			if (reverse) {
				if (tick_buf_push(&keep, &t)) {
					rc = errf(err, errlen, "out of memory");
					goto out;
				}
				stop = keep.n == last_n;
			} else {
				stop = row(&t, ctx) != 0;
			}
		}
		if (!stop && tick_heap_push(&h, &src.cur)) {
			rc = errf(err, errlen, "out of memory");
			goto out;
		}
	}
	if (rc < 0)
		goto out;
	while (h.n && !stop) {
		tick_heap_pop(&h, &t);
		if (reverse) {
			if (tick_buf_push(&keep, &t)) {
				rc = errf(err, errlen, "out of memory");
				goto out;
			}
			stop = keep.n == last_n;
		} else {
			stop = row(&t, ctx) != 0;
		}
	}
	for (i = keep.n; i-- > 0;)
		if (row(&keep.v[i], ctx))
			break;
	rc = 0;
out:
	source_free(&src);
out_nosrc:
	free(h.v);
	free(keep.v);
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
			int64_t safe = sat_add(src.cur_run_max_ts, -src.lag);

			while (emitted < bars.n &&
			       sat_add(bars.v[emitted].b.t, interval_us) <=
			               safe) {
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

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
 * the free part of the ring) once the oldest has waited commit_ms, folds
 * them into its own symbol states (a state_table: the engine's folding
 * rules, without its subscribers), groups them by symbol and writes ticks,
 * runs, states, a commits row and the meta counters in one transaction.
 * Everything about a batch is worked out once, before the first attempt,
 * so a failed commit is simply rolled back and attempted again with the
 * same rows: the states have taken those ticks already and must not take
 * them twice. Only after the commit are the ring slots freed.
 *
 * Retention and run sweeping happen on the writer thread too, between
 * batches and in small transactions, because SQLite has one writer at a
 * time: a second writing connection would only wait for the lock.
 */
#include "store_private.h"

#include "epoch.h"

struct sym *
store__sym_find(const struct sym_table *t, const char *name, size_t len,
                uint64_t hash)
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
struct sym *
store__sym_add(struct sym_table *t, const char *name, size_t len, int64_t id)
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
	y->hash = hash_name(name, len);
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

void
store__sym_table_free(struct sym_table *t)
{
	size_t i;

	for (i = 0; i < t->count; i++)
		free(t->list[i]);
	free(t->list);
	free(t->slots);
	memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------ opening */

int
store__exec_sql(sqlite3 *db, const char *sql)
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
	rc = store__exec_sql(s->db, "BEGIN IMMEDIATE");
	for (i = version; rc == SQLITE_OK && i < latest; i++)
		rc = store__exec_sql(s->db, schema_migrations[i].sql);
	if (rc == SQLITE_OK) {
		snprintf(sql, sizeof sql, "PRAGMA user_version = %d", latest);
		rc = store__exec_sql(s->db, sql);
	}
	if (rc == SQLITE_OK && version == 0) {
		if (want_epoch)
			snprintf(epoch, sizeof epoch, "%s", want_epoch);
		else
			epoch_make(epoch, sizeof epoch);
		rc = sqlite3_prepare_v2(s->db,
		                        "INSERT INTO meta (id, epoch, "
		                        "created_at, next_tick_id, max_ts, "
		                        "max_lag) VALUES (1, ?1, ?2, 1, ?3, 0)",
		                        -1, &st, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_text(st, 1, epoch, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, clock_wall_us());
			sqlite3_bind_int64(st, 3, INT64_MIN);
			rc = store__step_done(st);
		}
		sqlite3_finalize(st);
	}
	if (rc == SQLITE_OK)
		rc = store__exec_sql(s->db, "COMMIT");
	if (rc != SQLITE_OK) {
		errf(err, errlen,
		     "cannot %s db '%s' (schema version %d to %d): %s (%s)",
		     version ? "upgrade" : "create", s->path, version, latest,
		     sqlite3_errmsg(s->db), store__error_hint(rc));
		store__exec_sql(s->db, "ROLLBACK");
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
                    "last_size, volume, open, high, low, trades, "
                    "prev_close, scales, bid_seq, ask_seq, bid_size_seq, "
                    "ask_size_seq, last_seq, last_size_seq, volume_seq, "
                    "open_seq, high_seq, low_seq, trades_seq, "
                    "prev_close_seq, max_ts, max_lag, session) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
                    "?,?,?,?,?,?,?,?,?)",
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
        [W_RESERVE] = "INSERT OR REPLACE INTO reservations (symbol_id, "
                      "seq_reserved, fields) VALUES (?1, ?2, ?3)",
        [W_EPOCH] = "UPDATE meta SET epoch = ?1",
};

int
store__writer_prepare(struct store *s)
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
		rc = store__prepare(s->db,
		                    i == W_TICKS_MANY ? many : writer_sql[i],
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
int
store__writer_connect(struct store *s, bool create, char *err, size_t errlen)
{
	char dir[4096];
	struct stat st;
	int rc, version;

	if (stat(s->path, &st) != 0 && errno == ENOENT) {
		store__dir_of(s->path, dir, sizeof dir);
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
		            store__error_hint(rc));
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);

	/* Nothing is written before the file is known to be ours and not
	 * newer than this build: even switching it to WAL rewrites its
	 * header. */
	version = store__check_schema(s->db, s->path, err, errlen);
	if (version < 0)
		return -1;
	return version;
}

/* The pragmas of the writing connection. journal_mode=WAL lets readers
 * read while the writer writes; synchronous=NORMAL makes a commit durable
 * against a crash of the process (kill -9), which is the promise, without
 * an fsync per commit. */
int
store__writer_pragmas(struct store *s, char *err, size_t errlen)
{
	char sql[256];
	sqlite3_stmt *st;
	bool wal = false;
	const char *cap;

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
	if (store__exec_sql(s->db, sql) != SQLITE_OK)
		return errf(err, errlen, "cannot set up db '%s': %s", s->path,
		            sqlite3_errmsg(s->db));
	/* A full disk for tests that cannot mount a small one: the file
	 * stops growing at this many pages (test_durability.py). */
	cap = getenv("PUBLISHER_TEST_DB_MAX_PAGES");
	if (cap && *cap) {
		snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld",
		         atoll(cap));
		store__exec_sql(s->db, sql);
	}
	return 0;
}

/* Read a state row (see W_STATE / load_state's SELECT) into *st. */
static void
state_from_row(sqlite3_stmt *q, int col, struct symbol_state *st)
{
	int64_t scales;
	int f;

	/* columns from col: seq, ts, feed_sends_volume, the values (enum
	 * tick_field order), scales, their change seqs, session */
	st->seq = (uint64_t)sqlite3_column_int64(q, col);
	st->ts = sqlite3_column_int64(q, col + 1);
	st->feed_sends_volume = sqlite3_column_int64(q, col + 2) != 0;
	scales = sqlite3_column_int64(q, col + 3 + STATE_FIELD_COUNT);
	st->present = 0;
	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		int vc = col + 3 + f;
		int sc = col + 4 + STATE_FIELD_COUNT + f;

		/* A field without a value may still say when a session
		 * took it away. */
		st->changed_seq[f] = (uint64_t)sqlite3_column_int64(q, sc);
		if (sqlite3_column_type(q, vc) == SQLITE_NULL) {
			st->value[f].mantissa = 0;
			st->value[f].scale = 0;
			continue;
		}
		st->present |= (uint16_t)(1u << f);
		st->value[f].mantissa = sqlite3_column_int64(q, vc);
		st->value[f].scale = store__scale_of(scales, f);
	}
	/* NULL in a row written before states knew their session. */
	st->session = sqlite3_column_type(q, col + 4 + 2 * STATE_FIELD_COUNT) ==
	                              SQLITE_NULL
	                      ? SYMBOL_STATE_SESSION_UNKNOWN
	                      : sqlite3_column_int64(
	                                q, col + 4 + 2 * STATE_FIELD_COUNT);
}

#define STATE_SELECT                                                           \
	"st.seq, st.ts, st.feed_sends_volume, st.bid, st.ask, st.bid_size, "   \
	"st.ask_size, st.last, st.last_size, st.volume, st.open, st.high, "    \
	"st.low, st.trades, st.prev_close, st.scales, st.bid_seq, "            \
	"st.ask_seq, st.bid_size_seq, st.ask_size_seq, st.last_seq, "          \
	"st.last_size_seq, st.volume_seq, st.open_seq, st.high_seq, "          \
	"st.low_seq, st.trades_seq, st.prev_close_seq, st.session"

/* Load meta, symbols and states: the writer continues from them. */
static int
load(struct store *s, char *err, size_t errlen)
{
	sqlite3_stmt *q = NULL;
	int64_t max_id = 0;
	int rc;

	s->states = state_table_create();
	if (!s->states)
		return errf(err, errlen, "out of memory");
	state_table_set_sessions(s->states, &s->sessions);

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
		rc = store__query_int64(s->db, "SELECT max(id) FROM ticks",
		                        &max_id, NULL);
	if (rc == SQLITE_OK && max_id >= s->next_id)
		s->next_id = max_id + 1;

	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(s->db, "SELECT id, name FROM symbols",
		                        -1, &q, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(q, 1);
		struct sym *y;

		y = store__sym_add(&s->syms, name, strlen(name),
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
		struct sym *y = store__sym_find(&s->syms, name, len,
		                                hash_name(name, len));

		memset(&st, 0, sizeof st);
		snprintf(st.symbol, sizeof st.symbol, "%s", name);
		state_from_row(q, 3, &st);
		if (!y || state_table_restore(s->states, &st) != 0) {
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
	return store__read_done(s, q, rc, err, errlen);
}

int
store__read_done(struct store *s, sqlite3_stmt *q, int rc, char *err,
                 size_t errlen)
{
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	sqlite3_finalize(q);
	if (rc != SQLITE_OK)
		return errf(err, errlen, "cannot read db '%s': %s (%s)",
		            s->path, sqlite3_errmsg(s->db),
		            store__error_hint(rc));
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
	if (opt->epoch &&
	    (!opt->epoch[0] || strlen(opt->epoch) > 2 * EPOCH_BYTES)) {
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
	s->sessions = opt->sessions;
	s->cap = opt->queue_capacity ? opt->queue_capacity
	                             : DEFAULT_QUEUE_CAPACITY;
	s->next_retain_us = s->retain_age_us || s->retain_rows ? clock_mono_us()
	                                                       : INT64_MAX;
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

	version = store__writer_connect(s, true, err, errlen);
	if (version < 0)
		goto fail;
	if (take_lock(s, err, errlen))
		goto fail;
	if (store__writer_pragmas(s, err, errlen))
		goto fail;
	if (version < schema_migration_count &&
	    migrate(s, version, opt->epoch, err, errlen))
		goto fail;
	if (load(s, err, errlen))
		goto fail;
	if (opt->epoch && strcmp(opt->epoch, s->epoch)) {
		errf(err, errlen,
		     "db '%s' holds epoch %s but the ingest's epoch is %s: "
		     "its "
		     "ticks belong to another life of the data; remove the "
		     "file (and its -wal, -shm, -lock) or pass another --db",
		     s->path, s->epoch, opt->epoch);
		goto fail;
	}
	if (store__resv_load(s, opt->epoch != NULL, err, errlen))
		goto fail;
	if (store__writer_prepare(s) != SQLITE_OK) {
		errf(err, errlen, "db '%s': cannot prepare statements: %s",
		     s->path, sqlite3_errmsg(s->db));
		goto fail;
	}
	if (sqlite3_db_readonly(s->db, "main") == 1)
		log_warn("store: db '%s' is read-only: until it is writable, "
		         "ticks are held as far as the queue goes and the rest "
		         "is not stored",
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

int
store_load_state(struct store *s,
                 void (*fn)(const struct symbol_state *st, void *ctx),
                 void *ctx)
{
	/* The writer's states were restored from the state table on open and
	 * are what the writer continues from; once the writer runs, they are
	 * the writer's alone. */
	if (!s || !fn || s->started)
		return -1;
	state_table_foreach(s->states, fn, ctx);
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

/* Writer thread: put queued restored states into the writer's states,
 * never between a batch's preparation and its commit; the gaps they close
 * wait in pending_gaps for the next transaction. */
void
store__apply_restores(struct store *s)
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
		if (state_table_restore(s->states, &r[i].st)) {
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
				log_error(
				        "store: out of memory: the gap of "
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

int
store_rewind(struct store *s, const struct sink_cut *cuts, size_t n,
             sink_rewind_done_fn done, void *ctx)
{
	struct sink_cut *copy = malloc((n ? n : 1) * sizeof *copy);
	int rc = -1;

	if (!copy)
		return -1;
	memcpy(copy, cuts, n * sizeof *copy);
	pthread_mutex_lock(&s->mu);
	if (!s->stopping && s->nrewinds == s->rewinds_cap) {
		size_t cap = s->rewinds_cap ? s->rewinds_cap * 2 : 4;
		struct rewind *p = realloc(s->rewinds, cap * sizeof *p);

		if (p) {
			s->rewinds = p;
			s->rewinds_cap = cap;
		}
	}
	if (!s->stopping && s->nrewinds < s->rewinds_cap) {
		struct rewind *rw = &s->rewinds[s->nrewinds++];

		rw->at = s->appended;
		rw->cuts = copy;
		rw->ncuts = n;
		rw->done = done;
		rw->ctx = ctx;
		copy = NULL;
		rc = 0;
	}
	pthread_mutex_unlock(&s->mu);
	free(copy);
	if (!rc)
		pthread_cond_signal(&s->cond);
	return rc;
}

bool
store__rewind_due(const struct store *s)
{
	return s->nrewinds && s->rewinds[0].at == s->released;
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
	s->appended += n;
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

		/* A rewind whose ticks are written: its turn. */
		if (store__rewind_due(s))
			break;
		if (s->count) {
			int64_t due = s->enq_us[s->head] + s->commit_us;

			/* A full queue is written at once: waiting would
			 * only hold up a replay or make a live feed drop.
			 * So are the ticks before a rewind, which a replay
			 * waits for, and seq reservations, which ticks may
			 * wait for. */
			if (s->stopping || s->count >= BATCH_MAX ||
			    s->count == s->cap || now >= due || s->nrewinds ||
			    s->resv_asked.nsteps) {
				n = s->count < BATCH_MAX ? s->count : BATCH_MAX;
				/* Not past a rewind: it runs between. */
				if (s->nrewinds &&
				    n > s->rewinds[0].at - s->released)
					n = (size_t)(s->rewinds[0].at -
					             s->released);
				break;
			}
			deadline = due;
		} else if (s->nrestores || s->npending_gaps ||
		           s->resv_asked.nsteps) {
			/* Restored states (and the gaps they close), or seq
			 * reservations, to write, with or without ticks. */
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
		store__apply_restores(s);
		if (n || s->npending_gaps || store__resv_asked(s))
			store__writer_batch(s, n);
		store__rewind_step(s);
		if (s->db && clock_mono_us() >= s->next_retain_us &&
		    !writer_stopping(s))
			store__retention_step(s);
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

uint64_t
store_close(struct store *s)
{
	uint64_t unwritten;
	size_t i;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	s->stop_us = clock_mono_us();
	pthread_mutex_unlock(&s->mu);
	if (s->started) {
		pthread_cond_broadcast(&s->cond);
		pthread_join(s->writer, NULL);
	} else if (s->db && s->states && (s->count || s->resv_asked.nsteps)) {
		/* Never started: write what was queued on this thread. */
		s->next_retain_us = INT64_MAX;
		writer_main(s);
	}
	/* Dropped ticks whose gap was never recorded: the store stopped
	 * before it caught up, or gave up. */
	unwritten = s->unwritten;
	for (i = 0; i < s->ngaps; i++)
		unwritten += s->gaps[i].ticks;
	for (i = 0; i < s->nrestores; i++)
		if (s->restores[i].has_gap)
			unwritten += s->restores[i].gap.ticks;
	if (unwritten > s->unwritten)
		log_error("store: db '%s': %llu ticks dropped while the store "
		          "was behind were not recorded as gaps (it stopped "
		          "before catching up)",
		          s->path,
		          (unsigned long long)(unwritten - s->unwritten));
	store__finalize_all(s->stmt, W_COUNT);
	if (s->db)
		sqlite3_close(s->db);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	state_table_destroy(s->states);
	store__sym_table_free(&s->syms);
	free(s->batch.items);
	free(s->batch.order);
	free(s->batch.groups);
	free(s->restores);
	store__rewinds_free(s);
	free(s->gaps);
	free(s->gap_slots);
	free(s->pending_gaps);
	free(s->batch.gaps);
	store__resv_list_free(&s->resv_asked);
	store__resv_list_free(&s->resv_granted);
	store__resv_list_free(&s->batch.resv);
	free(s->batch.resv_rows);
	free(s->ring);
	free(s->enq_us);
	free(s->path);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mu);
	free(s);
	return unwritten;
}

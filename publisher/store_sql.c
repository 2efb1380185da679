/*
 * store_sql.c: the SQLite helpers the store's files share: statements,
 * errors in words, the schema check, and how a tick's decimal scales are
 * packed in one column.
 */
#include "store_private.h"

int64_t
store__sat_add(int64_t a, int64_t b)
{
	if (b > 0 && a > INT64_MAX - b)
		return INT64_MAX;
	if (b < 0 && a < INT64_MIN - b)
		return INT64_MIN;
	return a + b;
}

/* a - b for a >= b, without overflow for any int64 pair. */
int64_t
store__span(int64_t a, int64_t b)
{
	uint64_t d = (uint64_t)a - (uint64_t)b;

	return a <= b ? 0 : d > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)d;
}

/* Scales of the fields in `present`, 5 bits each (see schema/001_init). */
int64_t
store__scales_pack(const struct decimal *v, uint16_t present, int nfields)
{
	uint64_t packed = 0;
	int f;

	for (f = 0; f < nfields; f++)
		if ((present >> f) & 1u)
			packed |= (uint64_t)(v[f].scale & SCALE_MASK)
			          << (f * SCALE_BITS);
	return (int64_t)packed;
}

uint8_t
store__scale_of(int64_t packed, int f)
{
	return (uint8_t)(((uint64_t)packed >> (f * SCALE_BITS)) & SCALE_MASK);
}

/* What to do about an SQLite error, in words. */
const char *
store__error_hint(int rc)
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
int
store__query_int64(sqlite3 *db, const char *sql, int64_t *out, bool *had_row)
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

int
store__prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
	return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out,
	                          NULL);
}

/* Step a statement that returns no rows, then reset it. */
int
store__step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

void
store__finalize_all(sqlite3_stmt **stmts, size_t n)
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
int
store__check_schema(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	const int latest = schema_migration_count;
	int64_t version = 0, objects = 0;
	int rc;

	rc = store__query_int64(db, "PRAGMA user_version", &version, NULL);
	if (rc == SQLITE_OK)
		rc = store__query_int64(db,
		                        "SELECT count(*) FROM sqlite_schema",
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
		            sqlite3_errmsg(db), store__error_hint(rc));
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
void
store__dir_of(const char *path, char *out, size_t len)
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

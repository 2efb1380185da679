-- 005_imports: what `publisher import` has loaded, input by input.
--
-- An import is idempotent by what was imported, never by comparing ticks (a
-- row that is twice in a file is two real ticks): each input is known by
-- the SHA-256 of its bytes. Its row is written in the same transaction as
-- the ticks it accounts for, so after a crash (kill -9, power) it says
-- exactly how far the import got: the first byte_offset bytes, lines_read
-- lines, of the input are taken (their ticks stored, their bad lines
-- counted), and nothing after them. Importing the same content again
-- resumes there, or, once done = 1, adds nothing. Times are µs since the
-- Unix epoch.
CREATE TABLE imports (
	hash TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	size INTEGER NOT NULL,
	byte_offset INTEGER NOT NULL,
	lines_read INTEGER NOT NULL,
	rows INTEGER NOT NULL,
	bad_lines INTEGER NOT NULL,
	done INTEGER NOT NULL,
	started_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) WITHOUT ROWID;

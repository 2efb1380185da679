/*
 * import: the `publisher import FILE... --db DB` command: tick files (CSV
 * or JSONL, as export writes and replay reads; "-" for standard input)
 * loaded into a database at full speed, then exit.
 *
 * Idempotent by what was imported, never by comparing ticks (a row that is
 * twice in a file is two real ticks). Each input is known by the SHA-256
 * of its bytes, and the database records, in the same transaction as the
 * ticks, how far each input got (schema/005, store.h "importing"). So:
 *  - the same bytes imported again (under any name) add nothing;
 *  - an import that was killed resumes where its last commit left off and
 *    ends with the input stored once;
 *  - standard input (or any pipe) is read to its end first, into an
 *    unlinked temporary file beside the database, and hashed as it is
 *    read; it is then imported as a file of those bytes, so the same bytes
 *    piped again add nothing, and a run killed after reading them resumes.
 *    A stream that never ends is never imported: that is `serve --feed
 *    stdin`.
 *
 * Bad lines (a negative ts among them) are refused and reported with their
 * line numbers, as replay does; they are not ticks, so they do not make
 * the import fail. Seqs continue each symbol's; a tick older than the
 * newest its symbol holds goes into history without moving the symbol's
 * state back (store.h).
 *
 * Output: a progress line on stderr when asked (a terminal), warnings for
 * bad lines on stderr, and one summary line on stdout at the end.
 *
 * Owns, while import_run() runs: the store it opens (the -lock flock, so a
 * running server's database is refused), a reader thread that parses
 * blocks of lines ahead of the writing thread, and the temporary copy of
 * standard input. Called by main.c for `publisher import`.
 */
#ifndef PUBLISHER_IMPORT_H
#define PUBLISHER_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "symbol_state.h"

#define IMPORT_MAX_FILES 256

struct import_options {
	const char *db;
	const char *files[IMPORT_MAX_FILES]; /* "-": standard input */
	size_t file_count;
	bool progress; /* draw the progress line on stderr */
	/* Where trading sessions begin, for the stored states (the rule a
	 * server on this database folds with; its ctx must outlive the
	 * run). Zero: UTC days. */
	struct session_rule sessions;
};

/* What one run did. */
struct import_result {
	uint64_t rows;      /* ticks stored by this run */
	uint64_t bad_lines; /* lines refused by this run */
	size_t inputs_done; /* inputs stored (or found stored) in full */
	size_t skipped;     /* of those, already imported before */
	double seconds;
};

/*
 * Import opt->files into opt->db, in order, and print the summary. Stops
 * at the first input that cannot be read or stored: what earlier inputs
 * (and earlier commits of that one) stored stays, and importing again
 * goes on from there. Returns 0 when every input is stored (bad lines
 * aside), or -1 with the cause in err (a missing file, a database in use
 * by a running server, a full disk). res may be NULL.
 */
int import_run(const struct import_options *opt, struct import_result *res,
               char *err, size_t errlen);

#endif

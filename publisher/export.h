/*
 * export: the `publisher export` command: stored ticks written out as a tick
 * file, in exactly the format the replay feed reads back (tick_file.h), so
 * that export then replay gives back the same ticks. The lines are
 * tick_file's; this module opens the database and the output and streams
 * from one to the other.
 *
 * What it owns: for the length of export_run() only, a read-only
 * store_reader on the database, the output file (under a temporary name
 * until it is complete) and one buffer of output; nothing outlives the
 * call.
 *
 * Who calls it: main.c, for `publisher export`, on its own thread (no
 * loop, no server). GET /api/export is query.c's, not this.
 */
#ifndef PUBLISHER_EXPORT_H
#define PUBLISHER_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What `publisher export` writes: the ticks of opt->db in [from, to],
 * of the given symbols (none: every symbol). */
#define EXPORT_MAX_SYMBOLS 64

struct export_options {
	const char *db;
	const char *symbols[EXPORT_MAX_SYMBOLS];
	size_t symbol_count;
	int64_t from, to;   /* µs; 0 / INT64_MAX when absent */
	bool jsonl;	    /* false: csv (the default) */
	const char *output; /* NULL = stdout */
	bool progress;      /* a progress line on stderr (progress.h) */
};

/*
 * `publisher export`: stream the ticks opt selects from opt->db to
 * opt->output (NULL = standard output), oldest first, holding one buffer of
 * output at a time, never the whole result. A file output is written under
 * a temporary name and renamed into place when complete, so a failed export
 * never leaves a truncated file that looks whole.
 * Returns 0, or -1 with the cause in err (a missing database, a newer
 * schema, a write error), naming the path.
 */
int export_run(const struct export_options *opt, char *err, size_t errlen);

#endif

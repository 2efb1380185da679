/*
 * export: stored ticks written as a tick file, in exactly the format the
 * replay feed reads back (feeds/tick_parse.h), so that export then replay
 * gives back the same ticks.
 *
 *   CSV:   ts,symbol,bid,ask,bid_size,ask_size,last,last_size,volume
 *          1709303400123456,AAPL,189.33,189.35,100,,,,
 *   JSONL: {"ts":1709303400123456,"symbol":"AAPL","bid":189.33,...}
 *
 * An absent field is an empty CSV cell, or left out of the JSON object.
 * Decimals are written from their mantissa and scale, never through a
 * double: 189.30 stays 189.30. There is no seq column: seqs belong to the
 * database that assigned them, and the parser refuses unknown fields.
 *
 * The writers append to a jsonbuf (see jsonbuf.h for allocation failure);
 * the server's /api/export streams with them too.
 */
#ifndef PUBLISHER_EXPORT_H
#define PUBLISHER_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jsonbuf.h"
#include "tick.h"

/* The CSV header row, with its newline. */
void export_write_csv_header(struct jsonbuf *b);

/* One tick as one line (with its newline): JSONL when jsonl, else a CSV row
 * that goes under export_write_csv_header(). */
void export_write_tick(struct jsonbuf *b, bool jsonl, const struct tick *t);

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

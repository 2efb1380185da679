/*
 * tick_file: the tick file format, read and written.
 *
 * A tick file is what `publisher export` and /api/export write, what the
 * replay feed plays back, and what a producer sends on stdin or TCP; a
 * Redis stream entry holds one JSONL line of it. This module owns the
 * format both ways: tick_file_read.c parses lines into ticks (the feeds
 * and import call it), tick_file_write.c appends ticks as lines to a
 * jsonbuf (export, the query workers, the HTTP API and the Redis link call
 * it). What one writes the other reads back to the same tick, digit for
 * digit.
 *
 *   JSONL: {"ts":1709303400123456,"symbol":"AAPL","bid":189.33,"ask":189.35}
 *   CSV:   a header row "ts,symbol,<fields in any order>", then rows; an empty
 *          cell means the field is absent. Written with the columns
 *          ts,symbol,bid,ask,bid_size,ask_size,last,last_size,volume
 *          1709303400123456,AAPL,189.33,189.35,100,,,,
 *
 * Numbers are read from their text and written from their mantissa and
 * scale (never through a double), so 189.30 stays 189.30. ts may also be an
 * ISO 8601 string when read (time_parse.h); it is written as integer µs.
 * Unknown JSON members are an error (a typo in a field name must not
 * silently drop data), so there is no seq column: seqs belong to the
 * database that assigned them.
 *
 * It owns no state of its own: a parser is the caller's struct, which holds
 * the CSV header it has seen; it is not thread-safe but costs nothing to
 * create on the stack. No allocation. The writers append to the caller's
 * jsonbuf (see jsonbuf.h for allocation failure).
 */
#ifndef PUBLISHER_TICK_FILE_H
#define PUBLISHER_TICK_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "jsonbuf.h"
#include "tick.h"

#define TICK_PARSE_MAX_COLUMNS 16

/* ------------------------------------------------------------- reading */

enum tick_format { TICK_FORMAT_UNKNOWN, TICK_FORMAT_JSONL, TICK_FORMAT_CSV };

struct tick_parser {
	enum tick_format format; /* UNKNOWN until the first non-empty line */
	bool have_header;	 /* CSV: header row read */
	int columns;		 /* CSV: number of columns */
	/* CSV: what each column holds: -2 ts, -3 symbol, else an enum tick_field */
	int column_field[TICK_PARSE_MAX_COLUMNS];
};

enum tick_parse_result {
	TICK_PARSE_OK,	   /* *out holds a tick */
	TICK_PARSE_SKIP,   /* blank line, comment (#) or CSV header: no tick */
	TICK_PARSE_ERROR,  /* bad line: reason says why */
};

/* format: JSONL or CSV when known (e.g. from a file extension), or UNKNOWN to
 * detect from the first non-empty line ('{' → JSONL, else CSV). */
void
tick_parser_init(struct tick_parser *p, enum tick_format format);

/*
 * Parse one line (without its newline; a trailing '\r' is ignored).
 * On error, reason (reason_len bytes) gets a message naming the problem,
 * e.g. "field 'bid': '18x.5' is not a decimal number", "missing \"symbol\"",
 * "CSV row has 5 cells; the header has 4".
 */
enum tick_parse_result
tick_parse_line(struct tick_parser *p, const char *line, size_t len,
		struct tick *out, char *reason, size_t reason_len);

/* ------------------------------------------------------------- writing */

/* The CSV header row, with its newline. */
void
tick_file_write_csv_header(struct jsonbuf *b);

/* One tick as one line, with its newline: JSONL when jsonl, else a CSV row
 * that goes under tick_file_write_csv_header(). */
void
tick_file_write_line(struct jsonbuf *b, bool jsonl, const struct tick *t);

/* One tick as its JSON object alone, without a newline: a JSONL line's
 * text, as a Redis stream entry holds it. */
void
tick_file_write_json(struct jsonbuf *b, const struct tick *t);

#endif

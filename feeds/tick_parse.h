/*
 * tick_parse: one line of a tick file or a producer's stream into a struct
 * tick, with exact decimals.
 *
 *   JSONL: {"ts":1709303400123456,"symbol":"AAPL","bid":189.33,"ask":189.35}
 *   CSV:   a header row "ts,symbol,<fields in any order>", then rows; an empty
 *          cell means the field is absent.
 *
 * Numbers are read from their text (never through a double), so 189.35 stays
 * 189.35. ts may also be an ISO 8601 string in JSONL. Unknown JSON members are
 * an error (a typo in a field name must not silently drop data).
 *
 * A parser holds the CSV header it has seen; it is not thread-safe but costs
 * nothing to create on the stack. No allocation.
 */
#ifndef PUBLISHER_TICK_PARSE_H
#define PUBLISHER_TICK_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "../publisher/tick.h"

#define TICK_PARSE_MAX_COLUMNS 16

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

#endif

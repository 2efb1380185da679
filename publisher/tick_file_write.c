/*
 * tick_file_write: ticks appended as tick-file lines (see tick_file.h).
 *
 * The column order of the CSV is the field order of enum tick_field, so a
 * row is written by one walk over the fields, and a JSON object by the same
 * walk over the fields the tick has. An export writes one line per stored
 * tick and the Redis publisher one object per published tick, so these are
 * appends to a jsonbuf and nothing else: no allocation of their own, no
 * printf.
 */
#include "tick_file.h"

#include <string.h>

void
tick_file_write_csv_header(struct jsonbuf *b)
{
	int f;

	jsonbuf_append_str(b, "ts,symbol");
	for (f = 0; f < TICK_FIELD_COUNT; f++) {
		jsonbuf_append_char(b, ',');
		jsonbuf_append_str(b, tick_field_name((enum tick_field)f));
	}
	jsonbuf_append_char(b, '\n');
}

void
tick_file_write_json(struct jsonbuf *b, const struct tick *t)
{
	int f;

	jsonbuf_append_str(b, "{\"ts\":");
	jsonbuf_append_i64(b, t->ts);
	jsonbuf_append_str(b, ",\"symbol\":");
	jsonbuf_append_quoted(b, t->symbol,
	                      strnlen(t->symbol, sizeof t->symbol));
	for (f = 0; f < TICK_FIELD_COUNT; f++) {
		if (!tick_has(t, (enum tick_field)f))
			continue;
		jsonbuf_append_char(b, ',');
		jsonbuf_append_key(b, tick_field_name((enum tick_field)f));
		jsonbuf_append_decimal(b, t->value[f]);
	}
	jsonbuf_append_char(b, '}');
}

/* A valid symbol has no comma, quote or newline, so it needs no CSV
 * quoting. */
static void
write_csv_row(struct jsonbuf *b, const struct tick *t)
{
	int f;

	jsonbuf_append_i64(b, t->ts);
	jsonbuf_append_char(b, ',');
	jsonbuf_append(b, t->symbol, strnlen(t->symbol, sizeof t->symbol));
	for (f = 0; f < TICK_FIELD_COUNT; f++) {
		jsonbuf_append_char(b, ',');
		if (tick_has(t, (enum tick_field)f))
			jsonbuf_append_decimal(b, t->value[f]);
	}
}

void
tick_file_write_line(struct jsonbuf *b, bool jsonl, const struct tick *t)
{
	if (jsonl)
		tick_file_write_json(b, t);
	else
		write_csv_row(b, t);
	jsonbuf_append_char(b, '\n');
}

/*
 * Shared by fuzz_tick_jsonl.c and fuzz_tick_csv.c: feed lines to a
 * tick_parser one at a time, each in a heap buffer of exactly its length so
 * that AddressSanitizer catches any read past the end of a line (the parser
 * takes lines that are not NUL-terminated), and check what comes back.
 */
#ifndef FUZZ_TICK_FUZZ_H
#define FUZZ_TICK_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tick_file.h"

/* What a parsed tick and a reason must always satisfy. */
static void
check_result(enum tick_parse_result r, const struct tick *t, const char *reason,
             size_t reason_len)
{
	size_t n = strnlen(reason, reason_len), i, f;

	if (n == reason_len)
		abort(); /* not terminated inside its buffer */
	/* tick_file.h: a hostile line cannot put control bytes in the log. */
	for (i = 0; i < n; i++)
		if ((unsigned char)reason[i] < 0x20 || reason[i] == 0x7f)
			abort();
	if (r == TICK_PARSE_ERROR && n == 0)
		abort(); /* an error always says why */
	if (r != TICK_PARSE_OK)
		return;
	if (!tick_symbol_valid(t->symbol,
	                       strnlen(t->symbol, TICK_SYMBOL_MAX + 1)))
		abort();
	if (t->present == 0 || (t->present >> TICK_FIELD_COUNT) != 0)
		abort();
	for (f = 0; f < TICK_FIELD_COUNT; f++)
		if (tick_has(t, (enum tick_field)f) &&
		    t->value[f].scale > DECIMAL_MAX_SCALE)
			abort();
}

static void
parse_one(struct tick_parser *p, const char *line, size_t len)
{
	char reason[128];
	char *copy = malloc(len ? len : 1);
	enum tick_parse_result r;
	struct tick t;

	if (!copy)
		return;
	memcpy(copy, line, len);
	reason[0] = '\0';
	r = tick_parse_line(p, copy, len, &t, reason, sizeof reason);
	check_result(r, &t, reason, sizeof reason);
	free(copy);
}

/* Every '\n'-separated line of data[0..size), the last one unterminated. */
static void
parse_lines(struct tick_parser *p, const uint8_t *data, size_t size)
{
	const char *s = (const char *)data, *end = s + size;

	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);

		parse_one(p, s, len);
		s += len + (nl ? 1 : 0);
	}
}

#endif

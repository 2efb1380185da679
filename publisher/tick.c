/*
 * tick: field names and symbol validation.
 */
#include "tick.h"

#include <string.h>

/* Indexed by enum tick_field; the order is the wire order of the fields. */
static const char *const field_names[STATE_FIELD_COUNT] = {
        [FIELD_BID] = "bid",           [FIELD_ASK] = "ask",
        [FIELD_BID_SIZE] = "bid_size", [FIELD_ASK_SIZE] = "ask_size",
        [FIELD_LAST] = "last",         [FIELD_LAST_SIZE] = "last_size",
        [FIELD_VOLUME] = "volume",     [FIELD_OPEN] = "open",
        [FIELD_HIGH] = "high",         [FIELD_LOW] = "low",
        [FIELD_TRADES] = "trades",     [FIELD_PREV_CLOSE] = "prev_close",
};

const char *
tick_field_name(enum tick_field f)
{
	if ((unsigned)f >= STATE_FIELD_COUNT)
		return "?";
	return field_names[f];
}

int
tick_field_lookup(const char *name, size_t len)
{
	int f;

	if (!name)
		return -1;
	for (f = 0; f < TICK_FIELD_COUNT; f++) {
		const char *n = field_names[f];

		if (strlen(n) == len && memcmp(n, name, len) == 0)
			return f;
	}
	return -1;
}

bool
tick_symbol_valid(const char *s, size_t len)
{
	size_t i;

	if (!s || len == 0 || len > TICK_SYMBOL_MAX)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9'))
			continue;
		if (c == '.' || c == '_' || c == ':' || c == '/' || c == '-')
			continue;
		return false;
	}
	return true;
}

/*
 * libFuzzer target: the query string of /api/export and /api/bars through
 * http_query (http_query.h), split at '&' the way lws hands the arguments
 * over (lws has decoded them, so any byte, NUL included, can be in one).
 * The first byte picks the endpoint.
 *
 * An accepted query must be one the server can run: symbols valid and
 * within the endpoint's count, bars with exactly one symbol and a known
 * interval, from not after to. A refusal must say why in one line of
 * printable ASCII, since it goes back to the client as the 400 body.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_query.h"
#include "protocol.h"
#include "tick.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_message(const char *err, size_t errlen)
{
	size_t n = strnlen(err, errlen);

	if (n == 0 || n == errlen)
		abort();
	for (size_t i = 0; i < n; i++)
		if (err[i] < 0x20 || err[i] > 0x7e)
			abort();
}

static void
check_spec(const struct query_spec *q)
{
	size_t i;

	if (q->symbol_count > QUERY_MAX_SYMBOLS)
		abort();
	for (i = 0; i < q->symbol_count; i++) {
		size_t n = strnlen(q->symbols[i], TICK_SYMBOL_MAX + 1);

		if (n > TICK_SYMBOL_MAX || !tick_symbol_valid(q->symbols[i], n))
			abort();
	}
	if (q->from > q->to)
		abort();
	if (q->kind == QUERY_BARS) {
		if (q->symbol_count != 1)
			abort();
		if (strnlen(q->interval, sizeof q->interval) ==
		            sizeof q->interval ||
		    q->interval_us <= 0 ||
		    q->interval_us != protocol_interval_us(q->interval))
			abort();
	} else if (q->kind != QUERY_EXPORT || q->interval_us) {
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p, *end, *amp;
	struct http_query q;
	char err[256];
	int rc = 0;

	if (size < 1)
		return 0;
	http_query_init(&q, data[0] & 1 ? QUERY_BARS : QUERY_EXPORT);
	p = (const char *)data + 1;
	end = (const char *)data + size;
	while (!rc && p <= end) {
		amp = memchr(p, '&', (size_t)(end - p));
		if (!amp)
			amp = end;
		rc = http_query_arg(&q, p, (size_t)(amp - p), err, sizeof err);
		p = amp + 1;
	}
	if (!rc)
		rc = http_query_finish(&q, err, sizeof err);
	if (rc)
		check_message(err, sizeof err);
	else
		check_spec(&q.spec);
	return 0;
}

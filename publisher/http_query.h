/*
 * http_query: the arguments of GET /api/export and GET /api/bars, read into
 * a query_spec (query.h).
 *
 * No libwebsockets here: the caller hands over each argument as lws split
 * and URL-decoded it ("symbol=AAPL", escapes already decoded), so a unit
 * test and a fuzzer drive the very code the server runs.
 *
 * Every argument must be one the endpoint knows, given once (symbol= may
 * repeat) and with a valid value. Anything else is refused with a message
 * naming the argument, never skipped for a default: a typo such as
 * "intreval=5m", or a value too long to read, would otherwise be answered
 * with 1-minute bars as if nothing had been asked.
 *
 *   both     symbol=S (export: up to QUERY_MAX_SYMBOLS, bars: exactly one),
 *            from=T, to=T (µs or ISO 8601, see time_parse.h), limit=N (> 0),
 *            token=… (read and checked by admission.c, ignored here)
 *   export   format=csv|jsonl (csv when absent)
 *   bars     interval=1s|1m|5m|1h|1d (1m when absent)
 *
 * What it owns: nothing. Pure: no allocation, no lock, no global state;
 * the arguments are copied into the caller's struct http_query.
 *
 * Who calls it: http_api.c, for each GET /api/export and /api/bars, on
 * the loop's thread, before it hands the query_spec to query_submit().
 * tests/unit/test_http_query.c and tests/fuzz/fuzz_http_query.c drive it
 * too.
 */
#ifndef PUBLISHER_HTTP_QUERY_H
#define PUBLISHER_HTTP_QUERY_H

#include <stddef.h>

#include "query.h"

/* The longest value read (a symbol is at most 32, an ISO time about 35);
 * token= is not bounded here (admission.c reads it). */
#define HTTP_QUERY_VALUE_MAX 64

struct http_query {
	struct query_spec spec; /* the answer, complete after finish */
	unsigned seen;          /* arguments given so far, one bit each */
};

/* Start reading the arguments of kind QUERY_EXPORT or QUERY_BARS. */
void
http_query_init(struct http_query *q, enum query_kind kind);

/*
 * One argument, arg[0..len) ("name=value"; no NUL needed, and a NUL inside
 * is refused). An empty argument (from "a=1&&b=2") is skipped. Returns 0,
 * or -1 with one line (no newline) naming the argument in err, for a 400
 * body. After -1 the query is not to be used.
 */
int
http_query_arg(struct http_query *q, const char *arg, size_t len, char *err,
               size_t errlen);

/*
 * After the last argument: the checks that need all of them (bars needs a
 * symbol, from must not be after to) and the defaults (to = INT64_MAX,
 * interval 1m). Returns 0 with q->spec ready for query_submit(), or -1 with
 * the reason in err.
 */
int
http_query_finish(struct http_query *q, char *err, size_t errlen);

#endif

/*
 * http_query: the arguments of /api/export and /api/bars (see
 * http_query.h).
 *
 * One table says which argument each endpoint takes, whether it may repeat
 * and what reads its value. The text a client sent is quoted back in an
 * error only as printable ASCII, cut short: a 400 body must not carry
 * control bytes or a megabyte of someone's URL back to them.
 */
#include "http_query.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "errbuf.h"
#include "protocol.h"
#include "tick.h"
#include "time_parse.h"

/* How much of a client's text an error quotes. */
#define QUOTE_MAX 40

#define FOR_EXPORT (1u << QUERY_EXPORT)
#define FOR_BARS   (1u << QUERY_BARS)

/* s[0..len) as printable ASCII for a message: other bytes as \xNN, and
 * "..." when longer than QUOTE_MAX. */
static const char *
quote(char *out, size_t outlen, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, n = 0;

	for (i = 0; i < len && i < QUOTE_MAX && n + 5 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			out[n++] = (char)c;
		} else {
			out[n++] = '\\';
			out[n++] = 'x';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		}
	}
	if (i < len && n + 4 <= outlen) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

/* Room for quote() of anything. */
#define QUOTED (QUOTE_MAX * 4 + 4)

typedef int (*read_value)(struct http_query *q, const char *v, size_t len,
                          char *err, size_t errlen);

static int
read_symbol(struct http_query *q, const char *v, size_t len, char *err,
            size_t errlen)
{
	size_t max = q->spec.kind == QUERY_BARS ? 1 : QUERY_MAX_SYMBOLS;
	char shown[QUOTED];

	if (!tick_symbol_valid(v, len))
		return errf(
		        err, errlen,
		        "symbol='%s' is not a valid symbol (1-32 of A-Z a-z "
		        "0-9 . _ : / -)",
		        quote(shown, sizeof shown, v, len));
	if (q->spec.symbol_count == max)
		return errf(err, errlen,
		            "too many symbol= arguments (at most %zu)", max);
	memcpy(q->spec.symbols[q->spec.symbol_count], v, len);
	q->spec.symbols[q->spec.symbol_count][len] = '\0';
	q->spec.symbol_count++;
	return 0;
}

static int
read_time(const char *name, int64_t *us, const char *v, size_t len, char *err,
          size_t errlen)
{
	char shown[QUOTED];

	if (time_parse(v, len, us))
		return errf(
		        err, errlen,
		        "%s='%s' is not a time: use integer microseconds or "
		        "ISO 8601 like 2024-03-01T14:30:00Z",
		        name, quote(shown, sizeof shown, v, len));
	return 0;
}

static int
read_from(struct http_query *q, const char *v, size_t len, char *err,
          size_t errlen)
{
	return read_time("from", &q->spec.from, v, len, err, errlen);
}

static int
read_to(struct http_query *q, const char *v, size_t len, char *err,
        size_t errlen)
{
	return read_time("to", &q->spec.to, v, len, err, errlen);
}

static int
read_limit(struct http_query *q, const char *v, size_t len, char *err,
           size_t errlen)
{
	uint64_t n = 0;
	char shown[QUOTED];
	size_t i;

	/* Digits only: strtoul() would take spaces, a sign and wrap. */
	for (i = 0; i < len && n <= UINT32_MAX; i++) {
		if (v[i] < '0' || v[i] > '9')
			break;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	if (!len || i < len || n == 0 || n > UINT32_MAX)
		return errf(err, errlen,
		            "limit='%s' must be a positive integer (at most "
		            "4294967295)",
		            quote(shown, sizeof shown, v, len));
	q->spec.limit = (uint32_t)n;
	return 0;
}

static int
read_format(struct http_query *q, const char *v, size_t len, char *err,
            size_t errlen)
{
	char shown[QUOTED];

	if (len == 3 && !memcmp(v, "csv", 3))
		q->spec.jsonl = false;
	else if (len == 5 && !memcmp(v, "jsonl", 5))
		q->spec.jsonl = true;
	else
		return errf(err, errlen, "format='%s': use csv or jsonl",
		            quote(shown, sizeof shown, v, len));
	return 0;
}

static int
read_interval(struct http_query *q, const char *v, size_t len, char *err,
              size_t errlen)
{
	char name[sizeof q->spec.interval], shown[QUOTED];

	if (len < sizeof name) {
		memcpy(name, v, len);
		name[len] = '\0';
		q->spec.interval_us = protocol_interval_us(name);
	}
	if (len >= sizeof name || !q->spec.interval_us)
		return errf(err, errlen,
		            "interval='%s': use 1s, 1m, 5m, 1h or 1d",
		            quote(shown, sizeof shown, v, len));
	memcpy(q->spec.interval, name, len + 1);
	return 0;
}

/* The arguments, in the order an error lists them. */
enum arg {
	ARG_SYMBOL,
	ARG_FROM,
	ARG_TO,
	ARG_LIMIT,
	ARG_FORMAT,
	ARG_INTERVAL,
	ARG_TOKEN,
	ARG_COUNT
};

static const struct arg_rule {
	const char *name;
	unsigned endpoints; /* FOR_EXPORT, FOR_BARS */
	bool repeats;
	read_value read; /* NULL: another module's argument */
	bool unbounded;  /* no HTTP_QUERY_VALUE_MAX */
} rules[ARG_COUNT] = {
        [ARG_SYMBOL] = {"symbol", FOR_EXPORT | FOR_BARS, true, read_symbol,
                        false},
        [ARG_FROM] = {"from", FOR_EXPORT | FOR_BARS, false, read_from, false},
        [ARG_TO] = {"to", FOR_EXPORT | FOR_BARS, false, read_to, false},
        [ARG_LIMIT] = {"limit", FOR_EXPORT | FOR_BARS, false, read_limit,
                       false},
        [ARG_FORMAT] = {"format", FOR_EXPORT, false, read_format, false},
        [ARG_INTERVAL] = {"interval", FOR_BARS, false, read_interval, false},
        /* The token (admission.c): a JWT is longer than any value here. */
        [ARG_TOKEN] = {"token", FOR_EXPORT | FOR_BARS, false, NULL, true},
};

static const char *
endpoint_name(enum query_kind kind)
{
	return kind == QUERY_BARS ? "/api/bars" : "/api/export";
}

/* "symbol, from, to, limit, interval": what the endpoint takes. */
static void
list_names(enum query_kind kind, char *out, size_t outlen)
{
	size_t i, n = 0;

	out[0] = '\0';
	for (i = 0; i < ARG_COUNT; i++) {
		int w;

		if (!(rules[i].endpoints & (1u << kind)) || !rules[i].read)
			continue;
		w = snprintf(out + n, outlen - n, "%s%s", n ? ", " : "",
		             rules[i].name);
		if (w < 0 || (size_t)w >= outlen - n)
			return;
		n += (size_t)w;
	}
}

void
http_query_init(struct http_query *q, enum query_kind kind)
{
	memset(q, 0, sizeof *q);
	q->spec.kind = kind;
}

int
http_query_arg(struct http_query *q, const char *arg, size_t len, char *err,
               size_t errlen)
{
	const char *eq = len ? memchr(arg, '=', len) : NULL;
	size_t name_len = eq ? (size_t)(eq - arg) : len;
	const char *v = eq ? eq + 1 : NULL;
	size_t vlen = eq ? len - name_len - 1 : 0;
	const char *where = endpoint_name(q->spec.kind);
	char shown[QUOTED], names[96];
	size_t i;

	if (!len)
		return 0;
	for (i = 0; i < ARG_COUNT; i++)
		if (strlen(rules[i].name) == name_len &&
		    !memcmp(rules[i].name, arg, name_len) &&
		    (rules[i].endpoints & (1u << q->spec.kind)))
			break;
	if (i == ARG_COUNT) {
		list_names(q->spec.kind, names, sizeof names);
		return errf(err, errlen, "unknown argument '%s': %s takes %s",
		            quote(shown, sizeof shown, arg, name_len), where,
		            names);
	}
	if (!eq)
		return errf(err, errlen,
		            "argument '%s' has no value: write %s=...",
		            rules[i].name, rules[i].name);
	if (!rules[i].repeats && (q->seen & (1u << i)))
		return errf(err, errlen, "%s= is given twice: give it once",
		            rules[i].name);
	q->seen |= 1u << i;
	if (memchr(v, '\0', vlen))
		return errf(err, errlen, "%s='%s' holds a NUL byte",
		            rules[i].name, quote(shown, sizeof shown, v, vlen));
	if (!rules[i].unbounded && vlen > HTTP_QUERY_VALUE_MAX)
		return errf(err, errlen,
		            "%s='%s' is too long: %zu bytes, at most %d",
		            rules[i].name, quote(shown, sizeof shown, v, vlen),
		            vlen, HTTP_QUERY_VALUE_MAX);
	if (!vlen && rules[i].read)
		return errf(err, errlen, "%s= is empty: give it a value",
		            rules[i].name);
	return rules[i].read ? rules[i].read(q, v, vlen, err, errlen) : 0;
}

int
http_query_finish(struct http_query *q, char *err, size_t errlen)
{
	if (!(q->seen & (1u << ARG_TO)))
		q->spec.to = INT64_MAX;
	if (q->spec.kind == QUERY_BARS) {
		if (!q->spec.symbol_count)
			return errf(err, errlen,
			            "/api/bars needs symbol=SYMBOL");
		if (!q->spec.interval_us) {
			memcpy(q->spec.interval, "1m", 3);
			q->spec.interval_us = protocol_interval_us("1m");
		}
	}
	if (q->spec.from > q->spec.to)
		return errf(err, errlen, "from is after to: nothing can match");
	return 0;
}

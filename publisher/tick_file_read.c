/*
 * tick_file_read: one JSONL or CSV line of a tick file into a struct tick
 * (see tick_file.h).
 *
 * Hand-written because this is the hot path of a replay at full speed and of
 * a busy producer: millions of lines a second. The parser makes one pass over
 * the line, allocates nothing and reads every number from its text with
 * decimal_parse(), so a price keeps exactly the digits it came with. A JSON
 * library would allocate per line and go through doubles.
 *
 * Strings without escapes (every key and symbol in practice) are used where
 * they lie in the line; only a string with a backslash is decoded, into a
 * small buffer on the stack. No valid key, symbol or number is longer than
 * that buffer, so a longer escaped string is refused outright.
 *
 * Everything that reports a problem goes through errf(), and every piece of
 * the input quoted in a reason goes through quote(), so a hostile line cannot
 * put control characters into the log.
 */
#include "tick_file.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "errbuf.h"
#include "time_parse.h"

/* What a CSV column holds besides an enum tick_field (see tick_file.h). */
#define COLUMN_TS     (-2)
#define COLUMN_SYMBOL (-3)

/* Bits of the "seen" masks: one per input field, then ts and symbol. */
#define SEEN_TS     (1u << TICK_FIELD_COUNT)
#define SEEN_SYMBOL (1u << (TICK_FIELD_COUNT + 1))
#define SEEN_FIELDS ((1u << TICK_FIELD_COUNT) - 1)

/* Sizes and volume count things: a negative one is a broken feed. Prices
 * may be negative (spreads, some futures), so they are not checked. */
#define SIZE_FIELDS                                                            \
	((1u << FIELD_BID_SIZE) | (1u << FIELD_ASK_SIZE) |                     \
	 (1u << FIELD_LAST_SIZE) | (1u << FIELD_VOLUME))

/* Longest decoded JSON string that has escapes. */
#define STRING_BUF 128

/* Input bytes shown in a reason before it is cut with "…"; QUOTE_BUF holds
 * them even when every byte is written as \xNN. */
#define QUOTE_SHOWN 40
#define QUOTE_BUF   (QUOTE_SHOWN * 4 + 8)

#define FIELD_LIST "bid, ask, bid_size, ask_size, last, last_size, volume"

/*
 * s[0..len) made safe to print inside a reason: control bytes become \xNN
 * and text longer than QUOTE_SHOWN bytes is cut, at a UTF-8 character
 * boundary, with "…". dst holds QUOTE_BUF bytes. Returns dst.
 */
static const char *
quote(char *dst, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = len > QUOTE_SHOWN ? QUOTE_SHOWN : len, i, o = 0;

	if (n < len)
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		} else {
			dst[o++] = (char)c;
		}
	}
	if (n < len) {
		memcpy(dst + o, "…", 3);
		o += 3;
	}
	dst[o] = '\0';
	return dst;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_json_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static const char *
skip_json_ws(const char *p, const char *end)
{
	while (p < end && is_json_ws(*p))
		p++;
	return p;
}

static bool
text_is(const char *s, size_t len, const char *lit)
{
	size_t n = strlen(lit);

	return len == n && memcmp(s, lit, n) == 0;
}

/* True when s is an integer: an optional '-' and one or more digits. */
static bool
integer_shape(const char *s, size_t len)
{
	size_t i = len > 0 && s[0] == '-' ? 1 : 0;

	if (i == len)
		return false;
	for (; i < len; i++)
		if (!is_digit(s[i]))
			return false;
	return true;
}

/* An integer_shape() text that fits an int64 (INT64_MIN aside). Leading
 * zeros are the caller's business: JSON forbids them, CSV does not care. */
static int
parse_int64(const char *s, size_t len, int64_t *out)
{
	bool negative = len > 0 && s[0] == '-';
	uint64_t v = 0;
	size_t i;

	if (negative) {
		s++;
		len--;
	}
	/* 19 digits stay below 2^64, so one check at the end is enough. */
	if (len == 0 || len > 19)
		return -1;
	for (i = 0; i < len; i++)
		v = v * 10 + (uint64_t)(s[i] - '0');
	if (v > (uint64_t)INT64_MAX)
		return -1;
	*out = negative ? -(int64_t)v : (int64_t)v;
	return 0;
}

/* JSON forbids "01" and "-01"; decimal_parse() takes them. */
static bool
json_leading_zero(const char *s, size_t len)
{
	if (len > 0 && s[0] == '-') {
		s++;
		len--;
	}
	return len > 1 && s[0] == '0' && is_digit(s[1]);
}

/* True when s has the shape decimal_parse() reads: -?digits(.digits)?. */
static bool
plain_decimal_shape(const char *s, size_t len)
{
	size_t i = 0, n;

	if (i < len && s[i] == '-')
		i++;
	for (n = 0; i < len && is_digit(s[i]); i++)
		n++;
	if (n == 0)
		return false;
	if (i < len && s[i] == '.') {
		for (i++, n = 0; i < len && is_digit(s[i]); i++)
			n++;
		if (n == 0)
			return false;
	}
	return i == len;
}

/* The reason a field's text was refused, as precise as the text allows. */
static int
fail_number(char *reason, size_t reason_len, int field, const char *s,
            size_t len)
{
	char q[QUOTE_BUF];
	const char *name = tick_field_name((enum tick_field)field);

	quote(q, s, len);
	if (plain_decimal_shape(s, len))
		return errf(reason, reason_len,
		            "field '%s': '%s' has too many digits (at most %d "
		            "after the point and %d in all)",
		            name, q, DECIMAL_MAX_SCALE, DECIMAL_MAX_SCALE);
	if (len > 1 && (memchr(s, 'e', len) || memchr(s, 'E', len)) &&
	    (is_digit(s[0]) || s[0] == '-'))
		return errf(
		        reason, reason_len,
		        "field '%s': '%s' is not a decimal number (write it "
		        "without an exponent)",
		        name, q);
	return errf(reason, reason_len,
	            "field '%s': '%s' is not a decimal number", name, q);
}

/* Read a field's text into the tick. Shared by JSON and CSV. */
static int
set_field(struct tick *out, int field, const char *s, size_t len, char *reason,
          size_t reason_len)
{
	struct decimal d;

	if (decimal_parse(s, len, &d) != 0)
		return fail_number(reason, reason_len, field, s, len);
	if (d.mantissa < 0 && ((SIZE_FIELDS >> field) & 1u)) {
		char q[QUOTE_BUF];

		return errf(reason, reason_len,
		            "field '%s': '%s' is negative (sizes and volume "
		            "cannot be)",
		            tick_field_name((enum tick_field)field),
		            quote(q, s, len));
	}
	tick_set(out, (enum tick_field)field, d);
	return 0;
}

/*
 * A time before 1970 (a negative ts) is refused like any bad line: every
 * range a reader asks for (export, history, bars, their --from and from=)
 * starts at 0 or later, so such a tick would be stored where nothing can
 * reach it, and a negative ts in a feed is a bug upstream, not history.
 */
static int
check_ts(const struct tick *out, const char *s, size_t len, char *reason,
         size_t reason_len)
{
	char q[QUOTE_BUF];

	if (out->ts >= 0)
		return 0;
	return errf(reason, reason_len,
	            "ts %s is before 1970-01-01T00:00:00Z: a time must be 0 or "
	            "more µs since the Unix epoch",
	            quote(q, s, len));
}

/* ts from text: integer µs, or what time_parse() reads (ISO 8601).
 * Integers are read here because they are the common case. */
static int
set_ts_text(struct tick *out, const char *s, size_t len, char *reason,
            size_t reason_len)
{
	char q[QUOTE_BUF];

	if (integer_shape(s, len)) {
		if (parse_int64(s, len, &out->ts) == 0)
			return check_ts(out, s, len, reason, reason_len);
		return errf(reason, reason_len, "ts %s is out of range",
		            quote(q, s, len));
	}
	if (time_parse(s, len, &out->ts) == 0)
		return check_ts(out, s, len, reason, reason_len);
	return errf(reason, reason_len,
	            "ts '%s' is neither integer µs nor an ISO 8601 time "
	            "(e.g. 2024-03-01T14:30:00.123456Z)",
	            quote(q, s, len));
}

static int
set_symbol(struct tick *out, const char *s, size_t len, char *reason,
           size_t reason_len)
{
	char q[QUOTE_BUF];

	if (!tick_symbol_valid(s, len))
		return errf(reason, reason_len,
		            "symbol '%s' is not valid (1 to %d characters of "
		            "A-Z a-z 0-9 . _ : / -)",
		            quote(q, s, len), TICK_SYMBOL_MAX);
	memcpy(out->symbol, s, len);
	out->symbol[len] = '\0';
	return 0;
}

static int
fail_no_fields(char *reason, size_t reason_len)
{
	return errf(reason, reason_len,
	            "tick has no fields (expected at least one of " FIELD_LIST
	            ")");
}

/* ------------------------------------------------------------------ JSONL */

static int
hex4(const char *p, const char *end, unsigned *out)
{
	unsigned v = 0;
	int i;

	if (end - p < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static size_t
utf8_encode(unsigned cp, char *dst)
{
	if (cp < 0x80) {
		dst[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		dst[0] = (char)(0xc0 | (cp >> 6));
		dst[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		dst[0] = (char)(0xe0 | (cp >> 12));
		dst[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		dst[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	dst[0] = (char)(0xf0 | (cp >> 18));
	dst[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	dst[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	dst[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * Decode the rest of a JSON string from p (just past a backslash-free prefix
 * already copied into buf[0..n)) up to its closing quote. Sets *pp past the
 * quote and *len to the decoded length.
 */
static int
json_unescape(const char **pp, const char *end, char *buf, size_t n,
              size_t *len, char *reason, size_t reason_len)
{
	const char *p = *pp;

	while (p < end && *p != '"') {
		unsigned char c = (unsigned char)*p;
		unsigned cp;

		/* Room for the longest UTF-8 sequence an escape makes. */
		if (n + 4 > STRING_BUF)
			return errf(reason, reason_len,
			            "a string with escapes is longer than %d "
			            "bytes",
			            STRING_BUF - 4);
		if (c < 0x20)
			return errf(reason, reason_len,
			            "control character 0x%02x inside a string "
			            "(JSON requires it escaped)",
			            c);
		if (c != '\\') {
			buf[n++] = (char)c;
			p++;
			continue;
		}
		if (++p == end)
			break;
		switch (*p++) {
		case '"':
			buf[n++] = '"';
			continue;
		case '\\':
			buf[n++] = '\\';
			continue;
		case '/':
			buf[n++] = '/';
			continue;
		case 'b':
			buf[n++] = '\b';
			continue;
		case 'f':
			buf[n++] = '\f';
			continue;
		case 'n':
			buf[n++] = '\n';
			continue;
		case 'r':
			buf[n++] = '\r';
			continue;
		case 't':
			buf[n++] = '\t';
			continue;
		case 'u':
			break;
		default:
			/* Printable ASCII only: DEL is a control character
			 * and a lone byte >= 0x80 is not UTF-8. */
			return errf(reason, reason_len,
			            "invalid escape '\\%c' in a string",
			            (unsigned char)p[-1] >= 0x20 &&
			                            (unsigned char)p[-1] < 0x7f
			                    ? p[-1]
			                    : '?');
		}
		if (hex4(p, end, &cp) != 0)
			return errf(reason, reason_len,
			            "invalid \\u escape in a string (expected "
			            "4 hex digits)");
		p += 4;
		if (cp >= 0xd800 && cp <= 0xdbff) {
			/* A high surrogate must be followed by a low one. */
			unsigned lo;

			if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
			    hex4(p + 2, end, &lo) != 0 || lo < 0xdc00 ||
			    lo > 0xdfff)
				return errf(reason, reason_len,
				            "invalid \\u escape in a string "
				            "(unpaired surrogate)");
			p += 6;
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		} else if (cp >= 0xdc00 && cp <= 0xdfff) {
			return errf(reason, reason_len,
			            "invalid \\u escape in a string "
			            "(unpaired surrogate)");
		}
		n += utf8_encode(cp, buf + n);
	}
	if (p == end)
		return errf(reason, reason_len, "unterminated string");
	*pp = p + 1;
	*len = n;
	return 0;
}

/*
 * A JSON string whose opening quote is at *pp. On success *pp is past the
 * closing quote and (*str, *len) is its value: the bytes in the line when the
 * string has no escape, else the decoded text in buf (STRING_BUF bytes).
 */
static int
json_string(const char **pp, const char *end, char *buf, const char **str,
            size_t *len, char *reason, size_t reason_len)
{
	const char *start = *pp + 1, *p = start;
	size_t n;

	while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
		p++;
	if (p < end && *p == '"') {
		*str = start;
		*len = (size_t)(p - start);
		*pp = p + 1;
		return 0;
	}
	if (p == end)
		return errf(reason, reason_len, "unterminated string");
	n = (size_t)(p - start);
	if (n > STRING_BUF - 4)
		return errf(reason, reason_len,
		            "a string with escapes is longer than %d bytes",
		            STRING_BUF - 4);
	memcpy(buf, start, n);
	*pp = p;
	*str = buf;
	return json_unescape(pp, end, buf, n, len, reason, reason_len);
}

enum json_kind { JSON_STRING, JSON_BARE };

/* A member's value: a string (decoded) or a bare token (number, null,
 * true, false, or garbage), whose text runs to the next delimiter. */
struct json_value {
	enum json_kind kind;
	const char *s;
	size_t len;
};

static int
json_value(const char **pp, const char *end, const char *key, size_t key_len,
           char *buf, struct json_value *v, char *reason, size_t reason_len)
{
	const char *p = *pp, *start = p;
	char q[QUOTE_BUF];

	if (p < end && *p == '"') {
		v->kind = JSON_STRING;
		return json_string(pp, end, buf, &v->s, &v->len, reason,
		                   reason_len);
	}
	if (p < end && (*p == '{' || *p == '['))
		return errf(reason, reason_len,
		            "member '%s': nested %s are not allowed (a tick is "
		            "one flat object)",
		            quote(q, key, key_len),
		            *p == '{' ? "objects" : "arrays");
	while (p < end && *p != ',' && *p != '}' && *p != ']' &&
	       !is_json_ws(*p))
		p++;
	if (p == start)
		return errf(reason, reason_len, "member '%s' has no value",
		            quote(q, key, key_len));
	v->kind = JSON_BARE;
	v->s = start;
	v->len = (size_t)(p - start);
	*pp = p;
	return 0;
}

static int
json_ts(struct tick *out, const struct json_value *v, char *reason,
        size_t reason_len)
{
	char q[QUOTE_BUF];

	if (v->kind == JSON_STRING)
		return set_ts_text(out, v->s, v->len, reason, reason_len);
	if (integer_shape(v->s, v->len) && !json_leading_zero(v->s, v->len)) {
		if (parse_int64(v->s, v->len, &out->ts) == 0)
			return check_ts(out, v->s, v->len, reason, reason_len);
		return errf(reason, reason_len, "ts %s is out of range",
		            quote(q, v->s, v->len));
	}
	return errf(reason, reason_len,
	            "ts must be an integer (µs) or an ISO 8601 string, not %s",
	            quote(q, v->s, v->len));
}

static int
json_symbol(struct tick *out, const struct json_value *v, char *reason,
            size_t reason_len)
{
	char q[QUOTE_BUF];

	if (v->kind != JSON_STRING)
		return errf(reason, reason_len,
		            "symbol must be a string, not %s",
		            quote(q, v->s, v->len));
	return set_symbol(out, v->s, v->len, reason, reason_len);
}

static int
json_field(struct tick *out, int field, const struct json_value *v,
           char *reason, size_t reason_len)
{
	if (v->kind == JSON_BARE) {
		if (text_is(v->s, v->len, "null"))
			return 0; /* absent */
		if (json_leading_zero(v->s, v->len)) {
			char q[QUOTE_BUF];

			return errf(reason, reason_len,
			            "field '%s': '%s' is not a valid JSON "
			            "number (leading zero)",
			            tick_field_name((enum tick_field)field),
			            quote(q, v->s, v->len));
		}
	}
	return set_field(out, field, v->s, v->len, reason, reason_len);
}

/* The member named key: its seen bit, and through *field which field it is
 * (-1 for ts and symbol). Returns 0, or -1 for an unknown member. */
static int
json_member(const char *key, size_t key_len, unsigned *bit, int *field)
{
	*field = -1;
	if (text_is(key, key_len, "ts")) {
		*bit = SEEN_TS;
		return 0;
	}
	if (text_is(key, key_len, "symbol")) {
		*bit = SEEN_SYMBOL;
		return 0;
	}
	*field = tick_field_lookup(key, key_len);
	if (*field < 0)
		return -1;
	*bit = 1u << *field;
	return 0;
}

/*
 * The members of an object, from the first one (at *pp) to the closing '}'.
 * On success *pp is past the '}' and *seen holds the members that were there.
 */
static int
json_members(const char **pp, const char *end, struct tick *out, unsigned *seen,
             char *reason, size_t reason_len)
{
	char key_buf[STRING_BUF], value_buf[STRING_BUF];
	char q[QUOTE_BUF], q2[QUOTE_BUF];
	const char *p = *pp;

	for (;;) {
		struct json_value v;
		const char *key;
		size_t key_len;
		unsigned bit;
		int field, rc;

		if (p == end)
			return errf(reason, reason_len,
			            "unterminated JSON object");
		if (*p != '"')
			return errf(reason, reason_len,
			            "expected a member name in double quotes");
		if (json_string(&p, end, key_buf, &key, &key_len, reason,
		                reason_len) != 0)
			return -1;
		if (json_member(key, key_len, &bit, &field) != 0)
			return errf(reason, reason_len, "unknown field '%s'",
			            quote(q, key, key_len));
		if (*seen & bit)
			return errf(reason, reason_len, "duplicate member '%s'",
			            quote(q, key, key_len));
		*seen |= bit;
		p = skip_json_ws(p, end);
		if (p == end || *p != ':')
			return errf(reason, reason_len,
			            "expected ':' after member '%s'",
			            quote(q, key, key_len));
		p = skip_json_ws(p + 1, end);
		if (json_value(&p, end, key, key_len, value_buf, &v, reason,
		               reason_len) != 0)
			return -1;
		if (bit == SEEN_TS)
			rc = json_ts(out, &v, reason, reason_len);
		else if (bit == SEEN_SYMBOL)
			rc = json_symbol(out, &v, reason, reason_len);
		else
			rc = json_field(out, field, &v, reason, reason_len);
		if (rc != 0)
			return -1;
		p = skip_json_ws(p, end);
		if (p < end && *p == '}') {
			*pp = p + 1;
			return 0;
		}
		if (p < end && *p != ',')
			return errf(reason, reason_len,
			            "expected ',' or '}' after member '%s', "
			            "found '%s'",
			            quote(q, key, key_len),
			            quote(q2, p, (size_t)(end - p)));
		if (p < end)
			p = skip_json_ws(p + 1, end);
	}
}

/* The object starting at p ('{') and running to end. */
static int
parse_json(const char *p, const char *end, struct tick *out, char *reason,
           size_t reason_len)
{
	unsigned seen = 0;
	char q[QUOTE_BUF];

	p = skip_json_ws(p + 1, end);
	if (p < end && *p == '}')
		p++; /* {}: no members, reported as missing "ts" below */
	else if (json_members(&p, end, out, &seen, reason, reason_len) != 0)
		return -1;
	p = skip_json_ws(p, end);
	if (p != end)
		return errf(reason, reason_len,
		            "unexpected text after the JSON object: '%s'",
		            quote(q, p, (size_t)(end - p)));
	if (!(seen & SEEN_TS))
		return errf(reason, reason_len, "missing \"ts\"");
	if (!(seen & SEEN_SYMBOL))
		return errf(reason, reason_len, "missing \"symbol\"");
	if (out->present == 0)
		return fail_no_fields(reason, reason_len);
	return 0;
}

/* -------------------------------------------------------------------- CSV */

struct cell {
	const char *s;
	size_t len;
};

/* Split s[0..end) at commas. Up to max cells are stored; the return value is
 * the number of cells in the line, which may be more. */
static int
split_cells(const char *s, const char *end, struct cell *cells, int max)
{
	int n = 0;

	for (;;) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *stop = comma ? comma : end;

		if (n < max) {
			cells[n].s = s;
			cells[n].len = (size_t)(stop - s);
		}
		n++;
		if (!comma)
			return n;
		s = comma + 1;
	}
}

/* A cell written "…" loses its quotes. Quoting that hides a comma or a quote
 * cannot be honoured by a comma split, so it is refused rather than misread. */
static int
unquote_cell(struct cell *c, int index, char *reason, size_t reason_len)
{
	if (c->len == 0 || c->s[0] != '"')
		return 0;
	if (c->len < 2 || c->s[c->len - 1] != '"' ||
	    memchr(c->s + 1, '"', c->len - 2))
		return errf(reason, reason_len,
		            "CSV cell %d: quoted cells with commas or quotes "
		            "inside are not supported",
		            index + 1);
	c->s++;
	c->len -= 2;
	return 0;
}

/* What a header name stands for: COLUMN_TS, COLUMN_SYMBOL, a field, or -1. */
static int
column_kind(const char *s, size_t len)
{
	if (text_is(s, len, "ts"))
		return COLUMN_TS;
	if (text_is(s, len, "symbol"))
		return COLUMN_SYMBOL;
	return tick_field_lookup(s, len);
}

static unsigned
column_bit(int kind)
{
	if (kind == COLUMN_TS)
		return SEEN_TS;
	if (kind == COLUMN_SYMBOL)
		return SEEN_SYMBOL;
	return 1u << kind;
}

/* Read a header row. The parser is changed only when the whole header is
 * good, so a refused header leaves the previous one (or none) in place. */
static int
parse_csv_header(struct tick_parser *tp, struct cell *cells, int count,
                 char *reason, size_t reason_len)
{
	int kinds[TICK_PARSE_MAX_COLUMNS], i;
	unsigned seen = 0;
	char q[QUOTE_BUF];

	if (count > TICK_PARSE_MAX_COLUMNS)
		return errf(reason, reason_len,
		            "CSV header has %d columns; at most %d are "
		            "supported",
		            count, TICK_PARSE_MAX_COLUMNS);
	for (i = 0; i < count; i++) {
		struct cell *c = &cells[i];
		unsigned bit;

		if (unquote_cell(c, i, reason, reason_len) != 0)
			return -1;
		if (c->len == 0)
			return errf(reason, reason_len,
			            "CSV header: column %d has no name", i + 1);
		kinds[i] = column_kind(c->s, c->len);
		if (kinds[i] == -1)
			return errf(reason, reason_len,
			            "CSV header: unknown column '%s' (expected "
			            "ts, symbol and any of " FIELD_LIST ")%s",
			            quote(q, c->s, c->len),
			            is_digit(c->s[0])
			                    ? "; the first line of a CSV "
			                      "file must be the header"
			                    : "");
		bit = column_bit(kinds[i]);
		if (seen & bit)
			return errf(reason, reason_len,
			            "CSV header: column '%s' appears twice",
			            quote(q, c->s, c->len));
		seen |= bit;
	}
	if (!(seen & SEEN_TS))
		return errf(reason, reason_len,
		            "CSV header has no \"ts\" column");
	if (!(seen & SEEN_SYMBOL))
		return errf(reason, reason_len,
		            "CSV header has no \"symbol\" column");
	if (!(seen & SEEN_FIELDS))
		return errf(reason, reason_len,
		            "CSV header has no field column (expected any "
		            "of " FIELD_LIST ")");
	memcpy(tp->column_field, kinds, (size_t)count * sizeof kinds[0]);
	tp->columns = count;
	tp->have_header = true;
	return 0;
}

/* A row made only of column names is a header repeated mid-file, as
 * concatenated exports have; no data row looks like that, because its ts cell
 * is a time. Asked only after the row failed as data. */
static bool
is_header_row(const struct cell *cells, int count)
{
	int i;

	if (count > TICK_PARSE_MAX_COLUMNS)
		return false;
	for (i = 0; i < count; i++) {
		struct cell c = cells[i];

		if (c.len >= 2 && c.s[0] == '"' && c.s[c.len - 1] == '"') {
			c.s++;
			c.len -= 2;
		}
		if (column_kind(c.s, c.len) == -1)
			return false;
	}
	return true;
}

static int
parse_csv_row(const struct tick_parser *tp, struct cell *cells, int count,
              struct tick *out, char *reason, size_t reason_len)
{
	int i;

	if (count != tp->columns)
		return errf(reason, reason_len,
		            "CSV row has %d cells; the header has %d", count,
		            tp->columns);
	for (i = 0; i < count; i++) {
		struct cell *c = &cells[i];
		int kind = tp->column_field[i];

		if (unquote_cell(c, i, reason, reason_len) != 0)
			return -1;
		if (kind == COLUMN_TS) {
			if (c->len == 0)
				return errf(reason, reason_len,
				            "missing \"ts\" (its cell is "
				            "empty)");
			if (set_ts_text(out, c->s, c->len, reason,
			                reason_len) != 0)
				return -1;
		} else if (kind == COLUMN_SYMBOL) {
			if (c->len == 0)
				return errf(reason, reason_len,
				            "missing \"symbol\" (its cell is "
				            "empty)");
			if (set_symbol(out, c->s, c->len, reason, reason_len) !=
			    0)
				return -1;
		} else if (c->len > 0) {
			if (set_field(out, kind, c->s, c->len, reason,
			              reason_len) != 0)
				return -1;
		}
	}
	if (out->present == 0)
		return fail_no_fields(reason, reason_len);
	return 0;
}

/* --------------------------------------------------------------------- API */

void
tick_parser_init(struct tick_parser *p, enum tick_format format)
{
	memset(p, 0, sizeof *p);
	p->format = format;
}

enum tick_parse_result
tick_parse_line(struct tick_parser *p, const char *line, size_t len,
                struct tick *out, char *reason, size_t reason_len)
{
	struct cell cells[TICK_PARSE_MAX_COLUMNS];
	const char *s = line, *end = line + len, *first;
	int count;

	if (reason && reason_len)
		reason[0] = '\0';
	if (end > s && end[-1] == '\r')
		end--;
	/* A byte order mark, as spreadsheet exports write, is not data. */
	if (end - s >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;
	first = s;
	while (first < end && (*first == ' ' || *first == '\t'))
		first++;
	if (first == end || *first == '#')
		return TICK_PARSE_SKIP;
	if (p->format == TICK_FORMAT_UNKNOWN)
		p->format = *first == '{' ? TICK_FORMAT_JSONL : TICK_FORMAT_CSV;

	if (p->format == TICK_FORMAT_JSONL) {
		if (*first != '{') {
			char q[QUOTE_BUF];

			errf(reason, reason_len,
			     "expected a JSON object starting with '{', found "
			     "'%s'",
			     quote(q, first, (size_t)(end - first)));
			return TICK_PARSE_ERROR;
		}
		memset(out, 0, sizeof *out);
		if (parse_json(first, end, out, reason, reason_len) != 0)
			return TICK_PARSE_ERROR;
		return TICK_PARSE_OK;
	}

	count = split_cells(s, end, cells, TICK_PARSE_MAX_COLUMNS);
	if (!p->have_header) {
		if (parse_csv_header(p, cells, count, reason, reason_len) != 0)
			return TICK_PARSE_ERROR;
		return TICK_PARSE_SKIP;
	}
	memset(out, 0, sizeof *out);
	if (parse_csv_row(p, cells, count, out, reason, reason_len) == 0)
		return TICK_PARSE_OK;
	/* Only a failed row pays for the repeated-header check. The row
	 * parse unquoted cells in place, so split again. */
	count = split_cells(s, end, cells, TICK_PARSE_MAX_COLUMNS);
	if (!is_header_row(cells, count))
		return TICK_PARSE_ERROR;
	if (parse_csv_header(p, cells, count, reason, reason_len) != 0)
		return TICK_PARSE_ERROR;
	if (reason && reason_len)
		reason[0] = '\0';
	return TICK_PARSE_SKIP;
}

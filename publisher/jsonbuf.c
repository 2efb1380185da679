/*
 * jsonbuf: growable buffer and JSON token appenders.
 *
 * The appenders sit on the hot path of every outbound frame, so integers and
 * decimals are written with digit tables instead of snprintf, and string
 * escaping copies runs of plain bytes in one memcpy.
 */
#include "jsonbuf.h"

#include <stdlib.h>
#include <string.h>

/* The first allocation holds this much data: enough for a typical delta. */
#define JSONBUF_MIN_CAP 256

void
jsonbuf_init(struct jsonbuf *b, size_t headroom)
{
	b->base = NULL;
	b->headroom = headroom;
	b->len = 0;
	b->cap = 0;
	b->failed = false;
}

void
jsonbuf_free(struct jsonbuf *b)
{
	if (!b)
		return;
	free(b->base);
	b->base = NULL;
	b->len = 0;
	b->cap = 0;
}

int
jsonbuf_reserve(struct jsonbuf *b, size_t n)
{
	size_t want, cap;
	char *p;

	if (b->failed)
		return -1;
	if (n <= b->cap - b->len)
		return 0;
	if (n > SIZE_MAX / 2 - b->len - b->headroom)
		goto fail;
	want = b->len + n;
	/* Doubling keeps appends amortised O(1). The headroom bytes move with
	 * the data, so jsonbuf_data() - headroom stays a valid LWS_PRE area. */
	cap = b->cap ? b->cap : JSONBUF_MIN_CAP;
	while (cap < want)
		cap *= 2;
	p = realloc(b->base, b->headroom + cap);
	if (!p)
		goto fail;
	b->base = p;
	b->cap = cap;
	return 0;
fail:
	b->failed = true;
	return -1;
}

void
jsonbuf_append(struct jsonbuf *b, const void *data, size_t n)
{
	if (n == 0 || jsonbuf_reserve(b, n) < 0)
		return;
	memcpy(b->base + b->headroom + b->len, data, n);
	b->len += n;
}

void
jsonbuf_append_str(struct jsonbuf *b, const char *s)
{
	jsonbuf_append(b, s, strlen(s));
}

void
jsonbuf_append_char(struct jsonbuf *b, char c)
{
	if (jsonbuf_reserve(b, 1) < 0)
		return;
	b->base[b->headroom + b->len++] = c;
}

/* Nonzero for bytes that RFC 8259 says must be escaped inside a string. */
static inline int
needs_escape(unsigned char c)
{
	return c < 0x20 || c == '"' || c == '\\';
}

void
jsonbuf_append_quoted(struct jsonbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0, run;

	/* Reserve for the common case (nothing to escape) up front; escapes
	 * reserve their own few bytes as they come. */
	if (jsonbuf_reserve(b, n + 2) < 0)
		return;
	jsonbuf_append_char(b, '"');
	while (i < n) {
		unsigned char c;
		char esc[6];
		size_t elen = 2;

		for (run = i; run < n && !needs_escape((unsigned char)s[run]);
		     run++)
			;
		jsonbuf_append(b, s + i, run - i);
		if (run == n)
			break;
		c = (unsigned char)s[run];
		esc[0] = '\\';
		switch (c) {
		case '"':
			esc[1] = '"';
			break;
		case '\\':
			esc[1] = '\\';
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			elen = 6;
			break;
		}
		jsonbuf_append(b, esc, elen);
		i = run + 1;
	}
	jsonbuf_append_char(b, '"');
}

size_t
format_u64(uint64_t v, char *out)
{
	char tmp[20];
	size_t n = decimal_write_u64_backwards(v, tmp + sizeof tmp);

	memcpy(out, tmp + sizeof tmp - n, n);
	return n;
}

void
jsonbuf_append_u64(struct jsonbuf *b, uint64_t v)
{
	if (jsonbuf_reserve(b, 20) < 0)
		return;
	b->len += format_u64(v, b->base + b->headroom + b->len);
}

void
jsonbuf_append_i64(struct jsonbuf *b, int64_t v)
{
	char *p;

	if (jsonbuf_reserve(b, 21) < 0)
		return;
	p = b->base + b->headroom + b->len;
	if (v < 0) {
		/* Unsigned negation is exact for INT64_MIN as well. */
		*p = '-';
		b->len += 1 + format_u64(0u - (uint64_t)v, p + 1);
	} else {
		b->len += format_u64((uint64_t)v, p);
	}
}

void
jsonbuf_append_decimal(struct jsonbuf *b, struct decimal d)
{
	if (jsonbuf_reserve(b, DECIMAL_MAX_TEXT) < 0)
		return;
	b->len += decimal_format(d, b->base + b->headroom + b->len);
}

void
jsonbuf_append_key(struct jsonbuf *b, const char *key)
{
	size_t n = strlen(key);
	char *p;

	if (jsonbuf_reserve(b, n + 3) < 0)
		return;
	p = b->base + b->headroom + b->len;
	p[0] = '"';
	memcpy(p + 1, key, n);
	p[n + 1] = '"';
	p[n + 2] = ':';
	b->len += n + 3;
}

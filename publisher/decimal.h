/*
 * decimal: exact decimal numbers for prices and sizes.
 *
 * A price that arrives as "189.35" must leave as "189.35", on the wire, in
 * SQLite and on screen. Binary floating point cannot promise that, so every
 * price and size is kept as an int64 mantissa with a decimal scale:
 * value = mantissa / 10^scale. The scale is the number of digits the source
 * wrote after the point, so "189.30" keeps its trailing zero.
 *
 * What it owns: nothing. All functions are pure and thread-safe; a struct
 * decimal is a plain value.
 *
 * Who calls it: every place a price or size crosses a boundary or is
 * combined: tick_file_read.c and redis_wire.c parse them, jsonbuf.c and
 * engine_encode.c write them, symbol_state.c (the fold, and a quote-only
 * symbol's close as its mid price) and store_read.c (bars) compare and
 * add them. tick.h carries them in every tick.
 */
#ifndef PUBLISHER_DECIMAL_H
#define PUBLISHER_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

#define DECIMAL_MAX_SCALE 18
/* Longest text decimal_format() writes, without the terminating NUL:
 * sign, 19 digits, point, 18 leading zeros. */
#define DECIMAL_MAX_TEXT 40

struct decimal {
	int64_t mantissa;
	uint8_t scale; /* 0..DECIMAL_MAX_SCALE digits after the point */
};

/*
 * Parse the text s[0..len) as a plain decimal: optional '-', digits, optional
 * '.' followed by digits. Exponents ("1e5"), "+", leading '.', "nan" and "inf"
 * are refused, as are values whose digits do not fit in an int64 mantissa or
 * more than DECIMAL_MAX_SCALE fraction digits.
 * Returns 0 and fills *out, or -1 with *out untouched.
 */
int
decimal_parse(const char *s, size_t len, struct decimal *out);

/*
 * Write d as text into buf (no NUL terminator) and return the number of bytes
 * written, at most DECIMAL_MAX_TEXT. buf must hold DECIMAL_MAX_TEXT bytes.
 * The output parses back to the same mantissa and scale.
 */
size_t
decimal_format(struct decimal d, char *buf);

/* Numeric comparison: -1, 0 or 1. 189.3 and 189.30 compare equal. */
int
decimal_cmp(struct decimal a, struct decimal b);

/*
 * *out = a + b at the larger of the two scales. Returns 0, or -1 on overflow
 * with *out untouched.
 */
int
decimal_add(struct decimal a, struct decimal b, struct decimal *out);

/*
 * *out = a - b at the larger of the two scales. Returns 0, or -1 on overflow
 * with *out untouched.
 */
int
decimal_sub(struct decimal a, struct decimal b, struct decimal *out);

/*
 * *out = (a + b) / 2 exactly: at the larger of the two scales, or one digit
 * more when the sum is odd there ((189.33 + 189.36) / 2 = 189.345).
 * Returns 0, or -1 when that does not fit (a mantissa past int64, or a
 * scale past DECIMAL_MAX_SCALE) with *out untouched.
 */
int
decimal_mid(struct decimal a, struct decimal b, struct decimal *out);

/* Nearest double, for display maths only (never for storage or the wire). */
double
decimal_to_double(struct decimal d);

/* Pairs of digits "00".."99", so that numbers are written two digits per
 * division. */
extern const char decimal_digit_pairs[201];

/*
 * Write the decimal digits of v so that the last one is just before end, and
 * return how many were written (1 to 20). The one digit writer: it is under
 * decimal_format() and under every integer jsonbuf writes, once per number
 * of every frame, hence inline.
 */
static inline size_t
decimal_write_u64_backwards(uint64_t v, char *end)
{
	char *p = end;

	while (v >= 100) {
		unsigned r = (unsigned)(v % 100) * 2;

		v /= 100;
		*--p = decimal_digit_pairs[r + 1];
		*--p = decimal_digit_pairs[r];
	}
	if (v >= 10) {
		unsigned r = (unsigned)v * 2;

		*--p = decimal_digit_pairs[r + 1];
		*--p = decimal_digit_pairs[r];
	} else {
		*--p = (char)('0' + v);
	}
	return (size_t)(end - p);
}

#endif

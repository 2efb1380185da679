/*
 * decimal: exact decimals as an int64 mantissa and a decimal scale.
 *
 * Arithmetic across scales is done in 128-bit integers: the largest mantissa
 * times the largest power of ten (2^63 * 10^18 < 2^126) fits, so aligning two
 * values never overflows and the only range check needed is on the result.
 */
#include "decimal.h"

#include <string.h>

static const int64_t pow10_i64[DECIMAL_MAX_SCALE + 1] = {
        1LL,
        10LL,
        100LL,
        1000LL,
        10000LL,
        100000LL,
        1000000LL,
        10000000LL,
        100000000LL,
        1000000000LL,
        10000000000LL,
        100000000000LL,
        1000000000000LL,
        10000000000000LL,
        100000000000000LL,
        1000000000000000LL,
        10000000000000000LL,
        100000000000000000LL,
        1000000000000000000LL,
};

/* This module never makes a scale above DECIMAL_MAX_SCALE. A corrupt one is
 * clamped so that it can never index past the table of powers. */
static unsigned
clamped_scale(struct decimal d)
{
	return d.scale > DECIMAL_MAX_SCALE ? DECIMAL_MAX_SCALE : d.scale;
}

const char decimal_digit_pairs[201] = "00010203040506070809"
                                      "10111213141516171819"
                                      "20212223242526272829"
                                      "30313233343536373839"
                                      "40414243444546474849"
                                      "50515253545556575859"
                                      "60616263646566676869"
                                      "70717273747576777879"
                                      "80818283848586878889"
                                      "90919293949596979899";

int
decimal_parse(const char *s, size_t len, struct decimal *out)
{
	/* The magnitude is accumulated unsigned so that INT64_MIN, whose
	 * magnitude is one more than INT64_MAX, parses like any other value
	 * (decimal_format writes it and must be able to read it back). */
	const uint64_t pos_limit = (uint64_t)INT64_MAX;
	const uint64_t neg_limit = (uint64_t)INT64_MAX + 1u;
	uint64_t limit, mag = 0;
	size_t i = 0, int_digits = 0, frac_digits = 0;
	int negative = 0;

	if (!s || len == 0)
		return -1;
	if (s[0] == '-') {
		negative = 1;
		i = 1;
	}
	limit = negative ? neg_limit : pos_limit;

	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, int_digits++) {
		uint64_t d = (uint64_t)(s[i] - '0');

		if (mag > (limit - d) / 10)
			return -1;
		mag = mag * 10 + d;
	}
	if (int_digits == 0)
		return -1; /* "", "-", ".5", "+1", "nan", "inf" */

	if (i < len && s[i] == '.') {
		i++;
		for (; i < len && s[i] >= '0' && s[i] <= '9';
		     i++, frac_digits++) {
			uint64_t d = (uint64_t)(s[i] - '0');

			if (frac_digits >= DECIMAL_MAX_SCALE)
				return -1;
			if (mag > (limit - d) / 10)
				return -1;
			mag = mag * 10 + d;
		}
		if (frac_digits == 0)
			return -1; /* "1." */
	}
	if (i != len)
		return -1; /* "1e5", "1.2.3", trailing garbage */

	/* -(2^63) cannot be written as -(int64_t)mag, so a negative value is
	 * built as -(mag - 1) - 1, which stays in range for 1 <= mag <= 2^63.
	 * "-0" is plain zero. */
	if (negative && mag > 0)
		out->mantissa = -(int64_t)(mag - 1) - 1;
	else
		out->mantissa = (int64_t)mag;
	out->scale = (uint8_t)frac_digits;
	return 0;
}

size_t
decimal_format(struct decimal d, char *buf)
{
	char digits[24];
	char *end = digits + sizeof digits;
	uint64_t mag;
	size_t nd, scale = clamped_scale(d), n = 0;

	/* Negating in unsigned arithmetic gives the right magnitude for
	 * INT64_MIN too, where -mantissa would overflow. */
	if (d.mantissa < 0) {
		mag = 0u - (uint64_t)d.mantissa;
		buf[n++] = '-';
	} else {
		mag = (uint64_t)d.mantissa;
	}
	nd = decimal_write_u64_backwards(mag, end);

	if (scale == 0) {
		memcpy(buf + n, end - nd, nd);
		return n + nd;
	}
	if (nd <= scale) {
		/* All digits are fractional: "0." then leading zeros. */
		size_t zeros = scale - nd;

		buf[n++] = '0';
		buf[n++] = '.';
		memset(buf + n, '0', zeros);
		n += zeros;
		memcpy(buf + n, end - nd, nd);
		return n + nd;
	}
	memcpy(buf + n, end - nd, nd - scale);
	n += nd - scale;
	buf[n++] = '.';
	memcpy(buf + n, end - scale, scale);
	return n + scale;
}

static unsigned
max_scale(struct decimal a, struct decimal b)
{
	unsigned sa = clamped_scale(a), sb = clamped_scale(b);

	return sa > sb ? sa : sb;
}

/* d's mantissa at a scale >= its own, exactly (see the note at the top). */
static __int128
aligned(struct decimal d, unsigned scale)
{
	return (__int128)d.mantissa * pow10_i64[scale - clamped_scale(d)];
}

int
decimal_cmp(struct decimal a, struct decimal b)
{
	__int128 x, y;
	unsigned s;

	if (a.scale == b.scale)
		return (a.mantissa > b.mantissa) - (a.mantissa < b.mantissa);
	s = max_scale(a, b);
	x = aligned(a, s);
	y = aligned(b, s);
	return (x > y) - (x < y);
}

static int
store_result(__int128 r, unsigned scale, struct decimal *out)
{
	if (r > INT64_MAX || r < INT64_MIN)
		return -1;
	out->mantissa = (int64_t)r;
	out->scale = (uint8_t)scale;
	return 0;
}

int
decimal_add(struct decimal a, struct decimal b, struct decimal *out)
{
	unsigned s = max_scale(a, b);

	return store_result(aligned(a, s) + aligned(b, s), s, out);
}

int
decimal_sub(struct decimal a, struct decimal b, struct decimal *out)
{
	unsigned s = max_scale(a, b);

	return store_result(aligned(a, s) - aligned(b, s), s, out);
}

int
decimal_mid(struct decimal a, struct decimal b, struct decimal *out)
{
	unsigned s = max_scale(a, b);
	__int128 sum = aligned(a, s) + aligned(b, s);

	/* Half of an even sum keeps the scale; half of an odd one needs
	 * one digit more (x.5 is x5 at the next scale). */
	if (sum % 2 == 0)
		return store_result(sum / 2, s, out);
	if (s == DECIMAL_MAX_SCALE)
		return -1;
	return store_result(sum * 5, s + 1, out);
}

double
decimal_to_double(struct decimal d)
{
	/* Powers of ten up to 10^18 are exact in a double, so this is one
	 * correctly rounded division whenever the mantissa is exact too. */
	return (double)d.mantissa / (double)pow10_i64[clamped_scale(d)];
}

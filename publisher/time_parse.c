/*
 * time_parse: integer microseconds or ISO 8601 text into µs (see
 * time_parse.h).
 *
 * The calendar is done by hand (days_from_civil) rather than with timegm():
 * timegm() reads the process's time zone state and takes a lock, and a
 * replay reads a time per line. Every reader below takes the text, its
 * length and a position it moves past what it read, and returns 0 or -1;
 * only time_parse() writes the caller's result, so a refused time leaves
 * it untouched.
 */
#include "time_parse.h"

#include <stdbool.h>

/* The fields of an ISO time as read; absent ones stay 0. */
struct iso_time {
	unsigned y, mo, d, h, mi, sec;
	int64_t frac_us;
	int64_t offset_s; /* how far local time is east of UTC */
};

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil): pure arithmetic, so unlike timegm() it
 * needs no time zone, no locale and no lock. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static unsigned
days_in_month(int64_t y, unsigned m)
{
	static const unsigned char days[12] = {31, 28, 31, 30, 31, 30,
	                                       31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

/* Read exactly n digits at s[*pos]. Returns -1 when there are fewer. */
static int
digits(const char *s, size_t len, size_t *pos, unsigned n, unsigned *out)
{
	unsigned v = 0, i;

	if (len - *pos < n)
		return -1;
	for (i = 0; i < n; i++) {
		char c = s[*pos + i];

		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (unsigned)(c - '0');
	}
	*pos += n;
	*out = v;
	return 0;
}

static bool
at(const char *s, size_t len, size_t pos, char c)
{
	return pos < len && s[pos] == c;
}

/* Integer microseconds, optionally negative. */
static int
parse_integer(const char *s, size_t len, int64_t *us)
{
	bool neg = false;
	uint64_t v = 0;
	size_t i = 0;

	if (len > 0 && s[0] == '-')
		neg = true, i = 1;
	if (i == len)
		return -1;
	for (; i < len; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned)(s[i] - '0');
		if (v > ((uint64_t)INT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*us = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

/* YYYY-MM-DD, a day that exists. */
static int
parse_date(const char *s, size_t len, size_t *pos, struct iso_time *t)
{
	if (digits(s, len, pos, 4, &t->y) || !at(s, len, (*pos)++, '-') ||
	    digits(s, len, pos, 2, &t->mo) || !at(s, len, (*pos)++, '-') ||
	    digits(s, len, pos, 2, &t->d))
		return -1;
	if (t->mo < 1 || t->mo > 12 || t->d < 1 ||
	    t->d > days_in_month(t->y, t->mo))
		return -1;
	return 0;
}

/* The digits after the '.' or ',' at s[*pos]: up to 6 exact, 7 to 9 cut to
 * microseconds, more than nanoseconds refused. */
static int
parse_fraction(const char *s, size_t len, size_t *pos, int64_t *frac_us)
{
	unsigned nd = 0;
	int64_t v = 0;

	(*pos)++;
	while (*pos < len && s[*pos] >= '0' && s[*pos] <= '9') {
		if (++nd > 9)
			return -1;
		if (nd <= 6)
			v = v * 10 + (s[*pos] - '0');
		(*pos)++;
	}
	if (nd == 0)
		return -1;
	for (; nd < 6; nd++)
		v *= 10;
	*frac_us = v;
	return 0;
}

/* HH:MM[:SS[(.|,)FRACTION]], a time of day (no leap second). */
static int
parse_clock(const char *s, size_t len, size_t *pos, struct iso_time *t)
{
	if (digits(s, len, pos, 2, &t->h) || !at(s, len, (*pos)++, ':') ||
	    digits(s, len, pos, 2, &t->mi))
		return -1;
	if (at(s, len, *pos, ':')) {
		(*pos)++;
		if (digits(s, len, pos, 2, &t->sec))
			return -1;
		if ((at(s, len, *pos, '.') || at(s, len, *pos, ',')) &&
		    parse_fraction(s, len, pos, &t->frac_us))
			return -1;
	}
	return t->h > 23 || t->mi > 59 || t->sec > 59 ? -1 : 0;
}

/* Z, z, +HH:MM, -HH:MM, +HHMM, +HH, or nothing (UTC). */
static int
parse_zone(const char *s, size_t len, size_t *pos, int64_t *offset_s)
{
	unsigned oh = 0, om = 0;
	int sign;

	if (at(s, len, *pos, 'Z') || at(s, len, *pos, 'z')) {
		(*pos)++;
		return 0;
	}
	if (!at(s, len, *pos, '+') && !at(s, len, *pos, '-'))
		return 0;
	sign = s[(*pos)++] == '+' ? 1 : -1;
	if (digits(s, len, pos, 2, &oh))
		return -1;
	if (at(s, len, *pos, ':')) {
		(*pos)++;
		if (digits(s, len, pos, 2, &om))
			return -1;
	} else if (*pos < len && digits(s, len, pos, 2, &om)) {
		return -1;
	}
	if (oh > 23 || om > 59)
		return -1;
	*offset_s = sign * (int64_t)(oh * 3600 + om * 60);
	return 0;
}

/* YYYY-MM-DD[(T|t| )HH:MM[:SS[(.|,)FRACTION]][ZONE]], the whole text. */
static int
parse_iso(const char *s, size_t len, int64_t *us)
{
	struct iso_time t = {0};
	size_t pos = 0;
	int64_t secs;

	if (parse_date(s, len, &pos, &t))
		return -1;
	if (pos < len) {
		if (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ')
			return -1;
		pos++;
		if (parse_clock(s, len, &pos, &t) ||
		    parse_zone(s, len, &pos, &t.offset_s) || pos != len)
			return -1;
	}
	/* Local time = UTC + offset, so UTC = local - offset. The range
	 * (years 0000-9999) keeps every product well inside int64. */
	secs = days_from_civil(t.y, t.mo, t.d) * 86400 + t.h * 3600 +
	       t.mi * 60 + t.sec - t.offset_s;
	*us = secs * 1000000 + t.frac_us;
	return 0;
}

int
time_parse(const char *s, size_t len, int64_t *us)
{
	int64_t v;

	if (!s || !us || len == 0)
		return -1;
	/* An ISO time always has '-' after four digits; an integer never does
	 * (a leading '-' is a sign). */
	if (len >= 5 && s[4] == '-' ? parse_iso(s, len, &v)
	                            : parse_integer(s, len, &v))
		return -1;
	*us = v;
	return 0;
}

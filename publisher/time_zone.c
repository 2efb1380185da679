/*
 * time_zone.c: TZif files and POSIX TZ rules (see time_zone.h).
 *
 * A TZif file (RFC 8536) lists the instants at which a zone's offset
 * changed, with the offset from each on, and ends with a POSIX TZ rule
 * ("EST5EDT,M3.2.0,M11.1.0") for the times after its last transition.
 * Files built "slim" stop listing transitions once the rule can say them,
 * so both parts are needed. Version 1 files (32-bit times, no rule) are
 * read too. Leap seconds are ignored: ticks carry POSIX time.
 */
#include "time_zone.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"

#define NAME_MAX_LEN 255
/* The largest zone file read: real ones are a few KiB. */
#define FILE_MAX (1024 * 1024)

#define DAY 86400

/* A day of the year in a POSIX TZ rule. */
struct rule_date {
	char kind; /* 'J': Jn, 1..365, February 29 never counted;
	            * 'N': n, 0..365, counting it; 'M': Mm.w.d */
	int n, m, w, d;
};

/* The POSIX TZ rule of a file's footer: standard time, and daylight
 * saving time between two dates of every year. */
struct rule {
	int32_t std_off, dst_off; /* seconds east of UTC */
	bool has_dst;
	struct rule_date start, end;
	int32_t start_time, end_time; /* local, after midnight; may be
	                               * negative or past 24 hours */
};

struct time_zone {
	char name[NAME_MAX_LEN + 1];
	size_t n;           /* transitions */
	int64_t *at;        /* from at[i] (UTC seconds) on ... */
	int32_t *off;       /* ... the offset is off[i] */
	int32_t off_before; /* before the first transition */
	bool has_rule;      /* after the last one: the rule */
	struct rule rule;
};

/* ------------------------------------------------------------ calendar */

static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (m 1..12). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = floor_div(y, 400);
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The year of a day since 1970-01-01. */
static int64_t
year_of_day(int64_t z)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = floor_div(z, 146097);
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	return yoe + era * 400 + (mp >= 10);
}

static bool
leap_year(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
month_days(int64_t y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30,
	                             31, 31, 30, 31, 30, 31};

	return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

/* The day (since 1970-01-01) a rule date falls on in year y. */
static int64_t
rule_day(const struct rule_date *r, int64_t y)
{
	int64_t jan1 = days_from_civil(y, 1, 1), first;
	int wday, day;

	switch (r->kind) {
	case 'J':
		return jan1 + r->n - 1 + (leap_year(y) && r->n >= 60);
	case 'N':
		return jan1 + r->n;
	default:
		first = days_from_civil(y, r->m, 1);
		wday = (int)((first % 7 + 7 + 4) % 7); /* 1970-01-01: Thu */
		day = 1 + (r->d - wday + 7) % 7 + (r->w - 1) * 7;
		while (day > month_days(y, r->m))
			day -= 7;
		return first + day - 1;
	}
}

static int32_t
rule_offset(const struct rule *r, int64_t utc)
{
	int64_t y, start, end;
	bool dst;

	if (!r->has_dst)
		return r->std_off;
	y = year_of_day(floor_div(utc + r->std_off, DAY));
	/* The start is said in standard time, the end in daylight time. */
	start = rule_day(&r->start, y) * DAY + r->start_time - r->std_off;
	end = rule_day(&r->end, y) * DAY + r->end_time - r->dst_off;
	if (start < end)
		dst = utc >= start && utc < end;
	else /* the southern hemisphere: daylight time over the new year */
		dst = !(utc >= end && utc < start);
	return dst ? r->dst_off : r->std_off;
}

/* ------------------------------------------------------- the POSIX rule */

/* A zone abbreviation: three or more letters, or <...> quoted. */
static bool
rule_name(const char **p)
{
	const char *s = *p;

	if (*s == '<') {
		while (*s && *s != '>')
			s++;
		if (*s != '>' || s - *p < 4)
			return false;
		*p = s + 1;
		return true;
	}
	while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'))
		s++;
	if (s - *p < 3)
		return false;
	*p = s;
	return true;
}

/* [+-]hh[:mm[:ss]] with hh up to max_h, in seconds. */
static bool
rule_hms(const char **p, int max_h, int32_t *out)
{
	const char *s = *p;
	int sign = 1, part = 0;
	int32_t v[3] = {0, 0, 0};

	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	for (;;) {
		int digits = 0;

		while (*s >= '0' && *s <= '9' && digits < 3) {
			v[part] = v[part] * 10 + (*s++ - '0');
			digits++;
		}
		if (!digits || (part == 0 && v[0] > max_h) ||
		    (part > 0 && (digits != 2 || v[part] > 59)))
			return false;
		if (part == 2 || *s != ':')
			break;
		s++;
		part++;
	}
	*out = sign * (v[0] * 3600 + v[1] * 60 + v[2]);
	*p = s;
	return true;
}

static bool
rule_number(const char **p, int lo, int hi, int *out)
{
	const char *s = *p;
	int v = 0;

	if (*s < '0' || *s > '9')
		return false;
	while (*s >= '0' && *s <= '9' && v <= hi)
		v = v * 10 + (*s++ - '0');
	if (v < lo || v > hi)
		return false;
	*out = v;
	*p = s;
	return true;
}

/* date[/time] */
static bool
rule_when(const char **p, struct rule_date *d, int32_t *time)
{
	const char *s = *p;

	if (*s == 'J') {
		s++;
		d->kind = 'J';
		if (!rule_number(&s, 1, 365, &d->n))
			return false;
	} else if (*s == 'M') {
		s++;
		d->kind = 'M';
		if (!rule_number(&s, 1, 12, &d->m) || *s++ != '.' ||
		    !rule_number(&s, 1, 5, &d->w) || *s++ != '.' ||
		    !rule_number(&s, 0, 6, &d->d))
			return false;
	} else {
		d->kind = 'N';
		if (!rule_number(&s, 0, 365, &d->n))
			return false;
	}
	*time = 2 * 3600;
	if (*s == '/') {
		s++;
		/* RFC 8536 allows -167 to 167 hours here. */
		if (!rule_hms(&s, 167, time))
			return false;
	}
	*p = s;
	return true;
}

/* The footer's rule (text up to end, no NUL needed). An empty one says
 * nothing: the last transition's offset goes on. */
static int
rule_parse(const char *text, size_t len, struct rule *r, bool *has)
{
	char buf[128];
	const char *p = buf;
	int32_t off;

	*has = false;
	if (len == 0)
		return 0;
	if (len >= sizeof buf)
		return -1;
	memcpy(buf, text, len);
	buf[len] = '\0';
	memset(r, 0, sizeof *r);
	/* POSIX offsets count west of Greenwich: EST5 is UTC-5. */
	if (!rule_name(&p) || !rule_hms(&p, 24, &off))
		return -1;
	r->std_off = -off;
	if (*p == '\0') {
		*has = true;
		return 0;
	}
	if (!rule_name(&p))
		return -1;
	r->has_dst = true;
	r->dst_off = r->std_off + 3600;
	if (*p && *p != ',') {
		if (!rule_hms(&p, 24, &off))
			return -1;
		r->dst_off = -off;
	}
	if (*p == '\0') {
		/* No dates: the United States' rule, as the C library
		 * takes it. */
		r->start = (struct rule_date){'M', 0, 3, 2, 0};
		r->end = (struct rule_date){'M', 0, 11, 1, 0};
		r->start_time = r->end_time = 2 * 3600;
	} else if (*p++ != ',' || !rule_when(&p, &r->start, &r->start_time) ||
	           *p++ != ',' || !rule_when(&p, &r->end, &r->end_time) ||
	           *p != '\0') {
		return -1;
	}
	*has = true;
	return 0;
}

/* ------------------------------------------------------------- the file */

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct counts {
	uint32_t isut, isstd, leap, time, type, chars;
};

static bool
header(const unsigned char *p, size_t len, char *version, struct counts *c)
{
	if (len < 44 || memcmp(p, "TZif", 4) != 0)
		return false;
	*version = (char)p[4];
	c->isut = be32(p + 20);
	c->isstd = be32(p + 24);
	c->leap = be32(p + 28);
	c->time = be32(p + 32);
	c->type = be32(p + 36);
	c->chars = be32(p + 40);
	/* Bounds that keep the sums below far from overflow. */
	return c->type >= 1 && c->type <= 256 && c->time <= 1000000 &&
	       c->leap <= 100000 && c->chars <= 100000 && c->isut <= c->type &&
	       c->isstd <= c->type;
}

static size_t
block_size(const struct counts *c, size_t tsize)
{
	return c->time * tsize + c->time + c->type * 6u + c->chars +
	       c->leap * (tsize + 4) + c->isstd + c->isut;
}

/* Frees z (which may be NULL) and says why; returns NULL. */
static struct time_zone *
bad_file(struct time_zone *z, const char *name, char *err, size_t errlen)
{
	time_zone_free(z);
	errf(err, errlen,
	     "time zone '%s': not a TZif zone file, or a damaged one", name);
	return NULL;
}

struct time_zone *
time_zone_parse(const char *name, const unsigned char *data, size_t len,
                char *err, size_t errlen)
{
	const unsigned char *p = data, *end = data + len, *times, *idx, *types;
	struct time_zone *z;
	struct counts c;
	size_t tsize = 4, i, size;
	char version;

	if (!header(p, len, &version, &c))
		return bad_file(NULL, name, err, errlen);
	size = block_size(&c, 4);
	if (version >= '2') {
		/* Skip the 32-bit block: the 64-bit one follows it. */
		if (size > len - 44 ||
		    !header(p + 44 + size, len - 44 - size, &version, &c))
			return bad_file(NULL, name, err, errlen);
		p += 44 + size;
		tsize = 8;
		size = block_size(&c, 8);
	}
	if (size > (size_t)(end - p) - 44)
		return bad_file(NULL, name, err, errlen);
	times = p + 44;
	idx = times + c.time * tsize;
	types = idx + c.time;

	z = calloc(1, sizeof *z);
	if (!z || (c.time && (!(z->at = calloc(c.time, sizeof *z->at)) ||
	                      !(z->off = calloc(c.time, sizeof *z->off))))) {
		time_zone_free(z);
		errf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(z->name, sizeof z->name, "%s", name);
	z->off_before = (int32_t)be32(types);
	z->n = c.time;
	for (i = 0; i < c.time; i++) {
		if (idx[i] >= c.type ||
		    (i && (tsize == 8 ? be64(times + i * 8)
		                      : (int32_t)be32(times + i * 4)) <=
		                  z->at[i - 1]))
			return bad_file(z, name, err, errlen);
		z->at[i] = tsize == 8 ? be64(times + i * 8)
		                      : (int32_t)be32(times + i * 4);
		z->off[i] = (int32_t)be32(types + idx[i] * 6u);
	}
	if (version >= '2') {
		const unsigned char *f = times + size, *nl;

		if (f >= end || *f != '\n' ||
		    !(nl = memchr(f + 1, '\n', (size_t)(end - f - 1))) ||
		    rule_parse((const char *)f + 1, (size_t)(nl - f - 1),
		               &z->rule, &z->has_rule))
			return bad_file(z, name, err, errlen);
	}
	return z;
}

bool
time_zone_name_valid(const char *name)
{
	const char *part = name, *s;
	size_t len = strlen(name);

	if (len == 0 || len > NAME_MAX_LEN)
		return false;
	for (s = name;; s++) {
		if (*s == '/' || *s == '\0') {
			size_t n = (size_t)(s - part);

			if (n == 0 || (n == 1 && part[0] == '.') ||
			    (n == 2 && part[0] == '.' && part[1] == '.'))
				return false;
			if (*s == '\0')
				return true;
			part = s + 1;
		} else if (!((*s >= 'A' && *s <= 'Z') ||
		             (*s >= 'a' && *s <= 'z') ||
		             (*s >= '0' && *s <= '9') || *s == '_' ||
		             *s == '+' || *s == '-' || *s == '.')) {
			return false;
		}
	}
}

struct time_zone *
time_zone_load(const char *name, char *err, size_t errlen)
{
	const char *dir = getenv("TZDIR");
	char path[4096];
	unsigned char *data;
	struct time_zone *z;
	size_t n;
	FILE *f;

	if (!time_zone_name_valid(name)) {
		errf(err, errlen,
		     "'%.80s' is not a time zone name (an IANA name such as "
		     "America/New_York, Europe/London or UTC)",
		     name);
		return NULL;
	}
	if (!strcmp(name, "UTC") || !strcmp(name, "Etc/UTC")) {
		z = calloc(1, sizeof *z);
		if (!z)
			errf(err, errlen, "out of memory");
		else
			snprintf(z->name, sizeof z->name, "%s", name);
		return z;
	}
	if (!dir || !*dir)
		dir = TIME_ZONE_DIR;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f) {
		errf(err, errlen, "unknown time zone '%s' (no file %.200s: %s)",
		     name, path, strerror(errno));
		return NULL;
	}
	data = malloc(FILE_MAX);
	if (!data) {
		fclose(f);
		errf(err, errlen, "out of memory");
		return NULL;
	}
	n = fread(data, 1, FILE_MAX, f);
	fclose(f);
	z = time_zone_parse(name, data, n, err, errlen);
	free(data);
	return z;
}

void
time_zone_free(struct time_zone *z)
{
	if (!z)
		return;
	free(z->at);
	free(z->off);
	free(z);
}

const char *
time_zone_name(const struct time_zone *z)
{
	return z->name;
}

int32_t
time_zone_offset(const struct time_zone *z, int64_t utc)
{
	size_t lo = 0, hi;

	if (z->n == 0)
		return z->has_rule ? rule_offset(&z->rule, utc) : z->off_before;
	if (utc < z->at[0])
		return z->off_before;
	if (utc >= z->at[z->n - 1] && z->has_rule)
		return rule_offset(&z->rule, utc);
	/* The last transition at or before utc. */
	hi = z->n;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (z->at[mid] <= utc)
			lo = mid;
		else
			hi = mid;
	}
	return z->off[lo];
}

int64_t
time_zone_instant(const struct time_zone *z, int64_t local)
{
	/* The offsets a day either side are those before and after any
	 * change near local (offsets are within a day of UTC). */
	int32_t before = time_zone_offset(z, local - DAY);
	int32_t after = time_zone_offset(z, local + DAY);
	int64_t u1 = local - before, u2 = local - after, lo, hi;
	bool ok1 = time_zone_offset(z, u1) == before;
	bool ok2 = time_zone_offset(z, u2) == after;

	if (ok1 && ok2)
		return u1 < u2 ? u1 : u2;
	if (ok1)
		return u1;
	if (ok2)
		return u2;
	/* Skipped over: the first instant whose wall time is past local,
	 * which is the instant the clocks jumped. */
	lo = u1 < u2 ? u1 : u2;
	hi = u1 < u2 ? u2 : u1;
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;

		if (mid + time_zone_offset(z, mid) >= local)
			hi = mid;
		else
			lo = mid;
	}
	return hi;
}

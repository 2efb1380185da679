/*
 * trading_session.c: the --session rules (see trading_session.h).
 */
#include "trading_session.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "tick.h"
#include "time_zone.h"

#define DAY        86400
#define US_PER_SEC 1000000
/* Seconds within which a session's ends are worked out: about 139,000
 * years either side of 1970, so that µs never overflow. */
#define SECONDS_BOUND ((int64_t)1 << 42)

#define EXAMPLE                                                                \
	"expected PATTERN=ZONE@HH:MM, e.g. AAPL=America/New_York@09:30 or "    \
	"EUR/*=America/New_York@17:00 (PATTERN: a symbol, or the start of "    \
	"symbols followed by *; ZONE: an IANA time zone; HH:MM: when its "     \
	"sessions begin there)"

struct rule {
	char pattern[TICK_SYMBOL_MAX + 1]; /* without the '*' */
	size_t len;
	bool prefix;                      /* ended with '*' */
	const struct time_zone *zone;     /* NULL: UTC */
	int start_min;                    /* minutes after local midnight */
	char text[TICK_SYMBOL_MAX + 300]; /* as given */
};

struct trading_sessions {
	struct rule *rules;
	size_t n;
	struct time_zone **zones; /* loaded, one per rule at most */
	size_t nzones;
};

/* What one setting says, the zone's name not yet loaded. */
struct parsed {
	char pattern[TICK_SYMBOL_MAX + 1];
	size_t len;
	bool prefix;
	char zone[256];
	int start_min;
};

/* H:MM or HH:MM on a 24-hour clock, into minutes after midnight. */
static int
parse_hhmm(const char *s, int *minutes)
{
	int hh = 0, mm, i = 0;

	while (i < 2 && s[i] >= '0' && s[i] <= '9')
		hh = hh * 10 + (s[i++] - '0');
	if (i == 0 || hh > 23 || s[i] != ':')
		return -1;
	s += i + 1;
	if (strlen(s) != 2 || s[0] < '0' || s[0] > '5' || s[1] < '0' ||
	    s[1] > '9')
		return -1;
	mm = (s[0] - '0') * 10 + (s[1] - '0');
	*minutes = hh * 60 + mm;
	return 0;
}

static int
parse_spec(const char *spec, struct parsed *out, char *why, size_t whylen)
{
	const char *eq = strchr(spec, '='), *at, *zone;
	size_t plen, zlen;

	memset(out, 0, sizeof *out);
	if (!eq)
		return errf(why, whylen, "no '=': " EXAMPLE);
	plen = (size_t)(eq - spec);
	if (plen > 0 && spec[plen - 1] == '*') {
		out->prefix = true;
		plen--;
	}
	if ((plen == 0 && !out->prefix) ||
	    (plen > 0 && !tick_symbol_valid(spec, plen)))
		return errf(why, whylen,
		            "the pattern '%.*s' is neither a symbol (1-32 of "
		            "A-Z a-z 0-9 . _ : / -) nor the start of one "
		            "followed by *",
		            (int)(eq - spec), spec);
	memcpy(out->pattern, spec, plen);
	out->len = plen;
	zone = eq + 1;
	at = strrchr(zone, '@');
	zlen = at ? (size_t)(at - zone) : strlen(zone);
	if (zlen == 0 || zlen >= sizeof out->zone)
		return errf(why, whylen, "no time zone: " EXAMPLE);
	memcpy(out->zone, zone, zlen);
	out->zone[zlen] = '\0';
	if (!at)
		return errf(why, whylen,
		            "no start time: add @HH:MM, e.g. %s@00:00 for "
		            "midnight",
		            spec);
	if (parse_hhmm(at + 1, &out->start_min))
		return errf(why, whylen,
		            "the start time '%.20s' is not HH:MM on a 24-hour "
		            "clock, 00:00 to 23:59",
		            at + 1);
	return 0;
}

int
trading_session_check(const char *spec, char *why, size_t whylen)
{
	struct parsed p;
	struct time_zone *z;

	if (parse_spec(spec, &p, why, whylen))
		return -1;
	z = time_zone_load(p.zone, why, whylen);
	if (!z)
		return -1;
	time_zone_free(z);
	return 0;
}

void
trading_sessions_destroy(struct trading_sessions *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->nzones; i++)
		time_zone_free(s->zones[i]);
	free(s->zones);
	free(s->rules);
	free(s);
}

/* The zone named name into *out (NULL for UTC, which needs none), loaded
 * once for all the rules that name it. Returns 0, or -1 with err. */
static int
zone_get(struct trading_sessions *s, const char *name,
         const struct time_zone **out, char *err, size_t errlen)
{
	struct time_zone *z;
	size_t i;

	*out = NULL;
	if (!strcmp(name, "UTC") || !strcmp(name, "Etc/UTC"))
		return 0;
	for (i = 0; i < s->nzones; i++)
		if (!strcmp(time_zone_name(s->zones[i]), name)) {
			*out = s->zones[i];
			return 0;
		}
	z = time_zone_load(name, err, errlen);
	if (!z)
		return -1;
	s->zones[s->nzones++] = z;
	*out = z;
	return 0;
}

struct trading_sessions *
trading_sessions_create(const struct trading_session_options *opt, char *err,
                        size_t errlen)
{
	struct trading_sessions *s = calloc(1, sizeof *s);
	size_t n = opt ? opt->count : 0, i;

	if (!s || (n && (!(s->rules = calloc(n, sizeof *s->rules)) ||
	                 !(s->zones = calloc(n, sizeof *s->zones))))) {
		trading_sessions_destroy(s);
		errf(err, errlen, "out of memory");
		return NULL;
	}
	for (i = 0; i < n; i++) {
		struct rule *r = &s->rules[i];
		struct parsed p;
		char why[400];

		if (parse_spec(opt->specs[i], &p, why, sizeof why) ||
		    zone_get(s, p.zone, &r->zone, why, sizeof why)) {
			errf(err, errlen, "--session '%.300s': %s",
			     opt->specs[i], why);
			trading_sessions_destroy(s);
			return NULL;
		}
		memcpy(r->pattern, p.pattern, sizeof r->pattern);
		r->len = p.len;
		r->prefix = p.prefix;
		r->start_min = p.start_min;
		snprintf(r->text, sizeof r->text, "%s", opt->specs[i]);
		s->n++;
	}
	return s;
}

static const struct rule *
rule_of(const struct trading_sessions *s, const char *symbol)
{
	size_t i, len = strlen(symbol);

	for (i = 0; i < s->n; i++) {
		const struct rule *r = &s->rules[i];

		if (len < r->len || (!r->prefix && len != r->len))
			continue;
		if (!memcmp(symbol, r->pattern, r->len))
			return r;
	}
	return NULL;
}

const char *
trading_sessions_zone(const struct trading_sessions *s, const char *symbol)
{
	const struct rule *r = s ? rule_of(s, symbol) : NULL;

	return r && r->zone ? time_zone_name(r->zone) : "UTC";
}

static int64_t
floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* The instant (UTC seconds) day d's session of r begins. */
static int64_t
day_start(const struct rule *r, int64_t d)
{
	int64_t local = d * DAY + r->start_min * 60;

	return r->zone ? time_zone_instant(r->zone, local) : local;
}

void
trading_sessions_span(const struct trading_sessions *s, const char *symbol,
                      int64_t ts, struct session_span *out)
{
	const struct rule *r = s ? rule_of(s, symbol) : NULL;
	int64_t sec, local, d, start, end;

	if (!r) {
		symbol_state_session_of(NULL, symbol, ts, out);
		return;
	}
	sec = floor_div(ts, US_PER_SEC);
	if (sec > SECONDS_BOUND)
		sec = SECONDS_BOUND;
	else if (sec < -SECONDS_BOUND)
		sec = -SECONDS_BOUND;
	local = sec + (r->zone ? time_zone_offset(r->zone, sec) : 0);
	/* The day whose session holds sec, by the wall clock; near a
	 * change of offset the instants decide. */
	d = floor_div(local - r->start_min * 60, DAY);
	start = day_start(r, d);
	while (start > sec)
		start = day_start(r, --d);
	end = day_start(r, d + 1);
	while (end <= sec) {
		start = end;
		end = day_start(r, ++d + 1);
	}
	out->start = start * US_PER_SEC;
	out->end = end * US_PER_SEC;
	/* Past the bound every tick is in the first or the last session. */
	if (ts < out->start)
		out->start = INT64_MIN + 1;
	if (ts >= out->end)
		out->end = INT64_MAX;
}

static void
span_of(const void *ctx, const char *symbol, int64_t ts,
        struct session_span *out)
{
	trading_sessions_span(ctx, symbol, ts, out);
}

struct session_rule
trading_sessions_rule(const struct trading_sessions *s)
{
	struct session_rule r = {span_of, s};

	return r;
}

void
trading_sessions_describe(const struct trading_sessions *s, char *out,
                          size_t len)
{
	size_t used = 0, i;

	if (!len)
		return;
	out[0] = '\0';
	for (i = 0; s && i < s->n && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s, ",
		                         s->rules[i].text);
	if (used < len)
		snprintf(out + used, len - used, "*=UTC@00:00");
}

/*
 * feed: parses feed specs and dispatches to the adapters.
 *
 * The adapters only ever see validated options; every message a user can get
 * from a bad --feed is written here, naming the spec and the bad part.
 */
#include "feed.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYNTHETIC_MAX_SYMBOLS 100000
/* Far beyond what one thread can generate; a bound keeps the pacing maths
 * meaningful and catches typos such as an extra zero run. */
#define SYNTHETIC_MAX_RATE 1e9

static void set_err(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------ none feed */

/* `none` has no thread: the server serves what the store holds. */

static int
none_start(struct feed *f, char *err, size_t errlen)
{
	return 0;
}

static void
none_stop(struct feed *f)
{
}

static void
none_destroy(struct feed *f)
{
	free(f);
}

static const struct feed_ops none_ops = {
        .start = none_start,
        .stop = none_stop,
        .destroy = none_destroy,
};

static struct feed *
feed_none_create(struct tick_queue *queue)
{
	struct feed *f = calloc(1, sizeof *f);

	if (!f)
		return NULL;
	f->ops = &none_ops;
	f->kind = "none";
	f->queue = queue;
	return f;
}

/* ------------------------------------------------------- option parsing */

/* True when s[0..len) is one or more decimal digits and nothing else. */
static bool
all_digits(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* Parse s[0..len) as an unsigned decimal integer. strtoull alone would
 * accept leading spaces, a sign and "0x", so the digits are checked first. */
static int
parse_u64(const char *s, size_t len, uint64_t *out)
{
	char buf[32];
	char *end;
	unsigned long long v;

	if (!all_digits(s, len) || len >= sizeof buf)
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

/* Parse s[0..len) as a finite number in plain notation ("200", "0.5",
 * "1e6" too: a rate is not a price, and exponents are handy for it). */
static int
parse_double(const char *s, size_t len, double *out)
{
	char buf[64];
	char *end;
	double v;
	size_t i;

	if (len == 0 || len >= sizeof buf)
		return -1;
	/* Allow only what a number can contain, which keeps out "nan",
	 * "inf", hex floats and leading blanks that strtod would take. */
	for (i = 0; i < len; i++)
		if (!strchr("0123456789.eE-+", s[i]))
			return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	v = strtod(buf, &end);
	if (errno != 0 || *end != '\0' || end == buf || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

static struct feed *
create_synthetic(const char *spec, const char *opts, struct tick_queue *queue,
                 char *err, size_t errlen)
{
	struct feed_synthetic_options o = {
	        .symbols = 20, .rate = 200, .seed = 1};
	bool seen_symbols = false, seen_rate = false, seen_seed = false;
	const char *p = opts;
	struct feed *f;

	while (p) {
		const char *comma = strchr(p, ',');
		size_t item_len = comma ? (size_t)(comma - p) : strlen(p);
		const char *eq = memchr(p, '=', item_len);
		size_t key_len, val_len;
		const char *val;
		bool *seen;

		if (item_len == 0) {
			set_err(err, errlen,
			        "feed '%s': empty option (expected "
			        "symbols=N, rate=R or seed=S, separated by "
			        "commas)",
			        spec);
			return NULL;
		}
		if (!eq) {
			set_err(err, errlen,
			        "feed '%s': option '%.*s' needs a value "
			        "(name=value)",
			        spec, (int)item_len, p);
			return NULL;
		}
		key_len = (size_t)(eq - p);
		val = eq + 1;
		val_len = item_len - key_len - 1;

		if (key_len == 7 && memcmp(p, "symbols", 7) == 0) {
			uint64_t v;

			seen = &seen_symbols;
			if (parse_u64(val, val_len, &v) < 0 || v < 1 ||
			    v > SYNTHETIC_MAX_SYMBOLS) {
				set_err(err, errlen,
				        "feed '%s': symbols must be a whole "
				        "number from 1 to %d",
				        spec, SYNTHETIC_MAX_SYMBOLS);
				return NULL;
			}
			o.symbols = (unsigned)v;
		} else if (key_len == 4 && memcmp(p, "rate", 4) == 0) {
			double v;

			seen = &seen_rate;
			if (parse_double(val, val_len, &v) < 0 || !(v > 0)) {
				set_err(err, errlen,
				        "feed '%s': rate must be a positive "
				        "number (ticks per second)",
				        spec);
				return NULL;
			}
			if (v > SYNTHETIC_MAX_RATE) {
				set_err(err, errlen,
				        "feed '%s': rate must be at most %.0f "
				        "ticks per second",
				        spec, SYNTHETIC_MAX_RATE);
				return NULL;
			}
			o.rate = v;
		} else if (key_len == 4 && memcmp(p, "seed", 4) == 0) {
			seen = &seen_seed;
			if (parse_u64(val, val_len, &o.seed) < 0) {
				set_err(err, errlen,
				        "feed '%s': seed must be a whole "
				        "number from 0 to 18446744073709551615",
				        spec);
				return NULL;
			}
		} else {
			set_err(err, errlen,
			        "feed '%s': unknown option '%.*s' (expected "
			        "symbols, rate or seed)",
			        spec, (int)key_len, p);
			return NULL;
		}
		if (*seen) {
			set_err(err, errlen,
			        "feed '%s': option '%.*s' is given twice", spec,
			        (int)key_len, p);
			return NULL;
		}
		*seen = true;
		p = comma ? comma + 1 : NULL;
	}

	f = feed_synthetic_create(&o, queue);
	if (!f)
		set_err(err, errlen, "feed '%s': out of memory", spec);
	return f;
}

struct feed *
feed_create(const char *spec, struct tick_queue *queue, char *err,
            size_t errlen)
{
	const char *colon;
	size_t kind_len;
	struct feed *f;

	if (!spec || !*spec) {
		set_err(err, errlen,
		        "empty feed spec (expected synthetic, replay, tcp, "
		        "stdin or none)");
		return NULL;
	}
	colon = strchr(spec, ':');
	kind_len = colon ? (size_t)(colon - spec) : strlen(spec);

#define KIND_IS(name)                                                          \
	(kind_len == sizeof(name) - 1 && memcmp(spec, name, kind_len) == 0)

	if (KIND_IS("synthetic"))
		return create_synthetic(spec, colon ? colon + 1 : NULL, queue,
		                        err, errlen);
	if (KIND_IS("none")) {
		if (colon) {
			set_err(err, errlen, "feed '%s': none takes no options",
			        spec);
			return NULL;
		}
		f = feed_none_create(queue);
		if (!f)
			set_err(err, errlen, "feed '%s': out of memory", spec);
		return f;
	}
	if (KIND_IS("stdin")) {
		if (colon) {
			set_err(err, errlen, "feed '%s': stdin takes no options",
			        spec);
			return NULL;
		}
		f = feed_stdin_create(queue);
		if (!f)
			set_err(err, errlen, "feed '%s': out of memory", spec);
		return f;
	}
	if (KIND_IS("replay") || KIND_IS("tcp")) {
		set_err(err, errlen,
		        "feed '%s' is not available in this build yet", spec);
		return NULL;
	}
#undef KIND_IS

	set_err(err, errlen,
	        "unknown feed kind '%.*s' (expected synthetic, replay, tcp, "
	        "stdin or none)",
	        (int)kind_len, spec);
	return NULL;
}

int
feed_start(struct feed *f, char *err, size_t errlen)
{
	return f->ops->start(f, err, errlen);
}

void
feed_stop(struct feed *f)
{
	if (f)
		f->ops->stop(f);
}

void
feed_destroy(struct feed *f)
{
	if (!f)
		return;
	f->ops->stop(f);
	f->ops->destroy(f);
}

void
feed_get_status(struct feed *f, struct feed_status *out)
{
	out->kind = f->kind;
	out->running = __atomic_load_n(&f->running, __ATOMIC_ACQUIRE) != 0;
	out->finished = __atomic_load_n(&f->finished, __ATOMIC_ACQUIRE) != 0;
	out->ticks = __atomic_load_n(&f->ticks, __ATOMIC_RELAXED);
	out->bad_lines = __atomic_load_n(&f->bad_lines, __ATOMIC_RELAXED);
	out->last_tick_us = __atomic_load_n(&f->last_tick_us, __ATOMIC_RELAXED);
}

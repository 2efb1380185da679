/*
 * feed: parses feed specs and dispatches to the adapters.
 *
 * The adapters only ever see validated options; every message a user can get
 * from a bad --feed is written here, naming the spec and the bad part.
 */
#include "feed.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../publisher/errbuf.h"

#define SYNTHETIC_MAX_SYMBOLS 100000
/* Far beyond what one thread can generate; a bound keeps the pacing maths
 * meaningful and catches typos such as an extra zero run. */
#define SYNTHETIC_MAX_RATE 1e9

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

/*
 * One item of a spec's option list (what follows the kind, or the FILE or
 * the address): NAME or NAME=VALUE, items separated by commas.
 */
struct spec_item {
	const char *key; /* the item, up to any '=' */
	size_t key_len;
	const char *val; /* after the '='; NULL when there is none */
	size_t val_len;
	size_t len; /* the whole item */
};

/*
 * The item at *p, which then moves to the next one (NULL after the last;
 * *p NULL: the list is done). Returns 1 with *it set, 0 when the list is
 * done, or -1 with err for an empty item; `expected` names the options
 * for that message ("idle=SECS or secret=FILE").
 */
static int
next_item(const char *spec, const char **p, const char *expected,
          struct spec_item *it, char *err, size_t errlen)
{
	const char *comma, *eq;

	if (!*p)
		return 0;
	comma = strchr(*p, ',');
	it->key = *p;
	it->len = comma ? (size_t)(comma - *p) : strlen(*p);
	if (it->len == 0)
		return errf(err, errlen,
		            "feed '%s': empty option (expected %s, separated "
		            "by commas)",
		            spec, expected);
	eq = memchr(*p, '=', it->len);
	it->key_len = eq ? (size_t)(eq - *p) : it->len;
	it->val = eq ? eq + 1 : NULL;
	it->val_len = eq ? it->len - it->key_len - 1 : 0;
	*p = comma ? comma + 1 : NULL;
	return 1;
}

static bool
item_is(const struct spec_item *it, const char *name)
{
	return it->key_len == strlen(name) &&
	       memcmp(it->key, name, it->key_len) == 0;
}

/* An item that must be NAME=VALUE: -1 with err when it has no '='. */
static int
item_needs_value(const char *spec, const struct spec_item *it, char *err,
                 size_t errlen)
{
	if (it->val)
		return 0;
	return errf(err, errlen,
	            "feed '%s': option '%.*s' needs a value (name=value)", spec,
	            (int)it->len, it->key);
}

/* Each option at most once: -1 with err when *seen, else it is set. */
static int
item_once(const char *spec, const struct spec_item *it, bool *seen, char *err,
          size_t errlen)
{
	if (*seen)
		return errf(err, errlen,
		            "feed '%s': option '%.*s' is given twice", spec,
		            (int)it->key_len, it->key);
	*seen = true;
	return 0;
}

static int
item_unknown(const char *spec, const struct spec_item *it, const char *expected,
             char *err, size_t errlen)
{
	return errf(err, errlen,
	            "feed '%s': unknown option '%.*s' (expected %s)", spec,
	            (int)it->key_len, it->key, expected);
}

static struct feed *
create_synthetic(const char *spec, const char *opts, struct tick_queue *queue,
                 char *err, size_t errlen)
{
	struct feed_synthetic_options o = {
	        .symbols = 20, .rate = 200, .seed = 1};
	bool seen_symbols = false, seen_rate = false, seen_seed = false;
	const char *p = opts;
	struct spec_item it;
	struct feed *f;
	int rc;

	while ((rc = next_item(spec, &p, "symbols=N, rate=R or seed=S", &it,
	                       err, errlen)) > 0) {
		bool *seen;

		if (item_needs_value(spec, &it, err, errlen))
			return NULL;
		if (item_is(&it, "symbols")) {
			uint64_t v;

			seen = &seen_symbols;
			if (parse_u64(it.val, it.val_len, &v) < 0 || v < 1 ||
			    v > SYNTHETIC_MAX_SYMBOLS) {
				errf(err, errlen,
				     "feed '%s': symbols must be a whole "
				     "number from 1 to %d",
				     spec, SYNTHETIC_MAX_SYMBOLS);
				return NULL;
			}
			o.symbols = (unsigned)v;
		} else if (item_is(&it, "rate")) {
			double v;

			seen = &seen_rate;
			if (parse_double(it.val, it.val_len, &v) < 0 ||
			    !(v > 0)) {
				errf(err, errlen,
				     "feed '%s': rate must be a positive "
				     "number (ticks per second)",
				     spec);
				return NULL;
			}
			if (v > SYNTHETIC_MAX_RATE) {
				errf(err, errlen,
				     "feed '%s': rate must be at most %.0f "
				     "ticks per second",
				     spec, SYNTHETIC_MAX_RATE);
				return NULL;
			}
			o.rate = v;
		} else if (item_is(&it, "seed")) {
			seen = &seen_seed;
			if (parse_u64(it.val, it.val_len, &o.seed) < 0) {
				errf(err, errlen,
				     "feed '%s': seed must be a whole "
				     "number from 0 to 18446744073709551615",
				     spec);
				return NULL;
			}
		} else {
			item_unknown(spec, &it, "symbols, rate or seed", err,
			             errlen);
			return NULL;
		}
		if (item_once(spec, &it, seen, err, errlen))
			return NULL;
	}
	if (rc < 0)
		return NULL;

	f = feed_synthetic_create(&o, queue);
	if (!f)
		errf(err, errlen, "feed '%s': out of memory", spec);
	return f;
}

/* Far beyond any useful replay speed (a year of ticks in 30 ms); past it
 * the pacing maths stops meaning anything, and "max" says it better. */
#define REPLAY_MAX_SPEED 1e9

/*
 * replay:FILE[,speed=X|max][,loop]. FILE runs up to the first ',' (the
 * `replay` command refuses file names holding one). The file itself is only
 * opened by feed_start(), so a missing file is a runtime failure (exit 1)
 * rather than a usage error.
 */
static struct feed *
create_replay(const char *spec, const char *rest, struct tick_queue *queue,
              char *err, size_t errlen)
{
	struct feed_replay_options o = {.speed = 1, .loop = false};
	bool seen_speed = false;
	const char *comma = rest ? strchr(rest, ',') : NULL;
	const char *p = comma ? comma + 1 : NULL;
	size_t path_len = 0;
	struct spec_item it;
	char *path;
	struct feed *f;
	int rc;

	if (rest)
		path_len = comma ? (size_t)(comma - rest) : strlen(rest);
	if (path_len == 0) {
		errf(err, errlen,
		     "feed '%s': replay needs a FILE "
		     "(replay:FILE[,speed=X|max][,loop])",
		     spec);
		return NULL;
	}
	while ((rc = next_item(spec, &p, "speed=X, speed=max or loop", &it, err,
	                       errlen)) > 0) {
		if (item_is(&it, "speed")) {
			double v;

			if (item_once(spec, &it, &seen_speed, err, errlen))
				return NULL;
			if (it.val_len == 3 && memcmp(it.val, "max", 3) == 0) {
				o.speed = 0;
			} else if (!it.val ||
			           parse_double(it.val, it.val_len, &v) < 0 ||
			           !(v > 0)) {
				errf(err, errlen,
				     "feed '%s': speed must be > 0 or max",
				     spec);
				return NULL;
			} else if (v > REPLAY_MAX_SPEED) {
				errf(err, errlen,
				     "feed '%s': speed must be at most %.0f "
				     "(or max, for as fast as possible)",
				     spec, REPLAY_MAX_SPEED);
				return NULL;
			} else {
				o.speed = v;
			}
		} else if (item_is(&it, "loop")) {
			if (it.val) {
				errf(err, errlen,
				     "feed '%s': option 'loop' takes no "
				     "value",
				     spec);
				return NULL;
			}
			if (item_once(spec, &it, &o.loop, err, errlen))
				return NULL;
		} else {
			item_unknown(spec, &it, "speed=X, speed=max or loop",
			             err, errlen);
			return NULL;
		}
	}
	if (rc < 0)
		return NULL;

	path = strndup(rest, path_len);
	if (!path) {
		errf(err, errlen, "feed '%s': out of memory", spec);
		return NULL;
	}
	o.path = path;
	f = feed_replay_create(&o, queue);
	free(path);
	if (!f)
		errf(err, errlen, "feed '%s': out of memory", spec);
	return f;
}

/* A secret file is read whole up to three bytes over the limit: room for a
 * "\r\n" to strip, and one more to tell a secret at the limit from one over
 * it. */
#define TCP_SECRET_BUF (FEED_TCP_SECRET_MAX + 3)

/*
 * The secret of tcp's secret=FILE, read into buf (TCP_SECRET_BUF bytes) at
 * start, so that a missing file is a usage error rather than producers
 * refused later. The file's one trailing newline ("\n" or "\r\n", as
 * editors and echo write) is not part of the secret; any other line break
 * is refused, as a producer sends the secret on one line.
 */
static int
read_tcp_secret(const char *spec, const char *path, char *buf, size_t *len,
                char *err, size_t errlen)
{
	struct stat st;
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0 || fstat(fd, &st) != 0) {
		errf(err, errlen, "feed '%s': cannot read secret file '%s': %s",
		     spec, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		errf(err, errlen,
		     "feed '%s': secret file '%s' is not a regular file", spec,
		     path);
		close(fd);
		return -1;
	}
	while (n < TCP_SECRET_BUF) {
		ssize_t r = read(fd, buf + n, TCP_SECRET_BUF - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			errf(err, errlen,
			     "feed '%s': cannot read secret file '%s': %s",
			     spec, path, strerror(errno));
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n == 0) {
		errf(err, errlen,
		     "feed '%s': secret file '%s' is empty (make one with: "
		     "openssl rand -hex 32 > FILE)",
		     spec, path);
		return -1;
	}
	if (n > FEED_TCP_SECRET_MAX) {
		errf(err, errlen,
		     "feed '%s': secret file '%s' is over %d bytes; is it the "
		     "right file?",
		     spec, path, FEED_TCP_SECRET_MAX);
		return -1;
	}
	if (memchr(buf, '\n', n) || memchr(buf, '\r', n)) {
		errf(err, errlen,
		     "feed '%s': secret file '%s' holds more than one line; a "
		     "producer sends the secret as one line",
		     spec, path);
		return -1;
	}
	if (memchr(buf, '\0', n)) {
		errf(err, errlen,
		     "feed '%s': secret file '%s' holds a NUL byte; is it the "
		     "right file?",
		     spec, path);
		return -1;
	}
	*len = n;
	return 0;
}

/*
 * The options after tcp:HOST:PORT: ",idle=SECS" and ",secret=FILE", in any
 * order, each at most once (opts is what follows the first comma, NULL
 * for none). The secret is read into secret (TCP_SECRET_BUF bytes), which
 * o->secret then points to.
 */
static int
parse_tcp_options(const char *spec, const char *opts,
                  struct feed_tcp_options *o, char *secret, char *err,
                  size_t errlen)
{
	bool seen_idle = false, seen_secret = false;
	const char *p = opts;
	struct spec_item it;
	int rc;

	while ((rc = next_item(spec, &p, "idle=SECS or secret=FILE", &it, err,
	                       errlen)) > 0) {
		bool *seen;

		if (item_needs_value(spec, &it, err, errlen))
			return -1;
		if (item_is(&it, "idle")) {
			seen = &seen_idle;
		} else if (item_is(&it, "secret")) {
			seen = &seen_secret;
		} else {
			return item_unknown(spec, &it,
			                    "idle=SECS or secret=FILE", err,
			                    errlen);
		}
		if (item_once(spec, &it, seen, err, errlen))
			return -1;

		if (seen == &seen_idle) {
			uint64_t v;

			if (parse_u64(it.val, it.val_len, &v) < 0 || v < 1 ||
			    v > FEED_TCP_IDLE_MAX) {
				errf(err, errlen,
				     "feed '%s': idle must be a whole number "
				     "of seconds from 1 to %d (how long a "
				     "producer may send no line)",
				     spec, FEED_TCP_IDLE_MAX);
				return -1;
			}
			o->idle_secs = (unsigned)v;
		} else {
			char *path;

			if (it.val_len == 0) {
				errf(err, errlen,
				     "feed '%s': secret needs a FILE "
				     "(secret=FILE)",
				     spec);
				return -1;
			}
			path = strndup(it.val, it.val_len);
			if (!path) {
				errf(err, errlen, "feed '%s': out of memory",
				     spec);
				return -1;
			}
			rc = read_tcp_secret(spec, path, secret, &o->secret_len,
			                     err, errlen);
			free(path);
			if (rc != 0)
				return -1;
			o->secret = secret;
		}
	}
	return rc < 0 ? -1 : 0;
}

/*
 * tcp:HOST:PORT[,idle=SECS][,secret=FILE], with an IPv6 address in
 * brackets (tcp:[::1]:9000). The address runs to the first comma (no host
 * name or address holds one, and so a FILE cannot either). It is only
 * resolved and bound by feed_start(): a port in use is a runtime failure,
 * a malformed spec or an unreadable secret file a usage error.
 */
static struct feed *
create_tcp(const char *spec, const char *rest, struct tick_queue *queue,
           char *err, size_t errlen)
{
	struct feed_tcp_options o = {.idle_secs = FEED_TCP_IDLE_DEFAULT};
	char secret[TCP_SECRET_BUF];
	const char *host, *colon, *comma, *end;
	size_t host_len;
	uint64_t port;
	char *h;
	struct feed *f;

	if (!rest || !*rest)
		goto usage;
	comma = strchr(rest, ',');
	end = comma ? comma : rest + strlen(rest);
	if (rest[0] == '[') {
		const char *bracket = memchr(rest, ']', (size_t)(end - rest));

		if (!bracket || bracket + 1 == end || bracket[1] != ':')
			goto usage;
		host = rest + 1;
		host_len = (size_t)(bracket - host);
		colon = bracket + 1;
	} else {
		for (colon = end; colon > rest && colon[-1] != ':'; colon--)
			;
		if (colon == rest)
			goto usage;
		colon--; /* the last ':' before the options */
		host = rest;
		host_len = (size_t)(colon - rest);
		if (memchr(host, ':', host_len)) {
			errf(err, errlen,
			     "feed '%s': put an IPv6 address in brackets "
			     "(tcp:[::1]:9000)",
			     spec);
			return NULL;
		}
	}
	if (host_len == 0 || host_len > 255)
		goto usage;
	if (parse_u64(colon + 1, (size_t)(end - colon - 1), &port) < 0 ||
	    port > 65535) {
		errf(err, errlen,
		     "feed '%s': port must be a whole number from 0 to "
		     "65535 (0 = any free port)",
		     spec);
		return NULL;
	}
	o.port = (unsigned)port;
	if (parse_tcp_options(spec, comma ? comma + 1 : NULL, &o, secret, err,
	                      errlen) != 0) {
		explicit_bzero(secret, sizeof secret);
		return NULL;
	}
	h = strndup(host, host_len);
	if (!h) {
		explicit_bzero(secret, sizeof secret);
		errf(err, errlen, "feed '%s': out of memory", spec);
		return NULL;
	}
	o.host = h;
	f = feed_tcp_create(&o, queue);
	/* The feed keeps its own copy. */
	explicit_bzero(secret, sizeof secret);
	free(h);
	if (!f)
		errf(err, errlen, "feed '%s': out of memory", spec);
	return f;

usage:
	errf(err, errlen,
	     "feed '%s': expected tcp:HOST:PORT[,idle=SECS][,secret=FILE] "
	     "(e.g. tcp:127.0.0.1:9000)",
	     spec);
	return NULL;
}

/* A kind that takes no options (none, stdin), made by create(). */
static struct feed *
create_bare(const char *spec, const char *kind, bool has_options,
            struct feed *(*create)(struct tick_queue *queue),
            struct tick_queue *queue, char *err, size_t errlen)
{
	struct feed *f;

	if (has_options) {
		errf(err, errlen, "feed '%s': %s takes no options", spec, kind);
		return NULL;
	}
	f = create(queue);
	if (!f)
		errf(err, errlen, "feed '%s': out of memory", spec);
	return f;
}

struct feed *
feed_create(const char *spec, struct tick_queue *queue, char *err,
            size_t errlen)
{
	const char *colon;
	size_t kind_len;

	if (!spec || !*spec) {
		errf(err, errlen,
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
	if (KIND_IS("none"))
		return create_bare(spec, "none", colon != NULL,
		                   feed_none_create, queue, err, errlen);
	if (KIND_IS("stdin"))
		return create_bare(spec, "stdin", colon != NULL,
		                   feed_stdin_create, queue, err, errlen);
	if (KIND_IS("replay"))
		return create_replay(spec, colon ? colon + 1 : NULL, queue, err,
		                     errlen);
	if (KIND_IS("tcp"))
		return create_tcp(spec, colon ? colon + 1 : NULL, queue, err,
		                  errlen);
#undef KIND_IS

	errf(err, errlen,
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

int
feed__start_thread(struct feed *f, pthread_t *thread, void *(*fn)(void *),
                   void *arg, char *err, size_t errlen)
{
	int rc;

	__atomic_store_n(&f->running, 1, __ATOMIC_RELEASE);
	rc = pthread_create(thread, NULL, fn, arg);
	if (rc == 0)
		return 0;
	__atomic_store_n(&f->running, 0, __ATOMIC_RELEASE);
	return errf(err, errlen, "%s feed: cannot start its thread: %s",
	            f->kind, strerror(rc));
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
	memset(out, 0, sizeof *out);
	out->kind = f->kind;
	out->running = __atomic_load_n(&f->running, __ATOMIC_ACQUIRE) != 0;
	out->finished = __atomic_load_n(&f->finished, __ATOMIC_ACQUIRE) != 0;
	out->ticks = __atomic_load_n(&f->ticks, __ATOMIC_RELAXED);
	out->bad_lines = __atomic_load_n(&f->bad_lines, __ATOMIC_RELAXED);
	out->last_tick_us = __atomic_load_n(&f->last_tick_us, __ATOMIC_RELAXED);
	if (f->ops->status)
		f->ops->status(f, out);
}

void
feed_set_rewind(struct feed *f, feed_rewind_fn fn, void *ctx)
{
	f->rewind = fn;
	f->rewind_ctx = ctx;
}

int
feed_control(struct feed *f, const struct feed_command *cmd, char *err,
             size_t errlen)
{
	if (!f->ops->control) {
		errf(err, errlen,
		     "replay control needs a replay feed; this server runs "
		     "'%s'",
		     f->kind);
		return -1;
	}
	switch (cmd->kind) {
	case FEED_CMD_PAUSE:
	case FEED_CMD_RESUME:
	case FEED_CMD_SEEK:
		break;
	case FEED_CMD_SPEED:
		if (!isfinite(cmd->speed) || cmd->speed < 0 ||
		    cmd->speed > REPLAY_MAX_SPEED) {
			errf(err, errlen,
			     "replay speed must be > 0 and at most %.0f, or "
			     "max",
			     REPLAY_MAX_SPEED);
			return -1;
		}
		break;
	default:
		errf(err, errlen, "unknown replay command %d", (int)cmd->kind);
		return -1;
	}
	return f->ops->control(f, cmd, err, errlen);
}

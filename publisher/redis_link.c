/*
 * redis_link: the ingest's publisher and the edge's follower (see
 * redis_link.h for the keys, the entry format, runs and faults).
 *
 * Both sides talk RESP through one blocking hiredis context on their own
 * thread. The publisher writes its commands straight into a buffer in RESP
 * form and hands a whole batch to hiredis at once
 * (redisAppendFormattedCommand), then reads one reply per command: a
 * blocking context keeps no per-command bookkeeping, so several commands in
 * one formatted buffer are simply pipelined. That keeps the cost per tick to
 * a few appends, with no argv arrays and no printf.
 *
 * SIGPIPE: a write to a connection Redis has closed raises SIGPIPE in the
 * writing thread. Both threads block it, so the write fails with EPIPE
 * instead of killing a process that has not ignored SIGPIPE, and consume the
 * pending signal when they drop the connection.
 */
#include "redis_link.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "decimal.h"
#include "jsonbuf.h"
#include "log.h"

#define DEFAULT_STREAM_MAXLEN  100000
#define DEFAULT_QUEUE_CAPACITY 65536
#define DEFAULT_CONNECT_MS     500
#define DEFAULT_IO_MS          1000
#define DEFAULT_BACKOFF_MAX_MS 5000
#define DEFAULT_SILENT_MS      3000
#define BACKOFF_MIN_US         (100 * 1000ll)

/* Most ticks in one pipelined batch: about 1.5 MB of commands. Batches grow
 * toward it under load and stay small (low latency) when the rate is low. */
#define BATCH_MAX 8192
/* Symbols touched by one batch, looked up in an open-addressed table of
 * twice that many slots (a power of two). */
#define TOUCH_SLOTS (2 * BATCH_MAX)
/* Field/value pairs per HSET in a full sync. */
#define HSET_CHUNK 1000
/* The publisher sends a heartbeat after this long without sending. */
#define HEARTBEAT_US (1000 * 1000ll)
/* At close, what is queued is published for at most this long. */
#define CLOSE_FLUSH_US (2 * 1000 * 1000ll)

#define XREAD_BLOCK_MS 1000
#define XREAD_COUNT    4096
/* The follower's socket timeout must outlast XREAD BLOCK. */
#define FOLLOWER_IO_MS (XREAD_BLOCK_MS + 2000)
/* How often a follower looks again when Redis holds no state yet. */
#define WAIT_FOR_INGEST_US (1000 * 1000ll)

#define RUN_BYTES 8
#define RUN_LEN   (2 * RUN_BYTES)
#define KEY_MAX   (REDIS_LINK_PREFIX_MAX + 8)
#define HOST_MAX  256

/* ================================================================ helpers */

static int errf(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static struct timeval
timeval_of(int64_t us)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(us / 1000000);
	tv.tv_usec = (suseconds_t)(us % 1000000);
	return tv;
}

/* A condition variable on the monotonic clock, so a wall-clock step never
 * stretches or cuts a wait. */
static void
cond_init_mono(pthread_cond_t *c)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(c, &ca);
	pthread_condattr_destroy(&ca);
}

/* Wait on c until the monotonic time `until` (or a signal). */
static void
cond_wait_until(pthread_cond_t *c, pthread_mutex_t *mu, int64_t until)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(until / 1000000);
	ts.tv_nsec = (long)(until % 1000000) * 1000;
	pthread_cond_timedwait(c, mu, &ts);
}

static void
iso_time(int64_t us, char *out, size_t len)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) ||
	    !strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, len, "?");
}

static void
block_sigpipe(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Consume a SIGPIPE left pending in this thread by a failed write. */
static void
clear_sigpipe(void)
{
	struct timespec zero = {0, 0};
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	while (sigtimedwait(&set, NULL, &zero) == SIGPIPE)
		;
}

static uint64_t
random_seed(void)
{
	uint64_t x = 0;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (read(fd, &x, sizeof x) != (ssize_t)sizeof x)
			x = 0;
		close(fd);
	}
	if (!x)
		x = (uint64_t)clock_wall_us() ^ ((uint64_t)getpid() << 32) ^
		    (uint64_t)(uintptr_t)&x;
	return x | 1;
}

/* xorshift64*: jitter and run ids, never anything secret. */
static uint64_t
next_random(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 2685821657736338717ull;
}

/*
 * Exponential backoff with jitter: the base doubles from BACKOFF_MIN_US up
 * to max after every failed attempt, and each wait is drawn from [base/2,
 * base], so edges cut off together do not all come back in the same
 * millisecond.
 */
struct backoff {
	int64_t base_us, max_us;
};

static int64_t
backoff_next(struct backoff *b, uint64_t *rng)
{
	int64_t base = b->base_us ? b->base_us : BACKOFF_MIN_US;
	int64_t wait = base / 2 +
	               (int64_t)(next_random(rng) % (uint64_t)(base / 2 + 1));

	b->base_us = base >= b->max_us / 2 ? b->max_us : base * 2;
	return wait;
}

static void
backoff_reset(struct backoff *b)
{
	b->base_us = 0;
}

static bool
prefix_valid(const char *s)
{
	size_t len = strlen(s), i;

	/* The symbol alphabet: no spaces, quotes or glob characters. */
	if (len == 0 || len > REDIS_LINK_PREFIX_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (!tick_symbol_valid(s + i, 1))
			return false;
	return true;
}

static bool
epoch_valid(const char *s)
{
	size_t len = strlen(s), i;

	if (len == 0 || len > REDIS_LINK_EPOCH_MAX)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

static int
parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 20)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned d = (unsigned char)s[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int
parse_i64(const char *s, size_t len, int64_t *out)
{
	bool neg = len > 0 && s[0] == '-';
	uint64_t m;

	if (parse_u64(s + neg, len - neg, &m))
		return -1;
	if (m > (uint64_t)INT64_MAX + neg)
		return -1;
	*out = neg ? (m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m)
	           : (int64_t)m;
	return 0;
}

/* A stream entry id, "<ms>-<seq>". */
struct stream_id {
	uint64_t ms, seq;
};

static int
stream_id_parse(const char *s, size_t len, struct stream_id *out)
{
	const char *dash = memchr(s, '-', len);

	if (!dash)
		return -1;
	if (parse_u64(s, (size_t)(dash - s), &out->ms) ||
	    parse_u64(dash + 1, len - (size_t)(dash - s) - 1, &out->seq))
		return -1;
	return 0;
}

static int
stream_id_cmp(struct stream_id a, struct stream_id b)
{
	if (a.ms != b.ms)
		return a.ms < b.ms ? -1 : 1;
	if (a.seq != b.seq)
		return a.seq < b.seq ? -1 : 1;
	return 0;
}

static uint64_t
name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h ^ (h >> 29);
}

/* ------------------------------------------------------------- RESP */

static void
resp_count(struct jsonbuf *b, char kind, size_t n)
{
	char t[24];
	size_t k = format_u64(n, t);

	jsonbuf_append_char(b, kind);
	jsonbuf_append(b, t, k);
	jsonbuf_append(b, "\r\n", 2);
}

static void
resp_array(struct jsonbuf *b, size_t n)
{
	resp_count(b, '*', n);
}

static void
resp_bulk(struct jsonbuf *b, const void *s, size_t len)
{
	if (jsonbuf_reserve(b, len + 26))
		return;
	resp_count(b, '$', len);
	jsonbuf_append(b, s, len);
	jsonbuf_append(b, "\r\n", 2);
}

static void
resp_str(struct jsonbuf *b, const char *s)
{
	resp_bulk(b, s, strlen(s));
}

static void
resp_u64(struct jsonbuf *b, uint64_t v)
{
	char t[24];

	resp_bulk(b, t, format_u64(v, t));
}

static void
resp_buf(struct jsonbuf *b, const struct jsonbuf *v)
{
	resp_bulk(b, v->len ? jsonbuf_data(v) : "", v->len);
}

/* ---------------------------------------------------------- encodings */

/*
 * A tick's input fields as one JSONL line without its newline: the JSONL of
 * export_write_tick(), so the stream reads as a tick file. (export.c itself
 * is not linked here: it brings the store and SQLite along.)
 */
static void
tick_line(struct jsonbuf *b, const struct tick *t)
{
	int f;

	jsonbuf_append_str(b, "{\"ts\":");
	jsonbuf_append_i64(b, t->ts);
	jsonbuf_append_str(b, ",\"symbol\":");
	jsonbuf_append_quoted(b, t->symbol,
	                      strnlen(t->symbol, sizeof t->symbol));
	for (f = 0; f < TICK_FIELD_COUNT; f++) {
		if (!tick_has(t, (enum tick_field)f))
			continue;
		jsonbuf_append_char(b, ',');
		jsonbuf_append_key(b, tick_field_name((enum tick_field)f));
		jsonbuf_append_decimal(b, t->value[f]);
	}
	jsonbuf_append_char(b, '}');
}

static bool
eat(const char **p, const char *end, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
		return false;
	*p += n;
	return true;
}

/* The length of the number at p: [-0-9.]* */
static size_t
number_len(const char *p, const char *end)
{
	const char *q = p;

	while (q < end && ((*q >= '0' && *q <= '9') || *q == '-' || *q == '.'))
		q++;
	return (size_t)(q - p);
}

/*
 * The inverse of tick_line() and nothing more: {"ts":I,"symbol":"S"} with
 * ,"<input field>":D members. Not the feed parser (tick_parse.h): that one
 * also enforces what a feed may send (no negative sizes, say), while an
 * edge must take exactly what the ingest's engine accepted.
 */
static int
tick_from_line(const char *s, size_t len, uint64_t seq, struct tick *out,
               char *why, size_t whylen)
{
	const char *p = s, *end = s + len, *q;
	struct decimal d;
	size_t n;
	int f;

	memset(out, 0, sizeof *out);
	if (!eat(&p, end, "{\"ts\":"))
		return errf(why, whylen, "does not start with {\"ts\":");
	n = number_len(p, end);
	if (parse_i64(p, n, &out->ts))
		return errf(why, whylen, "bad ts");
	p += n;
	if (!eat(&p, end, ",\"symbol\":\"") ||
	    !(q = memchr(p, '"', (size_t)(end - p))) ||
	    !tick_symbol_valid(p, (size_t)(q - p)))
		return errf(why, whylen, "bad symbol");
	memcpy(out->symbol, p, (size_t)(q - p));
	p = q + 1;
	while (eat(&p, end, ",\"")) {
		q = memchr(p, '"', (size_t)(end - p));
		f = q ? tick_field_lookup(p, (size_t)(q - p)) : -1;
		if (f < 0 || tick_has(out, (enum tick_field)f))
			return errf(why, whylen, "bad or repeated field");
		p = q + 1;
		if (!eat(&p, end, ":"))
			return errf(why, whylen, "bad field");
		n = number_len(p, end);
		if (decimal_parse(p, n, &d))
			return errf(why, whylen, "field '%s': bad decimal",
			            tick_field_name((enum tick_field)f));
		tick_set(out, (enum tick_field)f, d);
		p += n;
	}
	if (!eat(&p, end, "}") || p != end)
		return errf(why, whylen, "trailing text");
	out->seq = seq;
	return 0;
}

/* "s1 <seq> <ts> <fsv> <field>=<decimal>@<changed_seq> …" (see the header) */
static void
state_encode(struct jsonbuf *b, const struct symbol_state *st)
{
	int f;

	jsonbuf_append_str(b, "s1 ");
	jsonbuf_append_u64(b, st->seq);
	jsonbuf_append_char(b, ' ');
	jsonbuf_append_i64(b, st->ts);
	jsonbuf_append_str(b, st->feed_sends_volume ? " 1" : " 0");
	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		if (!((st->present >> f) & 1u))
			continue;
		jsonbuf_append_char(b, ' ');
		jsonbuf_append_str(b, tick_field_name((enum tick_field)f));
		jsonbuf_append_char(b, '=');
		jsonbuf_append_decimal(b, st->value[f]);
		jsonbuf_append_char(b, '@');
		jsonbuf_append_u64(b, st->changed_seq[f]);
	}
}

static int
state_field_lookup(const char *s, size_t len)
{
	int f;

	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		const char *n = tick_field_name((enum tick_field)f);

		if (strlen(n) == len && memcmp(n, s, len) == 0)
			return f;
	}
	return -1;
}

/* The next space-separated token of [*p, end). */
static bool
next_token(const char **p, const char *end, const char **tok, size_t *len)
{
	const char *s = *p, *e;

	if (s >= end)
		return false;
	e = memchr(s, ' ', (size_t)(end - s));
	if (!e)
		e = end;
	*tok = s;
	*len = (size_t)(e - s);
	*p = e < end ? e + 1 : end;
	return *len > 0;
}

/* Decode a state value. Returns 0, or -1 with a reason in *why. */
static int
state_decode(const char *name, size_t namelen, const char *s, size_t len,
             struct symbol_state *out, const char **why)
{
	const char *p = s, *end = s + len, *tok;
	size_t tlen;

	memset(out, 0, sizeof *out);
	if (!tick_symbol_valid(name, namelen)) {
		*why = "not a valid symbol name";
		return -1;
	}
	memcpy(out->symbol, name, namelen);
	if (!next_token(&p, end, &tok, &tlen) || tlen != 2 ||
	    memcmp(tok, "s1", 2) != 0) {
		*why = "not in the s1 format (written by another version?)";
		return -1;
	}
	if (!next_token(&p, end, &tok, &tlen) ||
	    parse_u64(tok, tlen, &out->seq) || out->seq == 0 ||
	    !next_token(&p, end, &tok, &tlen) ||
	    parse_i64(tok, tlen, &out->ts) ||
	    !next_token(&p, end, &tok, &tlen) || tlen != 1 ||
	    (tok[0] != '0' && tok[0] != '1')) {
		*why = "bad seq, ts or volume flag";
		return -1;
	}
	out->feed_sends_volume = tok[0] == '1';
	while (next_token(&p, end, &tok, &tlen)) {
		const char *eq = memchr(tok, '=', tlen);
		const char *at =
		        eq ? memchr(eq, '@', tlen - (size_t)(eq - tok)) : NULL;
		int f = eq ? state_field_lookup(tok, (size_t)(eq - tok)) : -1;

		if (f < 0 || !at || ((out->present >> f) & 1u) ||
		    decimal_parse(eq + 1, (size_t)(at - eq - 1),
		                  &out->value[f]) ||
		    parse_u64(at + 1, tlen - (size_t)(at + 1 - tok),
		              &out->changed_seq[f])) {
			*why = "bad field";
			return -1;
		}
		out->present |= (uint16_t)(1u << f);
	}
	if (p != end) {
		*why = "stray spaces";
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ the link */

/*
 * Connect with the connect timeout, then set the socket timeout for every
 * read and write, TCP keepalive, and the client's name (which Redis shows
 * in CLIENT LIST; it also proves the peer speaks Redis and needs no AUTH).
 * Returns the context, or NULL with the cause in why.
 */
static redisContext *
link_connect(const char *host, int port, int64_t connect_us, int64_t io_us,
             const char *name, char *why, size_t whylen)
{
	redisContext *rc =
	        redisConnectWithTimeout(host, port, timeval_of(connect_us));
	redisReply *r;

	if (!rc) {
		errf(why, whylen, "out of memory");
		return NULL;
	}
	if (rc->err) {
		errf(why, whylen, "%s", rc->errstr);
		redisFree(rc);
		return NULL;
	}
	if (redisSetTimeout(rc, timeval_of(io_us)) != REDIS_OK ||
	    redisEnableKeepAlive(rc) != REDIS_OK) {
		errf(why, whylen, "cannot set socket options: %s", rc->errstr);
		redisFree(rc);
		return NULL;
	}
	r = redisCommand(rc, "CLIENT SETNAME %s", name);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		errf(why, whylen, "%s%s", r ? "redis refused us: " : "",
		     r ? r->str : rc->errstr);
		if (r)
			freeReplyObject(r);
		redisFree(rc);
		return NULL;
	}
	freeReplyObject(r);
	return rc;
}

/* Why the context failed, in words ("Connection reset by peer"). hiredis
 * keeps strerror() of the failed call in errstr; a socket timeout shows as
 * EAGAIN there. */
static const char *
link_error(const redisContext *rc)
{
	if (!rc->err)
		return "unexpected reply";
	if (rc->err == REDIS_ERR_EOF)
		return "connection closed by redis";
	if (rc->err == REDIS_ERR_IO &&
	    (strcmp(rc->errstr, strerror(EAGAIN)) == 0 ||
	     strcmp(rc->errstr, strerror(EWOULDBLOCK)) == 0))
		return "timed out";
	return rc->errstr[0] ? rc->errstr : "I/O error";
}

/* The first error reply in r (or, for EXEC, in its elements), or NULL. */
static const char *
reply_error(const redisReply *r)
{
	size_t i;

	if (r->type == REDIS_REPLY_ERROR)
		return r->str;
	if (r->type == REDIS_REPLY_ARRAY)
		for (i = 0; i < r->elements; i++)
			if (r->element[i]->type == REDIS_REPLY_ERROR)
				return r->element[i]->str;
	return NULL;
}

static void
keys_init(const char *prefix, char *ticks, char *state, char *epoch)
{
	snprintf(ticks, KEY_MAX, "%s:ticks", prefix);
	snprintf(state, KEY_MAX, "%s:state", prefix);
	snprintf(epoch, KEY_MAX, "%s:epoch", prefix);
}

/* ================================================================ ingest */

struct redis_publisher {
	char host[HOST_MAX];
	int port;
	char prefix[REDIS_LINK_PREFIX_MAX + 1];
	char key_ticks[KEY_MAX], key_state[KEY_MAX], key_epoch[KEY_MAX];
	char epoch[REDIS_LINK_EPOCH_MAX + 1];
	uint64_t maxlen;
	int64_t connect_us, io_us;
	void (*wake)(void *ctx);
	void *wake_ctx;

	/* The thread's (and before start, the creator's). */
	struct engine *engine;
	redisContext *rc;
	uint64_t rng;
	struct backoff backoff;
	int64_t next_attempt_us; /* mono */
	int64_t last_send_us;    /* mono */
	bool ever_connected;
	char run[RUN_LEN + 1];
	uint64_t g;
	struct jsonbuf xadd_head; /* XADD … run R, without the array count */
	struct jsonbuf out, chunk, scratch;
	size_t chunk_pairs, commands;
	struct tick *batch;
	uint32_t touch_gen[TOUCH_SLOTS], touch_idx[TOUCH_SLOTS], gen;
	uint32_t unique[BATCH_MAX];
	size_t nunique;
	size_t unsent_at_close;

	/* Shared, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct tick *ring;
	int64_t *enq_us;
	size_t cap, head, count;
	bool want_wake;
	bool stopping;
	int64_t stop_by_us;
	bool started;
	struct redis_publisher_stats stats;
	pthread_t thread;
	/* Behind (see "faults" in the header): the symbols whose ticks were
	 * dropped, by name (open addressing), and the states they resume
	 * with, for the thread. */
	int64_t dropping_since_us; /* wall clock */
	char (*dropped)[TICK_SYMBOL_MAX + 1];
	size_t ndropped, dropped_mask;
	struct symbol_state *restores;
	size_t nrestores, restores_cap;
	bool resync_pending;
};

/* The checks both directions make on their options. Returns the key prefix
 * to use, or NULL with the reason in err. */
static const char *
check_address(const char *host, int port, const char *prefix, char *err,
	      size_t errlen)
{
	if (!host || !host[0] || strlen(host) >= HOST_MAX) {
		errf(err, errlen, "--redis needs a host name or address");
		return NULL;
	}
	if (port < 1 || port > 65535) {
		errf(err, errlen, "--redis port must be 1..65535, not %d", port);
		return NULL;
	}
	if (!prefix)
		prefix = REDIS_LINK_DEFAULT_PREFIX;
	if (!prefix_valid(prefix)) {
		errf(err, errlen,
		     "redis key prefix '%.80s' must be 1..64 of "
		     "[A-Za-z0-9._:/-]",
		     prefix);
		return NULL;
	}
	return prefix;
}

struct redis_publisher *
redis_publisher_create(const struct redis_publisher_options *opt, char *err,
                       size_t errlen)
{
	struct engine_config ec = {0};
	struct redis_publisher *p;
	const char *prefix;

	if (!opt) {
		errf(err, errlen, "--redis needs a host name or address");
		return NULL;
	}
	prefix = check_address(opt->host, opt->port, opt->prefix, err, errlen);
	if (!prefix)
		return NULL;
	if (!opt->epoch || !epoch_valid(opt->epoch)) {
		errf(err, errlen,
		     "the epoch to publish must be 1..64 printable "
		     "characters without spaces");
		return NULL;
	}
	p = calloc(1, sizeof *p);
	if (!p) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(p->host, sizeof p->host, "%s", opt->host);
	p->port = opt->port;
	snprintf(p->prefix, sizeof p->prefix, "%s", prefix);
	keys_init(prefix, p->key_ticks, p->key_state, p->key_epoch);
	snprintf(p->epoch, sizeof p->epoch, "%s", opt->epoch);
	p->maxlen =
	        opt->stream_maxlen ? opt->stream_maxlen : DEFAULT_STREAM_MAXLEN;
	p->cap = opt->queue_capacity ? opt->queue_capacity
	                             : DEFAULT_QUEUE_CAPACITY;
	p->connect_us =
	        (int64_t)(opt->connect_timeout_ms ? opt->connect_timeout_ms
	                                          : DEFAULT_CONNECT_MS) *
	        1000;
	p->io_us = (int64_t)(opt->io_timeout_ms ? opt->io_timeout_ms
	                                        : DEFAULT_IO_MS) *
	           1000;
	p->backoff.max_us =
	        (int64_t)(opt->backoff_max_ms ? opt->backoff_max_ms
	                                      : DEFAULT_BACKOFF_MAX_MS) *
	        1000;
	p->wake = opt->wake;
	p->wake_ctx = opt->wake_ctx;
	p->rng = random_seed();
	jsonbuf_init(&p->xadd_head, 0);
	jsonbuf_init(&p->out, 0);
	jsonbuf_init(&p->chunk, 0);
	jsonbuf_init(&p->scratch, 0);
	pthread_mutex_init(&p->mu, NULL);
	cond_init_mono(&p->cond);

	p->engine = engine_create(&ec);
	p->ring = p->cap <= SIZE_MAX / sizeof *p->ring
	                  ? malloc(p->cap * sizeof *p->ring)
	                  : NULL;
	p->enq_us = malloc(p->cap * sizeof *p->enq_us);
	p->batch = malloc(BATCH_MAX * sizeof *p->batch);
	if (!p->engine || !p->ring || !p->enq_us || !p->batch) {
		errf(err, errlen, "out of memory (queue of %zu ticks)", p->cap);
		redis_publisher_destroy(p);
		return NULL;
	}
	return p;
}

int
redis_publisher_restore(struct redis_publisher *p,
                        const struct symbol_state *st)
{
	if (!p || p->started)
		return -1;
	return engine_restore_symbol(p->engine, st);
}

/* ------------------------------------------------------- the queue */

size_t
redis_publisher_append_space(struct redis_publisher *p)
{
	size_t space;

	pthread_mutex_lock(&p->mu);
	space = p->stopping ? 0 : p->cap - p->count;
	if (space == 0)
		p->want_wake = true;
	pthread_mutex_unlock(&p->mu);
	return space;
}

int
redis_publisher_append(struct redis_publisher *p, const struct tick *applied,
                       size_t n)
{
	size_t tail, first, i;
	int64_t now;
	bool signal;

	if (n == 0)
		return 0;
	now = clock_mono_us();
	pthread_mutex_lock(&p->mu);
	if (p->stopping || p->cap - p->count < n) {
		p->want_wake = true;
		pthread_mutex_unlock(&p->mu);
		return -1;
	}
	tail = (p->head + p->count) % p->cap;
	first = p->cap - tail < n ? p->cap - tail : n;
	memcpy(p->ring + tail, applied, first * sizeof *applied);
	memcpy(p->ring, applied + first, (n - first) * sizeof *applied);
	for (i = 0; i < n; i++)
		p->enq_us[(tail + i) % p->cap] = now;
	signal = p->count == 0;
	p->count += n;
	pthread_mutex_unlock(&p->mu);
	/* The thread only sleeps on an empty queue. */
	if (signal)
		pthread_cond_signal(&p->cond);
	return 0;
}

/*
 * Wait until there are ticks (or states to resume with), the heartbeat or a
 * reconnect is due, or the publisher stops; then move up to BATCH_MAX ticks
 * into p->batch. States the sink resumed with are taken in the same step
 * and put into the engine before those ticks, which came after them
 * (*resync then says a run must start). Returns the number of ticks moved;
 * *stop says whether the publisher is stopping.
 */
static size_t
publisher_take(struct redis_publisher *p, bool *stop, bool *resync)
{
	struct symbol_state *r;
	size_t n, first, nr, i;
	bool wake = false;

	pthread_mutex_lock(&p->mu);
	while (!p->stopping && p->count == 0 && !p->resync_pending) {
		int64_t now = clock_mono_us();
		int64_t until = p->rc ? p->last_send_us + HEARTBEAT_US
		                      : p->next_attempt_us;

		if (now >= until)
			break;
		cond_wait_until(&p->cond, &p->mu, until);
	}
	n = p->count < BATCH_MAX ? p->count : BATCH_MAX;
	first = p->cap - p->head < n ? p->cap - p->head : n;
	memcpy(p->batch, p->ring + p->head, first * sizeof *p->batch);
	memcpy(p->batch + first, p->ring, (n - first) * sizeof *p->batch);
	p->head = (p->head + n) % p->cap;
	p->count -= n;
	/* Dropping ends once the queue has drained: the pipeline is woken
	 * to resume the sink then, even if no more ticks come. */
	if ((n && p->want_wake) || (p->stats.dropping && p->count == 0)) {
		p->want_wake = false;
		wake = true;
	}
	*stop = p->stopping;
	*resync = p->resync_pending;
	r = p->restores;
	nr = p->nrestores;
	p->restores = NULL;
	p->nrestores = p->restores_cap = 0;
	p->resync_pending = false;
	if (*resync)
		p->stats.state_resyncs++;
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < nr; i++)
		if (engine_restore_symbol(p->engine, &r[i]))
			log_warn("redis: could not restore symbol '%.32s'",
			         r[i].symbol);
	free(r);
	if (wake && p->wake)
		p->wake(p->wake_ctx);
	return n;
}

/* ------------------------------------------------------- the batch */

/* Note that the tick at batch[i] touched its symbol. */
static void
publisher_touch(struct redis_publisher *p, size_t i)
{
	const char *sym = p->batch[i].symbol;
	size_t h = name_hash(sym) & (TOUCH_SLOTS - 1);

	while (p->touch_gen[h] == p->gen) {
		if (strcmp(p->batch[p->touch_idx[h]].symbol, sym) == 0)
			return;
		h = (h + 1) & (TOUCH_SLOTS - 1);
	}
	p->touch_gen[h] = p->gen;
	p->touch_idx[h] = (uint32_t)i;
	p->unique[p->nunique++] = (uint32_t)i;
}

/*
 * Apply the batch to the publisher's engine, which is what edges will be
 * given as state, connected or not. The applied ticks stay at the front of
 * p->batch with their seqs, and the symbols they touched are noted.
 * Returns the number applied.
 */
static size_t
publisher_apply(struct redis_publisher *p, size_t n)
{
	size_t i, kept = 0;
	uint64_t refused = 0;

	if (++p->gen == 0) {
		memset(p->touch_gen, 0, sizeof p->touch_gen);
		p->gen = 1;
	}
	p->nunique = 0;
	for (i = 0; i < n; i++) {
		uint64_t seq = engine_apply_tick(p->engine, &p->batch[i]);

		if (!seq) {
			refused++;
			continue;
		}
		if (kept != i)
			p->batch[kept] = p->batch[i];
		p->batch[kept].seq = seq;
		publisher_touch(p, kept);
		kept++;
	}
	if (refused) {
		pthread_mutex_lock(&p->mu);
		p->stats.ticks_refused += refused;
		pthread_mutex_unlock(&p->mu);
		log_limited(LOG_WARN,
		            "redis: %llu ticks refused by the publisher's "
		            "engine (a seq not after the one it holds: was "
		            "it restored like the serving engine?)",
		            (unsigned long long)refused);
	}
	return kept;
}

static void
publisher_xadd_head(struct redis_publisher *p)
{
	char t[24];
	size_t k = format_u64(p->maxlen, t);
	struct jsonbuf *b = &p->xadd_head;

	jsonbuf_reset(b);
	resp_str(b, "XADD");
	resp_str(b, p->key_ticks);
	resp_str(b, "MAXLEN");
	resp_str(b, "~");
	resp_bulk(b, t, k);
	resp_str(b, "*");
	resp_str(b, "run");
	resp_str(b, p->run);
}

/* Start an XADD of the current run with `fields` more arguments after
 * "run R" (the head is 8 arguments: XADD key MAXLEN ~ N * run R). */
static void
publisher_xadd(struct redis_publisher *p, size_t fields)
{
	resp_array(&p->out, 8 + fields);
	jsonbuf_append(&p->out, jsonbuf_data(&p->xadd_head), p->xadd_head.len);
	p->commands++;
}

/* Emit the pending chunk of HSET pairs as one command. */
static void
publisher_flush_chunk(struct redis_publisher *p)
{
	if (!p->chunk_pairs)
		return;
	if (jsonbuf_failed(&p->chunk))
		p->out.failed = true;
	resp_array(&p->out, 2 + 2 * p->chunk_pairs);
	resp_str(&p->out, "HSET");
	resp_str(&p->out, p->key_state);
	jsonbuf_append(&p->out, jsonbuf_data(&p->chunk), p->chunk.len);
	jsonbuf_reset(&p->chunk);
	p->chunk_pairs = 0;
	p->commands++;
}

static void
publisher_add_state(struct redis_publisher *p, const struct symbol_state *st)
{
	resp_str(&p->chunk, st->symbol);
	jsonbuf_reset(&p->scratch);
	state_encode(&p->scratch, st);
	if (jsonbuf_failed(&p->scratch))
		p->chunk.failed = true;
	resp_buf(&p->chunk, &p->scratch);
	if (++p->chunk_pairs == HSET_CHUNK)
		publisher_flush_chunk(p);
}

static void
add_state_cb(const struct symbol_state *st, void *ctx)
{
	publisher_add_state(ctx, st);
}

static void publisher_note_error(struct redis_publisher *p, const char *fmt,
                                 ...) __attribute__((format(printf, 2, 3)));

/* Record why the link failed; the first failure of an outage is logged. */
static void
publisher_note_error(struct redis_publisher *p, const char *fmt, ...)
{
	char why[160];
	bool first;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&p->mu);
	first = p->stats.connected || p->stats.down_since_us == 0;
	p->stats.connected = false;
	p->stats.run[0] = '\0';
	if (first)
		p->stats.down_since_us = clock_wall_us();
	p->stats.errors++;
	snprintf(p->stats.last_error, sizeof p->stats.last_error, "%s", why);
	pthread_mutex_unlock(&p->mu);
	if (first)
		log_warn("redis: publishing to %s:%d stopped: %s; ticks are "
		         "kept as state and published when it is back",
		         p->host, p->port, why);
}

static void
publisher_disconnect(struct redis_publisher *p)
{
	if (!p->rc)
		return;
	redisFree(p->rc);
	p->rc = NULL;
	clear_sigpipe();
}

/*
 * Send what p->out holds (p->commands commands) and read every reply.
 * Returns 0, or -1 when the link failed or Redis answered an error; either
 * ends the run (the caller reconnects, which rewrites the whole state).
 */
static int
publisher_roundtrip(struct redis_publisher *p, const char *what)
{
	size_t i, n = p->commands;

	p->commands = 0;
	if (jsonbuf_failed(&p->out)) {
		publisher_note_error(p, "out of memory building %s", what);
		return -1;
	}
	if (redisAppendFormattedCommand(p->rc, jsonbuf_data(&p->out),
	                                p->out.len) != REDIS_OK) {
		publisher_note_error(p, "%s: %s", what, link_error(p->rc));
		return -1;
	}
	for (i = 0; i < n; i++) {
		redisReply *r;
		const char *e;

		if (redisGetReply(p->rc, (void **)&r) != REDIS_OK || !r) {
			publisher_note_error(p, "%s: %s", what,
			                     link_error(p->rc));
			return -1;
		}
		e = reply_error(r);
		if (e) {
			publisher_note_error(p, "%s: redis answered '%.100s'",
			                     what, e);
			freeReplyObject(r);
			return -1;
		}
		freeReplyObject(r);
	}
	return 0;
}

/*
 * Redis held this epoch already: was it ahead of us? An ingest that
 * restarted from a store that had not committed ticks it had published is
 * behind Redis, and is about to give the same seqs to other ticks. Say so;
 * see "Known limit" in the header.
 */
static int
publisher_check_ahead(struct redis_publisher *p)
{
	redisReply *r = redisCommand(p->rc, "HGETALL %s", p->key_state);
	uint64_t ahead = 0, theirs = 0, ours = 0;
	char sample[TICK_SYMBOL_MAX + 1] = "";
	size_t i;

	if (!r) {
		publisher_note_error(p, "HGETALL: %s", link_error(p->rc));
		return -1;
	}
	if (r->type == REDIS_REPLY_ARRAY) {
		for (i = 0; i + 1 < r->elements; i += 2) {
			const redisReply *k = r->element[i],
			                 *v = r->element[i + 1];
			struct symbol_state rs, st;
			const char *why;

			if (k->type != REDIS_REPLY_STRING ||
			    v->type != REDIS_REPLY_STRING ||
			    state_decode(k->str, k->len, v->str, v->len, &rs,
			                 &why))
				continue;
			if (engine_get_state(p->engine, rs.symbol, &st) == 0 &&
			    st.seq >= rs.seq)
				continue;
			if (!ahead++) {
				snprintf(sample, sizeof sample, "%s",
				         rs.symbol);
				theirs = rs.seq;
				ours = engine_get_state(p->engine, rs.symbol,
				                        &st) == 0
				               ? st.seq
				               : 0;
			}
		}
	}
	freeReplyObject(r);
	if (ahead) {
		pthread_mutex_lock(&p->mu);
		p->stats.ahead_symbols += ahead;
		pthread_mutex_unlock(&p->mu);
		log_warn("redis: %s held %llu symbols further on than this "
		         "ingest in epoch %s (e.g. %s at seq %llu, here %llu): "
		         "this ingest lost ticks it had published, and its "
		         "next ticks reuse their seqs; edges and clients may "
		         "hold values those ticks contradict (start a new "
		         "epoch to be safe)",
		         p->key_state, (unsigned long long)ahead, p->epoch,
		         sample, (unsigned long long)theirs,
		         (unsigned long long)ours);
	}
	return 0;
}

/*
 * Start a run: rewrite the epoch, the whole state and a `sync` entry in one
 * MULTI, so a follower sees either the old state or the new one with its
 * sync entry, never a half-written hash. Returns 0, or -1 (link failed).
 */
static int
publisher_full_sync(struct redis_publisher *p, bool check)
{
	redisReply *r = check ? redisCommand(p->rc, "GET %s", p->key_epoch)
	                      : NULL;
	bool other_epoch = false;
	size_t i;

	if (!check)
		goto rewrite;
	if (!r) {
		publisher_note_error(p, "GET: %s", link_error(p->rc));
		return -1;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		publisher_note_error(p, "GET %s: redis answered '%.100s'",
		                     p->key_epoch, r->str);
		freeReplyObject(r);
		return -1;
	}
	if (r->type == REDIS_REPLY_STRING && strcmp(r->str, p->epoch) != 0) {
		other_epoch = true;
		log_warn("redis: %s held epoch %.64s; this ingest's epoch is "
		         "%s: overwriting it (edges will reset)",
		         p->key_epoch, r->str, p->epoch);
	}
	if (r->type == REDIS_REPLY_STRING && !other_epoch) {
		freeReplyObject(r);
		if (publisher_check_ahead(p))
			return -1;
	} else {
		freeReplyObject(r);
	}

rewrite:
	for (i = 0; i < RUN_BYTES; i++)
		snprintf(p->run + 2 * i, 3, "%02x",
		         (unsigned)(next_random(&p->rng) >> 56));
	p->g = 0;
	publisher_xadd_head(p);

	jsonbuf_reset(&p->out);
	jsonbuf_reset(&p->chunk);
	p->chunk_pairs = 0;
	p->commands = 0;
	resp_array(&p->out, 1);
	resp_str(&p->out, "MULTI");
	p->commands++;
	if (other_epoch) {
		/* Entries of another life must not be read as ours. */
		resp_array(&p->out, 2);
		resp_str(&p->out, "DEL");
		resp_str(&p->out, p->key_ticks);
		p->commands++;
	}
	resp_array(&p->out, 2);
	resp_str(&p->out, "DEL");
	resp_str(&p->out, p->key_state);
	p->commands++;
	engine_foreach_symbol(p->engine, add_state_cb, p);
	publisher_flush_chunk(p);
	resp_array(&p->out, 3);
	resp_str(&p->out, "SET");
	resp_str(&p->out, p->key_epoch);
	resp_str(&p->out, p->epoch);
	p->commands++;
	publisher_xadd(p, 4);
	resp_str(&p->out, "g");
	resp_str(&p->out, "0");
	resp_str(&p->out, "sync");
	resp_str(&p->out, p->epoch);
	resp_array(&p->out, 1);
	resp_str(&p->out, "EXEC");
	p->commands++;
	return publisher_roundtrip(p, "full sync");
}

/* Connect and start a run. On failure the next attempt is scheduled. */
static void
publisher_connect(struct redis_publisher *p)
{
	struct engine_stats es;
	char why[160];

	p->rc = link_connect(p->host, p->port, p->connect_us, p->io_us,
	                     "publisher-ingest", why, sizeof why);
	if (!p->rc)
		publisher_note_error(p, "cannot connect to %s:%d: %s", p->host,
		                     p->port, why);
	if (!p->rc || publisher_full_sync(p, true) != 0) {
		publisher_disconnect(p);
		p->next_attempt_us =
		        clock_mono_us() + backoff_next(&p->backoff, &p->rng);
		return;
	}
	backoff_reset(&p->backoff);
	p->last_send_us = clock_mono_us();
	engine_get_stats(p->engine, &es);
	pthread_mutex_lock(&p->mu);
	if (p->ever_connected) {
		p->stats.reconnects++;
		log_info("redis: publishing to %s:%d again after %lld s "
		         "(run %s, %zu symbols rewritten)",
		         p->host, p->port,
		         (long long)((clock_wall_us() - p->stats.down_since_us) /
		                     1000000),
		         p->run, es.symbols);
	} else {
		log_info("redis: publishing to %s:%d under '%s' (run %s, "
		         "epoch %s, %zu symbols)",
		         p->host, p->port, p->prefix, p->run, p->epoch,
		         es.symbols);
	}
	p->ever_connected = true;
	p->stats.connected = true;
	p->stats.down_since_us = 0;
	p->stats.full_syncs++;
	snprintf(p->stats.run, sizeof p->stats.run, "%s", p->run);
	pthread_mutex_unlock(&p->mu);
}

/*
 * Publish the n applied ticks at the front of p->batch: one HSET of the
 * states they touched, then their XADDs (see "Batches" in the header), or
 * a heartbeat when n is 0. Returns 0, or -1 when the link failed.
 */
static int
publisher_send(struct redis_publisher *p, size_t n)
{
	struct symbol_state st;
	size_t i;

	jsonbuf_reset(&p->out);
	jsonbuf_reset(&p->chunk);
	p->chunk_pairs = 0;
	p->commands = 0;
	for (i = 0; i < p->nunique; i++)
		if (engine_get_state(p->engine, p->batch[p->unique[i]].symbol,
		                     &st) == 0)
			publisher_add_state(p, &st);
	publisher_flush_chunk(p);
	for (i = 0; i < n; i++) {
		const struct tick *t = &p->batch[i];

		publisher_xadd(p, 6);
		resp_str(&p->out, "g");
		resp_u64(&p->out, ++p->g);
		resp_str(&p->out, "seq");
		resp_u64(&p->out, t->seq);
		resp_str(&p->out, "tick");
		jsonbuf_reset(&p->scratch);
		tick_line(&p->scratch, t);
		if (jsonbuf_failed(&p->scratch))
			p->out.failed = true;
		resp_buf(&p->out, &p->scratch);
	}
	if (n == 0) {
		char now[24];

		publisher_xadd(p, 4);
		resp_str(&p->out, "g");
		resp_u64(&p->out, p->g);
		resp_str(&p->out, "hb");
		resp_bulk(&p->out, now, format_u64((uint64_t)clock_wall_us(), now));
	}
	if (publisher_roundtrip(p, n ? "XADD" : "heartbeat"))
		return -1;
	p->last_send_us = clock_mono_us();
	pthread_mutex_lock(&p->mu);
	if (n) {
		p->stats.ticks_published += n;
		p->stats.batches++;
	} else {
		p->stats.heartbeats++;
	}
	pthread_mutex_unlock(&p->mu);
	return 0;
}

static void *
publisher_main(void *arg)
{
	struct redis_publisher *p = arg;
	bool stop = false, resync;

	block_sigpipe();
	for (;;) {
		size_t n, applied;

		if (!p->rc && !stop && clock_mono_us() >= p->next_attempt_us)
			publisher_connect(p);
		n = publisher_take(p, &stop, &resync);
		/* States the sink resumed with are in the engine, before the
		 * ticks taken with them: a run starts with them now. */
		if (resync && p->rc && publisher_full_sync(p, false) != 0) {
			/* The next connect's run carries them. */
			publisher_disconnect(p);
			p->next_attempt_us = clock_mono_us();
		}
		/* Stopping: publish what is queued while the link works and
		 * the time allows; there is no one to fold for. */
		if (stop && (n == 0 || !p->rc || clock_mono_us() > p->stop_by_us)) {
			p->unsent_at_close = n;
			break;
		}
		applied = publisher_apply(p, n);
		if (!p->rc) {
			if (applied) {
				pthread_mutex_lock(&p->mu);
				p->stats.ticks_folded += applied;
				pthread_mutex_unlock(&p->mu);
			}
			continue;
		}
		if (n == 0 && clock_mono_us() < p->last_send_us + HEARTBEAT_US)
			continue;
		if (n && !applied)
			continue;
		if (publisher_send(p, applied)) {
			/* The state already holds these ticks; the next
			 * run's full sync carries them to the edges. */
			publisher_disconnect(p);
			p->next_attempt_us = clock_mono_us();
			if (applied) {
				pthread_mutex_lock(&p->mu);
				p->stats.ticks_folded += applied;
				pthread_mutex_unlock(&p->mu);
			}
		}
	}
	publisher_disconnect(p);
	return NULL;
}

int
redis_publisher_start(struct redis_publisher *p, char *err, size_t errlen)
{
	int rc;

	if (p->started)
		return errf(err, errlen, "the redis publisher is running");
	p->started = true;
	p->next_attempt_us = 0;
	rc = pthread_create(&p->thread, NULL, publisher_main, p);
	if (rc) {
		p->started = false;
		return errf(err, errlen, "cannot start the redis thread: %s",
		            strerror(rc));
	}
	return 0;
}

void
redis_publisher_get_stats(struct redis_publisher *p,
                          struct redis_publisher_stats *out)
{
	int64_t now = clock_mono_us();

	pthread_mutex_lock(&p->mu);
	*out = p->stats;
	out->queued = p->count;
	out->lag_us = p->count ? now - p->enq_us[p->head] : 0;
	pthread_mutex_unlock(&p->mu);
}

bool
redis_publisher_degraded(struct redis_publisher *p, char *reason, size_t len)
{
	struct redis_publisher_stats s;
	char since[32];

	redis_publisher_get_stats(p, &s);
	if (s.connected)
		return false;
	if (!s.down_since_us) {
		snprintf(reason, len, "connecting to redis %s:%d", p->host,
		         p->port);
		return true;
	}
	iso_time(s.down_since_us, since, sizeof since);
	snprintf(reason, len, "redis %s:%d unreachable since %s (%lld s): %s",
	         p->host, p->port, since,
	         (long long)((clock_wall_us() - s.down_since_us) / 1000000),
	         s.last_error);
	return true;
}

void
redis_publisher_destroy(struct redis_publisher *p)
{
	if (!p)
		return;
	if (p->started) {
		pthread_mutex_lock(&p->mu);
		p->stopping = true;
		p->stop_by_us = clock_mono_us() + CLOSE_FLUSH_US;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->thread, NULL);
		if (p->count + p->unsent_at_close)
			log_warn("redis: %zu ticks still queued at close were "
			         "not published",
			         p->count + p->unsent_at_close);
	}
	publisher_disconnect(p);
	engine_destroy(p->engine);
	jsonbuf_free(&p->xadd_head);
	jsonbuf_free(&p->out);
	jsonbuf_free(&p->chunk);
	jsonbuf_free(&p->scratch);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->mu);
	free(p->ring);
	free(p->enq_us);
	free(p->batch);
	free(p->dropped);
	free(p->restores);
	free(p);
}

/* ------------------------------------------------------------ the sink */

/* Under p->mu: note that symbol's ticks were dropped. */
static void
note_dropped(struct redis_publisher *p, const char *symbol)
{
	size_t len = strnlen(symbol, TICK_SYMBOL_MAX), i;

	if ((p->ndropped + 1) * 2 > (p->dropped ? p->dropped_mask + 1 : 0)) {
		size_t size = p->dropped ? (p->dropped_mask + 1) * 2 : 1024, k;
		char(*t)[TICK_SYMBOL_MAX + 1] = calloc(size, sizeof *t);

		if (!t)
			return; /* the resume then misses it: the next run
			         * still carries the whole state */
		for (k = 0; p->dropped && k <= p->dropped_mask; k++) {
			size_t j;

			if (!p->dropped[k][0])
				continue;
			j = name_hash(p->dropped[k]) & (size - 1);
			while (t[j][0])
				j = (j + 1) & (size - 1);
			memcpy(t[j], p->dropped[k], sizeof t[j]);
		}
		free(p->dropped);
		p->dropped = t;
		p->dropped_mask = size - 1;
	}
	for (i = name_hash(symbol) & p->dropped_mask; p->dropped[i][0];
	     i = (i + 1) & p->dropped_mask)
		if (!strncmp(p->dropped[i], symbol, TICK_SYMBOL_MAX))
			return;
	memcpy(p->dropped[i], symbol, len);
	p->dropped[i][len] = '\0';
	p->ndropped++;
}

static size_t
pub_sink_space(void *impl)
{
	return redis_publisher_append_space(impl);
}

/* A live batch: what fits is queued, the rest (and every tick after it
 * until the queue drains) dropped and its symbols noted. */
static void
pub_sink_append(void *impl, const struct tick *applied, size_t n)
{
	struct redis_publisher *p = impl;
	size_t fit = 0, i;

	pthread_mutex_lock(&p->mu);
	if (!p->stats.dropping && !p->stopping)
		fit = p->cap - p->count < n ? p->cap - p->count : n;
	pthread_mutex_unlock(&p->mu);
	if (fit && redis_publisher_append(p, applied, fit))
		fit = 0;
	if (fit == n)
		return;
	pthread_mutex_lock(&p->mu);
	if (!p->stats.dropping) {
		p->stats.dropping = true;
		p->dropping_since_us = clock_wall_us();
		log_limited(LOG_WARN,
		            "redis: %s:%d cannot keep up with the live feed (%zu "
		         "ticks queued): the edges get the state instead of "
		         "every tick until it catches up",
		         p->host, p->port, p->count);
	}
	for (i = fit; i < n; i++)
		note_dropped(p, applied[i].symbol);
	p->stats.ticks_dropped += n - fit;
	p->want_wake = true;
	pthread_mutex_unlock(&p->mu);
}

static bool
pub_sink_wants_resume(void *impl)
{
	struct redis_publisher *p = impl;
	bool yes;

	pthread_mutex_lock(&p->mu);
	yes = p->stats.dropping && p->count == 0;
	pthread_mutex_unlock(&p->mu);
	return yes;
}

/* The queue has drained: the dropped symbols' states, as the serving
 * engine has them now, go to the thread, which starts a run with them. */
static void
pub_sink_resume(void *impl, sink_state_fn state, void *ctx)
{
	struct redis_publisher *p = impl;
	size_t i, n = 0;

	pthread_mutex_lock(&p->mu);
	for (i = 0; p->dropped && i <= p->dropped_mask; i++) {
		if (!p->dropped[i][0])
			continue;
		if (p->nrestores == p->restores_cap) {
			size_t cap = p->restores_cap ? p->restores_cap * 2 : 64;
			struct symbol_state *r =
			        realloc(p->restores, cap * sizeof *r);

			if (!r)
				break;
			p->restores = r;
			p->restores_cap = cap;
		}
		if (state(p->dropped[i], &p->restores[p->nrestores], ctx) == 0) {
			p->nrestores++;
			n++;
		}
		p->dropped[i][0] = '\0';
	}
	p->ndropped = 0;
	p->stats.dropping = false;
	p->resync_pending = true;
	pthread_mutex_unlock(&p->mu);
	pthread_cond_signal(&p->cond);
	log_limited(LOG_INFO,
	            "redis: caught up; %zu symbols go to the edges as state (a "
	         "new run)",
	         n);
}

static void
pub_sink_status(void *impl, struct sink_status *out)
{
	struct redis_publisher *p = impl;
	struct redis_publisher_stats ps;
	int64_t since;

	redis_publisher_get_stats(p, &ps);
	pthread_mutex_lock(&p->mu);
	since = ps.dropping ? p->dropping_since_us : 0;
	pthread_mutex_unlock(&p->mu);
	memset(out, 0, sizeof *out);
	out->lag_us = ps.lag_us;
	out->queued = ps.queued;
	out->dropped = ps.ticks_dropped;
	out->dropping = ps.dropping;
	out->failing = redis_publisher_degraded(p, out->reason,
	                                        sizeof out->reason);
	if (!out->failing && since)
		snprintf(out->reason, sizeof out->reason,
		         "redis behind the live feed for %.1f s: the edges get "
		         "state instead of every tick",
		         (double)(clock_wall_us() - since) / 1e6);
}

static const struct sink_ops pub_sink_ops = {
	.name = "redis",
	.space = pub_sink_space,
	.append = pub_sink_append,
	.wants_resume = pub_sink_wants_resume,
	.resume = pub_sink_resume,
	.status = pub_sink_status,
};

struct sink
redis_publisher_sink(struct redis_publisher *p)
{
	struct sink k = {&pub_sink_ops, p};

	return k;
}

/* ================================================================== edge */

/* A resync waiting for redis_follower_apply_pending(). */
struct pending_sync {
	struct symbol_state *states;
	size_t n;
	char epoch[REDIS_LINK_EPOCH_MAX + 1];
};

struct redis_follower {
	char host[HOST_MAX];
	int port;
	char prefix[REDIS_LINK_PREFIX_MAX + 1];
	char key_ticks[KEY_MAX], key_state[KEY_MAX], key_epoch[KEY_MAX];
	struct tick_queue *queue;
	void (*epoch_cb)(const char *epoch, void *ctx);
	void (*restore_cb)(const struct symbol_state *st, void *ctx);
	void (*wake)(void *ctx);
	void *ctx, *wake_ctx;
	int64_t connect_us, silent_us;

	/* The thread's. */
	redisContext *rc;
	uint64_t rng;
	struct backoff backoff;
	bool ever_connected;
	bool need_sync;  /* the next step is a resync */
	bool positioned; /* last_id is where the state left off */
	bool have_run;   /* run and g are known */
	char last_id[48];
	struct stream_id last;
	char run[RUN_LEN + 1];
	uint64_t g;
	struct tick *batch;

	/* The service thread's (redis_follower_apply_pending). */
	char applied_epoch[REDIS_LINK_EPOCH_MAX + 1];
	bool applied_any;

	/* Shared, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stopping;
	bool waiting_for_ingest; /* Redis holds no state for the prefix */
	int fd;                  /* the live socket, for a quick stop */
	struct pending_sync pend;
	bool pend_ready;
	uint64_t syncs_posted, syncs_applied;
	int64_t last_entry_mono;
	struct redis_follower_stats stats;
	bool started;
	pthread_t thread;
};

struct redis_follower *
redis_follower_create(const struct redis_follower_options *opt, char *err,
                      size_t errlen)
{
	struct redis_follower *f;
	const char *prefix;

	if (!opt) {
		errf(err, errlen, "--redis needs a host name or address");
		return NULL;
	}
	prefix = check_address(opt->host, opt->port, opt->prefix, err, errlen);
	if (!prefix)
		return NULL;
	if (!opt->ticks || !opt->epoch || !opt->restore || !opt->wake) {
		errf(err, errlen,
		     "a redis follower needs a tick queue and the epoch, "
		     "restore and wake callbacks");
		return NULL;
	}
	f = calloc(1, sizeof *f);
	if (!f) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(f->host, sizeof f->host, "%s", opt->host);
	f->port = opt->port;
	snprintf(f->prefix, sizeof f->prefix, "%s", prefix);
	keys_init(prefix, f->key_ticks, f->key_state, f->key_epoch);
	f->queue = opt->ticks;
	f->epoch_cb = opt->epoch;
	f->restore_cb = opt->restore;
	f->wake = opt->wake;
	f->ctx = opt->ctx;
	f->wake_ctx = opt->wake_ctx ? opt->wake_ctx : opt->ctx;
	f->connect_us =
	        (int64_t)(opt->connect_timeout_ms ? opt->connect_timeout_ms
	                                          : DEFAULT_CONNECT_MS) *
	        1000;
	f->silent_us =
	        (int64_t)(opt->silent_ms ? opt->silent_ms : DEFAULT_SILENT_MS) *
	        1000;
	f->backoff.max_us =
	        (int64_t)(opt->backoff_max_ms ? opt->backoff_max_ms
	                                      : DEFAULT_BACKOFF_MAX_MS) *
	        1000;
	f->rng = random_seed();
	f->need_sync = true;
	f->fd = -1;
	snprintf(f->last_id, sizeof f->last_id, "0-0");
	pthread_mutex_init(&f->mu, NULL);
	cond_init_mono(&f->cond);
	f->batch = malloc(XREAD_COUNT * sizeof *f->batch);
	if (!f->batch) {
		errf(err, errlen, "out of memory");
		redis_follower_destroy(f);
		return NULL;
	}
	return f;
}

static bool
follower_stopping(struct redis_follower *f)
{
	bool stop;

	pthread_mutex_lock(&f->mu);
	stop = f->stopping;
	pthread_mutex_unlock(&f->mu);
	return stop;
}

/* Sleep for us, or until the follower stops. */
static void
follower_sleep(struct redis_follower *f, int64_t us)
{
	int64_t until = clock_mono_us() + us;

	pthread_mutex_lock(&f->mu);
	while (!f->stopping && clock_mono_us() < until)
		cond_wait_until(&f->cond, &f->mu, until);
	pthread_mutex_unlock(&f->mu);
}

static void follower_note_error(struct redis_follower *f, bool link_lost,
                                const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
follower_note_error(struct redis_follower *f, bool link_lost, const char *fmt,
                    ...)
{
	char why[160];
	bool first = false;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&f->mu);
	if (f->stopping) {
		/* Our own shutdown() of the socket: not news. */
		pthread_mutex_unlock(&f->mu);
		return;
	}
	if (link_lost) {
		first = f->stats.connected || f->stats.down_since_us == 0;
		f->stats.connected = false;
		if (first)
			f->stats.down_since_us = clock_wall_us();
	}
	f->stats.errors++;
	snprintf(f->stats.last_error, sizeof f->stats.last_error, "%s", why);
	pthread_mutex_unlock(&f->mu);
	if (first)
		log_warn("redis: following %s:%d stopped: %s; serving the "
		         "last state meanwhile",
		         f->host, f->port, why);
	else if (!link_lost)
		log_limited(LOG_WARN, "redis: %s", why);
}

static void
follower_disconnect(struct redis_follower *f)
{
	if (!f->rc)
		return;
	pthread_mutex_lock(&f->mu);
	f->fd = -1;
	pthread_mutex_unlock(&f->mu);
	redisFree(f->rc);
	f->rc = NULL;
	clear_sigpipe();
}

static int
follower_connect(struct redis_follower *f)
{
	char why[160];
	bool stop;

	f->rc = link_connect(f->host, f->port, f->connect_us,
	                     FOLLOWER_IO_MS * 1000ll, "publisher-edge", why,
	                     sizeof why);
	if (!f->rc) {
		follower_note_error(f, true, "cannot connect to %s:%d: %s",
		                    f->host, f->port, why);
		return -1;
	}
	pthread_mutex_lock(&f->mu);
	stop = f->stopping;
	f->fd = f->rc->fd;
	if (!stop) {
		if (f->ever_connected) {
			f->stats.reconnects++;
			log_info("redis: following %s:%d again after %lld s",
			         f->host, f->port,
			         (long long)((clock_wall_us() -
			                      f->stats.down_since_us) /
			                     1000000));
		}
		f->stats.connected = true;
		f->stats.down_since_us = 0;
		f->last_entry_mono = clock_mono_us();
	}
	pthread_mutex_unlock(&f->mu);
	f->ever_connected = true;
	if (stop) {
		follower_disconnect(f);
		return -1;
	}
	return 0;
}

/* The string value of field `name` among an entry's field/value pairs. */
static const redisReply *
entry_field(const redisReply *fields, const char *name)
{
	size_t i;

	if (!fields || fields->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *k = fields->element[i];
		const redisReply *v = fields->element[i + 1];

		if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0)
			return v->type == REDIS_REPLY_STRING ? v : NULL;
	}
	return NULL;
}

/* The id, run and g of one stream entry ([id, [field, value, …]]). */
struct entry {
	struct stream_id id;
	const redisReply *idr, *fields, *run, *g, *seq, *tick, *hb, *sync;
	uint64_t gv;
};

static int
entry_parse(const redisReply *e, struct entry *out)
{
	memset(out, 0, sizeof *out);
	if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING)
		return -1;
	out->idr = e->element[0];
	out->fields = e->element[1];
	if (stream_id_parse(out->idr->str, out->idr->len, &out->id))
		return -1;
	out->run = entry_field(out->fields, "run");
	out->g = entry_field(out->fields, "g");
	out->seq = entry_field(out->fields, "seq");
	out->tick = entry_field(out->fields, "tick");
	out->hb = entry_field(out->fields, "hb");
	out->sync = entry_field(out->fields, "sync");
	if (!out->run || out->run->len != RUN_LEN || !out->g ||
	    parse_u64(out->g->str, out->g->len, &out->gv))
		return -1;
	return 0;
}

/* Remember e as the last entry taken in. */
static void
follower_advance(struct redis_follower *f, const struct entry *e)
{
	f->last = e->id;
	snprintf(f->last_id, sizeof f->last_id, "%s", e->idr->str);
	memcpy(f->run, e->run->str, RUN_LEN);
	f->run[RUN_LEN] = '\0';
	f->g = e->gv;
	f->have_run = true;
	f->positioned = true;
}

/*
 * Take the epoch, every symbol's state and the newest entry in one MULTI,
 * so that the state is exactly the stream up to that entry (or a little
 * further: see "Batches" in the header). Hand them to the service thread
 * and wait until it has applied them, so that no tick read after this can
 * reach the engine before them. Returns 0, 1 when Redis holds no state for
 * the prefix (no ingest has published since Redis started), or -1 when the
 * link failed.
 */
static int
follower_sync(struct redis_follower *f)
{
	struct pending_sync s = {0};
	redisReply *r = NULL, *x;
	struct entry e;
	bool have_entry = false;
	size_t i, bad = 0;
	int k;

	redisAppendCommand(f->rc, "MULTI");
	redisAppendCommand(f->rc, "GET %s", f->key_epoch);
	redisAppendCommand(f->rc, "HGETALL %s", f->key_state);
	redisAppendCommand(f->rc, "XREVRANGE %s + - COUNT 1", f->key_ticks);
	redisAppendCommand(f->rc, "EXEC");
	for (k = 0; k < 5; k++) {
		if (r)
			freeReplyObject(r);
		if (redisGetReply(f->rc, (void **)&r) != REDIS_OK || !r) {
			follower_note_error(f, true, "resync: %s",
			                    link_error(f->rc));
			return -1;
		}
		if (reply_error(r)) {
			follower_note_error(f, true,
			                    "resync: redis answered '%.100s'",
			                    reply_error(r));
			freeReplyObject(r);
			return -1;
		}
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
		follower_note_error(f, true, "resync: unexpected EXEC reply");
		freeReplyObject(r);
		return -1;
	}
	x = r->element[0];
	if (x->type != REDIS_REPLY_STRING) {
		freeReplyObject(r);
		pthread_mutex_lock(&f->mu);
		f->waiting_for_ingest = true;
		pthread_mutex_unlock(&f->mu);
		return 1;
	}
	snprintf(s.epoch, sizeof s.epoch, "%s", x->str);

	x = r->element[1];
	if (x->type == REDIS_REPLY_ARRAY && x->elements >= 2) {
		s.states = malloc(x->elements / 2 * sizeof *s.states);
		if (!s.states) {
			freeReplyObject(r);
			follower_note_error(f, true, "resync: out of memory");
			return -1;
		}
	}
	for (i = 0; x->type == REDIS_REPLY_ARRAY && i + 1 < x->elements;
	     i += 2) {
		const redisReply *name = x->element[i], *v = x->element[i + 1];
		const char *why = "not a string";

		if (name->type == REDIS_REPLY_STRING &&
		    v->type == REDIS_REPLY_STRING &&
		    state_decode(name->str, name->len, v->str, v->len,
		                 &s.states[s.n], &why) == 0) {
			s.n++;
			continue;
		}
		if (!bad++)
			log_warn("redis: %s: skipped the state of '%.40s': %s",
			         f->key_state,
			         name->type == REDIS_REPLY_STRING ? name->str
			                                          : "?",
			         why);
	}

	x = r->element[2];
	if (x->type == REDIS_REPLY_ARRAY && x->elements == 1)
		have_entry = entry_parse(x->element[0], &e) == 0;
	if (have_entry) {
		follower_advance(f, &e);
	} else {
		/* No stream (or a foreign newest entry): every entry that
		 * comes from here on is newer than this state. */
		f->have_run = false;
		f->positioned = true;
		if (x->type == REDIS_REPLY_ARRAY && x->elements == 1 &&
		    x->element[0]->type == REDIS_REPLY_ARRAY &&
		    x->element[0]->elements == 2 &&
		    x->element[0]->element[0]->type == REDIS_REPLY_STRING &&
		    stream_id_parse(x->element[0]->element[0]->str,
		                    x->element[0]->element[0]->len,
		                    &f->last) == 0)
			snprintf(f->last_id, sizeof f->last_id, "%s",
			         x->element[0]->element[0]->str);
		else
			snprintf(f->last_id, sizeof f->last_id, "0-0");
	}
	freeReplyObject(r);
	f->need_sync = false;
	backoff_reset(&f->backoff);

	pthread_mutex_lock(&f->mu);
	free(f->pend.states);
	f->pend = s;
	f->pend_ready = true;
	f->syncs_posted++;
	f->waiting_for_ingest = false;
	f->last_entry_mono = clock_mono_us();
	f->stats.resyncs++;
	f->stats.symbols_restored += s.n;
	f->stats.synced = true;
	f->stats.errors += bad;
	snprintf(f->stats.epoch, sizeof f->stats.epoch, "%s", s.epoch);
	snprintf(f->stats.last_id, sizeof f->stats.last_id, "%s", f->last_id);
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
	log_info("redis: took the state of %zu symbols from %s:%d (epoch %s, "
	         "stream at %s)",
	         s.n, f->host, f->port, s.epoch, f->last_id);

	f->wake(f->wake_ctx);
	pthread_mutex_lock(&f->mu);
	while (!f->stopping && f->syncs_applied < f->syncs_posted)
		pthread_cond_wait(&f->cond, &f->mu);
	pthread_mutex_unlock(&f->mu);
	return 0;
}

/*
 * XREAD returned nothing for a second. Make sure the stream is still the
 * one we follow: after Redis lost its data, or a stream was deleted, the
 * entries we wait for may never come, or come with smaller ids than ours.
 * Returns 0, or -1 when the link failed.
 */
static int
follower_idle_check(struct redis_follower *f)
{
	redisReply *r =
	        redisCommand(f->rc, "XREVRANGE %s + - COUNT 1", f->key_ticks);
	struct stream_id id;

	if (!r) {
		follower_note_error(f, true, "XREVRANGE: %s",
		                    link_error(f->rc));
		return -1;
	}
	if (reply_error(r)) {
		follower_note_error(f, true,
		                    "XREVRANGE: redis answered '%.100s'",
		                    reply_error(r));
		freeReplyObject(r);
		return -1;
	}
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 0) {
		if (f->have_run)
			f->need_sync = true; /* the stream is gone */
	} else if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
	           r->element[0]->type == REDIS_REPLY_ARRAY &&
	           r->element[0]->elements == 2 &&
	           r->element[0]->element[0]->type == REDIS_REPLY_STRING &&
	           stream_id_parse(r->element[0]->element[0]->str,
	                           r->element[0]->element[0]->len, &id) == 0 &&
	           stream_id_cmp(id, f->last) < 0) {
		f->need_sync = true; /* a new stream, with older ids */
	}
	freeReplyObject(r);
	return 0;
}

/*
 * Decide whether entry e continues what we hold (see "Runs" in the header).
 * Returns 1 for a tick or heartbeat to take, 0 when e starts a gap.
 */
static int
follower_continues(const struct redis_follower *f, const struct entry *e)
{
	if (e->sync)
		return 0; /* a new run rewrote the state */
	if (!f->have_run)
		return 1; /* the state was taken with no stream */
	if (memcmp(e->run->str, f->run, RUN_LEN) != 0)
		return 0;
	if (e->tick && e->seq)
		return e->gv == f->g + 1;
	if (e->hb)
		return e->gv == f->g;
	return 0;
}

/*
 * Read the next entries (waiting up to a second), push their ticks, and
 * note a gap. Returns 0, or -1 when the link failed (or the queue closed).
 */
static int
follower_read(struct redis_follower *f)
{
	redisReply *r, *entries;
	struct stream_id newest = {0, 0};
	size_t i, n = 0, read = 0;
	int64_t ts = 0;
	bool gap = false;
	char why[160];

	r = redisCommand(f->rc, "XREAD COUNT %d BLOCK %d STREAMS %s %s",
	                 XREAD_COUNT, XREAD_BLOCK_MS, f->key_ticks, f->last_id);
	if (!r) {
		follower_note_error(f, true, "XREAD: %s", link_error(f->rc));
		return -1;
	}
	if (r->type == REDIS_REPLY_NIL) {
		freeReplyObject(r);
		return follower_idle_check(f);
	}
	if (reply_error(r) || r->type != REDIS_REPLY_ARRAY ||
	    r->elements != 1 || r->element[0]->type != REDIS_REPLY_ARRAY ||
	    r->element[0]->elements != 2 ||
	    r->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
		follower_note_error(f, true, "XREAD: %s",
		                    reply_error(r) ? reply_error(r)
		                                   : "unexpected reply");
		freeReplyObject(r);
		return -1;
	}
	entries = r->element[0]->element[1];
	for (i = 0; i < entries->elements && !gap; i++) {
		struct entry e;

		if (entry_parse(entries->element[i], &e)) {
			/* Not written by a publisher: skip it, keep g. */
			if (entries->element[i]->type == REDIS_REPLY_ARRAY &&
			    entries->element[i]->elements == 2 &&
			    entries->element[i]->element[0]->type ==
			            REDIS_REPLY_STRING) {
				const redisReply *id =
				        entries->element[i]->element[0];

				if (stream_id_parse(id->str, id->len,
				                    &f->last) == 0)
					snprintf(f->last_id, sizeof f->last_id,
					         "%s", id->str);
			}
			follower_note_error(f, false,
			                    "%s: skipped an entry that is not "
			                    "a publisher's",
			                    f->key_ticks);
			continue;
		}
		if (!follower_continues(f, &e)) {
			gap = true;
			break;
		}
		if (e.tick && e.seq) {
			uint64_t seq;

			if (parse_u64(e.seq->str, e.seq->len, &seq) ||
			    tick_from_line(e.tick->str, e.tick->len, seq,
			                   &f->batch[n], why, sizeof why)) {
				follower_note_error(
				        f, false, "%s: bad tick at %s: %s",
				        f->key_ticks, e.idr->str, why);
				gap = true; /* the state will be right */
				break;
			}
			ts = f->batch[n].ts;
			n++;
		}
		follower_advance(f, &e);
		newest = e.id;
		read++;
	}
	freeReplyObject(r);
	if (gap)
		f->need_sync = true;
	else
		backoff_reset(&f->backoff);
	if (n && tick_queue_push(f->queue, f->batch, n)) {
		pthread_mutex_lock(&f->mu);
		f->stopping = true; /* the queue closed: shutting down */
		pthread_mutex_unlock(&f->mu);
		return -1;
	}
	pthread_mutex_lock(&f->mu);
	if (read) {
		f->last_entry_mono = clock_mono_us();
		f->stats.entries_read += read;
		f->stats.lag_us = clock_wall_us() - (int64_t)newest.ms * 1000;
		snprintf(f->stats.last_id, sizeof f->stats.last_id, "%s",
		         f->last_id);
	}
	if (n) {
		f->stats.ticks_pushed += n;
		f->stats.last_tick_ts = ts;
	}
	pthread_mutex_unlock(&f->mu);
	return 0;
}

static void *
follower_main(void *arg)
{
	struct redis_follower *f = arg;

	block_sigpipe();
	while (!follower_stopping(f)) {
		int rc;

		if (!f->rc && follower_connect(f)) {
			follower_sleep(f, backoff_next(&f->backoff, &f->rng));
			continue;
		}
		if (f->need_sync) {
			rc = follower_sync(f);
			if (rc > 0) {
				follower_sleep(f, WAIT_FOR_INGEST_US);
			} else if (rc < 0) {
				follower_disconnect(f);
				follower_sleep(
				        f, backoff_next(&f->backoff, &f->rng));
			}
			continue;
		}
		/* A dropped link is tried again at once, then with
		 * backoff (in follower_connect's failures above). */
		if (follower_read(f))
			follower_disconnect(f);
	}
	follower_disconnect(f);
	return NULL;
}

int
redis_follower_start(struct redis_follower *f, char *err, size_t errlen)
{
	int rc;

	if (f->started)
		return errf(err, errlen, "the redis follower is running");
	f->started = true;
	rc = pthread_create(&f->thread, NULL, follower_main, f);
	if (rc) {
		f->started = false;
		return errf(err, errlen, "cannot start the redis thread: %s",
		            strerror(rc));
	}
	return 0;
}

size_t
redis_follower_apply_pending(struct redis_follower *f)
{
	struct pending_sync s;
	size_t i;

	pthread_mutex_lock(&f->mu);
	if (!f->pend_ready) {
		pthread_mutex_unlock(&f->mu);
		return 0;
	}
	s = f->pend;
	memset(&f->pend, 0, sizeof f->pend);
	f->pend_ready = false;
	pthread_mutex_unlock(&f->mu);

	if (!f->applied_any || strcmp(f->applied_epoch, s.epoch) != 0) {
		f->epoch_cb(s.epoch, f->ctx);
		snprintf(f->applied_epoch, sizeof f->applied_epoch, "%s",
		         s.epoch);
		f->applied_any = true;
	}
	for (i = 0; i < s.n; i++)
		f->restore_cb(&s.states[i], f->ctx);
	free(s.states);

	pthread_mutex_lock(&f->mu);
	f->syncs_applied++;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
	return s.n;
}

int
redis_follower_wait_synced(struct redis_follower *f, unsigned timeout_ms)
{
	int64_t until = clock_mono_us() + (int64_t)timeout_ms * 1000;
	int rc;

	pthread_mutex_lock(&f->mu);
	while (!f->stopping && f->syncs_posted == 0 && clock_mono_us() < until)
		cond_wait_until(&f->cond, &f->mu, until);
	rc = f->syncs_posted ? 0 : -1;
	pthread_mutex_unlock(&f->mu);
	return rc;
}

void
redis_follower_get_stats(struct redis_follower *f,
                         struct redis_follower_stats *out)
{
	pthread_mutex_lock(&f->mu);
	*out = f->stats;
	out->idle_us = f->stats.connected ? clock_mono_us() - f->last_entry_mono : 0;
	pthread_mutex_unlock(&f->mu);
}

bool
redis_follower_synced(struct redis_follower *f)
{
	bool synced;

	pthread_mutex_lock(&f->mu);
	synced = f->stats.epoch[0] != '\0';
	pthread_mutex_unlock(&f->mu);
	return synced;
}

bool
redis_follower_degraded(struct redis_follower *f, char *reason, size_t len)
{
	struct redis_follower_stats s;
	char since[32];
	bool waiting;

	redis_follower_get_stats(f, &s);
	pthread_mutex_lock(&f->mu);
	waiting = f->waiting_for_ingest;
	pthread_mutex_unlock(&f->mu);
	if (!s.connected && !s.down_since_us) {
		snprintf(reason, len, "connecting to redis %s:%d", f->host,
		         f->port);
		return true;
	}
	if (!s.connected) {
		iso_time(s.down_since_us, since, sizeof since);
		snprintf(reason, len,
		         "redis %s:%d unreachable since %s (%lld s): %s",
		         f->host, f->port, since,
		         (long long)((clock_wall_us() - s.down_since_us) / 1000000),
		         s.last_error);
		return true;
	}
	if (waiting) {
		snprintf(reason, len,
		         "redis %s:%d holds no state under '%s': waiting for "
		         "the ingest to publish it",
		         f->host, f->port, f->prefix);
		return true;
	}
	if (s.idle_us > f->silent_us) {
		snprintf(reason, len,
		         "ingest silent for %lld s (no ticks or heartbeats "
		         "on %s)",
		         (long long)(s.idle_us / 1000000), f->key_ticks);
		return true;
	}
	return false;
}

void
redis_follower_destroy(struct redis_follower *f)
{
	if (!f)
		return;
	if (f->started) {
		pthread_mutex_lock(&f->mu);
		f->stopping = true;
		/* Wakes a blocked XREAD now rather than within a second. */
		if (f->fd >= 0)
			shutdown(f->fd, SHUT_RDWR);
		pthread_cond_broadcast(&f->cond);
		pthread_mutex_unlock(&f->mu);
		pthread_join(f->thread, NULL);
	}
	follower_disconnect(f);
	free(f->pend.states);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->mu);
	free(f->batch);
	free(f);
}

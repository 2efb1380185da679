/*
 * redis_wire.c: what the ingest's publisher and the edge's follower share:
 * the wire (see redis_link.h for the keys, the entry format, runs and
 * faults).
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
#include "redis_private.h"

struct timeval
redis__timeval_of(int64_t us)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(us / 1000000);
	tv.tv_usec = (suseconds_t)(us % 1000000);
	return tv;
}

/* Wait on c until the monotonic time `until` in µs (or a signal). */
void
redis__cond_wait_until(pthread_cond_t *c, pthread_mutex_t *mu, int64_t until)
{
	struct timespec ts = clock_timespec_of_ns(until * 1000);

	pthread_cond_timedwait(c, mu, &ts);
}

void
redis__iso_time(int64_t us, char *out, size_t len)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) ||
	    !strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, len, "?");
}

void
redis__block_sigpipe(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Consume a SIGPIPE left pending in this thread by a failed write. */
void
redis__clear_sigpipe(void)
{
	struct timespec zero = {0, 0};
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	while (sigtimedwait(&set, NULL, &zero) == SIGPIPE)
		;
}

uint64_t
redis__random_seed(void)
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
uint64_t
redis__next_random(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 2685821657736338717ull;
}

int64_t
redis__backoff_next(struct backoff *b, uint64_t *rng)
{
	int64_t base = b->base_us ? b->base_us : BACKOFF_MIN_US;
	int64_t wait = base / 2 + (int64_t)(redis__next_random(rng) %
	                                    (uint64_t)(base / 2 + 1));

	b->base_us = base >= b->max_us / 2 ? b->max_us : base * 2;
	return wait;
}

void
redis__backoff_reset(struct backoff *b)
{
	b->base_us = 0;
}

bool
redis__epoch_valid(const char *s)
{
	size_t len = strlen(s), i;

	if (len == 0 || len > REDIS_LINK_EPOCH_MAX)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

int
redis__parse_u64(const char *s, size_t len, uint64_t *out)
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

	if (redis__parse_u64(s + neg, len - neg, &m))
		return -1;
	if (m > (uint64_t)INT64_MAX + neg)
		return -1;
	*out = neg ? (m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m)
	           : (int64_t)m;
	return 0;
}

int
redis__stream_id_parse(const char *s, size_t len, struct stream_id *out)
{
	const char *dash = memchr(s, '-', len);

	if (!dash)
		return -1;
	if (redis__parse_u64(s, (size_t)(dash - s), &out->ms) ||
	    redis__parse_u64(dash + 1, len - (size_t)(dash - s) - 1, &out->seq))
		return -1;
	return 0;
}

int
redis__stream_id_cmp(struct stream_id a, struct stream_id b)
{
	if (a.ms != b.ms)
		return a.ms < b.ms ? -1 : 1;
	if (a.seq != b.seq)
		return a.seq < b.seq ? -1 : 1;
	return 0;
}

/* ------------------------------------------------------------- RESP */

void
redis__resp_count(struct jsonbuf *b, char kind, size_t n)
{
	char t[24];
	size_t k = format_u64(n, t);

	jsonbuf_append_char(b, kind);
	jsonbuf_append(b, t, k);
	jsonbuf_append(b, "\r\n", 2);
}

void
redis__resp_array(struct jsonbuf *b, size_t n)
{
	redis__resp_count(b, '*', n);
}

void
redis__resp_bulk(struct jsonbuf *b, const void *s, size_t len)
{
	if (jsonbuf_reserve(b, len + 26))
		return;
	redis__resp_count(b, '$', len);
	jsonbuf_append(b, s, len);
	jsonbuf_append(b, "\r\n", 2);
}

void
redis__resp_str(struct jsonbuf *b, const char *s)
{
	redis__resp_bulk(b, s, strlen(s));
}

void
redis__resp_u64(struct jsonbuf *b, uint64_t v)
{
	char t[24];

	redis__resp_bulk(b, t, format_u64(v, t));
}

void
redis__resp_buf(struct jsonbuf *b, const struct jsonbuf *v)
{
	redis__resp_bulk(b, v->len ? jsonbuf_data(v) : "", v->len);
}

/* ---------------------------------------------------------- encodings */

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
 * The inverse of tick_file_write_json() and nothing more: {"ts":I,"symbol":
 * "S"} with ,"<input field>":D members, as the publisher wrote them. Not the
 * tick-file parser (tick_parse_line): the format is the same, but that
 * parser also applies what a feed may send (no negative sizes, at least one
 * field) and reads what a person may write (ISO times, escapes, any member
 * order), while an edge must take back exactly what the ingest's engine
 * accepted, and only that.
 */
int
redis__tick_from_line(const char *s, size_t len, uint64_t seq, struct tick *out,
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

/* "s2 <seq> <ts> <fsv> <session> <field>=[<decimal>]@<changed_seq> …"
 * (see the header) */
void
redis__state_encode(struct jsonbuf *b, const struct symbol_state *st)
{
	int f;

	jsonbuf_append_str(b, "s2 ");
	jsonbuf_append_u64(b, st->seq);
	jsonbuf_append_char(b, ' ');
	jsonbuf_append_i64(b, st->ts);
	jsonbuf_append_str(b, st->feed_sends_volume ? " 1 " : " 0 ");
	if (st->session == SYMBOL_STATE_SESSION_UNKNOWN)
		jsonbuf_append_char(b, '-');
	else
		jsonbuf_append_i64(b, st->session);
	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		bool has = (st->present >> f) & 1u;

		if (!has && !st->changed_seq[f])
			continue;
		jsonbuf_append_char(b, ' ');
		jsonbuf_append_str(b, tick_field_name((enum tick_field)f));
		jsonbuf_append_char(b, '=');
		if (has)
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
int
redis__state_decode(const char *name, size_t namelen, const char *s, size_t len,
                    struct symbol_state *out, const char **why)
{
	const char *p = s, *end = s + len, *tok;
	size_t tlen;
	bool s2;

	memset(out, 0, sizeof *out);
	if (!tick_symbol_valid(name, namelen)) {
		*why = "not a valid symbol name";
		return -1;
	}
	memcpy(out->symbol, name, namelen);
	if (!next_token(&p, end, &tok, &tlen) || tlen != 2 ||
	    (memcmp(tok, "s1", 2) != 0 && memcmp(tok, "s2", 2) != 0)) {
		*why = "not in the s2 or s1 format (written by another "
		       "version?)";
		return -1;
	}
	s2 = tok[1] == '2';
	if (!next_token(&p, end, &tok, &tlen) ||
	    redis__parse_u64(tok, tlen, &out->seq) || out->seq == 0 ||
	    !next_token(&p, end, &tok, &tlen) ||
	    parse_i64(tok, tlen, &out->ts) ||
	    !next_token(&p, end, &tok, &tlen) || tlen != 1 ||
	    (tok[0] != '0' && tok[0] != '1')) {
		*why = "bad seq, ts or volume flag";
		return -1;
	}
	out->feed_sends_volume = tok[0] == '1';
	/* s1 was written before states knew their session. */
	out->session = SYMBOL_STATE_SESSION_UNKNOWN;
	if (s2 && (!next_token(&p, end, &tok, &tlen) ||
	           (!(tlen == 1 && tok[0] == '-') &&
	            (parse_i64(tok, tlen, &out->session) ||
	             out->session == SYMBOL_STATE_SESSION_UNKNOWN)))) {
		*why = "bad session";
		return -1;
	}
	while (next_token(&p, end, &tok, &tlen)) {
		const char *eq = memchr(tok, '=', tlen);
		const char *at =
		        eq ? memchr(eq, '@', tlen - (size_t)(eq - tok)) : NULL;
		int f = eq ? state_field_lookup(tok, (size_t)(eq - tok)) : -1;
		/* s2: no decimal, a field a session took away */
		bool has = at && at > eq + 1;

		if (f < 0 || !at || ((out->present >> f) & 1u) ||
		    out->changed_seq[f] || (!has && !s2) ||
		    (has && decimal_parse(eq + 1, (size_t)(at - eq - 1),
		                          &out->value[f])) ||
		    redis__parse_u64(at + 1, tlen - (size_t)(at + 1 - tok),
		                     &out->changed_seq[f]) ||
		    (!has && !out->changed_seq[f])) {
			*why = "bad field";
			return -1;
		}
		if (has)
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
redisContext *
redis__link_connect(const char *host, int port, int64_t connect_us,
                    int64_t io_us, const char *name, char *why, size_t whylen)
{
	redisContext *rc = redisConnectWithTimeout(
	        host, port, redis__timeval_of(connect_us));
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
	if (redisSetTimeout(rc, redis__timeval_of(io_us)) != REDIS_OK ||
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
const char *
redis__link_error(const redisContext *rc)
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
const char *
redis__reply_error(const redisReply *r)
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

void
redis__keys_init(const char *prefix, char *ticks, char *state, char *epoch)
{
	snprintf(ticks, KEY_MAX, "%s:ticks", prefix);
	snprintf(state, KEY_MAX, "%s:state", prefix);
	snprintf(epoch, KEY_MAX, "%s:epoch", prefix);
}

/* The checks both directions make on their options. Returns the key prefix
 * to use, or NULL with the reason in err. */
const char *
redis__check_address(const char *host, int port, const char *prefix, char *err,
                     size_t errlen)
{
	if (!host || !host[0] || strlen(host) >= HOST_MAX) {
		errf(err, errlen, "--redis needs a host name or address");
		return NULL;
	}
	if (port < 1 || port > 65535) {
		errf(err, errlen, "--redis port must be 1..65535, not %d",
		     port);
		return NULL;
	}
	if (!prefix)
		prefix = REDIS_LINK_DEFAULT_PREFIX;
	if (!redis_link_prefix_valid(prefix)) {
		errf(err, errlen,
		     "redis key prefix '%.80s' must be 1..64 of "
		     "[A-Za-z0-9._:/-]",
		     prefix);
		return NULL;
	}
	return prefix;
}

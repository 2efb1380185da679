/*
 * cli: the command line (README, Command line) parsed into a struct cli.
 *
 * One table lists every option with the commands it applies to, so that
 * parsing, "does not apply to" errors and spelling suggestions all agree.
 * Messages name the option and the value as typed, and say what would be
 * accepted: the caller prints them as they are and exits 2.
 */
#include "cli.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "tick.h"

const char cli_version_string[] = "publisher 0.1.0";

/* Defaults, shared by cli_parse() and the help text. */
#define DEFAULT_HOST              "127.0.0.1"
#define DEFAULT_PORT              8080
#define DEFAULT_DB                "data/ticks.db"
#define DEFAULT_WEB               "web"
#define DEFAULT_FEED              "synthetic"
#define DEFAULT_HEARTBEAT_MS      5000
#define DEFAULT_PING_SECS         20
#define DEFAULT_MAX_MESSAGE_BYTES 65536
#define DEFAULT_MAX_SYMBOLS       10000
#define DEFAULT_OPS_PER_SEC       100
#define DEFAULT_OPS_BURST         200
#define DEFAULT_MAX_CONNECTIONS   10000
#define DEFAULT_MAX_PER_IP        100
#define DEFAULT_HANDSHAKE_SECS    10

/* Upper bounds keep later arithmetic (timers, buffer sizes) far from
 * overflow; each is stated in the message that enforces it. */
#define MAX_HEARTBEAT_MS   3600000u     /* 1 hour */
#define MAX_PING_SECS      3600u        /* 1 hour */
#define MAX_MESSAGE_BYTES  (1ull << 30) /* 1 GiB */
#define MAX_SYMBOLS        1000000u
#define MAX_CONNECTIONS    1000000u
#define MAX_HANDSHAKE_SECS 300u
/* Retention: an age of up to 100 years, a row count up to 10^15. */
#define MAX_RETAIN_DAYS 36500u
#define MAX_RETAIN_ROWS 1000000000000000ull
/* Ticks the store may hold unwritten before a live feed's ticks are
 * dropped into gaps: at least one batch, at most 100 M (about 5 GB). */
#define MIN_STORE_BACKLOG 1000u
#define MAX_STORE_BACKLOG 100000000u

/* How much of a bad value is quoted back. */
#define QUOTE "'%.80s'"

enum opt_id {
	OPT_LISTEN,
	OPT_DB,
	OPT_WEB,
	OPT_FEED,
	OPT_LOG_LEVEL,
	OPT_PORT_FILE,
	OPT_HEARTBEAT_MS,
	OPT_PING_SECS,
	OPT_MAX_MESSAGE_BYTES,
	OPT_MAX_SYMBOLS,
	OPT_RATE_LIMIT,
	OPT_RATE_BURST,
	OPT_RETAIN_AGE,
	OPT_RETAIN_ROWS,
	OPT_STORE_BACKLOG,
	OPT_COMPRESSION,
	OPT_AUTH_SECRET,
	OPT_ALLOW_ORIGIN,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_MAX_CONNECTIONS,
	OPT_MAX_PER_IP,
	OPT_HANDSHAKE_SECS,
	OPT_SPEED,
	OPT_LOOP,
	OPT_SYMBOL,
	OPT_FROM,
	OPT_TO,
	OPT_FORMAT,
	OPT_OUTPUT,
	OPT_ROLE,
	OPT_REDIS,
	OPT_REDIS_PREFIX,
};

/* Which commands an option applies to. */
#define FOR_SERVE   (1u << CLI_SERVE)
#define FOR_REPLAY  (1u << CLI_REPLAY)
#define FOR_EXPORT  (1u << CLI_EXPORT)
#define FOR_SERVING (FOR_SERVE | FOR_REPLAY)

static const struct option_def {
	const char *name;
	enum opt_id id;
	bool takes_value;
	unsigned commands;
} option_defs[] = {
        {"--listen", OPT_LISTEN, true, FOR_SERVING},
        {"--db", OPT_DB, true, FOR_SERVING | FOR_EXPORT},
        {"--web", OPT_WEB, true, FOR_SERVING},
        {"--feed", OPT_FEED, true, FOR_SERVE},
        {"--log-level", OPT_LOG_LEVEL, true, FOR_SERVING | FOR_EXPORT},
        {"--port-file", OPT_PORT_FILE, true, FOR_SERVING},
        {"--heartbeat-ms", OPT_HEARTBEAT_MS, true, FOR_SERVING},
        {"--ping-secs", OPT_PING_SECS, true, FOR_SERVING},
        {"--max-message-bytes", OPT_MAX_MESSAGE_BYTES, true, FOR_SERVING},
        {"--max-symbols", OPT_MAX_SYMBOLS, true, FOR_SERVING},
        {"--rate-limit", OPT_RATE_LIMIT, true, FOR_SERVING},
        {"--rate-burst", OPT_RATE_BURST, true, FOR_SERVING},
        {"--retain-age", OPT_RETAIN_AGE, true, FOR_SERVING},
        {"--retain-rows", OPT_RETAIN_ROWS, true, FOR_SERVING},
        {"--store-backlog", OPT_STORE_BACKLOG, true, FOR_SERVING},
        {"--compression", OPT_COMPRESSION, true, FOR_SERVING},
        {"--auth-secret", OPT_AUTH_SECRET, true, FOR_SERVING},
        {"--allow-origin", OPT_ALLOW_ORIGIN, true, FOR_SERVING},
        {"--tls-cert", OPT_TLS_CERT, true, FOR_SERVING},
        {"--tls-key", OPT_TLS_KEY, true, FOR_SERVING},
        {"--max-connections", OPT_MAX_CONNECTIONS, true, FOR_SERVING},
        {"--max-connections-per-ip", OPT_MAX_PER_IP, true, FOR_SERVING},
        {"--handshake-timeout-secs", OPT_HANDSHAKE_SECS, true, FOR_SERVING},
        {"--speed", OPT_SPEED, true, FOR_REPLAY},
        {"--loop", OPT_LOOP, false, FOR_REPLAY},
        {"--symbol", OPT_SYMBOL, true, FOR_EXPORT},
        {"--from", OPT_FROM, true, FOR_EXPORT},
        {"--to", OPT_TO, true, FOR_EXPORT},
        {"--format", OPT_FORMAT, true, FOR_EXPORT},
        {"--output", OPT_OUTPUT, true, FOR_EXPORT},
        {"-o", OPT_OUTPUT, true, FOR_EXPORT},
        {"--role", OPT_ROLE, true, FOR_SERVING},
        {"--redis", OPT_REDIS, true, FOR_SERVING},
        {"--redis-prefix", OPT_REDIS_PREFIX, true, FOR_SERVING},
};
#define N_OPTIONS (sizeof option_defs / sizeof option_defs[0])

/* What parsing collects besides struct cli itself. */
struct parse_state {
	struct cli *out;
	const char *command_name;
	const char *replay_file;
	const char *speed; /* as typed, for the feed spec */
	bool loop;
	bool from_set, to_set;
	bool feed_set, db_set;
	char *err;
	size_t errlen;
};

static int fail(struct parse_state *st, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static int
fail(struct parse_state *st, const char *fmt, ...)
{
	va_list ap;

	if (st->err && st->errlen) {
		va_start(ap, fmt);
		vsnprintf(st->err, st->errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* ---------------------------------------------------------------- values */

/* A whole decimal number in [min, max]; no sign, no spaces, no suffix. */
static int
parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * A plain decimal number (digits with at most one '.'), finite and > 0.
 * The shape is checked before strtod() so that "inf", "0x10" or "1e999"
 * are refused instead of silently accepted.
 */
static int
parse_positive(const char *s, double *out)
{
	const char *p;
	char *end;
	int dots = 0, digits = 0;
	double v;

	for (p = s; *p; p++) {
		if (*p == '.')
			dots++;
		else if (*p >= '0' && *p <= '9')
			digits++;
		else
			return -1;
	}
	if (!digits || dots > 1)
		return -1;
	v = strtod(s, &end);
	if (*end || !isfinite(v) || v <= 0)
		return -1;
	*out = v;
	return 0;
}

/* HOST:PORT where HOST is an IPv4 address, "localhost" or "[IPv6]".
 * The brackets are dropped: listen_host holds an address lws can bind. */
static int
parse_listen(struct parse_state *st, const char *v)
{
	struct serve_options *o = &st->out->serve;
	unsigned char addr[16];
	const char *colon, *host = v;
	size_t hostlen;
	uint64_t port;

	if (v[0] == '[') {
		const char *close = strchr(v, ']');

		if (!close || close[1] != ':')
			return fail(st,
			            "--listen " QUOTE ": expected [IPv6]:PORT, "
			            "e.g. [::1]:8080",
			            v);
		host = v + 1;
		hostlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(v, ':');
		if (!colon)
			return fail(st,
			            "--listen " QUOTE ": expected HOST:PORT, "
			            "e.g. 127.0.0.1:8080",
			            v);
		hostlen = (size_t)(colon - v);
	}
	if (hostlen == 0 || hostlen >= sizeof o->listen_host)
		return fail(st,
		            "--listen " QUOTE ": host must be an IPv4 address, "
		            "localhost or [IPv6]",
		            v);
	memcpy(o->listen_host, host, hostlen);
	o->listen_host[hostlen] = '\0';
	if (v[0] == '[' ? inet_pton(AF_INET6, o->listen_host, addr) != 1
	                : strcmp(o->listen_host, "localhost") != 0 &&
	                          inet_pton(AF_INET, o->listen_host, addr) != 1)
		return fail(st,
		            "--listen " QUOTE ": host must be an IPv4 address, "
		            "localhost or [IPv6]",
		            v);
	if (parse_uint(colon + 1, 0, 65535, &port))
		return fail(st, "--listen " QUOTE ": port must be 0-65535", v);
	o->listen_port = (int)port;
	return 0;
}

/*
 * An age such as 90s, 30m, 12h or 7d into µs. The unit is required: a bare
 * "7" could mean seconds or days, and a retention that silently keeps a
 * thousandth of what was meant deletes data.
 */
static int
parse_age(const char *s, int64_t *us)
{
	static const struct {
		char unit;
		uint64_t us;
	} units[] = {
	        {'s', 1000000ull},
	        {'m', 60ull * 1000000},
	        {'h', 3600ull * 1000000},
	        {'d', 86400ull * 1000000},
	};
	const uint64_t max_us = MAX_RETAIN_DAYS * 86400ull * 1000000;
	char digits[24];
	size_t len = strlen(s), i;
	uint64_t n;

	if (len < 2 || len - 1 >= sizeof digits)
		return -1;
	memcpy(digits, s, len - 1);
	digits[len - 1] = '\0';
	if (parse_uint(digits, 1, max_us, &n))
		return -1;
	for (i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (s[len - 1] != units[i].unit)
			continue;
		if (n > max_us / units[i].us)
			return -1;
		*us = (int64_t)(n * units[i].us);
		return 0;
	}
	return -1;
}

/*
 * An origin as a browser sends it in the Origin header: "http" or "https",
 * "://", a host name, IPv4 address or [IPv6] address, an optional port, and
 * nothing after it. A trailing "/" is the common mistake, and an origin
 * written with one would never match, so it is refused here.
 */
static bool
valid_origin(const char *v)
{
	const char *p, *host;
	uint64_t port;

	if (!strncmp(v, "https://", 8))
		host = v + 8;
	else if (!strncmp(v, "http://", 7))
		host = v + 7;
	else
		return false;
	p = host;
	if (*p == '[') {
		p++;
		while (*p && *p != ']' &&
		       strchr("0123456789abcdefABCDEF:.", *p))
			p++;
		if (*p != ']' || p == host + 1)
			return false;
		p++;
	} else {
		while (*p &&
		       ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		        (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
			p++;
	}
	if (p == host)
		return false;
	if (!*p)
		return true;
	if (*p != ':')
		return false;
	return parse_uint(p + 1, 1, 65535, &port) == 0;
}

static int
parse_time_option(struct parse_state *st, const char *name, const char *v,
                  int64_t *us)
{
	if (protocol_parse_time(v, strlen(v), us))
		return fail(st,
		            "%s " QUOTE ": expected microseconds since the "
		            "epoch or ISO 8601 like 2024-03-01T14:30:00Z",
		            name, v);
	return 0;
}

/* Apply one option with its value (NULL for flags). */
/* --redis HOST:PORT: a name or an IPv4 address (or [IPv6]) and a port
 * 1-65535. */
static int
parse_redis(struct parse_state *st, const char *v)
{
	struct serve_options *o = &st->out->serve;
	const char *colon = strrchr(v, ':');
	const char *host = v;
	size_t hostlen;
	uint64_t port;

	if (!colon || colon == v)
		return fail(st, "--redis " QUOTE ": expected HOST:PORT", v);
	hostlen = (size_t)(colon - v);
	if (v[0] == '[') {
		if (hostlen < 3 || v[hostlen - 1] != ']')
			return fail(st, "--redis " QUOTE ": expected HOST:PORT",
			            v);
		host = v + 1;
		hostlen -= 2;
	} else if (memchr(v, ':', hostlen)) {
		return fail(st,
		            "--redis " QUOTE
		            ": an IPv6 address goes in brackets, [::1]:6379",
		            v);
	}
	if (hostlen >= sizeof o->redis_host)
		return fail(st, "--redis " QUOTE ": host name too long", v);
	if (parse_uint(colon + 1, 1, 65535, &port))
		return fail(st, "--redis " QUOTE ": port must be 1-65535", v);
	memcpy(o->redis_host, host, hostlen);
	o->redis_host[hostlen] = '\0';
	o->redis_port = (int)port;
	return 0;
}

static bool
redis_prefix_valid(const char *v)
{
	size_t n = strlen(v), i;

	if (n < 1 || n > 64)
		return false;
	for (i = 0; i < n; i++)
		if (!((v[i] >= 'a' && v[i] <= 'z') ||
		      (v[i] >= 'A' && v[i] <= 'Z') ||
		      (v[i] >= '0' && v[i] <= '9') || strchr("._:/-", v[i])))
			return false;
	return true;
}

/* The role's requirements, once every option is known. */
static int
check_role(struct parse_state *st)
{
	struct serve_options *o = &st->out->serve;
	const char *role = o->role == ROLE_EDGE ? "edge" : "ingest";

	if (o->role == ROLE_STANDALONE) {
		if (o->redis_host[0])
			return fail(st, "--redis needs --role ingest or "
			                "--role edge");
		if (o->redis_prefix)
			return fail(st, "--redis-prefix needs --role ingest or "
			                "--role edge");
		return 0;
	}
	if (!o->redis_host[0])
		return fail(st, "--role %s needs --redis HOST:PORT", role);
	if (o->role == ROLE_EDGE) {
		if (st->out->command == CLI_REPLAY)
			return fail(st, "--role edge takes no feed: replay "
			                "cannot run as an edge");
		if (st->feed_set)
			return fail(st, "--feed does not apply to --role edge: "
			                "an edge takes its ticks from Redis");
		/* An edge's store (--db FILE) is written from the stream
		 * with the ingest's epoch; without --db it keeps none. */
		o->feed_spec = "none";
		if (!st->db_set)
			o->db = "none";
	}
	return 0;
}

static int
apply(struct parse_state *st, const struct option_def *def, const char *v)
{
	struct serve_options *o = &st->out->serve;
	struct export_options *x = &st->out->export;
	uint64_t n;
	double d;

	switch (def->id) {
	case OPT_LISTEN:
		return parse_listen(st, v);
	case OPT_DB:
		if (st->out->command == CLI_EXPORT)
			x->db = v;
		else
			o->db = v;
		st->db_set = true;
		return 0;
	case OPT_WEB:
		o->web = v;
		return 0;
	case OPT_FEED:
		o->feed_spec = v;
		st->feed_set = true;
		return 0;
	case OPT_ROLE:
		if (strcmp(v, "standalone") == 0)
			o->role = ROLE_STANDALONE;
		else if (strcmp(v, "ingest") == 0)
			o->role = ROLE_INGEST;
		else if (strcmp(v, "edge") == 0)
			o->role = ROLE_EDGE;
		else
			return fail(st,
			            "--role " QUOTE
			            ": expected standalone, ingest or edge",
			            v);
		return 0;
	case OPT_REDIS:
		return parse_redis(st, v);
	case OPT_REDIS_PREFIX:
		if (!redis_prefix_valid(v))
			return fail(
			        st,
			        "--redis-prefix " QUOTE
			        ": 1-64 characters of A-Z a-z 0-9 . _ : / -",
			        v);
		o->redis_prefix = v;
		return 0;
	case OPT_LOG_LEVEL:
		if (strcmp(v, "error") == 0)
			o->log_level = LOG_ERROR;
		else if (strcmp(v, "warn") == 0)
			o->log_level = LOG_WARN;
		else if (strcmp(v, "info") == 0)
			o->log_level = LOG_INFO;
		else if (strcmp(v, "debug") == 0)
			o->log_level = LOG_DEBUG;
		else
			return fail(st,
			            "--log-level " QUOTE ": expected error, "
			            "warn, info or debug",
			            v);
		return 0;
	case OPT_PORT_FILE:
		o->port_file = v;
		return 0;
	case OPT_HEARTBEAT_MS:
		if (parse_uint(v, 100, MAX_HEARTBEAT_MS, &n))
			return fail(st,
			            "--heartbeat-ms " QUOTE ": must be a whole "
			            "number of milliseconds from 100 to %u",
			            v, MAX_HEARTBEAT_MS);
		o->heartbeat_ms = (unsigned)n;
		return 0;
	case OPT_PING_SECS:
		if (parse_uint(v, 1, MAX_PING_SECS, &n))
			return fail(st,
			            "--ping-secs " QUOTE ": must be a whole "
			            "number of seconds from 1 to %u",
			            v, MAX_PING_SECS);
		o->ping_secs = (unsigned)n;
		return 0;
	case OPT_MAX_MESSAGE_BYTES:
		if (parse_uint(v, 1024, MAX_MESSAGE_BYTES, &n))
			return fail(st,
			            "--max-message-bytes " QUOTE ": must be a "
			            "whole number of bytes from 1024 to %llu",
			            v, MAX_MESSAGE_BYTES);
		o->max_message_bytes = (size_t)n;
		return 0;
	case OPT_MAX_SYMBOLS:
		if (parse_uint(v, 1, MAX_SYMBOLS, &n))
			return fail(st,
			            "--max-symbols " QUOTE ": must be a whole "
			            "number from 1 to %u",
			            v, MAX_SYMBOLS);
		o->max_symbols = (size_t)n;
		return 0;
	case OPT_RATE_LIMIT:
		if (parse_positive(v, &d))
			return fail(st,
			            "--rate-limit " QUOTE ": must be a number "
			            "of ops per second > 0, e.g. 100 or 2.5",
			            v);
		o->ops_per_sec = d;
		return 0;
	case OPT_RATE_BURST:
		if (parse_positive(v, &d) || d < 1)
			return fail(st,
			            "--rate-burst " QUOTE ": must be a number "
			            ">= 1",
			            v);
		o->ops_burst = d;
		return 0;
	case OPT_RETAIN_AGE:
		if (parse_age(v, &o->retain_age_us))
			return fail(st,
			            "--retain-age " QUOTE ": expected a whole "
			            "number with a unit s, m, h or d (e.g. 7d "
			            "or 12h), up to %ud",
			            v, MAX_RETAIN_DAYS);
		return 0;
	case OPT_RETAIN_ROWS:
		if (parse_uint(v, 1, MAX_RETAIN_ROWS, &n))
			return fail(st,
			            "--retain-rows " QUOTE ": must be a whole "
			            "number of ticks from 1 to %llu (leave it "
			            "out to keep every tick)",
			            v, MAX_RETAIN_ROWS);
		o->retain_rows = n;
		return 0;
	case OPT_STORE_BACKLOG:
		if (parse_uint(v, MIN_STORE_BACKLOG, MAX_STORE_BACKLOG, &n))
			return fail(st,
			            "--store-backlog " QUOTE ": must be a whole "
			            "number of ticks from %u to %u",
			            v, MIN_STORE_BACKLOG, MAX_STORE_BACKLOG);
		o->store_backlog = (size_t)n;
		return 0;
	case OPT_COMPRESSION:
		if (!strcmp(v, "on"))
			o->compression = true;
		else if (!strcmp(v, "off"))
			o->compression = false;
		else
			return fail(st,
			            "--compression " QUOTE ": expected on or off",
			            v);
		return 0;
	case OPT_AUTH_SECRET:
		o->auth_secret = v;
		return 0;
	case OPT_ALLOW_ORIGIN:
		if (!valid_origin(v))
			return fail(st,
			            "--allow-origin " QUOTE ": expected an "
			            "origin like https://example.com or "
			            "http://127.0.0.1:8080 (scheme, host, "
			            "optional port, no path)",
			            v);
		if (o->allow_origin_count == CLI_MAX_ORIGINS)
			return fail(st,
			            "--allow-origin given more than %d times",
			            CLI_MAX_ORIGINS);
		o->allow_origins[o->allow_origin_count++] = v;
		return 0;
	case OPT_TLS_CERT:
		o->tls_cert = v;
		return 0;
	case OPT_TLS_KEY:
		o->tls_key = v;
		return 0;
	case OPT_MAX_CONNECTIONS:
		if (parse_uint(v, 1, MAX_CONNECTIONS, &n))
			return fail(st,
			            "--max-connections " QUOTE ": must be a "
			            "whole number from 1 to %u",
			            v, MAX_CONNECTIONS);
		o->max_connections = (unsigned)n;
		return 0;
	case OPT_MAX_PER_IP:
		if (parse_uint(v, 1, MAX_CONNECTIONS, &n))
			return fail(st,
			            "--max-connections-per-ip " QUOTE
			            ": must be "
			            "a whole number from 1 to %u",
			            v, MAX_CONNECTIONS);
		o->max_connections_per_ip = (unsigned)n;
		return 0;
	case OPT_HANDSHAKE_SECS:
		if (parse_uint(v, 1, MAX_HANDSHAKE_SECS, &n))
			return fail(st,
			            "--handshake-timeout-secs " QUOTE
			            ": must be "
			            "a whole number of seconds from 1 to %u",
			            v, MAX_HANDSHAKE_SECS);
		o->handshake_secs = (unsigned)n;
		return 0;
	case OPT_SPEED:
		if (strcmp(v, "max") != 0 && parse_positive(v, &d))
			return fail(st,
			            "--speed " QUOTE ": must be a number > 0 "
			            "(1 = as recorded) or max",
			            v);
		st->speed = v;
		return 0;
	case OPT_LOOP:
		st->loop = true;
		return 0;
	case OPT_SYMBOL:
		if (!tick_symbol_valid(v, strlen(v)))
			return fail(st,
			            "--symbol " QUOTE ": not a valid symbol "
			            "(1-32 of A-Z a-z 0-9 . _ : / -)",
			            v);
		if (x->symbol_count == CLI_MAX_EXPORT_SYMBOLS)
			return fail(st,
			            "--symbol given more than %d times; leave "
			            "it out to export every symbol",
			            CLI_MAX_EXPORT_SYMBOLS);
		x->symbols[x->symbol_count++] = v;
		return 0;
	case OPT_FROM:
		st->from_set = true;
		return parse_time_option(st, "--from", v, &x->from);
	case OPT_TO:
		st->to_set = true;
		return parse_time_option(st, "--to", v, &x->to);
	case OPT_FORMAT:
		if (strcmp(v, "csv") == 0)
			x->jsonl = false;
		else if (strcmp(v, "jsonl") == 0)
			x->jsonl = true;
		else
			return fail(st,
			            "--format " QUOTE ": expected csv or jsonl",
			            v);
		return 0;
	case OPT_OUTPUT:
		/* "-" is the usual spelling of standard output. */
		x->output = strcmp(v, "-") == 0 ? NULL : v;
		return 0;
	}
	return fail(st, "internal error: option %s has no handler", def->name);
}

/* ------------------------------------------------------------ option names */

/* Edit distance of two short strings, capped: enough to spot a typo. */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t row[32], la = strlen(a), lb = strlen(b), i, j;

	if (la >= sizeof row / sizeof row[0] ||
	    lb >= sizeof row / sizeof row[0])
		return (size_t)-1;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* Explain an option that is not valid for this command. */
static int
unknown_option(struct parse_state *st, const char *arg, size_t namelen)
{
	unsigned mask = 1u << st->out->command;
	const struct option_def *guess = NULL;
	char name[40];
	size_t i, best = 3; /* suggest only at distance 1 or 2 */

	if (namelen >= sizeof name)
		namelen = sizeof name - 1;
	memcpy(name, arg, namelen);
	name[namelen] = '\0';

	for (i = 0; i < N_OPTIONS; i++) {
		if (strcmp(option_defs[i].name, name) == 0) {
			if (option_defs[i].id == OPT_FEED &&
			    st->out->command == CLI_REPLAY)
				return fail(
				        st,
				        "--feed does not apply to 'replay': "
				        "the feed is the replay FILE");
			return fail(st, "%s does not apply to '%s'", name,
			            st->command_name);
		}
	}
	for (i = 0; i < N_OPTIONS; i++) {
		size_t dist;

		if (!(option_defs[i].commands & mask))
			continue;
		dist = edit_distance(name, option_defs[i].name);
		if (dist < best) {
			best = dist;
			guess = &option_defs[i];
		}
	}
	if (guess)
		return fail(st,
		            "unknown option '%s' for '%s' (did you mean %s?)",
		            name, st->command_name, guess->name);
	return fail(st, "unknown option '%s' for '%s'", name, st->command_name);
}

/* Find the definition of the option arg names (before any '='). */
static const struct option_def *
find_option(const char *arg, size_t namelen, unsigned mask)
{
	size_t i;

	for (i = 0; i < N_OPTIONS; i++)
		if ((option_defs[i].commands & mask) &&
		    strlen(option_defs[i].name) == namelen &&
		    strncmp(option_defs[i].name, arg, namelen) == 0)
			return &option_defs[i];
	return NULL;
}

/* -------------------------------------------------------------- commands */

static void
set_defaults(struct cli *out)
{
	struct serve_options *o = &out->serve;

	memset(out, 0, sizeof *out);
	memcpy(o->listen_host, DEFAULT_HOST, sizeof DEFAULT_HOST);
	o->listen_port = DEFAULT_PORT;
	o->db = DEFAULT_DB;
	o->web = DEFAULT_WEB;
	o->feed_spec = DEFAULT_FEED;
	o->log_level = LOG_INFO;
	o->port_file = NULL;
	o->heartbeat_ms = DEFAULT_HEARTBEAT_MS;
	o->compression = true;
	o->ping_secs = DEFAULT_PING_SECS;
	o->max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES;
	o->max_symbols = DEFAULT_MAX_SYMBOLS;
	o->ops_per_sec = DEFAULT_OPS_PER_SEC;
	o->ops_burst = DEFAULT_OPS_BURST;
	o->retain_age_us = 0;
	o->retain_rows = 0;
	o->max_connections = DEFAULT_MAX_CONNECTIONS;
	o->max_connections_per_ip = DEFAULT_MAX_PER_IP;
	o->handshake_secs = DEFAULT_HANDSHAKE_SECS;

	out->export.db = NULL;
	out->export.from = 0;
	out->export.to = INT64_MAX;
	out->export.jsonl = false;
	out->export.output = NULL;
}

/* replay FILE [--speed X|max] [--loop] → "replay:FILE[,speed=X][,loop]" */
static int
build_replay_spec(struct parse_state *st)
{
	struct cli *out = st->out;
	int n;

	if (!st->replay_file)
		return fail(st, "replay needs a FILE (a JSONL or CSV tick "
		                "file, as export writes)");
	/* The feed spec separates its parts with ','; a FILE holding one
	 * would be read as a broken option rather than as its name. */
	if (strchr(st->replay_file, ','))
		return fail(st,
		            "replay FILE " QUOTE
		            " contains ',', which the feed "
		            "spec uses as a separator; rename or link the file",
		            st->replay_file);
	n = snprintf(out->feed_spec_buf, sizeof out->feed_spec_buf,
	             "replay:%s%s%s%s", st->replay_file,
	             st->speed ? ",speed=" : "", st->speed ? st->speed : "",
	             st->loop ? ",loop" : "");
	if (n < 0 || (size_t)n >= sizeof out->feed_spec_buf)
		return fail(st, "replay FILE path is too long (%zu bytes)",
		            strlen(st->replay_file));
	out->serve.feed_spec = out->feed_spec_buf;
	return 0;
}

int
cli_parse(int argc, char **argv, struct cli *out, char *err, size_t errlen)
{
	struct parse_state st = {.out = out, .err = err, .errlen = errlen};
	const char *cmd;
	int i;

	set_defaults(out);
	if (err && errlen)
		err[0] = '\0';

	/* --help wins wherever it is, so that "publisher serve --lisen x
	 * --help" shows the help instead of complaining. */
	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			out->command = CLI_HELP;
			return 0;
		}
	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--version") == 0) {
			out->command = CLI_VERSION;
			return 0;
		}

	if (argc < 2 || argv[1][0] == '-')
		return fail(&st, "missing command (serve, replay or export)");
	cmd = argv[1];
	if (strcmp(cmd, "serve") == 0) {
		out->command = CLI_SERVE;
	} else if (strcmp(cmd, "replay") == 0) {
		out->command = CLI_REPLAY;
	} else if (strcmp(cmd, "export") == 0) {
		out->command = CLI_EXPORT;
	} else if (strcmp(cmd, "help") == 0) {
		out->command = CLI_HELP;
		return 0;
	} else {
		return fail(&st,
		            "unknown command " QUOTE
		            " (expected serve, replay or export)",
		            cmd);
	}
	st.command_name = cmd;

	for (i = 2; i < argc; i++) {
		const char *arg = argv[i], *value = NULL, *eq;
		const struct option_def *def;
		size_t namelen;

		/* Positional: replay's FILE ("-" alone is a name, too). */
		if (arg[0] != '-' || arg[1] == '\0') {
			if (out->command == CLI_REPLAY && !st.replay_file) {
				st.replay_file = arg;
				continue;
			}
			return fail(&st,
			            "unexpected argument " QUOTE " for '%s'",
			            arg, cmd);
		}

		/* --name=value or --name value */
		eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
		namelen = eq ? (size_t)(eq - arg) : strlen(arg);
		def = find_option(arg, namelen, 1u << out->command);
		if (!def)
			return unknown_option(&st, arg, namelen);
		if (!def->takes_value) {
			if (eq)
				return fail(&st, "%s takes no value",
				            def->name);
			if (apply(&st, def, NULL))
				return -1;
			continue;
		}
		if (eq) {
			value = eq + 1;
		} else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
			/* A following "--opt" is taken for a forgotten value
			 * rather than swallowed as one. */
			value = argv[++i];
		}
		if (!value || !*value)
			return fail(&st, "%s needs a value", def->name);
		if (apply(&st, def, value))
			return -1;
	}

	/* A certificate without its key (or the reverse) is a half-done
	 * TLS setup: refuse it rather than serve plain HTTP by surprise. */
	if (!out->serve.tls_cert != !out->serve.tls_key)
		return fail(&st, "%s needs %s as well",
		            out->serve.tls_cert ? "--tls-cert" : "--tls-key",
		            out->serve.tls_cert ? "--tls-key FILE"
		                                : "--tls-cert FILE");

	if ((out->command == CLI_SERVE || out->command == CLI_REPLAY) &&
	    check_role(&st))
		return -1;

	switch (out->command) {
	case CLI_REPLAY:
		return build_replay_spec(&st);
	case CLI_EXPORT:
		if (!out->export.db)
			return fail(&st, "export needs --db FILE");
		if (st.from_set && st.to_set &&
		    out->export.from > out->export.to)
			return fail(&st, "--from is after --to");
		return 0;
	default:
		return 0;
	}
}

void
cli_print_help(FILE *to)
{
	fprintf(to,
	        "%s - live market data over WebSocket\n"
	        "\n"
	        "Usage:\n"
	        "  publisher serve  [options]\n"
	        "  publisher replay FILE [--speed X|max] [--loop] [options]\n"
	        "  publisher export --db FILE [--symbol S]... [--from T] "
	        "[--to T]\n"
	        "                   [--format csv|jsonl] [-o FILE]\n"
	        "  publisher --help | --version\n"
	        "\n"
	        "serve takes ticks from a feed, keeps the latest state of "
	        "every symbol, stores\n"
	        "ticks and state in SQLite and streams updates to WebSocket "
	        "clients at /ws;\n"
	        "it serves the dashboard at /. replay does the same with a "
	        "recorded tick file\n"
	        "as the feed. export writes stored ticks in the format replay "
	        "reads.\n"
	        "\n",
	        cli_version_string);
	fprintf(to,
	        "Options for serve and replay:\n"
	        "  --listen HOST:PORT      address to listen on (default "
	        "%s:%d);\n"
	        "                          HOST: an IPv4 address, localhost or "
	        "[IPv6];\n"
	        "                          PORT 0 picks any free port\n"
	        "  --db FILE               SQLite database, created if "
	        "missing\n"
	        "                          (default %s)\n"
	        "  --web DIR               dashboard files (default %s)\n"
	        "  --feed SPEC             where ticks come from, serve only "
	        "(default %s)\n"
	        "  --log-level LEVEL       error, warn, info or debug (default "
	        "info)\n"
	        "  --port-file FILE        write the port actually bound to "
	        "FILE\n"
	        "  --heartbeat-ms N        heartbeat an idle client every N "
	        "ms, "
	        ">= 100\n"
	        "                          (default %d)\n"
	        "  --ping-secs N           WebSocket ping after N idle "
	        "seconds, "
	        ">= 1\n"
	        "                          (default %d)\n"
	        "  --max-message-bytes N   largest inbound message, >= 1024 "
	        "(default %d)\n"
	        "  --max-symbols N         subscriptions per connection "
	        "(default %d)\n"
	        "  --rate-limit OPS        inbound ops per second per "
	        "connection (default %d)\n"
	        "  --rate-burst N          inbound ops allowed in a burst "
	        "(default %d)\n"
	        "  --retain-age AGE        delete ticks older than AGE: a "
	        "number and s, m,\n"
	        "                          h or d, e.g. 7d (default: keep "
	        "all)\n"
	        "  --retain-rows N         keep at most the newest N ticks "
	        "(default: all);\n"
	        "                          with both, a tick goes when either "
	        "says so\n"
	        "  --store-backlog N       ticks the store may hold unwritten "
	        "(default 262144);\n"
	        "                          beyond it a live feed is not slowed: "
	        "what the store\n"
	        "                          drops is recorded as gaps (a replay "
	        "waits instead)\n"
	        "  --compression on|off    compress updates for clients that "
	        "offer it\n"
	        "                          (permessage-deflate; default on)\n"
	        "\n"
	        "Scale-out through Redis, serve and replay:\n"
	        "  --role ROLE             standalone (the default), ingest "
	        "(feed, store and\n"
	        "                          engine, publishing every tick to "
	        "Redis) or edge\n"
	        "                          (no feed: follows the ingest "
	        "through Redis;\n"
	        "                          --db none unless given --db FILE, "
	        "written from\n"
	        "                          the stream with the ingest's "
	        "epoch)\n"
	        "  --redis HOST:PORT       the Redis server, required for "
	        "ingest and edge\n"
	        "  --redis-prefix P        key prefix in Redis (default "
	        "publisher)\n"
	        "\n",
	        DEFAULT_HOST, DEFAULT_PORT, DEFAULT_DB, DEFAULT_WEB,
	        DEFAULT_FEED, DEFAULT_HEARTBEAT_MS, DEFAULT_PING_SECS,
	        DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_SYMBOLS,
	        DEFAULT_OPS_PER_SEC, DEFAULT_OPS_BURST);
	fprintf(to,
	        "Security and limits for serve and replay:\n"
	        "  --auth-secret FILE      require an HS256 JWT "
	        "(Authorization: "
	        "Bearer, ?token=\n"
	        "                          or cookie token=) signed with the "
	        "key in FILE\n"
	        "  --allow-origin ORIGIN   a browser origin allowed to "
	        "connect, "
	        "e.g.\n"
	        "                          https://example.com; repeat for "
	        "more (default:\n"
	        "                          only pages served by this server)\n"
	        "  --tls-cert FILE         PEM certificate: serve https and "
	        "wss\n"
	        "  --tls-key FILE          PEM private key of --tls-cert\n"
	        "  --max-connections N     WebSocket clients at once; more get "
	        "503\n"
	        "                          (default %d)\n"
	        "  --max-connections-per-ip N\n"
	        "                          WebSocket clients from one address; "
	        "more get 429\n"
	        "                          (default %d)\n"
	        "  --handshake-timeout-secs N\n"
	        "                          a connection must finish TLS and "
	        "its request\n"
	        "                          headers within N seconds (default "
	        "%d)\n"
	        "\n",
	        DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PER_IP,
	        DEFAULT_HANDSHAKE_SECS);
	fprintf(to,
	        "Options for replay:\n"
	        "  FILE                    tick file, JSONL or CSV (what "
	        "export "
	        "writes)\n"
	        "  --speed X|max           X times as fast as recorded, or max "
	        "= as fast as\n"
	        "                          possible (default 1)\n"
	        "  --loop                  at the end start over, timestamps "
	        "shifted forward\n"
	        "\n"
	        "Options for export:\n"
	        "  --db FILE               SQLite database to read (required)\n"
	        "  --symbol S              only symbol S; repeat for more, up "
	        "to %d\n"
	        "                          (default: every symbol)\n"
	        "  --from T, --to T        only ticks in this time range "
	        "(default: all)\n"
	        "  --format csv|jsonl      output format (default csv)\n"
	        "  -o, --output FILE       write to FILE (default: standard "
	        "output)\n"
	        "  --log-level LEVEL       error, warn, info or debug (default "
	        "info)\n"
	        "\n",
	        CLI_MAX_EXPORT_SYMBOLS);
	fprintf(to,
	        "Feed SPEC:\n"
	        "  synthetic[:symbols=N,rate=R,seed=S]  seeded random walk "
	        "(the default)\n"
	        "  replay:FILE[,speed=X|max][,loop]     a recorded tick file\n"
	        "  tcp:HOST:PORT                        line ticks from "
	        "producers\n"
	        "  stdin                                line ticks from "
	        "standard input\n"
	        "  none                                 no feed: serve what "
	        "the "
	        "database holds\n"
	        "\n"
	        "Times T: integer microseconds since the Unix epoch, or ISO "
	        "8601 such as\n"
	        "2024-03-01T14:30:00Z, 2024-03-01T14:30:00.250+01:00 or "
	        "2024-03-01 (UTC).\n"
	        "\n"
	        "Options take their value as --opt VALUE or --opt=VALUE.\n"
	        "Exit status: 0 success, 2 usage error, 1 runtime failure.\n");
}

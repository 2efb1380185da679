/*
 * cli: the command line (README, Command line) parsed into struct cli.
 *
 * The settings table below lists every option once: its name, the
 * commands that take it, its bounds, default, help and target. Parsing,
 * the config file, "does not apply to" errors, spelling suggestions and
 * each command's --help all come from it (settings.h). What is left here
 * is what no single row can say: the commands, replay's FILE, and the
 * checks that involve several options (TLS needs both files, a role needs
 * Redis, an edge takes no feed).
 */
#include "cli.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "redis_link.h"
#include "settings.h"
#include "tick.h"
#include "time_parse.h"
#include "trading_session.h"
#include "version.h"

const char cli_version_string[] = PUBLISHER_NAME_VERSION;

/* Which commands an option applies to. */
#define FOR_SERVE   (1u << CLI_SERVE)
#define FOR_REPLAY  (1u << CLI_REPLAY)
#define FOR_EXPORT  (1u << CLI_EXPORT)
#define FOR_IMPORT  (1u << CLI_IMPORT)
#define FOR_SERVING (FOR_SERVE | FOR_REPLAY)
#define FOR_ALL     (FOR_SERVING | FOR_EXPORT | FOR_IMPORT)

/* Upper bounds keep later arithmetic (timers, buffer sizes) far from
 * overflow; each is stated in the message that enforces it. */
#define MAX_HEARTBEAT_MS   3600000u     /* 1 hour */
#define MAX_PING_SECS      3600u        /* 1 hour */
#define MAX_MESSAGE_BYTES  (1ull << 30) /* 1 GiB */
#define MAX_SYMBOLS        1000000u
#define MAX_SYMBOLS_TOTAL  100000000u
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

/* ------------------------------------------------------ values of a row */

/* HOST:PORT where HOST is an IPv4 address, "localhost" or "[IPv6]".
 * The brackets are dropped: listen_host holds an address lws can bind. */
static int
parse_listen(const char *v, void *target, char *w, size_t wl)
{
	struct server_options *o = target;
	unsigned char addr[16];
	const char *colon, *host = v;
	size_t hostlen;
	uint64_t port;

	if (v[0] == '[') {
		const char *close = strchr(v, ']');

		if (!close || close[1] != ':')
			return errf(w, wl,
			            "expected [IPv6]:PORT, e.g. "
			            "[::1]:8080");
		host = v + 1;
		hostlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(v, ':');
		if (!colon)
			return errf(w, wl,
			            "expected HOST:PORT, e.g. "
			            "127.0.0.1:8080");
		hostlen = (size_t)(colon - v);
	}
	if (hostlen == 0 || hostlen >= sizeof o->listen_host)
		return errf(w, wl,
		            "host must be an IPv4 address, localhost "
		            "or [IPv6]");
	memcpy(o->listen_host, host, hostlen);
	o->listen_host[hostlen] = '\0';
	if (v[0] == '[' ? inet_pton(AF_INET6, o->listen_host, addr) != 1
	                : strcmp(o->listen_host, "localhost") != 0 &&
	                          inet_pton(AF_INET, o->listen_host, addr) != 1)
		return errf(w, wl,
		            "host must be an IPv4 address, localhost "
		            "or [IPv6]");
	if (settings_parse_whole(colon + 1, 0, 65535, &port))
		return errf(w, wl, "port must be 0-65535");
	o->listen_port = (int)port;
	return 0;
}

/* --redis HOST:PORT: a name or an IPv4 address (or [IPv6]) and a port
 * 1-65535. */
static int
parse_redis(const char *v, void *target, char *w, size_t wl)
{
	struct node_options *o = target;
	const char *colon = strrchr(v, ':');
	const char *host = v;
	size_t hostlen;
	uint64_t port;

	if (!colon || colon == v)
		return errf(w, wl, "expected HOST:PORT");
	hostlen = (size_t)(colon - v);
	if (v[0] == '[') {
		if (hostlen < 3 || v[hostlen - 1] != ']')
			return errf(w, wl, "expected HOST:PORT");
		host = v + 1;
		hostlen -= 2;
	} else if (memchr(v, ':', hostlen)) {
		return errf(w, wl,
		            "an IPv6 address goes in brackets, "
		            "[::1]:6379");
	}
	if (hostlen >= sizeof o->redis_host)
		return errf(w, wl, "host name too long");
	if (settings_parse_whole(colon + 1, 1, 65535, &port))
		return errf(w, wl, "port must be 1-65535");
	memcpy(o->redis_host, host, hostlen);
	o->redis_host[hostlen] = '\0';
	o->redis_port = (int)port;
	return 0;
}

static int
parse_redis_prefix(const char *v, void *target, char *w, size_t wl)
{
	if (!redis_link_prefix_valid(v))
		return errf(w, wl, "1-%d characters of A-Z a-z 0-9 . _ : / -",
		            REDIS_LINK_PREFIX_MAX);
	*(const char **)target = v;
	return 0;
}

/*
 * An age such as 90s, 30m, 12h or 7d into µs. The unit is required: a bare
 * "7" could mean seconds or days, and a retention that silently keeps a
 * thousandth of what was meant deletes data.
 */
static int
parse_age(const char *v, void *target, char *w, size_t wl)
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
	size_t len = strlen(v), i;
	uint64_t n;

	if (len >= 2 && len - 1 < sizeof digits) {
		memcpy(digits, v, len - 1);
		digits[len - 1] = '\0';
		for (i = 0; i < sizeof units / sizeof units[0]; i++)
			if (v[len - 1] == units[i].unit &&
			    !settings_parse_whole(digits, 1,
			                          max_us / units[i].us, &n)) {
				*(int64_t *)target = (int64_t)(n * units[i].us);
				return 0;
			}
	}
	return errf(w, wl,
	            "expected a whole number with a unit s, m, h or d (e.g. "
	            "7d or 12h), up to %ud",
	            MAX_RETAIN_DAYS);
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
	return *p == ':' && settings_parse_whole(p + 1, 1, 65535, &port) == 0;
}

static int
check_origin(const char *v, void *target, char *w, size_t wl)
{
	if (valid_origin(v))
		return 0;
	return errf(w, wl,
	            "expected an origin like https://example.com or "
	            "http://127.0.0.1:8080 (scheme, host, optional port, no "
	            "path)");
}

/* An IPv4 or IPv6 address, as a proxy connects from. */
static int
check_address(const char *v, void *target, char *w, size_t wl)
{
	unsigned char addr[16];

	if (inet_pton(AF_INET, v, addr) == 1 ||
	    inet_pton(AF_INET6, v, addr) == 1)
		return 0;
	return errf(w, wl,
	            "expected an IPv4 or IPv6 address, e.g. 10.0.0.2 "
	            "or ::1");
}

static int
check_symbol(const char *v, void *target, char *w, size_t wl)
{
	if (tick_symbol_valid(v, strlen(v)))
		return 0;
	return errf(w, wl,
	            "not a valid symbol (1-32 of A-Z a-z 0-9 . _ : / -)");
}

static int
parse_time(const char *v, void *target, char *w, size_t wl)
{
	if (time_parse(v, strlen(v), target) == 0)
		return 0;
	return errf(w, wl,
	            "expected microseconds since the epoch or ISO 8601 "
	            "like 2024-03-01T14:30:00Z");
}

/* PATTERN=ZONE@HH:MM, its zone loaded (trading_session.h). */
static int
check_session(const char *v, void *target, char *w, size_t wl)
{
	return trading_session_check(v, w, wl);
}

/* A number > 0 (1 = as recorded), or max: 0, as fast as possible. */
static int
parse_speed(const char *v, void *target, char *w, size_t wl)
{
	double d;

	if (!strcmp(v, "max")) {
		*(double *)target = 0;
		return 0;
	}
	if (!settings_parse_positive(v, &d)) {
		*(double *)target = d;
		return 0;
	}
	return errf(w, wl, "must be a number > 0 (1 = as recorded) or max");
}

/* "-" is the usual spelling of standard output. */
static int
parse_output(const char *v, void *target, char *w, size_t wl)
{
	*(const char **)target = strcmp(v, "-") ? v : NULL;
	return 0;
}

/* ----------------------------------------------------------------- table */

static const struct setting_choice log_levels[] = {
        {"error", LOG_ERROR}, {"warn", LOG_WARN}, {"info", LOG_INFO},
        {"debug", LOG_DEBUG}, {NULL, 0},
};
static const struct setting_choice on_off[] = {
        {"on", 1},
        {"off", 0},
        {NULL, 0},
};
static const struct setting_choice roles[] = {
        {"standalone", ROLE_STANDALONE},
        {"ingest", ROLE_INGEST},
        {"edge", ROLE_EDGE},
        {NULL, 0},
};
static const struct setting_choice formats[] = {
        {"csv", 0},
        {"jsonl", 1},
        {NULL, 0},
};

#define SERVING "Serving (serve and replay)"
#define SCALING "Scale-out through Redis (serve and replay)"
#define GUARDS  "Security and limits (serve and replay)"
#define SESSION "Trading sessions (serve, replay and import)"
#define REPLAY  "Replay"
#define EXPORT  "Export"
#define IMPORT  "Import"

static const struct setting rows[] = {
        SETTING_STRING("config", "FILE", FOR_SERVING, SERVING, struct cli,
                       node.config, NULL,
                       "read settings from FILE, one 'name value' per line "
                       "with the names of these options (flags given as "
                       "well override it)"),
        SETTING_CUSTOM("listen", "HOST:PORT", FOR_SERVING, SERVING, struct cli,
                       server, parse_listen, "127.0.0.1:8080",
                       "address to listen on; HOST: an IPv4 address, "
                       "localhost or [IPv6]; PORT 0 picks any free port"),
        SETTING_STRING("db", "FILE", FOR_SERVING, SERVING, struct cli,
                       store.path, "data/ticks.db",
                       "SQLite database, created if missing; none keeps "
                       "nothing"),
        SETTING_STRING("web", "DIR", FOR_SERVING, SERVING, struct cli,
                       server.web, "web", "dashboard files"),
        SETTING_STRING("feed", "SPEC", FOR_SERVE, SERVING, struct cli,
                       node.feed_spec, "synthetic",
                       "where ticks come from, serve only; see Feed SPEC "
                       "below"),
        SETTING_CHOICE("log-level", "LEVEL", FOR_SERVING, SERVING, struct cli,
                       node.log_level, log_levels, "info",
                       "error, warn, info or debug"),
        SETTING_STRING("port-file", "FILE", FOR_SERVING, SERVING, struct cli,
                       node.port_file, NULL,
                       "write the port actually bound to FILE"),
        SETTING_UINT("heartbeat-ms", "N", FOR_SERVING, SERVING, struct cli,
                     server.heartbeat_ms, 100, MAX_HEARTBEAT_MS, "milliseconds",
                     "5000", "heartbeat an idle client every N ms, >= 100"),
        SETTING_UINT("ping-secs", "N", FOR_SERVING, SERVING, struct cli,
                     server.ping_secs, 1, MAX_PING_SECS, "seconds", "20",
                     "WebSocket ping after N idle seconds, >= 1"),
        SETTING_UINT("stream-linger-secs", "N", FOR_SERVING, SERVING,
                     struct cli, server.stream_linger_secs, 1, 3600, "seconds",
                     "30",
                     "keep a Server-Sent Events or long-poll session N "
                     "seconds without a connection, for its client to come "
                     "back to without losing a frame"),
        SETTING_UINT("max-message-bytes", "N", FOR_SERVING, SERVING, struct cli,
                     server.max_message_bytes, 1024, MAX_MESSAGE_BYTES, "bytes",
                     "65536", "largest inbound message, >= 1024"),
        SETTING_UINT("max-symbols", "N", FOR_SERVING, SERVING, struct cli,
                     server.max_symbols, 1, MAX_SYMBOLS, NULL, "10000",
                     "subscriptions per connection"),
        SETTING_UINT("max-pending-symbols", "N", FOR_SERVING, SERVING,
                     struct cli, server.max_pending_symbols, 1, MAX_SYMBOLS,
                     NULL, "1000",
                     "of those, symbols that have no data yet (each holds a "
                     "placeholder of about 0.7 KB until its first tick); "
                     "more are refused with too_many_symbols"),
        SETTING_UINT("max-pending-symbols-total", "N", FOR_SERVING, SERVING,
                     struct cli, server.max_pending_symbols_total, 1,
                     MAX_SYMBOLS_TOTAL, NULL, "100000",
                     "symbols with no data yet that all connections together "
                     "may subscribe to: the default caps their placeholders "
                     "at about 70 MB; beyond it new ones are refused, "
                     "symbols with data are still served"),
        SETTING_UINT("max-symbols-total", "N", FOR_SERVING, SERVING, struct cli,
                     server.max_symbols_total, 1, MAX_SYMBOLS_TOTAL, NULL,
                     "1000000",
                     "symbols with data: ticks of further new symbols are "
                     "refused, counted and logged; at about 2 KB a symbol "
                     "with a store (0.7 KB without) the default caps them "
                     "at about 2 GB"),
        SETTING_NUMBER("rate-limit", "OPS", FOR_SERVING, SERVING, struct cli,
                       server.ops_per_sec, 0,
                       "must be a number of ops per second > 0, e.g. 100 or "
                       "2.5",
                       "100", "inbound ops per second per connection"),
        SETTING_NUMBER("rate-burst", "N", FOR_SERVING, SERVING, struct cli,
                       server.ops_burst, 1, "must be a number >= 1", "200",
                       "inbound ops allowed in a burst"),
        SETTING_CUSTOM("retain-age", "AGE", FOR_SERVING, SERVING, struct cli,
                       store.retain_age_us, parse_age, NULL,
                       "delete ticks older than AGE: a number and s, m, h or "
                       "d, e.g. 7d (default: keep all)"),
        {"retain-rows", NULL, "N", FOR_SERVING, SERVING, SETTING_KIND_UINT,
         SETTING_TARGET(struct cli, store.retain_rows), 1, MAX_RETAIN_ROWS, 0,
         NULL, NULL, "ticks", " (leave it out to keep every tick)", NULL,
         "keep at most the newest N ticks (default: all); with both, a tick "
         "goes when either says so",
         false},
        SETTING_UINT("store-backlog", "N", FOR_SERVING, SERVING, struct cli,
                     store.queue_capacity, MIN_STORE_BACKLOG, MAX_STORE_BACKLOG,
                     "ticks", "262144",
                     "ticks the store may hold unwritten; beyond it a live "
                     "feed is not slowed: what the store drops is recorded "
                     "as gaps (a replay waits instead)"),
        SETTING_CHOICE("compression", "on|off", FOR_SERVING, SERVING,
                       struct cli, server.compression, on_off, "on",
                       "compress updates for clients that offer it "
                       "(permessage-deflate)"),

        SETTING_CHOICE("role", "ROLE", FOR_SERVING, SCALING, struct cli,
                       node.role, roles, "standalone",
                       "standalone, ingest (feed, store and engine, "
                       "publishing every tick to Redis) or edge (no feed: "
                       "follows the ingest through Redis; --db none unless "
                       "given --db FILE, written from the stream with the "
                       "ingest's epoch)"),
        SETTING_CUSTOM("redis", "HOST:PORT", FOR_SERVING, SCALING, struct cli,
                       node, parse_redis, NULL,
                       "the Redis server, required for ingest and edge"),
        SETTING_CUSTOM("redis-prefix", "P", FOR_SERVING, SCALING, struct cli,
                       node.redis_prefix, parse_redis_prefix, NULL,
                       "key prefix in Redis (default publisher)"),

        SETTING_STRING("auth-secret", "FILE", FOR_SERVING, GUARDS, struct cli,
                       server.auth_secret, NULL,
                       "require an HS256 JWT (Authorization: Bearer, ?token= "
                       "or cookie token=) signed with the key in FILE"),
        SETTING_LIST("allow-origin", "ORIGIN", FOR_SERVING, GUARDS, struct cli,
                     server.allow_origins, server.allow_origin_count,
                     check_origin, NULL,
                     "a browser origin allowed to connect, e.g. "
                     "https://example.com; repeat for more (default: only "
                     "pages served by this server)"),
        SETTING_STRING("tls-cert", "FILE", FOR_SERVING, GUARDS, struct cli,
                       server.tls_cert, NULL,
                       "PEM certificate: serve https and wss"),
        SETTING_STRING("tls-key", "FILE", FOR_SERVING, GUARDS, struct cli,
                       server.tls_key, NULL, "PEM private key of --tls-cert"),
        SETTING_UINT("max-connections", "N", FOR_SERVING, GUARDS, struct cli,
                     server.max_connections, 1, MAX_CONNECTIONS, NULL, "10000",
                     "WebSocket clients at once; more get 503"),
        SETTING_UINT("max-connections-per-ip", "N", FOR_SERVING, GUARDS,
                     struct cli, server.max_connections_per_ip, 0,
                     MAX_CONNECTIONS, NULL, "0",
                     "WebSocket clients from one address; more get 429; 0 "
                     "= no cap, as an office behind one NAT is one "
                     "address (behind a proxy, see --trusted-proxy)"),
        SETTING_LIST("trusted-proxy", "ADDR", FOR_SERVING, GUARDS, struct cli,
                     server.trusted_proxies, server.trusted_proxy_count,
                     check_address, NULL,
                     "a proxy (IPv4 or IPv6 address) whose X-Forwarded-For "
                     "names the client, for the per-address cap, the logs "
                     "and /api; repeat for more"),
        SETTING_UINT("handshake-timeout-secs", "N", FOR_SERVING, GUARDS,
                     struct cli, server.handshake_secs, 1, MAX_HANDSHAKE_SECS,
                     "seconds", "10",
                     "a connection must finish TLS and its request headers "
                     "within N seconds"),

        SETTING_CUSTOM("speed", "X|max", FOR_REPLAY, REPLAY, struct cli,
                       replay.speed, parse_speed, "1",
                       "X times as fast as recorded, or max = as fast as "
                       "possible"),
        SETTING_SWITCH("loop", FOR_REPLAY, REPLAY, struct cli, replay.loop,
                       "at the end start over, timestamps shifted forward"),

        SETTING_STRING("db", "FILE", FOR_EXPORT, EXPORT, struct cli, export.db,
                       NULL, "SQLite database to read (required)"),
        SETTING_LIST("symbol", "S", FOR_EXPORT, EXPORT, struct cli,
                     export.symbols, export.symbol_count, check_symbol,
                     "; leave it out to export every symbol",
                     "only symbol S; repeat for more, up to 64 (default: "
                     "every symbol)"),
        SETTING_CUSTOM("from", "T", FOR_EXPORT, EXPORT, struct cli, export.from,
                       parse_time, NULL,
                       "only ticks at or after T (default: all)"),
        SETTING_CUSTOM("to", "T", FOR_EXPORT, EXPORT, struct cli, export.to,
                       parse_time, NULL,
                       "only ticks at or before T (default: all)"),
        SETTING_CHOICE("format", "csv|jsonl", FOR_EXPORT, EXPORT, struct cli,
                       export.jsonl, formats, "csv", "output format"),
        SETTING_CHOICE("log-level", "LEVEL", FOR_EXPORT, EXPORT, struct cli,
                       node.log_level, log_levels, "info",
                       "error, warn, info or debug"),
        {"output", "-o", "FILE", FOR_EXPORT, EXPORT, SETTING_KIND_CUSTOM,
         SETTING_TARGET(struct cli, export.output), 0, 0, 0, NULL, parse_output,
         NULL, NULL, NULL, "write to FILE (default: standard output)", false},

        SETTING_STRING("db", "FILE", FOR_IMPORT, IMPORT, struct cli, import.db,
                       NULL,
                       "SQLite database to load into (required), created "
                       "if missing; refused while a server has it open"),
        SETTING_CHOICE("log-level", "LEVEL", FOR_IMPORT, IMPORT, struct cli,
                       node.log_level, log_levels, "info",
                       "error, warn, info or debug"),

        SETTING_LIST("session", "PATTERN=ZONE@HH:MM", FOR_SERVING | FOR_IMPORT,
                     SESSION, struct cli, sessions.specs, sessions.count,
                     check_session, NULL,
                     "the trading sessions of the symbols PATTERN matches "
                     "begin at HH:MM local time in ZONE, an IANA time zone "
                     "such as America/New_York (its daylight saving time "
                     "followed); PATTERN is a symbol, or the start of "
                     "symbols followed by *; repeat for more, the first "
                     "that matches wins (default: 00:00 UTC for every "
                     "symbol). Each session starts open, high, low, volume "
                     "and trades again; prev_close is the last session's "
                     "close"),
};
#define N_ROWS (sizeof rows / sizeof rows[0])

/* ------------------------------------------------------------- commands */

static const struct {
	const char *name;
	enum cli_command command;
} commands[] = {
        {"serve", CLI_SERVE},
        {"replay", CLI_REPLAY},
        {"export", CLI_EXPORT},
        {"import", CLI_IMPORT},
};

/* What parsing collects besides struct cli itself. */
struct parse_state {
	struct cli *out;
	struct settings_run run;
	unsigned char given[N_ROWS];
	const char *command_name;
	bool have_file; /* replay's FILE */
};

/* A usage error: the message into the caller's buffer; returns -1. */
#define fail(st, ...) errf((st)->run.err, (st)->run.errlen, __VA_ARGS__)

/* Was the row of this name (in this command) set by a flag or the file? */
static bool
given(const struct parse_state *st, const char *name)
{
	const struct setting *row =
	        settings_find(&st->run, name, strlen(name), NULL);

	return row && st->given[row - rows];
}

/* The role's requirements, once every option is known. */
static int
check_role(struct parse_state *st)
{
	struct node_options *o = &st->out->node;
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
		if (given(st, "feed"))
			return fail(st, "--feed does not apply to --role edge: "
			                "an edge takes its ticks from Redis");
		/* An edge's store (--db FILE) is written from the stream
		 * with the ingest's epoch; without --db it keeps none. */
		o->feed_spec = "none";
		if (!given(st, "db"))
			st->out->store.path = "none";
	}
	return 0;
}

/* What no single row can check, once every option is known. */
static int
check_whole(struct parse_state *st)
{
	struct cli *out = st->out;

	/* A certificate without its key (or the reverse) is a half-done
	 * TLS setup: refuse it rather than serve plain HTTP by surprise. */
	if (!out->server.tls_cert != !out->server.tls_key)
		return fail(st, "%s needs %s as well",
		            out->server.tls_cert ? "--tls-cert" : "--tls-key",
		            out->server.tls_cert ? "--tls-key FILE"
		                                 : "--tls-cert FILE");
	switch (out->command) {
	case CLI_SERVE:
		return check_role(st);
	case CLI_REPLAY:
		if (!st->have_file)
			return fail(st, "replay needs a FILE (a JSONL or CSV "
			                "tick file, as export writes)");
		return check_role(st);
	case CLI_EXPORT:
		if (!out->export.db)
			return fail(st, "export needs --db FILE");
		if (given(st, "from") && given(st, "to") &&
		    out->export.from > out->export.to)
			return fail(st, "--from is after --to");
		return 0;
	case CLI_IMPORT:
		if (!out->import.file_count)
			return fail(st, "import needs a FILE (a JSONL or CSV "
			                "tick file, as export writes; - for "
			                "standard input)");
		if (!out->import.db)
			return fail(st, "import needs --db FILE");
		return 0;
	default:
		return 0;
	}
}

/* Explain a flag this command does not take. */
static int
unknown_option(struct parse_state *st, const char *flag, size_t flaglen)
{
	const struct setting *other, *guess;
	const char *name = flag + (flag[1] == '-' ? 2 : 1);
	char typed[40];

	if (flaglen >= sizeof typed)
		flaglen = sizeof typed - 1;
	memcpy(typed, flag, flaglen);
	typed[flaglen] = '\0';
	if (flag[1] == '-' &&
	    !settings_find(&st->run, name, strlen(typed) - 2, &other) &&
	    other) {
		if (!strcmp(other->name, "feed") &&
		    st->out->command == CLI_REPLAY)
			return fail(st, "--feed does not apply to 'replay': "
			                "the feed is the replay FILE");
		return fail(st, "%s does not apply to '%s'", typed,
		            st->command_name);
	}
	guess = flag[1] == '-' ? settings_suggest(&st->run, typed + 2) : NULL;
	if (guess)
		return errf(st->run.err, st->run.errlen,
		            "unknown option '%s' for '%s' (did you mean --%s?)",
		            typed, st->command_name, guess->name);
	return fail(st, "unknown option '%s' for '%s'", typed,
	            st->command_name);
}

/* One flag from argv[*i] (with its value, from "=" or the next argument). */
static int
take_flag(struct parse_state *st, int argc, char **argv, int *i)
{
	const char *arg = argv[*i], *value = NULL, *eq;
	const struct setting *row;
	char shown[48];
	size_t namelen;

	/* --name=value or --name value; -o value */
	eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
	namelen = eq ? (size_t)(eq - arg) : strlen(arg);
	row = arg[1] == '-'
	              ? settings_find(&st->run, arg + 2, namelen - 2, NULL)
	              : settings_find(&st->run, arg, namelen, NULL);
	if (!row)
		return unknown_option(st, arg, namelen);
	snprintf(shown, sizeof shown, "%.*s", (int)namelen, arg);
	if (row->kind == SETTING_KIND_SWITCH)
		return settings_set(&st->run, row, shown, eq ? eq + 1 : NULL,
		                    false);
	if (eq)
		value = eq + 1;
	else if (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0)
		/* A following "--opt" is taken for a forgotten value rather
		 * than swallowed as one. */
		value = argv[++*i];
	return settings_set(&st->run, row, shown, value ? value : "", false);
}

/* The --config FILE of argv, read before the flags so that they override
 * it. */
static int
read_config(struct parse_state *st, int argc, char **argv)
{
	const struct setting *config;
	const char *path = NULL;
	int i;

	for (i = 2; i < argc; i++) {
		if (!strncmp(argv[i], "--config=", 9))
			path = argv[i] + 9;
		else if (!strcmp(argv[i], "--config") && i + 1 < argc &&
		         strncmp(argv[i + 1], "--", 2))
			path = argv[i + 1];
	}
	if (!path || !*path)
		return 0;
	config = settings_find(&st->run, "config", 6, NULL);
	if (!config)
		return 0; /* the command takes none: said by the flag loop */
	if (settings_read_file(&st->run, path, st->out->config_text,
	                       sizeof st->out->config_text))
		return -1;
	if (st->given[config - rows])
		return errf(st->run.err, st->run.errlen,
		            "config '%.200s': a config file cannot name "
		            "another (config)",
		            path);
	return 0;
}

static void
start_run(struct parse_state *st, struct cli *out, unsigned scope, char *err,
          size_t errlen)
{
	memset(st, 0, sizeof *st);
	st->out = out;
	st->run.rows = rows;
	st->run.count = N_ROWS;
	st->run.base = out;
	st->run.scope = scope;
	st->run.given = st->given;
	st->run.err = err;
	st->run.errlen = errlen;
}

static int
find_command(const char *name, enum cli_command *out)
{
	size_t i;

	for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(commands[i].name, name)) {
			*out = commands[i].command;
			return 0;
		}
	return -1;
}

/* --help and --version win wherever they are, so that "publisher serve
 * --lisen x --help" shows the help instead of complaining. */
static bool
asks_help_or_version(int argc, char **argv, struct cli *out)
{
	int i;

	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			out->command = CLI_HELP;
			if (argc < 2 || find_command(argv[1], &out->help_for))
				out->help_for = CLI_HELP;
			return true;
		}
	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--version")) {
			out->command = CLI_VERSION;
			return true;
		}
	return false;
}

int
cli_parse(int argc, char **argv, struct cli *out, char *err, size_t errlen)
{
	struct parse_state st;
	int i;

	memset(out, 0, sizeof *out);
	out->export.to = INT64_MAX;
	start_run(&st, out, 0, err, errlen);
	if (err && errlen)
		err[0] = '\0';
	if (asks_help_or_version(argc, argv, out))
		return 0;
	if (argc < 2 || argv[1][0] == '-')
		return errf(
		        st.run.err, st.run.errlen,
		        "missing command (serve, replay, export or import)");
	if (!strcmp(argv[1], "help")) {
		out->command = CLI_HELP;
		out->help_for = CLI_HELP;
		return 0;
	}
	if (find_command(argv[1], &out->command))
		return errf(st.run.err, st.run.errlen,
		            "unknown command " QUOTE
		            " (expected serve, replay, export or import)",
		            argv[1]);
	st.command_name = argv[1];
	st.run.scope = 1u << out->command;
	st.run.scope_name = argv[1];
	if (settings_defaults(&st.run) || read_config(&st, argc, argv))
		return -1;

	for (i = 2; i < argc; i++) {
		const char *arg = argv[i];

		/* Positional: replay's FILE, import's FILEs ("-" alone is a
		 * name, too). */
		if (arg[0] != '-' || arg[1] == '\0') {
			if (out->command == CLI_REPLAY && !st.have_file) {
				out->replay.path = arg;
				st.have_file = true;
				continue;
			}
			if (out->command == CLI_IMPORT) {
				if (out->import.file_count == IMPORT_MAX_FILES)
					return errf(st.run.err, st.run.errlen,
					            "import takes at most %d "
					            "files at once",
					            IMPORT_MAX_FILES);
				out->import.files[out->import.file_count++] =
				        arg;
				continue;
			}
			return errf(st.run.err, st.run.errlen,
			            "unexpected argument " QUOTE " for '%s'",
			            arg, argv[1]);
		}
		if (take_flag(&st, argc, argv, &i))
			return -1;
	}
	return check_whole(&st);
}

/* ------------------------------------------------------------------ help */

static void
print_usage(FILE *to, enum cli_command command)
{
	bool all = command != CLI_SERVE && command != CLI_REPLAY &&
	           command != CLI_EXPORT && command != CLI_IMPORT;

	fprintf(to, "%s - live market data over WebSocket\n\nUsage:\n",
	        cli_version_string);
	if (all || command == CLI_SERVE)
		fprintf(to, "  publisher serve  [--config FILE] [options]\n");
	if (all || command == CLI_REPLAY)
		fprintf(to, "  publisher replay FILE [--speed X|max] [--loop] "
		            "[options]\n");
	if (all || command == CLI_EXPORT)
		fprintf(to, "  publisher export --db FILE [--symbol S]... "
		            "[--from T] [--to T]\n"
		            "                   [--format csv|jsonl] [-o "
		            "FILE]\n");
	if (all || command == CLI_IMPORT)
		fprintf(to, "  publisher import FILE... --db FILE\n");
	fprintf(to, "  publisher%s --help | --version\n\n",
	        all ? " [COMMAND]" : "");
}

static void
print_notes(FILE *to, enum cli_command command)
{
	if (command == CLI_IMPORT || command == CLI_HELP)
		fprintf(to,
		        "\n"
		        "Import FILE: a tick file (JSONL or CSV, what export "
		        "writes), or - for\n"
		        "standard input. The same bytes imported again add "
		        "nothing; an interrupted\n"
		        "import resumes where it stopped. Bad lines are "
		        "refused and named; they are\n"
		        "not ticks, so they do not make the import fail.\n");
	if (command != CLI_EXPORT && command != CLI_IMPORT)
		fprintf(to,
		        "\n"
		        "Feed SPEC:\n"
		        "  synthetic[:symbols=N,rate=R,seed=S]  seeded random "
		        "walk (the default)\n"
		        "  replay:FILE[,speed=X|max][,loop]     a recorded "
		        "tick "
		        "file\n"
		        "  tcp:HOST:PORT[,idle=SECS][,secret=FILE]\n"
		        "                                       line ticks "
		        "from producers; one that\n"
		        "                                       sends no line "
		        "for SECS (1-86400,\n"
		        "                                       default 60) is "
		        "closed; with a secret\n"
		        "                                       the first line "
		        "must be AUTH <secret>\n"
		        "  stdin                                line ticks "
		        "from "
		        "standard input\n"
		        "  none                                 no feed: serve "
		        "what the database holds\n"
		        "\n"
		        "A config file holds the options above as 'name value' "
		        "lines ('listen\n"
		        "127.0.0.1:8080', 'allow-origin https://a.example' "
		        "once "
		        "per origin, 'loop'\n"
		        "alone); # starts a comment line. Flags override "
		        "it.\n");
	if (command != CLI_SERVE && command != CLI_REPLAY &&
	    command != CLI_IMPORT)
		fprintf(to,
		        "\n"
		        "Times T: integer microseconds since the Unix "
		        "epoch, or ISO 8601 such as\n"
		        "2024-03-01T14:30:00Z, 2024-03-01T14:30:00.250+01:00 "
		        "or 2024-03-01 (UTC).\n");
	fprintf(to, "\n"
	            "Options take their value as --opt VALUE or --opt=VALUE.\n"
	            "Exit status: 0 success, 2 usage error, 1 runtime "
	            "failure.\n");
}

void
cli_print_help(FILE *to, enum cli_command command)
{
	struct parse_state st;
	static struct cli scratch;

	start_run(&st, &scratch, 0, NULL, 0);
	print_usage(to, command);
	switch (command) {
	case CLI_SERVE:
		fprintf(to, "serve takes ticks from a feed, keeps the latest "
		            "state of every symbol, stores\n"
		            "ticks and state in SQLite and streams updates to "
		            "WebSocket clients at /ws;\n"
		            "it serves the dashboard at /.\n\n");
		break;
	case CLI_REPLAY:
		fprintf(to, "replay serves like serve, with a recorded tick "
		            "file (JSONL or CSV, what\n"
		            "export writes) as the feed.\n\n");
		break;
	case CLI_EXPORT:
		fprintf(to, "export writes stored ticks in the format replay "
		            "reads.\n\n");
		break;
	case CLI_IMPORT:
		fprintf(to, "import loads tick files into a database at full "
		            "speed, then exits.\n\n");
		break;
	default:
		fprintf(to, "serve takes ticks from a feed, keeps the latest "
		            "state of every symbol, stores\n"
		            "ticks and state in SQLite and streams updates to "
		            "WebSocket clients at /ws;\n"
		            "it serves the dashboard at /. replay does the "
		            "same with a recorded tick file\n"
		            "as the feed. export writes stored ticks in the "
		            "format replay reads;\n"
		            "import loads tick files into a database.\n"
		            "'publisher COMMAND --help' shows one command's "
		            "options.\n\n");
	}
	st.run.scope = command == CLI_HELP || command == CLI_VERSION
	                       ? FOR_ALL
	                       : 1u << command;
	settings_print_help(&st.run, to);
	print_notes(to, command);
}

/*
 * cli: the command line (README, Command line) parsed into a struct cli.
 *
 *   publisher serve  [--listen HOST:PORT] [--db FILE] [--web DIR] [--feed SPEC]
 *                    [--log-level LEVEL] [--retain-age AGE] [--retain-rows N]
 *                    [--auth-secret FILE] [--allow-origin ORIGIN]…
 *                    [--tls-cert FILE --tls-key FILE] [limits…]
 *                    [--role standalone|ingest|edge --redis HOST:PORT
 *                     [--redis-prefix P]]
 *   publisher replay FILE [--speed X|max] [--loop] [serve options]
 *   publisher export --db FILE [--symbol S]… [--from T] [--to T]
 *                    [--format csv|jsonl] [-o FILE]
 *   publisher --help | --version
 *
 * Parsing allocates nothing: strings point into argv, except feed_spec for
 * `replay`, which is built into feed_spec_buf.
 */
#ifndef PUBLISHER_CLI_H
#define PUBLISHER_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_MAX_EXPORT_SYMBOLS 64
#define CLI_MAX_ORIGINS	       32

enum cli_command {
	CLI_SERVE,
	CLI_REPLAY, /* serve with a replay feed built from FILE/--speed/--loop */
	CLI_EXPORT,
	CLI_HELP,
	CLI_VERSION,
};

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Scale-out (publisher/redis_link.h). */
enum serve_role {
	ROLE_STANDALONE, /* the default: no Redis */
	ROLE_INGEST,	 /* feed + store + engine, publishes to Redis */
	ROLE_EDGE,	 /* no feed: follows Redis and serves clients */
};

struct serve_options {
	char listen_host[64];	/* default "127.0.0.1" */
	int listen_port;	/* default 8080; 0 = any free port */
	const char *db;		/* default "data/ticks.db" */
	const char *web;	/* default "web" */
	const char *feed_spec;	/* default "synthetic" */
	enum log_level log_level; /* default info */
	const char *port_file;	/* if set, the bound port is written there */
	unsigned heartbeat_ms;	/* default 5000 */
	unsigned ping_secs;	/* idle seconds before a ws ping, default 20 */
	size_t max_message_bytes; /* default 65536 */
	size_t max_symbols;	/* per connection, default 10000 */
	double ops_per_sec;	/* inbound rate limit, default 100 */
	double ops_burst;	/* default 200 */
	/* Retention (both may be set; a tick goes when either says so). */
	int64_t retain_age_us;	/* --retain-age 7d: µs; 0 = keep all (default) */
	uint64_t retain_rows;	/* --retain-rows N: ticks; 0 = keep all (default) */
	size_t store_backlog;	/* --store-backlog N: ticks; 0 = the store's
				 * default */
	bool compression;	/* permessage-deflate offered by clients is
				 * taken (default on) */

	/* Exposure (see the README's security section). */
	const char *auth_secret; /* HS256 key file; NULL = no authentication */
	/* Origins allowed to open /ws and call /api ("https://host:port",
	 * exact). None given: only the server's own host (Origin = Host). */
	const char *allow_origins[CLI_MAX_ORIGINS];
	size_t allow_origin_count;
	const char *tls_cert;	/* PEM; set together with tls_key, or neither */
	const char *tls_key;
	unsigned max_connections;	 /* WebSocket clients, default 10000 */
	unsigned max_connections_per_ip; /* default 100 */
	unsigned handshake_secs; /* TLS + HTTP headers must arrive within, 10 */

	/* Scale-out: --role, --redis HOST:PORT (required for ingest and
	 * edge), --redis-prefix (default "publisher"). An edge has no feed
	 * ("none") and no store unless given --db FILE (--db none is the
	 * edge's default; main.c opens an edge's store with the ingest's
	 * epoch). */
	enum serve_role role;
	char redis_host[256]; /* "" when --redis is not given */
	int redis_port;
	const char *redis_prefix;
};

struct export_options {
	const char *db;
	const char *symbols[CLI_MAX_EXPORT_SYMBOLS];
	size_t symbol_count;
	int64_t from, to; /* µs; 0 / INT64_MAX when absent */
	bool jsonl;	  /* false: csv (the default) */
	const char *output; /* NULL = stdout */
};

struct cli {
	enum cli_command command;
	struct serve_options serve;
	struct export_options export;
	char feed_spec_buf[4096];
};

/*
 * Parse argv. Returns 0, or -1 with a one-line message in err that names the
 * bad option or value (the caller prints it with the usage hint and exits 2).
 */
int
cli_parse(int argc, char **argv, struct cli *out, char *err, size_t errlen);

/* Print the full help text. */
void
cli_print_help(FILE *to);

/* "publisher X.Y.Z" */
extern const char cli_version_string[];

#endif

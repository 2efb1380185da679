/*
 * server: the libwebsockets glue. Serves web/ over HTTP and the protocol on
 * /ws, on the libuv loop the pipeline runs on (libwebsockets' libuv event
 * library over a loop it does not own), and writes each client's conflated
 * frames when its socket is writable.
 *
 *   struct server *s = server_create(&opts, &parts, err, sizeof err);
 *   server_run(s);          // until server_stop(), SIGINT or SIGTERM
 *   server_destroy(s);      // then run the loop once more to close handles
 *
 * What it owns: the libwebsockets context with its listening socket (and
 * TLS), the sessions' hub and so every client connection, the history and
 * export workers (query.h) when there is a database, the token secret
 * (auth.h), the compressor (ws_deflate.h), and its own timers, wakes and
 * SIGINT/SIGTERM handlers on the loop. The loop, the pipeline, the store
 * and the Redis publisher are borrowed (struct server_parts).
 *
 * Who calls it: main.c, which makes one server per serving process after
 * the pipeline and its sinks. Everything here runs on the loop's thread,
 * except server_stop(), which any thread may call.
 *
 * Exposure (README "Security"): every WebSocket upgrade and /api request
 * passes the Origin check and, with --auth-secret, a token check before it
 * is served; the token's entitlements then bound subscribe, the wildcard,
 * symbols, history, export and bars. GET /metrics reports what happens.
 */
#ifndef PUBLISHER_SERVER_H
#define PUBLISHER_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

struct server;
struct pipeline;
struct redis_publisher;
struct store;
struct trading_sessions;

#define SERVER_MAX_ORIGINS 32
#define SERVER_MAX_PROXIES 16

/* How the server listens, serves and bounds its clients. Strings are
 * borrowed and must outlive the server. */
struct server_options {
	char listen_host[64];     /* an IPv4 address, "localhost" or an IPv6
	                           * address without brackets */
	int listen_port;          /* 0 = any free port (see server_port()) */
	const char *web;          /* the dashboard's files */
	unsigned heartbeat_ms;    /* heartbeat an idle client this often */
	unsigned ping_secs;       /* WebSocket ping after this long idle */
	/* A Server-Sent Events or long-poll session is kept this long
	 * without a request carrying it, for its client to come back to. */
	unsigned stream_linger_secs;
	size_t max_message_bytes; /* largest inbound message */
	size_t max_symbols;       /* subscriptions per connection */
	double ops_per_sec;       /* inbound rate limit per connection */
	double ops_burst;
	bool compression; /* take permessage-deflate when offered */

	/* Symbols with no data yet that clients may subscribe to: per
	 * connection, and all connections together. */
	size_t max_pending_symbols;
	size_t max_pending_symbols_total;
	/* Symbols with data: server_create() gives the pipeline's engine
	 * this bound (engine_set_max_symbols). */
	size_t max_symbols_total;

	/* Exposure (README "Security"). */
	const char *auth_secret; /* HS256 key file; NULL = no tokens */
	/* Origins allowed to open /ws and call /api ("https://host:port",
	 * exact). None: only the server's own host (Origin = Host). */
	const char *allow_origins[SERVER_MAX_ORIGINS];
	size_t allow_origin_count;
	const char *tls_cert; /* PEM; set together with tls_key */
	const char *tls_key;
	unsigned max_connections;        /* WebSocket clients; more get 503 */
	unsigned max_connections_per_ip; /* more get 429; 0 = no cap */
	/* Proxies (IPv4 or IPv6 addresses) whose X-Forwarded-For names the
	 * client: the per-address cap, the logs and /api use that address
	 * for requests they pass on. Nobody else is believed. */
	const char *trusted_proxies[SERVER_MAX_PROXIES];
	size_t trusted_proxy_count;
	unsigned handshake_secs; /* TLS and request headers within */
};

/* What the server works with; all borrowed, all must outlive the server. */
struct server_parts {
	uv_loop_t *loop;           /* the loop the pipeline runs on */
	struct pipeline *pipeline; /* engine, epoch, feed, sinks */
	const char *db_path;       /* NULL: no store, history refused */
	struct store *store;       /* for /metrics; NULL without a store */
	const char *feed_kind;     /* "synthetic", "replay", "redis", … */
	/* An ingest's publisher, for /metrics and /healthz; NULL else. (An
	 * edge's follower is the pipeline's.) */
	struct redis_publisher *redis_pub;
	/* The --session rules: the symbols reply names each symbol's time
	 * zone from them. NULL: UTC for every symbol. */
	const struct trading_sessions *sessions;
};

/*
 * Create the lws context and listen, with TLS when opt->tls_cert is set
 * and tokens required when opt->auth_secret is (the secret file is read
 * here). Returns NULL with the cause in err, naming what failed: "cannot
 * listen on 127.0.0.1:8080: address in use", "TLS certificate 'x.pem': No
 * such file or directory", "token secret: …".
 */
struct server *server_create(const struct server_options *opt,
                             const struct server_parts *parts, char *err,
                             size_t errlen);

/* The bytes the server writes in front of every frame (LWS_PRE): the
 * engine keeps that much room before each frame it makes (pipeline_options
 * frame_headroom). */
size_t server_frame_headroom(void);

/* The port actually bound (useful with --listen HOST:0). */
int server_port(const struct server *s);

/* Run the loop until stopped (SIGINT and SIGTERM stop it too). On stop,
 * every WebSocket client gets a close frame with 1001 (going away), and the
 * loop returns once they are gone or a second has passed. Returns 0, or -1
 * on a loop failure. */
int server_run(struct server *s);

/* Ask the loop to stop. Thread-safe. */
void server_stop(struct server *s);

/* NULL is a no-op. Clients still attached are closed; libwebsockets and
 * the server's own handles finish closing when the loop runs again. */
void server_destroy(struct server *s);

#endif

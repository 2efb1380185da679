/*
 * server: the libwebsockets glue. Serves web/ over HTTP and the protocol of
 * SPEC §3 on /ws, drains the tick_queue into the engine on the service
 * thread, and writes each client's conflated frames when its socket is
 * writable.
 *
 *   struct server *s = server_create(&opts, &parts, err, sizeof err);
 *   server_run(s);          // until server_stop() or SIGINT/SIGTERM
 *   server_destroy(s);
 *
 * Everything here runs on the one lws service thread, except server_stop()
 * and server_wake(), which any thread (or a signal handler) may call.
 *
 * Exposure (README "Security"): every WebSocket upgrade and /api request
 * passes the Origin check and, with --auth-secret, a token check before it
 * is served; the token's entitlements then bound subscribe, the wildcard,
 * symbols, history, export and bars. GET /metrics reports what happens.
 */
#ifndef PUBLISHER_SERVER_H
#define PUBLISHER_SERVER_H

#include <stddef.h>

#include "cli.h"
#include "engine.h"
#include "tick_queue.h"

struct server;

struct store;
struct query_worker;
struct feed;
struct redis_publisher;
struct redis_follower;

/* What the server works with; all borrowed, all must outlive the server. */
struct server_parts {
	struct engine *engine;	/* created with server_engine_config() */
	struct tick_queue *queue; /* the feed's ticks */
	struct store *store;	/* NULL: nothing is persisted */
	struct query_worker *queries; /* NULL: history and export refused */
	struct feed *feed;	/* for status and replay control */
	const char *feed_kind;	/* "synthetic", "replay", … */
	const char *epoch;	/* copied: the server owns its epoch */
	/* Scale-out (publisher/redis_link.h); both NULL when standalone.
	 * Ingest: every applied tick also goes to redis_pub, whose free space
	 * caps the drain like the store's. Edge: the service thread applies
	 * the follower's resyncs (redis_follower_apply_pending) on a wake. */
	struct redis_publisher *redis_pub;
	struct redis_follower *redis_follow;
};

/*
 * Create the lws context and listen, with TLS when opt->tls_cert is set
 * and tokens required when opt->auth_secret is (the secret file is read
 * here). Returns NULL with the cause in err, naming what failed: "cannot
 * listen on 127.0.0.1:8080 (address in use…)", "--tls-cert 'x.pem': No such
 * file or directory", "--auth-secret: …".
 */
struct server *
server_create(const struct serve_options *opt, const struct server_parts *parts,
	      char *err, size_t errlen);

/* The engine config whose client_ready callback reaches the server that
 * will be created with that engine. */
struct engine_config
server_engine_config(void);

/* The port actually bound (useful with --listen HOST:0). */
int
server_port(const struct server *s);

/* Run the service loop until stopped. On stop, every WebSocket client gets a
 * close frame with 1001 (going away). Returns 0, or -1 on a loop failure. */
int
server_run(struct server *s);

/* Ask the loop to stop. Async-signal-safe. */
void
server_stop(struct server *s);

/* Wake the loop to drain the tick queue (the queue's wake callback).
 * Thread-safe; ctx is the struct server. */
void
server_wake(void *ctx);

/*
 * Service thread only (an edge's follower epoch callback): make epoch the
 * one clients are told. When it differs from the current one, the data has
 * a new life: every symbol the engine holds is emptied and every WebSocket
 * is closed with 1012 (service restart), so clients reconnect, read the new
 * epoch in the hello and take fresh snapshots instead of resuming.
 * An edge's store (--db FILE) holds the old epoch: it is no longer written
 * or read (history answers "unavailable", /healthz says degraded) until
 * the edge is restarted with a new --db.
 */
void
server_set_epoch(struct server *s, const char *epoch);

/* NULL is a no-op. Clients still attached are closed. */
void
server_destroy(struct server *s);

#endif

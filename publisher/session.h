/*
 * session.h: one client of the protocol, whatever carries its bytes.
 *
 * A session is what a connection is to the protocol: its subscriptions (an
 * engine client), the replies it is owed, its history requests in flight,
 * its inbound rate limit and its token's claims. It turns each inbound
 * message into replies (every op of the protocol is here) and says what to
 * send next; the transport (the WebSocket code, ws.c) only moves bytes and
 * knows nothing of ops. The sessions of a server share a hub: the engine
 * and pipeline they read, the options, the history workers, and the
 * counters /metrics reports.
 *
 *   hub = session_hub_create(&cfg);
 *   s = session_open(hub, &transport, conn, id, peer, &claims); // hello queued
 *   session_receive(s, text, len);          // a whole inbound message
 *   while (session_take_output(s, now, &out)) write out, then stop when
 *   !out.more;                              // transport asks when writable
 *   session_close(s);                       // the connection is gone
 *
 * The transport is told through two callbacks: want_write (something is
 * due: call session_take_output() when the connection can take it) and
 * wake_at (updates are held back by the client's max_hz until then). A
 * session never writes or closes anything itself: closing is an output
 * (SESSION_OUT_CLOSE) like any other.
 *
 * What it owns: a session owns its engine client, its queued replies, its
 * history jobs (released at close) and its token's claims; the hub owns
 * its sessions' list, the buffer their outputs share and the counters,
 * and borrows the pipeline and the query workers.
 *
 * Who calls it: ws.c opens a session per WebSocket connection and drives
 * it from lws's callbacks; server.c makes the hub, runs its housekeeping
 * and closes every session at shutdown or on a new epoch; the engine calls
 * session_updates_ready() through the pipeline's client_ready hook;
 * metrics.c reads the hub's stats. Everything runs on the loop's thread.
 */
#ifndef PUBLISHER_SESSION_H
#define PUBLISHER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"

struct engine_client;
struct pipeline;
struct query_worker;
struct session;
struct session_hub;
struct trading_sessions;

/* Error codes /metrics counts by name; anything else counts as "other"
 * (the last slot). */
#define SESSION_ERROR_CODES 9
extern const char *const session_error_codes[SESSION_ERROR_CODES];

/* Upper bounds (seconds) of the tick-to-send latency histogram. */
#define SESSION_LATENCY_BUCKETS 14
extern const double session_latency_buckets[SESSION_LATENCY_BUCKETS];

/* Close codes a session asks for. */
#define SESSION_CLOSE_GOING_AWAY      1001 /* the server is shutting down */
#define SESSION_CLOSE_POLICY          1008 /* sustained abuse */
#define SESSION_CLOSE_SERVICE_RESTART 1012 /* a new epoch: reconnect */
#define SESSION_CLOSE_TOKEN_EXPIRED   4001 /* fetch a new token */

struct session_hub_config {
	struct pipeline *pipeline;    /* engine, epoch, feed, sinks */
	struct query_worker *queries; /* NULL: history is refused */
	const char *feed_kind;        /* "synthetic", "replay", … or NULL */
	const char *server_name;      /* "publisher X.Y.Z", for the hello */
	bool auth;                    /* tokens are required: claims apply */
	size_t headroom;              /* writable bytes before every output */
	unsigned heartbeat_ms;
	size_t max_symbols;            /* subscriptions per session */
	double ops_per_sec, ops_burst; /* inbound rate limit */
	/* Symbols with no data yet (placeholders, engine.h): at most
	 * max_pending_symbols subscribed per session and
	 * max_pending_symbols_total in the engine. 0: no bound. */
	size_t max_pending_symbols;
	size_t max_pending_symbols_total;
	/* The --session rules, for each symbol's time zone in the symbols
	 * reply (NULL: every symbol's is UTC). */
	const struct trading_sessions *sessions;
};

/* The bounds a subscribe can meet, for /metrics: their names are the
 * settings' (README, Security). */
enum session_symbol_bound {
	SESSION_BOUND_SYMBOLS,       /* max-symbols */
	SESSION_BOUND_PENDING,       /* max-pending-symbols */
	SESSION_BOUND_PENDING_TOTAL, /* max-pending-symbols-total */
	SESSION_BOUNDS
};
extern const char *const session_bound_names[SESSION_BOUNDS];

/* What the hub counts, for /metrics. */
struct session_hub_stats {
	size_t sessions;
	uint64_t opened;
	uint64_t tokens_expired;
	uint64_t errors[SESSION_ERROR_CODES + 1];     /* by code; last: other */
	uint64_t subscribes_refused[SESSION_BOUNDS];  /* too_many_symbols */
	uint64_t latency_le[SESSION_LATENCY_BUCKETS]; /* not cumulative */
	uint64_t latency_count;
	double latency_sum;
};

/* NULL when out of memory. */
struct session_hub *session_hub_create(const struct session_hub_config *config);

/* Every session must be closed first. NULL is a no-op. */
void session_hub_destroy(struct session_hub *hub);

void session_hub_get_stats(const struct session_hub *hub,
                           struct session_hub_stats *out);

/* Periodic (every 100 ms or so): heartbeats due on idle sessions (their
 * transport is asked to write) and, once a second, token expiry (4001).
 * Costs the heartbeats due, not the sessions open. */
void session_hub_housekeeping(struct session_hub *hub, int64_t now_us);

/* Close every session with status (a shutdown, a new epoch). */
void session_hub_close_all(struct session_hub *hub, int status,
                           const char *reason);

/* The pipeline's client_ready hook: the engine client of session `user`
 * has updates to send. */
void session_updates_ready(void *user, void *ctx);

/* How a session reaches its connection. */
struct session_transport {
	/* Something is due: call session_take_output() when the
	 * connection can take it. */
	void (*want_write)(void *conn);
	/* Updates are held back by max_hz until due_us (CLOCK_REALTIME
	 * µs): ask again then. Called each time the session finds them
	 * held, often with the time it gave before: a transport whose timer
	 * is armed for due_us keeps it, one whose timer has fired (maybe a
	 * little early, on a clock of its own) arms it again. */
	void (*wake_at)(void *conn, int64_t due_us);
};

/*
 * A new session, with what admission decided: its id (for logs), the
 * peer's address and the token's claims (taken over; released at close).
 * The hello is queued at once. NULL when out of memory (the claims are then
 * released).
 */
struct session *session_open(struct session_hub *hub,
                             const struct session_transport *t, void *conn,
                             uint64_t id, const char *peer,
                             struct auth_claims *claims);

/* The connection is gone: free everything. NULL is a no-op. */
void session_close(struct session *s);

/* Have the session close with status: its next output is the close. */
void session_end(struct session *s, int status, const char *reason);

/* A whole inbound message. A binary one is refused with an error reply. */
void session_receive(struct session *s, const char *data, size_t len,
                     bool binary);

enum session_output_kind {
	SESSION_OUT_NONE,    /* nothing now */
	SESSION_OUT_CLOSE,   /* close with close_status, close_reason */
	SESSION_OUT_MESSAGE, /* a whole text message */
	SESSION_OUT_PART,    /* a piece of one message (history): first, last */
	SESSION_OUT_UPDATES, /* update frame(s) of the engine */
};

struct session_output {
	enum session_output_kind kind;
	char *data; /* the hub's headroom writable bytes precede it */
	size_t len;
	bool first, last;  /* SESSION_OUT_PART */
	uint64_t frame_id; /* SESSION_OUT_UPDATES: the same id for the same
	                    * bytes sent to several sessions (a transport
	                    * that transforms frames may do it once per id);
	                    * 0 for a frame of this session alone */
	int close_status;
	const char *close_reason;
	bool more; /* more is due right after this */
};

/*
 * Take what is due now, in order: a close, a history reply already begun,
 * the replies queued (hello, replies to requests, errors), then the
 * engine's updates, else a heartbeat when the connection has been quiet
 * for heartbeat_ms. The bytes stay valid until the next take of any
 * session of the hub (updates and history share the hub's buffer, and an
 * update frame may be shared with other sessions): write them at once.
 * Returns false when there is nothing (out->kind is SESSION_OUT_NONE).
 * Once a close has been taken, nothing else comes.
 */
bool session_take_output(struct session *s, int64_t now_us,
                         struct session_output *out);

/* For logs: the session's id and the peer's address. */
uint64_t session_id(const struct session *s);

const char *session_peer(const struct session *s);

/* The engine client (for tests and the transport's filters). */
struct engine_client *session_engine_client(const struct session *s);

#endif

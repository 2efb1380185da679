/*
 * server_private.h: what the files of the server share, and nobody else.
 *
 *   server.c     the lws context, mounts, signals, housekeeping, lifetime
 *   ws.c         the /ws protocol: a session's bytes over WebSocket
 *   admission.c  who may connect: origin, token, connection caps
 *   http_api.c   /api/export and /api/bars, and HTTP answers in general
 *   http_stream*.c the protocol over plain HTTP: /stream/ (Server-Sent
 *                Events, long-poll, requests by POST); its own files share
 *                http_stream_private.h
 *   metrics.c    /metrics and /healthz
 *   http_status.c /api/status, the figures of the status page
 *   server_figures.c one reading of the figures both of those write
 *
 * The protocol itself (ops, replies, what to send next) is session.c's,
 * which knows nothing of libwebsockets.
 *
 * Included by those files only. It owns nothing itself: it defines
 * struct server, whose fields are what server.h says the server owns,
 * made by server_create() and freed by server_destroy().
 */
#ifndef PUBLISHER_SERVER_PRIVATE_H
#define PUBLISHER_SERVER_PRIVATE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <libwebsockets.h>
#include <uv.h>

#include "auth.h"
#include "engine.h"
#include "jsonbuf.h"
#include "query.h"
#include "server.h"
#include "session.h"

/* Largest frame: the engine's. History replies and HTTP bodies go out in
 * pieces of the same size. */
#define FRAME_CAP ENGINE_FRAME_CAP
/* Room for a peer address as lws_get_peer_simple() writes it. */
#define PEER_MAX 64
/* Buckets of the per-address connection count (a power of two). */
#define PEER_BUCKETS 1024

/* Why a WebSocket handshake or an API request was refused, with the HTTP
 * status the client gets and the label /metrics counts it under. */
enum refusal {
	REFUSED_UNAUTHORIZED,
	REFUSED_ORIGIN,
	REFUSED_FORBIDDEN, /* API only: a symbol outside the entitlements */
	REFUSED_SERVER_FULL,
	REFUSED_PER_IP,
	REFUSED_SHUTTING_DOWN,
	REFUSED_COUNT
};

/* What /metrics reports of the transport, beyond the sessions', engine's,
 * store's and feed's own figures. Touched on the loop's thread only. */
struct server_metrics {
	uint64_t ws_frames_sent, ws_bytes_sent, http_bytes_sent;
	uint64_t refused_ws[REFUSED_COUNT];
	uint64_t refused_api[REFUSED_COUNT];
	uint64_t rx_paused; /* times input was held while output waited */
	/* Times freed memory was handed back to the system. */
	uint64_t memory_trims;
};

/* When freed memory was last handed back (server.c, housekeeping). */
struct memory_trim {
	uint64_t freed_seen;    /* the engine's bytes_freed a tick ago */
	uint64_t freed_trimmed; /* ... at the last trim */
	int64_t last_us;        /* the last trim (monotonic) */
};

/* Open connections per peer address, for --max-connections-per-ip. */
struct peer_count {
	struct peer_count *next;
	char peer[PEER_MAX];
	size_t n;
};

/*
 * What admission decided for the WebSocket being upgraded, until
 * ESTABLISHED takes it: lws frees the HTTP user space when it binds the ws
 * protocol, and runs CONFIRM_UPGRADE, the upgrade and ESTABLISHED in one go
 * for one wsi, so one slot is enough.
 */
struct admission {
	struct lws *wsi; /* NULL: the slot is empty */
	uint64_t conn_id;
	char peer[PEER_MAX];
	struct auth_claims claims; /* owned by the slot until taken */
	bool deflate; /* the client's permessage-deflate offer was taken */
};

/*
 * Per HTTP request on the API mounts (/api/…, /metrics, /healthz), from
 * LWS_CALLBACK_HTTP until lws has finished the request (it may still be
 * sending the answer after our last write) or the connection closes. It is
 * ours, not lws's per-session data, which lws frees and allocates again
 * whenever it binds the connection to a protocol; the connection points
 * to it with lws_set_opaque_user_data() (see "Pipelining" in http_api.c).
 */
/* The methods a request can come with (lws keeps its path in a token
 * named for the method). */
enum http_method {
	HTTP_GET,
	HTTP_POST,
	HTTP_HEAD,
	HTTP_OPTIONS,
	HTTP_PUT,
	HTTP_DELETE,
	HTTP_PATCH,
};

/* "GET", "POST", … */
const char *http_method_name(enum http_method m);

struct http_request {
	struct query_owner owner;  /* first: the job's owner */
	struct http_request *next; /* the server's list of exports */
	struct lws *wsi;
	enum http_method method;
	char peer[PEER_MAX];
	struct query_job *job; /* export or bars, written as it comes */
	bool listed;
	bool answered; /* written whole at once: the request is done */
	/* Answered later, by http_stream*.c: a stream, a poll that waits, a
	 * request whose body is still to come. */
	bool later;
	struct http_stream_request *stream; /* http_stream*.c's, or NULL */
};

struct ws_conn;
struct http_stream;
struct stream_ticket;

/* Stream sessions by key (http_stream_session.c): buckets, a power of
 * two. */
#define STREAM_BUCKETS 4096

struct server {
	uv_loop_t *loop;
	struct lws_context *context;
	struct lws_vhost *vhost;
	const struct server_options *opt;
	struct server_parts parts;
	struct pipeline *pipeline;
	struct engine *engine; /* the pipeline's */
	struct session_hub *hub;
	struct query_worker *queries; /* NULL: history and export refused */
	struct wake *query_wake;
	char web_dir[PATH_MAX];
	int port;

	struct lws_protocols protocols[3];
	struct lws_http_mount mount, mount_api, mount_metrics, mount_health,
	        mount_stream;
	struct http_request *exports;
	lws_retry_bo_t retry;
	lws_sorted_usec_list_t housekeeping;

	/* Clients: WebSockets open and stream sessions held (attached to a
	 * request or lingering); max-connections bounds them together. */
	size_t connections;
	size_t closing;     /* closed, whose socket lws still has */
	uint64_t next_conn_id;
	struct peer_count *peers[PEER_BUCKETS];

	/* Stream sessions (http_stream*.c): by key, those lingering without
	 * a request (oldest first), tickets not yet used (oldest first), the
	 * count of each transport, and the buffer responses are built in. */
	struct http_stream *streams[STREAM_BUCKETS];
	struct http_stream *lingering, *lingering_tail;
	struct stream_ticket *tickets, *tickets_tail;
	size_t ticket_count;
	size_t stream_count[2]; /* SSE, long-poll */
	struct jsonbuf stream_out; /* headroom LWS_PRE */

	struct auth *auth; /* NULL: no --auth-secret, everyone sees all */
	struct admission admitted;
	struct server_metrics m;
	struct memory_trim trim;
	time_t started;

	char *frame;                /* LWS_PRE + FRAME_CAP: HTTP bodies */
	struct ws_deflate *deflate; /* NULL: --compression off */

	uv_signal_t sigint, sigterm;
	uv_timer_t stop_timer;
	/* Connections with work for the loop's idle turn: WebSockets (ws.c)
	 * and SSE responses (http_stream_write.c), and the idle handle that runs
	 * while there are (server_work_soon). */
	uv_idle_t work_idle;
	struct ws_conn *work;
	struct http_stream *stream_work;
	struct wake *stop_wake; /* server_stop() from another thread */
	int handles_open;       /* of sigint, sigterm, stop_timer, work_idle */
	bool stopping;
	int64_t stop_deadline_us;
};

/* ------------------------------------------------------------- ws.c */

/* The /ws protocol's callback (protocols[0]). */
int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                void *in, size_t len);

/* sizeof the per-connection data of ws_callback. */
size_t ws_conn_size(void);

/* On the loop's idle turn: the WebSockets with work (see "Writes" in
 * ws.c). */
void ws_work_run(struct server *s);

/* --------------------------------------------------------- admission.c */

/*
 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: admit the WebSocket upgrade or refuse
 * it with an HTTP status. The order is origin, token, then the connection
 * caps, so that a client without a valid token always learns only "401".
 * Returns 0 to let the upgrade go on (what was decided waits in
 * s->admitted), 1 when a refusal was written, -1 to hang up.
 */
int admit_upgrade(struct server *s, struct lws *wsi);

/*
 * The checks a new client passes, in order: the server is not stopping,
 * the Origin, the token (skipped when token_checked: a stream's ticket
 * stood for it), then the connection caps. Returns REFUSED_COUNT when
 * admitted (with tokens, the token's claims in *claims, released by the
 * caller), else the refusal, with the reason for the log in why.
 */
enum refusal admit_client(struct server *s, struct lws *wsi, const char *peer,
                          struct auth_claims *claims, bool token_checked,
                          char *why, size_t whylen);

/* ESTABLISHED: take what admission decided for wsi into *a (the slot is
 * emptied). Returns -1 when this wsi was not admitted. */
int take_admission(struct server *s, struct lws *wsi, struct admission *a);

/* Whether to take a client's permessage-deflate offer, noted in the
 * admission slot. */
bool confirm_compression(struct server *s, struct lws *wsi, const char *name);

/* The Origin check of a request (true: allowed; else the reason in why). */
bool origin_allowed(struct server *s, struct lws *wsi, char *why,
                    size_t whylen);

/* Verify the request's token into *claims. Returns 0, or -1 with the
 * reason, for the log, in why. */
int authenticate(struct server *s, struct lws *wsi, struct auth_claims *claims,
                 char *why, size_t whylen);

/* Answer a refusal (status, one-line body) and log it, at most so often. */
int write_refusal(struct lws *wsi, enum refusal r, bool upgrade);
void log_refusal(const char *who, const char *what, enum refusal r,
                 const char *why);
const char *refusal_label(enum refusal r);

/* The client's address: the peer's, or, when the peer is a trusted proxy,
 * the nearest address in X-Forwarded-For that is not one. */
void client_address(struct server *s, struct lws *wsi, char *out, size_t len);
void peer_add(struct server *s, const char *peer, int delta);
void peers_free(struct server *s);

/* Make untrusted header text safe to quote in a log line. */
void sanitize(char *text);

bool is_loopback(const char *host);

/* ---------------------------------------------------------- http_api.c */

/* The API mounts' callback (protocols[1]). */
int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                  void *in, size_t len);

/* Headers of a file of the static mount (the client library may be
 * imported from any origin). LWS_CALLBACK_ADD_HEADERS's answer. */
int http_static_headers(struct lws *wsi, struct lws_process_html_args *args);

/* lws has finished the HTTP request on wsi (it binds the connection back
 * to protocols[0]: ws_callback's HTTP_BIND_PROTOCOL), or closes the
 * connection: what the request held is freed. */
void http_request_done(struct lws *wsi);

/* Answer with a body built at once (taken over and freed), written whole
 * now: the request is then done when the callback returns. */
int http_respond(struct http_request *h, unsigned status,
                 const char *content_type, char *body, size_t len);
int http_respond_text(struct http_request *h, unsigned status, const char *fmt,
                      ...) __attribute__((format(printf, 3, 4)));

/* Have the loop's next idle turn run ws_work_run and http_stream_work_run
 * (server.c). */
void server_work_soon(struct server *s);

/* ------------------------------------------------------- http_stream*.c */

/* On the loop's idle turn: the SSE responses with frames due. */
void http_stream_work_run(struct server *s);

/* LWS_CALLBACK_HTTP for a path under /stream/ (h is the new request,
 * h->method its method). Returns what http_request_start returns: -1
 * hangs up. */
int http_stream_request(struct server *s, struct http_request *h,
                        const char *path);

/* The request's HTTP_WRITEABLE, HTTP_BODY, HTTP_BODY_COMPLETION and
 * TIMER callbacks. Each returns what the callback returns. */
int http_stream_writeable(struct server *s, struct http_request *h);
int http_stream_body(struct server *s, struct http_request *h, const void *in,
                     size_t len);
int http_stream_body_done(struct server *s, struct http_request *h);
int http_stream_timer(struct server *s, struct http_request *h);

/* The request is finished or its connection gone: its stream session
 * (if any) lingers. Frees h->stream. */
void http_stream_request_done(struct server *s, struct http_request *h);

/* Periodic: sessions that lingered too long and tickets past their time
 * go. Costs what expires. */
void http_stream_housekeeping(struct server *s, int64_t now_mono_us);

/* Shutdown: lingering sessions go now (those with a request get their
 * close frame like WebSockets). Then, at destroy, everything left. */
void http_stream_shutdown(struct server *s);
void http_stream_destroy_all(struct server *s);

/* ----------------------------------------------------------- metrics.c */

int http_metrics(struct server *s, struct http_request *h);
int http_healthz(struct server *s, struct http_request *h);

/* ------------------------------------------------------- http_status.c */

/* GET /api/status. claims: the request's token (NULL without
 * --auth-secret), which must carry the admin claim. Returns what
 * http_respond() returns. */
int http_status(struct server *s, struct http_request *h,
                const struct auth_claims *claims);

#endif

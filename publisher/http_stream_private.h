/*
 * http_stream_private.h: the protocol over plain HTTP, for networks whose
 * proxies refuse or cut WebSocket upgrades. The same sessions as /ws
 * (session.h: ops, replies, errors, seqs, resume, conflation, max_hz,
 * heartbeats, claims and limits), carried three ways under /stream/:
 *
 *   GET  /stream/events   Server-Sent Events: one event per server frame
 *   GET  /stream/poll     long-poll: each answer is every frame due, as one
 *                         JSON batch, or waits for one up to a bound
 *   POST /stream/send     a request of the client (the body), for either
 *   POST /stream/ticket   a one-use ticket standing for a token, for a
 *                         browser's EventSource, which cannot send headers
 *
 * A stream session outlives the requests that carry it. It is named by a
 * random key (the capability for POST /stream/send) and lingers
 * stream-linger-secs without a request; meanwhile it stays subscribed and
 * the engine keeps merging its updates, as for a slow WebSocket, so a
 * client that comes back gets merged deltas, never a backlog. Its frames
 * are numbered and kept a while after they are written (stream_outbox.h):
 * a client comes back with the cursor "KEY:N" of the last frame it read
 * and is sent again what followed, so neither a cut response nor a lost
 * poll answer loses a frame. A cursor that cannot be continued (the
 * session expired, the server restarted, the frames after it are gone)
 * starts a new session; the client sees `"resumed":false` and a hello and
 * resubscribes with `resume`, as after a WebSocket reconnect.
 *
 * Frames are taken from the session only when a request can carry them:
 * an SSE response that lws has finished writing, a poll that waits. Until
 * then the session's updates stay merged in the engine.
 *
 * The files, and what they share here and with nobody else:
 *   http_stream.c          the requests: GET /stream/events and /stream/poll
 *                          (a session continued or admitted), POST
 *                          /stream/send, OPTIONS, methods
 *   http_stream_session.c  the sessions: keys, the table by key, lingering,
 *                          the session's transport hooks, the frames taken
 *                          into the outbox, housekeeping and shutdown
 *   http_stream_write.c    the answers: headers, an SSE response's writes
 *                          (on the loop's idle turn or a writeable
 *                          callback), a poll's answer, timers
 *   http_stream_ticket.c   the one-use tickets of POST /stream/ticket
 * server_private.h declares what the rest of the server calls.
 */
#ifndef PUBLISHER_HTTP_STREAM_PRIVATE_H
#define PUBLISHER_HTTP_STREAM_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server_private.h"

/* A session key or ticket: 128 random bits in lowercase hex. */
#define STREAM_KEY_LEN 32
/*
 * Bytes of written frames kept for a client that comes back: about what a
 * cut connection can have had in flight on the way to a browser reading
 * as fast as frames come. A cursor older than that starts a new session,
 * which costs a resubscribe with `resume` (deltas from the held seqs), not
 * a redraw, so more would buy little: 64 KiB a session is 64 MB for
 * 1,000 streams, where 256 KiB made the server 8 times a WebSocket one's
 * size.
 */
#define STREAM_RETAIN_BYTES (64 * 1024)
/* What one write of an SSE response gathers, and one poll answer holds. */
#define SSE_WRITE_BYTES   (64 * 1024)
#define POLL_ANSWER_BYTES (256 * 1024)
/* How long a poll waits for a frame, unless it asks for less. */
#define POLL_WAIT_DEFAULT_MS 25000
#define POLL_WAIT_MAX_MS     60000
/* An SSE client that takes nothing for this long is dropped (its session
 * lingers). The deadline is pushed back at most every SSE_STALL_REFRESH_US:
 * libwebsockets keeps its deadlines in one sorted list, so setting one
 * walks the list, a cost per write that grew with the connections. */
#define SSE_STALL_SECS       60
#define SSE_STALL_REFRESH_US (10 * 1000000LL)
/* Tickets: valid this long, at most this many outstanding. */
#define TICKET_TTL_US (30 * 1000000LL)
#define TICKETS_MAX   10000

enum stream_transport { STREAM_SSE, STREAM_POLL };

enum request_kind { REQ_EVENTS, REQ_POLL, REQ_SEND, REQ_TICKET };

struct http_stream {
	struct http_stream *hash_next;
	struct http_stream *linger_prev, *linger_next;
	struct server *server;
	char key[STREAM_KEY_LEN + 1];
	struct session *session;
	struct stream_outbox *outbox;
	enum stream_transport transport; /* the last that carried it */
	struct http_request *req;        /* carrying it now, or NULL */
	bool lingering;
	int64_t linger_until_us; /* monotonic */
	int64_t wake_due_us;     /* max_hz: updates held until (wall) */
	bool due;                /* the session may have output to take */
	bool closed;             /* its close is taken: no frame after it */
	/* On the server's list of SSE responses to write on the loop's idle
	 * turn (see http_stream_work_run). */
	bool work_queued;
	struct http_stream *work_next;
};

/* What the stream code keeps of one request (http_request.stream). */
struct http_stream_request {
	enum request_kind kind;
	struct http_stream *stream; /* the session it carries, or NULL */
	bool greet;                 /* the stream frame goes first */
	bool resumed;
	/* Another request took the session over: a poll is answered with
	 * no frames (at `cursor`), an SSE response ends. */
	bool superseded;
	char cursor[STREAM_KEY_LEN + 24];
	const char *allow; /* the endpoint's methods, for 405 and OPTIONS */
	int64_t poll_deadline_us; /* wall; 0: not a waiting poll */
	int64_t stall_set_us;     /* monotonic: the stall deadline was set */
	char key[STREAM_KEY_LEN + 1]; /* POST /stream/send: whose */
	char *body;
	size_t body_len, body_cap;
	bool body_too_large;
	bool body_misread; /* lws gave the head for the body */
};

struct stream_ticket {
	struct stream_ticket *next;
	char id[STREAM_KEY_LEN + 1];
	int64_t expires_us; /* monotonic */
	struct auth_claims claims;
};

/* ---------------------------------------------------- http_stream_session.c */

/* 128 random bits in lowercase hex into out. -1 when there is no
 * randomness to be had. */
int http_stream__random_key(char out[STREAM_KEY_LEN + 1]);

/* Whether text[0..len) is a key (STREAM_KEY_LEN lowercase hex). */
bool http_stream__is_key(const char *text, size_t len);

/* "KEY:N" into key and *n; false when it is not one. */
bool http_stream__parse_cursor(const char *text, char key[STREAM_KEY_LEN + 1],
                               uint64_t *n);

/* The session of that key, or NULL. */
struct http_stream *http_stream__find(struct server *s, const char *key);

/* A new session for an admitted client (its claims taken over); NULL
 * when out of memory. It counts as a connection until destroyed. */
struct http_stream *http_stream__create(struct server *s,
                                        enum stream_transport t,
                                        const char *peer,
                                        struct auth_claims *claims);

/* The request h carries st from now on; a request that carried it
 * before is answered (a poll) or ended (SSE). */
void http_stream__attach(struct http_stream *st, struct http_request *h,
                         enum stream_transport t);

/* No request carries st: it lingers stream-linger-secs. */
void http_stream__linger_start(struct http_stream *st);

/* The session is gone: closed, freed, its request (if any) told. */
void http_stream__destroy(struct http_stream *st);

/* Arm h's timer for the end of a poll's wait or for updates max_hz holds
 * back, whichever comes first. */
void http_stream__arm_timer(struct http_request *h);

/* Take what the session has due into its outbox, until cap bytes wait to
 * be written. */
void http_stream__fill_outbox(struct http_stream *st, size_t cap);

/* The stream frame of st ({"type":"stream",…}), and a cursor "KEY:N". */
void http_stream__append_stream_frame(struct jsonbuf *b,
                                      const struct http_stream *st,
                                      bool resumed);
void http_stream__append_cursor(struct jsonbuf *b, const struct http_stream *st,
                                uint64_t n);

/* ------------------------------------------------------ http_stream_write.c */

/* How long an SSE client may take nothing before it is dropped. */
int http_stream__sse_stall_secs(const struct server *s);

/* Add one header (name with its colon) to the headers being built. */
int http_stream__add_header(struct lws *wsi, const char *name,
                            const char *value, unsigned char **p,
                            unsigned char *end);

/* Access-Control-Allow-Origin and its company for a request that came
 * with an (admitted) Origin; nothing without one. */
int http_stream__add_cors_headers(struct http_request *h, unsigned char **p,
                                  unsigned char *end);

/* The headers of every answer under /stream/ (see the function). */
int http_stream__headers(struct http_request *h, unsigned status,
                         const char *type, lws_filepos_t len);

/* A whole answer, written now (h->answered). */
int http_stream__respond(struct server *s, struct http_request *h,
                         unsigned status, const char *type, const char *body,
                         size_t len);
int http_stream__respond_text(struct server *s, struct http_request *h,
                              unsigned status, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* 404 unknown_session. */
int http_stream__respond_unknown_session(struct server *s,
                                         struct http_request *h);

/* A poll: whether it has something to answer with now, and its answer. */
bool http_stream__poll_has_news(struct http_request *h);
int http_stream__poll_answer(struct server *s, struct http_request *h);

/* ----------------------------------------------------- http_stream_ticket.c */

/* POST /stream/ticket. */
int http_stream__issue_ticket(struct server *s, struct http_request *h);

/* The ticket of that id, or NULL; take: its claims into *claims, and it is
 * used up (-1: no such ticket). */
struct stream_ticket *http_stream__ticket_find(struct server *s,
                                               const char *id);
int http_stream__ticket_take(struct server *s, const char *id,
                             struct auth_claims *claims);

/* Tickets past their time go; at shutdown, all. */
void http_stream__tickets_expire(struct server *s, int64_t now_mono_us);
void http_stream__tickets_free(struct server *s);

#endif

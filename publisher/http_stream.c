/*
 * http_stream.c: the protocol over plain HTTP, for networks whose proxies
 * refuse or cut WebSocket upgrades. The same sessions as /ws (session.h:
 * ops, replies, errors, seqs, resume, conflation, max_hz, heartbeats,
 * claims and limits), carried three ways under /stream/:
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
 */
#include "server_private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"
#include "hash.h"
#include "log.h"
#include "stream_outbox.h"
#include "utf8.h"

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
static const char *const transport_names[] = {"sse", "poll"};

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

/* What http_stream.c keeps of one request (http_request.stream). */
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

/* --------------------------------------------------------- keys */

static int
random_key(char out[STREAM_KEY_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char bytes[STREAM_KEY_LEN / 2];
	size_t i;

	if (getrandom(bytes, sizeof bytes, 0) != (ssize_t)sizeof bytes)
		return -1;
	for (i = 0; i < sizeof bytes; i++) {
		out[2 * i] = hex[bytes[i] >> 4];
		out[2 * i + 1] = hex[bytes[i] & 15];
	}
	out[STREAM_KEY_LEN] = '\0';
	return 0;
}

static bool
is_key(const char *text, size_t len)
{
	size_t i;

	if (len != STREAM_KEY_LEN)
		return false;
	for (i = 0; i < len; i++)
		if (!((text[i] >= '0' && text[i] <= '9') ||
		      (text[i] >= 'a' && text[i] <= 'f')))
			return false;
	return true;
}

/* "KEY:N" into key and *n. */
static bool
parse_cursor(const char *text, char key[STREAM_KEY_LEN + 1], uint64_t *n)
{
	const char *colon = strchr(text, ':');
	char *end;

	if (!colon || !is_key(text, (size_t)(colon - text)) || !colon[1] ||
	    colon[1] < '0' || colon[1] > '9')
		return false;
	errno = 0;
	*n = strtoull(colon + 1, &end, 10);
	if (errno || *end)
		return false;
	memcpy(key, text, STREAM_KEY_LEN);
	key[STREAM_KEY_LEN] = '\0';
	return true;
}

/*
 * The value of the URL argument `name` ("cursor=") into out, or NULL.
 * libwebsockets 4.1.6 copies each argument whole into the buffer it is
 * given and stops at the first that does not fit, so a small buffer would
 * hide every argument after a long one: the scan gets a large one.
 */
static const char *
url_arg(struct lws *wsi, const char *name, char *out, size_t outlen)
{
	char fragment[1024];
	const char *v = lws_get_urlarg_by_name(wsi, name, fragment,
	                                       (int)sizeof fragment);

	if (!v)
		return NULL;
	/* A value too long for out is not cut short: it is no value of
	 * ours (a cursor with junk after its number, say). */
	if (strlen(v) >= outlen) {
		snprintf(out, outlen, "%s", "");
		return out;
	}
	memcpy(out, v, strlen(v) + 1);
	return out;
}

/* An SSE client that reads is written at least every heartbeat: it is
 * dropped only when it has taken nothing for longer than both. */
static int
sse_stall_secs(const struct server *s)
{
	unsigned heartbeat_secs = s->opt->heartbeat_ms / 1000 + 1;

	return (int)(heartbeat_secs * 2 > SSE_STALL_SECS ? heartbeat_secs * 2
	                                                 : SSE_STALL_SECS);
}

/* --------------------------------------------------- the sessions */

static struct http_stream **
bucket(struct server *s, const char *key)
{
	return &s->streams[hash_name(key, STREAM_KEY_LEN) &
	                   (STREAM_BUCKETS - 1)];
}

static struct http_stream *
stream_find(struct server *s, const char *key)
{
	struct http_stream *st;

	for (st = *bucket(s, key); st; st = st->hash_next)
		if (!memcmp(st->key, key, STREAM_KEY_LEN))
			return st;
	return NULL;
}

static void
linger_stop(struct http_stream *st)
{
	struct server *s = st->server;

	if (!st->lingering)
		return;
	if (st->linger_prev)
		st->linger_prev->linger_next = st->linger_next;
	else
		s->lingering = st->linger_next;
	if (st->linger_next)
		st->linger_next->linger_prev = st->linger_prev;
	else
		s->lingering_tail = st->linger_prev;
	st->linger_prev = st->linger_next = NULL;
	st->lingering = false;
}

/* Every session lingers equally long, so the list stays in expiry order
 * by appending. */
static void
linger_start(struct http_stream *st)
{
	struct server *s = st->server;

	st->lingering = true;
	st->linger_until_us =
	        clock_mono_us() + (int64_t)s->opt->stream_linger_secs * 1000000;
	st->linger_prev = s->lingering_tail;
	st->linger_next = NULL;
	if (s->lingering_tail)
		s->lingering_tail->linger_next = st;
	else
		s->lingering = st;
	s->lingering_tail = st;
}

static void
stream_destroy(struct http_stream *st)
{
	struct server *s = st->server;
	struct http_stream **pp = bucket(s, st->key);

	while (*pp && *pp != st)
		pp = &(*pp)->hash_next;
	if (*pp)
		*pp = st->hash_next;
	linger_stop(st);
	if (st->work_queued) {
		struct http_stream **wp = &s->stream_work;

		while (*wp && *wp != st)
			wp = &(*wp)->work_next;
		if (*wp)
			*wp = st->work_next;
	}
	if (st->req && st->req->stream) {
		/* Its request ends: an SSE response at its next write. */
		st->req->stream->stream = NULL;
		lws_callback_on_writable(st->req->wsi);
	}
	log_debug("stream %s (%s): closed", st->key,
	          session_peer(st->session));
	s->connections--;
	s->stream_count[st->transport]--;
	peer_add(s, session_peer(st->session), -1);
	session_close(st->session);
	stream_outbox_destroy(st->outbox);
	free(st);
}

/* Arm the request's timer for whichever comes first: the end of a poll's
 * wait, or the moment max_hz lets held updates go. */
static void
arm_timer(struct http_request *h)
{
	struct http_stream_request *r = h->stream;
	int64_t due = r->poll_deadline_us, now = clock_wall_us();

	if (r->stream && r->stream->wake_due_us &&
	    (!due || r->stream->wake_due_us < due))
		due = r->stream->wake_due_us;
	if (!due)
		return;
	lws_set_timer_usecs(h->wsi, due > now ? due - now : 1);
}

/*
 * Something is due. An SSE response is written on the loop's idle turn,
 * without asking lws whether the socket is writable (as a WebSocket is,
 * see "Writes" in ws.c): it almost always is, and every ask changes the
 * socket's epoll interest twice. A waiting poll is answered from its
 * writeable callback: it ends an HTTP transaction, which only a callback
 * may do.
 */
static void
transport_want_write(void *conn)
{
	struct http_stream *st = conn;
	struct server *s = st->server;

	st->due = true;
	if (!st->req)
		return;
	if (st->req->stream->kind != REQ_EVENTS) {
		lws_callback_on_writable(st->req->wsi);
		return;
	}
	if (!st->work_queued) {
		st->work_queued = true;
		st->work_next = s->stream_work;
		s->stream_work = st;
		server_work_soon(s);
	}
}

static void
transport_wake_at(void *conn, int64_t due_us)
{
	struct http_stream *st = conn;

	st->wake_due_us = due_us;
	if (st->req)
		arm_timer(st->req);
}

static const struct session_transport transport = {
        .want_write = transport_want_write,
        .wake_at = transport_wake_at,
};

/* A new session for an admitted client (claims taken over). */
static struct http_stream *
stream_create(struct server *s, enum stream_transport t, const char *peer,
              struct auth_claims *claims)
{
	struct http_stream *st = calloc(1, sizeof *st);
	uint64_t id = ++s->next_conn_id;

	if (!st || random_key(st->key) ||
	    !(st->outbox = stream_outbox_create(STREAM_RETAIN_BYTES))) {
		if (st)
			stream_outbox_destroy(st->outbox);
		free(st);
		auth_claims_free(claims);
		return NULL;
	}
	st->server = s;
	st->transport = t;
	st->session = session_open(s->hub, &transport, st, id, peer, claims);
	if (!st->session) {
		stream_outbox_destroy(st->outbox);
		free(st);
		return NULL;
	}
	st->hash_next = *bucket(s, st->key);
	*bucket(s, st->key) = st;
	s->connections++;
	s->stream_count[t]++;
	peer_add(s, peer, 1);
	log_debug("stream %s (%s): open over %s", st->key, peer,
	          transport_names[t]);
	return st;
}

/* The request h carries st from now on; a request that carried it
 * before is answered (a poll) or ended (SSE). */
static void
stream_attach(struct http_stream *st, struct http_request *h,
              enum stream_transport t)
{
	struct server *s = st->server;

	if (st->req && st->req != h) {
		struct http_stream_request *old = st->req->stream;

		old->stream = NULL;
		old->superseded = true;
		snprintf(old->cursor, sizeof old->cursor, "%s:%llu", st->key,
		         (unsigned long long)stream_outbox_last_sent(st->outbox));
		lws_callback_on_writable(st->req->wsi);
	}
	linger_stop(st);
	st->req = h;
	h->stream->stream = st;
	if (st->transport != t) {
		s->stream_count[st->transport]--;
		s->stream_count[t]++;
		st->transport = t;
	}
}

/* ----------------------------------------------------------- frames */

static void
append_stream_frame(struct jsonbuf *b, const struct http_stream *st,
                    bool resumed)
{
	jsonbuf_append_str(b, "{\"type\":\"stream\",\"session\":\"");
	jsonbuf_append_str(b, st->key);
	jsonbuf_append_str(b, "\",\"transport\":\"");
	jsonbuf_append_str(b, transport_names[st->transport]);
	jsonbuf_append_str(b, resumed ? "\",\"resumed\":true,\"linger_ms\":"
	                              : "\",\"resumed\":false,\"linger_ms\":");
	jsonbuf_append_u64(b, (uint64_t)st->server->opt->stream_linger_secs *
	                              1000);
	jsonbuf_append_char(b, '}');
}

/* Where a WebSocket would be closed with a status, a stream session's
 * last frame says so. */
static int
add_close_frame(struct http_stream *st, int status, const char *reason)
{
	struct jsonbuf b;
	int rc;

	jsonbuf_init(&b, 0);
	jsonbuf_append_str(&b, "{\"type\":\"close\",\"code\":");
	jsonbuf_append_i64(&b, status);
	jsonbuf_append_str(&b, ",\"reason\":");
	jsonbuf_append_quoted(&b, reason ? reason : "", reason ? strlen(reason) : 0);
	jsonbuf_append_char(&b, '}');
	rc = jsonbuf_failed(&b) ? -1
	                        : stream_outbox_add(st->outbox, jsonbuf_data(&b),
	                                            b.len, true);
	jsonbuf_free(&b);
	return rc;
}

/*
 * Take what the session has due into the outbox, until `cap` bytes wait
 * to be written. The session's bytes are valid only until its next take,
 * so each is copied at once (the outbox keeps them anyway).
 */
static void
fill_outbox(struct http_stream *st, size_t cap)
{
	int64_t now = clock_wall_us();
	struct session_output out;
	int rc = 0;

	if (st->closed || !st->due)
		return;
	st->due = false;
	while (stream_outbox_unsent_bytes(st->outbox) < cap) {
		if (!session_take_output(st->session, now, &out))
			return;
		switch (out.kind) {
		case SESSION_OUT_CLOSE:
			st->closed = true;
			if (add_close_frame(st, out.close_status,
			                    out.close_reason))
				log_warn("stream %s: out of memory for its close "
				         "frame",
				         st->key);
			return;
		case SESSION_OUT_PART:
			rc = stream_outbox_add(st->outbox, out.data, out.len,
			                       out.last);
			break;
		case SESSION_OUT_MESSAGE:
		case SESSION_OUT_UPDATES:
			rc = stream_outbox_add(st->outbox, out.data, out.len,
			                       true);
			break;
		case SESSION_OUT_NONE:
			return;
		}
		if (rc) {
			log_warn("stream %s (%s): out of memory, closing",
			         st->key, session_peer(st->session));
			session_end(st->session, SESSION_CLOSE_GOING_AWAY,
			            "out of memory");
		}
		if (!out.more)
			return;
	}
	st->due = true; /* stopped at the cap: more to take */
}

static void
append_cursor(struct jsonbuf *b, const struct http_stream *st, uint64_t n)
{
	jsonbuf_append_str(b, st->key);
	jsonbuf_append_char(b, ':');
	jsonbuf_append_u64(b, n);
}

/* ---------------------------------------------------------- answers */

static int
add_header(struct lws *wsi, const char *name, const char *value,
           unsigned char **p, unsigned char *end)
{
	return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
	                                   (const unsigned char *)value,
	                                   (int)strlen(value), p, end);
}

/*
 * The headers of a stream's answer: never cached, never held back by a
 * proxy that honours X-Accel-Buffering (nginx), and readable by a page of
 * an origin admitted by --allow-origin. len may be
 * LWS_ILLEGAL_HTTP_CONTENT_LEN: the body then ends with the connection.
 */
static int
stream_headers(struct http_request *h, unsigned status, const char *type,
               lws_filepos_t len)
{
	unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
	                                   *end = buf + sizeof buf;
	char origin[256];

	if (lws_add_http_common_headers(h->wsi, status, type, len, &p, end) ||
	    add_header(h->wsi, "cache-control:", "no-cache", &p, end) ||
	    add_header(h->wsi, "x-accel-buffering:", "no", &p, end))
		return -1;
	/* A POST's connection ends with its answer (see "POST" in
	 * http_api.c): say so. */
	if (h->method == HTTP_POST &&
	    add_header(h->wsi, "connection:", "close", &p, end))
		return -1;
	if (status == 405 &&
	    add_header(h->wsi, "allow:", h->stream->allow, &p, end))
		return -1;
	if (lws_hdr_copy(h->wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) > 0 &&
	    (add_header(h->wsi, "access-control-allow-origin:", origin, &p,
	                end) ||
	     add_header(h->wsi, "access-control-allow-credentials:", "true", &p,
	                end) ||
	     add_header(h->wsi, "vary:", "Origin", &p, end)))
		return -1;
	return lws_finalize_write_http_header(h->wsi, start, &p, end) ? -1 : 0;
}

/* A whole answer (a poll's, a ticket, 202), written now. */
static int
stream_respond(struct server *s, struct http_request *h, unsigned status,
               const char *type, const char *body, size_t len)
{
	struct jsonbuf *b = &s->stream_out;

	if (stream_headers(h, status, type, (lws_filepos_t)len))
		return -1;
	if (len) {
		/* lws_write needs LWS_PRE bytes of room in front. */
		if (body != jsonbuf_data(b)) {
			jsonbuf_reset(b);
			jsonbuf_append(b, body, len);
			if (jsonbuf_failed(b))
				return -1;
		}
		if (lws_write(h->wsi, (unsigned char *)jsonbuf_data(b), len,
		              LWS_WRITE_HTTP_FINAL) < (int)len)
			return -1;
		s->m.http_bytes_sent += len;
	}
	h->answered = true;
	return 0;
}

/* A short text answer (a refusal of the request itself), with the
 * headers of every stream answer. */
static int stream_respond_text(struct server *s, struct http_request *h,
                               unsigned status, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int
stream_respond_text(struct server *s, struct http_request *h, unsigned status,
                    const char *fmt, ...)
{
	char text[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof text)
		n = sizeof text - 1;
	return stream_respond(s, h, status, "text/plain; charset=utf-8", text,
	                      (size_t)n);
}

static int
respond_unknown_session(struct server *s, struct http_request *h)
{
	static const char body[] =
	        "{\"type\":\"error\",\"code\":\"unknown_session\","
	        "\"message\":\"no such stream session (it expired, or the "
	        "server restarted): open a new stream\"}";

	return stream_respond(s, h, 404, "application/json", body,
	                      sizeof body - 1);
}

/*
 * A poll's answer: {"frames":[…],"cursor":"KEY:N"}. First the stream frame
 * when the session is new, then the frames after the client's cursor,
 * then what the session has due, up to POLL_ANSWER_BYTES.
 */
static int
poll_answer(struct server *s, struct http_request *h)
{
	struct http_stream_request *r = h->stream;
	struct http_stream *st = r->stream;
	struct jsonbuf *b = &s->stream_out;
	struct stream_frame f;
	bool first = true;

	jsonbuf_reset(b);
	jsonbuf_append_str(b, "{\"frames\":[");
	if (st) {
		if (r->greet) {
			append_stream_frame(b, st, r->resumed);
			first = false;
			r->greet = false;
		}
		fill_outbox(st, POLL_ANSWER_BYTES);
		while (b->len < POLL_ANSWER_BYTES &&
		       stream_outbox_next(st->outbox, &f)) {
			if (!first)
				jsonbuf_append_char(b, ',');
			first = false;
			jsonbuf_append(b, f.data, f.len);
			stream_outbox_sent(st->outbox);
		}
		jsonbuf_append_str(b, "],\"cursor\":\"");
		append_cursor(b, st, stream_outbox_last_sent(st->outbox));
	} else {
		jsonbuf_append_str(b, "],\"cursor\":\"");
		jsonbuf_append_str(b, r->cursor);
	}
	jsonbuf_append_str(b, "\"}");
	if (jsonbuf_failed(b))
		return -1;
	r->poll_deadline_us = 0;
	return stream_respond(s, h, 200, "application/json", jsonbuf_data(b),
	                      b->len);
}

/* Whether a poll has something to answer with now. */
static bool
poll_has_news(struct http_request *h)
{
	struct http_stream_request *r = h->stream;
	struct http_stream *st = r->stream;

	if (!st)
		return true; /* superseded: answered at once */
	fill_outbox(st, POLL_ANSWER_BYTES);
	return r->greet || stream_outbox_unsent_bytes(st->outbox) > 0;
}

/* End an HTTP transaction from a writeable or body callback. This may
 * free h (lws finishes the request). */
static int
finish(struct http_request *h)
{
	return lws_http_transaction_completed(h->wsi) ? -1 : 0;
}

/*
 * An SSE response's next write: the stream frame first, then the frames
 * not yet written, each as "id: KEY:N\ndata: <frame>\n\n" (a frame is
 * one line of JSON: the server's JSON never holds a raw newline), all
 * in one lws_write. lws calls back only once what it held has gone, so a
 * client that reads nothing is written nothing more, and its updates
 * merge in the engine meanwhile.
 *
 * Unlike a WebSocket (after_write in ws.c), the connection's input is
 * left alone while lws holds output: with it paused, libwebsockets 4.1.6
 * never sent the rest of an HTTP response it held (a third of the slow
 * readers of big frames stalled for good), and a peer that half-closes an
 * HTTP response does not make it spin as it does a WebSocket.
 */
/* Write what is due; -1 when the write failed. */
static int
sse_write(struct server *s, struct http_request *h)
{
	struct http_stream_request *r = h->stream;
	struct http_stream *st = r->stream;
	struct jsonbuf *b = &s->stream_out;
	struct stream_frame f;
	int64_t now;

	jsonbuf_reset(b);
	if (r->greet) {
		jsonbuf_append_str(b, "data: ");
		append_stream_frame(b, st, r->resumed);
		jsonbuf_append_str(b, "\n\n");
		r->greet = false;
	}
	fill_outbox(st, SSE_WRITE_BYTES);
	while (b->len < SSE_WRITE_BYTES && stream_outbox_next(st->outbox, &f)) {
		jsonbuf_append_str(b, "id: ");
		append_cursor(b, st, f.number);
		jsonbuf_append_str(b, "\ndata: ");
		jsonbuf_append(b, f.data, f.len);
		jsonbuf_append_str(b, "\n\n");
		stream_outbox_sent(st->outbox);
	}
	if (jsonbuf_failed(b))
		return -1;
	if (!b->len)
		return 0;
	if (lws_write(h->wsi, (unsigned char *)jsonbuf_data(b), b->len,
	              LWS_WRITE_HTTP) < (int)b->len)
		return -1;
	s->m.http_bytes_sent += b->len;
	now = clock_mono_us();
	if (now - r->stall_set_us >= SSE_STALL_REFRESH_US) {
		r->stall_set_us = now;
		lws_set_timeout(h->wsi, PENDING_TIMEOUT_HTTP_CONTENT,
		                sse_stall_secs(s));
	}
	return 0;
}

/* Whether the response has more to write, or its end to make. */
static bool
sse_more(const struct http_stream *st)
{
	return st->due || st->closed ||
	       stream_outbox_unsent_bytes(st->outbox) > 0;
}

static int
sse_writeable(struct server *s, struct http_request *h)
{
	struct http_stream *st = h->stream->stream;

	if (!st)
		return finish(h); /* superseded, or the session is gone */
	if (sse_write(s, h))
		return -1;
	if (st->closed && !stream_outbox_unsent_bytes(st->outbox))
		return finish(h); /* the close frame went: the end */
	if (sse_more(st))
		lws_callback_on_writable(h->wsi);
	return 0;
}

/* The idle turn's write of an SSE response (see transport_want_write).
 * Outside a callback nothing may end the transaction or close the
 * connection: that is left to the writeable callback. */
static void
sse_write_direct(struct server *s, struct http_stream *st)
{
	struct http_request *h = st->req;

	if (lws_partial_buffered(h->wsi)) {
		lws_callback_on_writable(h->wsi);
		return;
	}
	if (sse_write(s, h)) {
		lws_set_timeout(h->wsi, PENDING_TIMEOUT_HTTP_CONTENT,
		                LWS_TO_KILL_ASYNC);
		return;
	}
	if (sse_more(st))
		lws_callback_on_writable(h->wsi);
}

void
http_stream_work_run(struct server *s)
{
	struct http_stream *st = s->stream_work;

	/* A stream the writes below queue again goes on a new list. */
	s->stream_work = NULL;
	while (st) {
		struct http_stream *next = st->work_next;

		st->work_queued = false;
		st->work_next = NULL;
		if (st->req && st->req->stream->kind == REQ_EVENTS &&
		    !st->req->answered)
			sse_write_direct(s, st);
		st = next;
	}
}

int
http_stream_writeable(struct server *s, struct http_request *h)
{
	struct http_stream_request *r = h->stream;
	int rc;

	if (!r || h->answered)
		return 0;
	if (r->kind == REQ_EVENTS)
		return sse_writeable(s, h);
	if (r->kind != REQ_POLL || !r->poll_deadline_us)
		return 0;
	if (!poll_has_news(h))
		return 0; /* wait on */
	rc = poll_answer(s, h);
	return rc ? -1 : finish(h);
}

int
http_stream_timer(struct server *s, struct http_request *h)
{
	struct http_stream_request *r = h->stream;
	int64_t now = clock_wall_us();

	if (!r || h->answered)
		return 0;
	if (r->stream && r->stream->wake_due_us &&
	    r->stream->wake_due_us <= now) {
		r->stream->wake_due_us = 0;
		r->stream->due = true;
	}
	if (r->kind == REQ_POLL && r->poll_deadline_us &&
	    r->poll_deadline_us <= now)
		return poll_answer(s, h) ? -1 : finish(h);
	if (r->stream && r->stream->due)
		lws_callback_on_writable(h->wsi);
	arm_timer(h);
	return 0;
}

/* ---------------------------------------------------------- tickets */

static void
ticket_free(struct server *s, struct stream_ticket *t)
{
	auth_claims_free(&t->claims);
	free(t);
	s->ticket_count--;
}

/* The ticket of that id, or NULL. */
static struct stream_ticket *
ticket_find(struct server *s, const char *id)
{
	struct stream_ticket *t;

	for (t = s->tickets; t; t = t->next)
		if (!strcmp(t->id, id))
			return t;
	return NULL;
}

/* Take the ticket's claims (it is used up). -1: no such ticket. */
static int
ticket_take(struct server *s, const char *id, struct auth_claims *claims)
{
	struct stream_ticket **pp, *prev = NULL;

	for (pp = &s->tickets; *pp; prev = *pp, pp = &(*pp)->next) {
		struct stream_ticket *t = *pp;

		if (strcmp(t->id, id))
			continue;
		*pp = t->next;
		if (s->tickets_tail == t)
			s->tickets_tail = prev;
		*claims = t->claims;
		memset(&t->claims, 0, sizeof t->claims);
		ticket_free(s, t);
		return 0;
	}
	return -1;
}

/* POST /stream/ticket: a token (any of the ways /ws takes one) for a
 * one-use ticket. */
static int
issue_ticket(struct server *s, struct http_request *h)
{
	struct stream_ticket *t;
	struct auth_claims claims;
	char why[300], who[PEER_MAX + 16], body[128];
	enum refusal r = REFUSED_COUNT;
	int n;

	memset(&claims, 0, sizeof claims);
	if (!origin_allowed(s, h->wsi, why, sizeof why))
		r = REFUSED_ORIGIN;
	else if (s->auth && authenticate(s, h->wsi, &claims, why, sizeof why))
		r = REFUSED_UNAUTHORIZED;
	else if (s->ticket_count >= TICKETS_MAX) {
		r = REFUSED_SERVER_FULL;
		snprintf(why, sizeof why, "%d tickets not yet used",
		         TICKETS_MAX);
	}
	if (r != REFUSED_COUNT) {
		auth_claims_free(&claims);
		s->m.refused_api[r]++;
		snprintf(who, sizeof who, "http (%s)", h->peer);
		log_refusal(who, "POST /stream/ticket", r, why);
		if (write_refusal(h->wsi, r, false))
			return -1;
		h->answered = true;
		return 0;
	}
	t = calloc(1, sizeof *t);
	if (!t || random_key(t->id)) {
		free(t);
		auth_claims_free(&claims);
		return -1;
	}
	t->claims = claims;
	t->expires_us = clock_mono_us() + TICKET_TTL_US;
	if (s->tickets_tail)
		s->tickets_tail->next = t;
	else
		s->tickets = t;
	s->tickets_tail = t;
	s->ticket_count++;
	n = snprintf(body, sizeof body, "{\"ticket\":\"%s\",\"expires_ms\":%lld}",
	             t->id, (long long)(TICKET_TTL_US / 1000));
	return stream_respond(s, h, 200, "application/json", body, (size_t)n);
}

/* ------------------------------------------------- opening a stream */

/*
 * A new session for this request: a ticket stands for the token when
 * there is one; otherwise the checks of a WebSocket upgrade. On a refusal
 * the answer is written and NULL returned (h->answered tells).
 */
static struct http_stream *
admit_stream(struct server *s, struct http_request *h, enum stream_transport t)
{
	struct auth_claims claims;
	char ticket[STREAM_KEY_LEN + 8], why[300], who[PEER_MAX + 16];
	bool checked = false;
	enum refusal r;

	memset(&claims, 0, sizeof claims);
	if (url_arg(h->wsi, "ticket=", ticket, sizeof ticket)) {
		if (ticket_find(s, ticket))
			checked = true;
		else if (s->auth) {
			r = REFUSED_UNAUTHORIZED;
			snprintf(why, sizeof why,
			         "unknown, used or expired ticket");
			goto refused;
		}
	}
	r = admit_client(s, h->wsi, h->peer, &claims, checked, why, sizeof why);
	if (r == REFUSED_COUNT) {
		/* Used up only now: a client refused for a full server
		 * comes back with the same ticket after Retry-After. */
		if (checked)
			ticket_take(s, ticket, &claims);
		return stream_create(s, t, h->peer, &claims);
	}
refused:
	auth_claims_free(&claims);
	s->m.refused_ws[r]++;
	snprintf(who, sizeof who, "http (%s)", h->peer);
	log_refusal(who, t == STREAM_SSE ? "SSE stream" : "long-poll", r, why);
	if (write_refusal(h->wsi, r, false) == 0)
		h->answered = true;
	return NULL;
}

/* The cursor a client came back with: ?cursor=, else Last-Event-ID (what
 * a browser's EventSource sends on its own reconnects). */
static bool
request_cursor(struct lws *wsi, char *out, size_t len)
{
	int n;

	if (url_arg(wsi, "cursor=", out, len))
		return true;
	n = lws_hdr_custom_copy(wsi, out, (int)len, "last-event-id:", 14);
	return n > 0;
}

/* ?wait_ms= of a poll into *ms (left alone when absent), bounded to
 * POLL_WAIT_MAX_MS. -1 when it is there but not a whole number. */
static int
read_wait_ms(struct http_request *h, long *ms)
{
	char wait[32], *end;
	long v;

	if (!url_arg(h->wsi, "wait_ms=", wait, sizeof wait))
		return 0;
	errno = 0;
	v = strtol(wait, &end, 10);
	if (end == wait || *end || (errno && errno != ERANGE))
		return -1; /* out of range is clamped below, as any */
	*ms = v < 0 ? 0 : v > POLL_WAIT_MAX_MS ? POLL_WAIT_MAX_MS : v;
	return 0;
}

/*
 * GET /stream/events and GET /stream/poll: continue the session the
 * cursor names when its frames after the cursor are still held, else
 * open a new one.
 */
static int
open_stream(struct server *s, struct http_request *h, enum stream_transport t)
{
	struct http_stream_request *r = h->stream;
	struct http_stream *st = NULL;
	char cursor[STREAM_KEY_LEN + 40], key[STREAM_KEY_LEN + 1], why[300];
	uint64_t n = 0;
	long wait_ms = POLL_WAIT_DEFAULT_MS;

	if (!origin_allowed(s, h->wsi, why, sizeof why)) {
		char who[PEER_MAX + 16];

		s->m.refused_ws[REFUSED_ORIGIN]++;
		snprintf(who, sizeof who, "http (%s)", h->peer);
		log_refusal(who, "stream", REFUSED_ORIGIN, why);
		if (write_refusal(h->wsi, REFUSED_ORIGIN, false))
			return -1;
		h->answered = true;
		return 0;
	}
	if (t == STREAM_POLL && read_wait_ms(h, &wait_ms))
		return stream_respond_text(
		        s, h, 400,
		        "wait_ms must be a whole number of milliseconds, 0 to "
		        "%d\n",
		        POLL_WAIT_MAX_MS);
	if (request_cursor(h->wsi, cursor, sizeof cursor) &&
	    parse_cursor(cursor, key, &n) && (st = stream_find(s, key))) {
		/* A cursor that cannot be continued changes nothing of the
		 * session it names: its own client may still come back. */
		if (!stream_outbox_rewind(st->outbox, n)) {
			log_debug("stream %s: cursor %llu cannot be continued; "
			          "a new session",
			          key, (unsigned long long)n);
			st = NULL;
		} else if (t == STREAM_POLL) {
			stream_outbox_ack(st->outbox, n);
		}
	}
	if (st) {
		r->resumed = true;
		/* A poll needs no stream frame to go on; an SSE response
		 * always opens with one. */
		r->greet = t == STREAM_SSE;
		st->due = true;
	} else {
		st = admit_stream(s, h, t);
		if (!st)
			return h->answered ? 0 : -1;
		r->greet = true;
	}
	stream_attach(st, h, t);
	if (t == STREAM_SSE) {
		if (stream_headers(h, 200, "text/event-stream; charset=utf-8",
		                   LWS_ILLEGAL_HTTP_CONTENT_LEN))
			return -1;
		h->later = true;
		r->stall_set_us = clock_mono_us();
		lws_set_timeout(h->wsi, PENDING_TIMEOUT_HTTP_CONTENT,
		                sse_stall_secs(s));
		lws_callback_on_writable(h->wsi);
		/* Updates max_hz held back while no request carried the
		 * session go when they are due, not at the next tick. */
		arm_timer(h);
		return 0;
	}
	r->poll_deadline_us = clock_wall_us() + wait_ms * 1000;
	if (poll_has_news(h))
		return poll_answer(s, h);
	h->later = true;
	lws_set_timeout(h->wsi, PENDING_TIMEOUT_HTTP_CONTENT,
	                (int)(POLL_WAIT_MAX_MS / 1000 + 30));
	arm_timer(h);
	return 0;
}

/* ------------------------------------------------------- requests */

/* POST /stream/send?session=KEY: the body is read as it comes (see
 * http_stream_body); a body over the message limit is refused now. */
static int
begin_send(struct server *s, struct http_request *h)
{
	struct http_stream_request *r = h->stream;
	char arg[STREAM_KEY_LEN + 16], len_text[32], why[300];
	const char *v;
	unsigned long long len = 0;

	if (!origin_allowed(s, h->wsi, why, sizeof why)) {
		s->m.refused_api[REFUSED_ORIGIN]++;
		if (write_refusal(h->wsi, REFUSED_ORIGIN, false))
			return -1;
		h->answered = true;
		return 0;
	}
	/* The key in a header keeps it out of URLs, which proxies log;
	 * ?session= is for curl. */
	v = lws_hdr_custom_copy(h->wsi, arg, (int)sizeof arg,
	                        "x-stream-session:", 17) > 0
	            ? arg
	            : url_arg(h->wsi, "session=", arg, sizeof arg);
	if (!v || !is_key(v, strlen(v)))
		return stream_respond_text(s, h, 400,
		                         "POST /stream/send needs the session "
		                         "of the stream frame: an "
		                         "X-Stream-Session: KEY header or "
		                         "?session=KEY\n");
	memcpy(r->key, v, STREAM_KEY_LEN + 1);
	if (lws_hdr_copy(h->wsi, len_text, sizeof len_text,
	                 WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
		len = strtoull(len_text, NULL, 10);
	if (!len)
		return stream_respond_text(s, h, 400,
		                         "POST /stream/send needs the request "
		                         "as its body, with a Content-Length\n");
	if (len > s->opt->max_message_bytes)
		return stream_respond_text(s, h, 413,
		                         "request of %llu bytes, over the %zu "
		                         "byte limit\n",
		                         len, s->opt->max_message_bytes);
	r->body = malloc((size_t)len);
	if (!r->body)
		return -1;
	r->body_cap = (size_t)len;
	h->later = true;
	return 0;
}

int
http_stream_body(struct server *s, struct http_request *h, const void *in,
                 size_t len)
{
	struct http_stream_request *r = h->stream;

	if (!r || r->kind != REQ_SEND || !r->body)
		return 0;
	if (r->body_len + len > r->body_cap) {
		r->body_too_large = true; /* more than Content-Length said */
		return 0;
	}
	/* A POST that came behind another request in one read gets its own
	 * head for a body from libwebsockets 4.1.6 (see "POST" in
	 * http_api.c): no request of ours starts so. */
	if (!r->body_len && len >= 5 && !memcmp(in, "POST ", 5))
		r->body_misread = true;
	memcpy(r->body + r->body_len, in, len);
	r->body_len += len;
	return 0;
}

int
http_stream_body_done(struct server *s, struct http_request *h)
{
	struct http_stream_request *r = h->stream;
	struct http_stream *st;
	int rc;

	if (!r || r->kind != REQ_SEND || h->answered)
		return 0;
	if (r->body_misread)
		rc = stream_respond_text(s, h, 400,
		                         "a POST that comes behind another "
		                         "request on one connection cannot be "
		                         "read here: send it on a connection of "
		                         "its own\n");
	else if (r->body_too_large)
		rc = stream_respond_text(s, h, 413, "body longer than its "
		                               "Content-Length\n");
	else if (!utf8_valid(r->body, r->body_len))
		rc = stream_respond_text(s, h, 400, "the request is not UTF-8\n");
	else if (!(st = stream_find(s, r->key)) || st->closed)
		rc = respond_unknown_session(s, h);
	else {
		/* Replies come on the stream, as on /ws. */
		session_receive(st->session, r->body, r->body_len, false);
		rc = stream_respond(s, h, 202, "text/plain", NULL, 0);
	}
	free(r->body);
	r->body = NULL;
	/* A POST's connection ends with its answer (see "POST" in
	 * http_api.c). */
	(void)rc;
	return -1;
}

/*
 * OPTIONS: the preflight a browser sends before a request of another
 * origin with headers of its own (Authorization on POST /stream/ticket,
 * on an SSE read by fetch()). Answered for an origin the Origin check
 * admits.
 */
static int
answer_preflight(struct server *s, struct http_request *h)
{
	unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
	                                   *end = buf + sizeof buf;
	char why[300];

	if (!origin_allowed(s, h->wsi, why, sizeof why)) {
		s->m.refused_api[REFUSED_ORIGIN]++;
		if (write_refusal(h->wsi, REFUSED_ORIGIN, false))
			return -1;
		h->answered = true;
		return 0;
	}
	if (lws_add_http_common_headers(h->wsi, 204, NULL, 0, &p, end) ||
	    add_header(h->wsi, "allow:", h->stream->allow, &p, end) ||
	    add_header(h->wsi, "access-control-allow-methods:",
	               h->stream->allow, &p, end) ||
	    add_header(h->wsi, "access-control-allow-headers:",
	               "Authorization, Content-Type, Last-Event-ID, "
	               "X-Stream-Session",
	               &p, end) ||
	    add_header(h->wsi, "access-control-max-age:", "600", &p, end) ||
	    add_header(h->wsi, "cache-control:", "no-cache", &p, end) ||
	    add_header(h->wsi, "x-accel-buffering:", "no", &p, end))
		return -1;
	{
		char origin[256];

		if (lws_hdr_copy(h->wsi, origin, sizeof origin,
		                 WSI_TOKEN_ORIGIN) > 0 &&
		    (add_header(h->wsi, "access-control-allow-origin:", origin,
		                &p, end) ||
		     add_header(h->wsi, "access-control-allow-credentials:",
		                "true", &p, end) ||
		     add_header(h->wsi, "vary:", "Origin", &p, end)))
			return -1;
	}
	if (lws_finalize_write_http_header(h->wsi, start, &p, end))
		return -1;
	h->answered = true;
	return 0;
}

int
http_stream_request(struct server *s, struct http_request *h, const char *path)
{
	static const struct {
		const char *path;
		enum http_method method;
		enum request_kind kind;
		const char *allow;
	} endpoints[] = {
	        {"/stream/events", HTTP_GET, REQ_EVENTS, "GET, OPTIONS"},
	        {"/stream/poll", HTTP_GET, REQ_POLL, "GET, OPTIONS"},
	        {"/stream/send", HTTP_POST, REQ_SEND, "POST, OPTIONS"},
	        {"/stream/ticket", HTTP_POST, REQ_TICKET, "POST, OPTIONS"},
	};
	struct http_stream_request *r = calloc(1, sizeof *r);
	size_t i;

	if (!r)
		return -1;
	h->stream = r;
	for (i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++)
		if (!strcmp(path, endpoints[i].path))
			break;
	if (i == sizeof endpoints / sizeof endpoints[0])
		return stream_respond_text(
		        s, h, 404,
		        "no such stream endpoint '%s' (GET "
		        "/stream/events, GET /stream/poll, POST "
		        "/stream/send, POST /stream/ticket)\n",
		        path);
	r->kind = endpoints[i].kind;
	r->allow = endpoints[i].allow;
	if (h->method == HTTP_OPTIONS)
		return answer_preflight(s, h);
	if (h->method != endpoints[i].method)
		return stream_respond_text(s, h, 405, "%s is not taken on %s: %s\n",
		                           http_method_name(h->method), path,
		                           endpoints[i].allow);
	switch (r->kind) {
	case REQ_EVENTS:
		return open_stream(s, h, STREAM_SSE);
	case REQ_POLL:
		return open_stream(s, h, STREAM_POLL);
	case REQ_SEND:
		return begin_send(s, h);
	case REQ_TICKET:
		return issue_ticket(s, h);
	}
	return -1;
}

void
http_stream_request_done(struct server *s, struct http_request *h)
{
	struct http_stream_request *r = h->stream;
	struct http_stream *st;

	if (!r)
		return;
	st = r->stream;
	if (st && st->req == h) {
		st->req = NULL;
		if (st->closed && !stream_outbox_unsent_bytes(st->outbox))
			stream_destroy(st);
		else
			linger_start(st);
	}
	lws_set_timer_usecs(h->wsi, LWS_SET_TIMER_USEC_CANCEL);
	free(r->body);
	free(r);
	h->stream = NULL;
}

/* ------------------------------------------------------- lifetime */

void
http_stream_housekeeping(struct server *s, int64_t now_mono_us)
{
	while (s->lingering && s->lingering->linger_until_us <= now_mono_us)
		stream_destroy(s->lingering);
	while (s->tickets && s->tickets->expires_us <= now_mono_us) {
		struct stream_ticket *t = s->tickets;

		s->tickets = t->next;
		if (!s->tickets)
			s->tickets_tail = NULL;
		ticket_free(s, t);
	}
}

void
http_stream_shutdown(struct server *s)
{
	while (s->lingering)
		stream_destroy(s->lingering);
}

void
http_stream_destroy_all(struct server *s)
{
	size_t i;

	for (i = 0; i < STREAM_BUCKETS; i++)
		while (s->streams[i])
			stream_destroy(s->streams[i]);
	while (s->tickets) {
		struct stream_ticket *t = s->tickets;

		s->tickets = t->next;
		ticket_free(s, t);
	}
	s->tickets_tail = NULL;
	jsonbuf_free(&s->stream_out);
}

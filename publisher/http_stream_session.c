/*
 * http_stream_session.c: the stream sessions (see http_stream_private.h):
 * their keys, the table by key, lingering without a request, the hooks
 * the session calls (something due, updates held until), the frames taken
 * into the outbox, and housekeeping and shutdown.
 */
#include "http_stream_private.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"
#include "hash.h"
#include "log.h"
#include "stream_outbox.h"

static const char *const transport_names[] = {"sse", "poll"};

/* --------------------------------------------------------- keys */

int
http_stream__random_key(char out[STREAM_KEY_LEN + 1])
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

bool
http_stream__is_key(const char *text, size_t len)
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
bool
http_stream__parse_cursor(const char *text, char key[STREAM_KEY_LEN + 1],
                          uint64_t *n)
{
	const char *colon = strchr(text, ':');
	char *end;

	if (!colon || !http_stream__is_key(text, (size_t)(colon - text)) ||
	    !colon[1] || colon[1] < '0' || colon[1] > '9')
		return false;
	errno = 0;
	*n = strtoull(colon + 1, &end, 10);
	if (errno || *end)
		return false;
	memcpy(key, text, STREAM_KEY_LEN);
	key[STREAM_KEY_LEN] = '\0';
	return true;
}

/* --------------------------------------------------- the sessions */

static struct http_stream **
bucket(struct server *s, const char *key)
{
	return &s->streams[hash_name(key, STREAM_KEY_LEN) &
	                   (STREAM_BUCKETS - 1)];
}

struct http_stream *
http_stream__find(struct server *s, const char *key)
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
void
http_stream__linger_start(struct http_stream *st)
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

void
http_stream__destroy(struct http_stream *st)
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
	log_debug("stream %s (%s): closed", st->key, session_peer(st->session));
	s->connections--;
	s->stream_count[st->transport]--;
	peer_add(s, session_peer(st->session), -1);
	session_close(st->session);
	stream_outbox_destroy(st->outbox);
	free(st);
}

/* Arm the request's timer for whichever comes first: the end of a poll's
 * wait, or the moment max_hz lets held updates go. */
void
http_stream__arm_timer(struct http_request *h)
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

	/* Its timer stays armed for wake_due_us until that has passed
	 * (http_stream_timer re-arms it). */
	if (due_us == st->wake_due_us)
		return;
	st->wake_due_us = due_us;
	if (st->req)
		http_stream__arm_timer(st->req);
}

static const struct session_transport transport = {
        .want_write = transport_want_write,
        .wake_at = transport_wake_at,
};

/* A new session for an admitted client (claims taken over). */
struct http_stream *
http_stream__create(struct server *s, enum stream_transport t, const char *peer,
                    struct auth_claims *claims)
{
	struct http_stream *st = calloc(1, sizeof *st);
	uint64_t id = ++s->next_conn_id;

	if (!st || http_stream__random_key(st->key) ||
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
void
http_stream__attach(struct http_stream *st, struct http_request *h,
                    enum stream_transport t)
{
	struct server *s = st->server;

	if (st->req && st->req != h) {
		struct http_stream_request *old = st->req->stream;

		old->stream = NULL;
		old->superseded = true;
		snprintf(old->cursor, sizeof old->cursor, "%s:%llu", st->key,
		         (unsigned long long)stream_outbox_last_sent(
		                 st->outbox));
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

void
http_stream__append_stream_frame(struct jsonbuf *b,
                                 const struct http_stream *st, bool resumed)
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
	jsonbuf_append_quoted(&b, reason ? reason : "",
	                      reason ? strlen(reason) : 0);
	jsonbuf_append_char(&b, '}');
	rc = jsonbuf_failed(&b)
	             ? -1
	             : stream_outbox_add(st->outbox, jsonbuf_data(&b), b.len,
	                                 true);
	jsonbuf_free(&b);
	return rc;
}

/*
 * Take what the session has due into the outbox, until `cap` bytes wait
 * to be written. The session's bytes are valid only until its next take,
 * so each is copied at once (the outbox keeps them anyway).
 */
void
http_stream__fill_outbox(struct http_stream *st, size_t cap)
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
				log_warn("stream %s: out of memory for its "
				         "close "
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

void
http_stream__append_cursor(struct jsonbuf *b, const struct http_stream *st,
                           uint64_t n)
{
	jsonbuf_append_str(b, st->key);
	jsonbuf_append_char(b, ':');
	jsonbuf_append_u64(b, n);
}

/* ------------------------------------------------------- lifetime */

void
http_stream_housekeeping(struct server *s, int64_t now_mono_us)
{
	while (s->lingering && s->lingering->linger_until_us <= now_mono_us)
		http_stream__destroy(s->lingering);
	http_stream__tickets_expire(s, now_mono_us);
}

void
http_stream_shutdown(struct server *s)
{
	while (s->lingering)
		http_stream__destroy(s->lingering);
}

void
http_stream_destroy_all(struct server *s)
{
	size_t i;

	for (i = 0; i < STREAM_BUCKETS; i++)
		while (s->streams[i])
			http_stream__destroy(s->streams[i]);
	http_stream__tickets_free(s);
	jsonbuf_free(&s->stream_out);
}

/*
 * http_stream.c: the requests of the protocol over plain HTTP (see
 * http_stream_private.h for the whole): GET /stream/events and GET
 * /stream/poll continue the session their cursor names or admit a new
 * one; POST /stream/send hands a request to its session; OPTIONS answers
 * a preflight; other methods get 405.
 */
#include "http_stream_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "stream_outbox.h"
#include "utf8.h"

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
		if (http_stream__ticket_find(s, ticket))
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
			http_stream__ticket_take(s, ticket, &claims);
		return http_stream__create(s, t, h->peer, &claims);
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
 * The Origin check of a request under /stream/. True when the request was
 * refused: the refusal is written (unless that failed: *rc is then -1),
 * counted in *count and logged as `what`.
 */
static bool
refused_origin(struct server *s, struct http_request *h, uint64_t *count,
               const char *what, int *rc)
{
	char why[300], who[PEER_MAX + 16];

	if (origin_allowed(s, h->wsi, why, sizeof why))
		return false;
	(*count)++;
	snprintf(who, sizeof who, "http (%s)", h->peer);
	log_refusal(who, what, REFUSED_ORIGIN, why);
	*rc = write_refusal(h->wsi, REFUSED_ORIGIN, false) ? -1 : 0;
	if (!*rc)
		h->answered = true;
	return true;
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
	char cursor[STREAM_KEY_LEN + 40], key[STREAM_KEY_LEN + 1];
	uint64_t n = 0;
	long wait_ms = POLL_WAIT_DEFAULT_MS;
	int rc;

	if (refused_origin(s, h, &s->m.refused_ws[REFUSED_ORIGIN],
	                   t == STREAM_SSE ? "SSE stream" : "long-poll", &rc))
		return rc;
	if (t == STREAM_POLL && read_wait_ms(h, &wait_ms))
		return http_stream__respond_text(
		        s, h, 400,
		        "wait_ms must be a whole number of milliseconds, 0 to "
		        "%d\n",
		        POLL_WAIT_MAX_MS);
	if (request_cursor(h->wsi, cursor, sizeof cursor) &&
	    http_stream__parse_cursor(cursor, key, &n) &&
	    (st = http_stream__find(s, key))) {
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
	http_stream__attach(st, h, t);
	if (t == STREAM_SSE) {
		if (http_stream__headers(h, 200,
		                         "text/event-stream; charset=utf-8",
		                         LWS_ILLEGAL_HTTP_CONTENT_LEN))
			return -1;
		h->later = true;
		r->stall_set_us = clock_mono_us();
		lws_set_timeout(h->wsi, PENDING_TIMEOUT_HTTP_CONTENT,
		                http_stream__sse_stall_secs(s));
		lws_callback_on_writable(h->wsi);
		/* Updates max_hz held back while no request carried the
		 * session go when they are due, not at the next tick. */
		http_stream__arm_timer(h);
		return 0;
	}
	r->poll_deadline_us = clock_wall_us() + wait_ms * 1000;
	if (http_stream__poll_has_news(h))
		return http_stream__poll_answer(s, h);
	h->later = true;
	lws_set_timeout(h->wsi, PENDING_TIMEOUT_HTTP_CONTENT,
	                (int)(POLL_WAIT_MAX_MS / 1000 + 30));
	http_stream__arm_timer(h);
	return 0;
}

/* ------------------------------------------------------- requests */

/* POST /stream/send?session=KEY: the body is read as it comes (see
 * http_stream_body); a body over the message limit is refused now. */
static int
begin_send(struct server *s, struct http_request *h)
{
	struct http_stream_request *r = h->stream;
	char arg[STREAM_KEY_LEN + 16], len_text[32];
	const char *v;
	unsigned long long len = 0;
	int rc;

	if (refused_origin(s, h, &s->m.refused_api[REFUSED_ORIGIN],
	                   "POST /stream/send", &rc))
		return rc;
	/* The key in a header keeps it out of URLs, which proxies log;
	 * ?session= is for curl. */
	v = lws_hdr_custom_copy(h->wsi, arg, (int)sizeof arg,
	                        "x-stream-session:", 17) > 0
	            ? arg
	            : url_arg(h->wsi, "session=", arg, sizeof arg);
	if (!v || !http_stream__is_key(v, strlen(v)))
		return http_stream__respond_text(
		        s, h, 400,
		        "POST /stream/send needs the session "
		        "of the stream frame: an "
		        "X-Stream-Session: KEY header or "
		        "?session=KEY\n");
	memcpy(r->key, v, STREAM_KEY_LEN + 1);
	if (lws_hdr_copy(h->wsi, len_text, sizeof len_text,
	                 WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
		len = strtoull(len_text, NULL, 10);
	if (!len)
		return http_stream__respond_text(
		        s, h, 400,
		        "POST /stream/send needs the request "
		        "as its body, with a Content-Length\n");
	if (len > s->opt->max_message_bytes)
		return http_stream__respond_text(
		        s, h, 413,
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
		rc = http_stream__respond_text(
		        s, h, 400,
		        "a POST that comes behind another "
		        "request on one connection cannot be "
		        "read here: send it on a connection of "
		        "its own\n");
	else if (r->body_too_large)
		rc = http_stream__respond_text(s, h, 413,
		                               "body longer than its "
		                               "Content-Length\n");
	else if (!utf8_valid(r->body, r->body_len))
		rc = http_stream__respond_text(s, h, 400,
		                               "the request is not UTF-8\n");
	else if (!(st = http_stream__find(s, r->key)) || st->closed)
		rc = http_stream__respond_unknown_session(s, h);
	else {
		/* Replies come on the stream, as on /ws. */
		session_receive(st->session, r->body, r->body_len, false);
		rc = http_stream__respond(s, h, 202, "text/plain", NULL, 0);
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
	int rc;

	if (refused_origin(s, h, &s->m.refused_api[REFUSED_ORIGIN],
	                   "OPTIONS /stream/", &rc))
		return rc;
	if (lws_add_http_common_headers(h->wsi, 204, NULL, 0, &p, end) ||
	    http_stream__add_header(h->wsi, "allow:", h->stream->allow, &p,
	                            end) ||
	    http_stream__add_header(h->wsi, "access-control-allow-methods:",
	                            h->stream->allow, &p, end) ||
	    http_stream__add_header(
	            h->wsi, "access-control-allow-headers:",
	            "Authorization, Content-Type, Last-Event-ID, "
	            "X-Stream-Session",
	            &p, end) ||
	    http_stream__add_header(h->wsi, "access-control-max-age:", "600",
	                            &p, end) ||
	    http_stream__add_header(h->wsi, "cache-control:", "no-cache", &p,
	                            end) ||
	    http_stream__add_header(h->wsi, "x-accel-buffering:", "no", &p,
	                            end))
		return -1;
	if (http_stream__add_cors_headers(h, &p, end) ||
	    lws_finalize_write_http_header(h->wsi, start, &p, end))
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
		return http_stream__respond_text(
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
		return http_stream__respond_text(
		        s, h, 405, "%s is not taken on %s: %s\n",
		        http_method_name(h->method), path, endpoints[i].allow);
	switch (r->kind) {
	case REQ_EVENTS:
		return open_stream(s, h, STREAM_SSE);
	case REQ_POLL:
		return open_stream(s, h, STREAM_POLL);
	case REQ_SEND:
		return begin_send(s, h);
	case REQ_TICKET:
		return http_stream__issue_ticket(s, h);
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
			http_stream__destroy(st);
		else
			http_stream__linger_start(st);
	}
	lws_set_timer_usecs(h->wsi, LWS_SET_TIMER_USEC_CANCEL);
	free(r->body);
	free(r);
	h->stream = NULL;
}

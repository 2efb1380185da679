/*
 * http_stream_write.c: the answers of the protocol over plain HTTP (see
 * http_stream_private.h): the headers every answer carries, an SSE
 * response's writes (on the loop's idle turn, or from its writeable
 * callback), a poll's answer, and the requests' timers.
 */
#include "http_stream_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "stream_outbox.h"

/* An SSE client that reads is written at least every heartbeat: it is
 * dropped only when it has taken nothing for longer than both. */
int
http_stream__sse_stall_secs(const struct server *s)
{
	unsigned heartbeat_secs = s->opt->heartbeat_ms / 1000 + 1;

	return (int)(heartbeat_secs * 2 > SSE_STALL_SECS ? heartbeat_secs * 2
	                                                 : SSE_STALL_SECS);
}

/* ---------------------------------------------------------- answers */

int
http_stream__add_header(struct lws *wsi, const char *name, const char *value,
                        unsigned char **p, unsigned char *end)
{
	return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
	                                   (const unsigned char *)value,
	                                   (int)strlen(value), p, end);
}

/*
 * The request came with an Origin (one the Origin check admitted): its
 * answer may be read by a page of that origin, with its cookies.
 */
int
http_stream__add_cors_headers(struct http_request *h, unsigned char **p,
                              unsigned char *end)
{
	char origin[256];

	if (lws_hdr_copy(h->wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) <= 0)
		return 0;
	return http_stream__add_header(h->wsi,
	                               "access-control-allow-origin:", origin,
	                               p, end) ||
	                       http_stream__add_header(
	                               h->wsi,
	                               "access-control-allow-credentials:",
	                               "true", p, end) ||
	                       http_stream__add_header(
	                               h->wsi, "vary:", "Origin", p, end)
	               ? -1
	               : 0;
}

/*
 * The headers of a stream's answer: never cached, never held back by a
 * proxy that honours X-Accel-Buffering (nginx), and readable by a page of
 * an origin admitted by --allow-origin. len may be
 * LWS_ILLEGAL_HTTP_CONTENT_LEN: the body then ends with the connection.
 */
int
http_stream__headers(struct http_request *h, unsigned status, const char *type,
                     lws_filepos_t len)
{
	unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
	                                   *end = buf + sizeof buf;

	if (lws_add_http_common_headers(h->wsi, status, type, len, &p, end) ||
	    http_stream__add_header(h->wsi, "cache-control:", "no-cache", &p,
	                            end) ||
	    http_stream__add_header(h->wsi, "x-accel-buffering:", "no", &p,
	                            end))
		return -1;
	/* A POST's connection ends with its answer (see "POST" in
	 * http_api.c): say so. */
	if (h->method == HTTP_POST &&
	    http_stream__add_header(h->wsi, "connection:", "close", &p, end))
		return -1;
	if (status == 405 && http_stream__add_header(h->wsi, "allow:",
	                                             h->stream->allow, &p, end))
		return -1;
	if (http_stream__add_cors_headers(h, &p, end))
		return -1;
	return lws_finalize_write_http_header(h->wsi, start, &p, end) ? -1 : 0;
}

/* A whole answer (a poll's, a ticket, 202), written now. */
int
http_stream__respond(struct server *s, struct http_request *h, unsigned status,
                     const char *type, const char *body, size_t len)
{
	struct jsonbuf *b = &s->stream_out;

	if (http_stream__headers(h, status, type, (lws_filepos_t)len))
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
int
http_stream__respond_text(struct server *s, struct http_request *h,
                          unsigned status, const char *fmt, ...)
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
	return http_stream__respond(s, h, status, "text/plain; charset=utf-8",
	                            text, (size_t)n);
}

int
http_stream__respond_unknown_session(struct server *s, struct http_request *h)
{
	static const char body[] =
	        "{\"type\":\"error\",\"code\":\"unknown_session\","
	        "\"message\":\"no such stream session (it expired, or the "
	        "server restarted): open a new stream\"}";

	return http_stream__respond(s, h, 404, "application/json", body,
	                            sizeof body - 1);
}

/*
 * A poll's answer: {"frames":[…],"cursor":"KEY:N"}. First the stream frame
 * when the session is new, then the frames after the client's cursor,
 * then what the session has due, up to POLL_ANSWER_BYTES.
 */
int
http_stream__poll_answer(struct server *s, struct http_request *h)
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
			http_stream__append_stream_frame(b, st, r->resumed);
			first = false;
			r->greet = false;
		}
		http_stream__fill_outbox(st, POLL_ANSWER_BYTES);
		while (b->len < POLL_ANSWER_BYTES &&
		       stream_outbox_next(st->outbox, &f)) {
			if (!first)
				jsonbuf_append_char(b, ',');
			first = false;
			jsonbuf_append(b, f.data, f.len);
			stream_outbox_sent(st->outbox);
		}
		jsonbuf_append_str(b, "],\"cursor\":\"");
		http_stream__append_cursor(b, st,
		                           stream_outbox_last_sent(st->outbox));
	} else {
		jsonbuf_append_str(b, "],\"cursor\":\"");
		jsonbuf_append_str(b, r->cursor);
	}
	jsonbuf_append_str(b, "\"}");
	if (jsonbuf_failed(b))
		return -1;
	r->poll_deadline_us = 0;
	return http_stream__respond(s, h, 200, "application/json",
	                            jsonbuf_data(b), b->len);
}

/* Whether a poll has something to answer with now. */
bool
http_stream__poll_has_news(struct http_request *h)
{
	struct http_stream_request *r = h->stream;
	struct http_stream *st = r->stream;

	if (!st)
		return true; /* superseded: answered at once */
	http_stream__fill_outbox(st, POLL_ANSWER_BYTES);
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
		http_stream__append_stream_frame(b, st, r->resumed);
		jsonbuf_append_str(b, "\n\n");
		r->greet = false;
	}
	http_stream__fill_outbox(st, SSE_WRITE_BYTES);
	while (b->len < SSE_WRITE_BYTES && stream_outbox_next(st->outbox, &f)) {
		jsonbuf_append_str(b, "id: ");
		http_stream__append_cursor(b, st, f.number);
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
		                http_stream__sse_stall_secs(s));
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

/* The idle turn's write of an SSE response (see transport_want_write in
 * http_stream_session.c). Outside a callback nothing may end the transaction or
 * close the connection: that is left to the writeable callback. */
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
	if (!http_stream__poll_has_news(h))
		return 0; /* wait on */
	rc = http_stream__poll_answer(s, h);
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
		return http_stream__poll_answer(s, h) ? -1 : finish(h);
	if (r->stream && r->stream->due)
		lws_callback_on_writable(h->wsi);
	http_stream__arm_timer(h);
	return 0;
}

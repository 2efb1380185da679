/*
 * subload_sse.c: reading an event-stream response and writing the stream
 * transports' requests, for subload (see subload_sse.h).
 *
 * The body is read in place, as subload reads WebSocket frames: the caller
 * keeps an incomplete line and passes it again with the bytes that follow,
 * so a frame is copied at most once whatever number of reads it takes. The
 * chunked coding, when there is one, is taken out of the new bytes first,
 * also in place (what is left is never longer than what came).
 */
#define _GNU_SOURCE
#include "subload_sse.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* A head longer than this is not a reply of ours. */
#define HEAD_MAX (16 * 1024)

enum chunk_phase {
	CH_SIZE,     /* the hex size of the next chunk */
	CH_EXT,      /* a chunk extension, up to the end of the size line */
	CH_DATA,     /* chunk_left bytes of the body */
	CH_DATA_END, /* the CRLF after a chunk's bytes */
	CH_DONE,     /* the last chunk came: the body is over */
};

#define LIT(s) s, sizeof(s) - 1

static void
problem(const struct sse_handler *h, const char *what, const char *text,
        size_t len)
{
	if (h->problem)
		h->problem(h->arg, what, text, len > 160 ? 160 : len);
}

void
sse_stream_init(struct sse_stream *s)
{
	memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------ head */

static const char *
head_end(const char *buf, size_t len)
{
	const char *e = memmem(buf, len, "\r\n\r\n", 4);

	return e ? e + 4 : NULL;
}

/* A header's value, spaces around it taken off, when the line [p, e) is
 * that header (its name compared without case). */
static bool
header_value(const char *p, const char *e, const char *name, size_t nlen,
             const char **v, const char **ve)
{
	if ((size_t)(e - p) <= nlen || strncasecmp(p, name, nlen) ||
	    p[nlen] != ':')
		return false;
	p += nlen + 1;
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*v = p;
	*ve = e;
	return true;
}

static bool
value_has(const char *v, const char *ve, const char *word, size_t wlen)
{
	for (; (size_t)(ve - v) >= wlen; v++)
		if (!strncasecmp(v, word, wlen))
			return true;
	return false;
}

long
sse_stream_head(struct sse_stream *s, const char *buf, size_t len,
                const struct sse_handler *h)
{
	const char *end = head_end(buf, len), *p, *eol, *v, *ve;
	bool event_stream = false, no_cache = false, no_buffering = false;
	int status = sse_reply_status(buf, len);

	if (!end) {
		if (len > HEAD_MAX) {
			problem(h, "a response head without an end", buf, len);
			return -1;
		}
		return 0;
	}
	eol = memchr(buf, '\r', (size_t)(end - buf));
	if (status != 200) {
		/* The refusal's one-line body often came with its head. */
		size_t shown = (size_t)(eol - buf);
		char text[256];
		int n = snprintf(text, sizeof text, "%.*s: %.*s", (int)shown,
		                 buf, (int)(len - (size_t)(end - buf)), end);

		problem(h, "the event stream was refused", text,
		        n < 0 ? 0 : (size_t)n);
		return -1;
	}
	for (p = eol + 2; p < end - 2; p = eol + 2) {
		eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (header_value(p, eol, LIT("content-type"), &v, &ve))
			event_stream = (size_t)(ve - v) >= 17 &&
			               !strncasecmp(v, "text/event-stream", 17);
		else if (header_value(p, eol, LIT("cache-control"), &v, &ve))
			no_cache = value_has(v, ve, LIT("no-cache"));
		else if (header_value(p, eol, LIT("x-accel-buffering"), &v,
		                      &ve))
			no_buffering = ve - v == 2 && !strncasecmp(v, "no", 2);
		else if (header_value(p, eol, LIT("transfer-encoding"), &v,
		                      &ve))
			s->chunked = value_has(v, ve, LIT("chunked"));
		else if (header_value(p, eol, LIT("content-length"), &v, &ve))
			problem(h, "an event stream with a Content-Length", p,
			        (size_t)(eol - p));
	}
	if (!event_stream)
		problem(h,
		        "an event stream whose Content-Type is not "
		        "text/event-stream",
		        buf, (size_t)(end - buf));
	if (!no_cache)
		problem(h, "a stream response without Cache-Control: no-cache",
		        buf, (size_t)(end - buf));
	if (!no_buffering)
		problem(h, "a stream response without X-Accel-Buffering: no",
		        buf, (size_t)(end - buf));
	return end - buf;
}

/* ------------------------------------------------------------ body */

static int
hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The end of a chunk-size line: the next chunk's bytes follow, or (size 0)
 * the body is over. */
static void
chunk_size_done(struct sse_stream *s, const struct sse_handler *h)
{
	if (!s->chunk_digits)
		problem(h, "a chunk without a size", "", 0);
	s->chunk_phase = s->chunk_left ? CH_DATA : CH_DONE;
	if (!s->chunk_left)
		s->ended = true;
}

/* Take the chunked coding out of buf[from, len), in place; returns the end
 * of what is left. */
static size_t
dechunk(struct sse_stream *s, char *buf, size_t from, size_t len,
        const struct sse_handler *h)
{
	size_t r = from, w = from, n;
	int d;

	while (r < len && s->chunk_phase != CH_DONE) {
		char c = buf[r];

		switch (s->chunk_phase) {
		case CH_SIZE:
			r++;
			if ((d = hex_digit(c)) >= 0) {
				s->chunk_left =
				        s->chunk_left * 16 + (unsigned)d;
				s->chunk_digits++;
			} else if (c == '\n') {
				chunk_size_done(s, h);
			} else if (c != '\r') {
				s->chunk_phase = CH_EXT;
			}
			break;
		case CH_EXT:
			r++;
			if (c == '\n')
				chunk_size_done(s, h);
			break;
		case CH_DATA:
			n = len - r < s->chunk_left ? len - r
			                            : (size_t)s->chunk_left;
			if (w != r)
				memmove(buf + w, buf + r, n);
			w += n;
			r += n;
			s->chunk_left -= n;
			if (!s->chunk_left)
				s->chunk_phase = CH_DATA_END;
			break;
		case CH_DATA_END:
			r++;
			if (c == '\n') {
				s->chunk_phase = CH_SIZE;
				s->chunk_digits = 0;
			} else if (c != '\r') {
				problem(h, "a chunk longer than its size",
				        buf + r - 1, len - r + 1);
				s->chunk_phase = CH_DONE;
				s->ended = true;
			}
			break;
		}
	}
	return w;
}

static bool
starts(const char *p, const char *e, const char *lit, size_t len)
{
	return (size_t)(e - p) >= len && !memcmp(p, lit, len);
}

static bool
is_key(const char *p)
{
	for (int i = 0; i < SSE_KEY_LEN; i++)
		if (!((p[i] >= '0' && p[i] <= '9') ||
		      (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

/* {"type":"stream","session":"KEY","transport":"sse","resumed":B,...} */
static void
on_stream_frame(struct sse_stream *s, const char *p, const char *e,
                const struct sse_handler *h)
{
	const char *k = memmem(p, (size_t)(e - p), LIT("\"session\":\""));

	if (s->session[0])
		problem(h, "a second stream frame", p, (size_t)(e - p));
	if (!k || e - (k + 11) < SSE_KEY_LEN + 1 || !is_key(k + 11) ||
	    k[11 + SSE_KEY_LEN] != '"') {
		problem(h, "a stream frame without a session key", p,
		        (size_t)(e - p));
		return;
	}
	memcpy(s->session, k + 11, SSE_KEY_LEN);
	s->session[SSE_KEY_LEN] = 0;
	if (s->id_key_known && memcmp(s->id_key, s->session, SSE_KEY_LEN))
		problem(h, "a stream frame whose session is not its id's key",
		        p, (size_t)(e - p));
	if (!memmem(p, (size_t)(e - p), LIT("\"transport\":\"sse\"")))
		problem(h, "a stream frame whose transport is not sse", p,
		        (size_t)(e - p));
	if (memmem(p, (size_t)(e - p), LIT("\"resumed\":true")))
		s->resumed = true;
	else if (!memmem(p, (size_t)(e - p), LIT("\"resumed\":false")))
		problem(h, "a stream frame without resumed", p,
		        (size_t)(e - p));
	if (!memmem(p, (size_t)(e - p), LIT("\"linger_ms\":")))
		problem(h, "a stream frame without linger_ms", p,
		        (size_t)(e - p));
}

/* {"type":"close","code":N,"reason":"..."}: nothing follows it. */
static void
on_close_frame(struct sse_stream *s, const char *p, const char *e)
{
	const char *c = memmem(p, (size_t)(e - p), LIT("\"code\":"));
	int code = 0;

	if (c)
		for (c += 7; c < e && *c >= '0' && *c <= '9'; c++)
			code = code * 10 + (*c - '0');
	s->close_code = code ? code : -1;
}

/* The frame's type, when it is one the transport itself sends. Updates,
 * the bulk of what comes, are told apart by their first bytes; another
 * small frame is searched, in case its keys come in another order. */
static bool
frame_is(const char *p, const char *e, const char *type_lit, size_t tlen)
{
	if (starts(p, e, LIT("{\"type\":\"")))
		return starts(p + 9, e, type_lit, tlen);
	return *p == '{' && e - p < 512 &&
	       memmem(p, (size_t)(e - p), LIT("\"type\":\"")) &&
	       memmem(p, (size_t)(e - p), type_lit, tlen);
}

static void
on_data(struct sse_stream *s, const char *v, const char *e,
        const struct sse_handler *h)
{
	bool stream_frame = v < e && frame_is(v, e, LIT("stream\""));

	if (s->event_data)
		problem(h,
		        "two data lines in one event (a blank line "
		        "missing?)",
		        v, (size_t)(e - v));
	/* The stream frame is made anew for each response: it is no frame
	 * of the session, and has no number (the hello is frame 1). */
	if (!s->event_id && !stream_frame)
		problem(h, "an event without an id", v, (size_t)(e - v));
	if (s->event_data < 255)
		s->event_data++;
	s->frames++;
	if (v == e) {
		problem(h, "an empty data line", "", 0);
		return;
	}
	if (stream_frame)
		on_stream_frame(s, v, e, h);
	else if (s->frames == 1)
		problem(h, "a first frame that is not the stream frame", v,
		        (size_t)(e - v));
	else if (frame_is(v, e, LIT("close\"")))
		on_close_frame(s, v, e);
	h->frame(h->arg, v, (size_t)(e - v));
}

/* id: KEY:N, N one more than the last event's. */
static void
on_id(struct sse_stream *s, const char *v, const char *e,
      const struct sse_handler *h)
{
	const char *c = v + SSE_KEY_LEN, *d;
	uint64_t n = 0;

	if (s->event_data)
		problem(h,
		        "an id after its event's data (a blank line "
		        "missing?)",
		        v, (size_t)(e - v));
	else if (s->event_id)
		problem(h, "two ids in one event", v, (size_t)(e - v));
	s->event_id = true;
	if (e - v < SSE_KEY_LEN + 2 || !is_key(v) || *c != ':') {
		problem(h, "an id that is not KEY:N", v, (size_t)(e - v));
		return;
	}
	for (d = c + 1; d < e && *d >= '0' && *d <= '9'; d++)
		n = n * 10 + (uint64_t)(*d - '0');
	if (d != e || d == c + 1) {
		problem(h, "an id that is not KEY:N", v, (size_t)(e - v));
		return;
	}
	if (!s->id_key_known) {
		memcpy(s->id_key, v, SSE_KEY_LEN);
		s->id_key_known = true;
	} else if (memcmp(s->id_key, v, SSE_KEY_LEN)) {
		problem(h, "an id whose key changed within the response", v,
		        (size_t)(e - v));
	}
	if (n != s->last_id + 1)
		problem(h, "event ids not numbered 1, 2, 3, ...", v,
		        (size_t)(e - v));
	s->last_id = n;
}

/* One line of the event stream, its end of line taken off. The fields are
 * those of the HTML standard's event-stream format: a line "NAME: VALUE"
 * (one space after the colon is not part of the value), a line starting
 * with a colon is a comment, an empty line ends the event. */
static void
on_line(struct sse_stream *s, const char *p, const char *e,
        const struct sse_handler *h)
{
	const char *colon, *v;
	size_t nlen;

	if (p == e) {
		if (s->event_id && !s->event_data)
			problem(h, "an event with an id and no data", "", 0);
		s->event_id = false;
		s->event_data = 0;
		return;
	}
	if (*p == ':')
		return;
	colon = memchr(p, ':', (size_t)(e - p));
	nlen = (size_t)((colon ? colon : e) - p);
	v = colon ? colon + 1 : e;
	if (v < e && *v == ' ')
		v++;
	if (nlen == 4 && !memcmp(p, "data", 4))
		on_data(s, v, e, h);
	else if (nlen == 2 && !memcmp(p, "id", 2))
		on_id(s, v, e, h);
	else if (nlen == 5 && !memcmp(p, "event", 5)) {
		if (e - v != 7 || memcmp(v, "message", 7))
			problem(h, "an event type other than message", p,
			        (size_t)(e - p));
	} else if (!(nlen == 5 && !memcmp(p, "retry", 5))) {
		problem(h, "a line that is no event-stream field", p,
		        (size_t)(e - p));
	}
}

size_t
sse_stream_body(struct sse_stream *s, char *buf, size_t done, size_t *len,
                const struct sse_handler *h)
{
	const char *p = buf, *e, *nl, *cr, *end, *next;

	if (s->close_code || s->ended)
		return *len;
	if (s->chunked)
		*len = dechunk(s, buf, done, *len, h);
	e = buf + *len;
	while (p < e && !s->close_code) {
		if (s->skip_lf) {
			s->skip_lf = false;
			if (*p == '\n')
				p++;
			continue;
		}
		/* A line ends at LF, CRLF or a CR alone. JSON has no raw CR
		 * or LF in it, so the first of them ends a data line. */
		nl = memchr(p, '\n', (size_t)(e - p));
		cr = memchr(p, '\r', (size_t)((nl ? nl : e) - p));
		if (cr) {
			end = cr;
			next = cr + 1;
			if (next == e)
				s->skip_lf = true;
			else if (*next == '\n')
				next++;
		} else if (nl) {
			end = nl;
			next = nl + 1;
		} else {
			break;
		}
		on_line(s, p, end, h);
		p = next;
	}
	if (s->close_code || s->ended) {
		if (p < e && !s->close_code)
			problem(h, "a response that ended within a line", p,
			        (size_t)(e - p));
		return *len;
	}
	return (size_t)(p - buf);
}

/* ------------------------------------------------------------ requests */

size_t
sse_get_request(char *out, size_t cap, const char *host, int port,
                const char *path)
{
	int n = snprintf(out, cap,
	                 "GET %s HTTP/1.1\r\n"
	                 "Host: %s:%d\r\n"
	                 "Accept: text/event-stream\r\n"
	                 "Cache-Control: no-cache\r\n"
	                 "\r\n",
	                 path, host, port);

	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t
sse_post_head(char *out, size_t cap, const char *host, int port,
              const char *session, size_t body_len)
{
	int n = snprintf(out, cap,
	                 "POST /stream/send?session=%s HTTP/1.1\r\n"
	                 "Host: %s:%d\r\n"
	                 "Content-Type: text/plain\r\n"
	                 "Content-Length: %zu\r\n"
	                 "Connection: close\r\n"
	                 "\r\n",
	                 session, host, port, body_len);

	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

int
sse_reply_status(const char *buf, size_t len)
{
	int status = 0, i;

	if (!head_end(buf, len))
		return len > HEAD_MAX ? -1 : 0;
	if (len < 12 || memcmp(buf, "HTTP/1.", 7) || buf[8] != ' ')
		return -1;
	for (i = 9; i < 12; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -1;
		status = status * 10 + (buf[i] - '0');
	}
	return status >= 100 ? status : -1;
}

/*
 * subload_sse.h: the HTTP side of subload's SSE transport, for the bench
 * suite's "SSE against WebSocket" cells.
 *
 * The stream transports carry the /ws protocol over plain HTTP: a client
 * reads its frames from GET /stream/events (an event stream, one frame per
 * event) and sends each request in its own POST /stream/send?session=KEY.
 * This module reads such a response as bytes come (the head, the chunked
 * coding when the server uses one, the event lines) and hands every frame
 * to its caller, checking on the way what the wire promises: one `data:`
 * line per event, each with an `id: KEY:N` numbered 1, 2, 3, ... (all but
 * the `stream` frame that opens each response, which is no frame of the
 * session) and ended by a blank line, and the response's headers. It
 * also writes the two requests and reads the POST's status.
 *
 * It owns no socket and allocates nothing: subload.c opens, polls and
 * closes the connections and feeds their bytes here; each connection keeps
 * its own struct sse_stream. Its only caller is subload.c.
 */
#ifndef BENCH_SUBLOAD_SSE_H
#define BENCH_SUBLOAD_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The session key: 32 lowercase hex characters. */
#define SSE_KEY_LEN 32

/* What the caller is told. frame(): one frame's JSON, as the data line
 * carried it (borrowed, valid during the call). problem(): the stream
 * departs from the wire; `what` is a fixed text (the same pointer for the
 * same departure, so a caller can count them by it), `text` the bytes that
 * show it. */
struct sse_handler {
	void (*frame)(void *arg, const char *json, size_t len);
	void (*problem)(void *arg, const char *what, const char *text,
	                size_t len);
	void *arg;
};

/* One event-stream response, read as it comes. Zeroed by sse_stream_init;
 * the caller reads the fields below the line. */
struct sse_stream {
	/* the chunked coding, when the head named it */
	bool chunked;
	uint8_t chunk_phase;
	uint8_t chunk_digits;
	uint64_t chunk_left;
	/* the last line ended with CR: a LF that comes next belongs to it */
	bool skip_lf;
	/* the event under way: its id line came, its data lines so far */
	bool event_id;
	uint8_t event_data;
	/* N of the last id KEY:N, and KEY, as the first id named it */
	uint64_t last_id;
	char id_key[SSE_KEY_LEN];
	bool id_key_known;

	/* ---- for the caller */
	/* the session key, from the stream frame ("" before it) */
	char session[SSE_KEY_LEN + 1];
	bool resumed;
	/* frames so far (the stream frame included) */
	uint64_t frames;
	/* a close frame came: its code (-1 when it had none); the reader
	 * takes nothing after it */
	int close_code;
	/* the response ended (a last chunk, or a Content-Length reached) */
	bool ended;
};

void sse_stream_init(struct sse_stream *s);

/*
 * The response's head at the start of buf[0, len): returns the bytes it
 * takes (the body starts there), 0 while it is not all here, -1 when the
 * response is not a 200 event stream (its status line goes to problem()).
 * Headers the wire asks for and does not get (Content-Type
 * text/event-stream, Cache-Control no-cache, X-Accel-Buffering no, no
 * Content-Length) go to problem() too, and the head is taken all the same.
 */
long sse_stream_head(struct sse_stream *s, const char *buf, size_t len,
                     const struct sse_handler *h);

/*
 * The body. buf[0, done) is what the previous call left (already decoded),
 * buf[done, *len) what came since, as received. The new bytes are decoded
 * in place (*len shrinks by the chunked coding's own bytes); every complete
 * line is read, and every data line handed to frame(). Returns the bytes
 * taken: buf[ret, *len) is a line not yet complete, to be passed again at
 * the start of buf, before what comes next. After a close frame or the
 * end of the response, everything is taken and nothing more is read.
 */
size_t sse_stream_body(struct sse_stream *s, char *buf, size_t done,
                       size_t *len, const struct sse_handler *h);

/* GET path (the event stream) into out; returns its length, or 0 when it
 * does not fit. */
size_t sse_get_request(char *out, size_t cap, const char *host, int port,
                       const char *path);

/* The head of POST /stream/send?session=KEY with a body of body_len bytes
 * (the caller sends the body after it); returns its length, or 0 when it
 * does not fit. The request asks the server to close the connection once
 * it has answered: it carries one request, and then is gone. */
size_t sse_post_head(char *out, size_t cap, const char *host, int port,
                     const char *session, size_t body_len);

/* The status of an HTTP reply whose head is at the start of buf[0, len):
 * 100..599, 0 while the head is not all here, -1 when it is no HTTP
 * reply. */
int sse_reply_status(const char *buf, size_t len);

#endif

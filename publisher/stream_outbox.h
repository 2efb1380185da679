/*
 * stream_outbox.h: the numbered frames of a session carried over plain HTTP
 * (Server-Sent Events, long-poll), kept until the client can no longer ask
 * for them again.
 *
 * Over WebSocket a frame written is a frame the client reads or a
 * connection the client sees die. Over HTTP a response can be cut, or
 * swallowed by a proxy, and the client comes back on a new request with
 * the number of the last frame it did read (its cursor). So each frame gets
 * a number (1, 2, 3, …), and frames are kept after they were written:
 *
 *   - until acknowledged: a long-poll carries the cursor of the answer it
 *     received, which acknowledges every frame up to it;
 *   - or until the bytes kept pass the retention bound (oldest first):
 *     Server-Sent Events acknowledge nothing, so what is kept is what a
 *     reconnect can still be given.
 *
 * A cursor can be continued (stream_outbox_rewind) when every frame after
 * it is still here; otherwise the client must start over (a new session,
 * then `resume`).
 *
 *   o = stream_outbox_create(256 * 1024);
 *   stream_outbox_add(o, bytes, len, true);         // a whole frame
 *   while (stream_outbox_next(o, &f)) write f, then stream_outbox_sent(o);
 *   stream_outbox_rewind(o, cursor);                // the client came back
 *   stream_outbox_ack(o, cursor);                   // a poll's cursor
 *
 * What it owns: copies of the frames. Who calls it: http_stream.c, one
 * outbox per stream session, on the loop's thread. No locks.
 */
#ifndef PUBLISHER_STREAM_OUTBOX_H
#define PUBLISHER_STREAM_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stream_outbox;

/* A frame to write: its number and bytes (valid until the outbox is next
 * changed). */
struct stream_frame {
	uint64_t number;
	const char *data;
	size_t len;
};

/* retain_bytes: how many bytes of frames already written are kept for a
 * client that comes back (frames not yet written are always kept). NULL
 * when out of memory. */
struct stream_outbox *stream_outbox_create(size_t retain_bytes);

/* NULL is a no-op. */
void stream_outbox_destroy(struct stream_outbox *o);

/*
 * Add bytes to the frame being put together (a new one when none is);
 * `last` finishes it: it gets the next number and can be written. A
 * message that comes in pieces (a long history reply) is added piece by
 * piece. Returns 0, or -1 when out of memory (the frame being put together
 * is then dropped).
 */
int stream_outbox_add(struct stream_outbox *o, const char *data, size_t len,
                      bool last);

/* The next finished frame not yet written: true with it in *f. */
bool stream_outbox_next(const struct stream_outbox *o, struct stream_frame *f);

/* The frame stream_outbox_next() gave was written. Frames written beyond
 * the retention bound and not needed by any cursor still held are freed. */
void stream_outbox_sent(struct stream_outbox *o);

/* Bytes of finished frames not yet written. */
size_t stream_outbox_unsent_bytes(const struct stream_outbox *o);

/* The number of the last frame written (0: none). */
uint64_t stream_outbox_last_sent(const struct stream_outbox *o);

/* The number of the last finished frame (0: none). */
uint64_t stream_outbox_last(const struct stream_outbox *o);

/*
 * The client holds every frame up to `cursor` and nothing after: the
 * frames after it are written again, in order. True when that is possible;
 * false when cursor is beyond the last frame or a frame after it is gone
 * (nothing changes then).
 */
bool stream_outbox_rewind(struct stream_outbox *o, uint64_t cursor);

/* The client acknowledged every frame up to cursor (at most what was
 * written): they are freed. */
void stream_outbox_ack(struct stream_outbox *o, uint64_t cursor);

/* Bytes held, for /metrics and tests. */
size_t stream_outbox_bytes(const struct stream_outbox *o);

#endif

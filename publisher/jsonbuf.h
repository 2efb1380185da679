/*
 * jsonbuf: a growable byte buffer with helpers to append JSON tokens.
 *
 * Outbound messages (protocol replies, history, exports, tick-file lines,
 * Redis commands) are written with these helpers instead of building a
 * jansson tree: it is several times faster and keeps decimals exact. The
 * engine's snapshots and deltas are written by engine_encode.c straight
 * into fixed-size buffers, with format_u64() from here.
 *
 * The buffer keeps `headroom` spare bytes in front of the data so that a
 * finished message can be handed to lws_write() in place (LWS_PRE). The
 * module itself knows nothing of lws.
 *
 * On allocation failure a buffer becomes "failed": later appends are ignored
 * and jsonbuf_failed() returns true; check it once before using the result.
 *
 * What it owns: nothing global. Each struct jsonbuf owns its one
 * allocation (base), made on the first append and freed by
 * jsonbuf_free(); a buffer is used by one thread at a time.
 *
 * Who calls it: the protocol's writers (protocol.c) and session.c for
 * replies, query.c and http_api.c for history, bars and exports,
 * export.c, the tick-file writer (tick_file_write.c) and the Redis link
 * (redis_wire.c, redis_publisher.c) for its commands and entries; the
 * engine's encoder takes format_u64() only.
 */
#ifndef PUBLISHER_JSONBUF_H
#define PUBLISHER_JSONBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decimal.h"

struct jsonbuf {
	char *base;	 /* allocation: headroom bytes, then data */
	size_t headroom; /* bytes reserved before data */
	size_t len;	 /* bytes of data */
	size_t cap;	 /* bytes of data the allocation can hold */
	bool failed;
};

/* Start an empty buffer; no allocation happens until the first append. */
void
jsonbuf_init(struct jsonbuf *b, size_t headroom);

/* Free the allocation; the buffer may be initialised again. NULL is a no-op. */
void
jsonbuf_free(struct jsonbuf *b);

/* Drop the data, keep the allocation. */
static inline void
jsonbuf_reset(struct jsonbuf *b)
{
	b->len = 0;
	b->failed = false;
}

/* Make room for n more bytes. Returns 0, or -1 (and marks failed). */
int
jsonbuf_reserve(struct jsonbuf *b, size_t n);

/* The data: valid until the next append. */
static inline char *
jsonbuf_data(const struct jsonbuf *b)
{
	return b->base ? b->base + b->headroom : NULL;
}

static inline bool
jsonbuf_failed(const struct jsonbuf *b)
{
	return b->failed;
}

void
jsonbuf_append(struct jsonbuf *b, const void *data, size_t n);
void
jsonbuf_append_str(struct jsonbuf *b, const char *s); /* raw, unescaped */
void
jsonbuf_append_char(struct jsonbuf *b, char c);
/* A JSON string literal with quotes; escapes per RFC 8259. */
void
jsonbuf_append_quoted(struct jsonbuf *b, const char *s, size_t n);
void
jsonbuf_append_i64(struct jsonbuf *b, int64_t v);
void
jsonbuf_append_u64(struct jsonbuf *b, uint64_t v);
void
jsonbuf_append_decimal(struct jsonbuf *b, struct decimal d);
/* `"key":` — key is trusted ASCII without characters that need escaping. */
void
jsonbuf_append_key(struct jsonbuf *b, const char *key);

/* Write the decimal text of v into out (no NUL); returns the length (<= 20). */
size_t
format_u64(uint64_t v, char *out);

#endif

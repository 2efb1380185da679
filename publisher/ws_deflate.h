/*
 * ws_deflate.h: WebSocket compression (permessage-deflate) for the update
 * stream, at the cost of one compression per frame, not per client.
 *
 * A frame the engine shares between clients in step is compressed once and
 * the same compressed bytes are written to every client that agreed to the
 * extension (every browser offers it). A frame made for one client alone is
 * compressed for it while a per-second budget lasts, and goes as text
 * after that: a message may always be sent uncompressed. The server keeps
 * no compression state per connection: each message is compressed on its
 * own, never referring to earlier ones, which every client can read
 * whether it keeps its window between messages or not.
 *
 * What clients send compressed is inflated by libwebsockets' own
 * permessage-deflate code, which the extension below wraps; the server's
 * size limit applies to the inflated message.
 *
 * Use: put ws_deflate_extensions in the vhost's extensions; accept the
 * offer in LWS_CALLBACK_CONFIRM_EXTENSION_OKAY when
 * ws_deflate_offer_acceptable(); then for each frame ws_deflate_frame()
 * and, when it returns a length, ws_deflate_write() instead of
 * lws_write(). Everything runs on the loop's thread.
 *
 * What it owns: one struct ws_deflate per server: a zlib deflater, the
 * cache of compressed shared frames (cache_slots of them), the buffer of
 * the last frame compressed for one client, and the per-second budget.
 * Nothing per connection.
 *
 * Who calls it: server.c makes it and puts the extension in the vhost;
 * admission.c checks a client's offer; ws.c compresses and writes each
 * frame; metrics.c reads the stats.
 */
#ifndef PUBLISHER_WS_DEFLATE_H
#define PUBLISHER_WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

/* The extension table for the vhost (lws_context_creation_info.extensions):
 * "permessage-deflate", then the terminating entry. */
extern const struct lws_extension ws_deflate_extensions[];

/*
 * Whether a client's Sec-WebSocket-Extensions offer can be taken. Not when
 * it asks the server to compress with a window smaller than 32 KiB
 * (server_max_window_bits below 15): frames are compressed once for every
 * client, with the full window. libwebsockets would accept such an offer
 * without honouring it, so the connection then goes without compression.
 */
bool
ws_deflate_offer_acceptable(const char *offer);

struct ws_deflate_config {
	size_t headroom;	  /* writable bytes kept before each output */
	size_t min_len;		  /* shorter frames go as text */
	size_t solo_bytes_per_s;  /* frames of one client alone, compressed
				   * per second at most (input bytes) */
	unsigned cache_slots;	  /* shared frames kept compressed */
	int level;		  /* zlib level, 1..9 */
};

/* The defaults the server uses, measured with bench_deflate. */
void
ws_deflate_config_default(struct ws_deflate_config *config);

/* NULL when out of memory. */
struct ws_deflate *
ws_deflate_create(const struct ws_deflate_config *config);

void
ws_deflate_destroy(struct ws_deflate *d);

/*
 * The compressed form of a text frame. id names the bytes when other
 * clients get the same ones (engine_client_frame_id()): they are
 * compressed once and kept for the next client. id 0: the frame is this
 * client's alone, compressed if the budget allows.
 *
 * Returns the compressed length with *out pointing at it (headroom writable
 * bytes before; valid until the next call), or 0: send the text as it is
 * (shorter than min_len, over budget, no smaller compressed, out of
 * memory).
 */
size_t
ws_deflate_frame(struct ws_deflate *d, uint64_t id, const char *text,
		 size_t len, int64_t now_us, unsigned char **out);

/*
 * Write a message ws_deflate_frame() compressed, as one text frame marked
 * compressed. buf must have LWS_PRE writable bytes before it. Returns what
 * lws_write() returns.
 */
int
ws_deflate_write(struct lws *wsi, unsigned char *buf, size_t len);

struct ws_deflate_stats {
	uint64_t shared_frames;	  /* shared frames compressed */
	uint64_t shared_reused;	  /* times a compressed shared frame was
				   * taken from the cache */
	uint64_t solo_frames;	  /* frames of one client compressed */
	uint64_t solo_over_budget; /* frames of one client sent as text */
	uint64_t bytes_in;	  /* text bytes compressed */
	uint64_t bytes_out;	  /* what they came to */
};

void
ws_deflate_get_stats(const struct ws_deflate *d, struct ws_deflate_stats *out);

#endif

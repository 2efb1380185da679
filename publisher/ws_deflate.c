/*
 * ws_deflate.c: compress each update frame once for all the clients that
 * take it (see ws_deflate.h).
 *
 * Shared frames sit in a direct-mapped cache by id. Ids grow by one per
 * frame the engine makes, so the latest cache_slots frames never collide;
 * an older frame whose slot was taken is compressed again if a client
 * still asks for it, which costs time, never correctness.
 */
#define _GNU_SOURCE /* strcasestr */
#include "ws_deflate.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

/* The flush a message ends with, which the sender strips and the receiver
 * puts back (RFC 7692, 7.2.1). */
static const unsigned char sync_tail[4] = {0x00, 0x00, 0xff, 0xff};

struct slot {
	uint64_t id; /* 0: empty */
	unsigned char *buf;
	size_t cap;
	size_t len; /* 0: compressing did not pay, send the text */
};

struct ws_deflate {
	struct ws_deflate_config cfg;
	z_stream z;
	bool z_ready;
	struct slot *slots;
	unsigned slot_mask;
	unsigned char *solo;
	size_t solo_cap;
	double solo_tokens;
	int64_t solo_at_us;
	struct ws_deflate_stats stats;
};

void
ws_deflate_config_default(struct ws_deflate_config *config)
{
	memset(config, 0, sizeof *config);
	config->headroom = LWS_PRE;
	/* Below this the frame header and the deflate block cost more than
	 * compressing saves. */
	config->min_len = 256;
	/* 8 MB of text a second: 4 to 9 % of a core at the speed level 1
	 * compresses these frames here, 95 to 200 MB/s by frame size
	 * (bench_deflate). Level 1: higher levels gain 10 to 25 % in size
	 * for twice to three times the time. */
	config->solo_bytes_per_s = 8 * 1024 * 1024;
	config->cache_slots = 256;
	config->level = 1;
}

struct ws_deflate *
ws_deflate_create(const struct ws_deflate_config *config)
{
	struct ws_deflate *d = calloc(1, sizeof *d);
	unsigned slots = 1;

	if (!d)
		return NULL;
	d->cfg = *config;
	while (slots < d->cfg.cache_slots)
		slots <<= 1;
	d->slot_mask = slots - 1;
	d->slots = calloc(slots, sizeof *d->slots);
	/* Raw deflate (negative window bits): no zlib header, as the
	 * extension wants. */
	if (!d->slots)
		goto fail;
	if (deflateInit2(&d->z, d->cfg.level, Z_DEFLATED, -15, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		goto fail;
	d->z_ready = true;
	d->solo_tokens = (double)d->cfg.solo_bytes_per_s;
	return d;
fail:
	ws_deflate_destroy(d);
	return NULL;
}

void
ws_deflate_destroy(struct ws_deflate *d)
{
	unsigned i;

	if (!d)
		return;
	if (d->z_ready)
		deflateEnd(&d->z);

	if (d->slots)
		for (i = 0; i <= d->slot_mask; i++)
			free(d->slots[i].buf);
	free(d->slots);
	free(d->solo);
	free(d);
}

/* Compress text into *buf (grown as needed) after the headroom. Returns the
 * message's length without the sync tail, or 0 when that is not shorter
 * than the text or something failed. */
static size_t
compress_into(struct ws_deflate *d, const char *text, size_t len,
	      unsigned char **buf, size_t *cap)
{
	z_stream *z = &d->z;
	/* A sync flush adds an empty stored block to what deflateBound()
	 * allows for. */
	size_t room = deflateBound(z, len) + 16, need = d->cfg.headroom + room;
	unsigned char *out;
	size_t n;

	if (need > *cap) {
		unsigned char *p = realloc(*buf, need);

		if (!p)
			return 0;
		*buf = p;
		*cap = need;
	}
	out = *buf + d->cfg.headroom;
	if (deflateReset(z) != Z_OK)
		return 0;
	z->next_in = (unsigned char *)(uintptr_t)text;
	z->avail_in = (uInt)len;
	z->next_out = out;
	z->avail_out = (uInt)room;
	if (deflate(z, Z_SYNC_FLUSH) != Z_OK || z->avail_in || !z->avail_out)
		return 0;
	n = room - z->avail_out;
	if (n < sizeof sync_tail ||
	    memcmp(out + n - sizeof sync_tail, sync_tail, sizeof sync_tail))
		return 0;
	n -= sizeof sync_tail;
	d->stats.bytes_in += len;
	d->stats.bytes_out += n;
	return n < len ? n : 0;
}

/* Take len bytes from the budget for frames of one client alone. */
static bool
solo_budget_take(struct ws_deflate *d, size_t len, int64_t now_us)
{
	double rate = (double)d->cfg.solo_bytes_per_s;

	if (now_us > d->solo_at_us) {
		d->solo_tokens += rate * (double)(now_us - d->solo_at_us) / 1e6;
		if (d->solo_tokens > rate)
			d->solo_tokens = rate;
	}
	d->solo_at_us = now_us;
	if (d->solo_tokens < (double)len)
		return false;
	d->solo_tokens -= (double)len;
	return true;
}

size_t
ws_deflate_frame(struct ws_deflate *d, uint64_t id, const char *text,
		 size_t len, int64_t now_us, unsigned char **out)
{
	struct slot *s;
	size_t n;

	if (len < d->cfg.min_len)
		return 0;
	if (!id) {
		if (!solo_budget_take(d, len, now_us)) {
			d->stats.solo_over_budget++;
			return 0;
		}
		n = compress_into(d, text, len, &d->solo, &d->solo_cap);
		d->stats.solo_frames++;
		*out = d->solo + d->cfg.headroom;
		return n;
	}
	s = &d->slots[id & d->slot_mask];
	if (s->id == id) {
		d->stats.shared_reused++;
	} else {
		s->id = id;
		s->len = compress_into(d, text, len, &s->buf, &s->cap);
		d->stats.shared_frames++;
	}
	*out = s->buf + d->cfg.headroom;
	return s->len;
}

void
ws_deflate_get_stats(const struct ws_deflate *d, struct ws_deflate_stats *out)
{
	*out = d->stats;
}

/* ------------------------------------------------------------ extension */

/* The connection whose lws_write() in progress carries compressed bytes. */
static __thread struct lws *compressed_write;

int
ws_deflate_write(struct lws *wsi, unsigned char *buf, size_t len)
{
	int n;

	compressed_write = wsi;
	n = lws_write(wsi, buf, len, LWS_WRITE_TEXT);
	compressed_write = NULL;
	return n;
}

/*
 * libwebsockets' permessage-deflate, less its compressor: it negotiates and
 * inflates what clients send, but its compressor would keep about 100 KB of
 * state per connection and compress every frame once per client. Outbound
 * payloads are left as they are: text, or bytes ws_deflate_write() says are
 * compressed already, whose frame header gets the compressed bit (RSV1)
 * just before it is sent.
 */
static int
extension_callback(struct lws_context *context, const struct lws_extension *ext,
		   struct lws *wsi, enum lws_extension_callback_reasons reason,
		   void *user, void *in, size_t len)
{
	switch (reason) {
	case LWS_EXT_CB_PAYLOAD_TX:
		return 0;
	case LWS_EXT_CB_PACKET_TX_PRESEND: {
		/* in: the frame about to go, header first (NULL when lws only
		 * asks whether anything is left to send). */
		struct lws_tokens *frame = in;

		if (wsi == compressed_write && frame && frame->token &&
		    frame->len > 0) {
			unsigned opcode = frame->token[0] & 0x0f;

			if (opcode == 0x1 || opcode == 0x2)
				frame->token[0] |= 0x40;
		}
		return 0;
	}
	default:
		return lws_extension_callback_pm_deflate(context, ext, wsi,
							 reason, user, in, len);
	}
}

const struct lws_extension ws_deflate_extensions[] = {
	{"permessage-deflate", extension_callback, "permessage-deflate"},
	{NULL, NULL, NULL},
};

bool
ws_deflate_offer_acceptable(const char *offer)
{
	static const char param[] = "server_max_window_bits";
	const char *p = offer;

	while ((p = strcasestr(p, param))) {
		unsigned bits = 0;

		p += sizeof param - 1;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '=')
			continue; /* no value: "up to you" */
		p++;
		while (*p == ' ' || *p == '\t' || *p == '"')
			p++;
		while (*p >= '0' && *p <= '9' && bits < 100)
			bits = bits * 10 + (unsigned)(*p++ - '0');
		if (bits < 15)
			return false;
	}
	return true;
}

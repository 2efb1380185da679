/*
 * engine_encode.c: the JSON of snapshots and deltas, the per-symbol cache of
 * the latest of each, and the frames updates are packed into.
 *
 * Encode once, copy many: a symbol caches the encoding of its latest
 * snapshot and of its latest delta (keyed by `from` and `seq`), so the
 * clients and groups that are in step share one encoding; a frame made for
 * a round is shared whole by the clients that need that round.
 */
#include "engine_private.h"

#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "jsonbuf.h"

static char *
put_u64(char *p, uint64_t v)
{
	return p + format_u64(v, p);
}

static char *
put_i64(char *p, int64_t v)
{
	if (v < 0) {
		*p++ = '-';
		/* Unsigned negation is exact for INT64_MIN as well. */
		return put_u64(p, 0u - (uint64_t)v);
	}
	return put_u64(p, (uint64_t)v);
}

#define PUT_LITERAL(p, s) (memcpy((p), (s), sizeof(s) - 1), (p) + sizeof(s) - 1)

/*
 * Write the update that brings a client holding `from` to the symbol's
 * current seq: a snapshot of every field with a value when from is 0, else a
 * delta of the fields that changed after from, where a field taken away
 * (open/high/low when a trading session begins) is null. ts changes with
 * every tick, so it is always there. out must hold ENCODING_MAX bytes.
 * Returns the length.
 */
static size_t
encode_update(const struct engine *e, const struct symbol *sym, uint64_t from,
              char *out)
{
	const struct symbol_state *st = &sym->st;
	char *p = out;
	int f;

	if (from == 0)
		p = PUT_LITERAL(p, "{\"type\":\"snapshot\",\"symbol\":\"");
	else
		p = PUT_LITERAL(p, "{\"type\":\"delta\",\"symbol\":\"");
	/* Symbol names are [A-Za-z0-9._:/-], nothing JSON must escape. */
	memcpy(p, st->symbol, TICK_SYMBOL_MAX);
	p += sym->name_len;
	*p++ = '"';
	if (from != 0) {
		p = PUT_LITERAL(p, ",\"from\":");
		p = put_u64(p, from);
	}
	p = PUT_LITERAL(p, ",\"seq\":");
	p = put_u64(p, st->seq);
	p = PUT_LITERAL(p, ",\"ts\":");
	p = put_i64(p, st->ts);
	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		bool has = (st->present >> f) & 1u;

		/* A field that never had a value has change seq 0. */
		if (from != 0 ? st->changed_seq[f] <= from : !has)
			continue;
		memcpy(p, e->key[f], KEY_MAX);
		p += e->key_len[f];
		if (has)
			p += decimal_format(st->value[f], p);
		else
			p = PUT_LITERAL(p, "null");
	}
	*p++ = '}';
	return (size_t)(p - out);
}

/* Keep a copy of an encoding in the symbol's cache. Failing to grow the
 * cache only costs a re-encoding later, so it is not an error. */
static void
cache_store(struct enc_cache *ec, const char *enc, size_t len, uint64_t from,
            uint64_t seq)
{
	if (ec->cap < len) {
		/* Grow in powers of two so a symbol whose updates vary in
		 * length settles after a few allocations. */
		size_t cap = ec->cap ? ec->cap : 128;
		char *b;

		while (cap < len)
			cap *= 2;
		b = realloc(ec->buf, cap);
		if (!b) {
			ec->seq = 0;
			return;
		}
		ec->buf = b;
		ec->cap = cap;
	}
	memcpy(ec->buf, enc, len);
	ec->len = len;
	ec->from = from;
	ec->seq = seq;
	ec->used = false;
}

/*
 * The cached bytes when a client or group in step with this one already
 * asked, else a fresh encoding in scratch, which is then cached. *fresh
 * tells the caller to count a new encoding rather than a shared one: it is
 * counted where it is used, not where it is made, so that encodings +
 * encodings_shared == updates_sent.
 */
const char *
engine__update(struct engine *e, struct symbol *sym, uint64_t from,
	       char *scratch, size_t *len, bool *fresh)
{
	struct enc_cache *ec = from == 0 ? &sym->snapshot : &sym->delta;

	if (ec->seq != sym->st.seq || ec->from != from) {
		*len = encode_update(e, sym, from, scratch);
		cache_store(ec, scratch, *len, from, sym->st.seq);
		if (ec->seq == 0) {
			*fresh = true;
			return scratch;
		}
	}
	*fresh = !ec->used;
	ec->used = true;
	*len = ec->len;
	return ec->buf;
}

void
engine__encoding_free(struct symbol *sym)
{
	free(sym->snapshot.buf);
	free(sym->delta.buf);
}

void
engine__encoding_drop(struct symbol *sym)
{
	sym->snapshot.seq = 0;
	sym->delta.seq = 0;
}

/* ------------------------------------------------------------------ frames */

/*
 * A chunk is built one byte in from its start, leaving room for the '[' of
 * a batch: whether it is a batch is only known at its end. A single update
 * is then moved down by one byte, which is cheaper than encoding twice.
 */

static int
frame_reserve(struct frame *f, size_t more)
{
	size_t cap;
	char *b;

	if (f->len + more <= f->cap)
		return 0;
	cap = f->cap ? f->cap : 4096;
	while (cap < f->len + more)
		cap *= 2;
	b = realloc(f->buf, cap);
	if (!b)
		return -1;
	f->buf = b;
	f->cap = cap;
	return 0;
}

/* Close the open chunk: a bare object for one update, else an array. */
static void
chunk_close(struct frame *f)
{
	struct chunk *c;

	if (!f->nchunks)
		return;
	c = &f->chunks[f->nchunks - 1];
	if (c->updates == 1) {
		memmove(f->buf + c->off, f->buf + c->off + 1, c->len - 1);
		c->len -= 1;
		f->len -= 1;
	} else {
		f->buf[c->off] = '[';
		f->buf[c->off + c->len] = ']';
		c->len += 1;
		f->len += 1;
	}
}

static int
chunk_open(struct engine *e, struct frame *f)
{
	struct chunk *c;

	if (f->nchunks == f->chunks_cap) {
		uint32_t cap = f->chunks_cap ? f->chunks_cap * 2 : 4;
		struct chunk *p = realloc(f->chunks, cap * sizeof *p);

		if (!p)
			return -1;
		f->chunks = p;
		f->chunks_cap = cap;
	}
	/* The headroom, the '[' and the closing ']' are room the updates
	 * never use. */
	if (frame_reserve(f, e->headroom + 2 + ENCODING_MAX))
		return -1;
	c = &f->chunks[f->nchunks++];
	memset(c, 0, sizeof *c);
	c->id = ++e->last_chunk_id;
	c->first_up = f->nups;
	f->len += e->headroom;
	c->off = f->len;
	c->len = 1;
	f->len += 1;
	return 0;
}

struct frame *
engine__frame_new(struct engine *e, uint64_t from_round, uint64_t to_round)
{
	struct frame *f = calloc(1, sizeof *f);

	if (!f)
		return NULL;
	f->refs = 1;
	f->from_round = from_round;
	f->to_round = to_round;
	return f;
}

int
engine__frame_add(struct engine *e, struct frame *f, const char *enc,
		  size_t len, bool fresh, uint64_t conflated, uint32_t idx,
		  uint64_t to)
{
	struct chunk *c = f->nchunks ? &f->chunks[f->nchunks - 1] : NULL;

	if (f->failed)
		return -1;
	if (f->nups == f->ups_cap) {
		uint32_t cap = f->ups_cap ? f->ups_cap * 2 : 64;
		struct frame_update *p = realloc(f->ups, cap * sizeof *p);

		if (!p) {
			f->failed = true;
			return -1;
		}
		f->ups = p;
		f->ups_cap = cap;
	}
	/* The chunk keeps room for its ',' and closing ']'. */
	if (!c || c->len + len + (c->updates ? 1 : 0) + 1 > e->frame_cap) {
		chunk_close(f);
		if (chunk_open(e, f)) {
			f->failed = true;
			return -1;
		}
		c = &f->chunks[f->nchunks - 1];
	}
	if (frame_reserve(f, len + 2)) {
		f->failed = true;
		return -1;
	}
	if (c->updates) {
		f->buf[f->len++] = ',';
		c->len++;
	}
	memcpy(f->buf + f->len, enc, len);
	f->len += len;
	c->len += len;
	c->updates++;
	f->ups[f->nups].idx = idx;
	f->ups[f->nups].to = to;
	f->nups++;
	c->fresh += fresh;
	c->conflated += conflated;
	return 0;
}

void
engine__frame_end(struct frame *f)
{
	chunk_close(f);
}

void
engine__frame_unref(struct frame *f)
{
	if (!f || --f->refs > 0)
		return;
	free(f->buf);
	free(f->chunks);
	free(f->ups);
	free(f);
}

/* ------------------------------------------------------ caller's buffer */

void
engine__writer_init(struct frame_writer *w, char *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->pos = 1;
	w->n = 0;
}

bool
engine__writer_add(struct frame_writer *w, const char *enc, size_t len)
{
	/* The room for the closing ']' is kept free all along, so the frame
	 * never exceeds cap. */
	if (w->pos + len + (w->n ? 1 : 0) + 1 > w->cap)
		return false;
	if (w->n)
		w->buf[w->pos++] = ',';
	memcpy(w->buf + w->pos, enc, len);
	w->pos += len;
	w->n++;
	return true;
}

size_t
engine__writer_end(struct frame_writer *w)
{
	if (w->n == 0)
		return 0;
	if (w->n == 1) {
		memmove(w->buf, w->buf + 1, w->pos - 1);
		return w->pos - 1;
	}
	w->buf[0] = '[';
	w->buf[w->pos++] = ']';
	return w->pos;
}

/*
 * engine: symbol states, subscriptions, and the conflated snapshots and
 * deltas each subscriber is owed.
 *
 * The pieces and how they point at each other:
 *
 *  - struct symbol: one per symbol name, allocated on its own so pointers to
 *    it stay valid while the table grows. It sits in a chained hash table
 *    keyed by name, holds the symbol_state, the list of its subscriptions,
 *    a link in the engine's dirty list and the two cached encodings.
 *  - struct sub: one per (client, symbol). It is on three lists at once: the
 *    symbol's subscriber list (for engine_flush), the client's hash chain
 *    (symbol pointer -> sub, for subscribe/unsubscribe) and, while it is
 *    behind, the client's pending list (for engine_client_write).
 *  - struct engine_client: the per-client hash table of subs, the pending
 *    list, and links in the engine's lists of clients, wildcard clients and
 *    clients waiting for their client_ready call.
 *
 * The work is split so that the tick path stays O(1) whatever the number of
 * subscribers: engine_apply_tick only updates the state and marks the symbol
 * dirty; engine_flush walks each dirty symbol's subscribers once per service
 * turn, however many ticks it took; engine_client_write encodes (or copies a
 * cached encoding) only when the socket can take it.
 */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "jsonbuf.h"
#include "tick.h"

#define FIELD_BIT(f) ((uint16_t)(1u << (f)))
#define INPUT_MASK   ((uint16_t)((1u << TICK_FIELD_COUNT) - 1u))
#define STATE_MASK   ((uint16_t)((1u << STATE_FIELD_COUNT) - 1u))

/* A field key as written in an update, `,"last_size":`, padded to a fixed
 * size so that it is copied with one fixed-length memcpy. */
#define KEY_MAX 16

/* The longest text of a u64 or i64 ("-9223372036854775808"). */
#define INT_TEXT_MAX 20

/* The longest update the encoder can write: the longer of the two openings,
 * a full-length symbol, from, seq and ts at their longest, and every field at
 * its longest key and value, then the closing brace. */
#define ENCODING_BOUND                                                         \
	(sizeof("{\"type\":\"snapshot\",\"symbol\":\"") - 1 +                  \
	 TICK_SYMBOL_MAX + sizeof("\",\"from\":") - 1 + INT_TEXT_MAX +         \
	 sizeof(",\"seq\":") - 1 + INT_TEXT_MAX + sizeof(",\"ts\":") - 1 +     \
	 INT_TEXT_MAX + STATE_FIELD_COUNT * (KEY_MAX + DECIMAL_MAX_TEXT) + 1)

/* Scratch space for one encoding. The slack above ENCODING_BOUND lets the
 * encoder copy fixed-size keys and symbol names past the true end. */
#define ENCODING_MAX 1024

_Static_assert(ENCODING_BOUND + KEY_MAX + TICK_SYMBOL_MAX <= ENCODING_MAX,
               "ENCODING_MAX must hold the longest update plus copy slack");
/* One update plus the brackets of a batch always fits in a minimal frame, so
 * engine_client_write always makes progress. */
_Static_assert(ENCODING_MAX + 2 <= ENGINE_MIN_FRAME,
               "a minimal frame must hold the longest update");

#define SYMBOL_BUCKETS_MIN 1024
#define CLIENT_BUCKETS_MIN 8

/* last_sent_us of a subscription that has not been sent anything yet, so
 * max_hz never holds back its first update. */
#define NEVER_SENT INT64_MIN

/* One cached encoding: the bytes of the update from `from` (0 for a
 * snapshot) to `seq`. seq 0 means empty. */
struct enc_cache {
	char *buf;
	size_t len;
	size_t cap;
	uint64_t from;
	uint64_t seq;
	bool used; /* written to some client since it was made */
};

struct sub;

struct symbol {
	struct symbol *hash_next;
	uint64_t hash;
	size_t name_len;
	struct symbol_state st;

	struct sub *subs; /* doubly linked through sym_prev/sym_next */
	size_t nsubs;

	struct symbol *dirty_next;
	bool dirty;

	struct enc_cache snapshot;
	struct enc_cache delta;
};

struct sub {
	struct symbol *sym;
	struct engine_client *client;
	uint64_t sent_seq;    /* the seq the client holds; 0 = nothing */
	int64_t last_sent_us; /* for max_hz; NEVER_SENT before the first */
	struct sub *sym_prev, *sym_next;
	struct sub *pend_prev, *pend_next;
	struct sub *map_next;
	bool needs_snapshot;
	bool pending;
	bool is_explicit; /* named by the client */
	bool by_wildcard; /* brought in by the client's "*" */
};

struct engine_client {
	struct engine *e;
	void *user;

	struct sub **map; /* symbol -> sub, chained, indexed by symbol hash */
	size_t map_mask;
	size_t nsubs;
	size_t nexplicit;

	struct sub *pend_head, *pend_tail;
	size_t npending;

	bool wildcard;
	bool ready_queued;
	bool (*allowed)(const char *symbol, void *ctx);
	void *allowed_ctx;
	int64_t min_interval_us; /* 0 = no max_hz */

	struct engine_client *prev, *next;             /* all clients */
	struct engine_client *wc_prev, *wc_next;       /* wildcard clients */
	struct engine_client *ready_prev, *ready_next; /* owed client_ready */
};

struct engine {
	struct engine_config config;

	struct symbol **buckets;
	size_t bucket_mask;
	size_t nsymbols;      /* in the table, placeholders included */
	size_t nsymbols_data; /* with seq > 0 */

	struct symbol *dirty_head, *dirty_tail;

	struct engine_client *clients;
	struct engine_client *wildcards;
	struct engine_client *ready;
	size_t nclients;

	struct engine_stats stats;

	char key[STATE_FIELD_COUNT][KEY_MAX];
	uint8_t key_len[STATE_FIELD_COUNT];
};

/* ------------------------------------------------------------ symbol table */

/*
 * Hash a symbol name eight bytes at a time. Names are at most 32 bytes, so
 * this is a handful of multiplies; the final mix spreads the bits so that
 * both the engine's table and each client's table can use the low bits.
 */
static uint64_t
hash_name(const char *s, size_t len)
{
	const uint64_t k = 0x9e3779b97f4a7c15ull;
	uint64_t h = k ^ (uint64_t)len, w;

	while (len >= 8) {
		memcpy(&w, s, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
		s += 8;
		len -= 8;
	}
	if (len) {
		w = 0;
		memcpy(&w, s, len);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return h;
}

static struct symbol *
symbol_find(const struct engine *e, const char *name, size_t len, uint64_t hash)
{
	struct symbol *sym = e->buckets[hash & e->bucket_mask];

	for (; sym; sym = sym->hash_next)
		if (sym->hash == hash && sym->name_len == len &&
		    memcmp(sym->st.symbol, name, len) == 0)
			return sym;
	return NULL;
}

/* Double the table. On failure the table stays as it is: lookups still work,
 * chains only get longer. */
static void
symbol_table_grow(struct engine *e)
{
	size_t n = (e->bucket_mask + 1) * 2, i;
	struct symbol **b = calloc(n, sizeof *b);

	if (!b)
		return;
	for (i = 0; i <= e->bucket_mask; i++) {
		struct symbol *sym = e->buckets[i], *next;

		for (; sym; sym = next) {
			next = sym->hash_next;
			sym->hash_next = b[sym->hash & (n - 1)];
			b[sym->hash & (n - 1)] = sym;
		}
	}
	free(e->buckets);
	e->buckets = b;
	e->bucket_mask = n - 1;
}

/* A new symbol with no data (seq 0). The name must be valid already. */
static struct symbol *
symbol_create(struct engine *e, const char *name, size_t len, uint64_t hash)
{
	struct symbol *sym;
	size_t i;

	if (e->nsymbols > e->bucket_mask)
		symbol_table_grow(e);
	sym = calloc(1, sizeof *sym);
	if (!sym)
		return NULL;
	/* calloc leaves the rest of st.symbol zero, which the encoder relies
	 * on when it copies the name with a fixed-size memcpy. */
	memcpy(sym->st.symbol, name, len);
	sym->name_len = len;
	sym->hash = hash;
	i = hash & e->bucket_mask;
	sym->hash_next = e->buckets[i];
	e->buckets[i] = sym;
	e->nsymbols++;
	return sym;
}

static void
symbol_free(struct symbol *sym)
{
	free(sym->snapshot.buf);
	free(sym->delta.buf);
	free(sym);
}

/*
 * A placeholder (subscribed to, never ticked) that nobody subscribes to any
 * more is dropped, so that subscribing to made-up names cannot grow the table
 * for ever. A dirty symbol stays until engine_flush has taken it off the dirty
 * list, which calls this again.
 */
static void
symbol_release_if_unused(struct engine *e, struct symbol *sym)
{
	struct symbol **pp;

	if (sym->st.seq != 0 || sym->nsubs != 0 || sym->dirty)
		return;
	for (pp = &e->buckets[sym->hash & e->bucket_mask]; *pp;
	     pp = &(*pp)->hash_next) {
		if (*pp == sym) {
			*pp = sym->hash_next;
			break;
		}
	}
	e->nsymbols--;
	symbol_free(sym);
}

static void
symbol_mark_dirty(struct engine *e, struct symbol *sym)
{
	if (sym->dirty || sym->nsubs == 0)
		return;
	sym->dirty = true;
	sym->dirty_next = NULL;
	if (e->dirty_tail)
		e->dirty_tail->dirty_next = sym;
	else
		e->dirty_head = sym;
	e->dirty_tail = sym;
}

/* A restored state replaces the history the cached encodings were made
 * from, possibly at the same seq, so they can no longer be trusted. */
static void
symbol_drop_encodings(struct symbol *sym)
{
	sym->snapshot.seq = 0;
	sym->delta.seq = 0;
}

/* ------------------------------------------------------------ client lists */

static void
ready_push(struct engine *e, struct engine_client *c)
{
	if (c->ready_queued)
		return;
	c->ready_queued = true;
	c->ready_prev = NULL;
	c->ready_next = e->ready;
	if (e->ready)
		e->ready->ready_prev = c;
	e->ready = c;
}

static void
ready_remove(struct engine *e, struct engine_client *c)
{
	if (!c->ready_queued)
		return;
	if (c->ready_prev)
		c->ready_prev->ready_next = c->ready_next;
	else
		e->ready = c->ready_next;
	if (c->ready_next)
		c->ready_next->ready_prev = c->ready_prev;
	c->ready_prev = c->ready_next = NULL;
	c->ready_queued = false;
}

static void
wildcard_remove(struct engine *e, struct engine_client *c)
{
	if (!c->wildcard)
		return;
	if (c->wc_prev)
		c->wc_prev->wc_next = c->wc_next;
	else
		e->wildcards = c->wc_next;
	if (c->wc_next)
		c->wc_next->wc_prev = c->wc_prev;
	c->wc_prev = c->wc_next = NULL;
	c->wildcard = false;
}

/* ----------------------------------------------------------- subscriptions */

/* Put s at the tail of its client's pending list, so updates go out oldest
 * pending first. A client that had nothing pending is owed a client_ready
 * call, which engine_flush makes. */
static void
sub_pend(struct engine *e, struct sub *s)
{
	struct engine_client *c = s->client;

	if (s->pending)
		return;
	s->pending = true;
	s->pend_next = NULL;
	s->pend_prev = c->pend_tail;
	if (c->pend_tail)
		c->pend_tail->pend_next = s;
	else
		c->pend_head = s;
	c->pend_tail = s;
	if (c->npending++ == 0)
		ready_push(e, c);
}

static void
sub_unpend(struct sub *s)
{
	struct engine_client *c = s->client;

	if (!s->pending)
		return;
	if (s->pend_prev)
		s->pend_prev->pend_next = s->pend_next;
	else
		c->pend_head = s->pend_next;
	if (s->pend_next)
		s->pend_next->pend_prev = s->pend_prev;
	else
		c->pend_tail = s->pend_prev;
	s->pend_prev = s->pend_next = NULL;
	s->pending = false;
	c->npending--;
}

/* True when the client does not hold its symbol's current state. */
static bool
sub_behind(const struct sub *s)
{
	uint64_t seq = s->sym->st.seq;

	return seq != 0 && (s->needs_snapshot || s->sent_seq != seq);
}

static struct sub *
client_find(const struct engine_client *c, const struct symbol *sym)
{
	struct sub *s = c->map[sym->hash & c->map_mask];

	for (; s; s = s->map_next)
		if (s->sym == sym)
			return s;
	return NULL;
}

/* Double the client's table; on failure it keeps working with longer
 * chains. */
static void
client_map_grow(struct engine_client *c)
{
	size_t n = (c->map_mask + 1) * 2, i;
	struct sub **m = calloc(n, sizeof *m);

	if (!m)
		return;
	for (i = 0; i <= c->map_mask; i++) {
		struct sub *s = c->map[i], *next;

		for (; s; s = next) {
			next = s->map_next;
			s->map_next = m[s->sym->hash & (n - 1)];
			m[s->sym->hash & (n - 1)] = s;
		}
	}
	free(c->map);
	c->map = m;
	c->map_mask = n - 1;
}

/* A new subscription of c to sym that owes a snapshot and is not pending. */
static struct sub *
sub_create(struct engine_client *c, struct symbol *sym)
{
	struct sub *s;
	size_t i;

	if (c->nsubs > c->map_mask)
		client_map_grow(c);
	s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->sym = sym;
	s->client = c;
	s->last_sent_us = NEVER_SENT;
	s->needs_snapshot = true;

	i = sym->hash & c->map_mask;
	s->map_next = c->map[i];
	c->map[i] = s;
	c->nsubs++;

	s->sym_next = sym->subs;
	if (sym->subs)
		sym->subs->sym_prev = s;
	sym->subs = s;
	sym->nsubs++;

	c->e->stats.subscriptions++;
	return s;
}

/* Take s off its symbol's list and free it, but leave the client's table to
 * the caller (client destruction frees the whole table at once). */
static void
sub_free(struct engine *e, struct sub *s)
{
	struct symbol *sym = s->sym;

	sub_unpend(s);
	if (s->sym_prev)
		s->sym_prev->sym_next = s->sym_next;
	else
		sym->subs = s->sym_next;
	if (s->sym_next)
		s->sym_next->sym_prev = s->sym_prev;
	sym->nsubs--;
	if (s->is_explicit)
		s->client->nexplicit--;
	s->client->nsubs--;
	e->stats.subscriptions--;
	free(s);
	symbol_release_if_unused(e, sym);
}

static void
sub_destroy(struct engine *e, struct sub *s)
{
	struct engine_client *c = s->client;
	struct sub **pp = &c->map[s->sym->hash & c->map_mask];

	for (; *pp; pp = &(*pp)->map_next) {
		if (*pp == s) {
			*pp = s->map_next;
			break;
		}
	}
	sub_free(e, s);
}

/*
 * Apply the protocol's resume rules to s: the client says it holds `seq`
 * (when have_seq) and is owed nothing, one delta, or a snapshot.
 */
static void
sub_resume(struct engine *e, struct sub *s, bool have_seq, uint64_t seq)
{
	uint64_t cur = s->sym->st.seq;

	if (cur == 0) {
		/* No data yet: the snapshot comes with the first tick. */
		s->needs_snapshot = true;
		s->sent_seq = 0;
		sub_unpend(s);
		return;
	}
	if (have_seq && seq == cur) {
		s->needs_snapshot = false;
		s->sent_seq = seq;
		sub_unpend(s);
		return;
	}
	if (have_seq && seq > 0 && seq < cur) {
		/* Every field remembers when it last changed, so the delta
		 * from any earlier seq can be made from the state alone. */
		s->needs_snapshot = false;
		s->sent_seq = seq;
	} else {
		s->needs_snapshot = true;
	}
	sub_pend(e, s);
}

static bool
client_allows(const struct engine_client *c, const struct symbol *sym)
{
	return !c->allowed || c->allowed(sym->st.symbol, c->allowed_ctx);
}

/*
 * A symbol just got its first data: every wildcard client whose filter allows
 * it subscribes, owing a snapshot (engine_flush makes it pending). Returns 0,
 * or -1 when a subscription could not be allocated.
 */
static int
symbol_attach_wildcards(struct engine *e, struct symbol *sym)
{
	struct engine_client *c;

	for (c = e->wildcards; c; c = c->wc_next) {
		struct sub *s;

		if (!client_allows(c, sym))
			continue;
		s = client_find(c, sym);
		if (!s) {
			s = sub_create(c, sym);
			if (!s)
				return -1;
		}
		s->by_wildcard = true;
	}
	return 0;
}

/* ---------------------------------------------------------------- encoding */

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
 * delta of the fields that changed after from. ts changes with every tick,
 * so it is always there. out must hold ENCODING_MAX bytes. Returns the length.
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
		if (!((st->present >> f) & 1u))
			continue;
		if (from != 0 && st->changed_seq[f] <= from)
			continue;
		memcpy(p, e->key[f], KEY_MAX);
		p += e->key_len[f];
		p += decimal_format(st->value[f], p);
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
 * The bytes of the update from `from` (0 = snapshot) to the symbol's current
 * seq: the cached ones when a client in step with this one already asked,
 * else a fresh encoding in scratch, which is then cached. *cached is the
 * cache entry holding these bytes, or NULL when they could not be cached.
 */
static const char *
update_encoding(struct engine *e, struct symbol *sym, uint64_t from,
                char *scratch, size_t *len, struct enc_cache **cached)
{
	struct enc_cache *ec = from == 0 ? &sym->snapshot : &sym->delta;

	if (ec->seq == sym->st.seq && ec->from == from) {
		*cached = ec;
		*len = ec->len;
		return ec->buf;
	}
	*len = encode_update(e, sym, from, scratch);
	cache_store(ec, scratch, *len, from, sym->st.seq);
	*cached = ec->seq != 0 ? ec : NULL;
	return scratch;
}

/* Count a written update as a new encoding or a shared one. It is counted
 * when written, not when encoded, because an encoding that did not fit in
 * this frame is cached and goes out in the next one: still one encoding,
 * so that encodings + encodings_shared == updates_sent. */
static void
count_encoding(struct engine *e, struct enc_cache *cached)
{
	if (cached && cached->used) {
		e->stats.encodings_shared++;
		return;
	}
	e->stats.encodings++;
	if (cached)
		cached->used = true;
}

/* ------------------------------------------------------------------ engine */

struct engine *
engine_create(const struct engine_config *config)
{
	struct engine *e = calloc(1, sizeof *e);
	int f;

	if (!e)
		return NULL;
	if (config)
		e->config = *config;
	e->buckets = calloc(SYMBOL_BUCKETS_MIN, sizeof *e->buckets);
	if (!e->buckets) {
		free(e);
		return NULL;
	}
	e->bucket_mask = SYMBOL_BUCKETS_MIN - 1;

	/* The keys are made once so that encoding copies them whole. */
	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		const char *name = tick_field_name((enum tick_field)f);
		size_t n = strlen(name);

		if (n + 4 > KEY_MAX) {
			free(e->buckets);
			free(e);
			return NULL;
		}
		e->key[f][0] = ',';
		e->key[f][1] = '"';
		memcpy(&e->key[f][2], name, n);
		e->key[f][n + 2] = '"';
		e->key[f][n + 3] = ':';
		e->key_len[f] = (uint8_t)(n + 4);
	}
	return e;
}

void
engine_destroy(struct engine *e)
{
	size_t i;

	if (!e)
		return;
	while (e->clients)
		engine_client_destroy(e->clients);
	for (i = 0; i <= e->bucket_mask; i++) {
		struct symbol *sym = e->buckets[i], *next;

		for (; sym; sym = next) {
			next = sym->hash_next;
			symbol_free(sym);
		}
	}
	free(e->buckets);
	free(e);
}

/* Numeric equality, with the common case (same scale) done inline. */
static inline bool
decimal_same(struct decimal a, struct decimal b)
{
	if (a.scale == b.scale)
		return a.mantissa == b.mantissa;
	return decimal_cmp(a, b) == 0;
}

/* Store v in field f at seq, unless it is numerically the stored value: then
 * nothing changed and the stored text (say "189.30") is kept as it was. */
static inline void
field_set(struct symbol_state *st, int f, struct decimal v, uint64_t seq)
{
	uint16_t bit = FIELD_BIT(f);

	if ((st->present & bit) && decimal_same(st->value[f], v))
		return;
	st->value[f] = v;
	st->changed_seq[f] = seq;
	st->present |= bit;
}

uint64_t
engine_apply_tick(struct engine *e, const struct tick *t)
{
	struct symbol *sym;
	struct symbol_state *st;
	struct decimal volume = {0, 0}, trades = {0, 0};
	const struct decimal one = {1, 0};
	bool set_volume = false, sends_volume, has_last;
	uint16_t present = t->present & INPUT_MASK;
	size_t len = strnlen(t->symbol, sizeof t->symbol);
	uint64_t hash, seq;
	int f;

	if (len == 0 || len > TICK_SYMBOL_MAX)
		goto refuse;
	hash = hash_name(t->symbol, len);
	sym = symbol_find(e, t->symbol, len, hash);
	if (!sym) {
		/* Only a name that is not in the table yet needs checking:
		 * every name in it was checked on the way in. */
		if (!tick_symbol_valid(t->symbol, len))
			goto refuse;
		sym = symbol_create(e, t->symbol, len, hash);
		if (!sym)
			goto refuse;
	}
	st = &sym->st;

	if (t->seq != 0) {
		if (t->seq <= st->seq)
			goto refuse_release;
		seq = t->seq;
	} else {
		if (st->seq == UINT64_MAX)
			goto refuse_release;
		seq = st->seq + 1;
	}

	/* Everything that can fail is worked out before the state is touched,
	 * so a refused tick leaves it as it was. */
	sends_volume = st->feed_sends_volume;
	if (present & FIELD_BIT(FIELD_VOLUME)) {
		volume = t->value[FIELD_VOLUME];
		sends_volume = true;
		set_volume = true;
	} else if (!sends_volume && (present & FIELD_BIT(FIELD_LAST_SIZE))) {
		if (st->present & FIELD_BIT(FIELD_VOLUME)) {
			if (decimal_add(st->value[FIELD_VOLUME],
			                t->value[FIELD_LAST_SIZE],
			                &volume) != 0)
				goto refuse_release;
		} else {
			volume = t->value[FIELD_LAST_SIZE];
		}
		set_volume = true;
	}
	has_last = present & FIELD_BIT(FIELD_LAST);
	if (has_last) {
		if (!(st->present & FIELD_BIT(FIELD_TRADES)))
			trades = one;
		else if (decimal_add(st->value[FIELD_TRADES], one, &trades) !=
		         0)
			goto refuse_release;
	}
	if (st->seq == 0 && e->wildcards &&
	    symbol_attach_wildcards(e, sym) != 0)
		goto refuse_release;

	for (f = 0; f < FIELD_VOLUME; f++)
		if (present & FIELD_BIT(f))
			field_set(st, f, t->value[f], seq);
	if (set_volume)
		field_set(st, FIELD_VOLUME, volume, seq);
	if (has_last) {
		struct decimal last = t->value[FIELD_LAST];

		if (!(st->present & FIELD_BIT(FIELD_OPEN)))
			field_set(st, FIELD_OPEN, last, seq);
		if (!(st->present & FIELD_BIT(FIELD_HIGH)) ||
		    decimal_cmp(last, st->value[FIELD_HIGH]) > 0)
			field_set(st, FIELD_HIGH, last, seq);
		if (!(st->present & FIELD_BIT(FIELD_LOW)) ||
		    decimal_cmp(last, st->value[FIELD_LOW]) < 0)
			field_set(st, FIELD_LOW, last, seq);
		field_set(st, FIELD_TRADES, trades, seq);
	}
	st->feed_sends_volume = sends_volume;
	st->ts = t->ts;
	if (st->seq == 0)
		e->nsymbols_data++;
	st->seq = seq;
	e->stats.ticks_applied++;
	symbol_mark_dirty(e, sym);
	return seq;

refuse_release:
	/* A name first seen in this refused tick leaves no trace. */
	symbol_release_if_unused(e, sym);
refuse:
	e->stats.ticks_rejected++;
	return 0;
}

int
engine_restore_symbol(struct engine *e, const struct symbol_state *s)
{
	size_t len = strnlen(s->symbol, sizeof s->symbol);
	struct symbol *sym;
	struct symbol_state *st;
	struct sub *sub;
	uint64_t hash;
	int f;

	if (!tick_symbol_valid(s->symbol, len))
		return -1;
	hash = hash_name(s->symbol, len);
	sym = symbol_find(e, s->symbol, len, hash);
	if (!sym) {
		sym = symbol_create(e, s->symbol, len, hash);
		if (!sym)
			return -1;
	}
	if (sym->st.seq == 0 && s->seq != 0 && e->wildcards &&
	    symbol_attach_wildcards(e, sym) != 0) {
		symbol_release_if_unused(e, sym);
		return -1;
	}

	st = &sym->st;
	if (st->seq != 0)
		e->nsymbols_data--;
	if (s->seq != 0)
		e->nsymbols_data++;
	st->seq = s->seq;
	st->ts = s->ts;
	st->present = s->seq != 0 ? (s->present & STATE_MASK) : 0;
	st->feed_sends_volume = s->feed_sends_volume;
	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		st->value[f] = s->value[f];
		/* A change seq of 0 or beyond the state's seq cannot be
		 * right; taking the state's seq makes every delta carry the
		 * field, which is always correct. */
		st->changed_seq[f] = s->changed_seq[f];
		if (st->changed_seq[f] == 0 || st->changed_seq[f] > st->seq)
			st->changed_seq[f] = st->seq;
	}
	symbol_drop_encodings(sym);

	/* What the subscribers hold came from the history just replaced, so
	 * a delta could not be trusted to apply: each gets a snapshot. */
	for (sub = sym->subs; sub; sub = sub->sym_next) {
		sub->needs_snapshot = true;
		sub->sent_seq = 0;
		if (st->seq == 0)
			sub_unpend(sub);
	}
	if (st->seq != 0)
		symbol_mark_dirty(e, sym);
	else
		symbol_release_if_unused(e, sym);
	return 0;
}

void
engine_set_client_ready(struct engine *e,
                        void (*client_ready)(void *user, void *ctx), void *ctx)
{
	e->config.client_ready = client_ready;
	e->config.ctx = ctx;
}

void
engine_clear(struct engine *e)
{
	size_t i;

	for (i = 0; i <= e->bucket_mask; i++) {
		struct symbol *sym = e->buckets[i], *next;

		for (; sym; sym = next) {
			struct symbol_state empty;

			next = sym->hash_next;
			if (sym->st.seq == 0)
				continue;
			memset(&empty, 0, sizeof empty);
			memcpy(empty.symbol, sym->st.symbol, sizeof empty.symbol);
			engine_restore_symbol(e, &empty);
		}
	}
}

size_t
engine_symbol_count(const struct engine *e)
{
	return e->nsymbols_data;
}

int
engine_get_state(const struct engine *e, const char *symbol,
                 struct symbol_state *out)
{
	size_t len = strnlen(symbol, TICK_SYMBOL_MAX + 1);
	const struct symbol *sym;

	if (len == 0 || len > TICK_SYMBOL_MAX)
		return -1;
	sym = symbol_find(e, symbol, len, hash_name(symbol, len));
	if (!sym || sym->st.seq == 0)
		return -1;
	*out = sym->st;
	return 0;
}

void
engine_foreach_symbol(const struct engine *e,
                      void (*fn)(const struct symbol_state *s, void *ctx),
                      void *ctx)
{
	size_t i;

	for (i = 0; i <= e->bucket_mask; i++) {
		const struct symbol *sym = e->buckets[i];

		for (; sym; sym = sym->hash_next)
			if (sym->st.seq != 0)
				fn(&sym->st, ctx);
	}
}

void
engine_flush(struct engine *e)
{
	struct symbol *sym;
	struct engine_client *c;

	while ((sym = e->dirty_head) != NULL) {
		struct sub *s;

		e->dirty_head = sym->dirty_next;
		sym->dirty_next = NULL;
		sym->dirty = false;
		for (s = sym->subs; s; s = s->sym_next)
			if (!s->pending && sub_behind(s))
				sub_pend(e, s);
		symbol_release_if_unused(e, sym);
	}
	e->dirty_tail = NULL;

	/* Each client is taken off the list before its callback, so a
	 * callback that destroys any client leaves the list consistent. A
	 * client whose pending updates were written since it was queued
	 * (say, right after subscribing) is not woken for nothing. */
	while ((c = e->ready) != NULL) {
		ready_remove(e, c);
		if (c->npending && e->config.client_ready)
			e->config.client_ready(c->user, e->config.ctx);
	}
}

void
engine_get_stats(const struct engine *e, struct engine_stats *out)
{
	*out = e->stats;
	out->symbols = e->nsymbols_data;
	out->clients = e->nclients;
}

/* ----------------------------------------------------------------- clients */

struct engine_client *
engine_client_create(struct engine *e, void *user)
{
	struct engine_client *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->map = calloc(CLIENT_BUCKETS_MIN, sizeof *c->map);
	if (!c->map) {
		free(c);
		return NULL;
	}
	c->map_mask = CLIENT_BUCKETS_MIN - 1;
	c->e = e;
	c->user = user;
	c->next = e->clients;
	if (e->clients)
		e->clients->prev = c;
	e->clients = c;
	e->nclients++;
	return c;
}

void
engine_client_destroy(struct engine_client *c)
{
	struct engine *e;
	size_t i;

	if (!c)
		return;
	e = c->e;
	for (i = 0; i <= c->map_mask; i++) {
		struct sub *s = c->map[i], *next;

		for (; s; s = next) {
			next = s->map_next;
			sub_free(e, s);
		}
	}
	free(c->map);
	ready_remove(e, c);
	wildcard_remove(e, c);
	if (c->prev)
		c->prev->next = c->next;
	else
		e->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	e->nclients--;
	free(c);
}

void
engine_client_set_filter(struct engine_client *c,
                         bool (*allowed)(const char *symbol, void *ctx),
                         void *ctx)
{
	c->allowed = allowed;
	c->allowed_ctx = ctx;
}

void
engine_client_set_max_hz(struct engine_client *c, double max_hz)
{
	/* The comparison is written so that NaN, like 0 or less, means no
	 * cap; a rate above a million per second cannot be told apart from
	 * none with a microsecond clock. */
	if (!(max_hz > 0.0) || max_hz >= 1e6)
		c->min_interval_us = 0;
	else
		c->min_interval_us = (int64_t)(1e6 / max_hz);
}

int
engine_client_subscribe(struct engine_client *c, const char *symbol,
                        bool have_seq, uint64_t seq)
{
	struct engine *e = c->e;
	size_t len = strnlen(symbol, TICK_SYMBOL_MAX + 1);
	struct symbol *sym;
	struct sub *s;
	uint64_t hash;

	if (!tick_symbol_valid(symbol, len))
		return -1;
	hash = hash_name(symbol, len);
	sym = symbol_find(e, symbol, len, hash);
	if (!sym) {
		/* A placeholder: its snapshot comes with its first tick. */
		sym = symbol_create(e, symbol, len, hash);
		if (!sym)
			return -2;
	}
	s = client_find(c, sym);
	if (!s) {
		s = sub_create(c, sym);
		if (!s) {
			symbol_release_if_unused(e, sym);
			return -2;
		}
	}
	if (!s->is_explicit) {
		s->is_explicit = true;
		c->nexplicit++;
	}
	sub_resume(e, s, have_seq, seq);
	return 0;
}

int
engine_client_subscribe_all(struct engine_client *c,
                            bool (*resume)(const char *symbol, uint64_t *seq,
                                           void *ctx),
                            void *ctx)
{
	struct engine *e = c->e;
	size_t i;

	if (!c->wildcard) {
		c->wildcard = true;
		c->wc_prev = NULL;
		c->wc_next = e->wildcards;
		if (e->wildcards)
			e->wildcards->wc_prev = c;
		e->wildcards = c;
	}
	/* Symbols without data are left out: they are picked up with their
	 * first tick, like symbols that do not exist yet. */
	for (i = 0; i <= e->bucket_mask; i++) {
		struct symbol *sym = e->buckets[i];

		for (; sym; sym = sym->hash_next) {
			struct sub *s;
			uint64_t seq = 0;
			bool have_seq;

			if (sym->st.seq == 0 || !client_allows(c, sym))
				continue;
			s = client_find(c, sym);
			if (!s) {
				s = sub_create(c, sym);
				if (!s)
					return -2;
			}
			s->by_wildcard = true;
			have_seq = resume && resume(sym->st.symbol, &seq, ctx);
			sub_resume(e, s, have_seq, seq);
		}
	}
	return 0;
}

void
engine_client_unsubscribe(struct engine_client *c, const char *symbol)
{
	struct engine *e = c->e;
	size_t len = strnlen(symbol, TICK_SYMBOL_MAX + 1), i;
	struct symbol *sym;
	struct sub *s;

	if (strcmp(symbol, "*") == 0) {
		if (!c->wildcard)
			return;
		wildcard_remove(e, c);
		/* Symbols the client also named stay; the rest go. */
		for (i = 0; i <= c->map_mask; i++) {
			struct sub *next;

			for (s = c->map[i]; s; s = next) {
				next = s->map_next;
				if (!s->by_wildcard)
					continue;
				if (s->is_explicit)
					s->by_wildcard = false;
				else
					sub_destroy(e, s);
			}
		}
		return;
	}
	if (len == 0 || len > TICK_SYMBOL_MAX)
		return;
	sym = symbol_find(e, symbol, len, hash_name(symbol, len));
	if (!sym)
		return;
	s = client_find(c, sym);
	if (s)
		sub_destroy(e, s);
}

size_t
engine_client_subscription_count(const struct engine_client *c)
{
	return c->nexplicit + (c->wildcard ? 1 : 0);
}

bool
engine_client_is_subscribed(const struct engine_client *c, const char *symbol)
{
	size_t len = strnlen(symbol, TICK_SYMBOL_MAX + 1);
	const struct symbol *sym;

	if (strcmp(symbol, "*") == 0)
		return c->wildcard;
	if (len == 0 || len > TICK_SYMBOL_MAX)
		return false;
	sym = symbol_find(c->e, symbol, len, hash_name(symbol, len));
	return sym && client_find(c, sym);
}

bool
engine_client_has_pending(const struct engine_client *c)
{
	return c->npending != 0;
}

/*
 * The frame is built one byte in from the start of buf, leaving room for the
 * '[' of a batch: whether it is a batch is only known at the end. A single
 * update is then moved down by one byte, which is cheaper than encoding
 * twice. The room for the closing ']' is kept free all along, so the frame
 * never exceeds cap.
 */
size_t
engine_client_write(struct engine_client *c, int64_t now_us, char *buf,
                    size_t cap, int64_t *next_due_us)
{
	struct engine *e = c->e;
	char scratch[ENCODING_MAX];
	struct sub *s, *next;
	size_t pos = 1, n = 0;
	int64_t next_due = 0;
	bool held = false, full = false;

	for (s = c->pend_head; s; s = next) {
		struct symbol *sym = s->sym;
		uint64_t seq = sym->st.seq, from;
		struct enc_cache *cached;
		const char *enc;
		size_t len;

		next = s->pend_next;
		if (!sub_behind(s)) {
			sub_unpend(s);
			continue;
		}
		if (c->min_interval_us && s->last_sent_us != NEVER_SENT &&
		    now_us - s->last_sent_us < c->min_interval_us) {
			/* Held back: it stays pending and keeps absorbing
			 * ticks, so when it goes it is one merged update. */
			int64_t due = s->last_sent_us + c->min_interval_us;

			if (!held || due < next_due)
				next_due = due;
			held = true;
			continue;
		}
		/* A delta applies only on top of what the client holds; when
		 * it holds nothing usable, it gets the whole state. */
		from = s->needs_snapshot || s->sent_seq > seq ? 0 : s->sent_seq;
		enc = update_encoding(e, sym, from, scratch, &len, &cached);
		if (pos + len + (n ? 1 : 0) + 1 > cap) {
			full = true;
			break;
		}
		if (n)
			buf[pos++] = ',';
		memcpy(buf + pos, enc, len);
		pos += len;
		n++;

		count_encoding(e, cached);
		if (from != 0)
			e->stats.ticks_conflated += seq - from - 1;
		e->stats.updates_sent++;
		s->sent_seq = seq;
		s->needs_snapshot = false;
		s->last_sent_us = now_us;
		sub_unpend(s);
	}

	/* Updates left behind for want of room are due at once. */
	if (next_due_us)
		*next_due_us = full ? now_us : (held ? next_due : 0);
	if (n == 0)
		return 0;
	if (n == 1) {
		memmove(buf, buf + 1, pos - 1);
		return pos - 1;
	}
	buf[0] = '[';
	buf[pos++] = ']';
	return pos;
}

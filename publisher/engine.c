/*
 * engine.c: symbols and their state (see engine.h; engine_private.h has the
 * map of the engine's files).
 *
 * The tick path stays O(1) whatever the number of subscribers:
 * engine_apply_tick only updates the state and marks the symbol dirty;
 * engine_flush hands each dirty symbol to the groups that hold it once per
 * loop turn, however many ticks it took (engine_fanout.c).
 */
#include "engine_private.h"

#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "hash.h"
#include "tick.h"

#define FIELD_BIT(f) ((uint16_t)(1u << (f)))
#define INPUT_MASK   ((uint16_t)((1u << TICK_FIELD_COUNT) - 1u))
#define STATE_MASK   ((uint16_t)((1u << STATE_FIELD_COUNT) - 1u))

#define SYMBOL_BUCKETS_MIN 1024

_Static_assert(ENCODING_BOUND + KEY_MAX + TICK_SYMBOL_MAX <= ENCODING_MAX,
               "ENCODING_MAX must hold the longest update plus copy slack");
/* One update plus the brackets of a batch always fits in a minimal frame, so
 * a client always makes progress. */
_Static_assert(ENCODING_MAX + 2 <= ENGINE_MIN_FRAME,
               "a minimal frame must hold the longest update");

/* ------------------------------------------------------------ symbol table */

struct symbol *
engine__symbol_find(const struct engine *e, const char *name, size_t len)
{
	uint64_t hash = hash_name(name, len);
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

struct symbol *
engine__symbol_get(struct engine *e, const char *name, size_t len)
{
	struct symbol *sym = engine__symbol_find(e, name, len);
	size_t i;

	if (sym)
		return sym;
	/* Only a name that is not in the table yet needs checking: every name
	 * in it was checked on the way in. */
	if (!tick_symbol_valid(name, len))
		return NULL;
	if (e->nsymbols > e->bucket_mask)
		symbol_table_grow(e);
	sym = calloc(1, sizeof *sym);
	if (!sym)
		return NULL;
	/* calloc leaves the rest of st.symbol zero, which the encoder relies
	 * on when it copies the name with a fixed-size memcpy. */
	memcpy(sym->st.symbol, name, len);
	sym->name_len = len;
	sym->hash = hash_name(name, len);
	i = sym->hash & e->bucket_mask;
	sym->hash_next = e->buckets[i];
	e->buckets[i] = sym;
	e->nsymbols++;
	return sym;
}

static void
symbol_free(struct symbol *sym)
{
	engine__encoding_free(sym);
	free(sym);
}

/*
 * A placeholder (subscribed to, never ticked) that no group names any more
 * is dropped, so that subscribing to made-up names cannot grow the table for
 * ever. A dirty symbol stays until engine_flush has taken it off the dirty
 * list, which calls this again.
 */
void
engine__symbol_release_if_unused(struct engine *e, struct symbol *sym)
{
	struct symbol **pp;

	if (sym->st.seq != 0 || sym->nentries != 0 || sym->dirty)
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
	if (sym->dirty || sym->nentries == 0)
		return;
	sym->dirty = true;
	sym->dirty_next = NULL;
	if (e->dirty_tail)
		e->dirty_tail->dirty_next = sym;
	else
		e->dirty_head = sym;
	e->dirty_tail = sym;
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
	e->frame_cap =
	        e->config.frame_cap ? e->config.frame_cap : ENGINE_FRAME_CAP;
	if (e->frame_cap < ENGINE_MIN_FRAME)
		e->frame_cap = ENGINE_MIN_FRAME;
	e->headroom = e->config.frame_headroom;
	e->buckets = calloc(SYMBOL_BUCKETS_MIN, sizeof *e->buckets);
	e->groups = calloc(SYMBOL_BUCKETS_MIN, sizeof *e->groups);
	e->scratch = malloc(e->headroom + e->frame_cap);
	if (!e->buckets || !e->groups || !e->scratch) {
		free(e->buckets);
		free(e->groups);
		free(e->scratch);
		free(e);
		return NULL;
	}
	e->bucket_mask = SYMBOL_BUCKETS_MIN - 1;
	e->group_mask = SYMBOL_BUCKETS_MIN - 1;

	/* The keys are made once so that encoding copies them whole. */
	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		const char *name = tick_field_name((enum tick_field)f);
		size_t n = strlen(name);

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
	engine__client_destroy_all(e);
	for (i = 0; i <= e->bucket_mask; i++) {
		struct symbol *sym = e->buckets[i], *next;

		for (; sym; sym = next) {
			next = sym->hash_next;
			symbol_free(sym);
		}
	}
	free(e->buckets);
	free(e->groups);
	free(e->scratch);
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
	uint64_t seq;
	int f;

	if (len == 0 || len > TICK_SYMBOL_MAX)
		goto refuse;
	sym = engine__symbol_get(e, t->symbol, len);
	if (!sym)
		goto refuse;
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
	    engine__attach_wildcards(e, sym) != 0)
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
	engine__symbol_release_if_unused(e, sym);
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
	int f;

	if (len == 0 || len > TICK_SYMBOL_MAX)
		return -1;
	sym = engine__symbol_get(e, s->symbol, len);
	if (!sym)
		return -1;
	if (sym->st.seq == 0 && s->seq != 0 && e->wildcards &&
	    engine__attach_wildcards(e, sym) != 0) {
		engine__symbol_release_if_unused(e, sym);
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
	/* What the subscribers hold came from the history just replaced,
	 * possibly at the same seq: no delta can be trusted to apply, and no
	 * cached encoding either. Each gets a snapshot. */
	engine__encoding_drop(sym);
	engine__symbol_reset(e, sym);
	if (st->seq != 0)
		symbol_mark_dirty(e, sym);
	else
		engine__symbol_release_if_unused(e, sym);
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
			memcpy(empty.symbol, sym->st.symbol,
			       sizeof empty.symbol);
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
	sym = engine__symbol_find(e, symbol, len);
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
	engine__fanout_flush(e);
}

void
engine_get_stats(const struct engine *e, struct engine_stats *out)
{
	*out = e->stats;
	out->symbols = e->nsymbols_data;
	out->clients = e->nclients;
	out->groups = e->ngroups;
}

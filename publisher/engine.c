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

#include "hash.h"
#include "tick.h"

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

/* Rehash into n buckets (a power of two). On failure the table stays as it
 * is: lookups still work, on chains longer or shorter than they would be. */
static void
symbol_table_resize(struct engine *e, size_t n)
{
	size_t i;
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

/* A new placeholder for a name not in the table; NULL for an invalid name
 * or out of memory. */
static struct symbol *
symbol_insert(struct engine *e, const char *name, size_t len)
{
	struct symbol *sym;
	size_t i;

	/* Only a name that is not in the table yet needs checking: every name
	 * in it was checked on the way in. */
	if (!tick_symbol_valid(name, len))
		return NULL;
	if (e->nsymbols > e->bucket_mask)
		symbol_table_resize(e, (e->bucket_mask + 1) * 2);
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

struct symbol *
engine__symbol_get(struct engine *e, const char *name, size_t len)
{
	struct symbol *sym = engine__symbol_find(e, name, len);

	return sym ? sym : symbol_insert(e, name, len);
}

static void
symbol_free(struct engine *e, struct symbol *sym)
{
	e->stats.bytes_freed +=
	        sizeof *sym + sym->snapshot.cap + sym->delta.cap;
	engine__encoding_free(sym);
	free(sym);
}

/*
 * A placeholder (subscribed to, never ticked) that no group names any more
 * is dropped, so that subscribing to made-up names cannot grow the table for
 * ever. A dirty symbol stays until engine_flush has taken it off the dirty
 * list, which calls this again.
 *
 * The table shrinks too once it is a quarter full, so that the buckets a
 * burst of made-up names grew it to go with them. Growing at full and
 * shrinking at a quarter keeps a table that hovers around one size from
 * being rehashed back and forth. Nothing walks the buckets while a symbol
 * is released (engine_clear() and engine_destroy() free symbols
 * themselves), so rehashing here is safe.
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
	symbol_free(e, sym);
	if (e->bucket_mask + 1 > SYMBOL_BUCKETS_MIN &&
	    e->nsymbols < (e->bucket_mask + 1) / 4)
		symbol_table_resize(e, (e->bucket_mask + 1) / 2);
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
	e->max_symbols = SIZE_MAX;

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
			symbol_free(e, sym);
		}
	}
	free(e->buckets);
	free(e->groups);
	free(e->scratch);
	free(e);
}

void
engine_set_max_symbols(struct engine *e, size_t max)
{
	e->max_symbols = max ? max : SIZE_MAX;
}

bool
engine_refuses_new_symbol(const struct engine *e, const struct tick *t)
{
	size_t len;
	const struct symbol *sym;

	if (e->nsymbols_data < e->max_symbols)
		return false;
	len = strnlen(t->symbol, sizeof t->symbol);
	if (len == 0 || len > TICK_SYMBOL_MAX)
		return false; /* refused, but as an invalid name */
	sym = engine__symbol_find(e, t->symbol, len);
	if (sym)
		return sym->st.seq == 0;
	return tick_symbol_valid(t->symbol, len);
}

uint64_t
engine_apply_tick(struct engine *e, const struct tick *t)
{
	struct symbol *sym;
	size_t len = strnlen(t->symbol, sizeof t->symbol);
	uint64_t seq;
	bool first;

	if (len == 0 || len > TICK_SYMBOL_MAX)
		goto refuse;
	sym = engine__symbol_find(e, t->symbol, len);
	/* The symbol's first data: only within the bound. A name refused
	 * here costs a lookup and nothing else: no placeholder is made for
	 * it. */
	if (!sym || sym->st.seq == 0) {
		if (e->nsymbols_data >= e->max_symbols) {
			if (sym || tick_symbol_valid(t->symbol, len))
				e->stats.symbols_refused++;
			goto refuse;
		}
		if (!sym && !(sym = symbol_insert(e, t->symbol, len)))
			goto refuse;
	}
	first = sym->st.seq == 0;
	/* A symbol's first data brings it into the wildcard groups. That is
	 * done before the fold, so that their entries hold seq 0 and the
	 * tick reaches them as a snapshot. A state with no data never
	 * refuses a tick, so the fold below cannot leave the symbol in a
	 * group for nothing. */
	if (first && e->wildcards && engine__attach_wildcards(e, sym) != 0)
		goto refuse_release;
	seq = symbol_state_apply(&sym->st, t, &e->config.sessions);
	if (!seq)
		goto refuse_release;
	if (first)
		e->nsymbols_data++;
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
	symbol_state_restore(st, s);
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

/* Whether next (restored, so its change seqs are within its seq) goes on
 * from cur: see engine_advance_symbol(). */
static bool
state_goes_on(const struct symbol_state *cur, const struct symbol_state *next)
{
	int f;

	if (cur->seq == 0 || next->seq < cur->seq ||
	    (next->seq == cur->seq && next->ts != cur->ts))
		return false;
	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		/* A field cur has and next lacks was taken away after cur's
		 * seq (a new session), or next is another history. */
		if ((((cur->present & ~next->present) >> f) & 1u) &&
		    next->changed_seq[f] <= cur->seq)
			return false;
		if (!((next->present >> f) & 1u) ||
		    next->changed_seq[f] > cur->seq)
			continue;
		/* Unchanged since at or before cur's seq: cur must have it,
		 * digit for digit (an equal value keeps its text). */
		if (!((cur->present >> f) & 1u) ||
		    cur->value[f].mantissa != next->value[f].mantissa ||
		    cur->value[f].scale != next->value[f].scale)
			return false;
	}
	return true;
}

int
engine_advance_symbol(struct engine *e, const struct symbol_state *s)
{
	size_t len = strnlen(s->symbol, sizeof s->symbol);
	struct symbol *sym;
	struct symbol_state next;

	if (len == 0 || len > TICK_SYMBOL_MAX)
		return -1;
	sym = engine__symbol_find(e, s->symbol, len);
	if (!sym || s->seq == 0)
		return engine_restore_symbol(e, s) ? -1 : 1;
	next = sym->st;
	symbol_state_restore(&next, s);
	if (!state_goes_on(&sym->st, &next))
		return engine_restore_symbol(e, s) ? -1 : 1;
	if (next.seq == sym->st.seq)
		return 0;
	/* As a tick would: the fan-out sends each group's subscribers the
	 * delta from the seq they hold (engine_fanout.c). */
	sym->st = next;
	engine__encoding_drop(sym);
	symbol_mark_dirty(e, sym);
	return 0;
}

void
engine_set_client_ready(struct engine *e,
                        void (*client_ready)(void *user, void *ctx), void *ctx)
{
	e->config.client_ready = client_ready;
	e->config.ctx = ctx;
}

/*
 * One sweep: every state goes empty and every cached encoding with it;
 * a symbol that no group names is freed. The dirty list is emptied first:
 * nothing is owed for a symbol whose data is gone. Then the groups forget
 * the old life (engine__fanout_clear).
 */
void
engine_clear(struct engine *e)
{
	struct symbol *sym;
	size_t i;

	while ((sym = e->dirty_head) != NULL) {
		e->dirty_head = sym->dirty_next;
		sym->dirty_next = NULL;
		sym->dirty = false;
	}
	e->dirty_tail = NULL;
	for (i = 0; i <= e->bucket_mask; i++) {
		struct symbol **pp = &e->buckets[i];

		while ((sym = *pp) != NULL) {
			if (sym->nentries == 0) {
				*pp = sym->hash_next;
				e->nsymbols--;
				symbol_free(e, sym);
				continue;
			}
			symbol_state_clear(&sym->st);
			engine__encoding_drop(sym);
			pp = &sym->hash_next;
		}
	}
	e->nsymbols_data = 0;
	engine__fanout_clear(e);
}

size_t
engine_symbol_count(const struct engine *e)
{
	return e->nsymbols_data;
}

size_t
engine_pending_count(const struct engine *e)
{
	return e->nsymbols - e->nsymbols_data;
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
	out->pending = e->nsymbols - e->nsymbols_data;
	out->clients = e->nclients;
	out->groups = e->ngroups;
}

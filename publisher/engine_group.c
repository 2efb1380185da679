/*
 * engine_group.c: subscription groups (see engine_private.h for the
 * structures, engine.h for the idea).
 *
 * What it owns: the engine's table of groups by key (which symbols, "*" or
 * not, under which entitlement filter), each group's entries (one per
 * symbol of its set, linked from the symbol too), and a group's coming and
 * going: it is made for the first client with its key, takes new symbols
 * when it has "*", and is destroyed with its last client.
 *
 * Who calls it: engine_subscribe.c, when a client's subscriptions change;
 * engine.c, when a symbol gets its first data (the wildcard groups).
 * Rounds, frames and where a client stands in its group are
 * engine_fanout.c's.
 */
#include "engine_private.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"

static int
cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (void *const *)a;
	uintptr_t y = (uintptr_t) * (void *const *)b;

	return x < y ? -1 : x > y;
}

/* Sort and drop duplicates; returns the new count. */
size_t
engine__sort_unique(struct symbol **v, size_t n)
{
	size_t i, k = 0;

	if (n < 2)
		return n;
	qsort(v, n, sizeof *v, cmp_ptr);
	for (i = 0; i < n; i++)
		if (k == 0 || v[k - 1] != v[i])
			v[k++] = v[i];
	return k;
}

bool
engine__contains(struct symbol *const *v, size_t n, const struct symbol *sym)
{
	const void *key = sym;

	return n && bsearch(&key, v, n, sizeof *v, cmp_ptr) != NULL;
}

/* ------------------------------------------------------------------- keys */

uint64_t
engine__key_hash(const struct group_key *k)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ k->wildcard;
	size_t i;

	if (k->filter_key)
		h = hash_mix(h,
		             hash_name(k->filter_key, strlen(k->filter_key)));
	for (i = 0; i < k->nnamed; i++)
		h = hash_mix(h, (uintptr_t)k->named[i]);
	h = hash_mix(h, 0x5bd1e995ull);
	for (i = 0; i < k->nexcluded; i++)
		h = hash_mix(h, (uintptr_t)k->excluded[i]);
	return h;
}

static bool
key_equal(const struct group *g, const struct group_key *k)
{
	if (g->wildcard != k->wildcard || g->nnamed != k->nnamed ||
	    g->nexcluded != k->nexcluded)
		return false;
	if (!g->filter_key != !k->filter_key ||
	    (g->filter_key && strcmp(g->filter_key, k->filter_key)))
		return false;
	return !memcmp(g->named, k->named, k->nnamed * sizeof *k->named) &&
	       !memcmp(g->excluded, k->excluded,
	               k->nexcluded * sizeof *k->excluded);
}

struct group *
engine__group_find(struct engine *e, const struct group_key *k, uint64_t hash)
{
	struct group *g = e->groups[hash & e->group_mask];

	for (; g; g = g->hash_next)
		if (g->key_hash == hash && key_equal(g, k))
			return g;
	return NULL;
}

static void
group_table_grow(struct engine *e)
{
	size_t n = (e->group_mask + 1) * 2, i;
	struct group **b = calloc(n, sizeof *b);

	if (!b)
		return;
	for (i = 0; i <= e->group_mask; i++) {
		struct group *g = e->groups[i], *next;

		for (; g; g = next) {
			next = g->hash_next;
			g->hash_next = b[g->key_hash & (n - 1)];
			b[g->key_hash & (n - 1)] = g;
		}
	}
	free(e->groups);
	e->groups = b;
	e->group_mask = n - 1;
}

/* ---------------------------------------------------------------- entries */

struct entry *
engine__entry_of(const struct group *g, const struct symbol *sym)
{
	struct entry *en;

	for (en = sym->entries; en; en = en->sym_next)
		if (en->g == g)
			return en;
	return NULL;
}

/* A new entry holding the symbol's current seq, as if it had always been
 * in the group (a symbol with no data yet holds 0). */
struct entry *
engine__entry_add(struct engine *e, struct group *g, struct symbol *sym,
                  bool is_explicit)
{
	struct entry *en;

	if (g->nentries == g->entries_cap) {
		uint32_t cap = g->entries_cap ? g->entries_cap * 2 : 8;
		struct entry **p = realloc(g->entries, cap * sizeof *p);

		if (!p)
			return NULL;
		g->entries = p;
		g->entries_cap = cap;
	}
	en = calloc(1, sizeof *en);
	if (!en)
		return NULL;
	en->sym = sym;
	en->g = g;
	en->idx = g->nentries;
	en->is_explicit = is_explicit;
	en->seq = sym->st.seq;
	g->entries[g->nentries++] = en;
	en->sym_next = sym->entries;
	if (sym->entries)
		sym->entries->sym_prev = en;
	sym->entries = en;
	sym->nentries++;
	e->stats.subscriptions += g->nmembers;
	return en;
}

void
engine__entry_unlink(struct engine *e, struct entry *en)
{
	struct symbol *sym = en->sym;

	if (en->sym_prev)
		en->sym_prev->sym_next = en->sym_next;
	else
		sym->entries = en->sym_next;
	if (en->sym_next)
		en->sym_next->sym_prev = en->sym_prev;
	sym->nentries--;
	free(en);
	e->stats.bytes_freed += sizeof *en;
	engine__symbol_release_if_unused(e, sym);
}

/* ----------------------------------------------------------------- groups */

bool
engine__group_takes(const struct group *g, const struct symbol *sym)
{
	if (engine__contains(g->excluded, g->nexcluded, sym))
		return false;
	return !g->allowed || g->allowed(sym->st.symbol, g->allowed_ctx);
}

void
engine__group_destroy(struct engine *e, struct group *g)
{
	struct group **pp;
	uint32_t i;

	for (pp = &e->groups[g->key_hash & e->group_mask]; *pp;
	     pp = &(*pp)->hash_next)
		if (*pp == g) {
			*pp = g->hash_next;
			break;
		}
	if (g->dirty) {
		for (pp = &e->dirty_groups; *pp; pp = &(*pp)->dirty_next)
			if (*pp == g) {
				*pp = g->dirty_next;
				break;
			}
	}
	if (g->wildcard) {
		if (g->wc_prev)
			g->wc_prev->wc_next = g->wc_next;
		else
			e->wildcards = g->wc_next;
		if (g->wc_next)
			g->wc_next->wc_prev = g->wc_prev;
	}
	for (i = 0; i < g->nentries; i++)
		engine__entry_unlink(e, g->entries[i]);
	for (i = 0; i < ROUND_RING; i++) {
		e->stats.bytes_freed += g->ring[i].cap * sizeof(struct change);
		free(g->ring[i].changes);
	}
	for (i = 0; i < g->nframes; i++)
		engine__frame_unref(g->frames[i]);
	e->stats.bytes_freed += sizeof *g +
	                        g->entries_cap * sizeof *g->entries +
	                        (g->nnamed + g->nexcluded) * sizeof *g->named;
	free(g->entries);
	free(g->named);
	free(g->excluded);
	free(g->filter_key);
	e->ngroups--;
	free(g);
}

struct group *
engine__group_create(struct engine *e, const struct group_key *k, uint64_t hash,
                     const struct engine_client *c)
{
	struct group *g = calloc(1, sizeof *g);
	size_t i;

	if (!g)
		return NULL;
	if (e->ngroups > e->group_mask)
		group_table_grow(e);
	g->key_hash = hash;
	g->wildcard = k->wildcard;
	g->allowed = c->allowed;
	g->allowed_ctx = c->allowed_ctx;
	g->named = malloc((k->nnamed + 1) * sizeof *g->named);
	g->excluded = malloc((k->nexcluded + 1) * sizeof *g->excluded);
	g->filter_key = k->filter_key ? strdup(k->filter_key) : NULL;
	/* Linked in first, so that engine__group_destroy() can undo a half-made
	 * group like any other. */
	g->hash_next = e->groups[hash & e->group_mask];
	e->groups[hash & e->group_mask] = g;
	e->ngroups++;
	if (g->wildcard) {
		g->wc_next = e->wildcards;
		if (e->wildcards)
			e->wildcards->wc_prev = g;
		e->wildcards = g;
	}
	if (!g->named || !g->excluded || (k->filter_key && !g->filter_key))
		goto fail;
	memcpy(g->named, k->named, k->nnamed * sizeof *k->named);
	g->nnamed = k->nnamed;
	memcpy(g->excluded, k->excluded, k->nexcluded * sizeof *k->excluded);
	g->nexcluded = k->nexcluded;
	g->kept_from = 1;
	for (i = 0; i < k->nnamed; i++)
		if (!engine__entry_add(e, g, k->named[i], true))
			goto fail;
	if (g->wildcard) {
		for (i = 0; i <= e->bucket_mask; i++) {
			struct symbol *sym = e->buckets[i];

			for (; sym; sym = sym->hash_next)
				if (sym->st.seq &&
				    engine__group_takes(g, sym) &&
				    !engine__contains(g->named, g->nnamed,
				                      sym) &&
				    !engine__entry_add(e, g, sym, false))
					goto fail;
		}
	}
	return g;

fail:
	engine__group_destroy(e, g);
	return NULL;
}

int
engine__attach_wildcards(struct engine *e, struct symbol *sym)
{
	struct group *g;

	for (g = e->wildcards; g; g = g->wc_next) {
		if (!engine__group_takes(g, sym) || engine__entry_of(g, sym))
			continue;
		if (!engine__entry_add(e, g, sym, false))
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- members */

/* Leave the group (destroyed with its last client). */
void
engine__member_leave(struct engine *e, struct engine_client *c)
{
	struct group *g = c->g;

	if (!g)
		return;
	engine__member_drop(c);
	engine__frame_unref(c->done_frame);
	c->done_frame = NULL;
	c->g = NULL;
	c->state = MEMBER_NONE;
	g->nmembers--;
	e->stats.subscriptions -= g->nentries;
	if (!g->nmembers) {
		engine__group_destroy(e, g);
		return;
	}
	/* The wildcard's filter was borrowed from this client: take another
	 * one's, the same by key. */
	if (g->allowed_ctx == c->allowed_ctx) {
		struct engine_client *o = g->idle     ? g->idle
		                          : g->behind ? g->behind
		                                      : g->catching_up;

		if (o)
			g->allowed_ctx = o->allowed_ctx;
	}
}

void
engine__member_join(struct engine *e, struct engine_client *c, struct group *g)
{
	c->g = g;
	g->nmembers++;
	e->stats.subscriptions += g->nentries;
}

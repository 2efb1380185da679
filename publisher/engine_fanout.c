/*
 * engine_fanout.c: subscription groups, rounds, and each client's next
 * frame (see engine.h for the idea, engine_private.h for the structures).
 *
 * A client stands in one of three places in its group:
 *
 *  - idle: it holds the group's latest round. A flush that changes the
 *    group closes a round and makes every idle client pending at once
 *    (behind by one round); pending clients are never walked again.
 *  - behind: it holds round r < R. Its next frame is the merge of rounds
 *    r+1..R: for each entry changed there, one update from the seq it had
 *    before its first change to its current seq. When two or more clients
 *    stand at the same r, that frame is encoded once and they all send it
 *    (R-1 → R is the common case: everyone in step); alone, a client has
 *    it written straight into the caller's buffer. Behind clients are kept
 *    sorted by round, so those at the same r are neighbours.
 *  - catching up: it holds seqs of its own, one per entry (a resume, a
 *    change of subscriptions, a frame too big for one write, or a client
 *    so far behind that its round left the ring). It is brought up to date
 *    entry by entry, as the old engine did for every client, and joins the
 *    idle clients once it holds every entry's latest seq.
 *
 * The ring keeps the rounds some behind client still needs, at most
 * ROUND_RING. To make room, the clients standing at the oldest round start
 * catching up: the seqs they hold are worked out from the ring (for each
 * entry, the `from` of its first change after their round) before it
 * drops that round.
 */
#include "engine_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define GROUP_BUCKETS_MIN 1024
/* last_frame_us before the first frame, so max_hz never holds it back. */
#define NEVER_SENT INT64_MIN

static int
cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (void *const *)a;
	uintptr_t y = (uintptr_t) * (void *const *)b;

	return x < y ? -1 : x > y;
}

/* Sort and drop duplicates; returns the new count. */
static size_t
sort_unique(struct symbol **v, size_t n)
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

static bool
contains(struct symbol *const *v, size_t n, const struct symbol *sym)
{
	const void *key = sym;

	return n && bsearch(&key, v, n, sizeof *v, cmp_ptr) != NULL;
}

/* ------------------------------------------------------------------ keys */

struct group_key {
	bool wildcard;
	const char *filter_key;
	struct symbol **named;
	size_t nnamed;
	struct symbol **excluded;
	size_t nexcluded;
};

static uint64_t
key_hash(const struct group_key *k)
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

static struct group *
group_find(struct engine *e, const struct group_key *k, uint64_t hash)
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

/* --------------------------------------------------------------- entries */

static struct entry *
entry_of(const struct group *g, const struct symbol *sym)
{
	struct entry *en;

	for (en = sym->entries; en; en = en->sym_next)
		if (en->g == g)
			return en;
	return NULL;
}

static void
entry_mark_dirty(struct engine *e, struct entry *en)
{
	struct group *g = en->g;

	if (en->dirty)
		return;
	en->dirty = true;
	en->dirty_next = NULL;
	if (g->dirty_tail)
		g->dirty_tail->dirty_next = en;
	else
		g->dirty_head = en;
	g->dirty_tail = en;
	if (!g->dirty) {
		g->dirty = true;
		g->dirty_next = e->dirty_groups;
		e->dirty_groups = g;
	}
}

/* A new entry holding the symbol's current seq, as if it had always been
 * in the group (a symbol with no data yet holds 0). */
static struct entry *
entry_add(struct engine *e, struct group *g, struct symbol *sym,
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

static void
entry_unlink(struct engine *e, struct entry *en)
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
	engine__symbol_release_if_unused(e, sym);
}

/* ----------------------------------------------------------------- groups */

static bool
group_takes(const struct group *g, const struct symbol *sym)
{
	if (contains(g->excluded, g->nexcluded, sym))
		return false;
	return !g->allowed || g->allowed(sym->st.symbol, g->allowed_ctx);
}

static void
group_destroy(struct engine *e, struct group *g)
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
		entry_unlink(e, g->entries[i]);
	for (i = 0; i < ROUND_RING; i++)
		free(g->ring[i].changes);
	for (i = 0; i < g->nframes; i++)
		engine__frame_unref(g->frames[i]);
	free(g->entries);
	free(g->named);
	free(g->excluded);
	free(g->filter_key);
	e->ngroups--;
	free(g);
}

static struct group *
group_create(struct engine *e, const struct group_key *k, uint64_t hash,
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
	/* Linked in first, so that group_destroy() can undo a half-made
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
		if (!entry_add(e, g, k->named[i], true))
			goto fail;
	if (g->wildcard) {
		for (i = 0; i <= e->bucket_mask; i++) {
			struct symbol *sym = e->buckets[i];

			for (; sym; sym = sym->hash_next)
				if (sym->st.seq && group_takes(g, sym) &&
				    !contains(g->named, g->nnamed, sym) &&
				    !entry_add(e, g, sym, false))
					goto fail;
		}
	}
	return g;

fail:
	group_destroy(e, g);
	return NULL;
}

int
engine__attach_wildcards(struct engine *e, struct symbol *sym)
{
	struct group *g;

	for (g = e->wildcards; g; g = g->wc_next) {
		if (!group_takes(g, sym) || entry_of(g, sym))
			continue;
		if (!entry_add(e, g, sym, false))
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- clients */

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

static struct engine_client **
list_head(struct group *g, enum member_state state)
{
	switch (state) {
	case MEMBER_IDLE:
		return &g->idle;
	case MEMBER_BEHIND:
		return &g->behind;
	default:
		return &g->catching_up;
	}
}

static void
member_unlink(struct engine_client *c)
{
	struct group *g = c->g;

	if (c->prev)
		c->prev->next = c->next;
	else
		*list_head(g, c->state) = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else if (c->state == MEMBER_BEHIND)
		g->behind_tail = c->prev;
	c->prev = c->next = NULL;
}

/* Into the idle or catching-up list (order does not matter there). */
static void
member_push(struct engine_client *c, enum member_state state)
{
	struct engine_client **head = list_head(c->g, state);

	c->state = state;
	c->prev = NULL;
	c->next = *head;
	if (*head)
		(*head)->prev = c;
	*head = c;
}

/* Into the behind list at its place: sorted by round, oldest first. Most
 * clients arrive with the newest round, so the walk is from the tail. */
static void
member_behind(struct engine_client *c, uint64_t round)
{
	struct group *g = c->g;
	struct engine_client *after = g->behind_tail;

	c->state = MEMBER_BEHIND;
	c->round = round;
	while (after && after->round > round)
		after = after->prev;
	c->prev = after;
	c->next = after ? after->next : g->behind;
	if (c->next)
		c->next->prev = c;
	else
		g->behind_tail = c;
	if (after)
		after->next = c;
	else
		g->behind = c;
}

/* Leave the group (destroyed with its last client). */
static void
member_leave(struct engine *e, struct engine_client *c)
{
	struct group *g = c->g;

	if (!g)
		return;
	member_unlink(c);
	engine__frame_unref(c->frame);
	c->frame = NULL;
	engine__frame_unref(c->done_frame);
	c->done_frame = NULL;
	free(c->held);
	c->held = NULL;
	c->held_len = 0;
	c->g = NULL;
	c->state = MEMBER_NONE;
	g->nmembers--;
	e->stats.subscriptions -= g->nentries;
	if (!g->nmembers) {
		group_destroy(e, g);
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

static void
member_join(struct engine *e, struct engine_client *c, struct group *g)
{
	c->g = g;
	g->nmembers++;
	e->stats.subscriptions += g->nentries;
}

/* ----------------------------------------------------------------- rounds */

static struct round *
round_get(struct group *g, uint64_t n)
{
	struct round *rd = &g->ring[n % ROUND_RING];

	return rd->n == n ? rd : NULL;
}

/*
 * The seqs a client holds, one per entry of its group, into a new array of
 * g->nentries (the caller frees it). For a client behind at r: an entry not
 * changed after r holds its seq; one changed after r holds the `from` of its
 * first change after r (0 when its history was replaced since). The sent
 * chunks of a frame under way have moved the entries they carried on.
 */
static uint64_t *
seqs_held(struct engine *e, const struct engine_client *c)
{
	struct group *g = c->g;
	uint64_t *held = calloc(g->nentries ? g->nentries : 1, sizeof *held);
	uint64_t n, stamp = ++e->merge_stamp;
	uint32_t i;

	if (!held)
		return NULL;
	if (c->state == MEMBER_CATCHING_UP) {
		memcpy(held, c->held, c->held_len * sizeof *held);
		return held;
	}
	for (i = 0; i < g->nentries; i++)
		held[i] = g->entries[i]->seq;
	if (c->state != MEMBER_BEHIND)
		return held;
	for (n = c->round + 1; n <= g->round; n++) {
		struct round *rd = round_get(g, n);
		uint32_t k;

		for (k = 0; rd && k < rd->count; k++) {
			struct entry *en = g->entries[rd->changes[k].idx];

			if (en->mark == stamp)
				continue;
			en->mark = stamp;
			held[en->idx] = en->reset_round > c->round
			                        ? 0
			                        : rd->changes[k].from;
		}
	}
	if (c->frame) {
		uint32_t k;

		for (k = 0; k < c->chunk; k++) {
			const struct chunk *ch = &c->frame->chunks[k];
			uint32_t u;

			for (u = 0; u < ch->updates; u++) {
				const struct frame_update *fu =
				        &c->frame->ups[ch->first_up + u];

				held[fu->idx] = fu->to;
			}
		}
	}
	return held;
}

/* The client leaves the group's rhythm and is brought up to date entry by
 * entry from the seqs it holds. Returns 0, or -1 out of memory (it then
 * stays where it is). */
static int
start_catching_up(struct engine *e, struct engine_client *c)
{
	uint64_t *held = seqs_held(e, c);

	if (!held)
		return -1;
	member_unlink(c);
	engine__frame_unref(c->frame);
	c->frame = NULL;
	free(c->held);
	c->held = held;
	c->held_len = c->g->nentries;
	member_push(c, MEMBER_CATCHING_UP);
	e->stats.catch_ups++;
	return 0;
}

/* Forget the rounds no behind client needs; if the ring would still be
 * full with round n, the clients at the oldest round start catching up. */
static void
ring_make_room(struct engine *e, struct group *g, uint64_t n)
{
	for (;;) {
		uint64_t need = g->behind ? g->behind->round + 1 : n;

		while (g->kept_from < need) {
			struct round *rd = round_get(g, g->kept_from);

			if (rd) {
				rd->n = 0;
				rd->count = 0;
			}
			g->kept_from++;
		}
		if (n - g->kept_from < ROUND_RING)
			return;
		/* Those behind at kept_from - 1 need round kept_from. */
		while (g->behind && g->behind->round < g->kept_from) {
			if (start_catching_up(e, g->behind)) {
				/* Out of memory: it loses its place and
				 * gets every symbol afresh. */
				struct engine_client *c = g->behind;

				member_unlink(c);
				engine__frame_unref(c->frame);
				c->frame = NULL;
				free(c->held);
				c->held = NULL;
				c->held_len = 0;
				member_push(c, MEMBER_CATCHING_UP);
			}
		}
	}
}

static int
round_append(struct round *rd, uint32_t idx, uint64_t from)
{
	if (rd->count == rd->cap) {
		uint32_t cap = rd->cap ? rd->cap * 2 : 16;
		struct change *p = realloc(rd->changes, cap * sizeof *p);

		if (!p)
			return -1;
		rd->changes = p;
		rd->cap = cap;
	}
	rd->changes[rd->count].idx = idx;
	rd->changes[rd->count].from = from;
	rd->count++;
	return 0;
}

/* Encode the merge of rounds r+1..g->round (the latest). add() takes each
 * update and returns false to stop. */
struct merge_update {
	struct entry *en;
	const char *enc;
	size_t len;
	bool fresh;
	uint64_t conflated;
};

static void
merge_rounds(struct engine *e, struct group *g, uint64_t r,
             bool (*add)(const struct merge_update *u, void *ctx), void *ctx)
{
	char scratch[ENCODING_MAX];
	uint64_t n, stamp = ++e->merge_stamp;

	for (n = r + 1; n <= g->round; n++) {
		struct round *rd = round_get(g, n);
		uint32_t k;

		for (k = 0; rd && k < rd->count; k++) {
			struct entry *en = g->entries[rd->changes[k].idx];
			struct merge_update u;
			uint64_t from, cur = en->sym->st.seq;

			if (en->mark == stamp)
				continue;
			en->mark = stamp;
			from = en->reset_round > r ? 0 : rd->changes[k].from;
			if (cur == 0 || from == cur)
				continue;
			if (from > cur)
				from = 0;
			u.en = en;
			u.enc = engine__update(e, en->sym, from, scratch,
			                       &u.len, &u.fresh);
			u.conflated = from ? cur - from - 1 : 0;
			if (!add(&u, ctx))
				return;
		}
	}
}

static bool
add_to_frame(const struct merge_update *u, void *ctx)
{
	struct engine *e = ((void **)ctx)[0];
	struct frame *f = ((void **)ctx)[1];

	return engine__frame_add(e, f, u->enc, u->len, u->fresh, u->conflated,
	                         u->en->idx, u->en->sym->st.seq) == 0;
}

/* The frame made already that takes clients at round r to the latest. */
static struct frame *
shared_frame_find(struct group *g, uint64_t r)
{
	uint32_t i;

	for (i = 0; i < g->nframes; i++)
		if (g->frames[i]->from_round == r &&
		    g->frames[i]->to_round == g->round)
			return g->frames[i];
	return NULL;
}

/* Make the frame that takes clients at round r to the latest, to share. */
static struct frame *
shared_frame(struct engine *e, struct group *g, uint64_t r)
{
	struct frame *f = shared_frame_find(g, r);
	void *ctx[2];

	if (f)
		return f;
	if (g->nframes == ROUND_RING)
		return NULL;
	f = engine__frame_new(e, r, g->round);
	if (!f)
		return NULL;
	ctx[0] = e;
	ctx[1] = f;
	merge_rounds(e, g, r, add_to_frame, ctx);
	engine__frame_end(f);
	if (f->failed || !f->nchunks) {
		engine__frame_unref(f);
		return NULL;
	}
	g->frames[g->nframes++] = f;
	return f;
}

/*
 * Turn the group's dirty entries into round n = latest + 1. The idle
 * clients (at n - 1) are now behind by one and pending; when two or more
 * of them wait for this round its frame is encoded now, once. Catching-up
 * clients are woken too: what they owe may have grown.
 */
static void
round_close(struct engine *e, struct group *g)
{
	uint64_t n = g->round + 1;
	struct engine_client *c, *next;
	struct round *rd;
	struct entry *en;
	uint32_t i;
	bool failed = false;

	ring_make_room(e, g, n);
	rd = &g->ring[n % ROUND_RING];
	rd->n = n;
	rd->count = 0;
	while ((en = g->dirty_head) != NULL) {
		uint64_t cur = en->sym->st.seq;

		g->dirty_head = en->dirty_next;
		en->dirty = false;
		if (cur == en->seq)
			continue;
		/* A symbol emptied (a new life of the data) has nothing to
		 * send: its next data comes from 0, as a snapshot. */
		if (cur != 0 && round_append(rd, en->idx, en->seq))
			failed = true;
		en->seq = cur;
		en->changed_round = n;
	}
	g->dirty_tail = NULL;
	if (failed) {
		/* Out of memory for the round: nobody can be told what it
		 * changed, so every client catches up on its own. */
		while (g->behind)
			if (start_catching_up(e, g->behind))
				break;
	}
	if (!rd->count) {
		rd->n = 0;
		return;
	}
	g->round = n;
	e->stats.rounds++;
	if (g->kept_from > n)
		g->kept_from = n;
	/* Frames to an older round are of no more use to newcomers. */
	for (i = 0; i < g->nframes; i++)
		engine__frame_unref(g->frames[i]);
	g->nframes = 0;
	if (g->idle && g->idle->next)
		shared_frame(e, g, n - 1);
	for (c = g->idle; c; c = next) {
		next = c->next;
		member_unlink(c);
		member_behind(c, n - 1);
		ready_push(e, c);
	}
	for (c = g->catching_up; c; c = c->next)
		if (c->stalled) {
			c->stalled = false;
			ready_push(e, c);
		}
}

void
engine__symbol_reset(struct engine *e, struct symbol *sym)
{
	struct entry *en;

	for (en = sym->entries; en; en = en->sym_next) {
		struct engine_client *c;

		en->seq = 0;
		en->reset_round = en->g->round + 1;
		for (c = en->g->catching_up; c; c = c->next)
			if (en->idx < c->held_len)
				c->held[en->idx] = 0;
		if (sym->st.seq)
			entry_mark_dirty(e, en);
	}
}

void
engine__fanout_clear(struct engine *e)
{
	size_t b;

	for (b = 0; b <= e->group_mask; b++) {
		struct group *g;

		for (g = e->groups[b]; g; g = g->hash_next) {
			struct engine_client *c;
			uint32_t i;

			for (i = 0; i < g->nentries; i++) {
				struct entry *en = g->entries[i];

				en->seq = 0;
				en->dirty = false;
				en->reset_round = g->round + 1;
			}
			g->dirty_head = g->dirty_tail = NULL;
			g->dirty = false;
			for (i = 0; i < ROUND_RING; i++) {
				g->ring[i].n = 0;
				g->ring[i].count = 0;
			}
			g->kept_from = g->round + 1;
			for (i = 0; i < g->nframes; i++)
				engine__frame_unref(g->frames[i]);
			g->nframes = 0;
			/* What a client holds is of the old life, and every
			 * entry now holds nothing: the same thing. */
			while ((c = g->behind ? g->behind : g->catching_up)) {
				member_unlink(c);
				engine__frame_unref(c->frame);
				c->frame = NULL;
				free(c->held);
				c->held = NULL;
				c->held_len = 0;
				c->stalled = false;
				c->round = g->round;
				member_push(c, MEMBER_IDLE);
			}
		}
	}
	e->dirty_groups = NULL;
}

void
engine__fanout_flush(struct engine *e)
{
	struct symbol *sym;
	struct group *g;
	struct engine_client *c;

	while ((sym = e->dirty_head) != NULL) {
		struct entry *en;

		e->dirty_head = sym->dirty_next;
		sym->dirty_next = NULL;
		sym->dirty = false;
		for (en = sym->entries; en; en = en->sym_next)
			entry_mark_dirty(e, en);
		engine__symbol_release_if_unused(e, sym);
	}
	e->dirty_tail = NULL;
	while ((g = e->dirty_groups) != NULL) {
		e->dirty_groups = g->dirty_next;
		g->dirty = false;
		round_close(e, g);
	}

	/* Each client is taken off the list before its callback, so a
	 * callback that destroys any client leaves the list consistent. A
	 * client whose pending updates were written since it was queued
	 * (say, right after subscribing) is not woken for nothing. */
	while ((c = e->ready) != NULL) {
		ready_remove(e, c);
		if (engine_client_has_pending(c) && e->config.client_ready)
			e->config.client_ready(c->user, e->config.ctx);
	}
}

/* ------------------------------------------------------------- writing */

static void
count_sent(struct engine *e, uint32_t updates, uint32_t fresh,
           uint64_t conflated)
{
	e->stats.updates_sent += updates;
	e->stats.encodings += fresh;
	e->stats.encodings_shared += updates - fresh;
	e->stats.ticks_conflated += conflated;
}

/* The client holds every entry's latest seq: back to the group's rhythm. */
static void
rejoin(struct engine_client *c)
{
	member_unlink(c);
	free(c->held);
	c->held = NULL;
	c->held_len = 0;
	c->round = c->g->round;
	member_push(c, MEMBER_IDLE);
}

/* Send the next chunk of the frame under way. */
static size_t
frame_next_chunk(struct engine *e, struct engine_client *c, const char **out)
{
	struct frame *f = c->frame;
	struct chunk *ch = &f->chunks[c->chunk++];

	if (ch->sent) {
		count_sent(e, ch->updates, 0, ch->conflated);
		e->stats.frames_shared++;
	} else {
		count_sent(e, ch->updates, ch->fresh, ch->conflated);
		ch->sent = true;
	}
	*out = f->buf + ch->off;
	c->frame_id = ch->id;
	if (c->chunk == f->nchunks) {
		/* Done: the client holds the frame's round. */
		uint64_t to = f->to_round;

		c->frame = NULL;
		member_unlink(c);
		if (to == c->g->round) {
			c->round = to;
			member_push(c, MEMBER_IDLE);
		} else {
			member_behind(c, to);
		}
		/* The bytes must stay valid until the next call: when the
		 * group has let go of the frame already, this client's
		 * reference is the last, so it is dropped then. */
		c->done_frame = f;
	}
	return ch->len;
}

struct direct_ctx {
	struct engine *e;
	struct engine_client *c;
	struct frame_writer w;
	uint64_t *written_idx; /* entries written, for a switch to held[] */
	uint32_t nwritten;
	bool full;
};

static bool
add_direct(const struct merge_update *u, void *ctx)
{
	struct direct_ctx *d = ctx;

	if (!engine__writer_add(&d->w, u->enc, u->len)) {
		d->full = true;
		return false;
	}
	count_sent(d->e, 1, u->fresh, u->conflated);
	d->written_idx[d->nwritten++] = u->en->idx;
	return true;
}

/*
 * A client alone at its round: the merge goes straight into the caller's
 * buffer. When it does not all fit, the client catches up from there on:
 * its seqs are worked out for its round, then moved on for what was
 * written.
 */
static size_t
write_merge_direct(struct engine *e, struct engine_client *c, char *buf)
{
	struct group *g = c->g;
	struct direct_ctx d;
	uint64_t r = c->round;
	uint32_t i;

	d.e = e;
	d.c = c;
	d.nwritten = 0;
	d.full = false;
	d.written_idx =
	        malloc((g->nentries ? g->nentries : 1) * sizeof *d.written_idx);
	if (!d.written_idx)
		return 0;
	engine__writer_init(&d.w, buf, e->frame_cap);
	merge_rounds(e, g, r, add_direct, &d);
	if (!d.full) {
		member_unlink(c);
		c->round = g->round;
		member_push(c, MEMBER_IDLE);
	} else if (start_catching_up(e, c) == 0) {
		for (i = 0; i < d.nwritten; i++)
			c->held[d.written_idx[i]] =
			        g->entries[d.written_idx[i]]->sym->st.seq;
	} else {
		/* Out of memory: nothing was sent after all. */
		d.w.n = 0;
	}
	free(d.written_idx);
	return engine__writer_end(&d.w);
}

/* A catching-up client: every entry whose seq it does not hold, in entry
 * order, as many as fit; back to the rhythm once it holds them all. */
static size_t
write_catching_up(struct engine *e, struct engine_client *c, char *buf)
{
	struct group *g = c->g;
	struct frame_writer w;
	char scratch[ENCODING_MAX];
	bool complete = true;
	uint32_t i;

	engine__writer_init(&w, buf, e->frame_cap);
	for (i = 0; i < g->nentries; i++) {
		struct entry *en = g->entries[i];
		uint64_t cur = en->sym->st.seq;
		uint64_t held = i < c->held_len ? c->held[i] : 0;
		uint64_t from = held > cur ? 0 : held;
		const char *enc;
		size_t len;
		bool fresh;

		if (cur == 0 || held == cur)
			continue;
		enc = engine__update(e, en->sym, from, scratch, &len, &fresh);
		if (!engine__writer_add(&w, enc, len)) {
			complete = false;
			break;
		}
		count_sent(e, 1, fresh, from ? cur - from - 1 : 0);
		if (i >= c->held_len) {
			uint64_t *p = realloc(c->held, g->nentries * sizeof *p);

			if (!p) {
				complete = false;
				break;
			}
			memset(p + c->held_len, 0,
			       (g->nentries - c->held_len) * sizeof *p);
			c->held = p;
			c->held_len = g->nentries;
		}
		c->held[i] = cur;
	}
	/* Rejoining needs the group's latest round to be what it holds: no
	 * change waiting for the next flush, which wakes it again. */
	if (complete && !g->dirty)
		rejoin(c);
	else if (complete)
		c->stalled = true;
	return engine__writer_end(&w);
}

size_t
engine_client_frame(struct engine_client *c, int64_t now_us, char *scratch,
                    const char **out, int64_t *next_due_us)
{
	struct engine *e = c->e;
	struct group *g = c->g;
	char *buf = scratch + e->headroom;
	size_t n = 0;

	if (next_due_us)
		*next_due_us = 0;
	*out = buf;
	c->frame_id = 0;
	engine__frame_unref(c->done_frame);
	c->done_frame = NULL;
	/* Ticks applied and not flushed yet would make what a client takes
	 * newer than its group's latest round: flush first. (The pipeline
	 * always flushes right after applying; this is for other callers.) */
	if (e->dirty_head)
		engine__fanout_flush(e);
	if (c->frame)
		return frame_next_chunk(e, c, out);
	if (!g || c->state == MEMBER_IDLE)
		return 0;
	if (c->min_interval_us && c->last_frame_us != NEVER_SENT &&
	    now_us - c->last_frame_us < c->min_interval_us) {
		/* Held back: what waits keeps absorbing ticks, so when it
		 * goes it is one merged frame. */
		if (next_due_us)
			*next_due_us = c->last_frame_us + c->min_interval_us;
		return 0;
	}
	if (c->state == MEMBER_BEHIND) {
		/* Another client at the same round will want the same frame
		 * (or did: it is kept while it takes them to the latest). */
		bool alone = !(c->prev && c->prev->round == c->round) &&
		             !(c->next && c->next->round == c->round);
		struct frame *f = shared_frame_find(g, c->round);

		if (!f && !alone)
			f = shared_frame(e, g, c->round);

		if (f) {
			f->refs++;
			c->frame = f;
			c->chunk = 0;
			n = frame_next_chunk(e, c, out);
		} else {
			n = write_merge_direct(e, c, buf);
		}
	} else {
		n = write_catching_up(e, c, buf);
	}
	if (n)
		c->last_frame_us = now_us;
	/* More left than one frame holds is due at once. */
	if (next_due_us && engine_client_has_pending(c) && c->min_interval_us &&
	    n == 0)
		*next_due_us = now_us;
	return n;
}

uint64_t
engine_client_frame_id(const struct engine_client *c)
{
	return c->frame_id;
}

size_t
engine_client_write(struct engine_client *c, int64_t now_us, char *buf,
                    size_t cap, int64_t *next_due_us)
{
	const char *out;
	size_t n;

	n = engine_client_frame(c, now_us, c->e->scratch, &out, next_due_us);
	if (n > cap)
		return 0;
	memcpy(buf, out, n);
	return n;
}

/* ------------------------------------------------------------- clients */

struct engine_client *
engine_client_create(struct engine *e, void *user)
{
	struct engine_client *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->e = e;
	c->user = user;
	c->last_frame_us = NEVER_SENT;
	c->all_next = e->clients;
	if (e->clients)
		e->clients->all_prev = c;
	e->clients = c;
	e->nclients++;
	return c;
}

void
engine_client_destroy(struct engine_client *c)
{
	struct engine *e;

	if (!c)
		return;
	e = c->e;
	member_leave(e, c);
	ready_remove(e, c);
	if (c->all_prev)
		c->all_prev->all_next = c->all_next;
	else
		e->clients = c->all_next;
	if (c->all_next)
		c->all_next->all_prev = c->all_prev;
	e->nclients--;
	free(c->filter_key);
	free(c);
}

void
engine__client_destroy_all(struct engine *e)
{
	while (e->clients)
		engine_client_destroy(e->clients);
}

void
engine_client_set_filter(struct engine_client *c,
                         bool (*allowed)(const char *symbol, void *ctx),
                         void *ctx, const char *key)
{
	char own[32];

	c->allowed = allowed;
	c->allowed_ctx = ctx;
	free(c->filter_key);
	c->filter_key = NULL;
	if (!allowed)
		return;
	/* A filter without a key is this client's alone. */
	if (!key) {
		snprintf(own, sizeof own, "@%p", (void *)c);
		key = own;
	}
	c->filter_key = strdup(key);
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

/* ------------------------------------------------------ subscribing */

/* What a change of subscriptions asks for. */
struct regroup {
	struct group_key key;
	/* symbols named in the request: the resume rules apply to them */
	struct symbol **asked;
	size_t nasked;
	bool asked_all; /* "*" in a subscribe: the rules apply to all */
	engine_resume_fn resume;
	void *resume_ctx;
};

/* The resume rules: what the client is taken to hold of sym. */
static uint64_t
resume_held(const struct regroup *rg, const struct symbol *sym)
{
	uint64_t seq = 0, cur = sym->st.seq;

	if (!cur || !rg->resume ||
	    !rg->resume(sym->st.symbol, &seq, rg->resume_ctx))
		return 0;
	/* Same seq: nothing; an older one: a delta from it; a newer one
	 * (another life of the data): a snapshot. */
	return seq > 0 && seq <= cur ? seq : 0;
}

/* The client now holds held[] (one per entry of its group; taken): it
 * catches up from there, or is idle at once when it holds everything. */
static void
settle(struct engine *e, struct engine_client *c, uint64_t *held)
{
	struct group *g = c->g;
	bool pending = false;
	uint32_t i;

	for (i = 0; i < g->nentries; i++) {
		uint64_t cur = g->entries[i]->sym->st.seq;

		if (cur && held[i] != cur)
			pending = true;
	}
	c->held = held;
	c->held_len = g->nentries;
	member_push(c, MEMBER_CATCHING_UP);
	if (!pending && !g->dirty)
		rejoin(c);
	else
		ready_push(e, c);
}

static void
dirty_list_remove(struct group *g, struct entry *en)
{
	struct entry **pp, *prev = NULL;

	for (pp = &g->dirty_head; *pp; prev = *pp, pp = &(*pp)->dirty_next)
		if (*pp == en) {
			*pp = en->dirty_next;
			if (g->dirty_tail == en)
				g->dirty_tail = prev;
			return;
		}
}

static int
set_copy(struct symbol ***dst, size_t *ndst, struct symbol *const *src,
         size_t n)
{
	struct symbol **p = realloc(*dst, (n + 1) * sizeof *p);

	if (!p)
		return -1;
	memcpy(p, src, n * sizeof *p);
	*dst = p;
	*ndst = n;
	return 0;
}

/*
 * A client alone in its group, changing its set to one no other group has:
 * the group changes with it, entry by entry, instead of a new group being
 * built whole. So a client that subscribes one symbol at a time pays per
 * step for the symbols it changes (and a copy of a pointer per symbol it
 * holds), not for an allocation per symbol it holds. The wildcard flag and
 * the filter stay the same, and "*" is not asked for again (that takes
 * back every exclusion: a new group is simpler).
 */
static int
regroup_in_place(struct engine *e, struct engine_client *c, struct regroup *rg,
                 uint64_t hash)
{
	struct group *g = c->g, **pp;
	uint64_t *held = seqs_held(e, c), *p;
	uint32_t i, k;

	if (!held)
		return -2;
	/* Room for every entry the change may add. */
	p = realloc(held,
	            (g->nentries + rg->key.nnamed + rg->nasked + g->nexcluded +
	             1) * sizeof *held);
	if (!p) {
		free(held);
		return -2;
	}
	held = p;
	if (set_copy(&g->named, &g->nnamed, rg->key.named, rg->key.nnamed) ||
	    set_copy(&g->excluded, &g->nexcluded, rg->key.excluded,
	             rg->key.nexcluded)) {
		/* The key is half changed: give up the group's identity by
		 * leaving it (nothing else refers to it). */
		free(held);
		member_leave(e, c);
		return -2;
	}
	/* Symbols that leave the set go; the others keep their order. */
	for (i = 0, k = 0; i < g->nentries; i++) {
		struct entry *en = g->entries[i];
		bool named = contains(g->named, g->nnamed, en->sym);

		if (!named && !(g->wildcard && en->sym->st.seq &&
		                group_takes(g, en->sym))) {
			if (en->dirty)
				dirty_list_remove(g, en);
			e->stats.subscriptions -= g->nmembers;
			entry_unlink(e, en);
			continue;
		}
		en->is_explicit = named;
		en->idx = k;
		g->entries[k] = en;
		held[k++] = held[i];
	}
	g->nentries = k;
	/* Symbols that come in: named ones, and for the wildcard those no
	 * longer excluded. */
	for (i = 0; i < g->nnamed; i++)
		if (!entry_of(g, g->named[i])) {
			if (!entry_add(e, g, g->named[i], true))
				goto oom;
			held[g->nentries - 1] = 0;
		}
	if (g->wildcard) {
		for (i = 0; i < rg->nasked; i++) {
			struct symbol *sym = rg->asked[i];

			if (sym->st.seq && group_takes(g, sym) &&
			    !entry_of(g, sym)) {
				if (!entry_add(e, g, sym, false))
					goto oom;
				held[g->nentries - 1] = 0;
			}
		}
	}
	for (i = 0; i < g->nentries; i++)
		if (rg->asked_all ||
		    contains(rg->asked, rg->nasked, g->entries[i]->sym))
			held[i] = resume_held(rg, g->entries[i]->sym);
	/* Its new place in the table. */
	for (pp = &e->groups[g->key_hash & e->group_mask]; *pp;
	     pp = &(*pp)->hash_next)
		if (*pp == g) {
			*pp = g->hash_next;
			break;
		}
	g->key_hash = hash;
	g->hash_next = e->groups[hash & e->group_mask];
	e->groups[hash & e->group_mask] = g;
	/* Its rounds and frames were made for the old set: the only client
	 * now holds seqs of its own. */
	for (i = 0; i < ROUND_RING; i++) {
		g->ring[i].n = 0;
		g->ring[i].count = 0;
	}
	g->kept_from = g->round + 1;
	for (i = 0; i < g->nframes; i++)
		engine__frame_unref(g->frames[i]);
	g->nframes = 0;
	member_unlink(c);
	engine__frame_unref(c->frame);
	c->frame = NULL;
	free(c->held);
	settle(e, c, held);
	return 0;

oom:
	/* The entries added so far are right for the new key; the client
	 * holds nothing of the ones that failed: it leaves. */
	free(held);
	member_leave(e, c);
	return -2;
}

/*
 * Move the client to the group of rg->key (found or made), holding, for
 * each of its symbols, what it held before, or what the resume rules say
 * for the symbols asked for. Returns 0, or -2 out of memory (nothing
 * changed).
 */
static int
regroup(struct engine *e, struct engine_client *c, struct regroup *rg)
{
	struct group *old = c->g, *g;
	uint64_t *old_held = NULL, *held;
	uint64_t hash;
	uint32_t i;

	if (!rg->key.wildcard && !rg->key.nnamed) {
		member_leave(e, c);
		return 0;
	}
	hash = key_hash(&rg->key);
	g = group_find(e, &rg->key, hash);
	if (!g && old && old->nmembers == 1 &&
	    old->wildcard == rg->key.wildcard && !rg->asked_all)
		return regroup_in_place(e, c, rg, hash);
	if (!g && !(g = group_create(e, &rg->key, hash, c)))
		return -2;
	if (old && !(old_held = seqs_held(e, c))) {
		if (!g->nmembers)
			group_destroy(e, g);
		return -2;
	}
	held = calloc(g->nentries ? g->nentries : 1, sizeof *held);
	if (!held) {
		free(old_held);
		if (!g->nmembers)
			group_destroy(e, g);
		return -2;
	}
	for (i = 0; i < g->nentries; i++) {
		struct symbol *sym = g->entries[i]->sym;
		struct entry *was;

		if (rg->asked_all || contains(rg->asked, rg->nasked, sym))
			held[i] = resume_held(rg, sym);
		else if (old && (was = entry_of(old, sym)) != NULL)
			held[i] = old_held[was->idx];
	}
	free(old_held);
	if (old == g) {
		/* The same set again (a resume): only what it holds changes. */
		member_unlink(c);
		engine__frame_unref(c->frame);
		c->frame = NULL;
		free(c->held);
	} else {
		/* Join the new group before leaving the old one, so that a
		 * placeholder both name is not released in between. */
		member_join(e, c, g);
		if (old) {
			c->g = old;
			member_leave(e, c);
			c->g = g;
		}
	}
	settle(e, c, held);
	return 0;
}

/* The client's current key, copied into rg with room for `more` names. */
static int
key_from_client(const struct engine_client *c, struct regroup *rg, size_t more)
{
	const struct group *g = c->g;
	size_t nn = g ? g->nnamed : 0, ne = g ? g->nexcluded : 0;

	memset(rg, 0, sizeof *rg);
	rg->key.filter_key = c->filter_key;
	rg->key.wildcard = g && g->wildcard;
	rg->key.named = malloc((nn + more + 1) * sizeof *rg->key.named);
	rg->key.excluded = malloc((ne + more + 1) * sizeof *rg->key.excluded);
	rg->asked = malloc((more + 1) * sizeof *rg->asked);
	if (!rg->key.named || !rg->key.excluded || !rg->asked)
		return -1;
	if (nn)
		memcpy(rg->key.named, g->named, nn * sizeof *g->named);
	if (ne)
		memcpy(rg->key.excluded, g->excluded, ne * sizeof *g->excluded);
	rg->key.nnamed = nn;
	rg->key.nexcluded = ne;
	return 0;
}

static void
regroup_free(struct engine *e, struct regroup *rg, bool release)
{
	size_t i;

	/* Placeholders made for this request that nothing names. */
	for (i = 0; release && i < rg->nasked; i++)
		engine__symbol_release_if_unused(e, rg->asked[i]);
	free(rg->key.named);
	free(rg->key.excluded);
	free(rg->asked);
}

/* Remove the symbols of `drop` (sorted) from v; returns the new count. */
static size_t
remove_all(struct symbol **v, size_t n, struct symbol *const *drop,
           size_t ndrop)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		if (!contains(drop, ndrop, v[i]))
			v[k++] = v[i];
	return k;
}

int
engine_client_subscribe_many(struct engine_client *c,
                             const char (*symbols)[TICK_SYMBOL_MAX + 1],
                             size_t n, engine_resume_fn resume, void *ctx)
{
	struct engine *e = c->e;
	struct regroup rg;
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		size_t len = strnlen(symbols[i], TICK_SYMBOL_MAX + 1);

		if (strcmp(symbols[i], "*") &&
		    !tick_symbol_valid(symbols[i], len))
			return -1;
	}
	if (key_from_client(c, &rg, n)) {
		regroup_free(e, &rg, false);
		return -2;
	}
	rg.resume = resume;
	rg.resume_ctx = ctx;
	for (i = 0; i < n; i++) {
		struct symbol *sym;

		if (!strcmp(symbols[i], "*")) {
			rg.key.wildcard = true;
			rg.asked_all = true;
			continue;
		}
		/* A placeholder for a name with no data: its snapshot comes
		 * with its first tick. */
		sym = engine__symbol_get(e, symbols[i],
		                         strnlen(symbols[i], TICK_SYMBOL_MAX));
		if (!sym) {
			regroup_free(e, &rg, true);
			return -2;
		}
		rg.asked[rg.nasked++] = sym;
		rg.key.named[rg.key.nnamed++] = sym;
	}
	rg.nasked = sort_unique(rg.asked, rg.nasked);
	rg.key.nnamed = sort_unique(rg.key.named, rg.key.nnamed);
	/* Subscribing to a name, or to "*" again, takes back an exclusion. */
	if (rg.asked_all)
		rg.key.nexcluded = 0;
	else
		rg.key.nexcluded = remove_all(rg.key.excluded, rg.key.nexcluded,
		                              rg.asked, rg.nasked);
	rc = regroup(e, c, &rg);
	regroup_free(e, &rg, rc != 0);
	return rc;
}

struct one_resume {
	const char *symbol;
	uint64_t seq;
};

static bool
resume_one(const char *symbol, uint64_t *seq, void *ctx)
{
	const struct one_resume *r = ctx;

	if (strcmp(symbol, r->symbol))
		return false;
	*seq = r->seq;
	return true;
}

int
engine_client_subscribe(struct engine_client *c, const char *symbol,
                        bool have_seq, uint64_t seq)
{
	char name[1][TICK_SYMBOL_MAX + 1];
	size_t len = strnlen(symbol, TICK_SYMBOL_MAX + 1);
	struct one_resume r = {name[0], seq};

	if (!strcmp(symbol, "*") || !tick_symbol_valid(symbol, len))
		return -1;
	memcpy(name[0], symbol, len);
	name[0][len] = '\0';
	return engine_client_subscribe_many(
	        c, (const char(*)[TICK_SYMBOL_MAX + 1]) name, 1,
	        have_seq ? resume_one : NULL, &r);
}

int
engine_client_subscribe_all(struct engine_client *c, engine_resume_fn resume,
                            void *ctx)
{
	static const char all[1][TICK_SYMBOL_MAX + 1] = {"*"};

	return engine_client_subscribe_many(c, all, 1, resume, ctx);
}

int
engine_client_unsubscribe_many(struct engine_client *c,
                               const char (*symbols)[TICK_SYMBOL_MAX + 1],
                               size_t n)
{
	struct engine *e = c->e;
	struct regroup rg;
	size_t i, k = 0;
	bool all = false;
	int rc;

	if (!c->g)
		return 0;
	if (key_from_client(c, &rg, n)) {
		regroup_free(e, &rg, false);
		return -2;
	}
	for (i = 0; i < n; i++) {
		struct symbol *sym;

		if (!strcmp(symbols[i], "*")) {
			all = true;
			continue;
		}
		sym = engine__symbol_find(
		        e, symbols[i],
		        strnlen(symbols[i], TICK_SYMBOL_MAX + 1));
		if (sym && entry_of(c->g, sym))
			rg.asked[k++] = sym;
	}
	rg.nasked = sort_unique(rg.asked, k);
	rg.key.nnamed =
	        remove_all(rg.key.named, rg.key.nnamed, rg.asked, rg.nasked);
	if (all) {
		/* The wildcard goes, and the symbols it alone brought. */
		rg.key.wildcard = false;
		rg.key.nexcluded = 0;
	} else if (rg.key.wildcard) {
		/* So that "*" does not bring them back. */
		for (i = 0; i < rg.nasked; i++)
			rg.key.excluded[rg.key.nexcluded++] = rg.asked[i];
		rg.key.nexcluded =
		        sort_unique(rg.key.excluded, rg.key.nexcluded);
	}
	/* Nothing asked for is subscribed again. */
	rg.nasked = 0;
	rc = regroup(e, c, &rg);
	regroup_free(e, &rg, false);
	return rc;
}

int
engine_client_unsubscribe(struct engine_client *c, const char *symbol)
{
	char name[1][TICK_SYMBOL_MAX + 1];
	size_t len = strnlen(symbol, TICK_SYMBOL_MAX + 1);

	if (len == 0 || len > TICK_SYMBOL_MAX)
		return 0;
	memcpy(name[0], symbol, len);
	name[0][len] = '\0';
	return engine_client_unsubscribe_many(
	        c, (const char(*)[TICK_SYMBOL_MAX + 1]) name, 1);
}

size_t
engine_client_subscription_count(const struct engine_client *c)
{
	return c->g ? c->g->nnamed + (c->g->wildcard ? 1 : 0) : 0;
}

bool
engine_client_is_subscribed(const struct engine_client *c, const char *symbol)
{
	const struct symbol *sym;

	if (!c->g)
		return false;
	if (!strcmp(symbol, "*"))
		return c->g->wildcard;
	sym = engine__symbol_find(c->e, symbol,
	                          strnlen(symbol, TICK_SYMBOL_MAX + 1));
	return sym && entry_of(c->g, sym);
}

bool
engine_client_has_pending(const struct engine_client *c)
{
	return c->frame || c->state == MEMBER_BEHIND ||
	       c->state == MEMBER_CATCHING_UP;
}

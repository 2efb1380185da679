/*
 * engine_subscribe.c: clients, and what they subscribe to (see engine.h
 * for the rules: resume, "*", exclusions, entitlement filters).
 *
 * What it owns: the engine's clients, their filters and rate caps, and
 * changes of subscriptions. A client subscribed to anything belongs to the
 * group of exactly its set (engine_group.c); a change moves it to the group
 * of its new set, or changes its group in place when it is the only
 * member, and leaves it holding, per symbol, what it held before or what
 * the resume rules say, to catch up from there (engine_fanout.c).
 *
 * Who calls it: the session (each client's subscribe and unsubscribe
 * requests), engine_destroy() for the clients left.
 */
#include "engine_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- clients */

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
	engine__member_leave(e, c);
	engine__ready_remove(e, c);
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

/* ------------------------------------------------------------ subscribing */

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
	engine__member_push(c, MEMBER_CATCHING_UP);
	if (!pending && !g->dirty)
		engine__rejoin(c);
	else
		engine__ready_push(e, c);
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
	uint64_t *held = engine__seqs_held(e, c), *p;
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
		engine__member_leave(e, c);
		return -2;
	}
	/* Symbols that leave the set go; the others keep their order. */
	for (i = 0, k = 0; i < g->nentries; i++) {
		struct entry *en = g->entries[i];
		bool named = engine__contains(g->named, g->nnamed, en->sym);

		if (!named && !(g->wildcard && en->sym->st.seq &&
		                engine__group_takes(g, en->sym))) {
			if (en->dirty)
				dirty_list_remove(g, en);
			e->stats.subscriptions -= g->nmembers;
			engine__entry_unlink(e, en);
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
		if (!engine__entry_of(g, g->named[i])) {
			if (!engine__entry_add(e, g, g->named[i], true))
				goto oom;
			held[g->nentries - 1] = 0;
		}
	if (g->wildcard) {
		for (i = 0; i < rg->nasked; i++) {
			struct symbol *sym = rg->asked[i];

			if (sym->st.seq && engine__group_takes(g, sym) &&
			    !engine__entry_of(g, sym)) {
				if (!engine__entry_add(e, g, sym, false))
					goto oom;
				held[g->nentries - 1] = 0;
			}
		}
	}
	for (i = 0; i < g->nentries; i++)
		if (rg->asked_all ||
		    engine__contains(rg->asked, rg->nasked, g->entries[i]->sym))
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
	engine__rounds_forget(g);
	engine__member_drop(c);
	settle(e, c, held);
	return 0;

oom:
	/* The entries added so far are right for the new key; the client
	 * holds nothing of the ones that failed: it leaves. */
	free(held);
	engine__member_leave(e, c);
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
		engine__member_leave(e, c);
		return 0;
	}
	hash = engine__key_hash(&rg->key);
	g = engine__group_find(e, &rg->key, hash);
	if (!g && old && old->nmembers == 1 &&
	    old->wildcard == rg->key.wildcard && !rg->asked_all)
		return regroup_in_place(e, c, rg, hash);
	if (!g && !(g = engine__group_create(e, &rg->key, hash, c)))
		return -2;
	if (old && !(old_held = engine__seqs_held(e, c))) {
		if (!g->nmembers)
			engine__group_destroy(e, g);
		return -2;
	}
	held = calloc(g->nentries ? g->nentries : 1, sizeof *held);
	if (!held) {
		free(old_held);
		if (!g->nmembers)
			engine__group_destroy(e, g);
		return -2;
	}
	for (i = 0; i < g->nentries; i++) {
		struct symbol *sym = g->entries[i]->sym;
		struct entry *was;

		if (rg->asked_all ||
		    engine__contains(rg->asked, rg->nasked, sym))
			held[i] = resume_held(rg, sym);
		else if (old && (was = engine__entry_of(old, sym)) != NULL)
			held[i] = old_held[was->idx];
	}
	free(old_held);
	if (old == g) {
		/* The same set again (a resume): only what it holds changes. */
		engine__member_unlink(c);
		engine__frame_unref(c->frame);
		c->frame = NULL;
		free(c->held);
	} else {
		/* Join the new group before leaving the old one, so that a
		 * placeholder both name is not released in between. */
		engine__member_join(e, c, g);
		if (old) {
			c->g = old;
			engine__member_leave(e, c);
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
		if (!engine__contains(drop, ndrop, v[i]))
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
	rg.nasked = engine__sort_unique(rg.asked, rg.nasked);
	rg.key.nnamed = engine__sort_unique(rg.key.named, rg.key.nnamed);
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
		if (sym && engine__entry_of(c->g, sym))
			rg.asked[k++] = sym;
	}
	rg.nasked = engine__sort_unique(rg.asked, k);
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
		        engine__sort_unique(rg.key.excluded, rg.key.nexcluded);
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

size_t
engine_client_pending_count(const struct engine_client *c)
{
	size_t i, n = 0;

	for (i = 0; c->g && i < c->g->nnamed; i++)
		if (c->g->named[i]->st.seq == 0)
			n++;
	return n;
}

/* A name the client holds: named, or brought by its wildcard. The named
 * ones are found by a binary search of the group's key, so that a client
 * holding thousands of names pays a few steps per name asked about. */
static bool
client_holds(const struct engine_client *c, const struct symbol *sym)
{
	if (engine__contains(c->g->named, c->g->nnamed, sym))
		return true;
	return c->g->wildcard && engine__entry_of(c->g, sym) != NULL;
}

void
engine_client_subscribe_cost(const struct engine_client *c,
                             const char (*symbols)[TICK_SYMBOL_MAX + 1],
                             size_t n, struct engine_subscribe_cost *out)
{
	size_t i;

	memset(out, 0, sizeof *out);
	for (i = 0; i < n; i++) {
		const struct symbol *sym;

		if (!strcmp(symbols[i], "*")) {
			if (!c->g || !c->g->wildcard)
				out->added++;
			continue;
		}
		sym = engine__symbol_find(
		        c->e, symbols[i],
		        strnlen(symbols[i], TICK_SYMBOL_MAX + 1));
		if (sym && c->g && client_holds(c, sym))
			continue;
		out->added++;
		if (!sym)
			out->placeholders++;
		if (!sym || sym->st.seq == 0)
			out->pending++;
	}
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
	return sym && engine__entry_of(c->g, sym);
}

/*
 * seq_gate.c: seqs within their durable reservation (see seq_gate.h).
 *
 * The entries sit in one array; an open-addressing index (linear probing,
 * at most half full) maps a name's hash to its place, as in
 * state_table.c. The check of a tick is one lookup and two comparisons;
 * everything else happens when a symbol is first seen, asks or is granted.
 */
#include "seq_gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define SLOTS_MIN 64
/* A symbol that needs more within this long of its last refill is hot:
 * its next block is twice as long, so that half a block lasts a while. */
#define HOT_REFILL_US (2000 * 1000ll)

#define FIELD_BIT(f) ((uint16_t)(1u << (f)))
#define INPUT_MASK   ((uint16_t)((1u << TICK_FIELD_COUNT) - 1u))

struct seq_gate_sym {
	uint64_t hash;
	uint64_t seq;           /* last applied (the engine's seq) */
	uint64_t limit;         /* granted through */
	uint64_t asked;         /* asked through and not granted yet; 0: no */
	uint64_t block;         /* the last block asked */
	int64_t last_refill_us; /* monotonic; 0: never refilled */
	uint16_t present;       /* fields it has */
	uint16_t fields;        /* fields granted */
	uint16_t asked_fields;
	char name[TICK_SYMBOL_MAX + 1];
};

struct seq_gate {
	seq_gate_lookup_fn lookup;
	void *ctx;
	uint32_t gen;
	uint32_t *slots; /* 1 + index in syms; 0: free */
	size_t mask;
	struct seq_gate_sym *syms;
	size_t n, cap;
	struct sink_reservation *asks;
	size_t nasks, asks_cap;
};

struct seq_gate *
seq_gate_create(seq_gate_lookup_fn lookup, void *ctx)
{
	struct seq_gate *g = calloc(1, sizeof *g);

	if (!g)
		return NULL;
	g->slots = calloc(SLOTS_MIN, sizeof *g->slots);
	if (!g->slots) {
		free(g);
		return NULL;
	}
	g->mask = SLOTS_MIN - 1;
	g->lookup = lookup;
	g->ctx = ctx;
	return g;
}

void
seq_gate_destroy(struct seq_gate *g)
{
	if (!g)
		return;
	free(g->slots);
	free(g->syms);
	free(g->asks);
	free(g);
}

uint32_t
seq_gate_reset(struct seq_gate *g)
{
	memset(g->slots, 0, (g->mask + 1) * sizeof *g->slots);
	g->n = 0;
	g->nasks = 0;
	return ++g->gen;
}

uint32_t
seq_gate_gen(const struct seq_gate *g)
{
	return g->gen;
}

size_t
seq_gate_count(const struct seq_gate *g)
{
	return g->n;
}

uint16_t
seq_gate_tick_fields(const struct tick *t)
{
	uint16_t in = t->present & INPUT_MASK, out = in;

	if (in & FIELD_BIT(FIELD_LAST))
		out |= FIELD_BIT(FIELD_OPEN) | FIELD_BIT(FIELD_HIGH) |
		       FIELD_BIT(FIELD_LOW) | FIELD_BIT(FIELD_TRADES);
	if (in & (FIELD_BIT(FIELD_LAST_SIZE) | FIELD_BIT(FIELD_VOLUME)))
		out |= FIELD_BIT(FIELD_VOLUME);
	return out;
}

/* ------------------------------------------------------------- the table */

static struct seq_gate_sym *
find(const struct seq_gate *g, const char *name, size_t len, uint64_t h)
{
	size_t i;

	for (i = h & g->mask; g->slots[i]; i = (i + 1) & g->mask) {
		struct seq_gate_sym *y = &g->syms[g->slots[i] - 1];

		if (y->hash == h && memcmp(y->name, name, len) == 0 &&
		    y->name[len] == '\0')
			return y;
	}
	return NULL;
}

static int
grow(struct seq_gate *g)
{
	size_t size = (g->mask + 1) * 2, i;
	uint32_t *slots = calloc(size, sizeof *slots);

	if (!slots)
		return -1;
	for (i = 0; i < g->n; i++) {
		size_t j = g->syms[i].hash & (size - 1);

		while (slots[j])
			j = (j + 1) & (size - 1);
		slots[j] = (uint32_t)(i + 1);
	}
	free(g->slots);
	g->slots = slots;
	g->mask = size - 1;
	return 0;
}

/* A new entry: nothing applied, nothing granted. NULL when out of
 * memory. */
static struct seq_gate_sym *
add(struct seq_gate *g, const char *name, size_t len, uint64_t h)
{
	struct seq_gate_sym *y;
	size_t i;

	if ((g->n + 1) * 2 > g->mask + 1 && grow(g))
		return NULL;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 64;
		struct seq_gate_sym *p = realloc(g->syms, cap * sizeof *p);

		if (!p)
			return NULL;
		g->syms = p;
		g->cap = cap;
	}
	y = &g->syms[g->n];
	memset(y, 0, sizeof *y);
	memcpy(y->name, name, len);
	y->hash = h;
	y->block = SEQ_GATE_BLOCK;
	for (i = h & g->mask; g->slots[i]; i = (i + 1) & g->mask)
		;
	g->slots[i] = (uint32_t)(++g->n);
	return y;
}

/* The entry of a symbol, made on first sight from what the engine holds.
 * NULL for a name the engine refuses, or when out of memory (*oom). */
static struct seq_gate_sym *
entry(struct seq_gate *g, const char *name, bool *oom)
{
	size_t len = strnlen(name, TICK_SYMBOL_MAX + 1);
	uint64_t h;
	struct seq_gate_sym *y;

	*oom = false;
	if (len == 0 || len > TICK_SYMBOL_MAX)
		return NULL;
	h = hash_name(name, len);
	y = find(g, name, len, h);
	if (y)
		return y;
	if (!tick_symbol_valid(name, len))
		return NULL;
	y = add(g, name, len, h);
	if (!y) {
		*oom = true;
		return NULL;
	}
	if (g->lookup && g->lookup(y->name, &y->seq, &y->present, g->ctx))
		y->seq = 0, y->present = 0;
	return y;
}

/* ------------------------------------------------------------------ asks */

static int
push_ask(struct seq_gate *g, const char *name, uint64_t seq, uint16_t fields)
{
	struct sink_reservation *r;

	if (g->nasks == g->asks_cap) {
		size_t cap = g->asks_cap ? g->asks_cap * 2 : 64;
		struct sink_reservation *p = realloc(g->asks, cap * sizeof *p);

		if (!p)
			return -1;
		g->asks = p;
		g->asks_cap = cap;
	}
	r = &g->asks[g->nasks++];
	memset(r, 0, sizeof *r);
	memcpy(r->symbol, name, sizeof r->symbol);
	r->seq = seq;
	r->fields = fields;
	return 0;
}

/* Ask for y's next block, with the fields it has, has been granted and
 * the next tick adds, unless an ask under way covers them. A refill (seqs
 * running short, not a new field) of a hot symbol asks for a longer
 * block. */
static void
ask(struct seq_gate *g, struct seq_gate_sym *y, uint16_t adds, bool refill,
    int64_t now)
{
	uint16_t want = y->present | y->fields | adds;
	uint64_t to;

	if (y->asked > y->seq && !(want & ~y->asked_fields))
		return;
	if (refill) {
		if (y->last_refill_us &&
		    now - y->last_refill_us < HOT_REFILL_US &&
		    y->block < SEQ_GATE_BLOCK_MAX)
			y->block *= 2;
		y->last_refill_us = now;
	}
	to = y->seq + y->block;
	/* Never below what is granted or asked: a later row replaces an
	 * earlier one. */
	if (to < y->limit)
		to = y->limit;
	if (to < y->asked)
		to = y->asked;
	if (push_ask(g, y->name, to, want))
		return; /* asked again by the next tick */
	y->asked = to;
	y->asked_fields = want;
}

bool
seq_gate_check(struct seq_gate *g, const struct tick *t, int64_t now_us,
               struct seq_gate_sym **out)
{
	struct seq_gate_sym *y;
	uint16_t adds;
	bool oom;

	*out = NULL;
	y = entry(g, t->symbol, &oom);
	if (!y)
		return !oom;
	adds = seq_gate_tick_fields(t);
	if (y->seq >= y->limit || ((y->present | adds) & ~y->fields)) {
		ask(g, y, adds, y->seq >= y->limit && y->limit, now_us);
		return false;
	}
	if (y->limit - y->seq <= y->block / 2)
		ask(g, y, adds, true, now_us);
	*out = y;
	return true;
}

void
seq_gate_applied(struct seq_gate_sym *y, const struct tick *t, uint64_t seq)
{
	if (!y)
		return;
	y->seq = seq;
	y->present |= seq_gate_tick_fields(t);
}

void
seq_gate_ask_due(struct seq_gate *g, int64_t now_us)
{
	size_t i;

	for (i = 0; i < g->n; i++) {
		struct seq_gate_sym *y = &g->syms[i];

		if (y->seq >= y->limit || y->limit - y->seq <= y->block / 2 ||
		    (y->present & ~y->fields))
			ask(g, y, 0, false, now_us);
	}
}

const struct sink_reservation *
seq_gate_asks(const struct seq_gate *g, size_t *n)
{
	*n = g->nasks;
	return g->asks;
}

void
seq_gate_clear_asks(struct seq_gate *g)
{
	g->nasks = 0;
}

/* --------------------------------------------------------------- grants */

int
seq_gate_grant(struct seq_gate *g, uint32_t gen,
               const struct sink_reservation *r)
{
	struct seq_gate_sym *y;
	bool oom;

	if (gen != g->gen)
		return 0;
	y = entry(g, r->symbol, &oom);
	if (!y)
		return oom ? -1 : 0;
	if (r->seq > y->limit)
		y->limit = r->seq;
	y->fields |= r->fields;
	if (y->asked && y->limit >= y->asked && !(y->asked_fields & ~y->fields))
		y->asked = 0;
	return 0;
}

int
seq_gate_seed(struct seq_gate *g, const struct sink_reservation *r,
              uint64_t seq, uint16_t fields)
{
	size_t len = strnlen(r->symbol, TICK_SYMBOL_MAX + 1);
	struct seq_gate_sym *y;
	uint64_t h;

	if (len == 0 || len > TICK_SYMBOL_MAX)
		return 0;
	h = hash_name(r->symbol, len);
	y = find(g, r->symbol, len, h);
	if (!y && !(y = add(g, r->symbol, len, h)))
		return -1;
	y->seq = seq;
	y->present = fields;
	y->limit = r->seq;
	y->fields = r->fields;
	y->asked = 0;
	y->asked_fields = 0;
	y->block = SEQ_GATE_BLOCK;
	y->last_refill_us = 0;
	return 0;
}

struct sink_reservation
seq_gate_first_ask(const char *symbol, uint64_t seq, uint16_t fields)
{
	struct sink_reservation r;

	memset(&r, 0, sizeof r);
	snprintf(r.symbol, sizeof r.symbol, "%s", symbol);
	r.seq = seq + SEQ_GATE_BLOCK;
	r.fields = fields;
	return r;
}

/*
 * state_table.c: symbol states by name (see state_table.h).
 *
 * The states sit in one array, in the order the table first saw their
 * symbols, so a walk over them is a walk over memory; an open-addressing
 * index (linear probing, at most half full) maps a name's hash to its
 * place in the array. Each slot keeps the high half of the hash, so a
 * probe compares names only when those 32 bits agree. Nothing is removed:
 * a state emptied by a restore stays, with seq 0, until the table goes.
 */
#include "state_table.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define SLOTS_MIN  64
#define STATES_MIN 32

struct slot {
	uint32_t tag; /* the high half of the name's hash */
	uint32_t idx; /* 1 + its index in states; 0: free */
};

struct state_table {
	struct slot *slots;
	size_t mask;
	struct symbol_state *states;
	size_t n, cap;
	size_t ndata; /* states with seq > 0 */
	struct session_rule sessions;
};

struct state_table *
state_table_create(void)
{
	struct state_table *t = calloc(1, sizeof *t);

	if (!t)
		return NULL;
	t->slots = calloc(SLOTS_MIN, sizeof *t->slots);
	if (!t->slots) {
		free(t);
		return NULL;
	}
	t->mask = SLOTS_MIN - 1;
	return t;
}

void
state_table_set_sessions(struct state_table *t, const struct session_rule *rule)
{
	if (rule)
		t->sessions = *rule;
	else
		memset(&t->sessions, 0, sizeof t->sessions);
}

void
state_table_destroy(struct state_table *t)
{
	if (!t)
		return;
	free(t->slots);
	free(t->states);
	free(t);
}

/* The slot that holds name[0..len), or the free slot where it would go. */
static size_t
slot_of(const struct state_table *t, const char *name, size_t len,
        uint64_t hash)
{
	uint32_t tag = (uint32_t)(hash >> 32);
	size_t i;

	for (i = hash & t->mask; t->slots[i].idx; i = (i + 1) & t->mask) {
		const char *s = t->states[t->slots[i].idx - 1].symbol;

		if (t->slots[i].tag == tag && memcmp(s, name, len) == 0 &&
		    s[len] == '\0')
			break;
	}
	return i;
}

/* Twice the slots. Returns 0, or -1 out of memory (nothing changed). */
static int
slots_grow(struct state_table *t)
{
	size_t size = (t->mask + 1) * 2, k;
	struct slot *slots = calloc(size, sizeof *slots);

	if (!slots)
		return -1;
	for (k = 0; k < t->n; k++) {
		const char *name = t->states[k].symbol;
		uint64_t hash = hash_name(name, strlen(name));
		size_t i = hash & (size - 1);

		while (slots[i].idx)
			i = (i + 1) & (size - 1);
		slots[i].tag = (uint32_t)(hash >> 32);
		slots[i].idx = (uint32_t)(k + 1);
	}
	free(t->slots);
	t->slots = slots;
	t->mask = size - 1;
	return 0;
}

/* The state of name[0..len) (a valid length), made empty when new; NULL
 * for an invalid name or out of memory. */
static struct symbol_state *
state_get(struct state_table *t, const char *name, size_t len, bool make)
{
	uint64_t hash = hash_name(name, len);
	size_t i = slot_of(t, name, len, hash);

	if (t->slots[i].idx)
		return &t->states[t->slots[i].idx - 1];
	/* Only a name that is not in the table yet needs checking: every name
	 * in it was checked on the way in. */
	if (!make || !tick_symbol_valid(name, len) || t->n >= UINT32_MAX - 1)
		return NULL;
	if ((t->n + 1) * 2 > t->mask + 1) {
		if (slots_grow(t))
			return NULL;
		i = slot_of(t, name, len, hash);
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : STATES_MIN;
		struct symbol_state *p = realloc(t->states, cap * sizeof *p);

		if (!p)
			return NULL;
		t->states = p;
		t->cap = cap;
	}
	symbol_state_init(&t->states[t->n], name, len);
	t->slots[i].tag = (uint32_t)(hash >> 32);
	t->slots[i].idx = (uint32_t)(t->n + 1);
	return &t->states[t->n++];
}

uint64_t
state_table_apply(struct state_table *t, const struct tick *tick)
{
	size_t len = strnlen(tick->symbol, sizeof tick->symbol);
	struct symbol_state *st;
	uint64_t seq;
	bool first;

	if (len == 0 || len > TICK_SYMBOL_MAX)
		return 0;
	st = state_get(t, tick->symbol, len, true);
	if (!st)
		return 0;
	/* A state made just now has no data, and such a state never refuses
	 * a tick: a refused tick leaves no new symbol behind. */
	first = st->seq == 0;
	seq = symbol_state_apply(st, tick, &t->sessions);
	if (seq && first)
		t->ndata++;
	return seq;
}

int
state_table_restore(struct state_table *t, const struct symbol_state *s)
{
	size_t len = strnlen(s->symbol, sizeof s->symbol);
	struct symbol_state *st;

	if (len == 0 || len > TICK_SYMBOL_MAX)
		return -1;
	/* Emptying a symbol the table does not know changes nothing. */
	st = state_get(t, s->symbol, len, s->seq != 0);
	if (!st)
		return s->seq == 0 && tick_symbol_valid(s->symbol, len) ? 0
		                                                        : -1;
	if (st->seq)
		t->ndata--;
	symbol_state_restore(st, s);
	if (st->seq)
		t->ndata++;
	return 0;
}

const struct symbol_state *
state_table_find(const struct state_table *t, const char *symbol)
{
	size_t len = strnlen(symbol, TICK_SYMBOL_MAX + 1), i;
	const struct symbol_state *st;

	if (len == 0 || len > TICK_SYMBOL_MAX)
		return NULL;
	i = slot_of(t, symbol, len, hash_name(symbol, len));
	if (!t->slots[i].idx)
		return NULL;
	st = &t->states[t->slots[i].idx - 1];
	return st->seq ? st : NULL;
}

size_t
state_table_count(const struct state_table *t)
{
	return t->ndata;
}

void
state_table_foreach(const struct state_table *t,
                    void (*fn)(const struct symbol_state *s, void *ctx),
                    void *ctx)
{
	size_t k;

	for (k = 0; k < t->n; k++)
		if (t->states[k].seq)
			fn(&t->states[k], ctx);
}

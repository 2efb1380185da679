/*
 * symbol_state.c: folding ticks into a symbol's state (see symbol_state.h).
 */
#include "symbol_state.h"

#include <string.h>

#define FIELD_BIT(f) ((uint16_t)(1u << (f)))
#define INPUT_MASK   ((uint16_t)((1u << TICK_FIELD_COUNT) - 1u))
#define STATE_MASK   ((uint16_t)((1u << STATE_FIELD_COUNT) - 1u))

void
symbol_state_init(struct symbol_state *st, const char *name, size_t len)
{
	memset(st, 0, sizeof *st);
	memcpy(st->symbol, name, len);
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
symbol_state_apply(struct symbol_state *st, const struct tick *t)
{
	struct decimal volume = {0, 0}, trades = {0, 0};
	const struct decimal one = {1, 0};
	bool set_volume = false, sends_volume, has_last;
	uint16_t present = t->present & INPUT_MASK;
	uint64_t seq;
	int f;

	if (t->seq != 0) {
		if (t->seq <= st->seq)
			return 0;
		seq = t->seq;
	} else {
		if (st->seq == UINT64_MAX)
			return 0;
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
				return 0;
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
			return 0;
	}

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
	st->seq = seq;
	return seq;
}

void
symbol_state_restore(struct symbol_state *st, const struct symbol_state *from)
{
	int f;

	st->seq = from->seq;
	st->ts = from->ts;
	st->present = from->seq != 0 ? (from->present & STATE_MASK) : 0;
	st->feed_sends_volume = from->feed_sends_volume;
	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		st->value[f] = from->value[f];
		st->changed_seq[f] = from->changed_seq[f];
		if (st->changed_seq[f] == 0 || st->changed_seq[f] > st->seq)
			st->changed_seq[f] = st->seq;
	}
}

void
symbol_state_clear(struct symbol_state *st)
{
	char name[sizeof st->symbol];

	memcpy(name, st->symbol, sizeof name);
	memset(st, 0, sizeof *st);
	memcpy(st->symbol, name, sizeof name);
}

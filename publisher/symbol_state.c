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

/* Take field f away at seq (a new session), remembering when. */
static inline void
field_clear(struct symbol_state *st, int f, uint64_t seq)
{
	uint16_t bit = FIELD_BIT(f);

	if (!(st->present & bit))
		return;
	st->present &= (uint16_t)~bit;
	st->changed_seq[f] = seq;
}

/* Fold t into st at seq, as a tick of the session st is in. */
static inline uint64_t
fold(struct symbol_state *st, const struct tick *t, uint64_t seq)
{
	struct decimal volume = {0, 0}, trades = {0, 0};
	const struct decimal one = {1, 0};
	bool set_volume = false, sends_volume, has_last;
	uint16_t present = t->present & INPUT_MASK;
	int f;

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

#define DAY_US (86400 * (int64_t)1000000)

void
symbol_state_session_of(const struct session_rule *rule, const char *symbol,
                        int64_t ts, struct session_span *out)
{
	int64_t day;

	if (rule && rule->span_of) {
		rule->span_of(rule->ctx, symbol, ts, out);
		return;
	}
	/* UTC days; the first and last days of int64 are cut short. */
	day = ts / DAY_US - (ts % DAY_US < 0);
	out->start = day > INT64_MIN / DAY_US ? day * DAY_US : INT64_MIN + 1;
	out->end =
	        day < INT64_MAX / DAY_US - 1 ? (day + 1) * DAY_US : INT64_MAX;
}

/*
 * The session ended: what it closed at becomes prev_close, and what
 * counts within a session starts again. Nothing here can fail.
 */
static void
session_begin(struct symbol_state *st, uint64_t seq)
{
	const struct decimal zero = {0, 0};
	struct decimal close;

	if (st->present & FIELD_BIT(FIELD_LAST))
		field_set(st, FIELD_PREV_CLOSE, st->value[FIELD_LAST], seq);
	else if ((st->present & FIELD_BIT(FIELD_BID)) &&
	         (st->present & FIELD_BIT(FIELD_ASK)) &&
	         decimal_mid(st->value[FIELD_BID], st->value[FIELD_ASK],
	                     &close) == 0)
		field_set(st, FIELD_PREV_CLOSE, close, seq);
	field_clear(st, FIELD_OPEN, seq);
	field_clear(st, FIELD_HIGH, seq);
	field_clear(st, FIELD_LOW, seq);
	if (st->present & FIELD_BIT(FIELD_TRADES))
		field_set(st, FIELD_TRADES, zero, seq);
	if ((st->present & FIELD_BIT(FIELD_VOLUME)) && !st->feed_sends_volume)
		field_set(st, FIELD_VOLUME, zero, seq);
}

/*
 * A tick at or past the end of the state's session (or its first, or the
 * first since the state was restored): ask the rule which session it is
 * in. Kept out of line: it runs once a session per symbol.
 */
static __attribute__((noinline)) uint64_t
apply_new_span(struct symbol_state *st, const struct tick *t, uint64_t seq,
               const struct session_rule *sessions)
{
	struct session_span now, own;
	struct symbol_state next;
	bool first = st->seq == 0;

	if (!first && st->session == SYMBOL_STATE_SESSION_UNKNOWN) {
		/* A state kept before states knew their session: the one
		 * of its last tick (the same thing, said differently). */
		symbol_state_session_of(sessions, st->symbol, st->ts, &own);
		st->session = own.start;
	}
	if (!first && t->ts < st->session)
		return fold(st, t, seq); /* late: the session goes on */
	symbol_state_session_of(sessions, st->symbol, t->ts, &now);
	if (first || now.start <= st->session) {
		/* The session under way (or, after the rule changed, one
		 * that began before it: the state stays in its own until
		 * this one ends). */
		if (!fold(st, t, seq))
			return 0;
		if (first)
			st->session = now.start;
		st->session_end = now.end;
		return seq;
	}
	/* A later session. It is begun on a copy, so that a tick refused
	 * after all leaves the state as it was. */
	next = *st;
	session_begin(&next, seq);
	if (!fold(&next, t, seq))
		return 0;
	next.session = now.start;
	next.session_end = now.end;
	*st = next;
	return seq;
}

uint64_t
symbol_state_apply(struct symbol_state *st, const struct tick *t,
                   const struct session_rule *sessions)
{
	uint64_t seq;

	if (t->seq != 0) {
		if (t->seq <= st->seq)
			return 0;
		seq = t->seq;
	} else {
		if (st->seq == UINT64_MAX)
			return 0;
		seq = st->seq + 1;
	}
	/* The common case: a tick of the session under way (or a late one),
	 * one comparison. */
	if (st->seq != 0 && t->ts < st->session_end)
		return fold(st, t, seq);
	return apply_new_span(st, t, seq, sessions);
}

void
symbol_state_restore(struct symbol_state *st, const struct symbol_state *from)
{
	int f;

	st->seq = from->seq;
	st->ts = from->ts;
	st->present = from->seq != 0 ? (from->present & STATE_MASK) : 0;
	st->feed_sends_volume = from->feed_sends_volume;
	st->session = from->seq != 0 ? from->session : 0;
	st->session_end = INT64_MIN;
	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		bool has = (st->present >> f) & 1u;

		st->value[f] = from->value[f];
		st->changed_seq[f] = from->changed_seq[f];
		if ((has && st->changed_seq[f] == 0) ||
		    st->changed_seq[f] > st->seq)
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

/*
 * engine_model.c: what the engine's unit tests share: a seeded stream of
 * random ticks, a frame parser that reads decimals from the raw text, and a
 * model of what a client holds that applies updates as a client must.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "support/asserts.h"
#include "support/engine_model.h"
#include "support/rng.h"
#include "support/ticks.h"

/* ------------------------------------------------------------- helpers */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

void
rng_seed(uint64_t seed)
{
	rng_state = seed ? seed : 1;
}

uint32_t
rng_next(void)
{
	return xorshift64_next(&rng_state);
}

uint32_t
rng_below(uint32_t n)
{
	return rng_next() % n;
}

uint64_t
apply_quote(struct engine *e, const char *symbol, int64_t ts, const char *bid,
            const char *ask)
{
	struct tick t = tick_make(symbol, ts);

	tick_set(&t, FIELD_BID, dec(bid));
	tick_set(&t, FIELD_ASK, dec(ask));
	return engine_apply_tick(e, &t);
}

uint64_t
apply_trade(struct engine *e, const char *symbol, int64_t ts, const char *last,
            const char *size)
{
	struct tick t = tick_make(symbol, ts);

	tick_set(&t, FIELD_LAST, dec(last));
	tick_set(&t, FIELD_LAST_SIZE, dec(size));
	return engine_apply_tick(e, &t);
}

/* A random quote or trade on prices that often repeat, so that "equal value,
 * no change" happens as well as real changes. */
struct tick
tick_random(const char *symbol, int64_t ts, bool with_volume)
{
	struct tick t = tick_make(symbol, ts);

	if (rng_below(2) == 0) {
		if (rng_below(4) != 0)
			tick_set(&t, FIELD_BID,
			         dec_raw(18900 + rng_below(20), 2));
		if (rng_below(4) != 0)
			tick_set(&t, FIELD_ASK,
			         dec_raw(18920 + rng_below(20), 2));
		if (rng_below(2) == 0)
			tick_set(&t, FIELD_BID_SIZE,
			         dec_raw(100 * (1 + rng_below(5)), 0));
		if (rng_below(2) == 0)
			tick_set(&t, FIELD_ASK_SIZE,
			         dec_raw(100 * (1 + rng_below(5)), 0));
	} else {
		tick_set(&t, FIELD_LAST, dec_raw(189100 + rng_below(300), 3));
		tick_set(&t, FIELD_LAST_SIZE, dec_raw(1 + rng_below(500), 0));
		if (with_volume)
			tick_set(&t, FIELD_VOLUME,
			         dec_raw(1000000 + rng_below(1000000), 0));
	}
	return t;
}

/* client_ready counts calls per client: `user` is an int counter. */
void
on_ready(void *user, void *ctx)
{
	int *calls = user;
	int *total = ctx;

	(*calls)++;
	if (total)
		(*total)++;
}

struct engine *
engine_new(int *total_ready)
{
	struct engine_config cfg = {.client_ready = on_ready,
	                            .ctx = total_ready,
	                            .frame_cap = FRAME_CAP};
	struct engine *e = engine_create(&cfg);

	assert_non_null(e);
	return e;
}

int
state_field_by_name(const char *name)
{
	int f;

	for (f = 0; f < STATE_FIELD_COUNT; f++)
		if (strcmp(tick_field_name((enum tick_field)f), name) == 0)
			return f;
	return -1;
}

/* The raw text of the value of "key" in the flat object obj[0..len). */
struct decimal
raw_decimal(const char *obj, size_t len, const char *key)
{
	char pat[64];
	const char *p, *end = obj + len, *v;
	struct decimal d;
	size_t plen;

	plen = (size_t)snprintf(pat, sizeof pat, "\"%s\":", key);
	for (p = obj; p + plen <= end; p++)
		if (memcmp(p, pat, plen) == 0)
			break;
	assert_true(p + plen <= end);
	v = p + plen;
	for (p = v; p < end && *p != ',' && *p != '}'; p++)
		;
	assert_int_equal(decimal_parse(v, (size_t)(p - v), &d), 0);
	return d;
}

/* Parse one update object obj[0..len), checking its keys and types. */
void
parse_update(const char *obj, size_t len, struct update *u)
{
	json_error_t err;
	json_t *o = json_loadb(obj, len, 0, &err);
	const char *key, *type;
	json_t *v;

	if (!o)
		fail_msg("update is not JSON (%s): %.*s", err.text, (int)len,
		         obj);
	assert_true(json_is_object(o));
	memset(u, 0, sizeof *u);
	type = json_string_value(json_object_get(o, "type"));
	assert_non_null(type);
	assert_true(strcmp(type, "snapshot") == 0 ||
	            strcmp(type, "delta") == 0);
	u->is_delta = strcmp(type, "delta") == 0;
	json_object_foreach(o, key, v)
	{
		int f;

		if (strcmp(key, "type") == 0)
			continue;
		if (strcmp(key, "symbol") == 0) {
			assert_true(json_is_string(v));
			snprintf(u->symbol, sizeof u->symbol, "%s",
			         json_string_value(v));
			continue;
		}
		if (strcmp(key, "from") == 0 || strcmp(key, "seq") == 0 ||
		    strcmp(key, "ts") == 0) {
			assert_true(json_is_integer(v));
			if (key[0] == 'f')
				u->from = (uint64_t)json_integer_value(v);
			else if (key[0] == 's')
				u->seq = (uint64_t)json_integer_value(v);
			else
				u->ts = json_integer_value(v);
			continue;
		}
		f = state_field_by_name(key);
		if (f < 0)
			fail_msg("unknown key \"%s\" in %.*s", key, (int)len,
			         obj);
		if (json_is_null(v)) {
			/* Taken away (a new session): deltas only. */
			assert_true(u->is_delta);
			u->removed |= (uint16_t)(1u << f);
			continue;
		}
		assert_true(json_is_number(v));
		if (f == FIELD_TRADES)
			assert_true(json_is_integer(v));
		u->value[f] = raw_decimal(obj, len, key);
		u->present |= (uint16_t)(1u << f);
	}
	assert_true(u->seq > 0);
	assert_true(json_object_get(o, "ts") != NULL);
	if (u->is_delta) {
		assert_non_null(json_object_get(o, "from"));
		assert_true(u->from > 0 && u->from < u->seq);
	} else {
		assert_null(json_object_get(o, "from"));
	}
	json_decref(o);
}

/*
 * Split a frame into its updates. The frame must be one JSON object or an
 * array of two or more; the objects are flat and symbol names hold no
 * braces, so each object runs from a '{' to the next '}'.
 */
size_t
parse_frame(const char *buf, size_t n, struct update *out, size_t max)
{
	json_error_t err;
	json_t *whole = json_loadb(buf, n, 0, &err);
	size_t count = 0, i = 0;

	if (!whole)
		fail_msg("frame is not JSON (%s): %.*s", err.text, (int)n, buf);
	while (i < n) {
		size_t start, end;

		while (i < n && buf[i] != '{')
			i++;
		if (i == n)
			break;
		start = i;
		while (i < n && buf[i] != '}')
			i++;
		assert_true(i < n);
		end = ++i;
		assert_true(count < max);
		parse_update(buf + start, end - start, &out[count++]);
	}
	if (count == 1) {
		assert_true(json_is_object(whole));
	} else {
		assert_true(json_is_array(whole));
		assert_int_equal(json_array_size(whole), count);
	}
	json_decref(whole);
	return count;
}

size_t
write_updates(struct engine_client *c, int64_t now, struct update *out,
              size_t max)
{
	static char buf[FRAME_CAP];
	size_t n = engine_client_write(c, now, buf, sizeof buf, NULL);

	if (n == 0)
		return 0;
	assert_true(n <= sizeof buf);
	return parse_frame(buf, n, out, max);
}

/* Write everything due into out (several frames if needed). */
size_t
drain(struct engine_client *c, int64_t now, struct update *out, size_t max)
{
	size_t total = 0, n;

	while ((n = write_updates(c, now, out + total, max - total)) > 0)
		total += n;
	return total;
}

void
model_from_state(struct model *m, const struct symbol_state *s)
{
	memset(m, 0, sizeof *m);
	m->seq = s->seq;
	m->ts = s->ts;
	m->present = s->present;
	memcpy(m->value, s->value, sizeof m->value);
}

/* Apply an update as a client must: a delta only on the seq it was made
 * from, never going back in seq. */
void
model_apply(struct model *m, const struct update *u)
{
	int f;

	assert_true(u->seq > m->seq || !u->is_delta);
	if (u->is_delta) {
		assert_int_equal(u->from, m->seq);
	} else {
		assert_true(u->seq >= m->seq);
		m->present = 0;
	}
	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		if ((u->removed >> f) & 1u)
			m->present &= (uint16_t)~(1u << f);
		if (!((u->present >> f) & 1u))
			continue;
		m->value[f] = u->value[f];
		m->present |= (uint16_t)(1u << f);
	}
	m->seq = u->seq;
	m->ts = u->ts;
}

void
assert_model_equals_state(const struct model *m, const struct symbol_state *s)
{
	int f;

	assert_int_equal(m->seq, s->seq);
	assert_int_equal(m->ts, s->ts);
	assert_int_equal(m->present, s->present);
	for (f = 0; f < STATE_FIELD_COUNT; f++)
		if ((s->present >> f) & 1u)
			assert_decimal_exact(m->value[f], s->value[f]);
}

void
assert_engine_state(struct engine *e, const struct model *m, const char *symbol)
{
	struct symbol_state s;

	assert_int_equal(engine_get_state(e, symbol, &s), 0);
	assert_model_equals_state(m, &s);
}

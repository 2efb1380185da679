/*
 * engine_model.h: what the engine's unit tests share (cmocka): a seeded
 * stream of random ticks, an engine that counts its ready calls, a parser of
 * the frames a client gets, and a model of what a client holds that applies
 * updates as a client must.
 *
 * Frames are parsed with jansson for their structure, but field values are
 * read from the raw text with decimal_parse: jansson would turn 189.30 into
 * a double, and the point is that the text is exact.
 */
#ifndef TESTS_SUPPORT_ENGINE_MODEL_H
#define TESTS_SUPPORT_ENGINE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decimal.h"
#include "engine.h"
#include "tick.h"

#define FRAME_CAP   (64 * 1024)
#define MAX_UPDATES 4096

/* What a client holds for one symbol, and how it applies what it receives. */
struct model {
	uint64_t seq;
	int64_t ts;
	uint16_t present;
	struct decimal value[STATE_FIELD_COUNT];
};

struct update {
	bool is_delta;
	char symbol[TICK_SYMBOL_MAX + 1];
	uint64_t from;
	uint64_t seq;
	int64_t ts;
	uint16_t present;
	uint16_t removed; /* fields sent as null: taken away */
	struct decimal value[STATE_FIELD_COUNT];
};

/* The tests' shared random stream (support/rng.h's xorshift64), so that a
 * failure can be replayed: rng_seed() starts it again; rng_below(n) is in
 * [0, n). tick_random() draws from it too. */
void rng_seed(uint64_t seed);

uint32_t rng_next(void);

uint32_t rng_below(uint32_t n);

/* A quote or a trade applied to e; returns the seq (0 when refused). Prices
 * are text, as dec() (support/asserts.h) reads it. */
uint64_t apply_quote(struct engine *e, const char *symbol, int64_t ts,
                     const char *bid, const char *ask);

uint64_t apply_trade(struct engine *e, const char *symbol, int64_t ts,
                     const char *last, const char *size);

/* A random quote or trade on prices that often repeat, so that "equal value,
 * no change" happens as well as real changes. */
struct tick tick_random(const char *symbol, int64_t ts, bool with_volume);

/* client_ready for tests: `user` is an int counter of calls per client,
 * ctx (engine_new's total_ready) an int counter of all calls, or NULL. */
void on_ready(void *user, void *ctx);

/* An engine with on_ready and frames of FRAME_CAP. */
struct engine *engine_new(int *total_ready);

/* The field named name, or -1. */
int state_field_by_name(const char *name);

/* The raw text of the value of "key" in the flat object obj[0..len). */
struct decimal raw_decimal(const char *obj, size_t len, const char *key);

/* Parse one update object, checking its keys and types. */
void parse_update(const char *obj, size_t len, struct update *u);

/* Split a frame (one object, or an array of two or more) into updates. */
size_t parse_frame(const char *buf, size_t n, struct update *out, size_t max);

/* One frame of c, parsed; drain(): every frame due, into out. */
size_t write_updates(struct engine_client *c, int64_t now, struct update *out,
                     size_t max);

size_t drain(struct engine_client *c, int64_t now, struct update *out,
             size_t max);

/* What a client holds: taken from a state, or built by applying updates as a
 * client must (a delta only on the seq it was made from, never going back
 * in seq); compared with a state or the engine's. */
void model_from_state(struct model *m, const struct symbol_state *s);

void model_apply(struct model *m, const struct update *u);

void assert_model_equals_state(const struct model *m,
                               const struct symbol_state *s);

void assert_engine_state(struct engine *e, const struct model *m,
                         const char *symbol);

#endif

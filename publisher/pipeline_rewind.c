/*
 * pipeline_rewind.c: a replay's seek back: the store rewinds, then the
 * engine, under a new epoch (see pipeline_private.h).
 */
#include "pipeline_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "epoch.h"
#include "log.h"
#include "wake.h"

/* ------------------------------------------------------------- rewinds */

/*
 * A replay's seek back (feeds/feed.h, feed_set_rewind). The feed's thread
 * asks and waits; the loop drains what the feed pushed before it (so the
 * engine and the sinks have every tick it counts), turns the per-symbol
 * counts into cuts (each symbol's seq now, less its count) and has the
 * store rewind, in order with those ticks. When the store is done, the
 * engine takes the states the store gives back (the others are kept), the
 * pipeline takes the store's new epoch and tells the transport
 * (epoch_changed: clients start over and take snapshots, so nobody sees
 * time go back under one epoch), and only then the feed goes on: no tick
 * from after the target reaches the engine or the store before the
 * rewind. Without a sink, nothing can be undone: the engine forgets
 * everything under a new epoch and the feed plays its pass again from the
 * top. A sink that cannot go back (Redis) refuses the seek as a whole.
 */

static void
rewind_answer(struct pipeline *p, enum feed_rewind_result r)
{
	pthread_mutex_lock(&p->rw.lock);
	p->rw.phase = RW_DONE;
	p->rw.result = r;
	pthread_cond_broadcast(&p->rw.answered);
	pthread_mutex_unlock(&p->rw.lock);
}

/* The feed's thread: ask, and wait for the answer. */
enum feed_rewind_result
pipeline__rewind_ask(const struct feed_rewind *ask, void *ctx)
{
	struct pipeline *p = ctx;
	enum feed_rewind_result r = FEED_REWIND_STOP;

	pthread_mutex_lock(&p->rw.lock);
	if (!p->rw.closing) {
		p->rw.ask = ask;
		p->rw.phase = RW_ASKED;
		wake_signal(p->rw.wake);
		while (p->rw.phase != RW_DONE && !p->rw.closing)
			pthread_cond_wait(&p->rw.answered, &p->rw.lock);
		if (p->rw.phase == RW_DONE)
			r = p->rw.result;
		p->rw.phase = RW_IDLE;
		p->rw.ask = NULL;
	}
	pthread_mutex_unlock(&p->rw.lock);
	return r;
}

/* The store's writer thread: keep what it gave back for the loop. */
static void
rewind_stored(const struct sink_rewound *r, void *ctx)
{
	struct pipeline *p = ctx;

	pthread_mutex_lock(&p->rw.lock);
	if (p->rw.phase == RW_SINK) {
		p->rw.sink_rc = r->rc;
		snprintf(p->rw.epoch, sizeof p->rw.epoch, "%s",
		         r->epoch ? r->epoch : "");
		/* rewind_begin() made room for every cut. */
		p->rw.nstates = r->count <= p->rw.states_cap ? r->count : 0;
		if (p->rw.nstates)
			memcpy(p->rw.states, r->states,
			       p->rw.nstates * sizeof *p->rw.states);
		p->rw.phase = RW_STORED;
	}
	pthread_mutex_unlock(&p->rw.lock);
	wake_signal(p->rw.wake);
}

/* Nothing to undo with: forget everything, under a new epoch. */
static void
rewind_clear(struct pipeline *p)
{
	char epoch[PIPELINE_EPOCH_MAX + 1] = "";

	epoch_make(epoch, sizeof epoch);
	log_info("replay: seek back without a store: every symbol starts "
	         "over, epoch %s -> %s",
	         p->epoch, epoch);
	snprintf(p->epoch, sizeof p->epoch, "%s", epoch);
	engine_clear(p->engine);
	engine_flush(p->engine);
	if (p->hooks.epoch_changed)
		p->hooks.epoch_changed(p->epoch, p->hooks.ctx);
	rewind_answer(p, FEED_REWIND_CLEARED);
}

/* Every tick the feed pushed before asking is applied and with the sinks:
 * turn its counts into cuts and have the store rewind. */
static void
rewind_begin(struct pipeline *p)
{
	const struct feed_rewind *ask = p->rw.ask;
	struct pipeline_sink *by = NULL;
	struct sink_cut *cuts;
	size_t i, n = 0;

	for (i = 0; i < p->nsinks; i++) {
		struct pipeline_sink *ps = &p->sinks[i];

		if (ps->detached)
			continue;
		if (!ps->sink.ops->rewind || by) {
			log_error("replay: cannot seek back: the %s sink "
			          "cannot go back in time; the replay carries "
			          "on from where it was",
			          ps->sink.ops->name);
			rewind_answer(p, FEED_REWIND_REFUSED);
			return;
		}
		by = ps;
	}
	if (!by) {
		rewind_clear(p);
		return;
	}
	cuts = calloc(ask->count, sizeof *cuts);
	if (ask->count > p->rw.states_cap) {
		struct symbol_state *st =
		        realloc(p->rw.states, ask->count * sizeof *st);

		if (st) {
			p->rw.states = st;
			p->rw.states_cap = ask->count;
		}
	}
	if (!cuts || ask->count > p->rw.states_cap) {
		free(cuts);
		log_error("replay: cannot seek back: out of memory");
		rewind_answer(p, FEED_REWIND_REFUSED);
		return;
	}
	for (i = 0; i < ask->count; i++) {
		const struct feed_rewind_symbol *u = &ask->symbols[i];
		struct symbol_state st;

		/* A tick the engine refused is nowhere to undo. */
		if (engine_get_state(p->engine, u->symbol, &st))
			continue;
		if (u->ticks > st.seq)
			log_warn("replay: seek back: '%s' is at seq %llu, "
			         "fewer than the %llu ticks to undo",
			         u->symbol, (unsigned long long)st.seq,
			         (unsigned long long)u->ticks);
		memcpy(cuts[n].symbol, u->symbol, sizeof cuts[n].symbol);
		cuts[n++].seq = u->ticks < st.seq ? st.seq - u->ticks : 0;
	}
	pthread_mutex_lock(&p->rw.lock);
	p->rw.phase = RW_SINK;
	pthread_mutex_unlock(&p->rw.lock);
	if (by->sink.ops->rewind(by->sink.impl, cuts, n, rewind_stored, p)) {
		log_error("replay: cannot seek back: the %s sink cannot take "
		          "the rewind now",
		          by->sink.ops->name);
		rewind_answer(p, FEED_REWIND_REFUSED);
	}
	free(cuts);
}

static int
compare_state_name(const void *a, const void *b)
{
	return strcmp(((const struct symbol_state *)a)->symbol,
	              ((const struct symbol_state *)b)->symbol);
}

struct state_list {
	struct symbol_state *v;
	size_t n, cap;
	bool failed;
};

static void
collect_state(const struct symbol_state *st, void *ctx)
{
	struct state_list *l = ctx;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct symbol_state *v = realloc(l->v, cap * sizeof *v);

		if (!v) {
			l->failed = true;
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *st;
}

/* The store is done: the engine goes back too, under the store's new
 * epoch, and the clients are told. */
static void
rewind_finish(struct pipeline *p)
{
	struct state_list all = {0};
	struct symbol_state *cut = p->rw.states;
	size_t ncut = p->rw.nstates, i, back = 0;

	if (p->rw.sink_rc) {
		rewind_answer(p, FEED_REWIND_STOP);
		return;
	}
	/* Symbols the seek did not touch keep their state. */
	engine_foreach_symbol(p->engine, collect_state, &all);
	if (all.failed)
		log_error("replay: seek back: out of memory: some symbols "
		          "the seek did not touch are emptied");
	qsort(cut, ncut, sizeof *cut, compare_state_name);
	engine_clear(p->engine);
	for (i = 0; i < all.n; i++)
		if (!bsearch(&all.v[i], cut, ncut, sizeof *cut,
		             compare_state_name) &&
		    engine_restore_symbol(p->engine, &all.v[i]))
			log_warn("replay: could not restore symbol '%s'",
			         all.v[i].symbol);
	for (i = 0; i < ncut; i++) {
		if (!cut[i].seq)
			continue;
		if (engine_restore_symbol(p->engine, &cut[i]))
			log_warn("replay: could not restore symbol '%s'",
			         cut[i].symbol);
		back++;
	}
	free(all.v);
	log_info("replay: seek back: %zu symbols back to the target (%zu with "
	         "no tick left), epoch %s -> %s; clients start over",
	         ncut, ncut - back, p->epoch, p->rw.epoch);
	snprintf(p->epoch, sizeof p->epoch, "%s", p->rw.epoch);
	p->stats.flush_mono_us = clock_mono_us();
	engine_flush(p->engine);
	if (p->hooks.epoch_changed)
		p->hooks.epoch_changed(p->epoch, p->hooks.ctx);
	rewind_answer(p, FEED_REWIND_UNDONE);
}

/* After a drain: a rewind asked for starts once the queue is empty. */
void
pipeline__rewind_poll(struct pipeline *p)
{
	enum rewind_phase phase;

	if (p->stopped)
		return;
	pthread_mutex_lock(&p->rw.lock);
	phase = p->rw.phase;
	pthread_mutex_unlock(&p->rw.lock);
	if (phase == RW_ASKED && !tick_queue_depth(p->queue) && !p->held)
		rewind_begin(p);
	else if (phase == RW_STORED)
		rewind_finish(p);
}

/* The rewind's wake: asked (drain what came before it first), or the
 * store is done. */
void
pipeline__rewind_wake(void *ctx)
{
	struct pipeline *p = ctx;

	if (p->stopped)
		return;
	pipeline__drain(p);
	pipeline__rewind_poll(p);
}

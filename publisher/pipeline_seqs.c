/*
 * pipeline_seqs.c: the seq gate's use: seqs handed out within the store's
 * reservations, ticks held for them, and new epochs of the pipeline's own
 * (see pipeline_private.h).
 */
#include "pipeline_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "epoch.h"
#include "log.h"
#include "seq_gate.h"
#include "wake.h"

/* A tick waiting for its reservation is looked
 * at again this often, and waits at most HOLD_MAX_US before the pipeline
 * gives up on the store and begins a new epoch (at once when the store
 * is failing). */
#define HOLD_POLL_MS 20
#define HOLD_MAX_US  (1000 * 1000ll)

/* ------------------------------------------------------------------ seqs */

/*
 * Seqs (store.h, "Seqs"): a seq is handed out only within what the
 * reserving sink (the store) has made durable for its symbol, so that no
 * crash or full disk can make it name other data later. The gate checks
 * each tick the engine is to number (an edge's ticks come numbered, and
 * are not checked); a tick the gate holds back stops the drain there: it
 * and the ticks after it wait at the front of the batch, in order, until
 * the grant comes (the sink's wake) or HOLD_MAX_US has passed (the hold's
 * timer). Asks for more go out after each drain, so normally no tick ever
 * waits: only a new symbol, or a symbol's first field of a kind.
 *
 * When the store cannot grant (it is failing, or too slow), the pipeline
 * begins a new epoch of its own: clients are told (epoch_changed: they
 * start over with snapshots), seqs go on ungated, since nobody can hold
 * a seq of an epoch that no crash can bring back, and as soon as the
 * store writes again it is asked to make the epoch its own, with a
 * reservation for every symbol, in one step; the gate holds to those from
 * then on.
 */

static int
gate_lookup(const char *symbol, uint64_t *seq, uint16_t *fields, void *ctx)
{
	struct pipeline *p = ctx;
	struct symbol_state st;

	if (engine_get_state(p->engine, symbol, &st))
		return -1;
	*seq = st.seq;
	*fields = st.present;
	return 0;
}

/* Hand the gate's asks to the reserver. */
static void
gate_flush_asks(struct pipeline *p)
{
	const struct sink_reservation *r;
	size_t n;

	r = seq_gate_asks(p->gate, &n);
	if (!n)
		return;
	if (p->reserver->sink.ops->reserve(p->reserver->sink.impl,
	                                   seq_gate_gen(p->gate), NULL, r, n))
		log_warn("seqs: out of memory: %zu reservations not asked "
		         "for; their ticks wait",
		         n);
	else
		p->stats.seq_asks += n;
	seq_gate_clear_asks(p->gate);
}

/*
 * Apply the n ticks at the front of the batch through the gate, and
 * compact the applied ones to the front (seq set). A tick held back stops
 * it: that tick and the rest stay for later (p->held of them, moved to
 * the front by the caller once the applied ones are handed on), and the
 * rest are looked at for what they will need, so their asks go out now,
 * together. Returns the ticks applied.
 */
size_t
pipeline__gate_apply(struct pipeline *p, size_t n)
{
	int64_t now = clock_mono_us();
	size_t i, j, applied = 0;

	for (i = 0; i < n; i++) {
		struct tick *t = &p->batch[i];
		struct seq_gate_sym *y = NULL;
		uint64_t seq;

		/* A new symbol beyond the engine's bound: the engine
		 * refuses it (and counts it), and the store is not asked
		 * for its seqs. */
		if (!t->seq && engine_refuses_new_symbol(p->engine, t)) {
			engine_apply_tick(p->engine, t);
			continue;
		}
		if (!t->seq && !seq_gate_check(p->gate, t, now, &y))
			break;
		seq = engine_apply_tick(p->engine, t);
		if (!seq)
			continue;
		seq_gate_applied(y, t, seq);
		if (applied != i)
			p->batch[applied] = *t;
		p->batch[applied++].seq = seq;
	}
	p->held = n - i;
	if (!p->held) {
		p->held_since_us = 0;
	} else if (i || !p->held_since_us) {
		/* A new wait (not the same tick still waiting). */
		struct seq_gate_sym *y;

		p->held_since_us = now;
		p->stats.seq_holds++;
		for (j = i + 1; j < n; j++)
			if (!p->batch[j].seq &&
			    !engine_refuses_new_symbol(p->engine, &p->batch[j]))
				seq_gate_check(p->gate, &p->batch[j], now, &y);
	}
	gate_flush_asks(p);
	return applied;
}

static void
hold_timer_cb(uv_timer_t *t)
{
	struct pipeline *p = t->data;

	if (p->held)
		pipeline__drain(p);
}

/* A sink's grant: the gate may go that far. An epoch's grant of this
 * generation: the epoch is the store's now, and survives a crash. */
static void
gate_granted(const struct sink_grant *g, void *ctx)
{
	struct pipeline *p = ctx;
	size_t i;

	if (g->gen != seq_gate_gen(p->gate))
		return;
	for (i = 0; i < g->n; i++)
		if (seq_gate_grant(p->gate, g->gen, &g->r[i]))
			log_warn("seqs: out of memory taking a grant for '%s'",
			         g->r[i].symbol);
	p->stats.seq_grants += g->n;
	if (g->epoch && !strcmp(g->epoch, p->epoch) &&
	    !p->stats.epoch_durable) {
		p->stats.epoch_durable = true;
		log_info("seqs: epoch %s is stored: it survives a crash from "
		         "now on",
		         p->epoch);
	}
}

struct seed_list {
	struct pipeline *p;
	struct sink_reservation *r;
	size_t n, cap;
	bool failed;
};

static void
seed_symbol(const struct symbol_state *st, void *ctx)
{
	struct seed_list *l = ctx;

	if (l->failed || l->n == l->cap) {
		l->failed = true;
		return;
	}
	l->r[l->n] = seq_gate_first_ask(st->symbol, st->seq, st->present);
	if (seq_gate_seed(l->p->gate, &l->r[l->n], st->seq, st->present))
		l->failed = true;
	l->n++;
}

/* The store writes again: ask it to make our epoch its own, with a block
 * for every symbol, in one step; the gate holds to those blocks from now
 * on (they are durable once the epoch is). */
static void
gate_make_durable(struct pipeline *p)
{
	struct seed_list l = {p, NULL, 0, engine_symbol_count(p->engine), 0};
	int rc = -1;

	l.r = malloc((l.cap ? l.cap : 1) * sizeof *l.r);
	if (l.r) {
		engine_foreach_symbol(p->engine, seed_symbol, &l);
		if (!l.failed)
			rc = p->reserver->sink.ops->reserve(
			        p->reserver->sink.impl, seq_gate_gen(p->gate),
			        p->epoch, l.r, l.n);
	}
	free(l.r);
	if (rc) {
		/* Tried again with the next drain. */
		seq_gate_reset(p->gate);
		return;
	}
	p->gate_volatile = false;
	p->gate_on = true;
	log_info("seqs: the store writes again: asking it to keep epoch %s "
	         "(%zu symbols)",
	         p->epoch, l.n);
}

/* Grants in; and an epoch of our own made durable once the store can. */
void
pipeline__gate_sync(struct pipeline *p)
{
	struct pipeline_sink *ps = p->reserver;
	struct sink_status st;

	if (ps->detached) {
		p->gate_on = p->gate_volatile = false;
		return;
	}
	ps->sink.ops->reserved(ps->sink.impl, gate_granted, p);
	if (!p->gate_volatile)
		return;
	ps->sink.ops->status(ps->sink.impl, &st);
	if (!st.failing)
		gate_make_durable(p);
}

/*
 * Begin an epoch of our own (see above): the store cannot reserve, or
 * another sink (Redis) holds seqs of this epoch that we do not. Seqs go
 * on from where they are; every client starts over. Sinks other than the
 * reserver follow the epoch as an edge's do (sink_ops.epoch).
 */
static void
gate_new_epoch(struct pipeline *p, const char *why)
{
	char epoch[PIPELINE_EPOCH_MAX + 1];
	size_t i;

	epoch_make(epoch, sizeof epoch);
	log_warn("seqs: %s: new epoch %s (was %s); clients start over with "
	         "snapshots, and no seq is handed out twice",
	         why, epoch, p->epoch);
	snprintf(p->epoch, sizeof p->epoch, "%s", epoch);
	if (p->gate) {
		seq_gate_reset(p->gate);
		p->gate_on = false;
		p->gate_volatile = true;
		p->held_since_us = 0;
		p->stats.epoch_durable = false;
	}
	p->stats.epoch_changes++;
	for (i = 0; i < p->nsinks; i++) {
		struct pipeline_sink *ps = &p->sinks[i];

		if (ps == p->reserver || ps->detached || !ps->sink.ops->epoch)
			continue;
		if (ps->sink.ops->epoch(ps->sink.impl, epoch, ps->detached_why,
		                        sizeof ps->detached_why)) {
			ps->detached = true;
			log_error("%s (ticks are not sent to it meanwhile)",
			          ps->detached_why);
		}
	}
	if (p->hooks.epoch_changed)
		p->hooks.epoch_changed(epoch, p->hooks.ctx);
}

/*
 * A new epoch asked for from outside (an ingest's Redis holds seqs of
 * this one that the store does not: see redis_link.h). Before the start,
 * the gate starts in it (pipeline__gate_start); no client or sink has seen the
 * old one then, bar the store, which is asked to keep the new one.
 */
void
pipeline_new_epoch(struct pipeline *p, const char *why)
{
	if (p->stopped)
		return;
	if (!p->started) {
		char epoch[PIPELINE_EPOCH_MAX + 1];

		epoch_make(epoch, sizeof epoch);
		log_warn("seqs: %s: new epoch %s (was %s)", why, epoch,
		         p->epoch);
		snprintf(p->epoch, sizeof p->epoch, "%s", epoch);
		p->start_volatile = true;
		p->stats.epoch_changes++;
		return;
	}
	gate_new_epoch(p, why);
	/* Ticks that waited for a reservation go on ungated. */
	if (p->held)
		wake_signal(p->again);
}

/* The loop's side of pipeline_ask_new_epoch(). */
void
pipeline__epoch_asked(void *ctx)
{
	struct pipeline *p = ctx;
	char why[sizeof p->ask_why];
	bool go;

	pthread_mutex_lock(&p->ask_lock);
	go = p->asked && !strcmp(p->ask_epoch, p->epoch);
	p->asked = false;
	snprintf(why, sizeof why, "%s", p->ask_why);
	pthread_mutex_unlock(&p->ask_lock);
	if (go)
		pipeline_new_epoch(p, why);
}

void
pipeline_ask_new_epoch(struct pipeline *p, const char *epoch, const char *why)
{
	pthread_mutex_lock(&p->ask_lock);
	p->asked = true;
	snprintf(p->ask_epoch, sizeof p->ask_epoch, "%s", epoch);
	snprintf(p->ask_why, sizeof p->ask_why, "%s", why);
	pthread_mutex_unlock(&p->ask_lock);
	wake_signal(p->epoch_wake);
}

/* After a drain that left ticks waiting: give up on the store when it is
 * failing or has not granted within HOLD_MAX_US, else look again soon. */
void
pipeline__gate_hold(struct pipeline *p)
{
	struct sink_status st;
	int64_t waited = clock_mono_us() - p->held_since_us;

	p->reserver->sink.ops->status(p->reserver->sink.impl, &st);
	if (st.failing || waited >= HOLD_MAX_US) {
		char why[300];

		snprintf(why, sizeof why,
		         "the store could not reserve seqs %s (%s)",
		         st.failing ? "while failing" : "within 1 s",
		         st.failing ? st.reason : "too slow");
		gate_new_epoch(p, why);
		wake_signal(p->again);
		return;
	}
	uv_timer_start(p->hold_timer, hold_timer_cb, HOLD_POLL_MS, 0);
}

/* Start: the reserver's grants of what it holds, and asks for every
 * symbol short of room, before the first tick. */
void
pipeline__gate_start(struct pipeline *p)
{
	size_t i;

	for (i = 0; i < p->nsinks && !p->reserver; i++)
		if (!p->sinks[i].detached && p->sinks[i].sink.ops->reserve &&
		    p->sinks[i].sink.ops->reserved)
			p->reserver = &p->sinks[i];
	/* An edge's seqs come from its ingest. */
	if (!p->reserver || p->follower)
		return;
	p->gate = seq_gate_create(gate_lookup, p);
	p->hold_timer = malloc(sizeof *p->hold_timer);
	if (!p->gate || !p->hold_timer ||
	    uv_timer_init(p->loop, p->hold_timer)) {
		free(p->hold_timer);
		p->hold_timer = NULL;
		log_error("seqs: out of memory: seqs are not reserved, so a "
		          "crash may reuse them");
		return;
	}
	p->hold_timer->data = p;
	p->gate_on = true;
	p->stats.seq_gated = true;
	p->stats.epoch_durable = true;
	if (p->start_volatile) {
		/* A new epoch before the start: the store's reservations are
		 * of the old one; it is asked to keep ours at once. */
		seq_gate_reset(p->gate);
		p->gate_on = false;
		p->gate_volatile = true;
		p->stats.epoch_durable = false;
	}
	pipeline__gate_sync(p);
	seq_gate_ask_due(p->gate, clock_mono_us());
	gate_flush_asks(p);
}

struct final_list {
	struct sink_reservation *r;
	size_t n, cap;
};

static void
final_symbol(const struct symbol_state *st, void *ctx)
{
	struct final_list *l = ctx;
	struct sink_reservation *r;

	if (l->n == l->cap)
		return;
	r = &l->r[l->n++];
	memset(r, 0, sizeof *r);
	snprintf(r->symbol, sizeof r->symbol, "%s", st->symbol);
	r->seq = st->seq;
	r->fields = st->present;
	r->final = true;
}

/* A clean stop: every symbol's last seq, so the store trims the
 * reservations to them and a clean restart goes on with no gap. */
void
pipeline__gate_finish(struct pipeline *p)
{
	struct final_list l = {NULL, 0, engine_symbol_count(p->engine)};

	if (!p->gate || p->reserver->detached || !l.cap)
		return;
	l.r = malloc(l.cap * sizeof *l.r);
	if (!l.r)
		return;
	engine_foreach_symbol(p->engine, final_symbol, &l);
	if (p->reserver->sink.ops->reserve(p->reserver->sink.impl,
	                                   seq_gate_gen(p->gate), NULL, l.r,
	                                   l.n))
		log_warn("seqs: out of memory: reservations are not trimmed; "
		         "the restart goes on past them");
	free(l.r);
}

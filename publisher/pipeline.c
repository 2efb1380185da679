/*
 * pipeline.c: drain, apply, hand to the sinks, flush (see pipeline.h).
 */
#include "pipeline.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "epoch.h"
#include "feed.h"
#include "log.h"
#include "redis_link.h"
#include "seq_gate.h"
#include "wake.h"

/* Ticks moved from the queue per drain before the loop gets to write: at
 * 200k ticks/s a drain then covers at most a third of a second. */
#define DRAIN_BUDGET 65536
#define MAX_SINKS    4
#define MAX_WAKES    8
/* Seqs (see "Seqs" below): a tick waiting for its reservation is looked
 * at again this often, and waits at most HOLD_MAX_US before the pipeline
 * gives up on the store and begins a new epoch (at once when the store
 * is failing). */
#define HOLD_POLL_MS 20
#define HOLD_MAX_US  (1000 * 1000ll)

struct pipeline_sink {
	struct sink sink;
	void (*destroy)(void *impl);
	bool detached; /* stopped feeding it (see sink_ops.epoch) */
	char detached_why[200];
};

/* Where a replay's seek back stands (see "Rewinds" below). */
enum rewind_phase {
	RW_IDLE,
	RW_ASKED,  /* the feed waits; the queue drains first */
	RW_SINK,   /* the store is rewinding */
	RW_STORED, /* the store is done: the engine follows */
	RW_DONE,   /* answered: the feed goes on */
};

struct rewind_state {
	pthread_mutex_t lock; /* all below, between the feed, the loop and
	                       * the store's writer */
	pthread_cond_t answered;
	struct wake *wake;
	enum rewind_phase phase;
	bool closing;
	const struct feed_rewind *ask; /* borrowed while the feed waits */
	enum feed_rewind_result result;
	/* What the store gave back. */
	int sink_rc;
	char epoch[PIPELINE_EPOCH_MAX + 1];
	struct symbol_state *states;
	size_t nstates, states_cap;
};

struct pipeline {
	uv_loop_t *loop;
	struct engine *engine;
	struct tick_queue *queue;
	char epoch[PIPELINE_EPOCH_MAX + 1];
	bool file_source;

	struct feed *feed;
	struct redis_follower *follower;
	bool stopped;

	struct pipeline_sink sinks[MAX_SINKS];
	size_t nsinks;

	struct pipeline_hooks hooks;

	struct wake *queue_wake; /* the queue went from empty to not */
	struct wake *again;	 /* more was left than one drain takes */
	struct wake *wakes[MAX_WAKES]; /* sinks' and the follower's */
	size_t nwakes;

	struct tick *batch; /* DRAIN_BUDGET ticks */
	struct pipeline_stats stats;
	bool logged_waiting;
	uint64_t symbols_refused; /* the engine's count, as last logged */

	/* Seqs (see "Seqs" below). gate_on: seqs are handed out within
	 * the reserver's grants; volatile: the epoch is the pipeline's own,
	 * not stored yet, and nothing is gated until it is asked to be. */
	struct pipeline_sink *reserver;
	struct seq_gate *gate;
	bool gate_on, gate_volatile;
	bool started;
	bool start_volatile;   /* a new epoch before the start */
	size_t held;           /* ticks at the front of batch that wait */
	int64_t held_since_us; /* monotonic; 0: none wait */
	uv_timer_t *hold_timer;

	struct rewind_state rw;

	/* New epochs asked for from other threads (pipeline_ask_new_epoch):
	 * under ask_lock, for the loop's epoch_wake. */
	pthread_mutex_t ask_lock;
	struct wake *epoch_wake;
	bool asked;
	char ask_epoch[PIPELINE_EPOCH_MAX + 1];
	char ask_why[300];
};

static void rewind_poll(struct pipeline *p);

static void gate_sync(struct pipeline *p);

static size_t gate_apply(struct pipeline *p, size_t n);

static void gate_hold(struct pipeline *p);

/* ------------------------------------------------------------- the drain */

static int
state_of(const char *symbol, struct symbol_state *out, void *ctx)
{
	struct pipeline *p = ctx;

	return engine_get_state(p->engine, symbol, out);
}

/* Ticks every sink still fed can take now without dropping. */
static size_t
sinks_space(struct pipeline *p, size_t budget)
{
	size_t i;

	for (i = 0; i < p->nsinks; i++) {
		struct pipeline_sink *ps = &p->sinks[i];
		size_t room;

		if (ps->detached)
			continue;
		room = ps->sink.ops->space(ps->sink.impl);
		if (room < budget)
			budget = room;
	}
	return budget;
}

/* Ticks of symbols new to the engine beyond its bound
 * (engine_set_max_symbols) are refused there, before any sink sees them;
 * the operator hears of it here, a few lines per 10 s at most. */
static void
log_refused_symbols(struct pipeline *p)
{
	struct engine_stats es;

	engine_get_stats(p->engine, &es);
	if (es.symbols_refused == p->symbols_refused)
		return;
	log_limited(
	        LOG_WARN,
	        "feed: %llu ticks of new symbols refused: %zu symbols "
	        "have data, the limit (--max-symbols-total)",
	        (unsigned long long)(es.symbols_refused - p->symbols_refused),
	        es.symbols);
	p->symbols_refused = es.symbols_refused;
}

/*
 * Move what the queue holds into the engine and on to the sinks, then tell
 * the subscribers. A file source takes no more than every sink has room
 * for: its queue fills and the replay waits, and the sink's wake brings
 * the drain back. A live source takes its whole budget: a sink with no room
 * drops what does not fit and says so (sink.h), and the clients never see
 * a tick later for it.
 */
static void
drain(void *ctx)
{
	struct pipeline *p = ctx;
	size_t budget = DRAIN_BUDGET, n, i, applied = 0, got;

	if (p->stopped)
		return;
	for (i = 0; i < p->nsinks; i++) {
		struct pipeline_sink *ps = &p->sinks[i];

		if (!ps->detached && ps->sink.ops->wants_resume(ps->sink.impl))
			ps->sink.ops->resume(ps->sink.impl, state_of, p);
	}
	if (p->gate_on || p->gate_volatile)
		gate_sync(p);
	if (p->file_source) {
		budget = sinks_space(p, budget);
		p->stats.waiting_for_sink = budget == 0;
		if (!budget) {
			if (!p->logged_waiting && tick_queue_depth(p->queue))
				log_info("replay waits for the store to catch "
					 "up");
			p->logged_waiting = true;
			return;
		}
		p->logged_waiting = false;
	}
	/* Ticks that wait for their seqs' reservation come first. */
	got = tick_queue_drain(p->queue, p->batch + p->held,
	                       budget > p->held ? budget - p->held : 0);
	n = p->held + got;
	if (p->gate_on) {
		applied = gate_apply(p, n);
	} else {
		for (i = 0; i < n; i++) {
			uint64_t seq =
			        engine_apply_tick(p->engine, &p->batch[i]);

			if (!seq)
				continue;
			if (applied != i)
				p->batch[applied] = p->batch[i];
			p->batch[applied++].seq = seq;
		}
		p->held = 0;
	}
	for (i = 0; applied && i < p->nsinks; i++) {
		struct pipeline_sink *ps = &p->sinks[i];

		if (!ps->detached)
			ps->sink.ops->append(ps->sink.impl, p->batch, applied);
	}
	if (p->held)
		memmove(p->batch, p->batch + n - p->held,
		        p->held * sizeof *p->batch);
	if (got) {
		p->stats.drains++;
		p->stats.drained_ticks += got;
	}
	log_refused_symbols(p);
	p->stats.flush_mono_us = clock_mono_us();
	engine_flush(p->engine);
	if (p->held)
		gate_hold(p);
	/* Still more waiting: come back after this turn's writes rather than
	 * starving the clients (unless ticks wait for a reservation: its
	 * grant, or the hold's timer, comes back). */
	if (n == budget && !p->held)
		wake_signal(p->again);
	rewind_poll(p);
}

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
static size_t
gate_apply(struct pipeline *p, size_t n)
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
		drain(p);
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
static void
gate_sync(struct pipeline *p)
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
 * the gate starts in it (gate_start); no client or sink has seen the old
 * one then, bar the store, which is asked to keep the new one.
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
static void
epoch_asked(void *ctx)
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
static void
gate_hold(struct pipeline *p)
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
static void
gate_start(struct pipeline *p)
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
	gate_sync(p);
	seq_gate_ask_due(p->gate, clock_mono_us());
	gate_flush_asks(p);
}

static void
free_timer(uv_handle_t *h)
{
	free(h);
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
static void
gate_finish(struct pipeline *p)
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

/* ---------------------------------------------------------- following */

void
pipeline_follow_epoch(const char *epoch, void *ctx)
{
	struct pipeline *p = ctx;
	size_t i;

	log_info("redis: following epoch %s", epoch);
	if (!strcmp(p->epoch, epoch))
		return;
	if (p->epoch[0] && engine_symbol_count(p->engine))
		log_warn("epoch %s -> %s: emptying the old symbols and "
			 "closing every client with 1012",
			 p->epoch, epoch);
	snprintf(p->epoch, sizeof p->epoch, "%s", epoch);
	/* The old life's symbols go, and so does what clients hold. */
	engine_clear(p->engine);
	for (i = 0; i < p->nsinks; i++) {
		struct pipeline_sink *ps = &p->sinks[i];

		if (ps->detached || !ps->sink.ops->epoch)
			continue;
		if (ps->sink.ops->epoch(ps->sink.impl, epoch, ps->detached_why,
					sizeof ps->detached_why)) {
			ps->detached = true;
			log_error("%s (ticks are not stored meanwhile)",
				  ps->detached_why);
		}
	}
	if (p->hooks.epoch_changed)
		p->hooks.epoch_changed(epoch, p->hooks.ctx);
}

void
pipeline_follow_restore(const struct symbol_state *st, void *ctx)
{
	struct pipeline *p = ctx;
	struct symbol_state cur;
	size_t i;
	int rc;
	bool had = !engine_get_state(p->engine, st->symbol, &cur);

	/*
	 * Within one epoch a (symbol, seq) pair names one state on every
	 * node, and the state Redis holds is never behind the stream the
	 * engine took its ticks from: the ingest's state goes on from ours,
	 * so clients keep their place and get a delta from the seq they
	 * hold, or nothing (engine_advance_symbol). One that does not go on
	 * from ours means the ingest went back on seqs it had published (it
	 * must not: README, "Scale-out through Redis"). It is taken all the
	 * same, since every tick that follows would contradict ours, and
	 * clients get snapshots.
	 */
	rc = engine_advance_symbol(p->engine, st);
	if (rc < 0) {
		log_warn("redis: could not restore symbol '%s'", st->symbol);
		return;
	}
	if (rc > 0 && had)
		log_limited(LOG_ERROR,
		            "redis: the ingest's state of '%s' at seq %llu "
		            "does not go on from this edge's at seq %llu in "
		            "epoch %s: the ingest went back on seqs it had "
		            "published; its state is taken, and clients get "
		            "snapshots",
		            st->symbol, (unsigned long long)st->seq,
		            (unsigned long long)cur.seq, p->epoch);
	/* The sinks follow: later ticks (higher seqs) are stored; the ticks
	 * the resync skipped are absent from their history. */
	for (i = 0; i < p->nsinks; i++) {
		struct pipeline_sink *ps = &p->sinks[i];

		if (!ps->detached && ps->sink.ops->restore)
			ps->sink.ops->restore(ps->sink.impl, st);
	}
}

/* An edge's resync first: ticks still queued from before it are older
 * than the states and the engine refuses them. */
static void
follow(void *ctx)
{
	struct pipeline *p = ctx;

	if (p->stopped || !p->follower)
		return;
	if (redis_follower_apply_pending(p->follower) > 0) {
		p->stats.flush_mono_us = clock_mono_us();
		engine_flush(p->engine);
	}
	drain(p);
}

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
static enum feed_rewind_result
rewind_ask(const struct feed_rewind *ask, void *ctx)
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
static void
rewind_poll(struct pipeline *p)
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
static void
rewind_wake(void *ctx)
{
	struct pipeline *p = ctx;

	if (p->stopped)
		return;
	drain(p);
	rewind_poll(p);
}

/* ----------------------------------------------------------------- API */

static struct wake *
new_wake(struct pipeline *p, void (*fn)(void *ctx))
{
	struct wake *w;

	if (p->nwakes == MAX_WAKES)
		return NULL;
	w = wake_new(p->loop, fn, p);
	if (w)
		p->wakes[p->nwakes++] = w;
	return w;
}

struct pipeline *
pipeline_create(const struct pipeline_options *opt, char *err, size_t errlen)
{
	struct pipeline *p;
	struct engine_config ec;

	if (!opt->epoch || !opt->epoch[0] ||
	    strlen(opt->epoch) > PIPELINE_EPOCH_MAX) {
		snprintf(err, errlen, "epoch must be 1..%d characters",
			 PIPELINE_EPOCH_MAX);
		return NULL;
	}
	p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->loop = opt->loop;
	p->file_source = opt->file_source;
	snprintf(p->epoch, sizeof p->epoch, "%s", opt->epoch);
	memset(&ec, 0, sizeof ec);
	ec.frame_headroom = opt->frame_headroom;
	ec.frame_cap = opt->frame_cap;
	p->engine = engine_create(&ec);
	p->batch = malloc(DRAIN_BUDGET * sizeof *p->batch);
	p->queue_wake = wake_new(p->loop, drain, p);
	p->again = wake_new(p->loop, drain, p);
	p->rw.wake = wake_new(p->loop, rewind_wake, p);
	p->epoch_wake = wake_new(p->loop, epoch_asked, p);
	pthread_mutex_init(&p->rw.lock, NULL);
	pthread_cond_init(&p->rw.answered, NULL);
	pthread_mutex_init(&p->ask_lock, NULL);
	if (!p->engine || !p->batch || !p->queue_wake || !p->again ||
	    !p->rw.wake || !p->epoch_wake) {
		snprintf(err, errlen, "out of memory");
		pipeline_destroy(p);
		return NULL;
	}
	p->queue = tick_queue_create(opt->queue_capacity, wake_signal,
				     p->queue_wake);
	if (!p->queue) {
		snprintf(err, errlen, "out of memory");
		pipeline_destroy(p);
		return NULL;
	}
	return p;
}

struct tick_queue *
pipeline_queue(struct pipeline *p)
{
	return p->queue;
}

struct engine *
pipeline_engine(struct pipeline *p)
{
	return p->engine;
}

const char *
pipeline_epoch(const struct pipeline *p)
{
	return p->epoch;
}

void
pipeline_set_epoch(struct pipeline *p, const char *epoch)
{
	snprintf(p->epoch, sizeof p->epoch, "%s", epoch);
}

struct wake *
pipeline_sink_wake(struct pipeline *p)
{
	return new_wake(p, drain);
}

struct wake *
pipeline_follow_wake(struct pipeline *p)
{
	return new_wake(p, follow);
}

void
pipeline_set_feed(struct pipeline *p, struct feed *feed)
{
	p->feed = feed;
	if (feed)
		feed_set_rewind(feed, rewind_ask, p);
}

struct feed *
pipeline_feed(struct pipeline *p)
{
	return p->feed;
}

void
pipeline_set_follower(struct pipeline *p, struct redis_follower *f)
{
	p->follower = f;
}

struct redis_follower *
pipeline_follower(struct pipeline *p)
{
	return p->follower;
}

int
pipeline_add_sink(struct pipeline *p, struct sink sink,
		  void (*destroy)(void *impl))
{
	struct pipeline_sink *ps;

	if (p->nsinks == MAX_SINKS)
		return -1;
	ps = &p->sinks[p->nsinks++];
	memset(ps, 0, sizeof *ps);
	ps->sink = sink;
	ps->destroy = destroy;
	return 0;
}

int
pipeline_sink_status(struct pipeline *p, const char *name,
		     struct sink_status *out, bool *detached)
{
	size_t i;

	for (i = 0; i < p->nsinks; i++) {
		struct pipeline_sink *ps = &p->sinks[i];

		if (strcmp(ps->sink.ops->name, name))
			continue;
		ps->sink.ops->status(ps->sink.impl, out);
		*detached = ps->detached;
		if (ps->detached)
			snprintf(out->reason, sizeof out->reason, "%s",
				 ps->detached_why);
		return 0;
	}
	return -1;
}

void
pipeline_set_hooks(struct pipeline *p, const struct pipeline_hooks *hooks)
{
	p->hooks = *hooks;
	engine_set_client_ready(p->engine, hooks->client_ready, hooks->ctx);
}

int
pipeline_start(struct pipeline *p, char *err, size_t errlen)
{
	gate_start(p);
	p->started = true;
	if (p->feed && feed_start(p->feed, err, errlen))
		return -1;
	return 0;
}

void
pipeline_stop(struct pipeline *p)
{
	if (p->stopped)
		return;
	p->stopped = true;
	/* A producer blocked on a full queue, or on a rewind, must be
	 * released before it is joined. */
	tick_queue_close(p->queue);
	pthread_mutex_lock(&p->rw.lock);
	p->rw.closing = true;
	pthread_cond_broadcast(&p->rw.answered);
	pthread_mutex_unlock(&p->rw.lock);
	if (p->feed)
		feed_stop(p->feed);
	redis_follower_destroy(p->follower);
	p->follower = NULL;
}

int64_t
pipeline_history_end(struct pipeline *p)
{
	struct feed_status fs;
	int64_t end;

	if (!p->feed)
		return INT64_MAX;
	feed_get_status(p->feed, &fs);
	if (!fs.replay_state || !fs.position_ts)
		return INT64_MAX;
	end = fs.position_ts;
	/* Going back: what lies at or after the target is on its way out. */
	if (!strcmp(fs.replay_state, "seeking") && fs.seek_ts <= end)
		end = fs.seek_ts - 1;
	if ((fs.shift > 0 && end > INT64_MAX - fs.shift) ||
	    (fs.shift < 0 && end < INT64_MIN - fs.shift))
		return INT64_MAX;
	return end + fs.shift;
}

void
pipeline_get_stats(const struct pipeline *p, struct pipeline_stats *out)
{
	*out = p->stats;
	out->queue_depth = p->queue ? tick_queue_depth(p->queue) : 0;
}

void
pipeline_destroy(struct pipeline *p)
{
	size_t i;

	if (!p)
		return;
	if (p->queue)
		pipeline_stop(p);
	feed_destroy(p->feed);
	gate_finish(p);
	/* Each sink writes what it still holds as it goes. */
	for (i = 0; i < p->nsinks; i++)
		if (p->sinks[i].destroy)
			p->sinks[i].destroy(p->sinks[i].sink.impl);
	tick_queue_destroy(p->queue);
	engine_destroy(p->engine);
	wake_free(p->queue_wake);
	wake_free(p->again);
	wake_free(p->rw.wake);
	wake_free(p->epoch_wake);
	pthread_cond_destroy(&p->rw.answered);
	pthread_mutex_destroy(&p->rw.lock);
	pthread_mutex_destroy(&p->ask_lock);
	free(p->rw.states);
	seq_gate_destroy(p->gate);
	if (p->hold_timer)
		uv_close((uv_handle_t *)p->hold_timer, free_timer);
	for (i = 0; i < p->nwakes; i++)
		wake_free(p->wakes[i]);
	free(p->batch);
	free(p);
}

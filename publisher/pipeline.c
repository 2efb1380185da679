/*
 * pipeline.c: drain, apply, hand to the sinks, flush (see pipeline.h); an
 * edge's following of its ingest; the API. Seqs and rewinds are in files of
 * their own (pipeline_private.h).
 */
#include "pipeline_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "redis_link.h"
#include "seq_gate.h"
#include "wake.h"

/* Ticks moved from the queue per drain before the loop gets to write: at
 * 200k ticks/s a drain then covers at most a third of a second. */
#define DRAIN_BUDGET 65536

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
void
pipeline__drain(void *ctx)
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
		pipeline__gate_sync(p);
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
		applied = pipeline__gate_apply(p, n);
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
		pipeline__gate_hold(p);
	/* Still more waiting: come back after this turn's writes rather than
	 * starving the clients (unless ticks wait for a reservation: its
	 * grant, or the hold's timer, comes back). */
	if (n == budget && !p->held)
		wake_signal(p->again);
	pipeline__rewind_poll(p);
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
	pipeline__drain(p);
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
	ec.sessions = opt->sessions;
	p->engine = engine_create(&ec);
	p->batch = malloc(DRAIN_BUDGET * sizeof *p->batch);
	p->queue_wake = wake_new(p->loop, pipeline__drain, p);
	p->again = wake_new(p->loop, pipeline__drain, p);
	p->rw.wake = wake_new(p->loop, pipeline__rewind_wake, p);
	p->epoch_wake = wake_new(p->loop, pipeline__epoch_asked, p);
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
	return new_wake(p, pipeline__drain);
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
		feed_set_rewind(feed, pipeline__rewind_ask, p);
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
	pipeline__gate_start(p);
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

static void
free_timer(uv_handle_t *h)
{
	free(h);
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
	pipeline__gate_finish(p);
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

/*
 * redis_nodes.c: an ingest and an edge of the Redis link, for its test and
 * its benchmark.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/redis_nodes.h"
#include "support/ticks.h"
#include "support/timing.h"

/* Ticks applied and appended at a time. */
#define PUSH_MAX 256
/* Ticks drained from the edge's queue at a time. */
#define DRAIN_MAX 512

int
redis_ingest_open(struct redis_ingest *in,
                  const struct redis_publisher_options *o, size_t keep_ticks,
                  char *err, size_t errlen)
{
	memset(in, 0, sizeof *in);
	in->engine = quiet_engine_create();
	in->sent_cap = keep_ticks;
	in->sent = keep_ticks ? malloc(keep_ticks * sizeof *in->sent) : NULL;
	if (!in->engine || (keep_ticks && !in->sent)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	in->pub = redis_publisher_create(o, err, errlen);
	if (!in->pub)
		goto fail;
	pthread_mutex_init(&in->mu, NULL);
	return 0;
fail:
	engine_destroy(in->engine);
	free(in->sent);
	return -1;
}

size_t
redis_ingest_push(struct redis_ingest *in, const struct tick *t, size_t n)
{
	struct tick buf[PUSH_MAX];
	size_t applied = 0;

	while (n > 0) {
		size_t chunk = n < PUSH_MAX ? n : PUSH_MAX, i, k = 0;

		pthread_mutex_lock(&in->mu);
		for (i = 0; i < chunk; i++) {
			buf[k] = t[i];
			buf[k].seq = engine_apply_tick(in->engine, &t[i]);
			if (!buf[k].seq)
				continue;
			if (in->nsent < in->sent_cap)
				in->sent[in->nsent++] = buf[k];
			k++;
		}
		pthread_mutex_unlock(&in->mu);
		while (redis_publisher_append(in->pub, buf, k) != 0) {
			in->full++;
			timing_sleep_us(50);
		}
		applied += k;
		t += chunk;
		n -= chunk;
	}
	return applied;
}

void
redis_ingest_close(struct redis_ingest *in)
{
	redis_publisher_destroy(in->pub);
	engine_destroy(in->engine);
	free(in->sent);
	pthread_mutex_destroy(&in->mu);
}

static void
edge_wake(void *ctx)
{
	struct redis_edge *e = ctx;

	pthread_mutex_lock(&e->mu);
	e->woken = true;
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->mu);
}

/* Called under e->mu (from redis_follower_apply_pending on the edge's
 * thread). A new epoch is a new life: start from an empty engine. */
static void
edge_epoch(const char *epoch, void *ctx)
{
	struct redis_edge *e = ctx;

	if (e->epoch[0]) {
		struct engine *fresh = quiet_engine_create();

		if (fresh) {
			engine_destroy(e->engine);
			e->engine = fresh;
		}
	}
	snprintf(e->epoch, sizeof e->epoch, "%s", epoch);
	e->epoch_changes++;
}

static void
edge_restore(const struct symbol_state *st, void *ctx)
{
	struct redis_edge *e = ctx;
	struct symbol_state cur;

	/* No cmocka asserts off the test's thread: count, check later. */
	if (engine_get_state(e->engine, st->symbol, &cur) == 0 &&
	    st->seq < cur.seq)
		e->restores_backwards++;
	if (engine_restore_symbol(e->engine, st) == 0)
		e->restores++;
}

static void
edge_drain(struct redis_edge *e, struct tick *buf)
{
	size_t n, i;

	while (!e->paused && (n = tick_queue_drain(e->queue, buf, DRAIN_MAX))) {
		int64_t now = clock_wall_us();

		for (i = 0; i < n; i++) {
			if (!engine_apply_tick(e->engine, &buf[i]))
				continue;
			if (e->ngot < e->got_cap)
				e->got[e->ngot++] = buf[i];
			if (e->nlat < e->latency_cap)
				e->latency[e->nlat++] =
				        (int32_t)(now - buf[i].ts);
		}
		e->drained += n;
		e->last_drain_us = now;
	}
}

/* The service thread: resyncs first, then ticks (both orders are safe). */
static void *
edge_main(void *arg)
{
	struct redis_edge *e = arg;
	struct tick *buf = malloc(DRAIN_MAX * sizeof *buf);

	pthread_mutex_lock(&e->mu);
	while (!e->stop) {
		if (!e->woken) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 5000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&e->cond, &e->mu, &ts);
		}
		e->woken = false;
		redis_follower_apply_pending(e->fol);
		if (buf)
			edge_drain(e, buf);
	}
	pthread_mutex_unlock(&e->mu);
	free(buf);
	return NULL;
}

static void
edge_free(struct redis_edge *e)
{
	tick_queue_destroy(e->queue);
	engine_destroy(e->engine);
	free(e->got);
	free(e->latency);
	pthread_cond_destroy(&e->cond);
	pthread_mutex_destroy(&e->mu);
}

int
redis_edge_open(struct redis_edge *e, const struct redis_edge_options *o,
                char *err, size_t errlen)
{
	struct redis_follower_options fo = {0};

	memset(e, 0, sizeof *e);
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cond, NULL);
	e->engine = quiet_engine_create();
	e->queue = tick_queue_create(o->queue_cap, edge_wake, e);
	e->got_cap = o->keep_ticks;
	e->got = o->keep_ticks ? malloc(o->keep_ticks * sizeof *e->got) : NULL;
	e->latency_cap = o->keep_latencies;
	e->latency = o->keep_latencies
	                     ? malloc(o->keep_latencies * sizeof *e->latency)
	                     : NULL;
	if (!e->engine || !e->queue || (o->keep_ticks && !e->got) ||
	    (o->keep_latencies && !e->latency)) {
		snprintf(err, errlen, "out of memory");
		edge_free(e);
		return -1;
	}
	fo.host = "127.0.0.1";
	fo.port = o->port;
	fo.prefix = o->prefix;
	fo.ticks = e->queue;
	fo.epoch = edge_epoch;
	fo.restore = edge_restore;
	fo.wake = edge_wake;
	fo.ctx = e;
	fo.backoff_max_ms = o->backoff_max_ms;
	fo.silent_ms = o->silent_ms;
	e->fol = redis_follower_create(&fo, err, errlen);
	if (!e->fol) {
		edge_free(e);
		return -1;
	}
	if (pthread_create(&e->thread, NULL, edge_main, e) != 0) {
		snprintf(err, errlen, "cannot start the edge's thread");
		redis_follower_destroy(e->fol);
		edge_free(e);
		return -1;
	}
	if (redis_follower_start(e->fol, err, errlen) != 0) {
		redis_edge_close(e);
		return -1;
	}
	return 0;
}

void
redis_edge_close(struct redis_edge *e)
{
	/* The service thread goes first (it calls into the follower); a
	 * follower blocked on a full queue is released by closing it, one
	 * waiting for its resync to be applied by being destroyed. */
	pthread_mutex_lock(&e->mu);
	e->stop = true;
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->mu);
	pthread_join(e->thread, NULL);
	tick_queue_close(e->queue);
	redis_follower_destroy(e->fol);
	edge_free(e);
}

struct redis_edge_counts
redis_edge_counts(struct redis_edge *e)
{
	struct redis_edge_counts c;

	pthread_mutex_lock(&e->mu);
	c.ngot = e->ngot;
	c.drained = e->drained;
	c.last_drain_us = e->last_drain_us;
	c.epoch_changes = e->epoch_changes;
	pthread_mutex_unlock(&e->mu);
	return c;
}

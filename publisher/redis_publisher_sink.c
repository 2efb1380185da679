/*
 * redis_publisher_sink.c: the Redis publisher as the pipeline's sink
 * (sink.h). Live batches go to the publisher's queue; when it is full they
 * are dropped and their symbols noted, and once the queue has drained the
 * serving engine's states of those symbols go to the publisher's thread,
 * which starts a run with them. Also the sink's status and its epoch op.
 * The publisher itself (its queue, its thread) is redis_publisher.c.
 */
#include "redis_private.h"

#include "hash.h"

/* Under p->mu: note that symbol's ticks were dropped. */
static void
note_dropped(struct redis_publisher *p, const char *symbol)
{
	size_t len = strnlen(symbol, TICK_SYMBOL_MAX), i;

	if ((p->ndropped + 1) * 2 > (p->dropped ? p->dropped_mask + 1 : 0)) {
		size_t size = p->dropped ? (p->dropped_mask + 1) * 2 : 1024, k;
		char(*t)[TICK_SYMBOL_MAX + 1] = calloc(size, sizeof *t);

		if (!t)
			return; /* the resume then misses it: the next run
			         * still carries the whole state */
		for (k = 0; p->dropped && k <= p->dropped_mask; k++) {
			size_t j;

			if (!p->dropped[k][0])
				continue;
			j = hash_name(p->dropped[k], strlen(p->dropped[k])) &
			    (size - 1);
			while (t[j][0])
				j = (j + 1) & (size - 1);
			memcpy(t[j], p->dropped[k], sizeof t[j]);
		}
		free(p->dropped);
		p->dropped = t;
		p->dropped_mask = size - 1;
	}
	for (i = hash_name(symbol, len) & p->dropped_mask; p->dropped[i][0];
	     i = (i + 1) & p->dropped_mask)
		if (!strncmp(p->dropped[i], symbol, TICK_SYMBOL_MAX))
			return;
	memcpy(p->dropped[i], symbol, len);
	p->dropped[i][len] = '\0';
	p->ndropped++;
}

static size_t
pub_sink_space(void *impl)
{
	return redis_publisher_append_space(impl);
}

/* A live batch: what fits is queued, the rest (and every tick after it
 * until the queue drains) dropped and its symbols noted. */
static void
pub_sink_append(void *impl, const struct tick *applied, size_t n)
{
	struct redis_publisher *p = impl;
	size_t fit = 0, i;

	pthread_mutex_lock(&p->mu);
	if (!p->stats.dropping && !p->stopping)
		fit = p->cap - p->count < n ? p->cap - p->count : n;
	pthread_mutex_unlock(&p->mu);
	if (fit && redis_publisher_append(p, applied, fit))
		fit = 0;
	if (fit == n)
		return;
	pthread_mutex_lock(&p->mu);
	if (!p->stats.dropping) {
		p->stats.dropping = true;
		p->dropping_since_us = clock_wall_us();
		log_limited(
		        LOG_WARN,
		        "redis: %s:%d cannot keep up with the live feed (%zu "
		        "ticks queued): the edges get the state instead of "
		        "every tick until it catches up",
		        p->host, p->port, p->count);
	}
	for (i = fit; i < n; i++)
		note_dropped(p, applied[i].symbol);
	p->stats.ticks_dropped += n - fit;
	p->want_wake = true;
	pthread_mutex_unlock(&p->mu);
}

static bool
pub_sink_wants_resume(void *impl)
{
	struct redis_publisher *p = impl;
	bool yes;

	pthread_mutex_lock(&p->mu);
	yes = p->stats.dropping && p->count == 0;
	pthread_mutex_unlock(&p->mu);
	return yes;
}

/* The queue has drained: the dropped symbols' states, as the serving
 * engine has them now, go to the thread, which starts a run with them. */
static void
pub_sink_resume(void *impl, sink_state_fn state, void *ctx)
{
	struct redis_publisher *p = impl;
	size_t i, n = 0;

	pthread_mutex_lock(&p->mu);
	for (i = 0; p->dropped && i <= p->dropped_mask; i++) {
		if (!p->dropped[i][0])
			continue;
		if (p->nrestores == p->restores_cap) {
			size_t cap = p->restores_cap ? p->restores_cap * 2 : 64;
			struct symbol_state *r =
			        realloc(p->restores, cap * sizeof *r);

			if (!r)
				break;
			p->restores = r;
			p->restores_cap = cap;
		}
		if (state(p->dropped[i], &p->restores[p->nrestores], ctx) ==
		    0) {
			p->nrestores++;
			n++;
		}
		p->dropped[i][0] = '\0';
	}
	p->ndropped = 0;
	p->stats.dropping = false;
	p->resync_pending = true;
	pthread_mutex_unlock(&p->mu);
	pthread_cond_signal(&p->cond);
	log_limited(LOG_INFO,
	            "redis: caught up; %zu symbols go to the edges as state (a "
	            "new run)",
	            n);
}

static void
pub_sink_status(void *impl, struct sink_status *out)
{
	struct redis_publisher *p = impl;
	struct redis_publisher_stats ps;
	int64_t since;

	redis_publisher_get_stats(p, &ps);
	pthread_mutex_lock(&p->mu);
	since = ps.dropping ? p->dropping_since_us : 0;
	pthread_mutex_unlock(&p->mu);
	memset(out, 0, sizeof *out);
	out->lag_us = ps.lag_us;
	out->queued = ps.queued;
	out->dropped = ps.ticks_dropped;
	out->dropping = ps.dropping;
	out->failing =
	        redis_publisher_degraded(p, out->reason, sizeof out->reason);
	if (!out->failing && since)
		snprintf(out->reason, sizeof out->reason,
		         "redis behind the live feed for %.1f s: the edges get "
		         "state instead of every tick",
		         (double)(clock_wall_us() - since) / 1e6);
}

/* The ingest began a new epoch: published after the ticks queued before
 * it (publisher_take, publisher_switch_epoch). A second one before the
 * first is out replaces it: the ticks between them go out under the
 * newer, where their seqs were never handed out for other values. */
static int
pub_sink_epoch(void *impl, const char *epoch, char *why, size_t len)
{
	struct redis_publisher *p = impl;

	if (!redis__epoch_valid(epoch)) {
		snprintf(why, len,
		         "redis: epoch '%.64s' cannot be published (1..64 "
		         "printable characters without spaces)",
		         epoch);
		return -1;
	}
	pthread_mutex_lock(&p->mu);
	if (!p->epoch_pending) {
		p->epoch_pending = true;
		p->epoch_after = p->count;
	}
	snprintf(p->next_epoch, sizeof p->next_epoch, "%s", epoch);
	pthread_mutex_unlock(&p->mu);
	pthread_cond_signal(&p->cond);
	return 0;
}

static const struct sink_ops pub_sink_ops = {
        .name = "redis",
        .space = pub_sink_space,
        .append = pub_sink_append,
        .wants_resume = pub_sink_wants_resume,
        .resume = pub_sink_resume,
        .status = pub_sink_status,
        .epoch = pub_sink_epoch,
};

struct sink
redis_publisher_sink(struct redis_publisher *p)
{
	struct sink k = {&pub_sink_ops, p};

	return k;
}

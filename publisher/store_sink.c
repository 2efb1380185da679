/*
 * store_sink.c: the store as the pipeline's sink (sink.h). A file's ticks
 * wait for room; a live feed's never do: what does not fit the queue is
 * dropped and recorded, per symbol, as a gap (a range of seqs and
 * timestamps), and once the queue has drained each such symbol's state is
 * written with its gap row, so the stored state still equals what the
 * clients saw (store.h, "Falling behind").
 */
#include "store_private.h"

/*
 * The gap of a symbol, found or added, under s->mu. The table is open
 * addressing over the gaps' indices, sized at least twice the gaps.
 * Returns NULL when out of memory (the tick then goes uncounted by
 * symbol, but is still counted in ticks_dropped).
 */
static struct gap *
gap_of(struct store *s, const char *symbol)
{
	size_t len = strnlen(symbol, TICK_SYMBOL_MAX);
	uint64_t h = hash_name(symbol, len);
	size_t i;

	if ((s->ngaps + 1) * 2 > (s->gap_slots ? s->gap_mask + 1 : 0)) {
		size_t size = s->gap_slots ? (s->gap_mask + 1) * 2 : 1024, k;
		uint32_t *slots = malloc(size * sizeof *slots);

		if (!slots)
			return NULL;
		memset(slots, 0xff, size * sizeof *slots);
		for (k = 0; k < s->ngaps; k++) {
			size_t j = hash_name(s->gaps[k].symbol,
			                     strlen(s->gaps[k].symbol)) &
			           (size - 1);

			while (slots[j] != UINT32_MAX)
				j = (j + 1) & (size - 1);
			slots[j] = (uint32_t)k;
		}
		free(s->gap_slots);
		s->gap_slots = slots;
		s->gap_mask = size - 1;
	}
	for (i = h & s->gap_mask; s->gap_slots[i] != UINT32_MAX;
	     i = (i + 1) & s->gap_mask) {
		struct gap *g = &s->gaps[s->gap_slots[i]];

		if (!strncmp(g->symbol, symbol, TICK_SYMBOL_MAX))
			return g;
	}
	if (s->ngaps == s->gaps_cap) {
		size_t cap = s->gaps_cap ? s->gaps_cap * 2 : 256;
		struct gap *p = realloc(s->gaps, cap * sizeof *p);

		if (!p)
			return NULL;
		s->gaps = p;
		s->gaps_cap = cap;
	}
	s->gap_slots[i] = (uint32_t)s->ngaps;
	memset(&s->gaps[s->ngaps], 0, sizeof s->gaps[0]);
	memcpy(s->gaps[s->ngaps].symbol, symbol, len);
	return &s->gaps[s->ngaps++];
}

/* Under s->mu: ticks not kept go into their symbols' gaps. */
static void
gaps_add(struct store *s, const struct tick *t, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct gap *g = gap_of(s, t[i].symbol);

		if (!g)
			continue;
		if (!g->ticks || t[i].seq < g->first_seq)
			g->first_seq = t[i].seq;
		if (t[i].seq > g->last_seq)
			g->last_seq = t[i].seq;
		if (!g->ticks || t[i].ts < g->first_ts)
			g->first_ts = t[i].ts;
		if (!g->ticks || t[i].ts > g->last_ts)
			g->last_ts = t[i].ts;
		g->ticks++;
	}
	s->stats.ticks_dropped += n;
}

static size_t
sink_space(void *impl)
{
	struct store *s = impl;
	struct store_stats ss;

	/* A failing store (disk full, read-only file) may not recover for
	 * hours: a file waits for it no more than a market does. */
	store_get_stats(s, &ss);
	return ss.failing ? SIZE_MAX : store_append_space(s);
}

/*
 * A live batch: what fits goes in the queue; what does not, and every tick
 * after it until the queue has drained, is recorded as gaps (the
 * "Falling behind" of store.h). The queue never holds a tick of a symbol
 * after one of its dropped ones, so when the sink resumes, the restored
 * state comes after everything stored before the gap.
 */
static void
sink_append(void *impl, const struct tick *applied, size_t n)
{
	struct store *s = impl;
	size_t fit = 0;

	pthread_mutex_lock(&s->mu);
	if (!s->dropping && !s->stopping)
		fit = s->cap - s->count < n ? s->cap - s->count : n;
	pthread_mutex_unlock(&s->mu);
	if (fit)
		store_append(s, applied, fit);
	if (fit == n)
		return;
	pthread_mutex_lock(&s->mu);
	if (!s->dropping) {
		s->dropping = true;
		s->dropping_since_us = clock_wall_us();
		s->stats.gaps_started++;
		log_limited(LOG_WARN,
		            "store: db '%s' cannot keep up with the live feed "
		            "(%zu ticks queued): dropping ticks until it has "
		            "caught up; what it drops is recorded as gaps",
		            s->path, s->count);
	}
	gaps_add(s, applied + fit, n - fit);
	/* The writer wakes the pipeline once the queue has drained. */
	s->want_wake = true;
	pthread_mutex_unlock(&s->mu);
}

static bool
sink_wants_resume(void *impl)
{
	struct store *s = impl;
	bool yes;

	pthread_mutex_lock(&s->mu);
	yes = s->dropping && s->count == 0;
	pthread_mutex_unlock(&s->mu);
	return yes;
}

/*
 * The queue has drained: every tick before the gaps is stored. Each gap
 * goes to the writer with its symbol's state now (which every dropped tick
 * is folded into), and ticks are taken again.
 */
static void
sink_resume(void *impl, sink_state_fn state, void *ctx)
{
	struct store *s = impl;
	uint64_t ticks = 0;
	size_t i, n = 0;

	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->ngaps; i++) {
		struct restore *r;

		if (s->nrestores == s->restores_cap) {
			size_t cap = s->restores_cap ? s->restores_cap * 2 : 64;
			struct restore *p =
			        realloc(s->restores, cap * sizeof *p);

			if (!p)
				break;
			s->restores = p;
			s->restores_cap = cap;
		}
		r = &s->restores[s->nrestores];
		memset(r, 0, sizeof *r);
		if (state(s->gaps[i].symbol, &r->st, ctx))
			continue;
		r->has_gap = true;
		r->gap = s->gaps[i];
		s->nrestores++;
		ticks += s->gaps[i].ticks;
		n++;
	}
	s->ngaps = 0;
	if (s->gap_slots)
		memset(s->gap_slots, 0xff,
		       (s->gap_mask + 1) * sizeof *s->gap_slots);
	s->dropping = false;
	pthread_mutex_unlock(&s->mu);
	pthread_cond_signal(&s->cond);
	log_limited(LOG_WARN,
	            "store: db '%s' caught up; %llu ticks of %zu symbols were "
	            "not stored and are recorded as gaps",
	            s->path, (unsigned long long)ticks, n);
}

static void
sink_status(void *impl, struct sink_status *out)
{
	struct store *s = impl;
	struct store_stats ss;
	int64_t since;

	store_get_stats(s, &ss);
	pthread_mutex_lock(&s->mu);
	since = s->dropping ? s->dropping_since_us : 0;
	pthread_mutex_unlock(&s->mu);
	memset(out, 0, sizeof *out);
	out->lag_us = ss.lag_us;
	out->queued = ss.queued;
	out->dropped = ss.ticks_dropped;
	out->failing = ss.failing;
	out->dropping = since != 0;
	if (ss.failing)
		snprintf(out->reason, sizeof out->reason, "store failing: %s",
		         ss.last_error);
	else if (since)
		snprintf(out->reason, sizeof out->reason,
		         "store behind the live feed for %.1f s: ticks are "
		         "not stored, and are recorded as gaps",
		         (double)(clock_wall_us() - since) / 1e6);
}

static void
sink_restore(void *impl, const struct symbol_state *st)
{
	if (store_restore_state(impl, st))
		log_warn("store: out of memory restoring symbol '%.32s'",
		         st->symbol);
}

static int
sink_epoch(void *impl, const char *epoch, char *why, size_t len)
{
	struct store *s = impl;

	if (!strcmp(s->epoch, epoch))
		return 0;
	snprintf(why, len,
	         "store epoch %s differs from the ingest's %s; restart the "
	         "edge with a new --db",
	         s->epoch, epoch);
	return -1;
}

static int
sink_rewind(void *impl, const struct sink_cut *cuts, size_t n,
            sink_rewind_done_fn done, void *ctx)
{
	return store_rewind(impl, cuts, n, done, ctx);
}

static int
sink_reserve(void *impl, uint32_t gen, const char *epoch,
             const struct sink_reservation *r, size_t n)
{
	return store_reserve(impl, gen, epoch, r, n);
}

static void
sink_reserved(void *impl, sink_grant_fn fn, void *ctx)
{
	store_reserved(impl, fn, ctx);
}

static const struct sink_ops store_sink_ops = {
        .name = "store",
        .space = sink_space,
        .append = sink_append,
        .wants_resume = sink_wants_resume,
        .resume = sink_resume,
        .status = sink_status,
        .restore = sink_restore,
        .epoch = sink_epoch,
        .rewind = sink_rewind,
        .reserve = sink_reserve,
        .reserved = sink_reserved,
};

struct sink
store_sink(struct store *s)
{
	struct sink k = {&store_sink_ops, s};

	return k;
}

void
store_get_stats(struct store *s, struct store_stats *out)
{
	pthread_mutex_lock(&s->mu);
	*out = s->stats;
	out->queued = s->count;
	out->lag_us = s->count ? clock_mono_us() - s->enq_us[s->head] : 0;
	pthread_mutex_unlock(&s->mu);
}

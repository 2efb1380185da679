/*
 * feed_synthetic: a seeded random walk over N symbols, so that the server
 * shows live prices with nothing else installed.
 *
 * Everything a tick carries except its timestamp comes from one seeded
 * generator, so the same seed gives the same ticks on every run and every
 * machine, whatever the pacing did. Prices are kept as integers in units of
 * 0.0001 and quantised to the tick size of the price (one cent at $1 and
 * above, 0.0001 below), so every value is an exact decimal.
 *
 * Pacing follows a schedule computed from the start time: tick k is due at
 * start + k/rate on the monotonic clock. Sleeping until the next due time,
 * instead of for a fixed period after each batch, means the time spent
 * generating and pushing never accumulates into drift.
 */
#include "feed.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../publisher/clock.h"

/* Ticks pushed at most per batch (one lock of the queue per batch). */
#define BATCH_MAX 256
/* At high rates the thread waits for about this much work before waking. */
#define BATCH_NS 1000000
/* When the queue held the thread back for longer than this, the schedule is
 * moved forward instead of bursting to catch up on what was missed. */
#define MAX_BEHIND_NS 1000000000LL

/* Prices are integers in units of 0.0001. */
#define UNITS_PER_DOLLAR 10000
#define CENT_UNITS       100

struct synthetic_symbol {
	char name[TICK_SYMBOL_MAX + 1];
	int64_t anchor; /* starting price, which the walk drifts back to */
	int64_t mid;    /* current mid price */
	int64_t bid;    /* current quote, used for trades in between quotes */
	int64_t ask;
};

struct feed_synthetic {
	struct feed base; /* first: a struct feed * points here */
	struct feed_synthetic_options opt;
	struct synthetic_symbol *symbols;
	uint64_t rng;
	uint64_t generated; /* ticks generated so far (drives the opening) */

	pthread_t thread;
	bool started;
	bool joined;
	/* The thread sleeps on `wakeup` (monotonic clock) so that feed_stop
	 * ends a long sleep at once instead of waiting for it to run out. */
	pthread_mutex_t lock;
	pthread_cond_t wakeup;
	bool stop;
};

/*
 * Real tickers with plausible starting prices, spanning penny stocks to
 * BRK.A, so the dashboard and the decimal code see every magnitude. Symbols
 * beyond this list are named SYM0001, SYM0002, ... with seeded prices.
 */
static const struct {
	const char *name;
	int64_t price; /* units of 0.0001 */
} known_symbols[] = {
        {"AAPL", 1893500},     {"MSFT", 4155000},  {"NVDA", 8752800},
        {"AMZN", 1782200},     {"GOOGL", 1418000}, {"META", 5023000},
        {"TSLA", 1753400},     {"JPM", 1966200},   {"V", 2794500},
        {"XOM", 1183000},      {"BRK.B", 4081200}, {"UNH", 4921000},
        {"JNJ", 1562000},      {"WMT", 602500},    {"PG", 1614000},
        {"MA", 4708000},       {"HD", 3725000},    {"CVX", 1559000},
        {"KO", 601000},        {"PEP", 1683000},   {"BAC", 374500},
        {"PFE", 278000},       {"INTC", 427500},   {"CSCO", 493000},
        {"ORCL", 1254000},     {"NFLX", 6102000},  {"AMD", 1805000},
        {"CRM", 3001000},      {"ADBE", 5056000},  {"DIS", 1124000},
        {"T", 172200},         {"F", 121500},      {"GE", 1603000},
        {"BA", 1908000},       {"NKE", 943000},    {"SBUX", 912000},
        {"UBER", 771000},      {"PLTR", 238500},   {"SOFI", 74200},
        {"NIO", 56200},        {"SIRI", 39100},    {"SNDL", 18500},
        {"BRK.A", 6210000000}, {"AVGO", 13120000}, {"COST", 7230000},
        {"GOEV", 4125},        {"IDEX", 850},      {"MULN", 925},
};

#define KNOWN_COUNT (sizeof known_symbols / sizeof known_symbols[0])

/* ----------------------------------------------------------- generator */

/* splitmix64: small, fast, and the same sequence on every platform. */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double
rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform in [0, n). The modulo bias is irrelevant for a demo walk. */
static uint64_t
rng_below(uint64_t *s, uint64_t n)
{
	return rng_next(s) % n;
}

/* Roughly standard normal: the sum of four uniforms, rescaled. Plain
 * arithmetic keeps the sequence identical wherever doubles are IEEE. */
static double
rng_gauss(uint64_t *s)
{
	double sum = rng_unit(s) + rng_unit(s) + rng_unit(s) + rng_unit(s);

	return (sum - 2.0) * 1.7320508075688772;
}

/* ------------------------------------------------------------- prices */

static int64_t
tick_size(int64_t price)
{
	return price >= UNITS_PER_DOLLAR ? CENT_UNITS : 1;
}

/* The nearest price on p's own grid at or below p, and at or above p. */
static int64_t
grid_down(int64_t p)
{
	return p / tick_size(p) * tick_size(p);
}

static int64_t
grid_up(int64_t p)
{
	int64_t down = grid_down(p);

	return down == p ? p : grid_down(down + tick_size(down));
}

/* A price in units, on its own grid, as the decimal a feed would send:
 * cents from $1 up, four decimals below. */
static struct decimal
price_decimal(int64_t units)
{
	struct decimal d;

	if (tick_size(units) == CENT_UNITS) {
		d.mantissa = units / CENT_UNITS;
		d.scale = 2;
	} else {
		d.mantissa = units;
		d.scale = 4;
	}
	return d;
}

static struct decimal
size_decimal(int64_t shares)
{
	struct decimal d = {shares, 0};

	return d;
}

/* Set a fresh quote around the symbol's mid: a spread of one to four ticks,
 * bid and ask each on their own grid (a bid of 0.9999 may face an ask of
 * 1.01), the bid at least 0.0001 and so always below the ask. */
static void
requote(struct synthetic_symbol *sym, uint64_t *rng)
{
	int64_t spread = (int64_t)(1 + rng_below(rng, 4));
	int64_t bid = grid_down(sym->mid - spread * tick_size(sym->mid) / 2);

	if (bid < 1)
		bid = 1;
	sym->bid = bid;
	sym->ask = grid_up(bid + spread * tick_size(bid));
}

/* One step of the walk: about 0.01% of the price per tick, rounded to the
 * tick grid stochastically so that cheap symbols still move now and then,
 * with a weak pull back to the anchor so a long run stays plausible. */
static void
walk(struct synthetic_symbol *sym, uint64_t *rng)
{
	int64_t grid = tick_size(sym->mid);
	double step = rng_gauss(rng) * (double)sym->mid * 1e-4;
	double pull = (double)(sym->anchor - sym->mid) * 2e-4;
	double ticks = (step + pull) / (double)grid;
	double whole = (double)(int64_t)ticks;
	int64_t n;

	if (ticks < whole)
		whole -= 1.0; /* floor for negatives */
	n = (int64_t)whole + (rng_unit(rng) < ticks - whole ? 1 : 0);
	sym->mid = grid_down(sym->mid + n * grid);
	if (sym->mid < 1)
		sym->mid = 1;
}

static void
init_symbols(struct feed_synthetic *fs)
{
	unsigned i;

	for (i = 0; i < fs->opt.symbols; i++) {
		struct synthetic_symbol *sym = &fs->symbols[i];

		if (i < KNOWN_COUNT) {
			snprintf(sym->name, sizeof sym->name, "%s",
			         known_symbols[i].name);
			sym->anchor = known_symbols[i].price;
		} else {
			/* 1000..9999 units times a power of ten, so the
			 * invented symbols trade from $0.10 to $9,999. */
			static const int64_t scale[] = {1,   10,  10,   100,
			                                100, 100, 1000, 1000};
			int64_t base =
			        (int64_t)(1000 + rng_below(&fs->rng, 9000));

			snprintf(sym->name, sizeof sym->name, "SYM%04u",
			         i - (unsigned)KNOWN_COUNT + 1);
			sym->anchor = base * scale[rng_below(&fs->rng, 8)];
		}
		sym->anchor = grid_down(sym->anchor);
		sym->mid = sym->anchor;
		requote(sym, &fs->rng);
	}
}

/*
 * Fill t with the next tick. The first pass quotes every symbol once in
 * order, so a dashboard has all of them at once; after that a symbol is
 * picked at random (the first ten twice as often, as real activity is
 * skewed), and about one tick in five is a trade at or inside the spread.
 */
static void
generate(struct feed_synthetic *fs, struct tick *t, int64_t now_us)
{
	uint64_t *rng = &fs->rng;
	unsigned n = fs->opt.symbols, idx;
	struct synthetic_symbol *sym;
	bool trade;

	if (fs->generated < n) {
		idx = (unsigned)fs->generated;
		trade = false;
	} else {
		unsigned hot = n < 10 ? n : 10;

		if (rng_below(rng, 2) == 0)
			idx = (unsigned)rng_below(rng, hot);
		else
			idx = (unsigned)rng_below(rng, n);
		trade = rng_below(rng, 5) == 0;
	}
	fs->generated++;
	sym = &fs->symbols[idx];

	memset(t, 0, sizeof *t);
	t->ts = now_us;
	memcpy(t->symbol, sym->name, sizeof t->symbol);
	if (trade) {
		/* A trade at the bid, the ask or a tick in between. Rounding
		 * down to its own grid cannot take it below the bid, which is
		 * on the finer or the same grid. */
		int64_t grid = tick_size(sym->bid);
		uint64_t steps = (uint64_t)((sym->ask - sym->bid) / grid);
		int64_t last =
		        sym->bid + (int64_t)rng_below(rng, steps + 1) * grid;

		if (last > sym->ask)
			last = sym->ask;
		tick_set(t, FIELD_LAST, price_decimal(grid_down(last)));
		tick_set(t, FIELD_LAST_SIZE,
		         size_decimal((int64_t)(1 + rng_below(rng, 20)) * 100));
	} else {
		if (fs->generated > n)
			walk(sym, rng);
		requote(sym, rng);
		tick_set(t, FIELD_BID, price_decimal(sym->bid));
		tick_set(t, FIELD_ASK, price_decimal(sym->ask));
		tick_set(t, FIELD_BID_SIZE,
		         size_decimal((int64_t)(1 + rng_below(rng, 50)) * 100));
		tick_set(t, FIELD_ASK_SIZE,
		         size_decimal((int64_t)(1 + rng_below(rng, 50)) * 100));
	}
}

/* -------------------------------------------------------------- thread */

/* Sleep until the monotonic time `due_ns` or until feed_stop. Returns true
 * when the feed is asked to stop. */
static bool
sleep_until(struct feed_synthetic *fs, int64_t due_ns)
{
	struct timespec until = clock_timespec_of_ns(due_ns);
	bool stop;

	pthread_mutex_lock(&fs->lock);
	while (!fs->stop && clock_mono_ns() < due_ns)
		if (pthread_cond_timedwait(&fs->wakeup, &fs->lock, &until) ==
		    ETIMEDOUT)
			break;
	stop = fs->stop;
	pthread_mutex_unlock(&fs->lock);
	return stop;
}

static bool
stop_requested(struct feed_synthetic *fs)
{
	bool stop;

	pthread_mutex_lock(&fs->lock);
	stop = fs->stop;
	pthread_mutex_unlock(&fs->lock);
	return stop;
}

static void *
synthetic_main(void *arg)
{
	struct feed_synthetic *fs = arg;
	struct feed *f = &fs->base;
	const double ns_per_tick = 1e9 / fs->opt.rate;
	/* Wait for about BATCH_NS worth of ticks at high rates, but never
	 * more than a batch holds, and at least one. */
	uint64_t batch_ticks = (uint64_t)(BATCH_NS / ns_per_tick);
	struct tick batch[BATCH_MAX];
	int64_t start = clock_mono_ns();
	uint64_t sent = 0; /* ticks sent since `start` */

	if (batch_ticks < 1)
		batch_ticks = 1;
	if (batch_ticks > BATCH_MAX)
		batch_ticks = BATCH_MAX;

	while (!stop_requested(fs)) {
		int64_t now = clock_mono_ns();
		double due = (double)(now - start) / ns_per_tick;
		uint64_t owed, n, i;
		int64_t now_us;

		if (due - (double)sent > (double)MAX_BEHIND_NS / ns_per_tick &&
		    due - (double)sent > BATCH_MAX) {
			/* Held back by a full queue: restart the schedule
			 * from now rather than flood the consumer. */
			start = now;
			sent = 0;
			due = 0;
		}
		owed = due > (double)sent ? (uint64_t)due - sent : 0;
		if (owed == 0) {
			int64_t wake =
			        start + (int64_t)((double)(sent + batch_ticks) *
			                          ns_per_tick);

			if (sleep_until(fs, wake))
				break;
			continue;
		}
		n = owed < BATCH_MAX ? owed : BATCH_MAX;
		now_us = clock_wall_us();
		for (i = 0; i < n; i++)
			generate(fs, &batch[i], now_us);
		if (tick_queue_push(f->queue, batch, (size_t)n) != 0)
			break; /* closed: the server is shutting down */
		sent += n;
		__atomic_add_fetch(&f->ticks, n, __ATOMIC_RELAXED);
		__atomic_store_n(&f->last_tick_us, now_us, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&f->running, 0, __ATOMIC_RELEASE);
	return NULL;
}

/* ----------------------------------------------------------------- ops */

static int
synthetic_start(struct feed *f, char *err, size_t errlen)
{
	struct feed_synthetic *fs = (struct feed_synthetic *)f;

	if (fs->started) {
		if (err && errlen)
			snprintf(err, errlen,
			         "synthetic feed: already started");
		return -1;
	}
	if (feed__start_thread(f, &fs->thread, synthetic_main, fs, err, errlen))
		return -1;
	fs->started = true;
	return 0;
}

static void
synthetic_stop(struct feed *f)
{
	struct feed_synthetic *fs = (struct feed_synthetic *)f;

	pthread_mutex_lock(&fs->lock);
	fs->stop = true;
	pthread_cond_signal(&fs->wakeup);
	pthread_mutex_unlock(&fs->lock);
	if (fs->started && !fs->joined) {
		pthread_join(fs->thread, NULL);
		fs->joined = true;
	}
}

static void
synthetic_destroy(struct feed *f)
{
	struct feed_synthetic *fs = (struct feed_synthetic *)f;

	pthread_cond_destroy(&fs->wakeup);
	pthread_mutex_destroy(&fs->lock);
	free(fs->symbols);
	free(fs);
}

static const struct feed_ops synthetic_ops = {
        .start = synthetic_start,
        .stop = synthetic_stop,
        .destroy = synthetic_destroy,
};

struct feed *
feed_synthetic_create(const struct feed_synthetic_options *opt,
                      struct tick_queue *queue)
{
	struct feed_synthetic *fs;

	if (!opt || opt->symbols < 1 || !(opt->rate > 0))
		return NULL;
	fs = calloc(1, sizeof *fs);
	if (!fs)
		return NULL;
	fs->symbols = calloc(opt->symbols, sizeof *fs->symbols);
	if (!fs->symbols)
		goto fail_symbols;
	if (pthread_mutex_init(&fs->lock, NULL) != 0)
		goto fail_mutex;
	/* The schedule is on the monotonic clock, so the sleep must be too:
	 * a wall-clock step must neither stall nor rush the feed. */
	if (clock_cond_init_mono(&fs->wakeup) != 0)
		goto fail_cond;

	fs->base.ops = &synthetic_ops;
	fs->base.kind = "synthetic";
	fs->base.queue = queue;
	fs->opt = *opt;
	fs->rng = opt->seed;
	init_symbols(fs);
	return &fs->base;

fail_cond:
	pthread_mutex_destroy(&fs->lock);
fail_mutex:
	free(fs->symbols);
fail_symbols:
	free(fs);
	return NULL;
}

/*
 * bench_store: ticks persisted per second through the real store.
 *
 *   bench_store [TICKS] [SYMBOLS] [DIR]      (defaults 2000000, 1000, /tmp)
 *
 * The main thread plays the server: it makes random-walk quotes and trades
 * over SYMBOLS symbols, applies each to its own engine (which assigns the
 * seq), and hands them to store_append() as far as store_append_space()
 * allows, waiting for the store's wake callback when the queue is full. The
 * writer thread commits them with every index the reads need. The figure is
 * TICKS divided by the time from the first append until store_close() has
 * committed the last tick. Then the reads: one symbol's history, last-N,
 * an export of every symbol, and bars.
 *
 * Prints figures; never fails on timing.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "store.h"

#include "support/timing.h"
#include "support/tmpdir.h"

#define CHUNK 1024

static double
process_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static pthread_mutex_t wake_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cv = PTHREAD_COND_INITIALIZER;
static unsigned wakes;

static void
on_wake(void *ctx)
{
	pthread_mutex_lock(&wake_mu);
	wakes++;
	pthread_cond_signal(&wake_cv);
	pthread_mutex_unlock(&wake_mu);
}

static void
client_ready(void *user, void *ctx)
{
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

struct gen {
	char (*names)[TICK_SYMBOL_MAX + 1];
	int64_t *mid; /* price in cents */
	size_t symbols;
	int64_t ts;
};

/* A quote (70%) or a trade, like a busy equity feed. */
static void
gen_tick(struct gen *g, struct tick *t)
{
	size_t s = rnd() % g->symbols;
	int64_t step = (int64_t)(rnd() % 5) - 2;

	memset(t, 0, sizeof *t);
	g->mid[s] = g->mid[s] + step > 100 ? g->mid[s] + step : 100;
	memcpy(t->symbol, g->names[s], sizeof t->symbol);
	t->ts = g->ts++;
	if (rnd() % 10 < 7) {
		tick_set(t, FIELD_BID, (struct decimal){g->mid[s] - 1, 2});
		tick_set(t, FIELD_ASK, (struct decimal){g->mid[s] + 1, 2});
		tick_set(t, FIELD_BID_SIZE,
		         (struct decimal){100 * (1 + rnd() % 50), 0});
		tick_set(t, FIELD_ASK_SIZE,
		         (struct decimal){100 * (1 + rnd() % 50), 0});
	} else {
		tick_set(t, FIELD_LAST, (struct decimal){g->mid[s], 2});
		tick_set(t, FIELD_LAST_SIZE,
		         (struct decimal){1 + rnd() % 1000, 0});
	}
}

static int
count_row(const struct tick *t, void *ctx)
{
	(*(uint64_t *)ctx)++;
	return 0;
}

static int
count_bar(const struct bar *b, void *ctx)
{
	(*(uint64_t *)ctx)++;
	return 0;
}

static long long
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

int
main(int argc, char **argv)
{
	uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
	size_t symbols = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
	const char *base = argc > 3 ? argv[3] : "/tmp";
	struct engine_config ec = {.client_ready = client_ready};
	struct store_options so;
	struct store_stats ss;
	struct store_reader *r;
	struct engine *e;
	struct store *st;
	struct gen g;
	struct tick chunk[CHUNK];
	char dir[512], path[600], wal[640], err[512];
	double t0, t_appended, t_closed, main_cpu, proc_cpu, waited = 0;
	uint64_t made = 0, rows;
	size_t i;

	if (!symbols || !total) {
		fprintf(stderr, "usage: bench_store [TICKS] [SYMBOLS] [DIR]\n");
		return 2;
	}
	snprintf(dir, sizeof dir, "%s/bench_store.XXXXXX", base);
	if (!mkdtemp(dir)) {
		perror(dir);
		return 1;
	}
	snprintf(path, sizeof path, "%s/ticks.db", dir);
	snprintf(wal, sizeof wal, "%s-wal", path);

	g.symbols = symbols;
	g.names = calloc(symbols, sizeof *g.names);
	g.mid = calloc(symbols, sizeof *g.mid);
	g.ts = 1700000000000000ll;
	for (i = 0; i < symbols; i++) {
		snprintf(g.names[i], sizeof g.names[i], "SYM%04zu.X", i);
		g.mid[i] = 1000 + (int64_t)(rnd() % 100000);
	}
	e = engine_create(&ec);

	memset(&so, 0, sizeof so);
	so.path = path;
	so.commit_ms = 50;
	so.wake = on_wake;
	st = store_open(&so, err, sizeof err);
	if (!st || store_start(st, err, sizeof err)) {
		fprintf(stderr, "bench_store: %s\n", err);
		return 1;
	}

	printf("store: %llu ticks over %zu symbols into %s\n",
	       (unsigned long long)total, symbols, path);
	t0 = timing_now_s();
	while (made < total) {
		size_t space = store_append_space(st), n;

		if (space == 0) {
			double w0 = timing_now_s();
			struct timespec until;
			unsigned seen;

			pthread_mutex_lock(&wake_mu);
			seen = wakes;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += 10 * 1000000;
			if (until.tv_nsec >= 1000000000) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000;
			}
			if (wakes == seen)
				pthread_cond_timedwait(&wake_cv, &wake_mu,
				                       &until);
			pthread_mutex_unlock(&wake_mu);
			waited += timing_now_s() - w0;
			continue;
		}
		n = space < CHUNK ? space : CHUNK;
		if (n > total - made)
			n = (size_t)(total - made);
		/* As the server does: apply (the engine assigns the seq),
		 * then hand the applied ticks to the store. */
		for (i = 0; i < n; i++) {
			gen_tick(&g, &chunk[i]);
			chunk[i].seq = engine_apply_tick(e, &chunk[i]);
		}
		engine_flush(e);
		if (store_append(st, chunk, n)) {
			fprintf(stderr, "bench_store: append refused\n");
			return 1;
		}
		made += n;
	}
	t_appended = timing_now_s();
	main_cpu = timing_s_of(CLOCK_THREAD_CPUTIME_ID);
	store_get_stats(st, &ss);
	printf("  appended in %.2f s; main thread waited for room %.2f s "
	       "(%.0f%%)\n",
	       t_appended - t0, waited, 100 * waited / (t_appended - t0));
	store_close(st);
	t_closed = timing_now_s();
	proc_cpu = process_cpu_s();
	printf("  persisted %.0f ticks/s  (%llu ticks committed in %.2f s, "
	       "closed)\n",
	       (double)total / (t_closed - t0), (unsigned long long)total,
	       t_closed - t0);
	printf("  commits: %llu before close, last batch %llu ticks\n",
	       (unsigned long long)ss.commits,
	       (unsigned long long)ss.last_batch);
	/* CPU per tick does not depend on what else the machine runs. */
	printf("  cpu: main thread %.2f s, store (writer + sqlite) %.2f s "
	       "of %.2f s wall: %.2f µs of store cpu per tick (%.0f ticks/s "
	       "per core)\n",
	       main_cpu, proc_cpu - main_cpu, t_closed - t0,
	       (proc_cpu - main_cpu) * 1e6 / (double)total,
	       (double)total / (proc_cpu - main_cpu));
	printf("  db %.1f MB (%.1f bytes/tick), wal left %.1f MB\n",
	       (double)file_size(path) / 1e6,
	       (double)file_size(path) / (double)total,
	       (double)file_size(wal) / 1e6);

	r = store_reader_open(path, err, sizeof err);
	if (!r) {
		fprintf(stderr, "bench_store: %s\n", err);
		return 1;
	}
	{
		const char *one[1] = {g.names[0]};
		double t;
		uint64_t bars = 0;
		int q;

		rows = 0;
		t = timing_now_s();
		store_read_ticks(r, one, 1, 0, INT64_MAX, 0, count_row, &rows,
		                 err, sizeof err);
		t = timing_now_s() - t;
		printf("read: one symbol's history: %llu ticks in %.1f ms "
		       "(%.0f ticks/s)\n",
		       (unsigned long long)rows, t * 1e3, (double)rows / t);

		rows = 0;
		t = timing_now_s();
		for (q = 0; q < 1000; q++) {
			one[0] = g.names[(size_t)q % symbols];
			store_read_ticks(r, one, 1, 0, INT64_MAX, 100,
			                 count_row, &rows, err, sizeof err);
		}
		t = timing_now_s() - t;
		printf("read: last 100 ticks of a symbol: %.0f queries/s "
		       "(%.0f µs each)\n",
		       1000 / t, t * 1e3);

		rows = 0;
		t = timing_now_s();
		one[0] = g.names[1];
		store_read_ticks(
		        r, one, 1, 1700000000000000ll + (int64_t)total / 2,
		        1700000000000000ll + (int64_t)total / 2 + 100000, 0,
		        count_row, &rows, err, sizeof err);
		t = timing_now_s() - t;
		printf("read: one symbol, a 0.1 s range mid-history: %llu "
		       "ticks in %.2f ms\n",
		       (unsigned long long)rows, t * 1e3);

		rows = 0;
		t = timing_now_s();
		if (store_read_ticks(r, NULL, 0, 0, INT64_MAX, 0, count_row,
		                     &rows, err, sizeof err))
			fprintf(stderr, "bench_store: %s\n", err);
		t = timing_now_s() - t;
		printf("read: every symbol in ts order (export): %llu ticks "
		       "in %.2f s (%.0f ticks/s)\n",
		       (unsigned long long)rows, t, (double)rows / t);

		one[0] = g.names[2];
		t = timing_now_s();
		store_read_bars(r, g.names[2], 0, INT64_MAX, 1000, 0, count_bar,
		                &bars, err, sizeof err);
		t = timing_now_s() - t;
		printf("read: 1 ms bars of one symbol's history: %llu bars in "
		       "%.1f ms\n",
		       (unsigned long long)bars, t * 1e3);
		bars = 0;
		t = timing_now_s();
		for (q = 0; q < 1000; q++)
			store_read_bars(r, g.names[(size_t)q % symbols], 0,
			                INT64_MAX, 1000, 60, count_bar, &bars,
			                err, sizeof err);
		t = timing_now_s() - t;
		printf("read: last 60 1 ms bars of a symbol: %.0f queries/s "
		       "(%.0f µs each)\n",
		       1000 / t, t * 1e3);

		rows = 0;
		t = timing_now_s();
		for (q = 0; q < 1000; q++)
			store_read_history(r, g.names[(size_t)q % symbols], 0,
			                   INT64_MAX, 100, count_row, &rows,
			                   err, sizeof err);
		t = timing_now_s() - t;
		printf("read: last 100 ticks of a symbol in ts order "
		       "(history): %.0f queries/s (%.0f µs each)\n",
		       1000 / t, t * 1e3);
	}
	store_reader_close(r);
	engine_destroy(e);

	if (!getenv("BENCH_KEEP")) {
		if (tmpdir_remove(dir) != 0)
			fprintf(stderr, "bench_store: could not remove %s\n",
			        dir);
	} else {
		printf("kept %s\n", dir);
	}
	return 0;
}

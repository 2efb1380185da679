/*
 * bench_replay: ticks per second end to end through the replay feed at
 * speed=max, first with the store off, then with it on.
 *
 * The pipeline is the server's, minus the sockets: the replay thread reads
 * the file (1 MiB reads), parses each line and pushes batches into a
 * tick_queue of the server's size; the main thread stands in for the
 * service thread, woken by the queue's callback, draining it and applying
 * every tick to an engine (conflation), then engine_flush() per drain.
 *
 * About 2,000,000 ticks are written to /tmp first, as JSONL and as the same
 * ticks in CSV (70% quotes, 30% trades over 100 symbols); writing is not
 * measured, and the file is read from the page cache. Each format runs
 * ROUNDS times and the best round is reported. The target is 2,000,000
 * ticks/s per format. The files are removed at the end.
 *
 * With the store on, the drain is the server's too: applied ticks (with
 * their seqs) go to store_append(), capped by store_append_space(), and the
 * clock stops once store_close() has committed the last of them.
 *
 *   make build/bench/bench_replay && ./build/bench/bench_replay [ticks]
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "feed.h"
#include "log.h"
#include "store.h"
#include "tick_queue.h"

#include "support/rng.h"
#include "support/timing.h"
#include "support/tmpdir.h"

#define DEFAULT_TICKS  2000000
#define ROUNDS         3
#define SYMBOLS        100
#define QUEUE_CAPACITY (256 * 1024) /* as publisher/main.c */
#define DRAIN_MAX      4096

/* The database of the store-on runs; NULL while the store is off. */
static const char *store_path;

/* xorshift64* (support/rng.h): deterministic, so every run replays the same
 * file. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static FILE *
open_out(const char *path)
{
	FILE *fp = fopen(path, "w");

	if (!fp) {
		fprintf(stderr, "bench_replay: cannot create '%s': %s\n", path,
		        strerror(errno));
		exit(1);
	}
	setvbuf(fp, NULL, _IOFBF, 1 << 20);
	return fp;
}

static void
close_out(FILE *fp, const char *path)
{
	if (ferror(fp) || fclose(fp) != 0) {
		fprintf(stderr, "bench_replay: cannot write '%s': %s\n", path,
		        strerror(errno));
		exit(1);
	}
}

/* The same ticks as JSONL and as CSV: a random walk of one cent per tick
 * around each symbol's price, 1 to 500 µs apart. */
static void
generate(size_t n, const char *jsonl_path, const char *csv_path)
{
	FILE *j = open_out(jsonl_path), *c = open_out(csv_path);
	unsigned prices[SYMBOLS];
	int64_t ts = 1709303400000000LL;
	size_t i;

	for (i = 0; i < SYMBOLS; i++)
		prices[i] = 1000 +
		            (unsigned)(xorshift64star_next(&rng_state) % 50000);
	fputs("ts,symbol,bid,ask,bid_size,ask_size,last,last_size\n", c);
	for (i = 0; i < n; i++) {
		uint64_t r = xorshift64star_next(&rng_state);
		unsigned sym = (unsigned)(r >> 16) % SYMBOLS;
		unsigned p, q, sa = 100 * (1 + (unsigned)((r >> 48) % 50));
		unsigned sb = 100 * (1 + (unsigned)((r >> 56) % 50));

		ts += 1 + (int64_t)(r % 500);
		prices[sym] += (r >> 40) & 1 ? 1 : -1;
		p = prices[sym];
		q = p + 1 + (unsigned)((r >> 44) % 5);
		if ((r >> 32) % 10 < 3) {
			fprintf(j,
			        "{\"ts\":%lld,\"symbol\":\"SYM%03u\",\"last\":"
			        "%u.%02u,\"last_size\":%u}\n",
			        (long long)ts, sym, p / 100, p % 100, sa);
			fprintf(c, "%lld,SYM%03u,,,,,%u.%02u,%u\n",
			        (long long)ts, sym, p / 100, p % 100, sa);
		} else {
			fprintf(j,
			        "{\"ts\":%lld,\"symbol\":\"SYM%03u\",\"bid\":"
			        "%u.%02u,\"ask\":%u.%02u,\"bid_size\":%u,"
			        "\"ask_size\":%u}\n",
			        (long long)ts, sym, p / 100, p % 100, q / 100,
			        q % 100, sa, sb);
			fprintf(c, "%lld,SYM%03u,%u.%02u,%u.%02u,%u,%u,,\n",
			        (long long)ts, sym, p / 100, p % 100, q / 100,
			        q % 100, sa, sb);
		}
	}
	close_out(j, jsonl_path);
	close_out(c, csv_path);
}

/* ------------------------------------------------ the service thread */

/* The queue's wake callback, as lws_cancel_service() in the server: one
 * wake may stand for many pushes, so the consumer drains until empty. */
struct waker {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool woken;
};

static void
wake(void *ctx)
{
	struct waker *w = ctx;

	pthread_mutex_lock(&w->lock);
	w->woken = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Sleep until woken, or 1 ms (the server's poll loop has a timeout too). */
static void
wait_wake(struct waker *w)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&w->lock);
	if (!w->woken)
		pthread_cond_timedwait(&w->cond, &w->lock, &until);
	w->woken = false;
	pthread_mutex_unlock(&w->lock);
}

static void
client_ready(void *user, void *ctx)
{
}

struct result {
	double seconds;
	uint64_t applied;
	size_t symbols;
};

static struct result
run_once(const char *path, size_t want)
{
	struct engine_config ec = {.client_ready = client_ready};
	struct waker w = {.woken = false};
	struct engine *e = engine_create(&ec);
	struct tick_queue *q;
	struct tick *buf = malloc(DRAIN_MAX * sizeof *buf);
	struct engine_stats es;
	struct result r = {0, 0, 0};
	char spec[4200], err[512];
	struct feed *f;
	struct store *st = NULL;
	size_t got = 0;
	double t0;

	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	q = tick_queue_create(QUEUE_CAPACITY, wake, &w);
	if (!e || !q || !buf) {
		fprintf(stderr, "bench_replay: out of memory\n");
		exit(1);
	}
	snprintf(spec, sizeof spec, "replay:%s,speed=max", path);
	f = feed_create(spec, q, err, sizeof err);
	if (!f) {
		fprintf(stderr, "bench_replay: %s\n", err);
		exit(1);
	}
	t0 = timing_now_s();
	if (feed_start(f, err, sizeof err) != 0) {
		fprintf(stderr, "bench_replay: %s\n", err);
		exit(1);
	}
	if (store_path) {
		struct store_options so = {.path = store_path};

		unlink(store_path);
		st = store_open(&so, err, sizeof err);
		if (!st || store_start(st, err, sizeof err)) {
			fprintf(stderr, "bench_replay: %s\n", err);
			exit(1);
		}
	}
	while (got < want) {
		size_t room = DRAIN_MAX, n, i;

		if (st) {
			room = store_append_space(st);
			if (room > DRAIN_MAX)
				room = DRAIN_MAX;
			if (!room) {
				/* The writer is behind: the feed waits, as
				 * it does in the server. */
				usleep(1000);
				continue;
			}
		}
		n = tick_queue_drain(q, buf, room);
		if (n == 0) {
			struct feed_status fs;

			feed_get_status(f, &fs);
			if (fs.finished && tick_queue_depth(q) == 0)
				break;
			wait_wake(&w);
			continue;
		}
		for (i = 0; i < n; i++)
			buf[i].seq = engine_apply_tick(e, &buf[i]);
		if (st && store_append(st, buf, n)) {
			fprintf(stderr, "bench_replay: store refused ticks\n");
			exit(1);
		}
		engine_flush(e);
		got += n;
	}
	store_close(st); /* commits what is queued */
	r.seconds = timing_now_s() - t0;
	engine_get_stats(e, &es);
	r.applied = es.ticks_applied;
	r.symbols = es.symbols;

	tick_queue_close(q);
	feed_destroy(f);
	tick_queue_destroy(q);
	engine_destroy(e);
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	free(buf);
	if (got != want) {
		fprintf(stderr, "bench_replay: %zu ticks from %zu lines\n", got,
		        want);
		exit(1);
	}
	return r;
}

static void
bench(const char *name, const char *path, size_t ticks)
{
	double best = 0, first = 0, mb;
	struct result r = {0, 0, 0};
	FILE *fp = fopen(path, "r");
	int round;

	fseek(fp, 0, SEEK_END);
	mb = (double)ftell(fp) / 1e6;
	fclose(fp);
	for (round = 0; round < ROUNDS; round++) {
		r = run_once(path, ticks);
		if (round == 0)
			first = r.seconds;
		if (round == 0 || r.seconds < best)
			best = r.seconds;
	}
	printf("%-5s %8zu ticks %6.1f MB  best of %d: %.3f s  %10.0f ticks/s  "
	       "%6.1f MB/s  (first round %.0f ticks/s; %zu symbols, %llu "
	       "applied)\n",
	       name, ticks, mb, ROUNDS, best, (double)ticks / best, mb / best,
	       (double)ticks / first, r.symbols, (unsigned long long)r.applied);
	if (r.applied != ticks) {
		fprintf(stderr,
		        "bench_replay: %s: the engine applied %llu of "
		        "%zu ticks\n",
		        name, (unsigned long long)r.applied, ticks);
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	char dir[] = "/tmp/bench_replay.XXXXXX", jsonl[64], csv[64], db[64];
	size_t ticks = DEFAULT_TICKS;

	if (argc > 1)
		ticks = strtoul(argv[1], NULL, 10);
	if (ticks == 0) {
		fprintf(stderr, "usage: bench_replay [ticks]\n");
		return 2;
	}
	if (!mkdtemp(dir)) {
		fprintf(stderr,
		        "bench_replay: cannot create a directory in "
		        "/tmp: %s\n",
		        strerror(errno));
		return 1;
	}
	snprintf(jsonl, sizeof jsonl, "%s/ticks.jsonl", dir);
	snprintf(csv, sizeof csv, "%s/ticks.csv", dir);
	log_set_level(LOG_WARN); /* the per-pass summaries are not figures */
	generate(ticks, jsonl, csv);
	printf("replay at speed=max -> tick_queue -> engine_apply_tick, store "
	       "off, %zu generated ticks (70%% quotes, 30%% trades, %d "
	       "symbols)\n",
	       ticks, SYMBOLS);
	bench("jsonl", jsonl, ticks);
	bench("csv", csv, ticks);

	snprintf(db, sizeof db, "%s/ticks.db", dir);
	store_path = db;
	printf("the same with the store on (SQLite, WAL, every tick and state "
	       "committed before the clock stops)\n");
	bench("jsonl", jsonl, ticks);
	bench("csv", csv, ticks);
	store_path = NULL;
	tmpdir_remove(dir);
	return 0;
}

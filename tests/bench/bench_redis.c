/*
 * bench_redis: what the Redis link carries and what it costs in latency.
 *
 * Starts its own redis-server (no persistence) on a free loopback port, then
 * plays an ingest (a serving engine assigning seqs, and a redis_publisher)
 * and an edge (a redis_follower, its tick queue, and a thread standing in
 * for the service thread, applying to the edge's engine):
 *
 *  1. throughput: 500,000 ticks over 1,000 symbols pushed as fast as the
 *     publisher takes them (back-pressure included), timed from the first
 *     append to the last tick applied at the edge;
 *  2. latency: ticks paced at a steady rate, each stamped with the wall
 *     clock at append (its ts); the edge measures append → applied. That is
 *     what Redis adds: the publisher's batch, XADD, XREAD, the hand-off.
 *
 * Prints figures; never fails on a timing. Exits 0 with a note when
 * redis-server is not installed.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "engine.h"
#include "log.h"
#include "redis_link.h"
#include "tick_queue.h"

#include "support/redis_nodes.h"
#include "support/redis_server.h"
#include "support/ticks.h"
#include "support/timing.h"

#define SYMBOLS    1000
#define TICKS      500000
#define PUSH_BATCH 256

static struct redis_server redis;

/* ------------------------------------------------------------ the nodes */

/* An edge (support/redis_nodes.h) keeping the latency of its first cap
 * ticks applied; exits when it cannot start. */
static void
edge_open(struct redis_edge *e, const char *prefix, size_t cap)
{
	struct redis_edge_options o = {
	        .port = redis.port,
	        .prefix = prefix,
	        .queue_cap = 256 * 1024,
	        .keep_latencies = cap,
	};
	char err[256];

	if (redis_edge_open(e, &o, err, sizeof err) != 0) {
		fprintf(stderr, "bench_redis: edge: %s\n", err);
		exit(1);
	}
}

/* An ingest, started and connected (5 s at most); exits when it cannot
 * start. */
static void
ingest_open(struct redis_ingest *in, const char *prefix)
{
	struct redis_publisher_options o = {0};
	char err[256];
	struct redis_publisher_stats s;
	int64_t until = clock_mono_us() + 5000000;

	o.host = "127.0.0.1";
	o.port = redis.port;
	o.prefix = prefix;
	o.epoch = "bench";
	o.stream_maxlen = 1000000;
	if (redis_ingest_open(in, &o, 0, err, sizeof err) != 0 ||
	    redis_publisher_start(in->pub, err, sizeof err)) {
		fprintf(stderr, "bench_redis: publisher: %s\n", err);
		exit(1);
	}
	do {
		redis_publisher_get_stats(in->pub, &s);
		timing_sleep_us(1000);
	} while (!s.connected && clock_mono_us() < until);
}

static void
make_tick(struct tick *t, uint64_t i)
{
	memset(t, 0, sizeof *t);
	snprintf(t->symbol, sizeof t->symbol, "SYM%04u",
	         (unsigned)((i * 7919) % SYMBOLS));
	t->ts = clock_wall_us();
	if (i % 4 == 3) {
		tick_set(t, FIELD_LAST, (struct decimal){18930 + i % 97, 2});
		tick_set(t, FIELD_LAST_SIZE, (struct decimal){100, 0});
	} else {
		tick_set(t, FIELD_BID, (struct decimal){18930 + i % 89, 2});
		tick_set(t, FIELD_ASK, (struct decimal){18935 + i % 83, 2});
		tick_set(t, FIELD_BID_SIZE, (struct decimal){200 + i % 5, 0});
	}
}

static int
cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

	return (x > y) - (x < y);
}

static void
print_latency(const char *what, struct redis_edge *e)
{
	size_t n = e->nlat;

	if (!n) {
		printf("  %s: no samples\n", what);
		return;
	}
	qsort(e->latency, n, sizeof *e->latency, cmp_i32);
	printf("  %s: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms "
	       "(%zu ticks)\n",
	       what, e->latency[n / 2] / 1000.0,
	       e->latency[(size_t)(n * 0.99)] / 1000.0,
	       e->latency[(size_t)(n * 0.999)] / 1000.0,
	       e->latency[n - 1] / 1000.0, n);
}

static void
print_redis_memory(void)
{
	redisReply *r = redis_server_command(&redis, "INFO memory");
	char *p = r && r->type == REDIS_REPLY_STRING
	                  ? strstr(r->str, "used_memory_human:")
	                  : NULL;

	if (p) {
		char *end = strchr(p, '\r');

		if (end)
			*end = '\0';
		printf("  redis %s\n", p);
	}
	if (r)
		freeReplyObject(r);
}

/* 1. As fast as the link takes them. */
static void
bench_throughput(void)
{
	struct redis_publisher_stats ps;
	struct redis_follower_stats fs;
	struct redis_ingest in;
	struct redis_edge e;
	struct tick batch[PUSH_BATCH];
	int64_t t0, t1, until;
	uint64_t i;
	size_t k = 0;

	ingest_open(&in, "bench1");
	edge_open(&e, "bench1", TICKS);
	redis_follower_wait_synced(e.fol, 5000);
	timing_sleep_us(100000);

	t0 = clock_mono_us();
	for (i = 0; i < TICKS; i++) {
		make_tick(&batch[k++], i);
		if (k == PUSH_BATCH || i + 1 == TICKS) {
			redis_ingest_push(&in, batch, k);
			k = 0;
		}
	}
	t1 = clock_mono_us();
	until = t1 + 60000000;
	while (redis_edge_counts(&e).drained < TICKS && clock_mono_us() < until)
		timing_sleep_us(1000);
	t1 = redis_edge_counts(&e).last_drain_us -
	     (clock_wall_us() - clock_mono_us());
	redis_publisher_get_stats(in.pub, &ps);
	redis_follower_get_stats(e.fol, &fs);

	printf("throughput: %d ticks over %d symbols, ingest → redis → edge\n",
	       TICKS, SYMBOLS);
	printf("  %llu ticks applied at the edge in %.3f s: %.0f ticks/s\n",
	       (unsigned long long)redis_edge_counts(&e).drained,
	       (t1 - t0) / 1e6,
	       redis_edge_counts(&e).drained / ((t1 - t0) / 1e6));
	printf("  publisher: %llu batches (%.0f ticks each), %llu appends "
	       "refused (back-pressure); follower: %llu resyncs\n",
	       (unsigned long long)ps.batches,
	       ps.batches ? (double)ps.ticks_published / ps.batches : 0.0,
	       (unsigned long long)in.full, (unsigned long long)fs.resyncs);
	print_latency("latency under saturation (queueing included)", &e);
	print_redis_memory();
	redis_edge_close(&e);
	redis_ingest_close(&in);
}

/* 2. A steady rate: what Redis adds to each tick. */
static void
bench_latency(unsigned rate, unsigned seconds)
{
	struct redis_ingest in;
	struct redis_edge e;
	struct tick batch[PUSH_BATCH];
	uint64_t i = 0, total = (uint64_t)rate * seconds;
	/* Push in small groups, as a feed's ticks come in: 1 ms apart. */
	unsigned per_ms = rate / 1000 ? rate / 1000 : 1;
	int64_t t0, until;
	char label[96];

	ingest_open(&in, rate > 50000 ? "bench3" : "bench2");
	edge_open(&e, rate > 50000 ? "bench3" : "bench2", total);
	redis_follower_wait_synced(e.fol, 5000);
	timing_sleep_us(100000);
	t0 = clock_mono_us();
	while (i < total) {
		int64_t due = t0 + (int64_t)(i / per_ms) * 1000;
		size_t k = 0;

		while (clock_mono_us() < due)
			timing_sleep_us(100);
		while (k < per_ms && k < PUSH_BATCH && i < total)
			make_tick(&batch[k++], i++);
		redis_ingest_push(&in, batch, k);
	}
	until = clock_mono_us() + 10000000;
	while (redis_edge_counts(&e).drained < total && clock_mono_us() < until)
		timing_sleep_us(1000);
	snprintf(label, sizeof label,
	         "latency at %u ticks/s (append → applied "
	         "at the edge)",
	         rate);
	print_latency(label, &e);
	redis_edge_close(&e);
	redis_ingest_close(&in);
}

int
main(void)
{
	if (!redis_server_installed()) {
		printf("bench_redis: skipped: redis-server is not installed "
		       "(tests/deps.sh installs it)\n");
		return 0;
	}
	log_set_level(LOG_ERROR);
	if (redis_server_start(&redis, "bench_redis")) {
		fprintf(stderr, "bench_redis: cannot start redis-server\n");
		redis_server_stop(&redis);
		return 1;
	}
	bench_throughput();
	bench_latency(10000, 3);
	bench_latency(100000, 3);
	if (redis_server_stop(&redis) != 0)
		fprintf(stderr, "could not remove %s\n", redis.dir);
	return 0;
}

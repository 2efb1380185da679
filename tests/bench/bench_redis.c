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
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "engine.h"
#include "log.h"
#include "redis_link.h"
#include "tick_queue.h"

#define SYMBOLS    1000
#define TICKS      500000
#define PUSH_BATCH 256

static int redis_port;
static pid_t redis_pid;
static char redis_dir[64];

static int64_t
clock_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
sleep_us(int64_t us)
{
	struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int
free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static redisReply *
command(const char *cmd)
{
	struct timeval tv = {1, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
	redisReply *r = NULL;

	if (c && !c->err)
		r = redisCommand(c, "%s", cmd);
	if (c)
		redisFree(c);
	return r;
}

static int
redis_start(void)
{
	char port[16], log[128];
	int64_t until;
	int i;

	snprintf(redis_dir, sizeof redis_dir, "/tmp/bench_redis.XXXXXX");
	if (!mkdtemp(redis_dir))
		return -1;
	snprintf(log, sizeof log, "%s/redis.log", redis_dir);
	for (i = 0; i < 5; i++) {
		redis_port = free_port();
		snprintf(port, sizeof port, "%d", redis_port);
		redis_pid = fork();
		if (redis_pid == 0) {
			int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
			execlp("redis-server", "redis-server", "--port", port,
			       "--bind", "127.0.0.1", "--save", "",
			       "--appendonly", "no", "--dir", redis_dir,
			       (char *)NULL);
			_exit(127);
		}
		for (until = clock_us(CLOCK_MONOTONIC) + 5000000;
		     clock_us(CLOCK_MONOTONIC) < until; sleep_us(20000)) {
			redisReply *r = command("PING");
			int up = r && r->type == REDIS_REPLY_STATUS;

			if (r)
				freeReplyObject(r);
			if (up)
				return 0;
			if (waitpid(redis_pid, NULL, WNOHANG) == redis_pid)
				break;
		}
		kill(redis_pid, SIGKILL);
		waitpid(redis_pid, NULL, 0);
	}
	return -1;
}

static void
redis_stop(void)
{
	char cmd[128];

	if (redis_pid > 0) {
		kill(redis_pid, SIGKILL);
		waitpid(redis_pid, NULL, 0);
	}
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", redis_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", redis_dir);
}

static void
noop_ready(void *user, void *ctx)
{
}

/* ------------------------------------------------------------ the edge */

struct edge {
	struct tick_queue *queue;
	struct redis_follower *fol;
	struct engine *engine;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thread;
	int stop, woken;
	uint64_t applied;
	int64_t last_us;  /* wall clock of the last tick applied */
	int32_t *latency; /* µs, per tick applied */
	size_t nlat, cap;
};

static void
edge_wake(void *ctx)
{
	struct edge *e = ctx;

	pthread_mutex_lock(&e->mu);
	e->woken = 1;
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->mu);
}

static void
edge_epoch(const char *epoch, void *ctx)
{
}

static void
edge_restore(const struct symbol_state *st, void *ctx)
{
	struct edge *e = ctx;

	engine_restore_symbol(e->engine, st);
}

static void *
edge_main(void *arg)
{
	struct edge *e = arg;
	static struct tick buf[4096];

	pthread_mutex_lock(&e->mu);
	while (!e->stop) {
		size_t n, i;

		while (!e->woken && !e->stop)
			pthread_cond_wait(&e->cond, &e->mu);
		e->woken = 0;
		pthread_mutex_unlock(&e->mu);
		redis_follower_apply_pending(e->fol);
		while ((n = tick_queue_drain(e->queue, buf, 4096)) > 0) {
			int64_t now = clock_us(CLOCK_REALTIME);

			for (i = 0; i < n; i++) {
				if (!engine_apply_tick(e->engine, &buf[i]))
					continue;
				if (e->nlat < e->cap)
					e->latency[e->nlat++] =
					        (int32_t)(now - buf[i].ts);
			}
			pthread_mutex_lock(&e->mu);
			e->applied += n;
			e->last_us = now;
			pthread_mutex_unlock(&e->mu);
		}
		pthread_mutex_lock(&e->mu);
	}
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

static void
edge_open(struct edge *e, const char *prefix, size_t cap)
{
	struct engine_config ec = {.client_ready = noop_ready};
	struct redis_follower_options o = {0};
	char err[256];

	memset(e, 0, sizeof *e);
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cond, NULL);
	e->engine = engine_create(&ec);
	e->queue = tick_queue_create(256 * 1024, edge_wake, e);
	e->cap = cap;
	e->latency = malloc(cap * sizeof *e->latency);
	o.host = "127.0.0.1";
	o.port = redis_port;
	o.prefix = prefix;
	o.ticks = e->queue;
	o.epoch = edge_epoch;
	o.restore = edge_restore;
	o.wake = edge_wake;
	o.ctx = e;
	e->fol = redis_follower_create(&o, err, sizeof err);
	if (!e->engine || !e->queue || !e->latency || !e->fol ||
	    pthread_create(&e->thread, NULL, edge_main, e) ||
	    redis_follower_start(e->fol, err, sizeof err)) {
		fprintf(stderr, "bench_redis: edge: %s\n", err);
		exit(1);
	}
}

static uint64_t
edge_applied(struct edge *e)
{
	uint64_t n;

	pthread_mutex_lock(&e->mu);
	n = e->applied;
	pthread_mutex_unlock(&e->mu);
	return n;
}

static void
edge_close(struct edge *e)
{
	pthread_mutex_lock(&e->mu);
	e->stop = 1;
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->mu);
	pthread_join(e->thread, NULL);
	tick_queue_close(e->queue);
	redis_follower_destroy(e->fol);
	tick_queue_destroy(e->queue);
	engine_destroy(e->engine);
	free(e->latency);
}

/* ------------------------------------------------------------ the ingest */

struct ingest {
	struct engine *engine;
	struct redis_publisher *pub;
	uint64_t full; /* appends refused: back-pressure */
};

static void
ingest_open(struct ingest *in, const char *prefix)
{
	struct engine_config ec = {.client_ready = noop_ready};
	struct redis_publisher_options o = {0};
	char err[256];
	struct redis_publisher_stats s;
	int64_t until = clock_us(CLOCK_MONOTONIC) + 5000000;

	memset(in, 0, sizeof *in);
	in->engine = engine_create(&ec);
	o.host = "127.0.0.1";
	o.port = redis_port;
	o.prefix = prefix;
	o.epoch = "bench";
	o.stream_maxlen = 1000000;
	in->pub = redis_publisher_create(&o, err, sizeof err);
	if (!in->engine || !in->pub ||
	    redis_publisher_start(in->pub, err, sizeof err)) {
		fprintf(stderr, "bench_redis: publisher: %s\n", err);
		exit(1);
	}
	do {
		redis_publisher_get_stats(in->pub, &s);
		sleep_us(1000);
	} while (!s.connected && clock_us(CLOCK_MONOTONIC) < until);
}

static void
make_tick(struct tick *t, uint64_t i)
{
	memset(t, 0, sizeof *t);
	snprintf(t->symbol, sizeof t->symbol, "SYM%04u",
	         (unsigned)((i * 7919) % SYMBOLS));
	t->ts = clock_us(CLOCK_REALTIME);
	if (i % 4 == 3) {
		tick_set(t, FIELD_LAST, (struct decimal){18930 + i % 97, 2});
		tick_set(t, FIELD_LAST_SIZE, (struct decimal){100, 0});
	} else {
		tick_set(t, FIELD_BID, (struct decimal){18930 + i % 89, 2});
		tick_set(t, FIELD_ASK, (struct decimal){18935 + i % 83, 2});
		tick_set(t, FIELD_BID_SIZE, (struct decimal){200 + i % 5, 0});
	}
}

/* Apply n ticks to the serving engine and append them, waiting while the
 * publisher is full, as the server's drain does. */
static void
ingest_push(struct ingest *in, struct tick *t, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		t[i].seq = engine_apply_tick(in->engine, &t[i]);
	while (redis_publisher_append(in->pub, t, n) != 0) {
		in->full++;
		sleep_us(50);
	}
}

static int
cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

	return (x > y) - (x < y);
}

static void
print_latency(const char *what, struct edge *e)
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
	redisReply *r = command("INFO memory");
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
	struct ingest in;
	struct edge e;
	struct tick batch[PUSH_BATCH];
	int64_t t0, t1, until;
	uint64_t i;
	size_t k = 0;

	ingest_open(&in, "bench1");
	edge_open(&e, "bench1", TICKS);
	redis_follower_wait_synced(e.fol, 5000);
	sleep_us(100000);

	t0 = clock_us(CLOCK_MONOTONIC);
	for (i = 0; i < TICKS; i++) {
		make_tick(&batch[k++], i);
		if (k == PUSH_BATCH || i + 1 == TICKS) {
			ingest_push(&in, batch, k);
			k = 0;
		}
	}
	t1 = clock_us(CLOCK_MONOTONIC);
	until = t1 + 60000000;
	while (edge_applied(&e) < TICKS && clock_us(CLOCK_MONOTONIC) < until)
		sleep_us(1000);
	pthread_mutex_lock(&e.mu);
	t1 = e.last_us - (clock_us(CLOCK_REALTIME) - clock_us(CLOCK_MONOTONIC));
	pthread_mutex_unlock(&e.mu);
	redis_publisher_get_stats(in.pub, &ps);
	redis_follower_get_stats(e.fol, &fs);

	printf("throughput: %d ticks over %d symbols, ingest → redis → edge\n",
	       TICKS, SYMBOLS);
	printf("  %llu ticks applied at the edge in %.3f s: %.0f ticks/s\n",
	       (unsigned long long)edge_applied(&e), (t1 - t0) / 1e6,
	       edge_applied(&e) / ((t1 - t0) / 1e6));
	printf("  publisher: %llu batches (%.0f ticks each), %llu appends "
	       "refused (back-pressure); follower: %llu resyncs\n",
	       (unsigned long long)ps.batches,
	       ps.batches ? (double)ps.ticks_published / ps.batches : 0.0,
	       (unsigned long long)in.full, (unsigned long long)fs.resyncs);
	print_latency("latency under saturation (queueing included)", &e);
	print_redis_memory();
	edge_close(&e);
	redis_publisher_destroy(in.pub);
	engine_destroy(in.engine);
}

/* 2. A steady rate: what Redis adds to each tick. */
static void
bench_latency(unsigned rate, unsigned seconds)
{
	struct ingest in;
	struct edge e;
	struct tick batch[PUSH_BATCH];
	uint64_t i = 0, total = (uint64_t)rate * seconds;
	/* Push in small groups, as a feed's ticks come in: 1 ms apart. */
	unsigned per_ms = rate / 1000 ? rate / 1000 : 1;
	int64_t t0, until;
	char label[96];

	ingest_open(&in, rate > 50000 ? "bench3" : "bench2");
	edge_open(&e, rate > 50000 ? "bench3" : "bench2", total);
	redis_follower_wait_synced(e.fol, 5000);
	sleep_us(100000);
	t0 = clock_us(CLOCK_MONOTONIC);
	while (i < total) {
		int64_t due = t0 + (int64_t)(i / per_ms) * 1000;
		size_t k = 0;

		while (clock_us(CLOCK_MONOTONIC) < due)
			sleep_us(100);
		while (k < per_ms && k < PUSH_BATCH && i < total)
			make_tick(&batch[k++], i++);
		ingest_push(&in, batch, k);
	}
	until = clock_us(CLOCK_MONOTONIC) + 10000000;
	while (edge_applied(&e) < total && clock_us(CLOCK_MONOTONIC) < until)
		sleep_us(1000);
	snprintf(label, sizeof label,
	         "latency at %u ticks/s (append → applied "
	         "at the edge)",
	         rate);
	print_latency(label, &e);
	edge_close(&e);
	redis_publisher_destroy(in.pub);
	engine_destroy(in.engine);
}

int
main(void)
{
	if (system("command -v redis-server >/dev/null 2>&1") != 0) {
		printf("bench_redis: skipped: redis-server is not installed "
		       "(tests/deps.sh installs it)\n");
		return 0;
	}
	log_set_level(LOG_ERROR);
	if (redis_start()) {
		fprintf(stderr, "bench_redis: cannot start redis-server\n");
		return 1;
	}
	bench_throughput();
	bench_latency(10000, 3);
	bench_latency(100000, 3);
	redis_stop();
	return 0;
}

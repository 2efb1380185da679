/*
 * Unit tests for the Redis link (publisher/redis_*.c) against a real
 * redis-server, started here on a free loopback port without persistence
 * (--save "" --appendonly no) and stopped at the end; they are skipped, saying
 * so, only when redis-server is not installed (tests/deps.sh installs it).
 *
 * Each test plays both nodes: an "ingest" (a serving engine that assigns
 * seqs, and the publisher) and one "edge" (a follower, its tick queue, and a
 * thread standing in for the service thread: it applies resyncs and drains
 * the queue into the edge's engine). They check that ticks arrive with their
 * seqs exactly, that a late edge comes up warm, that an edge converges after
 * Redis is killed and restarted empty, after the stream was trimmed past it,
 * and after an epoch change; and the /healthz reasons. The state format
 * (trading sessions in it) and the floor of an ingest's start are checked
 * without Redis.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "engine.h"
#include "jsonbuf.h"
#include "log.h"
#include "redis_link.h"
#include "redis_private.h" /* the state format */
#include "tick_queue.h"

#include "support/asserts.h"
#include "support/redis_nodes.h"
#include "support/redis_server.h"
#include "support/ticks.h"
#include "support/timing.h"

/* ------------------------------------------------------------ the server */

static struct redis_server srv;
static bool redis_up;

static int
group_setup(void **state)
{
	/* The fault tests log warnings; TEST_LOG=1 shows them. */
	log_set_level(getenv("TEST_LOG") ? LOG_DEBUG : LOG_ERROR);
	if (!redis_server_installed()) {
		fprintf(stderr, "test_redis_link: SKIPPED: redis-server is not "
		                "installed (tests/deps.sh installs it)\n");
		return 0;
	}
	if (redis_server_start(&srv, "test_redis_link") == 0) {
		redis_up = true;
		return 0;
	}
	fprintf(stderr,
	        "test_redis_link: cannot start redis-server (see "
	        "%s/redis.log)\n",
	        srv.dir);
	return -1;
}

static int
group_teardown(void **state)
{
	if (redis_server_stop(&srv) != 0)
		fprintf(stderr, "could not remove %s\n", srv.dir);
	return 0;
}

#define NEED_REDIS()                                                           \
	do {                                                                   \
		if (!redis_up)                                                 \
			skip();                                                \
	} while (0)

/* ------------------------------------------------------------ ticks */

/*
 * The i-th tick of a deterministic mix over nsym symbols named <name>N:
 * quotes (with a trailing-zero price, 189.30), trades, an 18-digit scale, a
 * negative value, and on every fifth symbol a feed that sends volume.
 */
static void
make_tick(struct tick *t, const char *name, unsigned i, unsigned nsym)
{
	unsigned s = (i * 7919u) % nsym;

	memset(t, 0, sizeof *t);
	snprintf(t->symbol, sizeof t->symbol, "%s%u", name, s);
	t->ts = 1709303400000000ll + i;
	switch (i % 4) {
	case 0:
		tick_set(t, FIELD_BID, (struct decimal){18930 + i % 7, 2});
		tick_set(t, FIELD_ASK, (struct decimal){18935 + i % 5, 2});
		tick_set(t, FIELD_BID_SIZE, (struct decimal){100 * (i % 4), 0});
		break;
	case 1:
		tick_set(t, FIELD_LAST, (struct decimal){1893 + i % 9, 1});
		tick_set(t, FIELD_LAST_SIZE, (struct decimal){i % 7 + 1, 0});
		if (s % 5 == 0)
			tick_set(t, FIELD_VOLUME, (struct decimal){i * 10, 0});
		break;
	case 2:
		tick_set(t, FIELD_ASK,
		         (struct decimal){123456789012345678ll + i, 18});
		tick_set(t, FIELD_ASK_SIZE, (struct decimal){-(int64_t)i, 3});
		break;
	default:
		tick_set(t, FIELD_LAST, (struct decimal){18930, 2});
		tick_set(t, FIELD_LAST_SIZE, (struct decimal){5, 1});
		break;
	}
}

/* ------------------------------------------------------------ the nodes */

/* An ingest (support/redis_nodes.h) keeping its first cap ticks applied. */
static void
ingest_open(struct redis_ingest *in, const char *prefix, const char *epoch,
            uint64_t maxlen, unsigned backoff_max_ms, int port, size_t cap)
{
	struct redis_publisher_options o = {0};
	char err[256];

	o.host = "127.0.0.1";
	o.port = port;
	o.prefix = prefix;
	o.epoch = epoch;
	o.stream_maxlen = maxlen;
	o.backoff_max_ms = backoff_max_ms;
	if (redis_ingest_open(in, &o, cap, err, sizeof err) != 0)
		fail_msg("ingest: %s", err);
}

static void
ingest_start(struct redis_ingest *in)
{
	char err[256];

	assert_int_equal(redis_publisher_start(in->pub, err, sizeof err), 0);
}

static void
ingest_push_many(struct redis_ingest *in, const char *name, unsigned from,
                 unsigned count, unsigned nsym)
{
	struct tick t[100];
	unsigned i, k = 0;

	for (i = from; i < from + count; i++) {
		make_tick(&t[k++], name, i, nsym);
		if (k == 100 || i + 1 == from + count) {
			redis_ingest_push(in, t, k);
			k = 0;
		}
	}
}

static bool
publisher_connected(struct redis_ingest *in)
{
	struct redis_publisher_stats s;

	redis_publisher_get_stats(in->pub, &s);
	return s.connected;
}

static uint64_t
published(struct redis_ingest *in)
{
	struct redis_publisher_stats s;

	redis_publisher_get_stats(in->pub, &s);
	return s.ticks_published;
}

/* An edge (support/redis_nodes.h) keeping its first cap ticks applied. */
static void
edge_open(struct redis_edge *e, const char *prefix, int port, size_t queue_cap,
          size_t cap, unsigned backoff_max_ms, unsigned silent_ms)
{
	struct redis_edge_options o = {
	        .port = port,
	        .prefix = prefix,
	        .queue_cap = queue_cap,
	        .backoff_max_ms = backoff_max_ms,
	        .silent_ms = silent_ms,
	        .keep_ticks = cap,
	};
	char err[256];

	if (redis_edge_open(e, &o, err, sizeof err) != 0)
		fail_msg("edge: %s", err);
}

static struct redis_follower_stats
edge_stats(struct redis_edge *e)
{
	struct redis_follower_stats s;

	redis_follower_get_stats(e->fol, &s);
	return s;
}

/* Compare every symbol of the ingest's engine with the edge's, and the
 * symbol counts. */
struct cmp_ctx {
	struct engine *other;
	size_t checked, differ;
};

static void
cmp_one(const struct symbol_state *s, void *ctx)
{
	struct cmp_ctx *c = ctx;
	struct symbol_state o;

	c->checked++;
	if (engine_get_state(c->other, s->symbol, &o) != 0 ||
	    !states_equal(s, &o))
		c->differ++;
}

static bool
converged(struct redis_ingest *in, struct redis_edge *e)
{
	struct cmp_ctx c = {0};
	struct engine_stats a, b;

	pthread_mutex_lock(&in->mu);
	pthread_mutex_lock(&e->mu);
	c.other = e->engine;
	engine_foreach_symbol(in->engine, cmp_one, &c);
	engine_get_stats(in->engine, &a);
	engine_get_stats(e->engine, &b);
	pthread_mutex_unlock(&e->mu);
	pthread_mutex_unlock(&in->mu);
	return c.differ == 0 && a.symbols == b.symbols && c.checked > 0;
}

#define WAIT_FOR(cond, seconds)                                                \
	do {                                                                   \
		int64_t wait__until =                                          \
		        clock_mono_us() + (int64_t)(seconds)*1000000;          \
		while (!(cond) && clock_mono_us() < wait__until)               \
			timing_sleep_ms(10);                                   \
		assert_true(cond);                                             \
	} while (0)

/* ------------------------------------------------------------ tests */

static void
test_bad_options(void **state)
{
	struct redis_publisher_options po = {
	        .host = "127.0.0.1", .port = 0, .epoch = "e"};
	struct redis_follower_options fo = {0};
	char err[256];

	assert_null(redis_publisher_create(&po, err, sizeof err));
	assert_non_null(strstr(err, "1..65535"));
	po.port = 6379;
	po.prefix = "has space";
	assert_null(redis_publisher_create(&po, err, sizeof err));
	assert_non_null(strstr(err, "prefix"));
	po.prefix = NULL;
	po.epoch = "";
	assert_null(redis_publisher_create(&po, err, sizeof err));
	assert_non_null(strstr(err, "epoch"));
	fo.host = "127.0.0.1";
	fo.port = 6379;
	assert_null(redis_follower_create(&fo, err, sizeof err));
	assert_non_null(strstr(err, "callbacks"));
	redis_publisher_destroy(NULL);
	redis_follower_destroy(NULL);
}

/* Publisher → Redis → follower carries every tick with its seq, exactly,
 * in order. */
static void
test_carries_ticks_with_seqs(void **state)
{
	enum { N = 20000 };
	struct redis_ingest in;
	struct redis_edge e;
	size_t i;

	NEED_REDIS();
	ingest_open(&in, "t1", "epoch-1", 0, 0, srv.port, N);
	ingest_start(&in);
	WAIT_FOR(publisher_connected(&in), 5);
	edge_open(&e, "t1", srv.port, 4096, N + 1, 0, 0);
	assert_int_equal(redis_follower_wait_synced(e.fol, 5000), 0);
	WAIT_FOR(edge_stats(&e).resyncs == 1 &&
	                 redis_edge_counts(&e).epoch_changes == 1,
	         5);
	pthread_mutex_lock(&e.mu);
	assert_string_equal(e.epoch, "epoch-1");
	pthread_mutex_unlock(&e.mu);

	ingest_push_many(&in, "S", 0, N, 50);
	WAIT_FOR(redis_edge_counts(&e).ngot == N, 20);
	pthread_mutex_lock(&e.mu);
	for (i = 0; i < N; i++)
		assert_tick_equal(&e.got[i], &in.sent[i]);
	pthread_mutex_unlock(&e.mu);
	assert_true(converged(&in, &e));
	assert_int_equal(edge_stats(&e).ticks_pushed, N);
	assert_int_equal(edge_stats(&e).resyncs, 1);
	assert_int_equal(published(&in), N);

	redis_edge_close(&e);
	redis_ingest_close(&in);
}

/* A follower started after the ticks comes up warm: every symbol's state,
 * change seqs and exact decimals included, from Redis alone. */
static void
test_late_follower_warm(void **state)
{
	struct redis_ingest in;
	struct redis_edge e;
	struct engine_stats es;

	NEED_REDIS();
	ingest_open(&in, "t2", "epoch-2", 0, 0, srv.port, 0);
	ingest_start(&in);
	ingest_push_many(&in, "W", 0, 5000, 200);
	WAIT_FOR(published(&in) == 5000, 10);

	edge_open(&e, "t2", srv.port, 4096, 0, 0, 0);
	assert_int_equal(redis_follower_wait_synced(e.fol, 5000), 0);
	WAIT_FOR(converged(&in, &e), 5);
	pthread_mutex_lock(&e.mu);
	engine_get_stats(e.engine, &es);
	assert_int_equal(es.symbols, 200);
	assert_int_equal(e.restores, 200);
	pthread_mutex_unlock(&e.mu);
	/* Warm from the state, not from replaying the stream. */
	assert_int_equal(edge_stats(&e).ticks_pushed, 0);
	assert_int_equal(edge_stats(&e).symbols_restored, 200);

	redis_edge_close(&e);
	redis_ingest_close(&in);
}

struct producer {
	struct redis_ingest *in;
	unsigned seconds, rate, sent;
};

/* Ticks at about `rate` per second for `seconds`, in batches of 100. */
static void *
producer_main(void *arg)
{
	struct producer *p = arg;
	int64_t start = clock_mono_us(), end = start + p->seconds * 1000000ll;

	while (clock_mono_us() < end) {
		int64_t due = start + (int64_t)p->sent * 1000000 / p->rate;

		if (clock_mono_us() < due) {
			timing_sleep_ms(1);
			continue;
		}
		ingest_push_many(p->in, "K", p->sent, 100, 100);
		p->sent += 100;
	}
	return NULL;
}

/* Redis SIGKILLed for 2 s mid-stream and restarted empty (no persistence):
 * the publisher folds ticks into its state meanwhile and rewrites it on
 * reconnect; the follower resyncs from it and converges, never going
 * back. */
static void
test_redis_killed_and_restarted(void **state)
{
	struct producer prod = {.seconds = 5, .rate = 20000};
	struct redis_publisher_stats ps;
	struct redis_follower_stats fs;
	struct redis_ingest in;
	struct redis_edge e;
	pthread_t t;
	char why[256];

	NEED_REDIS();
	ingest_open(&in, "t3", "epoch-3", 0, 1000, srv.port, 0);
	ingest_start(&in);
	WAIT_FOR(publisher_connected(&in), 5);
	edge_open(&e, "t3", srv.port, 4096, 0, 1000, 0);
	assert_int_equal(redis_follower_wait_synced(e.fol, 5000), 0);
	prod.in = &in;
	assert_int_equal(pthread_create(&t, NULL, producer_main, &prod), 0);

	timing_sleep_ms(1000);
	redis_server_kill(&srv);
	timing_sleep_ms(1500);
	assert_true(redis_follower_degraded(e.fol, why, sizeof why));
	assert_non_null(strstr(why, "unreachable since"));
	assert_true(redis_publisher_degraded(in.pub, why, sizeof why));
	assert_non_null(strstr(why, "unreachable since"));
	timing_sleep_ms(500);
	assert_int_equal(redis_server_restart(&srv), 0);

	pthread_join(t, NULL);
	WAIT_FOR(converged(&in, &e), 20);
	redis_publisher_get_stats(in.pub, &ps);
	fs = edge_stats(&e);
	assert_true(ps.connected);
	assert_true(ps.reconnects >= 1);
	assert_true(ps.ticks_folded > 0); /* the outage's ticks: as state */
	assert_true(fs.connected);
	assert_true(fs.reconnects >= 1);
	assert_true(fs.resyncs >= 2);
	pthread_mutex_lock(&e.mu);
	assert_int_equal(e.restores_backwards, 0);
	pthread_mutex_unlock(&e.mu);
	assert_false(redis_follower_degraded(e.fol, why, sizeof why));

	redis_edge_close(&e);
	redis_ingest_close(&in);
}

/* The follower's connection id in CLIENT LIST (named by the follower). */
static long long
edge_client_id(void)
{
	redisReply *r = redis_server_command(&srv, "CLIENT LIST");
	long long id = -1;
	char *line, *save = NULL;

	assert_non_null(r);
	for (line = strtok_r(r->str, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		if (strstr(line, " name=publisher-edge "))
			id = atoll(line + 3); /* "id=N ..." */
	freeReplyObject(r);
	return id;
}

/* A small stream (MAXLEN ~ 100) trimmed far past a follower that was
 * stalled and then cut off: it notices the gap and resyncs. */
static void
test_trimmed_while_disconnected(void **state)
{
	uint64_t resyncs, reconnects;
	struct redis_ingest in;
	struct redis_edge e;
	redisReply *r;
	long long id;

	NEED_REDIS();
	ingest_open(&in, "t4", "epoch-4", 100, 0, srv.port, 0);
	ingest_start(&in);
	WAIT_FOR(publisher_connected(&in), 5);
	edge_open(&e, "t4", srv.port, 256, 0, 1000, 0);
	assert_int_equal(redis_follower_wait_synced(e.fol, 5000), 0);
	ingest_push_many(&in, "T", 0, 1000, 40);
	WAIT_FOR(converged(&in, &e), 10);
	/* A stream this short may already have been trimmed past the
	 * follower while it kept up; count from here. */
	resyncs = edge_stats(&e).resyncs;
	reconnects = edge_stats(&e).reconnects;

	/* Stall the edge: its queue fills and the follower blocks. */
	pthread_mutex_lock(&e.mu);
	e.paused = true;
	pthread_mutex_unlock(&e.mu);
	ingest_push_many(&in, "T", 1000, 5000, 40);
	WAIT_FOR(published(&in) == 6000, 10);
	id = edge_client_id();
	assert_true(id > 0);
	r = redis_server_command(&srv, "CLIENT KILL ID %lld", id);
	assert_non_null(r);
	assert_int_equal(r->integer, 1);
	freeReplyObject(r);
	ingest_push_many(&in, "T", 6000, 5000, 40);
	WAIT_FOR(published(&in) == 11000, 10);
	r = redis_server_command(&srv, "XLEN t4:ticks");
	assert_non_null(r);
	assert_true(r->integer < 1000); /* trimmed */
	freeReplyObject(r);

	pthread_mutex_lock(&e.mu);
	e.paused = false;
	e.woken = true;
	pthread_cond_signal(&e.cond);
	pthread_mutex_unlock(&e.mu);
	WAIT_FOR(converged(&in, &e), 15);
	assert_true(edge_stats(&e).resyncs > resyncs);
	assert_true(edge_stats(&e).reconnects > reconnects);
	pthread_mutex_lock(&e.mu);
	assert_int_equal(e.restores_backwards, 0);
	pthread_mutex_unlock(&e.mu);

	redis_edge_close(&e);
	redis_ingest_close(&in);
}

/* A dropped link with the stream intact: the follower reconnects and
 * carries on from its last id, every tick exactly, with no resync. */
static void
test_reconnect_catches_up(void **state)
{
	enum { N = 5000 };
	struct redis_ingest in;
	struct redis_edge e;
	redisReply *r;
	size_t i;

	NEED_REDIS();
	ingest_open(&in, "t8", "epoch-8", 0, 0, srv.port, N);
	ingest_start(&in);
	WAIT_FOR(publisher_connected(&in), 5);
	edge_open(&e, "t8", srv.port, 4096, N, 1000, 0);
	assert_int_equal(redis_follower_wait_synced(e.fol, 5000), 0);
	ingest_push_many(&in, "C", 0, 2000, 30);
	WAIT_FOR(redis_edge_counts(&e).ngot == 2000, 10);

	r = redis_server_command(&srv, "CLIENT KILL ID %lld", edge_client_id());
	assert_non_null(r);
	assert_int_equal(r->integer, 1);
	freeReplyObject(r);
	ingest_push_many(&in, "C", 2000, N - 2000, 30);
	WAIT_FOR(redis_edge_counts(&e).ngot == N, 10);
	pthread_mutex_lock(&e.mu);
	for (i = 0; i < N; i++)
		assert_tick_equal(&e.got[i], &in.sent[i]);
	pthread_mutex_unlock(&e.mu);
	assert_true(converged(&in, &e));
	assert_true(edge_stats(&e).reconnects >= 1);
	assert_int_equal(edge_stats(&e).resyncs, 1);

	redis_edge_close(&e);
	redis_ingest_close(&in);
}

/* A new ingest with another epoch overwrites Redis; the edge is told,
 * resets, and converges to the new life alone. */
static void
test_epoch_change(void **state)
{
	struct redis_ingest a, b;
	struct redis_edge e;
	redisReply *r;

	NEED_REDIS();
	ingest_open(&a, "t5", "epoch-a", 0, 0, srv.port, 0);
	ingest_start(&a);
	ingest_push_many(&a, "A", 0, 500, 10);
	WAIT_FOR(published(&a) == 500, 10);
	edge_open(&e, "t5", srv.port, 4096, 0, 0, 0);
	WAIT_FOR(converged(&a, &e), 10);
	pthread_mutex_lock(&e.mu);
	assert_string_equal(e.epoch, "epoch-a");
	assert_int_equal(e.epoch_changes, 1);
	pthread_mutex_unlock(&e.mu);
	redis_ingest_close(&a);

	ingest_open(&b, "t5", "epoch-b", 0, 0, srv.port, 0);
	ingest_start(&b);
	ingest_push_many(&b, "B", 0, 300, 5);
	WAIT_FOR(published(&b) == 300, 10);
	WAIT_FOR(converged(&b, &e), 10);
	pthread_mutex_lock(&e.mu);
	assert_string_equal(e.epoch, "epoch-b");
	assert_int_equal(e.epoch_changes, 2);
	pthread_mutex_unlock(&e.mu);
	r = redis_server_command(&srv, "GET t5:epoch");
	assert_non_null(r);
	assert_string_equal(r->str, "epoch-b");
	freeReplyObject(r);
	/* The old life's entries were deleted with it. */
	r = redis_server_command(&srv, "XLEN t5:ticks");
	assert_non_null(r);
	assert_true(r->integer <= 301);
	freeReplyObject(r);

	redis_edge_close(&e);
	redis_ingest_close(&b);
}

/* /healthz reasons: unreachable, no state yet, heartbeats keep an idle
 * edge healthy, and an ingest gone silent. */
static void
test_degraded_reasons(void **state)
{
	struct redis_publisher_options po = {0};
	struct redis_publisher *p;
	struct redis_ingest in;
	struct redis_edge e, dead;
	char why[256], err[256];
	int64_t until;
	int port;

	NEED_REDIS();
	port = loopback_free_port();
	edge_open(&dead, "t6", port, 64, 0, 200, 0);
	WAIT_FOR(redis_follower_degraded(dead.fol, why, sizeof why) &&
	                 strstr(why, "unreachable since") &&
	                 strstr(why, "refused"),
	         5);
	redis_edge_close(&dead);
	po.host = "127.0.0.1";
	po.port = port;
	po.epoch = "x";
	p = redis_publisher_create(&po, err, sizeof err);
	assert_non_null(p);
	assert_int_equal(redis_publisher_start(p, err, sizeof err), 0);
	WAIT_FOR(redis_publisher_degraded(p, why, sizeof why) &&
	                 strstr(why, "unreachable since"),
	         5);
	redis_publisher_destroy(p);

	edge_open(&e, "t6", srv.port, 64, 0, 0, 1500);
	WAIT_FOR(redis_follower_degraded(e.fol, why, sizeof why) &&
	                 strstr(why, "waiting for the ingest"),
	         5);
	ingest_open(&in, "t6", "epoch-6", 0, 0, srv.port, 0);
	ingest_start(&in);
	assert_int_equal(redis_follower_wait_synced(e.fol, 5000), 0);
	WAIT_FOR(!redis_follower_degraded(e.fol, why, sizeof why), 5);
	/* Idle but alive: the heartbeats keep it healthy. */
	for (until = clock_mono_us() + 3000000; clock_mono_us() < until;
	     timing_sleep_ms(100))
		assert_false(redis_follower_degraded(e.fol, why, sizeof why));
	assert_true(edge_stats(&e).entries_read >= 2);
	redis_ingest_close(&in);
	WAIT_FOR(redis_follower_degraded(e.fol, why, sizeof why) &&
	                 strstr(why, "ingest silent"),
	         5);
	redis_edge_close(&e);
}

struct asked {
	pthread_mutex_t mu;
	int calls;
	char epoch[REDIS_LINK_EPOCH_MAX + 1];
	char why[300];
};

static void
on_need_epoch(const char *epoch, const char *why, void *ctx)
{
	struct asked *a = ctx;

	pthread_mutex_lock(&a->mu);
	a->calls++;
	snprintf(a->epoch, sizeof a->epoch, "%s", epoch);
	snprintf(a->why, sizeof a->why, "%s", why);
	pthread_mutex_unlock(&a->mu);
}

static int
asked_calls(struct asked *a)
{
	int n;

	pthread_mutex_lock(&a->mu);
	n = a->calls;
	pthread_mutex_unlock(&a->mu);
	return n;
}

/*
 * An ingest that comes back behind what Redis holds in the same epoch (it
 * lost ticks it had published, and could not read Redis before serving)
 * publishes nothing more in that epoch: Redis keeps what it held, the
 * ingest is asked for a new epoch, and once the sink's epoch op brings it
 * the publisher overwrites Redis under it.
 */
static void
test_ingest_behind_redis_publishes_nothing_until_a_new_epoch(void **state)
{
	struct redis_publisher_options o = {0};
	struct redis_publisher_stats ps;
	struct asked a = {PTHREAD_MUTEX_INITIALIZER, 0, "", ""};
	struct symbol_state st;
	struct redis_ingest in, b;
	struct engine *store;
	struct sink sink;
	struct tick t;
	redisReply *r;
	char why[300], err[256];
	unsigned i;

	NEED_REDIS();
	ingest_open(&in, "t7", "epoch-7", 0, 0, srv.port, 0);
	ingest_start(&in);
	ingest_push_many(&in, "X", 0, 10, 1);
	WAIT_FOR(published(&in) == 10, 10);
	redis_ingest_close(&in);

	/* The same epoch, restored from a store that had only 5 ticks. */
	store = new_engine();
	for (i = 0; i < 5; i++) {
		make_tick(&t, "X", i, 1);
		assert_true(engine_apply_tick(store, &t) > 0);
	}
	assert_int_equal(engine_get_state(store, "X0", &st), 0);
	engine_destroy(store);
	o.host = "127.0.0.1";
	o.port = srv.port;
	o.prefix = "t7";
	o.epoch = "epoch-7";
	o.backoff_max_ms = 200;
	o.need_epoch = on_need_epoch;
	o.need_epoch_ctx = &a;
	assert_int_equal(redis_ingest_open(&b, &o, 0, err, sizeof err), 0);
	assert_int_equal(redis_publisher_restore(b.pub, &st), 0);
	ingest_start(&b);
	assert_int_equal(redis_publisher_restore(b.pub, &st), -1);
	WAIT_FOR(asked_calls(&a) >= 1, 5);
	pthread_mutex_lock(&a.mu);
	assert_string_equal(a.epoch, "epoch-7");
	assert_non_null(strstr(a.why, "further on"));
	pthread_mutex_unlock(&a.mu);
	redis_publisher_get_stats(b.pub, &ps);
	assert_true(ps.ahead_symbols >= 1);
	assert_false(ps.connected);
	assert_true(redis_publisher_degraded(b.pub, why, sizeof why));
	assert_non_null(strstr(why, "further on"));
	/* Redis still holds what it held. */
	r = redis_server_command(&srv, "HGET t7:state X0");
	assert_non_null(r);
	assert_non_null(strstr(r->str, "s2 10 "));
	freeReplyObject(r);

	/* The ingest's new epoch: published, the old one replaced. */
	sink = redis_publisher_sink(b.pub);
	assert_non_null(sink.ops->epoch);
	assert_int_equal(sink.ops->epoch(sink.impl, "epoch-8", why, sizeof why),
	                 0);
	WAIT_FOR(publisher_connected(&b), 5);
	r = redis_server_command(&srv, "GET t7:epoch");
	assert_non_null(r);
	assert_string_equal(r->str, "epoch-8");
	freeReplyObject(r);
	r = redis_server_command(&srv, "HGET t7:state X0");
	assert_non_null(r);
	assert_non_null(strstr(r->str, "s2 5 "));
	freeReplyObject(r);
	redis_publisher_get_stats(b.pub, &ps);
	assert_int_equal(ps.epoch_changes, 1);
	redis_ingest_close(&b);
}

/* The sink's epoch op, while ticks flow: those appended before it reach
 * the edge under the old epoch, those after under the new one, which the
 * edge follows (a reset) and then equals the ingest. */
static void
test_epoch_op_reaches_the_edge_in_order_with_the_ticks(void **state)
{
	struct redis_ingest in;
	struct redis_edge e;
	struct sink sink;
	char why[200];

	NEED_REDIS();
	ingest_open(&in, "t9", "epoch-9a", 0, 0, srv.port, 0);
	ingest_start(&in);
	edge_open(&e, "t9", srv.port, 4096, 0, 0, 0);
	ingest_push_many(&in, "E", 0, 300, 6);
	WAIT_FOR(converged(&in, &e), 10);
	sink = redis_publisher_sink(in.pub);
	assert_int_equal(
	        sink.ops->epoch(sink.impl, "epoch-9b", why, sizeof why), 0);
	ingest_push_many(&in, "E", 300, 300, 6);
	WAIT_FOR(published(&in) == 600, 10);
	WAIT_FOR(converged(&in, &e), 10);
	pthread_mutex_lock(&e.mu);
	assert_string_equal(e.epoch, "epoch-9b");
	assert_int_equal(e.epoch_changes, 2);
	pthread_mutex_unlock(&e.mu);
	assert_int_equal(
	        sink.ops->epoch(sink.impl, "bad epoch", why, sizeof why), -1);
	redis_edge_close(&e);
	redis_ingest_close(&in);
}

static void
collect_state(const struct symbol_state *st, void *ctx)
{
	struct symbol_state *out = ctx;

	if (!strcmp(st->symbol, "P0"))
		*out = *st;
}

/* An ingest's start reads Redis's states of its epoch (and none of
 * another), and takes them as a lower bound: further on, or another value
 * at a seq ours says had this one, goes past both; a field ours lacks
 * needs a new epoch. */
static void
test_peek_and_floor(void **state)
{
	struct redis_ingest in;
	struct symbol_state theirs, ours, out;
	struct engine *eng;
	struct tick t;
	char err[256];
	unsigned i;
	int f;

	NEED_REDIS();
	ingest_open(&in, "t10", "epoch-10", 0, 0, srv.port, 0);
	ingest_start(&in);
	ingest_push_many(&in, "P", 0, 8, 1);
	WAIT_FOR(published(&in) == 8, 10);
	redis_ingest_close(&in);
	memset(&theirs, 0, sizeof theirs);
	assert_int_equal(redis_link_peek("127.0.0.1", srv.port, "t10",
	                                 "epoch-10", 1000, collect_state,
	                                 &theirs, err, sizeof err),
	                 1);
	assert_int_equal(theirs.seq, 8);
	assert_int_equal(redis_link_peek("127.0.0.1", srv.port, "t10",
	                                 "epoch-other", 1000, collect_state,
	                                 &theirs, err, sizeof err),
	                 0);
	assert_int_equal(redis_link_peek("127.0.0.1", loopback_free_port(),
	                                 "t10", "epoch-10", 300, collect_state,
	                                 &theirs, err, sizeof err),
	                 -1);
	assert_non_null(strstr(err, "cannot read"));

	/* Ours: the same ticks, fewer of them, then others. */
	eng = new_engine();
	for (i = 0; i < 8; i++) {
		make_tick(&t, "P", i, 1);
		assert_true(engine_apply_tick(eng, &t) > 0);
		if (i == 5)
			assert_int_equal(engine_get_state(eng, "P0", &ours), 0);
	}
	assert_int_equal(redis_link_floor(&ours, &theirs, &out),
	                 REDIS_FLOOR_PAST);
	assert_int_equal(out.seq, 9);
	for (f = 0; f < STATE_FIELD_COUNT; f++)
		if ((out.present >> f) & 1u)
			assert_int_equal(out.changed_seq[f], 9);
	assert_int_equal(out.present, ours.present);
	assert_int_equal(engine_get_state(eng, "P0", &ours), 0);
	assert_int_equal(redis_link_floor(&ours, &theirs, &out),
	                 REDIS_FLOOR_KEEP);
	make_tick(&t, "P", 8, 1);
	assert_true(engine_apply_tick(eng, &t) > 0);
	assert_int_equal(engine_get_state(eng, "P0", &ours), 0);
	assert_int_equal(redis_link_floor(&ours, &theirs, &out),
	                 REDIS_FLOOR_KEEP);
	/* Ours went on from another history: a value it kept since before
	 * Redis's seq differs from Redis's. */
	ours.value[FIELD_BID].mantissa++;
	ours.changed_seq[FIELD_BID] = 1;
	assert_int_equal(redis_link_floor(&ours, &theirs, &out),
	                 REDIS_FLOOR_PAST);
	assert_int_equal(out.seq, 10);
	ours.present &= (uint16_t) ~(1u << FIELD_LAST);
	assert_int_equal(redis_link_floor(&ours, &theirs, &out),
	                 REDIS_FLOOR_LOST);
	assert_int_equal(redis_link_floor(NULL, &theirs, &out),
	                 REDIS_FLOOR_LOST);
	engine_destroy(eng);
}

/* A state as Redis holds it (s2): the trading session it is in, its
 * prev_close, and the fields a session took away with the seq they went
 * at; one of an older version (s1) reads with its session unknown. No
 * Redis needed. */
static void
test_state_format_carries_sessions(void **state)
{
	struct symbol_state st, back;
	struct jsonbuf b;
	const char *why = NULL;
	const char *s1 = "s1 7 1500 0 bid=1.5@7 last=2@3";
	struct tick t;

	symbol_state_init(&st, "S", 1);
	t = tick_trade("S", 100, dec("10.50"), dec("3"));
	symbol_state_apply(&st, &t, NULL);
	t = tick_quote("S", 86400000000 + 5, dec("10.4"), dec("10.6"));
	symbol_state_apply(&st, &t, NULL);
	jsonbuf_init(&b, 0);
	redis__state_encode(&b, &st);
	jsonbuf_append_char(&b, '\0');
	assert_string_equal(jsonbuf_data(&b),
	                    "s2 2 86400000005 0 86400000000 bid=10.4@2 "
	                    "ask=10.6@2 last=10.50@1 last_size=3@1 volume=0@2 "
	                    "open=@2 high=@2 low=@2 trades=0@2 "
	                    "prev_close=10.50@2");
	assert_int_equal(redis__state_decode("S", 1, jsonbuf_data(&b),
	                                     b.len - 1, &back, &why),
	                 0);
	back.session_end = st.session_end;
	assert_true(states_equal(&back, &st));
	assert_int_equal(redis__state_decode("S", 1, s1, strlen(s1), &back,
	                                     &why),
	                 0);
	assert_true(back.session == SYMBOL_STATE_SESSION_UNKNOWN);
	assert_int_equal(back.present,
	                 (1u << FIELD_BID) | (1u << FIELD_LAST));
	/* s1 has no field without a value; s2 none with change seq 0 */
	assert_int_equal(redis__state_decode("S", 1, "s1 7 1 0 open=@5", 16,
	                                     &back, &why),
	                 -1);
	assert_int_equal(redis__state_decode("S", 1, "s2 7 1 0 0 open=@0", 18,
	                                     &back, &why),
	                 -1);
	assert_int_equal(redis__state_decode("S", 1, "s2 7 1 0 x bid=1@7", 18,
	                                     &back, &why),
	                 -1);
	assert_string_equal(why, "bad session");
	jsonbuf_free(&b);
}

/* The floor of an ingest's start: a field Redis has that a session took
 * from ours after Redis's seq is no loss; one ours has had without since
 * before is another history, and going past both takes it away (null). */
static void
test_floor_with_a_field_a_session_took_away(void **state)
{
	struct symbol_state ours, theirs, out;
	struct tick t;

	symbol_state_init(&ours, "S", 1);
	t = tick_trade("S", 100, dec("10"), dec("1"));
	symbol_state_apply(&ours, &t, NULL);
	theirs = ours;
	t = tick_quote("S", 86400000000, dec("9"), dec("11"));
	symbol_state_apply(&ours, &t, NULL);
	assert_false((ours.present >> FIELD_OPEN) & 1u);
	assert_int_equal(redis_link_floor(&ours, &theirs, &out),
	                 REDIS_FLOOR_KEEP);
	/* Redis further on with open; ours has been without it since seq 2,
	 * before Redis's 3 */
	theirs.seq = 3;
	assert_int_equal(redis_link_floor(&ours, &theirs, &out),
	                 REDIS_FLOOR_PAST);
	assert_int_equal(out.seq, 4);
	assert_false((out.present >> FIELD_OPEN) & 1u);
	assert_int_equal(out.changed_seq[FIELD_OPEN], 4);
	assert_int_equal(out.changed_seq[FIELD_PREV_CLOSE], 4);
	assert_int_equal(out.changed_seq[FIELD_BID_SIZE], 0);
}

static int
ingest_state(const char *symbol, struct symbol_state *out, void *ctx)
{
	return engine_get_state(((struct redis_ingest *)ctx)->engine, symbol,
	                        out);
}

/*
 * Redis answers nothing for a while (CLIENT PAUSE) and the queue toward it
 * is small: the sink takes what fits, drops the rest of the live ticks
 * (the serving engine never waits), and once the queue has drained it
 * resumes with the dropped symbols' states; a new run carries them, and
 * the edge ends with exactly the ingest's state.
 */
static void
test_sink_drops_while_redis_is_slow_then_edges_get_the_state(void **state)
{
	struct redis_publisher_options o = {0};
	struct redis_ingest in;
	struct redis_edge e;
	struct sink sink;
	struct sink_status ss;
	struct redis_publisher_stats ps;
	redisReply *r;
	char err[256];
	unsigned i, k;

	NEED_REDIS();
	ingest_open(&in, "t-sink", "epoch-s", 0, 0, srv.port, 0);
	redis_publisher_destroy(in.pub);
	o.host = "127.0.0.1";
	o.port = srv.port;
	o.prefix = "t-sink";
	o.epoch = "epoch-s";
	o.queue_capacity = 500;
	in.pub = redis_publisher_create(&o, err, sizeof err);
	assert_non_null(in.pub);
	ingest_start(&in);
	WAIT_FOR(publisher_connected(&in), 5);
	edge_open(&e, "t-sink", srv.port, 4096, 100000, 0, 0);
	assert_int_equal(redis_follower_wait_synced(e.fol, 5000), 0);
	sink = redis_publisher_sink(in.pub);

	r = redis_server_command(&srv, "CLIENT PAUSE 1500 ALL");
	freeReplyObject(r);
	for (i = 0; i < 5000; i += 100) {
		struct tick t[100];
		size_t n = 0;

		pthread_mutex_lock(&in.mu);
		for (k = 0; k < 100; k++) {
			make_tick(&t[n], "P", i + k, 20);
			t[n].seq = engine_apply_tick(in.engine, &t[n]);
			if (t[n].seq)
				n++;
		}
		pthread_mutex_unlock(&in.mu);
		sink.ops->append(sink.impl, t, n);
	}
	sink.ops->status(sink.impl, &ss);
	assert_true(ss.dropping);
	assert_true(ss.dropped >= 4000);
	/* Redis answers again; the queue drains; the sink resumes. */
	WAIT_FOR(sink.ops->wants_resume(sink.impl), 10);
	pthread_mutex_lock(&in.mu);
	sink.ops->resume(sink.impl, ingest_state, &in);
	pthread_mutex_unlock(&in.mu);
	WAIT_FOR(converged(&in, &e), 10);
	redis_publisher_get_stats(in.pub, &ps);
	assert_true(ps.state_resyncs >= 1);
	assert_false(ps.dropping);
	redis_edge_close(&e);
	redis_ingest_close(&in);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_bad_options),
	        cmocka_unit_test(test_carries_ticks_with_seqs),
	        cmocka_unit_test(test_late_follower_warm),
	        cmocka_unit_test(test_redis_killed_and_restarted),
	        cmocka_unit_test(test_reconnect_catches_up),
	        cmocka_unit_test(test_trimmed_while_disconnected),
	        cmocka_unit_test(test_epoch_change),
	        cmocka_unit_test(test_degraded_reasons),
	        cmocka_unit_test(
	                test_ingest_behind_redis_publishes_nothing_until_a_new_epoch),
	        cmocka_unit_test(
	                test_epoch_op_reaches_the_edge_in_order_with_the_ticks),
	        cmocka_unit_test(test_peek_and_floor),
	        cmocka_unit_test(test_state_format_carries_sessions),
	        cmocka_unit_test(test_floor_with_a_field_a_session_took_away),
	        cmocka_unit_test(
	                test_sink_drops_while_redis_is_slow_then_edges_get_the_state),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

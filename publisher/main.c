/*
 * main.c: `publisher serve | replay | export | --help | --version`.
 *
 * Wires the parts together: feed thread → tick_queue → (service thread)
 * engine → server. Exit codes: 0 success, 2 usage error, 1 runtime failure.
 *
 * Roles (issue 8, publisher/redis_link.h): an ingest is a standalone node
 * whose applied ticks also go to a redis_publisher; an edge has no feed: a
 * redis_follower pushes the ingest's ticks, seqs set, into the same tick
 * queue, and hands resyncs (epoch and states) to the service thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "engine.h"
#include "export.h"
#include "feed.h"
#include "log.h"
#include "query.h"
#include "redis_link.h"
#include "server.h"
#include "store.h"
#include "tick_queue.h"

#define EXIT_USAGE 2
/* Ticks the queue holds before feeds are slowed down. */
#define QUEUE_CAPACITY (256 * 1024)
/* Threads answering history and export requests. */
#define QUERY_THREADS 2
/* Descriptors needed besides the WebSocket clients: the database, the
 * listening socket, HTTP requests in flight, feeds, logs. */
#define SPARE_FDS 256

/* The one server the signal handler may stop. Set once, before signals are
 * installed, and read only by the handler. */
static struct server *signal_target;

static void
on_signal(int sig)
{
	if (signal_target)
		server_stop(signal_target);
}

/* The queue is created before the server; its wake callback reaches the
 * server through this slot once the server exists. */
static void
wake_server(void *ctx)
{
	struct server **slot = ctx;

	if (*slot)
		server_wake(*slot);
}

/*
 * The Redis threads' wakes. They may fire while the server is being torn
 * down (the publisher flushes in redis_publisher_destroy()), so they go
 * through a gate that main closes, under its lock, before server_destroy().
 */
struct wake_gate {
	pthread_mutex_t lock;
	struct server *server; /* NULL: closed */
};

static void
gate_wake(void *ctx)
{
	struct wake_gate *g = ctx;

	pthread_mutex_lock(&g->lock);
	if (g->server)
		server_wake(g->server);
	pthread_mutex_unlock(&g->lock);
}

static void
gate_set(struct wake_gate *g, struct server *server)
{
	pthread_mutex_lock(&g->lock);
	g->server = server;
	pthread_mutex_unlock(&g->lock);
}

/* An edge's follower callbacks. They run on the service thread, inside
 * redis_follower_apply_pending(), or on main before the server exists. */
struct edge {
	struct wake_gate *gate;
	struct server **server_slot; /* *server_slot: NULL until it exists */
	struct engine *engine;
	struct store *store; /* --db FILE: NULL until opened */
	char epoch[REDIS_LINK_EPOCH_MAX + 1]; /* the ingest's, "" until known */
};

static void
edge_epoch(const char *epoch, void *ctx)
{
	struct edge *e = ctx;

	log_info("redis: following epoch %s", epoch);
	snprintf(e->epoch, sizeof e->epoch, "%s", epoch);
	/* A running server empties the old symbols and closes its clients
	 * (1012) when the epoch changes; before it exists, the engine is
	 * still empty and the hello will carry this epoch. */
	if (*e->server_slot)
		server_set_epoch(*e->server_slot, epoch);
}

static void
edge_restore(const struct symbol_state *st, void *ctx)
{
	struct edge *e = ctx;
	struct symbol_state cur;

	/* Never show clients an older value than the one they have. */
	if (!engine_get_state(e->engine, st->symbol, &cur) &&
	    cur.seq > st->seq) {
		log_debug("redis: state of '%s' at seq %llu is behind ours "
			  "(%llu), kept ours",
			  st->symbol, (unsigned long long)st->seq,
			  (unsigned long long)cur.seq);
		return;
	}
	if (engine_restore_symbol(e->engine, st))
		log_warn("redis: could not restore symbol '%s'", st->symbol);
	/* The store follows: later ticks (higher seqs) are stored; the
	 * ticks the resync skipped are absent from its history. Not once
	 * the ingest moved to an epoch the store does not hold (the server
	 * has stopped using it then, see server_set_epoch()). */
	else if (e->store && !strcmp(store_epoch(e->store), e->epoch) &&
		 store_restore_state(e->store, st))
		log_warn("store: out of memory restoring symbol '%s'",
			 st->symbol);
}

static void
edge_wake(void *ctx)
{
	struct edge *e = ctx;

	gate_wake(e->gate);
}

static void
restore_publisher(const struct symbol_state *st, void *ctx)
{
	if (redis_publisher_restore(ctx, st))
		log_warn("redis: could not give symbol '%s' to the publisher",
			 st->symbol);
}

/* An ingest's publisher, starting where the serving engine starts. Returns
 * it, or NULL with the cause printed. */
static struct redis_publisher *
start_publisher(const struct serve_options *opt, struct engine *engine,
		const char *epoch, struct wake_gate *gate)
{
	struct redis_publisher_options po;
	struct redis_publisher *p;
	char err[512];

	memset(&po, 0, sizeof po);
	po.host = opt->redis_host;
	po.port = opt->redis_port;
	po.prefix = opt->redis_prefix;
	po.epoch = epoch;
	po.wake = gate_wake;
	po.wake_ctx = gate;
	p = redis_publisher_create(&po, err, sizeof err);
	if (!p) {
		fprintf(stderr, "publisher: %s\n", err);
		return NULL;
	}
	engine_foreach_symbol(engine, restore_publisher, p);
	if (redis_publisher_start(p, err, sizeof err)) {
		fprintf(stderr, "publisher: redis: %s\n", err);
		redis_publisher_destroy(p);
		return NULL;
	}
	log_info("redis: ingest publishing to %s:%d, prefix %s, epoch %s",
		 opt->redis_host, opt->redis_port,
		 opt->redis_prefix ? opt->redis_prefix
				   : REDIS_LINK_DEFAULT_PREFIX,
		 epoch);
	return p;
}

/* An edge's follower, started and, when Redis answers within 5 s, synced:
 * its first state is in the engine before the server takes clients. */
static struct redis_follower *
start_follower(const struct serve_options *opt, struct tick_queue *queue,
	       struct edge *e)
{
	struct redis_follower_options fo;
	struct redis_follower *f;
	char err[512];

	memset(&fo, 0, sizeof fo);
	fo.host = opt->redis_host;
	fo.port = opt->redis_port;
	fo.prefix = opt->redis_prefix;
	fo.ticks = queue;
	fo.epoch = edge_epoch;
	fo.restore = edge_restore;
	fo.wake = edge_wake;
	fo.ctx = e;
	f = redis_follower_create(&fo, err, sizeof err);
	if (!f) {
		fprintf(stderr, "publisher: %s\n", err);
		return NULL;
	}
	if (redis_follower_start(f, err, sizeof err)) {
		fprintf(stderr, "publisher: redis: %s\n", err);
		redis_follower_destroy(f);
		return NULL;
	}
	if (redis_follower_wait_synced(f, 5000))
		log_warn("redis: no state from %s:%d within 5 s: serving "
			 "nothing until the ingest's state arrives",
			 opt->redis_host, opt->redis_port);
	else
		log_info("redis: edge warm with %zu symbols from %s:%d",
			 redis_follower_apply_pending(f), opt->redis_host,
			 opt->redis_port);
	return f;
}

/* A new epoch names a new life of the data. Without a store (--db none)
 * every start is a new life; with one, the store keeps the epoch. */
static void
make_epoch(char *out, size_t len)
{
	unsigned char rnd[8] = {0};
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	size_t i;

	if (fd >= 0) {
		if (read(fd, rnd, sizeof rnd) != (ssize_t)sizeof rnd)
			memset(rnd, 0, sizeof rnd);
		close(fd);
	}
	if (!rnd[0] && !rnd[1]) {
		uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

		memcpy(rnd, &t, sizeof rnd);
	}
	for (i = 0; i < sizeof rnd && 2 * i + 2 < len; i++)
		snprintf(out + 2 * i, 3, "%02x", rnd[i]);
}

static int
write_port_file(const char *path, int port)
{
	char tmp[4096];
	FILE *f;

	/* Write then rename, so a reader never sees a half-written port. */
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -1;
	fprintf(f, "%d\n", port);
	if (fclose(f) || rename(tmp, path))
		return -1;
	return 0;
}

static void
restore_symbol(const struct symbol_state *st, void *ctx)
{
	if (engine_restore_symbol(ctx, st))
		log_warn("store: could not restore symbol '%s'", st->symbol);
}

/* Open the store, put its state back into the engine, start its writer and
 * the query threads. Returns 0, or 1 with the cause printed. */
static void
restore_store(const struct symbol_state *st, void *ctx)
{
	if (store_restore_state(ctx, st))
		log_warn("store: out of memory restoring symbol '%s'",
			 st->symbol);
}

/* Open the store, put its state back into the engine (an edge's goes the
 * other way: the engine's state, from the ingest, goes into the store), start
 * its writer and the query threads. edge_epoch: the ingest's epoch, which an
 * edge's store must hold; NULL for standalone and ingest. Returns 0, or 1
 * with the cause printed. */
static int
open_store(const struct serve_options *opt, struct engine *engine,
	   const char *edge_epoch, struct server **server_slot,
	   struct store **store_out, struct query_worker **queries_out)
{
	struct store_options so;
	struct engine_stats es;
	char err[512];

	memset(&so, 0, sizeof so);
	so.path = opt->db;
	so.retain_age_us = opt->retain_age_us;
	so.retain_rows = opt->retain_rows;
	so.commit_ms = 50;
	so.queue_capacity = 0; /* the store's default: ~0.1 s of ticks */
	so.wake = wake_server;
	so.wake_ctx = server_slot;
	so.epoch = edge_epoch;
	*store_out = store_open(&so, err, sizeof err);
	if (!*store_out) {
		fprintf(stderr, "publisher: %s\n", err);
		return 1;
	}
	if (edge_epoch)
		engine_foreach_symbol(engine, restore_store, *store_out);
	else if (store_load_state(*store_out, restore_symbol, engine)) {
		fprintf(stderr, "publisher: db '%s': cannot read the stored "
				"state\n",
			opt->db);
		return 1;
	}
	engine_get_stats(engine, &es);
	if (es.symbols)
		log_info("store: restored %zu symbols from '%s'", es.symbols,
			 opt->db);
	if (store_start(*store_out, err, sizeof err)) {
		fprintf(stderr, "publisher: db '%s': %s\n", opt->db, err);
		return 1;
	}
	*queries_out = query_worker_create(opt->db, QUERY_THREADS, wake_server,
					   server_slot, err, sizeof err);
	if (!*queries_out) {
		fprintf(stderr, "publisher: %s\n", err);
		return 1;
	}
	return 0;
}

/*
 * --max-connections means little if the process runs out of descriptors
 * first (the common soft limit is 1024). Raise the soft limit towards what
 * the cap needs, as far as the hard limit allows, and say so when that is
 * not enough. lws sizes its tables from this limit when it starts.
 */
static void
raise_fd_limit(const struct serve_options *opt)
{
	rlim_t want = (rlim_t)opt->max_connections + SPARE_FDS;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want
			      ? want
			      : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= want)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	log_warn("open file limit is %llu, too low for --max-connections %u: "
		 "connections will fail before the cap (raise 'ulimit -n' to "
		 "at least %llu)",
		 (unsigned long long)rl.rlim_cur, opt->max_connections,
		 (unsigned long long)want);
}

static int
serve(const struct serve_options *opt)
{
	struct server *server = NULL;
	struct engine_config ec = server_engine_config();
	struct server_parts parts;
	struct engine *engine;
	struct tick_queue *queue = NULL;
	struct feed *feed = NULL;
	struct store *store = NULL;
	struct query_worker *queries = NULL;
	struct feed_status fs;
	struct sigaction sa;
	char err[512], epoch[17] = {0};
	int rc = 1;
	static struct wake_gate gate = {PTHREAD_MUTEX_INITIALIZER, NULL};
	struct redis_publisher *pub = NULL;
	struct redis_follower *follow = NULL;
	static struct edge edge;

	log_set_level(opt->log_level);
	make_epoch(epoch, sizeof epoch);
	raise_fd_limit(opt);

	engine = engine_create(&ec);
	queue = tick_queue_create(QUEUE_CAPACITY, wake_server, &server);
	if (!engine || !queue) {
		fprintf(stderr, "publisher: out of memory\n");
		goto out;
	}
	feed = feed_create(opt->feed_spec, queue, err, sizeof err);
	if (!feed) {
		fprintf(stderr, "publisher: --feed: %s\n", err);
		rc = EXIT_USAGE;
		goto out_queue;
	}
	/* An edge opens its store once it knows the ingest's epoch. */
	if (strcmp(opt->db, "none") && opt->role != ROLE_EDGE &&
	    open_store(opt, engine, NULL, &server, &store, &queries))
		goto out_feed;
	if (opt->role == ROLE_INGEST) {
		pub = start_publisher(opt, engine,
				      store ? store_epoch(store) : epoch, &gate);
		if (!pub)
			goto out_feed;
	} else if (opt->role == ROLE_EDGE) {
		edge.gate = &gate;
		edge.server_slot = &server;
		edge.engine = engine;
		follow = start_follower(opt, queue, &edge);
		if (!follow)
			goto out_feed;
		if (strcmp(opt->db, "none")) {
			if (!edge.epoch[0]) {
				fprintf(stderr,
					"publisher: --role edge --db '%s' "
					"needs the ingest's epoch, and no "
					"state came from Redis within 5 s; "
					"start the ingest first (or use "
					"--db none)\n",
					opt->db);
				goto out_feed;
			}
			if (open_store(opt, engine, edge.epoch, &server,
				       &store, &queries))
				goto out_feed;
			edge.store = store;
		}
	}

	memset(&parts, 0, sizeof parts);
	parts.engine = engine;
	parts.queue = queue;
	parts.store = store;
	parts.queries = queries;
	parts.feed = feed;
	feed_get_status(feed, &fs);
	parts.feed_kind = fs.kind;
	parts.epoch = store ? store_epoch(store) : epoch;
	parts.redis_pub = pub;
	parts.redis_follow = follow;
	if (follow) {
		/* The ingest's epoch when the first resync came; else ours
		 * until it comes (the server then switches, see
		 * server_set_epoch()). Its ticks are not a feed of ours. */
		if (edge.epoch[0])
			parts.epoch = edge.epoch;
		parts.feed_kind = "redis";
	}
	server = server_create(opt, &parts, err, sizeof err);
	if (!server) {
		fprintf(stderr, "publisher: %s\n", err);
		goto out_feed;
	}
	gate_set(&gate, server);
	/* A resync that arrived after the one applied above waits for this
	 * first turn of the loop. */
	if (follow)
		server_wake(server);
	if (opt->port_file && write_port_file(opt->port_file, server_port(server))) {
		fprintf(stderr, "publisher: cannot write --port-file '%s': %s\n",
			opt->port_file, strerror(errno));
		goto out_server;
	}

	signal_target = server;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (feed_start(feed, err, sizeof err)) {
		fprintf(stderr, "publisher: feed '%s': %s\n", opt->feed_spec, err);
		goto out_server;
	}
	log_info("publisher %s: dashboard at %s://%s:%d/ , WebSocket at "
		 "%s://%s:%d/ws, feed %s, epoch %s%s%s",
		 cli_version_string + strlen("publisher "),
		 opt->tls_cert ? "https" : "http", opt->listen_host,
		 server_port(server), opt->tls_cert ? "wss" : "ws",
		 opt->listen_host, server_port(server),
		 follow ? "redis (edge)" : opt->feed_spec, parts.epoch,
		 pub ? ", ingest" : "",
		 opt->auth_secret ? ", tokens required" : "");

	rc = server_run(server) ? 1 : 0;
	log_info("stopped");

	/* A feed blocked on a full queue must be released before it is
	 * joined. */
	tick_queue_close(queue);
	feed_stop(feed);
out_server:
	signal_target = NULL;
	gate_set(&gate, NULL);
	/* The follower may be blocked pushing into a full queue. */
	tick_queue_close(queue);
	redis_follower_destroy(follow);
	follow = NULL;
	/* The server goes first: it releases its query jobs. */
	server_destroy(server);
	server = NULL;
out_feed:
	gate_set(&gate, NULL);
	tick_queue_close(queue);
	redis_follower_destroy(follow);
	feed_destroy(feed);
	query_worker_destroy(queries);
	/* Publishes what is queued (the store's ticks came through the same
	 * drain), then the store writes everything still queued. */
	redis_publisher_destroy(pub);
	store_close(store);
out_queue:
	tick_queue_destroy(queue);
out:
	engine_destroy(engine);
	return rc;
}

int
main(int argc, char **argv)
{
	static struct cli cli;
	char err[512];

	if (cli_parse(argc, argv, &cli, err, sizeof err)) {
		fprintf(stderr, "publisher: %s\n(see publisher --help)\n", err);
		return EXIT_USAGE;
	}
	switch (cli.command) {
	case CLI_HELP:
		cli_print_help(stdout);
		return 0;
	case CLI_VERSION:
		printf("%s\n", cli_version_string);
		return 0;
	case CLI_EXPORT:
		log_set_level(cli.serve.log_level);
		if (export_run(&cli.export, err, sizeof err)) {
			fprintf(stderr, "publisher: export: %s\n", err);
			return 1;
		}
		return 0;
	case CLI_SERVE:
	case CLI_REPLAY:
		return serve(&cli.serve);
	}
	return EXIT_USAGE;
}

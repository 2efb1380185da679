/*
 * main.c: `publisher serve | replay | export | import | --help | --version`.
 *
 * Wires the parts together on one libuv loop: the pipeline (feed → queue →
 * engine → sinks) first, then the server (libwebsockets) as its transport.
 * Exit codes: 0 success, 2 usage error, 1 runtime failure.
 *
 * Roles (publisher/redis_link.h): an ingest is a standalone node whose
 * pipeline has the Redis publisher as a second sink; an edge has no feed
 * of its own: a redis_follower pushes the ingest's ticks, seqs set, into
 * the pipeline's queue, and hands resyncs (epoch and states) to it.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <uv.h>

#include "cli.h"
#include "engine.h"
#include "epoch.h"
#include "export.h"
#include "feed.h"
#include "import.h"
#include "log.h"
#include "pipeline.h"
#include "redis_link.h"
#include "server.h"
#include "store.h"
#include "trading_session.h"
#include "wake.h"

#define EXIT_USAGE 2
/* Descriptors needed besides the WebSocket clients: the database, the
 * listening socket, HTTP requests in flight, feeds, logs. */
#define SPARE_FDS 256
/* Ticks the queue holds before a feed is slowed down: over a second at
 * 200k ticks/s, so a loop turn spent writing to thousands of clients never
 * makes a live feed wait. */
#define QUEUE_CAPACITY (256 * 1024)

/* Ticks the store was handed and could neither store nor record as a gap
 * (store_close()), found when the pipeline closed it: the exit code says
 * so (README, Storage). */
static uint64_t unstored_ticks;

/* The --session settings in words, as the Redis link compares them
 * between an ingest and its edges (make_sessions()). */
static char sessions_text[1024];

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

static void
restore_store(const struct symbol_state *st, void *ctx)
{
	if (store_restore_state(ctx, st))
		log_warn("store: out of memory restoring symbol '%s'",
		         st->symbol);
}

static void
close_store(void *impl)
{
	unstored_ticks += store_close(impl);
}

/*
 * Open the store and make it a sink of the pipeline. A standalone or
 * ingest node takes its state and epoch from the store; an edge's goes the
 * other way: the engine's state, from the ingest, goes into the store,
 * which must hold the ingest's epoch (edge true). Returns the store, or
 * NULL with the cause printed.
 */
static struct store *
open_store(const struct store_options *opt, struct pipeline *p, bool edge)
{
	struct engine *engine = pipeline_engine(p);
	struct store_options so = *opt;
	struct store *store;
	struct wake *wake = pipeline_sink_wake(p);
	char err[512];

	so.commit_ms = 50;
	so.wake = wake ? wake_signal : NULL;
	so.wake_ctx = wake;
	so.epoch = edge ? pipeline_epoch(p) : NULL;
	store = store_open(&so, err, sizeof err);
	if (!store) {
		fprintf(stderr, "publisher: %s\n", err);
		return NULL;
	}
	if (edge) {
		engine_foreach_symbol(engine, restore_store, store);
	} else {
		if (store_load_state(store, restore_symbol, engine)) {
			fprintf(stderr,
			        "publisher: db '%s': cannot read the "
			        "stored state\n",
			        opt->path);
			store_close(store);
			return NULL;
		}
		pipeline_set_epoch(p, store_epoch(store));
	}
	if (engine_symbol_count(engine))
		log_info("store: restored %zu symbols from '%s'",
		         engine_symbol_count(engine), opt->path);
	if (store_start(store, err, sizeof err)) {
		fprintf(stderr, "publisher: db '%s': %s\n", opt->path, err);
		store_close(store);
		return NULL;
	}
	if (pipeline_add_sink(p, store_sink(store), close_store)) {
		store_close(store);
		return NULL;
	}
	return store;
}

static void
restore_publisher(const struct symbol_state *st, void *ctx)
{
	if (redis_publisher_restore(ctx, st))
		log_warn("redis: could not give symbol '%s' to the publisher",
		         st->symbol);
}

static void
destroy_publisher(void *impl)
{
	redis_publisher_destroy(impl);
}

/* The publisher found Redis further on in this epoch than the ingest: a
 * new epoch (redis_link.h, "Seqs across nodes"). */
static void
need_epoch(const char *epoch, const char *why, void *ctx)
{
	pipeline_ask_new_epoch(ctx, epoch, why);
}

/* Redis's states as a lower bound on the ingest's (redis_link_floor()). */
struct floor_ctx {
	struct pipeline *p;
	struct store *store;
	size_t past, lost;
	char lost_name[TICK_SYMBOL_MAX + 1];
};

static void
take_floor(const struct symbol_state *theirs, void *ctx)
{
	struct floor_ctx *f = ctx;
	struct symbol_state ours, out;
	bool have =
	        !engine_get_state(pipeline_engine(f->p), theirs->symbol, &ours);

	switch (redis_link_floor(have ? &ours : NULL, theirs, &out)) {
	case REDIS_FLOOR_KEEP:
		break;
	case REDIS_FLOOR_PAST:
		if (engine_restore_symbol(pipeline_engine(f->p), &out) ||
		    store_restore_state(f->store, &out))
			log_warn("redis: out of memory taking symbol '%s' past "
			         "redis's seq",
			         out.symbol);
		f->past++;
		break;
	case REDIS_FLOOR_LOST:
		if (!f->lost++)
			snprintf(f->lost_name, sizeof f->lost_name, "%s",
			         theirs->symbol);
		break;
	}
}

/*
 * An ingest with a store, before it serves: what Redis holds of its epoch
 * was handed out, so its seqs are one more lower bound (redis_link.h,
 * "Seqs across nodes"): a symbol Redis holds further on goes on after it,
 * and a field Redis has that the store lacks begins a new epoch.
 */
static void
take_redis_floor(const struct node_options *opt, struct pipeline *p,
                 struct store *store)
{
	struct floor_ctx f = {p, store, 0, 0, ""};
	char err[300], why[300];

	if (redis_link_peek(opt->redis_host, opt->redis_port, opt->redis_prefix,
	                    pipeline_epoch(p), 2000, take_floor, &f, err,
	                    sizeof err) < 0) {
		log_warn("redis: %s: serving without the seqs redis holds; if "
		         "it holds some of epoch %s further on than this store "
		         "(a database put back from a backup), a new epoch "
		         "begins when it answers",
		         err, pipeline_epoch(p));
		return;
	}
	if (f.past)
		log_warn("redis: %zu symbols of epoch %s were further on in "
		         "redis than in this store (a database put back from a "
		         "backup?): they go on after redis's seqs, every field "
		         "changed there",
		         f.past, pipeline_epoch(p));
	if (f.lost) {
		snprintf(why, sizeof why,
		         "redis holds values of %zu symbols (e.g. '%s') in "
		         "fields this store never had",
		         f.lost, f.lost_name);
		pipeline_new_epoch(p, why);
	}
}

/* An ingest's publisher, starting where the serving engine starts (past
 * what Redis holds, with a store), as a sink of the pipeline. Returns it,
 * or NULL with the cause printed. */
static struct redis_publisher *
start_publisher(const struct node_options *opt, struct pipeline *p,
                struct store *store, const struct session_rule *sessions)
{
	struct redis_publisher_options po;
	struct redis_publisher *pub;
	struct wake *wake = pipeline_sink_wake(p);
	char err[512];

	if (store)
		take_redis_floor(opt, p, store);
	memset(&po, 0, sizeof po);
	po.host = opt->redis_host;
	po.port = opt->redis_port;
	po.prefix = opt->redis_prefix;
	po.epoch = pipeline_epoch(p);
	po.wake = wake ? wake_signal : NULL;
	po.wake_ctx = wake;
	po.need_epoch = need_epoch;
	po.need_epoch_ctx = p;
	po.sessions = *sessions;
	po.sessions_text = sessions_text;
	pub = redis_publisher_create(&po, err, sizeof err);
	if (!pub) {
		fprintf(stderr, "publisher: %s\n", err);
		return NULL;
	}
	engine_foreach_symbol(pipeline_engine(p), restore_publisher, pub);
	if (redis_publisher_start(pub, err, sizeof err)) {
		fprintf(stderr, "publisher: redis: %s\n", err);
		redis_publisher_destroy(pub);
		return NULL;
	}
	if (pipeline_add_sink(p, redis_publisher_sink(pub),
	                      destroy_publisher)) {
		redis_publisher_destroy(pub);
		return NULL;
	}
	log_info("redis: ingest publishing to %s:%d, prefix %s, epoch %s",
	         opt->redis_host, opt->redis_port,
	         opt->redis_prefix ? opt->redis_prefix
	                           : REDIS_LINK_DEFAULT_PREFIX,
	         pipeline_epoch(p));
	return pub;
}

/* An edge's follower, started and, when Redis answers within 5 s, synced:
 * its first state is in the engine before the server takes clients.
 * Returns 0, or -1 with the cause printed. */
static int
start_follower(const struct node_options *opt, struct pipeline *p)
{
	struct redis_follower_options fo;
	struct redis_follower *f;
	struct wake *wake = pipeline_follow_wake(p);
	char err[512];

	if (!wake) {
		fprintf(stderr, "publisher: out of memory\n");
		return -1;
	}
	memset(&fo, 0, sizeof fo);
	fo.host = opt->redis_host;
	fo.port = opt->redis_port;
	fo.prefix = opt->redis_prefix;
	fo.ticks = pipeline_queue(p);
	fo.epoch = pipeline_follow_epoch;
	fo.restore = pipeline_follow_restore;
	fo.wake = wake_signal;
	fo.ctx = p;
	fo.wake_ctx = wake;
	fo.sessions_text = sessions_text;
	f = redis_follower_create(&fo, err, sizeof err);
	if (!f) {
		fprintf(stderr, "publisher: %s\n", err);
		return -1;
	}
	if (redis_follower_start(f, err, sizeof err)) {
		fprintf(stderr, "publisher: redis: %s\n", err);
		redis_follower_destroy(f);
		return -1;
	}
	pipeline_set_follower(p, f);
	if (redis_follower_wait_synced(f, 5000))
		log_warn("redis: no state from %s:%d within 5 s: serving "
		         "nothing until the ingest's state arrives",
		         opt->redis_host, opt->redis_port);
	else
		log_info("redis: edge warm with %zu symbols from %s:%d",
		         redis_follower_apply_pending(f), opt->redis_host,
		         opt->redis_port);
	return 0;
}

/*
 * The server holds one descriptor per client, so the process takes every
 * descriptor it is allowed: the soft limit goes up to the hard limit. When
 * even that is short of --max-connections, say so; lws sizes its tables
 * from this limit when it starts.
 */
static void
raise_fd_limit(const struct server_options *opt)
{
	rlim_t want = (rlim_t)opt->max_connections + SPARE_FDS;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) &&
		    getrlimit(RLIMIT_NOFILE, &rl))
			return;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
		return;
	log_warn("open file limit is %llu, too low for --max-connections %u: "
	         "connections will fail before the cap (raise the hard limit, "
	         "'ulimit -Hn', to at least %llu)",
	         (unsigned long long)rl.rlim_cur, opt->max_connections,
	         (unsigned long long)want);
}

/* The feed of the command: replay's FILE, or serve's --feed SPEC. */
static struct feed *
make_feed(const struct cli *cli, struct tick_queue *queue, char *err,
          size_t errlen)
{
	struct feed *f;

	if (cli->command != CLI_REPLAY)
		return feed_create(cli->node.feed_spec, queue, err, errlen);
	f = feed_replay_create(&cli->replay, queue);
	if (!f)
		snprintf(err, errlen, "out of memory");
	return f;
}

static int
serve(const struct cli *cli, const struct trading_sessions *sessions)
{
	const struct node_options *opt = &cli->node;
	const struct server_options *so = &cli->server;
	const char *db = cli->store.path;
	bool replay = cli->command == CLI_REPLAY;
	struct pipeline_options po;
	struct server_parts parts;
	struct pipeline *p = NULL;
	struct server *server = NULL;
	struct store *store = NULL;
	struct redis_publisher *pub = NULL;
	struct feed *feed;
	struct feed_status fs;
	uv_loop_t loop;
	char err[512], epoch[17] = {0}, feed_name[300];
	int rc = 1, i;

	log_set_level(opt->log_level);
	/* A new epoch names a new life of the data. Without a store (--db
	 * none) every start is a new life; with one, the store keeps the
	 * epoch. */
	epoch_make(epoch, sizeof epoch);
	raise_fd_limit(so);
	signal(SIGPIPE, SIG_IGN);
	if (uv_loop_init(&loop)) {
		fprintf(stderr, "publisher: cannot create the event loop\n");
		return 1;
	}
	snprintf(feed_name, sizeof feed_name, "%s%s", replay ? "replay:" : "",
	         replay ? cli->replay.path : opt->feed_spec);

	memset(&po, 0, sizeof po);
	po.loop = &loop;
	po.queue_capacity = QUEUE_CAPACITY;
	po.epoch = epoch;
	/* A file may wait for the store; a market cannot. */
	po.file_source = !strncmp(feed_name, "replay", 6);
	po.frame_headroom = server_frame_headroom();
	/* The engine folds with the store's rule, so they agree. */
	po.sessions = cli->store.sessions;
	p = pipeline_create(&po, err, sizeof err);
	if (!p) {
		fprintf(stderr, "publisher: %s\n", err);
		goto out;
	}
	feed = make_feed(cli, pipeline_queue(p), err, sizeof err);
	if (!feed) {
		fprintf(stderr, "publisher: --feed: %s\n", err);
		rc = EXIT_USAGE;
		goto out;
	}
	pipeline_set_feed(p, feed);

	/* An edge opens its store once it knows the ingest's epoch. */
	if (strcmp(db, "none") && opt->role != ROLE_EDGE &&
	    !(store = open_store(&cli->store, p, false)))
		goto out;
	if (opt->role == ROLE_INGEST &&
	    !(pub = start_publisher(opt, p, store, &cli->store.sessions)))
		goto out;
	if (opt->role == ROLE_EDGE) {
		if (start_follower(opt, p))
			goto out;
		if (strcmp(db, "none")) {
			if (!engine_symbol_count(pipeline_engine(p)) &&
			    !redis_follower_synced(pipeline_follower(p))) {
				fprintf(stderr,
				        "publisher: --role edge --db '%s' "
				        "needs the ingest's epoch, and no "
				        "state came from Redis within 5 s; "
				        "start the ingest first (or use "
				        "--db none)\n",
				        db);
				goto out;
			}
			if (!(store = open_store(&cli->store, p, true)))
				goto out;
		}
	}

	memset(&parts, 0, sizeof parts);
	parts.loop = &loop;
	parts.pipeline = p;
	parts.db_path = store ? db : NULL;
	parts.store = store;
	feed_get_status(feed, &fs);
	parts.feed_kind = opt->role == ROLE_EDGE ? "redis" : fs.kind;
	parts.redis_pub = pub;
	parts.sessions = sessions;
	server = server_create(so, &parts, err, sizeof err);
	if (!server) {
		fprintf(stderr, "publisher: %s\n", err);
		goto out;
	}
	if (opt->port_file &&
	    write_port_file(opt->port_file, server_port(server))) {
		fprintf(stderr,
		        "publisher: cannot write --port-file '%s': %s\n",
		        opt->port_file, strerror(errno));
		goto out;
	}
	if (pipeline_start(p, err, sizeof err)) {
		fprintf(stderr, "publisher: feed '%s': %s\n", feed_name, err);
		goto out;
	}
	log_info("publisher %s: dashboard at %s://%s:%d/ , WebSocket at "
	         "%s://%s:%d/ws, feed %s, epoch %s%s%s",
	         cli_version_string + strlen("publisher "),
	         so->tls_cert ? "https" : "http", so->listen_host,
	         server_port(server), so->tls_cert ? "wss" : "ws",
	         so->listen_host, server_port(server),
	         opt->role == ROLE_EDGE ? "redis (edge)" : feed_name,
	         pipeline_epoch(p), pub ? ", ingest" : "",
	         so->auth_secret ? ", tokens required" : "");
	if (opt->config)
		log_info("settings from '%s' (flags override it)", opt->config);

	rc = server_run(server) ? 1 : 0;
	log_info("stopped");

out:
	/* Sources first (nothing new comes in), then the transport (clients
	 * closed, queries released), then the sinks (each writes what it
	 * holds) and the engine. */
	if (p)
		pipeline_stop(p);
	server_destroy(server);
	pipeline_destroy(p);
	/* Let libuv finish closing what was closed above. */
	for (i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT); i++)
		;
	if (uv_loop_close(&loop))
		log_warn("event loop closed with handles still open");
	if (unstored_ticks) {
		fprintf(stderr,
		        "publisher: %llu ticks were not stored in '%s' (the "
		        "store says why above); exit code 1\n",
		        (unsigned long long)unstored_ticks, db);
		rc = 1;
	}
	return rc;
}

/*
 * The trading sessions of --session, whose rule every fold of serve,
 * replay and import takes (the engine's, the store's, the Redis
 * publisher's). cli.c checked the settings, so a failure here is out of
 * memory or a zone file that went away since. Returns 0, or -1 with the
 * cause printed.
 */
static int
make_sessions(struct cli *cli, struct trading_sessions **out)
{
	struct session_rule rule;
	char err[512];

	*out = trading_sessions_create(&cli->sessions, err, sizeof err);
	if (!*out) {
		fprintf(stderr, "publisher: %s\n", err);
		return -1;
	}
	rule = trading_sessions_rule(*out);
	cli->store.sessions = rule;
	cli->import.sessions = rule;
	trading_sessions_describe(*out, sessions_text, sizeof sessions_text);
	if (cli->sessions.count)
		log_info("trading sessions begin: %s", sessions_text);
	return 0;
}

int
main(int argc, char **argv)
{
	static struct cli cli;
	struct trading_sessions *sessions = NULL;
	char err[512];
	int rc;

	if (cli_parse(argc, argv, &cli, err, sizeof err)) {
		fprintf(stderr, "publisher: %s\n(see publisher --help)\n", err);
		return EXIT_USAGE;
	}
	switch (cli.command) {
	case CLI_HELP:
		cli_print_help(stdout, cli.help_for);
		return 0;
	case CLI_VERSION:
		printf("%s\n", cli_version_string);
		return 0;
	case CLI_EXPORT:
		log_set_level(cli.node.log_level);
		cli.export.progress = isatty(STDERR_FILENO);
		if (export_run(&cli.export, err, sizeof err)) {
			fprintf(stderr, "publisher: export: %s\n", err);
			return 1;
		}
		return 0;
	case CLI_IMPORT:
		log_set_level(cli.node.log_level);
		cli.import.progress = isatty(STDERR_FILENO);
		if (make_sessions(&cli, &sessions))
			return 1;
		rc = import_run(&cli.import, NULL, err, sizeof err);
		if (rc)
			fprintf(stderr, "publisher: import: %s\n", err);
		trading_sessions_destroy(sessions);
		return rc ? 1 : 0;
	case CLI_SERVE:
	case CLI_REPLAY:
		/* A progress line on a terminal; never in a log file. */
		cli.replay.progress = isatty(STDERR_FILENO);
		log_set_level(cli.node.log_level);
		if (make_sessions(&cli, &sessions))
			return 1;
		rc = serve(&cli, sessions);
		trading_sessions_destroy(sessions);
		return rc;
	}
	return EXIT_USAGE;
}

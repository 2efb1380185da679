/*
 * main.c: `publisher serve | replay | export | --help | --version`.
 *
 * Wires the parts together: feed thread → tick_queue → (service thread)
 * engine → server. Exit codes: 0 success, 2 usage error, 1 runtime failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "engine.h"
#include "feed.h"
#include "log.h"
#include "server.h"
#include "tick_queue.h"

#define EXIT_USAGE 2
/* Ticks the queue holds before feeds are slowed down. */
#define QUEUE_CAPACITY (256 * 1024)

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

/* A new epoch names a new life of the data. Until the store keeps one on
 * disk, every start is a new life. */
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

static int
serve(const struct serve_options *opt)
{
	struct server *server = NULL;
	struct engine_config ec = server_engine_config();
	struct engine *engine;
	struct tick_queue *queue;
	struct feed *feed;
	struct sigaction sa;
	char err[512], epoch[17] = {0};
	int rc = 1;

	log_set_level(opt->log_level);
	make_epoch(epoch, sizeof epoch);

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
	server = server_create(opt, engine, queue, epoch, err, sizeof err);
	if (!server) {
		fprintf(stderr, "publisher: %s\n", err);
		goto out_feed;
	}
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
	log_info("publisher %s: dashboard at http://%s:%d/ , WebSocket at "
		 "ws://%s:%d/ws, feed %s, epoch %s",
		 cli_version_string + strlen("publisher "), opt->listen_host,
		 server_port(server), opt->listen_host, server_port(server),
		 opt->feed_spec, epoch);

	rc = server_run(server) ? 1 : 0;
	log_info("stopped");

	/* A feed blocked on a full queue must be released before it is
	 * joined. */
	tick_queue_close(queue);
	feed_stop(feed);
out_server:
	signal_target = NULL;
	server_destroy(server);
out_feed:
	feed_destroy(feed);
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
		fprintf(stderr, "publisher: export needs the SQLite store, which "
				"this build does not have yet\n");
		return 1;
	case CLI_SERVE:
	case CLI_REPLAY:
		return serve(&cli.serve);
	}
	return EXIT_USAGE;
}

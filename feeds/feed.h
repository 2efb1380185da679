/*
 * feed: where ticks come from. Every adapter (synthetic, replay, tcp, stdin)
 * sits behind this one interface and runs on its own thread, pushing ticks
 * into a tick_queue; it never touches the engine or the service thread.
 *
 * Spec strings (SPEC §5):
 *   synthetic[:symbols=N,rate=R,seed=S]   seeded random walk (the default)
 *   replay:FILE[,speed=X|max][,loop]      recorded tick file
 *   tcp:HOST:PORT                         line ticks from producers
 *   stdin                                 line ticks from standard input
 *   none                                  no feed: serve what the store holds
 */
#ifndef PUBLISHER_FEED_H
#define PUBLISHER_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../publisher/tick_queue.h"

struct feed;

/* What a running feed reports about itself (for logs, /metrics, /healthz). */
struct feed_status {
	const char *kind;	  /* "synthetic", "replay", "tcp", "stdin", "none" */
	bool running;		  /* thread alive and producing */
	bool finished;		  /* reached its end (replay without loop) */
	uint64_t ticks;		  /* ticks pushed so far */
	uint64_t bad_lines;	  /* input lines skipped (line feeds) */
	int64_t last_tick_us;	  /* wall clock of the last push, 0 = never */
};

/*
 * Parse a feed spec. Returns the feed (not started), or NULL with a message
 * naming the problem in err (e.g. "feed 'synthetic:rate=x': rate must be a
 * positive number"). The queue is borrowed and must outlive the feed.
 */
struct feed *
feed_create(const char *spec, struct tick_queue *queue, char *err,
	    size_t errlen);

/* Start the feed's thread. Returns 0, or -1 with the cause in err (e.g. a
 * replay file that cannot be opened, a port already in use). */
int
feed_start(struct feed *f, char *err, size_t errlen);

/* Ask the feed to stop and wait for its thread. Safe to call twice. Close
 * the queue first when a producer may be blocked on it. */
void
feed_stop(struct feed *f);

/* Stop if needed and free. NULL is a no-op. */
void
feed_destroy(struct feed *f);

/* Thread-safe snapshot of the feed's status. */
void
feed_get_status(struct feed *f, struct feed_status *out);

/* ---------------------------------------------------- adapter constructors */
/* Used by feed_create(); each adapter lives in feeds/feed_<kind>.c. */

struct feed_ops {
	int (*start)(struct feed *f, char *err, size_t errlen);
	void (*stop)(struct feed *f);
	void (*destroy)(struct feed *f); /* free adapter state */
};

/* Common part every adapter embeds first. */
struct feed {
	const struct feed_ops *ops;
	const char *kind;
	struct tick_queue *queue;
	/* counters updated by the adapter thread with __atomic builtins */
	uint64_t ticks;
	uint64_t bad_lines;
	int64_t last_tick_us;
	int running;
	int finished;
};

struct feed_synthetic_options {
	unsigned symbols; /* 1..100000, default 20 */
	double rate;	  /* ticks per second in total, default 200 */
	uint64_t seed;	  /* default 1 */
};

struct feed *
feed_synthetic_create(const struct feed_synthetic_options *opt,
		      struct tick_queue *queue);

/* Line ticks (JSONL or CSV, see tick_parse.h) read from standard input until
 * end of file; bad lines are logged with their number and skipped. */
struct feed *
feed_stdin_create(struct tick_queue *queue);

#endif

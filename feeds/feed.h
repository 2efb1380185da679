/*
 * feed: where ticks come from. Every adapter (synthetic, replay, tcp, stdin)
 * sits behind this one interface and runs on its own thread, pushing ticks
 * into a tick_queue; it never touches the engine or the service thread.
 *
 * Each feed owns its thread, its adapter's state (a file, sockets, a
 * generator) and nothing of the queue it pushes into. main.c makes the feed
 * (feed_create() from a spec, or feed_replay_create() for `replay`) and
 * hands it to the pipeline, which starts, steers (the replay op, through
 * session.c), reads the status of (metrics.c, the history cap) and stops
 * it. Each adapter lives in feeds/feed_<kind>.c; the replay's parts in
 * feeds/replay_*.c.
 *
 * Spec strings (README, Command line):
 *   synthetic[:symbols=N,rate=R,seed=S]   seeded random walk (the default)
 *   replay:FILE[,speed=X|max][,loop]      recorded tick file
 *   tcp:HOST:PORT[,idle=SECS][,secret=FILE]
 *                                         line ticks from producers
 *   stdin                                 line ticks from standard input
 *   none                                  no feed: serve what the store holds
 */
#ifndef PUBLISHER_FEED_H
#define PUBLISHER_FEED_H

#include <pthread.h>
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

	/*
	 * Replay only; zero (and replay_state NULL) for the other feeds.
	 * Times are the file's own timestamps in µs, before any loop shift,
	 * so they are what a seek takes; 0 means "not known yet".
	 */
	const char *replay_state; /* "playing", "paused", "seeking", "finished" */
	bool paused;		  /* asked to pause (also while seeking) */
	double speed;		  /* current speed; 0 = max */
	int64_t position_ts;	  /* where the replay stands: the latest file
				   * ts pushed (running max), or a seek's
				   * target once reached */
	int64_t seek_ts;	  /* target while replay_state is "seeking" */
	int64_t shift;		  /* the loop shift of the pass under way: a
				   * tick at file time t goes out at t + shift */
	int64_t first_ts;	  /* the file's first tick */
	int64_t last_ts;	  /* the file's last tick (probed at start) */
	uint64_t passes;	  /* passes completed (loop) */

	/* tcp only; zero for the other feeds. */
	int listen_port;	  /* port bound by feed_start(), 0 before */
	unsigned connections;	  /* producers connected now */
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

/* ----------------------------------------------------------- replay control */

enum feed_command_kind {
	FEED_CMD_PAUSE,	 /* hold the replay where it is */
	FEED_CMD_RESUME, /* carry on from where it was held */
	FEED_CMD_SPEED,	 /* change speed; the file's clock is not reset */
	FEED_CMD_SEEK,	 /* jump to a file timestamp */
};

struct feed_command {
	enum feed_command_kind kind;
	double speed; /* FEED_CMD_SPEED: > 0, or 0 for max */
	int64_t ts;   /* FEED_CMD_SEEK: a file timestamp in µs (before any
		       * loop shift, as feed_status reports positions) */
};

/*
 * Steer a running replay (the WebSocket op "replay"). Thread-safe and
 * non-blocking: the command is recorded and the feed's thread applies it
 * within one tick (or one blocked push, when the queue is full). Pause and
 * speed show in feed_get_status() at once; a seek shows as replay_state
 * "seeking" until the target is reached.
 *
 * A seek keeps the state honest: every symbol must end up as it was at the
 * target time, and every tick of the file must be applied once.
 *  - Forward (ts at or after the position): the ticks up to ts are read
 *    and pushed at max speed, none skipped, then pacing resumes from ts.
 *  - Backward: the replay goes back to the cut, the first tick of the pass
 *    under way, in file order, whose ts is at or after the target, and
 *    plays on from there. The ticks it pushed from the cut on are undone
 *    by its consumer (feed_set_rewind below), so each comes again once.
 *    With loop, the pass under way keeps its shift: time goes back, as
 *    asked. Without a rewind hook, the file is read again from the top
 *    and fast-forwarded as a forward seek (with loop, as a new pass,
 *    shifted forward): the consumer gets those ticks a second time.
 *  - A paused replay seeks and stays paused at ts.
 *  - Past the end of the file: to the end (then finished, or the next pass).
 *  - A finished replay starts again on a seek before its end (backward,
 *    as above).
 *
 * Returns 0, or -1 with the reason in err: the feed is not a replay ("replay
 * control needs a replay feed; this server runs 'synthetic'"), a speed that
 * is not > 0 (or 0 for max), a backward seek in a file that is not a regular
 * file (a pipe cannot be read twice).
 */
int
feed_control(struct feed *f, const struct feed_command *cmd, char *err,
	     size_t errlen);

/* -------------------------------------------------------- replay rewinds */

/*
 * What a replay asks of its consumer on a backward seek: undo the ticks it
 * pushed from the cut on (feed_control above), per symbol the last `ticks`
 * ticks of that symbol it pushed, which are also the last ones the
 * consumer got. The cut is a place in the file, not a time: a late row
 * (ts before the target) that comes after the cut is undone and pushed
 * again; a cut by time would keep it and then get it twice.
 */
struct feed_rewind_symbol {
	char symbol[TICK_SYMBOL_MAX + 1];
	uint64_t ticks; /* pushed from the cut on: to undo (> 0) */
};

struct feed_rewind {
	int64_t ts; /* the target as the ticks carry it (loop shift included) */
	const struct feed_rewind_symbol *symbols;
	size_t count; /* symbols with ticks to undo (> 0) */
};

enum feed_rewind_result {
	/* The ticks from the cut on are undone: the replay plays on from
	 * the cut, standing at the target. */
	FEED_REWIND_UNDONE,
	/* The consumer keeps no history to undo with and has forgotten
	 * every tick: the replay pushes the pass under way again from its
	 * top (same shift), fast, up to the target. */
	FEED_REWIND_CLEARED,
	/* Nothing was changed (the consumer cannot follow a rewind; it
	 * logged why): the replay carries on from where it was. */
	FEED_REWIND_REFUSED,
	/* The consumer is shutting down: the replay stops. */
	FEED_REWIND_STOP,
};

/*
 * Called on the feed's thread once every tick pushed before the seek is in
 * the queue, and nothing is pushed until it returns: it blocks until the
 * rewind is complete (or refused), so no tick from after the target can
 * reach the consumer before the undo. rw is borrowed for the call.
 */
typedef enum feed_rewind_result (*feed_rewind_fn)(const struct feed_rewind *rw,
						  void *ctx);

/* Who undoes a backward seek's ticks; set before feed_start(). A feed that
 * cannot seek never calls it. */
void
feed_set_rewind(struct feed *f, feed_rewind_fn fn, void *ctx);

/* ---------------------------------------------------- adapter constructors */
/* Used by feed_create(); each adapter lives in feeds/feed_<kind>.c. */

struct feed_ops {
	int (*start)(struct feed *f, char *err, size_t errlen);
	void (*stop)(struct feed *f);
	void (*destroy)(struct feed *f); /* free adapter state */
	/* Optional: NULL when the feed cannot be steered (not a replay). The
	 * command is already validated by feed_control(). */
	int (*control)(struct feed *f, const struct feed_command *cmd,
		       char *err, size_t errlen);
	/* Optional: fill the adapter's own part of *out (the common part is
	 * already filled). */
	void (*status)(struct feed *f, struct feed_status *out);
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
	/* feed_set_rewind(); read by the adapter's thread once started */
	feed_rewind_fn rewind;
	void *rewind_ctx;
};

/*
 * For the adapters' start(): run fn(arg) on a new thread (*thread), with
 * f->running set first and cleared again when no thread could be made.
 * Returns 0, or -1 with "<kind> feed: cannot start its thread: ..." in err.
 */
int
feed__start_thread(struct feed *f, pthread_t *thread, void *(*fn)(void *),
		   void *arg, char *err, size_t errlen);

struct feed_synthetic_options {
	unsigned symbols; /* 1..100000, default 20 */
	double rate;	  /* ticks per second in total, default 200 */
	uint64_t seed;	  /* default 1 */
};

struct feed *
feed_synthetic_create(const struct feed_synthetic_options *opt,
		      struct tick_queue *queue);

/* Line ticks (JSONL or CSV, see tick_file.h) read from standard input until
 * end of file; bad lines are logged with their number and skipped. */
struct feed *
feed_stdin_create(struct tick_queue *queue);

/*
 * Replay of a tick file (JSONL or CSV, detected from the content; see
 * feeds/feed_replay.c for pacing, loop and seek). The file is opened by
 * feed_start(), which fails with "cannot open 'x.csv': No such file or
 * directory" and the like. At the end of a file without loop the feed is
 * finished: nothing more is pushed, and the server keeps serving.
 */
struct feed_replay_options {
	const char *path; /* copied */
	double speed;	  /* > 0, or 0 for max; spec default 1 (real time) */
	bool loop;	  /* start over at the end, timestamps shifted forward */
	bool progress;	  /* a progress line on stderr (publisher/progress.h) */
};

struct feed *
feed_replay_create(const struct feed_replay_options *opt,
		   struct tick_queue *queue);

/*
 * Line ticks from TCP producers: listens on host:port (port 0 = any free
 * port; the bound port is logged as "tcp feed listening on HOST:PORT" and
 * shown in feed_status.listen_port). feed_start() fails when the address
 * cannot be bound. At most 64 producers are connected at once; one more is
 * answered "ERR 0 too many producers connected; try again later" and closed.
 *
 * Each connection sends JSONL or CSV (a CSV producer sends its header
 * first). A bad line is answered with "ERR <line> <reason>\n" on that
 * connection and skipped; lines are numbered from 1 per connection. The
 * format is that of the connection's first valid line (a JSONL tick or a
 * CSV header): a bad line before it is answered and decides nothing.
 *
 * Options (spec tcp:HOST:PORT[,idle=SECS][,secret=FILE], in any order):
 *  - idle: a producer that sends no complete line for idle_secs seconds is
 *    answered "ERR 0 idle for N s, closing" and closed, which frees its
 *    slot. Only whole lines count, so trickling bytes of a line that never
 *    ends does not keep a connection open; a quiet producer keeps its
 *    connection with a blank line or a '#' comment line now and then.
 *  - secret: the producer's first line must be "AUTH <secret>" (a trailing
 *    '\r' is ignored); any other first line is answered "ERR 0 wrong
 *    secret; closing" or "ERR 0 this feed needs 'AUTH <secret>' as the
 *    first line; closing", and the connection is closed. The spec names a
 *    file; feed_create() reads it (its one trailing newline is not part of
 *    the secret), so a missing or empty file is a usage error. The secret
 *    crosses the network as sent, in clear text: it keeps out those who
 *    can reach the port, not those who can read the traffic. Listening
 *    beyond loopback without a secret is logged as a warning at start.
 */
#define FEED_TCP_IDLE_DEFAULT 60    /* seconds */
#define FEED_TCP_IDLE_MAX     86400 /* seconds: a day */
#define FEED_TCP_SECRET_MAX   1024  /* bytes */

struct feed_tcp_options {
	const char *host;   /* copied: an address or a name; IPv6 without [] */
	unsigned port;      /* 0..65535 */
	unsigned idle_secs; /* 1..FEED_TCP_IDLE_MAX, or 0 for the default */
	const char *secret; /* copied; NULL: no AUTH line is asked for */
	size_t secret_len;  /* 1..FEED_TCP_SECRET_MAX when secret is set */
};

/* Returns the feed (not started), or NULL when an option is out of range
 * or memory runs out. */
struct feed *
feed_tcp_create(const struct feed_tcp_options *opt, struct tick_queue *queue);

#endif

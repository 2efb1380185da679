/*
 * redis_link: scale-out through Redis. An ingest node publishes
 * every applied tick, with its seq, and every symbol's full state; edge nodes
 * follow them and apply the same ticks with the same seqs, so seqs and the
 * epoch are assigned once, at ingest, and a client may resume on any edge.
 *
 * Who calls it: main.c makes an ingest's publisher (a sink of the
 * pipeline, sink.h) or an edge's follower (a source of the pipeline, which
 * applies its resyncs: pipeline_follow_epoch, pipeline_follow_restore);
 * metrics.c reads their stats; cli.c checks a key prefix with
 * redis_link_prefix_valid(). Each side owns its thread, its hiredis
 * connection, its queue and, for the publisher, a state_table of what it
 * published.
 *
 * ------------------------------------------------------------ threading
 * One dedicated thread per direction, each with its own blocking hiredis
 * 0.14 connection (redisConnectWithTimeout, redisSetTimeout), handing data
 * to the loop's thread through queues and a wake of its own (wake.h). Not
 * hiredis's async API on the libuv loop, because:
 *  - the loop is shared with libwebsockets; a Redis connection on it would
 *    put Redis's latency, parsing and reconnects on the thread that writes
 *    to every client;
 *  - hiredis 0.14's async API has no timeouts: connect and command
 *    timeouts, reconnect and backoff would all be timers and state machines
 *    on the service thread. On a thread of its own a blocking call with a
 *    socket timeout is the timeout, and a reconnect is a loop with a sleep;
 *  - the service thread never waits for Redis, parses a reply or encodes a
 *    command: Redis latency, a large HGETALL or a hung server cannot delay
 *    a WebSocket write.
 * The cost is one thread and one hand-off per direction, both of which the
 * store already has.
 *
 * ------------------------------------------------------------ the keys
 * Under a prefix P (default "publisher"; several markets may share a Redis):
 *
 *   P:epoch     string  the ingest's epoch
 *   P:state     hash    symbol -> its full state (format below)
 *   P:ticks     stream  one entry per applied tick, bounded by XADD MAXLEN ~ N
 *   P:sessions  string  the ingest's trading sessions, as
 *                       trading_sessions_describe() says them
 *
 * Stream entries (field names are stored once per stream node by Redis):
 *
 *   run R g N seq S tick {"ts":…,"symbol":"AAPL","bid":189.35,…}   a tick
 *   run R g N hb <wall µs>                                      heartbeat
 *   run R g 0 sync <epoch>                           a run starts (below)
 *
 * `tick` is the tick's input fields in exactly the replay/export JSONL
 * format (so `XRANGE` output is a replayable tick file); its seq rides in its
 * own field because the tick-file parser refuses unknown members, by design.
 * The follower reads the line back with a strict parser of exactly that
 * form, not the feed parser, which also applies feed policy (no negative
 * sizes): an edge takes whatever the ingest's engine accepted.
 *
 * A state value is one line of text, exact decimals, a format tag first:
 *
 *   s2 <seq> <ts> <feed_sends_volume 0|1> <session> <field>=<decimal>@<changed_seq> …
 *   s2 1042 1709303400123456 0 1709256600000000 bid=189.33@1040 ask=189.35@1042 trades=7@1041 open=@1039
 *
 * <session> is the start (µs) of the trading session the state is in;
 * a field without a decimal ("open=@1039") was taken away at that seq by
 * a new session. The s1 format of older versions (no session, no field
 * taken away) is still read.
 *
 * ------------------------------------------------------------ consistency
 * Runs. Every (re)connect of the publisher starts a new run R (64 random
 * bits) and first rewrites, in one MULTI/EXEC, the epoch, the whole state
 * hash (from its own states) and a `sync` entry. Within a run, `g` counts
 * tick entries (1, 2, 3 …) and a heartbeat repeats the g of the last tick.
 * A follower therefore knows exactly whether it has seen every entry: the
 * next entry must have the same R and g + 1 (a tick) or g (a heartbeat).
 * Anything else (a new run after a publisher or Redis restart, a stream
 * trimmed past a slow or disconnected follower, a stream reset) is a gap,
 * and the follower resyncs from the state. A gap is never papered over.
 *
 * Batches. For each batch the publisher sends one HSET of the states of the
 * symbols the batch touched *before* the batch's XADDs, pipelined. A
 * follower's snapshot (MULTI: GET epoch, HGETALL, XREVRANGE COUNT 1) may
 * fall between the two; then the state already holds ticks the stream
 * gives it again after the snapshot's id, and the engine refuses those as
 * stale seqs. The state is never behind the stream, so nothing is lost.
 *
 * Epoch. The ingest is the source of truth: when P:epoch holds another
 * epoch, the publisher logs it, overwrites it and deletes the old stream;
 * followers see the new run, resync, and report the new epoch.
 *
 * Liveness. The publisher XADDs a heartbeat entry when it has sent nothing
 * for a second. A follower connected to Redis that reads no entry for
 * `silent_ms` reports "ingest silent" (chosen over a P:ingest_alive key with
 * PX: the follower is already blocked in XREAD, so heartbeats cost it no
 * extra round trip, and they carry g, which lets an idle follower notice
 * missed ticks).
 *
 * ------------------------------------------------------------ faults
 * Publisher. Redis unreachable: the thread keeps taking queued ticks and
 * folds them into its own states (a state_table: they reach followers as
 * state, not as stream entries), reconnects with exponential backoff and
 * jitter, and on reconnect rewrites the full state (a new run). So a dead
 * Redis never fills the queue and never slows the ingest. A slow but live
 * Redis (or a hung one, for up to io_timeout_ms) fills the queue: the sink
 * (redis_publisher_sink()) then drops the live ticks that do not fit, and
 * every tick after them, until the queue has drained, noting which symbols
 * it dropped; it then takes those symbols' current states from the serving
 * engine, and the thread starts a new run with them, so the edges resync
 * from the state: they get the ingest's prices, conflated, never a stale
 * feed, and the ingest's own clients never wait for Redis.
 * Follower. Redis unreachable: nothing is pushed, the edge serves what it
 * has, the thread reconnects with backoff and carries on from its last id
 * when the run is unbroken, else resyncs. After Redis lost its data
 * (restarted without persistence) the follower waits for the publisher's
 * rewrite and resyncs from it.
 *
 * Sizing. stream_maxlen must hold what the ingest publishes while an edge
 * takes a resync (HGETALL of every state), or a busy edge can be trimmed
 * past again before it has caught up; 100000 is ample for thousands of
 * symbols at 100k ticks/s.
 *
 * One ingest per prefix: two would overwrite each other's runs and every
 * edge would keep resyncing. Not enforced (no lock key yet).
 *
 * Seqs across nodes. Within one epoch a (symbol, seq) pair names one
 * state on every node (store.h, "Seqs are never reused"). The ingest's
 * store reserves seqs ahead, so an ingest restarted after a crash goes on
 * past every seq it handed out, Redis and the edges included. Redis is
 * one more record of what was handed out: before it serves, an ingest
 * with a store reads the state Redis holds in its epoch
 * (redis_link_peek()) and takes it as a lower bound (redis_link_floor()):
 * a symbol Redis holds further on (a database put back from a backup)
 * goes on after Redis's seq, every field changed there; one with a field
 * the store never had (no delta can take it from a client) makes the
 * ingest begin a new epoch. When Redis could not be read then and is
 * found further on later, at a connect, the publisher publishes nothing
 * more in that epoch and asks for a new one (options.need_epoch); the
 * ingest's new epochs reach Redis through the sink's epoch op, in order
 * with the ticks: a run under the new epoch, the old stream deleted.
 *   An edge's resync within one epoch takes each state as the history it
 * holds, further on (engine_advance_symbol()), with the change seqs the
 * state carries: a client holding the state's seq is sent nothing, one
 * at an older seq a delta.
 */
#ifndef PUBLISHER_REDIS_LINK_H
#define PUBLISHER_REDIS_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "sink.h"
#include "tick.h"
#include "tick_queue.h"

#define REDIS_LINK_EPOCH_MAX      64
#define REDIS_LINK_PREFIX_MAX     64
#define REDIS_LINK_DEFAULT_PREFIX "publisher"

/* A key prefix: 1 to REDIS_LINK_PREFIX_MAX characters of the symbol
 * alphabet (A-Z a-z 0-9 . _ : / -), so no spaces, quotes or glob
 * characters reach a key. The link checks it; the CLI checks it early
 * with the same rule. */
static inline bool
redis_link_prefix_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (i == REDIS_LINK_PREFIX_MAX || !tick_symbol_valid(s + i, 1))
			return false;
	return i > 0;
}

/* ================================================================ ingest */

struct redis_publisher;

struct redis_publisher_options {
	const char *host;   /* copied; a name or an address */
	int port;           /* 1..65535 */
	const char *prefix; /* copied; NULL = REDIS_LINK_DEFAULT_PREFIX;
	                     * 1..64 of [A-Za-z0-9._:/-] */
	const char *epoch;  /* copied; the store's epoch; 1..64 characters
	                     * without spaces */
	/* Entries the stream keeps (XADD MAXLEN ~): how far behind an edge
	 * may fall, or how long it may be cut off, and still catch up
	 * instead of resyncing: maxlen / ticks per second. Default 100000
	 * (about 20 MB in Redis). */
	uint64_t stream_maxlen;
	size_t queue_capacity;       /* ticks buffered toward Redis; default
	                              * 65536 */
	unsigned connect_timeout_ms; /* default 500 */
	unsigned io_timeout_ms;      /* one read or write; default 1000 */
	unsigned backoff_max_ms;     /* reconnect backoff cap; default 5000 */
	/* Called from the publisher's thread when space frees after
	 * redis_publisher_append() found the queue full. Optional. */
	void (*wake)(void *ctx);
	void *wake_ctx;
	/* Called from the publisher's thread when Redis holds this epoch
	 * further on than the publisher (see "Seqs across nodes"), with the
	 * epoch and why in words: nothing more is published in it, and the
	 * ingest must begin a new one (pipeline_ask_new_epoch()), which
	 * reaches the publisher through the sink's epoch op. Optional:
	 * without it the publisher waits, degraded, for an epoch change. */
	void (*need_epoch)(const char *epoch, const char *why, void *ctx);
	void *need_epoch_ctx;
	/* Where trading sessions begin, for the states it folds: the
	 * serving engine's rule (symbol_state.h; its ctx must outlive the
	 * publisher). Zero: UTC days. */
	struct session_rule sessions;
	/* The same in words (copied), written to P:sessions with every run
	 * so that an edge can tell when its own differ. NULL: not written. */
	const char *sessions_text;
};

struct redis_publisher_stats {
	bool connected;
	int64_t down_since_us;    /* wall clock when the link was lost (or
	                           * when the first attempt failed); 0 while
	                           * connected */
	uint64_t ticks_published; /* sent as stream entries, acknowledged */
	uint64_t ticks_folded;    /* applied to the state while Redis was
	                           * unreachable: they reach edges as state */
	uint64_t ticks_refused;   /* the publisher's states refused them
	                           * (seq not after the one they hold) */
	uint64_t batches;
	uint64_t heartbeats;
	uint64_t full_syncs;    /* runs started (connects) */
	uint64_t reconnects;    /* connects after the first */
	uint64_t errors;        /* failed connects, I/O errors, error
	                         * replies */
	uint64_t ahead_symbols; /* Redis held them further on than the
	                         * publisher in its epoch, at a connect
	                         * (see "Seqs across nodes") */
	uint64_t epoch_changes; /* new epochs published (the sink's epoch
	                         * op) */
	uint64_t ticks_dropped; /* live ticks not queued: Redis was behind;
	                         * they reached edges as state instead */
	uint64_t state_resyncs; /* runs started to carry those states */
	bool dropping;          /* behind now, until its queue drains */
	size_t queued;
	int64_t lag_us; /* age of the oldest queued tick, 0 if none */
	char run[17];   /* the current run, "" when disconnected */
	char last_error[160];
};

/*
 * Check the options and set the publisher up; nothing connects yet, so an
 * ingest starts whether or not Redis is up. Returns NULL with the cause in
 * err ("--redis port must be 1..65535", "out of memory").
 */
struct redis_publisher *
redis_publisher_create(const struct redis_publisher_options *opt, char *err,
                       size_t errlen);

/* Give the publisher's states a symbol's state, as the serving engine got it
 * from the store. Call for every symbol before redis_publisher_start(); the
 * publisher's states must start where the serving engine starts, or they
 * refuse (or mis-derive) the ticks that follow. Returns 0, or -1 after
 * start or on an invalid symbol. */
int redis_publisher_restore(struct redis_publisher *p,
                            const struct symbol_state *st);

/* Start the thread. Returns 0, or -1 with err. */
int redis_publisher_start(struct redis_publisher *p, char *err, size_t errlen);

/* Ticks redis_publisher_append() can take now. Thread-safe. When it is 0,
 * `wake` is called once space frees. */
size_t redis_publisher_append_space(struct redis_publisher *p);

/*
 * Queue n applied ticks (seq set, as engine_apply_tick() returned it).
 * Copies them. Never blocks. Thread-safe. Returns 0, or -1 when there is not
 * room for all n: none are queued and `wake` will be called once room frees
 * (apply back-pressure, as for store_append()).
 */
int redis_publisher_append(struct redis_publisher *p,
                           const struct tick *applied, size_t n);

/* Thread-safe. */
void redis_publisher_get_stats(struct redis_publisher *p,
                               struct redis_publisher_stats *out);

/* For /healthz: true with a reason in words when the publisher is not
 * publishing ("redis 10.0.0.5:6379 unreachable since 2026-11-23T10:00:01Z
 * (12 s): Connection refused"). Thread-safe. */
bool redis_publisher_degraded(struct redis_publisher *p, char *reason,
                              size_t len);

/* Publish what is queued (while connected, for up to 2 s), stop the thread,
 * free. Works without start. NULL is a no-op. */
void redis_publisher_destroy(struct redis_publisher *p);

/* The publisher as a pipeline sink (sink.h), named "redis"; the sink's
 * destroy is redis_publisher_destroy(). Its epoch op publishes the new
 * epoch after the ticks appended before it (a new run, the old stream
 * deleted), so the edges reset and follow. */
struct sink redis_publisher_sink(struct redis_publisher *p);

/*
 * An ingest's start, before it serves: read what Redis holds under the
 * prefix (host, port and prefix as for redis_publisher_create()), trying
 * for up to timeout_ms. When Redis holds `epoch`, call fn for the state of
 * every symbol it holds and return 1; return 0 when it holds another
 * epoch or none, and -1 with the cause in err when it could not be read.
 * Blocks the caller.
 */
int redis_link_peek(const char *host, int port, const char *prefix,
                    const char *epoch, unsigned timeout_ms,
                    void (*fn)(const struct symbol_state *st, void *ctx),
                    void *ctx, char *err, size_t errlen);

/* What an ingest does with Redis's state of a symbol in its own epoch. */
enum redis_floor {
	REDIS_FLOOR_KEEP, /* Redis holds nothing the ingest's state does not
	                   * go on from */
	REDIS_FLOOR_PAST, /* go on after it: *out */
	REDIS_FLOOR_LOST, /* Redis holds a field the ingest's state lacks
	                   * (or a symbol it lacks): only a new epoch can
	                   * take that from a client */
};

/*
 * Redis's state `theirs` of a symbol as a lower bound on the ingest's
 * `ours` (NULL: the ingest has no data for it). PAST when Redis is further
 * on, or at the same seq with other values, or names a value at a seq
 * where ours says it had another: then *out is ours at one past both
 * seqs, every field changed there, so that a client holding any seq of
 * either gets a delta of every field. LOST when theirs has a field ours
 * lacks (a session's open/high/low/prev_close aside: ours at one past
 * both, with those it lacks taken away there, is PAST). Else KEEP.
 */
enum redis_floor redis_link_floor(const struct symbol_state *ours,
                                  const struct symbol_state *theirs,
                                  struct symbol_state *out);

/* ================================================================== edge */

struct redis_follower;

struct redis_follower_options {
	const char *host; /* copied */
	int port;
	const char *prefix; /* copied; NULL = REDIS_LINK_DEFAULT_PREFIX */
	/* Ticks read from the stream, seq set, go here; the engine applies
	 * them with that seq (and refuses stale ones). Borrowed: it must
	 * outlive the follower, and be closed before redis_follower_destroy()
	 * when the follower may be blocked on a full queue. */
	struct tick_queue *ticks;
	/*
	 * A resync hands over the epoch and every symbol's state. They are
	 * applied on the caller's (service) thread by
	 * redis_follower_apply_pending(), which calls these:
	 *  - epoch(epoch, ctx): before the states, whenever the epoch differs
	 *    from the one handed over before (so also on the first resync).
	 *    An epoch that changed means a new life of the data: drop what
	 *    the engine holds and what clients hold (pipeline.h: the
	 *    pipeline clears the engine and its clients start over).
	 *  - restore(st, ctx): once per symbol (pipeline_follow_restore()).
	 * Both required.
	 */
	void (*epoch)(const char *epoch, void *ctx);
	void (*restore)(const struct symbol_state *st, void *ctx);
	/* Called from the follower's thread when a resync is waiting for
	 * redis_follower_apply_pending(), with wake_ctx. Required. */
	void (*wake)(void *ctx);
	void *ctx;                   /* for epoch and restore */
	void *wake_ctx;              /* for wake; NULL: ctx */
	/* The edge's trading sessions in words (copied), compared with the
	 * ingest's P:sessions at every resync: an edge folds the ingest's
	 * ticks with its own rule, so with other sessions it would serve
	 * other states under the same seqs. When they differ the follower
	 * logs it and is degraded (redis_follower_degraded()) until they
	 * agree. NULL, or an ingest that writes none: not compared. */
	const char *sessions_text;
	unsigned connect_timeout_ms; /* default 500 */
	unsigned backoff_max_ms;     /* default 5000 */
	unsigned silent_ms;          /* "ingest silent" after; default 3000 */
};

struct redis_follower_stats {
	bool connected;
	bool synced;           /* holds a state from Redis (this run) */
	int64_t down_since_us; /* wall clock; 0 while connected */
	char epoch[REDIS_LINK_EPOCH_MAX + 1]; /* of the last resync, "" */
	char last_id[48]; /* stream id of the last entry read */
	uint64_t entries_read;
	uint64_t ticks_pushed;
	uint64_t resyncs; /* states taken from Redis */
	uint64_t symbols_restored;
	uint64_t reconnects;
	uint64_t errors;
	int64_t lag_us;       /* when the last entry was read: how long it
	                       * had been in the stream (Redis's clock in
	                       * its id against ours) */
	int64_t last_tick_ts; /* ts of the newest tick pushed */
	int64_t idle_us;      /* since the last entry was read (or since
	                       * connecting) */
	char last_error[160];
};

/*
 * Check the options and set up; nothing connects yet. Returns NULL with the
 * cause in err.
 */
struct redis_follower *
redis_follower_create(const struct redis_follower_options *opt, char *err,
                      size_t errlen);

/* Start the thread. Returns 0, or -1 with err. */
int redis_follower_start(struct redis_follower *f, char *err, size_t errlen);

/*
 * On the service thread, after a wake: apply a waiting resync through the
 * epoch and restore callbacks. Returns the number of states handed over (0
 * when nothing was waiting). The follower pushes the ticks that come after
 * a resync only once this has returned, so a restore never lands on top of
 * a newer tick. Ticks from before it that are still queued are older than
 * the restored states and the engine refuses them.
 */
size_t redis_follower_apply_pending(struct redis_follower *f);

/* Block until a first resync has been applied or is waiting, up to
 * timeout_ms. Returns 0, or -1 on timeout. (Start-up: an edge may wait a
 * little to come up warm.) Thread-safe. */
int redis_follower_wait_synced(struct redis_follower *f, unsigned timeout_ms);

/* Thread-safe. */
void redis_follower_get_stats(struct redis_follower *f,
                              struct redis_follower_stats *out);

/* True once a resync from Redis has been applied (the edge knows its
 * ingest's epoch). Thread-safe. */
bool redis_follower_synced(struct redis_follower *f);

/* For /healthz: true with the reason when the edge is not following a live
 * ingest: "redis 10.0.0.5:6379 unreachable since … (12 s): …", "waiting
 * for the ingest's state in redis …", "ingest silent for 5 s (no entries on
 * publisher:ticks)". Thread-safe. */
bool redis_follower_degraded(struct redis_follower *f, char *reason,
                             size_t len);

/* Stop the thread (within a few ms: its socket is shut down) and free.
 * Close the tick queue first if the follower may be blocked pushing into a
 * full one. NULL is a no-op. */
void redis_follower_destroy(struct redis_follower *f);

#endif

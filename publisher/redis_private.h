/*
 * redis_private.h: what the Redis link's files share, and nobody else.
 *
 *   redis_wire.c            the wire: RESP, the entry and state
 *                           encodings, connecting, backoff, and the
 *                           checks both sides make
 *   redis_publisher.c       the ingest's publisher: its queue, batches
 *                           and thread
 *   redis_publisher_sink.c  the publisher as the pipeline's sink
 *   redis_ingest_start.c    an ingest's start: redis_link_peek(),
 *                           redis_link_floor()
 *   redis_follower.c        the edge's follower
 *
 * Included by those files only. It owns nothing: constants, redis_wire.c's
 * helpers, and struct redis_publisher, which redis_publisher.c and
 * redis_publisher_sink.c both reach into; the threads, connections and
 * queues belong to the publisher and the follower, each in its own files.
 *
 * How the link works (keys, entries, runs, faults) is told in
 * redis_link.h; how both threads talk to Redis, at the top of
 * redis_wire.c.
 */
#ifndef PUBLISHER_REDIS_PRIVATE_H
#define PUBLISHER_REDIS_PRIVATE_H

#include "redis_link.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "decimal.h"
#include "errbuf.h"
#include "jsonbuf.h"
#include "log.h"
#include "tick_file.h"

#define DEFAULT_STREAM_MAXLEN  100000
#define DEFAULT_QUEUE_CAPACITY 65536
#define DEFAULT_CONNECT_MS     500
#define DEFAULT_IO_MS          1000
#define DEFAULT_BACKOFF_MAX_MS 5000
#define DEFAULT_SILENT_MS      3000
#define BACKOFF_MIN_US         (100 * 1000ll)

/* Most ticks in one pipelined batch: about 1.5 MB of commands. Batches grow
 * toward it under load and stay small (low latency) when the rate is low. */
#define BATCH_MAX 8192
/* Symbols touched by one batch, looked up in an open-addressed table of
 * twice that many slots (a power of two). */
#define TOUCH_SLOTS (2 * BATCH_MAX)
/* Field/value pairs per HSET in a full sync. */
#define HSET_CHUNK 1000
/* The publisher sends a heartbeat after this long without sending. */
#define HEARTBEAT_US (1000 * 1000ll)
/* At close, what is queued is published for at most this long. */
#define CLOSE_FLUSH_US (2 * 1000 * 1000ll)

#define XREAD_BLOCK_MS 1000
#define XREAD_COUNT    4096
/* The follower's socket timeout must outlast XREAD BLOCK. */
#define FOLLOWER_IO_MS (XREAD_BLOCK_MS + 2000)
/* How often a follower looks again when Redis holds no state yet. */
#define WAIT_FOR_INGEST_US (1000 * 1000ll)

#define RUN_BYTES 8
#define RUN_LEN   (2 * RUN_BYTES)
#define KEY_MAX   (REDIS_LINK_PREFIX_MAX + 16)
/* The longest trading sessions text compared (P:sessions). */
#define SESSIONS_TEXT_MAX 1024
#define HOST_MAX  256

/*
 * Exponential backoff with jitter: the base doubles from BACKOFF_MIN_US up
 * to max after every failed attempt, and each wait is drawn from [base/2,
 * base], so edges cut off together do not all come back in the same
 * millisecond.
 */
struct backoff {
	int64_t base_us, max_us;
};

/* A stream entry id, "<ms>-<seq>". */
struct stream_id {
	uint64_t ms, seq;
};

struct timeval redis__timeval_of(int64_t us);

/* Wait on c, made by clock_cond_init_mono(), until the monotonic time
 * `until` in µs (or a signal). */
void redis__cond_wait_until(pthread_cond_t *c, pthread_mutex_t *mu,
                            int64_t until);

void redis__iso_time(int64_t us, char *out, size_t len);

void redis__block_sigpipe(void);

/* Consume a SIGPIPE left pending in this thread by a failed write. */
void redis__clear_sigpipe(void);

uint64_t redis__random_seed(void);

/* xorshift64*: jitter and run ids, never anything secret. */
uint64_t redis__next_random(uint64_t *s);

int64_t redis__backoff_next(struct backoff *b, uint64_t *rng);

void redis__backoff_reset(struct backoff *b);

bool redis__epoch_valid(const char *s);

int redis__parse_u64(const char *s, size_t len, uint64_t *out);

int redis__stream_id_parse(const char *s, size_t len, struct stream_id *out);

int redis__stream_id_cmp(struct stream_id a, struct stream_id b);

void redis__resp_count(struct jsonbuf *b, char kind, size_t n);

void redis__resp_array(struct jsonbuf *b, size_t n);

void redis__resp_bulk(struct jsonbuf *b, const void *s, size_t len);

void redis__resp_str(struct jsonbuf *b, const char *s);

void redis__resp_u64(struct jsonbuf *b, uint64_t v);

void redis__resp_buf(struct jsonbuf *b, const struct jsonbuf *v);

/*
 * The inverse of tick_file_write_json(), which writes a tick's entry, and
 * nothing more: {"ts":I,"symbol":"S"} with ,"<input field>":D members. Not
 * tick_parse_line(): same format, but that parser applies feed policy (no
 * negative sizes) and an edge must take back whatever the ingest accepted.
 */
int redis__tick_from_line(const char *s, size_t len, uint64_t seq,
                          struct tick *out, char *why, size_t whylen);

/* "s1 <seq> <ts> <fsv> <field>=<decimal>@<changed_seq> …" (see the header) */
void redis__state_encode(struct jsonbuf *b, const struct symbol_state *st);

/* Decode a state value. Returns 0, or -1 with a reason in *why. */
int redis__state_decode(const char *name, size_t namelen, const char *s,
                        size_t len, struct symbol_state *out, const char **why);

/*
 * Connect with the connect timeout, then set the socket timeout for every
 * read and write, TCP keepalive, and the client's name (which Redis shows
 * in CLIENT LIST; it also proves the peer speaks Redis and needs no AUTH).
 * Returns the context, or NULL with the cause in why.
 */
redisContext *redis__link_connect(const char *host, int port,
                                  int64_t connect_us, int64_t io_us,
                                  const char *name, char *why, size_t whylen);

/* Why the context failed, in words ("Connection reset by peer"). hiredis
 * keeps strerror() of the failed call in errstr; a socket timeout shows as
 * EAGAIN there. */
const char *redis__link_error(const redisContext *rc);

/* The first error reply in r (or, for EXEC, in its elements), or NULL. */
const char *redis__reply_error(const redisReply *r);

void redis__keys_init(const char *prefix, char *ticks, char *state,
                      char *epoch);

/* The checks both directions make on their options. Returns the key prefix
 * to use, or NULL with the reason in err. */
const char *redis__check_address(const char *host, int port, const char *prefix,
                                 char *err, size_t errlen);

struct state_table;

/*
 * The ingest's publisher, made and run by redis_publisher.c; its sink ops
 * (redis_publisher_sink.c) append to its queue and hand its thread what
 * the sink resumes with, under mu.
 */
struct redis_publisher {
	char host[HOST_MAX];
	int port;
	char prefix[REDIS_LINK_PREFIX_MAX + 1];
	char key_ticks[KEY_MAX], key_state[KEY_MAX], key_epoch[KEY_MAX];
	char key_sessions[KEY_MAX];
	char epoch[REDIS_LINK_EPOCH_MAX + 1];
	char *sessions_text; /* options.sessions_text, or NULL */
	uint64_t maxlen;
	int64_t connect_us, io_us;
	void (*wake)(void *ctx);
	void *wake_ctx;
	void (*need_epoch)(const char *epoch, const char *why, void *ctx);
	void *need_epoch_ctx;

	/* The thread's (and before start, the creator's). */
	struct state_table *states;
	redisContext *rc;
	uint64_t rng;
	struct backoff backoff;
	int64_t next_attempt_us; /* mono */
	int64_t last_send_us;    /* mono */
	bool ever_connected;
	char run[RUN_LEN + 1];
	uint64_t g;
	struct jsonbuf xadd_head; /* XADD … run R, without the array count */
	struct jsonbuf out, chunk, scratch;
	size_t chunk_pairs, commands;
	struct tick *batch;
	uint32_t touch_gen[TOUCH_SLOTS], touch_idx[TOUCH_SLOTS], gen;
	uint32_t unique[BATCH_MAX];
	size_t nunique;
	size_t unsent_at_close;
	/* An epoch change taken from the queue: made once the ticks queued
	 * before it are published. */
	bool switching;
	char switch_to[REDIS_LINK_EPOCH_MAX + 1];

	/* Shared, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct tick *ring;
	int64_t *enq_us;
	size_t cap, head, count;
	bool want_wake;
	bool stopping;
	int64_t stop_by_us;
	bool started;
	struct redis_publisher_stats stats;
	pthread_t thread;
	/* Behind (see "faults" in the header): the symbols whose ticks were
	 * dropped, by name (open addressing), and the states they resume
	 * with, for the thread. */
	int64_t dropping_since_us; /* wall clock */
	char (*dropped)[TICK_SYMBOL_MAX + 1];
	size_t ndropped, dropped_mask;
	struct symbol_state *restores;
	size_t nrestores, restores_cap;
	bool resync_pending;
	/* A new epoch from the sink's epoch op, after the epoch_after ticks
	 * queued before it. */
	bool epoch_pending;
	size_t epoch_after;
	char next_epoch[REDIS_LINK_EPOCH_MAX + 1];
};

#endif

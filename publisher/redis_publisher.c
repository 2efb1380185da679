/*
 * redis_publisher.c: the ingest side of the Redis link (redis_link.h). A
 * thread of its own takes the applied ticks the pipeline appends, folds
 * them into its states (a state_table: the engine's folding rules, without
 * its subscribers), and publishes them in pipelined
 * batches: a stream entry per tick and the states that changed, with a
 * full state rewrite (a new run) whenever Redis lost track of it. As the
 * pipeline's sink (redis_publisher_sink.c) it never holds up live data:
 * when its queue is full it drops ticks and sends their symbols' states
 * instead. struct redis_publisher is in redis_private.h.
 */
#include "redis_private.h"

#include "hash.h"
#include "state_table.h"

struct redis_publisher *
redis_publisher_create(const struct redis_publisher_options *opt, char *err,
                       size_t errlen)
{
	struct redis_publisher *p;
	const char *prefix;

	if (!opt) {
		errf(err, errlen, "--redis needs a host name or address");
		return NULL;
	}
	prefix = redis__check_address(opt->host, opt->port, opt->prefix, err,
	                              errlen);
	if (!prefix)
		return NULL;
	if (!opt->epoch || !redis__epoch_valid(opt->epoch)) {
		errf(err, errlen,
		     "the epoch to publish must be 1..64 printable "
		     "characters without spaces");
		return NULL;
	}
	p = calloc(1, sizeof *p);
	if (!p) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(p->host, sizeof p->host, "%s", opt->host);
	p->port = opt->port;
	snprintf(p->prefix, sizeof p->prefix, "%s", prefix);
	redis__keys_init(prefix, p->key_ticks, p->key_state, p->key_epoch);
	snprintf(p->key_sessions, sizeof p->key_sessions, "%s:sessions",
	         prefix);
	snprintf(p->epoch, sizeof p->epoch, "%s", opt->epoch);
	p->maxlen =
	        opt->stream_maxlen ? opt->stream_maxlen : DEFAULT_STREAM_MAXLEN;
	p->cap = opt->queue_capacity ? opt->queue_capacity
	                             : DEFAULT_QUEUE_CAPACITY;
	p->connect_us =
	        (int64_t)(opt->connect_timeout_ms ? opt->connect_timeout_ms
	                                          : DEFAULT_CONNECT_MS) *
	        1000;
	p->io_us = (int64_t)(opt->io_timeout_ms ? opt->io_timeout_ms
	                                        : DEFAULT_IO_MS) *
	           1000;
	p->backoff.max_us =
	        (int64_t)(opt->backoff_max_ms ? opt->backoff_max_ms
	                                      : DEFAULT_BACKOFF_MAX_MS) *
	        1000;
	p->wake = opt->wake;
	p->wake_ctx = opt->wake_ctx;
	p->need_epoch = opt->need_epoch;
	p->need_epoch_ctx = opt->need_epoch_ctx;
	p->rng = redis__random_seed();
	jsonbuf_init(&p->xadd_head, 0);
	jsonbuf_init(&p->out, 0);
	jsonbuf_init(&p->chunk, 0);
	jsonbuf_init(&p->scratch, 0);
	pthread_mutex_init(&p->mu, NULL);
	clock_cond_init_mono(&p->cond);

	p->states = state_table_create();
	p->ring = p->cap <= SIZE_MAX / sizeof *p->ring
	                  ? malloc(p->cap * sizeof *p->ring)
	                  : NULL;
	p->enq_us = malloc(p->cap * sizeof *p->enq_us);
	p->batch = malloc(BATCH_MAX * sizeof *p->batch);
	if (!p->states || !p->ring || !p->enq_us || !p->batch) {
		errf(err, errlen, "out of memory (queue of %zu ticks)", p->cap);
		redis_publisher_destroy(p);
		return NULL;
	}
	state_table_set_sessions(p->states, &opt->sessions);
	if (opt->sessions_text &&
	    !(p->sessions_text = strdup(opt->sessions_text))) {
		errf(err, errlen, "out of memory");
		redis_publisher_destroy(p);
		return NULL;
	}
	return p;
}

int
redis_publisher_restore(struct redis_publisher *p,
                        const struct symbol_state *st)
{
	if (!p || p->started)
		return -1;
	return state_table_restore(p->states, st);
}

/* ------------------------------------------------------- the queue */

size_t
redis_publisher_append_space(struct redis_publisher *p)
{
	size_t space;

	pthread_mutex_lock(&p->mu);
	space = p->stopping ? 0 : p->cap - p->count;
	if (space == 0)
		p->want_wake = true;
	pthread_mutex_unlock(&p->mu);
	return space;
}

int
redis_publisher_append(struct redis_publisher *p, const struct tick *applied,
                       size_t n)
{
	size_t tail, first, i;
	int64_t now;
	bool signal;

	if (n == 0)
		return 0;
	now = clock_mono_us();
	pthread_mutex_lock(&p->mu);
	if (p->stopping || p->cap - p->count < n) {
		p->want_wake = true;
		pthread_mutex_unlock(&p->mu);
		return -1;
	}
	tail = (p->head + p->count) % p->cap;
	first = p->cap - tail < n ? p->cap - tail : n;
	memcpy(p->ring + tail, applied, first * sizeof *applied);
	memcpy(p->ring, applied + first, (n - first) * sizeof *applied);
	for (i = 0; i < n; i++)
		p->enq_us[(tail + i) % p->cap] = now;
	signal = p->count == 0;
	p->count += n;
	pthread_mutex_unlock(&p->mu);
	/* The thread only sleeps on an empty queue. */
	if (signal)
		pthread_cond_signal(&p->cond);
	return 0;
}

/*
 * Wait until there are ticks (or states to resume with), the heartbeat or a
 * reconnect is due, or the publisher stops; then move up to BATCH_MAX ticks
 * into p->batch. States the sink resumed with are taken in the same step
 * and put into the states before those ticks, which came after them
 * (*resync then says a run must start). An epoch change stops the batch at
 * the ticks queued before it and sets p->switching. Returns the number of
 * ticks moved; *stop says whether the publisher is stopping.
 */
static size_t
publisher_take(struct redis_publisher *p, bool *stop, bool *resync)
{
	struct symbol_state *r;
	size_t n, first, nr, i;
	bool wake = false;

	pthread_mutex_lock(&p->mu);
	while (!p->stopping && p->count == 0 && !p->resync_pending &&
	       !p->epoch_pending) {
		int64_t now = clock_mono_us();
		int64_t until = p->rc ? p->last_send_us + HEARTBEAT_US
		                      : p->next_attempt_us;

		if (now >= until)
			break;
		redis__cond_wait_until(&p->cond, &p->mu, until);
	}
	n = p->count < BATCH_MAX ? p->count : BATCH_MAX;
	/* A new epoch: the ticks before it go out under the old one. */
	if (p->epoch_pending && n >= p->epoch_after) {
		n = p->epoch_after;
		p->epoch_pending = false;
		p->switching = true;
		memcpy(p->switch_to, p->next_epoch, sizeof p->switch_to);
	} else if (p->epoch_pending) {
		p->epoch_after -= n;
	}
	first = p->cap - p->head < n ? p->cap - p->head : n;
	memcpy(p->batch, p->ring + p->head, first * sizeof *p->batch);
	memcpy(p->batch + first, p->ring, (n - first) * sizeof *p->batch);
	p->head = (p->head + n) % p->cap;
	p->count -= n;
	/* Dropping ends once the queue has drained: the pipeline is woken
	 * to resume the sink then, even if no more ticks come. */
	if ((n && p->want_wake) || (p->stats.dropping && p->count == 0)) {
		p->want_wake = false;
		wake = true;
	}
	*stop = p->stopping;
	*resync = p->resync_pending;
	r = p->restores;
	nr = p->nrestores;
	p->restores = NULL;
	p->nrestores = p->restores_cap = 0;
	p->resync_pending = false;
	if (*resync)
		p->stats.state_resyncs++;
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < nr; i++)
		if (state_table_restore(p->states, &r[i]))
			log_warn("redis: could not restore symbol '%.32s'",
			         r[i].symbol);
	free(r);
	if (wake && p->wake)
		p->wake(p->wake_ctx);
	return n;
}

/* ------------------------------------------------------- the batch */

/* Note that the tick at batch[i] touched its symbol. */
static void
publisher_touch(struct redis_publisher *p, size_t i)
{
	const char *sym = p->batch[i].symbol;
	size_t h = hash_name(sym, strlen(sym)) & (TOUCH_SLOTS - 1);

	while (p->touch_gen[h] == p->gen) {
		if (strcmp(p->batch[p->touch_idx[h]].symbol, sym) == 0)
			return;
		h = (h + 1) & (TOUCH_SLOTS - 1);
	}
	p->touch_gen[h] = p->gen;
	p->touch_idx[h] = (uint32_t)i;
	p->unique[p->nunique++] = (uint32_t)i;
}

/*
 * Fold the batch into the publisher's states, which is what edges will be
 * given as state, connected or not. The applied ticks stay at the front of
 * p->batch with their seqs, and the symbols they touched are noted.
 * Returns the number applied.
 */
static size_t
publisher_apply(struct redis_publisher *p, size_t n)
{
	size_t i, kept = 0;
	uint64_t refused = 0;

	if (++p->gen == 0) {
		memset(p->touch_gen, 0, sizeof p->touch_gen);
		p->gen = 1;
	}
	p->nunique = 0;
	for (i = 0; i < n; i++) {
		uint64_t seq = state_table_apply(p->states, &p->batch[i]);

		if (!seq) {
			refused++;
			continue;
		}
		if (kept != i)
			p->batch[kept] = p->batch[i];
		p->batch[kept].seq = seq;
		publisher_touch(p, kept);
		kept++;
	}
	if (refused) {
		pthread_mutex_lock(&p->mu);
		p->stats.ticks_refused += refused;
		pthread_mutex_unlock(&p->mu);
		log_limited(LOG_WARN,
		            "redis: %llu ticks refused by the publisher's "
		            "states (a seq not after the one it holds: was "
		            "it restored like the serving engine?)",
		            (unsigned long long)refused);
	}
	return kept;
}

static void
publisher_xadd_head(struct redis_publisher *p)
{
	char t[24];
	size_t k = format_u64(p->maxlen, t);
	struct jsonbuf *b = &p->xadd_head;

	jsonbuf_reset(b);
	redis__resp_str(b, "XADD");
	redis__resp_str(b, p->key_ticks);
	redis__resp_str(b, "MAXLEN");
	redis__resp_str(b, "~");
	redis__resp_bulk(b, t, k);
	redis__resp_str(b, "*");
	redis__resp_str(b, "run");
	redis__resp_str(b, p->run);
}

/* Start an XADD of the current run with `fields` more arguments after
 * "run R" (the head is 8 arguments: XADD key MAXLEN ~ N * run R). */
static void
publisher_xadd(struct redis_publisher *p, size_t fields)
{
	redis__resp_array(&p->out, 8 + fields);
	jsonbuf_append(&p->out, jsonbuf_data(&p->xadd_head), p->xadd_head.len);
	p->commands++;
}

/* Emit the pending chunk of HSET pairs as one command. */
static void
publisher_flush_chunk(struct redis_publisher *p)
{
	if (!p->chunk_pairs)
		return;
	if (jsonbuf_failed(&p->chunk))
		p->out.failed = true;
	redis__resp_array(&p->out, 2 + 2 * p->chunk_pairs);
	redis__resp_str(&p->out, "HSET");
	redis__resp_str(&p->out, p->key_state);
	jsonbuf_append(&p->out, jsonbuf_data(&p->chunk), p->chunk.len);
	jsonbuf_reset(&p->chunk);
	p->chunk_pairs = 0;
	p->commands++;
}

static void
publisher_add_state(struct redis_publisher *p, const struct symbol_state *st)
{
	redis__resp_str(&p->chunk, st->symbol);
	jsonbuf_reset(&p->scratch);
	redis__state_encode(&p->scratch, st);
	if (jsonbuf_failed(&p->scratch))
		p->chunk.failed = true;
	redis__resp_buf(&p->chunk, &p->scratch);
	if (++p->chunk_pairs == HSET_CHUNK)
		publisher_flush_chunk(p);
}

static void
add_state_cb(const struct symbol_state *st, void *ctx)
{
	publisher_add_state(ctx, st);
}

static void publisher_note_error(struct redis_publisher *p, const char *fmt,
                                 ...) __attribute__((format(printf, 2, 3)));

/* Record why the link failed; the first failure of an outage is logged. */
static void
publisher_note_error(struct redis_publisher *p, const char *fmt, ...)
{
	char why[160];
	bool first;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&p->mu);
	first = p->stats.connected || p->stats.down_since_us == 0;
	p->stats.connected = false;
	p->stats.run[0] = '\0';
	if (first)
		p->stats.down_since_us = clock_wall_us();
	p->stats.errors++;
	snprintf(p->stats.last_error, sizeof p->stats.last_error, "%s", why);
	pthread_mutex_unlock(&p->mu);
	if (first)
		log_warn("redis: publishing to %s:%d stopped: %s; ticks are "
		         "kept as state and published when it is back",
		         p->host, p->port, why);
}

static void
publisher_disconnect(struct redis_publisher *p)
{
	if (!p->rc)
		return;
	redisFree(p->rc);
	p->rc = NULL;
	redis__clear_sigpipe();
}

/*
 * Send what p->out holds (p->commands commands) and read every reply.
 * Returns 0, or -1 when the link failed or Redis answered an error; either
 * ends the run (the caller reconnects, which rewrites the whole state).
 */
static int
publisher_roundtrip(struct redis_publisher *p, const char *what)
{
	size_t i, n = p->commands;

	p->commands = 0;
	if (jsonbuf_failed(&p->out)) {
		publisher_note_error(p, "out of memory building %s", what);
		return -1;
	}
	if (redisAppendFormattedCommand(p->rc, jsonbuf_data(&p->out),
	                                p->out.len) != REDIS_OK) {
		publisher_note_error(p, "%s: %s", what,
		                     redis__link_error(p->rc));
		return -1;
	}
	for (i = 0; i < n; i++) {
		redisReply *r;
		const char *e;

		if (redisGetReply(p->rc, (void **)&r) != REDIS_OK || !r) {
			publisher_note_error(p, "%s: %s", what,
			                     redis__link_error(p->rc));
			return -1;
		}
		e = redis__reply_error(r);
		if (e) {
			publisher_note_error(p, "%s: redis answered '%.100s'",
			                     what, e);
			freeReplyObject(r);
			return -1;
		}
		freeReplyObject(r);
	}
	return 0;
}

/*
 * Redis held this epoch already: was it ahead of us? Then seqs of this
 * epoch were handed out that the publisher's states (the ingest's) do not
 * have: an ingest whose store lost what it published, and that could not
 * read Redis before it served (see "Seqs across nodes" in the header).
 * Publishing would give those seqs other values: nothing more goes out
 * in this epoch, and the ingest is asked for a new one. Returns 0, 1 when
 * Redis is ahead, -1 when the link failed.
 */
static int
publisher_check_ahead(struct redis_publisher *p)
{
	redisReply *r = redisCommand(p->rc, "HGETALL %s", p->key_state);
	uint64_t ahead = 0, theirs = 0, ours = 0;
	char sample[TICK_SYMBOL_MAX + 1] = "", why[300];
	size_t i;

	if (!r) {
		publisher_note_error(p, "HGETALL: %s",
		                     redis__link_error(p->rc));
		return -1;
	}
	if (r->type == REDIS_REPLY_ARRAY) {
		for (i = 0; i + 1 < r->elements; i += 2) {
			const redisReply *k = r->element[i],
			                 *v = r->element[i + 1];
			const struct symbol_state *st;
			struct symbol_state rs, out;
			const char *bad;

			if (k->type != REDIS_REPLY_STRING ||
			    v->type != REDIS_REPLY_STRING ||
			    redis__state_decode(k->str, k->len, v->str, v->len,
			                        &rs, &bad))
				continue;
			st = state_table_find(p->states, rs.symbol);
			if (st && !st->seq)
				st = NULL;
			if (redis_link_floor(st, &rs, &out) == REDIS_FLOOR_KEEP)
				continue;
			if (!ahead++) {
				snprintf(sample, sizeof sample, "%s",
				         rs.symbol);
				theirs = rs.seq;
				ours = st ? st->seq : 0;
			}
		}
	}
	freeReplyObject(r);
	if (!ahead)
		return 0;
	pthread_mutex_lock(&p->mu);
	p->stats.ahead_symbols += ahead;
	pthread_mutex_unlock(&p->mu);
	snprintf(why, sizeof why,
	         "redis holds %llu symbols of epoch %s further on than this "
	         "ingest (e.g. '%s' at seq %llu, here %llu): it lost ticks "
	         "it had published, so nothing more is published in that "
	         "epoch",
	         (unsigned long long)ahead, p->epoch, sample,
	         (unsigned long long)theirs, (unsigned long long)ours);
	log_limited(LOG_ERROR, "redis: %s; %s", why,
	            p->need_epoch ? "a new epoch begins"
	                          : "waiting for a new epoch");
	publisher_note_error(p, "%s", why);
	if (p->need_epoch)
		p->need_epoch(p->epoch, why, p->need_epoch_ctx);
	return 1;
}

/* Why a run starts. */
enum sync_kind {
	SYNC_CONNECT, /* a connect: what does Redis hold? */
	SYNC_STATES,  /* states the sink resumed with */
	SYNC_EPOCH,   /* a new epoch of the ingest's */
};

/*
 * Start a run: rewrite the epoch, the whole state and a `sync` entry in one
 * MULTI, so a follower sees either the old state or the new one with its
 * sync entry, never a half-written hash. Returns 0, or -1 (link failed, or
 * Redis holds this epoch further on).
 */
static int
publisher_full_sync(struct redis_publisher *p, enum sync_kind kind)
{
	redisReply *r = kind == SYNC_CONNECT
	                        ? redisCommand(p->rc, "GET %s", p->key_epoch)
	                        : NULL;
	bool other_epoch = kind == SYNC_EPOCH;
	size_t i;

	if (kind != SYNC_CONNECT)
		goto rewrite;
	if (!r) {
		publisher_note_error(p, "GET: %s", redis__link_error(p->rc));
		return -1;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		publisher_note_error(p, "GET %s: redis answered '%.100s'",
		                     p->key_epoch, r->str);
		freeReplyObject(r);
		return -1;
	}
	if (r->type == REDIS_REPLY_STRING && strcmp(r->str, p->epoch) != 0) {
		other_epoch = true;
		log_warn("redis: %s held epoch %.64s; this ingest's epoch is "
		         "%s: overwriting it (edges will reset)",
		         p->key_epoch, r->str, p->epoch);
	}
	if (r->type == REDIS_REPLY_STRING && !other_epoch) {
		freeReplyObject(r);
		if (publisher_check_ahead(p) != 0)
			return -1;
	} else {
		freeReplyObject(r);
	}

rewrite:
	for (i = 0; i < RUN_BYTES; i++)
		snprintf(p->run + 2 * i, 3, "%02x",
		         (unsigned)(redis__next_random(&p->rng) >> 56));
	p->g = 0;
	publisher_xadd_head(p);

	jsonbuf_reset(&p->out);
	jsonbuf_reset(&p->chunk);
	p->chunk_pairs = 0;
	p->commands = 0;
	redis__resp_array(&p->out, 1);
	redis__resp_str(&p->out, "MULTI");
	p->commands++;
	if (other_epoch) {
		/* Entries of another life must not be read as ours. */
		redis__resp_array(&p->out, 2);
		redis__resp_str(&p->out, "DEL");
		redis__resp_str(&p->out, p->key_ticks);
		p->commands++;
	}
	redis__resp_array(&p->out, 2);
	redis__resp_str(&p->out, "DEL");
	redis__resp_str(&p->out, p->key_state);
	p->commands++;
	state_table_foreach(p->states, add_state_cb, p);
	publisher_flush_chunk(p);
	redis__resp_array(&p->out, 3);
	redis__resp_str(&p->out, "SET");
	redis__resp_str(&p->out, p->key_epoch);
	redis__resp_str(&p->out, p->epoch);
	p->commands++;
	if (p->sessions_text) {
		redis__resp_array(&p->out, 3);
		redis__resp_str(&p->out, "SET");
		redis__resp_str(&p->out, p->key_sessions);
		redis__resp_str(&p->out, p->sessions_text);
		p->commands++;
	}
	publisher_xadd(p, 4);
	redis__resp_str(&p->out, "g");
	redis__resp_str(&p->out, "0");
	redis__resp_str(&p->out, "sync");
	redis__resp_str(&p->out, p->epoch);
	redis__resp_array(&p->out, 1);
	redis__resp_str(&p->out, "EXEC");
	p->commands++;
	return publisher_roundtrip(p, "full sync");
}

/* Connect and start a run. On failure the next attempt is scheduled. */
static void
publisher_connect(struct redis_publisher *p)
{
	size_t nsymbols;
	char why[160];

	p->rc = redis__link_connect(p->host, p->port, p->connect_us, p->io_us,
	                            "publisher-ingest", why, sizeof why);
	if (!p->rc)
		publisher_note_error(p, "cannot connect to %s:%d: %s", p->host,
		                     p->port, why);
	if (!p->rc || publisher_full_sync(p, SYNC_CONNECT) != 0) {
		publisher_disconnect(p);
		p->next_attempt_us = clock_mono_us() +
		                     redis__backoff_next(&p->backoff, &p->rng);
		return;
	}
	redis__backoff_reset(&p->backoff);
	p->last_send_us = clock_mono_us();
	nsymbols = state_table_count(p->states);
	pthread_mutex_lock(&p->mu);
	if (p->ever_connected) {
		p->stats.reconnects++;
		log_info(
		        "redis: publishing to %s:%d again after %lld s "
		        "(run %s, %zu symbols rewritten)",
		        p->host, p->port,
		        (long long)((clock_wall_us() - p->stats.down_since_us) /
		                    1000000),
		        p->run, nsymbols);
	} else {
		log_info("redis: publishing to %s:%d under '%s' (run %s, "
		         "epoch %s, %zu symbols)",
		         p->host, p->port, p->prefix, p->run, p->epoch,
		         nsymbols);
	}
	p->ever_connected = true;
	p->stats.connected = true;
	p->stats.down_since_us = 0;
	p->stats.full_syncs++;
	snprintf(p->stats.run, sizeof p->stats.run, "%s", p->run);
	pthread_mutex_unlock(&p->mu);
}

/*
 * Publish the n applied ticks at the front of p->batch: one HSET of the
 * states they touched, then their XADDs (see "Batches" in the header), or
 * a heartbeat when n is 0. Returns 0, or -1 when the link failed.
 */
static int
publisher_send(struct redis_publisher *p, size_t n)
{
	const struct symbol_state *st;
	size_t i;

	jsonbuf_reset(&p->out);
	jsonbuf_reset(&p->chunk);
	p->chunk_pairs = 0;
	p->commands = 0;
	for (i = 0; i < p->nunique; i++) {
		st = state_table_find(p->states, p->batch[p->unique[i]].symbol);
		if (st)
			publisher_add_state(p, st);
	}
	publisher_flush_chunk(p);
	for (i = 0; i < n; i++) {
		const struct tick *t = &p->batch[i];

		publisher_xadd(p, 6);
		redis__resp_str(&p->out, "g");
		redis__resp_u64(&p->out, ++p->g);
		redis__resp_str(&p->out, "seq");
		redis__resp_u64(&p->out, t->seq);
		redis__resp_str(&p->out, "tick");
		jsonbuf_reset(&p->scratch);
		tick_file_write_json(&p->scratch, t);
		if (jsonbuf_failed(&p->scratch))
			p->out.failed = true;
		redis__resp_buf(&p->out, &p->scratch);
	}
	if (n == 0) {
		char now[24];

		publisher_xadd(p, 4);
		redis__resp_str(&p->out, "g");
		redis__resp_u64(&p->out, p->g);
		redis__resp_str(&p->out, "hb");
		redis__resp_bulk(&p->out, now,
		                 format_u64((uint64_t)clock_wall_us(), now));
	}
	if (publisher_roundtrip(p, n ? "XADD" : "heartbeat"))
		return -1;
	p->last_send_us = clock_mono_us();
	pthread_mutex_lock(&p->mu);
	if (n) {
		p->stats.ticks_published += n;
		p->stats.batches++;
	} else {
		p->stats.heartbeats++;
	}
	pthread_mutex_unlock(&p->mu);
	return 0;
}

/*
 * The ticks queued before a new epoch are out (or folded): publish the
 * epoch, as a run of it with the whole state, the old stream deleted, so
 * that the edges reset and follow. Disconnected, the next connect does
 * it (Redis holds another epoch then).
 */
static void
publisher_switch_epoch(struct redis_publisher *p)
{
	p->switching = false;
	log_info("redis: epoch %s -> %s: a run of the new epoch replaces the "
	         "old one's state and stream; edges reset and follow",
	         p->epoch, p->switch_to);
	snprintf(p->epoch, sizeof p->epoch, "%s", p->switch_to);
	pthread_mutex_lock(&p->mu);
	p->stats.epoch_changes++;
	pthread_mutex_unlock(&p->mu);
	if (!p->rc) {
		/* Perhaps waiting for this very epoch: Redis held the old one
		 * further on. */
		p->next_attempt_us = clock_mono_us();
		return;
	}
	if (publisher_full_sync(p, SYNC_EPOCH) != 0) {
		publisher_disconnect(p);
		p->next_attempt_us = clock_mono_us();
		return;
	}
	p->last_send_us = clock_mono_us();
	pthread_mutex_lock(&p->mu);
	p->stats.full_syncs++;
	snprintf(p->stats.run, sizeof p->stats.run, "%s", p->run);
	pthread_mutex_unlock(&p->mu);
}

static void *
publisher_main(void *arg)
{
	struct redis_publisher *p = arg;
	bool stop = false, resync;

	redis__block_sigpipe();
	for (;;) {
		size_t n, applied;

		if (p->switching && !stop)
			publisher_switch_epoch(p);
		if (!p->rc && !stop && clock_mono_us() >= p->next_attempt_us)
			publisher_connect(p);
		n = publisher_take(p, &stop, &resync);
		/* An epoch change with no tick before it goes out now, and
		 * its run carries the states the sink resumed with too: they
		 * may have been taken after the change, and must not go out
		 * under the old epoch. */
		if (p->switching && n == 0 && !stop) {
			publisher_switch_epoch(p);
			resync = false;
		}
		/* States the sink resumed with were folded in before the
		 * ticks taken with them: a run starts with them now. */
		if (resync && p->rc &&
		    publisher_full_sync(p, SYNC_STATES) != 0) {
			/* The next connect's run carries them. */
			publisher_disconnect(p);
			p->next_attempt_us = clock_mono_us();
		}
		/* Stopping: publish what is queued while the link works and
		 * the time allows; there is no one to fold for. */
		if (stop &&
		    (n == 0 || !p->rc || clock_mono_us() > p->stop_by_us)) {
			p->unsent_at_close = n;
			break;
		}
		applied = publisher_apply(p, n);
		if (!p->rc) {
			if (applied) {
				pthread_mutex_lock(&p->mu);
				p->stats.ticks_folded += applied;
				pthread_mutex_unlock(&p->mu);
			}
			continue;
		}
		if (n == 0 && clock_mono_us() < p->last_send_us + HEARTBEAT_US)
			continue;
		if (n && !applied)
			continue;
		if (publisher_send(p, applied)) {
			/* The state already holds these ticks; the next
			 * run's full sync carries them to the edges. */
			publisher_disconnect(p);
			p->next_attempt_us = clock_mono_us();
			if (applied) {
				pthread_mutex_lock(&p->mu);
				p->stats.ticks_folded += applied;
				pthread_mutex_unlock(&p->mu);
			}
		}
	}
	publisher_disconnect(p);
	return NULL;
}

int
redis_publisher_start(struct redis_publisher *p, char *err, size_t errlen)
{
	int rc;

	if (p->started)
		return errf(err, errlen, "the redis publisher is running");
	p->started = true;
	p->next_attempt_us = 0;
	rc = pthread_create(&p->thread, NULL, publisher_main, p);
	if (rc) {
		p->started = false;
		return errf(err, errlen, "cannot start the redis thread: %s",
		            strerror(rc));
	}
	return 0;
}

void
redis_publisher_get_stats(struct redis_publisher *p,
                          struct redis_publisher_stats *out)
{
	int64_t now = clock_mono_us();

	pthread_mutex_lock(&p->mu);
	*out = p->stats;
	out->queued = p->count;
	out->lag_us = p->count ? now - p->enq_us[p->head] : 0;
	pthread_mutex_unlock(&p->mu);
}

bool
redis_publisher_degraded(struct redis_publisher *p, char *reason, size_t len)
{
	struct redis_publisher_stats s;
	char since[32];

	redis_publisher_get_stats(p, &s);
	if (s.connected)
		return false;
	if (!s.down_since_us) {
		snprintf(reason, len, "connecting to redis %s:%d", p->host,
		         p->port);
		return true;
	}
	redis__iso_time(s.down_since_us, since, sizeof since);
	snprintf(reason, len, "redis %s:%d unreachable since %s (%lld s): %s",
	         p->host, p->port, since,
	         (long long)((clock_wall_us() - s.down_since_us) / 1000000),
	         s.last_error);
	return true;
}

void
redis_publisher_destroy(struct redis_publisher *p)
{
	if (!p)
		return;
	if (p->started) {
		pthread_mutex_lock(&p->mu);
		p->stopping = true;
		p->stop_by_us = clock_mono_us() + CLOSE_FLUSH_US;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->thread, NULL);
		if (p->count + p->unsent_at_close)
			log_warn("redis: %zu ticks still queued at close were "
			         "not published",
			         p->count + p->unsent_at_close);
	}
	publisher_disconnect(p);
	state_table_destroy(p->states);
	jsonbuf_free(&p->xadd_head);
	jsonbuf_free(&p->out);
	jsonbuf_free(&p->chunk);
	jsonbuf_free(&p->scratch);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->mu);
	free(p->sessions_text);
	free(p->ring);
	free(p->enq_us);
	free(p->batch);
	free(p->dropped);
	free(p->restores);
	free(p);
}

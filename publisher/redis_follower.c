/*
 * redis_follower.c: the edge side of the Redis link (redis_link.h). A
 * thread of its own reads the ingest's stream with XREAD and pushes the
 * ticks, with the ingest's seqs, into the edge's tick queue; it resyncs
 * from the state when the stream no longer reaches back, and hands the
 * states and a new epoch to the loop's thread through
 * redis_follower_apply_pending().
 */
#include "redis_private.h"

/* A resync waiting for redis_follower_apply_pending(). */
struct pending_sync {
	struct symbol_state *states;
	size_t n;
	char epoch[REDIS_LINK_EPOCH_MAX + 1];
};

struct redis_follower {
	char host[HOST_MAX];
	int port;
	char prefix[REDIS_LINK_PREFIX_MAX + 1];
	char key_ticks[KEY_MAX], key_state[KEY_MAX], key_epoch[KEY_MAX];
	char key_sessions[KEY_MAX];
	char *sessions_text; /* options.sessions_text, or NULL */
	struct tick_queue *queue;
	void (*epoch_cb)(const char *epoch, void *ctx);
	void (*restore_cb)(const struct symbol_state *st, void *ctx);
	void (*wake)(void *ctx);
	void *ctx, *wake_ctx;
	int64_t connect_us, silent_us;

	/* The thread's. */
	redisContext *rc;
	uint64_t rng;
	struct backoff backoff;
	bool ever_connected;
	bool need_sync;  /* the next step is a resync */
	bool positioned; /* last_id is where the state left off */
	bool have_run;   /* run and g are known */
	char last_id[48];
	struct stream_id last;
	char run[RUN_LEN + 1];
	uint64_t g;
	struct tick *batch;

	/* The service thread's (redis_follower_apply_pending). */
	char applied_epoch[REDIS_LINK_EPOCH_MAX + 1];
	bool applied_any;

	/* Shared, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stopping;
	bool waiting_for_ingest; /* Redis holds no state for the prefix */
	/* The ingest's P:sessions at the last resync, when it differs from
	 * sessions_text ("" when they agree, or either is not known). */
	char sessions_differ[SESSIONS_TEXT_MAX];
	int fd;                  /* the live socket, for a quick stop */
	struct pending_sync pend;
	bool pend_ready;
	uint64_t syncs_posted, syncs_applied;
	int64_t last_entry_mono;
	struct redis_follower_stats stats;
	bool started;
	pthread_t thread;
};

struct redis_follower *
redis_follower_create(const struct redis_follower_options *opt, char *err,
                      size_t errlen)
{
	struct redis_follower *f;
	const char *prefix;

	if (!opt) {
		errf(err, errlen, "--redis needs a host name or address");
		return NULL;
	}
	prefix = redis__check_address(opt->host, opt->port, opt->prefix, err,
	                              errlen);
	if (!prefix)
		return NULL;
	if (!opt->ticks || !opt->epoch || !opt->restore || !opt->wake) {
		errf(err, errlen,
		     "a redis follower needs a tick queue and the epoch, "
		     "restore and wake callbacks");
		return NULL;
	}
	f = calloc(1, sizeof *f);
	if (!f) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(f->host, sizeof f->host, "%s", opt->host);
	f->port = opt->port;
	snprintf(f->prefix, sizeof f->prefix, "%s", prefix);
	redis__keys_init(prefix, f->key_ticks, f->key_state, f->key_epoch);
	snprintf(f->key_sessions, sizeof f->key_sessions, "%s:sessions",
	         prefix);
	f->queue = opt->ticks;
	f->epoch_cb = opt->epoch;
	f->restore_cb = opt->restore;
	f->wake = opt->wake;
	f->ctx = opt->ctx;
	f->wake_ctx = opt->wake_ctx ? opt->wake_ctx : opt->ctx;
	f->connect_us =
	        (int64_t)(opt->connect_timeout_ms ? opt->connect_timeout_ms
	                                          : DEFAULT_CONNECT_MS) *
	        1000;
	f->silent_us =
	        (int64_t)(opt->silent_ms ? opt->silent_ms : DEFAULT_SILENT_MS) *
	        1000;
	f->backoff.max_us =
	        (int64_t)(opt->backoff_max_ms ? opt->backoff_max_ms
	                                      : DEFAULT_BACKOFF_MAX_MS) *
	        1000;
	if (opt->sessions_text &&
	    !(f->sessions_text = strdup(opt->sessions_text))) {
		errf(err, errlen, "out of memory");
		free(f);
		return NULL;
	}
	f->rng = redis__random_seed();
	f->need_sync = true;
	f->fd = -1;
	snprintf(f->last_id, sizeof f->last_id, "0-0");
	pthread_mutex_init(&f->mu, NULL);
	clock_cond_init_mono(&f->cond);
	f->batch = malloc(XREAD_COUNT * sizeof *f->batch);
	if (!f->batch) {
		errf(err, errlen, "out of memory");
		redis_follower_destroy(f);
		return NULL;
	}
	return f;
}

static bool
follower_stopping(struct redis_follower *f)
{
	bool stop;

	pthread_mutex_lock(&f->mu);
	stop = f->stopping;
	pthread_mutex_unlock(&f->mu);
	return stop;
}

/* Sleep for us, or until the follower stops. */
static void
follower_sleep(struct redis_follower *f, int64_t us)
{
	int64_t until = clock_mono_us() + us;

	pthread_mutex_lock(&f->mu);
	while (!f->stopping && clock_mono_us() < until)
		redis__cond_wait_until(&f->cond, &f->mu, until);
	pthread_mutex_unlock(&f->mu);
}

static void follower_note_error(struct redis_follower *f, bool link_lost,
                                const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
follower_note_error(struct redis_follower *f, bool link_lost, const char *fmt,
                    ...)
{
	char why[160];
	bool first = false;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&f->mu);
	if (f->stopping) {
		/* Our own shutdown() of the socket: not news. */
		pthread_mutex_unlock(&f->mu);
		return;
	}
	if (link_lost) {
		first = f->stats.connected || f->stats.down_since_us == 0;
		f->stats.connected = false;
		if (first)
			f->stats.down_since_us = clock_wall_us();
	}
	f->stats.errors++;
	snprintf(f->stats.last_error, sizeof f->stats.last_error, "%s", why);
	pthread_mutex_unlock(&f->mu);
	if (first)
		log_warn("redis: following %s:%d stopped: %s; serving the "
		         "last state meanwhile",
		         f->host, f->port, why);
	else if (!link_lost)
		log_limited(LOG_WARN, "redis: %s", why);
}

static void
follower_disconnect(struct redis_follower *f)
{
	if (!f->rc)
		return;
	pthread_mutex_lock(&f->mu);
	f->fd = -1;
	pthread_mutex_unlock(&f->mu);
	redisFree(f->rc);
	f->rc = NULL;
	redis__clear_sigpipe();
}

static int
follower_connect(struct redis_follower *f)
{
	char why[160];
	bool stop;

	f->rc = redis__link_connect(f->host, f->port, f->connect_us,
	                            FOLLOWER_IO_MS * 1000ll, "publisher-edge",
	                            why, sizeof why);
	if (!f->rc) {
		follower_note_error(f, true, "cannot connect to %s:%d: %s",
		                    f->host, f->port, why);
		return -1;
	}
	pthread_mutex_lock(&f->mu);
	stop = f->stopping;
	f->fd = f->rc->fd;
	if (!stop) {
		if (f->ever_connected) {
			f->stats.reconnects++;
			log_info("redis: following %s:%d again after %lld s",
			         f->host, f->port,
			         (long long)((clock_wall_us() -
			                      f->stats.down_since_us) /
			                     1000000));
		}
		f->stats.connected = true;
		f->stats.down_since_us = 0;
		f->last_entry_mono = clock_mono_us();
	}
	pthread_mutex_unlock(&f->mu);
	f->ever_connected = true;
	if (stop) {
		follower_disconnect(f);
		return -1;
	}
	return 0;
}

/* The string value of field `name` among an entry's field/value pairs. */
static const redisReply *
entry_field(const redisReply *fields, const char *name)
{
	size_t i;

	if (!fields || fields->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *k = fields->element[i];
		const redisReply *v = fields->element[i + 1];

		if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0)
			return v->type == REDIS_REPLY_STRING ? v : NULL;
	}
	return NULL;
}

/* The id, run and g of one stream entry ([id, [field, value, …]]). */
struct entry {
	struct stream_id id;
	const redisReply *idr, *fields, *run, *g, *seq, *tick, *hb, *sync;
	uint64_t gv;
};

static int
entry_parse(const redisReply *e, struct entry *out)
{
	memset(out, 0, sizeof *out);
	if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING)
		return -1;
	out->idr = e->element[0];
	out->fields = e->element[1];
	if (redis__stream_id_parse(out->idr->str, out->idr->len, &out->id))
		return -1;
	out->run = entry_field(out->fields, "run");
	out->g = entry_field(out->fields, "g");
	out->seq = entry_field(out->fields, "seq");
	out->tick = entry_field(out->fields, "tick");
	out->hb = entry_field(out->fields, "hb");
	out->sync = entry_field(out->fields, "sync");
	if (!out->run || out->run->len != RUN_LEN || !out->g ||
	    redis__parse_u64(out->g->str, out->g->len, &out->gv))
		return -1;
	return 0;
}

/* Remember e as the last entry taken in. */
static void
follower_advance(struct redis_follower *f, const struct entry *e)
{
	f->last = e->id;
	snprintf(f->last_id, sizeof f->last_id, "%s", e->idr->str);
	memcpy(f->run, e->run->str, RUN_LEN);
	f->run[RUN_LEN] = '\0';
	f->g = e->gv;
	f->have_run = true;
	f->positioned = true;
}

/*
 * The ingest's trading sessions (its P:sessions, x) against the edge's own:
 * the edge folds the ingest's ticks with its own rule, so other sessions
 * would make other states under the same seqs. Said once per change, and
 * kept for redis_follower_degraded().
 */
static void
follower_check_sessions(struct redis_follower *f, const redisReply *x)
{
	char differ[SESSIONS_TEXT_MAX] = "";
	bool changed;

	if (f->sessions_text && x->type == REDIS_REPLY_STRING &&
	    strcmp(x->str, f->sessions_text) != 0)
		snprintf(differ, sizeof differ, "%s", x->str);
	pthread_mutex_lock(&f->mu);
	changed = strcmp(differ, f->sessions_differ) != 0;
	snprintf(f->sessions_differ, sizeof f->sessions_differ, "%s", differ);
	pthread_mutex_unlock(&f->mu);
	if (changed && differ[0])
		log_error("redis: the ingest's trading sessions (%s) are not "
		          "this edge's (%s): its prev_close, open, high, low, "
		          "volume and trades would differ here; give both the "
		          "same --session settings",
		          differ, f->sessions_text);
	else if (changed)
		log_info("redis: the ingest's trading sessions are this "
		         "edge's again");
}

/*
 * Take the epoch, every symbol's state and the newest entry in one MULTI,
 * so that the state is exactly the stream up to that entry (or a little
 * further: see "Batches" in the header). Hand them to the service thread
 * and wait until it has applied them, so that no tick read after this can
 * reach the engine before them. Returns 0, 1 when Redis holds no state for
 * the prefix (no ingest has published since Redis started), or -1 when the
 * link failed.
 */
static int
follower_sync(struct redis_follower *f)
{
	struct pending_sync s = {0};
	redisReply *r = NULL, *x;
	struct entry e;
	bool have_entry = false;
	size_t i, bad = 0;
	int k;

	redisAppendCommand(f->rc, "MULTI");
	redisAppendCommand(f->rc, "GET %s", f->key_epoch);
	redisAppendCommand(f->rc, "HGETALL %s", f->key_state);
	redisAppendCommand(f->rc, "XREVRANGE %s + - COUNT 1", f->key_ticks);
	redisAppendCommand(f->rc, "GET %s", f->key_sessions);
	redisAppendCommand(f->rc, "EXEC");
	for (k = 0; k < 6; k++) {
		if (r)
			freeReplyObject(r);
		if (redisGetReply(f->rc, (void **)&r) != REDIS_OK || !r) {
			follower_note_error(f, true, "resync: %s",
			                    redis__link_error(f->rc));
			return -1;
		}
		if (redis__reply_error(r)) {
			follower_note_error(f, true,
			                    "resync: redis answered '%.100s'",
			                    redis__reply_error(r));
			freeReplyObject(r);
			return -1;
		}
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
		follower_note_error(f, true, "resync: unexpected EXEC reply");
		freeReplyObject(r);
		return -1;
	}
	x = r->element[0];
	if (x->type != REDIS_REPLY_STRING) {
		freeReplyObject(r);
		pthread_mutex_lock(&f->mu);
		f->waiting_for_ingest = true;
		pthread_mutex_unlock(&f->mu);
		return 1;
	}
	snprintf(s.epoch, sizeof s.epoch, "%s", x->str);

	x = r->element[1];
	if (x->type == REDIS_REPLY_ARRAY && x->elements >= 2) {
		s.states = malloc(x->elements / 2 * sizeof *s.states);
		if (!s.states) {
			freeReplyObject(r);
			follower_note_error(f, true, "resync: out of memory");
			return -1;
		}
	}
	for (i = 0; x->type == REDIS_REPLY_ARRAY && i + 1 < x->elements;
	     i += 2) {
		const redisReply *name = x->element[i], *v = x->element[i + 1];
		const char *why = "not a string";

		if (name->type == REDIS_REPLY_STRING &&
		    v->type == REDIS_REPLY_STRING &&
		    redis__state_decode(name->str, name->len, v->str, v->len,
		                        &s.states[s.n], &why) == 0) {
			s.n++;
			continue;
		}
		if (!bad++)
			log_warn("redis: %s: skipped the state of '%.40s': %s",
			         f->key_state,
			         name->type == REDIS_REPLY_STRING ? name->str
			                                          : "?",
			         why);
	}

	follower_check_sessions(f, r->element[3]);
	x = r->element[2];
	if (x->type == REDIS_REPLY_ARRAY && x->elements == 1)
		have_entry = entry_parse(x->element[0], &e) == 0;
	if (have_entry) {
		follower_advance(f, &e);
	} else {
		/* No stream (or a foreign newest entry): every entry that
		 * comes from here on is newer than this state. */
		f->have_run = false;
		f->positioned = true;
		if (x->type == REDIS_REPLY_ARRAY && x->elements == 1 &&
		    x->element[0]->type == REDIS_REPLY_ARRAY &&
		    x->element[0]->elements == 2 &&
		    x->element[0]->element[0]->type == REDIS_REPLY_STRING &&
		    redis__stream_id_parse(x->element[0]->element[0]->str,
		                           x->element[0]->element[0]->len,
		                           &f->last) == 0)
			snprintf(f->last_id, sizeof f->last_id, "%s",
			         x->element[0]->element[0]->str);
		else
			snprintf(f->last_id, sizeof f->last_id, "0-0");
	}
	freeReplyObject(r);
	f->need_sync = false;
	redis__backoff_reset(&f->backoff);

	pthread_mutex_lock(&f->mu);
	free(f->pend.states);
	f->pend = s;
	f->pend_ready = true;
	f->syncs_posted++;
	f->waiting_for_ingest = false;
	f->last_entry_mono = clock_mono_us();
	f->stats.resyncs++;
	f->stats.symbols_restored += s.n;
	f->stats.synced = true;
	f->stats.errors += bad;
	snprintf(f->stats.epoch, sizeof f->stats.epoch, "%s", s.epoch);
	snprintf(f->stats.last_id, sizeof f->stats.last_id, "%s", f->last_id);
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
	log_info("redis: took the state of %zu symbols from %s:%d (epoch %s, "
	         "stream at %s)",
	         s.n, f->host, f->port, s.epoch, f->last_id);

	f->wake(f->wake_ctx);
	pthread_mutex_lock(&f->mu);
	while (!f->stopping && f->syncs_applied < f->syncs_posted)
		pthread_cond_wait(&f->cond, &f->mu);
	pthread_mutex_unlock(&f->mu);
	return 0;
}

/*
 * XREAD returned nothing for a second. Make sure the stream is still the
 * one we follow: after Redis lost its data, or a stream was deleted, the
 * entries we wait for may never come, or come with smaller ids than ours.
 * Returns 0, or -1 when the link failed.
 */
static int
follower_idle_check(struct redis_follower *f)
{
	redisReply *r =
	        redisCommand(f->rc, "XREVRANGE %s + - COUNT 1", f->key_ticks);
	struct stream_id id;

	if (!r) {
		follower_note_error(f, true, "XREVRANGE: %s",
		                    redis__link_error(f->rc));
		return -1;
	}
	if (redis__reply_error(r)) {
		follower_note_error(f, true,
		                    "XREVRANGE: redis answered '%.100s'",
		                    redis__reply_error(r));
		freeReplyObject(r);
		return -1;
	}
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 0) {
		if (f->have_run)
			f->need_sync = true; /* the stream is gone */
	} else if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
	           r->element[0]->type == REDIS_REPLY_ARRAY &&
	           r->element[0]->elements == 2 &&
	           r->element[0]->element[0]->type == REDIS_REPLY_STRING &&
	           redis__stream_id_parse(r->element[0]->element[0]->str,
	                                  r->element[0]->element[0]->len,
	                                  &id) == 0 &&
	           redis__stream_id_cmp(id, f->last) < 0) {
		f->need_sync = true; /* a new stream, with older ids */
	}
	freeReplyObject(r);
	return 0;
}

/*
 * Decide whether entry e continues what we hold (see "Runs" in the header).
 * Returns 1 for a tick or heartbeat to take, 0 when e starts a gap.
 */
static int
follower_continues(const struct redis_follower *f, const struct entry *e)
{
	if (e->sync)
		return 0; /* a new run rewrote the state */
	if (!f->have_run)
		return 1; /* the state was taken with no stream */
	if (memcmp(e->run->str, f->run, RUN_LEN) != 0)
		return 0;
	if (e->tick && e->seq)
		return e->gv == f->g + 1;
	if (e->hb)
		return e->gv == f->g;
	return 0;
}

/*
 * Read the next entries (waiting up to a second), push their ticks, and
 * note a gap. Returns 0, or -1 when the link failed (or the queue closed).
 */
static int
follower_read(struct redis_follower *f)
{
	redisReply *r, *entries;
	struct stream_id newest = {0, 0};
	size_t i, n = 0, read = 0;
	int64_t ts = 0;
	bool gap = false;
	char why[160];

	r = redisCommand(f->rc, "XREAD COUNT %d BLOCK %d STREAMS %s %s",
	                 XREAD_COUNT, XREAD_BLOCK_MS, f->key_ticks, f->last_id);
	if (!r) {
		follower_note_error(f, true, "XREAD: %s",
		                    redis__link_error(f->rc));
		return -1;
	}
	if (r->type == REDIS_REPLY_NIL) {
		freeReplyObject(r);
		return follower_idle_check(f);
	}
	if (redis__reply_error(r) || r->type != REDIS_REPLY_ARRAY ||
	    r->elements != 1 || r->element[0]->type != REDIS_REPLY_ARRAY ||
	    r->element[0]->elements != 2 ||
	    r->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
		follower_note_error(f, true, "XREAD: %s",
		                    redis__reply_error(r)
		                            ? redis__reply_error(r)
		                            : "unexpected reply");
		freeReplyObject(r);
		return -1;
	}
	entries = r->element[0]->element[1];
	for (i = 0; i < entries->elements && !gap; i++) {
		struct entry e;

		if (entry_parse(entries->element[i], &e)) {
			/* Not written by a publisher: skip it, keep g. */
			if (entries->element[i]->type == REDIS_REPLY_ARRAY &&
			    entries->element[i]->elements == 2 &&
			    entries->element[i]->element[0]->type ==
			            REDIS_REPLY_STRING) {
				const redisReply *id =
				        entries->element[i]->element[0];

				if (redis__stream_id_parse(id->str, id->len,
				                           &f->last) == 0)
					snprintf(f->last_id, sizeof f->last_id,
					         "%s", id->str);
			}
			follower_note_error(f, false,
			                    "%s: skipped an entry that is not "
			                    "a publisher's",
			                    f->key_ticks);
			continue;
		}
		if (!follower_continues(f, &e)) {
			gap = true;
			break;
		}
		if (e.tick && e.seq) {
			uint64_t seq;

			if (redis__parse_u64(e.seq->str, e.seq->len, &seq) ||
			    redis__tick_from_line(e.tick->str, e.tick->len, seq,
			                          &f->batch[n], why,
			                          sizeof why)) {
				follower_note_error(
				        f, false, "%s: bad tick at %s: %s",
				        f->key_ticks, e.idr->str, why);
				gap = true; /* the state will be right */
				break;
			}
			ts = f->batch[n].ts;
			n++;
		}
		follower_advance(f, &e);
		newest = e.id;
		read++;
	}
	freeReplyObject(r);
	if (gap)
		f->need_sync = true;
	else
		redis__backoff_reset(&f->backoff);
	if (n && tick_queue_push(f->queue, f->batch, n)) {
		pthread_mutex_lock(&f->mu);
		f->stopping = true; /* the queue closed: shutting down */
		pthread_mutex_unlock(&f->mu);
		return -1;
	}
	pthread_mutex_lock(&f->mu);
	if (read) {
		f->last_entry_mono = clock_mono_us();
		f->stats.entries_read += read;
		f->stats.lag_us = clock_wall_us() - (int64_t)newest.ms * 1000;
		snprintf(f->stats.last_id, sizeof f->stats.last_id, "%s",
		         f->last_id);
	}
	if (n) {
		f->stats.ticks_pushed += n;
		f->stats.last_tick_ts = ts;
	}
	pthread_mutex_unlock(&f->mu);
	return 0;
}

static void *
follower_main(void *arg)
{
	struct redis_follower *f = arg;

	redis__block_sigpipe();
	while (!follower_stopping(f)) {
		int rc;

		if (!f->rc && follower_connect(f)) {
			follower_sleep(
			        f, redis__backoff_next(&f->backoff, &f->rng));
			continue;
		}
		if (f->need_sync) {
			rc = follower_sync(f);
			if (rc > 0) {
				follower_sleep(f, WAIT_FOR_INGEST_US);
			} else if (rc < 0) {
				follower_disconnect(f);
				follower_sleep(f,
				               redis__backoff_next(&f->backoff,
				                                   &f->rng));
			}
			continue;
		}
		/* A dropped link is tried again at once, then with
		 * backoff (in follower_connect's failures above). */
		if (follower_read(f))
			follower_disconnect(f);
	}
	follower_disconnect(f);
	return NULL;
}

int
redis_follower_start(struct redis_follower *f, char *err, size_t errlen)
{
	int rc;

	if (f->started)
		return errf(err, errlen, "the redis follower is running");
	f->started = true;
	rc = pthread_create(&f->thread, NULL, follower_main, f);
	if (rc) {
		f->started = false;
		return errf(err, errlen, "cannot start the redis thread: %s",
		            strerror(rc));
	}
	return 0;
}

size_t
redis_follower_apply_pending(struct redis_follower *f)
{
	struct pending_sync s;
	size_t i;

	pthread_mutex_lock(&f->mu);
	if (!f->pend_ready) {
		pthread_mutex_unlock(&f->mu);
		return 0;
	}
	s = f->pend;
	memset(&f->pend, 0, sizeof f->pend);
	f->pend_ready = false;
	pthread_mutex_unlock(&f->mu);

	if (!f->applied_any || strcmp(f->applied_epoch, s.epoch) != 0) {
		f->epoch_cb(s.epoch, f->ctx);
		snprintf(f->applied_epoch, sizeof f->applied_epoch, "%s",
		         s.epoch);
		f->applied_any = true;
	}
	for (i = 0; i < s.n; i++)
		f->restore_cb(&s.states[i], f->ctx);
	free(s.states);

	pthread_mutex_lock(&f->mu);
	f->syncs_applied++;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
	return s.n;
}

int
redis_follower_wait_synced(struct redis_follower *f, unsigned timeout_ms)
{
	int64_t until = clock_mono_us() + (int64_t)timeout_ms * 1000;
	int rc;

	pthread_mutex_lock(&f->mu);
	while (!f->stopping && f->syncs_posted == 0 && clock_mono_us() < until)
		redis__cond_wait_until(&f->cond, &f->mu, until);
	rc = f->syncs_posted ? 0 : -1;
	pthread_mutex_unlock(&f->mu);
	return rc;
}

void
redis_follower_get_stats(struct redis_follower *f,
                         struct redis_follower_stats *out)
{
	pthread_mutex_lock(&f->mu);
	*out = f->stats;
	out->idle_us =
	        f->stats.connected ? clock_mono_us() - f->last_entry_mono : 0;
	pthread_mutex_unlock(&f->mu);
}

bool
redis_follower_synced(struct redis_follower *f)
{
	bool synced;

	pthread_mutex_lock(&f->mu);
	synced = f->stats.epoch[0] != '\0';
	pthread_mutex_unlock(&f->mu);
	return synced;
}

bool
redis_follower_degraded(struct redis_follower *f, char *reason, size_t len)
{
	struct redis_follower_stats s;
	char since[32];
	bool waiting, differ;

	redis_follower_get_stats(f, &s);
	pthread_mutex_lock(&f->mu);
	waiting = f->waiting_for_ingest;
	pthread_mutex_unlock(&f->mu);
	if (!s.connected && !s.down_since_us) {
		snprintf(reason, len, "connecting to redis %s:%d", f->host,
		         f->port);
		return true;
	}
	if (!s.connected) {
		redis__iso_time(s.down_since_us, since, sizeof since);
		snprintf(reason, len,
		         "redis %s:%d unreachable since %s (%lld s): %s",
		         f->host, f->port, since,
		         (long long)((clock_wall_us() - s.down_since_us) /
		                     1000000),
		         s.last_error);
		return true;
	}
	if (waiting) {
		snprintf(reason, len,
		         "redis %s:%d holds no state under '%s': waiting for "
		         "the ingest to publish it",
		         f->host, f->port, f->prefix);
		return true;
	}
	pthread_mutex_lock(&f->mu);
	differ = f->sessions_differ[0] != '\0';
	if (differ)
		snprintf(reason, len,
		         "the ingest's trading sessions (%s) are not this "
		         "edge's (%s)",
		         f->sessions_differ, f->sessions_text);
	pthread_mutex_unlock(&f->mu);
	if (differ)
		return true;
	if (s.idle_us > f->silent_us) {
		snprintf(reason, len,
		         "ingest silent for %lld s (no ticks or heartbeats "
		         "on %s)",
		         (long long)(s.idle_us / 1000000), f->key_ticks);
		return true;
	}
	return false;
}

void
redis_follower_destroy(struct redis_follower *f)
{
	if (!f)
		return;
	if (f->started) {
		pthread_mutex_lock(&f->mu);
		f->stopping = true;
		/* Wakes a blocked XREAD now rather than within a second. */
		if (f->fd >= 0)
			shutdown(f->fd, SHUT_RDWR);
		pthread_cond_broadcast(&f->cond);
		pthread_mutex_unlock(&f->mu);
		pthread_join(f->thread, NULL);
	}
	follower_disconnect(f);
	free(f->pend.states);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->mu);
	free(f->batch);
	free(f->sessions_text);
	free(f);
}

/*
 * session.c: one client of the protocol (see session.h): its ops, its
 * replies, its history and what it sends next.
 *
 * A session's outputs go in a fixed order: a close once asked for, then a
 * history reply already begun (a fragmented message cannot be interleaved
 * with other frames), then the queued replies in order, then the engine's
 * update frames. Replies are queued before any update they announce can
 * be: a client always reads "subscribed" before the snapshots.
 *
 * The hub keeps its sessions least recently written first, so the ones
 * owed a heartbeat are found at the head: housekeeping stops at the first
 * one that wrote recently.
 */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "engine.h"
#include "feed.h"
#include "jsonbuf.h"
#include "log.h"
#include "pipeline.h"
#include "protocol.h"
#include "query.h"
#include "sink.h"
#include "trading_session.h"

/* Replies a client may leave unread before it is dropped (1008). */
#define CONTROL_QUEUE_MAX 256
/* History requests a session may have in flight; replies keep order. */
#define HISTORY_IN_FLIGHT 4
/* Ticks a history request returns when it names neither a range nor a
 * limit. */
#define HISTORY_DEFAULT_LIMIT 1000
/* The largest limit a history request may ask for. */
#define HISTORY_LIMIT_MAX 100000
/* Forbidden symbols a refusal names; the rest are counted. */
#define FORBIDDEN_NAMED 5
/* Room for a peer address. */
#define PEER_MAX 64
/* How often token expiry is checked. */
#define EXPIRY_CHECK_US 1000000

const char *const session_error_codes[SESSION_ERROR_CODES] = {
        "bad_json",         "bad_request",  "unknown_op",
        "too_many_symbols", "rate_limited", "too_large",
        "forbidden",        "unavailable",  "internal",
};

const char *const session_bound_names[SESSION_BOUNDS] = {
        "max-symbols",
        "max-pending-symbols",
        "max-pending-symbols-total",
};

const double session_latency_buckets[SESSION_LATENCY_BUCKETS] = {
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
        0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5,
};

/* One queued reply (hello, replies, errors, heartbeat). */
struct control_msg {
	struct control_msg *next;
	struct jsonbuf buf; /* with the hub's headroom */
};

struct session {
	struct query_owner owner; /* first: its history jobs' owner */
	struct session_hub *hub;
	/* the hub's sessions, least recently written first */
	struct session *prev, *next;
	const struct session_transport *t;
	void *conn;
	struct engine_client *client;
	uint64_t id;
	char peer[PEER_MAX];
	/* With tokens: what the token grants, checked on every subscribe
	 * and history, and its expiry, checked by housekeeping. */
	struct auth_claims claims;
	/* When the engine last gave this idle client something to send
	 * (monotonic µs), for the latency histogram; 0 = nothing measured. */
	int64_t ready_since_us;

	struct control_msg *ctl_head, *ctl_tail;
	unsigned ctl_count;
	struct control_msg *sent; /* taken; freed at the next take */

	/* inbound rate limit: token bucket, plus a count of refusals since
	 * the last accepted message to spot sustained abuse */
	double tokens;
	int64_t tokens_at_us;
	unsigned refused_in_row;

	/* history jobs in request order; the head may be half sent, and
	 * then nothing else may go out until its last fragment has */
	struct query_job *jobs[HISTORY_IN_FLIGHT];
	char job_ids[HISTORY_IN_FLIGHT][PROTOCOL_ID_MAX + 1];
	unsigned job_count;
	bool job_started;

	int64_t last_write_us;
	int64_t wake_due_us; /* updates held by max_hz until then, 0 = none */
	int close_status;    /* nonzero: the next output is the close */
	const char *close_reason;
	bool closed; /* the close was taken */
};

struct session_hub {
	struct session_hub_config cfg;
	struct engine *engine;
	struct protocol_limits limits;
	struct session *head, *tail;
	char *frame; /* headroom + ENGINE_FRAME_CAP: updates, history */
	int64_t next_expiry_check_us;
	struct session_hub_stats st;
};

/* ------------------------------------------------------------------ hub */

struct session_hub *
session_hub_create(const struct session_hub_config *config)
{
	struct session_hub *hub = calloc(1, sizeof *hub);

	if (!hub)
		return NULL;
	hub->cfg = *config;
	hub->engine = pipeline_engine(config->pipeline);
	hub->limits.max_symbols = config->max_symbols;
	hub->limits.max_history_limit = HISTORY_LIMIT_MAX;
	hub->frame = malloc(config->headroom + ENGINE_FRAME_CAP);
	if (!hub->frame) {
		free(hub);
		return NULL;
	}
	return hub;
}

void
session_hub_destroy(struct session_hub *hub)
{
	if (!hub)
		return;
	free(hub->frame);
	free(hub);
}

void
session_hub_get_stats(const struct session_hub *hub,
                      struct session_hub_stats *out)
{
	*out = hub->st;
}

static void
hub_unlink(struct session_hub *hub, struct session *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		hub->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		hub->tail = s->prev;
	s->prev = s->next = NULL;
}

static void
hub_append(struct session_hub *hub, struct session *s)
{
	s->next = NULL;
	s->prev = hub->tail;
	if (hub->tail)
		hub->tail->next = s;
	else
		hub->head = s;
	hub->tail = s;
}

/* The session just wrote: it moves to the tail, so the head is always the
 * one that has been quiet longest (the next to owe a heartbeat). */
static void
session_wrote(struct session *s, int64_t now)
{
	s->last_write_us = now;
	if (s->hub->tail == s)
		return;
	hub_unlink(s->hub, s);
	hub_append(s->hub, s);
}

static void
observe_latency(struct session_hub *hub, int64_t us)
{
	double secs = (double)us / 1e6;
	size_t i;

	for (i = 0; i < SESSION_LATENCY_BUCKETS; i++)
		if (secs <= session_latency_buckets[i]) {
			hub->st.latency_le[i]++;
			break;
		}
	hub->st.latency_count++;
	hub->st.latency_sum += secs;
}

static void
count_error(struct session_hub *hub, const char *code)
{
	size_t i;

	for (i = 0; i < SESSION_ERROR_CODES; i++)
		if (!strcmp(code, session_error_codes[i]))
			break;
	hub->st.errors[i]++;
}

/* ------------------------------------------------------------- replies */

static void
want_write(struct session *s)
{
	s->t->want_write(s->conn);
}

static struct jsonbuf *
control_begin(struct session *s)
{
	struct control_msg *m = calloc(1, sizeof *m);

	if (!m)
		return NULL;
	jsonbuf_init(&m->buf, s->hub->cfg.headroom);
	if (s->ctl_tail)
		s->ctl_tail->next = m;
	else
		s->ctl_head = m;
	s->ctl_tail = m;
	s->ctl_count++;
	return &m->buf;
}

static void
control_free(struct control_msg *m)
{
	if (!m)
		return;
	jsonbuf_free(&m->buf);
	free(m);
}

/* Take the head of the queue; it is freed at the next take. */
static struct control_msg *
control_take(struct session *s)
{
	struct control_msg *m = s->ctl_head;

	s->ctl_head = m->next;
	if (!s->ctl_head)
		s->ctl_tail = NULL;
	s->ctl_count--;
	s->sent = m;
	return m;
}

static void
close_with(struct session *s, int status, const char *reason)
{
	if (!s->close_status) {
		s->close_status = status;
		s->close_reason = reason;
	}
	want_write(s);
}

/* A client that does not keep its side of the protocol: 1008, logged. */
static void
close_abusive(struct session *s, const char *reason)
{
	if (!s->close_status)
		log_limited(LOG_INFO, "conn %llu (%s): %s, closing with 1008",
		            (unsigned long long)s->id, s->peer, reason);
	close_with(s, SESSION_CLOSE_POLICY, reason);
}

/* A reply to fill in, queued; NULL when the client lets replies pile up
 * unread (it is then closed rather than buffered for) or out of memory. */
static struct jsonbuf *
reply_begin(struct session *s)
{
	if (s->ctl_count >= CONTROL_QUEUE_MAX) {
		close_abusive(s, "too many unread replies");
		return NULL;
	}
	want_write(s);
	return control_begin(s);
}

static void
send_error(struct session *s, const char *id, const char *code,
           const char *message)
{
	struct jsonbuf *b;

	count_error(s->hub, code);
	/* Client mistakes are the client's business, but an operator chasing
	 * one wants to see it: at debug level, and limited like all lines a
	 * peer can cause. */
	log_limited(LOG_DEBUG, "conn %llu (%s): error %s: %s",
	            (unsigned long long)s->id, s->peer, code, message);
	b = reply_begin(s);
	if (b)
		protocol_write_error(b, id, code, message);
}

/* ------------------------------------------------------------ requests */

static bool
resume_lookup(const char *symbol, uint64_t *seq, void *ctx)
{
	return request_resume_seq(ctx, symbol, seq);
}

/* True when this session may see symbol: always without tokens. */
static bool
entitled(const struct session *s, const char *symbol)
{
	return !s->hub->cfg.auth || auth_claims_allow(&s->claims, symbol);
}

/* The engine's wildcard filter (engine_client_set_filter). */
static bool
claims_allow(const char *symbol, void *ctx)
{
	return auth_claims_allow(ctx, symbol);
}

/* The token's patterns as one string: equal for tokens that grant the same
 * symbols (the patterns come sorted). NULL when out of memory, which makes
 * the filter the client's alone. */
static char *
claims_key(const struct auth_claims *c)
{
	size_t i, len = 1;
	char *key, *p;

	for (i = 0; i < c->pattern_count; i++)
		len += strlen(c->patterns[i]) + 1;
	key = malloc(len);
	if (!key)
		return NULL;
	for (p = key, i = 0; i < c->pattern_count; i++) {
		size_t n = strlen(c->patterns[i]);

		memcpy(p, c->patterns[i], n);
		p += n;
		*p++ = '\n';
	}
	*p = '\0';
	return key;
}

/*
 * Refuse a request naming symbols outside the entitlements. The refusal is
 * for the whole request: a subscribe that half happened would leave the
 * client to work out which half. The message names the first few
 * forbidden symbols so the user can act on it. Returns true when refused.
 */
static bool
refuse_forbidden(struct session *s, const struct request *req,
                 const char (*symbols)[TICK_SYMBOL_MAX + 1], size_t count)
{
	char msg[256];
	size_t i, bad = 0, len;

	len = (size_t)snprintf(msg, sizeof msg, "not entitled to");
	for (i = 0; i < count; i++) {
		if (!strcmp(symbols[i], "*") || entitled(s, symbols[i]))
			continue;
		if (bad < FORBIDDEN_NAMED && len < sizeof msg)
			len += (size_t)snprintf(msg + len, sizeof msg - len,
			                        "%s '%s'", bad ? "," : "",
			                        symbols[i]);
		bad++;
	}
	if (!bad)
		return false;
	if (bad > FORBIDDEN_NAMED && len < sizeof msg)
		len += (size_t)snprintf(msg + len, sizeof msg - len,
		                        " and %zu more", bad - FORBIDDEN_NAMED);
	if (len < sizeof msg && req->op == OP_SUBSCRIBE)
		snprintf(msg + len, sizeof msg - len,
		         "; nothing was subscribed");
	log_limited(LOG_INFO, "conn %llu (%s, sub '%s'): %s",
	            (unsigned long long)s->id, s->peer, s->claims.sub, msg);
	send_error(s, req->id, "forbidden", msg);
	return true;
}

/*
 * Refuse a subscribe that would go past a bound on symbols, as a whole,
 * like a forbidden one: nothing of it is subscribed. The bounds: the
 * symbols the session holds (max_symbols); of those, the ones with no data
 * yet (max_pending_symbols); and the symbols with no data in the engine,
 * every session's together (max_pending_symbols_total). A name with no
 * data costs a placeholder for as long as someone holds it, and anyone can
 * make names up: these bounds cap what that costs (README, Security), and
 * the session's bound, well below the total, keeps one client from taking
 * all of the room. A symbol with data never counts against them.
 * Returns true when refused.
 */
static bool
refuse_too_many(struct session *s, const struct request *req)
{
	const struct session_hub_config *cfg = &s->hub->cfg;
	struct engine_subscribe_cost cost;
	enum session_symbol_bound bound;
	size_t held = engine_client_subscription_count(s->client), now;
	char msg[300];

	engine_client_subscribe_cost(
	        s->client, (const char(*)[TICK_SYMBOL_MAX + 1]) req->symbols,
	        req->symbol_count, &cost);
	if (held + cost.added > cfg->max_symbols) {
		bound = SESSION_BOUND_SYMBOLS;
		snprintf(msg, sizeof msg,
		         "this subscribe would hold %zu symbols on the "
		         "connection; the limit is %zu (max-symbols); nothing "
		         "was subscribed",
		         held + cost.added, cfg->max_symbols);
	} else if (cost.pending && cfg->max_pending_symbols &&
	           (now = engine_client_pending_count(s->client)) +
	                           cost.pending >
	                   cfg->max_pending_symbols) {
		bound = SESSION_BOUND_PENDING;
		snprintf(msg, sizeof msg,
		         "this subscribe would hold %zu symbols that have no "
		         "data yet on the connection; the limit is %zu "
		         "(max-pending-symbols); nothing was subscribed",
		         now + cost.pending, cfg->max_pending_symbols);
	} else if (cost.placeholders && cfg->max_pending_symbols_total &&
	           (now = engine_pending_count(s->hub->engine)) +
	                           cost.placeholders >
	                   cfg->max_pending_symbols_total) {
		bound = SESSION_BOUND_PENDING_TOTAL;
		snprintf(msg, sizeof msg,
		         "this subscribe names %zu new symbols that have no "
		         "data yet, and the server holds %zu of its limit of "
		         "%zu such symbols (max-pending-symbols-total); "
		         "nothing was subscribed; symbols that have data can "
		         "still be subscribed to",
		         cost.placeholders, now,
		         cfg->max_pending_symbols_total);
		/* Unlike the other bounds, this one is everybody's: the
		 * operator should know it is reached. */
		log_limited(LOG_WARN,
		            "conn %llu (%s): subscribe refused: %zu symbols "
		            "with no data yet are held, the limit "
		            "(--max-pending-symbols-total %zu)",
		            (unsigned long long)s->id, s->peer, now,
		            cfg->max_pending_symbols_total);
	} else {
		return false;
	}
	s->hub->st.subscribes_refused[bound]++;
	send_error(s, req->id, "too_many_symbols", msg);
	return true;
}

static void
handle_subscribe(struct session *s, struct request *req)
{
	struct session_hub *hub = s->hub;
	bool resume =
	        req->has_resume &&
	        !strcmp(req->resume_epoch, pipeline_epoch(hub->cfg.pipeline));
	struct jsonbuf *b;

	if (refuse_forbidden(s, req,
	                     (const char(*)[TICK_SYMBOL_MAX + 1]) req->symbols,
	                     req->symbol_count))
		return;
	if (refuse_too_many(s, req))
		return;
	if (req->has_max_hz)
		engine_client_set_max_hz(s->client, req->max_hz);

	/* The reply is queued before any update can be: replies always leave
	 * before the engine's frames. */
	b = reply_begin(s);
	if (!b)
		return;
	protocol_write_subscribed(
	        b, req->id, (const char(*)[TICK_SYMBOL_MAX + 1]) req->symbols,
	        req->symbol_count);
	if (engine_client_subscribe_many(
	            s->client,
	            (const char(*)[TICK_SYMBOL_MAX + 1]) req->symbols,
	            req->symbol_count, resume ? resume_lookup : NULL,
	            req) == -2)
		send_error(s, req->id, "internal",
		           "out of memory while subscribing");
}

static void
handle_unsubscribe(struct session *s, struct request *req)
{
	struct jsonbuf *b;

	if (engine_client_unsubscribe_many(s->client,
	                                   (const char(*)[TICK_SYMBOL_MAX + 1])
	                                           req->symbols,
	                                   req->symbol_count) == -2) {
		send_error(s, req->id, "internal",
		           "out of memory while unsubscribing");
		return;
	}
	b = reply_begin(s);
	if (b)
		protocol_write_unsubscribed(b, req->id,
		                            (const char(*)[TICK_SYMBOL_MAX + 1])
		                                    req->symbols,
		                            req->symbol_count);
}

struct symbol_list {
	struct symbol_entry {
		char symbol[TICK_SYMBOL_MAX + 1];
		uint64_t seq;
	} * v;
	size_t n, cap;
	bool failed;
	const struct auth_claims *claims; /* NULL: every symbol */
};

static void
collect_symbol(const struct symbol_state *st, void *ctx)
{
	struct symbol_list *l = ctx;

	/* A symbol the token does not grant is not even named: its name
	 * and activity are part of what is licensed. */
	if (l->claims && !auth_claims_allow(l->claims, st->symbol))
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		struct symbol_entry *v = realloc(l->v, cap * sizeof *v);

		if (!v) {
			l->failed = true;
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	memcpy(l->v[l->n].symbol, st->symbol, sizeof st->symbol);
	l->v[l->n++].seq = st->seq;
}

static int
compare_symbol_entry(const void *a, const void *b)
{
	return strcmp(((const struct symbol_entry *)a)->symbol,
	              ((const struct symbol_entry *)b)->symbol);
}

static void
handle_symbols(struct session *s, struct request *req)
{
	struct symbol_list l = {0};
	struct jsonbuf *b;
	size_t i;

	if (s->hub->cfg.auth)
		l.claims = &s->claims;
	engine_foreach_symbol(s->hub->engine, collect_symbol, &l);
	if (l.failed) {
		free(l.v);
		send_error(s, req->id, "internal",
		           "out of memory while listing symbols");
		return;
	}
	if (l.n) /* l.v is NULL when nothing was collected */
		qsort(l.v, l.n, sizeof *l.v, compare_symbol_entry);
	b = reply_begin(s);
	if (b) {
		protocol_write_symbols_begin(b, req->id);
		for (i = 0; i < l.n; i++)
			protocol_write_symbols_entry(
			        b, i == 0, l.v[i].symbol, l.v[i].seq,
			        trading_sessions_zone(s->hub->cfg.sessions,
			                              l.v[i].symbol));
		protocol_write_symbols_end(b);
	}
	free(l.v);
}

static void
write_replay_state(struct session_hub *hub, struct jsonbuf *b, const char *id)
{
	struct feed_status fs;
	struct replay_state rs;

	feed_get_status(pipeline_feed(hub->cfg.pipeline), &fs);
	memset(&rs, 0, sizeof rs);
	rs.state = fs.replay_state ? fs.replay_state : "finished";
	rs.speed = fs.speed;
	rs.position = fs.position_ts;
	rs.start = fs.first_ts;
	rs.end = fs.last_ts;
	rs.seek_to = fs.seek_ts;
	rs.passes = fs.passes;
	protocol_write_replay_state(b, id, &rs);
}

/*
 * Steer the replay feed. The one who asked gets the new state as the reply;
 * every other session gets it too (without an id), so all their controls
 * show the same thing.
 */
static void
handle_replay(struct session *s, struct request *req)
{
	static const enum feed_command_kind kinds[] = {
	        [REPLAY_PAUSE] = FEED_CMD_PAUSE,
	        [REPLAY_RESUME] = FEED_CMD_RESUME,
	        [REPLAY_SPEED] = FEED_CMD_SPEED,
	        [REPLAY_SEEK] = FEED_CMD_SEEK,
	};
	struct session_hub *hub = s->hub;
	struct feed *feed = pipeline_feed(hub->cfg.pipeline);
	struct session *other;
	struct feed_command cmd;
	struct jsonbuf *b;
	char err[200];

	if (!feed || !hub->cfg.feed_kind ||
	    strcmp(hub->cfg.feed_kind, "replay")) {
		snprintf(err, sizeof err,
		         "replay control needs a replay feed; this server "
		         "runs '%s'",
		         hub->cfg.feed_kind ? hub->cfg.feed_kind : "none");
		send_error(s, req->id, "bad_request", err);
		return;
	}
	/* Steering the feed changes what every client sees: with tokens,
	 * only one that grants every symbol may do it. */
	if (req->action != REPLAY_STATUS && hub->cfg.auth &&
	    !s->claims.allow_all) {
		send_error(s, req->id, "forbidden",
		           "replay control needs a token that grants \"*\"; "
		           "yours may only ask for the status");
		return;
	}
	if (req->action != REPLAY_STATUS) {
		memset(&cmd, 0, sizeof cmd);
		cmd.kind = kinds[req->action];
		cmd.speed = req->speed;
		cmd.ts = req->seek_ts;
		if (feed_control(feed, &cmd, err, sizeof err)) {
			send_error(s, req->id, "bad_request", err);
			return;
		}
	}
	b = reply_begin(s);
	if (b)
		write_replay_state(hub, b, req->id);
	if (req->action == REPLAY_STATUS)
		return;
	for (other = hub->head; other; other = other->next) {
		if (other == s || other->ctl_count >= CONTROL_QUEUE_MAX)
			continue;
		b = reply_begin(other);
		if (b)
			write_replay_state(hub, b, "");
	}
}

/* Copy the request's query into a job spec. */
static void
history_spec(const struct request *req, struct query_spec *q)
{
	memset(q, 0, sizeof *q);
	q->kind = QUERY_HISTORY;
	memcpy(q->id, req->id, sizeof q->id);
	memcpy(q->symbols[0], req->symbols[0], sizeof q->symbols[0]);
	q->symbol_count = 1;
	q->from = req->from;
	q->to = req->to ? req->to : INT64_MAX;
	q->limit = req->limit;
	if (!req->from && !req->to && !req->limit)
		q->limit = HISTORY_DEFAULT_LIMIT;
	q->interval_us = req->interval_us;
	memcpy(q->interval, req->interval, sizeof q->interval);
}

static void
handle_history(struct session *s, struct request *req)
{
	struct session_hub *hub = s->hub;
	struct sink_status ss;
	bool detached = false;
	struct query_spec q;
	struct query_job *j;
	char msg[200];

	if (!hub->cfg.queries) {
		send_error(s, req->id, "unavailable",
		           "history is served from the SQLite store, and this "
		           "server runs without one (--db none)");
		return;
	}
	/* An edge whose ingest moved to a new epoch: its store holds the
	 * old life of the data. */
	if (!pipeline_sink_status(hub->cfg.pipeline, "store", &ss, &detached) &&
	    detached) {
		send_error(s, req->id, "unavailable", ss.reason);
		return;
	}
	if (s->job_count == HISTORY_IN_FLIGHT) {
		snprintf(msg, sizeof msg,
		         "%d history requests are already in flight on this "
		         "connection; wait for a reply before asking again",
		         HISTORY_IN_FLIGHT);
		send_error(s, req->id, "rate_limited", msg);
		return;
	}
	if (req->to && req->from > req->to) {
		send_error(s, req->id, "bad_request",
		           "history \"from\" is after \"to\"");
		return;
	}
	if (refuse_forbidden(s, req,
	                     (const char(*)[TICK_SYMBOL_MAX + 1]) req->symbols,
	                     1))
		return;
	history_spec(req, &q);
	query_spec_end_at(&q, pipeline_history_end(hub->cfg.pipeline));
	j = query_submit(hub->cfg.queries, &q, &s->owner);
	if (!j) {
		send_error(s, req->id, "internal",
		           "out of memory while queueing history");
		return;
	}
	memcpy(s->job_ids[s->job_count], req->id, sizeof s->job_ids[0]);
	s->jobs[s->job_count++] = j;
}

static void
history_pop(struct session *s)
{
	query_job_release(s->jobs[0]);
	memmove(s->jobs, s->jobs + 1, (s->job_count - 1) * sizeof s->jobs[0]);
	memmove(s->job_ids, s->job_ids + 1,
	        (s->job_count - 1) * sizeof s->job_ids[0]);
	s->job_count--;
	s->job_started = false;
}

static void
handle_request(struct session *s, struct request *req)
{
	struct jsonbuf *b;

	switch (req->op) {
	case OP_SUBSCRIBE:
		handle_subscribe(s, req);
		break;
	case OP_UNSUBSCRIBE:
		handle_unsubscribe(s, req);
		break;
	case OP_SYMBOLS:
		handle_symbols(s, req);
		break;
	case OP_PING:
		b = reply_begin(s);
		if (b)
			protocol_write_pong(b, req->id, clock_wall_us());
		break;
	case OP_HISTORY:
		handle_history(s, req);
		break;
	case OP_REPLAY:
		handle_replay(s, req);
		break;
	}
}

/* Token bucket: ops_per_sec refill, ops_burst capacity. */
static bool
rate_allow(struct session *s, int64_t now)
{
	const struct session_hub_config *c = &s->hub->cfg;

	s->tokens += (double)(now - s->tokens_at_us) * c->ops_per_sec / 1e6;
	if (s->tokens > c->ops_burst)
		s->tokens = c->ops_burst;
	s->tokens_at_us = now;
	if (s->tokens < 1.0)
		return false;
	s->tokens -= 1.0;
	return true;
}

void
session_receive(struct session *s, const char *data, size_t len, bool binary)
{
	struct session_hub *hub = s->hub;
	struct protocol_error err;
	struct request req;
	char msg[160];

	if (s->close_status)
		return;
	if (binary) {
		send_error(s, "", "bad_request",
		           "binary frames are not part of the protocol; send "
		           "JSON as text frames");
		return;
	}
	if (!rate_allow(s, clock_wall_us())) {
		/* Refusals that keep coming with no pause are abuse: a
		 * client that backs off after a few errors is not. */
		if (++s->refused_in_row > (unsigned)hub->cfg.ops_burst) {
			close_abusive(s, "inbound message rate limit exceeded");
			return;
		}
		snprintf(msg, sizeof msg,
		         "more than %g messages per second (burst %g); this "
		         "message was dropped, slow down",
		         hub->cfg.ops_per_sec, hub->cfg.ops_burst);
		/* Parsed only to echo its id: the reply must name the
		 * request it refuses. */
		if (protocol_parse(data, len, &hub->limits, &req, &err)) {
			send_error(s, err.id, "rate_limited", msg);
		} else {
			send_error(s, req.id, "rate_limited", msg);
			request_free(&req);
		}
		return;
	}
	s->refused_in_row = 0;

	if (protocol_parse(data, len, &hub->limits, &req, &err)) {
		send_error(s, err.id, err.code, err.message);
		return;
	}
	handle_request(s, &req);
	request_free(&req);
}

/* ------------------------------------------------------------- output */

void
session_updates_ready(void *user, void *ctx)
{
	struct session *s = user;

	(void)ctx;
	/* That moment starts the latency the histogram measures. */
	if (!s->ready_since_us) {
		struct pipeline_stats ps;

		pipeline_get_stats(s->hub->cfg.pipeline, &ps);
		s->ready_since_us =
		        ps.flush_mono_us ? ps.flush_mono_us : clock_mono_us();
	}
	want_write(s);
}

/* A history job has output (query.h's query_owner). */
static void
query_ready(struct query_owner *o)
{
	want_write((struct session *)o);
}

/*
 * The next piece of the head history reply: true with it in out, false
 * when it has nothing yet (the query wake brings the transport back) or
 * it failed before a byte went out (an error reply is then queued).
 */
static bool
take_history(struct session *s, struct session_output *out)
{
	struct session_hub *hub = s->hub;
	struct query_job *j = s->jobs[0];
	char *buf = hub->frame + hub->cfg.headroom;
	const char *failed;
	bool done;
	size_t n;

	n = query_job_read(j, buf, ENGINE_FRAME_CAP, &done);
	if (!n && !done)
		return false;
	failed = done ? query_job_error(j) : NULL;
	if (failed && !s->job_started) {
		char msg[256], id[PROTOCOL_ID_MAX + 1];
		struct jsonbuf *b;

		snprintf(msg, sizeof msg, "history failed: %s", failed);
		memcpy(id, s->job_ids[0], sizeof id);
		history_pop(s);
		count_error(hub, "internal");
		b = control_begin(s);
		if (b)
			protocol_write_error(b, id, "internal", msg);
		return false;
	}
	out->kind = SESSION_OUT_PART;
	out->data = buf;
	out->len = n;
	out->first = !s->job_started;
	out->last = done;
	s->job_started = true;
	if (done)
		history_pop(s);
	return true;
}

/* The control message at the head of the queue, as the output (it is
 * s->sent until the next call). False, and nothing to send, when building
 * it ran out of memory. */
static bool
take_control(struct session *s, struct session_output *out)
{
	struct control_msg *m = control_take(s);

	if (jsonbuf_failed(&m->buf))
		return false;
	out->kind = SESSION_OUT_MESSAGE;
	out->data = (char *)jsonbuf_data(&m->buf);
	out->len = m->buf.len;
	return true;
}

static bool
take_updates(struct session *s, int64_t now, struct session_output *out)
{
	int64_t next_due = 0;
	const char *frame;
	size_t n;

	n = engine_client_frame(s->client, now, s->hub->frame, &frame,
	                        &next_due);
	/* Updates held back by max_hz: the transport wakes us then. Asked
	 * every time, even for the time asked before: this call may be the
	 * wake itself, come early (see wake_at in session.h). */
	s->wake_due_us = next_due;
	if (next_due)
		s->t->wake_at(s->conn, next_due);
	if (!n) {
		s->ready_since_us = 0;
		return false;
	}
	out->kind = SESSION_OUT_UPDATES;
	out->data = (char *)frame;
	out->len = n;
	out->frame_id = engine_client_frame_id(s->client);
	if (s->ready_since_us)
		observe_latency(s->hub, clock_mono_us() - s->ready_since_us);
	/* Updates that did not fit the frame have waited since
	 * ready_since_us as well, so it stays for the next frame. Updates
	 * held back by max_hz are a delay the client asked for: they are not
	 * measured. */
	if (!engine_client_has_pending(s->client) || next_due)
		s->ready_since_us = 0;
	return true;
}

bool
session_take_output(struct session *s, int64_t now, struct session_output *out)
{
	struct session_hub *hub = s->hub;
	bool taken = false;

	memset(out, 0, sizeof *out);
	control_free(s->sent);
	s->sent = NULL;
	if (s->closed)
		return false;
	/* Replies queued before a close go out before it: a seek that began
	 * a new epoch is answered, then closed with 1012. Not to a client
	 * closed for leaving its replies unread (1008), and never inside a
	 * history reply begun (only the close may cut into one). */
	if (s->close_status && s->ctl_head && !s->job_started &&
	    s->close_status != SESSION_CLOSE_POLICY && take_control(s, out)) {
		session_wrote(s, now);
		out->more = true;
		return true;
	}
	if (s->close_status) {
		out->kind = SESSION_OUT_CLOSE;
		out->close_status = s->close_status;
		out->close_reason = s->close_reason;
		s->closed = true;
		return true;
	}
	if (s->job_count && (s->job_started || !s->ctl_head))
		taken = take_history(s, out);
	/* A history reply begun goes out whole before anything else: a
	 * fragmented message cannot be interleaved with other frames. */
	if (!taken && s->job_count && s->job_started)
		return false;
	if (!taken && s->ctl_head)
		taken = take_control(s, out);
	if (!taken)
		taken = take_updates(s, now, out);
	if (!taken &&
	    now - s->last_write_us >= (int64_t)hub->cfg.heartbeat_ms * 1000) {
		struct jsonbuf *b = control_begin(s);

		if (b) {
			protocol_write_heartbeat(b, now);
			taken = take_control(s, out);
		}
	}
	if (!taken)
		return false;
	session_wrote(s, now);
	/* With history jobs left, the next may have finished while another
	 * was at the head (its news came then): look again. */
	out->more = s->close_status || s->ctl_head || s->job_count ||
	            (engine_client_has_pending(s->client) && !s->wake_due_us);
	return true;
}

/* ------------------------------------------------------------ lifetime */

struct session *
session_open(struct session_hub *hub, const struct session_transport *t,
             void *conn, uint64_t id, const char *peer,
             struct auth_claims *claims)
{
	struct session *s = calloc(1, sizeof *s);
	struct jsonbuf *b;

	if (!s) {
		auth_claims_free(claims);
		return NULL;
	}
	s->owner.ready = query_ready;
	s->hub = hub;
	s->t = t;
	s->conn = conn;
	s->id = id;
	snprintf(s->peer, sizeof s->peer, "%s", peer);
	s->claims = *claims;
	memset(claims, 0, sizeof *claims);
	s->tokens = hub->cfg.ops_burst;
	s->tokens_at_us = clock_wall_us();
	s->last_write_us = s->tokens_at_us;
	s->client = engine_client_create(hub->engine, s);
	if (!s->client) {
		auth_claims_free(&s->claims);
		free(s);
		return NULL;
	}
	/* A wildcard picks up only the symbols the token grants; clients
	 * whose tokens grant the same may share a group. */
	if (hub->cfg.auth && !s->claims.allow_all) {
		char *key = claims_key(&s->claims);

		engine_client_set_filter(s->client, claims_allow, &s->claims,
		                         key);
		free(key);
	}
	hub_append(hub, s);
	hub->st.sessions++;
	hub->st.opened++;
	b = control_begin(s);
	if (b)
		protocol_write_hello(
		        b, pipeline_epoch(hub->cfg.pipeline),
		        hub->cfg.server_name, hub->cfg.heartbeat_ms,
		        hub->cfg.feed_kind ? hub->cfg.feed_kind : "none");
	want_write(s);
	return s;
}

void
session_close(struct session *s)
{
	struct session_hub *hub;

	if (!s)
		return;
	hub = s->hub;
	hub_unlink(hub, s);
	hub->st.sessions--;
	/* The engine client goes first: its filter reads the claims. */
	engine_client_destroy(s->client);
	auth_claims_free(&s->claims);
	control_free(s->sent);
	while (s->ctl_head)
		control_free(control_take(s));
	s->sent = NULL;
	while (s->job_count)
		history_pop(s);
	free(s);
}

void
session_end(struct session *s, int status, const char *reason)
{
	close_with(s, status, reason);
}

void
session_hub_close_all(struct session_hub *hub, int status, const char *reason)
{
	struct session *s;

	for (s = hub->head; s; s = s->next)
		close_with(s, status, reason);
}

/*
 * A token ran out while its session was open: close with 4001 so the
 * client knows to fetch a new one and reconnect, rather than retry as
 * after a network error.
 */
static void
expire(struct session *s)
{
	if (s->close_status)
		return;
	s->hub->st.tokens_expired++;
	log_limited(LOG_INFO,
	            "conn %llu (%s, sub '%s'): token expired, "
	            "closing with 4001",
	            (unsigned long long)s->id, s->peer, s->claims.sub);
	close_with(s, SESSION_CLOSE_TOKEN_EXPIRED, "token expired");
}

void
session_hub_housekeeping(struct session_hub *hub, int64_t now)
{
	int64_t idle = (int64_t)hub->cfg.heartbeat_ms * 1000;
	struct session *s;

	for (s = hub->head; s && now - s->last_write_us >= idle; s = s->next)
		want_write(s);
	if (hub->cfg.auth && now >= hub->next_expiry_check_us) {
		hub->next_expiry_check_us = now + EXPIRY_CHECK_US;
		for (s = hub->head; s; s = s->next)
			if (auth_claims_expired(&s->claims, now))
				expire(s);
	}
}

uint64_t
session_id(const struct session *s)
{
	return s->id;
}

const char *
session_peer(const struct session *s)
{
	return s->peer;
}

struct engine_client *
session_engine_client(const struct session *s)
{
	return s->client;
}

/*
 * server.c: libwebsockets 4.1.6 glue for the publisher.
 *
 * One service thread does everything here: HTTP for the dashboard files, the
 * /ws protocol, draining the tick queue into the engine, and writing frames.
 * The feed threads only push into the tick_queue and call server_wake(),
 * which is lws_cancel_service(): the loop then gets
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED and drains the queue.
 *
 * Writes follow the lws rule of one lws_write() per SERVER_WRITEABLE: control
 * replies (hello, subscribed, errors, pongs) go first, in order, then one
 * batch frame of conflated updates from the engine. All batch frames are
 * built in one buffer owned by the server; lws copies whatever the kernel
 * does not take at once, so a stalled client holds at most one frame.
 */
#define _GNU_SOURCE /* vasprintf, open_memstream */
#include "server.h"

#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "cli.h"
#include "feed.h"
#include "jsonbuf.h"
#include "log.h"
#include "protocol.h"
#include "query.h"
#include "store.h"

/* Largest batch frame. Big enough for a full refresh of hundreds of symbols
 * in one write; small enough that a stalled client's leftover is cheap. */
#define FRAME_CAP (128 * 1024)
/* Ticks moved from the queue per drain before the loop gets to write. */
#define DRAIN_BUDGET 65536
/* Replies a client may leave unread before it is dropped (1008). */
#define CONTROL_QUEUE_MAX 256
/* How often idle connections are checked for a due heartbeat. */
#define HOUSEKEEPING_US (100 * LWS_US_PER_MS)
/* How long shutdown waits for close frames to go out. */
#define SHUTDOWN_GRACE_US (1000 * LWS_US_PER_MS)
/* History requests a connection may have in flight; replies keep order. */
#define HISTORY_IN_FLIGHT 4
/* An HTTP client that takes nothing for this long is dropped. */
#define HTTP_STALL_SECS 60
/* When the store has no room, look again after this long. */
#define STORE_RETRY_US (10 * LWS_US_PER_MS)
/* Ticks a history request returns when it names neither a range nor a limit. */
#define HISTORY_DEFAULT_LIMIT 1000

/* One queued control message (hello, replies, errors, heartbeat). */
struct control_msg {
	struct control_msg *next;
	struct jsonbuf buf; /* headroom LWS_PRE */
};

/* Per WebSocket connection. lws zeroes it before ESTABLISHED. */
struct per_session_data__md {
	struct per_session_data__md *next; /* server's list of sessions */
	struct lws *wsi;
	struct server *server;
	struct engine_client *client;
	uint64_t id; /* connection id for logs */

	struct control_msg *ctl_head, *ctl_tail;
	unsigned ctl_count;

	/* inbound message being reassembled from fragments */
	char *rx;
	size_t rx_len, rx_cap;
	bool rx_binary;

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
	int64_t timer_due_us; /* max_hz timer armed for this time, 0 = none */
	int close_status;     /* nonzero: close with this status on next write */
	const char *close_reason;
};

/* Per HTTP request on the API mounts (/api/…, /metrics, /healthz). */
struct per_session_data__http {
	struct per_session_data__http *next; /* server's list of exports */
	struct lws *wsi;
	struct query_job *job;
	char *body; /* a small answer built at once (metrics, healthz) */
	size_t body_len, body_sent;
	bool listed;
};

struct server {
	struct lws_context *context;
	struct lws_vhost *vhost;
	const struct serve_options *opt;
	struct server_parts parts;
	struct engine *engine;
	struct tick_queue *queue;
	char epoch[PROTOCOL_EPOCH_MAX + 1];
	char web_dir[PATH_MAX];
	int port;

	struct lws_protocols protocols[3];
	struct lws_http_mount mount, mount_api, mount_metrics, mount_health;
	lws_sorted_usec_list_t store_retry;
	struct per_session_data__http *http_sessions;
	lws_retry_bo_t retry;
	lws_sorted_usec_list_t housekeeping;

	struct per_session_data__md *sessions;
	uint64_t next_conn_id;
	struct protocol_limits limits;

	struct tick *drain; /* DRAIN_BUDGET ticks */
	uint64_t ticks_not_stored; /* served while the store was failing */
	char *frame;	    /* LWS_PRE + FRAME_CAP */

	volatile sig_atomic_t stop_requested;
	bool stopping;
	int64_t stop_deadline_us;
};

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
engine_client_ready(void *user, void *ctx)
{
	struct per_session_data__md *pss = user;

	lws_callback_on_writable(pss->wsi);
}

struct engine_config
server_engine_config(void)
{
	struct engine_config c = {.client_ready = engine_client_ready};

	return c;
}

/* ------------------------------------------------------- control messages */

static struct jsonbuf *
control_begin(struct per_session_data__md *pss)
{
	struct control_msg *m = calloc(1, sizeof *m);

	if (!m)
		return NULL;
	jsonbuf_init(&m->buf, LWS_PRE);
	if (pss->ctl_tail)
		pss->ctl_tail->next = m;
	else
		pss->ctl_head = m;
	pss->ctl_tail = m;
	pss->ctl_count++;
	return &m->buf;
}

static void
control_pop(struct per_session_data__md *pss)
{
	struct control_msg *m = pss->ctl_head;

	pss->ctl_head = m->next;
	if (!pss->ctl_head)
		pss->ctl_tail = NULL;
	pss->ctl_count--;
	jsonbuf_free(&m->buf);
	free(m);
}

static void
close_with(struct per_session_data__md *pss, int status, const char *reason)
{
	if (!pss->close_status) {
		pss->close_status = status;
		pss->close_reason = reason;
	}
	lws_callback_on_writable(pss->wsi);
}

/* Queue an error reply. A client that lets replies pile up unread is not
 * keeping its side of the protocol: it is closed rather than buffered for. */
static void
send_error(struct per_session_data__md *pss, const char *id, const char *code,
	   const char *message)
{
	struct jsonbuf *b;

	if (pss->ctl_count >= CONTROL_QUEUE_MAX) {
		close_with(pss, LWS_CLOSE_STATUS_POLICY_VIOLATION,
			   "too many unread replies");
		return;
	}
	b = control_begin(pss);
	if (!b)
		return;
	protocol_write_error(b, id, code, message);
	lws_callback_on_writable(pss->wsi);
}

static struct jsonbuf *
reply_begin(struct per_session_data__md *pss)
{
	if (pss->ctl_count >= CONTROL_QUEUE_MAX) {
		close_with(pss, LWS_CLOSE_STATUS_POLICY_VIOLATION,
			   "too many unread replies");
		return NULL;
	}
	lws_callback_on_writable(pss->wsi);
	return control_begin(pss);
}

/* --------------------------------------------------------------- requests */

static bool
resume_lookup(const char *symbol, uint64_t *seq, void *ctx)
{
	return request_resume_seq(ctx, symbol, seq);
}

static void
handle_subscribe(struct per_session_data__md *pss, struct request *req)
{
	struct server *s = pss->server;
	bool resume = req->has_resume && !strcmp(req->resume_epoch, s->epoch);
	size_t adding = 0, i;
	char msg[160];
	struct jsonbuf *b;

	for (i = 0; i < req->symbol_count; i++)
		if (!engine_client_is_subscribed(pss->client, req->symbols[i]))
			adding++;
	if (engine_client_subscription_count(pss->client) + adding >
	    s->opt->max_symbols) {
		snprintf(msg, sizeof msg,
			 "this subscribe would hold %zu symbols on the "
			 "connection; the limit is %zu",
			 engine_client_subscription_count(pss->client) + adding,
			 s->opt->max_symbols);
		send_error(pss, req->id, "too_many_symbols", msg);
		return;
	}
	if (req->has_max_hz)
		engine_client_set_max_hz(pss->client, req->max_hz);

	/* The reply is queued before any update can be: control messages
	 * always leave before the engine's batch frames. */
	b = reply_begin(pss);
	if (!b)
		return;
	protocol_write_subscribed(b, req->id,
				  (const char(*)[TICK_SYMBOL_MAX + 1])req->symbols,
				  req->symbol_count);

	for (i = 0; i < req->symbol_count; i++) {
		const char *sym = req->symbols[i];
		uint64_t seq = 0;
		int rc;

		bool have_seq;

		if (!strcmp(sym, "*")) {
			rc = engine_client_subscribe_all(
				pss->client, resume ? resume_lookup : NULL, req);
		} else {
			/* Look the seq up first: argument evaluation order is
			 * unspecified, so it cannot happen in the call. */
			have_seq = resume && request_resume_seq(req, sym, &seq);
			rc = engine_client_subscribe(pss->client, sym, have_seq,
						     seq);
		}
		if (rc == -2) {
			send_error(pss, req->id, "internal",
				   "out of memory while subscribing");
			return;
		}
	}
}

static void
handle_unsubscribe(struct per_session_data__md *pss, struct request *req)
{
	struct jsonbuf *b;
	size_t i;

	for (i = 0; i < req->symbol_count; i++)
		engine_client_unsubscribe(pss->client, req->symbols[i]);
	b = reply_begin(pss);
	if (b)
		protocol_write_unsubscribed(
			b, req->id,
			(const char(*)[TICK_SYMBOL_MAX + 1])req->symbols,
			req->symbol_count);
}

struct symbol_list {
	struct symbol_entry {
		char symbol[TICK_SYMBOL_MAX + 1];
		uint64_t seq;
	} *v;
	size_t n, cap;
	bool failed;
};

static void
collect_symbol(const struct symbol_state *st, void *ctx)
{
	struct symbol_list *l = ctx;

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
handle_symbols(struct per_session_data__md *pss, struct request *req)
{
	struct symbol_list l = {0};
	struct jsonbuf *b;
	size_t i;

	engine_foreach_symbol(pss->server->engine, collect_symbol, &l);
	if (l.failed) {
		free(l.v);
		send_error(pss, req->id, "internal",
			   "out of memory while listing symbols");
		return;
	}
	qsort(l.v, l.n, sizeof *l.v, compare_symbol_entry);
	b = reply_begin(pss);
	if (b) {
		protocol_write_symbols_begin(b, req->id);
		for (i = 0; i < l.n; i++)
			protocol_write_symbols_entry(b, i == 0, l.v[i].symbol,
						     l.v[i].seq);
		protocol_write_symbols_end(b);
	}
	free(l.v);
}

static void
write_replay_state(struct server *s, struct jsonbuf *b, const char *id)
{
	struct feed_status fs;
	struct replay_state rs;

	feed_get_status(s->parts.feed, &fs);
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
 * every other dashboard gets it too (without an id), so all their controls
 * show the same thing.
 */
static void
handle_replay(struct per_session_data__md *pss, struct request *req)
{
	static const enum feed_command_kind kinds[] = {
		[REPLAY_PAUSE] = FEED_CMD_PAUSE,
		[REPLAY_RESUME] = FEED_CMD_RESUME,
		[REPLAY_SPEED] = FEED_CMD_SPEED,
		[REPLAY_SEEK] = FEED_CMD_SEEK,
	};
	struct server *s = pss->server;
	struct per_session_data__md *other;
	struct feed_command cmd;
	struct jsonbuf *b;
	char err[200];

	if (!s->parts.feed || !s->parts.feed_kind ||
	    strcmp(s->parts.feed_kind, "replay")) {
		snprintf(err, sizeof err,
			 "replay control needs a replay feed; this server "
			 "runs '%s'",
			 s->parts.feed_kind ? s->parts.feed_kind : "none");
		send_error(pss, req->id, "bad_request", err);
		return;
	}
	if (req->action != REPLAY_STATUS) {
		memset(&cmd, 0, sizeof cmd);
		cmd.kind = kinds[req->action];
		cmd.speed = req->speed;
		cmd.ts = req->seek_ts;
		if (feed_control(s->parts.feed, &cmd, err, sizeof err)) {
			send_error(pss, req->id, "bad_request", err);
			return;
		}
	}
	b = reply_begin(pss);
	if (b)
		write_replay_state(s, b, req->id);
	if (req->action == REPLAY_STATUS)
		return;
	for (other = s->sessions; other; other = other->next) {
		if (other == pss || other->ctl_count >= CONTROL_QUEUE_MAX)
			continue;
		b = reply_begin(other);
		if (b)
			write_replay_state(s, b, "");
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
handle_history(struct per_session_data__md *pss, struct request *req)
{
	struct server *s = pss->server;
	struct query_spec q;
	struct query_job *j;
	char msg[200];

	if (!s->parts.queries) {
		send_error(pss, req->id, "unavailable",
			   "history is served from the SQLite store, and this "
			   "server runs without one (--db none)");
		return;
	}
	if (pss->job_count == HISTORY_IN_FLIGHT) {
		snprintf(msg, sizeof msg,
			 "%d history requests are already in flight on this "
			 "connection; wait for a reply before asking again",
			 HISTORY_IN_FLIGHT);
		send_error(pss, req->id, "rate_limited", msg);
		return;
	}
	if (req->to && req->from > req->to) {
		send_error(pss, req->id, "bad_request",
			   "history \"from\" is after \"to\"");
		return;
	}
	history_spec(req, &q);
	j = query_submit(s->parts.queries, &q);
	if (!j) {
		send_error(pss, req->id, "internal",
			   "out of memory while queueing history");
		return;
	}
	memcpy(pss->job_ids[pss->job_count], req->id, sizeof pss->job_ids[0]);
	pss->jobs[pss->job_count++] = j;
}

static void
history_pop(struct per_session_data__md *pss)
{
	query_job_release(pss->jobs[0]);
	memmove(pss->jobs, pss->jobs + 1,
		(pss->job_count - 1) * sizeof pss->jobs[0]);
	memmove(pss->job_ids, pss->job_ids + 1,
		(pss->job_count - 1) * sizeof pss->job_ids[0]);
	pss->job_count--;
	pss->job_started = false;
}

static void
handle_request(struct per_session_data__md *pss, struct request *req)
{
	struct jsonbuf *b;

	switch (req->op) {
	case OP_SUBSCRIBE:
		handle_subscribe(pss, req);
		break;
	case OP_UNSUBSCRIBE:
		handle_unsubscribe(pss, req);
		break;
	case OP_SYMBOLS:
		handle_symbols(pss, req);
		break;
	case OP_PING:
		b = reply_begin(pss);
		if (b)
			protocol_write_pong(b, req->id, now_us());
		break;
	case OP_HISTORY:
		handle_history(pss, req);
		break;
	case OP_REPLAY:
		handle_replay(pss, req);
		break;
	}
}

/* Token bucket: ops_per_sec refill, ops_burst capacity. */
static bool
rate_allow(struct per_session_data__md *pss, int64_t now)
{
	const struct serve_options *o = pss->server->opt;

	pss->tokens += (double)(now - pss->tokens_at_us) * o->ops_per_sec / 1e6;
	if (pss->tokens > o->ops_burst)
		pss->tokens = o->ops_burst;
	pss->tokens_at_us = now;
	if (pss->tokens < 1.0)
		return false;
	pss->tokens -= 1.0;
	return true;
}

static void
handle_message(struct per_session_data__md *pss, const char *text, size_t len)
{
	struct server *s = pss->server;
	struct protocol_error err;
	struct request req;
	char msg[160];

	if (!rate_allow(pss, now_us())) {
		/* Refusals that keep coming with no pause are abuse: a
		 * client that backs off after a few errors is not. */
		if (++pss->refused_in_row > (unsigned)s->opt->ops_burst) {
			close_with(pss, LWS_CLOSE_STATUS_POLICY_VIOLATION,
				   "inbound message rate limit exceeded");
			return;
		}
		snprintf(msg, sizeof msg,
			 "more than %g messages per second (burst %g); this "
			 "message was dropped, slow down",
			 s->opt->ops_per_sec, s->opt->ops_burst);
		/* Parsed only to echo its id: the reply must name the
		 * request it refuses. */
		if (protocol_parse(text, len, &s->limits, &req, &err)) {
			send_error(pss, err.id, "rate_limited", msg);
		} else {
			send_error(pss, req.id, "rate_limited", msg);
			request_free(&req);
		}
		return;
	}
	pss->refused_in_row = 0;

	if (protocol_parse(text, len, &s->limits, &req, &err)) {
		send_error(pss, err.id, err.code, err.message);
		return;
	}
	handle_request(pss, &req);
	request_free(&req);
}

/* ------------------------------------------------------------ the drain */

static void
store_retry(lws_sorted_usec_list_t *sul)
{
	struct server *s = lws_container_of(sul, struct server, store_retry);

	lws_cancel_service(s->context);
}

/*
 * Move ticks from the feed's queue into the engine, and the applied ones
 * (with their seqs) on to the store. The store's free space caps the
 * drain: when the disk falls behind, ticks stay in the feed queue, the
 * queue fills and the feed slows down. Nothing is dropped, and the service
 * thread never waits on the disk.
 *
 * A store that is failing (disk full, read-only file) is different: it may
 * not recover for hours, and the live stream must go on meanwhile. Its
 * queue is full; ticks then go to clients without being stored, and are
 * counted. The store logs the cause and resumes by itself.
 */
static void
drain_queue(struct server *s)
{
	size_t budget = DRAIN_BUDGET, n, i, applied = 0;
	bool persist = s->parts.store != NULL;

	if (persist) {
		size_t space = store_append_space(s->parts.store);
		struct store_stats ss;

		if (space < budget)
			budget = space;
		if (!budget) {
			store_get_stats(s->parts.store, &ss);
			if (ss.failing) {
				persist = false;
				budget = DRAIN_BUDGET;
			} else {
				lws_sul_schedule(s->context, 0, &s->store_retry,
						 store_retry, STORE_RETRY_US);
				return;
			}
		}
	}
	n = tick_queue_drain(s->queue, s->drain, budget);
	for (i = 0; i < n; i++) {
		uint64_t seq = engine_apply_tick(s->engine, &s->drain[i]);

		if (!seq)
			continue;
		if (applied != i)
			s->drain[applied] = s->drain[i];
		s->drain[applied++].seq = seq;
	}
	if (persist && applied && store_append(s->parts.store, s->drain, applied))
		log_error("store refused %zu ticks it had room for", applied);
	if (!persist && s->parts.store)
		s->ticks_not_stored += applied;
	engine_flush(s->engine);
	/* Still more waiting: come back after this turn's writes rather than
	 * starving the clients. */
	if (n == budget)
		lws_cancel_service(s->context);
}

/* Query workers wake the loop when output is ready: pass it on to the
 * connections waiting for it. */
static void
poll_jobs(struct server *s)
{
	struct per_session_data__md *pss;
	struct per_session_data__http *h;

	for (pss = s->sessions; pss; pss = pss->next)
		if (pss->job_count)
			lws_callback_on_writable(pss->wsi);
	for (h = s->http_sessions; h; h = h->next)
		lws_callback_on_writable(h->wsi);
}

static void
begin_shutdown(struct server *s)
{
	struct per_session_data__md *pss;

	if (s->stopping)
		return;
	s->stopping = true;
	s->stop_deadline_us = now_us() + SHUTDOWN_GRACE_US;
	log_info("shutting down: closing %s client connections",
		 s->sessions ? "all" : "no");
	for (pss = s->sessions; pss; pss = pss->next)
		close_with(pss, LWS_CLOSE_STATUS_GOINGAWAY,
			   "server shutting down");
}

/* Periodic: heartbeats on idle connections. One timer for the whole server
 * instead of one per connection keeps the per-write cost flat. */
static void
housekeeping(lws_sorted_usec_list_t *sul)
{
	struct server *s = lws_container_of(sul, struct server, housekeeping);
	int64_t now = now_us(), idle = (int64_t)s->opt->heartbeat_ms * 1000;
	struct per_session_data__md *pss;

	for (pss = s->sessions; pss; pss = pss->next)
		if (now - pss->last_write_us >= idle)
			lws_callback_on_writable(pss->wsi);
	lws_sul_schedule(s->context, 0, &s->housekeeping, housekeeping,
			 HOUSEKEEPING_US);
}

/* ------------------------------------------------------- the ws protocol */

static int
write_text(struct lws *wsi, char *data, size_t len)
{
	if (lws_write(wsi, (unsigned char *)data, len, LWS_WRITE_TEXT) <
	    (int)len)
		return -1;
	return 0;
}

/*
 * Closing a TCP socket that still has unread input makes the kernel send a
 * reset instead of a FIN, and a reset can overtake our close frame: the
 * client would see 1006 instead of the code we chose. So before a close the
 * server reads and drops what the peer already sent (bounded, non-blocking).
 */
static void
discard_pending_input(struct lws *wsi)
{
	lws_sockfd_type fd = lws_get_socket_fd(wsi);
	char scratch[4096];
	size_t total = 0;
	ssize_t n;

	if (fd < 0)
		return;
	while (total < 4 * 1024 * 1024) {
		n = recv(fd, scratch, sizeof scratch, MSG_DONTWAIT);
		if (n <= 0)
			break;
		total += (size_t)n;
	}
}

static int
close_now(struct lws *wsi, int status, const char *reason)
{
	lws_close_reason(wsi, status, (unsigned char *)reason, strlen(reason));
	discard_pending_input(wsi);
	return -1;
}

/*
 * Send the next fragment of the head history reply. Returns -1 to close, 0
 * when this writeable was used, 1 when there was nothing to send yet.
 */
static int
write_history(struct per_session_data__md *pss)
{
	struct server *s = pss->server;
	struct query_job *j = pss->jobs[0];
	const char *failed;
	bool done;
	size_t n;
	int flags;

	n = query_job_read(j, s->frame + LWS_PRE, FRAME_CAP, &done);
	if (!n && !done)
		return 1; /* not ready: the query wake brings us back */
	failed = done ? query_job_error(j) : NULL;
	if (failed && !pss->job_started) {
		char msg[256], id[PROTOCOL_ID_MAX + 1];
		struct jsonbuf *b;

		snprintf(msg, sizeof msg, "history failed: %s", failed);
		memcpy(id, pss->job_ids[0], sizeof id);
		history_pop(pss);
		b = control_begin(pss);
		if (b)
			protocol_write_error(b, id, "internal", msg);
		lws_callback_on_writable(pss->wsi);
		return 1;
	}
	flags = lws_write_ws_flags(LWS_WRITE_TEXT, !pss->job_started, done);
	if (lws_write(pss->wsi, (unsigned char *)s->frame + LWS_PRE, n,
		      (enum lws_write_protocol)flags) < (int)n)
		return -1;
	pss->job_started = true;
	pss->last_write_us = now_us();
	if (done)
		history_pop(pss);
	lws_callback_on_writable(pss->wsi);
	return 0;
}

static int
on_writeable(struct per_session_data__md *pss)
{
	struct server *s = pss->server;
	int64_t now = now_us(), next_due = 0;
	size_t n;

	if (pss->close_status)
		return close_now(pss->wsi, pss->close_status, pss->close_reason);
	/* A history reply already begun goes out whole before anything else:
	 * a fragmented message cannot be interleaved with other frames. */
	if (pss->job_count && (pss->job_started || !pss->ctl_head)) {
		int rc = write_history(pss);

		if (rc <= 0)
			return rc;
	}
	if (pss->ctl_head) {
		struct jsonbuf *b = &pss->ctl_head->buf;

		if (jsonbuf_failed(b)) {
			control_pop(pss);
		} else if (write_text(pss->wsi, jsonbuf_data(b), b->len)) {
			return -1;
		} else {
			control_pop(pss);
			pss->last_write_us = now;
		}
		if (pss->ctl_head || engine_client_has_pending(pss->client))
			lws_callback_on_writable(pss->wsi);
		return 0;
	}

	n = engine_client_write(pss->client, now, s->frame + LWS_PRE, FRAME_CAP,
				&next_due);
	if (n) {
		if (write_text(pss->wsi, s->frame + LWS_PRE, n))
			return -1;
		pss->last_write_us = now;
		if (engine_client_has_pending(pss->client) && !next_due)
			lws_callback_on_writable(pss->wsi);
	} else if (now - pss->last_write_us >=
		   (int64_t)s->opt->heartbeat_ms * 1000) {
		struct jsonbuf hb;

		jsonbuf_init(&hb, LWS_PRE);
		protocol_write_heartbeat(&hb, now);
		if (!jsonbuf_failed(&hb) &&
		    write_text(pss->wsi, jsonbuf_data(&hb), hb.len)) {
			jsonbuf_free(&hb);
			return -1;
		}
		jsonbuf_free(&hb);
		pss->last_write_us = now;
	}

	/* Updates held back by max_hz: wake up when the first is due. */
	if (next_due && next_due != pss->timer_due_us) {
		pss->timer_due_us = next_due;
		lws_set_timer_usecs(pss->wsi, next_due > now ? next_due - now
							     : 1);
	}
	return 0;
}

/* Reassemble one inbound message, refusing it as soon as it passes the size
 * limit so a huge frame never gets buffered. Returns -1 to close. */
static int
on_receive(struct per_session_data__md *pss, const char *in, size_t len)
{
	struct server *s = pss->server;
	size_t max = s->opt->max_message_bytes;

	if (lws_is_first_fragment(pss->wsi)) {
		pss->rx_len = 0;
		pss->rx_binary = lws_frame_is_binary(pss->wsi);
	}
	if (pss->rx_len + len + lws_remaining_packet_payload(pss->wsi) > max) {
		char reason[64];

		snprintf(reason, sizeof reason,
			 "message larger than the %zu byte limit", max);
		log_info("conn %llu: %s, closing with 1009",
			 (unsigned long long)pss->id, reason);
		return close_now(pss->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
				 reason);
	}
	if (pss->rx_len + len > pss->rx_cap) {
		size_t cap = pss->rx_cap ? pss->rx_cap : 1024;
		char *p;

		while (cap < pss->rx_len + len)
			cap *= 2;
		p = realloc(pss->rx, cap);
		if (!p)
			return -1;
		pss->rx = p;
		pss->rx_cap = cap;
	}
	memcpy(pss->rx + pss->rx_len, in, len);
	pss->rx_len += len;

	if (!lws_is_final_fragment(pss->wsi) ||
	    lws_remaining_packet_payload(pss->wsi))
		return 0;
	if (pss->rx_binary)
		send_error(pss, "", "bad_request",
			   "binary frames are not part of the protocol; send "
			   "JSON as text frames");
	else
		handle_message(pss, pss->rx, pss->rx_len);
	pss->rx_len = 0;
	/* Keep a small buffer for the next message, drop a big one. */
	if (pss->rx_cap > 16384) {
		free(pss->rx);
		pss->rx = NULL;
		pss->rx_cap = 0;
	}
	return 0;
}

static void
session_remove(struct server *s, struct per_session_data__md *pss)
{
	struct per_session_data__md **pp;

	for (pp = &s->sessions; *pp; pp = &(*pp)->next)
		if (*pp == pss) {
			*pp = pss->next;
			break;
		}
}

static int
callback_md(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	    void *in, size_t len)
{
	struct per_session_data__md *pss = user;
	struct server *s = lws_context_user(lws_get_context(wsi));
	struct jsonbuf *b;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		memset(pss, 0, sizeof *pss);
		pss->wsi = wsi;
		pss->server = s;
		pss->id = ++s->next_conn_id;
		pss->tokens = s->opt->ops_burst;
		pss->tokens_at_us = now_us();
		pss->last_write_us = pss->tokens_at_us;
		pss->client = engine_client_create(s->engine, pss);
		if (!pss->client)
			return -1;
		pss->next = s->sessions;
		s->sessions = pss;
		b = control_begin(pss);
		if (!b)
			return -1;
		protocol_write_hello(b, s->epoch, cli_version_string,
				     s->opt->heartbeat_ms,
				     s->parts.feed_kind ? s->parts.feed_kind
							: "none");
		lws_callback_on_writable(wsi);
		log_debug("conn %llu: open", (unsigned long long)pss->id);
		if (s->stopping)
			close_with(pss, LWS_CLOSE_STATUS_GOINGAWAY,
				   "server shutting down");
		break;

	case LWS_CALLBACK_CLOSED:
		/* lws calls this once, after the last callback for the wsi:
		 * the safe place to free what the session owns. */
		if (!pss->server)
			break;
		session_remove(s, pss);
		engine_client_destroy(pss->client);
		pss->client = NULL;
		while (pss->ctl_head)
			control_pop(pss);
		while (pss->job_count)
			history_pop(pss);
		free(pss->rx);
		pss->rx = NULL;
		log_debug("conn %llu: closed", (unsigned long long)pss->id);
		pss->server = NULL;
		break;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!pss->server)
			break;
		return on_writeable(pss);

	case LWS_CALLBACK_RECEIVE:
		if (!pss->server || pss->close_status)
			break;
		return on_receive(pss, in, len);

	case LWS_CALLBACK_TIMER:
		if (pss->server) {
			pss->timer_due_us = 0;
			lws_callback_on_writable(wsi);
		}
		break;

	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		/* One of these may stand for many wakes: drain everything. */
		if (!s)
			break;
		if (s->stop_requested)
			begin_shutdown(s);
		drain_queue(s);
		poll_jobs(s);
		break;

	default:
		break;
	}
	/* Anything else (HTTP on the same connection before the upgrade)
	 * is handled by lws's own HTTP support and the mount. */
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ------------------------------------------------------------ HTTP API */

/* Value of the idx-th "name=value" query argument named `name`, or NULL.
 * lws has already URL-decoded the arguments. */
static const char *
http_arg(struct lws *wsi, const char *name, int idx, char *buf, int len)
{
	size_t nl = strlen(name);
	int i, n, seen = 0;

	for (i = 0;; i++) {
		n = lws_hdr_copy_fragment(wsi, buf, len, WSI_TOKEN_HTTP_URI_ARGS,
					  i);
		if (n < 0)
			return NULL;
		if ((size_t)n > nl && !strncmp(buf, name, nl) &&
		    buf[nl] == '=' && seen++ == idx)
			return buf + nl + 1;
	}
}

/* Start a response whose body is already known; it is written on the
 * next HTTP_WRITEABLE. */
static int
http_respond(struct per_session_data__http *h, unsigned status,
	     const char *content_type, char *body, size_t len)
{
	unsigned char headers[LWS_PRE + 1024], *start = headers + LWS_PRE,
					       *p = start,
					       *end = headers + sizeof headers;

	h->body = body;
	h->body_len = len;
	h->body_sent = 0;
	if (lws_add_http_common_headers(h->wsi, status, content_type,
					(lws_filepos_t)len, &p, end) ||
	    lws_add_http_header_by_name(h->wsi,
					(const unsigned char *)"cache-control:",
					(const unsigned char *)"no-store", 8, &p,
					end) ||
	    lws_finalize_write_http_header(h->wsi, start, &p, end))
		return -1;
	lws_callback_on_writable(h->wsi);
	return 0;
}

static int
http_respond_text(struct per_session_data__http *h, unsigned status,
		  const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
http_respond_text(struct per_session_data__http *h, unsigned status,
		  const char *fmt, ...)
{
	char *body = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&body, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	return http_respond(h, status, "text/plain; charset=utf-8", body,
			    (size_t)n);
}

/* Answer 400 with the reason; returns -1 so callers can stop at once. */
static int
http_reject(struct per_session_data__http *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
http_reject(struct per_session_data__http *h, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	http_respond_text(h, 400, "%s", msg);
	return -1;
}

/* Symbols, time range and limit shared by /api/export and /api/bars.
 * Returns 0, or -1 after answering 400 with the reason. */
static int
http_query_args(struct per_session_data__http *h, struct query_spec *q,
		bool many_symbols)
{
	char buf[256];
	const char *v;
	int i;

	for (i = 0; (v = http_arg(h->wsi, "symbol", i, buf, sizeof buf)); i++) {
		if (!tick_symbol_valid(v, strlen(v)))
			return http_reject(h,
						 "'%s' is not a valid symbol "
						 "(1-32 of A-Z a-z 0-9 . _ : / -)\n",
						 v);
		if (q->symbol_count == (many_symbols ? QUERY_MAX_SYMBOLS : 1))
			return http_reject(h,
						 "too many symbol= arguments "
						 "(at most %d)\n",
						 many_symbols ? QUERY_MAX_SYMBOLS
							      : 1);
		snprintf(q->symbols[q->symbol_count++], sizeof q->symbols[0],
			 "%s", v);
	}
	q->to = INT64_MAX;
	if ((v = http_arg(h->wsi, "from", 0, buf, sizeof buf)) &&
	    protocol_parse_time(v, strlen(v), &q->from))
		return http_reject(h,
					 "from='%s' is not a time: use integer "
					 "microseconds or ISO 8601 like "
					 "2024-03-01T14:30:00Z\n",
					 v);
	if ((v = http_arg(h->wsi, "to", 0, buf, sizeof buf)) &&
	    protocol_parse_time(v, strlen(v), &q->to))
		return http_reject(h,
					 "to='%s' is not a time: use integer "
					 "microseconds or ISO 8601 like "
					 "2024-03-01T14:30:00Z\n",
					 v);
	if (q->from > q->to)
		return http_reject(h, "from is after to: nothing can match\n");
	if ((v = http_arg(h->wsi, "limit", 0, buf, sizeof buf))) {
		char *endp;
		unsigned long lim = strtoul(v, &endp, 10);

		if (!*v || *endp || lim == 0 || lim > UINT32_MAX)
			return http_reject(h,
						 "limit='%s' must be a positive "
						 "integer\n",
						 v);
		q->limit = (uint32_t)lim;
	}
	return 0;
}

static int
http_start_job(struct server *s, struct per_session_data__http *h,
	       const struct query_spec *q, const char *content_type)
{
	unsigned char headers[LWS_PRE + 1024], *start = headers + LWS_PRE,
					       *p = start,
					       *end = headers + sizeof headers;

	h->job = query_submit(s->parts.queries, q);
	if (!h->job)
		return http_respond_text(h, 500, "out of memory\n");
	h->next = s->http_sessions;
	s->http_sessions = h;
	h->listed = true;
	/* The length is not known before the rows are read: the body ends
	 * when the connection closes. */
	if (lws_add_http_common_headers(h->wsi, 200, content_type,
					LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
	    lws_add_http_header_by_name(h->wsi,
					(const unsigned char *)"cache-control:",
					(const unsigned char *)"no-store", 8, &p,
					end) ||
	    lws_finalize_write_http_header(h->wsi, start, &p, end))
		return -1;
	lws_callback_on_writable(h->wsi);
	return 0;
}

static int
http_export(struct server *s, struct per_session_data__http *h)
{
	struct query_spec q;
	char buf[64];
	const char *fmt;

	memset(&q, 0, sizeof q);
	q.kind = QUERY_EXPORT;
	if (http_query_args(h, &q, true))
		return 0;
	fmt = http_arg(h->wsi, "format", 0, buf, sizeof buf);
	if (fmt && strcmp(fmt, "csv") && strcmp(fmt, "jsonl"))
		return http_respond_text(h, 400,
					 "format='%s': use csv or jsonl\n", fmt);
	q.jsonl = fmt && !strcmp(fmt, "jsonl");
	return http_start_job(s, h, &q,
			      q.jsonl ? "application/x-ndjson"
				      : "text/csv; charset=utf-8");
}

static int
http_bars(struct server *s, struct per_session_data__http *h)
{
	struct query_spec q;
	char buf[64];
	const char *iv;

	memset(&q, 0, sizeof q);
	q.kind = QUERY_BARS;
	if (http_query_args(h, &q, false))
		return 0;
	if (!q.symbol_count)
		return http_respond_text(h, 400,
					 "/api/bars needs symbol=SYMBOL\n");
	iv = http_arg(h->wsi, "interval", 0, buf, sizeof buf);
	if (!iv)
		iv = "1m";
	q.interval_us = protocol_interval_us(iv);
	snprintf(q.interval, sizeof q.interval, "%s", iv);
	if (!q.interval_us)
		return http_respond_text(h, 400,
					 "interval='%s': use 1s, 1m, 5m, 1h or "
					 "1d\n",
					 iv);
	return http_start_job(s, h, &q, "application/json");
}

static int
http_metrics(struct server *s, struct per_session_data__http *h)
{
	struct engine_stats es;
	struct feed_status fs;
	struct store_stats ss;
	struct per_session_data__md *pss;
	size_t conns = 0;
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);

	if (!f)
		return http_respond_text(h, 500, "out of memory\n");
	for (pss = s->sessions; pss; pss = pss->next)
		conns++;
	engine_get_stats(s->engine, &es);
	memset(&fs, 0, sizeof fs);
	if (s->parts.feed)
		feed_get_status(s->parts.feed, &fs);
#define METRIC(name, type, help, fmt, v)                                       \
	fprintf(f, "# HELP " name " " help "\n# TYPE " name " " type "\n" name  \
		   " " fmt "\n",                                               \
		v)
	METRIC("publisher_connections", "gauge", "Open WebSocket connections.",
	       "%zu", conns);
	METRIC("publisher_symbols", "gauge", "Symbols with data.", "%zu",
	       es.symbols);
	METRIC("publisher_subscriptions", "gauge", "Subscriptions held.", "%zu",
	       es.subscriptions);
	METRIC("publisher_ticks_applied_total", "counter",
	       "Ticks applied by the engine.", "%llu",
	       (unsigned long long)es.ticks_applied);
	METRIC("publisher_ticks_rejected_total", "counter",
	       "Ticks the engine refused.", "%llu",
	       (unsigned long long)es.ticks_rejected);
	METRIC("publisher_updates_sent_total", "counter",
	       "Snapshots and deltas written to clients.", "%llu",
	       (unsigned long long)es.updates_sent);
	METRIC("publisher_ticks_conflated_total", "counter",
	       "Ticks merged away by conflation.", "%llu",
	       (unsigned long long)es.ticks_conflated);
	METRIC("publisher_feed_ticks_total", "counter",
	       "Ticks the feed produced.", "%llu",
	       (unsigned long long)fs.ticks);
	METRIC("publisher_feed_bad_lines_total", "counter",
	       "Input lines the feed skipped.", "%llu",
	       (unsigned long long)fs.bad_lines);
	METRIC("publisher_tick_queue_depth", "gauge",
	       "Ticks waiting between feed and engine.", "%zu",
	       tick_queue_depth(s->queue));
	if (s->parts.store) {
		store_get_stats(s->parts.store, &ss);
		METRIC("publisher_store_ticks_written_total", "counter",
		       "Ticks committed to SQLite.", "%llu",
		       (unsigned long long)ss.ticks_written);
		METRIC("publisher_store_commits_total", "counter",
		       "Store transactions committed.", "%llu",
		       (unsigned long long)ss.commits);
		METRIC("publisher_store_last_batch", "gauge",
		       "Ticks in the last commit.", "%llu",
		       (unsigned long long)ss.last_batch);
		METRIC("publisher_store_queued", "gauge",
		       "Ticks waiting for the store writer.", "%zu", ss.queued);
		METRIC("publisher_store_lag_seconds", "gauge",
		       "Age of the oldest tick waiting for the writer.", "%.6f",
		       (double)ss.lag_us / 1e6);
		METRIC("publisher_store_write_errors_total", "counter",
		       "Failed store commits.", "%llu",
		       (unsigned long long)ss.write_errors);
		METRIC("publisher_store_ticks_not_stored_total", "counter",
		       "Ticks served while the store was failing, not stored.",
		       "%llu", (unsigned long long)s->ticks_not_stored);
	}
#undef METRIC
	if (fclose(f))
		return http_respond_text(h, 500, "out of memory\n");
	return http_respond(h, 200, "text/plain; version=0.0.4; charset=utf-8",
			    body, len);
}

/* 200 when the feed is alive (or done, or absent by choice) and the store
 * is writing; 503 with the reason otherwise. */
static int
http_healthz(struct server *s, struct per_session_data__http *h)
{
	struct feed_status fs;
	struct store_stats ss;

	if (s->parts.store) {
		store_get_stats(s->parts.store, &ss);
		if (ss.failing)
			return http_respond_text(h, 503,
						 "store failing: %s\n",
						 ss.last_error);
	}
	if (s->parts.feed) {
		feed_get_status(s->parts.feed, &fs);
		if (!fs.running && !fs.finished && strcmp(fs.kind, "none"))
			return http_respond_text(h, 503,
						 "feed '%s' is not running\n",
						 fs.kind);
	}
	return http_respond_text(h, 200, "ok\n");
}

static void
http_unlist(struct server *s, struct per_session_data__http *h)
{
	struct per_session_data__http **pp;

	if (!h->listed)
		return;
	for (pp = &s->http_sessions; *pp; pp = &(*pp)->next)
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	h->listed = false;
}

static int
http_writeable(struct server *s, struct per_session_data__http *h)
{
	enum lws_write_protocol wp = LWS_WRITE_HTTP;
	size_t n;
	bool done = false;

	if (h->body) {
		n = h->body_len - h->body_sent;
		if (n > FRAME_CAP)
			n = FRAME_CAP;
		memcpy(s->frame + LWS_PRE, h->body + h->body_sent, n);
		h->body_sent += n;
		done = h->body_sent == h->body_len;
	} else if (h->job) {
		n = query_job_read(h->job, s->frame + LWS_PRE, FRAME_CAP, &done);
		if (!n && !done)
			return 0; /* the query wake brings us back */
		if (done && query_job_error(h->job))
			log_warn("http export cut short: %s",
				 query_job_error(h->job));
	} else {
		return 0;
	}
	if (done)
		wp = LWS_WRITE_HTTP_FINAL;
	if (lws_write(h->wsi, (unsigned char *)s->frame + LWS_PRE, n, wp) <
	    (int)n)
		return -1;
	/* An export holds a read snapshot open, which keeps the WAL from
	 * being checkpointed: a client that stops reading is dropped. */
	lws_set_timeout(h->wsi, PENDING_TIMEOUT_HTTP_CONTENT,
			HTTP_STALL_SECS);
	if (!done) {
		lws_callback_on_writable(h->wsi);
		return 0;
	}
	http_unlist(s, h);
	if (h->job) {
		query_job_release(h->job);
		h->job = NULL;
	}
	free(h->body);
	h->body = NULL;
	return lws_http_transaction_completed(h->wsi) ? -1 : 0;
}

static int
callback_http_api(struct lws *wsi, enum lws_callback_reasons reason,
		  void *user, void *in, size_t len)
{
	struct per_session_data__http *h = user;
	struct server *s = lws_context_user(lws_get_context(wsi));
	char path[128];

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		memset(h, 0, sizeof *h);
		h->wsi = wsi;
		/* `in` is the path below the mount point; the mount point
		 * itself tells which endpoint was asked for. */
		lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI);
		if (!strcmp(path, "/metrics"))
			return http_metrics(s, h);
		if (!strcmp(path, "/healthz"))
			return http_healthz(s, h);
		if (!s->parts.queries &&
		    (!strcmp(path, "/api/export") || !strcmp(path, "/api/bars")))
			return http_respond_text(h, 503,
						 "history needs the SQLite "
						 "store; this server runs "
						 "without one (--db none)\n");
		if (!strcmp(path, "/api/export"))
			return http_export(s, h);
		if (!strcmp(path, "/api/bars"))
			return http_bars(s, h);
		return http_respond_text(h, 404,
					 "no such endpoint '%s' (try "
					 "/api/export, /api/bars, /metrics, "
					 "/healthz)\n",
					 path);

	case LWS_CALLBACK_HTTP_WRITEABLE:
		return http_writeable(s, h);

	case LWS_CALLBACK_CLOSED_HTTP:
		if (h && h->wsi) {
			http_unlist(s, h);
			query_job_release(h->job);
			h->job = NULL;
			free(h->body);
			h->body = NULL;
			h->wsi = NULL;
		}
		break;

	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* --------------------------------------------------------------- lifetime */

static void
lws_log_to_ours(int level, const char *line)
{
	size_t n = strlen(line);

	/* lws lines end with a newline; ours add their own. */
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	log_msg(level == LLL_ERR ? LOG_ERROR : LOG_WARN, "lws: %.*s", (int)n,
		line);
}

static bool
is_ipv4_literal(const char *h)
{
	unsigned a, b, c, d;
	char tail;

	return sscanf(h, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4;
}

struct server *
server_create(const struct serve_options *opt, const struct server_parts *parts,
	      char *err, size_t errlen)
{
	struct lws_context_creation_info info;
	struct server *s;
	char index_path[PATH_MAX + 16];
	struct stat st;
	const char *host = opt->listen_host;

	s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->opt = opt;
	s->parts = *parts;
	s->engine = parts->engine;
	s->queue = parts->queue;
	snprintf(s->epoch, sizeof s->epoch, "%s", parts->epoch);
	s->limits.max_symbols = opt->max_symbols;
	s->limits.max_history_limit = 100000;

	if (!realpath(opt->web, s->web_dir)) {
		snprintf(err, errlen, "web directory '%s': %s", opt->web,
			 strerror(errno));
		goto fail;
	}
	snprintf(index_path, sizeof index_path, "%s/index.html", s->web_dir);
	if (stat(index_path, &st)) {
		snprintf(err, errlen, "web directory '%s' has no index.html",
			 opt->web);
		goto fail;
	}

	s->drain = malloc(DRAIN_BUDGET * sizeof *s->drain);
	s->frame = malloc(LWS_PRE + FRAME_CAP);
	if (!s->drain || !s->frame) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}

	lws_set_log_level(LLL_ERR | (log_get_level() >= LOG_DEBUG ? LLL_WARN : 0),
			  lws_log_to_ours);

	/* The WebSocket protocol comes first: a client that names no
	 * subprotocol is bound to protocols[0] (see NOTES-platform.md). */
	s->protocols[0].name = "publisher.v1";
	s->protocols[0].callback = callback_md;
	s->protocols[0].per_session_data_size =
		sizeof(struct per_session_data__md);
	s->protocols[0].rx_buffer_size = 16384;
	s->protocols[1].name = "publisher-http";
	s->protocols[1].callback = callback_http_api;
	s->protocols[1].per_session_data_size =
		sizeof(struct per_session_data__http);

	s->mount.mountpoint = "/";
	s->mount.mountpoint_len = 1;
	s->mount.origin = s->web_dir;
	s->mount.def = "index.html";
	s->mount.origin_protocol = LWSMPRO_FILE;
	/* Dynamic endpoints are mounts handled by callback_http_api. */
	s->mount_api.mountpoint = "/api";
	s->mount_metrics.mountpoint = "/metrics";
	s->mount_health.mountpoint = "/healthz";
	s->mount.mount_next = &s->mount_api;
	s->mount_api.mount_next = &s->mount_metrics;
	s->mount_metrics.mount_next = &s->mount_health;
	{
		struct lws_http_mount *m[] = {&s->mount_api, &s->mount_metrics,
					      &s->mount_health};
		size_t i;

		for (i = 0; i < 3; i++) {
			m[i]->mountpoint_len =
				(unsigned char)strlen(m[i]->mountpoint);
			m[i]->origin = "publisher-http";
			m[i]->origin_protocol = LWSMPRO_CALLBACK;
		}
	}

	/* Ping an idle peer after ping_secs, hang up if nothing came back. */
	s->retry.secs_since_valid_ping = (uint16_t)opt->ping_secs;
	s->retry.secs_since_valid_hangup = (uint16_t)(opt->ping_secs * 2 + 5);

	memset(&info, 0, sizeof info);
	info.port = opt->listen_port;
	info.protocols = s->protocols;
	info.mounts = &s->mount;
	info.user = s;
	info.retry_and_idle_policy = &s->retry;
	info.options = LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE |
		       LWS_SERVER_OPTION_VALIDATE_UTF8;
	info.vhost_name = "publisher";
	if (!strcmp(host, "localhost"))
		host = "127.0.0.1";
	if (!strcmp(host, "0.0.0.0")) {
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	} else if (!strcmp(host, "::") || !strcmp(host, "[::]")) {
		/* all interfaces, IPv6 and IPv4 */
	} else {
		info.iface = host;
		/* Without this, lws binds [::] even when told 127.0.0.1. */
		if (is_ipv4_literal(host))
			info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	}
	if (strcmp(host, "127.0.0.1") && strcmp(host, "::1") &&
	    strcmp(host, "[::1]"))
		log_warn("listening on %s, beyond loopback: anyone who can "
			 "reach it can read the stream",
			 opt->listen_host);

	s->context = lws_create_context(&info);
	if (!s->context) {
		snprintf(err, errlen,
			 "cannot listen on %s:%d (address in use, or not an "
			 "address of this machine?)",
			 opt->listen_host, opt->listen_port);
		goto fail;
	}
	s->vhost = lws_get_vhost_by_name(s->context, "publisher");
	s->port = s->vhost ? lws_get_vhost_listen_port(s->vhost) : -1;
	if (s->port <= 0) {
		snprintf(err, errlen, "cannot listen on %s:%d", opt->listen_host,
			 opt->listen_port);
		goto fail;
	}
	lws_sul_schedule(s->context, 0, &s->housekeeping, housekeeping,
			 HOUSEKEEPING_US);
	return s;

fail:
	server_destroy(s);
	return NULL;
}

int
server_port(const struct server *s)
{
	return s->port;
}

int
server_run(struct server *s)
{
	int rc = 0;

	while (rc >= 0) {
		rc = lws_service(s->context, 0);
		if (s->stop_requested && !s->stopping)
			begin_shutdown(s);
		if (s->stopping &&
		    (!s->sessions || now_us() >= s->stop_deadline_us))
			break;
	}
	return rc < 0 ? -1 : 0;
}

void
server_stop(struct server *s)
{
	s->stop_requested = 1;
	if (s->context)
		lws_cancel_service(s->context);
}

void
server_wake(void *ctx)
{
	struct server *s = ctx;

	lws_cancel_service(s->context);
}

void
server_destroy(struct server *s)
{
	if (!s)
		return;
	if (s->context) {
		lws_sul_cancel(&s->housekeeping);
		lws_sul_cancel(&s->store_retry);
		lws_context_destroy(s->context);
	}
	free(s->drain);
	free(s->frame);
	free(s);
}

/*
 * server.c: libwebsockets 4.1.6 glue for the publisher.
 *
 * One thread runs the libuv loop that libwebsockets and the pipeline share:
 * HTTP for the dashboard files, the /ws protocol and writing frames here,
 * draining the feed into the engine in pipeline.c. Producer threads (the
 * feed, the store, the query workers, Redis) each wake the loop through a
 * wake of their own (wake.h); the query workers' wake lands here and asks
 * for writable callbacks for the connections whose jobs have output, and
 * for no others.
 *
 * Writes follow the lws rule of one lws_write() per SERVER_WRITEABLE: control
 * replies (hello, subscribed, errors, pongs) go first, in order, then one
 * batch frame of conflated updates from the engine. All batch frames are
 * built in one buffer owned by the server; lws copies whatever the kernel
 * does not take at once, so a stalled client holds at most one frame.
 *
 * Admission. Every WebSocket upgrade passes admit_upgrade() at
 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE, while the connection is still plain
 * HTTP: there a refusal is a real HTTP status (401, 403, 429, 503) rather
 * than a reset. The order is origin, token, then the connection caps, so
 * that a client without a valid token always learns only "401". What
 * admission decided (the connection id and the token's claims) cannot be
 * kept in the pss yet: lws frees the HTTP user space when it binds the ws
 * protocol. It waits in server->admitted, which ESTABLISHED takes over.
 * lws runs CONFIRM_UPGRADE, the upgrade and ESTABLISHED in one go for one
 * wsi, so one slot is enough; an ESTABLISHED without a matching admission
 * is refused.
 */
#define _GNU_SOURCE /* vasprintf, open_memstream */
#include "server.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "auth.h"
#include "cli.h"
#include "clock.h"
#include "engine.h"
#include "export.h"
#include "feed.h"
#include "jsonbuf.h"
#include "log.h"
#include "pipeline.h"
#include "protocol.h"
#include "query.h"
#include "redis_link.h"
#include "store.h"
#include "wake.h"
#include "ws_deflate.h"

/* Largest frame: the engine's (a full refresh of hundreds of symbols in one
 * write; small enough that a stalled client's leftover is cheap). History
 * replies and HTTP bodies go out in pieces of the same size. */
#define FRAME_CAP ENGINE_FRAME_CAP
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
/* Threads answering history and export requests. */
#define QUERY_THREADS 2
/* How long a connection whose output was held back by the kernel gets to
 * have its input read before the next frame goes out (see on_writeable). */
#define RX_WINDOW_US 1000
/* Buckets of the per-address connection count (a power of two). */
#define PEER_BUCKETS 1024
/* Ticks a history request returns when it names neither a range nor a limit. */
#define HISTORY_DEFAULT_LIMIT 1000
/* Room for a peer address as lws_get_peer_simple() writes it. */
#define PEER_MAX 64
/* Forbidden symbols a refusal names; the rest are counted. */
#define FORBIDDEN_NAMED 5
/* Close code for a token that ran out while connected (4000-4999 are for
 * applications). */
#define CLOSE_TOKEN_EXPIRED 4001
/* Close code when an edge follows its ingest into a new epoch (RFC 6455
 * 1012, service restart): reconnect and start over. */
#define CLOSE_SERVICE_RESTART 1012
/* Room for a token with the header or cookie around it. */
#define TOKEN_HEADER_MAX (AUTH_TOKEN_MAX + 256)

/* Why a WebSocket handshake or an API request was refused, with the HTTP
 * status the client gets and the label /metrics counts it under. */
enum refusal {
	REFUSED_UNAUTHORIZED,
	REFUSED_ORIGIN,
	REFUSED_FORBIDDEN, /* API only: a symbol outside the entitlements */
	REFUSED_SERVER_FULL,
	REFUSED_PER_IP,
	REFUSED_SHUTTING_DOWN,
	REFUSED_COUNT
};

static const struct {
	unsigned status;
	const char *status_line; /* for an upgrade request (see write_refusal) */
	const char *label;
	const char *body; /* all the client is told */
} refusals[REFUSED_COUNT] = {
	[REFUSED_UNAUTHORIZED] = {401, "HTTP/1.1 401 Unauthorized",
				  "unauthorized", "unauthorized\n"},
	[REFUSED_ORIGIN] = {403, "HTTP/1.1 403 Forbidden", "origin",
			    "origin not allowed\n"},
	[REFUSED_FORBIDDEN] = {403, "HTTP/1.1 403 Forbidden", "forbidden",
			       "forbidden\n"},
	[REFUSED_SERVER_FULL] = {503, "HTTP/1.1 503 Service Unavailable",
				 "server_full",
				 "too many connections, try again later\n"},
	[REFUSED_PER_IP] = {429, "HTTP/1.1 429 Too Many Requests",
			    "per_ip_limit",
			    "too many connections from your address\n"},
	[REFUSED_SHUTTING_DOWN] = {503, "HTTP/1.1 503 Service Unavailable",
				   "shutting_down", "server shutting down\n"},
};

/* The error codes /metrics counts by name; any other lands in "other". */
static const char *const error_codes[] = {
	"bad_json",	"bad_request", "unknown_op", "too_many_symbols",
	"rate_limited", "too_large",   "forbidden",  "unavailable",
	"internal",
};
#define N_ERROR_CODES (sizeof error_codes / sizeof error_codes[0])

/* Upper bounds (seconds) of the tick-to-send latency histogram. */
static const double latency_buckets[] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025,	0.05,	 0.1,	 0.25,	0.5,	1,     2.5,
};
#define N_LATENCY_BUCKETS (sizeof latency_buckets / sizeof latency_buckets[0])

/* What /metrics reports beyond the engine's, store's and feed's own
 * figures. Touched on the service thread only. */
struct server_metrics {
	uint64_t connections_opened;
	uint64_t ws_frames_sent, ws_bytes_sent, http_bytes_sent;
	uint64_t refused_ws[REFUSED_COUNT];
	uint64_t refused_api[REFUSED_COUNT];
	uint64_t tokens_expired;
	uint64_t errors[N_ERROR_CODES + 1]; /* the last: "other" */
	uint64_t latency_le[N_LATENCY_BUCKETS]; /* not cumulative */
	uint64_t latency_count;
	double latency_sum;
	uint64_t rx_paused; /* times input was held while output waited */
};

/* Open connections per peer address, for --max-connections-per-ip. */
struct peer_count {
	struct peer_count *next;
	char peer[PEER_MAX];
	size_t n;
};

/* See "Admission" at the top of the file. */
struct admission {
	struct lws *wsi; /* NULL: the slot is empty */
	uint64_t conn_id;
	char peer[PEER_MAX];
	struct auth_claims claims; /* owned by the slot until taken */
	bool deflate; /* the client's permessage-deflate offer was taken */
};

/* One queued control message (hello, replies, errors, heartbeat). */
struct control_msg {
	struct control_msg *next;
	struct jsonbuf buf; /* headroom LWS_PRE */
};

/* Per WebSocket connection. lws zeroes it before ESTABLISHED. */
struct per_session_data__md {
	/* the server's sessions, least recently written first, so that the
	 * ones owed a heartbeat are found at the head */
	struct per_session_data__md *prev, *next;
	struct lws *wsi;
	struct server *server;
	struct engine_client *client;
	uint64_t id; /* connection id for logs */
	char peer[PEER_MAX];
	/* With --auth-secret: what the token grants, checked on every
	 * subscribe and history, and its expiry, checked by housekeeping. */
	struct auth_claims claims;
	/* When the engine last gave this idle client something to send
	 * (monotonic µs), for the latency histogram; 0 = nothing measured. */
	int64_t ready_since_us;

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
	/* Input is not read while lws holds output the kernel would not take
	 * (see on_writeable). */
	bool rx_paused;
	bool deflate;	       /* permessage-deflate agreed: frames may go
				* compressed (see ws_deflate.h) */
	/* Work for the loop's idle turn: on server->work while nonzero. */
	unsigned work; /* WORK_* */
	struct per_session_data__md *work_next;
	bool close_armed;      /* the timer closes it (see close_now) */
	bool awaiting_destroy; /* closed, its close frame maybe not sent yet */
};

/* Per HTTP request on the API mounts (/api/…, /metrics, /healthz). */
struct per_session_data__http {
	struct per_session_data__http *next; /* server's list of exports */
	struct lws *wsi;
	char peer[PEER_MAX];
	struct query_job *job;
	char *body; /* a small answer built at once (metrics, healthz) */
	size_t body_len, body_sent;
	bool listed;
};

struct server {
	uv_loop_t *loop;
	struct lws_context *context;
	struct lws_vhost *vhost;
	const struct serve_options *opt;
	struct server_parts parts;
	struct pipeline *pipeline;
	struct engine *engine; /* the pipeline's */
	struct query_worker *queries; /* NULL: history and export refused */
	struct wake *query_wake;
	char web_dir[PATH_MAX];
	int port;

	struct lws_protocols protocols[3];
	struct lws_http_mount mount, mount_api, mount_metrics, mount_health;
	struct per_session_data__http *http_sessions;
	lws_retry_bo_t retry;
	lws_sorted_usec_list_t housekeeping;
	int64_t next_expiry_check_us;

	/* least recently written first (see per_session_data__md) */
	struct per_session_data__md *sessions, *sessions_tail;
	size_t session_count;
	size_t closing; /* sessions closed whose socket lws still has */
	uint64_t next_conn_id;
	struct protocol_limits limits;
	struct peer_count *peers[PEER_BUCKETS];

	struct auth *auth; /* NULL: no --auth-secret, everyone sees all */
	struct admission admitted;
	struct server_metrics m;
	time_t started;

	char *frame;	    /* LWS_PRE + FRAME_CAP */
	struct ws_deflate *deflate; /* NULL: --compression off */

	uv_signal_t sigint, sigterm;
	uv_timer_t stop_timer;
	/* Sessions with work for the idle turn (see session_work), and the
	 * idle handle that runs while there are. */
	uv_idle_t work_idle;
	struct per_session_data__md *work;
	struct wake *stop_wake; /* server_stop() from another thread */
	int handles_open; /* of sigint, sigterm, stop_timer, work_idle */
	bool stopping;
	int64_t stop_deadline_us;
};

/* ------------------------------------------------------------- sessions */

static void
session_unlink(struct server *s, struct per_session_data__md *pss)
{
	if (pss->prev)
		pss->prev->next = pss->next;
	else
		s->sessions = pss->next;
	if (pss->next)
		pss->next->prev = pss->prev;
	else
		s->sessions_tail = pss->prev;
	pss->prev = pss->next = NULL;
}

static void
session_append(struct server *s, struct per_session_data__md *pss)
{
	pss->next = NULL;
	pss->prev = s->sessions_tail;
	if (s->sessions_tail)
		s->sessions_tail->next = pss;
	else
		s->sessions = pss;
	s->sessions_tail = pss;
}

/* The session just wrote: it moves to the tail, so the head is always the
 * one that has been quiet longest (the next to owe a heartbeat). */
static void
session_wrote(struct per_session_data__md *pss, int64_t now)
{
	struct server *s = pss->server;

	pss->last_write_us = now;
	if (s->sessions_tail == pss)
		return;
	session_unlink(s, pss);
	session_append(s, pss);
}

static struct peer_count **
peer_slot(struct server *s, const char *peer)
{
	uint64_t h = 1469598103934665603ull;
	const char *c;
	struct peer_count **pp;

	for (c = peer; *c; c++)
		h = (h ^ (unsigned char)*c) * 1099511628211ull;
	pp = &s->peers[h & (PEER_BUCKETS - 1)];
	while (*pp && strcmp((*pp)->peer, peer))
		pp = &(*pp)->next;
	return pp;
}

static size_t
peer_connections(struct server *s, const char *peer)
{
	struct peer_count **pp = peer_slot(s, peer);

	return *pp ? (*pp)->n : 0;
}

static void
peer_add(struct server *s, const char *peer, int delta)
{
	struct peer_count **pp = peer_slot(s, peer), *pc = *pp;

	if (!pc) {
		if (delta < 0)
			return;
		pc = calloc(1, sizeof *pc);
		if (!pc)
			return; /* the cap then counts this one low */
		snprintf(pc->peer, sizeof pc->peer, "%s", peer);
		*pp = pc;
	}
	if (delta < 0 && pc->n)
		pc->n--;
	else if (delta > 0)
		pc->n++;
	if (!pc->n) {
		*pp = pc->next;
		free(pc);
	}
}

/* Work for a session on the loop's idle turn (see work_idle_cb). */
enum { WORK_WRITE = 1, WORK_INFLATE = 2 };
static void
session_work(struct per_session_data__md *pss, unsigned work);
static int
write_updates(struct per_session_data__md *pss, int64_t now, bool *more);

/* Called from engine_flush() when a client goes from nothing to send to
 * something: that moment starts the latency the histogram measures. */
static void
engine_client_ready(void *user, void *ctx)
{
	struct per_session_data__md *pss = user;

	if (!pss->ready_since_us) {
		struct pipeline_stats ps;

		pipeline_get_stats(pss->server->pipeline, &ps);
		pss->ready_since_us =
			ps.flush_mono_us ? ps.flush_mono_us : clock_mono_us();
	}
	/* Not from inside the engine's flush: on the idle turn. */
	session_work(pss, WORK_WRITE);
}

static void
observe_latency(struct server *s, int64_t us)
{
	double secs = (double)us / 1e6;
	size_t i;

	for (i = 0; i < N_LATENCY_BUCKETS; i++)
		if (secs <= latency_buckets[i]) {
			s->m.latency_le[i]++;
			break;
		}
	s->m.latency_count++;
	s->m.latency_sum += secs;
}

static void
count_error(struct server *s, const char *code)
{
	size_t i;

	for (i = 0; i < N_ERROR_CODES; i++)
		if (!strcmp(code, error_codes[i]))
			break;
	s->m.errors[i]++;
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

/* A client that does not keep its side of the protocol: 1008, logged. */
static void
close_abusive(struct per_session_data__md *pss, const char *reason)
{
	if (!pss->close_status)
		log_limited(LOG_INFO, "conn %llu (%s): %s, closing with 1008",
			    (unsigned long long)pss->id, pss->peer, reason);
	close_with(pss, LWS_CLOSE_STATUS_POLICY_VIOLATION, reason);
}

/* Queue an error reply. A client that lets replies pile up unread is not
 * keeping its side of the protocol: it is closed rather than buffered for. */
static void
send_error(struct per_session_data__md *pss, const char *id, const char *code,
	   const char *message)
{
	struct jsonbuf *b;

	count_error(pss->server, code);
	/* Client mistakes are the client's business, but an operator chasing
	 * one wants to see it: at debug level, and limited like all lines a
	 * peer can cause. */
	log_limited(LOG_DEBUG, "conn %llu (%s): error %s: %s",
		    (unsigned long long)pss->id, pss->peer, code, message);
	if (pss->ctl_count >= CONTROL_QUEUE_MAX) {
		close_abusive(pss, "too many unread replies");
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
		close_abusive(pss, "too many unread replies");
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

/* True when this connection may see symbol: always without --auth-secret. */
static bool
entitled(const struct per_session_data__md *pss, const char *symbol)
{
	return !pss->server->auth || auth_claims_allow(&pss->claims, symbol);
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
refuse_forbidden(struct per_session_data__md *pss, const struct request *req,
		 const char (*symbols)[TICK_SYMBOL_MAX + 1], size_t count)
{
	char msg[256];
	size_t i, bad = 0, len;

	len = (size_t)snprintf(msg, sizeof msg, "not entitled to");
	for (i = 0; i < count; i++) {
		if (!strcmp(symbols[i], "*") || entitled(pss, symbols[i]))
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
		    (unsigned long long)pss->id, pss->peer, pss->claims.sub,
		    msg);
	send_error(pss, req->id, "forbidden", msg);
	return true;
}

static void
handle_subscribe(struct per_session_data__md *pss, struct request *req)
{
	struct server *s = pss->server;
	bool resume = req->has_resume &&
		      !strcmp(req->resume_epoch, pipeline_epoch(s->pipeline));
	size_t adding = 0, i;
	char msg[160];
	struct jsonbuf *b;

	if (refuse_forbidden(pss, req,
			     (const char(*)[TICK_SYMBOL_MAX + 1])req->symbols,
			     req->symbol_count))
		return;
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
	if (engine_client_subscribe_many(
		    pss->client,
		    (const char(*)[TICK_SYMBOL_MAX + 1])req->symbols,
		    req->symbol_count, resume ? resume_lookup : NULL, req) == -2)
		send_error(pss, req->id, "internal",
			   "out of memory while subscribing");
}

static void
handle_unsubscribe(struct per_session_data__md *pss, struct request *req)
{
	struct jsonbuf *b;

	if (engine_client_unsubscribe_many(
		    pss->client,
		    (const char(*)[TICK_SYMBOL_MAX + 1])req->symbols,
		    req->symbol_count) == -2) {
		send_error(pss, req->id, "internal",
			   "out of memory while unsubscribing");
		return;
	}
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
handle_symbols(struct per_session_data__md *pss, struct request *req)
{
	struct symbol_list l = {0};
	struct jsonbuf *b;
	size_t i;

	if (pss->server->auth)
		l.claims = &pss->claims;
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

	feed_get_status(pipeline_feed(s->pipeline), &fs);
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

	if (!pipeline_feed(s->pipeline) || !s->parts.feed_kind ||
	    strcmp(s->parts.feed_kind, "replay")) {
		snprintf(err, sizeof err,
			 "replay control needs a replay feed; this server "
			 "runs '%s'",
			 s->parts.feed_kind ? s->parts.feed_kind : "none");
		send_error(pss, req->id, "bad_request", err);
		return;
	}
	/* Steering the feed changes what every client sees: with tokens,
	 * only one that grants every symbol may do it. */
	if (req->action != REPLAY_STATUS && s->auth && !pss->claims.allow_all) {
		send_error(pss, req->id, "forbidden",
			   "replay control needs a token that grants \"*\"; "
			   "yours may only ask for the status");
		return;
	}
	if (req->action != REPLAY_STATUS) {
		memset(&cmd, 0, sizeof cmd);
		cmd.kind = kinds[req->action];
		cmd.speed = req->speed;
		cmd.ts = req->seek_ts;
		if (feed_control(pipeline_feed(s->pipeline), &cmd, err,
				 sizeof err)) {
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

/* Why the store cannot answer history now (an edge whose ingest moved to
 * a new epoch: the store holds the old life), or NULL. */
static const char *
store_detached(struct server *s, struct sink_status *ss)
{
	bool detached = false;

	if (pipeline_sink_status(s->pipeline, "store", ss, &detached) ||
	    !detached)
		return NULL;
	return ss->reason;
}

static void
handle_history(struct per_session_data__md *pss, struct request *req)
{
	struct server *s = pss->server;
	struct sink_status ss;
	struct query_spec q;
	struct query_job *j;
	const char *why;
	char msg[200];

	if (!s->queries) {
		send_error(pss, req->id, "unavailable",
			   "history is served from the SQLite store, and this "
			   "server runs without one (--db none)");
		return;
	}
	if ((why = store_detached(s, &ss))) {
		send_error(pss, req->id, "unavailable", why);
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
	if (refuse_forbidden(pss, req,
			     (const char(*)[TICK_SYMBOL_MAX + 1])req->symbols, 1))
		return;
	history_spec(req, &q);
	j = query_submit(s->queries, &q, pss->wsi);
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
			protocol_write_pong(b, req->id, clock_wall_us());
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

	if (!rate_allow(pss, clock_wall_us())) {
		/* Refusals that keep coming with no pause are abuse: a
		 * client that backs off after a few errors is not. */
		if (++pss->refused_in_row > (unsigned)s->opt->ops_burst) {
			close_abusive(pss, "inbound message rate limit exceeded");
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

/* --------------------------------------------------------- query output */

static void
job_ready(void *owner, void *ctx)
{
	lws_callback_on_writable(owner);
}

/* The query workers' wake: only the connections whose jobs have news. */
static void
take_query_output(void *ctx)
{
	struct server *s = ctx;

	query_worker_take_ready(s->queries, job_ready, NULL);
}

static void
begin_shutdown(struct server *s)
{
	struct per_session_data__md *pss;

	if (s->stopping)
		return;
	s->stopping = true;
	s->stop_deadline_us = clock_wall_us() + SHUTDOWN_GRACE_US;
	log_info("shutting down: closing %s client connections",
		 s->sessions ? "all" : "no");
	for (pss = s->sessions; pss; pss = pss->next)
		close_with(pss, LWS_CLOSE_STATUS_GOINGAWAY,
			   "server shutting down");
}

/*
 * A token ran out while its connection was open: close with 4001 so the
 * client knows to fetch a new one and reconnect, rather than retry as
 * after a network error.
 */
static void
expire_session(struct per_session_data__md *pss)
{
	if (pss->close_status)
		return;
	pss->server->m.tokens_expired++;
	log_limited(LOG_INFO, "conn %llu (%s, sub '%s'): token expired, "
			      "closing with 4001",
		    (unsigned long long)pss->id, pss->peer, pss->claims.sub);
	close_with(pss, CLOSE_TOKEN_EXPIRED, "token expired");
}

/*
 * Periodic: heartbeats on idle connections, token expiry, log summaries.
 * One timer for the whole server instead of one per connection keeps the
 * per-write cost flat. Sessions are kept least recently written first, so
 * the heartbeat pass stops at the first one that wrote recently: it costs
 * the heartbeats due, not the connections open. Token expiry is checked
 * once a second, over every session.
 */
static void
housekeeping(lws_sorted_usec_list_t *sul)
{
	struct server *s = lws_container_of(sul, struct server, housekeeping);
	int64_t now = clock_wall_us(), idle = (int64_t)s->opt->heartbeat_ms * 1000;
	struct per_session_data__md *pss;

	for (pss = s->sessions; pss && now - pss->last_write_us >= idle;
	     pss = pss->next)
		lws_callback_on_writable(pss->wsi);
	if (s->auth && now >= s->next_expiry_check_us) {
		s->next_expiry_check_us = now + 1000000;
		for (pss = s->sessions; pss; pss = pss->next)
			if (auth_claims_expired(&pss->claims, now))
				expire_session(pss);
	}
	log_flush_suppressed();
	lws_sul_schedule(s->context, 0, &s->housekeeping, housekeeping,
			 HOUSEKEEPING_US);
}

/* ------------------------------------------------------- the ws protocol */

/*
 * Every ws write goes through here, to be counted, and to hold input back
 * while lws keeps output the kernel would not take.
 *
 * Why. lws_write() hands lws what the socket did not accept, and lws sends
 * it when the socket is writable again. A peer that sends a FIN meanwhile
 * (half-closes, or closes while its window is shut) makes its socket
 * readable for ever: lws reads 0, goes to close, finds output still to
 * flush and waits for a POLLOUT that a peer who reads nothing never
 * allows, re-reading the end of file on every loop turn. In libwebsockets
 * 4.1.6 that turn is its "forced service" loop, which retries the same
 * slot until the connection is gone: the whole server stopped there (100 %
 * CPU, nobody served, SIGTERM ignored). With input held back while output
 * waits, a FIN is not seen until the output has gone; a peer that never
 * takes it is dropped by the ping policy, without spinning.
 */
/* Count a frame written, and hold input back while lws holds output. */
static void
after_write(struct per_session_data__md *pss, size_t len)
{
	pss->server->m.ws_frames_sent++;
	pss->server->m.ws_bytes_sent += len;
	if (!pss->rx_paused && lws_partial_buffered(pss->wsi)) {
		pss->rx_paused = true;
		pss->server->m.rx_paused++;
		lws_rx_flow_control(pss->wsi, 0);
	}
}

static int
ws_write(struct per_session_data__md *pss, char *data, size_t len,
	 enum lws_write_protocol wp)
{
	if (lws_write(pss->wsi, (unsigned char *)data, len, wp) < (int)len)
		return -1;
	after_write(pss, len);
	return 0;
}

static int
write_text(struct per_session_data__md *pss, char *data, size_t len)
{
	return ws_write(pss, data, len, LWS_WRITE_TEXT);
}

/*
 * An update frame: compressed for a client that agreed to it, once for
 * every client that gets the same frame (see ws_deflate.h), else as text.
 */
static int
write_frame(struct per_session_data__md *pss, const char *frame, size_t len,
	    int64_t now)
{
	struct server *s = pss->server;
	unsigned char *z;
	size_t zlen;

	if (!pss->deflate)
		return write_text(pss, (char *)frame, len);
	zlen = ws_deflate_frame(s->deflate, engine_client_frame_id(pss->client),
				frame, len, now, &z);
	if (!zlen)
		return write_text(pss, (char *)frame, len);
	if (ws_deflate_write(pss->wsi, z, zlen) < (int)zlen)
		return -1;
	after_write(pss, zlen);
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

/*
 * Close with a status the client is told in a close frame. From the
 * receive callback, returning -1 does it, except for a compressed message:
 * lws 4.1.6 ignores what the callback returns for the buffers it inflates
 * after the first. From the writeable callback it must not: the
 * libwebsockets 4.1.6 of Debian is a _DEBUG build, whose libuv service
 * path closes a connection a second time when a callback asks for the
 * close ("uv repeat test"), and the second close kills the socket before
 * the close frame the first one queued is sent: the client would see 1006.
 * So in those cases the close is asked for from the connection's timer
 * callback instead, which closes once. Returns what the callback returns.
 */
static int
close_now(struct per_session_data__md *pss, int status, const char *reason,
	  bool from_receive)
{
	lws_close_reason(pss->wsi, status, (unsigned char *)reason,
			 strlen(reason));
	discard_pending_input(pss->wsi);
	if (from_receive && !pss->deflate)
		return -1;
	pss->close_armed = true;
	lws_set_timer_usecs(pss->wsi, 1);
	return 0;
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
		count_error(s, "internal");
		b = control_begin(pss);
		if (b)
			protocol_write_error(b, id, "internal", msg);
		lws_callback_on_writable(pss->wsi);
		return 1;
	}
	flags = lws_write_ws_flags(LWS_WRITE_TEXT, !pss->job_started, done);
	if (ws_write(pss, s->frame + LWS_PRE, n,
		     (enum lws_write_protocol)flags))
		return -1;
	pss->job_started = true;
	session_wrote(pss, clock_wall_us());
	if (done)
		history_pop(pss);
	lws_callback_on_writable(pss->wsi);
	return 0;
}

static int
on_writeable(struct per_session_data__md *pss)
{
	struct server *s = pss->server;
	int64_t now = clock_wall_us();
	bool more;
	int n;

	if (pss->close_status)
		return pss->close_armed ? 0
					: close_now(pss, pss->close_status,
						    pss->close_reason, false);
	/*
	 * lws calls this only once the output it held has gone. Input held
	 * back meanwhile (see ws_write) is read first: the next frame waits
	 * RX_WINDOW_US, so a request, a pong or a FIN from a peer whose every
	 * write fills its socket is still read. Only such peers pay the wait.
	 */
	if (pss->rx_paused) {
		pss->rx_paused = false;
		lws_rx_flow_control(pss->wsi, 1);
		lws_set_timer_usecs(pss->wsi, RX_WINDOW_US);
		return 0;
	}
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
		} else if (write_text(pss, jsonbuf_data(b), b->len)) {
			return -1;
		} else {
			control_pop(pss);
			session_wrote(pss, now);
		}
		if (pss->ctl_head || engine_client_has_pending(pss->client))
			lws_callback_on_writable(pss->wsi);
		return 0;
	}

	n = write_updates(pss, now, &more);
	if (n < 0)
		return -1;
	if (more)
		lws_callback_on_writable(pss->wsi);
	else if (!n && now - pss->last_write_us >=
			       (int64_t)s->opt->heartbeat_ms * 1000) {
		struct jsonbuf hb;

		jsonbuf_init(&hb, LWS_PRE);
		protocol_write_heartbeat(&hb, now);
		if (!jsonbuf_failed(&hb) &&
		    write_text(pss, jsonbuf_data(&hb), hb.len)) {
			jsonbuf_free(&hb);
			return -1;
		}
		jsonbuf_free(&hb);
		session_wrote(pss, now);
	}
	return 0;
}

/*
 * Write the client's next update frame, if one is due. Returns -1 when the
 * write failed, else the frames written (0 or 1); *more says whether more
 * is due at once.
 */
static int
write_updates(struct per_session_data__md *pss, int64_t now, bool *more)
{
	struct server *s = pss->server;
	int64_t next_due = 0;
	const char *frame;
	size_t n;

	/* The frame may be one the engine shares between clients in step:
	 * LWS_PRE writable bytes precede it, as lws_write() needs, and lws
	 * writes the same header there for each of them. */
	n = engine_client_frame(pss->client, now, s->frame, &frame, &next_due);
	*more = engine_client_has_pending(pss->client) && !next_due;
	if (n) {
		if (write_frame(pss, frame, n, now))
			return -1;
		session_wrote(pss, now);
		if (pss->ready_since_us)
			observe_latency(s, clock_mono_us() - pss->ready_since_us);
	}
	/*
	 * Updates that did not fit the frame have waited since ready_since_us
	 * as well, so it stays for the next frame. Updates held back by
	 * max_hz are a delay the client asked for: they are not measured.
	 */
	if (!*more)
		pss->ready_since_us = 0;
	/* Updates held back by max_hz: wake up when the first is due. */
	if (next_due && next_due != pss->timer_due_us) {
		pss->timer_due_us = next_due;
		lws_set_timer_usecs(pss->wsi, next_due > now ? next_due - now
							     : 1);
	}
	return n ? 1 : 0;
}

/*
 * Work the loop does for sessions on its idle turn, after the event that
 * asked for it:
 *
 * WORK_WRITE: updates are due and the socket is (almost always) writable,
 * so they are written at once instead of asking lws for a writeable
 * callback. Asking costs more than the write: libuv's uv_poll_start() takes
 * the socket out of epoll and puts it back on every change of interest,
 * so a writeable round trip is four epoll_ctl() calls per frame (31 % of
 * the loop's time with 1,000 clients of 10 symbols each). A session with
 * anything else to send first, or output lws still holds, goes the usual
 * way.
 *
 * WORK_INFLATE: a compressed message is handed over as libwebsockets
 * inflates it, one buffer at a time. With its libuv event library, 4.1.6
 * inflates the next buffer only when some socket has an event, so on a
 * quiet server the rest of a message waited for the next tick, or for the
 * client to give up. So while a session has a message partly delivered
 * and none of it left to read from the socket, lws is asked to service it
 * as if it were readable: it then inflates the next buffer (or, for a
 * message cut into frames by the client, finds nothing to read yet).
 */
/* Frames written at once to one client before the others have their turn;
 * beyond them it waits for a writeable callback. */
#define DIRECT_FRAMES_MAX 4

static void
write_direct(struct per_session_data__md *pss)
{
	int64_t now = clock_wall_us();
	bool more = true;
	int i;

	if (pss->close_status || pss->close_armed)
		return;
	for (i = 0; more && i < DIRECT_FRAMES_MAX; i++) {
		if (pss->rx_paused || pss->ctl_head || pss->job_count ||
		    lws_partial_buffered(pss->wsi))
			break;
		if (write_updates(pss, now, &more) < 0) {
			close_now(pss, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
				  "write failed", false);
			return;
		}
	}
	if (more)
		lws_callback_on_writable(pss->wsi);
}

static void
work_idle_cb(uv_idle_t *h)
{
	struct server *s = h->data;
	struct per_session_data__md *pss = s->work;

	/* A session the work below puts back goes on a new list. */
	s->work = NULL;
	while (pss) {
		struct per_session_data__md *next = pss->work_next;
		unsigned work = pss->work;
		struct lws_pollfd pfd;

		pss->work = 0;
		pss->work_next = NULL;
		if (work & WORK_WRITE)
			write_direct(pss);
		/* Last: the service may close the session. */
		if (work & WORK_INFLATE) {
			pfd.fd = lws_get_socket_fd(pss->wsi);
			pfd.events = pfd.revents = LWS_POLLIN;
			if (pfd.fd >= 0 && !pss->rx_paused)
				lws_service_fd(s->context, &pfd);
		}
		pss = next;
	}
	if (!s->work)
		uv_idle_stop(h);
}

static void
session_work(struct per_session_data__md *pss, unsigned work)
{
	struct server *s = pss->server;

	if (!pss->work) {
		pss->work_next = s->work;
		s->work = pss;
		uv_idle_start(&s->work_idle, work_idle_cb);
	}
	pss->work |= work;
}

static void
work_forget(struct per_session_data__md *pss)
{
	struct per_session_data__md **p = &pss->server->work;

	if (!pss->work)
		return;
	while (*p && *p != pss)
		p = &(*p)->work_next;
	if (*p)
		*p = pss->work_next;
	pss->work = 0;
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
		log_limited(LOG_INFO, "conn %llu (%s): %s, closing with 1009",
			    (unsigned long long)pss->id, pss->peer, reason);
		return close_now(pss, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
				 reason, true);
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
	    lws_remaining_packet_payload(pss->wsi)) {
		if (pss->deflate && !lws_remaining_packet_payload(pss->wsi))
			session_work(pss, WORK_INFLATE);
		return 0;
	}
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

/* ------------------------------------------------------------- admission */

/* Make untrusted header text safe to quote in a log line. */
static void
sanitize(char *text)
{
	for (; *text; text++)
		if ((unsigned char)*text < 0x20 || (unsigned char)*text >= 0x7f)
			*text = '?';
}

static bool
is_loopback(const char *host)
{
	return !strcmp(host, "127.0.0.1") || !strcmp(host, "::1") ||
	       !strcmp(host, "[::1]") || !strcmp(host, "localhost");
}

/* The name part of a Host header ("example.com:8080" → "example.com",
 * "[::1]:8080" → "[::1]"), copied into out. */
static void
host_name(const char *host, char *out, size_t len)
{
	const char *end = host[0] == '[' ? strchr(host, ']') : strrchr(host, ':');
	size_t n = end ? (size_t)(end - host) + (host[0] == '[') : strlen(host);

	snprintf(out, len, "%.*s", (int)n, host);
}

/* Compare an origin's "host[:port]" with a Host header, a missing port
 * standing for the scheme's default (browsers leave ":443" out of Origin;
 * some clients put it in Host). */
static bool
same_authority(const char *a, const char *host, bool https)
{
	const char *dflt = https ? ":443" : ":80";
	size_t la = strlen(a), lh = strlen(host), ld = strlen(dflt);

	if (la == lh)
		return !strncasecmp(a, host, la);
	if (la == lh + ld)
		return !strncasecmp(a, host, lh) && !strcmp(a + lh, dflt);
	if (lh == la + ld)
		return !strncasecmp(a, host, la) && !strcmp(host + la, dflt);
	return false;
}

/*
 * The Origin check keeps other web sites' pages from using a visitor's
 * browser, and the token cookie it holds, to read the stream. A request
 * without Origin comes from no web page (a script, a feed handler, curl)
 * and passes: its token, if one is required, is its check.
 */
static bool
origin_allowed(struct server *s, struct lws *wsi, char *why, size_t whylen)
{
	char origin[256], host[256], name[256];
	const char *authority = NULL;
	bool https = false;
	size_t i;

	if (!lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN))
		return true;
	if (lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) <= 0) {
		snprintf(why, whylen, "Origin header over %zu bytes",
			 sizeof origin - 1);
		return false;
	}
	sanitize(origin);
	if (s->opt->allow_origin_count) {
		/* Exact, but host names know no case. */
		for (i = 0; i < s->opt->allow_origin_count; i++)
			if (!strcasecmp(origin, s->opt->allow_origins[i]))
				return true;
		snprintf(why, whylen, "Origin '%.100s' is not an --allow-origin",
			 origin);
		return false;
	}
	if (lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) <= 0)
		host[0] = '\0';
	sanitize(host);
	if (!strncasecmp(origin, "https://", 8)) {
		authority = origin + 8;
		https = true;
	} else if (!strncasecmp(origin, "http://", 7)) {
		authority = origin + 7;
	}
	if (!authority || !host[0] || !same_authority(authority, host, https)) {
		snprintf(why, whylen,
			 "Origin '%.100s' is not this server (Host '%.60s'); "
			 "allow it with --allow-origin",
			 origin, host);
		return false;
	}
	/*
	 * Origin and Host agree, but on a loopback listener they must also
	 * name loopback: a page whose own name was made to resolve to
	 * 127.0.0.1 (DNS rebinding) sends its own name in both.
	 */
	host_name(host, name, sizeof name);
	if (is_loopback(s->opt->listen_host) && !is_loopback(name)) {
		snprintf(why, whylen,
			 "Origin and Host '%.60s' name no loopback address on "
			 "a loopback listener (DNS rebinding?); allow it with "
			 "--allow-origin",
			 host);
		return false;
	}
	return true;
}

/*
 * The token a request carries, from the first place that has one:
 * "Authorization: Bearer", then ?token= on the URL, then the cookie
 * "token". A present but malformed first choice is not skipped for the
 * next: a request means one token. Returns a pointer into buf and its
 * length, or NULL with the reason in why.
 */
static const char *
request_token(struct lws *wsi, char *buf, size_t buflen, size_t *len,
	      char *why, size_t whylen)
{
	const char *t;

	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION)) {
		if (lws_hdr_copy(wsi, buf, (int)buflen,
				 WSI_TOKEN_HTTP_AUTHORIZATION) < 0) {
			snprintf(why, whylen,
				 "Authorization header over %zu bytes",
				 buflen - 1);
			return NULL;
		}
		t = auth_bearer(buf, len);
		if (!t)
			snprintf(why, whylen,
				 "Authorization header is not \"Bearer "
				 "<token>\"");
		return t;
	}
	t = lws_get_urlarg_by_name(wsi, "token=", buf, (int)buflen);
	if (t) {
		*len = strlen(t);
		if (!*len) {
			snprintf(why, whylen, "empty ?token=");
			return NULL;
		}
		return t;
	}
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COOKIE) &&
	    lws_hdr_copy(wsi, buf, (int)buflen, WSI_TOKEN_HTTP_COOKIE) > 0 &&
	    (t = auth_find_cookie(buf, "token", len)))
		return t;
	snprintf(why, whylen,
		 "no token (Authorization: Bearer, ?token= or cookie token=)");
	return NULL;
}

/* Verify the request's token into *claims (released by the caller with
 * auth_claims_free). Returns 0, or -1 with the reason, for the log, in why. */
static int
authenticate(struct server *s, struct lws *wsi, struct auth_claims *claims,
	     char *why, size_t whylen)
{
	char buf[TOKEN_HEADER_MAX];
	const char *token;
	size_t len = 0;

	token = request_token(wsi, buf, sizeof buf, &len, why, whylen);
	if (!token)
		return -1;
	return auth_verify(s->auth, token, len, clock_wall_us(), claims, why, whylen);
}

/*
 * The status line and headers of a refusal. At CONFIRM_UPGRADE lws has not
 * yet noted the request's HTTP version, and lws_add_http_header_status()
 * would answer "HTTP/1.0", which WebSocket clients reject as unreadable:
 * an upgrade is always HTTP/1.1, so its status line is written here, with
 * the two security headers that matter for a plain-text body, and the
 * connection is closed after it (lws does so for an upgrade it did not
 * take).
 */
static int
refusal_status(struct lws *wsi, enum refusal r, bool upgrade,
	       unsigned char **p, unsigned char *end)
{
	static const char csp[] = "default-src 'none'";

	if (!upgrade)
		return lws_add_http_header_status(wsi, refusals[r].status, p,
						  end);
	return lws_add_http_header_by_name(
		       wsi, NULL,
		       (const unsigned char *)refusals[r].status_line,
		       (int)strlen(refusals[r].status_line), p, end) ||
	       lws_add_http_header_by_name(
		       wsi, (const unsigned char *)"content-security-policy:",
		       (const unsigned char *)csp, (int)strlen(csp), p, end) ||
	       lws_add_http_header_by_name(
		       wsi, (const unsigned char *)"x-content-type-options:",
		       (const unsigned char *)"nosniff", 7, p, end) ||
	       lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
					    (const unsigned char *)"close", 5,
					    p, end);
}

/*
 * Answer with a refusal and nothing more: the status, a one-line body that
 * says no more than the status does, and for 401 the challenge RFC 6750
 * asks for. One lws_write, as lws_return_http_status() does it. Returns 0,
 * or -1 when even that failed.
 */
static int
write_refusal(struct lws *wsi, enum refusal r, bool upgrade)
{
	unsigned char buf[LWS_PRE + 2048], *start = buf + LWS_PRE, *p = start,
					   *end = buf + sizeof buf;
	const char *body = refusals[r].body;
	size_t len = strlen(body);
	char clen[24];
	int n;

	n = snprintf(clen, sizeof clen, "%zu", len);
	if (refusal_status(wsi, r, upgrade, &p, end) ||
	    lws_add_http_header_by_token(
		    wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
		    (const unsigned char *)"text/plain; charset=utf-8", 25, &p,
		    end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH,
					 (const unsigned char *)clen, n, &p,
					 end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
					 (const unsigned char *)"no-store", 8,
					 &p, end))
		return -1;
	if (r == REFUSED_UNAUTHORIZED &&
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_WWW_AUTHENTICATE,
					 (const unsigned char *)"Bearer", 6, &p,
					 end))
		return -1;
	if ((r == REFUSED_SERVER_FULL || r == REFUSED_PER_IP) &&
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_RETRY_AFTER,
					 (const unsigned char *)"5", 1, &p, end))
		return -1;
	if (lws_finalize_http_header(wsi, &p, end) || (size_t)(end - p) < len)
		return -1;
	memcpy(p, body, len);
	p += len;
	n = lws_ptr_diff(p, start);
	return lws_write(wsi, start, (size_t)n, LWS_WRITE_HTTP) == n ? 0 : -1;
}

/* One log limiter per kind of refusal, so that a flood of one kind (bad
 * tokens, say) does not hide the others. */
static struct log_limit refusal_log[REFUSED_COUNT];

/* who: "conn 12 (10.0.0.7)" or "http (10.0.0.7)"; what was refused. */
static void
log_refusal(const char *who, const char *what, enum refusal r,
	    const char *why)
{
	log_msg_limited(&refusal_log[r], LOG_INFO,
			"%s: %s refused with %u %s: %s", who, what,
			refusals[r].status, refusals[r].label, why);
}

static void
peer_of(struct lws *wsi, char *peer, size_t len)
{
	if (!lws_get_peer_simple(wsi, peer, len))
		snprintf(peer, len, "?");
}

/*
 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: admit the WebSocket upgrade or refuse
 * it with an HTTP status (see "Admission" at the top). Returns 0 to let
 * the upgrade go on, 1 when a refusal was written (lws then ends the HTTP
 * transaction), -1 to hang up.
 */
static int
admit_upgrade(struct server *s, struct lws *wsi)
{
	struct admission *a = &s->admitted;
	struct auth_claims claims;
	char peer[PEER_MAX], why[300], who[PEER_MAX + 32];
	uint64_t id = ++s->next_conn_id;
	enum refusal r;
	size_t n;

	memset(&claims, 0, sizeof claims);
	peer_of(wsi, peer, sizeof peer);
	if (s->stopping) {
		r = REFUSED_SHUTTING_DOWN;
		snprintf(why, sizeof why, "the server is shutting down");
	} else if (!origin_allowed(s, wsi, why, sizeof why)) {
		r = REFUSED_ORIGIN;
	} else if (s->auth && authenticate(s, wsi, &claims, why, sizeof why)) {
		r = REFUSED_UNAUTHORIZED;
	} else if (s->session_count >= s->opt->max_connections) {
		r = REFUSED_SERVER_FULL;
		snprintf(why, sizeof why,
			 "%zu connections open, the --max-connections limit",
			 s->session_count);
	} else if ((n = peer_connections(s, peer)) >=
		   s->opt->max_connections_per_ip) {
		r = REFUSED_PER_IP;
		snprintf(why, sizeof why,
			 "%zu connections open from this address, the "
			 "--max-connections-per-ip limit",
			 n);
	} else {
		auth_claims_free(&a->claims);
		a->wsi = wsi;
		a->conn_id = id;
		memcpy(a->peer, peer, sizeof a->peer);
		a->claims = claims;
		return 0;
	}
	auth_claims_free(&claims);
	s->m.refused_ws[r]++;
	snprintf(who, sizeof who, "conn %llu (%s)", (unsigned long long)id,
		 peer);
	log_refusal(who, "WebSocket upgrade", r, why);
	return write_refusal(wsi, r, true) ? -1 : 1;
}

/* ESTABLISHED: move what admission decided into the new session. Returns
 * -1 when this wsi was not admitted. */
static int
take_admission(struct server *s, struct lws *wsi,
	       struct per_session_data__md *pss)
{
	struct admission *a = &s->admitted;

	if (a->wsi != wsi) {
		log_error("a WebSocket connection arrived without passing "
			  "admission; refused");
		return -1;
	}
	pss->id = a->conn_id;
	memcpy(pss->peer, a->peer, sizeof pss->peer);
	pss->claims = a->claims;
	pss->deflate = a->deflate;
	memset(a, 0, sizeof *a);
	return 0;
}

/*
 * Whether to take a client's permessage-deflate offer: with compression
 * on, and an offer ws_deflate can honour. What was decided waits with the
 * admission for ESTABLISHED.
 */
static bool
confirm_compression(struct server *s, struct lws *wsi, const char *name)
{
	char offer[256];

	if (!s || !s->deflate || !name || strcmp(name, "permessage-deflate") ||
	    s->admitted.wsi != wsi)
		return false;
	if (lws_hdr_copy(wsi, offer, sizeof offer, WSI_TOKEN_EXTENSIONS) < 0 ||
	    !ws_deflate_offer_acceptable(offer))
		return false;
	s->admitted.deflate = true;
	return true;
}

static int
callback_md(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	    void *in, size_t len)
{
	struct per_session_data__md *pss = user;
	struct server *s = lws_context_user(lws_get_context(wsi));
	struct jsonbuf *b;

	switch (reason) {
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		/* Still plain HTTP: the place to refuse with a status. */
		if (!s || !in || strcasecmp(in, "websocket"))
			break;
		return admit_upgrade(s, wsi);

	case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY:
		/* Between admission and ESTABLISHED; 0 takes the offer. */
		return confirm_compression(s, wsi, in) ? 0 : 1;

	case LWS_CALLBACK_ESTABLISHED:
		memset(pss, 0, sizeof *pss);
		if (take_admission(s, wsi, pss))
			return -1;
		pss->wsi = wsi;
		pss->tokens = s->opt->ops_burst;
		pss->tokens_at_us = clock_wall_us();
		pss->last_write_us = pss->tokens_at_us;
		pss->client = engine_client_create(s->engine, pss);
		if (!pss->client) {
			auth_claims_free(&pss->claims);
			return -1;
		}
		/* A wildcard picks up only the symbols the token grants;
		 * clients whose tokens grant the same may share a group. */
		if (s->auth && !pss->claims.allow_all) {
			char *key = claims_key(&pss->claims);

			engine_client_set_filter(pss->client, claims_allow,
						 &pss->claims, key);
			free(key);
		}
		pss->server = s;
		session_append(s, pss);
		s->session_count++;
		peer_add(s, pss->peer, 1);
		s->m.connections_opened++;
		b = control_begin(pss);
		if (!b)
			return -1;
		protocol_write_hello(b, pipeline_epoch(s->pipeline),
				     cli_version_string,
				     s->opt->heartbeat_ms,
				     s->parts.feed_kind ? s->parts.feed_kind
							: "none");
		lws_callback_on_writable(wsi);
		if (s->auth)
			log_debug("conn %llu (%s): open, sub '%s'",
				  (unsigned long long)pss->id, pss->peer,
				  pss->claims.sub);
		else
			log_debug("conn %llu (%s): open",
				  (unsigned long long)pss->id, pss->peer);
		if (s->stopping)
			close_with(pss, LWS_CLOSE_STATUS_GOINGAWAY,
				   "server shutting down");
		break;

	case LWS_CALLBACK_CLOSED:
		/* lws calls this once, after the last callback for the wsi:
		 * the safe place to free what the session owns. */
		if (!pss || !pss->server)
			break;
		session_unlink(s, pss);
		work_forget(pss);
		s->session_count--;
		peer_add(s, pss->peer, -1);
		/* lws sends the close frame after this; shutdown waits for it
		 * (WSI_DESTROY below). */
		pss->awaiting_destroy = true;
		s->closing++;
		/* The engine client goes first: its filter reads the claims. */
		engine_client_destroy(pss->client);
		pss->client = NULL;
		auth_claims_free(&pss->claims);
		while (pss->ctl_head)
			control_pop(pss);
		while (pss->job_count)
			history_pop(pss);
		free(pss->rx);
		pss->rx = NULL;
		log_debug("conn %llu (%s): closed", (unsigned long long)pss->id,
			  pss->peer);
		pss->server = NULL;
		break;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!pss->server)
			break;
		return on_writeable(pss);

	case LWS_CALLBACK_WSI_DESTROY:
		/* Every wsi of the vhost comes here; only the user space of
		 * a wsi bound to this protocol is a per_session_data__md. */
		if (s && pss && lws_get_protocol(wsi) &&
		    lws_get_protocol(wsi)->callback == callback_md &&
		    pss->awaiting_destroy) {
			pss->awaiting_destroy = false;
			s->closing--;
		}
		break;

	case LWS_CALLBACK_RECEIVE:
		if (!pss->server || pss->close_status || pss->close_armed)
			break;
		return on_receive(pss, in, len);

	case LWS_CALLBACK_TIMER:
		if (pss->server && pss->close_armed)
			return -1;
		if (pss->server) {
			pss->timer_due_us = 0;
			lws_callback_on_writable(wsi);
		}
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
/* Write the status line and headers of an API answer (never cached) and ask
 * for HTTP_WRITEABLE to send the body. len may be
 * LWS_ILLEGAL_HTTP_CONTENT_LEN: the body then ends with the connection. */
static int
http_send_headers(struct per_session_data__http *h, unsigned status,
		  const char *content_type, lws_filepos_t len)
{
	unsigned char headers[LWS_PRE + 1024], *start = headers + LWS_PRE,
					       *p = start,
					       *end = headers + sizeof headers;

	if (lws_add_http_common_headers(h->wsi, status, content_type, len, &p,
					end) ||
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
http_respond(struct per_session_data__http *h, unsigned status,
	     const char *content_type, char *body, size_t len)
{
	h->body = body;
	h->body_len = len;
	h->body_sent = 0;
	return http_send_headers(h, status, content_type, (lws_filepos_t)len);
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
	h->job = query_submit(s->queries, q, h->wsi);
	if (!h->job)
		return http_respond_text(h, 500, "out of memory\n");
	h->next = s->http_sessions;
	s->http_sessions = h;
	h->listed = true;
	/* The length is not known before the rows are read: the body ends
	 * when the connection closes. */
	return http_send_headers(h, 200, content_type,
				 LWS_ILLEGAL_HTTP_CONTENT_LEN);
}

/*
 * With a token: refuse (403, naming it) a symbol= the token does not
 * grant. Returns 0, or -1 after answering.
 */
static int
http_check_entitled(struct server *s, struct per_session_data__http *h,
		    const struct auth_claims *claims, const struct query_spec *q)
{
	size_t i;

	if (!claims)
		return 0;
	for (i = 0; i < q->symbol_count; i++) {
		if (auth_claims_allow(claims, q->symbols[i]))
			continue;
		s->m.refused_api[REFUSED_FORBIDDEN]++;
		log_limited(LOG_INFO, "http (%s, sub '%s'): not entitled to '%s'",
			    h->peer, claims->sub, q->symbols[i]);
		http_respond_text(h, 403, "not entitled to '%s'\n",
				  q->symbols[i]);
		return -1;
	}
	return 0;
}

struct entitled_symbols {
	const struct auth_claims *claims;
	struct query_spec *q;
	size_t total; /* entitled symbols with data, also beyond the spec's room */
};

static void
collect_entitled(const struct symbol_state *st, void *ctx)
{
	struct entitled_symbols *e = ctx;

	if (!auth_claims_allow(e->claims, st->symbol))
		return;
	if (e->q->symbol_count < QUERY_MAX_SYMBOLS)
		memcpy(e->q->symbols[e->q->symbol_count++], st->symbol,
		       sizeof e->q->symbols[0]);
	e->total++;
}

static int
compare_symbol(const void *a, const void *b)
{
	return strcmp(a, b);
}

/*
 * An export without symbol= means "everything": for a token that does not
 * grant "*", everything it grants. Those are the engine's symbols (every
 * stored symbol has its state there) that the token allows. Returns 0 with
 * them in q; else the request has been answered (an empty export when
 * there are none, 400 when there are more than one export takes) and the
 * result is 1, or -1 when even the answer failed.
 */
static int
http_export_entitled(struct per_session_data__http *h,
		     const struct auth_claims *claims, struct query_spec *q)
{
	struct server *s = lws_context_user(lws_get_context(h->wsi));
	struct entitled_symbols e = {.claims = claims, .q = q};
	struct jsonbuf b;
	char *body;

	engine_foreach_symbol(s->engine, collect_entitled, &e);
	if (e.total > QUERY_MAX_SYMBOLS)
		return http_respond_text(h, 400,
					 "your token grants %zu symbols with "
					 "data; an export takes at most %d: "
					 "name them with symbol=\n",
					 e.total, QUERY_MAX_SYMBOLS)
			       ? -1
			       : 1;
	if (e.total) {
		qsort(q->symbols, q->symbol_count, sizeof q->symbols[0],
		      compare_symbol);
		return 0;
	}
	/* Nothing granted has data: the export is empty, but well formed. */
	jsonbuf_init(&b, 0);
	if (!q->jsonl)
		export_write_csv_header(&b);
	body = strndup(jsonbuf_data(&b) ? jsonbuf_data(&b) : "", b.len);
	jsonbuf_free(&b);
	if (!body)
		return http_respond_text(h, 500, "out of memory\n") ? -1 : 1;
	return http_respond(h, 200,
			    q->jsonl ? "application/x-ndjson"
				     : "text/csv; charset=utf-8",
			    body, strlen(body))
		       ? -1
		       : 1;
}

static int
http_export(struct server *s, struct per_session_data__http *h,
	    const struct auth_claims *claims)
{
	struct query_spec q;
	char buf[64];
	const char *fmt;
	int rc;

	memset(&q, 0, sizeof q);
	q.kind = QUERY_EXPORT;
	if (http_query_args(h, &q, true))
		return 0;
	fmt = http_arg(h->wsi, "format", 0, buf, sizeof buf);
	if (fmt && strcmp(fmt, "csv") && strcmp(fmt, "jsonl"))
		return http_respond_text(h, 400,
					 "format='%s': use csv or jsonl\n", fmt);
	q.jsonl = fmt && !strcmp(fmt, "jsonl");
	if (http_check_entitled(s, h, claims, &q))
		return 0;
	if (claims && !claims->allow_all && !q.symbol_count) {
		rc = http_export_entitled(h, claims, &q);
		if (rc)
			return rc < 0 ? -1 : 0;
	}
	return http_start_job(s, h, &q,
			      q.jsonl ? "application/x-ndjson"
				      : "text/csv; charset=utf-8");
}

static int
http_bars(struct server *s, struct per_session_data__http *h,
	  const struct auth_claims *claims)
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
	if (http_check_entitled(s, h, claims, &q))
		return 0;
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

/*
 * /metrics writers. Each family gets its HELP and TYPE lines once, then its
 * samples, as the Prometheus text format (version 0.0.4) wants.
 */
static void
metric_family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
metric_u64(FILE *f, const char *name, const char *type, const char *help,
	   uint64_t v)
{
	metric_family(f, name, type, help);
	fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

static void
metric_double(FILE *f, const char *name, const char *type, const char *help,
	      double v)
{
	metric_family(f, name, type, help);
	fprintf(f, "%s %.6f\n", name, v);
}

/* A label value with \, " and newline escaped as the format wants. */
static void
metric_label_value(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f);
		if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

static void
metric_labeled(FILE *f, const char *name, const char *label,
	       const char *value, uint64_t v)
{
	fprintf(f, "%s{%s=\"", name, label);
	metric_label_value(f, value);
	fprintf(f, "\"} %llu\n", (unsigned long long)v);
}

static void
metrics_connections(struct server *s, FILE *f)
{
	size_t i;

	metric_u64(f, "publisher_start_time_seconds", "gauge",
		   "When the server started, in seconds since the epoch.",
		   (uint64_t)s->started);
	metric_u64(f, "publisher_connections", "gauge",
		   "Open WebSocket connections.", s->session_count);
	metric_u64(f, "publisher_connections_max", "gauge",
		   "The --max-connections limit.", s->opt->max_connections);
	metric_u64(f, "publisher_connections_opened_total", "counter",
		   "WebSocket connections admitted.", s->m.connections_opened);
	metric_family(f, "publisher_handshakes_refused_total", "counter",
		      "WebSocket upgrades refused before the handshake, by "
		      "reason.");
	for (i = 0; i < REFUSED_COUNT; i++)
		if (i != REFUSED_FORBIDDEN)
			metric_labeled(f, "publisher_handshakes_refused_total",
				       "reason", refusals[i].label,
				       s->m.refused_ws[i]);
	metric_family(f, "publisher_api_refused_total", "counter",
		      "/api requests refused, by reason.");
	metric_labeled(f, "publisher_api_refused_total", "reason",
		       refusals[REFUSED_UNAUTHORIZED].label,
		       s->m.refused_api[REFUSED_UNAUTHORIZED]);
	metric_labeled(f, "publisher_api_refused_total", "reason",
		       refusals[REFUSED_ORIGIN].label,
		       s->m.refused_api[REFUSED_ORIGIN]);
	metric_labeled(f, "publisher_api_refused_total", "reason",
		       refusals[REFUSED_FORBIDDEN].label,
		       s->m.refused_api[REFUSED_FORBIDDEN]);
	metric_family(f, "publisher_auth_failures_total", "counter",
		      "Requests refused for a missing, bad or expired token.");
	metric_labeled(f, "publisher_auth_failures_total", "endpoint", "ws",
		       s->m.refused_ws[REFUSED_UNAUTHORIZED]);
	metric_labeled(f, "publisher_auth_failures_total", "endpoint", "api",
		       s->m.refused_api[REFUSED_UNAUTHORIZED]);
	metric_u64(f, "publisher_tokens_expired_total", "counter",
		   "Connections closed with 4001 because their token expired.",
		   s->m.tokens_expired);
}

static void
metrics_stream(struct server *s, FILE *f)
{
	struct engine_stats es;
	struct pipeline_stats ps;
	uint64_t cumulative = 0;
	size_t i;

	engine_get_stats(s->engine, &es);
	pipeline_get_stats(s->pipeline, &ps);
	metric_u64(f, "publisher_symbols", "gauge", "Symbols with data.",
		   es.symbols);
	metric_u64(f, "publisher_subscriptions", "gauge",
		   "Subscriptions held.", es.subscriptions);
	metric_u64(f, "publisher_ticks_applied_total", "counter",
		   "Ticks applied by the engine.", es.ticks_applied);
	metric_u64(f, "publisher_ticks_rejected_total", "counter",
		   "Ticks the engine refused.", es.ticks_rejected);
	metric_u64(f, "publisher_engine_batches_total", "counter",
		   "Drains of the tick queue that moved ticks into the "
		   "engine.",
		   ps.drains);
	metric_u64(f, "publisher_engine_batch_ticks_total", "counter",
		   "Ticks moved by those drains (divide by the batches for "
		   "the mean batch).",
		   ps.drained_ticks);
	metric_u64(f, "publisher_updates_sent_total", "counter",
		   "Snapshots and deltas written to clients.", es.updates_sent);
	metric_u64(f, "publisher_ticks_conflated_total", "counter",
		   "Ticks merged away by conflation.", es.ticks_conflated);
	metric_u64(f, "publisher_encodings_total", "counter",
		   "Snapshot and delta encodings made.", es.encodings);
	metric_u64(f, "publisher_encodings_shared_total", "counter",
		   "Updates served from an encoding made for another client.",
		   es.encodings_shared);
	metric_u64(f, "publisher_fanout_groups", "gauge",
		   "Subscription groups: clients with the same subscriptions "
		   "share one.", es.groups);
	metric_u64(f, "publisher_fanout_rounds_total", "counter",
		   "Rounds closed by flushes (one per group with news).",
		   es.rounds);
	metric_u64(f, "publisher_fanout_frames_shared_total", "counter",
		   "Update frames sent as the same bytes another client got.",
		   es.frames_shared);
	metric_u64(f, "publisher_fanout_catch_ups_total", "counter",
		   "Times a client fell out of its group's rhythm and got a "
		   "merged frame of its own.",
		   es.catch_ups);
	metric_u64(f, "publisher_ws_frames_sent_total", "counter",
		   "WebSocket frames written (updates, replies, heartbeats).",
		   s->m.ws_frames_sent);
	metric_u64(f, "publisher_ws_bytes_sent_total", "counter",
		   "WebSocket payload bytes written (compressed when sent "
		   "so).",
		   s->m.ws_bytes_sent);
	if (s->deflate) {
		struct ws_deflate_stats ds;

		ws_deflate_get_stats(s->deflate, &ds);
		metric_u64(f, "publisher_deflate_shared_frames_total",
			   "counter",
			   "Frames shared by clients in step, compressed once.",
			   ds.shared_frames);
		metric_u64(f, "publisher_deflate_shared_reused_total",
			   "counter",
			   "Times another client got such a frame already "
			   "compressed.",
			   ds.shared_reused);
		metric_u64(f, "publisher_deflate_solo_frames_total", "counter",
			   "Frames of one client alone, compressed for it.",
			   ds.solo_frames);
		metric_u64(f, "publisher_deflate_solo_over_budget_total",
			   "counter",
			   "Frames of one client alone sent as text: the "
			   "compression budget for those was spent.",
			   ds.solo_over_budget);
		metric_u64(f, "publisher_deflate_bytes_in_total", "counter",
			   "Text bytes compressed.", ds.bytes_in);
		metric_u64(f, "publisher_deflate_bytes_out_total", "counter",
			   "What those bytes came to.", ds.bytes_out);
	}
	metric_u64(f, "publisher_ws_input_paused_total", "counter",
		   "Times a connection's input was held back while the kernel "
		   "would not take its output.",
		   s->m.rx_paused);
	metric_u64(f, "publisher_http_bytes_sent_total", "counter",
		   "HTTP body bytes written by /api, /metrics and /healthz.",
		   s->m.http_bytes_sent);
	metric_family(f, "publisher_errors_sent_total", "counter",
		      "Error replies sent to WebSocket clients, by code.");
	for (i = 0; i <= N_ERROR_CODES; i++)
		metric_labeled(f, "publisher_errors_sent_total", "code",
			       i < N_ERROR_CODES ? error_codes[i] : "other",
			       s->m.errors[i]);

	metric_family(f, "publisher_update_latency_seconds", "histogram",
		      "From the engine flush that gave an idle client "
		      "something to send to the write that sent it.");
	for (i = 0; i < N_LATENCY_BUCKETS; i++) {
		cumulative += s->m.latency_le[i];
		fprintf(f, "publisher_update_latency_seconds_bucket{le=\"%g\"} "
			   "%llu\n",
			latency_buckets[i], (unsigned long long)cumulative);
	}
	fprintf(f,
		"publisher_update_latency_seconds_bucket{le=\"+Inf\"} %llu\n"
		"publisher_update_latency_seconds_sum %.6f\n"
		"publisher_update_latency_seconds_count %llu\n",
		(unsigned long long)s->m.latency_count, s->m.latency_sum,
		(unsigned long long)s->m.latency_count);
}

static void
metrics_feed_and_store(struct server *s, FILE *f)
{
	struct feed_status fs;
	struct store_stats ss;
	struct pipeline_stats ps;
	const char *kind;

	memset(&fs, 0, sizeof fs);
	if (pipeline_feed(s->pipeline))
		feed_get_status(pipeline_feed(s->pipeline), &fs);
	pipeline_get_stats(s->pipeline, &ps);
	kind = fs.kind ? fs.kind : "none";
	metric_family(f, "publisher_feed_running", "gauge",
		      "1 while the feed's thread is alive and producing.");
	metric_labeled(f, "publisher_feed_running", "kind", kind, fs.running);
	metric_family(f, "publisher_feed_finished", "gauge",
		      "1 once the feed reached its end (a replay without "
		      "loop).");
	metric_labeled(f, "publisher_feed_finished", "kind", kind, fs.finished);
	metric_u64(f, "publisher_feed_ticks_total", "counter",
		   "Ticks the feed produced.", fs.ticks);
	metric_u64(f, "publisher_feed_bad_lines_total", "counter",
		   "Input lines the feed skipped.", fs.bad_lines);
	metric_u64(f, "publisher_tick_queue_depth", "gauge",
		   "Ticks waiting between feed and engine.",
		   ps.queue_depth);
	metric_u64(f, "publisher_log_lines_suppressed_total", "counter",
		   "Log lines held back by the per-site rate limits.",
		   log_suppressed_total());
	if (!s->parts.store)
		return;
	store_get_stats(s->parts.store, &ss);
	metric_u64(f, "publisher_store_ticks_written_total", "counter",
		   "Ticks committed to SQLite.", ss.ticks_written);
	metric_u64(f, "publisher_store_commits_total", "counter",
		   "Store transactions committed.", ss.commits);
	metric_u64(f, "publisher_store_last_batch", "gauge",
		   "Ticks in the last commit.", ss.last_batch);
	metric_u64(f, "publisher_store_queued", "gauge",
		   "Ticks waiting for the store writer.", ss.queued);
	metric_double(f, "publisher_store_lag_seconds", "gauge",
		      "Age of the oldest tick waiting for the writer.",
		      (double)ss.lag_us / 1e6);
	metric_u64(f, "publisher_store_write_errors_total", "counter",
		   "Failed store commits.", ss.write_errors);
	metric_u64(f, "publisher_store_ticks_refused_total", "counter",
		   "Ticks the store did not keep (invalid, or seq not after "
		   "the stored one).",
		   ss.ticks_refused);
	metric_u64(f, "publisher_store_failing", "gauge",
		   "1 while the last commit attempt failed.", ss.failing);
	metric_u64(f, "publisher_store_ticks_dropped_total", "counter",
		   "Ticks served live that the store did not keep (it was "
		   "behind or failing); recorded as gaps.",
		   ss.ticks_dropped);
	metric_u64(f, "publisher_store_gaps_started_total", "counter",
		   "Times the store began dropping ticks.", ss.gaps_started);
	metric_u64(f, "publisher_store_gaps_written_total", "counter",
		   "Gap rows (one symbol's dropped seqs) committed.",
		   ss.gaps_written);
}

/* The Redis link of an ingest or an edge (publisher/redis_link.h). */
static void
metrics_redis(struct server *s, FILE *f)
{
	if (s->parts.redis_pub) {
		struct redis_publisher_stats ps;

		redis_publisher_get_stats(s->parts.redis_pub, &ps);
		metric_family(f, "publisher_redis_connected", "gauge",
			      "1 while the link to Redis is up.");
		metric_labeled(f, "publisher_redis_connected", "role", "ingest",
			       ps.connected);
		metric_double(f, "publisher_redis_lag_seconds", "gauge",
			      "Ingest: age of the oldest tick waiting to be "
			      "published.",
			      (double)ps.lag_us / 1e6);
		metric_u64(f, "publisher_redis_reconnects_total", "counter",
			   "Connections to Redis after the first.",
			   ps.reconnects);
		metric_u64(f, "publisher_redis_resyncs_total", "counter",
			   "Ingest: full state rewrites (runs started).",
			   ps.full_syncs);
		metric_u64(f, "publisher_redis_ticks_published_total",
			   "counter", "Ticks published as stream entries.",
			   ps.ticks_published);
		metric_u64(f, "publisher_redis_ticks_folded_total", "counter",
			   "Ticks folded into the state while Redis was "
			   "unreachable.",
			   ps.ticks_folded);
		metric_u64(f, "publisher_redis_ticks_dropped_total", "counter",
			   "Live ticks not queued while Redis was behind: they "
			   "reached the edges as state.",
			   ps.ticks_dropped);
		metric_u64(f, "publisher_redis_state_resyncs_total", "counter",
			   "Runs started to carry the states of dropped ticks.",
			   ps.state_resyncs);
		metric_u64(f, "publisher_redis_queued", "gauge",
			   "Ticks waiting for the Redis publisher.", ps.queued);
		metric_u64(f, "publisher_redis_errors_total", "counter",
			   "Failed connects, I/O errors and error replies.",
			   ps.errors);
	}
	if (pipeline_follower(s->pipeline)) {
		struct redis_follower_stats fs;

		redis_follower_get_stats(pipeline_follower(s->pipeline), &fs);
		metric_family(f, "publisher_redis_connected", "gauge",
			      "1 while the link to Redis is up.");
		metric_labeled(f, "publisher_redis_connected", "role", "edge",
			       fs.connected);
		metric_u64(f, "publisher_redis_synced", "gauge",
			   "Edge: 1 while holding the ingest's state.",
			   fs.synced);
		metric_double(f, "publisher_redis_lag_seconds", "gauge",
			      "Edge: how long the last entry read had been in "
			      "the stream.",
			      (double)fs.lag_us / 1e6);
		metric_u64(f, "publisher_redis_reconnects_total", "counter",
			   "Connections to Redis after the first.",
			   fs.reconnects);
		metric_u64(f, "publisher_redis_resyncs_total", "counter",
			   "Edge: states taken from Redis.", fs.resyncs);
		metric_u64(f, "publisher_redis_entries_read_total", "counter",
			   "Edge: stream entries read.", fs.entries_read);
		metric_u64(f, "publisher_redis_ticks_pushed_total", "counter",
			   "Edge: ticks handed to the engine.",
			   fs.ticks_pushed);
		metric_u64(f, "publisher_redis_errors_total", "counter",
			   "Failed connects, I/O errors and error replies.",
			   fs.errors);
	}
}

static int
http_metrics(struct server *s, struct per_session_data__http *h)
{
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);

	if (!f)
		return http_respond_text(h, 500, "out of memory\n");
	metrics_connections(s, f);
	metrics_stream(s, f);
	metrics_feed_and_store(s, f);
	metrics_redis(s, f);
	if (fclose(f)) {
		free(body);
		return http_respond_text(h, 500, "out of memory\n");
	}
	return http_respond(h, 200, "text/plain; version=0.0.4; charset=utf-8",
			    body, len);
}

/* One line of /healthz about a sink: its lag, and why it is behind. */
static void
health_sink(struct server *s, FILE *f, const char *name, bool *degraded)
{
	struct sink_status ss;
	bool detached = false;

	if (pipeline_sink_status(s->pipeline, name, &ss, &detached))
		return;
	fprintf(f, "%s: lag %.3f s, %zu queued, %llu dropped", name,
		(double)ss.lag_us / 1e6, ss.queued,
		(unsigned long long)ss.dropped);
	if (detached || ss.failing || ss.dropping) {
		fprintf(f, "; degraded: %s", ss.reason);
		*degraded = true;
	}
	fputc('\n', f);
}

/*
 * 503 only when live data itself is affected: the feed is not running
 * (and is not done, or absent by choice), or an edge is not following a
 * live ingest. A sink that is behind, failing or detached (the store, an
 * ingest's Redis publisher) does not stop the live stream: 200, with the
 * sink's state on its own line, so that a load balancer does not pull a
 * node that serves fresh prices. The first line says "ok", "ok, degraded"
 * (a sink) or "degraded: <why>" (503).
 */
static int
http_healthz(struct server *s, struct per_session_data__http *h)
{
	struct redis_follower *follower = pipeline_follower(s->pipeline);
	struct feed *feed = pipeline_feed(s->pipeline);
	struct feed_status fs;
	char why[512] = "", *sinks = NULL;
	size_t sinks_len = 0;
	bool sink_degraded = false;
	FILE *f;
	int rc;

	if (follower && redis_follower_degraded(follower, why, sizeof why)) {
		/* why says it */
	} else if (feed) {
		feed_get_status(feed, &fs);
		if (!fs.running && !fs.finished && strcmp(fs.kind, "none"))
			snprintf(why, sizeof why, "feed '%s' is not running",
				 fs.kind);
	}
	f = open_memstream(&sinks, &sinks_len);
	if (!f)
		return http_respond_text(h, 500, "out of memory\n");
	health_sink(s, f, "store", &sink_degraded);
	health_sink(s, f, "redis", &sink_degraded);
	if (fclose(f)) {
		free(sinks);
		return http_respond_text(h, 500, "out of memory\n");
	}
	if (why[0])
		rc = http_respond_text(h, 503, "degraded: %s\n%s", why,
				       sinks ? sinks : "");
	else
		rc = http_respond_text(h, 200, "%s\n%s",
				       sink_degraded ? "ok, degraded" : "ok",
				       sinks ? sinks : "");
	free(sinks);
	return rc;
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
	s->m.http_bytes_sent += n;
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

/*
 * /api/…: the WebSocket's origin and token checks, then the endpoint with
 * the token's claims. /metrics and /healthz do not come here: they stay
 * open for monitoring (the README says to keep them off public networks).
 */
static int
http_api(struct server *s, struct per_session_data__http *h, const char *path)
{
	enum refusal r = REFUSED_COUNT;
	struct auth_claims claims;
	const struct auth_claims *granted = NULL;
	struct sink_status ss;
	const char *detached;
	char why[300], who[PEER_MAX + 16], what[160];
	int rc;

	memset(&claims, 0, sizeof claims);
	peer_of(h->wsi, h->peer, sizeof h->peer);
	if (!origin_allowed(s, h->wsi, why, sizeof why))
		r = REFUSED_ORIGIN;
	else if (s->auth && authenticate(s, h->wsi, &claims, why, sizeof why))
		r = REFUSED_UNAUTHORIZED;
	if (r != REFUSED_COUNT) {
		s->m.refused_api[r]++;
		snprintf(who, sizeof who, "http (%s)", h->peer);
		snprintf(what, sizeof what, "GET %.120s", path);
		sanitize(what);
		log_refusal(who, what, r, why);
		if (write_refusal(h->wsi, r, false))
			return -1;
		return lws_http_transaction_completed(h->wsi) ? -1 : 0;
	}
	if (s->auth)
		granted = &claims;

	detached = store_detached(s, &ss);
	if (!s->queries &&
	    (!strcmp(path, "/api/export") || !strcmp(path, "/api/bars")))
		rc = http_respond_text(h, 503,
				       "history needs the SQLite store; this "
				       "server runs without one (--db none)\n");
	else if (detached &&
		 (!strcmp(path, "/api/export") || !strcmp(path, "/api/bars")))
		rc = http_respond_text(h, 503, "%s\n", detached);
	else if (!strcmp(path, "/api/export"))
		rc = http_export(s, h, granted);
	else if (!strcmp(path, "/api/bars"))
		rc = http_bars(s, h, granted);
	else
		rc = http_respond_text(h, 404,
				       "no such endpoint '%s' (try "
				       "/api/export, /api/bars, /metrics, "
				       "/healthz)\n",
				       path);
	auth_claims_free(&claims);
	return rc;
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
		return http_api(s, h, path);

	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		/* An upgrade on a keep-alive connection that last served an
		 * /api request reaches this protocol: admit it all the same. */
		if (!s || !in || strcasecmp(in, "websocket"))
			break;
		return admit_upgrade(s, wsi);

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

/* lws only says that its context failed; a missing or unreadable TLS file
 * is told apart here, with its name. Returns 0, or -1 with err set. */
static int
check_readable(const char *option, const char *path, char *err, size_t errlen)
{
	struct stat st;
	FILE *f;

	if (stat(path, &st)) {
		snprintf(err, errlen, "%s '%s': %s", option, path,
			 strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s '%s': not a regular file", option,
			 path);
		return -1;
	}
	f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s '%s': %s", option, path,
			 strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

/* While stopping: done once every client has gone, or at the deadline. */
static void
stop_check(uv_timer_t *t)
{
	struct server *s = t->data;

	if ((!s->sessions && !s->closing) ||
	    clock_wall_us() >= s->stop_deadline_us) {
		uv_timer_stop(&s->stop_timer);
		uv_stop(s->loop);
	}
}

static void
stop_now(void *ctx)
{
	struct server *s = ctx;

	begin_shutdown(s);
	uv_timer_start(&s->stop_timer, stop_check, 0, 10);
}

static void
on_signal(uv_signal_t *h, int signum)
{
	stop_now(h->data);
}

/*
 * The pipeline's epoch_changed hook (an edge's ingest began a new life of
 * the data; the engine is already empty): every WebSocket is closed with
 * 1012 (service restart), so clients reconnect, read the new epoch in the
 * hello and take fresh snapshots instead of resuming.
 */
static void
epoch_changed(const char *epoch, void *ctx)
{
	struct server *s = ctx;
	struct per_session_data__md *pss;

	for (pss = s->sessions; pss; pss = pss->next)
		close_with(pss, CLOSE_SERVICE_RESTART, "new epoch, reconnect");
}

/*
 * libwebsockets loads its libuv support as a plugin and unloads it when a
 * context is destroyed. On a loop it does not own, handles it closed may
 * still have their close callbacks to run then: keeping the plugin loaded
 * for the life of the process (RTLD_NODELETE) keeps those callbacks valid.
 * Returns 0, or -1 with the cause in err.
 */
static int
pin_uv_plugin(char *err, size_t errlen)
{
	static void *handle;

	if (handle)
		return 0;
	handle = dlopen("libwebsockets-evlib_uv.so", RTLD_NOW | RTLD_NODELETE);
	if (handle)
		return 0;
	snprintf(err, errlen,
		 "libwebsockets' libuv event library is missing (%s); install "
		 "the Debian package libwebsockets-evlib-uv",
		 dlerror());
	return -1;
}

/*
 * lws_create_context() failing on a foreign libuv loop leaves close
 * callbacks on that loop that use what it has already freed (lws 4.1.6):
 * the loop cannot turn again. So what makes it fail is checked first,
 * where the cause can also be named: the address can be bound, and the
 * certificate and key load and match. Returns 0, or -1 with err.
 */
static int
check_bind(const char *host, int port, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	char service[16];
	int rc = -1, e = 0, one = 1;

	if (port == 0)
		return 0;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(service, sizeof service, "%d", port);
	if (getaddrinfo(strcmp(host, "0.0.0.0") && strcmp(host, "::") &&
				strcmp(host, "[::]")
			? host
			: NULL,
			service, &hints, &res)) {
		snprintf(err, errlen, "cannot listen on %s:%d: not an address",
			 host, port);
		return -1;
	}
	for (ai = res; ai && rc; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype, 0);

		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			rc = 0;
		else
			e = errno;
		close(fd);
	}
	freeaddrinfo(res);
	if (rc)
		snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port,
			 e == EADDRINUSE ? "address in use"
			 : e == EADDRNOTAVAIL
				 ? "not an address of this machine"
				 : strerror(e));
	return rc;
}

static int
check_tls_files(const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	const char *what = NULL;
	char why[256] = "";

	if (!ctx) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		what = "--tls-cert: not a PEM certificate";
	else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		what = "--tls-key: not a PEM private key";
	else if (SSL_CTX_check_private_key(ctx) != 1)
		what = "--tls-key does not match --tls-cert";
	if (what) {
		ERR_error_string_n(ERR_get_error(), why, sizeof why);
		snprintf(err, errlen, "%s ('%s', '%s': %s)", what, cert, key,
			 why);
	}
	SSL_CTX_free(ctx);
	return what ? -1 : 0;
}

struct server *
server_create(const struct serve_options *opt, const struct server_parts *parts,
	      char *err, size_t errlen)
{
	struct lws_context_creation_info info;
	struct pipeline_hooks hooks;
	struct server *s;
	void *loops[1];
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
	s->loop = parts->loop;
	s->pipeline = parts->pipeline;
	s->engine = pipeline_engine(parts->pipeline);
	s->limits.max_symbols = opt->max_symbols;
	s->limits.max_history_limit = 100000;
	s->started = time(NULL);

	if (opt->auth_secret) {
		char why[400];

		s->auth = auth_create(opt->auth_secret, why, sizeof why);
		if (!s->auth) {
			snprintf(err, errlen, "--auth-secret: %s", why);
			goto fail;
		}
	}
	if (opt->tls_cert &&
	    (check_readable("--tls-cert", opt->tls_cert, err, errlen) ||
	     check_readable("--tls-key", opt->tls_key, err, errlen) ||
	     check_tls_files(opt->tls_cert, opt->tls_key, err, errlen)))
		goto fail;
	if (check_bind(opt->listen_host, opt->listen_port, err, errlen))
		goto fail;

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

	if (pin_uv_plugin(err, errlen))
		goto fail;
	s->frame = malloc(LWS_PRE + FRAME_CAP);
	if (opt->compression) {
		struct ws_deflate_config dc;

		ws_deflate_config_default(&dc);
		s->deflate = ws_deflate_create(&dc);
		if (!s->deflate) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	s->query_wake = wake_new(s->loop, take_query_output, s);
	s->stop_wake = wake_new(s->loop, stop_now, s);
	if (!s->frame || !s->query_wake || !s->stop_wake) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (parts->db_path) {
		s->queries = query_worker_create(parts->db_path, QUERY_THREADS,
						 wake_signal, s->query_wake,
						 err, errlen);
		if (!s->queries)
			goto fail;
	}
	uv_signal_init(s->loop, &s->sigint);
	uv_signal_init(s->loop, &s->sigterm);
	uv_timer_init(s->loop, &s->stop_timer);
	uv_idle_init(s->loop, &s->work_idle);
	s->sigint.data = s->sigterm.data = s->stop_timer.data = s;
	s->work_idle.data = s;
	s->handles_open = 4;

	lws_set_log_level(LLL_ERR | (log_get_level() >= LOG_DEBUG ? LLL_WARN : 0),
			  lws_log_to_ours);

	/* The WebSocket protocol comes first: a client that names no
	 * subprotocol is bound to protocols[0] (see NOTES-platform.md). */
	s->protocols[0].name = "publisher.v1";
	s->protocols[0].callback = callback_md;
	s->protocols[0].per_session_data_size =
		sizeof(struct per_session_data__md);
	/* lws keeps a receive buffer of this size for every connection, all
	 * of it resident: it was 16 KiB, half of what an idle connection cost.
	 * A message longer than the buffer comes in several RECEIVE
	 * callbacks, which on_receive() puts together anyway. */
	s->protocols[0].rx_buffer_size = 1024;
	/* lws hands the kernel at most this much per send() and copies the
	 * rest of a frame aside, to send it on later writeable events; left at
	 * 0 that limit is rx_buffer_size, and 94 % of the frames of a client
	 * on "*" were cut so. Room for a whole frame and its header: the
	 * kernel takes what its buffer holds, lws keeps only what it did not
	 * take. */
	s->protocols[0].tx_packet_size = FRAME_CAP + LWS_PRE + 16;
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
	if (s->deflate)
		info.extensions = ws_deflate_extensions;
	/* libwebsockets on our libuv loop: epoll underneath, so a loop turn
	 * costs the sockets that are ready, not every socket open (its own
	 * poll() loop walks them all), and the pipeline's wakes share it. */
	info.options = LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE |
		       LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_LIBUV;
	loops[0] = s->loop;
	info.foreign_loops = loops;
	/* lws finishes destroying a context on a foreign loop in close
	 * callbacks; it clears s->context when it is done. */
	info.pcontext = &s->context;
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
	if (!is_loopback(host) && !s->auth)
		log_warn("listening on %s, beyond loopback, without "
			 "--auth-secret: anyone who can reach it can read the "
			 "stream",
			 opt->listen_host);
	else if (!is_loopback(host) && !opt->tls_cert)
		log_warn("listening on %s, beyond loopback, without "
			 "--tls-cert: tokens and data cross the network in "
			 "clear text",
			 opt->listen_host);

	/*
	 * Slow senders: a connection must finish its TLS handshake and its
	 * request headers within handshake_secs (lws's own timeouts), or it
	 * is dropped. Idle and half-open WebSocket peers are the ping policy's
	 * (ping_secs).
	 */
	info.timeout_secs = opt->handshake_secs;
	info.timeout_secs_ah_idle = opt->handshake_secs;
	if (opt->tls_cert) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = opt->tls_cert;
		info.ssl_private_key_filepath = opt->tls_key;
		/* HTTP/1.1 only: a WebSocket over HTTP/2 would not pass
		 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE, and so not admission. */
		info.alpn = "http/1.1";
	}

	s->context = lws_create_context(&info);
	if (!s->context) {
		/* Not for any cause checked above: the loop cannot turn
		 * again (see check_bind), so this is the end. */
		fprintf(stderr,
			"publisher: libwebsockets could not start on %s:%d "
			"(see its message above)\n",
			opt->listen_host, opt->listen_port);
		_exit(1);
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
	uv_signal_start(&s->sigint, on_signal, SIGINT);
	uv_signal_start(&s->sigterm, on_signal, SIGTERM);
	memset(&hooks, 0, sizeof hooks);
	hooks.client_ready = engine_client_ready;
	hooks.epoch_changed = epoch_changed;
	hooks.ctx = s;
	pipeline_set_hooks(s->pipeline, &hooks);
	return s;

fail:
	server_destroy(s);
	return NULL;
}

size_t
server_frame_headroom(void)
{
	return LWS_PRE;
}

int
server_port(const struct server *s)
{
	return s->port;
}

int
server_run(struct server *s)
{
	uv_run(s->loop, UV_RUN_DEFAULT);
	return 0;
}

void
server_stop(struct server *s)
{
	wake_signal(s->stop_wake);
}

static void
count_closing(uv_handle_t *h, void *arg)
{
	if (uv_is_closing(h))
		++*(size_t *)arg;
}

/* Handles on the loop that are closing and whose close callback has not
 * run yet. */
static size_t
handles_closing(uv_loop_t *loop)
{
	size_t n = 0;

	uv_walk(loop, count_closing, &n);
	return n;
}

static void
handle_closed(uv_handle_t *h)
{
	struct server *s = h->data;

	s->handles_open--;
}

void
server_destroy(struct server *s)
{
	size_t i;

	if (!s)
		return;
	if (s->context) {
		lws_sul_cancel(&s->housekeeping);
		lws_context_destroy(s->context);
	}
	/* Jobs were released with their connections above. */
	query_worker_destroy(s->queries);
	wake_free(s->query_wake);
	wake_free(s->stop_wake);
	if (s->handles_open) {
		uv_close((uv_handle_t *)&s->sigint, handle_closed);
		uv_close((uv_handle_t *)&s->sigterm, handle_closed);
		uv_close((uv_handle_t *)&s->stop_timer, handle_closed);
		uv_close((uv_handle_t *)&s->work_idle, handle_closed);
	}
	/* Our handles and lws's context live until their close callbacks,
	 * which need the loop to turn: it is stopped now, so it is turned
	 * here until both are done (a few turns; the bound is a safety). On a
	 * foreign loop lws destroys a context in stages, one per call, and
	 * each later stage may only come once the handles the earlier one
	 * closed are closed: the last frees memory those handles live in. It
	 * clears s->context when it is done. */
	for (i = 0; i < 1000 && (s->handles_open || s->context); i++) {
		if (s->context && !handles_closing(s->loop))
			lws_context_destroy(s->context);
		uv_run(s->loop, UV_RUN_NOWAIT);
	}
	if (s->handles_open || s->context)
		log_warn("libwebsockets did not finish closing; exiting anyway");
	auth_claims_free(&s->admitted.claims);
	auth_destroy(s->auth);
	for (i = 0; i < PEER_BUCKETS; i++)
		while (s->peers[i]) {
			struct peer_count *pc = s->peers[i];

			s->peers[i] = pc->next;
			free(pc);
		}
	ws_deflate_destroy(s->deflate);
	free(s->frame);
	free(s);
}

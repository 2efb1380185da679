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
#include "server.h"

#include <errno.h>
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
#include "jsonbuf.h"
#include "log.h"
#include "protocol.h"

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

	int64_t last_write_us;
	int64_t timer_due_us; /* max_hz timer armed for this time, 0 = none */
	int close_status;     /* nonzero: close with this status on next write */
	const char *close_reason;
};

struct server {
	struct lws_context *context;
	struct lws_vhost *vhost;
	const struct serve_options *opt;
	struct engine *engine;
	struct tick_queue *queue;
	char epoch[PROTOCOL_EPOCH_MAX + 1];
	char web_dir[PATH_MAX];
	int port;

	struct lws_protocols protocols[3];
	struct lws_http_mount mount;
	lws_retry_bo_t retry;
	lws_sorted_usec_list_t housekeeping;

	struct per_session_data__md *sessions;
	uint64_t next_conn_id;
	struct protocol_limits limits;

	struct tick *drain; /* DRAIN_BUDGET ticks */
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
		send_error(pss, req->id, "unavailable",
			   "history is served from the SQLite store, which "
			   "this build does not have yet");
		break;
	case OP_REPLAY:
		send_error(pss, req->id, "bad_request",
			   "replay control needs a replay feed; this server "
			   "does not run one");
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
drain_queue(struct server *s)
{
	size_t n, i;

	n = tick_queue_drain(s->queue, s->drain, DRAIN_BUDGET);
	for (i = 0; i < n; i++)
		engine_apply_tick(s->engine, &s->drain[i]);
	engine_flush(s->engine);
	/* Still more waiting: come back after this turn's writes rather than
	 * starving the clients. */
	if (n == DRAIN_BUDGET)
		lws_cancel_service(s->context);
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

static int
on_writeable(struct per_session_data__md *pss)
{
	struct server *s = pss->server;
	int64_t now = now_us(), next_due = 0;
	size_t n;

	if (pss->close_status)
		return close_now(pss->wsi, pss->close_status, pss->close_reason);
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
				     s->opt->heartbeat_ms);
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
		break;

	default:
		break;
	}
	/* Anything else (HTTP on the same connection before the upgrade)
	 * is handled by lws's own HTTP support and the mount. */
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
server_create(const struct serve_options *opt, struct engine *engine,
	      struct tick_queue *queue, const char *epoch, char *err,
	      size_t errlen)
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
	s->engine = engine;
	s->queue = queue;
	snprintf(s->epoch, sizeof s->epoch, "%s", epoch);
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
	s->protocols[1].name = "http";
	s->protocols[1].callback = lws_callback_http_dummy;

	s->mount.mountpoint = "/";
	s->mount.mountpoint_len = 1;
	s->mount.origin = s->web_dir;
	s->mount.def = "index.html";
	s->mount.origin_protocol = LWSMPRO_FILE;

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
		lws_context_destroy(s->context);
	}
	free(s->drain);
	free(s->frame);
	free(s);
}

/*
 * http_status.c: GET /api/status, the server's own figures as JSON for the
 * status page (web/status/index.html, web/js/status-page.js).
 *
 * It writes one reading of server_figures.h, the same one /metrics writes
 * as Prometheus text: counters go out as counters (the page takes rates
 * from successive samples, against the server's clock in "now_ms"),
 * gauges as they stand. The fields are listed in the README ("Status
 * page").
 *
 * Who may read it: it is an /api endpoint, so http_api.c has already
 * passed the Origin and token checks; with --auth-secret the token must
 * also carry the admin claim (auth.h), else 403 naming what is missing.
 * Without --auth-secret it is open, as /metrics is.
 */
#include "server_figures.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "jsonbuf.h"
#include "log.h"
#include "version.h"

static void
key_u64(struct jsonbuf *b, const char *key, uint64_t v)
{
	jsonbuf_append_key(b, key);
	jsonbuf_append_u64(b, v);
	jsonbuf_append_char(b, ',');
}

static void
key_bool(struct jsonbuf *b, const char *key, bool v)
{
	jsonbuf_append_key(b, key);
	jsonbuf_append_str(b, v ? "true," : "false,");
}

static void
key_str(struct jsonbuf *b, const char *key, const char *v)
{
	jsonbuf_append_key(b, key);
	jsonbuf_append_quoted(b, v, strlen(v));
	jsonbuf_append_char(b, ',');
}

/* Microseconds as seconds, to the microsecond, without a double. */
static void
key_seconds(struct jsonbuf *b, const char *key, int64_t us)
{
	char text[48];

	if (us < 0)
		us = 0;
	snprintf(text, sizeof text, "%lld.%06lld", (long long)(us / 1000000),
	         (long long)(us % 1000000));
	jsonbuf_append_key(b, key);
	jsonbuf_append_str(b, text);
	jsonbuf_append_char(b, ',');
}

/* Members are written with a ',' after each; this takes the last one
 * back before a closing brace. */
static void
end_members(struct jsonbuf *b)
{
	if (!jsonbuf_failed(b) && b->len && jsonbuf_data(b)[b->len - 1] == ',')
		b->len--;
}

/* Close an object that is itself a member. */
static void
close_object(struct jsonbuf *b)
{
	end_members(b);
	jsonbuf_append_str(b, "},");
}

static void
open_object(struct jsonbuf *b, const char *key)
{
	jsonbuf_append_key(b, key);
	jsonbuf_append_char(b, '{');
}

static void
status_server(struct server *s, const struct server_figures *fig,
              struct jsonbuf *b, int64_t now_us)
{
	int64_t now_s = now_us / 1000000;
	char why[512];
	bool degraded = server_live_degraded(s, why, sizeof why);

	open_object(b, "server");
	key_str(b, "version", PUBLISHER_NAME_VERSION);
	key_str(b, "epoch", fig->epoch ? fig->epoch : "");
	key_u64(b, "started", (uint64_t)fig->started);
	jsonbuf_append_key(b, "now_ms");
	jsonbuf_append_i64(b, now_us / 1000);
	jsonbuf_append_char(b, ',');
	key_u64(b, "uptime_s",
	        now_s > fig->started ? (uint64_t)(now_s - fig->started) : 0);
	key_bool(b, "auth", s->auth != NULL);
	/* /healthz's verdict on live data: "" while it answers 200. */
	key_str(b, "degraded", degraded ? why : "");
	close_object(b);
}

static void
status_clients(const struct server_figures *fig, struct jsonbuf *b)
{
	size_t streams = fig->sse_sessions + fig->poll_sessions;

	open_object(b, "clients");
	key_u64(b, "total", fig->connections);
	/* Every client that is not a stream session is a WebSocket. */
	key_u64(b, "websocket",
	        fig->connections > streams ? fig->connections - streams : 0);
	key_u64(b, "sse", fig->sse_sessions);
	key_u64(b, "poll", fig->poll_sessions);
	key_u64(b, "max", fig->connections_max);
	key_u64(b, "opened", fig->hub.opened);
	key_u64(b, "subscriptions", fig->engine.subscriptions);
	close_object(b);
}

static void
status_traffic(const struct server_figures *fig, struct jsonbuf *b)
{
	const struct engine_stats *es = &fig->engine;

	open_object(b, "ticks");
	key_u64(b, "received", fig->feed.ticks);
	key_u64(b, "applied", es->ticks_applied);
	key_u64(b, "rejected", es->ticks_rejected);
	key_u64(b, "conflated", es->ticks_conflated);
	key_u64(b, "queued", fig->pipeline.queue_depth);
	key_u64(b, "batches", fig->pipeline.drains);
	key_u64(b, "batch_ticks", fig->pipeline.drained_ticks);
	close_object(b);

	open_object(b, "updates");
	key_u64(b, "sent", es->updates_sent);
	key_u64(b, "frames", fig->transport.ws_frames_sent);
	key_u64(b, "bytes", fig->transport.ws_bytes_sent);
	key_u64(b, "http_bytes", fig->transport.http_bytes_sent);
	key_u64(b, "latency_count", fig->hub.latency_count);
	key_seconds(b, "latency_sum_s", (int64_t)(fig->hub.latency_sum * 1e6));
	close_object(b);

	open_object(b, "symbols");
	key_u64(b, "with_data", es->symbols);
	key_u64(b, "pending", es->pending);
	key_u64(b, "max", fig->symbols_max);
	key_u64(b, "pending_max", fig->pending_symbols_max);
	close_object(b);
}

static void
status_feed(const struct server_figures *fig, struct jsonbuf *b, int64_t now_us)
{
	const struct feed_status *fs = &fig->feed;
	const char *state;

	if (!strcmp(fs->kind, "none"))
		state = "none";
	else if (fs->running)
		state = fs->replay_state ? fs->replay_state : "running";
	else if (fs->finished)
		state = "finished";
	else
		state = "stopped";
	open_object(b, "feed");
	key_str(b, "kind", fs->kind);
	key_str(b, "state", state);
	key_bool(b, "running", fs->running);
	key_bool(b, "finished", fs->finished);
	key_u64(b, "ticks", fs->ticks);
	key_u64(b, "bad_lines", fs->bad_lines);
	/* Since the feed last pushed a tick; absent when it never has. */
	if (fs->last_tick_us > 0)
		key_seconds(b, "idle_s", now_us - fs->last_tick_us);
	close_object(b);
}

static void
status_store(const struct server_figures *fig, struct jsonbuf *b)
{
	const struct store_stats *ss = &fig->store;

	if (!fig->has_store) {
		jsonbuf_append_str(b, "\"store\":null,");
		return;
	}
	open_object(b, "store");
	key_u64(b, "ticks_written", ss->ticks_written);
	key_u64(b, "commits", ss->commits);
	key_u64(b, "queued", ss->queued);
	key_seconds(b, "lag_s", ss->lag_us);
	key_u64(b, "write_errors", ss->write_errors);
	key_u64(b, "ticks_dropped", ss->ticks_dropped);
	key_u64(b, "ticks_refused", ss->ticks_refused);
	key_bool(b, "failing", ss->failing);
	key_str(b, "last_error", ss->failing ? ss->last_error : "");
	close_object(b);
}

static void
status_redis(const struct server_figures *fig, struct jsonbuf *b)
{
	if (fig->has_redis_publisher) {
		const struct redis_publisher_stats *ps = &fig->redis_publisher;

		open_object(b, "redis");
		key_str(b, "role", "ingest");
		key_bool(b, "connected", ps->connected);
		key_seconds(b, "lag_s", ps->lag_us);
		key_u64(b, "queued", ps->queued);
		key_u64(b, "ticks", ps->ticks_published);
		key_u64(b, "errors", ps->errors);
		key_u64(b, "reconnects", ps->reconnects);
		close_object(b);
	} else if (fig->has_redis_follower) {
		const struct redis_follower_stats *fs = &fig->redis_follower;

		open_object(b, "redis");
		key_str(b, "role", "edge");
		key_bool(b, "connected", fs->connected);
		key_bool(b, "synced", fs->synced);
		key_seconds(b, "lag_s", fs->lag_us);
		key_u64(b, "ticks", fs->ticks_pushed);
		key_u64(b, "errors", fs->errors);
		key_u64(b, "reconnects", fs->reconnects);
		close_object(b);
	} else {
		jsonbuf_append_str(b, "\"redis\":null,");
	}
}

static void
status_errors(const struct server_figures *fig, struct jsonbuf *b)
{
	const struct server_metrics *m = &fig->transport;
	size_t i;

	/* Error replies to clients, by code (every code, zeros too, so that
	 * the page's list does not jump as codes first appear). */
	open_object(b, "errors");
	for (i = 0; i < SESSION_ERROR_CODES; i++)
		key_u64(b, session_error_codes[i], fig->hub.errors[i]);
	key_u64(b, "other", fig->hub.errors[SESSION_ERROR_CODES]);
	close_object(b);

	open_object(b, "refused");
	open_object(b, "handshakes");
	for (i = 0; i < REFUSED_COUNT; i++)
		if (i != REFUSED_FORBIDDEN)
			key_u64(b, refusal_label(i), m->refused_ws[i]);
	close_object(b);
	open_object(b, "api");
	key_u64(b, refusal_label(REFUSED_UNAUTHORIZED),
	        m->refused_api[REFUSED_UNAUTHORIZED]);
	key_u64(b, refusal_label(REFUSED_ORIGIN),
	        m->refused_api[REFUSED_ORIGIN]);
	key_u64(b, refusal_label(REFUSED_FORBIDDEN),
	        m->refused_api[REFUSED_FORBIDDEN]);
	close_object(b);
	open_object(b, "subscribes");
	for (i = 0; i < SESSION_BOUNDS; i++)
		key_u64(b, session_bound_names[i],
		        fig->hub.subscribes_refused[i]);
	close_object(b);
	key_u64(b, "symbols", fig->engine.symbols_refused);
	key_u64(b, "tokens_expired", fig->hub.tokens_expired);
	close_object(b);
}

/* A token without the admin claim: 403, saying what is missing. */
static int
status_forbidden(struct server *s, struct http_request *h,
                 const struct auth_claims *claims)
{
	s->m.refused_api[REFUSED_FORBIDDEN]++;
	log_limited(LOG_INFO,
	            "http (%s, sub '%s'): /api/status refused: the token has "
	            "no admin claim",
	            h->peer, claims->sub);
	return http_respond_text(h, 403,
	                         "forbidden: /api/status needs a token with "
	                         "the admin claim (\"admin\": true)\n");
}

int
http_status(struct server *s, struct http_request *h,
            const struct auth_claims *claims)
{
	struct server_figures fig;
	struct jsonbuf b;
	int64_t now_us = clock_wall_us();
	char *body;
	size_t len;

	if (claims && !claims->admin)
		return status_forbidden(s, h, claims);
	server_figures_read(s, &fig);
	jsonbuf_init(&b, 0);
	jsonbuf_append_char(&b, '{');
	status_server(s, &fig, &b, now_us);
	status_clients(&fig, &b);
	status_traffic(&fig, &b);
	status_feed(&fig, &b, now_us);
	status_store(&fig, &b);
	status_redis(&fig, &b);
	status_errors(&fig, &b);
	end_members(&b);
	jsonbuf_append_str(&b, "}\n");
	len = b.len;
	body = jsonbuf_failed(&b) ? NULL : malloc(len);
	if (body)
		memcpy(body, jsonbuf_data(&b), len);
	jsonbuf_free(&b);
	if (!body)
		return http_respond_text(h, 500, "out of memory\n");
	return http_respond(h, 200, "application/json", body, len);
}

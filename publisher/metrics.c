/*
 * metrics.c: GET /metrics (Prometheus text, version 0.0.4) and GET
 * /healthz. /metrics is written at once from one reading of the counters
 * of every part (server_figures.h), the same reading /api/status writes as
 * JSON.
 */
#define _GNU_SOURCE /* open_memstream */
#include "server_figures.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink.h"

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
metric_labeled(FILE *f, const char *name, const char *label, const char *value,
               uint64_t v)
{
	fprintf(f, "%s{%s=\"", name, label);
	metric_label_value(f, value);
	fprintf(f, "\"} %llu\n", (unsigned long long)v);
}

static void
metrics_connections(const struct server_figures *fig, FILE *f)
{
	const struct session_hub_stats *hs = &fig->hub;
	const struct server_metrics *m = &fig->transport;
	size_t i;

	metric_u64(f, "publisher_start_time_seconds", "gauge",
	           "When the server started, in seconds since the epoch.",
	           (uint64_t)fig->started);
	metric_u64(f, "publisher_connections", "gauge",
	           "Clients: open WebSocket connections and Server-Sent "
	           "Events and long-poll sessions.",
	           fig->connections);
	metric_family(f, "publisher_stream_sessions", "gauge",
	              "Of those, the sessions over plain HTTP, by the transport "
	              "that last carried them (lingering ones included).");
	metric_labeled(f, "publisher_stream_sessions", "transport", "sse",
	               fig->sse_sessions);
	metric_labeled(f, "publisher_stream_sessions", "transport", "poll",
	               fig->poll_sessions);
	metric_u64(f, "publisher_connections_max", "gauge",
	           "The --max-connections limit.", fig->connections_max);
	metric_u64(f, "publisher_connections_opened_total", "counter",
	           "Clients admitted (WebSocket, SSE and long-poll).",
	           hs->opened);
	metric_family(f, "publisher_handshakes_refused_total", "counter",
	              "WebSocket upgrades and new SSE or long-poll sessions "
	              "refused, by reason.");
	for (i = 0; i < REFUSED_COUNT; i++)
		if (i != REFUSED_FORBIDDEN)
			metric_labeled(f, "publisher_handshakes_refused_total",
			               "reason", refusal_label(i),
			               m->refused_ws[i]);
	metric_family(f, "publisher_api_refused_total", "counter",
	              "/api requests refused, by reason.");
	metric_labeled(f, "publisher_api_refused_total", "reason",
	               refusal_label(REFUSED_UNAUTHORIZED),
	               m->refused_api[REFUSED_UNAUTHORIZED]);
	metric_labeled(f, "publisher_api_refused_total", "reason",
	               refusal_label(REFUSED_ORIGIN),
	               m->refused_api[REFUSED_ORIGIN]);
	metric_labeled(f, "publisher_api_refused_total", "reason",
	               refusal_label(REFUSED_FORBIDDEN),
	               m->refused_api[REFUSED_FORBIDDEN]);
	metric_family(f, "publisher_auth_failures_total", "counter",
	              "Requests refused for a missing, bad or expired token.");
	metric_labeled(f, "publisher_auth_failures_total", "endpoint", "ws",
	               m->refused_ws[REFUSED_UNAUTHORIZED]);
	metric_labeled(f, "publisher_auth_failures_total", "endpoint", "api",
	               m->refused_api[REFUSED_UNAUTHORIZED]);
	metric_u64(f, "publisher_tokens_expired_total", "counter",
	           "Connections closed with 4001 because their token expired.",
	           hs->tokens_expired);
}

static void
metrics_stream(const struct server_figures *fig, FILE *f)
{
	const struct session_hub_stats *hs = &fig->hub;
	const struct engine_stats *es = &fig->engine;
	const struct pipeline_stats *ps = &fig->pipeline;
	const struct server_metrics *m = &fig->transport;
	uint64_t cumulative = 0;
	size_t i;

	metric_u64(f, "publisher_symbols", "gauge", "Symbols with data.",
	           es->symbols);
	metric_u64(f, "publisher_symbols_max", "gauge",
	           "The --max-symbols-total limit on symbols with data.",
	           fig->symbols_max);
	metric_u64(f, "publisher_symbols_refused_total", "counter",
	           "Ticks refused because their symbol would have been one "
	           "more with data than --max-symbols-total.",
	           es->symbols_refused);
	metric_u64(f, "publisher_symbols_pending", "gauge",
	           "Symbols subscribed to that have no data yet.", es->pending);
	metric_u64(f, "publisher_symbols_pending_max", "gauge",
	           "The --max-pending-symbols-total limit.",
	           fig->pending_symbols_max);
	metric_family(f, "publisher_subscribes_refused_total", "counter",
	              "Subscribes refused with too_many_symbols, by the limit "
	              "they met.");
	for (i = 0; i < SESSION_BOUNDS; i++)
		metric_labeled(f, "publisher_subscribes_refused_total", "limit",
		               session_bound_names[i],
		               hs->subscribes_refused[i]);
	metric_u64(f, "publisher_memory_trims_total", "counter",
	           "Times memory freed after clients left was handed back to "
	           "the system.",
	           m->memory_trims);
	metric_u64(f, "publisher_subscriptions", "gauge", "Subscriptions held.",
	           es->subscriptions);
	metric_u64(f, "publisher_ticks_applied_total", "counter",
	           "Ticks applied by the engine.", es->ticks_applied);
	if (fig->has_store)
		metric_u64(f, "publisher_ticks_stored_total", "counter",
		           "Ticks committed to the store; applied minus stored "
		           "is queued, dropped (gaps) or lost.",
		           fig->store.ticks_written);
	metric_u64(f, "publisher_ticks_rejected_total", "counter",
	           "Ticks the engine refused.", es->ticks_rejected);
	if (ps->seq_gated) {
		metric_u64(f, "publisher_epoch_durable", "gauge",
		           "1 when the epoch is the store's and survives a "
		           "crash; 0 while a new one is not stored yet.",
		           ps->epoch_durable);
		metric_u64(f, "publisher_epoch_changes_total", "counter",
		           "New epochs begun because the store could not "
		           "reserve seqs.",
		           ps->epoch_changes);
		metric_u64(f, "publisher_seq_holds_total", "counter",
		           "Times ticks waited for their symbol's seqs to be "
		           "reserved.",
		           ps->seq_holds);
		metric_u64(f, "publisher_seq_reservations_total", "counter",
		           "Seq reservations the store committed.",
		           ps->seq_grants);
	}
	metric_u64(f, "publisher_engine_batches_total", "counter",
	           "Drains of the tick queue that moved ticks into the "
	           "engine.",
	           ps->drains);
	metric_u64(f, "publisher_engine_batch_ticks_total", "counter",
	           "Ticks moved by those drains (divide by the batches for "
	           "the mean batch).",
	           ps->drained_ticks);
	metric_u64(f, "publisher_updates_sent_total", "counter",
	           "Snapshots and deltas written to clients.",
	           es->updates_sent);
	metric_u64(f, "publisher_ticks_conflated_total", "counter",
	           "Ticks merged away by conflation.", es->ticks_conflated);
	metric_u64(f, "publisher_encodings_total", "counter",
	           "Snapshot and delta encodings made.", es->encodings);
	metric_u64(f, "publisher_encodings_shared_total", "counter",
	           "Updates served from an encoding made for another client.",
	           es->encodings_shared);
	metric_u64(f, "publisher_fanout_groups", "gauge",
	           "Subscription groups: clients with the same subscriptions "
	           "share one.",
	           es->groups);
	metric_u64(f, "publisher_fanout_rounds_total", "counter",
	           "Rounds closed by flushes (one per group with news).",
	           es->rounds);
	metric_u64(f, "publisher_fanout_frames_shared_total", "counter",
	           "Update frames sent as the same bytes another client got.",
	           es->frames_shared);
	metric_u64(f, "publisher_fanout_catch_ups_total", "counter",
	           "Times a client fell out of its group's rhythm and got a "
	           "merged frame of its own.",
	           es->catch_ups);
	metric_u64(f, "publisher_ws_frames_sent_total", "counter",
	           "WebSocket frames written (updates, replies, heartbeats).",
	           m->ws_frames_sent);
	metric_u64(f, "publisher_ws_bytes_sent_total", "counter",
	           "WebSocket payload bytes written (compressed when sent "
	           "so).",
	           m->ws_bytes_sent);
	if (fig->has_deflate) {
		const struct ws_deflate_stats *ds = &fig->deflate;

		metric_u64(f, "publisher_deflate_shared_frames_total",
		           "counter",
		           "Frames shared by clients in step, compressed once.",
		           ds->shared_frames);
		metric_u64(f, "publisher_deflate_shared_reused_total",
		           "counter",
		           "Times another client got such a frame already "
		           "compressed.",
		           ds->shared_reused);
		metric_u64(f, "publisher_deflate_solo_frames_total", "counter",
		           "Frames of one client alone, compressed for it.",
		           ds->solo_frames);
		metric_u64(f, "publisher_deflate_solo_over_budget_total",
		           "counter",
		           "Frames of one client alone sent as text: the "
		           "compression budget for those was spent.",
		           ds->solo_over_budget);
		metric_u64(f, "publisher_deflate_bytes_in_total", "counter",
		           "Text bytes compressed.", ds->bytes_in);
		metric_u64(f, "publisher_deflate_bytes_out_total", "counter",
		           "What those bytes came to.", ds->bytes_out);
	}
	metric_u64(f, "publisher_ws_input_paused_total", "counter",
	           "Times a connection's input was held back while the kernel "
	           "would not take its output.",
	           m->rx_paused);
	metric_u64(f, "publisher_http_bytes_sent_total", "counter",
	           "HTTP body bytes written by /api, /metrics and /healthz.",
	           m->http_bytes_sent);
	metric_family(f, "publisher_errors_sent_total", "counter",
	              "Error replies sent to WebSocket clients, by code.");
	for (i = 0; i <= SESSION_ERROR_CODES; i++)
		metric_labeled(f, "publisher_errors_sent_total", "code",
		               i < SESSION_ERROR_CODES ? session_error_codes[i]
		                                       : "other",
		               hs->errors[i]);

	metric_family(f, "publisher_update_latency_seconds", "histogram",
	              "From the engine flush that gave an idle client "
	              "something to send to the write that sent it.");
	for (i = 0; i < SESSION_LATENCY_BUCKETS; i++) {
		cumulative += hs->latency_le[i];
		fprintf(f,
		        "publisher_update_latency_seconds_bucket{le=\"%g\"} "
		        "%llu\n",
		        session_latency_buckets[i],
		        (unsigned long long)cumulative);
	}
	fprintf(f,
	        "publisher_update_latency_seconds_bucket{le=\"+Inf\"} %llu\n"
	        "publisher_update_latency_seconds_sum %.6f\n"
	        "publisher_update_latency_seconds_count %llu\n",
	        (unsigned long long)hs->latency_count, hs->latency_sum,
	        (unsigned long long)hs->latency_count);
}

static void
metrics_feed_and_store(const struct server_figures *fig, FILE *f)
{
	const struct feed_status *fs = &fig->feed;
	const struct store_stats *ss = &fig->store;
	const char *kind = fs->kind;

	metric_family(f, "publisher_feed_running", "gauge",
	              "1 while the feed's thread is alive and producing.");
	metric_labeled(f, "publisher_feed_running", "kind", kind, fs->running);
	metric_family(f, "publisher_feed_finished", "gauge",
	              "1 once the feed reached its end (a replay without "
	              "loop).");
	metric_labeled(f, "publisher_feed_finished", "kind", kind,
	               fs->finished);
	metric_u64(f, "publisher_feed_ticks_total", "counter",
	           "Ticks the feed produced.", fs->ticks);
	metric_u64(f, "publisher_feed_bad_lines_total", "counter",
	           "Input lines the feed skipped.", fs->bad_lines);
	metric_u64(f, "publisher_tick_queue_depth", "gauge",
	           "Ticks waiting between feed and engine.",
	           fig->pipeline.queue_depth);
	metric_u64(f, "publisher_log_lines_suppressed_total", "counter",
	           "Log lines held back by the per-site rate limits.",
	           fig->log_suppressed);
	if (!fig->has_store)
		return;
	metric_u64(f, "publisher_store_ticks_written_total", "counter",
	           "Ticks committed to SQLite.", ss->ticks_written);
	metric_u64(f, "publisher_store_commits_total", "counter",
	           "Store transactions committed.", ss->commits);
	metric_u64(f, "publisher_store_last_batch", "gauge",
	           "Ticks in the last commit.", ss->last_batch);
	metric_u64(f, "publisher_store_queued", "gauge",
	           "Ticks waiting for the store writer.", ss->queued);
	metric_double(f, "publisher_store_lag_seconds", "gauge",
	              "Age of the oldest tick waiting for the writer.",
	              (double)ss->lag_us / 1e6);
	metric_u64(f, "publisher_store_write_errors_total", "counter",
	           "Failed store commits.", ss->write_errors);
	metric_u64(f, "publisher_store_ticks_refused_total", "counter",
	           "Ticks the store did not keep (invalid, or seq not after "
	           "the stored one).",
	           ss->ticks_refused);
	metric_u64(f, "publisher_store_failing", "gauge",
	           "1 while the last commit attempt failed.", ss->failing);
	metric_u64(f, "publisher_store_ticks_dropped_total", "counter",
	           "Ticks served live that the store did not keep (it was "
	           "behind or failing); recorded as gaps.",
	           ss->ticks_dropped);
	metric_u64(f, "publisher_store_gaps_started_total", "counter",
	           "Times the store began dropping ticks.", ss->gaps_started);
	metric_u64(f, "publisher_store_gaps_written_total", "counter",
	           "Gap rows (one symbol's dropped seqs) committed.",
	           ss->gaps_written);
}

/* The Redis link of an ingest or an edge (publisher/redis_link.h). */
static void
metrics_redis(const struct server_figures *fig, FILE *f)
{
	if (fig->has_redis_publisher) {
		const struct redis_publisher_stats *ps = &fig->redis_publisher;

		metric_family(f, "publisher_redis_connected", "gauge",
		              "1 while the link to Redis is up.");
		metric_labeled(f, "publisher_redis_connected", "role", "ingest",
		               ps->connected);
		metric_double(f, "publisher_redis_lag_seconds", "gauge",
		              "Ingest: age of the oldest tick waiting to be "
		              "published.",
		              (double)ps->lag_us / 1e6);
		metric_u64(f, "publisher_redis_reconnects_total", "counter",
		           "Connections to Redis after the first.",
		           ps->reconnects);
		metric_u64(f, "publisher_redis_resyncs_total", "counter",
		           "Ingest: full state rewrites (runs started).",
		           ps->full_syncs);
		metric_u64(f, "publisher_redis_ticks_published_total",
		           "counter", "Ticks published as stream entries.",
		           ps->ticks_published);
		metric_u64(f, "publisher_redis_ticks_folded_total", "counter",
		           "Ticks folded into the state while Redis was "
		           "unreachable.",
		           ps->ticks_folded);
		metric_u64(f, "publisher_redis_ticks_dropped_total", "counter",
		           "Live ticks not queued while Redis was behind: they "
		           "reached the edges as state.",
		           ps->ticks_dropped);
		metric_u64(f, "publisher_redis_state_resyncs_total", "counter",
		           "Runs started to carry the states of dropped ticks.",
		           ps->state_resyncs);
		metric_u64(f, "publisher_redis_queued", "gauge",
		           "Ticks waiting for the Redis publisher.",
		           ps->queued);
		metric_u64(f, "publisher_redis_errors_total", "counter",
		           "Failed connects, I/O errors and error replies.",
		           ps->errors);
	}
	if (fig->has_redis_follower) {
		const struct redis_follower_stats *fs = &fig->redis_follower;

		metric_family(f, "publisher_redis_connected", "gauge",
		              "1 while the link to Redis is up.");
		metric_labeled(f, "publisher_redis_connected", "role", "edge",
		               fs->connected);
		metric_u64(f, "publisher_redis_synced", "gauge",
		           "Edge: 1 while holding the ingest's state.",
		           fs->synced);
		metric_double(f, "publisher_redis_lag_seconds", "gauge",
		              "Edge: how long the last entry read had been in "
		              "the stream.",
		              (double)fs->lag_us / 1e6);
		metric_u64(f, "publisher_redis_reconnects_total", "counter",
		           "Connections to Redis after the first.",
		           fs->reconnects);
		metric_u64(f, "publisher_redis_resyncs_total", "counter",
		           "Edge: states taken from Redis.", fs->resyncs);
		metric_u64(f, "publisher_redis_entries_read_total", "counter",
		           "Edge: stream entries read.", fs->entries_read);
		metric_u64(f, "publisher_redis_ticks_pushed_total", "counter",
		           "Edge: ticks handed to the engine.",
		           fs->ticks_pushed);
		metric_u64(f, "publisher_redis_errors_total", "counter",
		           "Failed connects, I/O errors and error replies.",
		           fs->errors);
	}
}

int
http_metrics(struct server *s, struct http_request *h)
{
	struct server_figures fig;
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);

	if (!f)
		return http_respond_text(h, 500, "out of memory\n");
	server_figures_read(s, &fig);
	metrics_connections(&fig, f);
	metrics_stream(&fig, f);
	metrics_feed_and_store(&fig, f);
	metrics_redis(&fig, f);
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
 * 503 only when live data itself is affected (server_live_degraded()). A
 * sink that is behind, failing or detached (the store, an ingest's Redis
 * publisher) does not stop the live stream: 200, with the sink's state on
 * its own line, so that a load balancer does not pull a node that serves
 * fresh prices. The first line says "ok", "ok, degraded" (a sink) or
 * "degraded: <why>" (503).
 */
int
http_healthz(struct server *s, struct http_request *h)
{
	char why[512] = "", *sinks = NULL;
	size_t sinks_len = 0;
	bool sink_degraded = false;
	FILE *f;
	int rc;

	server_live_degraded(s, why, sizeof why);
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

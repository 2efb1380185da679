/*
 * server_figures.h: one reading of every figure the server reports about
 * itself. GET /metrics (metrics.c, Prometheus text) and GET /api/status
 * (http_status.c, JSON for the status page) both write what one
 * server_figures_read() gathered, so the two never disagree on where a
 * figure comes from, and nothing is gathered twice.
 *
 *   struct server_figures f;
 *   server_figures_read(s, &f);
 *   ... f.engine.updates_sent, f.has_store ? f.store.lag_us : 0 ...
 *
 * What it owns: nothing. The struct is filled by value from each part's
 * own stats call (the sessions, the transport, the engine, the pipeline,
 * the feed, the store, compression and the Redis link); its strings (the
 * feed's kind and replay state, the epoch) are borrowed from those parts
 * and valid until the loop runs on.
 *
 * Who calls it: metrics.c (/metrics, /healthz) and http_status.c, on the
 * loop's thread, for one answer at a time.
 */
#ifndef PUBLISHER_SERVER_FIGURES_H
#define PUBLISHER_SERVER_FIGURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "engine.h"
#include "feed.h"
#include "pipeline.h"
#include "redis_link.h"
#include "server_private.h"
#include "session.h"
#include "store.h"
#include "ws_deflate.h"

struct server_figures {
	time_t started; /* when the server started (wall clock) */
	const char *epoch;

	/* Clients: WebSockets open and stream sessions held, and of those
	 * the stream sessions by the transport that last carried them,
	 * lingering ones included (the rest are WebSockets). */
	size_t connections;
	size_t sse_sessions, poll_sessions;

	/* The limits the figures are read against (--max-…). */
	uint64_t connections_max;
	uint64_t symbols_max;
	uint64_t pending_symbols_max;

	struct server_metrics transport; /* frames, bytes, refusals */
	struct session_hub_stats hub;    /* opened, errors, latency */
	struct engine_stats engine;      /* ticks, updates, conflation */
	struct pipeline_stats pipeline;  /* queue, batches, seqs */
	struct feed_status feed;         /* kind "none" without a feed */
	uint64_t log_suppressed;

	bool has_store; /* the rest are zero without the part */
	struct store_stats store;
	bool has_deflate;
	struct ws_deflate_stats deflate;
	bool has_redis_publisher; /* an ingest node */
	struct redis_publisher_stats redis_publisher;
	bool has_redis_follower; /* an edge node */
	struct redis_follower_stats redis_follower;
};

/* Read every figure now into *out. Cannot fail. */
void server_figures_read(struct server *s, struct server_figures *out);

/*
 * Whether live data itself is affected now, the rule /healthz answers 503
 * by: the feed is not running (and is not done, or absent by choice), or
 * an edge is not following a live ingest. True with the reason in why
 * (for operators: "feed 'tcp' is not running"); false with why "".
 */
bool server_live_degraded(struct server *s, char *why, size_t whylen);

#endif

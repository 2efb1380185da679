/*
 * server_figures.c: server_figures_read(), the one place the server's
 * figures are gathered from its parts (see server_figures.h).
 */
#include "server_figures.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

void
server_figures_read(struct server *s, struct server_figures *out)
{
	struct feed *feed = pipeline_feed(s->pipeline);
	struct redis_follower *follower = pipeline_follower(s->pipeline);

	memset(out, 0, sizeof *out);
	out->started = s->started;
	out->epoch = pipeline_epoch(s->pipeline);
	out->connections = s->connections;
	out->sse_sessions = s->stream_count[0];
	out->poll_sessions = s->stream_count[1];
	out->connections_max = s->opt->max_connections;
	out->symbols_max = s->opt->max_symbols_total;
	out->pending_symbols_max = s->opt->max_pending_symbols_total;
	out->transport = s->m;
	session_hub_get_stats(s->hub, &out->hub);
	engine_get_stats(s->engine, &out->engine);
	pipeline_get_stats(s->pipeline, &out->pipeline);
	if (feed)
		feed_get_status(feed, &out->feed);
	if (!out->feed.kind)
		out->feed.kind = "none";
	out->log_suppressed = log_suppressed_total();
	if (s->parts.store) {
		out->has_store = true;
		store_get_stats(s->parts.store, &out->store);
	}
	if (s->deflate) {
		out->has_deflate = true;
		ws_deflate_get_stats(s->deflate, &out->deflate);
	}
	if (s->parts.redis_pub) {
		out->has_redis_publisher = true;
		redis_publisher_get_stats(s->parts.redis_pub,
		                          &out->redis_publisher);
	}
	if (follower) {
		out->has_redis_follower = true;
		redis_follower_get_stats(follower, &out->redis_follower);
	}
}

bool
server_live_degraded(struct server *s, char *why, size_t whylen)
{
	struct redis_follower *follower = pipeline_follower(s->pipeline);
	struct feed *feed = pipeline_feed(s->pipeline);
	struct feed_status fs;

	why[0] = '\0';
	if (follower && redis_follower_degraded(follower, why, whylen))
		return true;
	if (!feed)
		return false;
	feed_get_status(feed, &fs);
	if (fs.running || fs.finished || !strcmp(fs.kind, "none"))
		return false;
	snprintf(why, whylen, "feed '%s' is not running", fs.kind);
	return true;
}

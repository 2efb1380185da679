/*
 * protocol: the WebSocket protocol, version 1 (README, Protocol), as data.
 *
 * protocol_parse() turns one inbound text message into a struct request or a
 * struct protocol_error with the code and a message a person can act on.
 * The protocol_write_*() functions append one outbound message to a jsonbuf:
 * every reply a client gets, the history reply included (query.c runs the
 * query and writes its rows with them). Neither side touches sockets, the
 * engine or the database.
 *
 * What it owns: no state. A parsed struct request owns its arrays until
 * request_free(); the writers append to the caller's jsonbuf. Safe on any
 * thread.
 *
 * Who calls it: session.c parses every inbound message and writes every
 * reply with it, on the loop's thread; query.c writes history and bars
 * replies on its worker threads; http_query.c reads interval names with
 * protocol_interval_us().
 */
#ifndef PUBLISHER_PROTOCOL_H
#define PUBLISHER_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jsonbuf.h"
#include "tick.h"

/* The rows of a history reply, as the store reads them (store.h). */
struct bar;
struct store_gap;

#define PROTOCOL_VERSION 1
#define PROTOCOL_ID_MAX 128	/* longest encoded request id echoed back */
#define PROTOCOL_EPOCH_MAX 64

enum request_op {
	OP_SUBSCRIBE,
	OP_UNSUBSCRIBE,
	OP_SYMBOLS,
	OP_HISTORY,
	OP_PING,
	OP_REPLAY,
};

enum replay_action {
	REPLAY_PAUSE,
	REPLAY_RESUME,
	REPLAY_SPEED,
	REPLAY_SEEK,
	REPLAY_STATUS, /* just report where the replay stands */
};

struct resume_entry {
	char symbol[TICK_SYMBOL_MAX + 1];
	uint64_t seq;
};

/* A parsed request. Arrays are owned by the request: request_free(). */
struct request {
	enum request_op op;
	/* The request's "id" re-encoded as compact JSON (any JSON scalar),
	 * or "" when the request had none. Echo it verbatim. */
	char id[PROTOCOL_ID_MAX + 1];

	/* subscribe, unsubscribe; history uses symbols[0] */
	char (*symbols)[TICK_SYMBOL_MAX + 1];
	size_t symbol_count;

	/* subscribe */
	bool has_resume;
	char resume_epoch[PROTOCOL_EPOCH_MAX + 1];
	struct resume_entry *resume; /* sorted by symbol (strcmp) */
	size_t resume_count;
	bool has_max_hz;
	double max_hz; /* >= 0 */

	/* history: from/to in µs (0 when absent), limit (0 when absent),
	 * interval in µs (0 = ticks, not bars) */
	int64_t from, to;
	uint32_t limit;
	int64_t interval_us;
	char interval[4]; /* "1s", "1m", "5m", "1h", "1d" or "" */

	/* replay */
	enum replay_action action;
	double speed; /* > 0; 0 = max */
	int64_t seek_ts;
};

struct protocol_limits {
	size_t max_symbols; /* per request and connection (default 10,000) */
	uint32_t max_history_limit;
};

struct protocol_error {
	const char *code; /* static string: "bad_json", "bad_request", ... */
	char message[256];
	char id[PROTOCOL_ID_MAX + 1]; /* the id, when it could be read */
};

/*
 * Parse one text message. Returns 0 and fills *req (release it with
 * request_free), or -1 and fills *err (nothing to free).
 * Error codes: bad_json (not JSON), unknown_op, bad_request (JSON that is
 * not an object, a missing or ill-typed member, invalid symbol, bad time,
 * bad interval), too_many_symbols (over limits->max_symbols).
 */
int
protocol_parse(const char *text, size_t len,
	       const struct protocol_limits *limits, struct request *req,
	       struct protocol_error *err);

/* Free what a successful protocol_parse() allocated. NULL is a no-op. */
void
request_free(struct request *req);

/* Look a symbol up in req->resume. Returns true and sets *seq when found. */
bool
request_resume_seq(const struct request *req, const char *symbol,
		   uint64_t *seq);

/* The length in µs of a bar interval named "1s", "1m", "5m", "1h" or "1d";
 * 0 for any other name. */
int64_t
protocol_interval_us(const char *name);

/* ---------------------------------------------------------- server → client */

/* feed: the feed's kind ("synthetic", "replay", …) so a dashboard knows
 * whether to offer replay controls. */
void
protocol_write_hello(struct jsonbuf *b, const char *epoch,
		     const char *server_version, unsigned heartbeat_ms,
		     const char *feed);
/* symbols: what was subscribed (or unsubscribed) by the request. */
void
protocol_write_subscribed(struct jsonbuf *b, const char *id,
			  const char (*symbols)[TICK_SYMBOL_MAX + 1],
			  size_t count);
void
protocol_write_unsubscribed(struct jsonbuf *b, const char *id,
			    const char (*symbols)[TICK_SYMBOL_MAX + 1],
			    size_t count);
/* Starts {"type":"symbols","id":…,"symbols":[ ; add entries, then end.
 * An entry is {"symbol":…,"seq":…,"zone":…}: zone is the IANA time zone
 * of the symbol's trading sessions ("America/New_York", "UTC"), which a
 * dashboard shows the symbol's times in. */
void
protocol_write_symbols_begin(struct jsonbuf *b, const char *id);
void
protocol_write_symbols_entry(struct jsonbuf *b, bool first,
			     const char *symbol, uint64_t seq,
			     const char *zone);
void
protocol_write_symbols_end(struct jsonbuf *b);
void
protocol_write_pong(struct jsonbuf *b, const char *id, int64_t now_us);
void
protocol_write_heartbeat(struct jsonbuf *b, int64_t now_us);
/* id may be "" (no id). message is plain text; it is escaped here. */
void
protocol_write_error(struct jsonbuf *b, const char *id, const char *code,
		     const char *message);

/*
 * The reply to {"op":"history",…}, written as its rows are read:
 *
 *   {"type":"history","id":…,"symbol":"AAPL","ticks":[{"ts":…,"seq":…,
 *    "bid":189.33,…},…],"gaps":[…],"gaps_more":true,"more":true,
 *    "next_from":…}
 *
 * or, for bars, "interval":"1m","bars":[{"t":…,"open":…,"high":…,"low":…,
 * "close":…,"volume":…},…] in place of "ticks". In this order: _begin; a
 * _tick or _bar per row, first true for the first; _rows_end; a _gap per
 * gap the rows overlap, first true for the first; _gaps_end with their
 * count (and more: some were left out); _end, with more when the reply was
 * cut at its page size and next_from where the next page starts. id may be
 * "" (no id); interval is "" for ticks.
 */
void
protocol_write_history_begin(struct jsonbuf *b, const char *id,
			     const char *symbol, const char *interval);
void
protocol_write_history_tick(struct jsonbuf *b, bool first,
			    const struct tick *t);
void
protocol_write_history_bar(struct jsonbuf *b, bool first,
			   const struct bar *bar);
void
protocol_write_history_rows_end(struct jsonbuf *b);
void
protocol_write_history_gap(struct jsonbuf *b, bool first,
			   const struct store_gap *g);
void
protocol_write_history_gaps_end(struct jsonbuf *b, unsigned count, bool more);
void
protocol_write_history_end(struct jsonbuf *b, bool more, int64_t next_from);

/*
 * GET /api/bars answers with the bars of a history reply and no envelope:
 * {"symbol":"AAPL","interval":"1m","bars":[…],"gaps":[…]} and a newline.
 * _bars_begin, then the rows and gaps as for history, then _bars_end.
 */
void
protocol_write_bars_begin(struct jsonbuf *b, const char *symbol,
			  const char *interval);
void
protocol_write_bars_end(struct jsonbuf *b);

/* Where a replay feed stands, for the reply to {"op":"replay",…}. The
 * server fills it from feed_get_status(); times are the file's own
 * timestamps in µs (what a seek takes), 0 = not known. */
struct replay_state {
	const char *state;  /* "playing", "paused", "seeking", "finished" */
	double speed;	    /* > 0, or 0 for max */
	int64_t position;   /* latest file ts sent; 0 = none yet */
	int64_t start, end; /* the file's first and last ts */
	int64_t seek_to;    /* the target while "seeking" */
	uint64_t passes;    /* passes completed (loop) */
};

/*
 * {"type":"replay","id":…,"state":"paused","speed":10,"position":…,
 *  "start":…,"end":…,"passes":0} with "speed":"max" for 0, "position":null
 * before the first tick, "start"/"end" left out while unknown and
 * "seek_to" only while seeking. id may be "" (a broadcast of a change).
 */
void
protocol_write_replay_state(struct jsonbuf *b, const char *id,
			    const struct replay_state *s);

#endif

/*
 * protocol: the WebSocket protocol, version 1 (README, Protocol), as data.
 *
 * Inbound messages are small and rare next to the outbound stream, so they
 * are parsed with jansson; outbound replies are written token by token with
 * the jsonbuf helpers, like every other outbound message.
 *
 * Every error message may end up in front of a person, so each one says which
 * member was wrong and what was expected. Parts of a message that come from
 * the client (an op name, a symbol) are cut short on a UTF-8 character
 * boundary: the reply must stay valid UTF-8 or a browser drops the connection.
 */
#include "protocol.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "time_parse.h"

/* Used when the caller passes no limits: the defaults in README, Protocol. */
#define DEFAULT_MAX_SYMBOLS       10000
#define DEFAULT_MAX_HISTORY_LIMIT 10000

/* Longest piece of client text quoted back in an error message. */
#define EXCERPT_MAX 40

#define SYMBOL_RULE "1-32 of A-Z a-z 0-9 . _ : / -"
#define TIME_RULE                                                              \
	"microseconds since the epoch or an ISO 8601 time like "               \
	"2024-03-01T14:30:00Z"

typedef char symbol_t[TICK_SYMBOL_MAX + 1];

/* ------------------------------------------------------------ error helpers */

/* Length of the longest prefix of s[0..len) that does not end inside a UTF-8
 * sequence. Only the tail is inspected: the input is otherwise valid. */
static size_t
utf8_whole_prefix(const char *s, size_t len)
{
	size_t start = len, need;
	unsigned char lead;

	/* Step back over at most three continuation bytes to the lead byte. */
	while (start > 0 && len - start < 3 &&
	       ((unsigned char)s[start - 1] & 0xC0) == 0x80)
		start--;
	if (start == 0)
		return 0;
	lead = (unsigned char)s[start - 1];
	if (lead < 0x80)
		return len; /* ASCII: no sequence was open */
	if ((lead & 0xE0) == 0xC0)
		need = 2;
	else if ((lead & 0xF0) == 0xE0)
		need = 3;
	else if ((lead & 0xF8) == 0xF0)
		need = 4;
	else
		return start - 1; /* not a lead byte: drop it */
	return len - (start - 1) >= need ? len : start - 1;
}

/* Copy client text for quoting in a message: at most EXCERPT_MAX bytes, cut on
 * a character boundary, "..." appended when something was cut. */
static const char *
excerpt(char out[EXCERPT_MAX + 4], const char *s, size_t len)
{
	size_t n = len;

	if (n > EXCERPT_MAX)
		n = utf8_whole_prefix(s, EXCERPT_MAX);
	memcpy(out, s, n);
	if (n < len) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

static void set_error(struct protocol_error *err, const char *code,
                      const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
set_error(struct protocol_error *err, const char *code, const char *fmt, ...)
{
	va_list ap;
	int n;

	err->code = code;
	va_start(ap, fmt);
	n = vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	/* Messages are sized to fit; if one ever does not, do not let the cut
	 * leave half a character behind. */
	if (n >= (int)sizeof err->message)
		err->message[utf8_whole_prefix(err->message,
		                               sizeof err->message - 1)] = '\0';
}

/* "a string", "an array", ...: what the client sent instead. */
static const char *
json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
	default:
		return "null";
	}
}

static const char *
op_name(enum request_op op)
{
	switch (op) {
	case OP_SUBSCRIBE:
		return "subscribe";
	case OP_UNSUBSCRIBE:
		return "unsubscribe";
	case OP_SYMBOLS:
		return "symbols";
	case OP_HISTORY:
		return "history";
	case OP_PING:
		return "ping";
	case OP_REPLAY:
	default:
		return "replay";
	}
}

static size_t
limit_symbols(const struct protocol_limits *limits)
{
	return limits && limits->max_symbols ? limits->max_symbols
	                                     : DEFAULT_MAX_SYMBOLS;
}

static uint32_t
limit_history(const struct protocol_limits *limits)
{
	return limits && limits->max_history_limit ? limits->max_history_limit
	                                           : DEFAULT_MAX_HISTORY_LIMIT;
}

/* Report a string that is not a valid symbol. */
static void
bad_symbol(struct protocol_error *err, const char *what, const char *s,
           size_t len)
{
	char ex[EXCERPT_MAX + 4];

	set_error(err, "bad_request",
	          "%s'%s' is not a valid symbol (" SYMBOL_RULE ")", what,
	          excerpt(ex, s, len));
}

/* ------------------------------------------------------------------- time */

/* A time member: a JSON integer, or a string time_parse() takes. */
static int
json_time(const json_t *v, int64_t *us)
{
	if (json_is_integer(v)) {
		*us = (int64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v))
		return time_parse(json_string_value(v), json_string_length(v),
		                  us);
	return -1;
}

/* ------------------------------------------------------------------ parse */

struct symbol_ref {
	const char *s;
	size_t index;
};

static int
symbol_ref_cmp(const void *a, const void *b)
{
	const struct symbol_ref *x = a, *y = b;
	int c = strcmp(x->s, y->s);

	if (c)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * Drop repeated symbols, keeping the first of each in the client's order.
 * Sorting pointers keeps this O(n log n): a request may list 10,000 symbols.
 * Returns the new count, or (size_t)-1 when memory ran out.
 */
static size_t
dedupe_symbols(symbol_t *symbols, size_t n)
{
	struct symbol_ref *refs;
	size_t i, out, lead;

	if (n < 2)
		return n;
	refs = malloc(n * sizeof *refs);
	if (!refs)
		return (size_t)-1;
	for (i = 0; i < n; i++) {
		refs[i].s = symbols[i];
		refs[i].index = i;
	}
	qsort(refs, n, sizeof *refs, symbol_ref_cmp);
	/* A symbol is never empty, so "" marks a repeat to drop. Compare with
	 * the first of each run, the one kept: the others are blanked. */
	for (i = 1, lead = 0; i < n; i++) {
		if (strcmp(refs[i].s, refs[lead].s) == 0)
			symbols[refs[i].index][0] = '\0';
		else
			lead = i;
	}
	free(refs);
	for (i = out = 0; i < n; i++) {
		if (!symbols[i][0])
			continue;
		if (out != i)
			memcpy(symbols[out], symbols[i], sizeof symbols[i]);
		out++;
	}
	return out;
}

/* "symbols" of subscribe / unsubscribe: a non-empty array of symbols or "*". */
static int
parse_symbol_list(const json_t *msg, const struct protocol_limits *limits,
                  struct request *req, struct protocol_error *err)
{
	const json_t *arr = json_object_get(msg, "symbols");
	const char *op = op_name(req->op);
	size_t n, i, max = limit_symbols(limits);

	if (!json_is_array(arr) || json_array_size(arr) == 0) {
		set_error(err, "bad_request",
		          "%s needs \"symbols\": a non-empty array of symbol "
		          "strings",
		          op);
		return -1;
	}
	n = json_array_size(arr);
	if (n > max) {
		set_error(err, "too_many_symbols",
		          "%s lists %zu symbols; the limit is %zu per "
		          "connection",
		          op, n, max);
		return -1;
	}
	req->symbols = calloc(n, sizeof *req->symbols);
	if (!req->symbols) {
		set_error(err, "internal", "out of memory reading symbols");
		return -1;
	}
	for (i = 0; i < n; i++) {
		const json_t *v = json_array_get(arr, i);
		const char *s;
		size_t len;

		if (!json_is_string(v)) {
			set_error(err, "bad_request",
			          "symbols[%zu] must be a symbol string, not "
			          "%s",
			          i, json_kind(v));
			return -1;
		}
		s = json_string_value(v);
		len = json_string_length(v);
		if (!(len == 1 && s[0] == '*') && !tick_symbol_valid(s, len)) {
			bad_symbol(err, "", s, len);
			return -1;
		}
		memcpy(req->symbols[i], s, len + 1);
	}
	req->symbol_count = dedupe_symbols(req->symbols, n);
	if (req->symbol_count == (size_t)-1) {
		req->symbol_count = 0;
		set_error(err, "internal", "out of memory reading symbols");
		return -1;
	}
	return 0;
}

static int
resume_entry_cmp(const void *a, const void *b)
{
	const struct resume_entry *x = a, *y = b;

	return strcmp(x->symbol, y->symbol);
}

/* "resume": {"epoch":"…","seq":{"AAPL":1040,…}} */
static int
parse_resume(const json_t *resume, const struct protocol_limits *limits,
             struct request *req, struct protocol_error *err)
{
	const json_t *epoch, *seq, *v;
	const char *key;
	size_t n, max = limit_symbols(limits);

	if (!json_is_object(resume)) {
		set_error(err, "bad_request",
		          "resume must be an object {\"epoch\":\"...\","
		          "\"seq\":{\"SYMBOL\":seq,...}}, not %s",
		          json_kind(resume));
		return -1;
	}
	epoch = json_object_get(resume, "epoch");
	if (!json_is_string(epoch)) {
		set_error(err, "bad_request",
		          "resume.epoch must be a string: the epoch from "
		          "hello");
		return -1;
	}
	if (json_string_length(epoch) > PROTOCOL_EPOCH_MAX) {
		set_error(err, "bad_request",
		          "resume.epoch is longer than %d characters; use the "
		          "epoch from hello",
		          PROTOCOL_EPOCH_MAX);
		return -1;
	}
	memcpy(req->resume_epoch, json_string_value(epoch),
	       json_string_length(epoch) + 1);
	req->has_resume = true;

	/* No seq: the client holds nothing yet but names its epoch. */
	seq = json_object_get(resume, "seq");
	if (!seq)
		return 0;
	if (!json_is_object(seq)) {
		set_error(err, "bad_request",
		          "resume.seq must be an object of symbol: seq, not "
		          "%s",
		          json_kind(seq));
		return -1;
	}
	n = json_object_size(seq);
	if (n > max) {
		set_error(err, "too_many_symbols",
		          "resume.seq lists %zu symbols; the limit is %zu per "
		          "connection",
		          n, max);
		return -1;
	}
	if (n == 0)
		return 0;
	req->resume = calloc(n, sizeof *req->resume);
	if (!req->resume) {
		set_error(err, "internal", "out of memory reading resume");
		return -1;
	}
	/* jansson refuses keys with NUL bytes, so strlen() sees the whole key;
	 * with JSON_REJECT_DUPLICATES no symbol appears twice. */
	json_object_foreach((json_t *)seq, key, v)
	{
		size_t len = strlen(key);
		struct resume_entry *e = &req->resume[req->resume_count];

		if (!tick_symbol_valid(key, len)) {
			bad_symbol(err, "resume.seq key ", key, len);
			return -1;
		}
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			set_error(err, "bad_request",
			          "resume.seq.%s must be a non-negative "
			          "integer",
			          key);
			return -1;
		}
		memcpy(e->symbol, key, len + 1);
		e->seq = (uint64_t)json_integer_value(v);
		req->resume_count++;
	}
	qsort(req->resume, req->resume_count, sizeof *req->resume,
	      resume_entry_cmp);
	return 0;
}

static int
parse_subscribe(const json_t *msg, const struct protocol_limits *limits,
                struct request *req, struct protocol_error *err)
{
	const json_t *v;

	if (parse_symbol_list(msg, limits, req, err))
		return -1;
	v = json_object_get(msg, "resume");
	if (v && parse_resume(v, limits, req, err))
		return -1;
	v = json_object_get(msg, "max_hz");
	if (v) {
		if (!json_is_number(v) || json_number_value(v) < 0) {
			set_error(err, "bad_request",
			          "max_hz must be a number >= 0 (0 = no cap)");
			return -1;
		}
		req->has_max_hz = true;
		req->max_hz = json_number_value(v);
	}
	return 0;
}

static const struct {
	const char *name;
	int64_t us;
} intervals[] = {
        {"1s", 1000000LL},    {"1m", 60000000LL},    {"5m", 300000000LL},
        {"1h", 3600000000LL}, {"1d", 86400000000LL},
};
static const size_t n_intervals = sizeof intervals / sizeof intervals[0];

int64_t
protocol_interval_us(const char *name)
{
	size_t i;

	for (i = 0; i < n_intervals; i++)
		if (strcmp(name, intervals[i].name) == 0)
			return intervals[i].us;
	return 0;
}

static int
parse_history(const json_t *msg, const struct protocol_limits *limits,
              struct request *req, struct protocol_error *err)
{
	uint32_t max = limit_history(limits);
	const json_t *v;
	const char *s;
	size_t len, i;

	v = json_object_get(msg, "symbol");
	if (!json_is_string(v)) {
		set_error(err, "bad_request",
		          "history needs \"symbol\": a symbol string");
		return -1;
	}
	s = json_string_value(v);
	len = json_string_length(v);
	if (!tick_symbol_valid(s, len)) {
		bad_symbol(err, "", s, len);
		return -1;
	}
	req->symbols = calloc(1, sizeof *req->symbols);
	if (!req->symbols) {
		set_error(err, "internal", "out of memory");
		return -1;
	}
	memcpy(req->symbols[0], s, len + 1);
	req->symbol_count = 1;

	v = json_object_get(msg, "from");
	if (v && json_time(v, &req->from)) {
		set_error(err, "bad_request",
		          "history \"from\" must be " TIME_RULE);
		return -1;
	}
	v = json_object_get(msg, "to");
	if (v && json_time(v, &req->to)) {
		set_error(err, "bad_request",
		          "history \"to\" must be " TIME_RULE);
		return -1;
	}
	if (req->from && req->to && req->from > req->to) {
		set_error(err, "bad_request",
		          "history \"from\" is after \"to\"");
		return -1;
	}

	v = json_object_get(msg, "limit");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > (json_int_t)max) {
			set_error(err, "bad_request",
			          "history \"limit\" must be an integer from 1 "
			          "to %u",
			          (unsigned)max);
			return -1;
		}
		req->limit = (uint32_t)json_integer_value(v);
	}

	v = json_object_get(msg, "interval");
	if (v) {
		const char *name = json_string_value(v); /* NULL if no string */

		for (i = 0; i < n_intervals; i++)
			if (name && strcmp(name, intervals[i].name) == 0)
				break;
		if (i == n_intervals) {
			set_error(err, "bad_request",
			          "history \"interval\" must be one of 1s, 1m, "
			          "5m, 1h, 1d");
			return -1;
		}
		req->interval_us = intervals[i].us;
		memcpy(req->interval, intervals[i].name, 3);
	}
	return 0;
}

static int
parse_replay(const json_t *msg, struct request *req, struct protocol_error *err)
{
	const json_t *v = json_object_get(msg, "action");
	const char *action = json_string_value(v);
	char ex[EXCERPT_MAX + 4];

	if (!action) {
		set_error(err, "bad_request",
		          "replay needs \"action\": pause, resume, speed, "
		          "seek or status");
		return -1;
	}
	if (strcmp(action, "pause") == 0) {
		req->action = REPLAY_PAUSE;
	} else if (strcmp(action, "resume") == 0) {
		req->action = REPLAY_RESUME;
	} else if (strcmp(action, "status") == 0) {
		req->action = REPLAY_STATUS;
	} else if (strcmp(action, "speed") == 0) {
		req->action = REPLAY_SPEED;
		v = json_object_get(msg, "speed");
		if (json_is_string(v) &&
		    strcmp(json_string_value(v), "max") == 0) {
			req->speed = 0;
		} else if (json_is_number(v) && json_number_value(v) > 0) {
			req->speed = json_number_value(v);
		} else {
			set_error(err, "bad_request",
			          "replay speed needs \"speed\": a number > 0 "
			          "or \"max\"");
			return -1;
		}
	} else if (strcmp(action, "seek") == 0) {
		req->action = REPLAY_SEEK;
		if (json_time(json_object_get(msg, "ts"), &req->seek_ts)) {
			set_error(err, "bad_request",
			          "replay seek needs \"ts\": " TIME_RULE);
			return -1;
		}
	} else {
		set_error(err, "bad_request",
		          "replay action '%s' is not one of pause, resume, "
		          "speed, seek or status",
		          excerpt(ex, action, json_string_length(v)));
		return -1;
	}
	return 0;
}

/* Re-encode "id" compactly into out. Returns 0 (out = "" when absent) or -1
 * with err filled. */
static int
parse_id(const json_t *msg, char out[PROTOCOL_ID_MAX + 1],
         struct protocol_error *err)
{
	const json_t *id = json_object_get(msg, "id");
	char *text;
	size_t len;

	out[0] = '\0';
	if (!id)
		return 0;
	if (json_is_object(id) || json_is_array(id)) {
		set_error(err, "bad_request",
		          "id must be a number, string, true, false or null, "
		          "not %s",
		          json_kind(id));
		return -1;
	}
	text = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
	if (!text) {
		set_error(err, "internal", "out of memory reading id");
		return -1;
	}
	len = strlen(text);
	if (len > PROTOCOL_ID_MAX) {
		free(text);
		set_error(err, "bad_request",
		          "id is %zu characters long as JSON; the limit is %d",
		          len, PROTOCOL_ID_MAX);
		return -1;
	}
	memcpy(out, text, len + 1);
	free(text);
	return 0;
}

/* Copy jansson's reason, keeping it printable ASCII: its "near '…'" part may
 * hold a token cut in the middle of a character. */
static void
ascii_copy(char *out, size_t outlen, const char *s)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < outlen; i++)
		out[i] = (unsigned char)s[i] >= 0x20 &&
		                         (unsigned char)s[i] < 0x7f
		                 ? s[i]
		                 : '?';
	out[i] = '\0';
}

int
protocol_parse(const char *text, size_t len,
               const struct protocol_limits *limits, struct request *req,
               struct protocol_error *err)
{
	static const struct {
		const char *name;
		enum request_op op;
	} ops[] = {
	        {"subscribe", OP_SUBSCRIBE}, {"unsubscribe", OP_UNSUBSCRIBE},
	        {"symbols", OP_SYMBOLS},     {"history", OP_HISTORY},
	        {"ping", OP_PING},           {"replay", OP_REPLAY},
	};
	json_error_t jerr;
	json_t *msg;
	const json_t *opv;
	const char *op;
	char ex[EXCERPT_MAX + 4];
	size_t i;
	int rc = -1;

	memset(req, 0, sizeof *req);
	memset(err, 0, sizeof *err);

	/* jansson would say "unexpected token near end of file". */
	if (!text || len == 0) {
		set_error(err, "bad_json",
		          "message is not valid JSON: the message is empty");
		return -1;
	}
	/* JSON_DECODE_ANY so that a scalar gets "must be a JSON object" rather
	 * than jansson's "'[' or '{' expected". */
	msg = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
	                 &jerr);
	if (!msg) {
		char reason[JSON_ERROR_TEXT_LENGTH];

		ascii_copy(reason, sizeof reason, jerr.text);
		if (jerr.line > 0)
			set_error(err, "bad_json",
			          "message is not valid JSON: %s at line %d "
			          "column %d",
			          reason, jerr.line, jerr.column);
		else
			set_error(err, "bad_json",
			          "message is not valid JSON: %s", reason);
		return -1;
	}
	if (!json_is_object(msg)) {
		set_error(err, "bad_request",
		          "message must be a JSON object, not %s",
		          json_kind(msg));
		goto out;
	}

	/* The id first, so that every later error can echo it. */
	if (parse_id(msg, req->id, err))
		goto out;
	memcpy(err->id, req->id, sizeof err->id);

	opv = json_object_get(msg, "op");
	op = json_string_value(opv);
	if (!op) {
		set_error(err, "bad_request", "message has no \"op\" string");
		goto out;
	}
	for (i = 0; i < sizeof ops / sizeof ops[0]; i++)
		if (strcmp(op, ops[i].name) == 0)
			break;
	if (i == sizeof ops / sizeof ops[0]) {
		set_error(err, "unknown_op",
		          "unknown op '%s'; expected subscribe, unsubscribe, "
		          "symbols, history, ping or replay",
		          excerpt(ex, op, json_string_length(opv)));
		goto out;
	}
	req->op = ops[i].op;

	switch (req->op) {
	case OP_SUBSCRIBE:
		rc = parse_subscribe(msg, limits, req, err);
		break;
	case OP_UNSUBSCRIBE:
		rc = parse_symbol_list(msg, limits, req, err);
		break;
	case OP_HISTORY:
		rc = parse_history(msg, limits, req, err);
		break;
	case OP_REPLAY:
		rc = parse_replay(msg, req, err);
		break;
	case OP_SYMBOLS:
	case OP_PING:
		rc = 0;
		break;
	}
out:
	json_decref(msg);
	if (rc) {
		request_free(req);
		memset(req, 0, sizeof *req);
	} else {
		memset(err, 0, sizeof *err);
	}
	return rc;
}

void
request_free(struct request *req)
{
	if (!req)
		return;
	free(req->symbols);
	free(req->resume);
	req->symbols = NULL;
	req->symbol_count = 0;
	req->resume = NULL;
	req->resume_count = 0;
}

bool
request_resume_seq(const struct request *req, const char *symbol, uint64_t *seq)
{
	struct resume_entry key;
	const struct resume_entry *e;
	size_t len;

	if (!req || !req->resume_count || !symbol)
		return false;
	len = strlen(symbol);
	if (len > TICK_SYMBOL_MAX)
		return false;
	memcpy(key.symbol, symbol, len + 1);
	e = bsearch(&key, req->resume, req->resume_count, sizeof *req->resume,
	            resume_entry_cmp);
	if (!e)
		return false;
	if (seq)
		*seq = e->seq;
	return true;
}

/* ---------------------------------------------------------------- writers */

/* {"type":"<type>" and, when the request had one, ,"id":<id> */
static void
write_head(struct jsonbuf *b, const char *type, const char *id)
{
	jsonbuf_append_str(b, "{\"type\":");
	jsonbuf_append_quoted(b, type, strlen(type));
	if (id && id[0]) {
		/* Already JSON: parse_id() encoded it. */
		jsonbuf_append_str(b, ",\"id\":");
		jsonbuf_append_str(b, id);
	}
}

/* The members after the first: ,"key":value. Keys are this file's own
 * words, which need no escaping. */
static void
write_str_member(struct jsonbuf *b, const char *key, const char *value)
{
	jsonbuf_append_char(b, ',');
	jsonbuf_append_key(b, key);
	jsonbuf_append_quoted(b, value, strlen(value));
}

static void
write_i64_member(struct jsonbuf *b, const char *key, int64_t v)
{
	jsonbuf_append_char(b, ',');
	jsonbuf_append_key(b, key);
	jsonbuf_append_i64(b, v);
}

static void
write_u64_member(struct jsonbuf *b, const char *key, uint64_t v)
{
	jsonbuf_append_char(b, ',');
	jsonbuf_append_key(b, key);
	jsonbuf_append_u64(b, v);
}

static void
write_decimal_member(struct jsonbuf *b, const char *key, struct decimal d)
{
	jsonbuf_append_char(b, ',');
	jsonbuf_append_key(b, key);
	jsonbuf_append_decimal(b, d);
}

static void
write_symbol_array(struct jsonbuf *b,
                   const char (*symbols)[TICK_SYMBOL_MAX + 1], size_t count)
{
	size_t i;

	jsonbuf_append_str(b, ",\"symbols\":[");
	for (i = 0; i < count; i++) {
		if (i)
			jsonbuf_append_char(b, ',');
		jsonbuf_append_quoted(b, symbols[i], strlen(symbols[i]));
	}
	jsonbuf_append_str(b, "]}");
}

void
protocol_write_hello(struct jsonbuf *b, const char *epoch,
                     const char *server_version, unsigned heartbeat_ms,
                     const char *feed)
{
	write_head(b, "hello", NULL);
	write_i64_member(b, "protocol", PROTOCOL_VERSION);
	write_str_member(b, "epoch", epoch);
	write_str_member(b, "server", server_version);
	write_u64_member(b, "heartbeat_ms", heartbeat_ms);
	write_str_member(b, "feed", feed);
	jsonbuf_append_char(b, '}');
}

void
protocol_write_subscribed(struct jsonbuf *b, const char *id,
                          const char (*symbols)[TICK_SYMBOL_MAX + 1],
                          size_t count)
{
	write_head(b, "subscribed", id);
	write_symbol_array(b, symbols, count);
}

void
protocol_write_unsubscribed(struct jsonbuf *b, const char *id,
                            const char (*symbols)[TICK_SYMBOL_MAX + 1],
                            size_t count)
{
	write_head(b, "unsubscribed", id);
	write_symbol_array(b, symbols, count);
}

void
protocol_write_symbols_begin(struct jsonbuf *b, const char *id)
{
	write_head(b, "symbols", id);
	jsonbuf_append_str(b, ",\"symbols\":[");
}

void
protocol_write_symbols_entry(struct jsonbuf *b, bool first, const char *symbol,
                             uint64_t seq, const char *zone)
{
	if (!first)
		jsonbuf_append_char(b, ',');
	jsonbuf_append_str(b, "{\"symbol\":");
	jsonbuf_append_quoted(b, symbol, strlen(symbol));
	write_u64_member(b, "seq", seq);
	write_str_member(b, "zone", zone);
	jsonbuf_append_char(b, '}');
}

void
protocol_write_symbols_end(struct jsonbuf *b)
{
	jsonbuf_append_str(b, "]}");
}

void
protocol_write_pong(struct jsonbuf *b, const char *id, int64_t now_us)
{
	write_head(b, "pong", id);
	write_i64_member(b, "ts", now_us);
	jsonbuf_append_char(b, '}');
}

void
protocol_write_heartbeat(struct jsonbuf *b, int64_t now_us)
{
	write_head(b, "heartbeat", NULL);
	write_i64_member(b, "ts", now_us);
	jsonbuf_append_char(b, '}');
}

void
protocol_write_error(struct jsonbuf *b, const char *id, const char *code,
                     const char *message)
{
	write_head(b, "error", id);
	write_str_member(b, "code", code);
	write_str_member(b, "message", message);
	jsonbuf_append_char(b, '}');
}

/* ------------------------------------------------------ the history reply */

/* ,"symbol":…, then where the rows go: ,"ticks":[ or ,"interval":…,"bars":[ */
static void
write_rows_head(struct jsonbuf *b, const char *symbol, const char *interval)
{
	write_str_member(b, "symbol", symbol);
	if (interval && interval[0]) {
		write_str_member(b, "interval", interval);
		jsonbuf_append_str(b, ",\"bars\":[");
	} else {
		jsonbuf_append_str(b, ",\"ticks\":[");
	}
}

void
protocol_write_history_begin(struct jsonbuf *b, const char *id,
                             const char *symbol, const char *interval)
{
	write_head(b, "history", id);
	write_rows_head(b, symbol, interval);
}

void
protocol_write_history_tick(struct jsonbuf *b, bool first, const struct tick *t)
{
	int f;

	if (!first)
		jsonbuf_append_char(b, ',');
	jsonbuf_append_str(b, "{\"ts\":");
	jsonbuf_append_i64(b, t->ts);
	write_u64_member(b, "seq", t->seq);
	for (f = 0; f < TICK_FIELD_COUNT; f++)
		if (tick_has(t, (enum tick_field)f))
			write_decimal_member(
			        b, tick_field_name((enum tick_field)f),
			        t->value[f]);
	jsonbuf_append_char(b, '}');
}

void
protocol_write_history_bar(struct jsonbuf *b, bool first, const struct bar *bar)
{
	if (!first)
		jsonbuf_append_char(b, ',');
	jsonbuf_append_str(b, "{\"t\":");
	jsonbuf_append_i64(b, bar->t);
	write_decimal_member(b, "open", bar->open);
	write_decimal_member(b, "high", bar->high);
	write_decimal_member(b, "low", bar->low);
	write_decimal_member(b, "close", bar->close);
	write_decimal_member(b, "volume", bar->volume);
	jsonbuf_append_char(b, '}');
}

void
protocol_write_history_rows_end(struct jsonbuf *b)
{
	jsonbuf_append_char(b, ']');
}

void
protocol_write_history_gap(struct jsonbuf *b, bool first,
                           const struct store_gap *g)
{
	jsonbuf_append_str(b, first ? ",\"gaps\":[{\"from_seq\":"
	                            : ",{\"from_seq\":");
	jsonbuf_append_u64(b, g->first_seq);
	write_u64_member(b, "to_seq", g->last_seq);
	write_i64_member(b, "from_ts", g->first_ts);
	write_i64_member(b, "to_ts", g->last_ts);
	write_u64_member(b, "ticks", g->ticks);
	jsonbuf_append_char(b, '}');
}

void
protocol_write_history_gaps_end(struct jsonbuf *b, unsigned count, bool more)
{
	if (count)
		jsonbuf_append_char(b, ']');
	if (more)
		jsonbuf_append_str(b, ",\"gaps_more\":true");
}

void
protocol_write_history_end(struct jsonbuf *b, bool more, int64_t next_from)
{
	if (more) {
		jsonbuf_append_str(b, ",\"more\":true");
		write_i64_member(b, "next_from", next_from);
	}
	jsonbuf_append_char(b, '}');
}

void
protocol_write_bars_begin(struct jsonbuf *b, const char *symbol,
                          const char *interval)
{
	/* write_rows_head() less its leading comma: "symbol" opens the
	 * object here. */
	jsonbuf_append_str(b, "{\"symbol\":");
	jsonbuf_append_quoted(b, symbol, strlen(symbol));
	write_str_member(b, "interval", interval);
	jsonbuf_append_str(b, ",\"bars\":[");
}

void
protocol_write_bars_end(struct jsonbuf *b)
{
	jsonbuf_append_str(b, "}\n");
}

/* ------------------------------------------------------------- replay */

void
protocol_write_replay_state(struct jsonbuf *b, const char *id,
                            const struct replay_state *s)
{
	write_head(b, "replay", id);
	write_str_member(b, "state", s->state);
	jsonbuf_append_char(b, ',');
	jsonbuf_append_key(b, "speed");
	if (s->speed == 0) {
		jsonbuf_append_str(b, "\"max\"");
	} else if (!isfinite(s->speed) || s->speed < 0) {
		jsonbuf_append_str(b, "null");
	} else {
		/* A speed is a user's choice, not a price: %.15g gives back
		 * 0.1 as 0.1 and 10 as 10. */
		char num[32];

		snprintf(num, sizeof num, "%.15g", s->speed);
		jsonbuf_append_str(b, num);
	}
	jsonbuf_append_char(b, ',');
	jsonbuf_append_key(b, "position");
	if (s->position)
		jsonbuf_append_i64(b, s->position);
	else
		jsonbuf_append_str(b, "null");
	if (s->start)
		write_i64_member(b, "start", s->start);
	if (s->end)
		write_i64_member(b, "end", s->end);
	if (strcmp(s->state, "seeking") == 0)
		write_i64_member(b, "seek_to", s->seek_to);
	write_u64_member(b, "passes", s->passes);
	jsonbuf_append_char(b, '}');
}

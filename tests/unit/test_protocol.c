/*
 * Unit tests for publisher/protocol.c: every request parsed, every bad input
 * answered with its code and a message a person can act on, the id echoed,
 * and the exact bytes of each reply. The time syntax is time_parse's, tested
 * in test_time_parse.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "protocol.h"
#include "store.h"

static const struct protocol_limits limits = {
        .max_symbols = 10000,
        .max_history_limit = 1000,
};

/* Parse text that must succeed. */
static void
parse_ok(const char *text, struct request *req)
{
	struct protocol_error err;
	int rc = protocol_parse(text, strlen(text), &limits, req, &err);

	if (rc != 0)
		fail_msg("'%s' refused: %s: %s", text, err.code, err.message);
}

/* Parse text that must fail with code; returns the error for more checks. */
static struct protocol_error
parse_bad(const char *text, const char *code)
{
	struct protocol_error err;
	struct request req;

	memset(&req, 0x5a, sizeof req);
	if (protocol_parse(text, strlen(text), &limits, &req, &err) == 0)
		fail_msg("'%s' accepted", text);
	assert_non_null(err.code);
	assert_string_equal(err.code, code);
	assert_true(err.message[0] != '\0');
	/* A failed parse leaves nothing to free. */
	assert_null(req.symbols);
	assert_null(req.resume);
	return err;
}

/* Fail with code and exactly this message. */
static void
expect_error(const char *text, const char *code, const char *message)
{
	struct protocol_error err = parse_bad(text, code);

	assert_string_equal(err.message, message);
}

static bool
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ------------------------------------------------------------ requests */

static void
test_subscribe(void **state)
{
	struct request req;

	parse_ok("{\"op\":\"subscribe\",\"symbols\":[\"AAPL\",\"MSFT\"],\"id\":"
	         "1}",
	         &req);
	assert_int_equal(req.op, OP_SUBSCRIBE);
	assert_string_equal(req.id, "1");
	assert_int_equal(req.symbol_count, 2);
	assert_string_equal(req.symbols[0], "AAPL");
	assert_string_equal(req.symbols[1], "MSFT");
	assert_false(req.has_resume);
	assert_false(req.has_max_hz);
	assert_int_equal(req.resume_count, 0);
	request_free(&req);

	/* Every symbol character class, and the wildcard. */
	parse_ok("{\"op\":\"subscribe\",\"symbols\":[\"BRK.B\",\"EUR/USD\","
	         "\"ES:H24\",\"a_b-c\",\"*\"]}",
	         &req);
	assert_int_equal(req.symbol_count, 5);
	assert_string_equal(req.symbols[3], "a_b-c");
	assert_string_equal(req.symbols[4], "*");
	assert_string_equal(req.id, "");
	request_free(&req);
}

static void
test_subscribe_collapses_duplicates_in_order(void **state)
{
	struct request req;

	parse_ok(
	        "{\"op\":\"subscribe\",\"symbols\":[\"MSFT\",\"AAPL\",\"MSFT\","
	        "\"IBM\",\"AAPL\",\"MSFT\"]}",
	        &req);
	assert_int_equal(req.symbol_count, 3);
	assert_string_equal(req.symbols[0], "MSFT");
	assert_string_equal(req.symbols[1], "AAPL");
	assert_string_equal(req.symbols[2], "IBM");
	request_free(&req);
}

static void
test_subscribe_resume_sorted_and_found(void **state)
{
	struct request req;
	uint64_t seq = 99;

	parse_ok("{\"op\":\"subscribe\",\"symbols\":[\"*\"],\"resume\":{"
	         "\"epoch\":\"e-123\",\"seq\":{\"MSFT\":5,\"AAPL\":1040,"
	         "\"BRK.B\":0,\"IBM\":18446744073}}}",
	         &req);
	assert_true(req.has_resume);
	assert_string_equal(req.resume_epoch, "e-123");
	assert_int_equal(req.resume_count, 4);
	/* strcmp order, so that request_resume_seq can bsearch */
	assert_string_equal(req.resume[0].symbol, "AAPL");
	assert_string_equal(req.resume[1].symbol, "BRK.B");
	assert_string_equal(req.resume[2].symbol, "IBM");
	assert_string_equal(req.resume[3].symbol, "MSFT");

	assert_true(request_resume_seq(&req, "AAPL", &seq));
	assert_int_equal(seq, 1040);
	assert_true(request_resume_seq(&req, "BRK.B", &seq));
	assert_int_equal(seq, 0);
	assert_true(request_resume_seq(&req, "IBM", &seq));
	assert_int_equal(seq, 18446744073ULL);
	assert_true(request_resume_seq(&req, "MSFT", &seq));
	assert_int_equal(seq, 5);
	seq = 77;
	assert_false(request_resume_seq(&req, "GOOG", &seq));
	assert_false(request_resume_seq(&req, "AAPLX", &seq));
	assert_false(request_resume_seq(
	        &req, "A_SYMBOL_FAR_LONGER_THAN_THIRTY_TWO_CHARS", &seq));
	assert_int_equal(seq, 77);
	request_free(&req);

	/* An epoch alone: the client holds nothing yet. */
	parse_ok("{\"op\":\"subscribe\",\"symbols\":[\"AAPL\"],"
	         "\"resume\":{\"epoch\":\"e\"}}",
	         &req);
	assert_true(req.has_resume);
	assert_int_equal(req.resume_count, 0);
	assert_false(request_resume_seq(&req, "AAPL", &seq));
	request_free(&req);

	/* Without resume the lookup finds nothing. */
	parse_ok("{\"op\":\"subscribe\",\"symbols\":[\"AAPL\"]}", &req);
	assert_false(request_resume_seq(&req, "AAPL", &seq));
	request_free(&req);
}

static void
test_subscribe_max_hz(void **state)
{
	struct request req;

	parse_ok("{\"op\":\"subscribe\",\"symbols\":[\"AAPL\"],\"max_hz\":2.5}",
	         &req);
	assert_true(req.has_max_hz);
	assert_true(req.max_hz == 2.5);
	request_free(&req);

	parse_ok("{\"op\":\"subscribe\",\"symbols\":[\"AAPL\"],\"max_hz\":0}",
	         &req);
	assert_true(req.has_max_hz);
	assert_true(req.max_hz == 0);
	request_free(&req);
}

static void
test_unsubscribe_symbols_ping(void **state)
{
	struct request req;

	parse_ok("{\"op\":\"unsubscribe\",\"symbols\":[\"AAPL\",\"AAPL\"],"
	         "\"id\":2}",
	         &req);
	assert_int_equal(req.op, OP_UNSUBSCRIBE);
	assert_string_equal(req.id, "2");
	assert_int_equal(req.symbol_count, 1);
	assert_string_equal(req.symbols[0], "AAPL");
	request_free(&req);

	parse_ok("{\"op\":\"symbols\",\"id\":3}", &req);
	assert_int_equal(req.op, OP_SYMBOLS);
	assert_string_equal(req.id, "3");
	assert_null(req.symbols);
	request_free(&req);

	/* Members a newer client may send are ignored. */
	parse_ok("{\"op\":\"ping\",\"id\":5,\"extra\":{\"x\":[1]}}", &req);
	assert_int_equal(req.op, OP_PING);
	assert_string_equal(req.id, "5");
	request_free(&req);
}

static void
test_history(void **state)
{
	struct request req;

	parse_ok("{\"op\":\"history\",\"symbol\":\"AAPL\","
	         "\"from\":\"2024-03-01T14:30:00Z\",\"to\":1709303460000000,"
	         "\"limit\":100,\"id\":4}",
	         &req);
	assert_int_equal(req.op, OP_HISTORY);
	assert_int_equal(req.symbol_count, 1);
	assert_string_equal(req.symbols[0], "AAPL");
	assert_int_equal(req.from, 1709303400000000LL);
	assert_int_equal(req.to, 1709303460000000LL);
	assert_int_equal(req.limit, 100);
	assert_int_equal(req.interval_us, 0);
	assert_string_equal(req.interval, "");
	assert_string_equal(req.id, "4");
	request_free(&req);

	/* limit alone: the last N ticks */
	parse_ok("{\"op\":\"history\",\"symbol\":\"MSFT\",\"limit\":1000}",
	         &req);
	assert_int_equal(req.from, 0);
	assert_int_equal(req.to, 0);
	assert_int_equal(req.limit, 1000);
	request_free(&req);

	/* A time given as a string of digits is microseconds, too. */
	parse_ok("{\"op\":\"history\",\"symbol\":\"MSFT\",\"from\":\"5\"}",
	         &req);
	assert_int_equal(req.from, 5);
	request_free(&req);
}

static void
test_history_intervals(void **state)
{
	static const struct {
		const char *name;
		int64_t us;
	} cases[] = {
	        {"1s", 1000000LL},     {"1m", 60000000LL},
	        {"5m", 300000000LL},   {"1h", 3600000000LL},
	        {"1d", 86400000000LL},
	};
	char text[128];
	struct request req;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(text, sizeof text,
		         "{\"op\":\"history\",\"symbol\":\"AAPL\","
		         "\"interval\":\"%s\"}",
		         cases[i].name);
		parse_ok(text, &req);
		assert_int_equal(req.interval_us, cases[i].us);
		assert_string_equal(req.interval, cases[i].name);
		request_free(&req);
	}
}

static void
test_replay(void **state)
{
	struct request req;

	parse_ok("{\"op\":\"replay\",\"action\":\"pause\"}", &req);
	assert_int_equal(req.op, OP_REPLAY);
	assert_int_equal(req.action, REPLAY_PAUSE);
	request_free(&req);

	parse_ok("{\"op\":\"replay\",\"action\":\"status\"}", &req);
	assert_int_equal(req.action, REPLAY_STATUS);
	request_free(&req);

	parse_ok("{\"op\":\"replay\",\"action\":\"resume\"}", &req);
	assert_int_equal(req.action, REPLAY_RESUME);
	request_free(&req);

	parse_ok("{\"op\":\"replay\",\"action\":\"speed\",\"speed\":2.5}",
	         &req);
	assert_int_equal(req.action, REPLAY_SPEED);
	assert_true(req.speed == 2.5);
	request_free(&req);

	parse_ok("{\"op\":\"replay\",\"action\":\"speed\",\"speed\":10}", &req);
	assert_true(req.speed == 10);
	request_free(&req);

	parse_ok("{\"op\":\"replay\",\"action\":\"speed\",\"speed\":\"max\"}",
	         &req);
	assert_true(req.speed == 0);
	request_free(&req);

	parse_ok("{\"op\":\"replay\",\"action\":\"seek\","
	         "\"ts\":\"2024-03-01T14:30:00.5Z\"}",
	         &req);
	assert_int_equal(req.action, REPLAY_SEEK);
	assert_int_equal(req.seek_ts, 1709303400500000LL);
	request_free(&req);

	parse_ok("{\"op\":\"replay\",\"action\":\"seek\",\"ts\":123}", &req);
	assert_int_equal(req.seek_ts, 123);
	request_free(&req);
}

static void
test_ids_reencoded_compactly(void **state)
{
	static const struct {
		const char *json;
		const char *id;
	} cases[] = {
	        {"7", "7"},
	        {"-12", "-12"},
	        {"1.5", "1.5"},
	        {"\"abc\"", "\"abc\""},
	        {"\"a\\\"b\\\\c\"", "\"a\\\"b\\\\c\""},
	        {"\"\\u00e9\"", "\"\xc3\xa9\""},
	        {"  \"x\"  ", "\"x\""},
	        {"null", "null"},
	        {"true", "true"},
	        {"false", "false"},
	        {"\"\"", "\"\""},
	};
	char text[256];
	struct request req;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(text, sizeof text, "{\"op\":\"ping\",\"id\":%s}",
		         cases[i].json);
		parse_ok(text, &req);
		assert_string_equal(req.id, cases[i].id);
		request_free(&req);
	}
}

static void
test_id_length_limit(void **state)
{
	char text[512], id[PROTOCOL_ID_MAX + 8];
	struct protocol_error err;
	struct request req;

	/* 126 characters + 2 quotes = exactly PROTOCOL_ID_MAX: accepted. */
	memset(id, 'x', PROTOCOL_ID_MAX - 2);
	id[PROTOCOL_ID_MAX - 2] = '\0';
	snprintf(text, sizeof text, "{\"op\":\"ping\",\"id\":\"%s\"}", id);
	parse_ok(text, &req);
	assert_int_equal(strlen(req.id), PROTOCOL_ID_MAX);
	request_free(&req);

	/* One more: refused, and the id cannot be echoed. */
	memset(id, 'x', PROTOCOL_ID_MAX - 1);
	id[PROTOCOL_ID_MAX - 1] = '\0';
	snprintf(text, sizeof text, "{\"op\":\"ping\",\"id\":\"%s\"}", id);
	err = parse_bad(text, "bad_request");
	assert_string_equal(
	        err.message,
	        "id is 129 characters long as JSON; the limit is 128");
	assert_string_equal(err.id, "");

	err = parse_bad("{\"op\":\"ping\",\"id\":{\"a\":1}}", "bad_request");
	assert_string_equal(err.message, "id must be a number, string, true, "
	                                 "false or null, not an object");
	assert_string_equal(err.id, "");
	err = parse_bad("{\"op\":\"ping\",\"id\":[1]}", "bad_request");
	assert_string_equal(err.id, "");
}

static void
test_big_subscribe_within_limit(void **state)
{
	/* 10,000 distinct symbols is allowed; exercises the O(n log n)
	 * duplicate removal on a realistic maximum. */
	size_t cap = 16 + 10000 * 10 + 64, n = 0, i;
	char *text = malloc(cap);
	struct request req;

	assert_non_null(text);
	n += (size_t)sprintf(text + n, "{\"op\":\"subscribe\",\"symbols\":[");
	for (i = 0; i < 10000; i++)
		n += (size_t)sprintf(text + n, "%s\"S%zu\"", i ? "," : "",
		                     (i * 7919) % 10000);
	n += (size_t)sprintf(text + n, "]}");
	parse_ok(text, &req);
	assert_int_equal(req.symbol_count, 10000);
	assert_string_equal(req.symbols[0], "S0");
	assert_string_equal(req.symbols[1], "S7919");
	request_free(&req);
	free(text);
}

/* -------------------------------------------------------------- errors */

static void
test_bad_json(void **state)
{
	struct protocol_error err;

	err = parse_bad("{\"op\":", "bad_json");
	assert_true(starts_with(err.message, "message is not valid JSON: "));
	assert_non_null(strstr(err.message, " at line 1 column "));

	err = parse_bad("{\"op\":\"ping\"} x", "bad_json");
	assert_true(starts_with(err.message, "message is not valid JSON: "));

	expect_error("", "bad_json",
	             "message is not valid JSON: the message is empty");
	expect_error("{\"op\":\"ping\"} x", "bad_json",
	             "message is not valid JSON: end of file expected near 'x' "
	             "at line 1 column 15");

	err = parse_bad("{\"op\":\"ping\",\"op\":\"ping\"}", "bad_json");
	assert_non_null(strstr(err.message, "duplicate"));

	/* Invalid UTF-8 is not JSON, and the reason stays printable ASCII. */
	err = parse_bad("{\"op\":\"\xff\xfe\"}", "bad_json");
	for (size_t i = 0; err.message[i]; i++)
		assert_true((unsigned char)err.message[i] < 0x80);

	/* NULL text is an empty message, not a crash. */
	{
		struct request req;

		assert_int_equal(protocol_parse(NULL, 0, &limits, &req, &err),
		                 -1);
		assert_string_equal(err.code, "bad_json");
	}
}

static void
test_not_an_object(void **state)
{
	/* Valid JSON that is not a request: bad_request, not bad_json. */
	expect_error("[1,2]", "bad_request",
	             "message must be a JSON object, not an array");
	expect_error("42", "bad_request",
	             "message must be a JSON object, not a number");
	expect_error("\"subscribe\"", "bad_request",
	             "message must be a JSON object, not a string");
	expect_error("null", "bad_request",
	             "message must be a JSON object, not null");
}

static void
test_missing_and_unknown_op(void **state)
{
	struct protocol_error err;

	err = parse_bad("{\"id\":7}", "bad_request");
	assert_string_equal(err.message, "message has no \"op\" string");
	assert_string_equal(err.id, "7");

	expect_error("{\"op\":5}", "bad_request",
	             "message has no \"op\" string");
	expect_error("{}", "bad_request", "message has no \"op\" string");

	err = parse_bad("{\"op\":\"foo\",\"id\":\"q1\"}", "unknown_op");
	assert_string_equal(
	        err.message,
	        "unknown op 'foo'; expected subscribe, unsubscribe, "
	        "symbols, history, ping or replay");
	assert_string_equal(err.id, "\"q1\"");

	/* Ops are case-sensitive. */
	parse_bad("{\"op\":\"Subscribe\"}", "unknown_op");
}

static void
test_long_client_text_is_cut_on_a_character(void **state)
{
	/* 30 ASCII bytes then "é" (2 bytes) repeatedly: the excerpt limit
	 * falls inside a character. The reply must still be valid JSON. */
	char text[512], op[256] = "";
	struct protocol_error err;
	struct jsonbuf b;
	json_error_t jerr;
	json_t *reply;
	size_t i;

	strcat(op, "abcdefghijklmnopqrstuvwxyzabc"); /* 29 */
	for (i = 0; i < 20; i++)
		strcat(op, "\xc3\xa9");
	snprintf(text, sizeof text, "{\"op\":\"%s\",\"id\":1}", op);
	err = parse_bad(text, "unknown_op");
	assert_non_null(strstr(err.message, "...'; expected"));
	assert_true(strlen(err.message) < sizeof err.message - 1);

	jsonbuf_init(&b, 0);
	protocol_write_error(&b, err.id, err.code, err.message);
	reply = json_loadb(jsonbuf_data(&b), b.len, 0, &jerr);
	if (!reply)
		fail_msg("reply is not valid JSON: %s", jerr.text);
	assert_string_equal(
	        json_string_value(json_object_get(reply, "message")),
	        err.message);
	json_decref(reply);
	jsonbuf_free(&b);
}

static void
test_bad_symbols(void **state)
{
	struct protocol_error err;

	expect_error("{\"op\":\"subscribe\",\"symbols\":\"AAPL\"}",
	             "bad_request",
	             "subscribe needs \"symbols\": a non-empty array of symbol "
	             "strings");
	expect_error("{\"op\":\"subscribe\"}", "bad_request",
	             "subscribe needs \"symbols\": a non-empty array of symbol "
	             "strings");
	expect_error("{\"op\":\"subscribe\",\"symbols\":[]}", "bad_request",
	             "subscribe needs \"symbols\": a non-empty array of symbol "
	             "strings");
	expect_error("{\"op\":\"unsubscribe\",\"symbols\":{}}", "bad_request",
	             "unsubscribe needs \"symbols\": a non-empty array of "
	             "symbol strings");
	expect_error("{\"op\":\"subscribe\",\"symbols\":[\"AAPL\",7]}",
	             "bad_request",
	             "symbols[1] must be a symbol string, not a number");
	err = parse_bad(
	        "{\"op\":\"subscribe\",\"symbols\":[\"AA PL\"],\"id\":9}",
	        "bad_request");
	assert_string_equal(
	        err.message,
	        "'AA PL' is not a valid symbol (1-32 of A-Z a-z 0-9 "
	        ". _ : / -)");
	assert_string_equal(err.id, "9");
	expect_error(
	        "{\"op\":\"subscribe\",\"symbols\":[\"\"]}", "bad_request",
	        "'' is not a valid symbol (1-32 of A-Z a-z 0-9 . _ : / -)");
	/* 33 characters: one too many */
	expect_error(
	        "{\"op\":\"subscribe\",\"symbols\":"
	        "[\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\"]}",
	        "bad_request",
	        "'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456' is not a valid symbol "
	        "(1-32 of A-Z a-z 0-9 . _ : / -)");
	/* 32 is fine */
	{
		struct request req;

		parse_ok("{\"op\":\"subscribe\",\"symbols\":"
		         "[\"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345\"]}",
		         &req);
		request_free(&req);
	}
	/* "*" is a subscription pattern, not a symbol: not with a prefix. */
	parse_bad("{\"op\":\"subscribe\",\"symbols\":[\"AA*\"]}",
	          "bad_request");
}

static void
test_too_many_symbols(void **state)
{
	/* The default limit (10,000 symbols) and its exact message. */
	size_t cap = 64 + 10001 * 10, n = 0, i;
	char *text = malloc(cap);
	struct protocol_limits small = {.max_symbols = 3,
	                                .max_history_limit = 10};
	struct protocol_error err;
	struct request req;
	const char *four = "{\"op\":\"unsubscribe\",\"symbols\":[\"A\",\"B\","
	                   "\"C\",\"D\"],\"id\":1}";

	assert_non_null(text);
	n += (size_t)sprintf(text + n, "{\"op\":\"subscribe\",\"symbols\":[");
	for (i = 0; i < 10001; i++)
		n += (size_t)sprintf(text + n, "%s\"S%zu\"", i ? "," : "", i);
	n += (size_t)sprintf(text + n, "]}");
	expect_error(text, "too_many_symbols",
	             "subscribe lists 10001 symbols; the limit is 10000 per "
	             "connection");
	free(text);

	assert_int_equal(protocol_parse(four, strlen(four), &small, &req, &err),
	                 -1);
	assert_string_equal(err.code, "too_many_symbols");
	assert_string_equal(err.message, "unsubscribe lists 4 symbols; the "
	                                 "limit is 3 per connection");
	assert_string_equal(err.id, "1");
}

static void
test_bad_resume(void **state)
{
	const char *pre = "{\"op\":\"subscribe\",\"symbols\":[\"AAPL\"],"
	                  "\"resume\":";
	char text[512];
	struct protocol_error err;

#define RESUME(tail) (snprintf(text, sizeof text, "%s%s}", pre, tail), text)
	expect_error(RESUME("[1]"), "bad_request",
	             "resume must be an object {\"epoch\":\"...\","
	             "\"seq\":{\"SYMBOL\":seq,...}}, not an array");
	expect_error(RESUME("{\"seq\":{}}"), "bad_request",
	             "resume.epoch must be a string: the epoch from hello");
	expect_error(RESUME("{\"epoch\":5}"), "bad_request",
	             "resume.epoch must be a string: the epoch from hello");
	expect_error(RESUME("{\"epoch\":\"e\",\"seq\":[]}"), "bad_request",
	             "resume.seq must be an object of symbol: seq, not an "
	             "array");
	expect_error(RESUME("{\"epoch\":\"e\",\"seq\":{\"AAPL\":-1}}"),
	             "bad_request",
	             "resume.seq.AAPL must be a non-negative integer");
	expect_error(RESUME("{\"epoch\":\"e\",\"seq\":{\"AAPL\":1.5}}"),
	             "bad_request",
	             "resume.seq.AAPL must be a non-negative integer");
	expect_error(RESUME("{\"epoch\":\"e\",\"seq\":{\"AAPL\":\"7\"}}"),
	             "bad_request",
	             "resume.seq.AAPL must be a non-negative integer");
	expect_error(
	        RESUME("{\"epoch\":\"e\",\"seq\":{\"AA PL\":7}}"),
	        "bad_request",
	        "resume.seq key 'AA PL' is not a valid symbol (1-32 of A-Z "
	        "a-z 0-9 . _ : / -)");
	expect_error(RESUME("{\"epoch\":\"0123456789012345678901234567890123"
	                    "4567890123456789012345678901234\"}"),
	             "bad_request",
	             "resume.epoch is longer than 64 characters; use the epoch "
	             "from hello");
	/* A seq beyond int64 is not even JSON jansson can hold. */
	parse_bad(RESUME("{\"epoch\":\"e\",\"seq\":{\"AAPL\":"
	                 "99999999999999999999999}}"),
	          "bad_json");
	err = parse_bad(RESUME("{\"epoch\":\"e\",\"seq\":{\"A\":1,\"A\":2}}"),
	                "bad_json");
	assert_non_null(strstr(err.message, "duplicate"));
#undef RESUME

	/* more resume entries than symbols allowed per connection */
	{
		struct protocol_limits small = {.max_symbols = 2};
		struct request req;
		const char *t = "{\"op\":\"subscribe\",\"symbols\":[\"A\"],"
		                "\"resume\":{\"epoch\":\"e\",\"seq\":"
		                "{\"A\":1,\"B\":2,\"C\":3}}}";

		assert_int_equal(
		        protocol_parse(t, strlen(t), &small, &req, &err), -1);
		assert_string_equal(err.code, "too_many_symbols");
		assert_string_equal(
		        err.message,
		        "resume.seq lists 3 symbols; the limit is 2 "
		        "per connection");
	}
}

static void
test_bad_max_hz(void **state)
{
	struct protocol_error err;

	err = parse_bad("{\"op\":\"subscribe\",\"symbols\":[\"A\"],"
	                "\"max_hz\":-1}",
	                "bad_request");
	assert_true(starts_with(err.message, "max_hz must be a number >= 0"));
	err = parse_bad("{\"op\":\"subscribe\",\"symbols\":[\"A\"],"
	                "\"max_hz\":\"5\"}",
	                "bad_request");
	assert_true(starts_with(err.message, "max_hz must be a number >= 0"));
	parse_bad("{\"op\":\"subscribe\",\"symbols\":[\"A\"],\"max_hz\":null}",
	          "bad_request");
}

static void
test_bad_history(void **state)
{
	static const char *const time_rule =
	        "microseconds since the epoch or an ISO 8601 time like "
	        "2024-03-01T14:30:00Z";
	char want[256];
	struct protocol_error err;

	expect_error("{\"op\":\"history\"}", "bad_request",
	             "history needs \"symbol\": a symbol string");
	expect_error("{\"op\":\"history\",\"symbol\":[\"AAPL\"]}",
	             "bad_request",
	             "history needs \"symbol\": a symbol string");
	expect_error("{\"op\":\"history\",\"symbol\":\"A B\"}", "bad_request",
	             "'A B' is not a valid symbol (1-32 of A-Z a-z 0-9 . _ : / "
	             "-)");
	parse_bad("{\"op\":\"history\",\"symbol\":\"*\"}", "bad_request");

	snprintf(want, sizeof want, "history \"from\" must be %s", time_rule);
	expect_error(
	        "{\"op\":\"history\",\"symbol\":\"A\",\"from\":\"yesterday\"}",
	        "bad_request", want);
	expect_error("{\"op\":\"history\",\"symbol\":\"A\",\"from\":1.5}",
	             "bad_request", want);
	expect_error("{\"op\":\"history\",\"symbol\":\"A\","
	             "\"from\":\"2024-02-30T00:00:00Z\"}",
	             "bad_request", want);
	snprintf(want, sizeof want, "history \"to\" must be %s", time_rule);
	expect_error("{\"op\":\"history\",\"symbol\":\"A\",\"to\":true}",
	             "bad_request", want);
	expect_error("{\"op\":\"history\",\"symbol\":\"A\",\"from\":200,"
	             "\"to\":100}",
	             "bad_request", "history \"from\" is after \"to\"");

	expect_error("{\"op\":\"history\",\"symbol\":\"A\",\"limit\":0}",
	             "bad_request",
	             "history \"limit\" must be an integer from 1 to 1000");
	expect_error("{\"op\":\"history\",\"symbol\":\"A\",\"limit\":-3}",
	             "bad_request",
	             "history \"limit\" must be an integer from 1 to 1000");
	expect_error("{\"op\":\"history\",\"symbol\":\"A\",\"limit\":1001}",
	             "bad_request",
	             "history \"limit\" must be an integer from 1 to 1000");
	expect_error("{\"op\":\"history\",\"symbol\":\"A\",\"limit\":\"10\"}",
	             "bad_request",
	             "history \"limit\" must be an integer from 1 to 1000");
	expect_error("{\"op\":\"history\",\"symbol\":\"A\",\"limit\":2.5}",
	             "bad_request",
	             "history \"limit\" must be an integer from 1 to 1000");

	expect_error(
	        "{\"op\":\"history\",\"symbol\":\"A\",\"interval\":\"2m\"}",
	        "bad_request",
	        "history \"interval\" must be one of 1s, 1m, 5m, 1h, 1d");
	expect_error("{\"op\":\"history\",\"symbol\":\"A\",\"interval\":60}",
	             "bad_request",
	             "history \"interval\" must be one of 1s, 1m, 5m, 1h, 1d");

	err = parse_bad("{\"op\":\"history\",\"symbol\":\"A\",\"limit\":0,"
	                "\"id\":\"h\"}",
	                "bad_request");
	assert_string_equal(err.id, "\"h\"");
}

static void
test_bad_replay(void **state)
{
	expect_error("{\"op\":\"replay\"}", "bad_request",
	             "replay needs \"action\": pause, resume, speed, seek or "
	             "status");
	expect_error("{\"op\":\"replay\",\"action\":1}", "bad_request",
	             "replay needs \"action\": pause, resume, speed, seek or "
	             "status");
	expect_error("{\"op\":\"replay\",\"action\":\"stop\"}", "bad_request",
	             "replay action 'stop' is not one of pause, resume, speed, "
	             "seek or status");
	expect_error("{\"op\":\"replay\",\"action\":\"speed\"}", "bad_request",
	             "replay speed needs \"speed\": a number > 0 or \"max\"");
	expect_error("{\"op\":\"replay\",\"action\":\"speed\",\"speed\":0}",
	             "bad_request",
	             "replay speed needs \"speed\": a number > 0 or \"max\"");
	expect_error("{\"op\":\"replay\",\"action\":\"speed\",\"speed\":-2}",
	             "bad_request",
	             "replay speed needs \"speed\": a number > 0 or \"max\"");
	expect_error(
	        "{\"op\":\"replay\",\"action\":\"speed\",\"speed\":\"fast\"}",
	        "bad_request",
	        "replay speed needs \"speed\": a number > 0 or \"max\"");
	expect_error(
	        "{\"op\":\"replay\",\"action\":\"seek\"}", "bad_request",
	        "replay seek needs \"ts\": microseconds since the epoch or "
	        "an ISO 8601 time like 2024-03-01T14:30:00Z");
	expect_error(
	        "{\"op\":\"replay\",\"action\":\"seek\",\"ts\":\"soon\"}",
	        "bad_request",
	        "replay seek needs \"ts\": microseconds since the epoch or "
	        "an ISO 8601 time like 2024-03-01T14:30:00Z");
}

static void
test_defaults_when_no_limits(void **state)
{
	struct request req;
	struct protocol_error err;
	const char *t = "{\"op\":\"history\",\"symbol\":\"A\",\"limit\":10000}";

	assert_int_equal(protocol_parse(t, strlen(t), NULL, &req, &err), 0);
	assert_int_equal(req.limit, 10000);
	request_free(&req);
	request_free(NULL);
}

/* ------------------------------------------------------------- writers */

static void
assert_data(struct jsonbuf *b, const char *want)
{
	char *got;

	assert_false(jsonbuf_failed(b));
	got = strndup(jsonbuf_data(b) ? jsonbuf_data(b) : "", b->len);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
	jsonbuf_reset(b);
}

static void
test_write_hello_heartbeat_pong(void **state)
{
	struct jsonbuf b;

	jsonbuf_init(&b, 16);
	protocol_write_hello(&b, "e-2024", "publisher 0.1.0", 5000, "replay");
	assert_data(&b,
	            "{\"type\":\"hello\",\"protocol\":1,\"epoch\":\"e-2024\","
	            "\"server\":\"publisher 0.1.0\",\"heartbeat_ms\":5000,"
	            "\"feed\":\"replay\"}");

	protocol_write_heartbeat(&b, 1709303400123456LL);
	assert_data(&b, "{\"type\":\"heartbeat\",\"ts\":1709303400123456}");

	protocol_write_pong(&b, "5", 1709303400123456LL);
	assert_data(&b, "{\"type\":\"pong\",\"id\":5,\"ts\":1709303400123456}");
	protocol_write_pong(&b, "", 7);
	assert_data(&b, "{\"type\":\"pong\",\"ts\":7}");
	protocol_write_pong(&b, "\"p\"", 7);
	assert_data(&b, "{\"type\":\"pong\",\"id\":\"p\",\"ts\":7}");
	jsonbuf_free(&b);
}

static void
test_interval_names(void **state)
{
	assert_int_equal(protocol_interval_us("1s"), 1000000LL);
	assert_int_equal(protocol_interval_us("5m"), 300000000LL);
	assert_int_equal(protocol_interval_us("1d"), 86400000000LL);
	assert_int_equal(protocol_interval_us("2m"), 0);
	assert_int_equal(protocol_interval_us(""), 0);
}

static void
test_write_subscribed_unsubscribed(void **state)
{
	const char syms[][TICK_SYMBOL_MAX + 1] = {"AAPL", "MSFT", "*"};
	struct jsonbuf b;

	jsonbuf_init(&b, 0);
	protocol_write_subscribed(&b, "1", syms, 2);
	assert_data(&b, "{\"type\":\"subscribed\",\"id\":1,"
	                "\"symbols\":[\"AAPL\",\"MSFT\"]}");
	protocol_write_subscribed(&b, "", syms, 3);
	assert_data(&b,
	            "{\"type\":\"subscribed\",\"symbols\":[\"AAPL\",\"MSFT\","
	            "\"*\"]}");
	protocol_write_subscribed(&b, NULL, syms, 0);
	assert_data(&b, "{\"type\":\"subscribed\",\"symbols\":[]}");
	protocol_write_unsubscribed(&b, "\"u-2\"", syms + 1, 1);
	assert_data(&b, "{\"type\":\"unsubscribed\",\"id\":\"u-2\","
	                "\"symbols\":[\"MSFT\"]}");
	protocol_write_unsubscribed(&b, "", syms, 1);
	assert_data(&b, "{\"type\":\"unsubscribed\",\"symbols\":[\"AAPL\"]}");
	jsonbuf_free(&b);
}

static void
test_write_symbols(void **state)
{
	struct jsonbuf b;

	jsonbuf_init(&b, 0);
	protocol_write_symbols_begin(&b, "3");
	protocol_write_symbols_entry(&b, true, "AAPL", 1042,
	                             "America/New_York");
	protocol_write_symbols_entry(&b, false, "MSFT", 7, "UTC");
	protocol_write_symbols_entry(&b, false, "BIG", UINT64_MAX, "UTC");
	protocol_write_symbols_end(&b);
	assert_data(&b, "{\"type\":\"symbols\",\"id\":3,\"symbols\":["
	                "{\"symbol\":\"AAPL\",\"seq\":1042,"
	                "\"zone\":\"America/New_York\"},"
	                "{\"symbol\":\"MSFT\",\"seq\":7,\"zone\":\"UTC\"},"
	                "{\"symbol\":\"BIG\",\"seq\":18446744073709551615,"
	                "\"zone\":\"UTC\"}]}");

	protocol_write_symbols_begin(&b, "");
	protocol_write_symbols_end(&b);
	assert_data(&b, "{\"type\":\"symbols\",\"symbols\":[]}");
	jsonbuf_free(&b);
}

static void
test_write_error(void **state)
{
	struct jsonbuf b;

	jsonbuf_init(&b, 0);
	protocol_write_error(&b, "4", "bad_request",
	                     "history \"limit\" must be an integer");
	assert_data(&b, "{\"type\":\"error\",\"id\":4,\"code\":\"bad_request\","
	                "\"message\":\"history \\\"limit\\\" must be an "
	                "integer\"}");
	protocol_write_error(&b, "", "bad_json", "line\nbreak\\tab\t");
	assert_data(&b, "{\"type\":\"error\",\"code\":\"bad_json\","
	                "\"message\":\"line\\nbreak\\\\tab\\t\"}");
	protocol_write_error(&b, "null", "unknown_op", "x");
	assert_data(&b, "{\"type\":\"error\",\"id\":null,"
	                "\"code\":\"unknown_op\",\"message\":\"x\"}");
	jsonbuf_free(&b);
}

static struct decimal
d(int64_t mantissa, uint8_t scale)
{
	struct decimal v = {mantissa, scale};

	return v;
}

static void
test_write_history_ticks(void **state)
{
	struct tick t = {.ts = 1709303400123456LL, .seq = 41};
	struct tick u = {.ts = 1709303400123457LL, .seq = 42};
	struct store_gap g = {.first_seq = 7,
	                      .last_seq = 9,
	                      .first_ts = -1,
	                      .last_ts = 5,
	                      .ticks = 3};
	struct jsonbuf b;

	strcpy(t.symbol, "AAPL");
	tick_set(&t, FIELD_BID, d(18930, 2));
	tick_set(&t, FIELD_VOLUME, d(100, 0));
	strcpy(u.symbol, "AAPL");
	tick_set(&u, FIELD_LAST, d(-1, 6));

	jsonbuf_init(&b, 0);
	protocol_write_history_begin(&b, "9", "AAPL", "");
	protocol_write_history_tick(&b, true, &t);
	protocol_write_history_tick(&b, false, &u);
	protocol_write_history_rows_end(&b);
	protocol_write_history_gap(&b, true, &g);
	protocol_write_history_gap(&b, false, &g);
	protocol_write_history_gaps_end(&b, 2, true);
	protocol_write_history_end(&b, true, 1709303400123458LL);
	assert_data(&b, "{\"type\":\"history\",\"id\":9,\"symbol\":\"AAPL\","
	                "\"ticks\":[{\"ts\":1709303400123456,\"seq\":41,"
	                "\"bid\":189.30,\"volume\":100},"
	                "{\"ts\":1709303400123457,\"seq\":42,"
	                "\"last\":-0.000001}],"
	                "\"gaps\":[{\"from_seq\":7,\"to_seq\":9,\"from_ts\":-1,"
	                "\"to_ts\":5,\"ticks\":3},{\"from_seq\":7,\"to_seq\":9,"
	                "\"from_ts\":-1,\"to_ts\":5,\"ticks\":3}],"
	                "\"gaps_more\":true,\"more\":true,"
	                "\"next_from\":1709303400123458}");

	/* No rows, no gaps, no id, nothing more. */
	protocol_write_history_begin(&b, "", "MSFT", NULL);
	protocol_write_history_rows_end(&b);
	protocol_write_history_gaps_end(&b, 0, false);
	protocol_write_history_end(&b, false, 0);
	assert_data(&b,
	            "{\"type\":\"history\",\"symbol\":\"MSFT\",\"ticks\":[]}");
	jsonbuf_free(&b);
}

static void
test_write_history_and_api_bars(void **state)
{
	struct bar bar = {.t = 60000000,
	                  .open = {18930, 2},
	                  .high = {1895, 1},
	                  .low = {189, 0},
	                  .close = {18931, 2},
	                  .volume = {0, 0}};
	struct jsonbuf b;

	jsonbuf_init(&b, 0);
	protocol_write_history_begin(&b, "\"h\"", "AAPL", "1m");
	protocol_write_history_bar(&b, true, &bar);
	protocol_write_history_bar(&b, false, &bar);
	protocol_write_history_rows_end(&b);
	protocol_write_history_gaps_end(&b, 0, false);
	protocol_write_history_end(&b, false, 0);
	assert_data(&b,
	            "{\"type\":\"history\",\"id\":\"h\",\"symbol\":\"AAPL\","
	            "\"interval\":\"1m\",\"bars\":[{\"t\":60000000,"
	            "\"open\":189.30,\"high\":189.5,\"low\":189,"
	            "\"close\":189.31,\"volume\":0},{\"t\":60000000,"
	            "\"open\":189.30,\"high\":189.5,\"low\":189,"
	            "\"close\":189.31,\"volume\":0}]}");

	/* /api/bars: the same rows and gaps, no type, no id, a newline. */
	protocol_write_bars_begin(&b, "AAPL", "1m");
	protocol_write_history_bar(&b, true, &bar);
	protocol_write_history_rows_end(&b);
	protocol_write_history_gaps_end(&b, 0, true);
	protocol_write_bars_end(&b);
	assert_data(&b, "{\"symbol\":\"AAPL\",\"interval\":\"1m\",\"bars\":["
	                "{\"t\":60000000,\"open\":189.30,\"high\":189.5,"
	                "\"low\":189,\"close\":189.31,\"volume\":0}],"
	                "\"gaps_more\":true}\n");
	jsonbuf_free(&b);
}

/* What the server does: parse, fail, echo the error with the id. */
static void
test_error_reply_round_trip(void **state)
{
	static const char *const inputs[] = {
	        "{\"op\":\"nope\",\"id\":\"a\\\"b\"}",
	        "{\"op\":\"subscribe\",\"symbols\":[\"\\u00e9\\u00e9\"],"
	        "\"id\":1.25}",
	        "{\"op\":\"history\",\"symbol\":\"A\",\"limit\":0,\"id\":"
	        "false}",
	        "not json at all",
	        "{\"op\":\"ping\",\"id\":{}}",
	};
	struct protocol_error err;
	struct request req;
	struct jsonbuf b;
	size_t i;

	jsonbuf_init(&b, 0);
	for (i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
		json_error_t jerr;
		json_t *reply, *id;

		assert_int_equal(protocol_parse(inputs[i], strlen(inputs[i]),
		                                &limits, &req, &err),
		                 -1);
		protocol_write_error(&b, err.id, err.code, err.message);
		reply = json_loadb(jsonbuf_data(&b), b.len,
		                   JSON_REJECT_DUPLICATES, &jerr);
		if (!reply)
			fail_msg("reply to '%s' is not JSON: %s", inputs[i],
			         jerr.text);
		assert_string_equal(
		        json_string_value(json_object_get(reply, "code")),
		        err.code);
		id = json_object_get(reply, "id");
		if (err.id[0]) {
			char *again =
			        json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);

			assert_string_equal(again, err.id);
			free(again);
		} else {
			assert_null(id);
		}
		json_decref(reply);
		jsonbuf_reset(&b);
	}
	jsonbuf_free(&b);
}

static void
test_write_replay_state(void **state)
{
	struct replay_state s = {
	        .state = "paused",
	        .speed = 10,
	        .position = 865193460000000LL,
	        .start = 865193280000000LL,
	        .end = 867714240000000LL,
	        .passes = 2,
	};
	struct jsonbuf b;

	jsonbuf_init(&b, 0);
	protocol_write_replay_state(&b, "7", &s);
	assert_data(&b, "{\"type\":\"replay\",\"id\":7,\"state\":\"paused\","
	                "\"speed\":10,\"position\":865193460000000,"
	                "\"start\":865193280000000,\"end\":867714240000000,"
	                "\"passes\":2}");

	/* Max speed is a word; fractions stay short; a broadcast has no id;
	 * unknown times: position null, start and end left out. */
	s.state = "playing";
	s.speed = 0;
	s.position = 0;
	s.start = s.end = 0;
	s.passes = 0;
	protocol_write_replay_state(&b, "", &s);
	assert_data(&b, "{\"type\":\"replay\",\"state\":\"playing\","
	                "\"speed\":\"max\",\"position\":null,\"passes\":0}");
	s.speed = 0.1;
	protocol_write_replay_state(&b, "\"r\"", &s);
	assert_data(&b, "{\"type\":\"replay\",\"id\":\"r\",\"state\":"
	                "\"playing\",\"speed\":0.1,\"position\":null,"
	                "\"passes\":0}");

	/* The target shows only while seeking. */
	s.state = "seeking";
	s.speed = 2.5;
	s.position = 100;
	s.seek_to = 5000;
	protocol_write_replay_state(&b, "", &s);
	assert_data(&b, "{\"type\":\"replay\",\"state\":\"seeking\","
	                "\"speed\":2.5,\"position\":100,\"seek_to\":5000,"
	                "\"passes\":0}");
	s.state = "finished";
	protocol_write_replay_state(&b, "", &s);
	assert_data(&b, "{\"type\":\"replay\",\"state\":\"finished\","
	                "\"speed\":2.5,\"position\":100,\"passes\":0}");
	jsonbuf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_subscribe),
	        cmocka_unit_test(test_subscribe_collapses_duplicates_in_order),
	        cmocka_unit_test(test_subscribe_resume_sorted_and_found),
	        cmocka_unit_test(test_subscribe_max_hz),
	        cmocka_unit_test(test_unsubscribe_symbols_ping),
	        cmocka_unit_test(test_history),
	        cmocka_unit_test(test_history_intervals),
	        cmocka_unit_test(test_replay),
	        cmocka_unit_test(test_ids_reencoded_compactly),
	        cmocka_unit_test(test_id_length_limit),
	        cmocka_unit_test(test_big_subscribe_within_limit),
	        cmocka_unit_test(test_bad_json),
	        cmocka_unit_test(test_not_an_object),
	        cmocka_unit_test(test_missing_and_unknown_op),
	        cmocka_unit_test(test_long_client_text_is_cut_on_a_character),
	        cmocka_unit_test(test_bad_symbols),
	        cmocka_unit_test(test_too_many_symbols),
	        cmocka_unit_test(test_bad_resume),
	        cmocka_unit_test(test_bad_max_hz),
	        cmocka_unit_test(test_bad_history),
	        cmocka_unit_test(test_bad_replay),
	        cmocka_unit_test(test_defaults_when_no_limits),
	        cmocka_unit_test(test_write_hello_heartbeat_pong),
	        cmocka_unit_test(test_interval_names),
	        cmocka_unit_test(test_write_subscribed_unsubscribed),
	        cmocka_unit_test(test_write_symbols),
	        cmocka_unit_test(test_write_error),
	        cmocka_unit_test(test_write_history_ticks),
	        cmocka_unit_test(test_write_history_and_api_bars),
	        cmocka_unit_test(test_error_reply_round_trip),
	        cmocka_unit_test(test_write_replay_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests for publisher/tick_file_read.c: JSONL and CSV lines into ticks
 * with exact decimals, format detection, and the reason given for every kind
 * of bad line; and that what tick_file_write.c writes reads back as the same
 * tick. (The exact bytes written are held in test_export.c.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tick_file.h"

#define REASON_LEN 256

/* Parse a NUL-terminated line. */
static enum tick_parse_result
parse(struct tick_parser *p, const char *line, struct tick *t, char *reason)
{
	return tick_parse_line(p, line, strlen(line), t, reason, REASON_LEN);
}

/* Parse a line that must give a tick. */
static void
parse_ok(struct tick_parser *p, const char *line, struct tick *t)
{
	char reason[REASON_LEN];
	enum tick_parse_result r = parse(p, line, t, reason);

	if (r != TICK_PARSE_OK)
		print_error("line: %s\nreason: %s\n", line, reason);
	assert_int_equal(r, TICK_PARSE_OK);
	assert_string_equal(reason, "");
}

/* Parse a line that must be refused with exactly this reason. */
static void
parse_bad(struct tick_parser *p, const char *line, const char *want)
{
	char reason[REASON_LEN];
	struct tick t;

	assert_int_equal(parse(p, line, &t, reason), TICK_PARSE_ERROR);
	assert_string_equal(reason, want);
}

/* Parse a line that must be refused with a reason starting with prefix. */
static void
parse_bad_prefix(struct tick_parser *p, const char *line, const char *prefix)
{
	char reason[REASON_LEN];
	struct tick t;

	assert_int_equal(parse(p, line, &t, reason), TICK_PARSE_ERROR);
	if (strncmp(reason, prefix, strlen(prefix)) != 0)
		print_error("line: %s\nreason: %s\nwanted: %s…\n", line, reason,
		            prefix);
	assert_true(strncmp(reason, prefix, strlen(prefix)) == 0);
}

/* A field as text, through decimal_format; "-" when absent. */
static const char *
field_text(const struct tick *t, enum tick_field f)
{
	static char buf[DECIMAL_MAX_TEXT + 1];

	if (!tick_has(t, f))
		return "-";
	buf[decimal_format(t->value[f], buf)] = '\0';
	return buf;
}

static struct tick_parser
parser(enum tick_format format)
{
	struct tick_parser p;

	tick_parser_init(&p, format);
	return p;
}

/* ------------------------------------------------------------------ JSONL */

static void
test_jsonl_spec_example(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_JSONL);
	struct tick t;

	parse_ok(&p,
	         "{\"ts\":1709303400123456,\"symbol\":\"AAPL\",\"bid\":189.33,"
	         "\"ask\":189.35,\"bid_size\":100}",
	         &t);
	assert_true(t.ts == 1709303400123456LL);
	assert_true(t.seq == 0);
	assert_string_equal(t.symbol, "AAPL");
	assert_int_equal(t.present, (1u << FIELD_BID) | (1u << FIELD_ASK) |
	                                    (1u << FIELD_BID_SIZE));
	assert_string_equal(field_text(&t, FIELD_BID), "189.33");
	assert_string_equal(field_text(&t, FIELD_ASK), "189.35");
	assert_string_equal(field_text(&t, FIELD_BID_SIZE), "100");
	assert_int_equal(t.value[FIELD_ASK].mantissa, 18935);
	assert_int_equal(t.value[FIELD_ASK].scale, 2);
}

static void
test_jsonl_every_field_and_exact_text(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_JSONL);
	struct tick t;

	/* Any member order, whitespace between tokens, a trailing '\r',
	 * trailing zeros kept, negative prices allowed. */
	parse_ok(&p,
	         " { \"last_size\" : 5 , \"volume\":123456789.5,\"symbol\":"
	         "\"ES.H24\", \"last\": 189.30, \"ts\": 0,\"ask_size\":0, "
	         "\"ask\":-0.0001,\"bid\":0.000000000000000001,\"bid_size\":7 "
	         "}\t\r",
	         &t);
	assert_true(t.ts == 0);
	assert_string_equal(t.symbol, "ES.H24");
	assert_int_equal(t.present, (1u << TICK_FIELD_COUNT) - 1);
	assert_string_equal(field_text(&t, FIELD_LAST), "189.30");
	assert_string_equal(field_text(&t, FIELD_LAST_SIZE), "5");
	assert_string_equal(field_text(&t, FIELD_VOLUME), "123456789.5");
	assert_string_equal(field_text(&t, FIELD_ASK_SIZE), "0");
	assert_string_equal(field_text(&t, FIELD_ASK), "-0.0001");
	assert_string_equal(field_text(&t, FIELD_BID), "0.000000000000000001");
	assert_string_equal(field_text(&t, FIELD_BID_SIZE), "7");
}

static void
test_jsonl_numbers_as_strings_and_null(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_JSONL);
	struct tick t;

	parse_ok(&p,
	         "{\"ts\":\"1709303400123456\",\"symbol\":\"MSFT\","
	         "\"bid\":\"189.35\",\"ask\":null,\"last\":\"007.50\"}",
	         &t);
	assert_true(t.ts == 1709303400123456LL);
	assert_string_equal(field_text(&t, FIELD_BID), "189.35");
	assert_string_equal(field_text(&t, FIELD_ASK), "-");
	/* Leading zeros are a JSON number rule; text in a string is only
	 * asked to be a decimal. */
	assert_string_equal(field_text(&t, FIELD_LAST), "7.50");
	assert_int_equal(t.present, (1u << FIELD_BID) | (1u << FIELD_LAST));
}

static void
test_jsonl_iso_ts(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_JSONL);
	struct tick t;

	parse_ok(&p,
	         "{\"ts\":\"2024-03-01T14:30:00Z\",\"symbol\":\"A\","
	         "\"last\":1}",
	         &t);
	assert_true(t.ts == 1709303400000000LL);
	parse_ok(&p,
	         "{\"ts\":\"2024-03-01T14:30:00.123456Z\",\"symbol\":\"A\","
	         "\"last\":1}",
	         &t);
	assert_true(t.ts == 1709303400123456LL);
	parse_ok(&p,
	         "{\"ts\":\"2024-03-01T15:30:00+01:00\",\"symbol\":\"A\","
	         "\"last\":1}",
	         &t);
	assert_true(t.ts == 1709303400000000LL);
}

static void
test_jsonl_string_escapes(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_JSONL);
	struct tick t;

	/* "\/" is a legal way to write '/', and an escaped key is the same
	 * key: a strict parser must decode, not refuse, them. */
	parse_ok(
	        &p,
	        "{\"ts\":1,\"symbol\":\"BRK\\/B\",\"b\\u0069d\":\"1\\u002e5\"}",
	        &t);
	assert_string_equal(t.symbol, "BRK/B");
	assert_string_equal(field_text(&t, FIELD_BID), "1.5");

	/* Escapes that decode to characters a symbol may not hold. */
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\\nB\",\"bid\":1}",
	          "symbol 'A\\x0aB' is not valid (1 to 32 characters of "
	          "A-Z a-z 0-9 . _ : / -)");
	parse_bad_prefix(&p, "{\"ts\":1,\"symbol\":\"\\u00e9\",\"bid\":1}",
	                 "symbol '\xc3\xa9' is not valid");
	parse_bad_prefix(&p,
	                 "{\"ts\":1,\"symbol\":\"\\ud83d\\ude00\",\"bid\":1}",
	                 "symbol '\xf0\x9f\x98\x80' is not valid");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\\x\",\"bid\":1}",
	          "invalid escape '\\x' in a string");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\\u12\",\"bid\":1}",
	          "invalid \\u escape in a string (expected 4 hex digits)");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"\\ud83d\",\"bid\":1}",
	          "invalid \\u escape in a string (unpaired surrogate)");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"\\ude00\",\"bid\":1}",
	          "invalid \\u escape in a string (unpaired surrogate)");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\tB\",\"bid\":1}",
	          "control character 0x09 inside a string (JSON requires it "
	          "escaped)");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"AB", "unterminated string");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\\", "unterminated string");
	/* A control character in a name is shown escaped, never raw. */
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"b\\u0001d\":1}",
	          "unknown field 'b\\x01d'");
}

static void
test_jsonl_bad_lines(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_JSONL);

	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"bid\":18x.5}",
	          "field 'bid': '18x.5' is not a decimal number");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"bid\":\"18x.5\"}",
	          "field 'bid': '18x.5' is not a decimal number");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"bid\":\"\"}",
	          "field 'bid': '' is not a decimal number");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"bid\":true}",
	          "field 'bid': 'true' is not a decimal number");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"bid\":1.5e2}",
	          "field 'bid': '1.5e2' is not a decimal number (write it "
	          "without an exponent)");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"bid\":0189.35}",
	          "field 'bid': '0189.35' is not a valid JSON number (leading "
	          "zero)");
	parse_bad(
	        &p, "{\"ts\":1,\"symbol\":\"A\",\"bid\":1.1234567890123456789}",
	        "field 'bid': '1.1234567890123456789' has too many digits (at "
	        "most 18 after the point and 18 in all)");
	parse_bad(&p,
	          "{\"ts\":1,\"symbol\":\"A\",\"volume\":"
	          "99999999999999999999}",
	          "field 'volume': '99999999999999999999' has too many digits "
	          "(at most 18 after the point and 18 in all)");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"bdi\":1}",
	          "unknown field 'bdi'");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"seq\":1,\"bid\":1}",
	          "unknown field 'seq'");
	parse_bad(&p, "{\"ts\":1,\"bid\":1}", "missing \"symbol\"");
	parse_bad(&p, "{\"symbol\":\"A\",\"bid\":1}", "missing \"ts\"");
	parse_bad(&p, "{}", "missing \"ts\"");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\"}",
	          "tick has no fields (expected at least one of bid, ask, "
	          "bid_size, ask_size, last, last_size, volume)");
	parse_bad_prefix(
	        &p, "{\"ts\":1,\"symbol\":\"A\",\"bid\":null,\"ask\":null}",
	        "tick has no fields");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"bid\":1,\"bid\":2}",
	          "duplicate member 'bid'");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"bid\":null,\"bid\":2}",
	          "duplicate member 'bid'");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"ts\":2,\"bid\":1}",
	          "duplicate member 'ts'");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"bid_size\":-100}",
	          "field 'bid_size': '-100' is negative (sizes and volume "
	          "cannot be)");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"volume\":\"-1.5\"}",
	          "field 'volume': '-1.5' is negative (sizes and volume "
	          "cannot be)");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"bid\":{\"v\":1}}",
	          "member 'bid': nested objects are not allowed (a tick is "
	          "one flat object)");
	parse_bad(&p, "{\"ts\":1,\"symbol\":[\"A\"],\"bid\":1}",
	          "member 'symbol': nested arrays are not allowed (a tick is "
	          "one flat object)");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"bid\":1} x",
	          "unexpected text after the JSON object: 'x'");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"bid\":1}{}",
	          "unexpected text after the JSON object: '{}'");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"bid\":1",
	          "unterminated JSON object");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\",\"bid\":1,}",
	          "expected a member name in double quotes");
	parse_bad(&p, "{ts:1}", "expected a member name in double quotes");
	parse_bad(&p, "{\"ts\" 1}", "expected ':' after member 'ts'");
	parse_bad(&p, "{\"ts\":,\"symbol\":\"A\"}", "member 'ts' has no value");
	parse_bad(&p, "{\"ts\":1 \"symbol\":\"A\"}",
	          "expected ',' or '}' after member 'ts', found "
	          "'\"symbol\":\"A\"}'");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"AA PL\",\"bid\":1}",
	          "symbol 'AA PL' is not valid (1 to 32 characters of A-Z "
	          "a-z 0-9 . _ : / -)");
	parse_bad_prefix(
	        &p,
	        "{\"ts\":1,\"symbol\":\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"
	        "\",\"bid\":1}",
	        "symbol 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456' is not "
	        "valid");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"\",\"bid\":1}",
	          "symbol '' is not valid (1 to 32 characters of A-Z a-z "
	          "0-9 . _ : / -)");
	parse_bad(&p, "{\"ts\":1,\"symbol\":5,\"bid\":1}",
	          "symbol must be a string, not 5");
	parse_bad(&p, "[1,2]",
	          "expected a JSON object starting with '{', found '[1,2]'");
}

static void
test_jsonl_bad_ts(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_JSONL);

	parse_bad(&p, "{\"ts\":1.5,\"symbol\":\"A\",\"bid\":1}",
	          "ts must be an integer (µs) or an ISO 8601 string, not 1.5");
	parse_bad(&p, "{\"ts\":-,\"symbol\":\"A\",\"bid\":1}",
	          "ts must be an integer (µs) or an ISO 8601 string, not -");
	parse_bad(&p, "{\"ts\":-01,\"symbol\":\"A\",\"bid\":1}",
	          "ts must be an integer (µs) or an ISO 8601 string, not -01");
	parse_bad(&p, "{\"ts\":null,\"symbol\":\"A\",\"bid\":1}",
	          "ts must be an integer (µs) or an ISO 8601 string, not null");
	parse_bad(&p, "{\"ts\":1e15,\"symbol\":\"A\",\"bid\":1}",
	          "ts must be an integer (µs) or an ISO 8601 string, not 1e15");
	parse_bad(&p, "{\"ts\":0123,\"symbol\":\"A\",\"bid\":1}",
	          "ts must be an integer (µs) or an ISO 8601 string, not 0123");
	parse_bad(&p,
	          "{\"ts\":99999999999999999999,\"symbol\":\"A\",\"bid\":1}",
	          "ts 99999999999999999999 is out of range");
	parse_bad(&p, "{\"ts\":9223372036854775808,\"symbol\":\"A\",\"bid\":1}",
	          "ts 9223372036854775808 is out of range");
	parse_bad(
	        &p,
	        "{\"ts\":\"2024-13-01T00:00:00Z\",\"symbol\":\"A\",\"bid\":1}",
	        "ts '2024-13-01T00:00:00Z' is neither integer µs nor an ISO "
	        "8601 time (e.g. 2024-03-01T14:30:00.123456Z)");
	parse_bad_prefix(&p,
	                 "{\"ts\":\"yesterday\",\"symbol\":\"A\",\"bid\":1}",
	                 "ts 'yesterday' is neither integer µs");
}

static void
test_jsonl_ts_range(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_JSONL);
	struct tick t;

	parse_ok(&p, "{\"ts\":9223372036854775807,\"symbol\":\"A\",\"bid\":1}",
	         &t);
	assert_true(t.ts == INT64_MAX);
	parse_ok(&p, "{\"ts\":0,\"symbol\":\"A\",\"bid\":1}", &t);
	assert_true(t.ts == 0);
	/* Before 1970 is refused, however it is written: no reader's range
	 * reaches it. */
	parse_bad(&p, "{\"ts\":-1,\"symbol\":\"A\",\"bid\":1}",
	          "ts -1 is before 1970-01-01T00:00:00Z: a time must be 0 or "
	          "more µs since the Unix epoch");
	parse_bad_prefix(&p, "{\"ts\":\"-2\",\"symbol\":\"A\",\"bid\":1}",
	                 "ts -2 is before 1970-01-01");
	parse_bad_prefix(
	        &p,
	        "{\"ts\":\"1969-12-31T23:59:59Z\",\"symbol\":\"A\",\"bid\":1}",
	        "ts 1969-12-31T23:59:59Z is before 1970-01-01");
}

static void
test_csv_negative_ts(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_CSV);
	char reason[REASON_LEN];
	struct tick t;

	assert_int_equal(parse(&p, "ts,symbol,bid", &t, reason),
	                 TICK_PARSE_SKIP);
	parse_bad(&p, "-1,A,1",
	          "ts -1 is before 1970-01-01T00:00:00Z: a time must be 0 or "
	          "more µs since the Unix epoch");
	parse_ok(&p, "0,A,1", &t);
	assert_true(t.ts == 0);
}

/* -------------------------------------------------------------------- CSV */

static void
test_csv_header_and_rows(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_CSV);
	char reason[REASON_LEN];
	struct tick t;

	assert_int_equal(parse(&p, "ts,symbol,bid,ask", &t, reason),
	                 TICK_PARSE_SKIP);
	assert_true(p.have_header);
	assert_int_equal(p.columns, 4);
	parse_ok(&p, "1709303400123456,AAPL,189.33,189.35", &t);
	assert_true(t.ts == 1709303400123456LL);
	assert_true(t.seq == 0);
	assert_string_equal(t.symbol, "AAPL");
	assert_string_equal(field_text(&t, FIELD_BID), "189.33");
	assert_string_equal(field_text(&t, FIELD_ASK), "189.35");
	assert_int_equal(t.present, (1u << FIELD_BID) | (1u << FIELD_ASK));
	/* A trailing '\r' (a file written on Windows) is not part of a cell. */
	parse_ok(&p, "1709303400123457,AAPL,189.30,189.40\r", &t);
	assert_string_equal(field_text(&t, FIELD_ASK), "189.40");
}

static void
test_csv_columns_in_any_order(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_CSV);
	char reason[REASON_LEN];
	struct tick t;

	assert_int_equal(
	        parse(&p, "last_size,symbol,volume,last,ts", &t, reason),
	        TICK_PARSE_SKIP);
	parse_ok(&p, "25,ES.H24,1000.5,5123.25,42", &t);
	assert_true(t.ts == 42);
	assert_string_equal(t.symbol, "ES.H24");
	assert_string_equal(field_text(&t, FIELD_LAST), "5123.25");
	assert_string_equal(field_text(&t, FIELD_LAST_SIZE), "25");
	assert_string_equal(field_text(&t, FIELD_VOLUME), "1000.5");
	assert_string_equal(field_text(&t, FIELD_BID), "-");
}

static void
test_csv_empty_cell_is_absent(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_CSV);
	char reason[REASON_LEN];
	struct tick t;

	assert_int_equal(
	        parse(&p, "ts,symbol,bid,ask,last,last_size", &t, reason),
	        TICK_PARSE_SKIP);
	parse_ok(&p, "1,A,,,10.5,3", &t);
	assert_int_equal(t.present,
	                 (1u << FIELD_LAST) | (1u << FIELD_LAST_SIZE));
	parse_ok(&p, "2,A,10.4,10.6,,", &t);
	assert_int_equal(t.present, (1u << FIELD_BID) | (1u << FIELD_ASK));
	assert_string_equal(field_text(&t, FIELD_LAST), "-");
	parse_bad(&p, "3,A,,,,",
	          "tick has no fields (expected at least one of bid, ask, "
	          "bid_size, ask_size, last, last_size, volume)");
}

static void
test_csv_quoted_cells_and_iso_ts(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_CSV);
	char reason[REASON_LEN];
	struct tick t;

	assert_int_equal(parse(&p, "\"ts\",\"symbol\",\"bid\",ask", &t, reason),
	                 TICK_PARSE_SKIP);
	parse_ok(&p, "\"2024-03-01T14:30:00.5Z\",\"AAPL\",\"189.35\",\"\"", &t);
	assert_true(t.ts == 1709303400500000LL);
	assert_string_equal(t.symbol, "AAPL");
	assert_string_equal(field_text(&t, FIELD_BID), "189.35");
	assert_string_equal(field_text(&t, FIELD_ASK), "-");
	parse_bad(&p, "1,\"A\"B\",1,2",
	          "CSV cell 2: quoted cells with commas or quotes inside are "
	          "not supported");
	/* A quoted comma splits the cell, and the halves are refused. */
	parse_bad(&p, "1,\"A,B\",1",
	          "CSV cell 2: quoted cells with commas or quotes inside are "
	          "not supported");
}

static void
test_csv_bad_rows(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_CSV);
	char reason[REASON_LEN];
	struct tick t;

	assert_int_equal(parse(&p, "ts,symbol,bid,bid_size", &t, reason),
	                 TICK_PARSE_SKIP);
	parse_bad(&p, "1,A,1,2,3", "CSV row has 5 cells; the header has 4");
	parse_bad(&p, "1,A,1", "CSV row has 3 cells; the header has 4");
	parse_bad(&p, "1,A,18x.5,1",
	          "field 'bid': '18x.5' is not a decimal number");
	parse_bad(&p, "1,A, 1,1", "field 'bid': ' 1' is not a decimal number");
	parse_bad(&p, "1,A,1,-5",
	          "field 'bid_size': '-5' is negative (sizes and volume "
	          "cannot be)");
	parse_bad(&p, ",A,1,1", "missing \"ts\" (its cell is empty)");
	parse_bad(&p, "1,,1,1", "missing \"symbol\" (its cell is empty)");
	parse_bad(&p, "1,A B,1,1",
	          "symbol 'A B' is not valid (1 to 32 characters of A-Z a-z "
	          "0-9 . _ : / -)");
	parse_bad_prefix(&p, "soon,A,1,1", "ts 'soon' is neither integer µs");
	/* 40 cells: the count is right even past the columns kept. */
	parse_bad(&p, "1,A,1,1,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,",
	          "CSV row has 40 cells; the header has 4");
	/* After bad rows the header still holds. */
	parse_ok(&p, "1,A,1,2", &t);
}

static void
test_csv_bad_headers(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_CSV);
	char reason[REASON_LEN];
	struct tick t;

	parse_bad(&p, "ts,symbol,bdi",
	          "CSV header: unknown column 'bdi' (expected ts, symbol and "
	          "any of bid, ask, bid_size, ask_size, last, last_size, "
	          "volume)");
	parse_bad(&p, "symbol,bid", "CSV header has no \"ts\" column");
	parse_bad(&p, "ts,bid", "CSV header has no \"symbol\" column");
	parse_bad(&p, "ts,symbol",
	          "CSV header has no field column (expected any of bid, ask, "
	          "bid_size, ask_size, last, last_size, volume)");
	parse_bad(&p, "ts,symbol,bid,bid",
	          "CSV header: column 'bid' appears "
	          "twice");
	parse_bad(&p, "ts,symbol,,bid", "CSV header: column 3 has no name");
	parse_bad(&p, "ts,symbol,bid,,,,,,,,,,,,,,,",
	          "CSV header has 18 columns; at most 16 are supported");
	/* A file without a header: the message says what is missing. */
	parse_bad(&p, "1709303400123456,AAPL,189.35",
	          "CSV header: unknown column '1709303400123456' (expected ts, "
	          "symbol and any of bid, ask, bid_size, ask_size, last, "
	          "last_size, volume); the first line of a CSV file must be "
	          "the header");
	/* A refused header leaves none in place; a good one still works. */
	assert_false(p.have_header);
	assert_int_equal(parse(&p, "ts,symbol,bid", &t, reason),
	                 TICK_PARSE_SKIP);
	parse_ok(&p, "1,A,1", &t);
}

static void
test_csv_repeated_header_replaces(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_CSV);
	char reason[REASON_LEN];
	struct tick t;

	/* Two exports concatenated, the second with other columns. */
	assert_int_equal(parse(&p, "ts,symbol,bid", &t, reason),
	                 TICK_PARSE_SKIP);
	parse_ok(&p, "1,A,1.5", &t);
	assert_int_equal(parse(&p, "symbol,ts,last,last_size", &t, reason),
	                 TICK_PARSE_SKIP);
	assert_string_equal(reason, "");
	parse_ok(&p, "B,2,7.25,100", &t);
	assert_string_equal(t.symbol, "B");
	assert_true(t.ts == 2);
	assert_string_equal(field_text(&t, FIELD_LAST), "7.25");
	assert_int_equal(t.present,
	                 (1u << FIELD_LAST) | (1u << FIELD_LAST_SIZE));
	/* A repeated header that is itself bad says why. */
	parse_bad(&p, "ts,symbol,ts", "CSV header: column 'ts' appears twice");
}

/* --------------------------------------------------- detection, skipping */

static void
test_detect_jsonl(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_UNKNOWN);
	char reason[REASON_LEN];
	struct tick t;

	/* Blank lines and comments decide nothing. */
	assert_int_equal(parse(&p, "", &t, reason), TICK_PARSE_SKIP);
	assert_int_equal(parse(&p, "  \t", &t, reason), TICK_PARSE_SKIP);
	assert_int_equal(parse(&p, "\r", &t, reason), TICK_PARSE_SKIP);
	assert_int_equal(parse(&p, "# exported by publisher", &t, reason),
	                 TICK_PARSE_SKIP);
	assert_int_equal(p.format, TICK_FORMAT_UNKNOWN);
	parse_ok(&p, "{\"ts\":1,\"symbol\":\"A\",\"bid\":1}", &t);
	assert_int_equal(p.format, TICK_FORMAT_JSONL);
	/* Once JSONL, a CSV line is a bad line, not a header. */
	parse_bad(&p, "ts,symbol,bid",
	          "expected a JSON object starting with '{', found "
	          "'ts,symbol,bid'");
	assert_int_equal(parse(&p, "#{\"ts\":1}", &t, reason), TICK_PARSE_SKIP);
}

static void
test_detect_csv(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_UNKNOWN);
	char reason[REASON_LEN];
	struct tick t;

	assert_int_equal(parse(&p, "", &t, reason), TICK_PARSE_SKIP);
	assert_int_equal(parse(&p, "ts,symbol,bid,ask", &t, reason),
	                 TICK_PARSE_SKIP);
	assert_int_equal(p.format, TICK_FORMAT_CSV);
	assert_true(p.have_header);
	assert_int_equal(parse(&p, "", &t, reason), TICK_PARSE_SKIP);
	assert_int_equal(parse(&p, "# a comment", &t, reason), TICK_PARSE_SKIP);
	parse_ok(&p, "865193280000000,USDTHB,24.8,25", &t);
	assert_string_equal(t.symbol, "USDTHB");
	assert_string_equal(field_text(&t, FIELD_BID), "24.8");
	assert_string_equal(field_text(&t, FIELD_ASK), "25");
}

static void
test_detect_csv_without_header(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_UNKNOWN);

	parse_bad_prefix(&p, "1,A,1",
	                 "CSV header: unknown column '1' (expected ts");
	assert_int_equal(p.format, TICK_FORMAT_CSV);
	assert_false(p.have_header);
}

static void
test_byte_order_mark_is_ignored(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_UNKNOWN);
	char reason[REASON_LEN];
	struct tick t;

	assert_int_equal(parse(&p, "\xef\xbb\xbfts,symbol,bid", &t, reason),
	                 TICK_PARSE_SKIP);
	assert_int_equal(p.format, TICK_FORMAT_CSV);
	parse_ok(&p, "1,A,2", &t);

	p = parser(TICK_FORMAT_UNKNOWN);
	parse_ok(&p, "\xef\xbb\xbf{\"ts\":1,\"symbol\":\"A\",\"bid\":1}", &t);
	assert_int_equal(p.format, TICK_FORMAT_JSONL);
}

/* ------------------------------------------------------------- contracts */

static void
test_reads_only_len_bytes(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_JSONL);
	const char *buf = "{\"ts\":1,\"symbol\":\"A\",\"bid\":1.25}GARBAGE";
	char reason[REASON_LEN];
	struct tick t;

	assert_int_equal(tick_parse_line(&p, buf, strlen(buf) - 7, &t, reason,
	                                 sizeof reason),
	                 TICK_PARSE_OK);
	assert_string_equal(field_text(&t, FIELD_BID), "1.25");

	p = parser(TICK_FORMAT_CSV);
	assert_int_equal(parse(&p, "ts,symbol,bid", &t, reason),
	                 TICK_PARSE_SKIP);
	buf = "1,A,2.5,EXTRA";
	assert_int_equal(tick_parse_line(&p, buf, 7, &t, reason, sizeof reason),
	                 TICK_PARSE_OK);
	assert_string_equal(field_text(&t, FIELD_BID), "2.5");
}

static void
test_small_or_missing_reason_buffer(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_JSONL);
	char small[8];
	struct tick t;

	assert_int_equal(tick_parse_line(&p, "{}", 2, &t, NULL, 0),
	                 TICK_PARSE_ERROR);
	memset(small, 'x', sizeof small);
	assert_int_equal(tick_parse_line(&p, "{}", 2, &t, small, sizeof small),
	                 TICK_PARSE_ERROR);
	assert_string_equal(small, "missing");
}

static void
test_long_input_is_cut_in_reason(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_JSONL);
	char line[400], reason[REASON_LEN];
	struct tick t;
	int n;

	n = snprintf(line, sizeof line, "{\"ts\":1,\"symbol\":\"A\",\"");
	memset(line + n, 'k', 200);
	n += 200;
	snprintf(line + n, sizeof line - (size_t)n, "\":1}");
	assert_int_equal(parse(&p, line, &t, reason), TICK_PARSE_ERROR);
	assert_string_equal(reason,
	                    "unknown field "
	                    "'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk…'");
}

/* Found by fuzzing (fuzz_tick_jsonl): an invalid escape whose character was
 * DEL (0x7f) or a byte >= 0x80 was copied raw into the reason, so a hostile
 * line could put a control character, or broken UTF-8, into the log. */
static void
test_invalid_escape_is_printable_in_reason(void **state)
{
	struct tick_parser p = parser(TICK_FORMAT_JSONL);

	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\\\x7f\",\"bid\":1}",
	          "invalid escape '\\?' in a string");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\\\xc3\xa9\",\"bid\":1}",
	          "invalid escape '\\?' in a string");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\\\x01\",\"bid\":1}",
	          "invalid escape '\\?' in a string");
	parse_bad(&p, "{\"ts\":1,\"symbol\":\"A\\~\",\"bid\":1}",
	          "invalid escape '\\~' in a string");
}

/* --------------------------------------------------------- written lines */

/* Every line in b read back with one parser: the ticks, how many. */
static size_t
read_back(const struct jsonbuf *b, enum tick_format format, struct tick *out,
          size_t max)
{
	struct tick_parser p = parser(format);
	const char *s = jsonbuf_data(b), *end = s + b->len;
	size_t n = 0;

	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		char reason[REASON_LEN];

		assert_non_null(nl); /* every line ends with its newline */
		switch (tick_parse_line(&p, s, (size_t)(nl - s), &out[n],
		                        reason, sizeof reason)) {
		case TICK_PARSE_OK:
			assert_true(++n <= max);
			break;
		case TICK_PARSE_SKIP:
			break;
		case TICK_PARSE_ERROR:
			fail_msg("written line refused: %s", reason);
		}
		s = nl + 1;
	}
	return n;
}

static void
assert_same_tick(const struct tick *a, const struct tick *b)
{
	int f;

	assert_true(a->ts == b->ts);
	assert_string_equal(a->symbol, b->symbol);
	assert_int_equal(a->present, b->present);
	for (f = 0; f < TICK_FIELD_COUNT; f++) {
		if (!tick_has(a, (enum tick_field)f))
			continue;
		assert_true(a->value[f].mantissa == b->value[f].mantissa);
		assert_int_equal(a->value[f].scale, b->value[f].scale);
	}
}

static void
test_written_lines_read_back(void **state)
{
	struct tick in[2] = {{.ts = 1709303400123456LL}, {.ts = 0}}, out[2];
	struct decimal bid = {18930, 2}, last = {-1, 6}, vol = {7, 0};
	struct jsonbuf b;
	size_t i;

	strcpy(in[0].symbol, "AAPL");
	tick_set(&in[0], FIELD_BID, bid);
	strcpy(in[1].symbol, "ES:H4/x_1-2");
	tick_set(&in[1], FIELD_LAST, last);
	tick_set(&in[1], FIELD_VOLUME, vol);

	jsonbuf_init(&b, 0);
	tick_file_write_csv_header(&b);
	for (i = 0; i < 2; i++)
		tick_file_write_line(&b, false, &in[i]);
	assert_int_equal(read_back(&b, TICK_FORMAT_UNKNOWN, out, 2), 2);
	for (i = 0; i < 2; i++)
		assert_same_tick(&in[i], &out[i]);

	jsonbuf_reset(&b);
	for (i = 0; i < 2; i++)
		tick_file_write_line(&b, true, &in[i]);
	assert_int_equal(read_back(&b, TICK_FORMAT_UNKNOWN, out, 2), 2);
	for (i = 0; i < 2; i++)
		assert_same_tick(&in[i], &out[i]);

	/* The JSON object alone is the JSONL line without its newline. */
	jsonbuf_reset(&b);
	tick_file_write_json(&b, &in[1]);
	tick_file_write_line(&b, true, &in[1]);
	assert_false(jsonbuf_failed(&b));
	assert_int_equal(b.len % 2, 1);
	assert_memory_equal(jsonbuf_data(&b), jsonbuf_data(&b) + b.len / 2,
	                    b.len / 2);
	assert_int_equal(jsonbuf_data(&b)[b.len - 1], '\n');
	jsonbuf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_jsonl_spec_example),
	        cmocka_unit_test(test_jsonl_every_field_and_exact_text),
	        cmocka_unit_test(test_jsonl_numbers_as_strings_and_null),
	        cmocka_unit_test(test_jsonl_iso_ts),
	        cmocka_unit_test(test_jsonl_string_escapes),
	        cmocka_unit_test(test_jsonl_bad_lines),
	        cmocka_unit_test(test_jsonl_bad_ts),
	        cmocka_unit_test(test_jsonl_ts_range),
	        cmocka_unit_test(test_csv_negative_ts),
	        cmocka_unit_test(test_csv_header_and_rows),
	        cmocka_unit_test(test_csv_columns_in_any_order),
	        cmocka_unit_test(test_csv_empty_cell_is_absent),
	        cmocka_unit_test(test_csv_quoted_cells_and_iso_ts),
	        cmocka_unit_test(test_csv_bad_rows),
	        cmocka_unit_test(test_csv_bad_headers),
	        cmocka_unit_test(test_csv_repeated_header_replaces),
	        cmocka_unit_test(test_detect_jsonl),
	        cmocka_unit_test(test_detect_csv),
	        cmocka_unit_test(test_detect_csv_without_header),
	        cmocka_unit_test(test_byte_order_mark_is_ignored),
	        cmocka_unit_test(test_reads_only_len_bytes),
	        cmocka_unit_test(test_small_or_missing_reason_buffer),
	        cmocka_unit_test(test_long_input_is_cut_in_reason),
	        cmocka_unit_test(test_invalid_escape_is_printable_in_reason),
	        cmocka_unit_test(test_written_lines_read_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests for publisher/http_query.c: the arguments of /api/export and
 * /api/bars as lws hands them over ("name=value", decoded), what each
 * endpoint takes, the defaults, and every refusal naming the argument: an
 * unknown one, a repeated one, an empty, over-long or invalid value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http_query.h"

static char err[512];

/* Feed "a=1&b=2" split at '&' as lws would, then finish. Returns 0 or -1
 * (the reason in err). */
static int
parse(struct http_query *q, enum query_kind kind, const char *qs)
{
	const char *p = qs, *amp;

	http_query_init(q, kind);
	err[0] = '\0';
	while (*p || p == qs) {
		amp = strchr(p, '&');
		if (!amp)
			amp = p + strlen(p);
		if (http_query_arg(q, p, (size_t)(amp - p), err, sizeof err))
			return -1;
		if (!*amp)
			break;
		p = amp + 1;
	}
	return http_query_finish(q, err, sizeof err);
}

static void
ok(enum query_kind kind, const char *qs, struct http_query *q)
{
	if (parse(q, kind, qs))
		fail_msg("'%s' refused: %s", qs, err);
}

/* Refused, and the message holds `word` (the argument's name). */
static void
refused(enum query_kind kind, const char *qs, const char *word)
{
	struct http_query q;

	if (parse(&q, kind, qs) == 0)
		fail_msg("'%s' accepted", qs);
	if (!strstr(err, word))
		fail_msg("'%s': message '%s' does not name '%s'", qs, err,
		         word);
	if (strchr(err, '\n'))
		fail_msg("'%s': message '%s' has a newline", qs, err);
}

static void
test_export_arguments(void **state)
{
	struct http_query q;

	ok(QUERY_EXPORT, "", &q);
	assert_int_equal(q.spec.kind, QUERY_EXPORT);
	assert_int_equal(q.spec.symbol_count, 0);
	assert_int_equal(q.spec.from, 0);
	assert_int_equal(q.spec.to, INT64_MAX);
	assert_int_equal(q.spec.limit, 0);
	assert_false(q.spec.jsonl);

	ok(QUERY_EXPORT,
	   "symbol=AAPL&symbol=FX:EURUSD&from=10&to=2024-03-01T14:30:00Z&"
	   "limit=5&format=jsonl",
	   &q);
	assert_int_equal(q.spec.symbol_count, 2);
	assert_string_equal(q.spec.symbols[0], "AAPL");
	assert_string_equal(q.spec.symbols[1], "FX:EURUSD");
	assert_int_equal(q.spec.from, 10);
	assert_int_equal(q.spec.to, 1709303400000000LL);
	assert_int_equal(q.spec.limit, 5);
	assert_true(q.spec.jsonl);

	ok(QUERY_EXPORT, "format=csv&limit=4294967295", &q);
	assert_false(q.spec.jsonl);
	assert_int_equal(q.spec.limit, UINT32_MAX);
	/* The token is admission.c's: taken, of any length, and ignored. */
	ok(QUERY_EXPORT,
	   "token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5"
	   "OSwic3ltYm9scyI6WyIqIl19.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU",
	   &q);
	/* An empty argument (a=1&&b=2, a trailing &) is nothing. */
	ok(QUERY_EXPORT, "symbol=A&&symbol=B&", &q);
	assert_int_equal(q.spec.symbol_count, 2);
}

static void
test_bars_arguments(void **state)
{
	struct http_query q;

	ok(QUERY_BARS, "symbol=AAPL", &q);
	assert_int_equal(q.spec.kind, QUERY_BARS);
	assert_string_equal(q.spec.interval, "1m"); /* the default */
	assert_int_equal(q.spec.interval_us, 60000000);
	ok(QUERY_BARS, "interval=1d&symbol=AAPL&from=0&to=86400000000", &q);
	assert_string_equal(q.spec.interval, "1d");
	assert_int_equal(q.spec.interval_us, 86400000000LL);
	assert_int_equal(q.spec.to, 86400000000LL);
	ok(QUERY_BARS, "symbol=AAPL&interval=1s", &q);
	assert_int_equal(q.spec.interval_us, 1000000);
}

static void
test_unknown_and_repeated(void **state)
{
	refused(QUERY_BARS, "symbol=AAPL&intreval=5m", "intreval");
	refused(QUERY_BARS, "symbol=AAPL&nope=1", "nope");
	/* each endpoint's own arguments only */
	refused(QUERY_BARS, "symbol=AAPL&format=csv", "format");
	refused(QUERY_EXPORT, "interval=1m", "interval");
	/* the message says what the endpoint takes */
	refused(QUERY_BARS, "x=1", "symbol, from, to, limit, interval");
	/* case matters, as in every URL */
	refused(QUERY_EXPORT, "Symbol=AAPL", "Symbol");
	refused(QUERY_EXPORT, "from=1&from=2", "from");
	refused(QUERY_BARS, "symbol=A&interval=1m&interval=5m", "interval");
	refused(QUERY_EXPORT, "format=csv&format=csv", "format");
	refused(QUERY_EXPORT, "token=a&token=b", "token");
	/* a name with no '=' is not a value */
	refused(QUERY_EXPORT, "symbol", "symbol");
	refused(QUERY_BARS, "symbol=A&interval", "interval");
}

static void
test_bad_values(void **state)
{
	char hundred[101], long_iv[200];

	/* 100 characters: refused by name, not read as the default */
	memset(hundred, 'x', 100);
	hundred[100] = '\0';
	snprintf(long_iv, sizeof long_iv, "symbol=AAPL&interval=%s", hundred);
	refused(QUERY_BARS, long_iv, "interval");
	refused(QUERY_BARS, long_iv, "too long");
	refused(QUERY_BARS, "symbol=AAPL&interval=", "interval");
	refused(QUERY_BARS, "symbol=AAPL&interval=7m", "interval");
	refused(QUERY_BARS, "symbol=AAPL&interval=1mm", "interval");
	refused(QUERY_EXPORT, "symbol=", "symbol");
	refused(QUERY_EXPORT, "symbol=bad symbol!", "symbol");
	refused(QUERY_EXPORT, "symbol=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456",
	        "symbol");
	refused(QUERY_EXPORT, "from=yesterday", "from");
	refused(QUERY_EXPORT, "to=", "to");
	refused(QUERY_EXPORT, "format=xml", "format");
	refused(QUERY_EXPORT, "format=CSV", "format");
	refused(QUERY_EXPORT, "limit=0", "limit");
	refused(QUERY_EXPORT, "limit=-1", "limit");
	refused(QUERY_EXPORT, "limit= 5", "limit");
	refused(QUERY_EXPORT, "limit=+5", "limit");
	refused(QUERY_EXPORT, "limit=4294967296", "limit");
	refused(QUERY_EXPORT, "limit=99999999999999999999999", "limit");
	/* bars take one symbol, an export up to QUERY_MAX_SYMBOLS */
	refused(QUERY_BARS, "symbol=A&symbol=B", "symbol");
	refused(QUERY_BARS, "interval=1m", "symbol");
	refused(QUERY_EXPORT, "from=20&to=10", "from");
}

static void
test_too_many_symbols(void **state)
{
	char qs[QUERY_MAX_SYMBOLS * 16 + 32];
	struct http_query q;
	size_t n = 0;
	int i;

	for (i = 0; i < QUERY_MAX_SYMBOLS; i++)
		n += (size_t)snprintf(qs + n, sizeof qs - n, "%ssymbol=S%d",
		                      i ? "&" : "", i);
	ok(QUERY_EXPORT, qs, &q);
	assert_int_equal(q.spec.symbol_count, QUERY_MAX_SYMBOLS);
	snprintf(qs + n, sizeof qs - n, "&symbol=ONE_MORE");
	refused(QUERY_EXPORT, qs, "symbol");
}

/* What a client wrote is quoted back printable and short. */
static void
test_quoted_back_safely(void **state)
{
	static const char arg[] = "interval=\x01\x1b[31m\\";
	char big[300];
	struct http_query q;

	http_query_init(&q, QUERY_BARS);
	assert_int_equal(
	        http_query_arg(&q, arg, sizeof arg - 1, err, sizeof err), -1);
	assert_non_null(strstr(err, "\\x01\\x1b[31m\\x5c"));

	/* a NUL inside a value is refused, not cut at */
	http_query_init(&q, QUERY_EXPORT);
	assert_int_equal(
	        http_query_arg(&q, "symbol=AB\0CD", 12, err, sizeof err), -1);
	assert_non_null(strstr(err, "symbol"));
	assert_non_null(strstr(err, "\\x00"));

	/* an unknown name of 250 bytes is quoted, cut short */
	memset(big, 'n', 250);
	strcpy(big + 250, "=1");
	http_query_init(&q, QUERY_EXPORT);
	assert_int_equal(http_query_arg(&q, big, strlen(big), err, sizeof err),
	                 -1);
	assert_non_null(strstr(err, "nnn..."));
	assert_true(strlen(err) < 200);

	/* a small error buffer is cut, not overrun */
	http_query_init(&q, QUERY_EXPORT);
	assert_int_equal(http_query_arg(&q, "nope=1", 6, err, 8), -1);
	assert_int_equal(strlen(err), 7);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_export_arguments),
	        cmocka_unit_test(test_bars_arguments),
	        cmocka_unit_test(test_unknown_and_repeated),
	        cmocka_unit_test(test_bad_values),
	        cmocka_unit_test(test_too_many_symbols),
	        cmocka_unit_test(test_quoted_back_safely),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

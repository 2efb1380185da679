/*
 * Unit tests for publisher/cli.c: the defaults, every option in both its
 * "--opt value" and "--opt=value" forms, every bad value refused with a
 * message that names the option, the replay feed spec and export options.
 */
#define _GNU_SOURCE /* open_memstream */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"

static struct cli cli; /* large (config_text): not on the test stack */
static char err[512];

/* Parse "publisher" followed by the NULL-terminated arguments. */
static int
parse(const char *first, ...)
{
	char *argv[64];
	int argc = 0;
	va_list ap;
	const char *a;

	argv[argc++] = (char *)"publisher";
	va_start(ap, first);
	for (a = first; a; a = va_arg(ap, const char *)) {
		assert_true(argc < 63);
		argv[argc++] = (char *)a;
	}
	va_end(ap);
	argv[argc] = NULL;
	memset(err, 0, sizeof err);
	return cli_parse(argc, argv, &cli, err, sizeof err);
}

#define PARSE(...) parse(__VA_ARGS__, (const char *)NULL)

/* The parse must succeed. */
#define OK(...)                                                                \
	do {                                                                   \
		if (PARSE(__VA_ARGS__) != 0)                                   \
			fail_msg("refused: %s", err);                          \
	} while (0)

/* The parse must fail with a message containing each needle. */
#define BAD(needle, ...)                                                       \
	do {                                                                   \
		if (PARSE(__VA_ARGS__) != -1)                                  \
			fail_msg("accepted, wanted an error with '%s'",        \
			         needle);                                      \
		if (!strstr(err, needle))                                      \
			fail_msg("message '%s' lacks '%s'", err, needle);      \
	} while (0)

/* The parse must fail with exactly this message. */
#define BAD_EXACT(message, ...)                                                \
	do {                                                                   \
		assert_int_equal(PARSE(__VA_ARGS__), -1);                      \
		assert_string_equal(err, message);                             \
	} while (0)

static void
assert_serve_defaults(void)
{
	assert_string_equal(cli.server.listen_host, "127.0.0.1");
	assert_int_equal(cli.server.listen_port, 8080);
	assert_string_equal(cli.store.path, "data/ticks.db");
	assert_string_equal(cli.server.web, "web");
	assert_string_equal(cli.node.feed_spec, "synthetic");
	assert_int_equal(cli.node.log_level, LOG_INFO);
	assert_null(cli.node.port_file);
	assert_int_equal(cli.server.heartbeat_ms, 5000);
	assert_int_equal(cli.server.ping_secs, 20);
	assert_int_equal(cli.server.max_message_bytes, 65536);
	assert_int_equal(cli.server.max_symbols, 10000);
	assert_true(cli.server.ops_per_sec == 100);
	assert_true(cli.server.ops_burst == 200);
	/* retention: keep everything unless told */
	assert_int_equal(cli.store.retain_age_us, 0);
	assert_int_equal(cli.store.retain_rows, 0);
	/* exposure: no token, own origin only, no TLS, sane caps */
	assert_null(cli.server.auth_secret);
	assert_int_equal(cli.server.allow_origin_count, 0);
	assert_null(cli.server.tls_cert);
	assert_null(cli.server.tls_key);
	assert_int_equal(cli.server.max_connections, 10000);
	assert_int_equal(cli.server.max_connections_per_ip, 0); /* no cap */
	assert_int_equal(cli.server.trusted_proxy_count, 0);
	assert_int_equal(cli.server.handshake_secs, 10);
}

static void
test_serve_defaults(void **state)
{
	OK("serve");
	assert_int_equal(cli.command, CLI_SERVE);
	assert_serve_defaults();
}

static void
test_serve_every_option(void **state)
{
	OK("serve", "--listen", "0.0.0.0:9001", "--db", "/tmp/x.db", "--web",
	   "/srv/web", "--feed", "tcp:127.0.0.1:7000", "--log-level", "debug",
	   "--port-file", "/tmp/port", "--heartbeat-ms", "250", "--ping-secs",
	   "5", "--max-message-bytes", "4096", "--max-symbols", "50",
	   "--rate-limit", "2.5", "--rate-burst", "10");
	assert_int_equal(cli.command, CLI_SERVE);
	assert_string_equal(cli.server.listen_host, "0.0.0.0");
	assert_int_equal(cli.server.listen_port, 9001);
	assert_string_equal(cli.store.path, "/tmp/x.db");
	assert_string_equal(cli.server.web, "/srv/web");
	assert_string_equal(cli.node.feed_spec, "tcp:127.0.0.1:7000");
	assert_int_equal(cli.node.log_level, LOG_DEBUG);
	assert_string_equal(cli.node.port_file, "/tmp/port");
	assert_int_equal(cli.server.heartbeat_ms, 250);
	assert_int_equal(cli.server.ping_secs, 5);
	assert_int_equal(cli.server.max_message_bytes, 4096);
	assert_int_equal(cli.server.max_symbols, 50);
	assert_true(cli.server.ops_per_sec == 2.5);
	assert_true(cli.server.ops_burst == 10);
}

static void
test_serve_equals_form(void **state)
{
	OK("serve", "--listen=localhost:0", "--db=a.db", "--web=w",
	   "--feed=synthetic:symbols=5,rate=10,seed=1", "--log-level=warn",
	   "--port-file=p", "--heartbeat-ms=100", "--ping-secs=1",
	   "--max-message-bytes=1024", "--max-symbols=1", "--rate-limit=7",
	   "--rate-burst=1");
	assert_string_equal(cli.server.listen_host, "localhost");
	assert_int_equal(cli.server.listen_port, 0);
	assert_string_equal(cli.store.path, "a.db");
	assert_string_equal(cli.server.web, "w");
	/* '=' inside the value is part of the value */
	assert_string_equal(cli.node.feed_spec,
	                    "synthetic:symbols=5,rate=10,seed=1");
	assert_int_equal(cli.node.log_level, LOG_WARN);
	assert_string_equal(cli.node.port_file, "p");
	assert_int_equal(cli.server.heartbeat_ms, 100);
	assert_int_equal(cli.server.ping_secs, 1);
	assert_int_equal(cli.server.max_message_bytes, 1024);
	assert_int_equal(cli.server.max_symbols, 1);
	assert_true(cli.server.ops_per_sec == 7);
	assert_true(cli.server.ops_burst == 1);

	/* The last of a repeated option wins. */
	OK("serve", "--db", "a.db", "--db", "b.db");
	assert_string_equal(cli.store.path, "b.db");
}

static void
test_log_levels(void **state)
{
	OK("serve", "--log-level", "error");
	assert_int_equal(cli.node.log_level, LOG_ERROR);
	OK("serve", "--log-level", "warn");
	assert_int_equal(cli.node.log_level, LOG_WARN);
	OK("serve", "--log-level", "info");
	assert_int_equal(cli.node.log_level, LOG_INFO);
	OK("serve", "--log-level", "debug");
	assert_int_equal(cli.node.log_level, LOG_DEBUG);
	BAD_EXACT("--log-level 'verbose': expected error, warn, info or debug",
	          "serve", "--log-level", "verbose");
	BAD("--log-level", "serve", "--log-level", "INFO");
}

static void
test_listen(void **state)
{
	OK("serve", "--listen", "127.0.0.1:65535");
	assert_int_equal(cli.server.listen_port, 65535);
	OK("serve", "--listen", "[::1]:8081");
	assert_string_equal(cli.server.listen_host, "::1");
	assert_int_equal(cli.server.listen_port, 8081);
	OK("serve", "--listen", "[::]:0");
	assert_string_equal(cli.server.listen_host, "::");

	BAD_EXACT("--listen '127.0.0.1:99999': port must be 0-65535", "serve",
	          "--listen", "127.0.0.1:99999");
	BAD_EXACT("--listen '127.0.0.1:65536': port must be 0-65535", "serve",
	          "--listen", "127.0.0.1:65536");
	BAD("port must be 0-65535", "serve", "--listen", "127.0.0.1:");
	BAD("port must be 0-65535", "serve", "--listen", "127.0.0.1:-1");
	BAD("port must be 0-65535", "serve", "--listen", "127.0.0.1:80x");
	BAD("port must be 0-65535", "serve", "--listen",
	    "127.0.0.1:99999999999999999999999");
	BAD_EXACT("--listen '8080': expected HOST:PORT, e.g. 127.0.0.1:8080",
	          "serve", "--listen", "8080");
	BAD_EXACT("--listen 'example.com:80': host must be an IPv4 address, "
	          "localhost or [IPv6]",
	          "serve", "--listen", "example.com:80");
	BAD("--listen ':8080': host must be", "serve", "--listen", ":8080");
	BAD("--listen '1.2.3:80': host must be", "serve", "--listen",
	    "1.2.3:80");
	BAD("--listen '::1:80': host must be", "serve", "--listen", "::1:80");
	BAD("--listen '[zz]:80': host must be", "serve", "--listen", "[zz]:80");
	BAD("--listen '[::1]8080': expected [IPv6]:PORT", "serve", "--listen",
	    "[::1]8080");
	BAD("--listen '[::1': expected [IPv6]:PORT", "serve", "--listen",
	    "[::1");
}

static void
test_numeric_limits(void **state)
{
	BAD_EXACT("--heartbeat-ms '99': must be a whole number of milliseconds "
	          "from 100 to 3600000",
	          "serve", "--heartbeat-ms", "99");
	BAD("--heartbeat-ms 'abc'", "serve", "--heartbeat-ms", "abc");
	BAD("--heartbeat-ms '1e3'", "serve", "--heartbeat-ms", "1e3");
	BAD("--heartbeat-ms", "serve", "--heartbeat-ms", "3600001");
	BAD("--ping-secs '0'", "serve", "--ping-secs", "0");
	BAD("--ping-secs '-1'", "serve", "--ping-secs", "-1");
	BAD("--max-message-bytes '1023'", "serve", "--max-message-bytes",
	    "1023");
	BAD("--max-message-bytes '64k'", "serve", "--max-message-bytes", "64k");
	BAD("--max-symbols '0'", "serve", "--max-symbols", "0");
	BAD("--rate-limit '0'", "serve", "--rate-limit", "0");
	BAD("--rate-limit '-5'", "serve", "--rate-limit", "-5");
	BAD("--rate-limit 'inf'", "serve", "--rate-limit", "inf");
	BAD("--rate-limit 'nan'", "serve", "--rate-limit", "nan");
	BAD("--rate-limit '1.2.3'", "serve", "--rate-limit", "1.2.3");
	BAD("--rate-limit '.'", "serve", "--rate-limit", ".");
	BAD("--rate-burst '0.5'", "serve", "--rate-burst", "0.5");
	BAD("--rate-burst 'lots'", "serve", "--rate-burst", "lots");
	OK("serve", "--rate-limit", ".5");
	assert_true(cli.server.ops_per_sec == 0.5);
}

static void
test_missing_values(void **state)
{
	BAD_EXACT("--db needs a value", "serve", "--db");
	BAD_EXACT("--db needs a value", "serve", "--db=");
	/* A following option is not swallowed as the value. */
	BAD_EXACT("--db needs a value", "serve", "--db", "--web", "w");
	BAD_EXACT("--speed needs a value", "replay", "f.jsonl", "--speed");
	BAD_EXACT("--listen needs a value", "serve", "--listen");
	BAD_EXACT("-o needs a value", "export", "--db", "x.db", "-o");
	/* but "--opt=--x" is explicit */
	OK("serve", "--web=--odd-dir-name");
	assert_string_equal(cli.server.web, "--odd-dir-name");
}

static void
test_unknown_options(void **state)
{
	BAD_EXACT("unknown option '--lisen' for 'serve' (did you mean "
	          "--listen?)",
	          "serve", "--lisen", "127.0.0.1:1");
	BAD_EXACT("unknown option '--lisen' for 'serve' (did you mean "
	          "--listen?)",
	          "serve", "--lisen=127.0.0.1:1");
	BAD_EXACT("unknown option '--frobnicate' for 'serve'", "serve",
	          "--frobnicate");
	BAD_EXACT("unknown option '-x' for 'serve'", "serve", "-x");
	BAD_EXACT("--speed does not apply to 'serve'", "serve", "--speed", "2");
	BAD_EXACT("--listen does not apply to 'export'", "export", "--db",
	          "x.db", "--listen", "127.0.0.1:1");
	BAD_EXACT("--symbol does not apply to 'replay'", "replay", "f",
	          "--symbol", "AAPL");
	BAD("--feed does not apply to 'replay'", "replay", "f", "--feed",
	    "synthetic");
	BAD_EXACT("--loop takes no value", "replay", "f", "--loop=yes");
	BAD_EXACT("unexpected argument 'extra' for 'serve'", "serve", "extra");
	BAD_EXACT("unexpected argument 'x.db' for 'export'", "export", "--db",
	          "a.db", "x.db");
}

static void
test_commands(void **state)
{
	BAD_EXACT("missing command (serve, replay, export or import)", NULL);
	BAD_EXACT("missing command (serve, replay, export or import)",
	          "--listen", "127.0.0.1:1");
	BAD_EXACT("unknown command 'srve' (expected serve, replay, export or "
	          "import)",
	          "srve");

	OK("--help");
	assert_int_equal(cli.command, CLI_HELP);
	OK("-h");
	assert_int_equal(cli.command, CLI_HELP);
	OK("help");
	assert_int_equal(cli.command, CLI_HELP);
	/* anywhere, even after a mistake */
	OK("serve", "--lisen", "x", "--help");
	assert_int_equal(cli.command, CLI_HELP);
	OK("export", "-h");
	assert_int_equal(cli.command, CLI_HELP);

	OK("--version");
	assert_int_equal(cli.command, CLI_VERSION);
	OK("serve", "--version");
	assert_int_equal(cli.command, CLI_VERSION);
	/* --help wins over --version */
	OK("--version", "--help");
	assert_int_equal(cli.command, CLI_HELP);

	assert_string_equal(cli_version_string, "publisher 0.1.0");
}

static void
test_replay(void **state)
{
	OK("replay", "ticks.jsonl");
	assert_int_equal(cli.command, CLI_REPLAY);
	assert_string_equal(cli.replay.path, "ticks.jsonl");
	assert_true(cli.replay.speed == 1);
	assert_false(cli.replay.loop);
	/* the serve options keep their defaults */
	assert_string_equal(cli.server.listen_host, "127.0.0.1");
	assert_int_equal(cli.server.listen_port, 8080);
	assert_string_equal(cli.store.path, "data/ticks.db");

	OK("replay", "t.csv", "--speed", "10", "--loop");
	assert_string_equal(cli.replay.path, "t.csv");
	assert_true(cli.replay.speed == 10);
	assert_true(cli.replay.loop);

	OK("replay", "--loop", "--speed=max", "data/t.csv", "--listen",
	   "127.0.0.1:0", "--db", "r.db", "--port-file", "pf");
	assert_string_equal(cli.replay.path, "data/t.csv");
	assert_true(cli.replay.speed == 0); /* max */
	assert_true(cli.replay.loop);
	assert_int_equal(cli.server.listen_port, 0);
	assert_string_equal(cli.store.path, "r.db");
	assert_string_equal(cli.node.port_file, "pf");

	OK("replay", "t.csv", "--speed", "0.25");
	assert_true(cli.replay.speed == 0.25);

	/* The file goes to the feed as it is: no feed spec to parse back,
	 * so a comma in its name is just a character. */
	OK("replay", "a,b.csv");
	assert_string_equal(cli.replay.path, "a,b.csv");

	BAD_EXACT("replay needs a FILE (a JSONL or CSV tick file, as export "
	          "writes)",
	          "replay");
	BAD("replay needs a FILE", "replay", "--loop");
	BAD_EXACT("--speed '0': must be a number > 0 (1 = as recorded) or max",
	          "replay", "t.csv", "--speed", "0");
	BAD("--speed '-2'", "replay", "t.csv", "--speed", "-2");
	BAD("--speed 'fast'", "replay", "t.csv", "--speed", "fast");
	BAD("--speed 'MAX'", "replay", "t.csv", "--speed", "MAX");
	BAD("--speed 'inf'", "replay", "t.csv", "--speed", "inf");
	BAD("--speed '1e3'", "replay", "t.csv", "--speed", "1e3");
	BAD("--speed '.'", "replay", "t.csv", "--speed", ".");
	BAD_EXACT("unexpected argument 'b.csv' for 'replay'", "replay", "a.csv",
	          "b.csv");
}

static void
test_replay_long_file(void **state)
{
	static char path[5000];

	/* No buffer stands between the argument and the feed any more. */
	memset(path, 'p', sizeof path - 1);
	OK("replay", path);
	assert_ptr_equal(cli.replay.path, path);
}

static void
test_export(void **state)
{
	OK("export", "--db", "x.db");
	assert_int_equal(cli.command, CLI_EXPORT);
	assert_string_equal(cli.export.db, "x.db");
	assert_int_equal(cli.export.symbol_count, 0);
	assert_int_equal(cli.export.from, 0);
	assert_int_equal(cli.export.to, INT64_MAX);
	assert_false(cli.export.jsonl);
	assert_null(cli.export.output);

	OK("export", "--db=x.db", "--symbol", "AAPL", "--symbol=MSFT",
	   "--symbol", "BRK.B", "--from", "2024-03-01T14:30:00Z", "--to",
	   "1709303460000000", "--format", "jsonl", "-o", "out.jsonl");
	assert_int_equal(cli.export.symbol_count, 3);
	assert_string_equal(cli.export.symbols[0], "AAPL");
	assert_string_equal(cli.export.symbols[1], "MSFT");
	assert_string_equal(cli.export.symbols[2], "BRK.B");
	assert_int_equal(cli.export.from, 1709303400000000LL);
	assert_int_equal(cli.export.to, 1709303460000000LL);
	assert_true(cli.export.jsonl);
	assert_string_equal(cli.export.output, "out.jsonl");

	OK("export", "--db", "x.db", "--format=csv", "--output=o.csv",
	   "--from=2024-03-01T15:30:00+01:00", "--log-level", "warn");
	assert_false(cli.export.jsonl);
	assert_string_equal(cli.export.output, "o.csv");
	assert_int_equal(cli.export.from, 1709303400000000LL);
	assert_int_equal(cli.node.log_level, LOG_WARN);

	OK("export", "--db", "x.db", "-o", "-");
	assert_null(cli.export.output);

	/* a negative time is a value, not an option */
	OK("export", "--db", "x.db", "--from", "-5");
	assert_int_equal(cli.export.from, -5);
}

static void
test_import(void **state)
{
	OK("import", "a.csv", "--db", "x.db");
	assert_int_equal(cli.command, CLI_IMPORT);
	assert_string_equal(cli.import.db, "x.db");
	assert_int_equal(cli.import.file_count, 1);
	assert_string_equal(cli.import.files[0], "a.csv");
	assert_false(cli.import.progress); /* main.c's to set */
	assert_int_equal(cli.node.log_level, LOG_INFO);

	/* Files before and after the options, "-" for standard input. */
	OK("import", "a.csv", "--db=x.db", "-", "b.jsonl", "--log-level",
	   "warn");
	assert_int_equal(cli.import.file_count, 3);
	assert_string_equal(cli.import.files[1], "-");
	assert_string_equal(cli.import.files[2], "b.jsonl");
	assert_int_equal(cli.node.log_level, LOG_WARN);

	BAD_EXACT("import needs --db FILE", "import", "a.csv");
	BAD_EXACT("import needs a FILE (a JSONL or CSV tick file, as export "
	          "writes; - for standard input)",
	          "import", "--db", "x.db");
	BAD_EXACT("--speed does not apply to 'import'", "import", "a.csv",
	          "--db", "x.db", "--speed", "2");
	BAD_EXACT("--listen does not apply to 'import'", "import", "a.csv",
	          "--db", "x.db", "--listen", "127.0.0.1:1");
	BAD("did you mean --db?", "import", "a.csv", "--dbb", "x.db");
}

static void
test_export_errors(void **state)
{
	char names[EXPORT_MAX_SYMBOLS + 1][8];
	char *argv[4 + 2 * (EXPORT_MAX_SYMBOLS + 1)];
	int argc = 0, i;

	BAD_EXACT("export needs --db FILE", "export");
	BAD_EXACT("export needs --db FILE", "export", "--symbol", "AAPL");
	BAD_EXACT("--format 'xml': expected csv or jsonl", "export", "--db",
	          "x.db", "--format", "xml");
	BAD_EXACT("--from 'yesterday': expected microseconds since the epoch "
	          "or ISO 8601 like 2024-03-01T14:30:00Z",
	          "export", "--db", "x.db", "--from", "yesterday");
	BAD("--to '2024-02-30T00:00:00Z'", "export", "--db", "x.db", "--to",
	    "2024-02-30T00:00:00Z");
	BAD_EXACT("--from is after --to", "export", "--db", "x.db", "--from",
	          "200", "--to", "100");
	BAD_EXACT("--symbol 'AA PL': not a valid symbol (1-32 of A-Z a-z 0-9 "
	          ". _ : / -)",
	          "export", "--db", "x.db", "--symbol", "AA PL");
	BAD("--symbol needs a value", "export", "--db", "x.db", "--symbol");

	/* EXPORT_MAX_SYMBOLS is fine, one more is not. */
	argv[argc++] = (char *)"publisher";
	argv[argc++] = (char *)"export";
	argv[argc++] = (char *)"--db";
	argv[argc++] = (char *)"x.db";
	for (i = 0; i <= EXPORT_MAX_SYMBOLS; i++) {
		snprintf(names[i], sizeof names[i], "S%d", i);
		argv[argc++] = (char *)"--symbol";
		argv[argc++] = names[i];
	}
	assert_int_equal(cli_parse(argc - 2, argv, &cli, err, sizeof err), 0);
	assert_int_equal(cli.export.symbol_count, EXPORT_MAX_SYMBOLS);
	assert_int_equal(cli_parse(argc, argv, &cli, err, sizeof err), -1);
	assert_string_equal(err, "--symbol given more than 64 times; leave it "
	                         "out to export every symbol");
}

static void
test_retain(void **state)
{
	const int64_t s = 1000000;

	OK("serve", "--retain-age", "7d");
	assert_int_equal(cli.store.retain_age_us, 7 * (86400 * s));
	assert_int_equal(cli.store.retain_rows, 0);
	OK("serve", "--retain-age=90s");
	assert_int_equal(cli.store.retain_age_us, 90 * s);
	OK("serve", "--retain-age", "30m");
	assert_int_equal(cli.store.retain_age_us, 30 * 60 * s);
	OK("serve", "--retain-age", "12h", "--retain-rows", "5000000");
	assert_int_equal(cli.store.retain_age_us, 12 * 3600 * s);
	assert_int_equal(cli.store.retain_rows, 5000000);
	OK("serve", "--retain-rows=1");
	assert_int_equal(cli.store.retain_rows, 1);
	assert_int_equal(cli.store.retain_age_us, 0);
	/* the largest of each */
	OK("serve", "--retain-age", "36500d", "--retain-rows",
	   "1000000000000000");
	assert_int_equal(cli.store.retain_age_us, 36500 * (86400 * s));
	assert_int_equal(cli.store.retain_rows, 1000000000000000ull);
	/* replay takes them too: a long replay can fill a disk */
	OK("replay", "t.csv", "--retain-rows", "10");
	assert_int_equal(cli.store.retain_rows, 10);

	BAD_EXACT("--retain-age '7': expected a whole number with a unit s, "
	          "m, h or d (e.g. 7d or 12h), up to 36500d",
	          "serve", "--retain-age", "7");
	BAD("--retain-age '7w'", "serve", "--retain-age", "7w");
	BAD("--retain-age '0d'", "serve", "--retain-age", "0d");
	BAD("--retain-age '-1d'", "serve", "--retain-age", "-1d");
	BAD("--retain-age '1.5h'", "serve", "--retain-age", "1.5h");
	BAD("--retain-age 'd'", "serve", "--retain-age", "d");
	BAD("--retain-age '7D'", "serve", "--retain-age", "7D");
	BAD("--retain-age '36501d'", "serve", "--retain-age", "36501d");
	BAD("--retain-age '99999999999999999999s'", "serve", "--retain-age",
	    "99999999999999999999s");
	BAD_EXACT("--retain-rows '0': must be a whole number of ticks from 1 "
	          "to 1000000000000000 (leave it out to keep every tick)",
	          "serve", "--retain-rows", "0");
	BAD("--retain-rows '1e6'", "serve", "--retain-rows", "1e6");
	BAD("--retain-rows '10M'", "serve", "--retain-rows", "10M");
	BAD("--retain-rows '1000000000000001'", "serve", "--retain-rows",
	    "1000000000000001");
	BAD_EXACT("--retain-age needs a value", "serve", "--retain-age");
	BAD_EXACT("--retain-rows does not apply to 'export'", "export", "--db",
	          "x.db", "--retain-rows", "5");
	BAD("did you mean --retain-age?", "serve", "--retain-ages", "7d");
}

static void
test_security_options(void **state)
{
	OK("serve", "--auth-secret", "/etc/publisher/jwt.key", "--allow-origin",
	   "https://app.example", "--allow-origin=http://127.0.0.1:8080",
	   "--allow-origin", "https://[::1]:8443", "--tls-cert", "c.pem",
	   "--tls-key=k.pem", "--max-connections", "2",
	   "--max-connections-per-ip=1", "--handshake-timeout-secs", "3");
	assert_string_equal(cli.server.auth_secret, "/etc/publisher/jwt.key");
	assert_int_equal(cli.server.allow_origin_count, 3);
	assert_string_equal(cli.server.allow_origins[0], "https://app.example");
	assert_string_equal(cli.server.allow_origins[1],
	                    "http://127.0.0.1:8080");
	assert_string_equal(cli.server.allow_origins[2], "https://[::1]:8443");
	assert_string_equal(cli.server.tls_cert, "c.pem");
	assert_string_equal(cli.server.tls_key, "k.pem");
	assert_int_equal(cli.server.max_connections, 2);
	assert_int_equal(cli.server.max_connections_per_ip, 1);
	assert_int_equal(cli.server.handshake_secs, 3);
	/* replay serves too */
	OK("replay", "f.jsonl", "--auth-secret", "k", "--tls-cert", "c",
	   "--tls-key", "k");
	assert_string_equal(cli.server.auth_secret, "k");

	/* Origins are what a browser sends: scheme, host, optional port. */
	BAD_EXACT("--allow-origin 'https://app.example/': expected an origin "
	          "like https://example.com or http://127.0.0.1:8080 (scheme, "
	          "host, optional port, no path)",
	          "serve", "--allow-origin", "https://app.example/");
	BAD("--allow-origin 'app.example'", "serve", "--allow-origin",
	    "app.example");
	BAD("--allow-origin 'ftp://app.example'", "serve", "--allow-origin",
	    "ftp://app.example");
	BAD("--allow-origin 'https://'", "serve", "--allow-origin", "https://");
	BAD("--allow-origin 'https://a.example:0'", "serve", "--allow-origin",
	    "https://a.example:0");
	BAD("--allow-origin 'https://a.example:x'", "serve", "--allow-origin",
	    "https://a.example:x");
	BAD("--allow-origin 'https://[]'", "serve", "--allow-origin",
	    "https://[]");
	BAD("--allow-origin 'https://[::1'", "serve", "--allow-origin",
	    "https://[::1");
	BAD("--allow-origin '*'", "serve", "--allow-origin", "*");
	BAD("--allow-origin 'null'", "serve", "--allow-origin", "null");

	/* Half a TLS setup is refused, not served as plain HTTP. */
	BAD_EXACT("--tls-cert needs --tls-key FILE as well", "serve",
	          "--tls-cert", "c.pem");
	BAD_EXACT("--tls-key needs --tls-cert FILE as well", "serve",
	          "--tls-key", "k.pem");

	BAD_EXACT("--max-connections '0': must be a whole number from 1 to "
	          "1000000",
	          "serve", "--max-connections", "0");
	BAD("--max-connections '10k'", "serve", "--max-connections", "10k");
	/* 0 is "no cap" (the default), stated explicitly */
	OK("serve", "--max-connections-per-ip", "0");
	assert_int_equal(cli.server.max_connections_per_ip, 0);
	BAD("--max-connections-per-ip '-1'", "serve",
	    "--max-connections-per-ip", "-1");
	OK("serve", "--trusted-proxy", "10.0.0.2", "--trusted-proxy=::1");
	assert_int_equal(cli.server.trusted_proxy_count, 2);
	assert_string_equal(cli.server.trusted_proxies[1], "::1");
	BAD_EXACT("--trusted-proxy 'proxy.example': expected an IPv4 or IPv6 "
	          "address, e.g. 10.0.0.2 or ::1",
	          "serve", "--trusted-proxy", "proxy.example");
	BAD("--trusted-proxy '10.0.0.0/8'", "serve", "--trusted-proxy",
	    "10.0.0.0/8");
	BAD("--trusted-proxy does not apply to 'export'", "export", "--db", "x",
	    "--trusted-proxy", "::1");
	BAD("--max-connections-per-ip '1000001'", "serve",
	    "--max-connections-per-ip", "1000001");
	BAD_EXACT("--handshake-timeout-secs '0': must be a whole number of "
	          "seconds from 1 to 300",
	          "serve", "--handshake-timeout-secs", "0");
	BAD("--handshake-timeout-secs '301'", "serve",
	    "--handshake-timeout-secs", "301");
	BAD_EXACT("--auth-secret needs a value", "serve", "--auth-secret");
	BAD_EXACT("--auth-secret does not apply to 'export'", "export", "--db",
	          "x.db", "--auth-secret", "k");
	BAD("did you mean --allow-origin?", "serve", "--allow-orgin",
	    "https://a.example");
}

/* More than SERVER_MAX_ORIGINS origins are refused with the count. */
static void
test_too_many_origins(void **state)
{
	char *argv[2 + 2 * (SERVER_MAX_ORIGINS + 1)];
	char origins[SERVER_MAX_ORIGINS + 1][40];
	int argc = 0, i;

	argv[argc++] = (char *)"publisher";
	argv[argc++] = (char *)"serve";
	for (i = 0; i <= SERVER_MAX_ORIGINS; i++) {
		snprintf(origins[i], sizeof origins[i], "https://h%d.example",
		         i);
		argv[argc++] = (char *)"--allow-origin";
		argv[argc++] = origins[i];
	}
	assert_int_equal(cli_parse(argc - 2, argv, &cli, err, sizeof err), 0);
	assert_int_equal(cli.server.allow_origin_count, SERVER_MAX_ORIGINS);
	assert_int_equal(cli_parse(argc, argv, &cli, err, sizeof err), -1);
	assert_string_equal(err, "--allow-origin given more than 32 times");
}

static void
test_help_text(void **state)
{
	static const char *const must[] = {
	        "publisher serve",
	        "publisher replay FILE",
	        "publisher export",
	        "--help",
	        "--version",
	        "--listen HOST:PORT",
	        "127.0.0.1:8080",
	        "--db FILE",
	        "data/ticks.db",
	        "--web DIR",
	        "--feed SPEC",
	        "--log-level LEVEL",
	        "--port-file FILE",
	        "--heartbeat-ms N",
	        "5000",
	        "--ping-secs N",
	        "--max-message-bytes N",
	        "65536",
	        "--max-symbols N",
	        "10000",
	        "--rate-limit",
	        "--rate-burst",
	        "--retain-age AGE",
	        "--retain-rows N",
	        "--auth-secret FILE",
	        "--allow-origin ORIGIN",
	        "--tls-cert FILE",
	        "--tls-key FILE",
	        "--max-connections N",
	        "--max-connections-per-ip N",
	        "--handshake-timeout-secs N",
	        "--speed X|max",
	        "--loop",
	        "--symbol S",
	        "--from T",
	        "--to T",
	        "--format csv|jsonl",
	        "-o, --output FILE",
	        "synthetic[:symbols=N,rate=R,seed=S]",
	        "replay:FILE[,speed=X|max][,loop]",
	        "tcp:HOST:PORT",
	        "stdin",
	        "none",
	        "2024-03-01T14:30:00Z",
	        "Exit status",
	};
	char *text = NULL, *line;
	size_t len = 0, i;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	cli_print_help(f, CLI_HELP);
	fclose(f);
	for (i = 0; i < sizeof must / sizeof must[0]; i++)
		if (!strstr(text, must[i]))
			fail_msg("help lacks '%s'", must[i]);
	/* fits an 80-column terminal, no tabs, ends with a newline */
	for (line = text; *line;) {
		char *nl = strchr(line, '\n');

		assert_non_null(nl);
		if (nl - line > 79)
			fail_msg("help line too long: %.*s", (int)(nl - line),
			         line);
		line = nl + 1;
	}
	assert_null(strchr(text, '\t'));
	free(text);
}

/* Write text to a fresh temporary file; returns its path (static). */
static const char *
config_file(const char *text)
{
	static char path[64];
	FILE *f;
	int fd;

	snprintf(path, sizeof path, "/tmp/test_cli_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* --session PATTERN=ZONE@HH:MM: repeatable, in serve, replay and import and
 * in a config file; a bad pattern, zone or time is refused naming it. */
static void
test_sessions(void **state)
{
	const char *path;

	OK("serve");
	assert_int_equal(cli.sessions.count, 0);
	OK("serve", "--session", "AAPL=America/New_York@09:30", "--session",
	   "EUR/*=America/New_York@17:00");
	assert_int_equal(cli.sessions.count, 2);
	assert_string_equal(cli.sessions.specs[1],
	                    "EUR/*=America/New_York@17:00");
	OK("replay", "t.csv", "--session=*=UTC@00:00");
	assert_int_equal(cli.sessions.count, 1);
	OK("import", "a.csv", "--db", "x.db", "--session",
	   "*=Europe/London@08:00");
	assert_int_equal(cli.sessions.count, 1);
	BAD("--session 'AAPL=America/New_Yrok@09:30': unknown time zone "
	    "'America/New_Yrok'",
	    "serve", "--session", "AAPL=America/New_Yrok@09:30");
	BAD("--session 'AAPL=America/New_York@24:00': the start time '24:00' "
	    "is not HH:MM",
	    "serve", "--session", "AAPL=America/New_York@24:00");
	BAD("expected PATTERN=ZONE@HH:MM", "serve", "--session", "AAPL");
	BAD("--session does not apply to 'export'", "export", "--db", "x.db",
	    "--session", "*=UTC@00:00");

	path = config_file("session AAPL=America/New_York@09:30\n"
	                   "session *=Asia/Tokyo@09:00\n");
	OK("serve", "--config", path);
	assert_int_equal(cli.sessions.count, 2);
	assert_string_equal(cli.sessions.specs[1], "*=Asia/Tokyo@09:00");
	/* flags replace the file's list */
	OK("serve", "--config", path, "--session", "X=UTC@00:00");
	assert_int_equal(cli.sessions.count, 1);
	unlink(path);
	path = config_file("session AAPL=America/New_York@9:61\n");
	BAD("line 1: session 'AAPL=America/New_York@9:61'", "serve",
	    "--config", path);
	unlink(path);
}

/* A config file sets what the flags would, line by line; flags override
 * it; a list given by flags replaces the file's. */
static void
test_config_file(void **state)
{
	const char *path = config_file("# an installed server\n"
	                               "\n"
	                               "listen 0.0.0.0:9000\n"
	                               "  db   /var/lib/publisher/ticks.db  \n"
	                               "web \"/usr/share/publisher/web\"\n"
	                               "heartbeat-ms 250\r\n"
	                               "compression off\n"
	                               "store-backlog 5000\n"
	                               "retain-age 30d\n"
	                               "allow-origin https://a.example\n"
	                               "allow-origin https://b.example\n"
	                               "max-connections-per-ip 1000\n");

	OK("serve", "--config", path);
	assert_string_equal(cli.node.config, path);
	assert_string_equal(cli.server.listen_host, "0.0.0.0");
	assert_int_equal(cli.server.listen_port, 9000);
	assert_string_equal(cli.store.path, "/var/lib/publisher/ticks.db");
	assert_string_equal(cli.server.web, "/usr/share/publisher/web");
	assert_int_equal(cli.server.heartbeat_ms, 250);
	assert_false(cli.server.compression);
	assert_int_equal(cli.store.queue_capacity, 5000);
	assert_int_equal(cli.store.retain_age_us, 30 * 86400 * 1000000LL);
	assert_int_equal(cli.server.allow_origin_count, 2);
	assert_string_equal(cli.server.allow_origins[1], "https://b.example");
	assert_int_equal(cli.server.max_connections_per_ip, 1000);
	/* what the file does not name keeps its default */
	assert_int_equal(cli.server.ping_secs, 20);

	/* Flags win, wherever --config stands; a list is replaced. */
	OK("serve", "--listen", "127.0.0.1:0",
	   "--config="
	   "/dev/null");
	OK("serve", "--heartbeat-ms", "5000", "--config", path,
	   "--allow-origin", "https://c.example", "--db", "none");
	assert_int_equal(cli.server.heartbeat_ms, 5000);
	assert_int_equal(cli.server.listen_port, 9000);
	assert_string_equal(cli.store.path, "none");
	assert_int_equal(cli.server.allow_origin_count, 1);
	assert_string_equal(cli.server.allow_origins[0], "https://c.example");

	/* replay reads the same file */
	OK("replay", "t.csv", "--config", path, "--speed", "max");
	assert_int_equal(cli.server.listen_port, 9000);
	unlink(path);
}

static void
test_config_errors(void **state)
{
	const char *path;
	char want[300];

	BAD("config '/nonexistent/p.conf': No such file or directory", "serve",
	    "--config", "/nonexistent/p.conf");
	BAD_EXACT("--config needs a value", "serve", "--config");
	BAD_EXACT("--config does not apply to 'export'", "export", "--db",
	          "x.db", "--config", "/dev/null");

	path = config_file("listen 127.0.0.1:1\nheartbeat-ms 99\n");
	snprintf(want, sizeof want,
	         "config '%s' line 2: heartbeat-ms '99': must be a whole "
	         "number of milliseconds from 100 to 3600000",
	         path);
	BAD_EXACT(want, "serve", "--config", path);
	unlink(path);

	path = config_file("# ok\nlisen 127.0.0.1:1\n");
	snprintf(want, sizeof want,
	         "config '%s' line 2: unknown setting 'lisen' (did you mean "
	         "listen?)",
	         path);
	BAD_EXACT(want, "serve", "--config", path);
	unlink(path);

	path = config_file("--listen 127.0.0.1:1\n");
	BAD("line 1: '--listen': write the name without its dashes", "serve",
	    "--config", path);
	unlink(path);

	path = config_file("speed 2\n");
	BAD("line 1: 'speed' does not apply to 'serve'", "serve", "--config",
	    path);
	unlink(path);

	path = config_file("db\n");
	BAD("line 1: db needs a value", "serve", "--config", path);
	unlink(path);

	path = config_file("loop yes\n");
	BAD("line 1: loop takes no value", "replay", "t.csv", "--config", path);
	unlink(path);

	path = config_file("config /etc/other.conf\n");
	BAD("a config file cannot name another", "serve", "--config", path);
	unlink(path);

	/* what the file gives is checked as a flag is: TLS needs both */
	path = config_file("tls-cert c.pem\n");
	BAD_EXACT("--tls-cert needs --tls-key FILE as well", "serve",
	          "--config", path);
	unlink(path);
}

/* Each command's help lists its own options and no others. */
static void
test_command_help(void **state)
{
	static const struct {
		enum cli_command command;
		const char *has[4], *lacks[4];
	} cases[] = {
	        {CLI_SERVE,
	         {"--listen HOST:PORT", "--feed SPEC", "--config FILE",
	          "Feed SPEC"},
	         {"--symbol", "--speed", "--format", "-o, --output"}},
	        {CLI_REPLAY,
	         {"--speed X|max", "--loop", "--listen HOST:PORT",
	          "--config FILE"},
	         {"--feed SPEC", "--symbol", "--format", "-o, --output"}},
	        {CLI_EXPORT,
	         {"--symbol S", "--format csv|jsonl", "-o, --output FILE",
	          "Times T"},
	         {"--listen", "--speed", "--config", "--feed"}},
	        {CLI_IMPORT,
	         {"publisher import FILE... --db FILE", "--db FILE",
	          "--log-level LEVEL", "Import FILE"},
	         {"--listen", "--speed", "--symbol", "Feed SPEC"}},
	};
	size_t i, k;

	OK("serve", "--help");
	assert_int_equal(cli.help_for, CLI_SERVE);
	OK("export", "--db", "x", "-h");
	assert_int_equal(cli.help_for, CLI_EXPORT);
	OK("--help");
	assert_int_equal(cli.help_for, CLI_HELP);
	OK("help");
	assert_int_equal(cli.help_for, CLI_HELP);

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);

		assert_non_null(f);
		cli_print_help(f, cases[i].command);
		fclose(f);
		for (k = 0; k < 4; k++) {
			if (!strstr(text, cases[i].has[k]))
				fail_msg("help %zu lacks '%s'", i,
				         cases[i].has[k]);
			if (strstr(text, cases[i].lacks[k]))
				fail_msg("help %zu has '%s'", i,
				         cases[i].lacks[k]);
		}
		free(text);
	}
}

/* Scale-out roles: --role, --redis, --redis-prefix. */
static void
test_roles(void **state)
{
	OK("serve");
	assert_int_equal(cli.node.role, ROLE_STANDALONE);
	assert_string_equal(cli.node.redis_host, "");
	assert_null(cli.node.redis_prefix);

	OK("serve", "--role", "standalone");
	assert_int_equal(cli.node.role, ROLE_STANDALONE);

	OK("serve", "--role", "ingest", "--redis", "127.0.0.1:6379", "--feed",
	   "stdin", "--db", "x.db");
	assert_int_equal(cli.node.role, ROLE_INGEST);
	assert_string_equal(cli.node.redis_host, "127.0.0.1");
	assert_int_equal(cli.node.redis_port, 6379);
	assert_string_equal(cli.node.feed_spec, "stdin");
	assert_string_equal(cli.store.path, "x.db");
	assert_null(cli.node.redis_prefix);

	OK("serve", "--role=edge", "--redis=redis.example:7000",
	   "--redis-prefix", "mkt:eu/1");
	assert_int_equal(cli.node.role, ROLE_EDGE);
	assert_string_equal(cli.node.redis_host, "redis.example");
	assert_int_equal(cli.node.redis_port, 7000);
	assert_string_equal(cli.node.redis_prefix, "mkt:eu/1");
	/* An edge has no feed, and no store unless given --db FILE. */
	assert_string_equal(cli.node.feed_spec, "none");
	assert_string_equal(cli.store.path, "none");

	OK("serve", "--role", "edge", "--redis", "h:1", "--db", "e.db");
	assert_string_equal(cli.store.path, "e.db");

	OK("serve", "--role", "edge", "--redis", "[::1]:6380", "--db", "none");
	assert_string_equal(cli.node.redis_host, "::1");
	assert_int_equal(cli.node.redis_port, 6380);

	OK("replay", "t.jsonl", "--role", "ingest", "--redis", "h:1");
	assert_int_equal(cli.node.role, ROLE_INGEST);

	BAD("--role 'leader'", "serve", "--role", "leader");
	BAD("--redis HOST:PORT", "serve", "--role", "ingest");
	BAD("--redis HOST:PORT", "serve", "--role", "edge");
	BAD("--redis needs --role", "serve", "--redis", "127.0.0.1:6379");
	BAD("--redis-prefix needs --role", "serve", "--redis-prefix", "p");
	BAD("--redis 'nohost'", "serve", "--role", "edge", "--redis", "nohost");
	BAD("--redis ':6379'", "serve", "--role", "edge", "--redis", ":6379");
	BAD("port must be 1-65535", "serve", "--role", "edge", "--redis",
	    "h:0");
	BAD("port must be 1-65535", "serve", "--role", "edge", "--redis",
	    "h:65536");
	BAD("port must be 1-65535", "serve", "--role", "edge", "--redis",
	    "h:x");
	BAD("brackets", "serve", "--role", "edge", "--redis", "::1:6379");
	BAD("--redis-prefix 'a b'", "serve", "--role", "edge", "--redis", "h:1",
	    "--redis-prefix", "a b");
	BAD("--redis-prefix", "serve", "--role", "edge", "--redis", "h:1",
	    "--redis-prefix",
	    "0123456789012345678901234567890123456789012345678901234567890123"
	    "4");
	BAD("--feed does not apply to --role edge", "serve", "--role", "edge",
	    "--redis", "h:1", "--feed", "synthetic");
	BAD("--feed does not apply to --role edge", "serve", "--role", "edge",
	    "--redis", "h:1", "--feed", "none");
	BAD("replay cannot run as an edge", "replay", "t.jsonl", "--role",
	    "edge", "--redis", "h:1");
	BAD("does not apply to 'export'", "export", "--db", "x.db", "--role",
	    "ingest");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_serve_defaults),
	        cmocka_unit_test(test_serve_every_option),
	        cmocka_unit_test(test_serve_equals_form),
	        cmocka_unit_test(test_log_levels),
	        cmocka_unit_test(test_listen),
	        cmocka_unit_test(test_numeric_limits),
	        cmocka_unit_test(test_missing_values),
	        cmocka_unit_test(test_unknown_options),
	        cmocka_unit_test(test_commands),
	        cmocka_unit_test(test_replay),
	        cmocka_unit_test(test_replay_long_file),
	        cmocka_unit_test(test_export),
	        cmocka_unit_test(test_export_errors),
	        cmocka_unit_test(test_import),
	        cmocka_unit_test(test_retain),
	        cmocka_unit_test(test_security_options),
	        cmocka_unit_test(test_too_many_origins),
	        cmocka_unit_test(test_help_text),
	        cmocka_unit_test(test_roles),
	        cmocka_unit_test(test_sessions),
	        cmocka_unit_test(test_config_file),
	        cmocka_unit_test(test_config_errors),
	        cmocka_unit_test(test_command_help),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests for feeds/feed_tcp.c, with real sockets on loopback: two
 * producers at once (one JSONL, one CSV) arrive complete and in order
 * through a small queue; bad lines are answered "ERR <line> <reason>" on
 * their own connection; a producer that disconnects mid-line loses only
 * that line; the bound port is reported; stop is prompt; a port in use is
 * refused with the cause. Holding a slot: producers silent for idle=SECS,
 * or trickling bytes without ever ending a line, are told and closed, and
 * their slots go to new producers. Formats: a garbage first line does not
 * decide a connection's format, the first valid one does. secret=FILE: a
 * producer whose first line is not the right "AUTH <secret>" is refused.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "feed.h"
#include "log.h"

#include "support/timing.h"

/* A deadlock guard, not a timing assertion. */
#define DEADLINE_MS 10000

/* A tcp feed on a free loopback port, with the spec's options (after
 * "tcp:127.0.0.1:0"; "" for none). */
static struct feed *
start_feed_with(struct tick_queue *q, const char *options, int *port)
{
	char spec[512], err[256] = "";
	struct feed_status st;
	struct feed *f;

	snprintf(spec, sizeof spec, "tcp:127.0.0.1:0%s", options);
	f = feed_create(spec, q, err, sizeof err);
	if (!f)
		fail_msg("feed '%s' refused: %s", spec, err);
	if (feed_start(f, err, sizeof err) != 0)
		fail_msg("tcp feed did not start: %s", err);
	feed_get_status(f, &st);
	assert_string_equal(st.kind, "tcp");
	assert_true(st.running);
	assert_true(st.listen_port > 0);
	*port = st.listen_port;
	return f;
}

static struct feed *
start_feed(struct tick_queue *q, int *port)
{
	return start_feed_with(q, "", port);
}

static int
connect_to(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port)};
	struct timeval tv = {DEADLINE_MS / 1000, 0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

static void
send_all(int fd, const char *s, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n > 0);
		s += n;
		len -= (size_t)n;
	}
}

static void
send_str(int fd, const char *s)
{
	send_all(fd, s, strlen(s));
}

/* Everything the feed answers until it closes the connection by itself,
 * NUL-terminated; fd is closed. */
static char *
read_until_closed(int fd)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	ssize_t n;

	assert_non_null(buf);
	while ((n = recv(fd, buf + len, cap - len - 1, 0)) > 0) {
		len += (size_t)n;
		if (cap - len < 2) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	assert_int_equal(n, 0); /* closed by the feed, not timed out */
	buf[len] = '\0';
	close(fd);
	return buf;
}

/* Everything the feed answers until it closes the connection after our
 * own shutdown. */
static char *
read_replies(int fd)
{
	shutdown(fd, SHUT_WR);
	return read_until_closed(fd);
}

/* Drain until n ticks are in out (which holds at least n + 64). */
static size_t
drain_until(struct tick_queue *q, struct tick *out, size_t have, size_t n)
{
	int64_t give_up = clock_mono_ns() + DEADLINE_MS * 1000000LL;

	while (have < n && clock_mono_ns() < give_up) {
		size_t k = tick_queue_drain(q, out + have, n + 64 - have);

		have += k;
		if (k == 0)
			timing_sleep_us(200);
	}
	if (have < n)
		fail_msg("only %zu of %zu ticks arrived", have, n);
	return have;
}

static uint64_t
bad_lines(struct feed *f)
{
	struct feed_status st;

	feed_get_status(f, &st);
	return st.bad_lines;
}

/* ---------------------------------------------------------- producers */

#define PRODUCER_TICKS 20000

struct producer {
	int port;
	bool csv;
};

static void *
produce(void *arg)
{
	const struct producer *p = arg;
	int fd = connect_to(p->port);
	char *text = malloc((size_t)PRODUCER_TICKS * 64 + 64);
	size_t len = 0;
	int i;

	if (!text)
		return (void *)1;
	if (p->csv)
		len += (size_t)sprintf(text, "ts,symbol,bid,ask\n");
	for (i = 0; i < PRODUCER_TICKS; i++) {
		if (p->csv)
			len += (size_t)sprintf(text + len,
			                       "%d,CSVP,%d.25,%d.5\n", 1000 + i,
			                       i, i);
		else
			len += (size_t)sprintf(
			        text + len,
			        "{\"ts\":%d,\"symbol\":\"JSONP\","
			        "\"last\":%d.125,\"last_size\":"
			        "%d}\n",
			        1000 + i, i, i + 1);
	}
	/* In pieces that cut lines anywhere, as TCP may. */
	for (i = 0; (size_t)i < len; i += 1000) {
		size_t k = len - (size_t)i < 1000 ? len - (size_t)i : 1000;

		if (send(fd, text + i, k, MSG_NOSIGNAL) != (ssize_t)k) {
			free(text);
			close(fd);
			return (void *)1;
		}
	}
	free(text);
	close(fd);
	return NULL;
}

static void
test_two_producers_arrive_complete(void **state)
{
	/* A queue far smaller than what is sent: producers are slowed by
	 * back-pressure, never dropped. */
	struct tick_queue *q = tick_queue_create(128, NULL, NULL);
	struct tick *got = calloc(2 * PRODUCER_TICKS + 64, sizeof *got);
	struct producer a = {0, false}, b = {0, true};
	pthread_t ta, tb;
	struct feed_status st;
	struct feed *f;
	size_t i, n;
	int next_j = 0, next_c = 0, port;
	void *ra, *rb;

	assert_non_null(got);
	f = start_feed(q, &port);
	a.port = b.port = port;
	assert_int_equal(pthread_create(&ta, NULL, produce, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, produce, &b), 0);
	/* Let the producers fill the queue and their sockets first. */
	timing_sleep_us(100000);
	n = drain_until(q, got, 0, 2 * PRODUCER_TICKS);
	pthread_join(ta, &ra);
	pthread_join(tb, &rb);
	assert_null(ra);
	assert_null(rb);
	assert_int_equal(n, 2 * PRODUCER_TICKS);

	/* Complete, each producer's ticks in its own order, exact values. */
	for (i = 0; i < n; i++) {
		const struct tick *t = &got[i];

		if (strcmp(t->symbol, "JSONP") == 0) {
			assert_int_equal(t->ts, 1000 + next_j);
			assert_int_equal(t->value[FIELD_LAST].mantissa,
			                 (int64_t)next_j * 1000 + 125);
			assert_int_equal(t->value[FIELD_LAST].scale, 3);
			assert_int_equal(t->value[FIELD_LAST_SIZE].mantissa,
			                 next_j + 1);
			next_j++;
		} else {
			assert_string_equal(t->symbol, "CSVP");
			assert_int_equal(t->ts, 1000 + next_c);
			assert_int_equal(t->value[FIELD_BID].mantissa,
			                 (int64_t)next_c * 100 + 25);
			assert_true(tick_has(t, FIELD_ASK));
			assert_false(tick_has(t, FIELD_LAST));
			next_c++;
		}
	}
	assert_int_equal(next_j, PRODUCER_TICKS);
	assert_int_equal(next_c, PRODUCER_TICKS);
	feed_get_status(f, &st);
	assert_int_equal(st.ticks, 2 * PRODUCER_TICKS);
	assert_int_equal(st.bad_lines, 0);

	tick_queue_close(q);
	feed_destroy(f);
	tick_queue_destroy(q);
	free(got);
}

static void
test_bad_lines_are_answered_with_their_number(void **state)
{
	struct tick_queue *q = tick_queue_create(256, NULL, NULL);
	struct tick got[64 + 8];
	struct feed *f;
	char *replies, *longline;
	int port, js, cs;
	size_t n;

	f = start_feed(q, &port);
	js = connect_to(port);
	cs = connect_to(port);
	send_str(js, "{\"ts\":1,\"symbol\":\"E\",\"bid\":1}\n"     /* 1 */
	             "{\"ts\":2,\"symbol\":\"E\",\"bid\":\"x\"}\n" /* 2 */
	             "\n"                                          /* 3 */
	             "not json\r\n"                                /* 4 */
	             "{\"ts\":5,\"symbol\":\"E\",\"bid\":5}\n");   /* 5 */
	/* A second producer's numbers are its own. */
	send_str(cs, "ts,symbol,bid\n"     /* 1 */
	             "1,C,1.5\n"           /* 2 */
	             "2,C\n"               /* 3 */
	             "3,C,\x01\x1b[2J\n"); /* 4: control bytes in the reply */
	/* A line over 64 KiB, then a good one. */
	longline = malloc(70000);
	assert_non_null(longline);
	memset(longline, 'x', 69999);
	longline[69999] = '\0';
	send_str(cs, longline);
	send_str(cs, "\n4,C,2.5\n"); /* 5 (too long), 6 */
	free(longline);

	replies = read_replies(js);
	print_message("jsonl replies: %s", replies);
	assert_non_null(strstr(replies, "ERR 2 field 'bid'"));
	assert_non_null(strstr(replies, "ERR 4 expected a JSON object"));
	assert_null(strstr(replies, "ERR 1 "));
	assert_null(strstr(replies, "ERR 3 "));
	assert_null(strstr(replies, "ERR 5 "));
	free(replies);

	replies = read_replies(cs);
	print_message("csv replies: %s", replies);
	assert_non_null(strstr(replies, "ERR 3 CSV row has 2 cells; the "
	                                "header has 3\n"));
	assert_non_null(strstr(replies, "ERR 4 "));
	assert_non_null(strstr(replies, "ERR 5 line is longer than 65536 "
	                                "bytes\n"));
	/* One reply per bad line, one line per reply. */
	assert_null(strchr(replies, '\x1b'));
	assert_null(strchr(replies, '\r'));
	n = 0;
	for (char *p = replies; (p = strchr(p, '\n')) != NULL; p++)
		n++;
	assert_int_equal(n, 3);
	free(replies);

	n = drain_until(q, got, 0, 4);
	assert_int_equal(n, 4);
	assert_int_equal(bad_lines(f), 5);
	tick_queue_close(q);
	feed_destroy(f);
	tick_queue_destroy(q);
}

static void
test_mid_line_disconnect_loses_only_that_line(void **state)
{
	struct tick_queue *q = tick_queue_create(256, NULL, NULL);
	struct tick got[64 + 8];
	struct feed_status st;
	struct feed *f;
	int port, a, b;
	size_t n;

	f = start_feed(q, &port);
	a = connect_to(port);
	b = connect_to(port);
	send_str(b, "{\"ts\":1,\"symbol\":\"B\",\"bid\":1}\n{\"ts\":2,");
	send_str(a, "{\"ts\":1,\"symbol\":\"A\",\"bid\":1}\n"
	            "{\"ts\":2,\"symbol\":\"A\",\"bid\":2}\n"
	            "{\"ts\":3,\"symbol\":\"A\",\"b");
	n = drain_until(q, got, 0, 3);
	close(a); /* mid-line */
	/* B, with half a line pending too, is not disturbed by A going. */
	send_str(b, "\"symbol\":\"B\",\"bid\":2}\n");
	n = drain_until(q, got, n, 4);
	assert_int_equal(n, 4);
	assert_string_equal(got[3].symbol, "B");
	assert_int_equal(got[3].ts, 2);
	/* A's partial line counts as one bad line, nothing else is lost. */
	for (int i = 0; i < 1000 && bad_lines(f) < 1; i++)
		timing_sleep_us(1000);
	assert_int_equal(bad_lines(f), 1);
	feed_get_status(f, &st);
	assert_int_equal(st.ticks, 4);
	assert_int_equal(st.connections, 1);
	close(b);
	tick_queue_close(q);
	feed_destroy(f);
	tick_queue_destroy(q);
}

static void
test_port_is_logged_and_stop_is_prompt(void **state)
{
	struct tick_queue *q = tick_queue_create(16, NULL, NULL);
	char path[] = "/tmp/test_feed_tcp.XXXXXX", want[64], log[4096] = "";
	struct feed_status st;
	struct feed *f;
	int saved, fd, port, c;
	int64_t t0;
	ssize_t len;

	/* The log line a test harness reads the port from. */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	f = start_feed(q, &port);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	len = pread(fd, log, sizeof log - 1, 0);
	assert_true(len > 0);
	close(fd);
	unlink(path);
	snprintf(want, sizeof want, "tcp feed listening on 127.0.0.1:%d\n",
	         port);
	assert_non_null(strstr(log, want));

	/* An idle producer connected: stop still returns at once. */
	c = connect_to(port);
	for (int i = 0; i < 1000; i++) {
		feed_get_status(f, &st);
		if (st.connections == 1)
			break;
		timing_sleep_us(1000);
	}
	assert_int_equal(st.connections, 1);
	t0 = clock_mono_ns();
	feed_stop(f);
	assert_true(clock_mono_ns() - t0 < 100000000LL);
	feed_get_status(f, &st);
	assert_false(st.running);
	assert_int_equal(st.connections, 0);
	close(c);
	feed_destroy(f);
	tick_queue_destroy(q);
}

static void
test_port_in_use_is_refused(void **state)
{
	struct tick_queue *q = tick_queue_create(16, NULL, NULL);
	char spec[64], err[256] = "", want[96];
	struct feed *f, *g;
	int port;

	f = start_feed(q, &port);
	snprintf(spec, sizeof spec, "tcp:127.0.0.1:%d", port);
	g = feed_create(spec, q, err, sizeof err);
	assert_non_null(g);
	assert_int_equal(feed_start(g, err, sizeof err), -1);
	snprintf(want, sizeof want,
	         "cannot listen on 127.0.0.1:%d: Address already in use", port);
	assert_string_equal(err, want);
	feed_destroy(g);

	g = feed_create("tcp:no-such-host.invalid:0", q, err, sizeof err);
	assert_non_null(g);
	assert_int_equal(feed_start(g, err, sizeof err), -1);
	assert_non_null(strstr(err, "cannot resolve 'no-such-host.invalid'"));
	feed_destroy(g);
	feed_destroy(f);
	tick_queue_destroy(q);
}

/* ------------------------------------------------------- holding a slot */

static unsigned
connections(struct feed *f)
{
	struct feed_status st;

	feed_get_status(f, &st);
	return st.connections;
}

/* Wait (a deadlock guard, not a timing) until the feed counts n producers. */
static void
wait_connections(struct feed *f, unsigned n)
{
	int64_t give_up = clock_mono_ns() + DEADLINE_MS * 1000000LL;

	while (connections(f) != n && clock_mono_ns() < give_up)
		timing_sleep_us(1000);
	if (connections(f) != n)
		fail_msg("%u producers connected, expected %u", connections(f),
		         n);
}

#define MAX_PRODUCERS 64

static void
test_idle_producers_are_closed_and_free_their_slots(void **state)
{
	struct tick_queue *q = tick_queue_create(64, NULL, NULL);
	struct tick got[64 + 8];
	int idle[MAX_PRODUCERS], port, extra, i;
	struct feed *f;
	char *reply;
	int64_t t0;
	size_t n;

	f = start_feed_with(q, ",idle=1", &port);
	/* Every slot taken by a producer that sends nothing. */
	for (i = 0; i < MAX_PRODUCERS; i++)
		idle[i] = connect_to(port);
	wait_connections(f, MAX_PRODUCERS);
	t0 = clock_mono_ns();
	extra = connect_to(port);
	reply = read_until_closed(extra);
	assert_string_equal(reply, "ERR 0 too many producers connected; try "
	                           "again later\n");
	free(reply);

	/* Each is told why, then closed by the feed. */
	for (i = 0; i < MAX_PRODUCERS; i++) {
		reply = read_until_closed(idle[i]);
		assert_string_equal(reply, "ERR 0 idle for 1 s, closing\n");
		free(reply);
	}
	print_message("64 idle producers closed %.2f s after the slots ran "
	              "out\n",
	              (double)(clock_mono_ns() - t0) / 1e9);
	wait_connections(f, 0);

	/* Their slots are free again: a real producer gets in. */
	extra = connect_to(port);
	send_str(extra, "{\"ts\":1,\"symbol\":\"REAL\",\"bid\":1}\n");
	n = drain_until(q, got, 0, 1);
	assert_string_equal(got[0].symbol, "REAL");
	assert_int_equal(n, 1);
	close(extra);
	tick_queue_close(q);
	feed_destroy(f);
	tick_queue_destroy(q);
}

static void
test_a_trickler_cannot_hold_a_slot(void **state)
{
	struct tick_queue *q = tick_queue_create(64, NULL, NULL);
	struct tick got[64 + 8];
	char replies[256] = "", line[96];
	size_t have = 0, n = 0;
	bool closed = false;
	struct feed *f;
	int port, trickler, steady, i;

	f = start_feed_with(q, ",idle=1", &port);
	trickler = connect_to(port);
	steady = connect_to(port);
	send_str(trickler, "{\"ts\":1,\"symbol\":\"SLOW\",");
	/* 2 s, twice the idle time: the trickler sends a byte every 100 ms
	 * and never a newline; the steady producer a whole line every
	 * 300 ms. Only the trickler is closed. */
	for (i = 0; i < 20; i++) {
		ssize_t k;

		timing_sleep_us(100000);
		if (!closed)
			(void)!send(trickler, " ", 1, MSG_NOSIGNAL);
		if (i % 3 == 2) {
			snprintf(
			        line, sizeof line,
			        "{\"ts\":%d,\"symbol\":\"STEADY\",\"bid\":1}\n",
			        i);
			send_str(steady, line);
			n++;
		}
		while (!closed && (k = recv(trickler, replies + have,
		                            sizeof replies - 1 - have,
		                            MSG_DONTWAIT)) >= 0) {
			if (k == 0)
				closed = true;
			have += (size_t)k;
		}
	}
	replies[have] = '\0';
	assert_true(closed);
	assert_string_equal(replies, "ERR 0 idle for 1 s, closing\n");
	close(trickler);
	/* The steady one is still there, every line of it taken. */
	assert_int_equal(drain_until(q, got, 0, n), n);
	assert_string_equal(got[0].symbol, "STEADY");
	wait_connections(f, 1);
	/* The trickler's unfinished line is its one bad line. */
	assert_int_equal(bad_lines(f), 1);
	close(steady);
	tick_queue_close(q);
	feed_destroy(f);
	tick_queue_destroy(q);
}

static void
test_a_full_queue_is_not_idleness(void **state)
{
	/* A small queue nobody drains for a while: the feed's thread blocks
	 * on it and reads no one. The steady producer's lines wait in its
	 * socket meanwhile; that wait must not count as its silence. */
	struct tick_queue *q = tick_queue_create(16, NULL, NULL);
	struct tick *got = calloc(3000 + 64, sizeof *got);
	char *flood = malloc(2000 * 64), line[96], *replies;
	size_t len = 0, n, want;
	struct feed *f;
	int port, steady, flooder, i;

	assert_non_null(got);
	assert_non_null(flood);
	f = start_feed_with(q, ",idle=1", &port);
	/* Connected first, so it is served before the flooder in a round. */
	steady = connect_to(port);
	send_str(steady, "{\"ts\":0,\"symbol\":\"STEADY\",\"bid\":1}\n");
	wait_connections(f, 1);
	flooder = connect_to(port);
	for (i = 0; i < 2000; i++)
		len += (size_t)sprintf(flood + len,
		                       "{\"ts\":%d,\"symbol\":\"FLOOD\","
		                       "\"bid\":1}\n",
		                       i);
	send_all(flooder, flood, len);
	free(flood);
	/* 1.5 s, more than idle, without draining. */
	for (i = 1; i <= 5; i++) {
		timing_sleep_us(300000);
		snprintf(line, sizeof line,
		         "{\"ts\":%d,\"symbol\":\"STEADY\",\"bid\":1}\n", i);
		send_str(steady, line);
	}
	want = 2000 + 6;
	n = drain_until(q, got, 0, want);
	assert_int_equal(n, want);
	replies = read_replies(steady);
	assert_string_equal(replies, "");
	free(replies);
	replies = read_replies(flooder);
	assert_string_equal(replies, "");
	free(replies);
	assert_int_equal(bad_lines(f), 0);
	tick_queue_close(q);
	feed_destroy(f);
	tick_queue_destroy(q);
	free(got);
}

/* ------------------------------------------------------------- formats */

static void
test_first_valid_line_decides_the_format(void **state)
{
	struct tick_queue *q = tick_queue_create(64, NULL, NULL);
	struct tick got[64 + 8];
	int port, a, b, c;
	struct feed *f;
	char *replies;
	size_t n, i, jsonl = 0, csv = 0;

	f = start_feed(q, &port);
	a = connect_to(port);
	b = connect_to(port);
	c = connect_to(port);
	/* Garbage, then JSONL: the JSONL is taken; once decided, a CSV
	 * header is a bad JSONL line. */
	send_str(a, "hello\n"                                 /* 1 */
	            "{\"ts\":1,\"symbol\":\"J\",\"bid\":1}\n" /* 2 */
	            "{\"ts\":2,\"symbol\":\"J\",\"bid\":2}\n" /* 3 */
	            "{\"ts\":3,\"symbol\":\"J\",\"bid\":3}\n" /* 4 */
	            "ts,symbol,bid\n");                       /* 5 */
	/* Garbage, then a CSV header and a row. */
	send_str(b, "hello\n"         /* 1 */
	            "ts,symbol,bid\n" /* 2 */
	            "1,C,1.5\n");     /* 3 */
	/* A JSON object that is no tick does not make it JSONL either. */
	send_str(c, "{\"ts\":1}\n"    /* 1 */
	            "ts,symbol,ask\n" /* 2 */
	            "2,D,2.5\n");     /* 3 */

	replies = read_replies(a);
	print_message("garbage then JSONL: %s", replies);
	assert_true(strncmp(replies, "ERR 1 ", 6) == 0);
	assert_non_null(strstr(replies, "\nERR 5 expected a JSON object"));
	assert_null(strstr(replies, "ERR 2 "));
	assert_null(strstr(replies, "ERR 3 "));
	assert_null(strstr(replies, "ERR 4 "));
	free(replies);
	replies = read_replies(b);
	print_message("garbage then CSV: %s", replies);
	assert_true(strncmp(replies, "ERR 1 ", 6) == 0);
	assert_null(strstr(replies, "ERR 2 "));
	assert_null(strstr(replies, "ERR 3 "));
	free(replies);
	replies = read_replies(c);
	print_message("bad JSON tick then CSV: %s", replies);
	assert_true(strncmp(replies, "ERR 1 missing \"symbol\"", 22) == 0);
	assert_null(strstr(replies, "ERR 2 "));
	assert_null(strstr(replies, "ERR 3 "));
	free(replies);

	n = drain_until(q, got, 0, 5);
	assert_int_equal(n, 5);
	for (i = 0; i < n; i++) {
		if (strcmp(got[i].symbol, "J") == 0)
			jsonl++;
		else
			csv++;
	}
	assert_int_equal(jsonl, 3);
	assert_int_equal(csv, 2);
	assert_int_equal(bad_lines(f), 4);
	tick_queue_close(q);
	feed_destroy(f);
	tick_queue_destroy(q);
}

/* ---------------------------------------------------------- the secret */

#define SECRET "s3cret-for-the-tcp-feed-tests"

/* A file holding text; its path is written into path (64 bytes). */
static void
write_file(char *path, const char *text)
{
	int fd;

	snprintf(path, 64, "/tmp/test_feed_tcp.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void
test_producers_must_authenticate_when_a_secret_is_set(void **state)
{
	static const struct {
		const char *send;
		const char *reply;
	} refused[] = {
	        /* No AUTH at all: a tick line first. */
	        {"{\"ts\":1,\"symbol\":\"BAD\",\"bid\":1}\n",
	         "ERR 0 this feed needs 'AUTH <secret>' as the first line; "
	         "closing\n"},
	        {"AUTH wrong\n{\"ts\":1,\"symbol\":\"BAD\",\"bid\":1}\n",
	         "ERR 0 wrong secret; closing\n"},
	        /* A prefix of the secret, and the secret with more. */
	        {"AUTH s3cret-for-the-tcp-feed-test\n",
	         "ERR 0 wrong secret; closing\n"},
	        {"AUTH " SECRET "x\n", "ERR 0 wrong secret; closing\n"},
	        {"AUTH\n", "ERR 0 wrong secret; closing\n"},
	        {"auth " SECRET "\n",
	         "ERR 0 this feed needs 'AUTH <secret>' as the first line; "
	         "closing\n"},
	};
	struct tick_queue *q = tick_queue_create(64, NULL, NULL);
	struct tick got[64 + 8];
	char path[64], options[96];
	struct feed *f;
	char *replies, *longline;
	int port, fd;
	size_t i, n;

	/* The file's newline is not part of the secret. */
	write_file(path, SECRET "\n");
	snprintf(options, sizeof options, ",secret=%s", path);
	f = start_feed_with(q, options, &port);
	for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		fd = connect_to(port);
		send_str(fd, refused[i].send);
		/* Closed by the feed, without our shutdown. */
		replies = read_until_closed(fd);
		if (strcmp(replies, refused[i].reply) != 0)
			fail_msg("'%s' was answered '%s'", refused[i].send,
			         replies);
		free(replies);
	}
	/* A first line over the length limit is no AUTH either: answering it
	 * as a bad line would let long lines keep the connection open. */
	fd = connect_to(port);
	longline = malloc(70001);
	assert_non_null(longline);
	memset(longline, 'x', 70000);
	longline[70000] = '\0';
	send_str(fd, longline);
	send_str(fd, "\n");
	free(longline);
	replies = read_until_closed(fd);
	assert_string_equal(replies, "ERR 0 this feed needs 'AUTH <secret>' as "
	                             "the first line; closing\n");
	free(replies);

	/* The right secret (a CRLF producer): its ticks are taken, and line
	 * numbers count the AUTH line. */
	fd = connect_to(port);
	send_str(fd, "AUTH " SECRET "\r\n"
	             "{\"ts\":1,\"symbol\":\"GOOD\",\"bid\":1}\n"
	             "{\"ts\":2,\"symbol\":\"GOOD\",\"bid\":2}\n"
	             "{\"ts\":3,\"symbol\":\"GOOD\",\"bid\":\"x\"}\n");
	replies = read_replies(fd);
	assert_true(strncmp(replies, "ERR 4 field 'bid'", 17) == 0);
	assert_null(strstr(replies, "ERR 0"));
	free(replies);
	n = drain_until(q, got, 0, 2);
	assert_int_equal(n, 2);
	assert_string_equal(got[0].symbol, "GOOD");
	assert_string_equal(got[1].symbol, "GOOD");
	/* Refused producers' lines are not ticks, nor bad lines. */
	timing_sleep_us(50000);
	assert_int_equal(tick_queue_drain(q, got, 64), 0);
	assert_int_equal(bad_lines(f), 1);
	tick_queue_close(q);
	feed_destroy(f);
	tick_queue_destroy(q);
	unlink(path);
}

/* ------------------------------------------------------------ the spec */

/* The files a spec below names. */
enum spec_file { NO_FILE, SECRET_FILE, EMPTY_FILE, TWO_LINE_FILE };

/* tmpl with every '@' replaced by path, into out (cap bytes). */
static void
put_path(char *out, size_t cap, const char *tmpl, const char *path)
{
	size_t n = 0, k;

	for (; *tmpl && n + 1 < cap; tmpl++) {
		if (*tmpl != '@') {
			out[n++] = *tmpl;
			continue;
		}
		for (k = 0; path[k] && n + 1 < cap; k++)
			out[n++] = path[k];
	}
	out[n] = '\0';
}

static void
test_tcp_spec_options(void **state)
{
	/* An '@' in a spec or a message stands for the file's path. */
	static const struct {
		const char *spec;
		enum spec_file file;
	} good[] = {
	        {"tcp:127.0.0.1:9000,idle=1", NO_FILE},
	        {"tcp:127.0.0.1:9000,idle=86400", NO_FILE},
	        {"tcp:[::1]:9000,idle=30", NO_FILE},
	        {"tcp:localhost:0,idle=5,secret=@", SECRET_FILE},
	        {"tcp:0.0.0.0:9000,secret=@,idle=5", SECRET_FILE},
	};
	static const struct {
		const char *spec;
		enum spec_file file;
		const char *want;
	} bad[] = {
	        {"tcp:127.0.0.1:9000,idle=0", NO_FILE,
	         "idle must be a whole number of seconds from 1 to 86400"},
	        {"tcp:127.0.0.1:9000,idle=86401", NO_FILE, "from 1 to 86400"},
	        {"tcp:127.0.0.1:9000,idle=1.5", NO_FILE, "from 1 to 86400"},
	        {"tcp:127.0.0.1:9000,idle=-1", NO_FILE, "from 1 to 86400"},
	        {"tcp:127.0.0.1:9000,idle=", NO_FILE, "from 1 to 86400"},
	        {"tcp:127.0.0.1:9000,idle", NO_FILE,
	         "option 'idle' needs a value"},
	        {"tcp:127.0.0.1:9000,idle=5,idle=6", NO_FILE,
	         "option 'idle' is given twice"},
	        {"tcp:127.0.0.1:9000,speed=2", NO_FILE,
	         "unknown option 'speed' (expected idle=SECS or "
	         "secret=FILE)"},
	        {"tcp:127.0.0.1:9000,", NO_FILE, "empty option"},
	        {"tcp:127.0.0.1:9000,,idle=5", NO_FILE, "empty option"},
	        {"tcp:127.0.0.1:9000,secret=", NO_FILE,
	         "secret needs a FILE (secret=FILE)"},
	        {"tcp:127.0.0.1:9000,secret=/nonexistent/tcp.secret", NO_FILE,
	         "cannot read secret file '/nonexistent/tcp.secret': No "
	         "such file or directory"},
	        {"tcp:127.0.0.1:9000,secret=@", EMPTY_FILE,
	         "secret file '@' is empty"},
	        {"tcp:127.0.0.1:9000,secret=@", TWO_LINE_FILE,
	         "secret file '@' holds more than one line"},
	        {"tcp:127.0.0.1:9000,secret=@,secret=@", SECRET_FILE,
	         "option 'secret' is given twice"},
	        {"tcp:127.0.0.1,idle=5", NO_FILE, "expected tcp:HOST:PORT"},
	        {"tcp:127.0.0.1:90x,idle=5", NO_FILE, "port must be"},
	};
	struct tick_queue *q = tick_queue_create(16, NULL, NULL);
	char files[4][64] = {""}, spec[256], want[300];
	size_t i;

	write_file(files[SECRET_FILE], SECRET "\n");
	write_file(files[EMPTY_FILE], "\n");
	write_file(files[TWO_LINE_FILE], "one\ntwo\n");
	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		const char *path = files[good[i].file];
		char err[256] = "";
		struct feed *f;

		put_path(spec, sizeof spec, good[i].spec, path);
		f = feed_create(spec, q, err, sizeof err);
		if (!f)
			fail_msg("'%s' was refused: %s", spec, err);
		assert_string_equal(f->kind, "tcp");
		feed_destroy(f);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *path = files[bad[i].file];
		char err[256] = "";
		struct feed *f;

		put_path(spec, sizeof spec, bad[i].spec, path);
		put_path(want, sizeof want, bad[i].want, path);
		f = feed_create(spec, q, err, sizeof err);
		if (f)
			fail_msg("'%s' was accepted", spec);
		if (!strstr(err, want))
			fail_msg("'%s': message '%s' lacks '%s'", spec, err,
			         want);
		/* Every message names the spec. */
		snprintf(want, sizeof want, "feed '%s'", spec);
		if (!strstr(err, want))
			fail_msg("'%s': message '%s' does not name it", spec,
			         err);
	}
	for (i = SECRET_FILE; i <= TWO_LINE_FILE; i++)
		unlink(files[i]);
	tick_queue_destroy(q);
}

/* What the feed logs while it starts from spec. Caller frees. */
static char *
start_log(const char *spec)
{
	struct tick_queue *q = tick_queue_create(16, NULL, NULL);
	char path[] = "/tmp/test_feed_tcp.XXXXXX", err[256] = "";
	char *log = calloc(1, 8192);
	struct feed *f;
	int fd, saved;

	assert_non_null(log);
	f = feed_create(spec, q, err, sizeof err);
	if (!f)
		fail_msg("'%s' was refused: %s", spec, err);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	if (feed_start(f, err, sizeof err) != 0) {
		dup2(saved, 2);
		fail_msg("'%s' did not start: %s", spec, err);
	}
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	assert_true(pread(fd, log, 8191, 0) > 0);
	close(fd);
	unlink(path);
	feed_destroy(f);
	tick_queue_destroy(q);
	return log;
}

static void
test_beyond_loopback_without_a_secret_warns(void **state)
{
	char path[64], spec[128];
	char *log;

	log = start_log("tcp:0.0.0.0:0");
	print_message("%s", log);
	assert_non_null(strstr(log, "beyond loopback, without a secret"));
	free(log);

	log = start_log("tcp:127.0.0.1:0");
	assert_null(strstr(log, "beyond loopback"));
	free(log);

	write_file(path, SECRET);
	snprintf(spec, sizeof spec, "tcp:0.0.0.0:0,secret=%s", path);
	log = start_log(spec);
	assert_null(strstr(log, "beyond loopback"));
	assert_non_null(strstr(log, "producers must send AUTH"));
	free(log);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_two_producers_arrive_complete),
	        cmocka_unit_test(test_bad_lines_are_answered_with_their_number),
	        cmocka_unit_test(test_mid_line_disconnect_loses_only_that_line),
	        cmocka_unit_test(test_port_is_logged_and_stop_is_prompt),
	        cmocka_unit_test(test_port_in_use_is_refused),
	        cmocka_unit_test(
	                test_idle_producers_are_closed_and_free_their_slots),
	        cmocka_unit_test(test_a_trickler_cannot_hold_a_slot),
	        cmocka_unit_test(test_a_full_queue_is_not_idleness),
	        cmocka_unit_test(test_first_valid_line_decides_the_format),
	        cmocka_unit_test(
	                test_producers_must_authenticate_when_a_secret_is_set),
	        cmocka_unit_test(test_tcp_spec_options),
	        cmocka_unit_test(test_beyond_loopback_without_a_secret_warns),
	};

	log_set_level(LOG_INFO);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

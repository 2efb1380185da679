/*
 * Unit tests for feeds/feed_tcp.c, with real sockets on loopback: two
 * producers at once (one JSONL, one CSV) arrive complete and in order
 * through a small queue; bad lines are answered "ERR <line> <reason>" on
 * their own connection; a producer that disconnects mid-line loses only
 * that line; the bound port is reported; stop is prompt; a port in use is
 * refused with the cause.
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

#include "feed.h"
#include "log.h"

/* A deadlock guard, not a timing assertion. */
#define DEADLINE_MS 10000

static int64_t
mono_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
}

static void
sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

	nanosleep(&ts, NULL);
}

static struct feed *
start_feed(struct tick_queue *q, int *port)
{
	char err[256] = "";
	struct feed_status st;
	struct feed *f = feed_create("tcp:127.0.0.1:0", q, err, sizeof err);

	assert_non_null(f);
	if (feed_start(f, err, sizeof err) != 0)
		fail_msg("tcp feed did not start: %s", err);
	feed_get_status(f, &st);
	assert_string_equal(st.kind, "tcp");
	assert_true(st.running);
	assert_true(st.listen_port > 0);
	*port = st.listen_port;
	return f;
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

/* Everything the feed answers until it closes the connection (after our
 * own shutdown), NUL-terminated. */
static char *
read_replies(int fd)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	ssize_t n;

	assert_non_null(buf);
	shutdown(fd, SHUT_WR);
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

/* Drain until n ticks are in out (which holds at least n + 64). */
static size_t
drain_until(struct tick_queue *q, struct tick *out, size_t have, size_t n)
{
	int64_t give_up = mono_ns() + DEADLINE_MS * 1000000LL;

	while (have < n && mono_ns() < give_up) {
		size_t k = tick_queue_drain(q, out + have, n + 64 - have);

		have += k;
		if (k == 0)
			sleep_us(200);
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
	sleep_us(100000);
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
		sleep_us(1000);
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
		sleep_us(1000);
	}
	assert_int_equal(st.connections, 1);
	t0 = mono_ns();
	feed_stop(f);
	assert_true(mono_ns() - t0 < 100000000LL);
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_two_producers_arrive_complete),
	        cmocka_unit_test(test_bad_lines_are_answered_with_their_number),
	        cmocka_unit_test(test_mid_line_disconnect_loses_only_that_line),
	        cmocka_unit_test(test_port_is_logged_and_stop_is_prompt),
	        cmocka_unit_test(test_port_in_use_is_refused),
	};

	log_set_level(LOG_INFO);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * feed_tcp: line ticks from producers over TCP (`tcp:HOST:PORT`).
 *
 * One thread serves the listening socket and every producer with poll(2).
 * Each connection has its own tick_parser, so one producer may send JSONL
 * while another sends CSV (header first), and its own line numbers. A bad
 * line is answered on that connection with "ERR <line> <reason>\n" and
 * skipped; a good line is not answered, so a producer that never reads is
 * not slowed by replies it ignores.
 *
 * Back-pressure. Ticks go to the queue in batches. When the queue is full
 * the push blocks, and with it this one thread: it stops reading from every
 * connection, their socket buffers fill, and the producers' writes block.
 * Producers are slowed rather than ticks dropped. The cost of one thread is
 * that a flood from one producer slows the others too; at one read (64 KiB)
 * per connection per round they get a fair share of what the queue takes.
 *
 * Replies never block the thread: they are sent with MSG_DONTWAIT, and one
 * that does not fit the peer's socket buffer (a producer that writes bad
 * lines and never reads) is dropped and logged instead.
 *
 * Slots. At most MAX_CONNS producers are connected at once, so a
 * connection that sends nothing must not keep one forever: a producer that
 * finishes no line for the idle time is told so and closed. Only complete
 * lines reset the clock, so a producer trickling the bytes of a line that
 * never ends is closed all the same (and the unfinished line it holds is
 * bounded by LINE_MAX_BYTES meanwhile). Time this thread spends blocked on
 * a full queue is not counted: the producers cannot send while it does not
 * read.
 *
 * Format. Each connection's format is decided by its first valid line: a
 * JSONL tick, or a CSV header. The parser guesses from the first byte, so
 * after a bad line while nothing is decided it is reset, and the next line
 * is judged afresh; a stray banner line does not make a JSONL producer CSV
 * for good.
 *
 * Secret. With secret=FILE the first line must be "AUTH <secret>"; any
 * other is answered "ERR 0 ..." and the connection closed. The comparison
 * takes the same time whatever the guess, so timing does not tell how much
 * of it was right.
 *
 * A producer that disconnects in the middle of a line loses that line
 * only: every complete line before it was handled as it arrived. A batch is
 * flushed as soon as no connection has input waiting, so a producer that
 * sends one tick now and then sees it forwarded at once.
 *
 * Stopping: poll() wakes every POLL_MS to look at the stop flag, so
 * feed_stop() returns within about that (the queue must be closed first if
 * the thread may be blocked on it, as for every feed).
 */
#include "feed.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../publisher/clock.h"
#include "../publisher/log.h"
#include "../publisher/tick_file.h"

/* Ticks pushed at most per batch (one lock of the queue per batch). */
#define BATCH_MAX 256
/* Longest line accepted; a longer one is skipped as a bad line. */
#define LINE_MAX_BYTES 65536
/* Per connection: room for the longest line plus one read. */
#define CONN_BUF (2 * LINE_MAX_BYTES)
/* Producers connected at once; more are told so and closed. */
#define MAX_CONNS 64
/* How long poll() waits before the thread looks at the stop flag. */
#define POLL_MS 20
/* Bad lines logged per connection (all are answered and counted). */
#define BAD_LINES_LOGGED 100
/* How often idle connections are looked for: the timeout is in seconds,
 * so a tenth of one is precise enough, and busy rounds stay cheap. */
#define IDLE_SWEEP_US 100000
/* Reads of what a refused producer sent before its socket is closed (see
 * refuse_conn). */
#define DRAIN_READS 4
/* A secret shorter than this is warned about at start. */
#define SECRET_WEAK_BYTES 16
/* "[" address "]:" port */
#define PEER_MAX (INET6_ADDRSTRLEN + 8)

struct tcp_conn {
	int fd;
	char peer[PEER_MAX];
	struct tick_parser parser;
	uint64_t lines; /* lines seen so far, the number in replies */
	uint64_t ticks;
	uint64_t bad;
	int64_t last_line_us;    /* clock_mono_us() of the last complete line,
	                          * or of the accept; see the idle sweep */
	int64_t blocked_at_line; /* the feed's blocked_us then */
	bool authed;             /* sent the secret, or none is asked for */
	bool discarding; /* dropping the rest of a line over the limit */
	size_t held;     /* start of an unfinished line at the front of buf */
	char buf[CONN_BUF];
};

struct feed_tcp {
	struct feed base; /* first: a struct feed * points here */
	char *host;
	unsigned port;
	unsigned idle_secs;
	int64_t idle_us;
	char *secret; /* NULL: no AUTH line is asked for */
	size_t secret_len;
	int listen_fd;
	int bound_port;      /* __atomic: read by the status */
	unsigned conn_count; /* __atomic: read by the status */

	pthread_t thread;
	bool started;
	bool joined;
	int stop; /* set by feed_stop, read by the thread (__atomic) */

	/* Owned by the thread once it runs. */
	struct tcp_conn *conns[MAX_CONNS];
	size_t nconns;
	int64_t next_sweep_us;
	/* Time spent blocked on a full queue so far: a producer's idleness is
	 * the time since its last line less what was blocked since then. A
	 * running total, because while a push blocks the connections array
	 * may hold connections closed earlier in the same round. */
	int64_t blocked_us;
	size_t batch_len;
	struct tick batch[BATCH_MAX];
};

static bool
stop_requested(struct feed_tcp *ft)
{
	return __atomic_load_n(&ft->stop, __ATOMIC_ACQUIRE) != 0;
}

/* "127.0.0.1:5000" or "[::1]:5000". */
static void
format_addr(const struct sockaddr *sa, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		port = ntohs(in->sin_port);
		snprintf(out, outlen, "%s:%u", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		port = ntohs(in6->sin6_port);
		snprintf(out, outlen, "[%s]:%u", host, port);
	} else {
		snprintf(out, outlen, "?");
	}
}

/* ------------------------------------------------------------ batches */

/* Push what the batch holds (blocking while the queue is full: that is the
 * back-pressure). Returns -1 when the queue is closed. */
static int
flush_batch(struct feed_tcp *ft)
{
	struct feed *f = &ft->base;
	int64_t t0, blocked;

	if (ft->batch_len == 0)
		return 0;
	t0 = clock_mono_us();
	if (tick_queue_push(f->queue, ft->batch, ft->batch_len) != 0)
		return -1;
	/* While the push blocked, nobody's lines were read: that time is not
	 * the producers' idleness (see blocked_us). */
	blocked = clock_mono_us() - t0;
	ft->blocked_us += blocked;
	__atomic_add_fetch(&f->ticks, ft->batch_len, __ATOMIC_RELAXED);
	__atomic_store_n(&f->last_tick_us, clock_wall_us(), __ATOMIC_RELAXED);
	ft->batch_len = 0;
	return 0;
}

/* ------------------------------------------------------------- replies */

/* Best effort, never blocking: see the comment at the top. */
static void
send_reply(struct tcp_conn *c, const char *msg, size_t len)
{
	ssize_t n = send(c->fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		log_debug("tcp %s: reply dropped: the producer does not read "
		          "its socket",
		          c->peer);
	/* Other errors (a reset) show up on the next read. */
}

static void
bad_line(struct feed_tcp *ft, struct tcp_conn *c, const char *reason)
{
	char msg[320];
	size_t i;
	int n;

	c->bad++;
	__atomic_add_fetch(&ft->base.bad_lines, 1, __ATOMIC_RELAXED);
	if (c->bad <= BAD_LINES_LOGGED)
		log_warn("tcp %s line %lu: %s", c->peer,
		         (unsigned long)c->lines, reason);
	else if (c->bad == BAD_LINES_LOGGED + 1)
		log_warn("tcp %s: more than %d bad lines; the rest are "
		         "answered but not logged",
		         c->peer, BAD_LINES_LOGGED);
	n = snprintf(msg, sizeof msg, "ERR %lu %s", (unsigned long)c->lines,
	             reason);
	if (n < 0)
		return;
	if ((size_t)n > sizeof msg - 2)
		n = (int)sizeof msg - 2;
	/* The reason quotes the producer's own bytes; the reply must stay
	 * one line whatever they were. */
	for (i = 0; i < (size_t)n; i++)
		if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f)
			msg[i] = '?';
	msg[n++] = '\n';
	send_reply(c, msg, (size_t)n);
}

/* ------------------------------------------------------------- secret */

/* Whether given[0..len) is the secret. Every byte of the secret is looked
 * at whatever the guess, so the time taken depends on the secret's length
 * alone, never on how much of a guess is right. */
static bool
secret_matches(const struct feed_tcp *ft, const char *given, size_t len)
{
	unsigned diff = len != ft->secret_len;
	size_t i;

	for (i = 0; i < ft->secret_len; i++)
		diff |= (unsigned char)ft->secret[i] ^
		        (unsigned char)(i < len ? given[i] : 0);
	return diff == 0;
}

/* A first line that is not AUTH, where one is needed: say so. Returns 1,
 * as check_auth(). */
static int
refuse_no_auth(struct tcp_conn *c)
{
	static const char need[] = "ERR 0 this feed needs 'AUTH <secret>' as "
	                           "the first line; closing\n";

	log_warn("tcp %s: refused: the first line is not AUTH <secret>",
	         c->peer);
	send_reply(c, need, sizeof need - 1);
	return 1;
}

/* The first line of a connection that must authenticate. Returns 0 when
 * it is "AUTH <secret>", else 1 after telling the producer why. */
static int
check_auth(struct feed_tcp *ft, struct tcp_conn *c, const char *line,
           size_t len)
{
	static const char wrong[] = "ERR 0 wrong secret; closing\n";

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len < 4 || memcmp(line, "AUTH", 4) != 0 ||
	    (len > 4 && line[4] != ' '))
		return refuse_no_auth(c);
	if (!secret_matches(ft, line + 5, len > 5 ? len - 5 : 0)) {
		log_warn("tcp %s: refused: wrong secret", c->peer);
		send_reply(c, wrong, sizeof wrong - 1);
		return 1;
	}
	c->authed = true;
	log_info("tcp %s: producer authenticated", c->peer);
	return 0;
}

/* -------------------------------------------------------------- lines */

/* A line over LINE_MAX_BYTES. Returns 0, or 1 when it came before the
 * secret: as a first line it is no AUTH, and were it only answered, a
 * stream of long lines would keep a connection without the secret open. */
static int
long_line(struct feed_tcp *ft, struct tcp_conn *c)
{
	char reason[64];

	c->lines++;
	if (!c->authed)
		return refuse_no_auth(c);
	snprintf(reason, sizeof reason, "line is longer than %d bytes",
	         LINE_MAX_BYTES);
	bad_line(ft, c, reason);
	return 0;
}

/* True when the line would be read as JSON (its first byte that is no
 * blank is '{'), as the parser guesses it. */
static bool
looks_like_json(const char *line, size_t len)
{
	size_t i = 0;

	if (len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	return i < len && line[i] == '{';
}

/*
 * A bad line while the connection's format is not decided yet. The parser
 * took the format from the line's first byte; forget that, so the next
 * line is judged afresh and the first valid one decides. A line that is no
 * JSON was refused as a CSV header: say that it was neither.
 */
static void
bad_first_line(struct feed_tcp *ft, struct tcp_conn *c, const char *line,
               size_t len, const char *reason)
{
	static const char csv_header[] = "CSV header: ";
	char why[320];

	tick_parser_init(&c->parser, TICK_FORMAT_UNKNOWN);
	if (looks_like_json(line, len)) {
		bad_line(ft, c, reason);
		return;
	}
	if (strncmp(reason, csv_header, sizeof csv_header - 1) == 0)
		reason += sizeof csv_header - 1;
	snprintf(why, sizeof why,
	         "neither a JSON object nor a valid CSV header: %s", reason);
	bad_line(ft, c, why);
}

/* One complete line, without its newline. Returns 0, 1 when the
 * connection is to be closed (it was told why), -1 when the queue is
 * closed. */
static int
handle_line(struct feed_tcp *ft, struct tcp_conn *c, const char *line,
            size_t len)
{
	bool deciding = c->parser.format == TICK_FORMAT_UNKNOWN;
	char reason[256];

	c->lines++;
	if (!c->authed)
		return check_auth(ft, c, line, len);
	switch (tick_parse_line(&c->parser, line, len,
	                        &ft->batch[ft->batch_len], reason,
	                        sizeof reason)) {
	case TICK_PARSE_OK:
		c->ticks++;
		if (++ft->batch_len == BATCH_MAX)
			return flush_batch(ft);
		break;
	case TICK_PARSE_SKIP:
		break;
	case TICK_PARSE_ERROR:
		if (deciding)
			bad_first_line(ft, c, line, len, reason);
		else
			bad_line(ft, c, reason);
		break;
	}
	return 0;
}

/*
 * c->buf[0..held) is the start of a line and c->buf[held..end) was just
 * read. Handle every complete line, then keep the unfinished one at the
 * front. Returns 0, 1 when the connection is to be closed (what follows
 * the line that closes it is dropped), -1 when the queue is closed.
 */
static int
take_lines(struct feed_tcp *ft, struct tcp_conn *c, size_t end)
{
	char *line = c->buf, *scan = c->buf + c->held, *stop = c->buf + end;
	char *nl;
	size_t rest;
	bool any = false;
	int rc;

	while ((nl = memchr(scan, '\n', (size_t)(stop - scan))) != NULL) {
		any = true;
		if (c->discarding || nl - line > LINE_MAX_BYTES) {
			c->discarding = false;
			rc = long_line(ft, c);
		} else {
			rc = handle_line(ft, c, line, (size_t)(nl - line));
		}
		if (rc != 0) {
			if (rc > 0)
				c->held = 0;
			return rc;
		}
		line = scan = nl + 1;
	}
	/* After the lines, not before: a full queue may have blocked
	 * handle_line, and the stamp and the blocked total go together. */
	if (any) {
		c->last_line_us = clock_mono_us();
		c->blocked_at_line = ft->blocked_us;
	}
	rest = (size_t)(stop - line);
	if (c->discarding || rest > LINE_MAX_BYTES) {
		/* Too long with no end in sight: drop it as it arrives, so
		 * memory stays bounded whatever the producer sends. */
		c->discarding = true;
		rest = 0;
	}
	memmove(c->buf, line, rest);
	c->held = rest;
	return 0;
}

/* ---------------------------------------------------------- connections */

static void
close_conn(struct feed_tcp *ft, struct tcp_conn *c, const char *why)
{
	if (c->held > 0 || c->discarding) {
		/* Only the unfinished line is lost; it counts as bad. */
		c->lines++;
		c->bad++;
		__atomic_add_fetch(&ft->base.bad_lines, 1, __ATOMIC_RELAXED);
		log_warn("tcp %s line %lu: %s in the middle of the line; the "
		         "line is dropped",
		         c->peer, (unsigned long)c->lines, why);
	}
	log_info("tcp %s: %s after %" PRIu64 " lines: %" PRIu64
	         " ticks, %" PRIu64 " bad lines",
	         c->peer, why, c->lines, c->ticks, c->bad);
	close(c->fd);
	free(c);
}

/* Close a producer that was just told why (a refusal, an idle timeout).
 * What it sent meanwhile is read and dropped first, as far as it is there
 * already: closing a socket with unread input sends a reset, which may
 * overtake the reply on its way and make the producer lose it. */
static void
refuse_conn(struct feed_tcp *ft, struct tcp_conn *c, const char *why)
{
	int i;

	for (i = 0; i < DRAIN_READS; i++)
		if (read(c->fd, c->buf + c->held, sizeof c->buf - c->held) <= 0)
			break;
	close_conn(ft, c, why);
}

/* Close every producer that sent no complete line for the idle time, and
 * say why. The array is compacted as for the reads. */
static void
close_idle(struct feed_tcp *ft, int64_t now)
{
	char msg[64], why[64];
	size_t i, kept = 0;
	int n;

	n = snprintf(msg, sizeof msg, "ERR 0 idle for %u s, closing\n",
	             ft->idle_secs);
	snprintf(why, sizeof why, "closed: idle for %u s", ft->idle_secs);
	for (i = 0; i < ft->nconns; i++) {
		struct tcp_conn *c = ft->conns[i];

		if (now - c->last_line_us -
		            (ft->blocked_us - c->blocked_at_line) <
		    ft->idle_us) {
			ft->conns[kept++] = c;
			continue;
		}
		send_reply(c, msg, (size_t)n);
		refuse_conn(ft, c, why);
	}
	ft->nconns = kept;
	__atomic_store_n(&ft->conn_count, (unsigned)kept, __ATOMIC_RELAXED);
}

static void
accept_all(struct feed_tcp *ft)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		struct tcp_conn *c;
		char peer[PEER_MAX];
		int fd;

		/* accept(2) and fcntl(2) rather than accept4(), which needs
		 * _GNU_SOURCE; the thread is the only one accepting. */
		fd = accept(ft->listen_fd, (struct sockaddr *)&ss, &sl);
		if (fd >= 0 &&
		    (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 ||
		     fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)) {
			log_warn("tcp feed: cannot set up a producer's socket: "
			         "%s",
			         strerror(errno));
			close(fd);
			continue;
		}
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("tcp feed: cannot accept a producer: "
				         "%s",
				         strerror(errno));
			return;
		}
		format_addr((struct sockaddr *)&ss, peer, sizeof peer);
		if (ft->nconns == MAX_CONNS) {
			static const char full[] =
			        "ERR 0 too many producers connected; try "
			        "again later\n";

			log_warn("tcp %s: refused: %d producers are connected "
			         "already",
			         peer, MAX_CONNS);
			(void)!send(fd, full, sizeof full - 1,
			            MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		c = malloc(sizeof *c);
		if (!c) {
			log_error("tcp %s: out of memory; connection closed",
			          peer);
			close(fd);
			continue;
		}
		c->fd = fd;
		memcpy(c->peer, peer, sizeof c->peer);
		tick_parser_init(&c->parser, TICK_FORMAT_UNKNOWN);
		c->lines = c->ticks = c->bad = 0;
		c->last_line_us = clock_mono_us();
		c->blocked_at_line = ft->blocked_us;
		c->authed = ft->secret == NULL;
		c->discarding = false;
		c->held = 0;
		ft->conns[ft->nconns++] = c;
		__atomic_store_n(&ft->conn_count, (unsigned)ft->nconns,
		                 __ATOMIC_RELAXED);
		log_info("tcp %s: producer connected", peer);
	}
}

/* Read once from a connection that poll() found ready. Returns 0 to keep
 * it, 1 when it was closed (and freed), -1 when the queue is closed. */
static int
service_conn(struct feed_tcp *ft, struct tcp_conn *c)
{
	ssize_t n = read(c->fd, c->buf + c->held, sizeof c->buf - c->held);
	int rc;

	if (n > 0) {
		rc = take_lines(ft, c, c->held + (size_t)n);
		if (rc > 0)
			refuse_conn(ft, c, "refused");
		return rc;
	}
	if (n < 0 &&
	    (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	close_conn(ft, c, n == 0 ? "disconnected" : "connection lost");
	return 1;
}

static void *
tcp_main(void *arg)
{
	struct feed_tcp *ft = arg;
	struct feed *f = &ft->base;
	struct pollfd pfd[MAX_CONNS + 1];
	size_t i;

	while (!stop_requested(ft)) {
		int64_t now = clock_mono_us();
		bool queue_closed = false;
		size_t n, kept = 0;
		int r;

		/* First, so that the slots it frees are seen by this round. */
		if (now >= ft->next_sweep_us) {
			close_idle(ft, now);
			ft->next_sweep_us = now + IDLE_SWEEP_US;
		}
		n = ft->nconns;
		pfd[0].fd = ft->listen_fd;
		pfd[0].events = POLLIN;
		for (i = 0; i < n; i++) {
			pfd[i + 1].fd = ft->conns[i]->fd;
			pfd[i + 1].events = POLLIN;
		}
		/* With ticks waiting, only look whether more input is there
		 * already; if not, send them before waiting. */
		r = poll(pfd, n + 1, ft->batch_len > 0 ? 0 : POLL_MS);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_error("tcp feed: cannot wait for producers: %s",
			          strerror(errno));
			break;
		}
		if (r == 0) {
			if (flush_batch(ft) != 0)
				break;
			continue;
		}
		/* Existing connections first: the array is compacted as
		 * connections close, and accepting appends to it. */
		for (i = 0; i < n; i++) {
			struct tcp_conn *c = ft->conns[i];
			int rc = 0;

			if (!queue_closed &&
			    (pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
				rc = service_conn(ft, c);
			if (rc < 0)
				queue_closed = true;
			if (rc != 1)
				ft->conns[kept++] = c;
		}
		ft->nconns = kept;
		__atomic_store_n(&ft->conn_count, (unsigned)kept,
		                 __ATOMIC_RELAXED);
		if (queue_closed)
			break; /* the server is shutting down */
		if (pfd[0].revents & POLLIN)
			accept_all(ft);
	}
	__atomic_store_n(&f->running, 0, __ATOMIC_RELEASE);
	return NULL;
}

/* ----------------------------------------------------------------- ops */

/* Resolve and bind host:port. Returns the listening socket, or -1 with the
 * cause in err. */
static int
listen_on(struct feed_tcp *ft, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[8];
	int fd = -1, rc, saved = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof port, "%u", ft->port);
	rc = getaddrinfo(ft->host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve '%s': %s", ft->host,
		         gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		int one = 1;

		fd = socket(ai->ai_family,
		            ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		            ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 64) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		if (strchr(ft->host, ':'))
			snprintf(err, errlen, "cannot listen on [%s]:%u: %s",
			         ft->host, ft->port, strerror(saved));
		else
			snprintf(err, errlen, "cannot listen on %s:%u: %s",
			         ft->host, ft->port, strerror(saved));
	}
	return fd;
}

/* True when the socket address is a loopback one (127.0.0.0/8, ::1, or
 * 127.0.0.0/8 mapped into IPv6), reachable from this host only. */
static bool
is_loopback_addr(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;
		const uint8_t *b = in6->sin6_addr.s6_addr;

		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
		       (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && b[12] == 127);
	}
	return false;
}

/*
 * What start says about who may send ticks. Beyond loopback without a
 * secret anyone who can reach the port can feed prices to every client, so
 * it is said loudly; it is not refused, because an ingest node on a
 * private network behind a firewall is a setup the README shows (and the
 * WebSocket listener treats a missing --auth-secret the same way).
 */
static void
log_access(const struct feed_tcp *ft, const char *where, bool loopback)
{
	if (ft->secret && ft->secret_len < SECRET_WEAK_BYTES)
		log_warn("tcp feed: the secret is only %zu bytes; a longer "
		         "one is harder to guess (openssl rand -hex 32 > "
		         "FILE)",
		         ft->secret_len);
	if (ft->secret)
		log_info("tcp feed: producers must send AUTH <secret> as "
		         "their first line");
	else if (!loopback)
		log_warn("tcp feed listening on %s, beyond loopback, without a "
		         "secret (secret=FILE): anyone who can reach it can "
		         "send ticks",
		         where);
	log_info("tcp feed: a producer that sends no line for %u s is closed",
	         ft->idle_secs);
}

static int
tcp_start(struct feed *f, char *err, size_t errlen)
{
	struct feed_tcp *ft = (struct feed_tcp *)f;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char where[PEER_MAX];
	bool loopback = false;

	if (ft->started) {
		snprintf(err, errlen, "tcp feed: already started");
		return -1;
	}
	ft->listen_fd = listen_on(ft, err, errlen);
	if (ft->listen_fd < 0)
		return -1;
	if (getsockname(ft->listen_fd, (struct sockaddr *)&ss, &sl) == 0) {
		format_addr((struct sockaddr *)&ss, where, sizeof where);
		__atomic_store_n(
		        &ft->bound_port,
		        ss.ss_family == AF_INET6
		                ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
		                : ntohs(((struct sockaddr_in *)&ss)->sin_port),
		        __ATOMIC_RELAXED);
		loopback = is_loopback_addr(&ss);
	} else {
		snprintf(where, sizeof where, "%s:%u", ft->host, ft->port);
	}

	if (feed__start_thread(f, &ft->thread, tcp_main, ft, err, errlen)) {
		close(ft->listen_fd);
		ft->listen_fd = -1;
		return -1;
	}
	ft->started = true;
	log_info("tcp feed listening on %s", where);
	log_access(ft, where, loopback);
	return 0;
}

static void
tcp_stop(struct feed *f)
{
	struct feed_tcp *ft = (struct feed_tcp *)f;
	size_t i;

	__atomic_store_n(&ft->stop, 1, __ATOMIC_RELEASE);
	if (!ft->started || ft->joined)
		return;
	pthread_join(ft->thread, NULL);
	ft->joined = true;
	/* The thread is gone: its connections and socket are ours now. */
	for (i = 0; i < ft->nconns; i++)
		close_conn(ft, ft->conns[i], "closed (feed stopped)");
	ft->nconns = 0;
	__atomic_store_n(&ft->conn_count, 0, __ATOMIC_RELAXED);
	close(ft->listen_fd);
	ft->listen_fd = -1;
}

static void
tcp_destroy(struct feed *f)
{
	struct feed_tcp *ft = (struct feed_tcp *)f;

	if (ft->listen_fd >= 0)
		close(ft->listen_fd);
	if (ft->secret) {
		explicit_bzero(ft->secret, ft->secret_len);
		free(ft->secret);
	}
	free(ft->host);
	free(ft);
}

static void
tcp_status(struct feed *f, struct feed_status *out)
{
	struct feed_tcp *ft = (struct feed_tcp *)f;

	out->listen_port = __atomic_load_n(&ft->bound_port, __ATOMIC_RELAXED);
	out->connections = __atomic_load_n(&ft->conn_count, __ATOMIC_RELAXED);
}

static const struct feed_ops tcp_ops = {
        .start = tcp_start,
        .stop = tcp_stop,
        .destroy = tcp_destroy,
        .status = tcp_status,
};

struct feed *
feed_tcp_create(const struct feed_tcp_options *opt, struct tick_queue *queue)
{
	struct feed_tcp *ft;

	if (!opt || !opt->host || !*opt->host || opt->port > 65535 ||
	    opt->idle_secs > FEED_TCP_IDLE_MAX ||
	    (opt->secret &&
	     (opt->secret_len == 0 || opt->secret_len > FEED_TCP_SECRET_MAX)))
		return NULL;
	ft = calloc(1, sizeof *ft);
	if (!ft)
		return NULL;
	ft->host = strdup(opt->host);
	if (opt->secret) {
		ft->secret = malloc(opt->secret_len);
		if (ft->secret)
			memcpy(ft->secret, opt->secret, opt->secret_len);
		ft->secret_len = opt->secret_len;
	}
	if (!ft->host || (opt->secret && !ft->secret)) {
		free(ft->host);
		free(ft->secret);
		free(ft);
		return NULL;
	}
	ft->base.ops = &tcp_ops;
	ft->base.kind = "tcp";
	ft->base.queue = queue;
	ft->port = opt->port;
	ft->idle_secs = opt->idle_secs ? opt->idle_secs : FEED_TCP_IDLE_DEFAULT;
	ft->idle_us = (int64_t)ft->idle_secs * 1000000;
	ft->listen_fd = -1;
	return &ft->base;
}

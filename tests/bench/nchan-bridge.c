/*
 * nchan-bridge: JSONL ticks in over TCP, nchan publishes out, for the
 * benchmark suite.
 *
 *   nchan-bridge --nchan HOST:PORT [--mode wsq|ws|http] [--conns N]
 *                [--port-file FILE]
 *
 * Listens on 127.0.0.1, port 0, for one tick producer at a time (tickgen)
 * and writes the port to FILE (or stdout). Each line
 * {"ts":...,"symbol":"S0001",...} is published unchanged (without its
 * newline) to the nchan channel S0001, through the publisher server of
 * tests/bench/peers/nchan.conf.in at HOST:PORT. The symbol is found by a
 * string search, not a JSON parse, as in nats-bridge: the bridge is the
 * cheapest ingest nchan can be given, and the suite counts its CPU with
 * nginx's.
 *
 * nchan takes messages only as HTTP POSTs or WebSocket frames to a publisher
 * location whose URL names the channel, so there are three ways (--mode):
 *
 *   wsq   (the default) one WebSocket per channel to /pubq/SYM, one text
 *         frame per tick, which nchan publishes without answering (the
 *         location is a pubsub one: see nchan.conf.in).
 *   ws    the same to /pub/SYM, a plain publisher location: nchan answers
 *         every frame with a text frame of channel info, read and counted.
 *   http  "POST /pub/SYM HTTP/1.1" with the line as the body, pipelined on
 *         N keep-alive connections (--conns, default 1; a symbol always goes
 *         to the same one, so its ticks stay in order). nchan answers each
 *         (201/202 and the channel's info, ~240 bytes); the answers are read
 *         32 KiB at a time (SO_RCVLOWAT) and checked for a non-2xx status.
 *
 * wsq is the default because it sustained the most. Measured on the suite's
 * 2-core VM, nginx (one worker) and the bridge both on CPU 0, tickgen and the
 * subscribers on CPU 1, 1,000 channels:
 *
 *   no subscriber, tickgen --rate max:    wsq 278k-300k ticks/s,
 *                                         http 108k-128k, ws ~83k
 *   10 subscribers x 100 channels, every  at 30k/s all modes keep up;
 *   tick delivered once:                  at 40k/s delivered wsq 38k-39k/s,
 *                                         http 35k/s; at max: wsq 98k in /
 *                                         70k out, http 33k in / 29k out
 *
 * nginx pays per HTTP request (parsing, a pool, an answer written to the
 * socket) more than per WebSocket frame (nchan reads a frame with three or
 * four recv() calls: header, length, mask, payload). The bridge pays the
 * other way: with a connection per channel it makes one send() per channel
 * with ticks pending after each read from tickgen (0.2-0.4 of the core at
 * 20k-40k paced ticks/s) where pipelined HTTP makes one per read (0.15-0.2,
 * mostly wake-ups). With subscribers, nginx's delivery is the limit in both
 * modes, not the bridge: at 40k/s in http mode the bridge used 0.02-0.04 of
 * the core and nginx the rest.
 *
 * WebSocket connections are opened, blocking, when a symbol is first seen
 * (1,000 in ~0.1 s). Frames are masked with the key 0 (RFC 6455 lets the
 * client choose the key), so no payload byte is transformed. Writes are
 * non-blocking and buffered per connection; while any connection has more
 * than HIGH_WATER bytes pending the producer is not read, so a slow nchan
 * slows tickgen and nothing is dropped here. A connection nchan closes, or
 * an error status, is reported and ends the bridge (exit status 1).
 * SIGINT/SIGTERM stop it (status 0); it prints its counts to stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/net.h"

#define IN_CAP        (1024 * 1024)
#define SYM_MAX       48
#define MAX_CHANNELS  16384
#define TABLE_SIZE    (2 * MAX_CHANNELS) /* power of two */
#define HIGH_WATER    (256 * 1024)
#define RCVLOWAT      (32 * 1024)
#define LOW_WATER     (64 * 1024)
#define MAX_CONNS     (MAX_CHANNELS + 64)
#define EV_LISTEN     UINT64_MAX
#define EV_PRODUCER   (UINT64_MAX - 1)
#define HTTP_MARK     "HTTP/1.1 "
#define HTTP_MARK_LEN 9

enum mode { MODE_HTTP, MODE_WS, MODE_WSQ };

struct conn {
	int fd;
	int dirty;   /* on the dirty list */
	int pollout; /* EPOLLOUT armed */
	int over;    /* more than HIGH_WATER pending */
	char *out;
	size_t out_len, out_cap;
	/* reading nchan's answers */
	unsigned char hdr[14];
	size_t hdr_len;
	uint64_t skip; /* payload bytes of the current frame still to skip */
	int opcode;    /* of the current frame */
	char carry[HTTP_MARK_LEN];
	size_t carry_len;
	char sym[SYM_MAX];
};

struct channel {
	char sym[SYM_MAX];
	int conn; /* index into conns; -1 = free slot */
};

static volatile sig_atomic_t stop_flag;
static int failed; /* exit status 1: nchan refused or closed something */
static enum mode mode = MODE_WSQ;
static struct sockaddr_in nchan_sa;
static struct conn *conns;
static int n_conns, n_over, epfd;
static int *dirty;
static int n_dirty;
static struct channel *table;
static int n_channels;
static unsigned long long published, bad_lines, answers, bad_answers;

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static uint32_t
hash_sym(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	while (len--)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

static int
set_events(int fd, uint64_t key, uint32_t events, int op)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.u64 = key;
	return epoll_ctl(epfd, op, fd, &ev);
}

static int
tcp_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&nchan_sa, sizeof nchan_sa)) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/* The WebSocket upgrade, blocking (~0.1 ms on loopback). */
static int
ws_handshake(int fd, const char *sym)
{
	char req[512], resp[2048];
	size_t have = 0;
	struct timeval tv = {5, 0};
	int n;

	n = snprintf(req, sizeof req,
	             "GET /%s/%s HTTP/1.1\r\n"
	             "Host: 127.0.0.1\r\n"
	             "Upgrade: websocket\r\n"
	             "Connection: Upgrade\r\n"
	             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	             "Sec-WebSocket-Version: 13\r\n\r\n",
	             mode == MODE_WSQ ? "pubq" : "pub", sym);
	if (net_write_all(fd, req, (size_t)n, &stop_flag))
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	while (have < sizeof resp - 1) {
		ssize_t r = recv(fd, resp + have, sizeof resp - 1 - have, 0);

		if (r <= 0)
			return -1;
		have += (size_t)r;
		resp[have] = '\0';
		if (strstr(resp, "\r\n\r\n"))
			break;
	}
	if (strncmp(resp, "HTTP/1.1 101", 12)) {
		fprintf(stderr, "nchan-bridge: upgrade for %s refused: %.*s\n",
		        sym, (int)strcspn(resp, "\r\n"), resp);
		return -1;
	}
	/* the handshake answer ends the server's bytes: nothing follows it
	 * before the first publish */
	tv.tv_sec = 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return 0;
}

static int
add_conn(const char *sym)
{
	struct conn *c;
	int fd, i;

	if (n_conns == MAX_CONNS)
		return -1;
	fd = tcp_connect();
	if (fd < 0)
		return -1;
	if (mode != MODE_HTTP && ws_handshake(fd, sym)) {
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	if (mode == MODE_HTTP) {
		/* Wake up for answers only when RCVLOWAT bytes are waiting
		 * (EOF still wakes at once): an answer per tick would
		 * otherwise cost an epoll_wait and a recv per tick. */
		int lowat = RCVLOWAT;

		setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
	}
	i = n_conns;
	c = &conns[i];
	memset(c, 0, sizeof *c);
	c->fd = fd;
	snprintf(c->sym, sizeof c->sym, "%s", sym);
	if (set_events(fd, (uint64_t)i, EPOLLIN, EPOLL_CTL_ADD)) {
		close(fd);
		return -1;
	}
	n_conns++;
	return i;
}

/* The connection a symbol's ticks go to; opens it on first sight (ws). */
static int
channel_conn(const char *sym, size_t len)
{
	uint32_t h = hash_sym(sym, len), i;
	struct channel *ch;
	char name[SYM_MAX];

	for (i = h & (TABLE_SIZE - 1);; i = (i + 1) & (TABLE_SIZE - 1)) {
		ch = &table[i];
		if (ch->conn < 0)
			break;
		if (!strncmp(ch->sym, sym, len) && ch->sym[len] == '\0')
			return ch->conn;
	}
	if (n_channels == MAX_CHANNELS) {
		fprintf(stderr, "nchan-bridge: more than %d symbols\n",
		        MAX_CHANNELS);
		return -1;
	}
	memcpy(name, sym, len);
	name[len] = '\0';
	if (mode == MODE_HTTP) {
		ch->conn = (int)(h % (uint32_t)n_conns);
	} else {
		ch->conn = add_conn(name);
		if (ch->conn < 0) {
			fprintf(stderr,
			        "nchan-bridge: cannot open a publisher "
			        "for %s\n",
			        name);
			return -1;
		}
	}
	memcpy(ch->sym, name, len + 1);
	n_channels++;
	return ch->conn;
}

static char *
reserve(struct conn *c, size_t need)
{
	if (c->out_len + need > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *p;

		while (cap < c->out_len + need)
			cap *= 2;
		p = realloc(c->out, cap);
		if (!p)
			return NULL;
		c->out = p;
		c->out_cap = cap;
	}
	return c->out + c->out_len;
}

/* Append one publish of line[0..len) to connection ci's output. */
static int
queue_publish(int ci, const char *sym, size_t sym_len, const char *line,
              size_t len)
{
	struct conn *c = &conns[ci];
	char *o = reserve(c, len + SYM_MAX + 96);
	size_t h;

	if (!o)
		return -1;
	if (mode == MODE_HTTP) {
		h = (size_t)sprintf(o,
		                    "POST /pub/%.*s HTTP/1.1\r\n"
		                    "Host: 127.0.0.1\r\n"
		                    "Content-Length: %zu\r\n\r\n",
		                    (int)sym_len, sym, len);
	} else {
		/* FIN + text; MASK bit + length; masking key 0 */
		o[0] = (char)0x81;
		if (len < 126) {
			o[1] = (char)(0x80 | len);
			h = 2;
		} else if (len < 65536) {
			o[1] = (char)(0x80 | 126);
			o[2] = (char)(len >> 8);
			o[3] = (char)(len & 0xff);
			h = 4;
		} else {
			int b;

			o[1] = (char)(0x80 | 127);
			for (b = 0; b < 8; b++)
				o[2 + b] =
				        (char)((uint64_t)len >> (56 - 8 * b));
			h = 10;
		}
		memset(o + h, 0, 4);
		h += 4;
	}
	memcpy(o + h, line, len);
	c->out_len += h + len;
	if (!c->dirty) {
		c->dirty = 1;
		dirty[n_dirty++] = ci;
	}
	return 0;
}

static int
symbol_ok(const char *s, size_t len)
{
	size_t i;

	if (!len || len >= SYM_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		char ch = s[i];

		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
		      ch == '_'))
			return 0;
	}
	return 1;
}

/* Queue the complete lines of in[0..len); returns bytes of input used. */
static size_t
translate(const char *in, size_t len)
{
	const char *p = in, *e = in + len, *nl;

	while (p < e && (nl = memchr(p, '\n', (size_t)(e - p)))) {
		size_t line = (size_t)(nl - p);
		const char *sym = memmem(p, line, "\"symbol\":\"", 10);
		const char *q;
		int ci;

		if (line && p[line - 1] == '\r')
			line--;
		if (!sym || !line) {
			bad_lines += line > 0;
			p = nl + 1;
			continue;
		}
		sym += 10;
		for (q = sym; q < nl && *q != '"'; q++)
			;
		if (!symbol_ok(sym, (size_t)(q - sym))) {
			bad_lines++;
			p = nl + 1;
			continue;
		}
		ci = channel_conn(sym, (size_t)(q - sym));
		if (ci < 0 ||
		    queue_publish(ci, sym, (size_t)(q - sym), p, line)) {
			stop_flag = failed = 1;
			break;
		}
		published++;
		p = nl + 1;
	}
	return (size_t)(p - in);
}

static void
producer_events(int pfd, int on)
{
	if (pfd >= 0)
		set_events(pfd, EV_PRODUCER, on ? EPOLLIN : 0, EPOLL_CTL_MOD);
}

/* Send what connection ci has pending; arm EPOLLOUT for the rest. */
static int
flush_conn(int ci, int pfd)
{
	struct conn *c = &conns[ci];
	size_t off = 0;

	while (off < c->out_len) {
		ssize_t n = send(c->fd, c->out + off, c->out_len - off,
		                 MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			fprintf(stderr, "nchan-bridge: send (%s): %s\n",
			        mode == MODE_HTTP ? "http" : c->sym,
			        strerror(errno));
			return -1;
		}
		off += (size_t)n;
	}
	if (off) {
		c->out_len -= off;
		if (c->out_len)
			memmove(c->out, c->out + off, c->out_len);
	}
	if (c->out_len && !c->pollout) {
		c->pollout = 1;
		set_events(c->fd, (uint64_t)ci, EPOLLIN | EPOLLOUT,
		           EPOLL_CTL_MOD);
	} else if (!c->out_len && c->pollout) {
		c->pollout = 0;
		set_events(c->fd, (uint64_t)ci, EPOLLIN, EPOLL_CTL_MOD);
	}
	if (!c->over && c->out_len > HIGH_WATER) {
		c->over = 1;
		if (n_over++ == 0)
			producer_events(pfd, 0);
	} else if (c->over && c->out_len < LOW_WATER) {
		c->over = 0;
		if (--n_over == 0)
			producer_events(pfd, 1);
	}
	return 0;
}

/* HTTP answers: count status lines, each "HTTP/1.1 NNN". The last
 * HTTP_MARK_LEN bytes are carried over, so a status line cut between two
 * reads is still seen once. */
static void
read_http(struct conn *c, char *buf, size_t len)
{
	char *p = buf, *e = buf + len;

	while ((p = memmem(p, (size_t)(e - p), HTTP_MARK, HTTP_MARK_LEN)) &&
	       p + HTTP_MARK_LEN < e) {
		answers++;
		if (p[HTTP_MARK_LEN] != '2' && bad_answers++ < 5)
			fprintf(stderr, "nchan-bridge: nchan answered %.*s\n",
			        (int)strcspn(p, "\r\n"), p);
		p += HTTP_MARK_LEN;
	}
	c->carry_len = len < HTTP_MARK_LEN ? len : HTTP_MARK_LEN;
	memcpy(c->carry, e - c->carry_len, c->carry_len);
}

/* WebSocket frames from nchan (unmasked): count them; a close frame ends
 * the bridge, with its reason (e.g. "403 Forbidden") logged. */
static int
read_ws(struct conn *c, const unsigned char *p, size_t len)
{
	const unsigned char *e = p + len;

	while (p < e) {
		size_t need;

		if (c->skip) {
			size_t take = (size_t)(e - p) < c->skip
			                      ? (size_t)(e - p)
			                      : (size_t)c->skip;

			if (c->opcode == 8) {
				/* the close code (2 bytes), then the reason */
				fprintf(stderr,
				        "nchan-bridge: %s closed: %.*s\n",
				        c->sym, (int)(take > 2 ? take - 2 : 0),
				        (const char *)p + 2);
				return -1;
			}
			p += take;
			c->skip -= take;
			continue;
		}
		c->hdr[c->hdr_len++] = *p++;
		if (c->hdr_len < 2)
			continue;
		need = 2 + ((c->hdr[1] & 0x7f) == 126   ? 2
		            : (c->hdr[1] & 0x7f) == 127 ? 8
		                                        : 0);
		if (c->hdr_len < need)
			continue;
		c->opcode = c->hdr[0] & 0x0f;
		if (need == 2) {
			c->skip = c->hdr[1] & 0x7f;
		} else {
			size_t i;

			c->skip = 0;
			for (i = 2; i < need; i++)
				c->skip = (c->skip << 8) | c->hdr[i];
		}
		c->hdr_len = 0;
		if (c->opcode == 1 || c->opcode == 2)
			answers++;
		if (c->opcode == 8) {
			bad_answers++;
			if (!c->skip) {
				fprintf(stderr, "nchan-bridge: %s closed\n",
				        c->sym);
				return -1;
			}
		}
	}
	return 0;
}

static int
service_conn(int ci)
{
	struct conn *c = &conns[ci];
	char buf[65536];
	ssize_t n;

	for (;;) {
		if (mode == MODE_HTTP)
			memcpy(buf, c->carry, c->carry_len);
		n = recv(c->fd, buf + (mode == MODE_HTTP ? c->carry_len : 0),
		         sizeof buf - HTTP_MARK_LEN, MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		if (n == 0) {
			fprintf(stderr,
			        "nchan-bridge: nchan closed the "
			        "connection (%s)\n",
			        mode == MODE_HTTP ? "http" : c->sym);
			return -1;
		}
		if (mode == MODE_HTTP)
			read_http(c, buf, c->carry_len + (size_t)n);
		else if (read_ws(c, (unsigned char *)buf, (size_t)n))
			return -1;
	}
}

/* Read what tickgen sent, queue its complete lines and send them. Returns
 * -1 when the producer has gone. */
static int
read_producer(int pfd, char *in, size_t *have)
{
	ssize_t r = recv(pfd, in + *have, IN_CAP - *have, MSG_DONTWAIT);
	size_t used;

	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (r <= 0)
		return -1;
	*have += (size_t)r;
	used = translate(in, *have);
	*have -= used;
	if (*have == IN_CAP)
		*have = 0; /* a line longer than that */
	if (*have && used)
		memmove(in, in + used, *have);
	while (n_dirty) {
		int ci = dirty[--n_dirty];

		conns[ci].dirty = 0;
		if (flush_conn(ci, pfd))
			stop_flag = failed = 1;
	}
	return 0;
}

static int
parse_hostport(const char *hostport)
{
	char host[64];
	const char *colon = strrchr(hostport, ':');

	if (!colon || (size_t)(colon - hostport) >= sizeof host)
		return -1;
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = '\0';
	memset(&nchan_sa, 0, sizeof nchan_sa);
	nchan_sa.sin_family = AF_INET;
	nchan_sa.sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &nchan_sa.sin_addr) == 1 ? 0 : -1;
}

static int
write_port(const char *port_file, int port)
{
	FILE *f;

	if (!port_file) {
		printf("%d\n", port);
		fflush(stdout);
		return 0;
	}
	f = fopen(port_file, "w");
	if (!f)
		return -1;
	fprintf(f, "%d\n", port);
	return fclose(f);
}

int
main(int argc, char **argv)
{
	const char *nchan = NULL, *port_file = NULL;
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	char *in = malloc(IN_CAP);
	int lfd, pfd = -1, i, one = 1, http_conns = 1;
	size_t have = 0;
	struct sigaction act;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--nchan"))
			nchan = argv[i + 1];
		else if (!strcmp(argv[i], "--port-file"))
			port_file = argv[i + 1];
		else if (!strcmp(argv[i], "--conns"))
			http_conns = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--mode") &&
		         !strcmp(argv[i + 1], "ws"))
			mode = MODE_WS;
		else if (!strcmp(argv[i], "--mode") &&
		         !strcmp(argv[i + 1], "http"))
			mode = MODE_HTTP;
		else if (strcmp(argv[i], "--mode") ||
		         strcmp(argv[i + 1], "wsq"))
			nchan = NULL;
	}
	conns = calloc(MAX_CONNS, sizeof *conns);
	dirty = calloc(MAX_CONNS, sizeof *dirty);
	table = malloc(TABLE_SIZE * sizeof *table);
	if (!nchan || parse_hostport(nchan) || http_conns < 1 ||
	    http_conns > 64 || i != argc || !in || !conns || !dirty || !table) {
		fprintf(stderr, "usage: nchan-bridge --nchan HOST:PORT "
		                "[--mode wsq|ws|http] [--conns N]\n"
		                "                    [--port-file FILE]\n");
		return 2;
	}
	for (i = 0; i < TABLE_SIZE; i++)
		table[i].conn = -1;
	memset(&act, 0, sizeof act);
	act.sa_handler = on_signal;
	sigaction(SIGINT, &act, NULL);
	sigaction(SIGTERM, &act, NULL);
	signal(SIGPIPE, SIG_IGN);
	epfd = epoll_create1(0);

	if (mode == MODE_HTTP) {
		for (i = 0; i < http_conns; i++) {
			if (add_conn("http") < 0) {
				fprintf(stderr,
				        "nchan-bridge: cannot reach nchan "
				        "at %s: %s\n",
				        nchan, strerror(errno));
				return 1;
			}
		}
	} else {
		/* nchan must be up now, not at the first tick */
		int fd = tcp_connect();

		if (fd < 0) {
			fprintf(stderr,
			        "nchan-bridge: cannot reach nchan at "
			        "%s: %s\n",
			        nchan, strerror(errno));
			return 1;
		}
		close(fd);
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 4) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) ||
	    set_events(lfd, EV_LISTEN, EPOLLIN, EPOLL_CTL_ADD)) {
		fprintf(stderr, "nchan-bridge: cannot listen: %s\n",
		        strerror(errno));
		return 1;
	}
	if (write_port(port_file, ntohs(sa.sin_port))) {
		fprintf(stderr, "nchan-bridge: cannot write %s\n", port_file);
		return 1;
	}

	while (!stop_flag) {
		struct epoll_event evs[256];
		int n = epoll_wait(epfd, evs, 256, 200);

		for (i = 0; i < n && !stop_flag; i++) {
			uint64_t key = evs[i].data.u64;

			if (key == EV_LISTEN) {
				/* one producer at a time; others wait in the
				 * backlog until it has gone */
				pfd = accept(lfd, NULL, NULL);
				if (pfd < 0)
					continue;
				have = 0;
				epoll_ctl(epfd, EPOLL_CTL_DEL, lfd, NULL);
				set_events(pfd, EV_PRODUCER,
				           n_over ? 0 : EPOLLIN, EPOLL_CTL_ADD);
			} else if (key == EV_PRODUCER) {
				if (read_producer(pfd, in, &have) == 0)
					continue;
				close(pfd);
				pfd = -1;
				set_events(lfd, EV_LISTEN, EPOLLIN,
				           EPOLL_CTL_ADD);
			} else {
				int ci = (int)key;

				if ((evs[i].events &
				     (EPOLLIN | EPOLLERR | EPOLLHUP)) &&
				    service_conn(ci))
					stop_flag = failed = 1;
				else if ((evs[i].events & EPOLLOUT) &&
				         flush_conn(ci, pfd))
					stop_flag = failed = 1;
			}
		}
	}
	fprintf(stderr,
	        "nchan-bridge: %llu ticks published to %d channels over %d "
	        "connections, %llu answers (%llu errors), %llu bad lines\n",
	        published, n_channels, n_conns, answers, bad_answers,
	        bad_lines);
	if (pfd >= 0)
		close(pfd);
	for (i = 0; i < n_conns; i++) {
		close(conns[i].fd);
		free(conns[i].out);
	}
	close(lfd);
	close(epfd);
	free(conns);
	free(dirty);
	free(table);
	free(in);
	return failed;
}

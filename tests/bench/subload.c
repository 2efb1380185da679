/*
 * subload: many WebSocket (or Server-Sent Events) subscribers in one process,
 * for the benchmark suite.
 *
 *   subload --port P [--host 127.0.0.1] [--path /ws] [--proto publisher]
 *           [--conns N] [--symbols M] [--per-conn K|all] [--open-rate R]
 *           [--settle S] [--warmup W] [--duration D] [--server-pid P[,P...]]
 *           [--rss-limit-mb MB] [--label TEXT] [--shm FILE] [--chaos F]
 *           [--deflate] [--max-hz H] [--transport ws|sse]
 *           [-- TICKGEN ARGV...]
 *
 * One thread, epoll, level-triggered, N non-blocking connections opened at
 * most R per second. A hand-written RFC 6455 client: the upgrade request,
 * masked client frames, unmasked server frames with 7/16/64-bit lengths,
 * fragmented messages (continuation frames) reassembled, pings answered and
 * closes returned.
 *
 * Protocols (--proto):
 *   publisher  this project's protocol 1: waits for "hello", subscribes with
 *              {"op":"subscribe","symbols":[...]} (or ["*"]), reads snapshot
 *              and delta objects, alone or in array batches, and checks each
 *              delta's "from" against the seq it holds (a mismatch is a gap).
 *   plain      one JSON tick per message, as the ws broadcaster peer sends
 *              them; subscribes with the same subscribe op.
 *   nats       the NATS text protocol over WebSocket: INFO, then CONNECT
 *              {"verbose":false,"pedantic":false} and SUB tick.SYM sid (or
 *              tick.>), MSG lines with the tick as payload, PING -> PONG.
 *   socketio   Engine.IO 4 / Socket.IO 4 over the websocket transport:
 *              GET /socket.io/?EIO=4&transport=websocket, "0{...}" open, "40"
 *              connect, 42["join",[...]] to join rooms, 42["tick",{...}]
 *              events, "2" ping -> "3" pong.
 *   nchan      nginx's nchan module: the channels are in the upgrade's path,
 *              /sub/S0001,S0042,... (at most 255 per connection, nchan's
 *              limit), so a connection is subscribed from its opening; one
 *              JSON tick per message, as plain.
 *
 * Transports (--transport), for this project's protocol:
 *   ws   the default: the WebSocket upgrade at --path (/ws).
 *   sse  the stream transports' Server-Sent Events (subload_sse.c reads
 *        them): GET --path (/stream/events) on each connection, one frame
 *        per data line, parsed and counted as a WebSocket message is. The
 *        stream frame names the session and the hello follows it; the
 *        subscribe goes in a POST /stream/send?session=KEY on a connection
 *        of its own, closed once the server has answered (202), so a
 *        client holds one connection, and two while a request is on its
 *        way. Frames are events; the wire bytes are the body's bytes as
 *        received (id and data lines, blank lines, any chunked coding),
 *        where a WebSocket cell counts its messages' payload and leaves
 *        out the 2 to 4 bytes of each frame's header. What departs from
 *        the wire (ids out of order, a missing header, ...) is counted
 *        with the protocol errors and listed, once each, on stderr.
 *
 * Symbols are named S0000 ... S<M-1>, as tickgen names them. Connection i
 * subscribes to the K symbols (i*K + j) mod M, j < K, so together the
 * connections cover the universe evenly; K = all (or K >= M) subscribes to
 * everything ("*", "tick.>" or room "*").
 *
 * Run order: open every connection, wait --settle seconds, read the server's
 * RSS (the idle figure), subscribe every connection, start the tick
 * generator given after "--" (it inherits this process's CPU affinity), warm
 * up for W seconds, then measure for D seconds: delivered updates,
 * tick->client latency (receive time minus the update's "ts", both
 * CLOCK_REALTIME microseconds, taken once per read), gaps, staleness, the
 * server's CPU time (utime + stime of every --server-pid, from /proc) and
 * RSS, and this process's and the generator's CPU time.
 *
 * Staleness is sampled every 100 ms over up to 4,000 random (connection,
 * subscribed symbol) pairs: "age" is now minus the ts of the newest value
 * the connection holds for that symbol (it includes the time since the
 * symbol last ticked, so cold symbols look old on every server), and "lag"
 * is how far that value is behind the newest value of the symbol seen by any
 * connection of this process (zero when every subscriber is in step).
 *
 * Staleness against the source (--shm FILE, which subload creates and
 * passes to tickgen): tickgen records how many ticks of each symbol it has
 * sent and when the last 64 were sent (tick_shm.h). A sampled value is
 * stale since the send time of the first tick after it: "src" is now minus
 * that time (0 when the client holds the newest tick sent). For this
 * project's protocol the seq says which tick a value is (the server must
 * start empty, so that seq k is the k-th tick sent); for the peers the ts
 * does. After the window, once tickgen has stopped, subload also waits for
 * every client to hold every symbol's last tick and reports how long that
 * took after the last tick was sent (converge_ms; unconverged pairs if it
 * never happened within 5 s).
 *
 * Compression (--deflate): every connection offers permessage-deflate
 * (RFC 7692) with server_no_context_takeover, so each compressed message
 * inflates on its own. bytes_per_upd counts the bytes on the wire
 * (compressed payload), text_bytes_per_upd the JSON.
 *
 * Frames seen before: a server that sends the same frame to many
 * connections has it inflated and parsed once here (a cache keyed by a
 * hash of the bytes as received, for this project's protocol); every
 * connection still applies every update of it, with its own gap check and
 * latency. A browser inflates and parses its own copy: that cost is the
 * client's, not the server's, which is what this program measures, and
 * without the cache one core could not read what one server core sends.
 *
 * Misbehaving clients (--chaos F): a fraction F of the connections, in
 * turn, are slow (read 4 KiB every 100 ms), stalled (never read after
 * subscribing) or close abruptly (read part of a frame, then close, every
 * second or so, and come back). Every figure is then of the well-behaved
 * clients only.
 *
 * Output: progress lines on stderr, then one line on stdout:
 *   RESULT proto=... conns=... upd_per_s=... lat_p50_us=... ...
 * Latency and staleness come from a log-linear (HDR-style) histogram: one
 * bucket per microsecond below 128, then 64 buckets per power of two, so a
 * percentile (reported at its bucket's middle) is within 1 % of the truth.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "clock.h"
#include "subload_sse.h"
#include "tick_shm.h"

#include "support/proc_stats.h"
#include "support/rng.h"

/* Bytes read per recv() call. */
#define READ_CHUNK (256 * 1024)
/* Largest server message accepted (a fragmented one included). */
#define MESSAGE_MAX (64 * 1024 * 1024)
/* Staleness: pairs sampled per round, and the period. */
#define STALE_SAMPLES   4000
#define STALE_PERIOD_US 100000
/* How often the server's RSS is checked against --rss-limit-mb. */
#define RSS_CHECK_US 500000
#define MAX_PIDS     8
/* A cell is invalid when the load process used more than this much of its
 * core: the figures would then be the client's, not the server's. */
#define LOAD_CPU_MAX 0.90
/* Misbehaving clients: a slow one reads this much every CHAOS_SLOW_US; a
 * closer closes and comes back about every CHAOS_CLOSE_US. */
#define CHAOS_SLOW_BYTES 4096
#define CHAOS_SLOW_US    100000
#define CHAOS_CLOSE_US   1000000
/* How long subload waits, after the generator stops, for every client to
 * hold every symbol's last tick. */
#define CONVERGE_WAIT_US 5000000

/* ------------------------------------------------------------ histogram */

/* Log-linear: values below 128 have a bucket each; above, each power of two
 * is cut into 64 buckets (the top half of a 128-wide mantissa). */
#define HIST_SUB     64
#define HIST_BUCKETS (HIST_SUB * 64 + 2 * HIST_SUB)

struct hist {
	uint64_t count[HIST_BUCKETS];
	uint64_t total;
	int64_t max;
	int64_t min;
};

static unsigned
hist_index(uint64_t v)
{
	unsigned msb, e;

	if (v < 2 * HIST_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	e = msb - 6;
	return e * HIST_SUB + (unsigned)(v >> e);
}

/* The middle of the bucket: what a percentile reports. */
static uint64_t
hist_value(unsigned idx)
{
	unsigned e;

	if (idx < 2 * HIST_SUB)
		return idx;
	e = idx / HIST_SUB - 1;
	return ((uint64_t)(idx - e * HIST_SUB) << e) + ((1ull << e) >> 1);
}

static void
hist_add(struct hist *h, int64_t v)
{
	if (v < 0)
		v = 0; /* clocks a microsecond apart */
	h->count[hist_index((uint64_t)v)]++;
	if (!h->total || v > h->max)
		h->max = v;
	if (!h->total || v < h->min)
		h->min = v;
	h->total++;
}

static int64_t
hist_pct(const struct hist *h, double pct)
{
	uint64_t want, seen = 0;
	unsigned i;

	if (!h->total)
		return -1;
	want = (uint64_t)(pct / 100.0 * (double)h->total);
	if (want >= h->total)
		want = h->total - 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->count[i];
		if (seen > want) {
			int64_t v = (int64_t)hist_value(i);

			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}

/* ------------------------------------------------------------ state */

enum proto { P_PUBLISHER, P_PLAIN, P_NATS, P_SOCKETIO, P_NCHAN };
enum transport { T_WS, T_SSE };

enum cstate {
	C_CONNECTING,
	C_HANDSHAKE, /* upgrade sent, waiting for 101 */
	C_OPEN,      /* WebSocket open, application greeting pending */
	C_READY,     /* greeted: may subscribe */
	C_CLOSED,
};

/* What a connection holds of a symbol: the seq (publisher) and the ts of
 * its newest value, in µs after ts_base (0: nothing yet). 8 bytes, so that
 * 1,000 symbols of 1,000 connections take half the cache. */
struct held {
	uint32_t seq;
	uint32_t ts_off;
};

enum chaos { CH_NONE, CH_SLOW, CH_STALLED, CH_CLOSER };

struct conn {
	int fd;
	uint32_t idx;
	uint8_t state;
	uint8_t chaos; /* enum chaos */
	bool subscribed;
	bool epollout;
	uint8_t msg_op;      /* opcode of the fragmented message */
	bool in_fragments;   /* continuation frames expected */
	bool deflate;        /* permessage-deflate agreed */
	bool msg_compressed; /* the fragmented message is compressed */
	char *out;           /* bytes not yet taken by the kernel */
	size_t out_len, out_off, out_cap;
	char *in; /* an incomplete frame (or upgrade reply) carried over */
	size_t in_len, in_cap;
	char *msg; /* a fragmented message being put together */
	size_t msg_len, msg_cap;
	char *nbuf; /* nats: protocol bytes not yet a whole line or payload */
	size_t nbuf_len, nbuf_cap;
	struct held *held; /* [symbols], from the subscribe on */
	/* sse: the event stream being read, and the request on its way */
	struct sse_stream *sse;
	struct sse_post *post;
};

/* sse: a request in a POST of its own. Its epoll events carry the
 * connection's index with POST_TAG set. */
#define POST_TAG 0x80000000u
struct sse_post {
	int fd;
	bool connected;
	bool sent;
	bool waiting; /* in the queue of requests not yet started */
	char *body;   /* the request */
	size_t body_len, body_cap;
	char *out; /* the request, head and body */
	size_t out_len, out_off, out_cap;
	char in[2048]; /* the reply's head */
	size_t in_len;
};

struct options {
	const char *host, *path, *label;
	int port;
	enum proto proto;
	enum transport transport;
	unsigned conns, symbols, per_conn; /* per_conn 0 = all */
	double open_rate, settle, warmup, duration;
	pid_t server_pids[MAX_PIDS];
	unsigned server_pid_count;
	double rss_limit_mb;
	char **tickgen_argv;
	const char *shm_path;
	double chaos;
	bool deflate;
	double max_hz; /* publisher: the subscribe's max_hz (0: none) */
};

enum phase {
	PH_OPENING,
	PH_SETTLE,
	PH_WARMUP,
	PH_MEASURE,
	PH_CONVERGE,
	PH_DONE
};

struct counters {
	uint64_t updates, snapshots, messages, frames, bytes, gaps, closed,
	        proto_errors;
	uint64_t wire_bytes; /* payload bytes as received (compressed) */
	/* ticks an update brings the client up to date with: seq - from
	 * for a publisher delta (conflation merged seq - from - 1 of them),
	 * 1 for a snapshot or a peer's tick message */
	uint64_t ticks;
};

static struct options opt = {
        .host = "127.0.0.1",
        .path = NULL,
        .label = "",
        .port = 0,
        .proto = P_PUBLISHER,
        .conns = 100,
        .symbols = 1000,
        .per_conn = 10,
        .open_rate = 2000,
        .settle = 1.0,
        .warmup = 2.0,
        .duration = 5.0,
};

static struct conn *conns;
static int epfd;
static char *scratch;
static size_t scratch_cap;
static int64_t recv_now_us; /* CLOCK_REALTIME of the current read */
static bool measuring;
static struct counters cnt;       /* while measuring */
static struct counters cnt_total; /* whole run */
static struct hist lat, stale_age, stale_lag, stale_src;
static struct tick_shm *shm; /* --shm: what tickgen has sent */
static int64_t *best_ts;     /* [symbols]: newest ts seen by any connection */
static int64_t ts_base;      /* CLOCK_REALTIME µs a little before the start */

static inline int64_t
held_ts(const struct held *h)
{
	return h->ts_off ? ts_base + h->ts_off : 0;
}

static inline void
held_take_ts(struct held *h, int64_t ts)
{
	int64_t off = ts - ts_base;

	if (off < 1)
		off = 1;
	if (off > (int64_t)UINT32_MAX)
		off = UINT32_MAX;
	if ((uint32_t)off > h->ts_off)
		h->ts_off = (uint32_t)off;
}
static unsigned ready_count, failed_count, closed_count;
static char first_error[256];
static volatile sig_atomic_t stop_flag;
/* Masking keys and the chaos steps' picks (support/rng.h); main() mixes in
 * the pid, so that two instances differ. */
static uint64_t rng_state = 0x2545F4914F6CDD1DULL;

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void
note_error(const char *what, const char *a, size_t alen)
{
	cnt_total.proto_errors++;
	if (measuring)
		cnt.proto_errors++;
	if (!first_error[0])
		snprintf(first_error, sizeof first_error, "%s%.*s", what,
		         (int)alen, a);
}

/* ------------------------------------------------------------ /proc */

static double
servers_cpu_s(void)
{
	double sum = 0;
	unsigned i;

	for (i = 0; i < opt.server_pid_count; i++) {
		double c = proc_cpu_s(opt.server_pids[i]);

		if (c < 0)
			return -1;
		sum += c;
	}
	return sum;
}

static long
servers_rss_kb(void)
{
	long sum = 0;
	unsigned i;

	for (i = 0; i < opt.server_pid_count; i++) {
		long r = proc_rss_kb(opt.server_pids[i]);

		if (r < 0)
			return -1;
		sum += r;
	}
	return sum;
}

static double
self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Busy and total jiffies of CPU n (everything on that core, other
 * people's processes included). */
static void
core_jiffies(int n, unsigned long long *busy, unsigned long long *total)
{
	unsigned long long v[CORE_COLS];
	int i;

	core_read(n, v);
	for (*total = 0, i = 0; i < CORE_COLS; i++)
		*total += v[i];
	*busy = *total - v[C_IDLE] - v[C_IOWAIT];
}

/* ------------------------------------------------------------ output */

static void
buf_reserve(char **buf, size_t *cap, size_t need)
{
	size_t c;
	char *p;

	if (need <= *cap)
		return;
	c = *cap ? *cap : 256;
	while (c < need)
		c *= 2;
	p = realloc(*buf, c);
	if (!p) {
		fprintf(stderr, "subload: out of memory\n");
		exit(1);
	}
	*buf = p;
	*cap = c;
}

static void conn_close(struct conn *c, bool by_server);

/* A slow or stalled client is never woken to read: it reads on its own
 * schedule (slow) or not at all (stalled). */
static bool
reads_when_ready(const struct conn *c)
{
	return !c->subscribed ||
	       (c->chaos != CH_SLOW && c->chaos != CH_STALLED);
}

static void
conn_set_events(struct conn *c)
{
	struct epoll_event ev;

	ev.events = (reads_when_ready(c) ? EPOLLIN : 0) |
	            (c->epollout ? EPOLLOUT : 0);
	ev.data.u32 = c->idx;
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
set_epollout(struct conn *c, bool on)
{
	if (c->epollout == on)
		return;
	c->epollout = on;
	conn_set_events(c);
}

static void
conn_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off,
		                 c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_close(c, true);
			return;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
		if (c->state != C_CONNECTING)
			set_epollout(c, false);
	} else {
		set_epollout(c, true);
	}
}

static void
conn_send(struct conn *c, const void *data, size_t len)
{
	if (c->state == C_CLOSED)
		return;
	buf_reserve(&c->out, &c->out_cap, c->out_len + len);
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	if (c->state != C_CONNECTING)
		conn_flush(c);
}

/* One masked client frame (RFC 6455 5.3: every client frame is masked). */
static void
ws_send(struct conn *c, unsigned opcode, const void *payload, size_t len)
{
	unsigned char hdr[14];
	size_t h = 0, i;
	uint32_t key = (uint32_t)xorshift64star_next(&rng_state);
	unsigned char *mask, *p;

	hdr[h++] = (unsigned char)(0x80 | opcode);
	if (len < 126) {
		hdr[h++] = (unsigned char)(0x80 | len);
	} else if (len < 65536) {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (unsigned char)(len >> 8);
		hdr[h++] = (unsigned char)len;
	} else {
		hdr[h++] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			hdr[h++] =
			        (unsigned char)((uint64_t)len >> (56 - 8 * i));
	}
	memcpy(hdr + h, &key, 4);
	mask = hdr + h;
	h += 4;
	buf_reserve(&c->out, &c->out_cap, c->out_len + h + len);
	memcpy(c->out + c->out_len, hdr, h);
	p = (unsigned char *)c->out + c->out_len + h;
	for (i = 0; i < len; i++)
		p[i] = ((const unsigned char *)payload)[i] ^ mask[i & 3];
	c->out_len += h + len;
	if (c->state != C_CONNECTING)
		conn_flush(c);
}

static void
ws_send_text(struct conn *c, const char *s, size_t len)
{
	ws_send(c, 0x1, s, len);
}

/* ------------------------------------------------------------ parsing */

static uint64_t
parse_u64(const char *p, const char *end)
{
	uint64_t v = 0;

	while (p < end && *p >= '0' && *p <= '9')
		v = v * 10 + (uint64_t)(*p++ - '0');
	return v;
}

/* Value after "key": within [s, e), or NULL. key includes quotes and colon. */
static const char *
find_key(const char *s, const char *e, const char *key, size_t klen)
{
	const char *p = memmem(s, (size_t)(e - s), key, klen);

	return p ? p + klen : NULL;
}

#define KEY(k) k, sizeof(k) - 1

/* "S0123" -> 123; -1 when it is not one of ours. */
static int
symbol_index(const char *p, const char *e)
{
	unsigned v = 0;
	int digits = 0;

	if (p >= e || *p != 'S')
		return -1;
	for (p++; p < e && *p >= '0' && *p <= '9'; p++, digits++)
		v = v * 10 + (unsigned)(*p - '0');
	if (!digits || v >= opt.symbols)
		return -1;
	return (int)v;
}

static void
on_update(struct conn *c, int sym, bool snapshot, uint64_t from, uint64_t seq,
          int64_t ts)
{
	struct held *h = c->held ? &c->held[sym] : NULL;

	uint64_t ticks = !snapshot && seq > from && from ? seq - from : 1;

	cnt_total.updates++;
	cnt_total.ticks += ticks;
	if (snapshot)
		cnt_total.snapshots++;
	if (measuring && c->chaos == CH_NONE) {
		cnt.updates++;
		cnt.ticks += ticks;
		if (snapshot)
			cnt.snapshots++;
		else
			hist_add(&lat, recv_now_us - ts);
	}
	if (!h)
		return;
	if (!snapshot && seq) {
		if (h->seq != (uint32_t)from) {
			cnt_total.gaps++;
			if (measuring && c->chaos == CH_NONE)
				cnt.gaps++;
		}
	}
	if (seq)
		h->seq = (uint32_t)seq;
	held_take_ts(h, ts);
	if (ts > best_ts[sym])
		best_ts[sym] = ts;
}

/* Expect the literal lit at *p; advance past it. */
static bool
expect(const char **p, const char *e, const char *lit, size_t len)
{
	if ((size_t)(e - *p) < len || memcmp(*p, lit, len))
		return false;
	*p += len;
	return true;
}

static uint64_t
take_u64(const char **p, const char *e)
{
	uint64_t v = 0;
	const char *q = *p;

	while (q < e && *q >= '0' && *q <= '9')
		v = v * 10 + (uint64_t)(*q++ - '0');
	*p = q;
	return v;
}

/* A tick object as the peers send it: {"ts":..,"symbol":"S0001",...}.
 * The key order tickgen writes (and JSON.stringify keeps) is read in one
 * pass; anything else falls back to searching for the keys. */
static void
on_tick_object(struct conn *c, const char *s, const char *e)
{
	const char *p = s, *ts, *sy;
	int sym;

	if (expect(&p, e, KEY("{\"ts\":"))) {
		int64_t t = (int64_t)take_u64(&p, e);

		if (expect(&p, e, KEY(",\"symbol\":\"")) &&
		    (sym = symbol_index(p, e)) >= 0) {
			on_update(c, sym, false, 0, 0, t);
			return;
		}
	}
	ts = find_key(s, e, KEY("\"ts\":"));
	sy = find_key(s, e, KEY("\"symbol\":\""));

	if (!ts || !sy || (sym = symbol_index(sy, e)) < 0) {
		note_error("unexpected message: ", s,
		           (size_t)(e - s) > 120 ? 120 : (size_t)(e - s));
		return;
	}
	on_update(c, sym, false, 0, 0, (int64_t)parse_u64(ts, e));
}

/* One object of the publisher's protocol. */
static void
on_publisher_object(struct conn *c, const char *s, const char *e)
{
	const char *type = find_key(s, e, KEY("\"type\":\""));
	const char *sy, *p;
	bool snapshot;
	int sym;

	if (!type) {
		note_error("object without a type: ", s,
		           (size_t)(e - s) > 120 ? 120 : (size_t)(e - s));
		return;
	}
	if (!strncmp(type, "delta\"", 6))
		snapshot = false;
	else if (!strncmp(type, "snapshot\"", 9))
		snapshot = true;
	else {
		if (!strncmp(type, "hello\"", 6) && c->state == C_OPEN) {
			c->state = C_READY;
			ready_count++;
		} else if (!strncmp(type, "error\"", 6)) {
			note_error("server error: ", s,
			           (size_t)(e - s) > 200 ? 200
			                                 : (size_t)(e - s));
		}
		return;
	}
	sy = find_key(s, e, KEY("\"symbol\":\""));
	if (!sy || (sym = symbol_index(sy, e)) < 0)
		return;
	p = find_key(s, e, KEY("\"ts\":"));
	{
		uint64_t seq, from = 0;
		int64_t ts = p ? (int64_t)parse_u64(p, e) : 0;

		p = find_key(s, e, KEY("\"seq\":"));
		seq = p ? parse_u64(p, e) : 0;
		if (!snapshot) {
			p = find_key(s, e, KEY("\"from\":"));
			from = p ? parse_u64(p, e) : 0;
		}
		on_update(c, sym, snapshot, from, seq, ts);
	}
}

/*
 * The publisher's own encoding of an update, read in one pass:
 *   {"type":"delta","symbol":"S0001","from":N,"seq":N,"ts":N,<numbers>}
 *   {"type":"snapshot","symbol":"S0001","seq":N,"ts":N,<numbers>}
 * Every field after ts is a number, so the object ends at the next '}'.
 * Returns the end of the object, or NULL when it is not of this form (the
 * general scan then takes over).
 */
struct update_ref {
	int sym;
	bool snapshot;
	uint64_t from, seq;
	int64_t ts;
};

static const char *
parse_update(const char *p, const char *e, struct update_ref *u)
{
	uint64_t from = 0, seq;
	const char *end;
	bool snapshot;
	int64_t ts;
	int sym;

	if (expect(&p, e, KEY("{\"type\":\"delta\",\"symbol\":\"")))
		snapshot = false;
	else if (expect(&p, e, KEY("{\"type\":\"snapshot\",\"symbol\":\"")))
		snapshot = true;
	else
		return NULL;
	if ((sym = symbol_index(p, e)) < 0)
		return NULL;
	while (p < e && *p != '"')
		p++;
	p++;
	if (!snapshot) {
		if (!expect(&p, e, KEY(",\"from\":")))
			return NULL;
		from = take_u64(&p, e);
	}
	if (!expect(&p, e, KEY(",\"seq\":")))
		return NULL;
	seq = take_u64(&p, e);
	if (!expect(&p, e, KEY(",\"ts\":")))
		return NULL;
	ts = (int64_t)take_u64(&p, e);
	end = memchr(p, '}', (size_t)(e - p));
	if (!end)
		return NULL;
	u->sym = sym;
	u->snapshot = snapshot;
	u->from = from;
	u->seq = seq;
	u->ts = ts;
	return end + 1;
}

static const char *
fast_update(struct conn *c, const char *p, const char *e)
{
	struct update_ref u;
	const char *end = parse_update(p, e, &u);

	if (end)
		on_update(c, u.sym, u.snapshot, u.from, u.seq, u.ts);
	return end;
}

/* Every update of a frame made of updates only (a batch or one), into *ups;
 * false when anything else is in it. */
static bool
parse_all_updates(const char *s, size_t len, struct update_ref **ups, size_t *n,
                  size_t *cap)
{
	const char *p = s, *e = s + len, *q;
	bool array = p < e && *p == '[';

	*n = 0;
	if (array)
		p++;
	while (p < e && *p == '{') {
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 256;
			*ups = realloc(*ups, *cap * sizeof **ups);
			if (!*ups)
				abort();
		}
		q = parse_update(p, e, &(*ups)[*n]);
		if (!q)
			return false;
		(*n)++;
		p = q;
		if (p < e && *p == ',')
			p++;
		else
			break;
	}
	if (array && p < e && *p == ']')
		p++;
	return p == e && *n;
}

/* Split a frame into its top-level objects: one object, or an array. The
 * updates go through fast_update(); whatever is left goes through a scan
 * that knows strings (and escapes in them), so braces in text do not count. */
static void
on_publisher_message(struct conn *c, const char *s, size_t len)
{
	const char *p = s, *e = s + len, *obj = NULL, *q;
	int depth = 0;
	bool in_str = false;

	if (p < e && *p == '[')
		p++;
	while (p < e && *p == '{' && (q = fast_update(c, p, e))) {
		p = q;
		if (p < e && (*p == ',' || *p == ']'))
			p++;
	}

	for (; p < e; p++) {
		char ch = *p;

		if (in_str) {
			if (ch == '\\')
				p++;
			else if (ch == '"')
				in_str = false;
			continue;
		}
		if (ch == '"') {
			in_str = true;
		} else if (ch == '{') {
			if (depth++ == 0)
				obj = p;
		} else if (ch == '}') {
			if (--depth == 0 && obj) {
				on_publisher_object(c, obj, p + 1);
				obj = NULL;
			}
		}
	}
}

static void
on_socketio_message(struct conn *c, const char *s, size_t len)
{
	static const char tick_ev[] = "42[\"tick\",";
	static const char pong[] = "3";

	if (len >= sizeof tick_ev - 1 &&
	    !memcmp(s, tick_ev, sizeof tick_ev - 1)) {
		on_tick_object(c, s + sizeof tick_ev - 1, s + len);
		return;
	}
	if (len >= 1 && s[0] == '2' && (len == 1 || s[1] != '[')) {
		ws_send_text(c, pong, 1); /* engine.io ping */
		return;
	}
	if (len >= 1 && s[0] == '0' && c->state == C_OPEN) {
		ws_send_text(c, "40", 2); /* engine.io open: connect to "/" */
		return;
	}
	if (len >= 2 && s[0] == '4' && s[1] == '0' && c->state == C_OPEN) {
		c->state = C_READY;
		ready_count++;
		return;
	}
	if (len >= 2 && s[0] == '4' && (s[1] == '4' || s[1] == '1'))
		note_error("socket.io: ", s, len > 120 ? 120 : len);
}

/* NATS text protocol, as a byte stream across WebSocket messages. */
static void
on_nats_bytes(struct conn *c, const char *data, size_t len)
{
	char *p, *e, *nl;

	buf_reserve(&c->nbuf, &c->nbuf_cap, c->nbuf_len + len);
	memcpy(c->nbuf + c->nbuf_len, data, len);
	c->nbuf_len += len;
	p = c->nbuf;
	e = c->nbuf + c->nbuf_len;
	while (p < e) {
		nl = memchr(p, '\n', (size_t)(e - p));
		if (!nl)
			break;
		if (e - p >= 4 && !memcmp(p, "MSG ", 4)) {
			/* MSG <subject> <sid> [reply-to]
			 * <#bytes>\r\n<payload>\r\n */
			const char *q = nl - 1, *sp;
			size_t plen;

			while (q > p && (*q == '\r' || *q == ' '))
				q--;
			sp = q;
			while (sp > p && *sp != ' ')
				sp--;
			plen = (size_t)parse_u64(sp + 1, q + 1);
			if ((size_t)(e - (nl + 1)) < plen + 2)
				break; /* payload not all here yet */
			on_tick_object(c, nl + 1, nl + 1 + plen);
			p = nl + 1 + plen + 2;
			continue;
		}
		if (e - p >= 4 && !memcmp(p, "PING", 4)) {
			ws_send_text(c, "PONG\r\n", 6);
		} else if (e - p >= 4 && !memcmp(p, "INFO", 4)) {
			if (c->state == C_OPEN) {
				static const char connect_msg[] =
				        "CONNECT "
				        "{\"verbose\":false,\"pedantic\":"
				        "false,\"protocol\":1}\r\n";

				ws_send_text(c, connect_msg,
				             sizeof connect_msg - 1);
				c->state = C_READY;
				ready_count++;
			}
		} else if (e - p >= 4 && !memcmp(p, "-ERR", 4)) {
			note_error("nats: ", p, (size_t)(nl - p));
		}
		p = nl + 1;
	}
	c->nbuf_len = (size_t)(e - p);
	if (c->nbuf_len && p != c->nbuf)
		memmove(c->nbuf, p, c->nbuf_len);
}

/* ---------------------------------------------------------- seen frames */

/*
 * A server that shares frames sends the same bytes to many connections:
 * each distinct frame is inflated (when compressed) and parsed once, kept
 * by a hash of the bytes as they came, and its updates applied to every
 * connection that gets it. Distinct frames kept: more than a server makes
 * while a client is one second behind.
 */
#define SEEN_SLOTS 2048
/* Shorter uncompressed frames are parsed where they come. */
#define SEEN_MIN_TEXT 512

struct seen_frame {
	uint64_t hash; /* of the bytes as received; 0: empty */
	size_t wire_len;
	bool compressed;
	char *text; /* inflated text (compressed frames only) */
	size_t len, cap;
	/* the frame's updates, when it holds only updates, and what they add
	 * up to for the counters */
	struct update_ref *ups;
	size_t nups, ups_cap;
	uint64_t ticks, snapshots;
	bool parsed;
};

static struct seen_frame seen[SEEN_SLOTS];
static z_stream inflater;
static bool inflater_ready;
static uint64_t inflate_misses;

/* Four independent lanes of multiply-xorshift, so the multiplies of a
 * large frame overlap instead of waiting on each other. */
static uint64_t
hash_bytes(const unsigned char *p, size_t len)
{
	static const uint64_t k = 0xff51afd7ed558ccdULL;
	uint64_t h[4] = {0x9E3779B97F4A7C15ULL ^ len, 0xC2B2AE3D27D4EB4FULL,
	                 0x165667B19E3779F9ULL, 0x27D4EB2F165667C5ULL};
	uint64_t w, r;
	size_t i = 0;
	int j;

	for (; i + 32 <= len; i += 32)
		for (j = 0; j < 4; j++) {
			memcpy(&w, p + i + 8 * j, 8);
			h[j] = (h[j] ^ w) * k;
			h[j] ^= h[j] >> 29;
		}
	for (; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		h[0] = (h[0] ^ w) * k;
		h[0] ^= h[0] >> 29;
	}
	for (; i < len; i++)
		h[1] = (h[1] ^ p[i]) * 0x100000001b3ULL;
	r = h[0] ^ (h[1] * 3) ^ (h[2] * 5) ^ (h[3] * 7);
	r = (r ^ (r >> 31)) * k;
	return r ? r : 1;
}

/* Inflate a message (the 4-byte sync tail the sender stripped put back)
 * into e->text. */
static bool
inflate_into(struct seen_frame *e, const unsigned char *z, size_t zlen)
{
	static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
	int rc;

	if (!inflater_ready) {
		if (inflateInit2(&inflater, -15) != Z_OK)
			return false;
		inflater_ready = true;
	}
	inflateReset(&inflater);
	inflate_misses++;
	e->len = 0;
	for (int part = 0; part < 2; part++) {
		inflater.next_in = (unsigned char *)(part ? tail : z);
		inflater.avail_in = (uInt)(part ? sizeof tail : zlen);
		do {
			if (e->cap - e->len < 65536)
				buf_reserve(&e->text, &e->cap, e->len + 262144);
			inflater.next_out = (unsigned char *)e->text + e->len;
			inflater.avail_out = (uInt)(e->cap - e->len);
			rc = inflate(&inflater, Z_SYNC_FLUSH);
			e->len = e->cap - inflater.avail_out;
			if (rc != Z_OK && rc != Z_BUF_ERROR &&
			    rc != Z_STREAM_END)
				return false;
			if (e->len > MESSAGE_MAX)
				return false;
		} while (inflater.avail_in || !inflater.avail_out);
	}
	return true;
}

static void
sort_by_symbol(struct update_ref *u, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct update_ref x = u[i];
		size_t j = i;

		while (j > 0 && u[j - 1].sym > x.sym) {
			u[j] = u[j - 1];
			j--;
		}
		u[j] = x;
	}
}

/* The frame as seen before, or now: NULL when a compressed one does not
 * inflate. An uncompressed frame that is not all updates has no text
 * here: use the bytes received. */
static struct seen_frame *
frame_seen(const char *bytes, size_t len, bool compressed)
{
	uint64_t h = hash_bytes((const unsigned char *)bytes, len);
	struct seen_frame *e = &seen[h % SEEN_SLOTS];

	if (e->hash == h && e->wire_len == len && e->compressed == compressed)
		return e;
	e->hash = 0;
	e->parsed = false;
	if (compressed) {
		if (!inflate_into(e, (const unsigned char *)bytes, len))
			return NULL;
		e->parsed = parse_all_updates(e->text, e->len, &e->ups,
		                              &e->nups, &e->ups_cap);
	} else {
		e->len = len;
		e->parsed = parse_all_updates(bytes, len, &e->ups, &e->nups,
		                              &e->ups_cap);
	}
	/* By symbol (stable: a symbol's updates keep their order), so that
	 * applying them walks what a connection holds from one end to the
	 * other instead of jumping about it. */
	if (e->parsed)
		sort_by_symbol(e->ups, e->nups);
	e->ticks = e->snapshots = 0;
	for (size_t i = 0; e->parsed && i < e->nups; i++) {
		const struct update_ref *u = &e->ups[i];

		e->ticks += !u->snapshot && u->seq > u->from && u->from
		                    ? u->seq - u->from
		                    : 1;
		e->snapshots += u->snapshot;
	}
	e->hash = h;
	e->wire_len = len;
	e->compressed = compressed;
	return e;
}

/*
 * on_update() for every update of a frame seen before: the counters once
 * for the frame, then per update what depends on the connection (its
 * gap check, what it holds, the latency). What a connection holds of 1,000
 * symbols is cold by the time its next frame comes: it is fetched ahead.
 */
static void
apply_seen_frame(struct conn *c, const struct seen_frame *m)
{
	enum { AHEAD = 24 };
	bool counted = measuring && c->chaos == CH_NONE;
	uint64_t gaps = 0;

	cnt_total.updates += m->nups;
	cnt_total.ticks += m->ticks;
	cnt_total.snapshots += m->snapshots;
	if (counted) {
		cnt.updates += m->nups;
		cnt.ticks += m->ticks;
		cnt.snapshots += m->snapshots;
	}
	for (size_t i = 0; i < m->nups; i++) {
		const struct update_ref *u = &m->ups[i];
		struct held *h;

		if (!u->snapshot && counted)
			hist_add(&lat, recv_now_us - u->ts);
		if (!c->held)
			continue;
		if (i + AHEAD < m->nups)
			__builtin_prefetch(&c->held[m->ups[i + AHEAD].sym], 1);
		h = &c->held[u->sym];
		if (!u->snapshot && u->seq && h->seq != (uint32_t)u->from)
			gaps++;
		if (u->seq)
			h->seq = (uint32_t)u->seq;
		held_take_ts(h, u->ts);
		if (u->ts > best_ts[u->sym])
			best_ts[u->sym] = u->ts;
	}
	cnt_total.gaps += gaps;
	if (counted)
		cnt.gaps += gaps;
}

static void
count_message(const struct conn *c, size_t len)
{
	cnt_total.messages++;
	cnt_total.bytes += len;
	if (measuring && c->chaos == CH_NONE) {
		cnt.messages++;
		cnt.bytes += len;
	}
}

static void
on_message(struct conn *c, unsigned op, const char *s, size_t len)
{
	count_message(c, len);
	switch (opt.proto) {
	case P_PUBLISHER:
		on_publisher_message(c, s, len);
		break;
	case P_PLAIN:
	case P_NCHAN:
		on_tick_object(c, s, s + len);
		break;
	case P_NATS:
		on_nats_bytes(c, s, len);
		break;
	case P_SOCKETIO:
		on_socketio_message(c, s, len);
		break;
	}
	(void)op;
}

/* A whole message as it came: inflate it first when it is compressed. */
static void
on_frame_message(struct conn *c, unsigned op, bool compressed, const char *s,
                 size_t len)
{
	struct seen_frame *m;

	if (opt.proto != P_PUBLISHER || (!compressed && len < SEEN_MIN_TEXT)) {
		on_message(c, op, s, len);
		return;
	}
	m = frame_seen(s, len, compressed);
	if (!m) {
		note_error("a compressed message does not inflate", "", 0);
		conn_close(c, false);
		return;
	}
	if (m->parsed) {
		count_message(c, m->len);
		apply_seen_frame(c, m);
		return;
	}
	if (compressed)
		on_message(c, op, m->text, m->len);
	else
		on_message(c, op, s, len);
}

/* Parse the frames in buf[0..len); returns the bytes used (whole frames). */
static size_t
ws_parse(struct conn *c, char *buf, size_t len)
{
	size_t pos = 0;

	while (len - pos >= 2 && c->state != C_CLOSED) {
		unsigned char *h = (unsigned char *)buf + pos;
		unsigned op = h[0] & 0x0f;
		bool fin = h[0] & 0x80, masked = h[1] & 0x80,
		     compressed = c->deflate && (h[0] & 0x40);
		uint64_t plen = h[1] & 0x7f;
		size_t hl = 2, i;
		char *payload;

		if (plen == 126) {
			if (len - pos < 4)
				break;
			plen = ((uint64_t)h[2] << 8) | h[3];
			hl = 4;
		} else if (plen == 127) {
			if (len - pos < 10)
				break;
			plen = 0;
			for (i = 0; i < 8; i++)
				plen = (plen << 8) | h[2 + i];
			hl = 10;
		}
		if (masked)
			hl += 4; /* servers must not mask; tolerate it anyway */
		if (plen > MESSAGE_MAX) {
			note_error("server frame too large", "", 0);
			conn_close(c, false);
			return len;
		}
		if (len - pos < hl + plen)
			break;
		payload = buf + pos + hl;
		if (masked)
			for (i = 0; i < plen; i++)
				payload[i] ^= (char)h[hl - 4 + (i & 3)];
		cnt_total.frames++;
		if (measuring && c->chaos == CH_NONE) {
			cnt.frames++;
			if (op <= 0x2)
				cnt.wire_bytes += plen;
		}
		switch (op) {
		case 0x0: /* continuation */
			if (!c->in_fragments) {
				note_error("continuation without a start", "",
				           0);
				break;
			}
			buf_reserve(&c->msg, &c->msg_cap, c->msg_len + plen);
			memcpy(c->msg + c->msg_len, payload, plen);
			c->msg_len += plen;
			if (fin) {
				c->in_fragments = false;
				on_frame_message(c, c->msg_op,
				                 c->msg_compressed, c->msg,
				                 c->msg_len);
				c->msg_len = 0;
				if (c->msg_cap > 1024 * 1024) {
					free(c->msg);
					c->msg = NULL;
					c->msg_cap = 0;
				}
			}
			break;
		case 0x1: /* text */
		case 0x2: /* binary */
			if (fin) {
				on_frame_message(c, op, compressed, payload,
				                 plen);
			} else {
				c->in_fragments = true;
				c->msg_compressed = compressed;
				c->msg_op = (uint8_t)op;
				c->msg_len = 0;
				buf_reserve(&c->msg, &c->msg_cap, plen);
				memcpy(c->msg, payload, plen);
				c->msg_len = plen;
			}
			break;
		case 0x8: /* close: answer with the same code, then hang up */
			ws_send(c, 0x8, payload, plen >= 2 ? 2 : 0);
			conn_close(c, true);
			return len;
		case 0x9: /* ping */
			ws_send(c, 0xA, payload, plen);
			break;
		default: /* pong, reserved */
			break;
		}
		pos += hl + plen;
	}
	return pos;
}

/* ------------------------------------------------------------ connections */

static void post_end(struct conn *c);

static void
conn_close(struct conn *c, bool by_server)
{
	if (c->state == C_CLOSED)
		return;
	post_end(c);
	if (c->state == C_READY)
		ready_count--;
	if (c->state < C_READY)
		failed_count++;
	c->state = C_CLOSED;
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	/* A closer comes back as a new client. */
	c->subscribed = false;
	c->in_len = c->out_len = c->out_off = c->msg_len = c->nbuf_len = 0;
	c->in_fragments = false;
	free(c->held);
	c->held = NULL;
	closed_count++;
	cnt_total.closed++;
	if (measuring && c->chaos == CH_NONE)
		cnt.closed++;
	(void)by_server;
}

static unsigned conn_symbol(const struct conn *c, unsigned j);

/* The upgrade's path: nchan takes the channels there. */
static void
conn_path(const struct conn *c, char *out, size_t cap)
{
	unsigned j, k = opt.per_conn ? opt.per_conn : opt.symbols;
	size_t len;

	if (opt.proto != P_NCHAN) {
		snprintf(out, cap, "%s", opt.path);
		return;
	}
	len = (size_t)snprintf(out, cap, "%s", opt.path);
	for (j = 0; j < k && len + 8 < cap; j++)
		len += (size_t)snprintf(out + len, cap - len, "%sS%04u",
		                        j ? "," : "",
		                        opt.per_conn ? conn_symbol(c, j) : j);
}

static void
conn_open(struct conn *c)
{
	struct sockaddr_in sa;
	struct epoll_event ev;
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd < 0) {
		if (!first_error[0])
			snprintf(first_error, sizeof first_error,
			         "socket(): %s (raise ulimit -n)",
			         strerror(errno));
		c->state = C_CLOSED;
		failed_count++;
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)opt.port);
	inet_pton(AF_INET, opt.host, &sa.sin_addr);
	c->state = C_CONNECTING;
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) &&
	    errno != EINPROGRESS) {
		if (!first_error[0])
			snprintf(first_error, sizeof first_error,
			         "connect(): %s", strerror(errno));
		close(c->fd);
		c->fd = -1;
		c->state = C_CLOSED;
		failed_count++;
		return;
	}
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.u32 = c->idx;
	epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
	c->epollout = true;

	/* The upgrade request (or the event stream's GET), sent once the
	 * connect completes. */
	{
		char req[8192], path[4096];
		int n;

		conn_path(c, path, sizeof path);
		if (opt.transport == T_SSE) {
			if (!c->sse && !(c->sse = malloc(sizeof *c->sse))) {
				fprintf(stderr, "subload: out of memory\n");
				exit(1);
			}
			sse_stream_init(c->sse);
			conn_send(c, req,
			          sse_get_request(req, sizeof req, opt.host,
			                          opt.port, path));
			return;
		}
		n = snprintf(req, sizeof req,
		             "GET %s HTTP/1.1\r\n"
		             "Host: %s:%d\r\n"
		             "Upgrade: websocket\r\n"
		             "Connection: Upgrade\r\n"
		             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		             "Sec-WebSocket-Version: 13\r\n"
		             "%s"
		             "\r\n",
		             path, opt.host, opt.port,
		             opt.deflate ? "Sec-WebSocket-Extensions: "
		                           "permessage-deflate; "
		                           "server_no_context_takeover\r\n"
		                         : "");

		conn_send(c, req, (size_t)n);
	}
}

static void
conn_on_connected(struct conn *c)
{
	int err = 0;
	socklen_t l = sizeof err;

	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
	if (err) {
		if (!first_error[0])
			snprintf(first_error, sizeof first_error,
			         "connect to %s:%d: %s", opt.host, opt.port,
			         strerror(err));
		conn_close(c, false);
		return;
	}
	c->state = C_HANDSHAKE;
	conn_flush(c);
}

/* The upgrade reply; returns bytes used, or 0 when it is not all here. */
static size_t
handshake_parse(struct conn *c, char *buf, size_t len)
{
	char *end = memmem(buf, len, "\r\n\r\n", 4);

	if (!end)
		return 0;
	if (len < 12 || memcmp(buf + 9, "101", 3)) {
		note_error("upgrade refused: ", buf,
		           (size_t)(end - buf) > 120 ? 120
		                                     : (size_t)(end - buf));
		conn_close(c, false);
		return len;
	}
	c->state = C_OPEN;
	c->deflate = opt.deflate &&
	             memmem(buf, (size_t)(end - buf), "permessage-deflate", 18);
	if (opt.proto == P_PLAIN || opt.proto == P_NCHAN) {
		c->state = C_READY;
		ready_count++;
	}
	return (size_t)(end + 4 - buf);
}

/* ------------------------------------------------------------ sse */

/*
 * The SSE transport's side of a connection: subload_sse.c reads the event
 * stream; here its frames go where a WebSocket message goes, and each
 * request is POSTed on a connection of its own.
 */

/* What departed from the wire, once each on stderr at the end. */
#define SSE_PROBLEM_KINDS 16
static struct {
	const char *what;
	uint64_t count;
	char example[160];
} sse_problems[SSE_PROBLEM_KINDS];
static uint64_t posts_sent, posts_accepted;

static void
sse_problem(void *arg, const char *what, const char *text, size_t len)
{
	unsigned i;

	(void)arg;
	note_error(what, ": ", 2);
	for (i = 0; i < SSE_PROBLEM_KINDS; i++) {
		if (!sse_problems[i].what) {
			sse_problems[i].what = what;
			snprintf(sse_problems[i].example,
			         sizeof sse_problems[i].example, "%.*s",
			         (int)len, text);
		}
		if (sse_problems[i].what == what) {
			sse_problems[i].count++;
			return;
		}
	}
}

static void
sse_problems_print(void)
{
	unsigned i;

	for (i = 0; i < SSE_PROBLEM_KINDS && sse_problems[i].what; i++)
		fprintf(stderr, "subload: sse: %llu x %s, first: %s\n",
		        (unsigned long long)sse_problems[i].count,
		        sse_problems[i].what, sse_problems[i].example);
	if (opt.transport == T_SSE)
		fprintf(stderr,
		        "subload: sse: %llu requests posted, %llu "
		        "accepted (202)\n",
		        (unsigned long long)posts_sent,
		        (unsigned long long)posts_accepted);
}

/* One frame of the event stream: a WebSocket message's worth. */
static void
sse_frame(void *arg, const char *json, size_t len)
{
	struct conn *c = arg;

	cnt_total.frames++;
	if (measuring && c->chaos == CH_NONE)
		cnt.frames++;
	if (c->sse->frames == 1 && c->sse->resumed)
		sse_problem(c, "a new stream's first frame says resumed", json,
		            len);
	on_frame_message(c, 0x1, false, json, len);
}

static struct sse_handler
sse_handler_of(struct conn *c)
{
	return (struct sse_handler){sse_frame, sse_problem, c};
}

/* The event stream's head: what handshake_parse() is to an upgrade. */
static size_t
sse_head_parse(struct conn *c, char *buf, size_t len)
{
	struct sse_handler h = sse_handler_of(c);
	long n = sse_stream_head(c->sse, buf, len, &h);

	if (n < 0) {
		conn_close(c, false);
		return len;
	}
	if (n > 0)
		c->state = C_OPEN; /* the stream frame and hello to come */
	return (size_t)n;
}

/* The body in buf[0, *len), buf[0, done) taken in by an earlier read;
 * returns the bytes used, *len what is left of them once decoded. */
static size_t
sse_on_body(struct conn *c, char *buf, size_t done, size_t *len)
{
	struct sse_handler h = sse_handler_of(c);
	size_t used;

	if (measuring && c->chaos == CH_NONE)
		cnt.wire_bytes += *len - done;
	used = sse_stream_body(c->sse, buf, done, len, &h);
	if (c->sse->close_code) {
		char code[32];

		snprintf(code, sizeof code, "%d", c->sse->close_code);
		note_error("the server closed the stream with code ", code,
		           strlen(code));
		conn_close(c, true);
	} else if (c->sse->ended) {
		conn_close(c, true);
	}
	return used;
}

/*
 * At most this many requests are on their way at once; the others wait
 * their turn in a queue. 1,000 clients subscribing in the same moment
 * would otherwise open 1,000 connections in a burst: more than a listen
 * backlog may take (a refused SYN is tried again a second later), and
 * twice the connections the cell is about.
 */
#define POSTS_IN_FLIGHT 64
static unsigned posts_in_flight;
static uint32_t *post_queue; /* [conns]: indexes of waiting connections */
static unsigned post_queue_head, post_queue_len;

static void post_connect(struct conn *c);

static void
post_end(struct conn *c)
{
	struct sse_post *p = c->post;

	if (!p || p->fd < 0)
		return;
	epoll_ctl(epfd, EPOLL_CTL_DEL, p->fd, NULL);
	close(p->fd);
	p->fd = -1;
	posts_in_flight--;
	/* The next in the queue whose connection is still there. */
	while (post_queue_len && posts_in_flight < POSTS_IN_FLIGHT) {
		struct conn *next = &conns[post_queue[post_queue_head]];

		post_queue_head = (post_queue_head + 1) % opt.conns;
		post_queue_len--;
		next->post->waiting = false;
		if (next->state == C_READY && next->sse->session[0])
			post_connect(next);
	}
}

/* POST one request to the connection's session, now or in its turn. */
static void
post_start(struct conn *c, const char *body, size_t len)
{
	struct sse_post *p = c->post;

	if (!c->sse->session[0]) {
		note_error("no session key to post a request to (no stream "
		           "frame came)",
		           "", 0);
		return;
	}
	if (!p) {
		p = c->post = calloc(1, sizeof *p);
		if (!p) {
			fprintf(stderr, "subload: out of memory\n");
			exit(1);
		}
		p->fd = -1;
	}
	if (p->fd >= 0) {
		note_error("a request while the last is still on its way", "",
		           0);
		return;
	}
	buf_reserve(&p->body, &p->body_cap, len);
	memcpy(p->body, body, len);
	p->body_len = len;
	if (posts_in_flight < POSTS_IN_FLIGHT) {
		post_connect(c);
	} else if (!p->waiting) {
		if (!post_queue) {
			post_queue = calloc(opt.conns, sizeof *post_queue);
			if (!post_queue) {
				fprintf(stderr, "subload: out of memory\n");
				exit(1);
			}
		}
		/* A connection waits at most once: the queue never holds
		 * more than opt.conns. */
		post_queue[(post_queue_head + post_queue_len) % opt.conns] =
		        c->idx;
		post_queue_len++;
		p->waiting = true;
	}
}

static void
post_connect(struct conn *c)
{
	struct sse_post *p = c->post;
	struct sockaddr_in sa;
	struct epoll_event ev;
	char head[512];
	size_t hl;
	int one = 1;

	hl = sse_post_head(head, sizeof head, opt.host, opt.port,
	                   c->sse->session, p->body_len);
	buf_reserve(&p->out, &p->out_cap, hl + p->body_len);
	memcpy(p->out, head, hl);
	memcpy(p->out + hl, p->body, p->body_len);
	p->out_len = hl + p->body_len;
	p->out_off = p->in_len = 0;
	p->connected = p->sent = false;
	p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (p->fd < 0) {
		note_error("socket() for a request: ", strerror(errno),
		           strlen(strerror(errno)));
		return;
	}
	setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)opt.port);
	inet_pton(AF_INET, opt.host, &sa.sin_addr);
	if (connect(p->fd, (struct sockaddr *)&sa, sizeof sa) &&
	    errno != EINPROGRESS) {
		note_error("connect() for a request: ", strerror(errno),
		           strlen(strerror(errno)));
		close(p->fd);
		p->fd = -1;
		return;
	}
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.u32 = c->idx | POST_TAG;
	epoll_ctl(epfd, EPOLL_CTL_ADD, p->fd, &ev);
	posts_in_flight++;
	posts_sent++;
}

/* The request's connection is ready: connected, writable, or its reply
 * came. The reply's status is all that is read; then it is closed. */
static void
post_on_event(struct conn *c, uint32_t events)
{
	struct sse_post *p = c->post;
	ssize_t n;
	int status;

	if (!p || p->fd < 0)
		return;
	if (!p->connected) {
		int err = 0;
		socklen_t l = sizeof err;

		getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			note_error("connect for a request: ", strerror(err),
			           strlen(strerror(err)));
			post_end(c);
			return;
		}
		p->connected = true;
	}
	while (p->out_off < p->out_len) {
		n = send(p->fd, p->out + p->out_off, p->out_len - p->out_off,
		         MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			note_error("a request could not be sent: ",
			           strerror(errno), strlen(strerror(errno)));
			post_end(c);
			return;
		}
		p->out_off += (size_t)n;
	}
	if (p->out_off == p->out_len && !p->sent) {
		struct epoll_event ev = {.events = EPOLLIN,
		                         .data.u32 = c->idx | POST_TAG};

		p->sent = true;
		epoll_ctl(epfd, EPOLL_CTL_MOD, p->fd, &ev);
	}
	if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		return;
	n = recv(p->fd, p->in + p->in_len, sizeof p->in - p->in_len,
	         MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0)
		p->in_len += (size_t)n;
	status = sse_reply_status(p->in, p->in_len);
	if (status == 202) {
		posts_accepted++;
		post_end(c);
	} else if (status || n <= 0 || p->in_len == sizeof p->in) {
		const char *eol = memchr(p->in, '\r', p->in_len);

		note_error("a request was not accepted: ",
		           p->in_len ? p->in : "(no reply)",
		           p->in_len
		                   ? (size_t)((eol ? eol : p->in + p->in_len) -
		                              p->in)
		                   : 10);
		post_end(c);
	}
}

/*
 * Read what the socket has (at most limit bytes) and parse the whole frames.
 * A frame cut by the read is kept in c->in; the next read then goes straight
 * after it, so a large frame is copied once whatever number of reads it
 * takes (copying it into a scratch buffer at every read cost the load
 * client more than parsing it).
 */
static void
conn_on_readable(struct conn *c, size_t limit)
{
	size_t want = limit < READ_CHUNK ? limit : READ_CHUNK, used = 0, have,
	       carried;
	char *buf;
	ssize_t n;

	if (c->in_len) {
		buf_reserve(&c->in, &c->in_cap, c->in_len + want);
		buf = c->in;
		have = c->in_len;
	} else {
		buf_reserve(&scratch, &scratch_cap, want);
		buf = scratch;
		have = 0;
	}
	carried = have;
	n = recv(c->fd, buf + have, want, MSG_DONTWAIT);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		conn_close(c, true);
		return;
	}
	recv_now_us = clock_wall_us();
	have += (size_t)n;
	if (c->state == C_HANDSHAKE) {
		used = opt.transport == T_SSE ? sse_head_parse(c, buf, have)
		                              : handshake_parse(c, buf, have);
		/* What follows the head came in this read. */
		carried = used;
		if (!used) {
			if (buf == scratch) {
				buf_reserve(&c->in, &c->in_cap, have);
				memcpy(c->in, scratch, have);
			}
			c->in_len = have;
			return;
		}
	}
	if (c->state != C_CLOSED && opt.transport == T_SSE) {
		/* The event stream's bytes shrink as they are decoded. */
		size_t start = used, body = have - start;

		used = start +
		       sse_on_body(c, buf + start, carried - start, &body);
		have = start + body;
	} else if (c->state != C_CLOSED) {
		used += ws_parse(c, buf + used, have - used);
	}
	if (c->state == C_CLOSED)
		return;
	c->in_len = have - used;
	if (c->in_len) {
		if (buf == scratch) {
			buf_reserve(&c->in, &c->in_cap, c->in_len);
			memcpy(c->in, scratch + used, c->in_len);
		} else if (used) {
			memmove(c->in, c->in + used, c->in_len);
		}
	} else if (c->in_cap > 4 * READ_CHUNK) {
		free(c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
}

static unsigned
conn_symbol(const struct conn *c, unsigned j)
{
	return (unsigned)(((uint64_t)c->idx * opt.per_conn + j) % opt.symbols);
}

static void
conn_subscribe(struct conn *c)
{
	bool all = opt.per_conn == 0;
	char *msg = NULL;
	size_t cap = 0, len = 0;
	unsigned j;
	char item[64];

	if (c->state != C_READY || c->subscribed)
		return;
	c->subscribed = true;
	c->held = calloc(opt.symbols, sizeof *c->held);
	if (!c->held) {
		fprintf(stderr, "subload: out of memory\n");
		exit(1);
	}
#define APPEND(s, n)                                                           \
	do {                                                                   \
		buf_reserve(&msg, &cap, len + (n) + 1);                        \
		memcpy(msg + len, (s), (n));                                   \
		len += (n);                                                    \
	} while (0)
	switch (opt.proto) {
	case P_PUBLISHER:
	case P_PLAIN:
	case P_SOCKETIO:
		if (opt.proto == P_SOCKETIO)
			APPEND("42[\"join\",[", 11);
		else
			APPEND("{\"op\":\"subscribe\",\"id\":1,\"symbols\":[",
			       36);
		if (all) {
			APPEND("\"*\"", 3);
		} else {
			for (j = 0; j < opt.per_conn; j++) {
				int n = snprintf(item, sizeof item,
				                 "%s\"S%04u\"", j ? "," : "",
				                 conn_symbol(c, j));

				APPEND(item, (size_t)n);
			}
		}
		if (opt.proto == P_SOCKETIO) {
			APPEND("]]", 2);
		} else if (opt.proto == P_PUBLISHER && opt.max_hz > 0) {
			int n = snprintf(item, sizeof item, "],\"max_hz\":%g}",
			                 opt.max_hz);

			APPEND(item, (size_t)n);
		} else {
			APPEND("]}", 2);
		}
		if (opt.transport == T_SSE)
			post_start(c, msg, len);
		else
			ws_send_text(c, msg, len);
		break;
	case P_NATS:
		if (all) {
			APPEND("SUB tick.> 1\r\n", 14);
		} else {
			for (j = 0; j < opt.per_conn; j++) {
				int n = snprintf(item, sizeof item,
				                 "SUB tick.S%04u %u\r\n",
				                 conn_symbol(c, j), j + 1);

				APPEND(item, (size_t)n);
			}
		}
		ws_send_text(c, msg, len);
		break;
	case P_NCHAN:
		break; /* subscribed by the upgrade's path */
	}
#undef APPEND
	free(msg);
	if (!reads_when_ready(c))
		conn_set_events(c);
}

/* ------------------------------------------------------------ main */

static void
usage(void)
{
	fprintf(stderr,
	        "usage: subload --port P [--host 127.0.0.1] [--path /ws]\n"
	        "  [--proto publisher|plain|nats|socketio|nchan] [--conns N]\n"
	        "  [--symbols M] [--per-conn K|all] [--open-rate R]\n"
	        "  [--settle S] [--warmup W] [--duration D]\n"
	        "  [--server-pid P[,P...]] [--rss-limit-mb MB] [--label TEXT]\n"
	        "  [--shm FILE] [--chaos FRACTION] [--deflate] [--max-hz H]\n"
	        "  [--transport ws|sse] [-- TICKGEN ARGV...]\n");
	exit(2);
}

static void
parse_args(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v;

		if (!strcmp(a, "--")) {
			if (i + 1 < argc)
				opt.tickgen_argv = argv + i + 1;
			break;
		}
		if (!strcmp(a, "--deflate")) {
			opt.deflate = true;
			continue;
		}
		v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--port"))
			opt.port = atoi(v);
		else if (!strcmp(a, "--host"))
			opt.host = v;
		else if (!strcmp(a, "--path"))
			opt.path = v;
		else if (!strcmp(a, "--label"))
			opt.label = v;
		else if (!strcmp(a, "--proto")) {
			if (!strcmp(v, "publisher"))
				opt.proto = P_PUBLISHER;
			else if (!strcmp(v, "plain") || !strcmp(v, "ws"))
				opt.proto = P_PLAIN;
			else if (!strcmp(v, "nats"))
				opt.proto = P_NATS;
			else if (!strcmp(v, "socketio"))
				opt.proto = P_SOCKETIO;
			else if (!strcmp(v, "nchan"))
				opt.proto = P_NCHAN;
			else
				usage();
		} else if (!strcmp(a, "--conns"))
			opt.conns = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--symbols"))
			opt.symbols = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--per-conn"))
			opt.per_conn = !strcmp(v, "all") || !strcmp(v, "*")
			                       ? 0
			                       : (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--open-rate"))
			opt.open_rate = strtod(v, NULL);
		else if (!strcmp(a, "--settle"))
			opt.settle = strtod(v, NULL);
		else if (!strcmp(a, "--warmup"))
			opt.warmup = strtod(v, NULL);
		else if (!strcmp(a, "--duration"))
			opt.duration = strtod(v, NULL);
		else if (!strcmp(a, "--rss-limit-mb"))
			opt.rss_limit_mb = strtod(v, NULL);
		else if (!strcmp(a, "--shm"))
			opt.shm_path = v;
		else if (!strcmp(a, "--chaos"))
			opt.chaos = strtod(v, NULL);
		else if (!strcmp(a, "--max-hz"))
			opt.max_hz = strtod(v, NULL);
		else if (!strcmp(a, "--transport")) {
			if (!strcmp(v, "ws"))
				opt.transport = T_WS;
			else if (!strcmp(v, "sse"))
				opt.transport = T_SSE;
			else
				usage();
		} else if (!strcmp(a, "--server-pid")) {
			char *copy = strdup(v), *tok, *save = NULL;

			for (tok = strtok_r(copy, ",", &save);
			     tok && opt.server_pid_count < MAX_PIDS;
			     tok = strtok_r(NULL, ",", &save))
				opt.server_pids[opt.server_pid_count++] =
				        (pid_t)atoi(tok);
			free(copy);
		} else
			usage();
	}
	if (opt.port <= 0 || !opt.conns || !opt.symbols || opt.open_rate <= 0)
		usage();
	if (opt.per_conn >= opt.symbols)
		opt.per_conn = 0;
	if (opt.transport == T_SSE &&
	    (opt.proto != P_PUBLISHER || opt.deflate)) {
		fprintf(stderr,
		        "subload: --transport sse speaks this "
		        "project's protocol (--proto publisher), without "
		        "--deflate\n");
		exit(2);
	}
	if (!opt.path)
		opt.path = opt.transport == T_SSE ? "/stream/events"
		           : opt.proto == P_SOCKETIO
		                   ? "/socket.io/?EIO=4&transport=websocket"
		           : opt.proto == P_NATS  ? "/"
		           : opt.proto == P_NCHAN ? "/sub/"
		                                  : "/ws";
	if (opt.proto == P_NCHAN &&
	    (opt.per_conn ? opt.per_conn : opt.symbols) > 255) {
		fprintf(stderr,
		        "subload: nchan takes at most 255 channels per "
		        "connection; --per-conn %u over %u symbols needs "
		        "more\n",
		        opt.per_conn, opt.symbols);
		exit(2);
	}
}

static pid_t
start_tickgen(void)
{
	char **argv = opt.tickgen_argv;
	size_t n = 0;
	pid_t pid;

	if (!argv)
		return 0;
	while (argv[n])
		n++;
	if (opt.shm_path) {
		/* tickgen records what it sends where subload reads it. */
		char **a = calloc(n + 3, sizeof *a);

		if (!a) {
			fprintf(stderr, "subload: out of memory\n");
			exit(1);
		}
		memcpy(a, argv, n * sizeof *a);
		a[n] = "--shm";
		a[n + 1] = (char *)opt.shm_path;
		argv = a;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		execv(argv[0], argv);
		fprintf(stderr, "subload: cannot run %s: %s\n",
		        opt.tickgen_argv[0], strerror(errno));
		_exit(127);
	}
	if (pid < 0)
		fprintf(stderr, "subload: fork: %s\n", strerror(errno));
	return pid < 0 ? 0 : pid;
}

/* --shm: make the file tickgen records into, sized for the symbols. */
static void
shm_create(void)
{
	size_t len = tick_shm_size(opt.symbols);
	int fd = open(opt.shm_path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || ftruncate(fd, (off_t)len)) {
		fprintf(stderr, "subload: --shm %s: %s\n", opt.shm_path,
		        strerror(errno));
		exit(1);
	}
	shm = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (shm == MAP_FAILED) {
		fprintf(stderr, "subload: --shm %s: mmap: %s\n", opt.shm_path,
		        strerror(errno));
		exit(1);
	}
	shm->magic = TICK_SHM_MAGIC;
	shm->symbols = opt.symbols;
}

/* The tick after the one c holds of sym: its number (1-based), or 0 when
 * c holds the last tick sent. */
static uint64_t
next_tick(const struct conn *c, unsigned sym, uint64_t count)
{
	const struct held *h = &c->held[sym];
	uint64_t k;

	if (opt.proto == P_PUBLISHER)
		return h->seq >= count ? 0 : h->seq + 1;
	/* The peers send no seq: the first tick sent after the held one's
	 * time (ticks of one batch share a time: the same instant). */
	k = count > TICK_SHM_RING ? count - TICK_SHM_RING + 1 : 1;
	for (; k <= count; k++)
		if (tick_shm_ts(shm, sym, k, count) > held_ts(h))
			return k;
	return 0;
}

/* How long the value c holds of sym has been stale at now: since the send
 * time of the first tick after it (at least as long as the oldest time the
 * ring still has), 0 when it is the last tick sent. */
static int64_t
stale_vs_source(const struct conn *c, unsigned sym, int64_t now)
{
	uint64_t count = tick_shm_count(shm, sym), k = next_tick(c, sym, count);
	int64_t ts;

	if (!k)
		return 0;
	ts = tick_shm_ts(shm, sym, k, count);
	if (!ts)
		ts = tick_shm_ts(
		        shm, sym,
		        count > TICK_SHM_RING ? count - TICK_SHM_RING + 1 : 1,
		        count);
	return ts && now > ts ? now - ts : 0;
}

static bool
conn_has_symbol(const struct conn *c, unsigned sym)
{
	unsigned j;

	if (!opt.per_conn)
		return true;
	for (j = 0; j < opt.per_conn; j++)
		if (conn_symbol(c, j) == sym)
			return true;
	return false;
}

/* Well-behaved (connection, symbol) pairs not yet holding the symbol's last
 * tick. */
static uint64_t
unconverged_pairs(void)
{
	uint64_t n = 0;
	unsigned i, sym;

	for (i = 0; i < opt.conns; i++) {
		const struct conn *c = &conns[i];

		if (c->chaos != CH_NONE || c->state != C_READY || !c->held)
			continue;
		for (sym = 0; sym < opt.symbols; sym++) {
			uint64_t count = tick_shm_count(shm, sym);

			if (count && conn_has_symbol(c, sym) &&
			    next_tick(c, sym, count))
				n++;
		}
	}
	return n;
}

/* --chaos: which connections misbehave, and how (in turn). */
static void
chaos_assign(void)
{
	unsigned every, i, k = 0;

	if (opt.chaos <= 0)
		return;
	every = (unsigned)(1.0 / opt.chaos + 0.5);
	if (every < 1)
		every = 1;
	for (i = 0; i < opt.conns; i += every)
		conns[i].chaos = (uint8_t)(CH_SLOW + k++ % 3);
}

/* Slow clients read a little; closers read part of a frame and hang up,
 * then come back. Called every CHAOS_SLOW_US. */
static void
chaos_step(int64_t now)
{
	static int64_t next_close;
	unsigned i;

	for (i = 0; i < opt.conns; i++) {
		struct conn *c = &conns[i];

		if (c->chaos == CH_SLOW && c->state != C_CLOSED)
			conn_on_readable(c, CHAOS_SLOW_BYTES);
		if (c->chaos == CH_CLOSER && c->state == C_CLOSED)
			conn_open(c);
		if (c->chaos == CH_CLOSER && c->state == C_READY &&
		    !c->subscribed)
			conn_subscribe(c);
	}
	if (now < next_close)
		return;
	next_close = now + CHAOS_CLOSE_US;
	for (i = 0; i < opt.conns; i++) {
		struct conn *c = &conns[i];
		char part[1000];

		if (c->chaos != CH_CLOSER || c->state != C_READY ||
		    xorshift64star_next(&rng_state) % 2)
			continue;
		/* Part of a frame, then gone, with the rest unread. */
		if (recv(c->fd, part, sizeof part, MSG_DONTWAIT) < 0 &&
		    errno != EAGAIN)
			continue;
		conn_close(c, false);
	}
}

static const char *
proto_name(void)
{
	static const char *const names[] = {"publisher", "plain", "nats",
	                                    "socketio", "nchan"};

	return names[opt.proto];
}

int
main(int argc, char **argv)
{
	struct epoll_event *events;
	struct rlimit rl;
	struct sigaction sa;
	unsigned opened = 0, i;
	enum phase phase = PH_OPENING;
	int64_t t_start, t_phase, next_stale = 0, next_rss = 0, open_deadline;
	long rss_base = -1, rss_idle = -1, rss_loaded = -1, rss_peak = -1;
	double srv_cpu0 = 0, srv_cpu1 = 0, self_cpu0 = 0, self_cpu1 = 0,
	       gen_cpu0 = 0, gen_cpu1 = 0, win_secs = 0, open_secs = 0;
	unsigned long long c0b0 = 0, c0t0 = 0, c1b0 = 0, c1t0 = 0, c0b1, c0t1,
	                   c1b1, c1t1;
	unsigned ready_at_subscribe = 0, ready_at_end = 0;
	const char *aborted = "";
	pid_t gen = 0;
	int gen_status = 0;
	bool gen_done = false;
	int64_t next_chaos = 0;
	double converge_ms = -1;
	uint64_t unconverged = 0;
	unsigned well_behaved = 0;

	parse_args(argc, argv);
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	rng_state ^= (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL;

	conns = calloc(opt.conns, sizeof *conns);
	best_ts = calloc(opt.symbols, sizeof *best_ts);
	events = calloc(1024, sizeof *events);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || !best_ts || !events || epfd < 0) {
		fprintf(stderr, "subload: out of memory\n");
		return 1;
	}
	for (i = 0; i < opt.conns; i++) {
		conns[i].idx = i;
		conns[i].fd = -1;
		conns[i].state = C_CLOSED;
	}
	if (opt.shm_path)
		shm_create();
	rss_base = servers_rss_kb();
	ts_base = clock_wall_us() - 10 * 1000000LL;
	t_start = t_phase = clock_mono_us();
	open_deadline =
	        t_start + (int64_t)((opt.conns / opt.open_rate + 20) * 1e6);
	fprintf(stderr, "subload: %s, opening %u connections at %.0f/s\n",
	        proto_name(), opt.conns, opt.open_rate);

	while (phase != PH_DONE) {
		int64_t now;
		int n, k, timeout = 5;

		n = epoll_wait(epfd, events, 1024, timeout);
		for (k = 0; k < n; k++) {
			uint32_t tag = events[k].data.u32;
			struct conn *c = &conns[tag & ~POST_TAG];

			if (tag & POST_TAG) {
				post_on_event(c, events[k].events);
				continue;
			}
			if (c->state == C_CLOSED)
				continue;
			if (c->state == C_CONNECTING &&
			    (events[k].events &
			     (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
				conn_on_connected(c);
				continue;
			}
			if (events[k].events & EPOLLOUT)
				conn_flush(c);
			if (c->state != C_CLOSED &&
			    (events[k].events &
			     (EPOLLIN | EPOLLERR | EPOLLHUP)))
				conn_on_readable(c, READ_CHUNK);
		}
		now = clock_mono_us();
		if (stop_flag) {
			aborted = "signal";
			break;
		}
		if (opt.chaos > 0 && phase >= PH_WARMUP && now >= next_chaos) {
			next_chaos = now + CHAOS_SLOW_US;
			chaos_step(now);
		}

		switch (phase) {
		case PH_OPENING: {
			uint64_t due = (uint64_t)((double)(now - t_start) *
			                          opt.open_rate / 1e6) +
			               1;

			while (opened < opt.conns && opened < due)
				conn_open(&conns[opened++]);
			if (opened == opt.conns &&
			    (ready_count + failed_count >= opt.conns ||
			     now > open_deadline)) {
				open_secs = (double)(now - t_start) / 1e6;
				fprintf(stderr,
				        "subload: %u ready, %u failed in %.1f "
				        "s\n",
				        ready_count, failed_count, open_secs);
				phase = PH_SETTLE;
				t_phase = now;
			}
			break;
		}
		case PH_SETTLE:
			if (now - t_phase < (int64_t)(opt.settle * 1e6))
				break;
			rss_idle = servers_rss_kb();
			ready_at_subscribe = ready_count;
			chaos_assign();
			for (i = 0; i < opt.conns; i++)
				conn_subscribe(&conns[i]);
			gen = start_tickgen();
			phase = PH_WARMUP;
			t_phase = now;
			break;
		case PH_WARMUP:
			if (now - t_phase < (int64_t)(opt.warmup * 1e6))
				break;
			memset(&cnt, 0, sizeof cnt);
			srv_cpu0 = servers_cpu_s();
			self_cpu0 = self_cpu_s();
			gen_cpu0 = gen ? proc_cpu_s(gen) : 0;
			core_jiffies(0, &c0b0, &c0t0);
			core_jiffies(1, &c1b0, &c1t0);
			measuring = true;
			phase = PH_MEASURE;
			t_phase = now;
			next_stale = now + STALE_PERIOD_US;
			break;
		case PH_MEASURE:
			if (now >= next_stale) {
				int64_t rnow = clock_wall_us();
				unsigned s;

				next_stale += STALE_PERIOD_US;
				for (s = 0; s < STALE_SAMPLES && ready_count;
				     s++) {
					struct conn *c =
					        &conns[xorshift64star_next(
					                       &rng_state) %
					               opt.conns];
					unsigned sym;

					if (c->state != C_READY || !c->held)
						continue;
					sym = opt.per_conn
					              ? conn_symbol(
					                        c,
					                        (unsigned)(xorshift64star_next(
					                                           &rng_state) %
					                                   opt.per_conn))
					              : (unsigned)(xorshift64star_next(
					                                   &rng_state) %
					                           opt.symbols);
					if (!c->held[sym].ts_off || c->chaos)
						continue;
					if (shm)
						hist_add(&stale_src,
						         stale_vs_source(c, sym,
						                         rnow));
					hist_add(&stale_age,
					         rnow - held_ts(&c->held[sym]));
					hist_add(
					        &stale_lag,
					        best_ts[sym] -
					                held_ts(&c->held[sym]));
				}
			}
			if (opt.rss_limit_mb > 0 && now >= next_rss) {
				long r = servers_rss_kb();

				next_rss = now + RSS_CHECK_US;
				if (r > rss_peak)
					rss_peak = r;
				if (r > opt.rss_limit_mb * 1024) {
					aborted = "server_rss_limit";
					goto window_end;
				}
			}
			if (now - t_phase < (int64_t)(opt.duration * 1e6))
				break;
		window_end:
			win_secs = (double)(now - t_phase) / 1e6;
			measuring = false;
			srv_cpu1 = servers_cpu_s();
			self_cpu1 = self_cpu_s();
			gen_cpu1 = gen ? proc_cpu_s(gen) : 0;
			core_jiffies(0, &c0b1, &c0t1);
			core_jiffies(1, &c1b1, &c1t1);
			rss_loaded = servers_rss_kb();
			if (rss_loaded > rss_peak)
				rss_peak = rss_loaded;
			ready_at_end = 0;
			for (i = 0; i < opt.conns; i++) {
				if (conns[i].chaos != CH_NONE)
					continue;
				well_behaved++;
				ready_at_end += conns[i].state == C_READY;
			}
			phase = shm ? PH_CONVERGE : PH_DONE;
			t_phase = now;
			break;
		case PH_CONVERGE: {
			/* Once the generator has stopped: how long until
			 * every client holds every symbol's last tick. */
			int64_t done = __atomic_load_n(&shm->done_us,
			                               __ATOMIC_ACQUIRE);

			if (!done) {
				if (now - t_phase > 2 * CONVERGE_WAIT_US)
					phase = PH_DONE;
				break;
			}
			if (now >= next_stale) {
				next_stale = now + 20000;
				unconverged = unconverged_pairs();
				if (!unconverged) {
					converge_ms = (double)(clock_wall_us() -
					                       done) /
					              1e3;
					phase = PH_DONE;
				} else if (clock_wall_us() - done >
				           CONVERGE_WAIT_US) {
					phase = PH_DONE;
				}
			}
			break;
		}
		case PH_DONE:
			break;
		}
		if (gen && !gen_done &&
		    waitpid(gen, &gen_status, WNOHANG) == gen)
			gen_done = true;
	}

	if (phase != PH_DONE) { /* interrupted */
		win_secs = measuring ? (double)(clock_mono_us() - t_phase) / 1e6
		                     : 0;
		srv_cpu1 = srv_cpu0;
		self_cpu1 = self_cpu0;
		gen_cpu1 = gen_cpu0;
		c0b1 = c0b0, c0t1 = c0t0, c1b1 = c1b0, c1t1 = c1t0;
	}
	if (gen && !gen_done) {
		kill(gen, SIGTERM);
		waitpid(gen, &gen_status, 0);
	}

	{
		double upd_s =
		        win_secs > 0 ? (double)cnt.updates / win_secs : 0;
		double srv_cpu = srv_cpu1 - srv_cpu0;
		double load_cpu =
		        (self_cpu1 - self_cpu0) + (gen_cpu1 - gen_cpu0);
		double load_frac = win_secs > 0 ? load_cpu / win_secs : 0;
		double core0 = c0t1 > c0t0 ? (double)(c0b1 - c0b0) /
		                                     (double)(c0t1 - c0t0)
		                           : 0;
		double core1 = c1t1 > c1t0 ? (double)(c1b1 - c1b0) /
		                                     (double)(c1t1 - c1t0)
		                           : 0;
		double per_idle =
		        rss_idle >= 0 && rss_base >= 0 && ready_at_subscribe
		                ? (double)(rss_idle - rss_base) * 1024.0 /
		                          ready_at_subscribe
		                : -1;
		double per_loaded =
		        rss_loaded >= 0 && rss_base >= 0 && ready_at_end
		                ? (double)(rss_loaded - rss_base) * 1024.0 /
		                          ready_at_end
		                : -1;
		const char *invalid = "";

		if (load_frac > LOAD_CPU_MAX)
			invalid = "load_core_saturated";
		else if (*aborted)
			invalid = aborted;
		else if (ready_at_end < well_behaved)
			invalid = "connections_lost";

		printf("RESULT label=%s proto=%s transport=%s conns=%u "
		       "ready=%u "
		       "ready_end=%u failed=%u symbols=%u per_conn=%s%u "
		       "open_s=%.2f window_s=%.2f updates=%llu "
		       "upd_per_s=%.0f ticks_per_s=%.0f snapshots=%llu "
		       "msgs_per_s=%.0f "
		       "frames_per_s=%.0f mbytes_per_s=%.2f gaps=%llu "
		       "closed=%llu proto_errors=%llu "
		       "lat_p50_us=%lld lat_p99_us=%lld lat_p999_us=%lld "
		       "lat_max_us=%lld lat_n=%llu "
		       "stale_p50_us=%lld stale_p99_us=%lld "
		       "lag_p50_us=%lld lag_p99_us=%lld "
		       "srv_cpu_s=%.3f srv_cpu_frac=%.3f "
		       "srv_cpu_s_per_mupd=%.4f upd_per_srv_cpu_s=%.0f "
		       "rss_base_kb=%ld rss_idle_kb=%ld rss_loaded_kb=%ld "
		       "rss_peak_kb=%ld rss_per_idle_conn_b=%.0f "
		       "rss_per_loaded_conn_b=%.0f "
		       "load_cpu_s=%.3f load_cpu_frac=%.3f cpu0_busy=%.3f "
		       "cpu1_busy=%.3f stale_src_p50_us=%lld "
		       "stale_src_p99_us=%lld stale_src_p999_us=%lld "
		       "stale_src_n=%llu converge_ms=%.1f unconverged=%llu "
		       "bytes_per_upd=%.1f text_bytes_per_upd=%.1f "
		       "upd_per_frame=%.2f deflate=%s inflated_per_s=%.0f "
		       "chaos=%.3f well_behaved=%u invalid=%s\n",
		       *opt.label ? opt.label : "-", proto_name(),
		       opt.transport == T_SSE ? "sse" : "ws", opt.conns,
		       ready_at_subscribe, ready_at_end, failed_count,
		       opt.symbols, opt.per_conn ? "" : "all", opt.per_conn,
		       open_secs, win_secs, (unsigned long long)cnt.updates,
		       upd_s, win_secs > 0 ? (double)cnt.ticks / win_secs : 0,
		       (unsigned long long)cnt.snapshots,
		       win_secs > 0 ? cnt.messages / win_secs : 0,
		       win_secs > 0 ? cnt.frames / win_secs : 0,
		       win_secs > 0 ? cnt.wire_bytes / win_secs / 1e6 : 0,
		       (unsigned long long)cnt.gaps,
		       (unsigned long long)cnt.closed,
		       (unsigned long long)cnt.proto_errors,
		       (long long)hist_pct(&lat, 50),
		       (long long)hist_pct(&lat, 99),
		       (long long)hist_pct(&lat, 99.9),
		       (long long)(lat.total ? lat.max : -1),
		       (unsigned long long)lat.total,
		       (long long)hist_pct(&stale_age, 50),
		       (long long)hist_pct(&stale_age, 99),
		       (long long)hist_pct(&stale_lag, 50),
		       (long long)hist_pct(&stale_lag, 99), srv_cpu,
		       win_secs > 0 ? srv_cpu / win_secs : 0,
		       cnt.updates ? srv_cpu / ((double)cnt.updates / 1e6) : 0,
		       srv_cpu > 0 ? (double)cnt.updates / srv_cpu : 0,
		       rss_base, rss_idle, rss_loaded, rss_peak, per_idle,
		       per_loaded, load_cpu, load_frac, core0, core1,
		       (long long)(shm ? hist_pct(&stale_src, 50) : -1),
		       (long long)(shm ? hist_pct(&stale_src, 99) : -1),
		       (long long)(shm ? hist_pct(&stale_src, 99.9) : -1),
		       (unsigned long long)stale_src.total, converge_ms,
		       (unsigned long long)unconverged,
		       cnt.updates
		               ? (double)cnt.wire_bytes / (double)cnt.updates
		               : 0,
		       cnt.updates ? (double)cnt.bytes / (double)cnt.updates
		                   : 0,
		       cnt.frames ? (double)cnt.updates / (double)cnt.frames
		                  : 0,
		       opt.deflate ? "on" : "off",
		       win_secs > 0 ? (double)inflate_misses / win_secs : 0,
		       opt.chaos, well_behaved, *invalid ? invalid : "no");
		if (first_error[0])
			fprintf(stderr, "subload: first problem: %s\n",
			        first_error);
		sse_problems_print();
		fflush(stdout);
	}
	return 0;
}

/*
 * tickgen: a paced JSONL tick producer for the benchmark suite.
 *
 *   tickgen --connect HOST:PORT [--symbols M] [--rate R|max] [--duration D]
 *           [--zipf S] [--seed N] [--batch-us U] [--trade-every N]
 *           [--shm FILE]
 *
 * M symbols named S0000, S0001, ... with Zipf popularity (symbol i is picked
 * with probability proportional to 1 / (i + 1)^S), R ticks per second in
 * total, for D seconds, as JSONL lines on one TCP connection: the line format
 * the publisher's tcp: feed reads and the peers' bridges forward.
 *
 * Pacing follows a monotonic schedule: at elapsed time t, R * t ticks are due.
 * Each turn writes every tick due so far in one write() (batched), then sleeps
 * until the next is due, but at most --batch-us. The `ts` of every tick is its
 * send time (CLOCK_REALTIME, microseconds): subscribers on the same machine
 * compute tick->client latency as their receive time minus ts.
 *
 * When the receiver cannot take R (its socket buffer is full and write()
 * blocks), the schedule is not caught up in a burst later: ticks more than
 * 100 ms behind the schedule are skipped and counted, so "achieved" says what
 * the receiver sustained. With --rate max there is no schedule at all: ticks
 * are written as fast as the receiver takes them (the ingest measurement).
 *
 * With --shm FILE (made and sized by subload, see tick_shm.h), every tick
 * sent is also recorded there once its write() has returned: per symbol the
 * number sent so far and the send times of the last few, so that subload
 * can tell how stale each client's value is against the source itself.
 *
 * Prints one line at the end:
 *   TICKGEN sent=N skipped=N secs=S rate=R target=R bytes=N err_lines=N
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "tick_shm.h"

#include "support/net.h"
#include "support/rng.h"

/* Largest batch written at once (bytes); a batch never splits a line. */
#define OUT_CAP (1024 * 1024)
/* A line is at most this long. */
#define LINE_MAX_LEN 192
/* How far behind the schedule the generator may fall before it skips. */
#define MAX_LAG_US 100000

struct symbol {
	char name[8];
	int64_t bid; /* in cents */
	int64_t volume;
};

static volatile sig_atomic_t stop_flag;

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* xorshift64* (support/rng.h): fast, good enough for picking symbols. */
static uint64_t rng_state = 88172645463325252ULL;

static double
rng_unit(void)
{
	return (double)(xorshift64star_next(&rng_state) >> 11) *
	       (1.0 / 9007199254740992.0);
}

/* Write v in decimal at p; returns the end. */
static char *
put_u64(char *p, uint64_t v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* A price in cents as a decimal with two places: 18935 -> 189.35. */
static char *
put_cents(char *p, int64_t cents)
{
	if (cents < 0) {
		*p++ = '-';
		cents = -cents;
	}
	p = put_u64(p, (uint64_t)cents / 100);
	*p++ = '.';
	*p++ = (char)('0' + (cents % 100) / 10);
	*p++ = (char)('0' + cents % 10);
	return p;
}

static char *
put_str(char *p, const char *s)
{
	size_t n = strlen(s);

	memcpy(p, s, n);
	return p + n;
}

/* One tick line. Quotes move bid/ask by a cent; every trade_every-th tick
 * of a symbol is a trade instead. */
static char *
put_tick(char *p, struct symbol *s, int64_t ts, unsigned trade_every,
         uint64_t n)
{
	uint64_t r = xorshift64star_next(&rng_state);

	p = put_str(p, "{\"ts\":");
	p = put_u64(p, (uint64_t)ts);
	p = put_str(p, ",\"symbol\":\"");
	p = put_str(p, s->name);
	if (trade_every && n % trade_every == 0) {
		uint64_t size = 1 + (r >> 40) % 500;

		s->volume += (int64_t)size;
		p = put_str(p, "\",\"last\":");
		p = put_cents(p, s->bid + 1);
		p = put_str(p, ",\"last_size\":");
		p = put_u64(p, size);
	} else {
		s->bid += (r & 1) ? 1 : -1;
		if (s->bid < 100)
			s->bid = 100;
		p = put_str(p, "\",\"bid\":");
		p = put_cents(p, s->bid);
		p = put_str(p, ",\"ask\":");
		p = put_cents(p, s->bid + 2);
		p = put_str(p, ",\"bid_size\":");
		p = put_u64(p, 100 * (1 + ((r >> 8) & 7)));
	}
	*p++ = '}';
	*p++ = '\n';
	return p;
}

static int
connect_to(const char *hostport)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints, *res, *ai;
	int fd = -1, one = 1, rc;

	if (!colon || (size_t)(colon - hostport) >= sizeof host) {
		fprintf(stderr,
		        "tickgen: --connect wants HOST:PORT, not '%s'\n",
		        hostport);
		return -1;
	}
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = '\0';
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, colon + 1, &hints, &res);
	if (rc) {
		fprintf(stderr, "tickgen: cannot resolve '%s': %s\n", hostport,
		        gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		fprintf(stderr, "tickgen: cannot connect to %s: %s\n", hostport,
		        strerror(errno));
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/* Replies are read and counted but never wait: a receiver that answers
 * bad lines ("ERR ...") must not fill our receive buffer. */
static uint64_t
drain_replies(int fd)
{
	char buf[4096];
	uint64_t lines = 0;
	ssize_t n, i;

	while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
		for (i = 0; i < n; i++)
			lines += buf[i] == '\n';
		if (lines && lines < 4)
			fprintf(stderr, "tickgen: receiver said: %.*s\n",
			        (int)(n > 200 ? 200 : n), buf);
	}
	return lines;
}

static void
usage(void)
{
	fprintf(stderr,
	        "usage: tickgen --connect HOST:PORT [--symbols M] [--rate "
	        "R|max]\n"
	        "               [--duration SECS] [--zipf S] [--seed N]\n"
	        "               [--batch-us U] [--trade-every N]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *target = NULL;
	unsigned symbols = 1000, trade_every = 5;
	double rate = 10000, duration = 5, zipf = 1.0;
	int64_t batch_us = 1000;
	uint64_t seed = 1, sent = 0, skipped = 0, bytes = 0, err_lines = 0;
	double *cdf;
	struct symbol *sym;
	uint64_t *per_sym;
	char *out;
	int max_rate = 0, fd, i;
	int64_t start, end_at, now, t_real;
	struct sigaction sa;
	const char *shm_path = NULL;
	struct tick_shm *shm = NULL;
	uint32_t *batch_sym;
	size_t shm_len = 0;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		if (!strcmp(a, "--connect"))
			target = v;
		else if (!strcmp(a, "--symbols"))
			symbols = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--rate")) {
			if (!strcmp(v, "max"))
				max_rate = 1;
			else
				rate = strtod(v, NULL);
		} else if (!strcmp(a, "--duration"))
			duration = strtod(v, NULL);
		else if (!strcmp(a, "--zipf"))
			zipf = strtod(v, NULL);
		else if (!strcmp(a, "--seed"))
			seed = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--batch-us"))
			batch_us = strtoll(v, NULL, 10);
		else if (!strcmp(a, "--trade-every"))
			trade_every = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--shm"))
			shm_path = v;
		else
			usage();
		i++;
	}
	if (!target || !symbols || symbols > 10000 || rate <= 0 ||
	    duration <= 0 || batch_us <= 0)
		usage();
	rng_state ^= seed * 0x9E3779B97F4A7C15ULL;
	if (!rng_state)
		rng_state = 1;

	/* Zipf: cumulative weights, searched by bisection per tick. */
	cdf = malloc(symbols * sizeof *cdf);
	sym = calloc(symbols, sizeof *sym);
	per_sym = calloc(symbols, sizeof *per_sym);
	out = malloc(OUT_CAP);
	batch_sym = malloc(OUT_CAP / LINE_MAX_LEN * sizeof *batch_sym);
	if (!cdf || !sym || !per_sym || !out || !batch_sym) {
		fprintf(stderr, "tickgen: out of memory\n");
		return 1;
	}
	{
		double total = 0;
		unsigned k;

		for (k = 0; k < symbols; k++) {
			total += 1.0 / pow(k + 1, zipf);
			cdf[k] = total;
			snprintf(sym[k].name, sizeof sym[k].name, "S%04u", k);
			sym[k].bid = 10000 +
			             (int64_t)(xorshift64star_next(&rng_state) %
			                       20000);
		}
		for (k = 0; k < symbols; k++)
			cdf[k] /= total;
		cdf[symbols - 1] = 1.0;
	}

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (shm_path) {
		int sfd = open(shm_path, O_RDWR);

		shm_len = tick_shm_size(symbols);
		if (sfd >= 0)
			shm = mmap(NULL, shm_len, PROT_READ | PROT_WRITE,
			           MAP_SHARED, sfd, 0);
		if (sfd < 0 || shm == MAP_FAILED || shm->symbols != symbols) {
			fprintf(stderr,
			        "tickgen: --shm %s: not a tick record for %u "
			        "symbols (%s)\n",
			        shm_path, symbols,
			        sfd < 0 ? strerror(errno) : "size or header");
			return 1;
		}
		close(sfd);
	}

	fd = connect_to(target);
	if (fd < 0)
		return 1;

	start = clock_mono_us();
	end_at = start + (int64_t)(duration * 1e6);
	while (!stop_flag && (now = clock_mono_us()) < end_at) {
		uint64_t due, n, k;
		char *p = out;

		if (max_rate) {
			due = sent + OUT_CAP / LINE_MAX_LEN;
		} else {
			due = (uint64_t)((double)(now - start) * rate / 1e6);
			/* Behind by more than MAX_LAG_US: skip ahead. */
			if (due > sent + skipped +
			                  (uint64_t)(rate * MAX_LAG_US / 1e6)) {
				uint64_t lag =
				        due - sent - skipped -
				        (uint64_t)(rate * MAX_LAG_US / 1e6);

				skipped += lag;
			}
			due -= skipped;
		}
		n = due > sent ? due - sent : 0;
		if (n > OUT_CAP / LINE_MAX_LEN)
			n = OUT_CAP / LINE_MAX_LEN;
		if (!n) {
			/* Sleep until the next tick is due, at most batch_us.
			 */
			int64_t next =
			        start + (int64_t)((double)(sent + skipped + 1) *
			                          1e6 / rate);
			int64_t wait = next - now;
			struct timespec ts;

			if (wait > batch_us)
				wait = batch_us;
			if (wait < 50)
				wait = 50;
			ts.tv_sec = wait / 1000000;
			ts.tv_nsec = (wait % 1000000) * 1000;
			nanosleep(&ts, NULL);
			continue;
		}
		t_real = clock_wall_us();
		for (k = 0; k < n; k++) {
			double u = rng_unit();
			unsigned lo = 0, hi = symbols - 1;

			while (lo < hi) {
				unsigned mid = (lo + hi) / 2;

				if (cdf[mid] < u)
					lo = mid + 1;
				else
					hi = mid;
			}
			per_sym[lo]++;
			batch_sym[k] = lo;
			p = put_tick(p, &sym[lo], t_real, trade_every,
			             per_sym[lo]);
		}
		if (net_write_all(fd, out, (size_t)(p - out), &stop_flag))
			break;
		for (k = 0; shm && k < n; k++)
			tick_shm_record(shm, batch_sym[k], t_real);
		sent += n;
		bytes += (uint64_t)(p - out);
		if ((sent & 0xff) < n)
			err_lines += drain_replies(fd);
	}
	now = clock_mono_us();
	if (shm) {
		__atomic_store_n(&shm->done_us, clock_wall_us(),
		                 __ATOMIC_RELEASE);
		munmap(shm, shm_len);
	}
	shutdown(fd, SHUT_WR);
	err_lines += drain_replies(fd);
	close(fd);
	{
		double secs = (double)(now - start) / 1e6;

		printf("TICKGEN sent=%llu skipped=%llu secs=%.3f rate=%.0f "
		       "target=%s%.0f bytes=%llu err_lines=%llu "
		       "hot_share=%.3f\n",
		       (unsigned long long)sent, (unsigned long long)skipped,
		       secs, secs > 0 ? (double)sent / secs : 0.0,
		       max_rate ? "max:" : "", max_rate ? 0.0 : rate,
		       (unsigned long long)bytes, (unsigned long long)err_lines,
		       sent ? (double)per_sym[0] / (double)sent : 0.0);
		fflush(stdout);
	}
	free(cdf);
	free(sym);
	free(per_sym);
	free(out);
	free(batch_sym);
	return 0;
}

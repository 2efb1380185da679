/*
 * nats-bridge: JSONL ticks in over TCP, NATS PUB out, for the benchmark suite.
 *
 *   nats-bridge --nats HOST:PORT [--port-file FILE]
 *
 * Listens on 127.0.0.1, port 0, for one tick producer at a time (tickgen)
 * and writes the port to FILE (or stdout). Each line
 * {"ts":...,"symbol":"S0001",...} is published unchanged to the subject
 * tick.S0001 on the NATS server's client port: "PUB tick.S0001
 * <n>\r\n<line>\r\n". The symbol is found by a string search, not a JSON parse:
 * the bridge is the cheapest ingest NATS could be given, so its CPU is a small
 * share of the NATS figures (the suite counts it with the server's, since a
 * user would have to run it).
 *
 * CONNECT {"verbose":false,"pedantic":false} keeps NATS from answering +OK
 * per PUB; a PING from the server is answered with PONG. Writes to NATS block,
 * so a NATS that cannot keep up slows the producer (nothing is dropped here;
 * NATS itself drops slow *consumers*, which subload counts as closed).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/net.h"

#define IN_CAP  (1024 * 1024)
#define OUT_CAP (2 * IN_CAP)

static volatile sig_atomic_t stop_flag;
static unsigned long long published, bad_lines;

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* Answer PINGs; other server lines (INFO, -ERR) are logged once. */
static int
service_nats(int nfd)
{
	char buf[4096];
	ssize_t n;

	while ((n = recv(nfd, buf, sizeof buf - 1, MSG_DONTWAIT)) > 0) {
		buf[n] = '\0';
		if (strstr(buf, "PING\r\n") &&
		    net_write_all(nfd, "PONG\r\n", 6, &stop_flag))
			return -1;
		if (strstr(buf, "-ERR"))
			fprintf(stderr, "nats-bridge: nats said %s", buf);
	}
	if (n == 0)
		return -1;
	return 0;
}

static int
connect_nats(const char *hostport)
{
	char host[64];
	const char *colon = strrchr(hostport, ':');
	struct sockaddr_in sa;
	int fd, one = 1;
	static const char hello[] =
	        "CONNECT {\"verbose\":false,\"pedantic\":false,"
	        "\"name\":\"nats-bridge\"}\r\n";

	if (!colon || (size_t)(colon - hostport) >= sizeof host)
		return -1;
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = '\0';
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (net_write_all(fd, hello, sizeof hello - 1, &stop_flag)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Turn the complete lines of in[0..len) into PUBs in out; returns bytes
 * of input used. */
static size_t
translate(const char *in, size_t len, char *out, size_t *out_len)
{
	const char *p = in, *e = in + len, *nl;
	char *o = out + *out_len;

	while (p < e && (nl = memchr(p, '\n', (size_t)(e - p)))) {
		const char *sym =
		        memmem(p, (size_t)(nl - p), "\"symbol\":\"", 10);
		const char *q;
		size_t line = (size_t)(nl - p);

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
		o += sprintf(o, "PUB tick.%.*s %zu\r\n", (int)(q - sym), sym,
		             line);
		memcpy(o, p, line);
		o += line;
		*o++ = '\r';
		*o++ = '\n';
		published++;
		p = nl + 1;
	}
	*out_len = (size_t)(o - out);
	return (size_t)(p - in);
}

int
main(int argc, char **argv)
{
	const char *nats = NULL, *port_file = NULL;
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	char *in = malloc(IN_CAP), *out = malloc(OUT_CAP);
	int lfd, nfd, i, one = 1;
	struct sigaction act;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--nats"))
			nats = argv[i + 1];
		else if (!strcmp(argv[i], "--port-file"))
			port_file = argv[i + 1];
	}
	if (!nats || !in || !out) {
		fprintf(stderr, "usage: nats-bridge --nats HOST:PORT "
		                "[--port-file FILE]\n");
		return 2;
	}
	memset(&act, 0, sizeof act);
	act.sa_handler = on_signal;
	sigaction(SIGINT, &act, NULL);
	sigaction(SIGTERM, &act, NULL);
	signal(SIGPIPE, SIG_IGN);

	nfd = connect_nats(nats);
	if (nfd < 0) {
		fprintf(stderr, "nats-bridge: cannot reach NATS at %s: %s\n",
		        nats, strerror(errno));
		return 1;
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 4) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl)) {
		fprintf(stderr, "nats-bridge: cannot listen: %s\n",
		        strerror(errno));
		return 1;
	}
	if (port_file) {
		FILE *f = fopen(port_file, "w");

		if (!f) {
			fprintf(stderr, "nats-bridge: cannot write %s\n",
			        port_file);
			return 1;
		}
		fprintf(f, "%d\n", ntohs(sa.sin_port));
		fclose(f);
	} else {
		printf("%d\n", ntohs(sa.sin_port));
		fflush(stdout);
	}

	while (!stop_flag) {
		struct pollfd pf[2] = {{lfd, POLLIN, 0}, {nfd, POLLIN, 0}};
		size_t have = 0;
		int pfd;

		if (poll(pf, 2, 200) <= 0)
			continue;
		if (pf[1].revents && service_nats(nfd))
			break;
		if (!(pf[0].revents & POLLIN))
			continue;
		pfd = accept(lfd, NULL, NULL);
		if (pfd < 0)
			continue;
		while (!stop_flag) {
			struct pollfd q[2] = {{pfd, POLLIN, 0},
			                      {nfd, POLLIN, 0}};
			size_t used, out_len = 0;
			ssize_t n;

			if (poll(q, 2, 200) <= 0)
				continue;
			if (q[1].revents && service_nats(nfd)) {
				stop_flag = 1;
				break;
			}
			if (!q[0].revents)
				continue;
			n = recv(pfd, in + have, IN_CAP - have, 0);
			if (n <= 0)
				break;
			have += (size_t)n;
			used = translate(in, have, out, &out_len);
			if (out_len &&
			    net_write_all(nfd, out, out_len, &stop_flag)) {
				stop_flag = 1;
				break;
			}
			have -= used;
			if (have == IN_CAP)
				have = 0; /* a line longer than the buffer */
			if (have)
				memmove(in, in + used, have);
		}
		close(pfd);
	}
	fprintf(stderr, "nats-bridge: %llu ticks published, %llu bad lines\n",
	        published, bad_lines);
	close(nfd);
	close(lfd);
	free(in);
	free(out);
	return 0;
}

/*
 * sendbase: the bare send() ceiling the benchmark suite compares servers
 * against.
 *
 *   sendbase --conns N --frame-bytes F --duration D [--warmup W]
 *            [--sender-cpu 0] [--reader-cpu 1] [--mode round|ready] [--nagle]
 *
 * How many frames per second ONE thread on one core can push with send() to
 * N loopback TCP sockets, F bytes a frame, while every socket is drained by a
 * reader on another core: the kernel's floor for fan-out, with no
 * application work at all. A server that writes each client its F-byte frame
 * with a send() of its own cannot beat these figures on the same core; the
 * gap between its CPU-s per million frames and ours is what its own code
 * (and its event loop) costs.
 *
 * How it is built, and why:
 *   - One process forks in two. The parent (the sender) pins itself to
 *     --sender-cpu and listens on 127.0.0.1:0; the child (the reader) pins
 *     itself to --reader-cpu and connects N times, as the suite runs the
 *     server on CPU 0 and subload on CPU 1. Both raise RLIMIT_NOFILE to the
 *     hard limit. Past the ephemeral port range the reader spreads its
 *     sockets over source addresses 127.0.0.2, .3, ... (never needed below
 *     ~28,000 connections).
 *   - The sender's sockets are non-blocking with TCP_NODELAY, as
 *     libwebsockets, Node's ws and Go servers (nats-server) set theirs
 *     (--nagle leaves Nagle on), with the kernel's default buffer sizes
 *     (tcp_wmem / tcp_rmem autotuning).
 *   - --mode round (the default): in rounds, one F-byte frame to every
 *     socket, like a server broadcasting one frame to all its clients. A
 *     socket whose send buffer is full is skipped for that round and the
 *     frame counted as skipped (a server would queue or drop it). A partial
 *     send keeps the rest of the frame in flight; it is finished first in
 *     the next round, and that round's new frame is skipped if it cannot be.
 *   - --mode ready: epoll (level-triggered) for EPOLLOUT over every socket,
 *     one frame to each socket reported writable: the figure a server gets
 *     when it only writes to clients that can take it. Here "skipped"
 *     counts sends that found the socket full although epoll said writable.
 *   - Frames are WebSocket-shaped: a 2, 4 or 10 byte server frame header
 *     (FIN + text, 7/16/64-bit length) and 'x' payload, F bytes in all. The
 *     bytes do not matter to the kernel; only their number does.
 *   - The reader: epoll over its N sockets, recv() into one 256 KiB buffer,
 *     bytes counted and thrown away.
 *
 * Timeline: open N connections (bounded: 60 s plus 1 s per 1,000), send for
 * --warmup W seconds, then measure for --duration D seconds from the moment
 * the window really opens (a sender kept off its core opens it late); both
 * sides stop then. An alarm bounds the whole run at W + D + 90 s plus the
 * connection bound; the reader dies with the sender (PR_SET_PDEATHSIG) and is
 * killed on every exit path.
 *
 * Output: a progress line on stderr when the connections are open, a human
 * summary on stderr at the end, and one line on stdout:
 *   SENDBASE conns=N frame_bytes=F mode=round frames_per_s=... ...
 *
 * Reading the figures:
 *   frames_per_s, bytes_per_s   frames (bytes) the sender completed in the
 *                         window, per second.
 *   sender_cpu_s, sender_busy   the sender's utime + stime over the window
 *                         (getrusage), and as a fraction of the window: ~1.0
 *                         means the sender was the bottleneck, as intended.
 *   sender_cpu_per_mframe  sender CPU-s per million frames: the figure to
 *                         hold against the suite's "server CPU-s per million
 *                         frames" (publisher packs several updates in a frame:
 *                         divide by updates per frame to compare per update).
 *                         On loopback most of the receiving side's TCP work
 *                         (softirq) runs on the sending core inside send() and
 *                         is counted here, as it is in a server's stime (with
 *                         CONFIG_IRQ_TIME_ACCOUNTING it is not, on either);
 *                         when the core is busy part of it moves to ksoftirqd
 *                         (ksoftirqd_cpu_s). This figure holds up on a shared
 *                         machine far better than frames_per_s does.
 *   reader_cpu_s, reader_busy   the reader's utime + stime (/proc/PID/stat),
 *                         and as a fraction of the window. reader_busy near 1
 *                         means the reader, not send(), set the pace: the
 *                         figures are then a floor, not the ceiling.
 *   skipped               frames not offered because the socket was full (see
 *                         --mode); skipped_frac = skipped / (frames + skipped).
 *                         Skips mean the reader or the kernel's TCP memory
 *                         (tcp_mem; tcp_mem_peak_kb, tcp_mem_pressure) could
 *                         not take the rate: each skip costs a send() call.
 *   sends_per_s, eagain, partial   send() calls, calls that took nothing,
 *                         calls that took part of what was offered.
 *   sender_runq_s, reader_runq_s   seconds each side was runnable but
 *                         waiting for its core (/proc/PID/schedstat): other
 *                         work on the core took its turns.
 *   sender_core_busy, reader_core_busy   how busy the two cores were in
 *                         /proc/stat, other people's work included;
 *                         sender_core_softirq and _steal: the softirq and
 *                         hypervisor-steal shares of the sender's core.
 *   retrans               retransmitted segments over the sender's sockets
 *                         (TCP_INFO, whole run). On loopback nothing is lost:
 *                         these are tail loss probes fired when an ACK comes
 *                         late (a core busy elsewhere), each a resent segment.
 *   backlog_drops         softnet backlog drops, system-wide (expected 0).
 *   sender_rss_kb         the sender's VmRSS at the end: a few MB. Queued data
 *                         lives in kernel socket memory (tcp_mem_peak_kb).
 *   invalid               "no", or why the run did not measure send():
 *                         sender_preempted (waited for its core more than 5 %
 *                         of the window), reader_preempted (10 %), or
 *                         reader_saturated (reader_busy > 0.95). Run again on
 *                         a quiet machine. reader_preempted with skipped=0
 *                         still measured send(): no socket was ever full.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#include "support/proc_stats.h"

/* The reader's receive buffer. */
#define READ_CHUNK (256 * 1024)
/* Events taken per epoll_wait(). */
#define MAX_EVENTS 1024
/* The clock is read every this many send() calls (a power of two). */
#define CLOCK_EVERY 16
/* Housekeeping (signals, the reader's health, TCP memory) this often. */
#define HOUSE_NS 50000000LL
/* Largest frame accepted. */
#define FRAME_MAX (64u * 1024 * 1024)
/* Descriptors kept aside besides the connections (stdio, epoll, /proc). */
#define FD_SPARE 32
/* Ephemeral ports left to others when spreading over source addresses. */
#define PORT_MARGIN 1000

enum mode { M_ROUND, M_READY };

static struct {
	unsigned conns;
	unsigned frame_bytes;
	double duration;
	double warmup;
	int sender_cpu;
	int reader_cpu;
	enum mode mode;
	bool nagle;
} opt = {
        .conns = 0,
        .frame_bytes = 0,
        .duration = 0,
        .warmup = 1,
        .sender_cpu = 0,
        .reader_cpu = 1,
        .mode = M_ROUND,
        .nagle = false,
};

/* Shared by both processes (an anonymous shared mapping made before fork).
 * Written with relaxed atomics: the parent only samples it. */
struct shared {
	uint64_t rx_bytes;  /* reader: bytes received so far */
	uint32_t connected; /* reader: connections established */
	uint32_t reading;   /* reader: in its receive loop */
	uint32_t stop;      /* sender: time to stop */
};

static struct shared *sh;
static pid_t reader_pid;
static bool is_reader;
static volatile sig_atomic_t stop_signal;

/* ------------------------------------------------------------ failure */

static void reap_reader(double wait_s);

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "sendbase: %s", is_reader ? "reader: " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (is_reader)
		_exit(1);
	if (reader_pid > 0) {
		kill(reader_pid, SIGKILL);
		reap_reader(2);
	}
	exit(1);
}

static void
on_signal(int sig)
{
	(void)sig;
	stop_signal = 1;
}

/* The hard bound: whatever is going on, stop. Async-signal-safe only. */
static void
on_alarm(int sig)
{
	static const char msg[] = "sendbase: time limit reached (a step hung); "
	                          "stopping\n";
	ssize_t r;

	(void)sig;
	if (!is_reader && reader_pid > 0)
		kill(reader_pid, SIGKILL);
	r = write(2, msg, sizeof msg - 1);
	(void)r;
	_exit(1);
}

/* Wait for the reader at most wait_s seconds, then kill it. */
static void
reap_reader(double wait_s)
{
	int64_t waited = 0, limit = (int64_t)(wait_s * 1000);
	struct timespec ms = {0, 1000000};
	int status;

	if (reader_pid <= 0)
		return;
	while (waitpid(reader_pid, &status, WNOHANG) == 0) {
		if (waited++ >= limit) {
			kill(reader_pid, SIGKILL);
			waitpid(reader_pid, &status, 0);
			break;
		}
		nanosleep(&ms, NULL);
	}
	reader_pid = 0;
}

/* ------------------------------------------------------------ clocks, /proc */

static double
self_cpu_s(double *sys_s)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	*sys_s = (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + *sys_s;
}

/* Seconds a process waited on a run queue, runnable but not running
 * (/proc/PID/schedstat, second field); -1 when unreadable. */
static double
proc_runq_s(pid_t pid)
{
	char path[64];
	unsigned long long run_ns, wait_ns;
	FILE *f;
	int n;

	if (pid < 0)
		return -1;
	if (pid == 0)
		snprintf(path, sizeof path, "/proc/self/schedstat");
	else
		snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fscanf(f, "%llu %llu", &run_ns, &wait_ns);
	fclose(f);
	return n == 2 ? (double)wait_ns / 1e9 : -1;
}

/* Of the jiffies between a and b: the fraction spent in the columns of
 * mask (a bit per column); -1 when nothing elapsed. */
static double
core_frac(const unsigned long long *a, const unsigned long long *b,
          unsigned mask)
{
	unsigned long long total = 0, part = 0;
	int i;

	for (i = 0; i < CORE_COLS; i++) {
		unsigned long long d = b[i] - a[i];

		total += d;
		if (mask & (1u << i))
			part += d;
	}
	return total ? (double)part / (double)total : -1;
}

#define BUSY_MASK (~((1u << C_IDLE) | (1u << C_IOWAIT)) & 0xffu)

/* The pid of ksoftirqd/CPU, or 0. */
static pid_t
find_ksoftirqd(int cpu)
{
	char want[32], path[300], comm[64];
	struct dirent *d;
	DIR *dir = opendir("/proc");
	pid_t found = 0;

	if (!dir)
		return 0;
	snprintf(want, sizeof want, "ksoftirqd/%d\n", cpu);
	while (!found && (d = readdir(dir))) {
		FILE *f;

		if (d->d_name[0] < '0' || d->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/comm", d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof comm, f) && !strcmp(comm, want))
			found = (pid_t)atoi(d->d_name);
		fclose(f);
	}
	closedir(dir);
	return found;
}

/* Pages of memory held by TCP sockets (/proc/net/sockstat), or -1. */
static long
tcp_mem_pages(void)
{
	char line[256];
	long pages = -1;
	FILE *f = fopen("/proc/net/sockstat", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		char *m;

		if (strncmp(line, "TCP:", 4))
			continue;
		m = strstr(line, " mem ");
		if (m)
			pages = strtol(m + 5, NULL, 10);
		break;
	}
	fclose(f);
	return pages;
}

/* The middle value of tcp_mem (pages): above it TCP is under pressure. */
static long
tcp_mem_pressure_pages(void)
{
	long lo = -1, mid = -1, hi = -1;
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_mem", "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld %ld", &lo, &mid, &hi) != 3)
		mid = -1;
	fclose(f);
	return mid;
}

/* Packets dropped from the softnet backlogs (all CPUs), or 0. */
static unsigned long long
backlog_drops(void)
{
	char line[512];
	unsigned long long sum = 0;
	FILE *f = fopen("/proc/net/softnet_stat", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof line, f)) {
		unsigned processed, dropped;

		if (sscanf(line, "%x %x", &processed, &dropped) == 2)
			sum += dropped;
	}
	fclose(f);
	return sum;
}

static double
load1(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "r");

	if (!f)
		return -1;
	if (fscanf(f, "%lf", &l) != 1)
		l = -1;
	fclose(f);
	return l;
}

static int
ephemeral_ports(void)
{
	int lo = 32768, hi = 60999;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");

	if (f) {
		if (fscanf(f, "%d %d", &lo, &hi) != 2) {
			lo = 32768;
			hi = 60999;
		}
		fclose(f);
	}
	return hi >= lo ? hi - lo + 1 : 0;
}

static void
pin_to(int cpu, const char *who)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set))
		die("cannot pin the %s to CPU %d: %s (online CPUs: %ld)", who,
		    cpu, strerror(errno), sysconf(_SC_NPROCESSORS_ONLN));
}

/* ------------------------------------------------------------ the reader */

static void
reader_main(uint16_t port, int listen_fd, pid_t parent, unsigned time_limit)
{
	struct epoll_event *ev;
	struct sockaddr_in dst;
	struct timeval tv = {10, 0};
	struct linger lin = {1, 0};
	unsigned i, per_addr = 0;
	uint64_t rx = 0;
	char *buf;
	int *fds, ep, one = 1, ports;

	is_reader = true;
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGALRM, SIG_DFL);
	alarm(time_limit + 15);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL))
		die("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
	if (getppid() != parent)
		_exit(1); /* the sender is already gone */
	close(listen_fd);
	pin_to(opt.reader_cpu, "reader");

	fds = calloc(opt.conns, sizeof *fds);
	ev = calloc(MAX_EVENTS, sizeof *ev);
	buf = malloc(READ_CHUNK);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!fds || !ev || !buf)
		die("out of memory");
	if (ep < 0)
		die("epoll_create1: %s", strerror(errno));

	/* Past the ephemeral port range, spread over 127.0.0.1, .2, ... */
	ports = ephemeral_ports();
	if ((long)opt.conns > (long)ports - PORT_MARGIN) {
		per_addr = ports > 2 * PORT_MARGIN
		                   ? (unsigned)ports - PORT_MARGIN
		                   : 1000;
		if (opt.conns / per_addr >= 250)
			die("%u connections need more than 250 loopback "
			    "source addresses (%d ephemeral ports each)",
			    opt.conns, ports);
	}

	memset(&dst, 0, sizeof dst);
	dst.sin_family = AF_INET;
	dst.sin_port = htons(port);
	dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < opt.conns; i++) {
		struct epoll_event e;
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			die("socket() for connection %u of %u: %s", i + 1,
			    opt.conns, strerror(errno));
		/* SO_SNDTIMEO bounds a blocking connect(). */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		if (per_addr) {
			struct sockaddr_in src;

			memset(&src, 0, sizeof src);
			src.sin_family = AF_INET;
			src.sin_addr.s_addr =
			        htonl(INADDR_LOOPBACK + 1 + i / per_addr);
			setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT,
			           &one, sizeof one);
			if (bind(fd, (struct sockaddr *)&src, sizeof src))
				die("bind() connection %u to 127.0.0.%u: %s",
				    i + 1, 2 + i / per_addr, strerror(errno));
		}
		if (connect(fd, (struct sockaddr *)&dst, sizeof dst))
			die("connect() %u of %u to 127.0.0.1:%u: %s%s", i + 1,
			    opt.conns, port,
			    errno == EINPROGRESS ? "timed out after 10 s"
			                         : strerror(errno),
			    errno == EADDRNOTAVAIL
			            ? " (out of ephemeral ports?)"
			            : "");
		if (fcntl(fd, F_SETFL, O_NONBLOCK))
			die("fcntl(O_NONBLOCK): %s", strerror(errno));
		e.events = EPOLLIN;
		e.data.u32 = i;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e))
			die("epoll_ctl: %s", strerror(errno));
		fds[i] = fd;
		__atomic_store_n(&sh->connected, i + 1, __ATOMIC_RELAXED);
	}

	__atomic_store_n(&sh->reading, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED)) {
		int n = epoll_wait(ep, ev, MAX_EVENTS, 100), k;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		for (k = 0; k < n; k++) {
			unsigned idx = ev[k].data.u32;

			for (;;) {
				ssize_t r = recv(fds[idx], buf, READ_CHUNK,
				                 MSG_DONTWAIT);

				if (r > 0) {
					rx += (uint64_t)r;
					if (r < READ_CHUNK)
						break;
					continue;
				}
				if (r < 0 && errno == EINTR)
					continue;
				if (r < 0 &&
				    (errno == EAGAIN || errno == EWOULDBLOCK))
					break;
				if (__atomic_load_n(&sh->stop,
				                    __ATOMIC_RELAXED))
					break;
				die("connection %u %s before the end", idx + 1,
				    r == 0 ? "closed by the sender"
				           : strerror(errno));
			}
		}
		__atomic_store_n(&sh->rx_bytes, rx, __ATOMIC_RELAXED);
	}
	/* Reset rather than close: no TIME_WAIT left behind for the next
	 * run, and no FIN handshake to wait for. */
	for (i = 0; i < opt.conns; i++) {
		setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
		close(fds[i]);
	}
	_exit(0);
}

/* ------------------------------------------------------------ the sender */

struct conn {
	int fd;
	uint32_t off; /* bytes of the frame in flight already sent; 0: none */
};

struct counts {
	uint64_t frames;  /* frames completed */
	uint64_t bytes;   /* bytes taken by send() */
	uint64_t sends;   /* send() calls */
	uint64_t skipped; /* frames not offered: socket full */
	uint64_t eagain;  /* send() calls that took nothing */
	uint64_t partial; /* send() calls that took part */
	uint64_t rounds;
};

/* Everything read at the two edges of the window. */
struct snap {
	int64_t t_ns;
	struct counts c;
	double cpu, sys, reader_cpu, ksoftirqd_cpu, runq, reader_runq;
	uint64_t rx_bytes;
	unsigned long long score[CORE_COLS], rcore[CORE_COLS];
	unsigned long long drops;
};

static struct conn *conns;
static unsigned char *frame;
static struct counts cnt;
static pid_t ksoftirqd_pid;
static long tcp_mem_peak = -1;

enum phase { PH_WARMUP, PH_MEASURE, PH_DONE };

static struct {
	enum phase phase;
	int64_t warm_end, end, next_house, next_due;
	struct snap s0, s1;
} run;

/* A server frame: FIN + text opcode, 7/16/64-bit length, 'x' payload; the
 * header is sized so that the whole frame is exactly `total` bytes. */
static unsigned char *
make_frame(unsigned total)
{
	unsigned char *f = malloc(total);
	uint64_t payload;
	unsigned h, i;

	if (!f)
		die("out of memory for a %u-byte frame", total);
	if (total - 2 <= 125)
		h = 2;
	else if (total - 4 <= 65535)
		h = 4;
	else
		h = 10;
	payload = total - h;
	f[0] = 0x81;
	if (h == 2) {
		f[1] = (unsigned char)payload;
	} else if (h == 4) {
		f[1] = 126;
		f[2] = (unsigned char)(payload >> 8);
		f[3] = (unsigned char)payload;
	} else {
		f[1] = 127;
		for (i = 0; i < 8; i++)
			f[2 + i] = (unsigned char)(payload >> (56 - 8 * i));
	}
	memset(f + h, 'x', total - h);
	return f;
}

static void
take_snap(struct snap *s)
{
	s->t_ns = clock_mono_ns();
	s->c = cnt;
	s->cpu = self_cpu_s(&s->sys);
	s->rx_bytes = __atomic_load_n(&sh->rx_bytes, __ATOMIC_RELAXED);
	s->reader_cpu = proc_cpu_s(reader_pid);
	s->ksoftirqd_cpu = proc_cpu_s(ksoftirqd_pid);
	s->runq = proc_runq_s(0);
	s->reader_runq = proc_runq_s(reader_pid > 0 ? reader_pid : -1);
	core_read(opt.sender_cpu, s->score);
	core_read(opt.reader_cpu, s->rcore);
	s->drops = backlog_drops();
}

static void
check_reader(void)
{
	int status;
	pid_t r = waitpid(reader_pid, &status, WNOHANG);

	if (r == reader_pid) {
		reader_pid = 0;
		if (WIFSIGNALED(status))
			die("the reader died of signal %d", WTERMSIG(status));
		die("the reader exited with status %d (see its message "
		    "above)",
		    WEXITSTATUS(status));
	}
}

/* Called when the clock passes run.next_due: phase edges, signals, the
 * reader's health, TCP memory. */
static void
advance(int64_t now)
{
	if (now >= run.next_house) {
		long m;

		if (stop_signal)
			die("interrupted");
		check_reader();
		m = tcp_mem_pages();
		if (m > tcp_mem_peak)
			tcp_mem_peak = m;
		run.next_house = now + HOUSE_NS;
	}
	if (run.phase == PH_WARMUP && now >= run.warm_end) {
		take_snap(&run.s0);
		run.phase = PH_MEASURE;
		/* The window is D seconds from its real start, however late
		 * (a sender kept off its core for seconds) that came. */
		run.end = run.s0.t_ns + (int64_t)(opt.duration * 1e9);
	}
	if (run.phase == PH_MEASURE && now >= run.end) {
		take_snap(&run.s1);
		run.phase = PH_DONE;
	}
	run.next_due = run.next_house;
	if (run.phase == PH_WARMUP && run.warm_end < run.next_due)
		run.next_due = run.warm_end;
	if (run.phase == PH_MEASURE && run.end < run.next_due)
		run.next_due = run.end;
}

/* One send() of what is left of c's frame (the whole frame when none is in
 * flight). Returns true when the frame is complete. */
static bool
push(struct conn *c, unsigned idx)
{
	size_t left = opt.frame_bytes - c->off;
	ssize_t r;

	for (;;) {
		r = send(c->fd, frame + c->off, left,
		         MSG_DONTWAIT | MSG_NOSIGNAL);
		cnt.sends++;
		if ((cnt.sends & (CLOCK_EVERY - 1)) == 0) {
			int64_t now = clock_mono_ns();

			if (now >= run.next_due)
				advance(now);
		}
		if (r >= 0 || errno != EINTR)
			break;
	}
	if (r < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			cnt.eagain++;
			return false;
		}
		if (errno == ECONNRESET || errno == EPIPE) {
			int e = errno, k;
			struct timespec ms = {0, 10000000};

			/* Most likely the reader died: say so if it did. */
			for (k = 0; k < 100; k++) {
				check_reader();
				nanosleep(&ms, NULL);
			}
			errno = e;
		}
		die("send() on connection %u: %s", idx + 1, strerror(errno));
	}
	cnt.bytes += (uint64_t)r;
	if ((size_t)r == left) {
		c->off = 0;
		cnt.frames++;
		return true;
	}
	c->off += (uint32_t)r;
	cnt.partial++;
	return false;
}

/* One turn for one connection: finish the frame in flight, then offer a
 * new one. A frame that cannot be offered because the socket is full is
 * counted as skipped (in ready mode, only when nothing at all was sent). */
static void
serve(unsigned idx)
{
	struct conn *c = &conns[idx];

	if (c->off && !push(c, idx)) {
		if (opt.mode == M_ROUND)
			cnt.skipped++;
		return;
	}
	if (!push(c, idx) && !c->off)
		cnt.skipped++;
}

static void
send_rounds(void)
{
	unsigned i;

	while (run.phase != PH_DONE) {
		for (i = 0; i < opt.conns && run.phase != PH_DONE; i++)
			serve(i);
		cnt.rounds++;
	}
}

static void
send_ready(void)
{
	struct epoll_event *ev = calloc(MAX_EVENTS, sizeof *ev);
	int ep = epoll_create1(EPOLL_CLOEXEC), n, k;
	unsigned i;

	if (!ev)
		die("out of memory");
	if (ep < 0)
		die("epoll_create1: %s", strerror(errno));
	for (i = 0; i < opt.conns; i++) {
		struct epoll_event e;

		e.events = EPOLLOUT;
		e.data.u32 = i;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &e))
			die("epoll_ctl: %s", strerror(errno));
	}
	while (run.phase != PH_DONE) {
		int64_t now;

		n = epoll_wait(ep, ev, MAX_EVENTS, 100);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (k = 0; k < n && run.phase != PH_DONE; k++) {
			if (ev[k].events & (EPOLLERR | EPOLLHUP))
				die("connection %u was closed by the reader",
				    ev[k].data.u32 + 1);
			serve(ev[k].data.u32);
		}
		cnt.rounds++;
		now = clock_mono_ns();
		if (now >= run.next_due)
			advance(now);
	}
	close(ep);
	free(ev);
}

/* Sum of tcpi_total_retrans over the sender's sockets (the whole run). */
static unsigned long long
own_retrans(void)
{
	unsigned long long sum = 0;
	unsigned i;

	for (i = 0; i < opt.conns; i++) {
		struct tcp_info ti;
		socklen_t len = sizeof ti;

		memset(&ti, 0, sizeof ti);
		if (!getsockopt(conns[i].fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
			sum += ti.tcpi_total_retrans;
	}
	return sum;
}

/* The SENDBASE line on stdout and the summary on stderr. */
static void
report(double open_s, double ld, long pressure)
{
	const struct snap *a = &run.s0, *b = &run.s1;
	double secs = (double)(b->t_ns - a->t_ns) / 1e9;
	uint64_t frames = b->c.frames - a->c.frames;
	uint64_t bytes = b->c.bytes - a->c.bytes;
	uint64_t skipped = b->c.skipped - a->c.skipped;
	double cpu = b->cpu - a->cpu, sys = b->sys - a->sys;
	double rcpu = a->reader_cpu >= 0 && b->reader_cpu >= 0
	                      ? b->reader_cpu - a->reader_cpu
	                      : -1;
	double kcpu = a->ksoftirqd_cpu >= 0 && b->ksoftirqd_cpu >= 0
	                      ? b->ksoftirqd_cpu - a->ksoftirqd_cpu
	                      : -1;
	double per_m = frames ? cpu / ((double)frames / 1e6) : -1;
	double runq = a->runq >= 0 && b->runq >= 0 ? b->runq - a->runq : -1;
	double rrunq = a->reader_runq >= 0 && b->reader_runq >= 0
	                       ? b->reader_runq - a->reader_runq
	                       : -1;
	double s_core = core_frac(a->score, b->score, BUSY_MASK);
	double s_soft = core_frac(a->score, b->score, 1u << C_SOFTIRQ);
	double s_steal = core_frac(a->score, b->score, 1u << C_STEAL);
	double r_core = core_frac(a->rcore, b->rcore, BUSY_MASK);
	double skip_frac =
	        frames + skipped ? (double)skipped / (double)(frames + skipped)
	                         : 0;
	double s_busy, r_busy;
	long rss = proc_rss_kb(0);
	long page_kb = sysconf(_SC_PAGESIZE) / 1024;
	long mem_peak_kb = tcp_mem_peak >= 0 ? tcp_mem_peak * page_kb : -1;
	const char *mode = opt.mode == M_ROUND ? "round" : "ready";
	const char *invalid = "no";

	if (secs <= 0)
		die("empty window");
	s_busy = cpu / secs;
	r_busy = rcpu >= 0 ? rcpu / secs : -1;
	/* Other work on the sender's core took its turns (more than 5 % of
	 * the window waiting to run), or on the reader's (10 %), or the
	 * reader used its whole core: then send() did not set the pace. */
	if (runq > 0.05 * secs)
		invalid = "sender_preempted";
	else if (rrunq > 0.10 * secs)
		invalid = "reader_preempted";
	else if (r_busy > 0.95)
		invalid = "reader_saturated";
	printf("SENDBASE conns=%u frame_bytes=%u mode=%s "
	       "frames_per_s=%.0f bytes_per_s=%.0f sender_cpu_s=%.3f "
	       "sender_cpu_per_mframe=%.4f reader_cpu_s=%.3f "
	       "reader_busy=%.3f skipped=%llu secs=%.3f "
	       "frames=%llu skipped_frac=%.4f sender_busy=%.3f "
	       "sender_sys_frac=%.3f sends_per_s=%.0f eagain=%llu "
	       "partial=%llu rounds=%llu reader_bytes_per_s=%.0f "
	       "sender_runq_s=%.3f reader_runq_s=%.3f "
	       "ksoftirqd_cpu_s=%.3f sender_core_busy=%.3f "
	       "sender_core_softirq=%.3f sender_core_steal=%.3f "
	       "reader_core_busy=%.3f retrans=%llu backlog_drops=%llu "
	       "tcp_mem_peak_kb=%ld tcp_mem_pressure=%s "
	       "sender_rss_kb=%ld nodelay=%d open_s=%.2f load1=%.2f "
	       "invalid=%s\n",
	       opt.conns, opt.frame_bytes, mode, (double)frames / secs,
	       (double)bytes / secs, cpu, per_m, rcpu, r_busy,
	       (unsigned long long)skipped, secs, (unsigned long long)frames,
	       skip_frac, s_busy, cpu > 0 ? sys / cpu : 0,
	       (double)(b->c.sends - a->c.sends) / secs,
	       (unsigned long long)(b->c.eagain - a->c.eagain),
	       (unsigned long long)(b->c.partial - a->c.partial),
	       (unsigned long long)(b->c.rounds - a->c.rounds),
	       (double)(b->rx_bytes - a->rx_bytes) / secs, runq, rrunq, kcpu,
	       s_core, s_soft, s_steal, r_core, own_retrans(),
	       b->drops - a->drops, mem_peak_kb,
	       pressure > 0 && tcp_mem_peak >= pressure ? "yes" : "no", rss,
	       opt.nagle ? 0 : 1, open_s, ld, invalid);
	fflush(stdout);
	fprintf(stderr,
	        "sendbase: %u x %u B, %s: %.0f frames/s, %.1f MB/s; sender "
	        "%.2f core (%.0f%% sys), %.3f CPU-s per M frames; reader "
	        "%.2f core; skipped %.1f%%%s%s\n",
	        opt.conns, opt.frame_bytes, mode, (double)frames / secs,
	        (double)bytes / secs / 1e6, s_busy,
	        cpu > 0 ? 100 * sys / cpu : 0, per_m, r_busy, 100 * skip_frac,
	        strcmp(invalid, "no") ? "; INVALID: " : "",
	        strcmp(invalid, "no") ? invalid : "");
}

/* ------------------------------------------------------------ main */

static void
usage(const char *why)
{
	if (why)
		fprintf(stderr, "sendbase: %s\n", why);
	fprintf(stderr,
	        "usage: sendbase --conns N --frame-bytes F --duration D "
	        "[--warmup W]\n"
	        "                [--sender-cpu 0] [--reader-cpu 1] "
	        "[--mode round|ready] [--nagle]\n");
	exit(2);
}

static unsigned long
parse_ulong(const char *name, const char *v, unsigned long lo, unsigned long hi)
{
	char *end;
	unsigned long x;

	errno = 0;
	x = strtoul(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-' || x < lo || x > hi) {
		fprintf(stderr,
		        "sendbase: %s wants an integer in %lu..%lu, "
		        "not '%s'\n",
		        name, lo, hi, v);
		usage(NULL);
	}
	return x;
}

static double
parse_secs(const char *name, const char *v, double lo, double hi)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(v, &end);
	if (errno || end == v || *end || !(x >= lo && x <= hi)) {
		fprintf(stderr,
		        "sendbase: %s wants seconds in %g..%g, not '%s'\n",
		        name, lo, hi, v);
		usage(NULL);
	}
	return x;
}

static void
parse_args(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v;

		if (!strcmp(a, "--nagle")) {
			opt.nagle = true;
			continue;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			usage(NULL);
		v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			fprintf(stderr, "sendbase: %s wants a value\n", a);
			usage(NULL);
		}
		i++;
		if (!strcmp(a, "--conns"))
			opt.conns = (unsigned)parse_ulong(a, v, 1, 1000000);
		else if (!strcmp(a, "--frame-bytes"))
			opt.frame_bytes =
			        (unsigned)parse_ulong(a, v, 2, FRAME_MAX);
		else if (!strcmp(a, "--duration"))
			opt.duration = parse_secs(a, v, 0.1, 3600);
		else if (!strcmp(a, "--warmup"))
			opt.warmup = parse_secs(a, v, 0, 600);
		else if (!strcmp(a, "--sender-cpu"))
			opt.sender_cpu =
			        (int)parse_ulong(a, v, 0, CPU_SETSIZE - 1);
		else if (!strcmp(a, "--reader-cpu"))
			opt.reader_cpu =
			        (int)parse_ulong(a, v, 0, CPU_SETSIZE - 1);
		else if (!strcmp(a, "--mode")) {
			if (!strcmp(v, "round"))
				opt.mode = M_ROUND;
			else if (!strcmp(v, "ready"))
				opt.mode = M_READY;
			else
				usage("--mode is round or ready");
		} else {
			fprintf(stderr, "sendbase: unknown option '%s'\n", a);
			usage(NULL);
		}
	}
	if (!opt.conns || !opt.frame_bytes || opt.duration <= 0)
		usage("--conns, --frame-bytes and --duration are required");
}

/* Listen on 127.0.0.1:0; returns the fd and sets *port. */
static int
listen_loopback(uint16_t *port)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		die("socket(): %s", strerror(errno));
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof a))
		die("bind(127.0.0.1:0): %s", strerror(errno));
	/* The kernel caps the backlog at net.core.somaxconn. */
	if (listen(fd, (int)(opt.conns < 65535 ? opt.conns : 65535)))
		die("listen(): %s", strerror(errno));
	if (getsockname(fd, (struct sockaddr *)&a, &alen))
		die("getsockname(): %s", strerror(errno));
	*port = ntohs(a.sin_port);
	return fd;
}

/* Accept the reader's N connections, bounded by limit_ns. */
static void
accept_all(int lfd, int64_t limit_ns)
{
	int nodelay = opt.nagle ? 0 : 1;
	unsigned got = 0;

	while (got < opt.conns) {
		struct pollfd p = {.fd = lfd, .events = POLLIN};
		int fd;

		if (stop_signal)
			die("interrupted");
		if (clock_mono_ns() > limit_ns)
			die("only %u of %u connections arrived in time (the "
			    "reader had connected %u)",
			    got, opt.conns,
			    __atomic_load_n(&sh->connected, __ATOMIC_RELAXED));
		check_reader();
		if (poll(&p, 1, 100) < 0 && errno != EINTR)
			die("poll(): %s", strerror(errno));
		while (got < opt.conns &&
		       (fd = accept4(lfd, NULL, NULL,
		                     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
			if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay,
			               sizeof nodelay))
				die("setsockopt(TCP_NODELAY): %s",
				    strerror(errno));
			conns[got].fd = fd;
			conns[got].off = 0;
			got++;
		}
		if (got < opt.conns && errno != EAGAIN &&
		    errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			die("accept(): %s%s", strerror(errno),
			    errno == EMFILE ? " (descriptor limit)" : "");
	}
	/* Every connection accepted: wait for the reader to be reading. */
	while (!__atomic_load_n(&sh->reading, __ATOMIC_ACQUIRE)) {
		struct timespec ms = {0, 1000000};

		if (stop_signal)
			die("interrupted");
		if (clock_mono_ns() > limit_ns)
			die("the reader did not start reading in time");
		check_reader();
		nanosleep(&ms, NULL);
	}
}

int
main(int argc, char **argv)
{
	struct rlimit rl;
	struct sigaction sa;
	uint16_t port;
	int lfd;
	unsigned time_limit;
	int64_t t_open, open_limit;
	double open_s, ld;
	pid_t parent;
	long pressure;

	parse_args(argc, argv);

	/* Descriptors: the hard limit, in both processes (fork inherits). */
	if (getrlimit(RLIMIT_NOFILE, &rl))
		die("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			die("setrlimit(RLIMIT_NOFILE, %llu): %s",
			    (unsigned long long)rl.rlim_max, strerror(errno));
	}
	if (rl.rlim_cur != RLIM_INFINITY &&
	    (unsigned long long)opt.conns + FD_SPARE > rl.rlim_cur)
		die("--conns %u needs %u descriptors per process; the hard "
		    "limit (ulimit -Hn) is %llu",
		    opt.conns, opt.conns + FD_SPARE,
		    (unsigned long long)rl.rlim_cur);
	if (opt.sender_cpu == opt.reader_cpu)
		fprintf(stderr,
		        "sendbase: warning: sender and reader share "
		        "CPU %d; the figures mix both sides\n",
		        opt.sender_cpu);

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Opening is bounded at 60 s + 1 s per 1,000 connections; the whole
	 * run at that plus warm-up, window and 90 s. */
	open_limit = (60 + (int64_t)opt.conns / 1000) * 1000000000LL;
	time_limit = (unsigned)(open_limit / 1000000000LL) +
	             (unsigned)(opt.warmup + opt.duration) + 90;
	alarm(time_limit);

	conns = calloc(opt.conns, sizeof *conns);
	frame = make_frame(opt.frame_bytes);
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
	          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!conns)
		die("out of memory");
	if (sh == MAP_FAILED)
		die("mmap(MAP_SHARED): %s", strerror(errno));
	memset(sh, 0, sizeof *sh);
	ksoftirqd_pid = find_ksoftirqd(opt.sender_cpu);
	pressure = tcp_mem_pressure_pages();
	ld = load1();

	lfd = listen_loopback(&port);
	parent = getpid();
	t_open = clock_mono_ns();
	reader_pid = fork();
	if (reader_pid < 0)
		die("fork(): %s", strerror(errno));
	if (reader_pid == 0)
		reader_main(port, lfd, parent, time_limit); /* never returns */

	pin_to(opt.sender_cpu, "sender");
	accept_all(lfd, t_open + open_limit);
	close(lfd);
	open_s = (double)(clock_mono_ns() - t_open) / 1e9;
	fprintf(stderr,
	        "sendbase: %u connections open in %.1f s (sender CPU %d, "
	        "reader CPU %d, load %.2f); %s mode, %u-byte frames, "
	        "warm-up %.1f s, window %.1f s\n",
	        opt.conns, open_s, opt.sender_cpu, opt.reader_cpu, ld,
	        opt.mode == M_ROUND ? "round" : "ready", opt.frame_bytes,
	        opt.warmup, opt.duration);

	{
		int64_t t0 = clock_mono_ns();

		run.phase = PH_WARMUP;
		run.warm_end = t0 + (int64_t)(opt.warmup * 1e9);
		run.end = 0; /* set when the window opens */
		run.next_house = t0;
		advance(t0);
	}
	if (opt.mode == M_ROUND)
		send_rounds();
	else
		send_ready();

	__atomic_store_n(&sh->stop, 1, __ATOMIC_RELAXED);
	report(open_s, ld, pressure);
	reap_reader(5);
	return 0;
}

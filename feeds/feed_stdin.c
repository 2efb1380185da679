/*
 * feed_stdin: line ticks (JSONL or CSV, detected from the first line) read
 * from standard input until end of file.
 *
 * The thread reads big chunks with read(2) and cuts them into lines itself,
 * so one system call serves thousands of lines and a line may be split
 * across reads. Ticks go to the queue in batches; a batch is flushed when it
 * is full or as soon as no more input is waiting, so a producer that writes
 * one tick now and then sees it forwarded at once, not when 255 more come.
 *
 * Waiting is done with poll(2) and a short timeout, checking the stop flag
 * in between, so feed_stop() returns promptly even when stdin is idle. The
 * descriptor is not made non-blocking: stdin is shared with the parent shell
 * or terminal, and O_NONBLOCK would leak to them. After poll() reports input,
 * read() returns what is there without waiting.
 */
#include "feed.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../publisher/clock.h"
#include "../publisher/log.h"
#include "../publisher/tick_file.h"

/* Ticks pushed at most per batch (one lock of the queue per batch). */
#define BATCH_MAX 256
/* Longest line accepted; a longer one is skipped as a bad line. */
#define LINE_MAX_BYTES 65536
/* Read buffer: room for the longest line and plenty of whole lines. */
#define READ_BUF (4 * LINE_MAX_BYTES)
/* How long the thread waits for input before it looks at the stop flag. */
#define POLL_MS 20

struct feed_stdin {
	struct feed base; /* first: a struct feed * points here */
	int fd;

	pthread_t thread;
	bool started;
	bool joined;
	int stop; /* set by feed_stop, read by the thread (__atomic) */

	/* Owned by the thread once it runs. */
	struct tick_parser parser;
	uint64_t lines;  /* lines seen so far, the number in messages */
	bool discarding; /* dropping the rest of a line over the limit */
	size_t batch_len;
	struct tick batch[BATCH_MAX];
	char buf[READ_BUF];
};

static bool
stop_requested(struct feed_stdin *fs)
{
	return __atomic_load_n(&fs->stop, __ATOMIC_ACQUIRE) != 0;
}

/* Push what the batch holds. Returns -1 when the queue is closed. */
static int
flush_batch(struct feed_stdin *fs)
{
	struct feed *f = &fs->base;

	if (fs->batch_len == 0)
		return 0;
	if (tick_queue_push(f->queue, fs->batch, fs->batch_len) != 0)
		return -1;
	__atomic_add_fetch(&f->ticks, fs->batch_len, __ATOMIC_RELAXED);
	__atomic_store_n(&f->last_tick_us, clock_wall_us(), __ATOMIC_RELAXED);
	fs->batch_len = 0;
	return 0;
}

static void
bad_line(struct feed_stdin *fs, const char *reason)
{
	__atomic_add_fetch(&fs->base.bad_lines, 1, __ATOMIC_RELAXED);
	log_warn("stdin line %lu: %s", (unsigned long)fs->lines, reason);
}

static void
long_line(struct feed_stdin *fs)
{
	char reason[64];

	fs->lines++;
	snprintf(reason, sizeof reason, "line is longer than %d bytes",
	         LINE_MAX_BYTES);
	bad_line(fs, reason);
}

/* One complete line, without its newline. Returns -1 when the queue is
 * closed. */
static int
handle_line(struct feed_stdin *fs, const char *line, size_t len)
{
	char reason[256];

	fs->lines++;
	switch (tick_parse_line(&fs->parser, line, len,
	                        &fs->batch[fs->batch_len], reason,
	                        sizeof reason)) {
	case TICK_PARSE_OK:
		if (++fs->batch_len == BATCH_MAX)
			return flush_batch(fs);
		break;
	case TICK_PARSE_SKIP:
		break;
	case TICK_PARSE_ERROR:
		bad_line(fs, reason);
		break;
	}
	return 0;
}

/*
 * buf[0..held) is the start of a line (no newline in it) and
 * buf[held..end) was just read. Handle every complete line, then keep the
 * unfinished one at the front of buf. Returns the bytes kept, or -1 when the
 * queue is closed.
 */
static ssize_t
take_lines(struct feed_stdin *fs, size_t held, size_t end)
{
	char *line = fs->buf, *scan = fs->buf + held, *stop = fs->buf + end;
	char *nl;
	size_t rest;

	while ((nl = memchr(scan, '\n', (size_t)(stop - scan))) != NULL) {
		if (fs->discarding) {
			/* The end of a line that was over the limit. */
			fs->discarding = false;
			long_line(fs);
		} else if (nl - line > LINE_MAX_BYTES) {
			/* Over the limit too, though it fitted one read. */
			long_line(fs);
		} else if (handle_line(fs, line, (size_t)(nl - line)) != 0) {
			return -1;
		}
		line = scan = nl + 1;
	}
	rest = (size_t)(stop - line);
	if (fs->discarding) {
		rest = 0;
	} else if (rest > LINE_MAX_BYTES) {
		/* Already too long with no end in sight: drop what is held
		 * and the rest of the line as it arrives, so memory stays
		 * bounded whatever the producer sends. */
		fs->discarding = true;
		rest = 0;
	}
	memmove(fs->buf, line, rest);
	return (ssize_t)rest;
}

/* End of input: the last line may lack its newline. Returns -1 when the
 * queue is closed. */
static int
finish_input(struct feed_stdin *fs, size_t held)
{
	if (fs->discarding)
		long_line(fs);
	else if (held > 0 && handle_line(fs, fs->buf, held) != 0)
		return -1;
	return flush_batch(fs);
}

static void *
stdin_main(void *arg)
{
	struct feed_stdin *fs = arg;
	struct feed *f = &fs->base;
	struct pollfd pfd = {.fd = fs->fd, .events = POLLIN};
	size_t held = 0;

	while (!stop_requested(fs)) {
		ssize_t n;
		int r;

		/* With ticks waiting, only look whether more input is there
		 * already; if not, send them before waiting. */
		r = poll(&pfd, 1, fs->batch_len > 0 ? 0 : POLL_MS);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_error("stdin: cannot wait for input: %s",
			          strerror(errno));
			break;
		}
		if (r == 0) {
			if (flush_batch(fs) != 0)
				break;
			continue;
		}
		if (pfd.revents & POLLNVAL) {
			log_error(
			        "stdin: standard input is not open; the stdin "
			        "feed has nothing to read");
			break;
		}
		n = read(fs->fd, fs->buf + held, sizeof fs->buf - held);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			log_error("stdin: cannot read: %s", strerror(errno));
			break;
		}
		if (n == 0) {
			if (finish_input(fs, held) != 0)
				break;
			__atomic_store_n(&f->finished, 1, __ATOMIC_RELEASE);
			log_info("stdin: end of input after %" PRIu64
			         " lines: %" PRIu64 " ticks, %" PRIu64
			         " bad lines",
			         fs->lines,
			         __atomic_load_n(&f->ticks, __ATOMIC_RELAXED),
			         __atomic_load_n(&f->bad_lines,
			                         __ATOMIC_RELAXED));
			break;
		}
		n = take_lines(fs, held, held + (size_t)n);
		if (n < 0)
			break; /* queue closed: the server is shutting down */
		held = (size_t)n;
	}
	__atomic_store_n(&f->running, 0, __ATOMIC_RELEASE);
	return NULL;
}

/* ----------------------------------------------------------------- ops */

static int
stdin_start(struct feed *f, char *err, size_t errlen)
{
	struct feed_stdin *fs = (struct feed_stdin *)f;

	if (fs->started) {
		if (err && errlen)
			snprintf(err, errlen, "stdin feed: already started");
		return -1;
	}
	if (feed__start_thread(f, &fs->thread, stdin_main, fs, err, errlen))
		return -1;
	fs->started = true;
	return 0;
}

static void
stdin_stop(struct feed *f)
{
	struct feed_stdin *fs = (struct feed_stdin *)f;

	__atomic_store_n(&fs->stop, 1, __ATOMIC_RELEASE);
	if (fs->started && !fs->joined) {
		pthread_join(fs->thread, NULL);
		fs->joined = true;
	}
}

static void
stdin_destroy(struct feed *f)
{
	free(f);
}

static const struct feed_ops stdin_ops = {
        .start = stdin_start,
        .stop = stdin_stop,
        .destroy = stdin_destroy,
};

struct feed *
feed_stdin_create(struct tick_queue *queue)
{
	struct feed_stdin *fs = calloc(1, sizeof *fs);

	if (!fs)
		return NULL;
	fs->base.ops = &stdin_ops;
	fs->base.kind = "stdin";
	fs->base.queue = queue;
	fs->fd = STDIN_FILENO;
	tick_parser_init(&fs->parser, TICK_FORMAT_UNKNOWN);
	return &fs->base;
}

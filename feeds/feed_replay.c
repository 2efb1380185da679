/*
 * feed_replay: plays a recorded tick file (publisher/tick_file.h) back into
 * the queue.
 *
 * Reading. The file is streamed: read(2) fills a 1 MiB buffer that is cut
 * into lines here, so a file larger than memory replays in constant memory
 * and one system call serves thousands of lines. A line may be up to 64 KiB;
 * a longer one is skipped as a bad line. The format (JSONL or CSV, the CSV
 * columns from its header) is detected from the content by
 * tick_parse_line(). The last line may lack its newline.
 *
 * Pacing. Tick k is due at anchor_wall + (ts_k - anchor_ts) / speed on the
 * monotonic clock, where the anchor is the first tick (and is moved only by
 * pause, speed and seek). Sleeping until a due time computed from the start,
 * never for a gap after each tick, keeps the time spent reading, parsing and
 * pushing from adding up into drift over a long file. The timestamp used for
 * pacing is the running maximum of the file's timestamps: a tick older than
 * one already sent is sent at once, in arrival order, and the pacer never
 * sleeps backwards. Ticks already due are pushed in batches (up to 1024),
 * and the batch is flushed before every sleep so nothing due waits for a
 * later tick. At speed max nothing sleeps: the queue's back-pressure is the
 * only limit.
 *
 * Looping. Each pass after the first is shifted forward so that its first
 * tick comes one mean tick gap after the latest tick sent so far: the stream
 * stays monotonic and its rhythm carries on. Ticks keep the file's own ts
 * otherwise (plus that shift). The summary of a pass is logged for the
 * first pass, then at most every 10 s, so a small file looping at max does
 * not flood the log.
 *
 * Control (feed_control, from the service thread). Commands are stored
 * under `lock` and `gen` is bumped; the thread compares `gen` with the value
 * it last took, without the lock, once per tick, and takes the commands when
 * it moved. Sleeps wait on a condvar that every command signals, so a pause
 * or a seek during a long gap in the file takes effect at once. Semantics of
 * seek are in feed.h: nothing before the target is skipped, so the state a
 * dashboard shows after a seek is the state at that time.
 *
 * Seeking back. The thread reads the pass again from the top without
 * pushing, up to where it stood, to find the cut (the first tick, in file
 * order, at or after the target) and to count, per symbol, the ticks it
 * pushed from the cut on. Its consumer undoes those (feed_set_rewind);
 * then the thread goes back to the cut's line (its byte offset, line
 * number and the parser as they were there) and plays on, standing at the
 * target. That costs a read of the file up to the position, as reading
 * again from the top did.
 *
 * End. Without loop, the thread reports finished, logs the summary and
 * parks until the feed is stopped or a seek asks for an earlier time; the
 * server keeps serving the final state.
 */
#include "feed.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../publisher/clock.h"
#include "../publisher/hash.h"
#include "../publisher/log.h"
#include "../publisher/progress.h"
#include "../publisher/tick_file.h"

/* Ticks pushed at most per batch (one lock of the queue per batch). */
#define BATCH_MAX 1024
/* Longest line accepted; a longer one is skipped as a bad line. */
#define LINE_MAX_BYTES 65536
/* Read buffer; larger than a line so that a refill always makes room. */
#define READ_BUF (1024 * 1024)
/* Each bad line is logged once over the feed's life (not again on every
 * loop pass), and at most this many: a file of garbage must not flood the
 * log. All are counted. */
#define BAD_LINES_LOGGED 1000
/* How much of the file's end is read to find its last timestamp, and how
 * many lines from the end are tried. */
#define END_PROBE_BYTES (2 * LINE_MAX_BYTES)
#define END_PROBE_LINES 16
/* While looping, a pass summary is logged for the first pass and then at
 * most this often: a small file at max loops thousands of times a second. */
#define LOOP_SUMMARY_NS (10 * 1000000000LL)
/* The pause between loop passes of a file with a single tick. */
#define LONE_TICK_GAP_US 1000000

/* What the reading loop does after a tick or a command. */
enum step {
	STEP_GO,     /* push the tick */
	STEP_STOP,   /* feed_stop, or the queue closed */
	STEP_REWIND, /* a backward seek: read again from the top */
};

/* How a pass over the file ended. */
enum pass_end {
	PASS_EOF,
	PASS_STOP,
	PASS_REWIND,
	PASS_READ_ERROR,
};

/* What a seek back came to. */
enum back {
	BACK_PLAY,    /* play on (from the cut, or from the top) */
	BACK_REFUSED, /* nothing changed: carry on from where it was */
	BACK_STOP,    /* stop, or a read error (logged) */
};

/* A place in the file to come back to: the start of a line. */
struct read_mark {
	off_t off;
	uint64_t line_no;          /* lines before it */
	struct tick_parser parser; /* as it was before the line */
	uint64_t pass_bad;         /* bad lines of the pass before it */
};

struct feed_replay {
	struct feed base; /* first: a struct feed * points here */
	char *path;
	bool loop;
	int fd;
	bool seekable; /* regular file: loop, rewind and the end probe work */

	pthread_t thread;
	bool started;
	bool joined;

	/*
	 * Shared with feed_control(), feed_get_status() and feed_stop(), under
	 * `lock`. The thread sleeps on `wakeup` (monotonic clock). Every change
	 * bumps `gen`; `gen` and `stop` are also read without the lock, with
	 * __atomic, by the thread's fast path.
	 */
	pthread_mutex_t lock;
	pthread_cond_t wakeup;
	uint64_t gen;
	int stop;
	bool paused;
	double speed;      /* 0 = max */
	bool seek_pending; /* a seek the thread has not taken yet */
	bool seeking;      /* from the command until the target is reached */
	int64_t seek_ts;

	/* Published by the thread with __atomic, read by the status. */
	int64_t position_ts;
	int64_t first_ts;
	int64_t last_ts;
	uint64_t passes;

	/* ---- owned by the thread once it runs ---- */
	struct tick_parser parser;
	char *buf;
	size_t pos, end; /* unread bytes are buf[pos..end) */
	off_t buf_off;   /* file offset of buf[0] */
	off_t line_off;  /* file offset of the line read_line() gave last */
	bool eof;
	bool discarding;      /* dropping the rest of a line over the limit */
	uint64_t line_no;     /* lines read in this pass */
	uint64_t lines_known; /* lines of earlier passes (logged then) */
	uint64_t bad_logged;
	struct tick *batch;
	size_t batch_len;

	/* Commands as applied by the thread. */
	uint64_t seen_gen;
	double t_speed;
	bool t_paused;
	bool ff;           /* fast-forwarding to ff_target (a seek) */
	int64_t ff_target; /* file ts */

	/* Pacing, in sent (shifted) timestamps. */
	bool anchored;
	int64_t anchor_ns; /* monotonic time at which ... */
	int64_t anchor_ts; /* ... the replay stood at this ts */
	bool have_pace;
	int64_t pace_ts; /* running max of the ts paced so far */

	/* Loop shift and what it is computed from. */
	int64_t shift;
	bool have_sent;
	int64_t sent_max; /* largest ts sent, shift included */
	bool have_range;
	int64_t file_min, file_max; /* file timestamps seen, any pass */
	uint64_t full_pass_ticks;   /* ticks in a complete pass, 0 = none yet */
	bool probed;

	/* This pass. */
	bool have_pos;
	int64_t pos_ts; /* running max of the file ts accepted in this pass */
	uint64_t pass_ticks; /* ticks read (the one being paced included) */
	uint64_t pass_sent;  /* ticks accepted: pushed, or in the batch */
	uint64_t pass_bad;
	int64_t pass_last_ts;
	int64_t pass_start_ns;
	int64_t summary_ns; /* when a loop summary was last logged, 0 = never */

	/* A seek back: per symbol, the ticks pushed from the cut on, with
	 * an open-addressing index by name (UINT32_MAX = free). */
	struct feed_rewind_symbol *undo;
	size_t undo_count, undo_cap;
	uint32_t *undo_slots;
	size_t undo_mask;

	/* `publisher replay` on a terminal: the progress line of the pass
	 * (publisher/progress.h), from the ticks and the file offset. */
	bool progress_on;
	struct progress progress;
	uint64_t progress_ticks; /* pass_ticks at the last update */
	uint64_t file_size;
};

/* ------------------------------------------------------------- clocks */

/* Wall nanoseconds that delta_us of file time take at speed (> 0). Done in
 * double: a month of file time at speed 0.001 still fits, and the result is
 * clamped long before int64 would overflow. */
static int64_t
file_to_wall_ns(int64_t delta_us, double speed)
{
	double ns = (double)delta_us * 1000.0 / speed;

	if (ns <= 0)
		return 0;
	if (ns > 4e18)
		return (int64_t)4e18;
	return (int64_t)ns;
}

/* A file timestamp for the log: "2024-03-01T14:30:00.123456Z". */
static const char *
format_ts(int64_t us, char *out, size_t outlen)
{
	time_t secs =
	        (time_t)(us >= 0 ? us / 1000000 : (us - 999999) / 1000000);
	long frac = (long)(us - (int64_t)secs * 1000000);
	struct tm tm;

	if (!gmtime_r(&secs, &tm)) {
		snprintf(out, outlen, "%" PRId64 " us", us);
		return out;
	}
	snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ",
	         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	         tm.tm_min, tm.tm_sec, frac);
	return out;
}

/* ------------------------------------------------------------ waiting */

static bool
stop_requested(struct feed_replay *fr)
{
	return __atomic_load_n(&fr->stop, __ATOMIC_ACQUIRE) != 0;
}

static bool
commands_waiting(struct feed_replay *fr)
{
	return __atomic_load_n(&fr->gen, __ATOMIC_ACQUIRE) != fr->seen_gen;
}

/* Sleep until the monotonic time due_ns, or until a command (or stop)
 * arrives. */
static void
wait_until(struct feed_replay *fr, int64_t due_ns)
{
	struct timespec until = clock_timespec_of_ns(due_ns);

	pthread_mutex_lock(&fr->lock);
	while (fr->gen == fr->seen_gen && clock_mono_ns() < due_ns)
		if (pthread_cond_timedwait(&fr->wakeup, &fr->lock, &until) ==
		    ETIMEDOUT)
			break;
	pthread_mutex_unlock(&fr->lock);
}

/* Sleep until a command (or stop) arrives. */
static void
wait_for_command(struct feed_replay *fr)
{
	pthread_mutex_lock(&fr->lock);
	while (fr->gen == fr->seen_gen)
		pthread_cond_wait(&fr->wakeup, &fr->lock);
	pthread_mutex_unlock(&fr->lock);
}

/* A seek is done (reached, or given up): clear "seeking" unless a newer
 * seek is already waiting to be taken. */
static void
seek_done(struct feed_replay *fr)
{
	fr->ff = false;
	pthread_mutex_lock(&fr->lock);
	if (!fr->seek_pending)
		fr->seeking = false;
	pthread_mutex_unlock(&fr->lock);
}

/* ------------------------------------------------------------ reading */

static void
bad_line(struct feed_replay *fr, const char *reason)
{
	fr->pass_bad++;
	/* A line read in an earlier pass was reported then. */
	if (fr->line_no <= fr->lines_known)
		return;
	__atomic_add_fetch(&fr->base.bad_lines, 1, __ATOMIC_RELAXED);
	if (fr->bad_logged < BAD_LINES_LOGGED)
		log_warn("replay %s line %lu: %s", fr->path,
		         (unsigned long)fr->line_no, reason);
	else if (fr->bad_logged == BAD_LINES_LOGGED)
		log_warn("replay %s: more than %d bad lines; the rest are "
		         "counted in the summary but not logged",
		         fr->path, BAD_LINES_LOGGED);
	fr->bad_logged++;
}

static void
long_line(struct feed_replay *fr)
{
	char reason[64];

	snprintf(reason, sizeof reason, "line is longer than %d bytes",
	         LINE_MAX_BYTES);
	bad_line(fr, reason);
}

/*
 * The next line of the file, without its newline, in *line (valid until the
 * next call). Returns 1 with a line, 0 at the end of the file, -1 on a read
 * error (logged) and -2 when the feed is asked to stop.
 */
static int
read_line(struct feed_replay *fr, const char **line, size_t *len)
{
	for (;;) {
		char *start = fr->buf + fr->pos;
		size_t avail = fr->end - fr->pos;
		char *nl = memchr(start, '\n', avail);
		ssize_t n;

		if (nl) {
			size_t l = (size_t)(nl - start);

			fr->line_off = fr->buf_off + (off_t)fr->pos;
			fr->pos += l + 1;
			fr->line_no++;
			if (fr->discarding) {
				/* The end of a line that was over the
				 * limit. */
				fr->discarding = false;
				long_line(fr);
				continue;
			}
			if (l > LINE_MAX_BYTES) {
				long_line(fr);
				continue;
			}
			*line = start;
			*len = l;
			return 1;
		}
		if (fr->eof) {
			/* The last line, which has no newline. */
			fr->line_off = fr->buf_off + (off_t)fr->pos;
			fr->pos = fr->end;
			if (fr->discarding) {
				fr->discarding = false;
				fr->line_no++;
				long_line(fr);
				return 0;
			}
			if (avail == 0)
				return 0;
			fr->line_no++;
			if (avail > LINE_MAX_BYTES) {
				long_line(fr);
				return 0;
			}
			*line = start;
			*len = avail;
			return 1;
		}
		if (stop_requested(fr))
			return -2;
		/* Keep the unfinished line at the front and read more.
		 * A line already over the limit is dropped as it arrives, so
		 * memory stays bounded whatever the file holds. */
		if (fr->discarding || avail > LINE_MAX_BYTES) {
			fr->discarding = true;
			avail = 0;
		}
		/* What stays is the buffer's last `avail` bytes. */
		fr->buf_off += (off_t)(fr->end - avail);
		memmove(fr->buf, fr->buf + fr->end - avail, avail);
		fr->pos = 0;
		fr->end = avail;
		do
			n = read(fr->fd, fr->buf + fr->end, READ_BUF - fr->end);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			log_error("replay %s: cannot read after line %lu: %s",
			          fr->path, (unsigned long)fr->line_no,
			          strerror(errno));
			return -1;
		}
		if (n == 0)
			fr->eof = true;
		fr->end += (size_t)n;
	}
}

/*
 * Find the file's last timestamp so that a dashboard can draw the whole
 * span before the replay gets there: parse the last lines of the file with
 * a copy of the parser (which knows the format and the CSV header by now).
 * pread() leaves the reading position alone. Only for regular files.
 */
static void
probe_end(struct feed_replay *fr)
{
	struct stat st;
	char reason[256];
	char *b, *end;
	off_t from;
	ssize_t n;
	int tries = 0;

	if (!fr->seekable || fstat(fr->fd, &st) != 0 || st.st_size <= 0)
		return;
	from = st.st_size > END_PROBE_BYTES ? st.st_size - END_PROBE_BYTES : 0;
	b = malloc(END_PROBE_BYTES);
	if (!b)
		return;
	do
		n = pread(fr->fd, b, (size_t)(st.st_size - from), from);
	while (n < 0 && errno == EINTR);
	end = n > 0 ? b + n : b;
	while (end > b && tries < END_PROBE_LINES) {
		struct tick_parser p = fr->parser;
		char *line_end = end, *start;
		struct tick t;

		if (line_end[-1] == '\n')
			line_end--;
		start = line_end;
		while (start > b && start[-1] != '\n')
			start--;
		/* The first line of the block may be cut: not a line. */
		if (start == b && from > 0)
			break;
		if (tick_parse_line(&p, start, (size_t)(line_end - start), &t,
		                    reason, sizeof reason) == TICK_PARSE_OK) {
			__atomic_store_n(&fr->last_ts, t.ts, __ATOMIC_RELAXED);
			break;
		}
		if (line_end > start)
			tries++;
		end = start;
	}
	free(b);
}

/* ------------------------------------------------------------ pushing */

/* Push the batch. Returns -1 when the queue is closed. */
static int
flush(struct feed_replay *fr)
{
	struct feed *f = &fr->base;

	if (fr->batch_len == 0)
		return 0;
	if (tick_queue_push(f->queue, fr->batch, fr->batch_len) != 0)
		return -1;
	__atomic_add_fetch(&f->ticks, fr->batch_len, __ATOMIC_RELAXED);
	__atomic_store_n(&f->last_tick_us, clock_wall_us(), __ATOMIC_RELAXED);
	__atomic_store_n(&fr->position_ts, fr->pos_ts, __ATOMIC_RELAXED);
	fr->batch_len = 0;
	return 0;
}

/* Push the batch before a wait, keeping the tick being paced (parsed into
 * the slot after the batch) as the first of the next one. */
static int
flush_keeping(struct feed_replay *fr, struct tick **pending)
{
	size_t len = fr->batch_len;

	if (len == 0)
		return 0;
	if (flush(fr) != 0)
		return -1;
	fr->batch[0] = fr->batch[len];
	*pending = &fr->batch[0];
	return 0;
}

/* ------------------------------------------------------------- pacing */

/* Where the replay stands now in sent time, by the clock: between the last
 * tick paced and `cap` (the tick waiting to go, if any). */
static int64_t
virtual_ts(struct feed_replay *fr, int64_t now_ns, int64_t cap)
{
	int64_t v;

	if (!fr->anchored || fr->t_speed == 0)
		return fr->pace_ts;
	if (fr->t_paused)
		return fr->anchor_ts; /* frozen there when paused */
	v = fr->anchor_ts +
	    (int64_t)((double)(now_ns - fr->anchor_ns) * fr->t_speed / 1000.0);
	if (v > cap)
		v = cap;
	if (fr->have_pace && v < fr->pace_ts)
		v = fr->pace_ts;
	return v;
}

/*
 * Take the commands stored since the last look. A change of speed or a
 * pause moves the anchor to where the replay stands now, so the file's
 * clock neither jumps nor restarts: after a resume, the rest of the gap to
 * the next tick is still to wait. pending_ts is the sent ts of the tick
 * waiting to go (INT64_MAX when none).
 */
static enum step
take_commands(struct feed_replay *fr, int64_t pending_ts)
{
	bool paused, seek;
	double speed;
	int64_t target;
	int stop;

	pthread_mutex_lock(&fr->lock);
	fr->seen_gen = fr->gen;
	stop = fr->stop;
	paused = fr->paused;
	speed = fr->speed;
	seek = fr->seek_pending;
	target = fr->seek_ts;
	fr->seek_pending = false;
	pthread_mutex_unlock(&fr->lock);

	if (stop)
		return STEP_STOP;
	if (speed != fr->t_speed || paused != fr->t_paused) {
		int64_t now = clock_mono_ns();
		int64_t v = virtual_ts(fr, now, pending_ts);

		fr->t_speed = speed;
		fr->t_paused = paused;
		if (fr->have_pace) {
			fr->anchored = true;
			fr->anchor_ts = v;
			fr->anchor_ns = now;
		}
	}
	if (seek) {
		fr->ff = true;
		fr->ff_target = target;
		if (fr->have_pos && target < fr->pos_ts) {
			if (fr->seekable)
				return STEP_REWIND;
			/* feed_control() refuses this; a race with the
			 * position moving on can still get here. */
			log_warn("replay %s: cannot seek back in a file that "
			         "is not a regular file; carrying on",
			         fr->path);
			seek_done(fr);
		}
	}
	return STEP_GO;
}

/*
 * Decide when the tick *t (file timestamp file_ts, sent ts t->ts) goes out:
 * returns STEP_GO when it is due, after sleeping if needed. Before a sleep
 * the ticks already due are flushed, which may move the tick to the front
 * of the batch (*t is updated).
 */
static enum step
pace(struct feed_replay *fr, struct tick **t, int64_t file_ts)
{
	for (;;) {
		int64_t eff, due, now;
		char when[48];

		if (commands_waiting(fr)) {
			enum step s = take_commands(fr, (*t)->ts);

			if (s != STEP_GO)
				return s;
		}
		if (fr->ff) {
			/* Seeking: everything before the target goes out at
			 * once, paused or not; the replay then stands at the
			 * target. */
			if (file_ts < fr->ff_target)
				return STEP_GO;
			fr->anchored = true;
			fr->anchor_ts = fr->ff_target + fr->shift;
			fr->anchor_ns = clock_mono_ns();
			fr->have_pace = true;
			fr->pace_ts = fr->anchor_ts;
			/* The replay stands at the target now, even before
			 * the next tick goes (it may be paused). */
			if (!fr->have_pos || fr->ff_target > fr->pos_ts) {
				fr->have_pos = true;
				fr->pos_ts = fr->ff_target;
			}
			if (flush_keeping(fr, t) != 0)
				return STEP_STOP;
			__atomic_store_n(&fr->position_ts, fr->pos_ts,
			                 __ATOMIC_RELAXED);
			seek_done(fr);
			log_info("replay %s: at %s after a seek", fr->path,
			         format_ts(fr->ff_target, when, sizeof when));
		}
		if (fr->t_paused) {
			if (flush_keeping(fr, t) != 0)
				return STEP_STOP;
			wait_for_command(fr);
			continue;
		}
		eff = fr->have_pace && fr->pace_ts > (*t)->ts ? fr->pace_ts
		                                              : (*t)->ts;
		if (fr->t_speed == 0) {
			fr->have_pace = true;
			fr->pace_ts = eff;
			return STEP_GO;
		}
		now = clock_mono_ns();
		if (!fr->anchored) {
			fr->anchored = true;
			fr->anchor_ts = eff;
			fr->anchor_ns = now;
		}
		due = fr->anchor_ns +
		      file_to_wall_ns(eff - fr->anchor_ts, fr->t_speed);
		if (now >= due) {
			fr->have_pace = true;
			fr->pace_ts = eff;
			return STEP_GO;
		}
		if (flush_keeping(fr, t) != 0)
			return STEP_STOP;
		wait_until(fr, due);
	}
}

/* ------------------------------------------------------------- passes */

/* Bookkeeping for a tick read from the file, before it is paced. */
static void
note_tick(struct feed_replay *fr, int64_t file_ts)
{
	if (!fr->have_range) {
		fr->have_range = true;
		fr->file_min = fr->file_max = file_ts;
		__atomic_store_n(&fr->first_ts, file_ts, __ATOMIC_RELAXED);
	} else if (file_ts < fr->file_min) {
		fr->file_min = file_ts;
	} else if (file_ts > fr->file_max) {
		fr->file_max = file_ts;
	}
	if (!fr->probed) {
		fr->probed = true;
		probe_end(fr);
	}
	fr->pass_ticks++;
	fr->pass_last_ts = file_ts;
}

/* The progress line, when due: the ticks of this pass, and how far into
 * the file it has read (its offset less what is buffered). A new pass
 * (loop, seek back) starts the line again. */
static void
show_progress(struct feed_replay *fr)
{
	off_t at;

	if (fr->pass_ticks < fr->progress_ticks) {
		progress_end(&fr->progress);
		progress_start(&fr->progress, true, fr->progress.what,
		               fr->file_size);
	}
	fr->progress_ticks = fr->pass_ticks;
	if (!progress_due(&fr->progress))
		return;
	at = fr->seekable ? lseek(fr->fd, 0, SEEK_CUR) : -1;
	progress_update(&fr->progress, fr->pass_ticks,
	                at < 0 ? 0 : (uint64_t)at - (fr->end - fr->pos));
}

/* Read, parse, pace and push until the end of the file, a stop or a
 * backward seek. */
static enum pass_end
play(struct feed_replay *fr)
{
	const char *line;
	size_t len;
	int r;

	while ((r = read_line(fr, &line, &len)) > 0) {
		struct tick *t = &fr->batch[fr->batch_len];
		char reason[256];
		int64_t file_ts;
		enum step s;

		switch (tick_parse_line(&fr->parser, line, len, t, reason,
		                        sizeof reason)) {
		case TICK_PARSE_OK:
			break;
		case TICK_PARSE_SKIP:
			continue;
		case TICK_PARSE_ERROR:
			bad_line(fr, reason);
			continue;
		}
		file_ts = t->ts;
		note_tick(fr, file_ts);
		t->ts = file_ts + fr->shift;
		s = pace(fr, &t, file_ts);
		if (s == STEP_STOP)
			return PASS_STOP;
		if (s == STEP_REWIND)
			return flush(fr) != 0 ? PASS_STOP : PASS_REWIND;
		/* Accepted: it is in the batch. */
		fr->batch_len++;
		fr->pass_sent++;
		if (!fr->have_pos || file_ts > fr->pos_ts) {
			fr->have_pos = true;
			fr->pos_ts = file_ts;
		}
		if (!fr->have_sent || t->ts > fr->sent_max) {
			fr->have_sent = true;
			fr->sent_max = t->ts;
		}
		if (fr->batch_len == BATCH_MAX && flush(fr) != 0)
			return PASS_STOP;
		if (fr->progress_on)
			show_progress(fr);
	}
	if (flush(fr) != 0 || r == -2)
		return PASS_STOP;
	return r < 0 ? PASS_READ_ERROR : PASS_EOF;
}

/* The pause between passes, in file time: the file's mean gap between
 * ticks, so the rhythm carries on across the seam. */
static int64_t
loop_gap(const struct feed_replay *fr)
{
	uint64_t n = fr->full_pass_ticks ? fr->full_pass_ticks : fr->pass_ticks;
	int64_t gap;

	if (n < 2)
		return LONE_TICK_GAP_US;
	gap = (fr->file_max - fr->file_min) / (int64_t)(n - 1);
	return gap > 0 ? gap : 1;
}

static void log_summary(struct feed_replay *fr, const char *how);

/* Go to a place in the file; what was buffered is dropped. The lines read
 * so far are remembered as reported (bad_line). Returns 0, or -1 (logged). */
static int
go_to(struct feed_replay *fr, const struct read_mark *m)
{
	if (lseek(fr->fd, m->off, SEEK_SET) < 0) {
		log_error("replay %s: cannot go back to line %" PRIu64 ": %s",
		          fr->path, m->line_no + 1, strerror(errno));
		return -1;
	}
	if (fr->line_no > fr->lines_known)
		fr->lines_known = fr->line_no;
	fr->pos = fr->end = 0;
	fr->buf_off = m->off;
	fr->eof = false;
	fr->discarding = false;
	fr->line_no = m->line_no;
	fr->parser = m->parser;
	fr->pass_bad = m->pass_bad;
	return 0;
}

/* Read the file again from the top, as a new pass: with loop and new_pass,
 * shifted so that its earliest tick comes after everything sent so far;
 * otherwise the pass under way again, with its shift. */
static int
rewind_file(struct feed_replay *fr, bool new_pass)
{
	struct read_mark top = {.off = 0};

	tick_parser_init(&top.parser, TICK_FORMAT_UNKNOWN);
	if (go_to(fr, &top) != 0)
		return -1;
	if (new_pass && fr->loop && fr->have_sent && fr->have_range)
		__atomic_store_n(&fr->shift,
		                 fr->sent_max + loop_gap(fr) - fr->file_min,
		                 __ATOMIC_RELAXED);
	fr->have_pos = false;
	fr->pos_ts = 0;
	/* It stands at the top of the file now, not where the pass before
	 * ended: a seek is taken by where the pass under way stands. */
	if (fr->have_range)
		__atomic_store_n(&fr->position_ts, fr->file_min,
		                 __ATOMIC_RELAXED);
	fr->pass_ticks = 0;
	fr->pass_sent = 0;
	fr->pass_start_ns = clock_mono_ns();
	return 0;
}

/* Count one more tick of symbol to undo. Returns -1 when out of memory. */
static int
undo_add(struct feed_replay *fr, const char *symbol)
{
	size_t len = strnlen(symbol, TICK_SYMBOL_MAX), i;

	if ((fr->undo_count + 1) * 2 >
	    (fr->undo_slots ? fr->undo_mask + 1 : 0)) {
		size_t size = fr->undo_slots ? (fr->undo_mask + 1) * 2 : 64, k;
		uint32_t *slots = malloc(size * sizeof *slots);

		if (!slots)
			return -1;
		memset(slots, 0xff, size * sizeof *slots);
		for (k = 0; k < fr->undo_count; k++) {
			const char *name = fr->undo[k].symbol;

			i = hash_name(name, strlen(name)) & (size - 1);
			while (slots[i] != UINT32_MAX)
				i = (i + 1) & (size - 1);
			slots[i] = (uint32_t)k;
		}
		free(fr->undo_slots);
		fr->undo_slots = slots;
		fr->undo_mask = size - 1;
	}
	for (i = hash_name(symbol, len) & fr->undo_mask;
	     fr->undo_slots[i] != UINT32_MAX; i = (i + 1) & fr->undo_mask) {
		struct feed_rewind_symbol *u = &fr->undo[fr->undo_slots[i]];

		if (!strncmp(u->symbol, symbol, sizeof u->symbol)) {
			u->ticks++;
			return 0;
		}
	}
	if (fr->undo_count == fr->undo_cap) {
		size_t cap = fr->undo_cap ? fr->undo_cap * 2 : 32;
		struct feed_rewind_symbol *p =
		        realloc(fr->undo, cap * sizeof *p);

		if (!p)
			return -1;
		fr->undo = p;
		fr->undo_cap = cap;
	}
	memset(&fr->undo[fr->undo_count], 0, sizeof fr->undo[0]);
	memcpy(fr->undo[fr->undo_count].symbol, symbol, len);
	fr->undo[fr->undo_count].ticks = 1;
	fr->undo_slots[i] = (uint32_t)fr->undo_count++;
	return 0;
}

static void
undo_clear(struct feed_replay *fr)
{
	fr->undo_count = 0;
	if (fr->undo_slots)
		memset(fr->undo_slots, 0xff,
		       (fr->undo_mask + 1) * sizeof *fr->undo_slots);
}

/*
 * Read the pass again from the top, pushing nothing, as far as it was
 * sent: find the cut for target (its place in *cut, its index in *cut_at)
 * and count in fr->undo, per symbol, the ticks sent from the cut on. *here
 * is where the reading stood (the line of the next tick, or the end).
 * Returns 0, or -1 on a stop or a read error (logged).
 */
static int
find_cut(struct feed_replay *fr, int64_t target, struct read_mark *cut,
         uint64_t *cut_at, struct read_mark *here)
{
	struct read_mark top = {.off = 0};
	uint64_t sent = fr->pass_sent, i = 0;
	bool found = false;
	const char *line;
	size_t len;
	int r;

	tick_parser_init(&top.parser, TICK_FORMAT_UNKNOWN);
	if (go_to(fr, &top) != 0)
		return -1;
	undo_clear(fr);
	for (;;) {
		struct tick_parser before = fr->parser;
		struct read_mark m;
		char reason[256];
		struct tick t;

		r = read_line(fr, &line, &len);
		if (r <= 0)
			break;
		m.off = fr->line_off;
		m.line_no = fr->line_no - 1;
		m.parser = before;
		m.pass_bad = fr->pass_bad;
		switch (tick_parse_line(&fr->parser, line, len, &t, reason,
		                        sizeof reason)) {
		case TICK_PARSE_OK:
			break;
		case TICK_PARSE_SKIP:
			continue;
		case TICK_PARSE_ERROR:
			bad_line(fr, reason); /* counted, not logged again */
			continue;
		}
		if (i == sent) {
			*here = m;
			break;
		}
		if (!found && t.ts >= target) {
			found = true;
			*cut = m;
			*cut_at = i;
		}
		if (found && undo_add(fr, t.symbol) != 0) {
			log_error("replay %s: out of memory while seeking back",
			          fr->path);
			return -1;
		}
		i++;
	}
	if (r < 0)
		return -1;
	if (r == 0) {
		/* The end of the file: where a finished replay stands. */
		here->off = fr->buf_off + (off_t)fr->end;
		here->line_no = fr->line_no;
		here->parser = fr->parser;
		here->pass_bad = fr->pass_bad;
	}
	if (!found) {
		/* Every tick sent is before the target. */
		*cut = *here;
		*cut_at = i;
	}
	return 0;
}

/* After a seek back, from the cut: the replay stands at the target (even
 * paused), and pacing starts again from there. */
static void
stand_at(struct feed_replay *fr, int64_t target)
{
	char when[48];

	fr->anchored = true;
	fr->anchor_ts = target + fr->shift;
	fr->anchor_ns = clock_mono_ns();
	fr->have_pace = true;
	fr->pace_ts = fr->anchor_ts;
	fr->have_pos = true;
	fr->pos_ts = target;
	__atomic_store_n(&fr->position_ts, target, __ATOMIC_RELAXED);
	seek_done(fr);
	log_info("replay %s: at %s after a seek back (line %" PRIu64 ")",
	         fr->path, format_ts(target, when, sizeof when),
	         fr->line_no + 1);
}

/*
 * A backward seek to fr->ff_target (feed.h, feed_control; every tick
 * accepted so far is pushed). With a rewind hook: find the cut, have the
 * consumer undo the ticks sent from it on, and play on from the cut.
 * Without one, or when the consumer has forgotten everything: read the
 * file again from the top and fast-forward to the target (ff stays set).
 * from_end: the replay had finished (its summary is logged already).
 */
static enum back
seek_back(struct feed_replay *fr, bool from_end)
{
	struct feed *f = &fr->base;
	int64_t target = fr->ff_target;
	struct read_mark cut, here;
	uint64_t cut_at = 0, sent = fr->pass_sent;

	if (!f->rewind) {
		if (!from_end)
			log_summary(fr, " (seek: reading again from the top)");
		return rewind_file(fr, true) == 0 ? BACK_PLAY : BACK_STOP;
	}
	if (find_cut(fr, target, &cut, &cut_at, &here) != 0)
		return BACK_STOP;
	if (fr->undo_count) {
		struct feed_rewind rw = {
		        .ts = target + fr->shift,
		        .symbols = fr->undo,
		        .count = fr->undo_count,
		};

		switch (f->rewind(&rw, f->rewind_ctx)) {
		case FEED_REWIND_UNDONE:
			log_info("replay %s: %" PRIu64 " ticks undone for a "
			         "seek back",
			         fr->path, sent - cut_at);
			break;
		case FEED_REWIND_CLEARED:
			if (!from_end)
				log_summary(fr, " (seek: reading again from "
				                "the top)");
			return rewind_file(fr, false) == 0 ? BACK_PLAY
			                                   : BACK_STOP;
		case FEED_REWIND_REFUSED:
			/* Back to the tick it was at; it is read again. */
			if (go_to(fr, &here) != 0)
				return BACK_STOP;
			fr->pass_ticks = sent;
			seek_done(fr);
			return BACK_REFUSED;
		case FEED_REWIND_STOP:
			return BACK_STOP;
		}
	}
	if (go_to(fr, &cut) != 0)
		return BACK_STOP;
	fr->pass_ticks = cut_at;
	fr->pass_sent = cut_at;
	stand_at(fr, target);
	return BACK_PLAY;
}

static void
log_summary(struct feed_replay *fr, const char *how)
{
	progress_end(&fr->progress);
	log_info("replay %s: %" PRIu64 " lines, %" PRIu64 " ticks, %" PRIu64
	         " bad lines, took %.3f s%s",
	         fr->path, fr->line_no, fr->pass_ticks, fr->pass_bad,
	         (double)(clock_mono_ns() - fr->pass_start_ns) / 1e9, how);
}

/*
 * Finished without loop: wait for feed_stop or for a seek before the end
 * (which starts the replay again: ff and ff_target are set for
 * seek_back()). Commands are kept in step meanwhile. Returns true when
 * asked to stop.
 */
static bool
park(struct feed_replay *fr)
{
	bool stop = false;

	pthread_mutex_lock(&fr->lock);
	for (;;) {
		fr->seen_gen = fr->gen;
		fr->t_paused = fr->paused;
		fr->t_speed = fr->speed;
		if (fr->stop) {
			stop = true;
			break;
		}
		if (fr->seek_pending) {
			fr->seek_pending = false;
			if (fr->seekable && fr->seek_ts < fr->pos_ts) {
				fr->ff = true;
				fr->ff_target = fr->seek_ts;
				break;
			}
			fr->seeking = false; /* at or past the end already */
		}
		pthread_cond_wait(&fr->wakeup, &fr->lock);
	}
	pthread_mutex_unlock(&fr->lock);
	return stop;
}

/* Finished: park until a seek back plays the file again (true), or the
 * feed stops (false). */
static bool
park_until_seek(struct feed_replay *fr)
{
	struct feed *f = &fr->base;

	for (;;) {
		enum back b;

		if (park(fr))
			return false;
		__atomic_store_n(&f->finished, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&f->running, 1, __ATOMIC_RELEASE);
		b = seek_back(fr, true);
		if (b != BACK_REFUSED)
			return b == BACK_PLAY;
		__atomic_store_n(&f->finished, 1, __ATOMIC_RELEASE);
		__atomic_store_n(&f->running, 0, __ATOMIC_RELEASE);
	}
}

static void *
replay_main(void *arg)
{
	struct feed_replay *fr = arg;
	struct feed *f = &fr->base;

	fr->pass_start_ns = clock_mono_ns();
	for (;;) {
		enum pass_end e = play(fr);

		if (e == PASS_STOP || e == PASS_READ_ERROR)
			break;
		if (e == PASS_REWIND) {
			if (seek_back(fr, false) == BACK_STOP)
				break;
			continue;
		}
		/* End of file. A seek past the end stops here. */
		if (fr->ff) {
			seek_done(fr);
			fr->pace_ts = fr->sent_max;
			fr->anchored = false;
		}
		fr->full_pass_ticks = fr->pass_ticks;
		__atomic_store_n(&fr->last_ts, fr->pass_last_ts,
		                 __ATOMIC_RELAXED);
		__atomic_add_fetch(&fr->passes, 1, __ATOMIC_RELAXED);
		if (fr->loop && fr->pass_ticks > 0) {
			int64_t now = clock_mono_ns();

			if (fr->summary_ns == 0 ||
			    now - fr->summary_ns >= LOOP_SUMMARY_NS) {
				char how[64];

				snprintf(how, sizeof how,
				         " (pass %" PRIu64 ", looping)",
				         __atomic_load_n(&fr->passes,
				                         __ATOMIC_RELAXED));
				log_summary(fr, how);
				fr->summary_ns = now;
			}
			if (rewind_file(fr, true) != 0)
				break;
			continue;
		}
		log_summary(fr, "");
		if (fr->loop)
			log_warn("replay %s: no ticks in a whole pass; not "
			         "looping over it",
			         fr->path);
		__atomic_store_n(&f->finished, 1, __ATOMIC_RELEASE);
		__atomic_store_n(&f->running, 0, __ATOMIC_RELEASE);
		log_info("replay %s: finished; serving the final state (a "
		         "seek plays it again)",
		         fr->path);
		if (!park_until_seek(fr))
			break;
	}
	__atomic_store_n(&f->running, 0, __ATOMIC_RELEASE);
	return NULL;
}

/* ----------------------------------------------------------------- ops */

static int
replay_start(struct feed *f, char *err, size_t errlen)
{
	struct feed_replay *fr = (struct feed_replay *)f;
	struct stat st;
	double speed;
	int rc;

	if (fr->started) {
		snprintf(err, errlen, "replay feed: already started");
		return -1;
	}
	pthread_mutex_lock(&fr->lock);
	speed = fr->speed; /* feed_control() may have changed it already */
	pthread_mutex_unlock(&fr->lock);
	fr->fd = open(fr->path, O_RDONLY | O_CLOEXEC);
	if (fr->fd < 0) {
		snprintf(err, errlen, "cannot open '%s': %s", fr->path,
		         strerror(errno));
		return -1;
	}
	if (fstat(fr->fd, &st) != 0) {
		snprintf(err, errlen, "cannot read '%s': %s", fr->path,
		         strerror(errno));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "cannot read '%s': %s", fr->path,
		         strerror(EISDIR));
		goto fail;
	}
	fr->seekable = S_ISREG(st.st_mode);
	if (fr->loop && !fr->seekable) {
		snprintf(err, errlen,
		         "cannot loop over '%s': it is not a regular file, "
		         "and a pipe cannot be read twice",
		         fr->path);
		goto fail;
	}
	if (fr->seekable)
		posix_fadvise(fr->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	if (fr->progress_on) {
		char what[80];

		fr->file_size = fr->seekable ? (uint64_t)st.st_size : 0;
		snprintf(what, sizeof what, "replay %.60s", fr->path);
		progress_start(&fr->progress, true, what, fr->file_size);
	}

	__atomic_store_n(&f->running, 1, __ATOMIC_RELEASE);
	rc = pthread_create(&fr->thread, NULL, replay_main, fr);
	if (rc != 0) {
		__atomic_store_n(&f->running, 0, __ATOMIC_RELEASE);
		snprintf(err, errlen,
		         "replay feed: cannot start its thread: %s",
		         strerror(rc));
		goto fail;
	}
	fr->started = true;
	if (speed == 0)
		log_info("replay %s: started at speed max%s", fr->path,
		         fr->loop ? ", loop" : "");
	else
		log_info("replay %s: started at speed %g%s", fr->path, speed,
		         fr->loop ? ", loop" : "");
	return 0;

fail:
	close(fr->fd);
	fr->fd = -1;
	return -1;
}

static void
replay_stop(struct feed *f)
{
	struct feed_replay *fr = (struct feed_replay *)f;

	pthread_mutex_lock(&fr->lock);
	__atomic_store_n(&fr->stop, 1, __ATOMIC_RELEASE);
	__atomic_add_fetch(&fr->gen, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&fr->wakeup);
	pthread_mutex_unlock(&fr->lock);
	if (fr->started && !fr->joined) {
		pthread_join(fr->thread, NULL);
		fr->joined = true;
	}
}

static void
replay_destroy(struct feed *f)
{
	struct feed_replay *fr = (struct feed_replay *)f;

	if (fr->fd >= 0)
		close(fr->fd);
	pthread_cond_destroy(&fr->wakeup);
	pthread_mutex_destroy(&fr->lock);
	free(fr->undo);
	free(fr->undo_slots);
	free(fr->batch);
	free(fr->buf);
	free(fr->path);
	free(fr);
}

static int
replay_control(struct feed *f, const struct feed_command *cmd, char *err,
               size_t errlen)
{
	struct feed_replay *fr = (struct feed_replay *)f;
	int64_t position = __atomic_load_n(&fr->position_ts, __ATOMIC_RELAXED);
	char when[48];

	/* Logged under the lock, before the thread can act on it, so the
	 * log reads in the order things happened. */
	pthread_mutex_lock(&fr->lock);
	switch (cmd->kind) {
	case FEED_CMD_PAUSE:
		fr->paused = true;
		log_info("replay %s: paused", fr->path);
		break;
	case FEED_CMD_RESUME:
		fr->paused = false;
		log_info("replay %s: resumed", fr->path);
		break;
	case FEED_CMD_SPEED:
		fr->speed = cmd->speed;
		if (cmd->speed == 0)
			log_info("replay %s: speed max", fr->path);
		else
			log_info("replay %s: speed %g", fr->path, cmd->speed);
		break;
	case FEED_CMD_SEEK:
		if (fr->started && !fr->seekable && cmd->ts < position) {
			pthread_mutex_unlock(&fr->lock);
			snprintf(err, errlen,
			         "cannot seek back in '%s': it is not a "
			         "regular file, and a pipe cannot be read "
			         "twice",
			         fr->path);
			return -1;
		}
		fr->seek_pending = true;
		fr->seeking = true;
		fr->seek_ts = cmd->ts;
		log_info("replay %s: seek to %s (%" PRId64 ")", fr->path,
		         format_ts(cmd->ts, when, sizeof when), cmd->ts);
		break;
	}
	__atomic_add_fetch(&fr->gen, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&fr->wakeup);
	pthread_mutex_unlock(&fr->lock);
	return 0;
}

static void
replay_status(struct feed *f, struct feed_status *out)
{
	struct feed_replay *fr = (struct feed_replay *)f;

	pthread_mutex_lock(&fr->lock);
	out->paused = fr->paused;
	out->speed = fr->speed;
	if (fr->seeking) {
		out->replay_state = "seeking";
		out->seek_ts = fr->seek_ts;
	} else if (out->finished) {
		out->replay_state = "finished";
	} else if (fr->paused) {
		out->replay_state = "paused";
	} else {
		out->replay_state = "playing";
	}
	pthread_mutex_unlock(&fr->lock);
	out->position_ts = __atomic_load_n(&fr->position_ts, __ATOMIC_RELAXED);
	out->shift = __atomic_load_n(&fr->shift, __ATOMIC_RELAXED);
	out->first_ts = __atomic_load_n(&fr->first_ts, __ATOMIC_RELAXED);
	out->last_ts = __atomic_load_n(&fr->last_ts, __ATOMIC_RELAXED);
	out->passes = __atomic_load_n(&fr->passes, __ATOMIC_RELAXED);
}

static const struct feed_ops replay_ops = {
        .start = replay_start,
        .stop = replay_stop,
        .destroy = replay_destroy,
        .control = replay_control,
        .status = replay_status,
};

struct feed *
feed_replay_create(const struct feed_replay_options *opt,
                   struct tick_queue *queue)
{
	struct feed_replay *fr;

	if (!opt || !opt->path || !*opt->path || !(opt->speed >= 0))
		return NULL;
	fr = calloc(1, sizeof *fr);
	if (!fr)
		return NULL;
	fr->path = strdup(opt->path);
	fr->buf = malloc(READ_BUF);
	fr->batch = malloc((BATCH_MAX + 1) * sizeof *fr->batch);
	if (!fr->path || !fr->buf || !fr->batch)
		goto fail_alloc;
	if (pthread_mutex_init(&fr->lock, NULL) != 0)
		goto fail_alloc;
	/* Due times are on the monotonic clock, so the sleeps must be too:
	 * a wall-clock step must neither stall nor rush the replay. */
	if (clock_cond_init_mono(&fr->wakeup) != 0)
		goto fail_cond;

	fr->base.ops = &replay_ops;
	fr->base.kind = "replay";
	fr->base.queue = queue;
	fr->loop = opt->loop;
	fr->progress_on = opt->progress;
	fr->fd = -1;
	fr->speed = fr->t_speed = opt->speed;
	tick_parser_init(&fr->parser, TICK_FORMAT_UNKNOWN);
	return &fr->base;

fail_cond:
	pthread_mutex_destroy(&fr->lock);
fail_alloc:
	free(fr->batch);
	free(fr->buf);
	free(fr->path);
	free(fr);
	return NULL;
}

/*
 * replay_private.h: what the replay feed's files share, and nobody else.
 *
 *   feed_replay.c  the feed: its ops (start, stop, destroy, control,
 *                  status), its thread and the play loop, the end of a
 *                  replay and the progress line
 *   replay_read.c  the file reader: the read buffer cut into lines, long
 *                  and bad lines, read marks, the probe of the file's end
 *   replay_pace.c  pacing: virtual time, speed, the waits, the commands as
 *                  the thread takes them, pushing the batch
 *   replay_seek.c  a seek back and the undo of what it goes back over,
 *                  rewinds of a pass, loop passes
 *
 * Included by those files only. It owns nothing itself: it defines struct
 * feed_replay (the feed's thread, its file, the read buffer, the batch and
 * the undo table of a seek back), made by feed_replay_create() and freed
 * by feed_destroy() through the destroy op. The fields under "owned by the
 * thread" are touched only by the replay's thread; the replay__ functions
 * below run on it, all but replay__format_ts(), which the control op uses
 * too.
 *
 * The replay's design is told at the top of its files, each its part.
 */
#ifndef PUBLISHER_REPLAY_PRIVATE_H
#define PUBLISHER_REPLAY_PRIVATE_H

#include "feed.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../publisher/progress.h"
#include "../publisher/tick_file.h"

/* Ticks pushed at most per batch (one lock of the queue per batch). */
#define BATCH_MAX 1024
/* Longest line accepted; a longer one is skipped as a bad line. */
#define LINE_MAX_BYTES 65536
/* Read buffer; larger than a line so that a refill always makes room. */
#define READ_BUF (1024 * 1024)

/* What the reading loop does after a tick or a command. */
enum step {
	STEP_GO,     /* push the tick */
	STEP_STOP,   /* feed_stop, or the queue closed */
	STEP_REWIND, /* a backward seek: read again from the top */
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
	/* file offset of the line replay__read_line() gave last */
	off_t line_off;
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

/* feed_replay.c */

/* Log the summary of the pass (lines, ticks, bad lines, time taken) with
 * `how` appended, ending the progress line: at the end of a pass, and when
 * a seek back reads the file again from the top (replay_seek.c). */
void replay__log_summary(struct feed_replay *fr, const char *how);

/* replay_read.c: the file */

/* The next line of the file, without its newline, in *line (valid until
 * the next call): for the play loop and the search for a seek's cut.
 * Returns 1 with a line, 0 at the end of the file, -1 on a read error
 * (logged) and -2 when the feed is asked to stop. */
int replay__read_line(struct feed_replay *fr, const char **line, size_t *len);

/* Count a bad line of the pass; it is logged (up to a limit) only the
 * first time it is read over the feed's life. reason is borrowed. */
void replay__bad_line(struct feed_replay *fr, const char *reason);

/* Publish the file's last timestamp (last_ts), parsed from its last
 * lines; called once, at the first tick. Regular files only. */
void replay__probe_end(struct feed_replay *fr);

/* Put the reader back at a read mark, dropping what was buffered.
 * Returns 0, or -1 (logged). */
int replay__go_to(struct feed_replay *fr, const struct read_mark *m);

/* replay_pace.c: pacing and pushing */

/* A file timestamp for the log ("2024-03-01T14:30:00.123456Z"), written
 * into out. Returns out. */
const char *replay__format_ts(int64_t us, char *out, size_t outlen);

/* Push the batch: when it is full, at the end of a pass and before a
 * seek back (the play loop), and before every wait (pacing). Returns -1
 * when the queue is closed. */
int replay__flush(struct feed_replay *fr);

/* For every tick the play loop reads: take the commands, and return
 * STEP_GO when the tick *t is due (after sleeping if needed), STEP_STOP or
 * STEP_REWIND (a backward seek). A flush before a sleep may move the tick
 * to the front of the batch (*t is updated). */
enum step replay__pace(struct feed_replay *fr, struct tick **t,
                       int64_t file_ts);

/* replay_seek.c: going back */

/* A seek is done (reached, or given up): clear "seeking" unless a newer
 * seek is already waiting to be taken. */
void replay__seek_done(struct feed_replay *fr);

/* Read the file again from the top: a new pass (new_pass; shifted when
 * looping), or the pass under way again. Returns 0, or -1 (logged). */
int replay__rewind_file(struct feed_replay *fr, bool new_pass);

/* A backward seek to fr->ff_target, from a pass under way or (from_end)
 * from a finished replay: BACK_PLAY to play on, BACK_REFUSED to carry on
 * from where it was, BACK_STOP. */
enum back replay__seek_back(struct feed_replay *fr, bool from_end);

#endif

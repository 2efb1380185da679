/*
 * feed_replay: plays a recorded tick file (publisher/tick_file.h) back into
 * the queue.
 *
 * This file holds the feed's ops (start, stop, destroy, control, status),
 * its thread, the play loop that reads each tick, paces it and puts it in
 * the batch, and the progress line of `publisher replay`. The rest of the
 * replay is in
 *
 *   replay_read.c  reading the file (the 1 MiB buffer cut into lines)
 *   replay_pace.c  pacing, and the commands (Control) as the thread takes
 *                  them
 *   replay_seek.c  seeking back, rewinds and loop passes
 *
 * with what they share in replay_private.h; each opens with its part of
 * the design.
 *
 * Looping. The summary of a pass is logged for the first pass, then at
 * most every 10 s, so a small file looping at max does not flood the log.
 * (How each pass is shifted: replay_seek.c.)
 *
 * End. Without loop, the thread reports finished, logs the summary and
 * parks until the feed is stopped or a seek asks for an earlier time; the
 * server keeps serving the final state.
 */
#include "replay_private.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../publisher/clock.h"
#include "../publisher/log.h"

/* While looping, a pass summary is logged for the first pass and then at
 * most this often: a small file at max loops thousands of times a second. */
#define LOOP_SUMMARY_NS (10 * 1000000000LL)

/* How a pass over the file ended. */
enum pass_end {
	PASS_EOF,
	PASS_STOP,
	PASS_REWIND,
	PASS_READ_ERROR,
};

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
		replay__probe_end(fr);
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

	while ((r = replay__read_line(fr, &line, &len)) > 0) {
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
			replay__bad_line(fr, reason);
			continue;
		}
		file_ts = t->ts;
		note_tick(fr, file_ts);
		t->ts = file_ts + fr->shift;
		s = replay__pace(fr, &t, file_ts);
		if (s == STEP_STOP)
			return PASS_STOP;
		if (s == STEP_REWIND)
			return replay__flush(fr) != 0 ? PASS_STOP : PASS_REWIND;
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
		if (fr->batch_len == BATCH_MAX && replay__flush(fr) != 0)
			return PASS_STOP;
		if (fr->progress_on)
			show_progress(fr);
	}
	if (replay__flush(fr) != 0 || r == -2)
		return PASS_STOP;
	return r < 0 ? PASS_READ_ERROR : PASS_EOF;
}

/* --------------------------------------------------------- the thread */

void
replay__log_summary(struct feed_replay *fr, const char *how)
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
 * replay__seek_back()). Commands are kept in step meanwhile. Returns true
 * when asked to stop.
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
		b = replay__seek_back(fr, true);
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
			if (replay__seek_back(fr, false) == BACK_STOP)
				break;
			continue;
		}
		/* End of file. A seek past the end stops here. */
		if (fr->ff) {
			replay__seek_done(fr);
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
				replay__log_summary(fr, how);
				fr->summary_ns = now;
			}
			if (replay__rewind_file(fr, true) != 0)
				break;
			continue;
		}
		replay__log_summary(fr, "");
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
		         replay__format_ts(cmd->ts, when, sizeof when),
		         cmd->ts);
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

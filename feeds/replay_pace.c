/*
 * replay_pace.c: when each tick of the replay goes out, and the commands
 * that change it, on the replay's thread (feed_replay.c is the feed; its
 * play loop calls replay__pace() for every tick it reads).
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
 * Control (feed_control, from the service thread). Commands are stored
 * under `lock` and `gen` is bumped; the thread compares `gen` with the value
 * it last took, without the lock, once per tick, and takes the commands when
 * it moved. Sleeps wait on a condvar that every command signals, so a pause
 * or a seek during a long gap in the file takes effect at once. Semantics of
 * seek are in feed.h: nothing before the target is skipped, so the state a
 * dashboard shows after a seek is the state at that time.
 */
#include "replay_private.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "../publisher/clock.h"
#include "../publisher/log.h"

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
const char *
replay__format_ts(int64_t us, char *out, size_t outlen)
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

/* ------------------------------------------------------------ pushing */

/* Push the batch. Returns -1 when the queue is closed. */
int
replay__flush(struct feed_replay *fr)
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
	if (replay__flush(fr) != 0)
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
			replay__seek_done(fr);
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
enum step
replay__pace(struct feed_replay *fr, struct tick **t, int64_t file_ts)
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
			replay__seek_done(fr);
			log_info("replay %s: at %s after a seek", fr->path,
			         replay__format_ts(fr->ff_target, when,
			                           sizeof when));
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

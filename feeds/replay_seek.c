/*
 * replay_seek.c: going back in the replay's file, on the replay's thread:
 * a seek back and the undo of the ticks it goes back over, rewinds of a
 * pass and loop passes (feed_replay.c is the feed; a seek forward is a
 * fast-forward of the pacing, in replay_pace.c).
 *
 * Looping. Each pass after the first is shifted forward so that its first
 * tick comes one mean tick gap after the latest tick sent so far: the stream
 * stays monotonic and its rhythm carries on. Ticks keep the file's own ts
 * otherwise (plus that shift).
 *
 * Seeking back. The thread reads the pass again from the top without
 * pushing, up to where it stood, to find the cut (the first tick, in file
 * order, at or after the target) and to count, per symbol, the ticks it
 * pushed from the cut on. Its consumer undoes those (feed_set_rewind);
 * then the thread goes back to the cut's line (its byte offset, line
 * number and the parser as they were there) and plays on, standing at the
 * target. That costs a read of the file up to the position, as reading
 * again from the top did.
 */
#include "replay_private.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../publisher/clock.h"
#include "../publisher/hash.h"
#include "../publisher/log.h"

/* The pause between loop passes of a file with a single tick. */
#define LONE_TICK_GAP_US 1000000

/* -------------------------------------------------------------- seeks */

/* A seek is done (reached, or given up): clear "seeking" unless a newer
 * seek is already waiting to be taken. */
void
replay__seek_done(struct feed_replay *fr)
{
	fr->ff = false;
	pthread_mutex_lock(&fr->lock);
	if (!fr->seek_pending)
		fr->seeking = false;
	pthread_mutex_unlock(&fr->lock);
}

/* ------------------------------------------------------------- passes */

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

/* Read the file again from the top, as a new pass: with loop and new_pass,
 * shifted so that its earliest tick comes after everything sent so far;
 * otherwise the pass under way again, with its shift. */
int
replay__rewind_file(struct feed_replay *fr, bool new_pass)
{
	struct read_mark top = {.off = 0};

	tick_parser_init(&top.parser, TICK_FORMAT_UNKNOWN);
	if (replay__go_to(fr, &top) != 0)
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

/* ------------------------------------------------------- seeking back */

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
	if (replay__go_to(fr, &top) != 0)
		return -1;
	undo_clear(fr);
	for (;;) {
		struct tick_parser before = fr->parser;
		struct read_mark m;
		char reason[256];
		struct tick t;

		r = replay__read_line(fr, &line, &len);
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
			/* counted, not logged again */
			replay__bad_line(fr, reason);
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
	replay__seek_done(fr);
	log_info("replay %s: at %s after a seek back (line %" PRIu64 ")",
	         fr->path, replay__format_ts(target, when, sizeof when),
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
enum back
replay__seek_back(struct feed_replay *fr, bool from_end)
{
	struct feed *f = &fr->base;
	int64_t target = fr->ff_target;
	struct read_mark cut, here;
	uint64_t cut_at = 0, sent = fr->pass_sent;

	if (!f->rewind) {
		if (!from_end)
			replay__log_summary(
			        fr, " (seek: reading again from the top)");
		return replay__rewind_file(fr, true) == 0 ? BACK_PLAY
		                                          : BACK_STOP;
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
				replay__log_summary(
				        fr, " (seek: reading again from "
				            "the top)");
			return replay__rewind_file(fr, false) == 0 ? BACK_PLAY
			                                           : BACK_STOP;
		case FEED_REWIND_REFUSED:
			/* Back to the tick it was at; it is read again. */
			if (replay__go_to(fr, &here) != 0)
				return BACK_STOP;
			fr->pass_ticks = sent;
			replay__seek_done(fr);
			return BACK_REFUSED;
		case FEED_REWIND_STOP:
			return BACK_STOP;
		}
	}
	if (replay__go_to(fr, &cut) != 0)
		return BACK_STOP;
	fr->pass_ticks = cut_at;
	fr->pass_sent = cut_at;
	stand_at(fr, target);
	return BACK_PLAY;
}

/*
 * progress: one line on a terminal that tells how a long run is going:
 * `publisher import`, `replay` and `export` draw it on stderr while they
 * work, and erase it when they are done.
 *
 *   import ticks.csv: 1234567 rows, 812345 rows/s, 45.2%, ETA 0:03
 *
 * The line is rewritten in place ("\r", then the text, then "\033[K" to
 * clear what a longer line left, then "\r" again, so that a log line
 * written meanwhile starts at the left edge) at most every
 * PROGRESS_INTERVAL_MS. The caller decides whether it is shown at all,
 * normally when stderr is a terminal: in a log file or a pipe the line
 * would only be noise. The percentage and the ETA need a total; without
 * one (a pipe of unknown length) the line gives rows and rows/s.
 *
 * What it owns: nothing beyond the caller's struct progress. No
 * allocation, no locking: one progress belongs to one thread.
 *
 * Who calls it: import.c, export.c and the replay feed (feeds/), each on
 * the thread that does the work.
 */
#ifndef PUBLISHER_PROGRESS_H
#define PUBLISHER_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define PROGRESS_INTERVAL_MS 200

struct progress {
	FILE *to; /* NULL: not shown */
	char what[80];
	uint64_t total; /* of `done` (bytes, µs of a time span); 0: unknown */
	int64_t start_ns;
	int64_t next_ns; /* the next redraw, at the earliest */
	bool drawn;
};

/* Start a run called what ("import ticks.csv"). on: draw the line on
 * stderr (false: every call is a no-op). total: what `done` counts up to,
 * or 0 when unknown. */
void progress_start(struct progress *p, bool on, const char *what,
                    uint64_t total);

/* rows so far, and done of total. Redraws at most every
 * PROGRESS_INTERVAL_MS; reads the clock on every call, so call it every
 * few thousand rows rather than on each. */
void progress_update(struct progress *p, uint64_t rows, uint64_t done);

/* True when the line is shown and a redraw is due: for a caller whose
 * `done` costs something to find (a system call). */
bool progress_due(const struct progress *p);

/* Erase the line (when it was drawn). The progress may be started again. */
void progress_end(struct progress *p);

#endif

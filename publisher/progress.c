/*
 * progress: the progress line of long runs (see progress.h).
 */
#include "progress.h"

#include <string.h>

#include "clock.h"

void
progress_start(struct progress *p, bool on, const char *what, uint64_t total)
{
	memset(p, 0, sizeof *p);
	p->to = on ? stderr : NULL;
	snprintf(p->what, sizeof p->what, "%s", what);
	p->total = total;
	p->start_ns = clock_mono_ns();
	p->next_ns = p->start_ns + PROGRESS_INTERVAL_MS * 1000000ll;
}

void
progress_update(struct progress *p, uint64_t rows, uint64_t done)
{
	int64_t now;
	double secs, rate, frac;
	char tail[64] = "";

	if (!p->to)
		return;
	now = clock_mono_ns();
	if (now < p->next_ns)
		return;
	p->next_ns = now + PROGRESS_INTERVAL_MS * 1000000ll;
	secs = (double)(now - p->start_ns) / 1e9;
	rate = secs > 0 ? (double)rows / secs : 0;
	if (p->total && done <= p->total) {
		frac = (double)done / (double)p->total;
		if (frac > 0) {
			/* The rest at the pace so far. */
			long eta = (long)(secs * (1 - frac) / frac + 0.5);

			snprintf(tail, sizeof tail, ", %.1f%%, ETA %ld:%02ld",
			         frac * 100, eta / 60, eta % 60);
		} else {
			snprintf(tail, sizeof tail, ", 0.0%%");
		}
	}
	fprintf(p->to, "\r%s: %llu rows, %.0f rows/s%s\033[K\r", p->what,
	        (unsigned long long)rows, rate, tail);
	fflush(p->to);
	p->drawn = true;
}

bool
progress_due(const struct progress *p)
{
	return p->to && clock_mono_ns() >= p->next_ns;
}

void
progress_end(struct progress *p)
{
	if (p->to && p->drawn) {
		fputs("\r\033[K", p->to);
		fflush(p->to);
	}
	p->drawn = false;
}

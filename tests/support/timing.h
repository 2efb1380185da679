/*
 * timing.h: clocks in the units tests and benchmarks measure in, and sleeps.
 *
 * Microseconds and nanoseconds come from the server's own publisher/clock.h
 * (clock_mono_us(), clock_wall_us(), clock_mono_ns()), which this includes;
 * here are the seconds a benchmark prints, and sleeps that a signal does not
 * cut short. Header only, so that the load tools, which link no project
 * object, use it too.
 */
#ifndef TESTS_SUPPORT_TIMING_H
#define TESTS_SUPPORT_TIMING_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

#include "clock.h"

/* Clock id in seconds: CLOCK_MONOTONIC for elapsed time, a CPU-time clock
 * for the work of a thread or process. */
static inline double
timing_s_of(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CLOCK_MONOTONIC in seconds. */
static inline double
timing_now_s(void)
{
	return timing_s_of(CLOCK_MONOTONIC);
}

/* Sleep us microseconds (us >= 0), the whole time even when a signal
 * arrives meanwhile. */
static inline void
timing_sleep_us(int64_t us)
{
	struct timespec ts = {(time_t)(us / 1000000),
	                      (long)(us % 1000000) * 1000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static inline void
timing_sleep_ms(int64_t ms)
{
	timing_sleep_us(ms * 1000);
}

#endif

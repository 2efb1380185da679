/*
 * clock: the two clocks every module needs, in microseconds.
 *
 * clock_wall_us() is CLOCK_REALTIME: tick timestamps, heartbeats, pongs —
 * anything compared with a time from outside the process. clock_mono_us()
 * is CLOCK_MONOTONIC: pacing, timeouts, latency — anything measured inside
 * it, immune to the wall clock being stepped.
 */
#ifndef PUBLISHER_CLOCK_H
#define PUBLISHER_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t
clock_us_of(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t
clock_wall_us(void)
{
	return clock_us_of(CLOCK_REALTIME);
}

static inline int64_t
clock_mono_us(void)
{
	return clock_us_of(CLOCK_MONOTONIC);
}

#endif

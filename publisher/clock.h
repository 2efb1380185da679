/*
 * clock: the two clocks every module needs, and waits measured on them.
 *
 * clock_wall_us() is CLOCK_REALTIME: tick timestamps, heartbeats, pongs —
 * anything compared with a time from outside the process. clock_mono_us()
 * is CLOCK_MONOTONIC: pacing, timeouts, latency — anything measured inside
 * it, immune to the wall clock being stepped. clock_mono_ns() is the same
 * clock for the feeds' pacing, where a tick can be due every few hundred
 * nanoseconds.
 *
 * A thread that sleeps until a monotonic time waits on a condition variable
 * made by clock_cond_init_mono(), with the deadline from
 * clock_timespec_of_ns(): a wall-clock step then neither stalls nor rushes
 * it. Header only: every function here is small enough to inline.
 *
 * What it owns: nothing (no state; the condition variable is the
 * caller's). Who calls it: any module on any thread: the feeds for
 * pacing, the pipeline, server, session and admission for timeouts and
 * heartbeats, the store's writer and the Redis threads for commit
 * intervals, timed waits and backoff, log and progress for their lines.
 */
#ifndef PUBLISHER_CLOCK_H
#define PUBLISHER_CLOCK_H

#include <pthread.h>
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

static inline int64_t
clock_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The absolute time ns (on the clock it was read from) as a timespec, the
 * form pthread_cond_timedwait() takes. ns >= 0. */
static inline struct timespec
clock_timespec_of_ns(int64_t ns)
{
	struct timespec ts = {
	        .tv_sec = (time_t)(ns / 1000000000LL),
	        .tv_nsec = (long)(ns % 1000000000LL),
	};

	return ts;
}

/* Initialise c so that its timed waits run on CLOCK_MONOTONIC. Returns 0,
 * or the error number of the pthread call that failed (c is then not
 * initialised). */
static inline int
clock_cond_init_mono(pthread_cond_t *c)
{
	pthread_condattr_t attr;
	int rc = pthread_condattr_init(&attr);

	if (rc != 0)
		return rc;
	rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (rc == 0)
		rc = pthread_cond_init(c, &attr);
	pthread_condattr_destroy(&attr);
	return rc;
}

#endif

/*
 * log: leveled, timestamped lines on stderr.
 *
 *   log_msg(LOG_WARN, "store: %s", why);
 *   log_limited(LOG_INFO, "conn %llu: bad frame: %s", id, why);
 *
 * Thread-safe (one fprintf per line). The level is set once at start-up.
 *
 * Lines that a peer can cause (a bad frame, a refused token) go through
 * log_limited(): each call site may write LOG_LIMIT_LINES lines per
 * LOG_LIMIT_WINDOW_US, so a flood of bad input cannot flood the log. What
 * a site held back is summed up in one line when its window ends, either at
 * the site's next call or at the next log_flush_suppressed().
 *
 * What it owns: the process's one log level and the list of rate-limited
 * call sites (each a static struct log_limit at its site, linked into the
 * list under a mutex in log.c). It writes to stderr and opens no file.
 *
 * Who calls it: every module, from any thread. main.c sets the level from
 * --log-level; server.c's housekeeping timer calls log_flush_suppressed();
 * metrics.c reports log_suppressed_total().
 */
#ifndef PUBLISHER_LOG_H
#define PUBLISHER_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

#define LOG_LIMIT_LINES	    10
#define LOG_LIMIT_WINDOW_US (10 * 1000000LL)

/* The state of one rate-limited call site. Zero-initialised (a static in
 * the log_limited() macro); the fields belong to log.c. */
struct log_limit {
	struct log_limit *next; /* every limiter used so far */
	enum log_level level;
	int64_t window_start_us;
	unsigned lines;		 /* written in this window */
	unsigned long suppressed; /* held back in this window */
	bool registered;
	char sample[160];	/* the first line held back, for the summary */
};

void
log_set_level(enum log_level level);

enum log_level
log_get_level(void);

void
log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* log_msg() under the limit of one call site; use log_limited(). */
void
log_msg_limited(struct log_limit *site, enum log_level level, const char *fmt,
		...) __attribute__((format(printf, 3, 4)));

/* Write the "suppressed" summary of every site whose window has ended.
 * Cheap when nothing was held back; the server calls it periodically. */
void
log_flush_suppressed(void);

/* Lines held back by the limits since start-up (for /metrics). */
uint64_t
log_suppressed_total(void);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* One limiter per place in the code where the macro is written. */
#define log_limited(level, ...)                                                \
	do {                                                                   \
		static struct log_limit log__site;                             \
		log_msg_limited(&log__site, level, __VA_ARGS__);               \
	} while (0)

#endif

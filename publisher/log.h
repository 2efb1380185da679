/*
 * log: leveled, timestamped lines on stderr.
 *
 *   log_msg(LOG_WARN, "store: %s", why);
 *
 * Thread-safe (one fprintf per line). The level is set once at start-up.
 */
#ifndef PUBLISHER_LOG_H
#define PUBLISHER_LOG_H

#include "cli.h"

void
log_set_level(enum log_level level);

enum log_level
log_get_level(void);

void
log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif

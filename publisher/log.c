#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "clock.h"

static enum log_level current_level = LOG_INFO;

/* Guards every struct log_limit and the list of them. Held only for a few
 * comparisons, or while a summary line is written. */
static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_limit *limits;
static uint64_t suppressed_total;

void
log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level
log_get_level(void)
{
	return current_level;
}

static void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	char line[1024];
	struct timespec now;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000, names[level]);
	if (n > 0 && (size_t)n < sizeof line)
		vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	/* One write per line so lines from several threads never interleave. */
	fprintf(stderr, "%s\n", line);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > current_level)
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

/* Called with limit_lock held. Quotes the first line held back: the
 * others from the same site differ only in their details. */
static void
say_suppressed(struct log_limit *site)
{
	log_msg(site->level,
		"log: %lu more lines like \"%s\" suppressed in the last %lld s",
		site->suppressed, site->sample,
		(long long)(LOG_LIMIT_WINDOW_US / 1000000));
	site->suppressed = 0;
}

void
log_msg_limited(struct log_limit *site, enum log_level level, const char *fmt,
		...)
{
	int64_t now = clock_mono_us();
	bool write;
	va_list ap;

	if (level > current_level)
		return;
	pthread_mutex_lock(&limit_lock);
	if (!site->registered) {
		site->registered = true;
		site->level = level;
		site->window_start_us = now;
		site->next = limits;
		limits = site;
	}
	if (now - site->window_start_us >= LOG_LIMIT_WINDOW_US) {
		if (site->suppressed)
			say_suppressed(site);
		site->window_start_us = now;
		site->lines = 0;
	}
	write = site->lines < LOG_LIMIT_LINES;
	if (write) {
		site->lines++;
	} else if (!site->suppressed++) {
		va_start(ap, fmt);
		vsnprintf(site->sample, sizeof site->sample, fmt, ap);
		va_end(ap);
	}
	if (!write)
		suppressed_total++;
	pthread_mutex_unlock(&limit_lock);
	if (!write)
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void
log_flush_suppressed(void)
{
	int64_t now = clock_mono_us();
	struct log_limit *site;

	pthread_mutex_lock(&limit_lock);
	for (site = limits; site; site = site->next)
		if (site->suppressed &&
		    now - site->window_start_us >= LOG_LIMIT_WINDOW_US) {
			say_suppressed(site);
			/* A new window opens with the site's next line. */
			site->window_start_us = now;
			site->lines = 0;
		}
	pthread_mutex_unlock(&limit_lock);
}

uint64_t
log_suppressed_total(void)
{
	uint64_t n;

	pthread_mutex_lock(&limit_lock);
	n = suppressed_total;
	pthread_mutex_unlock(&limit_lock);
	return n;
}

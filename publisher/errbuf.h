/*
 * errbuf: the one way a function fills the caller's error buffer.
 *
 * Across the server a function that can fail takes `char *err, size_t
 * errlen` and, on failure, writes a message a person can act on there and
 * returns -1. errf() is that write, so an error path is one line:
 *
 *	if (fd < 0)
 *		return errf(err, errlen, "cannot open '%s': %s", path,
 *		            strerror(errno));
 *
 * Called by the store, the Redis link, the feeds and the tick-file
 * parser, the command line and its settings table, http_query, import,
 * export, auth: anything that reports failure into a caller's buffer.
 * Header only: it owns no state, and a module that uses it needs nothing
 * more at link time.
 */
#ifndef PUBLISHER_ERRBUF_H
#define PUBLISHER_ERRBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

static inline int errf(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/*
 * Write the printf-style message into err (errlen bytes) and return -1.
 * A message longer than errlen - 1 bytes is cut there and err stays
 * NUL-terminated. err may be NULL or errlen 0 when the caller does not want
 * the message: nothing is written, -1 is still returned.
 */
static inline int
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

#endif

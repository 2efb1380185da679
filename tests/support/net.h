/*
 * net.h: writing to a socket from the load tools (tickgen and the bridges),
 * which stop on a signal. Header only: they link no project object.
 */
#ifndef TESTS_SUPPORT_NET_H
#define TESTS_SUPPORT_NET_H

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Send p[0..len) on a blocking socket, without SIGPIPE. A signal that
 * interrupts it is retried unless *stop is set by then. Returns 0, or -1
 * (errno says why) when the peer is gone or *stop was set. */
static inline int
net_write_all(int fd, const char *p, size_t len,
              const volatile sig_atomic_t *stop)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR && !*stop)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

#endif

/*
 * epoch.c: fresh epochs (see epoch.h).
 */
#include "epoch.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "clock.h"

void
epoch_make(char *out, size_t len)
{
	unsigned char rnd[EPOCH_TEXT_LEN / 2];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	bool ok = false;
	size_t i;

	if (!len)
		return;
	if (fd >= 0) {
		ok = read(fd, rnd, sizeof rnd) == (ssize_t)sizeof rnd;
		close(fd);
	}
	if (!ok) {
		/* An LCG over the clock and the pid: never the same twice
		 * on one machine, which is all an epoch needs. */
		uint64_t x =
		        (uint64_t)clock_wall_us() ^ ((uint64_t)getpid() << 40);

		for (i = 0; i < sizeof rnd; i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			rnd[i] = (unsigned char)(x >> 56);
		}
	}
	out[0] = '\0';
	for (i = 0; i < sizeof rnd && 2 * i + 2 < len; i++)
		snprintf(out + 2 * i, 3, "%02x", rnd[i]);
}

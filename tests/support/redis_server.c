/*
 * redis_server.c: a throwaway redis-server for tests and benchmarks.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/redis_server.h"
#include "support/timing.h"
#include "support/tmpdir.h"

/* How long a starting server has to answer PING. */
#define START_US       5000000
#define START_ATTEMPTS 5

bool
redis_server_installed(void)
{
	return system("command -v redis-server >/dev/null 2>&1") == 0;
}

int
loopback_free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

redisContext *
redis_server_connect(const struct redis_server *r)
{
	struct timeval tv = {1, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);

	if (c && c->err) {
		redisFree(c);
		return NULL;
	}
	if (c)
		redisSetTimeout(c, tv);
	return c;
}

redisReply *
redis_server_command(const struct redis_server *r, const char *fmt, ...)
{
	redisContext *c = redis_server_connect(r);
	redisReply *reply;
	va_list ap;

	if (!c)
		return NULL;
	va_start(ap, fmt);
	reply = redisvCommand(c, fmt, ap);
	va_end(ap);
	redisFree(c);
	return reply;
}

int
redis_server_restart(struct redis_server *r)
{
	char port[16], log[128];
	int64_t until;
	pid_t pid;

	snprintf(port, sizeof port, "%d", r->port);
	snprintf(log, sizeof log, "%s/redis.log", r->dir);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		/* Never outlive the test, even when it crashes. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("redis-server", "redis-server", "--port", port, "--bind",
		       "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
		       r->dir, (char *)NULL);
		_exit(127);
	}
	r->pid = pid;
	for (until = clock_mono_us() + START_US; clock_mono_us() < until;
	     timing_sleep_ms(20)) {
		redisReply *reply = redis_server_command(r, "PING");
		bool up = reply && reply->type == REDIS_REPLY_STATUS;

		if (reply)
			freeReplyObject(reply);
		if (up)
			return 0;
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			r->pid = 0;
			return -1;
		}
	}
	redis_server_kill(r);
	return -1;
}

int
redis_server_start(struct redis_server *r, const char *tag)
{
	int attempt;

	r->pid = 0;
	r->port = -1;
	if (tmpdir_make(r->dir, sizeof r->dir, tag) != 0)
		return -1;
	for (attempt = 0; attempt < START_ATTEMPTS; attempt++) {
		r->port = loopback_free_port();
		if (r->port > 0 && redis_server_restart(r) == 0)
			return 0;
	}
	return -1;
}

void
redis_server_kill(struct redis_server *r)
{
	if (r->pid > 0) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
		r->pid = 0;
	}
}

int
redis_server_stop(struct redis_server *r)
{
	redis_server_kill(r);
	return tmpdir_remove(r->dir);
}

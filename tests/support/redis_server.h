/*
 * redis_server.h: a redis-server of a test's or a benchmark's own, on a
 * free loopback port in a scratch directory, saving nothing to disk (a
 * restart loses everything, the hardest case for the Redis link).
 *
 * The process is killed with the one that started it, even on a crash
 * (PR_SET_PDEATHSIG). Its log is <dir>/redis.log.
 */
#ifndef TESTS_SUPPORT_REDIS_SERVER_H
#define TESTS_SUPPORT_REDIS_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

struct redis_server {
	char dir[64]; /* scratch directory, "" before redis_server_start() */
	int port;
	pid_t pid; /* 0 when not running */
};

/* Whether redis-server is on the PATH (tests/deps.sh installs it). */
bool redis_server_installed(void);

/* Make r->dir from tag (tmpdir_make()) and start redis-server in it on a
 * free port, waiting until it answers PING. A port is free when chosen and
 * another process may take it first, so a few are tried. Returns 0, or -1:
 * then nothing runs, and r->dir (if made) holds the log to look at. */
int redis_server_start(struct redis_server *r, const char *tag);

/* Start it again, after redis_server_kill(), on the same port and in the
 * same directory (its data is gone). Returns 0, or -1. */
int redis_server_restart(struct redis_server *r);

/* SIGKILL it and reap it. A no-op when it does not run. */
void redis_server_kill(struct redis_server *r);

/* Kill it and remove its directory. Returns 0, or -1 when the directory
 * could not be removed. */
int redis_server_stop(struct redis_server *r);

/* A new connection with 1 s timeouts, or NULL; the caller frees it with
 * redisFree(). */
redisContext *redis_server_connect(const struct redis_server *r);

/* One command, printf-style as redisCommand(), on a connection of its own.
 * The reply, or NULL; the caller frees it with freeReplyObject(). */
redisReply *redis_server_command(const struct redis_server *r, const char *fmt,
                                 ...);

/* A loopback port nothing listens on now (the kernel's pick for port 0),
 * or -1. */
int loopback_free_port(void);

#endif

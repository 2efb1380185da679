/*
 * tmpdir.h: a scratch directory for a test or a benchmark, and its removal.
 */
#ifndef TESTS_SUPPORT_TMPDIR_H
#define TESTS_SUPPORT_TMPDIR_H

#include <stddef.h>

/* Make a new directory /tmp/<tag>.XXXXXX and write its path into dir (cap
 * bytes). Returns 0, or -1 with errno set (dir then holds no directory). */
int tmpdir_make(char *dir, size_t cap, const char *tag);

/* Remove path and everything below it, making each directory writable
 * first, so that a test which took permissions away leaves nothing behind.
 * Returns 0, or -1 when something could not be removed. An empty path is a
 * no-op (0). */
int tmpdir_remove(const char *path);

#endif

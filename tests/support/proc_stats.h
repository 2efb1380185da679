/*
 * proc_stats.h: what a process has used, from /proc, for the load tools
 * (subload, sendbase) that measure a server and themselves from outside.
 */
#ifndef TESTS_SUPPORT_PROC_STATS_H
#define TESTS_SUPPORT_PROC_STATS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* utime + stime of a process, in seconds; -1 when it is gone (or pid is
 * not a process id). */
static inline double
proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;
	size_t n;
	int i;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the command name may hold spaces */
	if (!p)
		return -1;
	p += 2;
	/* fields from 3 (state): utime is field 14, stime 15 */
	for (i = 3; i < 14 && p; i++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p || sscanf(p, "%lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* VmRSS of a process in kB (pid 0: this one); -1 when it is gone. */
static inline long
proc_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	if (pid == 0)
		snprintf(path, sizeof path, "/proc/self/status");
	else
		snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "VmRSS:", 6)) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

/* The first eight columns of CPU n in /proc/stat (jiffies): user, nice,
 * system, idle, iowait, irq, softirq, steal. Everything on that core,
 * other people's processes included. */
#define CORE_COLS 8
enum { C_USER, C_NICE, C_SYS, C_IDLE, C_IOWAIT, C_IRQ, C_SOFTIRQ, C_STEAL };

static inline void
core_read(int n, unsigned long long v[CORE_COLS])
{
	char line[512], want[16];
	FILE *f = fopen("/proc/stat", "r");
	int wl = snprintf(want, sizeof want, "cpu%d ", n);

	memset(v, 0, CORE_COLS * sizeof *v);
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, want, (size_t)wl))
			continue;
		sscanf(line + wl, "%llu %llu %llu %llu %llu %llu %llu %llu",
		       &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
		break;
	}
	fclose(f);
}

#endif

/*
 * bench_import: `publisher import` of a generated CSV, timed from outside.
 *
 *   bench_import [ROWS] [SYMBOLS] [DIR]   (defaults 2000000, 100, /var/tmp)
 *
 * Writes ROWS ticks over SYMBOLS symbols (80% quotes, 20% trades, ts
 * always forward) as a CSV tick file in a scratch directory under DIR,
 * then runs the real binary (PUBLISHER_BIN, or the publisher beside this
 * program's bench/ directory) as a user would:
 *
 *   publisher import FILE --db DIR/.../bench.db
 *
 * twice: the first run stores the file, the second must add nothing. It
 * prints, for each run, the exit code, the wall time from fork to exit,
 * rows/s over that time, the CPU time the import used (a figure that other
 * work on the machine moves less than the wall time), and the import's own
 * summary; and the file's
 * size, the file system DIR is on (the figure means something on a disk,
 * not on tmpfs, which it says) and the journal_mode and synchronous
 * settings the import used, as its log line names them. The page cache is
 * warm (the file was just written); the database is new.
 *
 * Prints figures; never fails on timing. Exit 1 only when an import did
 * not do what it must (exit code, rows stored).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/rng.h"
#include "support/timing.h"

#define TMPFS_MAGIC 0x01021994
#define EXT4_MAGIC  0xEF53
#define XFS_MAGIC   0x58465342
#define BTRFS_MAGIC 0x9123683E

static const char *
fs_name(const char *dir)
{
	struct statfs sf;

	if (statfs(dir, &sf) != 0)
		return "unknown";
	switch ((unsigned long)sf.f_type) {
	case TMPFS_MAGIC:
		return "tmpfs (memory, not a disk: pass another DIR)";
	case EXT4_MAGIC:
		return "ext4";
	case XFS_MAGIC:
		return "xfs";
	case BTRFS_MAGIC:
		return "btrfs";
	default:
		return "another disk file system";
	}
}

/* The publisher binary: $PUBLISHER_BIN, else ../publisher from here. */
static void
find_binary(char *out, size_t len)
{
	const char *env = getenv("PUBLISHER_BIN");
	char self[PATH_MAX - 16];
	ssize_t n;
	char *slash;

	if (env && *env) {
		snprintf(out, len, "%s", env);
		return;
	}
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n < 0) {
		snprintf(out, len, "publisher");
		return;
	}
	self[n] = '\0';
	slash = strrchr(self, '/'); /* .../BUILD/bench/bench_import */
	if (slash)
		*slash = '\0';
	slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	snprintf(out, len, "%s/publisher", self);
}

static uint64_t
below(uint64_t *r, uint64_t n)
{
	return (xorshift64star_next(r) >> 11) % n;
}

static int
write_csv(const char *path, long rows, int symbols, uint64_t *bytes)
{
	uint64_t r = 42;
	FILE *f = fopen(path, "w");
	int64_t ts = 1709303400000000ll;
	long *price = calloc((size_t)symbols, sizeof *price);
	long i;

	if (!f || !price) {
		free(price);
		if (f)
			fclose(f);
		return -1;
	}
	for (i = 0; i < symbols; i++)
		price[i] = 10000 + (long)below(&r, 90000);
	fputs("ts,symbol,bid,ask,bid_size,ask_size,last,last_size\n", f);
	for (i = 0; i < rows; i++) {
		int s = (int)below(&r, (uint64_t)symbols);
		long p = price[s] += (long)below(&r, 11) - 5;

		if (p < 100)
			p = price[s] = 100;
		ts += 1 + (int64_t)below(&r, 100);
		if (i % 5 == 0)
			fprintf(f, "%lld,SYM%04d,,,,,%ld.%02ld,%lu\n",
			        (long long)ts, s, p / 100, p % 100,
			        (unsigned long)(1 + below(&r, 500)));
		else
			fprintf(f,
			        "%lld,SYM%04d,%ld.%02ld,%ld.%02ld,%lu,%lu,,\n",
			        (long long)ts, s, p / 100, p % 100,
			        (p + 3) / 100, (p + 3) % 100,
			        (unsigned long)(100 * (1 + below(&r, 900))),
			        (unsigned long)(100 * (1 + below(&r, 900))));
	}
	free(price);
	*bytes = (uint64_t)ftell(f);
	return fclose(f);
}

/* Run `publisher import file --db db`, its stdout and stderr into files.
 * Returns the exit code (-1 when it could not run), the wall time and the
 * CPU time it used (user + system). */
static int
run_import(const char *bin, const char *file, const char *db, const char *out,
           const char *err, double *secs, double *cpu)
{
	struct rusage ru;
	double t0 = timing_now_s();
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
			_exit(127);
		execl(bin, bin, "import", file, "--db", db, (char *)NULL);
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) != pid)
		return -1;
	*secs = timing_now_s() - t0;
	*cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The first line of path that contains key, without its newline. */
static void
line_with(const char *path, const char *key, char *out, size_t len)
{
	char line[1024];
	FILE *f = fopen(path, "r");

	snprintf(out, len, "(none)");
	if (!f)
		return;
	while (fgets(line, sizeof line, f))
		if (strstr(line, key)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(out, len, "%s", line);
			break;
		}
	fclose(f);
}

int
main(int argc, char **argv)
{
	long rows = argc > 1 ? atol(argv[1]) : 2000000;
	int symbols = argc > 2 ? atoi(argv[2]) : 100;
	const char *base = argc > 3 ? argv[3] : "/var/tmp";
	char bin[PATH_MAX], dir[PATH_MAX], file[PATH_MAX + 32],
	        db[PATH_MAX + 32], out[PATH_MAX + 32], err[PATH_MAX + 32],
	        cmd[3 * PATH_MAX], summary[1024], pragmas[1024];
	const char *settings;
	uint64_t bytes = 0;
	double secs = 0, cpu = 0;
	int rc, failed = 0;

	if (rows < 1 || symbols < 1 || symbols > 9999) {
		fprintf(stderr, "usage: bench_import [ROWS] [SYMBOLS 1-9999] "
		                "[DIR]\n");
		return 2;
	}
	find_binary(bin, sizeof bin);
	snprintf(dir, sizeof dir, "%s/bench_import.XXXXXX", base);
	if (!mkdtemp(dir)) {
		fprintf(stderr,
		        "bench_import: cannot make a directory in "
		        "'%s': %s\n",
		        base, strerror(errno));
		return 1;
	}
	snprintf(file, sizeof file, "%s/ticks.csv", dir);
	snprintf(db, sizeof db, "%s/bench.db", dir);
	snprintf(out, sizeof out, "%s/out", dir);
	snprintf(err, sizeof err, "%s/err", dir);
	if (write_csv(file, rows, symbols, &bytes)) {
		fprintf(stderr, "bench_import: cannot write '%s'\n", file);
		return 1;
	}
	printf("bench_import: %ld rows over %d symbols, %.1f MB of CSV in "
	       "%s (%s)\n",
	       rows, symbols, (double)bytes / 1e6, dir, fs_name(dir));
	printf("  binary: %s\n", bin);

	rc = run_import(bin, file, db, out, err, &secs, &cpu);
	line_with(out, "import:", summary, sizeof summary);
	line_with(err, "journal_mode", pragmas, sizeof pragmas);
	settings = strchr(pragmas, '(');
	printf("  settings: %s\n", settings ? settings : pragmas);
	printf("  first import:  exit %d, %.3f s, %.0f rows/s; CPU %.3f s, "
	       "%.0f rows per CPU second (the rest of the wall time is "
	       "waiting: the disk, or other work on the machine)\n",
	       rc, secs, secs > 0 ? (double)rows / secs : 0.0, cpu,
	       cpu > 0 ? (double)rows / cpu : 0.0);
	printf("    %s\n", summary);
	if (rc != 0 || !strstr(summary, " rows stored") ||
	    atol(strstr(summary, "import: ") ? summary + 8 : "0") != rows) {
		printf("  FAILED: want exit 0 and %ld rows stored\n", rows);
		failed = 1;
	}

	rc = run_import(bin, file, db, out, err, &secs, &cpu);
	line_with(out, "import:", summary, sizeof summary);
	printf("  second import: exit %d, %.3f s (hash the file, find it "
	       "imported)\n",
	       rc, secs);
	printf("    %s\n", summary);
	if (rc != 0 || !strstr(summary, "import: 0 rows stored")) {
		printf("  FAILED: want exit 0 and 0 rows stored\n");
		failed = 1;
	}

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_import: could not remove '%s'\n", dir);
	return failed;
}

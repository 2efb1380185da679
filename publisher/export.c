/*
 * export: the `publisher export` command.
 *
 * The command reads through a store_reader, which calls back once per tick;
 * each tick is appended to a buffer as a tick-file line (tick_file.h) and the
 * buffer is written out whenever it passes FLUSH_BYTES, so memory stays flat
 * however many ticks are exported.
 */
#include "export.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errbuf.h"
#include "log.h"
#include "progress.h"
#include "store.h"
#include "tick_file.h"

/* Output is written in pieces of about this size. */
#define FLUSH_BYTES (256 * 1024)

struct export_sink {
	FILE *out;
	const char *name; /* for messages: the file, or "standard output" */
	bool jsonl;
	struct jsonbuf buf;
	uint64_t ticks;
	int write_errno; /* set when a write failed */
	bool out_of_memory;
	/* The progress line: how far the ticks' ts has come in [lo, hi],
	 * the span asked for as far as the store holds it. Ticks come in ts
	 * order across symbols, so that is how far the export has come. */
	struct progress progress;
	int64_t lo, hi;
};

/* Every this many ticks the progress line is looked at. */
#define PROGRESS_EVERY 4096

static int
sink_flush(struct export_sink *k)
{
	if (jsonbuf_failed(&k->buf)) {
		k->out_of_memory = true;
		return -1;
	}
	if (k->buf.len && fwrite(jsonbuf_data(&k->buf), 1, k->buf.len,
	                         k->out) != k->buf.len) {
		k->write_errno = errno ? errno : EIO;
		return -1;
	}
	jsonbuf_reset(&k->buf);
	return 0;
}

static int
sink_row(const struct tick *t, void *ctx)
{
	struct export_sink *k = ctx;

	tick_file_write_line(&k->buf, k->jsonl, t);
	k->ticks++;
	if (k->progress.to && k->ticks % PROGRESS_EVERY == 1) {
		if (k->ticks == 1 && t->ts > k->lo)
			k->lo = t->ts;
		k->progress.total =
		        k->hi > k->lo ? (uint64_t)k->hi - (uint64_t)k->lo : 0;
		progress_update(
		        &k->progress, k->ticks,
		        t->ts > k->lo ? (uint64_t)t->ts - (uint64_t)k->lo : 0);
	}
	if (k->buf.len >= FLUSH_BYTES || jsonbuf_failed(&k->buf))
		return sink_flush(k) ? 1 : 0;
	return 0;
}

/* Write into a temporary file beside a regular (or not yet existing)
 * output file; anything else (a FIFO, /dev/stdout) is written in place. */
static bool
use_temporary(const char *path)
{
	struct stat st;

	return stat(path, &st) != 0 || S_ISREG(st.st_mode);
}

int
export_run(const struct export_options *opt, char *err, size_t errlen)
{
	struct export_sink k = {.jsonl = opt->jsonl};
	struct store_reader *r;
	char tmp[4096] = "", rerr[512] = "";
	int rc;

	r = store_reader_open(opt->db, err, errlen);
	if (!r)
		return -1;

	if (!opt->output) {
		k.out = stdout;
		k.name = "standard output";
	} else {
		k.name = opt->output;
		if (use_temporary(opt->output)) {
			int n = snprintf(tmp, sizeof tmp, "%s.partial",
			                 opt->output);

			if (n < 0 || (size_t)n >= sizeof tmp) {
				store_reader_close(r);
				return errf(err, errlen,
				            "output path '%.200s' is too long",
				            opt->output);
			}
		}
		k.out = fopen(tmp[0] ? tmp : opt->output, "w");
		if (!k.out) {
			rc = errno;
			store_reader_close(r);
			return errf(err, errlen, "cannot write '%s': %s",
			            tmp[0] ? tmp : opt->output, strerror(rc));
		}
	}

	jsonbuf_init(&k.buf, 0);
	if (!opt->jsonl)
		tick_file_write_csv_header(&k.buf);
	k.lo = opt->from;
	k.hi = opt->to;
	if (opt->progress) {
		int64_t max_ts;

		if (store_read_max_ts(r, &max_ts, NULL, 0) == 0 &&
		    max_ts < k.hi)
			k.hi = max_ts;
	}
	progress_start(&k.progress, opt->progress, "export", 0);
	rc = store_read_ticks(r, opt->symbol_count ? opt->symbols : NULL,
	                      opt->symbol_count, opt->from, opt->to, 0,
	                      sink_row, &k, rerr, sizeof rerr);
	/* A row callback that failed stopped the read early, which the
	 * reader reports as success. */
	if (rc == 0 && (k.write_errno || k.out_of_memory))
		rc = -1;
	if (rc == 0)
		rc = sink_flush(&k);
	if (rc == 0 && fflush(k.out) != 0) {
		k.write_errno = errno ? errno : EIO;
		rc = -1;
	}
	if (k.out != stdout && fclose(k.out) != 0 && rc == 0) {
		k.write_errno = errno ? errno : EIO;
		rc = -1;
	}
	progress_end(&k.progress);
	store_reader_close(r);
	jsonbuf_free(&k.buf);

	if (rc == 0 && tmp[0] && rename(tmp, opt->output) != 0) {
		k.write_errno = errno;
		rc = -1;
	}
	if (rc != 0) {
		if (tmp[0])
			unlink(tmp);
		if (k.write_errno)
			return errf(err, errlen, "cannot write '%s': %s",
			            k.name, strerror(k.write_errno));
		if (k.out_of_memory)
			return errf(err, errlen, "out of memory");
		return errf(err, errlen, "%s", rerr[0] ? rerr : "read failed");
	}
	log_info("export: %llu ticks from '%s' to %s%s%s",
	         (unsigned long long)k.ticks, opt->db, opt->output ? "'" : "",
	         k.name, opt->output ? "'" : "");
	return 0;
}

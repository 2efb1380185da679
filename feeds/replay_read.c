/*
 * replay_read.c: the replay's file reader (feed_replay.c is the feed).
 *
 * Reading. The file is streamed: read(2) fills a 1 MiB buffer that is cut
 * into lines here, so a file larger than memory replays in constant memory
 * and one system call serves thousands of lines. A line may be up to 64 KiB;
 * a longer one is skipped as a bad line. The format (JSONL or CSV, the CSV
 * columns from its header) is detected from the content by
 * tick_parse_line(). The last line may lack its newline.
 *
 * Read marks. A struct read_mark is the start of a line with the parser
 * and the counts as they were there; replay__go_to() puts the reader back
 * at one, for a seek back and for a new pass (replay_seek.c). The end of
 * the file is probed once, with pread(), for its last timestamp.
 *
 * All of it runs on the replay's thread: the play loop (feed_replay.c) and
 * the search for a seek's cut (replay_seek.c) read the lines.
 */
#include "replay_private.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../publisher/log.h"

/* Each bad line is logged once over the feed's life (not again on every
 * loop pass), and at most this many: a file of garbage must not flood the
 * log. All are counted. */
#define BAD_LINES_LOGGED 1000
/* How much of the file's end is read to find its last timestamp, and how
 * many lines from the end are tried. */
#define END_PROBE_BYTES (2 * LINE_MAX_BYTES)
#define END_PROBE_LINES 16

/* ------------------------------------------------------------ reading */

static bool
stop_requested(struct feed_replay *fr)
{
	return __atomic_load_n(&fr->stop, __ATOMIC_ACQUIRE) != 0;
}

void
replay__bad_line(struct feed_replay *fr, const char *reason)
{
	fr->pass_bad++;
	/* A line read in an earlier pass was reported then. */
	if (fr->line_no <= fr->lines_known)
		return;
	__atomic_add_fetch(&fr->base.bad_lines, 1, __ATOMIC_RELAXED);
	if (fr->bad_logged < BAD_LINES_LOGGED)
		log_warn("replay %s line %lu: %s", fr->path,
		         (unsigned long)fr->line_no, reason);
	else if (fr->bad_logged == BAD_LINES_LOGGED)
		log_warn("replay %s: more than %d bad lines; the rest are "
		         "counted in the summary but not logged",
		         fr->path, BAD_LINES_LOGGED);
	fr->bad_logged++;
}

static void
long_line(struct feed_replay *fr)
{
	char reason[64];

	snprintf(reason, sizeof reason, "line is longer than %d bytes",
	         LINE_MAX_BYTES);
	replay__bad_line(fr, reason);
}

/*
 * The next line of the file, without its newline, in *line (valid until the
 * next call). Returns 1 with a line, 0 at the end of the file, -1 on a read
 * error (logged) and -2 when the feed is asked to stop.
 */
int
replay__read_line(struct feed_replay *fr, const char **line, size_t *len)
{
	for (;;) {
		char *start = fr->buf + fr->pos;
		size_t avail = fr->end - fr->pos;
		char *nl = memchr(start, '\n', avail);
		ssize_t n;

		if (nl) {
			size_t l = (size_t)(nl - start);

			fr->line_off = fr->buf_off + (off_t)fr->pos;
			fr->pos += l + 1;
			fr->line_no++;
			if (fr->discarding) {
				/* The end of a line that was over the
				 * limit. */
				fr->discarding = false;
				long_line(fr);
				continue;
			}
			if (l > LINE_MAX_BYTES) {
				long_line(fr);
				continue;
			}
			*line = start;
			*len = l;
			return 1;
		}
		if (fr->eof) {
			/* The last line, which has no newline. */
			fr->line_off = fr->buf_off + (off_t)fr->pos;
			fr->pos = fr->end;
			if (fr->discarding) {
				fr->discarding = false;
				fr->line_no++;
				long_line(fr);
				return 0;
			}
			if (avail == 0)
				return 0;
			fr->line_no++;
			if (avail > LINE_MAX_BYTES) {
				long_line(fr);
				return 0;
			}
			*line = start;
			*len = avail;
			return 1;
		}
		if (stop_requested(fr))
			return -2;
		/* Keep the unfinished line at the front and read more.
		 * A line already over the limit is dropped as it arrives, so
		 * memory stays bounded whatever the file holds. */
		if (fr->discarding || avail > LINE_MAX_BYTES) {
			fr->discarding = true;
			avail = 0;
		}
		/* What stays is the buffer's last `avail` bytes. */
		fr->buf_off += (off_t)(fr->end - avail);
		memmove(fr->buf, fr->buf + fr->end - avail, avail);
		fr->pos = 0;
		fr->end = avail;
		do
			n = read(fr->fd, fr->buf + fr->end, READ_BUF - fr->end);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			log_error("replay %s: cannot read after line %lu: %s",
			          fr->path, (unsigned long)fr->line_no,
			          strerror(errno));
			return -1;
		}
		if (n == 0)
			fr->eof = true;
		fr->end += (size_t)n;
	}
}

/*
 * Find the file's last timestamp so that a dashboard can draw the whole
 * span before the replay gets there: parse the last lines of the file with
 * a copy of the parser (which knows the format and the CSV header by now).
 * pread() leaves the reading position alone. Only for regular files.
 */
void
replay__probe_end(struct feed_replay *fr)
{
	struct stat st;
	char reason[256];
	char *b, *end;
	off_t from;
	ssize_t n;
	int tries = 0;

	if (!fr->seekable || fstat(fr->fd, &st) != 0 || st.st_size <= 0)
		return;
	from = st.st_size > END_PROBE_BYTES ? st.st_size - END_PROBE_BYTES : 0;
	b = malloc(END_PROBE_BYTES);
	if (!b)
		return;
	do
		n = pread(fr->fd, b, (size_t)(st.st_size - from), from);
	while (n < 0 && errno == EINTR);
	end = n > 0 ? b + n : b;
	while (end > b && tries < END_PROBE_LINES) {
		struct tick_parser p = fr->parser;
		char *line_end = end, *start;
		struct tick t;

		if (line_end[-1] == '\n')
			line_end--;
		start = line_end;
		while (start > b && start[-1] != '\n')
			start--;
		/* The first line of the block may be cut: not a line. */
		if (start == b && from > 0)
			break;
		if (tick_parse_line(&p, start, (size_t)(line_end - start), &t,
		                    reason, sizeof reason) == TICK_PARSE_OK) {
			__atomic_store_n(&fr->last_ts, t.ts, __ATOMIC_RELAXED);
			break;
		}
		if (line_end > start)
			tries++;
		end = start;
	}
	free(b);
}

/* --------------------------------------------------------- read marks */

/* Go to a place in the file; what was buffered is dropped. The lines read
 * so far are remembered as reported (replay__bad_line). Returns 0, or -1
 * (logged). */
int
replay__go_to(struct feed_replay *fr, const struct read_mark *m)
{
	if (lseek(fr->fd, m->off, SEEK_SET) < 0) {
		log_error("replay %s: cannot go back to line %" PRIu64 ": %s",
		          fr->path, m->line_no + 1, strerror(errno));
		return -1;
	}
	if (fr->line_no > fr->lines_known)
		fr->lines_known = fr->line_no;
	fr->pos = fr->end = 0;
	fr->buf_off = m->off;
	fr->eof = false;
	fr->discarding = false;
	fr->line_no = m->line_no;
	fr->parser = m->parser;
	fr->pass_bad = m->pass_bad;
	return 0;
}

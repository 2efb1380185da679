/*
 * import: the `publisher import` command (see import.h).
 *
 * One input at a time: its bytes are hashed first (a pipe is copied into
 * an unlinked temporary file beside the database as it is hashed), the
 * database says whether and how far those bytes were imported before, and
 * the lines are then read once more, parsed with the tick-file parser and
 * handed to the store's bulk path (store.h, "importing"), committed every
 * COMMIT_ROWS lines or COMMIT_NS, each commit with the input's mark:
 * the byte just past the last line taken, its line number, the ticks
 * stored and the lines refused. Resuming reads the lines before the mark
 * again for the parser only (a CSV header, repeated headers), then goes
 * on after it. Reading and parsing run on a thread of their own, a few
 * blocks of lines ahead of the store (below).
 *
 * Hashing first costs one more read of the input, from the page cache for
 * a file just written: about 1.7 GB/s with SHA-256 here, under a
 * twentieth of the import's own time.
 */
#include "import.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "clock.h"
#include "errbuf.h"
#include "log.h"
#include "progress.h"
#include "store.h"
#include "tick_file.h"

/* Commit after this many ticks, or this long since the last commit,
 * whichever comes first: what a kill -9 can lose, and do again. */
#define COMMIT_ROWS (512 * 1024)
#define COMMIT_NS   (2 * 1000000000ll)
/* Read buffer, and the longest line taken (a longer one is a bad line,
 * as in replay). */
#define READ_BUF       (4 * 1024 * 1024)
#define LINE_MAX_BYTES 65536
/* Bad lines: each is logged up to this many per input; the summary names
 * the first few. */
#define BAD_LOGGED 100
#define BAD_SHOWN  5
#define HASH_HEX   (2 * 32 + 1)

struct bad {
	uint64_t line;
	const char *input;
};

/* One run's totals and the bad lines named in the summary. */
struct run {
	const struct import_options *opt;
	struct store_import *im;
	struct import_result res;
	struct bad shown[BAD_SHOWN];
	size_t nshown;
	char *buf;
};

/* One input being read. */
struct input {
	const char *name;  /* as given; "-" for standard input */
	const char *shown; /* for messages: "standard input" or the name */
	int fd;
	uint64_t size;
	char hash[HASH_HEX];
	/* the lines */
	size_t pos, end;     /* unread bytes are buf[pos..end) */
	uint64_t buf_offset; /* input offset of buf[0] */
	uint64_t read_total; /* bytes read: at most size, the bytes hashed */
	bool eof;
	bool discarding; /* the rest of a line over LINE_MAX_BYTES */
	uint64_t line;   /* lines read */
	uint64_t logged;
};

static void
note_bad(struct run *r, struct input *in, uint64_t line, const char *reason,
         bool count)
{
	if (r->nshown < BAD_SHOWN) {
		r->shown[r->nshown].line = line;
		r->shown[r->nshown].input = in->shown;
		r->nshown++;
	}
	if (count)
		r->res.bad_lines++;
	if (in->logged < BAD_LOGGED)
		log_warn("import %s line %" PRIu64 ": %s", in->shown, line,
		         reason);
	else if (in->logged == BAD_LOGGED)
		log_warn("import %s: more than %d bad lines; the rest are "
		         "counted but not shown",
		         in->shown, BAD_LOGGED);
	in->logged++;
}

static void
hex(const unsigned char *md, unsigned n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	unsigned i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[2 * n] = '\0';
}

/* read(2), again after a signal. */
static ssize_t
read_some(int fd, char *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n;
}

static int
write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * A pipe (standard input, a FIFO) can be read once: copy it into an
 * unlinked temporary file in the database's directory, so that it can be
 * hashed and then read again, and so that nothing is left behind if the
 * import is killed. in->fd becomes the copy.
 */
static int
spool(struct run *r, struct input *in, EVP_MD_CTX *md, char *err, size_t errlen)
{
	char path[4096];
	const char *db = r->opt->db;
	int fd;
	ssize_t n;

	if ((size_t)snprintf(path, sizeof path, "%s.import-XXXXXX", db) >=
	    sizeof path)
		return errf(err, errlen, "db path '%.200s' is too long", db);
	fd = mkstemp(path);
	if (fd < 0)
		return errf(err, errlen,
		            "cannot make a temporary copy of %s beside the "
		            "database ('%s'): %s",
		            in->shown, path, strerror(errno));
	unlink(path);
	in->size = 0;
	while ((n = read_some(in->fd, r->buf, READ_BUF)) > 0) {
		if (write_all(fd, r->buf, (size_t)n)) {
			int e = errno;

			close(fd);
			return errf(err, errlen,
			            "cannot copy %s beside the database: %s",
			            in->shown, strerror(e));
		}
		EVP_DigestUpdate(md, r->buf, (size_t)n);
		in->size += (uint64_t)n;
	}
	if (n < 0) {
		int e = errno;

		close(fd);
		return errf(err, errlen, "cannot read %s: %s", in->shown,
		            strerror(e));
	}
	if (in->fd != STDIN_FILENO)
		close(in->fd);
	in->fd = fd;
	return 0;
}

/* Open the input and hash its bytes. */
static int
open_input(struct run *r, struct input *in, char *err, size_t errlen)
{
	unsigned char md_out[EVP_MAX_MD_SIZE];
	unsigned md_len = 0;
	EVP_MD_CTX *md;
	struct stat st;
	int rc = 0;

	in->fd = strcmp(in->name, "-") ? open(in->name, O_RDONLY | O_CLOEXEC)
	                               : STDIN_FILENO;
	if (in->fd < 0)
		return errf(err, errlen, "cannot open '%s': %s", in->name,
		            strerror(errno));
	if (fstat(in->fd, &st) != 0)
		return errf(err, errlen, "cannot read %s: %s", in->shown,
		            strerror(errno));
	if (S_ISDIR(st.st_mode))
		return errf(err, errlen,
		            "cannot import '%s': it is a directory", in->name);
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return errf(err, errlen, "cannot hash %s: no SHA-256",
		            in->shown);
	}
	if (!S_ISREG(st.st_mode)) {
		rc = spool(r, in, md, err, errlen);
	} else {
		ssize_t n;

		in->size = 0;
		posix_fadvise(in->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		while ((n = read_some(in->fd, r->buf, READ_BUF)) > 0) {
			EVP_DigestUpdate(md, r->buf, (size_t)n);
			in->size += (uint64_t)n;
		}
		if (n < 0)
			rc = errf(err, errlen, "cannot read %s: %s", in->shown,
			          strerror(errno));
	}
	if (rc == 0 && EVP_DigestFinal_ex(md, md_out, &md_len) != 1)
		rc = errf(err, errlen, "cannot hash %s", in->shown);
	EVP_MD_CTX_free(md);
	if (rc)
		return rc;
	hex(md_out, md_len, in->hash);
	if (lseek(in->fd, 0, SEEK_SET) != 0)
		return errf(err, errlen, "cannot read %s again: %s", in->shown,
		            strerror(errno));
	return 0;
}

/*
 * The next line, without its newline, in *line (valid until the next
 * call); *end_offset is the input offset just past it. Returns 1 with a
 * line, 0 at the end, -1 on a read error (err set). A line over
 * LINE_MAX_BYTES comes back with *len = SIZE_MAX: a bad line.
 */
static int
read_line(struct run *r, struct input *in, const char **line, size_t *len,
          uint64_t *end_offset, char *err, size_t errlen)
{
	for (;;) {
		char *start = r->buf + in->pos;
		size_t avail = in->end - in->pos;
		char *nl = memchr(start, '\n', avail);
		ssize_t n;

		if (nl || (in->eof && (avail || in->discarding))) {
			size_t l = nl ? (size_t)(nl - start) : avail;

			in->pos += nl ? l + 1 : l;
			*end_offset = in->buf_offset + in->pos;
			in->line++;
			*line = start;
			*len = l;
			if (in->discarding || l > LINE_MAX_BYTES) {
				in->discarding = false;
				*len = SIZE_MAX;
			}
			return 1;
		}
		if (in->eof)
			return 0;
		/* Keep the unfinished line at the front and read more; a
		 * line already over the limit is dropped as it comes. */
		if (in->discarding || avail > LINE_MAX_BYTES) {
			in->discarding = true;
			in->buf_offset += in->pos + avail;
			avail = 0;
		} else {
			in->buf_offset += in->pos;
		}
		memmove(r->buf, start, avail);
		in->pos = 0;
		in->end = avail;
		/* Only the bytes that were hashed: a file that grows
		 * meanwhile is imported as it was. */
		n = read_some(in->fd, r->buf + in->end,
		              in->size - in->read_total < READ_BUF - in->end
		                      ? (size_t)(in->size - in->read_total)
		                      : READ_BUF - in->end);
		if (n < 0)
			return errf(err, errlen,
			            "cannot read %s after line %" PRIu64 ": %s",
			            in->shown, in->line, strerror(errno));
		if (n == 0)
			in->eof = true;
		in->end += (size_t)n;
		in->read_total += (uint64_t)n;
	}
}

/* ------------------------------------------------ reader and writer */

/*
 * Two threads per input, so that parsing and SQLite each have a core: the
 * reader thread reads and parses lines into blocks of ticks, the calling
 * thread takes the blocks in order and hands their ticks to the store.
 * A block ends at a line boundary and carries where it ends (offset, line
 * number) and the lines it refused, which is what a mark needs: the caller
 * commits only between blocks. Blocks go round a small ring under one
 * mutex, so the reader runs at most NBLOCKS blocks ahead.
 */
#define BLOCK_LINES 4096
#define NBLOCKS     8

struct block {
	struct tick *ticks; /* BLOCK_LINES */
	uint32_t n;
	uint64_t end_offset; /* just past its last line */
	uint64_t end_line;   /* that line's number */
	uint64_t bad;        /* lines refused in it */
	bool last;           /* the input's end, or a read error */
	int rc;              /* -1: the read failed (err set) */
};

struct pipe_state {
	struct run *r;
	struct input *in;
	uint64_t mark_offset; /* lines ending here or before were taken */
	char *err;
	size_t errlen;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct block blocks[NBLOCKS];
	size_t head, count; /* filled blocks: blocks[head..head+count) */
	bool stop;          /* the caller gave up: the reader ends */
};

/* Reader thread: the next free block, or NULL when asked to stop. */
static struct block *
free_block(struct pipe_state *ps)
{
	struct block *b = NULL;

	pthread_mutex_lock(&ps->mu);
	while (!ps->stop && ps->count == NBLOCKS)
		pthread_cond_wait(&ps->cond, &ps->mu);
	if (!ps->stop)
		b = &ps->blocks[(ps->head + ps->count) % NBLOCKS];
	pthread_mutex_unlock(&ps->mu);
	return b;
}

static void
publish_block(struct pipe_state *ps)
{
	pthread_mutex_lock(&ps->mu);
	ps->count++;
	pthread_cond_broadcast(&ps->cond);
	pthread_mutex_unlock(&ps->mu);
}

static void *
reader_main(void *arg)
{
	struct pipe_state *ps = arg;
	struct input *in = ps->in;
	struct tick_parser parser;
	struct block *b;
	const char *line = NULL;
	size_t len = 0;
	uint64_t end_offset = 0, lines = 0;
	int rc;

	tick_parser_init(&parser, TICK_FORMAT_UNKNOWN);
	if (!(b = free_block(ps)))
		return NULL;
	b->n = 0;
	b->bad = 0;
	while ((rc = read_line(ps->r, in, &line, &len, &end_offset, ps->err,
	                       ps->errlen)) > 0) {
		/* Lines up to the mark were taken by an earlier run: they
		 * are read again for the parser alone (the CSV header). */
		bool taken = end_offset <= ps->mark_offset;
		enum tick_parse_result pr = TICK_PARSE_ERROR;
		char reason[256];

		if (len == SIZE_MAX)
			snprintf(reason, sizeof reason,
			         "line is longer than %d bytes",
			         LINE_MAX_BYTES);
		else
			pr = tick_parse_line(&parser, line, len,
			                     &b->ticks[b->n], reason,
			                     sizeof reason);
		if (pr == TICK_PARSE_ERROR) {
			/* One an earlier run counted is named again, so
			 * that the summary says where. */
			note_bad(ps->r, in, in->line, reason, !taken);
			b->bad += !taken;
		}
		if (taken)
			continue;
		if (pr == TICK_PARSE_OK)
			b->n++;
		b->end_offset = end_offset;
		b->end_line = in->line;
		if (++lines < BLOCK_LINES)
			continue;
		b->last = false;
		b->rc = 0;
		publish_block(ps);
		if (!(b = free_block(ps)))
			return NULL;
		b->n = 0;
		b->bad = 0;
		lines = 0;
	}
	b->last = true;
	b->rc = rc < 0 ? -1 : 0;
	b->end_offset = in->size;
	b->end_line = in->line;
	publish_block(ps);
	return NULL;
}

/* Caller: the next filled block (wait for it). */
static struct block *
next_block(struct pipe_state *ps)
{
	struct block *b;

	pthread_mutex_lock(&ps->mu);
	while (ps->count == 0)
		pthread_cond_wait(&ps->cond, &ps->mu);
	b = &ps->blocks[ps->head];
	pthread_mutex_unlock(&ps->mu);
	return b;
}

static void
release_block(struct pipe_state *ps)
{
	pthread_mutex_lock(&ps->mu);
	ps->head = (ps->head + 1) % NBLOCKS;
	ps->count--;
	pthread_cond_broadcast(&ps->cond);
	pthread_mutex_unlock(&ps->mu);
}

static void
pipe_free(struct pipe_state *ps)
{
	size_t i;

	for (i = 0; i < NBLOCKS; i++)
		free(ps->blocks[i].ticks);
	pthread_cond_destroy(&ps->cond);
	pthread_mutex_destroy(&ps->mu);
}

/* Import one input: resume from its mark, commit as it goes. */
static int
import_input(struct run *r, struct input *in, char *err, size_t errlen)
{
	struct store_import_mark mark;
	struct pipe_state ps;
	struct progress prog;
	pthread_t reader;
	uint64_t refused = 0, added = 0, start, committed_line;
	int64_t last_commit_ns = clock_mono_ns();
	char what[80], rerr[512] = "";
	bool last = false;
	size_t i;
	int found, rc = 0;

	found = store_import_find(r->im, in->hash, &mark, err, errlen);
	if (found < 0)
		return -1;
	if (found && mark.done) {
		log_info("import %s: already imported (sha256 %.12s…: %" PRIu64
		         " rows, %" PRIu64 " bad lines); nothing added",
		         in->shown, in->hash, mark.rows, mark.bad_lines);
		r->res.inputs_done++;
		r->res.skipped++;
		return 0;
	}
	if (found)
		log_info("import %s: resuming after line %" PRIu64 " (%" PRIu64
		         " rows stored before)",
		         in->shown, mark.lines, mark.rows);
	start = mark.rows;
	committed_line = mark.lines;

	memset(&ps, 0, sizeof ps);
	ps.r = r;
	ps.in = in;
	ps.mark_offset = mark.offset;
	ps.err = rerr;
	ps.errlen = sizeof rerr;
	pthread_mutex_init(&ps.mu, NULL);
	pthread_cond_init(&ps.cond, NULL);
	for (i = 0; i < NBLOCKS; i++)
		if (!(ps.blocks[i].ticks =
		              malloc(BLOCK_LINES * sizeof(struct tick)))) {
			pipe_free(&ps);
			return errf(err, errlen, "out of memory");
		}
	if ((rc = pthread_create(&reader, NULL, reader_main, &ps))) {
		pipe_free(&ps);
		return errf(err, errlen, "cannot start a thread: %s",
		            strerror(rc));
	}
	snprintf(what, sizeof what, "import %.60s", in->shown);
	progress_start(&prog, r->opt->progress, what, in->size);

	while (!last) {
		struct block *b = next_block(&ps);
		uint64_t refused_before = refused;

		for (i = 0; rc == 0 && i < b->n; i++) {
			uint64_t before = refused;

			rc = store_import_add(r->im, &b->ticks[i], &refused,
			                      err, errlen);
			if (refused == before)
				added++;
			else
				log_warn(
				        "import %s: a tick before line %" PRIu64
				        " is refused by its symbol's state (a "
				        "volume or trades count would "
				        "overflow)",
				        in->shown, b->end_line + 1);
		}
		mark.offset = b->end_offset;
		mark.lines = b->end_line;
		mark.bad_lines += b->bad + (refused - refused_before);
		mark.rows = start + added;
		last = b->last;
		if (rc == 0 && b->rc)
			rc = errf(err, errlen, "%s", rerr);
		release_block(&ps);
		if (rc)
			break;
		progress_update(&prog, added, mark.offset);
		if (last || (mark.lines - committed_line < COMMIT_ROWS &&
		             clock_mono_ns() - last_commit_ns < COMMIT_NS))
			continue;
		if ((rc = store_import_commit(r->im, in->hash, in->name,
		                              in->size, &mark, err, errlen)))
			break;
		last_commit_ns = clock_mono_ns();
		committed_line = mark.lines;
	}
	if (rc) {
		pthread_mutex_lock(&ps.mu);
		ps.stop = true;
		pthread_cond_broadcast(&ps.cond);
		pthread_mutex_unlock(&ps.mu);
	}
	pthread_join(reader, NULL);
	pipe_free(&ps);
	r->res.bad_lines += refused;
	if (rc == 0) {
		mark.done = true;
		rc = store_import_commit(r->im, in->hash, in->name, in->size,
		                         &mark, err, errlen);
	}
	progress_end(&prog);
	if (rc == 0)
		r->res.inputs_done++;
	return rc ? -1 : 0;
}

/* Print the run's one-line summary on stdout. */
static void
summary(const struct run *r, size_t inputs)
{
	const struct import_result *res = &r->res;
	char bad[512] = "", skipped[64] = "";
	size_t i, o;

	if (res->bad_lines || r->nshown) {
		o = (size_t)snprintf(bad, sizeof bad,
		                     ", %" PRIu64 " bad line%s", res->bad_lines,
		                     res->bad_lines == 1 ? "" : "s");
		/* "(a.csv line 4, 9, b.csv line 2)" */
		for (i = 0; i < r->nshown && o < sizeof bad; i++) {
			bool same =
			        i && r->shown[i].input == r->shown[i - 1].input;

			o += (size_t)snprintf(
			        bad + o, sizeof bad - o, "%s%s%s%" PRIu64,
			        i ? ", " : " (", same ? "" : r->shown[i].input,
			        same ? "" : " line ", r->shown[i].line);
		}
		if (o < sizeof bad)
			snprintf(bad + o, sizeof bad - o, "%s)",
			         res->bad_lines > r->nshown ? ", …" : "");
	}
	if (res->skipped)
		snprintf(skipped, sizeof skipped,
		         ", %zu of %zu input%s already imported", res->skipped,
		         inputs, inputs == 1 ? "" : "s");
	printf("import: %" PRIu64 " rows stored%s%s, %.3f s, %.0f rows/s\n",
	       res->rows, bad, skipped, res->seconds,
	       res->seconds > 0 ? (double)res->rows / res->seconds : 0.0);
	fflush(stdout);
}

int
import_run(const struct import_options *opt, struct import_result *res,
           char *err, size_t errlen)
{
	struct run r;
	int64_t t0 = clock_mono_ns();
	size_t i;
	int rc = 0;

	memset(&r, 0, sizeof r);
	r.opt = opt;
	r.buf = malloc(READ_BUF);
	if (!r.buf)
		return errf(err, errlen, "out of memory");
	r.im = store_import_open(opt->db, &opt->sessions, err, errlen);
	if (!r.im) {
		free(r.buf);
		return -1;
	}
	log_info("import: into '%s' (%s)", opt->db, store_import_pragmas(r.im));
	for (i = 0; rc == 0 && i < opt->file_count; i++) {
		struct input in;

		memset(&in, 0, sizeof in);
		in.name = opt->files[i];
		in.shown = strcmp(in.name, "-") ? in.name : "standard input";
		in.fd = -1;
		rc = open_input(&r, &in, err, errlen);
		if (rc == 0)
			rc = import_input(&r, &in, err, errlen);
		if (in.fd > STDIN_FILENO)
			close(in.fd);
	}
	r.res.rows = store_import_rows(r.im);
	store_import_close(r.im);
	free(r.buf);
	r.res.seconds = (double)(clock_mono_ns() - t0) / 1e9;
	if (rc == 0)
		summary(&r, opt->file_count);
	else if (r.res.rows && err && errlen) {
		size_t len = strnlen(err, errlen - 1);

		snprintf(err + len, errlen - len,
		         " (%" PRIu64 " rows were stored before it; importing "
		         "again goes on from there)",
		         r.res.rows);
	}
	if (res)
		*res = r.res;
	return rc;
}

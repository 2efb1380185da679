/*
 * Unit tests for feeds/feed_replay.c: the real USD/THB file replayed at max
 * ends in its last quote; the pacer keeps span / speed without drift and
 * never sleeps backwards on an out-of-order row; loop stays monotonic; bad
 * lines are reported by number and the rest applied; pause, resume, speed
 * and seek behave; a seek back asks its consumer to undo exactly what was
 * sent from the cut on and plays on from there (with loop, in the pass
 * under way); a missing file fails with its path and cause.
 *
 * Two tests measure wall time on purpose (the pacer is a promise about
 * time). They are short (about a second) and check against the file's own
 * span with a 5 % tolerance; everything else counts ticks
 * and waits on states with generous deadlines, never on sleeps alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "feed.h"
#include "log.h"

#include "support/asserts.h"
#include "support/timing.h"
#include "support/tmpdir.h"

#define REAL_FILE  "usdthb-1997.csv"
#define REAL_TICKS 2984
#define REAL_FIRST 865193280000000LL
#define REAL_LAST  867714240000000LL
/* Line 2363 (the header is line 1) is the out-of-order row: tick 2361. */
#define REAL_OOO 2361
/* A deadlock guard, not a timing assertion. */
#define DEADLINE_MS 10000

static char tmpdir[64];

/* The real file, whether the test runs from the repository root (as `make
 * test` does) or elsewhere. */
static const char *
real_file(void)
{
	static char path[4096];
	const char *src = __FILE__; /* tests/unit/test_feed_replay.c */
	const char *slash;

	if (access("tests/data/" REAL_FILE, R_OK) == 0)
		return "tests/data/" REAL_FILE;
	slash = strrchr(src, '/');
	snprintf(path, sizeof path, "%.*s/../data/" REAL_FILE,
	         slash ? (int)(slash - src) : 1, slash ? src : ".");
	return path;
}

/* Write text to a new file in the test's directory; returns its path. */
static const char *
write_file(const char *name, const char *text)
{
	static char paths[8][128];
	static int next;
	char *path = paths[next++ % 8];
	FILE *fp;

	snprintf(path, 128, "%s/%s", tmpdir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
	assert_int_equal(fclose(fp), 0);
	return path;
}

/* A CSV of n quotes of one symbol, ts = base + i * step_us, bid = i. */
static const char *
write_series(const char *name, int n, int64_t base, int64_t step_us)
{
	size_t cap = 64 + (size_t)n * 64, len = 0;
	char *text = malloc(cap);
	const char *path;
	int i;

	assert_non_null(text);
	len += (size_t)snprintf(text + len, cap - len, "ts,symbol,bid,ask\n");
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len,
		                        "%lld,SER,%d.5,%d.75\n",
		                        (long long)(base + i * step_us), i, i);
	path = write_file(name, text);
	free(text);
	return path;
}

/* ---------------------------------------------------------------- sink */

/* What the test has drained from the queue, with arrival times. */
struct sink {
	struct tick_queue *q;
	struct tick *ticks;
	int64_t *at_ns;
	size_t n, cap;
};

static void
sink_init(struct sink *s, size_t queue_capacity)
{
	memset(s, 0, sizeof *s);
	s->q = tick_queue_create(queue_capacity, NULL, NULL);
	assert_non_null(s->q);
}

static void
sink_free(struct sink *s)
{
	tick_queue_destroy(s->q);
	free(s->ticks);
	free(s->at_ns);
}

static size_t
sink_drain(struct sink *s)
{
	size_t got = 0, k, i;
	int64_t now;

	do {
		if (s->n + 1024 > s->cap) {
			s->cap = (s->cap + 1024) * 2;
			s->ticks = realloc(s->ticks, s->cap * sizeof *s->ticks);
			s->at_ns = realloc(s->at_ns, s->cap * sizeof *s->at_ns);
			assert_non_null(s->ticks);
			assert_non_null(s->at_ns);
		}
		k = tick_queue_drain(s->q, s->ticks + s->n, 1024);
		now = clock_mono_ns();
		for (i = 0; i < k; i++)
			s->at_ns[s->n + i] = now;
		s->n += k;
		got += k;
	} while (k > 0);
	return got;
}

/* Drain until n ticks have arrived. */
static void
sink_wait_count(struct sink *s, size_t n)
{
	int64_t give_up = clock_mono_ns() + DEADLINE_MS * 1000000LL;

	while (s->n < n && clock_mono_ns() < give_up) {
		if (sink_drain(s) == 0)
			timing_sleep_us(200);
	}
	if (s->n < n)
		fail_msg("only %zu of %zu ticks arrived", s->n, n);
}

static bool
state_is(struct feed *f, const char *state)
{
	struct feed_status st;

	feed_get_status(f, &st);
	return st.replay_state && strcmp(st.replay_state, state) == 0;
}

/* Drain until the replay reports `state`, then drain what is left. */
static void
sink_wait_state(struct sink *s, struct feed *f, const char *state)
{
	int64_t give_up = clock_mono_ns() + DEADLINE_MS * 1000000LL;

	while (!state_is(f, state) && clock_mono_ns() < give_up) {
		if (sink_drain(s) == 0)
			timing_sleep_us(200);
	}
	if (!state_is(f, state))
		fail_msg("the replay never became '%s'", state);
	sink_drain(s);
}

static struct feed *
start(const char *spec, struct sink *s)
{
	char err[512] = "";
	struct feed *f = feed_create(spec, s->q, err, sizeof err);

	if (!f)
		fail_msg("'%s' refused: %s", spec, err);
	if (feed_start(f, err, sizeof err) != 0)
		fail_msg("'%s' did not start: %s", spec, err);
	return f;
}

/* Shut down as the server does: close the queue, then stop. */
static void
finish(struct feed *f, struct sink *s)
{
	tick_queue_close(s->q);
	feed_stop(f);
	feed_destroy(f);
	sink_free(s);
}

static void
control(struct feed *f, enum feed_command_kind kind, double speed, int64_t ts)
{
	struct feed_command cmd = {.kind = kind, .speed = speed, .ts = ts};
	char err[256] = "";

	if (feed_control(f, &cmd, err, sizeof err) != 0)
		fail_msg("feed_control refused: %s", err);
}

/* --------------------------------------------------------- log capture */

static int saved_stderr = -1;
static char log_path[128];

static void
capture_log(void)
{
	int fd;

	snprintf(log_path, sizeof log_path, "%s/log.txt", tmpdir);
	fflush(stderr);
	saved_stderr = dup(2);
	fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0 && saved_stderr >= 0);
	dup2(fd, 2);
	close(fd);
}

/* Stop capturing; returns what was logged (caller frees) and echoes it. */
static char *
captured_log(void)
{
	FILE *fp;
	char *text;
	long len;

	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	fp = fopen(log_path, "r");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	text = calloc(1, (size_t)len + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
	fputs(text, stderr);
	return text;
}

static void
assert_logged(const char *log, const char *want)
{
	if (!strstr(log, want))
		fail_msg("the log lacks \"%s\"", want);
}

/* --------------------------------------------------------------- tests */

static void
test_real_file_at_max_ends_in_its_last_quote(void **state)
{
	char spec[4200];
	struct feed_status st;
	struct sink s;
	struct feed *f;
	struct tick fold;
	size_t i;
	int fld;

	/* A queue much smaller than the file: the replay is held back by
	 * the consumer, not allowed to drop. */
	sink_init(&s, 256);
	snprintf(spec, sizeof spec, "replay:%s,speed=max", real_file());
	f = start(spec, &s);
	/* Its span is known at once (the end of the file is probed). */
	sink_wait_state(&s, f, "finished");

	assert_int_equal(s.n, REAL_TICKS);
	/* The state a consumer builds: every field's latest value, in
	 * arrival order. */
	memset(&fold, 0, sizeof fold);
	for (i = 0; i < s.n; i++) {
		assert_string_equal(s.ticks[i].symbol, "USDTHB");
		for (fld = 0; fld < TICK_FIELD_COUNT; fld++)
			if (tick_has(&s.ticks[i], fld))
				tick_set(&fold, fld, s.ticks[i].value[fld]);
		fold.ts = s.ticks[i].ts;
	}
	assert_int_equal(decimal_cmp(fold.value[FIELD_BID], dec("24.6")), 0);
	assert_int_equal(decimal_cmp(fold.value[FIELD_ASK], dec("24.8")), 0);
	assert_int_equal(fold.ts, REAL_LAST);
	/* Exact decimals: 25.005 (line 4) is kept as written. */
	assert_int_equal(s.ticks[2].value[FIELD_ASK].mantissa, 25005);
	assert_int_equal(s.ticks[2].value[FIELD_ASK].scale, 3);
	/* The file's own timestamps, the out-of-order row in arrival order. */
	assert_int_equal(s.ticks[0].ts, REAL_FIRST);
	assert_true(s.ticks[REAL_OOO].ts < s.ticks[REAL_OOO - 1].ts);
	assert_int_equal(s.ticks[REAL_OOO].ts, 866774160001000LL);

	feed_get_status(f, &st);
	assert_string_equal(st.kind, "replay");
	assert_true(st.finished);
	assert_false(st.running);
	assert_int_equal(st.ticks, REAL_TICKS);
	assert_int_equal(st.bad_lines, 0);
	assert_int_equal(st.first_ts, REAL_FIRST);
	assert_int_equal(st.last_ts, REAL_LAST);
	assert_int_equal(st.position_ts, REAL_LAST);
	assert_int_equal(st.passes, 1);
	assert_true(st.speed == 0);
	/* Finished, it stays quiet while the server keeps serving. */
	timing_sleep_us(20000);
	assert_int_equal(sink_drain(&s), 0);
	finish(f, &s);
}

static void
test_pacing_matches_span_over_speed(void **state)
{
	/* 501 ticks 20 ms apart: a 10 s span, played at speed 10 in 1 s as
	 * 500 sleeps of 2 ms. A pacer that slept 2 ms after each tick would
	 * add the cost of every wake-up and run late by far more than 5 %. */
	const char *path =
	        write_series("paced.csv", 501, 1700000000000000LL, 20000);
	char spec[256];
	double took, want = 1.0;
	struct sink s;
	struct feed *f;

	sink_init(&s, 4096);
	snprintf(spec, sizeof spec, "replay:%s,speed=10", path);
	f = start(spec, &s);
	sink_wait_state(&s, f, "finished");
	assert_int_equal(s.n, 501);
	took = (double)(s.at_ns[500] - s.at_ns[0]) / 1e9;
	print_message("span 10 s at speed 10: %.4f s (want %.1f s +- 5%%)\n",
	              took, want);
	assert_true(took >= want * 0.95);
	assert_true(took <= want * 1.05);
	/* Never early: halfway through, half the time has passed (within
	 * the same 5 %: the times are when the test's sink saw each tick,
	 * and the first may be seen late). */
	assert_true((double)(s.at_ns[250] - s.at_ns[0]) / 1e9 >=
	            0.5 * want * 0.95);
	finish(f, &s);
}

static void
test_out_of_order_row_never_sleeps_backwards(void **state)
{
	/* 0, 400, 100 (late), 800 ms. The late row goes out at once after the
	 * 400 ms one, and the 800 ms row is due 800 ms after the start, not
	 * 700 ms after the late row (which would make 1.1 s in all). */
	const char *path =
	        write_file("ooo.jsonl", "{\"ts\":1000000000,\"symbol\":\"O\","
	                                "\"last\":1}\n"
	                                "{\"ts\":1000400000,\"symbol\":\"O\","
	                                "\"last\":2}\n"
	                                "{\"ts\":1000100000,\"symbol\":\"O\","
	                                "\"last\":3}\n"
	                                "{\"ts\":1000800000,\"symbol\":\"O\","
	                                "\"last\":4}\n");
	char spec[256];
	double total, late;
	struct sink s;
	struct feed *f;

	sink_init(&s, 64);
	snprintf(spec, sizeof spec, "replay:%s", path); /* speed 1 */
	f = start(spec, &s);
	sink_wait_state(&s, f, "finished");
	assert_int_equal(s.n, 4);
	/* Applied in arrival order, with the file's own ts. */
	assert_int_equal(s.ticks[2].ts, 1000100000);
	assert_int_equal(s.ticks[2].value[FIELD_LAST].mantissa, 3);
	late = (double)(s.at_ns[2] - s.at_ns[1]) / 1e9;
	total = (double)(s.at_ns[3] - s.at_ns[0]) / 1e9;
	print_message("late row after %.4f s, all in %.4f s (want 0.8 s)\n",
	              late, total);
	assert_true(late < 0.05);
	assert_true(total >= 0.8 * 0.95 && total <= 0.8 * 1.05);
	finish(f, &s);
}

static void
test_loop_stays_monotonic(void **state)
{
	/* Five ticks a second apart: each pass is shifted by the span plus
	 * the mean gap, so pass 2 starts at 6 s. */
	const char *path = write_series("loop.csv", 5, 1000000, 1000000);
	char spec[4200];
	struct feed_status st;
	struct sink s;
	struct feed *f;
	size_t i, pass;

	sink_init(&s, 4096);
	snprintf(spec, sizeof spec, "replay:%s,speed=max,loop", path);
	f = start(spec, &s);
	sink_wait_count(&s, 15);
	for (i = 1; i < 15; i++)
		assert_true(s.ticks[i].ts > s.ticks[i - 1].ts);
	for (i = 0; i < 15; i++) {
		assert_int_equal(s.ticks[i].ts, 1000000 + (int64_t)i * 1000000);
		/* The same values, pass after pass. */
		assert_int_equal(s.ticks[i].value[FIELD_BID].mantissa,
		                 (int64_t)(i % 5) * 10 + 5);
	}
	feed_get_status(f, &st);
	assert_true(st.passes >= 2);
	assert_false(st.finished);
	/* Positions are file times: within the file whatever the pass. */
	assert_true(st.position_ts >= 1000000 && st.position_ts <= 5000000);
	finish(f, &s);

	/* The real file, out-of-order row and all: every tick of a pass is
	 * later than every tick of the pass before. */
	sink_init(&s, 4096);
	snprintf(spec, sizeof spec, "replay:%s,speed=max,loop", real_file());
	f = start(spec, &s);
	sink_wait_count(&s, 3 * REAL_TICKS);
	for (pass = 1; pass < 3; pass++) {
		int64_t prev_max = INT64_MIN, min = INT64_MAX;

		for (i = (pass - 1) * REAL_TICKS; i < pass * REAL_TICKS; i++)
			if (s.ticks[i].ts > prev_max)
				prev_max = s.ticks[i].ts;
		for (i = pass * REAL_TICKS; i < (pass + 1) * REAL_TICKS; i++)
			if (s.ticks[i].ts < min)
				min = s.ticks[i].ts;
		assert_true(min > prev_max);
		/* Same quotes again. */
		assert_int_equal(s.ticks[pass * REAL_TICKS + 7]
		                         .value[FIELD_BID]
		                         .mantissa,
		                 s.ticks[7].value[FIELD_BID].mantissa);
	}
	finish(f, &s);
}

static void
test_bad_lines_are_reported_by_number(void **state)
{
	char *longline = malloc(70001), *text, *log;
	const char *csv, *jsonl;
	char spec[256], want[256];
	struct feed_status st;
	struct sink s;
	struct feed *f;

	csv = write_file("bad.csv", "ts,symbol,bid,ask\n"     /* 1 */
	                            "1000000,AAA,1.5,1.6\n"   /* 2 */
	                            "1000001,AAA,1x5,1.6\n"   /* 3 bad */
	                            "1000002,AAA,1.51,1.61\n" /* 4 */
	                            "1000003,AAA\n"           /* 5 bad */
	                            "\n"                      /* 6 blank */
	                            "1000004,A A,1.5,1.6\n"   /* 7 bad */
	                            "1000005,AAA,1.52,1.62"); /* 8, no \n */
	capture_log();
	sink_init(&s, 64);
	snprintf(spec, sizeof spec, "replay:%s,speed=max", csv);
	f = start(spec, &s);
	sink_wait_state(&s, f, "finished");
	feed_get_status(f, &st);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.ticks[2].value[FIELD_BID].mantissa, 152);
	finish(f, &s);
	log = captured_log();

	assert_int_equal(st.ticks, 3);
	assert_int_equal(st.bad_lines, 3);
	snprintf(want, sizeof want, "replay %s line 3: field 'bid'", csv);
	assert_logged(log, want);
	snprintf(want, sizeof want, "replay %s line 5: ", csv);
	assert_logged(log, want);
	snprintf(want, sizeof want, "replay %s line 7: ", csv);
	assert_logged(log, want);
	snprintf(want, sizeof want, "replay %s line 4:", csv);
	assert_null(strstr(log, want));
	snprintf(want, sizeof want,
	         "replay %s: 8 lines, 3 ticks, 3 bad lines, took ", csv);
	assert_logged(log, want);
	free(log);

	/* JSONL with a line over the 64 KiB limit and a typo in a field. */
	assert_non_null(longline);
	memset(longline, 'x', 70000);
	longline[70000] = '\0';
	text = malloc(71000);
	assert_non_null(text);
	snprintf(text, 71000,
	         "{\"ts\":1,\"symbol\":\"J\",\"bid\":1}\n"
	         "{\"ts\":2,\"symbol\":\"J\",\"bdi\":1}\n"
	         "{\"ts\":3,\"symbol\":\"J\",\"note\":\"%s\"}\n"
	         "{\"ts\":4,\"symbol\":\"J\",\"bid\":2}\n",
	         longline);
	jsonl = write_file("bad.jsonl", text);
	capture_log();
	sink_init(&s, 64);
	snprintf(spec, sizeof spec, "replay:%s,speed=max", jsonl);
	f = start(spec, &s);
	sink_wait_state(&s, f, "finished");
	feed_get_status(f, &st);
	finish(f, &s);
	log = captured_log();
	assert_int_equal(st.ticks, 2);
	assert_int_equal(st.bad_lines, 2);
	snprintf(want, sizeof want, "replay %s line 2: ", jsonl);
	assert_logged(log, want);
	snprintf(want, sizeof want,
	         "replay %s line 3: line is longer than 65536 bytes", jsonl);
	assert_logged(log, want);
	snprintf(want, sizeof want, "replay %s: 4 lines, 2 ticks, 2 bad lines",
	         jsonl);
	assert_logged(log, want);
	free(log);
	free(text);
	free(longline);
}

static void
test_pause_resume_and_speed(void **state)
{
	/* 200 ticks 10 ms apart at speed 1: 2 s if left alone. */
	const char *path = write_series("pause.csv", 200, 2000000000, 10000);
	char spec[256];
	struct feed_status st;
	struct sink s;
	struct feed *f;
	size_t held;

	sink_init(&s, 4096);
	snprintf(spec, sizeof spec, "replay:%s", path);
	f = start(spec, &s);
	sink_wait_count(&s, 20);
	control(f, FEED_CMD_PAUSE, 0, 0);
	feed_get_status(f, &st);
	assert_true(st.paused);
	assert_string_equal(st.replay_state, "paused");
	/* A tick that was already due may still land; then nothing. */
	timing_sleep_us(50000);
	sink_drain(&s);
	held = s.n;
	timing_sleep_us(300000);
	assert_int_equal(sink_drain(&s), 0);
	feed_get_status(f, &st);
	assert_int_equal(st.position_ts, s.ticks[held - 1].ts);
	assert_true(held < 200);

	/* Resume: the replay carries on where it stood, at speed 1 (not in a
	 * burst making up for the pause). */
	control(f, FEED_CMD_RESUME, 0, 0);
	assert_string_equal((feed_get_status(f, &st), st.replay_state),
	                    "playing");
	sink_wait_count(&s, held + 5);
	assert_true(s.n < 200);

	/* Speed max: the rest at once. (How fast is not asserted: a loaded
	 * machine may take its time; the state and speed are what count.) */
	control(f, FEED_CMD_SPEED, 0, 0);
	sink_wait_state(&s, f, "finished");
	assert_int_equal(s.n, 200);
	feed_get_status(f, &st);
	assert_true(st.speed == 0);
	finish(f, &s);
}

static void
test_speed_change_keeps_the_file_clock(void **state)
{
	/* 21 ticks 100 ms apart (2 s). At speed 1 for a while, then 20:
	 * the rest (at most 2 s of file time) takes at most 0.1 s. */
	const char *path = write_series("speed.csv", 21, 3000000000, 100000);
	char spec[256];
	struct sink s;
	struct feed *f;
	int64_t t0;

	sink_init(&s, 4096);
	snprintf(spec, sizeof spec, "replay:%s,speed=1", path);
	f = start(spec, &s);
	sink_wait_count(&s, 2);
	control(f, FEED_CMD_SPEED, 20, 0);
	t0 = clock_mono_ns();
	sink_wait_state(&s, f, "finished");
	assert_int_equal(s.n, 21);
	/* 1.9 s of file time left at most: 95 ms at speed 20, against 1.9 s
	 * had the speed not changed (the bound is loose for loaded machines).
	 * Not instantaneous either: the gaps are still kept. */
	assert_true(clock_mono_ns() - t0 < 1500000000LL);
	assert_true(s.at_ns[20] - s.at_ns[3] >= 17 * 5000000LL * 95 / 100);
	finish(f, &s);
}

static void
test_seek_forward_back_and_after_the_end(void **state)
{
	/* 1000 ticks a second apart at speed 1: 16 minutes if left alone. */
	const int64_t base = 1600000000000000LL, step = 1000000;
	const char *path = write_series("seek.csv", 1000, base, step);
	char spec[256];
	struct feed_status st;
	struct sink s;
	struct feed *f;
	size_t i, mark;

	sink_init(&s, 1 << 12);
	snprintf(spec, sizeof spec, "replay:%s", path);
	f = start(spec, &s);
	sink_wait_count(&s, 1);
	feed_get_status(f, &st);
	/* The whole span is known from the start. */
	assert_int_equal(st.first_ts, base);
	assert_int_equal(st.last_ts, base + 999 * step);

	/* Forward: everything up to the target arrives, nothing skipped,
	 * then the replay plays on from there. */
	control(f, FEED_CMD_SEEK, 0, base + 900 * step);
	sink_wait_count(&s, 901);
	sink_wait_state(&s, f, "playing");
	for (i = 0; i < 901; i++)
		assert_int_equal(s.ticks[i].ts, base + (int64_t)i * step);
	feed_get_status(f, &st);
	assert_true(st.position_ts >= base + 900 * step);
	assert_true(s.n <= 903);

	/* Backward while paused: read again from the top, stand at the
	 * target, still paused. */
	control(f, FEED_CMD_PAUSE, 0, 0);
	sink_wait_state(&s, f, "paused");
	mark = s.n;
	control(f, FEED_CMD_SEEK, 0, base + 10 * step);
	sink_wait_state(&s, f, "paused");
	assert_int_equal(s.n - mark, 10);
	for (i = 0; i < 10; i++)
		assert_int_equal(s.ticks[mark + i].ts,
		                 base + (int64_t)i * step);
	feed_get_status(f, &st);
	assert_int_equal(st.position_ts, base + 10 * step);
	timing_sleep_us(100000);
	assert_int_equal(sink_drain(&s), 0);

	/* Past the end: the rest at once, then finished. */
	control(f, FEED_CMD_SEEK, 0, base + 5000 * step);
	sink_wait_state(&s, f, "finished");
	assert_int_equal(s.n - mark, 1000);
	assert_int_equal(s.ticks[s.n - 1].ts, base + 999 * step);

	/* A finished replay plays again from a seek before its end. */
	mark = s.n;
	control(f, FEED_CMD_SEEK, 0, base + 500 * step);
	sink_wait_state(&s, f, "paused");
	assert_int_equal(s.n - mark, 500);
	feed_get_status(f, &st);
	assert_false(st.finished);
	assert_true(st.running);
	/* A seek to where it already is does nothing. */
	control(f, FEED_CMD_SEEK, 0, base + 500 * step);
	sink_wait_state(&s, f, "paused");
	assert_int_equal(s.n - mark, 500);
	finish(f, &s);
}

static void
test_stop_is_prompt_in_a_long_gap(void **state)
{
	/* An hour between two ticks at speed 1. */
	const char *path = write_series("gap.csv", 2, 0, 3600000000LL);
	char spec[256];
	struct sink s;
	struct feed *f;
	int64_t t0;

	sink_init(&s, 64);
	snprintf(spec, sizeof spec, "replay:%s", path);
	f = start(spec, &s);
	sink_wait_count(&s, 1);
	t0 = clock_mono_ns();
	feed_stop(f);
	/* Waiting for the hour-long gap would take an hour; the bound is
	 * loose for loaded machines. */
	assert_true(clock_mono_ns() - t0 < 1000000000LL);
	assert_int_equal(sink_drain(&s), 0);
	finish(f, &s);
}

static void
test_missing_file_fails_at_start(void **state)
{
	struct tick_queue *q = tick_queue_create(16, NULL, NULL);
	char err[512] = "", spec[256];
	struct feed *f;
	int p[2];

	f = feed_create("replay:/nonexistent/x.csv", q, err, sizeof err);
	assert_non_null(f);
	assert_int_equal(feed_start(f, err, sizeof err), -1);
	assert_string_equal(err, "cannot open '/nonexistent/x.csv': No such "
	                         "file or directory");
	feed_destroy(f);

	snprintf(spec, sizeof spec, "replay:%s", tmpdir);
	f = feed_create(spec, q, err, sizeof err);
	assert_non_null(f);
	assert_int_equal(feed_start(f, err, sizeof err), -1);
	assert_non_null(strstr(err, "Is a directory"));
	feed_destroy(f);

	/* A pipe can be replayed once, but not looped over. */
	assert_int_equal(pipe(p), 0);
	snprintf(spec, sizeof spec, "replay:/proc/self/fd/%d,loop", p[0]);
	f = feed_create(spec, q, err, sizeof err);
	assert_non_null(f);
	assert_int_equal(feed_start(f, err, sizeof err), -1);
	assert_non_null(strstr(err, "cannot loop over"));
	assert_non_null(strstr(err, "not a regular file"));
	feed_destroy(f);
	close(p[0]);
	close(p[1]);
	tick_queue_destroy(q);
}

static void
test_pipe_replays_once(void **state)
{
	static const char text[] = "{\"ts\":5,\"symbol\":\"P\",\"bid\":1}\n"
	                           "{\"ts\":6,\"symbol\":\"P\",\"bid\":2}\n";
	struct feed_command back = {.kind = FEED_CMD_SEEK, .ts = 1};
	char spec[64], err[256] = "";
	struct feed_status st;
	struct sink s;
	struct feed *f;
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], text, sizeof text - 1),
	                 (ssize_t)sizeof text - 1);
	sink_init(&s, 64);
	/* Opening a pipe by name waits for a writer: close ours only once
	 * the feed has it open. */
	snprintf(spec, sizeof spec, "replay:/proc/self/fd/%d,speed=max", p[0]);
	f = start(spec, &s);
	close(p[1]);
	sink_wait_state(&s, f, "finished");
	assert_int_equal(s.n, 2);
	feed_get_status(f, &st);
	assert_int_equal(st.last_ts, 6);
	/* Going back would need reading it twice. */
	assert_int_equal(feed_control(f, &back, err, sizeof err), -1);
	assert_non_null(strstr(err, "cannot seek back"));
	finish(f, &s);
	close(p[0]);
}

/* ------------------------------------------------------- seeking back */

/* What a consumer was asked to undo, and when: `at` ticks had been pushed
 * then (the feed's own count, read in the hook, on the feed's thread). */
struct undo_event {
	uint64_t at;
	int64_t ts;
	enum feed_rewind_result answer;
	size_t n;
	struct feed_rewind_symbol sym[4];
};

struct undo_log {
	struct feed *f;
	enum feed_rewind_result answer;
	int calls; /* read by the test's thread with __atomic */
	struct undo_event ev[16];
};

static enum feed_rewind_result
log_rewind(const struct feed_rewind *rw, void *ctx)
{
	struct undo_log *u = ctx;
	struct undo_event *e = &u->ev[u->calls];
	struct feed_status st;

	assert_true(u->calls < 16);
	assert_true(rw->count > 0 && rw->count <= 4);
	feed_get_status(u->f, &st);
	e->at = st.ticks;
	e->ts = rw->ts;
	e->answer = u->answer;
	e->n = rw->count;
	memcpy(e->sym, rw->symbols, rw->count * sizeof *rw->symbols);
	__atomic_add_fetch(&u->calls, 1, __ATOMIC_RELEASE);
	return u->answer;
}

static struct feed *
start_undoing(const char *spec, struct sink *s, struct undo_log *u)
{
	char err[512] = "";
	struct feed *f = feed_create(spec, s->q, err, sizeof err);

	if (!f)
		fail_msg("'%s' refused: %s", spec, err);
	u->f = f;
	feed_set_rewind(f, log_rewind, u);
	if (feed_start(f, err, sizeof err) != 0)
		fail_msg("'%s' did not start: %s", spec, err);
	return f;
}

/* What a consumer that undoes as asked holds: the ticks received, less,
 * at each undo, the last ticks of each symbol it names (all of them for
 * an answer of CLEARED). Returns how many; out has room for s->n. */
static size_t
consumer_view(const struct sink *s, const struct undo_log *u, struct tick *out)
{
	int calls = __atomic_load_n(&u->calls, __ATOMIC_ACQUIRE), e = 0;
	size_t n = 0, i;

	for (i = 0; i <= s->n; i++) {
		for (; e < calls && u->ev[e].at == i; e++) {
			const struct undo_event *ev = &u->ev[e];
			size_t k;

			if (ev->answer == FEED_REWIND_CLEARED)
				n = 0;
			if (ev->answer != FEED_REWIND_UNDONE)
				continue;
			for (k = 0; k < ev->n; k++) {
				uint64_t left = ev->sym[k].ticks;
				size_t j = n, w;

				while (left && j > 0)
					if (!strcmp(out[--j].symbol,
					            ev->sym[k].symbol))
						left--;
				assert_int_equal(left, 0);
				/* Drop that symbol's ticks from j on. */
				for (w = j; j < n; j++)
					if (strcmp(out[j].symbol,
					           ev->sym[k].symbol))
						out[w++] = out[j];
				n = w;
			}
		}
		if (i < s->n)
			out[n++] = s->ticks[i];
	}
	assert_int_equal(e, calls);
	return n;
}

/* The rows of the file the seek tests replay: two symbols a second
 * apart, one row written twice, one late (before the row above it), one
 * bad line. */
#define SEEK_ROWS 300
#define SEEK_BASE 1600000000000000LL
#define SEEK_DUP  100 /* written twice */
#define SEEK_LATE 150 /* 10.5 s before its place */
#define SEEK_BAD  120 /* a bad line after this row */

struct row {
	int64_t ts;
	char symbol[8];
	int64_t bid; /* hundredths */
};

static struct row seek_rows[SEEK_ROWS + 1];

/* Writes the file; returns its path. seek_rows gets its good rows, in
 * file order (SEEK_ROWS + 1 of them, with the twice-written row). */
static const char *
write_seek_file(const char *name)
{
	size_t cap = 64 + (SEEK_ROWS + 2) * 64, len = 0, k = 0;
	char *text = malloc(cap);
	const char *path;
	int i, rep;

	assert_non_null(text);
	len += (size_t)snprintf(text + len, cap - len, "ts,symbol,bid\n");
	for (i = 0; i < SEEK_ROWS; i++) {
		for (rep = 0; rep < (i == SEEK_DUP ? 2 : 1); rep++) {
			struct row *r = &seek_rows[k++];

			r->ts = SEEK_BASE + (int64_t)i * 1000000;
			if (i == SEEK_LATE)
				r->ts -= 10500000;
			snprintf(r->symbol, sizeof r->symbol, "%s",
			         i % 3 ? "AA" : "B.B");
			r->bid = 10000 + i;
			len += (size_t)snprintf(text + len, cap - len,
			                        "%lld,%s,%lld.%02lld\n",
			                        (long long)r->ts, r->symbol,
			                        (long long)(r->bid / 100),
			                        (long long)(r->bid % 100));
		}
		if (i == SEEK_BAD)
			len += (size_t)snprintf(text + len, cap - len,
			                        "%lld,AA,1.x\n",
			                        (long long)SEEK_BASE);
	}
	path = write_file(name, text);
	free(text);
	return path;
}

/* The first row (file order) at or after ts: where a seek to ts stands. */
static size_t
seek_cut(int64_t ts)
{
	size_t i;

	for (i = 0; i <= SEEK_ROWS && seek_rows[i].ts < ts; i++)
		;
	return i;
}

/* view[0..n) is the file's rows from `from` on, shifted by shift. */
static void
assert_rows(const struct tick *view, size_t n, size_t from, int64_t shift)
{
	size_t i;

	assert_int_equal(n, SEEK_ROWS + 1 - from);
	for (i = 0; i < n; i++) {
		const struct row *r = &seek_rows[from + i];

		assert_int_equal(view[i].ts, r->ts + shift);
		assert_string_equal(view[i].symbol, r->symbol);
		assert_int_equal(view[i].value[FIELD_BID].mantissa, r->bid);
	}
}

static void
wait_calls(struct undo_log *u, struct sink *s, struct feed *f, int calls,
           const char *state)
{
	int64_t give_up = clock_mono_ns() + DEADLINE_MS * 1000000LL;

	while (__atomic_load_n(&u->calls, __ATOMIC_ACQUIRE) < calls &&
	       clock_mono_ns() < give_up) {
		sink_drain(s);
		timing_sleep_us(200);
	}
	assert_int_equal(__atomic_load_n(&u->calls, __ATOMIC_ACQUIRE), calls);
	sink_wait_state(s, f, state);
}

/*
 * Forward seeks push every tick they pass over, at once, and never ask to
 * undo; backward seeks ask to undo exactly the ticks sent from the cut on
 * (a place in the file: a late row after it is undone too, a row written
 * twice is undone twice) and play on from the cut, standing at the target;
 * and from finished too. Whatever the sequence, what the consumer holds
 * at the end is the file, each row once.
 */
static void
test_seek_back_undoes_from_the_cut(void **state)
{
	const char *path = write_seek_file("seek-back.csv");
	struct undo_log u = {.answer = FEED_REWIND_UNDONE};
	static struct tick view[4 * SEEK_ROWS];
	struct feed_status st;
	char spec[256];
	struct sink s;
	struct feed *f;
	size_t n;
	int64_t t0;

	sink_init(&s, 64);
	/* At speed 1 the file takes five minutes: only seeks move it. */
	snprintf(spec, sizeof spec, "replay:%s", path);
	f = start_undoing(spec, &s, &u);
	control(f, FEED_CMD_PAUSE, 0, 0);
	sink_wait_state(&s, f, "paused");

	/* Forward, paused: everything before row 200 at once. */
	t0 = clock_mono_ns();
	control(f, FEED_CMD_SEEK, 0, seek_rows[201].ts);
	sink_wait_count(&s, 201);
	sink_wait_state(&s, f, "paused");
	assert_true(clock_mono_ns() - t0 < 2000000000LL);
	assert_int_equal(s.n, 201);
	assert_int_equal(__atomic_load_n(&u.calls, __ATOMIC_ACQUIRE), 0);

	/* Back before the twice-written row and the late one. */
	control(f, FEED_CMD_SEEK, 0, seek_rows[90].ts);
	wait_calls(&u, &s, f, 1, "paused");
	assert_int_equal(u.ev[0].at, 201);
	assert_int_equal(u.ev[0].ts, seek_rows[90].ts);
	feed_get_status(f, &st);
	assert_int_equal(st.position_ts, seek_rows[90].ts);
	n = consumer_view(&s, &u, view);
	assert_int_equal(n, 90);
	timing_sleep_us(50000);
	assert_int_equal(sink_drain(&s), 0); /* paused at the target */

	/* Forward over them, then back to just after the late row's time:
	 * the cut is the first row at or after it, before the late row in
	 * the file, so the late row is undone too. */
	control(f, FEED_CMD_SEEK, 0, seek_rows[170].ts);
	sink_wait_state(&s, f, "paused");
	control(f, FEED_CMD_SEEK, 0, seek_rows[SEEK_LATE + 1].ts + 1);
	wait_calls(&u, &s, f, 2, "paused");
	assert_int_equal(consumer_view(&s, &u, view),
	                 seek_cut(seek_rows[SEEK_LATE + 1].ts + 1));
	assert_true(seek_cut(seek_rows[SEEK_LATE + 1].ts + 1) < SEEK_LATE + 1);

	/* To the end at max speed, then back from finished, and to the end
	 * again. */
	control(f, FEED_CMD_SPEED, 0, 0);
	control(f, FEED_CMD_RESUME, 0, 0);
	sink_wait_state(&s, f, "finished");
	n = consumer_view(&s, &u, view);
	assert_rows(view, n, 0, 0);
	control(f, FEED_CMD_SEEK, 0, seek_rows[250].ts);
	wait_calls(&u, &s, f, 3, "finished");
	assert_int_equal(u.ev[2].n, 2);
	assert_int_equal(u.ev[2].sym[0].ticks + u.ev[2].sym[1].ticks,
	                 SEEK_ROWS + 1 - seek_cut(seek_rows[250].ts));
	n = consumer_view(&s, &u, view);
	assert_rows(view, n, 0, 0);
	feed_get_status(f, &st);
	assert_int_equal(st.passes, 2);
	assert_int_equal(st.bad_lines, 1); /* counted once, however read */
	finish(f, &s);
}

/*
 * A consumer that cannot undo: one that refuses leaves the replay where it
 * was (nothing pushed again, nothing skipped); one that has forgotten
 * everything gets the pass again from its top, up to the target.
 */
static void
test_seek_back_refused_or_cleared(void **state)
{
	const char *path = write_seek_file("seek-refused.csv");
	struct undo_log u = {.answer = FEED_REWIND_REFUSED};
	static struct tick view[4 * SEEK_ROWS];
	struct feed_status st;
	char spec[256];
	struct sink s;
	struct feed *f;
	size_t n;

	sink_init(&s, 64);
	snprintf(spec, sizeof spec, "replay:%s", path);
	f = start_undoing(spec, &s, &u);
	control(f, FEED_CMD_PAUSE, 0, 0);
	control(f, FEED_CMD_SEEK, 0, seek_rows[60].ts);
	sink_wait_count(&s, 60);
	sink_wait_state(&s, f, "paused");
	control(f, FEED_CMD_SEEK, 0, seek_rows[20].ts);
	wait_calls(&u, &s, f, 1, "paused");
	feed_get_status(f, &st);
	assert_int_equal(st.position_ts, seek_rows[60].ts);
	assert_int_equal(s.n, 60);

	__atomic_store_n(&u.answer, FEED_REWIND_CLEARED, __ATOMIC_RELAXED);
	control(f, FEED_CMD_SEEK, 0, seek_rows[20].ts);
	wait_calls(&u, &s, f, 2, "paused");
	sink_wait_count(&s, 80);
	assert_int_equal(s.ticks[60].ts, seek_rows[0].ts);
	control(f, FEED_CMD_SPEED, 0, 0);
	control(f, FEED_CMD_RESUME, 0, 0);
	sink_wait_state(&s, f, "finished");
	n = consumer_view(&s, &u, view);
	assert_rows(view, n, 0, 0);
	finish(f, &s);
}

/*
 * With loop, a seek back rewinds the pass under way and keeps its shift:
 * the passes before it stay as they were, and every pass the consumer
 * ends up with is the file once, shifted.
 */
static void
test_loop_seek_back_keeps_the_pass(void **state)
{
	const char *path = write_seek_file("seek-loop.csv");
	struct undo_log u = {.answer = FEED_REWIND_UNDONE};
	static struct tick view[64 * SEEK_ROWS];
	struct feed_status st;
	char spec[256];
	struct sink s;
	struct feed *f;
	size_t n, i, pass;

	sink_init(&s, 64);
	snprintf(spec, sizeof spec, "replay:%s,speed=max,loop", path);
	f = start_undoing(spec, &s, &u);
	sink_wait_count(&s, 2 * (SEEK_ROWS + 1) + 30);
	control(f, FEED_CMD_PAUSE, 0, 0);
	sink_wait_state(&s, f, "paused");
	/* "paused" shows at once; the thread stops at its next tick, after
	 * the batch it may be pushing. */
	do
		timing_sleep_us(50000);
	while (sink_drain(&s));
	feed_get_status(f, &st);
	assert_true(st.passes >= 2);
	if (st.position_ts <= seek_rows[40].ts) {
		control(f, FEED_CMD_SEEK, 0, seek_rows[200].ts);
		sink_wait_state(&s, f, "paused");
	}
	control(f, FEED_CMD_SEEK, 0, seek_rows[40].ts);
	wait_calls(&u, &s, f, 1, "paused");
	feed_get_status(f, &st);
	assert_int_equal(u.ev[0].ts, seek_rows[40].ts + st.shift);
	assert_true(st.shift > 0);
	n = consumer_view(&s, &u, view);
	assert_int_equal(n % (SEEK_ROWS + 1), 40);
	assert_int_equal(view[n - 1].ts, seek_rows[39].ts + st.shift);

	/* Played on: whole passes, each the file shifted. */
	control(f, FEED_CMD_RESUME, 0, 0);
	sink_wait_count(&s, s.n + 2 * (SEEK_ROWS + 1));
	control(f, FEED_CMD_PAUSE, 0, 0);
	sink_wait_state(&s, f, "paused");
	n = consumer_view(&s, &u, view);
	for (pass = 0; pass * (SEEK_ROWS + 1) < n; pass++) {
		size_t from = pass * (SEEK_ROWS + 1);
		size_t len =
		        n - from < SEEK_ROWS + 1 ? n - from : SEEK_ROWS + 1;
		int64_t shift = view[from].ts - seek_rows[0].ts;

		if (pass)
			assert_true(view[from].ts > view[from - 1].ts);
		for (i = 0; i < len; i++) {
			assert_int_equal(view[from + i].ts,
			                 seek_rows[i].ts + shift);
			assert_int_equal(
			        view[from + i].value[FIELD_BID].mantissa,
			        seek_rows[i].bid);
		}
	}
	finish(f, &s);
}

static int
setup(void **state)
{
	if (tmpdir_make(tmpdir, sizeof tmpdir, "test_feed_replay") != 0)
		return -1;
	/* Summaries and bad lines are logged at info and warn. */
	log_set_level(LOG_INFO);
	return 0;
}

static int
teardown(void **state)
{
	return tmpdir_remove(tmpdir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_real_file_at_max_ends_in_its_last_quote),
	        cmocka_unit_test(test_pacing_matches_span_over_speed),
	        cmocka_unit_test(test_out_of_order_row_never_sleeps_backwards),
	        cmocka_unit_test(test_loop_stays_monotonic),
	        cmocka_unit_test(test_bad_lines_are_reported_by_number),
	        cmocka_unit_test(test_pause_resume_and_speed),
	        cmocka_unit_test(test_speed_change_keeps_the_file_clock),
	        cmocka_unit_test(test_seek_forward_back_and_after_the_end),
	        cmocka_unit_test(test_stop_is_prompt_in_a_long_gap),
	        cmocka_unit_test(test_missing_file_fails_at_start),
	        cmocka_unit_test(test_pipe_replays_once),
	        cmocka_unit_test(test_seek_back_undoes_from_the_cut),
	        cmocka_unit_test(test_seek_back_refused_or_cleared),
	        cmocka_unit_test(test_loop_seek_back_keeps_the_pass),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

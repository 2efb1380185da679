/*
 * Unit tests for publisher/session.c: the protocol's ops without a socket.
 * A real pipeline and engine on a libuv loop (no feed: ticks are applied
 * to the engine directly), and a transport that records what the session
 * asks of it. Each test reads the session's outputs as a transport would
 * and checks them as a client would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "clock.h"
#include "decimal.h"
#include "engine.h"
#include "log.h"
#include "pipeline.h"
#include "session.h"
#include "tick.h"

#define HEADROOM 16

/* What the session asked of its transport. */
struct fake_conn {
	int want_write;
	int64_t wake_at;
	int wakes_asked;
};

static void
fake_want_write(void *conn)
{
	((struct fake_conn *)conn)->want_write++;
}

static void
fake_wake_at(void *conn, int64_t due)
{
	((struct fake_conn *)conn)->wake_at = due;
	((struct fake_conn *)conn)->wakes_asked++;
}

static const struct session_transport fake = {fake_want_write, fake_wake_at};

struct fixture {
	uv_loop_t loop;
	struct pipeline *p;
	struct session_hub *hub;
};

static void
ready_noop(void *user, void *ctx)
{
	session_updates_ready(user, ctx);
}

/* With bounds on symbols with no data (0: none): per session, in all. */
static struct fixture *
fixture_new_bounded(bool auth, double ops_per_sec, double ops_burst,
                    size_t max_pending, size_t max_pending_total)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct pipeline_options po;
	struct pipeline_hooks hooks;
	struct session_hub_config hc;
	char err[256];

	assert_non_null(f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	memset(&po, 0, sizeof po);
	po.loop = &f->loop;
	po.queue_capacity = 1024;
	po.epoch = "e1";
	po.frame_headroom = HEADROOM;
	f->p = pipeline_create(&po, err, sizeof err);
	assert_non_null(f->p);
	memset(&hooks, 0, sizeof hooks);
	hooks.client_ready = ready_noop;
	pipeline_set_hooks(f->p, &hooks);
	memset(&hc, 0, sizeof hc);
	hc.pipeline = f->p;
	hc.server_name = "publisher test";
	hc.auth = auth;
	hc.headroom = HEADROOM;
	hc.heartbeat_ms = 5000;
	hc.max_symbols = 3;
	hc.max_pending_symbols = max_pending;
	hc.max_pending_symbols_total = max_pending_total;
	hc.ops_per_sec = ops_per_sec;
	hc.ops_burst = ops_burst;
	f->hub = session_hub_create(&hc);
	assert_non_null(f->hub);
	return f;
}

static struct fixture *
fixture_new(bool auth, double ops_per_sec, double ops_burst)
{
	return fixture_new_bounded(auth, ops_per_sec, ops_burst, 0, 0);
}

static void
fixture_free(struct fixture *f)
{
	session_hub_destroy(f->hub);
	pipeline_destroy(f->p);
	uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
}

static struct session *
open_session(struct fixture *f, struct fake_conn *c, const char *pattern)
{
	struct auth_claims claims;

	memset(&claims, 0, sizeof claims);
	if (pattern) {
		claims.patterns = calloc(1, sizeof *claims.patterns);
		snprintf(claims.patterns[0], sizeof claims.patterns[0], "%s",
		         pattern);
		claims.pattern_count = 1;
		snprintf(claims.sub, sizeof claims.sub, "tester");
	} else {
		claims.allow_all = true;
	}
	return session_open(f->hub, &fake, c, 7, "127.0.0.1", &claims);
}

static void
apply(struct fixture *f, const char *symbol, const char *bid)
{
	struct tick t;

	memset(&t, 0, sizeof t);
	snprintf(t.symbol, sizeof t.symbol, "%s", symbol);
	t.ts = clock_wall_us();
	assert_int_equal(decimal_parse(bid, strlen(bid), &t.value[FIELD_BID]),
	                 0);
	t.present = 1u << FIELD_BID;
	assert_true(engine_apply_tick(pipeline_engine(f->p), &t) > 0);
	engine_flush(pipeline_engine(f->p));
}

static void
send_text(struct session *s, const char *text)
{
	session_receive(s, text, strlen(text), false);
}

/* The next output as JSON (a message, or an update frame); NULL when there
 * is none. kind gets what it was. */
static json_t *
next_json(struct session *s, enum session_output_kind *kind)
{
	struct session_output out;
	json_error_t e;
	json_t *j;

	if (!session_take_output(s, clock_wall_us(), &out)) {
		*kind = SESSION_OUT_NONE;
		return NULL;
	}
	*kind = out.kind;
	if (out.kind == SESSION_OUT_CLOSE)
		return json_pack("{s:i}", "close", out.close_status);
	j = json_loadb(out.data, out.len, 0, &e);
	assert_non_null(j);
	return j;
}

static const char *
type_of(json_t *j)
{
	json_t *first = json_is_array(j) ? json_array_get(j, 0) : j;

	return json_string_value(json_object_get(first, "type"));
}

static void
expect_type(struct session *s, const char *type)
{
	enum session_output_kind kind;
	json_t *j = next_json(s, &kind);

	assert_non_null(j);
	assert_string_equal(type_of(j), type);
	json_decref(j);
}

static void
expect_error(struct session *s, const char *code)
{
	enum session_output_kind kind;
	json_t *j = next_json(s, &kind);

	assert_non_null(j);
	assert_string_equal(type_of(j), "error");
	assert_string_equal(json_string_value(json_object_get(j, "code")),
	                    code);
	/* Every error says what was wrong, in words. */
	assert_true(strlen(json_string_value(json_object_get(j, "message"))) >
	            10);
	json_decref(j);
}

/* ---------------------------------------------------------------- tests */

static void
test_hello_then_subscribed_before_the_snapshots(void **state)
{
	struct fixture *f = fixture_new(false, 100, 200);
	struct fake_conn c = {0};
	struct session *s = open_session(f, &c, NULL);
	enum session_output_kind kind;
	json_t *j;

	(void)state;
	apply(f, "AAPL", "189.5");
	assert_true(c.want_write > 0);
	j = next_json(s, &kind);
	assert_int_equal(kind, SESSION_OUT_MESSAGE);
	assert_string_equal(type_of(j), "hello");
	assert_string_equal(json_string_value(json_object_get(j, "epoch")),
	                    "e1");
	json_decref(j);
	send_text(s, "{\"op\":\"subscribe\",\"symbols\":[\"AAPL\"],\"id\":1}");
	expect_type(s, "subscribed");
	j = next_json(s, &kind);
	assert_int_equal(kind, SESSION_OUT_UPDATES);
	assert_string_equal(type_of(j), "snapshot");
	json_decref(j);
	/* A tick later: a delta. */
	apply(f, "AAPL", "189.6");
	j = next_json(s, &kind);
	assert_int_equal(kind, SESSION_OUT_UPDATES);
	assert_string_equal(type_of(j), "delta");
	json_decref(j);
	assert_null(next_json(s, &kind));
	session_close(s);
	fixture_free(f);
}

static void
test_bad_input_gets_an_error_and_the_session_goes_on(void **state)
{
	struct fixture *f = fixture_new(false, 100, 200);
	struct fake_conn c = {0};
	struct session *s = open_session(f, &c, NULL);

	(void)state;
	expect_type(s, "hello");
	send_text(s, "{not json");
	expect_error(s, "bad_json");
	send_text(s, "{\"op\":\"dance\",\"id\":2}");
	expect_error(s, "unknown_op");
	session_receive(s, "\x01\x02", 2, true);
	expect_error(s, "bad_request");
	send_text(
	        s,
	        "{\"op\":\"subscribe\",\"symbols\":[\"A\",\"B\",\"C\",\"D\"]}");
	expect_error(s, "too_many_symbols");
	send_text(s, "{\"op\":\"history\",\"symbol\":\"A\",\"id\":3}");
	expect_error(s, "unavailable"); /* no store */
	send_text(s, "{\"op\":\"replay\",\"action\":\"pause\",\"id\":4}");
	expect_error(s, "bad_request"); /* no replay feed */
	send_text(s, "{\"op\":\"ping\",\"id\":5}");
	expect_type(s, "pong");
	session_close(s);
	fixture_free(f);
}

/* The next output is error too_many_symbols naming the bound `name`
 * (between parentheses, as the settings are named), and saying that
 * nothing was subscribed. */
static void
expect_too_many(struct session *s, const char *name)
{
	enum session_output_kind kind;
	json_t *j = next_json(s, &kind);
	const char *msg;
	char want[64];

	assert_non_null(j);
	assert_string_equal(type_of(j), "error");
	assert_string_equal(json_string_value(json_object_get(j, "code")),
	                    "too_many_symbols");
	msg = json_string_value(json_object_get(j, "message"));
	snprintf(want, sizeof want, "(%s)", name);
	assert_non_null(strstr(msg, want));
	assert_non_null(strstr(msg, "nothing was subscribed"));
	json_decref(j);
}

/*
 * Names with no data (placeholders) are bounded per session and in all,
 * and a subscribe over a bound is refused whole. Symbols with data never
 * count; a placeholder another session holds is no new one; placeholders
 * go with their last subscriber.
 */
static void
test_names_with_no_data_are_bounded_per_session_and_in_all(void **state)
{
	struct fixture *f = fixture_new_bounded(false, 100, 200, 2, 3);
	struct engine *e = pipeline_engine(f->p);
	struct fake_conn ca = {0}, cb = {0};
	struct session *a = open_session(f, &ca, NULL);
	struct session *b = open_session(f, &cb, NULL);
	struct session_hub_stats st;
	enum session_output_kind kind;
	json_t *j;

	(void)state;
	apply(f, "AAPL", "189.5");
	expect_type(a, "hello");
	expect_type(b, "hello");
	send_text(a, "{\"op\":\"subscribe\",\"symbols\":[\"X1\",\"X2\","
	             "\"X3\"]}");
	expect_too_many(a, "max-pending-symbols");
	assert_false(
	        engine_client_is_subscribed(session_engine_client(a), "X1"));
	assert_int_equal(engine_pending_count(e), 0);
	send_text(a, "{\"op\":\"subscribe\",\"symbols\":[\"X1\",\"X2\"]}");
	expect_type(a, "subscribed");
	send_text(a, "{\"op\":\"subscribe\",\"symbols\":[\"AAPL\"]}");
	expect_type(a, "subscribed");
	j = next_json(a, &kind);
	assert_int_equal(kind, SESSION_OUT_UPDATES);
	json_decref(j);
	assert_int_equal(engine_pending_count(e), 2);

	/* Two new ones would make 4 in all. */
	send_text(b, "{\"op\":\"subscribe\",\"symbols\":[\"Y1\",\"Y2\"]}");
	expect_too_many(b, "max-pending-symbols-total");
	/* X1 is a's already: one new placeholder, 3 in all. */
	send_text(b, "{\"op\":\"subscribe\",\"symbols\":[\"X1\",\"Y1\"]}");
	expect_type(b, "subscribed");
	assert_int_equal(engine_pending_count(e), 3);
	send_text(b, "{\"op\":\"subscribe\",\"symbols\":[\"AAPL\"]}");
	expect_type(b, "subscribed");
	j = next_json(b, &kind);
	assert_int_equal(kind, SESSION_OUT_UPDATES);
	json_decref(j);
	send_text(b, "{\"op\":\"subscribe\",\"symbols\":[\"MSFT\"]}");
	expect_too_many(b, "max-symbols");
	session_hub_get_stats(f->hub, &st);
	assert_int_equal(st.subscribes_refused[SESSION_BOUND_SYMBOLS], 1);
	assert_int_equal(st.subscribes_refused[SESSION_BOUND_PENDING], 1);
	assert_int_equal(st.subscribes_refused[SESSION_BOUND_PENDING_TOTAL], 1);

	session_close(a); /* X2 goes; X1 is b's too */
	assert_int_equal(engine_pending_count(e), 2);
	apply(f, "Y1", "1.25");
	assert_int_equal(engine_pending_count(e), 1);
	session_close(b);
	assert_int_equal(engine_pending_count(e), 0);
	fixture_free(f);
}

static void
test_sustained_flood_is_refused_then_closed_1008(void **state)
{
	struct fixture *f = fixture_new(false, 1, 3);
	struct fake_conn c = {0};
	struct session *s = open_session(f, &c, NULL);
	struct session_hub_stats st;
	enum session_output_kind kind;
	json_t *j;
	int i, limited = 0;

	(void)state;
	expect_type(s, "hello");
	for (i = 0; i < 3; i++)
		send_text(s, "{\"op\":\"ping\"}");
	for (i = 0; i < 3; i++)
		expect_type(s, "pong");
	/* Over the burst: refused (rate_limited) a burst's worth of times,
	 * then closed as abuse; the close goes before what was queued. */
	for (i = 0; i < 10; i++)
		send_text(s, "{\"op\":\"ping\"}");
	session_hub_get_stats(f->hub, &st);
	for (i = 0; i < SESSION_ERROR_CODES; i++)
		if (!strcmp(session_error_codes[i], "rate_limited"))
			limited = (int)st.errors[i];
	assert_int_equal(limited, 3);
	j = next_json(s, &kind);
	assert_int_equal(kind, SESSION_OUT_CLOSE);
	assert_int_equal(json_integer_value(json_object_get(j, "close")),
	                 SESSION_CLOSE_POLICY);
	json_decref(j);
	/* Nothing after the close. */
	assert_null(next_json(s, &kind));
	session_close(s);
	fixture_free(f);
}

static void
test_replies_left_unread_close_the_session(void **state)
{
	struct fixture *f = fixture_new(false, 1e6, 1e6);
	struct fake_conn c = {0};
	struct session *s = open_session(f, &c, NULL);
	enum session_output_kind kind;
	json_t *j;
	int i, n = 0;

	(void)state;
	for (i = 0; i < 300; i++)
		send_text(s, "{\"op\":\"ping\"}");
	while ((j = next_json(s, &kind)) && kind == SESSION_OUT_MESSAGE) {
		n++;
		json_decref(j);
	}
	assert_int_equal(kind, SESSION_OUT_CLOSE);
	assert_int_equal(json_integer_value(json_object_get(j, "close")),
	                 SESSION_CLOSE_POLICY);
	json_decref(j);
	assert_true(n <= 257); /* the hello and at most 256 replies */
	session_close(s);
	fixture_free(f);
}

static void
test_entitlements_refuse_the_whole_request(void **state)
{
	struct fixture *f = fixture_new(true, 100, 200);
	struct fake_conn c = {0};
	struct session *s = open_session(f, &c, "FX.*");
	enum session_output_kind kind;
	json_t *j;

	(void)state;
	apply(f, "FX.EURUSD", "1.08");
	apply(f, "AAPL", "189.5");
	expect_type(s, "hello");
	send_text(
	        s,
	        "{\"op\":\"subscribe\",\"symbols\":[\"FX.EURUSD\",\"AAPL\"]}");
	expect_error(s, "forbidden");
	assert_false(engine_client_is_subscribed(session_engine_client(s),
	                                         "FX.EURUSD"));
	/* The wildcard brings only what the token grants. */
	send_text(s, "{\"op\":\"subscribe\",\"symbols\":[\"*\"]}");
	expect_type(s, "subscribed");
	j = next_json(s, &kind);
	assert_int_equal(kind, SESSION_OUT_UPDATES);
	assert_string_equal(type_of(j), "snapshot");
	assert_string_equal(json_string_value(json_object_get(j, "symbol")),
	                    "FX.EURUSD");
	json_decref(j);
	assert_null(next_json(s, &kind));
	session_close(s);
	fixture_free(f);
}

static void
test_max_hz_asks_to_be_woken_and_a_close_comes_after_queued_replies(void **state)
{
	struct fixture *f = fixture_new(false, 100, 200);
	struct fake_conn c = {0};
	struct session *s = open_session(f, &c, NULL);
	enum session_output_kind kind;
	json_t *j;

	(void)state;
	apply(f, "AAPL", "1");
	expect_type(s, "hello");
	send_text(s,
	          "{\"op\":\"subscribe\",\"symbols\":[\"AAPL\"],\"max_hz\":1}");
	expect_type(s, "subscribed");
	expect_type(s, "snapshot");
	apply(f, "AAPL", "2");
	/* Held back: nothing now, and a wake asked for within a second. */
	assert_null(next_json(s, &kind));
	assert_true(c.wake_at > clock_wall_us());
	assert_true(c.wake_at <= clock_wall_us() + 1000000);
	/* A close asked for goes before the held updates, after the reply
	 * already queued. */
	send_text(s, "{\"op\":\"ping\"}");
	session_hub_close_all(f->hub, SESSION_CLOSE_GOING_AWAY, "bye");
	expect_type(s, "pong");
	j = next_json(s, &kind);
	assert_int_equal(kind, SESSION_OUT_CLOSE);
	assert_int_equal(json_integer_value(json_object_get(j, "close")),
	                 SESSION_CLOSE_GOING_AWAY);
	json_decref(j);
	session_close(s);
	fixture_free(f);
}

/*
 * A wake can come a little early: the transport's timer runs on another
 * clock than max_hz's (lws's monotonic one, off by a microsecond here and
 * there). Still held, the session must ask for the same wake again: it
 * once kept quiet because it had already asked for that time, and the
 * client waited for its next heartbeat (seconds behind on a quiet feed).
 */
static void
test_max_hz_wake_that_comes_early_is_asked_for_again(void **state)
{
	struct fixture *f = fixture_new(false, 100, 200);
	struct fake_conn c = {0};
	struct session *s = open_session(f, &c, NULL);
	struct session_output out;
	enum session_output_kind kind;
	int64_t due;
	json_t *j;

	(void)state;
	apply(f, "AAPL", "1");
	expect_type(s, "hello");
	send_text(s,
	          "{\"op\":\"subscribe\",\"symbols\":[\"AAPL\"],\"max_hz\":2}");
	expect_type(s, "subscribed");
	expect_type(s, "snapshot");
	apply(f, "AAPL", "2");
	assert_null(next_json(s, &kind));
	due = c.wake_at;
	assert_true(due > clock_wall_us());
	/* The timer fires a microsecond early: still held, and asked again. */
	c.wakes_asked = 0;
	assert_false(session_take_output(s, due - 1, &out));
	assert_int_equal(c.wakes_asked, 1);
	assert_int_equal(c.wake_at, due);
	/* When due, the update goes. */
	assert_true(session_take_output(s, due, &out));
	assert_int_equal(out.kind, SESSION_OUT_UPDATES);
	j = json_loadb(out.data, out.len, 0, NULL);
	assert_non_null(j);
	assert_string_equal(type_of(j), "delta");
	json_decref(j);
	session_close(s);
	fixture_free(f);
}

static void
test_quiet_session_gets_a_heartbeat(void **state)
{
	struct fixture *f = fixture_new(false, 100, 200);
	struct fake_conn c = {0};
	struct session *s = open_session(f, &c, NULL);
	struct session_output out;

	(void)state;
	expect_type(s, "hello");
	assert_false(session_take_output(s, clock_wall_us(), &out));
	/* Five seconds on (heartbeat_ms), the hub asks for a write and a
	 * heartbeat comes. */
	c.want_write = 0;
	session_hub_housekeeping(f->hub, clock_wall_us() + 5000000);
	assert_int_equal(c.want_write, 1);
	assert_true(session_take_output(s, clock_wall_us() + 5000000, &out));
	assert_int_equal(out.kind, SESSION_OUT_MESSAGE);
	assert_non_null(strstr(out.data, "\"heartbeat\""));
	session_close(s);
	fixture_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(
	                test_hello_then_subscribed_before_the_snapshots),
	        cmocka_unit_test(
	                test_bad_input_gets_an_error_and_the_session_goes_on),
	        cmocka_unit_test(
	                test_sustained_flood_is_refused_then_closed_1008),
	        cmocka_unit_test(test_replies_left_unread_close_the_session),
	        cmocka_unit_test(test_entitlements_refuse_the_whole_request),
	        cmocka_unit_test(
	                test_names_with_no_data_are_bounded_per_session_and_in_all),
	        cmocka_unit_test(
	                test_max_hz_asks_to_be_woken_and_a_close_comes_after_queued_replies),
	        cmocka_unit_test(
	                test_max_hz_wake_that_comes_early_is_asked_for_again),
	        cmocka_unit_test(test_quiet_session_gets_a_heartbeat),
	};

	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

"""The protocol over each transport (README, HTTP transports): WebSocket
(/ws), Server-Sent Events (GET /stream/events) and long-poll
(GET /stream/poll), requests by POST /stream/send. A case is written once
and runs as test_<case>__ws, __sse and __poll; the cases of the HTTP wire
itself (cursor, linger, tickets, headers, 413) run over sse and poll.

Ticks come from the stdin feed, so every value the server sends back is
known exactly; times that matter are printed, never asserted tightly."""

import asyncio
import json
import os
import re
import signal
import sys
import time

from harness import (CURSOR_RE, HTTP_TRANSPORTS, REPO, TRANSPORTS, Closed, PollClient, Refused,
		     Server, SseClient, assert_fields, check, connect_transport,
		     get_ticket, over_transports, start_server, stream_request, summary, tick,
		     tick_fields, auth_server, mint_token)


# ---------------------------------------------------------------- helpers

async def serve(transport, args=(), feed="stdin", linger=None):
	"""A server for a case over transport; linger (seconds) is given to
	the HTTP transports only, so the WebSocket variant needs nothing new."""
	args = list(args)
	if linger is not None and transport != "ws":
		args += ["--stream-linger-secs", str(linger)]
	return await start_server(feed=feed, args=args)


async def open_stream(srv, transport, **kw):
	"""An HTTP stream client as it is, without the factory's token ways."""
	cls = SseClient if transport == "sse" else PollClient
	return await cls.connect(srv, name=kw.pop("name", transport), **kw)


def token(secret, symbols, exp_in=3600, sub="alice"):
	return mint_token(secret, symbols, exp_in=exp_in, sub=sub)


async def expect_refused(what, status, connecting):
	"""connecting (a coroutine opening a stream) must be refused with
	status and a one-line text body; returns the Refused."""
	try:
		c = await connecting
	except Refused as e:
		check(e.status == status, "%s: answered %s, want %s (body %r)"
		      % (what, e.status, status, e.body[:200]))
		text = e.body.decode("utf-8", "replace").strip()
		check(text and "\n" not in text, "%s: the %s body is not one line of text: %r"
		      % (what, status, e.body[:200]))
		return e
	raise AssertionError("%s: let in (stream frame %s), want %s" % (what, summary(c.stream), status))


async def error_reply(c, payload, code, rid=None):
	"""Send payload; the reply must be an error with code (and the id
	echoed), and the session must still answer a ping."""
	desc = (payload if isinstance(payload, str) else json.dumps(payload))[:80]
	await c.send(payload)
	try:
		if rid is not None:
			r = await c.expect(None, what="reply to %s" % desc,
					   pred=lambda m: m.get("type") not in ("snapshot", "delta", "heartbeat")
					   and m.get("id") == rid)
		else:
			r = await c.expect("error", what="error reply to %s" % desc)
	except Closed as e:
		raise AssertionError("%s: closed after %s (code %s); it must stay open"
				     % (c.name, desc, e.code))
	check(r.get("type") == "error" and r.get("code") == code,
	      "%s: %s answered %s, want error %s" % (c.name, desc, summary(r), code))
	check(isinstance(r.get("message"), str) and len(r["message"].strip()) >= 5,
	      "%s: error without a useful message: %s" % (c.name, summary(r)))
	await c.ping_ok()
	return r


def hellos(c):
	return [m for m in c.log if m.get("type") == "hello"]


def updates_of(c, symbol, since=0):
	return [m for _, m in c.updates[since:] if m.get("symbol") == symbol]


# ------------------------------------------------------ greeting and data

@over_transports(*TRANSPORTS)
async def hello_and_stream_frame(transport):
	srv = await serve(transport, feed="none", args=["--heartbeat-ms", "1500"], linger=7)
	c = await connect_transport(srv, transport)
	h = c.hello
	check(h.get("protocol") == 1, "hello protocol %r, want 1: %s" % (h.get("protocol"), h))
	check(isinstance(h.get("epoch"), str) and h["epoch"], "hello without an epoch: %s" % h)
	check(isinstance(h.get("server"), str) and re.fullmatch(r"publisher \d+\.\d+\.\d+", h["server"]),
	      "hello server %r" % h.get("server"))
	check(h.get("heartbeat_ms") == 1500, "hello heartbeat_ms %r, want 1500" % h.get("heartbeat_ms"))
	if transport == "ws":
		check(c.log[0] is h, "the hello is not the first message: %s" % summary(c.log[0]))
		await c.ping_ok()
		return "hello %s" % summary(h, 100)
	stream = c.log[0]
	check(stream.get("type") == "stream", "the first frame is %s, want a stream frame" % summary(stream))
	key = stream.get("session")
	want = {"type": "stream", "session": key, "transport": transport, "resumed": False,
		"linger_ms": 7000}
	check(all(stream.get(k) == v for k, v in want.items()),
	      "stream frame %s, want %s (--stream-linger-secs 7)" % (summary(stream), summary(want)))
	check(c.log[1] is h, "the hello does not follow the stream frame: %s" % summary(c.log[:3]))
	if transport == "sse":
		_, headers = c.response
		ctype = headers.get("content-type", "").replace(" ", "").lower()
		check(ctype == "text/event-stream;charset=utf-8",
		      "Content-Type %r, want text/event-stream; charset=utf-8" % headers.get("content-type"))
		check("content-length" not in headers, "an event stream with a Content-Length: %s" % headers)
		# The stream frame belongs to the response, not to the session's
		# numbered frames: it has no id (a resumed response could not
		# number it), and the hello is frame 1.
		ids = [e[0] for e in c.events[:2]]
		check(ids == [None, "%s:1" % key],
		      "the first two events have ids %s, want none (stream frame) and KEY:1 (hello)" % ids)
	else:
		asked, answer = c.answers[0]
		check(asked is None and answer["cursor"] == "%s:1" % key and len(answer["frames"]) == 2,
		      "the first poll answered cursor %r with %d frames, want %s:1 (the hello's) and 2"
		      % (answer["cursor"], len(answer["frames"]), key))
	await c.ping_ok()
	n = int(c.cursor.rsplit(":", 1)[1])
	check(CURSOR_RE.fullmatch(c.cursor) and c.cursor.startswith(key + ":") and n >= 2,
	      "the cursor after a pong is %r, want %s:N with N >= 2" % (c.cursor, key))
	return "stream frame %s" % summary(stream, 120)


@over_transports(*TRANSPORTS)
async def subscribe_gets_subscribed_then_snapshots(transport):
	srv = await serve(transport)
	first = tick("AAPL", bid="189.33", ask="189.35", bid_size=100, ask_size=200)
	other = tick("MSFT", bid="410.10", ask="410.20")
	await srv.send_ticks([first, other])
	c = await connect_transport(srv, transport)
	r = await c.request({"op": "subscribe", "symbols": ["AAPL", "MSFT", "NEWCO"], "id": 7})
	check(r.get("type") == "subscribed" and r.get("id") == 7, "subscribe answered %s" % summary(r))
	check(sorted(r.get("symbols") or []) == ["AAPL", "MSFT", "NEWCO"],
	      "subscribed symbols %r" % r.get("symbols"))
	for t in (first, other):  # in either order
		await c.wait_seq(t["symbol"], 1)
		snap = updates_of(c, t["symbol"])[0]
		check(snap["type"] == "snapshot" and snap.get("seq") == 1 and snap.get("ts") == t["ts"],
		      "%s: first update %s, want a snapshot at seq 1 with ts %r"
		      % (t["symbol"], summary(snap), t["ts"]))
		assert_fields(snap, tick_fields(t), "%s snapshot" % t["symbol"])
	for field, text in (("bid", "189.33"), ("ask", "189.35"), ("bid", "410.10")):
		check(c.raw_has(field, text), '"%s":%s is not literally on the wire' % (field, text))
	# A symbol without data gets its snapshot with its first tick.
	early = [m for m in await c.collect(0.3) if m.get("symbol") == "NEWCO"]
	check(not early, "NEWCO update before any tick: %s" % early)
	t = tick("NEWCO", bid="10.01", ask="10.03")
	await srv.send_ticks([t])
	snap = await c.expect("snapshot", pred=lambda m: m.get("symbol") == "NEWCO")
	check(snap.get("seq") == 1, "NEWCO snapshot seq %r, want 1" % snap.get("seq"))
	assert_fields(snap, tick_fields(t), "NEWCO snapshot")
	c.assert_clean()


@over_transports(*TRANSPORTS)
async def deltas_apply_from_the_seq_held(transport):
	srv = await serve(transport)
	first = tick("MSFT", bid="410.10", ask="410.20", bid_size=5, ask_size=7)
	await srv.send_ticks([first])
	c = await connect_transport(srv, transport)
	await c.subscribe(["MSFT"])
	await c.wait_seq("MSFT", 1)
	steps = [dict(bid="410.11"), dict(ask="410.21", ask_size=8), dict(bid="0.3", ask="0.7"),
		 dict(bid="1.005", bid_size=150), dict(bid="12345.6789", ask="12345.6791"),
		 dict(bid="1.005", ask="12345.6792")]
	want = tick_fields(first)
	for seq, fields in enumerate(steps, start=2):
		t = tick("MSFT", **fields)
		changed = {k: v for k, v in fields.items() if str(want.get(k)) != str(v)}
		await srv.send_ticks([t])
		await c.wait_seq("MSFT", seq)
		d = c.updates[-1][1]
		check(d["type"] == "delta" and d.get("from") == seq - 1 and d.get("seq") == seq,
		      "tick %d came as %s, want a delta from %d" % (seq, summary(d), seq - 1))
		check(d.get("ts") == t["ts"], "delta ts %r, want %r" % (d.get("ts"), t["ts"]))
		carried = set(d) - {"type", "symbol", "from", "seq", "ts"}
		check(carried == set(changed), "delta %d carries %s, want only the changed %s"
		      % (seq, sorted(carried), sorted(changed)))
		want.update(tick_fields(t))
	c.assert_clean()
	assert_fields(c.state["MSFT"]["fields"], want, "final state")
	for field, text in (("bid", "0.3"), ("bid", "1.005"), ("bid", "12345.6789"),
			    ("ask", "12345.6791")):
		check(c.raw_has(field, text), '"%s":%s is not literally on the wire' % (field, text))


@over_transports(*TRANSPORTS)
async def resume_rules(transport):
	srv = await serve(transport)
	t1 = tick("AAPL", bid="1.10", ask="1.20", bid_size=100)
	t2 = tick("AAPL", bid="1.11")
	t3 = tick("AAPL", ask="1.21")
	await srv.send_ticks([t1, t2, t3, tick("MSFT", bid="2.5", ask="2.6")])
	a = await connect_transport(srv, transport, name="first")
	await a.subscribe(["AAPL", "MSFT"])
	await a.wait_seq("AAPL", 3)
	await a.wait_seq("MSFT", 1)
	epoch = a.epoch

	# The same seq: nothing (MSFT is not held: its snapshot proves the
	# request was served).
	same = await connect_transport(srv, transport, name="same-seq")
	check(same.epoch == epoch, "epoch changed between two clients: %r, %r" % (epoch, same.epoch))
	same.state["AAPL"] = {"seq": 3, "ts": t3["ts"], "fields": dict(a.state["AAPL"]["fields"])}
	await same.subscribe(["AAPL", "MSFT"], resume={"epoch": epoch, "seq": {"AAPL": 3}})
	await same.expect("snapshot", pred=lambda m: m.get("symbol") == "MSFT", what="MSFT snapshot")
	await same.collect(0.5)
	got = updates_of(same, "AAPL")
	check(not got, "resume at the current seq sent AAPL: %s" % got)

	# An older seq: one delta from it.
	older = await connect_transport(srv, transport, name="older-seq")
	older.state["AAPL"] = {"seq": 1, "ts": t1["ts"], "fields": tick_fields(t1)}
	await older.subscribe(["AAPL"], resume={"epoch": epoch, "seq": {"AAPL": 1}})
	d = await older.expect("delta", pred=lambda m: m.get("symbol") == "AAPL")
	check(d.get("from") == 1 and d.get("seq") == 3 and d.get("ts") == t3["ts"],
	      "resume from seq 1 sent %s, want a delta from 1 to 3" % summary(d))
	assert_fields(d, {"bid": "1.11", "ask": "1.21"}, "delta from 1")
	check("bid_size" not in d, "the delta carries bid_size, unchanged since seq 1: %s" % summary(d))
	await older.collect(0.5)
	check(len(updates_of(older, "AAPL")) == 1, "more than one update after resume: %s"
	      % updates_of(older, "AAPL"))

	# Another epoch: a snapshot.
	other = await connect_transport(srv, transport, name="other-epoch")
	await other.subscribe(["AAPL"], resume={"epoch": "not-" + epoch, "seq": {"AAPL": 3}})
	snap = await other.expect("snapshot", pred=lambda m: m.get("symbol") == "AAPL")
	check(snap.get("seq") == 3, "snapshot seq %r, want 3" % snap.get("seq"))
	assert_fields(snap, {"bid": "1.11", "ask": "1.21", "bid_size": 100}, "snapshot")

	# All three are subscribed: the next tick is a delta from 3 for each.
	await srv.send_ticks([tick("AAPL", bid="1.12")])
	for c in (same, older, other):
		held = await c.wait_seq("AAPL", 4)
		assert_fields(held["fields"], {"bid": "1.12", "ask": "1.21", "bid_size": 100}, c.name)
		c.assert_clean()


@over_transports(*TRANSPORTS)
async def unsubscribe_stops_updates(transport):
	srv = await serve(transport)
	await srv.send_ticks([tick("AAPL", bid="1.0"), tick("MSFT", bid="2.0")])
	c = await connect_transport(srv, transport)
	await c.subscribe(["AAPL", "MSFT"])
	await c.wait_seq("AAPL", 1)
	await c.wait_seq("MSFT", 1)
	r = await c.request({"op": "unsubscribe", "symbols": ["AAPL"], "id": 42})
	check(r.get("type") == "unsubscribed" and r.get("id") == 42 and "AAPL" in (r.get("symbols") or []),
	      "unsubscribe answered %s" % summary(r))
	mark = len(c.log)
	for i in range(20):
		await srv.send_ticks([tick("AAPL", bid="1.%02d" % (i + 1)), tick("MSFT", bid="2.%02d" % (i + 1))])
		await asyncio.sleep(0.01)
	await c.wait_seq("MSFT", 21)
	await c.collect(0.3)
	after = [m for m in c.log[mark:] if m.get("symbol") == "AAPL"]
	check(not after, "%d AAPL update(s) after unsubscribed, first %s" % (len(after), after[:1]))
	c.assert_clean()


# ------------------------------------------------------------------ errors

@over_transports(*TRANSPORTS)
async def errors_keep_the_session_serving(transport):
	srv = await serve(transport, args=["--max-symbols", "5", "--max-message-bytes", "4096"])
	await srv.send_ticks([tick("FEED", bid="1.00")])
	c = await connect_transport(srv, transport, name="offender")
	await c.subscribe(["FEED"])
	await c.wait_seq("FEED", 1)
	codes = []
	for payload, code, rid in (
			("this is not JSON", "bad_json", None),
			('{"op":"ping","id":5', "bad_json", None),
			("[1,2]", "bad_request", None),
			({"op": "frobnicate", "id": 11}, "unknown_op", 11),
			({"op": "subscribe", "id": 12}, "bad_request", 12),
			({"op": "subscribe", "symbols": ["BAD SYMBOL!"], "id": 14}, "bad_request", 14),
			({"op": "subscribe", "symbols": ["S1", "S2", "S3", "S4", "S5"], "id": "str-id"},
			 "too_many_symbols", "str-id")):
		r = await error_reply(c, payload, code, rid)
		codes.append(r["code"])
	note = ""
	if transport in HTTP_TRANSPORTS:
		# Over the size limit: 413 with the reason, and the session goes on
		# (a WebSocket closes 1009, test_errors).
		big = '{"op":"ping","id":"%s"}' % ("y" * 10000)
		status, _, body = await c.post(big)
		check(status == 413, "a %d-byte POST with --max-message-bytes 4096 answered %s %r, want 413"
		      % (len(big), status, body[:200]))
		check(body.strip(), "413 without a reason")
		await c.ping_ok()
		late = [m for m in c.log if m.get("type") == "pong" and str(m.get("id", "")).startswith("yyy")]
		check(not late, "the refused request was served: %s" % summary(late[:1]))
		note = "; 413 %r" % body.decode("utf-8", "replace").strip()[:80]
	# Still subscribed and served.
	await srv.send_ticks([tick("FEED", bid="1.01")])
	held = await c.wait_seq("FEED", 2)
	assert_fields(held["fields"], {"bid": "1.01"}, "FEED after the errors")
	c.assert_clean()
	return "codes %s%s" % (",".join(codes), note)


# ------------------------------------------------------------ security

@over_transports(*TRANSPORTS)
async def entitlements_follow_the_token(transport):
	srv, secret = await auth_server()
	await srv.send_ticks([tick("AAPL", bid="1.10"), tick("MSFT", bid="2.20"),
			      tick("FX:EURUSD", bid="1.0850")])
	ways = ("query", "header", "cookie") + (("ticket",) if transport != "ws" else ())
	aapl = 1
	for way in ways:
		c = await connect_transport(srv, transport, name=way, token_in=way,
					    token=token(secret, ["AAPL", "FX:*"], sub=way))
		r = await c.request({"op": "subscribe", "symbols": ["AAPL", "MSFT"], "id": 41})
		check(r.get("type") == "error" and r.get("code") == "forbidden" and r.get("id") == 41,
		      "%s: subscribe outside the entitlements answered %s" % (way, summary(r)))
		check("MSFT" in r.get("message", "") and "AAPL" not in r.get("message", ""),
		      "%s: forbidden message %r" % (way, r.get("message")))
		await c.subscribe(["*"])
		await c.wait_seq("AAPL", aapl)
		await c.wait_seq("FX:EURUSD", 1)
		listed = sorted(e["symbol"] for e in (await c.request({"op": "symbols"})).get("symbols", []))
		check(listed == ["AAPL", "FX:EURUSD"], "%s: symbols lists %s" % (way, listed))
		aapl += 1
		await srv.send_ticks([tick("MSFT", bid="2.2%d" % aapl), tick("AAPL", bid="1.1%d" % aapl)])
		await c.wait_seq("AAPL", aapl)
		await c.collect(0.2)
		check(sorted(c.state) == ["AAPL", "FX:EURUSD"], "%s: the wildcard delivered %s"
		      % (way, sorted(c.state)))
		c.assert_clean()
		await c.close()
	return "token by %s" % ", ".join(ways)


@over_transports(*HTTP_TRANSPORTS)
async def missing_or_bad_token_is_401(transport):
	srv, secret = await auth_server(feed="none")
	await expect_refused("no token", 401, open_stream(srv, transport))
	forged = token(os.urandom(32), ["*"])
	await expect_refused("bad signature", 401, open_stream(srv, transport, query={"token": forged}))
	await expect_refused("expired", 401, open_stream(
		srv, transport, headers={"Authorization": "Bearer " + token(secret, ["*"], exp_in=-3600)}))
	status, _, body = await stream_request(srv.port, "POST", "/stream/ticket", b"")
	check(status == 401, "POST /stream/ticket without a token: %s %r" % (status, body[:100]))
	# The session key is the capability: requests need no token again.
	c = await connect_transport(srv, transport, token=token(secret, ["AAPL"]), token_in="query")
	await c.ping_ok()


@over_transports(*HTTP_TRANSPORTS)
async def ticket_is_single_use(transport):
	srv, secret = await auth_server(feed="none")
	tok = token(secret, ["AAPL"])
	status, headers, body = await stream_request(srv.port, "POST", "/stream/ticket", b"",
						     {"Authorization": "Bearer " + tok})
	check(status == 200, "POST /stream/ticket: %s %r" % (status, body[:200]))
	answer = json.loads(body)
	check(isinstance(answer.get("ticket"), str) and answer["ticket"] and
	      answer.get("expires_ms") == 30000, "ticket answer %r" % body[:200])
	check(tok not in answer["ticket"], "the ticket is the token itself")
	c = await open_stream(srv, transport, query={"ticket": answer["ticket"]})
	await c.ping_ok()
	r = await c.request({"op": "subscribe", "symbols": ["MSFT"]})
	check(r.get("code") == "forbidden", "the ticket's session subscribed MSFT outside the token: %s"
	      % summary(r))
	await expect_refused("the same ticket again", 401,
			     open_stream(srv, transport, name="again", query={"ticket": answer["ticket"]}))
	await expect_refused("a made-up ticket", 401,
			     open_stream(srv, transport, name="made-up", query={"ticket": "x" * 32}))
	# The token may come in the query or a cookie too.
	for h, target in (({}, "/stream/ticket?token=" + tok), ({"Cookie": "token=" + tok}, "/stream/ticket")):
		status, _, body = await stream_request(srv.port, "POST", target, b"", h)
		check(status == 200 and json.loads(body).get("ticket"), "POST %s %s: %s %r"
		      % (target[:30], h and "with a cookie" or "", status, body[:100]))
	# Without --auth-secret tickets are given and accepted all the same.
	open_srv = await start_server(feed="none")
	t = await get_ticket(open_srv)
	c2 = await open_stream(open_srv, transport, name="open", query={"ticket": t})
	await c2.ping_ok()


@over_transports(*HTTP_TRANSPORTS)
async def foreign_origin_refused_like_ws(transport):
	srv = await serve(transport, feed="none")
	for origin in ("http://evil.example", "http://127.0.0.1:%d" % (srv.port + 1), "null"):
		await expect_refused("Origin %s" % origin, 403,
				     open_stream(srv, transport, headers={"Origin": origin}))
	own = await open_stream(srv, transport, name="own",
				headers={"Origin": "http://127.0.0.1:%d" % srv.port})
	await own.ping_ok()  # its POSTs carry the same Origin
	plain = await open_stream(srv, transport, name="no-origin")
	await plain.ping_ok()
	# A foreign page that learnt a session key cannot use it.
	status, _, body = await plain.post({"op": "ping", "id": "evil"},
					   headers={"Origin": "http://evil.example"})
	check(status == 403, "POST /stream/send from a foreign origin: %s %r" % (status, body[:100]))
	await plain.collect(0.5)
	check(not [m for m in plain.log if m.get("id") == "evil"], "the foreign request was served")
	status, _, body = await stream_request(srv.port, "POST", "/stream/ticket", b"",
					       {"Origin": "http://evil.example"})
	check(status == 403, "POST /stream/ticket from a foreign origin: %s %r" % (status, body[:100]))


# ------------------------------------------- slow and stalled clients

@over_transports(*TRANSPORTS, timeout=45)
async def stalled_client_does_not_delay_others(transport):
	"""The stalled client subscribes to everything and never reads (a
	long-poll client: never polls again); readers keep getting live
	updates: one of each transport while an HTTP client stalls, a WebSocket
	reader (the baseline) while a WebSocket client does."""
	srv = await start_server(feed="synthetic:symbols=50,rate=2000,seed=3")
	stalled = await connect_transport(srv, transport, name="stalled", slow=True)
	await stalled.send({"op": "subscribe", "symbols": ["*"], "id": 1})
	kinds = TRANSPORTS if transport != "ws" else ("ws",)
	readers = [await connect_transport(srv, t, name="reader-" + t) for t in kinds]
	for r in readers:
		await r.subscribe(["*"])
	start = time.monotonic()
	await asyncio.gather(*(r.collect(3.0) for r in readers))
	end = time.monotonic()
	check(srv.alive(), "the server died with a stalled client")
	notes = []
	for r in readers:
		r.assert_clean()
		times = [t for t, _ in r.updates if t >= start]
		check(times, "%s got no update while a %s client stalled" % (r.name, transport))
		gaps = [b - a for a, b in zip([start] + times, times + [end])]
		check(max(gaps) < 1.5, "%s went %.2f s without an update while a %s client stalled"
		      % (r.name, max(gaps), transport))
		check(len(r.state) >= 25, "%s saw only %d of 50 symbols" % (r.name, len(r.state)))
		await r.ping_ok()
		notes.append("%s %d updates, longest gap %.0f ms" % (r.name, len(times), max(gaps) * 1000))
	return "; ".join(notes)


@over_transports(*TRANSPORTS)
async def stalled_reader_reading_again_gets_merged_deltas(transport):
	srv = await serve(transport)
	first = tick("SLOW", bid="50.000", ask="50.010", bid_size=1, ask_size=1)
	await srv.send_ticks([first])
	c = await connect_transport(srv, transport, name="slow", slow=True)
	await c.subscribe(["SLOW"])
	await c.wait_seq("SLOW", 1)
	ticks = [tick("SLOW", bid="%d.%03d" % (50 + i // 1000, i % 1000), bid_size=i, ask_size=i + 1)
		 for i in range(1, 1001)]
	await srv.send_ticks(ticks)
	await asyncio.sleep(1.0)  # not reading (not polling)
	t0 = time.monotonic()
	await c.wait_seq("SLOW", 1001, timeout=10)
	dt = time.monotonic() - t0
	c.assert_clean()
	deltas = [m for _, m in c.updates if m["type"] == "delta"]
	merged = sum(d["seq"] - d["from"] - 1 for d in deltas)
	check(merged > 0, "1000 ticks to a client that did not read for 1 s came as %d deltas, none "
	      "merged (first %s)" % (len(deltas), [(d["from"], d["seq"]) for d in deltas[:3]]))
	assert_fields(c.state["SLOW"]["fields"], tick_fields(ticks[-1]), "final state")
	return "%d deltas for 1000 ticks, %d merged away; caught up %.2f s after reading again" % (
		len(deltas), merged, dt)


# ---------------------------------------------------- cursor and linger

@over_transports(*TRANSPORTS)
async def reconnect_within_linger_loses_nothing(transport):
	"""Ticks go on while the client is away (dropped connection; a
	long-poll client that stops polling); back with its cursor, the session
	is the same and the client ends with the server's state."""
	srv = await serve(transport)
	syms = ["R1", "R2", "R3"]
	await srv.send_ticks([tick(s, bid="10.000", ask="10.020", bid_size=1) for s in syms])
	sent = {s: 1 for s in syms}
	c = await connect_transport(srv, transport)
	await c.subscribe(syms)
	for s in syms:
		await c.wait_seq(s, 1)
	key = c.session if transport != "ws" else None
	stop = asyncio.Event()

	async def feed():
		i = 0
		while not stop.is_set():
			i += 1
			s = syms[i % 3]
			await srv.send_ticks([tick(s, bid="10.%03d" % (i % 1000), bid_size=i)])
			sent[s] += 1
			await asyncio.sleep(0.01)
	feeder = asyncio.create_task(feed())
	ways = ("query", "header") if transport == "sse" else (None,)
	notes = []
	try:
		for way in ways:
			await c.collect(0.4)
			c.drop()
			await asyncio.sleep(1.0)  # away while the feed goes on
			t0 = time.monotonic()
			stream = await (c.reconnect(how=way) if way else c.reconnect())
			notes.append("%s back in %.0f ms" % (way or transport, (time.monotonic() - t0) * 1000))
			if transport == "sse":
				check(stream.get("resumed") is True and stream.get("session") == key,
				      "reconnect with the cursor (%s) within the linger: %s, want resumed:true "
				      "for session %s" % (way, summary(stream), key))
			elif transport == "poll":
				check(stream is None or (stream.get("resumed") is True and stream.get("session") == key),
				      "poll with the cursor after a pause: %s, want resumed:true for %s (or "
				      "no stream frame)" % (summary(stream), key))
				check(c.cursor.startswith(key + ":"), "the cursor moved to another session: %r"
				      % c.cursor)
				notes.append("stream frame %s" % (summary(stream, 80) if stream else "none"))
		await c.collect(0.4)
	finally:
		stop.set()
		await feeder
	for s in syms:
		await c.wait_seq(s, sent[s], timeout=10)
	c.assert_clean()
	if transport != "ws":
		check(len(hellos(c)) == 1, "a resumed session sent %d hellos" % len(hellos(c)))
	# The server's state, as a new client gets it.
	fresh = await connect_transport(srv, "ws", name="fresh")
	await fresh.subscribe(syms)
	for s in syms:
		await fresh.wait_seq(s, sent[s])
		check(c.state[s]["seq"] == fresh.state[s]["seq"], "%s: seq %d held, server %d"
		      % (s, c.state[s]["seq"], fresh.state[s]["seq"]))
		assert_fields(c.state[s]["fields"], fresh.state[s]["fields"], "%s after reconnecting" % s)
	return "; ".join(notes) + "; %d ticks" % sum(sent.values())


@over_transports("poll")
async def repeated_poll_gets_the_same_frames(transport):
	srv = await serve(transport)
	await srv.send_ticks([tick("AAPL", bid="1.00", ask="1.10")])
	c = await open_stream(srv, transport)
	await c.subscribe(["AAPL"])
	await c.wait_seq("AAPL", 1)
	await c.collect(0.2)
	old = c.cursor
	await srv.send_ticks([tick("AAPL", bid="1.01"), tick("AAPL", ask="1.11")])
	await c.send({"op": "ping", "id": "p1"})
	await asyncio.sleep(0.3)
	_, _, first = await c.poll(cursor=old, wait_ms=3000)
	frames1 = [f for f in first["frames"] if f.get("type") != "stream"]
	check(any(f.get("id") == "p1" for f in frames1), "the poll after the ping has no pong: %s"
	      % summary(first["frames"], 300))
	# The answer was lost: the same cursor again gets the same frames.
	_, _, again = await c.poll(cursor=old, wait_ms=0)
	frames2 = [f for f in again["frames"] if f.get("type") != "stream"]
	check(frames2[:len(frames1)] == frames1, "the same cursor polled again got %s, first time %s"
	      % (summary(frames2, 300), summary(frames1, 300)))
	n1, n2 = (int(a["cursor"].rsplit(":", 1)[1]) for a in (first, again))
	check(again["cursor"].split(":")[0] == first["cursor"].split(":")[0] and n2 >= n1,
	      "cursors %r then %r" % (first["cursor"], again["cursor"]))
	c.take(again, old)
	await c.wait_seq("AAPL", 3)
	c.assert_clean()
	pongs = [m for m in c.log if m.get("id") == "p1"]
	check(len(pongs) == 1, "the pong was taken %d times" % len(pongs))
	return "%d frames sent again, cursor %s" % (len(frames1), first["cursor"])


@over_transports("poll")
async def second_poll_answers_the_waiting_one(transport):
	srv = await serve(transport, feed="none", args=["--heartbeat-ms", "60000"])
	c = await open_stream(srv, transport)
	cur = c.cursor
	t0 = time.monotonic()
	first = asyncio.create_task(c.poll(cursor=cur, wait_ms=20000))
	await asyncio.sleep(0.5)
	second = asyncio.create_task(c.poll(cursor=cur, wait_ms=20000))
	status, _, a1 = await asyncio.wait_for(first, 15)
	dt = time.monotonic() - t0
	check(status == 200 and a1["frames"] == [] and a1["cursor"] == cur,
	      "the waiting poll answered %s %s, want no frames and cursor %s"
	      % (status, summary(a1), cur))
	check(dt < 10, "the waiting poll (wait_ms 20000) was answered %.1f s after it began, "
	      "not when the second came (0.5 s)" % dt)
	await c.send({"op": "ping", "id": "x"})
	status, _, a2 = await asyncio.wait_for(second, 10)
	check(any(f.get("id") == "x" for f in a2["frames"]), "the second poll did not get the pong: %s"
	      % summary(a2))
	return "the waiting poll answered %.2f s after it began" % dt


@over_transports(*HTTP_TRANSPORTS, timeout=40)
async def unknown_or_expired_cursor_starts_a_new_session(transport):
	srv = await serve(transport, linger=2)
	await srv.send_ticks([tick("AAPL", bid="1.00"), tick("AAPL", bid="1.01")])
	bogus = os.urandom(16).hex()
	c = await open_stream(srv, transport, cursor=bogus + ":5")
	check(c.stream.get("resumed") is False and c.session != bogus,
	      "an unknown cursor got %s, want resumed:false and a new session" % summary(c.stream))
	check(len(hellos(c)) == 1, "no hello after resumed:false")
	await c.subscribe(["AAPL"])
	await c.wait_seq("AAPL", 2)
	key = c.session
	c.drop()
	await asyncio.sleep(4.5)  # past --stream-linger-secs 2
	await srv.send_ticks([tick("AAPL", bid="1.02")])
	stream = await c.reconnect()
	check(stream is not None and stream.get("resumed") is False and stream.get("session") != key,
	      "a cursor of a session gone 4.5 s with a linger of 2 s got %s, want resumed:false and "
	      "a new session" % summary(stream))
	check(len(hellos(c)) == 2, "%d hellos, want a new one for the new session" % len(hellos(c)))
	# Resubscribed with resume (AAPL held at 2): one delta from 2.
	await c.wait_seq("AAPL", 3)
	last = c.updates[-1][1]
	check(last["type"] == "delta" and last.get("from") == 2,
	      "after resuming at seq 2 the client got %s" % summary(last))
	c.assert_clean()
	status, _, body = await c.post({"op": "ping", "id": 1}, session=key)
	check(status == 404, "POST to an expired session: %s %r, want 404" % (status, body[:200]))
	err = json.loads(body)
	check(err.get("type") == "error" and err.get("code") == "unknown_session" and err.get("message"),
	      "404 body %r" % body[:200])


@over_transports(*HTTP_TRANSPORTS)
async def responses_are_not_cached_or_buffered(transport):
	srv = await serve(transport, feed="none", args=["--max-message-bytes", "4096"])
	c = await open_stream(srv, transport)
	await c.ping_ok()                                       # 202 (and 200 polls)
	await c.post('{"op":"ping","id":"%s"}' % ("y" * 5000))  # 413
	await c.post({"op": "ping"}, session="0" * 32)          # 404
	seen = list(c.responses)
	for target, h in (("/stream/ticket", {}), ("/stream/events", {"Origin": "http://evil.example"}),
			  ("/stream/poll", {"Origin": "http://evil.example"})):
		method = "POST" if target == "/stream/ticket" else "GET"
		status, headers, _ = await stream_request(srv.port, method, target,
							  b"" if method == "POST" else None, h)
		seen.append(("%s %s" % (method, target), status, headers))
	# A refusal for want of a token, from a server that requires one.
	auth, _ = await auth_server(feed="none")
	target = "/stream/events" if transport == "sse" else "/stream/poll"
	status, headers, _ = await stream_request(auth.port, "GET", target)
	seen.append(("GET %s without a token" % target, status, headers))
	statuses = sorted({s for _, s, _ in seen})
	check({200, 202, 401, 403, 404, 413} <= set(statuses), "statuses seen %s" % statuses)
	bad = ["%s -> %s: Cache-Control %r, X-Accel-Buffering %r" % (
		what, status, h.get("cache-control"), h.get("x-accel-buffering"))
	       for what, status, h in seen
	       if "no-cache" not in h.get("cache-control", "").lower()
	       or h.get("x-accel-buffering", "").lower() != "no"]
	check(not bad, "responses without Cache-Control: no-cache and X-Accel-Buffering: no: %s" % bad)
	return "statuses %s" % statuses


# ------------------------------------------------------------ heartbeat

@over_transports(*TRANSPORTS)
async def heartbeat_on_idle_session(transport):
	srv = await serve(transport, feed="none", args=["--heartbeat-ms", "300"])
	c = await connect_transport(srv, transport)
	t0 = time.monotonic()
	await c.expect("heartbeat", timeout=2)
	dt = time.monotonic() - t0
	await c.expect("heartbeat", timeout=2, what="a second heartbeat")
	note = "first heartbeat after %.2f s" % dt
	if transport == "poll":
		# An idle poll returns with a heartbeat, long before its wait.
		t0 = time.monotonic()
		_, _, a = await c.poll(wait_ms=20000)
		dt = time.monotonic() - t0
		check(any(f.get("type") == "heartbeat" for f in a["frames"]) and dt < 10,
		      "an idle poll (wait_ms 20000, heartbeat 300 ms) answered after %.1f s with %s"
		      % (dt, summary(a["frames"])))
		note += "; an idle poll returned after %.2f s" % dt
	return note


# ------------------------------------------------------------ shutdown

@over_transports(*TRANSPORTS)
async def sigterm_sends_close_1001_and_exits_0(transport):
	srv = await serve(transport)
	await srv.send_ticks([tick("AAPL", bid="1.5")])
	c = await connect_transport(srv, transport)
	await c.subscribe(["AAPL"])
	await c.wait_seq("AAPL", 1)
	idle = await connect_transport(srv, transport, name="idle")
	# Both read (poll) from now on, as connected clients do.
	waits = [asyncio.create_task(x.wait_closed(6)) for x in (c, idle)]
	await asyncio.sleep(0.5)
	t0 = time.monotonic()
	srv.proc.send_signal(signal.SIGTERM)
	codes = await asyncio.gather(*waits)
	rc = await srv.wait_exit(max(0.1, 5 - (time.monotonic() - t0)))
	dt = time.monotonic() - t0
	check(codes == [1001, 1001], "after SIGTERM the clients saw close codes %s, want 1001 for both"
	      % codes)
	if transport != "ws":
		for x in (c, idle):
			last = x.log[-1]
			check(last.get("type") == "close" and last.get("code") == 1001
			      and isinstance(last.get("reason"), str),
			      "%s: last frame %s, want a close frame with 1001" % (x.name, summary(last)))
	check(rc is not None, "still running 5 s after SIGTERM")
	check(rc == 0, "exit code %s after SIGTERM, want 0" % rc)
	return "exited in %.2f s" % dt


def _slow_then_fast_sse_readers(port, n, slow_s, fast_s):
	"""n SSE clients on "*" with small receive buffers: they read a
	little now and then for slow_s (so the server's writes are cut short
	and it holds the rest), then everything for fast_s. Returns, per
	client, how long before the end it last received a byte, and bytes."""
	import http.client
	import select
	import socket
	socks = []
	for _ in range(n):
		s = socket.create_connection(("127.0.0.1", port))
		s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
		s.sendall(b"GET /stream/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		data = b""
		while b'"session"' not in data:
			chunk = s.recv(4096)
			if not chunk:
				raise AssertionError("the event stream ended before its stream frame")
			data += chunk
		key = re.search(rb'"session":"([0-9a-f]+)"', data).group(1).decode()
		c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
		c.request("POST", "/stream/send?session=" + key, body='{"op":"subscribe","symbols":["*"]}')
		check(c.getresponse().status == 202, "the subscribe was not taken")
		c.close()
		socks.append(s)
	end = time.time() + slow_s
	while time.time() < end:
		for s in socks:
			try:
				s.recv(2048, socket.MSG_DONTWAIT)
			except BlockingIOError:
				pass
		time.sleep(0.05)
	last = {s: time.time() for s in socks}
	got = {s: 0 for s in socks}
	end = time.time() + fast_s
	while time.time() < end:
		ready, _, _ = select.select(socks, [], [], 0.1)
		for s in ready:
			d = s.recv(1 << 20)
			if d:
				last[s] = time.time()
				got[s] += len(d)
	now = time.time()
	result = [(now - last[s], got[s]) for s in socks]
	for s in socks:
		s.close()
	return result


async def test_sse_readers_slow_then_fast_all_catch_up():
	"""Frames of every symbol (1,000) are bigger than what a slow reader's
	socket takes, so the server's writes are cut short and it holds the
	rest until the socket drains. Once the readers read again, every one
	of them must keep receiving. (Input paused while such output was held
	kept libwebsockets 4.1.6 from ever sending the rest of an HTTP
	response: 11 of 30 readers stalled for good.)"""
	srv = await start_server(feed="synthetic:symbols=1000,rate=20000,seed=3", args=["--db", "none"])
	await asyncio.sleep(1.5)  # every symbol has data: each first frame is big
	result = await asyncio.to_thread(_slow_then_fast_sse_readers, srv.port, 30, 3.0, 8.0)
	stalled = [round(quiet, 1) for quiet, _ in result if quiet > 3.0]
	least = min(got for _, got in result)
	check(not stalled, "%d of %d SSE readers got nothing for the last %s s of 8"
	      % (len(stalled), len(result), stalled[:5]))
	return "30 readers; the least got %d bytes in the 8 s of reading" % least

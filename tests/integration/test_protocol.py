"""WebSocket protocol v1 (README, Protocol): hello, subscribe, snapshots,
deltas, resume, unsubscribe, symbols, ping. Ticks come from the stdin feed,
so every value the server sends back is known exactly."""

import asyncio
import time
import re

from harness import Client, Decimal, assert_fields, check, start_server, tick, \
	tick_fields, now_us, run_cli


async def test_hello_on_connect_without_subprotocol():
	srv = await start_server(feed="none", args=["--heartbeat-ms", "1500"])
	c = await Client.connect(srv)  # websockets names no subprotocol by default
	h = c.hello
	check(c.ws.subprotocol is None, "a subprotocol was negotiated: %r" % c.ws.subprotocol)
	check(h.get("protocol") == 1, "hello protocol %r, want 1: %s" % (h.get("protocol"), h))
	check(isinstance(h.get("epoch"), str) and h["epoch"] != "",
	      "hello epoch must be a non-empty string: %s" % h)
	check(isinstance(h.get("server"), str) and re.fullmatch(r"publisher \d+\.\d+\.\d+", h["server"]),
	      "hello server %r, want 'publisher X.Y.Z'" % h.get("server"))
	check(h.get("heartbeat_ms") == 1500, "hello heartbeat_ms %r, want 1500 (from --heartbeat-ms)"
	      % h.get("heartbeat_ms"))
	check(c.log[0] is h, "hello must be the first message, got %s first" % c.log[0])
	rc, out, _ = await run_cli(["--version"])
	check(out.strip() == h["server"], "--version says %r but hello says %r" % (out.strip(), h["server"]))
	# The connection is live, not just greeted.
	await c.ping_ok()


async def test_subscribe_snapshot_then_gap_free_deltas_exact_decimals():
	srv = await start_server()
	first = tick("AAPL", bid="189.33", ask="189.35", bid_size=100, ask_size=200)
	await srv.send_ticks([first])
	c = await Client.connect(srv)
	r = await c.request({"op": "subscribe", "symbols": ["AAPL"], "id": 7})
	check(r.get("type") == "subscribed", "subscribe answered %s" % r)
	check(r.get("id") == 7, "subscribed does not echo id 7: %s" % r)
	check(r.get("symbols") == ["AAPL"], "subscribed symbols %r, want ['AAPL']" % r.get("symbols"))
	snap = await c.expect("snapshot", pred=lambda m: m.get("symbol") == "AAPL")
	check(snap.get("seq") == 1, "first snapshot seq %r, want 1 (one tick applied)" % snap.get("seq"))
	check(snap.get("ts") == first["ts"], "snapshot ts %r, want the tick's %r" % (snap.get("ts"), first["ts"]))
	assert_fields(snap, tick_fields(first), "snapshot")
	for f in ("last", "open", "high", "low"):
		check(f not in snap, "snapshot has %s although no trade was sent: %s" % (f, snap))

	# Prices that binary floats cannot hold exactly.
	steps = [
		dict(bid="189.34"),
		dict(ask="189.36", ask_size=300),
		dict(bid="0.3", ask="0.7"),
		dict(bid="1.005", bid_size=150),
		dict(bid="12345.6789", ask="12345.6791"),
		dict(bid="189.33", ask="189.35", bid_size=100, ask_size=200),
	]
	want = dict(tick_fields(first))
	for i, fields in enumerate(steps, start=2):
		t = tick("AAPL", **fields)
		await srv.send_ticks([t])
		held = await c.wait_seq("AAPL", i)
		check(held["seq"] == i, "AAPL seq %d after %d ticks" % (held["seq"], i))
		check(held["ts"] == t["ts"], "AAPL ts %r after tick %d, want %r" % (held["ts"], i, t["ts"]))
		want.update(tick_fields(t))
	c.assert_clean()
	deltas = [m for _, m in c.updates if m["type"] == "delta"]
	check(len(deltas) >= 1, "no delta received")
	assert_fields(c.state["AAPL"]["fields"], want, "final client state")
	for field, text in (("bid", "189.33"), ("ask", "189.35"), ("bid", "0.3"), ("bid", "1.005"),
			    ("bid", "12345.6789"), ("ask", "12345.6791"), ("ask", "189.36")):
		check(c.raw_has(field, text), '"%s":%s never appears literally in the frames: %s'
		      % (field, text, [r[:200] for r in c.raw[-4:]]))


async def test_delta_carries_only_changed_fields():
	srv = await start_server()
	await srv.send_ticks([tick("MSFT", bid="410.10", ask="410.20", bid_size=5, ask_size=7)])
	c = await Client.connect(srv)
	await c.subscribe(["MSFT"])
	await c.wait_seq("MSFT", 1)
	await srv.send_ticks([tick("MSFT", bid="410.11")])
	await c.wait_seq("MSFT", 2)
	d = c.updates[-1][1]
	check(d["type"] == "delta" and d.get("from") == 1 and d.get("seq") == 2,
	      "want a delta from 1 to 2, got %s" % d)
	check(Decimal(str(d.get("bid"))) == Decimal("410.11"), "delta bid %r" % d.get("bid"))
	for f in ("ask", "bid_size", "ask_size"):
		check(f not in d, "delta carries unchanged field %s: %s" % (f, d))
	# A field resent with the same value is not a change either.
	await srv.send_ticks([tick("MSFT", bid="410.11", ask="410.21")])
	await c.wait_seq("MSFT", 3)
	d = c.updates[-1][1]
	check("ask" in d and "bid" not in d, "delta after bid resent unchanged, ask changed: %s" % d)
	c.assert_clean()


async def test_trade_ticks_derive_open_high_low_volume_trades():
	srv = await start_server()
	c = await Client.connect(srv)
	await c.subscribe(["IBM"])
	trades = [("150.5", 10), ("151.25", 5), ("149.75", 20), ("150.1", 1)]
	for i, (px, sz) in enumerate(trades, start=1):
		await srv.send_ticks([tick("IBM", last=px, last_size=sz)])
		await c.wait_seq("IBM", i)
	c.assert_clean()
	assert_fields(c.state["IBM"]["fields"], {
		"last": "150.1", "last_size": 1, "open": "150.5", "high": "151.25",
		"low": "149.75", "volume": 36, "trades": 4}, "IBM after 4 trades")


async def test_subscribe_symbol_without_data_gets_snapshot_with_first_tick():
	srv = await start_server()
	c = await Client.connect(srv)
	r = await c.request({"op": "subscribe", "symbols": ["NEWCO"], "id": "s1"})
	check(r.get("type") == "subscribed" and r.get("id") == "s1", "subscribe answered %s" % r)
	check("NEWCO" in (r.get("symbols") or []), "subscribed does not list NEWCO: %s" % r)
	early = await c.collect(0.3)
	check(not [m for m in early if m.get("type") in ("snapshot", "delta")],
	      "update before any tick: %s" % early)
	t = tick("NEWCO", bid="10.01", ask="10.03", bid_size=1)
	await srv.send_ticks([t])
	snap = await c.expect("snapshot", pred=lambda m: m.get("symbol") == "NEWCO")
	check(snap.get("seq") == 1, "snapshot seq %r, want 1" % snap.get("seq"))
	assert_fields(snap, tick_fields(t), "snapshot of first tick")
	c.assert_clean()


async def test_wildcard_picks_up_symbol_that_appears_later():
	srv = await start_server()
	await srv.send_ticks([tick("AAA", bid="1.5", ask="1.6")])
	c = await Client.connect(srv)
	r = await c.subscribe(["*"])
	check("*" in (r.get("symbols") or []), "subscribed for * does not list '*': %s" % r)
	await c.expect("snapshot", pred=lambda m: m.get("symbol") == "AAA", what="snapshot of AAA")
	await asyncio.sleep(0.1)
	late = tick("LATE.X", bid="99.99", ask="100.01")
	await srv.send_ticks([late])
	snap = await c.expect("snapshot", pred=lambda m: m.get("symbol") == "LATE.X",
			      what="snapshot of LATE.X (appeared after subscribe *)")
	assert_fields(snap, tick_fields(late), "LATE.X snapshot")
	await srv.send_ticks([tick("LATE.X", bid="100.00")])
	await c.wait_seq("LATE.X", 2)
	c.assert_clean()


async def _three_ticks(srv):
	t1 = tick("AAPL", bid="1.10", ask="1.20", bid_size=100)
	t2 = tick("AAPL", bid="1.11")
	t3 = tick("AAPL", ask="1.21")
	await srv.send_ticks([t1, t2, t3, tick("MSFT", bid="2.5", ask="2.6")])
	return t1, t2, t3


async def test_resume_same_epoch_same_seq_sends_nothing():
	srv = await start_server()
	t1, t2, t3 = await _three_ticks(srv)
	a = await Client.connect(srv, name="first")
	await a.subscribe(["AAPL", "MSFT"])
	await a.wait_seq("AAPL", 3)
	await a.wait_seq("MSFT", 1)

	b = await Client.connect(srv, name="resumer")
	check(b.epoch == a.epoch, "epoch changed between two connections: %r vs %r" % (a.epoch, b.epoch))
	b.state["AAPL"] = {"seq": 3, "ts": t3["ts"], "fields": dict(a.state["AAPL"]["fields"])}
	# MSFT is not held, so it must come as a snapshot: proof the request was served.
	await b.subscribe(["AAPL", "MSFT"], resume={"epoch": a.epoch, "seq": {"AAPL": 3}})
	await b.expect("snapshot", pred=lambda m: m.get("symbol") == "MSFT", what="MSFT snapshot")
	got = [m for m in await b.collect(0.5) if m.get("symbol") == "AAPL"]
	got += [m for _, m in b.updates if m.get("symbol") == "AAPL"]
	check(not got, "resume with the current seq still sent AAPL: %s" % got)
	# Still subscribed: the next tick comes as a delta from 3.
	await srv.send_ticks([tick("AAPL", bid="1.12")])
	held = await b.wait_seq("AAPL", 4)
	check(Decimal(str(held["fields"]["bid"])) == Decimal("1.12"), "bid after resume %s" % held)
	b.assert_clean()


async def test_resume_same_epoch_older_seq_sends_one_delta():
	srv = await start_server()
	t1, t2, t3 = await _three_ticks(srv)
	a = await Client.connect(srv, name="first")
	await a.subscribe(["AAPL"])
	await a.wait_seq("AAPL", 3)

	b = await Client.connect(srv, name="resumer")
	b.state["AAPL"] = {"seq": 1, "ts": t1["ts"], "fields": tick_fields(t1)}
	await b.subscribe(["AAPL"], resume={"epoch": a.epoch, "seq": {"AAPL": 1}})
	d = await b.expect("delta", pred=lambda m: m.get("symbol") == "AAPL")
	check(d.get("from") == 1 and d.get("seq") == 3, "want a delta from 1 to 3, got %s" % d)
	check(d.get("ts") == t3["ts"], "delta ts %r, want %r" % (d.get("ts"), t3["ts"]))
	assert_fields(d, {"bid": "1.11", "ask": "1.21"}, "delta from 1")
	check("bid_size" not in d, "delta from 1 carries bid_size, unchanged since seq 1: %s" % d)
	more = [m for m in await b.collect(0.5) if m.get("symbol") == "AAPL"]
	check(not more, "more than one update after resume: %s" % more)
	b.assert_clean()
	assert_fields(b.state["AAPL"]["fields"], {"bid": "1.11", "ask": "1.21", "bid_size": 100},
		      "resumed state")


async def test_resume_wildcard_applies_resume_rules_per_symbol():
	srv = await start_server()
	t1, t2, t3 = await _three_ticks(srv)  # AAPL at seq 3, MSFT at seq 1
	await srv.send_ticks([tick("IBM", last="150.5", last_size=1)])
	a = await Client.connect(srv, name="first")
	await a.subscribe(["AAPL", "MSFT", "IBM"])
	await a.wait_seq("AAPL", 3)
	await a.wait_seq("MSFT", 1)
	await a.wait_seq("IBM", 1)
	b = await Client.connect(srv, name="resumer")
	b.state["AAPL"] = {"seq": 1, "ts": t1["ts"], "fields": tick_fields(t1)}
	b.state["MSFT"] = {"seq": 1, "ts": None, "fields": dict(a.state["MSFT"]["fields"])}
	# AAPL held at an older seq: one delta; MSFT current: nothing; IBM not held: snapshot.
	await b.subscribe(["*"], resume={"epoch": a.epoch, "seq": {"AAPL": 1, "MSFT": 1}})
	await b.expect("snapshot", pred=lambda m: m.get("symbol") == "IBM", what="IBM snapshot")
	await b.wait_seq("AAPL", 3)
	await b.collect(0.5)
	got = [(m["type"], m["symbol"], m.get("from"), m["seq"]) for _, m in b.updates]
	check(sorted(got) == sorted([("delta", "AAPL", 1, 3), ("snapshot", "IBM", None, 1)]),
	      "resume with * (AAPL held at 1 of 3, MSFT at its current 1, IBM not held) sent %s; "
	      "want one AAPL delta from 1 and one IBM snapshot" % got)
	b.assert_clean()


async def test_resume_other_epoch_sends_snapshot():
	srv = await start_server()
	t1, t2, t3 = await _three_ticks(srv)
	a = await Client.connect(srv, name="first")
	await a.subscribe(["AAPL"])
	await a.wait_seq("AAPL", 3)
	b = await Client.connect(srv, name="resumer")
	other = "not-" + str(a.epoch)
	# The client holds seq 3 of some other store; a real client drops it.
	await b.subscribe(["AAPL"], resume={"epoch": other, "seq": {"AAPL": 3}})
	snap = await b.expect("snapshot", pred=lambda m: m.get("symbol") == "AAPL",
			      what="AAPL snapshot for a client from another epoch")
	check(snap.get("seq") == 3, "snapshot seq %r, want 3" % snap.get("seq"))
	assert_fields(snap, {"bid": "1.11", "ask": "1.21", "bid_size": 100}, "snapshot")
	b.assert_clean()


async def test_unsubscribe_stops_updates_for_that_symbol():
	srv = await start_server()
	await srv.send_ticks([tick("AAPL", bid="1.0"), tick("MSFT", bid="2.0")])
	c = await Client.connect(srv)
	await c.subscribe(["AAPL", "MSFT"])
	await c.wait_seq("AAPL", 1)
	await c.wait_seq("MSFT", 1)
	r = await c.request({"op": "unsubscribe", "symbols": ["AAPL"], "id": 42})
	check(r.get("type") == "unsubscribed" and r.get("id") == 42, "unsubscribe answered %s" % r)
	check("AAPL" in (r.get("symbols") or []), "unsubscribed does not list AAPL: %s" % r)
	mark = len(c.log)
	for i in range(20):
		await srv.send_ticks([tick("AAPL", bid="1.%02d" % (i + 1)), tick("MSFT", bid="2.%02d" % (i + 1))])
		await asyncio.sleep(0.01)
	await c.wait_seq("MSFT", 21)
	await c.collect(0.3)
	after = [m for m in c.log[mark:] if m.get("symbol") == "AAPL"]
	check(not after, "%d AAPL update(s) after unsubscribed, first %s" % (len(after), after[:1]))
	c.assert_clean()


async def test_symbols_lists_symbols_with_seqs():
	srv = await start_server()
	await srv.send_ticks([tick("AAPL", bid="1"), tick("AAPL", bid="2"), tick("MSFT", ask="3"),
			      tick("BRK.B", last="400.5", last_size=1)])
	c = await Client.connect(srv)
	await c.subscribe(["AAPL", "MSFT", "BRK.B"])
	await c.wait_seq("AAPL", 2)
	await c.wait_seq("MSFT", 1)
	await c.wait_seq("BRK.B", 1)
	r = await c.request({"op": "symbols", "id": 3})
	check(r.get("type") == "symbols" and r.get("id") == 3, "symbols answered %s" % r)
	lst = r.get("symbols")
	check(isinstance(lst, list), "symbols is not a list: %s" % r)
	got = {e.get("symbol"): e.get("seq") for e in lst if isinstance(e, dict)}
	check(got == {"AAPL": 2, "MSFT": 1, "BRK.B": 1}, "symbols %s, want AAPL:2 MSFT:1 BRK.B:1" % got)


async def test_ping_pong_echoes_id_with_server_ts():
	srv = await start_server(feed="none")
	c = await Client.connect(srv)
	for rid in (5, "abc", 0, 12.5):
		op = {"op": "ping", "id": rid}
		before = now_us()
		r = await c.request(op)
		after = now_us()
		check(r.get("type") == "pong", "ping id %r answered %s" % (rid, r))
		check("id" in r and r["id"] == rid, "pong does not echo id %r: %s" % (rid, r))
		ts = r.get("ts")
		check(isinstance(ts, int), "pong ts %r is not an integer" % ts)
		check(before - 2_000_000 <= ts <= after + 2_000_000,
		      "pong ts %r is not the server's now in µs (client saw %d..%d)" % (ts, before, after))
	# Without an id the reply has none.
	await c.send({"op": "ping"})
	r = await c.expect("pong")
	check("id" not in r, "pong to a ping without id has an id: %s" % r)


async def test_max_hz_held_updates_go_out_when_due_for_every_client():
	"""Updates held back by max_hz go out when they are due, not at the
	next heartbeat (5 s): 20 clients at max_hz 20 on a symbol ticking every
	7 ms; once the feed stops, every one of them holds the last tick
	within a second, three times over."""
	srv = await start_server()
	await srv.send_ticks([tick("HZ", bid="1.000")])
	clients = [await Client.connect(srv, name="hz%d" % i) for i in range(20)]
	for c in clients:
		await c.subscribe(["HZ"], max_hz=20)
		await c.wait_seq("HZ", 1)
	seq, worst = 1, 0.0
	for round_ in range(3):
		for i in range(140):
			seq += 1
			await srv.send_ticks([tick("HZ", bid="%d.%03d" % (round_ + 2, i))])
			await asyncio.sleep(0.007)
		t0 = time.monotonic()
		for c in clients:
			await c.wait_seq("HZ", seq, timeout=1.0)
		worst = max(worst, time.monotonic() - t0)
	return "20 clients converged within %.0f ms of the last tick (3 rounds)" % (worst * 1000)


async def test_max_hz_caps_updates_and_converges():
	srv = await start_server()
	await srv.send_ticks([tick("CAP", bid="1.000")])
	c = await Client.connect(srv)
	await c.subscribe(["CAP"], max_hz=2)
	await c.wait_seq("CAP", 1)
	mark = len(c.updates)
	last = None
	for i in range(40):
		last = tick("CAP", bid="1.%03d" % (i + 1))
		await srv.send_ticks([last])
		await asyncio.sleep(0.025)
	await c.wait_seq("CAP", 41, timeout=3)
	n = len(c.updates) - mark
	# 1 s of ticks + convergence at 2 Hz: about 3 updates; allow slack.
	check(n <= 6, "max_hz 2: %d updates for 40 ticks over 1 s" % n)
	assert_fields(c.state["CAP"]["fields"], tick_fields(last), "state after the feed went quiet")
	c.assert_clean()
	return "%d updates for 40 ticks over 1 s" % n

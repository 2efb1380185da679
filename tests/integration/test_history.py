"""The `history` op (README: Protocol): the last N ticks, [from, to) ranges
in µs and ISO 8601, paging past the 10,000-row cap with next_from, errors
for bad arguments and for a server without a store, and big or concurrent
requests that neither tear nor stall the live stream. Ticks come from the
stdin feed with explicit timestamps, so every row is known exactly."""

import asyncio
import json

from harness import BASE, Client, Decimal, Server, check, check_ticks, hist_ticks, history, \
	http_get, ingest, qs, start_server, summary, tick, tick_line


async def test_history_last_n_and_time_ranges_us_and_iso():
	srv = await start_server()
	ticks = hist_ticks()
	c = await ingest(srv, ticks)
	r = await history(c, symbol="HIST", limit=10, id=4)
	check(r.get("id") == 4, "history reply does not echo id 4: %s" % summary(r, 300))
	check_ticks(r.get("ticks"), ticks[-10:], 41, "limit 10")
	r = await history(c, symbol="HIST", limit=1000)
	check_ticks(r.get("ticks"), ticks, 1, "limit 1000 of 50")
	# [from, to) in integer µs: from is inclusive, to exclusive.
	r = await history(c, symbol="HIST", **{"from": ticks[10]["ts"], "to": ticks[20]["ts"]})
	check_ticks(r.get("ticks"), ticks[10:20], 11, "from ts#10 to ts#20 (µs)")
	# ISO 8601: 14:30:01Z .. 14:30:02Z holds ticks 10..19.
	r = await history(c, symbol="HIST", **{"from": "2024-03-01T14:30:01Z", "to": "2024-03-01T14:30:02Z"})
	check_ticks(r.get("ticks"), ticks[10:20], 11, "from 14:30:01Z to 14:30:02Z")
	r = await history(c, symbol="HIST", **{"from": "2024-03-01T14:30:03.5Z",
					       "to": "2024-03-01T15:30:04+01:00"})
	check_ticks(r.get("ticks"), ticks[35:40], 36, "from 14:30:03.5Z to 15:30:04+01:00")
	# A range and a limit: the last N of the range.
	r = await history(c, symbol="HIST", limit=3, **{"from": ticks[10]["ts"], "to": ticks[20]["ts"]})
	check_ticks(r.get("ticks"), ticks[17:20], 18, "last 3 of [ts#10, ts#20)")
	r = await history(c, symbol="HIST", **{"from": BASE + 3_600_000_000, "to": BASE + 7_200_000_000})
	check(r.get("ticks") == [], "empty range returned %s" % summary(r, 300))
	# The exact decimal text is on the wire.
	for t in ticks[-10:]:
		for k in ("bid", "ask", "last"):
			if k in t:
				check(c.raw_has(k, str(t[k])), '"%s":%s not literally in the history frames' % (k, t[k]))


async def test_history_without_store_is_unavailable():
	srv = await Server(feed="stdin", db="none", name="no-store").start()
	await srv.send_ticks([tick("AAPL", bid=Decimal("1.5"))])
	c = await Client.connect(srv)
	await c.subscribe(["AAPL"])
	await c.wait_seq("AAPL", 1)  # the live side works without a store
	r = await c.request({"op": "history", "symbol": "AAPL", "limit": 10, "id": "h1"})
	check(r.get("type") == "error" and r.get("code") == "unavailable" and r.get("id") == "h1",
	      "history with --db none answered %s; want an error with code unavailable and id h1" % summary(r, 300))
	check(isinstance(r.get("message"), str) and r["message"], "unavailable error without a message: %s" % r)
	await c.ping_ok()
	status, _, body = await http_get(srv, "/api/export?" + qs(symbol="AAPL"))
	return "message: %s; /api/export without a store: HTTP %s %r" % (r["message"][:80], status, body[:80])


async def test_history_unknown_symbol_is_empty_ticks():
	srv = await start_server()
	c = await ingest(srv, [tick("AAPL", ts=BASE, bid=Decimal("1.5"))])
	r = await history(c, symbol="NOPE", limit=10)
	check(r.get("ticks") == [], "history for an unknown symbol: %s; want ticks []" % summary(r, 300))
	r = await history(c, symbol="NOPE", **{"from": 0, "to": BASE * 2})
	check(r.get("ticks") == [], "history range for an unknown symbol: %s; want ticks []" % summary(r, 300))
	r = await history(c, symbol="AAPL", interval="1m", limit=10)
	check(r.get("bars") == [], "bars of a symbol without trades: %s; want bars []" % summary(r, 300))


def _big_ticks(n):
	out = []
	for i in range(n):
		b = Decimal(100001 + 2 * i).scaleb(-3)
		out.append(tick("BIG", ts=BASE + i * 1000, bid=b, ask=b + Decimal("0.002"), bid_size=i % 1000 + 1))
	return out


async def test_history_over_10000_rows_says_more_and_next_from_continues():
	srv = await start_server()
	ticks = _big_ticks(12000)
	c = await ingest(srv, ticks)
	rng = {"from": BASE, "to": BASE + 86_400_000_000}
	r1 = await history(c, symbol="BIG", **rng)
	got1 = r1.get("ticks") or []
	check(len(got1) == 10000, "range of 12,000 ticks returned %d; want the 10,000 cap" % len(got1))
	check(r1.get("more") is True and isinstance(r1.get("next_from"), int),
	      "a capped reply lacks \"more\":true and an integer next_from: %s"
	      % {k: v for k, v in r1.items() if k != "ticks"})
	check_ticks(got1, ticks[:10000], 1, "first page")
	r2 = await history(c, symbol="BIG", **{"from": r1["next_from"], "to": rng["to"]})
	got2 = r2.get("ticks") or []
	check(r2.get("more") in (None, False), "last page says more: %s" % {k: v for k, v in r2.items() if k != "ticks"})
	check(got2 and got2[0].get("seq") == 10001,
	      "page from next_from=%s starts at seq %s (ts %s); want 10001, the first tick not yet sent "
	      "(page 1 ended at seq %s ts %s)" % (r1["next_from"], got2[0].get("seq") if got2 else None,
						     got2[0].get("ts") if got2 else None, got1[-1].get("seq"), got1[-1].get("ts")))
	check_ticks(got2, ticks[10000:], 10001, "second page")

test_history_over_10000_rows_says_more_and_next_from_continues.timeout = 40


async def test_history_bad_arguments_are_bad_request_errors():
	srv = await start_server()
	c = await ingest(srv, [tick("AAPL", ts=BASE, bid=Decimal("1.5"))])
	cases = [{"limit": 0}, {"limit": "x"}, {"from": "yesterday"}, {"to": [1]},
		 {"interval": "2m"}, {"from": BASE + 5, "to": BASE}, {"symbol": "bad sym!"},
		 {"symbol": None}]
	for extra in cases:
		op = {"op": "history", "symbol": "AAPL", "id": "bad"}
		op.update(extra)
		op = {k: v for k, v in op.items() if v is not None}
		r = await c.request(op)
		check(r.get("type") == "error" and r.get("code") == "bad_request" and r.get("id") == "bad"
		      and r.get("message"), "%s answered %s; want a bad_request error with id and message"
		      % (summary(op, 300), summary(r, 300)))
	await c.ping_ok()  # the connection stays open


async def _two_pages(c, symbol, to):
	r1 = await history(c, symbol=symbol, **{"from": BASE, "to": to})
	check(r1.get("more") is True and isinstance(r1.get("next_from"), int),
	      "first page lacks more/next_from: %s" % {k: v for k, v in r1.items() if k != "ticks"})
	r2 = await history(c, symbol=symbol, **{"from": r1["next_from"], "to": to})
	check(not r2.get("more"), "second page says more: %s" % {k: v for k, v in r2.items() if k != "ticks"})
	return r1, r2


def _check_pages(r1, r2, n, what):
	p1, p2 = r1.get("ticks") or [], r2.get("ticks") or []
	seqs = [t.get("seq") for t in p1 + p2]
	missing = sorted(set(range(1, n + 1)) - set(seqs))
	dups = len(seqs) - len(set(seqs))
	check(not missing and not dups,
	      "%s: paging from next_from lost %d tick(s) (seqs %s) and repeated %d; page 1 had %d ticks "
	      "ending seq %s ts %s, next_from %s; page 2 starts %s"
	      % (what, len(missing), missing[:12], dups, len(p1), p1[-1].get("seq") if p1 else None,
		 p1[-1].get("ts") if p1 else None, r1.get("next_from"), summary(p2[:1], 300)))


async def test_history_paging_loses_no_tick_when_cap_falls_in_equal_timestamps():
	# Ticks 9,990..10,010 share one ts (a burst stamped at the same µs),
	# so the 10,000 cap falls inside it.
	srv = await start_server()
	ticks = []
	for i in range(12000):
		ts = BASE + (9995 * 1000 if 9990 <= i <= 10010 else i * 1000)
		ticks.append(tick("BIG", ts=ts, bid=Decimal(100001 + 2 * i).scaleb(-3)))
	c = await ingest(srv, ticks)
	r1, r2 = await _two_pages(c, "BIG", BASE + 86_400_000_000)
	_check_pages(r1, r2, 12000, "cap inside 21 ticks of equal ts")


async def test_history_paging_loses_no_out_of_order_tick():
	# Out-of-order ticks are applied in arrival order. One arrives
	# after tick 10,500 with a ts among the first page's; a client paging
	# through [from, to) with next_from must still see it once.
	srv = await start_server()
	ticks = []
	for i in range(12000):
		ticks.append(tick("BIG", ts=BASE + i * 1000, bid=Decimal(100001 + 2 * i).scaleb(-3)))
		if i == 10500:
			ticks.append(tick("BIG", ts=BASE + 5 * 1000 + 1, bid=Decimal("1.5")))
	c = await ingest(srv, ticks)
	r = await history(c, symbol="BIG", **{"from": BASE + 5000, "to": BASE + 6000})
	check([t.get("seq") for t in r.get("ticks") or []] == [6, 10502],
	      "range around the late tick: %s; want seqs [6, 10502]" % summary(r, 300))
	r1, r2 = await _two_pages(c, "BIG", BASE + 86_400_000_000)
	_check_pages(r1, r2, 12001, "late tick (seq 10502, ts in page 1's span)")


async def test_concurrent_history_during_ingest_is_consistent():
	# Six clients with four history requests in flight each, while 40,000
	# ticks are being ingested: every reply is for the symbol asked, its
	# ticks have consecutive seqs, and each tick is the one sent at that seq.
	srv = await start_server()
	syms = ["S%d" % i for i in range(4)]
	ticks = [tick(syms[i % 4], ts=BASE + i * 10, bid=Decimal(100001 + 2 * i).scaleb(-3), bid_size=i)
		 for i in range(40000)]
	by = {s: [t for t in ticks if t["symbol"] == s] for s in syms}
	feed = asyncio.create_task(srv.send_ticks(ticks))
	clients = [await Client.connect(srv, name="c%d" % k) for k in range(6)]
	bad, replies = [], [0]

	async def worker(c, k):
		for rnd in range(15):
			ids = []
			for j in range(4):
				s = syms[(k + j + rnd) % 4]
				op = {"op": "history", "symbol": s, "id": c.new_id()}
				op.update({"limit": 3000} if j % 2 else {"from": BASE, "to": BASE + 10 ** 9})
				await c.send(op)
				ids.append((op["id"], s))
			for rid, s in ids:
				r = await c.expect("history", id=rid, timeout=10)
				replies[0] += 1
				tk = r.get("ticks") or []
				if r.get("symbol") != s:
					bad.append("reply %s names %s, asked %s" % (rid, r.get("symbol"), s))
				for a, b in zip(tk, tk[1:]):
					if b.get("seq") != a.get("seq") + 1:
						bad.append("%s: seq %s then %s" % (s, a.get("seq"), b.get("seq")))
						break
				for t in tk:
					sent = by[s][t["seq"] - 1]
					if t.get("ts") != sent["ts"] or str(t.get("bid")) != str(sent["bid"]):
						bad.append("%s: %s is not the tick sent at that seq (%s)"
							   % (s, summary(t, 300), tick_line(sent)))
						break

	await asyncio.gather(*(worker(c, k) for k, c in enumerate(clients)))
	await feed
	check(not bad, "%d bad replies of %d: %s" % (len(bad), replies[0], bad[:3]))
	return "%d replies" % replies[0]


# The historian runs in its own process, so that parsing its megabytes of
# replies does not pause this process's event loop (and with it the feeder
# and the live reader), which would look like a stall of the server.
HISTORIAN = r"""
import asyncio, json, sys, time
import websockets

async def main(port):
	async with websockets.connect("ws://127.0.0.1:%d/ws" % port, max_size=1 << 26,
				      ping_interval=None) as ws:
		json.loads(await ws.recv())  # hello
		for k in range(3):
			await ws.send(json.dumps({"op": "history", "symbol": "BIG", "limit": 10000,
						  "id": 100 + k}))
		print("sent", time.monotonic(), flush=True)
		await asyncio.sleep(0.6)  # leave the replies unread a while
		got = {}
		while len(got) < 3:
			m = json.loads(await asyncio.wait_for(ws.recv(), 10))
			for o in (m if isinstance(m, list) else [m]):
				if o.get("type") == "history" or o.get("id") in (100, 101, 102):
					t = o.get("ticks") or []
					got[o.get("id")] = [o.get("type"), len(t), t[-1].get("seq") if t else None]
		print("done", time.monotonic(), json.dumps(got), flush=True)

asyncio.run(main(int(sys.argv[1])))
"""


async def test_big_history_does_not_stall_live_stream_for_others():
	srv = await start_server()
	await ingest(srv, _big_ticks(12000))
	live = await Client.connect(srv, name="live")
	await live.subscribe(["LIVE"])
	stop = asyncio.Event()

	async def feeder():
		i = 0
		while not stop.is_set():
			i += 1
			await srv.send_ticks([tick("LIVE", bid=Decimal(1000 + i).scaleb(-2))])
			await asyncio.sleep(0.005)

	async def read_live():
		while not stop.is_set():
			try:
				await live.recv_json(0.05)
			except asyncio.TimeoutError:
				pass

	feed = asyncio.create_task(feeder())
	reader = None
	proc = None
	try:
		await live.wait_seq("LIVE", 5)
		reader = asyncio.create_task(read_live())
		await asyncio.sleep(0.3)
		proc = await asyncio.create_subprocess_exec(
			"/usr/bin/python3", "-c", HISTORIAN, str(srv.port),
			stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
		out, err = await asyncio.wait_for(proc.communicate(), 20)
	finally:
		await asyncio.sleep(0.1)
		stop.set()
		await feed
		if reader is not None:
			await reader
		if proc is not None and proc.returncode is None:
			proc.kill()
			await proc.wait()
	lines = {l.split()[0]: l.split(None, 2)[1:] for l in out.decode().splitlines() if l.strip()}
	check(proc.returncode == 0 and "sent" in lines and "done" in lines,
	      "historian failed (exit %s): %r %r" % (proc.returncode, out[-300:], err[-500:]))
	t_req, t_done = float(lines["sent"][0]), float(lines["done"][0])
	got = json.loads(lines["done"][1])
	for k in ("100", "101", "102"):
		check(got.get(k) == ["history", 10000, 12000],
		      "history id %s answered [type, ticks, last seq] %s; want ['history', 10000, 12000]"
		      % (k, got.get(k)))
	times = [t for t, m in live.updates if m.get("symbol") == "LIVE"]
	during = [t for t in times if t_req <= t <= t_done]
	window = [t_req] + during + [t_done]
	gap = max(b - a for a, b in zip(window, window[1:]))
	check(len(during) >= 10, "the live client got %d updates in the %.2f s three big histories "
	      "were answered; want a flowing stream" % (len(during), t_done - t_req))
	check(gap < 0.3, "the live stream paused %.2f s while big histories were answered" % gap)
	live.assert_clean()
	return "%d live updates in %.2f s, longest gap %.0f ms" % (len(during), t_done - t_req, gap * 1000)

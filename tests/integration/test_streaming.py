"""Streaming guarantees (README, Protocol): heartbeats, conflation for slow
clients, isolation from a stalled client, gap-free delivery from the
synthetic feed. These assert behaviour, not speed: the bounds are generous
on purpose."""

import asyncio
import statistics
import time

from harness import Client, Decimal, assert_fields, check, now_us, \
	raw_ws_connect, start_server, tick, ws_frame


async def test_heartbeat_on_idle_connection():
	srv = await start_server(feed="none", args=["--heartbeat-ms", "300"])
	c = await Client.connect(srv)
	check(c.hello.get("heartbeat_ms") == 300, "hello heartbeat_ms %r, want 300" % c.hello.get("heartbeat_ms"))
	t0 = time.monotonic()
	hb = await c.expect("heartbeat", timeout=1.2)
	dt = time.monotonic() - t0
	ts = hb.get("ts")
	check(isinstance(ts, int) and abs(ts - now_us()) < 5_000_000,
	      "heartbeat ts %r is not the server's now in µs" % ts)
	await c.expect("heartbeat", timeout=1.0, what="a second heartbeat within 1 s")
	return "first heartbeat after %.2f s" % dt


async def test_slow_client_gets_merged_deltas_and_converges():
	srv = await start_server()
	first = tick("SLOW", bid="50.000", ask="50.010", bid_size=1, ask_size=1, last="50.005", last_size=1)
	await srv.send_ticks([first])
	# A small TCP window and tiny client-side queues: when this client does
	# not read, the server's socket really fills up.
	c = await Client.connect(srv, name="slow", rcvbuf=4096, max_queue=1, read_limit=1024)
	await c.subscribe(["SLOW"])
	await c.wait_seq("SLOW", 1)
	ticks = []
	volume, high, low = 1, Decimal("50.005"), Decimal("50.005")
	for i in range(1, 1001):
		last = Decimal("50.005") + Decimal((i * 7919) % 2001 - 1000) / 1000
		size = i % 7 + 1
		volume += size
		high, low = max(high, last), min(low, last)
		ticks.append(tick("SLOW", bid=str(Decimal("50.000") + Decimal(i) / 1000),
				  ask=str(Decimal("50.010") + Decimal(i) / 1000),
				  bid_size=i, ask_size=i + 1, last=str(last), last_size=size))
	await srv.send_ticks(ticks)
	await asyncio.sleep(1.0)  # not reading
	await c.wait_seq("SLOW", 1001, timeout=10)
	c.assert_clean()
	deltas = [m for _, m in c.updates if m["type"] == "delta" and m["symbol"] == "SLOW"]
	merged = [d for d in deltas if d["seq"] - d["from"] - 1 > 0]
	check(merged, "1000 ticks to a client that did not read for 1 s came as %d deltas, none merged "
	      "(first %s)" % (len(deltas), [(d["from"], d["seq"]) for d in deltas[:3]]))
	want = {k: v for k, v in ticks[-1].items() if k not in ("ts", "symbol")}
	want.update({"open": "50.005", "high": high, "low": low, "volume": volume, "trades": 1001})
	assert_fields(c.state["SLOW"]["fields"], want, "slow client's final state")
	return "%d deltas for 1000 ticks, %d ticks merged away" % (
		len(deltas), sum(d["seq"] - d["from"] - 1 for d in deltas))


async def test_stalled_client_does_not_delay_others_and_memory_stays_bounded():
	srv = await start_server(feed="synthetic:symbols=200,rate=20000,seed=3")
	# The stalled client: handshake by hand, subscribe to everything, never read.
	stalled = raw_ws_connect(srv.port, rcvbuf=2048)
	stalled.sendall(ws_frame('{"op":"subscribe","symbols":["*"],"id":1}'))
	reader = await Client.connect(srv, name="reader")
	await reader.subscribe(["*"])
	rss = []
	stop = asyncio.Event()

	async def sample():
		while not stop.is_set():
			v = srv.rss_kb()
			if v is not None:
				rss.append(v)
			await asyncio.sleep(0.2)
	sampler = asyncio.create_task(sample())
	latencies = []
	start = time.monotonic()
	end = start + 3.0
	while time.monotonic() < end:
		try:
			m = await reader.recv_json(end - time.monotonic())
		except asyncio.TimeoutError:
			break
		if m.get("type") in ("snapshot", "delta") and isinstance(m.get("ts"), int):
			latencies.append(now_us() - m["ts"])
	stop.set()
	await sampler
	reader.assert_clean()
	check(srv.alive(), "server died with a stalled client")
	times = [t for t, _ in reader.updates]
	check(times, "the reader got no update at all")
	# At least one update in every 200 ms window after the first one.
	empty = []
	w = times[0]
	while w + 0.2 <= end:
		if not any(w <= t < w + 0.2 for t in times):
			empty.append(round(w - start, 2))
		w += 0.2
	check(not empty, "no update for the reader in the 200 ms windows starting at %s s "
	      "(%d updates in all)" % (empty, len(times)))
	check(len(reader.state) >= 100, "the reader saw only %d of 200 symbols" % len(reader.state))
	peak = max(rss) if rss else None
	check(peak is not None and peak < 200 * 1024, "server RSS peaked at %s kB (limit 200 MB)" % peak)
	await reader.ping_ok()
	lat = ""
	if latencies:
		lat = ", tick-to-client latency p50 %.1f ms max %.1f ms" % (
			statistics.median(latencies) / 1000, max(latencies) / 1000)
	return "%d updates over 3 s, %d symbols, RSS peak %d kB%s" % (
		len(times), len(reader.state), peak, lat)


async def test_synthetic_wildcard_two_seconds_gap_free():
	srv = await start_server(feed="synthetic:symbols=50,rate=5000,seed=7")
	c = await Client.connect(srv)
	await c.subscribe(["*"])
	await c.collect(2.0)
	c.assert_clean()
	deltas = [m for _, m in c.updates if m["type"] == "delta"]
	check(len(deltas) >= 50, "only %d deltas in 2 s at 5000 ticks/s" % len(deltas))
	check(len(c.state) == 50, "saw %d symbols, want the 50 of symbols=50" % len(c.state))
	# The server agrees with what the client holds (or is ahead of it).
	r = await c.request({"op": "symbols"})
	seqs = {e["symbol"]: e["seq"] for e in r.get("symbols", [])}
	behind = [s for s, st in c.state.items() if seqs.get(s, 0) < st["seq"]]
	check(not behind, "client holds newer seqs than the server reports for %s" % behind[:5])
	return "%d updates, %d deltas applied" % (len(c.updates), len(deltas))

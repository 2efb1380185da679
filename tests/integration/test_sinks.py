"""Live data never waits for a sink. When the store or an ingest's Redis link
cannot keep up, the clients' stream stays fresh and the feed is not slowed;
the store records what it dropped as gaps (seq ranges per symbol) that
history reports, the Redis link carries the state to the edges instead of
every tick, and /healthz says 200 with the sink's state on its own line.

The store is made to fall behind by another process holding the database's
write lock (as a long backup or a sqlite3 shell might): the writer cannot
commit at all for a few seconds."""

import asyncio
import os
import socket
import sqlite3
import tempfile
import time

from harness import REDIS_SERVER, SKIP, Client, Node, Redis, Server, check, converged, free_port, \
	http_request, metric, redis_command, start_server
from harness import now_us as harness_now_us


async def _metric(srv, name):
	v = await metric(srv, name)
	check(v is not None, "/metrics has no %s" % name)
	return v


def _hold_write_lock(path, seconds):
	"""Hold the database's write lock for `seconds`, from this process."""
	db = sqlite3.connect(path, timeout=10, isolation_level=None)
	db.execute("BEGIN IMMEDIATE")
	time.sleep(seconds)
	db.execute("ROLLBACK")
	db.close()


async def test_store_that_cannot_write_drops_into_gaps_and_the_stream_goes_on():
	srv = await start_server(feed="synthetic:symbols=20,rate=20000,seed=5",
				 args=["--store-backlog", "2000"])
	c = await Client.connect(srv)
	await c.subscribe(["*"])
	await c.collect(0.5)
	applied0 = await _metric(srv, "publisher_ticks_applied_total")
	feed0 = await _metric(srv, "publisher_feed_ticks_total")
	lock = asyncio.create_task(asyncio.to_thread(_hold_write_lock, srv.db, 3.0))
	await asyncio.sleep(0.3)

	# While the store cannot write: the stream goes on, in every window,
	# and /healthz keeps the node (200) while saying the store is behind.
	windows, health = [], None
	for _ in range(5):
		before = len(c.updates)
		await c.collect(0.4)
		windows.append(len(c.updates) - before)
		status, _, body = await http_request(srv.port, "/healthz")
		if b"store: " in body and b"degraded" in body:
			health = (status, body.decode())
	await lock
	applied1 = await _metric(srv, "publisher_ticks_applied_total")
	feed1 = await _metric(srv, "publisher_feed_ticks_total")
	c.assert_clean()
	check(min(windows) > 0, "a 0.4 s window with no update while the store was "
	      "stuck: %s" % windows)
	check(health is not None, "/healthz never said the store was behind")
	check(health[0] == 200 and health[1].startswith("ok, degraded"),
	      "/healthz while the store was behind: %r" % (health,))
	# Every tick the feed made was applied: nothing waited for the disk.
	check(applied1 - applied0 >= 0.99 * (feed1 - feed0),
	      "applied %d of the %d ticks the feed made while the store was stuck"
	      % (applied1 - applied0, feed1 - feed0))

	# Once it can write again it catches up and records the gaps.
	deadline = time.monotonic() + 20
	while await _metric(srv, "publisher_store_gaps_written_total") == 0:
		check(time.monotonic() < deadline, "no gap was recorded")
		await asyncio.sleep(0.2)
	dropped = await _metric(srv, "publisher_store_ticks_dropped_total")
	check(dropped > 0, "nothing was dropped while the store could not write")
	sym = sorted(c.state)[0]
	r = await c.request({"op": "history", "symbol": sym, "from": 0}, timeout=10)
	check(r.get("type") == "history" and r.get("gaps"),
	      "history of %s reports no gaps: %s" % (sym, str(r)[:300]))
	g = r["gaps"][0]
	check(g["from_seq"] <= g["to_seq"] and g["ticks"] >= 1 and g["from_ts"] <= g["to_ts"],
	      "a gap that does not add up: %s" % g)
	seqs = {t["seq"] for t in r["ticks"]}
	check(not any(g["from_seq"] <= s <= g["to_seq"] for s in seqs for g in r["gaps"]),
	      "history has ticks inside a gap")
	rc = await srv.stop()
	check(rc == 0, "exit %s after SIGTERM" % rc)

	# In the file: each symbol's seq is its stored ticks plus its gaps,
	# each seq once.
	db = sqlite3.connect(srv.db)
	bad = db.execute(
		"SELECT s.name, st.seq, (SELECT count(*) FROM ticks AS t WHERE t.symbol_id = s.id), "
		"(SELECT coalesce(sum(ticks), 0) FROM gaps AS g WHERE g.symbol_id = s.id) "
		"FROM symbols AS s JOIN state AS st ON st.symbol_id = s.id").fetchall()
	db.close()
	wrong = [row for row in bad if row[1] != row[2] + row[3]]
	check(bad and not wrong, "seq != stored + gap ticks for %s" % wrong[:5])
	return "%d ticks dropped into gaps, windows of updates while stuck %s; /healthz %s %r" % (
		dropped, windows, health[0], health[1].splitlines()[0])


async def test_a_replay_waits_for_the_store_instead():
	"""A file may wait: a replay held up by a stuck store loses nothing."""
	n = 100_000
	tmp = tempfile.mkdtemp(prefix="publisher-it-replay-")
	path = os.path.join(tmp, "ticks.csv")
	with open(path, "w") as f:
		f.write("ts,symbol,bid,ask\n")
		for i in range(n):
			f.write("%d,S%02d,%d.%02d,%d.%02d\n" % (1_700_000_000_000_000 + i, i % 50,
								   100 + i % 7, i % 100, 101 + i % 7, i % 100))
	srv = await start_server(feed="replay:%s,speed=max" % path,
				 args=["--store-backlog", "1000"])
	await asyncio.to_thread(_hold_write_lock, srv.db, 1.5)
	deadline = time.monotonic() + 60
	while await _metric(srv, "publisher_store_ticks_written_total") < n:
		check(time.monotonic() < deadline, "the replay was not stored whole: %d of %d"
		      % (await _metric(srv, "publisher_store_ticks_written_total"), n))
		await asyncio.sleep(0.2)
	check(await _metric(srv, "publisher_store_ticks_dropped_total") == 0,
	      "a replay dropped ticks instead of waiting")
	os.remove(path)
	os.rmdir(tmp)
	return "%d ticks stored, none dropped, after the store was stuck 1.5 s" % n


# ------------------------------------------------------------ Redis link

def _pump(port, syms, seconds, rate=100_000):
	"""Write tick lines to a tcp feed at about `rate` a second for about
	`seconds`, each stamped with the time it is sent; returns how many."""
	sent = 0
	with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
		start = time.monotonic()
		end = start + seconds
		while time.monotonic() < end:
			ahead = start + sent / rate - time.monotonic()
			if ahead > 0:
				time.sleep(ahead)
			ts = harness_now_us()
			s.sendall("".join('{"ts":%d,"symbol":"%s","bid":%d.%02d,"ask":%d.%02d}\n'
					  % (ts, syms[i % len(syms)], 100 + i % 9, i % 100,
					     101 + i % 9, i % 100)
					  for i in range(sent, sent + 2000)).encode())
			sent += 2000
	return sent


async def test_ingest_whose_redis_is_paused_keeps_its_clients_fresh():
	if not REDIS_SERVER:
		return SKIP
	r = await Redis().start()
	feed_port = free_port()
	ing = await Server(feed="tcp:127.0.0.1:%d" % feed_port, name="ingest",
			   args=["--role", "ingest", "--redis", r.addr]).start()
	edge = await Node("edge", r, "edge").start()
	syms = ["S%02d" % i for i in range(50)]
	c = await Client.connect(ing, name="ingest-client")
	await c.subscribe(["*"])
	# Redis answers nothing for 3 s (as a slow or blocked Redis would)
	# while ticks pour in.
	reply = await asyncio.to_thread(redis_command, r.redis_port, "CLIENT", "PAUSE", "3000", "ALL")
	check(reply.startswith(b"+OK"), "CLIENT PAUSE answered %r" % reply)
	pump = asyncio.create_task(asyncio.to_thread(_pump, feed_port, syms, 2.5))
	ages, health = [], None
	t_end = time.monotonic() + 2.5
	while time.monotonic() < t_end:
		got = await c.collect(0.25)
		now = harness_now_us()
		ages += [now - m["ts"] for m in got if m.get("type") in ("snapshot", "delta")]
		status, _, body = await http_request(ing.port, "/healthz")
		if b"redis: " in body and b"degraded" in body:
			health = (status, body.decode())
	sent = await pump
	c.assert_clean()
	check(ages, "the ingest's client got nothing while Redis was paused")
	ages.sort()
	p50 = ages[len(ages) // 2] / 1000
	check(p50 < 500, "the ingest's client held prices %.0f ms old (median) while Redis was "
	      "paused: it waited for Redis" % p50)
	check(health and health[0] == 200 and health[1].startswith("ok, degraded"),
	      "ingest /healthz while Redis was paused: %r" % (health,))
	# Once Redis answers again, the edge ends with the ingest's exact state.
	await converged([edge], ing, syms, timeout=30)
	folded = await _metric(ing, "publisher_redis_ticks_folded_total")
	dropped = await _metric(ing, "publisher_redis_ticks_dropped_total")
	return "%d ticks sent in 2.5 s; ingest client's median age %.1f ms; %d folded, %d dropped " \
	       "into state; /healthz %s %r; edge converged" % (
		       sent, p50, folded, dropped, health[0], health[1].splitlines()[1][:80])

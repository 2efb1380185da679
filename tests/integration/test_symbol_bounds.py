"""Bounds on symbols, against the real binary: the made-up-symbols attack
(README, Security: "Made-up symbols") and a feed that invents symbols.

A name that has no data yet costs the server a placeholder for as long as
some client subscribes to it, and anyone can make names up. The bounds
(README, Security): --max-pending-symbols such names per connection,
--max-pending-symbols-total for the server, --max-symbols-total symbols
with data. They are set low here, so that the attack, scaled down to run
in seconds, meets them:

- 20 connections each send 10 subscribes of 1,000 names that do not exist
  (P<conn>_<k>_<i>). With 2,000 per connection and 10,000 in all, the
  first five fill the server's room with two subscribes each and are
  refused the other eight by the connection's bound; the other fifteen are
  refused everything by the server's. Each refusal is too_many_symbols
  naming its bound, and nothing of a refused subscribe is subscribed.
- While they are connected, RSS grows by less than what the bound allows:
  10,000 placeholders at 1 KB (they cost about 0.7 KB with their
  subscription), plus 100 KB per connection for the connections
  themselves. 10 s after they close it is within 20 % of the RSS measured
  before the attack, after a warm-up: a desk client subscribed to symbols
  with data and receiving their ticks, and one connection that subscribed
  to 1,000 made-up names, unsubscribed half, and left.
- A desk client can still subscribe to symbols with data while the room is
  full, and to names with no data once the attackers are gone.

Before these bounds the same attack grew RSS by 124 MB (about 620 B a
name) and kept it after the attackers had closed.

Under a sanitizer the allocator holds freed memory in quarantine and RSS
means something else: the figures are reported, not checked.
"""

import asyncio
import json
import re
import sqlite3
import time

from harness import Client, binary, check, http_request, metric, tick, Server

PER_CONN = 2000
TOTAL = 10000
CONNS = 20
SUBSCRIBES = 10
NAMES = 1000


def _sanitized():
	with open(binary(), "rb") as f:
		image = f.read()
	return b"__asan_init" in image or b"__tsan_init" in image


async def _labeled(srv, name, label, value):
	"""A /metrics sample by label value (harness.metric takes the first)."""
	status, _, body = await http_request(srv.port, "/metrics")
	check(status == 200, "/metrics: %s" % status)
	want = '%s{%s="%s"} ' % (name, label, value)
	for line in body.decode().splitlines():
		if line.startswith(want):
			return float(line.rsplit(" ", 1)[1])
	return None


async def _wait_metric(srv, name, want, timeout=5.0):
	deadline = time.monotonic() + timeout
	while True:
		v = await metric(srv, name)
		if v == want or time.monotonic() > deadline:
			return v
		await asyncio.sleep(0.05)


async def _attack(srv, conn):
	"""One attacker: 10 subscribes of 1,000 made-up names sent at once,
	then their replies, by id."""
	c = await Client.connect(srv, name="attacker%d" % conn)
	for k in range(SUBSCRIBES):
		names = ["P%d_%d_%d" % (conn, k, i) for i in range(NAMES)]
		await c.send({"op": "subscribe", "symbols": names, "id": k})
	replies = []
	for k in range(SUBSCRIBES):
		replies.append(await c.expect(None, timeout=10, id=k))
	return c, replies


async def test_made_up_symbols_are_bounded_and_their_memory_comes_back():
	srv = await Server(feed="stdin", args=[
		"--max-pending-symbols", str(PER_CONN),
		"--max-pending-symbols-total", str(TOTAL)]).start()
	real = ["R%d" % i for i in range(50)]
	await srv.send_ticks([tick(s, bid="1.%d" % i, ask="2.5") for i, s in enumerate(real)])
	desk = await Client.connect(srv, name="desk")
	await desk.subscribe(real)
	for s in real:
		await desk.wait_seq(s, 1)

	# Warm-up, and the placeholders of one client go with its
	# subscriptions: half by unsubscribe, the rest when it leaves.
	warm = await Client.connect(srv, name="warm-up")
	made_up = ["W_%d" % i for i in range(NAMES)]
	await warm.subscribe(made_up)
	check(await metric(srv, "publisher_symbols_pending") == NAMES,
	      "%d made-up names subscribed: publisher_symbols_pending %s"
	      % (NAMES, await metric(srv, "publisher_symbols_pending")))
	r = await warm.request({"op": "unsubscribe", "symbols": made_up[:NAMES // 2]})
	check(r.get("type") == "unsubscribed", "unsubscribe answered %s" % r)
	check(await metric(srv, "publisher_symbols_pending") == NAMES // 2,
	      "half unsubscribed: publisher_symbols_pending %s, want %d"
	      % (await metric(srv, "publisher_symbols_pending"), NAMES // 2))
	await warm.close()
	v = await _wait_metric(srv, "publisher_symbols_pending", 0)
	check(v == 0, "the only subscriber of 500 placeholders left: %s still counted" % v)
	await srv.send_ticks([tick(s, bid="1.5%d" % i) for i, s in enumerate(real)])
	for s in real:
		await desk.wait_seq(s, 2)
	await asyncio.sleep(1.5)
	start_kb = srv.rss_kb()

	# The attack.
	attackers = []
	for conn in range(CONNS):
		attackers.append(await _attack(srv, conn))
	during_kb = srv.rss_kb()
	accepted = 0
	for conn, (c, replies) in enumerate(attackers):
		for k, m in enumerate(replies):
			if m.get("type") == "subscribed":
				accepted += 1
				continue
			check(m.get("type") == "error" and m.get("code") == "too_many_symbols",
			      "attacker %d subscribe %d answered %s" % (conn, k, json.dumps(m)[:200]))
			# The first five fill the server's room, two subscribes
			# each; the connection's bound is checked first.
			full = conn >= TOTAL // PER_CONN
			bound = "max-pending-symbols-total" if full else "max-pending-symbols"
			check("(%s)" % bound in m.get("message", ""),
			      "attacker %d subscribe %d: the refusal should name %s: %r"
			      % (conn, k, bound, m.get("message")))
			check("nothing was subscribed" in m.get("message", ""),
			      "a refusal says what happened to the request: %r" % m.get("message"))
	check(accepted == TOTAL // NAMES,
	      "%d subscribes of %d names accepted; the bounds allow %d"
	      % (accepted, NAMES, TOTAL // NAMES))
	pending = await metric(srv, "publisher_symbols_pending")
	check(pending == TOTAL, "publisher_symbols_pending %s during the attack, want %d"
	      % (pending, TOTAL))
	per_conn = await _labeled(srv, "publisher_subscribes_refused_total", "limit",
				  "max-pending-symbols")
	total = await _labeled(srv, "publisher_subscribes_refused_total", "limit",
			       "max-pending-symbols-total")
	check((per_conn, total) == (5 * 8, 15 * 10),
	      "subscribes refused by the connection's and the server's bound: %s, %s; want 40, 150"
	      % (per_conn, total))
	# The room is full: a name with data is still served, a new one is not.
	await srv.send_ticks([tick("NEWCO", bid="7.25")])
	v = await _wait_metric(srv, "publisher_symbols", len(real) + 1)
	check(v == len(real) + 1, "NEWCO's tick was not applied: publisher_symbols %s" % v)
	await desk.subscribe(["NEWCO"])
	await desk.wait_seq("NEWCO", 1)
	r = await desk.request({"op": "subscribe", "symbols": ["LATER"]})
	check(r.get("code") == "too_many_symbols" and "max-pending-symbols-total" in r.get("message", ""),
	      "a new name while the server's room is full: %s" % json.dumps(r)[:200])

	for c, _ in attackers:
		await c.close()
	closed = time.monotonic()
	v = await _wait_metric(srv, "publisher_symbols_pending", 0)
	check(v == 0, "the attackers left: %s placeholders still counted" % v)
	await desk.subscribe(["LATER"])
	await srv.send_ticks([tick("LATER", bid="3.5")])
	await desk.wait_seq("LATER", 1)
	await desk.request({"op": "unsubscribe", "symbols": ["LATER"]})
	await asyncio.sleep(max(0, closed + 10 - time.monotonic()))
	after_kb = srv.rss_kb()
	desk.assert_clean()

	growth_kb = during_kb - start_kb
	allowed_kb = TOTAL * 1 + CONNS * 100
	figures = ("RSS %d kB after the warm-up, %d kB under attack (+%d kB; the bound allows "
		   "%d kB), %d kB after the attackers left" % (
			   start_kb, during_kb, growth_kb, allowed_kb, after_kb))
	if _sanitized():
		return figures + " (sanitizer build: not checked)"
	check(growth_kb < allowed_kb, "RSS grew by %d kB under attack, more than the %d kB the "
	      "bounds allow: %s" % (growth_kb, allowed_kb, figures))
	check(after_kb <= start_kb * 1.2, "RSS 10 s after the attackers left is not within "
	      "20 %% of the start: %s" % figures)
	trims = await metric(srv, "publisher_memory_trims_total")
	return figures + "; %d memory trims" % trims


test_made_up_symbols_are_bounded_and_their_memory_comes_back.timeout = 60


def _store_symbols(db):
	"""Names the store knows (any table may hold them by symbol_id)."""
	con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
	try:
		return {r[0] for r in con.execute("SELECT name FROM symbols")}
	finally:
		con.close()


async def test_a_feed_that_invents_symbols_meets_the_bound():
	bound = 1000
	invented = 5000
	srv = await Server(feed="stdin", args=["--max-symbols-total", str(bound)]).start()
	wild = await Client.connect(srv, name="wildcard")
	await wild.subscribe(["*"])
	late = await Client.connect(srv, name="late")
	await late.subscribe(["N%d" % (invented - 1)])
	# In pieces, so that several drains meet the bound.
	for start in range(0, invented, 500):
		await srv.send_ticks([tick("N%d" % i, bid="1.%d" % (i % 100), ask="9.5")
				      for i in range(start, start + 500)])
		await asyncio.sleep(0.05)
	await srv.send_ticks([tick("N0", bid="1.01"), tick("N%d" % (invented - 1), bid="1.01")])
	refused = await _wait_metric(srv, "publisher_symbols_refused_total", invented - bound + 1)
	check(refused == invented - bound + 1,
	      "publisher_symbols_refused_total %s, want %d" % (refused, invented - bound + 1))
	check(await metric(srv, "publisher_symbols") == bound,
	      "publisher_symbols %s with --max-symbols-total %d"
	      % (await metric(srv, "publisher_symbols"), bound))
	check(await metric(srv, "publisher_symbols_max") == bound, "publisher_symbols_max")
	first = {"N%d" % i for i in range(bound)}
	await wild.wait_seq("N0", 2)
	deadline = time.monotonic() + 5
	while len(wild.state) < bound and time.monotonic() < deadline:
		await wild.collect(0.1)
	await wild.collect(0.3)
	check(set(wild.state) == first, "the wildcard holds %d symbols (%s…), want the first "
	      "%d the feed sent" % (len(wild.state), sorted(set(wild.state) - first)[:3], bound))
	r = await wild.request({"op": "symbols"})
	names = {e["symbol"] for e in r["symbols"]}
	check(names == first, "symbols lists %d names; want the first %d the feed sent"
	      % (len(names), bound))
	check(await metric(srv, "publisher_symbols_pending") == 1,
	      "the late client's name, refused data, stays a placeholder")
	extra = await late.collect(0.3)
	check(not [m for m in extra if m.get("type") in ("snapshot", "delta")],
	      "a subscriber of a refused symbol got updates: %s" % extra[:2])
	await late.ping_ok()

	lines = [l for l in srv.stderr_text().splitlines()
		 if "ticks of new symbols refused:" in l and "suppressed" not in l]
	check(lines, "nothing logged about the refused ticks")
	check(len(lines) <= 10, "%d lines about refused ticks within seconds: not rate-limited"
	      % len(lines))
	check("--max-symbols-total" in lines[0], "the log line names the limit: %s" % lines[0])

	# The store saw none of them, and is not asked to make room for them.
	rc = await srv.stop()
	check(rc == 0, "exit code %s" % rc)
	stored = _store_symbols(srv.db)
	check(stored == {"N%d" % i for i in range(bound)},
	      "the store knows %d names (%s…); want the %d with data"
	      % (len(stored), sorted(stored)[:3], bound))

	# A store that holds more than a lower bound: all served, new refused.
	again = await Server(feed="stdin", db=srv.db, name="restarted",
			     args=["--max-symbols-total", str(bound // 2)]).start()
	c = await Client.connect(again, name="after restart")
	r = await c.request({"op": "symbols"})
	check(len(r["symbols"]) == bound, "after a restart with a lower bound %d symbols are "
	      "served, want all %d" % (len(r["symbols"]), bound))
	await again.send_ticks([tick("FRESH", bid="1.5"), tick("N1", bid="2.5")])
	await c.subscribe(["N1"])
	await c.wait_seq("N1", 2)
	refused = await _wait_metric(again, "publisher_symbols_refused_total", 1)
	check(refused == 1, "a new symbol beyond the lower bound: refused %s, want 1" % refused)
	check(re.search(r"holds %d symbols, more than --max-symbols-total %d" % (bound, bound // 2),
			again.stderr_text()), "no warning at start about the store holding more "
	      "symbols than the bound")
	return "%d invented symbols: %d served, %d ticks refused, %d refusal lines logged" % (
		invented, bound, invented - bound + 1, len(lines))

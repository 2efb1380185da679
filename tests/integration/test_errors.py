"""Errors and limits (README, Protocol): every bad request gets an error
reply that echoes its id and says what was wrong; the connection stays open,
except for an oversized message (1009) and sustained abuse (1008); other
clients never notice."""

import asyncio
import collections
import time

from harness import Client, Closed, assert_fields, check, start_server, tick


class Feeder:
	"""Sends a tick for `symbol` every `period` s until stopped, while a
	watcher client reads everything; proves other clients keep being served."""

	def __init__(self, srv, watcher, symbol="FEED", period=0.03):
		self.srv, self.watcher, self.symbol, self.period = srv, watcher, symbol, period
		self.sent = 1  # the seeding tick
		self.last = None
		self.stop = asyncio.Event()
		self.tasks = []

	async def start(self):
		await self.srv.send_ticks([tick(self.symbol, bid="100.00", ask="100.02")])
		await self.watcher.subscribe([self.symbol])
		await self.watcher.wait_seq(self.symbol, 1)
		self.tasks = [asyncio.create_task(self._feed()), asyncio.create_task(self._read())]

	async def _feed(self):
		i = 0
		while not self.stop.is_set():
			i += 1
			self.last = tick(self.symbol, bid="%d.%02d" % (100 + i // 100, i % 100), ask="%d.%02d" % (200 + i // 100, i % 100))
			await self.srv.send_ticks([self.last])
			self.sent += 1
			await asyncio.sleep(self.period)

	async def _read(self):
		while not self.stop.is_set():
			try:
				await self.watcher.recv_json(0.1)
			except asyncio.TimeoutError:
				pass

	async def finish(self):
		"""Stop feeding; the watcher must end gap-free at the last tick,
		having received updates all along (returns how many)."""
		self.stop.set()
		for t in self.tasks:
			await t
		await self.watcher.wait_seq(self.symbol, self.sent)
		self.watcher.assert_clean()
		assert_fields(self.watcher.state[self.symbol]["fields"],
			      {k: v for k, v in self.last.items() if k in ("bid", "ask")}, "watcher")
		return len(self.watcher.updates)


async def _expect_error(c, payload, codes, rid=None, what=None):
	"""Send payload (str or dict); the reply must be an error with one of
	codes, a message, and the id echoed; then a ping must still work."""
	await c.send(payload)
	desc = what or (payload if isinstance(payload, str) else str(payload))[:80]
	try:
		if rid is not None:
			r = await c.expect(None, timeout=5, what="error reply to %s" % desc,
					   pred=lambda m: m.get("type") not in ("snapshot", "delta", "heartbeat")
					   and m.get("id") == rid)
		else:
			r = await c.expect("error", timeout=5, what="error reply to %s" % desc)
	except Closed as e:
		raise AssertionError("connection closed after %s (code %s); it must stay open"
				     % (desc, e.code))
	check(r.get("type") == "error", "%s answered %s, want an error" % (desc, r))
	check(r.get("code") in codes, "%s: error code %r, want %s (%s)" % (desc, r.get("code"), codes, r))
	check(isinstance(r.get("message"), str) and len(r["message"].strip()) >= 5,
	      "%s: error without a useful message: %s" % (desc, r))
	if rid is not None:
		check(r.get("id") == rid, "%s: error does not echo id %r: %s" % (desc, rid, r))
	try:
		await c.ping_ok()
	except Closed as e:
		raise AssertionError("connection closed after the error for %s (code %s)" % (desc, e.code))
	await asyncio.sleep(0.05)  # let the feeder's ticks interleave with the errors
	return r


async def test_errors_reply_with_code_and_id_and_keep_connection():
	srv = await start_server(args=["--max-symbols", "5"])
	watcher = await Client.connect(srv, name="watcher")
	feeder = Feeder(srv, watcher)
	await feeder.start()
	c = await Client.connect(srv, name="offender")
	before = len(watcher.updates)
	results = []
	results.append(await _expect_error(c, "this is not JSON", {"bad_json"}))
	results.append(await _expect_error(c, '{"op":"ping","id":5', {"bad_json"}, what="truncated JSON"))
	results.append(await _expect_error(c, "[1,2]", {"bad_json", "bad_request"}))
	results.append(await _expect_error(c, '"just a string"', {"bad_json", "bad_request"}))
	results.append(await _expect_error(c, {"op": "frobnicate", "id": 11}, {"unknown_op"}, 11))
	results.append(await _expect_error(c, {"id": 111}, {"bad_request", "unknown_op"}, 111,
					   what="no op"))
	results.append(await _expect_error(c, {"op": "subscribe", "id": 12}, {"bad_request"}, 12))
	results.append(await _expect_error(c, {"op": "subscribe", "symbols": "AAPL", "id": 13},
					   {"bad_request"}, 13, what="symbols not an array"))
	results.append(await _expect_error(c, {"op": "subscribe", "symbols": ["BAD SYMBOL!"], "id": 14},
					   {"bad_request"}, 14))
	results.append(await _expect_error(c, {"op": "subscribe", "symbols": ["X" * 33], "id": 15},
					   {"bad_request"}, 15, what="33-character symbol"))
	results.append(await _expect_error(c, {"op": "subscribe", "id": "str-id",
					       "symbols": ["S1", "S2", "S3", "S4", "S5", "S6"]},
					   {"too_many_symbols"}, "str-id", what="6 symbols with --max-symbols 5"))
	# history: no store yet, so any error with a message; a real history
	# reply (once the store lands) is accepted too.
	await c.send({"op": "history", "symbol": "FEED", "limit": 5, "id": 16})
	r = await c.expect(None, pred=lambda m: m.get("id") == 16, what="reply to history")
	if r.get("type") == "error":
		check(isinstance(r.get("message"), str) and r["message"].strip(),
		      "history error without a message: %s" % r)
	else:
		check(r.get("type") == "history" and isinstance(r.get("ticks"), list),
		      "history answered %s" % r)
	await c.ping_ok()
	mid = len(watcher.updates)
	await asyncio.sleep(0.3)
	n = await feeder.finish()
	check(mid > before, "the watcher got no update while errors were being answered")
	check(len(watcher.updates) > mid, "the watcher got no update after the errors")
	codes = [r["code"] for r in results]
	return "codes %s; watcher got %d updates" % (",".join(codes), n)


async def test_max_symbols_counts_per_connection():
	srv = await start_server(args=["--max-symbols", "5"])
	c = await Client.connect(srv)
	await c.subscribe(["A1", "A2", "A3"])
	await _expect_error(c, {"op": "subscribe", "symbols": ["A4", "A5", "A6"], "id": 9},
			    {"too_many_symbols"}, 9, what="3 + 3 symbols with --max-symbols 5")
	# Re-subscribing to symbols already held adds nothing.
	await c.subscribe(["A1", "A2"])
	await c.subscribe(["A4", "A5"])


async def test_oversized_message_closes_1009_others_unaffected():
	srv = await start_server(args=["--max-message-bytes", "4096"])
	watcher = await Client.connect(srv, name="watcher")
	feeder = Feeder(srv, watcher)
	await feeder.start()
	c = await Client.connect(srv, name="big")
	await c.ping_ok()
	# Under the limit is fine.
	r = await c.request({"op": "ping", "id": "x" * 100})
	check(r.get("type") == "pong", "a 100-byte ping answered %s" % r)
	big = '{"op":"ping","id":"%s"}' % ("y" * 10000)
	await c.send(big)
	code = await c.wait_closed(5)
	check(code is not None, "connection still open 5 s after a %d-byte message (limit 4096)" % len(big))
	check(code == 1009, "a %d-byte message over the 4096 limit closed with %s, want 1009"
	      % (len(big), code))
	errs = [m for m in c.log if m.get("type") == "error"]
	await asyncio.sleep(0.2)
	check(srv.alive(), "server died")
	await feeder.finish()
	await watcher.ping_ok()
	other = await Client.connect(srv, name="after")
	await other.ping_ok()
	return "closed 1009%s" % (" after error %s" % errs[-1].get("code") if errs else "")


async def _ping_lockstep(c, count, first_id=0):
	"""Send `count` pings as fast as replies come back (one in flight), so
	the server has read everything we sent whenever it answers.
	Returns (pongs, rate_limited errors, other replies, close code or None)."""
	pongs, limited, other = [], [], []

	def sort(m):
		if m.get("type") == "pong":
			pongs.append(m)
		elif m.get("type") == "error" and m.get("code") == "rate_limited":
			limited.append(m)
		elif m.get("type") not in ("heartbeat", "snapshot", "delta"):
			other.append(m)
	for i in range(first_id, first_id + count):
		try:
			await c.send({"op": "ping", "id": i})
			while True:
				m = await c.recv_json(5)
				if m.get("type") in ("heartbeat", "snapshot", "delta"):
					continue
				break
		except Closed as e:
			if not e.during_send:
				return pongs, limited, other, e.code
			# The close frame may still be queued behind replies.
			rest, code = await c.drain_until_closed(3)
			for m in rest:
				sort(m)
			return pongs, limited, other, code
		except asyncio.TimeoutError:
			raise AssertionError("no reply to ping %d within 5 s (%d pongs, %d rate_limited so far)"
					     % (i, len(pongs), len(limited)))
		sort(m)
	return pongs, limited, other, None


async def test_rate_limit_replies_rate_limited_then_1008():
	srv = await start_server(feed="none", args=["--rate-limit", "10", "--rate-burst", "20"])
	c = await Client.connect(srv)
	t0 = time.monotonic()
	pongs, limited, other, closed = await _ping_lockstep(c, 100)
	elapsed = time.monotonic() - t0
	check(limited, "100 fast pings with --rate-limit 10 --rate-burst 20: no rate_limited error "
	      "(%d pongs, other %s, close %s)" % (len(pongs), other[:3], closed))
	check(all(isinstance(m.get("message"), str) and m["message"].strip() for m in limited),
	      "rate_limited without a message: %s" % limited[:1])
	check(pongs, "no ping answered at all (the burst allows 20)")
	check(len(pongs) <= 20 + 10 * elapsed + 2,
	      "%d pings answered in %.2f s with a burst of 20 at 10/s" % (len(pongs), elapsed))
	check(not other, "unexpected replies: %s" % other[:3])
	if closed is None:
		code = await c.wait_closed(1.0)
		closed = code
	if closed is not None:
		check(closed == 1008, "connection closed with %s under sustained abuse, want 1008" % closed)
	check(srv.alive(), "server died")
	other_client = await Client.connect(srv, name="other")
	await other_client.ping_ok()
	return "%d pongs, %d rate_limited in %.2f s, close %s" % (len(pongs), len(limited), elapsed, closed)


async def test_rate_limited_error_echoes_id():
	srv = await start_server(feed="none", args=["--rate-limit", "10", "--rate-burst", "20"])
	c = await Client.connect(srv)
	pongs, limited, other, closed = await _ping_lockstep(c, 25, first_id=500)
	check(limited, "25 fast pings with a burst of 20: no rate_limited error (%d pongs, close %s)"
	      % (len(pongs), closed))
	want = list(range(500 + len(pongs), 500 + len(pongs) + len(limited)))
	got = [m.get("id") for m in limited]
	check(got == want, "rate_limited errors echo ids %s, want %s (every reply echoes the "
	      "request's id): %s" % (got[:5], want[:5], limited[:1]))


async def test_rate_limit_flood_closes_1008_not_reset():
	"""A client that floods (100 pings as fast as it can write them, without
	waiting for replies) is sustained abuse (README, Protocol): it must see
	close code 1008, not a bare reset."""
	srv = await start_server(feed="none", args=["--rate-limit", "10", "--rate-burst", "20"])
	c = await Client.connect(srv)
	try:
		for i in range(100):
			await c.send({"op": "ping", "id": i})
			# Let the library's reader run between writes, as a
			# browser's network thread would. (A loop that never yields
			# reads nothing until a write fails, and asyncio then drops
			# the unread close frame: that 1006 would be the client's.)
			await asyncio.sleep(0.001)
	except Closed:
		pass  # the close code is read below, after what is still queued
	# Everything the server sent, up to its close frame.
	replies, closed = await c.drain_until_closed(3)
	kinds = collections.Counter(m.get("code") or m.get("type") for m in replies)
	check(closed is not None or kinds.get("rate_limited"),
	      "100 pings in a burst: neither rate_limited errors nor a close (replies %s)" % dict(kinds))
	if closed is not None:
		check(closed == 1008, "100 pings in a burst with --rate-limit 10 --rate-burst 20: connection "
		      "ended with %s (%s), want a 1008 close frame; replies before it: %s"
		      % (closed, "no close frame: reset" if closed == 1006 else "close frame", dict(kinds)))
	check(srv.alive(), "server died")
	return "replies %s, close %s" % (dict(kinds), closed)

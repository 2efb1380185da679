"""Seeking a replay (README: Tick files, replay and export; the WebSocket op
"replay"): a backward seek rewinds the store and every symbol's state to
the target and starts a new epoch, a forward seek applies and stores the
ticks it passes over, and after any sequence of seeks, playing to the end
leaves the store equal to the file: `publisher export` gives back the
file's rows, in file order, decimals as written, none twice (a row that is
twice in the file is stored twice; a bad line is not stored).

Replays here run from a fresh database, so the seqs of a symbol count its
rows: the state after a seek to T is the fold of the rows before the first
row with ts >= T (in file order, so a late row after that one is replayed,
not kept), at seq = that count. History served while replaying ends at the
replay position."""

import asyncio
import os
import signal
import tempfile
import time

from harness import DAY_US, REPO, Client, Closed, Decimal, Server, assert_fields, check, \
	http_get, new_session, parse_csv, qs, run_cli, summary

USDTHB = os.path.join(REPO, "tests", "data", "usdthb-1997.csv")


def read_tick_file(path):
	"""The rows a CSV tick file holds, as the replay reads them: (ts,
	symbol, {field: text as written}); lines that are not ticks (a bad
	line) are left out."""
	rows = []
	with open(path) as f:
		header = f.readline().rstrip("\n").split(",")
		for line in f:
			cells = line.rstrip("\n").split(",")
			if len(cells) != len(header):
				continue
			try:
				ts = int(cells[0])
			except ValueError:
				continue
			fields = {k: v for k, v in zip(header[2:], cells[2:]) if v != ""}
			rows.append((ts, cells[1], fields))
	return rows


def cut_index(rows, target):
	"""Index of the first row with ts >= target: where a seek to target
	stands (every row before it applied, in file order)."""
	return next((i for i, r in enumerate(rows) if r[0] >= target), len(rows))


def state_of(rows, symbol, n):
	"""(seq, fields) of symbol after the first n rows: the latest value of
	each field the file names, and the derived volume (the sum of
	last_size, when the file has no volume column), trades and
	prev_close, with a trading session per UTC day (the server's default;
	a row of an earlier day than its symbol's session is folded into it).
	USD/THB has only quotes, so its prev_close is the mid price."""
	seq, fields, session = 0, {}, None
	summed = not any("volume" in r[2] for r in rows)
	for ts, sym, f in rows[:n]:
		if sym != symbol:
			continue
		day = ts // DAY_US
		if session is not None and day > session:
			new_session(fields)
		if session is None or day > session:
			session = day
		seq += 1
		fields.update(f)
		if "last" in f:
			fields["trades"] = fields.get("trades", 0) + 1
			if summed:
				fields["volume"] = Decimal(fields.get("volume", 0)) + \
					Decimal(f.get("last_size", "0"))
	return seq, fields


class Replay:
	"""A client that steers a replay and follows it across the new epochs
	that backward seeks start (the server closes every client then, with
	1012, and the reconnect's hello names the new epoch)."""

	def __init__(self, srv, symbols):
		self.srv = srv
		self.symbols = symbols
		self.c = None
		self.epochs = []     # every epoch seen in a hello, in order
		self.closes = []     # close codes seen
		self.problems = []   # what a backward seek did not do

	async def connect(self):
		self.c = await Client.connect(self.srv, name="steer")
		if self.c.epoch not in self.epochs:
			self.epochs.append(self.c.epoch)
		await self.c.subscribe(self.symbols)
		return self.c

	async def op(self, action, **kw):
		msg = {"op": "replay", "action": action}
		msg.update(kw)
		for attempt in range(3):
			try:
				r = await self.c.request(msg)
				check(r.get("type") == "replay", "replay %s answered %s" % (action, summary(r)))
				return r
			except Closed as e:
				self.closes.append(e.code)
				await self.connect()
		raise AssertionError("replay %s: the connection kept closing" % action)

	async def settle(self, pred, what, timeout=20.0):
		"""Poll the status until pred(status) holds."""
		deadline = time.monotonic() + timeout
		st = None
		while time.monotonic() < deadline:
			st = await self.op("status")
			if pred(st):
				return st
			await asyncio.sleep(0.03)
		raise AssertionError("replay never %s (last status %s)" % (what, summary(st, 300)))

	async def seek(self, ts):
		"""Seek to file time ts and wait until the replay stands there.
		Returns True when it was a backward seek."""
		before = await self.op("status")
		back = before.get("position") is not None and ts < before["position"]
		epochs = len(self.epochs)
		await self.op("seek", ts=ts)
		if back:
			code = await self.c.wait_closed(timeout=5)
			if code is None:
				self.problems.append("no new epoch after the seek back to %d (the "
						     "connection stayed open)" % ts)
			else:
				self.closes.append(code)
				if code != 1012:
					self.problems.append("closed with %s after the seek back to %d, want "
							     "1012" % (code, ts))
				await self.connect()
				if len(self.epochs) != epochs + 1:
					self.problems.append("the reconnect after the seek back to %d kept "
							     "epoch %s" % (ts, self.c.epoch))
		await self.settle(lambda s: s["state"] != "seeking", "left 'seeking'")
		return back

	async def history_end(self, symbol):
		"""The greatest ts among the last 10,000 ticks of history."""
		r = await self.c.request({"op": "history", "symbol": symbol, "limit": 10000})
		check(r.get("type") == "history", "history answered %s" % summary(r))
		ts = [t["ts"] for t in r.get("ticks", [])]
		return max(ts) if ts else None, len(ts)


async def _check_state_at(rp, rows, target, who):
	"""Paused after a seek to target: the client's state of every symbol
	is the fold of the rows before the cut, and history ends before the
	target (the rows from the cut on are not stored)."""
	k = cut_index(rows, target)
	for sym in rp.symbols:
		seq, fields = state_of(rows, sym, k)
		if seq == 0:
			continue
		held = await rp.c.wait_seq(sym, seq, timeout=5)
		check(held["seq"] == seq, "%s: %s held at seq %s, want %d (rows before the cut)"
		      % (who, sym, held["seq"], seq))
		assert_fields(held["fields"], fields, "%s: %s at seq %d" % (who, sym, seq))
		# The close of the session before, as the rewind folded it again
		# from the stored ticks: the exact text.
		if "prev_close" in fields:
			check(str(held["fields"].get("prev_close")) == str(fields["prev_close"]),
			      "%s: %s prev_close %s, want %s" % (who, sym, held["fields"].get("prev_close"),
								 fields["prev_close"]))
		extra = set(held["fields"]) - set(fields) - {"open", "high", "low"}
		check(not extra, "%s: %s has fields %s that the rows before the cut never set"
		      % (who, sym, sorted(extra)))
		# The store commits every 50 ms: the rows may still be on their way.
		deadline = time.monotonic() + 5
		while True:
			end, n = await rp.history_end(sym)
			if n == min(seq, 10000) or time.monotonic() > deadline:
				break
			await asyncio.sleep(0.05)
		check(end is not None and end < target, "%s: %s history ends at %s, after the target %d"
		      % (who, sym, end, target))
		check(n == min(seq, 10000), "%s: %s history has %d ticks, want %d" % (who, sym, n, seq))


async def _export(db, symbol):
	rc, out, err = await run_cli(["export", "--db", db, "--symbol", symbol, "--format", "csv"],
				     timeout=30)
	check(rc == 0, "export --symbol %s: exit %s, stderr %r" % (symbol, rc, err[-300:]))
	return parse_csv(out, "export " + symbol)


def _check_equal_to_file(got, want, who):
	if got == want:
		return
	seen = {}
	for r in got:
		seen[r[0]] = seen.get(r[0], 0) + 1
	idx = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
	raise AssertionError("%s: export has %d rows for a file of %d (a timestamp up to %d times); "
			     "first difference at row %d: got %s, want %s"
			     % (who, len(got), len(want), max(seen.values() or [0]), idx,
				got[idx:idx + 1], want[idx:idx + 1]))


async def test_seeks_back_and_forth_then_export_equals_the_file():
	"""The README's replay of USD/THB at speed 100,000 with a store, paused
	and sought back and forth from a client (across the file's late row),
	played to the end, sought back from finished and played to the end
	again: the export equals the file, each backward seek started a new
	epoch, and the state after each seek is the state at its target."""
	rows = read_tick_file(USDTHB)
	check(len(rows) == 2984, "the USD/THB file has %d rows, want 2984" % len(rows))
	first, last = rows[0][0], max(r[0] for r in rows)
	at = lambda frac: first + int((last - first) * frac)
	srv = await Server(feed="replay:%s,speed=100000" % USDTHB).start()
	rp = Replay(srv, ["USDTHB"])
	await rp.connect()
	await rp.c.wait_seq("USDTHB", 1, timeout=5)
	await rp.op("pause")
	await rp.settle(lambda s: s["state"] == "paused", "paused")

	# The file's late row: 866774160001000 comes after 866775360001000.
	late = next(i for i in range(1, len(rows)) if rows[i][0] < rows[i - 1][0])
	across_late = rows[late][0] + 1  # before the rows above it, after it
	backs = 0
	plan = [at(0.40), at(0.15), "play", at(0.70), at(0.50), at(0.10), "play", at(0.90),
		across_late, at(0.95), across_late - 60_000_000]
	for step in plan:
		if step == "play":
			await rp.op("resume")
			await asyncio.sleep(0.4)
			await rp.op("pause")
			await rp.settle(lambda s: s["state"] == "paused", "paused")
			continue
		backs += await rp.seek(step)
		st = await rp.settle(lambda s: s["state"] == "paused", "paused after a seek")
		check(st.get("position") == step, "after a seek to %d the position is %s"
		      % (step, st.get("position")))
		await _check_state_at(rp, rows, step, "paused at %d" % step)

	# History and bars over HTTP end at the position too.
	status, _, body = await http_get(srv, "/api/export?" + qs(symbol="USDTHB", format="csv"))
	check(status == 200, "/api/export: %s %r" % (status, body[:200]))
	got = parse_csv(body.decode(), "/api/export while paused")
	k = cut_index(rows, plan[-1])
	check(got == rows[:k], "/api/export while paused at %d: %d rows, want the file's first %d"
	      % (plan[-1], len(got), k))

	# To the end, then back from finished, then to the end again.
	await rp.op("speed", speed="max")
	await rp.op("resume")
	st = await rp.settle(lambda s: s["state"] == "finished", "finished")
	passes = st["passes"]
	backs += await rp.seek(at(0.60))
	st = await rp.settle(lambda s: s["state"] == "finished" and s["passes"] > passes,
			     "finished again after a seek back from finished")
	held = await rp.c.wait_seq("USDTHB", len(rows), timeout=5)
	check(held["seq"] == len(rows), "at the end USDTHB is at seq %d, want %d"
	      % (held["seq"], len(rows)))

	check(backs == 6, "the plan has 6 backward seeks, %d were seen as such" % backs)
	rc = await srv.stop(signal.SIGTERM, timeout=10)
	check(rc == 0, "SIGTERM: exit %s" % rc)
	_check_equal_to_file(await _export(srv.db, "USDTHB"), rows, "USDTHB after %d seeks" % len(plan))
	check(not rp.problems, "; ".join(rp.problems[:4]))
	check(len(rp.epochs) == backs + 1, "%d epochs seen for %d backward seeks: %s"
	      % (len(rp.epochs), backs, rp.epochs))
	return "%d rows, %d backward seeks, %d epochs" % (len(rows), backs, len(rp.epochs))

test_seeks_back_and_forth_then_export_equals_the_file.timeout = 120


def _write_file(text):
	tmp = tempfile.mkdtemp(prefix="publisher-it-seek-")
	path = os.path.join(tmp, "ticks.csv")
	with open(path, "w") as f:
		f.write(text)
	return path


async def test_a_twice_written_row_is_stored_twice_and_a_bad_line_never():
	"""Two symbols, a row written twice in a row, a bad line and a late
	row: after seeks back over each of them, each symbol's export is its
	rows of the file in file order."""
	base = 1_700_000_000_000_000
	lines = ["ts,symbol,bid,ask,last,last_size"]
	for i in range(400):
		sym = "AAA" if i % 3 else "BB.B"
		ts = base + i * 1_000_000
		if i == 250:
			ts = base + 200 * 1_000_000 + 500  # late: after 249, before 201
		lines.append("%d,%s,%d.%02d,%d.%02d,%s,%s" % (
			ts, sym, 100 + i // 10, i % 100, 100 + i // 10, (i + 5) % 100,
			"%d.50" % (100 + i) if i % 7 == 0 else "", "3" if i % 7 == 0 else ""))
		if i == 120:
			lines.append(lines[-1])      # the same row twice
		if i == 180:
			lines.append("%d,AAA,not-a-price,1" % (ts + 1))  # a bad line
	path = _write_file("\n".join(lines) + "\n")
	rows = read_tick_file(path)
	check(len(rows) == 401, "the file has %d good rows, want 401" % len(rows))
	at = lambda i: base + i * 1_000_000
	# 400 s of file time at speed 100: 4 s to play it all.
	srv = await Server(feed="replay:%s,speed=100" % path).start()
	rp = Replay(srv, ["AAA", "BB.B"])
	await rp.connect()
	await rp.c.wait_seq("AAA", 1, timeout=5)
	await rp.op("pause")
	await rp.settle(lambda s: s["state"] == "paused", "paused")
	for target in (at(300), at(121), at(150), at(120), at(190), at(181), at(260),
		       at(200) + 600, at(201)):
		await rp.seek(target)
		await rp.settle(lambda s: s["state"] == "paused", "paused after a seek")
		await _check_state_at(rp, rows, target, "paused at %d" % target)
	await rp.op("speed", speed="max")
	await rp.op("resume")
	await rp.settle(lambda s: s["state"] == "finished", "finished")
	rc = await srv.stop(signal.SIGTERM, timeout=10)
	check(rc == 0, "SIGTERM: exit %s" % rc)
	for sym in ("AAA", "BB.B"):
		_check_equal_to_file(await _export(srv.db, sym), [r for r in rows if r[1] == sym], sym)
	check(not rp.problems, "; ".join(rp.problems[:4]))
	return "%d epochs" % len(rp.epochs)

test_a_twice_written_row_is_stored_twice_and_a_bad_line_never.timeout = 60


def _passes(got, rows):
	"""Split a looping replay's export into passes: each pass must be the
	file's rows, from the first, shifted by one amount, and only the last
	may be short. Returns the number of rows of each pass; raises at the
	first row that is not the next one of its pass (a row stored twice, or
	one missing)."""
	counts, i, shift = [], 0, None
	for n, (ts, sym, f) in enumerate(got):
		if i == len(rows):
			counts.append(i)
			i = 0
		if i == 0:
			shift = ts - rows[0][0]
		want = (rows[i][0] + shift, rows[i][1], rows[i][2])
		check((ts, sym, f) == want, "row %d of the export is %s, want %s (pass %d, row %d)"
		      % (n, (ts, sym, f), want, len(counts) + 1, i))
		i += 1
	counts.append(i)
	return counts


async def test_loop_seek_back_rewinds_the_current_pass_only():
	"""With --loop, a seek back rewinds the pass under way: the passes
	before it stay stored, the pass is stored up to the target once, and a
	new epoch starts; played on, every pass is the file again."""
	base = 1_700_000_000_000_000
	lines = ["ts,symbol,bid,ask"]
	for i in range(100):
		lines.append("%d,LOOP,%d.5,%d.75" % (base + i * 100_000, 10 + i, 10 + i))
	path = _write_file("\n".join(lines) + "\n")
	rows = read_tick_file(path)
	# 9.9 s of file time at speed 10: a pass a second.
	srv = await Server(feed="replay:%s,speed=10,loop" % path).start()
	rp = Replay(srv, ["LOOP"])
	await rp.connect()
	await rp.settle(lambda s: s["passes"] >= 1, "looped once", timeout=10)
	await rp.op("pause")
	st = await rp.settle(lambda s: s["state"] == "paused", "paused")
	target = base + 30 * 100_000
	if st["position"] <= target:
		await rp.seek(base + 60 * 100_000)
	back = await rp.seek(target)
	check(back, "the seek to row 30 was not a backward seek")
	await rp.settle(lambda s: s["state"] == "paused", "paused after the seek back")
	status, _, body = await http_get(srv, "/api/export?" + qs(symbol="LOOP", format="csv"))
	check(status == 200, "/api/export: %s" % status)
	counts = _passes(parse_csv(body.decode(), "loop export"), rows)
	check(all(c == len(rows) for c in counts[:-1]) and counts[-1] == 30,
	      "after the seek back the passes stored are %s rows, want whole passes then 30" % counts)
	await rp.op("resume")
	await rp.settle(lambda s: s["passes"] >= st["passes"] + 1, "looped again", timeout=10)
	await rp.op("pause")
	await rp.settle(lambda s: s["state"] == "paused", "paused")
	rc = await srv.stop(signal.SIGTERM, timeout=10)
	check(rc == 0, "SIGTERM: exit %s" % rc)
	counts = _passes(await _export(srv.db, "LOOP"), rows)
	check(all(c == len(rows) for c in counts[:-1]), "passes stored: %s rows" % counts)
	check(not rp.problems, "; ".join(rp.problems[:4]))
	return "passes of %s rows" % counts

test_loop_seek_back_rewinds_the_current_pass_only.timeout = 60

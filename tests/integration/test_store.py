"""SQLite store, history and export: epoch and seq, `history`, /api/export
and /api/bars, `publisher export`, tick files, storage (README: Protocol;
Tick files, replay and export; Storage). Ticks come from the stdin feed with
explicit timestamps, so every stored row, bar and exported line is known
exactly; decimals are compared as text (frames and files are parsed with
parse_float=Decimal, which keeps it).

The store commits in batches (at least every 50 ms), so after sending ticks
the tests poll `history` until the rows are there (wait_stored)."""

import asyncio
import csv
import decimal
import fcntl
import hashlib
import io
import json
import os
import random
import re
import signal
import sqlite3
import threading
import time
import urllib.parse

from harness import INPUT_FIELDS, UPDATE_ENVELOPE, Client, Decimal, Server, assert_fields, \
	check, http_request, run_cli, start_server, tick, tick_line

# 2024-03-01T14:30:00Z in µs: minute aligned, so 1s/1m bars start on it.
BASE = 1709303400_000000
CSV_HEADER = "ts,symbol,bid,ask,bid_size,ask_size,last,last_size,volume"


# ------------------------------------------------------------- helpers

def _short(m, limit=300):
	s = json.dumps(m, default=str)
	return s if len(s) <= limit else s[:limit] + "…"


def exact(fields):
	"""Field values as text: Decimal keeps the text it was parsed from, so
	"189.35" != "189.349999" and 100 == 100 are compared as written."""
	return {k: str(v) for k, v in fields.items()}


def data_fields(t):
	return {k: v for k, v in t.items() if k not in ("ts", "symbol")}


def price(rng, lo, hi, scale):
	"""A random decimal in [lo, hi] with `scale` places and no trailing zero,
	so the exact text survives any correct decimal code."""
	m = rng.randint(lo * 10 ** scale, hi * 10 ** scale)
	if scale and m % 10 == 0:
		m += 1
	return Decimal(m).scaleb(-scale)


def gen_ticks(rng, symbols, n, ts0, step=1000):
	"""n ticks round-robin over symbols (quotes, some partial, and trades),
	ts = ts0 + i*step."""
	out = []
	mid = {s: price(rng, 10, 500, 2) for s in symbols}
	for i in range(n):
		s = symbols[i % len(symbols)]
		scale = rng.choice((2, 2, 3, 4, 6))
		p = price(rng, int(mid[s]) - 5 if mid[s] > 6 else 1, int(mid[s]) + 5, scale)
		kind = rng.random()
		if kind < 0.45:
			f = dict(bid=p, ask=p + price(rng, 0, 0, 2) + Decimal("0.01"),
				 bid_size=rng.randint(1, 5000), ask_size=rng.randint(1, 5000))
			for k in list(f):  # sometimes a partial quote
				if len(f) > 1 and rng.random() < 0.2:
					del f[k]
		else:
			f = dict(last=p, last_size=rng.randint(1, 900))
		out.append(tick(s, ts=ts0 + i * step, **f))
	return out


def model_states(ticks):
	"""The state these ticks make: per symbol seq, ts and every field
	(inputs, open/high/low of last, volume = sum of last_size, trades).
	Ticks that carry `volume` themselves are not modelled (avoid them here)."""
	st = {}
	for t in ticks:
		s = st.setdefault(t["symbol"], {"seq": 0, "ts": None, "fields": {}})
		f = s["fields"]
		s["seq"] += 1
		s["ts"] = t["ts"]
		for k in INPUT_FIELDS:
			if k in t and k != "volume":
				f[k] = t[k]
		if "last" in t:
			px = t["last"]
			f.setdefault("open", px)
			f["high"] = max(f.get("high", px), px)
			f["low"] = min(f.get("low", px), px)
			f["trades"] = f.get("trades", 0) + 1
			f["volume"] = f.get("volume", 0) + t.get("last_size", 0)
	return st


def snap_fields(m):
	return {k: v for k, v in m.items() if k not in UPDATE_ENVELOPE}


def file_sha(path):
	with open(path, "rb") as f:
		return hashlib.sha256(f.read()).hexdigest()


async def history(c, timeout=10.0, **args):
	"""One history request; it must be answered with type history."""
	op = {"op": "history"}
	op.update(args)
	r = await c.request(op, timeout)
	check(r.get("type") == "history", "%s answered %s" % (_short(op), _short(r)))
	check(r.get("symbol") == args.get("symbol"), "history reply symbol %r, want %r: %s"
	      % (r.get("symbol"), args.get("symbol"), _short(r)))
	return r


async def wait_stored(c, symbol, seq, timeout=3.0):
	"""Poll history until the store holds symbol's tick `seq` (ticks are
	committed in order, so all earlier ones are stored too)."""
	deadline = time.monotonic() + timeout
	last = None
	while True:
		r = await history(c, symbol=symbol, limit=1)
		ticks = r.get("ticks")
		check(isinstance(ticks, list), "history reply without a ticks list: %s" % _short(r))
		if ticks:
			last = ticks[-1].get("seq")
			if isinstance(last, int) and last >= seq:
				return
		if time.monotonic() > deadline:
			raise AssertionError("store did not show %s seq %d within %.1f s (history's "
					     "last seq: %r)" % (symbol, seq, timeout, last))
		await asyncio.sleep(0.05)


def check_ticks(got, sent, first_seq, who):
	"""History ticks equal the sent ticks: ts, consecutive seqs from
	first_seq, every field as text, nothing else."""
	check(isinstance(got, list), "%s: ticks is not a list: %r" % (who, got))
	check(len(got) == len(sent), "%s: %d ticks, want %d (first %s, last %s)"
	      % (who, len(got), len(sent), got[:1], got[-1:]))
	for i, (g, s) in enumerate(zip(got, sent)):
		extra = set(g) - {"ts", "seq", "symbol"} - set(INPUT_FIELDS)
		want = dict(ts=s["ts"], seq=first_seq + i, fields=exact(data_fields(s)))
		have = dict(ts=g.get("ts"), seq=g.get("seq"),
			    fields=exact({k: v for k, v in g.items() if k in INPUT_FIELDS}))
		if have != want or extra or g.get("symbol", s["symbol"]) != s["symbol"]:
			raise AssertionError("%s: tick %d is %s, want %s (sent %s)"
					     % (who, i, _short(g), want, tick_line(s)))


def expect_bars(ticks, interval_us):
	"""OHLCV of `last` per interval aligned to the UTC epoch, oldest first."""
	bars = {}
	for t in ticks:
		if "last" not in t:
			continue
		b0 = t["ts"] // interval_us * interval_us
		px, sz = t["last"], Decimal(t.get("last_size", 0))
		b = bars.get(b0)
		if b is None:
			bars[b0] = dict(t=b0, open=px, high=px, low=px, close=px, volume=sz)
		else:
			b.update(high=max(b["high"], px), low=min(b["low"], px), close=px,
				 volume=b["volume"] + sz)
	return [bars[k] for k in sorted(bars)]


def check_bars(got, want, who):
	check(isinstance(got, list), "%s: bars is not a list: %r" % (who, got))
	norm = []
	for b in got:
		if not isinstance(b, dict):
			raise AssertionError("%s: bar is not an object: %r" % (who, b))
		try:
			norm.append(dict(t=b.get("t"), open=Decimal(str(b["open"])),
					 high=Decimal(str(b["high"])), low=Decimal(str(b["low"])),
					 close=Decimal(str(b["close"])), volume=Decimal(str(b["volume"]))))
		except (KeyError, TypeError, ValueError, decimal.InvalidOperation) as e:
			raise AssertionError("%s: bar %s lacks or mangles a field (%r)" % (who, _short(b), e))
	if norm != want:
		diff = [(i, g, w) for i, (g, w) in enumerate(zip(norm, want)) if g != w][:2]
		raise AssertionError("%s: %d bars, want %d; first differences (index, got, want): %s"
				     % (who, len(norm), len(want), diff or (norm[-1:], want[-1:])))
	# Prices are copies of sent prices: the text must be exact too.
	for b, w in zip(got, want):
		for k in ("open", "high", "low", "close"):
			check(str(b[k]) == str(w[k]), "%s: bar %s %s is %s, want the exact text %s"
			      % (who, b.get("t"), k, b[k], w[k]))


async def snapshots(srv, symbols, name="snapper"):
	"""{symbol: snapshot message} from a fresh client subscribing to symbols."""
	c = await Client.connect(srv, name=name)
	await c.subscribe(symbols)
	out = {}
	while len(out) < len(symbols):
		m = await c.expect("snapshot", what="snapshots of %s (have %s)" % (symbols, sorted(out)))
		out[m["symbol"]] = m
	c.assert_clean()
	return c, out


def check_same_snapshot(got, want, who):
	check(got.get("seq") == want.get("seq"), "%s: seq %r, want %r" % (who, got.get("seq"), want.get("seq")))
	check(got.get("ts") == want.get("ts"), "%s: ts %r, want %r" % (who, got.get("ts"), want.get("ts")))
	g, w = exact(snap_fields(got)), exact(snap_fields(want))
	if g != w:
		diff = {k: (g.get(k), w.get(k)) for k in set(g) | set(w) if g.get(k) != w.get(k)}
		raise AssertionError("%s: fields differ (field: (got, want)): %s" % (who, diff))


async def symbol_seqs(c):
	r = await c.request({"op": "symbols"})
	check(r.get("type") == "symbols" and isinstance(r.get("symbols"), list),
	      "symbols answered %s" % _short(r))
	return {e.get("symbol"): e.get("seq") for e in r["symbols"]}


def parse_csv(text, who):
	"""[(ts, symbol, {field: text})] from an export; the header must be exact."""
	lines = text.splitlines()
	check(lines, "%s: empty CSV (not even a header)" % who)
	check(lines[0] == CSV_HEADER, "%s: CSV header %r, want %r" % (who, lines[0], CSV_HEADER))
	out = []
	for n, row in enumerate(csv.reader(io.StringIO(text))):
		if n == 0:
			continue
		check(len(row) == 9, "%s: CSV line %d has %d cells: %r" % (who, n + 1, len(row), row))
		try:
			ts = int(row[0])
		except ValueError:
			raise AssertionError("%s: CSV line %d ts %r is not an integer" % (who, n + 1, row[0]))
		out.append((ts, row[1], {k: v for k, v in zip(CSV_HEADER.split(",")[2:], row[2:]) if v != ""}))
	return out


def parse_jsonl(text, who):
	out = []
	for n, line in enumerate(text.splitlines(), start=1):
		if not line.strip():
			continue
		try:
			o = json.loads(line, parse_float=Decimal)
		except ValueError as e:
			raise AssertionError("%s: JSONL line %d is not JSON (%s): %r" % (who, n, e, line[:200]))
		check(isinstance(o, dict), "%s: JSONL line %d is not an object: %r" % (who, n, line[:200]))
		check("seq" not in o, "%s: JSONL line %d carries seq (the replay format has none): %r"
		      % (who, n, line[:200]))
		extra = set(o) - {"ts", "symbol"} - set(INPUT_FIELDS)
		check(not extra, "%s: JSONL line %d has unknown keys %s" % (who, n, sorted(extra)))
		check(isinstance(o.get("ts"), int), "%s: JSONL line %d ts is not an integer: %r" % (who, n, line[:200]))
		out.append((o["ts"], o.get("symbol"), exact(data_fields(o))))
	return out


def rows_of(ticks):
	return [(t["ts"], t["symbol"], exact(data_fields(t))) for t in ticks]


def check_rows(got, want, who):
	if got != want:
		idx = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
		raise AssertionError("%s: %d rows, want %d; first difference at row %d: got %s, want %s"
				     % (who, len(got), len(want), idx, got[idx:idx + 1], want[idx:idx + 1]))


def qs(**params):
	"""A query string; list values repeat the key; '+' in ISO offsets is escaped."""
	return urllib.parse.urlencode(params, doseq=True, quote_via=urllib.parse.quote)


async def http_get(srv, path, timeout=10.0):
	return await http_request(srv.port, path, timeout=timeout)


async def ingest(srv, ticks, client=None):
	"""Send ticks and wait until the store holds all of them. Returns the
	client used for polling."""
	await srv.send_ticks(ticks)
	c = client or await Client.connect(srv, name="poller")
	last = {}
	for t in ticks:
		last[t["symbol"]] = last.get(t["symbol"], 0) + 1
	for s, n in last.items():
		await wait_stored(c, s, n, timeout=max(3.0, len(ticks) / 5000.0))
	return c


# -------------------------------------------------- 1. restart and resume

async def test_restart_keeps_epoch_seqs_and_state():
	rng = random.Random(1)
	syms = ["AAPL", "MSFT", "BRK.B", "EUR/USD", "ES:H4-X"]
	ticks = gen_ticks(rng, syms, 500, BASE)
	model = model_states(ticks)
	for s in syms:
		check(model[s]["fields"].get("trades") and "bid" in model[s]["fields"],
		      "test data: %s needs quotes and trades" % s)

	srv = await Server(feed="stdin", name="first-life").start()
	c = await ingest(srv, ticks)
	epoch = c.epoch
	seqs = await symbol_seqs(c)
	check(seqs == {s: model[s]["seq"] for s in syms},
	      "symbols before restart %s, want %s" % (seqs, {s: model[s]["seq"] for s in syms}))
	_, before = await snapshots(srv, syms)
	for s in syms:
		check(before[s]["seq"] == model[s]["seq"] and before[s]["ts"] == model[s]["ts"],
		      "%s snapshot seq/ts %s/%s, want %s/%s" % (s, before[s]["seq"], before[s]["ts"],
								 model[s]["seq"], model[s]["ts"]))
		assert_fields(before[s], model[s]["fields"], "%s snapshot before restart" % s)
	rc = await srv.stop(signal.SIGTERM, timeout=5)
	check(rc == 0, "SIGTERM: exit code %s, want 0" % rc)

	# Second life: no feed, only what the database holds.
	srv2 = await Server(feed="none", db=srv.db, name="second-life").start()
	c2 = await Client.connect(srv2, name="after-restart")
	check(c2.epoch == epoch, "epoch after restart %r, want the database's %r" % (c2.epoch, epoch))
	seqs2 = await symbol_seqs(c2)
	check(seqs2 == seqs, "symbols after restart %s, want %s" % (seqs2, seqs))
	_, after = await snapshots(srv2, syms, name="snapper-2")
	for s in syms:
		check_same_snapshot(after[s], before[s], "%s snapshot after restart vs before" % s)

	# A client that held everything before the restart resumes: nothing for
	# the four it holds current; one delta for the one it holds one tick old.
	old = syms[4]
	r = await Client.connect(srv2, name="resumer")
	for s in syms[:4]:
		r.state[s] = {"seq": before[s]["seq"], "ts": before[s]["ts"], "fields": snap_fields(before[s])}
	prev = model_states([t for t in ticks if t["symbol"] == old][:-1])[old]
	r.state[old] = {"seq": prev["seq"], "ts": prev["ts"], "fields": dict(prev["fields"])}
	await r.subscribe(syms, resume={"epoch": epoch, "seq": {s: r.state[s]["seq"] for s in syms}})
	await r.collect(0.5)
	got = [(m["type"], m["symbol"], m.get("from"), m["seq"]) for _, m in r.updates]
	check(got == [("delta", old, prev["seq"], model[old]["seq"])],
	      "resume after restart (4 symbols held at their seq, %s one behind) sent %s; want only "
	      "one %s delta from %d" % (old, got, old, prev["seq"]))
	r.assert_clean()
	assert_fields(r.state[old]["fields"], model[old]["fields"], "%s after the resume delta" % old)
	rc = await srv2.stop(signal.SIGTERM, timeout=5)
	check(rc == 0, "second life: SIGTERM exit code %s, want 0" % rc)

	# Third life with a feed: seqs continue, derived fields continue.
	srv3 = await Server(feed="stdin", db=srv.db, name="third-life").start()
	c3 = await Client.connect(srv3, name="third")
	check(c3.epoch == epoch, "epoch in third life %r, want %r" % (c3.epoch, epoch))
	s0 = syms[0]
	t_new = tick(s0, ts=BASE + 10_000_000, last=Decimal("1.234567"), last_size=7)
	await c3.subscribe([s0])
	await c3.wait_seq(s0, model[s0]["seq"])
	await srv3.send_ticks([t_new])
	held = await c3.wait_seq(s0, model[s0]["seq"] + 1)
	check(held["seq"] == model[s0]["seq"] + 1, "%s seq after one more tick: %d, want %d"
	      % (s0, held["seq"], model[s0]["seq"] + 1))
	want = model_states(ticks + [t_new])[s0]
	assert_fields(held["fields"], want["fields"], "%s after one tick in the third life "
		      "(volume, trades, low continue from the restored state)" % s0)
	await wait_stored(c3, s0, model[s0]["seq"] + 1)
	seqs3 = await symbol_seqs(c3)
	check({k: v for k, v in seqs3.items() if k != s0} == {k: v for k, v in seqs.items() if k != s0},
	      "other symbols' seqs changed in the third life: %s vs %s" % (seqs3, seqs))
	c3.assert_clean()

test_restart_keeps_epoch_seqs_and_state.timeout = 40


async def _resume_deltas(srv, epoch, seqs_at):
	"""{(symbol, k): the update a client holding symbol at seq k gets}."""
	out = {}
	for (sym, k) in seqs_at:
		r = await Client.connect(srv, name="resume-%s-%d" % (sym, k))
		await r.subscribe([sym], resume={"epoch": epoch, "seq": {sym: k}})
		m = await r.expect(None, pred=lambda m: m.get("symbol") == sym,
				   what="an update for %s resumed at %d" % (sym, k))
		out[(sym, k)] = (m.get("type"), m.get("from"), m.get("seq"), m.get("ts"),
				 exact(snap_fields(m)))
		await r.close()
	return out


async def test_restart_is_invisible_state_and_resume_deltas_match_one_life():
	# The same ticks through one server life (A) and through two lives with
	# a SIGTERM and restart in between (B) give the same seqs, snapshots
	# and resume deltas: nothing the engine holds is lost on restart
	# (derived fields, feed-sent volume, the seq each field last changed).
	rng = random.Random(11)
	syms = ["AAPL", "MSFT", "FUT"]
	ticks = gen_ticks(rng, syms[:2], 120, BASE)
	for i in range(30):  # FUT: trades with the feed's own volume, trades without, quotes
		ts = BASE + 200_000 + i * 1000
		if i % 3 == 0:
			ticks.append(tick("FUT", ts=ts, last=price(rng, 90, 110, 2), last_size=i + 1,
					  volume=1000 + 7 * i))
		elif i % 3 == 1:
			ticks.append(tick("FUT", ts=ts, last=price(rng, 90, 110, 2), last_size=i + 1))
		else:
			ticks.append(tick("FUT", ts=ts, bid=price(rng, 90, 110, 3)))
	cut = 100
	first, second = ticks[:cut], ticks[cut:]
	a = await Server(feed="stdin", name="A-one-life").start()
	ca = await ingest(a, ticks)
	b = await Server(feed="stdin", name="B-life-1").start()
	cb = await ingest(b, first)
	check(await b.stop() == 0, "B: SIGTERM exit code")
	b2 = await Server(feed="stdin", db=b.db, name="B-life-2").start()
	cb2 = await ingest(b2, second)
	for sym in syms:
		await wait_stored(cb2, sym, sum(1 for t in ticks if t["symbol"] == sym))
	check(cb2.epoch == cb.epoch, "B: epoch changed across the restart")
	seqs_a, seqs_b = await symbol_seqs(ca), await symbol_seqs(cb2)
	check(seqs_a == seqs_b, "seqs after one life %s, after a restart %s" % (seqs_a, seqs_b))
	_, snaps_a = await snapshots(a, syms)
	_, snaps_b = await snapshots(b2, syms, name="snapper-b")
	for s in syms:
		check_same_snapshot(snaps_b[s], snaps_a[s], "%s: two lives vs one" % s)
	points = [(s, k) for s in syms for k in sorted({1, seqs_a[s] // 3, seqs_a[s] // 2, seqs_a[s] - 2})]
	da = await _resume_deltas(a, ca.epoch, points)
	db_ = await _resume_deltas(b2, cb2.epoch, points)
	diff = {p: (db_[p], da[p]) for p in points if db_[p] != da[p]}
	check(not diff, "resume after a restart differs from one life ((symbol, held seq): "
	      "(two lives, one life)): %s" % dict(list(diff.items())[:2]))
	for p, (typ, frm, seq, _, _) in da.items():
		check(typ == "delta" and frm == p[1], "one life: resume %s answered %s from %s" % (p, typ, frm))

test_restart_is_invisible_state_and_resume_deltas_match_one_life.timeout = 40


# -------------------------------------------------------- 2. kill -9

def _db_state_check(db):
	"""Straight from the SQL (schema/001_init.sql, 002_views.sql): per
	symbol, the stored ticks are seqs 1..n without a hole, and the stored
	state (state_view) equals what those ticks (tick_view) make. Returns
	(problems, note); problems is None when the schema is not the one
	these names come from."""
	con = sqlite3.connect(db, timeout=5)
	try:
		names = {r[0] for r in con.execute("select name from sqlite_master")}
		if not {"tick_view", "state_view"} <= names:
			return None, "no tick_view/state_view in the db (%s)" % sorted(names)
		problems = []
		holes = con.execute("select symbol_id, count(*), min(seq), max(seq) from ticks "
				    "group by symbol_id having count(*) != max(seq) or min(seq) != 1").fetchall()
		if holes:
			problems.append("stored ticks with holes (symbol_id, count, min, max): %s" % holes[:3])
		cols = list(INPUT_FIELDS)
		ticks = []
		for row in con.execute("select symbol, ts, seq, %s from tick_view order by symbol, seq"
				       % ", ".join(cols)):
			t = {"symbol": row[0], "ts": row[1]}
			t.update({k: Decimal(v) for k, v in zip(cols, row[3:]) if v is not None})
			ticks.append(t)
		model = model_states(ticks)
		scols = list(INPUT_FIELDS) + ["open", "high", "low", "trades"]
		n = 0
		for row in con.execute("select symbol, seq, ts, %s from state_view" % ", ".join(scols)):
			n += 1
			sym, seq, ts = row[:3]
			have = {k: Decimal(v) for k, v in zip(scols, row[3:]) if v is not None}
			want = model.get(sym)
			if want is None:
				problems.append("state for %s (seq %s) without stored ticks" % (sym, seq))
				continue
			wf = {k: Decimal(v) for k, v in want["fields"].items()}
			if (seq, ts) != (want["seq"], want["ts"]) or have != wf:
				problems.append("%s: state seq %s ts %s %s; its stored ticks make seq %s ts %s %s"
						% (sym, seq, ts, have, want["seq"], want["ts"], wf))
		if n != len(model):
			problems.append("%d state rows for %d symbols with ticks" % (n, len(model)))
		return problems, "state_view vs tick_view"
	finally:
		con.close()


async def test_kill9_mid_ingest_db_intact_nothing_older_than_250ms_lost():
	syms = ["K%d" % i for i in range(10)]
	rate, n_max, ts0 = 20000, 80000, BASE + 86_400_000_000
	sent = []
	for i in range(n_max):
		bid = Decimal(1000001 + 2 * (i % 400000)).scaleb(-4)
		if i % 3 == 2:
			t = tick(syms[i % 10], ts=ts0 + i, last=bid, last_size=1 + i % 7)
		else:
			t = tick(syms[i % 10], ts=ts0 + i, bid=bid, ask=bid + Decimal("0.0002"),
				 bid_size=1 + i % 100)
		sent.append(t)
	lines = [tick_line(t) + "\n" for t in sent]

	srv = await Server(feed="stdin", name="killed").start()
	fd = srv.proc.stdin.transport.get_extra_info("pipe").fileno()
	try:  # a small pipe: "written" is then close to "received by the server"
		fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 4096)
	except OSError:
		pass
	os.set_blocking(fd, True)  # only this thread writes to it from now on
	marks = []  # (monotonic time a write returned, ticks written so far)
	stop = threading.Event()

	def writer():
		t0 = time.monotonic()
		done = 0
		while not stop.is_set() and done < n_max:
			target = min(n_max, int((time.monotonic() - t0) * rate) + 1)
			if target <= done:
				time.sleep(0.0005)
				continue
			data = "".join(lines[done:target]).encode()
			try:
				while data:
					k = os.write(fd, data)
					data = data[k:]
			except OSError:
				return
			done = target
			marks.append((time.monotonic(), done))

	th = threading.Thread(target=writer, daemon=True)
	th.start()
	await asyncio.sleep(1.5)
	srv.exit_expected = True
	t_kill = time.monotonic()
	os.kill(srv.pid, signal.SIGKILL)
	stop.set()
	await asyncio.to_thread(th.join, 5)
	await srv.wait_exit(5)
	must = max([n for t, n in marks if t <= t_kill - 0.25] or [0])
	total = marks[-1][1] if marks else 0
	check(must >= 10000, "only %d ticks were written more than 250 ms before the kill "
	      "(%d in all): the ingest did not run at speed" % (must, total))

	# The database as SQLite itself sees it.
	con = sqlite3.connect(srv.db, timeout=5)
	try:
		ic = con.execute("pragma integrity_check").fetchall()
	finally:
		con.close()
	check(ic == [("ok",)], "PRAGMA integrity_check after kill -9: %s" % ic[:5])
	bad, how = await asyncio.to_thread(_db_state_check, srv.db)
	if bad is not None:
		check(not bad, "after kill -9 the stored state is not what the stored ticks make "
		      "(%s): %s" % (how, bad[:3]))

	# Every stored tick, through the product's own export.
	rc, out, err = await run_cli(["export", "--db", srv.db, "--format", "jsonl"], timeout=20)
	check(rc == 0, "export after kill -9: exit %s, stderr %r" % (rc, err[-300:]))
	rows = parse_jsonl(out, "export after kill -9")
	present = set()
	for ts, sym, fields in rows:
		i = ts - ts0
		if not (0 <= i < n_max and (ts, sym, fields) == rows_of([sent[i]])[0]):
			raise AssertionError("stored tick %s %s %s is not one that was sent (%s)" % (
				ts, sym, fields, rows_of([sent[i]]) if 0 <= i < n_max else "ts out of range"))
		present.add(i)
	check(len(present) == len(rows), "export has duplicate ticks: %d rows, %d distinct"
	      % (len(rows), len(present)))
	missing = [i for i in range(must) if i not in present]
	check(not missing, "%d of the %d ticks written more than 250 ms before kill -9 are not "
	      "stored; first missing: #%s (stored %d of %d written)"
	      % (len(missing), must, missing[:5], len(present), total))
	# Per symbol the stored ticks are seqs 1..k, no hole.
	count = {s: 0 for s in syms}
	for i in sorted(present):
		count[syms[i % 10]] += 1
	for s_idx, s in enumerate(syms):
		want = set(range(s_idx, s_idx + 10 * count[s], 10))
		have = {i for i in present if i % 10 == s_idx}
		check(have == want, "%s: stored ticks are not a prefix of what was sent (hole after %d "
		      "stored)" % (s, count[s]))

	# The server restarts on it and serves exactly the stored state.
	srv2 = await Server(feed="stdin", db=srv.db, name="after-kill").start()
	c = await Client.connect(srv2)
	seqs = await symbol_seqs(c)
	check(seqs == {s: count[s] for s in syms if count[s]},
	      "after kill -9 and restart, symbols %s, want the stored tick counts %s" % (seqs, count))
	by_sym = {s: [sent[i] for i in sorted(present) if i % 10 == k] for k, s in enumerate(syms)}
	_, snaps = await snapshots(srv2, [s for s in syms if count[s]])
	for s, m in snaps.items():
		want = model_states(by_sym[s])[s]
		check(m["seq"] == want["seq"] and m["ts"] == want["ts"],
		      "%s restored seq/ts %s/%s, want %s/%s (from the stored ticks)"
		      % (s, m["seq"], m["ts"], want["seq"], want["ts"]))
		assert_fields(m, want["fields"], "%s restored state vs its stored ticks" % s)
		h = await history(c, symbol=s, limit=1)
		check(h["ticks"] and h["ticks"][-1].get("seq") == count[s],
		      "%s: history's last seq %s, want %d" % (s, h["ticks"][-1:], count[s]))
	# and goes on from there
	await c.subscribe(["K0"])
	await c.wait_seq("K0", count["K0"])
	await srv2.send_ticks([tick("K0", ts=ts0 + n_max, bid=Decimal("7.77"))])
	held = await c.wait_seq("K0", count["K0"] + 1)
	check(held["seq"] == count["K0"] + 1, "K0 seq after one more tick: %d, want %d"
	      % (held["seq"], count["K0"] + 1))
	return "%d written, %d must-keep, %d stored; %s" % (total, must, len(present),
		"SQL checked: " + how if bad is not None else "state via restart only (" + how[:80] + ")")

test_kill9_mid_ingest_db_intact_nothing_older_than_250ms_lost.timeout = 40


# ---------------------------------------------- 3. refusing foreign files

async def _make_db():
	srv = await Server(feed="stdin", name="maker").start()
	await ingest(srv, [tick("AAPL", ts=BASE, bid=Decimal("1.5"), ask=Decimal("1.7"))])
	rc = await srv.stop(signal.SIGTERM, timeout=5)
	check(rc == 0, "SIGTERM: exit code %s" % rc)
	return srv


async def test_newer_schema_db_refused_exit_1_untouched():
	maker = await _make_db()
	db = maker.db
	con = sqlite3.connect(db)
	ours = con.execute("pragma user_version").fetchone()[0]
	check(isinstance(ours, int) and ours >= 1, "the server left user_version %r; want >= 1" % ours)
	con.execute("pragma user_version = 999")
	con.commit()
	con.close()
	before = file_sha(db)
	argv = Server(feed="none", db=db, name="refuser").argv()
	rc, out, err = await run_cli(argv[1:], timeout=10)
	check(rc == 1, "serve on a schema-999 db: exit %s, want 1 (stderr %r)" % (rc, err[-300:]))
	check(re.search(r"\b999\b", err) and re.search(r"\b%d\b" % ours, err.replace("999", "")),
	      "stderr does not name both versions (999 and %d): %r" % (ours, err[-300:]))
	check(file_sha(db) == before, "serve changed the schema-999 database file")
	rc, out, err2 = await run_cli(["export", "--db", db], timeout=10)
	check(rc == 1, "export on a schema-999 db: exit %s, want 1 (stderr %r)" % (rc, err2[-300:]))
	check(file_sha(db) == before, "export changed the schema-999 database file")
	return err.strip().splitlines()[-1][:140] if err.strip() else ""


async def test_not_a_database_refused_exit_1_untouched():
	holder = Server(feed="none", name="refuser")
	db = os.path.join(holder.tmp, "notes.db")
	with open(db, "w") as f:
		line = "this is a text file, not a SQLite database\n"
		f.write((line * (4096 // len(line) + 1))[:4096])
	before = file_sha(db)
	holder.db = db
	rc, out, err = await run_cli(holder.argv()[1:], timeout=10)
	check(rc == 1, "serve on a text file: exit %s, want 1 (stderr %r)" % (rc, err[-300:]))
	check(db in err or "database" in err.lower(),
	      "stderr names neither the file nor says it is not a database: %r" % err[-300:])
	check(file_sha(db) == before and os.path.getsize(db) == 4096, "serve changed the text file")
	rc, out, err2 = await run_cli(["export", "--db", db], timeout=10)
	check(rc == 1, "export on a text file: exit %s, want 1 (stderr %r)" % (rc, err2[-300:]))
	check(file_sha(db) == before, "export changed the text file")
	return err.strip().splitlines()[-1][:140] if err.strip() else ""


async def test_older_schema_db_is_migrated_on_open_keeping_data():
	# A database as a build that knew only 001_init left it: no views of
	# 002, user_version 1. Opening it runs 002 and keeps epoch, seqs, state.
	srv = await Server(feed="stdin", name="old-build").start()
	ticks = gen_ticks(random.Random(3), ["AAPL", "MSFT"], 60, BASE)
	c = await ingest(srv, ticks)
	epoch = c.epoch
	_, before = await snapshots(srv, ["AAPL", "MSFT"])
	check(await srv.stop() == 0, "SIGTERM exit code")
	con = sqlite3.connect(srv.db)
	latest = con.execute("pragma user_version").fetchone()[0]
	views = [r[0] for r in con.execute("select name from sqlite_master where type='view'")]
	check(latest >= 2 and views, "test premise: a db of version >= 2 with views (have %s, %s)"
	      % (latest, views))
	for v in views:
		con.execute('drop view "%s"' % v)
	# ... and no table of a later migration (003_gaps).
	con.execute("drop table if exists gaps")
	con.execute("pragma user_version = 1")
	con.commit()
	con.close()
	srv2 = await Server(feed="none", db=srv.db, name="new-build").start()
	c2 = await Client.connect(srv2)
	check(c2.epoch == epoch, "epoch after migration %r, want %r" % (c2.epoch, epoch))
	_, after = await snapshots(srv2, ["AAPL", "MSFT"], name="snapper-2")
	for s in before:
		check_same_snapshot(after[s], before[s], "%s after migrating from version 1" % s)
	r = await history(c2, symbol="AAPL", limit=1000)
	check_ticks(r.get("ticks"), [t for t in ticks if t["symbol"] == "AAPL"], 1, "AAPL history after migration")
	con = sqlite3.connect(srv.db)
	try:
		v2 = con.execute("pragma user_version").fetchone()[0]
		views2 = sorted(r[0] for r in con.execute("select name from sqlite_master where type='view'"))
	finally:
		con.close()
	check(v2 == latest and views2 == sorted(views), "after opening a version-1 db: user_version %s, "
	      "views %s; want %s and %s" % (v2, views2, latest, sorted(views)))


async def test_new_database_gets_new_epoch():
	a = await Server(feed="none", name="db-a").start()
	b = await Server(feed="none", name="db-b").start()
	ca, cb = await Client.connect(a), await Client.connect(b)
	check(ca.epoch and cb.epoch and ca.epoch != cb.epoch,
	      "two new databases share the epoch %r / %r" % (ca.epoch, cb.epoch))
	check(await a.stop() == 0, "SIGTERM exit code")
	a2 = await Server(feed="none", db=a.db, name="db-a-again").start()
	c2 = await Client.connect(a2)
	check(c2.epoch == ca.epoch, "epoch of a reopened empty db %r, want %r" % (c2.epoch, ca.epoch))


async def test_cli_export_usage_errors_exit_2_name_option():
	maker = await _make_db()
	cases = [
		(["export"], "--db"),
		(["export", "--db", maker.db, "--format", "xml"], "--format"),
		(["export", "--db", maker.db, "--from", "soon"], "--from"),
		(["export", "--db", maker.db, "--from", str(BASE + 10), "--to", str(BASE)], "--from"),
		(["export", "--db", maker.db, "--symbol", "bad sym!"], "--symbol"),
	]
	for argv, word in cases:
		rc, out, err = await run_cli(argv)
		check(rc == 2 and word in err, "`publisher %s`: exit %s, stderr %r; want 2 naming %s"
		      % (" ".join(argv), rc, err[-200:], word))
		check(out == "", "`publisher %s` wrote to stdout: %r" % (" ".join(argv), out[:100]))


# ------------------------------------------------------------ 4. history

def _hist_ticks():
	"""50 ticks of HIST 100 ms apart from BASE: quote, trade, quote, …"""
	rng = random.Random(4)
	out = []
	for i in range(50):
		p = price(rng, 180, 190, rng.choice((2, 3, 4)))
		if i % 2:
			out.append(tick("HIST", ts=BASE + i * 100_000, last=p, last_size=rng.randint(1, 500)))
		else:
			out.append(tick("HIST", ts=BASE + i * 100_000, bid=p, ask=p + Decimal("0.02"),
					bid_size=rng.randint(1, 900)))
	return out


async def test_history_last_n_and_time_ranges_us_and_iso():
	srv = await start_server()
	ticks = _hist_ticks()
	c = await ingest(srv, ticks)
	r = await history(c, symbol="HIST", limit=10, id=4)
	check(r.get("id") == 4, "history reply does not echo id 4: %s" % _short(r))
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
	check(r.get("ticks") == [], "empty range returned %s" % _short(r))
	# The exact decimal text is on the wire.
	for t in ticks[-10:]:
		for k in ("bid", "ask", "last"):
			if k in t:
				check(c.raw_has(k, str(t[k])), '"%s":%s not literally in the history frames' % (k, t[k]))


async def test_history_bars_1s_1m_ohlcv():
	srv = await start_server()
	ticks = _hist_ticks()
	c = await ingest(srv, ticks)
	r = await history(c, symbol="HIST", interval="1s", **{"from": BASE, "to": BASE + 60_000_000})
	check("bars" in r and "ticks" not in r, "history with interval has no bars (or also ticks): %s" % _short(r))
	want = expect_bars(ticks, 1_000_000)
	check(len(want) == 5, "test data: 5 one-second bars expected")
	check_bars(r["bars"], want, "1s bars")
	r = await history(c, symbol="HIST", interval="1m", **{"from": BASE, "to": BASE + 60_000_000})
	check_bars(r.get("bars"), expect_bars(ticks, 60_000_000), "1m bars")
	# limit alone with bars: the last N bars.
	r = await history(c, symbol="HIST", interval="1s", limit=2)
	check_bars(r.get("bars"), want[-2:], "last 2 1s bars")
	# Fractional sizes sum exactly; a price keeps its trailing zero.
	frac = [tick("FRAC", ts=BASE + 100, last=Decimal("1.10"), last_size=Decimal("0.5")),
		tick("FRAC", ts=BASE + 200, last=Decimal("1.2"), last_size=Decimal("0.25")),
		tick("FRAC", ts=BASE + 700_000, last=Decimal("1.05"), last_size=1),
		tick("FRAC", ts=BASE + 1_200_000, last=Decimal("1.3"), last_size=3)]
	await ingest(srv, frac, c)
	r = await history(c, symbol="FRAC", interval="1s", **{"from": BASE, "to": BASE + 60_000_000})
	check_bars(r.get("bars"), expect_bars(frac, 1_000_000), "FRAC 1s bars")
	check(str(r["bars"][0]["volume"]) == "1.75", "bar volume %s, want 1.75" % r["bars"][0]["volume"])
	for iv in ("5m", "1h", "1d"):
		r = await history(c, symbol="HIST", interval=iv, **{"from": 0, "to": BASE + 86_400_000_000})
		us = {"5m": 300_000_000, "1h": 3_600_000_000, "1d": 86_400_000_000}[iv]
		check_bars(r.get("bars"), expect_bars(ticks, us), "%s bars" % iv)


async def test_history_without_store_is_unavailable():
	srv = await Server(feed="stdin", db="none", name="no-store").start()
	await srv.send_ticks([tick("AAPL", bid=Decimal("1.5"))])
	c = await Client.connect(srv)
	await c.subscribe(["AAPL"])
	await c.wait_seq("AAPL", 1)  # the live side works without a store
	r = await c.request({"op": "history", "symbol": "AAPL", "limit": 10, "id": "h1"})
	check(r.get("type") == "error" and r.get("code") == "unavailable" and r.get("id") == "h1",
	      "history with --db none answered %s; want an error with code unavailable and id h1" % _short(r))
	check(isinstance(r.get("message"), str) and r["message"], "unavailable error without a message: %s" % r)
	await c.ping_ok()
	status, _, body = await http_get(srv, "/api/export?" + qs(symbol="AAPL"))
	return "message: %s; /api/export without a store: HTTP %s %r" % (r["message"][:80], status, body[:80])


async def test_history_unknown_symbol_is_empty_ticks():
	srv = await start_server()
	c = await ingest(srv, [tick("AAPL", ts=BASE, bid=Decimal("1.5"))])
	r = await history(c, symbol="NOPE", limit=10)
	check(r.get("ticks") == [], "history for an unknown symbol: %s; want ticks []" % _short(r))
	r = await history(c, symbol="NOPE", **{"from": 0, "to": BASE * 2})
	check(r.get("ticks") == [], "history range for an unknown symbol: %s; want ticks []" % _short(r))
	r = await history(c, symbol="AAPL", interval="1m", limit=10)
	check(r.get("bars") == [], "bars of a symbol without trades: %s; want bars []" % _short(r))


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
		      % (_short(op), _short(r)))
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
		 p1[-1].get("ts") if p1 else None, r1.get("next_from"), _short(p2[:1])))


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
	      "range around the late tick: %s; want seqs [6, 10502]" % _short(r))
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
							   % (s, _short(t), tick_line(sent)))
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


# ------------------------------------------------ 5. /api/export, /api/bars

def _export_ticks():
	"""Ticks over three symbols with every column used somewhere, ts ordered."""
	rng = random.Random(5)
	ticks = gen_ticks(rng, ["AAPL", "MSFT", "EUR/USD"], 60, BASE, step=50_000)
	ticks.append(tick("FUT.X", ts=BASE + 60 * 50_000, last=Decimal("4321.25"), last_size=3,
			  volume=123457))
	ticks.append(tick("FUT.X", ts=BASE + 61 * 50_000, bid=Decimal("0.00001"), ask=Decimal("0.3"),
			  ask_size=Decimal("0.5")))
	return ticks


async def test_api_export_csv_and_jsonl_equal_what_was_sent():
	srv = await start_server()
	ticks = _export_ticks()
	await ingest(srv, ticks)
	for fmt, parse in (("csv", parse_csv), ("jsonl", parse_jsonl)):
		status, headers, body = await http_get(srv, "/api/export?" + qs(format=fmt))
		check(status == 200, "GET /api/export?format=%s: %s %r" % (fmt, status, body[:200]))
		check_rows(parse(body.decode(), "export " + fmt), rows_of(ticks), "all symbols, " + fmt)
		for sym in ("AAPL", "EUR/USD", "FUT.X"):
			status, _, body = await http_get(srv, "/api/export?" + qs(symbol=sym, format=fmt))
			check(status == 200, "export symbol=%s: %s %r" % (sym, status, body[:200]))
			check_rows(parse(body.decode(), "export " + sym), rows_of([t for t in ticks if t["symbol"] == sym]),
				   "symbol=%s %s" % (sym, fmt))
	status, headers, body = await http_get(srv, "/api/export?" + qs(symbol="AAPL"))
	check(status == 200 and body.decode().splitlines()[0] == CSV_HEADER,
	      "format left out: %s %r; want CSV (the default)" % (status, body[:100]))
	return "content-types: csv %r" % headers.get("content-type")


async def test_api_export_symbol_and_time_filters():
	srv = await start_server()
	ticks = _export_ticks()
	await ingest(srv, ticks)
	two = [t for t in ticks if t["symbol"] in ("MSFT", "FUT.X")]
	status, _, body = await http_get(srv, "/api/export?" + qs(symbol=["MSFT", "FUT.X"], format="jsonl"))
	check(status == 200, "repeated symbol: %s %r" % (status, body[:200]))
	check_rows(parse_jsonl(body.decode(), "two symbols"), rows_of(two), "symbol=MSFT&symbol=FUT.X")
	lo, hi = ticks[10]["ts"], ticks[40]["ts"]
	status, _, body = await http_get(srv, "/api/export?" + qs(**{"from": lo, "to": hi}))
	check(status == 200, "from/to µs: %s %r" % (status, body[:200]))
	check_rows(parse_csv(body.decode(), "range"), rows_of(ticks[10:40]), "from=ts#10&to=ts#40 (µs)")
	status, _, body = await http_get(srv, "/api/export?" + qs(
		symbol="AAPL", **{"from": "2024-03-01T14:30:01Z", "to": "2024-03-01T15:30:02+01:00"}))
	check(status == 200, "from/to ISO: %s %r" % (status, body[:200]))
	want = [t for t in ticks if t["symbol"] == "AAPL" and BASE + 1_000_000 <= t["ts"] < BASE + 2_000_000]
	check(want, "test data: AAPL ticks in 14:30:01..02")
	check_rows(parse_csv(body.decode(), "iso range"), rows_of(want), "AAPL from 14:30:01Z to 15:30:02+01:00")
	status, _, body = await http_get(srv, "/api/export?" + qs(symbol="NOPE"))
	check(status == 200 and body.decode().splitlines() == [CSV_HEADER],
	      "export of an unknown symbol: %s %r; want 200 and the header alone" % (status, body[:200]))


async def test_api_bad_arguments_are_400_with_reason():
	srv = await start_server()
	await ingest(srv, [tick("AAPL", ts=BASE, last=Decimal("1.5"), last_size=1)])
	cases = [
		("/api/export?" + qs(symbol="AAPL", format="xml"), "format"),
		("/api/export?" + qs(symbol="AAPL", **{"from": "yesterday"}), "from"),
		("/api/export?" + qs(symbol="AAPL", **{"from": BASE + 10, "to": BASE}), ""),
		("/api/export?" + qs(symbol="bad symbol!"), "symbol"),
		("/api/bars?" + qs(symbol="AAPL", interval="7m"), "interval"),
		("/api/bars?" + qs(interval="1m"), "symbol"),
		("/api/bars?" + qs(symbol="AAPL", interval="1m", to="soon"), "to"),
	]
	notes, bad = [], []
	for path, word in cases:
		status, headers, body = await http_get(srv, path)
		text = body.decode("utf-8", "replace")
		if status != 400:
			bad.append("GET %s: HTTP %s %r; want 400" % (path, status, text[:80]))
		elif not (text.strip() and word in text.lower()):
			bad.append("GET %s: 400 body %r does not say what is wrong (%s)"
				   % (path, text[:200], word or "a reason"))
		else:
			notes.append(text.strip()[:50])
	check(srv.alive(), "server died on bad API arguments")
	check(not bad, "; ".join(bad))
	return "e.g. %r" % notes[0]


async def test_api_bars_json():
	srv = await start_server()
	ticks = _hist_ticks()
	await ingest(srv, ticks)
	status, headers, body = await http_get(srv, "/api/bars?" + qs(
		symbol="HIST", interval="1s", **{"from": BASE, "to": BASE + 60_000_000}))
	check(status == 200, "GET /api/bars: %s %r" % (status, body[:200]))
	check("json" in headers.get("content-type", ""), "/api/bars content-type %r" % headers.get("content-type"))
	try:
		o = json.loads(body, parse_float=Decimal)
	except ValueError as e:
		raise AssertionError("/api/bars body is not JSON (%s): %r" % (e, body[:200]))
	check(o.get("symbol") == "HIST" and o.get("interval") == "1s",
	      "/api/bars symbol/interval: %s" % _short({k: v for k, v in o.items() if k != "bars"}))
	check_bars(o.get("bars"), expect_bars(ticks, 1_000_000), "/api/bars 1s")
	status, _, body = await http_get(srv, "/api/bars?" + qs(
		symbol="HIST", interval="1m", **{"from": "2024-03-01T14:30:00Z", "to": "2024-03-01T14:31:00Z"}))
	check(status == 200, "GET /api/bars 1m ISO: %s %r" % (status, body[:200]))
	check_bars(json.loads(body, parse_float=Decimal).get("bars"), expect_bars(ticks, 60_000_000), "/api/bars 1m")


# ------------------------------------------- 6. export → replay round trip

def _round_trip_ticks():
	rng = random.Random(6)
	syms = ["AAPL", "MSFT", "BRK.B", "EUR/USD"]
	ticks = gen_ticks(rng, syms, 400, BASE, step=10_000)
	# odd values that must survive as text
	ticks.append(tick("AAPL", ts=BASE + 400 * 10_000, bid=Decimal("0.3"), ask=Decimal("12345.6789"),
			  bid_size=Decimal("0.25"), ask_size=2 ** 40))
	ticks.append(tick("MSFT", ts=BASE + 401 * 10_000, last=Decimal("0.000001"), last_size=1))
	return ticks


async def _capture(srv, syms, ticks):
	"""(snapshots, {symbol: history ticks}) of a server holding ticks."""
	c = await Client.connect(srv, name="capture")
	counts = {s: sum(1 for t in ticks if t["symbol"] == s) for s in syms}
	for s in syms:
		await wait_stored(c, s, counts[s], timeout=5)
	hist = {}
	for s in syms:
		r = await history(c, symbol=s, limit=counts[s])
		hist[s] = [(t.get("ts"), t.get("seq"), exact({k: v for k, v in t.items() if k in INPUT_FIELDS}))
			   for t in r.get("ticks") or []]
	_, snaps = await snapshots(srv, syms)
	return snaps, hist


def _same_server_view(a, b, who):
	snaps_a, hist_a = a
	snaps_b, hist_b = b
	for s in snaps_a:
		check_same_snapshot(snaps_b[s], snaps_a[s], "%s: %s snapshot" % (who, s))
		if hist_b[s] != hist_a[s]:
			i = next((i for i, (x, y) in enumerate(zip(hist_b[s], hist_a[s])) if x != y),
				 min(len(hist_a[s]), len(hist_b[s])))
			raise AssertionError("%s: %s history differs: %d vs %d ticks; at %d: %s vs %s"
					     % (who, s, len(hist_b[s]), len(hist_a[s]), i,
						hist_b[s][i:i + 1], hist_a[s][i:i + 1]))


class ReplayServer(Server):
	"""`publisher replay FILE --speed max` with the harness's serve options."""

	def __init__(self, path, **kw):
		Server.__init__(self, feed="none", **kw)
		self.replay_path = path

	def argv(self):
		argv = Server.argv(self)
		i = argv.index("--feed")
		del argv[i:i + 2]
		return [argv[0], "replay", self.replay_path, "--speed", "max"] + argv[2:]


async def _try_replay(make, syms, ticks, want, who):
	srv = make()
	try:
		await srv.start()
	except AssertionError:
		if srv.proc is not None and srv.proc.returncode == 2:
			srv.exit_expected = True
			return "%s not available (exit 2: %s)" % (who, srv.stderr_tail(2).strip()[:100])
		raise
	_same_server_view(want, await _capture(srv, syms, ticks), who)
	return "%s ok" % who


async def test_export_then_replay_round_trip_same_state_and_ticks():
	ticks = _round_trip_ticks()
	syms = ["AAPL", "MSFT", "BRK.B", "EUR/USD"]
	a = await Server(feed="stdin", name="A").start()
	await a.send_ticks(ticks)
	view_a = await _capture(a, syms, ticks)
	status, _, api_csv = await http_get(a, "/api/export?" + qs(format="csv"))
	check(status == 200, "A: /api/export %s" % status)
	rc = await a.stop(signal.SIGTERM, timeout=5)
	check(rc == 0, "A: SIGTERM exit %s" % rc)

	files = {}
	for fmt in ("csv", "jsonl"):
		path = os.path.join(a.tmp, "f." + fmt)
		rc, out, err = await run_cli(["export", "--db", a.db, "--format", fmt, "-o", path], timeout=20)
		check(rc == 0, "export --format %s -o: exit %s, stderr %r" % (fmt, rc, err[-300:]))
		check(out == "", "export -o also wrote to stdout: %r" % out[:200])
		with open(path) as f:
			files[fmt] = f.read()
		rc, out, err = await run_cli(["export", "--db", a.db, "--format", fmt], timeout=20)
		check(rc == 0 and out == files[fmt], "export to stdout (exit %s) differs from -o file (%d vs %d bytes)"
		      % (rc, len(out), len(files[fmt])))
	check_rows(parse_csv(files["csv"], "f.csv"), rows_of(ticks), "CLI export csv")
	check_rows(parse_jsonl(files["jsonl"], "f.jsonl"), rows_of(ticks), "CLI export jsonl")
	notes = []
	if api_csv.decode() != files["csv"]:
		notes.append("/api/export and `publisher export` CSV bytes differ")

	for fmt in ("csv", "jsonl"):
		b = await Server(feed="stdin", name="B-" + fmt).start()
		await b.send_ticks(files[fmt].splitlines())
		_same_server_view(view_a, await _capture(b, syms, ticks), "B fed %s on stdin vs A" % fmt)

	# The replay feed itself, when built.
	notes.append(await _try_replay(lambda: Server(
		feed="replay:%s,speed=max" % os.path.join(a.tmp, "f.csv"), name="R-feed"),
		syms, ticks, view_a, "--feed replay:f.csv,speed=max"))
	notes.append(await _try_replay(lambda: ReplayServer(os.path.join(a.tmp, "f.jsonl"), name="R-cmd"),
				       syms, ticks, view_a, "publisher replay f.jsonl --speed max"))
	return "; ".join(notes)

test_export_then_replay_round_trip_same_state_and_ticks.timeout = 50


async def test_round_trip_keeps_out_of_order_tick_in_arrival_order():
	# Out-of-order timestamps are applied in arrival order; export
	# then replay must give back the same ticks, so the same final state.
	t1 = tick("OOO", ts=BASE + 2_000_000, bid=Decimal("10.1"), ask=Decimal("10.3"))
	t2 = tick("OOO", ts=BASE + 1_000_000, bid=Decimal("9.9"))   # late, older ts
	t3 = tick("OOO", ts=BASE + 3_000_000, ask=Decimal("10.5"))
	a = await Server(feed="stdin", name="A").start()
	await a.send_ticks([t1, t2, t3])
	view_a = await _capture(a, ["OOO"], [t1, t2, t3])
	assert_fields(view_a[0]["OOO"], {"bid": "9.9", "ask": "10.5"}, "A applied in arrival order")
	status, _, body = await http_get(a, "/api/export?" + qs(symbol="OOO", format="jsonl"))
	check(status == 200, "export: %s" % status)
	b = await Server(feed="stdin", name="B").start()
	await b.send_ticks(body.decode().splitlines())
	_same_server_view(view_a, await _capture(b, ["OOO"], [t1, t2, t3]),
			  "B fed A's export (with an out-of-order tick) vs A")


async def test_real_usdthb_file_round_trips_through_store_exactly():
	# tests/data/usdthb-1997.csv (2,984 real quotes, one out of order) in,
	# /api/export out: the same rows, the same text, the same order.
	path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
			    "data", "usdthb-1997.csv")
	with open(path) as f:
		text = f.read()
	want = []
	for row in csv.DictReader(io.StringIO(text)):
		want.append((int(row["ts"]), row["symbol"],
			     {k: v for k, v in row.items() if k not in ("ts", "symbol") and v not in ("", None)}))
	check(len(want) == 2984, "test data: %d rows in %s" % (len(want), path))
	srv = await start_server()
	await srv.send_ticks(text.splitlines())
	c = await Client.connect(srv)
	await wait_stored(c, "USDTHB", len(want), timeout=5)
	status, _, body = await http_get(srv, "/api/export?" + qs(symbol="USDTHB"))
	check(status == 200, "export: %s %r" % (status, body[:200]))
	check_rows(parse_csv(body.decode(), "export"), want, "USDTHB exported vs the file")
	_, snaps = await snapshots(srv, ["USDTHB"])
	assert_fields(snaps["USDTHB"], want[-1][2], "USDTHB state vs the file's last row")
	check(snaps["USDTHB"]["seq"] == len(want), "seq %s, want %d" % (snaps["USDTHB"]["seq"], len(want)))


async def test_cli_export_filters_match_api_on_live_db():
	srv = await start_server()
	ticks = _export_ticks()
	await ingest(srv, ticks)
	lo, hi = ticks[5]["ts"], ticks[50]["ts"]
	args = ["--symbol", "AAPL", "--symbol", "EUR/USD", "--from", str(lo), "--to", str(hi)]
	want = [t for t in ticks[5:50] if t["symbol"] in ("AAPL", "EUR/USD")]
	for fmt, parse in (("csv", parse_csv), ("jsonl", parse_jsonl)):
		rc, out, err = await run_cli(["export", "--db", srv.db, "--format", fmt] + args, timeout=20)
		check(rc == 0, "export %s on the live db: exit %s, stderr %r" % (" ".join(args), rc, err[-300:]))
		check_rows(parse(out, "cli " + fmt), rows_of(want), "CLI export %s %s" % (fmt, " ".join(args)))
		status, _, body = await http_get(srv, "/api/export?" + qs(
			symbol=["AAPL", "EUR/USD"], format=fmt, **{"from": lo, "to": hi}))
		check(status == 200, "/api/export: %s" % status)
		check_rows(parse(body.decode(), "api " + fmt), rows_of(want), "/api/export " + fmt)
	rc, out, err = await run_cli(["export", "--db", srv.db, "--from", "2024-03-01T14:30:01Z",
				      "--to", "2024-03-01T14:30:02Z"], timeout=20)
	check(rc == 0, "export --from/--to ISO: exit %s, stderr %r" % (rc, err[-300:]))
	check_rows(parse_csv(out, "cli iso"), rows_of([t for t in ticks if BASE + 1_000_000 <= t["ts"] < BASE + 2_000_000]),
		   "CLI export --from 14:30:01Z --to 14:30:02Z")
	await Client.connect(srv)  # still serving


# --------------------------------------------------- 7. export, missing db

async def test_cli_export_missing_db_exit_1_names_path():
	holder = Server(feed="none", name="holder")
	path = os.path.join(holder.tmp, "no-such-dir-or-file", "missing.db")
	rc, out, err = await run_cli(["export", "--db", path, "--format", "csv"])
	check(rc == 1, "export --db %s: exit %s, want 1 (stderr %r)" % (path, rc, err[-300:]))
	check(path in err, "stderr does not name the path %s: %r" % (path, err[-300:]))
	check(out == "", "export of a missing db wrote to stdout: %r" % out[:200])
	path2 = os.path.join(holder.tmp, "missing.db")
	rc, out, err = await run_cli(["export", "--db", path2])
	check(rc == 1 and path2 in err, "export --db %s (dir exists): exit %s, stderr %r" % (path2, rc, err[-300:]))
	check(not os.path.exists(path2), "export created %s" % path2)
	return err.strip().splitlines()[-1][:140] if err.strip() else ""

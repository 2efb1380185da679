"""The store as a client sees it: history requests, waiting until ticks are
stored, snapshots and seqs to compare across restarts, and the tick files
of /api/export and `publisher export` parsed back into rows.

The store commits in batches (at least every 50 ms), so after sending ticks
a test polls `history` until the rows are there (wait_stored, ingest)."""

import asyncio
import csv
import io
import json
import signal
import time

from .checks import Decimal, check, summary
from .client import Client
from .server import Server
from .ticks import BASE, INPUT_FIELDS, UPDATE_ENVELOPE, exact, tick, tick_fields, tick_line

CSV_HEADER = "ts,symbol,bid,ask,bid_size,ask_size,last,last_size,volume"


# ------------------------------------------------------------ history

async def history(c, timeout=10.0, **args):
	"""One history request; it must be answered with type history."""
	op = {"op": "history"}
	op.update(args)
	r = await c.request(op, timeout)
	check(r.get("type") == "history", "%s answered %s" % (summary(op, 300), summary(r, 300)))
	check(r.get("symbol") == args.get("symbol"), "history reply symbol %r, want %r: %s"
	      % (r.get("symbol"), args.get("symbol"), summary(r, 300)))
	return r


async def wait_stored(c, symbol, seq, timeout=3.0):
	"""Poll history until the store holds symbol's tick `seq` (ticks are
	committed in order, so all earlier ones are stored too)."""
	deadline = time.monotonic() + timeout
	last = None
	while True:
		r = await history(c, symbol=symbol, limit=1)
		ticks = r.get("ticks")
		check(isinstance(ticks, list), "history reply without a ticks list: %s" % summary(r, 300))
		if ticks:
			last = ticks[-1].get("seq")
			if isinstance(last, int) and last >= seq:
				return
		if time.monotonic() > deadline:
			raise AssertionError("store did not show %s seq %d within %.1f s (history's "
					     "last seq: %r)" % (symbol, seq, timeout, last))
		await asyncio.sleep(0.05)


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


async def make_db():
	"""A stopped server whose database (srv.db) holds one AAPL tick."""
	srv = await Server(feed="stdin", name="maker").start()
	await ingest(srv, [tick("AAPL", ts=BASE, bid=Decimal("1.5"), ask=Decimal("1.7"))])
	rc = await srv.stop(signal.SIGTERM, timeout=5)
	check(rc == 0, "SIGTERM: exit code %s" % rc)
	return srv


def check_ticks(got, sent, first_seq, who):
	"""History ticks equal the sent ticks: ts, consecutive seqs from
	first_seq, every field as text, nothing else."""
	check(isinstance(got, list), "%s: ticks is not a list: %r" % (who, got))
	check(len(got) == len(sent), "%s: %d ticks, want %d (first %s, last %s)"
	      % (who, len(got), len(sent), got[:1], got[-1:]))
	for i, (g, s) in enumerate(zip(got, sent)):
		extra = set(g) - {"ts", "seq", "symbol"} - set(INPUT_FIELDS)
		want = dict(ts=s["ts"], seq=first_seq + i, fields=exact(tick_fields(s)))
		have = dict(ts=g.get("ts"), seq=g.get("seq"),
			    fields=exact({k: v for k, v in g.items() if k in INPUT_FIELDS}))
		if have != want or extra or g.get("symbol", s["symbol"]) != s["symbol"]:
			raise AssertionError("%s: tick %d is %s, want %s (sent %s)"
					     % (who, i, summary(g, 300), want, tick_line(s)))


# ------------------------------------------------- snapshots and seqs

def snap_fields(m):
	"""The fields of a snapshot or delta, without its envelope."""
	return {k: v for k, v in m.items() if k not in UPDATE_ENVELOPE}


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
	"""{symbol: seq} as the `symbols` op lists them."""
	r = await c.request({"op": "symbols"})
	check(r.get("type") == "symbols" and isinstance(r.get("symbols"), list),
	      "symbols answered %s" % summary(r, 300))
	return {e.get("symbol"): e.get("seq") for e in r["symbols"]}


# ---------------------------------------------------------- tick files

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
	"""[(ts, symbol, {field: text})] from a JSONL export, each line checked."""
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
		out.append((o["ts"], o.get("symbol"), exact(tick_fields(o))))
	return out


def rows_of(ticks):
	"""The rows an export of these ticks must hold."""
	return [(t["ts"], t["symbol"], exact(tick_fields(t))) for t in ticks]


def check_rows(got, want, who):
	if got != want:
		idx = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
		raise AssertionError("%s: %d rows, want %d; first difference at row %d: got %s, want %s"
				     % (who, len(got), len(want), idx, got[idx:idx + 1], want[idx:idx + 1]))

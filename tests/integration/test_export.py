"""Exporting ticks (README: Tick files, replay and export): /api/export and
`publisher export` as CSV and JSONL with symbol and time filters, their
errors, and the round trip: what is exported and fed back (on stdin, with
the replay feed, with `publisher replay`) makes the same state and history.
Ticks come from the stdin feed with explicit timestamps, so every exported
line is known exactly; decimals are compared as text."""

import csv
import io
import os
import random
import signal

from harness import BASE, CSV_HEADER, INPUT_FIELDS, Client, Decimal, Server, assert_fields, check, \
	check_rows, check_same_snapshot, exact, gen_ticks, history, http_get, ingest, make_db, \
	parse_csv, parse_jsonl, qs, rows_of, run_cli, snapshots, start_server, tick, wait_stored


async def test_cli_export_usage_errors_exit_2_name_option():
	maker = await make_db()
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


async def test_api_export_is_a_download_named_symbol_from_to():
	"""A browser saves /api/export as SYMBOL-FROM-TO.csv: the range as asked,
	compact UTC, 'start'/'end' where open, '/' and ':' of a symbol as '_'.
	Other answers are no downloads."""
	srv = await start_server()
	ticks = _export_ticks()
	await ingest(srv, ticks)
	cases = [
		(dict(symbol="AAPL", **{"from": BASE, "to": BASE + 60_000_000}), "AAPL-20240301T143000Z-20240301T143100Z.csv"),
		(dict(symbol="EUR/USD", format="jsonl", **{"from": "2024-03-01T14:30:01Z", "to": BASE + 2_500_000}),
		 "EUR_USD-20240301T143001Z-20240301T143002.500000Z.jsonl"),
		(dict(symbol=["MSFT", "FUT.X"], **{"from": BASE}), "MSFT+FUT.X-20240301T143000Z-end.csv"),
		(dict(), "all-start-end.csv"),
	]
	for args, name in cases:
		status, headers, body = await http_get(srv, "/api/export" + ("?" + qs(**args) if args else ""))
		check(status == 200, "export %r: %s %r" % (args, status, body[:200]))
		got = headers.get("content-disposition")
		check(got == 'attachment; filename="%s"' % name,
		      "export %r: Content-Disposition %r; want attachment named %s" % (args, got, name))
	# The body is the export as before.
	status, headers, body = await http_get(srv, "/api/export?" + qs(symbol="AAPL", **{"from": BASE, "to": BASE + 60_000_000}))
	check_rows(parse_csv(body.decode(), "named export"), rows_of([t for t in ticks if t["symbol"] == "AAPL"]), "AAPL, a minute")
	for path in ("/api/bars?" + qs(symbol="AAPL"), "/api/export?" + qs(symbol="bad sym!")):
		status, headers, _ = await http_get(srv, path)
		check("content-disposition" not in headers, "%s (%s) is no download: %r" % (path, status, headers.get("content-disposition")))
	return "e.g. " + cases[1][1]


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


async def test_api_empty_query_or_trailing_ampersand_is_no_argument():
	"""'?' with nothing after it, or a trailing '&', adds no argument: the
	answer is that of the request without them (libwebsockets hands such an
	empty argument over as '/', which was refused as "unknown argument
	'/'")."""
	srv = await start_server()
	await ingest(srv, [tick("AAPL", ts=BASE, last=Decimal("1.5"), last_size=1)])
	answers = {}
	for path in ("/api/export", "/api/export?", "/api/export?symbol=AAPL&",
		     "/api/bars?symbol=AAPL&interval=1m&"):
		status, _, body = await http_get(srv, path)
		check(status == 200, "GET %s: HTTP %s %r; want 200" % (path, status, body[:120]))
		answers[path] = body
	check(answers["/api/export?"] == answers["/api/export"],
	      "GET /api/export? answered otherwise than GET /api/export")
	return "%d bytes exported either way" % len(answers["/api/export"])


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

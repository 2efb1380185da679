"""`publisher import FILE... --db DB` (README: Tick files, replay and export)
against the real binary: the real USD/THB file imported twice is stored
once; a duplicate row is stored twice, an out-of-order row goes into
history without moving the state back, a bad line and a negative ts are
refused with their line numbers; an import killed with SIGKILL halfway and
run again ends with the file stored once; standard input is idempotent by
its bytes; a database a running server holds is refused; usage errors exit
2. Files are compared with what `publisher export` gives back, and states
with what a server started on the database serves."""

import asyncio
import csv
import io
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time

from harness import CSV_HEADER, REPO, Server, assert_fields, binary, check, history, parse_csv, \
	run_cli, snapshots, start_server, wait_stored

USDTHB = os.path.join(REPO, "tests", "data", "usdthb-1997.csv")


def _tmp():
	d = tempfile.mkdtemp(prefix="publisher-import-")
	return d


def _rows_of_file(path):
	"""[(ts, symbol, {field: text})] of a CSV tick file, as parse_csv gives them."""
	with open(path) as f:
		return [(int(r["ts"]), r["symbol"], {k: v for k, v in r.items()
						      if k not in ("ts", "symbol") and v not in ("", None)})
			for r in csv.DictReader(f)]


async def _export(db, *args):
	rc, out, err = await run_cli(["export", "--db", db] + list(args), timeout=60)
	check(rc == 0, "export --db %s: exit %s, stderr %r" % (db, rc, err[-300:]))
	return out


async def _served(db, symbols):
	"""The snapshots a server started on db (no feed) serves."""
	srv = await Server(feed="none", db=db, name="reader").start()
	_, snaps = await snapshots(srv, symbols)
	return srv, snaps


async def test_usdthb_imported_twice_is_stored_once():
	d = _tmp()
	try:
		db = os.path.join(d, "fx.db")
		want = _rows_of_file(USDTHB)
		check(len(want) == 2984, "test data: %d rows in %s" % (len(want), USDTHB))
		rc, out, err = await run_cli(["import", USDTHB, "--db", db])
		check(rc == 0, "first import: exit %s, stderr %r" % (rc, err[-300:]))
		check("2984 rows stored" in out, "first import's summary: %r" % out)
		rc, out2, err2 = await run_cli(["import", USDTHB, "--db", db])
		check(rc == 0, "second import: exit %s, stderr %r" % (rc, err2[-300:]))
		check("0 rows stored" in out2 and "already imported" in out2,
		      "second import's summary: %r" % out2)
		check("already imported" in err2, "second import says nothing on stderr: %r" % err2[-300:])
		got = parse_csv(await _export(db, "--symbol", "USDTHB"), "export after two imports")
		check(got == want, "export after importing twice: %d rows, want the file's %d once%s"
		      % (len(got), len(want), "" if len(got) != len(want) else " (same count, other rows)"))
		srv, snaps = await _served(db, ["USDTHB"])
		s = snaps["USDTHB"]
		check(s["seq"] == 2984, "served seq %s, want 2984" % s["seq"])
		assert_fields(s, want[-1][2], "USDTHB state vs the file's last row")
		await srv.stop()
		return out.strip()
	finally:
		shutil.rmtree(d, ignore_errors=True)


async def test_duplicate_late_and_bad_rows_round_trip_as_specified():
	d = _tmp()
	try:
		db, path = os.path.join(d, "x.db"), os.path.join(d, "odd.csv")
		lines = ["ts,symbol,bid,ask",
			 "1709303400000000,XYZ,10.00,10.10",   # 2
			 "1709303401000000,XYZ,10.20,10.30",   # 3
			 "1709303401000000,XYZ,10.20,10.30",   # 4: the same row again
			 "1709303400500000,XYZ,9.00,9.10",     # 5: older than line 4
			 "1709303402000000,XYZ,ten,10.50",     # 6: bad
			 "-1,XYZ,10.40,10.50",                 # 7: before 1970
			 "1709303403000000,XYZ,10.60,10.70"]   # 8
		with open(path, "w") as f:
			f.write("\n".join(lines) + "\n")
		rc, out, err = await run_cli(["import", path, "--db", db])
		check(rc == 0, "import: exit %s (bad lines are not ticks: want 0), stderr %r" % (rc, err[-400:]))
		check("5 rows stored" in out and "2 bad lines" in out and "line 6, 7" in out,
		      "summary %r: want 5 rows stored and the bad lines 6 and 7 named" % out)
		check("line 6: field 'bid': 'ten'" in err, "the bad line's reason on stderr: %r" % err[-400:])
		check("line 7: ts -1 is before 1970-01-01" in err, "the negative ts's reason on stderr: %r" % err[-400:])
		got = parse_csv(await _export(db), "export")
		want = [(int(l.split(",")[0]), "XYZ", {"bid": l.split(",")[2], "ask": l.split(",")[3]})
			for l in (lines[1], lines[2], lines[3], lines[4], lines[7])]
		check(got == want, "export %s, want %s (the duplicate twice, the late row in file order)" % (got, want))
		srv, snaps = await _served(db, ["XYZ"])
		s = snaps["XYZ"]
		check(s["seq"] == 5, "seq %s, want 5: one per stored row" % s["seq"])
		check(str(s.get("bid")) == "10.60" and str(s.get("ask")) == "10.70",
		      "state %s: want the newest row's 10.60/10.70, not moved back by the late row" % s)
		c, _ = await snapshots(srv, ["XYZ"], name="hist")
		h = await history(c, symbol="XYZ", limit=100)
		times = [t["ts"] for t in h["ticks"]]
		check(times == sorted(times) and len(times) == 5,
		      "history %s: want the 5 ticks, the late one at its time" % times)
		await srv.stop()
		return out.strip()
	finally:
		shutil.rmtree(d, ignore_errors=True)


ROWS = 1_500_000


def _write_big(path):
	"""ROWS quotes over 50 symbols, ts strictly increasing, written exactly
	as export writes them, so the export of the file must equal its text."""
	with open(path, "w") as f:
		f.write(CSV_HEADER + "\n")
		ts = 1709303400000000
		chunk = []
		for i in range(ROWS):
			ts += 7 + i % 13
			p = 10000 + (i * 7919) % 5000
			chunk.append("%d,S%02d,%d.%02d,%d.%02d,%d,,,,\n"
				     % (ts, i % 50, p // 100, p % 100, (p + 5) // 100, (p + 5) % 100, 100 + i % 900))
			if len(chunk) == 100000:
				f.write("".join(chunk))
				chunk = []
		f.write("".join(chunk))


def _progress(db):
	"""(rows, done) of the one import recorded in db, or None."""
	try:
		con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=0.2)
		try:
			row = con.execute("SELECT rows, done FROM imports").fetchone()
		finally:
			con.close()
		return row
	except sqlite3.Error:
		return None


async def test_import_killed_halfway_and_run_again_stores_the_file_once():
	d = _tmp()
	try:
		db, path = os.path.join(d, "big.db"), os.path.join(d, "big.csv")
		_write_big(path)
		proc = await asyncio.create_subprocess_exec(
			binary(), "import", path, "--db", db, stdin=subprocess.DEVNULL,
			stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
		deadline, seen = time.monotonic() + 60, None
		while time.monotonic() < deadline and proc.returncode is None:
			seen = _progress(db)
			if seen and seen[0] > 0 and not seen[1]:
				break
			await asyncio.sleep(0.005)
		check(proc.returncode is None, "the import finished (exit %s) before a commit was seen "
		      "half way: the machine is faster than this test expects" % proc.returncode)
		proc.send_signal(signal.SIGKILL)
		await proc.wait()
		killed_at = _progress(db)
		check(killed_at and 0 < killed_at[0] < ROWS and not killed_at[1],
		      "after SIGKILL the database records %s; want part of the file" % (killed_at,))
		rc, out, err = await run_cli(["import", path, "--db", db], timeout=120)
		check(rc == 0, "import again: exit %s, stderr %r" % (rc, err[-300:]))
		check("resuming after line" in err, "the second run does not say it resumes: %r" % err[-300:])
		check("%d rows stored" % (ROWS - killed_at[0]) in out,
		      "second run %r: want the %d rows after the %d stored before the kill"
		      % (out, ROWS - killed_at[0], killed_at[0]))
		with open(path) as f:
			text = f.read()
		exported = await _export(db)
		check(exported == text, "export after kill and resume: %d bytes, want the file's %d "
		      "(%d lines, want %d)" % (len(exported), len(text), exported.count("\n"), text.count("\n")))
		con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
		try:
			bad = con.execute("SELECT count(*) FROM (SELECT symbol_id FROM ticks GROUP BY symbol_id "
					  "HAVING count(DISTINCT seq) != count(*) OR max(seq) != count(*))").fetchone()[0]
		finally:
			con.close()
		check(bad == 0, "%d symbols whose seqs are not 1..n once each" % bad)
		rc, out, _ = await run_cli(["import", path, "--db", db], timeout=60)
		check(rc == 0 and "0 rows stored" in out, "a third run: exit %s, %r" % (rc, out))
		return "killed with %d of %d rows committed; %s" % (killed_at[0], ROWS, out.strip())
	finally:
		shutil.rmtree(d, ignore_errors=True)


test_import_killed_halfway_and_run_again_stores_the_file_once.timeout = 180


async def _import_stdin(db, data):
	proc = await asyncio.create_subprocess_exec(
		binary(), "import", "-", "--db", db, stdin=subprocess.PIPE,
		stdout=subprocess.PIPE, stderr=subprocess.PIPE)
	out, err = await asyncio.wait_for(proc.communicate(data), 30)
	return proc.returncode, out.decode(), err.decode()


async def test_standard_input_is_idempotent_by_its_bytes():
	d = _tmp()
	try:
		db = os.path.join(d, "in.db")
		with open(USDTHB, "rb") as f:
			data = f.read()
		rc, out, err = await _import_stdin(db, data)
		check(rc == 0 and "2984 rows stored" in out, "stdin import: exit %s, %r %r" % (rc, out, err[-200:]))
		rc, out, err = await _import_stdin(db, data)
		check(rc == 0 and "0 rows stored" in out, "the same bytes again: exit %s, %r" % (rc, out))
		rc, out, _ = await run_cli(["import", USDTHB, "--db", db])
		check(rc == 0 and "0 rows stored" in out, "the same bytes as a file: exit %s, %r" % (rc, out))
		got = parse_csv(await _export(db), "export")
		check(len(got) == 2984, "export: %d rows, want 2984" % len(got))
		leftovers = [n for n in os.listdir(d) if ".import-" in n]
		check(not leftovers, "temporary copies left beside the database: %s" % leftovers)
	finally:
		shutil.rmtree(d, ignore_errors=True)


async def test_database_a_running_server_holds_is_refused():
	srv = await start_server()
	rc, out, err = await run_cli(["import", USDTHB, "--db", srv.db])
	check(rc == 1, "import into a served db: exit %s, want 1" % rc)
	check("in use by another publisher" in err, "the message does not say why: %r" % err[-300:])
	check(srv.alive(), "the server died")
	rc = await srv.stop()
	check(rc == 0, "server exit %s" % rc)
	rc, out, err = await run_cli(["import", USDTHB, "--db", srv.db])
	check(rc == 0 and "2984 rows stored" in out, "after the server stopped: exit %s, %r %r" % (rc, out, err[-200:]))
	return err.strip().splitlines()[-1] if err.strip() else ""


async def test_negative_ts_is_refused_by_the_feeds_too():
	srv = await start_server()
	await srv.send_ticks(['{"ts":-1,"symbol":"NEG","bid":1}',
			      '{"ts":"1969-12-31T23:59:59Z","symbol":"NEG","bid":2}',
			      '{"ts":5,"symbol":"NEG","bid":3}'])
	c, _ = await snapshots(srv, ["NEG"])
	await wait_stored(c, "NEG", 1)
	got = parse_csv(await _export(srv.db, "--symbol", "NEG"), "export")
	check(got == [(5, "NEG", {"bid": "3"})], "stored %s: want only the tick at ts 5" % got)
	text = srv.stderr_text()
	check("before 1970-01-01" in text, "the stdin feed does not say why: %r" % text[-500:])


async def test_usage_errors_exit_2_and_help_comes_from_the_table():
	d = _tmp()
	try:
		cases = [(["import", USDTHB], "--db"),
			 (["import", "--db", os.path.join(d, "x.db")], "FILE"),
			 (["import", USDTHB, "--db", os.path.join(d, "x.db"), "--speed", "2"], "--speed")]
		for argv, word in cases:
			rc, out, err = await run_cli(argv)
			check(rc == 2 and word in err, "`publisher %s`: exit %s, %r; want 2 naming %s"
			      % (" ".join(argv), rc, err[-200:], word))
		rc, out, err = await run_cli(["import", os.path.join(d, "missing.csv"), "--db", os.path.join(d, "x.db")])
		check(rc == 1 and "missing.csv" in err, "a missing file: exit %s, %r; want 1 naming it" % (rc, err[-200:]))
		rc, out, _ = await run_cli(["import", "--help"])
		check(rc == 0 and "publisher import FILE... --db FILE" in out and "--log-level" in out,
		      "import --help: exit %s, %r" % (rc, out[:400]))
		rc, out, _ = await run_cli(["--help"])
		check(rc == 0 and "publisher import" in out, "--help does not list import: %r" % out[:600])
	finally:
		shutil.rmtree(d, ignore_errors=True)

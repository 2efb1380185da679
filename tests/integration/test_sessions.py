"""Trading sessions (README: Command line, Trading sessions): the change
basis. Across a session boundary the snapshots and deltas carry
prev_close, the previous session's close (its last trade; for a quote-only
symbol the exact mid price), and open/high/low/volume/trades start again
(a delta takes open/high/low away as null until the session's first
trade). After a restart on the same database the same, and the session
goes on where it was. Sessions follow the ticks' own ts: here New York's
09:30 for equities and 17:00 for FX, across the weekend the clocks went
forward (2024-03-10). Without --session, sessions are UTC days. A bad
--session exits 2 naming the value; import folds with the same rule."""

import os
import random
import signal
import sqlite3
import tempfile

import asyncio
import time

from harness import DAY_US, REDIS_SERVER, SKIP, Client, Node, Redis, Server, assert_fields, \
	check, converged, exact, gen_ticks, http_get, ingest, model_states, run_cli, snap_fields, \
	snapshots, summary, tick, tick_line, wait_published

SESSIONS = ["AAPL=America/New_York@09:30", "MSFT=America/New_York@09:30",
	    "EUR/*=America/New_York@17:00"]
SYMS = ["AAPL", "MSFT", "EUR/USD"]

# µs of wall times in New York (EST until 2024-03-10 02:00, EDT after)
FRI_1500 = 1709928000_000000   # Fri 2024-03-08 15:00 EST
FRI_1530 = 1709929800_000000
FRI_1545 = 1709930700_000000
FRI_1559 = 1709931540_000000
FRI_1600 = 1709931600_000000
FRI_1630 = 1709933400_000000
SUN_1705 = 1710104700_000000   # Sun 2024-03-10 17:05 EDT
MON_0931 = 1710163860_000000   # Mon 2024-03-11 09:31 EDT
MON_0940 = 1710164400_000000
MON_0945 = 1710164700_000000
MON_1701 = 1710190860_000000
TUE_0935 = 1710250500_000000   # Tue 2024-03-12 09:35 EDT


def friday():
	return [
		tick("AAPL", ts=FRI_1500, last="170.50", last_size=100),
		tick("MSFT", ts=FRI_1500, last="404.10", last_size=20),
		tick("AAPL", ts=FRI_1530, last="171.25", last_size=50),
		tick("EUR/USD", ts=FRI_1600, bid="1.0850", ask="1.0853"),
		tick("MSFT", ts=FRI_1530, last="404.60", last_size=30),
		tick("AAPL", ts=FRI_1559, last="170.75", last_size=10),
		tick("EUR/USD", ts=FRI_1630, bid="1.0851", ask="1.0854"),
	]


def monday():
	return [
		tick("EUR/USD", ts=SUN_1705, bid="1.0860", ask="1.0862"),
		tick("AAPL", ts=MON_0931, last="172.00", last_size=5),
		tick("MSFT", ts=MON_0940, bid="405.10", ask="405.20"),
	]


def fields_of(held):
	return exact(held["fields"])


async def wait_all(c, seqs):
	for s, n in seqs.items():
		await c.wait_seq(s, n, timeout=5)


def check_fields(held, want, gone, who):
	"""held has every field of want, as text, and none of gone."""
	have = fields_of(held)
	bad = {k: (have.get(k), v) for k, v in exact(want).items() if have.get(k) != v}
	check(not bad, "%s: fields differ (field: (got, want)): %s; held %s" % (who, bad, have))
	extra = [k for k in gone if k in have]
	check(not extra, "%s: holds %s, which the session took away: %s" % (who, extra, have))


async def test_change_basis_across_a_session_and_a_restart():
	"""The change basis test."""
	tmp = tempfile.mkdtemp(prefix="publisher-it-")
	conf = os.path.join(tmp, "publisher.conf")
	with open(conf, "w") as f:
		f.write("# New York sessions\n" + "".join("session %s\n" % s for s in SESSIONS))
	srv = await Server(feed="stdin", args=["--config", conf], name="first-life").start()
	w = await Client.connect(srv, name="watcher")
	await w.subscribe(SYMS)

	await ingest(srv, friday(), client=w)
	await wait_all(w, {"AAPL": 3, "MSFT": 2, "EUR/USD": 2})
	check_fields(w.state["AAPL"], {"open": "170.50", "high": "171.25", "low": "170.50",
				       "trades": "3", "volume": "160"}, ["prev_close"], "AAPL on Friday")

	# Monday's (and Sunday evening's, for FX) first ticks begin new sessions.
	await ingest(srv, monday(), client=w)
	await wait_all(w, {"AAPL": 4, "MSFT": 3, "EUR/USD": 3})
	check_fields(w.state["AAPL"], {"prev_close": "170.75", "open": "172.00", "high": "172.00",
				       "low": "172.00", "trades": "1", "volume": "5", "last": "172.00"},
		     [], "AAPL, the first trade of Monday's session")
	check_fields(w.state["MSFT"], {"prev_close": "404.60", "trades": "0", "volume": "0",
				       "last": "404.60", "bid": "405.10"},
		     ["open", "high", "low"], "MSFT, a quote begins Monday's session")
	check_fields(w.state["EUR/USD"], {"prev_close": "1.08525", "bid": "1.0860", "ask": "1.0862"},
		     ["open", "high", "low", "trades", "volume", "last"],
		     "EUR/USD (quotes only): the close is the mid")
	# The watcher followed by deltas: MSFT's took open/high/low away as
	# null, and prev_close came once, with the boundary.
	msft = [m for _, m in w.updates if m.get("symbol") == "MSFT" and m["type"] == "delta"]
	check(msft and all(msft[-1].get(k, "absent") is None for k in ("open", "high", "low")),
	      "MSFT's boundary delta does not take open/high/low away: %s"
	      % summary(msft[-1:] and msft[-1], 300))
	carried = [m["seq"] for _, m in w.updates if m.get("symbol") == "AAPL" and "prev_close" in m]
	check(carried == [4], "AAPL's updates carry prev_close at seqs %s, want only [4] "
	      "(the delta where it changes)" % carried)
	w.assert_clean()

	# A late trade from Friday goes into Monday's session.
	await ingest(srv, [tick("AAPL", ts=FRI_1545, last="169.00", last_size=1)], client=w)
	await wait_all(w, {"AAPL": 5})
	check_fields(w.state["AAPL"], {"prev_close": "170.75", "open": "172.00", "low": "169.00",
				       "trades": "2", "volume": "6"}, [], "AAPL after a late Friday trade")

	# New clients' snapshots say the same, without null.
	_, before = await snapshots(srv, SYMS)
	for s in SYMS:
		check(exact(snap_fields(before[s])) == fields_of(w.state[s]),
		      "%s: snapshot %s, the watcher holds %s" % (s, summary(before[s], 300),
								 fields_of(w.state[s])))
	held = {s: w.state[s]["seq"] for s in SYMS}
	epoch = w.epoch
	check(await srv.stop(signal.SIGTERM, timeout=5) == 0, "SIGTERM exit code")

	# The state row says the session and its close.
	con = sqlite3.connect(srv.db)
	try:
		rows = {r[0]: r[1:] for r in con.execute(
			"select symbol, prev_close, session_time, open from state_view")}
	finally:
		con.close()
	check(rows.get("AAPL") == ("170.75", "2024-03-11T13:30:00.000Z", "172.00"),
	      "AAPL's stored state (prev_close, session, open): %s" % (rows.get("AAPL"),))
	check(rows.get("EUR/USD", (None, None))[:2] == ("1.08525", "2024-03-10T21:00:00.000Z"),
	      "EUR/USD's stored state (prev_close, session): %s" % (rows.get("EUR/USD"),))

	# Second life, same database, the settings as flags this time.
	args = []
	for s in SESSIONS:
		args += ["--session", s]
	srv2 = await Server(feed="stdin", db=srv.db, args=args, name="second-life").start()
	_, after = await snapshots(srv2, SYMS, name="snapper-2")
	for s in SYMS:
		check(after[s]["seq"] == before[s]["seq"] and
		      exact(snap_fields(after[s])) == exact(snap_fields(before[s])),
		      "%s after the restart: %s, before: %s" % (s, summary(after[s], 300),
							  summary(before[s], 300)))
	r = await Client.connect(srv2, name="resumer")
	check(r.epoch == epoch, "epoch after restart %r, want %r" % (r.epoch, epoch))
	for s in SYMS:
		r.state[s] = {"seq": held[s], "ts": None, "fields": dict(w.state[s]["fields"])}
	await r.subscribe(SYMS, resume={"epoch": epoch, "seq": held})
	got = await r.collect(0.3)
	check(not [m for m in got if m.get("type") in ("snapshot", "delta")],
	      "a client resuming at the seqs it held was sent %s" % summary(got, 300))

	# The session goes on across the restart (no second boundary on
	# Monday), and Tuesday's first trade closes Monday at its last trade.
	await ingest(srv2, [tick("AAPL", ts=MON_0945, last="172.50", last_size=2)], client=r)
	await r.wait_seq("AAPL", 6)
	check_fields(r.state["AAPL"], {"prev_close": "170.75", "open": "172.00", "trades": "3",
				       "volume": "8", "high": "172.50"}, [],
		     "AAPL on Monday after the restart")
	await ingest(srv2, [tick("AAPL", ts=TUE_0935, last="173.00", last_size=1),
			    tick("EUR/USD", ts=MON_1701, bid="1.0870", ask="1.0872")], client=r)
	await wait_all(r, {"AAPL": 7, "EUR/USD": 4})
	check_fields(r.state["AAPL"], {"prev_close": "172.50", "open": "173.00", "trades": "1",
				       "volume": "1"}, [], "AAPL on Tuesday")
	check_fields(r.state["EUR/USD"], {"prev_close": "1.0861"}, ["trades"],
		     "EUR/USD's next session")
	r.assert_clean()
	return "prev_close AAPL 170.75 -> 172.50, MSFT 404.60, EUR/USD 1.08525 -> 1.0861"


async def test_default_sessions_are_utc_days():
	"""Without --session every symbol's sessions are UTC days: random
	quotes and trades over four days end in the state the harness's model
	of UTC-day sessions says, prev_close included."""
	rng = random.Random(7)
	syms = ["AAPL", "MSFT", "BRK.B"]
	ticks = gen_ticks(rng, syms, 240, 1709251200_000000 + 3600_000000, step=1500_000000)
	ticks += [tick("FX", ts=1709251200_000000 + 100, bid="1.10", ask="1.13"),
		  tick("FX", ts=1709251200_000000 + DAY_US, bid="1.20", ask="1.20")]
	model = model_states(ticks)
	srv = await Server(feed="stdin", name="utc").start()
	await ingest(srv, ticks)
	_, snaps = await snapshots(srv, syms + ["FX"])
	closes = 0
	for s in syms + ["FX"]:
		want = model[s]["fields"]
		assert_fields(snap_fields(snaps[s]), want, "%s after %d days" % (s, 4))
		extra = set(snap_fields(snaps[s])) - set(want)
		check(not extra, "%s: fields %s the model does not have" % (s, sorted(extra)))
		closes += "prev_close" in want
	check(exact(snap_fields(snaps["FX"]))["prev_close"] == "1.115",
	      "FX's prev_close %s, want the mid 1.115" % snap_fields(snaps["FX"]).get("prev_close"))
	return "%d symbols with a prev_close" % closes


async def test_bad_session_setting_exits_2_naming_it():
	tmp = tempfile.mkdtemp(prefix="publisher-it-")
	for value, says in (("AAPL=America/New_Yrok@09:30", "America/New_Yrok"),
			    ("AAPL=America/New_York@25:00", "25:00"),
			    ("AAPL@09:30", "AAPL@09:30"),
			    ("AAPL=America/New_York", "no start time")):
		rc, out, err = await run_cli(["serve", "--db", "none", "--feed", "none",
					      "--listen", "127.0.0.1:0", "--session", value])
		check(rc == 2, "--session %r: exit %s, want 2 (stderr %r)" % (value, rc, err[-300:]))
		check(value in err and says in err and "--session" in err,
		      "--session %r: stderr %r does not name it" % (value, err[-300:]))
	conf = os.path.join(tmp, "bad.conf")
	with open(conf, "w") as f:
		f.write("session AAPL=America/New_York@09:30\nsession X=Mars/Olympus@10:00\n")
	rc, out, err = await run_cli(["serve", "--db", "none", "--feed", "none", "--config", conf])
	check(rc == 2 and "line 2" in err and "Mars/Olympus" in err,
	      "a bad session line in a config file: exit %s, stderr %r" % (rc, err[-300:]))
	rc, out, err = await run_cli(["import", "-", "--db", os.path.join(tmp, "x.db"),
				      "--session", "A=Nowhere@00:00"])
	check(rc == 2 and "Nowhere" in err, "import --session bad: exit %s, stderr %r"
	      % (rc, err[-300:]))
	rc, out, err = await run_cli(["serve", "--help"])
	check(rc == 0 and "--session PATTERN=ZONE@HH:MM" in out, "serve --help lists no --session")


async def test_import_folds_with_the_same_sessions():
	"""import --session stores the states a server with the same settings
	makes: the same prev_close and session, served after a restart."""
	ticks = friday() + monday()
	tmp = tempfile.mkdtemp(prefix="publisher-it-")
	path = os.path.join(tmp, "week.jsonl")
	with open(path, "w") as f:
		f.write("".join(tick_line(t) + "\n" for t in ticks))
	args = []
	for s in SESSIONS:
		args += ["--session", s]
	live = await Server(feed="stdin", args=args, name="live").start()
	await ingest(live, ticks)
	_, want = await snapshots(live, SYMS)
	db = os.path.join(tmp, "imported.db")
	rc, out, err = await run_cli(["import", path, "--db", db] + args, timeout=30)
	check(rc == 0, "import: exit %s, stderr %r" % (rc, err[-300:]))
	srv = await Server(feed="none", db=db, args=args, name="imported").start()
	_, got = await snapshots(srv, SYMS)
	for s in SYMS:
		check(exact(snap_fields(got[s])) == exact(snap_fields(want[s])),
		      "%s imported: %s, live: %s" % (s, summary(got[s], 300), summary(want[s], 300)))
	check(exact(snap_fields(got["EUR/USD"])).get("prev_close") == "1.08525",
	      "imported EUR/USD prev_close: %s" % summary(got["EUR/USD"], 300))


async def test_edges_carry_the_sessions_and_tell_other_settings():
	"""Through Redis an edge folds the ingest's ticks with its own rule: one
	with the ingest's --session settings serves the same prev_close, open
	and session as the ingest, across a boundary and a resync; one with
	other settings says so in /healthz (503, both named) and its log."""
	if not REDIS_SERVER:
		return SKIP
	args = []
	for s in SESSIONS:
		args += ["--session", s]
	r = await Redis().start()
	ing = await Node("ingest", r, "ingest", args=args).start()
	same = await Node("edge", r, "edge-same", args=args).start()
	other = await Node("edge", r, "edge-other",
			   args=["--session", "*=Asia/Tokyo@09:00"]).start()
	await ingest(ing, friday())
	await wait_published(ing, 7)
	await ingest(ing, monday())
	await wait_published(ing, 10)
	want = await converged([same], ing, SYMS, timeout=10)
	check(want[1]["EUR/USD"][2].get("prev_close") == "1.08525",
	      "the ingest's EUR/USD: %s" % (want[1]["EUR/USD"],))
	# A late edge resyncs from Redis's states (s2): the same.
	late = await Node("edge", r, "edge-late", args=args).start()
	await converged([late], ing, SYMS, timeout=10)
	deadline = time.monotonic() + 10
	while True:
		status, _, body = await http_get(other, "/healthz")
		if status == 503 and b"trading sessions" in body:
			break
		check(time.monotonic() < deadline, "the edge with other sessions: /healthz %s %r"
		      % (status, body[:300]))
		await asyncio.sleep(0.1)
	check(b"America/New_York@09:30" in body and b"Asia/Tokyo@09:00" in body,
	      "/healthz does not name both settings: %r" % body[:300])
	status, _, body = await http_get(same, "/healthz")
	check(status == 200, "the edge with the same sessions: /healthz %s %r" % (status, body[:300]))
	with open(other.stderr_path, "rb") as f:
		log = f.read()
	check(b"are not this edge's" in log, "the edge with other sessions logged nothing of it")

"""Restarts: a server stopped with SIGTERM, or killed with SIGKILL in the
middle of an ingest, comes back from its database with the same epoch, seqs
and state, resumes clients with the deltas one life would have sent, and
goes on from there (README: Storage). Ticks come from the stdin feed with
explicit timestamps, so every stored row is known exactly; decimals are
compared as text."""

import asyncio
import fcntl
import os
import random
import signal
import sqlite3
import threading
import time

from harness import BASE, INPUT_FIELDS, Client, Decimal, Server, assert_fields, check, \
	check_same_snapshot, exact, gen_ticks, history, ingest, model_states, parse_jsonl, price, \
	rows_of, run_cli, snap_fields, snapshots, symbol_seqs, tick, tick_line, wait_stored


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

	# The server restarts on it and serves exactly the stored state, past
	# every seq it may have handed out before the kill (its reservation:
	# README, Storage), so that no seq a client saw names other values.
	srv2 = await Server(feed="stdin", db=srv.db, name="after-kill").start()
	c = await Client.connect(srv2)
	seqs = await symbol_seqs(c)
	check(sorted(seqs) == sorted(s for s in syms if count[s]) and
	      all(seqs[s] > count[s] for s in seqs),
	      "after kill -9 and restart, symbols %s, want each past its stored tick count %s"
	      % (seqs, count))
	by_sym = {s: [sent[i] for i in sorted(present) if i % 10 == k] for k, s in enumerate(syms)}
	_, snaps = await snapshots(srv2, [s for s in syms if count[s]])
	for s, m in snaps.items():
		want = model_states(by_sym[s])[s]
		check(m["seq"] == seqs[s] and m["ts"] == want["ts"],
		      "%s restored seq/ts %s/%s, want %s/%s (past the reservation; ts of the stored "
		      "ticks)" % (s, m["seq"], m["ts"], seqs[s], want["ts"]))
		assert_fields(m, want["fields"], "%s restored state vs its stored ticks" % s)
		h = await history(c, symbol=s, limit=1)
		check(h["ticks"] and h["ticks"][-1].get("seq") == count[s],
		      "%s: history's last seq %s, want %d" % (s, h["ticks"][-1:], count[s]))
	# and goes on from there
	await c.subscribe(["K0"])
	await c.wait_seq("K0", seqs["K0"])
	await srv2.send_ticks([tick("K0", ts=ts0 + n_max, bid=Decimal("7.77"))])
	held = await c.wait_seq("K0", seqs["K0"] + 1)
	check(held["seq"] == seqs["K0"] + 1, "K0 seq after one more tick: %d, want %d"
	      % (held["seq"], seqs["K0"] + 1))
	return "%d written, %d must-keep, %d stored; %s" % (total, must, len(present),
		"SQL checked: " + how if bad is not None else "state via restart only (" + how[:80] + ")")

test_kill9_mid_ingest_db_intact_nothing_older_than_250ms_lost.timeout = 40

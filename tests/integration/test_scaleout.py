"""Scale-out through Redis (publisher/redis_link.h): one ingest
(`--role ingest`, stdin feed, its own store) publishes every applied tick to
a Redis started here on a free loopback port; edges (`--role edge --db none`,
or one with its own `--db FILE` written from the stream) follow it and serve clients with the ingest's epoch and seqs.

Each test starts its own redis-server (`--save "" --appendonly no`: a
restart loses everything, the hardest case) and stops it at the end. When
redis-server is not installed the tests pass with a "skipped" note
(`make deps` installs it)."""

import asyncio
import os
import random
import shutil
import signal
import socket
import time

from harness import BASE, REDIS_SERVER, SKIP, Client, Decimal, Helper, Node, Redis, check, \
	cluster, converged, counts, free_port, http_request, metric, run_cli, snapshot_view, tick, \
	view, wait_all, wait_published

SYMS = ["AAPL", "MSFT", "EUR/USD", "ES:H4"]


def simple_ticks(rng, n, ts0, syms=SYMS):
	"""n ticks round-robin over syms, each a quote or a trade at two places."""
	out = []
	for i in range(n):
		s = syms[i % len(syms)]
		p = Decimal(rng.randint(10000, 20000)).scaleb(-2)
		if rng.random() < 0.5:
			out.append(tick(s, ts=ts0 + i * 1000, bid=p, ask=p + Decimal("0.01"),
					bid_size=rng.randint(1, 900)))
		else:
			out.append(tick(s, ts=ts0 + i * 1000, last=p, last_size=rng.randint(1, 90)))
	return out


# ----------------------------------------------------------------- tests

async def test_role_options_refused_exit_2():
	rc, _, err = await run_cli(["serve", "--role", "edge"])
	check(rc == 2 and "--redis" in err, "edge without --redis: rc %s, %r" % (rc, err))
	rc, _, err = await run_cli(["serve", "--role", "ingest", "--feed", "none"])
	check(rc == 2 and "--redis" in err, "ingest without --redis: rc %s, %r" % (rc, err))
	rc, _, err = await run_cli(["serve", "--role", "edge", "--redis", "127.0.0.1:1",
				    "--feed", "stdin"])
	check(rc == 2 and "--feed" in err, "edge with --feed: rc %s, %r" % (rc, err))
	# An edge's store takes the ingest's epoch: no Redis, no epoch, no start.
	rc, _, err = await run_cli(["serve", "--role", "edge", "--redis", "127.0.0.1:1",
				    "--db", "x.db", "--listen", "127.0.0.1:0"], timeout=20)
	check(rc == 1 and "epoch" in err, "edge with --db FILE, no Redis: rc %s, %r" % (rc, err))
	check(not os.path.exists("x.db"), "edge without the ingest's epoch created its db")


async def _history_all(c, sym, limit):
	r = await c.request({"op": "history", "symbol": sym, "limit": limit}, 10.0)
	check(r.get("type") == "history", "history %s answered %s" % (sym, str(r)[:300]))
	return r["ticks"]


async def test_edge_with_own_db_answers_history_and_export_like_the_ingest():
	if not REDIS_SERVER:
		return SKIP
	r = await Redis().start()
	ing = await Node("ingest", r, "ingest").start()
	first = simple_ticks(random.Random(7), 40, BASE)
	await ing.send_ticks(first)
	await wait_published(ing, len(first))
	edge = await Node("edge", r, "edge-db", edge_db=True).start()
	ce = await Client.connect(edge, name="edge-client")
	ci = await Client.connect(ing, name="ingest-client")
	check(ce.epoch == ci.epoch, "epochs differ: edge %s, ingest %s" % (ce.epoch, ci.epoch))
	await ce.subscribe(SYMS)
	ticks = simple_ticks(random.Random(8), 400, BASE + 10_000_000)
	await ing.send_ticks(ticks)
	want = counts(first + ticks)
	await wait_all(ce, want)
	# The edge stores what came after it started: the last 100 ticks of
	# each symbol, with the ingest's seqs, are the same on both.
	for s in SYMS:
		deadline = time.monotonic() + 10
		while True:
			he = await _history_all(ce, s, 100)
			if he and he[-1].get("seq") == want[s]:
				break
			check(time.monotonic() < deadline, "edge history of %s ends at %s, want seq %d"
			      % (s, he[-1:] if he else None, want[s]))
			await asyncio.sleep(0.1)
		hi = await _history_all(ci, s, 100)
		check(he == hi, "%s: edge history %s != ingest history %s" % (s, str(he)[:300], str(hi)[:300]))
	# Export works on the edge and carries the ticks that reached it.
	status, _, body = await http_request(edge.port, "/api/export?format=jsonl", timeout=10)
	check(status == 200, "edge /api/export: HTTP %s %r" % (status, body[:200]))
	lines = [l for l in body.decode().splitlines() if l.strip()]
	check(len(lines) >= len(ticks), "edge export: %d rows, want at least %d" % (len(lines), len(ticks)))
	status, _, body = await http_request(edge.port, "/healthz")
	check(status == 200, "edge /healthz: %s %r" % (status, body))
	ce.assert_clean()
	ci.assert_clean()


async def test_ticks_reach_clients_of_both_edges_with_ingest_seqs():
	if not REDIS_SERVER:
		return SKIP
	r, ing, (e1, e2) = await cluster()
	clients = [await Client.connect(n, name=n.name + "-client") for n in (ing, e1, e2)]
	epochs = {c.name: c.epoch for c in clients}
	check(len(set(epochs.values())) == 1, "epochs differ: %s" % epochs)
	for c in clients:
		await c.subscribe(SYMS)
	ticks = simple_ticks(random.Random(1), 400, BASE)
	await ing.send_ticks(ticks)
	want = counts(ticks)
	for c in clients:
		await wait_all(c, want)
		c.assert_clean()
	ref = view(clients[0].state)
	check({s: h[0] for s, h in ref.items()} == want, "ingest seqs %s, want %s" % (ref, want))
	for c in clients[1:]:
		check(view(c.state) == ref, "%s holds %s, ingest %s" % (c.name, view(c.state), ref))
	# The edges' /healthz and /metrics speak of the link.
	for e in (e1, e2):
		status, _, body = await http_request(e.port, "/healthz")
		check(status == 200, "%s /healthz %s %r" % (e.name, status, body))
		check(await metric(e, "publisher_redis_connected") == 1, "%s: not connected" % e.name)
		check(await metric(e, "publisher_redis_resyncs_total") >= 1, "%s: no resync" % e.name)
	check(await metric(ing, "publisher_redis_connected") == 1, "ingest: not connected")
	# History needs a store: edges say so.
	rep = await clients[1].request({"op": "history", "symbol": "AAPL", "limit": 5})
	check(rep.get("type") == "error" and rep.get("code") == "unavailable",
	      "edge history answered %s" % rep)


async def test_client_alternating_between_edges_resumes_with_zero_gaps():
	if not REDIS_SERVER:
		return SKIP
	r, ing, edges = await cluster()
	watchers = [await Client.connect(e, name=e.name + "-watcher") for e in edges]
	for w in watchers:
		await w.subscribe(SYMS)
	rng = random.Random(2)
	sent = []
	state, epoch = {}, None
	for rnd in range(8):
		ticks = simple_ticks(rng, 60, BASE + rnd * 1_000_000)
		sent += ticks
		await ing.send_ticks(ticks)
		want = counts(sent)
		for w in watchers:  # both edges have it before the client moves
			await wait_all(w, want)
		edge = edges[rnd % 2]
		c = await Client.connect(edge, name="roamer-%d-%s" % (rnd, edge.name))
		if epoch is None:
			epoch = c.epoch
			await c.subscribe(SYMS)
		else:
			check(c.epoch == epoch, "%s: epoch %s, first edge said %s" % (edge.name, c.epoch, epoch))
			c.state = state
			await c.subscribe(SYMS, resume={"epoch": epoch,
							"seq": {s: h["seq"] for s, h in state.items()}})
		await wait_all(c, want)
		c.assert_clean()
		kinds = {m["type"] for m in c.log if m.get("type") in ("snapshot", "delta")}
		if rnd:
			check(kinds == {"delta"}, "round %d on %s: resume got %s, want deltas only"
			      % (rnd, edge.name, sorted(kinds)))
		state = c.state
		await c.close()
	for w in watchers:
		w.assert_clean()
	check(view(state) == view(watchers[0].state), "roamer ended with another state than edge1's")

test_client_alternating_between_edges_resumes_with_zero_gaps.timeout = 60


async def test_redis_killed_2s_mid_stream_every_edge_converges():
	if not REDIS_SERVER:
		return SKIP
	r, ing, edges = await cluster()
	watchers = [await Client.connect(n, name=n.name + "-watcher") for n in [ing] + edges]
	for w in watchers:
		await w.subscribe(SYMS)
	rng = random.Random(3)
	t1 = simple_ticks(rng, 200, BASE)
	await ing.send_ticks(t1)
	for w in watchers:
		await wait_all(w, counts(t1))
	epoch = watchers[0].epoch

	# Redis dies mid-stream: ticks keep coming to the ingest.
	stream = asyncio.ensure_future(_stream(ing, rng, BASE + 10_000_000, 3.0))
	await asyncio.sleep(0.3)
	r.proc.send_signal(signal.SIGKILL)
	r.exit_expected = True
	await r.proc.wait()
	# The edges' live data is affected (503); the ingest's is not: its
	# clients keep fresh prices, and /healthz says 200 with the Redis
	# link's state on its own line, so a load balancer keeps it.
	degraded = {}
	deadline = time.monotonic() + 2.0
	while time.monotonic() < deadline:
		for n in [ing] + edges:
			status, _, body = await http_request(n.port, "/healthz")
			if n is ing and status == 200 and body.startswith(b"ok, degraded") \
					and b"redis: " in body and b"degraded: " in body:
				degraded[n.name] = body.decode().strip()
			elif n is not ing and status == 503 and body.startswith(b"degraded: "):
				degraded[n.name] = body.decode().strip()
		await asyncio.sleep(0.1)
	# Edges keep serving what they have meanwhile.
	for w in watchers[1:]:
		await w.ping_ok()
	r2 = await Redis(port=r.redis_port, name="redis-restarted").start()
	sent = await stream
	# After the restart: more ticks, then every edge must equal the ingest.
	t3 = simple_ticks(rng, 100, BASE + 20_000_000)
	await ing.send_ticks(t3)
	total = counts(t1 + sent + t3)
	await wait_all(watchers[0], total)
	ref = await converged(edges, ing, SYMS, timeout=20)
	check(ref[0] == epoch, "epoch changed from %s to %s" % (epoch, ref[0]))
	check({s: v[0] for s, v in ref[1].items()} == total,
	      "ingest seqs %s, want %s" % ({s: v[0] for s, v in ref[1].items()}, total))
	# Clients that stayed connected reach the same state and never saw an
	# older value (Client.apply records a snapshot older than held).
	for w in watchers:
		await wait_all(w, total, timeout=10)
		w.assert_clean()
		check(view(w.state) == ref[1], "%s: kept state %s, ingest %s"
		      % (w.name, view(w.state), ref[1]))
	check(set(degraded) >= {"ingest"}, "/healthz never said degraded on the ingest "
	      "while Redis was down (saw %s)" % degraded)
	# Healthy again.
	for n in [ing] + edges:
		deadline = time.monotonic() + 10
		while True:
			status, _, body = await http_request(n.port, "/healthz")
			if status == 200 and body.startswith(b"ok\n"):
				break
			check(time.monotonic() < deadline, "%s /healthz still %s %r" % (n.name, status, body))
			await asyncio.sleep(0.2)
	# The path taken: the ingest reconnected and rewrote its state (a new
	# run), every edge resynced from it.
	check(await metric(ing, "publisher_redis_reconnects_total") >= 1, "ingest never reconnected")
	check(await metric(ing, "publisher_redis_ticks_folded_total") >= 1,
	      "no tick was folded while Redis was down")
	for e in edges:
		check(await metric(e, "publisher_redis_resyncs_total") >= 2, "%s: no resync" % e.name)
	return "degraded seen on %s" % sorted(degraded)

test_redis_killed_2s_mid_stream_every_edge_converges.timeout = 60


async def _stream(ing, rng, ts0, secs):
	"""Send a few ticks every 50 ms for secs; returns them."""
	out = []
	end = time.monotonic() + secs
	i = 0
	while time.monotonic() < end:
		batch = simple_ticks(rng, 8, ts0 + i * 8000)
		i += 1
		out += batch
		await ing.send_ticks(batch)
		await asyncio.sleep(0.05)
	return out


async def test_edge_started_late_comes_up_warm():
	if not REDIS_SERVER:
		return SKIP
	r, ing, _ = await cluster(edges=0)
	ticks = simple_ticks(random.Random(4), 300, BASE)
	await ing.send_ticks(ticks)
	await wait_published(ing, len(ticks))
	late = await Node("edge", r, "late-edge").start()
	# At once: no waiting for ticks, the first snapshots are the ingest's.
	c = await Client.connect(late, name="late-client")
	await c.subscribe(SYMS)
	for _ in SYMS:
		await c.expect("snapshot", timeout=2)
	c.assert_clean()
	want_epoch, want = await snapshot_view(ing, SYMS, "ingest-snapper")
	check(c.epoch == want_epoch, "late edge's epoch %s, ingest's %s" % (c.epoch, want_epoch))
	check(view(c.state) == want, "late edge holds %s, ingest %s" % (view(c.state), want))
	check({s: v[0] for s, v in want.items()} == counts(ticks), "ingest seqs %s" % want)
	# And it follows from there.
	more = simple_ticks(random.Random(5), 40, BASE + 5_000_000)
	await ing.send_ticks(more)
	await wait_all(c, counts(ticks + more))
	c.assert_clean()
	# Both roles stop cleanly on SIGTERM (under ASan: without leaks).
	check(await late.stop() == 0, "edge: SIGTERM exit code")
	check(await ing.stop() == 0, "ingest: SIGTERM exit code")


async def test_ingest_restart_with_new_epoch_edges_close_1012():
	# An ingest without a store starts a new epoch at each start: edges
	# follow it, close their clients with 1012, and serve the new life.
	if not REDIS_SERVER:
		return SKIP
	r = await Redis().start()
	ing = Node("ingest", r, "ingest-1")
	ing.db = "none"
	await ing.start()
	edge = await Node("edge", r, "edge").start()
	# An edge with its own store: it holds the old life, so it stops
	# using it and says so until restarted with a new --db.
	edge_db = await Node("edge", r, "edge-db", edge_db=True).start()
	c = await Client.connect(edge, name="client")
	await c.subscribe(["AAPL"])
	await ing.send_ticks([tick("AAPL", ts=BASE + i, bid=100 + i) for i in range(5)])
	await c.wait_seq("AAPL", 5)
	old = c.epoch
	check(await ing.stop() == 0, "ingest SIGTERM exit code")
	ing2 = Node("ingest", r, "ingest-2")
	ing2.db = "none"
	await ing2.start()
	code = await c.wait_closed(timeout=10)
	check(code == 1012, "edge closed its client with %s, want 1012" % code)
	c2 = await Client.connect(edge, name="client-2")
	check(c2.epoch != old and c2.epoch, "epoch after the ingest's restart: %s (was %s)"
	      % (c2.epoch, old))
	await c2.subscribe(["AAPL"])
	await ing2.send_ticks([tick("AAPL", ts=BASE + 100, bid="7.5")])
	held = await c2.wait_seq("AAPL", 1)
	check(held["seq"] == 1 and str(held["fields"].get("bid")) == "7.5",
	      "new life's AAPL: %s" % held)
	# Its live stream is fine (200); the store line says why history is
	# not.
	status, _, body = await http_request(edge_db.port, "/healthz")
	check(status == 200 and body.startswith(b"ok, degraded")
	      and b"restart the edge with a new --db" in body,
	      "edge-db /healthz after the new epoch: %s %r" % (status, body))
	c3 = await Client.connect(edge_db, name="client-3")
	r3 = await c3.request({"op": "history", "symbol": "AAPL", "limit": 5})
	check(r3.get("type") == "error" and r3.get("code") == "unavailable",
	      "edge-db history after the new epoch: %s" % str(r3)[:300])

test_ingest_restart_with_new_epoch_edges_close_1012.timeout = 40


# --------------------------------------------------------------- nginx

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
NGINX_CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nginx.conf.in")


def _tcp_open(port):
	try:
		socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
		return True
	except OSError:
		return False


class Nginx(Helper):
	"""nginx from tests/integration/nginx.conf.in in front of the edges."""

	ready_what = "listen"

	def __init__(self, edges, name="nginx"):
		Helper.__init__(self, name=name)
		self.port = free_port()
		with open(NGINX_CONF) as f:
			conf = f.read()
		conf = conf.replace("@PREFIX@", self.tmp).replace("@LISTEN@", "127.0.0.1:%d" % self.port)
		conf = conf.replace("@EDGES@", "\n\t\t".join(
			"server 127.0.0.1:%d max_fails=1 fail_timeout=2s;" % e.port for e in edges))
		self.conf = os.path.join(self.tmp, "nginx.conf")
		with open(self.conf, "w") as f:
			f.write(conf)

	def argv(self):
		return [NGINX, "-p", self.tmp + "/", "-e", os.path.join(self.tmp, "error.log"),
			"-c", self.conf, "-g", "daemon off; master_process off;"]

	def ready(self):
		return _tcp_open(self.port)

	def stderr_text(self):
		try:
			with open(os.path.join(self.tmp, "error.log"), "rb") as f:
				return f.read().decode("utf-8", "replace")
		except FileNotFoundError:
			return ""


async def test_through_nginx_client_reconnecting_resumes_with_zero_gaps():
	# nginx round-robins connections over two edges: a client reconnecting
	# through it lands on the other edge each time and resumes there with
	# deltas only; Redis killed for 2 s meanwhile changes nothing for it.
	if not REDIS_SERVER:
		return SKIP
	if not NGINX:
		return "skipped: nginx not installed (make deps)"
	r, ing, edges = await cluster()
	lb = await Nginx(edges).start()
	watchers = [await Client.connect(e, name=e.name + "-watcher") for e in edges]
	for w in watchers:
		await w.subscribe(SYMS)
	rng = random.Random(6)
	sent, state, epoch = [], {}, None
	opened = [await metric(e, "publisher_connections_opened_total") for e in edges]
	for rnd in range(8):
		if rnd == 3:
			r.proc.send_signal(signal.SIGKILL)
			r.exit_expected = True
			await r.proc.wait()
		ticks = simple_ticks(rng, 50, BASE + rnd * 1_000_000)
		sent += ticks
		await ing.send_ticks(ticks)
		if rnd == 4:
			await asyncio.sleep(2.0)
			r = await Redis(port=r.redis_port, name="redis-restarted").start()
		if rnd in (3, 4):
			continue  # Redis is down: the edges cannot have these yet
		want = counts(sent)
		for w in watchers:
			await wait_all(w, want, timeout=20)
		c = await Client.connect(lb, name="lb-client-%d" % rnd)
		if epoch is None:
			epoch = c.epoch
			await c.subscribe(SYMS)
		else:
			check(c.epoch == epoch, "round %d: epoch %s, was %s" % (rnd, c.epoch, epoch))
			c.state = state
			await c.subscribe(SYMS, resume={"epoch": epoch,
							"seq": {s: h["seq"] for s, h in state.items()}})
		await wait_all(c, want)
		c.assert_clean()
		kinds = {m["type"] for m in c.log if m.get("type") in ("snapshot", "delta")}
		if rnd:
			check(kinds == {"delta"}, "round %d: resume through nginx got %s, want deltas only"
			      % (rnd, sorted(kinds)))
		state = c.state
		await c.close()
	now = [await metric(e, "publisher_connections_opened_total") for e in edges]
	per_edge = [b - a for a, b in zip(opened, now)]
	check(all(n >= 2 for n in per_edge), "nginx spread 6 connections as %s" % per_edge)
	_, ref = await snapshot_view(ing, SYMS, "ingest-snapper")
	check(view(state) == ref, "client through nginx ended with %s, ingest %s" % (view(state), ref))
	# The dashboard and /healthz through the proxy, too.
	status, _, _ = await http_request(lb.port, "/")
	check(status == 200, "GET / through nginx: %s" % status)
	return "connections per edge %s" % per_edge

test_through_nginx_client_reconnecting_resumes_with_zero_gaps.timeout = 60

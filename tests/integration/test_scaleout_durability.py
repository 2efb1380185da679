"""Seqs across nodes (README: "Scale-out through Redis" and Storage, "Seqs
are never reused"): an ingest with a store and edges following it through a
real redis-server. Within one epoch a (symbol, seq) pair names one state
on every node, whatever happens to the ingest: a kill -9, a database put
back from a backup behind what Redis holds, a store that cannot reserve
seqs. And an edge's resync sends a client only what differs from the seq
it holds.

Watchers stay connected to the edges throughout (and one follows the
ingest across its lives, resuming with the seqs it held). Each tells one
shared record every state it held: (epoch, symbol, seq) -> (ts, fields),
and every key must name one state across everything seen anywhere. A
watcher that already held a symbol in an epoch must never be sent a
snapshot of it again: a resync or a restart reaches it as a delta. In the
end every edge and every watcher holds exactly the ingest's state.

Each test starts its own redis-server (--save "" --appendonly no) and
stops it; without redis-server the tests pass with a "skipped" note."""

import asyncio
import os
import random
import shutil
import signal
import tempfile
import time

from harness import BASE, REDIS_SERVER, SKIP, Client, Closed, Decimal, Node, Redis, check, \
	converged, counts, exact, http_request, metric, redis_command, snapshot_view, symbol_seqs, \
	tick, view, wait_all, wait_published

SYMS = ["AAPL", "MSFT", "EUR/USD", "ES:H4"]


class Seen:
	"""(epoch, symbol, seq) -> (ts, fields as text) of every state any
	watcher held, across nodes, connections and the ingest's lives."""

	def __init__(self):
		self.states = {}
		self.conflicts = []
		self.updates = 0

	def note(self, who, epoch, sym, held):
		self.updates += 1
		key = (epoch, sym, held["seq"])
		val = (held.get("ts"), tuple(sorted(exact(held["fields"]).items())))
		old = self.states.setdefault(key, val)
		if old != val and len(self.conflicts) < 20:
			self.conflicts.append("%s %s @%d: %s, then %s (%s)"
					      % (epoch, sym, held["seq"], old, val, who))


class Watcher(Client):
	"""A client that tells `seen` every state it holds, and notes each
	snapshot of a symbol it already held (a resync or a restart must
	reach it as a delta, or as nothing)."""

	seen = None

	def __init__(self, ws, name):
		Client.__init__(self, ws, name)
		self.resnapshots = []
		self.task = None
		self.close_code = None

	def apply(self, m):
		sym = m.get("symbol")
		had = sym in self.state
		Client.apply(self, m)
		held = self.state.get(sym)
		if held is None or held.get("seq") != m.get("seq"):
			return  # not applied: a gap, which the client records
		if m.get("type") == "snapshot" and had:
			self.resnapshots.append((sym, m["seq"]))
		if self.seen is not None:
			self.seen.note(self.name, self.epoch, sym, held)

	@classmethod
	async def watch(cls, node, seen, name, symbols=("*",), resume_from=None):
		"""Connect, subscribe (resuming what resume_from held when the
		epoch is the same) and read in the background."""
		c = await cls.connect(node, name=name)
		c.seen = seen
		extra = {}
		if resume_from is not None and resume_from.epoch == c.epoch and resume_from.state:
			c.state = {s: {"seq": h["seq"], "ts": h["ts"], "fields": dict(h["fields"])}
				   for s, h in resume_from.state.items()}
			extra["resume"] = {"epoch": c.epoch,
					   "seq": {s: h["seq"] for s, h in c.state.items()}}
		await c.subscribe(list(symbols), timeout=10, **extra)
		c.task = asyncio.ensure_future(c._pump())
		return c

	async def _pump(self):
		n = 0
		try:
			while True:
				try:
					await self.recv_json(3600)
				except asyncio.TimeoutError:
					continue
				n += 1
				if n % 64 == 0:
					await asyncio.sleep(0)  # let the test's other tasks run
		except Closed as e:
			self.close_code = e.code
		except asyncio.CancelledError:
			pass

	async def stop(self):
		if self.task is not None and not self.task.done():
			self.task.cancel()
			try:
				await self.task
			except BaseException:
				pass
		await self.close()

	async def closed(self, timeout):
		"""The close code once the server closes it (None: still open)."""
		try:
			await asyncio.wait_for(asyncio.shield(self.task), timeout)
		except asyncio.TimeoutError:
			return None
		return self.close_code

	def check_clean(self, what):
		check(not self.gaps, "%s: %s had %d gaps, first %s" % (what, self.name, len(self.gaps),
								      self.gaps[:3]))
		check(not self.problems, "%s: %s: %s" % (what, self.name, self.problems[:3]))
		check(not self.resnapshots, "%s: %s was sent %d snapshots of symbols it held in "
		      "epoch %s (a resync or restart must send a delta, or nothing), first %s"
		      % (what, self.name, len(self.resnapshots), self.epoch, self.resnapshots[:5]))


class Health:
	"""Polls the edges' /healthz in the background: (monotonic time, node,
	status, first line) of every answer."""

	def __init__(self, nodes):
		self.nodes = nodes
		self.log = []
		self.task = asyncio.ensure_future(self._run())

	async def _run(self):
		while True:
			for n in self.nodes:
				try:
					status, _, body = await http_request(n.port, "/healthz", timeout=2)
				except OSError:
					status, body = None, b""
				self.log.append((time.monotonic(), n.name, status,
						 body.decode("utf-8", "replace").split("\n")[0]))
			await asyncio.sleep(0.2)

	def between(self, name, t0, t1):
		return [(s, line) for t, n, s, line in self.log if n == name and t0 <= t <= t1]

	async def stop(self):
		self.task.cancel()
		try:
			await self.task
		except BaseException:
			pass


def ingest_node(r, name, db, feed, args=("--log-level", "info")):
	n = Node("ingest", r, name, args=list(args))
	n.feed = feed
	n.db = db
	return n


async def kill9(node):
	node.exit_expected = True
	os.kill(node.pid, signal.SIGKILL)
	await node.wait_exit(5)
	await node.kill()


async def same_as(watchers, ref, what, timeout=10):
	"""Every watcher ends holding exactly ref (a view())."""
	deadline = time.monotonic() + timeout
	for w in watchers:
		while view(w.state) != ref[1] or w.epoch != ref[0]:
			if time.monotonic() > deadline:
				got = view(w.state)
				bad = {s: (got.get(s), ref[1].get(s)) for s in ref[1] if got.get(s) != ref[1].get(s)}
				raise AssertionError("%s: %s (epoch %s) differs from the ingest (epoch %s) in %d "
						     "symbols, first (held, ingest's) %s"
						     % (what, w.name, w.epoch, ref[0], len(bad), str(bad)[:400]))
			await asyncio.sleep(0.05)


async def reached(watchers, seqs, timeout=10):
	"""Wait until every (pumped) watcher holds at least seqs."""
	deadline = time.monotonic() + timeout
	for w in watchers:
		while any(w.state.get(s, {}).get("seq", 0) < q for s, q in seqs.items()):
			if time.monotonic() > deadline:
				raise AssertionError("%s holds %s, want %s (gaps %s)" % (
					w.name, {s: w.state.get(s, {}).get("seq") for s in seqs}, seqs,
					w.gaps[:3]))
			await asyncio.sleep(0.02)


async def all_symbols(node):
	lister = await Client.connect(node, name=node.name + "-lister")
	syms = sorted((await symbol_seqs(lister)).keys())
	await lister.close()
	return syms


# ------------------------------------------------------------- kill -9

async def test_ingest_kill9_with_two_edges_never_reuses_a_seq_anywhere():
	if not REDIS_SERVER:
		return SKIP
	symbols, rate, kills = 200, 20000, 5
	seed = int(os.environ.get("SCALEOUT_SEED", "0")) or random.randrange(1, 1 << 30)
	rng = random.Random(seed)
	print("test_ingest_kill9_with_two_edges_never_reuses_a_seq_anywhere: seed %d "
	      "(SCALEOUT_SEED=%d runs it again)" % (seed, seed), flush=True)
	tmp = tempfile.mkdtemp(prefix="publisher-scaleout-kill9-")
	db = os.path.join(tmp, "ticks.db")
	seen = Seen()
	long_outage = rng.randrange(1, kills)
	health = None
	watchers = []
	try:
		r = await Redis().start()
		ing = ingest_node(r, "ingest-0", db, "synthetic:symbols=%d,rate=%d,seed=%d"
				  % (symbols, rate, seed))
		await ing.start()
		edges = [await Node("edge", r, "edge%d" % (i + 1), args=["--log-level", "info"]).start()
			 for i in range(2)]
		health = Health(edges)
		watchers = [await Watcher.watch(e, seen, e.name + "-watcher") for e in edges]
		iw = await Watcher.watch(ing, seen, "ingest-watcher-0")
		epoch = iw.epoch
		check(all(w.epoch == epoch for w in watchers), "epochs differ: ingest %s, edges %s"
		      % (epoch, [w.epoch for w in watchers]))
		outages = []
		for i in range(kills):
			# The first life runs until every symbol's fields are stored
			# (a kill that loses a field's first values rightly starts a
			# new epoch: store.h, "Seqs").
			await asyncio.sleep(2.0 if i == 0 else rng.uniform(0.4, 1.2))
			await kill9(ing)
			down = time.monotonic()
			await iw.stop()
			iw.check_clean("ingest life %d (seed %d)" % (i, seed))
			await asyncio.sleep(4.0 if i == long_outage else 1.3)
			ing = ingest_node(r, "ingest-%d" % (i + 1), db,
					  "synthetic:symbols=%d,rate=%d,seed=%d" % (symbols, rate, seed + i + 1))
			await ing.start()
			outages.append((down, time.monotonic(), i == long_outage))
			iw = await Watcher.watch(ing, seen, "ingest-watcher-%d" % (i + 1), resume_from=iw)
			check(iw.epoch == epoch, "after kill -9 #%d (seed %d) the ingest's epoch is %s, want "
			      "%s" % (i, seed, iw.epoch, epoch))
			check(not seen.conflicts, "after kill -9 #%d (seed %d): (epoch, symbol, seq) keys "
			      "that named two states: %s" % (i, seed, seen.conflicts[:3]))
		await asyncio.sleep(rng.uniform(0.4, 1.2))
		await kill9(ing)
		await iw.stop()
		iw.check_clean("ingest's last live life (seed %d)" % seed)

		# The last life has no feed: everything must settle on its state.
		await asyncio.sleep(1.3)
		quiet = ingest_node(r, "ingest-quiet", db, "none")
		await quiet.start()
		iw = await Watcher.watch(quiet, seen, "ingest-watcher-quiet", resume_from=iw)
		check(iw.epoch == epoch, "quiet ingest: epoch %s, want %s" % (iw.epoch, epoch))
		syms = await all_symbols(quiet)
		check(len(syms) == symbols, "the ingest lists %d symbols, want %d" % (len(syms), symbols))
		ref = await converged(edges, quiet, syms, timeout=20)
		check(ref[0] == epoch, "the epoch changed: %s, want %s" % (ref[0], epoch))
		await same_as(watchers + [iw], ref, "seed %d" % seed)
		for w in watchers + [iw]:
			w.check_clean("seed %d" % seed)
			check(w.close_code is None, "%s was closed (%s)" % (w.name, w.close_code))
		check(not seen.conflicts, "seed %d: (epoch, symbol, seq) keys that named two states "
		      "(%d): %s" % (seed, len(seen.conflicts), seen.conflicts[:3]))
		# Honest health: while the ingest was gone for 4 s each edge said
		# so (503), and once it equals the ingest it says ok.
		for e in edges:
			t0, t1, _ = [o for o in outages if o[2]][0]
			said = health.between(e.name, t0, t1)
			check(any(s == 503 and "ingest silent" in line for s, line in said),
			      "%s /healthz while the ingest was down for 4 s: %s" % (e.name, said[-4:]))
			deadline = time.monotonic() + 5
			while True:
				status, _, body = await http_request(e.port, "/healthz")
				if status == 200 and body.startswith(b"ok\n"):
					break
				check(time.monotonic() < deadline, "%s /healthz with the ingest's state: %s %r"
				      % (e.name, status, body))
				await asyncio.sleep(0.2)
		resyncs = [await metric(e, "publisher_redis_resyncs_total") for e in edges]
		check(all(n >= kills + 1 for n in resyncs), "edge resyncs %s: each ingest restart is "
		      "one" % resyncs)
	finally:
		if health:
			await health.stop()
		for w in watchers:
			await w.stop()
		shutil.rmtree(tmp, ignore_errors=True)
	return "seed %d: %d kills, %d (epoch, symbol, seq) keys, %d states noted, one state each" % (
		seed, kills, len(seen.states), seen.updates)

test_ingest_kill9_with_two_edges_never_reuses_a_seq_anywhere.timeout = 60


# ------------------------------------------------------ a store put back

def simple_ticks(rng, n, ts0, syms=SYMS, trades=True):
	"""n ticks round-robin over syms: quotes, and trades when asked."""
	out = []
	for i in range(n):
		s = syms[i % len(syms)]
		p = Decimal(rng.randint(10000, 20000)).scaleb(-2)
		if trades and rng.random() < 0.5:
			out.append(tick(s, ts=ts0 + i * 1000, last=p, last_size=rng.randint(1, 90)))
		else:
			out.append(tick(s, ts=ts0 + i * 1000, bid=p, ask=p + Decimal("0.01"),
					bid_size=rng.randint(1, 900)))
	return out


def db_files(db):
	return [db + x for x in ("", "-wal", "-shm") if os.path.exists(db + x)]


def backup(db, to):
	os.makedirs(to, exist_ok=True)
	for f in db_files(db):
		shutil.copy(f, os.path.join(to, os.path.basename(f)))


def put_back(db, frm):
	for f in db_files(db):
		os.remove(f)
	for f in os.listdir(frm):
		shutil.copy(os.path.join(frm, f), os.path.join(os.path.dirname(db), f))


async def restored_from_backup(first_trades, redis_paused_ms=0):
	"""A stdin ingest on a db and two edges; the db is copied after a clean
	stop, the ingest runs on and publishes more, then the copy is put back
	and the ingest restarted on it: Redis holds seqs the store never had
	(with redis_paused_ms, Redis answers nothing while the ingest starts).
	Returns what the test checks."""
	tmp = tempfile.mkdtemp(prefix="publisher-scaleout-backup-")
	db = os.path.join(tmp, "ticks.db")
	seen = Seen()
	rng = random.Random(11)
	r = await Redis().start()
	ing = ingest_node(r, "ingest-1", db, "stdin")
	await ing.start()
	edges = [await Node("edge", r, "edge%d" % (i + 1), args=["--log-level", "info"]).start()
		 for i in range(2)]
	watchers = [await Watcher.watch(e, seen, e.name + "-watcher") for e in edges]
	iw = await Watcher.watch(ing, seen, "ingest-watcher-1")
	epoch = iw.epoch
	sent = simple_ticks(rng, 200, BASE, trades=first_trades)
	await ing.send_ticks(sent)
	await wait_published(ing, len(sent))
	await reached(watchers + [iw], counts(sent))
	await iw.stop()
	check(await ing.stop() == 0, "ingest-1: SIGTERM exit code")
	backup(db, os.path.join(tmp, "backup"))

	ing = ingest_node(r, "ingest-2", db, "stdin")
	await ing.start()
	iw = await Watcher.watch(ing, seen, "ingest-watcher-2", resume_from=iw)
	more = simple_ticks(rng, 200, BASE + 10_000_000)
	sent += more
	await ing.send_ticks(more)
	await wait_published(ing, len(more))
	await reached(watchers + [iw], counts(sent))
	await iw.stop()
	redis_seqs = {s: h["seq"] for s, h in watchers[0].state.items()}
	await kill9(ing)

	put_back(db, os.path.join(tmp, "backup"))
	if redis_paused_ms:
		redis_command(r.redis_port, "CLIENT", "PAUSE", str(redis_paused_ms), "ALL")
	ing = ingest_node(r, "ingest-3", db, "stdin")
	await ing.start(timeout=redis_paused_ms / 1000 + 10)
	return tmp, r, ing, edges, watchers, iw, epoch, seen, sent, redis_seqs, rng


async def test_ingest_on_a_store_put_back_behind_redis_goes_on_past_it():
	# The ingest comes back on a copy of its database taken before ticks
	# it then published: it takes Redis's seqs as one more lower bound and
	# goes on after them, every field changed there, in the same epoch.
	if not REDIS_SERVER:
		return SKIP
	tmp, r, ing, edges, watchers, iw, epoch, seen, sent, redis_seqs, rng = \
		await restored_from_backup(first_trades=True)
	try:
		iw = await Watcher.watch(ing, seen, "ingest-watcher-3", resume_from=iw)
		check(iw.epoch == epoch, "the ingest on the copy began epoch %s (was %s): Redis holds "
		      "no field its store lacks" % (iw.epoch, epoch))
		await reached([iw], {s: q + 1 for s, q in redis_seqs.items()}, timeout=5)
		for s, q in redis_seqs.items():
			held = iw.state[s]
			check(held["seq"] == q + 1, "%s: the ingest on the copy is at seq %d, want %d "
			      "(Redis's + 1)" % (s, held["seq"], q + 1))
		last = simple_ticks(rng, 100, BASE + 20_000_000)
		await ing.send_ticks(last)
		await wait_published(ing, len(last))
		ref = await converged(edges, ing, SYMS, timeout=10)
		await same_as(watchers + [iw], ref, "after the copy")
		for w in watchers + [iw]:
			w.check_clean("a store put back")
		check(not seen.conflicts, "(epoch, symbol, seq) keys that named two states: %s"
		      % seen.conflicts[:3])
		check(ref[0] == epoch, "epoch %s, want %s" % (ref[0], epoch))
	finally:
		for w in watchers + [iw]:
			await w.stop()
		shutil.rmtree(tmp, ignore_errors=True)
	return "%d keys, one state each" % len(seen.states)


async def test_ingest_on_a_store_put_back_missing_a_field_redis_has_begins_a_new_epoch():
	# Here the copy was taken before the symbols' first trades: Redis
	# holds fields the store never had, which no delta can take away
	# from a client. So the ingest begins a new epoch before it serves,
	# and the edges close their clients with 1012 to take snapshots.
	if not REDIS_SERVER:
		return SKIP
	tmp, r, ing, edges, watchers, iw, epoch, seen, sent, redis_seqs, rng = \
		await restored_from_backup(first_trades=False)
	try:
		c = await Client.connect(ing, name="ingest-client-3")
		check(c.epoch != epoch, "the ingest on the copy kept epoch %s though Redis holds "
		      "trades its store never had" % epoch)
		await c.close()
		for w in watchers:
			code = await w.closed(10)
			check(code == 1012, "%s: closed with %s, want 1012 (the ingest's new epoch)"
			      % (w.name, code))
		news = [await Watcher.watch(e, seen, e.name + "-watcher-new") for e in edges]
		iw = await Watcher.watch(ing, seen, "ingest-watcher-3", resume_from=iw)
		last = simple_ticks(rng, 100, BASE + 20_000_000)
		await ing.send_ticks(last)
		await wait_published(ing, len(last))
		ref = await converged(edges, ing, SYMS, timeout=10)
		check(ref[0] not in (None, epoch), "epoch %s after the copy" % ref[0])
		await same_as(news + [iw], ref, "new epoch")
		for w in news + [iw]:
			w.check_clean("a store put back, a field lost")
		check(not seen.conflicts, "(epoch, symbol, seq) keys that named two states: %s"
		      % seen.conflicts[:3])
	finally:
		for w in watchers + [iw]:
			await w.stop()
		shutil.rmtree(tmp, ignore_errors=True)
	return "epochs %s -> %s" % (epoch, ref[0])


async def test_ingest_on_a_store_put_back_finding_redis_further_on_later_begins_a_new_epoch():
	# As above, but Redis answers nothing while the ingest starts, so it
	# serves not knowing Redis's seqs. When Redis answers, the ingest finds
	# it further on: it publishes nothing more in that epoch (the edges
	# never see its seqs given to other values) and begins a new one.
	if not REDIS_SERVER:
		return SKIP
	tmp, r, ing, edges, watchers, iw, epoch, seen, sent, redis_seqs, rng = \
		await restored_from_backup(first_trades=True, redis_paused_ms=3000)
	try:
		for w in watchers:
			code = await w.closed(10)
			check(code == 1012, "%s: closed with %s, want 1012 (the ingest's new epoch)"
			      % (w.name, code))
		c = await Client.connect(ing, name="ingest-client-3")
		check(c.epoch != epoch, "the ingest kept epoch %s though Redis held it further on"
		      % epoch)
		await c.close()
		check("further on than this ingest" in ing.stderr_text(),
		      "the ingest did not say why: %s" % ing.stderr_tail(6))
		news = [await Watcher.watch(e, seen, e.name + "-watcher-new") for e in edges]
		last = simple_ticks(rng, 100, BASE + 20_000_000)
		await ing.send_ticks(last)
		await wait_published(ing, len(last))
		ref = await converged(edges, ing, SYMS, timeout=10)
		await same_as(news, ref, "new epoch")
		for w in watchers + news:
			check(not w.gaps and not w.problems, "%s: gaps %s, problems %s"
			      % (w.name, w.gaps[:2], w.problems[:2]))
		check(not seen.conflicts, "(epoch, symbol, seq) keys that named two states: %s"
		      % seen.conflicts[:3])
	finally:
		for w in watchers + [iw]:
			await w.stop()
		shutil.rmtree(tmp, ignore_errors=True)
	return "epochs %s -> %s" % (epoch, ref[0])

test_ingest_on_a_store_put_back_finding_redis_further_on_later_begins_a_new_epoch.timeout = 40


# ------------------------------------------------ the store cannot reserve

async def test_ingest_epoch_of_its_own_reaches_the_edges_and_survives_a_crash():
	# The store fills (PRAGMA max_page_count): no seq can be reserved, so
	# the ingest begins an epoch of its own, and Redis and the edges must
	# follow it. Killed before that epoch is stored, the ingest comes back
	# in the stored one, past its reservations; the edges follow it back,
	# and no seq is named twice in either epoch.
	if not REDIS_SERVER:
		return SKIP
	tmp = tempfile.mkdtemp(prefix="publisher-scaleout-full-")
	db = os.path.join(tmp, "ticks.db")
	seen = Seen()
	r = await Redis().start()
	os.environ["PUBLISHER_TEST_DB_MAX_PAGES"] = "250"
	try:
		ing = await ingest_node(r, "ingest-full", db, "synthetic:symbols=2,rate=50000,seed=5").start()
	finally:
		os.environ.pop("PUBLISHER_TEST_DB_MAX_PAGES", None)
	edge = await Node("edge", r, "edge", args=["--log-level", "info"]).start()
	w = await Watcher.watch(edge, seen, "edge-watcher-1")
	iw = await Watcher.watch(ing, seen, "ingest-watcher-1")
	first = w.epoch
	news = []
	try:
		code = await iw.closed(30)
		check(code == 1012, "the ingest did not begin an epoch of its own (close %s) while "
		      "its store could not reserve" % code)
		code = await w.closed(10)
		check(code == 1012, "the edge did not follow the ingest's new epoch (close %s)" % code)
		w2 = await Watcher.watch(edge, seen, "edge-watcher-2")
		news.append(w2)
		c = await Client.connect(ing, name="ingest-client")
		check(w2.epoch == c.epoch and w2.epoch != first, "edge epoch %s, ingest %s, first %s"
		      % (w2.epoch, c.epoch, first))
		await c.close()
		await asyncio.sleep(1.0)
		check(await metric(ing, "publisher_epoch_durable") == 0, "the new epoch was stored "
		      "on a full store")
		await kill9(ing)
		# Room again: the ingest comes back in the stored epoch.
		quiet = await ingest_node(r, "ingest-quiet", db, "none").start()
		code = await w2.closed(10)
		check(code == 1012, "the edge kept the lost epoch (close %s)" % code)
		w3 = await Watcher.watch(edge, seen, "edge-watcher-3")
		news.append(w3)
		check(w3.epoch == first, "after the crash the edge serves epoch %s, want the stored %s"
		      % (w3.epoch, first))
		syms = await all_symbols(quiet)
		ref = await converged([edge], quiet, syms, timeout=10)
		await same_as([w3], ref, "back in the stored epoch")
		for x in [w, w2, w3]:
			check(not x.gaps and not x.problems, "%s: gaps %s, problems %s"
			      % (x.name, x.gaps[:2], x.problems[:2]))
		check(not seen.conflicts, "(epoch, symbol, seq) keys that named two states: %s"
		      % seen.conflicts[:3])
	finally:
		for x in [w, iw] + news:
			await x.stop()
		shutil.rmtree(tmp, ignore_errors=True)
	return "%d keys, one state each" % len(seen.states)

test_ingest_epoch_of_its_own_reaches_the_edges_and_survives_a_crash.timeout = 60


# ------------------------------------------------------------ resyncs

async def test_edge_resync_sends_a_client_only_what_differs_from_its_seq():
	if not REDIS_SERVER:
		return SKIP
	r = await Redis().start()
	ing = await Node("ingest", r, "ingest").start()
	edge = await Node("edge", r, "edge").start()
	c = await Client.connect(edge, name="edge-client")
	await c.subscribe(SYMS)
	rng = random.Random(12)
	sent = simple_ticks(rng, 80, BASE)
	await ing.send_ticks(sent)
	await wait_all(c, counts(sent))

	# A resync that changes nothing: every Redis client is dropped, the
	# ingest starts a new run and the edge takes the state again.
	before = await metric(edge, "publisher_redis_resyncs_total")
	redis_command(r.redis_port, "CLIENT", "KILL", "TYPE", "normal")
	deadline = time.monotonic() + 10
	while await metric(edge, "publisher_redis_resyncs_total") <= before:
		check(time.monotonic() < deadline, "the edge did not resync")
		await asyncio.sleep(0.05)
	got = [m for m in await c.collect(1.0) if m.get("type") in ("snapshot", "delta")]
	check(not got, "a resync to the seqs the client holds sent it %d updates: %s"
	      % (len(got), [(m["type"], m["symbol"], m["seq"]) for m in got][:4]))

	# A resync past what the client holds: Redis is lost while the ingest
	# goes on, then comes back; the client gets one delta per symbol from
	# the seq it holds.
	held = {s: h["seq"] for s, h in c.state.items()}
	r.proc.send_signal(signal.SIGKILL)
	r.exit_expected = True
	await r.proc.wait()
	more = simple_ticks(rng, 40, BASE + 10_000_000)
	sent += more
	await ing.send_ticks(more)
	mark = len(c.log)
	await Redis(port=r.redis_port, name="redis-restarted").start()
	await wait_all(c, counts(sent), timeout=15)
	ups = [m for m in c.log[mark:] if m.get("type") in ("snapshot", "delta")]
	check(all(m["type"] == "delta" and m["from"] == held[m["symbol"]] for m in ups),
	      "after a resync past the client's seqs it got %s, want one delta from each held "
	      "seq %s" % ([(m["type"], m["symbol"], m.get("from"), m["seq"]) for m in ups][:6], held))
	check(len(ups) == len(SYMS), "%d updates for %d symbols" % (len(ups), len(SYMS)))
	c.assert_clean()
	_, want = await snapshot_view(ing, SYMS, "ingest-snapper")
	check(view(c.state) == want, "edge client holds %s, ingest %s" % (view(c.state), want))
	return "resyncs: nothing for held seqs, %d deltas past them" % len(ups)

test_edge_resync_sends_a_client_only_what_differs_from_its_seq.timeout = 40

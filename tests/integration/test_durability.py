"""Seqs that mean one thing forever: within one epoch a (symbol, seq) pair
names one state, across kill -9, a full disk and a store that cannot write;
a client that resumes with any seq it ever received ends with the server's
exact state (README: Storage, "Seqs are never reused").

A recorder client subscribes to "*" in every life of the server and keeps
(epoch, symbol, seq) -> the full state it held at that seq (built from
snapshots and deltas as a dashboard builds it). Every key must name one
state, whatever happened between the lives. After each restart the recorder
resumes with the seqs it held and must end equal to a fresh snapshot of
every symbol, taken while no feed runs."""

import asyncio
import copy
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time

from harness import Client, Closed, Server, check, exact, metric, snapshots, symbol_seqs

SYMBOLS = 50
RATE = 50000


class Recording(Client):
	"""A Client that tells its recorder about every update it applied."""

	recorder = None

	def apply(self, m):
		Client.apply(self, m)
		if self.recorder is not None:
			self.recorder.note(self, m)


class Recorder:
	"""(epoch, symbol, seq) -> (ts, fields as text) of every state shown,
	across connections and server lives."""

	def __init__(self):
		self.seen = {}
		self.conflicts = []
		self.problems = []
		self.epoch = None
		self.epochs = []
		self.held = {}
		self.client = None
		self.pump_task = None
		self.updates = 0
		self.resumes = 0
		self.closes = []

	def note(self, c, m):
		sym, seq = m.get("symbol"), m.get("seq")
		held = c.state.get(sym)
		if held is None or held.get("seq") != seq:
			return  # not applied (a gap): the client says so itself
		self.updates += 1
		key = (c.epoch, sym, seq)
		val = (held.get("ts"), tuple(sorted(exact(held["fields"]).items())))
		old = self.seen.setdefault(key, val)
		if old != val and len(self.conflicts) < 20:
			self.conflicts.append("%s %s @%d was %s, now %s (%s)"
					      % (c.epoch, sym, seq, old, val, c.name))

	async def attach(self, srv, name):
		"""Connect, subscribe to "*" resuming what was held when the epoch
		is the same, and keep reading in the background."""
		await self.detach()
		c = await Recording.connect(srv, name=name)
		c.recorder = self
		extra = {}
		if c.epoch == self.epoch and self.held:
			c.state = copy.deepcopy(self.held)
			extra["resume"] = {"epoch": self.epoch,
					   "seq": {s: h["seq"] for s, h in self.held.items()}}
			self.resumes += 1
		if c.epoch not in self.epochs:
			self.epochs.append(c.epoch)
		self.epoch = c.epoch
		self.client = c
		await c.subscribe(["*"], timeout=10, **extra)
		self.pump_task = asyncio.ensure_future(self._pump(c))
		return c

	async def _pump(self, c):
		n = 0
		try:
			while True:
				try:
					await c.recv_json(3600)
				except asyncio.TimeoutError:
					continue
				n += 1
				if n % 64 == 0:
					# A fast feed keeps frames ready: give the
					# test's other tasks their turn.
					await asyncio.sleep(0)
		except Closed as e:
			self.closes.append(e.code)
		except asyncio.CancelledError:
			pass
		finally:
			self.held = copy.deepcopy(c.state)

	async def detach(self):
		"""Stop reading; what the client holds becomes what is held."""
		if self.pump_task is not None:
			if not self.pump_task.done():
				self.pump_task.cancel()
			try:
				await self.pump_task
			except BaseException:
				pass
			self.pump_task = None
		if self.client is not None:
			self.problems += ["%s: %s" % (self.client.name, p) for p in self.client.problems]
			if self.client.gaps:
				self.problems.append("%s: %d gaps, first %s" % (
					self.client.name, len(self.client.gaps), self.client.gaps[:2]))
			self.held = copy.deepcopy(self.client.state)
			await self.client.close()
			self.client = None

	async def wait_closed(self, timeout):
		"""The code the server closed the connection with (None: still open)."""
		try:
			await asyncio.wait_for(asyncio.shield(self.pump_task), timeout)
		except asyncio.TimeoutError:
			return None
		return self.closes[-1] if self.closes else None

	def check_clean(self, who):
		check(not self.conflicts, "%s: (epoch, symbol, seq) keys that named two states (%d): %s"
		      % (who, len(self.conflicts), self.conflicts[:3]))
		check(not self.problems, "%s: protocol problems: %s" % (who, self.problems[:3]))


async def check_resume_equals_server(rec, srv, name):
	"""On a server with no feed: the recorder resumes and ends, for every
	symbol, with exactly what a fresh snapshot says."""
	c = await rec.attach(srv, name)
	lister = await Client.connect(srv, name=name + "-lister")
	syms = sorted((await symbol_seqs(lister)).keys())
	await lister.close()
	check(syms, "%s: the server lists no symbol" % name)
	_, snaps = await snapshots(srv, syms, name=name + "-snapper")
	deadline = time.monotonic() + 10
	while True:
		diff = []
		for s in syms:
			h, m = c.state.get(s), snaps[s]
			want = (m["seq"], m.get("ts"), exact({k: v for k, v in m.items()
							     if k not in ("type", "symbol", "seq", "ts")}))
			have = h and (h["seq"], h.get("ts"), exact(h["fields"]))
			if have != want:
				diff.append((s, have, want))
		if not diff:
			break
		if time.monotonic() > deadline:
			raise AssertionError("%s: after resuming, %d symbols differ from the server's "
					     "state; first (symbol, held (seq, ts, fields), server's): %s"
					     % (name, len(diff), diff[0]))
		await asyncio.sleep(0.05)
	await rec.detach()
	return {s: snaps[s]["seq"] for s in syms}


async def test_kill9_at_20_moments_never_reuses_a_seq():
	seed = int(os.environ.get("DURABILITY_SEED", "0")) or random.randrange(1, 1 << 30)
	rng = random.Random(seed)
	print("test_kill9_at_20_moments_never_reuses_a_seq: seed %d (DURABILITY_SEED=%d "
	      "runs it again)" % (seed, seed), flush=True)
	tmp = tempfile.mkdtemp(prefix="publisher-kill9-")
	db = os.path.join(tmp, "ticks.db")
	rec = Recorder()
	epoch = None
	seqs = {}
	advanced = 0
	try:
		for i in range(20):
			live = Server(feed="synthetic:symbols=%d,rate=%d,seed=%d" % (SYMBOLS, RATE, seed + i),
				      db=db, name="live-%d" % i, args=["--log-level", "info"])
			await live.start()
			await rec.attach(live, "recorder-live-%d" % i)
			epoch = epoch or rec.epoch
			check(rec.epoch == epoch, "life %d (seed %d): epoch %s, want %s: kill -9 "
			      "started a new epoch" % (i, seed, rec.epoch, epoch))
			# The first life runs until every symbol's fields are
			# stored: a field a symbol first had in the 250 ms a
			# kill loses cannot be taken back by a delta, and its
			# loss rightly starts a new epoch (store.h, "Seqs").
			await asyncio.sleep(1.5 if i == 0 else rng.uniform(0.25, 1.0))
			live.exit_expected = True
			os.kill(live.pid, signal.SIGKILL)
			await live.wait_exit(5)
			await rec.detach()

			quiet = Server(feed="none", db=db, name="quiet-%d" % i, args=["--log-level", "info"])
			await quiet.start()
			now = await check_resume_equals_server(rec, quiet, "resumer-%d" % i)
			check(rec.epoch == epoch, "after kill -9 #%d (seed %d): epoch %s, want %s"
			      % (i, seed, rec.epoch, epoch))
			advanced += sum(now.get(s, 0) - seqs.get(s, 0) for s in now)
			seqs = now
			rec.check_clean("after kill -9 #%d (seed %d)" % (i, seed))
			# Half of the quiet lives end cleanly, half killed too.
			if i % 2:
				quiet.exit_expected = True
				os.kill(quiet.pid, signal.SIGKILL)
				await quiet.wait_exit(5)
			else:
				rc = await quiet.stop(signal.SIGTERM, timeout=10)
				check(rc == 0, "quiet life %d: SIGTERM exit code %s, want 0" % (i, rc))
			await quiet.kill()
			await live.kill()
		check(advanced >= 20 * SYMBOLS * 100, "seqs advanced by %d over 20 lives: the feed did "
		      "not run at speed" % advanced)
		rec.check_clean("20 kills (seed %d)" % seed)
		check(rec.resumes >= 39, "only %d resumes with the epoch held" % rec.resumes)
	finally:
		await rec.detach()
		shutil.rmtree(tmp, ignore_errors=True)
	return "seed %d: 20 kills, %d (epoch, symbol, seq) keys seen, %d updates, one state each" % (
		seed, len(rec.seen), rec.updates)

test_kill9_at_20_moments_never_reuses_a_seq.timeout = 120


# ------------------------------------------------------------ disk full

class SmallDisk:
	"""A directory that fills up: a tmpfs mounted for the test (CI runs
	as root), or, where mounting is not allowed, the store's own page cap
	(PUBLISHER_TEST_DB_MAX_PAGES, read by store_open) as the limit. grow()
	gives it room, as an operator enlarging the disk would."""

	def __init__(self, size_kib):
		self.dir = tempfile.mkdtemp(prefix="publisher-full-")
		self.mounted = subprocess.run(
			["mount", "-t", "tmpfs", "-o", "size=%dk" % size_kib, "tmpfs", self.dir],
			stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
		self.pages = None
		if not self.mounted:
			self.pages = size_kib // 4
			os.environ["PUBLISHER_TEST_DB_MAX_PAGES"] = str(self.pages)

	def grow(self, size_kib):
		"""Room again. With the page cap, only for servers started after."""
		if self.mounted:
			subprocess.run(["mount", "-o", "remount,size=%dk" % size_kib, self.dir], check=True)
		else:
			os.environ.pop("PUBLISHER_TEST_DB_MAX_PAGES", None)

	def how(self):
		return "tmpfs" if self.mounted else "PRAGMA max_page_count %d" % self.pages

	def remove(self):
		os.environ.pop("PUBLISHER_TEST_DB_MAX_PAGES", None)
		if self.mounted:
			subprocess.run(["umount", "-l", self.dir])
		shutil.rmtree(self.dir, ignore_errors=True)


async def wait_metric(srv, name, pred, timeout, what):
	deadline = time.monotonic() + timeout
	while True:
		v = await metric(srv, name)
		if v is not None and pred(v):
			return v
		if time.monotonic() > deadline:
			raise AssertionError("%s: %s is %s after %.0f s, waiting for %s"
					     % (srv.name, name, v, timeout, what))
		await asyncio.sleep(0.1)


def unstored_count(stderr):
	"""The count in the exit message: "publisher: N ticks were not stored"."""
	m = re.search(r"publisher: (\d+) ticks were not stored", stderr)
	return int(m.group(1)) if m else None


async def test_disk_full_short_keeps_the_epoch_and_exits_1_naming_what_was_lost():
	disk = SmallDisk(3 * 1024)
	db = os.path.join(disk.dir, "t.db")
	rec = Recorder()
	try:
		live = Server(feed="synthetic:symbols=%d,rate=%d,seed=7" % (SYMBOLS, RATE), db=db,
			      name="filling", args=["--log-level", "info"])
		await live.start()
		await rec.attach(live, "recorder-filling")
		epoch = rec.epoch
		await wait_metric(live, "publisher_store_failing", lambda v: v == 1, 30,
				  "the disk (%s) to fill" % disk.how())
		# The disk is full; the live stream goes on, the store does not.
		a1 = await metric(live, "publisher_ticks_applied_total")
		s1 = await metric(live, "publisher_ticks_stored_total")
		await asyncio.sleep(2)
		a2 = await metric(live, "publisher_ticks_applied_total")
		s2 = await metric(live, "publisher_ticks_stored_total")
		check(s1 is not None, "/metrics has no publisher_ticks_stored_total beside "
		      "publisher_ticks_applied_total")
		check(a2 - a1 > RATE / 2, "while the disk is full the live feed went on at %d ticks/s, "
		      "want about %d" % ((a2 - a1) / 2, RATE))
		check(s2 == s1, "while the disk is full, stored ticks went from %d to %d" % (s1, s2))
		check(rec.client.epoch == epoch and rec.client.ws.close_code is None,
		      "a short full disk closed the clients or changed the epoch")
		await rec.detach()
		rc = await live.stop(signal.SIGTERM, timeout=30)
		err = live.stderr_text()
		check(rc == 1, "SIGTERM with ticks the full disk did not take: exit code %s, want 1; "
		      "stderr: %s" % (rc, live.stderr_tail(4)))
		n = unstored_count(err)
		check(n is not None and n >= a2 - s2 - RATE,
		      "the exit does not say how many ticks were not stored (applied %d, stored %d "
		      "by /metrics): %s" % (a2, s2, live.stderr_tail(4)))
		check("slowed" not in err, "the log says the live feed was slowed, but it never waits "
		      "for the store: %s" % [l for l in err.splitlines() if "slowed" in l][:1])

		disk.grow(256 * 1024)
		quiet = Server(feed="none", db=db, name="room-again", args=["--log-level", "info"])
		await quiet.start()
		await check_resume_equals_server(rec, quiet, "resumer")
		check(rec.epoch == epoch, "after a short full disk the epoch changed (%s -> %s)"
		      % (epoch, rec.epoch))
		rec.check_clean("full disk, restart with room")
		check(await quiet.stop(signal.SIGTERM, timeout=10) == 0, "quiet life: SIGTERM exit code")

		# And on from there, with a feed, stored and served alike.
		again = Server(feed="synthetic:symbols=%d,rate=%d,seed=8" % (SYMBOLS, RATE), db=db,
			       name="live-again", args=["--log-level", "info"])
		await again.start()
		await rec.attach(again, "recorder-again")
		check(rec.epoch == epoch, "epoch changed on the next life")
		await asyncio.sleep(1)
		await rec.detach()
		check(await again.stop(signal.SIGTERM, timeout=10) == 0,
		      "SIGTERM with everything stored: exit code, want 0")
		last = Server(feed="none", db=db, name="last", args=["--log-level", "info"])
		await last.start()
		await check_resume_equals_server(rec, last, "resumer-last")
		rec.check_clean("full disk, then a clean life")
		await last.stop(signal.SIGTERM, timeout=10)
	finally:
		await rec.detach()
		disk.remove()
	return "%s; %d ticks not stored named at exit; %d keys, one state each" % (
		disk.how(), n, len(rec.seen))

test_disk_full_short_keeps_the_epoch_and_exits_1_naming_what_was_lost.timeout = 120


async def test_disk_full_long_starts_a_new_epoch_and_never_reuses_a_seq():
	# Two symbols at 50k ticks/s burn through their reserved seqs in
	# seconds: when no reservation can be written the server starts a new
	# epoch (clients are closed and take snapshots), and keeps it once the
	# disk has room again.
	disk = SmallDisk(3 * 1024)
	db = os.path.join(disk.dir, "t.db")
	rec = Recorder()
	try:
		live = Server(feed="synthetic:symbols=2,rate=%d,seed=9" % RATE, db=db, name="full-long",
			      args=["--log-level", "info"])
		await live.start()
		await rec.attach(live, "recorder-1")
		first = rec.epoch
		await wait_metric(live, "publisher_store_failing", lambda v: v == 1, 30,
				  "the disk (%s) to fill" % disk.how())
		code = await rec.wait_closed(30)
		check(code == 1012, "clients were not told of a new epoch (close code %s) while no "
		      "seq could be reserved" % code)
		await rec.detach()
		await rec.attach(live, "recorder-2")
		second = rec.epoch
		check(second != first, "reconnected to the same epoch %s" % first)
		await asyncio.sleep(0.5)
		if disk.mounted:
			# Room again while serving: the new epoch is made durable.
			disk.grow(256 * 1024)
			await wait_metric(live, "publisher_epoch_durable", lambda v: v == 1, 20,
					  "the new epoch to be stored")
			await asyncio.sleep(0.5)
			await rec.detach()
			live.exit_expected = True
			os.kill(live.pid, signal.SIGKILL)
			await live.wait_exit(5)
			want = second
		else:
			await rec.detach()
			rc = await live.stop(signal.SIGTERM, timeout=30)
			check(rc == 1, "SIGTERM while full: exit code %s, want 1" % rc)
			disk.grow(256 * 1024)
			want = first
		quiet = Server(feed="none", db=db, name="after", args=["--log-level", "info"])
		await quiet.start()
		await check_resume_equals_server(rec, quiet, "resumer")
		check(rec.epoch == want, "after restart the epoch is %s, want %s (epochs seen %s)"
		      % (rec.epoch, want, rec.epochs))
		rec.check_clean("long full disk")
		await quiet.stop(signal.SIGTERM, timeout=10)
	finally:
		await rec.detach()
		disk.remove()
	return "%s; epochs %s; %d keys, one state each" % (disk.how(), rec.epochs, len(rec.seen))

test_disk_full_long_starts_a_new_epoch_and_never_reuses_a_seq.timeout = 120

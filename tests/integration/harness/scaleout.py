"""Scale-out through Redis: a redis-server of the test's own (Redis), the
publisher in a role (Node: an ingest, or an edge that follows it), and what
tells whether the nodes agree (view, snapshot_view, converged).

Each Redis runs with `--save "" --appendonly no`: a restart loses
everything, the hardest case. When redis-server is not installed a test
returns SKIP (`make deps` installs it)."""

import asyncio
import os
import shutil
import socket
import time

from .http_api import metric
from .server import Helper, Server, free_port
from .store import snapshots

REDIS_SERVER = shutil.which("redis-server") or (
	"/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
SKIP = "skipped: redis-server not installed (make deps)"


def redis_command(port, *args, timeout=5):
	"""One command to redis on 127.0.0.1:port, in RESP; returns the reply line."""
	cmd = "*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args)
	with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
		s.sendall(cmd.encode())
		return s.recv(256)


class Redis(Helper):
	"""redis-server on 127.0.0.1:port (a free one unless given)."""

	ready_what = "answer PING"

	def __init__(self, port=None, name="redis"):
		Helper.__init__(self, name=name)
		self.redis_port = port or free_port()

	def argv(self):
		return [REDIS_SERVER, "--port", str(self.redis_port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", self.tmp]

	def ready(self):
		try:
			return redis_command(self.redis_port, "PING", timeout=0.5).startswith(b"+PONG")
		except OSError:
			return False

	def stderr_text(self):
		# Redis logs to stdout; nothing there is a sanitizer report of ours.
		return ""

	@property
	def addr(self):
		return "127.0.0.1:%d" % self.redis_port


class Node(Server):
	"""A publisher in a role: ingest (stdin feed, a temporary db) or edge
	(no feed, --db none; with edge_db, a temporary db of its own)."""

	def __init__(self, role, redis, name, args=(), edge_db=False):
		Server.__init__(self, feed="stdin", name=name, args=args)
		self.role = role
		self.redis = redis
		self.edge_db = edge_db

	def argv(self):
		argv = Server.argv(self)
		if self.role == "edge":
			i = argv.index("--feed")
			del argv[i:i + 2]
			if not self.edge_db:
				argv[argv.index("--db") + 1] = "none"
		return argv + ["--role", self.role, "--redis", self.redis.addr]


async def cluster(edges=2):
	"""Redis, an ingest and `edges` edges, all started."""
	r = await Redis().start()
	ing = await Node("ingest", r, "ingest").start()
	es = [await Node("edge", r, "edge%d" % (i + 1)).start() for i in range(edges)]
	return r, ing, es


def counts(ticks):
	"""{symbol: number of ticks}: the seq each symbol ends at."""
	n = {}
	for t in ticks:
		n[t["symbol"]] = n.get(t["symbol"], 0) + 1
	return n


async def wait_all(client, seqs, timeout=10.0):
	for s, q in seqs.items():
		await client.wait_seq(s, q, timeout=timeout)


def view(state):
	"""{symbol: (seq, ts, {field: text})} of a client's held state."""
	return {s: (h["seq"], h["ts"], {k: str(v) for k, v in h["fields"].items()})
		for s, h in state.items()}


async def snapshot_view(node, syms, name):
	"""What a fresh client subscribing now gets, as view() gives it."""
	c, _ = await snapshots(node, syms, name=name)
	await c.close()
	return c.hello["epoch"], view({s: c.state[s] for s in syms})


async def converged(nodes, ref, syms, timeout):
	"""Poll until every node's fresh snapshots equal ref's; returns the
	reference view."""
	deadline = time.monotonic() + timeout
	while True:
		want = await snapshot_view(ref, syms, "ref-snapper")
		diffs = []
		for n in nodes:
			got = await snapshot_view(n, syms, n.name + "-snapper")
			if got != want:
				diffs.append((n.name, got, want))
		if not diffs:
			return want
		if time.monotonic() > deadline:
			name, got, w = diffs[0]
			bad = {s: (got[1].get(s), w[1].get(s)) for s in syms if got[1].get(s) != w[1].get(s)}
			raise AssertionError("%s did not converge to the ingest within %.0f s: epoch %s vs %s; "
					     "(got, want) %s" % (name, timeout, got[0], w[0], str(bad)[:600]))
		await asyncio.sleep(0.2)


async def wait_published(ing, n, timeout=10.0):
	"""Wait until the ingest has published n ticks to Redis."""
	deadline = time.monotonic() + timeout
	while True:
		v = await metric(ing, "publisher_redis_ticks_published_total")
		if v is not None and v >= n:
			return
		if time.monotonic() > deadline:
			raise AssertionError("ingest published %s of %d ticks within %.0f s" % (v, n, timeout))
		await asyncio.sleep(0.05)

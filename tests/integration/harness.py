"""
harness: start the real `publisher` binary and talk to it like a client would.

    srv = await Server(feed="stdin").start()       # fresh db, free loopback port
    await srv.send_ticks([tick("AAPL", bid="189.33", ask="189.35")])
    c = await Client.connect(srv)                  # reads the hello
    await c.request({"op": "subscribe", "symbols": ["AAPL"]})
    snap = await c.expect("snapshot")

Every server and client made during a test is registered here, and the runner
(run.py) calls cleanup() after each test: clients are dropped, servers still
running are killed, and their stderr tails are handed back for the report.

Prices are compared as decimal.Decimal (frames are parsed with
parse_float=Decimal) and the exact text can be checked in the raw frames, so
"189.35 goes out as 189.35" is tested on the wire itself.
"""

import asyncio
import base64
import collections
import decimal
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import websockets

Decimal = decimal.Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
WEB_DIR = os.path.join(REPO, "web")

# Field names a symbol state may carry (publisher/tick.h); anything else in a
# snapshot or delta, apart from the envelope keys, is a protocol error.
INPUT_FIELDS = ("bid", "ask", "bid_size", "ask_size", "last", "last_size", "volume")
DERIVED_FIELDS = ("open", "high", "low", "volume", "trades")
STATE_FIELDS = set(INPUT_FIELDS) | set(DERIVED_FIELDS)
UPDATE_ENVELOPE = {"type", "symbol", "seq", "from", "ts"}


def binary():
	path = os.environ.get("PUBLISHER_BIN", "")
	return path


def now_us():
	return int(time.time() * 1_000_000)


# ------------------------------------------------------------------ ticks

_ts_counter = [0]


def next_ts():
	"""A strictly increasing wall-clock-ish timestamp in µs."""
	t = now_us()
	if t <= _ts_counter[0]:
		t = _ts_counter[0] + 1
	_ts_counter[0] = t
	return t


def tick(symbol, ts=None, **fields):
	"""A tick dict. String values that look like numbers become Decimal, so
	the exact text is written to the feed and can be compared afterwards."""
	t = {"ts": next_ts() if ts is None else ts, "symbol": symbol}
	for k, v in fields.items():
		if isinstance(v, str):
			v = Decimal(v)
		elif isinstance(v, float):
			v = Decimal(repr(v))
		t[k] = v
	return t


def _json_value(v):
	if isinstance(v, Decimal):
		return str(v)
	if isinstance(v, bool):
		return "true" if v else "false"
	if isinstance(v, int):
		return str(v)
	if isinstance(v, float):
		return repr(v)
	return json.dumps(v)


def tick_line(t):
	"""One JSONL line for a tick dict, decimals written from their text."""
	if isinstance(t, (bytes, str)):
		return t if isinstance(t, str) else t.decode()
	return "{" + ",".join(json.dumps(k) + ":" + _json_value(v) for k, v in t.items()) + "}"


def tick_fields(t):
	"""The data fields of a tick dict (no ts/symbol)."""
	return {k: v for k, v in t.items() if k not in ("ts", "symbol")}


# --------------------------------------------------------------- registry

_servers = []
_clients = []


def _reset_registry():
	del _servers[:]
	del _clients[:]


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
		   "ThreadSanitizer", "Segmentation fault")


def server_problems():
	"""What went wrong with the current test's servers that the test itself
	did not look at: an exit nobody asked for, a sanitizer report."""
	out = []
	for s in _servers:
		if s.proc is None:
			continue
		if s.proc.returncode is not None and not s.exit_expected:
			out.append("%s exited unexpectedly with code %s" % (s.name, s.proc.returncode))
		text = s.stderr_text()
		for mark in SANITIZER_MARKS:
			if mark in text:
				out.append("%s stderr reports %r" % (s.name, mark))
	return out


def kill_all_now():
	"""Synchronous last resort (e.g. on Ctrl-C): SIGKILL every server of
	the current test that may still run."""
	for s in _servers:
		if s.proc is not None and s.proc.returncode is None:
			try:
				os.kill(s.proc.pid, signal.SIGKILL)
			except ProcessLookupError:
				pass


async def cleanup():
	"""Drop every client and kill every server of the current test.
	Returns [(server name, stderr tail)] for the report."""
	for c in list(_clients):
		if c.ws is not None:
			try:
				c.ws.transport.abort()
			except Exception:
				pass
		if getattr(c, "sock", None) is not None:
			try:
				c.sock.close()
			except Exception:
				pass
	tails = []
	for s in list(_servers):
		try:
			await s.kill()
		except Exception:
			pass
		tails.append((s.name, s.stderr_tail()))
		s.remove_tmp()
	_reset_registry()
	return tails


# ----------------------------------------------------------------- server

class Server:
	"""The real binary on 127.0.0.1:0 with its own temporary db."""

	def __init__(self, feed="stdin", args=(), name="server", db=None, web=WEB_DIR):
		self.feed = feed
		self.args = list(args)
		self.name = name
		self.tmp = tempfile.mkdtemp(prefix="publisher-it-")
		self.db = db or os.path.join(self.tmp, "ticks.db")
		self.port_file = os.path.join(self.tmp, "port")
		self.stderr_path = os.path.join(self.tmp, "stderr")
		self.stdout_path = os.path.join(self.tmp, "stdout")
		self.web = web
		self.proc = None
		self.port = None
		self.returncode = None
		self.exit_expected = False  # set when the test stops or awaits the exit
		_servers.append(self)

	@property
	def pid(self):
		return self.proc.pid

	def argv(self):
		argv = [binary(), "serve", "--listen", "127.0.0.1:0",
			"--port-file", self.port_file, "--feed", self.feed,
			"--db", self.db]
		if self.web:
			argv += ["--web", self.web]
		# debug by default: the stderr tail printed for a failed test then
		# shows the connection's story (PUBLISHER_LOG_LEVEL overrides).
		argv += ["--log-level", os.environ.get("PUBLISHER_LOG_LEVEL", "debug")]
		return argv + self.args

	async def start(self, timeout=10.0):
		self._err = open(self.stderr_path, "wb")
		self._out = open(self.stdout_path, "wb")
		self.proc = await asyncio.create_subprocess_exec(
			*self.argv(), stdin=subprocess.PIPE, stdout=self._out,
			stderr=self._err)
		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline:
			if self.proc.returncode is not None:
				raise AssertionError(
					"%s exited with code %s before writing its port file "
					"(argv: %s)" % (self.name, self.proc.returncode,
							 " ".join(self.argv())))
			try:
				with open(self.port_file) as f:
					text = f.read().strip()
				if text:
					self.port = int(text)
					return self
			except (FileNotFoundError, ValueError):
				pass
			await asyncio.sleep(0.02)
		raise AssertionError("%s wrote no port file within %.0f s" % (self.name, timeout))

	def alive(self):
		return self.proc is not None and self.proc.returncode is None

	async def send_ticks(self, ticks):
		"""Write ticks (dicts or raw lines) to the server's stdin feed."""
		data = "".join(tick_line(t) + "\n" for t in ticks).encode()
		try:
			self.proc.stdin.write(data)
			await self.proc.stdin.drain()
		except (BrokenPipeError, ConnectionResetError) as e:
			raise AssertionError("%s: cannot write ticks to stdin (%s); alive=%s"
					     % (self.name, e, self.alive()))

	async def wait_exit(self, timeout):
		"""The exit code, or None if still running after timeout seconds."""
		self.exit_expected = True
		try:
			self.returncode = await asyncio.wait_for(self.proc.wait(), timeout)
		except asyncio.TimeoutError:
			return None
		return self.returncode

	async def stop(self, sig=signal.SIGTERM, timeout=5.0):
		"""Send sig and wait; returns the exit code (None if it hung, then
		the process is killed)."""
		self.exit_expected = True
		if self.proc.returncode is not None:
			return self.proc.returncode
		self.proc.send_signal(sig)
		rc = await self.wait_exit(timeout)
		if rc is None:
			await self.kill()
		return rc

	async def kill(self):
		if self.proc is None:
			return
		if self.proc.returncode is None:
			try:
				self.proc.kill()
			except ProcessLookupError:
				pass
			try:
				await asyncio.wait_for(self.proc.wait(), 5)
			except asyncio.TimeoutError:
				pass
		try:
			self.proc.stdin.close()
		except Exception:
			pass
		for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
			if f:
				f.close()

	def stderr_text(self):
		try:
			with open(self.stderr_path, "rb") as f:
				return f.read().decode("utf-8", "replace")
		except FileNotFoundError:
			return ""

	def stderr_tail(self, lines=15):
		return "\n".join(self.stderr_text().splitlines()[-lines:])

	def rss_kb(self):
		"""VmRSS of the server process in kB (None when gone)."""
		try:
			with open("/proc/%d/status" % self.pid) as f:
				for line in f:
					if line.startswith("VmRSS:"):
						return int(line.split()[1])
		except (FileNotFoundError, ProcessLookupError):
			return None
		return None

	def remove_tmp(self):
		if not os.environ.get("KEEP_TMP"):
			shutil.rmtree(self.tmp, ignore_errors=True)


async def start_server(feed="stdin", args=(), name="server"):
	return await Server(feed=feed, args=args, name=name).start()


async def run_cli(args, timeout=10.0):
	"""Run the binary with args; returns (exit code, stdout, stderr)."""
	proc = await asyncio.create_subprocess_exec(
		binary(), *args, stdin=subprocess.DEVNULL,
		stdout=subprocess.PIPE, stderr=subprocess.PIPE)
	try:
		out, err = await asyncio.wait_for(proc.communicate(), timeout)
	except asyncio.TimeoutError:
		proc.kill()
		await proc.wait()
		raise AssertionError("`publisher %s` still running after %.0f s"
				     % (" ".join(args), timeout))
	return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


# ----------------------------------------------------------------- client

def _summary(m, limit=160):
	s = json.dumps(m, default=str)
	return s if len(s) <= limit else s[:limit] + "…"


class Closed(AssertionError):
	"""The connection closed while a message was awaited (or sent)."""

	def __init__(self, who, code, reason):
		AssertionError.__init__(self, "%s: connection closed (code %s %r)" % (who, code, reason))
		self.code = code
		self.during_send = False


class Client:
	"""A WebSocket client over the `websockets` library that keeps the
	client-side state a dashboard would: per symbol the seq it holds and
	every field, built from snapshots and deltas, with gaps recorded."""

	def __init__(self, ws, name):
		self.ws = ws
		self.name = name
		self.sock = None
		self.queue = collections.deque()
		self.raw = []	   # every text frame received, in order
		self.log = []	   # every object received, in order
		self.updates = []  # (monotonic time, message) for snapshots and deltas
		self.state = {}	   # symbol -> {"seq": n, "ts": t, "fields": {...}}
		self.gaps = []	   # (symbol, held seq, delta from, delta seq)
		self.problems = [] # protocol violations seen while applying
		self.hello = None
		self._next_id = 1
		_clients.append(self)

	@classmethod
	async def connect(cls, server, path="/ws", name="client", expect_hello=True,
			  rcvbuf=None, subprotocols=None, **kw):
		uri = "ws://127.0.0.1:%d%s" % (server.port, path)
		opts = dict(max_size=64 * 1024 * 1024, ping_interval=None, open_timeout=10,
			    close_timeout=2)
		opts.update(kw)
		if subprotocols:
			opts["subprotocols"] = subprotocols
		sock = None
		if rcvbuf is not None:
			# A tiny receive buffer set before connect keeps the TCP
			# window small, so not reading really pushes back on the server.
			sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
			sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
			sock.connect(("127.0.0.1", server.port))
			sock.setblocking(False)
			opts["sock"] = sock
		try:
			ws = await websockets.connect(uri, **opts)
		except Exception as e:
			raise AssertionError("%s: cannot connect to %s: %r" % (name, uri, e))
		c = cls(ws, name)
		c.sock = sock
		if expect_hello:
			c.hello = await c.expect("hello", timeout=5)
		return c

	@property
	def epoch(self):
		return self.hello.get("epoch") if self.hello else None

	# ---------------------------------------------------------- receive

	async def _recv_frame(self, timeout):
		try:
			text = await asyncio.wait_for(self.ws.recv(), timeout)
		except websockets.ConnectionClosed as e:
			raise Closed(self.name, e.code, e.reason)
		if isinstance(text, bytes):
			self.problems.append("binary frame received (%d bytes)" % len(text))
			text = text.decode("utf-8", "replace")
		self.raw.append(text)
		try:
			obj = json.loads(text, parse_float=Decimal)
		except ValueError as e:
			raise AssertionError("%s: server frame is not JSON (%s): %r" % (self.name, e, text[:200]))
		if isinstance(obj, dict):
			self.queue.append(obj)
		elif isinstance(obj, list) and obj and all(isinstance(o, dict) for o in obj):
			self.queue.extend(obj)
		else:
			raise AssertionError("%s: server frame is neither an object nor a non-empty "
					     "array of objects: %r" % (self.name, text[:200]))

	async def recv_json(self, timeout=5.0):
		"""The next object (batches are flattened). Snapshots and deltas
		are applied to self.state as they are taken. Raises
		asyncio.TimeoutError when nothing arrives in time, Closed when the
		connection closes."""
		if not self.queue:
			await self._recv_frame(timeout)
		m = self.queue.popleft()
		self.log.append(m)
		t = m.get("type")
		if t in ("snapshot", "delta"):
			self.updates.append((time.monotonic(), m))
			self.apply(m)
		elif t == "hello" and self.hello is None:
			self.hello = m
		return m

	def apply(self, m):
		"""Apply a snapshot or delta as a client must (README, Protocol)."""
		sym = m.get("symbol")
		seq = m.get("seq")
		if not isinstance(sym, str) or not isinstance(seq, int):
			self.problems.append("update without symbol/seq: %s" % _summary(m))
			return
		extra = set(m) - UPDATE_ENVELOPE - STATE_FIELDS
		if extra:
			self.problems.append("unknown keys %s in %s" % (sorted(extra), _summary(m)))
		fields = {k: v for k, v in m.items() if k not in UPDATE_ENVELOPE}
		held = self.state.get(sym)
		if m["type"] == "snapshot":
			if held is not None and seq < held["seq"]:
				self.problems.append("snapshot seq %d older than held %d for %s"
						     % (seq, held["seq"], sym))
			self.state[sym] = {"seq": seq, "ts": m.get("ts"), "fields": fields}
			return
		frm = m.get("from")
		if not isinstance(frm, int) or frm >= seq:
			self.problems.append("delta with bad from/seq: %s" % _summary(m))
			return
		if held is None or held["seq"] != frm:
			self.gaps.append((sym, None if held is None else held["seq"], frm, seq))
			return
		held["fields"].update(fields)
		held["seq"] = seq
		if "ts" in m:
			held["ts"] = m["ts"]

	async def expect(self, type_, timeout=5.0, id=None, pred=None, what=None):
		"""Read until a message of type_ (with that id / satisfying pred)
		arrives; everything read meanwhile is applied and logged."""
		deadline = time.monotonic() + timeout
		start = len(self.log)
		while True:
			left = deadline - time.monotonic()
			try:
				if left <= 0:
					raise asyncio.TimeoutError()
				m = await self.recv_json(left)
			except asyncio.TimeoutError:
				seen = [_summary(x, 120) for x in self.log[start:]][-6:]
				raise AssertionError("%s: no %s within %.1f s; received meanwhile: %s"
						     % (self.name, what or self._describe(type_, id),
							timeout, seen or "nothing"))
			if type_ is not None and m.get("type") != type_:
				continue
			if id is not None and m.get("id") != id:
				continue
			if pred is not None and not pred(m):
				continue
			return m

	@staticmethod
	def _describe(type_, id):
		return repr(type_) + ("" if id is None else " with id %r" % (id,))

	async def collect(self, duration):
		"""Everything received during `duration` seconds (no error if nothing)."""
		out = []
		deadline = time.monotonic() + duration
		while True:
			left = deadline - time.monotonic()
			if left <= 0:
				return out
			try:
				out.append(await self.recv_json(left))
			except asyncio.TimeoutError:
				return out

	async def wait_seq(self, symbol, seq, timeout=5.0):
		"""Read until the state held for symbol reaches seq."""
		deadline = time.monotonic() + timeout
		start = len(self.log)
		while True:
			held = self.state.get(symbol)
			if held is not None and held["seq"] >= seq:
				return held
			left = deadline - time.monotonic()
			try:
				if left <= 0:
					raise asyncio.TimeoutError()
				await self.recv_json(left)
			except asyncio.TimeoutError:
				seen = [_summary(x, 120) for x in self.log[start:]][-6:]
				raise AssertionError(
					"%s: %s did not reach seq %d within %.1f s (held %s; gaps %s); "
					"received meanwhile: %s" % (self.name, symbol, seq, timeout,
						held and held["seq"], self.gaps[-3:], seen or "nothing"))

	async def drain_until_closed(self, timeout=5.0):
		"""Read everything still queued until the connection closes.
		Returns (messages, close code or None if still open)."""
		out = []
		deadline = time.monotonic() + timeout
		while True:
			left = deadline - time.monotonic()
			if left <= 0:
				return out, None
			try:
				out.append(await self.recv_json(left))
			except Closed as e:
				return out, e.code
			except asyncio.TimeoutError:
				return out, None

	async def wait_closed(self, timeout=5.0):
		"""Read (discarding) until the connection closes; returns the close
		code, or None if it stayed open."""
		deadline = time.monotonic() + timeout
		while True:
			left = deadline - time.monotonic()
			if left <= 0:
				return None
			try:
				await self.recv_json(left)
			except Closed as e:
				return e.code
			except asyncio.TimeoutError:
				return None

	# ------------------------------------------------------------- send

	async def send(self, obj):
		"""Send one message. When the connection is gone this raises
		Closed with during_send set: its code is what the library knew at
		that moment (often 1006, because the peer's close frame may still
		be unread); read on with drain_until_closed() for the real one."""
		text = obj if isinstance(obj, (str, bytes)) else json.dumps(obj)
		try:
			await self.ws.send(text)
		except websockets.ConnectionClosed as e:
			err = Closed(self.name, e.code, e.reason)
			err.during_send = True
			raise err

	def new_id(self):
		i = self._next_id
		self._next_id += 1
		return i

	async def request(self, op, timeout=5.0):
		"""Send op (an id is added when it has none) and return the reply
		that echoes its id; updates read meanwhile are applied."""
		op = dict(op)
		if "id" not in op:
			op["id"] = self.new_id()
		await self.send(op)
		return await self._expect_reply(op["id"], op, timeout)

	async def _expect_reply(self, rid, op, timeout):
		deadline = time.monotonic() + timeout
		start = len(self.log)
		while True:
			left = deadline - time.monotonic()
			try:
				if left <= 0:
					raise asyncio.TimeoutError()
				m = await self.recv_json(left)
			except asyncio.TimeoutError:
				seen = [_summary(x, 120) for x in self.log[start:]][-6:]
				raise AssertionError("%s: no reply to %s within %.1f s; received meanwhile: %s"
						     % (self.name, json.dumps(op)[:120], timeout, seen or "nothing"))
			if m.get("type") in ("snapshot", "delta", "heartbeat", "hello"):
				continue
			if m.get("id") == rid:
				return m
			if m.get("type") == "error" and "id" not in m:
				raise AssertionError("%s: error without id in reply to %s: %s"
						     % (self.name, json.dumps(op)[:120], _summary(m)))

	async def subscribe(self, symbols, timeout=5.0, **extra):
		op = {"op": "subscribe", "symbols": list(symbols)}
		op.update(extra)
		r = await self.request(op, timeout)
		if r.get("type") != "subscribed":
			raise AssertionError("%s: subscribe %s answered %s" % (self.name, symbols, _summary(r)))
		return r

	async def ping_ok(self, timeout=5.0):
		"""A ping gets its pong: the connection is open and still served."""
		r = await self.request({"op": "ping"}, timeout)
		if r.get("type") != "pong":
			raise AssertionError("%s: ping answered %s" % (self.name, _summary(r)))
		return r

	async def close(self):
		try:
			await asyncio.wait_for(self.ws.close(), 2)
		except Exception:
			pass

	# ------------------------------------------------------- assertions

	def assert_clean(self):
		"""No gaps and no protocol violations were seen."""
		if self.gaps:
			raise AssertionError("%s: %d gap(s), first %s (symbol, held, from, seq)"
					     % (self.name, len(self.gaps), self.gaps[:3]))
		if self.problems:
			raise AssertionError("%s: %d protocol problem(s): %s"
					     % (self.name, len(self.problems), self.problems[:3]))

	def raw_has(self, field, text):
		"""True when some raw frame carries "field":text literally."""
		pat = re.compile(r'"%s"\s*:\s*%s(?![0-9eE.])' % (re.escape(field), re.escape(text)))
		return any(pat.search(r) for r in self.raw)


def assert_fields(got, want, who=""):
	"""Every field of want is in got with the same (decimal) value."""
	bad = []
	for k, v in want.items():
		if k not in got:
			bad.append("%s missing" % k)
		elif Decimal(str(got[k])) != Decimal(str(v)):
			bad.append("%s=%s, want %s" % (k, got[k], v))
	if bad:
		raise AssertionError("%s%s (have %s)" % (who and who + ": ", "; ".join(bad),
							 _summary(got, 300)))


def check(cond, msg):
	if not cond:
		raise AssertionError(msg)


# --------------------------------------------------------- raw sockets

class _RawSocket:
	"""A raw socket registered for cleanup() (which closes c.sock)."""

	def __init__(self, sock):
		self.sock = sock
		self.ws = None


def raw_ws_connect(port, path="/ws", rcvbuf=None, timeout=5.0):
	"""A WebSocket handshake by hand on a blocking socket. Returns the socket
	after the 101 response headers (any bytes after them are left unread)."""
	return raw_ws_handshake(port, path=path, rcvbuf=rcvbuf, timeout=timeout)[0]


def raw_ws_handshake(port, path="/ws", rcvbuf=None, timeout=5.0, extensions=None):
	"""raw_ws_connect() that may offer extensions (the value of a
	Sec-WebSocket-Extensions header) and returns (socket, the response's
	headers as text)."""
	s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
	if rcvbuf is not None:
		s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
	s.settimeout(timeout)
	s.connect(("127.0.0.1", port))
	key = base64.b64encode(os.urandom(16)).decode()
	req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
	       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	       "Sec-WebSocket-Version: 13\r\n" % (path, port, key))
	if extensions:
		req += "Sec-WebSocket-Extensions: %s\r\n" % extensions
	s.sendall((req + "\r\n").encode())
	buf = b""
	while b"\r\n\r\n" not in buf:
		chunk = s.recv(1)  # byte by byte: never read past the headers
		if not chunk:
			raise AssertionError("raw client: connection closed during handshake: %r" % buf)
		buf += chunk
	head = buf.decode("latin-1")
	check(head.startswith("HTTP/1.1 101"), "raw client: handshake answered %r" % head[:200])
	accept = base64.b64encode(hashlib.sha1(
		(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
	check(accept in head, "raw client: wrong Sec-WebSocket-Accept in %r" % head)
	_clients.append(_RawSocket(s))
	return s, head


def read_ws_frame(s):
	"""One server frame from a blocking raw socket: (fin, rsv1, opcode,
	payload)."""
	def exact(n):
		b = b""
		while len(b) < n:
			chunk = s.recv(n - len(b))
			if not chunk:
				raise AssertionError("raw client: connection closed mid-frame")
			b += chunk
		return b
	h = exact(2)
	n = h[1] & 0x7F
	if n == 126:
		n = int.from_bytes(exact(2), "big")
	elif n == 127:
		n = int.from_bytes(exact(8), "big")
	check(not h[1] & 0x80, "raw client: the server masked a frame")
	return bool(h[0] & 0x80), bool(h[0] & 0x40), h[0] & 0x0F, exact(n)


def ws_frame(text, opcode=0x1, rsv1=False):
	"""One masked client frame (rsv1: marked compressed)."""
	data = text.encode() if isinstance(text, str) else text
	mask = os.urandom(4)
	n = len(data)
	b0 = 0x80 | opcode | (0x40 if rsv1 else 0)
	if n < 126:
		head = bytes([b0, 0x80 | n])
	elif n < 65536:
		head = bytes([b0, 0x80 | 126]) + n.to_bytes(2, "big")
	else:
		head = bytes([b0, 0x80 | 127]) + n.to_bytes(8, "big")
	return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def metric(srv, name):
	"""The value of a /metrics line (the first with labels, if it has
	some), or None when there is no such metric."""
	status, _, body = await http_request(srv.port, "/metrics")
	check(status == 200, "%s /metrics: %s" % (srv.name, status))
	for line in body.decode().splitlines():
		if line.startswith(name + " ") or line.startswith(name + "{"):
			return float(line.rsplit(" ", 1)[1])
	return None


def _http_sync(port, method, path, headers, timeout):
	conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
	try:
		conn.request(method, path, headers=headers or {})
		r = conn.getresponse()
		body = r.read()
		return r.status, {k.lower(): v for k, v in r.getheaders()}, body
	finally:
		conn.close()


async def http_request(port, path="/", method="GET", headers=None, timeout=5.0):
	"""(status, {lower-case header: value}, body bytes)."""
	return await asyncio.to_thread(_http_sync, port, method, path, headers, timeout)

"""A WebSocket client as a dashboard would be (Client), and raw-socket
helpers for what a library client cannot do: a handshake by hand, frames
read and written byte by byte.

Frames are parsed with parse_float=Decimal, so prices are compared as
decimals and the exact text can be checked in the raw frames: "189.35 goes
out as 189.35" is tested on the wire itself."""

import asyncio
import base64
import collections
import hashlib
import json
import os
import re
import socket
import time

import websockets

from . import registry
from .checks import Decimal, check, summary
from .ticks import STATE_FIELDS, UPDATE_ENVELOPE


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
		registry.clients.append(self)

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
			self.problems.append("update without symbol/seq: %s" % summary(m))
			return
		extra = set(m) - UPDATE_ENVELOPE - STATE_FIELDS
		if extra:
			self.problems.append("unknown keys %s in %s" % (sorted(extra), summary(m)))
		fields = {k: v for k, v in m.items() if k not in UPDATE_ENVELOPE}
		held = self.state.get(sym)
		if m["type"] == "snapshot":
			if any(v is None for v in fields.values()):
				self.problems.append("null in a snapshot: %s" % summary(m))
			if held is not None and seq < held["seq"]:
				self.problems.append("snapshot seq %d older than held %d for %s"
						     % (seq, held["seq"], sym))
			self.state[sym] = {"seq": seq, "ts": m.get("ts"), "fields": fields}
			return
		frm = m.get("from")
		if not isinstance(frm, int) or frm >= seq:
			self.problems.append("delta with bad from/seq: %s" % summary(m))
			return
		if held is None or held["seq"] != frm:
			self.gaps.append((sym, None if held is None else held["seq"], frm, seq))
			return
		for k, v in fields.items():
			if v is None:  # taken away (a new trading session)
				held["fields"].pop(k, None)
			else:
				held["fields"][k] = v
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
				seen = [summary(x, 120) for x in self.log[start:]][-6:]
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
				seen = [summary(x, 120) for x in self.log[start:]][-6:]
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
				seen = [summary(x, 120) for x in self.log[start:]][-6:]
				raise AssertionError("%s: no reply to %s within %.1f s; received meanwhile: %s"
						     % (self.name, json.dumps(op)[:120], timeout, seen or "nothing"))
			if m.get("type") in ("snapshot", "delta", "heartbeat", "hello"):
				continue
			if m.get("id") == rid:
				return m
			if m.get("type") == "error" and "id" not in m:
				raise AssertionError("%s: error without id in reply to %s: %s"
						     % (self.name, json.dumps(op)[:120], summary(m)))

	async def subscribe(self, symbols, timeout=5.0, **extra):
		op = {"op": "subscribe", "symbols": list(symbols)}
		op.update(extra)
		r = await self.request(op, timeout)
		if r.get("type") != "subscribed":
			raise AssertionError("%s: subscribe %s answered %s" % (self.name, symbols, summary(r)))
		return r

	async def ping_ok(self, timeout=5.0):
		"""A ping gets its pong: the connection is open and still served."""
		r = await self.request({"op": "ping"}, timeout)
		if r.get("type") != "pong":
			raise AssertionError("%s: ping answered %s" % (self.name, summary(r)))
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
	registry.clients.append(_RawSocket(s))
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


"""The HTTP stream transports (/stream/events, /stream/poll, POST
/stream/send, POST /stream/ticket) against hostile and careless clients:
bodies that lie about their length or are not text, floods, cursors and
arguments that are junk, sessions fought over by several requests, more
sessions than allowed, clients that stop reading, half-close or reset,
requests pipelined on one connection, methods the endpoints do not take,
tokens that run out. Each test names the behaviour it asserts: a clear
error for the bad request, nothing lost for the session it names, the
server serving everyone else, memory bounded, SIGTERM still exit 0.

HTTP is spoken by hand (RawHttp below) where the test is about the bytes on
the wire; the harness's SseClient and PollClient where it is about the
session. Figures (times, CPU, memory) are printed, and asserted only with
margins far beyond what a healthy server needs."""

import asyncio
import json
import os
import re
import signal
import socket
import struct
import sys
import time
import urllib.parse

from harness import (PollClient, Refused, Server, SseClient, check, connect_transport,
		     get_ticket, http_request, over_transports, registry, start_server,
		     stream_request, summary, tick, mint_token, REPO)
from harness import auth_server as harness_auth_server


# ------------------------------------------------------------ raw HTTP

class RawHttp:
	"""One connection spoken by hand: bytes go out exactly as given, and
	responses are read back one by one (a status line, headers, a body of
	Content-Length bytes), so pipelining, lying lengths, half-close and
	reset can be tried."""

	def __init__(self, reader, writer, sock):
		self.reader = reader
		self.writer = writer
		self.sock = sock
		self.buf = b""
		self.eof = False
		registry.clients.append(self)

	@classmethod
	async def open(cls, port, rcvbuf=None, timeout=5.0):
		sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
		if rcvbuf is not None:
			sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
		sock.setblocking(False)
		loop = asyncio.get_running_loop()
		await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), timeout)
		reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
		return cls(reader, writer, sock)

	async def send(self, data):
		self.writer.write(data)
		await self.writer.drain()

	async def _fill(self, deadline):
		left = deadline - time.monotonic()
		if left <= 0:
			raise asyncio.TimeoutError()
		try:
			data = await asyncio.wait_for(self.reader.read(65536), left)
		except (ConnectionResetError, BrokenPipeError):
			data = b""
		if not data:
			self.eof = True
		self.buf += data

	async def response(self, timeout=5.0, head_only=False):
		"""The next response: (status, {header: value}, body), or None
		when the connection closed before one began. Raises
		asyncio.TimeoutError when nothing complete came in time."""
		deadline = time.monotonic() + timeout
		while b"\r\n\r\n" not in self.buf:
			if self.eof:
				return None
			await self._fill(deadline)
		head, _, self.buf = self.buf.partition(b"\r\n\r\n")
		lines = head.decode("latin-1").split("\r\n")
		m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
		check(m, "not an HTTP status line: %r" % lines[0][:100])
		headers = {}
		for line in lines[1:]:
			k, _, v = line.partition(":")
			headers[k.strip().lower()] = v.strip()
		if head_only:
			return int(m.group(1)), headers, b""
		n = int(headers.get("content-length", "0"))
		while len(self.buf) < n:
			if self.eof:
				raise ConnectionError("the connection closed inside a body of %d bytes" % n)
			await self._fill(deadline)
		body, self.buf = self.buf[:n], self.buf[n:]
		return int(m.group(1)), headers, body

	async def read_some(self, timeout):
		"""Whatever arrives within timeout (b"" at the end of the
		connection, None when nothing came)."""
		if self.buf:
			out, self.buf = self.buf, b""
			return out
		try:
			await self._fill(time.monotonic() + timeout)
		except asyncio.TimeoutError:
			return None
		out, self.buf = self.buf, b""
		return out

	async def closed_within(self, timeout):
		"""True when the server closes the connection within timeout
		(anything it sends meanwhile is dropped)."""
		deadline = time.monotonic() + timeout
		while not self.eof:
			try:
				await self._fill(deadline)
			except asyncio.TimeoutError:
				return False
			self.buf = b""
		return True

	def half_close(self):
		self.sock.shutdown(socket.SHUT_WR)

	def reset(self):
		"""Close with an RST instead of a FIN."""
		self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
		self.abort()

	def abort(self):
		try:
			self.writer.transport.abort()
		except Exception:
			pass


def request_bytes(method, target, port, body=None, headers=None, length=True):
	"""A request as bytes; length=False leaves Content-Length out even
	with a body."""
	h = {"Host": "127.0.0.1:%d" % port}
	h.update(headers or {})
	if body is not None and length and "Content-Length" not in h:
		h["Content-Length"] = str(len(body))
	head = "%s %s HTTP/1.1\r\n" % (method, target)
	head += "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
	return head.encode("latin-1") + (body or b"")


def send_target(key):
	return "/stream/send?session=" + key


# ------------------------------------------------------- server figures

def cpu_seconds(srv):
	"""User + system CPU seconds of the server so far (all threads)."""
	with open("/proc/%d/stat" % srv.pid) as f:
		fields = f.read().rsplit(")", 1)[1].split()
	return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cpu_share(srv, seconds):
	"""The server's CPU use over seconds, in cores."""
	a = cpu_seconds(srv)
	await asyncio.sleep(seconds)
	return (cpu_seconds(srv) - a) / seconds


async def healthz_answers(srv, timeout=5.0):
	"""How long /healthz took to answer on a connection of its own; an
	AssertionError when it did not within timeout."""
	t0 = time.monotonic()
	try:
		status, _, _ = await asyncio.wait_for(http_request(srv.port, "/healthz", timeout=timeout),
						      timeout + 1)
	except (asyncio.TimeoutError, OSError) as e:
		raise AssertionError("%s: /healthz did not answer within %.0f s (%s): the server stopped "
				     "serving" % (srv.name, timeout, type(e).__name__))
	check(status in (200, 503), "/healthz answered %s" % status)
	return time.monotonic() - t0


async def metric_value(srv, line_start):
	"""The value of the first /metrics line that starts with line_start."""
	status, _, body = await http_request(srv.port, "/metrics")
	check(status == 200, "/metrics answered %s" % status)
	for line in body.decode().splitlines():
		if line.startswith(line_start):
			return float(line.rsplit(" ", 1)[1])
	return None


async def still_serving(srv, reader=None):
	"""The server answers /healthz and (when given) the reader still gets
	frames: a ping's pong comes back."""
	dt = await healthz_answers(srv)
	if reader is not None:
		await reader.ping_ok(timeout=10)
	return dt


async def no_frame_with_id(c, rid, seconds=0.5):
	"""Read for a while; no frame may carry id rid."""
	await c.collect(seconds)
	seen = [m for m in c.log if m.get("id") == rid]
	check(not seen, "%s: a frame answered %r, which must never have reached the session: %s"
	      % (c.name, rid, summary(seen)))


def errors_of(c):
	return [m for m in c.log if m.get("type") == "error"]


async def exit_after_sigterm(srv, within=5.0):
	"""SIGTERM: exit 0 within `within` seconds (a build with
	LeakSanitizer exits otherwise when anything leaked). Returns the time."""
	t0 = time.monotonic()
	srv.proc.send_signal(signal.SIGTERM)
	rc = await srv.wait_exit(within)
	dt = time.monotonic() - t0
	check(rc is not None, "%s: still running %.0f s after SIGTERM" % (srv.name, within))
	check(rc == 0, "%s: exit code %s after SIGTERM, want 0" % (srv.name, rc))
	return dt


async def ends_well(srv, reader=None):
	"""After the test's hostile client: the server still serves (and the
	reader still gets its replies), then SIGTERM ends it with 0 quickly."""
	await still_serving(srv, reader)
	await exit_after_sigterm(srv)


def sanitized(srv):
	"""Whether the server runs under AddressSanitizer or valgrind, whose
	quarantine and shadow memory make its RSS say nothing of its own."""
	try:
		with open("/proc/%d/maps" % srv.pid) as f:
			maps = f.read()
	except OSError:
		return False
	return "libasan" in maps or "vgpreload" in maps


async def auth_server(args=(), feed="none"):
	return await harness_auth_server(args=args, feed=feed)


def token(secret, exp_in=3600, symbols=("*",)):
	return mint_token(secret, symbols, exp_in=exp_in, sub="mallory")


def one_line(body):
	text = body.decode("utf-8", "replace").strip()
	return bool(text) and "\n" not in text


# ======================================================================
# POST /stream/send: the body

async def test_send_without_content_length_is_400():
	srv = await start_server(feed="none")
	c = await SseClient.connect(srv)
	conn = await RawHttp.open(srv.port)
	await conn.send(request_bytes("POST", send_target(c.session), srv.port,
				      b'{"op":"ping","id":"no-length"}', length=False))
	r = await conn.response()
	check(r is not None, "POST without Content-Length: the connection closed without an answer")
	status, headers, body = r
	check(status in (400, 411) and b"Content-Length" in body and one_line(body),
	      "POST /stream/send without Content-Length answered %s %r, want 400 or 411 naming "
	      "Content-Length" % (status, body[:200]))
	await no_frame_with_id(c, "no-length")
	check(not errors_of(c), "the refused POST put errors on the stream: %s" % summary(errors_of(c)))
	await c.ping_ok()
	await ends_well(srv, c)
	return "%s %r" % (status, body.strip()[:80])


async def test_send_chunked_is_refused_and_nothing_reaches_the_session():
	srv = await start_server(feed="none")
	c = await SseClient.connect(srv)
	conn = await RawHttp.open(srv.port)
	op = b'{"op":"ping","id":"chunked"}'
	body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(op), op)
	await conn.send(request_bytes("POST", send_target(c.session), srv.port, body,
				      headers={"Transfer-Encoding": "chunked"}, length=False))
	r = await conn.response()
	check(r is not None, "a chunked POST: the connection closed without an answer")
	status, _, text = r
	check(status in (400, 411, 501) and one_line(text),
	      "POST /stream/send with Transfer-Encoding: chunked answered %s %r, want a refusal with "
	      "a reason" % (status, text[:200]))
	await no_frame_with_id(c, "chunked")
	check(not errors_of(c), "chunk bytes reached the session as requests: %s" % summary(errors_of(c)))
	await c.ping_ok()
	await ends_well(srv)
	return "%s %r" % (status, text.strip()[:80])


async def test_send_body_shorter_than_content_length_is_dropped():
	"""The body never completes: the connection is dropped after the
	handshake timeout, the part sent never reaches the session."""
	srv = await start_server(feed="none", args=["--handshake-timeout-secs", "2"])
	c = await SseClient.connect(srv)
	conn = await RawHttp.open(srv.port)
	part = b'{"op":"ping","id":"short"}'
	await conn.send(request_bytes("POST", send_target(c.session), srv.port, part,
				      headers={"Content-Length": str(len(part) + 40)}))
	t0 = time.monotonic()
	closed = await conn.closed_within(20)
	dt = time.monotonic() - t0
	check(closed, "a POST whose body stopped short was still open after 20 s")
	await no_frame_with_id(c, "short")
	check(not errors_of(c), "the cut body reached the session: %s" % summary(errors_of(c)))
	await c.ping_ok()
	await ends_well(srv, c)
	return "dropped %.1f s after the body stopped (--handshake-timeout-secs 2)" % dt


async def test_send_body_longer_than_content_length_serves_only_the_declared_bytes():
	srv = await start_server(feed="none")
	c = await SseClient.connect(srv)
	other = await SseClient.connect(srv, name="other")
	declared = b'{"op":"ping","id":"declared"}'
	extra = b'{"op":"ping","id":"smuggled"}'
	conn = await RawHttp.open(srv.port)
	await conn.send(request_bytes("POST", send_target(c.session), srv.port, declared + extra,
				      headers={"Content-Length": str(len(declared))}))
	status, _, _ = await conn.response()
	check(status == 202, "the declared request answered %s, want 202" % status)
	pong = await c.expect("pong", what="the pong of the declared request")
	check(pong.get("id") == "declared", "pong %s" % summary(pong))
	# What followed the body is no request of the session's.
	await no_frame_with_id(c, "smuggled", 1.0)
	await c.ping_ok()
	await ends_well(srv, other)


async def test_send_over_max_message_bytes_is_413_then_the_connection_closes():
	"""413 naming the limit, with Connection: close, and the connection
	ends there (every POST's does: README, POST); a request on a new
	connection is served."""
	srv = await start_server(feed="none", args=["--max-message-bytes", "1024"])
	c = await SseClient.connect(srv)
	big = ('{"op":"ping","id":"big","pad":"%s"}' % ("x" * 4000)).encode()
	conn = await RawHttp.open(srv.port)
	head = request_bytes("POST", send_target(c.session), srv.port, big)
	# The head, then the body in reads of their own (a body that came
	# in one read with a request before it is the pipelining case).
	await conn.send(head[:-len(big)])
	await asyncio.sleep(0.2)
	await conn.send(big)
	status, headers, body = await conn.response()
	check(status == 413 and one_line(body) and b"1024" in body,
	      "a %d-byte request over --max-message-bytes 1024 answered %s %r, want 413 naming the "
	      "limit" % (len(big), status, body[:200]))
	check("no-cache" in headers.get("cache-control", ""), "413 without Cache-Control: no-cache")
	check(headers.get("connection", "").lower() == "close", "413 without Connection: close: %s"
	      % headers)
	check(await conn.closed_within(5), "the connection stayed open after the 413")
	status, _, _ = await c.post(b'{"op":"ping","id":"after-413"}')
	check(status == 202, "a request on a new connection after the 413 answered %s" % status)
	await c.expect("pong", id="after-413")
	await no_frame_with_id(c, "big")
	await ends_well(srv, c)
	return "413 %r" % body.strip()


async def test_send_that_is_not_utf8_is_400():
	srv = await start_server(feed="none")
	c = await SseClient.connect(srv)
	bodies = {"binary": b"\xff\xfe\x00\x01\x80", "latin-1": b'{"op":"ping","id":"caf\xe9"}',
		  "overlong": b'{"op":"ping","id":"\xc0\xaf"}', "surrogate": b'{"op":"ping","id":"\xed\xa0\x80"}',
		  "cut": b'{"op":"ping","id":"\xe2\x82"}'}
	for what, body in bodies.items():
		status, _, text = await c.post(body)
		check(status == 400 and one_line(text) and b"UTF-8" in text,
		      "a %s body answered %s %r, want 400 saying it is not UTF-8" % (what, status, text[:200]))
	await c.collect(0.5)
	check(not [m for m in c.log if m.get("type") in ("pong", "error")],
	      "a body refused with 400 still reached the session: %s" % summary(c.log[-3:]))
	await c.ping_ok()
	await ends_well(srv, c)


async def test_post_without_content_length_leaves_the_connection_usable():
	"""`curl -X POST` sends no Content-Length and no body. After the
	answer, the connection either takes the next request or is closed;
	it must not swallow what follows as a body (libwebsockets 4.1.6 takes
	a POST without Content-Length for 100 MiB of body)."""
	srv = await start_server(feed="none")
	notes = []
	key = (await PollClient.connect(srv)).session
	for target in ("/stream/ticket", send_target(key)):
		conn = await RawHttp.open(srv.port)
		await conn.send(request_bytes("POST", target, srv.port))
		r = await conn.response()
		check(r is not None, "POST %s without Content-Length: no answer" % target)
		if await conn.closed_within(0.5):
			notes.append("%s: %s, then closed" % (target[:14], r[0]))
			continue
		await conn.send(request_bytes("GET", "/healthz", srv.port))
		try:
			nxt = await conn.response(timeout=8)
		except asyncio.TimeoutError:
			nxt = "no answer within 8 s"
		check(isinstance(nxt, tuple) and nxt[0] in (200, 503),
		      "after POST %s without Content-Length (answered %s) the connection stayed open "
		      "but the next request on it got %s: it was swallowed" % (target, r[0], nxt))
		notes.append("%s: %s, then the next request %s" % (target[:14], r[0], nxt[0]))
	await ends_well(srv)
	return "; ".join(notes)


# ======================================================================
# pipelining

async def test_pipelined_post_keeps_the_server_serving():
	"""A POST with a body pipelined behind another request (both in one
	write) must be answered, or its connection closed; either way every
	other client goes on being served and SIGTERM still ends the server.
	(libwebsockets 4.1.6 reads such a body from its buffered input, which
	still starts with the POST's own head, then loops for ever once the
	read takes nothing.)"""
	srv = await start_server(feed="none")
	reader = await SseClient.connect(srv, name="reader")
	c = await SseClient.connect(srv, name="victim")
	conn = await RawHttp.open(srv.port)
	await conn.send(request_bytes("GET", "/healthz", srv.port) +
			request_bytes("POST", send_target(c.session), srv.port,
				      b'{"op":"ping","id":"pipelined"}'))
	first = await conn.response()
	check(first is not None and first[0] in (200, 503), "the first request answered %s" % (first,))
	try:
		second = await conn.response(timeout=3)
	except asyncio.TimeoutError:
		second = "nothing"
	dt = await still_serving(srv, reader)
	if isinstance(second, tuple) and second[0] == 202:
		await c.expect("pong", id="pipelined")
	bad = errors_of(c)
	check(not bad, "the pipelined POST gave the session errors (its body was not the body "
	      "sent): %s" % summary(bad))
	took = await exit_after_sigterm(srv)
	return "second answer %s; /healthz in %.3f s; exit in %.2f s" % (
		second[0] if isinstance(second, tuple) else second, dt, took)


async def test_request_pipelined_behind_a_post_is_not_read():
	"""A POST's answer says Connection: close and ends its connection
	(README, POST): a poll pipelined behind it is not read, never half
	answered; the POST itself is served, and a poll on a new connection
	carries its reply."""
	srv = await start_server(feed="none")
	p = await PollClient.connect(srv)
	conn = await RawHttp.open(srv.port)
	await conn.send(request_bytes("POST", send_target(p.session), srv.port,
				      b'{"op":"ping","id":"pp"}') +
			request_bytes("GET", "/stream/poll?" + urllib.parse.urlencode(
				{"cursor": p.cursor, "wait_ms": 5000}), srv.port))
	a = await conn.response()
	check(a is not None and a[0] == 202, "the POST answered %s" % (a and a[0]))
	check(a[1].get("connection", "").lower() == "close", "202 without Connection: close: %s" % a[1])
	check(await conn.closed_within(5), "the connection stayed open after the POST's answer")
	status, _, answer = await p.poll(wait_ms=5000)
	check(status == 200 and any(f.get("id") == "pp" for f in answer.get("frames", [])),
	      "a poll on a new connection did not carry the pong: %s %s" % (status, summary(answer)))
	await ends_well(srv)


async def test_pipelined_poll_then_send_is_never_left_hanging():
	"""A send pipelined behind a poll that waits: both answered in order,
	or the connection closed at once (libwebsockets 4.1.6 cannot hold a
	request behind one in flight; README, Pipelining). Never an answer
	lost while the connection stays open; the session goes on."""
	srv = await start_server(feed="none", args=["--heartbeat-ms", "60000"])
	p = await PollClient.connect(srv)
	conn = await RawHttp.open(srv.port)
	await conn.send(request_bytes("GET", "/stream/poll?" + urllib.parse.urlencode(
		{"cursor": p.cursor, "wait_ms": 3000}), srv.port) +
		request_bytes("POST", send_target(p.session), srv.port, b'{"op":"ping","id":"pq"}'))
	try:
		a = await conn.response(timeout=10)
	except asyncio.TimeoutError:
		a = "no answer and not closed"
	if a is None:
		note = "closed without answers"
	else:
		check(isinstance(a, tuple) and a[0] == 200, "the poll answered %s" % (a,))
		try:
			b = await conn.response(timeout=5)
		except asyncio.TimeoutError:
			b = "no answer and not closed"
		check(b is None or (isinstance(b, tuple) and b[0] == 202),
		      "the send behind the poll: %s" % (b,))
		note = "poll %s, send %s" % (a[0], "closed" if b is None else b[0])
	await still_serving(srv)
	# The session is whole: its requests are answered on its polls.
	await p.ping_ok()
	await ends_well(srv)
	return note


# ======================================================================
# floods

@over_transports("sse", "poll", timeout=40)
async def post_flood_is_rate_limited_then_closed_1008(transport):
	"""Requests far over --rate-limit while the client reads its stream
	(an SSE response, or a poll always waiting, as a client does): the
	ones over the rate get rate_limited errors with their ids, sustained
	abuse ends the session with close 1008, and then it is gone (404)."""
	srv = await start_server(feed="none", args=["--rate-limit", "5", "--rate-burst", "10"])
	cls = SseClient if transport == "sse" else PollClient
	c = await cls.connect(srv, name="flood")
	other = await cls.connect(srv, name="other")
	reading = asyncio.create_task(c.drain_until_closed(timeout=20))
	await asyncio.sleep(0.2)
	conn = await RawHttp.open(srv.port)
	statuses = []
	for i in range(60):
		await conn.send(request_bytes("POST", send_target(c.session), srv.port,
					      json.dumps({"op": "ping", "id": i}).encode()))
		r = await conn.response()
		if r is None:
			conn = await RawHttp.open(srv.port)
			continue
		statuses.append(r[0])
	msgs, code = await reading
	limited = [m for m in c.log if m.get("type") == "error" and m.get("code") == "rate_limited"]
	pongs = [m for m in c.log if m.get("type") == "pong"]
	check(limited, "60 requests at --rate-limit 5 --rate-burst 10 got no rate_limited error "
	      "(%d pongs, end %s); statuses %s" % (len(pongs), code, sorted(set(statuses))))
	check(all(isinstance(m.get("id"), int) for m in limited),
	      "rate_limited errors without the request's id: %s" % summary(limited[:3]))
	check(code == 1008, "the flooding session ended with %s, want a close frame with 1008" % code)
	last = c.log[-1]
	check(last.get("type") == "close" and last.get("code") == 1008 and last.get("reason"),
	      "the last frame is %s, want close 1008 with a reason" % summary(last))
	# The session is gone: a request for it is 404, and others are served.
	status, _, body = await c.post({"op": "ping", "id": "late"})
	check(status == 404 and b"unknown_session" in body,
	      "a POST to the session closed for abuse answered %s %r, want 404 unknown_session"
	      % (status, body[:200]))
	await ends_well(srv, other)
	return "%d pongs, %d rate_limited, then close 1008; statuses %s" % (
		len(pongs), len(limited), sorted(set(statuses)))


async def test_ticket_flood_is_bounded():
	"""10,000 unused tickets at most: the next is refused with 503, memory
	stays small, one ticket used makes room for one more."""
	srv = await start_server(feed="none")
	rss0 = srv.rss_kb()
	one = request_bytes("POST", "/stream/ticket", srv.port, b"")

	async def ask():
		# Every POST ends its connection (README, POST).
		conn = await RawHttp.open(srv.port)
		await conn.send(one)
		r = await conn.response()
		conn.abort()
		return r

	tickets, t0 = [], time.monotonic()
	while len(tickets) < 10000:
		r = await ask()
		check(r is not None and r[0] == 200, "ticket %d: %s" % (len(tickets) + 1, r and r[:2]))
		tickets.append(json.loads(r[2])["ticket"])
	dt = time.monotonic() - t0
	check(len(set(tickets)) == len(tickets), "tickets repeat")
	status, headers, body = await ask()
	check(status == 503 and one_line(body), "ticket 10,001 answered %s %r, want 503 with a reason"
	      % (status, body[:200]))
	check(headers.get("retry-after"), "503 without Retry-After: %s" % headers)
	rss1 = srv.rss_kb()
	check(sanitized(srv) or rss1 - rss0 < 16 * 1024,
	      "10,000 tickets took the server from %d to %d kB" % (rss0, rss1))
	# A ticket used is room for one more.
	sse = await SseClient.connect(srv, query={"ticket": tickets[0]})
	await sse.ping_ok()
	status, _, body = await stream_request(srv.port, "POST", "/stream/ticket", b"")
	check(status == 200, "after one ticket was used the next answered %s %r" % (status, body[:100]))
	await ends_well(srv)
	return "10,000 tickets in %.1f s; RSS %d -> %d kB" % (dt, rss0, rss1)


test_ticket_flood_is_bounded.timeout = 90


# ======================================================================
# cursors and arguments

@over_transports("sse", "poll")
async def malformed_cursors_start_new_sessions_and_leave_the_session_alone(transport):
	srv = await start_server(feed="none", args=["--stream-linger-secs", "30"])
	owner = await SseClient.connect(srv, name="owner")
	key = owner.session
	junk = ["garbage", key, key + ":", key + ":abc", key + ":-1", key + ":+1", key + ": 1",
		key + ":1x", key + ":1:2", key.upper() + ":1", key[:-1] + ":1", "x" * 2000,
		key + ":99999999999999999999999", ":1", "%00" + key + ":1"]
	seen = set()
	for bad in junk:
		if transport == "sse":
			c = await SseClient.connect(srv, name="junk", cursor=bad)
			stream = c.stream
			c.drop()
		else:
			c = PollClient(srv, "junk")
			c.cursor = bad
			status, _, a = await c.poll(wait_ms=0)
			check(status == 200, "cursor %r: %s %s" % (bad[:60], status, summary(a)))
			stream = a["frames"][0] if a["frames"] else {}
		check(stream.get("type") == "stream" and stream.get("resumed") is False
		      and stream.get("session") != key,
		      "cursor %r got %s, want a new session (resumed:false)" % (bad[:60], summary(stream)))
		seen.add(stream.get("session"))
	check(len(seen) == len(junk), "junk cursors shared sessions")
	# Last-Event-ID junk, as a broken proxy or client might send.
	for bad in ("junk", "x" * 3000, key + ":1\x01"):
		c = await SseClient.connect(srv, name="lei", last_event_id=bad)
		check(c.stream.get("resumed") is False and c.stream.get("session") != key,
		      "Last-Event-ID %r got %s" % (bad[:40], summary(c.stream)))
		c.drop()
	# The session they named is untouched.
	await owner.ping_ok()
	owner.drop()
	stream = await owner.reconnect()
	check(stream.get("resumed") is True and stream.get("session") == key,
	      "the owner came back with its own cursor after the junk and got %s" % summary(stream))
	await owner.ping_ok()
	await ends_well(srv, owner)
	return "%d junk cursors, each a new session" % len(junk)


async def test_cursor_zero_sends_every_retained_frame_again():
	srv = await start_server(feed="none")
	c = await SseClient.connect(srv)
	await c.ping_ok()
	key = c.session
	again = await SseClient.connect(srv, name="again", cursor=key + ":0", expect_hello=False)
	check(again.stream.get("resumed") is True and again.stream.get("session") == key,
	      "cursor KEY:0 with every frame retained got %s, want resumed:true" % summary(again.stream))
	hello = await again.expect("hello", what="frame 1 (the hello) sent again")
	await again.expect("pong")
	ids = [i for i, _, data in again.events if '"hello"' in data]
	check(ids == [key + ":1"], "the hello sent again has ids %s, want [%s:1]" % (ids, key))
	await again.ping_ok()
	await ends_well(srv, again)
	return "hello again: %s" % summary(hello, 80)


async def test_cursor_that_cannot_be_continued_acknowledges_nothing():
	"""A poll with a cursor of a live session but a number beyond what
	was sent cannot continue it (a new session); it must not throw away
	the frames the session keeps for its own client, which may come back
	with any cursor it really holds."""
	srv = await start_server(feed="none")
	c = await SseClient.connect(srv)
	key = c.session
	for i in range(3):
		await c.ping_ok()
	held = key + ":1"  # as if the response had been cut after the hello
	p = PollClient(srv, "future")
	p.cursor = key + ":999999"
	status, _, a = await p.poll(wait_ms=0)
	check(status == 200 and a["frames"] and a["frames"][0].get("resumed") is False,
	      "a cursor beyond the last frame: %s %s" % (status, summary(a)))
	c.drop()
	back = await SseClient.connect(srv, name="back", cursor=held, expect_hello=False)
	check(back.stream.get("resumed") is True and back.stream.get("session") == key,
	      "after a poll with %s:999999, the session's own client came back with %s and got %s, "
	      "want resumed:true with frames 2.. again: the bad cursor acknowledged (dropped) the "
	      "frames kept for it" % (key[:8], held[-10:], summary(back.stream)))
	await back.expect("pong", what="the first pong sent again")
	await ends_well(srv, back)


async def test_cursor_with_junk_after_the_number_is_not_taken():
	"""KEY:0000…02junk is not a cursor (the server must not cut it to
	KEY:0000…02 and continue the session)."""
	srv = await start_server(feed="none")
	c = await SseClient.connect(srv)
	await c.ping_ok()
	key = c.session
	bad = key + ":" + "0" * 37 + "2" + "junk"
	other = await SseClient.connect(srv, name="junk", cursor=bad, expect_hello=False)
	check(other.stream.get("resumed") is False and other.stream.get("session") != key,
	      "cursor %r was taken as %s:2 (%s), want a new session" % (bad, key[:8],
									 summary(other.stream)))
	await ends_well(srv)


async def test_wait_ms_out_of_range_is_clamped():
	srv = await start_server(feed="none", args=["--heartbeat-ms", "2000"])
	p = await PollClient.connect(srv)
	notes = []
	for w, lo, hi in (("-5", 0, 1.5), ("-99999999999999999999", 0, 1.5),
			  ("99999999999999999999999", 1.0, 10), ("9223372036854775807", 1.0, 10),
			  ("1000", 0.5, 5)):
		t0 = time.monotonic()
		status, _, a = await p.poll(wait_ms=w, timeout=70)
		dt = time.monotonic() - t0
		check(status == 200, "wait_ms=%s answered %s %r" % (w, status, a))
		check(lo <= dt <= hi, "wait_ms=%s answered after %.2f s, want %.1f..%.1f s (negative: "
		      "at once; huge: clamped, then the heartbeat of 2 s)" % (w, dt, lo, hi))
		p.take(a, p.cursor)
		notes.append("%s: %.2f s" % (w[:8], dt))
	await ends_well(srv)
	return "; ".join(notes)


async def test_wait_ms_that_is_not_a_number_is_400():
	"""wait_ms=abc is a client's mistake: 400 naming the argument, as
	/api does for an invalid value, not a poll answered at once (which
	turns the client's loop into a busy one)."""
	srv = await start_server(feed="none")
	p = await PollClient.connect(srv)
	for w in ("abc", "", "1e3", "12ms"):
		status, _, a = await p.poll(wait_ms=w, timeout=10)
		text = a if isinstance(a, bytes) else a.get("_body", "").encode()
		check(status == 400 and b"wait_ms" in text and one_line(text),
		      "wait_ms=%r answered %s %r, want 400 naming wait_ms" % (w, status, text[:200]))
	await ends_well(srv)


# ======================================================================
# one session, several requests

async def test_updates_held_by_max_hz_go_out_after_a_reconnect():
	"""An update held back by max_hz when the SSE response is cut goes out
	on the response that resumes the session once its time comes, not
	at the next tick or heartbeat (the wake is not tied to a request)."""
	srv = await start_server(args=["--heartbeat-ms", "30000"])
	await srv.send_ticks([tick("HZ", bid="1.000", ask="1.010")])
	c = await SseClient.connect(srv)
	await c.subscribe(["HZ"], max_hz=1)
	await c.wait_seq("HZ", 1)
	t0 = time.monotonic()
	await srv.send_ticks([tick("HZ", bid="1.001")])  # held until ~1 s after the snapshot
	await asyncio.sleep(0.2)
	check(c.state["HZ"]["seq"] == 1, "max_hz 1 let the second update out at once")
	c.drop()
	stream = await c.reconnect()
	check(stream.get("resumed") is True, "reconnect: %s" % summary(stream))
	try:
		await c.wait_seq("HZ", 2, timeout=5)
	except AssertionError:
		raise AssertionError("the update held by max_hz 1 had not come %.1f s after the snapshot, "
				     "on a session resumed 0.2 s after it (heartbeat 30 s, no further "
				     "tick)" % (time.monotonic() - t0))
	dt = time.monotonic() - t0
	await ends_well(srv, c)
	return "the held update came %.2f s after the snapshot" % dt


async def test_two_sse_on_one_cursor_the_older_ends_cleanly():
	srv = await start_server(feed="none")
	a = await SseClient.connect(srv, name="older")
	await a.ping_ok()
	key = a.session
	b = await SseClient.connect(srv, name="newer", cursor=a.cursor, expect_hello=False)
	check(b.stream.get("resumed") is True and b.stream.get("session") == key,
	      "the second stream on the cursor got %s" % summary(b.stream))
	t0 = time.monotonic()
	code = await a.wait_closed(timeout=5)
	dt = time.monotonic() - t0
	check(code is not None, "the older stream was still open 5 s after another took its session")
	await b.ping_ok()
	after = [m for m in a.log if m.get("type") == "pong"]
	check(len(after) == 1, "the older stream got pongs after it was taken over: %s"
	      % summary(after))
	# The session's connection count is one, not two.
	n = await metric_value(srv, 'publisher_stream_sessions{transport="sse"}')
	check(n == 1, "publisher_stream_sessions{sse} %s with one session taken over" % n)
	await ends_well(srv, b)
	return "the older ended %.3f s after the takeover" % dt


async def test_poll_and_sse_on_one_session_take_turns_and_lose_nothing():
	srv = await start_server(feed="none", args=["--heartbeat-ms", "60000"])
	s = await SseClient.connect(srv, name="sse")
	key = s.session
	await s.ping_ok()
	# A poll with the SSE's cursor takes the session: the SSE ends.
	p = PollClient(srv, "poll")
	p.cursor = s.cursor
	await s.send({"op": "ping", "id": "to-poll"})
	status, _, a = await p.poll(wait_ms=3000)
	check(status == 200, "the poll on the SSE's session: %s" % status)
	p.take(a, s.cursor)
	code = await s.wait_closed(5)
	check(code is not None, "the SSE stayed open after a poll took its session")
	got = [m for m in s.log + p.log if m.get("id") == "to-poll"]
	check(len(got) >= 1, "the pong of a ping sent while the session changed hands was lost")
	# An SSE with the poll's cursor while a poll waits: the poll is
	# answered at once with nothing, the SSE carries on.
	waiting = asyncio.create_task(p.poll(wait_ms=20000))
	await asyncio.sleep(0.5)
	s2 = await SseClient.connect(srv, name="sse2", cursor=p.cursor, expect_hello=False)
	check(s2.stream.get("resumed") is True and s2.stream.get("session") == key,
	      "SSE after the poll: %s" % summary(s2.stream))
	t0 = time.monotonic()
	status, _, w = await asyncio.wait_for(waiting, 10)
	check(status == 200 and w["frames"] == [], "the waiting poll answered %s %s, want no frames"
	      % (status, summary(w)))
	await s2.ping_ok()
	pongs = [m.get("id") for m in s.log + p.log + s2.log if m.get("type") == "pong"]
	check(pongs.count("to-poll") == 1, "pongs seen %s" % pongs)
	await ends_well(srv, s2)
	return "waiting poll answered %.2f s after the SSE came" % (time.monotonic() - t0)


# ======================================================================
# limits

async def test_max_connections_counts_lingering_sessions_until_they_expire():
	srv = await start_server(feed="none", args=["--max-connections", "3",
						    "--stream-linger-secs", "2"])
	held = [await PollClient.connect(srv, name="p%d" % i) for i in range(3)]
	for i, how in enumerate(("sse", "poll")):
		try:
			c = await connect_transport(srv, how, name="fourth-" + how)
		except Refused as e:
			check(e.status == 503 and one_line(e.body) and e.headers.get("retry-after"),
			      "a fourth %s session: %s %r, headers %s" % (how, e.status, e.body, e.headers))
		else:
			raise AssertionError("a fourth %s session was admitted with --max-connections 3 (3 "
					     "lingering poll sessions): %s" % (how, summary(c.stream)))
	t0 = time.monotonic()
	while True:
		n = await metric_value(srv, "publisher_connections ")
		if n == 0:
			break
		check(time.monotonic() - t0 < 15, "lingering sessions still counted (%s) %.0f s after "
		      "their last poll, linger 2 s" % (n, time.monotonic() - t0))
		await asyncio.sleep(0.25)
	freed = time.monotonic() - t0
	c = await SseClient.connect(srv, name="after")
	await c.ping_ok()
	del held
	await ends_well(srv, c)
	return "slots freed %.1f s after the last poll (linger 2 s)" % freed


test_max_connections_counts_lingering_sessions_until_they_expire.timeout = 40


async def test_refused_admission_does_not_use_up_the_ticket():
	"""503 (server full) is a refusal to retry after Retry-After: the
	ticket it came with must still be good for the retry."""
	srv, secret = await auth_server(args=["--max-connections", "1", "--stream-linger-secs", "1"])
	tok = token(secret)
	holder = await PollClient.connect(srv, name="holder", headers={"Authorization": "Bearer " + tok})
	t = await get_ticket(srv, tok)
	try:
		c = await SseClient.connect(srv, name="refused", query={"ticket": t})
	except Refused as e:
		check(e.status == 503, "with the one slot taken: %s %r" % (e.status, e.body))
	else:
		raise AssertionError("admitted past --max-connections 1: %s" % summary(c.stream))
	del holder
	deadline = time.monotonic() + 15
	while await metric_value(srv, "publisher_connections ") != 0:
		check(time.monotonic() < deadline, "the holder's session did not expire")
		await asyncio.sleep(0.25)
	try:
		c = await SseClient.connect(srv, name="retry", query={"ticket": t})
	except Refused as e:
		raise AssertionError("the retry with the ticket of the 503 answered %s %r: the refusal "
				     "used the ticket up" % (e.status, e.body))
	await c.ping_ok()
	await ends_well(srv, c)


# ======================================================================
# clients that stop reading, half-close or reset

async def test_stalled_sse_at_a_high_feed_rate_keeps_memory_bounded():
	"""A client subscribed to everything that never reads, at 50,000
	ticks/s over 500 symbols, for a minute: the server's memory stays
	flat (its updates merge in the engine), a reader keeps receiving,
	and the stalled response is dropped once it took nothing for 60 s."""
	# No store: its cache grows for half a minute at this rate whoever
	# the clients are, and would hide what a client costs.
	srv = await start_server(feed="synthetic:symbols=500,rate=50000,seed=7",
				 args=["--stream-linger-secs", "2", "--db", "none"])
	stalled = await connect_transport(srv, "sse", name="stalled", slow=True)
	await stalled.send({"op": "subscribe", "symbols": ["*"], "id": 1})
	reader = await connect_transport(srv, "poll", name="reader")
	await reader.subscribe(["*"])
	samples = []
	t0 = time.monotonic()
	gone_at = None
	while time.monotonic() - t0 < 90:
		await reader.collect(2.0)
		samples.append((time.monotonic() - t0, srv.rss_kb()))
		n = await metric_value(srv, 'publisher_stream_sessions{transport="sse"}')
		if n == 0 and gone_at is None:
			gone_at = time.monotonic() - t0
		if gone_at is not None and time.monotonic() - t0 > 65:
			break
	print("RSS (s, kB): %s" % ", ".join("%.0f:%d" % x for x in samples))
	# Whatever the build (sanitizers hold freed memory a while), the
	# size levels off: nothing grows over the last half minute.
	settled = [kb for t, kb in samples if 30 <= t <= 40]
	last = [kb for t, kb in samples if t > 40]
	check(settled and last, "too few samples: %s" % samples)
	check(max(last) - max(settled) < 24 * 1024, "RSS still grew %d kB after 40 s with a stalled "
	      "SSE client (samples %s)" % (max(last) - max(settled), samples[-5:]))
	# And a plain build barely grows at all once the feed runs.
	base = [kb for t, kb in samples if 8 <= t <= 14]
	grow = max(kb for _, kb in samples) - max(base)
	check(sanitized(srv) or grow < 16 * 1024, "RSS grew %d kB after the first 14 s with a "
	      "stalled SSE client (samples %s)" % (grow, samples[-5:]))
	check(reader.updates, "the reader got no update")
	check(gone_at is not None, "the stalled SSE response was not dropped within %.0f s"
	      % (time.monotonic() - t0))
	await ends_well(srv)
	return "RSS %d kB at 8-14 s, max %d kB after; the stalled session gone at %.0f s" % (
		max(base), max(kb for _, kb in samples), gone_at)


test_stalled_sse_at_a_high_feed_rate_keeps_memory_bounded.timeout = 150


async def _figures(srv):
	"""CPU of the server over 3 s (cores) and how long /healthz took."""
	share = await cpu_share(srv, 3.0)
	hz = await healthz_answers(srv)
	return share, hz


@over_transports("sse", "poll", timeout=60)
async def half_close_or_reset_does_not_make_the_server_spin(transport):
	"""A client that half-closes (shutdown SHUT_WR) or resets its
	connection in the middle of a response (an SSE stream, a poll that
	waits), or a stalled SSE client that half-closes: CPU stays low,
	/healthz answers, another client keeps receiving, the session lingers
	and can be taken up again."""
	srv = await start_server(feed="synthetic:symbols=100,rate=5000,seed=5",
				 args=["--stream-linger-secs", "30"])
	reader = await connect_transport(srv, "sse", name="reader")
	await reader.subscribe(["*"])
	# What serving the feed and the reader costs, to compare with.
	base, _ = await _figures(srv)
	figures = ["before: CPU %.2f" % base]
	for how in ("half-close", "reset", "stalled-half-close"):
		if transport == "poll" and how == "stalled-half-close":
			continue
		conn = await RawHttp.open(srv.port, rcvbuf=4096 if how.startswith("stalled") else None)
		if transport == "sse":
			await conn.send(request_bytes("GET", "/stream/events", srv.port))
			status, _, _ = await conn.response(head_only=True)
			check(status == 200, "GET /stream/events: %s" % status)
			data = b""
			while b'"hello"' not in data:
				more = await conn.read_some(5)
				check(more, "the stream ended before its hello")
				data += more
			key = re.search(rb'"session":"([0-9a-f]{32})"', data).group(1).decode()
			cursor = re.findall(rb"id: ([0-9a-f]{32}:\d+)", data)[-1].decode()
			status, _, _ = await stream_request(srv.port, "POST", send_target(key),
							    b'{"op":"subscribe","symbols":["*"],"id":1}')
			check(status == 202, "subscribe: %s" % status)
			if not how.startswith("stalled"):
				await conn.read_some(0.3)
		else:
			p = await PollClient.connect(srv, name="p-" + how)
			status, _, _ = await stream_request(srv.port, "POST", send_target(p.session),
							    b'{"op":"ping","id":"x"}')
			_, _, a = await p.poll(wait_ms=0)
			p.take(a, p.cursor)
			key, cursor = p.session, p.cursor
			await conn.send(request_bytes("GET", "/stream/poll?" + urllib.parse.urlencode(
				{"cursor": cursor, "wait_ms": 20000}), srv.port))
			await asyncio.sleep(0.3)  # the poll waits (nothing is due)
		if how == "reset":
			conn.reset()
		else:
			conn.half_close()
		await asyncio.sleep(0.5)
		share, hz = await _figures(srv)
		figures.append("%s: CPU %.2f, /healthz %.0f ms" % (how, share, hz * 1000))
		check(share < base + 0.5, "after a %s %s the server used %.2f cores for 3 s, %.2f "
		      "before (it spins)" % (transport, how, share, base))
		before = len(reader.updates)
		await reader.collect(1.0)
		check(len(reader.updates) > before, "the reader got nothing after a %s %s" % (transport, how))
		conn.abort()
		# The session is still there for its client.
		if transport == "sse":
			back = await SseClient.connect(srv, name="back", cursor=cursor, expect_hello=False)
			check(back.stream.get("resumed") is True and back.stream.get("session") == key,
			      "after a %s the SSE client came back and got %s" % (how, summary(back.stream)))
			back.drop()
		else:
			_, _, a = await p.poll(wait_ms=0)
			check(a["cursor"].startswith(key + ":"), "after a %s the poll's session is gone: %s"
			      % (how, summary(a)))
	await ends_well(srv, reader)
	return "; ".join(figures)


# ======================================================================
# methods

async def test_other_methods_on_stream_endpoints_are_405():
	srv = await start_server(feed="none")
	key = (await PollClient.connect(srv)).session
	n0 = await metric_value(srv, "publisher_connections ")
	bad = []
	for method, target in (("HEAD", "/stream/events"), ("HEAD", "/stream/poll"),
			       ("PUT", send_target(key)), ("DELETE", "/stream/poll"),
			       ("PATCH", send_target(key)), ("GET", send_target(key)),
			       ("POST", "/stream/events"), ("GET", "/stream/ticket")):
		body = b'{"op":"ping","id":"m"}' if method in ("PUT", "PATCH", "POST") else None
		conn = await RawHttp.open(srv.port)
		await conn.send(request_bytes(method, target, srv.port, body,
					      headers={"Connection": "close"}))
		r = await conn.response(head_only=method == "HEAD")
		conn.abort()
		if r is None:
			bad.append("%s %s: closed without an answer" % (method, target[:20]))
			continue
		status, headers, text = r
		if status != 405 or not headers.get("allow") or (method != "HEAD" and (
				method.encode() not in text or not one_line(text))):
			bad.append("%s %s: %s allow=%r %r" % (method, target[:20], status,
							       headers.get("allow"), text[:90]))
	n1 = await metric_value(srv, "publisher_connections ")
	check(n1 == n0, "requests with other methods opened sessions: %s -> %s" % (n0, n1))
	check(not bad, "want 405 with Allow and a line naming the method: %s" % "; ".join(bad))
	await ends_well(srv)


async def test_cors_preflight_from_an_allowed_origin_is_answered():
	"""A page of an origin admitted by --allow-origin that asks for a
	ticket with an Authorization header makes the browser send a
	preflight (OPTIONS) first; without an answer the browser never
	sends the POST."""
	origin = "http://app.example"
	srv = await start_server(feed="none", args=["--allow-origin", origin])
	conn = await RawHttp.open(srv.port)
	await conn.send(request_bytes("OPTIONS", "/stream/ticket", srv.port, headers={
		"Origin": origin, "Access-Control-Request-Method": "POST",
		"Access-Control-Request-Headers": "authorization"}))
	r = await conn.response()
	check(r is not None, "the preflight: closed without an answer")
	status, headers, body = r
	check(status in (200, 204) and headers.get("access-control-allow-origin") == origin
	      and "authorization" in headers.get("access-control-allow-headers", "").lower()
	      and "POST" in headers.get("access-control-allow-methods", ""),
	      "OPTIONS /stream/ticket from %s answered %s %s %r" % (origin, status, headers, body[:120]))
	await ends_well(srv)


# ======================================================================
# tokens

@over_transports("sse", "poll", timeout=60)
async def token_expiry_ends_the_stream_with_4001(transport):
	"""A token that runs out while its stream is open (here: within its
	30 s of leeway) ends the stream with a close frame 4001; the session
	is gone afterwards."""
	srv, secret = await auth_server()
	tok = token(secret, exp_in=-27)  # inside the 30 s leeway for 3 s more
	cls = SseClient if transport == "sse" else PollClient
	c = await cls.connect(srv, headers={"Authorization": "Bearer " + tok})
	await c.ping_ok()
	t0 = time.monotonic()
	msgs, code = await c.drain_until_closed(timeout=20)
	dt = time.monotonic() - t0
	check(code == 4001, "the stream of a token that ran out ended with %s, want 4001" % code)
	last = c.log[-1]
	check(last.get("type") == "close" and last.get("reason"), "last frame %s" % summary(last))
	await asyncio.sleep(0.3)
	status, _, body = await c.post({"op": "ping", "id": "after"})
	check(status == 404, "a POST after 4001: %s %r, want 404" % (status, body[:100]))
	await ends_well(srv)
	return "4001 %.1f s after the first ping" % dt


async def test_session_whose_token_ran_out_while_lingering_cannot_be_resumed():
	"""The token runs out while no request carries the session: the
	client that comes back with its cursor gets the close frame 4001, not
	the session's data."""
	srv, secret = await auth_server(args=["--stream-linger-secs", "60"])
	tok = token(secret, exp_in=-28)
	c = await SseClient.connect(srv, headers={"Authorization": "Bearer " + tok})
	await c.ping_ok()
	c.drop()
	await asyncio.sleep(5)  # the token's leeway runs out meanwhile
	stream = await c.open(cursor=c.cursor, expect_hello=False)
	msgs, code = await c.drain_until_closed(timeout=10)
	check(code == 4001, "back with the cursor after the token ran out: stream %s, then %s; "
	      "want close 4001" % (summary(stream), code))
	check(not [m for m in msgs if m.get("type") not in ("stream", "close", "heartbeat")],
	      "frames of the session before the 4001: %s" % summary(msgs))
	await ends_well(srv)


test_session_whose_token_ran_out_while_lingering_cannot_be_resumed.timeout = 60


# ======================================================================
# a new epoch

USDTHB = os.path.join(REPO, "tests", "data", "usdthb-1997.csv")


async def test_new_epoch_closes_attached_and_lingering_sessions_with_1012():
	"""A seek back in a replay starts a new epoch: the stream that is
	attached gets close 1012 as its last frame; a session lingering
	without a request gets it when its client comes back; the new
	streams they open carry the new epoch's hello."""
	with open(USDTHB) as f:
		first = int(f.readlines()[1].split(",")[0])
	srv = await start_server(feed="replay:%s,speed=2000" % USDTHB,
				 args=["--stream-linger-secs", "30"])
	a = await SseClient.connect(srv, name="attached")
	await a.subscribe(["USDTHB"])
	await a.wait_seq("USDTHB", 20, timeout=20)
	b = await PollClient.connect(srv, name="lingering")
	await b.subscribe(["USDTHB"])
	b.drop()
	old_epoch = a.hello["epoch"]
	await a.send({"op": "replay", "action": "seek", "ts": first, "id": "seek"})
	msgs, code = await a.drain_until_closed(timeout=10)
	check(code == 1012, "the attached SSE after a seek back ended with %s, want close 1012" % code)
	check(a.log[-1].get("type") == "close", "its last frame is %s" % summary(a.log[-1]))
	# The lingering poll session comes back with its cursor.
	status, _, ans = await b.poll(wait_ms=0)
	check(status == 200, "the lingering client's poll: %s" % status)
	closes = [f for f in ans["frames"] if f.get("type") == "close"]
	if not closes:
		check(ans["frames"] and ans["frames"][0].get("resumed") is False,
		      "the lingering client's poll after the new epoch got %s, want its close 1012 "
		      "(or a new session)" % summary(ans))
	else:
		check(closes[-1].get("code") == 1012 and ans["frames"][-1] is closes[-1],
		      "the lingering session ended with %s" % summary(ans["frames"][-3:]))
	fresh = await SseClient.connect(srv, name="fresh")
	check(fresh.hello["epoch"] != old_epoch, "a new stream after the seek back is still in "
	      "epoch %s" % old_epoch)
	await ends_well(srv, fresh)
	return "lingering session: %s" % ("close %s" % closes[-1]["code"] if closes else "new session")


# ======================================================================
# shutdown

async def test_sigterm_with_hostile_clients_exits_0():
	"""SIGTERM with a stalled SSE client, a half-sent POST body, a poll
	that waits, a lingering session and a half-closed stream: exit 0
	within 5 s, the waiting poll answered with close 1001."""
	srv = await start_server(feed="synthetic:symbols=200,rate=20000,seed=9",
				 args=["--stream-linger-secs", "30"])
	stalled = await connect_transport(srv, "sse", name="stalled", slow=True)
	await stalled.send({"op": "subscribe", "symbols": ["*"], "id": 1})
	lingering = await SseClient.connect(srv, name="lingering")
	lingering.drop()
	half = await RawHttp.open(srv.port)
	await half.send(request_bytes("GET", "/stream/events", srv.port))
	await half.response(head_only=True)
	half.half_close()
	poster = await RawHttp.open(srv.port)
	await poster.send(request_bytes("POST", send_target(stalled.session), srv.port,
					b'{"op":"ping"', headers={"Content-Length": "100"}))
	p = await PollClient.connect(srv, name="waiting")
	waiting = asyncio.create_task(p.poll(wait_ms=30000))
	await asyncio.sleep(1.0)
	t0 = time.monotonic()
	srv.proc.send_signal(signal.SIGTERM)
	status, _, a = await asyncio.wait_for(waiting, 10)
	rc = await srv.wait_exit(5)
	dt = time.monotonic() - t0
	check(rc == 0, "exit code %s after SIGTERM (None: still running after 5 s)" % rc)
	check(status == 200 and any(f.get("type") == "close" and f.get("code") == 1001
				    for f in a["frames"]),
	      "the waiting poll got %s %s, want a close frame 1001" % (status, summary(a)))
	return "exited in %.2f s" % dt

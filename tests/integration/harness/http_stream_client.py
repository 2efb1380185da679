"""Clients for the HTTP stream transports, with the interface tests use for
a WebSocket Client: request(), expect(), recv_json(), wait_seq(), the
client-side state, plus drop() (the connection goes, the session lingers),
reconnect() (back with the cursor) and resubscribe().

    SseClient   GET /stream/events: one event per server frame (`id:` the
                cursor, `data:` the frame); reconnects with ?cursor= or
                with Last-Event-ID, as a browser's EventSource does.
    PollClient  a loop of GET /stream/poll?cursor=C, one poll per wait for
                frames; nothing is polled while the test does not read.
    both        requests as POST /stream/send?session=KEY, the reply on
                the stream.

HTTP is spoken by hand over asyncio streams (the standard library only), on
a connection per request, so a test sees exactly what went on the wire:
every response's status and headers are kept in `responses`. stream_request()
is one request outside a session (tickets, refusals)."""

import asyncio
import codecs
import json
import re
import socket
import time
import urllib.parse

from .checks import Decimal, check, summary
from .client import Client, Closed

# KEY:N, KEY 32 lowercase hex characters, N counting from 1.
CURSOR_RE = re.compile(r"[0-9a-f]{32}:[1-9][0-9]*")

# What a client's reader holds before the socket is left unread: a stalled
# client (rcvbuf set) keeps this small so that not reading pushes back.
READ_LIMIT = 64 * 1024
STALLED_READ_LIMIT = 1024


class Refused(AssertionError):
	"""A stream request answered with a status other than the one wanted."""

	def __init__(self, what, status, headers, body):
		AssertionError.__init__(self, "%s answered %s %r" % (what, status, body[:200]))
		self.status = status
		self.headers = headers
		self.body = body


# ------------------------------------------------------------------- HTTP

class HttpExchange:
	"""One HTTP/1.1 request on a connection of its own (Connection: close),
	its response head, and its body as it comes: Content-Length, chunked,
	or up to the end of the connection."""

	def __init__(self, reader, writer, what):
		self.reader = reader
		self.writer = writer
		self.what = what
		self.status = None
		self.headers = {}
		self.done = False
		self._raw = b""
		self._eof = False
		self._mode = None
		self._left = 0
		self._need_crlf = False

	@classmethod
	async def open(cls, port, method, target, headers=None, body=None, rcvbuf=None,
		       limit=READ_LIMIT, timeout=5.0):
		"""Connect, write the request and read the response head. Raises
		ConnectionError (refused, reset) or asyncio.TimeoutError."""
		sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
		if rcvbuf is not None:
			# Set before connect, so the TCP window stays small.
			sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
		sock.setblocking(False)
		loop = asyncio.get_running_loop()
		try:
			await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), timeout)
			reader, writer = await asyncio.open_connection(sock=sock, limit=limit)
		except BaseException:
			sock.close()
			raise
		x = cls(reader, writer, "%s %s" % (method, target))
		h = {"Host": "127.0.0.1:%d" % port, "Connection": "close"}
		h.update(headers or {})
		if body is not None:
			if isinstance(body, str):
				body = body.encode()
			h.setdefault("Content-Length", str(len(body)))
		head = "%s %s HTTP/1.1\r\n" % (method, target)
		head += "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
		try:
			writer.write(head.encode("latin-1") + (body or b""))
			await asyncio.wait_for(x._read_head(method), timeout)
		except BaseException:
			x.abort()
			raise
		return x

	async def _fill(self):
		data = await self.reader.read(65536)
		if not data:
			self._eof = True
		self._raw += data

	async def _read_head(self, method):
		while b"\r\n\r\n" not in self._raw:
			if self._eof:
				raise ConnectionError("%s: the connection closed before a response (%r)"
						      % (self.what, self._raw[:200]))
			await self._fill()
		head, _, self._raw = self._raw.partition(b"\r\n\r\n")
		lines = head.decode("latin-1").split("\r\n")
		m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
		if not m:
			raise AssertionError("%s: not an HTTP status line: %r" % (self.what, lines[0]))
		self.status = int(m.group(1))
		for line in lines[1:]:
			k, _, v = line.partition(":")
			k = k.strip().lower()
			self.headers[k] = (self.headers[k] + ", " if k in self.headers else "") + v.strip()
		if method == "HEAD" or self.status in (204, 304) or self.status < 200:
			self._mode, self.done = "length", True
		elif "chunked" in self.headers.get("transfer-encoding", "").lower():
			self._mode = "chunked"
		elif "content-length" in self.headers:
			self._mode, self._left = "length", int(self.headers["content-length"])
			self.done = self._left == 0
		else:
			self._mode = "close"

	def _take(self):
		"""Body bytes decodable from what was read so far."""
		if self._mode == "length":
			n = min(self._left, len(self._raw))
			out, self._raw = self._raw[:n], self._raw[n:]
			self._left -= n
			self.done = self._left == 0
			return out
		if self._mode == "close":
			out, self._raw = self._raw, b""
			return out
		out = b""
		while not self.done:
			if self._left:
				n = min(self._left, len(self._raw))
				out += self._raw[:n]
				self._raw = self._raw[n:]
				self._left -= n
				if self._left:
					return out
				self._need_crlf = True
			if self._need_crlf:
				if len(self._raw) < 2:
					return out
				if self._raw[:2] != b"\r\n":
					raise AssertionError("%s: chunk not followed by CRLF: %r"
							     % (self.what, self._raw[:20]))
				self._raw, self._need_crlf = self._raw[2:], False
			i = self._raw.find(b"\r\n")
			if i < 0:
				return out
			size = int(self._raw[:i].split(b";")[0].strip() or b"0", 16)
			self._raw = self._raw[i + 2:]
			if size == 0:
				self.done = True
			self._left = size
		return out

	async def read_some(self):
		"""Body bytes as they arrive (at least one), b"" at the body's end.
		Raises ConnectionError when the connection ends inside a body whose
		length was announced."""
		while True:
			out = self._take()
			if out or self.done:
				return out
			if self._eof:
				if self._mode == "close":
					self.done = True
					return b""
				raise ConnectionError("%s: the connection closed inside the body" % self.what)
			await self._fill()

	async def read_all(self, timeout=5.0):
		async def all_of_it():
			out = b""
			while True:
				chunk = await self.read_some()
				if not chunk:
					return out
				out += chunk
		try:
			return await asyncio.wait_for(all_of_it(), timeout)
		finally:
			self.abort()

	def abort(self):
		try:
			self.writer.transport.abort()
		except Exception:
			pass


async def stream_request(port, method, target, body=None, headers=None, timeout=5.0):
	"""One request: (status, {lower-case header: value}, body bytes)."""
	x = await HttpExchange.open(port, method, target, headers=headers, body=body, timeout=timeout)
	data = await x.read_all(timeout)
	return x.status, x.headers, data


def _target(path, params):
	params = {k: v for k, v in (params or {}).items() if v is not None}
	return path + ("?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
		       if params else "")


# ------------------------------------------------- the common client part

class TrackedClient(Client):
	"""A Client that remembers what it subscribed to, so that after a new
	session (a new WebSocket, a stream that did not resume) it resubscribes
	with `resume` as a dashboard does, and starts over on another epoch."""

	transport = None

	def __init__(self, ws, name):
		Client.__init__(self, ws, name)
		self.subscribed = set()

	async def subscribe(self, symbols, timeout=5.0, **extra):
		r = await Client.subscribe(self, symbols, timeout, **extra)
		self.subscribed.update(symbols)
		return r

	async def unsubscribe(self, symbols, timeout=5.0):
		r = await self.request({"op": "unsubscribe", "symbols": list(symbols)}, timeout)
		if r.get("type") != "unsubscribed":
			raise AssertionError("%s: unsubscribe %s answered %s" % (self.name, symbols, summary(r)))
		self.subscribed.difference_update(symbols)
		return r

	def new_session(self, hello):
		"""Take the hello of a new session: what was held in another
		epoch is dropped."""
		if self.hello is not None and hello.get("epoch") != self.hello.get("epoch"):
			self.state.clear()
		self.hello = hello

	async def resubscribe(self, timeout=5.0):
		"""Subscribe again to everything subscribed before, resuming from
		the seqs held."""
		if not self.subscribed:
			return None
		held = {s: st["seq"] for s, st in self.state.items()}
		return await self.subscribe(sorted(self.subscribed), timeout,
					    resume={"epoch": self.epoch, "seq": held})


class _StreamClient(TrackedClient):
	"""What SSE and long-poll share: the cursor, the session key, requests
	by POST, the close frame."""

	def __init__(self, server, name, query=None, headers=None):
		TrackedClient.__init__(self, None, name)
		self.port = server.port
		self.query = dict(query or {})       # sent on every stream GET
		self.headers = dict(headers or {})   # sent on every request
		self.cursor = None
		self.session = None
		self.stream = None                   # the last stream frame
		self.streams = []                    # every stream frame, in order
		self.closed = None                   # (code, reason) once ended
		self.responses = []                  # (request, status, headers)
		self._exchanges = set()

	def _opened(self, x):
		self.responses.append((x.what, x.status, dict(x.headers)))
		self._exchanges.add(x)

	def _take_frame(self, obj, where):
		"""One server frame as it arrives: into the queue, flattened."""
		if isinstance(obj, dict):
			if obj.get("type") == "stream":
				self.stream = obj
				self.streams.append(obj)
				if isinstance(obj.get("session"), str):
					self.session = obj["session"]
			self.queue.append(obj)
		elif isinstance(obj, list) and obj and all(isinstance(o, dict) for o in obj):
			self.queue.extend(obj)
		else:
			raise AssertionError("%s: %s frame is neither an object nor a non-empty array "
					     "of objects: %r" % (self.name, where, summary(obj, 200)))

	async def recv_json(self, timeout=5.0):
		"""As Client.recv_json(); a close frame ends the stream: it is
		logged and raises Closed with its code."""
		if not self.queue and self.closed:
			raise Closed(self.name, *self.closed)
		m = await TrackedClient.recv_json(self, timeout)
		if m.get("type") == "close":
			self.closed = (m.get("code"), m.get("reason"))
			self.drop()
			raise Closed(self.name, *self.closed)
		return m

	# ------------------------------------------------------------ send

	async def post(self, body, session=None, headers=None, timeout=5.0):
		"""POST /stream/send?session=KEY with body (str, bytes or an
		object): (status, headers, body), whatever the status."""
		if not isinstance(body, (str, bytes)):
			body = json.dumps(body)
		h = {"Content-Type": "text/plain;charset=UTF-8"}
		h.update(self.headers)
		h.update(headers or {})
		target = _target("/stream/send", {"session": session or self.session})
		x = await HttpExchange.open(self.port, "POST", target, headers=h, body=body,
					    timeout=timeout)
		self._opened(x)
		data = await x.read_all(timeout)
		self._exchanges.discard(x)
		return x.status, x.headers, data

	async def send(self, obj):
		"""Send one request; the reply comes on the stream. The POST must
		be accepted (202); a session that is gone raises Closed."""
		try:
			status, headers, body = await self.post(obj)
		except ConnectionError as e:
			err = Closed(self.name, 1006, "POST /stream/send: %s" % e)
			err.during_send = True
			raise err
		if status == 202:
			return
		if status == 404:
			err = Closed(self.name, 404, body.decode("utf-8", "replace"))
			err.during_send = True
			raise err
		raise Refused("%s: POST /stream/send" % self.name, status, headers, body)

	async def close(self):
		self.drop()

	def abort(self):
		"""For the runner's cleanup: every connection of this client goes."""
		for x in list(self._exchanges):
			x.abort()
		self._exchanges.clear()

	def _started(self, stream):
		"""Checks on the stream frame that opens a response."""
		check(isinstance(stream, dict) and stream.get("type") == "stream",
		      "%s: the first frame is not a stream frame: %s" % (self.name, summary(stream)))
		check(isinstance(stream.get("session"), str)
		      and re.fullmatch(r"[0-9a-f]{32}", stream["session"]),
		      "%s: stream frame's session is not 32 lowercase hex chars: %s"
		      % (self.name, summary(stream)))
		check(stream.get("transport") == self.transport,
		      "%s: stream frame's transport %r, want %r" % (self.name, stream.get("transport"),
								    self.transport))
		check(isinstance(stream.get("resumed"), bool),
		      "%s: stream frame's resumed is not a boolean: %s" % (self.name, summary(stream)))


# -------------------------------------------------------------------- SSE

class SseParser:
	"""The event-stream format as a browser parses it: lines end with
	CRLF, LF or CR; `data:` lines add to the data, `id:` sets the last event
	id, a blank line dispatches; `:` starts a comment."""

	def __init__(self):
		self.decoder = codecs.getincrementaldecoder("utf-8")()
		self.buf = ""
		self.data = []
		self.event = ""
		self.last_id = None
		self.comments = 0
		self.retry = None

	def feed(self, data):
		"""Returns the events completed by data: [(last id, type, data)]."""
		self.buf += self.decoder.decode(data)
		out = []
		while True:
			m = re.search(r"\r\n|\n|\r", self.buf)
			if not m:
				break
			if m.group() == "\r" and m.end() == len(self.buf):
				break  # maybe the first half of a CRLF
			line, self.buf = self.buf[:m.start()], self.buf[m.end():]
			ev = self._line(line)
			if ev is not None:
				out.append(ev)
		return out

	def _line(self, line):
		if line == "":
			data, self.data = self.data, []
			event, self.event = self.event, ""
			if not data:
				return None
			return (self.last_id, event or "message", "\n".join(data))
		if line.startswith(":"):
			self.comments += 1
			return None
		field, colon, value = line.partition(":")
		if colon and value.startswith(" "):
			value = value[1:]
		if field == "data":
			self.data.append(value)
		elif field == "id" and "\0" not in value:
			self.last_id = value
		elif field == "event":
			self.event = value
		elif field == "retry" and value.isdigit():
			self.retry = int(value)
		return None


class SseClient(_StreamClient):
	"""GET /stream/events, read as an EventSource would; the cursor is the
	last event id received."""

	transport = "sse"

	def __init__(self, server, name, query=None, headers=None, rcvbuf=None):
		_StreamClient.__init__(self, server, name, query, headers)
		self.rcvbuf = rcvbuf
		self.http = None      # the open GET /stream/events
		self.parser = None
		self.events = []      # (id, type, data) of every event
		self.response = None  # (status, headers) of the current GET

	@classmethod
	async def connect(cls, server, name="sse", query=None, headers=None, rcvbuf=None,
			  cursor=None, last_event_id=None, expect_hello=True, timeout=5.0):
		"""Opens the stream and reads its stream frame (and the hello of a
		new session). A refusal raises Refused with the status."""
		c = cls(server, name, query, headers, rcvbuf)
		c.cursor = cursor
		await c.open(cursor=cursor, last_event_id=last_event_id,
			     expect_hello=expect_hello, timeout=timeout)
		return c

	async def open(self, cursor=None, last_event_id=None, query=None, headers=None,
		       expect_hello=True, timeout=5.0):
		"""GET /stream/events; returns the stream frame it opened with."""
		params = dict(self.query)
		params.update(query or {})
		params["cursor"] = cursor
		h = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
		h.update(self.headers)
		h.update(headers or {})
		if last_event_id is not None:
			h["Last-Event-ID"] = last_event_id
		target = _target("/stream/events", params)
		limit = STALLED_READ_LIMIT if self.rcvbuf is not None else READ_LIMIT
		try:
			x = await HttpExchange.open(self.port, "GET", target, headers=h,
						    rcvbuf=self.rcvbuf, limit=limit, timeout=timeout)
		except ConnectionError as e:
			raise AssertionError("%s: cannot GET %s: %r" % (self.name, target, e))
		self._opened(x)
		if x.status != 200:
			body = await x.read_all(timeout)
			self._exchanges.discard(x)
			raise Refused("%s: GET %s" % (self.name, target), x.status, x.headers, body)
		self.http, self.parser, self.closed = x, SseParser(), None
		self.response = (x.status, dict(x.headers))
		check(x.headers.get("content-type", "").startswith("text/event-stream"),
		      "%s: GET %s answered Content-Type %r" % (self.name, target,
							       x.headers.get("content-type")))
		before = len(self.streams)
		first = await self._read_event(timeout)
		check(len(self.streams) > before and first is self.streams[-1],
		      "%s: the first event of GET %s is not a stream frame: %s"
		      % (self.name, target, summary(first)))
		self._started(first)
		if first.get("resumed") is False and expect_hello:
			hello = await self.expect("hello", timeout=timeout,
						  what="hello after a new session's stream frame")
			self.new_session(hello)
		return first

	async def _read_event(self, timeout):
		"""Reads the current response until one more event is parsed;
		returns its frame (queued like every frame)."""
		deadline = time.monotonic() + timeout
		while True:
			left = deadline - time.monotonic()
			if left <= 0:
				raise asyncio.TimeoutError()
			data = await asyncio.wait_for(self.http.read_some(), left)
			if not data:
				raise Closed(self.name, 1006, "the event stream ended")
			frames = [self._take_event(ev) for ev in self.parser.feed(data)]
			if frames:
				return frames[0]

	def _take_event(self, ev):
		last_id, type_, data = ev
		self.events.append(ev)
		if type_ != "message":
			self.problems.append("event of type %r (EventSource.onmessage misses it)" % type_)
		if last_id is not None:
			self.cursor = last_id
		self.raw.append(data)
		try:
			obj = json.loads(data, parse_float=Decimal)
		except ValueError as e:
			raise AssertionError("%s: event data is not JSON (%s): %r" % (self.name, e, data[:200]))
		self._take_frame(obj, "event")
		return obj

	async def _recv_frame(self, timeout):
		if self.http is None:
			raise Closed(self.name, *(self.closed or (1006, "not connected")))
		deadline = time.monotonic() + timeout
		while not self.queue:
			left = deadline - time.monotonic()
			if left <= 0:
				raise asyncio.TimeoutError()
			try:
				data = await asyncio.wait_for(self.http.read_some(), left)
			except ConnectionError as e:
				data, why = b"", str(e)
			else:
				why = "the event stream ended without a close frame"
			if not data:
				self.drop()
				self.closed = (1006, why)
				raise Closed(self.name, *self.closed)
			for ev in self.parser.feed(data):
				self._take_event(ev)

	def drop(self):
		"""The connection goes (the session lingers on the server)."""
		if self.http is not None:
			self.http.abort()
			self._exchanges.discard(self.http)
			self.http = None

	async def reconnect(self, how="query", timeout=5.0):
		"""Drop and GET /stream/events again with the cursor, in the query
		or (how="header") as Last-Event-ID. Returns the stream frame; on a
		new session the hello is read and the client resubscribes."""
		self.drop()
		query = {k: v for k, v in self.query.items() if k != "ticket"}
		saved, self.query = self.query, query
		try:
			if how == "header":
				stream = await self.open(last_event_id=self.cursor, timeout=timeout)
			else:
				stream = await self.open(cursor=self.cursor, timeout=timeout)
		finally:
			self.query = saved
		if stream.get("resumed") is False:
			await self.resubscribe(timeout)
		return stream


# -------------------------------------------------------------- long-poll

class PollClient(_StreamClient):
	"""GET /stream/poll in a loop driven by the reads: each wait for a
	frame is a poll carrying the cursor of the last frame taken."""

	transport = "poll"

	def __init__(self, server, name, query=None, headers=None):
		_StreamClient.__init__(self, server, name, query, headers)
		self.answers = []  # (request cursor, answer) of every poll taken

	@classmethod
	async def connect(cls, server, name="poll", query=None, headers=None, cursor=None,
			  expect_hello=True, timeout=5.0):
		"""The first poll (without cursor: a new session); reads its stream
		frame (and the hello). A refusal raises Refused."""
		c = cls(server, name, query, headers)
		c.cursor = cursor
		stream = await c._first_poll(timeout)
		if stream.get("resumed") is False and expect_hello:
			c.new_session(await c.expect("hello", timeout=timeout,
						     what="hello after a new session's stream frame"))
		return c

	async def poll(self, cursor="current", wait_ms=None, query=None, headers=None, timeout=None):
		"""One raw poll, nothing taken: (status, headers, answer object or
		the body bytes when it is not 200)."""
		params = dict(self.query)
		params.update(query or {})
		params["cursor"] = self.cursor if cursor == "current" else cursor
		params["wait_ms"] = wait_ms
		h = dict(self.headers)
		h.update(headers or {})
		target = _target("/stream/poll", params)
		if timeout is None:
			timeout = 5.0 + (wait_ms if wait_ms is not None else 25000) / 1000
		try:
			x = await HttpExchange.open(self.port, "GET", target, headers=h, timeout=timeout)
		except ConnectionError as e:
			raise Closed(self.name, 1006, "GET %s: %r" % (target, e))
		self._opened(x)
		try:
			body = await x.read_all(timeout)
		except ConnectionError as e:
			raise Closed(self.name, 1006, "GET %s: %r" % (target, e))
		finally:
			self._exchanges.discard(x)
		if x.status != 200:
			return x.status, x.headers, body
		try:
			answer = json.loads(body, parse_float=Decimal)
		except ValueError as e:
			raise AssertionError("%s: poll answer is not JSON (%s): %r" % (self.name, e, body[:200]))
		check(isinstance(answer, dict) and isinstance(answer.get("frames"), list)
		      and isinstance(answer.get("cursor"), str),
		      "%s: poll answer is not {\"cursor\":…,\"frames\":[…]}: %r" % (self.name, body[:200]))
		check(x.headers.get("content-type", "").startswith("application/json"),
		      "%s: poll answered Content-Type %r" % (self.name, x.headers.get("content-type")))
		answer["_body"] = body.decode("utf-8", "replace")
		return x.status, x.headers, answer

	def take(self, answer, asked_cursor):
		"""Take a poll's answer: its frames into the queue, its cursor."""
		frames = answer["frames"]
		self.answers.append((asked_cursor, answer))
		if not CURSOR_RE.fullmatch(answer["cursor"]):
			self.problems.append("poll cursor %r is not KEY:N" % answer["cursor"])
		if not frames and answer["cursor"] != asked_cursor and asked_cursor is not None:
			self.problems.append("an empty poll answer moved the cursor from %r to %r"
					     % (asked_cursor, answer["cursor"]))
		self.raw.append(answer["_body"])
		for f in frames:
			self._take_frame(f, "poll")
		self.cursor = answer["cursor"]
		return frames

	async def _first_poll(self, timeout):
		status, headers, answer = await self.poll(timeout=timeout)
		if status != 200:
			raise Refused("%s: GET /stream/poll" % self.name, status, headers, answer)
		asked = self.cursor
		frames = self.take(answer, asked)
		check(frames and isinstance(frames[0], dict) and frames[0].get("type") == "stream",
		      "%s: the first poll's answer (cursor %r) does not open with a stream frame: %s"
		      % (self.name, asked, summary(frames, 300)))
		self._started(frames[0])
		return frames[0]

	async def _recv_frame(self, timeout):
		if self.closed:
			raise Closed(self.name, *self.closed)
		deadline = time.monotonic() + timeout
		while not self.queue:
			left = deadline - time.monotonic()
			if left <= 0:
				raise asyncio.TimeoutError()
			wait_ms = min(60000, int(left * 1000))
			asked = self.cursor
			# The answer may come a little after wait_ms; a poll cut short
			# loses nothing, as its frames are sent again after the cursor.
			status, headers, answer = await self.poll(wait_ms=wait_ms, timeout=left + 3)
			if status == 404 or status >= 500:
				self.closed = (1006, "poll answered %s %r" % (status, answer[:200]))
				raise Closed(self.name, *self.closed)
			if status != 200:
				raise Refused("%s: GET /stream/poll" % self.name, status, headers, answer)
			self.take(answer, asked)

	def drop(self):
		"""Stop polling (the session lingers): a poll under way is cut."""
		self.abort()

	async def reconnect(self, timeout=5.0):
		"""Poll again with the cursor after a pause. Returns the stream
		frame its answer opened with (None when it had none); on a new
		session the hello is read and the client resubscribes."""
		asked = self.cursor
		status, headers, answer = await self.poll(wait_ms=0, timeout=timeout)
		if status != 200:
			raise Refused("%s: GET /stream/poll (reconnect)" % self.name, status, headers, answer)
		frames = self.take(answer, asked)
		stream = frames[0] if frames and isinstance(frames[0], dict) \
			and frames[0].get("type") == "stream" else None
		if stream is not None and stream.get("resumed") is False:
			self.new_session(await self.expect("hello", timeout=timeout,
							   what="hello after a new session's stream frame"))
			await self.resubscribe(timeout)
		return stream

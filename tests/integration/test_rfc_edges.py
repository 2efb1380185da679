"""What a client library would never send, sent on a raw socket (README,
Security: "Hostile requests"): WebSocket close frames with a 1-byte
payload, an invalid status code or a reason that is not UTF-8, text that is
not UTF-8, an unmasked frame; HTTP requests pipelined in one write, a
header or URI too long for the server, /api arguments it does not know;
and a JSON message that is valid but not a request.

Where libwebsockets 4.1.6 does not let the server see what it would have
to refuse (the mask bit, a header past its buffer), the test pins what the
README says happens instead, so that a newer libwebsockets that does
better shows up here as a failure to update both."""

import asyncio
import os
import socket
import time

from harness import Client, REPO, check, http_request, raw_ws_connect, read_ws_frame, \
	start_server, ws_frame

# --------------------------------------------------------------- helpers


def _ws(srv):
	"""A raw WebSocket, its hello read."""
	s = raw_ws_connect(srv.port)
	fin, _, opcode, payload = read_ws_frame(s)
	check(opcode == 1 and b'"hello"' in payload, "raw client: first frame %r" % payload[:80])
	return s


def _close_after(s, frame, timeout=5.0):
	"""Send frame; read until the server's close frame. Returns (code,
	reason bytes), (None, b"") for an empty close payload, or "no close
	frame" when the connection ended without one."""
	s.settimeout(timeout)
	s.sendall(frame)
	while True:
		try:
			_, _, opcode, payload = read_ws_frame(s)
		except (AssertionError, ConnectionError) as e:
			return "no close frame (%s)" % e
		except socket.timeout:
			return "still open after %.0f s" % timeout
		if opcode == 8:
			if len(payload) < 2:
				return None, payload
			return int.from_bytes(payload[:2], "big"), payload[2:]


def _unmasked(payload, opcode=0x1):
	data = payload.encode() if isinstance(payload, str) else payload
	return bytes([0x80 | opcode, len(data)]) + data


def _requests(*paths):
	return b"".join(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % p.encode() for p in paths)


def _parse_responses(buf):
	"""The whole HTTP/1.1 responses at the start of buf: a list of (status,
	headers, body). A body without a length runs to the end of buf."""
	out = []
	while buf:
		head, sep, rest = buf.partition(b"\r\n\r\n")
		if not sep:
			break
		lines = head.decode("latin-1").split("\r\n")
		headers = {}
		for line in lines[1:]:
			k, _, v = line.partition(":")
			headers[k.strip().lower()] = v.strip()
		if "content-length" in headers:
			n = int(headers["content-length"])
			if len(rest) < n:
				break
			body, buf = rest[:n], rest[n:]
		else:
			body, buf = rest, b""
		out.append((int(lines[0].split()[1]), headers, body))
	return out


def _read_responses(s, timeout, want=None):
	"""HTTP/1.1 responses from s until it closes, goes quiet for timeout
	seconds, or `want` of them are whole: (responses, whether the
	connection ended)."""
	s.settimeout(timeout)
	buf, closed = b"", False
	while want is None or len(_parse_responses(buf)) < want:
		try:
			chunk = s.recv(65536)
		except socket.timeout:
			break
		except ConnectionError:
			closed = True
			break
		if not chunk:
			closed = True
			break
		buf += chunk
	return _parse_responses(buf), closed


def _pipelined(port, paths, timeout=3.0):
	"""Send the GETs of paths in one write; read the answers until there
	is one for each, or the connection ends, or nothing comes for timeout
	seconds."""
	s = socket.create_connection(("127.0.0.1", port), timeout=5)
	try:
		s.sendall(_requests(*paths))
		return _read_responses(s, timeout, want=len(paths))
	finally:
		s.close()


# ------------------------------------------------- WebSocket close frames


async def test_close_frame_with_a_1_byte_payload_gets_1002():
	srv = await start_server()
	s = _ws(srv)
	got = _close_after(s, ws_frame(b"\x03", opcode=0x8))
	check(isinstance(got, tuple) and got[0] == 1002,
	      "a close frame with a 1-byte payload (RFC 6455 5.5.1: 0 bytes or a "
	      "2-byte code) was answered %r; want close 1002" % (got,))
	c = await Client.connect(srv)
	await c.ping_ok()
	return "answered close %d %r" % got


async def test_close_codes_a_peer_may_not_send_get_1002():
	srv = await start_server()
	bad = [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]
	good = [1000, 1001, 1003, 1007, 1011, 3000, 4999]
	wrong = []
	for code in bad + good:
		s = _ws(srv)
		got = _close_after(s, ws_frame(code.to_bytes(2, "big") + b"bye", opcode=0x8))
		want = 1002 if code in bad else code
		if not (isinstance(got, tuple) and got[0] == want):
			wrong.append("%d answered %r, want %d" % (code, got, want))
		s.close()
	check(not wrong, "close codes (RFC 6455 7.4): " + "; ".join(wrong))
	return "%d invalid codes got 1002, %d valid ones were echoed" % (len(bad), len(good))


async def test_close_reason_that_is_not_utf8_gets_1007():
	srv = await start_server()
	s = _ws(srv)
	got = _close_after(s, ws_frame(b"\x03\xe8bad \xff\xfe reason", opcode=0x8))
	check(isinstance(got, tuple) and got[0] == 1007,
	      "a close reason that is not UTF-8 was answered %r; want close 1007" % (got,))
	note = "answered close %d %r" % got
	s = _ws(srv)
	got = _close_after(s, ws_frame(b"\x03\xe8" + "\u00e0 bient\u00f4t".encode(), opcode=0x8))
	check(got == (1000, "\u00e0 bient\u00f4t".encode()),
	      "a UTF-8 close reason was answered %r; want it echoed with 1000" % (got,))
	return note


async def test_text_that_is_not_utf8_gets_1007():
	"""The server checks UTF-8 itself (libwebsockets' check is off, see
	server.c): a bad byte, a character cut at the end of a message, and a
	character cut between two fragments, which is fine."""
	srv = await start_server()
	s = _ws(srv)
	got = _close_after(s, ws_frame(b'{"op":"ping","id":"\xc3\x28"}'))
	check(isinstance(got, tuple) and got[0] == 1007, "invalid UTF-8 text answered %r" % (got,))
	s = _ws(srv)
	got = _close_after(s, ws_frame(b'{"op":"ping","id":1}\xe2\x82'))
	check(isinstance(got, tuple) and got[0] == 1007,
	      "text ending inside a character answered %r" % (got,))
	# "€" cut in two by fragmentation is whole once put together.
	s = _ws(srv)
	msg = '{"op":"ping","id":"\u20ac"}'.encode()
	cut = msg.index(b"\xe2") + 1
	first = bytearray(ws_frame(msg[:cut]))
	first[0] &= 0x7F  # FIN off
	s.sendall(bytes(first) + ws_frame(msg[cut:], opcode=0x0))
	s.settimeout(5)
	_, _, opcode, payload = read_ws_frame(s)
	check(opcode == 1 and b'"pong"' in payload and "\u20ac".encode() in payload,
	      "a character split across fragments: answered %r" % payload[:120])


async def test_unmasked_client_frame_is_a_known_limit():
	"""RFC 6455 5.1: a server must close on an unmasked client frame (1002).
	libwebsockets 4.1.6 reads the mask bit into private state, takes the
	frame, and tells the application nothing (README, Security)."""
	srv = await start_server()
	s = _ws(srv)
	s.settimeout(5)
	s.sendall(_unmasked('{"op":"ping","id":1}'))
	_, _, opcode, payload = read_ws_frame(s)
	with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
		readme = f.read()
	check(opcode == 1 and b'"pong"' in payload,
	      "an unmasked frame was answered %r (opcode %d): libwebsockets now refuses "
	      "them; update README (Security, known limits) and this test to want close "
	      "1002" % (payload[:80], opcode))
	check("unmasked" in readme, "README does not list unmasked frames as a known limit")
	return "taken, as the README says"


# --------------------------------------------------------- HTTP pipelining


async def test_pipelined_requests_are_all_answered_in_order():
	srv = await start_server()
	paths = ["/healthz", "/metrics", "/api/bars?symbol=AAPL&nope=1", "/healthz",
		 "/favicon.svg", "/api/export?format=xml", "/healthz"]
	got, closed = await asyncio.to_thread(_pipelined, srv.port, paths)
	want = [(200, b"ok"), (200, b"publisher_"), (400, b"nope"), (200, b"ok"),
		(200, b"<svg"), (400, b"format"), (200, b"ok")]
	seen = ["%s %d %r" % (p, st, body[:30]) for p, (st, _, body) in zip(paths, got)]
	check(len(got) == len(paths),
	      "%d pipelined requests in one write, %d answered (connection %s): %s"
	      % (len(paths), len(got), "closed" if closed else "open", seen))
	for p, (st, _, body), (wst, wbody) in zip(paths, got, want):
		check(st == wst and wbody in body,
		      "%s answered %d %r, want %d with %r (answers out of order?): %s"
		      % (p, st, body[:60], wst, wbody, seen))
	return "%d answered in order" % len(got)


async def test_pipelined_behind_a_streamed_answer_is_never_answered_twice():
	"""An /api/bars answer is streamed as the query runs: libwebsockets
	4.1.6 then loses what was pipelined behind it, and read the request
	in flight again (a second answer to it, and memory used after being
	freed). The server closes the connection instead."""
	srv = await start_server()
	t0 = time.monotonic()
	got, closed = await asyncio.to_thread(_pipelined, srv.port,
					      ["/api/bars?symbol=AAPL", "/healthz"], 3.0)
	check(got and got[0][0] == 200, "/api/bars answered %r" % (got[:1],))
	for st, _, body in got[1:]:
		check(body.startswith(b"ok"),
		      "a second answer that is not /healthz's: %d %r" % (st, body[:80]))
	check(closed, "the connection stayed open with a request unanswered")
	check(srv.alive(), "the server died")
	status, _, _ = await http_request(srv.port, "/healthz")
	check(status == 200, "/healthz after: %s" % status)
	return "%d answer(s), then closed after %.2f s" % (len(got), time.monotonic() - t0)


# ----------------------------------------------------- HTTP size limits


async def test_header_or_uri_past_the_buffer_is_a_known_limit():
	"""431 and 414 would be right; libwebsockets 4.1.6 drops a request
	whose request line and headers pass its 4 KiB header buffer before the
	server hears of it (README, Security). Just under it is served."""
	srv = await start_server()

	def send(req):
		s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
		try:
			try:
				s.sendall(req)
			except ConnectionError:
				pass
			return _read_responses(s, 3.0)
		finally:
			s.close()

	ok_uri = b"GET /healthz?" + b"a" * 3500 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	ok_hdr = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: " + \
		b"b" * 3500 + b"\r\n\r\n"
	for what, req in (("a 3,500-byte URI", ok_uri), ("a 3,500-byte header", ok_hdr)):
		got, _ = await asyncio.to_thread(send, req)
		check(got and got[0][0] == 200, "%s: answered %r, want 200" % (what, got[:1]))
	big_uri = b"GET /healthz?" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
	big_hdr = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"b" * 100000 + b"\r\n\r\n"
	notes = []
	for what, req, want in (("a 20 KB URI", big_uri, 414), ("a 100 KB header", big_hdr, 431)):
		t0 = time.monotonic()
		got, closed = await asyncio.to_thread(send, req)
		if got and got[0][0] == want:
			raise AssertionError("%s is now answered %d: update README (Security, known "
					     "limits) and this test" % (what, want))
		check(not got and closed, "%s: answered %r, connection %s; the README says it "
		      "is dropped" % (what, got[:1], "closed" if closed else "open"))
		notes.append("%s dropped after %.2f s" % (what, time.monotonic() - t0))
	status, _, _ = await http_request(srv.port, "/healthz")
	check(status == 200, "/healthz after: %s" % status)
	return "; ".join(notes)


# ------------------------------------------------------- /api arguments


async def test_api_arguments_unknown_or_unreadable_are_400_naming_them():
	srv = await start_server()
	cases = [
		("/api/bars?symbol=AAPL&interval=" + "x" * 100, "interval"),
		("/api/bars?symbol=AAPL&intreval=5m", "intreval"),
		("/api/bars?symbol=AAPL&interval=", "interval"),
		("/api/export?symbol=AAPL&bogus=1", "bogus"),
		("/api/export?symbol=AAPL&format=csv&format=jsonl", "format"),
		("/api/export?symbol=AAPL&from=1&from=2", "from"),
		("/api/export?symbol=" + "A" * 200, "symbol"),
		("/api/export?limit", "limit"),
	]
	bad = []
	for path, word in cases:
		status, _, body = await http_request(srv.port, path)
		text = body.decode("utf-8", "replace")
		if status != 400 or word not in text:
			bad.append("%s: %d %r, want 400 naming %r" % (path[:60], status, text[:100], word))
	check(not bad, "; ".join(bad))
	status, _, body = await http_request(srv.port, "/api/bars?symbol=AAPL&interval=5m")
	check(status == 200, "a good /api/bars: %d %r" % (status, body[:100]))
	return "%d refused by name" % len(cases)


# --------------------------------------------------------------- protocol


async def test_json_that_is_not_an_object_is_bad_request():
	srv = await start_server()
	c = await Client.connect(srv)
	wrong = []
	for text, code in (("[1,2,3]", "bad_request"), ("42", "bad_request"),
			   ('"subscribe"', "bad_request"), ("null", "bad_request"),
			   ("[1,2", "bad_json"), ("not json", "bad_json")):
		await c.send(text)
		m = await c.expect("error", timeout=5)
		if m.get("code") != code:
			wrong.append("%s answered %s, want %s" % (text, m.get("code"), code))
	check(not wrong, "; ".join(wrong))
	await c.ping_ok()

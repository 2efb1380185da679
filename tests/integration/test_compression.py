"""WebSocket compression (permessage-deflate), as browsers offer it.

A client that offers the extension gets update frames compressed (RSV1
set), which inflate, with a window kept from message to message as a
browser keeps it, to the same protocol as ever: gap-free deltas. Clients
in step get the same compressed frame, compressed once. What clients send
compressed is understood, and the size limit applies to the inflated
message: a small message that inflates past it is closed with 1009 at
once (libwebsockets 4.1.6 on libuv inflated the rest of a message only
when some socket had an event, so on a quiet server the close waited for
the client to give up) while the others go on. A client that does not
offer it, offers what the server cannot honour, or meets a server started
with --compression off, gets plain text frames."""

import asyncio
import json
import socket
import time
import zlib

from harness import (Client, check, http_request, metric, raw_ws_handshake, read_ws_frame, run_cli,
		     start_server, ws_frame)

FEED = "synthetic:symbols=50,rate=2000,seed=5"
BROWSER_OFFER = "permessage-deflate; client_max_window_bits"
TAIL = b"\x00\x00\xff\xff"


class RawReader:
	"""A raw-socket subscriber that applies what it gets as a client must."""

	def __init__(self, srv, offer):
		self.sock, self.head = raw_ws_handshake(srv.port, extensions=offer)
		self.agreed = "permessage-deflate" in self.head.lower()
		# A browser keeps its window between messages.
		self.inflater = zlib.decompressobj(-15)
		self.held = {}
		self.updates = self.gaps = self.compressed = self.plain = 0

	def text(self, rsv1, payload):
		if not rsv1:
			self.plain += 1
			return payload.decode()
		check(self.agreed, "a compressed frame without the extension agreed")
		self.compressed += 1
		return self.inflater.decompress(payload + TAIL).decode()

	def next_message(self):
		fin, rsv1, op, payload = read_ws_frame(self.sock)
		check(fin and op == 1, "a frame with fin %s opcode %d" % (fin, op))
		return json.loads(self.text(rsv1, payload))

	def apply(self, m):
		for u in m if isinstance(m, list) else [m]:
			if u.get("type") == "snapshot":
				self.held[u["symbol"]] = u["seq"]
			elif u.get("type") == "delta":
				if self.held.get(u["symbol"]) != u["from"]:
					self.gaps += 1
				self.held[u["symbol"]] = u["seq"]
			else:
				continue
			self.updates += 1

	def subscribe(self):
		hello = self.next_message()
		check(hello.get("type") == "hello", "first message %s" % hello)
		self.sock.sendall(ws_frame('{"op":"subscribe","symbols":["*"],"id":1}'))

	def read_for(self, seconds):
		end = time.monotonic() + seconds
		self.sock.settimeout(1.0)
		while time.monotonic() < end:
			self.apply(self.next_message())


async def test_updates_go_compressed_once_for_clients_in_step():
	srv = await start_server(feed=FEED)
	readers = [RawReader(srv, BROWSER_OFFER) for _ in range(3)]
	for r in readers:
		check(r.agreed, "the server did not take a browser's offer: %r" % r.head)
		r.subscribe()
	for r in readers:
		await asyncio.to_thread(r.read_for, 1.0)
	for i, r in enumerate(readers):
		check(r.updates > 100, "reader %d took only %d updates" % (i, r.updates))
		check(r.gaps == 0, "reader %d: %d gaps in what it inflated" % (i, r.gaps))
		check(r.compressed > 0, "reader %d got no compressed frame (%d plain)" % (i, r.plain))
	shared = await metric(srv, "publisher_deflate_shared_frames_total")
	reused = await metric(srv, "publisher_deflate_shared_reused_total")
	raw = await metric(srv, "publisher_deflate_bytes_in_total")
	packed = await metric(srv, "publisher_deflate_bytes_out_total")
	check(shared > 0 and reused > 0,
	      "three clients in step: %d frames compressed, %d reused; want both > 0" % (shared, reused))
	# Small frames (a few updates each here) compress less than big ones.
	check(packed < raw, "compression took %d bytes to %d" % (raw, packed))
	return "%d updates, %d compressed frames for the first; %d shared frames compressed, " \
	       "reused %d times; %.1f:1" % (readers[0].updates, readers[0].compressed, shared,
					   reused, raw / packed)


def _deflate(text):
	z = zlib.compressobj(6, zlib.DEFLATED, -15)
	data = z.compress(text.encode()) + z.flush(zlib.Z_SYNC_FLUSH)
	check(data.endswith(TAIL), "zlib did not end with a sync flush")
	return data[:-4]


async def test_a_message_that_inflates_past_the_limit_closes_1009_others_go_on():
	srv = await start_server(feed=FEED, args=["--max-message-bytes", "4096"])
	watcher = await Client.connect(srv, name="watcher")
	await watcher.subscribe(["*"])
	await watcher.collect(0.3)

	r = RawReader(srv, BROWSER_OFFER)
	check(r.agreed, "offer not taken: %r" % r.head)
	check(r.next_message().get("type") == "hello", "no hello")
	# A compressed request is understood...
	r.sock.sendall(ws_frame(_deflate('{"op":"ping","id":"small"}'), rsv1=True))
	pong = r.next_message()
	check(pong.get("type") == "pong" and pong.get("id") == "small", "got %s for a compressed ping" % pong)
	# ... and one of 1 MB, 1 KB compressed, is refused at the limit.
	bomb = '{"op":"ping","id":"%s"}' % ("y" * 1000000)
	packed = _deflate(bomb)
	t0 = time.monotonic()
	r.sock.sendall(ws_frame(packed, rsv1=True))
	r.sock.settimeout(5.0)
	code = None
	try:
		while code is None:
			fin, rsv1, op, payload = read_ws_frame(r.sock)
			if op == 8:
				code = int.from_bytes(payload[:2], "big")
	except (socket.timeout, AssertionError):
		pass
	took = time.monotonic() - t0
	check(code == 1009, "a %d-byte message (%d compressed) over the 4096 limit: close %s after "
	      "%.1f s, want 1009" % (len(bomb), len(packed), code, took))
	before = len(watcher.updates)
	await watcher.collect(0.5)
	check(len(watcher.updates) > before, "the other client got nothing after")
	watcher.assert_clean()
	status, _, _ = await http_request(srv.port, "/healthz")
	check(status == 200, "/healthz answered %s" % status)
	return "closed 1009 %.2f s after a %d-byte message compressed to %d" % (took, len(bomb), len(packed))


async def test_plain_frames_without_the_extension():
	srv = await start_server(feed=FEED)
	cases = [("no offer", None),
		 ("server_max_window_bits=10", "permessage-deflate; server_max_window_bits=10")]
	for what, offer in cases:
		r = RawReader(srv, offer)
		check(not r.agreed and "sec-websocket-extensions" not in r.head.lower(),
		      "%s: the server agreed to compress: %r" % (what, r.head))
		r.subscribe()
		await asyncio.to_thread(r.read_for, 0.5)
		check(r.updates > 0 and r.compressed == 0 and r.gaps == 0,
		      "%s: %d updates, %d compressed frames, %d gaps" % (what, r.updates, r.compressed, r.gaps))
	off = await start_server(feed=FEED, args=["--compression", "off"], name="off")
	r = RawReader(off, BROWSER_OFFER)
	check(not r.agreed, "--compression off: the server agreed: %r" % r.head)
	r.subscribe()
	await asyncio.to_thread(r.read_for, 0.5)
	check(r.updates > 0 and r.compressed == 0, "--compression off: %d updates, %d compressed"
	      % (r.updates, r.compressed))
	# The websockets library offers compression too, and gets plain text.
	c = await Client.connect(off, name="library")
	await c.subscribe(["*"])
	await c.collect(0.3)
	c.assert_clean()
	rc, _, err = await run_cli(["serve", "--compression", "maybe"])
	check(rc == 2 and "--compression" in err and "on or off" in err,
	      "--compression maybe: exit %s, %r" % (rc, err))

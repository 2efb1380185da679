"""The per-address connection cap: none by default (an office behind one
NAT is one address), and behind a proxy the address it forwarded for, only
when that proxy is trusted (--trusted-proxy)."""

import asyncio
import base64
import os
import re
import socket
import time

from harness import Server, check


def _upgrade_sync(port, headers):
	"""A WebSocket upgrade by hand with extra headers. Returns (status, the
	socket, left open for a 101 so that the connection counts)."""
	s = socket.create_connection(("127.0.0.1", port), timeout=5)
	key = base64.b64encode(os.urandom(16)).decode()
	extra = "".join("%s: %s\r\n" % kv for kv in headers.items())
	s.sendall(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
		   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
		   "%s\r\n" % (port, key, extra)).encode())
	buf = b""
	while b"\r\n\r\n" not in buf:
		chunk = s.recv(1)
		if not chunk:
			break
		buf += chunk
	m = re.match(rb"HTTP/1\.1 (\d+)", buf)
	status = int(m.group(1)) if m else None
	if status != 101:
		s.close()
		s = None
	return status, s


async def _upgrade(port, **headers):
	return await asyncio.to_thread(_upgrade_sync, port, {k.replace("_", "-"): v for k, v in headers.items()})


async def _wait_log(srv, pattern, timeout=5.0):
	deadline = time.monotonic() + timeout
	while not re.search(pattern, srv.stderr_text()):
		check(time.monotonic() < deadline, "no log line matching %r in:\n%s" % (pattern, srv.stderr_text()[-1500:]))
		await asyncio.sleep(0.05)


async def test_no_per_address_cap_by_default():
	"""150 dashboards from one address (one office NAT, one load test host)
	are all let in; the old default of 100 refused the 101st with 429."""
	srv = await Server(feed="none").start()
	held = []
	try:
		for i in range(150):
			status, s = await _upgrade(srv.port)
			check(status == 101, "connection %d from one address answered %s, want 101" % (i + 1, status))
			held.append(s)
		return "150 connections from 127.0.0.1, all 101"
	finally:
		for s in held:
			s.close()


async def test_trusted_proxy_caps_by_the_forwarded_client():
	"""Behind a trusted proxy, each client counts as the address the proxy
	forwarded for: two from one client, the third refused, while another
	client behind the same proxy gets in. A client cannot spoof its way
	past: only the hop the trusted proxy appended (the right-most) counts."""
	srv = await Server(feed="none", args=["--max-connections-per-ip", "2",
					      "--trusted-proxy", "127.0.0.1"]).start()
	held = []
	try:
		for i in range(2):
			status, s = await _upgrade(srv.port, X_Forwarded_For="203.0.113.7")
			check(status == 101, "client 203.0.113.7 #%d: %s, want 101" % (i + 1, status))
			held.append(s)
		status, _ = await _upgrade(srv.port, X_Forwarded_For="203.0.113.7")
		check(status == 429, "third from 203.0.113.7: %s, want 429" % status)
		await _wait_log(srv, r"\(203\.0\.113\.7\): WebSocket upgrade refused with 429")
		# A forged first entry does not help: the proxy appended .7.
		status, _ = await _upgrade(srv.port, X_Forwarded_For="198.51.100.1, 203.0.113.7")
		check(status == 429, "203.0.113.7 with a forged first hop: %s, want 429" % status)
		status, s = await _upgrade(srv.port, X_Forwarded_For="203.0.113.8")
		check(status == 101, "another client behind the proxy: %s, want 101" % status)
		held.append(s)
		# Without the header the proxy is its own client.
		status, s = await _upgrade(srv.port)
		check(status == 101, "the proxy itself: %s, want 101" % status)
		held.append(s)
		return "2 per forwarded client, the third 429, a forged hop ignored"
	finally:
		for s in held:
			s.close()


async def test_forwarded_for_is_ignored_from_an_untrusted_peer():
	"""Without --trusted-proxy (or from any other peer) X-Forwarded-For is
	just text: the cap counts the real peer."""
	srv = await Server(feed="none", args=["--max-connections-per-ip", "2"]).start()
	held = []
	try:
		for i, xff in enumerate(["203.0.113.1", "203.0.113.2"]):
			status, s = await _upgrade(srv.port, X_Forwarded_For=xff)
			check(status == 101, "#%d: %s, want 101" % (i + 1, status))
			held.append(s)
		status, _ = await _upgrade(srv.port, X_Forwarded_For="203.0.113.3")
		check(status == 429, "third from 127.0.0.1 claiming 203.0.113.3: %s, want 429" % status)
		await _wait_log(srv, r"\(127\.0\.0\.1\): WebSocket upgrade refused with 429")
		return "X-Forwarded-For from an untrusted peer ignored"
	finally:
		for s in held:
			s.close()

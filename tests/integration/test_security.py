"""Safe to expose (README, Security): tokens at the handshake, entitlements
on every read path, the Origin check, TLS, connection caps, timeouts,
/metrics, log limits, and a valgrind run.

Tokens are HS256 JWTs minted here with tests/tools/mint_jwt.py under a
secret written next to each server. A refused handshake must be an HTTP
status the client can read (checked on a raw socket, so a reset cannot pass
for a refusal), and the reason must go to the server log, never to the
client."""

import asyncio
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse

import websockets

from harness import Client, Server, binary, check, http_request, run_cli, tick, REPO, \
	auth_server, mint_token, secret_for

sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import mint_jwt  # noqa: E402

# The server's clock-skew leeway on exp and nbf (AUTH_LEEWAY_US in auth.h).
LEEWAY_S = 30


# ---------------------------------------------------------------- helpers

def token(secret, symbols, **kw):
	return mint_token(secret, symbols, **kw)


def bearer(tok):
	return {"Authorization": "Bearer " + tok}


async def connect(srv, tok=None, name="client", path="/ws", headers=None, **kw):
	"""A Client carrying tok in the Authorization header."""
	h = dict(headers or {})
	if tok is not None:
		h.update(bearer(tok))
	return await Client.connect(srv, path=path, name=name, extra_headers=h, **kw)


def _raw_upgrade_sync(port, path, headers, timeout):
	s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
	try:
		headers = dict(headers or {})
		lines = ["GET %s HTTP/1.1" % path,
			 "Host: " + headers.pop("Host", "127.0.0.1:%d" % port),
			 "Upgrade: websocket", "Connection: Upgrade",
			 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
			 "Sec-WebSocket-Version: 13"]
		lines += ["%s: %s" % kv for kv in headers.items()]
		s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
		data = b""
		while b"\r\n\r\n" not in data:
			try:
				chunk = s.recv(4096)
			except ConnectionResetError:
				raise AssertionError("raw upgrade of %s: connection reset after %r; "
						     "a refusal must be an HTTP status" % (path, data[:200]))
			if not chunk:
				raise AssertionError("raw upgrade of %s: connection closed after %r; "
						     "a refusal must be an HTTP status" % (path, data[:200]))
			data += chunk
		head, _, body = data.partition(b"\r\n\r\n")
		head = head.decode("latin-1").split("\r\n")
		m = re.match(r"HTTP/1\.[01] (\d{3})", head[0])
		check(m, "raw upgrade of %s: not an HTTP status line: %r" % (path, head[0]))
		hdrs = {}
		for line in head[1:]:
			k, _, v = line.partition(":")
			hdrs[k.strip().lower()] = v.strip()
		status = int(m.group(1))
		if status != 101:
			want = int(hdrs.get("content-length", "0"))
			while len(body) < want:
				chunk = s.recv(4096)
				if not chunk:
					break
				body += chunk
		return status, hdrs, body
	finally:
		s.close()


async def raw_upgrade(port, path="/ws", headers=None, timeout=5.0):
	"""A WebSocket upgrade by hand: (status, {header: value}, body)."""
	return await asyncio.to_thread(_raw_upgrade_sync, port, path, headers, timeout)


async def expect_refused(srv, status, path="/ws", headers=None, what=""):
	"""The upgrade must be refused with `status` before any WebSocket
	frame, both on a raw socket and for the websockets library."""
	got, hdrs, body = await raw_upgrade(srv.port, path, headers)
	check(got == status, "%s: upgrade answered %s, want %s (body %r)" % (what, got, status, body[:200]))
	try:
		ws = await websockets.connect("ws://127.0.0.1:%d%s" % (srv.port, path),
					      extra_headers=headers or {}, open_timeout=5)
	except websockets.InvalidStatusCode as e:
		check(e.status_code == status, "%s: websockets saw %s, want %s" % (what, e.status_code, status))
	else:
		await ws.close()
		raise AssertionError("%s: websockets client was let in" % what)
	return hdrs, body


async def wait_log(srv, pattern, timeout=5.0):
	"""Wait until the server's stderr matches pattern; returns the match."""
	deadline = time.monotonic() + timeout
	rx = re.compile(pattern)
	while True:
		m = rx.search(srv.stderr_text())
		if m:
			return m
		if time.monotonic() > deadline:
			raise AssertionError("no log line matching %r within %.0f s; tail:\n%s"
					     % (pattern, timeout, srv.stderr_tail(8)))
		await asyncio.sleep(0.05)


async def expect_error(c, op, code):
	r = await c.request(op)
	check(r.get("type") == "error" and r.get("code") == code,
	      "%s answered %s, want error %s" % (json.dumps(op)[:100], json.dumps(r, default=str)[:200], code))
	return r


# ------------------------------------------------------ 1. the handshake

async def test_no_token_is_401_before_upgrade_reason_only_in_log():
	srv, secret = await auth_server(feed="none")
	hdrs, body = await expect_refused(srv, 401, what="no token")
	check(hdrs.get("www-authenticate", "").startswith("Bearer"),
	      "401 without WWW-Authenticate: Bearer: %s" % hdrs)
	check(body.strip() == b"unauthorized", "the 401 body says more than the status: %r" % body)
	await wait_log(srv, r"conn \d+ \(127\.0\.0\.1\): WebSocket upgrade refused with 401 "
		       r"unauthorized: no token")
	# The API is behind the token too; the dashboard, /healthz and
	# /metrics are not.
	status, _, body = await http_request(srv.port, "/api/bars?symbol=AAPL")
	check(status == 401, "GET /api/bars without a token: %s %r" % (status, body[:100]))
	status, _, body = await http_request(srv.port, "/api/export")
	check(status == 401, "GET /api/export without a token: %s %r" % (status, body[:100]))
	for path in ("/", "/healthz", "/metrics"):
		status, _, _ = await http_request(srv.port, path)
		check(status == 200, "GET %s without a token: %s, want 200 (open)" % (path, status))
	# A good token gets in.
	c = await connect(srv, token(secret, ["AAPL"]))
	await c.ping_ok()


async def test_bad_signature_is_401():
	srv, secret = await auth_server(feed="none")
	forged = token(os.urandom(32), ["*"])
	_, body = await expect_refused(srv, 401, headers=bearer(forged), what="bad signature")
	check(b"signature" not in body, "the client is told why: %r" % body)
	await wait_log(srv, r"refused with 401 unauthorized: .*signature")
	# A token whose payload was changed after signing is the same case.
	h, p, sig = token(secret, ["AAPL"]).split(".")
	other = mint_jwt.b64url(json.dumps({"sub": "alice", "exp": int(time.time()) + 3600,
					    "symbols": ["*"]}).encode())
	await expect_refused(srv, 401, headers=bearer(".".join((h, other, sig))), what="edited payload")
	check(forged not in srv.stderr_text(), "the token itself was logged")


async def test_expired_token_is_401():
	srv, secret = await auth_server(feed="none")
	old = token(secret, ["*"], exp_in=-(LEEWAY_S + 90))
	await expect_refused(srv, 401, headers=bearer(old), what="expired")
	await wait_log(srv, r"refused with 401 unauthorized: .*expired")
	# Not yet valid is refused the same way.
	early = token(secret, ["*"], nbf=int(time.time()) + LEEWAY_S + 600)
	await expect_refused(srv, 401, headers=bearer(early), what="nbf in the future")


async def test_alg_none_and_other_algs_are_401():
	srv, secret = await auth_server(feed="none")
	for alg in ("none", "HS512", "RS256"):
		forged = token(secret, ["*"], alg=alg)
		await expect_refused(srv, 401, headers=bearer(forged), what="alg %s" % alg)
	await wait_log(srv, r"refused with 401 unauthorized: .*(alg|HS256)")
	# A malformed Authorization header is not a token.
	await expect_refused(srv, 401, headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"},
			     what="Basic auth")


async def test_token_from_header_query_or_cookie():
	srv, secret = await auth_server(feed="none")
	tok = token(secret, ["AAPL"])
	ways = [("header", dict(tok=tok)),
		("query", dict(path="/ws?token=" + urllib.parse.quote(tok))),
		("cookie", dict(headers={"Cookie": "theme=dark; token=%s; x=1" % tok}))]
	for how, kw in ways:
		c = await connect(srv, name=how, **kw)
		await c.ping_ok()
		await c.close()
	# The first place that holds a token decides: a bad header is not
	# rescued by a good cookie.
	await expect_refused(srv, 401, headers={"Authorization": "Bearer x.y.z",
						 "Cookie": "token=" + tok}, what="bad header, good cookie")
	return "header, ?token= and cookie all accepted"


# ---------------------------------------------------- 2. entitlements

async def test_subscribe_outside_entitlements_is_forbidden_whole_request():
	srv, secret = await auth_server()
	await srv.send_ticks([tick("AAPL", bid="1.10"), tick("MSFT", bid="2.20"),
			      tick("TSLA", bid="3.30"), tick("FX:EURUSD", bid="1.0850")])
	c = await connect(srv, token(secret, ["AAPL", "FX:*"]))
	r = await expect_error(c, {"op": "subscribe", "symbols": ["AAPL", "MSFT", "TSLA"], "id": 41},
			       "forbidden")
	check(r.get("id") == 41, "forbidden does not echo the id: %s" % r)
	msg = r.get("message", "")
	check("MSFT" in msg and "TSLA" in msg, "forbidden does not name both symbols: %r" % msg)
	check("AAPL" not in msg, "forbidden names an entitled symbol: %r" % msg)
	# Refused as a whole: AAPL was not subscribed either.
	await srv.send_ticks([tick("AAPL", bid="1.11")])
	got = [m for m in await c.collect(0.5) if m.get("type") in ("snapshot", "delta")]
	check(not got, "updates after a refused subscribe: %s" % got[:3])
	# The connection is still usable, and entitled symbols subscribe.
	await c.subscribe(["AAPL", "FX:EURUSD"])
	await c.wait_seq("AAPL", 2)
	await c.wait_seq("FX:EURUSD", 1)
	# Many forbidden symbols are named up to a few, then counted.
	many = ["S%02d" % i for i in range(12)]
	r = await expect_error(c, {"op": "subscribe", "symbols": many}, "forbidden")
	check("7 more" in r.get("message", ""), "12 forbidden symbols: %r" % r.get("message"))
	c.assert_clean()
	return msg


async def test_wildcard_and_symbols_limited_to_entitlements():
	srv, secret = await auth_server()
	await srv.send_ticks([tick(s, bid="1.0") for s in
			      ("AAPL", "MSFT", "FX:EURUSD", "FX:GBPUSD", "FXE", "FXI")])
	# A token with "*" sees everything: wait until all six are there.
	every = await connect(srv, token(secret, ["*"]), name="every")
	deadline = time.monotonic() + 5
	while len((await every.request({"op": "symbols"})).get("symbols", [])) < 6:
		check(time.monotonic() < deadline, "the six symbols never all showed")
		await asyncio.sleep(0.02)
	c = await connect(srv, token(secret, ["AAPL", "FX:*"]))
	r = await c.request({"op": "symbols"})
	listed = sorted(e["symbol"] for e in r.get("symbols", []))
	check(listed == ["AAPL", "FX:EURUSD", "FX:GBPUSD"],
	      "symbols lists %s, want only the entitled ones" % listed)
	await c.subscribe(["*"])
	# A symbol of the granted namespace appearing later comes in; the
	# others keep ticking and never show.
	await srv.send_ticks([tick("FX:USDJPY", bid="150.1"), tick("MSFT", bid="2.0"),
			      tick("FXE", bid="2.0"), tick("TSLA", bid="9.9"), tick("AAPL", bid="1.1")])
	await c.wait_seq("AAPL", 2)
	await c.wait_seq("FX:USDJPY", 1)
	await c.collect(0.3)
	seen = sorted(c.state)
	check(seen == ["AAPL", "FX:EURUSD", "FX:GBPUSD", "FX:USDJPY"],
	      "the wildcard delivered %s" % seen)
	# The token with "*" gets every symbol through the wildcard.
	await every.subscribe(["*"])
	await every.wait_seq("TSLA", 1)
	await every.wait_seq("FXI", 1)
	return "wildcard gave %s of 8 symbols" % len(seen)


async def test_history_export_and_bars_refused_outside_entitlements():
	srv, secret = await auth_server()
	base = 1_700_000_000_000_000
	ticks = []
	for i in range(5):
		ticks += [tick("AAPL", ts=base + i, bid="1.%d" % i, last="1.%d" % i, last_size=1),
			  tick("MSFT", ts=base + i, bid="2.%d" % i),
			  tick("FX:EURUSD", ts=base + i, bid="3.%d" % i)]
	await srv.send_ticks(ticks)
	tok = token(secret, ["AAPL", "FX:*"])
	c = await connect(srv, tok)
	# Wait until the store holds the ticks of both entitled symbols.
	deadline = time.monotonic() + 5
	for sym in ("AAPL", "FX:EURUSD"):
		while True:
			r = await c.request({"op": "history", "symbol": sym, "limit": 10})
			check(r.get("type") == "history", "history %s answered %s" % (sym, r))
			if len(r.get("ticks", [])) == 5:
				break
			check(time.monotonic() < deadline, "%s history never reached 5 ticks: %s" % (sym, r))
			await asyncio.sleep(0.05)
	r = await expect_error(c, {"op": "history", "symbol": "MSFT", "limit": 10, "id": 9}, "forbidden")
	check("MSFT" in r.get("message", "") and r.get("id") == 9, "history refusal: %s" % r)
	r = await expect_error(c, {"op": "history", "symbol": "MSFT", "interval": "1m", "id": 10},
			       "forbidden")

	h = bearer(tok)
	status, _, body = await http_request(srv.port, "/api/export?symbol=MSFT", headers=h)
	check(status == 403 and b"MSFT" in body, "export of MSFT: %s %r" % (status, body[:100]))
	status, _, body = await http_request(srv.port, "/api/export?symbol=AAPL&symbol=MSFT", headers=h)
	check(status == 403, "export of AAPL and MSFT: %s %r" % (status, body[:100]))
	status, _, body = await http_request(srv.port, "/api/export?symbol=AAPL&format=jsonl", headers=h)
	rows = [json.loads(l) for l in body.decode().splitlines() if l]
	check(status == 200 and len(rows) == 5 and {r["symbol"] for r in rows} == {"AAPL"},
	      "export of AAPL: %s, %d rows" % (status, len(rows)))
	# Without symbol=, "everything" is everything the token grants.
	status, _, body = await http_request(srv.port, "/api/export?format=jsonl", headers=h)
	syms = sorted({json.loads(l)["symbol"] for l in body.decode().splitlines() if l})
	check(status == 200 and syms == ["AAPL", "FX:EURUSD"],
	      "export without symbol=: %s, symbols %s" % (status, syms))
	status, _, body = await http_request(srv.port, "/api/export", headers=h)
	lines = body.decode().splitlines()
	check(status == 200 and lines[0].startswith("ts,symbol") and len(lines) == 11,
	      "csv export without symbol=: %s, %d lines" % (status, len(lines)))
	status, _, body = await http_request(srv.port, "/api/bars?symbol=MSFT&interval=1m", headers=h)
	check(status == 403, "bars of MSFT: %s %r" % (status, body[:100]))
	status, _, body = await http_request(srv.port, "/api/bars?symbol=AAPL&interval=1m", headers=h)
	check(status == 200 and json.loads(body).get("bars"), "bars of AAPL: %s %r" % (status, body[:100]))
	# A token that grants nothing with data exports an empty, well-formed file.
	none = bearer(token(secret, ["ZZZ"]))
	status, headers, body = await http_request(srv.port, "/api/export", headers=none)
	check(status == 200 and body.decode().splitlines() == [lines[0]],
	      "export for a token with no data: %s %r" % (status, body[:100]))
	# ... and it is a download named like any other export.
	got = {k.lower(): v for k, v in headers.items()}.get("content-disposition")
	check(got == 'attachment; filename="all-start-end.csv"',
	      "empty export's Content-Disposition: %r" % got)
	return "history, export and bars refused for MSFT"


async def test_token_expiring_while_connected_closes_4001():
	srv, secret = await auth_server()
	# The server accepts a token until exp + leeway; this one reaches that
	# point 3 s from now, so it is let in and must then be dropped.
	tok = token(secret, ["AAPL"], exp=time.time() - LEEWAY_S + 3.0)
	c = await connect(srv, tok)
	await c.subscribe(["AAPL"])
	await srv.send_ticks([tick("AAPL", bid="1.0")])
	await c.wait_seq("AAPL", 1)
	await c.ping_ok()
	t0 = time.monotonic()
	code = await c.wait_closed(8)
	dt = time.monotonic() - t0
	check(code == 4001, "close code %s, want 4001 (token expired)" % code)
	check(c.ws.close_reason == "token expired", "close reason %r" % c.ws.close_reason)
	await wait_log(srv, r"conn \d+ \(127\.0\.0\.1, sub 'alice'\): token expired")
	# A fresh token gets back in.
	c2 = await connect(srv, token(secret, ["AAPL"]), name="renewed")
	await c2.ping_ok()
	return "closed %.1f s after the last ping" % dt


async def test_replay_control_needs_a_token_granting_everything():
	srv = Server(feed="none")
	path = os.path.join(srv.tmp, "ticks.jsonl")
	base = 1_700_000_000_000_000
	with open(path, "w") as f:
		for i in range(2000):  # 2000 s of file time: still playing at speed 1
			f.write('{"ts":%d,"symbol":"AAPL","bid":1.%d}\n' % (base + i * 1_000_000, i % 10))
	srv.feed = "replay:%s,speed=1" % path
	secret = secret_for(srv)
	await srv.start()
	viewer = await connect(srv, token(secret, ["AAPL"]), name="viewer")
	r = await viewer.request({"op": "replay", "action": "status"})
	check(r.get("type") == "replay", "status for a viewer: %s" % r)
	r = await expect_error(viewer, {"op": "replay", "action": "pause"}, "forbidden")
	check('"*"' in r.get("message", ""), "the refusal does not say what is needed: %s" % r)
	admin = await connect(srv, token(secret, ["*"]), name="admin")
	r = await admin.request({"op": "replay", "action": "pause"})
	check(r.get("type") == "replay" and r.get("state") == "paused", "pause with '*': %s" % r)


# ------------------------------------------------------------- 3. origin

async def test_foreign_origin_refused_403_same_host_allowed():
	srv = await Server(feed="none").start()
	await expect_refused(srv, 403, headers={"Origin": "http://evil.example"}, what="foreign origin")
	await expect_refused(srv, 403, headers={"Origin": "http://127.0.0.1:%d" % (srv.port + 1)},
			     what="other port")
	await expect_refused(srv, 403, headers={"Origin": "null"}, what="Origin null")
	await wait_log(srv, r"refused with 403 origin: Origin 'http://evil\.example' is not this server")
	status, _, _ = await http_request(srv.port, "/api/export", headers={"Origin": "http://evil.example"})
	check(status == 403, "GET /api/export from a foreign origin: %s" % status)
	# DNS rebinding: a page whose name now resolves to 127.0.0.1 sends its
	# own name as Origin and Host; a loopback listener wants loopback names.
	rebound = "rebind.example:%d" % srv.port
	status, _, _ = await raw_upgrade(srv.port, headers={"Origin": "http://" + rebound, "Host": rebound})
	check(status == 403, "a rebound name was let in: %s" % status)
	local = "localhost:%d" % srv.port
	status, _, _ = await raw_upgrade(srv.port, headers={"Origin": "http://" + local, "Host": local})
	check(status == 101, "Origin and Host localhost: %s, want 101" % status)
	# The server's own pages (Origin = Host) and non-browser clients (no
	# Origin) get in.
	own = await connect(srv, headers={"Origin": "http://127.0.0.1:%d" % srv.port}, name="own")
	await own.ping_ok()
	plain = await connect(srv, name="no-origin")
	await plain.ping_ok()


async def test_allow_origin_list_is_exact():
	srv = await Server(feed="none", args=["--allow-origin", "https://app.example",
					     "--allow-origin", "http://localhost:3000"]).start()
	for o in ("https://app.example", "http://localhost:3000"):
		c = await connect(srv, headers={"Origin": o}, name=o)
		await c.ping_ok()
	for o in ("https://app.example.evil", "http://app.example", "https://app.example:443",
		  "http://127.0.0.1:%d" % srv.port):
		await expect_refused(srv, 403, headers={"Origin": o}, what="origin %s" % o)


# ---------------------------------------------------------------- 4. TLS

def _make_cert(dirpath):
	cert, key = os.path.join(dirpath, "cert.pem"), os.path.join(dirpath, "key.pem")
	subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
			"-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
			"-days", "1", "-keyout", key, "-out", cert],
		       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
	return cert, key


def _https_get_sync(port, path, ctx):
	conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
	try:
		conn.request("GET", path)
		r = conn.getresponse()
		return r.status, r.read()
	finally:
		conn.close()


async def test_tls_client_streams_over_wss_and_https_serves_dashboard():
	if not shutil.which("openssl"):
		return "skipped: openssl is not installed"
	srv = Server(feed="stdin")
	cert, key = _make_cert(srv.tmp)
	srv.args += ["--tls-cert", cert, "--tls-key", key]
	await srv.start()
	ctx = ssl.create_default_context(cafile=cert)
	ws = await websockets.connect("wss://127.0.0.1:%d/ws" % srv.port, ssl=ctx, open_timeout=10,
				      max_size=64 * 1024 * 1024, ping_interval=None)
	c = Client(ws, "tls")
	c.hello = await c.expect("hello")
	await c.subscribe(["AAPL"])
	await srv.send_ticks([tick("AAPL", bid="100.00", ask="100.50")])
	await c.wait_seq("AAPL", 1)
	for i in range(2, 21):
		await srv.send_ticks([tick("AAPL", bid="100.%02d" % i, ask="100.%02d" % (i + 50))])
	await c.wait_seq("AAPL", 20)
	c.assert_clean()
	check(any(m["type"] == "delta" for _, m in c.updates), "no delta over wss")
	check(c.ws.transport.get_extra_info("ssl_object") is not None, "the connection is not TLS")
	status, body = await asyncio.to_thread(_https_get_sync, srv.port, "/", ctx)
	check(status == 200 and b"<html" in body.lower(), "https GET /: %s %r" % (status, body[:80]))
	status, body = await asyncio.to_thread(_https_get_sync, srv.port, "/healthz", ctx)
	check(status == 200, "https GET /healthz: %s" % status)
	# A client that does not trust the certificate is refused by TLS.
	try:
		bad = await websockets.connect("wss://127.0.0.1:%d/ws" % srv.port,
					       ssl=ssl.create_default_context(), open_timeout=5)
	except ssl.SSLError:
		pass
	else:
		await bad.close()
		raise AssertionError("a client that does not trust the certificate got in")
	return "%d updates over wss" % len(c.updates)


async def test_tls_bad_files_exit_1_naming_them():
	srv = Server(feed="none")  # only for its temporary directory
	missing = os.path.join(srv.tmp, "nope.pem")
	args = ["serve", "--listen", "127.0.0.1:0", "--db", "none", "--feed", "none"]
	rc, _, err = await run_cli(args + ["--tls-cert", missing, "--tls-key", missing])
	check(rc == 1 and "nope.pem" in err, "missing cert: exit %s, %r" % (rc, err[-200:]))
	notpem = os.path.join(srv.tmp, "notpem.pem")
	with open(notpem, "w") as f:
		f.write("not a certificate\n")
	rc, _, err = await run_cli(args + ["--tls-cert", notpem, "--tls-key", notpem])
	check(rc == 1 and "notpem.pem" in err, "garbage cert: exit %s, %r" % (rc, err[-200:]))
	rc, _, err = await run_cli(args + ["--tls-cert", notpem])
	check(rc == 2 and "--tls-key" in err, "cert without key: exit %s, %r" % (rc, err[-200:]))
	rc, _, err = await run_cli(args + ["--auth-secret", missing])
	check(rc == 1 and "nope.pem" in err, "missing secret: exit %s, %r" % (rc, err[-200:]))
	srv.remove_tmp()


# ------------------------------------------------------------- 5. limits

async def test_connection_cap_answers_503():
	srv = await Server(feed="none", args=["--max-connections", "2"]).start()
	a = await connect(srv, name="a")
	b = await connect(srv, name="b")
	hdrs, body = await expect_refused(srv, 503, what="third connection")
	check(hdrs.get("retry-after"), "503 without Retry-After: %s" % hdrs)
	await a.ping_ok()
	await b.ping_ok()
	await a.close()
	# Once one leaves, a newcomer gets its place.
	deadline = time.monotonic() + 3
	while True:
		status, _, _ = await raw_upgrade(srv.port)
		if status == 101:
			break
		check(time.monotonic() < deadline, "still refused (%s) after a client left" % status)
		await asyncio.sleep(0.05)
	await wait_log(srv, r"refused with 503 server_full: 2 connections open")


async def test_connections_per_ip_answers_429():
	srv = await Server(feed="none", args=["--max-connections-per-ip", "2"]).start()
	a = await connect(srv, name="a")
	b = await connect(srv, name="b")
	await expect_refused(srv, 429, what="third from one address")
	await a.ping_ok()
	await b.ping_ok()


def _slow_sender_sync(port, first, timeout):
	s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
	t0 = time.monotonic()
	try:
		if first:
			s.sendall(first)
		while True:
			try:
				if not s.recv(4096):
					return time.monotonic() - t0
			except ConnectionResetError:
				return time.monotonic() - t0
	except socket.timeout:
		return None
	finally:
		s.close()


async def test_handshake_timeout_drops_silent_and_slow_senders():
	srv = await Server(feed="none", args=["--handshake-timeout-secs", "1"]).start()
	silent = asyncio.to_thread(_slow_sender_sync, srv.port, b"", 6)
	partial = asyncio.to_thread(_slow_sender_sync, srv.port,
				    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n", 6)
	t_silent, t_partial = await asyncio.gather(silent, partial)
	check(t_silent is not None and t_silent < 4, "a silent connection stayed %s s" % t_silent)
	check(t_partial is not None and t_partial < 4, "half a request stayed %s s" % t_partial)
	c = await connect(srv)
	await c.ping_ok()
	return "dropped after %.1f s and %.1f s" % (t_silent, t_partial)


# --------------------------------------------------------- 6. /metrics

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(?:\{(%s(?:,%s)*)?\})? (\S+)$" % (METRIC_NAME, LABEL, LABEL))
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_prometheus(text):
	"""A strict reader of the Prometheus text format 0.0.4. Returns
	{family: {"type": t, "help": h, "samples": {(name, labels): value}}}.
	Fails on anything a scraper could misread: samples before their TYPE,
	a family declared twice, a sample of another family between a family's
	samples, bad names, labels or values, duplicate series, counters that
	are negative, histograms whose buckets are not cumulative."""
	check(text.endswith("\n"), "metrics do not end with a newline")
	families, current, seen_series, closed = {}, None, set(), set()
	for n, line in enumerate(text.split("\n")[:-1], 1):
		where = "metrics line %d %r" % (n, line[:120])
		check(line == line.strip() and line, "%s: blank or padded line" % where)
		if line.startswith("#"):
			m = re.match(r"^# (HELP|TYPE) (%s) (.+)$" % METRIC_NAME, line)
			check(m, "%s: a comment that is neither HELP nor TYPE" % where)
			kind, name, rest = m.groups()
			if current and current != name:
				closed.add(current)
			check(name not in closed, "%s: family %s declared again" % (where, name))
			fam = families.setdefault(name, {"type": None, "help": None, "samples": {}})
			if kind == "TYPE":
				check(rest in TYPES, "%s: unknown type" % where)
				check(fam["type"] is None and not fam["samples"], "%s: TYPE twice or late" % where)
				fam["type"] = rest
			else:
				check(fam["help"] is None, "%s: HELP twice" % where)
				fam["help"] = rest
			current = name
			continue
		m = SAMPLE.match(line)
		check(m, "%s: not `name{labels} value`" % where)
		name, labels, value = m.group(1), m.group(2) or "", m.group(3)
		fam_name = name
		if current and families[current]["type"] in ("histogram", "summary"):
			for suffix in ("_bucket", "_sum", "_count"):
				if name == current + suffix:
					fam_name = current
		check(fam_name == current, "%s: sample outside its family (current %s)" % (where, current))
		check(families[current]["type"], "%s: sample before TYPE" % where)
		try:
			v = float(value)
		except ValueError:
			raise AssertionError("%s: value %r is not a number" % (where, value))
		pairs = tuple(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels))
		check(len({k for k, _ in pairs}) == len(pairs), "%s: a label repeats" % where)
		key = (name, pairs)
		check(key not in seen_series, "%s: duplicate series" % where)
		seen_series.add(key)
		if families[current]["type"] == "counter":
			check(name.endswith("_total"), "%s: counter not named *_total" % where)
			check(v >= 0, "%s: negative counter" % where)
		families[current]["samples"][key] = v
	for name, fam in families.items():
		check(fam["type"] and fam["help"], "family %s lacks TYPE or HELP" % name)
		if fam["type"] == "histogram":
			buckets = [(dict(k[1])["le"], v) for k, v in fam["samples"].items()
				   if k[0] == name + "_bucket"]
			check(buckets and buckets[-1][0] == "+Inf", "%s: no +Inf bucket last" % name)
			les = [float(le) for le, _ in buckets]
			check(les == sorted(les), "%s: buckets out of order" % name)
			counts = [v for _, v in buckets]
			check(counts == sorted(counts), "%s: buckets not cumulative: %s" % (name, counts))
			count = fam["samples"].get((name + "_count", ()))
			check(count == counts[-1], "%s: _count %s != +Inf bucket %s" % (name, count, counts[-1]))
			check((name + "_sum", ()) in fam["samples"], "%s: no _sum" % name)
	return families


def metric(fams, name, **labels):
	fam = fams.get(name) or fams.get(re.sub(r"_(bucket|sum|count)$", "", name))
	check(fam, "no metric family for %s" % name)
	key = (name, tuple(sorted(labels.items())))
	for (n, pairs), v in fam["samples"].items():
		if n == name and tuple(sorted(pairs)) == key[1]:
			return v
	raise AssertionError("no sample %s%s" % (name, labels or ""))


async def scrape(srv):
	status, hdrs, body = await http_request(srv.port, "/metrics")
	check(status == 200, "GET /metrics: %s" % status)
	check(hdrs.get("content-type", "").startswith("text/plain; version=0.0.4"),
	      "/metrics content-type %r" % hdrs.get("content-type"))
	return parse_prometheus(body.decode())


async def test_metrics_parse_as_prometheus_text_and_move_with_traffic():
	srv, secret = await auth_server()
	before = await scrape(srv)
	c = await connect(srv, token(secret, ["AAPL"]))
	await c.subscribe(["AAPL"])
	for i in range(1, 51):
		await srv.send_ticks([tick("AAPL", bid="1.%02d" % i)])
	await c.wait_seq("AAPL", 50)
	await expect_error(c, {"op": "nonsense"}, "unknown_op")
	await expect_error(c, {"op": "subscribe", "symbols": ["MSFT"]}, "forbidden")
	await expect_refused(srv, 401, what="no token")
	await expect_refused(srv, 403, headers={"Origin": "http://evil.example"}, what="origin")
	after = await scrape(srv)

	def grew(name, by=1, **labels):
		b, a = metric(before, name, **labels), metric(after, name, **labels)
		check(a - b >= by, "%s%s went from %s to %s, want +%s" % (name, labels or "", b, a, by))
		return a - b

	grew("publisher_connections_opened_total")
	grew("publisher_ticks_applied_total", 50)
	grew("publisher_feed_ticks_total", 50)
	grew("publisher_updates_sent_total")
	grew("publisher_ws_frames_sent_total", 3)
	grew("publisher_ws_bytes_sent_total", 200)
	grew("publisher_errors_sent_total", code="unknown_op")
	grew("publisher_errors_sent_total", code="forbidden")
	grew("publisher_handshakes_refused_total", 2, reason="unauthorized")
	grew("publisher_handshakes_refused_total", reason="origin")
	grew("publisher_auth_failures_total", 2, endpoint="ws")
	grew("publisher_update_latency_seconds_count")
	grew("publisher_http_bytes_sent_total", 100)
	check(metric(after, "publisher_connections") == 1, "connections gauge %s, want 1"
	      % metric(after, "publisher_connections"))
	check(metric(after, "publisher_subscriptions") >= 1, "no subscription counted")
	check(metric(after, "publisher_feed_running", kind="stdin") == 1, "feed_running{kind=stdin} != 1")
	check(metric(after, "publisher_feed_finished", kind="stdin") == 0, "feed_finished{kind=stdin} != 0")
	check(after["publisher_update_latency_seconds"]["type"] == "histogram", "latency is not a histogram")
	for name, fam in after.items():  # counters never go down
		if fam["type"] != "counter":
			continue
		for key, v in fam["samples"].items():
			old = before.get(name, {"samples": {}})["samples"].get(key)
			check(old is None or v >= old, "counter %s%s went down" % key)
	# A conflated burst: a client that does not read while ticks pour in
	# gets merged deltas, and the merge is counted.
	await srv.send_ticks([tick("AAPL", bid="2.%03d" % i) for i in range(500)])
	await c.wait_seq("AAPL", 550)
	final = await scrape(srv)
	conflated = metric(final, "publisher_ticks_conflated_total") - \
		metric(before, "publisher_ticks_conflated_total")
	check(conflated > 0, "500 ticks in one burst but none conflated")
	return "%d families; %d ticks conflated" % (len(after), conflated)


# ------------------------------------------------------------ 7. logging

async def test_refusals_are_logged_with_reason_and_rate_limited():
	srv, secret = await auth_server(feed="none")
	forged = token(os.urandom(32), ["*"])
	for _ in range(25):
		await raw_upgrade(srv.port, headers=bearer(forged))
	await wait_log(srv, r"refused with 401")
	text = srv.stderr_text()
	lines = [l for l in text.splitlines() if "refused with 401" in l]
	check(len(lines) == 10, "%d lines for 25 refusals, want the first 10" % len(lines))
	check(all(re.search(r" info  conn \d+ \(127\.0\.0\.1\): ", l) for l in lines),
	      "refusal lines lack level or connection id: %s" % lines[:2])
	check(forged not in text and forged.split(".")[2] not in text, "the token was logged")
	# Other kinds of refusal have their own limit.
	await expect_refused(srv, 403, headers={"Origin": "http://evil.example"}, what="origin")
	await wait_log(srv, r"refused with 403 origin")
	# When the window ends the held-back lines are summed up.
	m = await wait_log(srv, r"log: (\d+) more lines like \"conn \d+ \(127\.0\.0\.1\): WebSocket "
			   r"upgrade refused with 401 unauthorized: [^\"]+\" suppressed in the last 10 s", 14)
	check(m.group(1) == "15", "summary says %s suppressed, want 15" % m.group(1))
	fams = await scrape(srv)
	check(metric(fams, "publisher_log_lines_suppressed_total") >= 15, "suppressed lines not counted")
	return m.group(0)[:100]


test_refusals_are_logged_with_reason_and_rate_limited.timeout = 40


async def test_bad_frame_flood_does_not_flood_the_log():
	srv = await Server(feed="none").start()  # the harness logs at debug
	c = await connect(srv)
	for i in range(150):
		await c.send("not json %d" % i)
	for i in range(150):
		await c.expect("error", what="error reply %d of 150" % (i + 1))
	lines = [l for l in srv.stderr_text().splitlines() if "error bad_json" in l]
	check(1 <= len(lines) <= 10, "%d log lines for 150 bad frames, want at most 10" % len(lines))
	check(all(re.search(r" debug conn \d+ \(127\.0\.0\.1\): error bad_json: ", l) for l in lines),
	      "bad-frame lines lack level or connection id: %s" % lines[:2])
	await c.ping_ok()
	return "150 bad frames, %d log lines" % len(lines)


# ------------------------------------------------------------ 8. valgrind

class ValgrindServer(Server):
	def __init__(self, vg_log, **kw):
		Server.__init__(self, **kw)
		self.vg_log = vg_log

	def argv(self):
		return ["valgrind", "--leak-check=full", "--error-exitcode=99",
			"--errors-for-leak-kinds=definite", "--log-file=" + self.vg_log,
			"--num-callers=30"] + Server.argv(self)


async def test_valgrind_session_no_errors_no_definite_leaks():
	if not shutil.which("valgrind"):
		return "skipped: valgrind is not installed (tests/deps.sh installs it)"
	with open(binary(), "rb") as f:
		image = f.read()
	if b"__asan_init" in image or b"__tsan_init" in image:
		return "skipped: PUBLISHER_BIN is built with a sanitizer, which valgrind cannot run"
	srv = ValgrindServer(vg_log="", feed="stdin", name="valgrind")
	srv.vg_log = os.path.join(srv.tmp, "valgrind.log")
	secret = secret_for(srv)
	await srv.start(timeout=60)
	tok = token(secret, ["AAPL", "FX:*"])
	c = await connect(srv, tok)
	await c.subscribe(["AAPL", "FX:EURUSD"])
	await srv.send_ticks([tick("AAPL", bid="1.%d" % i, last="1.%d" % i, last_size=5) for i in range(10)]
			     + [tick("MSFT", bid="2.0"), tick("FX:EURUSD", bid="1.08")])
	await c.wait_seq("AAPL", 10, timeout=20)
	w = await connect(srv, tok, name="wildcard")
	await w.subscribe(["*"])
	await w.wait_seq("FX:EURUSD", 1, timeout=20)
	deadline = time.monotonic() + 20
	while True:
		r = await c.request({"op": "history", "symbol": "AAPL", "limit": 5}, timeout=20)
		if len(r.get("ticks", [])) == 5:
			break
		check(time.monotonic() < deadline, "history never filled under valgrind: %s" % r)
		await asyncio.sleep(0.2)
	await expect_error(c, {"op": "history", "symbol": "MSFT"}, "forbidden")
	status, _, body = await http_request(srv.port, "/api/export?format=jsonl", headers=bearer(tok),
					     timeout=20)
	check(status == 200 and b"AAPL" in body, "export under valgrind: %s %r" % (status, body[:100]))
	status, _, _ = await http_request(srv.port, "/api/bars?symbol=AAPL", headers=bearer(tok), timeout=20)
	check(status == 200, "bars under valgrind: %s" % status)
	status, _, _ = await http_request(srv.port, "/metrics", timeout=20)
	check(status == 200, "metrics under valgrind: %s" % status)
	await expect_refused(srv, 401, what="no token under valgrind")
	srv.exit_expected = True
	srv.proc.send_signal(signal.SIGTERM)
	code = await c.wait_closed(20)
	check(code == 1001, "close code %s on SIGTERM, want 1001" % code)
	rc = await srv.wait_exit(60)
	with open(srv.vg_log) as f:
		report = f.read()
	errors = re.findall(r"ERROR SUMMARY: (\d+) errors", report)
	definite = re.findall(r"definitely lost: ([\d,]+) bytes", report)
	tail = "\n".join(report.splitlines()[-25:])
	check(rc == 0, "exit code %s under valgrind (99 = valgrind found errors); report tail:\n%s" % (rc, tail))
	check(errors and errors[-1] == "0", "valgrind errors %s; report tail:\n%s" % (errors, tail))
	check(not definite or definite[-1] == "0", "definitely lost %s bytes; report tail:\n%s"
	      % (definite[-1] if definite else "?", tail))
	summary = re.search(r"in use at exit: ([\d,]+) bytes", report)
	return "0 errors, no definite leaks (in use at exit: %s bytes)" % (summary.group(1) if summary else "?")


test_valgrind_session_no_errors_no_definite_leaks.timeout = 180

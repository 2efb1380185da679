"""GET /api/status, the figures of the status page (README, "Status page"),
and the page itself at /status.

The figures must be the server's own, moving with what happens: ticks in,
updates and frames out, clients by transport, errors by code, the store's
figures; the same readings /metrics gives. With --auth-secret the endpoint
needs a token with the admin claim: none is 401, one without the claim
403 naming it, an admin token 200 by header, ?token= or cookie."""

import asyncio
import json
import os
import sys
import time

from harness import REDIS_SERVER, SKIP, Client, Node, Redis, Server, check, http_request, tick, \
	REPO, auth_server, mint_token


async def status(srv, headers=None, path="/api/status"):
	code, hdrs, body = await http_request(srv.port, path, headers=headers)
	check(code == 200, "GET %s: %s %r" % (path, code, body[:200]))
	check(hdrs.get("content-type", "").startswith("application/json"),
	      "GET %s content-type %r" % (path, hdrs.get("content-type")))
	check(hdrs.get("cache-control") == "no-store", "GET %s is cacheable: %r"
	      % (path, hdrs.get("cache-control")))
	return json.loads(body)


def prometheus(text):
	"""{name or name{labels}: value} of the samples in /metrics text."""
	out = {}
	for line in text.splitlines():
		if line and not line.startswith("#"):
			name, value = line.rsplit(" ", 1)
			out[name] = float(value)
	return out


async def open_sse(srv):
	"""A Server-Sent Events session (GET /stream/events), its hello read;
	returns the open (reader, writer)."""
	reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
	writer.write(b"GET /stream/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		     b"Accept: text/event-stream\r\n\r\n")
	await writer.drain()
	seen = b""
	while b'"type":"hello"' not in seen:
		chunk = await asyncio.wait_for(reader.read(4096), 5)
		check(chunk, "the SSE stream closed before its hello: %r" % seen[:300])
		seen += chunk
	check(seen.startswith(b"HTTP/1.1 200"), "GET /stream/events: %r" % seen[:100])
	return reader, writer


async def wait_status(srv, pred, what, timeout=10.0):
	deadline = time.monotonic() + timeout
	while True:
		s = await status(srv)
		if pred(s):
			return s
		if time.monotonic() > deadline:
			raise AssertionError("%s within %.0f s; last /api/status: %s"
					     % (what, timeout, json.dumps(s)[:600]))
		await asyncio.sleep(0.05)


def counters(s):
	"""The counters of a status answer, by path ("ticks.applied", ...)."""
	out = {}
	for section in ("ticks", "updates", "errors"):
		for k, v in s[section].items():
			if k not in ("queued",) and isinstance(v, int):
				out[section + "." + k] = v
	for k in ("handshakes", "api", "subscribes"):
		for reason, v in s["refused"][k].items():
			out["refused.%s.%s" % (k, reason)] = v
	out["clients.opened"] = s["clients"]["opened"]
	out["feed.ticks"] = s["feed"]["ticks"]
	out["store.ticks_written"] = s["store"]["ticks_written"]
	out["store.commits"] = s["store"]["commits"]
	return out


async def test_status_figures_move_with_the_feed_and_match_metrics():
	srv = await Server(feed="stdin").start()
	s0 = await status(srv)
	check(s0["server"]["version"].startswith("publisher "), "version %r" % s0["server"]["version"])
	check(s0["server"]["auth"] is False and s0["server"]["degraded"] == "",
	      "server section %r" % s0["server"])
	check(abs(s0["server"]["now_ms"] / 1000 - time.time()) < 60, "now_ms %r is not the time"
	      % s0["server"]["now_ms"])
	check(s0["clients"]["total"] == 0, "clients before any: %r" % s0["clients"])
	check(s0["feed"]["kind"] == "stdin" and s0["feed"]["state"] == "running",
	      "feed %r" % s0["feed"])
	check(s0["store"] is not None and s0["redis"] is None, "store %r redis %r"
	      % (s0["store"], s0["redis"]))

	ws = await Client.connect(srv, name="ws")
	sse = await open_sse(srv)
	check(ws.epoch == s0["server"]["epoch"], "epoch %r, the hello says %r"
	      % (s0["server"]["epoch"], ws.epoch))
	await ws.subscribe(["AAPL"])
	s1 = await status(srv)
	check(s1["clients"]["total"] == 2 and s1["clients"]["websocket"] == 1 and
	      s1["clients"]["sse"] == 1 and s1["clients"]["poll"] == 0,
	      "two clients, one each of ws and sse: %r" % s1["clients"])
	check(s1["clients"]["subscriptions"] == 1, "subscriptions %r" % s1["clients"])

	t0 = time.monotonic()
	await srv.send_ticks([tick("AAPL", bid="1.%02d" % i) for i in range(1, 51)])
	await ws.wait_seq("AAPL", 50)
	s2 = await wait_status(srv, lambda s: s["store"]["ticks_written"] >= 50,
			       "50 ticks stored")
	took = time.monotonic() - t0
	grew = {k: counters(s2)[k] - counters(s0)[k] for k in counters(s0)}
	for k, at_least in (("ticks.received", 50), ("ticks.applied", 50),
			    ("feed.ticks", 50), ("updates.sent", 1),
			    ("updates.frames", 2), ("updates.bytes", 100),
			    ("updates.latency_count", 1), ("clients.opened", 2),
			    ("store.ticks_written", 50), ("store.commits", 1)):
		check(grew[k] >= at_least, "%s grew by %s, want %s or more" % (k, grew[k], at_least))
	check(s2["symbols"]["with_data"] == 1, "symbols %r" % s2["symbols"])
	check(s2["updates"]["latency_sum_s"] >= 0, "latency sum %r" % s2["updates"])

	await ws.send({"op": "nonsense"})
	await ws.expect("error")
	# A burst: 500 ticks pour in faster than the client is written to, so
	# some of its deltas merge several (counted, not asserted: it depends
	# on timing).
	await srv.send_ticks([tick("AAPL", bid="2.%03d" % i) for i in range(500)])
	await ws.wait_seq("AAPL", 550)
	s3 = await wait_status(srv, lambda s: s["store"]["ticks_written"] >= 550, "550 ticks stored")
	check(s3["errors"]["unknown_op"] - s0["errors"]["unknown_op"] == 1,
	      "errors.unknown_op %r -> %r" % (s0["errors"], s3["errors"]))
	for k, v in counters(s3).items():
		check(v >= counters(s2)[k], "counter %s went down: %s -> %s" % (k, counters(s2)[k], v))

	# /metrics and /api/status read the same figures: at rest they agree.
	m = prometheus((await http_request(srv.port, "/metrics"))[2].decode())
	s4 = await status(srv)
	for name, got in (("publisher_ticks_applied_total", s4["ticks"]["applied"]),
			  ("publisher_feed_ticks_total", s4["feed"]["ticks"]),
			  ("publisher_updates_sent_total", s4["updates"]["sent"]),
			  ("publisher_ticks_conflated_total", s4["ticks"]["conflated"]),
			  ("publisher_store_ticks_written_total", s4["store"]["ticks_written"]),
			  ('publisher_errors_sent_total{code="unknown_op"}', s4["errors"]["unknown_op"]),
			  ("publisher_connections", s4["clients"]["total"]),
			  ('publisher_stream_sessions{transport="sse"}', s4["clients"]["sse"])):
		check(m.get(name) == got, "%s is %s in /metrics, %s in /api/status" % (name, m.get(name), got))
	sse[1].close()
	return "50 ticks in, figures moved in %.2f s; %d ticks conflated" % (
		took, s4["ticks"]["conflated"] - s0["ticks"]["conflated"])


def _token(secret, **claims):
	return mint_token(secret, **{"sub": "ops", **claims})


async def test_status_needs_a_token_with_the_admin_claim():
	srv, secret = await auth_server()

	code, _, body = await http_request(srv.port, "/api/status")
	check(code == 401, "no token: %s %r, want 401" % (code, body[:200]))
	code, _, body = await http_request(
		srv.port, "/api/status", headers={"Authorization": "Bearer " + _token(secret, sub="trader")})
	check(code == 403 and b"admin" in body, "a token without the admin claim: %s %r, want 403 "
	      "naming the claim" % (code, body[:200]))
	code, _, body = await http_request(
		srv.port, "/api/status", headers={"Authorization": "Bearer " + _token(secret, admin=False)})
	check(code == 403, "\"admin\": false: %s %r, want 403" % (code, body[:200]))
	code, _, body = await http_request(
		srv.port, "/api/status", headers={"Authorization": "Bearer " + _token(secret, admin="yes")})
	check(code == 401, "\"admin\": \"yes\" (not a boolean): %s %r, want 401" % (code, body[:200]))

	admin = _token(secret, admin=True, symbols=[])
	by_header = await status(srv, headers={"Authorization": "Bearer " + admin})
	by_query = await status(srv, path="/api/status?token=" + admin)
	by_cookie = await status(srv, headers={"Cookie": "theme=dark; token=" + admin})
	check(by_header["server"]["auth"] is True, "server.auth %r" % by_header["server"])
	refused = by_cookie["refused"]["api"]
	check(refused["forbidden"] >= 2 and refused["unauthorized"] >= 2,
	      "the refusals are counted: %r" % refused)
	check(by_query["server"]["epoch"] == by_header["server"]["epoch"], "two epochs")
	# /metrics stays open for monitoring, as before.
	code, _, _ = await http_request(srv.port, "/metrics")
	check(code == 200, "/metrics without a token: %s" % code)
	log = srv.stderr_text()
	check("no admin claim" in log and "sub 'trader'" in log,
	      "the 403 is logged with the token's sub")


async def test_status_of_an_ingest_and_an_edge_shows_the_redis_link():
	if not REDIS_SERVER:
		return SKIP
	r = await Redis().start()
	ing = await Node("ingest", r, "ingest").start()
	edge = await Node("edge", r, "edge").start()
	await ing.send_ticks([tick("AAPL", bid="1.%02d" % i) for i in range(1, 21)])
	si = await wait_status(ing, lambda s: s["redis"]["connected"] and s["redis"]["ticks"] >= 20,
			       "the ingest published 20 ticks")
	se = await wait_status(edge, lambda s: s["redis"]["synced"] and s["ticks"]["applied"] >= 20,
			       "the edge applied 20 ticks from Redis")
	check(si["redis"]["role"] == "ingest" and se["redis"]["role"] == "edge",
	      "roles %r, %r" % (si["redis"], se["redis"]))
	check(se["feed"]["kind"] == "none" and se["store"] is None,
	      "an edge without a db has no feed of its own and no store: %r, %r" % (se["feed"], se["store"]))
	check(se["server"]["epoch"] == si["server"]["epoch"], "the edge is in another epoch")
	check(se["server"]["degraded"] == "", "edge degraded: %r" % se["server"]["degraded"])
	return "edge lag %.3f s" % se["redis"]["lag_s"]


async def test_status_page_is_served_at_status_and_status_html():
	srv = await Server(feed="stdin").start()
	for path in ("/status", "/status/", "/status?token=x"):
		code, hdrs, body = await http_request(srv.port, path)
		check(code == 200 and hdrs.get("content-type", "").startswith("text/html"),
		      "GET %s: %s %r" % (path, code, hdrs.get("content-type")))
		check(b"/js/status-page.js" in body, "GET %s is not the status page" % path)
		csp = hdrs.get("content-security-policy", "")
		check("script-src 'self'" in csp, "GET %s: no strict CSP (%r)" % (path, csp))
	code, hdrs, body = await http_request(srv.port, "/status.html")
	check(code == 200 and b"/js/status-page.js" in body, "GET /status.html: %s" % code)
	for path in ("/js/status-page.js", "/status.css"):
		code, _, _ = await http_request(srv.port, path)
		check(code == 200, "GET %s: %s" % (path, code))

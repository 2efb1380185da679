"""Process life and the other front doors: signals, command line, exit
codes, HTTP."""

import asyncio
import re
import signal
import socket
import time

from harness import Client, Server, check, http_request, run_cli, start_server, tick


async def _shutdown(sig):
	srv = await start_server()
	await srv.send_ticks([tick("AAPL", bid="1.5")])
	c = await Client.connect(srv)
	await c.subscribe(["AAPL"])
	await c.wait_seq("AAPL", 1)
	idle = await Client.connect(srv, name="idle")
	t0 = time.monotonic()
	srv.proc.send_signal(sig)
	code = await c.wait_closed(3)
	idle_code = await idle.wait_closed(1)
	rc = await srv.wait_exit(max(0.1, 3 - (time.monotonic() - t0)))
	dt = time.monotonic() - t0
	check(code == 1001, "subscribed client saw close code %s after %s, want 1001" % (code, sig.name))
	check(idle_code == 1001, "idle client saw close code %s after %s, want 1001" % (idle_code, sig.name))
	check(rc is not None, "still running 3 s after %s" % sig.name)
	check(rc == 0, "exit code %s after %s, want 0" % (rc, sig.name))
	return "exited in %.2f s" % dt


async def test_sigterm_closes_clients_1001_and_exits_0():
	return await _shutdown(signal.SIGTERM)


async def test_sigint_closes_clients_1001_and_exits_0():
	return await _shutdown(signal.SIGINT)


async def test_cli_bad_flag_exit_2_names_option():
	rc, out, err = await run_cli(["serve", "--no-such-flag", "--feed", "none"])
	check(rc == 2, "unknown flag: exit %s, want 2 (stderr %r)" % (rc, err[-300:]))
	check("--no-such-flag" in err, "stderr does not name --no-such-flag: %r" % err[-300:])
	rc, out, err = await run_cli(["serve", "--heartbeat-ms", "soon", "--feed", "none"])
	check(rc == 2, "--heartbeat-ms soon: exit %s, want 2 (stderr %r)" % (rc, err[-300:]))
	check("heartbeat-ms" in err, "stderr does not name --heartbeat-ms: %r" % err[-300:])
	rc, out, err = await run_cli(["serve", "--listen"])
	check(rc == 2, "--listen without a value: exit %s, want 2 (stderr %r)" % (rc, err[-300:]))
	check("listen" in err, "stderr does not name --listen: %r" % err[-300:])


async def test_cli_unknown_command_exit_2():
	rc, out, err = await run_cli(["frobnicate"])
	check(rc == 2, "unknown command: exit %s, want 2 (stderr %r)" % (rc, err[-300:]))
	check("frobnicate" in err, "stderr does not name the command: %r" % err[-300:])


async def test_cli_bad_feed_spec_exit_2_names_feed():
	argv = Server(feed="synthetic:rate=x", name="bad-feed").argv()
	rc, out, err = await run_cli(argv[1:], timeout=5)
	check(rc == 2, "--feed synthetic:rate=x: exit %s, want 2 (a bad option value; stderr %r)"
	      % (rc, err[-300:]))
	check("rate" in err and "feed" in err, "stderr does not say what is wrong with the feed: %r"
	      % err[-300:])


async def test_cli_help_exit_0():
	rc, out, err = await run_cli(["--help"])
	check(rc == 0, "--help: exit %s, want 0" % rc)
	text = out + err
	for word in ("serve", "replay", "export", "--listen", "--feed", "--db"):
		check(word in text, "--help does not mention %s: %r" % (word, text[:400]))


async def test_cli_version():
	rc, out, err = await run_cli(["--version"])
	check(rc == 0, "--version: exit %s, want 0" % rc)
	check(re.fullmatch(r"publisher \d+\.\d+\.\d+\n?", out), "--version printed %r" % out)


async def test_cli_port_in_use_exit_1_with_cause():
	holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
	holder.bind(("127.0.0.1", 0))
	holder.listen(1)
	port = holder.getsockname()[1]
	try:
		srv = Server(feed="none", name="second")
		argv = srv.argv()
		argv[argv.index("127.0.0.1:0")] = "127.0.0.1:%d" % port
		rc, out, err = await run_cli(argv[1:], timeout=10)
	finally:
		holder.close()
	check(rc == 1, "port %d in use: exit %s, want 1 (stderr %r)" % (port, rc, err[-300:]))
	low = err.lower()
	check(str(port) in err or "in use" in low or "bind" in low or "listen" in low,
	      "stderr does not name the cause (port %d in use): %r" % (port, err[-300:]))
	return err.strip().splitlines()[-1][:120] if err.strip() else ""


async def test_http_root_serves_dashboard_with_security_headers():
	srv = await start_server(feed="none")
	status, headers, body = await asyncio.wait_for(http_request(srv.port, "/"), 10)
	check(status == 200, "GET / status %s (body %r)" % (status, body[:200]))
	ctype = headers.get("content-type", "")
	check(ctype.startswith("text/html"), "GET / content-type %r, want text/html" % ctype)
	check("content-security-policy" in headers, "GET / has no Content-Security-Policy: %s" % headers)
	check(headers.get("x-content-type-options", "").lower() == "nosniff",
	      "X-Content-Type-Options %r, want nosniff" % headers.get("x-content-type-options"))
	check(b"<html" in body.lower() or b"<!doctype" in body.lower(),
	      "GET / body is not an HTML page: %r" % body[:200])
	return "CSP: " + headers["content-security-policy"][:100]


async def test_plain_http_get_ws_does_not_crash_server():
	srv = await start_server(feed="none")
	try:
		status, headers, body = await asyncio.wait_for(http_request(srv.port, "/ws"), 10)
		note = "GET /ws without upgrade: %s" % status
	except (OSError, Exception) as e:  # the server may just close it
		note = "GET /ws without upgrade: %s" % type(e).__name__
	await asyncio.sleep(0.2)
	check(srv.alive(), "server exited (code %s) after a plain GET /ws" % srv.proc.returncode)
	c = await Client.connect(srv)
	await c.ping_ok()
	return note

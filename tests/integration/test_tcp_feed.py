"""The tcp feed (README, feed table: tcp:HOST:PORT[,idle=SECS][,secret=FILE])
as producers meet it: a slot is not held by a producer that sends nothing
or trickles bytes without ending a line, a garbage first line does not
decide a connection's format, and with a secret only a producer whose first
line is the right AUTH gets its ticks to the WebSocket clients. Producers
are raw sockets; the ticks are checked where a dashboard would see them."""

import asyncio
import os
import socket
import tempfile
import time

from harness import Client, Server, assert_fields, check, free_port, run_cli, tick, tick_line

# The feed's cap on producers connected at once.
MAX_PRODUCERS = 64

SECRET = "s3cret-for-the-tcp-feed-tests"


def _connect(port):
	return socket.create_connection(("127.0.0.1", port), timeout=5)


def _read_until_closed(s, timeout=5.0):
	"""Everything the feed sends until it closes the connection itself
	(not after our shutdown); fails if it is still open after timeout s."""
	s.settimeout(timeout)
	data = b""
	try:
		while True:
			chunk = s.recv(4096)
			if not chunk:
				return data.decode("utf-8", "replace")
			data += chunk
	except socket.timeout:
		raise AssertionError("the feed did not close the producer within %.0f s; it "
				     "sent %r" % (timeout, data))
	finally:
		s.close()


def _replies(s):
	"""What the feed answers a producer that is done sending."""
	s.shutdown(socket.SHUT_WR)
	return _read_until_closed(s)


def _lines(ticks):
	return "".join(tick_line(t) + "\n" for t in ticks).encode()


def _secret_file(text):
	d = tempfile.mkdtemp(prefix="publisher-it-tcp-")
	path = os.path.join(d, "feed.secret")
	with open(path, "w") as f:
		f.write(text)
	return path


async def test_idle_producers_time_out_and_free_their_slots():
	port = free_port()
	srv = await Server(feed="tcp:127.0.0.1:%d,idle=1" % port).start()
	c = await Client.connect(srv)
	await c.subscribe(["REAL"])
	# Every slot taken by a producer that connects and sends nothing.
	idle = [_connect(port) for _ in range(MAX_PRODUCERS)]
	t0 = time.monotonic()
	refused = await asyncio.to_thread(_read_until_closed, _connect(port))
	check(refused == "ERR 0 too many producers connected; try again later\n",
	      "producer %d was answered %r" % (MAX_PRODUCERS + 1, refused))
	# Each idle one is told why and closed, which frees its slot.
	for i, s in enumerate(idle):
		got = await asyncio.to_thread(_read_until_closed, s)
		check(got == "ERR 0 idle for 1 s, closing\n", "idle producer %d got %r" % (i, got))
	closed_after = time.monotonic() - t0
	# A real producer now gets in and its ticks reach the client.
	ticks = [tick("REAL", bid="10.%02d" % i, ask="10.%02d" % (i + 1)) for i in range(3)]
	p = _connect(port)
	p.sendall(_lines(ticks))
	await c.wait_seq("REAL", 3)
	assert_fields(c.state["REAL"]["fields"], {"bid": ticks[-1]["bid"], "ask": ticks[-1]["ask"]},
		      "client")
	replies = await asyncio.to_thread(_replies, p)
	check(replies == "", "the real producer was answered %r" % replies)
	c.assert_clean()
	return "%d idle producers closed %.2f s after the slots ran out (idle=1); the next " \
	       "producer's 3 ticks streamed" % (MAX_PRODUCERS, closed_after)


def _trickle_and_steady(port):
	"""A trickler sends a byte every 100 ms and never a newline; a steady
	producer a whole line every 300 ms. Runs until the trickler is closed
	and 2 s (twice idle) have passed, or 5 s. Returns (what the trickler
	got, seconds until it was closed or None, steady ticks sent)."""
	trickler, steady = _connect(port), _connect(port)
	trickler.setblocking(False)
	trickler.send(b'{"ts":1,"symbol":"SLOW",')
	t0 = time.monotonic()
	got, closed_at, sent, i = b"", None, [], 0
	while time.monotonic() - t0 < 5 and (closed_at is None or time.monotonic() - t0 < 2):
		time.sleep(0.1)
		i += 1
		if closed_at is None:
			try:
				trickler.send(b" ")
			except OSError:
				pass
			try:
				while True:
					chunk = trickler.recv(4096)
					if not chunk:
						closed_at = time.monotonic() - t0
						break
					got += chunk
			except BlockingIOError:
				pass
			except OSError:
				closed_at = time.monotonic() - t0
		if i % 3 == 0:
			t = tick("STEADY", bid="20.%02d" % i, ask="21.%02d" % i)
			steady.sendall(_lines([t]))
			sent.append(t)
	trickler.close()
	steady.close()
	return got.decode("utf-8", "replace"), closed_at, sent


async def test_a_trickler_cannot_hold_a_slot():
	port = free_port()
	srv = await Server(feed="tcp:127.0.0.1:%d,idle=1" % port).start()
	c = await Client.connect(srv)
	await c.subscribe(["STEADY", "SLOW"])
	got, closed_at, sent = await asyncio.to_thread(_trickle_and_steady, port)
	check(closed_at is not None, "a producer trickling a byte every 100 ms without a newline "
	      "was still connected after 5 s with idle=1 (it got %r)" % got)
	check(got == "ERR 0 idle for 1 s, closing\n", "the trickler got %r" % got)
	# The steady producer, sending lines all along, was never closed.
	await c.wait_seq("STEADY", len(sent))
	assert_fields(c.state["STEADY"]["fields"], {"bid": sent[-1]["bid"]}, "client")
	check("SLOW" not in c.state, "the trickler's unfinished line became a tick")
	check("line is dropped" in srv.stderr_text(),
	      "the trickler's unfinished line was not logged as dropped")
	c.assert_clean()
	return "trickler closed %.2f s after it connected (idle=1); the steady producer's %d " \
	       "lines over %.1f s all streamed" % (closed_at, len(sent), len(sent) * 0.3)


async def test_garbage_first_line_does_not_decide_the_format():
	port = free_port()
	srv = await Server(feed="tcp:127.0.0.1:%d" % port).start()
	c = await Client.connect(srv)
	await c.subscribe(["GARB"])
	ticks = [tick("GARB", bid="1.%d" % i, ask="2.%d" % i) for i in range(1, 4)]
	p = _connect(port)
	p.sendall(b"hello\n" + _lines(ticks))
	replies = await asyncio.to_thread(_replies, p)
	lines = replies.splitlines()
	check(len(lines) == 1 and lines[0].startswith("ERR 1 "),
	      "'hello' then 3 JSONL ticks: the feed answered %r (want one ERR for line 1 only)"
	      % replies)
	await c.wait_seq("GARB", 3)
	assert_fields(c.state["GARB"]["fields"], {"bid": ticks[-1]["bid"], "ask": ticks[-1]["ask"]},
		      "client")
	c.assert_clean()
	return "'hello' answered %r; the 3 JSONL ticks after it streamed" % lines[0][:60]


async def test_producers_without_the_secret_are_refused():
	port = free_port()
	path = _secret_file(SECRET + "\n")
	srv = await Server(feed="tcp:127.0.0.1:%d,secret=%s" % (port, path)).start()
	c = await Client.connect(srv)
	await c.subscribe(["OK", "BAD"])
	bad = _lines([tick("BAD", bid="6.66")])
	for send, want in [
			(bad, "ERR 0 this feed needs 'AUTH <secret>' as the first line; closing\n"),
			(b"AUTH wrong\n" + bad, "ERR 0 wrong secret; closing\n"),
			(b"AUTH " + SECRET[:-1].encode() + b"\n" + bad, "ERR 0 wrong secret; closing\n")]:
		s = _connect(port)
		s.sendall(send)
		got = await asyncio.to_thread(_read_until_closed, s)
		check(got == want, "a producer sending %r was answered %r, want %r" % (send[:40], got, want))
	ticks = [tick("OK", bid="3.%d" % i, ask="4.%d" % i) for i in range(1, 4)]
	s = _connect(port)
	s.sendall(b"AUTH " + SECRET.encode() + b"\n" + _lines(ticks))
	await c.wait_seq("OK", 3)
	assert_fields(c.state["OK"]["fields"], {"bid": ticks[-1]["bid"]}, "client")
	got = await asyncio.to_thread(_replies, s)
	check(got == "", "the producer with the secret was answered %r" % got)
	await c.collect(0.2)
	check("BAD" not in c.state, "a refused producer's tick reached the client: %r"
	      % c.state.get("BAD"))
	c.assert_clean()
	os.remove(path)
	os.rmdir(os.path.dirname(path))
	return "no AUTH, a wrong secret and a prefix of it refused with ERR 0; the right one " \
	       "streamed 3 ticks"


async def test_bad_tcp_options_are_usage_errors():
	empty = _secret_file("")
	cases = [
		("tcp:127.0.0.1:0,secret=/nonexistent/feed.secret",
		 "cannot read secret file '/nonexistent/feed.secret': No such file or directory"),
		("tcp:127.0.0.1:0,secret=%s" % empty, "secret file '%s' is empty" % empty),
		("tcp:127.0.0.1:0,idle=0", "idle must be a whole number of seconds from 1 to 86400"),
		("tcp:127.0.0.1:0,idle=5,idle=5", "option 'idle' is given twice"),
	]
	for spec, want in cases:
		rc, _, err = await run_cli(["serve", "--feed", spec, "--db", "none",
					    "--listen", "127.0.0.1:0"])
		check(rc == 2, "--feed %s: exit %s, want 2 (usage); stderr %r" % (spec, rc, err[-300:]))
		check(want in err, "--feed %s: stderr %r lacks %r" % (spec, err[-300:], want))
	os.remove(empty)
	os.rmdir(os.path.dirname(empty))
	return "%d bad specs: exit 2, each naming its problem" % len(cases)


async def _stderr_with(srv, text, timeout=3.0):
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		if text in srv.stderr_text():
			return True
		await asyncio.sleep(0.05)
	return False


async def test_listening_beyond_loopback_without_a_secret_warns():
	srv = await Server(feed="tcp:0.0.0.0:0", name="open").start()
	check(await _stderr_with(srv, "tcp feed listening on 0.0.0.0:"),
	      "the feed did not say where it listens: %s" % srv.stderr_tail())
	warned = [l for l in srv.stderr_text().splitlines() if "beyond loopback" in l]
	check(warned and "without a secret" in warned[0],
	      "tcp:0.0.0.0 without a secret gave no warning: %s" % srv.stderr_tail())
	await srv.stop()
	path = _secret_file(SECRET)
	guarded = await Server(feed="tcp:0.0.0.0:0,secret=%s" % path, name="guarded").start()
	check(await _stderr_with(guarded, "tcp feed listening on 0.0.0.0:"),
	      "the feed did not say where it listens: %s" % guarded.stderr_tail())
	check("beyond loopback" not in guarded.stderr_text(),
	      "warned although a secret is set: %s" % guarded.stderr_tail())
	await guarded.stop()
	os.remove(path)
	os.rmdir(os.path.dirname(path))
	return warned[0].split("warn", 1)[-1].strip()[:100]

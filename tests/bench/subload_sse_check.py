#!/usr/bin/env python3
"""subload_sse_check.py: subload's SSE reader against a small fake server.

    tests/bench/subload_sse_check.py [SUBLOAD]    (default build/bench/subload)

The fake speaks the stream transports' wire as tests/bench/subload_sse.c
expects it: GET /stream/events answers a stream frame and a hello, POST
/stream/send?session=KEY takes a subscribe (202) and the session then gets
a snapshot frame and, every 20 ms, a batch of BATCH deltas that go on from
the seqs it holds. To try the reader's corners, each connection gets the
stream in its own way: chunked or not, lines ended by LF, CRLF or CR, the
bytes cut into pieces of 1 to 40 bytes (some written alone, a millisecond
apart), a comment, an `event: message` and a `retry:` line before the
subscribe.

Run 1 (a faithful server): every client ready and subscribed, no gap (a
frame lost, doubled or cut wrongly breaks the chain of from/seq), exactly
BATCH updates per frame in the window, no protocol error, nothing listed as
departing from the wire.
Run 2 (a server that departs from the wire): no X-Accel-Buffering header,
an id skipped, an event without a blank line after it, an event without an
id: each is listed by subload.

Asserts the behaviour only; the rates it prints are not checked.
"""
import http.server
import json
import os
import queue
import random
import re
import secrets
import socket
import socketserver
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYMBOLS = 20
BATCH = 5
CONNS = 12


class Hub:
    """The symbols' state and the sessions subscribed to every change."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seq = [0] * SYMBOLS
        self.sessions = {}  # key -> Session
        self.subscribed = []
        self.next_sym = 0

    def tick_batch(self):
        with self.lock:
            ups = []
            for _ in range(BATCH):
                s = self.next_sym
                self.next_sym = (s + 1) % SYMBOLS
                self.seq[s] += 1
                ups.append('{"type":"delta","symbol":"S%04d","from":%d,"seq":%d,'
                           '"ts":%d,"bid":%d.25,"ask":%d.75,"last":%d.5,"volume":%d}'
                           % (s, self.seq[s] - 1 if self.seq[s] > 1 else 0, self.seq[s],
                              int(time.time() * 1e6), s, s, s, self.seq[s] * 100))
            frame = "[" + ",".join(ups) + "]"
            for sess in self.subscribed:
                sess.q.put(frame)

    def subscribe(self, sess):
        with self.lock:
            snaps = ['{"type":"snapshot","symbol":"S%04d","seq":%d,"ts":%d,"bid":1.5}'
                     % (s, self.seq[s], int(time.time() * 1e6)) for s in range(SYMBOLS)]
            sess.q.put('{"type":"subscribed","id":1,"symbols":%d}' % SYMBOLS)
            sess.q.put("[" + ",".join(snaps) + "]")
            self.subscribed.append(sess)


class Session:
    def __init__(self, n):
        self.key = secrets.token_hex(16)
        self.q = queue.Queue()
        self.n = n  # the connection's number: how its stream is cut


def make_handler(hub, deviate):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        count = [0]

        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            key = self.path.split("session=", 1)[-1]
            sess = hub.sessions.get(key)
            if not self.path.startswith("/stream/send?") or not sess:
                msg = b'{"type":"error","code":"unknown_session","message":"no such session"}'
                self.send_response(404)
                self.send_header("Content-Length", str(len(msg)))
                self.end_headers()
                self.wfile.write(msg)
                return
            if json.loads(body).get("op") == "subscribe":
                hub.subscribe(sess)
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()

        def do_GET(self):
            if not self.path.startswith("/stream/events"):
                self.send_error(404)
                return
            self.count[0] += 1
            sess = Session(self.count[0])
            hub.sessions[sess.key] = sess
            chunked = sess.n % 2 == 0
            eol = ["\n", "\r\n", "\r"][sess.n % 3]
            rng = random.Random(sess.n)
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            if not deviate:
                self.send_header("X-Accel-Buffering", "no")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

            def write(text):
                data = text.encode()
                i = 0
                while i < len(data):
                    k = rng.choice([1, 2, 7, 40, len(data)])
                    piece = data[i:i + k]
                    i += k
                    if chunked:
                        piece = b"%x;ext=1\r\n" % len(piece) + piece + b"\r\n"
                    self.wfile.write(piece)
                    if rng.random() < 0.1:
                        self.wfile.flush()
                        time.sleep(0.001)
                self.wfile.flush()

            n = 0

            def event(frame, skip=0, no_id=False, no_blank=False):
                nonlocal n
                n += 1 + skip
                text = "" if no_id else f"id: {sess.key}:{n}{eol}"
                text += f"data: {frame}{eol}"
                if not no_blank:
                    text += eol
                write(text)

            try:
                # The stream frame has no id: the hello is frame 1.
                write('data: {"type":"stream","session":"%s","transport":"sse","resumed":false,'
                      '"linger_ms":30000}%s%s' % (sess.key, eol, eol))
                write(f": a comment{eol}event: message{eol}retry: 3000{eol}{eol}")
                event('{"type":"hello","protocol":1,"server":"fake"}',
                      skip=1 if deviate else 0, no_blank=deviate)
                if deviate:
                    event('{"type":"heartbeat"}')
                    event('{"type":"heartbeat"}', no_id=True)
                while True:
                    event(sess.q.get())
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                with hub.lock:
                    if sess in hub.subscribed:
                        hub.subscribed.remove(sess)

    return Handler


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver listens with a backlog of 5: a burst of connections
    # past it waits a second for its SYN to be tried again.
    request_queue_size = 128


def run(subload, deviate):
    hub = Hub()
    srv = Server(("127.0.0.1", 0), make_handler(hub, deviate))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    stop = threading.Event()

    def ticker():
        while not stop.wait(0.02):
            hub.tick_batch()

    threading.Thread(target=ticker, daemon=True).start()
    cmd = [subload, "--transport", "sse", "--port", str(srv.server_address[1]),
           "--conns", str(CONNS), "--symbols", str(SYMBOLS), "--per-conn", "all",
           "--open-rate", "1000", "--settle", "0.3", "--warmup", "1", "--duration", "2",
           "--label", "sse-check"]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    stop.set()
    srv.shutdown()
    res = dict(kv.split("=", 1) for kv in p.stdout.split()[1:] if "=" in kv)
    print(f"  ({time.time() - t0:.1f} s) {p.stdout.strip()[:400]} ...")
    return res, p.stderr


def main():
    subload = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build/bench/subload")
    failures = []

    def check(cond, what):
        print(("ok    " if cond else "FAIL  ") + what)
        if not cond:
            failures.append(what)

    print("run 1: a server that keeps to the wire")
    res, err = run(subload, deviate=False)
    check(res.get("transport") == "sse", "RESULT says transport=sse")
    check(res.get("ready") == str(CONNS) and res.get("ready_end") == str(CONNS),
          f"every client ready and still open (ready={res.get('ready')}, "
          f"ready_end={res.get('ready_end')})")
    check(res.get("failed") == "0" and res.get("closed") == "0", "none failed or closed")
    check(float(res.get("upd_per_s", 0)) > 0, f"updates delivered ({res.get('upd_per_s')}/s)")
    check(res.get("gaps") == "0", f"no gap in any chain of from/seq (gaps={res.get('gaps')})")
    # Exactly BATCH once the subscribe's reply and snapshots are behind
    # (they come within milliseconds; the window opens a second later).
    exact = res.get("snapshots") == "0"
    check(abs(float(res.get("upd_per_frame", 0)) - BATCH) < (1e-9 if exact else 0.1 * BATCH),
          f"{BATCH} updates per frame in the window (upd_per_frame={res.get('upd_per_frame')}"
          f"{'' if exact else ', the snapshots came late: within 10 %'})")
    check(res.get("proto_errors") == "0", f"no protocol error (proto_errors={res.get('proto_errors')})")
    check(f"{CONNS} requests posted, {CONNS} accepted (202)" in err, "every subscribe POSTed and accepted")
    check(not re.search(r"subload: sse: \d+ x ", err), "nothing listed as departing from the wire")
    if failures:
        print(err)

    print("run 2: a server that departs from the wire")
    res, err = run(subload, deviate=True)
    for what in ("without X-Accel-Buffering: no", "event ids not numbered 1, 2, 3",
                 "an id after its event's data", "an event without an id"):
        check(what in err, f"listed: {what}")
    check(res.get("gaps") == "0", "the updates still read in order")
    if failures:
        print(err)
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

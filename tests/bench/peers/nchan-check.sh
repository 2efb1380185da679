#!/usr/bin/env bash
# nchan-check.sh: smoke test of the nchan peer (nginx + nchan from
# peers/nchan.conf.in, fed by tests/bench/nchan-bridge.c). Not part of
# `make test`; run it by hand after touching either file:
#
#   tests/bench/peers/nchan-check.sh [BRIDGE_BINARY]
#
# In a temp dir it fills the template, starts nginx (a master and one
# worker, loopback only), then for each bridge mode (wsq, ws, http): starts
# the bridge, connects one WebSocket subscriber to three channels,
# X0001,X0002,X0003 (X = Q, W, H by mode; a raw RFC 6455 client in python3,
# standard library only), sends ticks for X0001..X0004 through the bridge
# and checks that exactly the subscribed ones arrive, each as one unmasked
# text frame whose payload is the tick line byte for byte, in order per
# channel, and that a client ping is answered. It also checks that one
# connection may subscribe to 255 channels and that 256 are refused, that
# the bridge and nginx exit with status 0 on SIGTERM, and that nginx logged
# no alert. Exits 0 on success, 1 with the logs on failure.
#
# Needs nginx and the Debian package libnginx-mod-nchan (installed here with
# apt-get when missing and run as root), python3 and cc (the bridge is built
# from source into the temp dir unless BRIDGE_BINARY is given).
set -u

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
MODULE=${NCHAN_MODULE:-/usr/lib/nginx/modules/ngx_nchan_module.so}
PY=/usr/bin/python3
[ -x $PY ] || PY=python3
WORK=$(mktemp -d /tmp/nchan-check.XXXXXX)
NGINX_PID=
BRIDGE_PID=

say() { printf 'nchan-check: %s\n' "$*" >&2; }
fail() {
	say "FAIL: $*"
	[ -s "$WORK/error.log" ] && sed 's/^/  nginx: /' "$WORK/error.log" >&2
	[ -s "$WORK/bridge.log" ] && sed 's/^/  bridge: /' "$WORK/bridge.log" >&2
	exit 1
}
stop_pid() { # stop_pid PID: TERM, then KILL after 5 s; returns its status
	local i
	[ -n "$1" ] || return 0
	kill "$1" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}
cleanup() {
	stop_pid "$BRIDGE_PID"
	stop_pid "$NGINX_PID"
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! [ -f "$MODULE" ] && [ "$(id -u)" -eq 0 ]; then
	say "installing libnginx-mod-nchan"
	apt-get install -y -q libnginx-mod-nchan >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null 2>&1 &&
		  apt-get install -y -q libnginx-mod-nchan >/dev/null 2>&1; }
fi
[ -f "$MODULE" ] || fail "$MODULE is missing (apt-get install libnginx-mod-nchan)"
command -v nginx >/dev/null || fail "nginx is missing"

BRIDGE=${1:-}
if [ -z "$BRIDGE" ]; then
	BRIDGE=$WORK/nchan-bridge
	${CC:-cc} -std=gnu11 -O2 -Wall -Wextra -Werror -Wshadow \
		-Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter \
		-Wformat=2 -Wvla -o "$BRIDGE" "$ROOT/tests/bench/nchan-bridge.c" -lm ||
		fail "cannot build nchan-bridge"
fi

free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PUB_PORT=$(free_port)
WS_PORT=$(free_port)
sed -e "s#@WORKDIR@#$WORK#g" -e "s#@NCHAN_MODULE@#$MODULE#g" \
	-e "s#@PUB_PORT@#$PUB_PORT#g" -e "s#@WS_PORT@#$WS_PORT#g" \
	"$ROOT/tests/bench/peers/nchan.conf.in" >"$WORK/nchan.conf"
nginx -p "$WORK" -c "$WORK/nchan.conf" -e "$WORK/error.log" &
NGINX_PID=$!
for ((i = 0; i < 100; i++)); do
	$PY -c "import socket,sys; socket.create_connection(('127.0.0.1',$WS_PORT),1)" 2>/dev/null && break
	kill -0 $NGINX_PID 2>/dev/null || fail "nginx exited"
	sleep 0.05
done
say "nginx $(nginx -v 2>&1 | sed 's/.*\///') pid $NGINX_PID, publisher :$PUB_PORT, subscribers :$WS_PORT"

# The subscriber and the tick sender. Prints OK lines; exits non-zero with a
# reason on the first mismatch.
cat >"$WORK/check.py" <<'EOF'
import base64, os, socket, struct, sys, time

ws_port, bridge_port, pfx = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
limits = len(sys.argv) > 4


def ws_connect(path):
    s = socket.create_connection(("127.0.0.1", ws_port), 5)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return s, head.split(b"\r\n")[0].decode(errors="replace"), rest


def read_frames(s, rest, want, secs, opcodes=(1, 2)):
    """Frames (fin, opcode, masked, payload) until `want` frames with one of
    `opcodes` have come or `secs` have passed."""
    buf, frames, end = rest, [], time.time() + secs
    while True:
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            n, off = b1 & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, off = struct.unpack(">H", buf[2:4])[0], 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, off = struct.unpack(">Q", buf[2:10])[0], 10
            if b1 & 0x80:
                off += 4
            if len(buf) < off + n:
                break
            frames.append((b0 >> 7, b0 & 0x0F, b1 >> 7, buf[off:off + n]))
            buf = buf[off + n:]
        if want and sum(1 for f in frames if f[1] in opcodes) >= want:
            break
        left = end - time.time()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
    return frames


def fail(msg):
    print("FAIL", msg)
    sys.exit(1)


# One subscriber, three channels.
chans = ["%s%04d" % (pfx, i) for i in (1, 2, 3, 4)]
sub, status, rest = ws_connect("/sub/" + ",".join(chans[:3]))
if " 101 " not in status + " ":
    fail(f"subscribe: {status}")
time.sleep(0.2)

ticks = []
for i in range(12):
    sym = chans[i % 4]
    ticks.append(('{"ts":%d,"symbol":"%s","bid":189.%02d,"ask":189.%02d}'
                  % (int(time.time() * 1e6), sym, i, i + 2)).encode())
feed = socket.create_connection(("127.0.0.1", bridge_port), 5)
# in two writes, the second cutting a line, as a TCP stream may
blob = b"\n".join(ticks) + b"\n"
feed.sendall(blob[:100])
time.sleep(0.05)
feed.sendall(blob[100:])
want = [t for t in ticks if chans[3].encode() not in t]
frames = read_frames(sub, rest, len(want), 5)
got = [f[3] for f in frames if f[1] in (1, 2)]
for f in frames:
    if f[1] in (1, 2) and (f[0] != 1 or f[1] != 1 or f[2] != 0):
        fail(f"frame not a single unmasked text frame: {f[:3]}")


# In order per channel. Across channels only the http mode keeps the
# producer's order (one connection); ws and wsq publish each channel on its
# own connection.
def per_channel(msgs):
    return {c: [m for m in msgs if c.encode() in m] for c in chans}


if per_channel(got) != per_channel(want) or len(got) != len(want):
    fail(f"received {got!r}, wanted {want!r}")
extra = read_frames(sub, b"", 1, 0.5)
if extra:
    fail(f"unexpected frames after the ticks: {extra!r}")
print(f"OK {len(got)} ticks for {','.join(chans[:3])} arrived as text "
      "frames, payload = the tick line without its newline, in order per "
      f"channel; none for {chans[3]}")

# A client ping is answered with a pong of the same payload.
sub.sendall(bytes([0x89, 0x84, 0, 0, 0, 0]) + b"ping")
frames = read_frames(sub, b"", 1, 2, (0xA,))
if not any(f[1] == 0xA and f[3] == b"ping" for f in frames):
    fail(f"no pong: {frames!r}")
print("OK a client ping is answered with a pong")
feed.close()
sub.close()

if limits:
    syms = ["L%04d" % i for i in range(256)]
    s, status, _ = ws_connect("/sub/" + ",".join(syms[:255]))
    if " 101 " not in status + " ":
        fail(f"255 channels: {status}")
    s.close()
    s, status, _ = ws_connect("/sub/" + ",".join(syms))
    if " 101 " in status + " ":
        fail("256 channels were accepted")
    s.close()
    print(f"OK 255 channels on one connection accepted, 256 refused ({status})")
EOF

# Fresh channels for each mode (Q0001.., W0001.., H0001..): a multiplexed
# subscriber can be handed the message already buffered in a channel it
# joins (see nchan_subscriber_first_message in nchan.conf.in), which would
# fail the comparison.
first=1
for mode in wsq ws http; do
	case $mode in http) pfx=H ;; ws) pfx=W ;; wsq) pfx=Q ;; esac
	rm -f "$WORK/bridge.port"
	"$BRIDGE" --nchan "127.0.0.1:$PUB_PORT" --mode $mode \
		--port-file "$WORK/bridge.port" 2>>"$WORK/bridge.log" &
	BRIDGE_PID=$!
	for ((i = 0; i < 100; i++)); do
		[ -s "$WORK/bridge.port" ] && break
		sleep 0.05
	done
	[ -s "$WORK/bridge.port" ] || fail "bridge ($mode) did not start"
	out=$($PY "$WORK/check.py" "$WS_PORT" "$(cat "$WORK/bridge.port")" \
		$pfx ${first:+limits} 2>&1) || fail "bridge mode $mode: $out"
	sed "s/^/  [$mode] /" <<<"$out" >&2
	stop_pid "$BRIDGE_PID" || fail "bridge ($mode) exited with status $?"
	BRIDGE_PID=
	first=
	tail -n1 "$WORK/bridge.log" | grep -q "(0 errors)" ||
		fail "bridge mode $mode reported errors"
	tail -n1 "$WORK/bridge.log" | sed "s/^/  [$mode] /" >&2
done
# nginx must stop cleanly on SIGTERM (with master_process off, nchan 1.3.6
# aborts at exit: see nchan.conf.in).
stop_pid "$NGINX_PID" || fail "nginx exited with status $? on SIGTERM"
NGINX_PID=
grep -q '\[\(alert\|crit\|emerg\)\]' "$WORK/error.log" && fail "nginx logged errors"
say "OK"
exit 0

#!/usr/bin/env bash
# run-suite.sh: publisher side by side with nats-server, nchan (nginx), a Node
# ws broadcaster and Socket.IO, on one 2-core machine. Called by
# `make bench-suite`.
#
# Every server is pinned to CPU 0 and the load (subload + tickgen) to CPU 1
# with taskset. Every cell starts a fresh server, opens N connections at a
# bounded rate, reads the server's RSS (idle), subscribes, starts the tick
# generator, warms up, then measures for BENCH_SECS seconds and, once the
# generator has stopped, waits for every client to hold every symbol's last
# tick. Each cell and each process is bounded by `timeout`; all traffic
# stays on 127.0.0.1.
#
# The default matrix (tests/bench/README.md says what each group shows):
#   wide     1,000 clients on "*" over 1,000 symbols, store on, 20k and 200k
#            ticks/s: publisher with and without compression, the peers
#   narrow   1,000 clients on all of 10 symbols, 10k ticks/s, store on, and
#            the bare send() ceiling for the same frames (sendbase)
#   same     1,000 clients on 10 of 1,000 symbols, 10k ticks/s, every server
#   scale    100 -> 19,000 connections, 10 updates/s each, and sendbase
#   chaos    10 % of the clients slow, stalled or closing mid-frame, against
#            none, interleaved
#   sink     an ingest whose Redis is stopped, against a standalone server
#   ingest   publisher with no subscriber, with and without the store
#   sse      1,000 clients over Server-Sent Events against WebSocket, in the
#            narrow and wide shapes, three interleaved rounds
#
# Environment:
#   BENCH_FULL=1        also the whole N x M x R x K matrix on every server
#   BENCH_SECS=4        measured seconds per cell (after BENCH_WARMUP=2)
#   BENCH_BUDGET=1500   no cell starts after this many seconds (the cells
#                       left are listed as skipped)
#   BENCH_SERVERS="publisher nats nchan ws socketio"   which servers run
#   BENCH_GROUPS="wide narrow same scale chaos sink ingest sse"   which groups
#   BENCH_SSE_ROUNDS=3  rounds of the sse group
#   BENCH_OUT=tests/bench/results                      where results go
#   BENCH_BUILD=build   where publisher and build/bench/* are (make
#                       bench-suite sets it)
#
# Output: tests/bench/results/results-YYYY-MM-DD.md (tables) and
# raw-YYYY-MM-DD.txt (one RESULT/TICKGEN/SENDBASE/INGEST line per run,
# key=value); a run of some groups only (BENCH_GROUPS) adds their names,
# results-YYYY-MM-DD-sse.md, so that it never overwrites a whole run's.
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BENCH_BUILD:-$ROOT/build}
BIN=$BUILD/publisher
TOOLS=$BUILD/bench
PEERS_DIR=$ROOT/tests/bench/peers
OUT=${BENCH_OUT:-$ROOT/tests/bench/results}
SECS=${BENCH_SECS:-4}
WARMUP=${BENCH_WARMUP:-2}
FULL=${BENCH_FULL:-}
BUDGET=${BENCH_BUDGET:-1500}
[ -n "$FULL" ] && BUDGET=${BENCH_BUDGET:-9000}
SERVERS=${BENCH_SERVERS:-publisher nats nchan ws socketio}
GROUPS_ON=${BENCH_GROUPS:-wide narrow same scale chaos sink ingest sse}
SSE_ROUNDS=${BENCH_SSE_ROUNDS:-3}
NCHAN_MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so
SRV_CPU=0
LOAD_CPU=1
PY=/usr/bin/python3
[ -x $PY ] || PY=python3

DATE=$(date +%F)
TAG=
[ -n "${BENCH_GROUPS:-}" ] && TAG=-$(echo $BENCH_GROUPS | tr ' ' '-')
RAW=$OUT/raw-$DATE$TAG.txt
MD=$OUT/results-$DATE$TAG.md
WORK=$(mktemp -d /tmp/bench-suite.XXXXXX)
T0=$(date +%s)
SRV_PIDS=()  # what stop_server stops
MEAS_PIDS=() # whose CPU and RSS count as the server's
REDIS_PID=
WS_PORT=
FEED_PORT=
PROTO=
PUB_EXTRA=() # more publisher options for the next cell
SUB_EXTRA=() # more subload options for the next cell

log() { printf '[%4ds] %s\n' $(($(date +%s) - T0)) "$*" >&2; }
die() { log "error: $*"; exit 1; }

cleanup() {
	stop_server
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------ preparation

for f in "$BIN" "$TOOLS/tickgen" "$TOOLS/subload" "$TOOLS/nats-bridge" \
	"$TOOLS/nchan-bridge" "$TOOLS/sendbase"; do
	[ -x "$f" ] || die "$f is missing: run 'make bench-suite' (it builds them)"
done
command -v taskset >/dev/null || die "taskset is missing (Debian package util-linux)"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on CPU 0, load on CPU 1)"

# Peers: installed on demand, as `make test` installs what it needs.
want() { case " $SERVERS " in *" $1 "*) return 0 ;; esac; return 1; }
on() { case " $GROUPS_ON " in *" $1 "*) return 0 ;; esac; return 1; }
drop() { SERVERS=$(sed "s/\b$1\b//" <<<"$SERVERS"); }
apt_install() { # apt_install PACKAGE
	local sudo=
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get install -y -q "$1" >/dev/null 2>&1 ||
		{ $sudo apt-get update -q >/dev/null 2>&1 &&
		  $sudo apt-get install -y -q "$1" >/dev/null 2>&1; }
}
if want nats && ! command -v nats-server >/dev/null; then
	log "installing nats-server (Debian package)"
	apt_install nats-server || { log "cannot install nats-server: NATS cells are skipped"; drop nats; }
fi
if want nchan && ! { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } ; then
	log "installing nginx-light (Debian package)"
	apt_install nginx-light || { log "cannot install nginx: nchan cells are skipped"; drop nchan; }
fi
if want nchan && ! [ -f "$NCHAN_MODULE" ]; then
	log "installing libnginx-mod-nchan (Debian package)"
	apt_install libnginx-mod-nchan || { log "cannot install nchan: nchan cells are skipped"; drop nchan; }
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if (want ws || want socketio); then
	if ! command -v node >/dev/null; then
		log "node is missing: ws and socketio cells are skipped"
		drop socketio; drop ws
	elif ! [ -d "$PEERS_DIR/node_modules" ] ||
	     ! [ "$PEERS_DIR/node_modules/.package-lock.json" -nt "$PEERS_DIR/package-lock.json" ]; then
		log "npm ci in tests/bench/peers (ws, socket.io as pinned in package-lock.json)"
		(cd "$PEERS_DIR" && npm ci --silent --no-audit --no-fund >/dev/null 2>&1) ||
			{ log "npm ci failed: ws and socketio cells are skipped"; drop socketio; drop ws; }
	fi
fi
if want publisher && ! command -v redis-server >/dev/null; then
	log "redis-server is missing: the sink cells are skipped"
fi

# 19,000 connections need more descriptors than the usual 1,024, in the
# load generator and in every server (they inherit this shell's limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 19200 ] ||
	log "warning: ulimit -n is $(ulimit -n); the 19,000-connection cells will fail"

mkdir -p "$OUT"
: >"$RAW"

# Run a private copy of the binary: a rebuild in the work tree during the
# suite must not change what is measured half-way.
cp "$BIN" "$WORK/publisher" || die "cannot copy $BIN"
BIN=$WORK/publisher
GIT_STATE=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" &&
	git diff --quiet HEAD -- publisher feeds 2>/dev/null || echo "+uncommitted changes in publisher/ or feeds/")
# Connection caps are lifted above the largest N: the suite measures
# capacity, not the admission policy.
PUB_OPTS=(--max-connections 20000 --max-connections-per-ip 20000)

free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_file() { # wait_file FILE SECONDS
	local i
	for ((i = 0; i < $2 * 20; i++)); do
		[ -s "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# ------------------------------------------------------------ servers

# start_server KIND [DB]: sets SRV_PIDS, MEAS_PIDS, WS_PORT, FEED_PORT, PROTO.
# A publisher gets PUB_EXTRA as well.
start_server() {
	local kind=$1 db=${2:-none} pf=$WORK/port.$kind cp i
	rm -f "$pf" "$WORK/bridge.port"
	SRV_PIDS=()
	case $kind in
	publisher)
		FEED_PORT=$(free_port)
		[ "$db" != none ] && rm -f "$db" "$db-wal" "$db-shm" "$db-lock"
		taskset -c $SRV_CPU "$BIN" serve --listen 127.0.0.1:0 --port-file "$pf" \
			--feed "tcp:127.0.0.1:$FEED_PORT" --db "$db" --web "$ROOT/web" \
			--log-level warn "${PUB_OPTS[@]}" "${PUB_EXTRA[@]}" 2>>"$WORK/server.log" &
		SRV_PIDS=($!)
		wait_file "$pf" 10 || return 1
		WS_PORT=$(cat "$pf")
		PROTO=publisher
		# the feed listener opens just after the WebSocket one
		sleep 0.2
		;;
	nats)
		cp=$(free_port)
		WS_PORT=$(free_port)
		cat >"$WORK/nats.conf" <<-EOF
			# generated by run-suite.sh: loopback only, WebSocket without TLS
			# and without compression (permessage-deflate off)
			listen: 127.0.0.1:$cp
			websocket {
			  listen: "127.0.0.1:$WS_PORT"
			  no_tls: true
			  compression: false
			}
		EOF
		: >"$WORK/nats.log"
		taskset -c $SRV_CPU nats-server -c "$WORK/nats.conf" 2>>"$WORK/nats.log" &
		SRV_PIDS=($!)
		for ((i = 0; i < 100; i++)); do
			grep -q "Server is ready" "$WORK/nats.log" 2>/dev/null && break
			sleep 0.05
		done
		taskset -c $SRV_CPU "$TOOLS/nats-bridge" --nats "127.0.0.1:$cp" \
			--port-file "$WORK/bridge.port" 2>>"$WORK/server.log" &
		SRV_PIDS+=($!)
		wait_file "$WORK/bridge.port" 10 || return 1
		FEED_PORT=$(cat "$WORK/bridge.port")
		PROTO=nats
		;;
	nchan)
		# nginx (a master and one worker: the worker does the work and is
		# measured) with the nchan module, fed by nchan-bridge over one
		# WebSocket per channel (tests/bench/peers/nchan.conf.in).
		cp=$(free_port)
		WS_PORT=$(free_port)
		mkdir -p "$WORK/nchan"
		sed -e "s#@WORKDIR@#$WORK/nchan#g" -e "s#@NCHAN_MODULE@#$NCHAN_MODULE#" \
			-e "s#@PUB_PORT@#$cp#g" -e "s#@WS_PORT@#$WS_PORT#g" \
			"$PEERS_DIR/nchan.conf.in" >"$WORK/nchan/nchan.conf"
		taskset -c $SRV_CPU "$NGINX" -p "$WORK/nchan" -c "$WORK/nchan/nchan.conf" \
			-e "$WORK/nchan/error.log" 2>>"$WORK/server.log" &
		SRV_PIDS=($!)
		local worker=
		for ((i = 0; i < 100; i++)); do
			worker=$(cat "/proc/${SRV_PIDS[0]}/task/${SRV_PIDS[0]}/children" 2>/dev/null | tr -d ' ')
			[ -n "$worker" ] && break
			sleep 0.05
		done
		[ -n "$worker" ] || return 1
		sleep 0.2
		taskset -c $SRV_CPU "$TOOLS/nchan-bridge" --nchan "127.0.0.1:$cp" \
			--port-file "$WORK/bridge.port" 2>>"$WORK/server.log" &
		SRV_PIDS+=($!)
		MEAS_PIDS=("$worker" "${SRV_PIDS[1]}")
		wait_file "$WORK/bridge.port" 10 || return 1
		FEED_PORT=$(cat "$WORK/bridge.port")
		PROTO=nchan
		return 0
		;;
	ws | socketio)
		local script=ws-broadcast.mjs
		[ "$kind" = socketio ] && script=socketio-rooms.mjs
		(cd "$PEERS_DIR" && exec taskset -c $SRV_CPU node "$script" --port-file "$pf") \
			2>>"$WORK/server.log" &
		SRV_PIDS=($!)
		wait_file "$pf" 20 || return 1
		WS_PORT=$(sed 's/.*ws=\([0-9]*\).*/\1/' "$pf")
		FEED_PORT=$(sed 's/.*feed=\([0-9]*\).*/\1/' "$pf")
		PROTO=$([ "$kind" = ws ] && echo plain || echo socketio)
		;;
	esac
	MEAS_PIDS=("${SRV_PIDS[@]}")
	return 0
}

stop_pid() { # stop_pid PID: TERM, then KILL after 5 s
	local i
	kill "$1" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

stop_server() {
	local p
	for p in "${SRV_PIDS[@]}"; do
		stop_pid "$p"
	done
	SRV_PIDS=()
	MEAS_PIDS=()
	if [ -n "$REDIS_PID" ]; then
		kill -CONT "$REDIS_PID" 2>/dev/null
		stop_pid "$REDIS_PID"
		REDIS_PID=
	fi
}

# publisher's own counters, appended to its RESULT line, once the store
# has written (or dropped) what was applied (at most 10 s)
publisher_counters() {
	local i m
	for ((i = 0; i < 50; i++)); do
		m=$(curl -s --max-time 5 "http://127.0.0.1:$WS_PORT/metrics")
		awk '$1 == "publisher_ticks_applied_total" { a = $2 }
			$1 == "publisher_store_ticks_written_total" { w = $2 }
			$1 == "publisher_store_ticks_dropped_total" { d = $2 }
			END { exit !(w == "" || w + d >= a) }' <<<"$m" && break
		sleep 0.2
	done
	awk '
		$1 == "publisher_ticks_applied_total" { printf " srv_applied=%s", $2 }
		$1 == "publisher_store_ticks_written_total" { printf " srv_stored=%s", $2 }
		$1 == "publisher_store_ticks_dropped_total" { printf " srv_store_dropped=%s", $2 }
		$1 == "publisher_redis_ticks_dropped_total" { printf " srv_redis_dropped=%s", $2 }
		$1 == "publisher_deflate_bytes_in_total" { printf " srv_deflate_in=%s", $2 }
		$1 == "publisher_deflate_bytes_out_total" { printf " srv_deflate_out=%s", $2 }
		$1 == "publisher_fanout_frames_shared_total" { printf " srv_frames_shared=%s", $2 }' <<<"$m"
}

# ------------------------------------------------------------ one cell

# over_budget SECONDS DESCRIPTION: true (and listed as skipped) when a cell
# of about SECONDS would start past the budget.
over_budget() {
	local now=$(($(date +%s) - T0))
	if ((now + $1 > BUDGET)); then
		echo "SKIPPED $2 reason=time_budget" >>"$RAW"
		log "skip $2 (time budget ${BUDGET}s)"
		return 0
	fi
	return 1
}

# run_cell GROUP KIND N M R K [DB]: one subscriber cell; PUB_EXTRA and
# SUB_EXTRA apply to it. DB: "store" for a fresh SQLite file, else none.
run_cell() {
	local group=$1 kind=$2 n=$3 m=$4 r=$5 k=$6 store=${7:-none}
	local est=$((WARMUP + SECS + 10 + n / 3000))
	local desc="group=$group server=$kind conns=$n symbols=$m rate=$r per_conn=$k"
	over_budget $est "$desc" && return 1
	local channels=$k
	[ "$k" = all ] && channels=$m
	if [ "$kind" = nchan ] && ((channels > 255)); then
		echo "SKIPPED $desc reason=nchan_takes_at_most_255_channels_per_connection" >>"$RAW"
		return 1
	fi
	local load db=none
	load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')
	[ "$store" = store ] && db=$WORK/cell.db
	log "$kind N=$n M=$m R=$r K=$k ${PUB_EXTRA[*]} ${SUB_EXTRA[*]} (load avg $load)"
	if ! start_server "$kind" "$db"; then
		log "  $kind did not start (see $WORK/server.log)"
		stop_server
		echo "SKIPPED $desc reason=server_did_not_start" >>"$RAW"
		return 1
	fi
	local gen_secs out extra_sub=()
	gen_secs=$($PY -c "print($WARMUP + $SECS + 1.5)")
	[ "$kind" = publisher ] && extra_sub=("${SUB_EXTRA[@]}")
	[ "$kind" != publisher ] && for a in "${SUB_EXTRA[@]}"; do
		[ "$a" = --deflate ] || extra_sub+=("$a")
	done
	out=$(timeout -k 5 $((est + 60)) taskset -c $LOAD_CPU "$TOOLS/subload" \
		--proto "$PROTO" --port "$WS_PORT" --conns "$n" --symbols "$m" \
		--per-conn "$k" --open-rate 4000 --settle 1 --warmup "$WARMUP" \
		--duration "$SECS" --server-pid "$(IFS=,; echo "${MEAS_PIDS[*]}")" \
		--rss-limit-mb 4096 --label "$group" --shm "$WORK/tick.shm" \
		"${extra_sub[@]}" -- \
		"$TOOLS/tickgen" --connect "127.0.0.1:$FEED_PORT" --symbols "$m" \
		--rate "$r" --duration "$gen_secs" --zipf 0 2>>"$WORK/load.log")
	local counters=
	[ "$kind" = publisher ] && counters=$(publisher_counters)
	stop_server
	rm -f "$WORK/tick.shm"
	local res tg
	res=$(grep '^RESULT' <<<"$out")
	tg=$(grep '^TICKGEN' <<<"$out" | sed 's/^TICKGEN //; s/\([a-z_]*\)=/tg_\1=/g')
	if [ -z "$res" ]; then
		log "  no result (see $WORK/load.log)"
		echo "SKIPPED $desc reason=no_result" >>"$RAW"
		return 1
	fi
	local opts
	opts=$(echo "${PUB_EXTRA[*]} ${SUB_EXTRA[*]}" | xargs | tr ' ' ',')
	echo "$res server=$kind rate=$r store=$store options=${opts:--}" \
		"loadavg=$load $tg$counters" >>"$RAW"
	log "  delivered $(grep -o 'upd_per_s=[0-9]*' <<<"$res" | cut -d= -f2)/s," \
		"staleness p99 $(grep -o 'stale_src_p99_us=[-0-9]*' <<<"$res" | cut -d= -f2) us," \
		"invalid=$(grep -o 'invalid=[a-z_]*' <<<"$res" | cut -d= -f2)"
	return 0
}

# sendbase_cell GROUP N FRAME_BYTES: the bare send() ceiling
sendbase_cell() {
	local group=$1 n=$2 f=$3 out
	over_budget $((SECS + 8 + n / 3000)) "group=$group server=sendbase conns=$n frame_bytes=$f" && return 1
	log "sendbase N=$n frame $f bytes"
	out=$(timeout -k 5 $((SECS + 120)) "$TOOLS/sendbase" --conns "$n" --frame-bytes "$f" \
		--duration "$SECS" --warmup 1 --sender-cpu $SRV_CPU --reader-cpu $LOAD_CPU \
		2>>"$WORK/load.log" | grep '^SENDBASE')
	[ -n "$out" ] && echo "$out group=$group" >>"$RAW"
	log "  $(grep -o 'frames_per_s=[0-9]*' <<<"$out")"
}

# frame_bytes GROUP SERVER: mean WebSocket payload per frame of the last
# such RESULT line, for sendbase to send frames of the same size
frame_bytes() {
	grep "^RESULT label=$1 .*server=$2 " "$RAW" | tail -n1 | $PY -c '
import sys
d = dict(kv.split("=", 1) for kv in sys.stdin.read().split() if "=" in kv)
fr = float(d.get("frames_per_s", 0)) or 1
print(max(2, int(float(d.get("mbytes_per_s", 0)) * 1e6 / fr)))'
}

# ------------------------------------------------------------ sink

# sink_cells: an ingest at 200k ticks/s whose Redis is stopped (SIGSTOP)
# through the measured window, against a standalone server, same load.
sink_cells() {
	local mode rp
	command -v redis-server >/dev/null || { echo "SKIPPED group=sink reason=no_redis_server" >>"$RAW"; return; }
	for mode in standalone redis-stopped; do
		PUB_EXTRA=()
		if [ $mode = redis-stopped ]; then
			rp=$(free_port)
			taskset -c $LOAD_CPU redis-server --port "$rp" --bind 127.0.0.1 --save "" \
				--appendonly no >"$WORK/redis.log" 2>&1 &
			REDIS_PID=$!
			sleep 0.3
			PUB_EXTRA=(--role ingest --redis "127.0.0.1:$rp")
			# Stopped once the clients are subscribed and ticks flow
			# (open + settle), until after the window; /healthz read
			# in the middle of it.
			(sleep 2.5; kill -STOP "$REDIS_PID" 2>/dev/null; sleep 4
			 curl -s --max-time 5 "http://127.0.0.1:$(cat "$WORK/port.publisher")/healthz" \
				>"$WORK/healthz.txt"; sleep 3; kill -CONT "$REDIS_PID" 2>/dev/null) &
		fi
		run_cell "sink-$mode" publisher 100 1000 200000 10 store
		if [ $mode = redis-stopped ] && [ -s "$WORK/healthz.txt" ]; then
			echo "HEALTHZ group=sink-$mode status_line=$(head -n1 "$WORK/healthz.txt" | tr ' ' '_')" \
				"redis_line=$(grep '^redis' "$WORK/healthz.txt" | tr ' ' '_')" >>"$RAW"
		fi
		wait 2>/dev/null
	done
	PUB_EXTRA=()
}

# ------------------------------------------------------------ ingest

# ingest DB: the publisher with no subscriber, tickgen as fast as it takes.
ingest() {
	local db=$1 label=$2
	over_budget $((SECS + 6)) "group=ingest store=$label" && return
	log "ingest, store $label (load avg $(cut -d' ' -f1 /proc/loadavg))"
	start_server publisher "$db" || { log "  publisher did not start"; stop_server; return; }
	local pid=${SRV_PIDS[0]} c0 c1 a0 a1 w0 w1 d1 t0 t1 out
	metric() { curl -s --max-time 5 "http://127.0.0.1:$WS_PORT/metrics" | awk -v m="$1" '$1==m {print $2}'; }
	cpu() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
	c0=$(cpu "$pid"); a0=$(metric publisher_ticks_applied_total); w0=$(metric publisher_store_ticks_written_total)
	t0=$(date +%s.%N)
	out=$(timeout -k 5 $((SECS + 30)) taskset -c $LOAD_CPU "$TOOLS/tickgen" \
		--connect "127.0.0.1:$FEED_PORT" --symbols 1000 --rate max --duration "$SECS" 2>>"$WORK/load.log")
	t1=$(date +%s.%N)
	c1=$(cpu "$pid"); a1=$(metric publisher_ticks_applied_total); w1=$(metric publisher_store_ticks_written_total)
	d1=$(metric publisher_store_ticks_dropped_total)
	stop_server
	$PY - "$label" "$t0" "$t1" "$c0" "$c1" "${a0:-0}" "${a1:-0}" "${w0:-0}" "${w1:-0}" "$(getconf CLK_TCK)" \
		"$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')" "$out" "${d1:-0}" >>"$RAW" <<-'EOF'
		import sys
		label, t0, t1, c0, c1, a0, a1, w0, w1, hz, load, tg, dropped = sys.argv[1:]
		secs = float(t1) - float(t0)
		applied = float(a1) - float(a0)
		written = float(w1) - float(w0)
		cpu = (float(c1) - float(c0)) / float(hz)
		tgf = dict(kv.split("=", 1) for kv in tg.split()[1:] if "=" in kv)
		print(f"INGEST store={label} secs={secs:.2f} applied={applied:.0f} "
		      f"applied_per_s={applied / secs:.0f} stored={written:.0f} "
		      f"stored_per_s={written / secs:.0f} store_dropped={dropped} srv_cpu_s={cpu:.2f} "
		      f"tickgen_rate={tgf.get('rate', '0')} loadavg={load}")
	EOF
	log "  $(tail -n1 "$RAW")"
}

# ------------------------------------------------------------ the matrix

log "bench suite: servers [$SERVERS], ${SECS}s per cell after ${WARMUP}s warm-up, budget ${BUDGET}s${FULL:+ (BENCH_FULL)}"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
PEERS=$(for k in nats nchan ws socketio; do want $k && echo $k; done)

# 1. Wide: 1,000 clients on "*" over 1,000 symbols, store on. Browsers
#    take compression; a client that does not gets text.
on wide && want publisher && for r in 20000 200000; do
	SUB_EXTRA=(--deflate)
	run_cell wide publisher 1000 1000 $r all store
	SUB_EXTRA=()
	run_cell wide publisher 1000 1000 $r all store
done
# ... and with clients that ask for at most 10 updates per symbol per
# second (max_hz), as a dashboard that draws 10 times a second would.
# Uncapped, publisher sends each client everything that changed as fast
# as it reads: the load core saturates and those cells are invalid; here
# the demand is bounded (10 M updates/s) and the cell can be measured.
on wide && want publisher && for r in 20000 200000; do
	SUB_EXTRA=(--deflate --max-hz 10)
	run_cell wide-10hz publisher 1000 1000 $r all store
	SUB_EXTRA=(--max-hz 10)
	run_cell wide-10hz publisher 1000 1000 $r all store
	SUB_EXTRA=()
done
on wide && for kind in $PEERS; do
	run_cell wide "$kind" 1000 1000 20000 all
done

# 2. Narrow: 1,000 clients on all of 10 symbols, 10k ticks/s, store on, and
#    the bare send() ceiling for frames of the same size, in between.
on narrow && want publisher && {
	run_cell narrow publisher 1000 10 10000 all store
	sendbase_cell narrow 1000 "$(frame_bytes narrow publisher)"
	SUB_EXTRA=(--deflate)
	run_cell narrow publisher 1000 10 10000 all store
	SUB_EXTRA=()
}
on narrow && for kind in $PEERS; do
	run_cell narrow "$kind" 1000 10 10000 all
done

# 3. Same: 1,000 clients on 10 of 1,000 symbols, every server.
on same && for kind in $SERVERS; do
	run_cell same "$kind" 1000 1000 10000 10
done

# 4. Scale: 10 updates/s per connection (10 of 1,000 symbols at 1k
#    ticks/s) from 100 to 19,000 connections, store on; idle RSS at each;
#    sendbase with the same frames at 1,000, 10,000 and 19,000.
on scale && want publisher && {
	for n in 100 1000 2000 10000 19000; do
		run_cell scale publisher $n 1000 1000 10 store
	done
	fb=$(frame_bytes scale publisher)
	for n in 1000 10000 19000; do
		sendbase_cell scale $n "$fb"
	done
}

# 5. Chaos: 10 % of the clients slow, stalled or closing mid-frame, against
#    none; interleaved, three of each (runs vary; compare medians).
on chaos && want publisher && for i in 1 2 3 4 5; do
	SUB_EXTRA=(--chaos 0)
	run_cell chaos-none publisher 1000 1000 10000 10 store
	SUB_EXTRA=(--chaos 0.1)
	run_cell chaos-10pct publisher 1000 1000 10000 10 store
done
SUB_EXTRA=()

# 6. Sink: an ingest whose Redis cannot keep up, against standalone.
on sink && want publisher && sink_cells

# 7. Ingest with and without the store.
on ingest && want publisher && {
	ingest none none
	ingest "$WORK/ingest.db" sqlite
}

# 8. SSE: fan-out over Server-Sent Events (GET /stream/events, each
#    request in a POST /stream/send) against WebSocket, 1,000 clients, store
#    on: the narrow shape, and the wide one with max_hz 10 at both feed
#    rates (uncapped, the wide shape measures the load client: see 1.).
#    SSE frames are text, so the WebSocket clients take text too. Rounds
#    interleaved, the two transports' order swapped each round, so that a
#    busy machine weighs on both alike; the report gives medians and
#    ranges.
on sse && want publisher && for ((round = 1; round <= SSE_ROUNDS; round++)); do
	order="ws sse"
	((round % 2)) || order="sse ws"
	for t in $order; do
		SUB_EXTRA=(--transport "$t")
		run_cell sse-narrow publisher 1000 10 10000 all store
	done
	for r in 20000 200000; do
		for t in $order; do
			SUB_EXTRA=(--transport "$t" --max-hz 10)
			run_cell sse-wide-10hz publisher 1000 1000 $r all store
		done
	done
done
SUB_EXTRA=()

# 9. The whole matrix, on request.
if [ -n "$FULL" ]; then
	for kind in $SERVERS; do
		for n in 100 1000 10000; do
			for m in 10 1000; do
				for k in 10 all; do
					[ "$k" = 10 ] && [ "$m" = 10 ] && continue # K=10 of 10 is "all"
					for r in 1000 10000 100000 1000000; do
						run_cell "full-N$n-M$m-K$k" "$kind" $n $m $r $k
					done
				done
			done
		done
	done
fi

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(($(date +%s) - T0))
log "done in ${ELAPSED}s; writing $MD"

# ------------------------------------------------------------ the report

VERSIONS="publisher $("$BIN" --version 2>/dev/null | head -n1 | awk '{print $2}') (git $GIT_STATE)"
command -v nats-server >/dev/null && VERSIONS="$VERSIONS, nats-server $(nats-server --version 2>/dev/null | awk '{print $2}')"
[ -f "$NCHAN_MODULE" ] && VERSIONS="$VERSIONS, nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') + nchan $(dpkg-query -W -f '${Version}' libnginx-mod-nchan 2>/dev/null)"
command -v node >/dev/null && VERSIONS="$VERSIONS, node $(node --version)"
for p in ws socket.io; do
	v=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$PEERS_DIR/node_modules/$p/package.json" 2>/dev/null | head -n1)
	[ -n "$v" ] && VERSIONS="$VERSIONS, $p $v"
done

$PY "$ROOT/tests/bench/report.py" "$RAW" \
	--date "$DATE" \
	--machine "$(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)" \
	--versions "$VERSIONS" \
	--command "${BENCH_GROUPS:+BENCH_GROUPS=\"$BENCH_GROUPS\" }${BENCH_SERVERS:+BENCH_SERVERS=\"$BENCH_SERVERS\" }make bench-suite${FULL:+ BENCH_FULL=1} (BENCH_SECS=$SECS, BENCH_WARMUP=$WARMUP)" \
	--load "start $LOAD_START; end $LOAD_END" \
	--elapsed "$ELAPSED" >"$MD" || die "report.py failed"
log "results: $MD"
log "raw:     $RAW"

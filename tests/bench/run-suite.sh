#!/usr/bin/env bash
# run-suite.sh: publisher side by side with nats-server, a Node ws broadcaster
# and Socket.IO, on one 2-core machine (issue 6). Called by `make bench-suite`.
#
# Every server is pinned to CPU 0 and the load (subload + tickgen) to CPU 1
# with taskset. Every cell starts a fresh server, opens N connections at a
# bounded rate, reads the server's RSS (idle), subscribes, starts the tick
# generator, warms up, then measures for BENCH_SECS seconds. Each cell and
# each process is bounded by `timeout`; all traffic stays on 127.0.0.1.
#
# Environment:
#   BENCH_FULL=1        the whole matrix: N {100,1000,10000} x M {10,1000} x
#                       R {1k,10k,100k,1M} x K {10,all}, every server (about
#                       30-60 minutes). Default: a trimmed matrix under 10 minutes.
#   BENCH_SECS=4        measured seconds per cell (after BENCH_WARMUP=2)
#   BENCH_BUDGET=540    the default suite starts no cell after this many
#                       seconds (cells left over are listed as skipped)
#   BENCH_SERVERS="publisher nats ws socketio"   which servers to run
#   BENCH_OUT=tests/bench/results                where results go
#   BENCH_BUILD=build   where publisher and build/bench/{tickgen,subload,
#                       nats-bridge} are (make bench-suite sets it)
#
# Output: tests/bench/results/results-YYYY-MM-DD.md (tables) and
# raw-YYYY-MM-DD.txt (one RESULT/TICKGEN/INGEST line per run, key=value).
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
BUDGET=${BENCH_BUDGET:-540}
[ -n "$FULL" ] && BUDGET=${BENCH_BUDGET:-7200}
SERVERS=${BENCH_SERVERS:-publisher nats ws socketio}
SRV_CPU=0
LOAD_CPU=1
PY=/usr/bin/python3
[ -x $PY ] || PY=python3

DATE=$(date +%F)
RAW=$OUT/raw-$DATE.txt
MD=$OUT/results-$DATE.md
WORK=$(mktemp -d /tmp/bench-suite.XXXXXX)
T0=$(date +%s)
SRV_PIDS=()
WS_PORT=
FEED_PORT=
PROTO=

log() { printf '[%4ds] %s\n' $(($(date +%s) - T0)) "$*" >&2; }
die() { log "error: $*"; exit 1; }

cleanup() {
	stop_server
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------ preparation

for f in "$BIN" "$TOOLS/tickgen" "$TOOLS/subload" "$TOOLS/nats-bridge"; do
	[ -x "$f" ] || die "$f is missing: run 'make bench-suite' (it builds them)"
done
command -v taskset >/dev/null || die "taskset is missing (Debian package util-linux)"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on CPU 0, load on CPU 1)"

# Peers: installed on demand, as `make test` installs what it needs.
want() { case " $SERVERS " in *" $1 "*) return 0 ;; esac; return 1; }
if want nats && ! command -v nats-server >/dev/null; then
	log "installing nats-server (Debian package)"
	SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get install -y -q nats-server >/dev/null 2>&1 ||
		{ $SUDO apt-get update -q >/dev/null 2>&1 &&
		  $SUDO apt-get install -y -q nats-server >/dev/null 2>&1; } ||
		{ log "cannot install nats-server: NATS cells are skipped"; SERVERS=${SERVERS/nats/}; }
fi
if (want ws || want socketio); then
	if ! command -v node >/dev/null; then
		log "node is missing: ws and socketio cells are skipped"
		SERVERS=${SERVERS/socketio/}; SERVERS=${SERVERS/ws/}
	elif ! [ -d "$PEERS_DIR/node_modules" ] ||
	     ! [ "$PEERS_DIR/node_modules/.package-lock.json" -nt "$PEERS_DIR/package-lock.json" ]; then
		log "npm ci in tests/bench/peers (ws, socket.io as pinned in package-lock.json)"
		(cd "$PEERS_DIR" && npm ci --silent --no-audit --no-fund >/dev/null 2>&1) ||
			{ log "npm ci failed: ws and socketio cells are skipped"
			  SERVERS=${SERVERS/socketio/}; SERVERS=${SERVERS/ws/}; }
	fi
fi

# 10,000 connections need more descriptors than the usual 1,024, in the
# load generator and in every server (they inherit this shell's limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 10100 ] ||
	log "warning: ulimit -n is $(ulimit -n); the 10,000-connection cells will fail"

mkdir -p "$OUT"
: >"$RAW"

# Run a private copy of the binary: a rebuild in the work tree during the
# suite must not change what is measured half-way.
cp "$BIN" "$WORK/publisher" || die "cannot copy $BIN"
BIN_SRC=$BIN
BIN=$WORK/publisher
GIT_STATE=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" &&
	git diff --quiet HEAD -- publisher feeds 2>/dev/null || echo "+uncommitted changes in publisher/ or feeds/")
# Connection caps, where this build has them, are lifted above the largest N:
# the suite measures capacity, not the admission policy.
PUB_OPTS=()
"$BIN" --help 2>&1 | grep -q -- '--max-connections-per-ip' &&
	PUB_OPTS+=(--max-connections 12000 --max-connections-per-ip 12000)

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

# start_server KIND [DB]: sets SRV_PIDS, WS_PORT, FEED_PORT, PROTO.
start_server() {
	local kind=$1 db=${2:-none} pf=$WORK/port.$kind cp
	rm -f "$pf" "$WORK/bridge.port"
	SRV_PIDS=()
	case $kind in
	publisher)
		FEED_PORT=$(free_port)
		taskset -c $SRV_CPU "$BIN" serve --listen 127.0.0.1:0 --port-file "$pf" \
			--feed "tcp:127.0.0.1:$FEED_PORT" --db "$db" --web "$ROOT/web" \
			--log-level warn "${PUB_OPTS[@]}" 2>>"$WORK/server.log" &
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
		local i
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
	return 0
}

stop_server() {
	local p
	for p in "${SRV_PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${SRV_PIDS[@]}"; do
		# bounded: a server that ignores TERM for 5 s is killed
		for ((i = 0; i < 50; i++)); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	SRV_PIDS=()
}

# ------------------------------------------------------------ one cell

declare -A P99_OVER # server -> lowest R whose p99 passed 50 ms (sweeps stop there)

# run_cell GROUP KIND N M R K
run_cell() {
	local group=$1 kind=$2 n=$3 m=$4 r=$5 k=$6
	local est=$((WARMUP + SECS + 4 + n / 4000))
	local now=$(($(date +%s) - T0))
	if ((now + est > BUDGET)); then
		echo "SKIPPED group=$group server=$kind conns=$n symbols=$m rate=$r per_conn=$k reason=time_budget" >>"$RAW"
		log "skip $kind N=$n M=$m R=$r K=$k (time budget ${BUDGET}s)"
		return 1
	fi
	if [ -n "${P99_OVER[$group/$kind]:-}" ] && ((r > ${P99_OVER[$group/$kind]})); then
		echo "SKIPPED group=$group server=$kind conns=$n symbols=$m rate=$r per_conn=$k reason=p99_over_50ms_at_R=${P99_OVER[$group/$kind]}" >>"$RAW"
		return 1
	fi
	local load
	load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')
	log "$kind N=$n M=$m R=$r K=$k (load avg $load)"
	if ! start_server "$kind"; then
		log "  $kind did not start (see $WORK/server.log)"
		stop_server
		echo "SKIPPED group=$group server=$kind conns=$n symbols=$m rate=$r per_conn=$k reason=server_did_not_start" >>"$RAW"
		return 1
	fi
	local gen_secs
	gen_secs=$($PY -c "print($WARMUP + $SECS + 1.5)")
	local open_rate=4000
	local out
	out=$(timeout -k 5 $((est + 60)) taskset -c $LOAD_CPU "$TOOLS/subload" \
		--proto "$PROTO" --port "$WS_PORT" --conns "$n" --symbols "$m" \
		--per-conn "$k" --open-rate $open_rate --settle 1 --warmup "$WARMUP" \
		--duration "$SECS" --server-pid "$(IFS=,; echo "${SRV_PIDS[*]}")" \
		--rss-limit-mb 4096 --label "$group" -- \
		"$TOOLS/tickgen" --connect "127.0.0.1:$FEED_PORT" --symbols "$m" \
		--rate "$r" --duration "$gen_secs" 2>>"$WORK/load.log")
	stop_server
	local res tg
	res=$(grep '^RESULT' <<<"$out")
	tg=$(grep '^TICKGEN' <<<"$out" | sed 's/^TICKGEN //; s/\([a-z_]*\)=/tg_\1=/g')
	if [ -z "$res" ]; then
		log "  no result (see $WORK/load.log)"
		echo "SKIPPED group=$group server=$kind conns=$n symbols=$m rate=$r per_conn=$k reason=no_result" >>"$RAW"
		return 1
	fi
	echo "$res server=$kind rate=$r loadavg=$load $tg" >>"$RAW"
	local p99 upd inv
	p99=$(grep -o 'lat_p99_us=[-0-9]*' <<<"$res" | cut -d= -f2)
	upd=$(grep -o 'upd_per_s=[0-9]*' <<<"$res" | cut -d= -f2)
	inv=$(grep -o 'invalid=[a-z_]*' <<<"$res" | cut -d= -f2)
	log "  delivered $upd/s, p99 ${p99} us, invalid=$inv"
	if [ "$p99" -gt 50000 ] 2>/dev/null || [ "$inv" = server_rss_limit ] ||
	   [ "$upd" = 0 ]; then
		P99_OVER[$group/$kind]=$r
	fi
	return 0
}

# ------------------------------------------------------------ ingest

# ingest DB: the publisher with no subscriber, tickgen as fast as it takes.
ingest() {
	local db=$1 label=$2
	local now=$(($(date +%s) - T0))
	if ((now + SECS + 6 > BUDGET)); then
		echo "SKIPPED group=ingest store=$label reason=time_budget" >>"$RAW"
		return
	fi
	rm -f "$db" "$db-wal" "$db-shm"
	log "ingest, store $label (load avg $(cut -d' ' -f1 /proc/loadavg))"
	start_server publisher "$db" || { log "  publisher did not start"; stop_server; return; }
	local pid=${SRV_PIDS[0]} c0 c1 a0 a1 w0 w1 t0 t1 out
	metric() { curl -s --max-time 5 "http://127.0.0.1:$WS_PORT/metrics" | awk -v m="$1" '$1==m {print $2}'; }
	cpu() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
	c0=$(cpu "$pid"); a0=$(metric publisher_ticks_applied_total); w0=$(metric publisher_store_ticks_written_total)
	t0=$(date +%s.%N)
	out=$(timeout -k 5 $((SECS + 30)) taskset -c $LOAD_CPU "$TOOLS/tickgen" \
		--connect "127.0.0.1:$FEED_PORT" --symbols 1000 --rate max --duration "$SECS" 2>>"$WORK/load.log")
	t1=$(date +%s.%N)
	c1=$(cpu "$pid"); a1=$(metric publisher_ticks_applied_total); w1=$(metric publisher_store_ticks_written_total)
	stop_server
	$PY - "$label" "$t0" "$t1" "$c0" "$c1" "${a0:-0}" "${a1:-0}" "${w0:-0}" "${w1:-0}" "$(getconf CLK_TCK)" \
		"$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')" "$out" >>"$RAW" <<-'EOF'
		import sys
		label, t0, t1, c0, c1, a0, a1, w0, w1, hz, load, tg = sys.argv[1:]
		secs = float(t1) - float(t0)
		applied = float(a1) - float(a0)
		written = float(w1) - float(w0)
		cpu = (float(c1) - float(c0)) / float(hz)
		tgf = dict(kv.split("=", 1) for kv in tg.split()[1:] if "=" in kv)
		print(f"INGEST store={label} secs={secs:.2f} applied={applied:.0f} "
		      f"applied_per_s={applied / secs:.0f} stored={written:.0f} "
		      f"stored_per_s={written / secs:.0f} srv_cpu_s={cpu:.2f} "
		      f"tickgen_rate={tgf.get('rate', '0')} loadavg={load}")
	EOF
	log "  $(tail -n1 "$RAW")"
}

# ------------------------------------------------------------ the matrix

log "bench suite: servers [$SERVERS], ${SECS}s per cell after ${WARMUP}s warm-up, budget ${BUDGET}s${FULL:+ (BENCH_FULL)}"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

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
	ingest none none
	ingest "$WORK/ingest.db" sqlite
else
	# 1. Headline cells for publisher.
	want publisher && {
		run_cell fanout publisher 1000 10 1000000 all
		run_cell same publisher 1000 1000 10000 10
		run_cell conns publisher 10000 1000 10000 10
	}
	# 2. The same workload on every peer (updates per server CPU-second).
	for kind in nats ws socketio; do
		want $kind && run_cell same $kind 1000 1000 10000 10
	done
	# 3. Ingest with and without the store.
	want publisher && {
		ingest none none
		ingest "$WORK/ingest.db" sqlite
	}
	# 4. Rate sweep at N=1000, M=1000, K=10: the highest R with p99 <= 50 ms.
	#    A server's sweep stops at the first R whose p99 passes 50 ms.
	for kind in $SERVERS; do
		for r in 1000 100000 1000000; do
			run_cell same "$kind" 1000 1000 $r 10
		done
	done
	# 5. 10,000 connections on the peers (idle RSS per connection, held).
	for kind in nats ws socketio; do
		want $kind && run_cell conns $kind 10000 1000 1000 10
	done
	# 6. The fan-out workload (M=10, every client subscribed to all) on
	#    every server at 1k ticks/s, then publisher up the rates.
	for kind in $SERVERS; do
		run_cell fanout "$kind" 1000 10 1000 all
	done
	want publisher && for r in 10000 100000; do
		run_cell fanout publisher 1000 10 $r all
	done
	# NATS, the strongest peer, on the publisher's best fan-out cell: it
	# must send every one of 10M messages/s, and shows what that costs.
	want nats && run_cell fanout-nats nats 1000 10 10000 all
	# 7. N=100 and K=all over 1,000 symbols for publisher.
	want publisher && {
		run_cell small publisher 100 1000 10000 10
		run_cell wide publisher 1000 1000 100000 all
	}
fi

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(($(date +%s) - T0))
log "done in ${ELAPSED}s; writing $MD"

# ------------------------------------------------------------ the report

VERSIONS="publisher $("$BIN" --version 2>/dev/null | head -n1 | awk '{print $2}') (git $GIT_STATE)"
command -v nats-server >/dev/null && VERSIONS="$VERSIONS, nats-server $(nats-server --version 2>/dev/null | awk '{print $2}')"
command -v node >/dev/null && VERSIONS="$VERSIONS, node $(node --version)"
for p in ws socket.io; do
	v=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$PEERS_DIR/node_modules/$p/package.json" 2>/dev/null | head -n1)
	[ -n "$v" ] && VERSIONS="$VERSIONS, $p $v"
done

$PY "$ROOT/tests/bench/report.py" "$RAW" \
	--date "$DATE" \
	--machine "$(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)" \
	--versions "$VERSIONS" \
	--command "make bench-suite${FULL:+ BENCH_FULL=1} (BENCH_SECS=$SECS, BENCH_WARMUP=$WARMUP)" \
	--load "start $LOAD_START; end $LOAD_END" \
	--elapsed "$ELAPSED" >"$MD" || die "report.py failed"
log "results: $MD"
log "raw:     $RAW"

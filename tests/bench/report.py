#!/usr/bin/env python3
"""Turn the raw lines of run-suite.sh into the Markdown results page.

    report.py RAW --date D --machine M --versions V --command C --load L
              --elapsed S > results-D.md

RAW holds one line per run, key=value separated by spaces:
RESULT (a subscriber cell, from subload, with the tickgen figures as tg_*),
INGEST (publisher with no subscriber, tickgen as fast as it is taken) and
SKIPPED (a cell the time budget or an earlier overload left out).
"""
import argparse
import sys

TARGET_UPDATES = 1_000_000
TARGET_RATIO = 5.0
TARGET_P99_US = 5_000
TARGET_IDLE_B = 8 * 1024
TARGET_CONNS = 10_000
P99_LIMIT_US = 50_000

NAMES = {
    "publisher": "publisher",
    "nats": "nats-server",
    "ws": "ws (Node)",
    "socketio": "Socket.IO",
}


def parse(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            d = {"kind": parts[0]}
            for kv in parts[1:]:
                if "=" in kv:
                    k, v = kv.split("=", 1)
                    d[k] = v
            rows.append(d)
    return rows


def num(d, k, default=0.0):
    try:
        return float(d.get(k, default))
    except ValueError:
        return default


def fmt_rate(v):
    v = float(v)
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def fmt_ms(us):
    us = float(us)
    if us < 0:
        return "–"
    if us < 1000:
        return f"{us / 1000:.2f}"
    if us < 100_000:
        return f"{us / 1000:.1f}"
    return f"{us / 1000:.0f}"


def fmt_kb(b):
    b = float(b)
    if b < 0:
        return "–"
    return f"{b / 1024:.1f} KB"


def valid(d):
    return d.get("invalid", "no") == "no"


# Share of CPU 0 taken by processes other than the server (other people's
# tests on this shared machine) above which a cell is marked "contended":
# still valid, but its latency and throughput had less than the core.
CONTENDED = 0.25


def contended(d):
    return num(d, "cpu0_busy") - num(d, "srv_cpu_frac") > CONTENDED


def validity(d):
    if not valid(d):
        return d.get("invalid")
    return "yes, contended" if contended(d) else "yes"


def workload(d):
    return (d.get("conns"), d.get("symbols"), d.get("per_conn"), d.get("rate"))


def k_label(d):
    return "all" if d.get("per_conn", "").startswith("all") else d.get("per_conn")


def cell_name(d):
    return (f"N={int(num(d, 'conns')):,} M={d.get('symbols')} "
            f"R={fmt_rate(d.get('rate', 0))} K={k_label(d)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    for k in ("date", "machine", "versions", "command", "load", "elapsed"):
        ap.add_argument("--" + k, default="")
    a = ap.parse_args()
    rows = parse(a.raw)
    res = [r for r in rows if r["kind"] == "RESULT"]
    ing = [r for r in rows if r["kind"] == "INGEST"]
    skipped = [r for r in rows if r["kind"] == "SKIPPED"]
    pub = [r for r in res if r.get("server") == "publisher"]
    out = []
    w = out.append

    w(f"# Benchmark results, {a.date}")
    w("")
    w(f"- Machine: {a.machine}")
    w(f"- Software: {a.versions}")
    w(f"- Command: `{a.command}`; {a.elapsed} s in all")
    w(f"- Load average (1/5/15 min) around the suite: {a.load}. The machine "
      "is shared: other engineers' tests run on both cores at the same "
      "time, so every cell also lists the load average at its start and "
      "how busy CPU 0 was with processes other than the server.")
    w("- Placement: server on CPU 0, subload + tickgen on CPU 1 (`taskset`); "
      "all traffic on 127.0.0.1. A cell is invalid when the load core was "
      "saturated (subload + tickgen CPU / wall > 0.95), the server passed "
      "4 GiB RSS, or connections were lost. A valid cell is marked "
      f"*contended* when processes other than the server used more than "
      f"{CONTENDED:.0%} of CPU 0 during its window.")
    w("- **The peers forward every tick; publisher conflates.** A peer's "
      "delivered update is one tick; a publisher update is a snapshot or a "
      "delta that may merge several ticks of its symbol (`seq - from - 1` "
      "merged away). Delivered updates are what the clients received and "
      "parsed, on every server alike.")
    w("")

    # ---------------------------------------------------------- targets
    w("## Targets (publisher)")
    w("")
    w("| target | measured | cell | met |")
    w("|---|---|---|---|")

    best = max((r for r in pub if num(r, "conns") == 1000 and valid(r)),
               key=lambda r: num(r, "upd_per_s"), default=None)
    if best:
        w(f"| ≥ 1,000,000 delivered updates/s from one core, 1,000 clients | "
          f"{num(best, 'upd_per_s'):,.0f}/s at {num(best, 'srv_cpu_frac'):.2f} "
          f"server cores ({num(best, 'upd_per_srv_cpu_s'):,.0f} per server "
          f"CPU-second) | {cell_name(best)} | "
          f"{'yes' if num(best, 'upd_per_s') >= TARGET_UPDATES else 'no'} |")
    hi_inv = max((r for r in pub if num(r, "conns") == 1000 and not valid(r)),
                 key=lambda r: num(r, "upd_per_s"), default=None)
    if hi_inv and (not best or num(hi_inv, "upd_per_s") > num(best, "upd_per_s")):
        w(f"| (same, from an invalid cell) | {num(hi_inv, 'upd_per_s'):,.0f}/s "
          f"({hi_inv.get('invalid')}: a lower bound for the server) | "
          f"{cell_name(hi_inv)} | – |")

    # Same workload: publisher vs the best peer, in updates per server CPU-s.
    by_wl = {}
    for r in res:
        by_wl.setdefault(workload(r), {})[r.get("server")] = r
    for wl, servers in sorted(by_wl.items(), key=lambda kv: [str(x) for x in kv[0]]):
        p = servers.get("publisher")
        peers = [s for k, s in servers.items() if k != "publisher"]
        if not p or not peers:
            continue
        bp = max(peers, key=lambda s: num(s, "upd_per_srv_cpu_s"))
        ratio = (num(p, "upd_per_srv_cpu_s") / num(bp, "upd_per_srv_cpu_s")
                 if num(bp, "upd_per_srv_cpu_s") else float("inf"))
        w(f"| ≥ 5× the best peer in updates per server CPU-second | "
          f"{num(p, 'upd_per_srv_cpu_s'):,.0f} vs {num(bp, 'upd_per_srv_cpu_s'):,.0f} "
          f"({NAMES.get(bp.get('server'))}): **{ratio:.2f}×** | {cell_name(p)} | "
          f"{'yes' if ratio >= TARGET_RATIO else 'no'} |")

    near = [r for r in pub if num(r, "upd_per_s") >= 90_000 and valid(r)]
    if near:
        r = min(near, key=lambda r: abs(num(r, "upd_per_s") - 100_000))
        w(f"| p99 tick→client ≤ 5 ms at 100k updates/s delivered | "
          f"p99 {fmt_ms(num(r, 'lat_p99_us'))} ms at "
          f"{num(r, 'upd_per_s'):,.0f}/s | {cell_name(r)} | "
          f"{'yes' if 0 <= num(r, 'lat_p99_us') <= TARGET_P99_US else 'no'} |")
    else:
        r = max(pub, key=lambda r: num(r, "upd_per_s"), default=None)
        if r:
            w(f"| p99 tick→client ≤ 5 ms at 100k updates/s delivered | no valid "
              f"cell delivered 90k/s | – | – |")

    big = [r for r in pub if num(r, "conns") >= TARGET_CONNS]
    if big:
        r = big[0]
        per = num(r, "rss_per_idle_conn_b", -1)
        w(f"| ≤ 8 KB RSS per idle connection | {fmt_kb(per)} "
          f"(RSS {num(r, 'rss_base_kb') / 1024:.1f} → "
          f"{num(r, 'rss_idle_kb') / 1024:.1f} MiB) | {cell_name(r)} | "
          f"{'yes' if 0 <= per <= TARGET_IDLE_B else 'no'} |")
        held = int(num(r, "ready_end"))
        w(f"| 10,000 concurrent connections held | {held:,} open at the end "
          f"of the window ({int(num(r, 'closed'))} closed during it) | "
          f"{cell_name(r)} | {'yes' if held >= TARGET_CONNS else 'no'} |")
    w("")

    # ---------------------------------------------------------- same workload
    w("## Side by side")
    w("")
    w("Cells that every server ran, one block per workload. `upd/CPU-s` is "
      "delivered updates per second of server CPU (utime + stime from "
      "/proc/PID/stat over the measured window; for NATS nats-server plus "
      "its bridge).")
    w("")
    w("`ticks conveyed/s` counts what the updates stand for: a publisher "
      "delta from seq F to seq S brings its client S − F ticks forward "
      "(conflation merged S − F − 1 of them); a peer message is one tick.")
    w("")
    w("| workload | server | ticks/s sent | delivered/s | ticks conveyed/s | "
      "server cores | upd / CPU-s | ticks conveyed / CPU-s | CPU-s / M upd | "
      "p50 ms | p99 ms | p99.9 ms | valid |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    order = list(NAMES)
    for wl, servers in sorted(by_wl.items(), key=lambda kv: [str(x) for x in kv[0]]):
        if len(servers) < 2:
            continue
        for k in order:
            r = servers.get(k)
            if not r:
                continue
            tpc = (num(r, "ticks_per_s") / num(r, "srv_cpu_frac")
                   if num(r, "srv_cpu_frac") else 0)
            w(f"| {cell_name(r)} | {NAMES[k]} | {fmt_rate(num(r, 'tg_rate'))} | "
              f"{num(r, 'upd_per_s'):,.0f} | {num(r, 'ticks_per_s'):,.0f} | "
              f"{num(r, 'srv_cpu_frac'):.2f} | "
              f"{num(r, 'upd_per_srv_cpu_s'):,.0f} | {tpc:,.0f} | "
              f"{num(r, 'srv_cpu_s_per_mupd'):.2f} | "
              f"{fmt_ms(num(r, 'lat_p50_us', -1))} | "
              f"{fmt_ms(num(r, 'lat_p99_us', -1))} | "
              f"{fmt_ms(num(r, 'lat_p999_us', -1))} | "
              f"{validity(r)} |")
    w("")

    # ---------------------------------------------------------- highest R
    w("## Highest tick rate with p99 ≤ 50 ms (N=1,000, M=1,000, K=10)")
    w("")
    w("R steps 1k, 10k, 100k, 1M ticks/s; a server's sweep stops at the "
      "first step whose p99 passes 50 ms. 'Sustained' also needs the "
      "generator to have sent at least 90 % of R (a server that cannot "
      "read the feed slows the generator down).")
    w("")
    w("| server | highest R sustained | p99 there | delivered/s there | "
      "first R over 50 ms |")
    w("|---|---|---|---|---|")
    for k in order:
        sweep = sorted((r for r in res if r.get("server") == k and
                        r.get("label") == "same"),
                       key=lambda r: num(r, "rate"))
        if not sweep:
            continue
        ok = [r for r in sweep if valid(r) and
              0 <= num(r, "lat_p99_us") <= P99_LIMIT_US and
              num(r, "tg_rate") >= 0.9 * num(r, "rate")]
        over = [r for r in sweep if not (valid(r) and
                0 <= num(r, "lat_p99_us") <= P99_LIMIT_US and
                num(r, "tg_rate") >= 0.9 * num(r, "rate"))]
        hi = max(ok, key=lambda r: num(r, "rate"), default=None)
        fo = min(over, key=lambda r: num(r, "rate"), default=None)
        if hi:
            cells = [fmt_rate(num(hi, "rate")),
                     fmt_ms(num(hi, "lat_p99_us")) + " ms",
                     f"{num(hi, 'upd_per_s'):,.0f}"]
        else:
            cells = ["none", "–", "–"]
        if fo:
            why = [f"p99 {fmt_ms(num(fo, 'lat_p99_us'))} ms"]
            if not valid(fo):
                why.append(fo.get("invalid"))
            if num(fo, "tg_rate") < 0.9 * num(fo, "rate"):
                why.append(f"sent only {fmt_rate(num(fo, 'tg_rate'))}/s")
            cells.append(f"{fmt_rate(num(fo, 'rate'))} ({', '.join(why)})")
        else:
            ran = ", ".join(fmt_rate(num(r, "rate")) for r in sweep)
            cells.append(f"none (ran {ran})")
        w("| " + " | ".join([NAMES[k]] + cells) + " |")
    w("")

    # ---------------------------------------------------------- memory
    w("## Memory per connection")
    w("")
    w("Server VmRSS before any connection, with N connections open and idle "
      "(after the greeting: publisher's hello, NATS CONNECT, Socket.IO "
      "connect), and at the end of the loaded window; per connection = "
      "delta / N.")
    w("")
    w("| server | cell | RSS before | idle | loaded | per idle conn | "
      "per loaded conn |")
    w("|---|---|---|---|---|---|---|")
    for r in sorted(res, key=lambda r: (order.index(r.get("server")) if r.get("server") in order else 9,
                                        -num(r, "conns"))):
        if num(r, "conns") < 1000 or r.get("label") not in ("conns", "same"):
            continue
        if r.get("label") == "same" and num(r, "rate") != 10000:
            continue
        w(f"| {NAMES.get(r.get('server'), r.get('server'))} | {cell_name(r)} | "
          f"{num(r, 'rss_base_kb') / 1024:.1f} MiB | "
          f"{num(r, 'rss_idle_kb') / 1024:.1f} MiB | "
          f"{num(r, 'rss_loaded_kb') / 1024:.1f} MiB | "
          f"{fmt_kb(num(r, 'rss_per_idle_conn_b', -1))} | "
          f"{fmt_kb(num(r, 'rss_per_loaded_conn_b', -1))} |")
    w("")

    # ---------------------------------------------------------- ingest
    if ing:
        w("## Ingest (publisher, no subscriber, tickgen as fast as taken)")
        w("")
        w("| store | ticks applied/s | ticks stored/s | server CPU-s | "
          "seconds | load avg |")
        w("|---|---|---|---|---|---|")
        for r in ing:
            w(f"| {'--db none' if r.get('store') == 'none' else '--db FILE (SQLite, WAL)'} | "
              f"{num(r, 'applied_per_s'):,.0f} | "
              f"{num(r, 'stored_per_s'):,.0f} | {num(r, 'srv_cpu_s'):.2f} | "
              f"{num(r, 'secs'):.1f} | {r.get('loadavg', '').replace('/', ' ')} |")
        w("")

    # ---------------------------------------------------------- every cell
    w("## Every cell")
    w("")
    w("Latency = client receive time − the tick's send time (`ts`), both "
      "CLOCK_REALTIME on this machine, per update (publisher: deltas only). "
      "Staleness `age` = now − ts of the newest value a connection holds "
      "for a symbol, sampled every 100 ms over random (connection, symbol) "
      "pairs: it includes the time since a cold symbol last ticked. `lag` = "
      "how far that value is behind the newest value of the symbol any "
      "connection holds. Gaps: publisher deltas whose `from` was not the "
      "seq held (peers carry no seq). CPU0 other = share of CPU 0 used by "
      "processes other than the server (other engineers' tests).")
    w("")
    w("| group | server | N | M | K | R | sent/s | delivered/s | frames/s | "
      "srv cores | CPU-s/M upd | p50 ms | p99 ms | p99.9 ms | age p50/p99 ms | "
      "lag p99 ms | gaps | closed | load core | CPU0 other | load avg | valid |")
    w("|" + "---|" * 22)
    for r in res:
        other = max(0.0, num(r, "cpu0_busy") - num(r, "srv_cpu_frac"))
        w(f"| {r.get('label')} | {NAMES.get(r.get('server'), r.get('server'))} | "
          f"{int(num(r, 'conns')):,} | {r.get('symbols')} | {k_label(r)} | "
          f"{fmt_rate(num(r, 'rate'))} | {fmt_rate(num(r, 'tg_rate'))} | "
          f"{num(r, 'upd_per_s'):,.0f} | {num(r, 'frames_per_s'):,.0f} | "
          f"{num(r, 'srv_cpu_frac'):.2f} | {num(r, 'srv_cpu_s_per_mupd'):.2f} | "
          f"{fmt_ms(num(r, 'lat_p50_us', -1))} | {fmt_ms(num(r, 'lat_p99_us', -1))} | "
          f"{fmt_ms(num(r, 'lat_p999_us', -1))} | "
          f"{fmt_ms(num(r, 'stale_p50_us', -1))}/{fmt_ms(num(r, 'stale_p99_us', -1))} | "
          f"{fmt_ms(num(r, 'lag_p99_us', -1))} | {r.get('gaps')} | {r.get('closed')} | "
          f"{num(r, 'load_cpu_frac'):.2f} | {other:.2f} | "
          f"{r.get('loadavg', '').replace('/', ' ')} | "
          f"{validity(r)} |")
    w("")
    if skipped:
        w("## Skipped")
        w("")
        for r in skipped:
            desc = " ".join(f"{k}={v}" for k, v in r.items() if k != "kind")
            w(f"- {desc}")
        w("")
    w(f"Raw lines: `{a.raw.split('/')[-1]}` beside this file (subload's "
      "`RESULT` keys are described in tests/bench/README.md).")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()

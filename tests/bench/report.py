#!/usr/bin/env python3
"""Turn the raw lines of run-suite.sh into the Markdown results page.

    report.py RAW --date D --machine M --versions V --command C --load L
              --elapsed S > results-D.md

RAW holds one line per run, key=value separated by spaces:
RESULT (a subscriber cell, from subload, with the tickgen figures as tg_*
and, for publisher, its own counters as srv_*), SENDBASE (the bare send()
ceiling), HEALTHZ (what /healthz said during a sink cell), INGEST
(publisher with no subscriber, tickgen as fast as it is taken) and SKIPPED
(a cell the time budget or a peer's limits left out).
"""
import argparse
import statistics
import sys

NAMES = {
    "publisher": "publisher",
    "nats": "nats-server",
    "nchan": "nchan (nginx)",
    "ws": "ws (Node)",
    "socketio": "Socket.IO",
}
ORDER = list(NAMES)


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
    except (TypeError, ValueError):
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


def yes(ok):
    return "yes" if ok else "**no**"


def valid(d):
    return d.get("invalid", "no") == "no"


def k_label(d):
    return "all" if d.get("per_conn", "").startswith("all") else d.get("per_conn")


def cell_name(d):
    return (f"N={int(num(d, 'conns')):,} M={d.get('symbols')} "
            f"R={fmt_rate(d.get('rate', 0))} K={k_label(d)}")


def variant(d):
    """How a publisher cell was run: compressed or text, and options."""
    opts = d.get("options", "-")
    parts = []
    if d.get("server") == "publisher" and d.get("transport") == "sse":
        parts.append("SSE")
    elif d.get("server") == "publisher":
        parts.append("compressed" if d.get("deflate") == "on" else "text")
    if "max-hz" in opts:
        parts.append("max_hz " + opts.split("max-hz,")[1].split(",")[0])
    if "store-backlog" in opts:
        parts.append("--store-backlog " + opts.split("store-backlog,")[1].split(",")[0])
    if "chaos" in opts:
        parts.append(f"chaos {num(d, 'chaos'):.0%}")
    return ", ".join(parts)


def server_label(d):
    v = variant(d)
    name = NAMES.get(d.get("server"), d.get("server"))
    return f"{name} ({v})" if v else name


def feed_ok(d):
    return num(d, "tg_rate") >= 0.99 * num(d, "rate")


def store_ok(d):
    """The store held every applied tick (publisher, store on)."""
    if d.get("store") != "store" or "srv_applied" not in d:
        return None
    return num(d, "srv_store_dropped") == 0 and num(d, "srv_stored") >= num(d, "srv_applied")


def converged(d):
    return num(d, "unconverged", 1) == 0 and num(d, "converge_ms", -1) >= 0


def per_client_rate(d):
    wb = num(d, "well_behaved") or num(d, "conns")
    return num(d, "upd_per_s") / wb if wb else 0


def kept_up(d):
    """A peer's figures count against publisher's when its clients kept
    up: a valid cell, the feed at its rate, and every client holding the
    last ticks once the feed stopped."""
    return valid(d) and feed_ok(d) and converged(d)


def checks(d):
    """The validity conditions of a staleness cell, as text."""
    out = []
    if not valid(d):
        out.append(d.get("invalid"))
    if not feed_ok(d):
        out.append(f"feed got {fmt_rate(num(d, 'tg_rate'))}/s of {fmt_rate(num(d, 'rate'))}")
    so = store_ok(d)
    if so is False:
        out.append(f"store dropped {num(d, 'srv_store_dropped'):,.0f} ticks")
    if not converged(d):
        out.append(f"{num(d, 'unconverged'):,.0f} pairs unconverged")
    return "; ".join(out) if out else "valid"


def spread(vals, fmt):
    """The median of a few runs, and their range."""
    vals = sorted(vals)
    if not vals:
        return "–"
    if len(vals) == 1:
        return fmt(vals[0])
    return f"{fmt(statistics.median(vals))} ({fmt(vals[0])}–{fmt(vals[-1])})"


SSE_SHAPES = (("sse-narrow", "narrow: 1,000 clients on all of 10 symbols"),
              ("sse-wide-10hz", 'wide: 1,000 clients on "*" over 1,000 symbols, max_hz 10'))


def sse_pairs(res):
    """The sse group's runs by shape and feed rate: (label, text, rate,
    WebSocket runs, SSE runs)."""
    out = []
    for label, text in SSE_SHAPES:
        runs = [r for r in res if r.get("label") == label and r.get("server") == "publisher"]
        for rate in sorted({num(r, "rate") for r in runs}):
            at = [r for r in runs if num(r, "rate") == rate]
            ws = [r for r in at if r.get("transport", "ws") != "sse"]
            sse = [r for r in at if r.get("transport") == "sse"]
            if ws or sse:
                out.append((label, text, rate, ws, sse))
    return out


def med(runs, key):
    return statistics.median(num(r, key) for r in runs) if runs else 0.0


def table(w, head, rows):
    w("| " + " | ".join(head) + " |")
    w("|" + "---|" * len(head))
    for r in rows:
        w("| " + " | ".join(str(c) for c in r) + " |")
    w("")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    for k in ("date", "machine", "versions", "command", "load", "elapsed"):
        ap.add_argument("--" + k, default="")
    a = ap.parse_args()
    rows = parse(a.raw)
    res = [r for r in rows if r["kind"] == "RESULT"]
    sb = [r for r in rows if r["kind"] == "SENDBASE"]
    ing = [r for r in rows if r["kind"] == "INGEST"]
    hz = [r for r in rows if r["kind"] == "HEALTHZ"]
    skipped = [r for r in rows if r["kind"] == "SKIPPED"]

    def group(label, server=None):
        return [r for r in res if r.get("label") == label and
                (server is None or r.get("server") == server)]

    out = []
    w = out.append
    w(f"# Benchmark results, {a.date}")
    w("")
    w(f"- Machine: {a.machine}")
    w(f"- Software: {a.versions}")
    w(f"- Command: `{a.command}`; {a.elapsed} s in all")
    w(f"- Load average (1/5/15 min) around the suite: {a.load}.")
    w("- Placement: server on CPU 0, subload + tickgen on CPU 1 (`taskset`); "
      "all traffic on 127.0.0.1. A cell is **invalid** when the load core "
      "passed 90 % (the figures would be the client's), the server passed "
      "4 GiB RSS or connections were lost; a staleness cell also needs the "
      "feed to reach 99 % of its rate, the store (when on) to hold every "
      "applied tick, and every client to converge after the feed stops.")
    w("- **The peers forward every tick; publisher conflates.** A peer's "
      "delivered update is one tick; a publisher update is a snapshot or a "
      "delta that may merge several ticks of its symbol. Updates are "
      "counted one by one on every server.")
    w("- **Staleness** (`stale p50/p99`): every 100 ms, up to 4,000 random "
      "(client, symbol) pairs; how long the client has held a value the "
      "source (tickgen) has since replaced, 0 when it holds the newest. "
      "**Latency** (`lat`): receive time − the tick's send time, per "
      "update.")
    w("")

    # ---------------------------------------------------------- criteria
    w("## Against the targets")
    w("")
    crit = []
    for r_rate, limit in ((20000, 250_000), (200000, 500_000)):
        for r in [x for x in group("wide", "publisher") + group("wide-backlog", "publisher") +
                  group("wide-10hz", "publisher") if num(x, "rate") == r_rate]:
            ok = checks(r) == "valid" and num(r, "stale_src_p99_us") <= limit
            crit.append((f"wide, {fmt_rate(r_rate)} ticks/s: staleness p99 ≤ {limit // 1000} ms "
                         f"({variant(r)})",
                         f"p99 {fmt_ms(num(r, 'stale_src_p99_us'))} ms, p50 "
                         f"{fmt_ms(num(r, 'stale_src_p50_us'))} ms; "
                         f"{num(r, 'bytes_per_upd'):.0f} B/update on the wire; {checks(r)}",
                         yes(ok)))
    comp = [r for r in group("wide", "publisher") if num(r, "rate") == 20000]
    c_on = next((r for r in comp if r.get("deflate") == "on"), None)
    c_off = next((r for r in comp if r.get("deflate") != "on"), None)
    if c_on and c_off:
        crit.append(("wide: bytes per update, and what compression buys",
                     f"{num(c_off, 'bytes_per_upd'):.0f} B as text, "
                     f"{num(c_on, 'bytes_per_upd'):.0f} B compressed "
                     f"({num(c_off, 'bytes_per_upd') / max(num(c_on, 'bytes_per_upd'), 1):.1f}×); "
                     f"{fmt_rate(num(c_on, 'upd_per_s'))} vs {fmt_rate(num(c_off, 'upd_per_s'))} "
                     f"updates/s delivered",
                     "–"))
    nar = group("narrow", "publisher")
    nb = next((x for x in sb if x.get("group") == "narrow"), None)
    for r in nar:
        if nb:
            ratio = num(r, "frames_per_s") / max(num(nb, "frames_per_s"), 1)
            ok = (ratio >= 0.8 and num(r, "upd_per_frame") >= 8 and
                  0 <= num(r, "lat_p99_us") <= 20_000 and valid(r))
            crit.append((f"narrow: frames/s ≥ 0.8 × bare send(), ≥ 8 updates/frame, "
                         f"p99 ≤ 20 ms ({variant(r)})",
                         f"{num(r, 'frames_per_s'):,.0f} frames/s = {ratio:.2f} × "
                         f"sendbase {num(nb, 'frames_per_s'):,.0f} ({num(nb, 'frame_bytes'):.0f} B "
                         f"frames); server {num(r, 'srv_cpu_frac') * 1e6 / max(num(r, 'frames_per_s'), 1):.2f} "
                         f"vs sendbase {num(nb, 'sender_cpu_per_mframe'):.2f} CPU-s per M frames; "
                         f"{num(r, 'upd_per_frame'):.1f} updates/frame; lat p99 "
                         f"{fmt_ms(num(r, 'lat_p99_us'))} ms; {checks(r)}",
                         yes(ok)))
    # updates per server CPU-second against the best peer, cell by cell
    for label in ("wide", "narrow", "same"):
        cells = {}
        for r in group(label):
            if num(r, "rate") in (20000, 10000):
                cells.setdefault(r.get("server"), []).append(r)
        pubs = cells.get("publisher", [])
        all_peers = [r for k, v in cells.items() if k != "publisher" for r in v]
        peers = [r for r in all_peers if kept_up(r)]
        if not pubs or not all_peers:
            continue
        if not peers:
            crit.append((f"{label}: updates per server CPU-s against the best peer",
                         "no peer kept up with this cell: " + "; ".join(
                             f"{NAMES.get(r.get('server'))} {checks(r)}" for r in all_peers),
                         "–"))
            continue
        bp = max(peers, key=lambda x: num(x, "upd_per_srv_cpu_s"))
        for p in pubs:
            ratio = num(p, "upd_per_srv_cpu_s") / max(num(bp, "upd_per_srv_cpu_s"), 1)
            need = 3.0 if label == "wide" else 1.0
            crit.append((f"{label}: updates per server CPU-s ≥ {need:.0f}× the best peer "
                         f"({variant(p)})",
                         f"{num(p, 'upd_per_srv_cpu_s'):,.0f} vs {num(bp, 'upd_per_srv_cpu_s'):,.0f} "
                         f"({NAMES.get(bp.get('server'))}): {ratio:.2f}×",
                         yes(ratio >= need)))
    sc = {int(num(r, "conns")): r for r in group("scale", "publisher")}
    ssb = {int(num(r, "conns")): r for r in sb if r.get("group") == "scale"}
    if 1000 in sc and 19000 in sc and 1000 in ssb and 19000 in ssb:
        g_pub = num(sc[19000], "srv_cpu_s_per_mupd") / max(num(sc[1000], "srv_cpu_s_per_mupd"), 1e-9)
        g_sb = num(ssb[19000], "sender_cpu_per_mframe") / max(num(ssb[1000], "sender_cpu_per_mframe"), 1e-9)
        crit.append(("scale: CPU-s per M updates grows no faster than bare send() from 1,000 "
                     "to 19,000 connections",
                     f"publisher {num(sc[1000], 'srv_cpu_s_per_mupd'):.1f} → "
                     f"{num(sc[19000], 'srv_cpu_s_per_mupd'):.1f} ({g_pub:.2f}×); sendbase "
                     f"{num(ssb[1000], 'sender_cpu_per_mframe'):.1f} → "
                     f"{num(ssb[19000], 'sender_cpu_per_mframe'):.1f} per M frames ({g_sb:.2f}×)",
                     yes(g_pub <= g_sb)))
    if 19000 in sc:
        r = sc[19000]
        crit.append(("19,000 connections held", f"{int(num(r, 'ready_end')):,} open at the end, "
                     f"{int(num(r, 'failed'))} failed, {int(num(r, 'closed'))} closed",
                     yes(num(r, "ready_end") >= 19000)))
    if 2000 in sc and 19000 in sc:
        marg = ((num(sc[19000], "rss_idle_kb") - num(sc[2000], "rss_idle_kb")) * 1024 / 17000)
        crit.append(("idle RSS per connection, marginal from 2,000 to 19,000 ≤ 6 KB",
                     f"{fmt_kb(marg)} ({num(sc[2000], 'rss_idle_kb') / 1024:.1f} → "
                     f"{num(sc[19000], 'rss_idle_kb') / 1024:.1f} MiB)",
                     yes(0 <= marg <= 6 * 1024)))
    cn, cc = group("chaos-none", "publisher"), group("chaos-10pct", "publisher")
    if cn and cc:
        p_n = statistics.median(num(r, "lat_p99_us") for r in cn)
        p_c = statistics.median(num(r, "lat_p99_us") for r in cc)
        r_n = statistics.median(per_client_rate(r) for r in cn)
        r_c = statistics.median(per_client_rate(r) for r in cc)
        ok = p_c <= 1.2 * p_n and r_c >= 0.8 * r_n
        crit.append(("chaos: the well-behaved clients' p99 and rate within 20 % of the "
                     "same cell without misbehaving clients (medians)",
                     f"p99 {fmt_ms(p_c)} vs {fmt_ms(p_n)} ms; {r_c:.1f} vs {r_n:.1f} updates/s "
                     f"per client ({len(cc)} + {len(cn)} runs, interleaved)",
                     yes(ok)))
    s_alone = next(iter(group("sink-standalone", "publisher")), None)
    s_stop = next(iter(group("sink-redis-stopped", "publisher")), None)
    if s_alone and s_stop:
        base = num(s_alone, "lat_p99_us")
        bound = max(2 * base, base + 10_000)
        h = next(iter(hz), {})
        crit.append(("an ingest whose Redis is stopped: its own clients' p99 ≤ "
                     "max(2 × standalone, standalone + 10 ms); /healthz says it",
                     f"p99 {fmt_ms(num(s_stop, 'lat_p99_us'))} ms vs standalone "
                     f"{fmt_ms(base)} ms; Redis link dropped "
                     f"{num(s_stop, 'srv_redis_dropped'):,.0f} ticks; /healthz: "
                     f"\"{h.get('status_line', '?').replace('_', ' ')}\"",
                     yes(num(s_stop, "lat_p99_us") <= bound and
                         h.get("status_line", "").startswith("ok"))))
    for label, text, rate, ws, sse in sse_pairs(res):
        if not ws or not sse:
            continue
        cpu_ratio = med(sse, "srv_cpu_s_per_mupd") / max(med(ws, "srv_cpu_s_per_mupd"), 1e-9)
        crit.append((f"SSE against WebSocket (text), {text}, {fmt_rate(rate)} ticks/s: "
                     f"server CPU-s per million updates (medians of {len(sse)} and {len(ws)} runs)",
                     f"SSE {spread([num(r, 'srv_cpu_s_per_mupd') for r in sse], lambda v: f'{v:.2f}')} "
                     f"vs WebSocket {spread([num(r, 'srv_cpu_s_per_mupd') for r in ws], lambda v: f'{v:.2f}')}"
                     f" = {cpu_ratio:.2f}×; delivered {fmt_rate(med(sse, 'upd_per_s'))} vs "
                     f"{fmt_rate(med(ws, 'upd_per_s'))} updates/s; "
                     f"{med(sse, 'bytes_per_upd'):.0f} vs {med(ws, 'bytes_per_upd'):.0f} B/update; "
                     f"staleness p99 {fmt_ms(med(sse, 'stale_src_p99_us'))} vs "
                     f"{fmt_ms(med(ws, 'stale_src_p99_us'))} ms; valid "
                     f"{sum(checks(r) == 'valid' for r in sse)}/{len(sse)} and "
                     f"{sum(checks(r) == 'valid' for r in ws)}/{len(ws)}",
                     "–"))
    table(w, ["target", "measured", "met"], crit)

    # ---------------------------------------------------------- wide
    def staleness_rows(cells):
        out_rows = []
        for r in sorted(cells, key=lambda x: (num(x, "rate"), ORDER.index(x.get("server"))
                                              if x.get("server") in ORDER else 9)):
            out_rows.append([
                server_label(r), fmt_rate(num(r, "rate")), fmt_rate(num(r, "tg_rate")),
                f"{num(r, 'upd_per_s'):,.0f}", f"{num(r, 'upd_per_frame'):.1f}",
                f"{num(r, 'bytes_per_upd'):.0f}", f"{num(r, 'srv_cpu_frac'):.2f}",
                f"{num(r, 'upd_per_srv_cpu_s'):,.0f}",
                f"{fmt_ms(num(r, 'stale_src_p50_us', -1))} / {fmt_ms(num(r, 'stale_src_p99_us', -1))}",
                f"{fmt_ms(num(r, 'lat_p50_us', -1))} / {fmt_ms(num(r, 'lat_p99_us', -1))}",
                f"{num(r, 'converge_ms', -1):.0f}",
                f"{num(r, 'load_cpu_frac'):.2f}", checks(r)])
        return out_rows

    head = ["server", "R", "feed got", "delivered/s", "upd/frame", "B/upd wire",
            "srv cores", "upd / CPU-s", "stale p50 / p99 ms", "lat p50 / p99 ms",
            "converge ms", "load core", "valid"]
    wide = group("wide") + group("wide-backlog") + group("wide-10hz")
    if wide:
        w("## Wide: 1,000 clients on \"*\" over 1,000 symbols, store on")
        w("")
        w("nchan cannot run this cell: it takes at most 255 channels per "
          "connection (`NCHAN_MULTITAG_MAX`), and a client here wants 1,000.")
        w("")
        table(w, head, staleness_rows(wide))

    narrow = group("narrow")
    if narrow:
        w("## Narrow: 1,000 clients on all of 10 symbols, 10k ticks/s, store on")
        w("")
        table(w, head, staleness_rows(narrow))
        for r in sb:
            if r.get("group") == "narrow":
                w(f"Bare send() ceiling in the same run (sendbase, {int(num(r, 'conns')):,} "
                  f"loopback sockets, {num(r, 'frame_bytes'):.0f}-byte frames, one thread "
                  f"on CPU 0): {num(r, 'frames_per_s'):,.0f} frames/s, "
                  f"{num(r, 'sender_cpu_per_mframe'):.2f} CPU-s per million frames "
                  f"(valid: {'yes' if r.get('invalid', 'no') == 'no' else r.get('invalid')}).")
                w("")

    same = group("same")
    if same:
        w("## Same: 1,000 clients on 10 of 1,000 symbols, 10k ticks/s")
        w("")
        table(w, head, staleness_rows(same))

    scale = group("scale", "publisher")
    if scale:
        w("## Scale: 10 updates/s per connection, 100 to 19,000 connections")
        w("")
        w("Each connection on 10 of 1,000 symbols at 1k ticks/s, store on. "
          "sendbase: the bare send() ceiling with frames of the same size at "
          "the same N.")
        w("")
        rows_ = []
        sbn = {int(num(r, "conns")): r for r in sb if r.get("group") == "scale"}
        for r in sorted(scale, key=lambda x: num(x, "conns")):
            n = int(num(r, "conns"))
            s_ = sbn.get(n)
            rows_.append([f"{n:,}", f"{int(num(r, 'ready_end')):,}",
                          f"{num(r, 'upd_per_s'):,.0f}", f"{num(r, 'frames_per_s'):,.0f}",
                          f"{num(r, 'srv_cpu_frac'):.2f}", f"{num(r, 'srv_cpu_s_per_mupd'):.2f}",
                          f"{num(s_, 'sender_cpu_per_mframe'):.2f}" if s_ else "–",
                          fmt_ms(num(r, "lat_p99_us", -1)),
                          f"{num(r, 'rss_idle_kb') / 1024:.1f} MiB",
                          fmt_kb(num(r, "rss_per_idle_conn_b", -1)), checks(r)])
        table(w, ["N", "held", "delivered/s", "frames/s", "srv cores", "CPU-s / M upd",
                  "sendbase CPU-s / M frames", "lat p99 ms", "idle RSS", "per idle conn",
                  "valid"], rows_)

    if cn or cc:
        w("## Chaos: 10 % of the clients slow, stalled or closing mid-frame")
        w("")
        w("1,000 clients on 10 of 1,000 symbols, 10k ticks/s, store on; figures "
          "of the well-behaved clients only; runs interleaved.")
        w("")
        rows_ = []
        for r in cn + cc:
            rows_.append([r.get("label"), int(num(r, "well_behaved")),
                          f"{per_client_rate(r):.1f}", fmt_ms(num(r, "lat_p50_us", -1)),
                          fmt_ms(num(r, "lat_p99_us", -1)), fmt_ms(num(r, "stale_src_p99_us", -1)),
                          r.get("gaps"), f"{num(r, 'srv_cpu_frac'):.2f}", checks(r)])
        table(w, ["cell", "well-behaved clients", "updates/s per client", "lat p50 ms",
                  "lat p99 ms", "stale p99 ms", "gaps", "srv cores", "valid"], rows_)

    sink = group("sink-standalone") + group("sink-redis-stopped")
    if sink:
        w("## Sink: an ingest whose Redis is stopped, 200k ticks/s")
        w("")
        w("100 clients on 10 of 1,000 symbols, store on. The Redis server is "
          "stopped (SIGSTOP) from before the window to after it.")
        w("")
        rows_ = []
        for r in sink:
            rows_.append([r.get("label"), fmt_rate(num(r, "tg_rate")),
                          f"{num(r, 'upd_per_s'):,.0f}", fmt_ms(num(r, "lat_p50_us", -1)),
                          fmt_ms(num(r, "lat_p99_us", -1)), fmt_ms(num(r, "stale_src_p99_us", -1)),
                          f"{num(r, 'srv_redis_dropped'):,.0f}", checks(r)])
        table(w, ["cell", "feed got", "delivered/s", "lat p50 ms", "lat p99 ms",
                  "stale p99 ms", "ticks the Redis link dropped", "valid"], rows_)
        for h in hz:
            w(f"/healthz meanwhile: `{h.get('status_line', '').replace('_', ' ')}`; "
              f"`{h.get('redis_line', '').replace('_', ' ')}`")
            w("")

    if ing:
        w("## Ingest (publisher, no subscriber, tickgen as fast as taken)")
        w("")
        w("A live feed as fast as the server takes it: with a store, what the "
          "store cannot write in time is dropped into recorded gaps (the feed "
          "is never slowed), so *stored/s* is what the writer sustains while "
          "sharing the core with the feed and the engine.")
        w("")
        table(w, ["store", "ticks applied/s", "ticks stored/s", "dropped into gaps",
                  "server CPU-s", "seconds"],
              [["--db none" if r.get("store") == "none" else "--db FILE (SQLite, WAL)",
                f"{num(r, 'applied_per_s'):,.0f}", f"{num(r, 'stored_per_s'):,.0f}",
                f"{num(r, 'store_dropped'):,.0f}",
                f"{num(r, 'srv_cpu_s'):.2f}", f"{num(r, 'secs'):.1f}"] for r in ing])

    pairs = sse_pairs(res)
    if pairs:
        w("## SSE against WebSocket: 1,000 clients, text frames, store on")
        w("")
        w("The same server and feed; clients over Server-Sent Events "
          "(`GET /stream/events`, the subscribe in a `POST /stream/send`) or "
          "over WebSocket without compression (SSE frames are text). The "
          "runs are interleaved, the two transports' order swapped each "
          "round; each figure is the median of the runs, with their range. "
          "*B/upd wire*: an SSE response's body bytes (`id:` and `data:` "
          "lines, blank lines) per update, a WebSocket message's payload "
          "per update (the 2–4 bytes of frame header not counted); *B/upd "
          "JSON*: the frames' JSON alone, the same on both; *server RSS*: "
          "at the end of the window (a stream session keeps up to 64 KiB "
          "of the frames it sent, for a client that comes back with its "
          "cursor).")
        w("")
        rows_ = []
        for label, text, rate, ws, sse in pairs:
            for name, runs in (("WebSocket", ws), ("SSE", sse)):
                if not runs:
                    continue

                def col(key, fmt, runs=runs):
                    return spread([num(r, key, -1) for r in runs], fmt)

                rows_.append([f"{text}, {fmt_rate(rate)} ticks/s", name,
                              f"{sum(checks(r) == 'valid' for r in runs)}/{len(runs)}",
                              col("upd_per_s", lambda v: f"{v:,.0f}"),
                              col("srv_cpu_s_per_mupd", lambda v: f"{v:.2f}"),
                              col("bytes_per_upd", lambda v: f"{v:.0f}"),
                              col("text_bytes_per_upd", lambda v: f"{v:.0f}"),
                              col("upd_per_frame", lambda v: f"{v:.1f}"),
                              col("stale_src_p50_us", fmt_ms), col("stale_src_p99_us", fmt_ms),
                              col("srv_cpu_frac", lambda v: f"{v:.2f}"),
                              col("rss_loaded_kb", lambda v: f"{v / 1024:.0f}"),
                              col("load_cpu_frac", lambda v: f"{v:.2f}")])
        table(w, ["cell", "transport", "valid", "delivered/s", "server CPU-s / M upd",
                  "B/upd wire", "B/upd JSON", "upd/frame", "stale p50 ms", "stale p99 ms",
                  "srv cores", "server RSS MiB", "load core"], rows_)
        for label, text, rate, ws, sse in pairs:
            if ws and sse:
                w(f"- {text}, {fmt_rate(rate)} ticks/s, SSE ÷ WebSocket (medians): server "
                  f"CPU-s per M updates "
                  f"{med(sse, 'srv_cpu_s_per_mupd') / max(med(ws, 'srv_cpu_s_per_mupd'), 1e-9):.2f}×, "
                  f"delivered updates/s "
                  f"{med(sse, 'upd_per_s') / max(med(ws, 'upd_per_s'), 1e-9):.2f}×, bytes per "
                  f"update on the wire "
                  f"{med(sse, 'bytes_per_upd') / max(med(ws, 'bytes_per_upd'), 1e-9):.2f}×.")
        loads = [float(r.get("loadavg", "0").split("/")[0]) for _, _, _, ws, sse in pairs
                 for r in ws + sse if r.get("loadavg")]
        if loads:
            w(f"- 1-minute load average as these cells started: {min(loads):.2f}–{max(loads):.2f} "
              f"(the suite's own two processes make about 2).")
        w("")

    # ---------------------------------------------------------- every cell
    w("## Every cell")
    w("")
    rows_ = []
    for r in res:
        rows_.append([r.get("label"), server_label(r), f"{int(num(r, 'conns')):,}",
                      r.get("symbols"), k_label(r), fmt_rate(num(r, "rate")),
                      fmt_rate(num(r, "tg_rate")), f"{num(r, 'upd_per_s'):,.0f}",
                      f"{num(r, 'frames_per_s'):,.0f}", f"{num(r, 'srv_cpu_frac'):.2f}",
                      f"{num(r, 'srv_cpu_s_per_mupd'):.2f}",
                      fmt_ms(num(r, "lat_p50_us", -1)), fmt_ms(num(r, "lat_p99_us", -1)),
                      fmt_ms(num(r, "stale_src_p99_us", -1)), r.get("gaps"), r.get("closed"),
                      f"{num(r, 'load_cpu_frac'):.2f}", r.get("loadavg", "").replace("/", " "),
                      checks(r)])
    table(w, ["group", "server", "N", "M", "K", "R", "sent/s", "delivered/s", "frames/s",
              "srv cores", "CPU-s/M upd", "lat p50", "lat p99", "stale p99", "gaps",
              "closed", "load core", "load avg", "valid"], rows_)
    if sb:
        table(w, ["sendbase group", "N", "frame bytes", "frames/s", "CPU-s / M frames",
                  "sender busy", "reader busy", "valid"],
              [[r.get("group"), f"{int(num(r, 'conns')):,}", f"{num(r, 'frame_bytes'):.0f}",
                f"{num(r, 'frames_per_s'):,.0f}", f"{num(r, 'sender_cpu_per_mframe'):.2f}",
                f"{num(r, 'sender_busy'):.2f}", f"{num(r, 'reader_busy'):.2f}",
                "yes" if r.get("invalid", "no") == "no" else r.get("invalid")] for r in sb])
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

"""OHLCV bars of `last` (README: Protocol; Tick files, replay and export):
`history` with an interval and /api/bars, 1s to 1d, aligned to the UTC
epoch; sizes sum exactly and prices keep their text."""

import decimal
import json

from harness import BASE, Decimal, check, hist_ticks, history, http_get, ingest, qs, \
	start_server, summary, tick


def expect_bars(ticks, interval_us):
	"""OHLCV of `last` per interval aligned to the UTC epoch, oldest first."""
	bars = {}
	for t in ticks:
		if "last" not in t:
			continue
		b0 = t["ts"] // interval_us * interval_us
		px, sz = t["last"], Decimal(t.get("last_size", 0))
		b = bars.get(b0)
		if b is None:
			bars[b0] = dict(t=b0, open=px, high=px, low=px, close=px, volume=sz)
		else:
			b.update(high=max(b["high"], px), low=min(b["low"], px), close=px,
				 volume=b["volume"] + sz)
	return [bars[k] for k in sorted(bars)]


def check_bars(got, want, who):
	check(isinstance(got, list), "%s: bars is not a list: %r" % (who, got))
	norm = []
	for b in got:
		if not isinstance(b, dict):
			raise AssertionError("%s: bar is not an object: %r" % (who, b))
		try:
			norm.append(dict(t=b.get("t"), open=Decimal(str(b["open"])),
					 high=Decimal(str(b["high"])), low=Decimal(str(b["low"])),
					 close=Decimal(str(b["close"])), volume=Decimal(str(b["volume"]))))
		except (KeyError, TypeError, ValueError, decimal.InvalidOperation) as e:
			raise AssertionError("%s: bar %s lacks or mangles a field (%r)" % (who, summary(b, 300), e))
	if norm != want:
		diff = [(i, g, w) for i, (g, w) in enumerate(zip(norm, want)) if g != w][:2]
		raise AssertionError("%s: %d bars, want %d; first differences (index, got, want): %s"
				     % (who, len(norm), len(want), diff or (norm[-1:], want[-1:])))
	# Prices are copies of sent prices: the text must be exact too.
	for b, w in zip(got, want):
		for k in ("open", "high", "low", "close"):
			check(str(b[k]) == str(w[k]), "%s: bar %s %s is %s, want the exact text %s"
			      % (who, b.get("t"), k, b[k], w[k]))


async def test_history_bars_1s_1m_ohlcv():
	srv = await start_server()
	ticks = hist_ticks()
	c = await ingest(srv, ticks)
	r = await history(c, symbol="HIST", interval="1s", **{"from": BASE, "to": BASE + 60_000_000})
	check("bars" in r and "ticks" not in r, "history with interval has no bars (or also ticks): %s" % summary(r, 300))
	want = expect_bars(ticks, 1_000_000)
	check(len(want) == 5, "test data: 5 one-second bars expected")
	check_bars(r["bars"], want, "1s bars")
	r = await history(c, symbol="HIST", interval="1m", **{"from": BASE, "to": BASE + 60_000_000})
	check_bars(r.get("bars"), expect_bars(ticks, 60_000_000), "1m bars")
	# limit alone with bars: the last N bars.
	r = await history(c, symbol="HIST", interval="1s", limit=2)
	check_bars(r.get("bars"), want[-2:], "last 2 1s bars")
	# Fractional sizes sum exactly; a price keeps its trailing zero.
	frac = [tick("FRAC", ts=BASE + 100, last=Decimal("1.10"), last_size=Decimal("0.5")),
		tick("FRAC", ts=BASE + 200, last=Decimal("1.2"), last_size=Decimal("0.25")),
		tick("FRAC", ts=BASE + 700_000, last=Decimal("1.05"), last_size=1),
		tick("FRAC", ts=BASE + 1_200_000, last=Decimal("1.3"), last_size=3)]
	await ingest(srv, frac, c)
	r = await history(c, symbol="FRAC", interval="1s", **{"from": BASE, "to": BASE + 60_000_000})
	check_bars(r.get("bars"), expect_bars(frac, 1_000_000), "FRAC 1s bars")
	check(str(r["bars"][0]["volume"]) == "1.75", "bar volume %s, want 1.75" % r["bars"][0]["volume"])
	for iv in ("5m", "1h", "1d"):
		r = await history(c, symbol="HIST", interval=iv, **{"from": 0, "to": BASE + 86_400_000_000})
		us = {"5m": 300_000_000, "1h": 3_600_000_000, "1d": 86_400_000_000}[iv]
		check_bars(r.get("bars"), expect_bars(ticks, us), "%s bars" % iv)


async def test_api_bars_json():
	srv = await start_server()
	ticks = hist_ticks()
	await ingest(srv, ticks)
	status, headers, body = await http_get(srv, "/api/bars?" + qs(
		symbol="HIST", interval="1s", **{"from": BASE, "to": BASE + 60_000_000}))
	check(status == 200, "GET /api/bars: %s %r" % (status, body[:200]))
	check("json" in headers.get("content-type", ""), "/api/bars content-type %r" % headers.get("content-type"))
	try:
		o = json.loads(body, parse_float=Decimal)
	except ValueError as e:
		raise AssertionError("/api/bars body is not JSON (%s): %r" % (e, body[:200]))
	check(o.get("symbol") == "HIST" and o.get("interval") == "1s",
	      "/api/bars symbol/interval: %s" % summary({k: v for k, v in o.items() if k != "bars"}, 300))
	check_bars(o.get("bars"), expect_bars(ticks, 1_000_000), "/api/bars 1s")
	status, _, body = await http_get(srv, "/api/bars?" + qs(
		symbol="HIST", interval="1m", **{"from": "2024-03-01T14:30:00Z", "to": "2024-03-01T14:31:00Z"}))
	check(status == 200, "GET /api/bars 1m ISO: %s %r" % (status, body[:200]))
	check_bars(json.loads(body, parse_float=Decimal).get("bars"), expect_bars(ticks, 60_000_000), "/api/bars 1m")

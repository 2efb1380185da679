"""Ticks as the tests write them to a feed, and the state they make.

tick() builds a tick dict whose decimal values keep their text, tick_line()
writes it as a JSONL line; gen_ticks() and model_states() make a
deterministic stream and the state a server must end in after it."""

import json
import random
import time

from .checks import Decimal

# Field names a symbol state may carry (publisher/tick.h); anything else in a
# snapshot or delta, apart from the envelope keys, is a protocol error.
INPUT_FIELDS = ("bid", "ask", "bid_size", "ask_size", "last", "last_size", "volume")
DERIVED_FIELDS = ("open", "high", "low", "volume", "trades", "prev_close")
STATE_FIELDS = set(INPUT_FIELDS) | set(DERIVED_FIELDS)
UPDATE_ENVELOPE = {"type", "symbol", "seq", "from", "ts"}

# 2024-03-01T14:30:00Z in µs: minute aligned, so 1s/1m bars start on it.
BASE = 1709303400_000000


def now_us():
	return int(time.time() * 1_000_000)


_ts_counter = [0]


def next_ts():
	"""A strictly increasing wall-clock-ish timestamp in µs."""
	t = now_us()
	if t <= _ts_counter[0]:
		t = _ts_counter[0] + 1
	_ts_counter[0] = t
	return t


def tick(symbol, ts=None, **fields):
	"""A tick dict. String values that look like numbers become Decimal, so
	the exact text is written to the feed and can be compared afterwards."""
	t = {"ts": next_ts() if ts is None else ts, "symbol": symbol}
	for k, v in fields.items():
		if isinstance(v, str):
			v = Decimal(v)
		elif isinstance(v, float):
			v = Decimal(repr(v))
		t[k] = v
	return t


def _json_value(v):
	if isinstance(v, Decimal):
		return str(v)
	if isinstance(v, bool):
		return "true" if v else "false"
	if isinstance(v, int):
		return str(v)
	if isinstance(v, float):
		return repr(v)
	return json.dumps(v)


def tick_line(t):
	"""One JSONL line for a tick dict, decimals written from their text."""
	if isinstance(t, (bytes, str)):
		return t if isinstance(t, str) else t.decode()
	return "{" + ",".join(json.dumps(k) + ":" + _json_value(v) for k, v in t.items()) + "}"


def tick_fields(t):
	"""The data fields of a tick dict (no ts/symbol)."""
	return {k: v for k, v in t.items() if k not in ("ts", "symbol")}


def exact(fields):
	"""Field values as text: Decimal keeps the text it was parsed from, so
	"189.35" != "189.349999" and 100 == 100 are compared as written."""
	return {k: str(v) for k, v in fields.items()}


def price(rng, lo, hi, scale):
	"""A random decimal in [lo, hi] with `scale` places and no trailing zero,
	so the exact text survives any correct decimal code."""
	m = rng.randint(lo * 10 ** scale, hi * 10 ** scale)
	if scale and m % 10 == 0:
		m += 1
	return Decimal(m).scaleb(-scale)


def gen_ticks(rng, symbols, n, ts0, step=1000):
	"""n ticks round-robin over symbols (quotes, some partial, and trades),
	ts = ts0 + i*step."""
	out = []
	mid = {s: price(rng, 10, 500, 2) for s in symbols}
	for i in range(n):
		s = symbols[i % len(symbols)]
		scale = rng.choice((2, 2, 3, 4, 6))
		p = price(rng, int(mid[s]) - 5 if mid[s] > 6 else 1, int(mid[s]) + 5, scale)
		kind = rng.random()
		if kind < 0.45:
			f = dict(bid=p, ask=p + price(rng, 0, 0, 2) + Decimal("0.01"),
				 bid_size=rng.randint(1, 5000), ask_size=rng.randint(1, 5000))
			for k in list(f):  # sometimes a partial quote
				if len(f) > 1 and rng.random() < 0.2:
					del f[k]
		else:
			f = dict(last=p, last_size=rng.randint(1, 900))
		out.append(tick(s, ts=ts0 + i * step, **f))
	return out


def hist_ticks():
	"""50 ticks of HIST 100 ms apart from BASE: quote, trade, quote, …"""
	rng = random.Random(4)
	out = []
	for i in range(50):
		p = price(rng, 180, 190, rng.choice((2, 3, 4)))
		if i % 2:
			out.append(tick("HIST", ts=BASE + i * 100_000, last=p, last_size=rng.randint(1, 500)))
		else:
			out.append(tick("HIST", ts=BASE + i * 100_000, bid=p, ask=p + Decimal("0.02"),
					bid_size=rng.randint(1, 900)))
	return out


DAY_US = 86400 * 1_000_000


def mid_price(bid, ask):
	"""(bid + ask) / 2 as the server writes it: at the larger scale of the
	two, one digit more when the sum is odd there."""
	scale = max(-Decimal(bid).as_tuple().exponent, -Decimal(ask).as_tuple().exponent, 0)
	total = int((Decimal(bid) + Decimal(ask)).scaleb(scale))
	if total % 2 == 0:
		return Decimal(total // 2).scaleb(-scale)
	return Decimal(total * 5).scaleb(-scale - 1)


def new_session(f):
	"""What a new trading session does to the fields f: prev_close is the
	last trade (or the mid price of a symbol that never traded), open, high
	and low go, trades and volume start again."""
	if "last" in f:
		f["prev_close"] = f["last"]
	elif "bid" in f and "ask" in f:
		f["prev_close"] = mid_price(f["bid"], f["ask"])
	for k in ("open", "high", "low"):
		f.pop(k, None)
	for k in ("trades", "volume"):
		if k in f:
			f[k] = 0


def model_states(ticks, session_us=DAY_US):
	"""The state these ticks make: per symbol seq, ts and every field
	(inputs, open/high/low of last, volume = sum of last_size, trades),
	with a trading session per UTC day (the server's default): a tick of a
	later day than its symbol's session begins one (new_session()).
	Ticks that carry `volume` themselves are not modelled (avoid them here)."""
	st = {}
	for t in ticks:
		s = st.setdefault(t["symbol"], {"seq": 0, "ts": None, "fields": {}, "session": None})
		f = s["fields"]
		day = t["ts"] // session_us
		if s["session"] is None:
			s["session"] = day
		elif day > s["session"]:
			new_session(f)
			s["session"] = day
		s["seq"] += 1
		s["ts"] = t["ts"]
		for k in INPUT_FIELDS:
			if k in t and k != "volume":
				f[k] = t[k]
		if "last" in t:
			px = t["last"]
			f.setdefault("open", px)
			f["high"] = max(f.get("high", px), px)
			f["low"] = min(f.get("low", px), px)
			f["trades"] = f.get("trades", 0) + 1
			f["volume"] = f.get("volume", 0) + t.get("last_size", 0)
	return st

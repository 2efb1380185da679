"""The time zone of each symbol (README: Protocol, the symbols reply):
every entry of a `symbols` reply names the IANA time zone of the symbol's
trading sessions as the --session settings give it (first match wins,
patterns match case and all), "UTC" for a symbol none matches, and "UTC"
for every symbol without settings. The dashboard shows times in it."""

from harness import Client, Server, check, ingest, tick

SESSIONS = ["AAPL=America/New_York@09:30", "EUR/*=Europe/London@17:00",
	    "E*=Asia/Tokyo@09:00"]
TS = 1710163860_000000  # Mon 2024-03-11 13:31 UTC


def zones_of(reply):
	return {e["symbol"]: e.get("zone") for e in reply["symbols"]}


async def test_symbols_reply_names_each_symbols_zone():
	args = []
	for s in SESSIONS:
		args += ["--session", s]
	srv = await Server(feed="stdin", args=args, name="zones").start()
	c = await Client.connect(srv, name="c")
	ticks = [tick(s, ts=TS, last="1.5", last_size=1)
		 for s in ["AAPL", "aapl", "EUR/USD", "EURX", "XYZ"]]
	await ingest(srv, ticks, client=c)
	reply = await c.request({"op": "symbols"})
	got = zones_of(reply)
	want = {"AAPL": "America/New_York", "aapl": "UTC", "EUR/USD": "Europe/London",
		"EURX": "Asia/Tokyo", "XYZ": "UTC"}
	check(got == want, "zones in the symbols reply: got %s, want %s" % (got, want))
	check(all(list(e) == ["symbol", "seq", "zone"] for e in reply["symbols"]),
	      "an entry is symbol, seq, zone: %s" % reply["symbols"])


async def test_without_sessions_every_zone_is_utc():
	srv = await Server(feed="stdin", name="utc").start()
	c = await Client.connect(srv, name="c")
	await ingest(srv, [tick("AAPL", ts=TS, bid="1.1", ask="1.2"),
			   tick("EUR/USD", ts=TS, bid="1.08", ask="1.09")], client=c)
	got = zones_of(await c.request({"op": "symbols"}))
	check(got == {"AAPL": "UTC", "EUR/USD": "UTC"}, "zones without --session: %s" % got)

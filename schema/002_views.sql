-- 002_views: the stored ticks and states as a person reads them, for the
-- sqlite3 shell and for checking a database by hand:
--
--   SELECT * FROM tick_view WHERE symbol = 'AAPL' ORDER BY id DESC LIMIT 5;
--   SELECT symbol, seq, bid, ask, last FROM state_view;
--
-- Decimals appear as exact text ('189.30'), built from the mantissa and
-- its 5-bit scale (see 001_init); time is ts as UTC text, to the
-- millisecond. The program itself reads the tables, never these views.
-- (A scan of tick_view by symbol reads every tick: it is for looking, not
-- for queries that must be fast.)

CREATE VIEW tick_view AS
SELECT
	t.id,
	s.name AS symbol,
	t.ts,
	strftime('%Y-%m-%dT%H:%M:%fZ', t.ts / 1000000.0, 'unixepoch') AS time,
	t.seq,
	CASE WHEN t.bid IS NULL THEN NULL
	     WHEN ((t.scales >> 0) & 31) = 0 THEN CAST(t.bid AS TEXT)
	     ELSE iif(t.bid < 0, '-', '') ||
	          substr(printf('%0*d', ((t.scales >> 0) & 31) + 1, abs(t.bid)),
	                 1, length(printf('%0*d', ((t.scales >> 0) & 31) + 1, abs(t.bid))) - ((t.scales >> 0) & 31)) ||
	          '.' || substr(printf('%0*d', ((t.scales >> 0) & 31) + 1, abs(t.bid)), -((t.scales >> 0) & 31))
	END AS bid,
	CASE WHEN t.ask IS NULL THEN NULL
	     WHEN ((t.scales >> 5) & 31) = 0 THEN CAST(t.ask AS TEXT)
	     ELSE iif(t.ask < 0, '-', '') ||
	          substr(printf('%0*d', ((t.scales >> 5) & 31) + 1, abs(t.ask)),
	                 1, length(printf('%0*d', ((t.scales >> 5) & 31) + 1, abs(t.ask))) - ((t.scales >> 5) & 31)) ||
	          '.' || substr(printf('%0*d', ((t.scales >> 5) & 31) + 1, abs(t.ask)), -((t.scales >> 5) & 31))
	END AS ask,
	CASE WHEN t.bid_size IS NULL THEN NULL
	     WHEN ((t.scales >> 10) & 31) = 0 THEN CAST(t.bid_size AS TEXT)
	     ELSE iif(t.bid_size < 0, '-', '') ||
	          substr(printf('%0*d', ((t.scales >> 10) & 31) + 1, abs(t.bid_size)),
	                 1, length(printf('%0*d', ((t.scales >> 10) & 31) + 1, abs(t.bid_size))) - ((t.scales >> 10) & 31)) ||
	          '.' || substr(printf('%0*d', ((t.scales >> 10) & 31) + 1, abs(t.bid_size)), -((t.scales >> 10) & 31))
	END AS bid_size,
	CASE WHEN t.ask_size IS NULL THEN NULL
	     WHEN ((t.scales >> 15) & 31) = 0 THEN CAST(t.ask_size AS TEXT)
	     ELSE iif(t.ask_size < 0, '-', '') ||
	          substr(printf('%0*d', ((t.scales >> 15) & 31) + 1, abs(t.ask_size)),
	                 1, length(printf('%0*d', ((t.scales >> 15) & 31) + 1, abs(t.ask_size))) - ((t.scales >> 15) & 31)) ||
	          '.' || substr(printf('%0*d', ((t.scales >> 15) & 31) + 1, abs(t.ask_size)), -((t.scales >> 15) & 31))
	END AS ask_size,
	CASE WHEN t.last IS NULL THEN NULL
	     WHEN ((t.scales >> 20) & 31) = 0 THEN CAST(t.last AS TEXT)
	     ELSE iif(t.last < 0, '-', '') ||
	          substr(printf('%0*d', ((t.scales >> 20) & 31) + 1, abs(t.last)),
	                 1, length(printf('%0*d', ((t.scales >> 20) & 31) + 1, abs(t.last))) - ((t.scales >> 20) & 31)) ||
	          '.' || substr(printf('%0*d', ((t.scales >> 20) & 31) + 1, abs(t.last)), -((t.scales >> 20) & 31))
	END AS last,
	CASE WHEN t.last_size IS NULL THEN NULL
	     WHEN ((t.scales >> 25) & 31) = 0 THEN CAST(t.last_size AS TEXT)
	     ELSE iif(t.last_size < 0, '-', '') ||
	          substr(printf('%0*d', ((t.scales >> 25) & 31) + 1, abs(t.last_size)),
	                 1, length(printf('%0*d', ((t.scales >> 25) & 31) + 1, abs(t.last_size))) - ((t.scales >> 25) & 31)) ||
	          '.' || substr(printf('%0*d', ((t.scales >> 25) & 31) + 1, abs(t.last_size)), -((t.scales >> 25) & 31))
	END AS last_size,
	CASE WHEN t.volume IS NULL THEN NULL
	     WHEN ((t.scales >> 30) & 31) = 0 THEN CAST(t.volume AS TEXT)
	     ELSE iif(t.volume < 0, '-', '') ||
	          substr(printf('%0*d', ((t.scales >> 30) & 31) + 1, abs(t.volume)),
	                 1, length(printf('%0*d', ((t.scales >> 30) & 31) + 1, abs(t.volume))) - ((t.scales >> 30) & 31)) ||
	          '.' || substr(printf('%0*d', ((t.scales >> 30) & 31) + 1, abs(t.volume)), -((t.scales >> 30) & 31))
	END AS volume
FROM ticks AS t
JOIN symbols AS s ON s.id = t.symbol_id;

CREATE VIEW state_view AS
SELECT
	s.name AS symbol,
	st.seq,
	st.ts,
	strftime('%Y-%m-%dT%H:%M:%fZ', st.ts / 1000000.0, 'unixepoch') AS time,
	st.feed_sends_volume,
	CASE WHEN st.bid IS NULL THEN NULL
	     WHEN ((st.scales >> 0) & 31) = 0 THEN CAST(st.bid AS TEXT)
	     ELSE iif(st.bid < 0, '-', '') ||
	          substr(printf('%0*d', ((st.scales >> 0) & 31) + 1, abs(st.bid)),
	                 1, length(printf('%0*d', ((st.scales >> 0) & 31) + 1, abs(st.bid))) - ((st.scales >> 0) & 31)) ||
	          '.' || substr(printf('%0*d', ((st.scales >> 0) & 31) + 1, abs(st.bid)), -((st.scales >> 0) & 31))
	END AS bid,
	CASE WHEN st.ask IS NULL THEN NULL
	     WHEN ((st.scales >> 5) & 31) = 0 THEN CAST(st.ask AS TEXT)
	     ELSE iif(st.ask < 0, '-', '') ||
	          substr(printf('%0*d', ((st.scales >> 5) & 31) + 1, abs(st.ask)),
	                 1, length(printf('%0*d', ((st.scales >> 5) & 31) + 1, abs(st.ask))) - ((st.scales >> 5) & 31)) ||
	          '.' || substr(printf('%0*d', ((st.scales >> 5) & 31) + 1, abs(st.ask)), -((st.scales >> 5) & 31))
	END AS ask,
	CASE WHEN st.bid_size IS NULL THEN NULL
	     WHEN ((st.scales >> 10) & 31) = 0 THEN CAST(st.bid_size AS TEXT)
	     ELSE iif(st.bid_size < 0, '-', '') ||
	          substr(printf('%0*d', ((st.scales >> 10) & 31) + 1, abs(st.bid_size)),
	                 1, length(printf('%0*d', ((st.scales >> 10) & 31) + 1, abs(st.bid_size))) - ((st.scales >> 10) & 31)) ||
	          '.' || substr(printf('%0*d', ((st.scales >> 10) & 31) + 1, abs(st.bid_size)), -((st.scales >> 10) & 31))
	END AS bid_size,
	CASE WHEN st.ask_size IS NULL THEN NULL
	     WHEN ((st.scales >> 15) & 31) = 0 THEN CAST(st.ask_size AS TEXT)
	     ELSE iif(st.ask_size < 0, '-', '') ||
	          substr(printf('%0*d', ((st.scales >> 15) & 31) + 1, abs(st.ask_size)),
	                 1, length(printf('%0*d', ((st.scales >> 15) & 31) + 1, abs(st.ask_size))) - ((st.scales >> 15) & 31)) ||
	          '.' || substr(printf('%0*d', ((st.scales >> 15) & 31) + 1, abs(st.ask_size)), -((st.scales >> 15) & 31))
	END AS ask_size,
	CASE WHEN st.last IS NULL THEN NULL
	     WHEN ((st.scales >> 20) & 31) = 0 THEN CAST(st.last AS TEXT)
	     ELSE iif(st.last < 0, '-', '') ||
	          substr(printf('%0*d', ((st.scales >> 20) & 31) + 1, abs(st.last)),
	                 1, length(printf('%0*d', ((st.scales >> 20) & 31) + 1, abs(st.last))) - ((st.scales >> 20) & 31)) ||
	          '.' || substr(printf('%0*d', ((st.scales >> 20) & 31) + 1, abs(st.last)), -((st.scales >> 20) & 31))
	END AS last,
	CASE WHEN st.last_size IS NULL THEN NULL
	     WHEN ((st.scales >> 25) & 31) = 0 THEN CAST(st.last_size AS TEXT)
	     ELSE iif(st.last_size < 0, '-', '') ||
	          substr(printf('%0*d', ((st.scales >> 25) & 31) + 1, abs(st.last_size)),
	                 1, length(printf('%0*d', ((st.scales >> 25) & 31) + 1, abs(st.last_size))) - ((st.scales >> 25) & 31)) ||
	          '.' || substr(printf('%0*d', ((st.scales >> 25) & 31) + 1, abs(st.last_size)), -((st.scales >> 25) & 31))
	END AS last_size,
	CASE WHEN st.volume IS NULL THEN NULL
	     WHEN ((st.scales >> 30) & 31) = 0 THEN CAST(st.volume AS TEXT)
	     ELSE iif(st.volume < 0, '-', '') ||
	          substr(printf('%0*d', ((st.scales >> 30) & 31) + 1, abs(st.volume)),
	                 1, length(printf('%0*d', ((st.scales >> 30) & 31) + 1, abs(st.volume))) - ((st.scales >> 30) & 31)) ||
	          '.' || substr(printf('%0*d', ((st.scales >> 30) & 31) + 1, abs(st.volume)), -((st.scales >> 30) & 31))
	END AS volume,
	CASE WHEN st.open IS NULL THEN NULL
	     WHEN ((st.scales >> 35) & 31) = 0 THEN CAST(st.open AS TEXT)
	     ELSE iif(st.open < 0, '-', '') ||
	          substr(printf('%0*d', ((st.scales >> 35) & 31) + 1, abs(st.open)),
	                 1, length(printf('%0*d', ((st.scales >> 35) & 31) + 1, abs(st.open))) - ((st.scales >> 35) & 31)) ||
	          '.' || substr(printf('%0*d', ((st.scales >> 35) & 31) + 1, abs(st.open)), -((st.scales >> 35) & 31))
	END AS open,
	CASE WHEN st.high IS NULL THEN NULL
	     WHEN ((st.scales >> 40) & 31) = 0 THEN CAST(st.high AS TEXT)
	     ELSE iif(st.high < 0, '-', '') ||
	          substr(printf('%0*d', ((st.scales >> 40) & 31) + 1, abs(st.high)),
	                 1, length(printf('%0*d', ((st.scales >> 40) & 31) + 1, abs(st.high))) - ((st.scales >> 40) & 31)) ||
	          '.' || substr(printf('%0*d', ((st.scales >> 40) & 31) + 1, abs(st.high)), -((st.scales >> 40) & 31))
	END AS high,
	CASE WHEN st.low IS NULL THEN NULL
	     WHEN ((st.scales >> 45) & 31) = 0 THEN CAST(st.low AS TEXT)
	     ELSE iif(st.low < 0, '-', '') ||
	          substr(printf('%0*d', ((st.scales >> 45) & 31) + 1, abs(st.low)),
	                 1, length(printf('%0*d', ((st.scales >> 45) & 31) + 1, abs(st.low))) - ((st.scales >> 45) & 31)) ||
	          '.' || substr(printf('%0*d', ((st.scales >> 45) & 31) + 1, abs(st.low)), -((st.scales >> 45) & 31))
	END AS low,
	CASE WHEN st.trades IS NULL THEN NULL
	     WHEN ((st.scales >> 50) & 31) = 0 THEN CAST(st.trades AS TEXT)
	     ELSE iif(st.trades < 0, '-', '') ||
	          substr(printf('%0*d', ((st.scales >> 50) & 31) + 1, abs(st.trades)),
	                 1, length(printf('%0*d', ((st.scales >> 50) & 31) + 1, abs(st.trades))) - ((st.scales >> 50) & 31)) ||
	          '.' || substr(printf('%0*d', ((st.scales >> 50) & 31) + 1, abs(st.trades)), -((st.scales >> 50) & 31))
	END AS trades,
	st.bid_seq,
	st.ask_seq,
	st.bid_size_seq,
	st.ask_size_seq,
	st.last_seq,
	st.last_size_seq,
	st.volume_seq,
	st.open_seq,
	st.high_seq,
	st.low_seq,
	st.trades_seq
FROM state AS st
JOIN symbols AS s ON s.id = st.symbol_id;

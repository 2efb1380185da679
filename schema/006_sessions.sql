-- 006_sessions: trading sessions. A symbol's open, high, low, volume and
-- trades are those of its trading session under way, and prev_close is
-- the close of the session before it (the last trade, or the mid price of
-- a symbol that only ever had quotes); the state row says which session
-- it is in, so that a restart goes on in the same one.
--
--   prev_close, prev_close_seq  a value and its change seq, as the other
--                               fields; its scale is bits 55-59 of scales
--   session                     the session's start, µs since the epoch
--                               (NULL: a row written before sessions, whose
--                               session is that of its ts)
--
-- A field a new session took away (open, high, low until its first trade)
-- is NULL with its *_seq kept: the seq at which it was taken away.
--
-- state_view shows the new columns too.

ALTER TABLE state ADD COLUMN prev_close INTEGER;
ALTER TABLE state ADD COLUMN prev_close_seq INTEGER;
ALTER TABLE state ADD COLUMN session INTEGER;

DROP VIEW state_view;
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
	CASE WHEN st.prev_close IS NULL THEN NULL
	     WHEN ((st.scales >> 55) & 31) = 0 THEN CAST(st.prev_close AS TEXT)
	     ELSE iif(st.prev_close < 0, '-', '') ||
	          substr(printf('%0*d', ((st.scales >> 55) & 31) + 1, abs(st.prev_close)),
	                 1, length(printf('%0*d', ((st.scales >> 55) & 31) + 1, abs(st.prev_close))) - ((st.scales >> 55) & 31)) ||
	          '.' || substr(printf('%0*d', ((st.scales >> 55) & 31) + 1, abs(st.prev_close)), -((st.scales >> 55) & 31))
	END AS prev_close,
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
	st.trades_seq,
	st.prev_close_seq,
	st.session,
	CASE WHEN st.session IS NULL THEN NULL
	     ELSE strftime('%Y-%m-%dT%H:%M:%fZ', st.session / 1000000.0, 'unixepoch')
	END AS session_time
FROM state AS st
JOIN symbols AS s ON s.id = st.symbol_id;

-- 001_init: the tables of a publisher database.
--
-- Decimals are exact. A price or size is stored as an INTEGER mantissa and a
-- scale (the digits after the point): value = mantissa / 10^scale, so 189.30
-- is 18930 with scale 2, never a REAL. The scales of one row are packed into
-- its INTEGER `scales` column, 5 bits per field in the order of the columns
-- (enum tick_field): bid in bits 0-4, ask in 5-9, bid_size 10-14, ask_size
-- 15-19, last 20-24, last_size 25-29, volume 30-34, open 35-39, high 40-44,
-- low 45-49, trades 50-54. An absent field is NULL. The views of migration
-- 002 show the values as text.
--
-- Times (ts, created_at, ...) are µs since the Unix epoch. seq is the
-- per-symbol uint64 the protocol sends, stored as its int64 bit pattern.

-- One row: what names this database's life, and the writer's counters.
CREATE TABLE meta (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	-- Created with the database, kept across restarts; a client that sees
	-- another epoch drops what it holds.
	epoch TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	-- ticks.id of the next tick: ids are never reused, even after
	-- retention has deleted every tick.
	next_tick_id INTEGER NOT NULL,
	-- The greatest ts written so far (commits.max_ts of the last commit).
	max_ts INTEGER NOT NULL,
	-- The greatest commits.max_ts - commits.ts_min: how far behind the
	-- running maximum a tick has ever been (see commits).
	max_lag INTEGER NOT NULL
);

CREATE TABLE symbols (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE
);

-- Every tick, appended in commit order and never updated. Within one
-- commit the writer groups the ticks by symbol (keeping each symbol's own
-- order, which is seq order), so that one symbol's ticks of one commit are
-- consecutive ids: a run (below). Appending is what lets the writer keep
-- up with hundreds of thousands of ticks a second: no per-tick index is
-- maintained, only one `runs` row per symbol per commit.
CREATE TABLE ticks (
	id INTEGER PRIMARY KEY,
	symbol_id INTEGER NOT NULL REFERENCES symbols (id),
	ts INTEGER NOT NULL,
	seq INTEGER NOT NULL,
	bid INTEGER,
	ask INTEGER,
	bid_size INTEGER,
	ask_size INTEGER,
	last INTEGER,
	last_size INTEGER,
	volume INTEGER,
	scales INTEGER NOT NULL
);

-- The index of a symbol's ticks: ticks.id first_id .. first_id + count - 1
-- are ticks of symbol_id, in seq order. max_ts is the greatest ts the symbol
-- had reached up to and including this run, so it never decreases along a
-- symbol's runs: ordered by (max_ts, first_id) the runs are in seq order,
-- and a time range [from, to) lies in the runs with from <= max_ts <
-- to + state.max_lag (no tick is further than max_lag below its run's
-- max_ts). History and last-N of a symbol are one range scan here, then
-- id ranges of ticks.
CREATE TABLE runs (
	symbol_id INTEGER NOT NULL REFERENCES symbols (id),
	max_ts INTEGER NOT NULL,
	first_id INTEGER NOT NULL,
	count INTEGER NOT NULL,
	ts_min INTEGER NOT NULL,
	PRIMARY KEY (symbol_id, max_ts, first_id)
) WITHOUT ROWID;

-- One row per transaction of the writer: ticks.id first_id .. first_id +
-- count - 1. max_ts is the running maximum of ts over all ticks, as in runs,
-- so an export of every symbol over [from, to) reads the commits with
-- from <= max_ts < to + meta.max_lag, in order.
CREATE TABLE commits (
	id INTEGER PRIMARY KEY,
	first_id INTEGER NOT NULL,
	count INTEGER NOT NULL,
	ts_min INTEGER NOT NULL,
	max_ts INTEGER NOT NULL,
	committed_at INTEGER NOT NULL
);
CREATE INDEX commits_max_ts ON commits (max_ts);

-- The state of every symbol (struct symbol_state) after the last stored
-- tick, written in the same transaction as the ticks, so the stored state
-- always equals the stored ticks. Each value has its mantissa column (NULL
-- when the field has no value yet) and the seq at which it last changed.
-- max_ts and max_lag are the symbol's running maximum ts and lag bound (see
-- runs); they live here because this row is rewritten with every commit that
-- touches the symbol anyway.
CREATE TABLE state (
	symbol_id INTEGER PRIMARY KEY REFERENCES symbols (id),
	seq INTEGER NOT NULL,
	ts INTEGER NOT NULL,
	feed_sends_volume INTEGER NOT NULL,
	bid INTEGER,
	ask INTEGER,
	bid_size INTEGER,
	ask_size INTEGER,
	last INTEGER,
	last_size INTEGER,
	volume INTEGER,
	open INTEGER,
	high INTEGER,
	low INTEGER,
	trades INTEGER,
	scales INTEGER NOT NULL,
	bid_seq INTEGER,
	ask_seq INTEGER,
	bid_size_seq INTEGER,
	ask_size_seq INTEGER,
	last_seq INTEGER,
	last_size_seq INTEGER,
	volume_seq INTEGER,
	open_seq INTEGER,
	high_seq INTEGER,
	low_seq INTEGER,
	trades_seq INTEGER,
	max_ts INTEGER NOT NULL,
	max_lag INTEGER NOT NULL
);

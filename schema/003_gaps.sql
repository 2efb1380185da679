-- 003_gaps: ticks the store did not keep.
--
-- When a live feed outruns the disk, the server does not slow the feed:
-- the store takes what its queue holds and drops the rest until it has
-- caught up, then records here, per symbol, which seqs it never stored, and
-- writes the symbol's state as it was when it took up again. History and
-- bars report the gaps that overlap what they return, so a chart can say
-- "no data here" instead of drawing across the hole. seq is stored as its
-- int64 bit pattern, times in µs, as in the other tables.
CREATE TABLE gaps (
	symbol_id INTEGER NOT NULL REFERENCES symbols (id),
	first_seq INTEGER NOT NULL,
	last_seq INTEGER NOT NULL,
	first_ts INTEGER NOT NULL,
	last_ts INTEGER NOT NULL,
	ticks INTEGER NOT NULL,
	recorded_at INTEGER NOT NULL,
	PRIMARY KEY (symbol_id, first_seq)
) WITHOUT ROWID;

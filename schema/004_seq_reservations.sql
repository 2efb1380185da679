-- 004_seq_reservations: seqs reserved ahead, per symbol, as a database
-- reserves the values of a sequence (publisher/store.h, "Seqs").
--
-- The server never hands out a seq past seq_reserved of its symbol, nor
-- gives a symbol a field outside `fields`, before this row says so: the
-- writer commits a row, then the server may use it. So after any crash
-- this table bounds what clients may have seen: a symbol whose reservation
-- is past its stored state (state.seq) may have served seqs up to
-- seq_reserved that the store never got, and is restored at
-- seq_reserved + 1, every field marked changed there. A clean stop writes
-- each symbol's last seq here (and its state), so a clean restart goes on
-- at the very same seq.
--
-- fields: the state fields the symbol may have had at any seq up to
-- seq_reserved, one bit each in the order of the state's value columns
-- (bid is bit 0, ask bit 1, ... trades bit 10). seq_reserved is stored
-- as its int64 bit pattern. A symbol without a row (a database from
-- before this migration) is taken as reserved up to its stored seq, with
-- the fields its state has.
CREATE TABLE reservations (
	symbol_id INTEGER PRIMARY KEY REFERENCES symbols (id),
	seq_reserved INTEGER NOT NULL,
	fields INTEGER NOT NULL
);

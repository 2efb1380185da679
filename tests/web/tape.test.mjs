// web/js/tape.js, the parts without DOM: which state events are trades, the
// trades among history ticks, the tick rule, the rows kept (history under
// live trades, newest first, bounded), what a row shows, and which rows are
// in view (only those are elements).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tickDirection, tradeFromState, tradesFromHistory, TapeRows, tapeCells, rowWindow, ROW_PX, TAPE_ROWS } from '../../web/js/tape.js';
import { ZonedTime } from '../../web/js/timetext.js';

/* A state event as the client library sends it. */
function ev(fields, changed, previous = {}, { seq = '10', ts = '1718000000123456', snapshot = false } = {}) {
	return { symbol: 'X', state: { seq, ts, fields }, changed, previous, snapshot };
}

test('tick rule: up, down, and a zero tick keeps the direction before it', () => {
	assert.deepEqual(tickDirection(undefined, '10.00', 0), { dir: 0, zero: false });
	assert.deepEqual(tickDirection('10.00', '10.01', 0), { dir: 1, zero: false });
	assert.deepEqual(tickDirection('10.01', '10.010', 1), { dir: 1, zero: true }); // same price, other scale
	assert.deepEqual(tickDirection('10.01', '10.01', -1), { dir: -1, zero: true });
	assert.deepEqual(tickDirection('10.01', '9.99', 1), { dir: -1, zero: false });
	assert.deepEqual(tickDirection('0.3', '0.30000000000000001', 0), { dir: 1, zero: false }); // exact, not doubles
});

test('a trade is an update of last, last_size or trades; quotes and snapshots are not', () => {
	const f = { last: '189.52', last_size: '300', trades: '7', bid: '189.50' };
	assert.deepEqual(tradeFromState(ev(f, { last: 1, trades: 1 }, { last: '189.50', trades: '6' })),
		{ seq: '10', ts: '1718000000123456', price: '189.52', size: '300', merged: 1 });
	// The same price again: last does not change, trades does.
	assert.equal(tradeFromState(ev(f, { trades: 1, last_size: 0 }, { trades: '6', last_size: '100' })).price, '189.52');
	assert.equal(tradeFromState(ev(f, { bid: 1 }, { bid: '189.49' })), null);
	assert.equal(tradeFromState(ev(f, { last: 1 }, {}, { snapshot: true })), null);
	assert.equal(tradeFromState(ev({ bid: '1.1' }, { trades: 1 }, {})), null);
	// No size from the feed: the row has none.
	assert.equal(tradeFromState(ev({ last: '5' }, { last: 0 }, {})).size, undefined);
});

test('conflation: an update standing for several trades says how many', () => {
	const t = tradeFromState(ev({ last: '10', trades: '12' }, { last: 1, trades: 1 }, { last: '9', trades: '9' }));
	assert.equal(t.merged, 3);
	// A new session starts the count again: one trade.
	const s = tradeFromState(ev({ last: '10', trades: '1' }, { last: 1, trades: -1 }, { last: '9', trades: '40' }));
	assert.equal(s.merged, 1);
});

test('history: the ticks with a last are the trades, in order', () => {
	const ticks = [
		{ ts: '1', seq: '1', bid: '9.9', ask: '10.1' },
		{ ts: '2', seq: '2', last: '10.0', last_size: '100' },
		{ ts: '3', seq: '3', bid: '9.8' },
		{ ts: '4', seq: '4', last: '9.9', last_size: '5', bid: '9.8' },
	];
	assert.deepEqual(tradesFromHistory(ticks).map((t) => [t.seq, t.price, t.size]), [['2', '10.0', '100'], ['4', '9.9', '5']]);
});

test('rows: newest first with directions; an older or repeated seq is not added', () => {
	const r = new TapeRows();
	r.add({ seq: '1', ts: '1', price: '10', size: '1', merged: 1 });
	r.add({ seq: '2', ts: '2', price: '11', size: '1', merged: 1 });
	r.add({ seq: '3', ts: '3', price: '11', size: '1', merged: 1 });
	r.add({ seq: '5', ts: '5', price: '10.5', size: '1', merged: 1 });
	assert.equal(r.add({ seq: '5', ts: '5', price: '12', size: '1', merged: 1 }), null);
	assert.equal(r.add({ seq: '4', ts: '4', price: '12', size: '1', merged: 1 }), null);
	assert.deepEqual(r.rows.map((x) => [x.seq, x.dir, x.zero]), [['5', -1, false], ['3', 1, true], ['2', 1, false], ['1', 0, false]]);
});

test('seed: history goes under the live trades that came first, without doubles', () => {
	const r = new TapeRows();
	// Live trades 7 and 8 arrived before the history answer, which holds 1..7.
	r.add({ seq: '7', ts: '7', price: '10.2', merged: 1 });
	r.add({ seq: '8', ts: '8', price: '10.2', merged: 1 });
	const hist = [1, 3, 5, 7].map((n, i) => ({ seq: String(n), ts: String(n), price: ['10.0', '10.1', '10.3', '10.2'][i], merged: 1 }));
	r.seed(hist);
	assert.deepEqual(r.rows.map((x) => x.seq), ['8', '7', '5', '3', '1']);
	// Directions run through both: 10.0, 10.1 up, 10.3 up, 10.2 down, 10.2 zero (down).
	assert.deepEqual(r.rows.map((x) => x.dir), [-1, -1, 1, 1, 0]);
	assert.equal(r.rows[0].zero, true);
	// Seqs past 2^53 compare exactly.
	const big = new TapeRows();
	big.add({ seq: '9007199254740993', ts: '1', price: '1', merged: 1 });
	assert.equal(big.add({ seq: '9007199254740992', ts: '1', price: '2', merged: 1 }), null);
	assert.ok(big.add({ seq: '9007199254740994', ts: '1', price: '2', merged: 1 }));
});

test('rows are bounded: the oldest go', () => {
	const r = new TapeRows(5);
	const hist = [];
	for (let i = 1; i <= 20; i++) hist.push({ seq: String(i), ts: String(i), price: String(i), merged: 1 });
	r.seed(hist);
	assert.deepEqual(r.rows.map((x) => x.seq), ['20', '19', '18', '17', '16']);
	// The oldest row kept still has its direction from the one before it.
	assert.equal(r.rows[4].dir, 1);
	r.add({ seq: '21', ts: '21', price: '1', merged: 1 });
	assert.equal(r.rows.length, 5);
	assert.equal(r.rows[0].dir, -1);
	assert.ok(TAPE_ROWS >= 100);
});

test('cells: time on the time basis\'s clock, exact price, grouped size, merged count, classes', () => {
	const utc = new ZonedTime('UTC');
	const c = tapeCells({ ts: '1718000000123456', price: '189.520', size: '12500', merged: 3, dir: 1, zero: true }, utc);
	assert.equal(c.time, '06:13:20.123');
	assert.equal(c.price, '189.520');
	assert.equal(c.size, '12,500');
	assert.equal(c.merged, '\u00d73');
	assert.equal(c.cls, 'tp tp-up tp-zero');
	const d = tapeCells({ ts: '1718000000123456', price: '1', size: undefined, merged: 1, dir: -1, zero: false }, utc);
	assert.equal(d.size, '');
	assert.equal(d.merged, '');
	assert.equal(d.cls, 'tp tp-down');
	const ny = tapeCells({ ts: '1718000000123456', price: '1', merged: 1, dir: 0 }, new ZonedTime('America/New_York'));
	assert.equal(ny.time, '02:13:20.123');
});

test('the rows in view: from the scroll position, one more than fits, never past the end', () => {
	assert.deepEqual(rowWindow(200, 0, 10 * ROW_PX), { first: 0, count: 11 });
	assert.deepEqual(rowWindow(200, 5 * ROW_PX + 3, 10 * ROW_PX), { first: 5, count: 11 });
	assert.deepEqual(rowWindow(200, 195 * ROW_PX, 10 * ROW_PX), { first: 195, count: 5 });
	assert.deepEqual(rowWindow(5, 0, 400), { first: 0, count: 5 });
	assert.deepEqual(rowWindow(0, 0, 400), { first: 0, count: 0 });
	assert.deepEqual(rowWindow(3, 9999, 400), { first: 2, count: 1 }); // scrolled past a list that shrank
});

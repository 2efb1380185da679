// web/js/model.js: the protocol's client rules (a snapshot replaces, a delta
// applies on its `from`, a gap resubscribes once per burst, old news is
// dropped), what a view needs from an update (dirty, flash, tick, scale), the
// trades fed to the bars, and the one-second bar ring.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Model, SecondBars, midPrice } from '../../web/js/model.js';
import { parseFrame } from '../../web/js/json.js';

/* A model watching `symbols`, counting its hooks' calls. */
function model(...symbols) {
	const m = new Model();
	const calls = { gaps: [], trades: [], dirty: 0 };
	m.onGap = (q) => calls.gaps.push(q.symbol);
	m.onTrade = (q, sec, price, vol) => calls.trades.push({ symbol: q.symbol, sec, price, vol });
	m.onDirty = () => calls.dirty++;
	for (const s of symbols) m.watch(s);
	const apply = (text) => m.apply(parseFrame(text));
	return { m, calls, apply };
}

test('a snapshot sets every field from its exact text', () => {
	const { m, apply } = model('X');
	apply('{"type":"snapshot","symbol":"X","seq":10,"ts":1718000000123456,"bid":189.30,"ask":189.32,"volume":1200}');
	const q = m.quotes.get('X');
	assert.equal(q.seq, '10');
	assert.equal(q.ts, '1718000000123456');
	assert.deepEqual({ ...q.f }, { bid: '189.30', ask: '189.32', volume: '1200' });
	assert.equal(q.scale, 2);
	assert.equal(m.updates, 1);
});

test('a delta applies when its from is the held seq', () => {
	const { m, calls, apply } = model('X');
	apply('{"type":"snapshot","symbol":"X","seq":10,"bid":1.10,"ask":1.20}');
	apply('{"type":"delta","symbol":"X","from":10,"seq":11,"bid":1.11}');
	const q = m.quotes.get('X');
	assert.equal(q.seq, '11');
	assert.equal(q.f.bid, '1.11');
	assert.equal(q.f.ask, '1.20');
	assert.equal(calls.gaps.length, 0);
	assert.equal(m.updates, 2);
});

test('a delta with seq <= held is old news: ignored, no gap', () => {
	const { m, calls, apply } = model('X');
	apply('{"type":"snapshot","symbol":"X","seq":10,"bid":1.10}');
	apply('{"type":"delta","symbol":"X","from":10,"seq":11,"bid":1.11}');
	apply('{"type":"delta","symbol":"X","from":9,"seq":11,"bid":1.05}');
	apply('{"type":"delta","symbol":"X","from":8,"seq":9,"bid":1.00}');
	const q = m.quotes.get('X');
	assert.equal(q.seq, '11');
	assert.equal(q.f.bid, '1.11');
	assert.equal(calls.gaps.length, 0);
	assert.equal(m.updates, 2);
});

test('a delta with from < held < seq covers what we miss: applied', () => {
	const { m, calls, apply } = model('X');
	apply('{"type":"snapshot","symbol":"X","seq":10,"bid":1.10}');
	apply('{"type":"delta","symbol":"X","from":10,"seq":12,"bid":1.12}');
	apply('{"type":"delta","symbol":"X","from":11,"seq":13,"ask":1.25}');
	const q = m.quotes.get('X');
	assert.equal(q.seq, '13');
	assert.equal(q.f.ask, '1.25');
	assert.equal(calls.gaps.length, 0);
});

test('a delta with from > held is a gap: not applied, one resync per burst', (t) => {
	let now = 1000;
	t.mock.method(performance, 'now', () => now);
	const { m, calls, apply } = model('X');
	apply('{"type":"snapshot","symbol":"X","seq":10,"bid":1.10}');
	apply('{"type":"delta","symbol":"X","from":20,"seq":21,"bid":9}');
	assert.deepEqual(calls.gaps, ['X']);
	assert.equal(m.quotes.get('X').seq, '10');
	assert.equal(m.quotes.get('X').f.bid, '1.10');
	assert.equal(m.gaps, 1);
	// Deltas already in flight behind the gap do not resync again...
	now += 2999;
	apply('{"type":"delta","symbol":"X","from":21,"seq":22,"bid":9}');
	assert.equal(calls.gaps.length, 1);
	// ...but a gap still there three seconds on does.
	now += 1;
	apply('{"type":"delta","symbol":"X","from":22,"seq":23,"bid":9}');
	assert.equal(calls.gaps.length, 2);
	// An update that applies ends the burst: the next gap resyncs at once.
	apply('{"type":"snapshot","symbol":"X","seq":30,"bid":2.00}');
	apply('{"type":"delta","symbol":"X","from":40,"seq":41,"bid":3}');
	assert.equal(calls.gaps.length, 3);
});

test('a delta before any snapshot is a gap', () => {
	const { m, calls, apply } = model('X');
	apply('{"type":"delta","symbol":"X","from":5,"seq":6,"bid":1}');
	assert.deepEqual(calls.gaps, ['X']);
	assert.equal(m.quotes.get('X').seq, null);
});

test('seqs are compared exactly past 2^53', () => {
	const { m, calls, apply } = model('X');
	apply('{"type":"snapshot","symbol":"X","seq":9007199254740993,"bid":1}');
	// As doubles 9007199254740993 and ...992 are equal; as seqs they are not.
	apply('{"type":"delta","symbol":"X","from":9007199254740992,"seq":9007199254740993,"bid":2}');
	assert.equal(m.quotes.get('X').f.bid, '1');
	apply('{"type":"delta","symbol":"X","from":9007199254740994,"seq":9007199254740995,"bid":3}');
	assert.equal(calls.gaps.length, 1);
	apply('{"type":"delta","symbol":"X","from":9007199254740993,"seq":9007199254740995,"bid":4}');
	assert.equal(m.quotes.get('X').seq, '9007199254740995');
	assert.equal(m.quotes.get('X').f.bid, '4');
});

test('a snapshot replaces everything: fields it lacks are dropped', () => {
	const { m, apply } = model('X');
	apply('{"type":"snapshot","symbol":"X","seq":10,"bid":1.10,"ask":1.20,"last":1.15}');
	apply('{"type":"snapshot","symbol":"X","seq":30,"bid":2.00}');
	const q = m.quotes.get('X');
	assert.deepEqual({ ...q.f }, { bid: '2.00' });
	assert.equal(q.flash.ask, 0);
	assert.equal(q.flash.last, 0);
	assert.equal(q.flash.bid, 1);
});

test('updates for symbols not watched are dropped', () => {
	const { m, calls, apply } = model('X');
	apply('{"type":"snapshot","symbol":"Y","seq":1,"bid":1}');
	apply('{"type":"delta","symbol":"Y","from":1,"seq":2,"bid":1}');
	assert.equal(m.quotes.has('Y'), false);
	assert.equal(m.updates, 0);
	assert.equal(calls.gaps.length, 0);
	assert.equal(calls.dirty, 0);
});

test('flash says which way each changed field moved; tick follows last', () => {
	const { m, apply } = model('X');
	apply('{"type":"snapshot","symbol":"X","seq":1,"bid":10.00,"ask":10.10,"last":10.05}');
	const q = m.quotes.get('X');
	assert.deepEqual({ ...q.flash }, { bid: 0, ask: 0, last: 0 }); // first values: no direction
	q.flash = null; // a view has rendered them
	apply('{"type":"delta","symbol":"X","from":1,"seq":2,"bid":9.99,"ask":10.10,"last":10.07}');
	assert.deepEqual({ ...q.flash }, { bid: -1, last: 1 }); // ask did not change
	assert.equal(q.tick, 1);
	apply('{"type":"delta","symbol":"X","from":2,"seq":3,"last":10.01}');
	assert.equal(q.tick, -1);
	apply('{"type":"delta","symbol":"X","from":3,"seq":4,"bid":9.98}');
	assert.equal(q.tick, -1); // only last moves the tick
});

test('scale is the most decimals seen in a price, not in a size', () => {
	const { m, apply } = model('X');
	apply('{"type":"snapshot","symbol":"X","seq":1,"bid":1.5,"volume":1234.56789}');
	assert.equal(m.quotes.get('X').scale, 1);
	apply('{"type":"delta","symbol":"X","from":1,"seq":2,"ask":1.5001}');
	assert.equal(m.quotes.get('X').scale, 4);
	apply('{"type":"delta","symbol":"X","from":2,"seq":3,"ask":1.6}');
	assert.equal(m.quotes.get('X').scale, 4);
});

test('dirty collects updated quotes; onDirty fires once until a view takes them', () => {
	const { m, calls, apply } = model('X', 'Y');
	apply('{"type":"snapshot","symbol":"X","seq":1,"bid":1}');
	apply('{"type":"snapshot","symbol":"Y","seq":1,"bid":1}');
	apply('{"type":"delta","symbol":"X","from":1,"seq":2,"bid":2}');
	assert.equal(calls.dirty, 1);
	assert.deepEqual([...m.dirty].map((q) => q.symbol), ['X', 'Y']);
	m.dirty.clear();
	apply('{"type":"delta","symbol":"Y","from":1,"seq":2,"bid":2}');
	assert.equal(calls.dirty, 2);
	m.unwatch('Y');
	assert.equal(m.dirty.size, 0);
	assert.equal(m.quotes.has('Y'), false);
});

test('watch keeps what is held; clear() forgets every value and marks all dirty', () => {
	const { m, calls, apply } = model('X', 'Y');
	apply('{"type":"snapshot","symbol":"X","seq":7,"ts":5,"last":1.00}');
	assert.equal(m.watch('X').seq, '7');
	m.dirty.clear();
	m.clear();
	const q = m.quotes.get('X');
	assert.equal(q.seq, null);
	assert.equal(q.ts, null);
	assert.deepEqual({ ...q.f }, {});
	assert.equal(q.tick, 0);
	assert.equal(q.bars, null);
	assert.equal(m.dirty.size, 2);
	assert.equal(calls.dirty, 2);
});

test('heldSeqs lists the symbols with a seq, as its exact text', () => {
	const { m, apply } = model('X', 'Y', 'Z');
	apply('{"type":"snapshot","symbol":"X","seq":18446744073709551615,"bid":1}');
	apply('{"type":"snapshot","symbol":"Z","seq":3,"bid":1}');
	assert.deepEqual(m.heldSeqs(['X', 'Y', 'Z', 'W']), [['X', '18446744073709551615'], ['Z', '3']]);
	assert.deepEqual(m.heldSeqs([]), []);
});

test('trades: a snapshot gives no volume, a delta its volume change', () => {
	const { calls, apply } = model('X');
	apply('{"type":"snapshot","symbol":"X","seq":1,"ts":1718000000500000,"last":10.00,"volume":1000}');
	apply('{"type":"delta","symbol":"X","from":1,"seq":2,"ts":1718000001000000,"last":10.05,"volume":1300,"last_size":300}');
	assert.deepEqual(calls.trades, [
		{ symbol: 'X', sec: 1718000000.5, price: 10, vol: 0 },
		{ symbol: 'X', sec: 1718000001, price: 10.05, vol: 300 },
	]);
});

test('trades: a volume that goes back (a new session) counts last_size', () => {
	const { calls, apply } = model('X');
	apply('{"type":"snapshot","symbol":"X","seq":1,"ts":1000000,"last":10,"volume":5000}');
	apply('{"type":"delta","symbol":"X","from":1,"seq":2,"ts":2000000,"last":11,"volume":200,"last_size":200}');
	assert.equal(calls.trades[1].vol, 200);
});

test('trades: a quote-only symbol feeds its mid price with no volume', () => {
	const { calls, apply } = model('FX');
	apply('{"type":"snapshot","symbol":"FX","seq":1,"ts":3000000,"bid":1.0850,"ask":1.0852}');
	apply('{"type":"delta","symbol":"FX","from":1,"seq":2,"ts":4000000,"bid_size":5}');
	assert.equal(calls.trades.length, 1); // a size alone moves no price
	assert.equal(calls.trades[0].sec, 3);
	assert.equal(calls.trades[0].vol, 0);
	assert.ok(Math.abs(calls.trades[0].price - 1.0851) < 1e-12);
});

test('midPrice is the mean of bid and ask', () => {
	assert.equal(midPrice('1.00', '3.00'), 2);
	assert.equal(midPrice('-1', '1'), 0);
});

/* The bars of a ring as plain objects. */
const bars = (b, iv = 1) => b.aggregate(iv).map((x) => [x.t, x.open, x.high, x.low, x.close, x.volume]);

test('SecondBars: trades of one second make one OHLCV bar', () => {
	const b = new SecondBars();
	b.add(100, 10, 1);
	b.add(100, 12, 2);
	b.add(100, 9, 3);
	b.add(100, 11, 4);
	b.add(101, 11.5, 5);
	assert.deepEqual(bars(b), [[100, 10, 12, 9, 11, 10], [101, 11.5, 11.5, 11.5, 11.5, 5]]);
});

test('SecondBars: a slightly late trade is ignored, time going back starts over', () => {
	const b = new SecondBars();
	b.add(1000, 10, 1);
	b.add(1001, 11, 1);
	b.add(990, 5, 1); // 11 s late: dropped
	assert.deepEqual(bars(b).map((x) => x[0]), [1000, 1001]);
	b.add(900, 7, 2); // a replay sought backwards
	assert.deepEqual(bars(b), [[900, 7, 7, 7, 7, 2]]);
});

test('SecondBars: the ring keeps the newest `cap` seconds', () => {
	const b = new SecondBars(3);
	for (let s = 1; s <= 7; s++) b.add(s, s * 10, s);
	assert.equal(b.n, 3);
	assert.deepEqual(bars(b).map((x) => x[0]), [5, 6, 7]);
	b.add(7, 100, 1);
	assert.deepEqual(bars(b).at(-1), [7, 70, 100, 70, 100, 8]);
});

test('SecondBars: aggregate builds bars of an interval from the seconds', () => {
	const b = new SecondBars();
	b.add(59, 1, 1); // minute 0
	b.add(60, 2, 1); // minute 60
	b.add(90, 5, 2);
	b.add(100, 0.5, 3);
	b.add(119, 3, 4);
	b.add(120, 4, 5); // minute 120
	assert.deepEqual(bars(b, 60), [
		[0, 1, 1, 1, 1, 1],
		[60, 2, 5, 0.5, 3, 10],
		[120, 4, 4, 4, 4, 5],
	]);
	assert.deepEqual(new SecondBars().aggregate(60), []);
});

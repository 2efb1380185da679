// web/js/view-model.js: what a view needs from the library's state events
// (dirty, flash, tick, scale), the trades fed to the bars, and the
// one-second bar ring. States come from the library's real Book.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ViewModel, SecondBars, midPrice } from '../../web/js/view-model.js';
import { Book, parseFrame } from '../../web/client/publisher.js';

/* A view model fed by a book holding `symbols`, counting its hooks' calls. */
function model(...symbols) {
	const book = new Book();
	const m = new ViewModel();
	const calls = { trades: [], dirty: 0 };
	m.onTrade = (q, sec, price, vol) => calls.trades.push({ symbol: q.symbol, sec, price, vol });
	m.onDirty = () => calls.dirty++;
	for (const s of symbols) {
		book.watch(s);
		m.watch(s);
	}
	const apply = (text) => {
		const r = book.apply(parseFrame(text), 0);
		if (r && !r.gap) m.update(r);
	};
	return { m, book, calls, apply };
}

test('a watched symbol has a view quote at once, with no values until its first state', () => {
	const { m, apply } = model('X');
	const q = m.quotes.get('X');
	assert.equal(q.seq, null);
	assert.equal(q.ts, null);
	assert.deepEqual({ ...q.f }, {});
	apply('{"type":"snapshot","symbol":"X","seq":10,"ts":1718000000123456,"bid":189.30,"ask":189.32,"volume":1200}');
	assert.equal(m.quotes.get('X'), q); // the same object: views hold on to it
	assert.equal(q.seq, '10');
	assert.equal(q.ts, '1718000000123456');
	assert.deepEqual({ ...q.f }, { bid: '189.30', ask: '189.32', volume: '1200' });
	assert.equal(q.scale, 2);
	assert.equal(m.updates, 1);
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

test('a snapshot that drops fields flashes them neutral', () => {
	const { m, apply } = model('X');
	apply('{"type":"snapshot","symbol":"X","seq":10,"bid":1.10,"ask":1.20,"last":1.15}');
	const q = m.quotes.get('X');
	q.flash = null;
	apply('{"type":"snapshot","symbol":"X","seq":30,"bid":2.00}');
	assert.deepEqual({ ...q.f }, { bid: '2.00' });
	assert.deepEqual({ ...q.flash }, { ask: 0, last: 0, bid: 1 });
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
	m.forget('Y');
	assert.equal(m.dirty.size, 0);
	assert.equal(m.quotes.has('Y'), false);
});

test('clear() after the book was emptied: no values, flashes, ticks or bars; all dirty', () => {
	const { m, book, calls, apply } = model('X', 'Y');
	apply('{"type":"snapshot","symbol":"X","seq":7,"ts":5,"last":1.00}');
	apply('{"type":"delta","symbol":"X","from":7,"seq":8,"ts":6,"last":1.01}');
	const q = m.quotes.get('X');
	q.bars = new SecondBars();
	m.dirty.clear();
	book.clear();
	m.clear();
	assert.equal(q.seq, null);
	assert.equal(q.ts, null);
	assert.deepEqual({ ...q.f }, {});
	assert.equal(q.tick, 0);
	assert.equal(q.flash, null);
	assert.equal(q.bars, null);
	assert.equal(m.dirty.size, 2);
	assert.equal(calls.dirty, 2);
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

test('trades: a trade at the same price still counts its volume', () => {
	const { calls, apply } = model('X');
	apply('{"type":"snapshot","symbol":"X","seq":1,"ts":1000000,"last":10.00,"volume":1000}');
	apply('{"type":"delta","symbol":"X","from":1,"seq":2,"ts":2000000,"volume":1200,"trades":2}');
	assert.deepEqual(calls.trades[1], { symbol: 'X', sec: 2, price: 10, vol: 200 });
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

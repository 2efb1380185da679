// web/client/publisher.js, the Book: the protocol's client rules (a snapshot
// replaces, a delta applies on its `from`, a gap resubscribes once per
// burst, old news is dropped), what a change reports (changed fields, their
// direction and former text), and the subscribe op's text with `resume`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Book, parseFrame, subscribeText } from '../../web/client/publisher.js';

/* A book holding `symbols`; apply(text, now) parses and applies a frame. */
function book(...symbols) {
	const b = new Book();
	for (const s of symbols) b.watch(s);
	const apply = (text, now = 0) => b.apply(parseFrame(text), now);
	return { b, apply };
}

test('a snapshot sets every field from its exact text', () => {
	const { b, apply } = book('X');
	const r = apply('{"type":"snapshot","symbol":"X","seq":10,"ts":1718000000123456,"bid":189.30,"ask":189.32,"volume":1200}');
	const q = b.get('X');
	assert.equal(q.seq, '10');
	assert.equal(q.ts, '1718000000123456');
	assert.deepEqual({ ...q.fields }, { bid: '189.30', ask: '189.32', volume: '1200' });
	assert.equal(b.updates, 1);
	assert.equal(r.symbol, 'X');
	assert.equal(r.state, q);
	assert.equal(r.snapshot, true);
	assert.deepEqual(r.changed, { bid: 0, ask: 0, volume: 0 }); // first values: no direction
});

test('a delta applies when its from is the held seq', () => {
	const { b, apply } = book('X');
	apply('{"type":"snapshot","symbol":"X","seq":10,"bid":1.10,"ask":1.20}');
	const r = apply('{"type":"delta","symbol":"X","from":10,"seq":11,"bid":1.11}');
	const q = b.get('X');
	assert.equal(q.seq, '11');
	assert.equal(q.fields.bid, '1.11');
	assert.equal(q.fields.ask, '1.20');
	assert.equal(r.snapshot, false);
	assert.deepEqual(r.changed, { bid: 1 });
	assert.deepEqual(r.previous, { bid: '1.10' });
	assert.equal(b.updates, 2);
	assert.equal(b.gaps, 0);
});

test('a delta with seq <= held is old news: ignored, no gap', () => {
	const { b, apply } = book('X');
	apply('{"type":"snapshot","symbol":"X","seq":10,"bid":1.10}');
	apply('{"type":"delta","symbol":"X","from":10,"seq":11,"bid":1.11}');
	assert.equal(apply('{"type":"delta","symbol":"X","from":9,"seq":11,"bid":1.05}'), null);
	assert.equal(apply('{"type":"delta","symbol":"X","from":8,"seq":9,"bid":1.00}'), null);
	const q = b.get('X');
	assert.equal(q.seq, '11');
	assert.equal(q.fields.bid, '1.11');
	assert.equal(b.gaps, 0);
	assert.equal(b.updates, 2);
});

test('a delta with from < held < seq covers what we miss: applied', () => {
	const { b, apply } = book('X');
	apply('{"type":"snapshot","symbol":"X","seq":10,"bid":1.10}');
	apply('{"type":"delta","symbol":"X","from":10,"seq":12,"bid":1.12}');
	const r = apply('{"type":"delta","symbol":"X","from":11,"seq":13,"ask":1.25}');
	assert.equal(b.get('X').seq, '13');
	assert.equal(b.get('X').fields.ask, '1.25');
	assert.ok(r && !r.gap);
	assert.equal(b.gaps, 0);
});

test('a delta with from > held is a gap: not applied, one resync per burst', () => {
	const { b, apply } = book('X');
	apply('{"type":"snapshot","symbol":"X","seq":10,"bid":1.10}', 1000);
	const r = apply('{"type":"delta","symbol":"X","from":20,"seq":21,"bid":9}', 1000);
	assert.deepEqual(r, { gap: true, symbol: 'X', held: '10', from: '20' });
	assert.equal(b.get('X').seq, '10');
	assert.equal(b.get('X').fields.bid, '1.10');
	assert.equal(b.gaps, 1);
	// Deltas already in flight behind the gap do not resync again...
	assert.equal(apply('{"type":"delta","symbol":"X","from":21,"seq":22,"bid":9}', 3999), null);
	assert.equal(b.gaps, 1);
	// ...but a gap still there three seconds on does.
	assert.equal(apply('{"type":"delta","symbol":"X","from":22,"seq":23,"bid":9}', 4000).gap, true);
	assert.equal(b.gaps, 2);
	// An update that applies ends the burst: the next gap resyncs at once.
	apply('{"type":"snapshot","symbol":"X","seq":30,"bid":2.00}', 4001);
	assert.equal(apply('{"type":"delta","symbol":"X","from":40,"seq":41,"bid":3}', 4002).gap, true);
	assert.equal(b.gaps, 3);
});

test('a delta before any snapshot is a gap', () => {
	const { b, apply } = book('X');
	assert.equal(apply('{"type":"delta","symbol":"X","from":5,"seq":6,"bid":1}').gap, true);
	assert.equal(b.get('X').seq, null);
});

test('seqs are compared exactly past 2^53', () => {
	const { b, apply } = book('X');
	apply('{"type":"snapshot","symbol":"X","seq":9007199254740993,"bid":1}');
	// As doubles 9007199254740993 and ...992 are equal; as seqs they are not.
	assert.equal(apply('{"type":"delta","symbol":"X","from":9007199254740992,"seq":9007199254740993,"bid":2}'), null);
	assert.equal(b.get('X').fields.bid, '1');
	assert.equal(apply('{"type":"delta","symbol":"X","from":9007199254740994,"seq":9007199254740995,"bid":3}').gap, true);
	apply('{"type":"delta","symbol":"X","from":9007199254740993,"seq":9007199254740995,"bid":4}');
	assert.equal(b.get('X').seq, '9007199254740995');
	assert.equal(b.get('X').fields.bid, '4');
});

test('a snapshot replaces everything: fields it lacks are dropped, and reported', () => {
	const { b, apply } = book('X');
	apply('{"type":"snapshot","symbol":"X","seq":10,"bid":1.10,"ask":1.20,"last":1.15}');
	const r = apply('{"type":"snapshot","symbol":"X","seq":30,"bid":2.00}');
	assert.deepEqual({ ...b.get('X').fields }, { bid: '2.00' });
	assert.deepEqual(r.changed, { ask: 0, last: 0, bid: 1 });
	assert.deepEqual(r.previous, { ask: '1.20', last: '1.15', bid: '1.10' });
});

test('a delta that sets a field to null takes it away (a new trading session)', () => {
	const { b, apply } = book('X');
	apply('{"type":"snapshot","symbol":"X","seq":1,"last":10.05,"open":10.00,"high":10.10,"low":9.90,"prev_close":9.80}');
	const r = apply('{"type":"delta","symbol":"X","from":1,"seq":2,"prev_close":10.05,"open":null,"high":null,"low":null,"volume":null}');
	assert.deepEqual({ ...b.get('X').fields }, { last: '10.05', prev_close: '10.05' });
	assert.deepEqual(r.changed, { prev_close: 1, open: 0, high: 0, low: 0 }); // volume was never there
	assert.deepEqual(r.previous, { prev_close: '9.80', open: '10.00', high: '10.10', low: '9.90' });
});

test('a value that did not change is not reported', () => {
	const { apply } = book('X');
	apply('{"type":"snapshot","symbol":"X","seq":1,"bid":10.00,"ask":10.10,"last":10.05}');
	const r = apply('{"type":"delta","symbol":"X","from":1,"seq":2,"bid":9.99,"ask":10.10,"last":10.07}');
	assert.deepEqual(r.changed, { bid: -1, last: 1 }); // ask did not change
});

test('updates for symbols not held are dropped; with "*" every symbol is taken in', () => {
	const { b, apply } = book('X');
	assert.equal(apply('{"type":"snapshot","symbol":"Y","seq":1,"bid":1}'), null);
	assert.equal(apply('{"type":"delta","symbol":"Y","from":1,"seq":2,"bid":1}'), null);
	assert.equal(b.has('Y'), false);
	assert.equal(b.updates, 0);
	assert.equal(b.gaps, 0);
	b.wildcard = true;
	apply('{"type":"snapshot","symbol":"Y","seq":1,"bid":1}');
	assert.equal(b.get('Y').fields.bid, '1');
	b.unwatch('Y');
	assert.equal(b.has('Y'), false);
});

test('watch keeps what is held; clear() forgets every value but keeps the symbols', () => {
	const { b, apply } = book('X', 'Y');
	apply('{"type":"snapshot","symbol":"X","seq":7,"ts":5,"last":1.00}');
	assert.equal(b.watch('X').seq, '7');
	const q = b.get('X');
	b.clear();
	assert.equal(b.get('X'), q); // the same Quote, emptied
	assert.equal(q.seq, null);
	assert.equal(q.ts, null);
	assert.deepEqual({ ...q.fields }, {});
	assert.equal(b.size, 2);
});

test('heldSeqs lists the symbols with a seq, as its exact text; toJSON the values', () => {
	const { b, apply } = book('X', 'Y', 'Z');
	apply('{"type":"snapshot","symbol":"X","seq":18446744073709551615,"bid":1}');
	apply('{"type":"snapshot","symbol":"Z","seq":3,"ts":9,"bid":1.50}');
	assert.deepEqual(b.heldSeqs(['X', 'Y', 'Z', 'W']), [['X', '18446744073709551615'], ['Z', '3']]);
	assert.deepEqual(b.heldSeqs([]), []);
	assert.deepEqual(b.toJSON(), {
		X: { seq: '18446744073709551615', ts: null, bid: '1' },
		Z: { seq: '3', ts: '9', bid: '1.50' },
	});
});

test('subscribeText without anything held is a plain subscribe', () => {
	const t = subscribeText(['AAPL', 'MSFT'], [], 'e1', 7);
	assert.equal(t, '{"op":"subscribe","symbols":["AAPL","MSFT"],"id":7}');
	assert.deepEqual(JSON.parse(t), { op: 'subscribe', symbols: ['AAPL', 'MSFT'], id: 7 });
});

test('subscribeText resumes the held seqs, written as exact text', () => {
	const t = subscribeText(['AAPL', 'MSFT', 'X'], [['AAPL', '18446744073709551615'], ['MSFT', '3']], 'ab12', 9);
	assert.equal(t, '{"op":"subscribe","symbols":["AAPL","MSFT","X"],' +
		'"resume":{"epoch":"ab12","seq":{"AAPL":18446744073709551615,"MSFT":3}},"id":9}');
	// JSON.stringify of the number would have sent ...551616.
	assert.ok(!t.includes('18446744073709552000'));
	const m = JSON.parse(t);
	assert.equal(m.resume.epoch, 'ab12');
	assert.deepEqual(Object.keys(m.resume.seq), ['AAPL', 'MSFT']);
});

test('subscribeText does not resume without an epoch; max_hz when asked', () => {
	assert.equal(subscribeText(['AAPL'], [['AAPL', '5']], null, 1), '{"op":"subscribe","symbols":["AAPL"],"id":1}');
	assert.equal(subscribeText(['AAPL'], [], 'e', 2, 4), '{"op":"subscribe","symbols":["AAPL"],"max_hz":4,"id":2}');
});

test('subscribeText escapes what JSON needs escaped', () => {
	const t = subscribeText(['A"B'], [['A"B', '1']], 'ep"och', 2);
	const m = JSON.parse(t);
	assert.deepEqual(m.symbols, ['A"B']);
	assert.equal(m.resume.epoch, 'ep"och');
	assert.equal(m.resume.seq['A"B'], 1);
});

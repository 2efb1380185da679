// web/client/publisher.js, parseFrame(): frames parsed with the protocol's
// numbers kept as their exact source text, and nothing else changed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFrame } from '../../web/client/publisher.js';

test('a price keeps its text, trailing zeros included', () => {
	const m = parseFrame('{"type":"delta","symbol":"X","bid":470.90,"ask":189.30,"last":100}');
	assert.equal(m.bid, '470.90');
	assert.equal(m.ask, '189.30');
	assert.equal(m.last, '100');
});

test('seqs past 2^53 stay exact', () => {
	const m = parseFrame('{"type":"delta","symbol":"X","from":9007199254740993,"seq":18446744073709551615}');
	assert.equal(m.from, '9007199254740993');
	assert.equal(m.seq, '18446744073709551615');
});

test('negative numbers and exponents keep their text', () => {
	const m = parseFrame('{"open":-0.05,"close":1.5e-7,"volume":1E+3}');
	assert.equal(m.open, '-0.05');
	assert.equal(m.close, '1.5e-7');
	assert.equal(m.volume, '1E+3');
});

test('whitespace around the colon is allowed', () => {
	const m = parseFrame('{ "bid" : 1.10 ,\n "ts":\t1718000000123456 }');
	assert.equal(m.bid, '1.10');
	assert.equal(m.ts, '1718000000123456');
});

test('every protocol member listed is kept as text', () => {
	const names = ['bid', 'ask', 'last', 'open', 'high', 'low', 'close', 'prev_close', 'bid_size', 'ask_size',
		'last_size', 'volume', 'trades', 'seq', 'from', 'ts', 't', 'id'];
	const m = parseFrame('{' + names.map((k) => '"' + k + '":1.0').join(',') + '}');
	for (const k of names) assert.equal(m[k], '1.0', k);
});

test('other numbers stay numbers, and names that only contain a listed one are not touched', () => {
	const m = parseFrame('{"heartbeat_ms":5000,"xbid":1.50,"bid_x":2.50,"count":3}');
	assert.equal(m.heartbeat_ms, 5000);
	assert.equal(m.xbid, 1.5);
	assert.equal(m.bid_x, 2.5);
	assert.equal(m.count, 3);
});

test('text inside a string is untouched, escaped quotes and backslashes included', () => {
	const m = parseFrame(String.raw`{"message":"said \"bid\":1.50","path":"a\\","bid":2.00,"note":"x\\\"seq\":7"}`);
	assert.equal(m.message, 'said "bid":1.50');
	assert.equal(m.path, 'a\\');
	assert.equal(m.bid, '2.00');
	assert.equal(m.note, 'x\\"seq":7');
});

test('values that are not numbers pass as they are', () => {
	const m = parseFrame('{"bid":"1.5","ask":null,"last":true,"seq":[1,2]}');
	assert.equal(m.bid, '1.5');
	assert.equal(m.ask, null);
	assert.equal(m.last, true);
	assert.deepEqual(m.seq, [1, 2]);
});

test('a batch is an array of messages, each rewritten', () => {
	const a = parseFrame('[{"type":"delta","seq":2,"bid":1.10},{"type":"heartbeat"},{"type":"delta","seq":3,"ask":1.20}]');
	assert.equal(a.length, 3);
	assert.equal(a[0].bid, '1.10');
	assert.equal(a[0].seq, '2');
	assert.deepEqual(a[1], { type: 'heartbeat' });
	assert.equal(a[2].ask, '1.20');
});

test('a poll answer: the cursor stays a string, the frames inside are rewritten', () => {
	const a = parseFrame('{"cursor":"0123456789abcdef0123456789abcdef:7","frames":[{"type":"stream","linger_ms":30000},' +
		'[{"type":"delta","symbol":"X","from":1,"seq":2,"bid":1.10}]]}');
	assert.equal(a.cursor, '0123456789abcdef0123456789abcdef:7');
	assert.equal(a.frames[0].linger_ms, 30000);
	assert.equal(a.frames[1][0].bid, '1.10');
	assert.equal(a.frames[1][0].seq, '2');
});

test('nested objects are rewritten too', () => {
	const m = parseFrame('{"type":"history","bars":[{"t":1718000000,"open":1.10,"close":1.20}]}');
	assert.deepEqual(m.bars[0], { t: '1718000000', open: '1.10', close: '1.20' });
});

test('malformed frames throw a SyntaxError', () => {
	for (const bad of ['', '{', '{"bid":1.10', 'not json', '{"bid":}', '{"bid":1.1.1}', '{"seq":12-3}'])
		assert.throws(() => parseFrame(bad), SyntaxError, JSON.stringify(bad));
});

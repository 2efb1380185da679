// web/js/symbols.js, the parts without DOM: which stored lists and typed
// symbols are accepted, and what a first visit watches. (The subscribe op's
// text with `resume` is the library's: client-book.test.mjs.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SYMBOL_RE, validList, typedSymbol, firstVisitList } from '../../web/js/symbols.js';

test('SYMBOL_RE: 1 to 32 of A-Z a-z 0-9 . _ : / -', () => {
	for (const s of ['AAPL', 'BRK.B', 'BTC/USD', 'ES:H26', 'a_b-c', 'X', 'A'.repeat(32)])
		assert.ok(SYMBOL_RE.test(s), s);
	for (const s of ['', 'A'.repeat(33), 'AA PL', 'A"B', 'ÄPFEL', 'A\nB', '*'])
		assert.ok(!SYMBOL_RE.test(s), JSON.stringify(s));
});

test('validList keeps valid symbols once each, in order', () => {
	assert.deepEqual(validList(['AAPL', 'MSFT', 'AAPL', 'bad symbol', 7, null, 'BRK.B', 'MSFT']), ['AAPL', 'MSFT', 'BRK.B']);
	assert.deepEqual(validList([]), []);
});

test('validList: anything but a list means nothing was stored (a first visit)', () => {
	for (const v of [null, undefined, 'AAPL', { 0: 'AAPL' }, 3])
		assert.equal(validList(v), null, JSON.stringify(v));
});

test('typedSymbol trims, and takes the upper case only when the server knows just that', () => {
	const known = new Set(['AMD', 'BRK.B', 'btc']);
	assert.equal(typedSymbol('  amd ', known), 'AMD');
	assert.equal(typedSymbol('brk.b', known), 'BRK.B');
	assert.equal(typedSymbol('btc', known), 'btc'); // known as typed
	assert.equal(typedSymbol('xyz', known), 'xyz'); // unknown: as typed
	assert.equal(typedSymbol('   ', known), '');
	assert.equal(typedSymbol('a b', known), 'a b'); // not checked here
	assert.equal(typedSymbol('amd', new Set()), 'amd');
});

test('firstVisitList: the first 50 valid symbols of a symbols reply', () => {
	const symbols = Array.from({ length: 80 }, (_, i) => ({ symbol: 'S' + i, seq: i }));
	const list = firstVisitList({ type: 'symbols', symbols });
	assert.equal(list.length, 50);
	assert.equal(list[0], 'S0');
	assert.equal(list[49], 'S49');
	assert.deepEqual(firstVisitList({ symbols: [] }), []);
	assert.deepEqual(firstVisitList({}), []);
});

test('firstVisitList skips entries that are not a valid symbol', () => {
	const reply = { symbols: [{ symbol: 'has space' }, null, {}, { symbol: 123 }, 'AAPL', { symbol: 'MSFT' }] };
	assert.deepEqual(firstVisitList(reply), ['MSFT']);
});

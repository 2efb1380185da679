// web/js/symbols.js, the parts without DOM: which stored lists and typed
// symbols are accepted, and what a first visit watches. (The subscribe op's
// text with `resume` is the library's: client-book.test.mjs.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SYMBOL_RE, validList, typedSymbol, firstVisitList, spellingIndex, serverSpelling } from '../../web/js/symbols.js';

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

test('serverSpelling: the server\'s own spelling of a symbol in any case', () => {
	const index = spellingIndex(['AMD', 'BRK.B', 'btc', 'Abc', 'ABC', 'xYz', 'XyZ', 'EUR/USD']);
	assert.equal(serverSpelling('AMD', index), 'AMD');
	assert.equal(serverSpelling('amd', index), 'AMD');
	assert.equal(serverSpelling('brk.b', index), 'BRK.B');
	assert.equal(serverSpelling('BTC', index), 'btc'); // case counts on the wire: the server's
	assert.equal(serverSpelling('abc', index), 'ABC'); // of several, the upper-case one
	assert.equal(serverSpelling('Abc', index), 'Abc'); // as typed, when it is one of them
	assert.equal(serverSpelling('xyz', index), 'XyZ'); // else the first in order
	assert.equal(serverSpelling('eur/usd', index), 'EUR/USD');
	assert.equal(serverSpelling('zzz', index), undefined);
	assert.equal(serverSpelling('amd', spellingIndex([])), undefined);
});

test('typedSymbol trims, takes the server\'s spelling, and upper-cases what it does not know', () => {
	const index = spellingIndex(new Set(['AMD', 'BRK.B', 'btc']).keys());
	assert.equal(typedSymbol('  amd ', index), 'AMD');
	assert.equal(typedSymbol('brk.b', index), 'BRK.B');
	assert.equal(typedSymbol('btc', index), 'btc'); // known as typed
	assert.equal(typedSymbol('Btc', index), 'btc');
	assert.equal(typedSymbol('zzz', index), 'ZZZ'); // unknown: never kept in lower case
	assert.equal(typedSymbol('ZZZ', index), 'ZZZ');
	assert.equal(typedSymbol('   ', index), '');
	assert.equal(typedSymbol(' a b ', index), 'a b'); // not a symbol: as typed, for the server to refuse
	assert.equal(typedSymbol('amd', spellingIndex([])), 'AMD');
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

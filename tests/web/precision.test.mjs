// web/js/precision.js: every price of a symbol with the most decimals it
// has shown, as exact text.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decimalsOf, padDecimals, midDecimals } from '../../web/js/precision.js';
import { ViewModel } from '../../web/js/view-model.js';
import { Quote } from '../../web/client/publisher.js';

test('decimalsOf counts the digits after the point', () => {
	assert.equal(decimalsOf('25'), 0);
	assert.equal(decimalsOf('25.2'), 1);
	assert.equal(decimalsOf('24.050'), 3);
	assert.equal(decimalsOf('-0.00001'), 5);
});

test('padDecimals pads with zeros, never cuts, never rounds', () => {
	assert.equal(padDecimals('25', 3), '25.000');
	assert.equal(padDecimals('25.2', 3), '25.200');
	assert.equal(padDecimals('24.050', 3), '24.050');
	assert.equal(padDecimals('24.0501', 3), '24.0501');
	assert.equal(padDecimals('+0.1', 3), '+0.100');
	assert.equal(padDecimals('\u22120.5', 2), '\u22120.50');
	assert.equal(padDecimals('0.1', 0), '0.1');
	// digits a float would lose are kept as they came
	assert.equal(padDecimals('123456789012345678.9', 2), '123456789012345678.90');
});

test('padDecimals leaves alone what is not a decimal', () => {
	assert.equal(padDecimals(undefined, 2), undefined);
	assert.equal(padDecimals(null, 2), null);
	assert.equal(padDecimals('\u2014', 2), '\u2014');
	assert.equal(padDecimals('1e5', 2), '1e5');
	assert.equal(padDecimals('12%', 2), '12%');
});

test('the view model keeps the most decimals a symbol has shown in any price', () => {
	const m = new ViewModel();
	const st = new Quote('USDTHB');
	const send = (fields, snapshot = false) => {
		const changed = {};
		for (const k in fields) changed[k] = 0;
		Object.assign(st.fields, fields);
		m.update({ symbol: 'USDTHB', state: st, changed, previous: {}, snapshot });
	};
	send({ bid: '25', ask: '25.2' }, true);
	const q = m.quotes.get('USDTHB');
	assert.equal(q.scale, 1);
	send({ bid: '24.050' });
	assert.equal(q.scale, 3);
	send({ bid: '24.1', ask: '25' });
	assert.equal(q.scale, 3, 'it never shrinks');
	send({ volume: '1000.12345' });
	assert.equal(q.scale, 3, 'a volume is not a price');
	assert.deepEqual([q.f.bid, q.f.ask].map((p) => padDecimals(p, q.scale)), ['24.100', '25.000']);
});

test('midDecimals: the decimals of the exact mid of two prices', () => {
	assert.equal(midDecimals('24.82', '25.02'), 2); // 24.92
	assert.equal(midDecimals('24.82', '25.03'), 3); // 24.925
	assert.equal(midDecimals('24.8', '24.85'), 3); // 24.825
	assert.equal(midDecimals('1.0850', '1.0853'), 5); // 1.08515
	assert.equal(midDecimals('24', '25'), 1); // 24.5
	assert.equal(midDecimals('24', '26'), 0); // 25
	assert.equal(midDecimals('-0.5', '0.5'), 1);
});

test('the view model keeps the most decimals of a quote-only symbol\'s mid, apart from its prices', () => {
	const m = new ViewModel();
	const st = new Quote('FX');
	const send = (fields) => {
		const changed = {};
		for (const k in fields) changed[k] = 0;
		Object.assign(st.fields, fields);
		m.update({ symbol: 'FX', state: st, changed, previous: {}, snapshot: false });
	};
	send({ bid: '24.82', ask: '25.02' });
	const q = m.quotes.get('FX');
	assert.deepEqual([q.scale, q.midScale], [2, 2]);
	send({ ask: '25.03' });
	assert.deepEqual([q.scale, q.midScale], [2, 3]);
	send({ ask: '25.04' });
	assert.deepEqual([q.scale, q.midScale], [2, 3], 'it never shrinks');
});

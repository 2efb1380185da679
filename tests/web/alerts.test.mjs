// web/js/alerts.js: the price an alert watches, what the user may type, when
// each kind fires (a crossing, not a level already passed; a move either way
// from the price when set; once), and the list kept in localStorage across
// a reload.

import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { alertPrice, parseAlertValue, crosses, ruleText, AlertBook } from '../../web/js/alerts.js';

/* A Map-backed localStorage for the book to keep its list in. */
beforeEach(() => {
	const items = new Map();
	globalThis.localStorage = {
		getItem: (k) => (items.has(k) ? items.get(k) : null),
		setItem: (k, v) => items.set(k, String(v)),
		removeItem: (k) => items.delete(k),
	};
});

test('the price watched: the last trade, else the mid of bid and ask, as text', () => {
	assert.equal(alertPrice({ last: '189.50', bid: '189.4', ask: '189.6' }), '189.50');
	assert.equal(alertPrice({ bid: '1.0852', ask: '1.0853' }), '1.08525');
	assert.equal(alertPrice({ bid: '24.5', ask: '24.6' }), '24.55');
	assert.equal(alertPrice({ bid: '24.5' }), undefined);
	assert.equal(alertPrice({}), undefined);
});

test('what may be typed: a positive number; a move may end with %', () => {
	assert.deepEqual(parseAlertValue('above', ' 190.25 '), { value: '190.25' });
	assert.deepEqual(parseAlertValue('move', '1.5%'), { value: '1.5' });
	assert.deepEqual(parseAlertValue('below', '.5'), { value: '.5' });
	for (const [kind, text] of [['above', ''], ['above', 'abc'], ['below', '-1'], ['above', '0'], ['move', '0%'], ['above', '1e3'], ['sideways', '1']])
		assert.ok(parseAlertValue(kind, text).error, kind + ' ' + JSON.stringify(text) + ' should be refused');
});

test('above and below fire on a crossing only', () => {
	const above = { kind: 'above', value: '190', fired: null };
	assert.equal(crosses(above, 189.9, 190), true); // reaching the level counts
	assert.equal(crosses(above, 189.9, 190.5), true);
	assert.equal(crosses(above, 190.1, 190.5), false); // already above: no crossing
	assert.equal(crosses(above, undefined, 191), false); // first price seen
	assert.equal(crosses(above, 189, 189.99), false);
	assert.equal(crosses({ ...above, fired: 1 }, 189, 191), false); // fires once
	const below = { kind: 'below', value: '1.0850', fired: null };
	assert.equal(crosses(below, 1.0851, 1.085), true);
	assert.equal(crosses(below, 1.0849, 1.0840), false);
	assert.equal(crosses(below, 1.0851, 1.0852), false);
});

test('a move fires at the percent from the price when set, up or down', () => {
	const m = { kind: 'move', value: '1', ref: '200.00', fired: null };
	assert.equal(crosses(m, undefined, 201.99), false);
	assert.equal(crosses(m, undefined, 202), true);
	assert.equal(crosses(m, undefined, 198), true);
	assert.equal(crosses(m, undefined, 198.01), false);
	assert.equal(crosses({ ...m, ref: null }, undefined, 500), false);
});

test('the rule in words', () => {
	assert.equal(ruleText({ kind: 'above', value: '190' }), 'above 190');
	assert.equal(ruleText({ kind: 'move', value: '1.5', ref: '24.55' }), 'moves 1.5 % from 24.55');
});

test('a book fires each alert once, on the symbol it is set on', () => {
	const book = new AlertBook();
	assert.ok(book.add('AAPL', 'above', '190', '189.50', 1000).alert);
	assert.ok(book.add('AAPL', 'move', '1', '189.50', 1000).alert);
	assert.ok(book.add('MSFT', 'below', '400', undefined, 1000).alert);
	assert.ok(book.add('AAPL', 'move', '1', undefined).error, 'a move needs a price to start from');
	assert.ok(book.add('AAPL', 'above', 'x', '1').error);
	assert.deepEqual([...book.armedSymbols].sort(), ['AAPL', 'MSFT']);

	assert.deepEqual(book.price('MSFT', '390', 2000), []); // MSFT's first price: nothing crossed
	assert.deepEqual(book.price('AAPL', '189.90', 2000), []);
	const fired = book.price('AAPL', '190.00', 3000);
	assert.deepEqual(fired.map((a) => [a.kind, a.fired, a.firedPrice]), [['above', 3000, '190.00']]);
	assert.deepEqual(book.price('AAPL', '189.00', 3100), []); // under 190 again: fired already
	assert.deepEqual(book.price('AAPL', '191.00', 3200), []); // 0.79 % from 189.50
	assert.deepEqual(book.price('AAPL', '191.40', 3300).map((a) => a.kind), ['move']); // 1.003 %
	assert.deepEqual([...book.armedSymbols], ['MSFT']);
	assert.deepEqual(book.price('MSFT', '401', 3400), []);
	assert.deepEqual(book.price('MSFT', '399.99', 3500).map((a) => a.symbol), ['MSFT']);
});

test('the list is kept across a reload; a crossing while the page was closed fires at the first price', () => {
	const book = new AlertBook();
	book.add('AAPL', 'above', '190', '189.50', 1000);
	book.add('EUR/USD', 'below', '1.08', '1.0853', 1000);
	const gone = book.add('X', 'above', '5', '4').alert;
	book.remove(gone.id);
	book.price('EUR/USD', '1.0799', 2000);

	const again = new AlertBook();
	assert.deepEqual(again.list.map((a) => [a.symbol, a.kind, a.value, a.fired]),
		[['AAPL', 'above', '190', null], ['EUR/USD', 'below', '1.08', 2000]]);
	assert.deepEqual(again.price('AAPL', '190.50', 5000).map((a) => a.symbol), ['AAPL']);
	// New alerts take ids no earlier one had.
	const next = again.add('AAPL', 'below', '180', '190.50').alert;
	assert.ok(!again.list.slice(0, -1).some((a) => a.id === next.id));
});

test('a list stored by hand or by an older page is read with care', () => {
	localStorage.setItem('publisher.alerts', '{"not":"a list"}');
	assert.deepEqual(new AlertBook().list, []);
	localStorage.setItem('publisher.alerts', JSON.stringify([null, { kind: 'sideways', symbol: 'A' }, { id: 4, kind: 'above', symbol: 'B', value: '2', ref: '1', fired: null }]));
	assert.deepEqual(new AlertBook().list.map((a) => a.symbol), ['B']);
	localStorage.setItem('publisher.alerts', 'not json');
	assert.deepEqual(new AlertBook().list, []);
});

// web/js/quote.js, the part without DOM: what the quote panel says for a
// selected symbol and its ViewQuote.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { quoteView } from '../../web/js/quote.js';
import { ViewQuote } from '../../web/js/view-model.js';
import { Quote } from '../../web/client/publisher.js';
import { ZonedTime } from '../../web/js/timetext.js';

const DASH = '\u2014';
const MINUS = '\u2212';

/* A view quote of X holding `fields`; `more` sets seq and ts (the state's)
 * or tick (the view's). */
function quote(fields, more = {}) {
	const q = new ViewQuote('X');
	q.state = new Quote('X');
	Object.assign(q.state.fields, fields);
	const { seq, ts, ...view } = more;
	if (seq !== undefined) q.state.seq = seq;
	if (ts !== undefined) q.state.ts = ts;
	return Object.assign(q, view);
}

test('nothing selected: dashes everywhere, no change', () => {
	for (const [symbol, q] of [[null, null], ['AAPL', undefined], ['AAPL', new ViewQuote('AAPL')]]) {
		const v = quoteView(symbol, q);
		assert.equal(v.symbol, symbol ?? DASH);
		assert.equal(v.last, DASH);
		assert.equal(v.lastClass, 'q-last');
		assert.equal(v.chg, '');
		assert.equal(v.chgClass, 'q-chg');
		assert.ok(Object.values(v.details).every((t) => t === DASH), JSON.stringify(v.details));
	}
});

test('prices are the exact text; the change and the spread exact decimals', () => {
	const q = quote({ bid: '189.30', ask: '189.33', last: '189.30', open: '188.10', high: '190.00', low: '187.95' }, { seq: '42', tick: 1 });
	const v = quoteView('AAPL', q);
	assert.equal(v.last, '189.30');
	assert.equal(v.lastClass, 'q-last up');
	assert.equal(v.chg, '+1.20  +0.64%');
	assert.equal(v.chgClass, 'q-chg pos');
	assert.equal(v.details.spread, '0.03');
	assert.equal(v.details.open, '188.10');
	assert.equal(v.details.high, '190.00');
	assert.equal(v.details.low, '187.95');
	assert.equal(v.details.seq, '42');
});

test('a fall: typographic minus, down and neg classes', () => {
	const v = quoteView('X', quote({ last: '99.5', open: '100.00' }, { tick: -1 }));
	assert.equal(v.chg, MINUS + '0.50  ' + MINUS + '0.50%');
	assert.equal(v.lastClass, 'q-last down');
	assert.equal(v.chgClass, 'q-chg neg');
});

test('the change is against the previous session\'s close; the open while there is none', () => {
	const v = quoteView('X', quote({ last: '101.25', open: '100.50', prev_close: '100.00' }));
	assert.equal(v.chg, '+1.25  +1.25%');
	assert.equal(v.details.open, '100.50');
	// A new session: open, high and low are gone until its first trade.
	const w = quoteView('X', quote({ last: '101.25', prev_close: '101.25' }));
	assert.equal(w.chg, '0.00  0.00%');
	assert.equal(w.details.open, DASH);
});

test('no change: no sign, no colour', () => {
	const v = quoteView('X', quote({ last: '100.00', open: '100.00' }));
	assert.equal(v.chg, '0.00  0.00%');
	assert.equal(v.chgClass, 'q-chg');
});

test('an open of zero: the change without a percent', () => {
	const v = quoteView('SPREAD', quote({ last: '0.25', open: '0' }));
	assert.equal(v.chg, '+0.25');
	assert.equal(v.chgClass, 'q-chg pos');
});

test('quotes and no trades: bid / ask in place of the last price', () => {
	const v = quoteView('EURUSD', quote({ bid: '1.08500', ask: '1.08520' }));
	assert.equal(v.last, '1.08500 / 1.08520');
	assert.equal(v.chg, '');
	assert.equal(v.details.spread, '0.00020');
	assert.equal(quoteView('X', quote({ bid: '1.1' })).last, '1.1 / ' + DASH);
});

test('sizes and counts are grouped; missing ones are dashes', () => {
	const v = quoteView('X', quote({ bid_size: '1500', ask_size: '2400000', last_size: '100', trades: '1234567' }));
	assert.equal(v.details.bid_size, '1,500');
	assert.equal(v.details.ask_size, '2,400,000');
	assert.equal(v.details.last_size, '100');
	assert.equal(v.details.trades, '1,234,567');
	assert.equal(v.details.spread, DASH);
	assert.equal(v.details.open, DASH);
});

test('the update time, on the clock given: a time of day today, a date before', () => {
	const utc = new ZonedTime('UTC');
	const ny = new ZonedTime('America/New_York');
	const now = Date.parse('2026-12-07T12:00:00Z');
	const us = (iso) => String(Date.parse(iso) * 1000);
	const today = quote({}, { ts: us('2026-12-07T09:05:03.042Z') });
	assert.equal(quoteView('X', today, utc, now).details.ts, '09:05:03.042');
	assert.equal(quoteView('X', today, ny, now).details.ts, '04:05:03.042');
	const before = quote({}, { ts: us('1997-06-02T00:27:00Z') });
	assert.equal(quoteView('X', before, utc, now).details.ts, '1997-06-02 00:27:00');
	assert.equal(quoteView('X', before, ny, now).details.ts, '1997-06-01 20:27:00');
});

test('every price with the most decimals the symbol has shown, padded, never rounded', () => {
	const q = quote({ bid: '25', ask: '25.2', last: '24.050', open: '24', high: '25.5', low: '23.95', prev_close: '24' }, { scale: 3 });
	const v = quoteView('USDTHB', q);
	assert.equal(v.last, '24.050');
	assert.equal(v.details.open, '24.000');
	assert.equal(v.details.high, '25.500');
	assert.equal(v.details.low, '23.950');
	assert.equal(v.details.spread, '0.200');
	assert.equal(v.chg, '+0.050  +0.21%');
	const fx = quote({ bid: '25', ask: '25.2' }, { scale: 3 });
	assert.equal(quoteView('USDTHB', fx).last, '25.000 / 25.200');
});

test('a seq past 2^53 is shown as sent', () => {
	assert.equal(quoteView('X', quote({}, { seq: '18446744073709551615' })).details.seq, '18446744073709551615');
});

test('a symbol with quotes and no trades (FX): the change is its exact mid against the previous close', () => {
	// The server's previous close of such a symbol is its mid at the
	// session's end; the change now is today's mid against it.
	const v = quoteView('EUR/USD', quote({ bid: '1.0850', ask: '1.0853', prev_close: '1.08415' }));
	assert.equal(v.last, '1.0850 / 1.0853');
	assert.equal(v.chg, '+0.00100  +0.09%');
	assert.equal(v.chgClass, 'q-chg pos');
	// Without a previous close (nor an open) there is no change to show.
	assert.equal(quoteView('EUR/USD', quote({ bid: '1.0850', ask: '1.0853' })).chg, '');
});

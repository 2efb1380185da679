// web/client/publisher.js, the decimal helpers: exact arithmetic and display
// of the server's decimal text. Prices must reach the screen as sent
// ("189.30", never 189.3), and a change or a spread must be exact (0.3 - 0.1
// is 0.2, not 0.19999999999999998).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scaleOf, sub, mid, sign, signed, percent, group, compact } from '../../web/client/publisher.js';

const MINUS = '\u2212';

test('scaleOf counts the digits after the point, trailing zeros included', () => {
	assert.equal(scaleOf('189.30'), 2);
	assert.equal(scaleOf('189'), 0);
	assert.equal(scaleOf('0.0001'), 4);
	assert.equal(scaleOf('-1.500'), 3);
});

test('sub is exact where doubles are not', () => {
	assert.equal(0.3 - 0.1 === 0.2, false); // what it protects against
	assert.equal(sub('0.3', '0.1'), '0.2');
	assert.equal(sub('1.10', '1.00'), '0.10');
	assert.equal(sub('0.4132', '0.4131'), '0.0001');
});

test('sub keeps the larger scale, so trailing zeros survive', () => {
	assert.equal(sub('189.30', '0'), '189.30');
	assert.equal(sub('189.30', '189.30'), '0.00');
	assert.equal(sub('189.35', '189.4'), '-0.05');
	assert.equal(sub('100', '0.001'), '99.999');
});

test('sub with negative operands and results', () => {
	assert.equal(sub('-1.5', '2.25'), '-3.75');
	assert.equal(sub('-1.5', '-2.25'), '0.75');
	assert.equal(sub('0.01', '0.02'), '-0.01');
	assert.equal(sub('-0.001', '0'), '-0.001');
});

test('sub is exact on mantissas far past 2^53', () => {
	assert.equal(sub('12345678901234567890.123456789', '0.000000001'), '12345678901234567890.123456788');
	assert.equal(sub('9007199254740993', '1'), '9007199254740992');
	assert.equal(sub('0', '99999999999999999999.99'), '-99999999999999999999.99');
});

test('sub of a missing value is null', () => {
	assert.equal(sub(undefined, '1.00'), null);
	assert.equal(sub('1.00', undefined), null);
});

// The server writes plain decimals only; an exponent form still gives a
// number rather than a wrong exact one.
test('sub falls back to doubles for text that is not a plain decimal', () => {
	assert.equal(sub('1e2', '1'), '99');
	assert.equal(sub('1e2', '0.5'), '99.5');
});

test('sign reads the text, and a negative zero is zero', () => {
	assert.equal(sign('0.01'), 1);
	assert.equal(sign('-0.01'), -1);
	assert.equal(sign('0.00'), 0);
	assert.equal(sign('-0.00'), 0);
	assert.equal(sign(null), 0);
	assert.equal(sign(undefined), 0);
});

test('signed puts a plus or a typographic minus, and none on zero', () => {
	assert.equal(signed('1.25'), '+1.25');
	assert.equal(signed('-1.25'), MINUS + '1.25');
	assert.equal(signed('0.00'), '0.00');
	assert.equal(signed('-0.00'), '0.00');
});

test('percent is signed, two decimals, and null without a base', () => {
	assert.equal(percent('1.00', '200.00'), '+0.50%');
	assert.equal(percent('-1.00', '200.00'), MINUS + '0.50%');
	assert.equal(percent('0.0001', '200'), '0.00%'); // rounds to zero: no sign
	assert.equal(percent('-0.0001', '200'), '0.00%');
	assert.equal(percent('1', '0'), null);
	assert.equal(percent(null, '200'), null);
	assert.equal(percent('1', undefined), null);
});

test('group separates thousands of the integer part only', () => {
	assert.equal(group('1234567.5'), '1,234,567.5');
	assert.equal(group('1234.56789'), '1,234.56789');
	assert.equal(group('1000'), '1,000');
	assert.equal(group('999'), '999');
	assert.equal(group('0'), '0');
	assert.equal(group('-1234567'), '-1,234,567');
	assert.equal(group('123456789012345678901'), '123,456,789,012,345,678,901');
	assert.equal(group(undefined), '');
	assert.equal(group(null), '');
});

test('compact shortens large volumes and groups small ones', () => {
	assert.equal(compact('12345678'), '12.35M');
	assert.equal(compact('2500000000'), '2.50B');
	assert.equal(compact('-2500000000'), '-2.50B');
	assert.equal(compact('12345'), '12.3K');
	assert.equal(compact('9999'), '9,999');
	assert.equal(compact('not a number'), '');
});

test('mid is the exact (a + b) / 2, one more decimal when the sum is odd', () => {
	assert.equal(mid('1.0850', '1.0853'), '1.08515');
	assert.equal(mid('24.82', '25.02'), '24.92');
	assert.equal(mid('24.8', '24.85'), '24.825');
	assert.equal(mid('24', '25'), '24.5');
	assert.equal(mid('-0.5', '0.5'), '0.0');
	assert.equal(mid('189.30', undefined), null);
});

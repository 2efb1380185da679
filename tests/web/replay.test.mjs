// web/js/replay.js, the parts without DOM: where the position slider stands
// for a replay state, the time it points at while dragged, and what a typed
// seek sends.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sliderValue, sliderTime, seekArgument } from '../../web/js/replay.js';

// June 1997 in protocol microseconds, as the server sends them (text).
const START = '865123200000000'; // 1997-06-01 00:00:00 UTC
const END = '867715200000000'; // 1997-07-01 00:00:00 UTC

test('sliderValue places the position on 0..1000', () => {
	assert.equal(sliderValue({ start: START, end: END, position: START }), '0');
	assert.equal(sliderValue({ start: START, end: END, position: '866419200000000' }), '500');
	assert.equal(sliderValue({ start: START, end: END, position: END }), '1000');
	assert.equal(sliderValue({ start: 1000, end: 2000, position: 1001 }), '1');
	assert.equal(sliderValue({ start: 1000, end: 4000, position: 2000 }), '333');
});

test('sliderValue: null when the state does not place the slider', () => {
	assert.equal(sliderValue({ start: START, end: START, position: START }), null); // an empty range
	assert.equal(sliderValue({ start: END, end: START, position: START }), null);
	assert.equal(sliderValue({ start: START, end: END, position: 0 }), null);
	assert.equal(sliderValue({ start: START, end: END }), null);
	assert.equal(sliderValue({ state: 'playing' }), null);
});

test('sliderTime is the time at a slider value (its text, as the input gives it)', () => {
	const m = { start: START, end: END };
	assert.equal(sliderTime(m, '0'), Number(START));
	assert.equal(sliderTime(m, '1000'), Number(END));
	assert.equal(sliderTime(m, '500'), 866419200000000);
	assert.equal(Math.round(sliderTime({ start: 0, end: 3 }, '1')), 0);
});

test('seekArgument: digits are microseconds, anything else goes as text', () => {
	assert.equal(seekArgument('866419200000000'), 866419200000000);
	assert.equal(seekArgument('0'), 0);
	assert.equal(seekArgument('1997-06-20T00:00:00Z'), '1997-06-20T00:00:00Z');
	assert.equal(seekArgument('-5'), '-5');
	assert.equal(seekArgument('1.5'), '1.5');
});

// web/js/replay.js, the parts without DOM: where the position slider stands
// for a replay state, the time it points at while dragged, what a typed
// seek sends, how a speed is named, and the replay's clock between the
// server's reports.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sliderValue, sliderTime, seekArgument, speedText, ReplayClock } from '../../web/js/replay.js';
import { ZonedTime } from '../../web/js/timetext.js';

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

test('seekArgument: digits are microseconds, a zone-less time is read on the clock given, anything else goes as text', () => {
	const ny = new ZonedTime('America/New_York');
	assert.equal(seekArgument('1997-06-20 09:30', ny), Date.parse('1997-06-20T13:30:00Z') * 1000);
	assert.equal(seekArgument('1997-06-20', new ZonedTime('UTC')), 866764800000000);
	assert.equal(seekArgument('1997-06-20T00:00:00Z', ny), '1997-06-20T00:00:00Z');
	assert.equal(seekArgument('1997-06-20T00:00:00-04:00', ny), '1997-06-20T00:00:00-04:00');

	assert.equal(seekArgument('866419200000000'), 866419200000000);
	assert.equal(seekArgument('0'), 0);
	assert.equal(seekArgument('1997-06-20T00:00:00Z'), '1997-06-20T00:00:00Z');
	assert.equal(seekArgument('-5'), '-5');
	assert.equal(seekArgument('1.5'), '1.5');
});

test('speedText names any speed as it is', () => {
	assert.equal(speedText('max'), 'max');
	assert.equal(speedText(1), '1\u00d7');
	assert.equal(speedText(0.25), '0.25\u00d7');
	assert.equal(speedText(3000), '3,000\u00d7');
	assert.equal(speedText(100000), '100,000\u00d7');
});

/* A replay state as the server sends it. */
const state = (st, position, more = {}) => ({ type: 'replay', state: st, speed: 600, position: String(position),
	start: '865193280000000', end: '867714240000000', passes: 0, ...more });
const T0 = 865200000000000; // µs

test('the clock runs on between reports at the replay speed', () => {
	const c = new ReplayClock();
	assert.equal(c.read(0), null);
	c.update(state('playing', T0), 1000);
	assert.equal(c.read(1000), T0);
	assert.equal(c.read(1500), T0 + 500 * 600 * 1000); // half a second at 600x: 5 minutes
	assert.equal(c.read(3500), T0 + 2500 * 600 * 1000);
	assert.ok(c.running);
});

test('through a gap the server still reports its last tick: the clock does not go back', () => {
	const c = new ReplayClock();
	c.update(state('playing', T0), 0);
	c.update(state('playing', T0), 1000); // the same tick a second later: a gap in the file
	assert.equal(c.read(1000), T0 + 600e6);
	assert.equal(c.read(2000), T0 + 1200e6);
	// the next tick came a little before where the clock stands: it goes on
	c.update(state('playing', T0 + 1100e6), 2000);
	assert.equal(c.read(2000), T0 + 1200e6);
	// a report ahead of the clock moves it on
	c.update(state('playing', T0 + 1500e6), 2100);
	assert.equal(c.read(2100), T0 + 1500e6);
});

test('a pause stops the clock where it stands; a resume runs it on from there', () => {
	const c = new ReplayClock();
	c.update(state('playing', T0), 0);
	c.update(state('paused', T0), 500);
	const held = T0 + 500 * 600e3;
	assert.equal(c.read(500), held);
	assert.equal(c.read(60000), held);
	assert.ok(!c.running);
	c.update(state('paused', T0), 1500); // polled while paused
	assert.equal(c.read(1500), held);
	c.update(state('playing', T0), 2000);
	assert.equal(c.read(3000), held + 1000 * 600e3);
});

test('never past the end; at max speed only what the server says', () => {
	const c = new ReplayClock();
	const end = 867714240000000;
	c.update(state('playing', end - 1e6), 0);
	assert.equal(c.read(100000), end);
	c.reset();
	c.update(state('playing', T0, { speed: 'max' }), 0);
	assert.equal(c.read(5000), T0);
	assert.ok(!c.running);
	c.update(state('finished', end, { speed: 'max' }), 10);
	assert.equal(c.read(10000), end);
});

test('a seek, a restart or a new loop pass sets the clock back', () => {
	const c = new ReplayClock();
	c.update(state('playing', T0 + 1000e6), 0);
	c.update(state('seeking', T0 + 1000e6, { seek_to: String(T0) }), 100);
	assert.equal(c.read(100), T0);
	assert.equal(c.read(5000), T0, 'it stands at the target while seeking');
	c.update(state('playing', T0), 200);
	assert.equal(c.read(200), T0);
	c.update(state('playing', T0 + 3000e6), 1000);
	c.update(state('playing', T0, { passes: 1 }), 1100); // looped
	assert.equal(c.read(1100), T0);
	c.update(state('finished', 867714240000000), 2000);
	c.update(state('playing', T0), 2100); // sought back from finished
	assert.equal(c.read(2100), T0);
});

// web/js/timetext.js: the clock, a quote's update time, a replay's position.
// Local times are built with the local Date constructor, so the tests hold
// in any time zone.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clockText, stampText, utcText } from '../../web/js/timetext.js';

const local = (...a) => new Date(...a).getTime();

test('clockText pads hours, minutes, seconds and milliseconds', () => {
	const ms = local(2026, 0, 2, 3, 4, 5, 6);
	assert.equal(clockText(ms, false), '03:04:05');
	assert.equal(clockText(ms, true), '03:04:05.006');
	assert.equal(clockText(local(2026, 0, 2, 23, 59, 59, 999), true), '23:59:59.999');
});

test('stampText: an update of today is its time with milliseconds', () => {
	const now = local(2026, 11, 7, 12, 0, 0);
	assert.equal(stampText(local(2026, 11, 7, 9, 5, 3, 42), now), '09:05:03.042');
	assert.equal(stampText(local(2026, 11, 7, 0, 0, 0, 0), now), '00:00:00.000');
});

test('stampText: an older update (a replay, a quiet symbol) shows its date', () => {
	const now = local(2026, 11, 7, 12, 0, 0);
	assert.equal(stampText(local(2026, 11, 6, 23, 59, 59, 500), now), '2026-12-06 23:59:59');
	assert.equal(stampText(local(1997, 5, 2, 0, 27, 0), now), '1997-06-02 00:27:00');
});

test('utcText reads protocol microseconds, as text or number, in UTC', () => {
	assert.equal(utcText('865211220000000'), '1997-06-02 00:27:00 UTC');
	assert.equal(utcText(1718000000123456), '2024-06-10 06:13:20 UTC');
	assert.equal(utcText('1000000'), '1970-01-01 00:00:01 UTC');
});

test('utcText: a missing, zero or unreadable time is a dash', () => {
	for (const v of [undefined, null, 0, '0', '', 'soon'])
		assert.equal(utcText(v), '\u2014', JSON.stringify(v));
});

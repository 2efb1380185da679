// web/js/time-basis.js: which zone every time on the page is shown in, its
// words, and the changes the views redraw on.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TimeBasis, basisZone, basisText, validBasis, BASES } from '../../web/js/time-basis.js';

const JULY = Date.parse('2024-07-01T12:00:00Z');

test('the zone of each basis', () => {
	assert.equal(basisZone('utc', 'Asia/Bangkok', 'America/New_York'), 'UTC');
	assert.equal(basisZone('local', 'Asia/Bangkok', 'America/New_York'), 'America/New_York');
	assert.equal(basisZone('session', 'Asia/Bangkok', 'America/New_York'), 'Asia/Bangkok');
	assert.equal(basisZone('session', undefined, 'America/New_York'), 'UTC');
});

test('a stored basis is checked: local unless it is one of the three', () => {
	assert.deepEqual(BASES, ['local', 'utc', 'session']);
	for (const b of BASES) assert.equal(validBasis(b), b);
	for (const v of [null, undefined, 'UTC', 'gmt', 3, {}]) assert.equal(validBasis(v), 'local');
});

test('a basis in words', () => {
	assert.equal(basisText('utc', 'UTC', JULY), 'UTC');
	assert.equal(basisText('local', 'America/New_York', JULY), 'Local: New York (EDT)');
	assert.equal(basisText('session', 'Asia/Bangkok', JULY), 'Session: Bangkok (GMT+7)');
	assert.equal(basisText('session', 'UTC', JULY), 'Session: UTC');
});

test('TimeBasis: the choice and the selected symbol\'s session zone make the zone; changes are told', () => {
	const b = new TimeBasis('session', 'America/New_York');
	const told = [];
	b.onChange((x) => told.push(x.zone));
	assert.equal(b.zone, 'UTC'); // no symbol's zone yet
	b.setSessionZone('Asia/Bangkok');
	assert.equal(b.zone, 'Asia/Bangkok');
	assert.equal(b.zt.dateTime(JULY), '2024-07-01 19:00:00');
	b.setSessionZone('Asia/Bangkok'); // no change, no word
	b.set('local');
	assert.equal(b.zone, 'America/New_York');
	b.setSessionZone('Europe/London'); // not shown in local: no change
	b.set('utc');
	b.set('utc');
	assert.deepEqual(told, ['Asia/Bangkok', 'America/New_York', 'UTC']);
	assert.equal(b.text('session', JULY), 'Session: London (GMT+1)');
	assert.equal(b.text('local', JULY), 'Local: New York (EDT)');
	assert.equal(b.text(), 'UTC');
});

test('TimeBasis: a choice that changes the words but not the zone is told too', () => {
	const b = new TimeBasis('local', 'UTC');
	let n = 0;
	b.onChange(() => n++);
	b.set('utc');
	assert.equal(n, 1);
	assert.equal(b.zone, 'UTC');
	assert.equal(new TimeBasis('bogus', 'UTC').basis, 'local');
});

test('TimeBasis names its zone as of the time the page shows (a replay\'s), else now', () => {
	const b = new TimeBasis('local', 'America/New_York');
	b.showing(Date.parse('1997-01-15T12:00:00Z'));
	assert.equal(b.text(), 'Local: New York (EST)');
	b.showing(Date.parse('1997-06-15T12:00:00Z'));
	assert.equal(b.text(), 'Local: New York (EDT)');
	assert.equal(b.text('utc'), 'UTC');
	b.showing(null);
	const now = new Intl.DateTimeFormat('en-US', { timeZone: 'America/New_York', timeZoneName: 'short' })
		.formatToParts(new Date()).find((x) => x.type === 'timeZoneName').value;
	assert.equal(b.text(), 'Local: New York (' + now + ')');
});

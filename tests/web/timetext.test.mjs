// web/js/timetext.js: times on the wall clock of a zone (UTC, New York
// across its daylight saving changes, Kathmandu at +05:45), the chart's
// axis and crosshair labels, zone labels, and typed times read in a zone.
// Node's Intl has the full time zone data, as browsers do.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
	ZonedTime, protocolMs, usText, zoneLabel, chartTickMark, chartCrosshair, clockText, DASH,
} from '../../web/js/timetext.js';

const utc = new ZonedTime('UTC');
const ny = new ZonedTime('America/New_York');
const ms = (iso) => Date.parse(iso);

test('UTC: date, clock, date and time, padded', () => {
	const t = ms('2026-01-02T03:04:05.006Z');
	assert.equal(utc.date(t), '2026-01-02');
	assert.equal(utc.clock(t, false), '03:04:05');
	assert.equal(utc.clock(t, true), '03:04:05.006');
	assert.equal(utc.dateTime(t), '2026-01-02 03:04:05');
	assert.equal(utc.offset(t), 0);
});

test('New York: EST in winter, EDT in summer, and the changes to the second', () => {
	assert.equal(ny.dateTime(ms('2024-01-15T14:30:00Z')), '2024-01-15 09:30:00');
	assert.equal(ny.dateTime(ms('2024-07-15T13:30:00Z')), '2024-07-15 09:30:00');
	// 2024-03-10 02:00 EST the clocks go to 03:00 EDT (07:00 UTC)
	assert.equal(ny.dateTime(ms('2024-03-10T06:59:59Z')), '2024-03-10 01:59:59');
	assert.equal(ny.dateTime(ms('2024-03-10T07:00:00Z')), '2024-03-10 03:00:00');
	// 2024-11-03 02:00 EDT back to 01:00 EST (06:00 UTC): 01:30 comes twice
	assert.equal(ny.dateTime(ms('2024-11-03T05:30:00Z')), '2024-11-03 01:30:00');
	assert.equal(ny.dateTime(ms('2024-11-03T06:30:00Z')), '2024-11-03 01:30:00');
	assert.equal(ny.offset(ms('2024-11-03T05:59:59Z')), -4 * 3600e3);
	assert.equal(ny.offset(ms('2024-11-03T06:00:00Z')), -5 * 3600e3);
	// 1997, a replay's month
	assert.equal(ny.dateTime(ms('1997-06-02T00:27:00Z')), '1997-06-01 20:27:00');
});

test('a zone with a quarter-hour offset, and one the browser does not know (UTC)', () => {
	const ktm = new ZonedTime('Asia/Kathmandu');
	assert.equal(ktm.dateTime(ms('2024-06-01T00:00:00Z')), '2024-06-01 05:45:00');
	const bad = new ZonedTime('Mars/Olympus_Mons');
	assert.equal(bad.zone, 'UTC');
	assert.equal(bad.dateTime(ms('2024-06-01T00:00:00Z')), '2024-06-01 00:00:00');
});

test('agrees with Intl at many instants over 60 years in several zones', () => {
	for (const zone of ['America/New_York', 'Europe/London', 'Australia/Lord_Howe', 'Asia/Kolkata', 'America/Sao_Paulo']) {
		const zt = new ZonedTime(zone);
		const fmt = new Intl.DateTimeFormat('sv-SE', {
			timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit',
			hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
		});
		let t = ms('1970-01-01T00:00:00Z');
		for (let i = 0; i < 3000; i++) {
			t += 7 * 86400e3 + 3600e3 * (i % 24) + 60e3 * (i % 7) + 1000 * (i % 13);
			assert.equal(zt.dateTime(t), fmt.format(new Date(t)), zone + ' at ' + new Date(t).toISOString());
		}
	}
});

test('stamp: today (on the zone\'s clock) a time with milliseconds, before that a date', () => {
	const now = ms('2026-12-07T03:00:00Z'); // 22:00 on the 6th in New York
	assert.equal(utc.stamp(ms('2026-12-07T01:05:03.042Z'), now), '01:05:03.042');
	assert.equal(utc.stamp(ms('2026-12-06T23:59:59.500Z'), now), '2026-12-06 23:59:59');
	assert.equal(ny.stamp(ms('2026-12-06T23:59:59.500Z'), now), '18:59:59.500');
	assert.equal(ny.stamp(ms('1997-06-02T00:27:00Z'), now), '1997-06-01 20:27:00');
});

test('instant: a wall time to its instant; twice, the first; skipped, read with the offset before', () => {
	assert.equal(ny.instant(2024, 1, 15, 9, 30), ms('2024-01-15T14:30:00Z'));
	assert.equal(ny.instant(2024, 7, 15, 9, 30), ms('2024-07-15T13:30:00Z'));
	assert.equal(ny.instant(2024, 11, 3, 1, 30), ms('2024-11-03T05:30:00Z'));
	assert.equal(ny.instant(2024, 3, 10, 2, 30), ms('2024-03-10T07:30:00Z'));
	assert.equal(utc.instant(1997, 6, 20), ms('1997-06-20T00:00:00Z'));
});

test('parseUs: a typed date and time without a zone, on the zone\'s clock, in µs', () => {
	assert.equal(ny.parseUs('1997-06-20 09:30'), ms('1997-06-20T13:30:00Z') * 1000);
	assert.equal(ny.parseUs('1997-06-20T09:30:15'), ms('1997-06-20T13:30:15Z') * 1000);
	assert.equal(utc.parseUs(' 1997-06-20 '), ms('1997-06-20T00:00:00Z') * 1000);
	assert.equal(utc.parseUs('1997-06-20 00:00:00.000001'), ms('1997-06-20T00:00:00Z') * 1000 + 1);
	assert.equal(utc.parseUs('1997-06-20 00:00:00.5'), ms('1997-06-20T00:00:00Z') * 1000 + 500000);
	for (const t of ['1997-06-20T00:00:00Z', '1997-06-20T00:00:00+02:00', '1997-06-31', '1997-13-01',
		'1997-06-20 24:00', 'yesterday', '865900800000000', ''])
		assert.equal(utc.parseUs(t), null, t);
});

test('protocol microseconds: text or number; a missing or zero time is a dash', () => {
	assert.equal(protocolMs('865211220000000'), 865211220000);
	assert.equal(usText('865211220000000', utc), '1997-06-02 00:27:00');
	assert.equal(usText(1718000000123456, utc), '2024-06-10 06:13:20');
	assert.equal(usText('865211220000000', ny), '1997-06-01 20:27:00');
	for (const v of [undefined, null, 0, '0', '', 'soon'])
		assert.equal(usText(v, utc), DASH, JSON.stringify(v));
});

test('zone labels: UTC, or the place and the name of its time then', () => {
	assert.equal(zoneLabel('UTC'), 'UTC');
	assert.equal(zoneLabel('Etc/UTC'), 'UTC');
	assert.equal(zoneLabel('America/New_York', ms('2024-07-01T00:00:00Z')), 'New York (EDT)');
	assert.equal(zoneLabel('America/New_York', ms('1997-01-01T00:00:00Z')), 'New York (EST)');
	assert.equal(zoneLabel('Asia/Bangkok', ms('2024-07-01T00:00:00Z')), 'Bangkok (GMT+7)');
	assert.equal(zoneLabel('America/Argentina/Buenos_Aires', ms('2024-07-01T00:00:00Z')), 'Buenos Aires (GMT-3)');
});

test('chart axis marks say what they are on the zone\'s clock', () => {
	const s = (iso) => ms(iso) / 1000;
	// UTC: the library's marks as they come
	assert.equal(chartTickMark(utc, s('2024-01-01T00:00:00Z'), 0), '2024');
	assert.equal(chartTickMark(utc, s('2024-06-01T00:00:00Z'), 1), 'Jun');
	assert.equal(chartTickMark(utc, s('2024-06-02T00:00:00Z'), 2), '2');
	assert.equal(chartTickMark(utc, s('2024-06-02T13:05:00Z'), 3), '13:05');
	assert.equal(chartTickMark(utc, s('2024-06-02T13:05:09Z'), 4), '13:05:09');
	// New York: the UTC day mark is 20:00 of the day before there, so a time
	assert.equal(chartTickMark(ny, s('2024-06-02T00:00:00Z'), 2), '20:00');
	assert.equal(chartTickMark(ny, s('2024-06-02T13:05:00Z'), 3), '09:05');
	// ... and a time mark at midnight there is its day
	assert.equal(chartTickMark(ny, s('2024-06-02T04:00:00Z'), 3), '2');
	assert.equal(chartTickMark(ny, s('2024-06-01T04:00:00Z'), 3), 'Jun');
	// a chart of days: the date it falls on there
	assert.equal(chartTickMark(ny, s('2024-06-03T00:00:00Z'), 2, true), '2');
	assert.equal(chartCrosshair(ny, s('2024-06-02T00:00:00Z')), '2024-06-01 20:00:00');
	assert.equal(chartCrosshair(utc, s('2024-06-02T00:00:00Z')), '2024-06-02 00:00:00');
});

test('clockText: on the given zone\'s clock', () => {
	assert.equal(clockText(ms('2024-06-02T13:05:09.250Z'), true, ny), '09:05:09.250');
	assert.equal(clockText(ms('2024-06-02T13:05:09.250Z'), false, utc), '13:05:09');
});

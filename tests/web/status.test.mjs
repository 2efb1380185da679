// web/js/status.js, the parts without DOM: when the connection banner shows,
// what it says, the round-trip time and the transport as text.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bannerHidden, bannerText, rttText, transportText } from '../../web/js/status.js';

test('the banner is hidden while live, and during the very first attempt only', () => {
	assert.equal(bannerHidden('open', { everOpen: true, attempt: 0 }), true);
	assert.equal(bannerHidden('connecting', { everOpen: false, attempt: 0 }), true);
	// The first attempt failed: the page loaded but cannot connect.
	assert.equal(bannerHidden('waiting', { everOpen: false, attempt: 1 }), false);
	assert.equal(bannerHidden('connecting', { everOpen: false, attempt: 1 }), false);
	// A live connection was lost.
	assert.equal(bannerHidden('waiting', { everOpen: true, attempt: 1 }), false);
	assert.equal(bannerHidden('connecting', { everOpen: true, attempt: 0 }), false);
});

test('banner: a lost connection, waiting, counts down whole seconds up', () => {
	const c = { everOpen: true, state: 'waiting', retryAt: 10000, attempt: 3 };
	assert.equal(bannerText(c, 8000.5),
		'Connection to the server lost. Next attempt in 2 s (attempt 3). Prices shown are the last received.');
	assert.match(bannerText(c, 9999), /Next attempt in 1 s/);
	assert.match(bannerText(c, 10000), /Next attempt in 0 s/);
	assert.match(bannerText(c, 12000), /Next attempt in 0 s/); // never negative
});

test('banner: reconnecting, and never connected', () => {
	assert.equal(bannerText({ everOpen: true, state: 'connecting', retryAt: 0, attempt: 2 }, 0),
		'Connection to the server lost. Reconnecting… Prices shown are the last received.');
	assert.equal(bannerText({ everOpen: false, state: 'waiting', retryAt: 1500, attempt: 1 }, 0),
		'Cannot connect to the server. Next attempt in 2 s (attempt 1).');
	assert.equal(bannerText({ everOpen: false, state: 'connecting', retryAt: 0, attempt: 1 }, 0),
		'Cannot connect to the server. Reconnecting…');
});

test('rttText: one decimal under 10 ms, whole milliseconds from 10', () => {
	assert.equal(rttText(0.04), '0.0 ms');
	assert.equal(rttText(1.44), '1.4 ms');
	assert.equal(rttText(9.94), '9.9 ms');
	assert.equal(rttText(10), '10 ms');
	assert.equal(rttText(27.5), '28 ms');
	assert.equal(rttText(1234.4), '1234 ms');
});

test('transportText names the transport while open, a dash otherwise', () => {
	assert.equal(transportText({ state: 'open', transport: 'ws' }), 'WebSocket');
	assert.equal(transportText({ state: 'open', transport: 'sse' }), 'SSE');
	assert.equal(transportText({ state: 'open', transport: 'poll' }), 'long-poll');
	assert.equal(transportText({ state: 'connecting', transport: 'ws' }), '\u2014');
	assert.equal(transportText({ state: 'waiting', transport: 'sse' }), '\u2014');
});

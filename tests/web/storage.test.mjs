// web/js/storage.js: settings kept in localStorage under 'publisher.', as
// JSON, and never an exception: a browser with storage disabled or full
// still gets a working page. The module reads the global localStorage at
// each call, so each test installs its own fake there.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { load, save, remove } from '../../web/js/storage.js';

/* A Map-backed Storage, with getItem/setItem/removeItem throwing `fail`. */
function fakeStorage(fail = null) {
	const items = new Map();
	const guard = () => { if (fail) throw fail; };
	return {
		items,
		getItem(k) { guard(); return items.has(k) ? items.get(k) : null; },
		setItem(k, v) { guard(); items.set(k, String(v)); },
		removeItem(k) { guard(); items.delete(k); },
	};
}

afterEach(() => { delete globalThis.localStorage; });

test('values round-trip as JSON under the publisher. prefix', () => {
	const s = (globalThis.localStorage = fakeStorage());
	save('watchlist', ['AAPL', 'BRK.B']);
	save('sort', { key: 'last', dir: -1 });
	save('theme', 'light');
	assert.equal(s.items.get('publisher.watchlist'), '["AAPL","BRK.B"]');
	assert.equal(s.items.get('publisher.theme'), '"light"');
	assert.deepEqual(load('watchlist', null), ['AAPL', 'BRK.B']);
	assert.deepEqual(load('sort', null), { key: 'last', dir: -1 });
	assert.equal(load('theme', null), 'light');
});

test('a missing key gives the fallback; a stored null or false does not', () => {
	globalThis.localStorage = fakeStorage();
	assert.equal(load('nothing', 'fallback'), 'fallback');
	save('n', null);
	save('f', false);
	assert.equal(load('n', 'fallback'), null);
	assert.equal(load('f', 'fallback'), false);
});

test('text that is not JSON (written by hand, or by an old version) gives the fallback', () => {
	const s = (globalThis.localStorage = fakeStorage());
	s.items.set('publisher.watchlist', '[AAPL');
	assert.deepEqual(load('watchlist', []), []);
});

test('keys without the prefix are not ours', () => {
	const s = (globalThis.localStorage = fakeStorage());
	s.items.set('theme', '"light"');
	assert.equal(load('theme', null), null);
});

test('remove forgets a key', () => {
	globalThis.localStorage = fakeStorage();
	save('selected', 'AAPL');
	remove('selected');
	assert.equal(load('selected', 'none'), 'none');
});

test('storage that throws (disabled, or full) never throws out of the module', () => {
	globalThis.localStorage = fakeStorage(new Error('SecurityError: storage is disabled'));
	assert.equal(load('theme', 'dark'), 'dark');
	assert.doesNotThrow(() => save('theme', 'light'));
	assert.doesNotThrow(() => remove('theme'));
});

test('no localStorage at all behaves as storage that throws', () => {
	assert.equal(typeof globalThis.localStorage, 'undefined');
	assert.equal(load('theme', 'dark'), 'dark');
	assert.doesNotThrow(() => save('theme', 'light'));
	assert.doesNotThrow(() => remove('theme'));
});

test('a value JSON cannot write is not saved, and does not throw', () => {
	const s = (globalThis.localStorage = fakeStorage());
	const loop = {};
	loop.self = loop;
	assert.doesNotThrow(() => save('loop', loop));
	assert.equal(s.items.has('publisher.loop'), false);
});

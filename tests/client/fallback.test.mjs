// The client library's choice of transport ('auto'), through a proxy that
// gets in the way as real networks do: it refuses WebSocket upgrades, holds
// SSE responses back (buffering them whole), or refuses /stream/events.
// What worked is remembered for the life of the process (a page's, in a
// browser), so each test uses a proxy of its own, that is another address.

import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { PublisherClient } from '../../web/client/publisher.js';
import { Server, waitFor, sleep } from '../support/server.mjs';
import { Proxy } from '../support/proxy.mjs';
import { tmpDir, quote, record } from './support.mjs';

describe('transport fallback', () => {
	let dir, server;
	const clients = [];
	const proxies = [];
	const open = (url, more = {}) => {
		const c = new PublisherClient({ url, ...more });
		clients.push(c);
		return c;
	};
	const proxy = (opts) => {
		const p = new Proxy(() => server.port, opts);
		proxies.push(p);
		return p.start();
	};
	const wsTries = (p, from = 0) => p.requests.slice(from).filter((r) => r === 'GET /ws').length;

	before(async () => {
		dir = tmpDir('fallback');
		server = await new Server(dir).start();
		server.send([quote('FB', '70.10'), quote('FB', '70.20')]);
	});

	afterEach(() => {
		for (const c of clients.splice(0)) c.close();
		for (const p of proxies.splice(0)) p.close();
	});

	after(async () => {
		await server.stop();
		if (!process.env.KEEP_TMP) fs.rmSync(dir, { recursive: true, force: true });
	});

	test('a refused WebSocket upgrade: SSE, and reconnects go straight to it', async () => {
		const p = await proxy({ refuseWebSocket: true });
		const c = open(p.url);
		const ev = record(c);
		const t0 = Date.now();
		c.connect();
		await c.subscribe(['FB']);
		assert.equal(c.transport, 'sse');
		const took = Date.now() - t0;
		await waitFor(() => c.book.get('FB').seq === '2', 5000, 'no FB over SSE');
		assert.equal(wsTries(p), 1);
		assert.ok(p.requests.includes('GET /stream/events'), p.requests.join(', '));
		assert.ok(ev.of('connection').some((e) => e.state === 'open' && e.transport === 'sse'));
		// A blip: back over SSE without trying the WebSocket again.
		const mark = p.requests.length;
		p.dropAll();
		server.send([quote('FB', '70.30')]);
		await waitFor(() => c.book.get('FB').seq === '3' && c.open, 10000, 'did not come back');
		assert.equal(c.transport, 'sse');
		assert.equal(wsTries(p, mark), 0, 'the WebSocket was tried again at once: ' + p.requests.slice(mark).join(', '));
		// Another client of the same server in the same page life: the same.
		const mark2 = p.requests.length;
		const c2 = open(p.url);
		c2.connect();
		await c2.subscribe(['FB']);
		assert.equal(c2.transport, 'sse');
		assert.equal(wsTries(p, mark2), 0);
		console.log('# SSE open ' + took + ' ms after connect() with the upgrade refused');
	});

	test('an SSE response held back by a buffering proxy: long-poll once no stream frame came in ~4 s', async () => {
		const p = await proxy({ refuseWebSocket: true, holdEvents: true });
		const c = open(p.url);
		const t0 = Date.now();
		c.connect();
		await c.subscribe(['FB']);
		const took = Date.now() - t0;
		assert.equal(c.transport, 'poll');
		assert.ok(took >= 3500, 'fell back after ' + took + ' ms: before the Stream-Sense timeout');
		await waitFor(() => c.book.get('FB').fields.bid !== undefined, 5000, 'no FB over long-poll');
		assert.deepEqual(p.requests.filter((r) => r.startsWith('GET')).slice(0, 3), ['GET /ws', 'GET /stream/events', 'GET /stream/poll']);
		console.log('# long-poll open ' + took + ' ms after connect() (Stream-Sense 4 s)');
	});

	for (const status of [404, 403, 502]) {
		test('/stream/events answered ' + status + ' by the proxy: long-poll at once', async () => {
			const p = await proxy({ refuseWebSocket: true, eventsStatus: status });
			const c = open(p.url);
			const ev = record(c);
			const t0 = Date.now();
			c.connect();
			await c.subscribe(['FB']);
			const took = Date.now() - t0;
			assert.equal(c.transport, 'poll');
			assert.ok(ev.of('error').some((e) => e.status === status), 'the refusal was not reported');
			console.log('# long-poll open ' + took + ' ms after connect() with /stream/events ' + status);
		});
	}

	test('the better transport is tried again now and then, and resumes', async () => {
		const p = await proxy({ refuseWebSocket: true });
		const c = open(p.url, { upgradeRetryMs: 1000 });
		const ev = record(c);
		c.connect();
		await c.subscribe(['FB']);
		assert.equal(c.transport, 'sse');
		await waitFor(() => c.book.get('FB').seq !== null, 5000, 'no FB');
		p.opts.refuseWebSocket = false; // the network changed
		await sleep(1200);
		const mark = ev.length;
		p.dropAll();
		server.send([quote('FB', '70.40')]);
		await waitFor(() => c.open && c.transport === 'ws', 10000, 'did not move to the WebSocket');
		await waitFor(() => c.book.get('FB').fields.bid === '70.40', 5000, 'FB not current over the WebSocket');
		assert.ok(ev.of('state', mark).every((e) => !e.snapshot), 'a snapshot after moving: the book was not resumed');
		assert.equal(ev.of('session', mark)[0].resumed, 1);
	});

	test('while a fallback works, the better transport is probed now and then, and taken once it works', async () => {
		const p = await proxy({ refuseWebSocket: true });
		const c = open(p.url, { upgradeRetryMs: 1000 });
		const ev = record(c);
		c.connect();
		await c.subscribe(['FB']);
		assert.equal(c.transport, 'sse');
		await waitFor(() => c.book.get('FB').seq !== null, 5000, 'no FB');
		const tries = wsTries(p);
		await sleep(2500);
		assert.ok(wsTries(p) >= tries + 2, 'probed ' + (wsTries(p) - tries) + ' times in 2.5 s, every 1 s expected');
		assert.ok(c.open && c.transport === 'sse', 'the fallback was left for a refused WebSocket');
		p.opts.refuseWebSocket = false; // the network changed
		const mark = ev.length;
		const t0 = Date.now();
		await waitFor(() => c.open && c.transport === 'ws', 5000, 'did not move to the WebSocket');
		const took = Date.now() - t0;
		server.send([quote('FB', '70.50')]);
		await waitFor(() => c.book.get('FB').fields.bid === '70.50', 5000, 'FB not current over the WebSocket');
		assert.ok(ev.of('state', mark).every((e) => !e.snapshot), 'a snapshot after moving: the book was not resumed');
		assert.equal(ev.of('session', mark)[0].resumed, 1);
		console.log('# moved to the WebSocket ' + took + ' ms after it was let through (probe every 1 s)');
	});

	test('a forced transport never falls back', async () => {
		const p = await proxy({ refuseWebSocket: true });
		const c = open(p.url, { transport: 'ws' });
		const ev = record(c);
		c.connect();
		await waitFor(() => ev.of('connection').some((e) => e.state === 'waiting'), 5000, 'no retry scheduled');
		await sleep(1000);
		assert.ok(!p.requests.some((r) => r.startsWith('GET /stream')), p.requests.join(', '));
		assert.ok(ev.of('connection').every((e) => e.transport === 'ws'));
		assert.equal(c.open, false);
	});
});

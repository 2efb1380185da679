// Browser test of the status page (/status, web/status/index.html and
// web/js/status-page.js): the real publisher binary with the synthetic
// feed, the page in real headless Chromium.
//
//   PUBLISHER_BIN=build/publisher node tests/browser/status.mjs
//
// Checks that the page moves (its figures change and its lines draw, with
// a WebSocket and an SSE client of the server's making updates), that it
// loads under the server's strict CSP with no console errors or CSP
// violations, that it is usable at 390, 768 and 1366 px wide (no
// horizontal overflow, every card inside the window, the theme button not
// covered), that /status.html leads to /status with its query, and that
// with --auth-secret the page says why it is refused and goes live with an
// admin token passed as ?token=.
//
// Uses Debian's /usr/bin/chromium (CHROMIUM overrides) through npm
// playwright-core, as run.mjs does. Prints one line per check and ends with
// "N passed, N failed"; exits 1 when anything failed. Screenshots go to
// tests/artifacts/ (git-ignored). Deadlines are generous; the times it
// actually took are printed.

import crypto from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT, ARTIFACTS, waitFor, sleep, Server } from '../support/server.mjs';
import { check, assert, run, launchBrowser, newContext, watchProblems } from './harness.mjs';

const FEED = 'synthetic:symbols=40,rate=400,seed=5';
const LAYOUTS = [
	{ name: 'phone', width: 390, height: 844 },
	{ name: 'tablet', width: 768, height: 1024 },
	{ name: 'desktop', width: 1366, height: 768 },
];

/* ---- the server's clients ----------------------------------------------- */

/**
 * A WebSocket client on a raw socket, subscribed to every symbol: it reads
 * and drops what comes, so that the server has updates to send.
 */
async function wsSubscriber(port) {
	const sock = net.connect(port, '127.0.0.1');
	await once(sock, 'connect');
	const key = crypto.randomBytes(16).toString('base64');
	sock.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1:' + port + '\r\nUpgrade: websocket\r\n' +
		'Connection: Upgrade\r\nSec-WebSocket-Key: ' + key + '\r\nSec-WebSocket-Version: 13\r\n\r\n');
	let head = Buffer.alloc(0);
	while (head.indexOf('\r\n\r\n') < 0) head = Buffer.concat([head, (await once(sock, 'data'))[0]]);
	assert(/^HTTP\/1\.1 101/.test(head.toString('latin1')), 'upgrade refused: ' + head.toString('latin1').split('\r\n')[0]);
	sock.on('data', () => {});
	const payload = Buffer.from(JSON.stringify({ op: 'subscribe', id: 1, symbols: ['*'] }));
	const mask = crypto.randomBytes(4);
	const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
	sock.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
	return sock;
}

/** A Server-Sent Events session (GET /stream/events), held open. */
async function sseSession(port) {
	const abort = new AbortController();
	const r = await fetch('http://127.0.0.1:' + port + '/stream/events', { signal: abort.signal });
	assert(r.ok, 'GET /stream/events answered ' + r.status);
	const reader = r.body.getReader();
	(async () => {
		try {
			while (!(await reader.read()).done);
		} catch (e) { /* aborted at the end */ }
	})();
	return abort;
}

/** An HS256 token, as tests/tools/mint_jwt.py makes them. */
function mint(secret, claims) {
	const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
	const input = b64({ alg: 'HS256', typ: 'JWT' }) + '.' + b64(claims);
	return input + '.' + crypto.createHmac('sha256', secret).update(input).digest('base64url');
}

/* ---- page helpers ------------------------------------------------------- */

/** The text of every card, by figure. */
function cards(page) {
	return page.$$eval('.sp-card', (els) => Object.fromEntries(els.filter((e) => !e.hidden).map((e) => [
		e.dataset.figure,
		{ value: e.querySelector('.sp-value').textContent, detail: e.querySelector('.sp-detail').textContent },
	])));
}

/** Per figure: the pixels a sparkline's canvas has drawn, and a hash of them. */
function sparks(page) {
	return page.$$eval('.sp-card:not([hidden]) canvas', (canvases) => Object.fromEntries(canvases.map((c) => {
		const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		let drawn = 0, hash = 0;
		for (let i = 3; i < d.length; i += 4) {
			if (d[i]) drawn++;
			hash = (hash * 31 + d[i] + d[i - 1]) | 0;
		}
		return [c.closest('.sp-card').dataset.figure, { drawn, hash, width: c.width, height: c.height }];
	})));
}

function samples(page) {
	return page.evaluate(() => Number(document.body.dataset.samples || 0));
}

/** What overflows the window sideways, and what covers the theme button. */
function layoutProblems(page) {
	return page.evaluate(() => {
		const out = [];
		const vw = document.documentElement.clientWidth;
		if (document.documentElement.scrollWidth > vw) out.push('page is ' + document.documentElement.scrollWidth + ' px wide in ' + vw);
		for (const e of document.querySelectorAll('.sp-top, .sp-facts, .sp-card, .sp-table, .sp-foot, #sp-banner')) {
			if (e.hidden || !e.getClientRects().length) continue;
			const r = e.getBoundingClientRect();
			if (r.left < -0.5 || r.right > vw + 0.5) out.push((e.dataset.figure || e.id || e.className) + ' spans ' + r.left + '..' + r.right);
			if (e.scrollWidth > e.clientWidth + 1) out.push((e.dataset.figure || e.id || e.className) + ' overflows inside (' + e.scrollWidth + ' > ' + e.clientWidth + ')');
		}
		const b = document.getElementById('theme-toggle');
		b.scrollIntoView({ block: 'center' });
		const r = b.getBoundingClientRect();
		const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
		if (!hit || !b.contains(hit)) out.push('the theme button is covered by ' + (hit ? hit.outerHTML.slice(0, 80) : 'nothing'));
		window.scrollTo(0, 0);
		return out;
	});
}

function columns(page) {
	return page.$$eval('.sp-card:not([hidden])', (els) => new Set(els.map((e) => Math.round(e.getBoundingClientRect().left))).size);
}

/* ---- the run ------------------------------------------------------------ */

async function main() {
	const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'publisher-status-'));
	const openDir = path.join(tmp, 'open');
	const authDir = path.join(tmp, 'auth');
	for (const d of [openDir, authDir]) fs.mkdirSync(d);
	const secret = crypto.randomBytes(24).toString('hex');
	const secretFile = path.join(authDir, 'secret.key');
	fs.writeFileSync(secretFile, secret + '\n', { mode: 0o600 });
	const server = new Server(openDir, { feed: FEED, name: 'status-open' });
	const authServer = new Server(authDir, { feed: FEED, args: ['--auth-secret', secretFile], name: 'status-auth' });
	let browser, ws, sse;

	const problems = []; // console errors, page errors, CSP violations, failed requests
	let refusalsExpected = false; // while the page is refused on purpose
	const newPage = async (viewport) => {
		const page = await (await newContext(browser, { viewport })).newPage();
		watchProblems(page, problems, {
			ignore: (text, m) => refusalsExpected && /Failed to load resource/.test(text) && /\/api\/status/.test((m.location() || {}).url || ''),
			requests: true,
			ignoreStatus: (r) => refusalsExpected && /\/api\/status/.test(r.url()),
		});
		return page;
	};

	try {
		await Promise.all([server.start(), authServer.start()]);
		browser = await launchBrowser();
		ws = await wsSubscriber(server.port);
		sse = await sseSession(server.port);
		const page = await newPage({ width: 1366, height: 768 });

		await check('/status loads under the server\'s strict CSP with no console errors or CSP violations', async () => {
			const resp = await page.goto(server.url + 'status', { waitUntil: 'load' });
			assert(resp && resp.ok(), 'GET /status answered ' + (resp && resp.status()));
			const csp = resp.headers()['content-security-policy'] || '';
			assert(/script-src 'self'/.test(csp) && /style-src 'self'/.test(csp),
				'no strict CSP on /status (got "' + csp + '"): the check would prove nothing');
			await waitFor(async () => (await samples(page)) >= 3, 15000, 'fewer than 3 samples taken');
			assert(problems.length === 0, problems.join(' | '));
			return 'CSP: ' + csp.split(';').slice(0, 3).join(';');
		});

		await check('the page moves: figures change from sample to sample and every line draws', async () => {
			const n0 = await samples(page);
			const c0 = await cards(page), s0 = await sparks(page);
			await waitFor(async () => (await samples(page)) >= n0 + 3, 15000, 'the page stopped sampling');
			const c1 = await cards(page), s1 = await sparks(page);
			const since = (c) => Number(c.ticks.detail.split(' ')[0].replace(/,/g, ''));
			assert(since(c1) > since(c0), 'ticks since start did not grow: ' + c0.ticks.detail + ' -> ' + c1.ticks.detail);
			assert(Number(c1.clients.value) >= 2, 'clients ' + c1.clients.value + ' (a WebSocket and an SSE session are open)');
			assert(/WebSocket [1-9].*SSE [1-9]/.test(c1.clients.detail), 'clients by transport: ' + c1.clients.detail);
			assert(/^[\d,.]+$/.test(c1.updates.value) && Number(c1.updates.value.replace(/,/g, '')) > 0,
				'updates/s ' + c1.updates.value + ' with a subscriber to every symbol');
			assert(/^[\d,.]+$/.test(c1.ticks.value) && Number(c1.ticks.value.replace(/,/g, '')) > 0, 'ticks in/s ' + c1.ticks.value);
			assert(c1.feed.value === 'running', 'feed ' + c1.feed.value);
			assert(/ms|s$/.test(c1.store.value), 'store lag ' + c1.store.value);
			assert(/%$/.test(c1.conflation.value), 'conflation ' + c1.conflation.value);
			const changed = Object.keys(c1).filter((k) => c1[k].value !== c0[k].value || c1[k].detail !== c0[k].detail);
			assert(changed.length >= 3, 'only ' + changed.join(', ') + ' changed');
			for (const [k, s] of Object.entries(s1)) {
				assert(s.width > 0 && s.height > 0, k + ': the canvas has no size');
				assert(s.drawn > 0, k + ': nothing drawn');
			}
			for (const k of ['ticks', 'updates', 'clients'])
				assert(s1[k].drawn > s0[k].drawn * 0.5 && s1[k].hash !== s0[k].hash, k + ': the line did not move');
			return Object.keys(s1).length + ' lines; ticks ' + c1.ticks.value + '/s, updates ' + c1.updates.value +
				'/s, clients ' + c1.clients.value + ', conflation ' + c1.conflation.value + ', store lag ' + c1.store.value;
		});

		await check('each figure has its one-line explanation, shown and as a tooltip', async () => {
			const helps = await page.$$eval('.sp-card:not([hidden])', (els) => els.map((e) => ({
				f: e.dataset.figure, title: e.title, help: e.querySelector('.sp-help').textContent,
			})));
			for (const h of helps) assert(h.help.length > 20 && h.title === h.help, h.f + ': no explanation');
			return helps.length + ' figures';
		});

		for (const l of LAYOUTS) {
			await check('usable at ' + l.width + ' px (' + l.name + '): no horizontal overflow, nothing covered', async () => {
				await page.setViewportSize({ width: l.width, height: l.height });
				await sleep(1200); // a sample or so at the new size
				const bad = await layoutProblems(page);
				assert(bad.length === 0, bad.join('; '));
				const shot = path.join(ARTIFACTS, 'status-' + l.width + '.png');
				await page.screenshot({ path: shot, fullPage: true });
				const s = await sparks(page);
				for (const [k, v] of Object.entries(s)) assert(v.drawn > 0, k + ': nothing drawn at ' + l.width + ' px');
				return (await columns(page)) + ' column(s); ' + path.relative(ROOT, shot);
			});
		}

		await check('the theme button switches to light and the lines are drawn again', async () => {
			await page.click('#theme-toggle');
			const theme = await page.evaluate(() => document.documentElement.getAttribute('data-theme'));
			assert(theme === 'light', 'theme ' + theme);
			await sleep(1200);
			const s = await sparks(page);
			for (const [k, v] of Object.entries(s)) assert(v.drawn > 0, k + ': nothing drawn in light');
			await page.screenshot({ path: path.join(ARTIFACTS, 'status-light.png'), fullPage: true });
			await page.click('#theme-toggle');
			assert(problems.length === 0, problems.join(' | '));
			return 'tests/artifacts/status-light.png';
		});

		await check('/status.html leads to /status with its query', async () => {
			await page.goto(server.url + 'status.html?from=old#x', { waitUntil: 'load' });
			await waitFor(() => /\/status\?from=old#x$/.test(page.url()), 5000, 'still at ' + page.url());
			await waitFor(async () => (await samples(page)) >= 1, 10000, 'no sample after the redirect');
			assert(problems.length === 0, problems.join(' | '));
			return page.url().replace(/^http:\/\/[^/]+/, '');
		});

		await check('with --auth-secret: refused without a token and without the admin claim, live with ?token= of an admin', async () => {
			refusalsExpected = true;
			const p = await newPage({ width: 390, height: 844 });
			const exp = Math.floor(Date.now() / 1000) + 3600;
			await p.goto(authServer.url + 'status', { waitUntil: 'load' });
			await waitFor(() => p.$eval('#sp-health', (e) => e.dataset.state === 'refused'), 10000, 'not refused without a token');
			const noToken = await p.$eval('#sp-banner-text', (e) => e.textContent);
			assert(/requires a token/.test(noToken) && /admin claim/.test(noToken), 'banner without a token: ' + noToken);
			await p.goto(authServer.url + 'status?token=' + mint(secret, { sub: 'trader', exp, symbols: ['*'] }), { waitUntil: 'load' });
			await waitFor(async () => /refused this token/.test(await p.$eval('#sp-banner-text', (e) => e.textContent)),
				10000, 'no 403 reason shown for a token without the admin claim');
			const noAdmin = await p.$eval('#sp-banner-text', (e) => e.textContent);
			assert(/\(\\?"admin\\?": true\)/.test(noAdmin), 'the 403 banner does not name the claim: ' + noAdmin);
			await p.screenshot({ path: path.join(ARTIFACTS, 'status-refused.png'), fullPage: true });
			refusalsExpected = false;
			await p.goto(authServer.url + 'status?token=' + mint(secret, { sub: 'ops', exp, symbols: [], admin: true }), { waitUntil: 'load' });
			await waitFor(async () => (await samples(p)) >= 2, 10000, 'an admin token did not go live');
			const state = await p.$eval('#sp-health', (e) => e.dataset.state);
			const hidden = await p.$eval('#sp-banner', (e) => e.hidden);
			const tokens = await p.$eval('#sp-auth', (e) => e.textContent);
			assert(state === 'ok' && hidden && tokens === 'required', 'health ' + state + ', banner hidden ' + hidden + ', tokens ' + tokens);
			assert(problems.length === 0, problems.join(' | '));
			await p.context().close();
			return 'refusals shown: "' + noAdmin.slice(0, 70) + '…"';
		});
	} finally {
		refusalsExpected = false;
		if (ws) ws.destroy();
		if (sse) sse.abort();
		if (browser) await browser.close();
		await Promise.all([server.stop(), authServer.stop()]);
		fs.rmSync(tmp, { recursive: true, force: true });
	}
}

await run(main);

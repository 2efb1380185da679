// Browser tests for the dashboard (web/): the real publisher
// binary with the synthetic feed, driven in real headless Chromium.
//
//   PUBLISHER_BIN=build/publisher node tests/browser/run.mjs
//
// Uses Debian's /usr/bin/chromium (CHROMIUM overrides) through npm
// playwright-core, which never downloads a browser. Prints one line per
// check and ends with "N passed, N failed"; exits 1 when anything failed.
// Screenshots go to tests/artifacts/ (git-ignored).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, ARTIFACTS, waitFor, sleep, Server } from '../support/server.mjs';
import { Proxy } from '../support/proxy.mjs';
import { check, assert, run, launch, watchProblems, watchBlanks } from './harness.mjs';

const FEED = 'synthetic:symbols=60,rate=600,seed=7';
const LOAD_FEED = 'synthetic:symbols=500,rate=5000,seed=11';
// Real USD/THB quotes from June 1997 (tests/data): a month in about two minutes.
const USDTHB_FILE = path.join(ROOT, 'tests/data/usdthb-1997.csv');
const REPLAY_FEED = 'replay:' + USDTHB_FILE + ',speed=20000,loop';
// As the README replays it: 100,000 times faster than it happened, a store.
const SEEK_FEED = 'replay:' + USDTHB_FILE + ',speed=100000';

/* ---- page helpers ------------------------------------------------------- */

function rows(page) {
	return page.$$eval('#watchlist .wl-row', (trs) => trs.map((tr) => ({
		sym: tr.children[0].textContent,
		bid: tr.children[1].textContent,
		ask: tr.children[2].textContent,
		last: tr.children[3].textContent,
		chg: tr.children[4].textContent,
		pct: tr.children[5].textContent,
		volume: tr.children[6].textContent,
		selected: tr.getAttribute('aria-selected') === 'true',
	})));
}

const PRICE = /^\d+\.\d+$/;
const priced = (rs) => rs.filter((r) => PRICE.test(r.last) && PRICE.test(r.bid) && PRICE.test(r.ask));

async function connState(page) {
	return page.$eval('#st-conn', (el) => el.dataset.state);
}

/** Distinct colours in the chart's canvases: a blank chart has one or two. */
function chartColours(page) {
	return page.$$eval('#chart canvas', (canvases) => {
		const seen = new Set();
		let area = 0;
		for (const c of canvases) {
			if (!c.width || !c.height) continue;
			area += c.width * c.height;
			const ctx = c.getContext('2d');
			if (!ctx) continue;
			const d = ctx.getImageData(0, 0, c.width, c.height).data;
			for (let i = 0; i < d.length; i += 4 * 7) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
		}
		return { canvases: canvases.length, area, colours: seen.size };
	});
}

/* ---- the run ------------------------------------------------------------ */

async function main() {
	const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'publisher-browser-'));
	const serverDir = path.join(tmp, 'server');
	const loadDir = path.join(tmp, 'load');
	const replayDir = path.join(tmp, 'replay');
	const seekDir = path.join(tmp, 'replay-seek');
	for (const d of [serverDir, loadDir, replayDir, seekDir]) fs.mkdirSync(d);
	const server = new Server(serverDir, { feed: FEED, name: 'server' });
	const loadServer = new Server(loadDir, { feed: LOAD_FEED, name: 'load' });
	const replayServer = new Server(replayDir, { feed: REPLAY_FEED, name: 'replay' });
	const seekServer = new Server(seekDir, { feed: SEEK_FEED, name: 'replay-seek' });
	const proxy = new Proxy(() => server.port);
	let context;

	const problems = []; // console errors, page errors, CSP violations, failed requests
	let outage = false; // while the server is down on purpose

	try {
		await server.start(0);
		context = await launch(path.join(tmp, 'profile'));
		const page = context.pages()[0] || await context.newPage();
		watchProblems(page, problems, {
			// Chromium logs each refused WebSocket attempt, and each refused
			// fetch of the SSE fallback the client library tries next;
			// expected while down.
			ignore: (text, m) => outage && (/WebSocket connection to .* failed/.test(text) ||
				(/Failed to load resource/.test(text) && /\/stream\//.test((m.location() || {}).url || ''))),
			requests: true,
			ignoreFailure: (r) => outage && /^(ws|http)s?:\/\/[^/]+\/(ws|stream\/)/.test(r.url()),
		});

		let cspHeader = '';
		await check('the page loads under the server\'s strict CSP with no console errors or CSP violations', async () => {
			const resp = await page.goto(server.url, { waitUntil: 'load' });
			assert(resp && resp.ok(), 'GET / answered ' + (resp && resp.status()));
			cspHeader = resp.headers()['content-security-policy'] || '';
			assert(/script-src 'self'/.test(cspHeader) && /style-src 'self'/.test(cspHeader),
				'no strict CSP on / (got "' + cspHeader + '"): the check would prove nothing');
			await waitFor(() => connState(page).then((s) => s === 'open'), 10000, 'never connected');
			await sleep(1500);
			assert(problems.length === 0, problems.join(' | '));
			return 'CSP: ' + cspHeader.split(';').slice(0, 4).join(';');
		});

		let first = [];
		await check('a first visit lists the server\'s symbols (up to 50) with live prices', async () => {
			first = await waitFor(async () => {
				const rs = await rows(page);
				return rs.length === 50 && priced(rs).length >= 45 ? rs : null;
			}, 15000, 'expected 50 rows with prices');
			return first.length + ' rows, ' + priced(first).length + ' priced';
		});

		await check('client rules in the page: exact numbers, decimal arithmetic, delta and gap handling', async () => {
			const results = await page.evaluate(async () => {
				const { parseFrame, Book, sub, percent, signed, group } = await import('./client/publisher.js');
				const r = {};
				const f = parseFrame('[{"type":"delta","symbol":"X","from":9007199254740993,"seq":9007199254740995,' +
					'"bid":470.90,"volume":120,"message":"said \\"bid\\":1.50","heartbeat_ms":5000}]')[0];
				r['a price keeps its text'] = f.bid === '470.90';
				r['a seq past 2^53 stays exact'] = f.seq === '9007199254740995' && f.from === '9007199254740993';
				r['text inside a string is untouched'] = f.message === 'said "bid":1.50';
				r['other numbers stay numbers'] = f.heartbeat_ms === 5000;
				r['0.3 - 0.1 = 0.2 exactly'] = sub('0.3', '0.1') === '0.2';
				r['scales mix'] = sub('189.35', '189.4') === '-0.05' && signed(sub('189.35', '189.4')) === '\u22120.05';
				r['percent'] = percent('1.00', '200.00') === '+0.50%';
				r['grouping'] = group('1234567.5') === '1,234,567.5';
				const m = new Book();
				let gaps = 0;
				const q = m.watch('X');
				const apply = (t) => { const c = m.apply(parseFrame(t)); if (c && c.gap) gaps++; };
				apply('{"type":"snapshot","symbol":"X","seq":10,"bid":1.10,"ask":1.20}');
				apply('{"type":"delta","symbol":"X","from":10,"seq":11,"bid":1.11}');
				r['from = held applies'] = q.seq === '11' && q.fields.bid === '1.11';
				apply('{"type":"delta","symbol":"X","from":10,"seq":11,"bid":1.05}');
				r['seq <= held is ignored'] = q.seq === '11' && q.fields.bid === '1.11' && gaps === 0;
				apply('{"type":"delta","symbol":"X","from":10,"seq":13,"ask":1.25}');
				r['from < held < seq applies (a superset)'] = q.seq === '13' && q.fields.ask === '1.25' && gaps === 0;
				apply('{"type":"delta","symbol":"X","from":20,"seq":21,"bid":9}');
				r['from > held is a gap, not applied'] = gaps === 1 && q.seq === '13' && q.fields.bid === '1.11';
				apply('{"type":"delta","symbol":"X","from":22,"seq":23,"bid":9}');
				r['one resubscribe per gap burst'] = gaps === 1;
				apply('{"type":"snapshot","symbol":"X","seq":30,"bid":2.00}');
				r['a snapshot replaces everything'] = q.seq === '30' && q.fields.bid === '2.00' && q.fields.ask === undefined;
				apply('{"type":"delta","symbol":"Y","from":1,"seq":2,"bid":1}');
				r['updates for unwatched symbols are dropped'] = !m.has('Y');
				return r;
			});
			const bad = Object.entries(results).filter(([, ok]) => !ok).map(([k]) => k);
			assert(bad.length === 0, 'failed: ' + bad.join('; '));
			return Object.keys(results).length + ' rules';
		});

		await check('prices are shown with their exact decimal text (trailing zeros kept)', async () => {
			const rs = priced(await rows(page));
			const prices = rs.flatMap((r) => [r.bid, r.ask, r.last]);
			assert(prices.every((p) => /^\d+\.\d{2,}$/.test(p)), 'a price without its decimals: ' + prices.find((p) => !/^\d+\.\d{2,}$/.test(p)));
			assert(prices.some((p) => /\.\d*0$/.test(p)), 'no price ends in 0 among ' + prices.length + ': decimals were re-formatted as doubles');
			return prices.length + ' prices';
		});

		await check('values change, and changed cells flash', async () => {
			const before = new Map((await rows(page)).map((r) => [r.sym, r.last + '|' + r.bid]));
			let flashes = 0;
			const after = await waitFor(async () => {
				flashes = Math.max(flashes, await page.$$eval('#watchlist .wl-row > [class*="fu"], #watchlist .wl-row > [class*="fd"]', (t) => t.length));
				const rs = await rows(page);
				const changed = rs.filter((r) => before.get(r.sym) !== r.last + '|' + r.bid).length;
				return changed >= 10 ? changed : 0;
			}, 10000, 'fewer than 10 rows changed');
			assert(flashes > 0, 'no cell carried a flash class');
			return after + ' rows changed, ' + flashes + ' cells flashing';
		});

		await check('the status bar shows live state, the transport, round-trip latency, updates/s and the epoch', async () => {
			const st = await waitFor(async () => {
				const s = await page.evaluate(() => ({
					conn: document.getElementById('st-conn-text').textContent,
					state: document.getElementById('st-conn').dataset.state,
					rtt: document.getElementById('st-rtt').textContent,
					rate: document.getElementById('st-rate').textContent,
					epoch: document.getElementById('st-epoch').textContent,
					transport: document.getElementById('st-transport').textContent,
					banner: document.getElementById('banner').hidden,
				}));
				return s.state === 'open' && /ms$/.test(s.rtt) && Number(s.rate.replace(/,/g, '')) > 0 && /^[0-9a-zA-Z-]{4,}$/.test(s.epoch) ? s : null;
			}, 8000, 'status bar incomplete');
			assert(st.transport === 'WebSocket', 'the status bar says the transport is "' + st.transport + '"');
			assert(st.banner, 'the disconnected banner is visible while live');
			assert(await page.$eval('#replay', (e) => e.hidden), 'replay controls shown for a synthetic feed');
			return `${st.conn} over ${st.transport}, RTT ${st.rtt}, ${st.rate} updates/s, epoch ${st.epoch}`;
		});

		await check('the chart of the selected symbol renders', async () => {
			const sym = await page.$eval('#q-symbol', (e) => e.textContent);
			assert(sym === first[0].sym, 'selected ' + sym + ', expected the first row ' + first[0].sym);
			const c = await waitFor(async () => {
				const r = await chartColours(page);
				return r.area > 10000 && r.colours > 8 ? r : null;
			}, 10000, 'the chart canvas stayed blank');
			return `${c.canvases} canvases, ${c.colours} colours`;
		});

		await check('sorting by clicking a column header (asc, desc, off)', async () => {
			const syms = async () => (await rows(page)).map((r) => r.sym);
			const original = await syms();
			await page.click('[data-key="symbol"] button');
			let s = await syms();
			assert(s.join() === [...original].sort().join(), 'not ascending by symbol');
			assert(await page.$eval('[data-key="symbol"]', (e) => e.getAttribute('aria-sort')) === 'ascending', 'aria-sort not ascending');
			await page.click('[data-key="symbol"] button');
			s = await syms();
			assert(s.join() === [...original].sort().reverse().join(), 'not descending by symbol');
			await page.click('[data-key="symbol"] button');
			assert((await syms()).join() === original.join(), 'third click did not restore the watchlist order');
			// Live sort by last price, descending (two clicks).
			await page.click('[data-key="last"] button');
			await page.click('[data-key="last"] button');
			const rs = await rows(page);
			const lasts = rs.map((r) => Number(r.last)).filter((n) => !Number.isNaN(n));
			let inversions = 0;
			for (let i = 1; i < lasts.length; i++) if (lasts[i] > lasts[i - 1]) inversions++;
			assert(inversions <= 2, inversions + ' rows out of descending order by Last');
			await page.click('[data-key="last"] button');
			assert((await syms()).join() === original.join(), 'sort off did not restore the order');
			return 'symbol asc/desc, last desc with ' + inversions + ' live inversions';
		});

		// Remove the third row with its × button; it stays removed after a reload.
		const victim = first[2].sym;
		await check('removing a symbol with its × button, and it stays removed after reload', async () => {
			await page.hover(`#watchlist .wl-row:nth-child(3)`);
			await page.click(`#watchlist .wl-row:nth-child(3) button.x`);
			let syms = (await rows(page)).map((r) => r.sym);
			assert(!syms.includes(victim) && syms.length === 49, victim + ' still listed');
			await page.reload({ waitUntil: 'load' });
			await waitFor(async () => priced(await rows(page)).length >= 45, 10000, 'rows did not come back after reload');
			syms = (await rows(page)).map((r) => r.sym);
			assert(syms.length === 49 && !syms.includes(victim), 'after reload: ' + syms.length + ' rows, ' + victim + (syms.includes(victim) ? ' back' : ' gone'));
			return victim;
		});

		let extra = '';
		await check('adding symbols with Enter (suggestions from the symbols op), kept after reload', async () => {
			const options = await waitFor(() => page.$$eval('#symbol-list option', (o) => o.map((x) => x.value)), 8000, 'no suggestions in the datalist');
			assert(options.includes(victim), 'the removed ' + victim + ' is not suggested');
			extra = options.find((s) => !first.some((r) => r.sym === s));
			assert(extra, 'no suggestion beyond the first 50 (the feed has 60 symbols)');
			for (const s of [victim.toLowerCase(), extra]) {
				await page.fill('#add-input', s);
				await page.press('#add-input', 'Enter');
			}
			await waitFor(async () => {
				const rs = await rows(page);
				const got = rs.filter((r) => (r.sym === victim || r.sym === extra) && PRICE.test(r.last));
				return rs.length === 51 && got.length === 2;
			}, 10000, 'the added rows did not fill in');
			const sel = await page.$eval('#q-symbol', (e) => e.textContent);
			assert(sel === extra, 'the added symbol is not selected (' + sel + ')');
			await page.reload({ waitUntil: 'load' });
			await waitFor(async () => priced(await rows(page)).length >= 48, 10000, 'rows did not come back after reload');
			const syms = (await rows(page)).map((r) => r.sym);
			assert(syms.includes(victim) && syms.includes(extra) && syms.length === 51, 'after reload: ' + syms.length + ' rows');
			return victim + ' (typed in lower case) and ' + extra;
		});

		await check('keyboard: arrow keys move the selection, Delete removes the selected row', async () => {
			await page.focus('#watchlist');
			await page.keyboard.press('Home');
			await page.keyboard.press('ArrowDown');
			await page.keyboard.press('ArrowDown');
			let rs = await rows(page);
			const i = rs.findIndex((r) => r.selected);
			assert(i === 2, 'selected row ' + i + ', expected 2');
			const gone = rs[2].sym;
			assert(await page.$eval('#q-symbol', (e) => e.textContent) === gone, 'the chart does not follow the selection');
			await page.keyboard.press('ArrowUp');
			await page.keyboard.press('ArrowDown');
			await page.keyboard.press('Delete');
			rs = await rows(page);
			assert(!rs.some((r) => r.sym === gone), gone + ' not removed');
			assert(rs.findIndex((r) => r.selected) === 2, 'the selection did not move to the next row');
			await page.fill('#add-input', gone);
			await page.press('#add-input', 'Enter');
			await waitFor(async () => (await rows(page)).some((r) => r.sym === gone), 3000, gone + ' not added back');
			return 'removed and re-added ' + gone;
		});

		await check('a screenshot of the dark theme at 1366×768', async () => {
			await page.click('[data-key="symbol"] button'); // blur, and leave no sort:
			await page.click('[data-key="symbol"] button');
			await page.click('[data-key="symbol"] button');
			await page.mouse.move(0, 0);
			await page.click('#intervals button[data-interval="1s"]');
			await page.click('#watchlist .wl-row:nth-child(1) .c-sym');
			await sleep(10000); // some seconds of bars
			const file = path.join(ARTIFACTS, 'dashboard.png');
			await page.screenshot({ path: file });
			const size = fs.statSync(file).size;
			assert(size > 30000, 'screenshot suspiciously small: ' + size + ' bytes');
			return path.relative(ROOT, file);
		});

		await check('theme toggle switches to light and is remembered across a reload', async () => {
			await page.click('#theme-toggle');
			assert(await page.getAttribute('html', 'data-theme') === 'light', 'not light after the toggle');
			await page.reload({ waitUntil: 'load' });
			assert(await page.getAttribute('html', 'data-theme') === 'light', 'not light after reload');
			await waitFor(async () => priced(await rows(page)).length >= 45, 10000, 'rows did not come back');
			await sleep(2500);
			await page.mouse.move(0, 0);
			await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-light.png') });
			await page.click('#theme-toggle');
			assert(await page.getAttribute('html', 'data-theme') === 'dark', 'not dark after the second toggle');
			return 'tests/artifacts/dashboard-light.png';
		});

		// Stop the server: the page shows the outage but keeps its values.
		let heldRows = [];
		await check('server stopped: a disconnected banner, and the rows keep their values', async () => {
			heldRows = priced(await rows(page));
			outage = true;
			await server.stop();
			await waitFor(async () => (await connState(page)) !== 'open' && !(await page.$eval('#banner', (b) => b.hidden)), 10000, 'no banner after the server stopped');
			await sleep(1500); // a few reconnect attempts against a closed port
			const rs = priced(await rows(page));
			assert(rs.length >= heldRows.length, 'rows lost their values while disconnected: ' + rs.length + ' of ' + heldRows.length);
			const text = await page.$eval('#banner-text', (e) => e.textContent);
			await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-disconnected.png') });
			return '"' + text + '"';
		});

		await check('server restarted on the same port: the page reconnects and is live again', async () => {
			await server.start(server.port);
			await waitFor(async () => (await connState(page)) === 'open', 30000, 'did not reconnect');
			outage = false;
			await waitFor(async () => await page.$eval('#banner', (b) => b.hidden), 3000, 'the banner stayed');
			const toast = await waitFor(() => page.$eval('#toast', (e) => e.textContent), 5000, 'no reconnect notice');
			assert(/resumed|new epoch/.test(toast), 'unexpected notice: ' + toast);
			const before = new Map((await waitFor(async () => {
				const rs = await rows(page);
				return priced(rs).length >= heldRows.length - 2 ? rs : null;
			}, 10000, 'rows did not fill in again')).map((r) => [r.sym, r.last + '|' + r.bid]));
			await waitFor(async () => {
				const rs = await rows(page);
				return rs.filter((r) => before.get(r.sym) !== r.last + '|' + r.bid).length >= 10;
			}, 10000, 'values do not change after reconnecting');
			const c = await chartColours(page);
			assert(c.colours > 8, 'the chart is blank after reconnecting');
			return toast;
		});

		// Through the fault proxy: the same server and epoch after a blip.
		const sent = [];
		const subscribes = () => sent.map((t) => { try { return JSON.parse(t); } catch (e) { return {}; } }).filter((m) => m.op === 'subscribe');
		let pp;
		await check('a dropped connection (same server) resumes with the epoch and held seqs; no value is cleared', async () => {
			await proxy.start();
			pp = await context.newPage();
			watchProblems(pp, problems, { label: 'proxy page' });
			pp.on('websocket', (ws) => {
				ws.on('framesent', (f) => sent.push(String(f.payload)));
				ws.on('framereceived', (f) => { if (String(f.payload).includes('"from":1000000000000,')) sent.push('[received the gap]'); });
			});
			await pp.goto(proxy.url, { waitUntil: 'load' });
			await waitFor(async () => priced(await rows(pp)).length >= 45, 15000, 'rows did not fill in through the proxy');
			const epoch = await pp.$eval('#st-epoch', (e) => e.textContent);
			// Watch for any price that was shown going blank from here on.
			await watchBlanks(pp);
			sent.length = 0;
			proxy.dropAll();
			await waitFor(async () => /resumed/.test(await pp.$eval('#toast', (e) => e.textContent)), 15000, 'no "resumed" notice after the blip');
			const sub = subscribes().find((m) => m.resume);
			assert(sub, 'no subscribe with resume was sent: ' + sent.slice(0, 3).join(' '));
			assert(sub.resume.epoch === epoch, 'resume names epoch ' + sub.resume.epoch + ', the page showed ' + epoch);
			const held = Object.keys(sub.resume.seq);
			assert(held.length >= 45 && held.every((k) => /^\d+$/.test(String(sub.resume.seq[k]))), 'resume holds ' + held.length + ' seqs');
			const toast = await pp.$eval('#toast', (e) => e.textContent);
			await sleep(500);
			const blanked = await pp.evaluate(() => window.blanked);
			assert(blanked.length === 0, 'prices went blank for ' + blanked.join(', ') + ': redrawn from scratch');
			const before = new Map((await rows(pp)).map((r) => [r.sym, r.last + '|' + r.bid]));
			await waitFor(async () => (await rows(pp)).filter((r) => before.get(r.sym) !== r.last + '|' + r.bid).length >= 10, 10000, 'not live after resuming');
			return toast + ' ' + held.length + ' seqs sent';
		});

		await check('a delta whose "from" is not the held seq makes the page resubscribe that symbol with resume', async () => {
			const r0 = (await rows(pp))[0];
			sent.length = 0;
			// Ticks 1e12-1 and earlier "missing": `from` is ahead of any held seq.
			const streams = proxy.streams('ws');
			proxy.inject(JSON.stringify({ type: 'delta', symbol: r0.sym, from: 1e12, seq: 1e12 + 1, ts: Date.now() * 1000, last: 0.01, bid: 0.01 }));
			assert(streams === 1, 'the proxy carries ' + streams + ' WebSocket streams, expected 1');
			const sub = await waitFor(() => subscribes().find((m) => m.symbols && m.symbols.includes(r0.sym) && m.resume), 5000,
				'no resubscribe after the gap (sent: ' + sent.slice(0, 5).join(' ') + ')').catch(async (e) => {
				throw new Error(e.message + ' sent after: ' + sent.slice(0, 5).join(' ') + ' row: ' + JSON.stringify((await rows(pp))[0]));
			});
			assert(sub.symbols.length === 1, 'resubscribed ' + sub.symbols.length + ' symbols, expected only ' + r0.sym);
			assert(/^\d+$/.test(String(sub.resume.seq[r0.sym])), 'resume has no seq for ' + r0.sym);
			const now = (await rows(pp))[0];
			assert(now.last !== '0.01' && now.bid !== '0.01', 'the gapped delta was applied');
			const before = now.last + '|' + now.bid;
			await waitFor(async () => { const r = (await rows(pp))[0]; return r.last + '|' + r.bid !== before; }, 10000, r0.sym + ' stopped updating after the resubscribe');
			await pp.close();
			return r0.sym + ' resubscribed from seq ' + sub.resume.seq[r0.sym];
		});



		await check('a replay feed shows replay controls: pause, resume, speed and seek work', async () => {
			await replayServer.start(0);
			const rp = await context.newPage();
			watchProblems(rp, problems, { label: 'replay page' });
			const states = [];
			rp.on('websocket', (ws) => ws.on('framereceived', (f) => {
				const t = String(f.payload);
				if (t.includes('"type":"replay"')) states.push(JSON.parse(t));
			}));
			await rp.goto(replayServer.url, { waitUntil: 'load' });
			await waitFor(() => rp.$eval('#replay', (e) => !e.hidden), 10000, 'replay controls stay hidden');
			const quote = async () => (await rows(rp)).find((r) => r.sym === 'USDTHB');
			await waitFor(async () => { const r = await quote(); return r && PRICE.test(r.bid) && PRICE.test(r.ask); }, 10000, 'no USDTHB quote');
			const text = (sel) => rp.$eval(sel, (e) => e.textContent);
			await waitFor(async () => (await text('#replay-state')) === 'playing', 5000, 'not shown as playing');

			await rp.click('#replay-toggle');
			await waitFor(async () => (await text('#replay-state')) === 'paused', 5000, 'pause not shown');
			await sleep(300);
			const held = [(await quote()).bid, await text('#replay-pos')];
			await sleep(1500);
			const still = [(await quote()).bid, await text('#replay-pos')];
			assert(held.join() === still.join(), 'the replay moved while paused: ' + held + ' -> ' + still);

			await rp.click('#replay-toggle');
			await waitFor(async () => (await text('#replay-state')) === 'playing', 5000, 'resume not shown');
			await waitFor(async () => (await text('#replay-pos')) !== held[1], 5000, 'the position does not move after resume');

			await rp.fill('#replay-ts', '1997-06-20T00:00:00Z');
			await rp.press('#replay-ts', 'Enter');
			await waitFor(async () => (await text('#replay-pos')) >= '1997-06-20', 5000, 'seek to 1997-06-20 not reached (at ' + await text('#replay-pos') + ')');

			await rp.selectOption('#replay-speed', '600');
			await waitFor(() => states.some((m) => String(m.speed) === '600'), 5000, 'the server did not confirm speed 600');
			assert(await rp.$eval('#replay-speed', (e) => e.value) === '600', 'the speed control did not keep 600');

			await waitFor(async () => (await chartColours(rp)).colours > 8, 10000, 'no mid-price chart for a quote-only symbol');
			const note = await text('#chart-note');
			assert(/mid price/i.test(note), 'no mid-price note: ' + note);
			await rp.screenshot({ path: path.join(ARTIFACTS, 'dashboard-replay.png') });
			await rp.close();
			await replayServer.stop();
			return 'USDTHB 1997, at ' + still[1] + ' when paused';
		});

		// The issue this guards: seeking back stored the file again (an
		// export held each row up to five times) and the chart went on
		// showing prices from after the replay position.
		await check('seeking a replay back and forth from the page: the store equals the file, the chart ends at the position', async () => {
			const fileRows = fs.readFileSync(USDTHB_FILE, 'utf8').trim().split('\n').slice(1).map((l) => {
				const [ts, , bid, ask] = l.split(',');
				return { ts: Number(ts), bid, ask };
			});
			await seekServer.start(0);
			const sp = await context.newPage();
			watchProblems(sp, problems, { label: 'seek page' });
			const frames = []; // [connection number, text]
			let conns = 0;
			sp.on('websocket', (ws) => {
				const n = ++conns;
				ws.on('framereceived', (f) => frames.push([n, String(f.payload)]));
			});
			const objects = (pred) => frames.flatMap(([n, t]) => {
				if (!pred(t)) return [];
				const o = JSON.parse(t);
				return (Array.isArray(o) ? o : [o]).map((m) => ({ n, m }));
			});
			const epochs = () => [...new Set(objects((t) => t.includes('"hello"')).map(({ m }) => m.epoch))];
			const lastState = () => {
				const s = objects((t) => t.includes('"type":"replay"'));
				return s.length ? s[s.length - 1].m : null;
			};
			const text = (sel) => sp.$eval(sel, (e) => e.textContent);
			const quote = async () => (await rows(sp)).find((r) => r.sym === 'USDTHB');
			// Stands paused at `ts`, as the server says.
			const standsAt = (ts) => waitFor(() => {
				const m = lastState();
				return m && m.state === 'paused' && Number(m.position) === ts;
			}, 10000, 'the replay does not stand paused at ' + ts + ' (last state ' + JSON.stringify(lastState()) + ')');
			const viaBox = async (iso) => {
				await sp.fill('#replay-ts', iso);
				await sp.press('#replay-ts', 'Enter');
				return Date.parse(iso) * 1000;
			};
			const viaSlider = async (value) => {
				const m = lastState();
				await sp.$eval('#replay-slider', (el, v) => {
					el.value = String(v);
					el.dispatchEvent(new Event('input', { bubbles: true }));
					el.dispatchEvent(new Event('change', { bubbles: true }));
				}, value);
				return Math.round(Number(m.start) + (value / 1000) * (Number(m.end) - Number(m.start)));
			};

			await sp.goto(seekServer.url, { waitUntil: 'load' });
			await waitFor(() => sp.$eval('#replay', (e) => !e.hidden), 10000, 'replay controls stay hidden');
			await waitFor(async () => { const r = await quote(); return r && PRICE.test(r.bid); }, 10000, 'no USDTHB quote');
			await sp.click('#replay-toggle');
			await waitFor(async () => (await text('#replay-state')) === 'paused', 5000, 'pause not shown');

			let backs = 0, last = 0;
			const seek = async (how, arg) => {
				await waitFor(() => lastState() && lastState().position, 5000, 'no replay position');
				const before = Number(lastState().position), had = epochs().length;
				last = await (how === 'box' ? viaBox(arg) : viaSlider(arg));
				if (last < before) {
					backs++;
					await waitFor(() => epochs().length === had + 1, 10000, 'no new epoch after the seek back to ' + arg);
				}
				await standsAt(last);
			};
			await seek('box', '1997-06-20T00:00:00Z');
			await seek('box', '1997-06-05T00:00:00Z');
			await seek('slider', 800);
			await seek('slider', 400);
			await sp.click('#replay-toggle');
			await waitFor(async () => (await text('#replay-state')) === 'playing', 5000, 'resume not shown');
			await sleep(1000);
			await sp.click('#replay-toggle');
			await waitFor(() => lastState() && lastState().state === 'paused', 5000, 'pause not confirmed');
			await seek('box', '1997-06-10T12:00:00Z');
			assert(backs === 3, backs + ' of the 3 seeks back were seen as such');

			// Paused at the target: the quote is the file's at that time, the
			// chart's last bar ends there, and nothing the page was sent
			// after the reconnect lies after it.
			const cut = fileRows.findIndex((r) => r.ts >= last);
			const at = fileRows[cut - 1];
			// The file's text, padded with zeros to the most decimals the
			// symbol has shown ("24.1" is shown "24.10" next to "24.82").
			const padded = (shown, text) => {
				const t = text.includes('.') ? text : text + '.';
				return shown === text || (shown.startsWith(t) && /^0+$/.test(shown.slice(t.length)));
			};
			await waitFor(async () => { const r = await quote(); return r && padded(r.bid, at.bid) && padded(r.ask, at.ask); }, 10000,
				'the quote is not the file\'s at the target (' + at.bid + '/' + at.ask + ')');
			// The chart reloads on the new epoch: its history (bars of
			// trades: none; then the ticks it draws the mid price from)
			// ends before the position, and so does its last bar.
			const lastConn = Math.max(...objects((t) => t.includes('"hello"')).map(({ n }) => n));
			const hist = () => objects((t) => t.includes('"type":"history"')).filter(({ n }) => n === lastConn).map(({ m }) => m);
			await waitFor(() => hist().some((h) => h.ticks), 10000, 'the chart asked for no history ticks after the last seek');
			for (const h of hist()) {
				const late = (h.ticks || []).filter((t) => Number(t.ts) >= last).concat((h.bars || []).filter((b) => Number(b.t) > last));
				assert(late.length === 0, 'history after the seek holds rows after the position: ' + JSON.stringify(late[0]));
			}
			await waitFor(async () => (await chartColours(sp)).colours > 8, 10000, 'no chart after the seeks');
			const mid = (Number(at.bid) + Number(at.ask)) / 2;
			const legend = () => sp.$eval('#legend', (el) => (el.hidden ? null : [...el.querySelectorAll('.lg-v')].map((e) => e.textContent)));
			await waitFor(async () => {
				const c = await legend();
				// Shown to the quote's decimals: within half of the last.
				const dec = c && c.length >= 4 ? (c[3].split('.')[1] || '').length : 0;
				return c && c.length >= 4 && Math.abs(Number(c[3]) - mid) <= 0.5 * 10 ** -dec + 1e-9;
			}, 10000, 'the chart\'s last price is not the mid at the target (' + mid + '): ' + JSON.stringify(await legend()));
			const upd = objects((t) => /"type":"(snapshot|delta)"/.test(t)).filter(({ n }) => n === lastConn);
			assert(upd.every(({ m }) => Number(m.ts) < last), 'an update after the position: ' + JSON.stringify(upd.find(({ m }) => Number(m.ts) >= last)));

			// To the end: the store is the file, each row once, decimals as written.
			await sp.selectOption('#replay-speed', 'max');
			await sp.click('#replay-toggle');
			await waitFor(async () => (await text('#replay-state')) === 'finished', 20000, 'the replay did not finish');
			// "finished" is the feed's word: the store commits what it
			// was handed within 50 ms. Read until two exports agree.
			const exportRows = async () => (await (await fetch(seekServer.url + 'api/export?symbol=USDTHB&format=csv')).text())
				.trim().split('\n').slice(1).map((l) => {
					const [ts, , bid, ask] = l.split(',');
					return { ts: Number(ts), bid, ask };
				});
			let exported = await exportRows();
			await waitFor(async () => {
				await sleep(300);
				const again = await exportRows();
				const same = again.length === exported.length;
				exported = again;
				return same;
			}, 10000, 'the export kept changing after the replay finished');
			const same = exported.length === fileRows.length && exported.every((r, i) => r.ts === fileRows[i].ts && r.bid === fileRows[i].bid && r.ask === fileRows[i].ask);
			const i = exported.findIndex((r, k) => !fileRows[k] || r.ts !== fileRows[k].ts || r.bid !== fileRows[k].bid || r.ask !== fileRows[k].ask);
			assert(same, 'the export has ' + exported.length + ' rows for a file of ' + fileRows.length + '; first difference at row ' + i +
				': ' + JSON.stringify(exported[i]) + ' vs ' + JSON.stringify(fileRows[i]));
			assert(epochs().length === backs + 1, epochs().length + ' epochs for ' + backs + ' seeks back');
			await sp.screenshot({ path: path.join(ARTIFACTS, 'dashboard-replay-seek.png') });
			await sp.close();
			await seekServer.stop();
			return fileRows.length + ' rows stored once after 5 seeks (3 back), ' + epochs().length + ' epochs';
		});

		// 500 symbols at thousands of ticks per second.
		await check('under load (500 symbols, 5,000 ticks/s) the page stays responsive', async () => {
			await loadServer.start(0);
			// One page at a time: two busy renderers would measure each other.
			for (const p of context.pages()) await p.close();
			const lp = await context.newPage();
			watchProblems(lp, problems, { label: 'load page' });
			await lp.goto(loadServer.url, { waitUntil: 'load' });
			await waitFor(async () => (await rows(lp)).length === 50, 10000, 'no first-visit rows');
			// Watch every symbol the server has, as a user who added them all.
			await lp.evaluate(() => new Promise((resolve, reject) => {
				const ws = new WebSocket('ws://' + location.host + '/ws');
				ws.onopen = () => ws.send('{"op":"symbols","id":1}');
				ws.onmessage = (e) => {
					const m = JSON.parse(e.data);
					if (m.type !== 'symbols') return;
					localStorage.setItem('publisher.watchlist', JSON.stringify(m.symbols.map((s) => s.symbol)));
					ws.close();
					resolve();
				};
				ws.onerror = reject;
			}));
			await lp.reload({ waitUntil: 'load' });
			await waitFor(async () => priced(await rows(lp)).length >= 490, 20000, 'fewer than 490 of 500 rows priced');
			const m = await lp.evaluate(() => new Promise((resolve) => {
				let frames = 0, longest = 0, longTasks = 0;
				const po = new PerformanceObserver((l) => {
					for (const e of l.getEntries()) { longTasks++; longest = Math.max(longest, e.duration); }
				});
				po.observe({ type: 'longtask' });
				const t0 = performance.now();
				const tick = () => {
					frames++;
					if (performance.now() - t0 < 3000) requestAnimationFrame(tick);
					else {
						po.disconnect();
						resolve({
							fps: frames / ((performance.now() - t0) / 1000),
							longest, longTasks,
							rate: Number(document.getElementById('st-rate').textContent.replace(/,/g, '')),
						});
					}
				};
				requestAnimationFrame(tick);
			}));
			// A click during the load is answered promptly: the Event Timing
			// API measures from the input to the next paint after its handler.
			await lp.evaluate(() => {
				window.inputs = [];
				new PerformanceObserver((l) => { for (const e of l.getEntries()) window.inputs.push(e.duration); })
					.observe({ type: 'event', durationThreshold: 16, buffered: true });
			});
			const box = await lp.locator('[data-key="last"] button').boundingBox();
			await lp.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
			await waitFor(() => lp.$eval('[data-key="last"]', (e) => e.getAttribute('aria-sort') === 'ascending'), 5000, 'the sort click had no effect');
			await sleep(500);
			const inputMs = await lp.evaluate(() => Math.max(0, ...window.inputs));
			await lp.screenshot({ path: path.join(ARTIFACTS, 'dashboard-load.png') });
			await lp.close();
			assert(m.rate >= 1000, 'only ' + m.rate + ' updates/s reached the page');
			// Generous floors: this is about a page that is not frozen, not a
			// benchmark (figures depend on the machine; headless Chromium here
			// rasterises in software).
			assert(m.fps >= 5, 'only ' + m.fps.toFixed(1) + ' frames/s');
			assert(inputMs < 1000, 'a click took ' + Math.round(inputMs) + ' ms to paint');
			return `${m.rate} updates/s, ${m.fps.toFixed(0)} frames/s, ${m.longTasks} long tasks (longest ${Math.round(m.longest)} ms), click to paint ${Math.round(inputMs)} ms`;
		});

		await check('no console errors, page errors or CSP violations during the whole run', async () => {
			assert(problems.length === 0, problems.slice(0, 5).join(' | '));
		});
	} finally {
		if (context) await context.close().catch(() => {});
		proxy.close();
		await server.stop().catch(() => {});
		await loadServer.stop().catch(() => {});
		await replayServer.stop().catch(() => {});
		await seekServer.stop().catch(() => {});
		fs.rmSync(tmp, { recursive: true, force: true });
	}
}

await run(main);

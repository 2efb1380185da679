// Browser test of the dashboard's layouts, its time & sales tape, its price
// alerts and its CSV download: the real publisher binary, the page in real
// headless Chromium.
//
//   PUBLISHER_BIN=build/publisher node tests/browser/screens.mjs
//
// Layouts: at 1366x768, 768x1024 and 390x844, live (the synthetic feed) and
// with the replay controls shown (tests/data/usdthb-1997.csv): the page and
// no panel is wider than the window; no text is cut off by its box (the
// watchlist's cells and headers, the quote, the details, the tape, the
// status bar); no two controls or quote figures overlap; and every control,
// scrolled into view, is the element at its own centre (so nothing covers
// it). A screenshot of each goes to tests/artifacts/ (git-ignored).
//
// The tape, the alerts and the CSV use feeds the test controls: ticks sent
// over the tcp feed, so each row and each crossing is known; the replay of
// the USD/THB file, played to its end, so each exported row is the file's.
//
// Prints one line per check and ends with "N passed, N failed"; exits 1
// when anything failed. Deadlines are generous; the times it took are
// printed.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, ARTIFACTS, waitFor, sleep, freePort, Server, tcpFeed } from '../support/server.mjs';
import { check, assert, run, launch, watchProblems } from './harness.mjs';

const LIVE_FEED = 'synthetic:symbols=40,rate=400,seed=5';
const USDTHB_FILE = path.join(ROOT, 'tests/data/usdthb-1997.csv');
const REPLAY_FEED = 'replay:' + USDTHB_FILE + ',speed=max';
const LAYOUTS = [
	{ name: 'desktop', width: 1366, height: 768 },
	{ name: 'tablet', width: 768, height: 1024 },
	{ name: 'phone', width: 390, height: 844 },
];
// Every text the page must show whole: what it holds is cut off otherwise.
const TEXTS = [
	'.wl-head .sort', '.wl-row > div', '#q-symbol', '#q-last', '#q-chg', '.detail dt', '.detail dd',
	'.tape > li > span', '.tape-cols > span', '.al-sym', '.al-state', '.alert-for', '.pane-head h2',
	'.statusbar .st', '#st-conn', '.replay-pos', '.replay-state', '.tag', '.legend span', '.chart-note',
];
// Things that must not lie over each other (besides the controls).
const FIGURES = ['#q-symbol', '#q-last', '#q-chg', '.replay-pos', '.replay-state', '.tag', '.pane-head h2', '.brand'];

/* Runs in the page: what is wrong with the layout as it stands. */
function layoutProblems({ texts, figures }) {
	const out = [];
	const vw = document.documentElement.clientWidth;
	const name = (el) => el.id ? '#' + el.id : el.tagName.toLowerCase() + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '') +
		(el.textContent.trim() ? ' "' + el.textContent.trim().slice(0, 24) + '"' : '');
	const shown = (el) => {
		const r = el.getBoundingClientRect();
		return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden' && !el.closest('.visually-hidden');
	};
	if (document.documentElement.scrollWidth > vw) out.push('the page is ' + document.documentElement.scrollWidth + ' px wide in a window of ' + vw);
	for (const el of document.querySelectorAll('.pane, .topbar, .statusbar, .replay, .chart-head, .watch-scroll, .tape-scroll, .alerts-scroll, .detail')) {
		if (!shown(el)) continue;
		if (el.scrollWidth > el.clientWidth + 1) out.push(name(el) + ' overflows sideways: ' + el.scrollWidth + ' px of content in ' + el.clientWidth);
		const r = el.getBoundingClientRect();
		if (r.left < -0.5 || r.right > vw + 0.5) out.push(name(el) + ' lies outside the window: ' + Math.round(r.left) + '..' + Math.round(r.right));
	}
	// Text wider than its box is cut off (or runs into its neighbour).
	const range = document.createRange();
	const scroller = document.getElementById('watch-scroll');
	const sr = scroller.getBoundingClientRect();
	for (const el of document.querySelectorAll(texts.join(','))) {
		if (!shown(el) || !el.textContent.trim()) continue;
		// Watchlist rows scrolled out of view are not drawn: skip them.
		if (scroller.contains(el)) {
			const r = el.getBoundingClientRect();
			if (r.bottom < sr.top || r.top > sr.bottom) continue;
		}
		range.selectNodeContents(el);
		const t = range.getBoundingClientRect(), b = el.getBoundingClientRect();
		const cs = getComputedStyle(el);
		const left = b.left + parseFloat(cs.paddingLeft) * 0 - 0.5, right = b.right + 0.5;
		if (t.width && (t.left < left || t.right > right)) out.push('cut off: ' + name(el) + ' needs ' + Math.ceil(t.width) + ' px, has ' + Math.floor(b.width));
	}
	// No two controls or figures overlap.
	const items = [...document.querySelectorAll('button, input, select, a[href], ' + figures.join(','))].filter(shown)
		.filter((el) => !el.closest('.wl-row, .tape, .alerts')); // rows are checked as text
	for (let i = 0; i < items.length; i++) {
		for (let j = i + 1; j < items.length; j++) {
			const a = items[i], b = items[j];
			if (a.contains(b) || b.contains(a)) continue;
			const p = a.getBoundingClientRect(), q = b.getBoundingClientRect();
			const w = Math.min(p.right, q.right) - Math.max(p.left, q.left), h = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
			if (w > 1 && h > 1) out.push(name(a) + ' overlaps ' + name(b));
		}
	}
	return out;
}

/* Runs in the page: each control that is shown, scrolled into view, must be
 * the element at its own centre. Returns what is covered or out of reach. */
async function coveredControls() {
	const out = [];
	let n = 0;
	const controls = [...document.querySelectorAll('button, input, select, a[href]')].filter((el) => {
		const r = el.getBoundingClientRect();
		return r.width > 0 && r.height > 0 && !el.closest('.visually-hidden') && !el.disabled;
	});
	for (const el of controls) {
		el.scrollIntoView({ block: 'center', inline: 'center' });
		await new Promise((r) => requestAnimationFrame(() => r()));
		const r = el.getBoundingClientRect();
		const x = r.left + r.width / 2, y = r.top + r.height / 2;
		n++;
		if (x < 0 || y < 0 || x > innerWidth || y > innerHeight) {
			out.push((el.id || el.textContent.trim() || el.getAttribute('aria-label')) + ' cannot be scrolled into the window');
			continue;
		}
		const hit = document.elementFromPoint(x, y);
		if (hit !== el && !el.contains(hit)) {
			out.push((el.id || el.getAttribute('aria-label') || el.textContent.trim()) + ' is covered by ' +
				(hit ? (hit.id || hit.className || hit.tagName) : 'nothing'));
		}
	}
	window.scrollTo(0, 0);
	return { n, out };
}

/** The tape's rows as shown: { seq, time, price, size, cls }. */
function tapeRows(page) {
	return page.$$eval('#tape > li', (lis) => lis.map((li) => ({
		seq: li.dataset.seq,
		time: li.children[0].textContent,
		price: li.children[1].textContent,
		size: li.children[2].firstChild ? li.children[2].firstChild.textContent : '',
		cls: li.className,
	})));
}

/* "HH:MM:SS.mmm" of a protocol time, seconds and milliseconds only: they
 * are the same in every time zone the page may show. */
const secMs = (us) => new Date(Number(us) / 1000).toISOString().slice(17, 23);

async function main() {
	const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'publisher-screens-'));
	const dirs = {};
	for (const d of ['live', 'replay', 'tcp', 'profile']) fs.mkdirSync((dirs[d] = path.join(tmp, d)));
	const tcpPort = await freePort();
	const live = new Server(dirs.live, { feed: LIVE_FEED, name: 'screens-live' });
	const replay = new Server(dirs.replay, { feed: REPLAY_FEED, name: 'screens-replay' });
	const tcp = new Server(dirs.tcp, { feed: 'tcp:127.0.0.1:' + tcpPort, name: 'screens-tcp' });
	const problems = [];
	let context;
	try {
		await Promise.all([live.start(), replay.start(), tcp.start()]);
		context = await launch(dirs.profile);
		// Notifications as a browser that the user lets notify: the page
		// asks on the button's press, and each one is written down.
		await context.addInitScript(() => {
			window.notes = [];
			window.permissionAsks = 0;
			// A permission given is kept across reloads, as a browser keeps it.
			window.Notification = class {
				static get permission() { return localStorage.getItem('test.notify') || 'default'; }
				static requestPermission() {
					window.permissionAsks++;
					localStorage.setItem('test.notify', 'granted');
					return Promise.resolve('granted');
				}
				constructor(title, opts) { window.notes.push({ title, body: opts && opts.body }); }
			};
		});
		const page = context.pages()[0] || await context.newPage();
		watchProblems(page, problems);

		/* ---- layouts -------------------------------------------------------- */

		for (const [which, server] of [['live', live], ['replay', replay]]) {
			for (const L of LAYOUTS) {
				await check(`${which} at ${L.width}x${L.height}: nothing wider than the window, nothing cut off or overlapping, every control reachable`, async () => {
					await page.setViewportSize({ width: L.width, height: L.height });
					await page.goto(server.url, { waitUntil: 'load' });
					await waitFor(() => page.$eval('#st-conn', (e) => e.dataset.state === 'open'), 10000, 'never connected');
					if (which === 'replay') await waitFor(() => page.$eval('#replay', (e) => !e.hidden), 10000, 'no replay controls');
					await waitFor(() => page.$$eval('#watchlist .wl-row', (r) => r.length > 0), 10000, 'no watchlist rows');
					await waitFor(() => page.$eval('#q-last', (e) => /\d/.test(e.textContent)), 10000, 'no quote of the selected symbol');
					// The live page: tape rows too, so their widths are checked.
					if (which === 'live') await waitFor(async () => (await tapeRows(page)).length > 3, 10000, 'no tape rows');
					await sleep(800);
					await page.screenshot({ path: path.join(ARTIFACTS, `screens-${which}-${L.width}x${L.height}.png`), fullPage: true });
					const bad = await page.evaluate(layoutProblems, { texts: TEXTS, figures: FIGURES });
					const reach = await page.evaluate(coveredControls);
					assert(!bad.length, bad.slice(0, 6).join('; ') + (bad.length > 6 ? ' (' + bad.length + ' in all)' : ''));
					assert(!reach.out.length, reach.out.slice(0, 6).join('; '));
					assert(reach.n >= 15, 'only ' + reach.n + ' controls found');
					const w = await page.evaluate(() => document.documentElement.scrollWidth);
					return `page ${w} px wide, ${reach.n} controls hit-tested`;
				});
			}
		}

		/* ---- the tape ------------------------------------------------------- */

		await page.setViewportSize({ width: 1366, height: 768 });
		const feed = await tcpFeed(tcpPort);
		const t0 = Date.now() * 1000;
		let ts = t0 - 60_000_000;
		const trade = (sym, last, size, extra = {}) => {
			ts += 250_000;
			const t = { ts, symbol: sym, last, last_size: size, ...extra };
			feed.send(t);
			return t;
		};
		// Known history: five trades, with quotes between them.
		const seeded = [];
		for (const [p, s] of [['100.00', 100], ['100.25', 200], ['100.25', 300], ['100.10', 400], ['100.50', 500]]) {
			feed.send({ ts: (ts += 100_000), symbol: 'TAPE', bid: Number(p) - 0.05, ask: Number(p) + 0.05 });
			seeded.push(trade('TAPE', p, s));
		}
		// A second symbol, so the watchlist has more than the one row.
		feed.send({ ts: (ts += 1000), symbol: 'OTHER', last: '55.5', last_size: 10 });

		await check('the tape is seeded from history: trades only, newest first, price, size, time and tick direction', async () => {
			await page.goto(tcp.url, { waitUntil: 'load' });
			await page.evaluate(() => {
				localStorage.setItem('publisher.watchlist', JSON.stringify(['TAPE', 'OTHER']));
				localStorage.setItem('publisher.selected', JSON.stringify('TAPE'));
			});
			await page.reload({ waitUntil: 'load' });
			await waitFor(() => page.$eval('#q-symbol', (e) => e.textContent === 'TAPE'), 10000, 'TAPE not selected');
			const rows = await waitFor(async () => { const r = await tapeRows(page); return r.length === 5 ? r : null; }, 10000,
				'the tape does not show the 5 stored trades');
			const want = seeded.slice().reverse();
			rows.forEach((r, i) => {
				assert(r.price === want[i].last, `row ${i}: price ${r.price}, want ${want[i].last}`);
				assert(r.size === String(want[i].last_size), `row ${i}: size ${r.size}, want ${want[i].last_size}`);
				assert(r.time.slice(-6) === secMs(want[i].ts), `row ${i}: time ${r.time}, want seconds ${secMs(want[i].ts)}`);
			});
			// 100.00, 100.25 up, 100.25 zero (up), 100.10 down, 100.50 up.
			const dirs = rows.map((r) => r.cls.split(' ').filter((c) => c.startsWith('tp-') && c !== 'tp-newest').join(' ')).reverse();
			assert(dirs.join('|') === '|tp-up|tp-up tp-zero|tp-down|tp-up', 'directions ' + dirs.join('|'));
			return rows.map((r) => r.price).join(' ');
		});

		await check('tape rows arrive live with their direction; quotes add none', async () => {
			const sent = [];
			for (const [p, s] of [['100.75', 10], ['100.75', 20], ['100.40', 1200]]) {
				sent.push(trade('TAPE', p, s));
				// A quote: no row. Apart from the trade, so that no update
				// merges the two (the row's time would be the quote's).
				await sleep(200);
				feed.send({ ts: (ts += 1000), symbol: 'TAPE', bid: Number(p) - 0.1 });
				await sleep(200);
			}
			const t1 = Date.now();
			const rows = await waitFor(async () => { const r = await tapeRows(page); return r.length === 8 ? r : null; }, 10000,
				'8 rows expected after 3 live trades (5 + 3)');
			const top = rows.slice(0, 3).reverse();
			top.forEach((r, i) => {
				assert(r.price === sent[i].last && r.size === (sent[i].last_size >= 1000 ? '1,200' : String(sent[i].last_size)),
					`live row ${i}: ${r.price} ${r.size}`);
				assert(r.seq && r.time.slice(-6) === secMs(sent[i].ts), `live row ${i}: time ${r.time}`);
			});
			assert(top.map((r) => r.cls.includes('tp-up') ? 'up' : r.cls.includes('tp-down') ? 'down' : '?').join() === 'up,up,down',
				'live directions: ' + top.map((r) => r.cls).join(' | '));
			assert(top[1].cls.includes('tp-zero'), 'the repeated price is not marked a zero tick');
			return 'last 3 rows: ' + top.map((r) => r.price + ' ' + r.size).join(', ') + ` (shown ${Date.now() - t1} ms after the last was found)`;
		});

		await check('a long tape scrolls; a reader scrolled down keeps the rows he reads while trades come', async () => {
			// Apart, so that no update merges them (it would be one row).
			for (let i = 0; i < 60; i++) {
				trade('TAPE', (100 + (i % 7) / 100).toFixed(2), i + 1);
				await sleep(40);
			}
			await waitFor(() => page.$eval('#tape > li', (li) => li.children[2].firstChild.textContent === '60'), 10000, 'the 60th trade is not on top');
			// Only the rows in view are elements; the list has the height of all.
			const { shown, height } = await page.$eval('#tape', (ol) => ({ shown: ol.children.length, height: ol.getBoundingClientRect().height }));
			const total = Math.round(height / 21);
			assert(total >= 40 && shown < total, `${shown} row elements for a list ${height} px high`);
			await page.$eval('#tape-scroll', (sc) => { sc.scrollTop = 20 * 21; });
			const firstInView = () => page.$eval('#tape-scroll', (sc) => {
				const top = sc.getBoundingClientRect().top;
				const li = [...sc.querySelectorAll('#tape > li')].find((l) => l.getBoundingClientRect().bottom > top + 1);
				return li ? li.dataset.seq + ' ' + li.children[1].textContent : null;
			});
			const before = await waitFor(firstInView, 5000, 'no row in view after scrolling');
			trade('TAPE', '100.99', 1);
			await sleep(200);
			trade('TAPE', '101.01', 2);
			await waitFor(() => page.$eval('#tape', (ol, h) => ol.getBoundingClientRect().height >= h + 2 * 21, height), 10000, 'the two new trades did not come');
			await sleep(300);
			const after = await firstInView();
			assert(after === before, 'the row in view moved from ' + before + ' to ' + after);
			await page.$eval('#tape-scroll', (sc) => { sc.scrollTop = 0; });
			await waitFor(async () => (await tapeRows(page))[0].price === '101.01', 5000, 'back at the top, the newest is not first');
			return 'row in view ' + before + ' stayed; ' + shown + ' row elements for ' + total + ' trades';
		});

		/* ---- alerts --------------------------------------------------------- */

		await check('an alert fires on a crossing: its line and the watchlist row flash, a notification is raised (asked for on a press only)', async () => {
			assert(await page.evaluate(() => window.permissionAsks) === 0, 'the page asked for notifications on its own');
			await page.click('#alerts-notify');
			await waitFor(() => page.$eval('#alerts-notify', (b) => b.getAttribute('aria-pressed') === 'true'), 5000, 'Notify not on');
			assert(await page.evaluate(() => window.permissionAsks) === 1, 'permission asked ' + await page.evaluate(() => window.permissionAsks) + ' times');
			// Record every flash of the TAPE row.
			await page.evaluate(() => {
				window.flashes = [];
				new MutationObserver((ms) => {
					for (const m of ms) if (m.target.classList.contains('alert-hit')) window.flashes.push(m.target.dataset.symbol || m.target.dataset.id);
				}).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['class'] });
			});
			await page.selectOption('#alert-kind', 'above');
			await page.fill('#alert-value', '101.00');
			await page.click('#alert-form button[type=submit]');
			await waitFor(() => page.$$eval('#alerts > li', (l) => l.length === 1), 5000, 'the alert is not listed');
			trade('TAPE', '100.90', 5);
			await sleep(600);
			let state = await page.$eval('#alerts > li .al-state', (e) => e.textContent);
			assert(state === 'armed', 'fired before the crossing: ' + state);
			assert(await page.evaluate(() => window.notes.length) === 0, 'a notification before the crossing');
			trade('TAPE', '101.05', 7);
			state = await waitFor(async () => {
				const s = await page.$eval('#alerts > li .al-state', (e) => e.textContent);
				return s.startsWith('fired') ? s : null;
			}, 10000, 'the alert did not fire on 100.90 -> 101.05');
			assert(/ at 101\.05$/.test(state), 'fired state: ' + state);
			const flashes = await waitFor(() => page.evaluate(() => window.flashes.length >= 2 && window.flashes), 5000, 'no flash');
			assert(flashes.includes('TAPE'), 'the watchlist row did not flash: ' + JSON.stringify(flashes));
			const notes = await page.evaluate(() => window.notes);
			assert(notes.length === 1 && /TAPE above 101\.00/.test(notes[0].title) && /101\.05/.test(notes[0].body),
				'notifications: ' + JSON.stringify(notes));
			// Once: a second crossing raises nothing.
			trade('TAPE', '100.80', 1);
			trade('TAPE', '101.20', 1);
			await sleep(800);
			assert(await page.evaluate(() => window.notes.length) === 1, 'fired again');
			return state + '; notification "' + notes[0].title + '"';
		});

		await check('alerts are kept across a reload, and a move alert fires either way', async () => {
			await page.reload({ waitUntil: 'load' });
			await waitFor(() => page.$$eval('#alerts > li', (l) => l.length === 1), 5000, 'the alert was not kept');
			assert((await page.$eval('#alerts > li', (li) => li.className)) === 'fired', 'not kept as fired');
			assert(await page.$eval('#alerts-notify', (b) => b.getAttribute('aria-pressed')) === 'true', 'Notify not kept');
			await waitFor(() => page.$eval('#alert-for', (e) => /101\.20/.test(e.textContent)), 10000, 'the price now is not shown');
			await page.selectOption('#alert-kind', 'move');
			await page.fill('#alert-value', '1');
			await page.press('#alert-value', 'Enter');
			await waitFor(() => page.$$eval('#alerts > li', (l) => l.length === 2), 5000, 'the move alert is not listed');
			trade('TAPE', '100.50', 1); // -0.69 %
			await sleep(500);
			assert(await page.evaluate(() => window.notes.length) === 0, 'a 0.69 % move fired a 1 % alert');
			trade('TAPE', '100.18', 1); // -1.01 %
			await waitFor(() => page.evaluate(() => window.notes.length === 1), 10000, 'a 1.01 % move down did not fire');
			const title = await page.evaluate(() => window.notes[0].title);
			return '"' + title + '"';
		});
		feed.close();

		/* ---- CSV ------------------------------------------------------------ */

		await check('the CSV button downloads the chart\'s range from /api/export, named SYMBOL-FROM-TO.csv, rows as in the file', async () => {
			const fileRows = fs.readFileSync(USDTHB_FILE, 'utf8').trim().split('\n');
			await page.goto(replay.url, { waitUntil: 'load' });
			await waitFor(() => page.$eval('#replay-state', (e) => e.textContent === 'finished'), 30000, 'the replay did not finish');
			await page.reload({ waitUntil: 'load' }); // the chart's history now holds the whole file
			await waitFor(() => page.$eval('#q-symbol', (e) => e.textContent === 'USDTHB'), 10000, 'USDTHB not selected');
			await waitFor(() => page.$eval('#legend', (e) => !e.hidden && /\d/.test(e.textContent)), 10000, 'no chart');
			await waitFor(() => page.$eval('#csv-download', (b) => !b.disabled), 5000, 'the CSV button stays off');
			// The chart may reload once at another interval (a store with few
			// bars): wait until what it shows holds still for a second.
			const shown = () => page.evaluate(() => document.getElementById('legend').textContent +
				document.querySelector('#intervals [aria-pressed=true]')?.dataset.interval);
			let before = await shown();
			await waitFor(async () => {
				await sleep(1000);
				const now = await shown();
				const same = now === before;
				before = now;
				return same;
			}, 10000, 'the chart kept changing');
			const [download] = await Promise.all([page.waitForEvent('download', { timeout: 15000 }), page.click('#csv-download')]);
			const name = download.suggestedFilename();
			const m = /^USDTHB-(\d{8}T\d{6}Z)-(\d{8}T\d{6}Z)\.csv$/.exec(name);
			assert(m, 'file name ' + name);
			const iso = (s) => Date.parse(s.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z')) * 1000;
			const from = iso(m[1]), to = iso(m[2]);
			// The export has a column for every field; the file only those it uses.
			const text = fs.readFileSync(await download.path(), 'utf8').trim().split('\n').map((l) => l.replace(/,+$/, ''));
			assert(text[0].startsWith(fileRows[0] + ','), 'header ' + text[0]);
			const want = fileRows.slice(1).filter((l) => { const t = Number(l.split(',')[0]); return t >= from && t < to; });
			assert(want.length > 10, name + ': the range holds only ' + want.length + ' rows of the file');
			assert(text.length - 1 === want.length, `${text.length - 1} rows downloaded, the file has ${want.length} in ${m[1]}..${m[2]}`);
			const diff = text.slice(1).findIndex((l, i) => l !== want[i]);
			assert(diff < 0, 'row ' + diff + ': ' + text[diff + 1] + ' vs ' + want[diff]);
			// The range is what the chart shows: it ends with the last bar.
			const lastTs = Number(fileRows[fileRows.length - 1].split(',')[0]);
			assert(to > lastTs && to - lastTs <= 86400e6, 'the range ends at ' + m[2] + ', the last tick is at ' + new Date(lastTs / 1000).toISOString());
			return name + ', ' + want.length + ' rows';
		});

		await check('no console errors, page errors or CSP violations', async () => {
			assert(!problems.length, problems.slice(0, 5).join(' | '));
		});
	} finally {
		if (context) await context.close().catch(() => {});
		for (const s of [live, replay, tcp]) await s.stop().catch(() => {});
		fs.rmSync(tmp, { recursive: true, force: true });
	}
}

await run(main);

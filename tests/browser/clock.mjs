// Browser test of the dashboard's one clock, its replay controls, the
// symbols it takes and the decimals it shows: the real publisher binary,
// the page in real headless Chromium at 1366×768, the browser in New York
// (TZ=America/New_York, so local time is neither UTC nor a symbol's session
// zone).
//
//   PUBLISHER_BIN=build/publisher node tests/browser/clock.mjs
//
// Checks:
// - one time basis: every time on the page (the replay position, "Updated",
//   the status bar clock, the chart's axis and crosshair, through the
//   chart's own formatters since it draws on a canvas) is on the clock of
//   the zone the one label names, for UTC, local (New York) and the
//   selected symbol's session zone (Bangkok, from --session through the
//   symbols reply); switching changes all of them to the same instants; so
//   at 1366×768, 768×1024 and 390×844, the label and those times on screen;
//   and the choice is kept across a reload;
// - the replay clock runs on smoothly at the replay's speed through a gap
//   between ticks, stops where it stands on a pause, never passes the end;
// - the speed selector shows the server's speed (3,000×, not in its list);
//   a seek works from "finished" without picking a speed; restart goes back
//   to the beginning, from playing and from finished;
// - symbols as the server knows them: typed in another case they are taken
//   in the server's, an invalid one is refused with the server's reason, an
//   unknown one is taken in capitals and its chart says "No data yet for
//   ZZZ" (then fills in), and a stored lower-case spelling is corrected;
// - every price of a symbol with the most decimals it has shown.
//
// The shared helpers are ../support/server.mjs's and harness.mjs's.
// Prints one line per check and ends with "N passed, N failed"; exits 1
// when anything failed. Screenshots go to tests/artifacts/ (git-ignored).
// Deadlines are generous; the times it took are printed.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, ARTIFACTS, waitFor, sleep, freePort, Server, tcpFeed } from '../support/server.mjs';
import { check, assert, run, launch, watchProblems } from './harness.mjs';

// The browser's own zone: set before Chromium starts, which inherits it.
process.env.TZ = 'America/New_York';

const USDTHB = path.join(ROOT, 'tests/data/usdthb-1997.csv');
const SESSION = 'USDTHB=Asia/Bangkok@09:00';
const FILE_START = Date.parse('1997-06-01T19:28:00Z') * 1000; // µs, the file's first tick
const FILE_END = Date.parse('1997-06-30T23:44:00Z') * 1000; // and its last
// A gap of eight hours between two ticks: 13:41 to 21:55 UTC on 2 June.
const IN_GAP = '1997-06-02T13:45:00Z';

/* ---- times as the test expects them, from Node's Intl ------------------- */

/** The times (µs) of the file's ticks, in order. */
function fileTimes() {
	return fs.readFileSync(USDTHB, 'utf8').trim().split('\n').slice(1).map((l) => Number(l.split(',')[0]));
}

function parts(ms, zone) {
	const p = {};
	const f = new Intl.DateTimeFormat('en-US', {
		timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
		hour: '2-digit', minute: '2-digit', second: '2-digit',
	});
	for (const x of f.formatToParts(new Date(ms))) p[x.type] = x.value;
	return p;
}

/** "YYYY-MM-DD HH:MM:SS" of instant `ms` in `zone`. */
function dateTime(ms, zone) {
	const p = parts(ms, zone);
	return p.year + '-' + p.month + '-' + p.day + ' ' + p.hour + ':' + p.minute + ':' + p.second;
}

function clock(ms, zone) {
	return dateTime(ms, zone).slice(11);
}

/** The instant of "YYYY-MM-DD HH:MM:SS" on `zone`'s clock (ms). */
function instantOf(text, zone) {
	const wall = Date.parse(text.replace(' ', 'T') + 'Z');
	for (const guess of [wall, wall - 14 * 3600e3, wall + 14 * 3600e3]) {
		let t = guess;
		for (let i = 0; i < 3; i++) t = wall - (Date.parse(dateTime(t, zone).replace(' ', 'T') + 'Z') - t);
		if (dateTime(t, zone) === text) return t;
	}
	return NaN;
}

/** "New York (EDT)" as the page names a zone at instant `ms`. */
function zoneName(zone, ms) {
	if (zone === 'UTC') return 'UTC';
	const name = new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'short' })
		.formatToParts(new Date(ms)).find((x) => x.type === 'timeZoneName').value;
	return zone.split('/').pop().replace(/_/g, ' ') + ' (' + name + ')';
}

/* ---- what the page says and hears --------------------------------------- */

/**
 * Record what the page's WebSocket carries: replay states and updates, with
 * when they arrived, and the ops it sent.
 */
function listen(page) {
	const heard = { replay: [], updates: [], sent: [] };
	page.on('websocket', (ws) => {
		ws.on('framereceived', (f) => {
			let m;
			try {
				m = JSON.parse(String(f.payload));
			} catch (e) {
				return;
			}
			for (const x of Array.isArray(m) ? m : [m]) {
				if (x.type === 'replay') heard.replay.push({ at: Date.now(), m: x });
				else if (x.type === 'snapshot' || x.type === 'delta') heard.updates.push(x);
			}
		});
		ws.on('framesent', (f) => {
			try {
				heard.sent.push(JSON.parse(String(f.payload)));
			} catch (e) { /* not ours */ }
		});
	});
	return heard;
}

const lastState = (heard) => (heard.replay.length ? heard.replay[heard.replay.length - 1].m : null);

async function texts(page) {
	return page.evaluate(() => {
		const $ = (id) => document.getElementById(id);
		const sel = $('time-basis');
		return {
			pos: $('replay-pos').textContent,
			state: $('replay-state').textContent,
			updated: document.querySelector('#detail [data-f="ts"]').textContent,
			clock: $('st-clock').textContent,
			basis: sel.value,
			label: sel.selectedOptions[0] ? sel.selectedOptions[0].textContent : '',
			zone: sel.dataset.zone,
			speed: $('replay-speed').value,
			speedText: $('replay-speed').selectedOptions[0] ? $('replay-speed').selectedOptions[0].textContent : '',
		};
	});
}

/** The chart's own formatters at UTC second `sec`. */
async function chartLabels(page, sec) {
	return page.evaluate((t) => {
		const o = window.__charts[0].options();
		return {
			crosshair: o.localization.timeFormatter(t),
			time: o.timeScale.tickMarkFormatter(t, 4),
			utcMidnight: o.timeScale.tickMarkFormatter(Math.floor(t / 86400) * 86400, 2),
		};
	}, sec);
}

/** Seek by typing in the seek box; resolves once the server has answered
 * (the page empties the box then, so the next seek's text stays whole). */
async function seek(page, text) {
	await page.fill('#replay-ts', text);
	await page.press('#replay-ts', 'Enter');
	await waitFor(() => page.$eval('#replay-ts', (e) => e.value === ''), 10000, 'no answer to the seek to ' + text);
}

async function pickBasis(page, basis) {
	await page.selectOption('#time-basis', basis);
	await waitFor(async () => (await texts(page)).basis === basis, 5000, 'the basis did not change to ' + basis);
}

async function newPage(context, problems, label) {
	const page = await context.newPage();
	watchProblems(page, problems, { label });
	return page;
}

/** Catch the chart the page makes, to ask its formatters (they draw on a canvas). */
async function catchCharts(context) {
	await context.addInitScript(() => {
		let lib;
		Object.defineProperty(window, 'LightweightCharts', {
			configurable: true,
			get() { return lib; },
			set(v) {
				const create = v.createChart;
				lib = Object.assign({}, v, {
					createChart(...a) {
						const c = create.apply(v, a);
						(window.__charts = window.__charts || []).push(c);
						return c;
					},
				});
			},
		});
	});
}

/**
 * At the page's size now, standing at tMs with USDTHB last updated at
 * updatedMs: the one label and every time are on screen, and for each basis
 * (UTC, local, the session zone) the label names the zone that the replay
 * position, "Updated", the status bar clock and the chart's axis and
 * crosshair are on, and no other label names another zone; every basis says
 * the same instants. Returns what each basis showed.
 */
async function everyTimeOnOneClock(page, tMs, updatedMs) {
	// On screen: drawn, with a box, inside the window's width (the page
	// scrolls down on small screens).
	const offScreen = await page.evaluate(() => ['#time-basis', '#replay-pos', '#detail [data-f="ts"]', '#st-clock', '#chart'].filter((sel) => {
		const e = document.querySelector(sel);
		const r = e.getBoundingClientRect();
		return !(r.width > 0 && r.height > 0 && r.left >= -0.5 && r.right <= document.documentElement.clientWidth + 0.5 &&
			getComputedStyle(e).visibility !== 'hidden');
	}));
	const size = page.viewportSize();
	assert(offScreen.length === 0, 'not on screen at ' + size.width + '×' + size.height + ': ' + offScreen.join(', '));
	const want = {
		utc: { zone: 'UTC', label: 'UTC' },
		local: { zone: 'America/New_York', label: 'Local: ' + zoneName('America/New_York', tMs) },
		session: { zone: 'Asia/Bangkok', label: 'Session: ' + zoneName('Asia/Bangkok', tMs) },
	};
	const seen = [];
	for (const basis of ['utc', 'local', 'session']) {
		await pickBasis(page, basis);
		const { zone, label } = want[basis];
		const got = await waitFor(async () => {
			const t = await texts(page);
			return t.pos === dateTime(tMs, zone) && t.updated === dateTime(updatedMs, zone) ? t : null;
		}, 5000, basis + ': the position or "Updated" is not on the clock of ' + zone + ' (' + JSON.stringify(await texts(page)) + ')');
		assert(got.label === label && got.zone === zone, basis + ': the label says "' + got.label + '" (' + got.zone + '), want "' + label + '"');
		// The status bar clock is redrawn once a second: read it and
		// the time now together.
		let shown = got.clock;
		await waitFor(async () => {
			shown = (await texts(page)).clock;
			const now = Date.now();
			return [0, -1000, -2000, 1000].some((d) => clock(now + d, zone) === shown);
		}, 5000, () => basis + ': the status bar clock ' + shown + ' is not ' + clock(Date.now(), zone));
		const sec = Math.floor(updatedMs / 1000);
		const c = await chartLabels(page, sec);
		assert(c.crosshair === dateTime(sec * 1000, zone), basis + ': the crosshair says ' + c.crosshair + ', want ' + dateTime(sec * 1000, zone));
		assert(c.time === clock(sec * 1000, zone), basis + ': the axis says ' + c.time + ', want ' + clock(sec * 1000, zone));
		const mid = Math.floor(sec / 86400) * 86400 * 1000;
		const midWant = zone === 'UTC' ? String(new Date(mid).getUTCDate()) : clock(mid, zone).slice(0, 5);
		assert(c.utcMidnight === midWant, basis + ': the axis\'s mark at 00:00 UTC says ' + c.utcMidnight + ', want ' + midWant);
		// No other label on the page names another zone.
		const others = await page.evaluate((l) => [...document.querySelectorAll('body *')]
			.filter((e) => e.children.length === 0 && e.closest('#time-basis') === null &&
				/\b(UTC|GMT[+-]\d+|E[SD]T|[A-Z][a-z]+ \((E[SD]T|GMT[+-]\d+)\))\b/.test(e.textContent) && !e.textContent.includes(l))
			.map((e) => e.textContent), label.replace(/^(Local|Session): /, ''));
		assert(others.length === 0, basis + ': other zone labels on the page: ' + others.join(' | '));
		seen.push({ basis, zone, pos: got.pos, updated: got.updated, chart: c.crosshair });
	}
	// Every basis says the same instants.
	for (const s of seen) {
		assert(instantOf(s.pos, s.zone) === tMs, s.basis + ': ' + s.pos + ' is not ' + new Date(tMs).toISOString());
		assert(instantOf(s.updated, s.zone) === updatedMs, s.basis + ': ' + s.updated + ' is not the update\'s time');
	}
	return seen;
}

/* ---- the checks --------------------------------------------------------- */

async function main() {
	const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'publisher-clock-'));
	const dirs = {};
	for (const d of ['replay', 'fast', 'symbols']) fs.mkdirSync(dirs[d] = path.join(tmp, d));
	const replayServer = new Server(dirs.replay, { feed: 'replay:' + USDTHB + ',speed=600', args: ['--session', SESSION], name: 'clock-replay' });
	const fastServer = new Server(dirs.fast, { feed: 'replay:' + USDTHB + ',speed=3000', name: 'clock-fast' });
	const tcpPort = await freePort();
	const symbolServer = new Server(dirs.symbols, {
		feed: 'tcp:127.0.0.1:' + tcpPort, args: ['--session', 'AMD=America/New_York@09:30'], name: 'clock-symbols',
	});
	const problems = [];
	let context = null;
	let feed = null;
	try {
		await Promise.all([replayServer.start(), fastServer.start(), symbolServer.start()]);
		context = await launch(path.join(tmp, 'profile'));
		await catchCharts(context);

		/* -- the replay clock ------------------------------------------------ */

		const page = await newPage(context, problems, 'replay');
		const heard = listen(page);
		await page.goto(replayServer.url, { waitUntil: 'load' });
		await waitFor(() => page.$eval('#replay', (e) => !e.hidden), 10000, 'the replay controls stay hidden');
		await waitFor(async () => (await texts(page)).state === 'playing', 10000, 'the replay is not shown playing');

		await check('the speed shown is the server\'s (600×)', async () => {
			const t = await texts(page);
			const s = lastState(heard).speed;
			assert(t.speed === String(s) && t.speedText === '600×', 'selector ' + t.speed + ' "' + t.speedText + '", server ' + s);
			return t.speedText;
		});

		await check('the replay clock runs on smoothly at 600× through an eight-hour gap between ticks', async () => {
			await pickBasis(page, 'utc');
			await seek(page, IN_GAP);
			await waitFor(async () => {
				const t = await texts(page);
				return t.state === 'playing' && t.pos >= '1997-06-02 13:45' && t.pos < '1997-06-02 16:00';
			}, 15000, 'the replay does not play on from ' + IN_GAP);
			const from = heard.replay.length;
			// Sampled in the page, every 100 ms for 3 s.
			const samples = await page.evaluate(async () => {
				const out = [];
				for (let i = 0; i < 31; i++) {
					out.push({ t: performance.now(), text: document.getElementById('replay-pos').textContent });
					await new Promise((r) => setTimeout(r, 100));
				}
				return out;
			});
			const reported = heard.replay.slice(from).map((r) => Number(r.m.position));
			const pos = samples.map((s) => Date.parse(s.text.replace(' ', 'T') + 'Z'));
			const rate = (pos[pos.length - 1] - pos[0]) / (samples[samples.length - 1].t - samples[0].t);
			let still = 0;
			let maxStep = 0;
			for (let i = 1; i < pos.length; i++) {
				if (pos[i] === pos[i - 1]) still++;
				maxStep = Math.max(maxStep, pos[i] - pos[i - 1]);
				assert(pos[i] >= pos[i - 1], 'the clock went back: ' + samples[i - 1].text + ' -> ' + samples[i].text);
			}
			// The server reports where its last tick was: through the gap,
			// the seek's target, while the clock shown runs on.
			assert(reported.length >= 2 && reported.every((p) => p / 1000 <= Date.parse('1997-06-02T13:45:00Z')),
				'the server reported positions past the gap\'s start: ' + reported.map((p) => new Date(p / 1000).toISOString()));
			assert(rate > 600 * 0.7 && rate < 600 * 1.3, 'the clock ran at ' + rate.toFixed(0) + '×, not 600×');
			assert(still <= 3, still + ' of 30 samples 100 ms apart showed no movement');
			assert(maxStep <= 240e3, 'a jump of ' + maxStep / 1000 + ' s of file time in 100 ms');
			return 'ran at ' + rate.toFixed(0) + '× from ' + samples[0].text + ' to ' + samples[samples.length - 1].text +
				' while the server reported ' + reported.length + ' times the same ' + new Date(reported[0] / 1000).toISOString();
		});

		await check('a pause stops the clock where it stands; resume runs it on from there', async () => {
			await page.click('#replay-toggle');
			await waitFor(async () => (await texts(page)).state === 'paused', 5000, 'pause not shown');
			const held = (await texts(page)).pos;
			await sleep(1500);
			const still = (await texts(page)).pos;
			assert(held === still, 'moved while paused: ' + held + ' -> ' + still);
			assert(held > '1997-06-02 13:45:00', 'the pause set the clock back to the last tick: ' + held);
			await page.click('#replay-toggle');
			// The first position shown after the resume.
			const after = await waitFor(async () => {
				const pos = (await texts(page)).pos;
				return pos > held ? pos : null;
			}, 5000, 'the clock does not run on after resume');
			assert(Date.parse(after.replace(' ', 'T') + 'Z') - Date.parse(held.replace(' ', 'T') + 'Z') < 30 * 60e3,
				'after resume it jumped from ' + held + ' to ' + after);
			return 'held at ' + held + ', then ' + after;
		});

		await check('the clock never runs past the end', async () => {
			await seek(page, '1997-06-30T23:40:00Z');
			await waitFor(async () => (await texts(page)).state === 'finished', 15000, 'the replay did not finish');
			const samples = [];
			for (let i = 0; i < 5; i++) {
				samples.push((await texts(page)).pos);
				await sleep(200);
			}
			assert(samples.every((s) => s === '1997-06-30 23:44:00'), 'shown at the end: ' + samples.join(', '));
			return samples[0];
		});

		/* -- one time basis --------------------------------------------------- */

		const T = '1997-06-10T12:34:56Z';
		const tMs = Date.parse(T);
		let updatedMs = 0;
		await check('one label names the zone of every time on the page, for UTC, local and the session zone', async () => {
			// Stand still at a known time: pause, then seek (the state after
			// a seek back comes with a new connection).
			await seek(page, '1997-06-10T00:00:00Z');
			await waitFor(async () => (await texts(page)).state === 'playing', 15000, 'not playing after the seek');
			await page.click('#replay-toggle');
			await waitFor(async () => (await texts(page)).state === 'paused', 5000, 'pause not shown');
			await seek(page, T);
			await waitFor(async () => {
				const m = lastState(heard);
				return m && m.state === 'paused' && Number(m.position) === tMs * 1000 && (await texts(page)).state === 'paused';
			}, 15000, 'the replay does not stand paused at ' + T);
			// "Updated" is the time of USDTHB's last tick before T, once the
			// server has sent it: its update may come after the paused state.
			const lastTick = Math.max(...fileTimes().filter((us) => us <= tMs * 1000));
			await waitFor(() => heard.updates.some((x) => x.symbol === 'USDTHB' && Number(x.ts) === lastTick), 10000,
				'no update of USDTHB at its last tick before ' + T + ' (' + new Date(lastTick / 1000).toISOString() + ')');
			updatedMs = lastTick / 1000;
			await waitFor(() => page.evaluate(() => window.__charts && window.__charts.length > 0), 5000, 'no chart made');
			const seen = await everyTimeOnOneClock(page, tMs, updatedMs);
			return seen.map((s) => s.basis + ' ' + s.pos + ' / ' + s.updated).join('; ');
		});
		for (const { width, height } of [{ width: 768, height: 1024 }, { width: 390, height: 844 }]) {
			await check(`at ${width}×${height} too: one label names the zone of every time on the page, for UTC, local and the session zone`, async () => {
				assert(updatedMs, 'the replay does not stand at ' + T + ' (the check above failed)');
				await page.setViewportSize({ width, height });
				const seen = await everyTimeOnOneClock(page, tMs, updatedMs);
				const shot = path.join(ARTIFACTS, `clock-${width}x${height}.png`);
				await page.screenshot({ path: shot, fullPage: true });
				return seen.map((s) => s.basis + ' ' + s.pos + ' / ' + s.updated).join('; ') + '; ' + path.relative(ROOT, shot);
			});
		}
		await page.setViewportSize({ width: 1366, height: 768 });

		await check('the chosen basis is kept across a reload', async () => {
			await pickBasis(page, 'session');
			await page.reload({ waitUntil: 'load' });
			await waitFor(() => page.$eval('#replay', (e) => !e.hidden), 10000, 'the replay controls stay hidden');
			const t = await waitFor(async () => {
				const x = await texts(page);
				return x.state === 'paused' && x.zone === 'Asia/Bangkok' && x.pos === dateTime(tMs, 'Asia/Bangkok') ? x : null;
			}, 10000, 'after a reload: ' + JSON.stringify(await texts(page)));
			assert(t.basis === 'session', 'the basis after a reload is ' + t.basis);
			await page.screenshot({ path: path.join(ARTIFACTS, 'clock-session-basis.png') });
			return t.label + ', ' + t.pos;
		});
		await page.close();

		/* -- replay controls that tell the truth ------------------------------- */

		const fp = await newPage(context, problems, 'fast replay');
		const fast = listen(fp);
		await fp.goto(fastServer.url, { waitUntil: 'load' });
		await waitFor(async () => (await texts(fp)).state === 'playing', 10000, 'the fast replay is not shown playing');
		await pickBasis(fp, 'utc');

		await check('at --speed 3000 the selector says 3,000×, as the server does', async () => {
			const t = await texts(fp);
			const s = lastState(fast).speed;
			assert(s === 3000, 'the server says ' + s);
			assert(t.speed === '3000' && t.speedText === '3,000×', 'the selector shows ' + t.speed + ' "' + t.speedText + '"');
			return t.speedText;
		});

		await check('from "finished" a seek plays again without picking a speed', async () => {
			await seek(fp, '1997-07-01 00:00');
			await waitFor(async () => (await texts(fp)).state === 'finished', 15000, 'seeking past the end did not finish the replay');
			await seek(fp, '1997-06-10 00:00');
			const t = await waitFor(async () => {
				const x = await texts(fp);
				return x.state === 'playing' && x.pos >= '1997-06-10 00:00:00' && x.pos < '1997-06-12' ? x : null;
			}, 15000, 'after the seek: ' + JSON.stringify(await texts(fp)));
			const speeds = fast.sent.filter((m) => m.op === 'replay' && m.action === 'speed');
			assert(speeds.length === 0, 'a speed was sent: ' + JSON.stringify(speeds));
			assert(lastState(fast).speed === 3000 && t.speed === '3000', 'the speed changed: ' + t.speed);
			return 'playing from ' + t.pos;
		});

		await check('restart goes back to the beginning, from playing and from finished', async () => {
			await fp.click('#replay-restart');
			const first = await waitFor(async () => {
				const x = await texts(fp);
				return x.state === 'playing' && x.pos >= '1997-06-01 19:28:00' && x.pos < '1997-06-03' ? x : null;
			}, 15000, 'restart from playing: ' + JSON.stringify(await texts(fp)));
			await seek(fp, '1997-07-01 00:00');
			await waitFor(async () => (await texts(fp)).state === 'finished', 15000, 'not finished');
			await fp.click('#replay-restart');
			const second = await waitFor(async () => {
				const x = await texts(fp);
				return x.state === 'playing' && x.pos >= '1997-06-01 19:28:00' && x.pos < '1997-06-03' ? x : null;
			}, 15000, 'restart from finished: ' + JSON.stringify(await texts(fp)));
			const seeks = fast.sent.filter((m) => m.op === 'replay' && m.action === 'seek' && m.ts === FILE_START);
			assert(seeks.length === 2, seeks.length + ' seeks to the first tick');
			await fp.screenshot({ path: path.join(ARTIFACTS, 'clock-replay-restart.png') });
			return 'from playing ' + first.pos + ', from finished ' + second.pos;
		});
		await fp.close();

		/* -- symbols as the server knows them, and their decimals ----------- */

		feed = await tcpFeed(tcpPort);
		feed.send([
			{ symbol: 'P1', bid: '25', ask: '25.2' },
			{ symbol: 'P2', last: '101', last_size: 10 },
		]);
		// A first visit lists the symbols the server has then: P1 and P2, once stored.
		const serverHas = async (sym) => (await (await fetch(symbolServer.url + 'api/export?symbol=' + sym + '&format=csv')).text())
			.trim().split('\n').length > 1;
		await waitFor(async () => (await serverHas('P1')) && (await serverHas('P2')), 10000, 'the server has not stored P1 and P2');
		const sp = await newPage(context, problems, 'symbols');
		await sp.goto(symbolServer.url, { waitUntil: 'load' });
		const rowText = (s) => sp.evaluate((sym) => {
			const r = document.querySelector('#watchlist .wl-row[data-symbol="' + CSS.escape(sym) + '"]');
			return r ? [...r.children].slice(1, 7).map((c) => c.textContent) : null;
		}, s);
		const stored = () => sp.evaluate(() => JSON.parse(localStorage.getItem('publisher.watchlist')));
		const add = async (typed) => {
			await sp.fill('#add-input', typed);
			await sp.press('#add-input', 'Enter');
		};
		await waitFor(async () => (await rowText('P1')) && (await rowText('P2')), 10000, 'the first visit does not list P1 and P2');
		feed.send([
			{ symbol: 'P1', bid: '24.050' },
			{ symbol: 'P2', last: '100.5', last_size: 5 },
			{ symbol: 'P2', last: '100.125', last_size: 5 },
			{ symbol: 'AMD', last: '160.5', last_size: 1 },
			{ symbol: 'EUR/USD', bid: '1.0851', ask: '1.0853' },
			{ symbol: 'P3', bid: '1.0850', ask: '1.0853' },
		]);

		await check('every price of a symbol has the most decimals it has shown, as exact text', async () => {
			const p1 = await waitFor(async () => {
				const r = await rowText('P1');
				return r && r[0] === '24.050' ? r : null;
			}, 5000, 'P1 row: ' + JSON.stringify(await rowText('P1')));
			assert(p1[1] === '25.200', 'P1 ask ' + p1[1] + ', want 25.200 next to bid 24.050');
			const p2 = await waitFor(async () => {
				const r = await rowText('P2');
				return r && r[2] === '100.125' ? r : null;
			}, 5000, 'P2 row: ' + JSON.stringify(await rowText('P2')));
			assert(p2[3] === '\u22120.875', 'P2 change ' + p2[3]);
			await sp.click('#watchlist .wl-row[data-symbol="P2"]');
			const d = await waitFor(() => sp.evaluate(() => {
				const f = (k) => document.querySelector('#detail [data-f="' + k + '"]').textContent;
				return document.getElementById('q-symbol').textContent === 'P2' && f('low') === '100.125'
					? { last: document.getElementById('q-last').textContent, chg: document.getElementById('q-chg').textContent, open: f('open'), high: f('high'), low: f('low') }
					: null;
			}), 5000, 'the quote panel of P2');
			assert(d.last === '100.125' && d.open === '101.000' && d.high === '101.000' && d.chg.startsWith('\u22120.875'),
				'P2 panel: ' + JSON.stringify(d));
			await sp.click('#watchlist .wl-row[data-symbol="P1"]');
			const last = await waitFor(async () => {
				const x = await sp.evaluate(() => [document.getElementById('q-symbol').textContent, document.getElementById('q-last').textContent,
					document.querySelector('#detail [data-f="spread"]').textContent]);
				return x[0] === 'P1' ? x : null;
			}, 5000, 'the quote panel of P1');
			assert(last[1] === '24.050 / 25.200' && last[2] === '1.150', 'P1 panel: ' + last.join(' '));
			// The chart draws a quote-only symbol's mid: exact, not rounded
			// to its quotes' decimals (1.08515 of 1.0850 and 1.0853).
			await add('P3');
			// P3's quote, and its chart's legend: hidden, with the text of the
			// symbol shown before, until P3's history has come and its bars are drawn.
			const mid = await waitFor(() => sp.evaluate(() => {
				const legend = document.getElementById('legend');
				const v = [...legend.querySelectorAll('.lg-v')].map((e) => e.textContent);
				const quote = document.getElementById('q-last').textContent;
				return document.getElementById('q-symbol').textContent === 'P3' && /\d/.test(quote) && !legend.hidden && v.length >= 4
					? [quote, v[3]] : null;
			}), 10000, 'no chart legend for P3');
			assert(mid[0] === '1.0850 / 1.0853' && mid[1] === '1.08515', 'P3: quote ' + mid[0] + ', chart\'s mid ' + mid[1]);
			await sp.click('#watchlist .wl-row[data-symbol="P3"] button.x');
			return 'P1 ' + p1.slice(0, 2).join(' / ') + ', P2 ' + [d.open, d.high, d.low, d.last, d.chg].join(' ') + ', P3 ' + mid.join(', mid ');
		});

		await check('a symbol typed in another case is taken in the server\'s case', async () => {
			await add('amd');
			await waitFor(async () => (await rowText('AMD')) !== null, 5000, 'no AMD row after typing "amd"');
			await add('eur/usd');
			await waitFor(async () => (await rowText('EUR/USD')) !== null, 5000, 'no EUR/USD row after typing "eur/usd"');
			const list = await stored();
			assert(list.includes('AMD') && list.includes('EUR/USD') && !list.includes('amd') && !list.includes('eur/usd'),
				'stored: ' + JSON.stringify(list));
			// The session basis follows the selected symbol's zone (AMD: New York).
			await pickBasis(sp, 'session');
			await sp.click('#watchlist .wl-row[data-symbol="AMD"]');
			const t = await waitFor(async () => {
				const x = await texts(sp);
				return x.zone === 'America/New_York' ? x : null;
			}, 5000, 'the session basis of AMD: ' + JSON.stringify(await texts(sp)));
			assert(t.label === 'Session: ' + zoneName('America/New_York', Date.now()), 'label ' + t.label);
			await pickBasis(sp, 'local');
			return 'stored ' + JSON.stringify(list) + '; AMD\'s session: ' + t.label;
		});

		await check('an invalid symbol is refused with the server\'s reason, and neither added nor stored', async () => {
			await add('bad sym');
			const toast = await waitFor(async () => {
				const x = await sp.$eval('#toast', (e) => e.textContent);
				return /not a valid symbol/.test(x) ? x : null;
			}, 5000, 'no refusal shown: ' + await sp.$eval('#toast', (e) => e.textContent));
			assert(toast.startsWith('Server: \'bad sym\' is not a valid symbol'), 'the reason is not the server\'s about what was typed: ' + toast);
			assert((await rowText('BAD SYM')) === null && (await rowText('bad sym')) === null, 'a row was added');
			assert(!(await stored()).some((s) => /bad/i.test(s)), 'stored: ' + JSON.stringify(await stored()));
			assert((await sp.$eval('#add-input', (e) => e.value)) === 'bad sym', 'what was typed is gone from the box');
			return toast;
		});

		await check('an unknown symbol is taken in capitals and its chart says "No data yet", then fills in', async () => {
			await add('zzz');
			await waitFor(async () => (await rowText('ZZZ')) !== null, 5000, 'no ZZZ row after typing "zzz"');
			const list = await stored();
			assert(list.includes('ZZZ') && !list.includes('zzz'), 'stored: ' + JSON.stringify(list));
			const empty = await waitFor(() => sp.evaluate(() => {
				const e = document.getElementById('chart-empty');
				return !e.hidden && document.getElementById('q-symbol').textContent === 'ZZZ' ? e.textContent : null;
			}), 5000, 'the chart of ZZZ says nothing');
			assert(empty === 'No data yet for ZZZ', 'the chart says "' + empty + '"');
			await sp.screenshot({ path: path.join(ARTIFACTS, 'clock-no-data.png') });
			feed.send([{ symbol: 'ZZZ', last: '5.5', last_size: 1 }]);
			await waitFor(async () => {
				const r = await rowText('ZZZ');
				const hidden = await sp.$eval('#chart-empty', (e) => e.hidden || !/No data/.test(e.textContent));
				return r && r[2] === '5.5' && hidden;
			}, 5000, 'ZZZ did not fill in: ' + JSON.stringify(await rowText('ZZZ')));
			return '"' + empty + '", then ' + (await rowText('ZZZ'))[2];
		});

		await check('a stored lower-case spelling of a symbol the server knows is corrected', async () => {
			await sp.evaluate(() => localStorage.setItem('publisher.watchlist', JSON.stringify(['P1', 'amd', 'p2'])));
			await sp.reload({ waitUntil: 'load' });
			const list = await waitFor(async () => {
				const l = await stored();
				return l.includes('AMD') && l.includes('P2') ? l : null;
			}, 10000, 'still stored: ' + JSON.stringify(await stored()));
			assert(!list.includes('amd') && !list.includes('p2'), 'stored: ' + JSON.stringify(list));
			await waitFor(async () => (await rowText('AMD')) && (await rowText('AMD'))[2] === '160.5', 5000, 'the AMD row has no price');
			return JSON.stringify(list);
		});
		await sp.close();

		await check('no console errors, page errors or CSP violations', async () => {
			assert(problems.length === 0, problems.join(' | '));
		});
	} finally {
		if (feed) feed.close();
		if (context) await context.close().catch(() => {});
		await Promise.all([replayServer.stop(), fastServer.stop(), symbolServer.stop()]);
		fs.rmSync(tmp, { recursive: true, force: true });
	}
}

await run(main);

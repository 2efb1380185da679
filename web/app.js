// publisher dashboard: wires the connection, the model and the views.
//
// Messages are applied to the in-memory model the moment they arrive; the
// DOM is touched once per animation frame (frame() below), however many
// messages came in between. The protocol is in README, Protocol.

import { parseFrame } from './js/json.js';
import { Model, SecondBars } from './js/model.js';
import { Connection } from './js/connection.js';
import { Watchlist } from './js/watchlist.js';
import { ChartView } from './js/chart.js';
import { load, save } from './js/storage.js';
import { group, sub, sign, signed, percent } from './js/decimal.js';

const SYMBOL_RE = /^[A-Za-z0-9._:/-]{1,32}$/;
const FIRST_VISIT_MAX = 50; // a first visit lists up to 50 symbols
const SUBSCRIBE_CHUNK = 500; // symbols per subscribe: well under 64 KiB
const SYMBOLS_REFRESH_MS = 30000;
const DASH = '\u2014';

const $ = (id) => document.getElementById(id);
const detail = [...$('detail').querySelectorAll('dd')];

const model = new Model();
const known = new Set(); // the server's symbols, for suggestions
let watch = validList(load('watchlist', null)); // null: first visit
let selected = null;
let gapSymbols = new Set();
let gapTimer = 0;
let frameQueued = false;
let helloCount = 0;
let toastTimer = 0;

function validList(v) {
	if (!Array.isArray(v)) return null;
	const seen = new Set();
	return v.filter((s) => typeof s === 'string' && SYMBOL_RE.test(s) && !seen.has(s) && seen.add(s));
}

/* ---- views -------------------------------------------------------------- */

const view = new Watchlist({
	grid: $('watchlist'),
	scroll: $('watch-scroll'),
	empty: $('watch-empty'),
	count: $('watch-count'),
	model,
	onSelect: (s) => selectSymbol(s),
	onRemove: (s) => removeSymbol(s),
	onSort: (sort) => save('sort', sort),
});
view.setSort(load('sort', null));

const chart = new ChartView(
	{ chart: $('chart'), legend: $('legend'), note: $('chart-note'), empty: $('chart-empty') },
	(msg) => conn.request({ op: 'history', ...msg }),
);
chart.onIntervalChange = (iv) => {
	for (const b of $('intervals').querySelectorAll('button'))
		b.setAttribute('aria-pressed', String(b.dataset.interval === iv));
};
$('intervals').addEventListener('click', (e) => {
	const b = e.target.closest('button[data-interval]');
	if (b) chart.setInterval(b.dataset.interval);
});

function scheduleFrame() {
	if (!frameQueued) {
		frameQueued = true;
		requestAnimationFrame(frame);
	}
}

function frame(now) {
	frameQueued = false;
	const q = selected === null ? null : model.quotes.get(selected);
	const quoteDirty = q && model.dirty.has(q);
	view.frame(now);
	chart.frame(now);
	if (quoteDirty) drawQuote();
	// A live re-sort, off-screen rows or a chart update are still due.
	if (view.pending || chart.pending) scheduleFrame();
}

/* ---- model hooks -------------------------------------------------------- */

model.onDirty = scheduleFrame;

// A delta whose `from` is not the seq we hold: resubscribe with resume. Gaps
// found in the same burst go out as one subscribe.
model.onGap = (q) => {
	gapSymbols.add(q.symbol);
	if (!gapTimer) gapTimer = setTimeout(flushGaps, 50);
};

model.onTrade = (q, sec, price, vol) => {
	if (!q.bars) q.bars = new SecondBars();
	q.bars.add(sec, price, vol);
	if (q === chart.quote) chart.trade(sec, price, vol);
};

function flushGaps() {
	gapTimer = 0;
	const list = [...gapSymbols].filter((s) => model.quotes.has(s));
	gapSymbols = new Set();
	if (list.length) subscribe(list);
}

/* ---- connection --------------------------------------------------------- */

const wsUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
const conn = new Connection(wsUrl, {
	onFrame(text) {
		let data;
		try {
			data = parseFrame(text);
		} catch (e) {
			console.warn('publisher: a frame that is not JSON was ignored', e);
			return;
		}
		if (Array.isArray(data)) for (const m of data) dispatch(m);
		else dispatch(data);
	},
	onState: connectionState,
	onRtt(ms) {
		$('st-rtt').textContent = ms < 10 ? ms.toFixed(1) + ' ms' : Math.round(ms) + ' ms';
	},
});

function dispatch(m) {
	if (!m || typeof m !== 'object') return;
	switch (m.type) {
	case 'delta':
	case 'snapshot':
		model.apply(m);
		return;
	case 'heartbeat':
		return;
	case 'hello':
		hello(m);
		return;
	default:
		if (conn.reply(m)) return;
		if (m.type === 'replay') replayStatus(m);
		else if (m.type === 'error') toast('Server: ' + (m.message || m.code), 'error');
	}
}

function hello(h) {
	helloCount++;
	conn.hello(h.heartbeat_ms);
	const changed = model.epoch !== null && h.epoch !== model.epoch;
	if (changed) {
		// Another store: what we hold belongs to it. Drop it and reload.
		model.clear();
		view.renderAll();
	}
	model.epoch = h.epoch;
	$('st-epoch').textContent = h.epoch || DASH;
	$('st-epoch').title = 'Server epoch ' + h.epoch;
	$('st-server').textContent = h.server || '';
	replayStart(h.feed === 'replay');

	if (watch === null) {
		firstVisit();
	} else {
		const held = model.heldSeqs(watch).length;
		subscribe(watch);
		if (helloCount > 1)
			toast(changed ? 'Reconnected: the server has a new epoch, prices reloaded.'
				: 'Reconnected: resumed ' + held + ' of ' + watch.length + ' symbols.', 'info');
	}
	refreshSymbols();
	chart.serverChanged();
	drawQuote();
}

/* Subscribe with `resume` naming the epoch and the seq we hold per symbol:
 * the server sends nothing for a symbol we are current on, one delta for one
 * we are behind on, a snapshot otherwise. Seqs are written from their exact
 * text (they may exceed 2^53). */
function subscribe(list) {
	for (let i = 0; i < list.length; i += SUBSCRIBE_CHUNK) {
		const chunk = list.slice(i, i + SUBSCRIBE_CHUNK);
		const held = model.heldSeqs(chunk);
		conn.request((id) => {
			let t = '{"op":"subscribe","symbols":' + JSON.stringify(chunk);
			if (held.length && model.epoch !== null) {
				t += ',"resume":{"epoch":' + JSON.stringify(model.epoch) + ',"seq":{' +
					held.map(([s, seq]) => JSON.stringify(s) + ':' + seq).join(',') + '}}';
			}
			return t + ',"id":' + id + '}';
		}).catch(requestFailed);
	}
}

function requestFailed(err) {
	if (err && err.code) toast('Server: ' + err.message, 'error');
}

async function firstVisit() {
	let reply;
	try {
		reply = await conn.request({ op: 'symbols' });
	} catch (e) {
		requestFailed(e);
		return;
	}
	learnSymbols(reply);
	if (watch !== null) return; // the user added one meanwhile
	const list = (reply.symbols || []).map((x) => x.symbol).filter((s) => SYMBOL_RE.test(s)).slice(0, FIRST_VISIT_MAX);
	if (!list.length) {
		// The feed has not produced anything yet: ask again shortly.
		setTimeout(() => { if (watch === null && conn.open) firstVisit(); }, 2000);
		return;
	}
	setWatch(list);
	save('watchlist', watch);
	subscribe(watch);
}

async function refreshSymbols() {
	try {
		learnSymbols(await conn.request({ op: 'symbols' }));
	} catch (e) {
		requestFailed(e);
	}
}
setInterval(() => { if (conn.open) refreshSymbols(); }, SYMBOLS_REFRESH_MS);

function learnSymbols(reply) {
	for (const x of reply.symbols || []) if (x && typeof x.symbol === 'string') known.add(x.symbol);
	fillSuggestions();
}

function fillSuggestions() {
	const inList = new Set(watch || []);
	const frag = document.createDocumentFragment();
	for (const s of [...known].sort()) {
		if (inList.has(s)) continue;
		const o = document.createElement('option');
		o.value = s;
		frag.appendChild(o);
	}
	const dl = $('symbol-list');
	dl.textContent = '';
	dl.appendChild(frag);
}

function connectionState(state, info) {
	const el = $('st-conn');
	el.dataset.state = state;
	const live = state === 'open';
	view.setLive(live || !info.everOpen);
	$('st-conn-text').textContent = live ? 'Live' : state === 'connecting' ? 'Connecting' : 'Disconnected';
	$('st-rtt').textContent = DASH; // until the next pong
	// A banner once a live connection is lost, or once the very first
	// attempt has failed (the page loaded, but its WebSocket cannot connect).
	$('banner').hidden = live || (!info.everOpen && state === 'connecting' && info.attempt === 0);
	drawBanner();
}

function drawBanner() {
	if ($('banner').hidden) return;
	const everOpen = conn.everOpen;
	let text = everOpen ? 'Connection to the server lost.' : 'Cannot connect to the server.';
	if (conn.state === 'connecting') {
		text += ' Reconnecting…';
	} else {
		const s = Math.max(0, Math.ceil((conn.retryAt - performance.now()) / 1000));
		text += ' Next attempt in ' + s + ' s (attempt ' + conn.attempt + ').';
	}
	if (everOpen) text += ' Prices shown are the last received.';
	if ($('banner-text').textContent !== text) $('banner-text').textContent = text;
}
$('retry-now').addEventListener('click', () => conn.retryNow());

/* ---- watchlist editing -------------------------------------------------- */

function setWatch(list) {
	watch = list;
	for (const s of watch) model.watch(s);
	view.setSymbols(watch);
	fillSuggestions();
	if (selected === null || !watch.includes(selected)) {
		const saved = load('selected', null);
		const pick = watch.includes(saved) ? saved : watch[0];
		if (pick !== undefined) view.select(pick, { scroll: false });
	}
	drawCount();
}

function addSymbol(raw) {
	let s = raw.trim();
	if (!s) return false;
	if (!known.has(s) && known.has(s.toUpperCase())) s = s.toUpperCase();
	if (!SYMBOL_RE.test(s)) {
		toast('"' + s + '" is not a symbol: 1–32 of A–Z a–z 0–9 . _ : / -', 'error');
		return false;
	}
	if (watch === null) watch = [];
	if (watch.includes(s)) {
		view.select(s);
		toast(s + ' is already in the watchlist.', 'info');
		return true;
	}
	watch.push(s);
	save('watchlist', watch);
	model.watch(s);
	view.addRow(s);
	view.select(s);
	fillSuggestions();
	drawCount();
	if (conn.open) subscribe([s]);
	if (known.size && !known.has(s)) toast(s + ' has no data on the server yet; it fills in with its first tick.', 'info');
	return true;
}

function removeSymbol(s) {
	if (!watch || !watch.includes(s)) return;
	const next = view.removeRow(s);
	watch = watch.filter((x) => x !== s);
	save('watchlist', watch);
	model.unwatch(s);
	if (conn.open) conn.request({ op: 'unsubscribe', symbols: [s] }).catch(requestFailed);
	fillSuggestions();
	drawCount();
	if (selected === s) {
		selected = null;
		if (next !== null) view.select(next);
		else selectSymbol(null);
	}
}

function selectSymbol(s) {
	selected = s;
	if (s !== null) save('selected', s);
	chart.show(s === null ? null : model.quotes.get(s) || null);
	drawQuote();
}

$('add-form').addEventListener('submit', (e) => {
	e.preventDefault();
	const input = $('add-input');
	if (addSymbol(input.value)) input.value = '';
});
$('add-input').addEventListener('keydown', (e) => {
	if (e.key === 'Escape') {
		e.target.value = '';
		$('watchlist').focus();
	}
});
document.addEventListener('keydown', (e) => {
	const t = e.target;
	const typing = t instanceof HTMLInputElement || t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement;
	if (e.key === '/' && !typing && !e.ctrlKey && !e.metaKey && !e.altKey) {
		e.preventDefault();
		$('add-input').focus();
	}
});

/* ---- quote header and detail -------------------------------------------- */

function drawCount() {
	$('st-count').textContent = String(watch ? watch.length : 0);
}

function setText(el, text) {
	if (el.textContent !== text) el.textContent = text;
}

function setClass(el, cls) {
	if (el.className !== cls) el.className = cls;
}

function drawQuote() {
	const q = selected === null ? null : model.quotes.get(selected);
	const f = q ? q.f : {};
	const px = (s) => (s === undefined ? DASH : s);
	setText($('q-symbol'), selected ?? DASH);
	const last = $('q-last');
	// A symbol with quotes and no trades shows its bid and ask instead.
	setText(last, f.last === undefined && f.bid !== undefined ? px(f.bid) + ' / ' + px(f.ask) : px(f.last));
	setClass(last, 'q-last' + (q && q.tick > 0 ? ' up' : q && q.tick < 0 ? ' down' : ''));
	const chg = sub(f.last, f.open);
	const chgEl = $('q-chg');
	setText(chgEl, chg === null ? '' : signed(chg) + '  ' + percent(chg, f.open));
	setClass(chgEl, 'q-chg' + (sign(chg) > 0 ? ' pos' : sign(chg) < 0 ? ' neg' : ''));
	const spread = sub(f.ask, f.bid);
	const values = {
		bid_size: f.bid_size === undefined ? DASH : group(f.bid_size),
		ask_size: f.ask_size === undefined ? DASH : group(f.ask_size),
		spread: spread === null ? DASH : spread,
		open: px(f.open),
		high: px(f.high),
		low: px(f.low),
		last_size: f.last_size === undefined ? DASH : group(f.last_size),
		trades: f.trades === undefined ? DASH : group(f.trades),
		seq: q && q.seq !== null ? q.seq : DASH,
		ts: q && q.ts !== null ? stampText(Number(q.ts) / 1000) : DASH,
	};
	for (const dd of detail) setText(dd, values[dd.dataset.f]);
}

/* Time of day for today's updates; a replayed or old one shows its date. */
function stampText(ms) {
	const d = new Date(ms);
	if (d.toDateString() === new Date().toDateString()) return clockText(ms, true);
	const p = (n) => String(n).padStart(2, '0');
	return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + clockText(ms, false);
}

function clockText(ms, millis) {
	const d = new Date(ms);
	const p = (n, w = 2) => String(n).padStart(w, '0');
	return p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds()) + (millis ? '.' + p(d.getMilliseconds(), 3) : '');
}

/* ---- status bar --------------------------------------------------------- */

let lastUpdates = 0;
let lastTick = performance.now();
setInterval(() => {
	const now = performance.now();
	const rate = ((model.updates - lastUpdates) * 1000) / (now - lastTick);
	lastUpdates = model.updates;
	lastTick = now;
	setText($('st-rate'), group(String(Math.round(rate))));
	setText($('st-clock'), clockText(Date.now(), false));
}, 1000);
setInterval(drawBanner, 250);

function toast(text, level) {
	const el = $('toast');
	el.textContent = text;
	el.className = 'toast ' + (level || 'info');
	clearTimeout(toastTimer);
	toastTimer = setTimeout(() => { el.textContent = ''; el.className = 'toast'; }, level === 'error' ? 10000 : 6000);
}

/* ---- theme -------------------------------------------------------------- */

function applyTheme(theme) {
	document.documentElement.setAttribute('data-theme', theme);
	const other = theme === 'dark' ? 'light' : 'dark';
	$('theme-toggle').setAttribute('aria-label', 'Switch to ' + other + ' theme');
	$('theme-toggle').title = 'Switch to ' + other + ' theme';
	chart.applyTheme();
}
applyTheme(document.documentElement.getAttribute('data-theme') === 'light' ? 'light' : 'dark');
$('theme-toggle').addEventListener('click', () => {
	const theme = document.documentElement.getAttribute('data-theme') === 'dark' ? 'light' : 'dark';
	save('theme', theme);
	applyTheme(theme);
});
window.matchMedia('(prefers-color-scheme: light)').addEventListener('change', (e) => {
	if (load('theme', null) === null) applyTheme(e.matches ? 'light' : 'dark');
});

/* ---- replay controls (shown when the hello says "feed":"replay") -------- */

// The server answers every replay op, and tells every other dashboard, with
// {"type":"replay","state":"playing"|"paused"|"seeking"|"finished",
//  "speed":N|"max","position":µs,"start":µs,"end":µs,...}.
const REPLAY_POLL_MS = 1000;
let replay = null; // the last state, or null when the feed is not a replay
let replayTimer = 0;
let seeking = false; // the user is dragging the position slider

function replayStart(isReplay) {
	$('replay').hidden = !isReplay;
	clearInterval(replayTimer);
	replayTimer = 0;
	if (!isReplay) {
		replay = null;
		return;
	}
	const poll = () => {
		if (conn.open) replayOp({ action: 'status' }).catch(() => {});
	};
	poll();
	replayTimer = setInterval(poll, REPLAY_POLL_MS);
}

function replayOp(msg) {
	return conn.request({ op: 'replay', ...msg }).then((r) => {
		replayStatus(r);
		return r;
	});
}

function utcText(us) {
	const n = Number(us);
	if (!n) return DASH;
	return new Date(n / 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

function replayStatus(m) {
	replay = m;
	const paused = m.state === 'paused';
	const b = $('replay-toggle');
	const label = paused ? 'Resume replay' : 'Pause replay';
	b.setAttribute('aria-label', label);
	b.title = label;
	b.classList.toggle('paused', paused);
	b.disabled = m.state === 'finished';
	const speed = m.speed === 'max' ? 'max' : String(m.speed);
	const sel = $('replay-speed');
	if (document.activeElement !== sel && [...sel.options].some((o) => o.value === speed)) sel.value = speed;
	const state = $('replay-state');
	setText(state, m.state || '');
	state.dataset.state = m.state || '';
	setText($('replay-pos'), utcText(m.state === 'seeking' ? m.seek_to : m.position));
	const start = Number(m.start), end = Number(m.end), pos = Number(m.position);
	const slider = $('replay-slider');
	slider.disabled = !(end > start);
	if (!seeking && end > start && pos) slider.value = String(Math.round(((pos - start) / (end - start)) * 1000));
}

$('replay-toggle').addEventListener('click', () => {
	const action = replay && replay.state === 'paused' ? 'resume' : 'pause';
	replayOp({ action }).catch(requestFailed);
});
$('replay-speed').addEventListener('change', (e) => {
	const v = e.target.value;
	replayOp({ action: 'speed', speed: v === 'max' ? 'max' : Number(v) }).catch(requestFailed);
});
$('replay-slider').addEventListener('input', () => {
	seeking = true;
	if (replay && Number(replay.end) > Number(replay.start)) {
		const start = Number(replay.start), end = Number(replay.end);
		setText($('replay-pos'), utcText(start + ($('replay-slider').value / 1000) * (end - start)));
	}
});
$('replay-slider').addEventListener('change', () => {
	seeking = false;
	if (!replay) return;
	const start = Number(replay.start), end = Number(replay.end);
	const ts = Math.round(start + ($('replay-slider').value / 1000) * (end - start));
	replayOp({ action: 'seek', ts }).catch(requestFailed);
});
$('replay-seek').addEventListener('submit', (e) => {
	e.preventDefault();
	const v = $('replay-ts').value.trim();
	if (!v) return;
	replayOp({ action: 'seek', ts: /^\d+$/.test(v) ? Number(v) : v })
		.then(() => { $('replay-ts').value = ''; }, requestFailed);
});

/* ---- start -------------------------------------------------------------- */

if (watch !== null) setWatch(watch);
else view.updateCount();
drawCount();
drawQuote();
conn.start();

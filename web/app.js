// publisher dashboard: wires the connection, the model and the views.
//
// Messages are applied to the in-memory model the moment they arrive; the
// DOM is touched once per animation frame (frame() below), however many
// messages came in between. The protocol is in README, Protocol.
//
// What each part does lives in its own module under js/: the Connection
// (connection.js), the Model (model.js), the watchlist grid (watchlist.js),
// the chart (chart.js), the quote panel (quote.js), the status bar and the
// banner (status.js), the watched symbols and their subscriptions
// (symbols.js), the replay controls (replay.js) and the theme button
// (theme-toggle.js). This file creates them, routes the server's messages,
// and holds the one piece of state they share: the selected symbol.

import { parseFrame } from './js/json.js';
import { Model, SecondBars } from './js/model.js';
import { Connection } from './js/connection.js';
import { Watchlist } from './js/watchlist.js';
import { ChartView } from './js/chart.js';
import { QuotePanel } from './js/quote.js';
import { StatusBar } from './js/status.js';
import { Symbols } from './js/symbols.js';
import { ReplayControls } from './js/replay.js';
import { ThemeToggle } from './js/theme-toggle.js';
import { load, save } from './js/storage.js';

const $ = (id) => document.getElementById(id);

const model = new Model();
let selected = null;
let frameQueued = false;
let helloCount = 0;

/* ---- views -------------------------------------------------------------- */

const view = new Watchlist({
	grid: $('watchlist'),
	scroll: $('watch-scroll'),
	empty: $('watch-empty'),
	count: $('watch-count'),
	model,
	onSelect: (s) => selectSymbol(s),
	onRemove: (s) => symbols.remove(s),
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

const quote = new QuotePanel({ symbol: $('q-symbol'), last: $('q-last'), chg: $('q-chg'), detail: $('detail') });

function drawQuote() {
	quote.draw(selected, selected === null ? null : model.quotes.get(selected));
}

function selectSymbol(s) {
	selected = s;
	if (s !== null) save('selected', s);
	chart.show(s === null ? null : model.quotes.get(s) || null);
	drawQuote();
}

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
model.onGap = (q) => symbols.resync(q.symbol);
model.onTrade = (q, sec, price, vol) => {
	if (!q.bars) q.bars = new SecondBars();
	q.bars.add(sec, price, vol);
	if (q === chart.quote) chart.trade(sec, price, vol);
};

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
	onState(state, info) {
		view.setLive(state === 'open' || !info.everOpen);
		status.connection(state, info);
	},
	onRtt: (ms) => status.rtt(ms),
});

const status = new StatusBar({
	conn: $('st-conn'),
	connText: $('st-conn-text'),
	rtt: $('st-rtt'),
	rate: $('st-rate'),
	count: $('st-count'),
	epoch: $('st-epoch'),
	server: $('st-server'),
	clock: $('st-clock'),
	toast: $('toast'),
	banner: $('banner'),
	bannerText: $('banner-text'),
	retry: $('retry-now'),
}, conn, model);

/* An op the server refused: say why. (A dropped connection has no code; the
 * banner says that already.) */
function requestFailed(err) {
	if (err && err.code) status.toast('Server: ' + err.message, 'error');
}

const symbols = new Symbols({
	model,
	view,
	conn,
	form: $('add-form'),
	input: $('add-input'),
	suggestions: $('symbol-list'),
	grid: $('watchlist'),
	toast: (text, level) => status.toast(text, level),
	onError: requestFailed,
	onCount: (n) => status.count(n),
	selected: () => selected,
	select: selectSymbol,
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
		if (m.type === 'replay') replay.status(m);
		else if (m.type === 'error') status.toast('Server: ' + (m.message || m.code), 'error');
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
	status.server(h.epoch, h.server);
	replay.start(h.feed === 'replay');
	symbols.connected({ reconnect: helloCount > 1, epochChanged: changed });
	chart.serverChanged();
	drawQuote();
}

/* ---- top bar ------------------------------------------------------------ */

new ThemeToggle($('theme-toggle'), () => chart.applyTheme());

const replay = new ReplayControls({
	group: $('replay'),
	toggle: $('replay-toggle'),
	speed: $('replay-speed'),
	slider: $('replay-slider'),
	pos: $('replay-pos'),
	state: $('replay-state'),
	seekForm: $('replay-seek'),
	seekInput: $('replay-ts'),
}, conn, requestFailed);

/* ---- start -------------------------------------------------------------- */

symbols.restore();
drawQuote();
conn.start();

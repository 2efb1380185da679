// publisher dashboard: wires the client library, the view model and the views.
//
// The library (client/publisher.js, the same file any other client of the
// server uses) holds the connection, its transport and the book of symbol
// states; its state events go into the view model the moment they arrive,
// and the DOM is touched once per animation frame (frame() below), however
// many came in between.
//
// What each part does lives in its own module under js/: the view model
// (view-model.js), the watchlist grid (watchlist.js), the chart (chart.js),
// the quote panel (quote.js), the status bar and the banner (status.js), the
// watched symbols (symbols.js), the replay controls (replay.js), the time
// basis every time is shown in and its control (time-basis.js,
// time-basis-picker.js) and the theme button (theme-toggle.js). This file
// creates them, routes the library's events, and holds the one piece of
// state they share: the selected symbol (whose session zone the time basis
// follows).

import { PublisherClient } from './client/publisher.js';
import { ViewModel, SecondBars } from './js/view-model.js';
import { Watchlist } from './js/watchlist.js';
import { ChartView } from './js/chart.js';
import { QuotePanel } from './js/quote.js';
import { StatusBar } from './js/status.js';
import { Symbols } from './js/symbols.js';
import { ReplayControls } from './js/replay.js';
import { ThemeToggle } from './js/theme-toggle.js';
import { TapeView } from './js/tape.js';
import { AlertsPanel } from './js/alerts-panel.js';
import { CsvDownload } from './js/csv-download.js';
import { TimeBasis } from './js/time-basis.js';
import { TimeBasisPicker } from './js/time-basis-picker.js';
import { load, save } from './js/storage.js';

const $ = (id) => document.getElementById(id);

const client = new PublisherClient({ url: location.href });
const model = new ViewModel();
let selected = null;
let frameQueued = false;

/* ---- the time basis: every time on the page is on its clock -------------- */

const basis = new TimeBasis(load('timeBasis', null));
const picker = new TimeBasisPicker($('time-basis'), basis);
basis.onChange(() => {
	save('timeBasis', basis.basis);
	chart.timeBasisChanged();
	drawQuote();
	status.drawClock();
	replay.redraw();
	tape.redraw();
	alerts.drawList();
});
// Zone names such as EDT or EST are those of the time shown (a replay's
// position, which the replay controls give the basis, else now).
setInterval(() => picker.draw(), 1000);

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
	(msg) => client.request({ op: 'history', ...msg }),
	basis,
);
chart.onIntervalChange = (iv) => {
	for (const b of $('intervals').querySelectorAll('button'))
		b.setAttribute('aria-pressed', String(b.dataset.interval === iv));
};
$('intervals').addEventListener('click', (e) => {
	const b = e.target.closest('button[data-interval]');
	if (b) chart.setInterval(b.dataset.interval);
});

const quote = new QuotePanel({ symbol: $('q-symbol'), last: $('q-last'), chg: $('q-chg'), detail: $('detail') }, basis);

const csv = new CsvDownload($('csv-download'), chart, (text, level) => status.toast(text, level));
chart.onHistoryChange = () => csv.draw();

const tape = new TapeView({
	list: $('tape'),
	scroll: $('tape-scroll'),
	empty: $('tape-empty'),
	symbol: $('tape-symbol'),
}, (msg) => client.request({ op: 'history', ...msg }), basis);

const alerts = new AlertsPanel({
	form: $('alert-form'),
	kind: $('alert-kind'),
	value: $('alert-value'),
	target: $('alert-for'),
	list: $('alerts'),
	empty: $('alerts-empty'),
	notify: $('alerts-notify'),
	grid: $('watchlist'),
}, {
	selected: () => selected,
	quote: (s) => model.quotes.get(s),
	toast: (text, level) => status.toast(text, level),
	basis,
});

function drawQuote() {
	const q = selected === null ? null : model.quotes.get(selected);
	quote.draw(selected, q);
	alerts.target(selected, q);
}

function selectSymbol(s) {
	selected = s;
	if (s !== null) save('selected', s);
	basis.setSessionZone(s === null ? null : symbols.zoneOf(s));
	const q = s === null ? null : model.quotes.get(s) || null;
	chart.show(q);
	tape.show(s, q);
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
	tape.frame();
	if (quoteDirty) drawQuote();
	// A live re-sort, off-screen rows or a chart update are still due.
	if (view.pending || chart.pending) scheduleFrame();
}

/* ---- view model hooks --------------------------------------------------- */

model.onDirty = scheduleFrame;
model.onTrade = (q, sec, price, vol) => {
	if (!q.bars) q.bars = new SecondBars();
	q.bars.add(sec, price, vol);
	if (q === chart.quote) chart.trade(sec, price, vol);
};

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
	transport: $('st-transport'),
}, client, model, basis);

/* An op the server refused: say why. (A dropped connection has no code; the
 * banner says that already.) */
function requestFailed(err) {
	if (err && err.code) status.toast('Server: ' + err.message, 'error');
}

const symbols = new Symbols({
	model,
	view,
	client,
	form: $('add-form'),
	input: $('add-input'),
	suggestions: $('symbol-list'),
	grid: $('watchlist'),
	toast: (text, level) => status.toast(text, level),
	onError: requestFailed,
	onCount: (n) => status.count(n),
	selected: () => selected,
	select: selectSymbol,
	onZones: () => basis.setSessionZone(selected === null ? null : symbols.zoneOf(selected)),
});

/* ---- the library's events ---------------------------------------------- */

client.on('state', (e) => {
	model.update(e);
	tape.state(e);
	alerts.state(e);
});
client.on('connection', (c) => {
	view.setLive(c.state === 'open' || !c.everOpen);
	status.connection(c);
});
client.on('rtt', (ms) => status.rtt(ms));
client.on('epoch', (e) => {
	// Another store: the library dropped what it held. Redraw from nothing.
	if (!e.dropped) return;
	model.clear();
	view.renderAll();
	tape.clear();
});
client.on('session', (s) => {
	const h = s.hello;
	status.server(h.epoch, h.server);
	replay.start(h.feed === 'replay');
	symbols.connected(s);
	chart.serverChanged();
	// Trades missed while the connection was down come with the history.
	tape.show(selected, selected === null ? null : model.quotes.get(selected));
	drawQuote();
});
// Replay states the server broadcasts to every dashboard.
client.on('message', (m) => {
	if (m.type === 'replay') replay.status(m);
});
client.on('error', (err) => {
	if (err.code) status.toast('Server: ' + err.message, 'error');
	else console.warn('publisher:', err.message);
});

/* ---- top bar ------------------------------------------------------------ */

new ThemeToggle($('theme-toggle'), () => chart.applyTheme());

const replay = new ReplayControls({
	group: $('replay'),
	toggle: $('replay-toggle'),
	restart: $('replay-restart'),
	speed: $('replay-speed'),
	slider: $('replay-slider'),
	pos: $('replay-pos'),
	state: $('replay-state'),
	seekForm: $('replay-seek'),
	seekInput: $('replay-ts'),
}, client, requestFailed, basis, (ms) => basis.showing(ms));

/* ---- start -------------------------------------------------------------- */

symbols.restore();
drawQuote();
client.connect();

// The status page (/status, web/status/index.html): the server's own
// figures, read from GET /api/status once a second, each with the rate or
// level it comes to and a line of its last two minutes.
//
// The server sends counters as counters; rates are taken here from two
// successive samples, against the server's clock (now_ms), so a late answer
// does not make a spike. A restart (another start time) or a counter that
// went back starts the rates over rather than drawing a negative one.
//
// The token: the page's own ?token=, when its URL has one, goes to the API
// in the Authorization header (the URL's token is not sent on again);
// without one the browser's `token` cookie goes with the request, as for
// /api. With --auth-secret the token needs the admin claim; a refusal is
// shown in the banner with the server's reason, and asked again every five
// seconds (a login in another tab may set the cookie).
//
// Nothing here writes HTML: cards are built with DOM calls and lines are
// drawn on <canvas>, which the server's CSP allows (scripts and styles from
// files only).

import { ThemeToggle } from './theme-toggle.js';
import { setText } from './dom.js';

const SAMPLE_MS = 1000;
const RETRY_MS = 5000; // after a refusal
const HISTORY = 120; // samples drawn: two minutes at one a second

const grouped = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });

/* ---- formats -------------------------------------------------------------- */

function count(v) {
	return v === null || v === undefined ? '—' : grouped.format(v);
}

/** A rate: one decimal below 10, whole numbers above. */
function perSecond(v) {
	if (v === null || v === undefined) return '—';
	return v < 10 ? oneDecimal.format(v) : grouped.format(v);
}

function bytesPerSecond(v) {
	if (v === null) return '—';
	if (v >= 1e6) return oneDecimal.format(v / 1e6) + ' MB/s';
	if (v >= 1e3) return oneDecimal.format(v / 1e3) + ' kB/s';
	return grouped.format(v) + ' B/s';
}

/** A time in ms, in the unit that reads best: µs, ms or s. */
function millis(ms) {
	if (ms === null || ms === undefined) return '—';
	if (ms >= 1000) return oneDecimal.format(ms / 1000) + ' s';
	if (ms >= 10) return grouped.format(ms) + ' ms';
	if (ms >= 1) return oneDecimal.format(ms) + ' ms';
	return grouped.format(ms * 1000) + ' µs';
}

function percent(v) {
	return v === null ? '—' : oneDecimal.format(v * 100) + ' %';
}

function duration(s) {
	const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24;
	const m = Math.floor(s / 60) % 60, sec = Math.floor(s) % 60;
	const two = (n) => String(n).padStart(2, '0');
	if (d) return d + ' d ' + h + ' h';
	if (h) return h + ' h ' + two(m) + ' m';
	if (m) return m + ' m ' + two(sec) + ' s';
	return sec + ' s';
}

function utcTime(ms) {
	return new Date(ms).toISOString().slice(11, 19) + ' UTC';
}

/* ---- the figures -------------------------------------------------------- */

const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);
const refusedTotal = (s) => sum(s.refused.handshakes) + sum(s.refused.api) +
	sum(s.refused.subscribes) + s.refused.symbols;

/**
 * The change of get() per second from sample p to c, or null: no earlier
 * sample, or a counter that went back (the server started over).
 */
function rate(c, p, dt, get) {
	if (!p || !(dt > 0)) return null;
	const d = get(c) - get(p);
	return d >= 0 ? d / dt : null;
}

/* One card per figure: label, help (its one-line explanation), the value
 * charted (level), the text shown for it, and a line under it (detail).
 * level(c, p, dt) returns a number or null; c is this sample, p the last. */
const FIGURES = [
	{
		id: 'clients', label: 'Clients',
		help: 'Clients connected now: WebSockets plus Server-Sent Events and long-poll sessions (lingering ones included).',
		level: (c) => c.clients.total,
		text: count,
		detail: (c) => 'WebSocket ' + count(c.clients.websocket) + ' · SSE ' + count(c.clients.sse) +
			' · long-poll ' + count(c.clients.poll) + ' · of ' + count(c.clients.max),
	},
	{
		id: 'updates', label: 'Updates/s',
		help: 'Snapshots and deltas written to clients per second, all clients together.',
		level: (c, p, dt) => rate(c, p, dt, (s) => s.updates.sent),
		text: perSecond,
		detail: (c, p, dt) => perSecond(rate(c, p, dt, (s) => s.updates.frames)) + ' WebSocket frames/s · ' +
			bytesPerSecond(rate(c, p, dt, (s) => s.updates.bytes)),
	},
	{
		id: 'ticks', label: 'Ticks in/s',
		help: 'Ticks the engine applied per second: from the feed, or from Redis on an edge.',
		level: (c, p, dt) => rate(c, p, dt, (s) => s.ticks.applied),
		text: perSecond,
		detail: (c) => count(c.ticks.applied) + ' since start · ' + count(c.ticks.rejected) + ' rejected · ' +
			count(c.ticks.queued) + ' queued',
	},
	{
		id: 'store', label: 'Store lag',
		help: 'Age of the oldest tick waiting for the SQLite writer: 0 while it keeps up.',
		level: (c) => (c.store ? c.store.lag_s * 1000 : null),
		text: (v, c) => (c.store ? millis(v) : 'no store'),
		detail: (c, p, dt) => !c.store ? 'this server runs without one (--db none)'
			: count(c.store.queued) + ' queued · ' + perSecond(rate(c, p, dt, (s) => s.store.ticks_written)) +
				' stored/s · ' + count(c.store.ticks_written) + ' stored' +
				(c.store.failing ? ' · failing: ' + c.store.last_error : ''),
		bad: (c) => c.store && (c.store.failing || c.store.lag_s >= 1),
	},
	{
		id: 'feed', label: 'Feed',
		help: 'What the feed is doing, and the ticks it produced per second (the line).',
		level: (c, p, dt) => rate(c, p, dt, (s) => s.feed.ticks),
		// An edge has no feed of its own: its ticks come from Redis.
		text: (v, c) => (c.feed.state === 'none' && c.redis && c.redis.role === 'edge' ? 'from Redis' : c.feed.state),
		detail: (c, p, dt) => c.feed.kind + ' · ' + perSecond(rate(c, p, dt, (s) => s.feed.ticks)) + ' ticks/s' +
			(c.feed.idle_s !== undefined ? ' · last tick ' + millis(c.feed.idle_s * 1000) + ' ago' : '') +
			(c.feed.bad_lines ? ' · ' + count(c.feed.bad_lines) + ' bad lines' : ''),
		bad: (c) => c.feed.state === 'stopped',
	},
	{
		id: 'conflation', label: 'Conflation',
		help: 'Share of per-client updates merged into a later one in the last second: ticks merged ÷ (updates sent + ticks merged). 0 % while every client keeps up.',
		level: (c, p, dt) => {
			const merged = rate(c, p, dt, (s) => s.ticks.conflated);
			const sent = rate(c, p, dt, (s) => s.updates.sent);
			if (merged === null || sent === null) return null;
			return merged + sent > 0 ? merged / (merged + sent) : 0;
		},
		text: percent,
		detail: (c, p, dt) => perSecond(rate(c, p, dt, (s) => s.ticks.conflated)) + ' ticks merged/s · ' +
			count(c.ticks.conflated) + ' since start',
	},
	{
		id: 'latency', label: 'Update latency',
		help: 'Mean time from the engine flush that gave a client news to the write that sent it, over the last second.',
		level: (c, p) => {
			if (!p) return null;
			const n = c.updates.latency_count - p.updates.latency_count;
			return n > 0 ? ((c.updates.latency_sum_s - p.updates.latency_sum_s) / n) * 1000 : null;
		},
		text: millis,
		detail: (c) => count(c.updates.latency_count) + ' updates timed since start',
	},
	{
		id: 'errors', label: 'Errors/s',
		help: 'Error replies sent to clients per second, every code together (totals by code below).',
		level: (c, p, dt) => rate(c, p, dt, (s) => sum(s.errors)),
		text: perSecond,
		detail: (c) => count(sum(c.errors)) + ' since start',
		bad: (c, p, dt) => rate(c, p, dt, (s) => sum(s.errors)) > 0,
	},
	{
		id: 'refused', label: 'Refused/s',
		help: 'Connections, /api requests, subscribes and new symbols refused per second (reasons below).',
		level: (c, p, dt) => rate(c, p, dt, refusedTotal),
		text: perSecond,
		detail: (c) => count(refusedTotal(c)) + ' since start · ' + count(c.refused.tokens_expired) + ' tokens expired',
		bad: (c, p, dt) => rate(c, p, dt, refusedTotal) > 0,
	},
	{
		id: 'redis', label: 'Redis link',
		help: 'Scale-out through Redis: how far behind the link is (ingest: oldest tick not yet published; edge: age of the last entry read).',
		level: (c) => (c.redis ? c.redis.lag_s * 1000 : null),
		text: (v, c) => (!c.redis ? '—' : c.redis.connected ? millis(v) : 'down'),
		detail: (c) => !c.redis ? '' : c.redis.role + ' · ' + count(c.redis.ticks) + ' ticks · ' +
			count(c.redis.errors) + ' errors · ' + count(c.redis.reconnects) + ' reconnects',
		bad: (c) => c.redis && !c.redis.connected,
		onlyWith: (c) => c.redis !== null,
	},
];

/* ---- sparklines --------------------------------------------------------- */

let colours = null;

function themeColours() {
	const css = getComputedStyle(document.documentElement);
	const v = (name) => css.getPropertyValue(name).trim();
	return { line: v('--accent'), fill: v('--area-top'), bad: v('--neg'), grid: v('--border') };
}

/**
 * Draw values (oldest first, null for a gap) right-aligned, newest at the
 * right edge, scaled from 0 to the largest value shown (a flat line at the
 * bottom when all are 0).
 */
function drawSpark(canvas, values, bad) {
	const dpr = window.devicePixelRatio || 1;
	const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
	const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
	if (canvas.width !== w) canvas.width = w;
	if (canvas.height !== h) canvas.height = h;
	const ctx = canvas.getContext('2d');
	ctx.clearRect(0, 0, w, h);
	const pad = 2 * dpr;
	let max = 0;
	for (const v of values) if (v !== null && v > max) max = v;
	const step = (w - 2 * pad) / (HISTORY - 1);
	const x = (i) => w - pad - (values.length - 1 - i) * step;
	const y = (v) => h - pad - (max > 0 ? (v / max) * (h - 2 * pad) : 0);
	ctx.lineWidth = dpr;
	ctx.strokeStyle = colours.grid;
	ctx.beginPath();
	ctx.moveTo(0, h - pad + 0.5);
	ctx.lineTo(w, h - pad + 0.5);
	ctx.stroke();
	// Runs of values between gaps: filled below, stroked on top.
	let run = [];
	const flush = () => {
		if (!run.length) return;
		ctx.beginPath();
		ctx.moveTo(x(run[0]), h - pad);
		for (const i of run) ctx.lineTo(x(i), y(values[i]));
		ctx.lineTo(x(run[run.length - 1]), h - pad);
		ctx.closePath();
		ctx.fillStyle = colours.fill;
		ctx.fill();
		ctx.beginPath();
		run.forEach((i, k) => (k ? ctx.lineTo(x(i), y(values[i])) : ctx.moveTo(x(i), y(values[i]))));
		ctx.lineWidth = 1.5 * dpr;
		ctx.strokeStyle = bad ? colours.bad : colours.line;
		ctx.stroke();
		run = [];
	};
	values.forEach((v, i) => (v === null ? flush() : run.push(i)));
	flush();
	const last = values.length - 1;
	if (last >= 0 && values[last] !== null) {
		ctx.beginPath();
		ctx.arc(x(last), y(values[last]), 2 * dpr, 0, 2 * Math.PI);
		ctx.fillStyle = bad ? colours.bad : colours.line;
		ctx.fill();
	}
}

/* ---- the page ------------------------------------------------------------ */

function el(tag, cls, text) {
	const e = document.createElement(tag);
	if (cls) e.className = cls;
	if (text !== undefined) e.textContent = text;
	return e;
}

class StatusPage {
	constructor() {
		this.$ = (id) => document.getElementById(id);
		this.prev = null;
		this.samples = 0;
		this.headers = {};
		const token = new URLSearchParams(location.search).get('token');
		if (token) this.headers.Authorization = 'Bearer ' + token;
		this.cards = FIGURES.map((f) => this.card(f));
		colours = themeColours();
		new ThemeToggle(this.$('theme-toggle'), () => {
			colours = themeColours();
			this.redraw();
		});
		window.addEventListener('resize', () => this.redraw());
	}

	card(f) {
		const root = el('section', 'sp-card');
		root.dataset.figure = f.id;
		root.title = f.help;
		const head = el('h2', 'sp-label', f.label);
		const value = el('div', 'sp-value', '—');
		const detail = el('div', 'sp-detail', '');
		const canvas = el('canvas', 'sp-spark');
		canvas.setAttribute('aria-hidden', 'true');
		const help = el('p', 'sp-help', f.help);
		root.append(head, value, detail, canvas, help);
		if (f.onlyWith) root.hidden = true;
		this.$('sp-cards').append(root);
		return { f, root, value, detail, canvas, history: [], bad: false };
	}

	redraw() {
		for (const c of this.cards) if (!c.root.hidden) drawSpark(c.canvas, c.history, c.bad);
	}

	async sampleLoop() {
		const began = performance.now();
		let wait = SAMPLE_MS;
		try {
			const r = await fetch('/api/status', { headers: this.headers, cache: 'no-store', credentials: 'same-origin' });
			if (r.ok) {
				this.take(await r.json());
			} else {
				this.refused(r.status, (await r.text()).trim());
				wait = RETRY_MS;
			}
		} catch (e) {
			this.health('unreachable', 'Unreachable');
			this.banner('Cannot reach the server (' + (e && e.message ? e.message : e) + '); asking again every second.');
		}
		setTimeout(() => this.sampleLoop(), Math.max(0, wait - (performance.now() - began)));
	}

	refused(status, body) {
		this.health('refused', status === 401 ? 'Needs a token' : 'Not allowed');
		let why;
		if (status === 401)
			why = 'This server requires a token (--auth-secret) with the admin claim ("admin": true): open this page ' +
				'with ?token=… or sign in so that the browser holds a token cookie.';
		else if (status === 403) why = 'The server refused this token: ' + body.replace(/\.$/, '') + '.';
		else why = 'GET /api/status answered ' + status + ': ' + body.replace(/\.$/, '') + '.';
		this.banner(why + ' Asking again every five seconds.');
	}

	banner(text) {
		this.$('sp-banner').hidden = !text;
		setText(this.$('sp-banner-text'), text || '');
	}

	health(state, text) {
		this.$('sp-health').dataset.state = state;
		setText(this.$('sp-health-text'), text);
	}

	take(c) {
		let p = this.prev;
		// Another start time: the counters began again.
		if (p && p.server.started !== c.server.started) p = null;
		const dt = p ? (c.server.now_ms - p.server.now_ms) / 1000 : 0;
		this.banner('');
		if (c.server.degraded) this.health('degraded', 'Degraded: ' + c.server.degraded);
		else this.health('ok', 'Live');
		setText(this.$('sp-version'), c.server.version);
		setText(this.$('sp-epoch'), c.server.epoch);
		setText(this.$('sp-uptime'), duration(c.server.uptime_s));
		setText(this.$('sp-auth'), c.server.auth ? 'required' : 'not required');

		for (const card of this.cards) {
			const f = card.f;
			const shown = !f.onlyWith || f.onlyWith(c);
			if (card.root.hidden === shown) card.root.hidden = !shown;
			if (!shown) continue;
			const v = f.level(c, p, dt);
			card.history.push(v);
			if (card.history.length > HISTORY) card.history.shift();
			setText(card.value, f.text(v, c));
			setText(card.detail, f.detail(c, p, dt));
			card.bad = Boolean(f.bad && f.bad(c, p, dt));
			card.root.classList.toggle('bad', card.bad);
			card.root.dataset.state = f.id === 'feed' ? c.feed.state : '';
			drawSpark(card.canvas, card.history, card.bad);
		}
		this.lists(c);
		this.prev = c;
		this.samples++;
		document.body.dataset.samples = String(this.samples);
		setText(this.$('sp-sampled'), 'Last sample ' + utcTime(c.server.now_ms) + ' (server clock).');
	}

	/** The totals by code and by reason, each a term and its count. */
	lists(c) {
		const rows = (dl, pairs) => {
			if (dl.children.length !== pairs.length * 2) {
				dl.replaceChildren(...pairs.flatMap(([k]) => [el('dt', '', k), el('dd', '', '')]));
			}
			pairs.forEach(([k, v], i) => {
				setText(dl.children[2 * i], k);
				setText(dl.children[2 * i + 1], count(v));
				dl.children[2 * i + 1].classList.toggle('nonzero', v > 0);
			});
		};
		rows(this.$('sp-errors'), Object.entries(c.errors));
		const r = c.refused;
		rows(this.$('sp-refused'), [
			...Object.entries(r.handshakes).map(([k, v]) => ['connect: ' + k, v]),
			...Object.entries(r.api).map(([k, v]) => ['/api: ' + k, v]),
			...Object.entries(r.subscribes).map(([k, v]) => ['subscribe: ' + k, v]),
			['new symbol: max-symbols-total', r.symbols],
			['token expired (4001)', r.tokens_expired],
		]);
	}
}

// /status.html is another name of this page: go to /status with the same
// query (a ?token= goes along) and fragment.
if (/\.html$/.test(location.pathname)) {
	location.replace('/status' + location.search + location.hash);
} else {
	new StatusPage().sampleLoop();
}

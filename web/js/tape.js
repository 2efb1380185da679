// The time & sales tape of the selected symbol: its trades, newest first,
// each with its time, price, size and tick direction.
//
// It is seeded from the server's history (the `history` op's ticks: those
// with a `last` are trades) and extended from the client library's state
// events: a trade is an update in which last, last_size or trades changed.
// When conflation merged several trades into one update, the row is the
// last of them and says how many it stands for (the change of `trades`).
//
// The direction follows the tick rule: a trade above the one before is an
// up-tick, below it a down-tick, and one at the same price keeps the
// direction of the one before (a zero tick, drawn fainter).
//
// Times are on the clock of the page's time basis (time-basis.js); the one
// label beside the status bar's clock names it.
//
// It owns the tape pane's list, its empty note and its symbol label. app.js
// calls show() when the selection changes or a session begins, state() with
// every state event, frame() once per animation frame and clear() when the
// epoch changes. tradeFromState(), tradesFromHistory(), TapeRows and
// tickDirection() are the parts without DOM.

import { sub, sign, group } from '../client/publisher.js';
import { setText, setClass } from './dom.js';
import { clockText } from './timetext.js';

export const TAPE_ROWS = 200; // trades kept and shown
const HISTORY_TICKS = 2000; // ticks asked for: quotes come between the trades
const HISTORY_DELAY_MS = 120; // as the chart: arrow keys run through symbols

/**
 * The tick rule: the direction (1 up, -1 down) of a trade at `price` after
 * one at `prevPrice` whose direction was `prevDir` (0 when unknown), and
 * whether it was a zero tick (same price, direction carried over). Prices
 * are exact decimal text.
 */
export function tickDirection(prevPrice, price, prevDir) {
	if (prevPrice === undefined || prevPrice === null) return { dir: 0, zero: false };
	const s = sign(sub(price, prevPrice));
	if (s !== 0) return { dir: s, zero: false };
	return { dir: prevDir || 0, zero: true };
}

/**
 * The trade in a state event ({symbol, state, changed, previous, snapshot}
 * of the client library), or null when the update was no trade (a quote,
 * a snapshot). A trade is {seq, ts, price, size, merged}: seq and ts as the
 * server's text, price and size exact text (size undefined when the feed
 * sends none), merged the number of trades the update stands for (1 unless
 * conflation merged some).
 */
export function tradeFromState(e) {
	if (e.snapshot) return null;
	const c = e.changed;
	if (!('last' in c || 'last_size' in c || 'trades' in c)) return null;
	const f = e.state.fields;
	if (f.last === undefined) return null;
	let merged = 1;
	if ('trades' in c && e.previous.trades !== undefined && f.trades !== undefined) {
		const n = Number(f.trades) - Number(e.previous.trades);
		// A new session starts the count again: that is one trade.
		if (n > 1) merged = n;
	}
	return { seq: e.state.seq, ts: e.state.ts, price: f.last, size: f.last_size, merged };
}

/** The trades among history ticks (oldest first), oldest first. */
export function tradesFromHistory(ticks) {
	const out = [];
	for (const t of ticks) {
		if (t.last === undefined) continue;
		out.push({ seq: t.seq, ts: t.ts, price: t.last, size: t.last_size, merged: 1 });
	}
	return out;
}

const seqNumber = (s) => (s === undefined || s === null ? -1n : BigInt(s));

/**
 * The tape's rows, newest first, at most `cap`, each a trade with its
 * direction ({...trade, dir, zero}). Live trades may arrive before the
 * history that comes before them: seed() puts the history under them and
 * drops what both hold (by seq).
 */
export class TapeRows {
	constructor(cap = TAPE_ROWS) {
		this.cap = cap;
		this.rows = []; // newest first
	}

	/** Add a live trade; returns the row, or null when it is not newer. */
	add(trade) {
		const top = this.rows[0];
		if (top && seqNumber(trade.seq) <= seqNumber(top.seq)) return null;
		const d = tickDirection(top && top.price, trade.price, top ? top.dir : 0);
		const row = { ...trade, dir: d.dir, zero: d.zero };
		this.rows.unshift(row);
		if (this.rows.length > this.cap) this.rows.length = this.cap;
		return row;
	}

	/**
	 * History trades (oldest first) go under the live rows: those the live
	 * rows already hold are skipped, and the live rows' directions are
	 * worked out again on top of them. Returns the rows, newest first.
	 */
	seed(trades) {
		const live = this.rows.slice().reverse(); // oldest first
		const firstLive = live.length ? seqNumber(live[0].seq) : null;
		const all = trades.filter((t) => firstLive === null || seqNumber(t.seq) < firstLive).concat(live);
		this.rows = [];
		let prev = null;
		for (const t of all.slice(-this.cap - 1)) {
			const d = tickDirection(prev && prev.price, t.price, prev ? prev.dir : 0);
			prev = { ...t, dir: d.dir, zero: d.zero };
			this.rows.unshift(prev);
		}
		if (this.rows.length > this.cap) this.rows.length = this.cap;
		return this.rows;
	}

	clear() {
		this.rows = [];
	}
}

/**
 * The time of a trade (the protocol's µs text) as the tape shows it, on the
 * clock of `zt` (the time basis's ZonedTime; the browser's zone without).
 */
export function tapeTime(ts, zt) {
	return clockText(Number(ts) / 1000, true, zt);
}

/** The cells of a row: { time, price, size, merged, cls }. */
export function tapeCells(row, zt) {
	return {
		time: tapeTime(row.ts, zt),
		price: row.price,
		size: row.size === undefined ? '' : group(row.size),
		merged: row.merged > 1 ? '\u00d7' + row.merged : '',
		cls: 'tp' + (row.dir > 0 ? ' tp-up' : row.dir < 0 ? ' tp-down' : '') + (row.zero ? ' tp-zero' : ''),
	};
}

/* Rows are this tall (style.css: .tape > li); the list is drawn as a window
 * of the rows in view over a list of the full height. */
export const ROW_PX = 21;

/**
 * Which rows of `n` are in a view of `height` px scrolled to `top`: the
 * first (index) and how many, one more than fits so a partly shown row at
 * the bottom is drawn.
 */
export function rowWindow(n, top, height) {
	const first = Math.max(0, Math.min(Math.floor(top / ROW_PX), n - 1));
	return { first, count: Math.max(0, Math.min(n - first, Math.ceil(height / ROW_PX) + 1)) };
}

export class TapeView {
	/**
	 * els: list (the <ol>), scroll (its scroller), empty, symbol (the label
	 * in the pane's head). history(msg) sends a history op and returns a
	 * promise of the server's reply. basis: the TimeBasis (time-basis.js)
	 * whose clock the times are on; app.js calls redraw() when it changes.
	 */
	constructor(els, history, basis) {
		this.els = els;
		this.history = history;
		this.basis = basis;
		this.rows = new TapeRows();
		this.symbol = null;
		this.quote = null; // the ViewQuote of the symbol, when held
		this.added = 0; // live rows not drawn yet
		this.generation = 0;
		this.timer = 0;
		this.historyError = '';
		this.pool = []; // the <li>s of the rows in view: {li, t, p, s, m, key}
		this.scrollQueued = false;
		// The scroller's position and height, kept from its events: read in
		// the animation frame, after the other views' writes, they would
		// force a layout there.
		this.top = 0;
		this.height = 0;
		els.scroll.addEventListener('scroll', () => {
			this.top = els.scroll.scrollTop;
			this.queueDraw();
		}, { passive: true });
		new ResizeObserver((entries) => {
			this.height = entries[entries.length - 1].contentRect.height;
			this.queueDraw();
		}).observe(els.scroll);
	}

	/** Show the trades of `symbol` (null: none), `q` its ViewQuote if held. */
	show(symbol, q) {
		const gen = ++this.generation;
		this.symbol = symbol;
		this.rows.clear();
		this.added = 0;
		this.historyError = '';
		this.quote = q || null;
		this.els.scroll.scrollTop = this.top = 0;
		this.redraw();
		clearTimeout(this.timer);
		if (symbol === null) return;
		this.timer = setTimeout(() => {
			this.history({ symbol, limit: HISTORY_TICKS }).then((reply) => {
				if (gen !== this.generation) return;
				this.rows.seed(tradesFromHistory(reply.ticks || []));
				this.added = 0;
				this.redraw();
			}).catch((err) => {
				if (gen !== this.generation) return;
				// No store: the tape starts with the first live trade.
				this.historyError = err && err.code ? 'no history from the server' : '';
				this.redraw();
			});
		}, HISTORY_DELAY_MS);
	}

	/** Another epoch: what the tape shows belongs to the store's old life. */
	clear() {
		this.show(this.symbol, this.quote);
	}

	/** A state event of the client library. */
	state(e) {
		if (e.symbol !== this.symbol) return;
		const t = tradeFromState(e);
		if (!t) return;
		if (this.rows.add(t)) this.added++;
	}

	/**
	 * Once per animation frame: new trades go in at the top. A reader
	 * scrolled down keeps the rows he reads where they are.
	 */
	frame() {
		if (!this.added) return;
		if (this.top > 0) this.els.scroll.scrollTop = this.top += this.added * ROW_PX;
		this.added = 0;
		this.draw();
	}

	queueDraw() {
		if (this.scrollQueued) return;
		this.scrollQueued = true;
		requestAnimationFrame(() => {
			this.scrollQueued = false;
			this.draw();
		});
	}

	/*
	 * Only the rows in view are elements, their text rewritten as trades
	 * come: a new trade changes a screenful of cells, never moves hundreds
	 * of rows (which cost most of the page's frame at ten trades a second).
	 */
	draw() {
		const rows = this.rows.rows;
		const list = this.els.list;
		const { first, count } = rowWindow(rows.length, this.top, this.height);
		while (this.pool.length < count) this.pool.push(this.rowElement());
		while (this.pool.length > count) this.pool.pop().li.remove();
		for (const r of this.pool) if (!r.li.parentNode) list.appendChild(r.li);
		list.style.height = rows.length * ROW_PX + 'px';
		list.style.paddingTop = first * ROW_PX + 'px';
		const zt = this.basis.zt;
		for (let k = 0; k < count; k++) this.fill(this.pool[k], rows[first + k], first + k === 0, zt);
		this.els.empty.hidden = rows.length > 0;
	}

	rowElement() {
		const li = document.createElement('li');
		const t = document.createElement('span');
		t.className = 'tp-t';
		const p = document.createElement('span');
		p.className = 'tp-p';
		const s = document.createElement('span');
		s.className = 'tp-s';
		const m = document.createElement('span');
		m.className = 'tp-merged';
		li.append(t, p, s);
		return { li, t, p, s, m, key: null };
	}

	fill(el, row, newest, zt) {
		const key = row.seq + (newest ? '*' : '');
		if (el.key === key && el.zt === zt) return;
		el.key = key;
		el.zt = zt;
		const c = tapeCells(row, zt);
		setClass(el.li, c.cls + (newest ? ' tp-newest' : ''));
		el.li.dataset.seq = row.seq;
		setText(el.t, c.time);
		setText(el.p, c.price);
		el.s.textContent = c.size;
		if (c.merged) {
			el.m.textContent = c.merged;
			el.m.title = row.merged + ' trades in one update: the last of them is shown';
			el.s.appendChild(el.m);
		}
	}

	/** Every row drawn again (another symbol, the history came, the time basis changed). */
	redraw() {
		for (const r of this.pool) r.key = null;
		this.draw();
		setText(this.els.symbol, this.symbol || '');
		if (!this.rows.rows.length) {
			const q = this.quote;
			const quoteOnly = q && q.f.last === undefined && q.f.bid !== undefined;
			setText(this.els.empty, this.symbol === null ? 'Select a symbol to see its trades.'
				: quoteOnly ? this.symbol + ' has quotes but no trades.'
					: 'No trades of ' + this.symbol + ' yet' + (this.historyError ? ' (' + this.historyError + ')' : '') + '.');
		}
	}
}

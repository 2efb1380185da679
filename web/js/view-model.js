// What the views draw, taken from the client library's state events: for each
// watched symbol its latest state (the library's Quote, exact decimal text),
// which cells should flash and which way, the direction of the last trade,
// the most decimals seen in a price (every price of the symbol is shown with
// that many: precision.js), and a ring of one-second bars of recent trades.
// Nothing here touches the DOM, and the protocol's rules (seqs, gaps,
// resume) are the library's; views read `dirty` once per animation frame
// (see app.js).
//
// app.js feeds update() from the library's 'state' event and calls clear()
// when the epoch changes; symbols.js calls watch() and forget() as symbols
// join and leave the watchlist (a view holds on to the ViewQuote from then
// on, before any state arrives).

import { mid } from '../client/publisher.js';
import { decimalsOf, midDecimals } from './precision.js';

const PRICES = new Set(['bid', 'ask', 'last', 'open', 'high', 'low']);

/* Bars of the last ten minutes at one-second resolution, per symbol: the
 * chart's source when the server has no history, bounded whatever the rate. */
const RING_SECONDS = 600;

/**
 * What a change is measured against (exact text, or undefined): the close of
 * the previous trading session, or while there is none the session's open.
 */
export function changeBasis(f) {
	return f.prev_close !== undefined ? f.prev_close : f.open;
}

/**
 * What a change is measured on (exact text, or undefined): the last trade,
 * or for a symbol with quotes and no trades (FX) the exact mid of its bid
 * and ask, as the server takes for its previous close.
 */
export function changeValue(f) {
	if (f.last !== undefined) return f.last;
	return mid(f.bid, f.ask) ?? undefined;
}

/** The mid of a bid and an ask (for the chart: a double is fine there). */
export function midPrice(bid, ask) {
	return (Number(bid) + Number(ask)) / 2;
}

const NO_FIELDS = Object.freeze(Object.create(null));

/**
 * Recent trades as one-second OHLCV bars in a fixed ring of typed arrays, so a
 * page left open all day holds the same memory as after ten minutes.
 */
export class SecondBars {
	constructor(cap = RING_SECONDS) {
		this.cap = cap;
		this.n = 0;
		this.end = 0; // index after the newest bar
		this.t = new Float64Array(cap);
		this.o = new Float64Array(cap);
		this.h = new Float64Array(cap);
		this.l = new Float64Array(cap);
		this.c = new Float64Array(cap);
		this.v = new Float64Array(cap);
	}

	add(sec, price, vol) {
		const last = (this.end + this.cap - 1) % this.cap;
		if (this.n && this.t[last] === sec) {
			if (price > this.h[last]) this.h[last] = price;
			if (price < this.l[last]) this.l[last] = price;
			this.c[last] = price;
			this.v[last] += vol;
			return;
		}
		if (this.n && sec < this.t[last]) {
			if (sec > this.t[last] - 60) return; // a little late: ignore it
			this.n = 0; // time went back (a replay sought backwards): start over
			this.end = 0;
		}
		const i = this.end;
		this.t[i] = sec;
		this.o[i] = this.h[i] = this.l[i] = this.c[i] = price;
		this.v[i] = vol;
		this.end = (i + 1) % this.cap;
		if (this.n < this.cap) this.n++;
	}

	/** Bars of `iv` seconds built from the ring, oldest first. */
	aggregate(iv) {
		const out = [];
		let bar = null;
		for (let k = 0; k < this.n; k++) {
			const i = (this.end - this.n + k + this.cap) % this.cap;
			const t = Math.floor(this.t[i] / iv) * iv;
			if (bar && bar.t === t) {
				if (this.h[i] > bar.high) bar.high = this.h[i];
				if (this.l[i] < bar.low) bar.low = this.l[i];
				bar.close = this.c[i];
				bar.volume += this.v[i];
			} else {
				bar = { t, open: this.o[i], high: this.h[i], low: this.l[i], close: this.c[i], volume: this.v[i] };
				out.push(bar);
			}
		}
		return out;
	}
}

/** One watched symbol as the views see it. */
export class ViewQuote {
	constructor(symbol) {
		this.symbol = symbol;
		this.state = null; // the library's Quote, once it sent one
		this.flash = null; // field -> -1 | 0 | 1 changed since the last render
		this.scale = 0; // most decimals seen in a price: every price is shown with as many (precision.js)
		this.midScale = 0; // most decimals its exact mid price has had (quotes only: the chart's line)
		this.tick = 0; // direction of the last change of `last`
		this.bars = null; // SecondBars, from the first trade on
	}

	/** Field -> exact value text. */
	get f() {
		return this.state ? this.state.fields : NO_FIELDS;
	}

	get seq() {
		return this.state ? this.state.seq : null;
	}

	get ts() {
		return this.state ? this.state.ts : null;
	}
}

export class ViewModel {
	constructor() {
		this.quotes = new Map(); // symbol -> ViewQuote, from its first state on
		this.dirty = new Set();
		this.updates = 0; // states received, ever
		/** Hooks the app sets. */
		this.onTrade = () => {};
		this.onDirty = () => {};
	}

	/** Start showing a symbol (no value until its first state). */
	watch(symbol) {
		let q = this.quotes.get(symbol);
		if (!q) {
			q = new ViewQuote(symbol);
			this.quotes.set(symbol, q);
		}
		return q;
	}

	/** The library's 'state' event: {symbol, state, changed, previous, snapshot}. */
	update(e) {
		const q = this.watch(e.symbol);
		q.state = e.state;
		this.updates++;
		let flash = q.flash;
		if (!flash) flash = q.flash = Object.create(null);
		for (const k in e.changed) {
			const dir = e.changed[k];
			flash[k] = dir;
			const v = q.f[k];
			if (PRICES.has(k) && v !== undefined) {
				const s = decimalsOf(v);
				if (s > q.scale) q.scale = s;
				if (k === 'last' && dir) q.tick = dir;
			}
		}
		if (this.dirty.size === 0) this.onDirty();
		this.dirty.add(q);
		this.trade(q, e);
	}

	/* Bars follow trades; a symbol that only ever had quotes (FX, say) gets
	 * bars of its mid price instead. */
	trade(q, e) {
		const f = q.f;
		const changed = e.changed;
		const us = Number(q.ts);
		const sec = Number.isFinite(us) ? us / 1e6 : Date.now() / 1000;
		if (f.last !== undefined) {
			if ('last' in changed || 'volume' in changed || 'trades' in changed) {
				let dv = 0;
				if (!e.snapshot) {
					const before = 'volume' in e.previous ? e.previous.volume : f.volume;
					dv = Number(f.volume) - Number(before);
					if (!(dv >= 0)) dv = Number(f.last_size) || 0;
				}
				this.onTrade(q, sec, Number(f.last), dv);
			}
		} else if (f.bid !== undefined && f.ask !== undefined && ('bid' in changed || 'ask' in changed)) {
			const d = midDecimals(f.bid, f.ask);
			if (d > q.midScale) q.midScale = d;
			this.onTrade(q, sec, midPrice(f.bid, f.ask), 0);
		}
	}

	/** A symbol left the watchlist. */
	forget(symbol) {
		const q = this.quotes.get(symbol);
		if (q) {
			this.quotes.delete(symbol);
			this.dirty.delete(q);
		}
	}

	/** Another epoch: the library emptied its book; every view starts over. */
	clear() {
		for (const q of this.quotes.values()) {
			q.flash = null;
			q.tick = 0;
			q.bars = null;
			this.dirty.add(q);
		}
		this.onDirty();
	}
}

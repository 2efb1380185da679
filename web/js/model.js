// The in-memory model: the latest state of every watched symbol, applied the
// moment a frame arrives. Nothing here touches the DOM; views read `dirty`
// once per animation frame (see app.js).
//
// Protocol rules kept here (README, Protocol): a snapshot replaces what we
// hold; a delta applies when its `from` equals the seq we hold; a delta whose
// `from` is newer than what we hold means ticks are missing (a gap), and the
// app resubscribes that symbol with `resume`.
//
// Two more cases follow from what a delta is (every field changed after
// `from`, valued as of `seq`), and both happen when a gap resubscribe crosses
// deltas already in flight:
//  - from < held < seq: the delta covers everything after what we hold, so it
//    applies exactly (treating it as a gap would resubscribe again, and again,
//    each answer crossing the next batch of in-flight deltas);
//  - seq <= held: nothing newer than what we hold; ignored.

import { scaleOf } from './decimal.js';

const META = new Set(['type', 'symbol', 'seq', 'from', 'ts', 'id']);
const PRICES = new Set(['bid', 'ask', 'last', 'open', 'high', 'low']);

/* A gap resubscribe is not repeated for this long: deltas that were already in
 * flight behind the gap would otherwise each trigger one. */
const RESYNC_MS = 3000;

/* Bars of the last ten minutes at one-second resolution, per symbol: the
 * chart's source when the server has no history, bounded whatever the rate. */
const RING_SECONDS = 600;

/**
 * Recent trades as one-second OHLCV bars in a fixed ring of typed arrays, so a
 * page left open all day holds the same memory as after ten minutes.
 */
/** The mid of a bid and an ask (for the chart: a double is fine there). */
export function midPrice(bid, ask) {
	return (Number(bid) + Number(ask)) / 2;
}

/** A seq's text as a BigInt (exact past 2^53), or null. */
function seqValue(text) {
	return typeof text === 'string' && /^\d+$/.test(text) ? BigInt(text) : null;
}

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

export class Quote {
	constructor(symbol) {
		this.symbol = symbol;
		this.seq = null; // exact decimal text, as sent
		this.ts = null; // microseconds, as text
		this.f = Object.create(null); // field -> value text
		this.flash = null; // field -> -1 | 0 | 1 changed since the last render
		this.scale = 0; // most decimals seen in a price (the chart's precision)
		this.tick = 0; // direction of the last change of `last`
		this.resyncAt = null; // when we last resubscribed after a gap
		this.bars = null; // SecondBars, from the first trade on
	}
}

export class Model {
	constructor() {
		this.quotes = new Map();
		this.epoch = null;
		this.dirty = new Set();
		this.updates = 0; // snapshots and deltas applied, ever
		this.gaps = 0;
		/** Hooks the app sets. */
		this.onGap = () => {};
		this.onTrade = () => {};
		this.onDirty = () => {};
	}

	/** Start holding a symbol (no value until its snapshot). */
	watch(symbol) {
		let q = this.quotes.get(symbol);
		if (!q) {
			q = new Quote(symbol);
			this.quotes.set(symbol, q);
		}
		return q;
	}

	unwatch(symbol) {
		const q = this.quotes.get(symbol);
		if (q) {
			this.quotes.delete(symbol);
			this.dirty.delete(q);
		}
	}

	/** A different epoch: everything held belongs to another store. */
	clear() {
		for (const q of this.quotes.values()) {
			q.seq = null;
			q.ts = null;
			q.f = Object.create(null);
			q.flash = null;
			q.tick = 0;
			q.resyncAt = null;
			q.bars = null;
			this.dirty.add(q);
		}
		this.onDirty();
	}

	/** Apply a snapshot or delta. Updates for symbols we dropped are ignored. */
	apply(m) {
		const q = this.quotes.get(m.symbol);
		if (!q) return;
		const snapshot = m.type === 'snapshot';
		if (!snapshot && m.from !== q.seq) {
			const from = seqValue(m.from), seq = seqValue(m.seq), held = seqValue(q.seq);
			if (held !== null && seq !== null && seq <= held) return; // old news
			if (held === null || from === null || from > held) {
				const now = performance.now();
				if (q.resyncAt !== null && now - q.resyncAt < RESYNC_MS) return;
				q.resyncAt = now;
				this.gaps++;
				this.onGap(q);
				return;
			}
			// from < held < seq: a superset of what we miss; apply it.
		}
		this.updates++;
		q.resyncAt = null;
		const f = q.f;
		const prevVolume = f.volume;
		let flash = q.flash;
		if (!flash) flash = q.flash = Object.create(null);
		if (snapshot) {
			for (const k in f) {
				if (!(k in m)) {
					delete f[k];
					flash[k] = 0;
				}
			}
		}
		for (const k in m) {
			if (META.has(k)) continue;
			const v = m[k];
			const old = f[k];
			if (old === v) continue;
			f[k] = v;
			const dir = old === undefined ? 0 : Math.sign(Number(v) - Number(old));
			flash[k] = dir;
			if (PRICES.has(k)) {
				const s = scaleOf(v);
				if (s > q.scale) q.scale = s;
				if (k === 'last' && dir) q.tick = dir;
			}
		}
		q.seq = m.seq;
		if (m.ts !== undefined) q.ts = m.ts;
		if (this.dirty.size === 0) this.onDirty();
		this.dirty.add(q);

		// Bars follow trades; a symbol that only ever had quotes (FX, say)
		// gets bars of its mid price instead.
		const us = Number(q.ts);
		const sec = Number.isFinite(us) ? us / 1e6 : Date.now() / 1000;
		if (f.last !== undefined) {
			if ('last' in m || 'volume' in m || 'trades' in m) {
				let dv = 0;
				if (!snapshot) {
					dv = Number(f.volume) - Number(prevVolume);
					if (!(dv >= 0)) dv = Number(m.last_size) || 0;
				}
				this.onTrade(q, sec, Number(f.last), dv);
			}
		} else if (f.bid !== undefined && f.ask !== undefined && ('bid' in m || 'ask' in m)) {
			this.onTrade(q, sec, midPrice(f.bid, f.ask), 0);
		}
	}

	/** Symbols of `list` we hold a seq for, as {symbol: seqText}. */
	heldSeqs(list) {
		const out = [];
		for (const s of list) {
			const q = this.quotes.get(s);
			if (q && q.seq !== null && /^\d+$/.test(q.seq)) out.push([s, q.seq]);
		}
		return out;
	}
}

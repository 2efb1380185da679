// The quote panel above the chart: the selected symbol's name, last price and
// change against the previous session's close, and the detail list under the
// chart (sizes, spread, the session's open, high and low, trades, seq, time of
// the last update). Every price has the most decimals the symbol has shown
// (precision.js); the time is on the clock of the time basis (time-basis.js).
//
// It owns those elements and nothing else. app.js calls draw() when the
// selection changes, when a hello arrives, when the time basis changes, and
// in the animation frame when the selected symbol's quote is dirty.
// quoteView() is the part without DOM: what each element should say, from a
// ViewQuote of view-model.js and a ZonedTime (timetext.js).

import { group, sub, sign, signed, percent } from '../client/publisher.js';
import { setText, setClass } from './dom.js';
import { changeBasis, changeValue } from './view-model.js';
import { padDecimals } from './precision.js';

const DASH = '\u2014';

/**
 * What the panel shows for `symbol` and its quote (null or undefined when
 * nothing is selected or nothing is held): { symbol, last, lastClass, chg,
 * chgClass, details }, where details maps each detail's data-f name to its
 * text. Prices are the server's exact text, padded to the symbol's most
 * decimals; the change and the spread are exact decimal arithmetic on it.
 * The update time is on `zt`'s clock (a ZonedTime).
 */
export function quoteView(symbol, q, zt, now = Date.now()) {
	const f = q ? q.f : {};
	const scale = q ? q.scale : 0;
	// Every price with the most decimals the symbol has shown.
	const px = (s) => (s === undefined ? DASH : padDecimals(s, scale));
	const size = (s) => (s === undefined ? DASH : group(s));
	const basis = changeBasis(f);
	const chg = sub(changeValue(f), basis);
	const pct = percent(chg, basis); // null when the basis is zero
	const spread = sub(f.ask, f.bid);
	return {
		symbol: symbol ?? DASH,
		// A symbol with quotes and no trades shows its bid and ask instead.
		last: f.last === undefined && f.bid !== undefined ? px(f.bid) + ' / ' + px(f.ask) : px(f.last),
		lastClass: 'q-last' + (q && q.tick > 0 ? ' up' : q && q.tick < 0 ? ' down' : ''),
		chg: chg === null ? '' : padDecimals(signed(chg), scale) + (pct === null ? '' : '  ' + pct),
		chgClass: 'q-chg' + (sign(chg) > 0 ? ' pos' : sign(chg) < 0 ? ' neg' : ''),
		details: {
			bid_size: size(f.bid_size),
			ask_size: size(f.ask_size),
			spread: spread === null ? DASH : padDecimals(spread, scale),
			open: px(f.open),
			high: px(f.high),
			low: px(f.low),
			last_size: size(f.last_size),
			trades: size(f.trades),
			seq: q && q.seq !== null ? q.seq : DASH,
			ts: q && q.ts !== null ? zt.stamp(Number(q.ts) / 1000, now) : DASH,
		},
	};
}

export class QuotePanel {
	/**
	 * els: symbol, last, chg (the header's elements), detail (the <dl>);
	 * basis: the TimeBasis the update time is shown in.
	 */
	constructor(els, basis) {
		this.els = els;
		this.basis = basis;
		this.dds = [...els.detail.querySelectorAll('dd')];
	}

	/** Show `symbol` (or null for none) with its quote `q` (or null). */
	draw(symbol, q) {
		const v = quoteView(symbol, q, this.basis.zt);
		setText(this.els.symbol, v.symbol);
		setText(this.els.last, v.last);
		setClass(this.els.last, v.lastClass);
		setText(this.els.chg, v.chg);
		setClass(this.els.chg, v.chgClass);
		for (const dd of this.dds) setText(dd, v.details[dd.dataset.f]);
	}
}

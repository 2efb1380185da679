// The chart of the selected symbol: TradingView Lightweight Charts (vendored
// under web/vendor/, loaded as a classic script before the modules run).
//
// Bars come from the server's history (`history` with an interval) when it
// has a store; live trades then extend the last bar or open a new one. When
// history answers an error the chart builds its bars from live updates alone,
// starting from the one-second ring every watched symbol keeps (view-model.js).
//
// Times: the protocol speaks UTC microseconds; the chart gets UTC seconds and
// its axis and crosshair labels say them on the clock of the time basis
// (time-basis.js), through the formatters of timetext.js that every other
// time on the page goes through too. Shifting the data into the zone instead
// would make time run backwards at a daylight-saving change, which the
// library refuses.
//
// A symbol the server has no data for yet says so ("No data yet for X");
// one with data but no bar yet waits for its first trade (or quote).

import { load, save } from './storage.js';
import { group } from '../client/publisher.js';
import { midPrice } from './view-model.js';
import { chartTickMark, chartCrosshair } from './timetext.js';
import { midDecimals } from './precision.js';

export const INTERVALS = { '1s': 1, '1m': 60, '5m': 300, '1h': 3600, '1d': 86400 };
const HISTORY_LIMIT = 500; // bars
const TICKS_LIMIT = 2000; // ticks, for symbols with quotes and no trades
/* Without a choice of the user's, the chart shows 1m bars, or 1s bars while
 * the server has fewer 1m bars than this (a fresh store) or no history. */
const SPARSE_BARS = 20;
const HISTORY_DELAY_MS = 120;
const MAX_BARS = 5000; // trimmed back to TRIM_TO when exceeded
const TRIM_TO = 4000;
/* Live bars reach the chart at most ten times a second: each update repaints
 * the whole canvas, and a candle that moves faster than that is not read. */
const UPDATE_MS = 100;

/** A symbol that has quotes and has never traded. */
function quoteOnly(q) {
	return q.f.last === undefined && q.f.bid !== undefined && q.f.ask !== undefined;
}

function cssVar(name) {
	return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/* Mid-price bars from history ticks (oldest first), carrying each side
 * forward when a tick has only one; shaped like the server's bars (t in µs).
 * out.decimals: the most decimals an exact mid among them has. */
function midBars(ticks, iv) {
	const out = [];
	out.decimals = 0;
	let bid, ask, bar = null;
	for (const t of ticks) {
		if (t.bid !== undefined) bid = String(t.bid);
		if (t.ask !== undefined) ask = String(t.ask);
		if (bid === undefined || ask === undefined) continue;
		const p = midPrice(bid, ask);
		if (t.bid !== undefined || t.ask !== undefined) out.decimals = Math.max(out.decimals, midDecimals(bid, ask));
		const sec = Math.floor(Number(t.ts) / 1e6 / iv) * iv;
		if (bar && bar.sec === sec) {
			bar.high = Math.max(bar.high, p);
			bar.low = Math.min(bar.low, p);
			bar.close = p;
		} else if (!bar || sec > bar.sec) {
			bar = { sec, t: sec * 1e6, open: p, high: p, low: p, close: p, volume: 0 };
			out.push(bar);
		}
	}
	return out;
}

export class ChartView {
	/**
	 * els: chart, legend, note, empty. history(msg) sends a history op
	 * ({symbol, interval, limit} or {symbol, limit}) and returns a promise of
	 * the server's reply. basis: the TimeBasis its time labels follow
	 * (call timeBasisChanged() when it changes).
	 */
	constructor(els, history, basis) {
		this.els = els;
		this.history = history;
		this.basis = basis;
		this.mid = false; // bars of the mid price: the symbol has no trades
		this.lib = window.LightweightCharts;
		this.symbol = null;
		this.quote = null;
		this.userInterval = INTERVALS[load('interval', null)] ? load('interval', null) : null;
		this.historyOk = null; // null unknown, true served, false unavailable
		this.sparse = false; // the store holds little yet: default to 1s
		this.historyError = '';
		this.bars = []; // {t (UTC s), open, high, low, close, volume}
		this.pendingBars = []; // bars to push to the series on the next frame
		this.generation = 0; // bumps on every reload: late replies are ignored
		this.historyTimer = 0;
		this.scale = -1;
		this.hover = null;
		this.lastUpdate = 0;
		this.legend = null; // value spans, built once
		this.onIntervalChange = () => {};
		/* After a reload and after history came or was refused. */
		this.onHistoryChange = () => {};
		if (!this.lib) {
			this.els.note.textContent = 'Chart library not loaded (web/vendor/lightweight-charts is missing: run make vendor).';
			return;
		}
		this.create();
	}

	get interval() {
		if (this.userInterval) return this.userInterval;
		return this.historyOk === false || this.sparse ? '1s' : '1m';
	}

	create() {
		const L = this.lib;
		this.chart = L.createChart(this.els.chart, {
			autoSize: true,
			layout: {
				attributionLogo: false, // the page links TradingView itself: the logo needs an inline <style>
				fontFamily: getComputedStyle(document.body).fontFamily,
				fontSize: 11,
			},
			crosshair: { mode: L.CrosshairMode.Normal },
			rightPriceScale: { scaleMargins: { top: 0.08, bottom: 0.24 } },
			timeScale: {
				timeVisible: true, secondsVisible: false, rightOffset: 6, barSpacing: 7, minBarSpacing: 1.5,
				maxBarSpacing: 16,
			},
			localization: { priceFormatter: (p) => this.fmtPrice(p) },
		});
		this.timeBasisChanged();
		this.candles = this.chart.addSeries(L.CandlestickSeries, {
			borderVisible: false,
			priceLineStyle: L.LineStyle.Dotted,
		});
		this.volume = this.chart.addSeries(L.HistogramSeries, {
			priceScaleId: 'volume',
			priceFormat: { type: 'volume' },
			lastValueVisible: false,
			priceLineVisible: false,
		});
		this.chart.priceScale('volume').applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
		// Quotes without trades (FX, say) are drawn as a line of the mid price.
		this.line = this.chart.addSeries(L.AreaSeries, {
			visible: false,
			lineWidth: 2,
			priceLineStyle: L.LineStyle.Dotted,
		});
		this.chart.subscribeCrosshairMove((p) => {
			this.hover = p && p.time !== undefined ? this.barAt(p.time) : null;
			this.drawLegend();
		});
		this.applyTheme();
	}

	/* The axis and crosshair labels on the time basis's clock. New functions
	 * each time: the library redraws its labels when they change. */
	timeBasisChanged() {
		if (!this.chart) return;
		const zt = this.basis.zt;
		const daily = () => INTERVALS[this.interval] >= 86400;
		this.chart.applyOptions({
			timeScale: { tickMarkFormatter: (time, type) => chartTickMark(zt, time, type, daily()) },
			localization: { timeFormatter: (time) => chartCrosshair(zt, time) },
		});
	}

	applyTheme() {
		if (!this.chart) return;
		const text = cssVar('--muted'), grid = cssVar('--grid'), border = cssVar('--border');
		this.up = cssVar('--up');
		this.down = cssVar('--down');
		this.upVol = cssVar('--up-vol');
		this.downVol = cssVar('--down-vol');
		this.chart.applyOptions({
			layout: { background: { type: 'solid', color: cssVar('--panel') }, textColor: text },
			grid: { vertLines: { color: grid }, horzLines: { color: grid } },
			rightPriceScale: { borderColor: border },
			timeScale: { borderColor: border },
			crosshair: {
				vertLine: { color: text, labelBackgroundColor: cssVar('--crosshair-label') },
				horzLine: { color: text, labelBackgroundColor: cssVar('--crosshair-label') },
			},
		});
		this.candles.applyOptions({
			upColor: this.up, downColor: this.down, wickUpColor: this.up, wickDownColor: this.down,
		});
		const accent = cssVar('--accent');
		this.line.applyOptions({
			lineColor: accent, topColor: cssVar('--area-top'), bottomColor: cssVar('--area-bottom'),
			crosshairMarkerBackgroundColor: accent,
		});
		this.redraw();
	}

	/* Show the latest bars: all of them spread over the pane while they are
	 * few (a fresh store), else the most recent at the default spacing. */
	frameView() {
		const ts = this.chart.timeScale();
		if (this.bars.length && this.bars.length * 7 < ts.width()) ts.fitContent();
		else {
			ts.applyOptions({ barSpacing: 7 });
			ts.scrollToRealTime();
		}
	}

	/** The bar shown at chart time `time`, or null (bars are sorted by time). */
	barAt(time) {
		const bars = this.bars;
		let lo = 0, hi = bars.length - 1;
		while (lo <= hi) {
			const mid = (lo + hi) >> 1;
			const t = bars[mid].t;
			if (t === time) return bars[mid];
			if (t < time) lo = mid + 1;
			else hi = mid - 1;
		}
		return null;
	}

	/**
	 * What the chart shows: the times (UTC s) of the first and the last bar
	 * in view and the bars' interval (s); null before it has drawn any.
	 */
	visibleRange() {
		const r = this.chart && this.chart.timeScale().getVisibleRange();
		return r ? { from: Number(r.from), to: Number(r.to), interval: INTERVALS[this.interval] } : null;
	}

	/* Candles and volume for a symbol with trades; a line of the mid price
	 * for one that only has quotes. */
	setMode(mid) {
		this.mid = mid;
		this.candles.applyOptions({ visible: !mid });
		this.volume.applyOptions({ visible: !mid });
		this.line.applyOptions({ visible: mid });
	}

	fmtPrice(p) {
		return this.scale >= 0 ? p.toFixed(this.scale) : String(p);
	}

	/** Show `quote`'s symbol (a Quote from the model, or null). */
	show(quote) {
		this.quote = quote;
		this.symbol = quote ? quote.symbol : null;
		this.reload();
	}

	setInterval(iv) {
		if (!INTERVALS[iv]) return;
		this.userInterval = iv;
		save('interval', iv);
		this.reload();
	}

	/** A new connection: the server may have gained (or lost) its store. */
	serverChanged() {
		this.historyOk = null;
		this.sparse = false;
		this.reload();
	}

	reload() {
		const gen = ++this.generation;
		const iv = this.interval;
		this.onIntervalChange(iv);
		this.scale = -1;
		this.bars = [];
		this.pendingBars = [];
		this.hover = null;
		if (!this.chart) return;
		this.chart.applyOptions({ timeScale: { secondsVisible: INTERVALS[iv] < 60 } });
		const q = this.quote;
		this.setMode(Boolean(q && quoteOnly(q)));
		this.updatePrecision();
		if (q && q.bars) this.bars = q.bars.aggregate(INTERVALS[iv]);
		this.redraw();
		this.frameView();
		this.note();
		clearTimeout(this.historyTimer);
		if (!q || this.historyOk === false) return;
		// Arrow keys held down run through many symbols: ask for the history
		// of the one the selection settles on.
		this.historyTimer = setTimeout(() => this.fetchHistory(gen, q, iv), HISTORY_DELAY_MS);
	}

	fetchHistory(gen, q, iv) {
		this.history({ symbol: q.symbol, interval: iv, limit: HISTORY_LIMIT }).then((reply) => {
			if (gen !== this.generation) return null;
			this.historyOk = true;
			const bars = reply.bars || [];
			if (!this.userInterval && iv === '1m' && bars.length < SPARSE_BARS) {
				this.sparse = true;
				this.reload();
				return null;
			}
			// Server bars are of trades. A symbol that only has quotes gets
			// bars of its mid price, built here from its recent ticks.
			if (bars.length || q.f.last !== undefined) {
				this.seed(bars);
				this.note();
				return null;
			}
			return this.history({ symbol: q.symbol, limit: TICKS_LIMIT }).then((t) => {
				if (gen !== this.generation) return;
				const bars = midBars(t.ticks || [], INTERVALS[iv]);
				if (bars.decimals > q.midScale) q.midScale = bars.decimals;
				this.seed(bars);
				this.note();
			});
		}).catch((err) => {
			if (gen !== this.generation) return;
			if (err && err.code) {
				// The server answered: it has no history for us. Build from
				// live updates; the interval may change (1s without history).
				this.historyOk = false;
				this.historyError = err.message || err.code;
				if (this.interval !== iv) this.reload();
				else this.note();
			}
		});
	}

	/* History bars first, then whatever live bars are newer than the last of
	 * them; a live bar in the same interval as the last history bar is merged. */
	seed(raw) {
		const hist = [];
		for (const b of raw) {
			const bar = {
				t: Math.floor(Number(b.t) / 1e6),
				open: Number(b.open), high: Number(b.high), low: Number(b.low), close: Number(b.close),
				volume: Number(b.volume) || 0,
			};
			if (Number.isFinite(bar.t) && Number.isFinite(bar.close)) hist.push(bar);
		}
		if (!hist.length) return;
		const lastT = hist[hist.length - 1].t;
		for (const live of this.bars) {
			if (live.t > lastT) hist.push(live);
			else if (live.t === lastT) {
				const h = hist[hist.length - 1];
				h.high = Math.max(h.high, live.high);
				h.low = Math.min(h.low, live.low);
				h.close = live.close;
			}
		}
		this.bars = hist;
		this.updatePrecision();
		this.redraw();
		this.frameView();
	}

	/** A trade of the selected symbol (time in UTC seconds). */
	trade(sec, price, vol) {
		if (!Number.isFinite(price)) return;
		const iv = INTERVALS[this.interval];
		const t = Math.floor(sec / iv) * iv;
		const bars = this.bars;
		let last = bars[bars.length - 1];
		if (last && t === last.t) {
			if (price > last.high) last.high = price;
			if (price < last.low) last.low = price;
			last.close = price;
			last.volume += vol;
		} else if (!last || t > last.t) {
			last = { t, open: price, high: price, low: price, close: price, volume: vol };
			bars.push(last);
		} else if (t < last.t - 2 * iv) {
			// Time went back: a replay was sought backwards. Start over there.
			this.bars = bars.filter((b) => b.t < t);
			this.bars.push({ t, open: price, high: price, low: price, close: price, volume: vol });
			this.redraw();
			return;
		} else {
			return; // a little older than the bar we show: ignore it
		}
		if (this.pendingBars[this.pendingBars.length - 1] !== last) this.pendingBars.push(last);
	}

	/* The decimals prices are shown with: the most the symbol has shown,
	 * or, for the mid price of a symbol with quotes only, the most its
	 * exact mid has had (24.925 of 24.82 and 25.03), never rounded. */
	get precision() {
		const q = this.quote;
		return q ? Math.min(this.mid ? Math.max(q.scale, q.midScale) : q.scale, 10) : 2;
	}

	updatePrecision() {
		const scale = this.precision;
		if (scale === this.scale || !this.chart) return;
		this.scale = scale;
		const priceFormat = { type: 'price', precision: scale, minMove: 10 ** -scale };
		this.candles.applyOptions({ priceFormat });
		this.line.applyOptions({ priceFormat });
	}

	/** True while live bars wait for the next chart update. */
	get pending() {
		return this.pendingBars.length > 0;
	}

	/** Once per animation frame. */
	frame(now) {
		if (!this.chart) return;
		const q = this.quote;
		if (q && this.precision !== this.scale) this.updatePrecision();
		// The first state of a symbol that had no data: say what it waits for now.
		if (!this.els.empty.hidden && q && this.els.empty.dataset.noData === 'true' && q.seq !== null) this.drawEmpty();
		if (q && quoteOnly(q) !== this.mid) {
			this.setMode(!this.mid);
			this.updatePrecision();
			this.redraw();
			this.note();
		}
		if (this.bars.length > MAX_BARS) {
			this.bars = this.bars.slice(-TRIM_TO);
			this.pendingBars = [];
			this.redraw();
			return;
		}
		if (!this.pendingBars.length || now - this.lastUpdate < UPDATE_MS) return;
		this.lastUpdate = now;
		try {
			for (const b of this.pendingBars) {
				if (this.mid) {
					this.line.update(this.point(b));
				} else {
					this.candles.update(this.candle(b));
					this.volume.update(this.vol(b));
				}
			}
		} catch (e) {
			// The library refuses a bar older than its last one; bars are
			// kept in order, so this is a bug, but a full redraw recovers.
			console.warn('publisher: chart update refused, redrawing', e);
			this.redraw();
		}
		this.pendingBars = [];
		this.els.empty.hidden = true;
		if (!this.hover) this.drawLegend();
	}

	candle(b) {
		return { time: b.t, open: b.open, high: b.high, low: b.low, close: b.close };
	}

	point(b) {
		return { time: b.t, value: b.close };
	}

	vol(b) {
		return { time: b.t, value: b.volume, color: b.close >= b.open ? this.upVol : this.downVol };
	}

	redraw() {
		if (!this.chart) return;
		this.pendingBars = []; // all of this.bars goes in below
		const none = [];
		this.candles.setData(this.mid ? none : this.bars.map((b) => this.candle(b)));
		this.volume.setData(this.mid ? none : this.bars.map((b) => this.vol(b)));
		this.line.setData(this.mid ? this.bars.map((b) => this.point(b)) : none);
		this.drawEmpty();
		this.drawLegend();
	}

	/* Over an empty chart, why it is empty: the server has no data for the
	 * symbol yet, or it has some but no bar to draw yet. */
	drawEmpty() {
		const q = this.quote;
		const el = this.els.empty;
		el.hidden = this.bars.length > 0 || !this.symbol;
		if (el.hidden) return;
		const text = !q || q.seq === null ? 'No data yet for ' + this.symbol
			: 'Waiting for the first ' + (this.mid ? 'quote' : 'trade') + ' of ' + this.symbol + '…';
		if (el.textContent !== text) el.textContent = text;
		el.dataset.noData = String(!q || q.seq === null);
	}

	/* O H L C Vol of the hovered bar, else of the latest one. The spans are
	 * made once; later calls only change text that changed. */
	drawLegend() {
		const el = this.els.legend;
		if (!this.legend) {
			this.legend = [];
			for (const label of ['O', 'H', 'L', 'C', 'Vol']) {
				const k = document.createElement('span');
				k.className = 'lg-k';
				k.textContent = label;
				const v = document.createElement('span');
				el.append(k, v);
				this.legend.push(v);
			}
		}
		const b = this.hover || this.bars[this.bars.length - 1];
		el.hidden = !b;
		if (!b) return;
		const cls = 'lg-v ' + (b.close >= b.open ? 'pos' : 'neg');
		const text = [b.open, b.high, b.low, b.close].map((p) => this.fmtPrice(p));
		text.push(group(String(Math.round(b.volume ?? 0))));
		el.classList.toggle('no-volume', this.mid);
		this.legend.forEach((v, i) => {
			if (v.textContent !== text[i]) v.textContent = text[i];
			const c = i < 4 ? cls : 'lg-v';
			if (v.className !== c) v.className = c;
		});
	}

	note() {
		let text = '', title = '';
		const q = this.quote;
		if (q && quoteOnly(q)) {
			text = 'Mid price: ' + q.symbol + ' has quotes but no trades.';
		} else if (this.historyOk === false) {
			text = 'No history from the server: bars are built from live updates since this page opened.';
			title = 'Server: ' + this.historyError;
		} else if (this.historyOk === null && this.symbol) {
			text = 'Loading history…';
		}
		this.els.note.textContent = text;
		this.els.note.title = title;
		this.onHistoryChange();
	}
}

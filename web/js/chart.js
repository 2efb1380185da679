// The chart of the selected symbol: TradingView Lightweight Charts (vendored
// under web/vendor/, loaded as a classic script before the modules run).
//
// Bars come from the server's history (`history` with an interval) when it
// has a store; live trades then extend the last bar or open a new one. When
// history answers an error the chart builds its bars from live updates alone,
// starting from the one-second ring every watched symbol keeps (model.js).
//
// Times: the protocol speaks UTC microseconds; the chart's axis shows the
// viewer's local time, so bar times are shifted by the local UTC offset.

import { load, save } from './storage.js';
import { group } from './decimal.js';

export const INTERVALS = { '1s': 1, '1m': 60, '5m': 300, '1h': 3600, '1d': 86400 };
const HISTORY_LIMIT = 500;
const MAX_BARS = 5000; // trimmed back to TRIM_TO when exceeded
const TRIM_TO = 4000;
/* Live bars reach the chart at most ten times a second: each update repaints
 * the whole canvas, and a candle that moves faster than that is not read. */
const UPDATE_MS = 100;

function localTime(sec) {
	return sec - new Date(sec * 1000).getTimezoneOffset() * 60;
}

function cssVar(name) {
	return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

export class ChartView {
	/**
	 * els: chart, legend, note, empty. history(symbol, interval) returns a
	 * promise of the server's history reply.
	 */
	constructor(els, history) {
		this.els = els;
		this.history = history;
		this.lib = window.LightweightCharts;
		this.symbol = null;
		this.quote = null;
		this.userInterval = INTERVALS[load('interval', null)] ? load('interval', null) : null;
		this.historyOk = null; // null unknown, true served, false unavailable
		this.historyError = '';
		this.bars = []; // {t (UTC s), open, high, low, close, volume}
		this.pendingBars = []; // bars to push to the series on the next frame
		this.generation = 0; // bumps on every reload: late replies are ignored
		this.scale = -1;
		this.hover = null;
		this.lastUpdate = 0;
		this.legend = null; // value spans, built once
		this.onIntervalChange = () => {};
		if (!this.lib) {
			this.els.note.textContent = 'Chart library not loaded (web/vendor/lightweight-charts is missing: run make vendor).';
			return;
		}
		this.create();
	}

	get interval() {
		if (this.userInterval) return this.userInterval;
		return this.historyOk === false ? '1s' : '1m';
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
			timeScale: { timeVisible: true, secondsVisible: false, rightOffset: 6, barSpacing: 7, minBarSpacing: 1.5 },
			localization: { priceFormatter: (p) => this.fmtPrice(p) },
		});
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
		this.chart.subscribeCrosshairMove((p) => {
			const c = p && p.time !== undefined ? p.seriesData.get(this.candles) : null;
			const v = c ? p.seriesData.get(this.volume) : null;
			this.hover = c ? { ...c, volume: v ? v.value : 0 } : null;
			this.drawLegend();
		});
		this.applyTheme();
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
		this.redraw();
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
		this.updatePrecision();
		if (!this.chart) return;
		this.chart.applyOptions({ timeScale: { secondsVisible: INTERVALS[iv] < 60 } });
		const q = this.quote;
		if (q && q.bars) this.bars = q.bars.aggregate(INTERVALS[iv]);
		this.redraw();
		this.chart.timeScale().scrollToRealTime();
		this.note();
		if (!q || this.historyOk === false) return;
		this.history(q.symbol, iv).then((reply) => {
			if (gen !== this.generation) return;
			this.historyOk = true;
			this.seed(reply.bars || []);
			this.note();
		}, (err) => {
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
		this.chart.timeScale().scrollToRealTime();
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
		} else {
			return; // older than the bar we show: conflation or clock skew
		}
		if (this.pendingBars[this.pendingBars.length - 1] !== last) this.pendingBars.push(last);
	}

	updatePrecision() {
		const q = this.quote;
		const scale = q ? Math.min(q.scale, 10) : 2;
		if (scale === this.scale || !this.chart) return;
		this.scale = scale;
		this.candles.applyOptions({ priceFormat: { type: 'price', precision: scale, minMove: 10 ** -scale } });
	}

	/** True while live bars wait for the next chart update. */
	get pending() {
		return this.pendingBars.length > 0;
	}

	/** Once per animation frame. */
	frame(now) {
		if (!this.chart) return;
		if (this.quote && this.quote.scale !== this.scale) this.updatePrecision();
		if (this.bars.length > MAX_BARS) {
			this.bars = this.bars.slice(-TRIM_TO);
			this.pendingBars = [];
			this.redraw();
			return;
		}
		if (!this.pendingBars.length || now - this.lastUpdate < UPDATE_MS) return;
		this.lastUpdate = now;
		for (const b of this.pendingBars) {
			this.candles.update(this.candle(b));
			this.volume.update(this.vol(b));
		}
		this.pendingBars = [];
		this.els.empty.hidden = true;
		if (!this.hover) this.drawLegend();
	}

	candle(b) {
		return { time: localTime(b.t), open: b.open, high: b.high, low: b.low, close: b.close };
	}

	vol(b) {
		return { time: localTime(b.t), value: b.volume, color: b.close >= b.open ? this.upVol : this.downVol };
	}

	redraw() {
		if (!this.chart) return;
		this.candles.setData(this.bars.map((b) => this.candle(b)));
		this.volume.setData(this.bars.map((b) => this.vol(b)));
		this.els.empty.hidden = this.bars.length > 0 || !this.symbol;
		this.els.empty.textContent = 'Waiting for the first trade of ' + (this.symbol || '') + '…';
		this.drawLegend();
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
		this.legend.forEach((v, i) => {
			if (v.textContent !== text[i]) v.textContent = text[i];
			const c = i < 4 ? cls : 'lg-v';
			if (v.className !== c) v.className = c;
		});
	}

	note() {
		let text = '', title = '';
		if (this.historyOk === false) {
			text = 'No history from the server: bars are built from live updates since this page opened.';
			title = 'Server: ' + this.historyError;
		} else if (this.historyOk === null && this.symbol) {
			text = 'Loading history…';
		}
		this.els.note.textContent = text;
		this.els.note.title = title;
	}
}

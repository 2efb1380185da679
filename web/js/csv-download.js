// The chart's CSV button: downloads the ticks of the selected symbol over
// the time the chart shows, from the server's /api/export (the same CSV the
// replay feed reads, every price exactly as stored). The server names the
// file (Content-Disposition: SYMBOL-FROM-TO.csv); the page only builds the
// address.
//
// The range is the chart's: from the start of the first bar in view to the
// end of the last one (export's `to` is exclusive). A server without a
// store has no ticks to export, so the button is on only once the server
// has answered the chart's history.
//
// It owns the button. app.js creates it with the chart view; exportRange()
// and exportUrl() are the parts without DOM.

/**
 * The export range, in µs, of bars with times (UTC seconds, sorted) `bars`
 * of `interval` seconds, of which those from `from` to `to` (chart times,
 * inclusive) are in view: { from, to } with `to` exclusive, or null when no
 * bar is in view.
 */
export function exportRange(bars, from, to, interval) {
	let first = null, last = null;
	for (const b of bars) {
		if (b.t < from || b.t > to) continue;
		if (first === null) first = b.t;
		last = b.t;
	}
	if (first === null) return null;
	return { from: first * 1e6, to: (last + interval) * 1e6 };
}

/** The /api/export address (relative to the page) of `symbol` over `range`. */
export function exportUrl(symbol, range) {
	const q = new URLSearchParams({ symbol, from: String(range.from), to: String(range.to), format: 'csv' });
	return 'api/export?' + q.toString();
}

export class CsvDownload {
	/**
	 * button: the CSV button. chart: the ChartView (its symbol, bars,
	 * interval, historyOk and visibleRange()). toast(text, level).
	 */
	constructor(button, chart, toast) {
		this.button = button;
		this.chart = chart;
		this.toast = toast;
		button.addEventListener('click', () => this.download());
	}

	/** The button is usable when a symbol is shown and the server has served its history. */
	draw() {
		const off = this.chart.symbol === null || this.chart.historyOk !== true;
		if (this.button.disabled !== off) this.button.disabled = off;
		const title = this.chart.historyOk === false
			? 'No CSV: the server keeps no history'
			: 'Download the ticks of the chart\'s range as CSV';
		if (this.button.title !== title) this.button.title = title;
	}

	download() {
		const c = this.chart;
		const view = c.visibleRange();
		const range = view && exportRange(c.bars, view.from, view.to, view.interval);
		if (!c.symbol || !range) {
			this.toast('Nothing in the chart to download yet.', 'error');
			return;
		}
		const a = document.createElement('a');
		a.href = exportUrl(c.symbol, range);
		a.download = ''; // the server's Content-Disposition names the file
		document.body.appendChild(a);
		a.click();
		a.remove();
	}
}

// The status bar and the connection banner: whether the page is live, the
// transport it is connected over, the round-trip time, updates per second,
// the number of watched symbols, the server's epoch and name, the clock (in
// the page's time basis, time-basis.js), and the one-line toast for notices
// and errors; above the page, the banner shown while the connection is down,
// with its countdown to the next attempt and its "Reconnect now" button.
//
// It owns those elements, and two timers of its own: the updates/s and the
// clock once a second, the banner's countdown four times a second. It reads
// the client library (state, attempt, retryAt, everOpen) and the view
// model's update counter; it writes nothing to either, except that its
// button asks the client to retry now. app.js creates it and forwards the
// client's 'connection' and 'rtt' events to connection() and rtt(); any part
// of the page may call toast().
//
// bannerHidden(), bannerText(), rttText() and transportText() are the parts
// without DOM.

import { group, TRANSPORT_LABELS } from '../client/publisher.js';
import { setText } from './dom.js';
import { clockText } from './timetext.js';

const DASH = '\u2014';
const RATE_MS = 1000;
const BANNER_MS = 250;
const TOAST_MS = 6000;
const TOAST_ERROR_MS = 10000;

/**
 * Whether the banner stays hidden in connection state `state` (info as the
 * client's 'connection' event gives it). The banner shows once a live connection is
 * lost, or once the very first attempt has failed (the page loaded, but its
 * WebSocket cannot connect); not during that first attempt.
 */
export function bannerHidden(state, info) {
	return state === 'open' || (!info.everOpen && state === 'connecting' && info.attempt === 0);
}

/**
 * The banner's text for a client `c` ({ everOpen, state, retryAt, attempt })
 * at time `now` (performance.now() milliseconds).
 */
export function bannerText(c, now) {
	let text = c.everOpen ? 'Connection to the server lost.' : 'Cannot connect to the server.';
	if (c.state === 'connecting') {
		text += ' Reconnecting…';
	} else {
		const s = Math.max(0, Math.ceil((c.retryAt - now) / 1000));
		text += ' Next attempt in ' + s + ' s (attempt ' + c.attempt + ').';
	}
	if (c.everOpen) text += ' Prices shown are the last received.';
	return text;
}

/** A round-trip time: one decimal under 10 ms, whole milliseconds above. */
export function rttText(ms) {
	return ms < 10 ? ms.toFixed(1) + ' ms' : Math.round(ms) + ' ms';
}

/**
 * The transport in words ("WebSocket", "SSE", "long-poll"); while not
 * connected, a dash.
 */
export function transportText(info) {
	return info.state === 'open' ? TRANSPORT_LABELS[info.transport] || DASH : DASH;
}

export class StatusBar {
	/**
	 * els: conn, connText, transport, rtt, rate, count, epoch, server, clock,
	 * toast (in the status bar), banner, bannerText, retry (the banner and
	 * its button). client: the PublisherClient; model: the ViewModel (for
	 * its update counter); basis: the TimeBasis the clock is on.
	 */
	constructor(els, client, model, basis) {
		this.els = els;
		this.client = client;
		this.model = model;
		this.basis = basis;
		this.toastTimer = 0;
		this.lastUpdates = 0;
		this.lastTick = performance.now();
		els.retry.addEventListener('click', () => client.retryNow());
		setInterval(() => this.drawRate(), RATE_MS);
		setInterval(() => this.drawBanner(), BANNER_MS);
	}

	/** The client's 'connection' event: {state, transport, attempt, everOpen, ...}. */
	connection(info) {
		const state = info.state;
		const live = state === 'open';
		this.els.conn.dataset.state = state;
		this.els.connText.textContent = live ? 'Live' : state === 'connecting' ? 'Connecting' : 'Disconnected';
		setText(this.els.transport, transportText(info));
		this.els.rtt.textContent = DASH; // until the next pong
		this.els.banner.hidden = bannerHidden(state, info);
		this.drawBanner();
	}

	/** The client's 'rtt' event. */
	rtt(ms) {
		this.els.rtt.textContent = rttText(ms);
	}

	/** The epoch and server name of a hello. */
	server(epoch, name) {
		this.els.epoch.textContent = epoch || DASH;
		this.els.epoch.title = 'Server epoch ' + epoch;
		this.els.server.textContent = name || '';
	}

	/** The number of watched symbols. */
	count(n) {
		this.els.count.textContent = String(n);
	}

	/** A notice ('info') or an error ('error'), cleared after a while. */
	toast(text, level) {
		const el = this.els.toast;
		el.textContent = text;
		el.className = 'toast ' + (level || 'info');
		clearTimeout(this.toastTimer);
		this.toastTimer = setTimeout(() => {
			el.textContent = '';
			el.className = 'toast';
		}, level === 'error' ? TOAST_ERROR_MS : TOAST_MS);
	}

	drawBanner() {
		if (this.els.banner.hidden) return;
		setText(this.els.bannerText, bannerText(this.client, performance.now()));
	}

	drawRate() {
		const now = performance.now();
		const rate = ((this.model.updates - this.lastUpdates) * 1000) / (now - this.lastTick);
		this.lastUpdates = this.model.updates;
		this.lastTick = now;
		setText(this.els.rate, group(String(Math.round(rate))));
		this.drawClock();
	}

	/** The clock, now, on the time basis's clock (also when the basis changes). */
	drawClock() {
		setText(this.els.clock, clockText(Date.now(), false, this.basis.zt));
	}
}

// The alerts pane: a form that sets an alert on the selected symbol, the
// list of alerts, and what happens when one fires: its line and the
// symbol's watchlist row flash, the status bar says it, and, if the user
// asked for it with the Notify button, the browser shows a notification.
// The browser is asked for that permission only when the button is
// pressed, never on its own.
//
// The rules and the stored list are alerts.js's. It owns the alerts pane's
// elements. app.js calls state() with every state event (only symbols with
// an armed alert cost more than a lookup) and target() when the selection
// or the selected symbol's price changes.

import { AlertBook, alertPrice, ruleText } from './alerts.js';
import { load, save } from './storage.js';
import { setText } from './dom.js';
import { clockText } from './timetext.js';

const FLASH_MS = 1700; // .alert-hit's animation in style.css, and a little more

export class AlertsPanel {
	/**
	 * els: form, kind, value, target (the line naming the symbol), list,
	 * empty, notify (the button), grid (the watchlist, whose rows flash).
	 * opts: selected() the selected symbol or null, quote(symbol) its
	 * ViewQuote or undefined, toast(text, level), basis (the TimeBasis
	 * whose clock a firing's time is on).
	 */
	constructor(els, opts) {
		this.els = els;
		this.opts = opts;
		this.book = new AlertBook();
		this.armed = this.book.armedSymbols;
		this.notify = load('alerts.notify', false) && this.permission() === 'granted';
		this.bind();
		this.drawNotify();
		this.drawList();
	}

	bind() {
		const { form, kind, value, notify, list } = this.els;
		form.addEventListener('submit', (e) => {
			e.preventDefault();
			this.addFromForm();
		});
		kind.addEventListener('change', () => {
			value.placeholder = kind.value === 'move' ? 'Percent' : 'Price';
		});
		notify.addEventListener('click', () => this.toggleNotify());
		list.addEventListener('click', (e) => {
			const x = e.target.closest('button.x');
			const li = x && x.closest('li');
			if (!li) return;
			this.book.remove(Number(li.dataset.id));
			this.armed = this.book.armedSymbols;
			this.drawList();
		});
	}

	addFromForm() {
		const symbol = this.opts.selected();
		if (symbol === null) {
			this.opts.toast('Select a symbol in the watchlist first.', 'error');
			return;
		}
		const q = this.opts.quote(symbol);
		const price = q ? alertPrice(q.f) : undefined;
		const r = this.book.add(symbol, this.els.kind.value, this.els.value.value, price);
		if (r.error) {
			this.opts.toast('Alert not set: ' + r.error + '.', 'error');
			return;
		}
		this.els.value.value = '';
		this.armed = this.book.armedSymbols;
		this.drawList();
		this.opts.toast('Alert set: ' + symbol + ' ' + ruleText(r.alert) + '.');
	}

	/** A state event of the client library. */
	state(e) {
		if (!this.armed.has(e.symbol)) return;
		const text = alertPrice(e.state.fields);
		if (text === undefined) return;
		const fired = this.book.price(e.symbol, text);
		if (!fired.length) return;
		this.armed = this.book.armedSymbols;
		this.drawList();
		for (const a of fired) this.fired(a);
	}

	fired(a) {
		const what = a.symbol + ' ' + ruleText(a) + ': ' + a.firedPrice;
		this.opts.toast('Alert: ' + what, 'alert');
		const li = this.els.list.querySelector('li[data-id="' + a.id + '"]');
		if (li) this.flash(li);
		const row = this.els.grid.querySelector('.wl-row[data-symbol="' + CSS.escape(a.symbol) + '"]');
		if (row) this.flash(row);
		if (this.notify && this.permission() === 'granted') {
			try {
				new Notification('Alert: ' + a.symbol + ' ' + ruleText(a), { body: 'Price ' + a.firedPrice, tag: 'publisher-alert-' + a.id });
			} catch (e) {
				/* a browser that only notifies from a service worker: the toast has said it */
			}
		}
	}

	flash(el) {
		el.classList.remove('alert-hit');
		void el.offsetWidth; // restart the animation of a second alert
		el.classList.add('alert-hit');
		clearTimeout(el.alertTimer);
		el.alertTimer = setTimeout(() => el.classList.remove('alert-hit'), FLASH_MS);
	}

	/** Say which symbol the form sets an alert on, and its price now. */
	target(symbol, q) {
		const price = q ? alertPrice(q.f) : undefined;
		setText(this.els.target, symbol === null ? 'Select a symbol to set an alert on it.'
			: 'On ' + symbol + (price === undefined ? '' : ', now ' + price));
	}

	permission() {
		return typeof Notification === 'undefined' ? 'unsupported' : Notification.permission;
	}

	/* Only here, on the user's press, is the browser asked for permission. */
	toggleNotify() {
		const p = this.permission();
		if (this.notify) {
			this.setNotify(false);
		} else if (p === 'granted') {
			this.setNotify(true);
		} else if (p === 'default') {
			Notification.requestPermission().then((answer) => {
				if (answer === 'granted') this.setNotify(true);
				else this.opts.toast('Notifications were not allowed: alerts show on the page only.', 'error');
			});
		} else if (p === 'denied') {
			this.opts.toast('Notifications are blocked for this site in the browser\'s settings.', 'error');
		} else {
			this.opts.toast('This browser has no notifications.', 'error');
		}
	}

	setNotify(on) {
		this.notify = on;
		save('alerts.notify', on);
		this.drawNotify();
	}

	drawNotify() {
		const b = this.els.notify;
		b.setAttribute('aria-pressed', String(this.notify));
		b.title = this.notify ? 'Alerts also raise a browser notification: press to stop'
			: 'Also tell me with a browser notification';
		if (this.permission() === 'unsupported') b.disabled = true;
	}

	/** The list drawn again (also when the time basis changed). */
	drawList() {
		const frag = document.createDocumentFragment();
		for (const a of this.book.list) {
			const li = document.createElement('li');
			li.dataset.id = a.id;
			li.dataset.symbol = a.symbol;
			if (a.fired) li.className = 'fired';
			const sym = document.createElement('span');
			sym.className = 'al-sym';
			sym.textContent = a.symbol;
			const rule = document.createElement('span');
			rule.className = 'al-rule';
			rule.textContent = ruleText(a);
			rule.title = a.symbol + ' ' + ruleText(a);
			const state = document.createElement('span');
			state.className = 'al-state';
			state.textContent = a.fired ? 'fired ' + clockText(a.fired, false, this.opts.basis.zt) + ' at ' + a.firedPrice : 'armed';
			const x = document.createElement('button');
			x.type = 'button';
			x.className = 'x';
			x.setAttribute('aria-label', 'Remove the alert ' + a.symbol + ' ' + ruleText(a));
			x.title = 'Remove this alert';
			x.textContent = '\u00d7';
			li.append(sym, rule, state, x);
			frag.appendChild(li);
		}
		this.els.list.replaceChildren(frag);
		this.els.empty.hidden = this.book.list.length > 0;
	}
}

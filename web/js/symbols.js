// Which symbols the page watches, and keeping the server's subscriptions in
// line with that list.
//
// It owns the watch list (kept in storage under 'watchlist'; null until the
// first visit has chosen one), the set of symbols the server knows (from the
// `symbols` op, asked on every hello and every 30 s) that fills the add box's
// suggestions, the add form with its '/' shortcut, and every subscribe and
// unsubscribe op. On the first visit it lists up to 50 of the server's
// symbols. A gap the Model finds comes here too: the symbol is resubscribed
// with `resume`, the gaps of one burst in one subscribe.
//
// app.js creates it, calls connected() on every hello, resync() from the
// Model's onGap, and remove() from the Watchlist's onRemove. It adds and
// removes the Model's symbols and the Watchlist's rows; the selection stays
// app.js's, read through `selected()` and changed through `select()` or by
// selecting a row.
//
// validList(), typedSymbol(), firstVisitList() and subscribeText() are the
// parts without DOM.

import { load, save } from './storage.js';

export const SYMBOL_RE = /^[A-Za-z0-9._:/-]{1,32}$/;
const FIRST_VISIT_MAX = 50; // a first visit lists up to 50 symbols
const FIRST_VISIT_RETRY_MS = 2000;
const SUBSCRIBE_CHUNK = 500; // symbols per subscribe: well under 64 KiB
const REFRESH_MS = 30000;
const GAP_BATCH_MS = 50;

/**
 * A stored watch list, checked: the valid symbols of `v` in order, each once;
 * null when `v` is not a list at all (nothing stored: a first visit).
 */
export function validList(v) {
	if (!Array.isArray(v)) return null;
	const seen = new Set();
	return v.filter((s) => typeof s === 'string' && SYMBOL_RE.test(s) && !seen.has(s) && seen.add(s));
}

/**
 * The symbol meant by what was typed in the add box: trimmed, and upper-cased
 * when only the upper-case spelling is one the server knows. Not checked
 * against SYMBOL_RE; '' when nothing was typed.
 */
export function typedSymbol(raw, known) {
	const s = raw.trim();
	if (s && !known.has(s) && known.has(s.toUpperCase())) return s.toUpperCase();
	return s;
}

/**
 * The symbols a first visit watches, from a `symbols` reply: the first
 * FIRST_VISIT_MAX entries whose `symbol` is a valid symbol. Entries that are
 * not objects or whose `symbol` is not a string are skipped (RegExp.test
 * would take undefined as the text "undefined").
 */
export function firstVisitList(reply) {
	return (reply.symbols || [])
		.filter((x) => x && typeof x.symbol === 'string' && SYMBOL_RE.test(x.symbol))
		.map((x) => x.symbol)
		.slice(0, FIRST_VISIT_MAX);
}

/**
 * A subscribe op's JSON text for `symbols` with request id `id`. With `held`
 * ([symbol, seqText] pairs) and an `epoch`, it asks to `resume`: the server
 * sends nothing for a symbol we are current on, one delta for one we are
 * behind on, a snapshot otherwise. Seqs are written from their exact text
 * (they may exceed 2^53, which JSON.stringify of a number would round).
 */
export function subscribeText(symbols, held, epoch, id) {
	let t = '{"op":"subscribe","symbols":' + JSON.stringify(symbols);
	if (held.length && epoch !== null) {
		t += ',"resume":{"epoch":' + JSON.stringify(epoch) + ',"seq":{' +
			held.map(([s, seq]) => JSON.stringify(s) + ':' + seq).join(',') + '}}';
	}
	return t + ',"id":' + id + '}';
}

export class Symbols {
	/**
	 * opts: model, view (the Watchlist), conn (the Connection); form, input
	 * and suggestions (the add form, its input and its <datalist>), grid (the
	 * watchlist element, focused on Escape); toast(text, level), onError(err)
	 * for a failed op, onCount(n) when the list's length changes; selected()
	 * and select(symbol or null) for the selection.
	 */
	constructor(opts) {
		Object.assign(this, opts);
		this.list = validList(load('watchlist', null)); // null: first visit
		this.known = new Set();
		this.gapSymbols = new Set();
		this.gapTimer = 0;

		this.form.addEventListener('submit', (e) => {
			e.preventDefault();
			if (this.add(this.input.value)) this.input.value = '';
		});
		this.input.addEventListener('keydown', (e) => {
			if (e.key === 'Escape') {
				e.target.value = '';
				this.grid.focus();
			}
		});
		document.addEventListener('keydown', (e) => {
			const t = e.target;
			const typing = t instanceof HTMLInputElement || t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement;
			if (e.key === '/' && !typing && !e.ctrlKey && !e.metaKey && !e.altKey) {
				e.preventDefault();
				this.input.focus();
			}
		});
		setInterval(() => { if (this.conn.open) this.refresh(); }, REFRESH_MS);
	}

	/** Show the stored list, if there is one; before the connection starts. */
	restore() {
		if (this.list !== null) this.setList(this.list);
		else this.view.updateCount();
		this.onCount(this.count());
	}

	count() {
		return this.list ? this.list.length : 0;
	}

	/**
	 * On every hello: subscribe the list (resuming what we hold), or choose
	 * one on a first visit; then ask for the server's symbols again.
	 */
	connected({ reconnect, epochChanged }) {
		if (this.list === null) {
			this.firstVisit();
		} else {
			const list = this.list;
			const held = this.model.heldSeqs(list).length;
			this.subscribe(list);
			if (reconnect)
				this.toast(epochChanged ? 'Reconnected: the server has a new epoch, prices reloaded.'
					: 'Reconnected: resumed ' + held + ' of ' + list.length + ' symbols.', 'info');
		}
		this.refresh();
	}

	/* Subscribe in chunks, each resuming the seqs we hold for its symbols. */
	subscribe(list) {
		for (let i = 0; i < list.length; i += SUBSCRIBE_CHUNK) {
			const chunk = list.slice(i, i + SUBSCRIBE_CHUNK);
			const held = this.model.heldSeqs(chunk);
			this.conn.request((id) => subscribeText(chunk, held, this.model.epoch, id)).catch(this.onError);
		}
	}

	/**
	 * The Model's onGap: a delta whose `from` is not the seq we hold. The
	 * symbol is resubscribed with resume; gaps found in the same burst go
	 * out as one subscribe.
	 */
	resync(symbol) {
		this.gapSymbols.add(symbol);
		if (!this.gapTimer) this.gapTimer = setTimeout(() => this.flushGaps(), GAP_BATCH_MS);
	}

	flushGaps() {
		this.gapTimer = 0;
		const list = [...this.gapSymbols].filter((s) => this.model.quotes.has(s));
		this.gapSymbols = new Set();
		if (list.length) this.subscribe(list);
	}

	async firstVisit() {
		let reply;
		try {
			reply = await this.conn.request({ op: 'symbols' });
		} catch (e) {
			this.onError(e);
			return;
		}
		this.learn(reply);
		if (this.list !== null) return; // the user added one meanwhile
		const list = firstVisitList(reply);
		if (!list.length) {
			// The feed has not produced anything yet: ask again shortly.
			setTimeout(() => { if (this.list === null && this.conn.open) this.firstVisit(); }, FIRST_VISIT_RETRY_MS);
			return;
		}
		this.setList(list);
		save('watchlist', this.list);
		this.subscribe(this.list);
	}

	async refresh() {
		try {
			this.learn(await this.conn.request({ op: 'symbols' }));
		} catch (e) {
			this.onError(e);
		}
	}

	learn(reply) {
		for (const x of reply.symbols || []) if (x && typeof x.symbol === 'string') this.known.add(x.symbol);
		this.fillSuggestions();
	}

	/* The add box suggests the server's symbols that are not in the list. */
	fillSuggestions() {
		const inList = new Set(this.list || []);
		const frag = document.createDocumentFragment();
		for (const s of [...this.known].sort()) {
			if (inList.has(s)) continue;
			const o = document.createElement('option');
			o.value = s;
			frag.appendChild(o);
		}
		this.suggestions.textContent = '';
		this.suggestions.appendChild(frag);
	}

	/* Replace the list (stored or first visit); keep or make a selection. */
	setList(list) {
		this.list = list;
		for (const s of list) this.model.watch(s);
		this.view.setSymbols(list);
		this.fillSuggestions();
		const selected = this.selected();
		if (selected === null || !list.includes(selected)) {
			const saved = load('selected', null);
			const pick = list.includes(saved) ? saved : list[0];
			if (pick !== undefined) this.view.select(pick, { scroll: false });
		}
		this.onCount(this.count());
	}

	/** Add what was typed in the add box. False when it is not a symbol. */
	add(raw) {
		const s = typedSymbol(raw, this.known);
		if (!s) return false;
		if (!SYMBOL_RE.test(s)) {
			this.toast('"' + s + '" is not a symbol: 1–32 of A–Z a–z 0–9 . _ : / -', 'error');
			return false;
		}
		if (this.list === null) this.list = [];
		if (this.list.includes(s)) {
			this.view.select(s);
			this.toast(s + ' is already in the watchlist.', 'info');
			return true;
		}
		this.list.push(s);
		save('watchlist', this.list);
		this.model.watch(s);
		this.view.addRow(s);
		this.view.select(s);
		this.fillSuggestions();
		this.onCount(this.count());
		if (this.conn.open) this.subscribe([s]);
		if (this.known.size && !this.known.has(s))
			this.toast(s + ' has no data on the server yet; it fills in with its first tick.', 'info');
		return true;
	}

	/** Remove a symbol; a removed selection moves to the next row. */
	remove(s) {
		if (!this.list || !this.list.includes(s)) return;
		const next = this.view.removeRow(s);
		this.list = this.list.filter((x) => x !== s);
		save('watchlist', this.list);
		this.model.unwatch(s);
		if (this.conn.open) this.conn.request({ op: 'unsubscribe', symbols: [s] }).catch(this.onError);
		this.fillSuggestions();
		this.onCount(this.count());
		if (this.selected() === s) {
			if (next !== null) this.view.select(next);
			else this.select(null);
		}
	}
}

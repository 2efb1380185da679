// Which symbols the page watches, and keeping the client library's
// subscriptions in line with that list.
//
// It owns the watch list (kept in storage under 'watchlist'; null until the
// first visit has chosen one), the symbols the server knows with the time
// zone of each one's trading sessions (from the `symbols` op, asked on every
// hello and every 30 s) that fill the add box's suggestions, and the add
// form with its '/' shortcut. On the first visit it lists up to 50 of the
// server's symbols. It subscribes and unsubscribes through the library,
// which resubscribes them with `resume` after every reconnect and
// resubscribes a symbol whose deltas have a gap.
//
// Symbols are the server's: case counts on the wire, so what is typed is
// taken in the server's spelling when the server knows it in another case
// ("amd" is AMD); one it does not know at all is taken in capitals, as
// tickers are written and the add box shows them (never stored as typed in
// lower case); and the server decides what is a symbol: one it refuses is
// not added, and its reason is shown. A symbol it has no data for yet is
// added and waits for its first tick (the chart says so). A stored list
// that spells a symbol the server knows in another case is corrected.
//
// app.js creates it, calls connected() on every new session (the library's
// 'session' event) and remove() from the Watchlist's onRemove. It adds and
// removes the Watchlist's rows and the view model's symbols; the selection
// stays app.js's, read through `selected()` and changed through `select()`
// or by selecting a row.
//
// validList(), typedSymbol(), serverSpelling() and firstVisitList() are the
// parts without DOM.

import { load, save } from './storage.js';

export const SYMBOL_RE = /^[A-Za-z0-9._:/-]{1,32}$/;
const FIRST_VISIT_MAX = 50; // a first visit lists up to 50 symbols
const FIRST_VISIT_RETRY_MS = 2000;
const REFRESH_MS = 30000;

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
 * The server's symbols (any iterable of names) by their lower-case
 * spelling: lower case -> [the server's spellings, in order].
 */
export function spellingIndex(symbols) {
	const index = new Map();
	for (const k of symbols) {
		const lower = k.toLowerCase();
		const all = index.get(lower);
		if (all) all.push(k);
		else index.set(lower, [k]);
	}
	for (const all of index.values()) if (all.length > 1) all.sort();
	return index;
}

/**
 * How the server spells `s`, from its spellingIndex(): `s` itself when it
 * has it so; else the symbol it has that is `s` in another case (of
 * several, the upper-case one, else the first in order); undefined when it
 * has none.
 */
export function serverSpelling(s, index) {
	const all = index.get(s.toLowerCase());
	if (!all) return undefined;
	if (all.includes(s)) return s;
	const upper = s.toUpperCase();
	return all.includes(upper) ? upper : all[0];
}

/**
 * The symbol meant by what was typed in the add box: trimmed; in the
 * server's spelling when it has it in another case (`index`: its
 * spellingIndex()); upper-cased when it has it in no case. What is not a
 * symbol's syntax is left as typed, for the server to refuse in its words
 * naming just that; '' when nothing was typed.
 */
export function typedSymbol(raw, index) {
	const s = raw.trim();
	if (!s) return s;
	return serverSpelling(s, index) ?? (SYMBOL_RE.test(s) ? s.toUpperCase() : s);
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

export class Symbols {
	/**
	 * opts: model (the ViewModel), view (the Watchlist), client (the
	 * PublisherClient); form, input
	 * and suggestions (the add form, its input and its <datalist>), grid (the
	 * watchlist element, focused on Escape); toast(text, level), onError(err)
	 * for a failed op, onCount(n) when the list's length changes; selected()
	 * and select(symbol or null) for the selection; onZones() when the
	 * server has named the symbols' time zones again (zoneOf()).
	 */
	constructor(opts) {
		Object.assign(this, opts);
		this.list = validList(load('watchlist', null)); // null: first visit
		this.known = new Map(); // the server's symbols -> their session zone
		this.spellings = new Map(); // spellingIndex() of known
		this.onZones = opts.onZones || (() => {});

		this.form.addEventListener('submit', (e) => {
			e.preventDefault();
			const typed = this.input.value;
			this.add(typed).then((ok) => {
				if (ok && this.input.value === typed) this.input.value = '';
			});
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
		setInterval(() => { if (this.client.open) this.refresh(); }, REFRESH_MS);
	}

	/**
	 * Show the stored list, if there is one, and subscribe it; before the
	 * connection starts (the library sends it once connected).
	 */
	restore() {
		if (this.list !== null) {
			this.setList(this.list);
			this.subscribe(this.list);
		} else {
			this.view.updateCount();
		}
		this.onCount(this.count());
	}

	count() {
		return this.list ? this.list.length : 0;
	}

	/**
	 * On every new session (the library has resubscribed the list, resuming
	 * what it held): choose a list on a first visit, say what was resumed
	 * after a reconnect, and ask for the server's symbols again.
	 */
	connected({ reconnect, epochChanged, resumed }) {
		if (this.list === null) {
			this.firstVisit();
		} else if (reconnect) {
			this.toast(epochChanged ? 'Reconnected: the server has a new epoch, prices reloaded.'
				: 'Reconnected: resumed ' + resumed + ' of ' + this.list.length + ' symbols.', 'info');
		}
		this.refresh();
	}

	/* A refusal (a symbol the server will not give) is shown as an error. */
	subscribe(list) {
		if (list.length) this.client.subscribe(list).catch(this.onError);
	}

	async firstVisit() {
		let reply;
		try {
			reply = await this.client.symbols();
		} catch (e) {
			this.onError(e);
			return;
		}
		this.learn(reply);
		if (this.list !== null) return; // the user added one meanwhile
		const list = firstVisitList(reply);
		if (!list.length) {
			// The feed has not produced anything yet: ask again shortly.
			setTimeout(() => { if (this.list === null && this.client.open) this.firstVisit(); }, FIRST_VISIT_RETRY_MS);
			return;
		}
		this.setList(list);
		save('watchlist', this.list);
		this.subscribe(this.list);
	}

	async refresh() {
		try {
			this.learn(await this.client.symbols());
		} catch (e) {
			this.onError(e);
		}
	}

	learn(reply) {
		for (const x of reply.symbols || [])
			if (x && typeof x.symbol === 'string') this.known.set(x.symbol, typeof x.zone === 'string' ? x.zone : 'UTC');
		this.spellings = spellingIndex(this.known.keys());
		this.respell();
		this.fillSuggestions();
		this.onZones();
	}

	/** The time zone of `symbol`'s trading sessions, as the server names it; undefined when it has not. */
	zoneOf(symbol) {
		return this.known.get(symbol);
	}

	/* A stored symbol the server spells in another case (a list from
	 * before, or typed while the server did not know it yet) takes the
	 * server's spelling. */
	respell() {
		if (!this.list) return;
		const fixed = this.list.map((s) => (this.known.has(s) ? s : serverSpelling(s, this.spellings) ?? s));
		if (fixed.every((s, i) => s === this.list[i])) return;
		const was = this.list;
		const selected = this.selected();
		const list = validList(fixed);
		const gone = was.filter((s) => !list.includes(s));
		for (const s of gone) this.model.forget(s);
		this.client.unsubscribe(gone).catch(this.onError);
		this.setList(list);
		save('watchlist', list);
		this.subscribe(list.filter((s) => !was.includes(s)));
		if (gone.includes(selected)) this.view.select(fixed[was.indexOf(selected)]);
	}

	/* The add box suggests the server's symbols that are not in the list. */
	fillSuggestions() {
		const inList = new Set(this.list || []);
		const frag = document.createDocumentFragment();
		for (const s of [...this.known.keys()].sort()) {
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

	/**
	 * Add what was typed in the add box, in the server's spelling, once the
	 * server has taken the subscribe (while disconnected, once it is a
	 * symbol's syntax: the server is asked when the connection is back).
	 * Resolves true when added (or already there), false when refused: the
	 * server's reason is shown.
	 */
	async add(raw) {
		let s = typedSymbol(raw, this.spellings);
		if (!s) return false;
		// Not known in any case: the list may be older than the symbol.
		if (this.client.open && serverSpelling(raw.trim(), this.spellings) === undefined) {
			try {
				this.learn(await this.client.symbols());
			} catch (e) {
				/* the subscribe below says what is wrong */
			}
			s = typedSymbol(raw, this.spellings);
		}
		if (this.list !== null && this.list.includes(s)) {
			this.view.select(s);
			this.toast(s + ' is already in the watchlist.', 'info');
			return true;
		}
		if (!this.client.open && !SYMBOL_RE.test(s)) {
			this.toast('"' + s + '" is not a symbol: 1–32 of A–Z a–z 0–9 . _ : / -', 'error');
			return false;
		}
		if (this.client.open) {
			try {
				await this.client.subscribe([s]);
			} catch (err) {
				if (err && err.code) {
					this.toast('Server: ' + err.message, 'error');
					return false;
				}
				/* the connection went: the library subscribes it again */
			}
		} else {
			this.subscribe([s]);
		}
		if (this.list === null) this.list = [];
		if (this.list.includes(s)) return true;
		this.list.push(s);
		save('watchlist', this.list);
		this.model.watch(s);
		this.view.addRow(s);
		this.view.select(s);
		this.fillSuggestions();
		this.onCount(this.count());
		const typed = raw.trim();
		if (!this.known.has(s))
			this.toast((typed !== s ? 'The server has no ' + typed + ': added ' + s : s) +
				', which has no data yet; it fills in with its first tick.', 'info');
		else if (typed !== s)
			this.toast('Added ' + s + ' (the server spells ' + typed + ' so).', 'info');
		return true;
	}

	/** Remove a symbol; a removed selection moves to the next row. */
	remove(s) {
		if (!this.list || !this.list.includes(s)) return;
		const next = this.view.removeRow(s);
		this.list = this.list.filter((x) => x !== s);
		save('watchlist', this.list);
		this.model.forget(s);
		this.client.unsubscribe([s]).catch(this.onError);
		this.fillSuggestions();
		this.onCount(this.count());
		if (this.selected() === s) {
			if (next !== null) this.view.select(next);
			else this.select(null);
		}
	}
}

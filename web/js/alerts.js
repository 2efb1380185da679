// Price alerts: what each kind means, when one fires, and the list of them
// kept in localStorage. No DOM; alerts-panel.js shows them and says when
// one fired.
//
// Three kinds, each on one symbol's price (its last trade, or the mid of
// its bid and ask while it has only quotes):
//   above X   fires when the price crosses X upwards: from below X to X or
//             more. Set while the price is already above, it waits for the
//             price to come back under X and cross again.
//   below X   the same downwards.
//   move P    fires when the price has moved P percent or more, either way,
//             from where it was when the alert was set.
// An alert fires once; it stays in the list, marked fired with the time and
// the price, until it is removed.

import { load, save } from './storage.js';
import { midPrice } from './view-model.js';
import { scaleOf } from '../client/publisher.js';

export const KINDS = ['above', 'below', 'move'];
const STORAGE_KEY = 'alerts';
const MAX_ALERTS = 100;

/**
 * The price alerts watch, as text: the last trade as the server sent it, or
 * the mid of bid and ask (one decimal more than the finer of the two, which
 * holds it exactly); undefined when there is none.
 */
export function alertPrice(fields) {
	if (fields.last !== undefined) return fields.last;
	if (fields.bid === undefined || fields.ask === undefined) return undefined;
	const scale = Math.max(scaleOf(fields.bid), scaleOf(fields.ask)) + 1;
	return midPrice(fields.bid, fields.ask).toFixed(Math.min(scale, 12));
}

/**
 * Read what the user typed for an alert of `kind`: { value } (the text as
 * typed, trimmed) or { error } saying what is wrong.
 */
export function parseAlertValue(kind, text) {
	const t = String(text).trim();
	if (!KINDS.includes(kind)) return { error: 'unknown alert kind "' + kind + '"' };
	const v = t.replace(/%$/, '').trim();
	if (!/^\d+(\.\d+)?$|^\.\d+$/.test(v)) {
		return { error: kind === 'move' ? 'a move is a percent, such as 1.5' : 'a price is a number, such as 189.50' };
	}
	if (!(Number(v) > 0)) return { error: kind === 'move' ? 'a move must be more than 0 %' : 'a price must be more than 0' };
	return { value: v };
}

/** The rule in words: "above 190.00", "below 1.0850", "moves 1.5 %". */
export function ruleText(alert) {
	if (alert.kind === 'move') return 'moves ' + alert.value + ' % from ' + alert.ref;
	return alert.kind + ' ' + alert.value;
}

/**
 * Whether `alert` fires as the price goes from `prev` to `price` (numbers;
 * prev undefined for the first price seen). Only a crossing fires: a price
 * that is already past the level when first seen does not.
 */
export function crosses(alert, prev, price) {
	if (alert.fired || !Number.isFinite(price)) return false;
	const level = Number(alert.value);
	switch (alert.kind) {
	case 'above':
		return prev !== undefined && prev < level && price >= level;
	case 'below':
		return prev !== undefined && prev > level && price <= level;
	case 'move': {
		const ref = Number(alert.ref);
		if (!(ref > 0)) return false;
		return (Math.abs(price - ref) / ref) * 100 >= level - 1e-9;
	}
	default:
		return false;
	}
}

/**
 * The alerts, kept in localStorage. Each alert is { id, symbol, kind, value
 * (text), ref (the price when set, text), created (ms), fired (ms or null),
 * firedPrice (text or null) }. The price each alert saw last lives here too,
 * in memory only: after a reload it starts again from the price when set,
 * so a crossing while the page was closed fires at the first price seen.
 */
export class AlertBook {
	constructor(storageKey = STORAGE_KEY) {
		this.key = storageKey;
		const saved = load(this.key, []);
		this.list = Array.isArray(saved) ? saved.filter((a) => a && KINDS.includes(a.kind) && a.symbol) : [];
		this.prev = new Map(); // id -> the last price seen
		for (const a of this.list) if (a.ref !== null && a.ref !== undefined) this.prev.set(a.id, Number(a.ref));
		this.nextId = this.list.reduce((m, a) => Math.max(m, Number(a.id) || 0), 0) + 1;
	}

	/** Symbols with an alert that can still fire. */
	get armedSymbols() {
		return new Set(this.list.filter((a) => !a.fired).map((a) => a.symbol));
	}

	/**
	 * Add an alert on `symbol` whose price is `price` now (alertPrice()'s
	 * text, or undefined when none is known yet). Returns { alert } or
	 * { error }.
	 */
	add(symbol, kind, text, price, now = Date.now()) {
		const v = parseAlertValue(kind, text);
		if (v.error) return v;
		if (kind === 'move' && price === undefined) return { error: 'no price of ' + symbol + ' yet to measure a move from' };
		if (this.list.length >= MAX_ALERTS) return { error: 'at most ' + MAX_ALERTS + ' alerts: remove one first' };
		const alert = {
			id: this.nextId++, symbol, kind, value: v.value,
			ref: price === undefined ? null : price,
			created: now, fired: null, firedPrice: null,
		};
		this.list.push(alert);
		if (price !== undefined) this.prev.set(alert.id, Number(price));
		this.save();
		return { alert };
	}

	remove(id) {
		this.list = this.list.filter((a) => a.id !== id);
		this.prev.delete(id);
		this.save();
	}

	/**
	 * A new price of `symbol` (alertPrice()'s text): the alerts that fire,
	 * marked fired and saved. The price is remembered either way.
	 */
	price(symbol, text, now = Date.now()) {
		const fired = [];
		const price = Number(text);
		for (const a of this.list) {
			if (a.symbol !== symbol || a.fired) continue;
			if (crosses(a, this.prev.get(a.id), price)) {
				a.fired = now;
				a.firedPrice = text;
				fired.push(a);
			}
			this.prev.set(a.id, price);
		}
		if (fired.length) this.save();
		return fired;
	}

	save() {
		save(this.key, this.list);
	}
}

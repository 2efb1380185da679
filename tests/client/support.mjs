// What the client library's tests against the real server share besides
// the server itself (../support/server.mjs) and the fault proxy
// (../support/proxy.mjs): scratch directories, ticks with known values, an
// independent reader of the server's state (a bare WebSocket, no library),
// and a record of a client's events.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseFrame } from '../../web/client/publisher.js';

export function tmpDir(name) {
	return fs.mkdtempSync(path.join(os.tmpdir(), 'publisher-client-' + name + '-'));
}

let clock = Date.now() * 1000;

/** A quote tick of `symbol` at `bid` (text with its decimals) and the ask a cent or so above. */
export function quote(symbol, bid, more = {}) {
	clock += 1000;
	const scale = (bid.split('.')[1] || '').length;
	const ask = (Number(bid) + 0.02).toFixed(scale);
	return { ts: clock, symbol, bid, ask, bid_size: 100 + (clock / 1000) % 900, ask_size: 200, ...more };
}

/** A trade tick. */
export function trade(symbol, last, size) {
	clock += 1000;
	return { ts: clock, symbol, last, last_size: size };
}

/** The latest value of every field the ticks of each symbol set. */
export function fieldsOf(ticks) {
	const out = {};
	for (const t of ticks) {
		const f = (out[t.symbol] ||= {});
		for (const [k, v] of Object.entries(t)) if (k !== 'ts' && k !== 'symbol') f[k] = String(v);
	}
	return out;
}

/**
 * The server's state of `symbols` as a fresh subscriber sees it: a bare
 * WebSocket (no library) subscribes without resume and keeps the snapshots,
 * as {symbol: {seq, ts, ...fields}} with the exact text of every value.
 * Symbols without data are left out.
 */
export async function serverState(url, symbols) {
	const ws = new WebSocket(url.replace(/^http/, 'ws') + 'ws');
	const state = {};
	let known = null;
	const done = new Promise((resolve, reject) => {
		ws.onerror = () => reject(new Error('the reference WebSocket failed'));
		ws.onopen = () => ws.send(JSON.stringify({ op: 'symbols', id: 1 }));
		ws.onmessage = (ev) => {
			const f = parseFrame(String(ev.data));
			for (const m of Array.isArray(f) ? f : [f]) {
				if (m.type === 'symbols') {
					known = new Set(m.symbols.map((x) => x.symbol).filter((s) => symbols.includes(s)));
					ws.send(JSON.stringify({ op: 'subscribe', symbols, id: 2 }));
					if (!known.size) resolve();
				} else if (m.type === 'snapshot') {
					const { type, symbol, seq, ts, ...fields } = m;
					state[symbol] = { seq, ts, ...fields };
					if (known && Object.keys(state).length === known.size) resolve();
				}
			}
		};
	});
	let timer;
	const late = new Promise((resolve, reject) => {
		timer = setTimeout(() => reject(new Error('no snapshots from the reference WebSocket')), 10000);
	});
	try {
		await Promise.race([done, late]);
	} finally {
		clearTimeout(timer);
		ws.close();
	}
	return state;
}

/** Every event of `client` as [name, detail], for assertions on what happened. */
export function record(client, names = ['state', 'connection', 'session', 'epoch', 'gap', 'token', 'error']) {
	const events = [];
	for (const n of names) client.on(n, (d) => events.push([n, d]));
	events.since = (i) => events.slice(i);
	events.of = (name, from = 0) => events.slice(from).filter(([n]) => n === name).map(([, d]) => d);
	return events;
}

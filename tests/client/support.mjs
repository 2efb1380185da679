// What the client library's tests against the real server share: the binary
// started on a loopback port with a stdin feed the test writes ticks to, a
// TCP proxy between client and server for network faults (drop every
// connection, refuse WebSocket upgrades, hold SSE responses back as a
// buffering proxy does, slip a frame into a stream), an independent reader
// of the server's state (a bare WebSocket, no library), and waiting.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseFrame } from '../../web/client/publisher.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.resolve(ROOT, process.env.PUBLISHER_BIN || 'build/publisher');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll fn() until it returns a truthy value; throw `what` after timeoutMs. */
export async function waitFor(fn, timeoutMs, what) {
	const end = Date.now() + timeoutMs;
	let last;
	for (;;) {
		try {
			last = await fn();
			if (last) return last;
		} catch (e) {
			last = e;
		}
		if (Date.now() > end) {
			const why = typeof what === 'function' ? what(last) : what;
			throw new Error(why + ' (waited ' + timeoutMs / 1000 + ' s)');
		}
		await sleep(50);
	}
}

export function tmpDir(name) {
	return fs.mkdtempSync(path.join(os.tmpdir(), 'publisher-client-' + name + '-'));
}

/**
 * The real binary: `serve` on its own database in `dir`, by default with the
 * stdin feed that send() writes to.
 */
export class Server {
	constructor(dir, args = [], feed = 'stdin') {
		this.dir = dir;
		this.args = args;
		this.feed = feed;
		this.port = 0;
		this.proc = null;
		this.log = path.join(dir, 'publisher.log');
	}

	/** Start on `port` (0: any free port); resolves once it listens. */
	async start(port = 0) {
		if (!fs.existsSync(BIN)) throw new Error('no publisher binary at ' + BIN + ' (make all, or set PUBLISHER_BIN)');
		const portFile = path.join(this.dir, 'port');
		fs.rmSync(portFile, { force: true });
		const out = fs.openSync(this.log, 'a');
		this.proc = spawn(BIN, [
			'serve', '--listen', '127.0.0.1:' + port, '--port-file', portFile,
			'--feed', this.feed, '--db', path.join(this.dir, 'ticks.db'),
			'--web', path.join(ROOT, 'web'), '--log-level', 'info', ...this.args,
		], { cwd: ROOT, stdio: ['pipe', out, out] });
		fs.closeSync(out);
		this.proc.stdin.on('error', () => {});
		const exited = once(this.proc, 'exit').then(([code]) => {
			throw new Error('publisher exited with status ' + code + ' (log: ' + this.log + ')');
		});
		exited.catch(() => {});
		const ready = waitFor(() => {
			const t = fs.existsSync(portFile) && fs.readFileSync(portFile, 'utf8').trim();
			return t && Number(t) > 0 ? Number(t) : 0;
		}, 10000, 'publisher wrote no port file');
		this.port = await Promise.race([ready, exited]);
		return this;
	}

	/** Ticks as objects (or ready lines) on the feed, one JSON line each. */
	send(ticks) {
		const text = ticks.map((t) => (typeof t === 'string' ? t : tickLine(t)) + '\n').join('');
		this.proc.stdin.write(text);
	}

	async stop() {
		const p = this.proc;
		if (!p || p.exitCode !== null || p.signalCode !== null) return;
		const done = once(p, 'exit');
		p.kill('SIGTERM');
		const t = setTimeout(() => p.kill('SIGKILL'), 5000);
		await done;
		clearTimeout(t);
	}

	get url() {
		return 'http://127.0.0.1:' + this.port + '/';
	}

	logText() {
		try {
			return fs.readFileSync(this.log, 'utf8');
		} catch (e) {
			return '';
		}
	}
}

/* A tick's JSON line with prices written as their decimal text: JSON.stringify
 * of 189.30 would write 189.3, and the test is about the trailing zero. */
export function tickLine(t) {
	return '{' + Object.entries(t).map(([k, v]) => JSON.stringify(k) + ':' + (k === 'symbol' ? JSON.stringify(v) : String(v))).join(',') + '}';
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

/** Bytes of the WebSocket frame at buf[off], or 0 if its header is incomplete. */
function frameLength(buf, off) {
	if (buf.length - off < 2) return 0;
	const b1 = buf[off + 1];
	let len = b1 & 0x7f, head = 2;
	if (len === 126) {
		if (buf.length - off < 4) return 0;
		len = buf.readUInt16BE(off + 2);
		head = 4;
	} else if (len === 127) {
		if (buf.length - off < 10) return 0;
		len = Number(buf.readBigUInt64BE(off + 2));
		head = 10;
	}
	return head + (b1 & 0x80 ? 4 : 0) + len;
}

function textFrame(text) {
	const p = Buffer.from(text);
	const head = p.length < 126 ? Buffer.from([0x81, p.length])
		: Buffer.from([0x81, 126, p.length >> 8, p.length & 0xff]);
	return Buffer.concat([head, p]);
}

/*
 * Sits between the client and the server. Options: refuseWebSocket answers
 * an upgrade to /ws with 403 (a proxy that does not pass WebSockets);
 * holdEvents keeps every byte of an SSE response back (a proxy that buffers
 * responses whole); eventsStatus answers /stream/events with that status (a
 * proxy that does not route it). dropAll() cuts every connection (a network
 * blip), outage(ms) also refuses new ones for a while; inject(text) slips a message into each WebSocket stream (as a
 * frame) and each SSE stream (as an event) between two whole ones, and into
 * the next poll answer (as a frame). `requests` lists the
 * request lines seen ("GET /ws", "POST /stream/send", ...).
 */
export class Proxy {
	constructor(targetPort, opts = {}) {
		this.targetPort = targetPort;
		this.opts = opts;
		this.pairs = new Set();
		this.requests = [];
		this.pollQueue = []; // messages for the next poll answer
		this.downUntil = 0; // Date.now() until which connections are refused
	}

	async start() {
		this.server = net.createServer((c) => this.accept(c));
		this.server.listen(0, '127.0.0.1');
		await once(this.server, 'listening');
		this.port = this.server.address().port;
		return this;
	}

	get url() {
		return 'http://127.0.0.1:' + this.port + '/';
	}

	accept(client) {
		if (Date.now() < this.downUntil) {
			client.destroy();
			return;
		}
		const pair = {
			client, up: null, head: true, kind: 'http', held: false, buf: Buffer.alloc(0), inMessage: false, queue: [],
			asked: [], // paths of the requests not yet answered, in order
			answer: null, // a poll answer being read: {head, length}
		};
		this.pairs.add(pair);
		const end = () => {
			client.destroy();
			if (pair.up) pair.up.destroy();
			this.pairs.delete(pair);
		};
		client.on('error', end);
		client.on('close', end);
		client.on('data', (d) => {
			const text = d.toString('latin1');
			for (const m of text.matchAll(/(?:^|\r\n)(GET|POST) (\/[^ ?]*)/g)) {
				this.requests.push(m[1] + ' ' + m[2]);
				pair.asked.push(m[2]);
				if (m[2].startsWith('/stream/events') && this.opts.holdEvents) pair.held = true;
				if (m[2].startsWith('/stream/events') && this.opts.eventsStatus) {
					client.end('HTTP/1.1 ' + this.opts.eventsStatus + ' Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
					return;
				}
				if (m[2] === '/ws' && this.opts.refuseWebSocket) {
					client.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
					return;
				}
			}
			if (!pair.up) {
				pair.up = net.connect(this.targetPort(), '127.0.0.1');
				pair.up.on('data', (b) => this.down(pair, b));
				pair.up.on('error', end);
				pair.up.on('close', end);
			}
			pair.up.write(d);
		});
	}

	down(pair, d) {
		if (pair.held) return; // a buffering proxy: nothing comes through
		if (pair.head) {
			pair.buf = Buffer.concat([pair.buf, d]);
			const i = pair.buf.indexOf('\r\n\r\n');
			if (i < 0) return;
			const head = pair.buf.subarray(0, i).toString('latin1');
			const path = pair.asked.shift();
			pair.head = false;
			d = pair.buf.subarray(i + 4);
			pair.buf = Buffer.alloc(0);
			const length = /\r\ncontent-length: *(\d+)/i.exec(head);
			if (/^HTTP\/1\.1 101 /.test(head)) pair.kind = 'ws';
			else if (/content-type: text\/event-stream/i.test(head)) pair.kind = 'sse';
			else if (path === '/stream/poll' && / 200 /.test(head.split('\r\n')[0]) && length) {
				// Read the whole answer, to slip injected frames into it.
				pair.answer = { head, length: Number(length[1]) };
				this.pollAnswer(pair, d);
				return;
			}
			pair.client.write(head + '\r\n\r\n');
		}
		if (pair.answer) {
			this.pollAnswer(pair, d);
			return;
		}
		if (pair.kind === 'sse') {
			if (d.length) pair.client.write(d);
			pair.inMessage = !d.toString('latin1').endsWith('\n\n') && d.length > 0;
			if (!pair.inMessage) this.flush(pair);
			return;
		}
		if (pair.kind !== 'ws') {
			// A kept-alive connection: the next response has a head of its own.
			if (d.subarray(0, 9).toString('latin1') === 'HTTP/1.1 ') {
				pair.head = true;
				this.down(pair, d);
				return;
			}
			if (d.length) pair.client.write(d);
			return;
		}
		// Forward whole frames only, so an injected frame lands between two.
		pair.buf = Buffer.concat([pair.buf, d]);
		let off = 0;
		for (;;) {
			const n = frameLength(pair.buf, off);
			if (!n || off + n > pair.buf.length) break;
			const op = pair.buf[off] & 0x0f, fin = pair.buf[off] & 0x80;
			if (op < 8) pair.inMessage = !fin; // data frames; control frames may interleave
			pair.client.write(pair.buf.subarray(off, off + n));
			off += n;
			if (!pair.inMessage) this.flush(pair);
		}
		pair.buf = pair.buf.subarray(off);
	}

	pollAnswer(pair, d) {
		pair.buf = Buffer.concat([pair.buf, d]);
		const a = pair.answer;
		if (pair.buf.length < a.length) return;
		let body = pair.buf.subarray(0, a.length).toString('utf8');
		const rest = pair.buf.subarray(a.length);
		pair.buf = Buffer.alloc(0);
		pair.answer = null;
		pair.head = true;
		if (this.pollQueue.length && body.startsWith('{"frames":[')) {
			const list = this.pollQueue.splice(0).join(',');
			body = '{"frames":[' + list + (body.startsWith('{"frames":[]') ? '' : ',') + body.slice(11);
		}
		const bytes = Buffer.from(body);
		pair.client.write(a.head.replace(/(\r\ncontent-length: *)\d+/i, '$1' + bytes.length) + '\r\n\r\n');
		pair.client.write(bytes);
		if (rest.length) this.down(pair, rest);
	}

	flush(pair) {
		while (pair.queue.length) {
			const text = pair.queue.shift();
			pair.client.write(pair.kind === 'ws' ? textFrame(text) : 'data: ' + text + '\n\n');
		}
	}

	/**
	 * Returns how many streams (WebSocket or SSE) the message was queued on,
	 * plus one for the next poll answer, which carries it too.
	 */
	inject(text) {
		this.pollQueue.push(text);
		let n = 1;
		for (const pair of this.pairs) {
			if (pair.kind !== 'ws' && pair.kind !== 'sse') continue;
			pair.queue.push(text);
			n++;
			if (!pair.inMessage && !pair.buf.length) this.flush(pair);
		}
		return n;
	}

	/* An outage: every connection cut, and new ones refused for `ms` (an HTTP
	 * client cannot quietly retry its request on a fresh connection). */
	outage(ms) {
		this.downUntil = Date.now() + ms;
		this.dropAll();
	}

	dropAll() {
		for (const pair of this.pairs) {
			pair.client.destroy();
			if (pair.up) pair.up.destroy();
		}
		this.pairs.clear();
	}

	close() {
		this.dropAll();
		if (this.server) this.server.close();
	}
}

/** Every event of `client` as [name, detail], for assertions on what happened. */
export function record(client, names = ['state', 'connection', 'session', 'epoch', 'gap', 'token', 'error']) {
	const events = [];
	for (const n of names) client.on(n, (d) => events.push([n, d]));
	events.since = (i) => events.slice(i);
	events.of = (name, from = 0) => events.slice(from).filter(([n]) => n === name).map(([, d]) => d);
	return events;
}

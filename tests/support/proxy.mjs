// A TCP proxy between a client (the client library under node:test, or the
// dashboard in Chromium) and the publisher, for network faults: it cuts
// every connection (a network blip), refuses new ones for a while (an
// outage), refuses WebSocket upgrades, holds SSE responses back as a
// buffering proxy does, refuses /stream/events, and slips a message into
// each stream between two whole ones. No npm package.
//
//   const proxy = await new Proxy(() => server.port, { refuseWebSocket: true }).start();
//   const client = new PublisherClient({ url: proxy.url }); ...; proxy.dropAll(); ...; proxy.close();

import { once } from 'node:events';
import net from 'node:net';

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
 * Sits between the client and the server at `targetPort()` (a function: the
 * server may come back on another port). Options: refuseWebSocket answers
 * an upgrade to /ws with 403 (a proxy that does not pass WebSockets);
 * holdEvents keeps every byte of an SSE response back (a proxy that buffers
 * responses whole); eventsStatus answers /stream/events with that status (a
 * proxy that does not route it). dropAll() cuts every connection (a network
 * blip), outage(ms) also refuses new ones for a while; inject(text) slips a
 * message into each WebSocket stream (as a frame) and each SSE stream (as an
 * event) between two whole ones, and into the next poll answer (as a
 * frame). streams('ws') counts the WebSocket streams it carries (or 'sse').
 * `requests` lists the request lines seen ("GET /ws", "POST /stream/send",
 * ...).
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

	/** How many streams of `kind` ('ws' or 'sse') it carries now. */
	streams(kind) {
		let n = 0;
		for (const pair of this.pairs) if (pair.kind === kind) n++;
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


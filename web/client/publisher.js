/**
 * publisher.js: the client library of a publisher server, served by the
 * server itself at /client/publisher.js. One ES module, no dependencies, no
 * build step; it runs in browsers and in Node 20 (give it a WebSocket
 * constructor, or run node with --experimental-websocket, and an absolute
 * base URL).
 *
 * It connects over the best transport the network allows: a WebSocket to
 * /ws, else Server-Sent Events (/stream/events, read with fetch() so it can
 * send a token header), else HTTP long-poll (/stream/poll and /stream/send)
 * when the event stream is refused or its first frame is held back by a
 * buffering proxy. What worked is remembered for the life of the page, and
 * the better transports are tried again every few minutes. It keeps a book of symbol states with every price as the
 * exact decimal text the server sent (never a float), applies deltas only on
 * the seq they start from, resubscribes a symbol whose deltas have a gap, and
 * after any reconnect resubscribes everything with `resume`, so the server
 * sends only what changed. Requests are answered by promises; a refusal is a
 * ServerError carrying the server's `code`.
 *
 *     import { PublisherClient } from 'https://md.example.com/client/publisher.js';
 *
 *     const client = new PublisherClient({ url: 'https://md.example.com/', token: () => getToken() });
 *     client.on('state', ({ symbol, state, changed }) => {
 *         console.log(symbol, state.seq, state.fields.bid, Object.keys(changed)); // "189.30", as sent
 *     });
 *     client.on('connection', ({ state, transport, attempt }) => console.log(state, transport, attempt));
 *     client.on('error', (err) => console.warn(err.code || '', err.message));
 *     client.connect();
 *     await client.subscribe(['AAPL', 'MSFT']);
 *     const { bars } = await client.bars('AAPL', '1m', { limit: 100 });
 *
 * Methods: connect(), close(), retryNow(), setToken(t); subscribe(symbols),
 * unsubscribe(symbols), symbols(), history(symbol, {from, to, limit}),
 * bars(symbol, interval, {from, to, limit}), ping() (resolves with the
 * round trip in ms), request({op, ...}) for any other op. Properties: book
 * (a Book: get(symbol) is the Quote), state, transport, open, attempt, rtt.
 * Options: see the PublisherClient constructor.
 *
 * Events (client.on(name, fn) returns a function that removes fn):
 *   state       {symbol, state, changed, previous, snapshot}: a symbol's state
 *               changed; state is its Quote (seq, ts, fields), changed maps
 *               each field that changed to the direction it moved (-1, 1, or
 *               0 for a new, removed or non-numeric value), previous to its
 *               former text.
 *   connection  {state, transport, attempt, rtt, retryAt, everOpen, code,
 *               reason}: state is 'connecting', 'open', 'waiting' (backing
 *               off) or 'closed'; transport 'ws', 'sse' or 'poll'
 *               (TRANSPORT_LABELS names them); while waiting, code and reason
 *               say why the last connection ended (a WebSocket close code or
 *               a stream's close frame; null code for a network failure).
 *   session     {hello, reconnect, epochChanged, resumed, symbols}: a new
 *               protocol session began (a hello) and was resubscribed,
 *               resuming `resumed` of `symbols` symbols.
 *   epoch       {epoch, previous, dropped}: the server's epoch; dropped when
 *               the book was emptied (another epoch: what it held is void).
 *   gap         {symbol, held, from}: a delta did not start from the held seq;
 *               the symbol is resubscribed with resume.
 *   token       {code|status, reason}: the token expired (4001) or was
 *               refused (401): give a new one with setToken() (a `token`
 *               function is simply called again on the next connect).
 *   rtt         milliseconds of a ping's round trip.
 *   message     a server frame the library does not consume (e.g. replay
 *               states broadcast to every client).
 *   error       an Error: a ServerError the server sent unasked, a refused
 *               connection (err.status), a resubscribe that was refused.
 */

/* ---- settings ------------------------------------------------------------ */

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;
const STABLE_MS = 5000; // open this long before the backoff starts over
const PING_EVERY_MS = 5000;
const REQUEST_TIMEOUT_MS = 15000;
const WS_OPEN_TIMEOUT_MS = 10000; // a WebSocket still not open: try SSE
/* The first SSE frame must arrive this soon, else a proxy is holding the
 * response back (buffering it whole) and long-poll is the way through. */
const STREAM_SENSE_MS = 4000;
/* After falling back, the better transports are tried again this often: on a
 * reconnect, and in the background while the fallback works (the network may
 * have changed: another Wi-Fi, a VPN). */
const UPGRADE_RETRY_MS = 5 * 60 * 1000;
const POLL_WAIT_MS = 25000;
const POLL_SLACK_MS = 15000; // a poll with no answer this long after its wait is dead
const GAP_BATCH_MS = 50; // gaps found within this are resubscribed in one op
/* A gap resubscribe is not repeated for this long: deltas already in flight
 * behind the gap would otherwise each trigger one. */
const RESYNC_MS = 3000;
const SUBSCRIBE_CHUNK = 500; // symbols per subscribe: well under 64 KiB
const RESUME_TEXT_MAX = 60000; // resume text of a wildcard subscribe, at most
const RATE_LIMITED_RETRY_MS = 1000;

const TRANSPORTS = ['ws', 'sse', 'poll'];
export const TRANSPORT_LABELS = { ws: 'WebSocket', sse: 'SSE', poll: 'long-poll' };

/* What worked, per base URL, for the life of the page (or process): a
 * reconnect goes straight to it. fellBackAt: when the better transports
 * last failed (null: the best one works), so they are tried again now and
 * then. */
const worked = new Map();

/* ---- exact numbers --------------------------------------------------------- */

// Prices are exact decimals: "470.90" must reach the user as 470.90, not as
// the double 470.9, and seqs are uint64 (exact past 2^53). Before
// JSON.parse, the value of every numeric protocol member is wrapped in
// quotes, so it arrives as its exact source text.
//
// Why not JSON.parse's reviver with context.source? It runs for every value
// of every frame: measured, parsing became five times slower (72 µs against
// 17 µs for a 5-update batch), at thousands of updates a second. The rewrite
// is one native regex pass, and it works in every browser.
//
// The rewrite is sound on valid JSON: the pattern needs `"key":` followed by
// a digit or '-', and inside a JSON string every '"' is escaped as \", so the
// pattern can only match a real member name, never text inside a string.

const NUMERIC = [
	'bid', 'ask', 'last', 'open', 'high', 'low', 'close', 'prev_close',
	'bid_size', 'ask_size', 'last_size', 'volume', 'trades',
	'seq', 'from', 'ts', 't', 'id',
];
// The number is matched by JSON's own grammar, so a malformed one ("1.1.1",
// "12-3") leaves text behind it that JSON.parse rejects, as it would have
// without the rewrite.
const NUMBER_MEMBER = new RegExp('"(' + NUMERIC.join('|') + ')"\\s*:\\s*' +
	'(-?(?:0|[1-9]\\d*)(?:\\.\\d+)?(?:[eE][+-]?\\d+)?)', 'g');

/**
 * Parse one server frame (or a poll answer). The members named in NUMERIC
 * come back as strings holding the exact decimal text; other numbers stay
 * numbers. Throws a SyntaxError on malformed JSON.
 */
export function parseFrame(text) {
	return JSON.parse(text.replace(NUMBER_MEMBER, '"$1":"$2"'));
}

/* ---- decimal text ----------------------------------------------------------- */

// Arithmetic on decimal strings exactly as the server sent them (change,
// spread), and their display; the percent change is a display-only
// approximation.

const MINUS = '\u2212';

/** Digits after the decimal point of a plain decimal string. */
export function scaleOf(s) {
	const i = s.indexOf('.');
	return i < 0 ? 0 : s.length - i - 1;
}

function plainDecimal(s) {
	return /^-?\d+(\.\d+)?$/.test(s);
}

function mantissa(s, scale) {
	const neg = s[0] === '-';
	const t = neg ? s.slice(1) : s;
	const i = t.indexOf('.');
	const int = i < 0 ? t : t.slice(0, i);
	const frac = i < 0 ? '' : t.slice(i + 1);
	const m = BigInt(int + frac.padEnd(scale, '0'));
	return neg ? -m : m;
}

function fromMantissa(m, scale) {
	const neg = m < 0n;
	const t = (neg ? -m : m).toString().padStart(scale + 1, '0');
	const r = scale ? t.slice(0, -scale) + '.' + t.slice(-scale) : t;
	return neg ? '-' + r : r;
}

/** a - b as an exact decimal string, or null when either is missing. */
export function sub(a, b) {
	if (a === undefined || b === undefined) return null;
	const scale = Math.max(scaleOf(a), scaleOf(b));
	if (!plainDecimal(a) || !plainDecimal(b)) return (Number(a) - Number(b)).toFixed(Math.min(scale, 12));
	return fromMantissa(mantissa(a, scale) - mantissa(b, scale), scale);
}

/**
 * (a + b) / 2 as an exact decimal string (one more decimal when the sum is
 * odd in its last place: the mid of "1.0850" and "1.0853" is "1.08515"),
 * or null when either is missing.
 */
export function mid(a, b) {
	if (a === undefined || b === undefined) return null;
	const scale = Math.max(scaleOf(a), scaleOf(b));
	if (!plainDecimal(a) || !plainDecimal(b)) return String((Number(a) + Number(b)) / 2);
	const sum = mantissa(a, scale) + mantissa(b, scale);
	return sum % 2n === 0n ? fromMantissa(sum / 2n, scale) : fromMantissa(sum * 5n, scale + 1);
}

/** Sign of a decimal string: -1, 0 or 1. */
export function sign(s) {
	if (s === null || s === undefined) return 0;
	if (s[0] === '-') return /[1-9]/.test(s) ? -1 : 0;
	return /[1-9]/.test(s) ? 1 : 0;
}

/** "+1.25" / "−1.25" / "0.00" with a typographic minus. */
export function signed(s) {
	const g = sign(s);
	if (g > 0) return '+' + s;
	if (g < 0) return MINUS + s.slice(1);
	return s[0] === '-' ? s.slice(1) : s;
}

/** Percent change of `chg` against `base`, two decimals, signed. */
export function percent(chg, base) {
	const b = Number(base);
	if (chg === null || !b) return null;
	const p = (Number(chg) / b) * 100;
	const t = Math.abs(p).toFixed(2);
	if (t === '0.00') return '0.00%';
	return (p > 0 ? '+' : MINUS) + t + '%';
}

/** Thousands separators on the integer part: "1234567.5" -> "1,234,567.5". */
export function group(s) {
	if (s === undefined || s === null) return '';
	const i = s.indexOf('.');
	const int = i < 0 ? s : s.slice(0, i);
	const g = int.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
	return i < 0 ? g : g + s.slice(i);
}

/** Compact volume for narrow places: 12,345,678 -> "12.35M". */
export function compact(s) {
	const n = Number(s);
	if (!isFinite(n)) return '';
	const a = Math.abs(n);
	if (a >= 1e9) return (n / 1e9).toFixed(2) + 'B';
	if (a >= 1e6) return (n / 1e6).toFixed(2) + 'M';
	if (a >= 1e4) return (n / 1e3).toFixed(1) + 'K';
	return group(s);
}

/* ---- the book ---------------------------------------------------------------- */

// The protocol's rules for updates: a snapshot replaces what is held; a delta
// applies when its `from` equals the seq held, and a field it sets to null is
// taken away (as a new trading session does to open, high and low: a
// snapshot leaves them out); a delta whose `from` is newer than what is held
// means ticks are missing (a gap), and the symbol is resubscribed with
// `resume`.
//
// Two more cases follow from what a delta is (every field changed after
// `from`, valued as of `seq`), and both happen when a gap resubscribe crosses
// deltas already in flight:
//  - from < held < seq: the delta covers everything after what is held, so it
//    applies exactly (treating it as a gap would resubscribe again, and again,
//    each answer crossing the next batch of in-flight deltas);
//  - seq <= held: nothing newer than what is held; ignored.

const META = new Set(['type', 'symbol', 'seq', 'from', 'ts', 'id']);

/** A seq's text as a BigInt (exact past 2^53), or null. */
function seqValue(text) {
	return typeof text === 'string' && /^\d+$/.test(text) ? BigInt(text) : null;
}

/** The state of one symbol, every value the exact text the server sent. */
export class Quote {
	constructor(symbol) {
		this.symbol = symbol;
		this.seq = null; // decimal text
		this.ts = null; // microseconds since the epoch, as text
		this.fields = Object.create(null); // field -> value text
		this.resyncAt = null; // when its last gap was resubscribed
	}
}

export class Book {
	constructor() {
		this.quotes = new Map(); // symbol -> Quote
		this.epoch = null;
		this.wildcard = false; // subscribed to "*": every symbol is taken in
		this.updates = 0; // snapshots and deltas applied, ever
		this.gaps = 0; // gaps resubscribed, ever
	}

	get(symbol) {
		return this.quotes.get(symbol);
	}

	has(symbol) {
		return this.quotes.has(symbol);
	}

	get size() {
		return this.quotes.size;
	}

	/** Start holding a symbol (no value until its snapshot). */
	watch(symbol) {
		let q = this.quotes.get(symbol);
		if (!q) {
			q = new Quote(symbol);
			this.quotes.set(symbol, q);
		}
		return q;
	}

	unwatch(symbol) {
		this.quotes.delete(symbol);
	}

	/** Another epoch: every value held belongs to another store. */
	clear() {
		for (const q of this.quotes.values()) {
			q.seq = null;
			q.ts = null;
			q.fields = Object.create(null);
			q.resyncAt = null;
		}
	}

	/**
	 * Apply a snapshot or a delta `m` (as parseFrame gives it). Returns the
	 * change {symbol, state, changed, previous, snapshot}; {gap: true,
	 * symbol, held, from} when the symbol must be resubscribed; or null when
	 * nothing changed (a symbol not held, old news, a gap already being
	 * resubscribed).
	 */
	apply(m, now = performance.now()) {
		let q = this.quotes.get(m.symbol);
		if (!q) {
			if (!this.wildcard || typeof m.symbol !== 'string') return null;
			q = this.watch(m.symbol);
		}
		const snapshot = m.type === 'snapshot';
		if (!snapshot && m.from !== q.seq) {
			const from = seqValue(m.from), seq = seqValue(m.seq), held = seqValue(q.seq);
			if (held !== null && seq !== null && seq <= held) return null; // old news
			if (held === null || from === null || from > held) {
				if (q.resyncAt !== null && now - q.resyncAt < RESYNC_MS) return null;
				q.resyncAt = now;
				this.gaps++;
				return { gap: true, symbol: q.symbol, held: q.seq, from: m.from };
			}
			// from < held < seq: a superset of what we miss; apply it.
		}
		this.updates++;
		q.resyncAt = null;
		const f = q.fields;
		const changed = {};
		const previous = {};
		if (snapshot) {
			for (const k in f) {
				if (!(k in m)) {
					previous[k] = f[k];
					changed[k] = 0;
					delete f[k];
				}
			}
		}
		for (const k in m) {
			if (META.has(k)) continue;
			const v = m[k];
			const old = f[k];
			if (v === null) {
				if (old === undefined) continue;
				delete f[k];
				previous[k] = old;
				changed[k] = 0;
				continue;
			}
			if (old === v) continue;
			f[k] = v;
			previous[k] = old;
			changed[k] = old === undefined ? 0 : Math.sign(Number(v) - Number(old)) || 0;
		}
		q.seq = m.seq;
		if (m.ts !== undefined) q.ts = m.ts;
		return { symbol: q.symbol, state: q, changed, previous, snapshot };
	}

	/** The symbols of `list` held with a seq, as [symbol, seqText] pairs. */
	heldSeqs(list) {
		const out = [];
		for (const s of list) {
			const q = this.quotes.get(s);
			if (q && q.seq !== null && /^\d+$/.test(q.seq)) out.push([s, q.seq]);
		}
		return out;
	}

	/** Every symbol with a value, as {symbol: {seq, ts, ...fields}}: for comparing books. */
	toJSON() {
		const out = {};
		for (const [s, q] of this.quotes) if (q.seq !== null) out[s] = { seq: q.seq, ts: q.ts, ...q.fields };
		return out;
	}
}

/**
 * A subscribe op's JSON text for `symbols` with request id `id`. With `held`
 * ([symbol, seqText] pairs) and an `epoch`, it asks to `resume`: the server
 * sends nothing for a symbol we are current on, one delta for one we are
 * behind on, a snapshot otherwise. Seqs are written from their exact text
 * (they may exceed 2^53, which JSON.stringify of a number would round).
 * maxHz > 0 caps the updates per symbol per second.
 */
export function subscribeText(symbols, held, epoch, id, maxHz = 0) {
	let t = '{"op":"subscribe","symbols":' + JSON.stringify(symbols);
	if (held.length && epoch !== null) {
		t += ',"resume":{"epoch":' + JSON.stringify(epoch) + ',"seq":{' +
			held.map(([s, seq]) => JSON.stringify(s) + ':' + seq).join(',') + '}}';
	}
	if (maxHz > 0) t += ',"max_hz":' + Number(maxHz);
	return t + ',"id":' + id + '}';
}

/* ---- Server-Sent Events ---------------------------------------------------- */

/**
 * The text/event-stream format, fed in chunks of any size: onEvent({id,
 * type, data}) for each event with data. `id` is the last event ID seen so
 * far (it carries over to later events, as the format says), null before
 * any. Lines end with CRLF, LF or CR (a CRLF may be split across chunks).
 */
export class SseParser {
	constructor(onEvent) {
		this.onEvent = onEvent;
		this.buf = '';
		this.data = [];
		this.type = '';
		this.lastId = null;
		this.skipLF = false; // the last chunk ended with CR: an LF now is its pair
	}

	push(text) {
		if (!text) return;
		if (this.skipLF && text[0] === '\n') text = text.slice(1);
		this.skipLF = false;
		const buf = this.buf + text;
		const eol = /\r\n|\r|\n/g;
		let start = 0;
		let m;
		while ((m = eol.exec(buf)) !== null) {
			this.line(buf.slice(start, m.index));
			start = m.index + m[0].length;
			if (start === buf.length && m[0] === '\r') this.skipLF = true;
		}
		this.buf = buf.slice(start);
	}

	line(line) {
		if (line === '') {
			if (this.data.length) this.onEvent({ id: this.lastId, type: this.type || 'message', data: this.data.join('\n') });
			this.data = [];
			this.type = '';
			return;
		}
		if (line[0] === ':') return; // a comment (a keep-alive)
		const i = line.indexOf(':');
		const field = i < 0 ? line : line.slice(0, i);
		let value = i < 0 ? '' : line.slice(i + 1);
		if (value[0] === ' ') value = value.slice(1);
		if (field === 'data') this.data.push(value);
		else if (field === 'id') { if (!value.includes('\0')) this.lastId = value; }
		else if (field === 'event') this.type = value;
	}
}

/* ---- transports -------------------------------------------------------------- */

// A link is one attempt at carrying the protocol: a WebSocket, one SSE
// response, or a run of polls. It reports to the client through four calls,
// each ignored by the client once the link is no longer its current one:
//   client.linkUp(link)            the transport works (WebSocket open, the
//                                  stream frame of an SSE response or poll)
//   client.linkFrames(link, msgs)  server messages, in order
//   client.linkFailed(link, info)  it never came up: {fallback, status, reason};
//                                  fallback: this transport is what failed here,
//                                  try the next one at once
//   client.linkDown(link, info)    it was up and ended: {code, reason}
// Stream links (SSE, poll) belong to a StreamSession that outlives them.

const isNode = typeof process === 'object' && process !== null && !!(process.versions && process.versions.node);

function messagesOf(frame) {
	return Array.isArray(frame) ? frame : [frame];
}

class WsLink {
	constructor(client, token) {
		this.client = client;
		this.token = token;
		this.ws = null;
		this.up = false;
		this.timer = 0;
	}

	start() {
		const c = this.client;
		const url = c.wsUrl();
		let ws;
		try {
			// Node's WebSocket takes headers; a browser's cannot, and gets the
			// token in the URL (a `token` cookie is the better way there).
			if (this.token && isNode) ws = new c.WebSocket(url.href, { headers: { Authorization: 'Bearer ' + this.token } });
			else {
				if (this.token) url.searchParams.set('token', this.token);
				ws = new c.WebSocket(url.href);
			}
		} catch (e) {
			queueMicrotask(() => c.linkFailed(this, { fallback: true, reason: String(e && e.message) }));
			return;
		}
		this.ws = ws;
		this.timer = setTimeout(() => {
			this.close();
			c.linkFailed(this, { fallback: true, reason: 'the WebSocket did not open within ' + WS_OPEN_TIMEOUT_MS / 1000 + ' s' });
		}, WS_OPEN_TIMEOUT_MS);
		ws.onopen = () => {
			clearTimeout(this.timer);
			this.up = true;
			c.linkUp(this);
		};
		ws.onmessage = (ev) => {
			c.lastRx = performance.now();
			let frame;
			try {
				frame = parseFrame(String(ev.data));
			} catch (e) {
				c.emitError(new Error('a frame that is not JSON was ignored: ' + e.message));
				return;
			}
			c.linkFrames(this, messagesOf(frame));
		};
		ws.onclose = (ev) => {
			clearTimeout(this.timer);
			this.detach();
			// Refused upgrades and blocked networks end here before open.
			if (this.up) c.linkDown(this, { code: ev.code, reason: ev.reason });
			else c.linkFailed(this, { fallback: true, reason: 'the WebSocket closed before it opened (' + ev.code + ')' });
		};
		ws.onerror = () => {
			// Once open, onclose follows with the details. Before open, a
			// browser follows with onclose too, but Node 20's WebSocket
			// stays CONNECTING for ever after a refused upgrade.
			if (this.up) return;
			this.close();
			c.linkFailed(this, { fallback: true, reason: 'the WebSocket failed before it opened' });
		};
	}

	detach() {
		const ws = this.ws;
		if (ws) ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
	}

	send(text) {
		if (!this.ws || this.ws.readyState !== 1) return false;
		this.ws.send(text);
		return true;
	}

	silenceLimit(heartbeatMs) {
		return 2 * heartbeatMs + 3000;
	}

	close() {
		clearTimeout(this.timer);
		this.detach();
		const ws = this.ws;
		this.ws = null;
		if (ws) {
			try { ws.close(); } catch (e) { /* already closing */ }
		}
	}
}

/**
 * A stream session of the server: named by its key, reattached with the
 * cursor of the last frame received, and the channel for requests (POST
 * /stream/send, one at a time so they arrive in the order they were made).
 */
class StreamSession {
	constructor(client, transport) {
		this.client = client;
		this.transport = transport;
		this.key = null;
		this.cursor = null;
		this.queue = []; // {text, id}
		this.sending = false;
		this.ended = false;
	}

	send(text, id) {
		this.queue.push({ text, id });
		this.pump();
	}

	async pump() {
		if (this.sending || this.key === null) return;
		this.sending = true;
		const c = this.client;
		while (this.queue.length && !this.ended) {
			const item = this.queue[0];
			const url = c.endpoint('stream/send');
			let status = 0, body = '';
			try {
				const res = await c.fetch(url.href, {
					method: 'POST',
					body: item.text,
					// The session key goes in a header, never in the
					// URL: URLs end up in proxies' logs, and the key
					// is what lets a request into the session.
					headers: { 'Content-Type': 'text/plain;charset=UTF-8', 'X-Stream-Session': this.key },
					cache: 'no-store',
				});
				status = res.status;
				body = status === 202 ? '' : await res.text().catch(() => '');
			} catch (e) {
				body = String(e && e.message);
			}
			if (this.ended) break;
			this.queue.shift();
			if (status === 202) continue;
			if (status === 404) {
				// The session is gone (expired, server restarted): start over.
				this.ended = true;
				c.streamSessionLost(this, body.trim() || 'unknown session');
				break;
			}
			let err;
			if (status === 413) err = new ServerError({ code: 'too_large', message: body.trim() || 'request too large', id: item.id });
			else err = new Error(status ? 'POST /stream/send answered ' + status + ': ' + body.trim() : 'the request was not sent: ' + body);
			c.requestFailed(item.id, err);
		}
		this.sending = false;
	}

	end() {
		this.ended = true;
		for (const item of this.queue) this.client.requestFailed(item.id, new Error('the stream session ended'));
		this.queue = [];
	}
}

/* Headers of a stream request: the token, when there is one. */
function authHeaders(token, more) {
	const h = { ...more };
	if (token) h.Authorization = 'Bearer ' + token;
	return h;
}

/* The body of a refused request, shortened for a message. */
async function refusalText(res) {
	const t = await res.text().catch(() => '');
	return 'HTTP ' + res.status + (t.trim() ? ': ' + t.trim().slice(0, 200) : '');
}

class SseLink {
	constructor(client, session, token) {
		this.client = client;
		this.session = session;
		this.token = token;
		this.abort = new AbortController();
		this.up = false;
		this.done = false;
		this.timer = 0;
	}

	async start() {
		const c = this.client;
		const url = c.endpoint('stream/events');
		// The cursor names the session: a header, not the URL (see pump).
		const more = { Accept: 'text/event-stream' };
		if (this.session.cursor) more['Last-Event-ID'] = this.session.cursor;
		this.timer = setTimeout(() => {
			this.finish('failed', { fallback: true, reason: 'no stream frame within ' + c.streamSenseMs / 1000 + ' s: a proxy is holding the response back' });
		}, c.streamSenseMs);
		let res;
		try {
			res = await c.fetch(url.href, {
				headers: authHeaders(this.token, more),
				cache: 'no-store',
				signal: this.abort.signal,
			});
		} catch (e) {
			this.finish('failed', { fallback: false, reason: String(e && e.message) });
			return;
		}
		if (this.done) return;
		if (res.status !== 200) {
			// A proxy that does not pass the event stream says so with any
			// status (403 as often as 404 or 502); if it was the server's own
			// refusal (a token, an origin, full), the poll hears it too.
			const reason = await refusalText(res);
			this.finish('failed', { fallback: true, status: res.status, reason });
			return;
		}
		const parser = new SseParser((ev) => this.event(ev));
		const decoder = new TextDecoder();
		const reader = res.body.getReader();
		try {
			for (;;) {
				const { done, value } = await reader.read();
				if (this.done) return;
				if (done) break;
				c.lastRx = performance.now();
				parser.push(decoder.decode(value, { stream: true }));
				if (this.done) return;
			}
		} catch (e) {
			if (this.done) return;
			this.finish(this.up ? 'down' : 'failed', { fallback: false, reason: String(e && e.message) });
			return;
		}
		this.finish(this.up ? 'down' : 'failed', { fallback: false, reason: 'the event stream ended' });
	}

	event(ev) {
		if (this.done) return;
		const c = this.client;
		let frame;
		try {
			frame = parseFrame(ev.data);
		} catch (e) {
			c.emitError(new Error('an event that is not JSON was ignored: ' + e.message));
			return;
		}
		if (ev.id !== null) this.session.cursor = ev.id;
		if (!this.up) {
			this.up = true;
			clearTimeout(this.timer);
			c.linkUp(this);
		}
		c.linkFrames(this, messagesOf(frame));
	}

	finish(how, info) {
		if (this.done) return;
		this.close();
		if (how === 'failed') this.client.linkFailed(this, info);
		else this.client.linkDown(this, info);
	}

	send(text, id) {
		this.session.send(text, id);
		return true;
	}

	silenceLimit(heartbeatMs) {
		return 2 * heartbeatMs + 3000;
	}

	close() {
		this.done = true;
		clearTimeout(this.timer);
		this.abort.abort();
	}
}

class PollLink {
	constructor(client, session, token) {
		this.client = client;
		this.session = session;
		this.token = token;
		this.abort = null;
		this.up = false;
		this.done = false;
		this.timer = 0;
	}

	async start() {
		const c = this.client;
		while (!this.done) {
			const url = c.endpoint('stream/poll');
			url.searchParams.set('wait_ms', String(c.pollWaitMs));
			const more = { Accept: 'application/json' };
			if (this.session.cursor) more['Last-Event-ID'] = this.session.cursor;
			this.abort = new AbortController();
			this.timer = setTimeout(() => this.abort.abort(), c.pollWaitMs + POLL_SLACK_MS);
			let answer;
			try {
				const res = await c.fetch(url.href, {
					headers: authHeaders(this.token, more),
					cache: 'no-store',
					signal: this.abort.signal,
				});
				if (this.done) return;
				if (res.status !== 200) {
					const reason = await refusalText(res);
					this.finish({ fallback: false, status: res.status, reason });
					return;
				}
				answer = parseFrame(await res.text());
			} catch (e) {
				this.finish({ fallback: false, reason: String(e && e.message) });
				return;
			} finally {
				clearTimeout(this.timer);
			}
			if (this.done) return;
			c.lastRx = performance.now();
			if (!answer || !Array.isArray(answer.frames)) {
				this.finish({ fallback: false, reason: 'a poll answer without frames' });
				return;
			}
			if (typeof answer.cursor === 'string' && answer.cursor) this.session.cursor = answer.cursor;
			if (!this.up) {
				this.up = true;
				c.linkUp(this);
			}
			const msgs = [];
			for (const f of answer.frames) msgs.push(...messagesOf(f));
			// A poll that goes on from its cursor is answered without a
			// stream frame: the session is the same.
			const first = msgs.length ? msgs[0].type : null;
			if (this.session.key !== null && first !== 'stream' && first !== 'close') c.streamResumed(this.session);
			c.linkFrames(this, msgs);
		}
	}

	finish(info) {
		if (this.done) return;
		this.close();
		if (this.up) this.client.linkDown(this, info);
		else this.client.linkFailed(this, info);
	}

	send(text, id) {
		this.session.send(text, id);
		return true;
	}

	silenceLimit(heartbeatMs) {
		return this.client.pollWaitMs + POLL_SLACK_MS + 2 * heartbeatMs;
	}

	close() {
		this.done = true;
		clearTimeout(this.timer);
		if (this.abort) this.abort.abort();
	}
}

/* ---- trying a better transport ------------------------------------------ */

/* Whether a WebSocket to `url` opens within timeoutMs; closed at once. */
function probeWebSocket(Ctor, url, token, timeoutMs) {
	return new Promise((resolve) => {
		let ws;
		try {
			if (token && isNode) ws = new Ctor(url, { headers: { Authorization: 'Bearer ' + token } });
			else {
				const u = new URL(url);
				if (token) u.searchParams.set('token', token);
				ws = new Ctor(u.href);
			}
		} catch (e) {
			resolve(false);
			return;
		}
		const done = (ok) => {
			clearTimeout(timer);
			ws.onopen = ws.onerror = ws.onclose = null;
			try { ws.close(); } catch (e) { /* already closing */ }
			resolve(ok);
		};
		const timer = setTimeout(() => done(false), timeoutMs);
		ws.onopen = () => done(true);
		ws.onerror = ws.onclose = () => done(false);
	});
}

/* Whether an SSE response from `url` brings its first frame within
 * timeoutMs (through a buffering proxy it does not); aborted at once. */
async function probeEvents(fetchFn, url, token, timeoutMs) {
	const abort = new AbortController();
	const timer = setTimeout(() => abort.abort(), timeoutMs);
	try {
		const res = await fetchFn(url, { headers: authHeaders(token, { Accept: 'text/event-stream' }), cache: 'no-store', signal: abort.signal });
		if (res.status !== 200) return false;
		const reader = res.body.getReader();
		const decoder = new TextDecoder();
		let text = '';
		for (;;) {
			const { done, value } = await reader.read();
			if (done) return false;
			text += decoder.decode(value, { stream: true });
			if (/"type":"stream"/.test(text)) return true;
		}
	} catch (e) {
		return false;
	} finally {
		clearTimeout(timer);
		abort.abort();
	}
}

/* ---- the client ------------------------------------------------------------- */

/** An error reply of the server: `code` says which ("bad_request", "forbidden", ...). */
export class ServerError extends Error {
	constructor(reply) {
		super(reply.message || reply.code || 'server error');
		this.name = 'ServerError';
		this.code = reply.code;
		this.reply = reply;
	}
}

/* Codes of a refused subscribe that name symbols: the request is split to
 * find them, and the others are subscribed. */
const SYMBOL_REFUSALS = new Set(['forbidden', 'bad_request']);

function chunks(list, n) {
	const out = [];
	for (let i = 0; i < list.length; i += n) out.push(list.slice(i, i + n));
	return out;
}

function symbolList(symbols) {
	const list = typeof symbols === 'string' ? [symbols] : [...symbols];
	for (const s of list) if (typeof s !== 'string' || !s) throw new TypeError('a symbol is a non-empty string: ' + String(s));
	return [...new Set(list)];
}

export class PublisherClient {
	/**
	 * options:
	 *   url        the server's base URL (absolute); in a browser, the page's
	 *   transport  'auto' (default: ws, then sse, then poll), one of 'ws',
	 *              'sse', 'poll' to force it, or a list in preference order
	 *   token      a token string, or a function returning one (or a promise
	 *              of one), called on every connect
	 *   WebSocket  a WebSocket constructor (default: the global one)
	 *   fetch      a fetch function (default: the global one)
	 *   maxHz      cap of updates per symbol per second (0: none)
	 *   pingMs     ping interval for the round-trip time (0: no pings)
	 *   requestTimeoutMs, streamSenseMs, pollWaitMs, upgradeRetryMs
	 */
	constructor(options = {}) {
		const base = options.url ?? (globalThis.location ? globalThis.location.href : undefined);
		if (!base) throw new TypeError('PublisherClient: options.url, the server\'s absolute base URL, is needed outside a browser');
		this.base = new URL(base);
		this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
		this.fetch = options.fetch ?? ((...a) => globalThis.fetch(...a));
		this.transports = this.allowedTransports(options.transport ?? 'auto');
		this.token = options.token ?? null;
		this.maxHz = options.maxHz ?? 0;
		this.pingMs = options.pingMs ?? PING_EVERY_MS;
		this.requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
		this.streamSenseMs = options.streamSenseMs ?? STREAM_SENSE_MS;
		this.pollWaitMs = options.pollWaitMs ?? POLL_WAIT_MS;
		this.upgradeRetryMs = options.upgradeRetryMs ?? UPGRADE_RETRY_MS;
		this.memoryKey = this.base.origin + this.base.pathname.replace(/[^/]*$/, '');

		this.book = new Book();
		this.listeners = new Map(); // event name -> Set of functions
		this.wanted = new Set(); // symbols subscribed (or to subscribe), '*' included
		this.state = 'idle';
		this.transport = null; // the transport of the current link
		this.attempt = 0; // failures since the last stable connection
		this.everOpen = false;
		this.retryAt = 0;
		this.rtt = null;
		this.heartbeatMs = 5000;
		this.lastRx = 0;
		this.lastClose = { code: null, reason: '' }; // why the last link ended
		this.sessions = 0; // hellos seen
		this.forgetBook = false; // the next hello starts from an empty book

		this.link = null;
		this.order = [];
		this.orderIndex = 0;
		this.serial = 0; // bumps on every attempt: a late token answer is ignored
		this.stream = null; // StreamSession of the sse or poll link
		this.fellBackAt = null; // a better transport failed in this attempt
		this.tokenAsked = false; // a 'token' event was sent in this attempt

		this.nextId = 1;
		this.pending = new Map(); // id text -> request, sent
		this.waiting = []; // requests made while not open
		this.syncWaiters = []; // subscribes made while not open: {list, resolve, reject}
		this.unsentUnsubscribes = new Set(); // made while a stream session was away
		this.gapSymbols = new Set();

		this.retryTimer = 0;
		this.stableTimer = 0;
		this.pingTimer = 0;
		this.watchTimer = 0;
		this.probeTimer = 0;
		this.gapTimer = 0;
		this.onOnline = () => this.retryNow();
	}

	allowedTransports(t) {
		const list = t === 'auto' ? TRANSPORTS.filter((x) => x !== 'ws' || this.WebSocket) : typeof t === 'string' ? [t] : [...t];
		for (const x of list) if (!TRANSPORTS.includes(x)) throw new TypeError('unknown transport "' + x + '": expected ws, sse or poll');
		if (list.includes('ws') && !this.WebSocket) throw new TypeError('no WebSocket constructor: pass options.WebSocket (Node 20: node --experimental-websocket)');
		if (!list.length) throw new TypeError('no transport to use');
		return list;
	}

	/** The URL of a server path, under the base URL. */
	endpoint(path) {
		return new URL(path, this.base);
	}

	/** The URL of the WebSocket. */
	wsUrl() {
		const url = this.endpoint('ws');
		url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
		return url;
	}

	/* ---- events ---- */

	/** Call fn(detail) on each `name` event; returns a function that stops it. */
	on(name, fn) {
		let set = this.listeners.get(name);
		if (!set) this.listeners.set(name, (set = new Set()));
		set.add(fn);
		return () => this.off(name, fn);
	}

	off(name, fn) {
		const set = this.listeners.get(name);
		if (set) set.delete(fn);
	}

	emit(name, detail) {
		const set = this.listeners.get(name);
		if (!set) return;
		for (const fn of [...set]) {
			try {
				fn(detail);
			} catch (e) {
				// A listener's bug is reported, and does not stop the stream.
				setTimeout(() => { throw e; });
			}
		}
	}

	emitError(err) {
		this.emit('error', err);
	}

	/* ---- connecting ---- */

	/** Start connecting (and keep reconnecting until close()). */
	connect() {
		if (this.state === 'connecting' || this.state === 'open' || this.state === 'waiting') return this;
		if (typeof window !== 'undefined' && window.addEventListener) window.addEventListener('online', this.onOnline);
		clearInterval(this.watchTimer);
		this.watchTimer = setInterval(() => this.watchdog(), 1000);
		this.attemptNow();
		return this;
	}

	/** Stop for good: close the link, reject what is pending. */
	close() {
		if (typeof window !== 'undefined' && window.removeEventListener) window.removeEventListener('online', this.onOnline);
		for (const t of [this.retryTimer, this.stableTimer, this.gapTimer]) clearTimeout(t);
		clearInterval(this.pingTimer);
		clearInterval(this.watchTimer);
		clearInterval(this.probeTimer);
		this.retryTimer = this.stableTimer = this.gapTimer = this.pingTimer = this.watchTimer = this.probeTimer = 0;
		const link = this.link;
		this.link = null;
		if (link) link.close();
		if (this.stream) this.stream.end();
		this.stream = null;
		this.serial++;
		this.rejectPending('the client was closed');
		for (const p of this.waiting.splice(0)) this.finishRequest(p, new Error('the client was closed'));
		for (const w of this.syncWaiters.splice(0)) w.reject(new Error('the client was closed'));
		this.setState('closed');
	}

	/** Reconnect at once if waiting for the next try. */
	retryNow() {
		if (this.state === 'waiting') this.attemptNow();
	}

	/** A new token for the next connect (after a 'token' event). */
	setToken(token) {
		this.token = token;
	}

	get open() {
		return this.state === 'open';
	}

	/** The transports to try now, in order. */
	transportOrder() {
		const all = this.transports;
		if (all.length === 1) return all;
		const mem = worked.get(this.memoryKey);
		let start = 0;
		if (this.stream && this.stream.cursor && all.includes(this.stream.transport)) start = all.indexOf(this.stream.transport);
		else if (mem && all.includes(mem.transport)) start = all.indexOf(mem.transport);
		// Now and then the better ones again (a stream session left behind
		// simply expires on the server).
		const recent = mem && mem.fellBackAt !== null && performance.now() - mem.fellBackAt < this.upgradeRetryMs;
		if (start > 0 && !recent) start = 0;
		return all.slice(start);
	}

	attemptNow() {
		clearTimeout(this.retryTimer);
		this.retryTimer = 0;
		this.order = this.transportOrder();
		this.orderIndex = 0;
		this.fellBackAt = null;
		this.tokenAsked = false;
		this.tryTransport();
	}

	async tryTransport() {
		const name = this.order[this.orderIndex];
		const serial = ++this.serial;
		this.transport = name;
		this.setState('connecting');
		let token = null;
		try {
			token = typeof this.token === 'function' ? await this.token() : this.token;
		} catch (e) {
			if (serial !== this.serial) return;
			this.emitError(new Error('the token function failed: ' + (e && e.message)));
			this.scheduleRetry();
			return;
		}
		if (serial !== this.serial) return;
		let link;
		if (name === 'ws') {
			link = new WsLink(this, token);
		} else {
			if (!this.stream || this.stream.transport !== name || this.stream.ended) {
				if (this.stream) this.stream.end();
				this.stream = new StreamSession(this, name);
			}
			link = name === 'sse' ? new SseLink(this, this.stream, token) : new PollLink(this, this.stream, token);
		}
		this.link = link;
		link.start();
	}

	linkUp(link) {
		if (link !== this.link) return;
		this.lastRx = performance.now();
	}

	linkFrames(link, msgs) {
		for (const m of msgs) {
			if (link !== this.link) return; // a close frame ended it
			if (m && typeof m === 'object') this.receive(m);
		}
	}

	linkFailed(link, info) {
		if (link !== this.link) return;
		this.link = null;
		link.close();
		// Once per attempt: the next transport may hear the same 401.
		if (info.status === 401 && !this.tokenAsked) this.emit('token', { status: 401, reason: info.reason });
		if (info.status === 401) this.tokenAsked = true;
		if (info.status) {
			const err = new Error('the server refused the connection: ' + info.reason);
			err.status = info.status;
			this.emitError(err);
		}
		if (info.fallback && this.orderIndex + 1 < this.order.length) {
			this.fellBackAt = performance.now();
			this.orderIndex++;
			this.tryTransport();
			return;
		}
		this.linkEnded({ reason: info.reason });
	}

	linkDown(link, info) {
		if (link !== this.link) return;
		this.link = null;
		link.close();
		this.linkEnded(info);
	}

	/** A POST found the stream session gone: open a new one. */
	streamSessionLost(session, reason) {
		if (session !== this.stream) return;
		session.cursor = null;
		const link = this.link;
		if (link && (link instanceof SseLink || link instanceof PollLink)) {
			this.link = null;
			link.close();
			this.linkEnded({ reason, sessionEnded: true });
		}
	}

	/* The link ended (or never came up): keep what a stream session can
	 * still resume, and try again, soon or after a backoff. */
	linkEnded(info) {
		this.lastClose = { code: info.code ?? null, reason: info.reason || '' };
		clearTimeout(this.stableTimer);
		clearInterval(this.pingTimer);
		clearInterval(this.probeTimer);
		this.stableTimer = this.pingTimer = this.probeTimer = 0;
		const resumable = this.stream !== null && this.stream.cursor !== null && !info.sessionEnded;
		if (!resumable) this.sessionEnded();
		if (info.code === 4001) this.emit('token', { code: 4001, reason: info.reason });
		if (info.code === 1012) {
			// A new epoch: what the book holds is void. Reconnect soon, spread
			// over a second so every client does not come back at once.
			this.forgetBook = true;
			this.waitThenRetry(Math.random() * 1000);
			return;
		}
		this.scheduleRetry();
	}

	/* The protocol session is over: its replies will never come. */
	sessionEnded() {
		if (this.stream) this.stream.end();
		this.stream = null;
		this.rejectPending('connection closed');
	}

	scheduleRetry() {
		// Full jitter over the upper half: clients dropped together by a
		// server restart do not come back together.
		const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
		this.attempt = Math.min(this.attempt + 1, 16);
		this.waitThenRetry(ceiling / 2 + Math.random() * (ceiling / 2));
	}

	waitThenRetry(delay) {
		if (this.state === 'closed') return;
		clearTimeout(this.retryTimer);
		this.retryAt = performance.now() + delay;
		this.retryTimer = setTimeout(() => this.attemptNow(), delay);
		this.setState('waiting');
	}

	setState(state) {
		this.state = state;
		const why = state === 'waiting' ? this.lastClose : { code: null, reason: '' };
		this.emit('connection', {
			state, transport: this.transport, attempt: this.attempt, rtt: this.rtt,
			retryAt: this.retryAt, everOpen: this.everOpen, code: why.code, reason: why.reason,
		});
	}

	/* The server heartbeats an idle session every heartbeat_ms; one that has
	 * said nothing for well over that is dead even if TCP has not noticed yet
	 * (a laptop that slept, a proxy that dropped us). */
	watchdog() {
		const link = this.link;
		if (!link || this.state !== 'open') return;
		if (performance.now() - this.lastRx > link.silenceLimit(this.heartbeatMs)) this.linkDown(link, { reason: 'silent' });
	}

	/* ---- what the server says ---- */

	receive(m) {
		switch (m.type) {
		case 'snapshot':
		case 'delta':
			this.applyUpdate(m);
			return;
		case 'heartbeat':
			return;
		case 'hello':
			this.hello(m);
			return;
		case 'stream':
			this.streamFrame(m);
			return;
		case 'close':
			if (this.link instanceof SseLink || this.link instanceof PollLink) {
				this.closeFrame(m);
				return;
			}
			break;
		default:
			break;
		}
		if (m.id !== undefined && this.settle(m)) return;
		if (m.type === 'error') this.emitError(new ServerError(m));
		else this.emit('message', m);
	}

	applyUpdate(m) {
		const r = this.book.apply(m);
		if (r === null) return;
		if (r.gap) {
			this.emit('gap', { symbol: r.symbol, held: r.held, from: r.from });
			this.gapSymbols.add(r.symbol);
			if (!this.gapTimer) this.gapTimer = setTimeout(() => this.flushGaps(), GAP_BATCH_MS);
			return;
		}
		this.emit('state', r);
	}

	flushGaps() {
		this.gapTimer = 0;
		const list = [...this.gapSymbols].filter((s) => this.book.has(s));
		this.gapSymbols.clear();
		// Not open: the next hello resubscribes everything anyway.
		if (list.length && this.state === 'open') this.subscribeNow(list, true).catch(() => {});
	}

	streamFrame(m) {
		const s = this.stream;
		if (!s) return;
		s.key = m.session;
		if (m.resumed) {
			this.streamResumed(s);
			return;
		}
		// A new session (a hello follows): the old one's replies are lost.
		this.rejectPending('the stream session was lost');
		s.queue = [];
		s.pump();
	}

	/* The same stream session goes on: subscriptions and pending replies are
	 * still there, and the frames after our cursor follow. */
	streamResumed(s) {
		if (s !== this.stream) return;
		s.pump();
		if (this.state === 'open') return;
		this.markWorked();
		this.opened();
		this.catchUp();
	}

	/* A stream session resumed: what was subscribed and unsubscribed while it
	 * was away goes out now (a new session would resubscribe everything). */
	catchUp() {
		const unsubs = [...this.unsentUnsubscribes];
		this.unsentUnsubscribes.clear();
		if (unsubs.length) {
			for (const c of chunks(unsubs, SUBSCRIBE_CHUNK)) this.request({ op: 'unsubscribe', symbols: c }).catch(() => {});
		}
		const waiters = this.syncWaiters.splice(0);
		for (const w of waiters) this.subscribeNow(w.list.filter((s) => this.wanted.has(s)), true).then(w.resolve, w.reject);
	}

	closeFrame(m) {
		const link = this.link;
		this.link = null;
		link.close();
		this.linkEnded({ code: m.code, reason: m.reason, sessionEnded: true });
	}

	hello(h) {
		const hb = Number(h.heartbeat_ms);
		if (hb > 0) this.heartbeatMs = hb;
		// Whatever the last session had under way is lost with it.
		if (this.stream && !(this.link instanceof SseLink || this.link instanceof PollLink)) {
			this.stream.end();
			this.stream = null;
		}
		this.rejectPending('a new session began');
		this.unsentUnsubscribes.clear();
		const previous = this.book.epoch;
		const reconnect = this.sessions++ > 0;
		const epochChanged = previous !== null && h.epoch !== previous;
		const dropped = epochChanged || (this.forgetBook && previous !== null);
		this.forgetBook = false;
		if (dropped) this.book.clear();
		this.book.epoch = h.epoch;
		if (dropped || previous === null) this.emit('epoch', { epoch: h.epoch, previous, dropped });
		this.markWorked();
		const held = this.resubscribe();
		this.opened();
		this.emit('session', { hello: h, reconnect, epochChanged, resumed: held, symbols: [...this.wanted].length });
	}

	/* Open: the pings start, the requests made meanwhile go out. */
	opened() {
		this.everOpen = true;
		this.lastRx = performance.now();
		clearTimeout(this.stableTimer);
		this.stableTimer = setTimeout(() => { this.attempt = 0; }, STABLE_MS);
		clearInterval(this.pingTimer);
		if (this.pingMs > 0) this.pingTimer = setInterval(() => this.ping().catch(() => {}), this.pingMs);
		clearInterval(this.probeTimer);
		this.probeTimer = 0;
		if (this.transports.indexOf(this.transport) > 0) this.probeTimer = setInterval(() => this.probeBetter(), this.upgradeRetryMs);
		this.setState('open');
		for (const p of this.waiting.splice(0)) this.transmit(p);
		if (this.pingMs > 0) this.ping().catch(() => {});
	}

	/* Open over a fallback: does a better transport work now? If so, move to
	 * it (the move resumes like any reconnect). */
	async probeBetter() {
		if (this.probing || this.state !== 'open') return;
		const at = this.transports.indexOf(this.transport);
		if (at <= 0) return;
		this.probing = true;
		let better = null;
		try {
			const token = typeof this.token === 'function' ? await this.token() : this.token;
			for (const name of this.transports.slice(0, at)) {
				const ok = name === 'ws'
					? await probeWebSocket(this.WebSocket, this.wsUrl().href, token, WS_OPEN_TIMEOUT_MS)
					: await probeEvents(this.fetch, this.endpoint('stream/events').href, token, this.streamSenseMs);
				if (ok) {
					better = name;
					break;
				}
			}
		} catch (e) {
			better = null;
		} finally {
			this.probing = false;
		}
		if (!better || this.state !== 'open' || this.transports.indexOf(this.transport) <= this.transports.indexOf(better)) return;
		worked.set(this.memoryKey, { transport: better, fellBackAt: null });
		const link = this.link;
		this.link = null;
		if (link) link.close();
		clearInterval(this.probeTimer);
		clearInterval(this.pingTimer);
		this.probeTimer = this.pingTimer = 0;
		this.sessionEnded();
		this.attemptNow();
	}

	markWorked() {
		const name = this.transport;
		const prev = worked.get(this.memoryKey);
		const fellBackAt = name === this.transports[0] ? null : this.fellBackAt ?? (prev && prev.fellBackAt) ?? performance.now();
		worked.set(this.memoryKey, { transport: name, fellBackAt });
	}

	/* ---- requests ---- */

	/**
	 * Send an op and resolve with its reply, or reject with a ServerError for
	 * an error reply (an Error when the connection goes away or no reply
	 * comes in time). `msg` is an object (its id is added) or a function
	 * given the id that returns the JSON text. Made while not connected, it
	 * waits for the connection.
	 */
	request(msg) {
		return this.call(msg, false);
	}

	call(msg, now) {
		return new Promise((resolve, reject) => {
			if (this.state === 'closed') {
				reject(new Error('the client was closed'));
				return;
			}
			const id = this.nextId++;
			const text = typeof msg === 'function' ? msg(id) : JSON.stringify({ ...msg, id });
			const p = { id, text, resolve, reject, timer: 0 };
			p.timer = setTimeout(() => {
				this.pending.delete(String(id));
				const i = this.waiting.indexOf(p);
				if (i >= 0) this.waiting.splice(i, 1);
				reject(new Error('no reply within ' + this.requestTimeoutMs / 1000 + ' s'));
			}, this.requestTimeoutMs);
			if (now || this.state === 'open') this.transmit(p);
			else this.waiting.push(p);
		});
	}

	transmit(p) {
		this.pending.set(String(p.id), p);
		const link = this.link;
		if (!link || !link.send(p.text, p.id)) this.requestFailed(p.id, new Error('not connected'));
	}

	/** Route a reply to its request. True when it was one of ours. */
	settle(m) {
		const p = this.pending.get(String(m.id));
		if (!p) return false;
		this.pending.delete(String(m.id));
		if (m.type === 'error') this.finishRequest(p, new ServerError(m));
		else this.finishRequest(p, null, m);
		return true;
	}

	requestFailed(id, err) {
		const p = this.pending.get(String(id));
		if (!p) return;
		this.pending.delete(String(id));
		this.finishRequest(p, err);
	}

	finishRequest(p, err, reply) {
		clearTimeout(p.timer);
		if (err) p.reject(err);
		else p.resolve(reply);
	}

	rejectPending(reason) {
		const list = [...this.pending.values()];
		this.pending.clear();
		for (const p of list) this.finishRequest(p, new Error(reason));
	}

	/** The round-trip time of a ping, in milliseconds. */
	async ping() {
		const t0 = performance.now();
		await this.request({ op: 'ping' });
		this.rtt = performance.now() - t0;
		this.emit('rtt', this.rtt);
		return this.rtt;
	}

	/** {type:'symbols', symbols:[{symbol, seq, zone}, …]}: what the server has (zone: the IANA time zone of the symbol's trading sessions). */
	symbols() {
		return this.request({ op: 'symbols' });
	}

	/**
	 * Ticks of a symbol, oldest first: opts {from, to, limit} (times in µs
	 * or ISO 8601). With opts.interval, bars instead (see bars()).
	 */
	history(symbol, opts = {}) {
		return this.request({ op: 'history', symbol, ...opts });
	}

	/** OHLCV bars of `interval` ('1s', '1m', '5m', '1h', '1d'): opts {from, to, limit}. */
	bars(symbol, interval, opts = {}) {
		return this.request({ op: 'history', symbol, interval, ...opts });
	}

	/* ---- subscriptions ---- */

	/**
	 * Subscribe to symbols ('*' for every symbol); their states fill the book.
	 * Resolves with {type:'subscribed', symbols} once the server confirmed
	 * them (made while disconnected: once the next connection has). A symbol
	 * the server refuses (not entitled, not a symbol) is dropped from the
	 * book and the promise rejects with its ServerError (err.symbols lists
	 * them); the others are subscribed all the same.
	 */
	subscribe(symbols) {
		const list = symbolList(symbols);
		for (const s of list) {
			this.wanted.add(s);
			if (s === '*') this.book.wildcard = true;
			else this.book.watch(s);
		}
		if (this.state !== 'open') {
			return new Promise((resolve, reject) => this.syncWaiters.push({ list, resolve, reject }));
		}
		return this.subscribeNow(list, false);
	}

	/** Unsubscribe; their states leave the book at once. */
	unsubscribe(symbols) {
		const list = symbolList(symbols);
		for (const s of list) {
			this.wanted.delete(s);
			if (s === '*') {
				this.book.wildcard = false;
				for (const k of [...this.book.quotes.keys()]) if (!this.wanted.has(k)) this.book.unwatch(k);
			} else {
				this.book.unwatch(s);
			}
		}
		if (this.state !== 'open') {
			// A stream session that comes back still has them.
			if (this.stream && this.stream.cursor) for (const s of list) this.unsentUnsubscribes.add(s);
			return Promise.resolve({ type: 'unsubscribed', symbols: list });
		}
		return Promise.all(chunks(list, SUBSCRIBE_CHUNK).map((c) => this.request({ op: 'unsubscribe', symbols: c })))
			.then(() => ({ type: 'unsubscribed', symbols: list }));
	}

	/* Subscribe `list` now, each chunk resuming the seqs held. `quiet`: a
	 * resubscribe of the library's own, whose refusals become error events. */
	async subscribeNow(list, quiet) {
		const results = await Promise.all(chunks(list, SUBSCRIBE_CHUNK).map((c) => this.subscribeChunk(c)));
		const refused = results.flatMap((r) => r.refused);
		const failed = results.find((r) => r.error);
		if (failed) throw failed.error;
		if (refused.length) {
			const err = refused[0].error;
			err.symbols = refused.map((r) => r.symbol);
			if (quiet) this.emitError(err);
			throw err;
		}
		return { type: 'subscribed', symbols: list };
	}

	/* One subscribe op. A refusal that names symbols is split in halves until
	 * the refused symbols are alone; they leave the book. Resolves with
	 * {refused: [{symbol, error}], error} (error: the op did not get through). */
	async subscribeChunk(list) {
		const held = list.includes('*') ? this.wildcardResume() : this.book.heldSeqs(list);
		try {
			await this.call((id) => subscribeText(list, held, this.book.epoch, id, this.maxHz), true);
			return { refused: [] };
		} catch (err) {
			if (!(err instanceof ServerError)) return { refused: [], error: err };
			if (err.code === 'rate_limited') {
				await new Promise((r) => setTimeout(r, RATE_LIMITED_RETRY_MS));
				const still = list.filter((s) => this.wanted.has(s) || this.book.has(s));
				if (!still.length || this.state !== 'open') return { refused: [] };
				return this.subscribeChunk(still);
			}
			if (list.length > 1 && SYMBOL_REFUSALS.has(err.code)) {
				const half = Math.ceil(list.length / 2);
				const [a, b] = await Promise.all([this.subscribeChunk(list.slice(0, half)), this.subscribeChunk(list.slice(half))]);
				return { refused: a.refused.concat(b.refused), error: a.error || b.error };
			}
			for (const s of list) {
				this.wanted.delete(s);
				if (s === '*') this.book.wildcard = false;
				else this.book.unwatch(s);
			}
			return { refused: list.map((symbol) => ({ symbol, error: err })) };
		}
	}

	/* The resume of a "*" subscribe: every symbol held, up to a size a
	 * message may have (the rest get snapshots). */
	wildcardResume() {
		const held = this.book.heldSeqs(this.book.quotes.keys());
		let size = 0;
		let n = 0;
		for (; n < held.length; n++) {
			size += held[n][0].length + held[n][1].length + 4;
			if (size > RESUME_TEXT_MAX) break;
		}
		return held.slice(0, n);
	}

	/* After a hello: every symbol wanted, resuming what is held; then the
	 * subscribes made while disconnected are answered. Returns the number
	 * of symbols resumed. */
	resubscribe() {
		const list = [...this.wanted];
		const held = list.includes('*') ? this.wildcardResume().length : this.book.heldSeqs(list).length;
		const waiters = this.syncWaiters.splice(0);
		if (!list.length) {
			for (const w of waiters) w.resolve({ type: 'subscribed', symbols: w.list });
			return 0;
		}
		Promise.all(chunks(list, SUBSCRIBE_CHUNK).map((c) => this.subscribeChunk(c))).then((results) => {
			const refused = new Map();
			for (const r of results) for (const x of r.refused) refused.set(x.symbol, x.error);
			const failed = results.find((r) => r.error);
			if (refused.size) {
				const err = [...refused.values()][0];
				err.symbols = [...refused.keys()];
				this.emitError(err);
			}
			for (const w of waiters) {
				const mine = w.list.filter((s) => refused.has(s));
				if (mine.length) {
					const err = refused.get(mine[0]);
					w.reject(Object.assign(err, { symbols: mine }));
				} else if (failed) {
					this.syncWaiters.push(w); // the connection went: the next hello answers it
				} else {
					w.resolve({ type: 'subscribed', symbols: w.list });
				}
			}
		});
		return held;
	}
}

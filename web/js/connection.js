// The WebSocket to /ws: reconnect with exponential backoff and full jitter,
// request/reply by id, a ping every few seconds for the round-trip time, and
// a watchdog that drops a connection that has gone silent (browser JavaScript
// cannot see WebSocket ping frames, so the server's heartbeat is our signal).

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;
const STABLE_MS = 5000; // open this long before the backoff starts over
const PING_EVERY_MS = 5000;
const REQUEST_TIMEOUT_MS = 15000;

export class ServerError extends Error {
	constructor(reply) {
		super(reply.message || reply.code || 'server error');
		this.code = reply.code;
		this.reply = reply;
	}
}

export class Connection {
	/**
	 * handlers: onFrame(text), onState(state, info), onRtt(ms).
	 * States: 'connecting', 'open', 'waiting' (backing off before a retry).
	 */
	constructor(url, handlers) {
		this.url = url;
		this.h = handlers;
		this.ws = null;
		this.state = 'idle';
		this.attempt = 0; // failures since the last stable connection
		this.everOpen = false;
		this.retryAt = 0;
		this.retryTimer = 0;
		this.stableTimer = 0;
		this.pingTimer = 0;
		this.watchTimer = 0;
		this.lastRx = 0;
		this.heartbeatMs = 5000;
		this.nextId = 1;
		this.pending = new Map(); // id -> {resolve, reject, timer}
		this.rtt = null;
	}

	start() {
		this.connect();
		window.addEventListener('online', () => this.retryNow());
	}

	/** Reconnect at once if we are waiting for the next try. */
	retryNow() {
		if (this.state === 'waiting') this.connect();
	}

	connect() {
		clearTimeout(this.retryTimer);
		this.retryTimer = 0;
		this.setState('connecting');
		let ws;
		try {
			ws = new WebSocket(this.url);
		} catch (e) {
			this.scheduleRetry();
			return;
		}
		this.ws = ws;
		ws.onopen = () => {
			if (this.ws !== ws) return;
			this.lastRx = performance.now();
			this.everOpen = true;
			this.setState('open');
			this.stableTimer = setTimeout(() => { this.attempt = 0; }, STABLE_MS);
			this.pingTimer = setInterval(() => this.ping(), PING_EVERY_MS);
			this.watchTimer = setInterval(() => this.watchdog(), 1000);
		};
		ws.onmessage = (ev) => {
			if (this.ws !== ws) return;
			this.lastRx = performance.now();
			this.h.onFrame(ev.data);
		};
		ws.onclose = () => {
			if (this.ws === ws) this.dropped();
		};
		ws.onerror = () => { /* onclose follows with the details */ };
	}

	/** Called by the app when the hello arrives. */
	hello(heartbeatMs) {
		const hb = Number(heartbeatMs);
		if (hb > 0) this.heartbeatMs = hb;
		this.ping();
	}

	/* The server heartbeats an idle connection every heartbeat_ms; a socket
	 * that has said nothing for well over that is dead even if TCP has not
	 * noticed yet (a laptop that slept, a proxy that dropped us). */
	watchdog() {
		const silent = performance.now() - this.lastRx;
		if (silent > 2 * this.heartbeatMs + 3000) {
			const ws = this.ws;
			this.dropped();
			try { ws.close(); } catch (e) { /* already closing */ }
		}
	}

	dropped() {
		const ws = this.ws;
		if (ws) ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
		this.ws = null;
		clearTimeout(this.stableTimer);
		clearInterval(this.pingTimer);
		clearInterval(this.watchTimer);
		for (const [, p] of this.pending) {
			clearTimeout(p.timer);
			p.reject(new Error('connection closed'));
		}
		this.pending.clear();
		this.scheduleRetry();
	}

	scheduleRetry() {
		// Full jitter over the upper half: clients dropped together by a
		// server restart do not come back together.
		const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
		const delay = ceiling / 2 + Math.random() * (ceiling / 2);
		this.attempt = Math.min(this.attempt + 1, 16);
		this.retryAt = performance.now() + delay;
		this.retryTimer = setTimeout(() => this.connect(), delay);
		this.setState('waiting');
	}

	setState(state) {
		this.state = state;
		this.h.onState(state, { attempt: this.attempt, retryAt: this.retryAt, everOpen: this.everOpen });
	}

	get open() {
		return this.ws !== null && this.state === 'open';
	}

	/** Send a message (object or ready-made JSON text). False when not open. */
	send(msg) {
		if (!this.open) return false;
		this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
		return true;
	}

	/**
	 * Send an op and resolve with its reply, or reject with a ServerError for
	 * an error reply (or an Error when the connection goes away). `build` gets
	 * the id and returns the message (object or JSON text).
	 */
	request(build) {
		return new Promise((resolve, reject) => {
			if (!this.open) {
				reject(new Error('not connected'));
				return;
			}
			const id = this.nextId++;
			const timer = setTimeout(() => {
				this.pending.delete(String(id));
				reject(new Error('no reply within ' + REQUEST_TIMEOUT_MS / 1000 + ' s'));
			}, REQUEST_TIMEOUT_MS);
			this.pending.set(String(id), { resolve, reject, timer });
			const msg = typeof build === 'function' ? build(id) : { ...build, id };
			this.send(msg);
		});
	}

	/** Route a reply to its request. True when it was one of ours. */
	reply(m) {
		if (m.id === undefined) return false;
		const p = this.pending.get(String(m.id));
		if (!p) return false;
		this.pending.delete(String(m.id));
		clearTimeout(p.timer);
		if (m.type === 'error') p.reject(new ServerError(m));
		else p.resolve(m);
		return true;
	}

	ping() {
		if (!this.open) return;
		const t0 = performance.now();
		this.request({ op: 'ping' }).then(() => {
			this.rtt = performance.now() - t0;
			this.h.onRtt(this.rtt);
		}, () => { /* a dropped connection reports itself */ });
	}
}

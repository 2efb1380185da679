// The client library against the real server, over one transport (ws.test.mjs,
// sse.test.mjs and poll.test.mjs each run it with theirs). The server reads
// ticks from its stdin, so each test knows exactly what the book must hold;
// the server's own state, as a fresh subscriber sees it through a bare
// WebSocket, is the reference a resumed book must equal to the digit.

import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PublisherClient, ServerError } from '../../web/client/publisher.js';
import { Server, waitFor, sleep } from '../support/server.mjs';
import { Proxy } from '../support/proxy.mjs';
import { tmpDir, quote, trade, fieldsOf, serverState, record } from './support.mjs';

const MAX_SYMBOLS = 20; // the server's --max-symbols, for too_many_symbols

/* What the client sent, as the texts of its requests (a spy on the one
 * place requests go out). */
function spySent(c) {
	const sent = [];
	const transmit = c.transmit.bind(c);
	c.transmit = (p) => {
		sent.push(p.text);
		transmit(p);
	};
	return sent;
}

/* The book's values of `symbols`, as serverState() gives the server's. */
function held(c, symbols) {
	const all = c.book.toJSON();
	return Object.fromEntries(symbols.filter((s) => all[s]).map((s) => [s, all[s]]));
}

/* A state as text with its keys in order, for comparing. */
function canon(state) {
	const sorted = (o) => Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
	return JSON.stringify(Object.fromEntries(Object.keys(state).sort().map((s) => [s, sorted(state[s])])));
}

/* Wait until the book equals the server's state for `symbols`; returns it. */
async function converges(c, server, symbols, what) {
	let want = null;
	await waitFor(async () => {
		want = await serverState(server.url, symbols);
		return canon(held(c, symbols)) === canon(want);
	}, 15000, () => what + ': the book ' + canon(held(c, symbols)) + ' is not the server\'s ' + canon(want));
	return want;
}

function b64url(x) {
	return Buffer.from(x).toString('base64url');
}

/* An HS256 token for every symbol, expiring at `exp` (seconds). */
function token(secret, exp) {
	const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
	const body = b64url(JSON.stringify({ sub: 'client-test', exp, symbols: ['*'] }));
	const sig = crypto.createHmac('sha256', secret).update(head + '.' + body).digest('base64url');
	return head + '.' + body + '.' + sig;
}

export function defineSuite(transport) {
	describe('the client library over ' + transport, () => {
		let dir, server, proxy;
		const clients = [];
		const open = (url, more = {}) => {
			const c = new PublisherClient({ url, transport, ...more });
			clients.push(c);
			return c;
		};

		before(async () => {
			dir = tmpDir(transport);
			server = await new Server(dir, { args: ['--max-symbols', String(MAX_SYMBOLS)] }).start();
			proxy = await new Proxy(() => server.port).start();
		});

		afterEach(() => {
			for (const c of clients.splice(0)) c.close();
		});

		after(async () => {
			proxy.close();
			await server.stop();
			if (!process.env.KEEP_TMP) fs.rmSync(dir, { recursive: true, force: true });
		});

		test('subscribe: the book holds the ticks sent, every value to the digit', async () => {
			const ticks = [
				quote('AAPL', '189.30'), quote('AAPL', '189.35'), trade('AAPL', '189.40', 100),
				quote('MSFT', '415.10'), trade('MSFT', '415.20', 50), quote('AAPL', '189.20'),
				quote('EURUSD', '1.08500', { bid_size: 1000000 }), trade('AAPL', '189.10', 300),
			];
			server.send(ticks);
			const c = open(server.url);
			const ev = record(c);
			c.connect();
			const reply = await c.subscribe(['AAPL', 'MSFT', 'EURUSD', 'LATER']);
			assert.deepEqual(reply.symbols, ['AAPL', 'MSFT', 'EURUSD', 'LATER']);
			await waitFor(() => c.book.get('AAPL').seq === '5' && c.book.get('MSFT').seq === '2' && c.book.get('EURUSD').seq === '1',
				10000, () => 'the book did not reach the seqs sent: ' + JSON.stringify(c.book.toJSON()));
			const want = fieldsOf(ticks);
			for (const s of ['AAPL', 'MSFT', 'EURUSD'])
				for (const [k, v] of Object.entries(want[s])) assert.equal(c.book.get(s).fields[k], v, s + '.' + k);
			assert.equal(c.book.get('AAPL').fields.bid, '189.20'); // the trailing zero, as sent
			assert.equal(c.book.get('EURUSD').fields.bid, '1.08500');
			// Derived by the server from the trades.
			assert.equal(c.book.get('AAPL').fields.open, '189.40');
			assert.equal(c.book.get('AAPL').fields.high, '189.40');
			assert.equal(c.book.get('AAPL').fields.low, '189.10');
			assert.equal(c.book.get('AAPL').fields.volume, '400');
			assert.equal(c.book.get('AAPL').fields.trades, '2');
			// A symbol without data is subscribed; its first tick brings it.
			assert.equal(c.book.get('LATER').seq, null);
			server.send([quote('LATER', '10.10')]);
			await waitFor(() => c.book.get('LATER').fields.bid === '10.10', 10000, 'LATER never filled in');
			await converges(c, server, ['AAPL', 'MSFT', 'EURUSD', 'LATER'], 'after subscribing');
			assert.ok(ev.of('connection').some((e) => e.state === 'open' && e.transport === transport), 'never open over ' + transport);
			const states = ev.of('state');
			assert.ok(states.every((e) => typeof e.state.seq === 'string'), 'a seq that is not text');
			const first = states.find((e) => e.symbol === 'LATER');
			assert.equal(first.snapshot, true);
			assert.deepEqual(first.changed.bid, 0);
		});

		test('requests: symbols, history, bars and ping answer; refusals are ServerErrors with their code', async () => {
			const c = open(server.url);
			c.connect();
			const sym = await c.symbols();
			assert.ok(sym.symbols.some((x) => x.symbol === 'AAPL' && x.seq === '5'), JSON.stringify(sym.symbols));
			const hist = await c.history('AAPL', { limit: 2 });
			assert.deepEqual(hist.ticks.map((t) => [t.seq, t.bid ?? t.last]), [['4', '189.20'], ['5', '189.10']]);
			const bars = await c.bars('AAPL', '1d', { limit: 5 });
			assert.equal(bars.bars.length, 1);
			assert.equal(bars.bars[0].high, '189.40');
			assert.equal(bars.bars[0].close, '189.10');
			assert.ok((await c.ping()) >= 0);
			const refused = async (p, code) => {
				const err = await p.then(() => null, (e) => e);
				assert.ok(err instanceof ServerError, 'expected a ServerError ' + code + ', got ' + err);
				assert.equal(err.code, code);
				assert.ok(err.message.length > 10, 'a message a person can act on: ' + err.message);
				return err;
			};
			await refused(c.request({ op: 'bogus' }), 'unknown_op');
			await refused(c.bars('AAPL', '7m'), 'bad_request');
			const bad = await refused(c.subscribe(['MSFT', 'not a symbol']), 'bad_request');
			assert.deepEqual(bad.symbols, ['not a symbol']);
			assert.ok(c.book.has('MSFT') && !c.book.has('not a symbol'), 'the valid symbol of a refused subscribe is kept');
			const many = Array.from({ length: MAX_SYMBOLS + 5 }, (_, i) => 'MANY' + i);
			await refused(c.subscribe(many), 'too_many_symbols');
			assert.ok(!c.book.has('MANY0'), 'refused symbols stay in the book');
			// The session goes on.
			await waitFor(() => c.book.get('MSFT').seq === '2', 5000, 'MSFT lost after the refusals');
			assert.equal(c.state, 'open');
		});

		test('a new trading session: the fields the server takes away leave the book too', async () => {
			// Sessions begin at 00:00 UTC by default; the ticks' own ts decide.
			const day = Date.UTC(2024, 2, 1) * 1000;
			const at = (h, m) => day + (h * 3600 + m * 60) * 1e6;
			server.send([
				{ ts: at(23, 58), symbol: 'SESS', bid: '70.10', ask: '70.12' },
				{ ts: at(23, 59), symbol: 'SESS', last: '70.11', last_size: 5 },
			]);
			const c = open(server.url);
			const ev = record(c);
			c.connect();
			await c.subscribe(['SESS']);
			await waitFor(() => c.book.get('SESS').seq === '2', 10000, 'no SESS');
			assert.equal(c.book.get('SESS').fields.open, '70.11');
			const mark = ev.length;
			server.send([{ ts: at(24, 1), symbol: 'SESS', bid: '70.20', ask: '70.22' }]);
			await waitFor(() => c.book.get('SESS').seq === '3', 10000, 'no delta for the new session');
			const f = c.book.get('SESS').fields;
			assert.equal(f.prev_close, '70.11');
			assert.equal(f.open, undefined, 'open still held: ' + JSON.stringify(f));
			assert.equal(f.high, undefined);
			assert.equal(f.low, undefined);
			const [e] = ev.of('state', mark);
			assert.equal(e.snapshot, false);
			assert.equal(e.previous.open, '70.11');
			await converges(c, server, ['SESS'], 'in the new session');
		});

		test('a dropped connection resumes: only what changed comes, and the book equals the server\'s', async () => {
			const symbols = ['DROP1', 'DROP2', 'DROP3'];
			server.send(symbols.flatMap((s, i) => [quote(s, (20 + i) + '.10'), quote(s, (20 + i) + '.20')]));
			const c = open(proxy.url);
			const ev = record(c);
			c.connect();
			await c.subscribe(symbols);
			await converges(c, server, symbols, 'before the drop');
			const mark = ev.length;
			const sessions = c.sessions;
			proxy.outage(300);
			server.send([quote('DROP1', '20.30'), quote('DROP1', '20.40'), trade('DROP1', '20.35', 10)]);
			const t0 = Date.now();
			await waitFor(() => c.book.get('DROP1').seq === '5' && c.open, 15000, () => 'DROP1 did not catch up: ' + JSON.stringify(c.book.get('DROP1')));
			const took = Date.now() - t0;
			await converges(c, server, symbols, 'after the drop');
			const after = ev.since(mark);
			assert.ok(after.some(([n, e]) => n === 'connection' && e.state !== 'open'), 'the drop was not seen');
			const states = after.filter(([n]) => n === 'state').map(([, e]) => e);
			const story = after.map(([n, e]) => n + (n === 'connection' ? ':' + e.state + '/' + e.transport + (e.code ? '/' + e.code : '') + (e.reason ? '/' + e.reason : '')
				: n === 'state' ? ':' + e.symbol + '@' + e.state.seq + (e.snapshot ? '(snapshot)' : '') : n === 'session' ? ':resumed ' + e.resumed : '')).join(', ');
			assert.ok(states.every((e) => !e.snapshot), 'a snapshot after resuming: ' + story);
			assert.deepEqual([...new Set(states.map((e) => e.symbol))], ['DROP1'], 'updates for symbols that did not change: ' + story);
			if (transport === 'ws') {
				const s = after.filter(([n]) => n === 'session').map(([, e]) => e);
				assert.equal(s.length, 1);
				assert.equal(s[0].reconnect, true);
				assert.equal(s[0].resumed, 3);
			} else {
				// The stream session was reattached by its cursor: nothing to redo.
				assert.equal(c.sessions, sessions, 'a new session after the drop');
			}
			console.log('# ' + transport + ': back and current ' + took + ' ms after the drop');
		});

		test('a gap on the wire: the symbol is resubscribed with resume, and the bad delta never applied', async () => {
			server.send([quote('GAP1', '30.10'), quote('GAP1', '30.20')]);
			const c = open(proxy.url);
			const ev = record(c);
			c.connect();
			await c.subscribe(['GAP1']);
			await converges(c, server, ['GAP1'], 'before the gap');
			const sent = spySent(c);
			const mark = ev.length;
			const n = proxy.inject(JSON.stringify({ type: 'delta', symbol: 'GAP1', from: 1e12, seq: 1e12 + 1, ts: Date.now() * 1000, bid: 0.01 }));
			assert.ok(n >= 1, 'no stream to inject into');
			c.ping().catch(() => {}); // a poll answer now (it carries the injected frame)
			const gap = await waitFor(() => ev.of('gap', mark)[0], 5000, 'no gap event');
			assert.deepEqual(gap, { symbol: 'GAP1', held: '2', from: '1000000000000' });
			const resub = await waitFor(() => sent.find((t) => t.includes('"op":"subscribe"')), 5000, 'no resubscribe after the gap');
			assert.deepEqual(JSON.parse(resub).symbols, ['GAP1']);
			assert.match(resub, /"resume":\{"epoch":"[^"]+","seq":\{"GAP1":2\}\}/);
			await sleep(300);
			assert.equal(c.book.get('GAP1').fields.bid, '30.20', 'the gapped delta was applied');
			server.send([quote('GAP1', '30.30')]);
			await converges(c, server, ['GAP1'], 'after the gap');
			assert.ok(ev.of('state', mark).every((e) => !e.snapshot), 'a snapshot after the resubscribe');
		});

		test('a gap found against the held seq: one delta from it brings the book back, no snapshot', async () => {
			server.send([quote('GAP2', '40.10'), quote('GAP2', '40.20'), quote('GAP2', '40.30'), trade('GAP2', '40.25', 7)]);
			const c = open(server.url);
			const ev = record(c);
			c.connect();
			await c.subscribe(['GAP2']);
			await converges(c, server, ['GAP2'], 'before the gap');
			// As if deltas 2..4 had been lost: the book holds seq 1, with values of 4.
			c.book.get('GAP2').seq = '1';
			const sent = spySent(c);
			const mark = ev.length;
			server.send([quote('GAP2', '40.40', { ask_size: 999 })]);
			const gap = await waitFor(() => ev.of('gap', mark)[0], 5000, 'no gap event');
			assert.deepEqual(gap, { symbol: 'GAP2', held: '1', from: '4' });
			const resub = await waitFor(() => sent.find((t) => t.includes('"op":"subscribe"')), 5000, 'no resubscribe after the gap');
			assert.match(resub, /"resume":\{"epoch":"[^"]+","seq":\{"GAP2":1\}\}/);
			await converges(c, server, ['GAP2'], 'after the gap');
			const states = ev.of('state', mark);
			assert.ok(states.length >= 1 && states.every((e) => !e.snapshot), 'expected deltas only: ' + JSON.stringify(states));
		});

		test('an expired token closes with 4001: the client asks for a new one and resumes', async () => {
			const tdir = tmpDir(transport + '-auth');
			const secret = crypto.randomBytes(32).toString('hex');
			fs.writeFileSync(path.join(tdir, 'jwt.key'), secret, { mode: 0o600 });
			const auth = await new Server(tdir, { args: ['--auth-secret', path.join(tdir, 'jwt.key')] }).start();
			try {
				auth.send([quote('TOK', '50.10'), quote('TOK', '50.20')]);
				// Expired 26 s ago: still inside the server's 30 s of leeway for
				// about 4 s, then the session is closed with 4001.
				let calls = 0;
				const now = () => Math.floor(Date.now() / 1000);
				const c = open(auth.url, { token: async () => (++calls === 1 ? token(secret, now() - 26) : token(secret, now() + 3600)) });
				const ev = record(c);
				c.connect();
				await c.subscribe(['TOK']);
				await waitFor(() => c.book.get('TOK').seq === '2', 10000, 'no TOK with the first token');
				const t0 = Date.now();
				const asked = await waitFor(() => ev.of('token')[0], 15000, 'no token event');
				assert.equal(asked.code, 4001);
				const mark = ev.length;
				auth.send([quote('TOK', '50.30')]);
				await waitFor(() => c.book.get('TOK').seq === '3' && c.open, 15000, 'did not resume with the new token');
				assert.ok(calls >= 2, 'the token function was not asked again');
				assert.ok(ev.of('state', mark).every((e) => !e.snapshot), 'a snapshot after resuming');
				const waiting = ev.of('connection').find((e) => e.state === 'waiting');
				assert.equal(waiting.code, 4001);
				console.log('# ' + transport + ': 4001 after ' + (Date.now() - t0) + ' ms, resumed with token call ' + calls);
			} finally {
				await auth.stop();
				fs.rmSync(tdir, { recursive: true, force: true });
			}
		});

		test('a new epoch (a replay sought back): the book is dropped and filled again from snapshots', async () => {
			const rdir = tmpDir(transport + '-replay');
			const file = path.join(rdir, 'ticks.jsonl');
			const t0 = 1700000000000000;
			const lines = [];
			for (let i = 0; i < 60; i++) lines.push('{"ts":' + (t0 + i * 1000000) + ',"symbol":"R' + (i % 3) + '","bid":' + (10 + i / 100).toFixed(2) + '}');
			fs.writeFileSync(file, lines.join('\n') + '\n');
			const rs = await new Server(rdir, { feed: 'replay:' + file + ',speed=max' }).start();
			try {
				const c = open(rs.url);
				const ev = record(c);
				c.connect();
				await c.subscribe(['R0', 'R1', 'R2']);
				await waitFor(async () => (await c.request({ op: 'replay', action: 'status' })).state === 'finished', 10000, 'the replay did not finish');
				await converges(c, rs, ['R0', 'R1', 'R2'], 'before the seek');
				const epoch = c.book.epoch;
				const mark = ev.length;
				// The seek starts a new epoch, which closes the session
				// (1012): its reply comes first.
				const sought = await c.request({ op: 'replay', action: 'seek', ts: t0 + 30 * 1000000 });
				assert.equal(sought.type, 'replay', 'the seek answered ' + JSON.stringify(sought));
				const e = await waitFor(() => ev.of('epoch', mark)[0], 10000, 'no epoch event');
				assert.equal(e.previous, epoch);
				assert.notEqual(e.epoch, epoch);
				assert.equal(e.dropped, true);
				const waiting = ev.of('connection', mark).find((x) => x.state === 'waiting');
				assert.equal(waiting.code, 1012, 'closed with ' + waiting.code + ' ' + waiting.reason);
				const s = await waitFor(() => ev.of('session', mark)[0], 10000, 'no new session');
				assert.equal(s.epochChanged, true);
				assert.equal(s.resumed, 0);
				await waitFor(async () => (await c.request({ op: 'replay', action: 'status' })).state === 'finished', 10000, 'the replay did not finish again');
				await converges(c, rs, ['R0', 'R1', 'R2'], 'after the seek');
				assert.ok(ev.of('state', mark).some((x) => x.snapshot), 'no snapshot in the new epoch');
			} finally {
				await rs.stop();
				fs.rmSync(rdir, { recursive: true, force: true });
			}
		});

		// Last: it restarts the suite's server.
		test('a server restarted on the same database: resumed with the seqs held, deltas only', async () => {
			const symbols = ['RST1', 'RST2'];
			server.send([quote('RST1', '60.10'), quote('RST2', '61.10'), quote('RST1', '60.20')]);
			const c = open(server.url);
			const ev = record(c);
			c.connect();
			await c.subscribe(symbols);
			await converges(c, server, symbols, 'before the restart');
			const epoch = c.book.epoch;
			const mark = ev.length;
			await server.stop();
			await waitFor(() => !c.open, 10000, 'the client did not see the server go');
			await server.start(server.port);
			server.send([quote('RST1', '60.30')]);
			await waitFor(() => c.book.get('RST1').seq === '3' && c.open, 20000, 'did not resume after the restart');
			await converges(c, server, symbols, 'after the restart');
			const s = ev.of('session', mark);
			assert.equal(s.length, 1);
			assert.equal(s[0].reconnect, true);
			assert.equal(s[0].epochChanged, false);
			assert.equal(s[0].resumed, 2);
			assert.equal(c.book.epoch, epoch);
			const states = ev.of('state', mark);
			assert.ok(states.every((e) => !e.snapshot), 'a snapshot after the restart: ' + JSON.stringify(states.find((e) => e.snapshot)));
			assert.deepEqual([...new Set(states.map((e) => e.symbol))], ['RST1']);
		});
	});
}

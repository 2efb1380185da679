// The publisher binary as a server for the JavaScript tests (the browser
// scripts in tests/browser/ and the client library's tests in
// tests/client/): where things are, waiting, free ports, the server started
// on a loopback port and stopped, and ticks written to its stdin or tcp feed.
// No npm package: the client tests import it under plain node:test, without
// playwright-core.
//
//   import { Server, waitFor, freePort } from '../support/server.mjs';
//   const server = await new Server(dir, { feed: 'synthetic:symbols=40', name: 'x' }).start();
//   await page.goto(server.url);                // 'http://127.0.0.1:PORT/'
//   await waitFor(() => ready(), 10000, 'never ready');
//   await server.stop();

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.resolve(ROOT, process.env.PUBLISHER_BIN || 'build/publisher');
export const ARTIFACTS = path.join(ROOT, 'tests/artifacts');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Poll fn() every 50 ms until it returns a truthy value, and return that.
 * After timeoutMs throw `what` (or what(last): fn's last value or error)
 * with the time waited.
 */
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

/** A free TCP port on 127.0.0.1 (for a program that cannot pick its own). */
export function freePort() {
	return new Promise((resolve, reject) => {
		const s = net.createServer();
		s.on('error', reject);
		s.listen(0, '127.0.0.1', () => {
			const { port } = s.address();
			s.close(() => resolve(port));
		});
	});
}

/*
 * Ticks as the feeds read them, one JSON line each: prices go as their
 * decimal text (JSON.stringify of 189.30 would write 189.3, and tests are
 * about the trailing zero); a tick without ts is stamped now. A ready line
 * (a string) goes as it is.
 */
export function tickLines(ticks) {
	return (Array.isArray(ticks) ? ticks : [ticks]).map((t) => {
		if (typeof t === 'string') return t + '\n';
		const members = Object.entries({ ts: Date.now() * 1000, ...t })
			.map(([k, v]) => JSON.stringify(k) + ':' + (k === 'symbol' ? JSON.stringify(v) : String(v)));
		return '{' + members.join(',') + '}\n';
	}).join('');
}

/**
 * The publisher binary: `serve` on 127.0.0.1 with its own database in `dir`.
 * Options: feed (default 'stdin', which send() writes to), args (more
 * options), name (the log goes to tests/artifacts/publisher-NAME.log, which
 * outlives the test; without a name to DIR/publisher.log), logLevel ('warn').
 * A restart appends to the log.
 */
export class Server {
	constructor(dir, { feed = 'stdin', args = [], name = null, logLevel = 'warn' } = {}) {
		this.dir = dir;
		this.feed = feed;
		this.args = args;
		this.logLevel = logLevel;
		this.port = 0;
		this.proc = null;
		this.log = name ? path.join(ARTIFACTS, 'publisher-' + name + '.log') : path.join(dir, 'publisher.log');
	}

	/** Start on `port` (0: any free port); resolves with this once it listens. */
	async start(port = 0) {
		if (!fs.existsSync(BIN)) throw new Error('no publisher binary at ' + BIN + ' (make all, or set PUBLISHER_BIN)');
		fs.mkdirSync(path.dirname(this.log), { recursive: true });
		const portFile = path.join(this.dir, 'port');
		fs.rmSync(portFile, { force: true });
		const out = fs.openSync(this.log, this.proc ? 'a' : 'w');
		this.proc = spawn(BIN, [
			'serve', '--listen', '127.0.0.1:' + port, '--port-file', portFile,
			'--feed', this.feed, '--db', path.join(this.dir, 'ticks.db'),
			'--web', path.join(ROOT, 'web'), '--log-level', this.logLevel, ...this.args,
		], { cwd: ROOT, stdio: [this.feed === 'stdin' ? 'pipe' : 'ignore', out, out] });
		fs.closeSync(out);
		if (this.proc.stdin) this.proc.stdin.on('error', () => {});
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

	/** Ticks (objects, or ready lines) on the stdin feed. */
	send(ticks) {
		this.proc.stdin.write(tickLines(ticks));
	}

	/** SIGTERM, and SIGKILL after 5 s. */
	async stop() {
		const p = this.proc;
		if (!p || p.exitCode !== null || p.signalCode !== null) return;
		const done = once(p, 'exit');
		p.kill('SIGTERM');
		const t = setTimeout(() => p.kill('SIGKILL'), 5000);
		await done;
		clearTimeout(t);
	}

	/** 'http://127.0.0.1:PORT/' */
	get url() {
		return 'http://127.0.0.1:' + this.port + '/';
	}
}

/**
 * A producer on a server's tcp feed (--feed tcp:127.0.0.1:PORT): send()
 * writes ticks as tickLines() does; what the feed says back is printed.
 */
export async function tcpFeed(port) {
	const sock = net.connect(port, '127.0.0.1');
	await new Promise((resolve, reject) => {
		sock.once('connect', resolve);
		sock.once('error', reject);
	});
	sock.on('data', (d) => console.log('     feed said: ' + String(d).trim()));
	return {
		send(ticks) {
			sock.write(tickLines(ticks));
		},
		close() {
			sock.destroy();
		},
	};
}

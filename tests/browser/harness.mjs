// What every browser test script shares: where things are, the checks and
// their report, waiting, the publisher binary as a server, and headless
// Chromium with the page's problems (console errors, page errors, CSP
// violations) collected.
//
//   import { check, assert, waitFor, summary, Server, launch, watchProblems } from './harness.mjs';
//   const server = new Server(dir, { feed: 'synthetic:symbols=40', name: 'x' });
//   await server.start();
//   const context = await launch(path.join(dir, 'profile'));
//   const page = await context.newPage();
//   watchProblems(page, problems);
//   await check('the page loads', async () => { ... return 'info'; });
//   summary();   // prints "N passed, N failed" and exits 1 on failures
//
// Uses Debian's /usr/bin/chromium (CHROMIUM overrides) through npm
// playwright-core, which never downloads a browser.

import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.resolve(ROOT, process.env.PUBLISHER_BIN || 'build/publisher');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS = path.join(ROOT, 'tests/artifacts');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* ---- checks ------------------------------------------------------------- */

let passed = 0;
let failed = 0;

/** Run one named check: "ok   name (info; 1.2 s)" or "FAIL name: why". */
export async function check(name, fn) {
	const t0 = Date.now();
	try {
		const info = await fn();
		const took = ((Date.now() - t0) / 1000).toFixed(1) + ' s';
		console.log('ok   ' + name + ' (' + (info ? info + '; ' : '') + took + ')');
		passed++;
	} catch (e) {
		console.log('FAIL ' + name + ': ' + (e && e.message ? e.message : e));
		failed++;
	}
}

export function assert(cond, msg) {
	if (!cond) throw new Error(msg);
}

/** "N passed, N failed", then exit: 1 when anything failed. */
export function summary() {
	console.log(passed + ' passed, ' + failed + ' failed');
	process.exit(failed ? 1 : 0);
}

/** Poll fn() until it returns a truthy value; throw `what` after timeoutMs. */
export async function waitFor(fn, timeoutMs, what) {
	const end = Date.now() + timeoutMs;
	for (;;) {
		try {
			const v = await fn();
			if (v) return v;
		} catch (e) { /* not yet */ }
		if (Date.now() > end) throw new Error(what + ' (waited ' + timeoutMs / 1000 + ' s)');
		await sleep(100);
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

/* ---- the server --------------------------------------------------------- */

/**
 * The publisher binary serving `feed` with a store in `dir`, logging to
 * tests/artifacts/publisher-<name>.log (a restart appends).
 */
export class Server {
	constructor(dir, { feed = 'synthetic:symbols=60,rate=600,seed=7', args = [], name } = {}) {
		this.dir = dir;
		this.feed = feed;
		this.args = args;
		this.port = 0;
		this.proc = null;
		this.log = path.join(ARTIFACTS, 'publisher-' + (name || path.basename(dir)) + '.log');
	}

	/** Start on `port` (0: any free port); resolves with it once it listens. */
	async start(port = 0) {
		fs.mkdirSync(ARTIFACTS, { recursive: true });
		const portFile = path.join(this.dir, 'port');
		fs.rmSync(portFile, { force: true });
		const out = fs.openSync(this.log, this.proc ? 'a' : 'w');
		this.proc = spawn(BIN, [
			'serve', '--listen', '127.0.0.1:' + port, '--port-file', portFile,
			'--feed', this.feed, '--db', path.join(this.dir, 'ticks.db'),
			'--web', path.join(ROOT, 'web'), '--log-level', 'warn', ...this.args,
		], { cwd: ROOT, stdio: ['ignore', out, out] });
		fs.closeSync(out);
		const exited = once(this.proc, 'exit').then(([code]) => {
			throw new Error('publisher exited with status ' + code + ' (log: ' + this.log + ')');
		});
		exited.catch(() => {});
		const ready = waitFor(() => {
			const t = fs.existsSync(portFile) && fs.readFileSync(portFile, 'utf8').trim();
			return t && Number(t) > 0 ? Number(t) : 0;
		}, 10000, 'publisher wrote no port file');
		this.port = await Promise.race([ready, exited]);
		return this.port;
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

	/** The URL of `p` ('/' by default) on this server. */
	url(p = '/') {
		return 'http://127.0.0.1:' + this.port + p;
	}
}

/* ---- the browser -------------------------------------------------------- */

/**
 * Headless Chromium with a profile in `profileDir` (so localStorage lives
 * across reloads). Every page reports CSP violations as console errors,
 * which watchProblems() collects.
 */
export async function launch(profileDir, { viewport = { width: 1366, height: 768 }, colorScheme = 'dark' } = {}) {
	assert(fs.existsSync(BIN), 'no publisher binary at ' + BIN + ' (make all, or set PUBLISHER_BIN)');
	assert(fs.existsSync(CHROMIUM), 'no Chromium at ' + CHROMIUM + ' (apt-get install chromium)');
	const context = await chromium.launchPersistentContext(profileDir, {
		executablePath: CHROMIUM,
		headless: true,
		viewport,
		colorScheme,
		args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
			'--disable-background-networking', '--disable-component-update', '--disable-sync'],
	});
	// Runs before the page's own scripts (CDP bypasses the page's CSP).
	await context.addInitScript(() => {
		document.addEventListener('securitypolicyviolation', (e) => {
			console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') +
				' at ' + e.sourceFile + ':' + e.lineNumber);
		});
	});
	return context;
}

/**
 * Collect the page's console errors and page errors into `problems`
 * (strings), except console errors `ignore(text)` says are expected.
 */
export function watchProblems(page, problems, { ignore = () => false, label = '' } = {}) {
	const where = label ? ' (' + label + ')' : '';
	page.on('console', (m) => {
		if (m.type() !== 'error' || ignore(m.text())) return;
		problems.push('console' + where + ': ' + m.text());
	});
	page.on('pageerror', (e) => problems.push('page error' + where + ': ' + e.message));
}

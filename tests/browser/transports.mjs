// Browser tests of the dashboard behind proxies that do not pass WebSocket:
// a real nginx (Debian's) in front of the real publisher, the page in real
// headless Chromium.
//
//   PUBLISHER_BIN=build/publisher node tests/browser/transports.mjs
//
// Three proxies, each a config of its own (nginxConfig below):
//   no-websocket   refuses every WebSocket upgrade (403): the page must go
//                  live over Server-Sent Events;
//   no-streaming   refuses upgrades and /stream/events: long-poll;
//   buffering      refuses upgrades and buffers every response whatever the
//                  server says (proxy_ignore_headers X-Accel-Buffering), as
//                  a virus-scanning corporate proxy does: an event stream
//                  never arrives, so the client must notice and poll.
// Behind the first two the publisher is restarted: the page must come back
// with `resume` (its held seqs) and no price may go blank on the way.
// Deadlines are generous; the times it actually took are printed.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { ARTIFACTS, ROOT, Server, freePort, waitFor } from '../support/server.mjs';
import { assert, check, launch, run, watchBlanks, watchProblems } from './harness.mjs';

const NGINX = process.env.NGINX || '/usr/sbin/nginx';
const FEED = 'synthetic:symbols=60,rate=600,seed=7';

/* ---- nginx -------------------------------------------------------------- */

/*
 * A proxy in front of the publisher at `upstream`. Every variant refuses
 * WebSocket upgrades; `noEvents` refuses the event stream too; `buffering`
 * holds every response until it ends (or its buffers fill), whatever the
 * X-Accel-Buffering header says.
 */
function nginxConfig(dir, listen, upstream, { noEvents = false, buffering = false } = {}) {
	const proxy = [
		'proxy_pass http://127.0.0.1:' + upstream + ';',
		'proxy_http_version 1.1;',
		'proxy_set_header Connection "";',
		// The publisher checks Origin against Host: keep the client's.
		'proxy_set_header Host $http_host;',
		'proxy_read_timeout 120s;',
	].concat(buffering ? [
		'proxy_buffering on;',
		'proxy_ignore_headers X-Accel-Buffering;',
		'proxy_buffer_size 64k;',
		'proxy_buffers 32 64k;',
		'proxy_busy_buffers_size 128k;',
	] : []).join('\n\t\t\t');
	return `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path ${dir}/client_body;
	proxy_temp_path ${dir}/proxy;
	fastcgi_temp_path ${dir}/fastcgi;
	uwsgi_temp_path ${dir}/uwsgi;
	scgi_temp_path ${dir}/scgi;
	server {
		listen 127.0.0.1:${listen};
		location / {
			if ($http_upgrade) { return 403; }
			${proxy}
		}
		location = /stream/events {
			${noEvents ? 'return 403;' : proxy}
		}
	}
}
`;
}

class Nginx {
	constructor(dir, upstream, opts) {
		this.dir = dir;
		this.upstream = upstream;
		this.opts = opts;
		this.port = 0;
		this.proc = null;
	}

	async start() {
		fs.mkdirSync(this.dir, { recursive: true });
		this.port = await freePort();
		const conf = path.join(this.dir, 'nginx.conf');
		fs.writeFileSync(conf, nginxConfig(this.dir, this.port, this.upstream, this.opts));
		this.proc = spawn(NGINX, ['-c', conf, '-g', 'daemon off; master_process off;'],
			{ stdio: ['ignore', 'ignore', 'inherit'] });
		await waitFor(() => new Promise((resolve) => {
			const s = net.connect(this.port, '127.0.0.1', () => { s.destroy(); resolve(true); });
			s.on('error', () => resolve(false));
		}), 10000, 'nginx did not listen');
	}

	async stop() {
		const p = this.proc;
		if (!p || p.exitCode !== null || p.signalCode !== null) return;
		const done = once(p, 'exit');
		p.kill('SIGTERM');
		await done;
	}

	get url() {
		return 'http://127.0.0.1:' + this.port + '/';
	}
}

/* ---- page helpers ------------------------------------------------------- */

const PRICE = /^\d+\.\d+$/;

function pricedRows(page) {
	return page.$$eval('#watchlist .wl-row', (trs) => trs.map((tr) => ({
		sym: tr.children[0].textContent,
		bid: tr.children[1].textContent,
		last: tr.children[3].textContent,
	}))).then((rs) => rs.filter((r) => PRICE.test(r.last) && PRICE.test(r.bid)));
}

const text = (page, sel) => page.$eval(sel, (e) => e.textContent);
const connState = (page) => page.$eval('#st-conn', (el) => el.dataset.state);

/* A page that records what it sends (POST /stream/send bodies); its
 * console errors are problems, except the refused transports it tries
 * first and the reconnects while the server restarts. */
async function openPage(context, url, problems) {
	const page = await context.newPage();
	const sent = [];
	watchProblems(page, problems, {
		ignore: (t) => /WebSocket connection to .* failed|status of 403|status of 502|Failed to load resource|net::ERR_/.test(t),
	});
	const urls = [];
	page.on('request', (r) => {
		urls.push(r.url());
		if (r.method() === 'POST' && r.url().includes('/stream/send')) sent.push(r.postData() || '');
	});
	const t0 = Date.now();
	await page.goto(url, { waitUntil: 'load' });
	return { page, sent, urls, t0 };
}

const subscribesWithResume = (sent) => sent.map((t) => { try { return JSON.parse(t); } catch (e) { return {}; } })
	.filter((m) => m.op === 'subscribe' && m.resume);

/* ---- a page of another site ---------------------------------------------- */

/* The README's example page, whole, pointed at `publisherUrl`. */
function readmeExamplePage(publisherUrl) {
	const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
	const m = /```html\n(<!doctype html>[\s\S]*?)```/.exec(readme);
	assert(m, 'README.md has no ```html example page');
	return m[1].replaceAll('http://127.0.0.1:8080/', publisherUrl);
}

/* ---- the run ------------------------------------------------------------ */

async function goesLive(p, want, what) {
	const live = await waitFor(async () => (await connState(p.page)) === 'open' && (await pricedRows(p.page)).length >= 45,
		30000, 'not live behind the ' + what + ' proxy');
	const ms = Date.now() - p.t0;
	const via = await text(p.page, '#st-transport');
	assert(want.test(via), 'the status bar says "' + via + '", expected ' + want);
	// Proxies log URLs: the session's key and cursor go in headers.
	const leaky = p.urls.filter((u) => /[?&](session|cursor|ticket|token)=/.test(u));
	assert(leaky.length === 0, 'URLs carry the session: ' + leaky.slice(0, 3).join(' '));
	return { ms, via, live };
}

async function restartResumes(p, publisher) {
	const epoch = await text(p.page, '#st-epoch');
	await watchBlanks(p.page);
	p.sent.length = 0;
	const t0 = Date.now();
	await publisher.stop();
	await publisher.start(publisher.port);
	await waitFor(() => subscribesWithResume(p.sent).length > 0, 30000, 'no subscribe with resume after the restart');
	const before = new Map((await pricedRows(p.page)).map((r) => [r.sym, r.last + '|' + r.bid]));
	await waitFor(async () => (await connState(p.page)) === 'open' &&
		(await pricedRows(p.page)).filter((r) => before.get(r.sym) !== r.last + '|' + r.bid).length >= 10,
		30000, 'not live again after the restart');
	const ms = Date.now() - t0;
	const sub = subscribesWithResume(p.sent)[0];
	assert(sub.resume.epoch === epoch, 'resume names epoch ' + sub.resume.epoch + ', the page showed ' + epoch);
	const held = Object.keys(sub.resume.seq || {});
	assert(held.length >= 45, 'resume holds ' + held.length + ' seqs');
	const blanked = await p.page.evaluate(() => window.blanked);
	assert(blanked.length === 0, 'prices went blank for ' + blanked.join(', ') + ': redrawn from scratch');
	return { ms, held: held.length };
}

async function main() {
	fs.mkdirSync(ARTIFACTS, { recursive: true });
	assert(fs.existsSync(NGINX), 'no nginx at ' + NGINX + ' (apt-get install nginx-light)');

	const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'publisher-transports-'));
	fs.mkdirSync(path.join(tmp, 'server'));
	const publisher = new Server(path.join(tmp, 'server'), { feed: FEED, name: 'transports' });
	const proxies = [];
	const problems = [];
	let context;
	try {
		await publisher.start(0);
		context = await launch(path.join(tmp, 'profile'));

		const variants = [
			{ name: 'no-websocket', opts: {}, want: /SSE|Server-Sent/i, restart: true },
			{ name: 'no-streaming', opts: { noEvents: true }, want: /poll/i, restart: true },
			{ name: 'buffering', opts: { buffering: true }, want: /poll/i, restart: false },
		];
		for (const v of variants) {
			const nginx = new Nginx(path.join(tmp, 'nginx-' + v.name), publisher.port, v.opts);
			proxies.push(nginx);
			await nginx.start();
			let p;
			await check('behind nginx (' + v.name + '): the dashboard goes live, and says over what', async () => {
				p = await openPage(context, nginx.url, problems);
				const r = await goesLive(p, v.want, v.name);
				await p.page.screenshot({ path: path.join(ARTIFACTS, 'transport-' + v.name + '.png') });
				return 'live over "' + r.via + '" in ' + r.ms + ' ms';
			});
			if (v.restart && p) {
				await check('behind nginx (' + v.name + '): a server restart resumes with held seqs, nothing redrawn', async () => {
					const r = await restartResumes(p, publisher);
					return 'live again ' + r.ms + ' ms after the restart began, ' + r.held + ' seqs held';
				});
			}
			if (p) await p.page.close();
			await nginx.stop();
		}
		await check('the README\'s example page, served by another site, imports /client/publisher.js and goes live', async () => {
			const origin = 'http://127.0.0.1:' + await freePort();
			const dir = path.join(tmp, 'example-server');
			fs.mkdirSync(dir);
			const other = new Server(dir, { feed: FEED, name: 'transports-example', args: ['--allow-origin', origin] });
			await other.start(0);
			const html = readmeExamplePage(other.url);
			const site = http.createServer((req, res) => {
				res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
				res.end(html);
			});
			await new Promise((resolve) => site.listen(Number(new URL(origin).port), '127.0.0.1', resolve));
			const page = await context.newPage();
			watchProblems(page, problems, { label: 'example page' });
			try {
				const t0 = Date.now();
				await page.goto(origin + '/', { waitUntil: 'load' });
				const rows = await waitFor(async () => {
					const rs = await page.$$eval('#quotes tr', (trs) => trs.map((tr) => tr.textContent));
					return rs.length === 2 && rs.every((t) => /^(AAPL|MSFT) \d+\.\d+ \/ \d+\.\d+$/.test(t)) ? rs : null;
				}, 20000, 'the example page shows no live AAPL and MSFT quotes');
				const first = rows.join(' | ');
				await waitFor(async () => (await page.$$eval('#quotes tr', (trs) => trs.map((tr) => tr.textContent).join(' | '))) !== first,
					10000, 'the example page\'s quotes do not move');
				return 'live in ' + (Date.now() - t0) + ' ms: ' + first;
			} finally {
				await page.close();
				site.closeAllConnections();
				await new Promise((resolve) => site.close(resolve));
				await other.stop();
			}
		});
		await check('no console errors, page errors or CSP violations', async () => {
			assert(problems.length === 0, problems.join(' | '));
		});
	} finally {
		if (context) await context.close().catch(() => {});
		for (const n of proxies) await n.stop().catch(() => {});
		await publisher.stop().catch(() => {});
		fs.rmSync(tmp, { recursive: true, force: true });
	}
}

await run(main);

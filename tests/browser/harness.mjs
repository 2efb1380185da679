// What every browser test script shares besides the server
// (../support/server.mjs): the checks and their report, headless Chromium
// with the page's problems (console errors, page errors, CSP violations,
// failed requests) collected, and watching the watchlist's prices.
//
//   import { check, assert, summary, launch, watchProblems } from './harness.mjs';
//   const context = await launch(path.join(dir, 'profile'));
//   const page = await context.newPage();
//   watchProblems(page, problems);
//   await check('the page loads', async () => { ... return 'info'; });
//   summary();   // prints "N passed, N failed" and exits 1 on failures
//
// or, for the whole script: run(main), which reports a throw out of main()
// as a failed check before the summary.
//
// Uses Debian's /usr/bin/chromium (CHROMIUM overrides) through npm
// playwright-core, which never downloads a browser.

import { chromium } from 'playwright-core';
import fs from 'node:fs';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

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

/** Run the script's main(), a throw out of it failing one more check; then summary(). */
export async function run(main) {
	try {
		await main();
	} catch (e) {
		await check('the test runs to its end', () => { throw e; });
	}
	summary();
}

/* ---- the browser -------------------------------------------------------- */

const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
	'--disable-background-networking', '--disable-component-update', '--disable-sync'];

function haveChromium() {
	assert(fs.existsSync(CHROMIUM), 'no Chromium at ' + CHROMIUM + ' (apt-get install chromium)');
}

/* Every page of `context` reports CSP violations as console errors, which
 * watchProblems() collects. Runs before the page's own scripts (CDP
 * bypasses the page's CSP). */
async function reportCspViolations(context) {
	await context.addInitScript(() => {
		document.addEventListener('securitypolicyviolation', (e) => {
			console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') +
				' at ' + e.sourceFile + ':' + e.lineNumber);
		});
	});
}

/**
 * Headless Chromium with a profile in `profileDir` (so localStorage lives
 * across reloads), as one context whose pages report CSP violations.
 */
export async function launch(profileDir, { viewport = { width: 1366, height: 768 }, colorScheme = 'dark' } = {}) {
	haveChromium();
	const context = await chromium.launchPersistentContext(profileDir, {
		executablePath: CHROMIUM,
		headless: true,
		viewport,
		colorScheme,
		args: CHROMIUM_ARGS,
	});
	await reportCspViolations(context);
	return context;
}

/** Headless Chromium without a profile, for contexts of newContext(). */
export async function launchBrowser() {
	haveChromium();
	return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/** A fresh context of `browser` (nothing stored) whose pages report CSP violations. */
export async function newContext(browser, { viewport = { width: 1366, height: 768 }, colorScheme = 'dark' } = {}) {
	const context = await browser.newContext({ viewport, colorScheme });
	await reportCspViolations(context);
	return context;
}

/**
 * Collect the page's console errors and page errors into `problems`
 * (strings), except console errors ignore(text, message) says are
 * expected. With requests: true, also failed requests and answers of 400
 * and above, except those ignoreFailure(request) and ignoreStatus(response)
 * say are expected. `label` names the page in each problem.
 */
export function watchProblems(page, problems, {
	ignore = () => false, label = '', requests = false, ignoreFailure = () => false, ignoreStatus = () => false,
} = {}) {
	const where = label ? ' (' + label + ')' : '';
	page.on('console', (m) => {
		if (m.type() !== 'error' || ignore(m.text(), m)) return;
		problems.push('console' + where + ': ' + m.text());
	});
	page.on('pageerror', (e) => problems.push('page error' + where + ': ' + e.message));
	if (!requests) return;
	page.on('requestfailed', (r) => {
		if (!ignoreFailure(r)) problems.push('request failed' + where + ': ' + r.url() + ' ' + (r.failure() || {}).errorText);
	});
	page.on('response', (r) => {
		if (r.status() >= 400 && !ignoreStatus(r)) problems.push('HTTP ' + r.status() + where + ' for ' + r.url());
	});
}

/* ---- the dashboard ------------------------------------------------------ */

/**
 * From now on, note in window.blanked each symbol whose last price the
 * watchlist showed and then shows blank (a row redrawn from nothing).
 */
export function watchBlanks(page) {
	return page.evaluate(() => {
		const cells = () => [...document.querySelectorAll('#watchlist .wl-row')].map((r) => [r.children[0].textContent, r.children[3].textContent]);
		const shown = new Set(cells().filter(([, v]) => v !== '\u2014').map(([s]) => s));
		window.blanked = [];
		setInterval(() => {
			for (const [s, v] of cells()) if (v === '\u2014' && shown.has(s) && !window.blanked.includes(s)) window.blanked.push(s);
		}, 10);
	});
}

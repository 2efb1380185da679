// The replay controls in the top bar, shown only when the server's hello says
// "feed":"replay": pause and resume, restart from the beginning, the speed,
// a position slider to drag, the position, and a box to seek to a typed
// time. They poll the replay's state once a second while the connection is
// open.
//
// The server answers every replay op, and tells every other dashboard, with
// {"type":"replay","state":"playing"|"paused"|"seeking"|"finished",
//  "speed":N|"max","position":µs,"start":µs,"end":µs,...}; app.js hands the
// unsolicited ones to status(), the answers to our own ops come here directly.
//
// What they show is what the server says: the speed selector shows the
// replay's speed whatever it is (one the list lacks, 100,000× say, is added
// to it), and a seek or a restart works from any state, "finished" too. The
// position is the server's, run on between its reports at the replay's
// speed (ReplayClock): the server reports the time of the last tick it sent,
// which stands still through a gap in the file while the replay's clock goes
// on. Times are on the clock of the time basis (time-basis.js); a time typed
// without a zone is read on that clock too.
//
// It owns the #replay group and its controls, and sends `replay` ops through
// the client library. app.js calls start() on every hello, and redraw()
// when the time basis changes. sliderValue(), sliderTime(), seekArgument(),
// speedText() and ReplayClock are the parts without DOM.

import { setText } from './dom.js';
import { usText } from './timetext.js';

const POLL_MS = 1000;
const DRAW_MS = 100; // the running position is redrawn this often
const SLIDER_MAX = 1000; // the slider's max attribute in index.html

/**
 * The slider's value (0…SLIDER_MAX, as text) for replay state `m`, or null
 * when the state does not place it (no range yet, or no position).
 */
export function sliderValue(m) {
	const start = Number(m.start), end = Number(m.end), pos = Number(m.position);
	if (!(end > start && pos)) return null;
	return String(Math.round(((pos - start) / (end - start)) * SLIDER_MAX));
}

/** The time (µs, a double) at slider value `value` of replay state `m`. */
export function sliderTime(m, value) {
	const start = Number(m.start), end = Number(m.end);
	return start + (value / SLIDER_MAX) * (end - start);
}

/**
 * The `ts` of a seek op for what the user typed: all digits are microseconds
 * (a number); a date and time without a zone ("1997-06-20 09:30") is read on
 * `zt`'s clock (a ZonedTime: the time basis's), as microseconds; anything
 * else goes as text for the server to parse (ISO 8601 with Z or an offset).
 */
export function seekArgument(text, zt) {
	if (/^\d+$/.test(text)) return Number(text);
	const us = zt ? zt.parseUs(text) : null;
	return us === null ? text : us;
}

/** A speed as the selector names it: "max", "0.25×", "600×", "100,000×". */
export function speedText(speed) {
	if (speed === 'max') return 'max';
	const n = Number(speed);
	return (Number.isInteger(n) ? n.toLocaleString('en-US') : String(n)) + '\u00d7';
}

/**
 * Where a replay stands, by the clock: its last reported position, run on
 * at its speed while it plays, up to its end. The position the server
 * reports is the time of the last tick it sent, which is behind the
 * replay's own clock through a gap between ticks, so while the replay plays
 * on (no seek, no new loop pass) a report behind the clock does not set it
 * back; a report ahead of it moves it on. A pause stops it where it is.
 * Positions are protocol microseconds (numbers); `now` is
 * performance.now() milliseconds.
 */
export class ReplayClock {
	constructor() {
		this.reset();
	}

	/** Forget everything (a new connection: perhaps a new epoch). */
	reset() {
		this.pos = null;
		this.at = 0;
		this.rate = 0; // µs of the file per ms: 0 when it does not run
		this.end = Infinity;
		this.state = null;
		this.passes = null;
	}

	/** A replay state `m` that arrived at `now`. */
	update(m, now) {
		const cur = this.read(now);
		let pos = Number(m.state === 'seeking' ? m.seek_to : m.position) || null;
		const goingOn = (this.state === 'playing' || this.state === 'paused') &&
			(m.state === 'playing' || m.state === 'paused') && m.passes === this.passes;
		if (goingOn && cur !== null && (pos === null || pos < cur)) pos = cur;
		this.pos = pos;
		this.at = now;
		this.state = m.state;
		this.passes = m.passes;
		const speed = Number(m.speed);
		this.rate = m.state === 'playing' && speed > 0 ? speed * 1000 : 0;
		const end = Number(m.end);
		this.end = end > 0 ? end : Infinity;
	}

	/** The position at `now` (µs), or null when none is known. */
	read(now) {
		if (this.pos === null) return null;
		if (!this.rate || this.pos >= this.end) return this.pos;
		return Math.min(this.pos + (now - this.at) * this.rate, this.end);
	}

	/** True while the position moves by itself. */
	get running() {
		return this.rate > 0 && this.pos !== null && this.pos < this.end;
	}
}

export class ReplayControls {
	/**
	 * els: group (#replay), toggle, restart, speed, slider, pos, state,
	 * seekForm, seekInput. client: the PublisherClient. onError(err): a
	 * failed op (app.js shows the server's errors). basis: the TimeBasis.
	 * onPosition(ms): the position moved (ms since the epoch; null when
	 * there is none), for the time basis's label.
	 */
	constructor(els, client, onError, basis, onPosition = () => {}) {
		this.els = els;
		this.client = client;
		this.onError = onError;
		this.basis = basis;
		this.onPosition = onPosition;
		this.last = null; // the last state, or null when the feed is not a replay
		this.clock = new ReplayClock();
		this.timer = 0;
		this.drawTimer = 0;
		this.seeking = false; // the user is dragging the position slider

		els.toggle.addEventListener('click', () => {
			const action = this.last && this.last.state === 'paused' ? 'resume' : 'pause';
			this.op({ action }).catch(onError);
		});
		els.restart.addEventListener('click', () => this.restart().catch(onError));
		els.speed.addEventListener('change', (e) => {
			const v = e.target.value;
			this.op({ action: 'speed', speed: v === 'max' ? 'max' : Number(v) }).catch(onError);
		});
		els.slider.addEventListener('input', () => {
			this.seeking = true;
			const m = this.last;
			if (m && Number(m.end) > Number(m.start)) setText(els.pos, usText(sliderTime(m, els.slider.value), this.basis.zt));
		});
		els.slider.addEventListener('change', () => {
			this.seeking = false;
			if (!this.last) return;
			this.op({ action: 'seek', ts: Math.round(sliderTime(this.last, els.slider.value)) }).catch(onError);
		});
		els.seekForm.addEventListener('submit', (e) => {
			e.preventDefault();
			const v = els.seekInput.value.trim();
			if (!v) return;
			this.op({ action: 'seek', ts: seekArgument(v, this.basis.zt) })
				.then(() => { els.seekInput.value = ''; }, onError);
		});
	}

	/** On every hello: show and poll the controls for a replay, else hide them. */
	start(isReplay) {
		this.els.group.hidden = !isReplay;
		clearInterval(this.timer);
		this.timer = 0;
		this.clock.reset();
		this.runClock();
		if (!isReplay) {
			this.last = null;
			this.onPosition(null);
			return;
		}
		// No speed is shown until the server has said which it is.
		if (!this.last) this.els.speed.selectedIndex = -1;
		const poll = () => {
			if (this.client.open) this.op({ action: 'status' }).catch(() => {});
		};
		poll();
		this.timer = setInterval(poll, POLL_MS);
	}

	/** Send a replay op; its answer is drawn, then resolves the promise. */
	op(msg) {
		return this.client.request({ op: 'replay', ...msg }).then((r) => {
			this.status(r);
			return r;
		});
	}

	/* Back to the beginning, playing: a seek to the file's first tick
	 * (resumed first when paused, so it plays from there). */
	async restart() {
		const m = this.last;
		if (!m || !Number(m.start)) return;
		if (m.state === 'paused') await this.op({ action: 'resume' });
		await this.op({ action: 'seek', ts: Number(m.start) });
	}

	/** Draw a replay state (an answer, or a broadcast). */
	status(m) {
		this.last = m;
		this.clock.update(m, performance.now());
		const els = this.els;
		const paused = m.state === 'paused';
		const label = paused ? 'Resume replay' : 'Pause replay';
		els.toggle.setAttribute('aria-label', label);
		els.toggle.title = label;
		els.toggle.classList.toggle('paused', paused);
		els.toggle.disabled = m.state === 'finished';
		els.restart.disabled = !Number(m.start);
		this.showSpeed(m.speed);
		setText(els.state, m.state || '');
		els.state.dataset.state = m.state || '';
		els.slider.disabled = !(Number(m.end) > Number(m.start));
		this.drawPosition();
		this.runClock();
	}

	/* The replay's speed in the selector, whatever it is: one the list
	 * lacks gets an option of its own, in order. */
	showSpeed(speed) {
		const sel = this.els.speed;
		const value = speed === 'max' ? 'max' : String(Number(speed));
		if (speed === undefined || value === 'NaN') return;
		if (![...sel.options].some((o) => o.value === value)) {
			const o = document.createElement('option');
			o.value = value;
			o.textContent = speedText(speed);
			const after = [...sel.options].find((x) => x.value === 'max' || (value !== 'max' && Number(x.value) > Number(value)));
			sel.insertBefore(o, after || null);
		}
		if (document.activeElement !== sel && sel.value !== value) sel.value = value;
	}

	/* The position by the clock, and the slider unless it is being dragged. */
	drawPosition() {
		const m = this.last;
		if (!m) return;
		const pos = this.clock.read(performance.now());
		if (!this.seeking) setText(this.els.pos, usText(pos, this.basis.zt));
		const v = sliderValue({ start: m.start, end: m.end, position: pos });
		if (!this.seeking && v !== null && this.els.slider.value !== v) this.els.slider.value = v;
		this.onPosition(pos === null ? null : pos / 1000);
	}

	/* Redraw the position every DRAW_MS while the clock runs. */
	runClock() {
		if (this.clock.running && !this.drawTimer) {
			this.drawTimer = setInterval(() => this.drawPosition(), DRAW_MS);
		} else if (!this.clock.running && this.drawTimer) {
			clearInterval(this.drawTimer);
			this.drawTimer = 0;
		}
	}

	/** The time basis changed: the position on its clock. */
	redraw() {
		this.drawPosition();
	}
}

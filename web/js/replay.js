// The replay controls in the top bar, shown only when the server's hello says
// "feed":"replay": pause and resume, the speed, a position slider to drag,
// and a box to seek to a typed time. They poll the replay's state once a
// second while the connection is open.
//
// The server answers every replay op, and tells every other dashboard, with
// {"type":"replay","state":"playing"|"paused"|"seeking"|"finished",
//  "speed":N|"max","position":µs,"start":µs,"end":µs,...}; app.js hands the
// unsolicited ones to status(), the answers to our own ops come here directly.
//
// It owns the #replay group and its controls, and sends `replay` ops through
// the client library. app.js calls start() on every hello. sliderValue(),
// sliderTime() and seekArgument() are the parts without DOM.

import { setText } from './dom.js';
import { utcText } from './timetext.js';

const POLL_MS = 1000;
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
 * (a number), anything else goes as text for the server to parse (ISO 8601).
 */
export function seekArgument(text) {
	return /^\d+$/.test(text) ? Number(text) : text;
}

export class ReplayControls {
	/**
	 * els: group (#replay), toggle, speed, slider, pos, state, seekForm,
	 * seekInput. client: the PublisherClient. onError(err): a failed op (app.js
	 * shows the server's errors).
	 */
	constructor(els, client, onError) {
		this.els = els;
		this.client = client;
		this.onError = onError;
		this.last = null; // the last state, or null when the feed is not a replay
		this.timer = 0;
		this.seeking = false; // the user is dragging the position slider

		els.toggle.addEventListener('click', () => {
			const action = this.last && this.last.state === 'paused' ? 'resume' : 'pause';
			this.op({ action }).catch(onError);
		});
		els.speed.addEventListener('change', (e) => {
			const v = e.target.value;
			this.op({ action: 'speed', speed: v === 'max' ? 'max' : Number(v) }).catch(onError);
		});
		els.slider.addEventListener('input', () => {
			this.seeking = true;
			const m = this.last;
			if (m && Number(m.end) > Number(m.start)) setText(els.pos, utcText(sliderTime(m, els.slider.value)));
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
			this.op({ action: 'seek', ts: seekArgument(v) })
				.then(() => { els.seekInput.value = ''; }, onError);
		});
	}

	/** On every hello: show and poll the controls for a replay, else hide them. */
	start(isReplay) {
		this.els.group.hidden = !isReplay;
		clearInterval(this.timer);
		this.timer = 0;
		if (!isReplay) {
			this.last = null;
			return;
		}
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

	/** Draw a replay state (an answer, or a broadcast). */
	status(m) {
		this.last = m;
		const els = this.els;
		const paused = m.state === 'paused';
		const label = paused ? 'Resume replay' : 'Pause replay';
		els.toggle.setAttribute('aria-label', label);
		els.toggle.title = label;
		els.toggle.classList.toggle('paused', paused);
		els.toggle.disabled = m.state === 'finished';
		const speed = m.speed === 'max' ? 'max' : String(m.speed);
		const sel = els.speed;
		if (document.activeElement !== sel && [...sel.options].some((o) => o.value === speed)) sel.value = speed;
		setText(els.state, m.state || '');
		els.state.dataset.state = m.state || '';
		setText(els.pos, utcText(m.state === 'seeking' ? m.seek_to : m.position));
		els.slider.disabled = !(Number(m.end) > Number(m.start));
		const v = sliderValue(m);
		if (!this.seeking && v !== null) els.slider.value = v;
	}
}

// The time basis control in the status bar, beside the clock: a <select> with one option per
// basis, each named with its zone ("UTC", "Local: New York (EDT)",
// "Session: Bangkok (GMT+7)"). The selected one is the page's one time
// zone label: every time on the page is on that clock.
//
// It owns the <select> (its options are made here) and nothing else; it
// changes the TimeBasis (time-basis.js) when the user picks, and app.js
// stores the choice. Zone names such as EDT or EST depend on the date: they
// are named as of the time the page shows (the basis's showing()); app.js
// calls draw() once a second, and the basis's changes redraw it.

import { BASES } from './time-basis.js';
import { setText } from './dom.js';

export class TimeBasisPicker {
	/** select: the element; basis: the TimeBasis. */
	constructor(select, basis) {
		this.select = select;
		this.basis = basis;
		this.options = new Map();
		select.textContent = '';
		for (const b of BASES) {
			const o = document.createElement('option');
			o.value = b;
			select.appendChild(o);
			this.options.set(b, o);
		}
		select.addEventListener('change', () => basis.set(select.value));
		basis.onChange(() => this.draw());
		this.draw();
	}

	/** Name the zones as of the time the page shows, and show the choice. */
	draw() {
		for (const [b, o] of this.options) setText(o, this.basis.text(b));
		if (this.select.value !== this.basis.basis) this.select.value = this.basis.basis;
		this.select.dataset.zone = this.basis.zone;
		const title = 'Every time on this page is ' + (this.basis.zone === 'UTC' ? 'in UTC' : 'on the clock of ' + this.basis.zone);
		if (this.select.title !== title) this.select.title = title;
	}
}

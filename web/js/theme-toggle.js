// The theme button in the top bar, and following the system's light or dark
// preference for as long as the user has not chosen.
//
// web/theme.js (a classic script in <head>) has already set <html
// data-theme> before first paint; this module takes over from there. It owns
// the button and the data-theme attribute, and keeps the user's choice in
// storage under 'theme' (which web/theme.js reads on the next load). app.js
// creates it once; onApply() runs after every change of theme (the chart
// takes its colours from the page's CSS).

import { load, save } from './storage.js';

/** The theme the button switches to from `theme`. */
export function otherTheme(theme) {
	return theme === 'dark' ? 'light' : 'dark';
}

export class ThemeToggle {
	/** button: the toggle; onApply(): called after each theme is applied. */
	constructor(button, onApply) {
		this.button = button;
		this.onApply = onApply;
		const root = document.documentElement;
		this.apply(root.getAttribute('data-theme') === 'light' ? 'light' : 'dark');
		button.addEventListener('click', () => {
			const theme = otherTheme(root.getAttribute('data-theme'));
			save('theme', theme);
			this.apply(theme);
		});
		window.matchMedia('(prefers-color-scheme: light)').addEventListener('change', (e) => {
			if (load('theme', null) === null) this.apply(e.matches ? 'light' : 'dark');
		});
	}

	apply(theme) {
		document.documentElement.setAttribute('data-theme', theme);
		const label = 'Switch to ' + otherTheme(theme) + ' theme';
		this.button.setAttribute('aria-label', label);
		this.button.title = label;
		this.onApply();
	}
}

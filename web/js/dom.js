// DOM writes that do nothing when nothing changed. The views run once per
// animation frame or on a timer, and most of what they would write is the
// same text as before; skipping those writes keeps style and layout work to
// the cells that really changed.

/** Set an element's text, unless it already holds exactly that. */
export function setText(el, text) {
	if (el.textContent !== text) el.textContent = text;
}

/** Set an element's class attribute, unless it is already that. */
export function setClass(el, cls) {
	if (el.className !== cls) el.className = cls;
}

// Times as text for the dashboard: the clock in the status bar, the time of a
// quote's last update, and a replay's position. No DOM; the quote panel, the
// status bar and the replay controls call these.
//
// The protocol speaks UTC microseconds as exact text ("1718000000123456");
// these functions take milliseconds (a double is exact enough for a display)
// except utcText, which takes the protocol's microseconds as they came.

const DASH = '\u2014';

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Local time of day, "HH:MM:SS", or "HH:MM:SS.mmm" with `millis`. */
export function clockText(ms, millis) {
	const d = new Date(ms);
	return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) +
		(millis ? '.' + pad(d.getMilliseconds(), 3) : '');
}

/**
 * When a quote was last updated: the local time of day with milliseconds
 * for an update of today (the day of `now`), "YYYY-MM-DD HH:MM:SS" for an
 * older one (a replay, or a symbol that has not traded for a while).
 */
export function stampText(ms, now = Date.now()) {
	const d = new Date(ms);
	if (d.toDateString() === new Date(now).toDateString()) return clockText(ms, true);
	return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + clockText(ms, false);
}

/**
 * A protocol time (UTC microseconds, as text or number) as
 * "YYYY-MM-DD HH:MM:SS UTC"; a dash for a missing or zero time.
 */
export function utcText(us) {
	const n = Number(us);
	if (!n) return DASH;
	return new Date(n / 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

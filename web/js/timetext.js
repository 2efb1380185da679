// Times as text for the dashboard, on the wall clock of one time zone: the
// clock in the status bar, a quote's update time, a replay's position and
// what is typed to seek it, and the chart's axis and crosshair labels. Every
// time on the page goes through a ZonedTime of the zone the time basis
// names (time-basis.js), so they all agree and one label says which zone.
//
// No DOM. The views hold the ZonedTime of the moment (the time basis hands
// it out) and call it; the chart's formatters are chartTickMark() and
// chartCrosshair() here.
//
// The protocol speaks UTC microseconds as exact text ("1718000000123456");
// a ZonedTime takes milliseconds (a double is exact enough for a display)
// and usText() reads the protocol's microseconds as they came.
//
// Zones are IANA names ("America/New_York") as the browser's Intl knows
// them; their offset at an instant comes from Intl once per 15 minutes of
// time and is cached, so formatting a time costs a few Date getters.

export const DASH = '\u2014';
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/* Offsets are cached per slice of this length: every change of a zone's
 * offset since standard time began falls on a quarter hour of UTC. A slice
 * whose two ends disagree is not cached (the odd seconds of local mean
 * time before 1900). */
const SLICE_MS = 15 * 60 * 1000;
const CACHE_MAX = 20000;

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** The zone's offset from Intl, in ms east of UTC, at whole second `ms`. */
function intlOffset(fmt, ms) {
	const p = {};
	for (const x of fmt.formatToParts(new Date(ms))) p[x.type] = x.value;
	const wall = Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day), Number(p.hour) % 24,
		Number(p.minute), Number(p.second));
	return wall - ms;
}

/**
 * The wall clock of one time zone. `zone` is 'UTC' or an IANA name the
 * browser knows; any other name is taken as UTC (zone then says 'UTC').
 */
export class ZonedTime {
	constructor(zone) {
		this.zone = 'UTC';
		this.fmt = null;
		this.cache = new Map(); // slice -> offset
		if (zone && zone !== 'UTC' && zone !== 'Etc/UTC') {
			try {
				this.fmt = new Intl.DateTimeFormat('en-US', {
					timeZone: zone, hourCycle: 'h23',
					year: 'numeric', month: 'numeric', day: 'numeric',
					hour: 'numeric', minute: 'numeric', second: 'numeric',
				});
				this.zone = zone;
			} catch (e) {
				this.fmt = null; // an unknown zone: UTC
			}
		}
	}

	/** Milliseconds east of UTC in force at instant `ms`. */
	offset(ms) {
		if (!this.fmt) return 0;
		const slice = Math.floor(ms / SLICE_MS);
		let o = this.cache.get(slice);
		if (o !== undefined) return o;
		const start = slice * SLICE_MS;
		o = intlOffset(this.fmt, start);
		if (intlOffset(this.fmt, start + SLICE_MS - 1000) !== o)
			return intlOffset(this.fmt, Math.floor(ms / 1000) * 1000);
		if (this.cache.size >= CACHE_MAX) this.cache.clear();
		this.cache.set(slice, o);
		return o;
	}

	/** The wall clock at `ms`: {year, month (1-12), day, hour, minute, second, millis}. */
	parts(ms) {
		const d = new Date(ms + this.offset(ms));
		return {
			year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(),
			hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds(),
			millis: d.getUTCMilliseconds(),
		};
	}

	/** "YYYY-MM-DD". */
	date(ms) {
		const p = this.parts(ms);
		return pad(p.year, 4) + '-' + pad(p.month) + '-' + pad(p.day);
	}

	/** "HH:MM:SS", or "HH:MM:SS.mmm" with `millis`. */
	clock(ms, millis) {
		const p = this.parts(ms);
		return pad(p.hour) + ':' + pad(p.minute) + ':' + pad(p.second) + (millis ? '.' + pad(p.millis, 3) : '');
	}

	/** "YYYY-MM-DD HH:MM:SS". */
	dateTime(ms) {
		return this.date(ms) + ' ' + this.clock(ms, false);
	}

	/**
	 * When a quote was last updated: the time of day with milliseconds for
	 * an update of today (the day of `now` here), "YYYY-MM-DD HH:MM:SS" for
	 * an older one (a replay, or a symbol that has not traded for a while).
	 */
	stamp(ms, now = Date.now()) {
		return this.date(ms) === this.date(now) ? this.clock(ms, true) : this.dateTime(ms);
	}

	/**
	 * The instant (ms) of a wall time here: of the two a time the clocks
	 * are set back over has, the first; a time they skip is read with the
	 * offset before the change (02:30 on a spring-forward night in New
	 * York is 03:30 EDT), as Date does with local times.
	 */
	instant(year, month, day, hour = 0, minute = 0, second = 0, millis = 0) {
		const wall = Date.UTC(year, month - 1, day, hour, minute, second, millis);
		let best = null;
		for (const o of new Set([this.offset(wall - 86400000), this.offset(wall), this.offset(wall + 86400000)])) {
			const t = wall - o;
			if (this.offset(t) === o && (best === null || t < best)) best = t;
		}
		return best !== null ? best : wall - this.offset(wall - 86400000);
	}

	/**
	 * Typed date and time without a zone, read on this wall clock, as
	 * protocol microseconds (a number): "YYYY-MM-DD", with " HH:MM",
	 * ":SS" and a fraction of up to six digits (a "T" may stand for the
	 * space). null for anything else (a time with Z or an offset says its
	 * own zone: send it as it is).
	 */
	parseUs(text) {
		const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?$/.exec(text.trim());
		if (!m) return null;
		const [y, mo, d, h = 0, mi = 0, s = 0] = m.slice(1, 7).map((v) => Number(v || 0));
		if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) return null;
		const frac = m[7] ? Number(m[7].padEnd(6, '0')) : 0;
		const ms = this.instant(y, mo, d, h, mi, s);
		if (new Date(Date.UTC(y, mo - 1, d)).getUTCDate() !== d) return null; // 31 June
		return ms * 1000 + frac;
	}
}

/** The browser's own time zone (an IANA name), or 'UTC' when it does not say. */
export function browserZone() {
	try {
		return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
	} catch (e) {
		return 'UTC';
	}
}

let browserTime = null;

/**
 * "HH:MM:SS" (or with ".mmm") on `zt`'s clock: pass the time basis's
 * ZonedTime; without one, the browser's own zone.
 */
export function clockText(ms, millis, zt) {
	if (!zt) zt = browserTime || (browserTime = new ZonedTime(browserZone()));
	return zt.clock(ms, millis);
}

/** Protocol microseconds (text or number) as milliseconds; null for a missing, zero or unreadable time. */
export function protocolMs(us) {
	const n = Number(us);
	return n && Number.isFinite(n) ? n / 1000 : null;
}

/** Protocol microseconds as "YYYY-MM-DD HH:MM:SS" on `zt`'s clock; a dash for a missing or zero time. */
export function usText(us, zt) {
	const ms = protocolMs(us);
	return ms === null ? DASH : zt.dateTime(ms);
}

/* The short name Intl gives the zone at `ms` ("EDT", "GMT+7"). */
function shortName(zone, ms) {
	try {
		const parts = new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'short' }).formatToParts(new Date(ms));
		const p = parts.find((x) => x.type === 'timeZoneName');
		return p ? p.value : '';
	} catch (e) {
		return '';
	}
}

/**
 * A zone in words, as of instant `ms`: "UTC", or its place and the name
 * of its time then, "New York (EDT)", "Bangkok (GMT+7)".
 */
export function zoneLabel(zone, ms = Date.now()) {
	if (!zone || zone === 'UTC' || zone === 'Etc/UTC') return 'UTC';
	const place = zone.slice(zone.lastIndexOf('/') + 1).replace(/_/g, ' ');
	const name = shortName(zone, ms);
	return name && name !== place ? place + ' (' + name + ')' : place;
}

/**
 * The chart's time-axis label (lightweight-charts' tickMarkFormatter) on
 * `zt`'s clock: `time` is UTC seconds, `type` the library's TickMarkType
 * (0 year, 1 month, 2 day of month, 3 time, 4 time with seconds).
 *
 * The library picks its marks by UTC dates: a day mark at 00:00 UTC is
 * 20:00 of the day before in New York. So a mark says what it is here: a
 * date only where it is midnight here (or on a chart of days, `daily`, the
 * date it falls on here), else the time of day.
 */
export function chartTickMark(zt, time, type, daily = false) {
	const p = zt.parts(time * 1000);
	const midnight = p.hour === 0 && p.minute === 0 && p.second === 0;
	if ((type <= 2 && (midnight || daily)) || (type === 3 && midnight)) {
		if (p.month === 1 && p.day === 1) return String(p.year);
		if (p.day === 1) return MONTHS[p.month - 1];
		return String(p.day);
	}
	const hm = pad(p.hour) + ':' + pad(p.minute);
	return type === 4 ? hm + ':' + pad(p.second) : hm;
}

/** The crosshair's time label (localization.timeFormatter): "YYYY-MM-DD HH:MM:SS" on `zt`'s clock. */
export function chartCrosshair(zt, time) {
	return zt.dateTime(time * 1000);
}

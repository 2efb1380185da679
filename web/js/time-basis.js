// Which time zone every time on the page is shown in: the time basis. One
// of three, chosen by the user and remembered (app.js stores it):
//
//   local    the browser's own zone (the default)
//   utc      UTC
//   session  the zone the selected symbol's trading sessions follow, as the
//            server's `symbols` reply names it ("zone", from its --session
//            settings; UTC for a symbol it has not named)
//
// A TimeBasis holds the choice, the selected symbol's session zone and the
// ZonedTime (timetext.js) of the zone they come to; the views take that
// ZonedTime for every time they draw, and redraw when it changes. It also
// holds the time the page shows (a replay's position, else now), as of
// which its words name the zone: June 1997 in New York is EDT, whatever the
// date today. No DOM: the control that switches it is time-basis-picker.js.

import { ZonedTime, zoneLabel, browserZone } from './timetext.js';

export const BASES = ['local', 'utc', 'session'];
const NAMES = { local: 'Local', utc: 'UTC', session: 'Session' };

/** A stored basis, checked: one of BASES, else 'local'. */
export function validBasis(v) {
	return BASES.includes(v) ? v : 'local';
}

/** The zone of `basis`, given the session zone and the browser's zone. */
export function basisZone(basis, sessionZone, localZone) {
	if (basis === 'utc') return 'UTC';
	if (basis === 'session') return sessionZone || 'UTC';
	return localZone || 'UTC';
}

/**
 * A basis in words, its zone's label as of instant `ms`: "UTC",
 * "Local: New York (EDT)", "Session: Bangkok (GMT+7)".
 */
export function basisText(basis, zone, ms) {
	const label = zoneLabel(zone, ms);
	return basis === 'utc' ? label : NAMES[basis] + ': ' + label;
}

export class TimeBasis {
	/** basis: the stored choice (checked); localZone: the browser's zone. */
	constructor(basis, localZone = browserZone()) {
		this.basis = validBasis(basis);
		this.localZone = localZone;
		this.sessionZone = 'UTC';
		this.shownMs = null; // the time the page shows; null: now
		this.listeners = [];
		this.zt = new ZonedTime(basisZone(this.basis, this.sessionZone, localZone));
	}

	/** The zone every time is shown in now (an IANA name, or 'UTC'). */
	get zone() {
		return this.zt.zone;
	}

	/** fn(basis) after every change of the zone or of the choice. */
	onChange(fn) {
		this.listeners.push(fn);
	}

	/** The user's choice. */
	set(basis) {
		basis = validBasis(basis);
		if (basis === this.basis) return;
		this.basis = basis;
		this.rezone(true);
	}

	/** The selected symbol's session zone (undefined or null: UTC). */
	setSessionZone(zone) {
		zone = zone || 'UTC';
		if (zone === this.sessionZone) return;
		this.sessionZone = zone;
		this.rezone(false);
	}

	/** The time the page shows (ms since the epoch; null: now), as of which the zone is named. */
	showing(ms) {
		this.shownMs = ms;
	}

	/** The basis in words, as of instant `ms` (the time shown; see basisText). */
	text(basis = this.basis, ms = this.shownMs ?? Date.now()) {
		return basisText(basis, basisZone(basis, this.sessionZone, this.localZone), ms);
	}

	rezone(chosen) {
		const zone = basisZone(this.basis, this.sessionZone, this.localZone);
		if (zone !== this.zt.zone) this.zt = new ZonedTime(zone);
		else if (!chosen) return;
		for (const fn of this.listeners) fn(this);
	}
}

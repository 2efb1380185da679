// Display helpers for decimal strings exactly as the server sent them.
// Arithmetic here (change, spread) is exact on the decimal text; the percent
// change is a display-only approximation.

const MINUS = '\u2212';

/** Digits after the decimal point of a plain decimal string. */
export function scaleOf(s) {
	const i = s.indexOf('.');
	return i < 0 ? 0 : s.length - i - 1;
}

function plain(s) {
	return /^-?\d+(\.\d+)?$/.test(s);
}

function mantissa(s, scale) {
	const neg = s[0] === '-';
	const t = neg ? s.slice(1) : s;
	const i = t.indexOf('.');
	const int = i < 0 ? t : t.slice(0, i);
	const frac = i < 0 ? '' : t.slice(i + 1);
	const m = BigInt(int + frac.padEnd(scale, '0'));
	return neg ? -m : m;
}

function fromMantissa(m, scale) {
	const neg = m < 0n;
	const t = (neg ? -m : m).toString().padStart(scale + 1, '0');
	const r = scale ? t.slice(0, -scale) + '.' + t.slice(-scale) : t;
	return neg ? '-' + r : r;
}

/** a - b as an exact decimal string, or null when either is missing. */
export function sub(a, b) {
	if (a === undefined || b === undefined) return null;
	if (!plain(a) || !plain(b)) {
		const scale = Math.max(scaleOf(a), scaleOf(b));
		return (Number(a) - Number(b)).toFixed(Math.min(scale, 12));
	}
	const scale = Math.max(scaleOf(a), scaleOf(b));
	return fromMantissa(mantissa(a, scale) - mantissa(b, scale), scale);
}

/** Sign of a decimal string: -1, 0 or 1. */
export function sign(s) {
	if (s === null || s === undefined) return 0;
	if (s[0] === '-') return /[1-9]/.test(s) ? -1 : 0;
	return /[1-9]/.test(s) ? 1 : 0;
}

/** "+1.25" / "−1.25" / "0.00" with a typographic minus. */
export function signed(s) {
	const g = sign(s);
	if (g > 0) return '+' + s;
	if (g < 0) return MINUS + s.slice(1);
	return s[0] === '-' ? s.slice(1) : s;
}

/** Percent change of `chg` against `base`, two decimals, signed. */
export function percent(chg, base) {
	const b = Number(base);
	if (chg === null || !b) return null;
	const p = (Number(chg) / b) * 100;
	const t = Math.abs(p).toFixed(2);
	if (t === '0.00') return '0.00%';
	return (p > 0 ? '+' : MINUS) + t + '%';
}

/** Thousands separators on the integer part: "1234567.5" -> "1,234,567.5". */
export function group(s) {
	if (s === undefined || s === null) return '';
	const i = s.indexOf('.');
	const int = i < 0 ? s : s.slice(0, i);
	const g = int.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
	return i < 0 ? g : g + s.slice(i);
}

/** Compact volume for narrow places: 12,345,678 -> "12.35M". */
export function compact(s) {
	const n = Number(s);
	if (!isFinite(n)) return '';
	const a = Math.abs(n);
	if (a >= 1e9) return (n / 1e9).toFixed(2) + 'B';
	if (a >= 1e6) return (n / 1e6).toFixed(2) + 'M';
	if (a >= 1e4) return (n / 1e3).toFixed(1) + 'K';
	return group(s);
}

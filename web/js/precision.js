// Per-symbol display precision: every price of a symbol is shown with the
// most decimals that symbol has shown in any price, so a column of a
// symbol's prices lines up ("25.000 / 25.200" next to "24.050", never
// "25 / 25.2"). The text stays the server's exact decimal text, padded with
// zeros; nothing goes through a float, nothing is rounded.
//
// No DOM. view-model.js keeps each symbol's most decimals (ViewQuote.scale)
// with decimalsOf(), and for a symbol with quotes only the most its mid
// price has had (midDecimals(); the chart draws the mid); the watchlist, the
// quote panel and the tape pad the prices they show with padDecimals().

/** The decimals of a decimal text: '24.050' -> 3, '25' -> 0. */
export function decimalsOf(text) {
	const i = text.indexOf('.');
	return i < 0 ? 0 : text.length - i - 1;
}

/**
 * Decimal text with at least `scale` decimals: ('25', 3) -> '25.000',
 * ('+0.1', 3) -> '+0.100'; text with as many or more is returned as it is.
 * undefined and null pass through; text that is not a plain decimal
 * (an exponent, a dash) is left alone.
 */
export function padDecimals(text, scale) {
	if (text === undefined || text === null || !scale) return text;
	const s = String(text);
	const i = s.indexOf('.');
	const have = i < 0 ? 0 : s.length - i - 1;
	if (have >= scale) return s;
	const c = s.charCodeAt(s.length - 1);
	if (c < 48 || c > 57 || s.includes('e') || s.includes('E')) return s;
	return (i < 0 ? s + '.' : s) + '0'.repeat(scale - have);
}

/*
 * The decimals of the exact mid price (bid + ask) / 2 of two decimal
 * texts: those of the longer, and one more when the sum in its last place
 * is odd ('24.82', '25.02' -> 2: 24.92; '24.8', '24.85' -> 3: 24.825).
 */
export function midDecimals(bid, ask) {
	const s = Math.max(decimalsOf(bid), decimalsOf(ask));
	const units = (t) => BigInt(t.replace('.', '') + '0'.repeat(s - decimalsOf(t)));
	try {
		return (units(bid) + units(ask)) % 2n === 0n ? s : s + 1;
	} catch (e) {
		return s + 1; // not plain decimal text: room for any mid
	}
}

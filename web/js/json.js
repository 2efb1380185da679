// Frame parsing that keeps numbers exact.
//
// Prices are exact decimals: "470.90" must reach the screen as 470.90,
// not as the double 470.9, and seqs are uint64 (exact past 2^53). Before
// JSON.parse, the value of every numeric protocol member is wrapped in
// quotes, so it arrives as its exact source text.
//
// Why not JSON.parse's reviver with context.source (Chromium 114+)? It works,
// but a reviver runs for every value of every frame: measured here it made
// parsing five times slower (72 µs against 17 µs for a 5-update batch), at
// thousands of updates a second. The rewrite is one native regex pass, and it
// works in every browser.
//
// The rewrite is sound on valid JSON: the pattern needs `"key":` followed by
// a digit or '-', and inside a JSON string every '"' is escaped as \", so the
// pattern can only match a real member name, never text inside a string.

const NUMERIC = [
	'bid', 'ask', 'last', 'open', 'high', 'low', 'close',
	'bid_size', 'ask_size', 'last_size', 'volume', 'trades',
	'seq', 'from', 'ts', 't', 'id',
];
// The number is matched by JSON's own grammar, so a malformed one ("1.1.1",
// "12-3") leaves text behind it that JSON.parse rejects, as it would have
// without the rewrite.
const NUMBER_MEMBER = new RegExp('"(' + NUMERIC.join('|') + ')"\\s*:\\s*' +
	'(-?(?:0|[1-9]\\d*)(?:\\.\\d+)?(?:[eE][+-]?\\d+)?)', 'g');

/**
 * Parse one server frame. The members named in NUMERIC come back as strings
 * holding the exact decimal text; other numbers stay numbers. Throws on
 * malformed JSON.
 */
export function parseFrame(text) {
	return JSON.parse(text.replace(NUMBER_MEMBER, '"$1":"$2"'));
}

// web/js/csv-download.js, the parts without DOM: the range of the bars in
// the chart's view (export's `to` is exclusive, so it is the end of the last
// bar) and the /api/export address for it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exportRange, exportUrl } from '../../web/js/csv-download.js';

const bars = [60, 120, 180, 240, 300].map((t) => ({ t }));

test('the range runs from the first bar in view to the end of the last', () => {
	assert.deepEqual(exportRange(bars, 120, 240, 60), { from: 120e6, to: 300e6 });
	// A view edge between bars takes the bars inside it.
	assert.deepEqual(exportRange(bars, 100, 250, 60), { from: 120e6, to: 300e6 });
	assert.deepEqual(exportRange(bars, 0, 1e9, 60), { from: 60e6, to: 360e6 });
	assert.deepEqual(exportRange([{ t: 1718000000 }], 1718000000, 1718000000, 1), { from: 1718000000e6, to: 1718000001e6 });
	assert.equal(exportRange(bars, 400, 500, 60), null);
	assert.equal(exportRange([], 0, 1e9, 60), null);
});

test('the address: the symbol escaped, the range in µs, CSV', () => {
	assert.equal(exportUrl('EUR/USD', { from: 120e6, to: 300e6 }),
		'api/export?symbol=EUR%2FUSD&from=120000000&to=300000000&format=csv');
	assert.equal(exportUrl('BRK.B', { from: 1718000000e6, to: 1718000060e6 }),
		'api/export?symbol=BRK.B&from=1718000000000000&to=1718000060000000&format=csv');
});

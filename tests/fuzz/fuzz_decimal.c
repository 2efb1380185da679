/*
 * libFuzzer target: decimal_parse() on any bytes. When it accepts them,
 * decimal_format() must write at most DECIMAL_MAX_TEXT bytes that parse back
 * to the same mantissa and scale (the promise in decimal.h), and the value
 * must compare equal to itself at another scale.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "decimal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[DECIMAL_MAX_TEXT];
	struct decimal d, back, zero = {0, 0}, sum;
	size_t n;

	if (decimal_parse((const char *)data, size, &d) != 0)
		return 0;
	if (d.scale > DECIMAL_MAX_SCALE)
		abort();
	n = decimal_format(d, buf);
	if (n == 0 || n > DECIMAL_MAX_TEXT)
		abort();
	if (decimal_parse(buf, n, &back) != 0)
		abort();
	if (back.mantissa != d.mantissa || back.scale != d.scale)
		abort();
	if (decimal_cmp(d, back) != 0)
		abort();
	/* Adding zero keeps the value; it cannot overflow. */
	if (decimal_add(d, zero, &sum) != 0 || decimal_cmp(sum, d) != 0)
		abort();
	return 0;
}

/*
 * libFuzzer target: the input as CSV lines through tick_parse_line(), twice:
 * after a fixed header naming every column, so that the fuzzer works on rows
 * from the first byte, and then with the input's own first line as the
 * header, so that header parsing and odd column sets are explored too.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tick_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char header[] =
	        "ts,symbol,bid,ask,bid_size,ask_size,last,last_size,volume";
	struct tick_parser p;

	tick_parser_init(&p, TICK_FORMAT_CSV);
	parse_one(&p, header, strlen(header));
	parse_lines(&p, data, size);

	tick_parser_init(&p, TICK_FORMAT_CSV);
	parse_lines(&p, data, size);
	return 0;
}

/*
 * libFuzzer target: the input as JSONL lines through tick_parse_line(), once
 * with the format given and once left for the parser to detect.
 */
#include <stddef.h>
#include <stdint.h>

#include "tick_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tick_parser p;

	tick_parser_init(&p, TICK_FORMAT_JSONL);
	parse_lines(&p, data, size);
	tick_parser_init(&p, TICK_FORMAT_UNKNOWN);
	parse_lines(&p, data, size);
	return 0;
}

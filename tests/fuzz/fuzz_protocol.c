/*
 * libFuzzer target: one inbound WebSocket message through protocol_parse(),
 * and the same bytes through time_parse() (query strings and the
 * command line feed it text of any shape).
 *
 * A parse that succeeds must hand back a request whose arrays are as long as
 * their counts say (request_free() and the loops below touch every entry
 * under ASan) and whose symbols are valid; a parse that fails must name an
 * error code.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "time_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_request(const struct request *req)
{
	size_t i;

	for (i = 0; i < req->symbol_count; i++) {
		size_t n = strnlen(req->symbols[i], TICK_SYMBOL_MAX + 1);

		if (n > TICK_SYMBOL_MAX)
			abort();
		if (!(n == 1 && req->symbols[i][0] == '*') &&
		    !tick_symbol_valid(req->symbols[i], n))
			abort();
	}
	for (i = 0; i < req->resume_count; i++) {
		uint64_t seq;

		if (!request_resume_seq(req, req->resume[i].symbol, &seq) ||
		    seq != req->resume[i].seq)
			abort();
	}
	if (strnlen(req->id, PROTOCOL_ID_MAX + 1) > PROTOCOL_ID_MAX)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Small limits reach the "too many" paths with small inputs. */
	const struct protocol_limits limits = {.max_symbols = 8,
	                                       .max_history_limit = 100};
	struct protocol_error err;
	struct request req;
	int64_t us;

	memset(&req, 0, sizeof req);
	if (protocol_parse((const char *)data, size, &limits, &req, &err) ==
	    0) {
		check_request(&req);
		request_free(&req);
	} else if (!err.code || !err.code[0]) {
		abort();
	}
	(void)time_parse((const char *)data, size, &us);
	return 0;
}

/*
 * time_parse: a time written as text, read into microseconds since the
 * epoch (UTC).
 *
 * One syntax for every time a person or a file gives the server: the
 * "from"/"to"/"ts" of protocol requests (protocol.c), the from=/to= of
 * the HTTP API (http_query.c), the --from/--to of the command line
 * (cli.c) and the ts of a tick file (tick_file_read.c). This module owns
 * that syntax and nothing else; the callers say in their own words what a
 * refused time should have looked like.
 *
 * Pure arithmetic: no time zone, no locale, no lock, no allocation, so it
 * is safe on any thread.
 */
#ifndef PUBLISHER_TIME_PARSE_H
#define PUBLISHER_TIME_PARSE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Read s[0..len) (no NUL needed) as one of:
 *
 *   integer microseconds since the epoch, optionally negative (before
 *   1970): "1709303400123456", "-5"; no '+', no spaces, no fraction;
 *
 *   ISO 8601 / RFC 3339: YYYY-MM-DD[(T|t| )HH:MM[:SS[(.|,)FRACTION]][ZONE]]
 *   with ZONE Z, z, +HH:MM, -HH:MM, +HHMM or +HH and none meaning UTC; a
 *   fraction of up to 6 digits is exact, 7 to 9 are cut to microseconds,
 *   more are refused rather than guessed at. Years 0000 to 9999.
 *
 * An ISO time is told from an integer by the '-' after its first four
 * characters. Returns 0 and sets *us, or -1 (for NULL s or us, an empty
 * text, anything else, or an integer outside int64) with *us untouched.
 */
int
time_parse(const char *s, size_t len, int64_t *us);

#endif

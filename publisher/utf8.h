/*
 * utf8: whether bytes are UTF-8 as RFC 3629 defines it: no overlong forms,
 * no surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
 *
 * A WebSocket text message and the reason in a close frame must be UTF-8
 * (RFC 6455, 8.1). A message arrives in pieces that may cut a character
 * in two, so the check carries its state from one piece to the next and
 * says no at the first byte that no valid text could continue with.
 *
 * What it owns: nothing; the check's state is the caller's struct
 * utf8_check. Pure: no allocation, no global state.
 *
 * Who calls it: ws.c, for each piece of an inbound text message and for a
 * close frame's reason, on the loop's thread.
 */
#ifndef PUBLISHER_UTF8_H
#define PUBLISHER_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The state between pieces; utf8_check_init() or zeroing starts it. */
struct utf8_check {
	uint8_t need;   /* continuation bytes the character still needs */
	uint8_t lo, hi; /* the range the next one must fall in */
};

void
utf8_check_init(struct utf8_check *u);

/* Take the next piece, buf[0..len). Returns 0 while the bytes so far can
 * begin valid UTF-8, -1 from the first byte that cannot (the state is then
 * spent: init it again for another text). */
int
utf8_check_feed(struct utf8_check *u, const void *buf, size_t len);

/* True when the bytes taken so far end on a character boundary: the text
 * is whole. */
bool
utf8_check_complete(const struct utf8_check *u);

/* The whole text at once: true when buf[0..len) is UTF-8. */
bool
utf8_valid(const void *buf, size_t len);

#endif

/*
 * utf8: the well-formed byte sequences of the Unicode standard's table 3-7,
 * one byte at a time (see utf8.h).
 *
 * A lead byte says how many continuation bytes follow and, for a few lead
 * bytes, narrows the range of the first of them: that narrowing is what
 * refuses overlong forms (E0 80..9F, F0 80..8F), surrogates (ED A0..BF)
 * and code points above U+10FFFF (F4 90..BF). Every other continuation
 * byte is 80..BF.
 */
#include "utf8.h"

void
utf8_check_init(struct utf8_check *u)
{
	u->need = 0;
	u->lo = 0x80;
	u->hi = 0xbf;
}

/* A lead byte: how many continuation bytes follow (0 for ASCII), and the
 * range of the first; -1 for a byte that never starts a character. */
static int
lead(unsigned char c, uint8_t *lo, uint8_t *hi)
{
	*lo = 0x80;
	*hi = 0xbf;
	if (c < 0x80)
		return 0;
	if (c < 0xc2) /* continuation bytes; C0, C1 only make overlongs */
		return -1;
	if (c < 0xe0)
		return 1;
	if (c < 0xf0) {
		if (c == 0xe0)
			*lo = 0xa0;
		else if (c == 0xed)
			*hi = 0x9f;
		return 2;
	}
	if (c < 0xf5) {
		if (c == 0xf0)
			*lo = 0x90;
		else if (c == 0xf4)
			*hi = 0x8f;
		return 3;
	}
	return -1;
}

int
utf8_check_feed(struct utf8_check *u, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = p[i];
		int n;

		if (u->need) {
			if (c < u->lo || c > u->hi)
				return -1;
			u->need--;
			u->lo = 0x80;
			u->hi = 0xbf;
			continue;
		}
		n = lead(c, &u->lo, &u->hi);
		if (n < 0)
			return -1;
		u->need = (uint8_t)n;
	}
	return 0;
}

bool
utf8_check_complete(const struct utf8_check *u)
{
	return u->need == 0;
}

bool
utf8_valid(const void *buf, size_t len)
{
	struct utf8_check u;

	utf8_check_init(&u);
	return utf8_check_feed(&u, buf, len) == 0 && utf8_check_complete(&u);
}

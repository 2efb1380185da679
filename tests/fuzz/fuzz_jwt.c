/*
 * libFuzzer target: auth_verify() on any bytes with a fixed secret, at a
 * fixed time. Random bytes almost never carry a valid HMAC, so the
 * signature is also checked the other way round: the input's own
 * header.payload is signed with the secret (when the input has that shape)
 * and verified, which takes the fuzzer past the signature into the claims
 * parser. Accepted claims must be self-consistent.
 *
 * The same bytes, as a NUL-terminated header value, also go through
 * auth_find_cookie() and auth_bearer(): they read request headers, which are
 * as hostile as the token.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"

#define SECRET "fuzz-secret-0123456789abcdef0123456789"
#define NOW_US (1700000000LL * 1000000LL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct auth *fuzz_auth;

static void
b64url(const unsigned char *src, size_t len, char *dst)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr"
	                          "stuvwxyz0123456789-_";
	size_t i, n = 0;
	uint32_t v;

	for (i = 0; i + 2 < len; i += 3) {
		v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 |
		    src[i + 2];
		dst[n++] = abc[v >> 18 & 63];
		dst[n++] = abc[v >> 12 & 63];
		dst[n++] = abc[v >> 6 & 63];
		dst[n++] = abc[v & 63];
	}
	if (len - i == 1) {
		v = (uint32_t)src[i] << 16;
		dst[n++] = abc[v >> 18 & 63];
		dst[n++] = abc[v >> 12 & 63];
	} else if (len - i == 2) {
		v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
		dst[n++] = abc[v >> 18 & 63];
		dst[n++] = abc[v >> 12 & 63];
		dst[n++] = abc[v >> 6 & 63];
	}
	dst[n] = '\0';
}

static void
check_claims(const struct auth_claims *c)
{
	size_t i;

	if (c->exact_count > c->pattern_count ||
	    c->pattern_count > AUTH_MAX_PATTERNS)
		abort();
	if (strnlen(c->sub, AUTH_SUB_MAX + 1) > AUTH_SUB_MAX)
		abort();
	if (auth_claims_expired(c, NOW_US))
		abort(); /* verify would have refused it */
	for (i = 0; i < c->pattern_count; i++) {
		const char *p = c->patterns[i];
		size_t n = strnlen(p, AUTH_PATTERN_MAX + 1);

		if (n == 0 || n > AUTH_PATTERN_MAX)
			abort();
		/* Every exact pattern entitles its own symbol. */
		if (i < c->exact_count && !auth_claims_allow(c, p))
			abort();
		/* And a prefix pattern the bare prefix, when that is a
		 * symbol ("*" aside). */
		if (i >= c->exact_count && n > 1) {
			char sym[AUTH_PATTERN_MAX + 1];

			memcpy(sym, p, n - 1);
			sym[n - 1] = '\0';
			if (!auth_claims_allow(c, sym))
				abort();
		}
	}
}

static void
verify(const char *token, size_t len)
{
	struct auth_claims c;
	char why[256];
	char *copy = malloc(len ? len : 1);

	if (!copy)
		return;
	/* An exact-size copy: any read past len shows up under ASan. */
	memcpy(copy, token, len);
	if (auth_verify(fuzz_auth, copy, len, NOW_US, &c, why, sizeof why) ==
	    0) {
		check_claims(&c);
		auth_claims_free(&c);
	} else if (why[0] == '\0') {
		abort(); /* a refusal always says why */
	}
	free(copy);
}

/* Input "H.P" (raw JSON text each, split at the first '.' that follows a
 * '}'): encode both, sign, and verify. */
static void
verify_signed(const uint8_t *data, size_t size)
{
	const uint8_t *mid = NULL;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned mac_len = 0;
	size_t i, hl, pl, n;
	char *t;

	for (i = 0; i + 1 < size; i++)
		if (data[i] == '}' && data[i + 1] == '.') {
			mid = data + i + 1;
			break;
		}
	if (!mid || size > AUTH_TOKEN_MAX)
		return;
	hl = (size_t)(mid - data);
	pl = size - hl - 1;
	t = malloc((hl + pl) / 3 * 4 + 8 + 2 + 64);
	if (!t)
		return;
	b64url(data, hl, t);
	n = strlen(t);
	t[n++] = '.';
	b64url(mid + 1, pl, t + n);
	n = strlen(t);
	if (HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET),
	         (const unsigned char *)t, n, mac, &mac_len)) {
		t[n++] = '.';
		b64url(mac, mac_len, t + n);
		n = strlen(t);
		verify(t, n);
	}
	free(t);
}

/* What comes back must lie inside the header and hold no separator. */
static void
header_helpers(const uint8_t *data, size_t size)
{
	char *h = malloc(size + 1);
	const char *v;
	size_t len = 0, n;

	if (!h)
		return;
	memcpy(h, data, size);
	h[size] = '\0';
	n = strlen(h);
	v = auth_find_cookie(h, "token", &len);
	if (v && (v < h || len == 0 || (size_t)(v - h) + len > n ||
	          memchr(v, ';', len)))
		abort();
	v = auth_bearer(h, &len);
	if (v && (v < h || len == 0 || (size_t)(v - h) + len > n ||
	          memchr(v, ' ', len) || memchr(v, '\t', len)))
		abort();
	free(h);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fuzz_auth) {
		char err[128];

		fuzz_auth = auth_create_with_key(SECRET, strlen(SECRET), err,
		                                 sizeof err);
		if (!fuzz_auth)
			abort();
	}
	verify((const char *)data, size);
	verify_signed(data, size);
	header_helpers(data, size);
	return 0;
}

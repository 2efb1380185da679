/*
 * Unit tests for publisher/auth.c: HS256 JWT verification, the strict
 * base64url decoder, entitlement patterns, the secret file, and the Cookie
 * and Authorization header helpers.
 *
 * Most tokens are built here from a header and a payload in JSON and signed
 * with OpenSSL's HMAC, so each test states the exact bytes it sends. One
 * token was made by tests/tools/mint_jwt.py (and checked against
 * `openssl dgst -sha256 -hmac`) so that the minting tool and the verifier
 * are known to agree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "log.h"

#define SECRET "publisher-unit-test-secret-0123456789abcdef"
#define NOW_S  1700000000LL /* 2023-11-14T22:13:20Z */
#define NOW_US (NOW_S * 1000000LL)
#define WHY    256

/* Made with: tests/tools/mint_jwt.py --secret-file F --sub alice
 * --now 1700000000 --exp-in 2402444800 --symbols 'AAPL,MSFT,FX:*'
 * where F holds SECRET and a newline. */
static const char python_token[] =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMCwic3ltYm9scyI6WyJBQVBMIiwi"
        "TVNGVCIsIkZYOioiXX0.f25lgBgyF0KNGDX-7ZvV8JjhzyPWFAlXF8yIhAmPf40";

static const char hs256_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* ----------------------------------------------------------------- helpers */

static size_t
b64url_encode(const unsigned char *src, size_t len, char *dst)
{
	static const char abc[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	        "0123456789-_";
	size_t i, n = 0;

	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)src[i] << 16 |
		             (uint32_t)src[i + 1] << 8 | src[i + 2];

		dst[n++] = abc[v >> 18 & 63];
		dst[n++] = abc[v >> 12 & 63];
		dst[n++] = abc[v >> 6 & 63];
		dst[n++] = abc[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)src[i] << 16;

		dst[n++] = abc[v >> 18 & 63];
		dst[n++] = abc[v >> 12 & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;

		dst[n++] = abc[v >> 18 & 63];
		dst[n++] = abc[v >> 12 & 63];
		dst[n++] = abc[v >> 6 & 63];
	}
	dst[n] = '\0';
	return n;
}

/*
 * header.payload.signature with the signature made by md over the first two
 * parts with key SECRET (md NULL: no signature, as alg "none" does).
 * flip_bit >= 0 flips that bit of the raw signature. Caller frees.
 */
static char *
make_token_md(const char *header, const char *payload, const EVP_MD *md,
              int flip_bit)
{
	size_t hl = strlen(header), pl = strlen(payload);
	char *t = malloc((hl + pl) * 2 + 200);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned mac_len = 0;
	size_t n;

	assert_non_null(t);
	n = b64url_encode((const unsigned char *)header, hl, t);
	t[n++] = '.';
	n += b64url_encode((const unsigned char *)payload, pl, t + n);
	if (md) {
		assert_non_null(HMAC(md, SECRET, (int)strlen(SECRET),
		                     (const unsigned char *)t, n, mac,
		                     &mac_len));
		if (flip_bit >= 0)
			mac[flip_bit / 8] ^=
			        (unsigned char)(1u << flip_bit % 8);
	}
	t[n++] = '.';
	b64url_encode(mac, mac_len, t + n);
	return t;
}

static char *
make_token(const char *header, const char *payload)
{
	return make_token_md(header, payload, EVP_sha256(), -1);
}

static struct auth *
test_auth(void)
{
	char err[256];
	struct auth *a =
	        auth_create_with_key(SECRET, strlen(SECRET), err, sizeof err);

	if (!a)
		print_error("auth_create_with_key: %s\n", err);
	assert_non_null(a);
	return a;
}

/* token must verify at now_us; *c is filled (caller frees). */
static void
verify_ok_at(const char *token, int64_t now_us, struct auth_claims *c)
{
	struct auth *a = test_auth();
	char why[WHY];
	int rc = auth_verify(a, token, strlen(token), now_us, c, why,
	                     sizeof why);

	if (rc != 0)
		print_error("token: %s\nwhy: %s\n", token, why);
	assert_int_equal(rc, 0);
	auth_destroy(a);
}

/* token must be refused at NOW with a reason containing want. */
static void
verify_bad(const char *token, size_t len, const char *want)
{
	struct auth *a = test_auth();
	struct auth_claims c;
	char why[WHY];
	int rc = auth_verify(a, token, len, NOW_US, &c, why, sizeof why);

	if (rc == 0 || !strstr(why, want))
		print_error("token: %.*s\nwhy: %s\nwanted: %s\n", (int)len,
		            token, why, want);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(why, want));
	/* A refused token leaves nothing behind to free. */
	assert_null(c.patterns);
	assert_int_equal(c.pattern_count, 0);
	auth_claims_free(&c);
	auth_destroy(a);
}

static void
verify_bad_str(const char *token, const char *want)
{
	verify_bad(token, strlen(token), want);
}

/* Sign header and payload properly, then expect the reason want. */
static void
signed_bad(const char *header, const char *payload, const char *want)
{
	char *t = make_token(header, payload);

	verify_bad_str(t, want);
	free(t);
}

/* A payload valid at NOW with the given symbols JSON (an array text). */
static void
payload_with(char *buf, size_t len, const char *symbols_json)
{
	snprintf(buf, len, "{\"sub\":\"bob\",\"exp\":%lld,\"symbols\":%s}",
	         NOW_S + 3600, symbols_json);
}

/* Verify a token with these symbols; return the claims. */
static void
claims_for(const char *symbols_json, struct auth_claims *c)
{
	char payload[512];
	char *t;

	payload_with(payload, sizeof payload, symbols_json);
	t = make_token(hs256_header, payload);
	verify_ok_at(t, NOW_US, c);
	free(t);
}

/* ------------------------------------------------------------ valid tokens */

static void
test_valid_token(void **state)
{
	struct auth_claims c;
	char payload[256];
	char *t;

	snprintf(payload, sizeof payload,
	         "{\"sub\":\"alice\",\"exp\":%lld,\"iat\":%lld,"
	         "\"symbols\":[\"MSFT\",\"FX:*\",\"AAPL\",\"AAPL\"]}",
	         NOW_S + 600, NOW_S);
	t = make_token(hs256_header, payload);
	verify_ok_at(t, NOW_US, &c);
	assert_string_equal(c.sub, "alice");
	assert_int_equal(c.exp_us, (NOW_S + 600) * 1000000LL);
	assert_int_equal(c.nbf_us, 0);
	/* Exact symbols first, sorted and without the duplicate, then the
	 * prefixes. */
	assert_int_equal(c.pattern_count, 3);
	assert_int_equal(c.exact_count, 2);
	assert_string_equal(c.patterns[0], "AAPL");
	assert_string_equal(c.patterns[1], "MSFT");
	assert_string_equal(c.patterns[2], "FX:*");
	assert_false(c.allow_all);
	auth_claims_free(&c);
	assert_null(c.patterns);
	auth_claims_free(&c); /* twice is harmless */
	auth_claims_free(NULL);
	free(t);
}

static void
test_python_minted_token(void **state)
{
	struct auth_claims c;

	verify_ok_at(python_token, NOW_US, &c);
	assert_string_equal(c.sub, "alice");
	assert_int_equal(c.exp_us, 4102444800LL * 1000000LL);
	assert_true(auth_claims_allow(&c, "AAPL"));
	assert_true(auth_claims_allow(&c, "FX:EURUSD"));
	assert_false(auth_claims_allow(&c, "GOOG"));
	auth_claims_free(&c);
}

static void
test_no_typ_and_fractional_exp_accepted(void **state)
{
	struct auth_claims c;
	char payload[128];
	char *t;

	snprintf(payload, sizeof payload, "{\"exp\":%lld.5,\"symbols\":[]}",
	         NOW_S + 10);
	t = make_token("{\"alg\":\"HS256\"}", payload);
	verify_ok_at(t, NOW_US, &c);
	assert_int_equal(c.exp_us, (NOW_S + 10) * 1000000LL + 500000);
	assert_string_equal(c.sub, "");
	/* An empty list is a token that may connect and see nothing. */
	assert_int_equal(c.pattern_count, 0);
	assert_false(auth_claims_allow(&c, "AAPL"));
	auth_claims_free(&c);
	free(t);
}

/* Found by fuzz_jwt under UBSan: an empty "symbols" list left the pattern
 * array NULL and then computed NULL + 0, undefined behaviour in C (clang's
 * -fsanitize=undefined reports it; gcc's does not). The claims must come
 * back valid and empty, with or without other claims around. */
static void
test_empty_symbols_list(void **state)
{
	struct auth_claims c;
	char payload[128];
	char *t;

	snprintf(payload, sizeof payload,
	         "{\"sub\":\"bob\",\"exp\":%lld,\"nbf\":1690.5,"
	         "\"symbols\":[]}",
	         NOW_S + 60);
	t = make_token(hs256_header, payload);
	verify_ok_at(t, NOW_US, &c);
	assert_null(c.patterns);
	assert_int_equal(c.pattern_count, 0);
	assert_int_equal(c.exact_count, 0);
	assert_false(c.allow_all);
	assert_false(auth_claims_allow(&c, "AAPL"));
	assert_int_equal(c.nbf_us, 1690500000);
	auth_claims_free(&c);
	free(t);
}

/* ------------------------------------------------------------------- times */

static void
test_expired(void **state)
{
	struct auth_claims c;
	char payload[128];
	char *t;

	snprintf(payload, sizeof payload, "{\"exp\":%lld,\"symbols\":[\"*\"]}",
	         NOW_S - 31);
	signed_bad(hs256_header, payload, "expired");

	/* Within the 30 s leeway: still good, but only until the leeway is
	 * used up, by the same rule auth_claims_expired() applies. */
	snprintf(payload, sizeof payload, "{\"exp\":%lld,\"symbols\":[\"*\"]}",
	         NOW_S - 29);
	t = make_token(hs256_header, payload);
	verify_ok_at(t, NOW_US, &c);
	assert_false(auth_claims_expired(&c, NOW_US));
	assert_false(auth_claims_expired(&c, NOW_US + 999999));
	assert_true(auth_claims_expired(&c, NOW_US + 1000000));
	auth_claims_free(&c);
	free(t);
}

static void
test_nbf(void **state)
{
	struct auth_claims c;
	char payload[128];
	char *t;

	snprintf(payload, sizeof payload,
	         "{\"exp\":%lld,\"nbf\":%lld,\"symbols\":[\"*\"]}",
	         NOW_S + 3600, NOW_S + 60);
	signed_bad(hs256_header, payload, "not valid for another 60 s");

	snprintf(payload, sizeof payload,
	         "{\"exp\":%lld,\"nbf\":%lld,\"symbols\":[\"*\"]}",
	         NOW_S + 3600, NOW_S + 20);
	t = make_token(hs256_header, payload);
	verify_ok_at(t, NOW_US, &c);
	assert_int_equal(c.nbf_us, (NOW_S + 20) * 1000000LL);
	auth_claims_free(&c);
	free(t);

	snprintf(payload, sizeof payload,
	         "{\"exp\":%lld,\"nbf\":\"soon\",\"symbols\":[\"*\"]}",
	         NOW_S + 3600);
	signed_bad(hs256_header, payload, "claim nbf is not a time");
}

static void
test_missing_or_invalid_exp(void **state)
{
	signed_bad(hs256_header, "{\"symbols\":[\"*\"]}",
	           "claim exp is missing");
	signed_bad(hs256_header, "{\"exp\":\"2100-01-01\",\"symbols\":[\"*\"]}",
	           "claim exp is not a time");
	signed_bad(hs256_header, "{\"exp\":null,\"symbols\":[\"*\"]}",
	           "claim exp is not a time");
	signed_bad(hs256_header, "{\"exp\":true,\"symbols\":[\"*\"]}",
	           "claim exp is not a time");
	signed_bad(hs256_header, "{\"exp\":-1,\"symbols\":[\"*\"]}",
	           "claim exp is not a time");
	/* Past year 9999 the value in µs would come close to overflowing. */
	signed_bad(hs256_header,
	           "{\"exp\":9000000000000000000,\"symbols\":[\"*\"]}",
	           "claim exp is not a time");
	signed_bad(hs256_header, "{\"exp\":1e300,\"symbols\":[\"*\"]}",
	           "claim exp is not a time");
}

/* --------------------------------------------------------------- signature */

static void
test_bad_signature_one_flipped_bit(void **state)
{
	char payload[128];
	int bit;

	snprintf(payload, sizeof payload, "{\"exp\":%lld,\"symbols\":[\"*\"]}",
	         NOW_S + 3600);
	/* Every single-bit change anywhere in the MAC is caught. */
	for (bit = 0; bit < 256; bit++) {
		char *t =
		        make_token_md(hs256_header, payload, EVP_sha256(), bit);

		verify_bad_str(t, "bad signature");
		free(t);
	}
}

static void
test_bad_signature_changed_payload(void **state)
{
	char payload[128];
	char *t;
	char *p;

	snprintf(payload, sizeof payload, "{\"exp\":%lld,\"symbols\":[\"A\"]}",
	         NOW_S + 3600);
	t = make_token(hs256_header, payload);
	/* Any change to the signed text, here one bit of one character of
	 * the payload, is caught before the payload is even decoded. */
	p = strchr(t, '.') + 1;
	p[5] ^= 1;
	verify_bad_str(t, "bad signature");
	free(t);
}

static void
test_wrong_key(void **state)
{
	static const char other[] = "another-secret-of-at-least-32-bytes!!";
	struct auth_claims c;
	char err[128], why[WHY];
	struct auth *a =
	        auth_create_with_key(other, strlen(other), err, sizeof err);

	assert_non_null(a);
	assert_int_equal(auth_verify(a, python_token, strlen(python_token),
	                             NOW_US, &c, why, sizeof why),
	                 -1);
	assert_string_equal(why, "bad signature");
	auth_destroy(a);
}

/* -------------------------------------------------------------------- alg */

static void
test_alg_none(void **state)
{
	char payload[128];
	char *t;

	snprintf(payload, sizeof payload, "{\"exp\":%lld,\"symbols\":[\"*\"]}",
	         NOW_S + 3600);
	/* The classic forgery: no signature at all. */
	t = make_token_md("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, NULL,
	                  -1);
	assert_int_equal(t[strlen(t) - 1], '.');
	verify_bad_str(t, "alg 'none' is refused");
	free(t);
	/* alg none with a signature that is right for the key: still refused,
	 * the header alone decides. */
	signed_bad("{\"alg\":\"none\"}", payload, "alg 'none' is refused");
	signed_bad("{\"alg\":\"None\"}", payload, "alg 'None' is refused");
}

static void
test_alg_other(void **state)
{
	char payload[128];
	char *t;

	snprintf(payload, sizeof payload, "{\"exp\":%lld,\"symbols\":[\"*\"]}",
	         NOW_S + 3600);
	/* A real HS512 token with our key. */
	t = make_token_md("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", payload,
	                  EVP_sha512(), -1);
	verify_bad_str(t, "alg 'HS512' is refused");
	free(t);
	/* HS256 signature under a header claiming something else. */
	signed_bad("{\"alg\":\"RS256\"}", payload, "alg 'RS256' is refused");
	signed_bad("{\"alg\":\"hs256\"}", payload, "alg 'hs256' is refused");
	signed_bad("{\"alg\":\"HS256 \"}", payload, "alg 'HS256 ' is refused");
	signed_bad("{\"typ\":\"JWT\"}", payload, "header has no alg");
	signed_bad("{\"alg\":256}", payload, "alg is not a string");
	signed_bad("{\"alg\":null}", payload, "alg is not a string");
	/* A log line cannot be forged through the alg. */
	signed_bad("{\"alg\":\"x\\nERROR y\"}", payload, "alg 'x?ERROR y'");
	/* Duplicate names: which one wins differs between parsers. */
	signed_bad("{\"alg\":\"none\",\"alg\":\"HS256\"}", payload,
	           "header is not a JSON object");
	signed_bad("{\"alg\":\"HS256\",\"typ\":\"JWS\"}", payload,
	           "header typ is not \"JWT\"");
	signed_bad("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", payload,
	           "header has crit");
}

/* --------------------------------------------------------------- structure */

static void
test_malformed_structure(void **state)
{
	char payload[128];
	char *t, *u;
	size_t n;

	verify_bad("", 0, "empty token");
	verify_bad_str("abc", "three parts");
	verify_bad_str("a.b", "three parts");
	verify_bad_str("a.b.c.d", "three parts");
	verify_bad_str("..", "header is not a JSON object");

	snprintf(payload, sizeof payload, "{\"exp\":%lld,\"symbols\":[\"*\"]}",
	         NOW_S + 3600);
	t = make_token(hs256_header, payload);
	n = strlen(t);
	u = malloc(n + 3);
	assert_non_null(u);
	/* A fourth part after a valid token. */
	memcpy(u, t, n);
	memcpy(u + n, ".x", 3);
	verify_bad_str(u, "three parts");
	/* The length bounds the token: a NUL or more text after len is not
	 * read, and a token cut short is refused. */
	memcpy(u, t, n);
	u[n] = 'A';
	{
		struct auth_claims c;
		struct auth *a = test_auth();
		char why[WHY];

		assert_int_equal(
		        auth_verify(a, u, n, NOW_US, &c, why, sizeof why), 0);
		auth_claims_free(&c);
		assert_int_equal(
		        auth_verify(a, u, n + 1, NOW_US, &c, why, sizeof why),
		        -1);
		assert_int_equal(
		        auth_verify(a, u, n - 1, NOW_US, &c, why, sizeof why),
		        -1);
		auth_destroy(a);
	}
	free(u);
	free(t);

	signed_bad("[\"alg\",\"HS256\"]", payload,
	           "header is not a JSON object");
	signed_bad("{\"alg\":\"HS256\"", payload,
	           "header is not a JSON object");
	signed_bad(hs256_header, "[1,2]", "payload is not a JSON object");
	signed_bad(hs256_header, "exp=1", "payload is not a JSON object");
	signed_bad(hs256_header,
	           "{\"exp\":1,\"exp\":99999999999,\"symbols\":[\"*\"]}",
	           "payload is not a JSON object");
}

static void
test_base64_strictness(void **state)
{
	char payload[128];
	char *t, *u;
	size_t n;
	char *sig;

	/* "{}" padded: "e30=". */
	verify_bad_str("e30=.e30.AAAA", "header is not unpadded base64url");
	/* Standard-alphabet characters and others. */
	verify_bad_str("e3+9.e30.AAAA", "header is not unpadded base64url");
	verify_bad_str("e3/9.e30.AAAA", "header is not unpadded base64url");
	verify_bad_str("e3 0.e30.AAAA", "header is not unpadded base64url");
	verify_bad_str("e30!.e30.AAAA", "header is not unpadded base64url");
	/* One character left over cannot encode a byte. */
	verify_bad_str("e30AA.e30.AAAA", "header is not unpadded base64url");
	/* "e31" decodes to "{}" too, with stray bits set: not canonical. */
	verify_bad_str("e31.e30.AAAA", "header is not unpadded base64url");

	snprintf(payload, sizeof payload, "{\"exp\":%lld,\"symbols\":[\"*\"]}",
	         NOW_S + 3600);
	t = make_token(hs256_header, payload);
	n = strlen(t);
	sig = strrchr(t, '.') + 1;
	assert_int_equal(strlen(sig), 43);

	u = malloc(n + 2);
	assert_non_null(u);
	/* The signature with padding. */
	memcpy(u, t, n);
	memcpy(u + n, "=", 2);
	verify_bad_str(u, "bad signature");
	/* 43 characters carry 258 bits: the last two must be zero. */
	memcpy(u, t, n + 1);
	u[n - 1] = (char)(u[n - 1] == 'A' ? 'B' : u[n - 1] ^ 1);
	verify_bad_str(u, "bad signature");
	/* A truncated signature. */
	memcpy(u, t, n + 1);
	u[n - 4] = '\0';
	verify_bad_str(u, "bad signature");
	free(u);

	/* A payload that is not base64url under a valid signature cannot
	 * exist (the signature covers the text), so the payload decoder is
	 * reached only with text whose MAC is right: covered by fuzzing. */
	free(t);
}

static void
test_oversized_token(void **state)
{
	char *big = malloc(AUTH_TOKEN_MAX + 2);
	char symbols[AUTH_TOKEN_MAX];
	struct auth_claims c;
	char *payload, *t;
	size_t n = 0;
	int i;

	assert_non_null(big);
	memset(big, 'A', AUTH_TOKEN_MAX + 1);
	big[AUTH_TOKEN_MAX + 1] = '\0';
	verify_bad_str(big, "token is 8193 bytes; the limit is 8192");
	free(big);

	/* A large but legal token: 500 symbols, about 5.4 KB of text. */
	n += (size_t)snprintf(symbols + n, sizeof symbols - n, "[");
	for (i = 0; i < 500; i++)
		n += (size_t)snprintf(symbols + n, sizeof symbols - n,
		                      "%s\"S%04d\"", i ? "," : "", i);
	snprintf(symbols + n, sizeof symbols - n, "]");
	payload = malloc(sizeof symbols + 64);
	assert_non_null(payload);
	payload_with(payload, sizeof symbols + 64, symbols);
	t = make_token(hs256_header, payload);
	assert_true(strlen(t) > 4096 && strlen(t) <= AUTH_TOKEN_MAX);
	verify_ok_at(t, NOW_US, &c);
	assert_int_equal(c.pattern_count, 500);
	assert_true(auth_claims_allow(&c, "S0499"));
	assert_false(auth_claims_allow(&c, "S0500"));
	auth_claims_free(&c);
	free(t);
	free(payload);
}

/* ----------------------------------------------------------------- symbols */

static void
test_symbols_claim_checked(void **state)
{
	char payload[256];

	snprintf(payload, sizeof payload, "{\"exp\":%lld}", NOW_S + 60);
	signed_bad(hs256_header, payload, "claim symbols is missing");
	snprintf(payload, sizeof payload, "{\"exp\":%lld,\"symbols\":\"*\"}",
	         NOW_S + 60);
	signed_bad(hs256_header, payload, "claim symbols is not an array");
	snprintf(payload, sizeof payload,
	         "{\"exp\":%lld,\"symbols\":[\"A\",1]}", NOW_S + 60);
	signed_bad(hs256_header, payload, "symbols[1] is not a string");

#define BAD_PATTERN(json, want)                                                \
	do {                                                                   \
		payload_with(payload, sizeof payload, json);                   \
		signed_bad(hs256_header, payload, want);                       \
	} while (0)
	BAD_PATTERN("[\"FX*\"]", "symbols[0] 'FX*' is not a symbol");
	BAD_PATTERN("[\"AAPL\",\"A*B\"]", "symbols[1] 'A*B'");
	BAD_PATTERN("[\"**\"]", "symbols[0] '**'");
	BAD_PATTERN("[\"FX:**\"]", "symbols[0] 'FX:**'");
	BAD_PATTERN("[\"*FX\"]", "symbols[0] '*FX'");
	BAD_PATTERN("[\"\"]", "symbols[0] ''");
	BAD_PATTERN("[\"A B\"]", "symbols[0] 'A B'");
	BAD_PATTERN("[\"AAPL\\u00e9\"]", "symbols[0] 'AAPL?"
	                                 "?'");
	/* 33 characters: one more than a symbol may have. */
	BAD_PATTERN("[\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\"]", "symbols[0]");
#undef BAD_PATTERN
}

static void
test_too_many_patterns(void **state)
{
	/* 1001 one-letter patterns: 4 bytes each in JSON, about 5.4 KB of
	 * base64url, so the token is under its own limit and the limit on
	 * patterns is what trips. */
	size_t cap = 16 + 4 * (AUTH_MAX_PATTERNS + 1) + 64;
	char *payload = malloc(cap), *t;
	struct auth_claims c;
	size_t n;
	int i;

	assert_non_null(payload);
	n = (size_t)snprintf(payload, cap, "{\"exp\":%lld,\"symbols\":[",
	                     NOW_S + 60);
	for (i = 0; i < AUTH_MAX_PATTERNS; i++)
		n += (size_t)snprintf(payload + n, cap - n, "%s\"A\"",
		                      i ? "," : "");
	snprintf(payload + n, cap - n, "]}");
	/* Exactly the limit is fine; duplicates fold into one pattern. */
	t = make_token(hs256_header, payload);
	verify_ok_at(t, NOW_US, &c);
	assert_int_equal(c.pattern_count, 1);
	auth_claims_free(&c);
	free(t);

	snprintf(payload + n, cap - n, ",\"A\"]}");
	t = make_token(hs256_header, payload);
	verify_bad_str(t, "claim symbols has 1001 patterns; the limit is 1000");
	free(t);
	free(payload);
}

static void
test_pattern_matching(void **state)
{
	struct auth_claims c;

	claims_for("[\"AAPL\",\"FX:*\",\"BRK.*\",\"msft\"]", &c);
	/* exact */
	assert_true(auth_claims_allow(&c, "AAPL"));
	assert_false(auth_claims_allow(&c, "AAPL2"));
	assert_false(auth_claims_allow(&c, "AAP"));
	assert_false(auth_claims_allow(&c, "aapl")); /* case matters */
	assert_true(auth_claims_allow(&c, "msft"));
	assert_false(auth_claims_allow(&c, "MSFT"));
	/* prefix */
	assert_true(auth_claims_allow(&c, "FX:EURUSD"));
	assert_true(auth_claims_allow(&c, "FX:")); /* the bare prefix */
	assert_false(auth_claims_allow(&c, "FX"));
	assert_false(auth_claims_allow(&c, "FXE"));
	assert_false(auth_claims_allow(&c, "XFX:EURUSD"));
	assert_true(auth_claims_allow(&c, "BRK.A"));
	assert_false(auth_claims_allow(&c, "BRK"));
	/* A string that is not a symbol is never allowed. */
	assert_false(auth_claims_allow(&c, ""));
	assert_false(auth_claims_allow(&c, "FX:EUR USD"));
	assert_false(
	        auth_claims_allow(&c, "FX:ABCDEFGHIJKLMNOPQRSTUVWXYZ0123"));
	assert_false(auth_claims_allow(&c, NULL));
	assert_false(auth_claims_allow(NULL, "AAPL"));
	assert_false(c.allow_all);
	auth_claims_free(&c);

	claims_for("[\"AAPL\",\"*\"]", &c);
	assert_true(c.allow_all);
	assert_true(auth_claims_allow(&c, "AAPL"));
	assert_true(auth_claims_allow(&c, "ZZZ"));
	assert_true(auth_claims_allow(&c, "FX:EURUSD"));
	assert_false(auth_claims_allow(&c, "not a symbol"));
	auth_claims_free(&c);

	/* A 32-character prefix is legal and matches itself only. */
	claims_for("[\"ABCDEFGHIJKLMNOPQRSTUVWXYZ01234:*\"]", &c);
	assert_true(auth_claims_allow(&c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ01234:"));
	assert_false(auth_claims_allow(&c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ01234"));
	auth_claims_free(&c);
}

static void
test_many_exact_symbols_binary_search(void **state)
{
	char symbols[2048];
	struct auth_claims c;
	char sym[16];
	size_t n = 0;
	int i;

	/* Given in reverse order, with prefixes mixed in. */
	n += (size_t)snprintf(symbols, sizeof symbols, "[\"Z:*\"");
	for (i = 99; i >= 0; i--)
		n += (size_t)snprintf(symbols + n, sizeof symbols - n,
		                      ",\"S%02d\"", i);
	snprintf(symbols + n, sizeof symbols - n, ",\"A-*\"]");
	{
		char payload[2200];
		char *t;

		payload_with(payload, sizeof payload, symbols);
		t = make_token(hs256_header, payload);
		verify_ok_at(t, NOW_US, &c);
		free(t);
	}
	assert_int_equal(c.exact_count, 100);
	assert_int_equal(c.pattern_count, 102);
	for (i = 0; i < 100; i++) {
		snprintf(sym, sizeof sym, "S%02d", i);
		assert_true(auth_claims_allow(&c, sym));
		assert_string_equal(c.patterns[i], sym);
	}
	assert_string_equal(c.patterns[100], "A-*");
	assert_string_equal(c.patterns[101], "Z:*");
	assert_false(auth_claims_allow(&c, "S100"));
	assert_true(auth_claims_allow(&c, "A-1"));
	assert_true(auth_claims_allow(&c, "Z:1"));
	auth_claims_free(&c);
}

static void
test_sub_checked(void **state)
{
	char payload[512];
	char longsub[AUTH_SUB_MAX + 2];

	snprintf(payload, sizeof payload,
	         "{\"sub\":42,\"exp\":%lld,\"symbols\":[]}", NOW_S + 60);
	signed_bad(hs256_header, payload, "claim sub is not a string");
	snprintf(payload, sizeof payload,
	         "{\"sub\":\"eve\\nERROR forged\",\"exp\":%lld,\"symbols\":[]}",
	         NOW_S + 60);
	signed_bad(hs256_header, payload, "claim sub has a control character");
	memset(longsub, 'x', sizeof longsub - 1);
	longsub[sizeof longsub - 1] = '\0';
	snprintf(payload, sizeof payload,
	         "{\"sub\":\"%s\",\"exp\":%lld,\"symbols\":[]}", longsub,
	         NOW_S + 60);
	signed_bad(hs256_header, payload, "claim sub is 128 bytes");
}

/* ------------------------------------------------------------------- admin */

/* A token with "admin" set to the JSON text value (NULL: no admin claim). */
static char *
admin_token(const char *value)
{
	char payload[256];

	if (value)
		snprintf(payload, sizeof payload,
		         "{\"sub\":\"ops\",\"exp\":%lld,\"symbols\":[],"
		         "\"admin\":%s}",
		         NOW_S + 60, value);
	else
		snprintf(payload, sizeof payload,
		         "{\"sub\":\"ops\",\"exp\":%lld,\"symbols\":[]}",
		         NOW_S + 60);
	return make_token(hs256_header, payload);
}

static void
test_admin_claim(void **state)
{
	static const char *const refused[] = {"\"true\"", "1",      "0",
	                                      "null",     "[true]", "{}"};
	struct auth_claims c;
	char *t;
	size_t i;

	t = admin_token(NULL);
	verify_ok_at(t, NOW_US, &c);
	assert_false(c.admin);
	auth_claims_free(&c);
	free(t);

	t = admin_token("false");
	verify_ok_at(t, NOW_US, &c);
	assert_false(c.admin);
	auth_claims_free(&c);
	free(t);

	t = admin_token("true");
	verify_ok_at(t, NOW_US, &c);
	assert_true(c.admin);
	/* Admin reads the server's figures; it grants no symbol. */
	assert_false(c.allow_all);
	assert_false(auth_claims_allow(&c, "AAPL"));
	auth_claims_free(&c);
	assert_false(c.admin);
	free(t);

	for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		t = admin_token(refused[i]);
		verify_bad_str(t, "claim admin is not true or false");
		free(t);
	}
}

/* ------------------------------------------------------------- secret file */

static char *
write_secret(const char *content, size_t len, mode_t mode)
{
	static char path[64];
	int fd;

	strcpy(path, "/tmp/test_auth_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void
test_secret_file(void **state)
{
	struct auth_claims c;
	char err[256], why[WHY];
	struct auth *a;
	char *path;

	/* One trailing newline is not part of the secret: the python token
	 * was minted from a file holding SECRET "\n". */
	path = write_secret(SECRET "\n", strlen(SECRET) + 1, 0600);
	a = auth_create(path, err, sizeof err);
	assert_non_null(a);
	assert_int_equal(auth_verify(a, python_token, strlen(python_token),
	                             NOW_US, &c, why, sizeof why),
	                 0);
	auth_claims_free(&c);
	auth_destroy(a);
	unlink(path);

	path = write_secret(SECRET "\r\n", strlen(SECRET) + 2, 0600);
	a = auth_create(path, err, sizeof err);
	assert_non_null(a);
	assert_int_equal(auth_verify(a, python_token, strlen(python_token),
	                             NOW_US, &c, why, sizeof why),
	                 0);
	auth_claims_free(&c);
	auth_destroy(a);
	unlink(path);

	/* Only one newline is trimmed: a second one is part of the key. */
	path = write_secret(SECRET "\n\n", strlen(SECRET) + 2, 0600);
	a = auth_create(path, err, sizeof err);
	assert_non_null(a);
	assert_int_equal(auth_verify(a, python_token, strlen(python_token),
	                             NOW_US, &c, why, sizeof why),
	                 -1);
	assert_string_equal(why, "bad signature");
	auth_destroy(a);
	unlink(path);

	/* Readable by everyone: accepted, with a warning in the log. */
	path = write_secret(SECRET, strlen(SECRET), 0644);
	a = auth_create(path, err, sizeof err);
	assert_non_null(a);
	auth_destroy(a);
	unlink(path);
	auth_destroy(NULL);
}

static void
test_secret_file_refused(void **state)
{
	struct auth *a;
	char err[256];
	char *path;

	path = write_secret("", 0, 0600);
	assert_null(auth_create(path, err, sizeof err));
	assert_non_null(strstr(err, "is empty"));
	unlink(path);

	path = write_secret("\n", 1, 0600);
	assert_null(auth_create(path, err, sizeof err));
	assert_non_null(strstr(err, "is empty"));
	unlink(path);

	path = write_secret("short-secret\n", 13, 0600);
	assert_null(auth_create(path, err, sizeof err));
	assert_non_null(strstr(err, "is 12 bytes; HS256 needs at least 32"));
	assert_non_null(strstr(err, path));
	unlink(path);

	{
		char *big = malloc(AUTH_SECRET_MAX + 10);

		assert_non_null(big);
		memset(big, 'k', AUTH_SECRET_MAX + 10);
		path = write_secret(big, AUTH_SECRET_MAX + 10, 0600);
		assert_null(auth_create(path, err, sizeof err));
		assert_non_null(strstr(err, "is over 4096 bytes"));
		unlink(path);
		/* Exactly the limit, with its newline, is fine. */
		big[AUTH_SECRET_MAX] = '\n';
		path = write_secret(big, AUTH_SECRET_MAX + 1, 0600);
		auth_destroy(auth_create(path, err, sizeof err));
		a = auth_create_with_key(big, AUTH_SECRET_MAX, err, sizeof err);
		assert_non_null(a);
		auth_destroy(a);
		unlink(path);
		free(big);
	}

	assert_null(auth_create("/nonexistent/secret.key", err, sizeof err));
	assert_non_null(strstr(err, "cannot open auth secret file "
	                            "'/nonexistent/secret.key'"));
	assert_null(auth_create("/tmp", err, sizeof err));
	assert_non_null(strstr(err, "not a regular file"));
	assert_null(auth_create(NULL, err, sizeof err));
	assert_null(auth_create_with_key("x", 1, err, sizeof err));
}

/* ---------------------------------------------------------- header helpers */

static void
cookie_is(const char *header, const char *name, const char *want)
{
	size_t len = 0;
	const char *v = auth_find_cookie(header, name, &len);

	if (!want) {
		assert_null(v);
		return;
	}
	assert_non_null(v);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(v, want, len);
}

static void
test_find_cookie(void **state)
{
	cookie_is("token=abc", "token", "abc");
	cookie_is("a=1; token=abc.def.ghi; b=2", "token", "abc.def.ghi");
	cookie_is("a=1;token=xyz", "token", "xyz");
	cookie_is("  token = xyz  ; a=1", "token", "xyz");
	cookie_is("token=\"quoted\"", "token", "quoted");
	cookie_is("token=\"\"", "token", NULL);
	/* Names must match whole and exactly. */
	cookie_is("xtoken=1; token2=2; Token=3", "token", NULL);
	cookie_is("xtoken=1; token=4", "token", "4");
	cookie_is("token=; token=second", "token", "second");
	cookie_is("token", "token", NULL);
	cookie_is("", "token", NULL);
	cookie_is(";;;", "token", NULL);
	cookie_is("a=b=c; token=d=e", "token", "d=e");
	cookie_is(NULL, "token", NULL);
	cookie_is("token=1", "", NULL);
}

static void
bearer_is(const char *header, const char *want)
{
	size_t len = 0;
	const char *v = auth_bearer(header, &len);

	if (!want) {
		assert_null(v);
		return;
	}
	assert_non_null(v);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(v, want, len);
}

static void
test_bearer(void **state)
{
	bearer_is("Bearer abc.def.ghi", "abc.def.ghi");
	bearer_is("bearer abc", "abc");
	bearer_is("BEARER  \tabc  ", "abc");
	bearer_is("  Bearer abc", "abc");
	bearer_is("Bearer", NULL);
	bearer_is("Bearer ", NULL);
	bearer_is("Bearerabc", NULL);
	bearer_is("Basic dXNlcjpwYXNz", NULL);
	bearer_is("Bearer abc def", NULL);
	bearer_is("", NULL);
	bearer_is(NULL, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_valid_token),
	        cmocka_unit_test(test_python_minted_token),
	        cmocka_unit_test(test_no_typ_and_fractional_exp_accepted),
	        cmocka_unit_test(test_empty_symbols_list),
	        cmocka_unit_test(test_expired),
	        cmocka_unit_test(test_nbf),
	        cmocka_unit_test(test_missing_or_invalid_exp),
	        cmocka_unit_test(test_bad_signature_one_flipped_bit),
	        cmocka_unit_test(test_bad_signature_changed_payload),
	        cmocka_unit_test(test_wrong_key),
	        cmocka_unit_test(test_alg_none),
	        cmocka_unit_test(test_alg_other),
	        cmocka_unit_test(test_malformed_structure),
	        cmocka_unit_test(test_base64_strictness),
	        cmocka_unit_test(test_oversized_token),
	        cmocka_unit_test(test_symbols_claim_checked),
	        cmocka_unit_test(test_too_many_patterns),
	        cmocka_unit_test(test_pattern_matching),
	        cmocka_unit_test(test_many_exact_symbols_binary_search),
	        cmocka_unit_test(test_sub_checked),
	        cmocka_unit_test(test_admin_claim),
	        cmocka_unit_test(test_secret_file),
	        cmocka_unit_test(test_secret_file_refused),
	        cmocka_unit_test(test_find_cookie),
	        cmocka_unit_test(test_bearer),
	};

	/* The world-readable secret test logs a warning on purpose. */
	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

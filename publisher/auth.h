/*
 * auth: HS256 JSON Web Tokens and the symbol entitlements they carry.
 *
 *   struct auth *a = auth_create("secret.key", err, sizeof err);
 *   struct auth_claims c;
 *   if (auth_verify(a, token, len, now_us, &c, why, sizeof why) == 0) {
 *           if (auth_claims_allow(&c, "AAPL")) ...
 *           auth_claims_free(&c);
 *   }
 *
 * What it owns: a struct auth holds its copy of the secret, wiped and
 * freed by auth_destroy(); the claims auth_verify() fills own their
 * patterns until auth_claims_free(). No file stays open, no thread, no
 * global state.
 *
 * Who calls it: server.c makes the one struct auth from --auth-secret;
 * admission.c finds and verifies the token of every WebSocket upgrade and
 * /api request; session.c and http_api.c check the symbols a client asks
 * for against its claims, and session.c closes a session whose token has
 * expired; http_status.c serves the server's figures only to a token with
 * the admin claim. All on the loop's thread.
 *
 * Only HS256 is accepted: the header's "alg" must be exactly "HS256" ("none",
 * "HS512", "RS256" and a missing alg are all refused), so a token can never
 * choose a weaker check than the one configured. The signature is an HMAC
 * from OpenSSL compared in constant time; the JSON is parsed with jansson.
 *
 * Claims read from the payload:
 *   exp      required, NumericDate (seconds since the epoch, may be fractional)
 *   nbf      optional, NumericDate
 *   sub      optional string, at most AUTH_SUB_MAX bytes, no control characters
 *   symbols  required array of entitlement patterns (see auth_claims_allow)
 *   admin    optional boolean: true lets the holder read the server's own
 *            figures (GET /api/status, the status page); absent is false,
 *            and any value but true or false refuses the token
 * Other claims (iat, iss, aud, ...) are ignored. exp and nbf are checked with
 * AUTH_LEEWAY_US of leeway to absorb clock skew between the machine that mints
 * tokens and this one.
 *
 * The reasons written to `why` are for the server log only: they say exactly
 * what was wrong with a token, which is what an attacker probing the server
 * would like to know. Clients get a bare 401.
 *
 * A struct auth is immutable after auth_create(): auth_verify() may be called
 * from any number of threads at once.
 */
#ifndef PUBLISHER_AUTH_H
#define PUBLISHER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tick.h"

#define AUTH_TOKEN_MAX    8192 /* longest token accepted, in bytes */
#define AUTH_SECRET_MIN   32   /* HS256 key: at least the hash size */
#define AUTH_SECRET_MAX   4096 /* a longer secret file is a mistake */
#define AUTH_SUB_MAX      127
#define AUTH_MAX_PATTERNS 1000
#define AUTH_LEEWAY_US    (30 * 1000000LL)
/* A pattern is a symbol, or a namespace prefix and '*': one more byte than
 * the longest symbol. */
#define AUTH_PATTERN_MAX (TICK_SYMBOL_MAX + 1)

struct auth;

/*
 * Entitlements and identity from a verified token. Filled by auth_verify(),
 * released with auth_claims_free(). Read the fields freely; change none.
 */
struct auth_claims {
	char sub[AUTH_SUB_MAX + 1]; /* "" when the token had no "sub" */
	int64_t exp_us;		    /* "exp" in µs since the epoch */
	int64_t nbf_us;		    /* "nbf" in µs, 0 when absent */
	/*
	 * The token's patterns, duplicates removed: first the exact symbols
	 * (sorted by strcmp, patterns[0 .. exact_count)), then the prefix
	 * patterns ending in '*' (sorted). "*" alone sets allow_all.
	 * Owned by the claims.
	 */
	char (*patterns)[AUTH_PATTERN_MAX + 1];
	size_t pattern_count;
	size_t exact_count;
	bool allow_all; /* the token holds "*" */
	bool admin;     /* "admin": true, an operator's token */
};

/*
 * Read the HMAC secret from secret_file: the file's bytes, less one trailing
 * newline ("\n" or "\r\n"). Refuses (NULL, with a message in err naming the
 * file and what to do) a missing or unreadable file, a file that is not a
 * regular file, a secret shorter than AUTH_SECRET_MIN or longer than
 * AUTH_SECRET_MAX bytes. A file that others may read is accepted with a
 * warning in the log. Caller frees with auth_destroy().
 */
struct auth *
auth_create(const char *secret_file, char *err, size_t errlen);

/*
 * The same with the key in memory (tests, fuzzing). The key is copied.
 * Refuses a key shorter than AUTH_SECRET_MIN or longer than AUTH_SECRET_MAX.
 */
struct auth *
auth_create_with_key(const void *key, size_t keylen, char *err, size_t errlen);

/* Wipe the secret and free. NULL is a no-op. */
void
auth_destroy(struct auth *a);

/*
 * Verify token[0..len) (not necessarily NUL-terminated) at time now_us.
 * Returns 0 and fills *out (release it with auth_claims_free), or -1 with a
 * reason for the log in why. On -1 *out is left empty, so auth_claims_free()
 * on it is harmless, but there is nothing to free.
 *
 * Refused: over AUTH_TOKEN_MAX bytes; not three base64url parts (unpadded,
 * canonical, RFC 4648 §5 alphabet only); a header that is not a JSON object,
 * whose alg is not "HS256", whose typ (when present) is not "JWT", or that
 * carries "crit"; a bad signature; a payload that is not a JSON object;
 * duplicate member names; a missing or invalid exp; exp more than the leeway
 * in the past; nbf more than the leeway in the future; symbols missing, not an
 * array, over AUTH_MAX_PATTERNS entries, or holding an invalid pattern.
 * The signature is checked before the payload is parsed.
 */
int
auth_verify(const struct auth *a, const char *token, size_t len,
	    int64_t now_us, struct auth_claims *out, char *why,
	    size_t whylen);

/* Free what auth_verify() allocated and empty *c. NULL is a no-op. */
void
auth_claims_free(struct auth_claims *c);

/*
 * True when the claims entitle the holder to symbol (NUL-terminated).
 * A pattern is one of:
 *   "AAPL"  exactly that symbol;
 *   "FX:*"  every symbol that starts with "FX:"; the character before the
 *           '*' must be one of the separators . _ : / - so that a wildcard
 *           grants a whole namespace and never part of a name ("FX*", which
 *           would also grant FXE and FXI, is refused at verify time);
 *   "*"     every symbol.
 * O(log n) in the exact symbols plus one comparison per prefix pattern.
 */
bool
auth_claims_allow(const struct auth_claims *c, const char *symbol);

/*
 * True when the token has expired at now_us, by the same rule (and leeway)
 * auth_verify() applies. For closing a connection whose token runs out.
 */
bool
auth_claims_expired(const struct auth_claims *c, int64_t now_us);

/*
 * The value of cookie `name` in a Cookie request header ("a=1; token=xyz"),
 * with surrounding double quotes removed. Returns a pointer into
 * cookie_header and sets *len, or NULL when there is no such cookie or its
 * value is empty. Names are compared exactly (case-sensitive).
 */
const char *
auth_find_cookie(const char *cookie_header, const char *name, size_t *len);

/*
 * The token of an Authorization header "Bearer <token>" (scheme compared
 * without regard to case, spaces around the token ignored). Returns a pointer
 * into the header and sets *len, or NULL for another scheme, an empty token
 * or a token with spaces inside.
 */
const char *
auth_bearer(const char *authorization_header, size_t *len);

#endif

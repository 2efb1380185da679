/*
 * auth: HS256 JWT verification and entitlement patterns.
 *
 * A token is three base64url parts, header.payload.signature. The order of the
 * checks matters: the header is read first only to learn that the token claims
 * HS256 (the one algorithm this server speaks), then the HMAC over the first
 * two parts is checked, and only a token that passed it has its payload
 * parsed. Until the signature is checked every byte is attacker-controlled,
 * so the code before it is as small as it can be and works on fixed buffers.
 *
 * The decoder is strict on purpose: no padding, no characters outside the
 * base64url alphabet, and no stray bits in the last character. A lenient
 * decoder lets one signature be spelled several ways, which turns any cache
 * or denylist keyed on the token text into something an attacker can dodge.
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "errbuf.h"
#include "log.h"

#define SHA256_LEN 32

/* Year 9999 in seconds: far beyond any real token, and small enough that the
 * value in µs plus the leeway fits an int64 with room to spare. */
#define NUMERIC_DATE_MAX 253402300799LL

/* Longest piece of token text quoted in a reason (an alg name, a pattern). */
#define QUOTE_MAX 40

struct auth {
	size_t keylen;
	unsigned char key[AUTH_SECRET_MAX];
};

typedef char pattern_t[AUTH_PATTERN_MAX + 1];

enum pattern_kind { PATTERN_BAD = -1, PATTERN_EXACT, PATTERN_PREFIX };

/* Copy untrusted text for a log line: printable ASCII only (anything else
 * becomes '?', so a token cannot forge log lines), cut at QUOTE_MAX bytes. */
static const char *
quote(char out[QUOTE_MAX + 4], const char *s, size_t len)
{
	size_t i, n = len > QUOTE_MAX ? QUOTE_MAX : len;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		out[i] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
	}
	if (n < len) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

/* ---------------------------------------------------------------- secret */

static struct auth *
auth_from_key(const void *key, size_t keylen, const char *what, char *err,
              size_t errlen)
{
	struct auth *a;

	if (keylen == 0) {
		errf(err, errlen,
		     "auth secret %s is empty; make one with: "
		     "openssl rand -base64 48 > FILE",
		     what);
		return NULL;
	}
	if (keylen < AUTH_SECRET_MIN) {
		errf(err, errlen,
		     "auth secret %s is %zu bytes; HS256 needs at least %d "
		     "(make one with: openssl rand -base64 48 > FILE)",
		     what, keylen, AUTH_SECRET_MIN);
		return NULL;
	}
	if (keylen > AUTH_SECRET_MAX) {
		errf(err, errlen,
		     "auth secret %s is over %d bytes; is it the right file?",
		     what, AUTH_SECRET_MAX);
		return NULL;
	}
	a = calloc(1, sizeof *a);
	if (!a) {
		errf(err, errlen, "auth: out of memory");
		return NULL;
	}
	memcpy(a->key, key, keylen);
	a->keylen = keylen;
	return a;
}

struct auth *
auth_create_with_key(const void *key, size_t keylen, char *err, size_t errlen)
{
	return auth_from_key(key, keylen, "(in memory)", err, errlen);
}

struct auth *
auth_create(const char *secret_file, char *err, size_t errlen)
{
	/* Two bytes more than the limit: room for a "\r\n" to trim, and one
	 * more to tell "exactly at the limit" from "longer". */
	unsigned char buf[AUTH_SECRET_MAX + 3];
	char what[512];
	struct auth *a = NULL;
	struct stat st;
	size_t n = 0;
	int fd;

	if (!secret_file || !*secret_file) {
		errf(err, errlen, "auth: no secret file given");
		return NULL;
	}
	snprintf(what, sizeof what, "file '%s'", secret_file);
	fd = open(secret_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		errf(err, errlen, "cannot open auth secret file '%s': %s",
		     secret_file, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0) {
		errf(err, errlen, "cannot stat auth secret file '%s': %s",
		     secret_file, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		errf(err, errlen, "auth secret '%s' is not a regular file",
		     secret_file);
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof buf - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			errf(err, errlen,
			     "cannot read auth secret file '%s': %s",
			     secret_file, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == sizeof buf)
			break; /* too long: auth_from_key says so */
	}
	/* Editors and `echo` end files with a newline that is not part of the
	 * secret; the token minter strips exactly one, and so must we. */
	if (n > 0 && buf[n - 1] == '\n') {
		n--;
		if (n > 0 && buf[n - 1] == '\r')
			n--;
	}
	a = auth_from_key(buf, n, what, err, errlen);
	if (a && (st.st_mode & S_IROTH))
		log_warn("auth: secret file '%s' can be read by every user "
		         "(mode %03o); chmod 600 it",
		         secret_file, (unsigned)(st.st_mode & 0777));
out:
	OPENSSL_cleanse(buf, sizeof buf);
	close(fd);
	return a;
}

void
auth_destroy(struct auth *a)
{
	if (!a)
		return;
	OPENSSL_cleanse(a, sizeof *a);
	free(a);
}

/* ---------------------------------------------------------------- base64url */

static int
b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/*
 * Decode unpadded base64url src[0..len) into dst (cap bytes). Returns 0 and
 * sets *outlen, or -1 for a character outside the alphabet (padding '='
 * included), an impossible length (len % 4 == 1), non-zero leftover bits in
 * the last character, or output that would not fit.
 */
static int
b64url_decode(const char *src, size_t len, unsigned char *dst, size_t cap,
              size_t *outlen)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t i, n = 0;

	if (len % 4 == 1)
		return -1;
	if (len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0) > cap)
		return -1;
	for (i = 0; i < len; i++) {
		int v = b64url_value((unsigned char)src[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			dst[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* What is left (2 or 4 bits) must be zero in the canonical spelling. */
	if (acc != 0)
		return -1;
	*outlen = n;
	return 0;
}

/* -------------------------------------------------------------- the header */

/* A JSON string member equal to want (byte for byte). */
static bool
string_is(json_t *v, const char *want)
{
	size_t n = strlen(want);

	return json_is_string(v) && json_string_length(v) == n &&
	       memcmp(json_string_value(v), want, n) == 0;
}

static int
check_header(const unsigned char *text, size_t len, char *why, size_t whylen)
{
	char q[QUOTE_MAX + 4];
	json_error_t jerr;
	json_t *h, *alg, *typ;
	int rc = -1;

	h = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!h || !json_is_object(h)) {
		errf(why, whylen, "header is not a JSON object");
		goto out;
	}
	alg = json_object_get(h, "alg");
	if (!alg) {
		errf(why, whylen, "header has no alg; only HS256 is accepted");
		goto out;
	}
	if (!string_is(alg, "HS256")) {
		if (json_is_string(alg))
			errf(why, whylen,
			     "alg '%s' is refused; only HS256 is accepted",
			     quote(q, json_string_value(alg),
			           json_string_length(alg)));
		else
			errf(why, whylen,
			     "alg is not a string; only HS256 is accepted");
		goto out;
	}
	typ = json_object_get(h, "typ");
	if (typ && !string_is(typ, "JWT")) {
		errf(why, whylen, "header typ is not \"JWT\"");
		goto out;
	}
	/* RFC 7515 §4.1.11: a recipient must refuse a token whose "crit"
	 * names extensions it does not implement, and we implement none. */
	if (json_object_get(h, "crit")) {
		errf(why, whylen,
		     "header has crit; no extensions are supported");
		goto out;
	}
	rc = 0;
out:
	json_decref(h);
	return rc;
}

/* ---------------------------------------------------------------- patterns */

static bool
is_separator(char c)
{
	return c == '.' || c == '_' || c == ':' || c == '/' || c == '-';
}

/* "AAPL" is exact; "FX:*" and "*" are prefixes ("" for "*"). */
static enum pattern_kind
pattern_kind(const char *s, size_t len)
{
	if (len == 1 && s[0] == '*')
		return PATTERN_PREFIX;
	if (len >= 2 && s[len - 1] == '*') {
		if (!is_separator(s[len - 2]))
			return PATTERN_BAD;
		return tick_symbol_valid(s, len - 1) ? PATTERN_PREFIX
		                                     : PATTERN_BAD;
	}
	return tick_symbol_valid(s, len) ? PATTERN_EXACT : PATTERN_BAD;
}

static int
pattern_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Sort p[0..n) and drop duplicates; return the new count. */
static size_t
sort_unique(pattern_t *p, size_t n)
{
	size_t i, out = 0;

	if (n == 0)
		return 0;
	qsort(p, n, sizeof *p, pattern_cmp);
	for (i = 0; i < n; i++) {
		if (out > 0 && strcmp(p[out - 1], p[i]) == 0)
			continue;
		if (out != i)
			memcpy(p[out], p[i], sizeof *p);
		out++;
	}
	return out;
}

/*
 * Fill c->patterns from the "symbols" array: exact symbols first, then the
 * prefix patterns, each part sorted and without duplicates, so that
 * auth_claims_allow() can binary-search the exact part.
 */
static int
read_patterns(json_t *symbols, struct auth_claims *c, char *why, size_t whylen)
{
	char q[QUOTE_MAX + 4];
	size_t i, n, exact = 0, prefix = 0, e = 0, p;
	pattern_t *pat = NULL;
	json_t *v;

	if (!symbols) {
		errf(why, whylen, "claim symbols is missing");
		return -1;
	}
	if (!json_is_array(symbols)) {
		errf(why, whylen, "claim symbols is not an array");
		return -1;
	}
	n = json_array_size(symbols);
	if (n > AUTH_MAX_PATTERNS) {
		errf(why, whylen,
		     "claim symbols has %zu patterns; the limit is %d", n,
		     AUTH_MAX_PATTERNS);
		return -1;
	}
	json_array_foreach(symbols, i, v)
	{
		const char *s = json_string_value(v);
		size_t len = json_string_length(v);
		enum pattern_kind k;

		if (!s) {
			errf(why, whylen, "symbols[%zu] is not a string", i);
			return -1;
		}
		k = pattern_kind(s, len);
		if (k == PATTERN_BAD) {
			errf(why, whylen,
			     "symbols[%zu] '%s' is not a symbol, a prefix "
			     "ending in one of . _ : / - followed by '*', "
			     "or '*'",
			     i, quote(q, s, len));
			return -1;
		}
		if (k == PATTERN_EXACT)
			exact++;
		else
			prefix++;
	}
	/* An empty list is valid (a token that sees nothing). Return before
	 * any pointer arithmetic: pat would be NULL, and even NULL + 0 is
	 * undefined behaviour in C. */
	if (n == 0)
		return 0;
	pat = calloc(n, sizeof *pat);
	if (!pat) {
		errf(why, whylen, "out of memory");
		return -1;
	}
	/* Lengths were checked above: every pattern fits in a pattern_t. */
	p = exact;
	json_array_foreach(symbols, i, v)
	{
		const char *s = json_string_value(v);
		size_t len = json_string_length(v);

		if (pattern_kind(s, len) == PATTERN_EXACT)
			memcpy(pat[e++], s, len);
		else
			memcpy(pat[p++], s, len);
	}
	exact = sort_unique(pat, exact);
	prefix = sort_unique(pat + e, prefix);
	if (exact != e && prefix > 0)
		memmove(pat[exact], pat[e], prefix * sizeof *pat);
	c->patterns = pat;
	c->exact_count = exact;
	c->pattern_count = exact + prefix;
	for (i = exact; i < c->pattern_count; i++)
		if (strcmp(pat[i], "*") == 0)
			c->allow_all = true;
	return 0;
}

/* ------------------------------------------------------------------ claims */

/* A NumericDate (RFC 7519 §2): seconds since the epoch, integer or not. */
static int
numeric_date_us(json_t *v, int64_t *us)
{
	if (json_is_integer(v)) {
		json_int_t s = json_integer_value(v);

		if (s < 0 || s > NUMERIC_DATE_MAX)
			return -1;
		*us = (int64_t)s * 1000000;
		return 0;
	}
	if (json_is_real(v)) {
		double s = json_real_value(v);

		/* Written so that a NaN fails too. */
		if (!(s >= 0 && s <= (double)NUMERIC_DATE_MAX))
			return -1;
		*us = (int64_t)(s * 1e6);
		return 0;
	}
	return -1;
}

static int
read_sub(json_t *sub, struct auth_claims *c, char *why, size_t whylen)
{
	const char *s;
	size_t i, len;

	if (!sub)
		return 0;
	s = json_string_value(sub);
	if (!s) {
		errf(why, whylen, "claim sub is not a string");
		return -1;
	}
	len = json_string_length(sub);
	if (len > AUTH_SUB_MAX) {
		errf(why, whylen, "claim sub is %zu bytes; the limit is %d",
		     len, AUTH_SUB_MAX);
		return -1;
	}
	/* sub ends up in log lines: no line breaks or escapes in it. */
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch == 0x7f) {
			errf(why, whylen, "claim sub has a control character");
			return -1;
		}
	}
	memcpy(c->sub, s, len);
	c->sub[len] = '\0';
	return 0;
}

static int
read_claims(const unsigned char *text, size_t len, int64_t now_us,
            struct auth_claims *c, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *p, *v;
	int rc = -1;

	p = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!p || !json_is_object(p)) {
		errf(why, whylen, "payload is not a JSON object");
		goto out;
	}
	v = json_object_get(p, "exp");
	if (!v) {
		errf(why, whylen, "claim exp is missing");
		goto out;
	}
	if (numeric_date_us(v, &c->exp_us) != 0) {
		errf(why, whylen,
		     "claim exp is not a time in seconds since the epoch");
		goto out;
	}
	if (auth_claims_expired(c, now_us)) {
		errf(why, whylen,
		     "token expired %lld s ago (exp %lld, leeway %lld s)",
		     (long long)((now_us - c->exp_us) / 1000000),
		     (long long)(c->exp_us / 1000000),
		     (long long)(AUTH_LEEWAY_US / 1000000));
		goto out;
	}
	v = json_object_get(p, "nbf");
	if (v) {
		if (numeric_date_us(v, &c->nbf_us) != 0) {
			errf(why, whylen,
			     "claim nbf is not a time in seconds "
			     "since the epoch");
			goto out;
		}
		/* nbf_us >= 0, so the subtraction cannot overflow. */
		if (c->nbf_us - AUTH_LEEWAY_US > now_us) {
			errf(why, whylen,
			     "token not valid for another %lld s (nbf %lld)",
			     (long long)((c->nbf_us - now_us) / 1000000),
			     (long long)(c->nbf_us / 1000000));
			goto out;
		}
	}
	if (read_sub(json_object_get(p, "sub"), c, why, whylen) != 0)
		goto out;
	if (read_patterns(json_object_get(p, "symbols"), c, why, whylen) != 0)
		goto out;
	/* Strictly a boolean: a token that says "admin": "no" or 1 was
	 * minted by mistake, and guessing what it meant would grant too much
	 * or too little. */
	v = json_object_get(p, "admin");
	if (v && !json_is_boolean(v)) {
		errf(why, whylen, "claim admin is not true or false");
		goto out;
	}
	c->admin = v && json_is_true(v);
	rc = 0;
out:
	json_decref(p);
	return rc;
}

/* ------------------------------------------------------------------ verify */

int
auth_verify(const struct auth *a, const char *token, size_t len, int64_t now_us,
            struct auth_claims *out, char *why, size_t whylen)
{
	/* Decoded parts are 3/4 of their text, so these always suffice. */
	unsigned char header[AUTH_TOKEN_MAX / 4 * 3];
	unsigned char payload[AUTH_TOKEN_MAX / 4 * 3];
	unsigned char sig[SHA256_LEN + 3], mac[EVP_MAX_MD_SIZE];
	const char *dot1, *dot2, *sig_text;
	size_t header_len, payload_len, sig_len, signed_len;
	unsigned mac_len = 0;

	errf(why, whylen, "%s", "");
	if (!out)
		return -1;
	memset(out, 0, sizeof *out);
	if (!a || !token) {
		errf(why, whylen, "no auth configured or no token");
		return -1;
	}
	if (len == 0) {
		errf(why, whylen, "empty token");
		return -1;
	}
	if (len > AUTH_TOKEN_MAX) {
		errf(why, whylen, "token is %zu bytes; the limit is %d", len,
		     AUTH_TOKEN_MAX);
		return -1;
	}

	dot1 = memchr(token, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token))
	            : NULL;
	if (!dot2 ||
	    memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
		errf(why, whylen, "token is not three parts separated by '.'");
		return -1;
	}
	signed_len = (size_t)(dot2 - token);
	sig_text = dot2 + 1;

	if (b64url_decode(token, (size_t)(dot1 - token), header, sizeof header,
	                  &header_len) != 0) {
		errf(why, whylen, "header is not unpadded base64url");
		return -1;
	}
	if (check_header(header, header_len, why, whylen) != 0)
		return -1;

	/* Only a 32-byte signature can be right; anything that does not decode
	 * to exactly that is refused before any HMAC is computed. */
	if (b64url_decode(sig_text, len - (size_t)(sig_text - token), sig,
	                  sizeof sig, &sig_len) != 0 ||
	    sig_len != SHA256_LEN) {
		errf(why, whylen, "bad signature");
		return -1;
	}
	if (!HMAC(EVP_sha256(), a->key, (int)a->keylen,
	          (const unsigned char *)token, signed_len, mac, &mac_len) ||
	    mac_len != SHA256_LEN) {
		errf(why, whylen, "HMAC-SHA256 failed in OpenSSL");
		return -1;
	}
	if (CRYPTO_memcmp(mac, sig, SHA256_LEN) != 0) {
		errf(why, whylen, "bad signature");
		return -1;
	}

	if (b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload,
	                  sizeof payload, &payload_len) != 0) {
		errf(why, whylen, "payload is not unpadded base64url");
		return -1;
	}
	if (read_claims(payload, payload_len, now_us, out, why, whylen) != 0) {
		auth_claims_free(out);
		return -1;
	}
	return 0;
}

void
auth_claims_free(struct auth_claims *c)
{
	if (!c)
		return;
	free(c->patterns);
	memset(c, 0, sizeof *c);
}

bool
auth_claims_expired(const struct auth_claims *c, int64_t now_us)
{
	/* exp_us is bounded by NUMERIC_DATE_MAX: the sum cannot overflow. */
	return now_us >= c->exp_us + AUTH_LEEWAY_US;
}

bool
auth_claims_allow(const struct auth_claims *c, const char *symbol)
{
	size_t i, len;

	if (!c || !symbol)
		return false;
	len = strnlen(symbol, TICK_SYMBOL_MAX + 1);
	if (!tick_symbol_valid(symbol, len))
		return false;
	if (c->allow_all)
		return true;
	if (c->exact_count > 0 && bsearch(symbol, c->patterns, c->exact_count,
	                                  sizeof *c->patterns, pattern_cmp))
		return true;
	for (i = c->exact_count; i < c->pattern_count; i++) {
		size_t plen = strlen(c->patterns[i]) - 1; /* less the '*' */

		if (plen <= len && memcmp(symbol, c->patterns[i], plen) == 0)
			return true;
	}
	return false;
}

/* ----------------------------------------------------- header value helpers */

static bool
is_space(char c)
{
	return c == ' ' || c == '\t';
}

const char *
auth_find_cookie(const char *cookie_header, const char *name, size_t *len)
{
	size_t name_len;
	const char *p;

	if (!cookie_header || !name || !*name || !len)
		return NULL;
	name_len = strlen(name);
	p = cookie_header;
	while (*p) {
		const char *end = strchr(p, ';'), *eq, *v, *ve;

		if (!end)
			end = p + strlen(p);
		while (p < end && is_space(*p))
			p++;
		eq = memchr(p, '=', (size_t)(end - p));
		if (eq) {
			const char *ne = eq;

			while (ne > p && is_space(ne[-1]))
				ne--;
			v = eq + 1;
			ve = end;
			while (v < ve && is_space(*v))
				v++;
			while (ve > v && is_space(ve[-1]))
				ve--;
			if (ve - v >= 2 && *v == '"' && ve[-1] == '"') {
				v++;
				ve--;
			}
			if ((size_t)(ne - p) == name_len &&
			    memcmp(p, name, name_len) == 0 && ve > v) {
				*len = (size_t)(ve - v);
				return v;
			}
		}
		p = *end ? end + 1 : end;
	}
	return NULL;
}

const char *
auth_bearer(const char *authorization_header, size_t *len)
{
	const char *p = authorization_header, *t;

	if (!p || !len)
		return NULL;
	while (is_space(*p))
		p++;
	if (strncasecmp(p, "Bearer", 6) != 0 || !is_space(p[6]))
		return NULL;
	p += 6;
	while (is_space(*p))
		p++;
	t = p;
	while (*p && !is_space(*p))
		p++;
	*len = (size_t)(p - t);
	while (is_space(*p))
		p++;
	if (*len == 0 || *p != '\0')
		return NULL;
	return t;
}

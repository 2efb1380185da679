/*
 * admission.c: who may open a WebSocket or call /api, decided while the
 * connection is still plain HTTP, so that a refusal is a real HTTP status
 * (401, 403, 429, 503) rather than a reset.
 *
 * The order is origin, token, then the connection caps, so that a client
 * without a valid token always learns only "401". What admission decided
 * (the connection id, the peer, the token's claims) cannot be kept in the
 * connection's user space yet: lws frees the HTTP one when it binds the ws
 * protocol. It waits in server->admitted, which ESTABLISHED takes over (ws.c).
 */
#include "server_private.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "hash.h"
#include "log.h"
#include "ws_deflate.h"

/* Room for a token with the header or cookie around it. */
#define TOKEN_HEADER_MAX (AUTH_TOKEN_MAX + 256)

static const struct {
	unsigned status;
	const char
	        *status_line; /* for an upgrade request (see write_refusal) */
	const char *label;
	const char *body; /* all the client is told */
} refusals[REFUSED_COUNT] = {
        [REFUSED_UNAUTHORIZED] = {401, "HTTP/1.1 401 Unauthorized",
                                  "unauthorized", "unauthorized\n"},
        [REFUSED_ORIGIN] = {403, "HTTP/1.1 403 Forbidden", "origin",
                            "origin not allowed\n"},
        [REFUSED_FORBIDDEN] = {403, "HTTP/1.1 403 Forbidden", "forbidden",
                               "forbidden\n"},
        [REFUSED_SERVER_FULL] = {503, "HTTP/1.1 503 Service Unavailable",
                                 "server_full",
                                 "too many connections, try again later\n"},
        [REFUSED_PER_IP] = {429, "HTTP/1.1 429 Too Many Requests",
                            "per_ip_limit",
                            "too many connections from your address\n"},
        [REFUSED_SHUTTING_DOWN] = {503, "HTTP/1.1 503 Service Unavailable",
                                   "shutting_down", "server shutting down\n"},
};

const char *
refusal_label(enum refusal r)
{
	return refusals[r].label;
}

/* ------------------------------------------------- connections per peer */

static struct peer_count **
peer_slot(struct server *s, const char *peer)
{
	struct peer_count **pp;

	pp = &s->peers[hash_name(peer, strlen(peer)) & (PEER_BUCKETS - 1)];
	while (*pp && strcmp((*pp)->peer, peer))
		pp = &(*pp)->next;
	return pp;
}

static size_t
peer_connections(struct server *s, const char *peer)
{
	struct peer_count **pp = peer_slot(s, peer);

	return *pp ? (*pp)->n : 0;
}

void
peer_add(struct server *s, const char *peer, int delta)
{
	struct peer_count **pp = peer_slot(s, peer), *pc = *pp;

	if (!pc) {
		if (delta < 0)
			return;
		pc = calloc(1, sizeof *pc);
		if (!pc)
			return; /* the cap then counts this one low */
		snprintf(pc->peer, sizeof pc->peer, "%s", peer);
		*pp = pc;
	}
	if (delta < 0 && pc->n)
		pc->n--;
	else if (delta > 0)
		pc->n++;
	if (!pc->n) {
		*pp = pc->next;
		free(pc);
	}
}

void
peers_free(struct server *s)
{
	size_t i;

	for (i = 0; i < PEER_BUCKETS; i++)
		while (s->peers[i]) {
			struct peer_count *pc = s->peers[i];

			s->peers[i] = pc->next;
			free(pc);
		}
}

/* ------------------------------------------------------------ checks */

/* Make untrusted header text safe to quote in a log line. */
void
sanitize(char *text)
{
	for (; *text; text++)
		if ((unsigned char)*text < 0x20 || (unsigned char)*text >= 0x7f)
			*text = '?';
}

bool
is_loopback(const char *host)
{
	return !strcmp(host, "127.0.0.1") || !strcmp(host, "::1") ||
	       !strcmp(host, "[::1]") || !strcmp(host, "localhost");
}

/* The name part of a Host header ("example.com:8080" → "example.com",
 * "[::1]:8080" → "[::1]"), copied into out. */
static void
host_name(const char *host, char *out, size_t len)
{
	const char *end =
	        host[0] == '[' ? strchr(host, ']') : strrchr(host, ':');
	size_t n = end ? (size_t)(end - host) + (host[0] == '[') : strlen(host);

	snprintf(out, len, "%.*s", (int)n, host);
}

/* Compare an origin's "host[:port]" with a Host header, a missing port
 * standing for the scheme's default (browsers leave ":443" out of Origin;
 * some clients put it in Host). */
static bool
same_authority(const char *a, const char *host, bool https)
{
	const char *dflt = https ? ":443" : ":80";
	size_t la = strlen(a), lh = strlen(host), ld = strlen(dflt);

	if (la == lh)
		return !strncasecmp(a, host, la);
	if (la == lh + ld)
		return !strncasecmp(a, host, lh) && !strcmp(a + lh, dflt);
	if (lh == la + ld)
		return !strncasecmp(a, host, la) && !strcmp(host + la, dflt);
	return false;
}

/*
 * The Origin check keeps other web sites' pages from using a visitor's
 * browser, and the token cookie it holds, to read the stream. A request
 * without Origin comes from no web page (a script, a feed handler, curl)
 * and passes: its token, if one is required, is its check.
 */
bool
origin_allowed(struct server *s, struct lws *wsi, char *why, size_t whylen)
{
	char origin[256], host[256], name[256];
	const char *authority = NULL;
	bool https = false;
	size_t i;

	if (!lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN))
		return true;
	if (lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) <= 0) {
		snprintf(why, whylen, "Origin header over %zu bytes",
		         sizeof origin - 1);
		return false;
	}
	sanitize(origin);
	if (s->opt->allow_origin_count) {
		/* Exact, but host names know no case. */
		for (i = 0; i < s->opt->allow_origin_count; i++)
			if (!strcasecmp(origin, s->opt->allow_origins[i]))
				return true;
		snprintf(why, whylen,
		         "Origin '%.100s' is not an --allow-origin", origin);
		return false;
	}
	if (lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) <= 0)
		host[0] = '\0';
	sanitize(host);
	if (!strncasecmp(origin, "https://", 8)) {
		authority = origin + 8;
		https = true;
	} else if (!strncasecmp(origin, "http://", 7)) {
		authority = origin + 7;
	}
	if (!authority || !host[0] || !same_authority(authority, host, https)) {
		snprintf(why, whylen,
		         "Origin '%.100s' is not this server (Host '%.60s'); "
		         "allow it with --allow-origin",
		         origin, host);
		return false;
	}
	/*
	 * Origin and Host agree, but on a loopback listener they must also
	 * name loopback: a page whose own name was made to resolve to
	 * 127.0.0.1 (DNS rebinding) sends its own name in both.
	 */
	host_name(host, name, sizeof name);
	if (is_loopback(s->opt->listen_host) && !is_loopback(name)) {
		snprintf(why, whylen,
		         "Origin and Host '%.60s' name no loopback address on "
		         "a loopback listener (DNS rebinding?); allow it with "
		         "the allow-origin setting",
		         host);
		return false;
	}
	return true;
}

/*
 * The token a request carries, from the first place that has one:
 * "Authorization: Bearer", then ?token= on the URL, then the cookie
 * "token". A present but malformed first choice is not skipped for the
 * next: a request means one token. Returns a pointer into buf and its
 * length, or NULL with the reason in why.
 */
static const char *
request_token(struct lws *wsi, char *buf, size_t buflen, size_t *len, char *why,
              size_t whylen)
{
	const char *t;

	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION)) {
		if (lws_hdr_copy(wsi, buf, (int)buflen,
		                 WSI_TOKEN_HTTP_AUTHORIZATION) < 0) {
			snprintf(why, whylen,
			         "Authorization header over %zu bytes",
			         buflen - 1);
			return NULL;
		}
		t = auth_bearer(buf, len);
		if (!t)
			snprintf(why, whylen,
			         "Authorization header is not \"Bearer "
			         "<token>\"");
		return t;
	}
	t = lws_get_urlarg_by_name(wsi, "token=", buf, (int)buflen);
	if (t) {
		*len = strlen(t);
		if (!*len) {
			snprintf(why, whylen, "empty ?token=");
			return NULL;
		}
		return t;
	}
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COOKIE) &&
	    lws_hdr_copy(wsi, buf, (int)buflen, WSI_TOKEN_HTTP_COOKIE) > 0 &&
	    (t = auth_find_cookie(buf, "token", len)))
		return t;
	snprintf(why, whylen,
	         "no token (Authorization: Bearer, ?token= or cookie token=)");
	return NULL;
}

/* Verify the request's token into *claims (released by the caller with
 * auth_claims_free). Returns 0, or -1 with the reason, for the log, in why. */
int
authenticate(struct server *s, struct lws *wsi, struct auth_claims *claims,
             char *why, size_t whylen)
{
	char buf[TOKEN_HEADER_MAX];
	const char *token;
	size_t len = 0;

	token = request_token(wsi, buf, sizeof buf, &len, why, whylen);
	if (!token)
		return -1;
	return auth_verify(s->auth, token, len, clock_wall_us(), claims, why,
	                   whylen);
}

/*
 * The status line and headers of a refusal. At CONFIRM_UPGRADE lws has not
 * yet noted the request's HTTP version, and lws_add_http_header_status()
 * would answer "HTTP/1.0", which WebSocket clients reject as unreadable:
 * an upgrade is always HTTP/1.1, so its status line is written here, with
 * the two security headers that matter for a plain-text body, and the
 * connection is closed after it (lws does so for an upgrade it did not
 * take).
 */
static int
refusal_status(struct lws *wsi, enum refusal r, bool upgrade, unsigned char **p,
               unsigned char *end)
{
	static const char csp[] = "default-src 'none'";

	if (!upgrade)
		return lws_add_http_header_status(wsi, refusals[r].status, p,
		                                  end);
	return lws_add_http_header_by_name(
	               wsi, NULL,
	               (const unsigned char *)refusals[r].status_line,
	               (int)strlen(refusals[r].status_line), p, end) ||
	       lws_add_http_header_by_name(
	               wsi, (const unsigned char *)"content-security-policy:",
	               (const unsigned char *)csp, (int)strlen(csp), p, end) ||
	       lws_add_http_header_by_name(
	               wsi, (const unsigned char *)"x-content-type-options:",
	               (const unsigned char *)"nosniff", 7, p, end) ||
	       lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
	                                    (const unsigned char *)"close", 5,
	                                    p, end);
}

/*
 * Answer with a refusal and nothing more: the status, a one-line body that
 * says no more than the status does, and for 401 the challenge RFC 6750
 * asks for. One lws_write, as lws_return_http_status() does it. Returns 0,
 * or -1 when even that failed.
 */
int
write_refusal(struct lws *wsi, enum refusal r, bool upgrade)
{
	unsigned char buf[LWS_PRE + 2048], *start = buf + LWS_PRE, *p = start,
	                                   *end = buf + sizeof buf;
	const char *body = refusals[r].body;
	size_t len = strlen(body);
	char clen[24];
	int n;

	n = snprintf(clen, sizeof clen, "%zu", len);
	if (refusal_status(wsi, r, upgrade, &p, end) ||
	    lws_add_http_header_by_token(
	            wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
	            (const unsigned char *)"text/plain; charset=utf-8", 25, &p,
	            end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH,
	                                 (const unsigned char *)clen, n, &p,
	                                 end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
	                                 (const unsigned char *)"no-store, no-cache",
	                                 18, &p, end) ||
	    /* A proxy that buffers (nginx) passes a refusal of a stream on
	     * at once, as it would the stream. */
	    lws_add_http_header_by_name(wsi,
	                                (const unsigned char *)"x-accel-buffering:",
	                                (const unsigned char *)"no", 2, &p, end))
		return -1;
	if (r == REFUSED_UNAUTHORIZED &&
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_WWW_AUTHENTICATE,
	                                 (const unsigned char *)"Bearer", 6, &p,
	                                 end))
		return -1;
	if ((r == REFUSED_SERVER_FULL || r == REFUSED_PER_IP) &&
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_RETRY_AFTER,
	                                 (const unsigned char *)"5", 1, &p,
	                                 end))
		return -1;
	if (lws_finalize_http_header(wsi, &p, end) || (size_t)(end - p) < len)
		return -1;
	memcpy(p, body, len);
	p += len;
	n = lws_ptr_diff(p, start);
	return lws_write(wsi, start, (size_t)n, LWS_WRITE_HTTP) == n ? 0 : -1;
}

/* One log limiter per kind of refusal, so that a flood of one kind (bad
 * tokens, say) does not hide the others. */
static struct log_limit refusal_log[REFUSED_COUNT];

/* who: "conn 12 (10.0.0.7)" or "http (10.0.0.7)"; what was refused. */
void
log_refusal(const char *who, const char *what, enum refusal r, const char *why)
{
	log_msg_limited(&refusal_log[r], LOG_INFO,
	                "%s: %s refused with %u %s: %s", who, what,
	                refusals[r].status, refusals[r].label, why);
}

/* An address as 16 bytes, IPv4 as IPv4-mapped IPv6, so that "10.0.0.1"
 * and "::ffff:10.0.0.1" compare equal. Brackets and a port are dropped
 * ("[::1]:443", "10.0.0.1:5000"), as some proxies write them. */
static bool
address_bytes(const char *text, size_t len, unsigned char out[16])
{
	char buf[INET6_ADDRSTRLEN + 8];
	char *colon;

	while (len && (*text == ' ' || *text == '\t'))
		text++, len--;
	while (len && (text[len - 1] == ' ' || text[len - 1] == '\t'))
		len--;
	if (!len || len >= sizeof buf)
		return false;
	memcpy(buf, text, len);
	buf[len] = '\0';
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');

		if (!close)
			return false;
		*close = '\0';
		return inet_pton(AF_INET6, buf + 1, out) == 1;
	}
	colon = strchr(buf, ':');
	if (colon && !strchr(colon + 1, ':'))
		*colon = '\0'; /* IPv4 with a port */
	if (inet_pton(AF_INET, buf, out + 12) == 1) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		return true;
	}
	return inet_pton(AF_INET6, buf, out) == 1;
}

static bool
trusted(const struct server *s, const unsigned char addr[16])
{
	unsigned char p[16];
	size_t i;

	for (i = 0; i < s->opt->trusted_proxy_count; i++)
		if (address_bytes(s->opt->trusted_proxies[i],
		                  strlen(s->opt->trusted_proxies[i]), p) &&
		    !memcmp(p, addr, 16))
			return true;
	return false;
}

/* "::ffff:10.0.0.1" is written as the IPv4 address it is. */
static void
address_text(const unsigned char b[16], char *out, size_t len)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0,    0,
	                                         0, 0, 0, 0, 0xff, 0xff};
	char buf[INET6_ADDRSTRLEN];

	if (!memcmp(b, mapped, 12))
		inet_ntop(AF_INET, b + 12, buf, sizeof buf);
	else
		inet_ntop(AF_INET6, b, buf, sizeof buf);
	snprintf(out, len, "%s", buf);
}

/*
 * X-Forwarded-For lists the hops a request passed, the client first, each
 * proxy appending the address it took the request from. Only what our
 * trusted proxies appended can be believed, so it is read from the right:
 * the first address that is not a trusted proxy is the client. An entry
 * that is not an address ends the walk at the last one believed.
 */
void
client_address(struct server *s, struct lws *wsi, char *out, size_t len)
{
	char xff[1024];
	unsigned char addr[16], hop[16];
	const char *end;
	int n;

	if (!lws_get_peer_simple(wsi, out, len)) {
		snprintf(out, len, "?");
		return;
	}
	if (!s->opt->trusted_proxy_count ||
	    !address_bytes(out, strlen(out), addr) || !trusted(s, addr))
		return;
	n = lws_hdr_copy(wsi, xff, sizeof xff, WSI_TOKEN_X_FORWARDED_FOR);
	if (n <= 0)
		return;
	end = xff + n;
	while (end > xff && trusted(s, addr)) {
		const char *start = end;

		while (start > xff && start[-1] != ',')
			start--;
		if (!address_bytes(start, (size_t)(end - start), hop))
			break;
		memcpy(addr, hop, sizeof addr);
		end = start > xff ? start - 1 : xff;
	}
	address_text(addr, out, len);
}

enum refusal
admit_client(struct server *s, struct lws *wsi, const char *peer,
             struct auth_claims *claims, bool token_checked, char *why,
             size_t whylen)
{
	size_t n;

	if (s->stopping) {
		snprintf(why, whylen, "the server is shutting down");
		return REFUSED_SHUTTING_DOWN;
	}
	if (!origin_allowed(s, wsi, why, whylen))
		return REFUSED_ORIGIN;
	if (s->auth && !token_checked &&
	    authenticate(s, wsi, claims, why, whylen))
		return REFUSED_UNAUTHORIZED;
	if (s->connections >= s->opt->max_connections) {
		snprintf(why, whylen,
		         "%zu connections open, the max-connections limit",
		         s->connections);
		return REFUSED_SERVER_FULL;
	}
	if (s->opt->max_connections_per_ip &&
	    (n = peer_connections(s, peer)) >= s->opt->max_connections_per_ip) {
		snprintf(why, whylen,
		         "%zu connections open from this address, the "
		         "max-connections-per-ip limit",
		         n);
		return REFUSED_PER_IP;
	}
	return REFUSED_COUNT;
}

/*
 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: admit the WebSocket upgrade or refuse
 * it with an HTTP status (see "Admission" at the top). Returns 0 to let
 * the upgrade go on, 1 when a refusal was written (lws then ends the HTTP
 * transaction), -1 to hang up.
 */
int
admit_upgrade(struct server *s, struct lws *wsi)
{
	struct admission *a = &s->admitted;
	struct auth_claims claims;
	char peer[PEER_MAX], why[300], who[PEER_MAX + 32];
	uint64_t id = ++s->next_conn_id;
	enum refusal r;

	memset(&claims, 0, sizeof claims);
	client_address(s, wsi, peer, sizeof peer);
	r = admit_client(s, wsi, peer, &claims, false, why, sizeof why);
	if (r == REFUSED_COUNT) {
		auth_claims_free(&a->claims);
		a->wsi = wsi;
		a->conn_id = id;
		memcpy(a->peer, peer, sizeof a->peer);
		a->claims = claims;
		return 0;
	}
	auth_claims_free(&claims);
	s->m.refused_ws[r]++;
	snprintf(who, sizeof who, "conn %llu (%s)", (unsigned long long)id,
	         peer);
	log_refusal(who, "WebSocket upgrade", r, why);
	return write_refusal(wsi, r, true) ? -1 : 1;
}

int
take_admission(struct server *s, struct lws *wsi, struct admission *out)
{
	struct admission *a = &s->admitted;

	if (a->wsi != wsi) {
		log_error("a WebSocket connection arrived without passing "
		          "admission; refused");
		return -1;
	}
	*out = *a;
	memset(a, 0, sizeof *a);
	return 0;
}

/*
 * Whether to take a client's permessage-deflate offer: with compression
 * on, and an offer ws_deflate can honour. What was decided waits with the
 * admission for ESTABLISHED.
 */
bool
confirm_compression(struct server *s, struct lws *wsi, const char *name)
{
	char offer[256];

	if (!s || !s->deflate || !name || strcmp(name, "permessage-deflate") ||
	    s->admitted.wsi != wsi)
		return false;
	if (lws_hdr_copy(wsi, offer, sizeof offer, WSI_TOKEN_EXTENSIONS) < 0 ||
	    !ws_deflate_offer_acceptable(offer))
		return false;
	s->admitted.deflate = true;
	return true;
}

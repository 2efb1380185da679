/*
 * http_api.c: the dynamic HTTP endpoints. /api/export streams history in
 * the format replay reads, /api/bars answers OHLCV bars, both read by the
 * query workers off the loop's thread and sent as they come; /metrics and
 * /healthz (metrics.c) answer at once. /api passes the WebSocket's origin
 * and token checks (admission.c) and the token's entitlements bound what
 * it returns.
 */
#define _GNU_SOURCE /* vasprintf */
#include "server_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http_query.h"
#include "jsonbuf.h"
#include "log.h"
#include "pipeline.h"
#include "query.h"
#include "sink.h"
#include "tick_file.h"

/* An HTTP client that takes nothing for this long is dropped. */
#define HTTP_STALL_SECS 60

/* An export or bars job has output (query.h's query_owner). */
static void
job_ready(struct query_owner *o)
{
	lws_callback_on_writable(((struct http_request *)o)->wsi);
}

/* Why the store cannot answer now (an edge whose ingest moved to a new
 * epoch: the store holds the old life), or NULL. */
static const char *
store_detached(struct server *s, struct sink_status *ss)
{
	bool detached = false;

	if (pipeline_sink_status(s->pipeline, "store", ss, &detached) ||
	    !detached)
		return NULL;
	return ss->reason;
}

/* Write the status line and headers of an API answer (never cached). len
 * may be LWS_ILLEGAL_HTTP_CONTENT_LEN: the body then ends with the
 * connection. A file_name (or NULL) makes the answer a download saved
 * under that name; it must need no quoting (export_file_name's do not). */
static int
http_write_headers(struct http_request *h, unsigned status,
                   const char *content_type, lws_filepos_t len,
                   const char *file_name)
{
	unsigned char headers[LWS_PRE + 1024], *start = headers + LWS_PRE,
	                                       *p = start,
	                                       *end = headers + sizeof headers;
	char disposition[256];
	int n = 0;

	if (file_name)
		n = snprintf(disposition, sizeof disposition,
		             "attachment; filename=\"%s\"", file_name);
	if (n < 0 || (size_t)n >= sizeof disposition)
		return -1;
	if (lws_add_http_common_headers(h->wsi, status, content_type, len, &p,
	                                end) ||
	    lws_add_http_header_by_name(
	            h->wsi, (const unsigned char *)"cache-control:",
	            (const unsigned char *)"no-store", 8, &p, end) ||
	    (file_name &&
	     lws_add_http_header_by_name(
	             h->wsi, (const unsigned char *)"content-disposition:",
	             (const unsigned char *)disposition, n, &p, end)) ||
	    lws_finalize_write_http_header(h->wsi, start, &p, end))
		return -1;
	return 0;
}

/* A time of an export's name: compact ISO 8601 in UTC, 20240301T143000Z,
 * with the microseconds when there are any (20240301T143000.250000Z). */
static void
export_name_time(int64_t us, char *out, size_t len)
{
	int64_t secs = us / 1000000, frac = us % 1000000;
	time_t t;
	struct tm tm;

	if (frac < 0) {
		frac += 1000000;
		secs--;
	}
	t = (time_t)secs;
	if (!gmtime_r(&t, &tm)) {
		snprintf(out, len, "%lld", (long long)us);
		return;
	}
	if (frac)
		snprintf(out, len, "%04d%02d%02dT%02d%02d%02d.%06lldZ",
		         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		         tm.tm_min, tm.tm_sec, (long long)frac);
	else
		snprintf(out, len, "%04d%02d%02dT%02d%02d%02dZ",
		         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		         tm.tm_min, tm.tm_sec);
}

/*
 * The name an export is saved under: SYMBOL-FROM-TO.csv (or .jsonl) with
 * the range as asked ("start" and "end" where it is open), symbols joined
 * with '+' ("all" for none, the first and a count when they would make a
 * long name). The '/' and ':' a symbol may hold are not for file names:
 * they become '_'.
 */
static void
export_file_name(const struct query_spec *q, char *out, size_t len)
{
	char syms[96] = "all", from[40] = "start", to[40] = "end";
	size_t i, used = 0;
	char *c;

	for (i = 0; i < q->symbol_count; i++) {
		size_t n = strlen(q->symbols[i]);

		if (used + n + 2 > sizeof syms) {
			snprintf(syms, sizeof syms, "%s+%zu-more", q->symbols[0],
			         q->symbol_count - 1);
			used = strlen(syms);
			break;
		}
		if (used)
			syms[used++] = '+';
		memcpy(syms + used, q->symbols[i], n + 1);
		used += n;
	}
	for (c = syms; *c; c++)
		if (*c == '/' || *c == ':')
			*c = '_';
	if (q->from > 0)
		export_name_time(q->from, from, sizeof from);
	if (q->to != INT64_MAX)
		export_name_time(q->to, to, sizeof to);
	snprintf(out, len, "%s-%s-%s.%s", syms, from, to,
	         q->jsonl ? "jsonl" : "csv");
}

/* http_respond(), the answer a download saved as file_name (or NULL). */
static int
http_respond_file(struct http_request *h, unsigned status,
                  const char *content_type, char *body, size_t len,
                  const char *file_name)
{
	struct server *s = lws_context_user(lws_get_context(h->wsi));
	size_t off = 0, n;
	int rc;

	/* lws keeps what the kernel does not take at once and sends it
	 * before the next request is read. */
	rc = http_write_headers(h, status, content_type, (lws_filepos_t)len,
	                        file_name);
	while (!rc && off < len) {
		n = len - off < FRAME_CAP ? len - off : FRAME_CAP;
		memcpy(s->frame + LWS_PRE, body + off, n);
		off += n;
		if (lws_write(h->wsi, (unsigned char *)s->frame + LWS_PRE, n,
		              off == len ? LWS_WRITE_HTTP_FINAL
		                         : LWS_WRITE_HTTP) < (int)n)
			rc = -1;
		else
			s->m.http_bytes_sent += n;
	}
	free(body);
	if (rc)
		return -1;
	h->answered = true;
	/* As for an export: a client that takes nothing is dropped. */
	lws_set_timeout(h->wsi, PENDING_TIMEOUT_HTTP_CONTENT, HTTP_STALL_SECS);
	return 0;
}

int
http_respond(struct http_request *h, unsigned status, const char *content_type,
             char *body, size_t len)
{
	return http_respond_file(h, status, content_type, body, len, NULL);
}

int
http_respond_text(struct http_request *h, unsigned status, const char *fmt, ...)
{
	char *body = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&body, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	return http_respond(h, status, "text/plain; charset=utf-8", body,
	                    (size_t)n);
}

/* Answer 400 with the reason; returns -1 so callers can stop at once. */
static int http_reject(struct http_request *h, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static int
http_reject(struct http_request *h, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	http_respond_text(h, 400, "%s", msg);
	return -1;
}

/*
 * Read the request's URL arguments into q (http_query.h): lws has split
 * them at '&' and decoded them. Returns 0, or -1 after answering 400 with
 * the reason, which names the argument.
 */
static int
http_read_query(struct http_request *h, struct http_query *q)
{
	int total = lws_hdr_total_length(h->wsi, WSI_TOKEN_HTTP_URI_ARGS);
	char err[512], *arg;
	int i, n, rc = 0;

	/* Room for the whole query, so that a long argument is copied whole
	 * and refused by name: lws_hdr_copy_fragment() reports one that does
	 * not fit as if there were no more. */
	arg = malloc((size_t)total + 1);
	if (!arg) {
		http_respond_text(h, 500, "out of memory\n");
		return -1;
	}
	for (i = 0; !rc && (n = lws_hdr_copy_fragment(h->wsi, arg, total + 1,
	                                              WSI_TOKEN_HTTP_URI_ARGS,
	                                              i)) >= 0;
	     i++) {
		/* libwebsockets 4.1.6 hands an empty last argument ("?" or a
		 * trailing "&") over as "/": no argument at all. */
		if (n == 1 && arg[0] == '/')
			continue;
		rc = http_query_arg(q, arg, (size_t)n, err, sizeof err);
	}
	free(arg);
	if (!rc)
		rc = http_query_finish(q, err, sizeof err);
	return rc ? http_reject(h, "%s\n", err) : 0;
}

static int
http_start_job(struct server *s, struct http_request *h,
               const struct query_spec *q, const char *content_type,
               const char *file_name)
{
	struct query_spec capped = *q;

	/* A replay: nothing from after its position. */
	query_spec_end_at(&capped, pipeline_history_end(s->pipeline));
	h->job = query_submit(s->queries, &capped, &h->owner);
	if (!h->job)
		return http_respond_text(h, 500, "out of memory\n");
	h->next = s->exports;
	s->exports = h;
	h->listed = true;
	/* The length is not known before the rows are read: the body ends
	 * when the connection closes. */
	if (http_write_headers(h, 200, content_type,
	                       LWS_ILLEGAL_HTTP_CONTENT_LEN, file_name))
		return -1;
	lws_callback_on_writable(h->wsi);
	return 0;
}

/*
 * With a token: refuse (403, naming it) a symbol= the token does not
 * grant. Returns 0, or -1 after answering.
 */
static int
http_check_entitled(struct server *s, struct http_request *h,
                    const struct auth_claims *claims,
                    const struct query_spec *q)
{
	size_t i;

	if (!claims)
		return 0;
	for (i = 0; i < q->symbol_count; i++) {
		if (auth_claims_allow(claims, q->symbols[i]))
			continue;
		s->m.refused_api[REFUSED_FORBIDDEN]++;
		log_limited(LOG_INFO,
		            "http (%s, sub '%s'): not entitled to '%s'",
		            h->peer, claims->sub, q->symbols[i]);
		http_respond_text(h, 403, "not entitled to '%s'\n",
		                  q->symbols[i]);
		return -1;
	}
	return 0;
}

struct entitled_symbols {
	const struct auth_claims *claims;
	struct query_spec *q;
	size_t total; /* entitled symbols with data, also beyond the spec's room
	               */
};

static void
collect_entitled(const struct symbol_state *st, void *ctx)
{
	struct entitled_symbols *e = ctx;

	if (!auth_claims_allow(e->claims, st->symbol))
		return;
	if (e->q->symbol_count < QUERY_MAX_SYMBOLS)
		memcpy(e->q->symbols[e->q->symbol_count++], st->symbol,
		       sizeof e->q->symbols[0]);
	e->total++;
}

static int
compare_symbol(const void *a, const void *b)
{
	return strcmp(a, b);
}

/*
 * An export without symbol= means "everything": for a token that does not
 * grant "*", everything it grants. Those are the engine's symbols (every
 * stored symbol has its state there) that the token allows. Returns 0 with
 * them in q; else the request has been answered (an empty export saved
 * as file_name when there are none, 400 when there are more than one
 * export takes) and the
 * result is 1, or -1 when even the answer failed.
 */
static int
http_export_entitled(struct http_request *h, const struct auth_claims *claims,
                     struct query_spec *q, const char *file_name)
{
	struct server *s = lws_context_user(lws_get_context(h->wsi));
	struct entitled_symbols e = {.claims = claims, .q = q};
	struct jsonbuf b;
	char *body;

	engine_foreach_symbol(s->engine, collect_entitled, &e);
	if (e.total > QUERY_MAX_SYMBOLS)
		return http_respond_text(h, 400,
		                         "your token grants %zu symbols with "
		                         "data; an export takes at most %d: "
		                         "name them with symbol=\n",
		                         e.total, QUERY_MAX_SYMBOLS)
		               ? -1
		               : 1;
	if (e.total) {
		qsort(q->symbols, q->symbol_count, sizeof q->symbols[0],
		      compare_symbol);
		return 0;
	}
	/* Nothing granted has data: the export is empty, but well formed. */
	jsonbuf_init(&b, 0);
	if (!q->jsonl)
		tick_file_write_csv_header(&b);
	body = strndup(jsonbuf_data(&b) ? jsonbuf_data(&b) : "", b.len);
	jsonbuf_free(&b);
	if (!body)
		return http_respond_text(h, 500, "out of memory\n") ? -1 : 1;
	return http_respond_file(h, 200,
	                         q->jsonl ? "application/x-ndjson"
	                                  : "text/csv; charset=utf-8",
	                         body, strlen(body), file_name)
	               ? -1
	               : 1;
}

static int
http_export(struct server *s, struct http_request *h,
            const struct auth_claims *claims)
{
	struct http_query hq;
	struct query_spec *q = &hq.spec;
	char file_name[200];
	int rc;

	http_query_init(&hq, QUERY_EXPORT);
	if (http_read_query(h, &hq))
		return 0;
	/* Named as asked: an export of everything is "all" also for a token
	 * that narrows it below to the symbols it grants. */
	export_file_name(q, file_name, sizeof file_name);
	if (http_check_entitled(s, h, claims, q))
		return 0;
	if (claims && !claims->allow_all && !q->symbol_count) {
		rc = http_export_entitled(h, claims, q, file_name);
		if (rc)
			return rc < 0 ? -1 : 0;
	}
	return http_start_job(s, h, q,
	                      q->jsonl ? "application/x-ndjson"
	                               : "text/csv; charset=utf-8",
	                      file_name);
}

static int
http_bars(struct server *s, struct http_request *h,
          const struct auth_claims *claims)
{
	struct http_query hq;

	http_query_init(&hq, QUERY_BARS);
	if (http_read_query(h, &hq))
		return 0;
	if (http_check_entitled(s, h, claims, &hq.spec))
		return 0;
	return http_start_job(s, h, &hq.spec, "application/json", NULL);
}

static void
http_unlist(struct server *s, struct http_request *h)
{
	struct http_request **pp;

	if (!h->listed)
		return;
	for (pp = &s->exports; *pp; pp = &(*pp)->next)
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	h->listed = false;
}

/* HTTP_WRITEABLE: the next piece of an export or bars answer. */
static int
http_writeable(struct server *s, struct http_request *h)
{
	size_t n;
	bool done = false;

	if (!h || !h->job)
		return 0;
	n = query_job_read(h->job, s->frame + LWS_PRE, FRAME_CAP, &done);
	if (!n && !done)
		return 0; /* the query wake brings us back */
	if (done && query_job_error(h->job))
		log_warn("http export cut short: %s", query_job_error(h->job));
	if (lws_write(h->wsi, (unsigned char *)s->frame + LWS_PRE, n,
	              done ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
		return -1;
	s->m.http_bytes_sent += n;
	/* An export holds a read snapshot open, which keeps the WAL from
	 * being checkpointed: a client that stops reading is dropped. */
	lws_set_timeout(h->wsi, PENDING_TIMEOUT_HTTP_CONTENT, HTTP_STALL_SECS);
	if (!done) {
		lws_callback_on_writable(h->wsi);
		return 0;
	}
	http_unlist(s, h);
	query_job_release(h->job);
	h->job = NULL;
	/* This may end the request, and free h. */
	return lws_http_transaction_completed(h->wsi) ? -1 : 0;
}

/*
 * /api/…: the WebSocket's origin and token checks, then the endpoint with
 * the token's claims. /metrics and /healthz do not come here: they stay
 * open for monitoring (the README says to keep them off public networks).
 */
static int
http_api(struct server *s, struct http_request *h, const char *path)
{
	enum refusal r = REFUSED_COUNT;
	struct auth_claims claims;
	const struct auth_claims *granted = NULL;
	struct sink_status ss;
	const char *detached;
	char why[300], who[PEER_MAX + 16], what[160];
	int rc;

	memset(&claims, 0, sizeof claims);
	if (!origin_allowed(s, h->wsi, why, sizeof why))
		r = REFUSED_ORIGIN;
	else if (s->auth && authenticate(s, h->wsi, &claims, why, sizeof why))
		r = REFUSED_UNAUTHORIZED;
	if (r != REFUSED_COUNT) {
		s->m.refused_api[r]++;
		snprintf(who, sizeof who, "http (%s)", h->peer);
		snprintf(what, sizeof what, "GET %.120s", path);
		sanitize(what);
		log_refusal(who, what, r, why);
		if (write_refusal(h->wsi, r, false))
			return -1;
		h->answered = true;
		return 0;
	}
	if (s->auth)
		granted = &claims;

	detached = store_detached(s, &ss);
	if (!s->queries &&
	    (!strcmp(path, "/api/export") || !strcmp(path, "/api/bars")))
		rc = http_respond_text(h, 503,
		                       "history needs the SQLite store; this "
		                       "server runs without one (--db none)\n");
	else if (detached &&
	         (!strcmp(path, "/api/export") || !strcmp(path, "/api/bars")))
		rc = http_respond_text(h, 503, "%s\n", detached);
	else if (!strcmp(path, "/api/export"))
		rc = http_export(s, h, granted);
	else if (!strcmp(path, "/api/bars"))
		rc = http_bars(s, h, granted);
	else if (!strcmp(path, "/api/status"))
		rc = http_status(s, h, granted);
	else
		rc = http_respond_text(h, 404,
		                       "no such endpoint '%s' (try "
		                       "/api/export, /api/bars, /api/status, "
		                       "/metrics, /healthz)\n",
		                       path);
	auth_claims_free(&claims);
	return rc;
}

/*
 * Pipelining: a client may send its next requests on a keep-alive
 * connection before the answer to the first, all in one write. lws 4.1.6
 * keeps what it read past the end of a request's headers and parses it
 * once the request is done. But while an answer is still going out (a job
 * written from HTTP_WRITEABLE, or an answer the kernel did not take at
 * once) it also hands that kept input to its parser on every loop turn;
 * the parser, which still holds the request in flight, swallows the input
 * and calls LWS_CALLBACK_HTTP for the request in flight a second time,
 * after binding the connection to our protocol again. That frees lws's
 * per-session data, which held the request (its job, its place in
 * s->exports) and was then used after being freed; and from then on lws
 * gives the connection no writeable callback and sends nothing it holds.
 *
 * So a request is ours (struct http_request, found from the connection)
 * and lasts until lws has finished it. Answers known at once are written
 * whole in LWS_CALLBACK_HTTP and the request is finished there and then,
 * before lws looks at the next one: the requests behind it are answered,
 * in order. When lws calls LWS_CALLBACK_HTTP again for a request in
 * flight, the requests behind it are lost and the answer cannot go on:
 * the connection is closed, so that the client knows to ask again.
 */
static void
http_request_free(struct server *s, struct http_request *h)
{
	http_stream_request_done(s, h);
	lws_set_opaque_user_data(h->wsi, NULL);
	http_unlist(s, h);
	query_job_release(h->job);
	free(h);
}

void
http_request_done(struct lws *wsi)
{
	struct server *s = lws_context_user(lws_get_context(wsi));
	struct http_request *h = lws_get_opaque_user_data(wsi);

	if (h)
		http_request_free(s, h);
}

/*
 * POST. libwebsockets 4.1.6 mishandles a request body in two ways that a
 * client can set off: a POST that arrives behind another request in the
 * same read has its own headers taken for its body, and once that request
 * is answered lws loops for ever reading nothing from the rest (the whole
 * server stops, SIGTERM too); and a POST without Content-Length is taken
 * to have a 100 MiB body, which swallows the requests after it. Both need
 * the connection to go on after the POST's answer, so it does not: every
 * POST (only /stream/send and /stream/ticket take one) is answered with
 * "Connection: close" and its connection closed, and no request is read
 * after it. A browser opens another connection for the next one.
 */

const char *
http_method_name(enum http_method m)
{
	static const char *const names[] = {"GET", "POST", "HEAD", "OPTIONS",
	                                    "PUT", "DELETE", "PATCH"};

	return names[m];
}

/* The request's method and path (lws keeps the path in the token of its
 * method). */
static void
request_method_and_path(struct http_request *h, char *path, size_t len)
{
	static const struct {
		enum lws_token_indexes token;
		enum http_method method;
	} tokens[] = {
	        {WSI_TOKEN_GET_URI, HTTP_GET},
	        {WSI_TOKEN_POST_URI, HTTP_POST},
	        {WSI_TOKEN_OPTIONS_URI, HTTP_OPTIONS},
	        {WSI_TOKEN_HEAD_URI, HTTP_HEAD},
	        {WSI_TOKEN_PUT_URI, HTTP_PUT},
	        {WSI_TOKEN_DELETE_URI, HTTP_DELETE},
	        {WSI_TOKEN_PATCH_URI, HTTP_PATCH},
	};
	size_t i;

	path[0] = '\0';
	h->method = HTTP_GET;
	for (i = 0; i < sizeof tokens / sizeof tokens[0]; i++)
		if (lws_hdr_total_length(h->wsi, tokens[i].token) > 0) {
			h->method = tokens[i].method;
			lws_hdr_copy(h->wsi, path, (int)len, tokens[i].token);
			return;
		}
}

/* LWS_CALLBACK_HTTP on an API mount. */
static int
http_request_start(struct server *s, struct lws *wsi)
{
	struct http_request *h = lws_get_opaque_user_data(wsi);
	char path[128];
	int rc;

	if (h) {
		/* lws read the request in flight again (see above). */
		log_limited(LOG_INFO,
		            "http (%s): requests pipelined behind one still "
		            "being answered were lost (libwebsockets 4.1.6); "
		            "closing the connection",
		            h->peer);
		return -1;
	}
	h = calloc(1, sizeof *h);
	if (!h)
		return -1;
	h->owner.ready = job_ready;
	h->wsi = wsi;
	lws_set_opaque_user_data(wsi, h);
	client_address(s, wsi, h->peer, sizeof h->peer);
	/* `in` is the path below the mount point; the mount point itself
	 * tells which endpoint was asked for. */
	request_method_and_path(h, path, sizeof path);
	if (!strncmp(path, "/stream/", 8))
		rc = http_stream_request(s, h, path);
	else if (h->method != HTTP_GET)
		rc = http_respond_text(h, 405, "%s is not taken on %s: GET\n",
		                       http_method_name(h->method), path);
	else if (!strcmp(path, "/metrics"))
		rc = http_metrics(s, h);
	else if (!strcmp(path, "/healthz"))
		rc = http_healthz(s, h);
	else
		rc = http_api(s, h, path);
	if (rc)
		return -1;
	if (h->job || h->later)
		return 0; /* written as it comes, from HTTP_WRITEABLE */
	if (!h->answered)
		return -1; /* even the error could not be written */
	/* A POST answered at once (a refusal, a ticket, a bad request)
	 * ends its connection: see "POST" above. */
	if (h->method == HTTP_POST)
		return -1;
	/* Answered whole: the request ends now, and lws goes on to the next
	 * one. This may free h. */
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int
http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
              void *in, size_t len)
{
	struct server *s = lws_context_user(lws_get_context(wsi));

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return http_request_start(s, wsi);

	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		/* An upgrade on a keep-alive connection that last served an
		 * /api request reaches this protocol: admit it all the same. */
		if (!s || !in || strcasecmp(in, "websocket"))
			break;
		return admit_upgrade(s, wsi);

	case LWS_CALLBACK_HTTP_WRITEABLE: {
		struct http_request *h = lws_get_opaque_user_data(wsi);

		if (h && h->stream)
			return http_stream_writeable(s, h);
		return http_writeable(s, h);
	}

	/* The body of a POST, and the stream requests' timers: only
	 * http_stream.c's requests have either. */
	case LWS_CALLBACK_HTTP_BODY: {
		struct http_request *h = lws_get_opaque_user_data(wsi);

		if (h && h->stream)
			return http_stream_body(s, h, in, len);
		break;
	}

	case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
		struct http_request *h = lws_get_opaque_user_data(wsi);

		if (h && h->stream)
			return http_stream_body_done(s, h);
		break;
	}

	case LWS_CALLBACK_TIMER: {
		struct http_request *h = lws_get_opaque_user_data(wsi);

		if (h && h->stream)
			return http_stream_timer(s, h);
		return 0;
	}

	case LWS_CALLBACK_CLOSED_HTTP:
		http_request_done(wsi);
		break;

	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/*
 * LWS_CALLBACK_ADD_HEADERS of a file the static mount serves. The client
 * library may be imported by a page of any origin, as a CDN serves one
 * (`import … from "https://prices.example.com/client/publisher.js"`): a
 * module script from another origin needs Access-Control-Allow-Origin.
 * It is public code, so any origin; what it connects to is still held to
 * the Origin check and tokens. Returns what the callback returns.
 */
int
http_static_headers(struct lws *wsi, struct lws_process_html_args *args)
{
	char uri[64];

	if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 ||
	    strncmp(uri, "/client/", 8))
		return 0;
	return lws_add_http_header_by_name(
	               wsi, (const unsigned char *)"access-control-allow-origin:",
	               (const unsigned char *)"*", 1, (unsigned char **)&args->p,
	               (unsigned char *)args->p + args->max_len)
	               ? 1
	               : 0;
}

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

/* Start a response whose body is already known; it is written on the
 * next HTTP_WRITEABLE. */
/* Write the status line and headers of an API answer (never cached) and ask
 * for HTTP_WRITEABLE to send the body. len may be
 * LWS_ILLEGAL_HTTP_CONTENT_LEN: the body then ends with the connection. */
static int
http_send_headers(struct http_request *h, unsigned status,
                  const char *content_type, lws_filepos_t len)
{
	unsigned char headers[LWS_PRE + 1024], *start = headers + LWS_PRE,
	                                       *p = start,
	                                       *end = headers + sizeof headers;

	if (lws_add_http_common_headers(h->wsi, status, content_type, len, &p,
	                                end) ||
	    lws_add_http_header_by_name(
	            h->wsi, (const unsigned char *)"cache-control:",
	            (const unsigned char *)"no-store", 8, &p, end) ||
	    lws_finalize_write_http_header(h->wsi, start, &p, end))
		return -1;
	lws_callback_on_writable(h->wsi);
	return 0;
}

int
http_respond(struct http_request *h, unsigned status, const char *content_type,
             char *body, size_t len)
{
	h->body = body;
	h->body_len = len;
	h->body_sent = 0;
	return http_send_headers(h, status, content_type, (lws_filepos_t)len);
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
	     i++)
		rc = http_query_arg(q, arg, (size_t)n, err, sizeof err);
	free(arg);
	if (!rc)
		rc = http_query_finish(q, err, sizeof err);
	return rc ? http_reject(h, "%s\n", err) : 0;
}

static int
http_start_job(struct server *s, struct http_request *h,
               const struct query_spec *q, const char *content_type)
{
	h->job = query_submit(s->queries, q, &h->owner);
	if (!h->job)
		return http_respond_text(h, 500, "out of memory\n");
	h->next = s->exports;
	s->exports = h;
	h->listed = true;
	/* The length is not known before the rows are read: the body ends
	 * when the connection closes. */
	return http_send_headers(h, 200, content_type,
	                         LWS_ILLEGAL_HTTP_CONTENT_LEN);
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
 * them in q; else the request has been answered (an empty export when
 * there are none, 400 when there are more than one export takes) and the
 * result is 1, or -1 when even the answer failed.
 */
static int
http_export_entitled(struct http_request *h, const struct auth_claims *claims,
                     struct query_spec *q)
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
	return http_respond(h, 200,
	                    q->jsonl ? "application/x-ndjson"
	                             : "text/csv; charset=utf-8",
	                    body, strlen(body))
	               ? -1
	               : 1;
}

static int
http_export(struct server *s, struct http_request *h,
            const struct auth_claims *claims)
{
	struct http_query hq;
	struct query_spec *q = &hq.spec;
	int rc;

	http_query_init(&hq, QUERY_EXPORT);
	if (http_read_query(h, &hq))
		return 0;
	if (http_check_entitled(s, h, claims, q))
		return 0;
	if (claims && !claims->allow_all && !q->symbol_count) {
		rc = http_export_entitled(h, claims, q);
		if (rc)
			return rc < 0 ? -1 : 0;
	}
	return http_start_job(s, h, q,
	                      q->jsonl ? "application/x-ndjson"
	                               : "text/csv; charset=utf-8");
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
	return http_start_job(s, h, &hq.spec, "application/json");
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

static int
http_writeable(struct server *s, struct http_request *h)
{
	enum lws_write_protocol wp = LWS_WRITE_HTTP;
	size_t n;
	bool done = false;

	if (h->body) {
		n = h->body_len - h->body_sent;
		if (n > FRAME_CAP)
			n = FRAME_CAP;
		memcpy(s->frame + LWS_PRE, h->body + h->body_sent, n);
		h->body_sent += n;
		done = h->body_sent == h->body_len;
	} else if (h->job) {
		n = query_job_read(h->job, s->frame + LWS_PRE, FRAME_CAP,
		                   &done);
		if (!n && !done)
			return 0; /* the query wake brings us back */
		if (done && query_job_error(h->job))
			log_warn("http export cut short: %s",
			         query_job_error(h->job));
	} else {
		return 0;
	}
	if (done)
		wp = LWS_WRITE_HTTP_FINAL;
	if (lws_write(h->wsi, (unsigned char *)s->frame + LWS_PRE, n, wp) <
	    (int)n)
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
	if (h->job) {
		query_job_release(h->job);
		h->job = NULL;
	}
	free(h->body);
	h->body = NULL;
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
	client_address(s, h->wsi, h->peer, sizeof h->peer);
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
		return lws_http_transaction_completed(h->wsi) ? -1 : 0;
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
	else
		rc = http_respond_text(h, 404,
		                       "no such endpoint '%s' (try "
		                       "/api/export, /api/bars, /metrics, "
		                       "/healthz)\n",
		                       path);
	auth_claims_free(&claims);
	return rc;
}

int
http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
              void *in, size_t len)
{
	struct http_request *h = user;
	struct server *s = lws_context_user(lws_get_context(wsi));
	char path[128];

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		memset(h, 0, sizeof *h);
		h->owner.ready = job_ready;
		h->wsi = wsi;
		/* `in` is the path below the mount point; the mount point
		 * itself tells which endpoint was asked for. */
		lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI);
		if (!strcmp(path, "/metrics"))
			return http_metrics(s, h);
		if (!strcmp(path, "/healthz"))
			return http_healthz(s, h);
		return http_api(s, h, path);

	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		/* An upgrade on a keep-alive connection that last served an
		 * /api request reaches this protocol: admit it all the same. */
		if (!s || !in || strcasecmp(in, "websocket"))
			break;
		return admit_upgrade(s, wsi);

	case LWS_CALLBACK_HTTP_WRITEABLE:
		return http_writeable(s, h);

	case LWS_CALLBACK_CLOSED_HTTP:
		if (h && h->wsi) {
			http_unlist(s, h);
			query_job_release(h->job);
			h->job = NULL;
			free(h->body);
			h->body = NULL;
			h->wsi = NULL;
		}
		break;

	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/*
 * server.c: the libwebsockets context of the publisher, its mounts and its
 * lifetime.
 *
 * One thread runs the libuv loop that libwebsockets and the pipeline share:
 * HTTP for the dashboard files (the "/" mount), the /ws protocol (ws.c),
 * the dynamic endpoints (http_api.c, metrics.c), and draining the feed
 * into the engine (pipeline.c). Producer threads (the feed, the store, the
 * query workers, Redis) each wake the loop through a wake of their own
 * (wake.h); the query workers' wake lands here and tells the owners of the
 * jobs with output, and no others.
 */
#define _GNU_SOURCE /* realpath */
#include "server_private.h"
#include "version.h"

#include <dlfcn.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "clock.h"
#include "log.h"
#include "pipeline.h"
#include "query.h"
#include "wake.h"
#include "ws_deflate.h"

/* How often idle connections are checked for a due heartbeat. */
#define HOUSEKEEPING_US (100 * LWS_US_PER_MS)
/* How long shutdown waits for close frames to go out. */
#define SHUTDOWN_GRACE_US (1000 * LWS_US_PER_MS)
/* Threads answering history and export requests. */
#define QUERY_THREADS 2
/* Freed memory is handed back to the system after a burst of frees of at
 * least this much, once it is over, and at most this often. */
#define TRIM_AFTER_BYTES (1u << 20)
#define TRIM_EVERY_US    (1000 * LWS_US_PER_MS)

/* The query workers' wake: only the owners whose jobs have news. */
static void
take_query_output(void *ctx)
{
	struct server *s = ctx;

	query_worker_take_ready(s->queries, query_owner_ready, NULL);
}

static void
begin_shutdown(struct server *s)
{
	if (s->stopping)
		return;
	s->stopping = true;
	s->stop_deadline_us = clock_wall_us() + SHUTDOWN_GRACE_US;
	log_info("shutting down: closing %s client connections",
	         s->connections ? "all" : "no");
	session_hub_close_all(s->hub, SESSION_CLOSE_GOING_AWAY,
	                      "server shutting down");
	http_stream_shutdown(s);
}

/*
 * Hand freed memory back to the system once clients that held many symbols
 * have gone. glibc keeps freed memory for reuse and gives back little of
 * it by itself, so after a flood of subscriptions to made-up names the
 * process would stay at its peak size. When the engine has freed
 * TRIM_AFTER_BYTES or more since the last trim and a whole housekeeping
 * tick went by without more (the burst is over), malloc_trim() returns the
 * free pages of every arena. It walks the free lists, a few milliseconds
 * for a heap of hundreds of MB, hence at most once a second. While frees
 * keep coming it waits: allocations then usually keep coming too, and
 * reuse that memory.
 */
static void
trim_after_frees(struct server *s)
{
#ifdef __GLIBC__
	struct engine_stats es;
	int64_t t0 = clock_mono_us();
	uint64_t freed;

	engine_get_stats(s->engine, &es);
	if (es.bytes_freed != s->trim.freed_seen) {
		s->trim.freed_seen = es.bytes_freed;
		return;
	}
	freed = es.bytes_freed - s->trim.freed_trimmed;
	if (freed < TRIM_AFTER_BYTES ||
	    (s->trim.last_us && t0 - s->trim.last_us < TRIM_EVERY_US))
		return;
	malloc_trim(0);
	s->trim.freed_trimmed = es.bytes_freed;
	s->trim.last_us = clock_mono_us();
	s->m.memory_trims++;
	log_debug("memory: the engine freed %llu KiB since the last trim; "
	          "free memory handed back to the system in %lld us",
	          (unsigned long long)(freed / 1024),
	          (long long)(s->trim.last_us - t0));
#else
	(void)s;
#endif
}

/*
 * Periodic: heartbeats on idle connections and token expiry (the
 * sessions'), log summaries, freed memory handed back. One timer for the
 * whole server instead of one per connection keeps the per-write cost
 * flat.
 */
static void
housekeeping(lws_sorted_usec_list_t *sul)
{
	struct server *s = lws_container_of(sul, struct server, housekeeping);

	session_hub_housekeeping(s->hub, clock_wall_us());
	http_stream_housekeeping(s, clock_mono_us());
	log_flush_suppressed();
	trim_after_frees(s);
	lws_sul_schedule(s->context, 0, &s->housekeeping, housekeeping,
	                 HOUSEKEEPING_US);
}

static void
lws_log_to_ours(int level, const char *line)
{
	size_t n = strlen(line);

	/* lws lines end with a newline; ours add their own. */
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	log_msg(level == LLL_ERR ? LOG_ERROR : LOG_WARN, "lws: %.*s", (int)n,
	        line);
}

static bool
is_ipv4_literal(const char *h)
{
	unsigned a, b, c, d;
	char tail;

	return sscanf(h, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4;
}

/* lws only says that its context failed; a missing or unreadable TLS file
 * is told apart here, with its name. Returns 0, or -1 with err set. */
static int
check_readable(const char *option, const char *path, char *err, size_t errlen)
{
	struct stat st;
	FILE *f;

	if (stat(path, &st)) {
		snprintf(err, errlen, "%s '%s': %s", option, path,
		         strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s '%s': not a regular file", option,
		         path);
		return -1;
	}
	f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s '%s': %s", option, path,
		         strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

/* While stopping: done once every client has gone, or at the deadline. */
/* The loop's idle turn, while connections have work (see "Writes" in
 * ws.c): written after the events that made it due, in one go. */
static void
work_idle(uv_idle_t *h)
{
	struct server *s = h->data;

	ws_work_run(s);
	http_stream_work_run(s);
	if (!s->work && !s->stream_work)
		uv_idle_stop(h);
}

void
server_work_soon(struct server *s)
{
	uv_idle_start(&s->work_idle, work_idle);
}

static void
stop_check(uv_timer_t *t)
{
	struct server *s = t->data;

	if ((!s->connections && !s->closing) ||
	    clock_wall_us() >= s->stop_deadline_us) {
		uv_timer_stop(&s->stop_timer);
		uv_stop(s->loop);
	}
}

static void
stop_now(void *ctx)
{
	struct server *s = ctx;

	begin_shutdown(s);
	uv_timer_start(&s->stop_timer, stop_check, 0, 10);
}

static void
on_signal(uv_signal_t *h, int signum)
{
	stop_now(h->data);
}

/*
 * The pipeline's epoch_changed hook (an edge's ingest began a new life of
 * the data; the engine is already empty): every WebSocket is closed with
 * 1012 (service restart), so clients reconnect, read the new epoch in the
 * hello and take fresh snapshots instead of resuming.
 */
static void
epoch_changed(const char *epoch, void *ctx)
{
	struct server *s = ctx;

	session_hub_close_all(s->hub, SESSION_CLOSE_SERVICE_RESTART,
	                      "new epoch, reconnect");
}

/*
 * libwebsockets loads its libuv support as a plugin and unloads it when a
 * context is destroyed. On a loop it does not own, handles it closed may
 * still have their close callbacks to run then: keeping the plugin loaded
 * for the life of the process (RTLD_NODELETE) keeps those callbacks valid.
 * Returns 0, or -1 with the cause in err.
 */
static int
pin_uv_plugin(char *err, size_t errlen)
{
	static void *handle;

	if (handle)
		return 0;
	handle = dlopen("libwebsockets-evlib_uv.so", RTLD_NOW | RTLD_NODELETE);
	if (handle)
		return 0;
	snprintf(err, errlen,
	         "libwebsockets' libuv event library is missing (%s); install "
	         "the Debian package libwebsockets-evlib-uv",
	         dlerror());
	return -1;
}

/*
 * lws_create_context() failing on a foreign libuv loop leaves close
 * callbacks on that loop that use what it has already freed (lws 4.1.6):
 * the loop cannot turn again. So what makes it fail is checked first,
 * where the cause can also be named: the address can be bound, and the
 * certificate and key load and match. Returns 0, or -1 with err.
 */
static int
check_bind(const char *host, int port, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	char service[16];
	int rc = -1, e = 0, one = 1;

	if (port == 0)
		return 0;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(service, sizeof service, "%d", port);
	if (getaddrinfo(strcmp(host, "0.0.0.0") && strcmp(host, "::") &&
	                                strcmp(host, "[::]")
	                        ? host
	                        : NULL,
	                service, &hints, &res)) {
		snprintf(err, errlen, "cannot listen on %s:%d: not an address",
		         host, port);
		return -1;
	}
	for (ai = res; ai && rc; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype, 0);

		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			rc = 0;
		else
			e = errno;
		close(fd);
	}
	freeaddrinfo(res);
	if (rc)
		snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port,
		         e == EADDRINUSE      ? "address in use"
		         : e == EADDRNOTAVAIL ? "not an address of this machine"
		                              : strerror(e));
	return rc;
}

static int
check_tls_files(const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	const char *what = NULL;
	char why[256] = "";

	if (!ctx) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		what = "TLS certificate: not a PEM certificate";
	else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		what = "TLS key: not a PEM private key";
	else if (SSL_CTX_check_private_key(ctx) != 1)
		what = "TLS key does not match the certificate";
	if (what) {
		ERR_error_string_n(ERR_get_error(), why, sizeof why);
		snprintf(err, errlen, "%s ('%s', '%s': %s)", what, cert, key,
		         why);
	}
	SSL_CTX_free(ctx);
	return what ? -1 : 0;
}

struct server *
server_create(const struct server_options *opt,
              const struct server_parts *parts, char *err, size_t errlen)
{
	struct lws_context_creation_info info;
	struct pipeline_hooks hooks;
	struct server *s;
	void *loops[1];
	char index_path[PATH_MAX + 16];
	struct stat st;
	const char *host = opt->listen_host;

	s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->opt = opt;
	s->parts = *parts;
	s->loop = parts->loop;
	s->pipeline = parts->pipeline;
	s->engine = pipeline_engine(parts->pipeline);
	s->started = time(NULL);
	jsonbuf_init(&s->stream_out, LWS_PRE);
	/* Set before the feed starts; what the store gave back is served
	 * whole, even beyond the bound. */
	engine_set_max_symbols(s->engine, opt->max_symbols_total);
	if (opt->max_symbols_total &&
	    engine_symbol_count(s->engine) > opt->max_symbols_total)
		log_warn(
		        "the store holds %zu symbols, more than "
		        "--max-symbols-total %zu: all are served, but ticks of "
		        "symbols new to the server are refused",
		        engine_symbol_count(s->engine), opt->max_symbols_total);

	if (opt->auth_secret) {
		char why[400];

		s->auth = auth_create(opt->auth_secret, why, sizeof why);
		if (!s->auth) {
			snprintf(err, errlen, "token secret: %s", why);
			goto fail;
		}
	}
	if (opt->tls_cert &&
	    (check_readable("TLS certificate", opt->tls_cert, err, errlen) ||
	     check_readable("TLS key", opt->tls_key, err, errlen) ||
	     check_tls_files(opt->tls_cert, opt->tls_key, err, errlen)))
		goto fail;
	if (check_bind(opt->listen_host, opt->listen_port, err, errlen))
		goto fail;

	if (!realpath(opt->web, s->web_dir)) {
		snprintf(err, errlen, "web directory '%s': %s", opt->web,
		         strerror(errno));
		goto fail;
	}
	snprintf(index_path, sizeof index_path, "%s/index.html", s->web_dir);
	if (stat(index_path, &st)) {
		snprintf(err, errlen, "web directory '%s' has no index.html",
		         opt->web);
		goto fail;
	}

	if (pin_uv_plugin(err, errlen))
		goto fail;
	s->frame = malloc(LWS_PRE + FRAME_CAP);
	if (opt->compression) {
		struct ws_deflate_config dc;

		ws_deflate_config_default(&dc);
		s->deflate = ws_deflate_create(&dc);
		if (!s->deflate) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	s->query_wake = wake_new(s->loop, take_query_output, s);
	s->stop_wake = wake_new(s->loop, stop_now, s);
	if (!s->frame || !s->query_wake || !s->stop_wake) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (parts->db_path) {
		s->queries = query_worker_create(parts->db_path, QUERY_THREADS,
		                                 wake_signal, s->query_wake,
		                                 err, errlen);
		if (!s->queries)
			goto fail;
	}
	{
		struct session_hub_config hc;

		memset(&hc, 0, sizeof hc);
		hc.pipeline = s->pipeline;
		hc.sessions = parts->sessions;
		hc.queries = s->queries;
		hc.feed_kind = parts->feed_kind;
		hc.server_name = PUBLISHER_NAME_VERSION;
		hc.auth = s->auth != NULL;
		hc.headroom = LWS_PRE;
		hc.heartbeat_ms = opt->heartbeat_ms;
		hc.max_symbols = opt->max_symbols;
		hc.max_pending_symbols = opt->max_pending_symbols;
		hc.max_pending_symbols_total = opt->max_pending_symbols_total;
		hc.ops_per_sec = opt->ops_per_sec;
		hc.ops_burst = opt->ops_burst;
		s->hub = session_hub_create(&hc);
		if (!s->hub) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	uv_signal_init(s->loop, &s->sigint);
	uv_signal_init(s->loop, &s->sigterm);
	uv_timer_init(s->loop, &s->stop_timer);
	uv_idle_init(s->loop, &s->work_idle);
	s->sigint.data = s->sigterm.data = s->stop_timer.data = s;
	s->work_idle.data = s;
	s->handles_open = 4;

	lws_set_log_level(LLL_ERR |
	                          (log_get_level() >= LOG_DEBUG ? LLL_WARN : 0),
	                  lws_log_to_ours);

	/* The WebSocket protocol comes first: a client that names no
	 * subprotocol is bound to protocols[0] by libwebsockets. */
	s->protocols[0].name = "publisher.v1";
	s->protocols[0].callback = ws_callback;
	s->protocols[0].per_session_data_size = ws_conn_size();
	/* lws keeps a receive buffer of this size for every connection, all
	 * of it resident: it was 16 KiB, half of what an idle connection cost.
	 * A message longer than the buffer comes in several RECEIVE
	 * callbacks, which ws.c puts together anyway. */
	s->protocols[0].rx_buffer_size = 1024;
	/* lws hands the kernel at most this much per send() and copies the
	 * rest of a frame aside, to send it on later writeable events; left at
	 * 0 that limit is rx_buffer_size, and 94 % of the frames of a client
	 * on "*" were cut so. Room for a whole frame and its header: the
	 * kernel takes what its buffer holds, lws keeps only what it did not
	 * take. */
	s->protocols[0].tx_packet_size = FRAME_CAP + LWS_PRE + 16;
	s->protocols[1].name = "publisher-http";
	s->protocols[1].callback = http_callback;
	/* No per-session data: lws frees it whenever it binds the connection
	 * to a protocol, so http_api.c keeps its own (struct http_request).
	 * An answer goes to the kernel in one send where it can (see
	 * "Pipelining" in http_api.c): left at 0, lws sends at most 4 KiB at
	 * a time and keeps the rest for later writeable events. */
	s->protocols[1].tx_packet_size = FRAME_CAP + LWS_PRE + 16;

	s->mount.mountpoint = "/";
	s->mount.mountpoint_len = 1;
	s->mount.origin = s->web_dir;
	s->mount.def = "index.html";
	s->mount.origin_protocol = LWSMPRO_FILE;
	/* Files are served bound to protocols[0], whose callback adds the
	 * headers some of them need (http_static_headers). */
	s->mount.protocol = "publisher.v1";
	/* Dynamic endpoints are mounts handled by http_callback. */
	s->mount_api.mountpoint = "/api";
	s->mount_metrics.mountpoint = "/metrics";
	s->mount_health.mountpoint = "/healthz";
	s->mount_stream.mountpoint = "/stream";
	s->mount.mount_next = &s->mount_api;
	s->mount_api.mount_next = &s->mount_metrics;
	s->mount_metrics.mount_next = &s->mount_health;
	s->mount_health.mount_next = &s->mount_stream;
	{
		struct lws_http_mount *m[] = {&s->mount_api, &s->mount_metrics,
		                              &s->mount_health, &s->mount_stream};
		size_t i;

		for (i = 0; i < 4; i++) {
			m[i]->mountpoint_len =
			        (unsigned char)strlen(m[i]->mountpoint);
			m[i]->origin = "publisher-http";
			m[i]->origin_protocol = LWSMPRO_CALLBACK;
		}
	}

	/* Ping an idle peer after ping_secs, hang up if nothing came back. */
	s->retry.secs_since_valid_ping = (uint16_t)opt->ping_secs;
	s->retry.secs_since_valid_hangup = (uint16_t)(opt->ping_secs * 2 + 5);

	memset(&info, 0, sizeof info);
	info.port = opt->listen_port;
	info.protocols = s->protocols;
	info.mounts = &s->mount;
	info.user = s;
	info.retry_and_idle_policy = &s->retry;
	if (s->deflate)
		info.extensions = ws_deflate_extensions;
	/* libwebsockets on our libuv loop: epoll underneath, so a loop turn
	 * costs the sockets that are ready, not every socket open (its own
	 * poll() loop walks them all), and the pipeline's wakes share it.
	 *
	 * Not LWS_SERVER_OPTION_VALIDATE_UTF8: ws.c checks that text is UTF-8
	 * itself. With the option, lws 4.1.6 also checks the reason in a
	 * client's close frame, and on a bad one drops the connection without
	 * a close frame of its own, before ws.c is told; without it, ws.c sees
	 * the close frame and answers 1007. */
	info.options =
	        LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE |
	        LWS_SERVER_OPTION_LIBUV;
	loops[0] = s->loop;
	info.foreign_loops = loops;
	/* lws finishes destroying a context on a foreign loop in close
	 * callbacks; it clears s->context when it is done. */
	info.pcontext = &s->context;
	info.vhost_name = "publisher";
	if (!strcmp(host, "localhost"))
		host = "127.0.0.1";
	if (!strcmp(host, "0.0.0.0")) {
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	} else if (!strcmp(host, "::") || !strcmp(host, "[::]")) {
		/* all interfaces, IPv6 and IPv4 */
	} else {
		info.iface = host;
		/* Without this, lws binds [::] even when told 127.0.0.1. */
		if (is_ipv4_literal(host))
			info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	}
	if (!is_loopback(host) && !s->auth)
		log_warn("listening on %s, beyond loopback, without "
		         "tokens (auth-secret): anyone who can reach it can "
		         "read the stream",
		         opt->listen_host);
	else if (!is_loopback(host) && !opt->tls_cert)
		log_warn("listening on %s, beyond loopback, without "
		         "TLS (tls-cert): tokens and data cross the network "
		         "in clear text",
		         opt->listen_host);

	/*
	 * Slow senders: a connection must finish its TLS handshake and its
	 * request headers within handshake_secs (lws's own timeouts), or it
	 * is dropped. Idle and half-open WebSocket peers are the ping policy's
	 * (ping_secs).
	 */
	info.timeout_secs = opt->handshake_secs;
	info.timeout_secs_ah_idle = opt->handshake_secs;
	if (opt->tls_cert) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = opt->tls_cert;
		info.ssl_private_key_filepath = opt->tls_key;
		/* HTTP/1.1 only: a WebSocket over HTTP/2 would not pass
		 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE, and so not admission. */
		info.alpn = "http/1.1";
	}

	s->context = lws_create_context(&info);
	if (!s->context) {
		/* Not for any cause checked above: the loop cannot turn
		 * again (see check_bind), so this is the end. */
		fprintf(stderr,
		        "publisher: libwebsockets could not start on %s:%d "
		        "(see its message above)\n",
		        opt->listen_host, opt->listen_port);
		_exit(1);
	}
	s->vhost = lws_get_vhost_by_name(s->context, "publisher");
	s->port = s->vhost ? lws_get_vhost_listen_port(s->vhost) : -1;
	if (s->port <= 0) {
		snprintf(err, errlen, "cannot listen on %s:%d",
		         opt->listen_host, opt->listen_port);
		goto fail;
	}
	lws_sul_schedule(s->context, 0, &s->housekeeping, housekeeping,
	                 HOUSEKEEPING_US);
	uv_signal_start(&s->sigint, on_signal, SIGINT);
	uv_signal_start(&s->sigterm, on_signal, SIGTERM);
	memset(&hooks, 0, sizeof hooks);
	hooks.client_ready = session_updates_ready;
	hooks.epoch_changed = epoch_changed;
	hooks.ctx = s;
	pipeline_set_hooks(s->pipeline, &hooks);
	return s;

fail:
	server_destroy(s);
	return NULL;
}

size_t
server_frame_headroom(void)
{
	return LWS_PRE;
}

int
server_port(const struct server *s)
{
	return s->port;
}

int
server_run(struct server *s)
{
	uv_run(s->loop, UV_RUN_DEFAULT);
	return 0;
}

void
server_stop(struct server *s)
{
	wake_signal(s->stop_wake);
}

static void
count_closing(uv_handle_t *h, void *arg)
{
	if (uv_is_closing(h))
		++*(size_t *)arg;
}

/* Handles on the loop that are closing and whose close callback has not
 * run yet. */
static size_t
handles_closing(uv_loop_t *loop)
{
	size_t n = 0;

	uv_walk(loop, count_closing, &n);
	return n;
}

static void
handle_closed(uv_handle_t *h)
{
	struct server *s = h->data;

	s->handles_open--;
}

void
server_destroy(struct server *s)
{
	size_t i;

	if (!s)
		return;
	if (s->context) {
		lws_sul_cancel(&s->housekeeping);
		lws_context_destroy(s->context);
	}
	/* Jobs were released with their connections above. */
	query_worker_destroy(s->queries);
	wake_free(s->query_wake);
	wake_free(s->stop_wake);
	if (s->handles_open) {
		uv_close((uv_handle_t *)&s->sigint, handle_closed);
		uv_close((uv_handle_t *)&s->sigterm, handle_closed);
		uv_close((uv_handle_t *)&s->stop_timer, handle_closed);
		uv_close((uv_handle_t *)&s->work_idle, handle_closed);
	}
	/* Our handles and lws's context live until their close callbacks,
	 * which need the loop to turn: it is stopped now, so it is turned
	 * here until both are done (a few turns; the bound is a safety). On a
	 * foreign loop lws destroys a context in stages, one per call, and
	 * each later stage may only come once the handles the earlier one
	 * closed are closed: the last frees memory those handles live in. It
	 * clears s->context when it is done. */
	for (i = 0; i < 1000 && (s->handles_open || s->context); i++) {
		if (s->context && !handles_closing(s->loop))
			lws_context_destroy(s->context);
		uv_run(s->loop, UV_RUN_NOWAIT);
	}
	if (s->handles_open || s->context)
		log_warn(
		        "libwebsockets did not finish closing; exiting anyway");
	auth_claims_free(&s->admitted.claims);
	http_stream_destroy_all(s);
	auth_destroy(s->auth);
	peers_free(s);
	session_hub_destroy(s->hub);
	ws_deflate_destroy(s->deflate);
	free(s->frame);
	free(s);
}

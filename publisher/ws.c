/*
 * ws.c: the /ws protocol. A session (session.h) speaks the protocol; this
 * file carries its bytes over a libwebsockets connection: admission at the
 * upgrade, inbound messages put together from fragments (and inflated),
 * outbound ones written (update frames compressed once for every client
 * that agreed to it), and the close.
 *
 * Writes. What a session has to send is written on the loop's idle turn
 * after the event that made it due, without waiting for lws to say the
 * socket is writable: it almost always is, and asking costs more than the
 * write (on libuv, every change of interest is an epoll_ctl DEL and ADD,
 * four per frame; 31 % of the loop with 1,000 clients of 10 symbols). A
 * connection whose output lws still holds, or whose input is held back,
 * waits for its writeable callback instead.
 */
#include "server_private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "clock.h"
#include "log.h"
#include "utf8.h"
#include "ws_deflate.h"

/* How long a connection whose output was held back by the kernel gets to
 * have its input read before its next frame goes out (see ws_writeable). */
#define RX_WINDOW_US 1000
/* Frames written at once to one connection before the others have their
 * turn; beyond them it waits for a writeable callback. */
#define DIRECT_FRAMES_MAX 4
/* Work for a connection on the loop's idle turn (see ws_work_run). */
enum { WORK_WRITE = 1, WORK_INFLATE = 2 };

/* Per WebSocket connection: lws's per-session data. lws zeroes it. */
struct ws_conn {
	struct lws *wsi;
	struct server *server; /* NULL once closed */
	struct session *session;

	/* inbound message being put together from fragments */
	char *rx;
	size_t rx_len, rx_cap;
	bool rx_binary;
	struct utf8_check rx_utf8; /* a text message's UTF-8 so far */

	/* Input is not read while lws holds output the kernel would not take
	 * (see after_write). */
	bool rx_paused;
	bool deflate;          /* permessage-deflate agreed (ws_deflate.h) */
	bool close_armed;      /* the timer closes it (see close_now) */
	bool awaiting_destroy; /* closed, its close frame maybe not sent yet */
	/* The max_hz wake the timer is armed for, 0 = none (see timer_arm) */
	int64_t timer_due_us;
	/* Work for the loop's idle turn: on server->work while nonzero. */
	unsigned work;
	struct ws_conn *work_next;
};

size_t
ws_conn_size(void)
{
	return sizeof(struct ws_conn);
}

/* ------------------------------------------------------------- writing */

/*
 * Every ws write is counted here, and input is held back while lws keeps
 * output the kernel would not take.
 *
 * Why. lws_write() hands lws what the socket did not accept, and lws sends
 * it when the socket is writable again. A peer that sends a FIN meanwhile
 * (half-closes, or closes while its window is shut) makes its socket
 * readable for ever: lws reads 0, goes to close, finds output still to
 * flush and waits for a POLLOUT that a peer who reads nothing never
 * allows, re-reading the end of file on every loop turn. In libwebsockets
 * 4.1.6 that turn is its "forced service" loop, which retries the same
 * slot until the connection is gone: the whole server stopped there (100 %
 * CPU, nobody served, SIGTERM ignored). With input held back while output
 * waits, a FIN is not seen until the output has gone; a peer that never
 * takes it is dropped by the ping policy, without spinning.
 */
static void
after_write(struct ws_conn *c, size_t len)
{
	c->server->m.ws_frames_sent++;
	c->server->m.ws_bytes_sent += len;
	if (!c->rx_paused && lws_partial_buffered(c->wsi)) {
		c->rx_paused = true;
		c->server->m.rx_paused++;
		lws_rx_flow_control(c->wsi, 0);
	}
}

static int
ws_write(struct ws_conn *c, char *data, size_t len, enum lws_write_protocol wp)
{
	if (lws_write(c->wsi, (unsigned char *)data, len, wp) < (int)len)
		return -1;
	after_write(c, len);
	return 0;
}

/*
 * An update frame: compressed for a client that agreed to it, once for
 * every client that gets the same frame (see ws_deflate.h), else as text.
 */
static int
write_updates(struct ws_conn *c, const struct session_output *out, int64_t now)
{
	unsigned char *z;
	size_t zlen = 0;

	if (c->deflate)
		zlen = ws_deflate_frame(c->server->deflate, out->frame_id,
		                        out->data, out->len, now, &z);
	if (!zlen)
		return ws_write(c, out->data, out->len, LWS_WRITE_TEXT);
	if (ws_deflate_write(c->wsi, z, zlen) < (int)zlen)
		return -1;
	after_write(c, zlen);
	return 0;
}

/*
 * Closing a TCP socket that still has unread input makes the kernel send a
 * reset instead of a FIN, and a reset can overtake our close frame: the
 * client would see 1006 instead of the code we chose. So before a close the
 * server reads and drops what the peer already sent (bounded, non-blocking).
 */
static void
discard_pending_input(struct lws *wsi)
{
	lws_sockfd_type fd = lws_get_socket_fd(wsi);
	char scratch[4096];
	size_t total = 0;
	ssize_t n;

	if (fd < 0)
		return;
	while (total < 4 * 1024 * 1024) {
		n = recv(fd, scratch, sizeof scratch, MSG_DONTWAIT);
		if (n <= 0)
			break;
		total += (size_t)n;
	}
}

/*
 * A connection has one lws timer, for three things: a max_hz wake
 * (transport_wake_at), the read window of ws_writeable and a close
 * (close_now). Arming it for one forgets the time set for another, so the
 * wake's time is forgotten too and the next wake_at arms it again (the
 * timer's callback then writes whatever is due, whichever it was for).
 */
static void
timer_arm(struct ws_conn *c, int64_t after_us, int64_t wake_due_us)
{
	c->timer_due_us = wake_due_us;
	lws_set_timer_usecs(c->wsi, after_us > 0 ? after_us : 1);
}

/*
 * Close with a status the client is told in a close frame. From the
 * receive callback, returning -1 does it, except for a compressed message:
 * lws 4.1.6 ignores what the callback returns for the buffers it inflates
 * after the first. From the writeable callback it must not: the
 * libwebsockets 4.1.6 of Debian is a _DEBUG build, whose libuv service
 * path closes a connection a second time when a callback asks for the
 * close ("uv repeat test"), and the second close kills the socket before
 * the close frame the first one queued is sent: the client would see 1006.
 * So in those cases the close is asked for from the connection's timer
 * callback instead, which closes once. Returns what the callback returns.
 */
static int
close_now(struct ws_conn *c, int status, const char *reason, bool from_receive)
{
	lws_close_reason(c->wsi, status, (unsigned char *)reason,
	                 strlen(reason));
	discard_pending_input(c->wsi);
	if (from_receive && !c->deflate)
		return -1;
	c->close_armed = true;
	timer_arm(c, 1, 0);
	return 0;
}

/*
 * Take the session's outputs and write them, at most max. Returns -1 when
 * a write failed, else whether more is due.
 */
static int
write_outputs(struct ws_conn *c, int max)
{
	int64_t now = clock_wall_us();
	struct session_output out;
	int rc = 0, i;

	/* after_write() pauses input as soon as lws holds output: that is
	 * the flag to stop at. */
	out.more = true;
	for (i = 0; i < max && out.more; i++) {
		if (c->close_armed || c->rx_paused)
			break;
		if (!session_take_output(c->session, now, &out))
			return 0;
		switch (out.kind) {
		case SESSION_OUT_CLOSE:
			close_now(c, out.close_status, out.close_reason, false);
			return 0;
		case SESSION_OUT_MESSAGE:
			rc = ws_write(c, out.data, out.len, LWS_WRITE_TEXT);
			break;
		case SESSION_OUT_PART:
			rc = ws_write(
			        c, out.data, out.len,
			        (enum lws_write_protocol)lws_write_ws_flags(
			                LWS_WRITE_TEXT, out.first, out.last));
			break;
		case SESSION_OUT_UPDATES:
			rc = write_updates(c, &out, now);
			break;
		case SESSION_OUT_NONE:
			return 0;
		}
		if (rc)
			return -1;
	}
	return out.more;
}

/* LWS_CALLBACK_SERVER_WRITEABLE: one write, as the lws rule goes. */
static int
ws_writeable(struct ws_conn *c)
{
	int more;

	if (c->close_armed)
		return 0;
	/*
	 * lws calls this only once the output it held has gone. Input held
	 * back meanwhile (see after_write) is read first: the next frame
	 * waits RX_WINDOW_US, so a request, a pong or a FIN from a peer whose
	 * every write fills its socket is still read. Only such peers pay the
	 * wait.
	 */
	if (c->rx_paused) {
		c->rx_paused = false;
		lws_rx_flow_control(c->wsi, 1);
		timer_arm(c, RX_WINDOW_US, 0);
		return 0;
	}
	more = write_outputs(c, 1);
	if (more < 0)
		return -1;
	if (more)
		lws_callback_on_writable(c->wsi);
	return 0;
}

/* On the idle turn: write what is due at once, a few frames at most. */
static void
write_direct(struct ws_conn *c)
{
	int more;

	if (c->close_armed)
		return;
	if (c->rx_paused || lws_partial_buffered(c->wsi)) {
		lws_callback_on_writable(c->wsi);
		return;
	}
	more = write_outputs(c, DIRECT_FRAMES_MAX);
	if (more < 0) {
		close_now(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
		          "write failed", false);
		return;
	}
	if (more)
		lws_callback_on_writable(c->wsi);
}

/* ------------------------------------------------------ the idle turn */

static void
conn_work(struct ws_conn *c, unsigned work)
{
	struct server *s = c->server;

	if (!c->work) {
		c->work_next = s->work;
		s->work = c;
		server_work_soon(s);
	}
	c->work |= work;
}

static void
work_forget(struct ws_conn *c)
{
	struct ws_conn **p = &c->server->work;

	if (!c->work)
		return;
	while (*p && *p != c)
		p = &(*p)->work_next;
	if (*p)
		*p = c->work_next;
	c->work = 0;
}

/*
 * WORK_WRITE: see "Writes" at the top of the file.
 *
 * WORK_INFLATE: a compressed message is handed over as libwebsockets
 * inflates it, one buffer at a time. With its libuv event library, 4.1.6
 * inflates the next buffer only when some socket has an event, so on a
 * quiet server the rest of a message waited for the next tick, or for the
 * client to give up. So while a connection has a message partly delivered
 * and none of it left to read from the socket, lws is asked to service it
 * as if it were readable: it then inflates the next buffer (or, for a
 * message cut into frames by the client, finds nothing to read yet).
 */
void
ws_work_run(struct server *s)
{
	struct ws_conn *c = s->work;

	/* A connection the work below puts back goes on a new list. */
	s->work = NULL;
	while (c) {
		struct ws_conn *next = c->work_next;
		unsigned work = c->work;
		struct lws_pollfd pfd;

		c->work = 0;
		c->work_next = NULL;
		if (work & WORK_WRITE)
			write_direct(c);
		/* Last: the service may close the connection. */
		if (work & WORK_INFLATE) {
			pfd.fd = lws_get_socket_fd(c->wsi);
			pfd.events = pfd.revents = LWS_POLLIN;
			if (pfd.fd >= 0 && !c->rx_paused)
				lws_service_fd(s->context, &pfd);
		}
		c = next;
	}
}

/* ----------------------------------------------------- the transport */

static void
transport_want_write(void *conn)
{
	conn_work(conn, WORK_WRITE);
}

static void
transport_wake_at(void *conn, int64_t due_us)
{
	struct ws_conn *c = conn;

	if (due_us != c->timer_due_us)
		timer_arm(c, due_us - clock_wall_us(), due_us);
}

static const struct session_transport transport = {
        .want_write = transport_want_write,
        .wake_at = transport_wake_at,
};

/* ------------------------------------------------------------- reading */

/* A text message that is not UTF-8 (RFC 6455, 8.1). */
static int
close_invalid_utf8(struct ws_conn *c)
{
	log_limited(LOG_INFO,
	            "conn %llu (%s): text that is not UTF-8, "
	            "closing with 1007",
	            (unsigned long long)session_id(c->session),
	            session_peer(c->session));
	return close_now(c, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "invalid UTF-8",
	                 true);
}

/* A status code a peer may put in a close frame (RFC 6455, 7.4): the
 * defined ones, those registered since (1012 to 1014) and the ranges for
 * libraries and applications. 1005, 1006 and 1015 are never sent. */
static bool
close_code_valid(unsigned code)
{
	return (code >= 1000 && code <= 1003) ||
	       (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/*
 * LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: the peer's close frame, before lws
 * echoes it. A close payload is empty, or a status code and a UTF-8
 * reason (RFC 6455, 5.5.1). lws 4.1.6 puts 1002 in place of most invalid
 * codes itself, but echoes a 1-byte payload and a code of 5000 or more as
 * they came, and no longer checks the reason (see server.c). Those get
 * 1002, or 1007 for the reason, as our close. Returns what the callback
 * returns: -1 closes with the reason set here.
 */
static int
on_peer_close(struct ws_conn *c, const unsigned char *in, size_t len)
{
	const char *why = NULL;
	int status = LWS_CLOSE_STATUS_PROTOCOL_ERR;

	if (len == 1)
		why = "close frame with a 1-byte payload";
	else if (len >= 2 && !close_code_valid((unsigned)in[0] << 8 | in[1]))
		why = "invalid close code";
	else if (len > 2 && !utf8_valid(in + 2, len - 2)) {
		why = "close reason is not UTF-8";
		status = LWS_CLOSE_STATUS_INVALID_PAYLOAD;
	}
	if (!why)
		return 0;
	log_limited(LOG_INFO, "conn %llu (%s): %s, closing with %d",
	            (unsigned long long)session_id(c->session),
	            session_peer(c->session), why, status);
	lws_close_reason(c->wsi, (enum lws_close_status)status,
	                 (unsigned char *)why, strlen(why));
	discard_pending_input(c->wsi);
	return -1;
}

/* Put one inbound message together, refusing it as soon as it passes the
 * size limit so a huge frame never gets buffered. Returns -1 to close. */
static int
on_receive(struct ws_conn *c, const char *in, size_t len)
{
	size_t max = c->server->opt->max_message_bytes;

	if (lws_is_first_fragment(c->wsi)) {
		c->rx_len = 0;
		c->rx_binary = lws_frame_is_binary(c->wsi);
		utf8_check_init(&c->rx_utf8);
	}
	if (c->rx_len + len + lws_remaining_packet_payload(c->wsi) > max) {
		char reason[64];

		snprintf(reason, sizeof reason,
		         "message larger than the %zu byte limit", max);
		log_limited(LOG_INFO, "conn %llu (%s): %s, closing with 1009",
		            (unsigned long long)session_id(c->session),
		            session_peer(c->session), reason);
		return close_now(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, reason,
		                 true);
	}
	if (c->rx_len + len > c->rx_cap) {
		size_t cap = c->rx_cap ? c->rx_cap : 1024;
		char *p;

		while (cap < c->rx_len + len)
			cap *= 2;
		p = realloc(c->rx, cap);
		if (!p)
			return -1;
		c->rx = p;
		c->rx_cap = cap;
	}
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;

	/* Text must be UTF-8: checked as it comes, so a bad byte closes at
	 * once, and at the end, where a character cut short is bad too
	 * (see server.c for why lws does not check it). */
	if (!c->rx_binary && utf8_check_feed(&c->rx_utf8, in, len))
		return close_invalid_utf8(c);
	if (!lws_is_final_fragment(c->wsi) ||
	    lws_remaining_packet_payload(c->wsi)) {
		if (c->deflate && !lws_remaining_packet_payload(c->wsi))
			conn_work(c, WORK_INFLATE);
		return 0;
	}
	if (!c->rx_binary && !utf8_check_complete(&c->rx_utf8))
		return close_invalid_utf8(c);
	session_receive(c->session, c->rx, c->rx_len, c->rx_binary);
	c->rx_len = 0;
	/* Keep a small buffer for the next message, drop a big one. */
	if (c->rx_cap > 16384) {
		free(c->rx);
		c->rx = NULL;
		c->rx_cap = 0;
	}
	return 0;
}

/* ------------------------------------------------------------ lifetime */

static int
on_established(struct server *s, struct lws *wsi, struct ws_conn *c)
{
	struct admission a;

	memset(c, 0, sizeof *c);
	if (take_admission(s, wsi, &a))
		return -1;
	if (s->auth)
		log_debug("conn %llu (%s): open, sub '%s'",
		          (unsigned long long)a.conn_id, a.peer, a.claims.sub);
	else
		log_debug("conn %llu (%s): open", (unsigned long long)a.conn_id,
		          a.peer);
	c->wsi = wsi;
	c->server = s;
	c->deflate = a.deflate;
	c->session = session_open(s->hub, &transport, c, a.conn_id, a.peer,
	                          &a.claims);
	if (!c->session) {
		c->server = NULL;
		return -1;
	}
	s->connections++;
	peer_add(s, a.peer, 1);
	if (s->stopping)
		session_end(c->session, SESSION_CLOSE_GOING_AWAY,
		            "server shutting down");
	return 0;
}

/* lws calls this once, after the last callback for the wsi: the safe
 * place to free what the connection owns. */
static void
on_closed(struct server *s, struct ws_conn *c)
{
	work_forget(c);
	s->connections--;
	peer_add(s, session_peer(c->session), -1);
	log_debug("conn %llu (%s): closed",
	          (unsigned long long)session_id(c->session),
	          session_peer(c->session));
	session_close(c->session);
	c->session = NULL;
	free(c->rx);
	c->rx = NULL;
	/* lws sends the close frame after this; shutdown waits for it
	 * (WSI_DESTROY). */
	c->awaiting_destroy = true;
	s->closing++;
	c->server = NULL;
}

int
ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
            void *in, size_t len)
{
	struct ws_conn *c = user;
	struct server *s = lws_context_user(lws_get_context(wsi));

	switch (reason) {
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		/* Still plain HTTP: the place to refuse with a status. */
		if (!s || !in || strcasecmp(in, "websocket"))
			break;
		return admit_upgrade(s, wsi);

	case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY:
		/* Between admission and ESTABLISHED; 0 takes the offer. */
		return confirm_compression(s, wsi, in) ? 0 : 1;

	case LWS_CALLBACK_ESTABLISHED:
		return on_established(s, wsi, c);

	case LWS_CALLBACK_CLOSED:
		if (c && c->server)
			on_closed(s, c);
		break;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!c->server)
			break;
		return ws_writeable(c);

	case LWS_CALLBACK_WSI_DESTROY:
		/* Every wsi of the vhost comes here; only the user space of
		 * a wsi bound to this protocol is a ws_conn. */
		if (s && c && lws_get_protocol(wsi) &&
		    lws_get_protocol(wsi)->callback == ws_callback &&
		    c->awaiting_destroy) {
			c->awaiting_destroy = false;
			s->closing--;
		}
		break;

	case LWS_CALLBACK_RECEIVE:
		if (!c->server || c->close_armed)
			break;
		return on_receive(c, in, len);

	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (!c->server || c->close_armed)
			break;
		return on_peer_close(c, in, len);

	case LWS_CALLBACK_ADD_HEADERS:
		/* A file of the static mount (the mount is ours). */
		return http_static_headers(wsi, in);

	case LWS_CALLBACK_HTTP_BIND_PROTOCOL:
		/* lws has finished a plain HTTP request and binds the
		 * connection back to protocols[0] to read the next one. */
	case LWS_CALLBACK_CLOSED_HTTP:
		http_request_done(wsi);
		break;

	case LWS_CALLBACK_TIMER:
		if (c->server && c->close_armed)
			return -1;
		if (c->server) {
			c->timer_due_us = 0;
			conn_work(c, WORK_WRITE);
		}
		break;

	default:
		break;
	}
	/* Anything else (HTTP on the same connection before the upgrade)
	 * is handled by lws's own HTTP support and the mount. */
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

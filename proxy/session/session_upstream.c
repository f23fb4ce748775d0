/*
 * session_upstream.c - a session's upstream side: connecting (for a login,
 * or for a matched cancel the way its session connected), the upstream's
 * callbacks until both legs are open (then session_relay.c takes them).
 */
#include "session/session_upstream.h"

#include "session/session.h"
#include "session/session_int.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "relay/bev_leg.h"
#include "session/session_relay.h"
#include "core/netutil.h"
#include "protocol/pg_message.h"
#include "protocol/pg_wire.h"
#include "session/session_secrets.h"
#include "relay/upstream_connect.h"
#include "tls/tls_context.h"
#include "relay/tls_upgrade.h"
#include "worker/tls_contexts.h"
#include "worker/worker.h"

/* ---- upstream side ---------------------------------------------------- */

static void server_read(struct bufferevent *bev, void *arg);
static void server_write(struct bufferevent *bev, void *arg);
static void server_event(struct bufferevent *bev, short what, void *arg);

/*
 * A cancel that could not be delivered: the client is told nothing (as
 * PostgreSQL tells it nothing), and nothing is sent any other way.
 */
static void cancel_failed(struct session *s, const char *why)
{
	s->w->stats.cancels[CANCEL_FAILED]++;
	slog_warning(s, "cancel request not delivered to upstream %s: %s", s->upstream_label, why);
	session_close(s, "cancel request not delivered");
}

/* The matched CancelRequest goes now, over the leg as it was opened. */
static void send_cancel(struct session *s)
{
	s->w->stats.cancels[CANCEL_FORWARDED]++;
	s->cancel_sent = true;
	bufferevent_write(s->server, s->startup_pkt, s->startup.length);
	bufferevent_enable(s->server, EV_READ);	/* the server closes when it has read it */
	slog_debug(s, "cancel request forwarded to %s%s", s->upstream_label,
		   s->server_tls ? " over TLS" : "");
}

static void upstream_failed(struct session *s, const char *why)
{
	char msg[640];

	if (s->state == SESSION_CANCEL) {
		cancel_failed(s, why);
		return;
	}
	snprintf(msg, sizeof(msg), "could not connect to upstream \"%s\": %s", s->upstream_label, why);
	worker_note_upstream(s->w->shared, false);
	s->w->stats.upstream_connect_failures++;
	slog_warning(s, "%s", msg);
	session_fail(s, PG_SQLSTATE_CONNECTION_FAILURE, msg, "upstream unreachable");
}

static void start_server_tls(struct session *s)
{
	char err[320];
	SSL *ssl = s->w->tls_client ? tls_client_ssl_new(s->w->tls_client, s->upstream_host,
							s->upstream_verify, err, sizeof(err)) : NULL;

	if (!ssl) {
		upstream_failed(s, s->w->tls_client ? err : "server_tls is now disable");
		return;
	}
	s->server = tls_upgrade_socket(s->server, ssl, BUFFEREVENT_SSL_CONNECTING);
	if (!s->server) {
		upstream_failed(s, "cannot start TLS");
		return;
	}
	s->tls_handshaking = true;
	bufferevent_setcb(s->server, server_read, server_write, server_event, s);
	bufferevent_setwatermark(s->server, EV_READ, 0, (size_t)config_current()->relay_buffer_size);
	bufferevent_enable(s->server, EV_READ);
}

/* The upstream's one-byte answer to our SSLRequest. */
static void ssl_answer_read(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->server);
	size_t avail = evbuffer_get_length(in);
	uint8_t c;

	if (avail == 0)
		return;
	evbuffer_copyout(in, &c, 1);
	if (c == 'S' && avail > 1) {
		/* Bytes before the handshake would be trusted as if encrypted (CVE-2021-23222). */
		upstream_failed(s, "the upstream sent data after accepting TLS, before the handshake");
	} else if (c == 'S') {
		evbuffer_drain(in, 1);
		start_server_tls(s);
	} else if (c == 'N' && s->state == SESSION_CONNECTING &&
		   config_current()->server_tls == SERVER_TLS_PREFER) {
		evbuffer_drain(in, 1);
		s->server_tls = false;
		session_start_relay(s);
	} else if (c == 'N') {
		upstream_failed(s, s->state == SESSION_CANCEL ?
				"the upstream refused TLS, over which the session's own leg runs" :
				"the upstream does not accept TLS, and server_tls requires it");
	} else {
		upstream_failed(s, "unexpected answer to SSLRequest (is it PostgreSQL?)");
	}
}

static void server_tls_ready(struct session *s)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->server);

	s->tls_handshaking = false;
	s->w->stats.tls_handshakes[1][0]++;
	slog_debug(s, "upstream TLS established: %s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
	if (s->state == SESSION_CANCEL)
		send_cancel(s);
	else
		session_start_relay(s);
}

static void server_tls_failed(struct session *s)
{
	char why[320];

	s->tls_handshaking = false;
	s->w->stats.tls_handshakes[1][1]++;
	tls_describe_failure(bufferevent_openssl_get_ssl(s->server),
			     bufferevent_get_openssl_error(s->server), why, sizeof(why));
	upstream_failed(s, why);
}

static void server_read(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	if ((s->state == SESSION_CONNECTING || (s->state == SESSION_CANCEL && !s->cancel_sent)) &&
	    s->server_tls && !s->tls_handshaking)
		ssl_answer_read(s);
	else
		evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

static void server_write(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	if (s->state == SESSION_CLOSING)
		session_closing_progress(s);
}

static void server_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		server_tls_ready(s);
		return;
	}
	if (s->state == SESSION_CONNECTING || (s->state == SESSION_CANCEL && !s->cancel_sent)) {
		if (s->tls_handshaking)
			server_tls_failed(s);
		else
			upstream_failed(s, "the upstream closed the connection during TLS negotiation");
		return;
	}
	if (s->state == SESSION_CLOSING) {
		session_drop_server(s);	/* gone: what was queued for it cannot be sent */
		session_closing_progress(s);
		return;
	}
	/* A cancel's upstream closes once it has read the request. */
	session_close(s, s->state == SESSION_CANCEL ? "cancel request forwarded" : "upstream closed");
}

static void upstream_done(struct bufferevent *bev, const struct sockaddr *addr, socklen_t addrlen,
			  const char *error, void *arg)
{
	struct session *s = arg;
	const struct config *cfg = config_current();

	s->connecting = NULL;
	worker_note_upstream(s->w->shared, bev != NULL);
	if (!bev && s->state == SESSION_CANCEL) {
		cancel_failed(s, error);
		return;
	}
	if (!bev) {
		s->w->stats.upstream_connect_failures++;
		slog_warning(s, "%s", error);
		session_fail(s, PG_SQLSTATE_CONNECTION_FAILURE, error, "upstream unreachable");
		return;
	}
	s->server = bev;
	memcpy(&s->upstream_addr, addr, addrlen);
	s->upstream_addrlen = addrlen;
	bufferevent_setcb(bev, server_read, server_write, server_event, s);
	bufferevent_setwatermark(bev, EV_READ, 0, (size_t)cfg->relay_buffer_size);
	if (s->server_tls) {
		static const uint8_t ssl_request[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };

		bufferevent_write(bev, ssl_request, sizeof(ssl_request));
		bufferevent_enable(bev, EV_READ);
	} else if (s->state == SESSION_CANCEL) {
		send_cancel(s);		/* the session's leg is plaintext too */
	} else {
		session_start_relay(s);
	}
}

void session_connect_upstream(struct session *s)
{
	const struct config *cfg = config_current();
	const char *host = cfg->upstream_host;

	snprintf(s->upstream_host, sizeof(s->upstream_host), "%s", host);
	snprintf(s->upstream_label, sizeof(s->upstream_label),
		 strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, cfg->upstream_port);
	s->server_tls = s->w->tls_client != NULL;
	s->upstream_verify = tls_verify_of(cfg->server_tls);
	s->connecting = upstream_connect_start(s->w->base, s->w->dns, host, cfg->upstream_port, NULL, 0, upstream_done, s);
	if (!s->connecting)
		session_fail(s, PG_SQLSTATE_CONNECTION_FAILURE, "walgate: out of memory", "out of memory");
}

void session_connect_cancel(struct session *s, const struct cancel_target *t)
{
	const struct sockaddr *sa = (const struct sockaddr *)&t->addr;
	int port = ntohs(sa->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
						   : ((const struct sockaddr_in *)sa)->sin_port);

	snprintf(s->upstream_host, sizeof(s->upstream_host), "%s", t->host);
	net_format_addr(sa, s->upstream_label, sizeof(s->upstream_label));
	s->server_tls = t->tls;
	s->upstream_verify = t->verify;
	/* pinned: no name is resolved, the session's own address is dialled */
	s->connecting = upstream_connect_start(s->w->base, s->w->dns, t->host, port, sa, t->addrlen, upstream_done, s);
	if (!s->connecting)
		session_close(s, "out of memory");
}

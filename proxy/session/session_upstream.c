/*
 * session_upstream.c - a session's upstream side: connecting (for a login,
 * or for a matched cancel the way its session connected), the upstream's
 * callbacks, recording the backend's key for cancels, and relaying in both
 * directions once logged in.
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
#include "core/netutil.h"
#include "protocol/pg_message.h"
#include "protocol/pg_wire.h"
#include "repl/repl_track.h"
#include "session/session_secrets.h"
#include "relay/upstream_connect.h"
#include "tls/tls_context.h"
#include "relay/tls_upgrade.h"
#include "worker/tls_contexts.h"
#include "worker/worker.h"
#include "session/session_login.h"
#include "session/session_takeover.h"

/* ---- upstream side ---------------------------------------------------- */

/* BackendKeyData: record where a cancel for this backend must go, and how. */
static void register_backend_key(struct session *s, const uint8_t *payload, size_t len)
{
	struct cancel_target t = { 0 };
	const uint8_t *key;
	size_t key_len;

	if (pg_parse_backend_key(payload, len, &t.pid, &key, &key_len) < 0) {
		slog_warning(s, "upstream sent a BackendKeyData with a %zu-byte key: cancels cannot reach it",
			     len >= 4 ? len - 4 : 0);
		return;
	}
	memcpy(t.key, key, key_len);
	t.key_len = (uint32_t)key_len;
	memcpy(&t.addr, &s->upstream_addr, s->upstream_addrlen);
	t.addrlen = s->upstream_addrlen;
	t.tls = s->server_tls;
	t.verify = s->upstream_verify;
	snprintf(t.host, sizeof(t.host), "%s", s->upstream_host);
	if (s->cancel_entry)
		cancel_registry_remove(&s->w->shared->cancels, s->cancel_entry);
	s->cancel_entry = cancel_registry_add(&s->w->shared->cancels, &t);
	OPENSSL_cleanse(t.key, sizeof(t.key));
	if (!s->cancel_entry)
		slog_warning(s, "out of memory: cancels cannot reach backend %u", t.pid);
}

static void server_message(void *arg, struct pg_scanner *sc, bool captured)
{
	struct session *s = arg;
	const struct pg_msg *m = &sc->msg;
	uint32_t payload = m->length - 4;

	if (captured) {		/* only BackendKeyData is captured in this direction */
		register_backend_key(s, s->backend_key_msg, payload);
		return;
	}
	if (s->repl)
		repl_track_from_server(s->repl, m);
	if (m->type != PG_MSG_BACKEND_KEY_DATA)
		return;
	/* a 3.2 key may be longer than the prefix: take the whole payload, bounded */
	if (payload > sizeof(s->backend_key_msg))
		register_backend_key(s, m->prefix, payload);	/* refused for its length */
	else if (pg_scan_capture(sc, s->backend_key_msg, payload) == payload &&
		 payload <= m->prefix_len)
		register_backend_key(s, s->backend_key_msg, payload);
}

static void client_message(void *arg, struct pg_scanner *sc, bool captured)
{
	struct session *s = arg;
	const struct pg_msg *m = &sc->msg;

	if (s->repl)
		repl_track_from_client(s->repl, sc, captured);
	if (captured)
		return;
	if (m->type == PG_MSG_TERMINATE)
		snprintf(s->close_reason, sizeof(s->close_reason), "client terminated");
}

/* Once the upstream said AuthenticationOk: a refused login logs only its closed: line. */
static void log_login(const struct session *s)
{
	const struct pg_startup *st = &s->startup;

	slog_info(s, "login: user=%s database=%s replication=%s application_name=%s",
		  st->user, st->database ? st->database : st->user,
		  pg_replication_mode_str(st->replication_mode),
		  st->application_name ? st->application_name : "");
}

static void forward_to_client(struct session *s)
{
	if (s->state == SESSION_LOGIN) {
		enum login_step step = session_login_feed(s);

		if (step != LOGIN_DONE)
			return;
		session_set_state(s, SESSION_RELAY);
		log_login(s);
		event_del(s->timer);	/* logged in: no idle timeout, replication connections idle for long */
		if (s->client_held) {
			s->client_held = false;
			/* auth = scram held the client back; what it sent meanwhile goes now */
			bufferevent_enable(s->client, EV_READ);
			session_forward_to_server(s);
			if (s->state != SESSION_RELAY)
				return;
		}
	}
	if (relay_forward(&s->to_client, s->server, s->client) < 0) {
		s->w->stats.protocol_errors[PROTO_ERR_UPSTREAM]++;
		slog_error(s, "upstream protocol violation: %s", pg_scan_error_str(s->to_client.scan.error));
		session_close(s, "upstream protocol violation");
	}
}

void session_forward_to_server(struct session *s)
{
	if (relay_forward(&s->to_server, s->client, s->server) < 0) {
		const char *why = pg_scan_error_str(s->to_server.scan.error);
		char msg[160];

		snprintf(msg, sizeof(msg), "invalid message from client: %s", why);
		session_protocol_violation(s, PG_SQLSTATE_PROTOCOL_VIOLATION, msg);
		return;
	}
	/*
	 * The client said Terminate (client_message): the upstream gets it and
	 * the end of its connection now, without waiting for the client to
	 * close its socket. The server says nothing after a Terminate.
	 */
	if (s->close_reason[0])
		session_close(s, s->close_reason);
}

static void start_relay(struct session *s);
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
		start_relay(s);
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
		start_relay(s);
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
	else if (session_legs_open(s))
		forward_to_client(s);
	else
		evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

static void server_write(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	if (session_legs_open(s))
		relay_sink_drained(&s->to_server, s->client, s->server);
	else if (s->state == SESSION_CLOSING)
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
	if (s->state == SESSION_CANCEL) {
		session_close(s, "cancel request forwarded");
		return;
	}
	forward_to_client(s);
	if (!session_legs_open(s))
		return;
	/* An upstream that said FATAL before closing has told the client already. */
	if (s->to_client.last_type != PG_MSG_ERROR_RESPONSE)
		session_tell_client(s, "FATAL", PG_SQLSTATE_CONNECTION_FAILURE,
			    "walgate: the upstream server closed the connection");
	session_close(s, (what & BEV_EVENT_EOF) ? "upstream closed" : "upstream connection error");
}

static void start_relay(struct session *s)
{
	const struct config *cfg = config_current();
	const struct pg_startup *st = &s->startup;

	session_set_state(s, SESSION_LOGIN);
	if (st->replication_mode != PG_REPLICATION_NONE)
		s->repl = repl_track_new(&s->w->slots, s->w->stats.protocol_errors, s->prefix,
					 st->replication_mode == PG_REPLICATION_LOGICAL ?
					 (st->database ? st->database : st->user) : NULL);
	relay_dir_init(&s->to_server, (uint32_t)cfg->max_message_size,
		       (size_t)cfg->relay_buffer_size, client_message, s);
	if (s->repl)
		session_takeover_attach(s, session_forward_to_server);	/* a START may be held back */
	/* The upstream is trusted to frame its own messages; any length up to the protocol's. */
	relay_dir_init(&s->to_client, UINT32_MAX, (size_t)cfg->relay_buffer_size, server_message, s);
	relay_dir_plain(&s->to_server, !s->client_tls, !s->server_tls);
	relay_dir_plain(&s->to_client, !s->server_tls, !s->client_tls);
	if (s->client_tls)
		relay_dir_tls_source(&s->to_server);
	if (s->server_tls)
		relay_dir_tls_source(&s->to_client);
	if (s->auth && s->auth->startup)	/* another user upstream: session_cred.c */
		bufferevent_write(s->server, s->auth->startup, s->auth->startup_len);
	else
		bufferevent_write(s->server, s->startup_pkt, st->length);
	bufferevent_enable(s->server, EV_READ);
	if (s->auth) {
		s->client_held = true;	/* walgate logs in itself: the client waits */
		return;
	}
	bufferevent_enable(s->client, EV_READ);
	/* Bytes the client sent right after its startup packet wait in the input. */
	session_forward_to_server(s);
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
		start_relay(s);
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

/*
 * session_client.c - a session's client side: admission at accept, the
 * PROXY header, the startup phase (SSLRequest, GSSENCRequest,
 * CancelRequest, StartupMessage) and the client's callbacks.
 */
#include "session/session_client.h"

#include "session/session.h"
#include "session/session_int.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/allowlist.h"
#include "relay/bev_leg.h"
#include "core/config.h"
#include "core/netutil.h"
#include "protocol/pg_message.h"
#include "protocol/pg_wire.h"
#include "protocol/proxy_header.h"
#include "tls/tls_context.h"
#include "relay/tls_upgrade.h"
#include "worker/worker.h"
#include "session/session_client_login.h"
#include "session/session_upstream.h"

/* ---- startup phase ---------------------------------------------------- */

/*
 * A CancelRequest: looked up among every worker's sessions. One that
 * matches goes to that session's backend, the way its leg was opened; one
 * that matches nothing goes nowhere (PostgreSQL answers neither kind).
 */
static void start_cancel(struct session *s, const uint8_t *pkt, const struct pg_startup *st)
{
	struct cancel_target target;

	session_set_state(s, SESSION_CANCEL);
	bufferevent_disable(s->client, EV_READ);
	if (!cancel_registry_find(&s->w->shared->cancels, st->cancel_pid, st->cancel_key,
				  st->cancel_key_len, &target)) {
		s->w->stats.cancels[CANCEL_UNMATCHED]++;
		slog_debug(s, "cancel request for backend %u matches no session: dropped", st->cancel_pid);
		session_close(s, "cancel request matches no session");
		return;
	}
	s->startup_pkt = malloc(st->length);
	if (!s->startup_pkt) {
		session_close(s, "out of memory");
		return;
	}
	memcpy(s->startup_pkt, pkt, st->length);
	s->startup.kind = PG_STARTUP_CANCEL_REQUEST;
	s->startup.length = st->length;
	slog_debug(s, "cancel request for backend %u", st->cancel_pid);
	/* the connect, then the handshake and the server's close: each within the connect timeout */
	session_arm_timer(s, 2 * config_current()->upstream_connect_timeout_ms);
	session_connect_cancel(s, &target);
	OPENSSL_cleanse(target.key, sizeof(target.key));
}

static void start_login(struct session *s, const uint8_t *pkt, uint32_t len)
{
	if (s->refuse_sqlstate) {
		session_fail(s, s->refuse_sqlstate, s->refuse_message, s->refuse_message);
		return;
	}
	if (!s->client_tls && config_current()->client_tls == CLIENT_TLS_REQUIRE) {
		s->w->stats.rejected[REJECT_TLS_REQUIRED]++;
		slog_info(s, "rejected: plaintext login while client_tls = require");
		session_fail(s, PG_SQLSTATE_INVALID_AUTHORIZATION,
			     "walgate requires TLS: connect with sslmode=require (or verify-ca, verify-full)",
			     "TLS required");
		return;
	}
	s->startup_pkt = malloc(len);
	if (!s->startup_pkt) {
		session_close(s, "out of memory");
		return;
	}
	memcpy(s->startup_pkt, pkt, len);
	/* Parse our own copy so that the strings outlive the input buffer. */
	(void)pg_startup_parse(s->startup_pkt, len, &s->startup);
	session_arm_auth_deadline(s);
	if (s->w->auth_users && config_current()->auth == AUTH_SCRAM) {
		session_client_login_begin(s);
		return;
	}
	session_set_state(s, SESSION_CONNECTING);
	bufferevent_disable(s->client, EV_READ);
	session_connect_upstream(s);
}

static void startup_rejected(struct session *s, enum pg_startup_verdict v, uint32_t code)
{
	char msg[160];

	switch (v) {
	case PG_STARTUP_BAD_PROTOCOL:
		snprintf(msg, sizeof(msg), "unsupported frontend protocol %u.%u: walgate supports 3.x",
			 PG_PROTOCOL_MAJOR(code), PG_PROTOCOL_MINOR(code));
		session_protocol_violation(s, PG_SQLSTATE_FEATURE_NOT_SUPPORTED, msg);
		break;
	case PG_STARTUP_NO_USER:
		session_protocol_violation(s, PG_SQLSTATE_INVALID_AUTHORIZATION,
				   "no PostgreSQL user name specified in startup packet");
		break;
	default:
		snprintf(msg, sizeof(msg), "invalid startup packet: %s", pg_startup_verdict_str(v));
		session_protocol_violation(s, PG_SQLSTATE_PROTOCOL_VIOLATION, msg);
		break;
	}
}

/* Answer SSLRequest / GSSENCRequest with 'N': this version speaks plaintext. */
static void client_read(struct bufferevent *bev, void *arg);
static void client_write(struct bufferevent *bev, void *arg);
static void client_event(struct bufferevent *bev, short what, void *arg);

/*
 * Answer 'S' and hand the socket to OpenSSL, or (direct TLS) wrap what was
 * already read. The startup phase then goes on inside TLS.
 */
static void start_client_tls(struct session *s, bool direct)
{
	SSL *ssl = SSL_new(s->w->tls_server);

	if (!ssl) {
		session_close(s, "out of memory");
		return;
	}
	if (direct) {
		s->client = tls_upgrade_direct(s->client, ssl);
	} else {
		bufferevent_write(s->client, "S", 1);
		s->client = tls_upgrade_socket(s->client, ssl, BUFFEREVENT_SSL_ACCEPTING);
	}
	if (!s->client) {
		session_close(s, "cannot start TLS");
		return;
	}
	s->client_tls = true;
	s->direct_tls = direct;
	s->tls_handshaking = true;
	bufferevent_setcb(s->client, client_read, client_write, client_event, s);
	bufferevent_setwatermark(s->client, EV_READ, 0,
				 (size_t)config_current()->relay_buffer_size);
	bufferevent_enable(s->client, EV_READ);
}

static void client_tls_ready(struct session *s)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->client);
	char subject[256];

	s->tls_handshaking = false;
	if (s->direct_tls && !tls_alpn_is_postgresql(ssl)) {
		s->w->stats.tls_handshakes[0][1]++;
		session_reject(s, REJECT_TLS_HANDSHAKE, "direct TLS without ALPN postgresql");
		return;
	}
	s->w->stats.tls_handshakes[0][0]++;
	tls_peer_subject(ssl, subject, sizeof(subject));
	slog_debug(s, "TLS established: %s %s%s%s", SSL_get_version(ssl), SSL_get_cipher_name(ssl),
		   subject[0] ? ", client certificate " : "", subject);
	if (subject[0])
		slog_info(s, "client certificate: %s", subject);
}

static void client_tls_failed(struct session *s)
{
	char why[320];

	s->tls_handshaking = false;
	s->w->stats.tls_handshakes[0][1]++;
	tls_describe_failure(bufferevent_openssl_get_ssl(s->client),
			     bufferevent_get_openssl_error(s->client), why, sizeof(why));
	session_reject(s, REJECT_TLS_HANDSHAKE, why);
}

/* SSLRequest: TLS when walgate has a certificate and the client may use it. */
static bool answer_ssl_request(struct session *s, size_t avail, uint32_t len)
{
	if (s->refused_ssl || s->client_tls) {
		session_protocol_violation(s, PG_SQLSTATE_PROTOCOL_VIOLATION, "SSLRequest sent twice");
		return false;
	}
	if (!s->w->tls_server) {
		s->refused_ssl = true;
		bufferevent_write(s->client, "N", 1);
		return true;
	}
	/*
	 * Whatever follows the request in the same read was sent before the
	 * handshake, in plaintext, and must not be taken as if it came through
	 * TLS (CVE-2021-23214).
	 */
	if (avail > len) {
		session_protocol_violation(s, PG_SQLSTATE_PROTOCOL_VIOLATION,
					   "data received after SSLRequest, before the TLS handshake");
		return false;
	}
	evbuffer_drain(bufferevent_get_input(s->client), len);
	start_client_tls(s, false);
	return false;	/* the plaintext buffer is gone: stop reading it */
}

static bool refuse_encryption(struct session *s, bool *already, const char *what)
{
	if (*already) {
		char msg[80];

		snprintf(msg, sizeof(msg), "%s sent twice", what);
		session_protocol_violation(s, PG_SQLSTATE_PROTOCOL_VIOLATION, msg);
		return false;
	}
	*already = true;
	bufferevent_write(s->client, "N", 1);
	return true;
}

/* Would these first bytes begin a PROXY header (v1 or v2)? */
static bool looks_like_proxy_header(const uint8_t head[4])
{
	struct proxy_header h;

	return proxy_header_parse(head, 4, PROXY_ACCEPT_V1 | PROXY_ACCEPT_V2, &h) != PROXY_NOT_PROXY;
}

static void startup_read(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->client);

	for (;;) {
		size_t avail = evbuffer_get_length(in);
		uint8_t head[4];
		const uint8_t *pkt;
		uint32_t len;
		struct pg_startup st;
		enum pg_startup_verdict v;

		if (avail < 4)
			return;
		evbuffer_copyout(in, head, 4);
		if (!s->client_tls && pg_startup_is_tls_hello(head, 4)) {
			if (s->w->tls_server)
				start_client_tls(s, true);
			else
				session_reject(s, REJECT_TLS_HANDSHAKE, "TLS ClientHello, but client_tls = disable");
			return;
		}
		v = pg_startup_length(head, 4, &len);
		if (v != PG_STARTUP_OK && looks_like_proxy_header(head)) {
			session_reject(s, REJECT_PROXY_UNTRUSTED,
			       "PROXY protocol header from a peer not in proxy_protocol_trusted");
			return;
		}
		if (v != PG_STARTUP_OK) {
			startup_rejected(s, v, 0);
			return;
		}
		if (avail < len)
			return;
		pkt = evbuffer_pullup(in, len);
		v = pg_startup_parse(pkt, len, &st);
		if (v != PG_STARTUP_OK) {
			startup_rejected(s, v, st.code);
			return;
		}
		switch (st.kind) {
		case PG_STARTUP_SSL_REQUEST:
			if (!answer_ssl_request(s, avail, len))
				return;
			break;
		case PG_STARTUP_GSSENC_REQUEST:
			if (!refuse_encryption(s, &s->refused_gss, "GSSENCRequest"))
				return;
			break;
		case PG_STARTUP_CANCEL_REQUEST:
			start_cancel(s, pkt, &st);
			evbuffer_drain(in, evbuffer_get_length(in));
			return;
		case PG_STARTUP_MESSAGE:
			start_login(s, pkt, len);
			evbuffer_drain(in, len);
			return;
		}
		evbuffer_drain(in, len);
	}
}

/* ---- PROXY protocol ---------------------------------------------------- */

static void proxy_header_read(struct session *s)
{
	const struct config *cfg = config_current();
	struct evbuffer *in = bufferevent_get_input(s->client);
	size_t avail = evbuffer_get_length(in);
	size_t n = avail < PROXY_V2_MAX_LEN ? avail : PROXY_V2_MAX_LEN;
	struct proxy_header h;
	enum proxy_verdict v;
	char why[160];

	v = proxy_header_parse(evbuffer_pullup(in, (ssize_t)n), n, (unsigned)cfg->proxy_protocol, &h);
	if (v == PROXY_NEED_MORE)
		return;		/* bounded by the parser's caps and the startup timeout */
	if (v != PROXY_OK) {
		snprintf(why, sizeof(why), "PROXY header from a trusted peer: %s", proxy_verdict_str(v));
		session_reject(s, REJECT_PROXY_HEADER, why);
		return;
	}
	evbuffer_drain(in, h.length);
	if (h.unknown_source && cfg->proxy_protocol_unknown == PROXY_UNKNOWN_REFUSE) {
		/* The balancer relays a client it does not name: its own address proves nothing. */
		snprintf(why, sizeof(why), "PROXY header without a source address (%s), "
			 "proxy_protocol_unknown = refuse", h.version == 1 ? "v1 UNKNOWN" : "v2 AF_UNSPEC or AF_UNIX");
		session_reject(s, REJECT_PROXY_UNKNOWN, why);
		return;
	}
	if (!h.local) {
		snprintf(s->via, sizeof(s->via), "%s", s->peer);
		session_set_peer(s, (struct sockaddr *)&h.src);
	}
	if (!allowlist_match(cfg->allow, (struct sockaddr *)&s->client_addr)) {
		snprintf(why, sizeof(why), "source %s not allowed (rule set %u)", s->peer, cfg->generation);
		session_reject(s, REJECT_NOT_ALLOWED, why);
		return;
	}
	session_set_state(s, SESSION_STARTUP);
	startup_read(s);
}

/* ---- client side ------------------------------------------------------ */

static void client_read(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	s->client_bytes_seen += evbuffer_get_length(in);
	switch (s->state) {
	case SESSION_PROXY_HEADER:
		proxy_header_read(s);
		break;
	case SESSION_STARTUP:
		startup_read(s);
		break;
	case SESSION_AUTH:
		session_client_login_read(s);
		break;
	default:
		evbuffer_drain(in, evbuffer_get_length(in));
		break;
	}
}

static void client_write(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	if (s->state == SESSION_CLOSING)
		session_closing_progress(s);
}

static void client_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		client_tls_ready(s);
		return;
	}
	if (s->state == SESSION_CLOSING) {
		bev_leg_free(s->client);
		s->client = NULL;
		session_closing_progress(s);
		return;
	}
	if (s->client_tls && s->tls_handshaking) {
		client_tls_failed(s);
		return;
	}
	if (s->state == SESSION_PROXY_HEADER) {
		/* A load balancer's TCP health check connects and closes: not an error. */
		if (s->client_bytes_seen == 0)
			session_close(s, "closed without sending anything");
		else
			session_reject(s, REJECT_PROXY_HEADER, "closed before a complete PROXY header");
		return;
	}
	session_close(s, (what & BEV_EVENT_EOF) ? "client closed" : "client connection error");
}

/* ---- entry points ----------------------------------------------------- */

/*
 * Before any byte is read: a source that is not allowed costs one log line
 * (rate-limited) and a close. A trusted load balancer is let in to send its
 * PROXY header; the real source is checked when it has.
 */
static bool admit(struct worker *w, const struct config *cfg, const struct sockaddr *peer,
		  bool *expect_header)
{
	unsigned long suppressed = 0;
	char addr[64];

	*expect_header = cfg->proxy_protocol && allowlist_match(cfg->proxy_protocol_trusted, peer);
	if (*expect_header || allowlist_match(cfg->allow, peer))
		return true;
	w->stats.rejected[REJECT_NOT_ALLOWED]++;
	if (worker_deny_log_pass(w->shared, &suppressed)) {
		net_format_addr(peer, addr, sizeof(addr));
		log_info("rejected: source %s not allowed (rule set %u)%s", addr, cfg->generation,
			 suppressed ? "; more rejections were not logged" : "");
		if (suppressed)
			log_info("rejected: %lu connections not logged (at most %u per %d s)", suppressed,
				 w->shared->deny_log.burst, w->shared->deny_log.period);
	}
	return false;
}

/*
 * Connections beyond max_client_conn get a session for a while so that
 * they can be told FATAL 53300 (after their startup packet: libpq must
 * read it) and so that cancel requests still pass. This many of them at
 * most: past it, a flood is closed at accept.
 */
static unsigned over_limit_room(const struct config *cfg)
{
	unsigned eighth = (unsigned)cfg->max_client_conn / 8;

	return eighth > 16 ? eighth : 16;
}

void session_accept(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen)
{
	const struct config *cfg = config_current();
	struct session *s;
	bool expect_header;

	if (!admit(w, cfg, peer, &expect_header)) {
		close(fd);
		return;
	}
	if (atomic_load_explicit(&w->shared->sessions, memory_order_relaxed) >=
	    (unsigned)cfg->max_client_conn + over_limit_room(cfg)) {
		/* Past the room for polite refusals: no session, no TLS, no timer. */
		w->stats.rejected[REJECT_TOO_MANY]++;
		close(fd);
		return;
	}
	s = session_new(w, fd, peer, expect_header ? SESSION_PROXY_HEADER : SESSION_STARTUP);
	if (!s)
		return;
	bufferevent_setcb(s->client, client_read, client_write, client_event, s);
	/* its own count, not a load: two workers accepting at once cannot both be refused */
	if (s->open_rank > (unsigned)cfg->max_client_conn) {
		/* Cancel requests still pass: they are how a full server is relieved. */
		w->stats.rejected[REJECT_TOO_MANY]++;
		s->refuse_sqlstate = PG_SQLSTATE_TOO_MANY_CONNECTIONS;
		snprintf(s->refuse_message, sizeof(s->refuse_message),
			 "too many connections (max_client_conn = %d)", cfg->max_client_conn);
		slog_warning(s, "%s", s->refuse_message);
	}
	/* The startup phase ends by startup_timeout, and within auth_timeout too. */
	session_arm_timer(s, cfg->startup_timeout_ms < cfg->auth_timeout_ms ? cfg->startup_timeout_ms
									    : cfg->auth_timeout_ms);
	bufferevent_enable(s->client, EV_READ);
}

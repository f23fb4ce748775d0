/*
 * session.c - the life of one client connection: the startup phase,
 * connecting upstream, relaying, and closing. Every state change goes
 * through session_set_state; every end goes through session_close.
 */
#include "session.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "allowlist.h"
#include "config.h"
#include "netutil.h"
#include "proxy_header.h"
#include "pg_message.h"
#include "pg_wire.h"
#include "upstream.h"
#include "worker.h"

/* How long a closing session may take to flush its last bytes. */
#define CLOSE_FLUSH_MS 5000

static const char *const state_names[] = {
	[SESSION_PROXY_HEADER] = "proxy_header",
	[SESSION_STARTUP] = "startup",
	[SESSION_CONNECTING] = "connecting",
	[SESSION_RELAY] = "relay",
	[SESSION_CANCEL] = "cancel",
	[SESSION_CLOSING] = "closing",
};

static void session_close(struct session *s, const char *reason);

static void session_set_state(struct session *s, enum session_state next)
{
	slog_debug(s, "state %s -> %s", state_names[s->state], state_names[next]);
	s->state = next;
}

static void arm_timer(struct session *s, int64_t ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	evtimer_add(s->timer, &tv);
}

static double elapsed_seconds(const struct session *s)
{
	struct timeval now, d;

	gettimeofday(&now, NULL);
	timersub(&now, &s->started, &d);
	return (double)d.tv_sec + (double)d.tv_usec / 1e6;
}

static void log_close(struct session *s)
{
	/* Port probes and load-balancer checks send nothing: keep them out of the info log. */
	enum log_level level = s->client_bytes_seen ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG;
	bool login = s->startup_pkt && s->startup.kind == PG_STARTUP_MESSAGE;

	slog(s, level, "closed: peer=%s user=%s database=%s replication=%s bytes_in=%llu bytes_out=%llu duration=%.3fs reason=\"%s\"",
	     s->peer, login ? s->startup.user : "-",
	     login ? (s->startup.database ? s->startup.database : s->startup.user) : "-",
	     login ? pg_replication_mode_str(s->startup.replication_mode) : "-",
	     (unsigned long long)s->client_bytes_seen, (unsigned long long)s->to_client.bytes,
	     elapsed_seconds(s), s->close_reason ? s->close_reason : "unknown");
}

static void session_free(struct session *s)
{
	struct worker *w = s->w;

	log_close(s);
	w->stats.closed++;
	w->stats.bytes_client_to_server += s->to_server.bytes;
	w->stats.bytes_server_to_client += s->to_client.bytes;
	if (s->connecting)
		upstream_connect_abort(s->connecting);
	if (s->client)
		bufferevent_free(s->client);
	if (s->server)
		bufferevent_free(s->server);
	event_free(s->timer);
	free(s->startup_pkt);
	TAILQ_REMOVE(&w->sessions, s, link);
	w->nsessions--;
	free(s);
	if (w->draining && w->nsessions == 0 && w->on_idle)
		w->on_idle(w);
}

/* In CLOSING: free each side once its queued output is written; then the session. */
static void closing_progress(struct session *s)
{
	if (s->client && evbuffer_get_length(bufferevent_get_output(s->client)) == 0) {
		bufferevent_free(s->client);
		s->client = NULL;
	}
	if (s->server && evbuffer_get_length(bufferevent_get_output(s->server)) == 0) {
		bufferevent_free(s->server);
		s->server = NULL;
	}
	/*
	 * Free from the loop, never from inside a caller that may still look
	 * at the session after closing it.
	 */
	if (!s->client && !s->server)
		event_active(s->timer, EV_TIMEOUT, 0);
}

static void session_close(struct session *s, const char *reason)
{
	if (s->state == SESSION_CLOSING)
		return;
	s->close_reason = reason;
	session_set_state(s, SESSION_CLOSING);
	if (s->connecting) {
		upstream_connect_abort(s->connecting);
		s->connecting = NULL;
	}
	if (s->client) {
		bufferevent_disable(s->client, EV_READ);
		bufferevent_setwatermark(s->client, EV_WRITE, 0, 0);
	}
	if (s->server) {
		bufferevent_disable(s->server, EV_READ);
		bufferevent_setwatermark(s->server, EV_WRITE, 0, 0);
	}
	event_del(s->timer);
	arm_timer(s, CLOSE_FLUSH_MS);
	closing_progress(s);
}

/*
 * Queue an ErrorResponse for the client. Only where the client expects a
 * message to start: before relaying, or between two upstream messages.
 */
static bool tell_client(struct session *s, const char *severity, const char *sqlstate,
			const char *message)
{
	struct pg_error_fields f = { .severity = severity, .sqlstate = sqlstate, .message = message };
	uint8_t buf[1200];
	size_t len;

	if (!s->client || s->state == SESSION_CANCEL)
		return false;
	if (s->state == SESSION_RELAY && !pg_scan_at_boundary(&s->to_client.scan))
		return false;
	len = pg_build_error(buf, sizeof(buf), &f);
	if (len == 0)
		return false;
	bufferevent_write(s->client, buf, len);
	return true;
}

static void fail_session(struct session *s, const char *sqlstate, const char *message,
			 const char *reason)
{
	tell_client(s, "FATAL", sqlstate, message);
	session_close(s, reason);
}

/* Turn a connection away before anything of it reached the upstream. */
static void reject(struct session *s, enum reject_reason reason, const char *why)
{
	s->w->stats.rejected[reason]++;
	slog_info(s, "rejected: %s", why);
	session_close(s, why);
}

static void protocol_violation(struct session *s, const char *sqlstate, const char *message)
{
	s->w->stats.protocol_errors++;
	if (s->state == SESSION_STARTUP)
		s->w->stats.rejected[REJECT_PROTOCOL]++;
	slog_warning(s, "protocol violation: %s", message);
	fail_session(s, sqlstate, message, message);
}

/* ---- upstream side ---------------------------------------------------- */

static void server_message(void *arg, const struct pg_msg *m)
{
	struct session *s = arg;

	if (m->type == PG_MSG_BACKEND_KEY_DATA && m->prefix_len >= 8) {
		s->have_key = true;
		s->backend_pid = pg_get_u32(m->prefix);
		s->backend_key = pg_get_u32(m->prefix + 4);
	}
}

static void client_message(void *arg, const struct pg_msg *m)
{
	struct session *s = arg;

	if (m->type == PG_MSG_TERMINATE)
		s->close_reason = "client terminated";
}

static void forward_to_client(struct session *s)
{
	if (relay_forward(&s->to_client, s->server, s->client) < 0) {
		s->w->stats.protocol_errors++;
		slog_error(s, "upstream protocol violation: %s", pg_scan_error_str(s->to_client.scan.error));
		session_close(s, "upstream protocol violation");
	}
}

static void forward_to_server(struct session *s)
{
	if (relay_forward(&s->to_server, s->client, s->server) < 0) {
		const char *why = pg_scan_error_str(s->to_server.scan.error);
		char msg[160];

		snprintf(msg, sizeof(msg), "invalid message from client: %s", why);
		protocol_violation(s, PG_SQLSTATE_PROTOCOL_VIOLATION, msg);
	}
}

static void server_read(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	if (s->state == SESSION_RELAY)
		forward_to_client(s);
	else
		evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

static void server_write(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	if (s->state == SESSION_RELAY)
		relay_sink_drained(&s->to_server, s->client, s->server);
	else if (s->state == SESSION_CLOSING)
		closing_progress(s);
}

static void server_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	if (s->state == SESSION_CLOSING) {
		bufferevent_free(s->server);	/* gone: what was queued for it cannot be sent */
		s->server = NULL;
		closing_progress(s);
		return;
	}
	if (s->state == SESSION_CANCEL) {
		session_close(s, "cancel request forwarded");
		return;
	}
	forward_to_client(s);
	if (s->state != SESSION_RELAY)
		return;
	/* An upstream that said FATAL before closing has told the client already. */
	if (s->to_client.last_type != PG_MSG_ERROR_RESPONSE)
		tell_client(s, "FATAL", PG_SQLSTATE_CONNECTION_FAILURE,
			    "walgate: the upstream server closed the connection");
	session_close(s, (what & BEV_EVENT_EOF) ? "upstream closed" : "upstream connection error");
}

static void start_relay(struct session *s)
{
	const struct config *cfg = config_current();
	const struct pg_startup *st = &s->startup;

	session_set_state(s, SESSION_RELAY);
	event_del(s->timer);	/* no idle timeout: replication connections idle for long */
	relay_dir_init(&s->to_server, (uint32_t)cfg->max_message_size,
		       (size_t)cfg->relay_buffer_size, client_message, s);
	/* The upstream is trusted to frame its own messages; any length up to the protocol's. */
	relay_dir_init(&s->to_client, UINT32_MAX, (size_t)cfg->relay_buffer_size, server_message, s);
	bufferevent_write(s->server, s->startup_pkt, st->length);
	slog_info(s, "login: user=%s database=%s replication=%s application_name=%s",
		  st->user, st->database ? st->database : st->user,
		  pg_replication_mode_str(st->replication_mode),
		  st->application_name ? st->application_name : "");
	bufferevent_enable(s->server, EV_READ);
	bufferevent_enable(s->client, EV_READ);
	/* Bytes the client sent right after its startup packet wait in the input. */
	forward_to_server(s);
}

static void upstream_done(struct bufferevent *bev, const struct sockaddr *addr, socklen_t addrlen,
			  const char *error, void *arg)
{
	struct session *s = arg;
	const struct config *cfg = config_current();

	s->connecting = NULL;
	s->w->upstream_reachable = bev != NULL;
	if (!bev) {
		s->w->stats.upstream_connect_failures++;
		slog_warning(s, "%s", error);
		fail_session(s, PG_SQLSTATE_CONNECTION_FAILURE, error, "upstream unreachable");
		return;
	}
	s->server = bev;
	memcpy(&s->upstream_addr, addr, addrlen);
	s->upstream_addrlen = addrlen;
	bufferevent_setcb(bev, server_read, server_write, server_event, s);
	bufferevent_setwatermark(bev, EV_READ, 0, (size_t)cfg->relay_buffer_size);
	if (s->state == SESSION_CANCEL) {
		s->w->stats.cancels_forwarded++;
		bufferevent_write(bev, s->startup_pkt, 16);
		bufferevent_enable(bev, EV_READ);	/* the server closes when it has read it */
		return;
	}
	start_relay(s);
}

static void connect_upstream(struct session *s, const struct sockaddr *pinned, socklen_t len)
{
	const struct config *cfg = config_current();

	s->connecting = upstream_connect_start(s->w, cfg->upstream_host, cfg->upstream_port,
					       pinned, len, upstream_done, s);
	if (!s->connecting)
		fail_session(s, PG_SQLSTATE_CONNECTION_FAILURE, "walgate: out of memory", "out of memory");
}

/* ---- startup phase ---------------------------------------------------- */

static struct session *find_by_cancel_key(struct worker *w, uint32_t pid, uint32_t key)
{
	struct session *s;

	TAILQ_FOREACH(s, &w->sessions, link)
		if (s->have_key && s->backend_pid == pid && s->backend_key == key)
			return s;
	return NULL;
}

static void start_cancel(struct session *s, const uint8_t *pkt, const struct pg_startup *st)
{
	struct session *target = find_by_cancel_key(s->w, st->cancel_pid, st->cancel_key);

	s->startup_pkt = malloc(16);
	if (!s->startup_pkt) {
		session_close(s, "out of memory");
		return;
	}
	memcpy(s->startup_pkt, pkt, 16);
	s->startup.kind = PG_STARTUP_CANCEL_REQUEST;
	session_set_state(s, SESSION_CANCEL);
	bufferevent_disable(s->client, EV_READ);
	slog_debug(s, "cancel request for backend %u%s", st->cancel_pid,
		   target ? "" : " (no such session here; sent to the configured upstream)");
	if (target)
		connect_upstream(s, (struct sockaddr *)&target->upstream_addr, target->upstream_addrlen);
	else
		connect_upstream(s, NULL, 0);
}

static void start_login(struct session *s, const uint8_t *pkt, uint32_t len)
{
	if (s->refuse_sqlstate) {
		fail_session(s, s->refuse_sqlstate, s->refuse_message, s->refuse_message);
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
	session_set_state(s, SESSION_CONNECTING);
	bufferevent_disable(s->client, EV_READ);
	connect_upstream(s, NULL, 0);
}

static void startup_rejected(struct session *s, enum pg_startup_verdict v, uint32_t code)
{
	char msg[160];

	switch (v) {
	case PG_STARTUP_BAD_PROTOCOL:
		snprintf(msg, sizeof(msg), "unsupported frontend protocol %u.%u: walgate supports 3.x",
			 PG_PROTOCOL_MAJOR(code), PG_PROTOCOL_MINOR(code));
		protocol_violation(s, PG_SQLSTATE_FEATURE_NOT_SUPPORTED, msg);
		break;
	case PG_STARTUP_NO_USER:
		protocol_violation(s, PG_SQLSTATE_INVALID_AUTHORIZATION,
				   "no PostgreSQL user name specified in startup packet");
		break;
	default:
		snprintf(msg, sizeof(msg), "invalid startup packet: %s", pg_startup_verdict_str(v));
		protocol_violation(s, PG_SQLSTATE_PROTOCOL_VIOLATION, msg);
		break;
	}
}

/* Answer SSLRequest / GSSENCRequest with 'N': this version speaks plaintext. */
static bool refuse_encryption(struct session *s, bool *already, const char *what)
{
	if (*already) {
		char msg[80];

		snprintf(msg, sizeof(msg), "%s sent twice", what);
		protocol_violation(s, PG_SQLSTATE_PROTOCOL_VIOLATION, msg);
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
		v = pg_startup_length(head, 4, &len);
		if (v != PG_STARTUP_OK && looks_like_proxy_header(head)) {
			reject(s, REJECT_PROXY_UNTRUSTED,
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
			if (!refuse_encryption(s, &s->refused_ssl, "SSLRequest"))
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

static void set_peer(struct session *s, const struct sockaddr *sa)
{
	memcpy(&s->client_addr, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							  : sizeof(struct sockaddr_in));
	net_format_addr(sa, s->peer, sizeof(s->peer));
	snprintf(s->prefix, sizeof(s->prefix), "C-%llu %s%s%s", (unsigned long long)s->id, s->peer,
		 s->via[0] ? " via " : "", s->via);
}

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
		reject(s, REJECT_PROXY_HEADER, why);
		return;
	}
	evbuffer_drain(in, h.length);
	if (!h.local) {
		snprintf(s->via, sizeof(s->via), "%s", s->peer);
		set_peer(s, (struct sockaddr *)&h.src);
	}
	if (!allowlist_match(cfg->allow, (struct sockaddr *)&s->client_addr)) {
		snprintf(why, sizeof(why), "source %s not allowed (rule set %u)", s->peer, cfg->generation);
		reject(s, REJECT_NOT_ALLOWED, why);
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
	case SESSION_RELAY:
		forward_to_server(s);
		break;
	default:
		evbuffer_drain(in, evbuffer_get_length(in));
		break;
	}
}

static void client_write(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	if (s->state == SESSION_RELAY)
		relay_sink_drained(&s->to_client, s->server, s->client);
	else if (s->state == SESSION_CLOSING)
		closing_progress(s);
}

static void client_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	if (s->state == SESSION_CLOSING) {
		bufferevent_free(s->client);
		s->client = NULL;
		closing_progress(s);
		return;
	}
	if (s->state == SESSION_RELAY)
		forward_to_server(s);	/* what arrived before the end still goes */
	if (s->state == SESSION_CLOSING)
		return;
	if (s->close_reason)		/* the client said Terminate */
		session_close(s, s->close_reason);
	else
		session_close(s, (what & BEV_EVENT_EOF) ? "client closed" : "client connection error");
}

static void session_timer(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	switch (s->state) {
	case SESSION_CLOSING:
		if (s->client || s->server)
			slog_debug(s, "closing: peer did not take the last bytes in time");
		session_free(s);
		break;
	case SESSION_PROXY_HEADER:
		reject(s, REJECT_PROXY_HEADER, "no PROXY header from a trusted peer in time");
		break;
	case SESSION_STARTUP:
		reject(s, REJECT_STARTUP_TIMEOUT, "startup timeout");
		break;
	default:
		break;
	}
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
	if (ratelimit_pass(&w->deny_log, (int64_t)time(NULL), &suppressed)) {
		net_format_addr(peer, addr, sizeof(addr));
		log_info("rejected: source %s not allowed (rule set %u)%s", addr, cfg->generation,
			 suppressed ? "; more rejections were not logged" : "");
		if (suppressed)
			log_info("rejected: %lu connections not logged (at most %u per %d s)", suppressed,
				 w->deny_log.burst, w->deny_log.period);
	}
	return false;
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
	s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return;
	}
	s->w = w;
	s->id = ++w->next_session_id;
	s->state = expect_header ? SESSION_PROXY_HEADER : SESSION_STARTUP;
	gettimeofday(&s->started, NULL);
	set_peer(s, peer);
	s->client = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	s->timer = evtimer_new(w->base, session_timer, s);
	if (!s->client || !s->timer) {
		if (s->client)
			bufferevent_free(s->client);
		else
			close(fd);
		if (s->timer)
			event_free(s->timer);
		free(s);
		return;
	}
	TAILQ_INSERT_TAIL(&w->sessions, s, link);
	w->nsessions++;
	w->stats.accepted++;
	net_tune_socket(fd, cfg);
	bufferevent_setcb(s->client, client_read, client_write, client_event, s);
	bufferevent_setwatermark(s->client, EV_READ, 0, (size_t)cfg->relay_buffer_size);
	slog_debug(s, "accepted");
	if (w->nsessions > (unsigned)cfg->max_client_conn) {
		/* Cancel requests still pass: they are how a full server is relieved. */
		w->stats.rejected[REJECT_TOO_MANY]++;
		s->refuse_sqlstate = PG_SQLSTATE_TOO_MANY_CONNECTIONS;
		snprintf(s->refuse_message, sizeof(s->refuse_message),
			 "too many connections (max_client_conn = %d)", cfg->max_client_conn);
		slog_warning(s, "%s", s->refuse_message);
	}
	arm_timer(s, cfg->startup_timeout_ms);
	bufferevent_enable(s->client, EV_READ);
}

/* Has the client begun a startup packet that is not complete yet? */
static bool startup_in_flight(struct session *s)
{
	return evbuffer_get_length(bufferevent_get_input(s->client)) > 0;
}

void session_drain_logins(struct worker *w)
{
	struct session *s, *next;

	for (s = TAILQ_FIRST(&w->sessions); s; s = next) {
		next = TAILQ_NEXT(s, link);
		if (s->state == SESSION_PROXY_HEADER) {
			session_close(s, "shutting down");
		} else if (s->state == SESSION_CONNECTING ||
			   (s->state == SESSION_STARTUP && !startup_in_flight(s))) {
			fail_session(s, PG_SQLSTATE_CANNOT_CONNECT_NOW, "walgate is shutting down",
				     "shutting down");
		} else if (s->state == SESSION_STARTUP) {
			/* Half a packet is here: answer when it is whole (or time out). */
			s->refuse_sqlstate = PG_SQLSTATE_CANNOT_CONNECT_NOW;
			snprintf(s->refuse_message, sizeof(s->refuse_message), "walgate is shutting down");
		}
	}
}

void session_close_all(struct worker *w)
{
	struct session *s, *next;

	for (s = TAILQ_FIRST(&w->sessions); s; s = next) {
		next = TAILQ_NEXT(s, link);
		if (s->state == SESSION_CLOSING)
			continue;
		fail_session(s, PG_SQLSTATE_ADMIN_SHUTDOWN,
			     "terminating connection because walgate is shutting down", "shutdown");
	}
}

void session_enforce_allowlist(struct worker *w)
{
	const struct config *cfg = config_current();
	struct session *s, *next;
	char msg[160];

	for (s = TAILQ_FIRST(&w->sessions); s; s = next) {
		next = TAILQ_NEXT(s, link);
		if (s->state == SESSION_CLOSING || s->state == SESSION_PROXY_HEADER ||
		    allowlist_match(cfg->allow, (struct sockaddr *)&s->client_addr))
			continue;
		w->stats.sessions_closed_by_reload++;
		snprintf(msg, sizeof(msg), "terminating connection: source %s is no longer allowed by walgate",
			 s->peer);
		slog_info(s, "closing: source no longer allowed (rule set %u)", cfg->generation);
		fail_session(s, PG_SQLSTATE_ADMIN_SHUTDOWN, msg, "no longer allowed after reload");
	}
}

void session_free_all(struct worker *w)
{
	struct session *s;

	while ((s = TAILQ_FIRST(&w->sessions)) != NULL) {
		if (!s->close_reason)
			s->close_reason = "exit";
		session_free(s);
	}
}

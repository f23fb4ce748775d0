/*
 * session.c - the life of a session as a whole: its state changes, its
 * deadlines, how it ends (session_close, the one way out) and is freed,
 * and the operations on all of a worker's sessions.
 *
 * The client side (session_client.c) and the upstream side
 * (session_upstream.c) drive it; this file calls neither.
 */
#include "session/session.h"
#include "session/session_int.h"
#include "repl/repl_track.h"
#include "session/session_secrets.h"
#include "session/takeover_state.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/allowlist.h"
#include "relay/bev_leg.h"
#include "relay/relay_io.h"
#include "core/config.h"
#include "core/netutil.h"
#include "protocol/pg_message.h"
#include "relay/upstream_connect.h"
#include "worker/worker.h"

/* How long a closing session may take to flush its last bytes. */
#define CLOSE_FLUSH_MS 5000

static const char *const state_names[] = {
	[SESSION_PROXY_HEADER] = "proxy_header",
	[SESSION_STARTUP] = "startup",
	[SESSION_AUTH] = "auth",
	[SESSION_CONNECTING] = "connecting",
	[SESSION_LOGIN] = "login",
	[SESSION_RELAY] = "relay",
	[SESSION_CANCEL] = "cancel",
	[SESSION_CLOSING] = "closing",
};

void session_set_state(struct session *s, enum session_state next)
{
	slog_debug(s, "state %s -> %s", state_names[s->state], state_names[next]);
	s->state = next;
}

void session_arm_timer(struct session *s, int64_t ms)
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
	     elapsed_seconds(s), s->close_reason[0] ? s->close_reason : "unknown");
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
		bev_leg_free(s->client);
	if (s->server)
		bev_leg_free(s->server);
	relay_io_free(s->client_io);
	relay_io_free(s->server_io);
	event_free(s->timer);
	free(s->startup_pkt);
	if (s->cancel_entry)
		cancel_registry_remove(&w->shared->cancels, s->cancel_entry);
	session_auth_free(s->auth);
	repl_track_free(s->repl);
	takeover_free(s->takeover);
	TAILQ_REMOVE(&w->sessions, s, link);
	w->nsessions--;
	atomic_fetch_sub_explicit(&w->shared->sessions, 1, memory_order_relaxed);
	free(s);
	if (w->draining && w->nsessions == 0 && w->on_idle)
		w->on_idle(w);
}

void session_drop_server(struct session *s)
{
	if (s->server)
		bev_leg_free(s->server);
	relay_io_free(s->server_io);
	s->server = NULL;
	s->server_io = NULL;
	if (s->takeover)
		takeover_unclaim(s->takeover);
}

/* In CLOSING: free each side once its queued output is written; then the session. */
void session_closing_progress(struct session *s)
{
	if (s->client && evbuffer_get_length(bufferevent_get_output(s->client)) == 0) {
		bev_leg_free(s->client);
		s->client = NULL;
	}
	if (s->server && !s->await_server_eof &&
	    evbuffer_get_length(bufferevent_get_output(s->server)) == 0)
		session_drop_server(s);
	if (s->client_io && (relay_io_queued(s->client_io) == 0 || s->client_io->failed)) {
		relay_io_free(s->client_io);
		s->client_io = NULL;
	}
	if (s->server_io && (s->server_io->failed ||
			     (!s->await_server_eof && relay_io_queued(s->server_io) == 0)))
		session_drop_server(s);
	/*
	 * Free from the loop, never from inside a caller that may still look
	 * at the session after closing it.
	 */
	if (!s->client && !s->server && !s->client_io && !s->server_io)
		event_active(s->timer, EV_TIMEOUT, 0);
}

void session_close(struct session *s, const char *reason)
{
	if (s->state == SESSION_CLOSING)
		return;
	if (reason != s->close_reason)
		snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason);
	session_set_state(s, SESSION_CLOSING);
	if (s->connecting) {
		upstream_connect_abort(s->connecting);
		s->connecting = NULL;
	}
	/*
	 * Each leg's last bytes (a FATAL, the client's Terminate) go now, in
	 * this loop pass, and a leg with nothing left is closed in it too: a
	 * walsender sees its client leave at once and frees its slot.
	 */
	if (s->client) {
		bufferevent_disable(s->client, EV_READ);
		bufferevent_setwatermark(s->client, EV_WRITE, 0, 0);
		bev_leg_flush(s->client);
	}
	if (s->server) {
		/* a stream taken over: the server's close says its slot is free */
		if (s->await_server_eof)
			bufferevent_enable(s->server, EV_READ);
		else
			bufferevent_disable(s->server, EV_READ);
		bufferevent_setwatermark(s->server, EV_WRITE, 0, 0);
		bev_leg_flush(s->server);
	}
	if (s->client_io) {
		relay_io_set_reading(s->client_io, false);
		relay_io_flush(s->client_io);
	}
	if (s->server_io) {
		/* a stream taken over: the server's close says its slot is free */
		relay_io_set_reading(s->server_io, s->await_server_eof);
		relay_io_flush(s->server_io);
	}
	event_del(s->timer);
	session_arm_timer(s, CLOSE_FLUSH_MS);
	session_closing_progress(s);
}

/*
 * Queue an ErrorResponse for the client. Only where the client expects a
 * message to start: before relaying, or between two upstream messages.
 */
bool session_tell_client(struct session *s, const char *severity, const char *sqlstate,
			const char *message)
{
	struct pg_error_fields f = { .severity = severity, .sqlstate = sqlstate, .message = message };
	uint8_t buf[1200];
	size_t len;

	if ((!s->client && !s->client_io) || s->state == SESSION_CANCEL)
		return false;
	if (session_legs_open(s) && !pg_scan_at_boundary(&s->to_client.scan))
		return false;
	len = pg_build_error(buf, sizeof(buf), &f);
	if (len == 0)
		return false;
	if (s->client_io)
		relay_io_write(s->client_io, buf, len);
	else
		bufferevent_write(s->client, buf, len);
	return true;
}

void session_login_to_client(struct session *s, const uint8_t *msg, size_t len)
{
	relay_io_write(s->client_io, msg, len);
	s->to_client.bytes += len;
	s->to_client.last_type = msg[0];
}

void session_fail(struct session *s, const char *sqlstate, const char *message,
			 const char *reason)
{
	session_tell_client(s, "FATAL", sqlstate, message);
	session_close(s, reason);
}

/* Turn a connection away before anything of it reached the upstream. */
void session_reject(struct session *s, enum reject_reason reason, const char *why)
{
	s->w->stats.rejected[reason]++;
	slog_info(s, "rejected: %s", why);
	session_close(s, why);
}

void session_protocol_violation(struct session *s, const char *sqlstate, const char *message)
{
	s->w->stats.protocol_errors[PROTO_ERR_CLIENT]++;
	if (s->state == SESSION_STARTUP)
		s->w->stats.rejected[REJECT_PROTOCOL]++;
	slog_warning(s, "protocol violation: %s", message);
	session_fail(s, sqlstate, message, message);
}

void session_set_peer(struct session *s, const struct sockaddr *sa)
{
	memcpy(&s->client_addr, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							  : sizeof(struct sockaddr_in));
	net_format_addr(sa, s->peer, sizeof(s->peer));
	snprintf(s->prefix, sizeof(s->prefix), "C-%llu %s%s%s", (unsigned long long)s->id, s->peer,
		 s->via[0] ? " via " : "", s->via);
}

/*
 * From the startup packet on, the timer holds the authentication deadline:
 * auth_timeout after accept, until the upstream's AuthenticationOk.
 */
void session_arm_auth_deadline(struct session *s)
{
	int64_t left = config_current()->auth_timeout_ms - (int64_t)(elapsed_seconds(s) * 1000.0);

	event_del(s->timer);
	session_arm_timer(s, left > 0 ? left : 0);
}

/*
 * PostgreSQL's own words and code for authentication_timeout (it logs
 * them; walgate also tells the client, which at this point waits for an
 * authentication message and takes an ErrorResponse in its place).
 */
static void auth_timed_out(struct session *s)
{
	char why[160];

	s->w->stats.rejected[REJECT_AUTH_TIMEOUT]++;
	snprintf(why, sizeof(why), "authentication timeout: not logged in within %lld ms (in %s%s)",
		 (long long)config_current()->auth_timeout_ms, state_names[s->state],
		 s->tls_handshaking ? ", TLS handshake" : "");
	slog_warning(s, "%s", why);
	session_fail(s, PG_SQLSTATE_QUERY_CANCELED, "canceling authentication due to timeout", why);
}

static void session_timer(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	switch (s->state) {
	case SESSION_CLOSING:
		if (s->client || s->server || s->client_io || s->server_io)
			slog_debug(s, "closing: peer did not take the last bytes in time");
		session_free(s);
		break;
	case SESSION_PROXY_HEADER:
		session_reject(s, REJECT_PROXY_HEADER, "no PROXY header from a trusted peer in time");
		break;
	case SESSION_STARTUP:
		/* The earlier of the two deadlines ended it; nothing may be sent before the startup packet. */
		if (config_current()->auth_timeout_ms < config_current()->startup_timeout_ms)
			session_reject(s, REJECT_AUTH_TIMEOUT, s->tls_handshaking ?
				       "authentication timeout during the TLS handshake" :
				       "authentication timeout before the startup packet");
		else
			session_reject(s, REJECT_STARTUP_TIMEOUT, "startup timeout");
		break;
	case SESSION_AUTH:
	case SESSION_CONNECTING:
	case SESSION_LOGIN:
		auth_timed_out(s);
		break;
	case SESSION_CANCEL:
		if (!s->cancel_sent)
			s->w->stats.cancels[CANCEL_FAILED]++;
		session_close(s, s->cancel_sent ? "cancel request forwarded; the upstream did not close"
				 : "cancel request: the upstream did not answer in time");
		break;
	default:
		break;
	}
}

struct session *session_new(struct worker *w, int fd, const struct sockaddr *peer,
			    enum session_state state)
{
	const struct config *cfg = config_current();
	struct session *s = calloc(1, sizeof(*s));

	if (!s) {
		close(fd);
		return NULL;
	}
	s->w = w;
	s->id = atomic_fetch_add_explicit(&w->shared->next_session_id, 1, memory_order_relaxed) + 1;
	s->state = state;
	gettimeofday(&s->started, NULL);
	session_set_peer(s, peer);
	s->client = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	s->timer = evtimer_new(w->base, session_timer, s);
	if (!s->client || !s->timer) {
		if (s->client)
			bev_leg_free(s->client);
		else
			close(fd);
		if (s->timer)
			event_free(s->timer);
		free(s);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&w->sessions, s, link);
	w->nsessions++;
	s->open_rank = atomic_fetch_add_explicit(&w->shared->sessions, 1, memory_order_relaxed) + 1;
	w->stats.accepted++;
	net_tune_socket(fd, cfg);
	bufferevent_setwatermark(s->client, EV_READ, 0, (size_t)cfg->relay_buffer_size);
	slog_debug(s, "accepted by worker %u", w->index);
	return s;
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
			session_fail(s, PG_SQLSTATE_CANNOT_CONNECT_NOW, "walgate is shutting down",
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
		session_fail(s, PG_SQLSTATE_ADMIN_SHUTDOWN,
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
		session_fail(s, PG_SQLSTATE_ADMIN_SHUTDOWN, msg, "no longer allowed after reload");
	}
}

void session_free_all(struct worker *w)
{
	struct session *s;

	while ((s = TAILQ_FIRST(&w->sessions)) != NULL) {
		if (!s->close_reason[0])
			snprintf(s->close_reason, sizeof(s->close_reason), "exit");
		session_free(s);
	}
}

void session_snapshot_add(const struct worker *w, struct worker_snapshot *out)
{
	const struct session *s;

	TAILQ_FOREACH(s, &w->sessions, link) {
		if (s->startup.replication_mode != PG_REPLICATION_NONE)
			out->replication++;
		else
			out->regular++;
		out->stats.bytes_client_to_server += s->to_server.bytes;
		out->stats.bytes_server_to_client += s->to_client.bytes;
	}
}

/*
 * session_relay.c - a session with both legs open: both taken over from
 * their bufferevents (relay/relay_io.h), the upstream's login messages
 * until AuthenticationOk (LOGIN, session_login.c), then (RELAY) both
 * directions streaming
 * through relay.c; the hooks on relayed messages (the backend's key for
 * cancels, replication tracking, the client's Terminate); how a leg's end
 * ends the session.
 */
#include "session/session_relay.h"

#include "session/session.h"
#include "session/session_int.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "protocol/pg_message.h"
#include "protocol/pg_wire.h"
#include "relay/relay.h"
#include "relay/relay_io.h"
#include "repl/repl_track.h"
#include "session/session_login.h"
#include "session/session_secrets.h"
#include "session/session_takeover.h"
#include "worker/worker.h"

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

static void forward_to_server(struct session *s);

/* Read the upstream's login messages and answer them, until AuthenticationOk. */
static bool login_progress(struct session *s)
{
	enum login_step step;

	relay_read(&s->to_client, s->server_io, s->client_io);
	step = session_login_feed(s);
	if (s->state != SESSION_LOGIN)
		return false;
	relay_io_flush(s->client_io);
	relay_settle(&s->to_client, s->server_io, s->client_io);
	if (step != LOGIN_DONE)
		return false;
	session_set_state(s, SESSION_RELAY);
	log_login(s);
	event_del(s->timer);	/* logged in: no idle timeout, replication connections idle for long */
	if (s->client_held) {
		s->client_held = false;
		/* auth = scram held the client back; what it sent meanwhile goes now */
		relay_io_set_reading(s->client_io, true);
		forward_to_server(s);
	}
	return s->state == SESSION_RELAY;
}

static void forward_to_client(struct session *s)
{
	if (s->state == SESSION_LOGIN && !login_progress(s))
		return;
	if (relay_forward(&s->to_client, s->server_io, s->client_io) < 0) {
		s->w->stats.protocol_errors[PROTO_ERR_UPSTREAM]++;
		slog_error(s, "upstream protocol violation: %s", pg_scan_error_str(s->to_client.scan.error));
		session_close(s, "upstream protocol violation");
	}
}

static void client_ended(struct session *s)
{
	if (s->close_reason[0])		/* the client said Terminate */
		session_close(s, s->close_reason);
	else
		session_close(s, s->client_io->failed ? "client connection error" : "client closed");
}

static void forward_to_server(struct session *s)
{
	uint64_t before = s->client_io->bytes_read;
	int r = relay_forward(&s->to_server, s->client_io, s->server_io);

	s->client_bytes_seen += s->client_io->bytes_read - before;
	if (r < 0) {
		const char *why = pg_scan_error_str(s->to_server.scan.error);
		char msg[160];

		snprintf(msg, sizeof(msg), "invalid message from client: %s", why);
		session_protocol_violation(s, PG_SQLSTATE_PROTOCOL_VIOLATION, msg);
		return;
	}
	/*
	 * The client said Terminate (client_message): the upstream gets it and
	 * the end of its connection now, without waiting for the client to
	 * close its socket. The server says nothing after a Terminate. What
	 * the client sent before its socket ended has gone on too.
	 */
	if (s->close_reason[0] || relay_io_ended(s->client_io))
		client_ended(s);
}

/* ---- the legs' events -------------------------------------------------- */

/* The upstream's socket ended; what it sent before has gone on. */
static void server_ended(struct session *s)
{
	bool failed = s->server_io->failed;

	/* An upstream that said FATAL before closing has told the client already. */
	if (s->to_client.last_type != PG_MSG_ERROR_RESPONSE)
		session_tell_client(s, "FATAL", PG_SQLSTATE_CONNECTION_FAILURE,
			    "walgate: the upstream server closed the connection");
	session_close(s, failed ? "upstream connection error" : "upstream closed");
}

/*
 * CLOSING after a takeover: the upstream leg is read only to see the
 * server close it (its walsender has let the slot go); what it still
 * sends is dropped.
 */
static void awaited_close(struct session *s)
{
	relay_io_read(s->server_io, 64 * 1024);
	evbuffer_drain(s->server_io->in, evbuffer_get_length(s->server_io->in));
	if (relay_io_ended(s->server_io)) {
		session_drop_server(s);
		session_closing_progress(s);
	}
}

/*
 * What both legs' events share: in CLOSING, a leg's queue drained or its
 * socket failed; otherwise, bytes written towards a leg may let the other
 * be read again (feeding: the direction that fills this leg's queue).
 * Returns true when the event is handled.
 */
static bool leg_event(struct session *s, struct relay_io **leg, struct relay_dir *feeding,
		      struct relay_io *other, enum relay_io_event ev)
{
	if (s->state == SESSION_CLOSING) {
		if (ev == RELAY_IO_FAILED && leg == &s->server_io) {
			session_drop_server(s);	/* gone: what was queued for it cannot be sent */
		} else if (ev == RELAY_IO_FAILED) {
			relay_io_free(*leg);
			*leg = NULL;
		} else if (ev == RELAY_IO_READABLE && leg == &s->server_io) {
			awaited_close(s);
			return true;
		}
		session_closing_progress(s);
		return true;
	}
	if (ev != RELAY_IO_WRITTEN)
		return false;
	relay_sink_drained(feeding, other, *leg);
	return true;
}

static void server_io_event(struct relay_io *io, enum relay_io_event ev, void *arg)
{
	struct session *s = arg;

	if (leg_event(s, &s->server_io, &s->to_server, s->client_io, ev))
		return;
	if (ev == RELAY_IO_READABLE)
		forward_to_client(s);
	if (session_legs_open(s) && relay_io_ended(io))
		server_ended(s);
}

static void client_io_event(struct relay_io *io, enum relay_io_event ev, void *arg)
{
	struct session *s = arg;

	(void)io;
	if (leg_event(s, &s->client_io, &s->to_client, s->server_io, ev))
		return;
	if (ev == RELAY_IO_READABLE)
		forward_to_server(s);
	else
		client_ended(s);	/* RELAY_IO_FAILED */
}

/* Both legs become walgate's own; on failure the session closes. */
static bool take_legs(struct session *s)
{
	s->client_io = relay_io_take(s->client, client_io_event, s);
	if (s->client_io)
		s->client = NULL;
	s->server_io = relay_io_take(s->server, server_io_event, s);
	if (s->server_io)
		s->server = NULL;
	if (s->client_io && s->server_io)
		return true;
	session_close(s, "out of memory");
	return false;
}

void session_start_relay(struct session *s)
{
	const struct config *cfg = config_current();
	const struct pg_startup *st = &s->startup;

	session_set_state(s, SESSION_LOGIN);
	if (!take_legs(s))
		return;
	if (st->replication_mode != PG_REPLICATION_NONE)
		s->repl = repl_track_new(&s->w->slots, s->w->stats.protocol_errors, s->prefix,
					 st->replication_mode == PG_REPLICATION_LOGICAL ?
					 (st->database ? st->database : st->user) : NULL);
	relay_dir_init(&s->to_server, (uint32_t)cfg->max_message_size,
		       (size_t)cfg->relay_buffer_size, client_message, s);
	if (s->repl)
		session_takeover_attach(s, forward_to_server);	/* a START may be held back */
	/* The upstream is trusted to frame its own messages; any length up to the protocol's. */
	relay_dir_init(&s->to_client, UINT32_MAX, (size_t)cfg->relay_buffer_size, server_message, s);
	if (s->auth && s->auth->startup)	/* another user upstream: session_cred.c */
		relay_io_write(s->server_io, s->auth->startup, s->auth->startup_len);
	else
		relay_io_write(s->server_io, s->startup_pkt, st->length);
	relay_io_set_reading(s->server_io, true);
	if (s->auth) {
		s->client_held = true;	/* walgate logs in itself: the client waits */
		return;
	}
	relay_io_set_reading(s->client_io, true);
	/* Bytes the client sent right after its startup packet wait in the input. */
	forward_to_server(s);
}

/*
 * session_login.c - the upstream's messages of the login exchange, whole
 * and one by one, until AuthenticationOk (or the error that ends it).
 *
 * walgate relays the exchange but may have to adjust what the client sees:
 *  - a plaintext client behind a TLS upstream leg must not be offered
 *    SCRAM-SHA-256-PLUS, which libpq refuses without TLS of its own;
 *  - a channel-binding failure, which TLS on both legs causes for clients
 *    that bind (libpq's default), gets a hint naming the fix.
 * Under auth = scram walgate has authenticated the client itself and now
 * logs in upstream on its behalf: each message goes to
 * session_upstream_login.c instead.
 *
 * After AuthenticationOk the session streams (relay.c) as usual.
 */
#include "session/session_login.h"

#include "session/session.h"
#include "session/session_int.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#include "protocol/pg_auth.h"
#include "protocol/pg_message.h"
#include "protocol/pg_wire.h"
#include "relay/relay_io.h"
#include "session/session_secrets.h"
#include "worker/worker.h"
#include "session/session_upstream_login.h"

/* Login messages are small; anything larger is not a PostgreSQL server talking. */
#define LOGIN_MSG_MAX 65536

#define BINDING_HINT "walgate terminates TLS and relays authentication, so the client's " \
	"channel binding cannot match the server's certificate: connect with channel_binding=disable"

/* msg (consumed bytes of the upstream's input) rewritten as out[0..len). */
static void send_to_client(struct session *s, const uint8_t *out, size_t len, size_t consumed)
{
	session_login_to_client(s, out, len);
	evbuffer_drain(s->server_io->in, consumed);
}

/* An ErrorResponse about channel binding, with the hint added. */
static bool add_binding_hint(struct session *s, const uint8_t *msg, size_t len)
{
	struct pg_error_fields f;
	uint8_t out[4096];
	size_t n;

	if (!s->client_tls || !s->server_tls ||
	    pg_parse_error(msg + PG_MSG_HEADER_LEN, len - PG_MSG_HEADER_LEN, &f) < 0 ||
	    !f.message || !strstr(f.message, "channel binding") || f.hint)
		return false;
	f.hint = BINDING_HINT;
	n = pg_build_error(out, sizeof(out), &f);
	if (n == 0)
		return false;
	slog_warning(s, "upstream refused channel binding: %s", f.message);
	send_to_client(s, out, n, len);
	return true;
}

static bool drop_plus_mechanism(struct session *s, const uint8_t *msg, size_t len)
{
	uint8_t out[1024];
	size_t n;

	if (s->client_tls || len > sizeof(out))
		return false;
	n = pg_auth_sasl_without(msg, len, "SCRAM-SHA-256-PLUS", out, sizeof(out));
	if (n == 0 || n == len)
		return false;
	send_to_client(s, out, n, len);
	return true;
}

/* auth = passthrough: the login exchange goes to the client, adjusted where it must be. */
static void forward_message(struct session *s, const uint8_t *msg, size_t len)
{
	bool rewritten = false;

	uint8_t type = msg[0];

	if (msg[0] == PG_MSG_AUTHENTICATION && pg_auth_code(msg, len) == PG_AUTH_SASL)
		rewritten = drop_plus_mechanism(s, msg, len);
	else if (msg[0] == PG_MSG_ERROR_RESPONSE)
		rewritten = add_binding_hint(s, msg, len);
	if (!rewritten) {
		evbuffer_remove_buffer(s->server_io->in, s->client_io->out, len);
		s->to_client.bytes += len;
	}
	s->to_client.last_type = type;
}

static void login_succeeded(struct session *s)
{
	if (!s->auth)
		return;
	slog_debug(s, "logged in upstream");
	session_auth_free(s->auth);	/* no credentials kept beyond the login */
	s->auth = NULL;
}

enum login_step session_login_feed(struct session *s)
{
	struct evbuffer *in = s->server_io->in;

	for (;;) {
		size_t avail = evbuffer_get_length(in);
		uint8_t hdr[PG_MSG_HEADER_LEN];
		const uint8_t *msg;
		uint32_t len;

		if (avail < PG_MSG_HEADER_LEN)
			return LOGIN_MORE;
		evbuffer_copyout(in, hdr, sizeof(hdr));
		len = pg_get_u32(hdr + 1);
		if (len < 4 || len >= LOGIN_MSG_MAX) {
			s->w->stats.protocol_errors[PROTO_ERR_UPSTREAM]++;
			session_fail(s, PG_SQLSTATE_CONNECTION_FAILURE,
				     "walgate: invalid message from the upstream during login",
				     "upstream protocol violation");
			return LOGIN_CLOSED;
		}
		if (avail < (size_t)len + 1)
			return LOGIN_MORE;
		msg = evbuffer_pullup(in, (ssize_t)len + 1);
		if (s->auth) {
			enum login_step step = session_upstream_login_take(s, msg, (size_t)len + 1);

			if (step == LOGIN_DONE)
				login_succeeded(s);
			if (step != LOGIN_MORE)
				return step;
			continue;
		}
		if (hdr[0] == PG_MSG_AUTHENTICATION && pg_auth_code(msg, len + 1) == PG_AUTH_OK) {
			forward_message(s, msg, (size_t)len + 1);
			login_succeeded(s);
			return LOGIN_DONE;
		}
		forward_message(s, msg, (size_t)len + 1);
		if (s->state != SESSION_LOGIN)
			return LOGIN_CLOSED;
	}
}

/*
 * session_client_login.c - walgate authenticating a client itself (auth = scram).
 *
 * Relaying SCRAM across two TLS legs cannot work for clients that use
 * channel binding: they bind to walgate's certificate, the server to its
 * own, and the proof covers every byte. So walgate runs the exchange
 * with the client (SCRAM-SHA-256, and -PLUS bound to its own certificate)
 * and then logs in upstream itself (session_login.c).
 *
 * An unknown user goes through the same exchange against a made-up
 * verifier and gets the same error as a wrong password.
 */
#include "session/session_client_login.h"

#include "session/session.h"
#include "session/session_secrets.h"
#include "session/session_int.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/authfile.h"
#include "access/kdf.h"
#include "protocol/pg_auth.h"
#include "protocol/pg_message.h"
#include "protocol/pg_wire.h"
#include "tls/tls_binding.h"
#include "worker/worker.h"
#include "session/session_cred.h"
#include "session/session_upstream.h"

/* The client's SASL messages are small; PostgreSQL's own limit is similar. */
#define AUTH_MSG_MAX (SCRAM_MSG_MAX + 256)

static void auth_failed(struct session *s, const char *why)
{
	char msg[200];

	snprintf(msg, sizeof(msg), "password authentication failed for user \"%s\"", s->startup.user);
	slog_info(s, "authentication failed: %s", why);
	session_fail(s, PG_SQLSTATE_INVALID_PASSWORD, msg, "authentication failed");
}

static void auth_protocol_error(struct session *s, const char *why)
{
	char msg[200];

	snprintf(msg, sizeof(msg), "invalid SASL exchange: %s", why);
	session_protocol_violation(s, PG_SQLSTATE_PROTOCOL_VIOLATION, msg);
}

/* tls-server-end-point of walgate's own certificate on this session. */
static bool own_binding(struct session *s, uint8_t *out, size_t *len)
{
	SSL *ssl = s->client_tls ? bufferevent_openssl_get_ssl(s->client) : NULL;
	X509 *cert = ssl ? SSL_get_certificate(ssl) : NULL;

	*len = SCRAM_CBIND_MAX;
	return cert && tls_server_end_point(cert, out, len) == 0;
}

void session_client_login_begin(struct session *s)
{
	const struct auth_user *u = auth_users_find(s->w->auth_users, s->startup.user);
	const char *plus[] = { SCRAM_MECH_NAME_PLUS, SCRAM_MECH_NAME, NULL };
	const char *plain[] = { SCRAM_MECH_NAME, NULL };
	uint8_t cbind[SCRAM_CBIND_MAX], msg[128];
	size_t cbind_len, n;
	struct session_auth *a = calloc(1, sizeof(*a));

	if (!a) {
		session_close(s, "out of memory");
		return;
	}
	s->auth = a;
	if (u) {
		a->known = true;
		a->verifier = u->verifier;
		if (u->password && !(a->password = strdup(u->password))) {
			session_close(s, "out of memory");
			return;
		}
	} else {
		scram_mock_verifier(s->startup.user, s->w->shared->mock_secret,
				    sizeof(s->w->shared->mock_secret), s->w->auth_users->mock_iterations,
				    &a->verifier);
	}
	a->offered_plus = own_binding(s, cbind, &cbind_len);
	n = pg_auth_build_sasl(msg, sizeof(msg), a->offered_plus ? plus : plain);
	bufferevent_write(s->client, msg, n);
	session_set_state(s, SESSION_AUTH);
}

static void take_first(struct session *s, const uint8_t *msg, size_t len)
{
	struct session_auth *a = s->auth;
	const char *mech, *data;
	size_t data_len, cbind_len = 0, n;
	uint8_t cbind[SCRAM_CBIND_MAX], out[SCRAM_MSG_MAX + 16];
	char nonce[SCRAM_NONCE_LEN + 1], reply[SCRAM_MSG_MAX];
	bool plus;
	enum scram_result r;

	if (pg_auth_parse_sasl_initial(msg, len, &mech, &data, &data_len) < 0) {
		auth_protocol_error(s, "malformed SASLInitialResponse");
		return;
	}
	plus = !strcmp(mech, SCRAM_MECH_NAME_PLUS);
	if ((!plus && strcmp(mech, SCRAM_MECH_NAME)) || (plus && !a->offered_plus)) {
		auth_protocol_error(s, "client selected an invalid SASL authentication mechanism");
		return;
	}
	if (plus)
		own_binding(s, cbind, &cbind_len);
	if (scram_server_init(&a->x.server, &a->verifier, plus, cbind, cbind_len) != SCRAM_OK ||
	    scram_make_nonce(nonce) != SCRAM_OK) {
		session_close(s, "SCRAM initialisation failed");
		return;
	}
	r = scram_server_first(&a->x.server, data, data_len, nonce, reply, sizeof(reply), &n);
	if (r == SCRAM_OK && a->offered_plus && scram_server_cbind_flag(&a->x.server) == 'y')
		r = SCRAM_ERR_CBIND_NEGOTIATION;	/* "could bind, but you did not offer": a downgrade */
	if (r != SCRAM_OK) {
		auth_protocol_error(s, scram_result_str(r));
		return;
	}
	n = pg_auth_build_sasl_data(out, sizeof(out), PG_AUTH_SASL_CONTINUE, reply, n);
	bufferevent_write(s->client, out, n);
}

static void take_final(struct session *s, const uint8_t *msg, size_t len)
{
	struct session_auth *a = s->auth;
	const char *data;
	size_t data_len, n;
	uint8_t out[SCRAM_MSG_MAX + 16];
	char reply[SCRAM_MSG_MAX];
	enum scram_result r;

	if (pg_auth_parse_sasl_response(msg, len, &data, &data_len) < 0) {
		auth_protocol_error(s, "malformed SASLResponse");
		return;
	}
	r = scram_server_final(&a->x.server, data, data_len, reply, sizeof(reply), &n);
	if (r == SCRAM_ERR_PROOF || (r == SCRAM_OK && !a->known)) {
		auth_failed(s, a->known ? "wrong password" : "no such user in the auth file");
		return;
	}
	if (r != SCRAM_OK) {
		auth_protocol_error(s, scram_result_str(r));
		return;
	}
	memcpy(a->client_key, scram_server_client_key(&a->x.server), SCRAM_KEY_LEN);
	a->have_client_key = true;
	scram_server_clear(&a->x.server);
	n = pg_auth_build_sasl_data(out, sizeof(out), PG_AUTH_SASL_FINAL, reply, n);
	bufferevent_write(s->client, out, n);
	slog_debug(s, "client authenticated (SCRAM)");
	if (!session_cred_prepare(s))
		return;
	bufferevent_disable(s->client, EV_READ);	/* until the upstream said AuthenticationOk */
	session_set_state(s, SESSION_CONNECTING);
	session_connect_upstream(s);
}

void session_client_login_read(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->client);

	while (s->state == SESSION_AUTH) {
		size_t avail = evbuffer_get_length(in);
		uint8_t hdr[PG_MSG_HEADER_LEN];
		uint32_t len;
		const uint8_t *msg;

		if (avail < PG_MSG_HEADER_LEN)
			return;
		evbuffer_copyout(in, hdr, sizeof(hdr));
		len = pg_get_u32(hdr + 1);
		if (hdr[0] != 'p' || len < 4 || len > AUTH_MSG_MAX) {
			auth_protocol_error(s, hdr[0] != 'p' ? "expected a SASL response" : "invalid length");
			return;
		}
		if (avail < (size_t)len + 1)
			return;
		msg = evbuffer_pullup(in, (ssize_t)len + 1);
		if (s->auth->step++ == 0)
			take_first(s, msg, (size_t)len + 1);
		else
			take_final(s, msg, (size_t)len + 1);
		evbuffer_drain(in, (size_t)len + 1);
	}
}

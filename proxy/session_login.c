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
 * answers the upstream's requests (trust, cleartext, md5, SCRAM-SHA-256
 * and -PLUS bound to the upstream's certificate) with the password from
 * the auth file or the ClientKey the client proved. Only the upstream's
 * AuthenticationOk reaches the client.
 *
 * After AuthenticationOk the session streams (relay.c) as usual.
 */
#include "session.h"
#include "session_int.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdio.h>
#include <string.h>

#include "pg_auth.h"
#include "session_auth.h"
#include "tls_binding.h"

#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include "pg_message.h"
#include "pg_wire.h"
#include "worker.h"

/* Login messages are small; anything larger is not a PostgreSQL server talking. */
#define LOGIN_MSG_MAX 65536

#define BINDING_HINT "walgate terminates TLS and relays authentication, so the client's " \
	"channel binding cannot match the server's certificate: connect with channel_binding=disable"

static void send_to_client(struct session *s, const uint8_t *msg, size_t len, size_t consumed)
{
	bufferevent_write(s->client, msg, len);
	evbuffer_drain(bufferevent_get_input(s->server), consumed);
	s->to_client.bytes += len;
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

static void login_failed(struct session *s, const char *why)
{
	char msg[400];

	snprintf(msg, sizeof(msg), "walgate could not log in to the upstream as user \"%s\": %s",
		 s->startup.user, why);
	slog_warning(s, "%s", msg);
	session_fail(s, PG_SQLSTATE_INVALID_AUTHORIZATION, msg, "upstream login failed");
}

static void send_to_server(struct session *s, const uint8_t *msg, size_t len)
{
	bufferevent_write(s->server, msg, len);
}

/* PostgreSQL's md5 scheme: "md5" || md5hex(md5hex(password || user) || salt). */
static bool md5_answer(const char *password, const char *user, const uint8_t salt[4], char out[36])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t digest[16], inner[32 + 4];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n;
	bool ok = ctx != NULL;

	ok = ok && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) &&
	     EVP_DigestUpdate(ctx, password, strlen(password)) &&
	     EVP_DigestUpdate(ctx, user, strlen(user)) && EVP_DigestFinal_ex(ctx, digest, &n);
	for (int i = 0; ok && i < 16; i++) {
		inner[2 * i] = (uint8_t)hex[digest[i] >> 4];
		inner[2 * i + 1] = (uint8_t)hex[digest[i] & 15];
	}
	memcpy(inner + 32, salt, 4);
	ok = ok && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) &&
	     EVP_DigestUpdate(ctx, inner, sizeof(inner)) && EVP_DigestFinal_ex(ctx, digest, &n);
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return false;	/* MD5 disabled (FIPS) */
	memcpy(out, "md5", 3);
	for (int i = 0; i < 16; i++) {
		out[3 + 2 * i] = hex[digest[i] >> 4];
		out[4 + 2 * i] = hex[digest[i] & 15];
	}
	out[35] = '\0';
	return true;
}

static bool answer_password(struct session *s, int code, const uint8_t *msg, size_t len)
{
	const char *pw = s->auth->password;
	uint8_t out[1100];
	char md5[36];
	size_t n;

	if (!pw) {
		login_failed(s, "the upstream asks for a password, and the auth file holds only a verifier");
		return false;
	}
	if (code == PG_AUTH_MD5_PASSWORD) {
		if (len < PG_MSG_HEADER_LEN + 8 || !md5_answer(pw, s->startup.user, msg + 9, md5)) {
			login_failed(s, "cannot answer the md5 request");
			return false;
		}
		pw = md5;
	}
	n = pg_auth_build_password(out, sizeof(out), pw, strlen(pw), true);
	if (n == 0) {
		login_failed(s, "password too long");
		return false;
	}
	send_to_server(s, out, n);
	return true;
}

/* tls-server-end-point of the upstream's certificate, for SCRAM-SHA-256-PLUS. */
static bool upstream_binding(struct session *s, uint8_t *out, size_t *len)
{
	SSL *ssl = s->server_tls ? bufferevent_openssl_get_ssl(s->server) : NULL;
	X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;

	*len = SCRAM_CBIND_MAX;
	return cert && tls_server_end_point(cert, out, len) == 0;
}

static bool offers(const uint8_t *msg, size_t len, const char *mech)
{
	uint8_t scratch[1024];

	/* the list without mech is shorter exactly when mech was in it */
	return len <= sizeof(scratch) && pg_auth_sasl_without(msg, len, mech, scratch, sizeof(scratch)) != len;
}

static bool answer_sasl(struct session *s, const uint8_t *msg, size_t len)
{
	struct session_auth *a = s->auth;
	uint8_t cbind[SCRAM_CBIND_MAX], out[SCRAM_MSG_MAX + 64];
	size_t cbind_len = 0, n;
	char nonce[SCRAM_NONCE_LEN + 1], first[SCRAM_MSG_MAX];
	char flag = s->server_tls ? 'y' : 'n';
	bool plus = offers(msg, len, SCRAM_MECH_NAME_PLUS) && upstream_binding(s, cbind, &cbind_len);

	if (!plus && !offers(msg, len, SCRAM_MECH_NAME)) {
		login_failed(s, "the upstream offers no SASL mechanism walgate supports");
		return false;
	}
	if (plus)
		flag = 'p';
	if (a->password)
		scram_client_init(&a->x.client, NULL, a->password);
	else
		scram_client_init_key(&a->x.client, NULL, a->client_key, &a->verifier);
	if (scram_make_nonce(nonce) != SCRAM_OK ||
	    scram_client_first(&a->x.client, flag, plus ? cbind : NULL, plus ? cbind_len : 0, nonce,
			       first, sizeof(first), &n) != SCRAM_OK) {
		login_failed(s, "cannot start SCRAM");
		return false;
	}
	n = pg_auth_build_sasl_initial(out, sizeof(out), plus ? SCRAM_MECH_NAME_PLUS : SCRAM_MECH_NAME,
				       first, n);
	send_to_server(s, out, n);
	return true;
}

static bool answer_sasl_step(struct session *s, int code, const uint8_t *msg, size_t len)
{
	struct scram_client *c = &s->auth->x.client;
	const char *data;
	char reply[SCRAM_MSG_MAX];
	uint8_t out[SCRAM_MSG_MAX + 16];
	size_t data_len, n;
	enum scram_result r;

	if (pg_auth_parse_sasl_data(msg, len, &data, &data_len) < 0) {
		login_failed(s, "malformed SASL message from the upstream");
		return false;
	}
	if (code == PG_AUTH_SASL_CONTINUE) {
		r = scram_client_final(c, data, data_len, reply, sizeof(reply), &n);
		if (r == SCRAM_OK) {
			n = pg_auth_build_password(out, sizeof(out), reply, n, false);
			send_to_server(s, out, n);
			return true;
		}
	} else {
		r = scram_client_verify(c, data, data_len);
		if (r == SCRAM_OK || r == SCRAM_UNVERIFIED)
			return true;
	}
	login_failed(s, r == SCRAM_ERR_SERVER_ERROR ? scram_client_error(c) : scram_result_str(r));
	return false;
}

/*
 * auth = scram: the upstream refused walgate's own login (28xxx). Passing
 * its "password authentication failed" on would tell the client its own
 * password is wrong, when it was walgate's credential that failed.
 */
static bool upstream_refused_login(struct session *s, const uint8_t *msg, size_t len)
{
	struct pg_error_fields f;
	char why[300];

	if (pg_parse_error(msg + PG_MSG_HEADER_LEN, len - PG_MSG_HEADER_LEN, &f) < 0 ||
	    !f.sqlstate || strncmp(f.sqlstate, "28", 2))
		return false;
	snprintf(why, sizeof(why), "the upstream said: %s", f.message ? f.message : f.sqlstate);
	evbuffer_drain(bufferevent_get_input(s->server), len);
	login_failed(s, why);
	return true;
}

/* auth = scram: walgate answers the upstream's request itself. */
static void answer_request(struct session *s, const uint8_t *msg, size_t len)
{
	int code = pg_auth_code(msg, len);

	switch (code) {
	case PG_AUTH_CLEARTEXT_PASSWORD:
	case PG_AUTH_MD5_PASSWORD:
		answer_password(s, code, msg, len);
		break;
	case PG_AUTH_SASL:
		answer_sasl(s, msg, len);
		break;
	case PG_AUTH_SASL_CONTINUE:
	case PG_AUTH_SASL_FINAL:
		answer_sasl_step(s, code, msg, len);
		break;
	default:
		login_failed(s, "the upstream asks for an authentication method walgate does not support");
		break;
	}
}

static void forward_message(struct session *s, const uint8_t *msg, size_t len)
{
	bool rewritten = false;

	uint8_t type = msg[0];

	if (s->auth && type == PG_MSG_AUTHENTICATION && pg_auth_code(msg, len) != PG_AUTH_OK) {
		/* Drained first: answering may close the session and free the input. */
		struct evbuffer *in = bufferevent_get_input(s->server);
		uint8_t copy[1024];

		if (len > sizeof(copy)) {
			login_failed(s, "authentication request too long");
			return;
		}
		memcpy(copy, msg, len);
		evbuffer_drain(in, len);
		answer_request(s, copy, len);
		return;
	}
	if (s->auth && type == PG_MSG_ERROR_RESPONSE && upstream_refused_login(s, msg, len))
		return;
	if (msg[0] == PG_MSG_AUTHENTICATION && pg_auth_code(msg, len) == PG_AUTH_SASL)
		rewritten = drop_plus_mechanism(s, msg, len);
	else if (msg[0] == PG_MSG_ERROR_RESPONSE)
		rewritten = add_binding_hint(s, msg, len);
	if (!rewritten) {
		evbuffer_remove_buffer(bufferevent_get_input(s->server),
				       bufferevent_get_output(s->client), len);
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
	struct evbuffer *in = bufferevent_get_input(s->server);

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
		if (hdr[0] == PG_MSG_AUTHENTICATION && pg_auth_code(msg, len + 1) == PG_AUTH_OK) {
			forward_message(s, msg, (size_t)len + 1);
			login_succeeded(s);
			return LOGIN_DONE;
		}
		forward_message(s, msg, (size_t)len + 1);
		if (s->state != SESSION_RELAY)
			return LOGIN_CLOSED;
	}
}

/*
 * session_upstream_login.c - auth = scram: walgate logging in upstream on the
 * client's behalf, with the password from the auth file or the ClientKey
 * the client proved, as carefully as libpq with require_auth and
 * channel_binding:
 *  - [auth] server_auth_methods lists what the upstream may ask for:
 *    cleartext and md5 (the password, or an equivalent of it) are answered
 *    only when listed, and a server that asks for nothing only with "none";
 *  - [tls] server_channel_binding disables, prefers or requires
 *    SCRAM-SHA-256-PLUS bound to the upstream's certificate;
 *  - the login is a strict sequence (enum upstream_login_step):
 *    AuthenticationOk counts only after the server's SCRAM signature was
 *    verified, whenever SCRAM started; anything out of order ends it;
 *  - the salted password is computed off the event loop (kdf.h).
 * Only the upstream's AuthenticationOk, notices and NegotiateProtocolVersion
 * reach the client before the login is done.
 */
#include "session/session_upstream_login.h"

#include "session/session.h"
#include "session/session_int.h"

#include <event2/buffer.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "access/kdf.h"
#include "protocol/pg_auth.h"
#include "protocol/pg_message.h"
#include "protocol/pg_wire.h"
#include "protocol/saslprep.h"
#include "relay/relay_io.h"
#include "session/session_secrets.h"
#include "tls/tls_binding.h"
#include "access/token_response.h"
#include "worker/worker.h"
#include "session/session_cred.h"

#define AUTH_REQUEST_MAX 1024	/* an authentication request from the upstream */

static void login_failed(struct session *s, const char *why)
{
	char msg[400];

	snprintf(msg, sizeof(msg), "walgate could not log in to the upstream as user \"%s\": %s",
		 session_upstream_user(s), why);
	slog_warning(s, "%s", msg);
	session_fail(s, PG_SQLSTATE_INVALID_AUTHORIZATION, msg, "upstream login failed");
}

/* walgate breaks the login off itself: counted by reason. */
static void refuse(struct session *s, enum upstream_auth_refusal kind, const char *why)
{
	s->w->stats.upstream_auth_refused[kind]++;
	login_failed(s, why);
}

static const char *step_name(enum upstream_login_step step)
{
	static const char *const names[] = {
		[UPSTREAM_LOGIN_START] = "start",
		[UPSTREAM_LOGIN_PASSWORD_SENT] = "password sent",
		[UPSTREAM_LOGIN_SASL_FIRST_SENT] = "SASL first sent",
		[UPSTREAM_LOGIN_SALTING] = "salting",
		[UPSTREAM_LOGIN_SASL_FINAL_SENT] = "SASL final sent",
		[UPSTREAM_LOGIN_VERIFIED] = "server verified",
	};

	return names[step];
}

/* The one place the upstream login changes step. */
static void set_step(struct session *s, enum upstream_login_step next)
{
	slog_debug(s, "upstream login: %s -> %s", step_name(s->auth->upstream), step_name(next));
	s->auth->upstream = next;
}

static void send_to_server(struct session *s, const uint8_t *msg, size_t len)
{
	relay_io_write(s->server_io, msg, len);
}

/*
 * May walgate answer a request for method (a SERVER_AUTH_* bit, named
 * name)? Not when channel binding is required, which only SCRAM-PLUS gives,
 * nor when server_auth_methods leaves it out.
 */
static bool method_allowed(struct session *s, int method, const char *name)
{
	const struct config *cfg = config_current();
	char why[200];

	if (cfg->server_channel_binding == SERVER_CBIND_REQUIRE && method != SERVER_AUTH_SCRAM) {
		snprintf(why, sizeof(why), "the upstream asks for %s, and [tls] server_channel_binding "
			 "= require needs SCRAM-SHA-256-PLUS", name);
		refuse(s, UPAUTH_CHANNEL_BINDING, why);
		return false;
	}
	if (!(cfg->server_auth_methods & method)) {
		snprintf(why, sizeof(why), "the upstream asks for %s, which [auth] server_auth_methods "
			 "does not allow", name);
		refuse(s, UPAUTH_METHOD, why);
		return false;
	}
	return true;
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

/* Cleartext or md5, as libpq sends them: the password without SASLprep. */
static void answer_password(struct session *s, int code, const uint8_t *msg, size_t len)
{
	const char *pw = s->auth->password;
	uint8_t out[TOKEN_MAX_LEN + 64];	/* a token is the longest password */
	char md5[36];
	size_t n;

	if (!method_allowed(s, code == PG_AUTH_MD5_PASSWORD ? SERVER_AUTH_MD5 : SERVER_AUTH_PASSWORD,
			    code == PG_AUTH_MD5_PASSWORD ? "md5" : "a cleartext password"))
		return;
	if (!pw) {
		login_failed(s, "the upstream asks for a password, and the auth file holds only a verifier");
		return;
	}
	/*
	 * A token or a file's password is worth more than one database login
	 * (an OAuth token opens Google's APIs): in clear or as md5, only to an
	 * upstream whose certificate walgate verified.
	 */
	if (s->auth->password_source && (!s->server_tls || s->upstream_verify == TLS_VERIFY_NONE)) {
		char why[300];

		snprintf(why, sizeof(why), "the upstream asks for %s, and walgate sends a password from "
			 "%s that way only to an upstream whose certificate it verified "
			 "([tls] server_tls = verify-ca or verify-full)",
			 code == PG_AUTH_MD5_PASSWORD ? "md5" : "a cleartext password",
			 s->auth->password_source);
		refuse(s, UPAUTH_METHOD, why);
		return;
	}
	if (code == PG_AUTH_MD5_PASSWORD) {
		if (len < PG_MSG_HEADER_LEN + 8 || !md5_answer(pw, session_upstream_user(s), msg + 9, md5)) {
			login_failed(s, "cannot answer the md5 request");
			return;
		}
		pw = md5;
	}
	n = pg_auth_build_password(out, sizeof(out), pw, strlen(pw), true);
	OPENSSL_cleanse(md5, sizeof(md5));
	if (n == 0) {
		login_failed(s, "password too long");
		return;
	}
	send_to_server(s, out, n);
	OPENSSL_cleanse(out, n);
	set_step(s, UPSTREAM_LOGIN_PASSWORD_SENT);
}

/* tls-server-end-point of the upstream's certificate, for SCRAM-SHA-256-PLUS. */
static bool upstream_binding(struct session *s, uint8_t *out, size_t *len)
{
	SSL *ssl = s->server_tls ? relay_io_ssl(s->server_io) : NULL;
	X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;

	*len = SCRAM_CBIND_MAX;
	return cert && tls_server_end_point(cert, out, len) == 0;
}

/* The list without mech: its length, len when mech is not in it, 0 when the list is malformed or empty. */
static size_t list_without(const uint8_t *msg, size_t len, const char *mech)
{
	uint8_t scratch[AUTH_REQUEST_MAX];

	return len <= sizeof(scratch) ? pg_auth_sasl_without(msg, len, mech, scratch, sizeof(scratch)) : 0;
}

/* A well-formed list, with a mechanism in it (no mechanism name is empty). */
static bool well_formed(const uint8_t *msg, size_t len)
{
	return list_without(msg, len, "") == len;
}

static bool offers(const uint8_t *msg, size_t len, const char *mech)
{
	/* the list without mech is shorter exactly when mech was in it */
	return list_without(msg, len, mech) != len;
}

/*
 * libpq's choice: -PLUS when TLS is on, the server offers it and binding
 * is not disabled; else the gs2 flag 'y' ("I could bind, you did not
 * offer") under TLS unless disabled, 'n' otherwise. With require, no -PLUS
 * means no login. false once the login is refused.
 */
static bool choose_binding(struct session *s, const uint8_t *msg, size_t len, char *flag,
			   uint8_t *cbind, size_t *cbind_len)
{
	int mode = config_current()->server_channel_binding;
	bool offered = offers(msg, len, SCRAM_MECH_NAME_PLUS);

	if (mode != SERVER_CBIND_DISABLE && offered && upstream_binding(s, cbind, cbind_len)) {
		*flag = 'p';
		return true;
	}
	if (mode == SERVER_CBIND_REQUIRE) {
		refuse(s, UPAUTH_CHANNEL_BINDING, !s->server_tls ?
		       "[tls] server_channel_binding = require, and the upstream leg is not TLS" :
		       offered ? "[tls] server_channel_binding = require, and the upstream's certificate "
				 "gives no channel-binding data" :
		       "[tls] server_channel_binding = require, and the upstream does not offer "
		       "SCRAM-SHA-256-PLUS");
		return false;
	}
	*cbind_len = 0;
	*flag = s->server_tls && mode != SERVER_CBIND_DISABLE && !offered ? 'y' : 'n';
	if (!offers(msg, len, SCRAM_MECH_NAME)) {
		refuse(s, UPAUTH_METHOD, "the upstream offers no SASL mechanism walgate supports");
		return false;
	}
	return true;
}

static void answer_sasl(struct session *s, const uint8_t *msg, size_t len)
{
	struct session_auth *a = s->auth;
	uint8_t cbind[SCRAM_CBIND_MAX], out[SCRAM_MSG_MAX + 64];
	size_t cbind_len = 0, n;
	char nonce[SCRAM_NONCE_LEN + 1], first[SCRAM_MSG_MAX], flag;

	if (!well_formed(msg, len)) {
		refuse(s, UPAUTH_SCRAM, "the upstream's list of SASL mechanisms is malformed");
		return;
	}
	if (!method_allowed(s, SERVER_AUTH_SCRAM, "SCRAM-SHA-256") ||
	    !choose_binding(s, msg, len, &flag, cbind, &cbind_len))
		return;
	if (a->password)
		scram_client_init(&a->x.client, NULL, NULL);	/* salted off the loop: kdf.h */
	else
		scram_client_init_key(&a->x.client, NULL, a->client_key, &a->verifier);
	if (scram_make_nonce(nonce) != SCRAM_OK ||
	    scram_client_first(&a->x.client, flag, flag == 'p' ? cbind : NULL, cbind_len, nonce,
			       first, sizeof(first), &n) != SCRAM_OK) {
		login_failed(s, "cannot start SCRAM");
		return;
	}
	slog_debug(s, "upstream login: mechanism %s, gs2 flag %c",
		   flag == 'p' ? SCRAM_MECH_NAME_PLUS : SCRAM_MECH_NAME, flag);
	n = pg_auth_build_sasl_initial(out, sizeof(out),
				       flag == 'p' ? SCRAM_MECH_NAME_PLUS : SCRAM_MECH_NAME, first, n);
	send_to_server(s, out, n);
	set_step(s, UPSTREAM_LOGIN_SASL_FIRST_SENT);
}

static void scram_refused(struct session *s, enum scram_result r)
{
	refuse(s, UPAUTH_SCRAM, r == SCRAM_ERR_SERVER_ERROR ? scram_client_error(&s->auth->x.client)
							    : scram_result_str(r));
}

static void send_final(struct session *s)
{
	char reply[SCRAM_MSG_MAX];
	uint8_t out[SCRAM_MSG_MAX + 16];
	size_t n;
	enum scram_result r = scram_client_final_message(&s->auth->x.client, reply, sizeof(reply), &n);

	if (r != SCRAM_OK) {
		scram_refused(s, r);
		return;
	}
	n = pg_auth_build_password(out, sizeof(out), reply, n, false);
	send_to_server(s, out, n);
	set_step(s, UPSTREAM_LOGIN_SASL_FINAL_SENT);
}

/* kdf.h: the salted password is here, on the worker's thread. */
static void salted_ready(void *arg, bool ok, const uint8_t salted[SCRAM_KEY_LEN])
{
	struct session *s = arg;
	enum scram_result r;

	s->auth->kdf = NULL;
	if (s->state != SESSION_LOGIN)
		return;		/* closing meanwhile (the upstream went away): nothing to send */
	if (!ok) {
		login_failed(s, "cannot compute the salted password");
		return;
	}
	r = scram_client_set_salted(&s->auth->x.client, salted);
	if (r != SCRAM_OK) {
		scram_refused(s, r);
		return;
	}
	send_final(s);
}

static void start_salting(struct session *s)
{
	struct session_auth *a = s->auth;
	struct scram_client *c = &a->x.client;
	char prepared[TOKEN_MAX_LEN * 2];
	bool busy;

	if (saslprep_password(a->password, prepared, sizeof(prepared)) == SASLPREP_TOO_LONG) {
		login_failed(s, "password too long");
		return;
	}
	a->kdf = kdf_start(s->w->base, &s->w->kdf_jobs, prepared, c->salt, c->salt_len,
			   c->iterations, salted_ready, s, &busy);
	OPENSSL_cleanse(prepared, sizeof(prepared));
	if (busy) {
		slog_warning(s, "upstream login: %d salted-password computations already run on this "
			     "worker (the upstream asks for %d iterations)", KDF_MAX_JOBS_PER_WORKER,
			     c->iterations);
		session_fail(s, PG_SQLSTATE_TOO_MANY_CONNECTIONS,
			     "too many logins upstream under way; try again", "kdf busy");
		return;
	}
	if (!a->kdf) {
		login_failed(s, "cannot start computing the salted password");
		return;
	}
	set_step(s, UPSTREAM_LOGIN_SALTING);
}

static void take_sasl_data(struct session *s, int code, const uint8_t *msg, size_t len)
{
	struct scram_client *c = &s->auth->x.client;
	const char *data;
	size_t data_len;
	enum scram_result r;

	if (pg_auth_parse_sasl_data(msg, len, &data, &data_len) < 0) {
		refuse(s, UPAUTH_SCRAM, "malformed SASL message from the upstream");
		return;
	}
	if (code == PG_AUTH_SASL_CONTINUE) {
		r = scram_client_take_first(c, data, data_len);
		if (r != SCRAM_OK)
			scram_refused(s, r);
		else if (scram_client_needs_salted(c))
			start_salting(s);
		else
			send_final(s);
		return;
	}
	/* only SCRAM_OK: a signature walgate cannot check (SCRAM_UNVERIFIED) is not proof */
	r = scram_client_verify(c, data, data_len);
	if (r != SCRAM_OK)
		scram_refused(s, r);
	else
		set_step(s, UPSTREAM_LOGIN_VERIFIED);
}

/* Each request is answered only at the one step where it may come. */
static bool in_sequence(struct session *s, int code)
{
	enum upstream_login_step at = s->auth->upstream;
	bool ok;

	switch (code) {
	case PG_AUTH_CLEARTEXT_PASSWORD:
	case PG_AUTH_MD5_PASSWORD:
	case PG_AUTH_SASL:
		ok = at == UPSTREAM_LOGIN_START;
		break;
	case PG_AUTH_SASL_CONTINUE:
		ok = at == UPSTREAM_LOGIN_SASL_FIRST_SENT;
		break;
	case PG_AUTH_SASL_FINAL:
		ok = at == UPSTREAM_LOGIN_SASL_FINAL_SENT;
		break;
	default:
		return true;	/* unsupported: refused as such below */
	}
	if (!ok)
		refuse(s, UPAUTH_SEQUENCE, "authentication request out of sequence");
	return ok;
}

static void answer_request(struct session *s, const uint8_t *msg, size_t len)
{
	int code = pg_auth_code(msg, len);

	if (!in_sequence(s, code))
		return;
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
		take_sasl_data(s, code, msg, len);
		break;
	default:
		refuse(s, UPAUTH_METHOD, "the upstream asks for an authentication method walgate "
		       "does not support");
		break;
	}
}

/* AuthenticationOk: after a verified SCRAM exchange, a password sent, or none asked for. */
static bool ok_acceptable(struct session *s)
{
	switch (s->auth->upstream) {
	case UPSTREAM_LOGIN_VERIFIED:
	case UPSTREAM_LOGIN_PASSWORD_SENT:
		return true;
	case UPSTREAM_LOGIN_START:
		return method_allowed(s, SERVER_AUTH_NONE, "no authentication (trust)");
	default:
		refuse(s, UPAUTH_SEQUENCE, "the upstream said AuthenticationOk before its SCRAM "
		       "signature was verified");
		return false;
	}
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
	evbuffer_drain(s->server_io->in, len);
	login_failed(s, why);
	return true;
}

enum login_step session_upstream_login_take(struct session *s, const uint8_t *msg, size_t len)
{
	uint8_t copy[AUTH_REQUEST_MAX];
	bool ok = msg[0] == PG_MSG_AUTHENTICATION && pg_auth_code(msg, len) == PG_AUTH_OK;

	if (msg[0] == PG_MSG_AUTHENTICATION) {
		/* drained first: answering may close the session */
		if (len > sizeof(copy)) {
			evbuffer_drain(s->server_io->in, len);
			refuse(s, UPAUTH_SCRAM, "authentication request too long");
			return LOGIN_CLOSED;
		}
		memcpy(copy, msg, len);
		evbuffer_drain(s->server_io->in, len);
		if (ok && ok_acceptable(s)) {
			session_login_to_client(s, copy, len);
			return LOGIN_DONE;
		}
		if (!ok)
			answer_request(s, copy, len);
	} else if (msg[0] == PG_MSG_ERROR_RESPONSE && upstream_refused_login(s, msg, len)) {
		return LOGIN_CLOSED;
	} else if (msg[0] == PG_MSG_ERROR_RESPONSE || msg[0] == PG_MSG_NOTICE_RESPONSE ||
		   msg[0] == PG_MSG_NEGOTIATE_PROTOCOL) {
		session_login_to_client(s, msg, len);
		evbuffer_drain(s->server_io->in, len);
	} else {
		evbuffer_drain(s->server_io->in, len);
		refuse(s, UPAUTH_SEQUENCE, "the upstream sent a message other than authentication "
		       "before logging walgate in");
	}
	return s->state == SESSION_LOGIN ? LOGIN_MORE : LOGIN_CLOSED;
}

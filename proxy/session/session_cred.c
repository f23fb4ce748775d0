/*
 * session_cred.c - auth = scram, once the client has authenticated: whom
 * walgate logs in upstream as, and with what password.
 *
 * The user and the source come from the client's auth-file line, else from
 * [auth] upstream_user and upstream_password (upstream_cred.h). A password
 * from a file or the token source replaces the auth file's, and the
 * ClientKey the client proved is then not used. An upstream user other than
 * the client's goes upstream in a rewritten StartupMessage
 * (pg_startup_edit.h). A source that gives nothing ends the session with
 * FATAL 28000 naming the source and why, before the upstream is contacted.
 */
#include "session/session_cred.h"

#include "session/session.h"
#include "session/session_int.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/authfile.h"
#include "core/config.h"
#include "protocol/pg_message.h"
#include "protocol/pg_startup_edit.h"
#include "protocol/pg_wire.h"
#include "session/session_secrets.h"
#include "access/token_response.h"
#include "access/upstream_cred.h"
#include "worker/worker.h"

static void source_failed(struct session *s, enum cred_kind kind, const char *why)
{
	char msg[600];

	s->w->stats.upstream_credential_failures[kind]++;
	snprintf(msg, sizeof(msg), "walgate has no upstream password for user \"%s\": "
		 "source %s: %s", s->startup.user, cred_kind_name(kind), why);
	slog_warning(s, "%s", msg);
	session_fail(s, PG_SQLSTATE_INVALID_AUTHORIZATION, msg, "no upstream credential");
}

/* The password from spec in place of the auth file's; no ClientKey passthrough. */
static bool take_password(struct session *s, const char *spec, enum cred_kind kind)
{
	struct session_auth *a = s->auth;
	char pw[TOKEN_MAX_LEN + 1], why[400];
	bool ok = cred_fetch(spec, s->w->shared->tokens, pw, sizeof(pw), why, sizeof(why));

	if (!ok) {
		source_failed(s, kind, why);
		return false;
	}
	if (a->password) {
		OPENSSL_cleanse(a->password, strlen(a->password));
		free(a->password);
	}
	a->password = strdup(pw);
	a->password_source = cred_kind_name(kind);
	OPENSSL_cleanse(pw, sizeof(pw));
	OPENSSL_cleanse(a->client_key, sizeof(a->client_key));
	a->have_client_key = false;
	if (!a->password) {
		session_close(s, "out of memory");
		return false;
	}
	return true;
}

/* The StartupMessage with user replaced, for start_relay to send. */
static bool take_user(struct session *s, const char *user)
{
	struct session_auth *a = s->auth;
	size_t cap = s->startup.length + 2 * strlen(user) + sizeof("user") + sizeof("database") +
		     strlen(s->startup.user) + 2;

	if (!(a->upstream_user = strdup(user)) || !(a->startup = malloc(cap))) {
		session_close(s, "out of memory");
		return false;
	}
	a->startup_len = pg_startup_with_user(s->startup_pkt, s->startup.length, user, a->startup, cap);
	if (a->startup_len == 0) {
		session_close(s, "cannot rewrite the startup packet");
		return false;
	}
	slog_debug(s, "logging in upstream as user \"%s\"", user);
	return true;
}

bool session_cred_prepare(struct session *s)
{
	const struct config *cfg = config_current();
	const struct auth_user *u = auth_users_find(s->w->auth_users, s->startup.user);
	const char *user = u && u->upstream_user ? u->upstream_user : cfg->upstream_user;
	const char *spec = u && u->upstream_password ? u->upstream_password : cfg->upstream_password;
	enum cred_kind kind = CRED_AUTH_FILE;
	char why[300];

	if (spec && !cred_spec_parse(spec, &kind, why, sizeof(why))) {
		source_failed(s, CRED_AUTH_FILE, why);	/* checked at load: not reached */
		return false;
	}
	if (kind != CRED_AUTH_FILE && !take_password(s, spec, kind))
		return false;
	if (user && strcmp(user, s->startup.user) && !take_user(s, user))
		return false;
	return true;
}

const char *session_upstream_user(const struct session *s)
{
	return s->auth && s->auth->upstream_user ? s->auth->upstream_user : s->startup.user;
}

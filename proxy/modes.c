/*
 * modes.c - the one-line summary of the effective TLS and authentication
 * modes (client TLS, server TLS and its verification, authentication,
 * channel binding), from a built generation.
 */
#include "modes.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "worker/generation.h"
#include "core/log.h"

struct line {
	char *buf;
	size_t cap, len;
};

static void add(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(struct line *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (l->len >= l->cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(l->buf + l->len, l->cap - l->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		l->len += (size_t)n < l->cap - l->len ? (size_t)n : l->cap - l->len - 1;
}

static void client_tls(struct line *l, const struct config *c)
{
	static const char *const names[] = { "auto", "disable", "allow", "require" };

	add(l, "client TLS %s", names[c->client_tls]);
	if (c->client_tls_configured == CLIENT_TLS_AUTO)
		add(l, c->cert_file ? " (auto: cert_file is set)" : " (auto: no cert_file)");
	if (c->client_tls != CLIENT_TLS_DISABLE && c->ca_file)
		add(l, ", client certificates required (ca_file)");
}

static void server_tls(struct line *l, const struct config *c)
{
	static const char *const names[] = { "disable", "prefer", "require", "verify-ca", "verify-full" };

	add(l, "; server TLS %s", names[c->server_tls]);
	if (c->server_tls == SERVER_TLS_VERIFY_CA || c->server_tls == SERVER_TLS_VERIFY_FULL)
		add(l, " (trusting %s%s)", c->server_ca_file ? c->server_ca_file : "the system store",
		    c->server_tls == SERVER_TLS_VERIFY_FULL ? ", certificate must name [upstream] host" : "");
	else if (c->server_tls != SERVER_TLS_DISABLE)
		add(l, " (the server's certificate is not checked)");
	if (c->server_cert_file && c->server_tls != SERVER_TLS_DISABLE)
		add(l, ", presenting server_cert_file");
}

/* Whom walgate logs in upstream as, and with what (upstream_cred.h); true when that is not used. */
static bool upstream_login(struct line *l, const struct config *c)
{
	bool changed = c->upstream_user || strcmp(c->upstream_password, "auth-file");

	if (!changed)
		return false;
	if (c->auth != AUTH_SCRAM) {
		add(l, ", upstream_user/upstream_password NOT USED");
		return true;
	}
	add(l, ", upstream login as %s%s%s with the password from %s",
	    c->upstream_user ? "\"" : "", c->upstream_user ? c->upstream_user : "the client's user",
	    c->upstream_user ? "\"" : "", c->upstream_password);
	return false;
}

/* Returns true when auth_file (or the upstream login's settings) are set and not used. */
static bool auth(struct line *l, const struct config *c)
{
	bool scram = c->auth == AUTH_SCRAM;

	add(l, "; auth %s", scram ? "scram" : "passthrough");
	if (c->auth_configured == AUTH_AUTO && scram)
		add(l, " (auto: TLS on both legs and auth_file is set)");
	else if (c->auth_configured == AUTH_AUTO)
		add(l, " (auto: %s)", !c->auth_file ? "no auth_file" :
		    c->client_tls == CLIENT_TLS_DISABLE ? "client TLS is off" : "server TLS is off");
	if (c->auth_file && !scram) {
		add(l, ", auth_file %s NOT USED", c->auth_file);
		return true;
	}
	if (scram)
		add(l, ", users from %s", c->auth_file);
	return upstream_login(l, c);
}

static void binding(struct line *l, const struct generation *g)
{
	const struct config *c = g->cfg;

	add(l, "; channel binding: ");
	if (c->auth == AUTH_SCRAM)
		add(l, "%s; walgate binds to the upstream's certificate when it offers SCRAM-SHA-256-PLUS",
		    g->tls_server ? "clients may bind to walgate's certificate" : "none from clients (no client TLS)");
	else if (!g->tls_client)
		add(l, "none (no TLS to the upstream)");
	else if (!g->tls_server)
		add(l, "removed from the server's offer (clients are plaintext)");
	else
		add(l, "clients that bind cannot log in (TLS on both legs, authentication relayed): "
		    "they need channel_binding=disable, or use auth = scram");
}

bool modes_describe(const struct generation *g, char *buf, size_t cap)
{
	struct line l = { buf, cap, 0 };
	bool unused;

	buf[0] = '\0';
	client_tls(&l, g->cfg);
	server_tls(&l, g->cfg);
	unused = auth(&l, g->cfg);
	binding(&l, g);
	return unused;
}

void modes_log(const struct generation *g)
{
	char buf[1024];

	if (modes_describe(g, buf, sizeof(buf)))
		log_warning("modes: %s", buf);
	else
		log_info("modes: %s", buf);
}

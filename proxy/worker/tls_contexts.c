/*
 * tls_contexts.c - building a generation's TLS contexts from the
 * configuration (see tls_contexts.h); tls/ does the OpenSSL work.
 */
#include "worker/tls_contexts.h"

#include <stdio.h>
#include <string.h>

#include "core/config.h"

enum tls_verify tls_verify_of(int server_tls)
{
	switch (server_tls) {
	case SERVER_TLS_VERIFY_CA:
		return TLS_VERIFY_CA;
	case SERVER_TLS_VERIFY_FULL:
		return TLS_VERIFY_FULL;
	default:
		return TLS_VERIFY_NONE;
	}
}

/*
 * Put where the setting at fault was set ("walgate.ini:12: [tls] cert_file")
 * before tls/'s reason, which begins with what failed. Returns false.
 */
static bool name_the_setting(const struct config *cfg, bool upstream, char *err, size_t errlen)
{
	static const struct { const char *prefix, *client_leg, *upstream_leg; } keys[] = {
		{ "cannot load certificate", "cert_file", "server_cert_file" },
		{ "cannot load key", "key_file", "server_key_file" },
		{ "key does not match", "key_file", "server_key_file" },
		{ "cannot load CA file", "ca_file", "server_ca_file" },
		{ "ciphers", "ciphers", "ciphers" },
		{ "min_version", "min_version", "min_version" },
	};
	char where[400], reason[700];

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strncmp(err, keys[i].prefix, strlen(keys[i].prefix)))
			continue;
		config_origin(cfg, "tls", upstream ? keys[i].upstream_leg : keys[i].client_leg,
			      where, sizeof(where));
		snprintf(reason, sizeof(reason), "%s", err);
		snprintf(err, errlen, "%s: %s", where, reason);
		break;
	}
	return false;
}

bool tls_contexts_build(const struct config *cfg, SSL_CTX **server, SSL_CTX **client,
			char *err, size_t errlen)
{
	struct tls_files sf = {
		.cert_file = cfg->cert_file, .key_file = cfg->key_file, .ca_file = cfg->ca_file,
		.min_version = cfg->min_version, .ciphers = cfg->ciphers,
	};
	struct tls_files cf = {
		.cert_file = cfg->server_cert_file, .key_file = cfg->server_key_file,
		.ca_file = cfg->server_ca_file, .min_version = cfg->min_version, .ciphers = cfg->ciphers,
	};

	*server = NULL;
	*client = NULL;
	if (cfg->client_tls != CLIENT_TLS_DISABLE &&
	    !(*server = tls_server_ctx_new(&sf, err, errlen)))
		return name_the_setting(cfg, false, err, errlen);
	if (cfg->server_tls != SERVER_TLS_DISABLE &&
	    !(*client = tls_client_ctx_new(&cf, tls_verify_of(cfg->server_tls), err, errlen))) {
		SSL_CTX_free(*server);
		*server = NULL;
		return name_the_setting(cfg, true, err, errlen);
	}
	return true;
}

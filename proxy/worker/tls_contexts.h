/*
 * tls_contexts.h - the TLS contexts a configuration asks for, built when a
 * generation is (generation.h): one for the client leg, one for the
 * upstream leg with the certificate check server_tls names.
 */
#ifndef WALGATE_TLS_CONTEXTS_H
#define WALGATE_TLS_CONTEXTS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "tls/tls_context.h"

struct config;

/* What server_tls (enum server_tls_mode) asks of the upstream's certificate. */
enum tls_verify tls_verify_of(int server_tls);

/*
 * Build the contexts cfg asks for: *server when clients may use TLS, *client
 * when the upstream leg may. On failure nothing is returned, err says why,
 * after where the setting at fault was set.
 */
bool tls_contexts_build(const struct config *cfg, SSL_CTX **server, SSL_CTX **client,
			char *err, size_t errlen);

#endif

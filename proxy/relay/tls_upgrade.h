/*
 * tls_upgrade.h - turning a session's plain socket bufferevent into a TLS
 * one on the same socket (after the SSLRequest exchange, or for a client
 * that opened with a ClientHello), and building the TLS contexts the
 * configuration asks for.
 */
#ifndef WALGATE_TLS_UPGRADE_H
#define WALGATE_TLS_UPGRADE_H

#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "tls/tls_context.h"

struct config;

/*
 * Replace plain by a TLS bufferevent on the same socket: plain's queued
 * output is written first (the one-byte 'S'), then plain is freed without
 * closing the socket. Returns NULL (plain freed, socket closed) on failure.
 */
struct bufferevent *tls_upgrade_socket(struct bufferevent *plain, SSL *ssl,
				       enum bufferevent_ssl_state state);

/*
 * The same for a client that opened with a ClientHello (direct TLS): what
 * plain already read (the ClientHello, in its input) is handed to OpenSSL
 * first, then OpenSSL reads the socket itself. Returns NULL (plain freed,
 * socket closed) on failure.
 */
struct bufferevent *tls_upgrade_direct(struct bufferevent *plain, SSL *ssl);

/* What server_tls (enum server_tls_mode) asks of the upstream's certificate. */
enum tls_verify tls_verify_of(int server_tls);

/*
 * Build the contexts cfg asks for: *server when clients may use TLS, *client
 * when the upstream leg may. On failure nothing is returned, err says why.
 */
bool tls_contexts_build(const struct config *cfg, SSL_CTX **server, SSL_CTX **client,
			char *err, size_t errlen);

#endif

/*
 * tls_upgrade.h - turning a session's plain socket bufferevent into a TLS
 * one on the same socket (after the SSLRequest exchange, or for a client
 * that opened with a ClientHello).
 */
#ifndef WALGATE_TLS_UPGRADE_H
#define WALGATE_TLS_UPGRADE_H

#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>


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

#endif

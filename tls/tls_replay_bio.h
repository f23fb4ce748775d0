/*
 * tls_replay_bio.h - an OpenSSL read BIO for a socket of which some bytes
 * were already read: it gives those back first, then reads the socket.
 *
 * A client that opens with a TLS ClientHello (direct TLS, no SSLRequest)
 * is recognised only after its first bytes were read. With this BIO the
 * SSL object still reads the socket itself, as after an SSLRequest, and
 * the bytes queued for the socket are only those OpenSSL could not write
 * yet: no layer in between hides them from backpressure or close-flushing.
 */
#ifndef WALGATE_TLS_REPLAY_BIO_H
#define WALGATE_TLS_REPLAY_BIO_H

#include <openssl/bio.h>
#include <stddef.h>

/*
 * A BIO chain for SSL_set_bio's rbio: a copy of the len bytes at head,
 * then the socket fd (not closed when the chain is freed). NULL when out
 * of memory.
 */
BIO *tls_replay_bio_new(int fd, const void *head, size_t len);

#endif

/*
 * tls_binding.h - channel-binding data for SCRAM-SHA-256-PLUS:
 * tls-server-end-point (RFC 5929), the hash of a server certificate.
 *
 * walgate computes it for its own certificate (to check a client's
 * binding) and for the upstream's (to bind its own login upstream).
 */
#ifndef WALGATE_TLS_BINDING_H
#define WALGATE_TLS_BINDING_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

/*
 * Hash cert's DER encoding with the hash of its signature algorithm (for
 * RSA-PSS the one in its parameters), MD5 and SHA-1 replaced by SHA-256,
 * exactly as PostgreSQL and libpq do. *outlen holds the capacity of out
 * on entry (EVP_MAX_MD_SIZE always suffices) and the hash length on
 * return. Returns 0, or -1 when the certificate's signature uses no
 * separate hash (Ed25519, Ed448): no tls-server-end-point is defined for
 * it, so SCRAM-SHA-256-PLUS cannot be offered with that certificate.
 */
int tls_server_end_point(X509 *cert, uint8_t *out, size_t *outlen);

#endif

/*
 * tls_context.h - the OpenSSL contexts walgate uses: one as a TLS server
 * towards clients, one as a TLS client towards the upstream, built from
 * certificate and key files and rebuilt whole on reload.
 */
#ifndef WALGATE_TLS_CONTEXT_H
#define WALGATE_TLS_CONTEXT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* How the upstream's certificate is checked (libpq's sslmode names). */
enum tls_verify {
	TLS_VERIFY_NONE,	/* require, prefer: encrypt, check nothing */
	TLS_VERIFY_CA,		/* the chain must lead to the CA */
	TLS_VERIFY_FULL,	/* ... and name the host we dialled */
};

struct tls_files {
	const char *cert_file;		/* PEM chain, leaf first */
	const char *key_file;
	const char *ca_file;		/* server: verify client certificates; client: trust anchors */
	const char *min_version;	/* "TLSv1.2" or "TLSv1.3"; NULL = TLSv1.2 */
	const char *ciphers;		/* TLS 1.2 cipher list; NULL = OpenSSL's default */
};

/* Server context for the client leg. NULL with the reason in err. */
SSL_CTX *tls_server_ctx_new(const struct tls_files *f, char *err, size_t errlen);

/* Client context for the upstream leg (cert_file/key_file optional). */
SSL_CTX *tls_client_ctx_new(const struct tls_files *f, enum tls_verify verify, char *err,
			    size_t errlen);

/*
 * A new SSL for the upstream leg: SNI and, with TLS_VERIFY_FULL, the name
 * or address the certificate must carry. NULL with the reason in err.
 */
SSL *tls_client_ssl_new(SSL_CTX *ctx, const char *host, enum tls_verify verify, char *err,
			size_t errlen);

/* The notAfter of the context's own certificate, or 0. */
time_t tls_ctx_cert_expiry(SSL_CTX *ctx);

/* True when the handshake chose ALPN "postgresql" (required for direct TLS). */
bool tls_alpn_is_postgresql(const SSL *ssl);

/* "verify failed: certificate has expired", "handshake: ..." for a finished SSL. */
void tls_describe_failure(const SSL *ssl, unsigned long err, char *buf, size_t cap);

/* One-line subject of the peer certificate, or "" */
void tls_peer_subject(const SSL *ssl, char *buf, size_t cap);

#endif

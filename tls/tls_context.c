/*
 * tls_context.c - building OpenSSL contexts from files, and describing
 * what went wrong in words an operator can act on.
 *
 * Both contexts release their record buffers while a connection is idle
 * (SSL_MODE_RELEASE_BUFFERS): thousands of quiet replication sessions
 * should not each hold 2 x 17 KiB of buffers they are not using.
 */
#include "tls_context.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

static const unsigned char alpn_postgresql[] = "\x0apostgresql";

/* The reason in words for the errors operators meet; NULL for others. */
static const char *plain_reason(unsigned long e)
{
	if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
		return "not a PEM file (no -----BEGIN line)";
	if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_BAD_PASSWORD_READ)
		return "the key is encrypted (walgate reads only unencrypted keys)";
	if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
		return "the key is not the certificate's";
#ifdef ERR_LIB_OSSL_DECODER
	if (ERR_GET_LIB(e) == ERR_LIB_OSSL_DECODER && ERR_GET_REASON(e) == ERR_R_UNSUPPORTED)
		return "no private key found (expected a PEM -----BEGIN PRIVATE KEY----- block)";
#endif
	return NULL;
}

static void openssl_reason(char *buf, size_t cap, const char *what, const char *file)
{
	unsigned long e, last = ERR_peek_last_error();
	const char *plain = NULL;
	char reason[256] = "unknown error";

	/* the queue holds the cause first and OpenSSL's summary ("PEM lib") last */
	while (!plain && (e = ERR_get_error()) != 0)
		plain = plain_reason(e);
	if (last)
		ERR_error_string_n(last, reason, sizeof(reason));
	ERR_clear_error();
	snprintf(buf, cap, "%s%s%s: %s%s%s", what, file ? " " : "", file ? file : "",
		 plain ? plain : reason, plain ? " - " : "", plain ? reason : "");
}

static int parse_version(const char *v)
{
	if (!v || !strcasecmp(v, "TLSv1.2"))
		return TLS1_2_VERSION;
	if (!strcasecmp(v, "TLSv1.3"))
		return TLS1_3_VERSION;
	return 0;
}

/* Settings both roles share; false with the reason in err. */
static bool common_setup(SSL_CTX *ctx, const struct tls_files *f, char *err, size_t errlen)
{
	int version = parse_version(f->min_version);

	if (!version) {
		snprintf(err, errlen, "min_version \"%s\": expected TLSv1.2 or TLSv1.3", f->min_version);
		return false;
	}
	SSL_CTX_set_min_proto_version(ctx, version);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	if (f->ciphers && SSL_CTX_set_cipher_list(ctx, f->ciphers) != 1) {
		openssl_reason(err, errlen, "ciphers", f->ciphers);
		return false;
	}
	return true;
}

static bool load_pair(SSL_CTX *ctx, const struct tls_files *f, char *err, size_t errlen)
{
	if (SSL_CTX_use_certificate_chain_file(ctx, f->cert_file) != 1) {
		openssl_reason(err, errlen, "cannot load certificate", f->cert_file);
		return false;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, f->key_file, SSL_FILETYPE_PEM) != 1) {
		openssl_reason(err, errlen, "cannot load key", f->key_file);
		return false;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		openssl_reason(err, errlen, "key does not match certificate", f->key_file);
		return false;
	}
	return true;
}

/*
 * PostgreSQL 17 requires ALPN "postgresql" on direct TLS and refuses any
 * other protocol; a client that offers none (the SSLRequest path) is fine.
 */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	if (SSL_select_next_proto((unsigned char **)out, outlen, alpn_postgresql,
				  sizeof(alpn_postgresql) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	return SSL_TLSEXT_ERR_OK;
}

SSL_CTX *tls_server_ctx_new(const struct tls_files *f, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx) {
		openssl_reason(err, errlen, "cannot create TLS context", NULL);
		return NULL;
	}
	if (!common_setup(ctx, f, err, errlen) || !load_pair(ctx, f, err, errlen))
		goto fail;
	if (f->ca_file) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(f->ca_file);

		if (SSL_CTX_load_verify_locations(ctx, f->ca_file, NULL) != 1 || !names) {
			openssl_reason(err, errlen, "cannot load CA file", f->ca_file);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *tls_client_ctx_new(const struct tls_files *f, enum tls_verify verify, char *err,
			    size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx) {
		openssl_reason(err, errlen, "cannot create TLS context", NULL);
		return NULL;
	}
	if (!common_setup(ctx, f, err, errlen))
		goto fail;
	if (f->cert_file && !load_pair(ctx, f, err, errlen))
		goto fail;
	if (verify != TLS_VERIFY_NONE) {
		int ok = f->ca_file ? SSL_CTX_load_verify_locations(ctx, f->ca_file, NULL)
				    : SSL_CTX_set_default_verify_paths(ctx);

		if (ok != 1) {
			openssl_reason(err, errlen, "cannot load CA file", f->ca_file);
			goto fail;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	SSL_CTX_set_alpn_protos(ctx, alpn_postgresql, sizeof(alpn_postgresql) - 1);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static bool is_ip_literal(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

SSL *tls_client_ssl_new(SSL_CTX *ctx, const char *host, enum tls_verify verify, char *err,
			size_t errlen)
{
	SSL *ssl = SSL_new(ctx);
	X509_VERIFY_PARAM *param;
	bool ip = is_ip_literal(host);

	if (!ssl) {
		openssl_reason(err, errlen, "cannot create TLS connection", NULL);
		return NULL;
	}
	/* SNI carries names only (RFC 6066). */
	if (!ip && SSL_set_tlsext_host_name(ssl, host) != 1)
		goto fail;
	if (verify == TLS_VERIFY_FULL) {
		param = SSL_get0_param(ssl);
		X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if ((ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host)
			: X509_VERIFY_PARAM_set1_host(param, host, 0)) != 1)
			goto fail;
	}
	return ssl;
fail:
	openssl_reason(err, errlen, "cannot set the upstream name", host);
	SSL_free(ssl);
	return NULL;
}

time_t tls_ctx_cert_expiry(SSL_CTX *ctx)
{
	X509 *cert = ctx ? SSL_CTX_get0_certificate(ctx) : NULL;
	struct tm tm;

	if (!cert || ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
		return 0;
	return timegm(&tm);
}

bool tls_alpn_is_postgresql(const SSL *ssl)
{
	const unsigned char *p;
	unsigned int len;

	SSL_get0_alpn_selected(ssl, &p, &len);
	return len == sizeof(alpn_postgresql) - 2 && !memcmp(p, alpn_postgresql + 1, len);
}

void tls_describe_failure(const SSL *ssl, unsigned long err, char *buf, size_t cap)
{
	long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	char reason[256];

	if (verify != X509_V_OK) {
		snprintf(buf, cap, "certificate verify failed: %s", X509_verify_cert_error_string(verify));
		return;
	}
	if (err) {
		ERR_error_string_n(err, reason, sizeof(reason));
		snprintf(buf, cap, "TLS handshake failed: %s", reason);
		return;
	}
	snprintf(buf, cap, "TLS handshake failed: connection closed");
}

void tls_peer_subject(const SSL *ssl, char *buf, size_t cap)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);

	buf[0] = '\0';
	if (!cert)
		return;
	X509_NAME_oneline(X509_get_subject_name(cert), buf, (int)cap);
	X509_free(cert);
}

/*
 * tls_binding.c - the tls-server-end-point channel-binding data of a
 * certificate (RFC 5929, section 4.1).
 *
 * Both ends must agree on every byte, so the rules are those of
 * PostgreSQL's be_tls_get_certificate_hash() and libpq's
 * pgtls_get_peer_certificate_hash() as built against OpenSSL 1.1.1 or
 * later: the digest X509_get_signature_info() names (for RSA-PSS the one
 * in its parameters), SHA-256 in place of MD5 and SHA-1, and no binding
 * at all when the algorithm has no separate digest.
 */
#include "tls_binding.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

static const EVP_MD *end_point_digest(X509 *cert)
{
	int md_nid;

	if (X509_get_signature_info(cert, &md_nid, NULL, NULL, NULL) != 1)
		return NULL;
	switch (md_nid) {
	case NID_md5:
	case NID_sha1:
		return EVP_sha256();
	case NID_undef:
		/* Ed25519, Ed448: RFC 5929 has no answer for these */
		return NULL;
	default:
		return EVP_get_digestbynid(md_nid);
	}
}

int tls_server_end_point(X509 *cert, uint8_t *out, size_t *outlen)
{
	unsigned char hash[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	const EVP_MD *md;

	if (cert == NULL || out == NULL || outlen == NULL)
		return -1;
	md = end_point_digest(cert);
	if (md == NULL || X509_digest(cert, md, hash, &len) != 1)
		return -1;
	if (len > *outlen)
		return -1;
	memcpy(out, hash, len);
	*outlen = len;
	return 0;
}

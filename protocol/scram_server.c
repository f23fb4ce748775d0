/*
 * scram_server.c - the server end of one SCRAM-SHA-256 exchange: check a
 * client's messages against a verifier and answer them.
 *
 * The AuthMessage the proof signs is client-first-message-bare ","
 * server-first-message "," client-final-message-without-proof; it is kept
 * in the state as the messages go by, so that what is signed is exactly
 * what crossed the wire. A client's message is never trusted for a length:
 * each one is bounded (SCRAM_MSG_MAX), checked for NUL bytes, and read
 * attribute by attribute in the order RFC 5802 fixes.
 */
#include "scram_int.h"

#include <string.h>

#include <openssl/crypto.h>

enum scram_result scram_server_init(struct scram_server *s,
				    const struct scram_verifier *v, bool plus,
				    const uint8_t *cbind, size_t cbind_len)
{
	memset(s, 0, sizeof(*s));
	s->state = SCRAM_SERVER_FAILED;
	if (v == NULL || v->salt_len == 0 || v->salt_len > SCRAM_SALT_MAX ||
	    v->iterations < 1 || cbind_len > SCRAM_CBIND_MAX ||
	    (cbind == NULL && cbind_len > 0))
		return SCRAM_ERR_INVALID;
	s->verifier = *v;
	s->plus = plus;
	s->cbind_len = cbind_len;
	if (cbind_len > 0)
		memcpy(s->cbind, cbind, cbind_len);
	s->state = SCRAM_SERVER_START;
	return SCRAM_OK;
}

/* gs2-header = gs2-cbind-flag "," [ authzid ] "," */
static enum scram_result read_gs2_header(struct cursor *c, char *flag)
{
	struct span type;

	if (scram_cur_take(c, "n,"))
		*flag = 'n';
	else if (scram_cur_take(c, "y,"))
		*flag = 'y';
	else if (scram_cur_attr(c, 'p', &type)) {
		if (!scram_span_eq(type, CBIND_TYPE, strlen(CBIND_TYPE)))
			return SCRAM_ERR_CBIND_TYPE;
		if (!scram_cur_take(c, ","))
			return SCRAM_ERR_MALFORMED;
		*flag = 'p';
	} else
		return SCRAM_ERR_MALFORMED;
	if (scram_cur_take(c, ","))
		return SCRAM_OK;
	return scram_cur_looking_at(c, "a=") ? SCRAM_ERR_AUTHZID : SCRAM_ERR_MALFORMED;
}

/*
 * The flag must agree with the mechanism the client named: binding under
 * plain SCRAM-SHA-256, or not binding under -PLUS, is a protocol error,
 * as is PLUS where walgate has no certificate hash to bind to.
 */
static enum scram_result check_negotiation(const struct scram_server *s, char flag)
{
	if (flag == 'p')
		return s->plus && s->cbind_len > 0 ? SCRAM_OK : SCRAM_ERR_CBIND_NEGOTIATION;
	return s->plus ? SCRAM_ERR_CBIND_NEGOTIATION : SCRAM_OK;
}

/*
 * client-first-message-bare = [reserved-mext ","] username "," nonce
 * The user name is read and ignored, as PostgreSQL does; nothing may
 * follow the nonce.
 */
static enum scram_result read_client_first_bare(struct cursor *c, struct span *nonce)
{
	struct span user;

	if (scram_cur_looking_at(c, "m="))
		return SCRAM_ERR_EXTENSION;
	if (!scram_cur_attr(c, 'n', &user) || !scram_cur_take(c, ",") || !scram_cur_attr(c, 'r', nonce))
		return SCRAM_ERR_MALFORMED;
	if (nonce->len == 0 || !scram_is_printable(nonce->p, nonce->len))
		return SCRAM_ERR_NONCE;
	return scram_cur_rest(c);
}

/* auth := bare "," server-first ","; server-first goes to the caller too. */
static enum scram_result build_server_first(struct scram_server *s, struct span bare,
					    struct span cnonce, const char *snonce,
					    char *out, size_t cap, size_t *outlen)
{
	struct outbuf o;
	size_t first_off;
	enum scram_result r;

	scram_ob_init(&o, s->auth, sizeof(s->auth), 0);
	scram_ob_put(&o, bare.p, bare.len);
	scram_ob_str(&o, ",");
	first_off = o.len;
	scram_ob_str(&o, "r=");
	s->nonce_off = o.len;
	scram_ob_put(&o, cnonce.p, cnonce.len);
	scram_ob_str(&o, snonce);
	s->nonce_len = o.len - s->nonce_off;
	scram_ob_str(&o, ",s=");
	scram_ob_b64(&o, s->verifier.salt, s->verifier.salt_len);
	scram_ob_str(&o, ",i=");
	scram_ob_int(&o, s->verifier.iterations);
	if (o.full)
		return SCRAM_ERR_TOO_LONG;
	r = scram_emit(s->auth + first_off, o.len - first_off, out, cap, outlen);
	scram_ob_str(&o, ",");
	s->auth_len = o.len;
	return o.full ? SCRAM_ERR_TOO_LONG : r;
}

static enum scram_result server_first(struct scram_server *s, const char *msg,
				      size_t len, const char *snonce,
				      char *out, size_t cap, size_t *outlen)
{
	struct cursor c;
	struct span bare, cnonce;
	enum scram_result r;

	if (!scram_valid_own_nonce(snonce))
		return SCRAM_ERR_INVALID;
	r = scram_check_message(msg, len);
	if (r != SCRAM_OK)
		return r;
	scram_cur_init(&c, msg, len);
	r = read_gs2_header(&c, &s->cbind_flag);
	if (r != SCRAM_OK)
		return r;
	bare.p = c.p;
	bare.len = (size_t)(c.end - c.p);
	r = read_client_first_bare(&c, &cnonce);
	if (r != SCRAM_OK)
		return r;
	r = check_negotiation(s, s->cbind_flag);
	if (r != SCRAM_OK)
		return r;
	return build_server_first(s, bare, cnonce, snonce, out, cap, outlen);
}

enum scram_result scram_server_first(struct scram_server *s,
				     const char *msg, size_t len,
				     const char *server_nonce,
				     char *out, size_t cap, size_t *outlen)
{
	enum scram_result r;

	if (s->state != SCRAM_SERVER_START)
		return SCRAM_ERR_STATE;
	r = server_first(s, msg, len, server_nonce, out, cap, outlen);
	s->state = r == SCRAM_OK ? SCRAM_SERVER_WAIT_FINAL : SCRAM_SERVER_FAILED;
	return r;
}

/* "c=" must be this exchange's gs2 header plus, for 'p', walgate's cbind data. */
static enum scram_result check_cbind(const struct scram_server *s, struct span v)
{
	uint8_t want[GS2_HEADER_MAX + SCRAM_CBIND_MAX];
	uint8_t got[SCRAM_MSG_MAX];
	size_t want_len, got_len;

	if (!scram_b64_decode(v.p, v.len, got, sizeof(got), &got_len))
		return SCRAM_ERR_MALFORMED;
	want_len = scram_cbind_input(s->cbind_flag, s->cbind, s->cbind_len, want);
	if (got_len != want_len || memcmp(got, want, want_len) != 0)
		return SCRAM_ERR_CBIND;
	return SCRAM_OK;
}

/*
 * client-final-message = "c=" cbind "," "r=" nonce "," "p=" proof, in this
 * order; *without_proof is the length of the part before ",p=".
 */
static enum scram_result read_client_final(const struct scram_server *s,
					   const char *msg, size_t len,
					   size_t *without_proof,
					   uint8_t proof[SCRAM_KEY_LEN])
{
	struct span cb, nonce, pv;
	struct cursor c;
	enum scram_result r;

	scram_cur_init(&c, msg, len);
	if (!scram_cur_attr(&c, 'c', &cb))
		return SCRAM_ERR_MALFORMED;
	r = check_cbind(s, cb);
	if (r != SCRAM_OK)
		return r;
	if (!scram_cur_next_attr(&c, 'r', &nonce))
		return SCRAM_ERR_MALFORMED;
	if (!scram_span_eq(nonce, s->auth + s->nonce_off, s->nonce_len))
		return SCRAM_ERR_NONCE;
	*without_proof = (size_t)(c.p - msg);
	if (!scram_cur_next_attr(&c, 'p', &pv)) {
		r = scram_cur_rest(&c);
		return r == SCRAM_OK ? SCRAM_ERR_MALFORMED : r;
	}
	if (!scram_cur_at_end(&c) || !scram_decode_exact(pv, proof, SCRAM_KEY_LEN))
		return SCRAM_ERR_MALFORMED;
	return SCRAM_OK;
}

/*
 * ClientKey = proof XOR HMAC(StoredKey, AuthMessage); the client knew the
 * password iff H(ClientKey) = StoredKey. Compared in constant time, and a
 * mock verifier fails after the very same work.
 */
static enum scram_result verify_proof(struct scram_server *s,
				      const uint8_t proof[SCRAM_KEY_LEN])
{
	uint8_t sig[SCRAM_KEY_LEN], key[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
	enum scram_result r = SCRAM_ERR_CRYPTO;
	size_t i;

	if (!scram_hmac256(s->verifier.stored_key, SCRAM_KEY_LEN, s->auth, s->auth_len, sig))
		goto out;
	for (i = 0; i < SCRAM_KEY_LEN; i++)
		key[i] = proof[i] ^ sig[i];
	if (!scram_sha256(key, SCRAM_KEY_LEN, stored))
		goto out;
	r = SCRAM_ERR_PROOF;
	if (CRYPTO_memcmp(stored, s->verifier.stored_key, SCRAM_KEY_LEN) != 0 ||
	    s->verifier.mock)
		goto out;
	memcpy(s->client_key, key, SCRAM_KEY_LEN);
	r = SCRAM_OK;
out:
	OPENSSL_cleanse(key, sizeof(key));
	return r;
}

static enum scram_result build_server_final(const struct scram_server *s,
					    char *out, size_t cap, size_t *outlen)
{
	uint8_t sig[SCRAM_KEY_LEN];
	struct outbuf o;

	if (!scram_hmac256(s->verifier.server_key, SCRAM_KEY_LEN, s->auth, s->auth_len, sig))
		return SCRAM_ERR_CRYPTO;
	scram_ob_init(&o, out, cap, 0);
	scram_ob_str(&o, "v=");
	scram_ob_b64(&o, sig, sizeof(sig));
	if (o.full)
		return SCRAM_ERR_BUFFER;
	*outlen = o.len;
	return SCRAM_OK;
}

static enum scram_result server_final(struct scram_server *s, const char *msg,
				      size_t len, char *out, size_t cap, size_t *outlen)
{
	uint8_t proof[SCRAM_KEY_LEN];
	size_t without_proof;
	struct outbuf o;
	enum scram_result r;

	r = scram_check_message(msg, len);
	if (r != SCRAM_OK)
		return r;
	/* "v=" + base64 of 32 bytes; checked first, so a refusal never follows a success */
	if (out == NULL || cap < 2 + scram_b64_encoded_len(SCRAM_KEY_LEN) + 1)
		return SCRAM_ERR_BUFFER;
	r = read_client_final(s, msg, len, &without_proof, proof);
	if (r != SCRAM_OK)
		return r;
	scram_ob_init(&o, s->auth, sizeof(s->auth), s->auth_len);
	scram_ob_put(&o, msg, without_proof);
	if (o.full)
		return SCRAM_ERR_TOO_LONG;
	s->auth_len = o.len;
	r = verify_proof(s, proof);
	if (r != SCRAM_OK)
		return r;
	return build_server_final(s, out, cap, outlen);
}

enum scram_result scram_server_final(struct scram_server *s,
				     const char *msg, size_t len,
				     char *out, size_t cap, size_t *outlen)
{
	enum scram_result r;

	if (s->state != SCRAM_SERVER_WAIT_FINAL)
		return SCRAM_ERR_STATE;
	r = server_final(s, msg, len, out, cap, outlen);
	s->state = r == SCRAM_OK ? SCRAM_SERVER_DONE : SCRAM_SERVER_FAILED;
	if (r != SCRAM_OK)
		OPENSSL_cleanse(s->client_key, sizeof(s->client_key));
	return r;
}

char scram_server_cbind_flag(const struct scram_server *s)
{
	return s->cbind_flag;
}

const uint8_t *scram_server_client_key(const struct scram_server *s)
{
	return s->state == SCRAM_SERVER_DONE ? s->client_key : NULL;
}

void scram_server_clear(struct scram_server *s)
{
	OPENSSL_cleanse(s, sizeof(*s));
	s->state = SCRAM_SERVER_FAILED;
}

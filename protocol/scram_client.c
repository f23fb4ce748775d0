/*
 * scram_client.c - the client end of one SCRAM-SHA-256 exchange: log in to
 * a server with a password or a recovered ClientKey.
 *
 * The AuthMessage the proof signs is client-first-message-bare ","
 * server-first-message "," client-final-message-without-proof; it is kept
 * in the state as the messages go by, so that what is signed is exactly
 * what crossed the wire. A server's message is never trusted for a length:
 * each one is bounded (SCRAM_MSG_MAX), checked for NUL bytes, and read
 * attribute by attribute in the order RFC 5802 fixes.
 */
#include "scram_int.h"

#include <string.h>

#include <openssl/crypto.h>

void scram_client_init(struct scram_client *c, const char *user,
		       const char *password)
{
	memset(c, 0, sizeof(*c));
	c->state = SCRAM_CLIENT_START;
	c->user = user;
	c->password = password;
}

void scram_client_init_key(struct scram_client *c, const char *user,
			   const uint8_t client_key[SCRAM_KEY_LEN],
			   const struct scram_verifier *v)
{
	memset(c, 0, sizeof(*c));
	c->state = SCRAM_CLIENT_START;
	c->user = user;
	c->key_login = true;
	memcpy(c->client_key, client_key, SCRAM_KEY_LEN);
	if (v != NULL && v->salt_len > 0 && v->salt_len <= SCRAM_SALT_MAX) {
		c->have_verifier = true;
		c->have_server_key = true;
		c->iterations = v->iterations;
		c->salt_len = v->salt_len;
		memcpy(c->salt, v->salt, v->salt_len);
		memcpy(c->server_key, v->server_key, SCRAM_KEY_LEN);
	}
}

static bool valid_cbind_choice(char flag, const uint8_t *cbind, size_t cbind_len)
{
	if (flag == 'n' || flag == 'y')
		return cbind_len == 0;
	return flag == 'p' && cbind != NULL && cbind_len > 0 &&
	       cbind_len <= SCRAM_CBIND_MAX;
}

/* saslname: ',' and '=' are written =2C and =3D (RFC 5802, 5.1). */
static void ob_saslname(struct outbuf *o, const char *user)
{
	for (; user != NULL && *user != '\0'; user++) {
		if (*user == ',')
			scram_ob_str(o, "=2C");
		else if (*user == '=')
			scram_ob_str(o, "=3D");
		else
			scram_ob_put(o, user, 1);
	}
}

/* auth := client-first-message-bare; the caller gets the gs2 header before it. */
static enum scram_result client_first(struct scram_client *c, const char *nonce,
				      char *out, size_t cap, size_t *outlen)
{
	const char *h = scram_gs2_header(c->cbind_flag);
	struct outbuf o;

	scram_ob_init(&o, c->auth, sizeof(c->auth), 0);
	scram_ob_str(&o, "n=");
	ob_saslname(&o, c->user);
	scram_ob_str(&o, ",r=");
	c->nonce_off = o.len;
	scram_ob_str(&o, nonce);
	c->nonce_len = o.len - c->nonce_off;
	if (o.full || o.len > SCRAM_MSG_MAX)
		return SCRAM_ERR_TOO_LONG;
	c->auth_len = o.len;
	scram_ob_init(&o, out, cap, 0);
	scram_ob_str(&o, h);
	scram_ob_put(&o, c->auth, c->auth_len);
	if (o.full)
		return SCRAM_ERR_BUFFER;
	*outlen = o.len;
	return SCRAM_OK;
}

enum scram_result scram_client_first(struct scram_client *c, char cbind_flag,
				     const uint8_t *cbind, size_t cbind_len,
				     const char *nonce,
				     char *out, size_t cap, size_t *outlen)
{
	enum scram_result r;

	if (c->state != SCRAM_CLIENT_START)
		return SCRAM_ERR_STATE;
	if (!valid_cbind_choice(cbind_flag, cbind, cbind_len) || !scram_valid_own_nonce(nonce))
		return SCRAM_ERR_INVALID;
	c->cbind_flag = cbind_flag;
	c->cbind_len = cbind_len;
	if (cbind_len > 0)
		memcpy(c->cbind, cbind, cbind_len);
	r = client_first(c, nonce, out, cap, outlen);
	c->state = r == SCRAM_OK ? SCRAM_CLIENT_WAIT_FIRST : SCRAM_CLIENT_FAILED;
	return r;
}


/* What a server-first-message says. */
struct server_first {
	struct span nonce;
	int iterations;
	size_t salt_len;
	uint8_t salt[SCRAM_SALT_MAX];
};

/*
 * server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count
 * The nonce must extend ours; nothing may follow the count (libpq agrees).
 */
static enum scram_result read_server_first(const struct scram_client *c,
					   const char *msg, size_t len,
					   struct server_first *sf)
{
	struct span salt, iter;
	struct cursor cur;
	enum scram_result r;

	scram_cur_init(&cur, msg, len);
	if (scram_cur_looking_at(&cur, "m="))
		return SCRAM_ERR_EXTENSION;
	if (!scram_cur_attr(&cur, 'r', &sf->nonce))
		return SCRAM_ERR_MALFORMED;
	if (sf->nonce.len <= c->nonce_len || !scram_is_printable(sf->nonce.p, sf->nonce.len) ||
	    memcmp(sf->nonce.p, c->auth + c->nonce_off, c->nonce_len) != 0)
		return SCRAM_ERR_NONCE;
	if (!scram_cur_next_attr(&cur, 's', &salt) || !scram_cur_next_attr(&cur, 'i', &iter))
		return SCRAM_ERR_MALFORMED;
	if (!scram_decode_salt(salt, sf->salt, &sf->salt_len))
		return SCRAM_ERR_MALFORMED;
	r = scram_parse_count(iter, SCRAM_MAX_ITERATIONS, &sf->iterations);
	if (r != SCRAM_OK)
		return r;
	return scram_cur_rest(&cur);
}

/*
 * The keys this login proves knowledge of: a ClientKey given, which only
 * fits a server holding the same salt and iteration count as the verifier
 * it came from; or, for a password login, derived from SaltedPassword
 * (scram_client_set_salted()) once it is known.
 */
static enum scram_result keep_first(struct scram_client *c, const struct server_first *sf)
{
	if (c->key_login) {
		if (c->have_verifier &&
		    (sf->iterations != c->iterations || sf->salt_len != c->salt_len ||
		     memcmp(sf->salt, c->salt, c->salt_len) != 0))
			return SCRAM_ERR_KEY_MISMATCH;
		return SCRAM_OK;
	}
	c->iterations = sf->iterations;
	c->salt_len = sf->salt_len;
	memcpy(c->salt, sf->salt, sf->salt_len);
	return SCRAM_OK;
}

/* auth := bare "," server-first; the server's whole nonce is kept inside it. */
static enum scram_result take_first(struct scram_client *c, const char *msg, size_t len)
{
	struct server_first sf;
	struct outbuf a;
	enum scram_result r;

	r = scram_check_message(msg, len);
	if (r != SCRAM_OK)
		return r;
	r = read_server_first(c, msg, len, &sf);
	if (r != SCRAM_OK)
		return r;
	r = keep_first(c, &sf);
	if (r != SCRAM_OK)
		return r;
	scram_ob_init(&a, c->auth, sizeof(c->auth), c->auth_len);
	scram_ob_str(&a, ",");
	c->full_nonce_off = a.len + (size_t)(sf.nonce.p - msg);
	c->full_nonce_len = sf.nonce.len;
	scram_ob_put(&a, msg, len);
	if (a.full)
		return SCRAM_ERR_TOO_LONG;
	c->auth_len = a.len;
	return SCRAM_OK;
}

enum scram_result scram_client_take_first(struct scram_client *c,
					  const char *msg, size_t len)
{
	enum scram_result r;

	if (c->state != SCRAM_CLIENT_WAIT_FIRST)
		return SCRAM_ERR_STATE;
	r = take_first(c, msg, len);
	if (r != SCRAM_OK)
		c->state = SCRAM_CLIENT_FAILED;
	else
		c->state = c->key_login ? SCRAM_CLIENT_READY_FINAL : SCRAM_CLIENT_WAIT_SALTED;
	return r;
}

bool scram_client_needs_salted(const struct scram_client *c)
{
	return c->state == SCRAM_CLIENT_WAIT_SALTED;
}

enum scram_result scram_client_set_salted(struct scram_client *c,
					  const uint8_t salted[SCRAM_KEY_LEN])
{
	if (c->state != SCRAM_CLIENT_WAIT_SALTED)
		return SCRAM_ERR_STATE;
	if (!scram_keys_from_salted(salted, c->client_key, c->server_key)) {
		c->state = SCRAM_CLIENT_FAILED;
		return SCRAM_ERR_CRYPTO;
	}
	c->have_server_key = true;
	c->state = SCRAM_CLIENT_READY_FINAL;
	return SCRAM_OK;
}

/*
 * auth := bare "," server-first "," client-final-without-proof, then the
 * proof over it: ClientKey XOR HMAC(H(ClientKey), AuthMessage). The
 * ServerSignature to expect is computed now, while the keys are at hand.
 */
static enum scram_result build_client_final(struct scram_client *c,
					    char *out, size_t cap, size_t *outlen)
{
	uint8_t cbin[GS2_HEADER_MAX + SCRAM_CBIND_MAX];
	uint8_t stored[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN];
	struct outbuf a, o;
	size_t wp_off, i;

	scram_ob_init(&a, c->auth, sizeof(c->auth), c->auth_len);
	scram_ob_str(&a, ",");
	wp_off = a.len;
	scram_ob_str(&a, "c=");
	scram_ob_b64(&a, cbin, scram_cbind_input(c->cbind_flag, c->cbind, c->cbind_len, cbin));
	scram_ob_str(&a, ",r=");
	/* earlier in the same buffer: the regions never overlap */
	scram_ob_put(&a, c->auth + c->full_nonce_off, c->full_nonce_len);
	if (a.full)
		return SCRAM_ERR_TOO_LONG;
	c->auth_len = a.len;
	if (!scram_sha256(c->client_key, SCRAM_KEY_LEN, stored) ||
	    !scram_hmac256(stored, SCRAM_KEY_LEN, c->auth, c->auth_len, sig) ||
	    (c->have_server_key &&
	     !scram_hmac256(c->server_key, SCRAM_KEY_LEN, c->auth, c->auth_len, c->server_signature)))
		return SCRAM_ERR_CRYPTO;
	for (i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] = c->client_key[i] ^ sig[i];
	scram_ob_init(&o, out, cap, 0);
	scram_ob_put(&o, c->auth + wp_off, c->auth_len - wp_off);
	scram_ob_str(&o, ",p=");
	scram_ob_b64(&o, proof, sizeof(proof));
	if (o.full)
		return SCRAM_ERR_BUFFER;
	*outlen = o.len;
	return SCRAM_OK;
}

enum scram_result scram_client_final_message(struct scram_client *c,
					     char *out, size_t cap, size_t *outlen)
{
	enum scram_result r;

	if (c->state != SCRAM_CLIENT_READY_FINAL)
		return SCRAM_ERR_STATE;
	r = build_client_final(c, out, cap, outlen);
	c->state = r == SCRAM_OK ? SCRAM_CLIENT_WAIT_FINAL : SCRAM_CLIENT_FAILED;
	return r;
}

/* All three steps at once, PBKDF2 on the caller's thread. */
enum scram_result scram_client_final(struct scram_client *c,
				     const char *msg, size_t len,
				     char *out, size_t cap, size_t *outlen)
{
	uint8_t salted[SCRAM_KEY_LEN];
	enum scram_result r;

	r = scram_client_take_first(c, msg, len);
	if (r != SCRAM_OK || !scram_client_needs_salted(c))
		return r != SCRAM_OK ? r : scram_client_final_message(c, out, cap, outlen);
	if (!scram_salted_password(c->password, c->salt, c->salt_len, c->iterations, salted)) {
		c->state = SCRAM_CLIENT_FAILED;
		return c->password ? SCRAM_ERR_CRYPTO : SCRAM_ERR_INVALID;
	}
	r = scram_client_set_salted(c, salted);
	OPENSSL_cleanse(salted, sizeof(salted));
	return r != SCRAM_OK ? r : scram_client_final_message(c, out, cap, outlen);
}

/* Keep the server's error text for the log, printable whatever it was. */
static void keep_error(struct scram_client *c, struct span e)
{
	size_t i, n = e.len < SCRAM_ERROR_MAX - 1 ? e.len : SCRAM_ERROR_MAX - 1;

	for (i = 0; i < n; i++)
		c->error[i] = e.p[i] >= 0x20 && e.p[i] < 0x7f ? e.p[i] : '?';
	c->error[n] = '\0';
}

/* server-final-message = "e=" server-error-value / "v=" ServerSignature */
static enum scram_result client_verify(struct scram_client *c, const char *msg,
				       size_t len)
{
	uint8_t sig[SCRAM_KEY_LEN];
	struct cursor cur;
	struct span v;
	enum scram_result r;

	r = scram_check_message(msg, len);
	if (r != SCRAM_OK)
		return r;
	scram_cur_init(&cur, msg, len);
	if (scram_cur_attr(&cur, 'e', &v)) {
		keep_error(c, v);
		return SCRAM_ERR_SERVER_ERROR;
	}
	if (scram_cur_looking_at(&cur, "m="))
		return SCRAM_ERR_EXTENSION;
	if (!scram_cur_attr(&cur, 'v', &v))
		return SCRAM_ERR_MALFORMED;
	r = scram_cur_rest(&cur);
	if (r != SCRAM_OK)
		return r;
	if (!scram_decode_exact(v, sig, SCRAM_KEY_LEN))
		return SCRAM_ERR_MALFORMED;
	if (!c->have_server_key)
		return SCRAM_UNVERIFIED;
	if (CRYPTO_memcmp(sig, c->server_signature, SCRAM_KEY_LEN) != 0)
		return SCRAM_ERR_SERVER_SIGNATURE;
	return SCRAM_OK;
}

enum scram_result scram_client_verify(struct scram_client *c,
				      const char *msg, size_t len)
{
	enum scram_result r;

	if (c->state != SCRAM_CLIENT_WAIT_FINAL)
		return SCRAM_ERR_STATE;
	r = client_verify(c, msg, len);
	c->state = r == SCRAM_OK || r == SCRAM_UNVERIFIED ?
		SCRAM_CLIENT_DONE : SCRAM_CLIENT_FAILED;
	return r;
}

const char *scram_client_error(const struct scram_client *c)
{
	return c->error;
}

void scram_client_clear(struct scram_client *c)
{
	OPENSSL_cleanse(c, sizeof(*c));
	c->state = SCRAM_CLIENT_FAILED;
}

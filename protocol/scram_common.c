/*
 * scram_common.c - the SCRAM-SHA-256 pieces both ends share: base64,
 * verifiers (parse, format, from a password, mock), nonce and salt, the
 * HMAC/hash helpers, and reading and building attribute=value messages.
 */
#include "scram_int.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define RAW_NONCE_LEN		18	/* -> SCRAM_NONCE_LEN base64 characters */

const char *scram_result_str(enum scram_result r)
{
	switch (r) {
	case SCRAM_OK:
		return "ok";
	case SCRAM_UNVERIFIED:
		return "server signature not verifiable without ServerKey";
	case SCRAM_ERR_INVALID:
		return "invalid SCRAM arguments";
	case SCRAM_ERR_STATE:
		return "SCRAM message out of sequence";
	case SCRAM_ERR_BUFFER:
		return "SCRAM output buffer too small";
	case SCRAM_ERR_CRYPTO:
		return "SCRAM cryptographic operation failed";
	case SCRAM_ERR_TOO_LONG:
		return "SCRAM message too long";
	case SCRAM_ERR_MALFORMED:
		return "malformed SCRAM message";
	case SCRAM_ERR_EXTENSION:
		return "unsupported SCRAM extension";
	case SCRAM_ERR_AUTHZID:
		return "SCRAM authorization identity is not supported";
	case SCRAM_ERR_CBIND_TYPE:
		return "unsupported SCRAM channel-binding type";
	case SCRAM_ERR_CBIND_NEGOTIATION:
		return "SCRAM channel binding negotiation error";
	case SCRAM_ERR_CBIND:
		return "SCRAM channel binding check failed";
	case SCRAM_ERR_NONCE:
		return "invalid SCRAM nonce";
	case SCRAM_ERR_ITERATIONS:
		return "invalid SCRAM iteration count";
	case SCRAM_ERR_KEY_MISMATCH:
		return "server's SCRAM salt or iterations differ from the stored verifier";
	case SCRAM_ERR_PROOF:
		return "SCRAM proof does not match";
	case SCRAM_ERR_SERVER_SIGNATURE:
		return "invalid SCRAM server signature";
	case SCRAM_ERR_SERVER_ERROR:
		return "SCRAM server reported an error";
	case SCRAM_ERR_VERIFIER:
		return "invalid SCRAM verifier";
	}
	return "unknown SCRAM result";
}

/* ---- base64 ---- */

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t scram_b64_encoded_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

bool scram_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap,
		      size_t *outlen)
{
	size_t i, o = 0;
	uint32_t acc;

	if (n > SIZE_MAX / 2 || cap == 0 || scram_b64_encoded_len(n) > cap - 1)
		return false;
	for (i = 0; i < n; i += 3) {
		acc = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			acc |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			acc |= in[i + 2];
		out[o++] = b64_alphabet[acc >> 18 & 63];
		out[o++] = b64_alphabet[acc >> 12 & 63];
		out[o++] = i + 1 < n ? b64_alphabet[acc >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? b64_alphabet[acc & 63] : '=';
	}
	out[o] = '\0';
	*outlen = o;
	return true;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* One group of four characters, pad of them '=' (only in the last group). */
static bool b64_group(const char *in, size_t pad, uint8_t *out)
{
	uint32_t acc = 0;
	size_t k;
	int v;

	for (k = 0; k < 4; k++) {
		v = k < 4 - pad ? b64_value(in[k]) : 0;
		if (v < 0)
			return false;
		acc = acc << 6 | (uint32_t)v;
	}
	/* the bits the padding leaves over must be zero, or two texts decode alike */
	if ((pad == 1 && (acc & 0xff) != 0) || (pad == 2 && (acc & 0xffff) != 0))
		return false;
	out[0] = (uint8_t)(acc >> 16);
	if (pad < 2)
		out[1] = (uint8_t)(acc >> 8);
	if (pad < 1)
		out[2] = (uint8_t)acc;
	return true;
}

bool scram_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap,
		      size_t *outlen)
{
	size_t i, pad = 0, need, o = 0;

	if (n % 4 != 0)
		return false;
	if (n > 0 && in[n - 1] == '=')
		pad = in[n - 2] == '=' ? 2 : 1;
	need = n / 4 * 3 - pad;
	if (need > cap)
		return false;
	for (i = 0; i < n; i += 4) {
		/* a '=' anywhere but at the very end fails in b64_value() */
		size_t group_pad = i + 4 == n ? pad : 0;

		if (!b64_group(in + i, group_pad, out + o))
			return false;
		o += 3 - group_pad;
	}
	*outlen = o;
	return true;
}

/* ---- reading a peer's message ---- */

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* RFC 5802 "printable": %x21-2B / %x2D-7E, i.e. visible ASCII but ','. */
bool scram_is_printable(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return false;
	}
	return true;
}

bool scram_span_eq(struct span a, const void *b, size_t blen)
{
	return a.len == blen && memcmp(a.p, b, blen) == 0;
}

/*
 * Bounds shared by every message from a peer. A NUL cannot occur in any
 * SCRAM message, and a C string built from one would be cut short by it.
 */
enum scram_result scram_check_message(const char *msg, size_t len)
{
	if (len > SCRAM_MSG_MAX)
		return SCRAM_ERR_TOO_LONG;
	if (msg == NULL || len == 0 || memchr(msg, '\0', len) != NULL)
		return SCRAM_ERR_MALFORMED;
	return SCRAM_OK;
}

void scram_cur_init(struct cursor *c, const char *msg, size_t len)
{
	c->p = msg;
	c->end = msg + len;
}

bool scram_cur_at_end(const struct cursor *c)
{
	return c->p == c->end;
}

/* If the literal s comes next, step over it. */
bool scram_cur_take(struct cursor *c, const char *s)
{
	size_t n = strlen(s);

	if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0)
		return false;
	c->p += n;
	return true;
}

bool scram_cur_looking_at(const struct cursor *c, const char *s)
{
	struct cursor tmp = *c;

	return scram_cur_take(&tmp, s);
}

/*
 * attr "=" value, where the value runs to the next ',' or the end. The
 * cursor stops on that ',' so the caller says whether one may follow.
 */
bool scram_cur_attr(struct cursor *c, char attr, struct span *val)
{
	const char *comma;

	if (c->end - c->p < 2 || c->p[0] != attr || c->p[1] != '=')
		return false;
	val->p = c->p + 2;
	comma = memchr(val->p, ',', (size_t)(c->end - val->p));
	val->len = (size_t)((comma != NULL ? comma : c->end) - val->p);
	c->p = val->p + val->len;
	return true;
}

/* ",attr=value" */
bool scram_cur_next_attr(struct cursor *c, char attr, struct span *val)
{
	struct cursor tmp = *c;

	if (!scram_cur_take(&tmp, ",") || !scram_cur_attr(&tmp, attr, val))
		return false;
	*c = tmp;
	return true;
}

/*
 * What follows the last attribute walgate reads: nothing, or else an
 * extension (",x=...", which walgate never agreed to), or garbage.
 */
enum scram_result scram_cur_rest(const struct cursor *c)
{
	if (scram_cur_at_end(c))
		return SCRAM_OK;
	if (c->end - c->p >= 3 && c->p[0] == ',' && is_alpha(c->p[1]) && c->p[2] == '=')
		return SCRAM_ERR_EXTENSION;
	return SCRAM_ERR_MALFORMED;
}

/* Decimal 1..max, digits only, no sign, no leading zero. */
enum scram_result scram_parse_count(struct span v, long max, int *out)
{
	long n = 0;
	size_t i;

	if (v.len == 0 || (v.p[0] == '0' && v.len > 1))
		return SCRAM_ERR_MALFORMED;
	for (i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return SCRAM_ERR_MALFORMED;
		/* stop counting early: the digits may go on for ever */
		if (n <= max)
			n = n * 10 + (v.p[i] - '0');
	}
	if (n < 1 || n > max)
		return SCRAM_ERR_ITERATIONS;
	*out = (int)n;
	return SCRAM_OK;
}

/* ---- building ---- */

void scram_ob_init(struct outbuf *o, char *buf, size_t cap, size_t len)
{
	o->buf = buf;
	o->cap = cap;
	o->len = len;
	o->full = cap == 0 || len >= cap;
}

void scram_ob_put(struct outbuf *o, const void *s, size_t n)
{
	if (o->full || n > o->cap - 1 - o->len) {
		o->full = true;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

void scram_ob_str(struct outbuf *o, const char *s)
{
	scram_ob_put(o, s, strlen(s));
}

void scram_ob_b64(struct outbuf *o, const uint8_t *in, size_t n)
{
	size_t w;

	if (o->full || !scram_b64_encode(in, n, o->buf + o->len, o->cap - o->len, &w)) {
		o->full = true;
		return;
	}
	o->len += w;
}

void scram_ob_int(struct outbuf *o, int v)
{
	char tmp[16];
	int n = snprintf(tmp, sizeof(tmp), "%d", v);

	scram_ob_put(o, tmp, (size_t)n);
}

/* Hand src[0..n) to the caller, NUL-terminated. */
enum scram_result scram_emit(const char *src, size_t n, char *out, size_t cap,
			     size_t *outlen)
{
	if (out == NULL || cap == 0 || n > cap - 1)
		return SCRAM_ERR_BUFFER;
	memcpy(out, src, n);
	out[n] = '\0';
	*outlen = n;
	return SCRAM_OK;
}

bool scram_valid_own_nonce(const char *nonce)
{
	size_t n;

	if (nonce == NULL)
		return false;
	n = strnlen(nonce, SCRAM_NONCE_MAX + 1);
	return n >= 1 && n <= SCRAM_NONCE_MAX && scram_is_printable(nonce, n);
}

const char *scram_gs2_header(char flag)
{
	switch (flag) {
	case 'y':
		return "y,,";
	case 'p':
		return "p=" CBIND_TYPE ",,";
	default:
		return "n,,";
	}
}

/*
 * cbind-input: the gs2 header, then for 'p' the channel-binding data.
 * "c=" carries it in base64.
 */
size_t scram_cbind_input(char flag, const uint8_t *cbind, size_t cbind_len,
			 uint8_t out[GS2_HEADER_MAX + SCRAM_CBIND_MAX])
{
	const char *h = scram_gs2_header(flag);
	size_t n = strlen(h);

	memcpy(out, h, n);
	if (flag == 'p') {
		memcpy(out + n, cbind, cbind_len);
		n += cbind_len;
	}
	return n;
}

/* ---- crypto ---- */

bool scram_hmac256(const uint8_t *key, size_t keylen, const void *data,
		   size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int outlen = 0;

	if (keylen > INT_MAX)
		return false;
	if (HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen) == NULL)
		return false;
	return outlen == SCRAM_KEY_LEN;
}

bool scram_sha256(const uint8_t *in, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	return SHA256(in, len, out) != NULL;
}

bool scram_salted_password(const char *password, const uint8_t *salt, size_t salt_len,
			   int iterations, uint8_t out[SCRAM_KEY_LEN])
{
	size_t plen;

	if (password == NULL || salt == NULL || salt_len == 0 || salt_len > SCRAM_SALT_MAX ||
	    iterations < 1 || iterations > SCRAM_MAX_ITERATIONS)
		return false;
	plen = strlen(password);
	if (plen > INT_MAX)
		return false;
	return PKCS5_PBKDF2_HMAC(password, (int)plen, salt, (int)salt_len,
				 iterations, EVP_sha256(), SCRAM_KEY_LEN, out) == 1;
}

/* ClientKey and ServerKey from SaltedPassword (RFC 5802, 3). */
bool scram_keys_from_salted(const uint8_t salted[SCRAM_KEY_LEN],
			    uint8_t client_key[SCRAM_KEY_LEN],
			    uint8_t server_key[SCRAM_KEY_LEN])
{
	return scram_hmac256(salted, SCRAM_KEY_LEN, "Client Key", 10, client_key) &&
	       scram_hmac256(salted, SCRAM_KEY_LEN, "Server Key", 10, server_key);
}

/* SaltedPassword, then ClientKey and ServerKey from it. */
bool scram_keys_from_password(const char *password, const uint8_t *salt,
			      size_t salt_len, int iterations,
			      uint8_t client_key[SCRAM_KEY_LEN],
			      uint8_t server_key[SCRAM_KEY_LEN])
{
	uint8_t salted[SCRAM_KEY_LEN];
	bool ok;

	ok = scram_salted_password(password, salt, salt_len, iterations, salted) &&
	     scram_keys_from_salted(salted, client_key, server_key);
	OPENSSL_cleanse(salted, sizeof(salted));
	return ok;
}

/* ---- verifiers ---- */

/* Base64 that must decode to exactly want bytes. */
bool scram_decode_exact(struct span v, uint8_t *out, size_t want)
{
	size_t n;

	return scram_b64_decode(v.p, v.len, out, want, &n) && n == want;
}

bool scram_decode_salt(struct span v, uint8_t out[SCRAM_SALT_MAX], size_t *len)
{
	return scram_b64_decode(v.p, v.len, out, SCRAM_SALT_MAX, len) && *len > 0;
}

/* The text up to the separator sep, which must be there. */
static bool text_field(const char **p, char sep, struct span *out)
{
	const char *end = strchr(*p, sep);

	if (end == NULL)
		return false;
	out->p = *p;
	out->len = (size_t)(end - *p);
	*p = end + 1;
	return true;
}

enum scram_result scram_verifier_parse(const char *text, struct scram_verifier *out)
{
	struct span iter, salt, stored, server;
	const char *p = text;

	memset(out, 0, sizeof(*out));
	if (text == NULL || strncmp(p, SCRAM_VERIFIER_PREFIX, strlen(SCRAM_VERIFIER_PREFIX)) != 0)
		return SCRAM_ERR_VERIFIER;
	p += strlen(SCRAM_VERIFIER_PREFIX);
	if (!text_field(&p, ':', &iter) || !text_field(&p, '$', &salt) ||
	    !text_field(&p, ':', &stored))
		return SCRAM_ERR_VERIFIER;
	server.p = p;
	server.len = strlen(p);
	/* PostgreSQL lets scram_iterations go to INT_MAX; nothing is computed with it here */
	if (scram_parse_count(iter, INT_MAX, &out->iterations) != SCRAM_OK ||
	    !scram_decode_salt(salt, out->salt, &out->salt_len) ||
	    !scram_decode_exact(stored, out->stored_key, SCRAM_KEY_LEN) ||
	    !scram_decode_exact(server, out->server_key, SCRAM_KEY_LEN)) {
		OPENSSL_cleanse(out, sizeof(*out));
		return SCRAM_ERR_VERIFIER;
	}
	return SCRAM_OK;
}

enum scram_result scram_verifier_format(const struct scram_verifier *v,
					char *out, size_t cap)
{
	struct outbuf o;

	if (v->salt_len == 0 || v->salt_len > SCRAM_SALT_MAX || v->iterations < 1)
		return SCRAM_ERR_INVALID;
	scram_ob_init(&o, out, cap, 0);
	scram_ob_str(&o, SCRAM_VERIFIER_PREFIX);
	scram_ob_int(&o, v->iterations);
	scram_ob_str(&o, ":");
	scram_ob_b64(&o, v->salt, v->salt_len);
	scram_ob_str(&o, "$");
	scram_ob_b64(&o, v->stored_key, SCRAM_KEY_LEN);
	scram_ob_str(&o, ":");
	scram_ob_b64(&o, v->server_key, SCRAM_KEY_LEN);
	return o.full ? SCRAM_ERR_BUFFER : SCRAM_OK;
}

enum scram_result scram_verifier_from_password(const char *password,
					       const uint8_t *salt, size_t salt_len,
					       int iterations,
					       struct scram_verifier *out)
{
	uint8_t client_key[SCRAM_KEY_LEN];
	bool ok;

	memset(out, 0, sizeof(*out));
	/* PostgreSQL never lets an empty password authenticate */
	if (password == NULL || password[0] == '\0' || salt == NULL ||
	    salt_len == 0 || salt_len > SCRAM_SALT_MAX ||
	    iterations < 1 || iterations > SCRAM_MAX_ITERATIONS)
		return SCRAM_ERR_INVALID;
	out->iterations = iterations;
	out->salt_len = salt_len;
	memcpy(out->salt, salt, salt_len);
	ok = scram_keys_from_password(password, salt, salt_len, iterations,
				      client_key, out->server_key) &&
	     scram_sha256(client_key, SCRAM_KEY_LEN, out->stored_key);
	OPENSSL_cleanse(client_key, sizeof(client_key));
	if (!ok) {
		OPENSSL_cleanse(out, sizeof(*out));
		return SCRAM_ERR_CRYPTO;
	}
	return SCRAM_OK;
}

/*
 * Everything is derived from HMAC(secret, username): the same user gets
 * the same salt on every attempt (a changing salt would give unknown users
 * away), and nobody without the secret can predict any of it.
 */
enum scram_result scram_mock_verifier(const char *username,
				      const uint8_t *secret, size_t secret_len,
				      int iterations, struct scram_verifier *out)
{
	uint8_t user_key[SCRAM_KEY_LEN], salt[SCRAM_KEY_LEN];
	bool ok;

	memset(out, 0, sizeof(*out));
	if (username == NULL || secret == NULL || secret_len == 0 || iterations < 1)
		return SCRAM_ERR_INVALID;
	ok = scram_hmac256(secret, secret_len, username, strlen(username), user_key) &&
	     scram_hmac256(user_key, sizeof(user_key), "mock salt", 9, salt) &&
	     scram_hmac256(user_key, sizeof(user_key), "mock StoredKey", 14, out->stored_key) &&
	     scram_hmac256(user_key, sizeof(user_key), "mock ServerKey", 14, out->server_key);
	OPENSSL_cleanse(user_key, sizeof(user_key));
	if (!ok) {
		OPENSSL_cleanse(out, sizeof(*out));
		return SCRAM_ERR_CRYPTO;
	}
	out->iterations = iterations;
	out->salt_len = SCRAM_SALT_LEN;
	memcpy(out->salt, salt, SCRAM_SALT_LEN);
	out->mock = true;
	return SCRAM_OK;
}

enum scram_result scram_make_nonce(char out[SCRAM_NONCE_LEN + 1])
{
	uint8_t raw[RAW_NONCE_LEN];
	size_t n;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return SCRAM_ERR_CRYPTO;
	/* 18 bytes: base64 without padding, all of it printable and comma-free */
	if (!scram_b64_encode(raw, sizeof(raw), out, SCRAM_NONCE_LEN + 1, &n))
		return SCRAM_ERR_CRYPTO;
	return SCRAM_OK;
}

enum scram_result scram_make_salt(uint8_t out[SCRAM_SALT_LEN])
{
	return RAND_bytes(out, SCRAM_SALT_LEN) == 1 ? SCRAM_OK : SCRAM_ERR_CRYPTO;
}

/*
 * scram.c - run one SCRAM-SHA-256 exchange, from either end, over bytes
 * the caller moves.
 *
 * The AuthMessage both proofs sign is client-first-message-bare ","
 * server-first-message "," client-final-message-without-proof; each side
 * keeps it in its state as the messages go by, so that what is signed is
 * exactly what crossed the wire. A peer's message is never trusted for a
 * length: each one is bounded (SCRAM_MSG_MAX), checked for NUL bytes, and
 * read attribute by attribute in the order RFC 5802 fixes.
 */
#include "scram.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define RAW_NONCE_LEN		18	/* -> SCRAM_NONCE_LEN base64 characters */
#define CBIND_TYPE		"tls-server-end-point"
#define GS2_HEADER_MAX		(sizeof("p=" CBIND_TYPE ",,") - 1)

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

struct span {
	const char *p;
	size_t len;
};

struct cursor {
	const char *p;
	const char *end;
};

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* RFC 5802 "printable": %x21-2B / %x2D-7E, i.e. visible ASCII but ','. */
static bool is_printable(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return false;
	}
	return true;
}

static bool span_eq(struct span a, const void *b, size_t blen)
{
	return a.len == blen && memcmp(a.p, b, blen) == 0;
}

/*
 * Bounds shared by every message from a peer. A NUL cannot occur in any
 * SCRAM message, and a C string built from one would be cut short by it.
 */
static enum scram_result check_message(const char *msg, size_t len)
{
	if (len > SCRAM_MSG_MAX)
		return SCRAM_ERR_TOO_LONG;
	if (msg == NULL || len == 0 || memchr(msg, '\0', len) != NULL)
		return SCRAM_ERR_MALFORMED;
	return SCRAM_OK;
}

static void cur_init(struct cursor *c, const char *msg, size_t len)
{
	c->p = msg;
	c->end = msg + len;
}

static bool cur_at_end(const struct cursor *c)
{
	return c->p == c->end;
}

/* If the literal s comes next, step over it. */
static bool cur_take(struct cursor *c, const char *s)
{
	size_t n = strlen(s);

	if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0)
		return false;
	c->p += n;
	return true;
}

static bool cur_looking_at(const struct cursor *c, const char *s)
{
	struct cursor tmp = *c;

	return cur_take(&tmp, s);
}

/*
 * attr "=" value, where the value runs to the next ',' or the end. The
 * cursor stops on that ',' so the caller says whether one may follow.
 */
static bool cur_attr(struct cursor *c, char attr, struct span *val)
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
static bool cur_next_attr(struct cursor *c, char attr, struct span *val)
{
	struct cursor tmp = *c;

	if (!cur_take(&tmp, ",") || !cur_attr(&tmp, attr, val))
		return false;
	*c = tmp;
	return true;
}

/*
 * What follows the last attribute walgate reads: nothing, or else an
 * extension (",x=...", which walgate never agreed to), or garbage.
 */
static enum scram_result cur_rest(const struct cursor *c)
{
	if (cur_at_end(c))
		return SCRAM_OK;
	if (c->end - c->p >= 3 && c->p[0] == ',' && is_alpha(c->p[1]) && c->p[2] == '=')
		return SCRAM_ERR_EXTENSION;
	return SCRAM_ERR_MALFORMED;
}

/* Decimal 1..max, digits only, no sign, no leading zero. */
static enum scram_result parse_count(struct span v, long max, int *out)
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

/* Appends into buf[0..cap), kept NUL-terminated; any overflow sticks. */
struct outbuf {
	char *buf;
	size_t cap;
	size_t len;
	bool full;
};

static void ob_init(struct outbuf *o, char *buf, size_t cap, size_t len)
{
	o->buf = buf;
	o->cap = cap;
	o->len = len;
	o->full = cap == 0 || len >= cap;
}

static void ob_put(struct outbuf *o, const void *s, size_t n)
{
	if (o->full || n > o->cap - 1 - o->len) {
		o->full = true;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void ob_str(struct outbuf *o, const char *s)
{
	ob_put(o, s, strlen(s));
}

static void ob_b64(struct outbuf *o, const uint8_t *in, size_t n)
{
	size_t w;

	if (o->full || !scram_b64_encode(in, n, o->buf + o->len, o->cap - o->len, &w)) {
		o->full = true;
		return;
	}
	o->len += w;
}

static void ob_int(struct outbuf *o, int v)
{
	char tmp[16];
	int n = snprintf(tmp, sizeof(tmp), "%d", v);

	ob_put(o, tmp, (size_t)n);
}

/* Hand src[0..n) to the caller, NUL-terminated. */
static enum scram_result emit(const char *src, size_t n, char *out, size_t cap,
			      size_t *outlen)
{
	if (out == NULL || cap == 0 || n > cap - 1)
		return SCRAM_ERR_BUFFER;
	memcpy(out, src, n);
	out[n] = '\0';
	*outlen = n;
	return SCRAM_OK;
}

static bool valid_own_nonce(const char *nonce)
{
	size_t n;

	if (nonce == NULL)
		return false;
	n = strnlen(nonce, SCRAM_NONCE_MAX + 1);
	return n >= 1 && n <= SCRAM_NONCE_MAX && is_printable(nonce, n);
}

static const char *gs2_header(char flag)
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
static size_t cbind_input(char flag, const uint8_t *cbind, size_t cbind_len,
			  uint8_t out[GS2_HEADER_MAX + SCRAM_CBIND_MAX])
{
	const char *h = gs2_header(flag);
	size_t n = strlen(h);

	memcpy(out, h, n);
	if (flag == 'p') {
		memcpy(out + n, cbind, cbind_len);
		n += cbind_len;
	}
	return n;
}

/* ---- crypto ---- */

static bool hmac256(const uint8_t *key, size_t keylen, const void *data,
		    size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int outlen = 0;

	if (keylen > INT_MAX)
		return false;
	if (HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen) == NULL)
		return false;
	return outlen == SCRAM_KEY_LEN;
}

static bool sha256(const uint8_t *in, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	return SHA256(in, len, out) != NULL;
}

/* SaltedPassword, then ClientKey and ServerKey from it (RFC 5802, 3). */
static bool keys_from_password(const char *password, const uint8_t *salt,
			       size_t salt_len, int iterations,
			       uint8_t client_key[SCRAM_KEY_LEN],
			       uint8_t server_key[SCRAM_KEY_LEN])
{
	uint8_t salted[SCRAM_KEY_LEN];
	size_t plen = strlen(password);
	bool ok;

	if (plen > INT_MAX || salt_len > INT_MAX)
		return false;
	ok = PKCS5_PBKDF2_HMAC(password, (int)plen, salt, (int)salt_len,
			       iterations, EVP_sha256(), SCRAM_KEY_LEN, salted) == 1 &&
	     hmac256(salted, sizeof(salted), "Client Key", 10, client_key) &&
	     hmac256(salted, sizeof(salted), "Server Key", 10, server_key);
	OPENSSL_cleanse(salted, sizeof(salted));
	return ok;
}

/* ---- verifiers ---- */

/* Base64 that must decode to exactly want bytes. */
static bool decode_exact(struct span v, uint8_t *out, size_t want)
{
	size_t n;

	return scram_b64_decode(v.p, v.len, out, want, &n) && n == want;
}

static bool decode_salt(struct span v, uint8_t out[SCRAM_SALT_MAX], size_t *len)
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
	if (parse_count(iter, INT_MAX, &out->iterations) != SCRAM_OK ||
	    !decode_salt(salt, out->salt, &out->salt_len) ||
	    !decode_exact(stored, out->stored_key, SCRAM_KEY_LEN) ||
	    !decode_exact(server, out->server_key, SCRAM_KEY_LEN)) {
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
	ob_init(&o, out, cap, 0);
	ob_str(&o, SCRAM_VERIFIER_PREFIX);
	ob_int(&o, v->iterations);
	ob_str(&o, ":");
	ob_b64(&o, v->salt, v->salt_len);
	ob_str(&o, "$");
	ob_b64(&o, v->stored_key, SCRAM_KEY_LEN);
	ob_str(&o, ":");
	ob_b64(&o, v->server_key, SCRAM_KEY_LEN);
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
	ok = keys_from_password(password, salt, salt_len, iterations,
				client_key, out->server_key) &&
	     sha256(client_key, SCRAM_KEY_LEN, out->stored_key);
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
				      struct scram_verifier *out)
{
	uint8_t user_key[SCRAM_KEY_LEN], salt[SCRAM_KEY_LEN];
	bool ok;

	memset(out, 0, sizeof(*out));
	if (username == NULL || secret == NULL || secret_len == 0)
		return SCRAM_ERR_INVALID;
	ok = hmac256(secret, secret_len, username, strlen(username), user_key) &&
	     hmac256(user_key, sizeof(user_key), "mock salt", 9, salt) &&
	     hmac256(user_key, sizeof(user_key), "mock StoredKey", 14, out->stored_key) &&
	     hmac256(user_key, sizeof(user_key), "mock ServerKey", 14, out->server_key);
	OPENSSL_cleanse(user_key, sizeof(user_key));
	if (!ok) {
		OPENSSL_cleanse(out, sizeof(*out));
		return SCRAM_ERR_CRYPTO;
	}
	out->iterations = SCRAM_DEFAULT_ITERATIONS;
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

/* ---- server side ---- */

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

	if (cur_take(c, "n,"))
		*flag = 'n';
	else if (cur_take(c, "y,"))
		*flag = 'y';
	else if (cur_attr(c, 'p', &type)) {
		if (!span_eq(type, CBIND_TYPE, strlen(CBIND_TYPE)))
			return SCRAM_ERR_CBIND_TYPE;
		if (!cur_take(c, ","))
			return SCRAM_ERR_MALFORMED;
		*flag = 'p';
	} else
		return SCRAM_ERR_MALFORMED;
	if (cur_take(c, ","))
		return SCRAM_OK;
	return cur_looking_at(c, "a=") ? SCRAM_ERR_AUTHZID : SCRAM_ERR_MALFORMED;
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

	if (cur_looking_at(c, "m="))
		return SCRAM_ERR_EXTENSION;
	if (!cur_attr(c, 'n', &user) || !cur_take(c, ",") || !cur_attr(c, 'r', nonce))
		return SCRAM_ERR_MALFORMED;
	if (nonce->len == 0 || !is_printable(nonce->p, nonce->len))
		return SCRAM_ERR_NONCE;
	return cur_rest(c);
}

/* auth := bare "," server-first ","; server-first goes to the caller too. */
static enum scram_result build_server_first(struct scram_server *s, struct span bare,
					    struct span cnonce, const char *snonce,
					    char *out, size_t cap, size_t *outlen)
{
	struct outbuf o;
	size_t first_off;
	enum scram_result r;

	ob_init(&o, s->auth, sizeof(s->auth), 0);
	ob_put(&o, bare.p, bare.len);
	ob_str(&o, ",");
	first_off = o.len;
	ob_str(&o, "r=");
	s->nonce_off = o.len;
	ob_put(&o, cnonce.p, cnonce.len);
	ob_str(&o, snonce);
	s->nonce_len = o.len - s->nonce_off;
	ob_str(&o, ",s=");
	ob_b64(&o, s->verifier.salt, s->verifier.salt_len);
	ob_str(&o, ",i=");
	ob_int(&o, s->verifier.iterations);
	if (o.full)
		return SCRAM_ERR_TOO_LONG;
	r = emit(s->auth + first_off, o.len - first_off, out, cap, outlen);
	ob_str(&o, ",");
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

	if (!valid_own_nonce(snonce))
		return SCRAM_ERR_INVALID;
	r = check_message(msg, len);
	if (r != SCRAM_OK)
		return r;
	cur_init(&c, msg, len);
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
	want_len = cbind_input(s->cbind_flag, s->cbind, s->cbind_len, want);
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

	cur_init(&c, msg, len);
	if (!cur_attr(&c, 'c', &cb))
		return SCRAM_ERR_MALFORMED;
	r = check_cbind(s, cb);
	if (r != SCRAM_OK)
		return r;
	if (!cur_next_attr(&c, 'r', &nonce))
		return SCRAM_ERR_MALFORMED;
	if (!span_eq(nonce, s->auth + s->nonce_off, s->nonce_len))
		return SCRAM_ERR_NONCE;
	*without_proof = (size_t)(c.p - msg);
	if (!cur_next_attr(&c, 'p', &pv)) {
		r = cur_rest(&c);
		return r == SCRAM_OK ? SCRAM_ERR_MALFORMED : r;
	}
	if (!cur_at_end(&c) || !decode_exact(pv, proof, SCRAM_KEY_LEN))
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

	if (!hmac256(s->verifier.stored_key, SCRAM_KEY_LEN, s->auth, s->auth_len, sig))
		goto out;
	for (i = 0; i < SCRAM_KEY_LEN; i++)
		key[i] = proof[i] ^ sig[i];
	if (!sha256(key, SCRAM_KEY_LEN, stored))
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

	if (!hmac256(s->verifier.server_key, SCRAM_KEY_LEN, s->auth, s->auth_len, sig))
		return SCRAM_ERR_CRYPTO;
	ob_init(&o, out, cap, 0);
	ob_str(&o, "v=");
	ob_b64(&o, sig, sizeof(sig));
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

	r = check_message(msg, len);
	if (r != SCRAM_OK)
		return r;
	/* "v=" + base64 of 32 bytes; checked first, so a refusal never follows a success */
	if (out == NULL || cap < 2 + scram_b64_encoded_len(SCRAM_KEY_LEN) + 1)
		return SCRAM_ERR_BUFFER;
	r = read_client_final(s, msg, len, &without_proof, proof);
	if (r != SCRAM_OK)
		return r;
	ob_init(&o, s->auth, sizeof(s->auth), s->auth_len);
	ob_put(&o, msg, without_proof);
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

/* ---- client side ---- */

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
			ob_str(o, "=2C");
		else if (*user == '=')
			ob_str(o, "=3D");
		else
			ob_put(o, user, 1);
	}
}

/* auth := client-first-message-bare; the caller gets the gs2 header before it. */
static enum scram_result client_first(struct scram_client *c, const char *nonce,
				      char *out, size_t cap, size_t *outlen)
{
	const char *h = gs2_header(c->cbind_flag);
	struct outbuf o;

	ob_init(&o, c->auth, sizeof(c->auth), 0);
	ob_str(&o, "n=");
	ob_saslname(&o, c->user);
	ob_str(&o, ",r=");
	c->nonce_off = o.len;
	ob_str(&o, nonce);
	c->nonce_len = o.len - c->nonce_off;
	if (o.full || o.len > SCRAM_MSG_MAX)
		return SCRAM_ERR_TOO_LONG;
	c->auth_len = o.len;
	ob_init(&o, out, cap, 0);
	ob_str(&o, h);
	ob_put(&o, c->auth, c->auth_len);
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
	if (!valid_cbind_choice(cbind_flag, cbind, cbind_len) || !valid_own_nonce(nonce) ||
	    (!c->key_login && c->password == NULL))
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

	cur_init(&cur, msg, len);
	if (cur_looking_at(&cur, "m="))
		return SCRAM_ERR_EXTENSION;
	if (!cur_attr(&cur, 'r', &sf->nonce))
		return SCRAM_ERR_MALFORMED;
	if (sf->nonce.len <= c->nonce_len || !is_printable(sf->nonce.p, sf->nonce.len) ||
	    memcmp(sf->nonce.p, c->auth + c->nonce_off, c->nonce_len) != 0)
		return SCRAM_ERR_NONCE;
	if (!cur_next_attr(&cur, 's', &salt) || !cur_next_attr(&cur, 'i', &iter))
		return SCRAM_ERR_MALFORMED;
	if (!decode_salt(salt, sf->salt, &sf->salt_len))
		return SCRAM_ERR_MALFORMED;
	r = parse_count(iter, SCRAM_MAX_ITERATIONS, &sf->iterations);
	if (r != SCRAM_OK)
		return r;
	return cur_rest(&cur);
}

/*
 * The keys this login proves knowledge of: derived from the password with
 * the server's salt, or the ClientKey given, which only fits a server
 * holding the same salt and iteration count as the verifier it came from.
 */
static enum scram_result client_keys(struct scram_client *c,
				     const struct server_first *sf)
{
	if (c->key_login) {
		if (c->have_verifier &&
		    (sf->iterations != c->iterations || sf->salt_len != c->salt_len ||
		     memcmp(sf->salt, c->salt, c->salt_len) != 0))
			return SCRAM_ERR_KEY_MISMATCH;
		return SCRAM_OK;
	}
	if (!keys_from_password(c->password, sf->salt, sf->salt_len, sf->iterations,
				c->client_key, c->server_key))
		return SCRAM_ERR_CRYPTO;
	c->have_server_key = true;
	return SCRAM_OK;
}

/*
 * auth := bare "," server-first "," client-final-without-proof, then the
 * proof over it: ClientKey XOR HMAC(H(ClientKey), AuthMessage). The
 * ServerSignature to expect is computed now, while the keys are at hand.
 */
static enum scram_result build_client_final(struct scram_client *c,
					    const char *msg, size_t len,
					    struct span nonce,
					    char *out, size_t cap, size_t *outlen)
{
	uint8_t cbin[GS2_HEADER_MAX + SCRAM_CBIND_MAX];
	uint8_t stored[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN];
	struct outbuf a, o;
	size_t wp_off, i;

	ob_init(&a, c->auth, sizeof(c->auth), c->auth_len);
	ob_str(&a, ",");
	ob_put(&a, msg, len);
	ob_str(&a, ",");
	wp_off = a.len;
	ob_str(&a, "c=");
	ob_b64(&a, cbin, cbind_input(c->cbind_flag, c->cbind, c->cbind_len, cbin));
	ob_str(&a, ",r=");
	ob_put(&a, nonce.p, nonce.len);
	if (a.full)
		return SCRAM_ERR_TOO_LONG;
	c->auth_len = a.len;
	if (!sha256(c->client_key, SCRAM_KEY_LEN, stored) ||
	    !hmac256(stored, SCRAM_KEY_LEN, c->auth, c->auth_len, sig) ||
	    (c->have_server_key &&
	     !hmac256(c->server_key, SCRAM_KEY_LEN, c->auth, c->auth_len, c->server_signature)))
		return SCRAM_ERR_CRYPTO;
	for (i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] = c->client_key[i] ^ sig[i];
	ob_init(&o, out, cap, 0);
	ob_put(&o, c->auth + wp_off, c->auth_len - wp_off);
	ob_str(&o, ",p=");
	ob_b64(&o, proof, sizeof(proof));
	if (o.full)
		return SCRAM_ERR_BUFFER;
	*outlen = o.len;
	return SCRAM_OK;
}

static enum scram_result client_final(struct scram_client *c, const char *msg,
				      size_t len, char *out, size_t cap, size_t *outlen)
{
	struct server_first sf;
	enum scram_result r;

	r = check_message(msg, len);
	if (r != SCRAM_OK)
		return r;
	r = read_server_first(c, msg, len, &sf);
	if (r != SCRAM_OK)
		return r;
	r = client_keys(c, &sf);
	if (r != SCRAM_OK)
		return r;
	return build_client_final(c, msg, len, sf.nonce, out, cap, outlen);
}

enum scram_result scram_client_final(struct scram_client *c,
				     const char *msg, size_t len,
				     char *out, size_t cap, size_t *outlen)
{
	enum scram_result r;

	if (c->state != SCRAM_CLIENT_WAIT_FIRST)
		return SCRAM_ERR_STATE;
	r = client_final(c, msg, len, out, cap, outlen);
	c->state = r == SCRAM_OK ? SCRAM_CLIENT_WAIT_FINAL : SCRAM_CLIENT_FAILED;
	return r;
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

	r = check_message(msg, len);
	if (r != SCRAM_OK)
		return r;
	cur_init(&cur, msg, len);
	if (cur_attr(&cur, 'e', &v)) {
		keep_error(c, v);
		return SCRAM_ERR_SERVER_ERROR;
	}
	if (cur_looking_at(&cur, "m="))
		return SCRAM_ERR_EXTENSION;
	if (!cur_attr(&cur, 'v', &v))
		return SCRAM_ERR_MALFORMED;
	r = cur_rest(&cur);
	if (r != SCRAM_OK)
		return r;
	if (!decode_exact(v, sig, SCRAM_KEY_LEN))
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

/*
 * scram_int.h - what scram_common.c, scram_server.c and scram_client.c
 * share; nothing outside them includes it. Reading a peer's message
 * (struct cursor), building one (struct outbuf), and the crypto steps both
 * ends take, all defined in scram_common.c.
 */
#ifndef WALGATE_SCRAM_INT_H
#define WALGATE_SCRAM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scram.h"

#define CBIND_TYPE		"tls-server-end-point"
#define GS2_HEADER_MAX		(sizeof("p=" CBIND_TYPE ",,") - 1)

/* ---- reading a peer's message ---- */

struct span {
	const char *p;
	size_t len;
};

struct cursor {
	const char *p;
	const char *end;
};

/* RFC 5802 "printable": %x21-2B / %x2D-7E, i.e. visible ASCII but ','. */
bool scram_is_printable(const char *p, size_t n);
bool scram_span_eq(struct span a, const void *b, size_t blen);
/* Bounds shared by every message from a peer: length, and no NUL byte. */
enum scram_result scram_check_message(const char *msg, size_t len);
void scram_cur_init(struct cursor *c, const char *msg, size_t len);
bool scram_cur_at_end(const struct cursor *c);
/* If the literal s comes next, step over it. */
bool scram_cur_take(struct cursor *c, const char *s);
bool scram_cur_looking_at(const struct cursor *c, const char *s);
/* attr "=" value, up to the next ',' (where the cursor stops) or the end. */
bool scram_cur_attr(struct cursor *c, char attr, struct span *val);
/* ",attr=value" */
bool scram_cur_next_attr(struct cursor *c, char attr, struct span *val);
/* After the last attribute read: SCRAM_OK at the end, else why not. */
enum scram_result scram_cur_rest(const struct cursor *c);
/* Decimal 1..max, digits only, no sign, no leading zero. */
enum scram_result scram_parse_count(struct span v, long max, int *out);

/* ---- building ---- */

/* Appends into buf[0..cap), kept NUL-terminated; any overflow sticks. */
struct outbuf {
	char *buf;
	size_t cap;
	size_t len;
	bool full;
};

void scram_ob_init(struct outbuf *o, char *buf, size_t cap, size_t len);
void scram_ob_put(struct outbuf *o, const void *s, size_t n);
void scram_ob_str(struct outbuf *o, const char *s);
void scram_ob_b64(struct outbuf *o, const uint8_t *in, size_t n);
void scram_ob_int(struct outbuf *o, int v);
/* Hand src[0..n) to the caller, NUL-terminated. */
enum scram_result scram_emit(const char *src, size_t n, char *out, size_t cap,
			     size_t *outlen);
bool scram_valid_own_nonce(const char *nonce);
const char *scram_gs2_header(char flag);
/* cbind-input: the gs2 header, then for 'p' the channel-binding data. */
size_t scram_cbind_input(char flag, const uint8_t *cbind, size_t cbind_len,
			 uint8_t out[GS2_HEADER_MAX + SCRAM_CBIND_MAX]);

/* ---- crypto ---- */

bool scram_hmac256(const uint8_t *key, size_t keylen, const void *data,
		   size_t len, uint8_t out[SCRAM_KEY_LEN]);
bool scram_sha256(const uint8_t *in, size_t len, uint8_t out[SCRAM_KEY_LEN]);
/* ClientKey and ServerKey from SaltedPassword (RFC 5802, 3). */
bool scram_keys_from_salted(const uint8_t salted[SCRAM_KEY_LEN],
			    uint8_t client_key[SCRAM_KEY_LEN],
			    uint8_t server_key[SCRAM_KEY_LEN]);
/* SaltedPassword, then ClientKey and ServerKey from it. */
bool scram_keys_from_password(const char *password, const uint8_t *salt,
			      size_t salt_len, int iterations,
			      uint8_t client_key[SCRAM_KEY_LEN],
			      uint8_t server_key[SCRAM_KEY_LEN]);

/* ---- verifiers ---- */

/* Base64 that must decode to exactly want bytes. */
bool scram_decode_exact(struct span v, uint8_t *out, size_t want);
bool scram_decode_salt(struct span v, uint8_t out[SCRAM_SALT_MAX], size_t *len);

#endif

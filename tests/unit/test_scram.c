/*
 * test_scram.c - SCRAM-SHA-256 on both legs: the RFC 7677 vector byte for
 * byte, a verifier made by libpq 15, walgate's server and client talking to
 * each other with and without channel binding, ClientKey logins, and every
 * way a peer's message can be malformed.
 *
 * Every message handed to a parser is first copied into a heap block of
 * exactly its length, so that AddressSanitizer catches a read past len.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/scram.h"

/* RFC 7677, section 3: user "user", password "pencil". */
#define RFC_PASSWORD	"pencil"
#define RFC_CNONCE	"rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE	"%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_NONCE	RFC_CNONCE RFC_SNONCE
#define RFC_SALT	"W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CFIRST	"n,,n=user,r=" RFC_CNONCE
#define RFC_SFIRST	"r=" RFC_NONCE ",s=" RFC_SALT ",i=4096"
#define RFC_PROOF	"dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_CFINAL	"c=biws,r=" RFC_NONCE ",p=" RFC_PROOF
#define RFC_SFINAL	"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
/*
 * The verifier and ClientKey of that vector, computed offline with
 * Python's hashlib.pbkdf2_hmac('sha256', b'pencil', salt, 4096) and hmac.
 */
#define RFC_VERIFIER	"SCRAM-SHA-256$4096:" RFC_SALT \
	"$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=" \
	":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define RFC_CLIENT_KEY	"pg/JI9Z+hkSpLRa5btpe9GVrDHJcSEN0viVTVXaZbos="

/*
 * Made by libpq 15.20's PQencryptPasswordConn(conn, "walgate-test-pw",
 * "alice", "scram-sha-256") (random salt, 4096 iterations), and checked
 * against hashlib.pbkdf2_hmac as above.
 */
#define PG15_PASSWORD	"walgate-test-pw"
#define PG15_VERIFIER	"SCRAM-SHA-256$4096:Tz0BqR/oB6WJrA2trH7vhQ==" \
	"$2cphW5hEnNzD5b6ZSOurKObG9HvEdSq+nIOobJcImyQ=" \
	":sV1GH5QPRSV08bzFgeipintPi4qD/NWxDfb+mP1AXH0="

#define BUF		(SCRAM_AUTH_MAX + 1)

static const uint8_t cbind32[32] = {
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
	16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
};

static const struct scram_verifier *rfc_verifier(void)
{
	static struct scram_verifier v;
	static bool done;
	uint8_t salt[16];
	size_t n;

	if (!done) {
		assert_true(scram_b64_decode(RFC_SALT, strlen(RFC_SALT), salt, sizeof(salt), &n));
		assert_int_equal(scram_verifier_from_password(RFC_PASSWORD, salt, n, 4096, &v),
				 SCRAM_OK);
		done = true;
	}
	return &v;
}

/* ---- exact-length wrappers ---- */

static char *dup_exact(const char *msg, size_t len)
{
	char *p = malloc(len > 0 ? len : 1);

	assert_non_null(p);
	memcpy(p, msg, len);
	return p;
}

static enum scram_result srv_first(struct scram_server *s, const char *msg, size_t len,
				   char *out, size_t cap, size_t *outlen)
{
	char *m = dup_exact(msg, len);
	enum scram_result r = scram_server_first(s, m, len, RFC_SNONCE, out, cap, outlen);

	free(m);
	return r;
}

static enum scram_result srv_final(struct scram_server *s, const char *msg, size_t len,
				   char *out, size_t cap, size_t *outlen)
{
	char *m = dup_exact(msg, len);
	enum scram_result r = scram_server_final(s, m, len, out, cap, outlen);

	free(m);
	return r;
}

static enum scram_result cli_final(struct scram_client *c, const char *msg, size_t len,
				   char *out, size_t cap, size_t *outlen)
{
	char *m = dup_exact(msg, len);
	enum scram_result r = scram_client_final(c, m, len, out, cap, outlen);

	free(m);
	return r;
}

static enum scram_result cli_verify(struct scram_client *c, const char *msg, size_t len)
{
	char *m = dup_exact(msg, len);
	enum scram_result r = scram_client_verify(c, m, len);

	free(m);
	return r;
}

/*
 * A whole exchange between an initialised client and server, the client
 * choosing flag/cb. Returns the first result that is not SCRAM_OK, or the
 * client's verdict on the server-final-message.
 */
static enum scram_result exchange(struct scram_server *s, struct scram_client *c,
				  char flag, const uint8_t *cb, size_t cblen)
{
	char a[BUF], b[BUF];
	size_t alen, blen;
	enum scram_result r;

	r = scram_client_first(c, flag, cb, cblen, RFC_CNONCE, a, sizeof(a), &alen);
	if (r != SCRAM_OK)
		return r;
	r = srv_first(s, a, alen, b, sizeof(b), &blen);
	if (r != SCRAM_OK)
		return r;
	r = cli_final(c, b, blen, a, sizeof(a), &alen);
	if (r != SCRAM_OK)
		return r;
	r = srv_final(s, a, alen, b, sizeof(b), &blen);
	if (r != SCRAM_OK)
		return r;
	return cli_verify(c, b, blen);
}

struct bad_msg {
	const char *msg;
	size_t len;
	enum scram_result want;
};

#define BAD(lit, want)	{ (lit), sizeof(lit) - 1, (want) }

/* Name the table row that failed, and both verdicts in words. */
static void expect(size_t row, enum scram_result got, enum scram_result want)
{
	if (got != want)
		fail_msg("row %zu: got \"%s\", want \"%s\"", row,
			 scram_result_str(got), scram_result_str(want));
}

/* ---- base64 ---- */

static void test_b64_vectors(void **state)
{
	/* RFC 4648, section 10 */
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const enc[] = {
		"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy",
	};
	char out[16];
	uint8_t raw[16];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		assert_true(scram_b64_encode((const uint8_t *)plain[i], strlen(plain[i]),
					     out, sizeof(out), &n));
		assert_int_equal(n, scram_b64_encoded_len(strlen(plain[i])));
		assert_string_equal(out, enc[i]);
		assert_true(scram_b64_decode(enc[i], strlen(enc[i]), raw, sizeof(raw), &n));
		assert_int_equal(n, strlen(plain[i]));
		assert_memory_equal(raw, plain[i], n);
	}
	/* the encoder wants room for its NUL */
	assert_false(scram_b64_encode((const uint8_t *)"foo", 3, out, 4, &n));
	assert_true(scram_b64_encode((const uint8_t *)"foo", 3, out, 5, &n));
}

static void test_b64_strict(void **state)
{
	static const char *const bad[] = {
		"Zg", "Zg=", "Zg===", "====", "Z===", "=Zg=", "Zm=v", "Zg==Zg==",
		"Zm9v!", "Zm9 ", "Zm9v\n", "Zm-v", "Zm_v",
		"Zh==",		/* non-zero bits under the padding */
		"Zm9=",
	};
	uint8_t raw[16];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(scram_b64_decode(bad[i], strlen(bad[i]), raw, sizeof(raw), &n));
	/* output capacity is respected */
	assert_false(scram_b64_decode("Zm9vYmFy", 8, raw, 5, &n));
	assert_true(scram_b64_decode("Zm9vYmFy", 8, raw, 6, &n));
}

/* ---- RFC 7677 ---- */

static void test_rfc7677_server(void **state)
{
	struct scram_server s;
	char out[BUF];
	size_t n;
	uint8_t ck[SCRAM_KEY_LEN];

	(void)state;
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
	assert_null(scram_server_client_key(&s));
	assert_int_equal(srv_first(&s, RFC_CFIRST, strlen(RFC_CFIRST), out, sizeof(out), &n),
			 SCRAM_OK);
	assert_int_equal(n, strlen(RFC_SFIRST));
	assert_string_equal(out, RFC_SFIRST);
	assert_int_equal(scram_server_cbind_flag(&s), 'n');
	assert_int_equal(srv_final(&s, RFC_CFINAL, strlen(RFC_CFINAL), out, sizeof(out), &n),
			 SCRAM_OK);
	assert_int_equal(n, strlen(RFC_SFINAL));
	assert_string_equal(out, RFC_SFINAL);
	assert_non_null(scram_server_client_key(&s));
	assert_true(scram_b64_decode(RFC_CLIENT_KEY, strlen(RFC_CLIENT_KEY), ck, sizeof(ck), &n));
	assert_memory_equal(scram_server_client_key(&s), ck, SCRAM_KEY_LEN);
	scram_server_clear(&s);
	assert_null(scram_server_client_key(&s));
}

static void test_rfc7677_client(void **state)
{
	struct scram_client c;
	char out[BUF];
	size_t n;

	(void)state;
	scram_client_init(&c, "user", RFC_PASSWORD);
	assert_int_equal(scram_client_first(&c, 'n', NULL, 0, RFC_CNONCE, out, sizeof(out), &n),
			 SCRAM_OK);
	assert_int_equal(n, strlen(RFC_CFIRST));
	assert_string_equal(out, RFC_CFIRST);
	assert_int_equal(cli_final(&c, RFC_SFIRST, strlen(RFC_SFIRST), out, sizeof(out), &n),
			 SCRAM_OK);
	assert_int_equal(n, strlen(RFC_CFINAL));
	assert_string_equal(out, RFC_CFINAL);
	assert_int_equal(cli_verify(&c, RFC_SFINAL, strlen(RFC_SFINAL)), SCRAM_OK);
	assert_string_equal(scram_client_error(&c), "");
	scram_client_clear(&c);
}

/*
 * The same vector step by step, with the salted password computed by the
 * caller (as walgate does off its event loop), and each step out of turn.
 */
static void test_rfc7677_client_steps(void **state)
{
	struct scram_client c;
	uint8_t salted[SCRAM_KEY_LEN], wrong[SCRAM_KEY_LEN] = { 0 };
	char out[BUF];
	size_t n;

	(void)state;
	scram_client_init(&c, "user", NULL);
	assert_int_equal(scram_client_set_salted(&c, salted), SCRAM_ERR_STATE);
	assert_int_equal(scram_client_first(&c, 'n', NULL, 0, RFC_CNONCE, out, sizeof(out), &n),
			 SCRAM_OK);
	assert_false(scram_client_needs_salted(&c));
	assert_int_equal(scram_client_final_message(&c, out, sizeof(out), &n), SCRAM_ERR_STATE);
	assert_int_equal(scram_client_take_first(&c, RFC_SFIRST, strlen(RFC_SFIRST)), SCRAM_OK);
	assert_true(scram_client_needs_salted(&c));
	assert_int_equal(c.iterations, 4096);
	assert_int_equal(c.salt_len, 16);
	/* the verify step cannot come before the proof went out */
	assert_int_equal(scram_client_final_message(&c, out, sizeof(out), &n), SCRAM_ERR_STATE);
	assert_true(scram_salted_password(RFC_PASSWORD, c.salt, c.salt_len, c.iterations, salted));
	assert_int_equal(scram_client_set_salted(&c, salted), SCRAM_OK);
	assert_false(scram_client_needs_salted(&c));
	assert_int_equal(scram_client_set_salted(&c, salted), SCRAM_ERR_STATE);
	assert_int_equal(scram_client_final_message(&c, out, sizeof(out), &n), SCRAM_OK);
	assert_string_equal(out, RFC_CFINAL);
	assert_int_equal(cli_verify(&c, RFC_SFINAL, strlen(RFC_SFINAL)), SCRAM_OK);

	/* a wrong salted password: the proof is wrong, and so is the signature expected */
	scram_client_init(&c, "user", NULL);
	assert_int_equal(scram_client_first(&c, 'n', NULL, 0, RFC_CNONCE, out, sizeof(out), &n),
			 SCRAM_OK);
	assert_int_equal(scram_client_take_first(&c, RFC_SFIRST, strlen(RFC_SFIRST)), SCRAM_OK);
	assert_int_equal(scram_client_set_salted(&c, wrong), SCRAM_OK);
	assert_int_equal(scram_client_final_message(&c, out, sizeof(out), &n), SCRAM_OK);
	assert_string_not_equal(out, RFC_CFINAL);
	assert_int_equal(cli_verify(&c, RFC_SFINAL, strlen(RFC_SFINAL)), SCRAM_ERR_SERVER_SIGNATURE);

	/* bounds of the salted-password step itself */
	assert_false(scram_salted_password(NULL, c.salt, 16, 4096, salted));
	assert_false(scram_salted_password("pw", c.salt, 0, 4096, salted));
	assert_false(scram_salted_password("pw", c.salt, 16, 0, salted));
	assert_false(scram_salted_password("pw", c.salt, 16, SCRAM_MAX_ITERATIONS + 1, salted));
	scram_client_clear(&c);
}

/* ---- verifiers ---- */

static void test_rfc7677_verifier(void **state)
{
	struct scram_verifier v;
	char text[SCRAM_VERIFIER_TEXT_MAX];

	(void)state;
	assert_int_equal(scram_verifier_format(rfc_verifier(), text, sizeof(text)), SCRAM_OK);
	assert_string_equal(text, RFC_VERIFIER);
	assert_int_equal(scram_verifier_parse(RFC_VERIFIER, &v), SCRAM_OK);
	assert_memory_equal(&v, rfc_verifier(), sizeof(v));
	assert_false(v.mock);
}

static void test_pg15_verifier(void **state)
{
	struct scram_verifier parsed, derived;
	struct scram_server s;
	struct scram_client c;
	char text[SCRAM_VERIFIER_TEXT_MAX];

	(void)state;
	assert_int_equal(scram_verifier_parse(PG15_VERIFIER, &parsed), SCRAM_OK);
	assert_int_equal(parsed.iterations, 4096);
	assert_int_equal(parsed.salt_len, 16);
	assert_int_equal(scram_verifier_format(&parsed, text, sizeof(text)), SCRAM_OK);
	assert_string_equal(text, PG15_VERIFIER);

	/* the same password and salt give the very verifier PostgreSQL made */
	assert_int_equal(scram_verifier_from_password(PG15_PASSWORD, parsed.salt,
						      parsed.salt_len, 4096, &derived),
			 SCRAM_OK);
	assert_memory_equal(&derived, &parsed, sizeof(parsed));

	/* and a client knowing the password gets through */
	assert_int_equal(scram_server_init(&s, &parsed, false, NULL, 0), SCRAM_OK);
	scram_client_init(&c, NULL, PG15_PASSWORD);
	assert_int_equal(exchange(&s, &c, 'n', NULL, 0), SCRAM_OK);
}

static void test_verifier_parse_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"pencil",
		"md5a3556571e93b0d20722ba62be61e8c2d",
		"SCRAM-SHA-256$",
		"SCRAM-SHA-256$4096:" RFC_SALT,
		"SCRAM-SHA-256$4096:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
		"SCRAM-SHA-1$4096:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
			":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$0:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
			":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$-1:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
			":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096x:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
			":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$99999999999:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
			":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
			":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		/* empty salt, bad salt */
		"SCRAM-SHA-256$4096:$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
			":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:W22Z*J0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
			":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		/* StoredKey of 31 bytes, ServerKey of 33 */
		"SCRAM-SHA-256$4096:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4g=="
			":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
			":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dXX",
		/* trailing garbage */
		"SCRAM-SHA-256$4096:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
			":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=$",
		"SCRAM-SHA-256$4096:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
			":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU= ",
	};
	struct scram_verifier v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect(i, scram_verifier_parse(bad[i], &v), SCRAM_ERR_VERIFIER);
	assert_int_equal(scram_verifier_parse(NULL, &v), SCRAM_ERR_VERIFIER);
}

static void test_mock_verifier(void **state)
{
	static const uint8_t secret[] = "0123456789abcdef0123456789abcdef";
	static const uint8_t other[] = "fedcba9876543210fedcba9876543210";
	struct scram_verifier a, b, c, d, v;
	struct scram_server s;
	struct scram_client cl;

	(void)state;
	assert_int_equal(scram_mock_verifier("mallory", secret, 32, 4096, &a), SCRAM_OK);
	assert_int_equal(scram_mock_verifier("mallory", secret, 32, 4096, &b), SCRAM_OK);
	assert_int_equal(scram_mock_verifier("trudy", secret, 32, 4096, &c), SCRAM_OK);
	assert_int_equal(scram_mock_verifier("mallory", other, 32, 4096, &d), SCRAM_OK);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_true(a.mock);
	assert_int_equal(a.iterations, 4096);
	assert_int_equal(a.salt_len, SCRAM_SALT_LEN);
	assert_memory_not_equal(a.salt, c.salt, SCRAM_SALT_LEN);
	assert_memory_not_equal(a.salt, d.salt, SCRAM_SALT_LEN);
	assert_int_equal(scram_mock_verifier("x", secret, 0, 4096, &a), SCRAM_ERR_INVALID);
	assert_int_equal(scram_mock_verifier(NULL, secret, 32, 4096, &a), SCRAM_ERR_INVALID);
	assert_int_equal(scram_mock_verifier("x", secret, 32, 0, &a), SCRAM_ERR_INVALID);
	/* the iteration count real entries use, the salt the same whatever it is */
	assert_int_equal(scram_mock_verifier("mallory", secret, 32, 10000, &c), SCRAM_OK);
	assert_int_equal(c.iterations, 10000);
	assert_memory_equal(c.salt, b.salt, SCRAM_SALT_LEN);
	assert_int_equal(scram_mock_verifier("mallory", secret, 32, 4096, &a), SCRAM_OK);

	/* the exchange runs to the end and fails there, like a wrong password */
	assert_int_equal(scram_server_init(&s, &b, false, NULL, 0), SCRAM_OK);
	scram_client_init(&cl, NULL, "anything");
	assert_int_equal(exchange(&s, &cl, 'n', NULL, 0), SCRAM_ERR_PROOF);
	assert_null(scram_server_client_key(&s));

	/* even the right password cannot pass a verifier marked mock */
	v = *rfc_verifier();
	v.mock = true;
	assert_int_equal(scram_server_init(&s, &v, false, NULL, 0), SCRAM_OK);
	scram_client_init(&cl, NULL, RFC_PASSWORD);
	assert_int_equal(exchange(&s, &cl, 'n', NULL, 0), SCRAM_ERR_PROOF);
	assert_null(scram_server_client_key(&s));
}

/* ---- server and client together ---- */

static void test_exchange_flags(void **state)
{
	struct scram_server s;
	struct scram_client c;
	uint8_t ck[SCRAM_KEY_LEN];
	size_t n;

	(void)state;
	assert_true(scram_b64_decode(RFC_CLIENT_KEY, strlen(RFC_CLIENT_KEY), ck, sizeof(ck), &n));

	/* no TLS */
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
	scram_client_init(&c, NULL, RFC_PASSWORD);
	assert_int_equal(exchange(&s, &c, 'n', NULL, 0), SCRAM_OK);
	assert_int_equal(scram_server_cbind_flag(&s), 'n');
	assert_memory_equal(scram_server_client_key(&s), ck, SCRAM_KEY_LEN);

	/* TLS, client could bind, plain mechanism: the caller sees 'y' */
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, cbind32, 32), SCRAM_OK);
	scram_client_init(&c, NULL, RFC_PASSWORD);
	assert_int_equal(exchange(&s, &c, 'y', NULL, 0), SCRAM_OK);
	assert_int_equal(scram_server_cbind_flag(&s), 'y');

	/* SCRAM-SHA-256-PLUS with matching channel-binding data */
	assert_int_equal(scram_server_init(&s, rfc_verifier(), true, cbind32, 32), SCRAM_OK);
	scram_client_init(&c, NULL, RFC_PASSWORD);
	assert_int_equal(exchange(&s, &c, 'p', cbind32, 32), SCRAM_OK);
	assert_int_equal(scram_server_cbind_flag(&s), 'p');
	assert_memory_equal(scram_server_client_key(&s), ck, SCRAM_KEY_LEN);

	/* a 64-byte hash (SHA-512 certificate) */
	{
		uint8_t big[64];

		memset(big, 0xa5, sizeof(big));
		assert_int_equal(scram_server_init(&s, rfc_verifier(), true, big, 64), SCRAM_OK);
		scram_client_init(&c, NULL, RFC_PASSWORD);
		assert_int_equal(exchange(&s, &c, 'p', big, 64), SCRAM_OK);
	}
}

static void test_cbind_mismatch(void **state)
{
	uint8_t other[32], longer[48];
	struct scram_server s;
	struct scram_client c;

	(void)state;
	memcpy(other, cbind32, 32);
	other[31] ^= 1;
	memset(longer, 0, sizeof(longer));
	memcpy(longer, cbind32, 32);

	/* the client bound to another certificate: a relay in between */
	assert_int_equal(scram_server_init(&s, rfc_verifier(), true, cbind32, 32), SCRAM_OK);
	scram_client_init(&c, NULL, RFC_PASSWORD);
	assert_int_equal(exchange(&s, &c, 'p', other, 32), SCRAM_ERR_CBIND);
	assert_null(scram_server_client_key(&s));

	assert_int_equal(scram_server_init(&s, rfc_verifier(), true, cbind32, 32), SCRAM_OK);
	scram_client_init(&c, NULL, RFC_PASSWORD);
	assert_int_equal(exchange(&s, &c, 'p', longer, 48), SCRAM_ERR_CBIND);
	assert_int_equal(scram_server_init(&s, rfc_verifier(), true, longer, 48), SCRAM_OK);
	scram_client_init(&c, NULL, RFC_PASSWORD);
	assert_int_equal(exchange(&s, &c, 'p', cbind32, 32), SCRAM_ERR_CBIND);
}

static void test_cbind_negotiation(void **state)
{
	struct scram_server s;
	struct scram_client c;

	(void)state;
	/* PLUS named, no binding in the message */
	assert_int_equal(scram_server_init(&s, rfc_verifier(), true, cbind32, 32), SCRAM_OK);
	scram_client_init(&c, NULL, RFC_PASSWORD);
	assert_int_equal(exchange(&s, &c, 'n', NULL, 0), SCRAM_ERR_CBIND_NEGOTIATION);
	assert_int_equal(scram_server_init(&s, rfc_verifier(), true, cbind32, 32), SCRAM_OK);
	scram_client_init(&c, NULL, RFC_PASSWORD);
	assert_int_equal(exchange(&s, &c, 'y', NULL, 0), SCRAM_ERR_CBIND_NEGOTIATION);
	/* binding under the plain mechanism */
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, cbind32, 32), SCRAM_OK);
	scram_client_init(&c, NULL, RFC_PASSWORD);
	assert_int_equal(exchange(&s, &c, 'p', cbind32, 32), SCRAM_ERR_CBIND_NEGOTIATION);
	/* PLUS where walgate has nothing to bind to */
	assert_int_equal(scram_server_init(&s, rfc_verifier(), true, NULL, 0), SCRAM_OK);
	scram_client_init(&c, NULL, RFC_PASSWORD);
	assert_int_equal(exchange(&s, &c, 'p', cbind32, 32), SCRAM_ERR_CBIND_NEGOTIATION);
}

/* "c=" must repeat the first message's own header, not some other one. */
static void test_cbind_header_swapped(void **state)
{
	static const char first_y[] = "y,,n=,r=" RFC_CNONCE;
	static const char final_n[] = "c=biws,r=" RFC_NONCE ",p=" RFC_PROOF;
	static const char final_p[] = "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=" RFC_NONCE ",p=" RFC_PROOF;
	struct scram_server s;
	char out[BUF];
	size_t n;

	(void)state;
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
	assert_int_equal(srv_first(&s, first_y, strlen(first_y), out, sizeof(out), &n), SCRAM_OK);
	assert_int_equal(srv_final(&s, final_n, strlen(final_n), out, sizeof(out), &n),
			 SCRAM_ERR_CBIND);
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
	assert_int_equal(srv_first(&s, RFC_CFIRST, strlen(RFC_CFIRST), out, sizeof(out), &n),
			 SCRAM_OK);
	/* "p=tls-server-end-point,," without data, under an 'n' exchange */
	assert_int_equal(srv_final(&s, final_p, strlen(final_p), out, sizeof(out), &n),
			 SCRAM_ERR_CBIND);
}

static void test_wrong_password(void **state)
{
	struct scram_server s;
	struct scram_client c;
	char out[BUF];
	size_t n;

	(void)state;
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
	scram_client_init(&c, NULL, "pencil2");
	assert_int_equal(exchange(&s, &c, 'n', NULL, 0), SCRAM_ERR_PROOF);
	assert_null(scram_server_client_key(&s));
	/* failure is final */
	assert_int_equal(srv_final(&s, RFC_CFINAL, strlen(RFC_CFINAL), out, sizeof(out), &n),
			 SCRAM_ERR_STATE);

	/* one flipped bit of the RFC proof */
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
	assert_int_equal(srv_first(&s, RFC_CFIRST, strlen(RFC_CFIRST), out, sizeof(out), &n),
			 SCRAM_OK);
	{
		char bad[] = RFC_CFINAL;

		bad[strlen(bad) - 6] = 'B';	/* 'A' -> 'B' in "...AndVQ=" */
		assert_int_equal(srv_final(&s, bad, strlen(bad), out, sizeof(out), &n),
				 SCRAM_ERR_PROOF);
	}
}

/*
 * walgate's upstream login with the ClientKey it recovered from a client:
 * the same nonces give the same bytes as logging in with the password.
 */
static void test_client_key_login(void **state)
{
	struct scram_server s;
	struct scram_client pw, key;
	struct scram_verifier other;
	uint8_t ck[SCRAM_KEY_LEN];
	char a[BUF], b[BUF], sfirst[BUF];
	size_t alen, blen, sflen;

	(void)state;
	/* a client logs in to walgate; walgate keeps its ClientKey */
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
	scram_client_init(&pw, NULL, RFC_PASSWORD);
	assert_int_equal(exchange(&s, &pw, 'n', NULL, 0), SCRAM_OK);
	memcpy(ck, scram_server_client_key(&s), SCRAM_KEY_LEN);

	/* password login and key login, both against the same upstream messages */
	scram_client_init(&pw, NULL, RFC_PASSWORD);
	scram_client_init_key(&key, NULL, ck, rfc_verifier());
	assert_int_equal(scram_server_init(&s, rfc_verifier(), true, cbind32, 32), SCRAM_OK);
	assert_int_equal(scram_client_first(&pw, 'p', cbind32, 32, RFC_CNONCE, a, sizeof(a), &alen),
			 SCRAM_OK);
	assert_int_equal(scram_client_first(&key, 'p', cbind32, 32, RFC_CNONCE, b, sizeof(b), &blen),
			 SCRAM_OK);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);
	assert_int_equal(srv_first(&s, a, alen, sfirst, sizeof(sfirst), &sflen), SCRAM_OK);
	assert_int_equal(cli_final(&pw, sfirst, sflen, a, sizeof(a), &alen), SCRAM_OK);
	assert_int_equal(cli_final(&key, sfirst, sflen, b, sizeof(b), &blen), SCRAM_OK);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);
	assert_int_equal(srv_final(&s, b, blen, a, sizeof(a), &alen), SCRAM_OK);
	assert_int_equal(cli_verify(&key, a, alen), SCRAM_OK);
	assert_int_equal(cli_verify(&pw, a, alen), SCRAM_OK);

	/* without the verifier the key still logs in, but cannot check the server */
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
	scram_client_init_key(&key, NULL, ck, NULL);
	assert_int_equal(exchange(&s, &key, 'n', NULL, 0), SCRAM_UNVERIFIED);
	assert_non_null(scram_server_client_key(&s));

	/* an upstream with another salt, or another count, cannot take this key */
	other = *rfc_verifier();
	other.salt[0] ^= 1;
	assert_int_equal(scram_server_init(&s, &other, false, NULL, 0), SCRAM_OK);
	scram_client_init_key(&key, NULL, ck, rfc_verifier());
	assert_int_equal(exchange(&s, &key, 'n', NULL, 0), SCRAM_ERR_KEY_MISMATCH);
	other = *rfc_verifier();
	other.iterations = 4097;
	assert_int_equal(scram_server_init(&s, &other, false, NULL, 0), SCRAM_OK);
	scram_client_init_key(&key, NULL, ck, rfc_verifier());
	assert_int_equal(exchange(&s, &key, 'n', NULL, 0), SCRAM_ERR_KEY_MISMATCH);

	/* a wrong key is refused by the server, not by the client */
	ck[0] ^= 1;
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
	scram_client_init_key(&key, NULL, ck, rfc_verifier());
	assert_int_equal(exchange(&s, &key, 'n', NULL, 0), SCRAM_ERR_PROOF);
}

/* The user name of the client-first-message is escaped, and ignored by the server. */
static void test_saslname(void **state)
{
	struct scram_server s;
	struct scram_client c;
	char out[BUF];
	size_t n;

	(void)state;
	scram_client_init(&c, "a,b=c", RFC_PASSWORD);
	assert_int_equal(scram_client_first(&c, 'n', NULL, 0, RFC_CNONCE, out, sizeof(out), &n),
			 SCRAM_OK);
	assert_string_equal(out, "n,,n=a=2Cb=3Dc,r=" RFC_CNONCE);
	scram_client_init(&c, NULL, RFC_PASSWORD);
	assert_int_equal(scram_client_first(&c, 'n', NULL, 0, RFC_CNONCE, out, sizeof(out), &n),
			 SCRAM_OK);
	assert_string_equal(out, "n,,n=,r=" RFC_CNONCE);

	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
	scram_client_init(&c, "a,b=c", RFC_PASSWORD);
	assert_int_equal(exchange(&s, &c, 'n', NULL, 0), SCRAM_OK);
}

/* ---- malformed client messages, server side ---- */

static void test_client_first_malformed(void **state)
{
	static const struct bad_msg cases[] = {
		BAD("", SCRAM_ERR_MALFORMED),
		BAD("x,,n=,r=abc", SCRAM_ERR_MALFORMED),
		BAD("n", SCRAM_ERR_MALFORMED),
		BAD("n,", SCRAM_ERR_MALFORMED),
		BAD("n,n=,r=abc", SCRAM_ERR_MALFORMED),
		BAD("N,,n=,r=abc", SCRAM_ERR_MALFORMED),
		BAD("n,a=bob,n=,r=abc", SCRAM_ERR_AUTHZID),
		BAD("y,a=bob,n=,r=abc", SCRAM_ERR_AUTHZID),
		BAD("p=tls-unique,,n=,r=abc", SCRAM_ERR_CBIND_TYPE),
		BAD("p=tls-server-end-point", SCRAM_ERR_MALFORMED),
		BAD("p=tls-server-end-point,n=,r=abc", SCRAM_ERR_MALFORMED),
		BAD("p,,n=,r=abc", SCRAM_ERR_MALFORMED),
		BAD("n,,m=foo,n=,r=abc", SCRAM_ERR_EXTENSION),
		BAD("n,,n=,r=abc,x=1", SCRAM_ERR_EXTENSION),
		BAD("n,,n=,r=abc,m=1", SCRAM_ERR_EXTENSION),
		BAD("n,,n=,r=abc,", SCRAM_ERR_MALFORMED),
		BAD("n,,n=,r=abc,,", SCRAM_ERR_MALFORMED),
		BAD("n,,r=abc,n=", SCRAM_ERR_MALFORMED),
		BAD("n,,r=abc", SCRAM_ERR_MALFORMED),
		BAD("n,,n=", SCRAM_ERR_MALFORMED),
		BAD("n,,n=,", SCRAM_ERR_MALFORMED),
		BAD("n,,n=,r", SCRAM_ERR_MALFORMED),
		BAD("n,,n=,r=", SCRAM_ERR_NONCE),
		BAD("n,,n=,r=ab c", SCRAM_ERR_NONCE),
		BAD("n,,n=,r=ab\x7f", SCRAM_ERR_NONCE),
		BAD("n,,n=,r=ab\x01", SCRAM_ERR_NONCE),
		BAD("n,,n=,r=ab\xc3\xa9", SCRAM_ERR_NONCE),
		BAD("n,,n=,r=ab\0cd", SCRAM_ERR_MALFORMED),
		BAD("n,,n=\0,r=abcd", SCRAM_ERR_MALFORMED),
		BAD("\0", SCRAM_ERR_MALFORMED),
	};
	struct scram_server s;
	char out[BUF], big[SCRAM_MSG_MAX + 2];
	size_t i, n, len;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
		expect(i, srv_first(&s, cases[i].msg, cases[i].len, out, sizeof(out), &n),
		       cases[i].want);
		assert_int_equal(srv_final(&s, RFC_CFINAL, strlen(RFC_CFINAL), out, sizeof(out), &n),
				 SCRAM_ERR_STATE);
	}
	/* every cut before the nonce has begun */
	for (len = 0; len <= strlen("n,,n=user,r="); len++) {
		assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
		assert_int_not_equal(srv_first(&s, RFC_CFIRST, len, out, sizeof(out), &n), SCRAM_OK);
	}
	/* the longest message accepted, and one byte more */
	memcpy(big, "n,,n=,r=", 8);
	memset(big + 8, 'x', sizeof(big) - 8);
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
	assert_int_equal(srv_first(&s, big, SCRAM_MSG_MAX, out, sizeof(out), &n), SCRAM_OK);
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
	assert_int_equal(srv_first(&s, big, SCRAM_MSG_MAX + 1, out, sizeof(out), &n),
			 SCRAM_ERR_TOO_LONG);
}

static void test_client_final_malformed(void **state)
{
	static const struct bad_msg cases[] = {
		BAD("", SCRAM_ERR_MALFORMED),
		BAD("r=" RFC_NONCE ",c=biws,p=" RFC_PROOF, SCRAM_ERR_MALFORMED),
		BAD("c=biws,p=" RFC_PROOF ",r=" RFC_NONCE, SCRAM_ERR_MALFORMED),
		BAD("c=biws,r=" RFC_NONCE, SCRAM_ERR_MALFORMED),
		BAD("c=biws,r=" RFC_NONCE ",", SCRAM_ERR_MALFORMED),
		BAD("c=biws,r=" RFC_NONCE ",p=", SCRAM_ERR_MALFORMED),
		BAD("c=biws", SCRAM_ERR_MALFORMED),
		BAD("c=biws,", SCRAM_ERR_MALFORMED),
		BAD("c=biws,r=" RFC_NONCE ",m=x,p=" RFC_PROOF, SCRAM_ERR_EXTENSION),
		BAD("c=biws,r=" RFC_NONCE ",x=y,p=" RFC_PROOF, SCRAM_ERR_EXTENSION),
		BAD("c=biws,r=" RFC_NONCE ",p=" RFC_PROOF ",x=y", SCRAM_ERR_MALFORMED),
		BAD("c=biws,r=" RFC_NONCE ",p=" RFC_PROOF "A", SCRAM_ERR_MALFORMED),
		BAD("c=bi*s,r=" RFC_NONCE ",p=" RFC_PROOF, SCRAM_ERR_MALFORMED),
		BAD("c=biw,r=" RFC_NONCE ",p=" RFC_PROOF, SCRAM_ERR_MALFORMED),
		BAD("c=eSws,r=" RFC_NONCE ",p=" RFC_PROOF, SCRAM_ERR_CBIND),
		BAD("c=,r=" RFC_NONCE ",p=" RFC_PROOF, SCRAM_ERR_CBIND),
		BAD("c=biws,r=" RFC_CNONCE ",p=" RFC_PROOF, SCRAM_ERR_NONCE),
		BAD("c=biws,r=" RFC_NONCE "X,p=" RFC_PROOF, SCRAM_ERR_NONCE),
		BAD("c=biws,r=,p=" RFC_PROOF, SCRAM_ERR_NONCE),
		BAD("c=biws,r=" RFC_NONCE ",p=dHzb!apWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		    SCRAM_ERR_MALFORMED),
		/* 31 and 33 bytes */
		BAD("c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndQ==",
		    SCRAM_ERR_MALFORMED),
		BAD("c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQA",
		    SCRAM_ERR_MALFORMED),
		/* non-zero bits under the padding */
		BAD("c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVR=",
		    SCRAM_ERR_MALFORMED),
		BAD("c=biws,r=" RFC_NONCE ",p=" RFC_PROOF "\0", SCRAM_ERR_MALFORMED),
		BAD("c=biws\0,r=" RFC_NONCE ",p=" RFC_PROOF, SCRAM_ERR_MALFORMED),
	};
	struct scram_server s;
	char out[BUF];
	size_t i, n, len;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
		assert_int_equal(srv_first(&s, RFC_CFIRST, strlen(RFC_CFIRST), out, sizeof(out), &n),
				 SCRAM_OK);
		expect(i, srv_final(&s, cases[i].msg, cases[i].len, out, sizeof(out), &n),
		       cases[i].want);
		assert_null(scram_server_client_key(&s));
	}
	/* every truncation of the real message */
	for (len = 0; len < strlen(RFC_CFINAL); len++) {
		assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
		assert_int_equal(srv_first(&s, RFC_CFIRST, strlen(RFC_CFIRST), out, sizeof(out), &n),
				 SCRAM_OK);
		assert_int_not_equal(srv_final(&s, RFC_CFINAL, len, out, sizeof(out), &n), SCRAM_OK);
	}
}

/* ---- malformed server messages, client side ---- */

/* A ClientKey login: no PBKDF2, so huge iteration counts cost nothing here. */
static void key_client_at_first(struct scram_client *c)
{
	uint8_t ck[SCRAM_KEY_LEN];
	char out[BUF];
	size_t n;

	assert_true(scram_b64_decode(RFC_CLIENT_KEY, strlen(RFC_CLIENT_KEY), ck, sizeof(ck), &n));
	scram_client_init_key(c, "user", ck, NULL);
	assert_int_equal(scram_client_first(c, 'n', NULL, 0, RFC_CNONCE, out, sizeof(out), &n),
			 SCRAM_OK);
}

static void test_server_first_malformed(void **state)
{
	static const struct bad_msg cases[] = {
		BAD("", SCRAM_ERR_MALFORMED),
		BAD("r=" RFC_NONCE ",s=" RFC_SALT ",i=0", SCRAM_ERR_ITERATIONS),
		BAD("r=" RFC_NONCE ",s=" RFC_SALT ",i=1048577", SCRAM_ERR_ITERATIONS),
		BAD("r=" RFC_NONCE ",s=" RFC_SALT ",i=2147483648", SCRAM_ERR_ITERATIONS),
		BAD("r=" RFC_NONCE ",s=" RFC_SALT ",i=99999999999999999999999999999",
		    SCRAM_ERR_ITERATIONS),
		BAD("r=" RFC_NONCE ",s=" RFC_SALT ",i=-1", SCRAM_ERR_MALFORMED),
		BAD("r=" RFC_NONCE ",s=" RFC_SALT ",i=+4096", SCRAM_ERR_MALFORMED),
		BAD("r=" RFC_NONCE ",s=" RFC_SALT ",i=04096", SCRAM_ERR_MALFORMED),
		BAD("r=" RFC_NONCE ",s=" RFC_SALT ",i=4096x", SCRAM_ERR_MALFORMED),
		BAD("r=" RFC_NONCE ",s=" RFC_SALT ",i= 4096", SCRAM_ERR_MALFORMED),
		BAD("r=" RFC_NONCE ",s=" RFC_SALT ",i=", SCRAM_ERR_MALFORMED),
		BAD("r=" RFC_NONCE ",s=" RFC_SALT, SCRAM_ERR_MALFORMED),
		BAD("r=" RFC_NONCE ",i=4096,s=" RFC_SALT, SCRAM_ERR_MALFORMED),
		BAD("s=" RFC_SALT ",r=" RFC_NONCE ",i=4096", SCRAM_ERR_MALFORMED),
		BAD("r=" RFC_NONCE ",i=4096", SCRAM_ERR_MALFORMED),
		BAD("m=x,r=" RFC_NONCE ",s=" RFC_SALT ",i=4096", SCRAM_ERR_EXTENSION),
		BAD("r=" RFC_NONCE ",s=" RFC_SALT ",i=4096,x=1", SCRAM_ERR_EXTENSION),
		BAD("r=" RFC_NONCE ",s=" RFC_SALT ",i=4096,", SCRAM_ERR_MALFORMED),
		BAD("r=" RFC_NONCE ",s=,i=4096", SCRAM_ERR_MALFORMED),
		BAD("r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096", SCRAM_ERR_MALFORMED),
		BAD("r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6g*==,i=4096", SCRAM_ERR_MALFORMED),
		/* a 66-byte salt, over SCRAM_SALT_MAX */
		BAD("r=" RFC_NONCE ",s=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,i=4096",
		    SCRAM_ERR_MALFORMED),
		/* the server must extend our nonce, printably */
		BAD("r=" RFC_CNONCE ",s=" RFC_SALT ",i=4096", SCRAM_ERR_NONCE),
		BAD("r=rOprNGfwEbeRWgbNEkqX" RFC_SNONCE ",s=" RFC_SALT ",i=4096", SCRAM_ERR_NONCE),
		BAD("r=rOpr,s=" RFC_SALT ",i=4096", SCRAM_ERR_NONCE),
		BAD("r=" RFC_CNONCE "a b,s=" RFC_SALT ",i=4096", SCRAM_ERR_NONCE),
		BAD("r=,s=" RFC_SALT ",i=4096", SCRAM_ERR_NONCE),
		BAD("r=" RFC_NONCE "\0,s=" RFC_SALT ",i=4096", SCRAM_ERR_MALFORMED),
		BAD("e=other-error", SCRAM_ERR_MALFORMED),
	};
	static const char ok_max[] = "r=" RFC_NONCE ",s=" RFC_SALT ",i=1048576";
	struct scram_client c;
	char out[BUF], big[SCRAM_MSG_MAX + 1];
	size_t i, n, len;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		key_client_at_first(&c);
		expect(i, cli_final(&c, cases[i].msg, cases[i].len, out, sizeof(out), &n),
		       cases[i].want);
		assert_int_equal(cli_verify(&c, RFC_SFINAL, strlen(RFC_SFINAL)), SCRAM_ERR_STATE);
	}
	key_client_at_first(&c);
	assert_int_equal(cli_final(&c, ok_max, strlen(ok_max), out, sizeof(out), &n), SCRAM_OK);
	/* every cut up to and including "i=" */
	for (len = 0; len <= strlen(RFC_SFIRST) - 4; len++) {
		key_client_at_first(&c);
		assert_int_not_equal(cli_final(&c, RFC_SFIRST, len, out, sizeof(out), &n), SCRAM_OK);
	}
	memset(big, 'x', sizeof(big));
	key_client_at_first(&c);
	assert_int_equal(cli_final(&c, big, sizeof(big), out, sizeof(out), &n), SCRAM_ERR_TOO_LONG);
}

static void client_at_final(struct scram_client *c)
{
	char out[BUF];
	size_t n;

	scram_client_init(c, "user", RFC_PASSWORD);
	assert_int_equal(scram_client_first(c, 'n', NULL, 0, RFC_CNONCE, out, sizeof(out), &n),
			 SCRAM_OK);
	assert_int_equal(cli_final(c, RFC_SFIRST, strlen(RFC_SFIRST), out, sizeof(out), &n),
			 SCRAM_OK);
}

static void test_server_final_malformed(void **state)
{
	static const struct bad_msg cases[] = {
		BAD("", SCRAM_ERR_MALFORMED),
		BAD("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=", SCRAM_ERR_MALFORMED),
		BAD("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G8=", SCRAM_ERR_SERVER_SIGNATURE),
		BAD("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", SCRAM_ERR_SERVER_SIGNATURE),
		BAD("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=1", SCRAM_ERR_EXTENSION),
		BAD("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,", SCRAM_ERR_MALFORMED),
		BAD("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4", SCRAM_ERR_MALFORMED),
		BAD("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=\0", SCRAM_ERR_MALFORMED),
		BAD("v=", SCRAM_ERR_MALFORMED),
		BAD("v", SCRAM_ERR_MALFORMED),
		BAD("m=1,v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", SCRAM_ERR_EXTENSION),
		BAD("x=1", SCRAM_ERR_MALFORMED),
		BAD("e=invalid-proof", SCRAM_ERR_SERVER_ERROR),
	};
	struct scram_client c;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		client_at_final(&c);
		expect(i, cli_verify(&c, cases[i].msg, cases[i].len), cases[i].want);
		assert_int_equal(cli_verify(&c, RFC_SFINAL, strlen(RFC_SFINAL)), SCRAM_ERR_STATE);
	}
	client_at_final(&c);
	assert_int_equal(cli_verify(&c, "e=invalid-proof", 15), SCRAM_ERR_SERVER_ERROR);
	assert_string_equal(scram_client_error(&c), "invalid-proof");
	client_at_final(&c);
	assert_int_equal(cli_verify(&c, "e=bad\x01\xff,x=1", 11), SCRAM_ERR_SERVER_ERROR);
	assert_string_equal(scram_client_error(&c), "bad??");
}

/* ---- the API's own rules ---- */

static void test_state_order(void **state)
{
	struct scram_server s;
	struct scram_client c;
	char out[BUF];
	size_t n;

	(void)state;
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
	assert_int_equal(scram_server_cbind_flag(&s), 0);
	assert_int_equal(srv_final(&s, RFC_CFINAL, strlen(RFC_CFINAL), out, sizeof(out), &n),
			 SCRAM_ERR_STATE);
	assert_int_equal(srv_first(&s, RFC_CFIRST, strlen(RFC_CFIRST), out, sizeof(out), &n),
			 SCRAM_OK);
	assert_int_equal(srv_first(&s, RFC_CFIRST, strlen(RFC_CFIRST), out, sizeof(out), &n),
			 SCRAM_ERR_STATE);
	assert_null(scram_server_client_key(&s));

	scram_client_init(&c, NULL, RFC_PASSWORD);
	assert_int_equal(cli_final(&c, RFC_SFIRST, strlen(RFC_SFIRST), out, sizeof(out), &n),
			 SCRAM_ERR_STATE);
	assert_int_equal(cli_verify(&c, RFC_SFINAL, strlen(RFC_SFINAL)), SCRAM_ERR_STATE);
	assert_int_equal(scram_client_first(&c, 'n', NULL, 0, RFC_CNONCE, out, sizeof(out), &n),
			 SCRAM_OK);
	assert_int_equal(scram_client_first(&c, 'n', NULL, 0, RFC_CNONCE, out, sizeof(out), &n),
			 SCRAM_ERR_STATE);
	assert_int_equal(cli_verify(&c, RFC_SFINAL, strlen(RFC_SFINAL)), SCRAM_ERR_STATE);
}

static void test_buffers(void **state)
{
	struct scram_server s;
	struct scram_client c;
	char out[BUF], text[SCRAM_VERIFIER_TEXT_MAX];
	size_t n;

	(void)state;
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
	assert_int_equal(srv_first(&s, RFC_CFIRST, strlen(RFC_CFIRST), out, strlen(RFC_SFIRST), &n),
			 SCRAM_ERR_BUFFER);
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
	assert_int_equal(srv_first(&s, RFC_CFIRST, strlen(RFC_CFIRST), out,
				   strlen(RFC_SFIRST) + 1, &n), SCRAM_OK);
	assert_int_equal(srv_final(&s, RFC_CFINAL, strlen(RFC_CFINAL), out, strlen(RFC_SFINAL), &n),
			 SCRAM_ERR_BUFFER);
	assert_null(scram_server_client_key(&s));

	scram_client_init(&c, "user", RFC_PASSWORD);
	assert_int_equal(scram_client_first(&c, 'n', NULL, 0, RFC_CNONCE, out, strlen(RFC_CFIRST), &n),
			 SCRAM_ERR_BUFFER);
	scram_client_init(&c, "user", RFC_PASSWORD);
	assert_int_equal(scram_client_first(&c, 'n', NULL, 0, RFC_CNONCE, out,
					    strlen(RFC_CFIRST) + 1, &n), SCRAM_OK);
	assert_int_equal(cli_final(&c, RFC_SFIRST, strlen(RFC_SFIRST), out, strlen(RFC_CFINAL), &n),
			 SCRAM_ERR_BUFFER);

	assert_int_equal(scram_verifier_format(rfc_verifier(), text, strlen(RFC_VERIFIER)),
			 SCRAM_ERR_BUFFER);
	assert_int_equal(scram_verifier_format(rfc_verifier(), text, strlen(RFC_VERIFIER) + 1),
			 SCRAM_OK);
}

static void test_invalid_args(void **state)
{
	static const uint8_t salt[16];
	uint8_t toolong[SCRAM_CBIND_MAX + 1];
	struct scram_verifier v;
	struct scram_server s;
	struct scram_client c;
	char out[BUF], nonce65[66];
	size_t n;

	(void)state;
	memset(toolong, 1, sizeof(toolong));
	memset(nonce65, 'a', 65);
	nonce65[65] = '\0';
	assert_int_equal(scram_server_init(&s, rfc_verifier(), true, toolong, sizeof(toolong)),
			 SCRAM_ERR_INVALID);
	assert_int_equal(scram_server_init(&s, NULL, false, NULL, 0), SCRAM_ERR_INVALID);
	assert_int_equal(scram_server_init(&s, rfc_verifier(), true, NULL, 5), SCRAM_ERR_INVALID);
	assert_int_equal(srv_first(&s, RFC_CFIRST, strlen(RFC_CFIRST), out, sizeof(out), &n),
			 SCRAM_ERR_STATE);

	/* walgate's own nonce: printable, no comma, 1..SCRAM_NONCE_MAX */
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
	assert_int_equal(scram_server_first(&s, RFC_CFIRST, strlen(RFC_CFIRST), "a,b",
					    out, sizeof(out), &n), SCRAM_ERR_INVALID);
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
	assert_int_equal(scram_server_first(&s, RFC_CFIRST, strlen(RFC_CFIRST), "",
					    out, sizeof(out), &n), SCRAM_ERR_INVALID);
	assert_int_equal(scram_server_init(&s, rfc_verifier(), false, NULL, 0), SCRAM_OK);
	assert_int_equal(scram_server_first(&s, RFC_CFIRST, strlen(RFC_CFIRST), nonce65,
					    out, sizeof(out), &n), SCRAM_ERR_INVALID);

	scram_client_init(&c, NULL, RFC_PASSWORD);
	assert_int_equal(scram_client_first(&c, 'x', NULL, 0, RFC_CNONCE, out, sizeof(out), &n),
			 SCRAM_ERR_INVALID);
	assert_int_equal(scram_client_first(&c, 'p', NULL, 0, RFC_CNONCE, out, sizeof(out), &n),
			 SCRAM_ERR_INVALID);
	assert_int_equal(scram_client_first(&c, 'n', cbind32, 32, RFC_CNONCE, out, sizeof(out), &n),
			 SCRAM_ERR_INVALID);
	assert_int_equal(scram_client_first(&c, 'p', toolong, sizeof(toolong), RFC_CNONCE,
					    out, sizeof(out), &n), SCRAM_ERR_INVALID);
	assert_int_equal(scram_client_first(&c, 'n', NULL, 0, "a b", out, sizeof(out), &n),
			 SCRAM_ERR_INVALID);
	assert_int_equal(scram_client_first(&c, 'n', NULL, 0, NULL, out, sizeof(out), &n),
			 SCRAM_ERR_INVALID);
	/* no password: the caller must set the salted password; all at once cannot */
	scram_client_init(&c, NULL, NULL);
	assert_int_equal(scram_client_first(&c, 'n', NULL, 0, RFC_CNONCE, out, sizeof(out), &n),
			 SCRAM_OK);
	assert_int_equal(cli_final(&c, RFC_SFIRST, strlen(RFC_SFIRST), out, sizeof(out), &n),
			 SCRAM_ERR_INVALID);
	assert_int_equal(scram_client_final_message(&c, out, sizeof(out), &n), SCRAM_ERR_STATE);

	assert_int_equal(scram_verifier_from_password("", salt, 16, 4096, &v), SCRAM_ERR_INVALID);
	assert_int_equal(scram_verifier_from_password(NULL, salt, 16, 4096, &v), SCRAM_ERR_INVALID);
	assert_int_equal(scram_verifier_from_password("pw", salt, 0, 4096, &v), SCRAM_ERR_INVALID);
	assert_int_equal(scram_verifier_from_password("pw", salt, 16, 0, &v), SCRAM_ERR_INVALID);
	assert_int_equal(scram_verifier_from_password("pw", salt, 16, SCRAM_MAX_ITERATIONS + 1, &v),
			 SCRAM_ERR_INVALID);
	assert_int_equal(scram_verifier_from_password("pw", salt, SCRAM_SALT_MAX + 1, 4096, &v),
			 SCRAM_ERR_INVALID);
}

static void test_randomness(void **state)
{
	char a[SCRAM_NONCE_LEN + 1], b[SCRAM_NONCE_LEN + 1];
	uint8_t s1[SCRAM_SALT_LEN], s2[SCRAM_SALT_LEN];
	struct scram_verifier v;
	char text[SCRAM_VERIFIER_TEXT_MAX];
	size_t i;

	(void)state;
	assert_int_equal(scram_make_nonce(a), SCRAM_OK);
	assert_int_equal(scram_make_nonce(b), SCRAM_OK);
	assert_int_equal(strlen(a), SCRAM_NONCE_LEN);
	for (i = 0; i < SCRAM_NONCE_LEN; i++)
		assert_true(a[i] > 0x20 && a[i] < 0x7f && a[i] != ',');
	assert_string_not_equal(a, b);
	assert_int_equal(scram_make_salt(s1), SCRAM_OK);
	assert_int_equal(scram_make_salt(s2), SCRAM_OK);
	assert_memory_not_equal(s1, s2, SCRAM_SALT_LEN);

	/* what walgate does with a plaintext password at load time */
	assert_int_equal(scram_verifier_from_password("secret", s1, sizeof(s1),
						      SCRAM_DEFAULT_ITERATIONS, &v), SCRAM_OK);
	assert_int_equal(scram_verifier_format(&v, text, sizeof(text)), SCRAM_OK);
	assert_int_equal(strncmp(text, "SCRAM-SHA-256$4096:", 19), 0);
}

static void test_result_str(void **state)
{
	int r;

	(void)state;
	for (r = SCRAM_OK; r <= SCRAM_ERR_VERIFIER; r++)
		assert_string_not_equal(scram_result_str((enum scram_result)r), "unknown SCRAM result");
	assert_string_equal(scram_result_str((enum scram_result)999), "unknown SCRAM result");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64_vectors),
		cmocka_unit_test(test_b64_strict),
		cmocka_unit_test(test_rfc7677_server),
		cmocka_unit_test(test_rfc7677_client),
		cmocka_unit_test(test_rfc7677_client_steps),
		cmocka_unit_test(test_rfc7677_verifier),
		cmocka_unit_test(test_pg15_verifier),
		cmocka_unit_test(test_verifier_parse_bad),
		cmocka_unit_test(test_mock_verifier),
		cmocka_unit_test(test_exchange_flags),
		cmocka_unit_test(test_cbind_mismatch),
		cmocka_unit_test(test_cbind_negotiation),
		cmocka_unit_test(test_cbind_header_swapped),
		cmocka_unit_test(test_wrong_password),
		cmocka_unit_test(test_client_key_login),
		cmocka_unit_test(test_saslname),
		cmocka_unit_test(test_client_first_malformed),
		cmocka_unit_test(test_client_final_malformed),
		cmocka_unit_test(test_server_first_malformed),
		cmocka_unit_test(test_server_final_malformed),
		cmocka_unit_test(test_state_order),
		cmocka_unit_test(test_buffers),
		cmocka_unit_test(test_invalid_args),
		cmocka_unit_test(test_randomness),
		cmocka_unit_test(test_result_str),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

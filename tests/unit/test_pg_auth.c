/*
 * test_pg_auth.c - the Authentication messages of protocol/pg_auth.c with
 * byte vectors: reading the request code, removing a SASL mechanism from
 * the server's offer, every builder's exact output (and its capacity
 * check), and the parsers of SASLInitialResponse, SASLResponse and
 * AuthenticationSASLContinue/Final on valid, truncated and inconsistent
 * input.
 *
 * Every message handed to a function is first copied into a heap block of
 * exactly its length, so that AddressSanitizer catches a read past len.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/pg_auth.h"

/* A byte vector written as a string literal: pointer and length (no final NUL). */
#define V(s)	((const uint8_t *)(s)), (sizeof(s) - 1)

#define PLUS	"SCRAM-SHA-256-PLUS"
#define PLAIN	"SCRAM-SHA-256"

/* AuthenticationSASL offering SCRAM-SHA-256-PLUS, SCRAM-SHA-256: 43 bytes. */
#define SASL_BOTH	"R\0\0\0\x2a" "\0\0\0\x0a" PLUS "\0" PLAIN "\0" "\0"
/* The same without SCRAM-SHA-256-PLUS: 24 bytes. */
#define SASL_PLAIN	"R\0\0\0\x17" "\0\0\0\x0a" PLAIN "\0" "\0"
/* The same without SCRAM-SHA-256: 29 bytes. */
#define SASL_PLUS	"R\0\0\0\x1c" "\0\0\0\x0a" PLUS "\0" "\0"

static uint8_t *dup_exact(const uint8_t *msg, size_t len)
{
	uint8_t *p = malloc(len > 0 ? len : 1);

	assert_non_null(p);
	memcpy(p, msg, len);
	return p;
}

static int code_of(const uint8_t *msg, size_t len)
{
	uint8_t *m = dup_exact(msg, len);
	int r = pg_auth_code(m, len);

	free(m);
	return r;
}

/* pg_auth_sasl_without on an exact copy; out gets cap bytes of the heap too. */
static size_t without(const uint8_t *msg, size_t len, const char *mech, uint8_t *out, size_t cap)
{
	uint8_t *m = dup_exact(msg, len);
	uint8_t *o = malloc(cap > 0 ? cap : 1);
	size_t n;

	assert_non_null(o);
	memset(o, 0xAA, cap);
	n = pg_auth_sasl_without(m, len, mech, o, cap);
	if (n > 0) {
		assert_true(n <= cap);
		memcpy(out, o, n);
	}
	free(o);
	free(m);
	return n;
}

static void assert_bytes(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len)
{
	assert_int_equal(got_len, want_len);
	assert_memory_equal(got, want, want_len);
}

/* ---- pg_auth_code ---- */

static void test_code_valid(void **state)
{
	(void)state;
	assert_int_equal(code_of(V("R\0\0\0\x08" "\0\0\0\0")), PG_AUTH_OK);
	assert_int_equal(code_of(V("R\0\0\0\x08" "\0\0\0\x03")), PG_AUTH_CLEARTEXT_PASSWORD);
	assert_int_equal(code_of(V("R\0\0\0\x0c" "\0\0\0\x05" "\x01\x02\x03\x04")),
			 PG_AUTH_MD5_PASSWORD);
	assert_int_equal(code_of(V(SASL_BOTH)), PG_AUTH_SASL);
	assert_int_equal(code_of(V("R\0\0\0\x0d" "\0\0\0\x0b" "r=abc")), PG_AUTH_SASL_CONTINUE);
	assert_int_equal(code_of(V("R\0\0\0\x0d" "\0\0\0\x0c" "v=abc")), PG_AUTH_SASL_FINAL);
	/* codes walgate does not answer are still read (GSS = 7, SSPI = 9) */
	assert_int_equal(code_of(V("R\0\0\0\x08" "\0\0\0\x07")), 7);
	assert_int_equal(code_of(V("R\0\0\0\x08" "\0\0\0\x09")), 9);
}

static void test_code_invalid(void **state)
{
	(void)state;
	/* not an Authentication message */
	assert_int_equal(code_of(V("E\0\0\0\x08" "\0\0\0\0")), -1);
	assert_int_equal(code_of(V("p\0\0\0\x08" "\0\0\0\0")), -1);
	/* too short for a code */
	assert_int_equal(code_of(V("R\0\0\0\x07" "\0\0\0")), -1);
	assert_int_equal(code_of(V("R\0\0\0\x04")), -1);
	assert_int_equal(code_of(V("R")), -1);
	assert_int_equal(code_of((const uint8_t *)"", 0), -1);
	/* the length word disagrees with the bytes given */
	assert_int_equal(code_of(V("R\0\0\0\x09" "\0\0\0\0")), -1);
	assert_int_equal(code_of(V("R\0\0\0\x07" "\0\0\0\0")), -1);
	assert_int_equal(code_of(V("R\0\0\0\x08" "\0\0\0\0" "X")), -1);
	assert_int_equal(code_of(V("R\x01\0\0\x08" "\0\0\0\0")), -1);
}

/* ---- pg_auth_sasl_without ---- */

static void test_without_plus(void **state)
{
	uint8_t out[64];
	size_t n;

	(void)state;
	n = without(V(SASL_BOTH), PLUS, out, sizeof(out));
	assert_bytes(out, n, V(SASL_PLAIN));
	/* exactly enough room */
	n = without(V(SASL_BOTH), PLUS, out, sizeof(SASL_PLAIN) - 1);
	assert_bytes(out, n, V(SASL_PLAIN));
	/* one byte short */
	assert_int_equal(without(V(SASL_BOTH), PLUS, out, sizeof(SASL_PLAIN) - 2), 0);
	/* and the result is itself a well-formed AuthenticationSASL */
	assert_int_equal(code_of(out, sizeof(SASL_PLAIN) - 1), PG_AUTH_SASL);
}

static void test_without_plain_keeps_plus(void **state)
{
	uint8_t out[64];
	size_t n;

	(void)state;
	/* "SCRAM-SHA-256" is a prefix of "SCRAM-SHA-256-PLUS": only the exact name goes */
	n = without(V(SASL_BOTH), PLAIN, out, sizeof(out));
	assert_bytes(out, n, V(SASL_PLUS));
}

static void test_without_absent_is_identical(void **state)
{
	uint8_t out[64];
	size_t n;

	(void)state;
	n = without(V(SASL_BOTH), "SCRAM-SHA-512", out, sizeof(out));
	assert_bytes(out, n, V(SASL_BOTH));
	/* a prefix of a name is not the name */
	n = without(V(SASL_BOTH), "SCRAM-SHA-25", out, sizeof(out));
	assert_bytes(out, n, V(SASL_BOTH));
	/* a longer name that starts with one offered is not it either */
	n = without(V(SASL_PLAIN), PLUS, out, sizeof(out));
	assert_bytes(out, n, V(SASL_PLAIN));
	/* exactly enough room for the copy */
	n = without(V(SASL_BOTH), "SCRAM-SHA-512", out, sizeof(SASL_BOTH) - 1);
	assert_bytes(out, n, V(SASL_BOTH));
	assert_int_equal(without(V(SASL_BOTH), "SCRAM-SHA-512", out, sizeof(SASL_BOTH) - 2), 0);
}

static void test_without_only_mechanism(void **state)
{
	uint8_t out[64];

	(void)state;
	assert_int_equal(without(V(SASL_PLAIN), PLAIN, out, sizeof(out)), 0);
	assert_int_equal(without(V(SASL_PLUS), PLUS, out, sizeof(out)), 0);
	/* an empty list offers nothing to begin with */
	assert_int_equal(without(V("R\0\0\0\x09" "\0\0\0\x0a" "\0"), PLUS, out, sizeof(out)), 0);
}

static void test_without_malformed(void **state)
{
	uint8_t out[64];

	(void)state;
	/* a name runs off the end of the message */
	assert_int_equal(without(V("R\0\0\0\x15" "\0\0\0\x0a" PLAIN), PLUS, out, sizeof(out)), 0);
	assert_int_equal(without(V("R\0\0\0\x15" "\0\0\0\x0a" PLAIN), "X", out, sizeof(out)), 0);
	/* the final empty name (the list's terminator) is missing */
	assert_int_equal(without(V("R\0\0\0\x16" "\0\0\0\x0a" PLAIN "\0"), PLUS, out, sizeof(out)), 0);
	assert_int_equal(without(V("R\0\0\0\x29" "\0\0\0\x0a" PLUS "\0" PLAIN "\0"), PLUS, out,
				 sizeof(out)), 0);
	/* bytes after the terminator */
	assert_int_equal(without(V("R\0\0\0\x18" "\0\0\0\x0a" PLAIN "\0" "\0" "X"), PLUS, out,
				 sizeof(out)), 0);
	assert_int_equal(without(V("R\0\0\0\x18" "\0\0\0\x0a" PLAIN "\0" "\0" "\0"), PLUS, out,
				 sizeof(out)), 0);
	/* the length word is wrong: one more, one less than the bytes */
	assert_int_equal(without(V("R\0\0\0\x2b" "\0\0\0\x0a" PLUS "\0" PLAIN "\0" "\0"), PLUS, out,
				 sizeof(out)), 0);
	assert_int_equal(without(V("R\0\0\0\x29" "\0\0\0\x0a" PLUS "\0" PLAIN "\0" "\0"), PLUS, out,
				 sizeof(out)), 0);
	/* not AuthenticationSASL: Ok, SASLContinue, another message type */
	assert_int_equal(without(V("R\0\0\0\x08" "\0\0\0\0"), PLUS, out, sizeof(out)), 0);
	assert_int_equal(without(V("R\0\0\0\x1c" "\0\0\0\x0b" PLUS "\0" "\0"), "X", out,
				 sizeof(out)), 0);
	assert_int_equal(without(V("E\0\0\0\x2a" "\0\0\0\x0a" PLUS "\0" PLAIN "\0" "\0"), PLUS, out,
				 sizeof(out)), 0);
	/* no list at all after the code */
	assert_int_equal(without(V("R\0\0\0\x08" "\0\0\0\x0a"), PLUS, out, sizeof(out)), 0);
	/* a tiny output buffer */
	assert_int_equal(without(V(SASL_BOTH), PLUS, out, 9), 0);
	assert_int_equal(without(V(SASL_BOTH), PLUS, out, 0), 0);
}

/* ---- builders ---- */

/* Run a builder into a heap buffer of exactly cap bytes. */
#define BUILD(n, buf, cap, call)                                          \
	do {                                                              \
		uint8_t *out_ = malloc((cap) > 0 ? (cap) : 1);            \
		assert_non_null(out_);                                    \
		memset(out_, 0xAA, (cap));                                \
		{                                                         \
			uint8_t *out = out_;                              \
			size_t cap_ = (cap);                              \
			(n) = (call);                                     \
			(void)cap_;                                       \
			(void)out;                                        \
		}                                                         \
		if ((n) > 0)                                              \
			memcpy((buf), out_, (n));                         \
		free(out_);                                               \
	} while (0)

static void test_build_request(void **state)
{
	uint8_t buf[64];
	size_t n;

	(void)state;
	BUILD(n, buf, 9, pg_auth_build_request(out, cap_, PG_AUTH_OK));
	assert_bytes(buf, n, V("R\0\0\0\x08" "\0\0\0\0"));
	BUILD(n, buf, 64, pg_auth_build_request(out, cap_, PG_AUTH_CLEARTEXT_PASSWORD));
	assert_bytes(buf, n, V("R\0\0\0\x08" "\0\0\0\x03"));
	BUILD(n, buf, 64, pg_auth_build_request(out, cap_, 0x01020304u));
	assert_bytes(buf, n, V("R\0\0\0\x08" "\x01\x02\x03\x04"));
	BUILD(n, buf, 8, pg_auth_build_request(out, cap_, PG_AUTH_OK));
	assert_int_equal(n, 0);
	BUILD(n, buf, 0, pg_auth_build_request(out, cap_, PG_AUTH_OK));
	assert_int_equal(n, 0);
}

static void test_build_sasl(void **state)
{
	static const char *const both[] = { PLUS, PLAIN, NULL };
	static const char *const plain[] = { PLAIN, NULL };
	static const char *const none[] = { NULL };
	uint8_t buf[64];
	size_t n;

	(void)state;
	BUILD(n, buf, 43, pg_auth_build_sasl(out, cap_, both));
	assert_bytes(buf, n, V(SASL_BOTH));
	BUILD(n, buf, 42, pg_auth_build_sasl(out, cap_, both));
	assert_int_equal(n, 0);
	BUILD(n, buf, 64, pg_auth_build_sasl(out, cap_, plain));
	assert_bytes(buf, n, V(SASL_PLAIN));
	BUILD(n, buf, 23, pg_auth_build_sasl(out, cap_, plain));
	assert_int_equal(n, 0);
	BUILD(n, buf, 10, pg_auth_build_sasl(out, cap_, none));
	assert_bytes(buf, n, V("R\0\0\0\x09" "\0\0\0\x0a" "\0"));
	/* what the builder makes, the reader takes apart again */
	BUILD(n, buf, 64, pg_auth_build_sasl(out, cap_, both));
	assert_int_equal(code_of(buf, n), PG_AUTH_SASL);
}

static void test_build_sasl_data(void **state)
{
	uint8_t buf[64];
	size_t n;

	(void)state;
	BUILD(n, buf, 14, pg_auth_build_sasl_data(out, cap_, PG_AUTH_SASL_CONTINUE, "r=abc", 5));
	assert_bytes(buf, n, V("R\0\0\0\x0d" "\0\0\0\x0b" "r=abc"));
	BUILD(n, buf, 64, pg_auth_build_sasl_data(out, cap_, PG_AUTH_SASL_FINAL, "v=xyz=", 6));
	assert_bytes(buf, n, V("R\0\0\0\x0e" "\0\0\0\x0c" "v=xyz="));
	/* the data is taken by length: bytes after it do not count, a NUL inside does */
	BUILD(n, buf, 64, pg_auth_build_sasl_data(out, cap_, PG_AUTH_SASL_CONTINUE, "a\0bc", 3));
	assert_bytes(buf, n, V("R\0\0\0\x0b" "\0\0\0\x0b" "a\0b"));
	BUILD(n, buf, 64, pg_auth_build_sasl_data(out, cap_, PG_AUTH_SASL_FINAL, "", 0));
	assert_bytes(buf, n, V("R\0\0\0\x08" "\0\0\0\x0c"));
	BUILD(n, buf, 13, pg_auth_build_sasl_data(out, cap_, PG_AUTH_SASL_CONTINUE, "r=abc", 5));
	assert_int_equal(n, 0);
}

#define INITIAL		"p\0\0\0\x21" PLAIN "\0" "\0\0\0\x0b" "n,,n=,r=abc"

static void test_build_sasl_initial(void **state)
{
	uint8_t buf[128];
	size_t n;

	(void)state;
	BUILD(n, buf, 34, pg_auth_build_sasl_initial(out, cap_, PLAIN, "n,,n=,r=abc", 11));
	assert_bytes(buf, n, V(INITIAL));
	BUILD(n, buf, 33, pg_auth_build_sasl_initial(out, cap_, PLAIN, "n,,n=,r=abc", 11));
	assert_int_equal(n, 0);
	BUILD(n, buf, 128, pg_auth_build_sasl_initial(out, cap_, PLUS, "p=tls-server-end-point,,n=,r=x",
						       30));
	assert_bytes(buf, n, V("p\0\0\0\x39" PLUS "\0" "\0\0\0\x1e"
			       "p=tls-server-end-point,,n=,r=x"));
}

static void test_build_password(void **state)
{
	uint8_t buf[64];
	size_t n;

	(void)state;
	BUILD(n, buf, 12, pg_auth_build_password(out, cap_, "secret", 6, true));
	assert_bytes(buf, n, V("p\0\0\0\x0b" "secret\0"));
	BUILD(n, buf, 11, pg_auth_build_password(out, cap_, "secret", 6, true));
	assert_int_equal(n, 0);
	BUILD(n, buf, 11, pg_auth_build_password(out, cap_, "secret", 6, false));
	assert_bytes(buf, n, V("p\0\0\0\x0a" "secret"));
	BUILD(n, buf, 10, pg_auth_build_password(out, cap_, "secret", 6, false));
	assert_int_equal(n, 0);
	/* an md5 answer as walgate sends it */
	BUILD(n, buf, 64, pg_auth_build_password(out, cap_, "md5" "0123456789abcdef0123456789abcdef",
						  35, true));
	assert_bytes(buf, n, V("p\0\0\0\x28" "md50123456789abcdef0123456789abcdef" "\0"));
	/* empty */
	BUILD(n, buf, 6, pg_auth_build_password(out, cap_, "", 0, true));
	assert_bytes(buf, n, V("p\0\0\0\x05" "\0"));
	BUILD(n, buf, 5, pg_auth_build_password(out, cap_, "", 0, false));
	assert_bytes(buf, n, V("p\0\0\0\x04"));
}

/* ---- parsers ---- */

static int parse_initial(const uint8_t *msg, size_t len, const char **mech, size_t *mech_off,
			 size_t *data_off, size_t *data_len)
{
	uint8_t *m = dup_exact(msg, len);
	const char *data = NULL;
	int r;

	*mech = NULL;
	r = pg_auth_parse_sasl_initial(m, len, mech, &data, data_len);
	if (r == 0) {
		*mech_off = (size_t)((const uint8_t *)*mech - m);
		*data_off = (size_t)((const uint8_t *)data - m);
		assert_true(*data_off + *data_len == len);
		/* the name lives in the message: keep a copy beyond free(m) */
		static char name[64];

		assert_true(strlen(*mech) < sizeof(name));
		strcpy(name, *mech);
		*mech = name;
	}
	free(m);
	return r;
}

static void test_parse_initial_valid(void **state)
{
	const char *mech;
	size_t mech_off, data_off, data_len;

	(void)state;
	assert_int_equal(parse_initial(V(INITIAL), &mech, &mech_off, &data_off, &data_len), 0);
	assert_string_equal(mech, PLAIN);
	assert_int_equal(mech_off, 5);
	assert_int_equal(data_off, 5 + 14 + 4);
	assert_int_equal(data_len, 11);

	assert_int_equal(parse_initial(V("p\0\0\0\x39" PLUS "\0" "\0\0\0\x1e"
					 "p=tls-server-end-point,,n=,r=x"),
				       &mech, &mech_off, &data_off, &data_len), 0);
	assert_string_equal(mech, PLUS);
	assert_int_equal(data_off, 5 + 19 + 4);
	assert_int_equal(data_len, 30);

	/* an unknown mechanism is the caller's business, not a framing error */
	assert_int_equal(parse_initial(V("p\0\0\0\x0d" "FOO\0" "\0\0\0\x01" "x"),
				       &mech, &mech_off, &data_off, &data_len), 0);
	assert_string_equal(mech, "FOO");
	assert_int_equal(data_len, 1);
}

static void test_parse_initial_invalid(void **state)
{
	const char *mech;
	size_t mech_off, data_off, data_len;

	(void)state;
#define BAD(lit) \
	assert_int_equal(parse_initial(V(lit), &mech, &mech_off, &data_off, &data_len), -1)
	/* length -1: no initial response, which SCRAM always has */
	BAD("p\0\0\0\x16" PLAIN "\0" "\xff\xff\xff\xff");
	BAD("p\0\0\0\x21" PLAIN "\0" "\xff\xff\xff\xff" "n,,n=,r=abc");
	/* the data length disagrees with the bytes: more, fewer */
	BAD("p\0\0\0\x21" PLAIN "\0" "\0\0\0\x0c" "n,,n=,r=abc");
	BAD("p\0\0\0\x21" PLAIN "\0" "\0\0\0\x0a" "n,,n=,r=abc");
	BAD("p\0\0\0\x21" PLAIN "\0" "\x80\0\0\x0b" "n,,n=,r=abc");
	/* no room for the data length word */
	BAD("p\0\0\0\x12" PLAIN "\0");
	BAD("p\0\0\0\x15" PLAIN "\0" "\0\0\0");
	/* no mechanism: no NUL at all, or an empty name */
	BAD("p\0\0\0\x11" PLAIN);
	BAD("p\0\0\0\x04");
	BAD("p\0\0\0\x14" "\0" "\0\0\0\x0b" "n,,n=,r=abc");
	BAD("p\0\0\0\x09" "\0" "\0\0\0\0");
	/* the message length word disagrees with the bytes given */
	BAD("p\0\0\0\x22" PLAIN "\0" "\0\0\0\x0b" "n,,n=,r=abc");
	BAD("p\0\0\0\x20" PLAIN "\0" "\0\0\0\x0b" "n,,n=,r=abc");
	/* not a 'p' message; too short for a header */
	BAD("R\0\0\0\x21" PLAIN "\0" "\0\0\0\x0b" "n,,n=,r=abc");
	BAD("p\0\0\0");
	BAD("p");
#undef BAD
	assert_int_equal(parse_initial((const uint8_t *)"", 0, &mech, &mech_off, &data_off,
				       &data_len), -1);
}

static int parse_response(const uint8_t *msg, size_t len, size_t *data_off, size_t *data_len)
{
	uint8_t *m = dup_exact(msg, len);
	const char *data = NULL;
	int r = pg_auth_parse_sasl_response(m, len, &data, data_len);

	if (r == 0)
		*data_off = (size_t)((const uint8_t *)data - m);
	free(m);
	return r;
}

static void test_parse_response(void **state)
{
	size_t off, n;

	(void)state;
	assert_int_equal(parse_response(V("p\0\0\0\x0c" "c=biws,r"), &off, &n), 0);
	assert_int_equal(off, 5);
	assert_int_equal(n, 8);
	assert_int_equal(parse_response(V("p\0\0\0\x04"), &off, &n), 0);
	assert_int_equal(off, 5);
	assert_int_equal(n, 0);
	/* inconsistent or truncated */
	assert_int_equal(parse_response(V("p\0\0\0\x0d" "c=biws,r"), &off, &n), -1);
	assert_int_equal(parse_response(V("p\0\0\0\x0b" "c=biws,r"), &off, &n), -1);
	assert_int_equal(parse_response(V("p\0\0\0\x03"), &off, &n), -1);
	assert_int_equal(parse_response(V("p\0\0\0"), &off, &n), -1);
	assert_int_equal(parse_response(V("p"), &off, &n), -1);
	assert_int_equal(parse_response((const uint8_t *)"", 0, &off, &n), -1);
	assert_int_equal(parse_response(V("Q\0\0\0\x0c" "c=biws,r"), &off, &n), -1);
}

static int parse_data(const uint8_t *msg, size_t len, size_t *data_off, size_t *data_len)
{
	uint8_t *m = dup_exact(msg, len);
	const char *data = NULL;
	int r = pg_auth_parse_sasl_data(m, len, &data, data_len);

	if (r == 0)
		*data_off = (size_t)((const uint8_t *)data - m);
	free(m);
	return r;
}

static void test_parse_data(void **state)
{
	size_t off, n;

	(void)state;
	assert_int_equal(parse_data(V("R\0\0\0\x0d" "\0\0\0\x0b" "r=abc"), &off, &n), 0);
	assert_int_equal(off, 9);
	assert_int_equal(n, 5);
	assert_int_equal(parse_data(V("R\0\0\0\x0e" "\0\0\0\x0c" "v=xyz="), &off, &n), 0);
	assert_int_equal(off, 9);
	assert_int_equal(n, 6);
	assert_int_equal(parse_data(V("R\0\0\0\x08" "\0\0\0\x0c"), &off, &n), 0);
	assert_int_equal(n, 0);
	/* other codes */
	assert_int_equal(parse_data(V("R\0\0\0\x08" "\0\0\0\0"), &off, &n), -1);
	assert_int_equal(parse_data(V(SASL_BOTH), &off, &n), -1);
	assert_int_equal(parse_data(V("R\0\0\0\x0c" "\0\0\0\x05" "abcd"), &off, &n), -1);
	/* the length word disagrees, or the message is cut short */
	assert_int_equal(parse_data(V("R\0\0\0\x0e" "\0\0\0\x0b" "r=abc"), &off, &n), -1);
	assert_int_equal(parse_data(V("R\0\0\0\x0c" "\0\0\0\x0b" "r=abc"), &off, &n), -1);
	assert_int_equal(parse_data(V("R\0\0\0\x08" "\0\0\0"), &off, &n), -1);
	assert_int_equal(parse_data(V("R\0\0\0\x07" "\0\0\0"), &off, &n), -1);
	assert_int_equal(parse_data(V("R\0\0"), &off, &n), -1);
	assert_int_equal(parse_data((const uint8_t *)"", 0, &off, &n), -1);
	/* a 'p' message with the same bytes is not one */
	assert_int_equal(parse_data(V("p\0\0\0\x0d" "\0\0\0\x0b" "r=abc"), &off, &n), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_code_valid),
		cmocka_unit_test(test_code_invalid),
		cmocka_unit_test(test_without_plus),
		cmocka_unit_test(test_without_plain_keeps_plus),
		cmocka_unit_test(test_without_absent_is_identical),
		cmocka_unit_test(test_without_only_mechanism),
		cmocka_unit_test(test_without_malformed),
		cmocka_unit_test(test_build_request),
		cmocka_unit_test(test_build_sasl),
		cmocka_unit_test(test_build_sasl_data),
		cmocka_unit_test(test_build_sasl_initial),
		cmocka_unit_test(test_build_password),
		cmocka_unit_test(test_parse_initial_valid),
		cmocka_unit_test(test_parse_initial_invalid),
		cmocka_unit_test(test_parse_response),
		cmocka_unit_test(test_parse_data),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

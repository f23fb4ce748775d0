/*
 * test_pg_startup.c - the startup-packet decoder against the byte vectors
 * real clients send and against every way a packet can lie about itself.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/pg_startup.h"
#include "protocol/pg_wire.h"

#define BIG 10100

/* A startup packet: length word, code, then the body bytes as given. */
static size_t mkpkt(uint8_t *buf, uint32_t code, const char *body, size_t bodylen)
{
	pg_put_u32(buf, (uint32_t)(8 + bodylen));
	pg_put_u32(buf + 4, code);
	memcpy(buf + 8, body, bodylen);
	return 8 + bodylen;
}

/* lit is a string literal with embedded NULs; its implicit NUL is dropped */
#define MKPKT(buf, code, lit) mkpkt((buf), (code), (lit), sizeof(lit) - 1)

/*
 * The verdict on a copy of pkt in a block of exactly len bytes, so that
 * AddressSanitizer catches any read past the end of the packet.
 */
static enum pg_startup_verdict verdict_exact(const uint8_t *pkt, size_t len)
{
	struct pg_startup s;
	enum pg_startup_verdict v;
	uint8_t *copy = malloc(len);

	assert_non_null(copy);
	memcpy(copy, pkt, len);
	v = pg_startup_parse(copy, len, &s);
	free(copy);
	return v;
}

static void test_length_need_more(void **state)
{
	static const uint8_t b[4] = { 0x00, 0x00, 0x00, 0x08 };
	uint32_t n = 0xabcd;
	size_t len;

	(void)state;
	for (len = 0; len < 4; len++) {
		assert_int_equal(pg_startup_length(b, len, &n), PG_STARTUP_NEED_MORE);
		assert_int_equal(n, 0xabcd);
	}
	assert_int_equal(pg_startup_length(b, 4, &n), PG_STARTUP_OK);
	assert_int_equal(n, 8);
}

static void test_length_bounds(void **state)
{
	uint8_t b[4];
	uint32_t v, n;

	(void)state;
	for (v = 0; v < 8; v++) {
		pg_put_u32(b, v);
		n = 0xabcd;
		assert_int_equal(pg_startup_length(b, 4, &n), PG_STARTUP_BAD_LENGTH);
		assert_int_equal(n, 0xabcd);
	}
	pg_put_u32(b, 8);
	assert_int_equal(pg_startup_length(b, 4, &n), PG_STARTUP_OK);
	assert_int_equal(n, 8);
	pg_put_u32(b, 10000);
	assert_int_equal(pg_startup_length(b, 4, &n), PG_STARTUP_OK);
	assert_int_equal(n, 10000);
	pg_put_u32(b, 10001);
	assert_int_equal(pg_startup_length(b, 4, &n), PG_STARTUP_BAD_LENGTH);
	pg_put_u32(b, 0x80000008u);	/* negative as an Int32 */
	assert_int_equal(pg_startup_length(b, 4, &n), PG_STARTUP_BAD_LENGTH);
	pg_put_u32(b, 0xffffffffu);
	assert_int_equal(pg_startup_length(b, 4, &n), PG_STARTUP_BAD_LENGTH);
}

static void test_ssl_request(void **state)
{
	/* what libpq sends with sslmode=prefer */
	static const uint8_t pkt[] = { 0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f };
	struct pg_startup s;
	uint32_t n;

	(void)state;
	assert_int_equal(pg_startup_length(pkt, sizeof(pkt), &n), PG_STARTUP_OK);
	assert_int_equal(n, 8);
	assert_int_equal(pg_startup_parse(pkt, n, &s), PG_STARTUP_OK);
	assert_int_equal(s.kind, PG_STARTUP_SSL_REQUEST);
	assert_int_equal(s.length, 8);
	assert_int_equal(s.code, PG_SSL_REQUEST_CODE);
	assert_int_equal(s.code, 80877103);
	assert_null(s.user);
	assert_int_equal(s.nparams, 0);
}

static void test_gssenc_request(void **state)
{
	static const uint8_t pkt[] = { 0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x30 };
	struct pg_startup s;

	(void)state;
	assert_int_equal(pg_startup_parse(pkt, sizeof(pkt), &s), PG_STARTUP_OK);
	assert_int_equal(s.kind, PG_STARTUP_GSSENC_REQUEST);
	assert_int_equal(s.code, PG_GSSENC_REQUEST_CODE);
	assert_int_equal(s.length, 8);
}

static void test_cancel_request(void **state)
{
	static const uint8_t pkt[] = {
		0x00, 0x00, 0x00, 0x10, 0x04, 0xd2, 0x16, 0x2e,
		0x00, 0x00, 0x30, 0x39,		/* pid 12345 */
		0xde, 0xad, 0xbe, 0xef,		/* secret key */
	};
	struct pg_startup s;

	(void)state;
	assert_int_equal(pg_startup_parse(pkt, sizeof(pkt), &s), PG_STARTUP_OK);
	assert_int_equal(s.kind, PG_STARTUP_CANCEL_REQUEST);
	assert_int_equal(s.code, PG_CANCEL_REQUEST_CODE);
	assert_int_equal(s.length, 16);
	assert_int_equal(s.cancel_pid, 12345);
	assert_int_equal(s.cancel_key_len, 4);
	assert_ptr_equal(s.cancel_key, pkt + 12);
	assert_memory_equal(s.cancel_key, "\xde\xad\xbe\xef", 4);
	assert_null(s.user);
}

/* Protocol 3.2 (PostgreSQL 18): the 32-byte key its servers hand out. */
static void test_cancel_request_v32_key(void **state)
{
	static const uint8_t pkt[44] = {
		0x00, 0x00, 0x00, 0x2c, 0x04, 0xd2, 0x16, 0x2e,
		0x00, 0x01, 0x02, 0x03,		/* pid 66051 */
		0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
		16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
	};
	struct pg_startup s;

	(void)state;
	assert_int_equal(pg_startup_parse(pkt, sizeof(pkt), &s), PG_STARTUP_OK);
	assert_int_equal(verdict_exact(pkt, sizeof(pkt)), PG_STARTUP_OK);
	assert_int_equal(s.kind, PG_STARTUP_CANCEL_REQUEST);
	assert_int_equal(s.length, 44);
	assert_int_equal(s.cancel_pid, 66051);
	assert_int_equal(s.cancel_key_len, 32);
	assert_memory_equal(s.cancel_key, pkt + 12, 32);
}

/* Key lengths at the edges: 1 and 256 pass, 0 and 257 do not (as in PostgreSQL 18). */
static void test_cancel_request_key_bounds(void **state)
{
	uint8_t buf[12 + PG_CANCEL_KEY_MAX + 1];
	struct pg_startup s;
	uint32_t keylen;

	(void)state;
	memset(buf, 0xa5, sizeof(buf));
	pg_put_u32(buf + 4, PG_CANCEL_REQUEST_CODE);
	for (keylen = 0; keylen <= PG_CANCEL_KEY_MAX + 1; keylen++) {
		bool fits = keylen >= 1 && keylen <= PG_CANCEL_KEY_MAX;

		pg_put_u32(buf, 12 + keylen);
		assert_int_equal(verdict_exact(buf, 12 + keylen),
				 fits ? PG_STARTUP_OK : PG_STARTUP_MALFORMED);
		assert_int_equal(pg_startup_parse(buf, 12 + keylen, &s),
				 fits ? PG_STARTUP_OK : PG_STARTUP_MALFORMED);
		if (fits)
			assert_int_equal(s.cancel_key_len, keylen);
	}
}

static void test_request_wrong_size(void **state)
{
	uint8_t buf[64];
	struct pg_startup s;
	size_t n;

	(void)state;
	n = MKPKT(buf, PG_SSL_REQUEST_CODE, "\0\0\0\0");
	assert_int_equal(n, 12);
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_MALFORMED);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_MALFORMED);
	assert_int_equal(s.kind, PG_STARTUP_SSL_REQUEST);

	n = MKPKT(buf, PG_GSSENC_REQUEST_CODE, "\0");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_MALFORMED);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_MALFORMED);
	assert_int_equal(s.kind, PG_STARTUP_GSSENC_REQUEST);

	/* a CancelRequest without its key; an 8-byte key is fine (protocol 3.2) */
	n = MKPKT(buf, PG_CANCEL_REQUEST_CODE, "\0\0\x30\x39");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_MALFORMED);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_MALFORMED);
	assert_int_equal(s.kind, PG_STARTUP_CANCEL_REQUEST);
	n = MKPKT(buf, PG_CANCEL_REQUEST_CODE, "\0\0\x30\x39\1\2\3\4\5\6\7\x8");
	assert_int_equal(n, 20);
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_OK);
	assert_int_equal(s.cancel_key_len, 8);
	/* 8 bytes: the code alone */
	n = MKPKT(buf, PG_CANCEL_REQUEST_CODE, "");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_MALFORMED);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_MALFORMED);
}

static void test_startup_v30(void **state)
{
	/* a psql-like StartupMessage, byte for byte */
	static const uint8_t pkt[] =
		"\x00\x00\x00\xa0"		/* length 160 */
		"\x00\x03\x00\x00"		/* protocol 3.0 */
		"user\0alice\0"
		"database\0sales\0"
		"replication\0database\0"
		"application_name\0pg_recvlogical\0"
		"options\0-c statement_timeout=0\0"
		"client_encoding\0UTF8\0"
		"_pq_.compression\0on\0"
		"\0";
	struct pg_startup s;
	uint32_t n;

	(void)state;
	/* the array holds the implicit NUL of the literal too */
	assert_int_equal(sizeof(pkt) - 1, 160);
	assert_int_equal(pg_startup_length(pkt, sizeof(pkt) - 1, &n), PG_STARTUP_OK);
	assert_int_equal(n, 160);
	assert_int_equal(pg_startup_parse(pkt, n, &s), PG_STARTUP_OK);
	assert_int_equal(s.kind, PG_STARTUP_MESSAGE);
	assert_int_equal(s.length, 160);
	assert_int_equal(s.code, PG_PROTOCOL_3_0);
	assert_string_equal(s.user, "alice");
	assert_string_equal(s.database, "sales");
	assert_string_equal(s.replication, "database");
	assert_string_equal(s.application_name, "pg_recvlogical");
	assert_string_equal(s.options, "-c statement_timeout=0");
	assert_int_equal(s.replication_mode, PG_REPLICATION_LOGICAL);
	assert_int_equal(s.nparams, 7);
	/* zero-copy: the strings are the packet's own bytes */
	assert_ptr_equal(s.user, (const char *)pkt + 13);
	assert_ptr_equal(s.database, (const char *)pkt + 28);
}

static void test_startup_minimal(void **state)
{
	uint8_t buf[64];
	struct pg_startup s;
	size_t n;

	(void)state;
	n = MKPKT(buf, PG_PROTOCOL_3_0, "user\0bob\0\0");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_OK);
	assert_string_equal(s.user, "bob");
	assert_null(s.database);
	assert_null(s.application_name);
	assert_null(s.options);
	assert_null(s.replication);
	assert_int_equal(s.replication_mode, PG_REPLICATION_NONE);
	assert_int_equal(s.nparams, 1);

	/* an empty value is legal, an empty name is the terminator */
	n = MKPKT(buf, PG_PROTOCOL_3_0, "user\0bob\0application_name\0\0\0");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_OK);
	assert_string_equal(s.application_name, "");
	assert_int_equal(s.nparams, 2);
}

static void test_startup_v32(void **state)
{
	uint8_t buf[64];
	struct pg_startup s;
	size_t n;

	(void)state;
	n = MKPKT(buf, 0x00030002u, "user\0bob\0_pq_.test\0x\0\0");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_OK);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_OK);
	assert_int_equal(s.kind, PG_STARTUP_MESSAGE);
	assert_int_equal(s.code, 0x00030002u);
	assert_int_equal(PG_PROTOCOL_MINOR(s.code), 2);
	assert_string_equal(s.user, "bob");
	assert_int_equal(s.nparams, 2);
	/* minor 0xffff is still 3.x: negotiated down by the upstream */
	n = MKPKT(buf, 0x0003ffffu, "user\0bob\0\0");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_OK);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_OK);
}

static void test_startup_bad_protocol(void **state)
{
	uint8_t buf[64];
	struct pg_startup s;
	size_t n;

	(void)state;
	n = MKPKT(buf, 0x00020000u, "user\0bob\0\0");	/* protocol 2.0 */
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_BAD_PROTOCOL);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_BAD_PROTOCOL);
	assert_int_equal(s.kind, PG_STARTUP_MESSAGE);
	assert_int_equal(s.code, 0x00020000u);
	n = MKPKT(buf, 0x00040000u, "user\0bob\0\0");	/* 4.0 does not exist */
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_BAD_PROTOCOL);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_BAD_PROTOCOL);
	n = MKPKT(buf, 0, "user\0bob\0\0");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_BAD_PROTOCOL);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_BAD_PROTOCOL);
	/* 1234.5681: a request code nobody defined */
	n = MKPKT(buf, 80877105u, "");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_BAD_PROTOCOL);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_BAD_PROTOCOL);
}

static void test_startup_max_length(void **state)
{
	static uint8_t buf[BIG];
	struct pg_startup s;
	uint32_t n;
	size_t vlen;

	(void)state;
	/* 8 header + "user\0u\0" (7) + "options\0" (8) + value + NUL + final NUL */
	vlen = 10000 - 8 - 7 - 8 - 1 - 1;
	pg_put_u32(buf, 10000);
	pg_put_u32(buf + 4, PG_PROTOCOL_3_0);
	memcpy(buf + 8, "user\0u\0options\0", 15);
	memset(buf + 23, 'x', vlen);
	buf[23 + vlen] = '\0';
	buf[24 + vlen] = '\0';
	assert_int_equal(25 + vlen, 10000);
	assert_int_equal(pg_startup_length(buf, 10000, &n), PG_STARTUP_OK);
	assert_int_equal(n, 10000);
	assert_int_equal(pg_startup_parse(buf, 10000, &s), PG_STARTUP_OK);
	assert_int_equal(strlen(s.options), vlen);
	assert_string_equal(s.user, "u");

	/* one more byte of value: over PostgreSQL's limit */
	pg_put_u32(buf, 10001);
	memset(buf + 23, 'x', vlen + 1);
	buf[24 + vlen] = '\0';
	buf[25 + vlen] = '\0';
	assert_int_equal(pg_startup_length(buf, 10001, &n), PG_STARTUP_BAD_LENGTH);
	assert_int_equal(pg_startup_parse(buf, 10001, &s), PG_STARTUP_BAD_LENGTH);
}

static void test_parse_bad_length(void **state)
{
	uint8_t buf[64];
	struct pg_startup s;
	uint32_t v;

	(void)state;
	memset(buf, 0, sizeof(buf));
	for (v = 0; v < 8; v++) {
		pg_put_u32(buf, v);
		assert_int_equal(pg_startup_parse(buf, 8, &s), PG_STARTUP_BAD_LENGTH);
	}
	assert_int_equal(pg_startup_parse(buf, 3, &s), PG_STARTUP_NEED_MORE);
}

static void test_parse_len_mismatch(void **state)
{
	uint8_t buf[64];
	struct pg_startup s;
	size_t n;

	(void)state;
	n = MKPKT(buf, PG_PROTOCOL_3_0, "user\0bob\0\0");
	assert_int_equal(pg_startup_parse(buf, n - 1, &s), PG_STARTUP_NEED_MORE);
	buf[n] = 'Q';
	assert_int_equal(pg_startup_parse(buf, n + 1, &s), PG_STARTUP_MALFORMED);
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_OK);
}

static void test_startup_malformed(void **state)
{
	uint8_t buf[64];
	struct pg_startup s;
	size_t n;

	(void)state;
	/* no parameters and no terminator at all */
	n = MKPKT(buf, PG_PROTOCOL_3_0, "");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_MALFORMED);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_MALFORMED);
	/* value not terminated inside the packet */
	n = MKPKT(buf, PG_PROTOCOL_3_0, "user\0alice");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_MALFORMED);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_MALFORMED);
	/* name not terminated */
	n = MKPKT(buf, PG_PROTOCOL_3_0, "user\0alice\0datab");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_MALFORMED);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_MALFORMED);
	/* a name with no value */
	n = MKPKT(buf, PG_PROTOCOL_3_0, "user\0alice\0database\0");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_MALFORMED);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_MALFORMED);
	/* every pair complete but the final NUL missing */
	n = MKPKT(buf, PG_PROTOCOL_3_0, "user\0alice\0");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_MALFORMED);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_MALFORMED);
	/* bytes after the terminator */
	n = MKPKT(buf, PG_PROTOCOL_3_0, "user\0alice\0\0x");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_MALFORMED);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_MALFORMED);
	n = MKPKT(buf, PG_PROTOCOL_3_0, "user\0alice\0\0\0");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_MALFORMED);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_MALFORMED);
	/* an empty name before the end hides the following pair */
	n = MKPKT(buf, PG_PROTOCOL_3_0, "\0user\0alice\0\0");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_MALFORMED);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_MALFORMED);
}

static void test_startup_no_user(void **state)
{
	uint8_t buf[64];
	struct pg_startup s;
	size_t n;

	(void)state;
	n = MKPKT(buf, PG_PROTOCOL_3_0, "database\0sales\0\0");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_NO_USER);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_NO_USER);
	assert_string_equal(s.database, "sales");
	n = MKPKT(buf, PG_PROTOCOL_3_0, "\0");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_NO_USER);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_NO_USER);
	assert_int_equal(s.nparams, 0);
	/* the server rejects an empty user name the same way */
	n = MKPKT(buf, PG_PROTOCOL_3_0, "user\0\0\0");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_NO_USER);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_NO_USER);
	/* names are case-sensitive */
	n = MKPKT(buf, PG_PROTOCOL_3_0, "USER\0bob\0\0");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_NO_USER);
	assert_int_equal(verdict_exact(buf, n), PG_STARTUP_NO_USER);
}

static void test_startup_duplicate_last_wins(void **state)
{
	uint8_t buf[64];
	struct pg_startup s;
	size_t n;

	(void)state;
	n = MKPKT(buf, PG_PROTOCOL_3_0, "user\0alice\0user\0mallory\0\0");
	assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_OK);
	assert_string_equal(s.user, "mallory");
	assert_int_equal(s.nparams, 2);
}

struct repl_case {
	const char *value;
	enum pg_replication_mode mode;
};

static const struct repl_case repl_cases[] = {
	{ "true", PG_REPLICATION_PHYSICAL },
	{ "on", PG_REPLICATION_PHYSICAL },
	{ "yes", PG_REPLICATION_PHYSICAL },
	{ "1", PG_REPLICATION_PHYSICAL },
	{ "TRUE", PG_REPLICATION_PHYSICAL },
	{ "On", PG_REPLICATION_PHYSICAL },
	{ "YeS", PG_REPLICATION_PHYSICAL },
	{ "t", PG_REPLICATION_PHYSICAL },	/* parse_bool takes unique prefixes */
	{ "tru", PG_REPLICATION_PHYSICAL },
	{ "y", PG_REPLICATION_PHYSICAL },
	{ "database", PG_REPLICATION_LOGICAL },
	{ "false", PG_REPLICATION_NONE },
	{ "off", PG_REPLICATION_NONE },
	{ "no", PG_REPLICATION_NONE },
	{ "0", PG_REPLICATION_NONE },
	{ "FALSE", PG_REPLICATION_NONE },
	{ "OFF", PG_REPLICATION_NONE },
	{ "f", PG_REPLICATION_NONE },
	{ "n", PG_REPLICATION_NONE },
	{ "of", PG_REPLICATION_NONE },
	{ "", PG_REPLICATION_INVALID },
	{ "o", PG_REPLICATION_INVALID },	/* on or off? */
	{ "2", PG_REPLICATION_INVALID },
	{ "10", PG_REPLICATION_INVALID },
	{ "truex", PG_REPLICATION_INVALID },
	{ "onn", PG_REPLICATION_INVALID },
	{ "offf", PG_REPLICATION_INVALID },
	{ " true", PG_REPLICATION_INVALID },
	{ "logical", PG_REPLICATION_INVALID },
	{ "databases", PG_REPLICATION_INVALID },
	/* the server compares "database" with strcmp, then fails parse_bool */
	{ "DATABASE", PG_REPLICATION_INVALID },
	{ "Database", PG_REPLICATION_INVALID },
};

static void test_replication_values(void **state)
{
	uint8_t buf[128];
	struct pg_startup s;
	size_t i, n, vlen;

	(void)state;
	assert_int_equal(pg_replication_mode_parse(NULL), PG_REPLICATION_NONE);
	for (i = 0; i < sizeof(repl_cases) / sizeof(repl_cases[0]); i++) {
		const struct repl_case *c = &repl_cases[i];

		assert_int_equal(pg_replication_mode_parse(c->value), c->mode);
		/* and the same value through a real packet */
		vlen = strlen(c->value);
		pg_put_u32(buf + 4, PG_PROTOCOL_3_0);
		memcpy(buf + 8, "user\0u\0replication\0", 19);
		memcpy(buf + 27, c->value, vlen + 1);
		buf[28 + vlen] = '\0';
		n = 29 + vlen;
		pg_put_u32(buf, (uint32_t)n);
		assert_int_equal(pg_startup_parse(buf, n, &s), PG_STARTUP_OK);
		assert_string_equal(s.replication, c->value);
		assert_int_equal(s.replication_mode, c->mode);
	}
}

static void test_tls_hello(void **state)
{
	/* the start of a TLS 1.2/1.3 ClientHello record */
	static const uint8_t hello[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01 };
	static const uint8_t ssl_req[] = { 0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f };
	static const uint8_t other[] = { 0x16, 0x02, 0x00 };

	(void)state;
	assert_true(pg_startup_is_tls_hello(hello, sizeof(hello)));
	assert_true(pg_startup_is_tls_hello(hello, 2));
	assert_false(pg_startup_is_tls_hello(hello, 1));
	assert_false(pg_startup_is_tls_hello(hello, 0));
	assert_false(pg_startup_is_tls_hello(ssl_req, sizeof(ssl_req)));
	assert_false(pg_startup_is_tls_hello(other, sizeof(other)));
}

static void test_strings(void **state)
{
	int v, w;

	(void)state;
	for (v = PG_STARTUP_OK; v <= PG_STARTUP_NO_USER; v++) {
		assert_non_null(pg_startup_verdict_str((enum pg_startup_verdict)v));
		for (w = PG_STARTUP_OK; w < v; w++)
			assert_string_not_equal(pg_startup_verdict_str((enum pg_startup_verdict)v),
						pg_startup_verdict_str((enum pg_startup_verdict)w));
	}
	assert_string_equal(pg_replication_mode_str(PG_REPLICATION_NONE), "none");
	assert_string_equal(pg_replication_mode_str(PG_REPLICATION_PHYSICAL), "physical");
	assert_string_equal(pg_replication_mode_str(PG_REPLICATION_LOGICAL), "logical");
	assert_string_equal(pg_replication_mode_str(PG_REPLICATION_INVALID), "invalid");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_length_need_more),
		cmocka_unit_test(test_length_bounds),
		cmocka_unit_test(test_ssl_request),
		cmocka_unit_test(test_gssenc_request),
		cmocka_unit_test(test_cancel_request),
		cmocka_unit_test(test_cancel_request_v32_key),
		cmocka_unit_test(test_cancel_request_key_bounds),
		cmocka_unit_test(test_request_wrong_size),
		cmocka_unit_test(test_startup_v30),
		cmocka_unit_test(test_startup_minimal),
		cmocka_unit_test(test_startup_v32),
		cmocka_unit_test(test_startup_bad_protocol),
		cmocka_unit_test(test_startup_max_length),
		cmocka_unit_test(test_parse_bad_length),
		cmocka_unit_test(test_parse_len_mismatch),
		cmocka_unit_test(test_startup_malformed),
		cmocka_unit_test(test_startup_no_user),
		cmocka_unit_test(test_startup_duplicate_last_wins),
		cmocka_unit_test(test_replication_values),
		cmocka_unit_test(test_tls_hello),
		cmocka_unit_test(test_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

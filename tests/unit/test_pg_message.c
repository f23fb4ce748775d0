/*
 * test_pg_message.c - the ErrorResponse walgate writes, byte for byte, and
 * the reader of the ones upstreams send, on well-formed and broken input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/pg_message.h"
#include "protocol/pg_wire.h"

/* pg_parse_error on a copy of exactly len bytes, for AddressSanitizer */
static int parse_exact(const uint8_t *payload, size_t len)
{
	struct pg_error_fields g;
	uint8_t *copy = malloc(len > 0 ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, payload, len);
	rc = pg_parse_error(copy, len, &g);
	free(copy);
	return rc;
}

static void test_build_exact_bytes(void **state)
{
	static const uint8_t want[] =
		"E\0\0\0\x28"
		"SFATAL\0"
		"VFATAL\0"
		"C28000\0"
		"Mno such user\0"
		"\0";
	const struct pg_error_fields f = {
		.severity = "FATAL",
		.sqlstate = PG_SQLSTATE_INVALID_AUTHORIZATION,
		.message = "no such user",
	};
	uint8_t buf[256];
	size_t n;

	(void)state;
	memset(buf, 0xaa, sizeof(buf));
	n = pg_build_error(buf, sizeof(buf), &f);
	assert_int_equal(n, sizeof(want) - 1);
	assert_int_equal(n, 41);
	assert_memory_equal(buf, want, n);
	assert_int_equal(pg_get_u32(buf + 1), n - 1);
	assert_int_equal(buf[n], 0xaa);		/* nothing written past the message */
}

static void test_round_trip(void **state)
{
	const struct pg_error_fields f = {
		.severity = "FATAL",
		.sqlstate = PG_SQLSTATE_TOO_MANY_CONNECTIONS,
		.message = "too many connections for walgate",
		.detail = "max_client_conn is 100",
		.hint = "Raise max_client_conn or use a pooler.",
	};
	struct pg_error_fields g;
	uint8_t buf[512];
	size_t n;

	(void)state;
	n = pg_build_error(buf, sizeof(buf), &f);
	assert_int_equal(n, 5 + 7 + 7 + 7 + (2 + strlen(f.message)) +
			 (2 + strlen(f.detail)) + (2 + strlen(f.hint)) + 1);
	assert_int_equal(buf[0], 'E');
	assert_int_equal(pg_get_u32(buf + 1), n - 1);
	assert_int_equal(buf[n - 1], 0);
	assert_int_equal(pg_parse_error(buf + 5, n - 5, &g), 0);
	assert_string_equal(g.severity, "FATAL");
	assert_string_equal(g.sqlstate, "53300");
	assert_string_equal(g.message, f.message);
	assert_string_equal(g.detail, f.detail);
	assert_string_equal(g.hint, f.hint);
	/* the parsed strings live in the message, not in f */
	assert_true((const uint8_t *)g.message > buf && (const uint8_t *)g.message < buf + n);
	/* field order: S V C M D H */
	assert_int_equal(buf[5], 'S');
	assert_int_equal(buf[12], 'V');
	assert_int_equal(buf[19], 'C');
	assert_int_equal(buf[26], 'M');
}

static void test_build_without_optional(void **state)
{
	const struct pg_error_fields f = {
		.severity = "ERROR",
		.sqlstate = PG_SQLSTATE_FEATURE_NOT_SUPPORTED,
		.message = "x",
	};
	struct pg_error_fields g;
	uint8_t buf[64];
	size_t n;

	(void)state;
	n = pg_build_error(buf, sizeof(buf), &f);
	assert_int_equal(n, 5 + 7 + 7 + 7 + 3 + 1);
	assert_null(memchr(buf + 5, 'D', n - 5));
	assert_null(memchr(buf + 5, 'H', n - 5));
	assert_int_equal(pg_parse_error(buf + 5, n - 5, &g), 0);
	assert_string_equal(g.severity, "ERROR");
	assert_string_equal(g.sqlstate, "0A000");
	assert_string_equal(g.message, "x");
	assert_null(g.detail);
	assert_null(g.hint);
}

static void test_truncation(void **state)
{
	static char longmsg[1501], longdetail[2001];
	static uint8_t buf[8192];
	struct pg_error_fields f = {
		.severity = "ERROR",
		.sqlstate = PG_SQLSTATE_PROTOCOL_VIOLATION,
	};
	struct pg_error_fields g;
	size_t n;

	(void)state;
	memset(longmsg, 'm', 1500);
	memset(longdetail, 'd', 2000);
	f.message = longmsg;
	f.detail = longdetail;
	n = pg_build_error(buf, sizeof(buf), &f);
	assert_int_equal(n, 5 + 7 + 7 + 7 + 1002 + 1002 + 1);
	assert_int_equal(pg_parse_error(buf + 5, n - 5, &g), 0);
	assert_int_equal(strlen(g.message), 1000);
	assert_int_equal(strlen(g.detail), 1000);
	assert_memory_equal(g.message, longmsg, 1000);

	/* exactly 1000 bytes: kept whole */
	longmsg[1000] = '\0';
	f.detail = NULL;
	n = pg_build_error(buf, sizeof(buf), &f);
	assert_int_equal(pg_parse_error(buf + 5, n - 5, &g), 0);
	assert_int_equal(strlen(g.message), 1000);
}

static void test_truncation_utf8(void **state)
{
	static char s[1100];
	static uint8_t buf[4096];
	struct pg_error_fields f = { .severity = "ERROR", .sqlstate = "XX000" };
	struct pg_error_fields g;
	size_t n;

	(void)state;
	f.message = s;
	/* "é" (c3 a9) straddling byte 1000: cut before it, not through it */
	memset(s, 'a', 999);
	strcpy(s + 999, "\xc3\xa9tail");
	n = pg_build_error(buf, sizeof(buf), &f);
	assert_int_equal(pg_parse_error(buf + 5, n - 5, &g), 0);
	assert_int_equal(strlen(g.message), 999);
	/* "é" ending exactly at byte 1000 fits */
	memset(s, 'a', 998);
	strcpy(s + 998, "\xc3\xa9tail");
	n = pg_build_error(buf, sizeof(buf), &f);
	assert_int_equal(pg_parse_error(buf + 5, n - 5, &g), 0);
	assert_int_equal(strlen(g.message), 1000);
	assert_memory_equal(g.message + 998, "\xc3\xa9", 2);
	/* a 4-byte character starting at 997 goes whole */
	memset(s, 'a', 997);
	strcpy(s + 997, "\xf0\x9f\x90\x98tail");
	n = pg_build_error(buf, sizeof(buf), &f);
	assert_int_equal(pg_parse_error(buf + 5, n - 5, &g), 0);
	assert_int_equal(strlen(g.message), 997);
}

static void test_cap_too_small(void **state)
{
	const struct pg_error_fields f = {
		.severity = "FATAL",
		.sqlstate = PG_SQLSTATE_ADMIN_SHUTDOWN,
		.message = "walgate is shutting down",
		.hint = "Reconnect later.",
	};
	uint8_t buf[256], ref[256];
	size_t need, cap;

	(void)state;
	need = pg_build_error(ref, sizeof(ref), &f);
	assert_true(need > 0);
	for (cap = 0; cap < need; cap++) {
		memset(buf, 0xaa, sizeof(buf));
		assert_int_equal(pg_build_error(buf, cap, &f), 0);
		/* untouched altogether, not only beyond cap */
		for (size_t i = 0; i < sizeof(buf); i++)
			assert_int_equal(buf[i], 0xaa);
	}
	assert_int_equal(pg_build_error(buf, need, &f), need);
	assert_memory_equal(buf, ref, need);
}

static void test_build_null_mandatory(void **state)
{
	const struct pg_error_fields f = { .message = "m" };
	struct pg_error_fields g;
	uint8_t buf[64];
	size_t n;

	(void)state;
	n = pg_build_error(buf, sizeof(buf), &f);
	assert_int_equal(n, 5 + 2 + 2 + 2 + 3 + 1);
	assert_int_equal(pg_parse_error(buf + 5, n - 5, &g), 0);
	assert_string_equal(g.severity, "");
	assert_string_equal(g.sqlstate, "");
	assert_string_equal(g.message, "m");
}

static void test_parse_server_error(void **state)
{
	/* the payload of an ErrorResponse from PostgreSQL 17 */
	static const uint8_t p[] =
		"SERROR\0"
		"VERROR\0"
		"C42P01\0"
		"Mrelation \"nope\" does not exist\0"
		"P15\0"
		"Fparse_relation.c\0"
		"L1449\0"
		"RparserOpenTable\0"
		"\0";
	struct pg_error_fields g;

	(void)state;
	assert_int_equal(pg_parse_error(p, sizeof(p) - 1, &g), 0);
	assert_string_equal(g.severity, "ERROR");
	assert_string_equal(g.sqlstate, "42P01");
	assert_string_equal(g.message, "relation \"nope\" does not exist");
	assert_null(g.detail);
	assert_null(g.hint);
	assert_ptr_equal(g.sqlstate, (const char *)p + 15);
}

static void test_parse_prefers_v(void **state)
{
	/* a server with lc_messages=fr_FR: S is translated, V is not */
	static const uint8_t fr[] = "SFATAL\0VFATAL\0" "C28P01\0Mauthentification\0\0";
	static const uint8_t fr2[] = "SERREUR\0VERROR\0C22012\0Mdivision par zéro\0\0";
	static const uint8_t v_first[] = "VERROR\0SERREUR\0\0";
	/* before 9.6 there is no V */
	static const uint8_t s_only[] = "SNOTICE\0C00000\0Mhello\0Dd\0Hh\0\0";
	struct pg_error_fields g;

	(void)state;
	assert_int_equal(pg_parse_error(fr, sizeof(fr) - 1, &g), 0);
	assert_string_equal(g.severity, "FATAL");
	assert_int_equal(pg_parse_error(fr2, sizeof(fr2) - 1, &g), 0);
	assert_string_equal(g.severity, "ERROR");
	assert_int_equal(pg_parse_error(v_first, sizeof(v_first) - 1, &g), 0);
	assert_string_equal(g.severity, "ERROR");
	assert_int_equal(pg_parse_error(s_only, sizeof(s_only) - 1, &g), 0);
	assert_string_equal(g.severity, "NOTICE");
	assert_string_equal(g.sqlstate, "00000");
	assert_string_equal(g.message, "hello");
	assert_string_equal(g.detail, "d");
	assert_string_equal(g.hint, "h");
}

static void test_parse_empty_list(void **state)
{
	static const uint8_t p[] = { 0 };
	struct pg_error_fields g;

	(void)state;
	memset(&g, 0x55, sizeof(g));
	assert_int_equal(pg_parse_error(p, 1, &g), 0);
	assert_null(g.severity);
	assert_null(g.sqlstate);
	assert_null(g.message);
	assert_null(g.detail);
	assert_null(g.hint);
}

static void test_parse_malformed(void **state)
{
	static const uint8_t unterminated[] = "SERROR\0C42P01";	/* runs off */
	static const uint8_t no_final[] = "SERROR\0C42P01\0";
	static const uint8_t trailing[] = "SERROR\0\0X";
	static const uint8_t lone_type[] = "SERROR\0M";
	struct pg_error_fields g;

	(void)state;
	assert_int_equal(pg_parse_error(unterminated, 0, &g), -1);
	assert_int_equal(parse_exact(unterminated, 0), -1);
	assert_int_equal(pg_parse_error(unterminated, sizeof(unterminated) - 1, &g), -1);
	assert_int_equal(parse_exact(unterminated, sizeof(unterminated) - 1), -1);
	assert_int_equal(pg_parse_error(no_final, sizeof(no_final) - 1, &g), -1);
	assert_int_equal(parse_exact(no_final, sizeof(no_final) - 1), -1);
	assert_int_equal(pg_parse_error(trailing, sizeof(trailing) - 1, &g), -1);
	assert_int_equal(parse_exact(trailing, sizeof(trailing) - 1), -1);
	assert_int_equal(pg_parse_error(lone_type, sizeof(lone_type) - 1, &g), -1);
	assert_int_equal(parse_exact(lone_type, sizeof(lone_type) - 1), -1);
	/* a valid list cut anywhere before its final 0 is malformed */
	for (size_t n = 0; n < sizeof(no_final) - 1; n++) {
		assert_int_equal(pg_parse_error(no_final, n, &g), -1);
		assert_int_equal(parse_exact(no_final, n), -1);
	}
	/* and uncut it is fine */
	assert_int_equal(parse_exact(no_final, sizeof(no_final)), 0);
}

/* BackendKeyData: 4-byte keys (3.0), 32-byte keys (PostgreSQL 18), the bounds */
static void test_parse_backend_key(void **state)
{
	static const uint8_t v30[8] = { 0, 0, 0x30, 0x39, 0xde, 0xad, 0xbe, 0xef };
	uint8_t buf[4 + PG_CANCEL_KEY_MAX + 1];
	const uint8_t *key;
	size_t key_len, len;
	uint32_t pid;

	(void)state;
	assert_int_equal(pg_parse_backend_key(v30, sizeof(v30), &pid, &key, &key_len), 0);
	assert_int_equal(pid, 12345);
	assert_int_equal(key_len, 4);
	assert_ptr_equal(key, v30 + 4);
	for (len = 0; len < sizeof(buf); len++)
		buf[len] = (uint8_t)len;
	assert_int_equal(pg_parse_backend_key(buf, 36, &pid, &key, &key_len), 0);
	assert_int_equal(pid, 0x00010203u);
	assert_int_equal(key_len, 32);
	assert_memory_equal(key, buf + 4, 32);
	for (len = 0; len <= sizeof(buf); len++) {
		int want = (len >= 5 && len <= 4 + PG_CANCEL_KEY_MAX) ? 0 : -1;
		uint8_t *copy = malloc(len > 0 ? len : 1);

		assert_non_null(copy);
		memcpy(copy, buf, len < sizeof(buf) ? len : sizeof(buf));
		assert_int_equal(pg_parse_backend_key(copy, len, &pid, &key, &key_len), want);
		if (want == 0)
			assert_int_equal(key_len, len - 4);
		free(copy);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_exact_bytes),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_build_without_optional),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_truncation_utf8),
		cmocka_unit_test(test_cap_too_small),
		cmocka_unit_test(test_build_null_mandatory),
		cmocka_unit_test(test_parse_server_error),
		cmocka_unit_test(test_parse_prefers_v),
		cmocka_unit_test(test_parse_empty_list),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_parse_backend_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

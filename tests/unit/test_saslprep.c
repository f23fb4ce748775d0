/*
 * test_saslprep.c - SASLprep of passwords (protocol/saslprep.c): RFC 4013's
 * own examples, and PostgreSQL's fallback to the raw bytes wherever
 * pg_saslprep() refuses (invalid UTF-8, prohibited output, bidi, nothing
 * left after mapping), and the ASCII shortcut (controls kept, as there).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/saslprep.h"

struct vector {
	const char *in;
	const char *want;
	enum saslprep_result result;
};

static void test_vectors(void **state)
{
	static const struct vector v[] = {
		/* RFC 4013, section 3 */
		{ "I\xc2\xad" "X", "IX", SASLPREP_PREPARED },		/* soft hyphen: mapped to nothing */
		{ "user", "user", SASLPREP_ASCII },
		{ "USER", "USER", SASLPREP_ASCII },
		{ "\xc2\xaa", "a", SASLPREP_PREPARED },			/* U+00AA: NFKC */
		{ "\xe2\x85\xa8", "IX", SASLPREP_PREPARED },		/* U+2168 ROMAN NUMERAL NINE */
		{ "\x07", "\x07", SASLPREP_ASCII },			/* PostgreSQL: ASCII as it is */
		{ "\xd8\xa7" "1", "\xd8\xa7" "1", SASLPREP_RAW },	/* bidi rule: raw */
		/* non-ASCII space to U+0020 */
		{ "pass\xc2\xa0word", "pass word", SASLPREP_PREPARED },
		{ "caf\xc3\xa9", "caf\xc3\xa9", SASLPREP_PREPARED },	/* already NFKC */
		{ "cafe\xcc\x81", "caf\xc3\xa9", SASLPREP_PREPARED },	/* composed */
		/* only characters mapped to nothing: PostgreSQL refuses, the raw bytes go */
		{ "\xc2\xad", "\xc2\xad", SASLPREP_RAW },
		/* prohibited output (U+E000, private use) and invalid UTF-8: raw */
		{ "a\xee\x80\x80" "b", "a\xee\x80\x80" "b", SASLPREP_RAW },
		{ "a\xff" "b", "a\xff" "b", SASLPREP_RAW },
		/* an unassigned code point (U+0378): refused as PostgreSQL does */
		{ "a\xcd\xb8", "a\xcd\xb8", SASLPREP_RAW },
	};
	char out[64];

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		enum saslprep_result r = saslprep_password(v[i].in, out, sizeof(out));

		if (r != v[i].result || strcmp(out, v[i].want) != 0)
			fail_msg("vector %zu: result %d, want %d; \"%s\"", i, r, v[i].result, out);
	}
}

static void test_too_long(void **state)
{
	char out[4];

	(void)state;
	assert_int_equal(saslprep_password("abcd", out, sizeof(out)), SASLPREP_TOO_LONG);
	assert_int_equal(saslprep_password("abc", out, sizeof(out)), SASLPREP_ASCII);
	assert_string_equal(out, "abc");
	/* "I" U+00AD "X" is 4 bytes, but "IX" fits */
	assert_int_equal(saslprep_password("I\xc2\xad" "X", out, sizeof(out)), SASLPREP_PREPARED);
	assert_string_equal(out, "IX");
	/* the raw fallback must fit as well */
	assert_int_equal(saslprep_password("\xc2\xad\xc2\xad", out, sizeof(out)), SASLPREP_TOO_LONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_too_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_pg_startup_edit.c - the StartupMessage walgate sends upstream under
 * another user name: the user replaced, the database kept (added when the
 * client relied on the default), everything else byte for byte, and
 * malformed packets or small buffers refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/pg_startup.h"
#include "protocol/pg_startup_edit.h"
#include "protocol/pg_wire.h"

/* Build a StartupMessage 3.0 from "k\0v\0k\0v\0" (n bytes, without the final NUL). */
static size_t message(uint8_t *out, const char *params, size_t n)
{
	pg_put_u32(out + 4, 196608);
	memcpy(out + 8, params, n);
	out[8 + n] = '\0';
	pg_put_u32(out, (uint32_t)(9 + n));
	return 9 + n;
}

#define MESSAGE(buf, lit) message(buf, lit, sizeof(lit) - 1)

static void test_user_replaced_database_kept(void **state)
{
	uint8_t in[256], out[256], expect[256];
	size_t n = MESSAGE(in, "user\0mz\0database\0app\0replication\0database\0");
	size_t m = pg_startup_with_user(in, n, "sa@proj.iam", out, sizeof(out));
	size_t e = MESSAGE(expect, "user\0sa@proj.iam\0database\0app\0replication\0database\0");

	(void)state;
	assert_int_equal(m, e);
	assert_memory_equal(out, expect, e);
}

/* in rewritten for user "iam", parsed again into *st (its strings point into out). */
static void rewrite_for_iam(const uint8_t *in, size_t n, uint8_t out[256], struct pg_startup *st)
{
	size_t m = pg_startup_with_user(in, n, "iam", out, 256);

	assert_true(m > 0);
	assert_int_equal(pg_startup_parse(out, m, st), PG_STARTUP_OK);
	assert_string_equal(st->user, "iam");
}

/* Without a database the server would use the user's name: keep the client's. */
static void test_default_database_made_explicit(void **state)
{
	uint8_t in[256], out[256];
	struct pg_startup st;

	(void)state;
	rewrite_for_iam(in, MESSAGE(in, "application_name\0x\0user\0mz\0"), out, &st);
	assert_string_equal(st.database, "mz");
	assert_string_equal(st.application_name, "x");
	assert_int_equal(st.nparams, 3);
}

/* An empty database is no database to the server: the client's user is named instead. */
static void test_empty_database_made_explicit(void **state)
{
	uint8_t in[256], out[256];
	struct pg_startup st;

	(void)state;
	rewrite_for_iam(in, MESSAGE(in, "user\0mz\0database\0\0"), out, &st);
	assert_string_equal(st.database, "mz");
	assert_int_equal(st.nparams, 3);	/* the empty one kept; the server takes the last */
}

static void test_refusals(void **state)
{
	uint8_t in[256], out[256];
	size_t n = MESSAGE(in, "user\0mz\0database\0app\0");

	(void)state;
	assert_int_equal(pg_startup_with_user(in, n, "", out, sizeof(out)), 0);
	assert_int_equal(pg_startup_with_user(in, n, NULL, out, sizeof(out)), 0);
	assert_int_equal(pg_startup_with_user(in, n - 1, "iam", out, sizeof(out)), 0);	/* length word disagrees */
	for (size_t cap = 0; cap < n; cap++)	/* too small: never written past cap */
		assert_int_equal(pg_startup_with_user(in, n, "iam", out, cap), 0);
	n = MESSAGE(in, "database\0app\0");					/* no user */
	assert_int_equal(pg_startup_with_user(in, n, "iam", out, sizeof(out)), 0);
	n = MESSAGE(in, "user\0mz\0database\0app");				/* unterminated value */
	in[n - 1] = 'x';
	assert_int_equal(pg_startup_with_user(in, n, "iam", out, sizeof(out)), 0);
	n = MESSAGE(in, "user\0mz\0\0extra\0");					/* bytes after the terminator */
	assert_int_equal(pg_startup_with_user(in, n, "iam", out, sizeof(out)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_user_replaced_database_kept),
		cmocka_unit_test(test_default_database_made_explicit),
		cmocka_unit_test(test_empty_database_made_explicit),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

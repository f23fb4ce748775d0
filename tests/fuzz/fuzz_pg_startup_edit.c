/*
 * fuzz_pg_startup_edit.c - libFuzzer target: for any StartupMessage that
 * pg_startup_parse() accepts, pg_startup_with_user() builds a packet that
 * parses again, with the new user, the same database (the client's user
 * where none or an empty one was named) and every other parameter kept; for any input at
 * all it stays within its output buffer.
 */
#include <stdint.h>
#include <string.h>

#include "protocol/pg_startup.h"
#include "protocol/pg_startup_edit.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NEW_USER "walgate-sa@project.iam"

static void check_rewrite(const struct pg_startup *in, const uint8_t *out, size_t n)
{
	struct pg_startup st;

	CHECK(pg_startup_parse(out, n, &st) == PG_STARTUP_OK);
	CHECK(st.kind == PG_STARTUP_MESSAGE && st.code == in->code);
	CHECK(!strcmp(st.user, NEW_USER));
	/* an empty database is none to the server: the client's user is named */
	CHECK(!strcmp(st.database, in->database && *in->database ? in->database : in->user));
	CHECK(st.nparams == in->nparams + (in->database && *in->database ? 0 : 1));
	CHECK((st.replication == NULL) == (in->replication == NULL));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[16384];
	struct pg_startup in;
	size_t n = pg_startup_with_user(data, size, NEW_USER, out, sizeof(out));

	if (pg_startup_parse(data, size, &in) != PG_STARTUP_OK || in.kind != PG_STARTUP_MESSAGE)
		return 0;
	if (n > 0)
		check_rewrite(&in, out, n);
	return 0;
}

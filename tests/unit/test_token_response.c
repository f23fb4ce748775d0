/*
 * test_token_response.c - the metadata server's token answer: what is
 * taken, and every way an answer is refused before its token could be
 * sent upstream as a password.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "access/token_response.h"

static enum token_parse parse(const char *body, char *token, int64_t *life)
{
	return token_response_parse(body, strlen(body), token, TOKEN_MAX_LEN + 1, life);
}

static void test_metadata_answer(void **state)
{
	char token[TOKEN_MAX_LEN + 1];
	int64_t life = 0;

	(void)state;
	assert_int_equal(parse("{\"access_token\":\"ya29.c.abc-DEF_123\",\"expires_in\":3599,"
			       "\"token_type\":\"Bearer\"}", token, &life), TOKEN_OK);
	assert_string_equal(token, "ya29.c.abc-DEF_123");
	assert_int_equal(life, 3599);
}

static void test_refusals(void **state)
{
	static const struct {
		const char *body;
		enum token_parse verdict;
	} cases[] = {
		{ "", TOKEN_NOT_JSON },
		{ "not json", TOKEN_NOT_JSON },
		{ "[\"access_token\"]", TOKEN_NOT_JSON },
		{ "{\"access_token\":\"a\",\"access_token\":\"b\",\"expires_in\":1}", TOKEN_NOT_JSON },
		{ "{\"expires_in\":3599}", TOKEN_NO_TOKEN },
		{ "{\"access_token\":\"\",\"expires_in\":3599}", TOKEN_NO_TOKEN },
		{ "{\"access_token\":42,\"expires_in\":3599}", TOKEN_NO_TOKEN },
		{ "{\"access_token\":\"a\\nLOG forged\",\"expires_in\":3599}", TOKEN_BAD_TOKEN },
		/* jansson refuses \u0000 unless asked to allow it */
		{ "{\"access_token\":\"a\\u0000b\",\"expires_in\":3599}", TOKEN_NOT_JSON },
		{ "{\"access_token\":\"a\\u001bb\",\"expires_in\":3599}", TOKEN_BAD_TOKEN },
		{ "{\"access_token\":\"abc\"}", TOKEN_NO_LIFETIME },
		{ "{\"access_token\":\"abc\",\"expires_in\":0}", TOKEN_NO_LIFETIME },
		{ "{\"access_token\":\"abc\",\"expires_in\":-5}", TOKEN_NO_LIFETIME },
		{ "{\"access_token\":\"abc\",\"expires_in\":\"3599\"}", TOKEN_NO_LIFETIME },
	};
	char token[TOKEN_MAX_LEN + 1];
	int64_t life = 7;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].body, token, &life), cases[i].verdict);
		assert_string_equal(token, "");	/* nothing half-taken */
		assert_int_equal(life, 7);
		assert_non_null(token_parse_reason(cases[i].verdict));
	}
}

/* The longest token is taken; one byte more is refused; a short buffer is never overrun. */
static void test_lengths(void **state)
{
	static char body[TOKEN_MAX_LEN + 100], token[TOKEN_MAX_LEN + 1];
	char small[8];
	int64_t life;
	int n;

	(void)state;
	n = snprintf(body, sizeof(body), "{\"access_token\":\"%0*d\",\"expires_in\":60}", TOKEN_MAX_LEN, 0);
	assert_int_equal(token_response_parse(body, (size_t)n, token, sizeof(token), &life), TOKEN_OK);
	assert_int_equal(strlen(token), TOKEN_MAX_LEN);
	n = snprintf(body, sizeof(body), "{\"access_token\":\"%0*d\",\"expires_in\":60}", TOKEN_MAX_LEN + 1, 0);
	assert_int_equal(token_response_parse(body, (size_t)n, token, sizeof(token), &life), TOKEN_BAD_TOKEN);
	assert_int_equal(token_response_parse("{\"access_token\":\"12345678\",\"expires_in\":1}", 42,
					      small, sizeof(small), &life), TOKEN_BAD_TOKEN);
	/* the length given is the end: a body cut short is not JSON */
	assert_int_equal(token_response_parse("{\"access_token\":\"abc\",\"expires_in\":60}", 20,
					      token, sizeof(token), &life), TOKEN_NOT_JSON);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metadata_answer),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_lengths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

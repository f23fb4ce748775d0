/*
 * fuzz_token_response.c - libFuzzer target: token_response_parse() on
 * arbitrary bytes either refuses them and leaves the token empty, or
 * returns a token that is non-empty, within TOKEN_MAX_LEN, free of
 * control bytes (it becomes a password message), with a positive lifetime.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/token_response.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char token[TOKEN_MAX_LEN + 1];
	int64_t life = 0;
	enum token_parse verdict = token_response_parse((const char *)data, size, token,
							 sizeof(token), &life);
	size_t n = strnlen(token, sizeof(token));

	CHECK(n < sizeof(token));
	CHECK(token_parse_reason(verdict) != NULL);
	if (verdict != TOKEN_OK) {
		CHECK(n == 0);
		return 0;
	}
	CHECK(n > 0 && n <= TOKEN_MAX_LEN && life > 0);
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)token[i] >= 0x20 && token[i] != 0x7f);
	return 0;
}

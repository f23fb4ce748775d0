/*
 * token_response.c - the access token and its lifetime from a metadata
 * server's JSON answer, checked before walgate sends it anywhere as a
 * password. JSON itself is jansson's to read.
 */
#include "access/token_response.h"

#include <jansson.h>
#include <stdbool.h>
#include <string.h>

static const char *const reasons[] = {
	[TOKEN_OK] = "ok",
	[TOKEN_NOT_JSON] = "the answer is not a JSON object",
	[TOKEN_NO_TOKEN] = "the answer has no access_token",
	[TOKEN_BAD_TOKEN] = "the access_token is too long or holds control characters",
	[TOKEN_NO_LIFETIME] = "the answer has no positive expires_in",
};

const char *token_parse_reason(enum token_parse verdict)
{
	return (size_t)verdict < sizeof(reasons) / sizeof(reasons[0]) ? reasons[verdict] : "?";
}

/* A password travels as a C string in a PasswordMessage: no NUL, and no control bytes. */
static bool token_is_clean(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static enum token_parse take_token(const json_t *root, char *token, size_t cap)
{
	const json_t *t = json_object_get(root, "access_token");
	size_t n;

	if (!json_is_string(t) || (n = json_string_length(t)) == 0)
		return TOKEN_NO_TOKEN;
	if (n > TOKEN_MAX_LEN || n + 1 > cap || !token_is_clean(json_string_value(t), n))
		return TOKEN_BAD_TOKEN;
	memcpy(token, json_string_value(t), n);
	token[n] = '\0';
	return TOKEN_OK;
}

enum token_parse token_response_parse(const char *body, size_t len, char *token, size_t cap,
				      int64_t *expires_in)
{
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	const json_t *life;
	enum token_parse verdict;

	if (cap > 0)
		token[0] = '\0';
	if (!json_is_object(root)) {
		json_decref(root);
		return TOKEN_NOT_JSON;
	}
	verdict = take_token(root, token, cap);
	life = json_object_get(root, "expires_in");
	if (verdict == TOKEN_OK && (!json_is_integer(life) || json_integer_value(life) <= 0))
		verdict = TOKEN_NO_LIFETIME;
	if (verdict == TOKEN_OK)
		*expires_in = (int64_t)json_integer_value(life);
	else if (cap > 0)
		memset(token, 0, cap);
	json_decref(root);
	return verdict;
}

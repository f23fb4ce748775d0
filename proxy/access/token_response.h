/*
 * token_response.h - reading an OAuth 2.0 access-token response, as the
 * GCE/GKE metadata server sends it for
 * /computeMetadata/v1/instance/service-accounts/default/token:
 *
 *   {"access_token":"ya29....","expires_in":3599,"token_type":"Bearer"}
 *
 * Pure: bytes in, a token and its lifetime out.
 */
#ifndef WALGATE_TOKEN_RESPONSE_H
#define WALGATE_TOKEN_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

/* PostgreSQL limits a password message to a few kB; OAuth tokens are shorter. */
#define TOKEN_MAX_LEN 4096

enum token_parse {
	TOKEN_OK,
	TOKEN_NOT_JSON,		/* not a JSON object */
	TOKEN_NO_TOKEN,		/* no non-empty string "access_token" */
	TOKEN_BAD_TOKEN,	/* too long, or bytes a password cannot carry (NUL, control) */
	TOKEN_NO_LIFETIME,	/* no positive integer "expires_in" */
};

/*
 * Parse body (len bytes, not NUL-terminated). On TOKEN_OK, token holds the
 * NUL-terminated access token (cap >= TOKEN_MAX_LEN + 1) and *expires_in
 * its lifetime in seconds.
 */
enum token_parse token_response_parse(const char *body, size_t len, char *token, size_t cap,
				      int64_t *expires_in);

/* A short English reason for a verdict, for log lines and errors. */
const char *token_parse_reason(enum token_parse verdict);

#endif

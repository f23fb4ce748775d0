/*
 * upstream_cred.h - where walgate's upstream password comes from under
 * auth = scram, per auth-file user or for all ([auth] upstream_password):
 *   auth-file      the user's plaintext password in the auth file (or the
 *                  ClientKey the client proved, for a verifier);
 *   file:PATH      the first line of PATH, read at each login, so that an
 *                  external refresher can rotate it without a reload;
 *   gce-metadata   the metadata server's OAuth access token (token_source.h),
 *                  for AlloyDB and Cloud SQL IAM database login.
 * Errors name the source and the reason, never the secret.
 */
#ifndef WALGATE_UPSTREAM_CRED_H
#define WALGATE_UPSTREAM_CRED_H

#include <stdbool.h>
#include <stddef.h>

#include "core/cred_spec.h"

struct token_source;

/*
 * The password spec gives (a spec that cred_spec_parse() took, not
 * auth-file) into out (cap bytes). false with the reason in why.
 */
bool cred_fetch(const char *spec, struct token_source *tokens, char *out, size_t cap,
		char *why, size_t whylen);

#endif

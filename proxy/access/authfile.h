/*
 * authfile.h - the users walgate authenticates itself (auth = scram): one
 * line per user, "name" "secret", where the secret is a SCRAM-SHA-256
 * verifier as pg_authid stores it or a plaintext password. A plaintext
 * password goes through SASLprep (saslprep.h) before its verifier is
 * derived, as PostgreSQL's own verifiers are.
 *
 * Options may follow the two strings, each key="value" (a doubled quote
 * inside stands for one), to log in upstream otherwise than as the client:
 *   upstream_user="sa@project.iam"         the upstream role's name;
 *   upstream_password="file:/run/pw"       where its password comes from
 *                                          (upstream_cred.h).
 * They override [auth] upstream_user and upstream_password for this user.
 */
#ifndef WALGATE_AUTHFILE_H
#define WALGATE_AUTHFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/scram.h"

struct auth_user {
	char *name;
	char *password;			/* NULL when the file holds a verifier */
	struct scram_verifier verifier;	/* derived at load time from a password */
	char *upstream_user;		/* option, or NULL: [auth] upstream_user */
	char *upstream_password;	/* option (a source spec), or NULL: [auth] upstream_password */
};

struct auth_users {
	struct auth_user *v;		/* sorted by name */
	size_t n;
	/*
	 * The iteration count of made-up verifiers for unknown users: the one
	 * most entries have (ties: the larger), so that "i=" does not tell an
	 * unknown user from a known one. Their salts come from a secret kept
	 * for the life of the process (worker_shared), not from this file.
	 */
	int mock_iterations;
};

/* The process's secret behind made-up verifiers (worker_shared.mock_secret). */
struct salt_secret {
	const uint8_t *bytes;
	size_t len;
};

/*
 * Read and check path. Refused: a file others may read or write, a line
 * that is not two quoted strings, a user listed twice, a malformed
 * verifier. NULL with "path:line: reason" in err. A plaintext password's
 * verifier gets the salt ss gives an unknown user of that name (random
 * when ss is NULL), so that salts tell no user from another, and stay
 * the same across reloads.
 */
struct auth_users *auth_users_load(const char *path, const struct salt_secret *ss,
				   char *err, size_t errlen);
/* Does any user's upstream_password option name a source of this kind? */
bool auth_users_use_source(const struct auth_users *users, int cred_kind);
const struct auth_user *auth_users_find(const struct auth_users *users, const char *name);
void auth_users_free(struct auth_users *users);

#endif

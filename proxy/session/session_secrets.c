/*
 * session_secrets.c - freeing a session's credentials, wiped first (see
 * session_secrets.h).
 */
#include "session/session_secrets.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "access/kdf.h"

void session_auth_free(struct session_auth *a)
{
	if (!a)
		return;
	if (a->kdf)
		kdf_cancel(a->kdf);
	if (a->password) {
		OPENSSL_cleanse(a->password, strlen(a->password));
		free(a->password);
	}
	free(a->upstream_user);
	free(a->startup);
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
}

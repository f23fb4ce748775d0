/*
 * session_secrets.h - the credentials of one session under auth = scram:
 * the state of walgate's SCRAM exchanges with the client and with the
 * upstream, and what it keeps from the first to log in upstream (the
 * password from the auth file or its source, or the ClientKey the client
 * proved it holds). Freeing wipes them. Depends on no other session file.
 */
#ifndef WALGATE_SESSION_SECRETS_H
#define WALGATE_SESSION_SECRETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/scram.h"

struct kdf_job;

/*
 * walgate's own login upstream, one step per message of the upstream's; any
 * message that is not the next expected one ends the login.
 */
enum upstream_login_step {
	UPSTREAM_LOGIN_START,		/* nothing asked yet */
	UPSTREAM_LOGIN_PASSWORD_SENT,	/* cleartext or md5 answered: AuthenticationOk or error next */
	UPSTREAM_LOGIN_SASL_FIRST_SENT,	/* SASLInitialResponse sent: SASLContinue next */
	UPSTREAM_LOGIN_SALTING,		/* SaltedPassword being computed (kdf.h): nothing may come */
	UPSTREAM_LOGIN_SASL_FINAL_SENT,	/* SASLResponse sent: SASLFinal next */
	UPSTREAM_LOGIN_VERIFIED,	/* the server's signature checked: AuthenticationOk next */
};

struct session_auth {
	bool known;				/* the user is in the auth file */
	bool offered_plus;			/* SCRAM-SHA-256-PLUS was offered to the client */
	int step;				/* client messages taken: 0, 1, 2 */
	char *password;				/* from the auth file or its source, or NULL */
	const char *password_source;		/* "gce-metadata" or "file" when password came from one */
	char *upstream_user;			/* NULL: the client's (session_cred.c) */
	uint8_t *startup;			/* the StartupMessage naming upstream_user, or NULL */
	size_t startup_len;
	struct scram_verifier verifier;
	bool have_client_key;
	uint8_t client_key[SCRAM_KEY_LEN];
	enum upstream_login_step upstream;
	struct kdf_job *kdf;			/* while UPSTREAM_LOGIN_SALTING */
	union {
		struct scram_server server;	/* with the client */
		struct scram_client client;	/* with the upstream */
	} x;
};

void session_auth_free(struct session_auth *a);

#endif

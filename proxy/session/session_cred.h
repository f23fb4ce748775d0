/*
 * session_cred.h - whom walgate logs in upstream as, and with what password
 * (auth = scram), once the client has authenticated.
 */
#ifndef WALGATE_SESSION_CRED_H
#define WALGATE_SESSION_CRED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct session;

/* The upstream user and password; false once the session is ending. */
bool session_cred_prepare(struct session *s);
/* The user walgate logs in upstream as: the client's, or the one configured for it. */
const char *session_upstream_user(const struct session *s);

#endif

/*
 * session_login_auth.h - walgate logging in upstream on the client's behalf
 * (auth = scram), one whole message of the upstream's at a time.
 */
#ifndef WALGATE_SESSION_LOGIN_AUTH_H
#define WALGATE_SESSION_LOGIN_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "session/session_int.h"

enum login_step session_login_auth_take(struct session *s, const uint8_t *msg, size_t len);

#endif

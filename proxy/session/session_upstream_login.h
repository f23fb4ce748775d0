/*
 * session_upstream_login.h - walgate logging in upstream on the client's behalf
 * (auth = scram), one whole message of the upstream's at a time.
 */
#ifndef WALGATE_SESSION_UPSTREAM_LOGIN_H
#define WALGATE_SESSION_UPSTREAM_LOGIN_H

#include <stddef.h>
#include <stdint.h>

#include "session/session_int.h"

enum login_step session_upstream_login_take(struct session *s, const uint8_t *msg, size_t len);

#endif

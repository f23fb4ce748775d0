/*
 * session_login.h - the upstream's messages of the login exchange, one by one,
 * until AuthenticationOk or the error that ends it.
 */
#ifndef WALGATE_SESSION_LOGIN_H
#define WALGATE_SESSION_LOGIN_H

#include "session/session_int.h"

/* Take the whole messages in the upstream's input. */
enum login_step session_login_feed(struct session *s);

#endif

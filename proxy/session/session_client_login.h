/*
 * session_client_login.h - walgate's SCRAM exchange with the client (auth = scram):
 * it starts when the StartupMessage is taken, and ends by starting the
 * upstream login (session_upstream.h) or by failing the session.
 */
#ifndef WALGATE_SESSION_CLIENT_LOGIN_H
#define WALGATE_SESSION_CLIENT_LOGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct session;

/* Offer SASL to the client (the StartupMessage has been taken). */
void session_client_login_begin(struct session *s);
/* The client's next message of the exchange is in its input buffer. */
void session_client_login_read(struct session *s);

#endif

/*
 * session_int.h - session.c's functions for the other files of session/:
 * changing state, timers, queueing to the client, and the one way out.
 * Nothing outside session/ includes it. Calls go one way only: the phase
 * files (client, auth, upstream, login) call down into session.c, never
 * the other way.
 */
#ifndef WALGATE_SESSION_INT_H
#define WALGATE_SESSION_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "session/session.h"
#include "worker/worker.h"

/* What a phase file's handler of the upstream's login messages says next. */
enum login_step {
	LOGIN_MORE,		/* wait for more of the upstream's login messages */
	LOGIN_DONE,		/* AuthenticationOk went to the client: stream from here */
	LOGIN_CLOSED,		/* the session is closing */
};

/* session.c */
struct session *session_new(struct worker *w, int fd, const struct sockaddr *peer,
			    enum session_state state);
void session_set_state(struct session *s, enum session_state next);
void session_set_peer(struct session *s, const struct sockaddr *sa);
void session_arm_timer(struct session *s, int64_t ms);
/* From the startup packet to AuthenticationOk: what is left of auth_timeout. */
void session_arm_auth_deadline(struct session *s);
/* The one way out: flush what is queued, then free (never from inside the caller). */
void session_close(struct session *s, const char *reason);
/* In CLOSING: free each side once its queued output is written; then the session. */
void session_closing_progress(struct session *s);
/* Queue an ErrorResponse where the client expects a message to start. */
bool session_tell_client(struct session *s, const char *severity, const char *sqlstate,
			 const char *message);
void session_fail(struct session *s, const char *sqlstate, const char *message, const char *reason);
void session_reject(struct session *s, enum reject_reason reason, const char *why);
void session_protocol_violation(struct session *s, const char *sqlstate, const char *message);
/* Close the upstream leg now (its claim on a slot goes with it). */
void session_drop_server(struct session *s);
/* Queue msg[0..len) for the client as a message of the login exchange. */
void session_login_to_client(struct session *s, const uint8_t *msg, size_t len);

#endif

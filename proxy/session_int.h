/*
 * session_int.h - what session.c, session_client.c and session_upstream.c
 * share; nothing else in proxy/ includes it. Calls go one way only:
 * client -> upstream -> core (session.c).
 */
#ifndef WALGATE_SESSION_INT_H
#define WALGATE_SESSION_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "session.h"
#include "worker.h"

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
/* The upstream leg is closed (its claim on a slot goes with it). */
void session_drop_server(struct session *s);

/* session_auth.c */
void session_auth_begin(struct session *s);
/* session_cred.c: the upstream user and password; false once the session is ending. */
bool session_cred_prepare(struct session *s);
/* The user walgate logs in upstream as: the client's, or the one configured for it. */
const char *session_upstream_user(const struct session *s);
void session_auth_read(struct session *s);

/* session_login.c */
enum login_step {
	LOGIN_MORE,		/* wait for more of the upstream's login messages */
	LOGIN_DONE,		/* AuthenticationOk went to the client: stream from here */
	LOGIN_CLOSED,		/* the session is closing */
};
enum login_step session_login_feed(struct session *s);
/* Queue msg[0..len) for the client as a message of the login exchange. */
void session_login_to_client(struct session *s, const uint8_t *msg, size_t len);

/* session_login_auth.c: auth = scram, one whole message of the upstream's login. */
enum login_step session_login_auth_take(struct session *s, const uint8_t *msg, size_t len);

/* session_upstream.c */
/* Log in: connect to the configured upstream, as server_tls says. */
void session_connect_upstream(struct session *s);
/* A matched CancelRequest: to t's address, the way t's session opened its leg. */
void session_connect_cancel(struct session *s, const struct cancel_target *t);
void session_forward_to_server(struct session *s);

/* session_takeover.c: replication sessions' claims on slots, and taking a stale one over. */
void session_takeover_attach(struct session *s);
/* The upstream leg is gone: the slot is no longer this session's. */
void session_takeover_server_gone(struct session *s);
void session_takeover_free(struct session *s);

#endif

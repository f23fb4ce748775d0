/*
 * session_upstream.h - a session's upstream side: connecting for a login or a
 * cancel, and relaying once logged in.
 */
#ifndef WALGATE_SESSION_UPSTREAM_H
#define WALGATE_SESSION_UPSTREAM_H



struct session;
struct cancel_target;

/* Log in: connect to the configured upstream, as server_tls says. */
void session_connect_upstream(struct session *s);
/* A matched CancelRequest: to t's address, the way t's session opened its leg. */
void session_connect_cancel(struct session *s, const struct cancel_target *t);
/* Move what the client sent towards the upstream. */
void session_forward_to_server(struct session *s);

#endif

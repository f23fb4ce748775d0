/*
 * session_upstream.h - a session's upstream side: connecting for a login or a
 * cancel; once connected, session_relay.h takes both legs.
 */
#ifndef WALGATE_SESSION_UPSTREAM_H
#define WALGATE_SESSION_UPSTREAM_H



struct session;
struct cancel_target;

/* Log in: connect to the configured upstream, as server_tls says. */
void session_connect_upstream(struct session *s);
/* A matched CancelRequest: to t's address, the way t's session opened its leg. */
void session_connect_cancel(struct session *s, const struct cancel_target *t);

#endif

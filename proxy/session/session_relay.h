/*
 * session_relay.h - a session with both legs open (LOGIN, then RELAY): the
 * legs taken over from their bufferevents and driven by walgate's own I/O
 * (relay/relay_io.h), the upstream's login exchange, then streaming.
 */
#ifndef WALGATE_SESSION_RELAY_H
#define WALGATE_SESSION_RELAY_H

struct session;

/* Connected (and TLS set up) to the upstream: take both legs over, log in, relay. */
void session_start_relay(struct session *s);

#endif

/*
 * session_client.h - a session's client side: where an accepted connection
 * becomes a session.
 */
#ifndef WALGATE_SESSION_CLIENT_H
#define WALGATE_SESSION_CLIENT_H

#include <sys/socket.h>

struct worker;

/* Take over an accepted socket. */
void session_accept(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen);

#endif

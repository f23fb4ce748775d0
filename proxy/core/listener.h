/*
 * listener.h - the sockets walgate accepts clients on.
 */
#ifndef WALGATE_LISTENER_H
#define WALGATE_LISTENER_H

#include <sys/socket.h>

struct config;
struct event_base;
struct listener_set;

/* Takes over an accepted socket. */
typedef void (*listener_accept_fn)(void *arg, int fd, const struct sockaddr *peer, socklen_t len);

/* Bind and listen on every configured address; NULL (logged) if any fails. */
struct listener_set *listeners_open(struct event_base *base, const struct config *cfg,
				    listener_accept_fn on_accept, void *arg);

/*
 * The same for an HTTP server (the metrics endpoint): each socket is bound
 * to http, which owns it from then on; accepting pauses on exhaustion too.
 */
struct config_addr_list;
struct evhttp;
struct listener_set *listeners_open_http(struct event_base *base, const struct config_addr_list *addrs,
					 struct evhttp *http);

/* Stop accepting and close the sockets. */
void listeners_close(struct listener_set *ls);

#endif

/*
 * listener.h - the sockets walgate accepts clients on.
 */
#ifndef WALGATE_LISTENER_H
#define WALGATE_LISTENER_H

struct config;
struct worker;
struct listener_set;

/* Bind and listen on every configured address; NULL (logged) if any fails. */
struct listener_set *listeners_open(struct worker *w, const struct config *cfg);

/*
 * The same for an HTTP server (the metrics endpoint): each socket is bound
 * to http, which owns it from then on; accepting pauses on exhaustion too.
 */
struct config_addr_list;
struct evhttp;
struct listener_set *listeners_open_http(struct worker *w, const struct config_addr_list *addrs,
					 struct evhttp *http);

/* Stop accepting and close the sockets. */
void listeners_close(struct listener_set *ls);

#endif

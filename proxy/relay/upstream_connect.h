/*
 * upstream_connect.h - opening a TCP connection to the upstream server: resolve
 * its name asynchronously, try each address in order, each within the
 * connect timeout.
 */
#ifndef WALGATE_UPSTREAM_CONNECT_H
#define WALGATE_UPSTREAM_CONNECT_H

#include <sys/socket.h>

struct bufferevent;
struct event_base;
struct evdns_base;
struct upstream_connect;

/*
 * Called exactly once. On success bev is connected (the callee owns it),
 * addr is the address it reached and error is NULL; on failure bev is NULL
 * and error says why, naming the upstream. Never called from inside
 * upstream_connect_start.
 */
typedef void (*upstream_done_fn)(struct bufferevent *bev, const struct sockaddr *addr,
				 socklen_t addrlen, const char *error, void *arg);

/*
 * Start connecting to host:port, or only to pinned when it is not NULL
 * (a cancel request must reach the server its session is on). Returns
 * NULL when nothing could be started (out of memory).
 */
struct upstream_connect *upstream_connect_start(struct event_base *base, struct evdns_base *dns,
						const char *host, int port,
						const struct sockaddr *pinned, socklen_t pinned_len,
						upstream_done_fn done, void *arg);

/* Abandon a connect in progress; done is not called. */
void upstream_connect_abort(struct upstream_connect *uc);

#endif

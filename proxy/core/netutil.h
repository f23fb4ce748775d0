/*
 * netutil.h - small socket helpers shared by the listener, the session
 * and the upstream connector, and the resolver the workers and the
 * monitor use.
 */
#ifndef WALGATE_NETUTIL_H
#define WALGATE_NETUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct config;
struct event_base;
struct evdns_base;

/* TCP keepalive (and no Nagle delay) on a connected socket, as configured. */
void net_tune_socket(int fd, const struct config *cfg);

/* "127.0.0.1:5432" or "[::1]:5432"; IPv4-mapped IPv6 shown as IPv4. */
void net_format_addr(const struct sockaddr *sa, char *buf, size_t cap);

/*
 * Both ends of the connected socket have the same address: a process of
 * this host connected to the address it came in on (127.0.0.1 to
 * 127.0.0.1, or 10.0.0.5 to 10.0.0.5). Linux drops packets from outside
 * whose source is one of its own addresses, so no other host passes.
 */
bool net_peer_is_self(int fd);

/*
 * An asynchronous resolver on base, reading /etc/resolv.conf and
 * /etc/hosts (only /etc/hosts where there is no resolv.conf); it does not
 * keep the loop alive while idle. NULL (logged) on failure.
 */
struct evdns_base *net_dns_new(struct event_base *base);

#endif

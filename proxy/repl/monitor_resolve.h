/*
 * monitor_resolve.h - the host names of a libpq conninfo, resolved with
 * evdns before libpq sees them.
 *
 * PQconnectStartParams resolves host names with getaddrinfo(), which
 * blocks; on the control thread that would stall accepting clients and
 * serving metrics for as long as a resolver takes. So the monitor first
 * resolves every name in host= here, asynchronously, and hands libpq the
 * addresses as hostaddr= (host= stays, for TLS verification and SNI).
 */
#ifndef WALGATE_MONITOR_RESOLVE_H
#define WALGATE_MONITOR_RESOLVE_H

#include <stddef.h>

struct event_base;
struct evdns_base;
struct conninfo_lookup;

/* At most this many entries in a host= list. */
#define CONNINFO_HOSTS_MAX 16

/*
 * On success hostaddr is the list for libpq's hostaddr=, one entry per
 * host= entry ("" where libpq needs no lookup: a socket directory, a
 * numeric address); on failure hostaddr is NULL and error says why.
 * Called from the event loop, never from inside conninfo_resolve_start.
 */
typedef void (*conninfo_resolved_fn)(void *arg, const char *hostaddr, const char *error);

/*
 * Start resolving the names in conninfo's host= (or PGHOST when it has
 * none). Returns NULL when nothing needs resolving (no name, or hostaddr=
 * given: connect as is) with err empty, or NULL with err set when the
 * conninfo cannot be read; otherwise done follows once.
 */
struct conninfo_lookup *conninfo_resolve_start(struct event_base *base, struct evdns_base *dns,
					       const char *conninfo, conninfo_resolved_fn done,
					       void *arg, char *err, size_t errlen);

/* Abandon a lookup under way; done is not called. */
void conninfo_resolve_cancel(struct conninfo_lookup *l);

#endif

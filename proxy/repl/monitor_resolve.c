/*
 * monitor_resolve.c - resolve the names of a conninfo's host= list with
 * evdns, in parallel, and build the matching hostaddr= list.
 */
#include "repl/monitor_resolve.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct host_lookup {
	struct conninfo_lookup *owner;
	char name[256];
	bool is_name;				/* needs resolving */
	struct evdns_getaddrinfo_request *req;
	char addr[INET6_ADDRSTRLEN];		/* the first address found */
};

struct conninfo_lookup {
	conninfo_resolved_fn done;
	void *arg;
	struct event *finish;			/* reports from the loop */
	unsigned nhosts, pending;
	char error[300];
	struct host_lookup hosts[CONNINFO_HOSTS_MAX];
	char hostaddr[CONNINFO_HOSTS_MAX * INET6_ADDRSTRLEN];
};

/* The value of keyword in the parsed options, or NULL when absent or empty. */
static const char *option(const PQconninfoOption *opts, const char *keyword)
{
	for (; opts->keyword; opts++)
		if (!strcmp(opts->keyword, keyword))
			return opts->val && *opts->val ? opts->val : NULL;
	return NULL;
}

/* A name libpq would hand to getaddrinfo: not a socket directory, not an address. */
static bool needs_lookup(const char *host)
{
	uint8_t buf[sizeof(struct in6_addr)];

	return host[0] != '\0' && host[0] != '/' && host[0] != '@' &&
	       inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1;
}

/* Split host= at commas; false (err set) when there are too many or one is too long. */
static bool split_hosts(struct conninfo_lookup *l, const char *hosts, char *err, size_t errlen)
{
	const char *p = hosts;

	for (;;) {
		size_t n = strcspn(p, ",");
		struct host_lookup *h;

		if (l->nhosts == CONNINFO_HOSTS_MAX || n >= sizeof(l->hosts[0].name)) {
			snprintf(err, errlen, "conninfo: too many or too long entries in host=");
			return false;
		}
		h = &l->hosts[l->nhosts++];
		h->owner = l;
		memcpy(h->name, p, n);
		h->name[n] = '\0';
		h->is_name = needs_lookup(h->name);
		if (p[n] == '\0')
			return true;
		p += n + 1;
	}
}

static void build_hostaddr(struct conninfo_lookup *l)
{
	size_t used = 0;

	l->hostaddr[0] = '\0';
	for (unsigned i = 0; i < l->nhosts; i++)
		used += (size_t)snprintf(l->hostaddr + used, sizeof(l->hostaddr) - used, "%s%s",
					 i ? "," : "", l->hosts[i].addr);
}

static void finish(evutil_socket_t fd, short what, void *arg)
{
	struct conninfo_lookup *l = arg;
	conninfo_resolved_fn done = l->done;
	void *done_arg = l->arg;
	char error[sizeof(l->error)];
	bool failed = l->error[0] != '\0';

	memcpy(error, l->error, sizeof(error));
	if (!failed)
		build_hostaddr(l);
	/* l is freed after done has taken the list: done may start the next lookup */
	done(done_arg, failed ? NULL : l->hostaddr, failed ? error : NULL);
	event_free(l->finish);
	free(l);
}

static void resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct host_lookup *h = arg;
	struct conninfo_lookup *l;

	/* after conninfo_resolve_cancel, possibly later from the loop: h is gone */
	if (result == EVUTIL_EAI_CANCEL)
		return;
	l = h->owner;
	h->req = NULL;
	if (result != 0 && !l->error[0])
		snprintf(l->error, sizeof(l->error), "could not resolve host \"%s\": %s", h->name,
			 evutil_gai_strerror(result));
	else if (result == 0) {
		const void *a = res->ai_family == AF_INET6 ?
			(const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr :
			(const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;

		evutil_inet_ntop(res->ai_family, a, h->addr, sizeof(h->addr));
	}
	if (res)
		evutil_freeaddrinfo(res);
	if (--l->pending == 0)
		event_active(l->finish, EV_TIMEOUT, 0);
}

static void start_lookups(struct conninfo_lookup *l, struct evdns_base *dns)
{
	struct evutil_addrinfo hints = { 0 };

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	for (unsigned i = 0; i < l->nhosts; i++)
		l->pending += l->hosts[i].is_name;
	l->pending++;		/* held until every request is out: answers may come at once */
	for (unsigned i = 0; i < l->nhosts; i++) {
		struct host_lookup *h = &l->hosts[i];
		struct evdns_getaddrinfo_request *req;

		if (!h->is_name)
			continue;
		req = evdns_getaddrinfo(dns, h->name, NULL, &hints, resolved, h);
		if (req)
			h->req = req;	/* NULL when it answered at once (/etc/hosts, a failure) */
	}
	if (--l->pending == 0)
		event_active(l->finish, EV_TIMEOUT, 0);
}

struct conninfo_lookup *conninfo_resolve_start(struct event_base *base, struct evdns_base *dns,
					       const char *conninfo, conninfo_resolved_fn done,
					       void *arg, char *err, size_t errlen)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
	const char *hosts, *hostaddr;
	struct conninfo_lookup *l = NULL;
	bool any = false;

	err[0] = '\0';
	if (!opts) {
		snprintf(err, errlen, "conninfo: %s", perr ? perr : "out of memory");
		PQfreemem(perr);
		return NULL;
	}
	hosts = option(opts, "host") ? option(opts, "host") : getenv("PGHOST");
	hostaddr = option(opts, "hostaddr") ? option(opts, "hostaddr") : getenv("PGHOSTADDR");
	if (hosts && *hosts && !(hostaddr && *hostaddr)) {
		l = calloc(1, sizeof(*l));
		if (!l)
			snprintf(err, errlen, "out of memory");
		else if (split_hosts(l, hosts, err, errlen))
			for (unsigned i = 0; i < l->nhosts; i++)
				any = any || l->hosts[i].is_name;
	}
	PQconninfoFree(opts);	/* the names were copied */
	if (any && !(l->finish = event_new(base, -1, 0, finish, l)))
		snprintf(err, errlen, "out of memory");
	if (!any || !l->finish) {
		free(l);
		return NULL;
	}
	l->done = done;
	l->arg = arg;
	start_lookups(l, dns);
	return l;
}

void conninfo_resolve_cancel(struct conninfo_lookup *l)
{
	if (!l)
		return;
	for (unsigned i = 0; i < l->nhosts; i++) {
		struct evdns_getaddrinfo_request *req = l->hosts[i].req;

		l->hosts[i].req = NULL;
		if (req)
			evdns_getaddrinfo_cancel(req);	/* resolved gets EVUTIL_EAI_CANCEL, maybe later */
	}
	event_free(l->finish);
	free(l);
}

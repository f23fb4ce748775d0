/*
 * upstream_connect.c - connecting to the upstream server.
 *
 * One upstream_connect walks: resolve (evdns, bounded by the connect
 * timeout) -> connect to each address in turn (each bounded by the
 * connect timeout) -> report once. Every step runs from the loop (the
 * "step" event or a bufferevent callback), never nested inside another
 * libevent call, so a failure can free everything without reentrancy.
 */
#include "relay/upstream_connect.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/netutil.h"

enum uc_phase {
	UC_START,
	UC_RESOLVING,
	UC_CONNECTING,
};

struct upstream_connect {
	struct event_base *base;
	struct evdns_base *dns;
	enum uc_phase phase;
	char label[320];		/* "host:port", for messages */
	char host[256];
	char port[8];
	struct timeval timeout;
	struct event *step;		/* runs the next step; also the resolve timeout */
	struct evdns_getaddrinfo_request *dns_req;
	struct evutil_addrinfo *ai_list;
	struct evutil_addrinfo *ai_next;
	struct evutil_addrinfo pinned_ai;
	struct sockaddr_storage pinned;
	struct bufferevent *bev;
	struct sockaddr_storage addr;	/* the address being tried */
	socklen_t addrlen;
	char error[256];
	upstream_done_fn done;
	void *arg;
};

static void uc_free(struct upstream_connect *uc)
{
	if (uc->dns_req) {
		struct evdns_getaddrinfo_request *req = uc->dns_req;

		uc->dns_req = NULL;
		evdns_getaddrinfo_cancel(req);	/* calls dns_done with EVUTIL_EAI_CANCEL */
	}
	if (uc->bev)
		bufferevent_free(uc->bev);
	if (uc->ai_list)
		evutil_freeaddrinfo(uc->ai_list);
	if (uc->step)
		event_free(uc->step);
	free(uc);
}

static void uc_finish(struct upstream_connect *uc)
{
	struct bufferevent *bev = uc->bev;

	uc->bev = NULL;
	if (bev) {
		bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
		bufferevent_set_timeouts(bev, NULL, NULL);
		uc->done(bev, (struct sockaddr *)&uc->addr, uc->addrlen, NULL, uc->arg);
	} else {
		char msg[640];

		snprintf(msg, sizeof(msg), "could not connect to upstream \"%s\": %s", uc->label,
			 uc->error[0] ? uc->error : "no address to try");
		uc->done(NULL, NULL, 0, msg, uc->arg);
	}
	uc_free(uc);
}

static void uc_schedule(struct upstream_connect *uc)
{
	event_del(uc->step);
	event_active(uc->step, EV_TIMEOUT, 0);
}

static void connect_event(struct bufferevent *bev, short what, void *arg)
{
	struct upstream_connect *uc = arg;

	if (what & BEV_EVENT_CONNECTED) {
		net_tune_socket(bufferevent_getfd(bev), config_current());
		uc_finish(uc);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(uc->error, sizeof(uc->error), "timeout after %ld ms",
			 (long)(uc->timeout.tv_sec * 1000 + uc->timeout.tv_usec / 1000));
	else
		snprintf(uc->error, sizeof(uc->error), "%s",
			 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	bufferevent_free(uc->bev);
	uc->bev = NULL;
	uc_schedule(uc);
}

static void try_next_address(struct upstream_connect *uc)
{
	struct evutil_addrinfo *ai = uc->ai_next;

	if (!ai) {
		uc_finish(uc);
		return;
	}
	uc->ai_next = ai->ai_next;
	memcpy(&uc->addr, ai->ai_addr, ai->ai_addrlen);
	uc->addrlen = (socklen_t)ai->ai_addrlen;
	uc->bev = bufferevent_socket_new(uc->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!uc->bev) {
		snprintf(uc->error, sizeof(uc->error), "out of memory");
		uc_finish(uc);
		return;
	}
	bufferevent_setcb(uc->bev, NULL, NULL, connect_event, uc);
	bufferevent_set_timeouts(uc->bev, NULL, &uc->timeout);
	/* A failure here has already been reported to connect_event (libevent 2.1). */
	(void)bufferevent_socket_connect(uc->bev, ai->ai_addr, (int)ai->ai_addrlen);
}

static void dns_done(int result, struct evutil_addrinfo *res, void *arg)
{
	struct upstream_connect *uc = arg;

	if (result == EVUTIL_EAI_CANCEL)
		return;		/* uc_free is under way */
	uc->dns_req = NULL;
	if (result != 0) {
		snprintf(uc->error, sizeof(uc->error), "could not resolve: %s",
			 evutil_gai_strerror(result));
		uc->ai_next = NULL;
	} else {
		uc->ai_list = res;
		uc->ai_next = res;
	}
	uc->phase = UC_CONNECTING;
	uc_schedule(uc);
}

static void start_resolving(struct upstream_connect *uc)
{
	struct evutil_addrinfo hints = { 0 };
	struct evdns_getaddrinfo_request *req;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	/*
	 * No AI_ADDRCONFIG: libevent does not count loopback or ULA addresses as
	 * IPv6 connectivity, and would refuse even "::1" on a host with only those.
	 */
	uc->phase = UC_RESOLVING;
	/* The step event doubles as the resolve timeout while resolving. */
	event_add(uc->step, &uc->timeout);
	req = evdns_getaddrinfo(uc->dns, uc->host, uc->port, &hints, dns_done, uc);
	if (uc->phase == UC_RESOLVING)
		uc->dns_req = req;	/* NULL when it answered at once */
}

static void step(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_connect *uc = arg;

	switch (uc->phase) {
	case UC_START:
		start_resolving(uc);
		break;
	case UC_RESOLVING:
		snprintf(uc->error, sizeof(uc->error), "timeout resolving the name");
		uc_finish(uc);
		break;
	case UC_CONNECTING:
		try_next_address(uc);
		break;
	}
}

struct upstream_connect *upstream_connect_start(struct event_base *base, struct evdns_base *dns,
						const char *host, int port,
						const struct sockaddr *pinned, socklen_t pinned_len,
						upstream_done_fn done, void *arg)
{
	const struct config *cfg = config_current();
	struct upstream_connect *uc = calloc(1, sizeof(*uc));

	if (!uc)
		return NULL;
	uc->base = base;
	uc->dns = dns;
	uc->done = done;
	uc->arg = arg;
	snprintf(uc->host, sizeof(uc->host), "%s", host);
	snprintf(uc->port, sizeof(uc->port), "%d", port);
	snprintf(uc->label, sizeof(uc->label), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	uc->timeout.tv_sec = cfg->upstream_connect_timeout_ms / 1000;
	uc->timeout.tv_usec = (cfg->upstream_connect_timeout_ms % 1000) * 1000;
	uc->step = evtimer_new(base, step, uc);
	if (!uc->step) {
		free(uc);
		return NULL;
	}
	if (pinned) {
		memcpy(&uc->pinned, pinned, pinned_len);
		uc->pinned_ai.ai_addr = (struct sockaddr *)&uc->pinned;
		uc->pinned_ai.ai_addrlen = pinned_len;
		uc->ai_next = &uc->pinned_ai;
		uc->phase = UC_CONNECTING;
	}
	uc_schedule(uc);
	return uc;
}

void upstream_connect_abort(struct upstream_connect *uc)
{
	uc_free(uc);
}

/*
 * metrics_conn.c - admission and deadlines of the metrics endpoint's
 * connections.
 *
 * evhttp (libevent 2.1) accepts by itself and offers no hook with the new
 * socket. It does ask us for each connection's bufferevent
 * (evhttp_set_bevcb) in the middle of accepting, before the socket is read:
 * we note the bufferevent and activate one event, which runs in the same
 * loop pass, after evhttp has attached the socket and before the loop can
 * read from it. There each arrival is judged: its source against
 * [metrics] allow (or, for walgate --probe, a connection from the address
 * it came in on, which metrics.c then serves /healthz and /readyz only),
 * the number open against METRICS_MAX_CONNECTIONS, and its
 * descriptor against the reserve kept for the client port. A refusal is a
 * close before any byte is read.
 *
 * Admitted connections carry one request (walgate answers with
 * "Connection: close") and one absolute deadline from accept, which a
 * trickling peer cannot push back: at METRICS_REQUEST_DEADLINE_MS the
 * connection is closed whatever it is doing.
 */
#include "observe/metrics_conn.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <sys/resource.h>

#include "core/allowlist.h"
#include "core/config.h"
#include "core/log.h"
#include "observe/prom_text.h"
#include "core/netutil.h"
#include "worker/worker.h"

struct mconn {
	TAILQ_ENTRY(mconn) link;
	struct metrics_conns *mc;
	struct bufferevent *bev;		/* arriving: ours until judged (a reference held) */
	struct evhttp_connection *evcon;
	struct event *deadline;
};

TAILQ_HEAD(mconn_list, mconn);

struct metrics_conns {
	struct event_base *base;
	struct worker_shared *shared;
	metrics_conn_gone_fn gone;
	void *arg;
	struct mconn_list arriving, open;
	size_t nopen;
	struct event *judge;
	bool gone_ran;
	uint64_t dropped[METRICS_REFUSALS + 1];	/* the refusals, then deadlines */
};

static const char *const drop_names[METRICS_REFUSALS + 1] = {
	[METRICS_REFUSED_NOT_ALLOWED] = "not_allowed",
	[METRICS_REFUSED_TOO_MANY] = "too_many_connections",
	[METRICS_REFUSED_DESCRIPTORS] = "descriptor_reserve",
	[METRICS_REFUSALS] = "deadline",
};

/*
 * Descriptors are handed out lowest first, so an accepted socket numbered
 * n means n are in use. The metrics port may not go into the last eighth
 * of RLIMIT_NOFILE: that is the client port's (with at most 16 metrics
 * connections, the clients keep the rest in any case).
 */
static int fd_ceiling(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT32_MAX)
		return INT32_MAX;
	return (int)(rl.rlim_cur - rl.rlim_cur / 8);
}

static void log_drop(struct metrics_conns *mc, const struct sockaddr *sa, int why)
{
	unsigned long suppressed = 0;
	char addr[64] = "?";

	if (!worker_deny_log_pass(mc->shared, &suppressed))
		return;
	if (sa)
		net_format_addr(sa, addr, sizeof(addr));
	log_info("metrics: closed connection from %s: %s%s", addr,
		 why == METRICS_REFUSED_NOT_ALLOWED ? "source not allowed" :
		 why == METRICS_REFUSED_TOO_MANY ? "too many metrics connections" :
		 why == METRICS_REFUSED_DESCRIPTORS ? "descriptors kept for clients" :
		 "no complete request and reply within the deadline",
		 suppressed ? "; more closes were not logged" : "");
}

static void forget(struct mconn *c)
{
	struct metrics_conns *mc = c->mc;

	TAILQ_REMOVE(&mc->open, c, link);
	mc->nopen--;
	event_free(c->deadline);
	free(c);
}

/* evhttp is freeing the connection (done, peer gone, deadline, shutdown). */
static void on_gone(struct evhttp_connection *evcon, void *arg)
{
	struct mconn *c = arg;

	c->mc->gone_ran = true;
	c->mc->gone(c->mc->arg, evcon);
	forget(c);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct mconn *c = arg;
	struct metrics_conns *mc = c->mc;

	mc->dropped[METRICS_REFUSALS]++;
	log_drop(mc, evhttp_connection_get_addr(c->evcon), METRICS_REFUSALS);
	mc->gone_ran = false;
	evhttp_connection_free(c->evcon);
	if (!mc->gone_ran)	/* evhttp did not call back (a state it calls unconnected) */
		forget(c);
}

static int judge_one(struct metrics_conns *mc, struct evhttp_connection *evcon, int fd)
{
	const struct sockaddr *sa = evhttp_connection_get_addr(evcon);

	/* walgate's own probe (a connection from the address it came in on) may ask for health */
	bool self = net_peer_is_self(fd);

	if (!sa || (!allowlist_match(config_current()->metrics_allow, sa) && !self))
		return METRICS_REFUSED_NOT_ALLOWED;
	if (mc->nopen >= METRICS_MAX_CONNECTIONS + (self ? METRICS_SELF_RESERVE : 0))
		return METRICS_REFUSED_TOO_MANY;
	if (fd >= fd_ceiling())		/* read each time: prlimit(1) may change it */
		return METRICS_REFUSED_DESCRIPTORS;
	return -1;
}

static bool admit(struct metrics_conns *mc, struct mconn *c)
{
	struct timeval tv = { METRICS_REQUEST_DEADLINE_MS / 1000, (METRICS_REQUEST_DEADLINE_MS % 1000) * 1000 };

	c->deadline = evtimer_new(mc->base, on_deadline, c);
	if (!c->deadline)
		return false;
	evtimer_add(c->deadline, &tv);
	evhttp_connection_set_closecb(c->evcon, on_gone, c);
	TAILQ_INSERT_TAIL(&mc->open, c, link);
	mc->nopen++;
	return true;
}

/* Runs in the loop pass that accepted: nothing has been read yet. */
static void judge_arrivals(evutil_socket_t unused, short what, void *arg)
{
	struct metrics_conns *mc = arg;
	struct mconn *c;

	while ((c = TAILQ_FIRST(&mc->arriving)) != NULL) {
		struct bufferevent *bev = c->bev;
		void *evcon = NULL;
		int fd = bufferevent_getfd(bev), why;

		TAILQ_REMOVE(&mc->arriving, c, link);
		bufferevent_getcb(bev, NULL, NULL, NULL, &evcon);	/* evhttp's own argument */
		c->bev = NULL;
		if (!evcon || fd < 0) {		/* evhttp gave up on it already */
			bufferevent_decref(bev);
			free(c);
			continue;
		}
		c->evcon = evcon;
		why = judge_one(mc, c->evcon, fd);
		if (why >= 0) {
			mc->dropped[why]++;
			log_drop(mc, evhttp_connection_get_addr(c->evcon), why);
		}
		if (why >= 0 || !admit(mc, c)) {
			evhttp_connection_free(c->evcon);
			free(c);
		}
		bufferevent_decref(bev);
	}
}

/* evhttp is accepting a connection: its bufferevent, judged later in this pass. */
static struct bufferevent *new_bufferevent(struct event_base *base, void *arg)
{
	struct metrics_conns *mc = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
	struct mconn *c = bev ? calloc(1, sizeof(*c)) : NULL;

	if (!c) {
		/* Not ours to judge: evhttp then fails this connection itself. */
		if (bev)
			bufferevent_free(bev);
		return NULL;
	}
	bufferevent_incref(bev);
	c->mc = mc;
	c->bev = bev;
	TAILQ_INSERT_TAIL(&mc->arriving, c, link);
	event_active(mc->judge, EV_TIMEOUT, 1);
	return bev;
}

struct metrics_conns *metrics_conns_new(struct event_base *base, struct evhttp *http,
					struct worker_shared *shared, metrics_conn_gone_fn gone,
					void *arg)
{
	struct metrics_conns *mc = calloc(1, sizeof(*mc));

	if (!mc || !(mc->judge = event_new(base, -1, 0, judge_arrivals, mc))) {
		free(mc);
		return NULL;
	}
	mc->base = base;
	mc->shared = shared;
	mc->gone = gone;
	mc->arg = arg;
	TAILQ_INIT(&mc->arriving);
	TAILQ_INIT(&mc->open);
	evhttp_set_bevcb(http, new_bufferevent, mc);
	return mc;
}

void metrics_conns_free(struct metrics_conns *mc)
{
	struct mconn *c;

	if (!mc)
		return;
	while ((c = TAILQ_FIRST(&mc->arriving)) != NULL) {
		TAILQ_REMOVE(&mc->arriving, c, link);
		bufferevent_decref(c->bev);
		free(c);
	}
	while ((c = TAILQ_FIRST(&mc->open)) != NULL)	/* evhttp_free() called back for each */
		forget(c);
	event_free(mc->judge);
	free(mc);
}

void metrics_conns_render(struct evbuffer *b, const struct metrics_conns *mc)
{
	metrics_family(b, "walgate_metrics_connections", "gauge",
		       "Connections to the metrics endpoint open now.");
	evbuffer_add_printf(b, "walgate_metrics_connections %zu\n", mc->nopen);
	metrics_family(b, "walgate_metrics_connections_dropped_total", "counter",
		       "Metrics connections closed by walgate, by reason.");
	for (int r = 0; r <= METRICS_REFUSALS; r++)
		evbuffer_add_printf(b, "walgate_metrics_connections_dropped_total{reason=\"%s\"} %llu\n",
				    drop_names[r], (unsigned long long)mc->dropped[r]);
}

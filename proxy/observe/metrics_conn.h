/*
 * metrics_conn.h - who may hold a connection to the metrics endpoint, and
 * for how long: the allow list at accept, a cap on connections at once, a
 * reserve of descriptors for the client port, one deadline per request.
 */
#ifndef WALGATE_METRICS_CONN_H
#define WALGATE_METRICS_CONN_H

#include <stddef.h>

struct evbuffer;
struct event_base;
struct evhttp;
struct evhttp_connection;
struct worker_shared;
struct metrics_conns;

/* Connections to the endpoint open at once; the next is closed at accept. */
#define METRICS_MAX_CONNECTIONS 16
/*
 * Beyond those, connections from the address they came in on (walgate
 * --probe, a kubelet on the pod's address) may use a few more, so that
 * peers holding the 16 cannot fail the health checks.
 */
#define METRICS_SELF_RESERVE 4
/* From accept to the end of the reply (one request per connection). */
#define METRICS_REQUEST_DEADLINE_MS 10000

enum metrics_refusal {
	METRICS_REFUSED_NOT_ALLOWED,	/* source not on [metrics] allow */
	METRICS_REFUSED_TOO_MANY,	/* METRICS_MAX_CONNECTIONS open already */
	METRICS_REFUSED_DESCRIPTORS,	/* the client port's descriptor reserve reached */
	METRICS_REFUSALS
};

/* Called when a connection goes away, before its requests are freed. */
typedef void (*metrics_conn_gone_fn)(void *arg, struct evhttp_connection *evcon);

/* Take charge of http's new connections. NULL: out of memory. */
struct metrics_conns *metrics_conns_new(struct event_base *base, struct evhttp *http,
					struct worker_shared *shared, metrics_conn_gone_fn gone,
					void *arg);
/* After evhttp_free(): what is left of the bookkeeping. */
void metrics_conns_free(struct metrics_conns *mc);

/* walgate_metrics_connections and walgate_metrics_connections_refused_total. */
void metrics_conns_render(struct evbuffer *b, const struct metrics_conns *mc);

#endif

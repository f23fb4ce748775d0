/*
 * metrics.h - the HTTP endpoint that Prometheus and orchestrators use:
 * /metrics (text exposition format 0.0.4), /slots (JSON), /healthz and
 * /readyz. mon (may be NULL) is the upstream poller whose view is shown.
 */
#ifndef WALGATE_METRICS_H
#define WALGATE_METRICS_H

#include <stdbool.h>

struct event_base;
struct workers;
struct worker_shared;
struct config;
struct metrics_server;
struct monitor;

/*
 * Serve on cfg's [metrics] listen addresses; returns NULL (logged) when one
 * cannot be bound. With no address configured, returns NULL and sets
 * *disabled.
 */
struct metrics_server *metrics_start(struct event_base *base, struct workers *workers,
				     struct worker_shared *shared, struct monitor *mon,
				     const struct config *cfg, bool *disabled);
void metrics_stop(struct metrics_server *m);

/* The workers' snapshot asked for by a scrape is ready (workers_merged()). */
void metrics_snapshot_ready(struct metrics_server *m);

/* Readiness also needs walgate to be accepting clients (not draining). */
void metrics_set_accepting(struct metrics_server *m, bool accepting);

#endif

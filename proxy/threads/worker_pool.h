/*
 * worker_pool.h - the worker threads (struct workers, workers_*()) and how the control thread talks to
 * them. The control thread (main.c) accepts connections, handles signals,
 * serves metrics and polls the upstream; it hands each accepted socket to
 * one worker, and sends every worker commands (adopt the new generation,
 * drain, close everything, stop, take a snapshot) through a mailbox. The
 * workers answer through one event on the control loop.
 *
 * Nothing is locked on the relay's hot path: a worker touches only its own
 * sessions and counters; the mailbox lock is taken once per accepted
 * connection or command.
 */
#ifndef WALGATE_WORKER_POOL_H
#define WALGATE_WORKER_POOL_H

#include <stdbool.h>
#include <sys/socket.h>

#include "worker/worker.h"

struct event_base;
struct workers;

struct workers_callbacks {
	void (*all_idle)(void *arg);		/* draining, and every worker has no session left */
	void (*snapshot_done)(void *arg);	/* workers_snapshot() finished: read workers_merged() */
	void *arg;
};

/*
 * Start n worker threads (each with its own event loop, having adopted the
 * latest generation). NULL (logged) on failure.
 */
struct workers *workers_start(struct event_base *control, unsigned n, struct worker_shared *shared,
			      const struct workers_callbacks *cb);

/* Stop every thread (sessions left are freed, not closed politely) and free. */
void workers_stop(struct workers *p);

unsigned workers_count(const struct workers *p);

/* Hand an accepted socket to a worker: it owns fd from here. */
void workers_dispatch(struct workers *p, int fd, const struct sockaddr *peer, socklen_t len);

/* After generation_publish(): every worker adopts it (and applies enforce_on_reload). */
void workers_reload(struct workers *p);

/* Stop logins in progress; all_idle follows once the last session ended. */
void workers_drain(struct workers *p);

/* Close every session, telling clients why where the protocol allows. */
void workers_close_all(struct workers *p);

/*
 * Ask every worker for a snapshot; snapshot_done follows. Returns false
 * when one is already being taken (its result will serve this caller too).
 */
bool workers_snapshot(struct workers *p);

/* The merged snapshot of the last round; valid until the next one starts. */
const struct worker_snapshot *workers_merged(const struct workers *p);

/* Sessions open across the workers now. */
unsigned workers_sessions(const struct workers *p);

#endif

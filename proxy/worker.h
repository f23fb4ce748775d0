/*
 * worker.h - what one event loop owns: its event base, its DNS resolver,
 * its sessions and its counters. Sessions never move between workers.
 */
#ifndef WALGATE_WORKER_H
#define WALGATE_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct event_base;
struct evdns_base;
struct session;

TAILQ_HEAD(session_list, session);

struct worker_stats {
	uint64_t accepted;
	uint64_t rejected_max_conn;
	uint64_t closed;
	uint64_t bytes_client_to_server;
	uint64_t bytes_server_to_client;
	uint64_t protocol_errors;
	uint64_t upstream_connect_failures;
	uint64_t cancels_forwarded;
};

struct worker {
	struct event_base *base;
	struct evdns_base *dns;
	struct session_list sessions;
	unsigned nsessions;
	uint64_t next_session_id;
	bool draining;			/* stopped accepting; exit when the last session ends */
	void (*on_idle)(struct worker *w);	/* called when draining and nsessions drops to 0 */
	struct worker_stats stats;
};

/* Create the event base and resolver; returns -1 (and logs) on failure. */
int worker_init(struct worker *w);
void worker_free(struct worker *w);

#endif

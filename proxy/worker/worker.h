/*
 * worker.h - what one event loop owns: its event base, its DNS resolver,
 * its sessions and its counters. Sessions never move between workers;
 * each worker runs on its own thread (worker_pool.h), and the little that is
 * counted across them lives in struct worker_shared, as atomics.
 */
#ifndef WALGATE_WORKER_H
#define WALGATE_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "access/kdf.h"
#include "core/counters.h"
#include "core/ratelimit.h"
#include "worker/cancel_registry.h"
#include "worker/slot_claims.h"
#include "repl/slot_table-t.h"
#include "core/cred_spec.h"

struct event;
struct event_base;
struct ssl_ctx_st;
struct evdns_base;
struct session;
struct token_source;
struct generation;

TAILQ_HEAD(session_list, session);

struct worker_stats {
	uint64_t accepted;
	uint64_t rejected[REJECT_REASONS];
	uint64_t closed;
	uint64_t bytes_client_to_server;
	uint64_t bytes_server_to_client;
	uint64_t protocol_errors[PROTO_ERR_KINDS];
	uint64_t upstream_connect_failures;
	uint64_t cancels[CANCEL_RESULTS];
	uint64_t sessions_closed_by_reload;
	uint64_t tls_handshakes[2][2];		/* [leg: 0 client, 1 upstream][0 ok, 1 failed] */
	uint64_t upstream_auth_refused[UPAUTH_REASONS];
	uint64_t upstream_credential_failures[CRED_KINDS];	/* by enum cred_kind: logins without a password */
	uint64_t takeovers[TAKEOVER_RESULTS];
};

/* Shared by every worker and the control thread. */
struct worker_shared {
	atomic_uint sessions;			/* client connections open: max_client_conn */
	atomic_int upstream_reachable;		/* last connect or poll: 1 yes, 0 no, -1 none yet */
	atomic_int upstream_noted_by;		/* who said so last: enum upstream_witness */
	atomic_uint_fast64_t next_session_id;
	atomic_uint_fast64_t config_reload_failures;
	time_t started_at;
	pthread_mutex_t deny_lock;	/* taken only when a connection is refused */
	struct ratelimit deny_log;	/* "not allowed" lines: a scan must not flood the log */
	/*
	 * auth = scram: the salts of made-up verifiers for unknown users come
	 * from this, made once at start and kept for the life of the process,
	 * so that a reload does not change an unknown user's salt.
	 */
	uint8_t mock_secret[32];
	struct cancel_registry cancels;	/* every worker's backend keys */
	struct slot_claims claims;	/* every worker's streams of named slots */
	/*
	 * The gce-metadata token source (upstream_cred.h): made at start, idle
	 * unless some user's password comes from it, freed after the workers.
	 */
	struct token_source *tokens;
};

/* -1 (and logs) when there is no randomness for the mock secret. */
int worker_shared_init(struct worker_shared *sh);
void worker_shared_free(struct worker_shared *sh);

/* May a "not allowed" line be logged now? (rate-limited across all workers) */
bool worker_deny_log_pass(struct worker_shared *sh, unsigned long *suppressed);

struct worker {
	unsigned index;			/* 0 .. workers - 1 */
	struct worker_shared *shared;
	struct event_base *base;
	struct evdns_base *dns;
	struct session_list sessions;
	unsigned nsessions;
	bool draining;			/* stopped accepting; exit when the last session ends */
	void (*on_idle)(struct worker *w);	/* called when draining and nsessions drops to 0 */
	void *idle_arg;
	/*
	 * Any thread may activate takeover_ev (slot_claims.h's wake); on this
	 * worker's thread it calls on_takeover, which closes the streams
	 * taken over from it (set by whoever runs the sessions).
	 */
	struct event *takeover_ev;
	void (*on_takeover)(struct worker *w);
	struct worker_stats stats;
	struct slot_registry slots;	/* replication slots streamed through this worker */
	struct kdf_jobs kdf_jobs;	/* salted passwords being computed for logins upstream */
	const struct generation *gen;	/* the one this worker's thread holds (generation.h) */
	/* borrowed from it */
	struct ssl_ctx_st *tls_server;		/* client leg, NULL when clients cannot use TLS */
	struct ssl_ctx_st *tls_client;		/* upstream leg, NULL when server_tls = disable */
	struct auth_users *auth_users;		/* auth = scram: who may log in, NULL otherwise */
};

/* Create the event base, resolver and takeover event; returns -1 (and logs) on failure. */
int worker_init(struct worker *w, unsigned index, struct worker_shared *shared);
void worker_free(struct worker *w);

/*
 * On the worker's thread: take the latest generation; returns true when it
 * is a new one (a reload happened).
 */
bool worker_adopt_generation(struct worker *w);

/* A connect or a poll found the upstream reachable or not. */
void worker_note_upstream(struct worker_shared *sh, bool reachable);

/* Who last told whether the upstream is reachable, for /readyz's reason. */
enum upstream_witness {
	UPSTREAM_BY_CLIENT,	/* a client's session connected to [upstream], or could not */
	UPSTREAM_BY_MONITOR,	/* the monitor's poll of the same host and port */
};

/* The monitor's word on [upstream]: whether its connection could be opened. */
void worker_note_upstream_polled(struct worker_shared *sh, bool reachable);

/* A worker's numbers at one instant, taken on its own thread. */
struct worker_snapshot {
	struct worker_stats stats;	/* bytes include those of the sessions still open */
	unsigned replication, regular;	/* client connections open, by kind */
	struct slot_view *slots;
	size_t nslots;
};

/*
 * Take w's counters and slots (expiring old slot entries first); false when
 * out of memory. The open sessions add theirs: session_snapshot_add().
 */
bool worker_snapshot_take(struct worker *w, struct worker_snapshot *out);

/* Add from into into (counters sum, slots merge by name); false when out of memory. */
bool worker_snapshot_merge(struct worker_snapshot *into, const struct worker_snapshot *from);
void worker_snapshot_clear(struct worker_snapshot *s);

#endif

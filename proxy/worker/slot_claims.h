/*
 * slot_claims.h - which session streams which replication slot, shared by
 * every worker thread, and the decision to take a slot over from a stale
 * session (one whose client has sent no standby status update for too long).
 *
 * A session claims its slot when the server accepted its START_REPLICATION
 * and gives the claim up when the stream ends or its upstream leg closes.
 * A newcomer naming the same slot (same upstream, database and slot name)
 * asks slot_claims_take: the claim is marked for eviction only when it is
 * stale, held by the same user (as the client logged in, and upstream),
 * and not being taken already; the
 * owner's worker is woken to close it. The newcomer then waits until no
 * claim it marked is left.
 *
 * One mutex guards the list; it is taken once per stream start and end,
 * once per START_REPLICATION naming a slot, and by a waiting newcomer's
 * polls, never per message: the owner records status updates in an atomic.
 */
#ifndef WALGATE_SLOT_CLAIMS_H
#define WALGATE_SLOT_CLAIMS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "protocol/pg_repl_cmd.h"

/* What makes two streams the same slot. */
struct slot_claim_key {
	char upstream[280];		/* "host:port" as configured */
	char database[PG_REPL_NAME_MAX];	/* "" on a physical connection */
	char slot[PG_REPL_NAME_MAX];
	enum pg_repl_kind kind;		/* a physical START cannot use a logical slot, nor the reverse */
};

/* Called under the registry's lock, on the newcomer's thread: wake the owner's worker. */
typedef void (*slot_claim_wake_fn)(void *wake_arg);

/* Who holds a claim. */
struct slot_claim_owner {
	const char *user;		/* the upstream user it logged in as */
	const char *client_user;	/* the user its client logged in to walgate as */
	void *session;			/* only the owner's worker looks at it */
	slot_claim_wake_fn wake;
	void *wake_arg;			/* the owner's worker */
};

struct slot_claim {
	LIST_ENTRY(slot_claim) link;
	struct slot_claim_key key;
	char user[256];
	char client_user[256];
	void *owner;
	slot_claim_wake_fn wake;
	void *wake_arg;
	atomic_int_fast64_t last_status_us;	/* the stream's start, then each status update */
	/* under the lock */
	bool reserved;			/* a newcomer's, until its held START is answered */
	bool evict;			/* a newcomer takes the slot over */
	bool evict_seen;		/* the owner's worker has it */
	uint64_t taker;			/* that newcomer's session id */
};

LIST_HEAD(slot_claim_list, slot_claim);

struct slot_claims {
	pthread_mutex_t lock;
	struct slot_claim_list claims;
};

/* What a START_REPLICATION finds on its slot. */
enum slot_take {
	SLOT_TAKE_FREE,			/* no session of walgate streams it */
	SLOT_TAKE_LIVE,			/* one does, and its client sends status updates */
	SLOT_TAKE_OTHER_USER,		/* one does as another user (client's or upstream) */
	SLOT_TAKE_BUSY,			/* another newcomer is taking it over */
	SLOT_TAKE_YES,			/* stale: marked, its owner woken, the slot reserved */
};

/*
 * The decision for one claim, pure: stale means no status update for
 * longer than after_us (after_us <= 0: never stale).
 */
enum slot_take slot_take_verdict(bool same_user, bool being_taken, int64_t idle_us,
				 int64_t after_us);

void slot_claims_init(struct slot_claims *r);
/* Frees the claims still there (their sessions are gone at exit). */
void slot_claims_free(struct slot_claims *r);

/* A stream of k began at now_us; NULL when out of memory (it cannot be taken over). */
struct slot_claim *slot_claims_add(struct slot_claims *r, const struct slot_claim_key *k,
				   const struct slot_claim_owner *o, int64_t now_us);
void slot_claims_remove(struct slot_claims *r, struct slot_claim *c);

/* The owner's client sent a standby status update (no lock). */
void slot_claim_touch(struct slot_claim *c, int64_t now_us);

/*
 * A START_REPLICATION of k by o, from session `taker`. Every claim on k is
 * judged: any other user's, any being taken or reserved, any live one
 * decides (in that order); when all are stale they are marked for
 * `taker`, their owners woken, and a claim reserving k for o is added and
 * returned in *reserved (NULL when out of memory), so that the slot is
 * not someone else's while the old streams end: the caller gives it up
 * like any claim. *idle_us receives the longest silence among them.
 */
enum slot_take slot_claims_take(struct slot_claims *r, const struct slot_claim_key *k,
				const struct slot_claim_owner *o, uint64_t taker, int64_t now_us,
				int64_t after_us, int64_t *idle_us, struct slot_claim **reserved);

/* Is a claim on k that `taker` marked still there? */
bool slot_claims_waiting(struct slot_claims *r, const struct slot_claim_key *k, uint64_t taker);

/*
 * The owners of claims marked for eviction whose wake_arg is wake_arg and
 * that were not handed out yet: up to max of them into owners[], each
 * handed out once. Returns how many.
 */
size_t slot_claims_evicted(struct slot_claims *r, const void *wake_arg, void **owners,
			   uint64_t *takers, size_t max);

#endif

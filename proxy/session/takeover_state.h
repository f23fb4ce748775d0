/*
 * takeover_state.h - what a replication session holds for slot takeover: its
 * claim on the slot it streams (or the reservation it made while taking
 * one over), and, while it takes a slot over, what it waits for and the
 * timer it polls on. Freed with the session (session.c); what is done with
 * it is session_takeover.c's.
 */
#ifndef WALGATE_TAKEOVER_STATE_H
#define WALGATE_TAKEOVER_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "worker/slot_claims.h"

struct event;
struct session;

struct takeover {
	struct session *s;
	struct slot_claims *registry;	/* the workers' shared one */
	struct slot_claim *claim;	/* while this session streams a named slot */
	void (*resume)(struct session *s);	/* move the client's bytes on (session_upstream.c) */
	char upstream_user[256];	/* kept from the login (its credentials are not) */
	/* a newcomer waiting for a stale stream to end */
	bool waiting;
	struct slot_claim_key key;
	struct event *poll;
	int64_t began_us;
};

/* Give the claim up, if any: the slot is no longer this session's. */
void takeover_unclaim(struct takeover *tk);

/* With its session (NULL is fine). */
void takeover_free(struct takeover *tk);

#endif

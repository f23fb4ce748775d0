/*
 * slot_claims.c - the streams of named replication slots of every worker,
 * in one mutex-protected list, and the takeover decision.
 */
#include "worker/slot_claims.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum slot_take slot_take_verdict(bool same_user, bool being_taken, int64_t idle_us,
				 int64_t after_us)
{
	if (!same_user)
		return SLOT_TAKE_OTHER_USER;
	if (being_taken)
		return SLOT_TAKE_BUSY;
	if (after_us <= 0 || idle_us <= after_us)
		return SLOT_TAKE_LIVE;
	return SLOT_TAKE_YES;
}

void slot_claims_init(struct slot_claims *r)
{
	pthread_mutex_init(&r->lock, NULL);
	LIST_INIT(&r->claims);
}

void slot_claims_free(struct slot_claims *r)
{
	struct slot_claim *c;

	while ((c = LIST_FIRST(&r->claims)) != NULL) {
		LIST_REMOVE(c, link);
		free(c);
	}
	pthread_mutex_destroy(&r->lock);
}

static struct slot_claim *claim_new(const struct slot_claim_key *k, const struct slot_claim_owner *o,
				     int64_t now_us)
{
	struct slot_claim *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->key = *k;
	snprintf(c->user, sizeof(c->user), "%s", o->user);
	snprintf(c->client_user, sizeof(c->client_user), "%s", o->client_user);
	c->owner = o->session;
	c->wake = o->wake;
	c->wake_arg = o->wake_arg;
	atomic_init(&c->last_status_us, now_us);
	return c;
}

struct slot_claim *slot_claims_add(struct slot_claims *r, const struct slot_claim_key *k,
				   const struct slot_claim_owner *o, int64_t now_us)
{
	struct slot_claim *c = claim_new(k, o, now_us);

	if (!c)
		return NULL;
	pthread_mutex_lock(&r->lock);
	LIST_INSERT_HEAD(&r->claims, c, link);
	pthread_mutex_unlock(&r->lock);
	return c;
}

void slot_claims_remove(struct slot_claims *r, struct slot_claim *c)
{
	pthread_mutex_lock(&r->lock);
	LIST_REMOVE(c, link);
	pthread_mutex_unlock(&r->lock);
	free(c);
}

void slot_claim_touch(struct slot_claim *c, int64_t now_us)
{
	atomic_store_explicit(&c->last_status_us, now_us, memory_order_relaxed);
}

static bool same_key(const struct slot_claim_key *a, const struct slot_claim_key *b)
{
	return !strcmp(a->slot, b->slot) && !strcmp(a->database, b->database) &&
	       !strcmp(a->upstream, b->upstream) && a->kind == b->kind;
}

/* Under the lock: the verdict over every claim on k (a refusal by any one decides). */
static bool same_user(const struct slot_claim *c, const struct slot_claim_owner *o)
{
	return !strcmp(c->user, o->user) && !strcmp(c->client_user, o->client_user);
}

static enum slot_take judge(struct slot_claims *r, const struct slot_claim_key *k,
			    const struct slot_claim_owner *o, int64_t now_us, int64_t after_us,
			    int64_t *idle_us)
{
	bool any = false, other = false, busy = false, live = false;
	struct slot_claim *c;

	*idle_us = 0;
	LIST_FOREACH(c, &r->claims, link) {
		int64_t idle;

		if (!same_key(&c->key, k))
			continue;
		any = true;
		idle = now_us - atomic_load_explicit(&c->last_status_us, memory_order_relaxed);
		if (idle > *idle_us)
			*idle_us = idle;
		switch (slot_take_verdict(same_user(c, o), c->evict || c->reserved, idle, after_us)) {
		case SLOT_TAKE_OTHER_USER:
			other = true;
			break;
		case SLOT_TAKE_BUSY:
			busy = true;
			break;
		case SLOT_TAKE_LIVE:
			live = true;
			break;
		default:
			break;
		}
	}
	if (!any)
		return SLOT_TAKE_FREE;
	return other ? SLOT_TAKE_OTHER_USER : busy ? SLOT_TAKE_BUSY : live ? SLOT_TAKE_LIVE : SLOT_TAKE_YES;
}

enum slot_take slot_claims_take(struct slot_claims *r, const struct slot_claim_key *k,
				const struct slot_claim_owner *o, uint64_t taker, int64_t now_us,
				int64_t after_us, int64_t *idle_us, struct slot_claim **reserved)
{
	struct slot_claim *mine = claim_new(k, o, now_us), *c;
	enum slot_take v;

	pthread_mutex_lock(&r->lock);
	v = judge(r, k, o, now_us, after_us, idle_us);
	if (v == SLOT_TAKE_YES) {
		LIST_FOREACH(c, &r->claims, link) {
			if (!same_key(&c->key, k))
				continue;
			c->evict = true;
			c->taker = taker;
			c->wake(c->wake_arg);
		}
		if (mine) {
			mine->reserved = true;
			LIST_INSERT_HEAD(&r->claims, mine, link);
		}
	}
	pthread_mutex_unlock(&r->lock);
	if (v != SLOT_TAKE_YES) {
		free(mine);
		mine = NULL;
	}
	*reserved = mine;
	return v;
}

bool slot_claims_waiting(struct slot_claims *r, const struct slot_claim_key *k, uint64_t taker)
{
	struct slot_claim *c;
	bool found = false;

	pthread_mutex_lock(&r->lock);
	LIST_FOREACH(c, &r->claims, link) {
		if (c->evict && c->taker == taker && same_key(&c->key, k)) {
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return found;
}

size_t slot_claims_evicted(struct slot_claims *r, const void *wake_arg, void **owners,
			   uint64_t *takers, size_t max)
{
	struct slot_claim *c;
	size_t n = 0;

	pthread_mutex_lock(&r->lock);
	LIST_FOREACH(c, &r->claims, link) {
		if (n == max)
			break;
		if (!c->evict || c->evict_seen || c->wake_arg != wake_arg)
			continue;
		c->evict_seen = true;
		takers[n] = c->taker;
		owners[n++] = c->owner;
	}
	pthread_mutex_unlock(&r->lock);
	return n;
}

/*
 * worker.c - one event loop and its resolver: setting up, tearing down,
 * adopting a new generation, and snapshots of its numbers (the sessions'
 * share is session_snapshot_add()).
 */
#include "worker/worker.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "worker/generation.h"
#include "core/log.h"
#include "core/netutil.h"
#include "repl/slot_table.h"


int worker_shared_init(struct worker_shared *sh)
{
	memset(sh, 0, sizeof(*sh));
	atomic_init(&sh->upstream_reachable, -1);
	sh->started_at = time(NULL);
	pthread_mutex_init(&sh->deny_lock, NULL);
	sh->deny_log.period = 10;
	sh->deny_log.burst = 20;
	cancel_registry_init(&sh->cancels);
	slot_claims_init(&sh->claims);
	if (RAND_bytes(sh->mock_secret, sizeof(sh->mock_secret)) != 1) {
		log_error("no randomness for the mock verifier secret");
		return -1;
	}
	return 0;
}

void worker_shared_free(struct worker_shared *sh)
{
	OPENSSL_cleanse(sh->mock_secret, sizeof(sh->mock_secret));
	pthread_mutex_destroy(&sh->deny_lock);
	cancel_registry_free(&sh->cancels);
	slot_claims_free(&sh->claims);
}

bool worker_deny_log_pass(struct worker_shared *sh, unsigned long *suppressed)
{
	bool pass;

	pthread_mutex_lock(&sh->deny_lock);
	pass = ratelimit_pass(&sh->deny_log, (int64_t)time(NULL), suppressed);
	pthread_mutex_unlock(&sh->deny_lock);
	return pass;
}

static void on_takeover(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	if (w->on_takeover)
		w->on_takeover(w);
}

int worker_init(struct worker *w, unsigned index, struct worker_shared *shared)
{
	memset(w, 0, sizeof(*w));
	w->index = index;
	w->shared = shared;
	TAILQ_INIT(&w->sessions);
	LIST_INIT(&w->kdf_jobs);
	slots_init(&w->slots);
	w->base = event_base_new();
	if (!w->base) {
		log_error("cannot create the event loop");
		return -1;
	}
	w->dns = net_dns_new(w->base);
	w->takeover_ev = event_new(w->base, -1, EV_PERSIST, on_takeover, w);
	if (!w->dns || !w->takeover_ev) {
		worker_free(w);
		return -1;
	}
	return 0;
}

void worker_free(struct worker *w)
{
	kdf_wait_all(&w->kdf_jobs);	/* their events live on the base freed below */
	slots_free(&w->slots);
	w->auth_users = NULL;
	w->tls_server = NULL;
	w->tls_client = NULL;
	if (w->takeover_ev)
		event_free(w->takeover_ev);
	w->takeover_ev = NULL;
	if (w->dns)
		evdns_base_free(w->dns, 0);
	if (w->base)
		event_base_free(w->base);
	w->dns = NULL;
	w->base = NULL;
}

bool worker_adopt_generation(struct worker *w)
{
	const struct generation *g = generation_adopt();
	bool fresh = g != w->gen;

	w->gen = g;
	w->tls_server = g ? g->tls_server : NULL;
	w->tls_client = g ? g->tls_client : NULL;
	w->auth_users = g ? g->auth_users : NULL;
	return fresh;
}

void worker_note_upstream(struct worker_shared *sh, bool reachable)
{
	atomic_store_explicit(&sh->upstream_noted_by, UPSTREAM_BY_CLIENT, memory_order_relaxed);
	atomic_store_explicit(&sh->upstream_reachable, reachable ? 1 : 0, memory_order_relaxed);
}

void worker_note_upstream_polled(struct worker_shared *sh, bool reachable)
{
	atomic_store_explicit(&sh->upstream_noted_by, UPSTREAM_BY_MONITOR, memory_order_relaxed);
	atomic_store_explicit(&sh->upstream_reachable, reachable ? 1 : 0, memory_order_relaxed);
}

bool worker_snapshot_take(struct worker *w, struct worker_snapshot *out)
{
	long n;

	memset(out, 0, sizeof(*out));
	out->stats = w->stats;
	slots_expire(&w->slots, slots_now_us(), config_current()->slot_expiry_ms * 1000);
	n = slots_view(&w->slots, slots_now_us(), &out->slots);
	if (n < 0)
		return false;
	out->nslots = (size_t)n;
	return true;
}

/* Every field of worker_stats is a uint64_t counter: they add up one by one. */
static void stats_add(struct worker_stats *into, const struct worker_stats *from)
{
	uint64_t *dst = (uint64_t *)into;
	const uint64_t *src = (const uint64_t *)from;

	_Static_assert(sizeof(struct worker_stats) % sizeof(uint64_t) == 0,
		       "worker_stats holds uint64_t counters only");
	for (size_t i = 0; i < sizeof(*into) / sizeof(uint64_t); i++)
		dst[i] += src[i];
}

static struct slot_view *view_find(struct worker_snapshot *s, const char *name)
{
	for (size_t i = 0; i < s->nslots; i++)
		if (!strcmp(s->slots[i].name, name))
			return &s->slots[i];
	return NULL;
}

bool worker_snapshot_merge(struct worker_snapshot *into, const struct worker_snapshot *from)
{
	stats_add(&into->stats, &from->stats);
	into->replication += from->replication;
	into->regular += from->regular;
	for (size_t i = 0; i < from->nslots; i++) {
		struct slot_view *v = view_find(into, from->slots[i].name);
		struct slot_view *grown;

		if (v) {
			slot_view_merge(v, &from->slots[i]);
			continue;
		}
		grown = realloc(into->slots, (into->nslots + 1) * sizeof(*grown));
		if (!grown)
			return false;
		into->slots = grown;
		into->slots[into->nslots++] = from->slots[i];
	}
	return true;
}

void worker_snapshot_clear(struct worker_snapshot *s)
{
	free(s->slots);
	memset(s, 0, sizeof(*s));
}

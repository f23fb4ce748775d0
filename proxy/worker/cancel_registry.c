/*
 * cancel_registry.c - the backend keys of every worker's sessions in one
 * mutex-protected hash table (chained, keyed on the backend's pid).
 */
#include "worker/cancel_registry.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

struct cancel_entry {
	LIST_ENTRY(cancel_entry) link;
	struct cancel_target t;
};

static struct cancel_bucket *bucket_of(struct cancel_registry *r, uint32_t pid)
{
	/* pids are small and dense: spread them with a multiplicative hash */
	return &r->buckets[(pid * 2654435761u) % CANCEL_REGISTRY_BUCKETS];
}

void cancel_registry_init(struct cancel_registry *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	for (size_t i = 0; i < CANCEL_REGISTRY_BUCKETS; i++)
		LIST_INIT(&r->buckets[i]);
}

void cancel_registry_free(struct cancel_registry *r)
{
	for (size_t i = 0; i < CANCEL_REGISTRY_BUCKETS; i++) {
		struct cancel_entry *e;

		while ((e = LIST_FIRST(&r->buckets[i])) != NULL) {
			LIST_REMOVE(e, link);
			free(e);
		}
	}
	r->count = 0;
	pthread_mutex_destroy(&r->lock);
}

struct cancel_entry *cancel_registry_add(struct cancel_registry *r, const struct cancel_target *t)
{
	struct cancel_entry *e = malloc(sizeof(*e));

	if (!e)
		return NULL;
	e->t = *t;
	pthread_mutex_lock(&r->lock);
	LIST_INSERT_HEAD(bucket_of(r, t->pid), e, link);
	r->count++;
	pthread_mutex_unlock(&r->lock);
	return e;
}

void cancel_registry_remove(struct cancel_registry *r, struct cancel_entry *e)
{
	pthread_mutex_lock(&r->lock);
	LIST_REMOVE(e, link);
	r->count--;
	pthread_mutex_unlock(&r->lock);
	OPENSSL_cleanse(e->t.key, sizeof(e->t.key));
	free(e);
}

bool cancel_registry_find(struct cancel_registry *r, uint32_t pid, const uint8_t *key,
			  size_t key_len, struct cancel_target *out)
{
	struct cancel_entry *e;
	bool found = false;

	pthread_mutex_lock(&r->lock);
	LIST_FOREACH(e, bucket_of(r, pid), link) {
		if (e->t.pid == pid && e->t.key_len == key_len &&
		    CRYPTO_memcmp(e->t.key, key, key_len) == 0) {
			*out = e->t;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return found;
}

/*
 * cancel_registry.h - which upstream connection each backend key belongs
 * to, shared by every worker thread.
 *
 * A CancelRequest reaches whichever worker the control thread hands its
 * connection to, not necessarily the one holding the session it cancels.
 * So each session, once the upstream has sent its BackendKeyData, records
 * here the key and how to reach its backend again: the address it is
 * connected to and how its upstream leg was opened (plaintext or TLS, the
 * certificate check, the name for SNI and verification). The cancel is
 * then sent exactly that way, or, matching nothing, not at all.
 *
 * One mutex guards the table; it is taken once per login (add), once per
 * session end (remove) and once per CancelRequest (find), never while
 * relaying.
 */
#ifndef WALGATE_CANCEL_REGISTRY_H
#define WALGATE_CANCEL_REGISTRY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "protocol/pg_wire.h"
#include "tls/tls_context.h"

/* How to reach one backend again. */
struct cancel_target {
	uint32_t pid;
	uint32_t key_len;			/* 1 .. PG_CANCEL_KEY_MAX */
	uint8_t key[PG_CANCEL_KEY_MAX];
	struct sockaddr_storage addr;		/* the address the session is connected to */
	socklen_t addrlen;
	bool tls;				/* its upstream leg is TLS */
	enum tls_verify verify;			/* ... with this certificate check */
	char host[256];				/* ... for this name (SNI, verify-full) */
};

struct cancel_entry;
LIST_HEAD(cancel_bucket, cancel_entry);

#define CANCEL_REGISTRY_BUCKETS 1024u

struct cancel_registry {
	pthread_mutex_t lock;
	size_t count;
	struct cancel_bucket buckets[CANCEL_REGISTRY_BUCKETS];
};

void cancel_registry_init(struct cancel_registry *r);
/* Frees entries still registered (their sessions are gone at exit). */
void cancel_registry_free(struct cancel_registry *r);

/*
 * Record t; the handle is the session's to pass to cancel_registry_remove.
 * NULL when out of memory (the session then cannot be cancelled).
 */
struct cancel_entry *cancel_registry_add(struct cancel_registry *r, const struct cancel_target *t);
void cancel_registry_remove(struct cancel_registry *r, struct cancel_entry *e);

/*
 * The target whose pid and whole key equal these, copied into *out; false
 * when none does (the key is compared in constant time).
 */
bool cancel_registry_find(struct cancel_registry *r, uint32_t pid, const uint8_t *key,
			  size_t key_len, struct cancel_target *out);

#endif

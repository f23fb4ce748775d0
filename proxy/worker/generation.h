/*
 * generation.h - one configuration in force and what was built from it
 * (TLS contexts, the auth file's users), shared by every thread.
 *
 * The control thread builds a generation at start and at each reload and
 * publishes it; each worker thread adopts the latest one at its own pace
 * (between events, never in the middle of one), and the last thread to let
 * go of a generation frees it. A thread's generation is what
 * config_current() returns on that thread.
 */
#ifndef WALGATE_GENERATION_H
#define WALGATE_GENERATION_H

#include <stdatomic.h>
#include <stddef.h>

struct config;
struct salt_secret;
struct ssl_ctx_st;
struct auth_users;

struct generation {
	struct config *cfg;
	struct ssl_ctx_st *tls_server;	/* client leg, NULL when clients cannot use TLS */
	struct ssl_ctx_st *tls_client;	/* upstream leg, NULL when server_tls = disable */
	struct auth_users *auth_users;	/* auth = scram: who may log in, NULL otherwise */
	atomic_uint refs;
};

/*
 * Build from cfg, which the generation then owns: certificates, keys and
 * the auth file are read now. NULL (reason in err, cfg freed) on failure.
 */
struct generation *generation_build(struct config *cfg, const struct salt_secret *ss,
				    char *err, size_t errlen);

/* Make g the latest (numbering its configuration) and adopt it on this thread. */
void generation_publish(struct generation *g);

/*
 * Adopt the latest on this thread: config_current() returns its
 * configuration from now on. Returns it (NULL when there is none), and
 * lets go of the one this thread held.
 */
const struct generation *generation_adopt(void);

/* The generation this thread holds (NULL before any). */
const struct generation *generation_current(void);

/* Let go of this thread's generation (at thread exit); with none latest, at shutdown. */
void generation_leave(void);

/* Drop the latest (at shutdown, after every thread left). */
void generation_retire(void);

#endif

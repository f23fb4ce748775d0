/*
 * generation.c - publishing a configuration to every thread, and freeing
 * it when the last thread has moved on.
 *
 * The latest pointer changes only under a mutex, once per reload; what a
 * thread uses afterwards is its own thread-local reference, so the hot
 * path never takes the lock.
 */
#include "worker/generation.h"

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdlib.h>

#include "access/authfile.h"
#include "core/config.h"
#include "repl/monitor.h"
#include "worker/tls_contexts.h"

static pthread_mutex_t latest_lock = PTHREAD_MUTEX_INITIALIZER;
static struct generation *latest;
static _Thread_local struct generation *mine;
static unsigned next_number = 1;

static void generation_free(struct generation *g)
{
	SSL_CTX_free(g->tls_server);
	SSL_CTX_free(g->tls_client);
	auth_users_free(g->auth_users);
	config_free(g->cfg);
	free(g);
}

static void generation_release(struct generation *g)
{
	if (g && atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
		generation_free(g);
}

struct generation *generation_build(struct config *cfg, const struct salt_secret *ss,
				    char *err, size_t errlen)
{
	struct generation *g = calloc(1, sizeof(*g));

	if (!g) {
		snprintf(err, errlen, "out of memory");
		config_free(cfg);
		return NULL;
	}
	g->cfg = cfg;
	atomic_init(&g->refs, 1);
	if (!monitor_check_conninfo(cfg->monitor_conninfo, err, errlen))
		goto fail;
	if (cfg->auth == AUTH_SCRAM && !(g->auth_users = auth_users_load(cfg->auth_file, ss, err, errlen)))
		goto fail;
	if (!tls_contexts_build(cfg, &g->tls_server, &g->tls_client, err, errlen))
		goto fail;
	return g;
fail:
	generation_free(g);
	return NULL;
}

void generation_publish(struct generation *g)
{
	struct generation *old;

	g->cfg->generation = next_number++;
	pthread_mutex_lock(&latest_lock);
	old = latest;
	latest = g;		/* the reference generation_build() gave */
	pthread_mutex_unlock(&latest_lock);
	generation_release(old);
	log_configure(g->cfg->log_level, g->cfg->log_format_json);
	generation_adopt();
}

const struct generation *generation_adopt(void)
{
	struct generation *g, *old = mine;

	pthread_mutex_lock(&latest_lock);
	g = latest;
	if (g)
		atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&latest_lock);
	mine = g;
	config_use(g ? g->cfg : NULL);
	generation_release(old);
	return g;
}

const struct generation *generation_current(void)
{
	return mine;
}

void generation_leave(void)
{
	generation_release(mine);
	mine = NULL;
	config_use(NULL);
}

void generation_retire(void)
{
	struct generation *old;

	pthread_mutex_lock(&latest_lock);
	old = latest;
	latest = NULL;
	pthread_mutex_unlock(&latest_lock);
	generation_release(old);
}

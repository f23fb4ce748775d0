/*
 * kdf.c - PBKDF2 for walgate's upstream SCRAM login on a thread of its
 * own per computation, its result handed back to the worker's event loop
 * by event_active() (libevent is set up for threads in main.c).
 *
 * The thread touches only its job's inputs and outputs, then activates the
 * job's event; everything else (the list, cancelling, freeing) happens on
 * the worker's thread.
 */
#include "access/kdf.h"

#include <event2/event.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct kdf_job {
	LIST_ENTRY(kdf_job) link;
	pthread_t thread;
	struct event *finished;
	kdf_done_fn done;		/* NULL once cancelled */
	void *arg;
	char *password;
	uint8_t salt[SCRAM_SALT_MAX];
	size_t salt_len;
	int iterations;
	bool ok;
	uint8_t salted[SCRAM_KEY_LEN];
};

static void job_free(struct kdf_job *j)
{
	if (j->finished)
		event_free(j->finished);
	if (j->password) {
		OPENSSL_cleanse(j->password, strlen(j->password));
		free(j->password);
	}
	OPENSSL_cleanse(j, sizeof(*j));
	free(j);
}

static void *kdf_thread(void *arg)
{
	struct kdf_job *j = arg;

	j->ok = scram_salted_password(j->password, j->salt, j->salt_len, j->iterations, j->salted);
	event_active(j->finished, EV_READ, 0);	/* the last touch of j on this thread */
	return NULL;
}

static void kdf_finished(evutil_socket_t fd, short what, void *arg)
{
	struct kdf_job *j = arg;

	pthread_join(j->thread, NULL);
	LIST_REMOVE(j, link);
	if (j->done)
		j->done(j->arg, j->ok, j->salted);
	job_free(j);
}

static size_t running(const struct kdf_jobs *jobs)
{
	const struct kdf_job *j;
	size_t n = 0;

	LIST_FOREACH(j, jobs, link)
		n++;
	return n;
}

struct kdf_job *kdf_start(struct event_base *base, struct kdf_jobs *jobs, const char *password,
			  const uint8_t *salt, size_t salt_len, int iterations,
			  kdf_done_fn done, void *arg, bool *busy)
{
	struct kdf_job *j;

	*busy = running(jobs) >= KDF_MAX_JOBS_PER_WORKER;
	if (*busy)
		return NULL;
	j = calloc(1, sizeof(*j));
	if (!j || salt_len == 0 || salt_len > SCRAM_SALT_MAX)
		goto fail;
	j->password = strdup(password);
	j->finished = event_new(base, -1, 0, kdf_finished, j);
	if (!j->password || !j->finished)
		goto fail;
	memcpy(j->salt, salt, salt_len);
	j->salt_len = salt_len;
	j->iterations = iterations;
	j->done = done;
	j->arg = arg;
	if (pthread_create(&j->thread, NULL, kdf_thread, j) != 0)
		goto fail;
	LIST_INSERT_HEAD(jobs, j, link);
	return j;
fail:
	if (j)
		job_free(j);
	return NULL;
}

void kdf_cancel(struct kdf_job *job)
{
	job->done = NULL;
	job->arg = NULL;
}

void kdf_wait_all(struct kdf_jobs *jobs)
{
	struct kdf_job *j;

	while ((j = LIST_FIRST(jobs)) != NULL) {
		pthread_join(j->thread, NULL);
		LIST_REMOVE(j, link);
		job_free(j);
	}
}

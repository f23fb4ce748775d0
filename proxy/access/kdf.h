/*
 * kdf.h - the salted password (PBKDF2) of walgate's SCRAM login upstream,
 * computed on a thread of its own. The upstream picks the iteration count
 * (up to SCRAM_MAX_ITERATIONS), so computing it on the worker's event loop
 * would let a server stall every session of that worker; instead the
 * result is posted back to the worker's event base as an event.
 */
#ifndef WALGATE_KDF_H
#define WALGATE_KDF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "protocol/scram.h"

struct event_base;
struct kdf_job;
LIST_HEAD(kdf_jobs, kdf_job);

/*
 * At most this many computations run at once for one worker (cancelled
 * ones included, until their thread ends): a server that asks for 2^20
 * iterations of every login cannot make walgate start threads without end.
 */
#define KDF_MAX_JOBS_PER_WORKER 4

/* On the worker's thread; salted is only valid during the call. */
typedef void (*kdf_done_fn)(void *arg, bool ok, const uint8_t salted[SCRAM_KEY_LEN]);

/*
 * Start computing SaltedPassword(password, salt, iterations); done(arg, ...)
 * runs later on base's thread, unless kdf_cancel() came first. The job is
 * listed in jobs until then. NULL when KDF_MAX_JOBS_PER_WORKER are running
 * already (*busy set), or out of memory or no thread (*busy clear).
 */
struct kdf_job *kdf_start(struct event_base *base, struct kdf_jobs *jobs, const char *password,
			  const uint8_t *salt, size_t salt_len, int iterations,
			  kdf_done_fn done, void *arg, bool *busy);

/* Its caller is going away: done will not be called; the job frees itself. */
void kdf_cancel(struct kdf_job *job);

/* At worker exit, before its event base is freed: wait for each thread, free each job. */
void kdf_wait_all(struct kdf_jobs *jobs);

#endif

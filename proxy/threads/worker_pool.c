/*
 * worker_pool.c - worker threads, their mailboxes, and collecting their
 * snapshots for a scrape.
 *
 * A mailbox is a mutex, a set of command bits, a queue of accepted
 * sockets and one event on the worker's loop that the control thread
 * activates (libevent's pthread locking makes event_active() safe across
 * threads). Answers go the other way through one event on the control
 * loop: a worker that went idle, or finished its snapshot, counts itself
 * and activates it.
 */
#include "threads/worker_pool.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "worker/generation.h"
#include "core/log.h"
#include "session/session.h"
#include "session/session_client.h"
#include "session/session_takeover.h"

enum mail {
	MAIL_ADOPT = 1 << 0,
	MAIL_DRAIN = 1 << 1,
	MAIL_CLOSE_ALL = 1 << 2,
	MAIL_SNAPSHOT = 1 << 3,
	MAIL_STOP = 1 << 4,
};

struct handoff {
	int fd;
	struct sockaddr_storage peer;
	socklen_t len;
};

struct worker_thread {
	struct worker w;
	struct workers *pool;
	pthread_t thread;
	bool running;
	struct event *mail_ev;
	pthread_mutex_t lock;		/* guards what follows */
	unsigned mail;
	struct handoff *queue;
	size_t nqueue, capqueue;
	struct worker_snapshot snap;	/* written by the worker, read by control once all are done */
	bool snap_ok;
	bool idle_told;			/* this drain's idleness reported */
};

struct workers {
	struct event_base *control;
	struct worker_shared *shared;
	struct workers_callbacks cb;
	struct worker_thread *t;
	unsigned n;
	unsigned next;			/* round robin */
	struct event *answer_ev;	/* on the control loop */
	atomic_uint idle;		/* workers drained to nothing */
	atomic_uint snapshots;		/* workers done with the current round */
	bool draining;
	bool collecting;
	struct worker_snapshot merged;
};

static void post(struct worker_thread *t, unsigned mail)
{
	pthread_mutex_lock(&t->lock);
	t->mail |= mail;
	pthread_mutex_unlock(&t->lock);
	event_active(t->mail_ev, EV_READ, 0);
}

static void answer(struct workers *p)
{
	event_active(p->answer_ev, EV_READ, 0);
}

/* ---- on a worker's thread ----------------------------------------------- */

static void on_idle(struct worker *w)
{
	struct worker_thread *t = w->idle_arg;

	if (t->idle_told)
		return;
	t->idle_told = true;
	atomic_fetch_add(&t->pool->idle, 1);
	answer(t->pool);
}

static void take_snapshot(struct worker_thread *t)
{
	worker_snapshot_clear(&t->snap);
	t->snap_ok = worker_snapshot_take(&t->w, &t->snap);
	if (t->snap_ok)
		session_snapshot_add(&t->w, &t->snap);
	atomic_fetch_add(&t->pool->snapshots, 1);
	answer(t->pool);
}

static void accept_queued(struct worker_thread *t, struct handoff *q, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (t->w.draining)
			close(q[i].fd);	/* accepted just before the drain began */
		else
			session_accept(&t->w, q[i].fd, (struct sockaddr *)&q[i].peer, q[i].len);
	}
}

static void on_mail(evutil_socket_t fd, short what, void *arg)
{
	struct worker_thread *t = arg;
	struct handoff *q;
	size_t n;
	unsigned mail;

	pthread_mutex_lock(&t->lock);
	mail = t->mail;
	t->mail = 0;
	q = t->queue;
	n = t->nqueue;
	t->queue = NULL;
	t->nqueue = t->capqueue = 0;
	pthread_mutex_unlock(&t->lock);

	if ((mail & MAIL_ADOPT) && worker_adopt_generation(&t->w) && config_current()->enforce_on_reload)
		session_enforce_allowlist(&t->w);
	accept_queued(t, q, n);
	free(q);
	if (mail & MAIL_DRAIN) {
		t->w.draining = true;
		session_drain_logins(&t->w);
		if (t->w.nsessions == 0)
			on_idle(&t->w);
	}
	if (mail & MAIL_CLOSE_ALL)
		session_close_all(&t->w);
	if (mail & MAIL_SNAPSHOT)
		take_snapshot(t);
	if (mail & MAIL_STOP)
		event_base_loopbreak(t->w.base);
}

static void *worker_main(void *arg)
{
	struct worker_thread *t = arg;

	worker_adopt_generation(&t->w);
	event_base_loop(t->w.base, EVLOOP_NO_EXIT_ON_EMPTY);
	session_free_all(&t->w);
	generation_leave();
	return NULL;
}

/* ---- on the control thread ------------------------------------------------ */

static void collect(struct workers *p)
{
	bool ok = true;

	worker_snapshot_clear(&p->merged);
	for (unsigned i = 0; i < p->n; i++)
		ok = ok && p->t[i].snap_ok && worker_snapshot_merge(&p->merged, &p->t[i].snap);
	if (!ok)
		log_error("metrics: out of memory merging the workers' numbers");
	p->collecting = false;
	p->cb.snapshot_done(p->cb.arg);
}

static void on_answer(evutil_socket_t fd, short what, void *arg)
{
	struct workers *p = arg;

	if (p->collecting && atomic_load(&p->snapshots) == p->n)
		collect(p);
	if (p->draining && atomic_load(&p->idle) == p->n) {
		p->draining = false;
		p->cb.all_idle(p->cb.arg);
	}
}

static bool thread_init(struct workers *p, struct worker_thread *t, unsigned index)
{
	t->pool = p;
	pthread_mutex_init(&t->lock, NULL);
	if (worker_init(&t->w, index, p->shared) < 0)
		return false;
	t->w.on_idle = on_idle;
	t->w.on_takeover = session_takeover_evict;
	t->w.idle_arg = t;
	t->mail_ev = event_new(t->w.base, -1, EV_PERSIST, on_mail, t);
	if (!t->mail_ev)
		return false;
	if (pthread_create(&t->thread, NULL, worker_main, t) != 0) {
		log_error("cannot start worker thread %u", index);
		return false;
	}
	t->running = true;
	return true;
}

struct workers *workers_start(struct event_base *control, unsigned n, struct worker_shared *shared,
			      const struct workers_callbacks *cb)
{
	struct workers *p = calloc(1, sizeof(*p));

	if (!p || !(p->t = calloc(n, sizeof(*p->t)))) {
		log_error("cannot start workers: out of memory");
		free(p);
		return NULL;
	}
	p->control = control;
	p->shared = shared;
	p->cb = *cb;
	p->answer_ev = event_new(control, -1, EV_PERSIST, on_answer, p);
	if (!p->answer_ev) {
		workers_stop(p);
		return NULL;
	}
	for (p->n = 0; p->n < n; p->n++) {
		if (!thread_init(p, &p->t[p->n], p->n)) {
			p->n++;		/* so that stop frees what this one has */
			workers_stop(p);
			return NULL;
		}
	}
	return p;
}

void workers_stop(struct workers *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->n; i++)
		if (p->t[i].running)
			post(&p->t[i], MAIL_STOP);
	for (unsigned i = 0; i < p->n; i++) {
		struct worker_thread *t = &p->t[i];

		if (t->running)
			pthread_join(t->thread, NULL);
		for (size_t k = 0; k < t->nqueue; k++)
			close(t->queue[k].fd);
		free(t->queue);
		worker_snapshot_clear(&t->snap);
		if (t->mail_ev)
			event_free(t->mail_ev);
		worker_free(&t->w);
		pthread_mutex_destroy(&t->lock);
	}
	worker_snapshot_clear(&p->merged);
	if (p->answer_ev)
		event_free(p->answer_ev);
	free(p->t);
	free(p);
}

unsigned workers_count(const struct workers *p)
{
	return p->n;
}

void workers_dispatch(struct workers *p, int fd, const struct sockaddr *peer, socklen_t len)
{
	struct worker_thread *t = &p->t[p->next++ % p->n];
	struct handoff *h;

	pthread_mutex_lock(&t->lock);
	if (t->nqueue == t->capqueue) {
		size_t cap = t->capqueue ? t->capqueue * 2 : 16;
		struct handoff *grown = realloc(t->queue, cap * sizeof(*grown));

		if (!grown) {
			pthread_mutex_unlock(&t->lock);
			log_error("out of memory handing a connection to a worker");
			close(fd);
			return;
		}
		t->queue = grown;
		t->capqueue = cap;
	}
	h = &t->queue[t->nqueue++];
	h->fd = fd;
	h->len = len < sizeof(h->peer) ? len : sizeof(h->peer);
	memcpy(&h->peer, peer, h->len);
	pthread_mutex_unlock(&t->lock);
	event_active(t->mail_ev, EV_READ, 0);
}

static void broadcast(struct workers *p, unsigned mail)
{
	for (unsigned i = 0; i < p->n; i++)
		post(&p->t[i], mail);
}

void workers_reload(struct workers *p)
{
	broadcast(p, MAIL_ADOPT);
}

void workers_drain(struct workers *p)
{
	p->draining = true;
	atomic_store(&p->idle, 0);
	broadcast(p, MAIL_DRAIN);
}

void workers_close_all(struct workers *p)
{
	broadcast(p, MAIL_CLOSE_ALL);
}

bool workers_snapshot(struct workers *p)
{
	if (p->collecting)
		return false;
	p->collecting = true;
	atomic_store(&p->snapshots, 0);
	broadcast(p, MAIL_SNAPSHOT);
	return true;
}

const struct worker_snapshot *workers_merged(const struct workers *p)
{
	return &p->merged;
}

unsigned workers_sessions(const struct workers *p)
{
	return atomic_load_explicit(&p->shared->sessions, memory_order_relaxed);
}

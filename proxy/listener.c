/*
 * listener.c - listening sockets and accepting from them.
 *
 * When accept fails for lack of resources (EMFILE, ENFILE, ENOBUFS,
 * ENOMEM) the pending connection stays in the kernel's queue and the
 * socket stays readable: retrying at once would spin the loop. So every
 * listener pauses for a second, with one log line per pause at most every
 * ten seconds, and resumes from a timer.
 */
#include "listener.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "session.h"
#include "worker.h"

#define ACCEPT_PAUSE_MS 1000
#define ACCEPT_LOG_EVERY_S 10

struct listener_set {
	struct worker *w;
	struct evconnlistener **ls;
	size_t n;
	struct event *resume;
	time_t last_log;
	unsigned long pauses;
};

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
		      int addrlen, void *arg)
{
	struct listener_set *set = arg;

	session_accept(set->w, fd, addr, (socklen_t)addrlen);
}

static void resume_accepting(evutil_socket_t fd, short what, void *arg)
{
	struct listener_set *set = arg;

	for (size_t i = 0; i < set->n; i++)
		evconnlistener_enable(set->ls[i]);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
	struct listener_set *set = arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval pause = { ACCEPT_PAUSE_MS / 1000, (ACCEPT_PAUSE_MS % 1000) * 1000 };
	time_t now = time(NULL);

	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_warning("accept failed: %s", evutil_socket_error_to_string(err));
		return;
	}
	set->pauses++;
	if (now - set->last_log >= ACCEPT_LOG_EVERY_S) {
		log_error("accept failed: %s; pausing accepts for %d ms (%lu pauses so far)",
			  evutil_socket_error_to_string(err), ACCEPT_PAUSE_MS, set->pauses);
		set->last_log = now;
	}
	for (size_t i = 0; i < set->n; i++)
		evconnlistener_disable(set->ls[i]);
	evtimer_add(set->resume, &pause);
}

static int open_socket(const struct config_addr *a)
{
	int fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	/* Let [::]:5432 and 0.0.0.0:5432 be listed side by side. */
	if (a->addr.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&a->addr, a->addrlen) < 0)
		goto fail;
	return fd;
fail:
	{
		int saved = errno;

		close(fd);
		errno = saved;
	}
	return -1;
}

struct listener_set *listeners_open(struct worker *w, const struct config *cfg)
{
	struct listener_set *set = calloc(1, sizeof(*set));

	if (!set || !(set->ls = calloc(cfg->listen.n, sizeof(*set->ls))))
		goto oom;
	set->w = w;
	set->resume = evtimer_new(w->base, resume_accepting, set);
	if (!set->resume)
		goto oom;
	for (size_t i = 0; i < cfg->listen.n; i++) {
		const struct config_addr *a = &cfg->listen.v[i];
		int fd = open_socket(a);

		if (fd < 0) {
			log_error("cannot listen on %s: %s", a->text, strerror(errno));
			goto fail;
		}
		set->ls[i] = evconnlistener_new(w->base, on_accept, set,
						LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
						cfg->listen_backlog, fd);
		if (!set->ls[i]) {
			log_error("cannot listen on %s: %s", a->text, strerror(errno));
			close(fd);
			goto fail;
		}
		set->n++;
		evconnlistener_set_error_cb(set->ls[i], on_accept_error);
		log_info("listening on %s", a->text);
	}
	return set;
oom:
	log_error("out of memory opening listeners");
fail:
	listeners_close(set);
	return NULL;
}

void listeners_close(struct listener_set *ls)
{
	if (!ls)
		return;
	for (size_t i = 0; i < ls->n; i++)
		evconnlistener_free(ls->ls[i]);
	if (ls->resume)
		event_free(ls->resume);
	free(ls->ls);
	free(ls);
}

/*
 * listener.c - listening sockets and accepting from them.
 *
 * When accept fails for lack of resources (EMFILE, ENFILE, ENOBUFS,
 * ENOMEM) the pending connection stays in the kernel's queue and the
 * socket stays readable: retrying at once would spin the loop. So every
 * listener pauses for a second, with one log line per pause at most every
 * ten seconds, and resumes from a timer.
 */
#include "core/listener.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"

#define ACCEPT_PAUSE_MS 1000
#define ACCEPT_LOG_EVERY_S 10

struct listener_set {
	listener_accept_fn on_accept;
	void *arg;
	struct evhttp *http;		/* owns the listeners when set (metrics endpoint) */
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

	set->on_accept(set->arg, fd, addr, (socklen_t)addrlen);
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

static void resume_one(evutil_socket_t fd, short what, void *arg)
{
	evconnlistener_enable(arg);
}

/*
 * evhttp takes over a bound listener's argument, so this callback knows
 * only the listener: it pauses that one. The HTTP server lives until exit,
 * so the one-shot timer cannot outlive it.
 */
static void on_http_accept_error(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval pause = { ACCEPT_PAUSE_MS / 1000, (ACCEPT_PAUSE_MS % 1000) * 1000 };

	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_warning("metrics accept failed: %s", evutil_socket_error_to_string(err));
		return;
	}
	log_error("metrics accept failed: %s; pausing it for %d ms",
		  evutil_socket_error_to_string(err), ACCEPT_PAUSE_MS);
	evconnlistener_disable(l);
	if (event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT, resume_one, l, &pause) < 0)
		evconnlistener_enable(l);
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

/*
 * One set of listening sockets sharing the pause on resource exhaustion.
 * With http, each socket is handed to the HTTP server, which then owns it.
 */
static struct listener_set *open_set(struct event_base *base, const struct config_addr_list *addrs,
				     int backlog, struct evhttp *http)
{
	struct listener_set *set = calloc(1, sizeof(*set));

	if (!set || !(set->ls = calloc(addrs->n, sizeof(*set->ls))))
		goto oom;
	set->resume = evtimer_new(base, resume_accepting, set);
	if (!set->resume)
		goto oom;
	for (size_t i = 0; i < addrs->n; i++) {
		const struct config_addr *a = &addrs->v[i];
		int fd = open_socket(a);

		if (fd < 0) {
			log_error("cannot listen on %s: %s", a->text, strerror(errno));
			goto fail;
		}
		set->ls[i] = evconnlistener_new(base, http ? NULL : on_accept, set,
						LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
						backlog, fd);
		if (!set->ls[i]) {
			log_error("cannot listen on %s: %s", a->text, strerror(errno));
			close(fd);
			goto fail;
		}
		set->n++;
		if (http) {
			set->http = http;
			if (!evhttp_bind_listener(http, set->ls[i])) {
				log_error("cannot serve HTTP on %s", a->text);
				goto fail;
			}
		}
		evconnlistener_set_error_cb(set->ls[i], http ? on_http_accept_error : on_accept_error);
		log_info(http ? "metrics on http://%s/metrics" : "listening on %s", a->text);
	}
	return set;
oom:
	log_error("out of memory opening listeners");
fail:
	listeners_close(set);
	return NULL;
}

struct listener_set *listeners_open(struct event_base *base, const struct config *cfg,
				    listener_accept_fn accept_fn, void *arg)
{
	struct listener_set *set = open_set(base, &cfg->listen, cfg->listen_backlog, NULL);

	if (set) {
		set->on_accept = accept_fn;
		set->arg = arg;
	}
	return set;
}

struct listener_set *listeners_open_http(struct event_base *base, const struct config_addr_list *addrs,
					 struct evhttp *http)
{
	return open_set(base, addrs, 128, http);
}

void listeners_close(struct listener_set *ls)
{
	if (!ls)
		return;
	/* the HTTP server frees what was bound to it (metrics_stop frees it first) */
	for (size_t i = 0; i < ls->n && !ls->http; i++)
		evconnlistener_free(ls->ls[i]);
	if (ls->resume)
		event_free(ls->resume);
	free(ls->ls);
	free(ls);
}

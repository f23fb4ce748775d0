/*
 * main.c - walgate's entry point: command line, configuration, signals,
 * and running the event loop until a drained shutdown.
 *
 *   SIGTERM/SIGINT  stop accepting, let sessions finish for drain_timeout,
 *                   then close the rest; a second signal closes at once.
 *   SIGHUP          re-read the configuration; a bad file changes nothing.
 */
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "monitor.h"
#include "probe.h"
#include "sdnotify.h"
#include "authfile.h"
#include "session.h"
#include "tls_upgrade.h"
#include "walgate_version.h"
#include "worker.h"

/* After closing every session, how long the last bytes may take. */
#define FINAL_FLUSH_MS 2000

struct app {
	struct worker worker;
	struct listener_set *listeners;
	struct metrics_server *metrics;
	struct monitor *monitor;	/* the upstream's slots, polled with libpq */
	const char *config_path;
	const char *probe_path;		/* --probe: one GET to the metrics endpoint */
	struct event *sig_term, *sig_int, *sig_hup;
	struct event *deadline;		/* drain timeout, then the final flush */
	int stopping;			/* 0 running, 1 draining, 2 closing everything */
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: walgate [--config FILE] [--check-config | --probe PATH]\n"
		"\n"
		"A PostgreSQL wire-protocol proxy for logical replication clients.\n"
		"\n"
		"  -c, --config FILE   read the INI configuration FILE; every key can also be\n"
		"                      set as WALGATE_<SECTION>_<KEY> in the environment\n"
		"  -t, --check-config  validate the configuration, print the verdict, exit 0 or 1\n"
		"  -p, --probe PATH    GET PATH (/healthz, /readyz) from the metrics endpoint of\n"
		"                      the configuration; exit 0 on 200, else 1 (health checks)\n"
		"  -V, --version       print the version and exit\n"
		"  -h, --help          print this help and exit\n");
}

static void arm(struct event *ev, int64_t ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
}

static void on_idle(struct worker *w)
{
	event_base_loopexit(w->base, NULL);
}

static void close_everything(struct app *app)
{
	app->stopping = 2;
	log_info("closing %u remaining sessions", app->worker.nsessions);
	session_close_all(&app->worker);
	if (app->worker.nsessions > 0)
		arm(app->deadline, FINAL_FLUSH_MS);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct app *app = arg;

	if (app->stopping == 1)
		close_everything(app);
	else
		event_base_loopexit(app->worker.base, NULL);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct app *app = arg;
	const struct config *cfg = config_current();

	if (app->stopping) {
		log_info("signal %d again: closing now", (int)sig);
		if (app->stopping == 1)
			close_everything(app);
		else
			event_base_loopexit(app->worker.base, NULL);
		return;
	}
	app->stopping = 1;
	sdnotify_stopping();
	listeners_close(app->listeners);
	app->listeners = NULL;
	metrics_set_accepting(app->metrics, false);
	app->worker.draining = true;
	session_drain_logins(&app->worker);
	log_info("signal %d: stopped accepting; %u sessions may finish within %lld ms",
		 (int)sig, app->worker.nsessions, (long long)cfg->drain_timeout_ms);
	if (app->worker.nsessions == 0)
		event_base_loopexit(app->worker.base, NULL);
	else
		arm(app->deadline, cfg->drain_timeout_ms);
}

/*
 * Certificates and keys are read anew with the configuration; sessions
 * already established keep the context they started with (OpenSSL counts
 * its references).
 */
static bool install_tls(struct worker *w, const struct config *cfg, char *err, size_t errlen)
{
	SSL_CTX *server, *client;
	struct auth_users *users = NULL;

	if (cfg->auth == AUTH_SCRAM && !(users = auth_users_load(cfg->auth_file, err, errlen)))
		return false;
	if (!tls_contexts_build(cfg, &server, &client, err, errlen)) {
		auth_users_free(users);
		return false;
	}
	SSL_CTX_free(w->tls_server);
	SSL_CTX_free(w->tls_client);
	auth_users_free(w->auth_users);
	w->tls_server = server;
	w->tls_client = client;
	w->auth_users = users;
	if (server && client && cfg->auth == AUTH_PASSTHROUGH)
		log_warning("TLS on both legs with authentication relayed: SCRAM clients that use "
			    "channel binding (libpq's default when TLS is on) cannot log in; "
			    "they need channel_binding=disable");
	return true;
}

static void on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
	struct app *app = arg;
	char err[1024];
	struct config *next;

	sdnotify_reloading();
	next = config_load(app->config_path, err, sizeof(err));
	if (next)
		config_keep_restart_only(next, config_current());
	if (!next || !install_tls(&app->worker, next, err, sizeof(err))) {
		app->worker.stats.config_reload_failures++;
		log_error("reload failed, the running configuration stays in force: %s", err);
		config_free(next);
		sdnotify_reloaded(config_current()->generation, 0);
		return;
	}
	config_set_current(next);
	monitor_reconfigure(app->monitor, next);
	sdnotify_reloaded(next->generation, 1);
	log_info("configuration reloaded%s%s (rule set %u)", app->config_path ? " from " : "",
		 app->config_path ? app->config_path : "", next->generation);
	if (next->enforce_on_reload)
		session_enforce_allowlist(&app->worker);
}

/* Readiness follows whichever spoke last: a client's connect or the poller. */
static void on_monitor_result(void *arg, int up)
{
	struct worker *w = arg;

	w->upstream_reachable = up;
}

static int parse_args(int argc, char **argv, struct app *app, int *check_only)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 't' },
		{ "probe", required_argument, NULL, 'p' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:tp:Vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			app->config_path = optarg;
			break;
		case 't':
			*check_only = 1;
			break;
		case 'p':
			app->probe_path = optarg;
			break;
		case 'V':
			printf("walgate %s\n", WALGATE_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "walgate: unexpected argument \"%s\"\n", argv[optind]);
		return -1;
	}
	return 0;
}

static int add_signals(struct app *app)
{
	struct event_base *base = app->worker.base;

	app->sig_term = evsignal_new(base, SIGTERM, on_stop_signal, app);
	app->sig_int = evsignal_new(base, SIGINT, on_stop_signal, app);
	app->sig_hup = evsignal_new(base, SIGHUP, on_reload_signal, app);
	app->deadline = evtimer_new(base, on_deadline, app);
	if (!app->sig_term || !app->sig_int || !app->sig_hup || !app->deadline)
		return -1;
	evsignal_add(app->sig_term, NULL);
	evsignal_add(app->sig_int, NULL);
	evsignal_add(app->sig_hup, NULL);
	return 0;
}

static void free_app(struct app *app)
{
	struct event *evs[] = { app->sig_term, app->sig_int, app->sig_hup, app->deadline };

	listeners_close(app->listeners);
	metrics_stop(app->metrics);
	monitor_stop(app->monitor);
	session_free_all(&app->worker);
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i])
			event_free(evs[i]);
	worker_free(&app->worker);
}

int main(int argc, char **argv)
{
	struct app app = { 0 };
	struct config *cfg;
	char err[1024];
	int check_only = 0;
	bool metrics_off;

	if (parse_args(argc, argv, &app, &check_only) < 0)
		return 1;
	cfg = config_load(app.config_path, err, sizeof(err));
	if (!cfg) {
		fprintf(stderr, "walgate: %s\n", err);
		return 1;
	}
	if (app.probe_path) {
		int rc = probe_run(cfg, app.probe_path);

		config_free(cfg);
		return rc;
	}
	if (check_only) {
		SSL_CTX *server, *client;
		struct auth_users *users = NULL;

		if (cfg->auth == AUTH_SCRAM && !(users = auth_users_load(cfg->auth_file, err, sizeof(err)))) {
			fprintf(stderr, "walgate: %s\n", err);
			config_free(cfg);
			return 1;
		}
		auth_users_free(users);
		if (!tls_contexts_build(cfg, &server, &client, err, sizeof(err))) {
			fprintf(stderr, "walgate: %s\n", err);
			config_free(cfg);
			return 1;
		}
		SSL_CTX_free(server);
		SSL_CTX_free(client);
		printf("walgate: configuration %s is valid\n", app.config_path ? app.config_path : "(environment)");
		config_free(cfg);
		return 0;
	}
	config_set_current(cfg);
	/* A peer that vanishes mid-write must be an error return, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	if (worker_init(&app.worker) < 0)
		return 1;
	app.worker.on_idle = on_idle;
	if (!install_tls(&app.worker, cfg, err, sizeof(err))) {
		log_error("%s", err);
		free_app(&app);
		config_set_current(NULL);
		return 1;
	}
	if (add_signals(&app) < 0 || !(app.listeners = listeners_open(&app.worker, cfg)) ||
	    !(app.monitor = monitor_start(app.worker.base, cfg, on_monitor_result, &app.worker)) ||
	    (!(app.metrics = metrics_start(&app.worker, app.monitor, cfg, &metrics_off)) && !metrics_off)) {
		free_app(&app);
		config_set_current(NULL);
		return 1;
	}
	log_info("walgate %s started; upstream %s:%d", WALGATE_VERSION, cfg->upstream_host,
		 cfg->upstream_port);
	sdnotify_ready();
	event_base_dispatch(app.worker.base);
	log_info("walgate stopped");
	free_app(&app);
	config_set_current(NULL);
	return 0;
}

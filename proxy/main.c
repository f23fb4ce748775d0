/*
 * main.c - walgate's entry point and its control thread: command line,
 * configuration, signals, accepting clients (handed to the worker
 * threads), the metrics endpoint and the upstream poller, until a drained
 * shutdown.
 *
 *   SIGTERM/SIGINT  stop accepting, let sessions finish for drain_timeout,
 *                   then close the rest; a second signal closes at once.
 *   SIGHUP          re-read the configuration; a bad file changes nothing.
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "access/authfile.h"
#include "core/config.h"
#include "worker/generation.h"
#include "core/listener.h"
#include "core/log.h"
#include "make_verifier.h"
#include "observe/metrics.h"
#include "modes.h"
#include "repl/monitor.h"
#include "access/token_source.h"
#include "access/upstream_cred.h"
#include "observe/probe.h"
#include "core/sdnotify.h"
#include "walgate_version.h"
#include "worker/worker.h"
#include "threads/worker_pool.h"

/* After closing every session, how long the last bytes may take. */
#define FINAL_FLUSH_MS 2000

struct app {
	struct event_base *base;	/* the control loop: signals, accepts, metrics, the poller */
	struct worker_shared shared;
	struct workers *workers;	/* the loops that run sessions */
	struct listener_set *listeners;
	struct metrics_server *metrics;
	struct monitor *monitor;	/* the upstream's slots, polled with libpq */
	struct salt_secret salts;	/* shared.mock_secret, for the auth file's plaintext entries */
	const char *config_path;
	const char *probe_path;		/* --probe: one GET to the metrics endpoint */
	struct event *sig_term, *sig_int, *sig_hup;
	struct event *deadline;		/* drain timeout, then the final flush */
	int stopping;			/* 0 running, 1 draining, 2 closing everything */
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: walgate [--config FILE] [--check-config] [--probe PATH]\n"
		"       walgate --make-verifier\n"
		"\n"
		"A PostgreSQL wire-protocol proxy for logical replication clients.\n"
		"\n"
		"  -c, --config FILE   read the INI configuration FILE; every key can also be\n"
		"                      set as WALGATE_<SECTION>_<KEY> in the environment\n"
		"  -t, --check-config  validate the configuration, print the effective modes and\n"
		"                      the verdict, exit 0 or 1\n"
		"  -p, --probe PATH    GET PATH (/healthz, /readyz) from the metrics endpoint;\n"
		"                      reads only [metrics] listen; exit 0 on 200, else 1 (health\n"
		"                      checks). With --check-config: both, exit 0 if both pass\n"
		"  -m, --make-verifier read a password (from the terminal, or the first line of\n"
		"                      stdin) and print a fresh SCRAM-SHA-256 verifier for it:\n"
		"                      for ALTER ROLE ... PASSWORD and the auth file\n"
		"  -V, --version       print the version and exit\n"
		"  -h, --help          print this help and exit\n");
}

static void arm(struct event *ev, int64_t ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
}

static void on_all_idle(void *arg)
{
	struct app *app = arg;

	event_base_loopexit(app->base, NULL);
}

static void close_everything(struct app *app)
{
	app->stopping = 2;
	log_info("closing %u remaining sessions", workers_sessions(app->workers));
	workers_close_all(app->workers);
	arm(app->deadline, FINAL_FLUSH_MS);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct app *app = arg;

	if (app->stopping == 1)
		close_everything(app);
	else
		event_base_loopexit(app->base, NULL);
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
			event_base_loopexit(app->base, NULL);
		return;
	}
	app->stopping = 1;
	sdnotify_stopping();
	listeners_close(app->listeners);
	app->listeners = NULL;
	metrics_set_accepting(app->metrics, false);
	log_info("signal %d: stopped accepting; %u sessions may finish within %lld ms",
		 (int)sig, workers_sessions(app->workers), (long long)cfg->drain_timeout_ms);
	workers_drain(app->workers);	/* on_all_idle ends the loop */
	arm(app->deadline, cfg->drain_timeout_ms);
}

static void on_snapshot(void *arg)
{
	struct app *app = arg;

	metrics_snapshot_ready(app->metrics);
}

static void on_accept(void *arg, int fd, const struct sockaddr *peer, socklen_t len)
{
	struct app *app = arg;

	workers_dispatch(app->workers, fd, peer, len);
}

/* The token source fetches only while some user's password comes from it. */
static bool configure_tokens(struct app *app, const struct generation *g)
{
	struct token_source *ts = app->shared.tokens;
	enum cred_kind kind = CRED_AUTH_FILE;
	char err[400];
	bool needed;

	(void)cred_spec_parse(g->cfg->upstream_password, &kind, err, sizeof(err));
	needed = g->cfg->auth == AUTH_SCRAM &&
		 (kind == CRED_GCE_METADATA || auth_users_use_source(g->auth_users, CRED_GCE_METADATA));
	if (!needed) {
		token_source_halt(ts);
		return true;
	}
	if (!token_source_configure(ts, g->cfg->token_url, g->cfg->token_refresh_margin_ms / 1000,
				    err, sizeof(err))) {
		log_error("[auth] token_url: %s", err);
		return false;
	}
	return true;
}

static void warn_relayed_auth(const struct generation *g)
{
	if (g->tls_server && g->tls_client && g->cfg->auth == AUTH_PASSTHROUGH)
		log_warning("TLS on both legs with authentication relayed: SCRAM clients that use "
			    "channel binding (libpq's default when TLS is on) cannot log in; "
			    "they need channel_binding=disable");
	if (g->cfg->auth == AUTH_SCRAM && g->cfg->server_tls < SERVER_TLS_VERIFY_CA &&
	    (g->cfg->server_auth_methods & (SERVER_AUTH_MD5 | SERVER_AUTH_PASSWORD)))
		log_warning("[auth] server_auth_methods allows md5 or password, and server_tls does not "
			    "verify the upstream: a server impersonating it would receive the password "
			    "(or its md5 equivalent)");
}

/*
 * Certificates, keys and the auth file are read anew with the
 * configuration; sessions already established keep the TLS context they
 * started with (OpenSSL counts its references).
 */
static void on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
	struct app *app = arg;
	char err[1024];
	struct config *next;
	struct generation *g = NULL;

	sdnotify_reloading();
	next = config_load(app->config_path, err, sizeof(err));
	if (next) {
		config_keep_restart_only(next, config_current());
		g = generation_build(next, &app->salts, err, sizeof(err));
	}
	if (!g) {
		atomic_fetch_add(&app->shared.config_reload_failures, 1);
		log_error("reload failed, the running configuration stays in force: %s", err);
		sdnotify_reloaded(config_current()->generation, 0);
		return;
	}
	configure_tokens(app, g);	/* before the workers take users that may need it */
	generation_publish(g);
	workers_reload(app->workers);
	monitor_reconfigure(app->monitor, g->cfg);
	modes_log(g);
	warn_relayed_auth(g);
	sdnotify_reloaded(g->cfg->generation, 1);
	log_info("configuration reloaded%s%s (rule set %u)", app->config_path ? " from " : "",
		 app->config_path ? app->config_path : "", g->cfg->generation);
}

/*
 * Readiness follows whichever spoke last: a client's connect or the
 * poller. The poller speaks only when it polls the very host and port of
 * [upstream], and only of whether it could open a connection: its own
 * login or query failing says nothing of whether clients can be relayed
 * (that shows in walgate_monitor_up, /slots and the log).
 */
static void on_monitor_result(void *arg, const struct monitor_outcome *o)
{
	const struct config *cfg = config_current();
	int port = o->port && *o->port ? atoi(o->port) : 5432;

	if (o->host && cfg->upstream_host && !strcmp(o->host, cfg->upstream_host) &&
	    port == cfg->upstream_port)
		worker_note_upstream_polled(arg, o->reached);
}

static int parse_args(int argc, char **argv, struct app *app, int *check_only)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 't' },
		{ "probe", required_argument, NULL, 'p' },
		{ "make-verifier", no_argument, NULL, 'm' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:tp:mVh", opts, NULL)) != -1) {
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
		case 'm':
			exit(make_verifier_run());
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
	struct event_base *base = app->base;

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

	/*
	 * monitor_stop may run one pass of the control loop (see there): by
	 * then no signal may be delivered and no worker may answer a scrape,
	 * and the metrics endpoint those answers go to must still exist.
	 */
	listeners_close(app->listeners);
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i])
			event_free(evs[i]);
	workers_stop(app->workers);
	monitor_stop(app->monitor);
	token_source_free(app->shared.tokens);	/* after the last loop pass, which may run its fetch */
	app->shared.tokens = NULL;
	metrics_stop(app->metrics);
	if (app->base)
		event_base_free(app->base);
	generation_leave();
	generation_retire();
}

/* --check-config: load everything a start would, and say whether it can. */
static int check_config(struct app *app, struct config *cfg)
{
	char err[1024];
	struct generation *g = generation_build(cfg, NULL, err, sizeof(err));

	if (!g) {
		fprintf(stderr, "walgate: %s\n", err);
		return 1;
	}
	modes_describe(g, err, sizeof(err));
	printf("walgate: modes: %s\n", err);
	generation_publish(g);
	generation_leave();
	generation_retire();
	printf("walgate: configuration %s is valid\n", app->config_path ? app->config_path : "(environment)");
	fflush(stdout);
	return 0;
}

/* --probe: only the metrics address is read, so any environment the server runs in will do. */
static int probe(struct app *app)
{
	char err[1024];
	struct config *cfg = config_load_key(app->config_path, "metrics", "listen", err, sizeof(err));
	int rc;

	if (!cfg) {
		fprintf(stderr, "walgate: --probe: %s\n", err);
		return 1;
	}
	rc = probe_run(cfg, app->probe_path);
	config_free(cfg);
	return rc;
}

static unsigned worker_count(const struct config *cfg)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (cfg->workers > 0)
		return (unsigned)cfg->workers;
	return cpus > 0 ? (unsigned)cpus : 1;
}

static int run(struct app *app, struct config *cfg)
{
	const struct workers_callbacks cb = { on_all_idle, on_snapshot, app };
	char err[1024];
	struct generation *g;
	bool metrics_off;

	if (evthread_use_pthreads() < 0 || !(app->base = event_base_new())) {
		log_error("cannot create the event loop");
		return 1;
	}
	app->salts = (struct salt_secret){ app->shared.mock_secret, sizeof(app->shared.mock_secret) };
	if (!(g = generation_build(cfg, &app->salts, err, sizeof(err)))) {
		log_error("%s", err);
		return 1;
	}
	generation_publish(g);
	modes_log(g);
	warn_relayed_auth(g);
	if (!(app->shared.tokens = token_source_new(app->base)) || !configure_tokens(app, g))
		return 1;
	if (add_signals(app) < 0 ||
	    !(app->workers = workers_start(app->base, worker_count(cfg), &app->shared, &cb)) ||
	    !(app->listeners = listeners_open(app->base, cfg, on_accept, app)) ||
	    !(app->monitor = monitor_start(app->base, cfg, on_monitor_result, &app->shared)) ||
	    (!(app->metrics = metrics_start(app->base, app->workers, &app->shared, app->monitor, cfg,
					    &metrics_off)) && !metrics_off))
		return 1;
	log_info("walgate %s started; %u workers; upstream %s:%d", WALGATE_VERSION,
		 workers_count(app->workers), cfg->upstream_host, cfg->upstream_port);
	sdnotify_ready();
	event_base_dispatch(app->base);
	log_info("walgate stopped");
	return 0;
}

int main(int argc, char **argv)
{
	struct app app = { 0 };
	struct config *cfg;
	char err[1024];
	int check_only = 0;
	int rc;

	if (parse_args(argc, argv, &app, &check_only) < 0)
		return 1;
	if (app.probe_path && !check_only)
		return probe(&app);
	cfg = config_load(app.config_path, err, sizeof(err));
	if (!cfg)
		fprintf(stderr, "walgate: %s\n", err);
	if (check_only) {
		/* both, each with its verdict: neither hides the other */
		rc = cfg ? check_config(&app, cfg) : 1;
		return app.probe_path ? rc | probe(&app) : rc;
	}
	if (!cfg)
		return 1;
	/* A peer that vanishes mid-write must be an error return, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	if (worker_shared_init(&app.shared) < 0) {
		config_free(cfg);
		return 1;
	}
	rc = run(&app, cfg);
	free_app(&app);
	worker_shared_free(&app.shared);
	return rc;
}

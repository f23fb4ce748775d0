/*
 * metrics.c - the scrape endpoint: routing, its own allow list, and
 * rendering the workers' merged numbers in Prometheus text format 0.0.4.
 *
 * Names follow Prometheus' rules: base units in names, counters end in
 * _total, labels of low cardinality. A scrape asks every worker for a
 * snapshot (worker_pool.h) and answers once all have given theirs, so the
 * relay's hot path only bumps plain integers of its own thread.
 */
#include "access/token_source.h"
#include "access/upstream_cred.h"
#include "observe/metrics.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/allowlist.h"
#include "core/config.h"
#include "core/listener.h"
#include "core/log.h"
#include "observe/metrics_conn.h"
#include "observe/metrics_slots.h"
#include "observe/prom_text.h"
#include "repl/monitor.h"
#include "core/netutil.h"
#include "worker/generation.h"
#include "tls/tls_context.h"
#include "walgate_version.h"
#include "worker/worker.h"
#include "threads/worker_pool.h"

/* A scrape waiting for the workers' snapshot. */
struct pending {
	struct evhttp_request *req;
	bool json;
};

struct metrics_server {
	struct workers *workers;
	struct worker_shared *shared;
	struct monitor *mon;
	struct evhttp *http;
	struct listener_set *listeners;
	struct metrics_conns *conns;	/* admission and deadlines (metrics_conn.c) */
	bool accepting;
	struct pending *pending;
	size_t npending, cappending;
};

static void sample(struct evbuffer *b, const char *name, const char *labels, double v)
{
	if (labels)
		evbuffer_add_printf(b, "%s{%s} %.17g\n", name, labels, v);
	else
		evbuffer_add_printf(b, "%s %.17g\n", name, v);
}

static void counter(struct evbuffer *b, const char *name, const char *help, uint64_t v)
{
	metrics_family(b, name, "counter", help);
	sample(b, name, NULL, (double)v);
}

/* One sample of a family with a single label. */
static void sample_labelled(struct evbuffer *b, const char *name, const char *key, const char *value,
			    double v)
{
	char labels[96];

	snprintf(labels, sizeof(labels), "%s=\"%s\"", key, value);
	sample(b, name, labels, v);
}

static void render_connections(struct evbuffer *b, const struct worker_snapshot *snap)
{
	const struct worker_stats *st = &snap->stats;

	counter(b, "walgate_connections_accepted_total",
		"Client connections accepted past the allow list.", st->accepted);
	metrics_family(b, "walgate_connections_rejected_total", "counter",
	       "Client connections turned away before reaching the upstream, by reason.");
	for (int r = 0; r < REJECT_REASONS; r++)
		sample_labelled(b, "walgate_connections_rejected_total", "reason",
				reject_reason_name((enum reject_reason)r), (double)st->rejected[r]);
	metrics_family(b, "walgate_connections_active", "gauge", "Client connections open now, by kind.");
	sample(b, "walgate_connections_active", "kind=\"replication\"", snap->replication);
	sample(b, "walgate_connections_active", "kind=\"regular\"", snap->regular);
	metrics_family(b, "walgate_bytes_total", "counter", "Bytes relayed, by direction.");
	sample(b, "walgate_bytes_total", "direction=\"client_to_upstream\"", (double)st->bytes_client_to_server);
	sample(b, "walgate_bytes_total", "direction=\"upstream_to_client\"", (double)st->bytes_server_to_client);
}

static void render_tls(struct evbuffer *b, const struct worker_stats *st, const struct generation *g)
{
	static const char *const legs[] = { "client", "upstream" };
	static const char *const results[] = { "ok", "failed" };
	SSL_CTX *ctxs[] = { g->tls_server, g->tls_client };
	char labels[64];

	metrics_family(b, "walgate_tls_handshakes_total", "counter", "TLS handshakes, by leg and result.");
	for (int leg = 0; leg < 2; leg++)
		for (int r = 0; r < 2; r++) {
			snprintf(labels, sizeof(labels), "leg=\"%s\",result=\"%s\"", legs[leg], results[r]);
			sample(b, "walgate_tls_handshakes_total", labels, (double)st->tls_handshakes[leg][r]);
		}
	metrics_family(b, "walgate_tls_certificate_expiry_timestamp_seconds", "gauge",
	       "When walgate's own certificate for a leg expires, in seconds since the epoch.");
	for (int leg = 0; leg < 2; leg++) {
		time_t t = tls_ctx_cert_expiry(ctxs[leg]);

		if (!t)
			continue;
		snprintf(labels, sizeof(labels), "leg=\"%s\"", legs[leg]);
		sample(b, "walgate_tls_certificate_expiry_timestamp_seconds", labels, (double)t);
	}
}

/* The upstream password's sources (upstream_cred.h); the token source's only while in use. */
static void render_credentials(struct evbuffer *b, const struct worker_stats *st,
			       struct token_source *tokens)
{
	struct token_source_view v;
	char labels[48];

	metrics_family(b, "walgate_upstream_credential_failures_total", "counter",
	       "Logins refused because the upstream password's source gave none (file, gce-metadata), "
	       "plus failed token fetches (gce-metadata).");
	if (tokens)
		token_source_view(tokens, &v);
	for (int k = CRED_FILE; k < CRED_KINDS; k++) {
		uint64_t n = st->upstream_credential_failures[k];

		if (k == CRED_GCE_METADATA && tokens)
			n += v.failures;
		snprintf(labels, sizeof(labels), "source=\"%s\"", cred_kind_name((enum cred_kind)k));
		sample(b, "walgate_upstream_credential_failures_total", labels, (double)n);
	}
	if (!tokens || !v.active)
		return;
	metrics_family(b, "walgate_upstream_credential_expiry_timestamp_seconds", "gauge",
	       "When the upstream password from a source expires, in seconds since the epoch "
	       "(0: none held).");
	sample(b, "walgate_upstream_credential_expiry_timestamp_seconds", "source=\"gce-metadata\"",
	       v.valid ? v.expiry_unix : 0);
}

static void render(struct evbuffer *b, const struct metrics_server *m, const struct worker_snapshot *snap)
{
	const struct config *cfg = config_current();
	const struct worker_stats *st = &snap->stats;

	metrics_family(b, "walgate_build_info", "gauge", "Always 1; the version is a label.");
	sample(b, "walgate_build_info", "version=\"" WALGATE_VERSION "\"", 1);
	metrics_family(b, "walgate_start_time_seconds", "gauge", "When walgate started, in seconds since the epoch.");
	sample(b, "walgate_start_time_seconds", NULL, (double)m->shared->started_at);
	metrics_family(b, "walgate_workers", "gauge", "Worker threads running sessions.");
	sample(b, "walgate_workers", NULL, workers_count(m->workers));
	render_connections(b, snap);
	render_tls(b, st, generation_current());
	render_credentials(b, st, m->shared->tokens);
	metrics_family(b, "walgate_protocol_errors_total", "counter",
	       "Messages that broke the protocol, by kind (client, upstream, replication_command, "
	       "replication_stream, pgoutput).");
	for (int k = 0; k < PROTO_ERR_KINDS; k++)
		sample_labelled(b, "walgate_protocol_errors_total", "kind",
				protocol_error_kind_name((enum protocol_error_kind)k), (double)st->protocol_errors[k]);
	counter(b, "walgate_upstream_connect_failures_total",
		"Connections to the upstream that could not be opened.", st->upstream_connect_failures);
	metrics_family(b, "walgate_upstream_auth_refused_total", "counter",
	       "Logins upstream walgate broke off itself (auth = scram), by reason (auth_method, "
	       "channel_binding, sequence, scram).");
	for (int r = 0; r < UPAUTH_REASONS; r++) {
		char labels[48];

		snprintf(labels, sizeof(labels), "reason=\"%s\"",
			 upstream_auth_refusal_name((enum upstream_auth_refusal)r));
		sample(b, "walgate_upstream_auth_refused_total", labels, (double)st->upstream_auth_refused[r]);
	}
	metrics_family(b, "walgate_cancel_requests_total", "counter",
	       "Cancel requests, by result (forwarded, unmatched: no session has the key, "
	       "failed: the connection to the session's backend failed).");
	for (int r = 0; r < CANCEL_RESULTS; r++)
		sample_labelled(b, "walgate_cancel_requests_total", "result",
				cancel_result_name((enum cancel_result)r), (double)st->cancels[r]);
	metrics_family(b, "walgate_slot_takeovers_total", "counter",
	       "START_REPLICATION commands naming a slot another session streams, by result "
	       "(taken_over, timed_out, refused_live, refused_user, refused_busy).");
	for (int r = 0; r < TAKEOVER_RESULTS; r++)
		sample_labelled(b, "walgate_slot_takeovers_total", "result",
				takeover_result_name((enum takeover_result)r), (double)st->takeovers[r]);
	counter(b, "walgate_config_reload_failures_total",
		"Reloads refused because the configuration did not parse or validate.",
		atomic_load(&m->shared->config_reload_failures));
	counter(b, "walgate_sessions_closed_by_reload_total",
		"Sessions closed because a reload removed their source from the allow list.",
		st->sessions_closed_by_reload);
	metrics_family(b, "walgate_config_generation", "gauge",
	       "Generation of the configuration in force (the rule set version in logs).");
	sample(b, "walgate_config_generation", NULL, cfg->generation);
	metrics_conns_render(b, m->conns);
	metrics_slots_render(b, snap->slots, snap->nslots, m->mon);
}

static bool peer_allowed(struct evhttp_request *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	const struct sockaddr *sa = conn ? evhttp_connection_get_addr(conn) : NULL;

	return sa && allowlist_match(config_current()->metrics_allow, sa);
}

/*
 * /healthz and /readyz are answered to a connection from the address it
 * came in on (net_peer_is_self: how `walgate --probe` connects) whatever
 * [metrics] allow says, so that a container's HEALTHCHECK keeps working
 * when the list names only the scrapers. They tell only "ok" or "not
 * ready" and why; /metrics and /slots follow the list.
 */
static bool is_health_path(const char *path)
{
	return !strcmp(path, "/healthz") || !strcmp(path, "/readyz");
}

static bool peer_is_self(struct evhttp_request *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;

	return bev && net_peer_is_self(bufferevent_getfd(bev));
}

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *body)
{
	struct evbuffer *b = evbuffer_new();

	if (!b) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add(b, body, strlen(body));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; charset=utf-8");
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

/* A token source in use without a valid token: logins that need it fail. */
static bool tokens_missing(const struct metrics_server *m, struct token_source_view *v)
{
	if (!m->shared->tokens)
		return false;
	token_source_view(m->shared->tokens, v);
	return v->active && !v->valid;
}

static bool is_ready(const struct metrics_server *m)
{
	struct token_source_view v;

	return m->accepting && atomic_load(&m->shared->upstream_reachable) != 0 &&
	       !tokens_missing(m, &v);
}

static const char *not_ready_reason(const struct metrics_server *m, char *buf, size_t cap)
{
	struct token_source_view v;

	if (!m->accepting)
		return "not ready: not accepting connections\n";
	if (tokens_missing(m, &v)) {
		snprintf(buf, cap, "not ready: the gce-metadata token source has no valid token: %s\n",
			 v.error[0] ? v.error : "it has expired");
		return buf;
	}
	if (atomic_load(&m->shared->upstream_noted_by) == UPSTREAM_BY_MONITOR)
		return "not ready: the monitor could not connect to the upstream at its last poll "
		       "(its reason is in /slots)\n";
	return "not ready: a client's connection to the upstream failed at the last attempt\n";
}

static void reply_body(struct evhttp_request *req, struct evbuffer *b, const char *type)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
	evhttp_send_reply(req, 200, "OK", b);
}

static void serve_document(struct metrics_server *m, struct evhttp_request *req, bool json,
			   const struct worker_snapshot *snap)
{
	struct evbuffer *b = evbuffer_new();

	if (!b) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	if (json) {
		metrics_slots_json(b, snap->slots, snap->nslots, m->mon);
		reply_body(req, b, "application/json");
	} else {
		render(b, m, snap);
		reply_body(req, b, "text/plain; version=0.0.4; charset=utf-8");
	}
	evbuffer_free(b);
}

void metrics_snapshot_ready(struct metrics_server *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->npending; i++)
		serve_document(m, m->pending[i].req, m->pending[i].json, workers_merged(m->workers));
	m->npending = 0;
}

static void queue_document(struct metrics_server *m, struct evhttp_request *req, bool json)
{
	if (m->npending == m->cappending) {
		size_t cap = m->cappending ? m->cappending * 2 : 8;
		struct pending *grown = realloc(m->pending, cap * sizeof(*grown));

		if (!grown) {
			evhttp_send_error(req, 500, NULL);
			return;
		}
		m->pending = grown;
		m->cappending = cap;
	}
	m->pending[m->npending++] = (struct pending){ req, json };
	workers_snapshot(m->workers);	/* or one is under way: it serves this request too */
}

/* A connection went away: its waiting scrapes are freed with it. */
static void connection_gone(void *arg, struct evhttp_connection *evcon)
{
	struct metrics_server *m = arg;
	size_t kept = 0;

	for (size_t i = 0; i < m->npending; i++)
		if (evhttp_request_get_connection(m->pending[i].req) != evcon)
			m->pending[kept++] = m->pending[i];
	m->npending = kept;
}

static void handle(struct evhttp_request *req, void *arg)
{
	struct metrics_server *m = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	char why[400];

	/* One request per connection: its deadline runs from accept (metrics_conn.c). */
	evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
	if (!path)
		path = "/";
	/* admitted at accept only as walgate's own probe (metrics_conn.c): health paths only */
	if (!peer_allowed(req) && !(is_health_path(path) && peer_is_self(req))) {
		reply_text(req, 403, "Forbidden", "forbidden\n");
		return;
	}
	if (strcmp(path, "/metrics") && strcmp(path, "/healthz") && strcmp(path, "/readyz") &&
	    strcmp(path, "/slots")) {
		reply_text(req, 404, "Not Found", "not found: try /metrics, /slots, /healthz or /readyz\n");
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		reply_text(req, 405, "Method Not Allowed", "method not allowed\n");
		return;
	}
	if (!strcmp(path, "/healthz")) {
		reply_text(req, 200, "OK", "ok\n");
	} else if (!strcmp(path, "/readyz")) {
		if (is_ready(m))
			reply_text(req, 200, "OK", "ready\n");
		else
			reply_text(req, 503, "Service Unavailable", not_ready_reason(m, why, sizeof(why)));
	} else {
		queue_document(m, req, !strcmp(path, "/slots"));
	}
}

struct metrics_server *metrics_start(struct event_base *base, struct workers *workers,
				     struct worker_shared *shared, struct monitor *mon,
				     const struct config *cfg, bool *disabled)
{
	struct metrics_server *m;

	*disabled = cfg->metrics_listen.n == 0;
	if (*disabled)
		return NULL;
	m = calloc(1, sizeof(*m));
	if (!m || !(m->http = evhttp_new(base)) ||
	    !(m->conns = metrics_conns_new(base, m->http, shared, connection_gone, m))) {
		log_error("cannot start the metrics endpoint: out of memory");
		if (m && m->http)
			evhttp_free(m->http);
		free(m);
		return NULL;
	}
	m->workers = workers;
	m->shared = shared;
	m->mon = mon;
	m->accepting = true;
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(m->http, handle, m);
	evhttp_set_timeout(m->http, 10);
	evhttp_set_max_headers_size(m->http, 8192);
	evhttp_set_max_body_size(m->http, 4096);
	/* Our own listeners, so that running out of descriptors pauses them too. */
	m->listeners = listeners_open_http(base, &cfg->metrics_listen, m->http);
	if (!m->listeners) {
		metrics_stop(m);
		return NULL;
	}
	return m;
}

void metrics_stop(struct metrics_server *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->npending; i++)
		evhttp_send_error(m->pending[i].req, 503, NULL);
	m->npending = 0;
	evhttp_free(m->http);
	metrics_conns_free(m->conns);
	listeners_close(m->listeners);
	free(m->pending);
	free(m);
}

void metrics_set_accepting(struct metrics_server *m, bool accepting)
{
	if (m)
		m->accepting = accepting;
}

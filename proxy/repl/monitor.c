/*
 * monitor.c - poll pg_replication_slots on the upstream with libpq's
 * asynchronous API, driven by the event loop.
 *
 * One state machine, changed only by monitor_set_state():
 *
 *   IDLE --timer--> RESOLVING --names found--> CONNECTING --PQconnectPoll OK--> QUERYING --result--> IDLE
 *                       |                           |                              |
 *                       +-------------- failure, timeout --------------------------+--> IDLE (closed)
 *
 * RESOLVING looks up host= names with evdns (monitor_resolve.h), so that
 * libpq, given hostaddr=, never calls the blocking getaddrinfo() on the
 * control thread; it passes at once when there is no name to look up, and
 * is skipped when the kept connection is reused.
 *
 * In IDLE the timer counts down to the next poll; otherwise it is the
 * deadline of the poll under way.
 */
#include "repl/monitor.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/config.h"
#include "core/log.h"
#include "repl/monitor_resolve.h"
#include "core/netutil.h"

/* Every slot, with positions relative to the server's current WAL position. */
static const char slots_query[] =
	"SELECT s.slot_name, coalesce(s.database, ''), s.slot_type, coalesce(s.plugin, ''), "
	"s.active, coalesce(s.wal_status, ''), "
	"pg_wal_lsn_diff(w.lsn, coalesce(s.confirmed_flush_lsn, s.restart_lsn)), "
	"pg_wal_lsn_diff(w.lsn, s.restart_lsn), s.safe_wal_size, "
	"age(s.xmin), age(s.catalog_xmin) "
	"FROM pg_replication_slots s, (SELECT CASE WHEN pg_is_in_recovery() "
	"THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END AS lsn) w "
	"ORDER BY s.slot_name";

enum monitor_state {
	MON_IDLE,
	MON_RESOLVING,
	MON_CONNECTING,
	MON_QUERYING,
};

struct monitor {
	struct event_base *base;
	struct evdns_base *dns;
	struct conninfo_lookup *lookup;	/* RESOLVING: the names of host= */
	enum monitor_state state;
	char *conninfo;
	int64_t interval_ms;
	int64_t timeout_ms;
	PGconn *conn;
	struct event *sock_ev;		/* waiting on the connection's socket */
	struct event *timer;
	struct timeval poll_started;
	bool reused;			/* this poll went out on the kept connection */
	bool reached;			/* this poll opened a connection to the server */
	struct upstream_slot *pending;	/* rows of the query under way */
	size_t npending;
	char failure[256];		/* its error, if it failed */
	char last_host[256], last_port[16];	/* the server of the last connection */
	void (*on_result)(void *arg, const struct monitor_outcome *o);
	void *arg;
	struct monitor_view view;
};

static void monitor_poll(struct monitor *m);
static void notice_to_log(void *arg, const char *message);
static void on_socket(evutil_socket_t fd, short what, void *arg);

static double tv_seconds(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static void arm_timer(struct monitor *m, int64_t ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	evtimer_add(m->timer, &tv);
}

static void monitor_set_state(struct monitor *m, enum monitor_state next)
{
	m->state = next;
	if (next == MON_IDLE) {
		if (m->sock_ev)
			event_free(m->sock_ev);
		m->sock_ev = NULL;
		if (m->view.enabled)
			arm_timer(m, m->interval_ms);
		else
			evtimer_del(m->timer);
	}
}

static void close_conn(struct monitor *m)
{
	conninfo_resolve_cancel(m->lookup);
	m->lookup = NULL;
	if (m->sock_ev)
		event_free(m->sock_ev);
	m->sock_ev = NULL;
	PQfinish(m->conn);
	m->conn = NULL;
}

const char *monitor_stage_name(enum monitor_stage s)
{
	static const char *const names[] = { "connect", "login", "query" };

	return s < MONITOR_STAGES ? names[s] : "unknown";
}

static void poll_ended(struct monitor *m, int up)
{
	struct monitor_outcome o = { .up = up == 1, .reached = m->reached };
	struct timeval now;

	gettimeofday(&now, NULL);
	m->view.up = up;
	m->view.reached = m->reached;
	m->view.last_poll_unix = tv_seconds(&now);
	m->view.poll_duration = tv_seconds(&now) - tv_seconds(&m->poll_started);
	o.host = m->conn ? PQhost(m->conn) : m->last_host;
	o.port = m->conn ? PQport(m->conn) : m->last_port;
	if (m->on_result)
		m->on_result(m->arg, &o);
	monitor_set_state(m, MON_IDLE);
}

/* Which server the connection is for, kept for after it is closed. */
static void remember_server(struct monitor *m)
{
	if (!m->conn)
		return;
	snprintf(m->last_host, sizeof(m->last_host), "%s", PQhost(m->conn) ? PQhost(m->conn) : "");
	snprintf(m->last_port, sizeof(m->last_port), "%s", PQport(m->conn) ? PQport(m->conn) : "");
}

/* Past CONNECTION_STARTED libpq has a connection to a server (it may still fail later). */
static void note_progress(struct monitor *m)
{
	ConnStatusType st = PQstatus(m->conn);

	if (st != CONNECTION_STARTED && st != CONNECTION_BAD && st != CONNECTION_NEEDED)
		m->reached = true;
}

static void poll_failed(struct monitor *m, const char *why)
{
	char msg[sizeof(m->view.error)];
	size_t n;

	enum monitor_stage stage = m->state == MON_QUERYING ? MONITOR_STAGE_QUERY :
				   m->reached ? MONITOR_STAGE_LOGIN : MONITOR_STAGE_CONNECT;

	snprintf(msg, sizeof(msg), "%s", why && *why ? why : "unknown error");
	remember_server(m);
	close_conn(m);
	if (m->reused) {
		/* the kept connection may just have gone stale (a server restart): once more, anew */
		m->reused = false;
		monitor_poll(m);
		return;
	}
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	/* one line per change of state or of reason, not one per interval */
	if (m->view.up != 0 || m->view.failed_stage != (int)stage || strcmp(msg, m->view.error))
		log_warning("monitor: polling the upstream failed at %s (%s): %s", monitor_stage_name(stage),
			    stage == MONITOR_STAGE_CONNECT ? "the upstream is unreachable"
			    : "the upstream answers; the monitor's own settings or rights fail", msg);
	memcpy(m->view.error, msg, sizeof(msg));
	m->view.failed_stage = (int)stage;
	m->view.failures[stage]++;
	poll_ended(m, 0);
}

/* Wait for the socket as libpq asks; it may change while libpq tries addresses. */
static void wait_socket(struct monitor *m, short what)
{
	int fd = PQsocket(m->conn);

	if (m->sock_ev)
		event_free(m->sock_ev);
	m->sock_ev = fd < 0 ? NULL : event_new(m->base, fd, what, on_socket, m);
	if (!m->sock_ev || event_add(m->sock_ev, NULL) < 0)
		poll_failed(m, fd < 0 ? "no socket" : "out of memory");
}

static void copy_field(char *dst, size_t len, const PGresult *r, int row, int col)
{
	snprintf(dst, len, "%s", PQgetvalue(r, row, col));
}

static bool number_field(double *out, const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return false;
	*out = strtod(PQgetvalue(r, row, col), NULL);
	return true;
}

/* Rows of the result, kept until the query is complete. */
static void take_result(struct monitor *m, const PGresult *r)
{
	int n = PQntuples(r);
	struct upstream_slot *v;

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != 11) {
		if (!m->failure[0])
			snprintf(m->failure, sizeof(m->failure), "%s",
				 *PQresultErrorMessage(r) ? PQresultErrorMessage(r) : "unexpected result");
		return;
	}
	v = n > 0 ? calloc((size_t)n, sizeof(*v)) : NULL;
	if (n > 0 && !v) {
		snprintf(m->failure, sizeof(m->failure), "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		copy_field(v[i].name, sizeof(v[i].name), r, i, 0);
		copy_field(v[i].database, sizeof(v[i].database), r, i, 1);
		copy_field(v[i].type, sizeof(v[i].type), r, i, 2);
		copy_field(v[i].plugin, sizeof(v[i].plugin), r, i, 3);
		v[i].active = !strcmp(PQgetvalue(r, i, 4), "t");
		copy_field(v[i].wal_status, sizeof(v[i].wal_status), r, i, 5);
		v[i].has_lag = number_field(&v[i].lag_bytes, r, i, 6);
		v[i].has_retained = number_field(&v[i].retained_bytes, r, i, 7);
		v[i].has_safe_wal = number_field(&v[i].safe_wal_size_bytes, r, i, 8);
		v[i].has_xmin_age = number_field(&v[i].xmin_age, r, i, 9);
		v[i].has_catalog_xmin_age = number_field(&v[i].catalog_xmin_age, r, i, 10);
	}
	free(m->pending);
	m->pending = v;
	m->npending = (size_t)n;
}

/* The query is complete (PQgetResult said so): publish what it found. */
static void query_done(struct monitor *m)
{
	if (m->failure[0]) {
		poll_failed(m, m->failure);
		return;
	}
	free(m->view.slots);
	m->view.slots = m->pending;
	m->view.nslots = m->npending;
	m->pending = NULL;
	if (m->view.up != 1)
		log_info("monitor: the upstream answers; %zu replication slot%s", m->view.nslots,
			 m->view.nslots == 1 ? "" : "s");
	m->view.error[0] = '\0';
	m->view.failed_stage = -1;
	poll_ended(m, 1);
}

static void read_result(struct monitor *m)
{
	if (!PQconsumeInput(m->conn)) {
		poll_failed(m, PQerrorMessage(m->conn));
		return;
	}
	/* PQgetResult blocks while libpq is busy: ask it only when it is not */
	while (!PQisBusy(m->conn)) {
		PGresult *r = PQgetResult(m->conn);

		if (!r) {
			query_done(m);
			return;
		}
		take_result(m, r);
		PQclear(r);
	}
	wait_socket(m, EV_READ);
}

static void send_query(struct monitor *m)
{
	int flushed;

	if (m->state != MON_QUERYING) {
		monitor_set_state(m, MON_QUERYING);
		m->failure[0] = '\0';
		free(m->pending);
		m->pending = NULL;
		m->npending = 0;
		if (!PQsendQuery(m->conn, slots_query)) {
			poll_failed(m, PQerrorMessage(m->conn));
			return;
		}
	}
	flushed = PQflush(m->conn);
	if (flushed < 0)
		poll_failed(m, PQerrorMessage(m->conn));
	else
		wait_socket(m, flushed ? EV_WRITE | EV_READ : EV_READ);
}

static void connect_step(struct monitor *m)
{
	PostgresPollingStatusType st = PQconnectPoll(m->conn);

	note_progress(m);
	switch (st) {
	case PGRES_POLLING_OK:
		m->reached = true;
		PQsetnonblocking(m->conn, 1);
		send_query(m);
		break;
	case PGRES_POLLING_READING:
		wait_socket(m, EV_READ);
		break;
	case PGRES_POLLING_WRITING:
		wait_socket(m, EV_WRITE);
		break;
	default:
		poll_failed(m, PQerrorMessage(m->conn));
		break;
	}
}

static void on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct monitor *m = arg;

	if (m->state == MON_CONNECTING)
		connect_step(m);
	else if (m->state == MON_QUERYING && (what & EV_WRITE) && PQflush(m->conn) == 1)
		wait_socket(m, EV_WRITE | EV_READ);
	else if (m->state == MON_QUERYING)
		read_result(m);
}

/* hostaddr: what evdns found for host=, or NULL to let libpq use conninfo as it is. */
static void start_connect(struct monitor *m, const char *hostaddr)
{
	/* conninfo wins over the defaults before it; hostaddr, after it, wins over conninfo */
	const char *keys[] = { "application_name", "dbname", hostaddr ? "hostaddr" : NULL, NULL };
	const char *values[] = { "walgate-monitor", m->conninfo, hostaddr, NULL };

	monitor_set_state(m, MON_CONNECTING);
	m->conn = PQconnectStartParams(keys, values, 1);
	if (!m->conn || PQstatus(m->conn) == CONNECTION_BAD) {
		poll_failed(m, m->conn ? PQerrorMessage(m->conn) : "out of memory");
		return;
	}
	PQsetNoticeProcessor(m->conn, notice_to_log, NULL);
	wait_socket(m, EV_WRITE);
}

static void on_resolved(void *arg, const char *hostaddr, const char *error)
{
	struct monitor *m = arg;

	m->lookup = NULL;
	if (error) {
		poll_failed(m, error);
		return;
	}
	log_debug("monitor: host names resolved: hostaddr=%s", hostaddr);
	start_connect(m, hostaddr);
}

static void monitor_poll(struct monitor *m)
{
	char err[300];

	arm_timer(m, m->timeout_ms);
	m->reused = m->conn && PQstatus(m->conn) == CONNECTION_OK;
	m->reached = m->reused;
	if (m->reused) {
		send_query(m);
		return;
	}
	close_conn(m);
	monitor_set_state(m, MON_RESOLVING);
	m->lookup = conninfo_resolve_start(m->base, m->dns, m->conninfo, on_resolved, m, err, sizeof(err));
	if (m->lookup)
		return;
	if (err[0])
		poll_failed(m, err);
	else
		start_connect(m, NULL);
}

/* A NOTICE or WARNING from the server reaches walgate's log, not stderr (log_format = json). */
static void notice_to_log(void *arg, const char *message)
{
	char line[512];
	size_t n;

	snprintf(line, sizeof(line), "%s", message);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
		line[--n] = '\0';
	log_info("monitor: the upstream says: %s", line);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct monitor *m = arg;

	if (m->state == MON_IDLE) {
		gettimeofday(&m->poll_started, NULL);
		monitor_poll(m);
	}
	else
		poll_failed(m, m->state == MON_RESOLVING ? "timed out resolving the host name" : "timed out");
}

void monitor_reconfigure(struct monitor *m, const struct config *cfg)
{
	const char *ci = cfg->monitor_conninfo && *cfg->monitor_conninfo ? cfg->monitor_conninfo : NULL;
	bool changed = (ci == NULL) != (m->conninfo == NULL) || (ci && strcmp(ci, m->conninfo));

	m->interval_ms = cfg->monitor_interval_ms;
	m->timeout_ms = cfg->monitor_timeout_ms;
	if (!changed)
		return;
	free(m->conninfo);
	m->conninfo = ci ? strdup(ci) : NULL;
	close_conn(m);
	m->view.enabled = m->conninfo != NULL;
	m->view.up = -1;
	m->view.reached = -1;
	m->view.failed_stage = -1;
	m->view.error[0] = '\0';
	free(m->view.slots);
	m->view.slots = NULL;
	m->view.nslots = 0;
	if (m->view.enabled)
		log_info("monitor: polling the upstream's replication slots every %lld ms",
			 (long long)m->interval_ms);
	monitor_set_state(m, MON_IDLE);
	if (m->view.enabled)
		arm_timer(m, 0);	/* first poll at once */
}

struct monitor *monitor_start(struct event_base *base, const struct config *cfg,
			      void (*on_result)(void *arg, const struct monitor_outcome *o),
			      void *arg)
{
	struct monitor *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->base = base;
	m->on_result = on_result;
	m->arg = arg;
	m->view.up = -1;
	m->view.reached = -1;
	m->view.failed_stage = -1;
	m->timer = evtimer_new(base, on_timer, m);
	m->dns = net_dns_new(base);
	if (!m->timer || !m->dns) {
		if (m->timer)
			event_free(m->timer);
		free(m);
		return NULL;
	}
	monitor_reconfigure(m, cfg);
	return m;
}

void monitor_stop(struct monitor *m)
{
	bool resolving;

	if (!m)
		return;
	resolving = m->lookup != NULL;
	event_free(m->timer);
	close_conn(m);
	/*
	 * A cancelled lookup is freed by libevent only when its deferred
	 * callbacks run (libevent issue #942): give them one pass of the loop,
	 * which has stopped by now, rather than leak them at exit.
	 */
	if (resolving)
		event_base_loop(m->base, EVLOOP_NONBLOCK);
	evdns_base_free(m->dns, 0);
	free(m->conninfo);
	free(m->view.slots);
	free(m->pending);
	free(m);
}

const struct monitor_view *monitor_view(const struct monitor *m)
{
	return &m->view;
}

/*
 * metrics_slots.c - render the slots walgate streams and the slots the
 * upstream reports: Prometheus families (every sample of a family
 * together, as the format requires) and the /slots JSON document.
 */
#include "observe/metrics_slots.h"

#include <event2/buffer.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "repl/monitor.h"
#include "protocol/pg_repl_stream.h"
#include "repl/slot_table.h"
#include "observe/prom_text.h"

/* JSON wants every control character escaped, not only the newline. */
static void json_escape(struct evbuffer *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			evbuffer_add_printf(b, "\\%c", *v);
		else if ((unsigned char)*v < 0x20)
			evbuffer_add_printf(b, "\\u%04x", (unsigned char)*v);
		else
			evbuffer_add(b, v, 1);
	}
}

/* name{slot="..",database=".."[,extra]} value */
static void slot_sample(struct evbuffer *b, const char *name, const char *slot, const char *db,
			const char *extra, double v)
{
	evbuffer_add_printf(b, "%s{slot=\"", name);
	metrics_escape(b, slot);
	evbuffer_add(b, "\",database=\"", 12);
	metrics_escape(b, db);
	evbuffer_add_printf(b, "\"%s%s} %.17g\n", extra ? "," : "", extra ? extra : "", v);
}

/* ---- stream side ------------------------------------------------------ */

enum stream_value {
	SV_STREAMING, SV_SENT, SV_WRITTEN, SV_FLUSHED, SV_UNACK, SV_WRITE_LAG, SV_FLUSH_LAG,
	SV_COMMIT_DELAY, SV_TRANSACTIONS, SV_CHANGES, SV_BYTES, SV_MESSAGES, SV_KEEPALIVES,
	SV_STATUS, SV_LAST_STATUS, SV_MALFORMED, SV_COUNT
};

static const struct {
	const char *name, *type, *help;
} stream_families[SV_COUNT] = {
	[SV_STREAMING] = { "walgate_slot_streaming", "gauge",
		"1 while a START_REPLICATION of the slot is relayed by walgate." },
	[SV_SENT] = { "walgate_slot_sent_lsn_bytes", "gauge",
		"Highest WAL position walgate forwarded to the slot's client, as a number." },
	[SV_WRITTEN] = { "walgate_slot_written_lsn_bytes", "gauge",
		"WAL position the client last reported written." },
	[SV_FLUSHED] = { "walgate_slot_flushed_lsn_bytes", "gauge",
		"WAL position the client last reported flushed (what the server confirms)." },
	[SV_UNACK] = { "walgate_slot_unacknowledged_bytes", "gauge",
		"Sent minus flushed: WAL forwarded and not yet confirmed by the client." },
	[SV_WRITE_LAG] = { "walgate_slot_write_lag_seconds", "gauge",
		"Time between walgate forwarding a position and the client reporting it written." },
	[SV_FLUSH_LAG] = { "walgate_slot_flush_lag_seconds", "gauge",
		"Time between walgate forwarding a position and the client reporting it flushed." },
	[SV_COMMIT_DELAY] = { "walgate_slot_commit_delay_seconds", "gauge",
		"Now minus the commit time of the last Commit forwarded on the slot." },
	[SV_TRANSACTIONS] = { "walgate_slot_transactions_total", "counter",
		"Transactions forwarded (pgoutput Commit, Stream Commit, Commit Prepared)." },
	[SV_CHANGES] = { "walgate_slot_changes_total", "counter",
		"Row changes forwarded, by operation (pgoutput Insert, Update, Delete, Truncate)." },
	[SV_BYTES] = { "walgate_slot_bytes_total", "counter",
		"Bytes of the replication stream relayed, by direction." },
	[SV_MESSAGES] = { "walgate_slot_messages_total", "counter",
		"XLogData messages forwarded, whatever the output plugin." },
	[SV_KEEPALIVES] = { "walgate_slot_keepalives_total", "counter",
		"Primary keepalive messages forwarded." },
	[SV_STATUS] = { "walgate_slot_status_updates_total", "counter",
		"Standby status updates the client sent." },
	[SV_LAST_STATUS] = { "walgate_slot_last_status_update_timestamp_seconds", "gauge",
		"When the client last sent a standby status update, in seconds since the epoch." },
	[SV_MALFORMED] = { "walgate_slot_malformed_messages_total", "counter",
		"Replication messages on the slot that did not decode (relayed unchanged)." },
};

static void stream_values(struct evbuffer *b, enum stream_value f, const struct slot_view *s,
			  double now_unix)
{
	static const char *const ops[SLOT_OPS] = { "op=\"insert\"", "op=\"update\"",
						   "op=\"delete\"", "op=\"truncate\"" };
	const char *n = stream_families[f].name;
	double v;

	switch (f) {
	case SV_STREAMING: v = s->streaming > 0; break;
	case SV_SENT: v = (double)s->sent_lsn; break;
	case SV_WRITTEN: v = (double)s->written_lsn; break;
	case SV_FLUSHED: v = (double)s->flushed_lsn; break;
	case SV_UNACK: v = (double)s->unacknowledged; break;
	case SV_WRITE_LAG: v = s->write_lag; break;
	case SV_FLUSH_LAG: v = s->flush_lag; break;
	case SV_COMMIT_DELAY:
		if (!s->last_commit_time)
			return;
		v = now_unix - pg_time_to_unix_seconds(s->last_commit_time);
		break;
	case SV_TRANSACTIONS: v = (double)s->transactions; break;
	case SV_CHANGES:
		for (int op = 0; op < SLOT_OPS; op++)
			slot_sample(b, n, s->name, s->database, ops[op], (double)s->changes[op]);
		return;
	case SV_BYTES:
		slot_sample(b, n, s->name, s->database, "direction=\"upstream_to_client\"",
			    (double)s->bytes_to_client);
		slot_sample(b, n, s->name, s->database, "direction=\"client_to_upstream\"",
			    (double)s->bytes_to_server);
		return;
	case SV_MESSAGES: v = (double)s->messages_to_client; break;
	case SV_KEEPALIVES: v = (double)s->keepalives; break;
	case SV_STATUS: v = (double)s->status_updates; break;
	case SV_LAST_STATUS:
		if (!s->last_status_unix)
			return;
		v = s->last_status_unix;
		break;
	case SV_MALFORMED: v = (double)s->malformed; break;
	default: return;
	}
	slot_sample(b, n, s->name, s->database, NULL, v);
}

static void render_stream(struct evbuffer *b, const struct slot_view *v, size_t n)
{
	double now_unix = slots_unix_now();

	if (n == 0)
		return;
	for (int f = 0; f < SV_COUNT; f++) {
		metrics_family(b, stream_families[f].name, stream_families[f].type, stream_families[f].help);
		for (size_t i = 0; i < n; i++)
			stream_values(b, (enum stream_value)f, &v[i], now_unix);
	}
}

/* ---- upstream side ---------------------------------------------------- */

static const char *const wal_statuses[] = { "reserved", "extended", "unreserved", "lost" };

/* A number pg_replication_slots may leave NULL (then the slot has no sample). */
struct upstream_number {
	const char *name, *help;
	size_t has, value;		/* offsets of the bool and the double in struct upstream_slot */
};

#define UPSTREAM_NUMBER(n, h, has, value) \
	{ n, h, offsetof(struct upstream_slot, has), offsetof(struct upstream_slot, value) }

static const struct upstream_number upstream_numbers[] = {
	UPSTREAM_NUMBER("walgate_upstream_slot_lag_bytes",
		"The upstream's current WAL position minus the slot's confirmed_flush_lsn (restart_lsn for physical slots).",
		has_lag, lag_bytes),
	UPSTREAM_NUMBER("walgate_upstream_slot_retained_bytes",
		"WAL the upstream keeps for the slot: its current position minus restart_lsn.",
		has_retained, retained_bytes),
	UPSTREAM_NUMBER("walgate_upstream_slot_safe_wal_size_bytes",
		"WAL that can still be written before the slot is in danger of losing files (safe_wal_size); absent when unlimited.",
		has_safe_wal, safe_wal_size_bytes),
	UPSTREAM_NUMBER("walgate_upstream_slot_xmin_age_transactions",
		"Age in transactions of the slot's xmin (age(xmin)): vacuum cannot remove rows newer than it; absent when NULL.",
		has_xmin_age, xmin_age),
	UPSTREAM_NUMBER("walgate_upstream_slot_catalog_xmin_age_transactions",
		"Age in transactions of the slot's catalog_xmin (age(catalog_xmin)): vacuum of the system catalogs is held back to it; absent when NULL.",
		has_catalog_xmin_age, catalog_xmin_age),
};

static void render_upstream_number(struct evbuffer *b, const struct monitor_view *v,
				   const struct upstream_number *f)
{
	metrics_family(b, f->name, "gauge", f->help);
	for (size_t i = 0; i < v->nslots; i++) {
		const char *slot = (const char *)&v->slots[i];

		if (*(const bool *)(slot + f->has))
			slot_sample(b, f->name, v->slots[i].name, v->slots[i].database, NULL,
				    *(const double *)(slot + f->value));
	}
}

static void render_upstream_slots(struct evbuffer *b, const struct monitor_view *v)
{
	char extra[64];
	size_t i;

	if (v->nslots == 0)
		return;
	metrics_family(b, "walgate_upstream_slot_active", "gauge",
	       "1 when the upstream reports a consumer on the slot (pg_replication_slots.active).");
	for (i = 0; i < v->nslots; i++)
		slot_sample(b, "walgate_upstream_slot_active", v->slots[i].name, v->slots[i].database,
			    NULL, v->slots[i].active);
	metrics_family(b, "walgate_upstream_slot_info", "gauge", "Always 1; the slot's type and plugin are labels.");
	for (i = 0; i < v->nslots; i++) {
		evbuffer_add(b, "walgate_upstream_slot_info{slot=\"", 33);
		metrics_escape(b, v->slots[i].name);
		evbuffer_add(b, "\",database=\"", 12);
		metrics_escape(b, v->slots[i].database);
		evbuffer_add_printf(b, "\",type=\"%s\",plugin=\"", v->slots[i].type);
		metrics_escape(b, v->slots[i].plugin);
		evbuffer_add(b, "\"} 1\n", 5);
	}
	for (size_t f = 0; f < sizeof(upstream_numbers) / sizeof(upstream_numbers[0]); f++)
		render_upstream_number(b, v, &upstream_numbers[f]);
	metrics_family(b, "walgate_upstream_slot_wal_status", "gauge",
	       "1 for the slot's wal_status (reserved, extended, unreserved, lost), 0 for the others.");
	for (i = 0; i < v->nslots; i++)
		for (size_t k = 0; k < sizeof(wal_statuses) / sizeof(wal_statuses[0]); k++) {
			snprintf(extra, sizeof(extra), "status=\"%s\"", wal_statuses[k]);
			slot_sample(b, "walgate_upstream_slot_wal_status", v->slots[i].name,
				    v->slots[i].database, extra, !strcmp(v->slots[i].wal_status, wal_statuses[k]));
		}
}

static void render_upstream(struct evbuffer *b, const struct monitor_view *v)
{
	if (!v->enabled)
		return;
	metrics_family(b, "walgate_upstream_up", "gauge",
	       "1 when the monitor's last poll could open a connection to the upstream.");
	evbuffer_add_printf(b, "walgate_upstream_up %d\n", v->reached == 1);
	metrics_family(b, "walgate_monitor_up", "gauge",
	       "1 when the monitor's last poll logged in and read pg_replication_slots.");
	evbuffer_add_printf(b, "walgate_monitor_up %d\n", v->up == 1);
	metrics_family(b, "walgate_monitor_poll_failures_total", "counter",
	       "Polls of the upstream that failed, by stage: connect (the upstream is unreachable), "
	       "login (TLS, authentication, database), query.");
	for (int st = 0; st < MONITOR_STAGES; st++)
		evbuffer_add_printf(b, "walgate_monitor_poll_failures_total{stage=\"%s\"} %llu\n",
				    monitor_stage_name((enum monitor_stage)st), (unsigned long long)v->failures[st]);
	if (v->last_poll_unix) {
		metrics_family(b, "walgate_upstream_poll_duration_seconds", "gauge",
		       "How long the last poll of the upstream took, connecting included.");
		evbuffer_add_printf(b, "walgate_upstream_poll_duration_seconds %.17g\n", v->poll_duration);
		metrics_family(b, "walgate_upstream_last_poll_timestamp_seconds", "gauge",
		       "When the last poll of the upstream ended, in seconds since the epoch.");
		evbuffer_add_printf(b, "walgate_upstream_last_poll_timestamp_seconds %.17g\n", v->last_poll_unix);
	}
	render_upstream_slots(b, v);
}

void metrics_slots_render(struct evbuffer *b, const struct slot_view *v, size_t n,
			  const struct monitor *mon)
{
	render_stream(b, v, n);
	if (mon)
		render_upstream(b, monitor_view(mon));
}

/* ---- /slots ------------------------------------------------------------ */

static void json_string(struct evbuffer *b, const char *key, const char *v)
{
	evbuffer_add_printf(b, "\"%s\":\"", key);
	json_escape(b, v);
	evbuffer_add(b, "\"", 1);
}

static void json_lsn(struct evbuffer *b, const char *key, uint64_t lsn)
{
	evbuffer_add_printf(b, ",\"%s\":\"%X/%X\"", key, (unsigned)(lsn >> 32), (unsigned)lsn);
}

static void json_stream(struct evbuffer *b, const struct slot_view *s, double now_unix)
{
	evbuffer_add_printf(b, "{\"streaming\":%s,\"kind\":\"%s\"", s->streaming ? "true" : "false",
			    s->kind == PG_REPL_KIND_PHYSICAL ? "physical" : "logical");
	json_lsn(b, "sent_lsn", s->sent_lsn);
	json_lsn(b, "written_lsn", s->written_lsn);
	json_lsn(b, "flushed_lsn", s->flushed_lsn);
	evbuffer_add_printf(b, ",\"unacknowledged_bytes\":%llu,\"write_lag_seconds\":%.6f,"
			    "\"flush_lag_seconds\":%.6f",
			    (unsigned long long)s->unacknowledged, s->write_lag, s->flush_lag);
	if (s->last_commit_time)
		evbuffer_add_printf(b, ",\"commit_delay_seconds\":%.6f",
				    now_unix - pg_time_to_unix_seconds(s->last_commit_time));
	evbuffer_add_printf(b, ",\"transactions\":%llu,\"inserts\":%llu,\"updates\":%llu,"
			    "\"deletes\":%llu,\"truncates\":%llu,\"messages\":%llu,\"keepalives\":%llu,"
			    "\"status_updates\":%llu}",
			    (unsigned long long)s->transactions,
			    (unsigned long long)s->changes[SLOT_OP_INSERT],
			    (unsigned long long)s->changes[SLOT_OP_UPDATE],
			    (unsigned long long)s->changes[SLOT_OP_DELETE],
			    (unsigned long long)s->changes[SLOT_OP_TRUNCATE],
			    (unsigned long long)s->messages_to_client,
			    (unsigned long long)s->keepalives, (unsigned long long)s->status_updates);
}

static void json_number_or_null(struct evbuffer *b, const char *key, bool has, double v)
{
	if (has)
		evbuffer_add_printf(b, ",\"%s\":%.0f", key, v);
	else
		evbuffer_add_printf(b, ",\"%s\":null", key);
}

static void json_upstream(struct evbuffer *b, const struct upstream_slot *u)
{
	evbuffer_add_printf(b, "{\"active\":%s,", u->active ? "true" : "false");
	json_string(b, "type", u->type);
	evbuffer_add(b, ",", 1);
	json_string(b, "plugin", u->plugin);
	evbuffer_add(b, ",", 1);
	json_string(b, "wal_status", u->wal_status);
	json_number_or_null(b, "lag_bytes", u->has_lag, u->lag_bytes);
	json_number_or_null(b, "retained_bytes", u->has_retained, u->retained_bytes);
	json_number_or_null(b, "safe_wal_size_bytes", u->has_safe_wal, u->safe_wal_size_bytes);
	json_number_or_null(b, "xmin_age", u->has_xmin_age, u->xmin_age);
	json_number_or_null(b, "catalog_xmin_age", u->has_catalog_xmin_age, u->catalog_xmin_age);
	evbuffer_add(b, "}", 1);
}

static const struct upstream_slot *upstream_find(const struct monitor_view *v, const char *name)
{
	for (size_t i = 0; v && i < v->nslots; i++)
		if (!strcmp(v->slots[i].name, name))
			return &v->slots[i];
	return NULL;
}

static const struct slot_view *stream_find(const struct slot_view *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return &v[i];
	return NULL;
}

static void json_slot(struct evbuffer *b, const char *name, const char *db,
		      const struct slot_view *s, const struct upstream_slot *u, bool *first)
{
	evbuffer_add(b, *first ? "{" : ",{", *first ? 1 : 2);
	*first = false;
	json_string(b, "slot", name);
	evbuffer_add(b, ",", 1);
	json_string(b, "database", db);
	evbuffer_add(b, ",\"stream\":", 10);
	if (s)
		json_stream(b, s, slots_unix_now());
	else
		evbuffer_add(b, "null", 4);
	evbuffer_add(b, ",\"upstream\":", 12);
	if (u)
		json_upstream(b, u);
	else
		evbuffer_add(b, "null", 4);
	evbuffer_add(b, "}", 1);
}

void metrics_slots_json(struct evbuffer *b, const struct slot_view *sv, size_t n,
			const struct monitor *mon)
{
	const struct monitor_view *v = mon ? monitor_view(mon) : NULL;
	bool first = true;

	evbuffer_add(b, "{\"upstream\":", 12);
	if (v && v->enabled) {
		evbuffer_add_printf(b, "{\"up\":%s,\"reachable\":%s,\"last_poll\":%.3f,"
				    "\"poll_duration_seconds\":%.6f,",
				    v->up < 0 ? "null" : v->up ? "true" : "false",
				    v->reached < 0 ? "null" : v->reached ? "true" : "false",
				    v->last_poll_unix, v->poll_duration);
		if (v->failed_stage >= 0)
			evbuffer_add_printf(b, "\"failed_at\":\"%s\",",
					    monitor_stage_name((enum monitor_stage)v->failed_stage));
		else
			evbuffer_add(b, "\"failed_at\":null,", 17);
		json_string(b, "error", v->error);
		evbuffer_add(b, "}", 1);
	} else {
		evbuffer_add(b, "null", 4);
	}
	evbuffer_add(b, ",\"slots\":[", 10);
	/* the upstream's slots, then those only walgate knows (dropped, or not polled) */
	for (size_t i = 0; v && i < v->nslots; i++)
		json_slot(b, v->slots[i].name, v->slots[i].database,
			  stream_find(sv, n, v->slots[i].name), &v->slots[i], &first);
	for (size_t i = 0; i < n; i++)
		if (!upstream_find(v, sv[i].name))
			json_slot(b, sv[i].name, sv[i].database, &sv[i], NULL, &first);
	evbuffer_add(b, "]}\n", 3);
}

/*
 * repl_track.c - turn the messages of a replication connection into the
 * per-slot numbers of slot_table.h, reading only what the scanner kept of each
 * message (its prefix; a Query captured whole up to PG_REPL_CMD_SCAN_MAX).
 */
#include "repl/repl_track.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "protocol/pg_wire.h"
#include "core/counters.h"
#include "repl/slot_table.h"

/* Past this many, a session's malformed replication messages are counted silently. */
#define LOG_MALFORMED_MAX 5

#define LSN_ARGS(lsn) (unsigned)((lsn) >> 32), (unsigned)(lsn)

struct repl_track *repl_track_new(struct slot_registry *registry, uint64_t *errors,
				  const char *log_prefix, const char *database)
{
	struct repl_track *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->registry = registry;
	t->errors = errors;
	t->log_prefix = log_prefix;
	snprintf(t->database, sizeof(t->database), "%s", database ? database : "");
	return t;
}

void repl_track_observe(struct repl_track *t, const struct repl_track_events *ev)
{
	t->ev = *ev;
}

static void stop_streaming(struct repl_track *t)
{
	bool was = t->state == REPL_STREAMING;

	if (t->slot)
		slots_detach(t->slot, slots_now_us());
	t->slot = NULL;
	t->state = REPL_IDLE;
	if (was && t->ev.streaming)
		t->ev.streaming(t->ev.arg, false);
}

void repl_track_free(struct repl_track *t)
{
	if (!t)
		return;
	stop_streaming(t);
	free(t);
}

static void malformed(struct repl_track *t, enum protocol_error_kind kind, const char *what,
		      const char *why)
{
	t->errors[kind]++;
	if (t->slot)
		t->slot->malformed++;
	if (t->logged >= LOG_MALFORMED_MAX)
		return;
	t->logged++;
	log_write(LOG_LEVEL_WARNING, t->log_prefix, "malformed %s (%s), relayed unchanged%s", what, why,
		  t->logged == LOG_MALFORMED_MAX ? "; further ones of this session are only counted" : "");
}

/* ---- commands ------------------------------------------------------- */

/* START_REPLICATION with the pgoutput options the client named, and only those. */
static void start_logged(struct repl_track *t, const struct pg_repl_cmd *c)
{
	static const char *const streaming[] = { "off", "on", "parallel" };
	char opts[PG_REPL_PUBNAMES_MAX + 128] = "";
	size_t n = 0;

	if (c->proto_version_given)
		n += (size_t)snprintf(opts + n, sizeof(opts) - n, " proto_version=%d", c->proto_version);
	if (c->publication_names_given && n < sizeof(opts))
		n += (size_t)snprintf(opts + n, sizeof(opts) - n, " publication_names=\"%s\"%s",
				      c->publication_names, c->publication_names_truncated ? "..." : "");
	if (c->streaming_given && n < sizeof(opts))
		n += (size_t)snprintf(opts + n, sizeof(opts) - n, " streaming=%s", streaming[c->streaming]);
	if (c->two_phase_given && n < sizeof(opts))
		snprintf(opts + n, sizeof(opts) - n, " two_phase=%s", c->two_phase ? "on" : "off");
	log_write(LOG_LEVEL_INFO, t->log_prefix, "replication: START_REPLICATION%s%s %s %X/%X%s",
		  c->slot[0] ? " SLOT " : "", c->slot,
		  c->repl_kind == PG_REPL_KIND_LOGICAL ? "LOGICAL" : "PHYSICAL",
		  LSN_ARGS(c->start_lsn), opts);
}

static void command_logged(struct repl_track *t, const struct pg_repl_cmd *c)
{
	switch (c->kind) {
	case PG_REPL_CMD_CREATE_SLOT:
		log_write(LOG_LEVEL_INFO, t->log_prefix, "replication: CREATE_REPLICATION_SLOT %s%s %s%s%s",
			  c->slot, c->temporary ? " TEMPORARY" : "",
			  c->repl_kind == PG_REPL_KIND_LOGICAL ? "LOGICAL " : "PHYSICAL",
			  c->plugin, c->two_phase ? " TWO_PHASE" : "");
		break;
	case PG_REPL_CMD_DROP_SLOT:
		log_write(LOG_LEVEL_INFO, t->log_prefix, "replication: DROP_REPLICATION_SLOT %s", c->slot);
		break;
	case PG_REPL_CMD_START_REPLICATION:
		start_logged(t, c);
		break;
	default:
		if (log_enabled(LOG_LEVEL_DEBUG))
			log_write(LOG_LEVEL_DEBUG, t->log_prefix, "replication: %s",
				  pg_repl_cmd_kind_str(c->kind));
		break;
	}
}

static void command(struct repl_track *t, const uint8_t *text, uint32_t len)
{
	struct pg_repl_cmd c;
	char what[64];

	switch (pg_repl_cmd_parse(text, len, &c)) {
	case PG_REPL_CMD_NOT_REPLICATION:
		return;
	case PG_REPL_CMD_MALFORMED:
		snprintf(what, sizeof(what), "replication command %s", pg_repl_cmd_kind_str(c.kind));
		malformed(t, PROTO_ERR_REPL_COMMAND, what, pg_repl_cmd_error_str(c.error));
		return;
	case PG_REPL_CMD_OK:
		break;
	}
	command_logged(t, &c);
	/*
	 * The server answers in order: a START sent behind one still
	 * unanswered is not what the next CopyBothResponse accepts (it reaches
	 * the walsender in copy mode, which refuses it). Taking its name would
	 * make an entry for a slot the server never accepted.
	 */
	if (c.kind != PG_REPL_CMD_START_REPLICATION || t->state == REPL_STARTING)
		return;
	t->state = REPL_STARTING;
	t->ahead = t->unanswered - 1;	/* its own Query is counted already */
	memcpy(t->start_slot, c.slot, sizeof(t->start_slot));
	t->start_kind = c.repl_kind;
	t->start_proto_version = c.proto_version;
	t->start_lsn = c.start_lsn;
	if (t->ev.start)
		t->ev.start(t->ev.arg, t->start_slot);
}

/* The server answered START_REPLICATION with CopyBothResponse. */
static void start_streaming(struct repl_track *t)
{
	bool logical = t->start_kind == PG_REPL_KIND_LOGICAL;

	t->state = REPL_STREAMING;
	/* pgoutput refuses to start without proto_version; other plugins do not take it. */
	t->pgoutput = logical && t->start_proto_version > 0;
	pgoutput_state_init(&t->po, t->start_proto_version);
	if (t->ev.streaming)
		t->ev.streaming(t->ev.arg, true);
	t->slot = slots_attach(t->registry, t->start_slot, logical ? t->database : "", t->start_kind);
	if (!t->slot)
		return;
	/* nothing of this session is outstanding yet */
	t->slot->start_lsn = t->start_lsn;
	t->slot->sent_lsn = t->start_lsn > t->slot->flushed_lsn ? t->start_lsn : t->slot->flushed_lsn;
}

/* ---- the stream ----------------------------------------------------- */

static void advance_sent(struct slot_stream *s, uint64_t lsn, int64_t now_us, bool sample)
{
	if (s->start_lsn == 0)
		s->start_lsn = lsn;	/* the server chose where to start: here */
	if (lsn <= s->sent_lsn)
		return;
	s->sent_lsn = lsn;
	if (sample)
		lag_tracker_sent(&s->lag, lsn, now_us);	/* out of memory: one lag sample fewer */
}

static void count_pgoutput(struct repl_track *t, const struct pg_repl_xlogdata *x)
{
	struct slot_stream *s = t->slot;
	struct pgoutput_msg m;
	enum pg_repl_verdict v = pgoutput_decode(x->data, x->data_have, x->data_len,
						 t->po.proto_version, t->po.in_stream, &m);

	pgoutput_state_update(&t->po, &m);
	if (v != PG_REPL_OK && v != PG_REPL_UNKNOWN)
		malformed(t, PROTO_ERR_PGOUTPUT, pgoutput_kind_str(m.kind), pg_repl_verdict_str(v));
	/* counted by kind even when malformed: the server did send that change */
	switch (m.kind) {
	case PGOUTPUT_COMMIT:
	case PGOUTPUT_STREAM_COMMIT:
	case PGOUTPUT_COMMIT_PREPARED:
		s->transactions++;
		if (v == PG_REPL_OK)
			s->last_commit_time = m.time;
		break;
	case PGOUTPUT_INSERT:
		s->changes[SLOT_OP_INSERT]++;
		break;
	case PGOUTPUT_UPDATE:
		s->changes[SLOT_OP_UPDATE]++;
		break;
	case PGOUTPUT_DELETE:
		s->changes[SLOT_OP_DELETE]++;
		break;
	case PGOUTPUT_TRUNCATE:
		s->changes[SLOT_OP_TRUNCATE]++;
		break;
	default:
		break;
	}
}

static void server_copydata(struct repl_track *t, const struct pg_msg *m)
{
	struct slot_stream *s = t->slot;
	struct pg_repl_copydata cd;
	enum pg_repl_verdict v = pg_repl_copydata_decode(m->prefix, m->prefix_len, m->length - 4,
							 true, &cd);

	if (v == PG_REPL_UNKNOWN)
		return;		/* a message type of a newer server: relayed, not read */
	if (v != PG_REPL_OK) {
		malformed(t, PROTO_ERR_REPL_STREAM, cd.kind == PG_REPL_COPY_XLOGDATA ? "XLogData" : "keepalive",
			  pg_repl_verdict_str(v));
		return;
	}
	if (cd.kind == PG_REPL_COPY_KEEPALIVE) {
		s->keepalives++;
		advance_sent(s, cd.u.keepalive.wal_end, 0, false);
		return;
	}
	s->messages_to_client++;
	/*
	 * What a client confirms: a logical one the position of the change
	 * (data start), a physical one the end of the WAL it wrote.
	 */
	if (s->kind == PG_REPL_KIND_LOGICAL)
		advance_sent(s, cd.u.xlogdata.data_start, slots_now_us(), true);
	else
		advance_sent(s, cd.u.xlogdata.data_start + cd.u.xlogdata.data_len, slots_now_us(), true);
	if (t->pgoutput)
		count_pgoutput(t, &cd.u.xlogdata);
}

static void client_copydata(struct repl_track *t, const struct pg_msg *m)
{
	struct slot_stream *s = t->slot;
	struct pg_repl_copydata cd;
	enum pg_repl_verdict v = pg_repl_copydata_decode(m->prefix, m->prefix_len, m->length - 4,
							 false, &cd);
	int64_t now;

	if (v == PG_REPL_UNKNOWN)
		return;
	if (v != PG_REPL_OK) {
		malformed(t, PROTO_ERR_REPL_STREAM, cd.kind == PG_REPL_COPY_STATUS ? "standby status update" :
			  "hot standby feedback", pg_repl_verdict_str(v));
		return;
	}
	/* either is the client's sign of life (hot standby feedback: a standby's own interval) */
	if (t->ev.status)
		t->ev.status(t->ev.arg);
	if (cd.kind != PG_REPL_COPY_STATUS)
		return;
	if (!s)
		return;		/* out of memory at the start: no numbers for this stream */
	now = slots_now_us();
	s->status_updates++;
	s->last_status_unix = slots_unix_now();
	/* 0 means "not known" to the server; positions only move forward */
	if (cd.u.status.written > s->written_lsn)
		s->written_lsn = cd.u.status.written;
	if (cd.u.status.flushed > s->flushed_lsn)
		s->flushed_lsn = cd.u.status.flushed;
	lag_tracker_confirmed(&s->lag, LAG_WRITE, s->written_lsn, s->sent_lsn, now);
	lag_tracker_confirmed(&s->lag, LAG_FLUSH, s->flushed_lsn, s->sent_lsn, now);
}

/* ---- the two directions ---------------------------------------------- */

void repl_track_from_client(struct repl_track *t, struct pg_scanner *sc, bool captured)
{
	const struct pg_msg *m = &sc->msg;

	if (captured) {
		command(t, t->query, t->query_len);
		return;
	}
	if (t->state == REPL_STREAMING) {
		if (t->slot)
			t->slot->bytes_to_server += (uint64_t)m->length + 1;
		if (m->type == PG_MSG_COPY_DATA)
			client_copydata(t, m);
		return;
	}
	if (m->type == PG_MSG_QUERY || m->type == PG_MSG_SYNC || m->type == PG_MSG_FUNCTION_CALL)
		t->unanswered++;
	if (m->type == PG_MSG_QUERY) {
		t->query_len = m->length - 4;
		/* the whole text, up to the bound, is in t->query now or at the capture */
		if (pg_scan_capture(sc, t->query, sizeof(t->query)) <= m->prefix_len)
			command(t, t->query, t->query_len);
	}
}

/* Notices and parameter changes may come during a stream; these end it. */
static bool ends_stream(uint8_t type)
{
	return type == PG_MSG_COPY_DONE || type == PG_MSG_ERROR_RESPONSE ||
	       type == PG_MSG_COMMAND_COMPLETE || type == PG_MSG_READY_FOR_QUERY;
}

/* The server refused the START, or answered it without a stream. */
static void refused(struct repl_track *t)
{
	t->state = REPL_IDLE;
	if (t->ev.streaming)
		t->ev.streaming(t->ev.arg, false);
}

/* While a START awaits its answer: the answers of the commands before it, then its own. */
static void start_answer(struct repl_track *t, uint8_t type)
{
	if (t->ahead > 0) {
		if (type == PG_MSG_READY_FOR_QUERY)
			t->ahead--;
		return;
	}
	if (type == PG_MSG_COPY_BOTH_RESPONSE)
		start_streaming(t);
	else if (type == PG_MSG_ERROR_RESPONSE || type == PG_MSG_READY_FOR_QUERY)
		refused(t);
}

void repl_track_from_server(struct repl_track *t, const struct pg_msg *m)
{
	/* the login's own ReadyForQuery answers nothing the client sent */
	if (m->type == PG_MSG_READY_FOR_QUERY && t->unanswered > 0)
		t->unanswered--;
	if (t->state == REPL_STARTING) {
		start_answer(t, m->type);
		return;
	}
	if (t->state != REPL_STREAMING)
		return;
	if (t->slot)
		t->slot->bytes_to_client += (uint64_t)m->length + 1;
	if (m->type == PG_MSG_COPY_DATA && t->slot)
		server_copydata(t, m);
	else if (ends_stream(m->type))
		stop_streaming(t);
}

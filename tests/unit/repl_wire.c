/*
 * repl_wire.c - wire messages of a replication connection built by hand
 * (layouts of PostgreSQL's protocol-replication and
 * protocol-logicalrep-message-formats pages), and a relay of them into
 * repl_track through the scanner, as relay.c's scan_chunk does.
 */
#include "repl_wire.h"

#include <stdarg.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/log.h"

static void wire_room(const struct wire *w, size_t n)
{
	assert_true(w->n + n <= sizeof(w->b));
}

void wire_u8(struct wire *w, uint8_t v)
{
	wire_room(w, 1);
	w->b[w->n++] = v;
}

void wire_u16(struct wire *w, uint16_t v)
{
	wire_u8(w, (uint8_t)(v >> 8));
	wire_u8(w, (uint8_t)v);
}

void wire_u32(struct wire *w, uint32_t v)
{
	wire_u16(w, (uint16_t)(v >> 16));
	wire_u16(w, (uint16_t)v);
}

void wire_u64(struct wire *w, uint64_t v)
{
	wire_u32(w, (uint32_t)(v >> 32));
	wire_u32(w, (uint32_t)v);
}

void wire_str(struct wire *w, const char *s)
{
	size_t n = strlen(s) + 1;

	wire_room(w, n);
	memcpy(w->b + w->n, s, n);
	w->n += n;
}

static void wire_bytes(struct wire *w, const uint8_t *p, size_t n)
{
	wire_room(w, n);
	memcpy(w->b + w->n, p, n);
	w->n += n;
}

/* Type and a length to be set by msg_end; returns where the length goes. */
static size_t msg_begin(struct wire *w, uint8_t type)
{
	size_t at;

	wire_u8(w, type);
	at = w->n;
	wire_u32(w, 0);
	return at;
}

static void msg_end(struct wire *w, size_t at)
{
	uint32_t len = (uint32_t)(w->n - at);

	w->b[at] = (uint8_t)(len >> 24);
	w->b[at + 1] = (uint8_t)(len >> 16);
	w->b[at + 2] = (uint8_t)(len >> 8);
	w->b[at + 3] = (uint8_t)len;
}

void msg_query(struct wire *w, const char *text)
{
	size_t at = msg_begin(w, 'Q');

	wire_str(w, text);
	msg_end(w, at);
}

void msg_copy_both(struct wire *w)
{
	size_t at = msg_begin(w, 'W');

	wire_u8(w, 0);		/* overall format: text */
	wire_u16(w, 0);		/* no columns */
	msg_end(w, at);
}

void msg_copy_done(struct wire *w)
{
	msg_end(w, msg_begin(w, 'c'));
}

static void msg_fields(struct wire *w, uint8_t type, const char *severity, const char *sqlstate,
		       const char *text)
{
	size_t at = msg_begin(w, type);

	wire_u8(w, 'S');
	wire_str(w, severity);
	wire_u8(w, 'C');
	wire_str(w, sqlstate);
	wire_u8(w, 'M');
	wire_str(w, text);
	wire_u8(w, 0);
	msg_end(w, at);
}

void msg_error(struct wire *w, const char *sqlstate, const char *text)
{
	msg_fields(w, 'E', "ERROR", sqlstate, text);
}

void msg_notice(struct wire *w)
{
	msg_fields(w, 'N', "NOTICE", "00000", "a notice in the stream");
}

void msg_ready(struct wire *w)
{
	size_t at = msg_begin(w, 'Z');

	wire_u8(w, 'I');
	msg_end(w, at);
}

void msg_command_done(struct wire *w, const char *tag)
{
	size_t at = msg_begin(w, 'C');

	wire_str(w, tag);
	msg_end(w, at);
	msg_ready(w);
}

void msg_copy_data(struct wire *w, const uint8_t *payload, size_t n)
{
	size_t at = msg_begin(w, 'd');

	wire_bytes(w, payload, n);
	msg_end(w, at);
}

void msg_keepalive(struct wire *w, uint64_t wal_end, bool reply)
{
	size_t at = msg_begin(w, 'd');

	wire_u8(w, 'k');
	wire_u64(w, wal_end);
	wire_u64(w, 789);	/* send time */
	wire_u8(w, reply);
	msg_end(w, at);
}

void msg_status(struct wire *w, uint64_t written, uint64_t flushed, uint64_t applied)
{
	size_t at = msg_begin(w, 'd');

	wire_u8(w, 'r');
	wire_u64(w, written);
	wire_u64(w, flushed);
	wire_u64(w, applied);
	wire_u64(w, 123456);	/* client time */
	wire_u8(w, 0);
	msg_end(w, at);
}

void msg_xlogdata(struct wire *w, uint64_t data_start, const struct wire *po)
{
	size_t at = msg_begin(w, 'd');

	wire_u8(w, 'w');
	wire_u64(w, data_start);
	wire_u64(w, data_start + po->n);	/* WAL end */
	wire_u64(w, 456);			/* send time */
	wire_bytes(w, po->b, po->n);
	msg_end(w, at);
}

/* ---- pgoutput ---- */

static void po_new(struct wire *po, uint8_t type)
{
	po->n = 0;
	wire_u8(po, type);
}

/* One column, text "a". */
static void po_tuple(struct wire *po)
{
	wire_u16(po, 1);
	wire_u8(po, 't');
	wire_u32(po, 1);
	wire_u8(po, 'a');
}

void po_begin(struct wire *po, uint64_t final_lsn, int64_t time, uint32_t xid)
{
	po_new(po, 'B');
	wire_u64(po, final_lsn);
	wire_u64(po, (uint64_t)time);
	wire_u32(po, xid);
}

static void po_commit_fields(struct wire *po, uint64_t lsn, uint64_t end_lsn, int64_t time)
{
	wire_u8(po, 0);		/* flags */
	wire_u64(po, lsn);
	wire_u64(po, end_lsn);
	wire_u64(po, (uint64_t)time);
}

void po_commit(struct wire *po, uint64_t lsn, uint64_t end_lsn, int64_t time)
{
	po_new(po, 'C');
	po_commit_fields(po, lsn, end_lsn, time);
}

void po_insert(struct wire *po, int64_t xid)
{
	po_new(po, 'I');
	if (xid >= 0)
		wire_u32(po, (uint32_t)xid);
	wire_u32(po, 16389);	/* relation */
	wire_u8(po, 'N');
	po_tuple(po);
}

void po_update(struct wire *po)
{
	po_new(po, 'U');
	wire_u32(po, 16389);
	wire_u8(po, 'N');
	po_tuple(po);
}

void po_delete(struct wire *po)
{
	po_new(po, 'D');
	wire_u32(po, 16389);
	wire_u8(po, 'K');
	po_tuple(po);
}

void po_truncate(struct wire *po, uint32_t nrels)
{
	po_new(po, 'T');
	wire_u32(po, nrels);
	wire_u8(po, 0);		/* options */
	for (uint32_t i = 0; i < nrels; i++)
		wire_u32(po, 16389 + i);
}

void po_stream_start(struct wire *po, uint32_t xid)
{
	po_new(po, 'S');
	wire_u32(po, xid);
	wire_u8(po, 1);		/* first segment */
}

void po_stream_stop(struct wire *po)
{
	po_new(po, 'E');
}

void po_stream_commit(struct wire *po, uint32_t xid, uint64_t lsn, uint64_t end_lsn, int64_t time)
{
	po_new(po, 'c');
	wire_u32(po, xid);
	po_commit_fields(po, lsn, end_lsn, time);
}

void po_begin_prepare(struct wire *po, uint64_t lsn, uint64_t end_lsn, uint32_t xid)
{
	po_new(po, 'b');
	wire_u64(po, lsn);
	wire_u64(po, end_lsn);
	wire_u64(po, 1000);	/* prepare time */
	wire_u32(po, xid);
	wire_str(po, "g");
}

void po_prepared(struct wire *po, uint8_t type, uint64_t lsn, uint64_t end_lsn, int64_t time,
		 uint32_t xid)
{
	po_new(po, type);
	po_commit_fields(po, lsn, end_lsn, time);
	wire_u32(po, xid);
	wire_str(po, "g");
}

/* ---- the relay ---- */

static void rs_track(struct repl_session *rs, const char *database)
{
	memset(&rs->client, 0, sizeof(rs->client));
	memset(&rs->server, 0, sizeof(rs->server));
	/* as session_upstream.c's start_relay: the client bounded, the server not */
	pg_scan_init(&rs->client, 1u << 20);
	pg_scan_init(&rs->server, UINT32_MAX);
	rs->scan_error = false;
	rs->t = repl_track_new(&rs->reg, rs->errors, "test", database);
	assert_non_null(rs->t);
}

void rs_open(struct repl_session *rs, const char *database)
{
	log_configure(LOG_LEVEL_ERROR, false);	/* the malformed-message warnings */
	memset(rs, 0, sizeof(*rs));
	slots_init(&rs->reg);
	rs_track(rs, database);
}

void rs_end(struct repl_session *rs)
{
	repl_track_free(rs->t);
	rs->t = NULL;
}

void rs_free(struct repl_session *rs)
{
	rs_end(rs);
	slots_free(&rs->reg);
}

void rs_reopen(struct repl_session *rs, const char *database)
{
	rs_end(rs);
	rs_track(rs, database);
}

/* One chunk, as relay.c's scan_chunk hands it to the session's hooks. */
static void rs_chunk(struct repl_session *rs, bool from_client, const uint8_t *p, size_t n)
{
	struct pg_scanner *sc = from_client ? &rs->client : &rs->server;

	while (n > 0 && !rs->scan_error) {
		enum pg_scan_status st;
		size_t used = pg_scan_feed(sc, p, n, &st);

		p += used;
		n -= used;
		if (st == PG_SCAN_ERROR)
			rs->scan_error = true;
		else if (st == PG_SCAN_MESSAGE && from_client)
			repl_track_from_client(rs->t, sc, false);
		else if (st == PG_SCAN_MESSAGE)
			repl_track_from_server(rs->t, &sc->msg);
		else if (st == PG_SCAN_CAPTURED && from_client)
			repl_track_from_client(rs->t, sc, true);
	}
}

void rs_feed(struct repl_session *rs, bool from_client, const uint8_t *p, size_t n, size_t chunk)
{
	if (chunk == 0)
		chunk = n;
	while (n > 0) {
		size_t k = n < chunk ? n : chunk;

		rs_chunk(rs, from_client, p, k);
		p += k;
		n -= k;
	}
}

void rs_client(struct repl_session *rs, const struct wire *w)
{
	rs_feed(rs, true, w->b, w->n, 0);
}

void rs_server(struct repl_session *rs, const struct wire *w)
{
	rs_feed(rs, false, w->b, w->n, 0);
}

void rs_start(struct repl_session *rs, const char *start_command)
{
	struct wire w = { .n = 0 };

	msg_query(&w, start_command);
	rs_client(rs, &w);
	assert_int_equal(rs->t->state, REPL_STARTING);
	w.n = 0;
	msg_copy_both(&w);
	rs_server(rs, &w);
	assert_int_equal(rs->t->state, REPL_STREAMING);
}

struct slot_stream *rs_slot(struct repl_session *rs, const char *name)
{
	struct slot_stream *s;

	TAILQ_FOREACH(s, &rs->reg.slots, link)
		if (!strcmp(s->name, name))
			return s;
	return NULL;
}

uint64_t rs_error_total(const struct repl_session *rs)
{
	uint64_t n = 0;

	for (int k = 0; k < PROTO_ERR_KINDS; k++)
		n += rs->errors[k];
	return n;
}

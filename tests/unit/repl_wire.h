/*
 * repl_wire.h - for the replication tracker's tests: build the wire
 * messages of a replication connection byte by byte (the client's Query
 * and status updates, the server's CopyBothResponse, XLogData carrying
 * pgoutput, keepalives, errors), and relay them through a scanner into
 * repl_track in chunks of any size, as the relay does.
 */
#ifndef WALGATE_TEST_REPL_WIRE_H
#define WALGATE_TEST_REPL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/pg_scan.h"
#include "repl/repl_track.h"
#include "repl/slot_table.h"
#include "core/counters.h"

/* Bytes being built: whole messages, or a pgoutput message to wrap in a 'w'. */
struct wire {
	uint8_t b[4096];
	size_t n;
};

void wire_u8(struct wire *w, uint8_t v);
void wire_u16(struct wire *w, uint16_t v);
void wire_u32(struct wire *w, uint32_t v);
void wire_u64(struct wire *w, uint64_t v);
void wire_str(struct wire *w, const char *s);	/* with its NUL */

/* ---- messages (appended to w) ---- */
void msg_query(struct wire *w, const char *text);
void msg_copy_both(struct wire *w);
void msg_copy_done(struct wire *w);
void msg_error(struct wire *w, const char *sqlstate, const char *text);
void msg_notice(struct wire *w);
void msg_ready(struct wire *w);
/* A command's end: CommandComplete with tag, then ReadyForQuery. */
void msg_command_done(struct wire *w, const char *tag);
/* A CopyData whose payload is bytes[0..n): for hand-made hostile ones. */
void msg_copy_data(struct wire *w, const uint8_t *payload, size_t n);
void msg_keepalive(struct wire *w, uint64_t wal_end, bool reply);
void msg_status(struct wire *w, uint64_t written, uint64_t flushed, uint64_t applied);
/* XLogData at data_start carrying po's bytes (a pgoutput message, or WAL). */
void msg_xlogdata(struct wire *w, uint64_t data_start, const struct wire *po);

/* ---- pgoutput messages (each one a fresh po) ---- */
void po_begin(struct wire *po, uint64_t final_lsn, int64_t time, uint32_t xid);
void po_commit(struct wire *po, uint64_t lsn, uint64_t end_lsn, int64_t time);
/* xid < 0: not in a streamed transaction. One text column "a". */
void po_insert(struct wire *po, int64_t xid);
void po_update(struct wire *po);
void po_delete(struct wire *po);
void po_truncate(struct wire *po, uint32_t nrels);
void po_stream_start(struct wire *po, uint32_t xid);
void po_stream_stop(struct wire *po);
void po_stream_commit(struct wire *po, uint32_t xid, uint64_t lsn, uint64_t end_lsn, int64_t time);
void po_begin_prepare(struct wire *po, uint64_t lsn, uint64_t end_lsn, uint32_t xid);
/* type 'P' (Prepare) or 'K' (Commit Prepared), gid "g" */
void po_prepared(struct wire *po, uint8_t type, uint64_t lsn, uint64_t end_lsn, int64_t time,
		 uint32_t xid);

/* ---- one replication connection, relayed ---- */
struct repl_session {
	struct slot_registry reg;
	uint64_t errors[PROTO_ERR_KINDS];
	struct repl_track *t;
	struct pg_scanner client, server;
	bool scan_error;	/* a scanner refused the framing: the relay would close */
};

/* database: the startup packet's (NULL: a physical connection). */
void rs_open(struct repl_session *rs, const char *database);
/* The session ends; the registry is kept until rs_free. */
void rs_end(struct repl_session *rs);
void rs_free(struct repl_session *rs);
/* A new session on the same registry (a consumer reconnecting). */
void rs_reopen(struct repl_session *rs, const char *database);

/* Relay bytes in chunks of at most chunk bytes (0: all at once). */
void rs_feed(struct repl_session *rs, bool from_client, const uint8_t *p, size_t n, size_t chunk);
void rs_client(struct repl_session *rs, const struct wire *w);
void rs_server(struct repl_session *rs, const struct wire *w);
/* The common opening: the client's START, the server's CopyBothResponse. */
void rs_start(struct repl_session *rs, const char *start_command);

struct slot_stream *rs_slot(struct repl_session *rs, const char *name);
uint64_t rs_error_total(const struct repl_session *rs);

#endif

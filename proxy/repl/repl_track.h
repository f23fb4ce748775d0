/*
 * repl_track.h - following a replication connection as it is relayed:
 * the replication commands the client sends, the stream a
 * START_REPLICATION opens, and every XLogData, keepalive, status update
 * and pgoutput message in it, into the slot's entry (slot_table.h).
 *
 * It only looks: bytes are relayed unchanged whatever it finds, and a
 * message it cannot decode is logged and counted, never refused.
 */
#ifndef WALGATE_REPL_TRACK_H
#define WALGATE_REPL_TRACK_H

#include <stdbool.h>

#include "protocol/pg_repl_cmd.h"
#include "protocol/pg_repl_stream.h"
#include "protocol/pg_scan.h"
#include "repl/slot_table-t.h"

/*
 * What the session is told, for slot takeover (session_takeover.c); each
 * may be NULL.
 */
struct repl_track_events {
	void (*start)(void *arg, const char *slot);	/* a START_REPLICATION scanned, not yet forwarded */
	void (*streaming)(void *arg, bool on);		/* the server accepted it; refused it, or the stream ended */
	void (*status)(void *arg);			/* the client sent a status update or hot standby feedback */
	void *arg;
};

enum repl_track_state {
	REPL_IDLE,		/* commands and SQL */
	REPL_STARTING,		/* START_REPLICATION sent, the server has not answered */
	REPL_STREAMING,		/* CopyBoth: the stream runs */
};

struct repl_track {
	struct slot_registry *registry;
	uint64_t *errors;		/* worker_stats.protocol_errors, by kind */
	const char *log_prefix;		/* the session's */
	char database[PG_REPL_NAME_MAX];	/* "" on a physical connection */

	enum repl_track_state state;
	/*
	 * Each Query, Sync and FunctionCall gets one ReadyForQuery, in order:
	 * those sent and not yet answered, and how many of them were sent
	 * before the pending START (their answers are not its answer).
	 */
	uint64_t unanswered;
	uint64_t ahead;
	char start_slot[PG_REPL_NAME_MAX];	/* of the START awaiting its answer */
	enum pg_repl_kind start_kind;
	int start_proto_version;
	uint64_t start_lsn;
	struct slot_stream *slot;	/* while streaming */
	bool pgoutput;			/* proto_version given: only pgoutput takes it */
	struct pgoutput_state po;
	unsigned logged;		/* malformed messages logged for this session */

	struct repl_track_events ev;

	uint8_t query[PG_REPL_CMD_SCAN_MAX];	/* a Query captured whole, up to its bound */
	uint32_t query_len;		/* its payload length */
};

/* database is the startup packet's (NULL on a physical connection). */
struct repl_track *repl_track_new(struct slot_registry *registry, uint64_t *errors,
				  const char *log_prefix, const char *database);
void repl_track_free(struct repl_track *t);

/* Tell ev of starts, streams and status updates from here on. */
void repl_track_observe(struct repl_track *t, const struct repl_track_events *ev);

/*
 * A message from the client, as the relay's scanner reports it: first
 * its prefix (captured false), and for a Query that asked for more, once
 * again when the capture is complete (captured true).
 */
void repl_track_from_client(struct repl_track *t, struct pg_scanner *sc, bool captured);
void repl_track_from_server(struct repl_track *t, const struct pg_msg *m);

#endif

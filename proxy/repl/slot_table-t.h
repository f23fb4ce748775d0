/*
 * slot_table-t.h - the types of the slot table (slot_table.h), for the layers that
 * hold or read them without calling into it: a worker embeds its table,
 * a scrape reads the views.
 */
#ifndef WALGATE_SLOT_TABLE_T_H
#define WALGATE_SLOT_TABLE_T_H

#include <stdint.h>
#include <sys/queue.h>

#include "protocol/pg_repl_cmd.h"
#include "repl/lag_tracker.h"

enum slot_op {
	SLOT_OP_INSERT,
	SLOT_OP_UPDATE,
	SLOT_OP_DELETE,
	SLOT_OP_TRUNCATE,
	SLOT_OPS
};

struct slot_stream {
	TAILQ_ENTRY(slot_stream) link;
	char name[PG_REPL_NAME_MAX];	/* "" for a physical stream without a slot */
	char database[PG_REPL_NAME_MAX];
	enum pg_repl_kind kind;
	unsigned streaming;		/* sessions relaying a START_REPLICATION of it now */
	int64_t ended_us;		/* monotonic time the last one ended */

	uint64_t sent_lsn;		/* highest position forwarded to the client */
	uint64_t written_lsn;		/* as the client last reported them */
	uint64_t flushed_lsn;
	/*
	 * Where this session's stream began: the START's LSN, or the first
	 * position the server sent when the client let it choose (0/0).
	 * Until the client reports a flush position, what was sent past this
	 * is what is unacknowledged.
	 */
	uint64_t start_lsn;
	struct lag_tracker lag;
	int64_t last_commit_time;	/* PostgreSQL microseconds; 0 before any Commit */
	double last_status_unix;	/* when the last status update passed; 0 never */

	uint64_t transactions;
	uint64_t changes[SLOT_OPS];
	uint64_t bytes_to_client;	/* CopyData bytes, whole messages */
	uint64_t bytes_to_server;
	uint64_t messages_to_client;	/* XLogData messages (any plugin) */
	uint64_t keepalives;
	uint64_t status_updates;
	uint64_t malformed;		/* replication messages that did not decode */
};

TAILQ_HEAD(slot_list, slot_stream);

struct slot_registry {
	struct slot_list slots;
	unsigned n;
};

/*
 * A slot's numbers at one instant, detached from the entry (for a scrape
 * taken on another thread): lags computed, nothing pointing back.
 */
struct slot_view {
	char name[PG_REPL_NAME_MAX];
	char database[PG_REPL_NAME_MAX];
	enum pg_repl_kind kind;
	unsigned streaming;
	uint64_t sent_lsn, written_lsn, flushed_lsn, unacknowledged;
	double write_lag, flush_lag;	/* seconds */
	int64_t last_commit_time;
	double last_status_unix;
	uint64_t transactions;
	uint64_t changes[SLOT_OPS];
	uint64_t bytes_to_client, bytes_to_server, messages_to_client;
	uint64_t keepalives, status_updates, malformed;
};

#endif

/*
 * slots.h - what walgate has seen of each replication slot streamed
 * through it: positions, lags, counts. One entry per slot name, shared by
 * the sessions that stream it one after another, kept for slot_expiry
 * after the last of them ends so that a reconnecting client continues its
 * counters and a scrape still sees the slot that just went away.
 *
 * Entries are created only when the server has accepted a
 * START_REPLICATION (its CopyBothResponse), so the table is bounded by the
 * upstream's max_replication_slots, not by what clients ask for.
 */
#ifndef WALGATE_SLOTS_H
#define WALGATE_SLOTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "repl/lag_tracker.h"
#include "protocol/pg_repl_cmd.h"

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

void slots_init(struct slot_registry *r);
void slots_free(struct slot_registry *r);

/*
 * A session starts streaming `name`: find or create its entry. Returns
 * NULL when out of memory (the stream is then relayed without metrics).
 */
struct slot_stream *slots_attach(struct slot_registry *r, const char *name,
				 const char *database, enum pg_repl_kind kind);

/* Sent minus flushed (or minus the start, before any flush report); 0 when ahead. */
uint64_t slot_unacknowledged(const struct slot_stream *s);

/* That session's stream ended (CopyDone, an error, or the session closed). */
void slots_detach(struct slot_stream *s, int64_t now_us);

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

/*
 * Views of every entry into a new array (*out, free() it); returns the
 * count, or -1 when out of memory.
 */
long slots_view(const struct slot_registry *r, int64_t now_us, struct slot_view **out);

/*
 * Fold another worker's view of the same slot into v: counters add up,
 * positions take the furthest, the lags and timestamps of the one that
 * streams (or the later one).
 */
void slot_view_merge(struct slot_view *v, const struct slot_view *other);

/* Drop entries with no stream for longer than expiry_us. */
void slots_expire(struct slot_registry *r, int64_t now_us, int64_t expiry_us);

/* Seconds since the epoch, for timestamps shown to people. */
double slots_unix_now(void);

/* Monotonic microseconds (coarse: a few ms of resolution), the clock of every *_us above. */
int64_t slots_now_us(void);

#endif

/*
 * pg_repl_stream.h - decode the CopyData ('d') messages of a streaming
 * replication connection from the payload prefix the scanner keeps:
 * XLogData 'w' and keepalive 'k' from the server, standby status update
 * 'r' and hot standby feedback 'h' from the client, and the fixed header
 * of the pgoutput message carried in a logical 'w'.
 *
 * Every decoder takes the bytes it may read (prefix, prefix_len) and the
 * whole payload length (the message length minus 4), which says how long
 * the message really is: lengths are judged against the payload length,
 * and nothing past prefix_len is ever read.
 *
 * Pure: no I/O, no allocation.
 */
#ifndef WALGATE_PG_REPL_STREAM_H
#define WALGATE_PG_REPL_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Payload sizes (PostgreSQL docs, protocol-replication). */
#define PG_REPL_XLOGDATA_HDR_LEN	25u	/* 'w', data start, WAL end, send time */
#define PG_REPL_KEEPALIVE_LEN		18u	/* 'k', WAL end, send time, reply */
#define PG_REPL_STATUS_LEN		34u	/* 'r', written, flushed, applied, time, reply */
#define PG_REPL_FEEDBACK_LEN		25u	/* 'h', time, xmin, epoch, catalog xmin, epoch */

/* Seconds from 1970-01-01 to 2000-01-01, the PostgreSQL epoch. */
#define PG_EPOCH_UNIX_SECONDS		946684800

enum pg_repl_verdict {
	PG_REPL_OK = 0,
	PG_REPL_TOO_SHORT,	/* ends before its layout does (or the prefix given does) */
	PG_REPL_BAD_LENGTH,	/* longer than its layout allows */
	PG_REPL_MALFORMED,	/* a byte in view contradicts the layout */
	PG_REPL_UNKNOWN,	/* a first byte this decoder does not know: count, relay */
};

struct pg_repl_xlogdata {
	uint64_t data_start;
	uint64_t wal_end;
	int64_t send_time;		/* microseconds since 2000-01-01 */
	const uint8_t *data;		/* the WAL or pgoutput bytes, inside the prefix */
	size_t data_have;		/* how many of them the prefix holds */
	size_t data_len;		/* how many the message carries */
};

struct pg_repl_keepalive {
	uint64_t wal_end;
	int64_t send_time;
	bool reply_requested;
};

/* LSNs are those of the last byte written/flushed/applied, plus one. */
struct pg_repl_status {
	uint64_t written;
	uint64_t flushed;
	uint64_t applied;
	int64_t client_time;
	bool reply_requested;
};

struct pg_repl_feedback {
	int64_t time;
	uint32_t xmin;
	uint32_t xmin_epoch;
	uint32_t catalog_xmin;
	uint32_t catalog_xmin_epoch;
};

enum pg_repl_copy_kind {
	PG_REPL_COPY_UNKNOWN = 0,
	PG_REPL_COPY_XLOGDATA,		/* 'w', server */
	PG_REPL_COPY_KEEPALIVE,		/* 'k', server */
	PG_REPL_COPY_STATUS,		/* 'r', client */
	PG_REPL_COPY_FEEDBACK,		/* 'h', client */
};

struct pg_repl_copydata {
	enum pg_repl_copy_kind kind;
	uint8_t type;			/* first payload byte; 0 when the payload is empty */
	union {
		struct pg_repl_xlogdata xlogdata;
		struct pg_repl_keepalive keepalive;
		struct pg_repl_status status;
		struct pg_repl_feedback feedback;
	} u;
};

/*
 * One decoder per message. Each returns PG_REPL_UNKNOWN when the first
 * byte is not its own, PG_REPL_TOO_SHORT when payload_len (or prefix_len)
 * is short of the fixed layout, PG_REPL_BAD_LENGTH when payload_len is
 * longer than 'k', 'r' or 'h' can be; *out is filled on PG_REPL_OK only.
 */
enum pg_repl_verdict pg_repl_xlogdata_decode(const uint8_t *prefix, size_t prefix_len,
					     size_t payload_len, struct pg_repl_xlogdata *out);
enum pg_repl_verdict pg_repl_keepalive_decode(const uint8_t *prefix, size_t prefix_len,
					      size_t payload_len, struct pg_repl_keepalive *out);
enum pg_repl_verdict pg_repl_status_decode(const uint8_t *prefix, size_t prefix_len,
					   size_t payload_len, struct pg_repl_status *out);
enum pg_repl_verdict pg_repl_feedback_decode(const uint8_t *prefix, size_t prefix_len,
					     size_t payload_len, struct pg_repl_feedback *out);

/*
 * Dispatch on the first byte, given the direction: 'w'/'k' only from the
 * server, 'r'/'h' only from the client; anything else is UNKNOWN (newer
 * servers add types, such as 's'/'p' of PostgreSQL 19, that walgate relays
 * untouched). out->kind and out->type are set whatever the verdict.
 */
enum pg_repl_verdict pg_repl_copydata_decode(const uint8_t *prefix, size_t prefix_len,
					     size_t payload_len, bool from_server,
					     struct pg_repl_copydata *out);

/* Microseconds since 2000-01-01 (TimestampTz) as seconds since 1970-01-01. */
double pg_time_to_unix_seconds(int64_t pg_time);

/*
 * pgoutput (PostgreSQL docs, protocol-logicalrep-message-formats), the
 * message in the data of a logical 'w'.
 */
enum pgoutput_kind {
	PGOUTPUT_UNKNOWN = 0,
	PGOUTPUT_BEGIN,			/* 'B' */
	PGOUTPUT_COMMIT,		/* 'C' */
	PGOUTPUT_ORIGIN,		/* 'O' */
	PGOUTPUT_RELATION,		/* 'R' */
	PGOUTPUT_TYPE,			/* 'Y' */
	PGOUTPUT_INSERT,		/* 'I' */
	PGOUTPUT_UPDATE,		/* 'U' */
	PGOUTPUT_DELETE,		/* 'D' */
	PGOUTPUT_TRUNCATE,		/* 'T' */
	PGOUTPUT_MESSAGE,		/* 'M' */
	PGOUTPUT_STREAM_START,		/* 'S', v2+ */
	PGOUTPUT_STREAM_STOP,		/* 'E', v2+ */
	PGOUTPUT_STREAM_COMMIT,		/* 'c', v2+ */
	PGOUTPUT_STREAM_ABORT,		/* 'A', v2+ */
	PGOUTPUT_BEGIN_PREPARE,		/* 'b', v3+ */
	PGOUTPUT_PREPARE,		/* 'P', v3+ */
	PGOUTPUT_COMMIT_PREPARED,	/* 'K', v3+ */
	PGOUTPUT_ROLLBACK_PREPARED,	/* 'r', v3+ */
	PGOUTPUT_STREAM_PREPARE,	/* 'p', v3+ */
};

/*
 * The fixed header of one message. Fields a message does not have stay 0.
 *   lsn      B final LSN; C, c, K commit LSN; b, P, p prepare LSN;
 *            r prepare end LSN; O origin commit LSN; M message LSN;
 *            A abort LSN (v4 parallel streaming only)
 *   end_lsn  C, c, K, b, P, p end LSN; r rollback end LSN
 *   time     B, C, c, K commit time; b, P, p prepare time; r rollback
 *            time; A abort time (v4 parallel only); microseconds since 2000
 *   prepare_time  r only
 *   xid      B, S, c, A, b, P, K, r, p, and every change of a streamed
 *            transaction (has_xid tells)
 *   flags    C, c, P, K, r, p flags; M flags (1 = transactional);
 *            T options (1 = CASCADE, 2 = RESTART IDENTITY)
 *   nrels    T: relations truncated. One Truncate message is one change,
 *            however many relations it names.
 */
struct pgoutput_msg {
	enum pgoutput_kind kind;
	uint8_t type;			/* the first byte, for UNKNOWN too */
	bool has_xid;
	uint32_t xid;
	uint8_t flags;
	uint64_t lsn;
	uint64_t end_lsn;
	int64_t time;
	int64_t prepare_time;
	uint32_t nrels;
	uint32_t subxid;		/* A */
	bool first_segment;		/* S: the first block of this transaction */
};

/*
 * Kept by the caller for each logical stream. proto_version is the one
 * START_REPLICATION asked for; 0 when unknown, which admits every message
 * type. in_stream is true between Stream Start and Stream Stop, where
 * changes carry the xid of their transaction first.
 */
struct pgoutput_state {
	int proto_version;
	bool in_stream;
};

void pgoutput_state_init(struct pgoutput_state *st, int proto_version);

/*
 * Decode the pgoutput message buf[0..have) of len bytes (for a 'w':
 * xlogdata.data, data_have, data_len). The fixed header must be in view;
 * what is in view after it is walked (strings; never tuple data) and must
 * fit the length, what is not is taken on trust. A type above
 * proto_version is UNKNOWN. out->kind and out->type are set whatever the
 * verdict, so that a caller can count what it could not decode; the other
 * fields are to be trusted on PG_REPL_OK only.
 */
enum pg_repl_verdict pgoutput_decode(const uint8_t *buf, size_t have, size_t len,
				     int proto_version, bool in_stream,
				     struct pgoutput_msg *out);

/*
 * Follow Stream Start and Stream Stop. It goes by out->kind alone, so a
 * stream start that failed its length check still opens the stream: the
 * server sent it, and the xids that follow it are there regardless.
 */
void pgoutput_state_update(struct pgoutput_state *st, const struct pgoutput_msg *m);

const char *pg_repl_verdict_str(enum pg_repl_verdict v);
const char *pgoutput_kind_str(enum pgoutput_kind k);

#endif

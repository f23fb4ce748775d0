/*
 * pg_repl_copydata.c - decode the CopyData payloads of a replication
 * stream (XLogData, keepalive, standby status update, hot standby
 * feedback) from a bounded prefix of each, as pg_repl_stream.h declares.
 *
 * Each of these has a fixed size: its length is judged against the real
 * payload length (shorter is TOO_SHORT, longer BAD_LENGTH), and its bytes
 * are read only inside the prefix the scanner kept.
 */
#include "pg_repl_stream.h"
#include "pg_wire.h"

#include <string.h>

double pg_time_to_unix_seconds(int64_t pg_time)
{
	return (double)pg_time / 1e6 + (double)PG_EPOCH_UNIX_SECONDS;
}

/*
 * The checks every fixed-size CopyData message shares. The type byte is
 * looked at first, so that a decoder handed another message says UNKNOWN
 * rather than judging it by a layout that is not its own.
 */
static enum pg_repl_verdict fixed_check(const uint8_t *prefix, size_t prefix_len,
					size_t payload_len, uint8_t type, size_t size)
{
	if (payload_len == 0 || prefix_len == 0)
		return PG_REPL_TOO_SHORT;
	if (prefix[0] != type)
		return PG_REPL_UNKNOWN;
	if (payload_len < size)
		return PG_REPL_TOO_SHORT;
	if (payload_len > size)
		return PG_REPL_BAD_LENGTH;
	if (prefix_len < size)
		return PG_REPL_TOO_SHORT;
	return PG_REPL_OK;
}

enum pg_repl_verdict pg_repl_xlogdata_decode(const uint8_t *prefix, size_t prefix_len,
					     size_t payload_len, struct pg_repl_xlogdata *out)
{
	size_t have = prefix_len < payload_len ? prefix_len : payload_len;

	if (have == 0)
		return PG_REPL_TOO_SHORT;
	if (prefix[0] != 'w')
		return PG_REPL_UNKNOWN;
	if (have < PG_REPL_XLOGDATA_HDR_LEN)
		return PG_REPL_TOO_SHORT;
	out->data_start = pg_get_u64(prefix + 1);
	out->wal_end = pg_get_u64(prefix + 9);
	out->send_time = pg_get_i64(prefix + 17);
	out->data = prefix + PG_REPL_XLOGDATA_HDR_LEN;
	out->data_have = have - PG_REPL_XLOGDATA_HDR_LEN;
	out->data_len = payload_len - PG_REPL_XLOGDATA_HDR_LEN;
	return PG_REPL_OK;
}

enum pg_repl_verdict pg_repl_keepalive_decode(const uint8_t *prefix, size_t prefix_len,
					      size_t payload_len, struct pg_repl_keepalive *out)
{
	enum pg_repl_verdict v = fixed_check(prefix, prefix_len, payload_len, 'k',
					     PG_REPL_KEEPALIVE_LEN);

	if (v != PG_REPL_OK)
		return v;
	out->wal_end = pg_get_u64(prefix + 1);
	out->send_time = pg_get_i64(prefix + 9);
	out->reply_requested = prefix[17] != 0;
	return PG_REPL_OK;
}

enum pg_repl_verdict pg_repl_status_decode(const uint8_t *prefix, size_t prefix_len,
					   size_t payload_len, struct pg_repl_status *out)
{
	enum pg_repl_verdict v = fixed_check(prefix, prefix_len, payload_len, 'r',
					     PG_REPL_STATUS_LEN);

	if (v != PG_REPL_OK)
		return v;
	out->written = pg_get_u64(prefix + 1);
	out->flushed = pg_get_u64(prefix + 9);
	out->applied = pg_get_u64(prefix + 17);
	out->client_time = pg_get_i64(prefix + 25);
	out->reply_requested = prefix[33] != 0;
	return PG_REPL_OK;
}

enum pg_repl_verdict pg_repl_feedback_decode(const uint8_t *prefix, size_t prefix_len,
					     size_t payload_len, struct pg_repl_feedback *out)
{
	enum pg_repl_verdict v = fixed_check(prefix, prefix_len, payload_len, 'h',
					     PG_REPL_FEEDBACK_LEN);

	if (v != PG_REPL_OK)
		return v;
	out->time = pg_get_i64(prefix + 1);
	out->xmin = pg_get_u32(prefix + 9);
	out->xmin_epoch = pg_get_u32(prefix + 13);
	out->catalog_xmin = pg_get_u32(prefix + 17);
	out->catalog_xmin_epoch = pg_get_u32(prefix + 21);
	return PG_REPL_OK;
}

enum pg_repl_verdict pg_repl_copydata_decode(const uint8_t *prefix, size_t prefix_len,
					     size_t payload_len, bool from_server,
					     struct pg_repl_copydata *out)
{
	memset(out, 0, sizeof(*out));
	if (payload_len == 0 || prefix_len == 0)
		return PG_REPL_TOO_SHORT;
	out->type = prefix[0];
	if (from_server && out->type == 'w') {
		out->kind = PG_REPL_COPY_XLOGDATA;
		return pg_repl_xlogdata_decode(prefix, prefix_len, payload_len, &out->u.xlogdata);
	}
	if (from_server && out->type == 'k') {
		out->kind = PG_REPL_COPY_KEEPALIVE;
		return pg_repl_keepalive_decode(prefix, prefix_len, payload_len, &out->u.keepalive);
	}
	if (!from_server && out->type == 'r') {
		out->kind = PG_REPL_COPY_STATUS;
		return pg_repl_status_decode(prefix, prefix_len, payload_len, &out->u.status);
	}
	if (!from_server && out->type == 'h') {
		out->kind = PG_REPL_COPY_FEEDBACK;
		return pg_repl_feedback_decode(prefix, prefix_len, payload_len, &out->u.feedback);
	}
	return PG_REPL_UNKNOWN;
}

const char *pg_repl_verdict_str(enum pg_repl_verdict v)
{
	switch (v) {
	case PG_REPL_OK:
		return "ok";
	case PG_REPL_TOO_SHORT:
		return "message too short";
	case PG_REPL_BAD_LENGTH:
		return "message longer than its layout";
	case PG_REPL_MALFORMED:
		return "message contradicts its layout";
	case PG_REPL_UNKNOWN:
		return "unknown message type";
	}
	return "unknown verdict";
}

/*
 * test_repl_track.c - a replication connection relayed byte for byte
 * through the scanner into repl_track, as the relay does: what the slot
 * registry records of well-formed streams (slot, database, states,
 * positions, unacknowledged bytes, transactions, changes, lag samples),
 * whatever the chunk boundaries. Hostile inputs: test_repl_track_hostile.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "repl_wire.h"

#define START_V1 "START_REPLICATION SLOT \"sub\" LOGICAL 0/1000 " \
		 "(\"proto_version\" '1', \"publication_names\" 'pub')"
#define COMMIT_TIME 812345678901234LL	/* microseconds since 2000 */
#define S 1000000

/* One transaction of every change kind, the XLogData each at its LSN. */
static void transaction(struct wire *srv, uint64_t at, int64_t commit_time)
{
	struct wire po;

	po_begin(&po, at + 0x20, 1000, 742);
	msg_xlogdata(srv, at, &po);
	po_insert(&po, -1);
	msg_xlogdata(srv, at, &po);
	po_update(&po);
	msg_xlogdata(srv, at + 0x8, &po);
	po_delete(&po);
	msg_xlogdata(srv, at + 0x10, &po);
	po_truncate(&po, 3);	/* three relations, one change */
	msg_xlogdata(srv, at + 0x18, &po);
	po_commit(&po, at + 0x20, at + 0x50, commit_time);
	msg_xlogdata(srv, at + 0x20, &po);
}

static void client_status(struct repl_session *rs, uint64_t written, uint64_t flushed)
{
	struct wire w = { .n = 0 };

	msg_status(&w, written, flushed, 0);
	rs_client(rs, &w);
}

static void server_msg(struct repl_session *rs, void (*build)(struct wire *))
{
	struct wire w = { .n = 0 };

	build(&w);
	rs_server(rs, &w);
}

/* The entry exists only once the server accepted the START. */
static void test_entry_after_copy_both(void **state)
{
	struct repl_session rs;
	struct wire w = { .n = 0 };
	struct slot_stream *s;

	(void)state;
	rs_open(&rs, "appdb");
	msg_query(&w, START_V1);
	rs_client(&rs, &w);
	assert_int_equal(rs.t->state, REPL_STARTING);
	assert_int_equal(rs.reg.n, 0);
	server_msg(&rs, msg_copy_both);
	assert_int_equal(rs.t->state, REPL_STREAMING);
	assert_int_equal(rs.reg.n, 1);
	s = rs_slot(&rs, "sub");
	assert_non_null(s);
	assert_string_equal(s->database, "appdb");
	assert_int_equal(s->kind, PG_REPL_KIND_LOGICAL);
	assert_int_equal(s->streaming, 1);
	assert_int_equal(s->start_lsn, 0x1000);
	assert_int_equal(s->sent_lsn, 0x1000);
	assert_int_equal(slot_unacknowledged(s), 0);
	assert_int_equal(rs_error_total(&rs), 0);
	rs_free(&rs);
}

static void test_transaction_counted(void **state)
{
	struct repl_session rs;
	struct wire srv = { .n = 0 };
	struct slot_stream *s;

	(void)state;
	rs_open(&rs, "appdb");
	rs_start(&rs, START_V1);
	transaction(&srv, 0x2000, COMMIT_TIME);
	rs_server(&rs, &srv);
	s = rs_slot(&rs, "sub");
	assert_int_equal(s->transactions, 1);
	assert_int_equal(s->changes[SLOT_OP_INSERT], 1);
	assert_int_equal(s->changes[SLOT_OP_UPDATE], 1);
	assert_int_equal(s->changes[SLOT_OP_DELETE], 1);
	assert_int_equal(s->changes[SLOT_OP_TRUNCATE], 1);
	assert_int_equal(s->messages_to_client, 6);
	assert_int_equal(s->bytes_to_client, srv.n);
	assert_true(s->last_commit_time == COMMIT_TIME);
	/* a logical client confirms the data start: the Commit's is the highest */
	assert_int_equal(s->sent_lsn, 0x2020);
	assert_int_equal(slot_unacknowledged(s), 0x2020 - 0x1000);
	assert_int_equal(s->malformed, 0);
	assert_int_equal(rs_error_total(&rs), 0);
	rs_free(&rs);
}

/* Positions only move forward; unacknowledged is sent minus flushed. */
static void test_status_updates(void **state)
{
	struct repl_session rs;
	struct wire srv = { .n = 0 };
	struct slot_stream *s;

	(void)state;
	rs_open(&rs, "appdb");
	rs_start(&rs, START_V1);
	transaction(&srv, 0x2000, COMMIT_TIME);
	rs_server(&rs, &srv);
	s = rs_slot(&rs, "sub");
	client_status(&rs, 0x2010, 0x2000);
	assert_int_equal(s->status_updates, 1);
	assert_true(s->last_status_unix > 0);
	assert_int_equal(s->written_lsn, 0x2010);
	assert_int_equal(s->flushed_lsn, 0x2000);
	assert_int_equal(slot_unacknowledged(s), 0x20);
	assert_int_equal(s->bytes_to_server, 1 + 4 + 34);
	/* an older report moves nothing back; 0 means "not known" */
	client_status(&rs, 0, 0x1800);
	assert_int_equal(s->written_lsn, 0x2010);
	assert_int_equal(s->flushed_lsn, 0x2000);
	assert_int_equal(s->status_updates, 2);
	client_status(&rs, 0x2020, 0x2020);
	assert_int_equal(slot_unacknowledged(s), 0);
	assert_int_equal(rs_error_total(&rs), 0);
	rs_free(&rs);
}

/*
 * Lag samples are taken at XLogData, not keepalives; the lag is 0 once
 * everything sent is flushed, and rises again with the age of what is
 * sent after that and not confirmed (README, walgate_slot_flush_lag_seconds).
 */
static void test_lag_samples(void **state)
{
	struct repl_session rs;
	struct wire srv = { .n = 0 }, po;
	struct slot_stream *s;
	int64_t now;

	(void)state;
	rs_open(&rs, "appdb");
	rs_start(&rs, START_V1);
	s = rs_slot(&rs, "sub");
	msg_keepalive(&srv, 0x1800, false);
	rs_server(&rs, &srv);
	assert_int_equal(s->sent_lsn, 0x1800);
	assert_int_equal(s->keepalives, 1);
	assert_int_equal(s->lag.written, 0);
	srv.n = 0;
	transaction(&srv, 0x2000, COMMIT_TIME);
	rs_server(&rs, &srv);
	assert_true(s->lag.written >= 1);
	assert_int_equal(s->lag.ring[0].lsn, 0x2000);
	client_status(&rs, 0x2000, 0x2000);
	assert_true(s->lag.lag_us[LAG_FLUSH] >= 0);
	client_status(&rs, 0x2020, 0x2020);
	now = slots_now_us();
	assert_true(lag_tracker_seconds(&s->lag, LAG_FLUSH, now + 10 * S) == 0.0);
	assert_true(lag_tracker_seconds(&s->lag, LAG_WRITE, now + 10 * S) == 0.0);
	/* something new, never confirmed: its age 10 s later is the lag */
	po_begin(&po, 0x3000, 1000, 743);
	srv.n = 0;
	msg_xlogdata(&srv, 0x3000, &po);
	rs_server(&rs, &srv);
	assert_true(lag_tracker_seconds(&s->lag, LAG_FLUSH, slots_now_us() + 10 * S) >= 10.0);
	rs_free(&rs);
}

/*
 * A logical stream sends a transaction's changes at its commit, at their
 * own (older) LSNs: a position below the sent one is normal, not an error.
 */
static void test_older_lsn_keeps_sent(void **state)
{
	struct repl_session rs;
	struct wire srv = { .n = 0 }, po;
	struct slot_stream *s;

	(void)state;
	rs_open(&rs, "appdb");
	rs_start(&rs, "START_REPLICATION SLOT sub LOGICAL 0/0 (proto_version '1', publication_names 'p')");
	s = rs_slot(&rs, "sub");
	msg_keepalive(&srv, 0x9000, false);
	po_begin(&po, 0x9100, 1000, 744);
	msg_xlogdata(&srv, 0x8000, &po);
	po_insert(&po, -1);
	msg_xlogdata(&srv, 0x8000, &po);
	rs_server(&rs, &srv);
	/* the server chose where to start: the first position it sent */
	assert_int_equal(s->start_lsn, 0x9000);
	assert_int_equal(s->sent_lsn, 0x9000);
	assert_int_equal(s->changes[SLOT_OP_INSERT], 1);
	assert_int_equal(s->messages_to_client, 2);
	assert_int_equal(rs_error_total(&rs), 0);
	rs_free(&rs);
}

/* Stream Start/Stop change the layout of the changes between them (the xid). */
static void test_streamed_transaction(void **state)
{
	struct repl_session rs;
	struct wire srv = { .n = 0 }, po;
	struct slot_stream *s;

	(void)state;
	rs_open(&rs, "appdb");
	rs_start(&rs, "START_REPLICATION SLOT sub LOGICAL 0/0 "
		 "(proto_version '2', publication_names 'p', streaming 'on')");
	po_stream_start(&po, 900);
	msg_xlogdata(&srv, 0x4000, &po);
	po_insert(&po, 900);
	msg_xlogdata(&srv, 0x4000, &po);
	po_insert(&po, 900);
	msg_xlogdata(&srv, 0x4008, &po);
	po_stream_stop(&po);
	msg_xlogdata(&srv, 0x4010, &po);
	po_stream_commit(&po, 900, 0x4100, 0x4130, COMMIT_TIME);
	msg_xlogdata(&srv, 0x4100, &po);
	rs_server(&rs, &srv);
	s = rs_slot(&rs, "sub");
	assert_int_equal(s->transactions, 1);
	assert_int_equal(s->changes[SLOT_OP_INSERT], 2);
	assert_true(s->last_commit_time == COMMIT_TIME);
	assert_int_equal(rs_error_total(&rs), 0);
	rs_free(&rs);
}

/* Two-phase: the transaction is counted at Commit Prepared, not at Prepare. */
static void test_two_phase(void **state)
{
	struct repl_session rs;
	struct wire srv = { .n = 0 }, po;
	struct slot_stream *s;

	(void)state;
	rs_open(&rs, "appdb");
	rs_start(&rs, "START_REPLICATION SLOT sub LOGICAL 0/0 "
		 "(proto_version '3', publication_names 'p', two_phase 'on')");
	po_begin_prepare(&po, 0x5000, 0x5040, 901);
	msg_xlogdata(&srv, 0x5000, &po);
	po_insert(&po, -1);
	msg_xlogdata(&srv, 0x5000, &po);
	po_prepared(&po, 'P', 0x5000, 0x5040, 2000, 901);
	msg_xlogdata(&srv, 0x5040, &po);
	rs_server(&rs, &srv);
	s = rs_slot(&rs, "sub");
	assert_int_equal(s->transactions, 0);
	srv.n = 0;
	po_prepared(&po, 'K', 0x5100, 0x5140, COMMIT_TIME, 901);
	msg_xlogdata(&srv, 0x5100, &po);
	rs_server(&rs, &srv);
	assert_int_equal(s->transactions, 1);
	assert_int_equal(s->changes[SLOT_OP_INSERT], 1);
	assert_true(s->last_commit_time == COMMIT_TIME);
	assert_int_equal(rs_error_total(&rs), 0);
	rs_free(&rs);
}

/* Without proto_version the plugin is not pgoutput: its bytes are not read. */
static void test_other_plugin_not_decoded(void **state)
{
	struct repl_session rs;
	struct wire srv = { .n = 0 };
	struct slot_stream *s;

	(void)state;
	rs_open(&rs, "appdb");
	rs_start(&rs, "START_REPLICATION SLOT td LOGICAL 0/0");
	transaction(&srv, 0x2000, COMMIT_TIME);
	rs_server(&rs, &srv);
	s = rs_slot(&rs, "td");
	assert_int_equal(s->messages_to_client, 6);
	assert_int_equal(s->transactions, 0);
	assert_int_equal(s->changes[SLOT_OP_INSERT], 0);
	assert_int_equal(rs_error_total(&rs), 0);
	rs_free(&rs);
}

/* Physical: no database, the end of the WAL sent is the position, no pgoutput. */
static void test_physical(void **state)
{
	struct repl_session rs;
	struct wire srv = { .n = 0 }, wal = { .n = 0 };
	struct slot_stream *s;

	(void)state;
	rs_open(&rs, NULL);
	rs_start(&rs, "START_REPLICATION SLOT phys PHYSICAL 0/3000000 TIMELINE 1");
	memset(wal.b, 'C', 100);	/* looks like a pgoutput Commit; is WAL */
	wal.n = 100;
	msg_xlogdata(&srv, 0x3000000, &wal);
	rs_server(&rs, &srv);
	s = rs_slot(&rs, "phys");
	assert_non_null(s);
	assert_string_equal(s->database, "");
	assert_int_equal(s->kind, PG_REPL_KIND_PHYSICAL);
	assert_int_equal(s->sent_lsn, 0x3000000 + 100);
	assert_int_equal(s->transactions, 0);
	assert_int_equal(slot_unacknowledged(s), 100);
	rs_end(&rs);
	/* without a slot: the entry named "" */
	rs_reopen(&rs, NULL);
	rs_start(&rs, "START_REPLICATION 0/3000000");
	assert_non_null(rs_slot(&rs, ""));
	assert_int_equal(rs.reg.n, 2);
	rs_free(&rs);
}

/*
 * A START at the very end of a historic timeline is answered without a
 * stream (the next timeline's result set, CommandComplete, ReadyForQuery);
 * the walreceiver then starts the next timeline, which is tracked.
 */
static void test_start_answered_without_stream(void **state)
{
	struct repl_session rs;
	struct wire w = { .n = 0 };
	struct slot_stream *s;

	(void)state;
	rs_open(&rs, NULL);
	msg_query(&w, "START_REPLICATION SLOT phys PHYSICAL 0/3000000 TIMELINE 1");
	rs_client(&rs, &w);
	w.n = 0;
	msg_command_done(&w, "START_REPLICATION");
	rs_server(&rs, &w);
	assert_int_equal(rs.t->state, REPL_IDLE);
	assert_int_equal(rs.reg.n, 0);
	rs_start(&rs, "START_REPLICATION SLOT phys PHYSICAL 0/3000000 TIMELINE 2");
	s = rs_slot(&rs, "phys");
	assert_non_null(s);
	assert_int_equal(s->start_lsn, 0x3000000);
	rs_free(&rs);
}

/* CopyDone or an ErrorResponse ends the stream; a notice does not. */
static void test_stream_end(void **state)
{
	struct repl_session rs;
	struct wire srv = { .n = 0 };
	struct slot_stream *s;

	(void)state;
	rs_open(&rs, "appdb");
	rs_start(&rs, START_V1);
	s = rs_slot(&rs, "sub");
	server_msg(&rs, msg_notice);
	assert_int_equal(rs.t->state, REPL_STREAMING);
	server_msg(&rs, msg_copy_done);
	assert_int_equal(rs.t->state, REPL_IDLE);
	assert_int_equal(s->streaming, 0);
	/* after the end, nothing is counted */
	transaction(&srv, 0x2000, COMMIT_TIME);
	msg_command_done(&srv, "START_STREAMING");	/* the START's own end */
	rs_server(&rs, &srv);
	assert_int_equal(s->messages_to_client, 0);
	/* kept for slot_expiry, then dropped */
	slots_expire(&rs.reg, s->ended_us + 59 * S, 60 * S);
	assert_int_equal(rs.reg.n, 1);
	slots_expire(&rs.reg, s->ended_us + 60 * S, 60 * S);
	assert_int_equal(rs.reg.n, 0);

	rs_start(&rs, START_V1);
	s = rs_slot(&rs, "sub");
	srv.n = 0;
	msg_error(&srv, "57P01", "terminating connection due to administrator command");
	rs_server(&rs, &srv);
	assert_int_equal(rs.t->state, REPL_IDLE);
	assert_int_equal(s->streaming, 0);
	rs_free(&rs);
}

/* A consumer reconnecting continues its slot's counters. */
static void test_reconnect_continues(void **state)
{
	struct repl_session rs;
	struct wire srv = { .n = 0 };
	struct slot_stream *s;

	(void)state;
	rs_open(&rs, "appdb");
	rs_start(&rs, START_V1);
	transaction(&srv, 0x2000, COMMIT_TIME);
	rs_server(&rs, &srv);
	client_status(&rs, 0x2000, 0x2000);
	rs_reopen(&rs, "appdb");	/* the session closed without CopyDone */
	s = rs_slot(&rs, "sub");
	assert_int_equal(s->streaming, 0);
	rs_start(&rs, "START_REPLICATION SLOT \"sub\" LOGICAL 0/2000 "
		 "(\"proto_version\" '1', \"publication_names\" 'pub')");
	assert_ptr_equal(rs_slot(&rs, "sub"), s);
	assert_int_equal(s->streaming, 1);
	/* the new stream starts where the client confirmed: nothing outstanding */
	assert_int_equal(s->sent_lsn, 0x2000);
	assert_int_equal(slot_unacknowledged(s), 0);
	assert_int_equal(s->lag.written, 0);
	srv.n = 0;
	transaction(&srv, 0x2000, COMMIT_TIME + 1);
	rs_server(&rs, &srv);
	assert_int_equal(s->transactions, 2);
	assert_int_equal(s->changes[SLOT_OP_TRUNCATE], 2);
	assert_int_equal(s->status_updates, 1);
	rs_free(&rs);
}

/* ---- chunk boundaries ---- */

/*
 * One whole session: a START longer than the scanner's prefix (captured),
 * the stream, a status update, CopyDone. The numbers it leaves.
 */
static struct slot_view session_split(size_t chunk)
{
	struct repl_session rs;
	struct wire cli = { .n = 0 }, srv = { .n = 0 };
	struct slot_view *v = NULL, out;

	rs_open(&rs, "appdb");
	msg_query(&cli, "START_REPLICATION SLOT \"sub\" LOGICAL 0/1000 (\"proto_version\" '1', "
		  "\"publication_names\" 'pub_a,pub_b,pub_c,pub_d,pub_e,pub_f,pub_g')");
	assert_true(cli.n > 5 + PG_SCAN_PREFIX_MAX);
	rs_feed(&rs, true, cli.b, cli.n, chunk);
	assert_int_equal(rs.t->state, REPL_STARTING);
	msg_copy_both(&srv);
	transaction(&srv, 0x2000, COMMIT_TIME);
	msg_keepalive(&srv, 0x2100, true);
	rs_feed(&rs, false, srv.b, srv.n, chunk);
	cli.n = 0;
	msg_status(&cli, 0x2080, 0x2020, 0);
	msg_status(&cli, 0x2090, 0x2030, 0);
	rs_feed(&rs, true, cli.b, cli.n, chunk);
	srv.n = 0;
	msg_copy_done(&srv);
	rs_feed(&rs, false, srv.b, srv.n, chunk);
	assert_int_equal(rs.t->state, REPL_IDLE);
	assert_int_equal(rs_error_total(&rs), 0);
	assert_int_equal(slots_view(&rs.reg, slots_now_us(), &v), 1);
	out = v[0];
	free(v);
	rs_free(&rs);
	return out;
}

static void test_any_chunk_boundaries(void **state)
{
	static const size_t chunks[] = { 1, 2, 3, 5, 7, 13, 64, 65, 100 };
	struct slot_view whole = session_split(0);

	(void)state;
	assert_string_equal(whole.name, "sub");
	assert_int_equal(whole.sent_lsn, 0x2100);
	assert_int_equal(whole.flushed_lsn, 0x2030);
	assert_int_equal(whole.unacknowledged, 0x2100 - 0x2030);
	assert_int_equal(whole.transactions, 1);
	assert_int_equal(whole.keepalives, 1);
	assert_int_equal(whole.status_updates, 2);
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct slot_view v = session_split(chunks[i]);

		assert_string_equal(v.name, whole.name);
		assert_string_equal(v.database, whole.database);
		assert_int_equal(v.sent_lsn, whole.sent_lsn);
		assert_int_equal(v.written_lsn, whole.written_lsn);
		assert_int_equal(v.flushed_lsn, whole.flushed_lsn);
		assert_int_equal(v.unacknowledged, whole.unacknowledged);
		assert_int_equal(v.transactions, whole.transactions);
		assert_memory_equal(v.changes, whole.changes, sizeof(v.changes));
		assert_int_equal(v.bytes_to_client, whole.bytes_to_client);
		assert_int_equal(v.bytes_to_server, whole.bytes_to_server);
		assert_int_equal(v.messages_to_client, whole.messages_to_client);
		assert_int_equal(v.keepalives, whole.keepalives);
		assert_int_equal(v.status_updates, whole.status_updates);
		assert_true(v.last_commit_time == whole.last_commit_time);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entry_after_copy_both),
		cmocka_unit_test(test_transaction_counted),
		cmocka_unit_test(test_status_updates),
		cmocka_unit_test(test_lag_samples),
		cmocka_unit_test(test_older_lsn_keeps_sent),
		cmocka_unit_test(test_streamed_transaction),
		cmocka_unit_test(test_two_phase),
		cmocka_unit_test(test_other_plugin_not_decoded),
		cmocka_unit_test(test_physical),
		cmocka_unit_test(test_start_answered_without_stream),
		cmocka_unit_test(test_stream_end),
		cmocka_unit_test(test_reconnect_continues),
		cmocka_unit_test(test_any_chunk_boundaries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

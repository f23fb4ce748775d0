/*
 * test_repl_track_hostile.c - repl_track playing against a hostile client
 * (and a server that misbehaves): cut and overlong stream messages, huge
 * claimed lengths, status updates outside a stream, odd slot names,
 * pipelined commands. What does not decode is counted (the session's
 * protocol errors by kind, the slot's malformed count) and relayed; no
 * entry is made for a START the server did not accept; nothing recorded
 * is garbage.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "repl_wire.h"

#define START "START_REPLICATION SLOT sub LOGICAL 0/1000 (proto_version '2', publication_names 'p')"

static void feed_payload(struct repl_session *rs, bool from_client, const uint8_t *p, size_t n)
{
	struct wire w = { .n = 0 };

	msg_copy_data(&w, p, n);
	rs_feed(rs, from_client, w.b, w.n, 0);
}

static void feed_query(struct repl_session *rs, const char *text)
{
	struct wire w = { .n = 0 };

	msg_query(&w, text);
	rs_client(rs, &w);
}

/* A CopyData payload of n bytes starting with type, the rest filled with 0x11. */
static void feed_cut(struct repl_session *rs, bool from_client, uint8_t type, size_t n)
{
	uint8_t p[64];

	assert_true(n <= sizeof(p));
	memset(p, 0x11, sizeof(p));
	p[0] = type;
	feed_payload(rs, from_client, p, n);
}

/* XLogData, keepalives and status updates of the wrong size: counted, not read. */
static void test_cut_stream_messages(void **state)
{
	struct repl_session rs;
	struct slot_stream *s;

	(void)state;
	rs_open(&rs, "appdb");
	rs_start(&rs, START);
	s = rs_slot(&rs, "sub");
	feed_cut(&rs, false, 'w', 10);	/* XLogData header is 25 */
	feed_cut(&rs, false, 'w', 24);
	feed_cut(&rs, false, 'k', 17);	/* keepalive is 18 */
	feed_cut(&rs, false, 'k', 19);
	feed_cut(&rs, true, 'r', 33);	/* status update is 34 */
	feed_cut(&rs, true, 'r', 35);
	feed_cut(&rs, true, 'h', 3);	/* hot standby feedback is 25 */
	feed_payload(&rs, false, (const uint8_t *)"", 0);
	assert_int_equal(rs.errors[PROTO_ERR_REPL_STREAM], 8);
	assert_int_equal(s->malformed, 8);
	/* nothing of them read as positions or counts */
	assert_int_equal(s->sent_lsn, 0x1000);
	assert_int_equal(s->flushed_lsn, 0);
	assert_int_equal(s->written_lsn, 0);
	assert_int_equal(s->messages_to_client, 0);
	assert_int_equal(s->keepalives, 0);
	assert_int_equal(s->status_updates, 0);
	assert_int_equal(s->lag.written, 0);
	/* the stream goes on */
	assert_int_equal(rs.t->state, REPL_STREAMING);
	rs_free(&rs);
}

/* A pgoutput message that does not decode is counted, by its kind too. */
static void test_malformed_pgoutput(void **state)
{
	struct repl_session rs;
	struct wire srv = { .n = 0 }, po;
	struct slot_stream *s;

	(void)state;
	rs_open(&rs, "appdb");
	rs_start(&rs, START);
	s = rs_slot(&rs, "sub");
	po_commit(&po, 0x2000, 0x2030, 5000);
	po.n = 10;			/* a Commit cut inside its LSNs */
	msg_xlogdata(&srv, 0x2000, &po);
	po_insert(&po, -1);
	po.b[5] = 'x';			/* not an Insert's 'N' (its tuple is never walked) */
	msg_xlogdata(&srv, 0x2000, &po);
	po_truncate(&po, 2);
	po.n -= 1;			/* the second relation cut */
	msg_xlogdata(&srv, 0x2008, &po);
	rs_server(&rs, &srv);
	assert_int_equal(rs.errors[PROTO_ERR_PGOUTPUT], 3);
	assert_int_equal(s->malformed, 3);
	/* the server did send them: counted by kind, their fields not trusted */
	assert_int_equal(s->transactions, 1);
	assert_true(s->last_commit_time == 0);
	assert_int_equal(s->changes[SLOT_OP_INSERT], 1);
	assert_int_equal(s->changes[SLOT_OP_TRUNCATE], 1);
	assert_int_equal(s->messages_to_client, 3);
	assert_int_equal(rs.errors[PROTO_ERR_REPL_STREAM], 0);
	rs_free(&rs);
}

/*
 * An XLogData claiming 2 GiB: reported at its prefix, its bytes counted
 * by the length field, what is past the prefix taken on trust. The
 * session may end before the rest ever comes.
 */
static void test_huge_claimed_length(void **state)
{
	struct repl_session rs;
	struct wire srv = { .n = 0 }, po;
	struct slot_stream *s;

	(void)state;
	rs_open(&rs, "appdb");
	rs_start(&rs, START);
	s = rs_slot(&rs, "sub");
	po_insert(&po, -1);
	po.b[9] = 0x7f;			/* its column's length: 0x7f000001 */
	msg_xlogdata(&srv, 0x2000, &po);
	srv.b[1] = 0x7f;		/* the message's: 0x7f00002b, consistent */
	rs_server(&rs, &srv);
	assert_int_equal(s->messages_to_client, 0);	/* its prefix is not all there */
	srv.n = 0;
	msg_keepalive(&srv, 0x9999, false);		/* column bytes, not keepalives */
	msg_keepalive(&srv, 0x9999, false);
	rs_server(&rs, &srv);
	assert_int_equal(s->messages_to_client, 1);
	assert_int_equal(s->changes[SLOT_OP_INSERT], 1);
	assert_int_equal(s->sent_lsn, 0x2000);
	assert_int_equal(s->bytes_to_client, (uint64_t)0x7f00002b + 1);
	assert_int_equal(s->keepalives, 0);
	assert_int_equal(rs_error_total(&rs), 0);
	rs_end(&rs);			/* no crash, no leak, with the message unfinished */
	assert_int_equal(s->streaming, 0);
	rs_free(&rs);
}

/* From the client, a length past the bound stops the framing: nothing recorded. */
static void test_client_length_past_bound(void **state)
{
	struct repl_session rs;
	struct wire w = { .n = 0 };

	(void)state;
	rs_open(&rs, "appdb");
	rs_start(&rs, START);
	msg_status(&w, 0x9000, 0x9000, 0);
	w.b[1] = 0x40;			/* 1 GiB: the scanner's bound is 1 MiB here */
	rs_client(&rs, &w);
	assert_true(rs.scan_error);
	assert_int_equal(rs_slot(&rs, "sub")->status_updates, 0);
	assert_int_equal(rs_slot(&rs, "sub")->flushed_lsn, 0);
	rs_free(&rs);
}

/* A Query claiming more text than will ever come: read up to its bound only. */
static void test_huge_query(void **state)
{
	struct repl_session rs;
	struct wire w = { .n = 0 };
	char text[3000];

	(void)state;
	rs_open(&rs, "appdb");
	memset(text, ' ', sizeof(text));
	memcpy(text, "IDENTIFY_SYSTEM", 15);
	text[sizeof(text) - 1] = '\0';
	msg_query(&w, text);
	w.b[2] = 0x0f;			/* claims ~1 MiB, below the bound; 3000 bytes come */
	rs_client(&rs, &w);
	assert_false(rs.scan_error);
	assert_int_equal(rs.t->state, REPL_IDLE);
	assert_int_equal(rs.reg.n, 0);
	rs_free(&rs);
}

/* Status updates and XLogData outside a stream: relayed, not read, no entry. */
static void test_stream_messages_before_start(void **state)
{
	struct repl_session rs;
	struct wire w = { .n = 0 }, po;

	(void)state;
	rs_open(&rs, "appdb");
	msg_status(&w, 0x9000, 0x9000, 0);
	rs_client(&rs, &w);
	w.n = 0;
	po_commit(&po, 0x9000, 0x9030, 5000);
	msg_xlogdata(&w, 0x9000, &po);
	msg_keepalive(&w, 0x9000, true);
	rs_server(&rs, &w);
	assert_int_equal(rs.t->state, REPL_IDLE);
	assert_int_equal(rs.reg.n, 0);
	/* between the START and the server's answer: still nothing to credit */
	feed_query(&rs, START);
	w.n = 0;
	msg_status(&w, 0x9000, 0x9000, 0);
	rs_client(&rs, &w);
	w.n = 0;
	msg_copy_both(&w);
	rs_server(&rs, &w);
	assert_int_equal(rs_slot(&rs, "sub")->status_updates, 0);
	assert_int_equal(rs_slot(&rs, "sub")->flushed_lsn, 0);
	assert_int_equal(rs_error_total(&rs), 0);
	rs_free(&rs);
}

/* A CopyBothResponse nobody asked for (no START): no entry. */
static void test_copy_both_unasked(void **state)
{
	struct repl_session rs;
	struct wire w = { .n = 0 };

	(void)state;
	rs_open(&rs, "appdb");
	feed_query(&rs, "SELECT 1");
	msg_copy_both(&w);
	rs_server(&rs, &w);
	assert_int_equal(rs.t->state, REPL_IDLE);
	assert_int_equal(rs.reg.n, 0);
	rs_free(&rs);
}

/* The server refused the START: no entry, and its name is forgotten. */
static void test_refused_start(void **state)
{
	struct repl_session rs;
	struct wire w = { .n = 0 };

	(void)state;
	rs_open(&rs, "appdb");
	feed_query(&rs, "START_REPLICATION SLOT nosuch LOGICAL 0/0");
	assert_int_equal(rs.t->state, REPL_STARTING);
	msg_error(&w, "42704", "replication slot \"nosuch\" does not exist");
	rs_server(&rs, &w);
	assert_int_equal(rs.t->state, REPL_IDLE);
	assert_int_equal(rs.reg.n, 0);
	w.n = 0;
	msg_copy_both(&w);		/* late, unasked */
	rs_server(&rs, &w);
	assert_int_equal(rs.reg.n, 0);
	rs_free(&rs);
}

/*
 * Names the server will refuse: control bytes in a quoted name (the
 * server allows [a-z0-9_] only) get no entry once refused; a name over
 * 63 bytes is malformed before the server sees it.
 */
static void test_odd_slot_names(void **state)
{
	struct repl_session rs;
	struct wire w = { .n = 0 };

	(void)state;
	rs_open(&rs, "appdb");
	feed_query(&rs, "START_REPLICATION SLOT \"a\x01\x1b[31m\nb\" LOGICAL 0/0");
	assert_int_equal(rs.t->state, REPL_STARTING);	/* the server judges the name */
	msg_error(&w, "42602", "replication slot name contains invalid character");
	rs_server(&rs, &w);
	assert_int_equal(rs.t->state, REPL_IDLE);
	assert_int_equal(rs.reg.n, 0);
	feed_query(&rs, "START_REPLICATION SLOT "
		   "a234567890123456789012345678901234567890123456789012345678901234 LOGICAL 0/0");
	assert_int_equal(rs.errors[PROTO_ERR_REPL_COMMAND], 1);
	assert_int_equal(rs.t->state, REPL_IDLE);
	rs_free(&rs);
}

/*
 * Two STARTs sent before the server answered: the answer is the first
 * one's (the second arrives in copy mode, where the walsender refuses it
 * with FATAL). Crediting the second would make an entry for a slot the
 * server never accepted, so that entries were bounded by what clients
 * name rather than by max_replication_slots.
 */
static void test_pipelined_start(void **state)
{
	struct repl_session rs;
	struct wire w = { .n = 0 };

	(void)state;
	rs_open(&rs, "appdb");
	msg_query(&w, START);
	msg_query(&w, "START_REPLICATION SLOT other LOGICAL 0/0 (proto_version '1', publication_names 'p')");
	rs_client(&rs, &w);
	w.n = 0;
	msg_copy_both(&w);
	rs_server(&rs, &w);
	assert_non_null(rs_slot(&rs, "sub"));
	assert_null(rs_slot(&rs, "other"));
	assert_int_equal(rs.reg.n, 1);
	w.n = 0;
	msg_error(&w, "08P01", "invalid standby message type \"Q\"");
	rs_server(&rs, &w);
	assert_int_equal(rs.t->state, REPL_IDLE);
	rs_free(&rs);
}

/*
 * A START sent behind commands still unanswered: their answers, errors
 * included, are not the START's; the CopyBothResponse after them is.
 */
static void test_start_behind_other_commands(void **state)
{
	struct repl_session rs;
	struct wire w = { .n = 0 };

	(void)state;
	rs_open(&rs, "appdb");
	msg_query(&w, "SELECT 1");
	msg_query(&w, "SELECT nosuch");
	msg_query(&w, START);
	rs_client(&rs, &w);
	w.n = 0;
	msg_command_done(&w, "SELECT 1");
	msg_error(&w, "42703", "column \"nosuch\" does not exist");
	msg_ready(&w);
	rs_server(&rs, &w);
	assert_int_equal(rs.t->state, REPL_STARTING);
	w.n = 0;
	msg_copy_both(&w);
	rs_server(&rs, &w);
	assert_int_equal(rs.t->state, REPL_STREAMING);
	assert_non_null(rs_slot(&rs, "sub"));
	rs_free(&rs);
}

/* A client that reports more than it was sent: recorded as reported, nothing wraps. */
static void test_flush_beyond_sent(void **state)
{
	struct repl_session rs;
	struct wire w = { .n = 0 };
	struct slot_stream *s;

	(void)state;
	rs_open(&rs, "appdb");
	rs_start(&rs, START);
	s = rs_slot(&rs, "sub");
	msg_status(&w, UINT64_MAX, UINT64_MAX, UINT64_MAX);
	rs_client(&rs, &w);
	assert_int_equal(s->flushed_lsn, UINT64_MAX);
	assert_int_equal(slot_unacknowledged(s), 0);
	assert_true(lag_tracker_seconds(&s->lag, LAG_FLUSH, slots_now_us()) == 0.0);
	assert_int_equal(rs_error_total(&rs), 0);
	rs_free(&rs);
}

/* Types of a newer server, in CopyData or in pgoutput: relayed, not errors. */
static void test_unknown_types(void **state)
{
	struct repl_session rs;
	struct wire srv = { .n = 0 }, po = { .n = 0 };
	struct slot_stream *s;

	(void)state;
	rs_open(&rs, "appdb");
	rs_start(&rs, START);
	s = rs_slot(&rs, "sub");
	feed_cut(&rs, false, 's', 20);	/* PostgreSQL 19's primary status */
	wire_u8(&po, 'Z');
	wire_u32(&po, 1);
	msg_xlogdata(&srv, 0x2000, &po);
	rs_server(&rs, &srv);
	assert_int_equal(rs_error_total(&rs), 0);
	assert_int_equal(s->malformed, 0);
	assert_int_equal(s->messages_to_client, 1);
	assert_int_equal(s->sent_lsn, 0x2000);
	rs_free(&rs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cut_stream_messages),
		cmocka_unit_test(test_malformed_pgoutput),
		cmocka_unit_test(test_huge_claimed_length),
		cmocka_unit_test(test_client_length_past_bound),
		cmocka_unit_test(test_huge_query),
		cmocka_unit_test(test_stream_messages_before_start),
		cmocka_unit_test(test_copy_both_unasked),
		cmocka_unit_test(test_refused_start),
		cmocka_unit_test(test_odd_slot_names),
		cmocka_unit_test(test_pipelined_start),
		cmocka_unit_test(test_start_behind_other_commands),
		cmocka_unit_test(test_flush_beyond_sent),
		cmocka_unit_test(test_unknown_types),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

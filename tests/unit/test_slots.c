/*
 * test_slots.c - the table of replication slots on its own: one entry per
 * name shared by the sessions that stream it, kept for slot_expiry after
 * the last one ends; unacknowledged bytes; views detached for a scrape and
 * merged across workers as slot_table.h says.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "repl/slot_table.h"

#define S 1000000

static void test_attach_shares_by_name(void **state)
{
	struct slot_registry r;
	struct slot_stream *a, *b, *p;

	(void)state;
	slots_init(&r);
	a = slots_attach(&r, "sub", "db1", PG_REPL_KIND_LOGICAL);
	p = slots_attach(&r, "", NULL, PG_REPL_KIND_PHYSICAL);
	b = slots_attach(&r, "sub", "db2", PG_REPL_KIND_LOGICAL);
	assert_ptr_equal(a, b);
	assert_ptr_not_equal(a, p);
	assert_int_equal(r.n, 2);
	assert_int_equal(a->streaming, 2);
	assert_string_equal(a->database, "db2");	/* the latest session's */
	assert_string_equal(p->database, "");
	slots_detach(a, 5 * S);
	assert_int_equal(a->streaming, 1);
	slots_detach(a, 7 * S);
	assert_int_equal(a->streaming, 0);
	assert_int_equal(a->ended_us, 7 * S);
	slots_detach(a, 9 * S);			/* once too often: stays at 0 */
	assert_int_equal(a->streaming, 0);
	slots_free(&r);
	assert_int_equal(r.n, 0);
}

/* Kept for the expiry after the last session ended; never while streaming. */
static void test_expiry(void **state)
{
	struct slot_registry r;
	struct slot_stream *gone, *live;

	(void)state;
	slots_init(&r);
	gone = slots_attach(&r, "gone", "db", PG_REPL_KIND_LOGICAL);
	live = slots_attach(&r, "live", "db", PG_REPL_KIND_LOGICAL);
	slots_detach(gone, 10 * S);
	slots_expire(&r, 10 * S + 299 * S, 300 * S);
	assert_int_equal(r.n, 2);
	slots_expire(&r, 10 * S + 300 * S, 300 * S);
	assert_int_equal(r.n, 1);
	assert_ptr_equal(TAILQ_FIRST(&r.slots), live);
	slots_expire(&r, INT64_MAX, 0);
	assert_int_equal(r.n, 1);
	/* a reconnect inside the expiry finds its counters */
	slots_detach(live, 20 * S);
	live->transactions = 41;
	assert_ptr_equal(slots_attach(&r, "live", "db", PG_REPL_KIND_LOGICAL), live);
	assert_int_equal(live->transactions, 41);
	slots_free(&r);
}

static void test_unacknowledged(void **state)
{
	struct slot_stream s;

	(void)state;
	memset(&s, 0, sizeof(s));
	s.start_lsn = 0x1000;
	s.sent_lsn = 0x1800;
	assert_int_equal(slot_unacknowledged(&s), 0x800);	/* before any flush report */
	s.flushed_lsn = 0x1200;
	assert_int_equal(slot_unacknowledged(&s), 0x600);
	s.flushed_lsn = 0x800;					/* behind the start */
	assert_int_equal(slot_unacknowledged(&s), 0x800);
	s.flushed_lsn = 0x9000;					/* ahead of what was sent */
	assert_int_equal(slot_unacknowledged(&s), 0);
}

/* A new session's lag does not count positions an earlier one sent. */
static void test_attach_drops_old_samples(void **state)
{
	struct slot_registry r;
	struct slot_stream *s;

	(void)state;
	slots_init(&r);
	s = slots_attach(&r, "sub", "db", PG_REPL_KIND_LOGICAL);
	assert_true(lag_tracker_sent(&s->lag, 0x2000, 1 * S));
	slots_detach(s, 2 * S);
	assert_int_equal(s->lag.written, 0);	/* the stream ended: nothing pending */
	assert_true(lag_tracker_sent(&s->lag, 0x3000, 3 * S));
	assert_ptr_equal(slots_attach(&r, "sub", "db", PG_REPL_KIND_LOGICAL), s);
	assert_int_equal(s->lag.written, 0);
	assert_true(lag_tracker_seconds(&s->lag, LAG_FLUSH, 100 * S) == 0.0);
	slots_free(&r);
}

static void test_view(void **state)
{
	struct slot_registry r;
	struct slot_stream *s;
	struct slot_view *v = NULL;

	(void)state;
	slots_init(&r);
	assert_int_equal(slots_view(&r, 0, &v), 0);
	assert_null(v);
	s = slots_attach(&r, "sub", "db", PG_REPL_KIND_LOGICAL);
	s->start_lsn = 0x100;
	s->sent_lsn = 0x500;
	s->flushed_lsn = 0x400;
	s->transactions = 3;
	s->changes[SLOT_OP_DELETE] = 2;
	s->malformed = 1;
	assert_true(lag_tracker_sent(&s->lag, 0x500, 1 * S));
	assert_int_equal(slots_view(&r, 4 * S, &v), 1);
	assert_string_equal(v[0].name, "sub");
	assert_string_equal(v[0].database, "db");
	assert_int_equal(v[0].streaming, 1);
	assert_int_equal(v[0].unacknowledged, 0x100);
	assert_true(v[0].flush_lag == 3.0);	/* the unconfirmed position's age */
	assert_int_equal(v[0].transactions, 3);
	assert_int_equal(v[0].changes[SLOT_OP_DELETE], 2);
	assert_int_equal(v[0].malformed, 1);
	free(v);
	slots_free(&r);
}

/* Counters add up, positions take the furthest, gauges come from the streaming one. */
static void test_view_merge(void **state)
{
	/* a worker whose session ended, one that streams the slot now */
	struct slot_view a = { .database = "old", .sent_lsn = 0x900, .flushed_lsn = 0x100,
			       .unacknowledged = 0x800, .flush_lag = 50, .transactions = 4,
			       .changes = { [SLOT_OP_INSERT] = 10 }, .last_commit_time = 99,
			       .last_status_unix = 2000 };
	const struct slot_view b = { .database = "new", .streaming = 1, .sent_lsn = 0x700,
				     .flushed_lsn = 0x700, .flush_lag = 1, .transactions = 6,
				     .changes = { [SLOT_OP_INSERT] = 5 }, .last_commit_time = 50,
				     .last_status_unix = 1000 };

	(void)state;
	slot_view_merge(&a, &b);
	assert_string_equal(a.database, "new");
	assert_int_equal(a.streaming, 1);
	assert_int_equal(a.sent_lsn, 0x900);
	assert_int_equal(a.flushed_lsn, 0x700);
	assert_int_equal(a.unacknowledged, 0);
	assert_true(a.flush_lag == 1);
	assert_int_equal(a.transactions, 10);
	assert_int_equal(a.changes[SLOT_OP_INSERT], 15);
	assert_true(a.last_commit_time == 99);
	assert_true(a.last_status_unix == 2000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_attach_shares_by_name),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_unacknowledged),
		cmocka_unit_test(test_attach_drops_old_samples),
		cmocka_unit_test(test_view),
		cmocka_unit_test(test_view_merge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

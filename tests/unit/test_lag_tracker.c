/*
 * test_lag_tracker.c - write and flush lag as the walsender measures
 * them, with walgate's two differences: a lag that rises between status
 * updates, and 0 when the client has confirmed everything.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "repl/lag_tracker.h"

#define MS 1000
#define S 1000000

static void test_no_samples_no_lag(void **state)
{
	struct lag_tracker lt;

	(void)state;
	lag_tracker_init(&lt);
	assert_true(lag_tracker_seconds(&lt, LAG_FLUSH, 5 * S) == 0.0);
	lag_tracker_confirmed(&lt, LAG_FLUSH, 100, 100, 5 * S);
	assert_true(lag_tracker_seconds(&lt, LAG_FLUSH, 6 * S) == 0.0);
	lag_tracker_free(&lt);
}

/* The newest sample at or below the confirmed position gives the lag. */
static void test_newest_sample_below_position(void **state)
{
	struct lag_tracker lt;

	(void)state;
	lag_tracker_init(&lt);
	assert_true(lag_tracker_sent(&lt, 100, 0));
	assert_true(lag_tracker_sent(&lt, 200, 100 * MS));
	assert_true(lag_tracker_sent(&lt, 300, 200 * MS));
	/* confirms 250 at 1 s: sample 200 (sent at 100 ms) is the newest below */
	lag_tracker_confirmed(&lt, LAG_FLUSH, 250, 300, 1 * S);
	assert_int_equal(lt.lag_us[LAG_FLUSH], 900 * MS);
	/* write is a separate reader: it still sees all three samples */
	lag_tracker_confirmed(&lt, LAG_WRITE, 300, 300, 1 * S);
	assert_int_equal(lt.lag_us[LAG_WRITE], 800 * MS);
	lag_tracker_free(&lt);
}

/* Between status updates the lag is at least the age of the oldest unconfirmed sample. */
static void test_lag_rises_without_updates(void **state)
{
	struct lag_tracker lt;

	(void)state;
	lag_tracker_init(&lt);
	lag_tracker_sent(&lt, 100, 0);
	lag_tracker_confirmed(&lt, LAG_FLUSH, 100, 100, 50 * MS);
	assert_int_equal(lt.lag_us[LAG_FLUSH], 50 * MS);	/* measured, */
	assert_true(lag_tracker_seconds(&lt, LAG_FLUSH, 60 * MS) == 0.0);	/* but caught up */
	lag_tracker_sent(&lt, 200, 1 * S);	/* new: the lag measured before catching up is over */
	assert_true(lag_tracker_seconds(&lt, LAG_FLUSH, 1 * S + 10 * MS) == 0.01);
	assert_true(lag_tracker_seconds(&lt, LAG_FLUSH, 4 * S) == 3.0);
	assert_true(lag_tracker_seconds(&lt, LAG_FLUSH, 9 * S) == 8.0);
	/* confirmed at 9.5 s, everything sent: caught up, 0 at once (not 8.5 s until the next update) */
	lag_tracker_confirmed(&lt, LAG_FLUSH, 200, 200, 9 * S + 500 * MS);
	assert_true(lag_tracker_seconds(&lt, LAG_FLUSH, 9 * S + 600 * MS) == 0.0);
	assert_true(lag_tracker_seconds(&lt, LAG_FLUSH, 20 * S) == 0.0);
	/* a later update with nothing new: still caught up */
	lag_tracker_confirmed(&lt, LAG_FLUSH, 200, 200, 21 * S);
	assert_true(lag_tracker_seconds(&lt, LAG_FLUSH, 22 * S) == 0.0);
	/* something new sent at 30 s: its age shows again */
	lag_tracker_sent(&lt, 300, 30 * S);
	assert_true(lag_tracker_seconds(&lt, LAG_FLUSH, 32 * S) == 2.0);
	/* confirmed short of what was sent: the measured lag stays */
	lag_tracker_sent(&lt, 400, 33 * S);
	lag_tracker_confirmed(&lt, LAG_FLUSH, 300, 400, 34 * S);
	assert_true(lag_tracker_seconds(&lt, LAG_FLUSH, 34 * S) == 4.0);
	lag_tracker_free(&lt);
}

/* Positions closer than the spacing share the older sample. */
static void test_spacing(void **state)
{
	struct lag_tracker lt;

	(void)state;
	lag_tracker_init(&lt);
	lag_tracker_sent(&lt, 100, 0);
	lag_tracker_sent(&lt, 200, LAG_SAMPLE_SPACING_US - 1);
	assert_int_equal(lt.written, 1);
	lag_tracker_sent(&lt, 300, LAG_SAMPLE_SPACING_US);
	assert_int_equal(lt.written, 2);
	/* positions that do not advance are not samples */
	lag_tracker_sent(&lt, 300, 10 * S);
	lag_tracker_sent(&lt, 250, 10 * S);
	assert_int_equal(lt.written, 2);
	lag_tracker_free(&lt);
}

/* A full ring drops new positions, and takes them again once confirmed. */
static void test_full_ring(void **state)
{
	struct lag_tracker lt;
	uint64_t i;

	(void)state;
	lag_tracker_init(&lt);
	for (i = 1; i <= LAG_RING_SIZE + 10; i++)
		assert_true(lag_tracker_sent(&lt, i * 10, (int64_t)i * LAG_SAMPLE_SPACING_US));
	assert_int_equal(lt.written, LAG_RING_SIZE);
	/* everything confirmed by both readers: room again */
	lag_tracker_confirmed(&lt, LAG_WRITE, UINT64_MAX, UINT64_MAX, 100 * S);
	lag_tracker_sent(&lt, 1000000, 101 * S);
	assert_int_equal(lt.written, LAG_RING_SIZE);	/* flush still holds the ring */
	lag_tracker_confirmed(&lt, LAG_FLUSH, UINT64_MAX, UINT64_MAX, 100 * S);
	/* the last sample held (position 10240, sent at 1024 spacings) measured both */
	assert_int_equal(lt.lag_us[LAG_FLUSH], 100 * S - (int64_t)LAG_RING_SIZE * LAG_SAMPLE_SPACING_US);
	lag_tracker_sent(&lt, 1000000, 101 * S);
	assert_int_equal(lt.written, LAG_RING_SIZE + 1);
	lag_tracker_free(&lt);
}

/* A stopped stream keeps its last lags and forgets what was pending. */
static void test_stop_keeps_lags(void **state)
{
	struct lag_tracker lt;

	(void)state;
	lag_tracker_init(&lt);
	lag_tracker_sent(&lt, 100, 0);
	lag_tracker_confirmed(&lt, LAG_FLUSH, 100, 200, 2 * S);
	lag_tracker_sent(&lt, 200, 3 * S);
	lag_tracker_stop(&lt);
	assert_null(lt.ring);
	assert_true(lag_tracker_seconds(&lt, LAG_FLUSH, 60 * S) == 2.0);
	lag_tracker_free(&lt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_samples_no_lag),
		cmocka_unit_test(test_newest_sample_below_position),
		cmocka_unit_test(test_lag_rises_without_updates),
		cmocka_unit_test(test_spacing),
		cmocka_unit_test(test_full_ring),
		cmocka_unit_test(test_stop_keeps_lags),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

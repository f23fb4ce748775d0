/*
 * test_slot_claims.c - the claims on replication slots shared by the
 * workers, and the takeover decision: only a stale stream of the same user
 * on the same upstream, database and slot is taken; a live one, another
 * user's, or one being taken (or reserved by its taker) never is; the
 * owner's worker is woken once per takeover and hands each eviction out
 * once; of many threads racing for one stale slot, exactly one takes it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <pthread.h>

#include "worker/slot_claims.h"

#define S 1000000LL	/* microseconds */
#define AFTER (30 * S)

struct waker {
	int woken;
};

static void wake(void *arg)
{
	((struct waker *)arg)->woken++;	/* under the registry's lock */
}

static struct slot_claim_key key(const char *upstream, const char *db, const char *slot)
{
	struct slot_claim_key k;

	memset(&k, 0, sizeof(k));
	snprintf(k.upstream, sizeof(k.upstream), "%s", upstream);
	snprintf(k.database, sizeof(k.database), "%s", db);
	snprintf(k.slot, sizeof(k.slot), "%s", slot);
	return k;
}

static struct slot_claim_owner owner(const char *user, void *session, struct waker *w)
{
	struct slot_claim_owner o = { user, user, session, wake, w };

	return o;
}

static void test_verdict(void **state)
{
	(void)state;
	/* stale is strictly longer than takeover_after */
	assert_int_equal(slot_take_verdict(true, false, AFTER + 1, AFTER), SLOT_TAKE_YES);
	assert_int_equal(slot_take_verdict(true, false, AFTER, AFTER), SLOT_TAKE_LIVE);
	assert_int_equal(slot_take_verdict(true, false, 0, AFTER), SLOT_TAKE_LIVE);
	/* another user's stream, however stale, is never taken */
	assert_int_equal(slot_take_verdict(false, false, 3600 * S, AFTER), SLOT_TAKE_OTHER_USER);
	assert_int_equal(slot_take_verdict(false, true, 3600 * S, AFTER), SLOT_TAKE_OTHER_USER);
	/* being taken by someone else already */
	assert_int_equal(slot_take_verdict(true, true, 3600 * S, AFTER), SLOT_TAKE_BUSY);
	/* off */
	assert_int_equal(slot_take_verdict(true, false, 3600 * S, 0), SLOT_TAKE_LIVE);
}

static void test_take_stale_only(void **state)
{
	struct slot_claims r;
	struct waker w0 = { 0 }, w1 = { 0 };
	struct slot_claim_key k = key("db:5432", "app", "mz");
	struct slot_claim_owner stale = owner("alice", (void *)0x1, &w0);
	struct slot_claim_owner newcomer = owner("alice", (void *)0x2, &w1);
	struct slot_claim *c, *reserved = (struct slot_claim *)0x99;
	void *owners[4];
	uint64_t takers[4];
	int64_t idle;

	(void)state;
	slot_claims_init(&r);
	assert_int_equal(slot_claims_take(&r, &k, &newcomer, 7, 0, AFTER, &idle, &reserved),
			 SLOT_TAKE_FREE);
	assert_null(reserved);
	c = slot_claims_add(&r, &k, &stale, 100 * S);
	assert_non_null(c);
	/* status updates keep it live */
	slot_claim_touch(c, 120 * S);
	assert_int_equal(slot_claims_take(&r, &k, &newcomer, 7, 140 * S, AFTER, &idle, &reserved),
			 SLOT_TAKE_LIVE);
	assert_int_equal(idle, 20 * S);
	assert_null(reserved);
	assert_int_equal(w0.woken, 0);
	assert_false(slot_claims_waiting(&r, &k, 7));
	/* another upstream, database or slot name is another slot */
	struct slot_claim_key other[3] = { key("db2:5432", "app", "mz"), key("db:5432", "x", "mz"),
					   key("db:5432", "app", "mz2") };
	for (int i = 0; i < 3; i++) {
		assert_int_equal(slot_claims_take(&r, &other[i], &newcomer, 7, 500 * S, AFTER, &idle,
						  &reserved), SLOT_TAKE_FREE);
		assert_null(reserved);
	}
	/* silent for 31 s: taken, its owner woken once, the slot reserved for the taker */
	assert_int_equal(slot_claims_take(&r, &k, &newcomer, 7, 151 * S, AFTER, &idle, &reserved),
			 SLOT_TAKE_YES);
	assert_int_equal(idle, 31 * S);
	assert_non_null(reserved);
	assert_int_equal(w0.woken, 1);
	assert_int_equal(w1.woken, 0);
	assert_true(slot_claims_waiting(&r, &k, 7));
	assert_false(slot_claims_waiting(&r, &k, 8));
	/* the owner's worker gets it once; the other worker nothing */
	assert_int_equal(slot_claims_evicted(&r, &w1, owners, takers, 4), 0);
	assert_int_equal(slot_claims_evicted(&r, &w0, owners, takers, 4), 1);
	assert_ptr_equal(owners[0], (void *)0x1);
	assert_int_equal(takers[0], 7);
	assert_int_equal(slot_claims_evicted(&r, &w0, owners, takers, 4), 0);
	/* the old stream's upstream leg closed: the taker stops waiting */
	slot_claims_remove(&r, c);
	assert_false(slot_claims_waiting(&r, &k, 7));
	/* while the taker's START is answered, its reservation keeps others out */
	struct slot_claim *third_res;
	struct waker w2 = { 0 };
	struct slot_claim_owner third = owner("alice", (void *)0x3, &w2);

	assert_int_equal(slot_claims_take(&r, &k, &third, 9, 1000 * S, AFTER, &idle, &third_res),
			 SLOT_TAKE_BUSY);
	assert_null(third_res);
	assert_int_equal(w1.woken, 0);
	slot_claims_remove(&r, reserved);
	assert_int_equal(slot_claims_take(&r, &k, &third, 9, 1000 * S, AFTER, &idle, &third_res),
			 SLOT_TAKE_FREE);
	slot_claims_free(&r);
}

static void test_other_user_never(void **state)
{
	struct slot_claims r;
	struct waker w0 = { 0 }, w1 = { 0 };
	struct slot_claim_key k = key("db:5432", "app", "mz");
	struct slot_claim_owner alice = owner("alice", (void *)0x1, &w0);
	struct slot_claim_owner mallory = owner("mallory", (void *)0x2, &w1);
	struct slot_claim_owner alice_long = owner("alice-but-longer", (void *)0x2, &w1);
	struct slot_claim *reserved;
	int64_t idle;

	(void)state;
	slot_claims_init(&r);
	assert_non_null(slot_claims_add(&r, &k, &alice, 0));
	assert_int_equal(slot_claims_take(&r, &k, &mallory, 5, 3600 * S, AFTER, &idle, &reserved),
			 SLOT_TAKE_OTHER_USER);
	assert_int_equal(slot_claims_take(&r, &k, &alice_long, 5, 3600 * S, AFTER, &idle, &reserved),
			 SLOT_TAKE_OTHER_USER);
	/* auth = scram, one upstream role for every client: each client's streams are its own */
	struct slot_claim_owner bob_as_alice = { "alice", "bob", (void *)0x3, wake, &w1 };

	assert_int_equal(slot_claims_take(&r, &k, &bob_as_alice, 5, 3600 * S, AFTER, &idle, &reserved),
			 SLOT_TAKE_OTHER_USER);
	assert_null(reserved);
	assert_int_equal(w0.woken, 0);
	assert_false(slot_claims_waiting(&r, &k, 5));
	slot_claims_free(&r);
}

static void test_two_streams_one_live(void **state)
{
	struct slot_claims r;
	struct waker w0 = { 0 };
	struct slot_claim_key k = key("db:5432", "", "standby1");
	struct slot_claim_owner a = owner("repl", (void *)0x1, &w0);
	struct slot_claim *reserved;
	int64_t idle;

	(void)state;
	/* a stream closing while another began: any live one keeps the slot */
	slot_claims_init(&r);
	assert_non_null(slot_claims_add(&r, &k, &a, 0));
	assert_non_null(slot_claims_add(&r, &k, &a, 50 * S));
	assert_int_equal(slot_claims_take(&r, &k, &a, 5, 60 * S, AFTER, &idle, &reserved),
			 SLOT_TAKE_LIVE);
	assert_int_equal(idle, 60 * S);
	assert_int_equal(w0.woken, 0);
	/* both stale: both marked, the worker woken for each */
	assert_int_equal(slot_claims_take(&r, &k, &a, 5, 90 * S, AFTER, &idle, &reserved),
			 SLOT_TAKE_YES);
	assert_int_equal(w0.woken, 2);
	slot_claims_free(&r);
}

/* ---- racing takers ------------------------------------------------------ */

#define RACERS 8

struct race {
	struct slot_claims *r;
	struct slot_claim_key k;
	struct waker *w;
	pthread_barrier_t *go;
	uint64_t id;
	enum slot_take got;
	struct slot_claim *reserved;
};

static void *racer(void *arg)
{
	struct race *rc = arg;
	struct slot_claim_owner o = owner("alice", rc, rc->w);
	int64_t idle;

	pthread_barrier_wait(rc->go);
	rc->got = slot_claims_take(rc->r, &rc->k, &o, rc->id, 100 * S, AFTER, &idle, &rc->reserved);
	return NULL;
}

static void test_racing_takers(void **state)
{
	struct slot_claims r;
	struct waker w0 = { 0 }, w1 = { 0 };
	struct slot_claim_key k = key("db:5432", "app", "mz");
	struct slot_claim_owner stale = owner("alice", (void *)0x1, &w0);
	struct race rc[RACERS];
	pthread_t th[RACERS];
	pthread_barrier_t go;
	int yes = 0, busy = 0;

	(void)state;
	slot_claims_init(&r);
	assert_non_null(slot_claims_add(&r, &k, &stale, 0));
	pthread_barrier_init(&go, NULL, RACERS);
	for (int i = 0; i < RACERS; i++) {
		rc[i] = (struct race){ &r, k, &w1, &go, (uint64_t)i + 10, SLOT_TAKE_FREE, NULL };
		assert_int_equal(pthread_create(&th[i], NULL, racer, &rc[i]), 0);
	}
	for (int i = 0; i < RACERS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < RACERS; i++) {
		yes += rc[i].got == SLOT_TAKE_YES;
		busy += rc[i].got == SLOT_TAKE_BUSY;
		assert_true((rc[i].got == SLOT_TAKE_YES) == (rc[i].reserved != NULL));
	}
	assert_int_equal(yes, 1);
	assert_int_equal(busy, RACERS - 1);
	assert_int_equal(w0.woken, 1);
	pthread_barrier_destroy(&go);
	slot_claims_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verdict),
		cmocka_unit_test(test_take_stale_only),
		cmocka_unit_test(test_other_user_never),
		cmocka_unit_test(test_two_streams_one_live),
		cmocka_unit_test(test_racing_takers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

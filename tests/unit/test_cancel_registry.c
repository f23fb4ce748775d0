/*
 * test_cancel_registry.c - the backend-key registry shared by the workers:
 * a key is found only whole (pid, length and every byte), removal forgets
 * it, and threads adding, finding and removing at once see a consistent
 * table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <pthread.h>

#include "worker/cancel_registry.h"

static struct cancel_target target(uint32_t pid, uint32_t key_len, uint8_t fill, uint16_t port)
{
	struct cancel_target t;
	struct sockaddr_in *sin = (struct sockaddr_in *)&t.addr;

	memset(&t, 0, sizeof(t));
	t.pid = pid;
	t.key_len = key_len;
	for (uint32_t i = 0; i < key_len; i++)
		t.key[i] = (uint8_t)(fill + i);
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	t.addrlen = sizeof(*sin);
	t.tls = true;
	t.verify = TLS_VERIFY_FULL;
	strcpy(t.host, "db.example");
	return t;
}

static void test_found_only_whole(void **state)
{
	struct cancel_registry r;
	struct cancel_target a = target(4242, 4, 0x10, 5432), b = target(4242, 32, 0x10, 6432), out;
	struct cancel_entry *ea, *eb;
	uint8_t wrong[32];

	(void)state;
	cancel_registry_init(&r);
	ea = cancel_registry_add(&r, &a);
	eb = cancel_registry_add(&r, &b);
	assert_non_null(ea);
	assert_non_null(eb);
	/* the same pid twice (two servers behind one name): the key decides */
	assert_true(cancel_registry_find(&r, 4242, a.key, 4, &out));
	assert_int_equal(ntohs(((struct sockaddr_in *)&out.addr)->sin_port), 5432);
	assert_true(cancel_registry_find(&r, 4242, b.key, 32, &out));
	assert_int_equal(ntohs(((struct sockaddr_in *)&out.addr)->sin_port), 6432);
	assert_true(out.tls);
	assert_int_equal(out.verify, TLS_VERIFY_FULL);
	assert_string_equal(out.host, "db.example");
	/* a prefix of the long key, one wrong byte, another pid: nothing */
	assert_false(cancel_registry_find(&r, 4242, b.key, 31, &out));
	memcpy(wrong, b.key, 32);
	wrong[31] ^= 1;
	assert_false(cancel_registry_find(&r, 4242, wrong, 32, &out));
	assert_false(cancel_registry_find(&r, 4243, a.key, 4, &out));
	cancel_registry_remove(&r, ea);
	assert_false(cancel_registry_find(&r, 4242, a.key, 4, &out));
	assert_true(cancel_registry_find(&r, 4242, b.key, 32, &out));
	cancel_registry_remove(&r, eb);
	assert_false(cancel_registry_find(&r, 4242, b.key, 32, &out));
	cancel_registry_free(&r);
}

/* Entries still registered at exit are freed with the registry. */
static void test_free_with_entries(void **state)
{
	struct cancel_registry r;

	(void)state;
	cancel_registry_init(&r);
	for (uint32_t pid = 1; pid <= 3 * CANCEL_REGISTRY_BUCKETS; pid++) {
		struct cancel_target t = target(pid, 4, (uint8_t)pid, 5432);

		assert_non_null(cancel_registry_add(&r, &t));
	}
	cancel_registry_free(&r);
}

#define THREADS 4
#define PER_THREAD 2000

struct worker_arg {
	struct cancel_registry *r;
	uint32_t base;
};

/* Each thread registers its own keys, checks they are there, removes them. */
static void *churn(void *p)
{
	struct worker_arg *a = p;
	struct cancel_entry **e = calloc(PER_THREAD, sizeof(*e));
	struct cancel_target out;
	bool ok = e != NULL;

	for (uint32_t i = 0; ok && i < PER_THREAD; i++) {
		struct cancel_target t = target(a->base + i, 32, (uint8_t)i, 5432);

		e[i] = cancel_registry_add(a->r, &t);
		ok = e[i] && cancel_registry_find(a->r, t.pid, t.key, 32, &out) && out.pid == t.pid;
	}
	for (uint32_t i = 0; ok && i < PER_THREAD; i++) {
		struct cancel_target t = target(a->base + i, 32, (uint8_t)i, 5432);

		cancel_registry_remove(a->r, e[i]);
		ok = !cancel_registry_find(a->r, t.pid, t.key, 32, &out);
	}
	free(e);
	return ok ? p : NULL;
}

static void test_threads(void **state)
{
	struct cancel_registry r;
	pthread_t th[THREADS];
	struct worker_arg args[THREADS];

	(void)state;
	cancel_registry_init(&r);
	for (int i = 0; i < THREADS; i++) {
		args[i] = (struct worker_arg){ &r, (uint32_t)(1 + i * PER_THREAD) };
		assert_int_equal(pthread_create(&th[i], NULL, churn, &args[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		void *res;

		assert_int_equal(pthread_join(th[i], &res), 0);
		assert_ptr_equal(res, &args[i]);
	}
	cancel_registry_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_found_only_whole),
		cmocka_unit_test(test_free_with_entries),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

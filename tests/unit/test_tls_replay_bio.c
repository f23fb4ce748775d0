/*
 * test_tls_replay_bio.c - the replay BIO over a socketpair: the bytes read
 * before OpenSSL took over come first, in pieces of any size, then the
 * socket's own; a socket without data asks for a retry; the chain never
 * closes the socket.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tls/tls_replay_bio.h"

static void socket_pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
}

static void test_replay_then_socket(void **state)
{
	char buf[64];
	int sv[2];
	BIO *b;

	(void)state;
	socket_pair(sv);
	assert_int_equal(write(sv[1], "world", 5), 5);
	b = tls_replay_bio_new(sv[0], "hello ", 6);
	assert_non_null(b);
	assert_int_equal(BIO_ctrl_pending(b), 6);
	assert_int_equal(BIO_eof(b), 0);
	assert_int_equal(BIO_read(b, buf, 3), 3);
	assert_memory_equal(buf, "hel", 3);
	/* what is left of the replay, never mixed with the socket's bytes */
	assert_int_equal(BIO_read(b, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "lo ", 3);
	assert_int_equal(BIO_read(b, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "world", 5);
	/* nothing more yet: a retry, as the socket BIO says */
	assert_true(BIO_read(b, buf, sizeof(buf)) < 0);
	assert_true(BIO_should_retry(b));
	assert_true(BIO_should_read(b));
	close(sv[1]);
	assert_int_equal(BIO_read(b, buf, sizeof(buf)), 0);
	assert_false(BIO_should_retry(b));
	BIO_free_all(b);
	/* BIO_NOCLOSE: the socket belongs to libevent */
	assert_int_not_equal(fcntl(sv[0], F_GETFD), -1);
	close(sv[0]);
}

static void test_nothing_to_replay(void **state)
{
	char buf[16];
	int sv[2];
	BIO *b;

	(void)state;
	socket_pair(sv);
	b = tls_replay_bio_new(sv[0], NULL, 0);
	assert_non_null(b);
	assert_true(BIO_read(b, buf, sizeof(buf)) < 0);
	assert_true(BIO_should_retry(b));
	assert_int_equal(write(sv[1], "x", 1), 1);
	assert_int_equal(BIO_read(b, buf, sizeof(buf)), 1);
	/* writes go to the socket */
	assert_int_equal(BIO_write(b, "yz", 2), 2);
	assert_int_equal(read(sv[1], buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "yz", 2);
	BIO_free_all(b);
	close(sv[0]);
	close(sv[1]);
}

/* The replay is a copy: the caller's buffer may go at once. */
static void test_replay_is_a_copy(void **state)
{
	char head[4] = "abcd", buf[8];
	int sv[2];
	BIO *b;

	(void)state;
	socket_pair(sv);
	b = tls_replay_bio_new(sv[0], head, sizeof(head));
	assert_non_null(b);
	memset(head, 0, sizeof(head));
	assert_int_equal(BIO_read(b, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "abcd", 4);
	BIO_free_all(b);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_then_socket),
		cmocka_unit_test(test_nothing_to_replay),
		cmocka_unit_test(test_replay_is_a_copy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

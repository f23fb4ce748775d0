/*
 * test_relay.c - the relay's backpressure over two socketpairs, on the
 * objects that ship (relay.c, relay_io.c): a source that writes without
 * end and a destination that never reads. The relay stops reading the
 * source once the destination's queue reaches relay_buffer_size, however
 * much the source still offers, and stops taking events for it; once the
 * destination drains, every byte arrives, whole and in order.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay/relay.h"
#include "relay/relay_io.h"

#define HIGH (64 * 1024)
#define MSG 8192		/* one CopyData message: 'd', length, payload */
#define TOTAL (4 * 1024 * 1024)	/* far beyond the bound and the socket buffers */

struct fixture {
	struct event_base *base;
	struct relay_dir dir;
	struct relay_io *src, *dst;
	int writer;		/* the source's peer: the test writes here */
	int reader;		/* the destination's peer: the test reads here, or not */
	size_t written, received;
	unsigned readable_calls;
	uint8_t pattern;	/* next payload byte the reader expects */
};

static void on_event(struct relay_io *io, enum relay_io_event ev, void *arg)
{
	struct fixture *f = arg;

	if (io == f->src && ev == RELAY_IO_READABLE) {
		f->readable_calls++;
		assert_int_equal(relay_forward(&f->dir, f->src, f->dst), 0);
	} else if (io == f->dst && ev == RELAY_IO_WRITTEN) {
		relay_sink_drained(&f->dir, f->src, f->dst);
	}
	assert_int_not_equal(ev, RELAY_IO_FAILED);
}

static struct relay_io *take(struct fixture *f, int fd)
{
	struct bufferevent *bev = bufferevent_socket_new(f->base, fd, BEV_OPT_CLOSE_ON_FREE);
	struct relay_io *io;

	assert_non_null(bev);
	io = relay_io_take(bev, on_event, f);
	assert_non_null(io);
	assert_int_equal(io->fd, fd);
	return io;
}

static void small_buffers(int fd)
{
	int size = 16 * 1024;

	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)), 0);
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
}

static int setup(void **state)
{
	static struct fixture f;
	int a[2], b[2];

	memset(&f, 0, sizeof(f));
	f.base = event_base_new();
	assert_non_null(f.base);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	for (int i = 0; i < 2; i++) {
		small_buffers(a[i]);
		small_buffers(b[i]);
	}
	f.writer = a[0];
	f.reader = b[1];
	relay_dir_init(&f.dir, UINT32_MAX, HIGH, NULL, NULL);
	f.src = take(&f, a[1]);
	f.dst = take(&f, b[0]);
	relay_io_set_reading(f.src, true);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	relay_io_free(f->src);
	relay_io_free(f->dst);
	close(f->writer);
	close(f->reader);
	event_base_free(f->base);
	return 0;
}

/* The n-th message of the stream: CopyData of MSG bytes, its payload numbered. */
static void make_message(uint8_t *msg, size_t n)
{
	msg[0] = 'd';
	msg[1] = (MSG - 1) >> 24;
	msg[2] = ((MSG - 1) >> 16) & 0xff;
	msg[3] = ((MSG - 1) >> 8) & 0xff;
	msg[4] = (MSG - 1) & 0xff;
	for (size_t i = 5; i < MSG; i++)
		msg[i] = (uint8_t)((n + i) & 0xff);
}

/* Write CopyData messages until the socket takes no more (or all are written). */
static void write_some(struct fixture *f)
{
	static uint8_t msg[MSG];

	while (f->written < TOTAL) {
		size_t off = f->written % MSG;
		ssize_t n;

		make_message(msg, f->written / MSG);
		n = write(f->writer, msg + off, MSG - off);
		if (n < 0) {
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			return;
		}
		f->written += (size_t)n;
	}
}

static void run_loop(struct fixture *f, int passes)
{
	for (int i = 0; i < passes; i++) {
		write_some(f);
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);	/* one pass */
	}
}

/* Read what the destination's peer has, checking it is the source's bytes in order. */
static size_t read_all(struct fixture *f)
{
	static uint8_t expect[MSG];
	uint8_t buf[65536];
	size_t got = 0;
	ssize_t n;

	while ((n = read(f->reader, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			size_t pos = f->received + (size_t)i, off = pos % MSG;

			if (off == 0)
				make_message(expect, pos / MSG);
			assert_int_equal(buf[i], expect[off]);
		}
		f->received += (size_t)n;
		got += (size_t)n;
	}
	return got;
}

static int unread(int fd)
{
	int n = 0;

	assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
	return n;
}

static void test_stops_at_bound_and_resumes(void **state)
{
	struct fixture *f = *state;
	uint64_t relayed;
	unsigned calls;

	run_loop(f, 200);
	/* The destination never read: the relay stopped at the bound... */
	assert_true(f->dir.paused);
	assert_true(relay_io_queued(f->dst) >= HIGH / 2);
	assert_true(relay_io_queued(f->dst) <= HIGH);
	/* ...while the source still offers bytes it does not read. */
	assert_true(unread(f->src->fd) > 0);
	assert_true(f->written < TOTAL);
	relayed = f->dir.bytes;
	calls = f->readable_calls;
	run_loop(f, 200);
	assert_int_equal(f->dir.bytes, relayed);
	assert_true(relay_io_queued(f->dst) <= HIGH);
	/* paused means no read event either: no wakeup per loop pass */
	assert_int_equal(f->readable_calls, calls);

	/* The destination drains: reading resumes, and everything arrives in order. */
	for (int i = 0; i < 100000 && f->received < TOTAL; i++) {
		read_all(f);
		run_loop(f, 1);
		assert_true(relay_io_queued(f->dst) <= HIGH);
	}
	assert_int_equal(f->written, TOTAL);
	assert_int_equal(f->received, TOTAL);
	assert_int_equal(f->dir.bytes, TOTAL);
	assert_false(f->dir.paused);
}

/* Bytes the bufferevent already held in both directions are carried over. */
static void test_takeover_keeps_buffered_bytes(void **state)
{
	struct fixture *f = *state;
	struct event_base *base = f->base;
	struct bufferevent *bev;
	struct relay_io *io;
	char buf[16];
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(bev);
	assert_int_equal(write(sv[1], "in", 2), 2);
	bufferevent_enable(bev, EV_READ);
	event_base_loop(base, EVLOOP_ONCE);	/* the bufferevent reads "in" */
	assert_int_equal(evbuffer_get_length(bufferevent_get_input(bev)), 2);
	bufferevent_disable(bev, EV_WRITE);
	bufferevent_write(bev, "out", 3);	/* queued, not written */
	io = relay_io_take(bev, on_event, f);
	assert_non_null(io);
	assert_int_equal(evbuffer_get_length(io->in), 2);
	assert_int_equal(relay_io_queued(io), 3);
	relay_io_flush(io);
	assert_int_equal(relay_io_queued(io), 0);
	assert_int_equal(read(sv[1], buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "out", 3);
	event_base_loop(base, EVLOOP_NONBLOCK);	/* the freed bufferevent is finalized */
	/* the socket is the relay's now: freeing the bufferevent left it open */
	assert_int_not_equal(fcntl(sv[0], F_GETFD), -1);
	relay_io_free(io);
	assert_int_equal(fcntl(sv[0], F_GETFD), -1);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stops_at_bound_and_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_takeover_keeps_buffered_bytes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * relay_io.c - a relaying socket's events, buffers and takeover from its
 * bufferevent, and the plain (non-TLS) kind: readv of large chunks straight
 * into the input buffer, writev of the queue as soon as it has bytes.
 *
 * Each socket has a read event and a write event of its own, persistent,
 * added or removed only when what is wanted changes: a request/response
 * exchange costs no epoll_ctl. The write event is added only when the
 * socket did not take everything; a write error is reported from that
 * event, never from inside the caller that queued the bytes.
 */
#include "relay/relay_io.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#define READ_CHUNK (64 * 1024)

static void set_event(struct event *ev, bool *added, bool on)
{
	if (on == *added)
		return;
	if (on)
		event_add(ev, NULL);
	else
		event_del(ev);
	*added = on;
}

static void update_events(struct relay_io *io)
{
	bool failed = io->failed;

	set_event(io->rev, &io->reading,
		  !failed && ((io->read_wanted && !io->eof) || io->write_needs_read));
	set_event(io->wev, &io->writing,
		  !failed && (evbuffer_get_length(io->out) > 0 || io->read_needs_write));
}

void relay_io_mark_failed(struct relay_io *io)
{
	if (io->failed)
		return;
	io->failed = true;
	update_events(io);
	event_active(io->wev, EV_WRITE, 0);	/* reported from the loop: see on_writable */
}

void relay_io_want_write(struct relay_io *io)
{
	io->read_needs_write = true;
	update_events(io);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct relay_io *io = arg;

	(void)fd;
	(void)what;
	if (io->write_needs_read) {
		io->write_needs_read = false;
		relay_io_flush(io);
		if (io->failed)
			return;
	}
	update_events(io);
	if (io->read_wanted)
		io->cb(io, RELAY_IO_READABLE, io->arg);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct relay_io *io = arg;

	(void)fd;
	(void)what;
	if (io->failed) {
		io->cb(io, RELAY_IO_FAILED, io->arg);
		return;
	}
	if (io->read_needs_write) {
		io->read_needs_write = false;
		update_events(io);
		if (io->read_wanted)
			io->cb(io, RELAY_IO_READABLE, io->arg);
		return;		/* the callback may have freed io */
	}
	relay_io_flush(io);
	if (!io->failed)
		io->cb(io, RELAY_IO_WRITTEN, io->arg);
}

size_t relay_io_queued(const struct relay_io *io)
{
	return evbuffer_get_length(io->out);
}

ssize_t relay_io_read(struct relay_io *io, size_t max)
{
	ssize_t got;

	if (relay_io_ended(io) || max == 0)
		return relay_io_ended(io) ? -1 : 0;
	got = io->ops->read(io, max);
	if (got > 0)
		io->bytes_read += (uint64_t)got;
	if (relay_io_ended(io))
		update_events(io);
	return got;
}

void relay_io_flush(struct relay_io *io)
{
	if (!io->failed && evbuffer_get_length(io->out) > 0 && !io->write_needs_read &&
	    io->ops->write(io) < 0)
		relay_io_mark_failed(io);
	update_events(io);
}

void relay_io_write(struct relay_io *io, const void *buf, size_t len)
{
	if (io->failed)
		return;
	if (evbuffer_add(io->out, buf, len) < 0) {
		relay_io_mark_failed(io);
		return;
	}
	relay_io_flush(io);
}

void relay_io_set_reading(struct relay_io *io, bool on)
{
	bool was = io->read_wanted;

	io->read_wanted = on;
	update_events(io);
	/* What is already here (TLS records, bytes carried over) raises no event. */
	if (on && !was && !io->failed &&
	    (evbuffer_get_length(io->in) > 0 || io->eof || io->ops->pending(io)))
		event_active(io->rev, EV_READ, 0);
}

void relay_io_read_on(struct relay_io *io)
{
	if (io->read_wanted && !io->failed && io->ops->pending(io))
		event_active(io->rev, EV_READ, 0);
}

/* ---- the plain kind ---------------------------------------------------- */

static ssize_t plain_read(struct relay_io *io, size_t max)
{
	size_t total = 0;

	while (total < max) {
		struct evbuffer_iovec v[2];
		size_t want = max - total < READ_CHUNK ? max - total : READ_CHUNK;
		int n = evbuffer_reserve_space(io->in, (ssize_t)want, v, 2);
		size_t asked = 0, left;
		ssize_t got;

		if (n <= 0) {
			relay_io_mark_failed(io);
			break;
		}
		for (int i = 0; i < n; i++) {
			if (v[i].iov_len > want - asked)
				v[i].iov_len = want - asked;
			asked += v[i].iov_len;
		}
		do
			got = readv(io->fd, (struct iovec *)v, n);
		while (got < 0 && errno == EINTR);
		if (got <= 0) {
			evbuffer_commit_space(io->in, v, 0);
			if (got == 0)
				io->eof = true;
			else if (errno != EAGAIN && errno != EWOULDBLOCK)
				io->failed = true;
			break;
		}
		left = (size_t)got;
		for (int i = 0; i < n; i++) {
			if (v[i].iov_len > left)
				v[i].iov_len = left;
			left -= v[i].iov_len;
		}
		evbuffer_commit_space(io->in, v, n);
		total += (size_t)got;
		if ((size_t)got < asked)
			break;		/* the socket had no more */
	}
	return total > 0 ? (ssize_t)total : (relay_io_ended(io) ? -1 : 0);
}

static int plain_write(struct relay_io *io)
{
	while (evbuffer_get_length(io->out) > 0) {
		int n = evbuffer_write(io->out, io->fd);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
		if (n == 0)
			return 0;
	}
	return 0;
}

static bool plain_pending(const struct relay_io *io)
{
	(void)io;
	return false;
}

static void plain_nothing(struct relay_io *io)
{
	(void)io;
}

const struct relay_io_ops relay_io_plain_ops = {
	.read = plain_read,
	.write = plain_write,
	.pending = plain_pending,
	.shutdown = plain_nothing,
	.release = plain_nothing,
};

/* ---- takeover and end -------------------------------------------------- */

struct relay_io *relay_io_take(struct bufferevent *bev, relay_io_cb cb, void *arg)
{
	struct event_base *base = bufferevent_get_base(bev);
	void *ssl = bufferevent_openssl_get_ssl(bev);
	struct relay_io *io = calloc(1, sizeof(*io));
	struct evbuffer *bout = bufferevent_get_output(bev);

	if (!io)
		return NULL;
	io->fd = (int)bufferevent_getfd(bev);
	io->in = evbuffer_new();
	io->out = evbuffer_new();
	io->rev = event_new(base, io->fd, EV_READ | EV_PERSIST, on_readable, io);
	io->wev = event_new(base, io->fd, EV_WRITE | EV_PERSIST, on_writable, io);
	if (!io->in || !io->out || !io->rev || !io->wev) {
		io->fd = -1;
		io->ops = &relay_io_plain_ops;
		relay_io_free(io);
		return NULL;
	}
	io->cb = cb;
	io->arg = arg;
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	/* A socket bufferevent keeps the front of its output frozen. */
	evbuffer_unfreeze(bout, 1);
	evbuffer_add_buffer(io->in, bufferevent_get_input(bev));
	evbuffer_add_buffer(io->out, bout);
	if (ssl) {
		relay_io_tls_adopt(io, ssl);	/* a TLS bufferevent never owns its SSL: tls_upgrade.c */
	} else {
		io->ops = &relay_io_plain_ops;
		bufferevent_setfd(bev, -1);	/* so that freeing it leaves the socket open */
	}
	bufferevent_free(bev);
	return io;
}

void relay_io_free(struct relay_io *io)
{
	if (!io)
		return;
	if (io->rev)
		event_free(io->rev);
	if (io->wev)
		event_free(io->wev);
	if (io->fd >= 0 && !io->failed && io->out && evbuffer_get_length(io->out) == 0)
		io->ops->shutdown(io);
	io->ops->release(io);
	if (io->fd >= 0)
		close(io->fd);
	if (io->in)
		evbuffer_free(io->in);
	if (io->out)
		evbuffer_free(io->out);
	free(io);
}

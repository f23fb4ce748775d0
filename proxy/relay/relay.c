/*
 * relay.c - one direction of a session: scan, forward, apply backpressure.
 *
 * On plain sockets the relay does better than libevent 2.1's bufferevents
 * alone, which read at most 4 KiB per readiness event (EVBUFFER_MAX_READ)
 * and write only on the next loop pass: when a read callback runs, what
 * else the socket holds is read at once in large chunks (up to the high
 * mark), and what was moved to a plain sink is written right away. The
 * bufferevents still own the sockets: EOF, errors and whatever could not
 * be written are theirs to see on their next event.
 *
 * A TLS source has the same problem in another form: libevent's OpenSSL
 * bufferevent stops after one record whenever OpenSSL holds no decrypted
 * bytes, so a server that sends one small record per message (a walsender
 * does) costs a whole loop pass per message. The relay goes on reading
 * records with SSL_read while they come without waiting, before it moves
 * the bytes on, so that they travel as a few large records, not many small.
 */
#include "relay/relay.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <sys/uio.h>

#define PEEK_VECS 8
#define READ_CHUNK (64 * 1024)

void relay_dir_init(struct relay_dir *d, uint32_t max_message, size_t high_water,
		    relay_message_fn on_message, void *arg)
{
	pg_scan_init(&d->scan, max_message);
	d->bytes = 0;
	d->last_type = 0;
	d->paused = false;
	d->high_water = high_water;
	d->on_message = on_message;
	d->arg = arg;
	d->plain_from = d->plain_to = d->tls_from = false;
	d->holdable = d->hold_asked = d->held = false;
	d->msg_start = SIZE_MAX;
	d->hold_from = d->scan_end = d->scanned = 0;
}

void relay_dir_holdable(struct relay_dir *d)
{
	d->holdable = true;
}

bool relay_can_hold(const struct relay_dir *d)
{
	return d->holdable && d->msg_start != SIZE_MAX;
}

bool relay_hold(struct relay_dir *d)
{
	if (!relay_can_hold(d))
		return false;
	d->hold_asked = true;
	d->hold_from = d->msg_start;
	return true;
}

void relay_release(struct relay_dir *d, struct bufferevent *from)
{
	d->held = false;
	if (!d->paused)
		bufferevent_enable(from, EV_READ);
}

void relay_dir_plain(struct relay_dir *d, bool from, bool to)
{
	d->plain_from = from;
	d->plain_to = to;
}

void relay_dir_tls_source(struct relay_dir *d)
{
	d->tls_from = true;
}

/*
 * Records that can be read without waiting, while the two buffers stay
 * under the high mark. Anything but data (want-read, close_notify, an
 * error) ends it, and is left for the bufferevent to meet on its own next
 * read, as OpenSSL reports it again.
 */
static void read_records(struct relay_dir *d, struct bufferevent *from, struct evbuffer *out)
{
	SSL *ssl = bufferevent_openssl_get_ssl(from);
	struct evbuffer *in = bufferevent_get_input(from);

	/* unlike a socket bufferevent, the OpenSSL one leaves its input unfrozen */
	if (!ssl)
		return;
	while (evbuffer_get_length(in) + evbuffer_get_length(out) < d->high_water) {
		struct evbuffer_iovec v;
		int got;

		if (evbuffer_reserve_space(in, READ_CHUNK, &v, 1) != 1)
			break;
		got = SSL_read(ssl, v.iov_base, (int)(v.iov_len < INT32_MAX ? v.iov_len : INT32_MAX));
		if (got <= 0) {
			if (SSL_get_error(ssl, got) == SSL_ERROR_WANT_READ)
				ERR_clear_error();
			evbuffer_commit_space(in, &v, 0);
			break;
		}
		v.iov_len = (size_t)got;
		evbuffer_commit_space(in, &v, 1);
	}
}

/*
 * A socket bufferevent freezes the end of its input and the start of its
 * output, so that only it adds and removes there; the relay does the same
 * thing it would, between the bufferevent's own events, and thaws them for
 * the while.
 */
static void read_gulps(struct relay_dir *d, struct evbuffer *in, evutil_socket_t fd,
		       struct evbuffer *out);

/* Read what the socket holds, while the two buffers stay under the high mark. */
static void read_more(struct relay_dir *d, struct bufferevent *from, struct evbuffer *out)
{
	struct evbuffer *in = bufferevent_get_input(from);

	evbuffer_unfreeze(in, 0);
	read_gulps(d, in, bufferevent_getfd(from), out);
	evbuffer_freeze(in, 0);
}

static void write_now(struct bufferevent *to)
{
	struct evbuffer *out = bufferevent_get_output(to);

	evbuffer_unfreeze(out, 1);
	evbuffer_write(out, bufferevent_getfd(to));	/* what is left waits for its event */
	evbuffer_freeze(out, 1);
}

static void read_gulps(struct relay_dir *d, struct evbuffer *in, evutil_socket_t fd,
		       struct evbuffer *out)
{
	while (evbuffer_get_length(in) + evbuffer_get_length(out) < d->high_water) {
		struct evbuffer_iovec v[2];
		int n = evbuffer_reserve_space(in, READ_CHUNK, v, 2);
		size_t asked = 0, left;
		ssize_t got;

		if (n <= 0)
			return;
		for (int i = 0; i < n; i++)
			asked += v[i].iov_len;
		do
			got = readv(fd, (struct iovec *)v, n);
		while (got < 0 && errno == EINTR);
		if (got <= 0) {
			evbuffer_commit_space(in, v, 0);
			return;		/* drained, closed or failed: the bufferevent will see */
		}
		left = (size_t)got;
		for (int i = 0; i < n; i++) {
			if (v[i].iov_len > left)
				v[i].iov_len = left;
			left -= v[i].iov_len;
		}
		evbuffer_commit_space(in, v, n);
		if ((size_t)got < asked)
			return;		/* the socket had no more */
	}
}

/*
 * A holdable direction notes where each message begins, and feeds the
 * scanner no further than the end of a payload being skipped, so that no
 * boundary passes unseen. *stop once a held message has ended.
 */
static size_t feed_limit(struct relay_dir *d, size_t len, size_t off, bool *stop)
{
	uint32_t left = pg_scan_payload_left(&d->scan);

	if (pg_scan_at_boundary(&d->scan)) {
		if (d->hold_asked) {
			*stop = true;
			return 0;
		}
		d->msg_start = off;
	}
	return left && left < len ? left : len;
}

/* Returns 1 when a held message has ended: what follows is not scanned in this pass. */
static int scan_chunk(struct relay_dir *d, const uint8_t *p, size_t len, size_t off)
{
	while (len > 0) {
		enum pg_scan_status st;
		bool stop = false;
		size_t lim = d->holdable ? feed_limit(d, len, off, &stop) : len;
		size_t used;

		if (stop)
			return 1;
		used = pg_scan_feed(&d->scan, p, lim, &st);
		p += used;
		len -= used;
		off += used;
		d->scan_end = off;
		if (st == PG_SCAN_ERROR)
			return -1;
		if (st == PG_SCAN_MESSAGE) {
			d->last_type = d->scan.msg.type;
			if (d->on_message)
				d->on_message(d->arg, &d->scan, false);
		} else if (st == PG_SCAN_CAPTURED && d->on_message) {
			d->on_message(d->arg, &d->scan, true);
		}
	}
	return 0;
}

/*
 * Walk the buffer's chunks in place; the payload is never copied. The
 * first d->scanned bytes (a message held back, shown to the hook already)
 * are skipped.
 */
static int scan_buffer(struct relay_dir *d, struct evbuffer *in)
{
	struct evbuffer_iovec vec[PEEK_VECS];
	struct evbuffer_ptr pos;
	size_t done = d->scanned;
	int n, r;

	d->msg_start = SIZE_MAX;
	d->scan_end = done;
	if (done >= evbuffer_get_length(in))
		return 0;
	evbuffer_ptr_set(in, &pos, done, EVBUFFER_PTR_SET);
	for (;;) {
		n = evbuffer_peek(in, -1, &pos, vec, PEEK_VECS);
		for (int i = 0; i < n && i < PEEK_VECS; i++) {
			r = scan_chunk(d, vec[i].iov_base, vec[i].iov_len, done);
			if (r != 0)
				return r < 0 ? -1 : 0;
			done += vec[i].iov_len;
		}
		if (n <= PEEK_VECS)
			return 0;
		evbuffer_ptr_set(in, &pos, done, EVBUFFER_PTR_SET);
	}
}

/* A message was held in this pass: only what came before it goes. */
static size_t hold_now(struct relay_dir *d, struct bufferevent *from)
{
	d->hold_asked = false;
	d->held = true;
	d->scanned = d->scan_end - d->hold_from;
	bufferevent_disable(from, EV_READ);
	return d->hold_from;
}

int relay_forward(struct relay_dir *d, struct bufferevent *from, struct bufferevent *to)
{
	struct evbuffer *in = bufferevent_get_input(from);
	struct evbuffer *out = bufferevent_get_output(to);
	size_t len;

	if (d->held)
		return 0;
	if (d->plain_from && !d->paused)
		read_more(d, from, out);
	else if (d->tls_from && !d->paused)
		read_records(d, from, out);
	len = evbuffer_get_length(in);
	if (len == 0)
		return 0;
	if (scan_buffer(d, in) < 0)
		return -1;
	d->scanned = 0;
	if (d->hold_asked)
		len = hold_now(d, from);
	d->bytes += len;
	if (len == evbuffer_get_length(in))
		evbuffer_add_buffer(out, in);
	else if (len > 0)
		evbuffer_remove_buffer(in, out, len);
	if (d->plain_to)
		write_now(to);
	if (evbuffer_get_length(out) >= d->high_water && !d->paused) {
		d->paused = true;
		bufferevent_disable(from, EV_READ);
		bufferevent_setwatermark(to, EV_WRITE, d->high_water / 2, 0);
	}
	return 0;
}

/*
 * What libevent's OpenSSL bufferevent does on its next write event, now:
 * SSL_write of the output's first chunk, whole, as libevent passes it, so
 * that either of the two may retry a write the other began (the SSL
 * accepts a moved buffer, see tls_upgrade.c). That bufferevent leaves its
 * output unfrozen.
 */
static void write_tls_now(SSL *ssl, struct evbuffer *out)
{
	if (!SSL_is_init_finished(ssl))
		return;		/* the handshake is libevent's to drive */
	while (evbuffer_get_length(out) > 0) {
		struct evbuffer_iovec v;
		int n;

		if (evbuffer_peek(out, -1, NULL, &v, 1) < 1)
			return;
		n = SSL_write(ssl, v.iov_base, v.iov_len < INT32_MAX ? (int)v.iov_len : INT32_MAX);
		if (n <= 0) {
			ERR_clear_error();
			return;	/* the socket is full: the write event goes on from here */
		}
		if (evbuffer_drain(out, (size_t)n) < 0)
			return;
	}
}

void relay_flush(struct bufferevent *to)
{
	SSL *ssl = bufferevent_openssl_get_ssl(to);

	if (ssl)
		write_tls_now(ssl, bufferevent_get_output(to));
	else
		write_now(to);
}

void relay_sink_drained(struct relay_dir *d, struct bufferevent *from, struct bufferevent *to)
{
	if (!d->paused)
		return;
	d->paused = false;
	bufferevent_setwatermark(to, EV_WRITE, 0, 0);
	if (!d->held)
		bufferevent_enable(from, EV_READ);
}

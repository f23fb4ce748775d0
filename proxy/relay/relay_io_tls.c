/*
 * relay_io_tls.c - the TLS kind of a relaying socket: OpenSSL reads and
 * writes the socket itself (no memory BIO, no copy per record).
 *
 * Reads: with read-ahead and a 64 KiB read buffer, one read(2) brings in
 * several records; SSL_read goes on while OpenSSL holds bytes, so records
 * that arrived together are taken together, and the level-triggered read
 * event says when the socket has more. Each record lands in a buffer chunk
 * of its own (16 KiB asked per SSL_read), so a full record read is a full
 * record written, without a copy to make it contiguous.
 * Writes: the queue goes out in 16 KiB slices, one full record each
 * (partial writes on); a slice the socket did not take is retried with
 * the same bytes, which may have moved (accept moving write buffer). The
 * first write after the takeover retries the queue's front chunk whole,
 * as libevent's bufferevent passed it, in case libevent had begun it.
 */
#include "relay/relay_io.h"

#include <errno.h>
#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define RECORD (16 * 1024)
/* OpenSSL's read buffer: four full records and their overhead per read(2). */
#define READ_AHEAD (64 * 1024 + 512)

void relay_io_tls_adopt(struct relay_io *io, void *ssl)
{
	io->ops = &relay_io_tls_ops;
	io->tls = ssl;
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Buffers are released when empty (tls_context.c): the next one is this large. */
	SSL_set_default_read_buffer_len(ssl, READ_AHEAD);
	SSL_set_read_ahead(ssl, 1);
	io->write_whole = evbuffer_get_length(io->out) > 0;
}

void *relay_io_ssl(const struct relay_io *io)
{
	return io->ops == &relay_io_tls_ops ? io->tls : NULL;
}

/* A read that returned nothing: the end, an error, or nothing yet. */
static void read_stopped(struct relay_io *io, SSL *ssl, int r)
{
	int err = SSL_get_error(ssl, r);
	unsigned long e = ERR_peek_error();

	if (err == SSL_ERROR_WANT_READ) {
		/* nothing yet */
	} else if (err == SSL_ERROR_WANT_WRITE) {
		relay_io_want_write(io);
	} else if (err == SSL_ERROR_ZERO_RETURN) {
		io->eof = true;
	} else if (err == SSL_ERROR_SYSCALL && e == 0 && (r == 0 || errno == 0)) {
		io->eof = true;		/* closed without close_notify: libpq does */
	} else if (err == SSL_ERROR_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
		io->eof = true;
	} else {
		io->failed = true;
	}
	ERR_clear_error();
}

/*
 * A read that brought nothing leaves the chunk it reserved in an empty
 * input: an idle session would keep it. libevent frees no empty chunk, so
 * the empty buffer is replaced.
 */
static void drop_empty_chunk(struct relay_io *io)
{
	struct evbuffer *fresh;

	if (evbuffer_get_length(io->in) > 0 || !(fresh = evbuffer_new()))
		return;
	evbuffer_free(io->in);
	io->in = fresh;
}

static ssize_t tls_read(struct relay_io *io, size_t max)
{
	SSL *ssl = io->tls;
	size_t total = 0;

	while (total < max) {
		struct evbuffer_iovec v;
		size_t want = max - total < RECORD ? max - total : RECORD;
		size_t got = 0;
		int r;

		if (evbuffer_reserve_space(io->in, (ssize_t)want, &v, 1) != 1) {
			io->failed = true;
			break;
		}
		if (v.iov_len > want)
			v.iov_len = want;
		r = SSL_read_ex(ssl, v.iov_base, v.iov_len, &got);
		if (r <= 0) {
			evbuffer_commit_space(io->in, &v, 0);
			read_stopped(io, ssl, r);
			break;
		}
		v.iov_len = got;
		evbuffer_commit_space(io->in, &v, 1);
		total += got;
		if (!SSL_has_pending(ssl))
			break;		/* the read event says when the socket has more */
	}
	if (total == 0)
		drop_empty_chunk(io);
	return total > 0 ? (ssize_t)total : (relay_io_ended(io) ? -1 : 0);
}

/* The next slice to write: 16 KiB made contiguous, or the front chunk whole. */
static const void *next_slice(struct relay_io *io, size_t *len)
{
	struct evbuffer_iovec v;
	size_t total = evbuffer_get_length(io->out);

	if (evbuffer_peek(io->out, -1, NULL, &v, 1) < 1)
		return NULL;
	if (io->write_whole) {
		*len = v.iov_len;
		return v.iov_base;
	}
	*len = total < RECORD ? total : RECORD;
	if (v.iov_len >= *len)
		return v.iov_base;
	return evbuffer_pullup(io->out, (ssize_t)*len);
}

static int tls_write(struct relay_io *io)
{
	SSL *ssl = io->tls;

	while (evbuffer_get_length(io->out) > 0) {
		size_t len = 0, done = 0;
		const void *p = next_slice(io, &len);
		int r;

		if (!p)
			return -1;
		r = SSL_write_ex(ssl, p, len, &done);
		if (r <= 0) {
			int err = SSL_get_error(ssl, r);

			ERR_clear_error();
			if (err == SSL_ERROR_WANT_WRITE)
				return 0;	/* the write event goes on with the same bytes */
			if (err == SSL_ERROR_WANT_READ) {
				io->write_needs_read = true;
				return 0;
			}
			return -1;
		}
		io->write_whole = false;
		evbuffer_drain(io->out, done);
	}
	return 0;
}

static bool tls_pending(const struct relay_io *io)
{
	return SSL_has_pending(io->tls) == 1;
}

static void tls_shutdown(struct relay_io *io)
{
	if (SSL_is_init_finished(io->tls))
		(void)SSL_shutdown(io->tls);	/* close_notify if the socket takes it */
	ERR_clear_error();
}

static void tls_release(struct relay_io *io)
{
	SSL_free(io->tls);
	io->tls = NULL;
}

const struct relay_io_ops relay_io_tls_ops = {
	.read = tls_read,
	.write = tls_write,
	.pending = tls_pending,
	.shutdown = tls_shutdown,
	.release = tls_release,
};

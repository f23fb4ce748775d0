/*
 * tls_upgrade.c - from plaintext to TLS on a live connection.
 *
 * Every TLS leg is a socket bufferevent of libevent's OpenSSL kind until
 * the session relays: OpenSSL reads and writes the socket itself (no extra
 * copy per record), and what the bufferevent's output holds is all that is
 * queued for the socket, so that the flush before a close sees the truth.
 * The bufferevent does not own its SSL and socket (no CLOSE_ON_FREE):
 * bev_leg_free frees them with it, or relay_io_take takes them over. A client that opens with a ClientHello (direct TLS) is no
 * exception: the bytes libevent already read are replayed to OpenSSL
 * (tls_replay_bio.c) rather than fed through a filter bufferevent, whose
 * socket buffer underneath had no limit.
 */
#include "relay/tls_upgrade.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <string.h>
#include <unistd.h>

#include "tls/tls_replay_bio.h"

/*
 * libevent's default of 16 KiB per read or write pass is one TLS record;
 * four per pass take a quarter of the loop passes on a bulk stream.
 */
#define TLS_IO_MAX (64 * 1024)

static struct bufferevent *tls_tuned(struct bufferevent *tls)
{
	/* libpq and most drivers close without close_notify; that is not an attack on us. */
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	bufferevent_set_max_single_read(tls, TLS_IO_MAX);
	bufferevent_set_max_single_write(tls, TLS_IO_MAX);
	/* bev_leg_flush may retry a write libevent began: same bytes, maybe moved */
	SSL_set_mode(bufferevent_openssl_get_ssl(tls), SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return tls;
}

/*
 * Write plain's queued output (a byte or two, into an empty socket buffer:
 * this does not block) and free plain, leaving the socket open. Returns
 * the socket, or -1 (plain freed, socket closed) when it cannot be written.
 */
static evutil_socket_t release_socket(struct bufferevent *plain)
{
	struct evbuffer *out = bufferevent_get_output(plain);
	evutil_socket_t fd = bufferevent_getfd(plain);

	/* The bufferevent keeps its output's front frozen; it is freed right after. */
	evbuffer_unfreeze(out, 1);
	while (evbuffer_get_length(out) > 0)
		if (evbuffer_write(out, fd) <= 0) {
			bufferevent_free(plain);
			return -1;
		}
	bufferevent_setfd(plain, -1);	/* so that freeing it leaves the socket open */
	bufferevent_free(plain);
	return fd;
}

static struct bufferevent *tls_on_socket(struct event_base *base, evutil_socket_t fd, SSL *ssl,
					 enum bufferevent_ssl_state state)
{
	struct bufferevent *tls = bufferevent_openssl_socket_new(base, fd, ssl, state, 0);

	if (!tls) {
		SSL_free(ssl);	/* without CLOSE_ON_FREE, libevent leaves it to us */
		close(fd);
		return NULL;
	}
	return tls_tuned(tls);
}

struct bufferevent *tls_upgrade_socket(struct bufferevent *plain, SSL *ssl,
				       enum bufferevent_ssl_state state)
{
	struct event_base *base = bufferevent_get_base(plain);
	evutil_socket_t fd = release_socket(plain);

	if (fd < 0) {
		SSL_free(ssl);
		return NULL;
	}
	return tls_on_socket(base, fd, ssl, state);
}

struct bufferevent *tls_upgrade_direct(struct bufferevent *plain, SSL *ssl)
{
	struct event_base *base = bufferevent_get_base(plain);
	struct evbuffer *in = bufferevent_get_input(plain);
	size_t len = evbuffer_get_length(in);
	const unsigned char *head = evbuffer_pullup(in, -1);
	BIO *rbio = NULL, *wbio = NULL;
	evutil_socket_t fd;

	if (head || len == 0) {
		rbio = tls_replay_bio_new(bufferevent_getfd(plain), head, len);
		wbio = BIO_new_socket(bufferevent_getfd(plain), BIO_NOCLOSE);
	}
	if (!rbio || !wbio) {
		BIO_free_all(rbio);
		BIO_free(wbio);
		SSL_free(ssl);
		bufferevent_free(plain);
		return NULL;
	}
	SSL_set_bio(ssl, rbio, wbio);	/* the SSL owns both now */
	fd = release_socket(plain);
	if (fd < 0) {
		SSL_free(ssl);
		return NULL;
	}
	/* libevent finds the socket in the SSL's write BIO and keeps the BIOs as they are. */
	return tls_on_socket(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING);
}

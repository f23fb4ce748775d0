/*
 * bev_leg.c - freeing a session's bufferevent leg with its SSL and socket,
 * and writing its queue at once (see bev_leg.h).
 */
#include "relay/bev_leg.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <unistd.h>

void bev_leg_free(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	evutil_socket_t fd = ssl ? bufferevent_getfd(bev) : -1;

	/* Its events are removed now; what libevent frees later touches neither. */
	bufferevent_free(bev);
	if (ssl)
		SSL_free(ssl);
	if (fd >= 0)
		close(fd);
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

/* A socket bufferevent keeps the front of its output frozen; thawed for the while. */
static void write_plain_now(struct bufferevent *bev)
{
	struct evbuffer *out = bufferevent_get_output(bev);

	evbuffer_unfreeze(out, 1);
	evbuffer_write(out, bufferevent_getfd(bev));	/* what is left waits for its event */
	evbuffer_freeze(out, 1);
}

void bev_leg_flush(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (ssl)
		write_tls_now(ssl, bufferevent_get_output(bev));
	else
		write_plain_now(bev);
}

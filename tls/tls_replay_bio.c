/*
 * tls_replay_bio.c - a filter BIO that replays bytes read before OpenSSL
 * took over a socket, then passes every call to the socket BIO below.
 *
 * Once the replayed bytes are consumed their copy is freed and the filter
 * only forwards: one function call per read. The BIO method table is made
 * once per process (pthread_once), like OpenSSL's own static tables.
 */
#include "tls_replay_bio.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct replay {
	size_t len;
	size_t off;
	unsigned char bytes[];
};

static BIO_METHOD *replay_method;
static pthread_once_t replay_method_once = PTHREAD_ONCE_INIT;

static int replay_read(BIO *b, char *out, int outl)
{
	struct replay *r = BIO_get_data(b);
	BIO *next = BIO_next(b);
	int n;

	BIO_clear_retry_flags(b);
	if (outl <= 0)
		return 0;
	if (r) {
		size_t left = r->len - r->off;

		n = (size_t)outl < left ? outl : (int)left;
		memcpy(out, r->bytes + r->off, (size_t)n);
		r->off += (size_t)n;
		if (r->off == r->len) {
			free(r);
			BIO_set_data(b, NULL);
		}
		return n;
	}
	if (!next)
		return 0;
	n = BIO_read(next, out, outl);
	BIO_copy_next_retry(b);
	return n;
}

static int replay_write(BIO *b, const char *in, int inl)
{
	BIO *next = BIO_next(b);
	int n;

	BIO_clear_retry_flags(b);
	if (!next)
		return 0;
	n = BIO_write(next, in, inl);
	BIO_copy_next_retry(b);
	return n;
}

static long replay_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct replay *r = BIO_get_data(b);
	BIO *next = BIO_next(b);
	long below = 0;

	switch (cmd) {
	case BIO_CTRL_PENDING:
		if (next)
			below = (long)BIO_ctrl_pending(next);
		return (r ? (long)(r->len - r->off) : 0) + below;
	case BIO_CTRL_EOF:
		if (r)
			return 0;
		break;
	default:
		break;
	}
	return next ? BIO_ctrl(next, cmd, num, ptr) : 0;
}

static int replay_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static int replay_destroy(BIO *b)
{
	free(BIO_get_data(b));
	BIO_set_data(b, NULL);
	return 1;
}

static void replay_method_make(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "walgate replay");

	if (!m)
		return;
	if (!BIO_meth_set_read(m, replay_read) || !BIO_meth_set_write(m, replay_write) ||
	    !BIO_meth_set_ctrl(m, replay_ctrl) || !BIO_meth_set_create(m, replay_create) ||
	    !BIO_meth_set_destroy(m, replay_destroy)) {
		BIO_meth_free(m);
		return;
	}
	replay_method = m;
}

BIO *tls_replay_bio_new(int fd, const void *head, size_t len)
{
	struct replay *r = NULL;
	BIO *filter, *sock;

	pthread_once(&replay_method_once, replay_method_make);
	if (!replay_method)
		return NULL;
	if (len > 0) {
		r = malloc(sizeof(*r) + len);
		if (!r)
			return NULL;
		r->len = len;
		r->off = 0;
		memcpy(r->bytes, head, len);
	}
	filter = BIO_new(replay_method);
	sock = BIO_new_socket(fd, BIO_NOCLOSE);
	if (!filter || !sock) {
		BIO_free(filter);
		BIO_free(sock);
		free(r);
		return NULL;
	}
	BIO_set_data(filter, r);
	return BIO_push(filter, sock);
}

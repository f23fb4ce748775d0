/*
 * relay_io.h - one socket of a relaying session, driven by walgate's own
 * events: what was read from it (in), what is queued for it (out), and
 * the socket's kind (plain or TLS) behind a table of functions, so that
 * the relay above moves bytes without knowing which kind it has.
 *
 * A session's legs are bufferevents until it relays (RELAY): then each is
 * taken over with relay_io_take, its socket, its SSL and the bytes its
 * bufferevent held included. From there:
 *  - reads come when the relay asks (relay_io_read), in large chunks, at
 *    most as many bytes as it allows;
 *  - writes go out as soon as the relay queued them (relay_io_flush); only
 *    what the socket did not take waits for its write event;
 *  - the read and write events are added and removed only when that
 *    changes, never per message.
 */
#ifndef WALGATE_RELAY_IO_H
#define WALGATE_RELAY_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct bufferevent;
struct event;
struct event_base;
struct evbuffer;
struct relay_io;

enum relay_io_event {
	RELAY_IO_READABLE,	/* the socket (or the TLS layer) has bytes to read */
	RELAY_IO_WRITTEN,	/* the write event moved some of out; out may be empty */
	RELAY_IO_FAILED,	/* a write failed: the socket is gone */
};

typedef void (*relay_io_cb)(struct relay_io *io, enum relay_io_event ev, void *arg);

/* What differs between a plain socket and a TLS one. */
struct relay_io_ops {
	/* Read into io->in, at most max bytes: the count, 0 for nothing now, -1 once ended. */
	ssize_t (*read)(struct relay_io *io, size_t max);
	/* Write io->out as far as the socket takes it: 0, or -1 once failed. */
	int (*write)(struct relay_io *io);
	/* Bytes read from the socket and not yet handed out (TLS records). */
	bool (*pending)(const struct relay_io *io);
	/* A clean end (close_notify), best effort, before the socket is closed. */
	void (*shutdown)(struct relay_io *io);
	/* Release what the kind holds (the SSL). */
	void (*release)(struct relay_io *io);
};

struct relay_io {
	const struct relay_io_ops *ops;
	int fd;
	void *tls;			/* the SSL of a TLS socket; opaque above relay_io_tls.c */
	struct evbuffer *in;		/* read, not yet moved on */
	struct evbuffer *out;		/* queued for the socket: all that is, nowhere else */
	struct event *rev, *wev;
	bool reading;			/* rev is added */
	bool writing;			/* wev is added */
	bool read_wanted;		/* the relay reads this socket (not paused, not ended) */
	bool eof;			/* the peer closed (or closed TLS) */
	bool failed;			/* the socket failed */
	bool read_needs_write;		/* TLS: a read waits for the socket to take bytes */
	bool write_needs_read;		/* TLS: a write waits for bytes to arrive */
	bool write_whole;		/* TLS: the next write retries the front chunk whole */
	uint64_t bytes_read;
	relay_io_cb cb;
	void *arg;
};

/*
 * Take over a bufferevent's socket, its SSL (a TLS leg) and the bytes it
 * holds in both directions, and free the bufferevent. NULL (the
 * bufferevent untouched) when out of memory. Events start disabled.
 */
struct relay_io *relay_io_take(struct bufferevent *bev, relay_io_cb cb, void *arg);

/* Close the socket (after a clean TLS end where possible) and free. */
void relay_io_free(struct relay_io *io);

/* Read what the socket has, at most max bytes (see ops->read). */
ssize_t relay_io_read(struct relay_io *io, size_t max);

/* Write what is queued now; the rest waits for the write event. */
void relay_io_flush(struct relay_io *io);

/* Queue len bytes and write them now. */
void relay_io_write(struct relay_io *io, const void *buf, size_t len);

/* Read the socket when it is readable, or stop. Turning it on looks at once. */
void relay_io_set_reading(struct relay_io *io, bool on);

/*
 * After a read that stopped at its bound: if the kind still holds bytes
 * (which raise no event) and reading is on, go on from the loop.
 */
void relay_io_read_on(struct relay_io *io);

static inline bool relay_io_ended(const struct relay_io *io)
{
	return io->eof || io->failed;
}

/* What is queued for the socket. */
size_t relay_io_queued(const struct relay_io *io);

/* The kinds (relay_io.c, relay_io_tls.c). */
extern const struct relay_io_ops relay_io_plain_ops;
extern const struct relay_io_ops relay_io_tls_ops;

/* TLS: set up the SSL taken over for relaying (modes, read-ahead). */
void relay_io_tls_adopt(struct relay_io *io, void *ssl);

/* TLS: the SSL of a TLS leg (for channel binding), or NULL. */
void *relay_io_ssl(const struct relay_io *io);

/* An end the kind reports: for relay_io_*.c. */
void relay_io_mark_failed(struct relay_io *io);
void relay_io_want_write(struct relay_io *io);

#endif

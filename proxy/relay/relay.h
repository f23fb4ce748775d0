/*
 * relay.h - moving bytes from one bufferevent to another, one direction
 * of a session, with backpressure and with every message shown to the
 * scanner (and a hook) on its way through.
 *
 * This is libevent's le-proxy pattern: the whole input is appended to the
 * peer's output with evbuffer_add_buffer (no copy); when the peer's output
 * passes the high mark, reading this side stops until the peer drains it
 * to half of that. A hook may also hold one message back (relay_hold):
 * reading stops and that message waits, unforwarded, until relay_release.
 */
#ifndef WALGATE_RELAY_H
#define WALGATE_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol/pg_scan.h"

struct bufferevent;

/*
 * Called for every message once its prefix is known (sc->msg), with
 * captured false; a hook that needs more of it calls pg_scan_capture(sc,
 * ...) then, and is called again with captured true when that is in.
 */
typedef void (*relay_message_fn)(void *arg, struct pg_scanner *sc, bool captured);

struct relay_dir {
	struct pg_scanner scan;
	uint64_t bytes;			/* relayed so far */
	uint8_t last_type;		/* type of the last message seen */
	bool paused;			/* the source is not read: the sink is full */
	size_t high_water;
	bool plain_from;		/* the source is a plain socket: read it in large gulps */
	bool plain_to;			/* the sink is a plain socket: write to it at once */
	bool tls_from;			/* the source is TLS: take every record already there */
	relay_message_fn on_message;	/* may be NULL */
	void *arg;

	/* holding one message back (relay_hold), where relay_dir_holdable said so */
	bool holdable;
	bool hold_asked;		/* by the hook, during this pass */
	bool held;			/* the source is not read; the input keeps the message */
	size_t msg_start;		/* this pass: where the current message began, SIZE_MAX before it */
	size_t hold_from;		/* this pass: where the held message begins */
	size_t scan_end;		/* this pass: how far the scanner went */
	size_t scanned;			/* the input's first bytes, scanned already (the held message) */
};

void relay_dir_init(struct relay_dir *d, uint32_t max_message, size_t high_water,
		    relay_message_fn on_message, void *arg);

/*
 * Say which ends are plain sockets (not TLS), where the relay does its own
 * reads and writes (see relay.c).
 */
void relay_dir_plain(struct relay_dir *d, bool from, bool to);

/* The source is a TLS bufferevent (see relay.c). */
void relay_dir_tls_source(struct relay_dir *d);

/*
 * Let the hook hold a message back (relay_hold): the relay then notes
 * where each message begins, which costs a little per message.
 */
void relay_dir_holdable(struct relay_dir *d);

/*
 * From the hook only, for the message it is shown: forward nothing from
 * its first byte on and stop reading the source, until relay_release.
 * The message and what follows it stay in the source's input. False (and
 * nothing held) when the message began in an earlier pass, so that part
 * of it was forwarded already, or the direction is not holdable.
 */
bool relay_hold(struct relay_dir *d);

/* Would relay_hold hold the message the hook is shown now? */
bool relay_can_hold(const struct relay_dir *d);

/*
 * Read the source again; the caller then calls relay_forward, which sends
 * the held message on without showing it to the hook a second time.
 */
void relay_release(struct relay_dir *d, struct bufferevent *from);

/*
 * Scan and move everything readable from `from` to `to`. Returns 0, or -1
 * when the bytes cannot be framed (d->scan.error says why); then nothing
 * of them has been forwarded. While a message is held: nothing.
 */
int relay_forward(struct relay_dir *d, struct bufferevent *from, struct bufferevent *to);

/*
 * Write what is queued for a leg (plain or TLS) now, as far as its socket
 * takes it, rather than at the leg's next write event; what is left waits
 * for that event. For the last bytes of a closing session.
 */
void relay_flush(struct bufferevent *to);

/* Called from the sink's write callback: resume reading the source once drained. */
void relay_sink_drained(struct relay_dir *d, struct bufferevent *from, struct bufferevent *to);

#endif

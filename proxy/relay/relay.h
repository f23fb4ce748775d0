/*
 * relay.h - one direction of a relaying session: bytes read from one
 * socket (relay_io.h) are shown to the scanner (and a hook) message by
 * message, then queued for the other socket and written at once, with
 * backpressure on what is truly queued for that socket.
 *
 * The source is read only while the sink's queue is under the high mark
 * (relay_buffer_size), and never more than what brings it to the mark;
 * past it the source is not read until the sink has drained to half.
 */
#ifndef WALGATE_RELAY_H
#define WALGATE_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/pg_scan.h"

struct relay_io;

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
	relay_message_fn on_message;	/* may be NULL */
	void *arg;
};

void relay_dir_init(struct relay_dir *d, uint32_t max_message, size_t high_water,
		    relay_message_fn on_message, void *arg);

/*
 * Read what `from` has (within the bound), scan it and everything read
 * before, queue it for `to` and write it. Returns 0, or -1 when the bytes
 * cannot be framed (d->scan.error says why); then nothing of them has
 * been forwarded. Whether `from` ended is relay_io_ended(from)'s to say.
 */
int relay_forward(struct relay_dir *d, struct relay_io *from, struct relay_io *to);

/*
 * The two halves of relay_forward, for a caller that takes the bytes
 * itself (the login exchange): read `from` as far as `to`'s queue allows,
 * and after queueing, pause `from` at the bound (or go on reading what
 * the TLS layer already holds).
 */
void relay_read(struct relay_dir *d, struct relay_io *from, struct relay_io *to);
void relay_settle(struct relay_dir *d, struct relay_io *from, struct relay_io *to);

/* After `to` wrote: resume reading `from` once `to` has drained to half the mark. */
void relay_sink_drained(struct relay_dir *d, struct relay_io *from, struct relay_io *to);

#endif

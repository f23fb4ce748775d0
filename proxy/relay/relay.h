/*
 * relay.h - one direction of a relaying session: bytes read from one
 * socket (relay_io.h) are shown to the scanner (and a hook) message by
 * message, then queued for the other socket and written at once, with
 * backpressure on what is truly queued for that socket.
 *
 * The source is read only while the sink's queue is under the high mark
 * (relay_buffer_size), and never more than what brings it to the mark;
 * past it the source is not read until the sink has drained to half. A
 * hook may also hold one message back (relay_hold): reading stops and
 * that message waits, unforwarded, until relay_release.
 */
#ifndef WALGATE_RELAY_H
#define WALGATE_RELAY_H

#include <stdbool.h>
#include <stddef.h>

#include "relay/relay-t.h"

struct relay_io;

void relay_dir_init(struct relay_dir *d, uint32_t max_message, size_t high_water,
		    relay_message_fn on_message, void *arg);

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
void relay_release(struct relay_dir *d, struct relay_io *from);

/*
 * Read what `from` has (within the bound), scan it and everything read
 * before, queue it for `to` and write it. Returns 0, or -1 when the bytes
 * cannot be framed (d->scan.error says why); then nothing of them has
 * been forwarded. While a message is held: nothing. Whether `from` ended
 * is relay_io_ended(from)'s to say.
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

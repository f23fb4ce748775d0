/*
 * relay.c - one direction of a session: scan, forward, apply backpressure.
 *
 * The bytes stay where the source's read put them: the scanner walks the
 * input buffer's chunks in place, then the chunks are moved whole to the
 * sink's queue (evbuffer_add_buffer, no copy) and written in the same
 * callback. What the sink's queue holds is all that is queued for its
 * socket, so the bound is exact on every kind of leg.
 */
#include "relay/relay.h"

#include <event2/buffer.h>
#include <stdint.h>

#include "relay/relay_io.h"

#define PEEK_VECS 8

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

void relay_release(struct relay_dir *d, struct relay_io *from)
{
	d->held = false;
	if (!d->paused)
		relay_io_set_reading(from, true);	/* the held message is in the input: read at once */
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
static size_t hold_now(struct relay_dir *d, struct relay_io *from)
{
	d->hold_asked = false;
	d->held = true;
	d->scanned = d->scan_end - d->hold_from;
	relay_io_set_reading(from, false);
	return d->hold_from;
}

void relay_read(struct relay_dir *d, struct relay_io *from, struct relay_io *to)
{
	size_t queued = relay_io_queued(to);

	if (d->paused)
		return;
	if (queued < d->high_water)
		relay_io_read(from, d->high_water - queued);
	else
		relay_settle(d, from, to);
}

void relay_settle(struct relay_dir *d, struct relay_io *from, struct relay_io *to)
{
	if (relay_io_queued(to) < d->high_water) {
		relay_io_read_on(from);
	} else if (!d->paused) {
		d->paused = true;
		relay_io_set_reading(from, false);
	}
}

int relay_forward(struct relay_dir *d, struct relay_io *from, struct relay_io *to)
{
	size_t len;

	if (d->held)
		return 0;
	relay_read(d, from, to);
	len = evbuffer_get_length(from->in);
	if (len > 0) {
		if (scan_buffer(d, from->in) < 0)
			return -1;
		d->scanned = 0;
		if (d->hold_asked)
			len = hold_now(d, from);
		d->bytes += len;
		if (len == evbuffer_get_length(from->in))
			evbuffer_add_buffer(to->out, from->in);
		else if (len > 0)
			evbuffer_remove_buffer(from->in, to->out, len);
		relay_io_flush(to);
	}
	if (!d->held)
		relay_settle(d, from, to);
	return 0;
}

void relay_sink_drained(struct relay_dir *d, struct relay_io *from, struct relay_io *to)
{
	if (!d->paused || relay_io_queued(to) > d->high_water / 2)
		return;
	d->paused = false;
	if (!d->held)
		relay_io_set_reading(from, true);
}

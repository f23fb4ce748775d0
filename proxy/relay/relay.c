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
}

static int scan_chunk(struct relay_dir *d, const uint8_t *p, size_t len)
{
	while (len > 0) {
		enum pg_scan_status st;
		size_t used = pg_scan_feed(&d->scan, p, len, &st);

		p += used;
		len -= used;
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

/* Walk the buffer's chunks in place; the payload is never copied. */
static int scan_buffer(struct relay_dir *d, struct evbuffer *in)
{
	struct evbuffer_iovec vec[PEEK_VECS];
	struct evbuffer_ptr pos;
	size_t done = 0;
	int n;

	evbuffer_ptr_set(in, &pos, 0, EVBUFFER_PTR_SET);
	for (;;) {
		n = evbuffer_peek(in, -1, &pos, vec, PEEK_VECS);
		for (int i = 0; i < n && i < PEEK_VECS; i++) {
			if (scan_chunk(d, vec[i].iov_base, vec[i].iov_len) < 0)
				return -1;
			done += vec[i].iov_len;
		}
		if (n <= PEEK_VECS)
			return 0;
		evbuffer_ptr_set(in, &pos, done, EVBUFFER_PTR_SET);
	}
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

	relay_read(d, from, to);
	len = evbuffer_get_length(from->in);
	if (len > 0) {
		if (scan_buffer(d, from->in) < 0)
			return -1;
		d->bytes += len;
		evbuffer_add_buffer(to->out, from->in);
		relay_io_flush(to);
	}
	relay_settle(d, from, to);
	return 0;
}

void relay_sink_drained(struct relay_dir *d, struct relay_io *from, struct relay_io *to)
{
	if (!d->paused || relay_io_queued(to) > d->high_water / 2)
		return;
	d->paused = false;
	relay_io_set_reading(from, true);
}

/*
 * relay.c - one direction of a session: scan, forward, apply backpressure.
 */
#include "relay.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

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

int relay_forward(struct relay_dir *d, struct bufferevent *from, struct bufferevent *to)
{
	struct evbuffer *in = bufferevent_get_input(from);
	struct evbuffer *out = bufferevent_get_output(to);
	size_t len = evbuffer_get_length(in);

	if (len == 0)
		return 0;
	if (scan_buffer(d, in) < 0)
		return -1;
	d->bytes += len;
	evbuffer_add_buffer(out, in);
	if (evbuffer_get_length(out) >= d->high_water && !d->paused) {
		d->paused = true;
		bufferevent_disable(from, EV_READ);
		bufferevent_setwatermark(to, EV_WRITE, d->high_water / 2, 0);
	}
	return 0;
}

void relay_sink_drained(struct relay_dir *d, struct bufferevent *from, struct bufferevent *to)
{
	if (!d->paused)
		return;
	d->paused = false;
	bufferevent_setwatermark(to, EV_WRITE, 0, 0);
	bufferevent_enable(from, EV_READ);
}

/*
 * metrics_slot_table.h - the per-slot part of a scrape: the stream-side
 * series of slot_table.h (as views) and the upstream's view polled by monitor.h, in
 * Prometheus text format and as the JSON of /slots.
 */
#ifndef WALGATE_METRICS_SLOTS_H
#define WALGATE_METRICS_SLOTS_H

#include <stddef.h>

struct evbuffer;
struct slot_view;
struct monitor;

/* The slots of a merged snapshot, and the poller's view (mon may be NULL). */
void metrics_slots_render(struct evbuffer *b, const struct slot_view *v, size_t n,
			  const struct monitor *mon);
void metrics_slots_json(struct evbuffer *b, const struct slot_view *v, size_t n,
			const struct monitor *mon);

#endif

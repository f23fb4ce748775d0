/*
 * lag_tracker.c - the (position, time) ring behind the write and flush
 * lag of a replication stream.
 *
 * Indices grow without wrapping (64 bits do not run out); a sample lives
 * at index % LAG_RING_SIZE, and the ring holds the samples from the
 * slowest kind's read index up to `written`.
 */
#include "repl/lag_tracker.h"

#include <stdlib.h>

void lag_tracker_init(struct lag_tracker *lt)
{
	*lt = (struct lag_tracker){ .lag_us = { -1, -1 } };
}

void lag_tracker_free(struct lag_tracker *lt)
{
	free(lt->ring);
	lag_tracker_init(lt);
}

void lag_tracker_stop(struct lag_tracker *lt)
{
	int64_t kept[LAG_KINDS];
	bool caught_up[LAG_KINDS];

	for (int k = 0; k < LAG_KINDS; k++) {
		kept[k] = lt->lag_us[k];
		caught_up[k] = lt->caught_up[k];
	}
	lag_tracker_free(lt);
	for (int k = 0; k < LAG_KINDS; k++) {
		lt->lag_us[k] = kept[k];
		lt->caught_up[k] = caught_up[k];
	}
}

static uint64_t oldest_read(const struct lag_tracker *lt)
{
	uint64_t r = lt->read[0];

	for (int k = 1; k < LAG_KINDS; k++)
		if (lt->read[k] < r)
			r = lt->read[k];
	return r;
}

static const struct lag_sample *sample_at(const struct lag_tracker *lt, uint64_t i)
{
	return &lt->ring[i % LAG_RING_SIZE];
}

bool lag_tracker_sent(struct lag_tracker *lt, uint64_t lsn, int64_t now_us)
{
	struct lag_sample *s;

	if (lsn <= lt->last_lsn)
		return true;
	for (int k = 0; k < LAG_KINDS; k++) {
		if (lt->caught_up[k])
			lt->lag_us[k] = 0;	/* what was measured before catching up is over */
		lt->caught_up[k] = false;	/* something new to confirm */
	}
	/* Too close to the newest sample still held: that one stands for both. */
	if (lt->written > oldest_read(lt) &&
	    now_us - sample_at(lt, lt->written - 1)->t_us < LAG_SAMPLE_SPACING_US)
		return true;
	if (lt->written - oldest_read(lt) == LAG_RING_SIZE)
		return true;	/* full: see LAG_RING_SIZE */
	if (!lt->ring && !(lt->ring = calloc(LAG_RING_SIZE, sizeof(*lt->ring))))
		return false;
	s = &lt->ring[lt->written % LAG_RING_SIZE];
	s->lsn = lsn;
	s->t_us = now_us;
	lt->written++;
	lt->last_lsn = lsn;
	return true;
}

void lag_tracker_confirmed(struct lag_tracker *lt, enum lag_kind k, uint64_t lsn,
			   uint64_t sent, int64_t now_us)
{
	const struct lag_sample *newest = NULL;

	while (lt->read[k] < lt->written && sample_at(lt, lt->read[k])->lsn <= lsn)
		newest = sample_at(lt, lt->read[k]++);
	if (newest)
		lt->lag_us[k] = now_us - newest->t_us;
	/* nothing behind: lag_tracker_seconds() says 0 whatever this update measured */
	lt->caught_up[k] = lsn >= sent && lt->read[k] == lt->written;
}

double lag_tracker_seconds(const struct lag_tracker *lt, enum lag_kind k, int64_t now_us)
{
	int64_t lag = lt->lag_us[k] > 0 ? lt->lag_us[k] : 0;

	if (lt->caught_up[k])
		return 0;
	if (lt->read[k] < lt->written) {
		int64_t age = now_us - sample_at(lt, lt->read[k])->t_us;

		if (age > lag)
			lag = age;
	}
	return (double)lag / 1e6;
}

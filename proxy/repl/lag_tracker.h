/*
 * lag_tracker.h - how long a replication client takes to confirm what it
 * was sent, measured the way the walsender measures pg_stat_replication's
 * write_lag and flush_lag: positions are recorded with the time they were
 * forwarded, in a bounded ring; when the client reports a position, the
 * newest recorded position at or below it is taken, and the lag is the
 * time since that one was forwarded.
 *
 * Two differences from the walsender, both for alerting: between status
 * updates the lag reported is at least the age of the oldest position
 * still unconfirmed (a client that stops confirming shows a rising lag,
 * not a frozen one), and from the status update that confirms everything
 * sent until something new is sent the lag is 0 (the walsender keeps
 * showing the lag that update measured until the next one, then NULL).
 *
 * Pure: times are given by the caller (monotonic microseconds).
 */
#ifndef WALGATE_LAG_TRACKER_H
#define WALGATE_LAG_TRACKER_H

#include <stdbool.h>
#include <stdint.h>

/*
 * 1024 samples at least 20 ms apart hold 20 s of unconfirmed positions,
 * twice the 10 s status interval of pg_recvlogical and walreceiver; past
 * that, positions are not recorded until the client confirms some, and
 * the lag of those is taken from the newest older sample (an overestimate
 * by at most the gap).
 */
#define LAG_RING_SIZE		1024u
#define LAG_SAMPLE_SPACING_US	20000

enum lag_kind {
	LAG_WRITE,
	LAG_FLUSH,
	LAG_KINDS
};

struct lag_sample {
	uint64_t lsn;
	int64_t t_us;
};

struct lag_tracker {
	struct lag_sample *ring;	/* LAG_RING_SIZE, allocated at the first sample */
	uint64_t written;		/* samples ever recorded; the next goes to written % size */
	uint64_t read[LAG_KINDS];	/* per kind, the oldest sample not yet confirmed */
	uint64_t last_lsn;		/* highest position recorded */
	int64_t lag_us[LAG_KINDS];	/* last measured; -1 before any */
	bool caught_up[LAG_KINDS];	/* confirmed everything sent, nothing sent since */
};

void lag_tracker_init(struct lag_tracker *lt);
void lag_tracker_free(struct lag_tracker *lt);

/* The stream ended: drop what is pending, keep the last measured lags. */
void lag_tracker_stop(struct lag_tracker *lt);

/* A position was forwarded at now_us. Returns false only when out of memory. */
bool lag_tracker_sent(struct lag_tracker *lt, uint64_t lsn, int64_t now_us);

/*
 * The client reported lsn for kind k at now_us; sent is the highest
 * position forwarded so far (for the caught-up case).
 */
void lag_tracker_confirmed(struct lag_tracker *lt, enum lag_kind k, uint64_t lsn,
			   uint64_t sent, int64_t now_us);

/* The lag of kind k as of now_us, in seconds; 0 before any measurement. */
double lag_tracker_seconds(const struct lag_tracker *lt, enum lag_kind k, int64_t now_us);

#endif

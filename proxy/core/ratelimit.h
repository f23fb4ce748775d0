/*
 * ratelimit.h - a fixed window: at most `burst` events per `period` seconds,
 * for log lines that a flood must not multiply.
 */
#ifndef WALGATE_RATELIMIT_H
#define WALGATE_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* At most `burst` events per `period` seconds pass; the rest are counted. */
struct ratelimit {
	int period;
	unsigned burst;
	int64_t window_start;
	unsigned used;
	unsigned long suppressed;
};

/*
 * True when an event at `now` may be logged. *suppressed receives how many
 * were held back since the last one that passed (to say so in that line).
 */
bool ratelimit_pass(struct ratelimit *rl, int64_t now, unsigned long *suppressed);

#endif
